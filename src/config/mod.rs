//! Connector configuration: one TOML file, `${VAR}` / `${VAR:-default}` interpolation from the environment
//! (env.rs), unknown keys rejected, every value validated before anything connects (validate.rs).

pub mod alerts;
mod env;
mod filter;
pub mod hours;
pub mod kafka;
pub mod quality;
mod quality_table;
pub mod secrets;
mod validate;

pub use env::interpolate;
use env::{interpolate_table, redact_secret_lines};
pub use filter::{for_table, TableFilter};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("config key `{key}`: environment variable `{var}` is not set (use `${{{var}:-default}}` for a default)")]
    MissingEnv { key: String, var: String },
    #[error("--config env:{var}: environment variable `{var}` is not set or not UTF-8; it must hold the whole TOML config")]
    MissingConfigEnv { var: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Connector name; names the state file and appears in logs and metrics.
    pub name: String,
    pub source: SourceConfig,
    #[serde(default)]
    pub sink: SinkConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub lake: LakeConfig,
    /// Brokers, topics and encodings for `[sink] kind = "kafka"` (and `binlake sink`).
    #[serde(default)]
    pub kafka: Option<kafka::KafkaConfig>,
    #[serde(default)]
    pub observe: ObserveConfig,
    /// Expectations checked on every batch before the lake merges it (`[[quality.expect]]`).
    #[serde(default)]
    pub quality: quality::QualityConfig,
    /// Slack and webhook alerts for quality failures and pipeline health.
    #[serde(default)]
    pub alerts: alerts::AlertsConfig,
    /// Several `binlake run` tasks of one connector, one active (`src/ha.rs`).
    #[serde(default)]
    pub ha: HaConfig,
}

/// How binlake logs in to MySQL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceAuth {
    #[default]
    Password,
    Iam,
}

/// `[ha]`: a lease next to the lake (`<lake.root>/_binlake/ha/<connector>/`) elects one active task; the
/// others wait as standbys; every Delta commit is fenced by the leader's epoch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaConfig {
    /// Default false: one task, no lease.
    #[serde(default)]
    pub enabled: bool,
    /// A standby takes over after the leader's heartbeat stood still this long (default 30).
    #[serde(default = "default_takeover_secs")]
    pub takeover_secs: u64,
    /// The leader renews its heartbeat this often; at most a third of `takeover_secs` (default 5).
    #[serde(default = "default_renew_secs")]
    pub renew_secs: u64,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            enabled: false,
            takeover_secs: default_takeover_secs(),
            renew_secs: default_renew_secs(),
        }
    }
}

fn default_takeover_secs() -> u64 {
    30
}
fn default_renew_secs() -> u64 {
    5
}

/// Where change events go; `binlake run --sink` overrides `kind`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// `lake` (default: Delta tables under `lake.root`, exactly once), `kafka` (Debezium-compatible
    /// topics, settings in `[kafka]`) or `stdout` (JSON lines, checkpoint in `state.dir`).
    #[serde(default)]
    pub kind: SinkKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// Delta tables under `lake.root`, exactly once (direct mode: binlog → lake in one process).
    #[default]
    Lake,
    /// One Debezium-envelope JSON line per event on stdout; checkpoint in `state.dir`.
    Stdout,
    /// Debezium-compatible topics on Kafka / Amazon MSK (`[kafka]`); progress in the offsets topic.
    Kafka,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserveConfig {
    /// Address for `/metrics`, `/healthz` and `/readyz` (default `127.0.0.1:9464`; `""` turns it off).
    #[serde(default = "default_listen")]
    pub listen: String,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        ObserveConfig {
            listen: default_listen(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:9464".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// Local directory or `s3://bucket/prefix`; tables live at `<root>/<db>/<table>` (default `./lake`).
    #[serde(default = "default_lake_root")]
    pub root: String,
    /// Flush a batch at this many buffered changes (default 100000).
    #[serde(default = "default_flush_rows")]
    pub flush_max_rows: usize,
    /// … or at this many buffered bytes, estimated (default 32 MiB).
    #[serde(default = "default_flush_bytes")]
    pub flush_max_bytes: usize,
    /// … or when the oldest buffered change is this old (default 1000 ms).
    #[serde(default = "default_flush_interval")]
    pub flush_interval_ms: u64,
    /// Keep deleted rows with `_deleted = true` instead of removing them (default false).
    #[serde(default)]
    pub soft_delete: bool,
    /// Starts the names of binlake's own columns (`_op`, `_seq`, `_source_ts`, `_ingested_at`, `_deleted`,
    /// the partition column); default `_`. Fixed when a table is created.
    #[serde(default = "default_metadata_prefix")]
    pub metadata_prefix: String,
    /// Write a Delta checkpoint every this many commits (default 10).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u32,
    /// Compact small files and vacuum old ones every this many seconds while running (default 3600; 0 = off).
    #[serde(default = "default_maintain_interval")]
    pub maintain_interval_secs: u64,
    /// Size in MiB at which MERGE and append start a new file (default 4). Small files keep the rewrite
    /// of a corrected row cheap (copy-on-write); set when a table is created.
    #[serde(default = "default_write_file_mb")]
    pub write_file_mb: u64,
    /// Target size of compacted files in MiB (default 128).
    #[serde(default = "default_target_file_mb")]
    pub target_file_mb: u64,
    /// Vacuum keeps unreferenced files this many hours for readers of older versions (default 168, also
    /// the floor: a shorter retention can delete files that running queries still read).
    #[serde(default = "default_vacuum_retention")]
    pub vacuum_retention_hours: u64,
    /// Allow `vacuum_retention_hours` below the 168 h floor (default false); the config twin of
    /// `binlake maintain --force`.
    #[serde(default)]
    pub vacuum_force: bool,
    /// Partitioning per table, `"db.table" = "day(column)"` (or `month(…)`, `year(…)`) over a DATE,
    /// DATETIME or TIMESTAMP column; unpartitioned when absent. Fixed when the Delta table is created.
    #[serde(default)]
    pub partitions: std::collections::BTreeMap<String, String>,
    /// S3 settings; credentials come from the AWS default chain (env, profile, ECS task role, IMDS).
    #[serde(default)]
    pub s3: Option<S3Config>,
    /// Register every table in AWS Glue (for Athena); off when absent.
    #[serde(default)]
    pub glue: Option<GlueConfig>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GlueConfig {
    /// Glue database = this prefix + the MySQL database name, lower-cased (default: no prefix).
    #[serde(default)]
    pub database_prefix: String,
    /// Endpoint override (e.g. a local moto server).
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint override for S3-compatible stores (e.g. `http://127.0.0.1:5000`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl Default for LakeConfig {
    fn default() -> Self {
        LakeConfig {
            root: default_lake_root(),
            flush_max_rows: default_flush_rows(),
            flush_max_bytes: default_flush_bytes(),
            flush_interval_ms: default_flush_interval(),
            soft_delete: false,
            metadata_prefix: default_metadata_prefix(),
            checkpoint_every: default_checkpoint_every(),
            maintain_interval_secs: default_maintain_interval(),
            target_file_mb: default_target_file_mb(),
            write_file_mb: default_write_file_mb(),
            vacuum_retention_hours: default_vacuum_retention(),
            vacuum_force: false,
            partitions: Default::default(),
            s3: None,
            glue: None,
        }
    }
}

fn default_metadata_prefix() -> String {
    "_".into()
}
fn default_lake_root() -> String {
    "./lake".into()
}
fn default_flush_rows() -> usize {
    100_000
}
fn default_flush_bytes() -> usize {
    32 << 20
}
fn default_flush_interval() -> u64 {
    1000
}
fn default_checkpoint_every() -> u32 {
    10
}
fn default_maintain_interval() -> u64 {
    3600
}
fn default_write_file_mb() -> u64 {
    4
}
fn default_target_file_mb() -> u64 {
    128
}
/// Delta's default retention, and the shortest binlake accepts without `--force` / `lake.vacuum_force`.
pub const VACUUM_RETENTION_FLOOR_HOURS: u64 = 168;

fn default_vacuum_retention() -> u64 {
    VACUUM_RETENTION_FLOOR_HOURS
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// MySQL/MariaDB host (default 127.0.0.1).
    #[serde(default = "default_host")]
    pub host: String,
    /// Port (default 3306).
    #[serde(default = "default_port")]
    pub port: u16,
    pub user: String,
    /// Password; write `${ENV_VAR}`, `secretsmanager:<name or ARN>[#json-key]` or `file:<path>` here
    /// rather than the secret itself (`Config::resolve_secrets`). Never logged.
    #[serde(default)]
    pub password: String,
    /// Where `password` came from when it was a reference: fetched again when the server refuses it.
    #[serde(skip)]
    pub password_ref: Option<secrets::SecretRef>,
    /// `password` (default) or `iam`: RDS/Aurora IAM database authentication with a token signed from
    /// the AWS default credential chain for each connection (needs `tls.mode` required or stricter).
    #[serde(default)]
    pub auth: SourceAuth,
    /// Region of the RDS/Aurora instance for `auth = "iam"` (default: the AWS chain's, e.g. AWS_REGION).
    #[serde(default)]
    pub aws_region: Option<String>,
    /// Server id binlake registers with; must differ from the server's and every replica's (default 5401).
    #[serde(default = "default_server_id")]
    pub server_id: u32,
    /// Tables to capture as `database.table` glob patterns (`stocks.*`).
    pub include: Vec<String>,
    /// Tables to leave out, same pattern syntax; wins over `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Columns to drop as `database.table.column` glob patterns.
    #[serde(default)]
    pub exclude_columns: Vec<String>,
    /// Key columns for tables without a primary key: `"db.table" = ["col", …]`.
    #[serde(default)]
    pub keys: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    /// Seconds between reconnect attempts grow from 1 up to this (default 30).
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: u64,
    /// Minimum binlog retention in hours that preflight accepts without a warning (default 24).
    #[serde(default = "default_min_retention")]
    pub min_binlog_retention_hours: u64,
    /// Most MiB of row changes one prepared, not yet committed XA transaction may hold (default 256); its
    /// rows wait in memory until `XA COMMIT`.
    #[serde(default = "default_max_prepared_xa_mb")]
    pub max_prepared_xa_mb: u64,
    /// The server sends a heartbeat on an idle replication connection every this many seconds (default
    /// 3); four periods without any event mean the connection is dead, and binlake reconnects.
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
    /// Seconds to establish a connection, TLS included (default 10).
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Seconds one query may take (a snapshot chunk, a schema lookup; default 600).
    #[serde(default = "default_query_timeout_secs")]
    pub query_timeout_secs: u64,
    /// TLS to the server (Debezium's `database.ssl.mode` values).
    #[serde(default)]
    pub tls: TlsConfig,
    /// MiB of change events buffered between the source and the sink (default 32); with the lake's
    /// `flush_max_bytes` it bounds the memory large rows can take.
    #[serde(default = "default_buffer_max_mb")]
    pub buffer_max_mb: u64,
    /// `database.table` of the signal table (none by default): a row inserted there with type
    /// `execute-snapshot` and data `{"data-collections": ["db.t", …]}` snapshots those tables again
    /// while the stream runs (`binlake snapshot` writes it). Debezium's signal table layout.
    #[serde(default)]
    pub signal_table: Option<String>,
}

impl SourceConfig {
    /// The signal table, when one is configured (validated before start).
    pub fn signal_table(&self) -> Option<crate::event::TableId> {
        self.signal_table
            .as_deref()
            .and_then(crate::event::TableId::parse)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain TCP.
    Disabled,
    /// TLS when the server offers it, without verifying its certificate; plain otherwise (default, as
    /// Debezium).
    #[default]
    Preferred,
    /// TLS or no connection; the certificate is not verified.
    Required,
    /// TLS with the server certificate verified against `ca_file` (or the system roots).
    VerifyCa,
    /// As `verify_ca`, and the certificate must name `source.host`.
    VerifyIdentity,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub mode: TlsMode,
    /// PEM file with the CA certificate(s) that sign the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and private key, for servers that require X.509 client auth.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("server_id", &self.server_id)
            .field("include", &self.include)
            .field("exclude", &self.exclude)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// Snapshot the captured tables on first start, then stream (default).
    #[default]
    Initial,
    /// Never snapshot: stream from the server's current position on first start.
    Never,
    /// As `initial`, and when the resume position is gone from the server (purged), stream from the
    /// current position and snapshot every captured table again while streaming, instead of stopping.
    WhenNeeded,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    #[serde(default)]
    pub mode: SnapshotMode,
    /// Rows per chunk; progress is checkpointed after every chunk (default 20000).
    #[serde(default = "default_chunk_size")]
    pub chunk_size: u32,
    /// … and after this many MiB of rows within a chunk (default 32), so wide rows stay bounded.
    #[serde(default = "default_chunk_max_mb")]
    pub chunk_max_mb: u64,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            mode: SnapshotMode::Initial,
            chunk_size: default_chunk_size(),
            chunk_max_mb: default_chunk_max_mb(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Directory for the checkpoint file `<name>.checkpoint.json` (default `./state`).
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: default_state_dir(),
        }
    }
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    3306
}
fn default_server_id() -> u32 {
    5401
}
fn default_max_backoff() -> u64 {
    30
}
fn default_min_retention() -> u64 {
    24
}
fn default_max_prepared_xa_mb() -> u64 {
    256
}
fn default_buffer_max_mb() -> u64 {
    32
}
fn default_heartbeat_secs() -> u64 {
    3
}
fn default_connect_timeout_secs() -> u64 {
    10
}
fn default_query_timeout_secs() -> u64 {
    600
}
fn default_chunk_size() -> u32 {
    20_000
}
fn default_chunk_max_mb() -> u64 {
    32
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("./state")
}

impl Config {
    /// Reads the config from a file, or with `env:NAME` from the environment variable NAME (a container
    /// gets its whole config that way, e.g. from a Terraform-rendered task definition).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        if let Some(var) = path.to_str().and_then(|p| p.strip_prefix("env:")) {
            let text = std::env::var(var).map_err(|_| ConfigError::MissingConfigEnv {
                var: var.to_string(),
            })?;
            return Self::parse(&text, path);
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message: redact_secret_lines(&e.to_string()),
                })?;
        let mut secrets = vec![];
        interpolate_table(&mut table, "", &mut secrets)?;
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                // serde quotes the offending value: never let that be a secret
                let mut message = e.into_inner().to_string();
                for secret in secrets.iter().filter(|s| !s.is_empty()) {
                    message = message.replace(secret.as_str(), "<redacted>");
                }
                ConfigError::Invalid { key, message }
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Replaces secret references (`secretsmanager:…`, `file:…`) in `source.password` and
    /// `kafka.sasl_password` by their values; before anything connects.
    pub async fn resolve_secrets(&mut self) -> Result<(), secrets::SecretError> {
        if let Some(r) = secrets::parse_ref(&self.source.password) {
            self.source.password = secrets::fetch("source.password", &r).await?;
            self.source.password_ref = Some(r);
        }
        if let Some(kafka) = self.kafka.as_mut() {
            if let Some(r) = kafka.sasl_password.as_deref().and_then(secrets::parse_ref) {
                kafka.sasl_password = Some(secrets::fetch("kafka.sasl_password", &r).await?);
                kafka.sasl_password_ref = Some(r);
            }
        }
        Ok(())
    }

    pub fn filter(&self) -> TableFilter {
        TableFilter::new(&self.source)
    }

    pub fn checkpoint_path(&self) -> PathBuf {
        self.state
            .dir
            .join(format!("{}.checkpoint.json", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    const MINIMAL: &str = r#"
name = "t"
[source]
user = "u"
include = ["stocks.*"]
"#;

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.source.port, 3306);
        assert_eq!(c.source.server_id, 5401);
        assert_eq!(c.source.snapshot.chunk_size, 20_000);
        assert_eq!(
            c.checkpoint_path(),
            PathBuf::from("./state/t.checkpoint.json")
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err =
            parse(&MINIMAL.replace("user = \"u\"", "user = \"u\"\nhots = \"x\"")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("source") && msg.contains("hots"), "{msg}");
    }

    #[test]
    fn env_interpolation_and_missing_var() {
        std::env::set_var("BINLAKE_TEST_PW", "s3cret");
        let c = parse(&MINIMAL.replace(
            "user = \"u\"",
            "user = \"u\"\npassword = \"${BINLAKE_TEST_PW}\"",
        ))
        .unwrap();
        assert_eq!(c.source.password, "s3cret");
        assert!(!format!("{:?}", c.source).contains("s3cret"));
        let err =
            parse(&MINIMAL.replace("user = \"u\"", "user = \"${BINLAKE_TEST_NOPE}\"")).unwrap_err();
        assert!(
            err.to_string().contains("source.user")
                && err.to_string().contains("BINLAKE_TEST_NOPE")
        );
        assert_eq!(
            interpolate("a${BINLAKE_TEST_NOPE:-d}$$", "k").unwrap(),
            "ad$"
        );
    }

    #[test]
    fn iam_auth_needs_tls_and_ha_bounds_are_checked() {
        let iam = MINIMAL.replace("user = \"u\"", "user = \"u\"\nauth = \"iam\"");
        let err = parse(&iam).unwrap_err().to_string();
        assert!(
            err.contains("source.auth") && err.contains("required"),
            "{err}"
        );
        let ok = parse(&format!("{iam}[source.tls]\nmode = \"required\"\n")).unwrap();
        assert_eq!(ok.source.auth, SourceAuth::Iam);
        let err = parse(&format!(
            "{MINIMAL}[ha]\nenabled = true\ntakeover_secs = 10\nrenew_secs = 5\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("ha.renew_secs"), "{err}");
        let ha = parse(&format!("{MINIMAL}[ha]\nenabled = true\n"))
            .unwrap()
            .ha;
        assert_eq!((ha.takeover_secs, ha.renew_secs), (30, 5));
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = parse(&MINIMAL.replace("include = [\"stocks.*\"]", "include = [\"stocks\"]"))
            .unwrap_err();
        assert!(err.to_string().contains("source.include"), "{err}");
        let err =
            parse(&MINIMAL.replace("user = \"u\"", "user = \"u\"\nserver_id = 0")).unwrap_err();
        assert!(err.to_string().contains("source.server_id"), "{err}");
        let err =
            parse(&MINIMAL.replace("user = \"u\"", "user = \"u\"\nport = \"x\"")).unwrap_err();
        assert!(err.to_string().contains("source.port"), "{err}");
    }

    #[test]
    fn errors_never_echo_a_secret() {
        std::env::set_var("BINLAKE_TEST_SECRET_PORT", "hunter2-very-secret");
        let err = parse(&MINIMAL.replace(
            "user = \"u\"",
            "user = \"u\"\nport = \"${BINLAKE_TEST_SECRET_PORT}\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("source.port"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        // a literal password in a value of the wrong type
        let err = parse(&MINIMAL.replace(
            "user = \"u\"",
            "user = \"u\"\npassword = \"pw-literal-123\"\nserver_id = \"pw-literal-123\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(!err.contains("pw-literal-123"), "{err}");
        // a syntax error on the password line
        let err = parse(&MINIMAL.replace(
            "user = \"u\"",
            "user = \"u\"\npassword = \"unterminated-secret-456",
        ))
        .unwrap_err()
        .to_string();
        assert!(!err.contains("unterminated-secret-456"), "{err}");
    }

    #[test]
    fn short_vacuum_retention_needs_force() {
        let err = parse(&format!("{MINIMAL}[lake]\nvacuum_retention_hours = 1\n")).unwrap_err();
        assert!(
            err.to_string().contains("lake.vacuum_retention_hours"),
            "{err}"
        );
        assert!(err.to_string().contains("vacuum_force"), "{err}");
        let c = parse(&format!(
            "{MINIMAL}[lake]\nvacuum_retention_hours = 1\nvacuum_force = true\n"
        ))
        .unwrap();
        assert_eq!(c.lake.vacuum_retention_hours, 1);
    }

    #[test]
    fn filter_include_exclude_columns() {
        let c = parse(&MINIMAL.replace(
            "include = [\"stocks.*\"]",
            "include = [\"stocks.*\"]\nexclude = [\"stocks.tmp_*\"]\nexclude_columns = [\"stocks.trades.note\"]",
        ))
        .unwrap();
        let f = c.filter();
        assert!(f.captures("stocks", "quotes"));
        assert!(!f.captures("stocks", "tmp_x"));
        assert!(!f.captures("other", "quotes"));
        assert!(f.drops_column("stocks", "trades", "note"));
        assert!(!f.drops_column("stocks", "trades", "price"));
    }

    #[test]
    fn declared_ranges_name_the_key_and_the_bounds() {
        let err = parse(&format!("{MINIMAL}[alerts]\nqueue = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`alerts.queue`") && err.contains("between 1 and 100000"),
            "{err}"
        );
        let err = parse(&format!(
            "{MINIMAL}[alerts.slack]\nwebhook_url = \"http://x/y\"\nmin_interval_ms = 90000\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`alerts.slack.min_interval_ms`") && err.contains("at most 60000"),
            "{err}"
        );
        let c = parse(&format!("{MINIMAL}[alerts]\nmax_lag_secs = 0\n")).unwrap();
        assert_eq!(c.alerts.max_lag_secs, 0);
        assert_eq!(c.quality.table_check_interval_secs, 300);
    }
}

#[cfg(test)]
mod kafka_consumer_tests {
    use super::*;

    fn sink(consumer: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "name = \"t\"\n[source]\nuser = \"u\"\ninclude = [\"stocks.*\"]\n[sink]\nkind = \"kafka\"\n\
             [kafka]\nbrokers = \"b:9092\"\n[kafka.consumer]\n{consumer}\n"
        );
        Config::parse(&text, Path::new("test.toml"))
    }

    #[test]
    fn fetch_wait_defaults_short_and_is_range_checked() {
        let c = sink("").unwrap();
        assert_eq!(c.kafka().unwrap().consumer.fetch_wait_max_ms, 50);
        let c = sink("fetch_wait_max_ms = 500").unwrap();
        assert_eq!(c.kafka().unwrap().consumer.fetch_wait_max_ms, 500);
        let err = sink("fetch_wait_max_ms = 0").unwrap_err().to_string();
        assert!(err.contains("kafka.consumer.fetch_wait_max_ms"), "{err}");
    }
}
