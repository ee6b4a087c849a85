//! The tables' schemas as the publisher recorded them on the schema-change topic `<topic_prefix>` (one
//! partition, in publish order). The publisher writes a table's schema before the first record that uses
//! it, so a record whose schema version is not known yet is followed by reading further into this topic.

use super::ConsumeError;
use crate::config::kafka::KafkaConfig;
use crate::event::TableSchema;
use crate::sinks::kafka::client::KafkaContext;
use crate::sinks::kafka::records::Topics;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct SchemaLog {
    consumer: StreamConsumer<KafkaContext>,
    topic: String,
    topics: Topics,
    /// Table topic → schema version → schema.
    by_topic: HashMap<Arc<str>, BTreeMap<u32, Arc<TableSchema>>>,
    /// Table topic → the schema read last (versions are content hashes, not in order).
    latest: HashMap<Arc<str>, Arc<TableSchema>>,
    wait: Duration,
    /// Assigned (`start`), on first use.
    started: bool,
}

impl SchemaLog {
    pub fn open(config: &KafkaConfig, prefix: &str) -> Result<Self, ConsumeError> {
        let topics = Topics {
            prefix: prefix.to_string(),
        };
        let topic = topics.schema_changes();
        let context = KafkaContext::new(config, None);
        let scram = context.scram();
        let consumer: StreamConsumer<KafkaContext> = super::consumer_config(config)
            .set("group.id", format!("{prefix}.binlake.schema-reader"))
            // every schema record counts: an offset gone by the time it is fetched means from the start
            .set("auto.offset.reset", "earliest")
            .create_with_context(context)
            .map_err(|e| ConsumeError::Client(e.to_string()))?;
        crate::sinks::kafka::client::bind(scram, consumer.client());
        Ok(SchemaLog {
            consumer,
            topic,
            topics,
            by_topic: HashMap::new(),
            latest: HashMap::new(),
            wait: Duration::from_secs(config.consumer.schema_wait_secs),
            started: false,
        })
    }

    /// Starts reading the topic from its first offset, looked up now (`super::first_offset`). A topic
    /// that cannot be looked up yet (not created yet, the broker away) is assigned at the logical
    /// beginning, and read once librdkafka finds it.
    fn start(&mut self) -> Result<(), ConsumeError> {
        if self.started {
            return Ok(());
        }
        let at = match super::first_offset(&self.consumer, &self.topic, 0, self.wait) {
            Ok(at) => at,
            Err(e) => {
                tracing::debug!(topic = %self.topic, error = %e, "first offset not known yet");
                Offset::Beginning
            }
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, 0, at)
            .map_err(|e| ConsumeError::Client(e.to_string()))?;
        self.consumer
            .assign(&tpl)
            .map_err(|e| ConsumeError::Client(e.to_string()))?;
        self.started = true;
        Ok(())
    }

    /// The topic's name as shared with its records, if a schema of it was read.
    pub fn known_topic(&self, topic: &str) -> Option<&Arc<str>> {
        self.by_topic.get_key_value(topic).map(|(name, _)| name)
    }

    /// The topic's name as shared with its records, and its schema at `version`, if already read.
    pub fn cached(&self, topic: &str, version: u32) -> Option<(&Arc<str>, &Arc<TableSchema>)> {
        let (name, versions) = self.by_topic.get_key_value(topic)?;
        Some((name, versions.get(&version)?))
    }

    /// The schema of `topic`'s records at `version`, reading further into the schema-change topic while
    /// it is unknown (at most `consumer.schema_wait_secs`).
    pub async fn get(
        &mut self,
        topic: &str,
        version: u32,
    ) -> Result<Arc<TableSchema>, ConsumeError> {
        let deadline = Instant::now() + self.wait;
        loop {
            if let Some((_, s)) = self.cached(topic, version) {
                return Ok(s.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ConsumeError::SchemaMissing {
                    topic: topic.to_string(),
                    version,
                    schema_topic: self.topic.clone(),
                    waited_secs: self.wait.as_secs(),
                });
            }
            self.read_one(left).await?;
        }
    }

    /// The newest schema of `topic` known, reading further into the schema-change topic while there is
    /// none (at most `consumer.schema_wait_secs`); `None`: no table publishes there. Newer versions are
    /// picked up as records need them.
    pub async fn latest(&mut self, topic: &str) -> Result<Option<Arc<TableSchema>>, ConsumeError> {
        let deadline = Instant::now() + self.wait;
        while !self.by_topic.contains_key(topic) && Instant::now() < deadline {
            self.read_one(deadline.saturating_duration_since(Instant::now()))
                .await?;
        }
        Ok(self.latest.get(topic).cloned())
    }

    /// Forgets `topic`'s schema at `version`: a record showed it is not the one it was written with,
    /// so the next `get` reads the schema-change topic on for it.
    pub fn forget(&mut self, topic: &str, version: u32) {
        if let Some(versions) = self.by_topic.get_mut(topic) {
            versions.remove(&version);
        }
    }

    /// Reads one record within `wait`; false when none arrived.
    async fn read_one(&mut self, wait: Duration) -> Result<bool, ConsumeError> {
        self.start()?;
        let msg = match tokio::time::timeout(wait, self.consumer.recv()).await {
            Err(_) => return Ok(false),
            Ok(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return Ok(false),
            Ok(Err(e)) => {
                return Err(ConsumeError::Transient(format!(
                    "reading the schema-change topic {}: {e}",
                    self.topic
                )))
            }
            Ok(Ok(m)) => m,
        };
        let Some(payload) = msg.payload() else {
            return Ok(true);
        };
        let offset = msg.offset();
        let value: serde_json::Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(e) => return Err(self.unreadable(offset, &e.to_string())),
        };
        let Some(schema) = value.get("binlake").and_then(|b| b.get("schema")) else {
            // a schema-change record without binlake's schema (e.g. written by Debezium itself)
            return Err(self.unreadable(
                offset,
                "it has no binlake.schema field: the topics were not published by binlake",
            ));
        };
        let schema: TableSchema = serde_json::from_value(schema.clone())
            .map_err(|e| self.unreadable(offset, &e.to_string()))?;
        let table_topic = self.topics.table(&schema.id())?;
        tracing::debug!(topic = %table_topic, version = schema.version, "schema record read");
        let table_topic: Arc<str> = match self.by_topic.get_key_value(table_topic.as_str()) {
            Some((name, _)) => name.clone(),
            None => Arc::from(table_topic),
        };
        let schema = Arc::new(schema);
        self.latest.insert(table_topic.clone(), schema.clone());
        self.by_topic
            .entry(table_topic)
            .or_default()
            .insert(schema.version, schema);
        Ok(true)
    }

    fn unreadable(&self, offset: i64, why: &str) -> ConsumeError {
        ConsumeError::SchemaRecord {
            topic: self.topic.clone(),
            offset,
            error: why.to_string(),
        }
    }
}
