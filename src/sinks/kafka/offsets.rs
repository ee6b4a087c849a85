//! The publisher's progress in Kafka itself, as Kafka Connect keeps source offsets: a compacted topic
//! `<topic_prefix>.binlake.offsets`, key = the connector, value = the source checkpoint up to which every
//! record has been acknowledged. An ECS task without a disk resumes from it.

use super::client::{base_config, KafkaContext};
use super::KafkaError;
use crate::config::kafka::KafkaConfig;
use crate::event::progress::Checkpoint;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// The record key for `connector`: JSON, so tools that print the topic show it readably.
pub fn offsets_key(connector: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "connector": connector })).expect("json")
}

/// The newest checkpoint stored for `connector` in `topic` (partition 0), read to the end.
pub async fn load(
    config: &KafkaConfig,
    topic: &str,
    connector: &str,
) -> Result<Option<Checkpoint>, KafkaError> {
    let config = config.clone();
    let topic = topic.to_string();
    let key = offsets_key(connector);
    tokio::task::spawn_blocking(move || load_blocking(&config, &topic, &key))
        .await
        .map_err(|e| KafkaError::Client(format!("offsets reader task: {e}")))?
}

fn load_blocking(
    config: &KafkaConfig,
    topic: &str,
    key: &[u8],
) -> Result<Option<Checkpoint>, KafkaError> {
    let timeout = Duration::from_secs(config.request_timeout_secs);
    let transient = |what: &str, e: &dyn std::fmt::Display| KafkaError::Offsets {
        topic: topic.to_string(),
        error: format!("{what}: {e}"),
        transient: true,
    };
    // Read to the end-of-partition event of the fetch rather than to ListOffsets' high watermark, which
    // some Kafka-protocol brokers (tansu) answer wrongly for multi-record batches.
    let context = KafkaContext::new(config, None);
    let scram = context.scram();
    let consumer: BaseConsumer<KafkaContext> = base_config(config)
        .set("group.id", "binlake-offsets-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create_with_context(context)
        .map_err(|e| KafkaError::Client(e.to_string()))?;
    super::client::bind(scram, consumer.client());
    // an empty partition's end comes as a global error event, not through poll: tell it by its watermark
    // (ListOffsets is right for an empty partition, even where it is wrong for a full one)
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, timeout)
        .map_err(|e| transient("reading its end offset", &e))?;
    if high == 0 {
        return Ok(None);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(|e| KafkaError::Client(e.to_string()))?;
    consumer
        .assign(&tpl)
        .map_err(|e| KafkaError::Client(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    let mut newest = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(transient(
                "reading it",
                &format!("its end was not reached within {timeout:?}"),
            ));
        }
        let msg = match consumer.poll(left.min(Duration::from_millis(500))) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(transient("reading it", &e)),
            Some(Ok(msg)) => msg,
        };
        if msg.key() != Some(key) {
            continue;
        }
        newest = match msg.payload() {
            // a tombstone: the connector's progress was reset on purpose
            None => None,
            Some(bytes) => Some(serde_json::from_slice::<Checkpoint>(bytes).map_err(|e| {
                KafkaError::Offsets {
                    topic: topic.to_string(),
                    error: format!(
                        "the record at offset {} is not a binlake checkpoint ({e}); produce a tombstone \
                         for this connector's key to start over with a fresh snapshot",
                        msg.offset()
                    ),
                    transient: false,
                }
            })?),
        };
    }
    Ok(newest)
}

/// The highest `binlake.seq` on the connector's table topics (`<prefix>.<db>.<table>`), read to their
/// ends: where a publisher starting without a checkpoint continues, so its records are never taken for
/// republished copies of older ones. Read only at such a start, which snapshots every table anyway.
pub async fn seq_floor(
    config: &KafkaConfig,
    topics: super::records::Topics,
) -> Result<u64, KafkaError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || seq_floor_blocking(&config, &topics))
        .await
        .map_err(|e| KafkaError::Client(format!("table topic reader task: {e}")))?
}

fn seq_floor_blocking(
    config: &KafkaConfig,
    topics: &super::records::Topics,
) -> Result<u64, KafkaError> {
    let timeout = Duration::from_secs(config.request_timeout_secs);
    let transient = |topic: &str, e: &dyn std::fmt::Display| KafkaError::Offsets {
        topic: topic.to_string(),
        error: format!("reading the highest binlake.seq: {e}"),
        transient: true,
    };
    let context = KafkaContext::new(config, None);
    let scram = context.scram();
    let consumer: BaseConsumer<KafkaContext> = base_config(config)
        .set("group.id", "binlake-seq-floor-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create_with_context(context)
        .map_err(|e| KafkaError::Client(e.to_string()))?;
    super::client::bind(scram, consumer.client());
    let metadata = consumer
        .fetch_metadata(None, timeout)
        .map_err(|e| transient(&topics.prefix, &e))?;
    let table_prefix = format!("{}.", topics.prefix);
    let bookkeeping = [topics.offsets(), topics.dead_letters()];
    let mut tpl = TopicPartitionList::new();
    let mut open = 0;
    for t in metadata.topics() {
        let Some(rest) = t.name().strip_prefix(&table_prefix) else {
            continue;
        };
        if rest.split('.').count() != 2 || bookkeeping.iter().any(|b| b == t.name()) {
            continue;
        }
        for p in t.partitions() {
            let (_, high) = consumer
                .fetch_watermarks(t.name(), p.id(), timeout)
                .map_err(|e| transient(t.name(), &e))?;
            if high > 0 {
                tpl.add_partition_offset(t.name(), p.id(), Offset::Beginning)
                    .map_err(|e| KafkaError::Client(e.to_string()))?;
                open += 1;
            }
        }
    }
    if open == 0 {
        return Ok(0);
    }
    consumer
        .assign(&tpl)
        .map_err(|e| KafkaError::Client(e.to_string()))?;
    let mut floor = 0u64;
    let mut last = Instant::now();
    while open > 0 {
        // a deadline that moves with progress: large topics take as long as they take to read
        if last.elapsed() > timeout {
            return Err(transient(
                &topics.prefix,
                &format!("no record or end of partition for {timeout:?}"),
            ));
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => open -= 1,
            Some(Err(e)) => return Err(transient(&topics.prefix, &e)),
            Some(Ok(msg)) => {
                use rdkafka::message::Headers;
                let seq = msg.headers().and_then(|h| {
                    h.iter()
                        .find(|h| h.key == "binlake.seq")
                        .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse::<u64>().ok())
                });
                floor = floor.max(seq.unwrap_or(0));
            }
        }
        last = Instant::now();
    }
    Ok(floor)
}
