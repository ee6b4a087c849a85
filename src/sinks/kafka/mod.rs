//! The Kafka (Amazon MSK) publisher: `[sink] kind = "kafka"`. Every change event becomes a record on
//! `<topic_prefix>.<db>.<table>` (key = key columns, value = the change envelope, a tombstone after each
//! delete), schema changes go to `<topic_prefix>`, optional transaction metadata to
//! `<topic_prefix>.transaction`. Progress: a source checkpoint is stored in `<topic_prefix>.binlake.offsets`
//! only after the broker acknowledged every record before it, so a crash republishes the unacknowledged
//! tail with the same `binlake.seq` header — at least once on the topic; the lake sink's `_seq` guard makes
//! it exactly once in Delta.

pub mod admin;
pub mod client;
pub mod debezium;
pub mod encode;
pub mod iam;
pub mod offsets;
pub mod records;
pub mod scram;
pub mod tracker;

use crate::config::kafka::KafkaConfig;
use crate::event::progress::Checkpoint;
use crate::event::{ChangeEvent, Op, SchemaChange, SourceMessage, TableId, TableSchema};
use crate::observe::METRICS;
use client::{ensure_topic, KafkaContext, TopicSpec};
use encode::Encoder;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use records::{Topics, TxCounts};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracker::Tracker;

/// After a stop request, how long the publisher may still wait for the broker.
const DRAIN_BUDGET: Duration = Duration::from_secs(20);

/// How long one wait for producer-queue space or acknowledgements lasts before conditions are rechecked.
const ACK_WAIT: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka client: {0}")]
    Client(String),
    #[error("creating topic {topic}: {error}")]
    Admin {
        topic: String,
        error: String,
        transient: bool,
    },
    #[error("offsets topic {topic}: {error}")]
    Offsets {
        topic: String,
        error: String,
        transient: bool,
    },
    #[error(
        "a record of {topic} (key {key}) is {size} bytes, more than the {limit} allowed; raise the topic's \
         max.message.bytes (and the broker's message.max.bytes) and kafka.producer.max_message_bytes, or \
         leave the large column out with source.exclude_columns"
    )]
    RecordTooLarge {
        topic: String,
        key: String,
        size: usize,
        limit: u64,
    },
    #[error("the broker refused a record of {topic} (key {key}): {error}{hint}")]
    Delivery {
        topic: String,
        key: String,
        error: String,
        hint: &'static str,
    },
    #[error("cannot queue a record for {topic}: {error}")]
    Produce { topic: String, error: String },
    #[error(
        "{in_flight} record(s) not acknowledged by the broker within the drain budget; the stored position \
         is before them, so they are published again on restart"
    )]
    DrainTimeout { in_flight: u64 },
    #[error(transparent)]
    Encode(#[from] encode::EncodeError),
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
}

impl KafkaError {
    /// Transient errors may succeed on retry; the rest stop the pipeline with the cause and the fix.
    pub fn is_transient(&self) -> bool {
        match self {
            KafkaError::Admin { transient, .. } | KafkaError::Offsets { transient, .. } => {
                *transient
            }
            KafkaError::DrainTimeout { .. } => true,
            _ => false,
        }
    }
}

fn hint_for(code: Option<RDKafkaErrorCode>) -> &'static str {
    match code {
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => {
            "; raise the topic's max.message.bytes or leave the large column out with source.exclude_columns"
        }
        Some(RDKafkaErrorCode::TopicAuthorizationFailed) => {
            "; grant the publisher write access to the topic (MSK IAM: kafka-cluster:WriteData)"
        }
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {
            "; the topic was deleted while binlake ran: restart binlake to create it again"
        }
        _ => "",
    }
}

/// The producer and its acknowledgements; separate from the encoder so a record borrowed from the
/// encoder's buffers can be sent without copying it.
struct Publisher {
    producer: ThreadedProducer<KafkaContext>,
    tracker: Arc<Tracker>,
    max_message_bytes: u64,
    stop: CancellationToken,
    stop_seen: Option<Instant>,
}

impl Publisher {
    /// The latest time a wait may end once a stop was requested.
    fn deadline(&mut self) -> Option<Instant> {
        self.stop
            .is_cancelled()
            .then(|| *self.stop_seen.get_or_insert_with(Instant::now) + DRAIN_BUDGET)
    }

    fn check_failure(&self) -> Result<(), KafkaError> {
        match self.tracker.failure() {
            None => Ok(()),
            Some(f) => {
                let code = f.error.rdkafka_error_code();
                Err(KafkaError::Delivery {
                    topic: f.topic,
                    key: f.key,
                    error: f.error.to_string(),
                    hint: hint_for(code),
                })
            }
        }
    }

    /// Queues one record; waits while the producer's queue is full (a slow or absent broker holds the
    /// binlog reader back here, with memory bounded by `kafka.producer.buffer_max_mb`).
    async fn send(
        &mut self,
        kind: &'static str,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: OwnedHeaders,
    ) -> Result<(), KafkaError> {
        self.check_failure()?;
        let size = key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
        let key_text = || {
            key.map(|k| String::from_utf8_lossy(k).chars().take(200).collect())
                .unwrap_or_else(|| "(none)".to_string())
        };
        if size as u64 > self.max_message_bytes {
            return Err(KafkaError::RecordTooLarge {
                topic: topic.to_string(),
                key: key_text(),
                size,
                limit: self.max_message_bytes,
            });
        }
        let epoch = self.tracker.sent();
        let mut record = BaseRecord::with_opaque_to(topic, epoch).headers(headers);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    METRICS.kafka_records.with_label_values(&[kind]).inc();
                    return Ok(());
                }
                Err((e, back)) => {
                    let code = e.rdkafka_error_code();
                    if code == Some(RDKafkaErrorCode::QueueFull) {
                        METRICS.kafka_queue_full.inc();
                        if self.deadline().is_some_and(|d| Instant::now() >= d) {
                            self.tracker.unsent(epoch);
                            return Err(KafkaError::DrainTimeout {
                                in_flight: self.tracker.in_flight(),
                            });
                        }
                        let _ = tokio::time::timeout(ACK_WAIT, self.tracker.acked.notified()).await;
                        if let Err(failed) = self.check_failure() {
                            self.tracker.unsent(epoch);
                            return Err(failed);
                        }
                        record = back;
                        continue;
                    }
                    self.tracker.unsent(epoch);
                    return Err(if code == Some(RDKafkaErrorCode::MessageSizeTooLarge) {
                        KafkaError::RecordTooLarge {
                            topic: topic.to_string(),
                            key: key_text(),
                            size,
                            limit: self.max_message_bytes,
                        }
                    } else {
                        KafkaError::Produce {
                            topic: topic.to_string(),
                            error: e.to_string(),
                        }
                    });
                }
            }
        }
    }

    /// Waits until the broker acknowledged every record sent so far (bounded by the drain budget once a
    /// stop was requested).
    async fn wait_all_acked(&mut self) -> Result<(), KafkaError> {
        loop {
            self.check_failure()?;
            let in_flight = self.tracker.in_flight();
            METRICS.kafka_in_flight.set(in_flight as i64);
            if in_flight == 0 {
                return Ok(());
            }
            if self.deadline().is_some_and(|d| Instant::now() >= d) {
                return Err(KafkaError::DrainTimeout { in_flight });
            }
            let _ = tokio::time::timeout(ACK_WAIT, self.tracker.acked.notified()).await;
        }
    }
}

fn headers(ev_seq: u64, gtid: Option<&str>, schema_version: u32) -> OwnedHeaders {
    let seq = ev_seq.to_string();
    let version = schema_version.to_string();
    let mut h = OwnedHeaders::new_with_capacity(3)
        .insert(Header {
            key: "binlake.seq",
            value: Some(seq.as_bytes()),
        })
        .insert(Header {
            key: "binlake.schema_version",
            value: Some(version.as_bytes()),
        });
    if let Some(g) = gtid {
        h = h.insert(Header {
            key: "binlake.gtid",
            value: Some(g.as_bytes()),
        });
    }
    h
}

pub struct KafkaSink {
    config: KafkaConfig,
    connector: String,
    topics: Topics,
    admin: admin::Admin,
    publisher: Publisher,
    encoder: Encoder,
    table_topics: HashMap<TableId, String>,
    last_topic: Option<(Arc<TableSchema>, String)>,
    /// The schema version of each table last written to the schema-change topic by this process.
    schemas_published: HashMap<TableId, u32>,
    /// The schema of the previous event, already known to be published.
    schema_checked: Option<Arc<TableSchema>>,
    created: HashSet<String>,
    /// Checkpoints sent, with the epoch they close, oldest first.
    pending: VecDeque<(u64, Checkpoint)>,
    /// The newest checkpoint whose records are all acknowledged, and whether it is stored yet.
    durable: Option<(Checkpoint, bool)>,
    last_store: Instant,
    /// A checkpoint past the snapshot is stored; before that, checkpoints are stored synchronously.
    stream_stored: bool,
    last_record: Instant,
    tx: Option<TxCounts>,
}

impl KafkaSink {
    pub async fn new(config: &KafkaConfig, connector: &str) -> Result<Self, KafkaError> {
        let tracker = Arc::new(Tracker::new());
        let context = KafkaContext::new(config, Some(tracker.clone()));
        let scram = context.scram();
        let producer: ThreadedProducer<KafkaContext> = client::producer_config(config)
            .create_with_context(context)
            .map_err(|e| KafkaError::Client(e.to_string()))?;
        client::bind(scram, producer.client());
        Ok(KafkaSink {
            config: config.clone(),
            connector: connector.to_string(),
            topics: Topics {
                prefix: config.prefix(connector).to_string(),
            },
            admin: client::admin_client(config)?,
            publisher: Publisher {
                producer,
                tracker,
                max_message_bytes: config.producer.max_message_bytes,
                stop: CancellationToken::new(),
                stop_seen: None,
            },
            encoder: Encoder::new(config, connector),
            table_topics: HashMap::new(),
            last_topic: None,
            schemas_published: HashMap::new(),
            schema_checked: None,
            created: HashSet::new(),
            pending: VecDeque::new(),
            durable: None,
            last_store: Instant::now(),
            stream_stored: false,
            last_record: Instant::now(),
            tx: None,
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.request_timeout_secs)
    }

    /// Creates `name` once per process (retrying transient failures with the shared backoff).
    async fn ensure(
        &mut self,
        name: &str,
        partitions: i32,
        cfg: Vec<(&str, &str)>,
    ) -> Result<(), KafkaError> {
        if self.created.contains(name) {
            return Ok(());
        }
        let spec = TopicSpec {
            name,
            partitions,
            replication_factor: self.config.topics.replication_factor,
            config: cfg,
        };
        let mut backoff = crate::retry::Backoff::transient();
        let stop = self.publisher.stop.clone();
        loop {
            // once a stop is requested, the broker has until the drain deadline to answer
            let deadline = self.publisher.deadline();
            backoff = backoff.until(deadline);
            let create = ensure_topic(&self.admin, &spec, self.timeout());
            let attempt = match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), create)
                    .await
                    .unwrap_or_else(|_| {
                        Err(KafkaError::Admin {
                            topic: name.to_string(),
                            error: "no answer from the broker within the drain budget".into(),
                            transient: true,
                        })
                    }),
                None => tokio::select! {
                    r = create => r,
                    // asked again with the drain deadline
                    _ = stop.cancelled() => continue,
                },
            };
            match attempt {
                Ok(()) => break,
                Err(e) if e.is_transient() => match backoff.next_delay() {
                    Some(wait) => {
                        crate::observe::error("kafka", "transient");
                        tracing::warn!(topic = name, error = %e, "creating topic; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = stop.cancelled(), if deadline.is_none() => {}
                        }
                    }
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
        self.created.insert(name.to_string());
        Ok(())
    }

    async fn table_topic(&mut self, schema: &Arc<TableSchema>) -> Result<String, KafkaError> {
        // consecutive events are mostly of one table: compare the schema pointer before building a key
        if let Some((last, topic)) = &self.last_topic {
            if Arc::ptr_eq(last, schema) {
                return Ok(topic.clone());
            }
        }
        let id = &schema.id();
        if let Some(t) = self.table_topics.get(id) {
            self.last_topic = Some((schema.clone(), t.clone()));
            return Ok(t.clone());
        }
        let topic = self.topics.table(id)?;
        let cleanup = self.config.topics.cleanup_policy.clone();
        self.ensure(
            &topic,
            self.config.topics.partitions,
            vec![("cleanup.policy", &cleanup)],
        )
        .await?;
        self.table_topics.insert(id.clone(), topic.clone());
        self.last_topic = Some((schema.clone(), topic.clone()));
        Ok(topic)
    }

    async fn send_json(
        &mut self,
        kind: &'static str,
        topic: &str,
        key: &serde_json::Value,
        value: Option<&serde_json::Value>,
    ) -> Result<(), KafkaError> {
        let key = serde_json::to_vec(key).expect("json");
        let value = value.map(|v| serde_json::to_vec(v).expect("json"));
        self.publisher
            .send(
                kind,
                topic,
                Some(&key),
                value.as_deref(),
                OwnedHeaders::new(),
            )
            .await?;
        self.last_record = Instant::now();
        Ok(())
    }

    async fn publish_change(&mut self, ev: &ChangeEvent) -> Result<(), KafkaError> {
        if ev.key_changed() {
            // as Debezium: the old key is deleted (and tombstoned) in its partition, the new key created
            // in its own, so a consumer keyed by the primary key sees both
            let delete = ChangeEvent {
                op: Op::Delete,
                after: None,
                ..ev.clone()
            };
            let create = ChangeEvent {
                op: Op::Insert,
                before: None,
                ..ev.clone()
            };
            self.publish_one(&delete).await?;
            return self.publish_one(&create).await;
        }
        self.publish_one(ev).await
    }

    async fn publish_one(&mut self, ev: &ChangeEvent) -> Result<(), KafkaError> {
        let topic = self.table_topic(&ev.schema).await?;
        let checked = self
            .schema_checked
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &ev.schema));
        if !checked && self.schemas_published.get(&ev.schema.id()) != Some(&ev.schema.version) {
            // readers of the table topic find every table's schema on the schema-change topic, also for
            // tables whose schema was known before this process started
            let sc = SchemaChange {
                schema: ev.schema.clone(),
                ddl: String::new(),
                source: ev.source.clone(),
            };
            self.publish_schema_change(&sc).await?;
        }
        self.schema_checked = Some(ev.schema.clone());
        let order = self.transaction_order(ev).await?;
        let mut headers = headers(ev.seq, ev.source.gtid.as_deref(), ev.schema.version);
        if ev.op == Op::Drop {
            headers = headers.insert(Header {
                key: crate::sources::kafka::consumer::DROP_HEADER,
                value: Some(b"true".as_slice()),
            });
        }
        let tombstone = ev.op == Op::Delete && self.config.tombstones_on_delete;
        let now = crate::event::calendar::now_ms();
        let record = self.encoder.encode(ev, &topic, now, order)?;
        let key = record.key;
        self.publisher
            .send("change", &topic, key, Some(record.value), headers.clone())
            .await?;
        if tombstone && key.is_some() {
            let key = self.encoder.last_key();
            self.publisher
                .send("tombstone", &topic, Some(key), None, headers)
                .await?;
        }
        self.last_record = Instant::now();
        Ok(())
    }

    /// The event's order among its table's events in the transaction; with transaction metadata on,
    /// a BEGIN record starts each transaction.
    async fn transaction_order(&mut self, ev: &ChangeEvent) -> Result<u64, KafkaError> {
        let Some(gtid) = ev.source.gtid.as_deref().filter(|_| !ev.source.snapshot) else {
            return Ok(0);
        };
        if self.tx.as_ref().is_none_or(|t| t.id != gtid) {
            self.end_transaction().await?;
            let tx = TxCounts {
                id: gtid.to_string(),
                ts_ms: ev.source.ts_ms,
                ..Default::default()
            };
            if self.config.provide_transaction_metadata {
                let topic = self.topics.transactions();
                self.ensure(&topic, 1, vec![]).await?;
                self.send_json(
                    "transaction",
                    &topic,
                    &records::tx_key(&tx.id),
                    Some(&records::tx_begin(&tx)),
                )
                .await?;
            }
            self.tx = Some(tx);
        }
        Ok(self.tx.as_mut().expect("open").count(&ev.schema))
    }

    async fn end_transaction(&mut self) -> Result<(), KafkaError> {
        if let Some(tx) = self.tx.take() {
            if self.config.provide_transaction_metadata {
                let topic = self.topics.transactions();
                self.send_json(
                    "transaction",
                    &topic,
                    &records::tx_key(&tx.id),
                    Some(&records::tx_end(&tx)),
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn publish_schema_change(&mut self, sc: &SchemaChange) -> Result<(), KafkaError> {
        let topic = self.topics.schema_changes();
        // Debezium's schema history: one partition (one order), kept forever
        self.ensure(
            &topic,
            1,
            vec![("cleanup.policy", "delete"), ("retention.ms", "-1")],
        )
        .await?;
        let value = records::schema_change_value(sc, &self.topics.prefix);
        self.send_json(
            "schema",
            &topic,
            &records::schema_change_key(sc),
            Some(&value),
        )
        .await?;
        self.schemas_published
            .insert(sc.schema.id(), sc.schema.version);
        Ok(())
    }

    /// Moves acknowledged checkpoints to `durable` and stores the newest one every
    /// `offset_flush_interval_ms` (or now, with `force`).
    async fn advance(&mut self, force: bool) -> Result<(), KafkaError> {
        self.publisher.check_failure()?;
        METRICS
            .kafka_in_flight
            .set(self.publisher.tracker.in_flight() as i64);
        if let Some(done) = self.publisher.tracker.completed_through() {
            while self
                .pending
                .front()
                .is_some_and(|(epoch, _)| *epoch <= done)
            {
                let (_, cp) = self.pending.pop_front().expect("front");
                self.durable = Some((cp, false));
            }
        }
        let interval = Duration::from_millis(self.config.producer.offset_flush_interval_ms);
        let due = force || self.last_store.elapsed() >= interval;
        if let Some((cp, stored)) = &self.durable {
            if due && !*stored {
                let cp = cp.clone();
                let topic = self.topics.offsets();
                let key = offsets::offsets_key(&self.connector);
                let value = serde_json::to_vec(&cp).expect("checkpoint json");
                self.publisher
                    .send(
                        "offsets",
                        &topic,
                        Some(&key),
                        Some(&value),
                        OwnedHeaders::new(),
                    )
                    .await?;
                METRICS.checkpoint_pos.set(cp.position.pos as i64);
                self.last_store = Instant::now();
                if let Some((_, stored)) = &mut self.durable {
                    *stored = true;
                }
            }
        }
        Ok(())
    }

    async fn heartbeat(&mut self) -> Result<(), KafkaError> {
        let every = self.config.heartbeat_interval_ms;
        if every == 0 || self.last_record.elapsed() < Duration::from_millis(every) {
            return Ok(());
        }
        let topic = self.topics.heartbeat();
        self.ensure(&topic, 1, vec![]).await?;
        let key = serde_json::json!({ "serverName": self.topics.prefix });
        let value = serde_json::json!({ "ts_ms": crate::event::calendar::now_ms() });
        self.send_json("heartbeat", &topic, &key, Some(&value))
            .await
    }

    async fn start(&mut self) -> Result<Option<Checkpoint>, KafkaError> {
        let topic = self.topics.offsets();
        self.ensure(&topic, 1, vec![("cleanup.policy", "compact")])
            .await?;
        let mut backoff = crate::retry::Backoff::transient();
        loop {
            match offsets::load(&self.config, &topic, &self.connector).await {
                Ok(cp) => return Ok(cp),
                Err(e) if e.is_transient() => match backoff.next_delay() {
                    Some(wait) => {
                        crate::observe::error("kafka", "transient");
                        tracing::warn!(error = %e, "reading the offsets topic; retrying");
                        tokio::time::sleep(wait).await;
                    }
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }
}

impl super::Sink for KafkaSink {
    async fn resume_point(&mut self) -> Result<Option<Checkpoint>, super::SinkError> {
        let cp = self.start().await?;
        self.stream_stored = cp
            .as_ref()
            .is_some_and(|cp| cp.snapshot.as_ref().is_none_or(|s| s.complete));
        Ok(cp)
    }

    async fn seq_floor(&mut self) -> Result<u64, super::SinkError> {
        let topics = Topics {
            prefix: self.topics.prefix.clone(),
        };
        Ok(offsets::seq_floor(&self.config, topics).await?)
    }

    async fn send(&mut self, msg: SourceMessage) -> Result<(), super::SinkError> {
        match msg {
            SourceMessage::Change(ev) => self.publish_change(&ev).await?,
            SourceMessage::SchemaChange(sc) => self.publish_schema_change(&sc).await?,
            SourceMessage::Checkpoint(cp) => {
                self.end_transaction().await?;
                let snapshot_done = cp.snapshot.as_ref().is_none_or(|s| s.complete);
                let epoch = self.publisher.tracker.close_epoch();
                let sync = cp.sync;
                self.pending.push_back((epoch, cp));
                if self.stream_stored && !sync {
                    self.advance(false).await?;
                } else {
                    // Until a checkpoint past the snapshot is stored, each one is stored before anything
                    // else is published: a restart then never snapshots again from scratch (which would hand
                    // out `_seq`s already used by later changes), and a re-read chunk keeps its `_seq`s.
                    // Around a chunk of a snapshot taken while streaming, too: the `_seq`s after it
                    // depend on the chunk, so nothing after it goes out before it is stored.
                    self.publisher.wait_all_acked().await?;
                    self.advance(true).await?;
                    self.publisher.wait_all_acked().await?;
                    self.stream_stored = self.stream_stored || snapshot_done;
                }
            }
        }
        Ok(())
    }

    async fn tick(&mut self) -> Result<(), super::SinkError> {
        self.advance(false).await?;
        self.heartbeat().await?;
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), super::SinkError> {
        let drained = self.publisher.wait_all_acked().await;
        // store what is acknowledged even when the broker did not answer for everything
        self.advance(true).await?;
        drained?;
        self.publisher.wait_all_acked().await?;
        Ok(())
    }

    fn resnapshot_hint(&self) -> String {
        format!(
            "stop binlake and produce a tombstone (null value) with key {} to topic {} to start over with a \
             fresh snapshot",
            String::from_utf8_lossy(&offsets::offsets_key(&self.connector)),
            self.topics.offsets()
        )
    }

    fn watch_stop(&mut self, stop: CancellationToken) {
        self.publisher.stop = stop;
    }

    fn keeps_rows_past_checkpoint(&self) -> bool {
        true // a record on a topic cannot be taken back
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        // records not yet acknowledged are published again on restart; do not block the exit on them
        self.publisher
            .producer
            .purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
    }
}
