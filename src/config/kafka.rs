//! `[kafka]`: where the change stream is published (`[sink] kind = "kafka"`) and, later, read back by
//! `binlake sink`. Key names follow Debezium's and librdkafka's where one exists; README's "Kafka (MSK)
//! mode" section maps each to the Debezium property it replaces.

use super::{invalid, ConfigError};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port,host:port` (librdkafka `bootstrap.servers`).
    pub brokers: String,
    /// Topics are `<topic_prefix>.<db>.<table>` (Debezium `topic.prefix`); default: the connector name.
    #[serde(default)]
    pub topic_prefix: Option<String>,
    /// How values are written: `debezium` (Debezium's type encodings, default) or `binlake` (lossless,
    /// readable; the stdout sink's envelope).
    #[serde(default)]
    pub encoding: Encoding,
    /// Wrap key and value in `{"schema":…,"payload":…}` as Kafka Connect's JsonConverter does with
    /// `schemas.enable=true` (default false: the payload alone).
    #[serde(default)]
    pub schemas_enable: bool,
    /// DECIMAL in the `debezium` encoding: `precise` (Connect Decimal bytes, default), `string`, `double`.
    #[serde(default)]
    pub decimal_handling_mode: DecimalMode,
    /// BIGINT UNSIGNED in the `debezium` encoding: `long` (default, as Debezium: values above 2^63−1 wrap)
    /// or `precise` (Connect Decimal with scale 0, exact).
    #[serde(default)]
    pub bigint_unsigned_handling_mode: BigintUnsignedMode,
    /// A tombstone (key, null value) after each delete so compacted topics drop the key (default true).
    #[serde(default = "yes")]
    pub tombstones_on_delete: bool,
    /// Debezium's BEGIN/END records with per-table counts on `<topic_prefix>.transaction` (default false).
    #[serde(default)]
    pub provide_transaction_metadata: bool,
    /// A heartbeat record on `__debezium-heartbeat.<topic_prefix>` every this many ms while the stream is
    /// idle (default 0 = off).
    #[serde(default)]
    pub heartbeat_interval_ms: u64,
    #[serde(default)]
    pub topics: TopicSettings,
    #[serde(default)]
    pub producer: ProducerSettings,
    /// `binlake sink` (Kafka → lake).
    #[serde(default)]
    pub consumer: ConsumerSettings,
    /// `plaintext` (default), `tls`, `sasl_scram` (SCRAM-SHA-512 over TLS) or `iam` (MSK IAM, OAUTHBEARER
    /// over TLS).
    #[serde(default)]
    pub security: Security,
    /// PEM CA file for `tls`, `sasl_scram` and `iam` (default: the system roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// SCRAM user name (`sasl_scram`).
    #[serde(default)]
    pub sasl_username: Option<String>,
    /// SCRAM password (`sasl_scram`); write `${ENV_VAR}` here. Never logged.
    #[serde(default)]
    pub sasl_password: Option<String>,
    /// Where `sasl_password` came from when it was a reference: fetched again when the broker refuses it.
    #[serde(skip)]
    pub sasl_password_ref: Option<super::secrets::SecretRef>,
    /// AWS region of the MSK cluster (`iam`); default: the AWS default chain's region.
    #[serde(default)]
    pub region: Option<String>,
    /// Seconds a metadata, admin or offsets-topic request may take (default 30).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
}

/// Settings for the topics binlake creates (existing topics are used as they are).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    /// Partitions of a new table topic (Debezium `topic.creation.default.partitions`; default 1).
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Replication factor of new topics; -1 (default) takes the broker's default.
    #[serde(default = "default_replication")]
    pub replication_factor: i32,
    /// `cleanup.policy` of new table topics: `delete` (default) or `compact`.
    #[serde(default = "default_cleanup")]
    pub cleanup_policy: String,
}

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            partitions: default_partitions(),
            replication_factor: default_replication(),
            cleanup_policy: default_cleanup(),
        }
    }
}

/// Producer tuning (librdkafka names in parentheses).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerSettings {
    /// `none`, `gzip`, `snappy`, `lz4` (default) or `zstd` (`compression.type`).
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Ms to wait for more records before sending a batch (`linger.ms`; default 5).
    #[serde(default = "default_linger")]
    pub linger_ms: u64,
    /// Bytes per batch of one partition (`batch.size`; default 1 MiB).
    #[serde(default = "default_batch_size")]
    pub batch_size: u64,
    /// Largest record binlake will send (`message.max.bytes`; default 1 MiB, MSK's default
    /// `max.message.bytes`). A larger record is a definite error naming the table and key.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
    /// MiB of records waiting for the broker before the binlog reader is held back
    /// (`queue.buffering.max.kbytes`; default 64).
    #[serde(default = "default_buffer_mb")]
    pub buffer_max_mb: u64,
    /// Ms between writes of the source position to the offsets topic (default 1000).
    #[serde(default = "default_offset_flush")]
    pub offset_flush_interval_ms: u64,
    /// Idempotent producer (`enable.idempotence`; default true, as MSK supports): per-key order and no
    /// duplicates across retries. `false` keeps order with one request in flight per broker instead, for
    /// brokers whose idempotence support is broken (see README).
    #[serde(default = "yes")]
    pub idempotence: bool,
}

impl Default for ProducerSettings {
    fn default() -> Self {
        ProducerSettings {
            compression: default_compression(),
            linger_ms: default_linger(),
            batch_size: default_batch_size(),
            max_message_bytes: default_max_message_bytes(),
            buffer_max_mb: default_buffer_mb(),
            offset_flush_interval_ms: default_offset_flush(),
            idempotence: true,
        }
    }
}

/// The lake sink's consumer (`binlake sink`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSettings {
    /// Consumer group shared by every sink process of this connector (default
    /// `<topic_prefix>.binlake.lake`). Its committed offsets only serve lag tools: the position each
    /// partition resumes from is the one recorded in the Delta table.
    #[serde(default)]
    pub group_id: Option<String>,
    /// A record that cannot be read goes to `<topic_prefix>.binlake.dlq` with the error in its headers
    /// and the partition goes on (default true); `false` stops the sink with a definite error instead.
    #[serde(default = "yes")]
    pub dlq: bool,
    /// Seconds to wait for a table's schema record on the schema-change topic before the record that
    /// needs it counts as unreadable (default 60).
    #[serde(default = "default_schema_wait")]
    pub schema_wait_secs: u64,
    /// Ms between checks for new table topics (`topic.metadata.refresh.interval.ms`; default 10000).
    #[serde(default = "default_topic_refresh")]
    pub topic_refresh_ms: u64,
    /// A sink process silent this long is dropped from the group and its partitions go to the others
    /// (`session.timeout.ms`; default 10000, as Kafka Connect's workers: a killed task's tables resume
    /// within seconds, not the 45 s of librdkafka's default). Heartbeats go every third of it.
    #[serde(default = "default_session_timeout")]
    pub session_timeout_ms: u64,
    /// The longest a sink process may spend between reads (a Delta commit) before it is dropped from the
    /// group; also how long a rebalance waits for members to rejoin (`max.poll.interval.ms`; default
    /// 300000, as Kafka's). Lower it to bound how long partitions can stay unowned when a member fails
    /// to rejoin a rebalance; keep it above the slowest commit.
    #[serde(default = "default_max_poll_interval")]
    pub max_poll_interval_ms: u64,
    /// The longest the broker holds a fetch that found no new records (`fetch.wait.max.ms`; default 50).
    /// librdkafka's 500 keeps a partition started during such a wait (every partition, at start-up and
    /// after a rebalance) idle until the wait ends: measured here, about a second before its first record.
    #[serde(default = "default_fetch_wait_max")]
    pub fetch_wait_max_ms: u64,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            group_id: None,
            dlq: true,
            schema_wait_secs: default_schema_wait(),
            topic_refresh_ms: default_topic_refresh(),
            session_timeout_ms: default_session_timeout(),
            max_poll_interval_ms: default_max_poll_interval(),
            fetch_wait_max_ms: default_fetch_wait_max(),
        }
    }
}

fn default_schema_wait() -> u64 {
    60
}
fn default_topic_refresh() -> u64 {
    10_000
}
fn default_session_timeout() -> u64 {
    10_000
}
fn default_fetch_wait_max() -> u64 {
    50
}
fn default_max_poll_interval() -> u64 {
    300_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    #[default]
    Debezium,
    Binlake,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DecimalMode {
    #[default]
    Precise,
    String,
    Double,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BigintUnsignedMode {
    #[default]
    Long,
    Precise,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    #[default]
    Plaintext,
    Tls,
    SaslScram,
    Iam,
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic_prefix", &self.topic_prefix)
            .field("encoding", &self.encoding)
            .field("security", &self.security)
            .field("sasl_username", &self.sasl_username)
            .field(
                "sasl_password",
                &self.sasl_password.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

fn yes() -> bool {
    true
}
fn default_request_timeout() -> u64 {
    30
}
fn default_partitions() -> i32 {
    1
}
fn default_replication() -> i32 {
    -1
}
fn default_cleanup() -> String {
    "delete".into()
}
fn default_compression() -> String {
    "lz4".into()
}
fn default_linger() -> u64 {
    5
}
fn default_batch_size() -> u64 {
    1 << 20
}
fn default_max_message_bytes() -> u64 {
    1 << 20
}
fn default_buffer_mb() -> u64 {
    64
}
fn default_offset_flush() -> u64 {
    1000
}

/// Kafka's legal topic characters; a prefix must use only these (names from MySQL are encoded).
pub fn is_topic_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && s != "."
        && s != ".."
}

impl KafkaConfig {
    /// The topic prefix in force: `topic_prefix`, or the connector name.
    pub fn prefix<'a>(&'a self, connector: &'a str) -> &'a str {
        self.topic_prefix.as_deref().unwrap_or(connector)
    }

    /// The lake sink's consumer group.
    pub fn group_id(&self, connector: &str) -> String {
        self.consumer
            .group_id
            .clone()
            .unwrap_or_else(|| format!("{}.binlake.lake", self.prefix(connector)))
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(invalid("kafka.brokers", "list at least one host:port"));
        }
        for b in self.brokers.split(',') {
            let b = b.trim();
            let port = b.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok());
            if port.is_none() {
                return Err(invalid("kafka.brokers", format!("`{b}` is not host:port")));
            }
        }
        if let Some(p) = &self.topic_prefix {
            if !is_topic_safe(p) {
                return Err(invalid(
                    "kafka.topic_prefix",
                    "use ASCII letters, digits, '.', '_' and '-' only (at most 200)",
                ));
            }
        }
        if self.schemas_enable && self.encoding == Encoding::Binlake {
            return Err(invalid(
                "kafka.schemas_enable",
                "the schema block belongs to the debezium encoding; set encoding = \"debezium\" or drop schemas_enable",
            ));
        }
        if self.topics.partitions < 1 {
            return Err(invalid("kafka.topics.partitions", "must be at least 1"));
        }
        if self.topics.replication_factor == 0 || self.topics.replication_factor < -1 {
            return Err(invalid(
                "kafka.topics.replication_factor",
                "must be -1 (broker default) or at least 1",
            ));
        }
        if !matches!(self.topics.cleanup_policy.as_str(), "delete" | "compact") {
            return Err(invalid(
                "kafka.topics.cleanup_policy",
                "must be `delete` or `compact`",
            ));
        }
        if !matches!(
            self.producer.compression.as_str(),
            "none" | "gzip" | "snappy" | "lz4" | "zstd"
        ) {
            return Err(invalid(
                "kafka.producer.compression",
                "must be one of none, gzip, snappy, lz4, zstd",
            ));
        }
        // librdkafka's own limits, checked here so the error names binlake's key
        if !(1000..=1_000_000_000).contains(&self.producer.max_message_bytes) {
            return Err(invalid(
                "kafka.producer.max_message_bytes",
                "must be between 1000 and 1000000000",
            ));
        }
        if self.producer.buffer_max_mb == 0 || self.producer.buffer_max_mb > 2_000_000 {
            return Err(invalid(
                "kafka.producer.buffer_max_mb",
                "must be between 1 and 2000000",
            ));
        }
        if self.producer.batch_size == 0 || self.producer.batch_size > 2_147_483_647 {
            return Err(invalid(
                "kafka.producer.batch_size",
                "must be between 1 and 2^31-1",
            ));
        }
        if self.producer.linger_ms > 900_000 {
            return Err(invalid(
                "kafka.producer.linger_ms",
                "must be at most 900000",
            ));
        }
        if self.producer.offset_flush_interval_ms == 0 {
            return Err(invalid(
                "kafka.producer.offset_flush_interval_ms",
                "must be at least 1",
            ));
        }
        if self.consumer.group_id.as_deref().is_some_and(str::is_empty) {
            return Err(invalid(
                "kafka.consumer.group_id",
                "must not be empty (leave it out for the default)",
            ));
        }
        if self.consumer.schema_wait_secs == 0 {
            return Err(invalid(
                "kafka.consumer.schema_wait_secs",
                "must be at least 1",
            ));
        }
        if !(100..=3_600_000).contains(&self.consumer.topic_refresh_ms) {
            return Err(invalid(
                "kafka.consumer.topic_refresh_ms",
                "must be between 100 and 3600000",
            ));
        }
        if !(1..=10_000).contains(&self.consumer.fetch_wait_max_ms) {
            return Err(invalid(
                "kafka.consumer.fetch_wait_max_ms",
                "must be between 1 and 10000",
            ));
        }
        // the range brokers accept by default (group.min/max.session.timeout.ms)
        if !(6_000..=300_000).contains(&self.consumer.session_timeout_ms) {
            return Err(invalid(
                "kafka.consumer.session_timeout_ms",
                "must be between 6000 and 300000 (the brokers' default group limits)",
            ));
        }
        if !(self.consumer.session_timeout_ms..=86_400_000)
            .contains(&self.consumer.max_poll_interval_ms)
        {
            return Err(invalid(
                "kafka.consumer.max_poll_interval_ms",
                "must be at least session_timeout_ms and at most 86400000",
            ));
        }
        if self.request_timeout_secs == 0 {
            return Err(invalid("kafka.request_timeout_secs", "must be at least 1"));
        }
        if self.security == Security::SaslScram
            && (self.sasl_username.as_deref().unwrap_or("").is_empty()
                || self.sasl_password.as_deref().unwrap_or("").is_empty())
        {
            return Err(invalid(
                "kafka.sasl_username",
                "security = \"sasl_scram\" needs sasl_username and sasl_password (e.g. \"${KAFKA_PASSWORD}\")",
            ));
        }
        if let Some(ca) = &self.ca_file {
            if self.security == Security::Plaintext {
                return Err(invalid(
                    "kafka.ca_file",
                    "a CA file needs security = \"tls\", \"sasl_scram\" or \"iam\"",
                ));
            }
            if !ca.is_file() {
                return Err(invalid(
                    "kafka.ca_file",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        Ok(())
    }
}
