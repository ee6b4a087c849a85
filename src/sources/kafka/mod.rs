//! Kafka as a source: the table topics binlake's publisher wrote, read back by `binlake sink` into the
//! change events they were published from.

pub mod consumer;
pub mod record;
pub mod schemas;
pub mod values;

/// What both of `binlake sink`'s consumers (the table topics, the schema-change topic) are: clients of
/// the configured cluster that never commit on their own and hold an empty fetch at most
/// `kafka.consumer.fetch_wait_max_ms`.
fn consumer_config(config: &crate::config::kafka::KafkaConfig) -> rdkafka::ClientConfig {
    let mut c = crate::sinks::kafka::client::base_config(config);
    c.set("enable.auto.commit", "false").set(
        "fetch.wait.max.ms",
        config.consumer.fetch_wait_max_ms.to_string(),
    );
    c
}

/// Longest wait for a partition's first offset: a blocking lookup on the sink's loop, bounded well inside
/// the 25 s drain after SIGTERM.
const FIRST_OFFSET_LOOKUP: std::time::Duration = std::time::Duration::from_secs(5);

/// A partition's first offset, asked for now. Assigned at the logical beginning, a partition waits for
/// librdkafka's own lookup, which comes half a second later when the partition's broker was not known
/// yet (measured: 0.45 s before the first fetch).
fn first_offset<C: rdkafka::consumer::ConsumerContext>(
    consumer: &impl rdkafka::consumer::Consumer<C>,
    topic: &str,
    partition: i32,
    timeout: std::time::Duration,
) -> rdkafka::error::KafkaResult<rdkafka::Offset> {
    let (low, _) = consumer.fetch_watermarks(topic, partition, timeout.min(FIRST_OFFSET_LOOKUP))?;
    Ok(rdkafka::Offset::Offset(low))
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The client could not be made (bad settings): fix the `[kafka]` section.
    #[error("kafka consumer: {0}")]
    Client(String),
    /// The broker is unreachable or answered with an error that may pass.
    #[error("kafka consumer: {0}")]
    Transient(String),
    #[error(
        "no schema version {version} for topic {topic} on the schema-change topic {schema_topic} after \
         {waited_secs} s; the publisher writes it before the table's records, so check that {schema_topic} \
         was not deleted or truncated (raise kafka.consumer.schema_wait_secs if it is only slow)"
    )]
    SchemaMissing {
        topic: String,
        version: u32,
        schema_topic: String,
        waited_secs: u64,
    },
    #[error(
        "the schema-change topic {topic} holds a record binlake cannot read at offset {offset}: {error}; \
         only binlake's publisher may write to it"
    )]
    SchemaRecord {
        topic: String,
        offset: i64,
        error: String,
    },
    #[error(
        "{topic}[{partition}]@{offset} cannot be read: {error}; with kafka.consumer.dlq = true it would go \
         to the dead-letter topic and the partition would go on"
    )]
    Unreadable {
        topic: String,
        partition: i32,
        offset: i64,
        error: String,
    },
    #[error("writing {topic}[{partition}]@{offset} to the dead-letter topic {dlq}: {error}")]
    DeadLetter {
        topic: String,
        partition: i32,
        offset: i64,
        dlq: String,
        error: String,
    },
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
}

impl ConsumeError {
    /// Transient errors may pass on retry; the rest stop the sink with the cause and the fix.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConsumeError::Transient(_) | ConsumeError::DeadLetter { .. }
        )
    }
}
