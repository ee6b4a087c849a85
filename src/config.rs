//! Connector configuration: one TOML file, `${VAR}` / `${VAR:-default}` interpolation from the environment,
//! unknown keys rejected, every value validated before anything connects.

use globset::{Glob, GlobMatcher};
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
    pub state: StateConfig,
    #[serde(default)]
    pub lake: LakeConfig,
    #[serde(default)]
    pub observe: ObserveConfig,
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
    /// … or at this many buffered bytes, estimated (default 64 MiB).
    #[serde(default = "default_flush_bytes")]
    pub flush_max_bytes: usize,
    /// … or when the oldest buffered change is this old (default 1000 ms).
    #[serde(default = "default_flush_interval")]
    pub flush_interval_ms: u64,
    /// Keep deleted rows with `_deleted = true` instead of removing them (default false).
    #[serde(default)]
    pub soft_delete: bool,
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
    /// Vacuum keeps unreferenced files this many hours for readers of older versions (default 168).
    #[serde(default = "default_vacuum_retention")]
    pub vacuum_retention_hours: u64,
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
            checkpoint_every: default_checkpoint_every(),
            maintain_interval_secs: default_maintain_interval(),
            target_file_mb: default_target_file_mb(),
            write_file_mb: default_write_file_mb(),
            vacuum_retention_hours: default_vacuum_retention(),
            partitions: Default::default(),
            s3: None,
            glue: None,
        }
    }
}

fn default_lake_root() -> String {
    "./lake".into()
}
fn default_flush_rows() -> usize {
    100_000
}
fn default_flush_bytes() -> usize {
    64 << 20
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
fn default_vacuum_retention() -> u64 {
    168
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
    /// Password; write `${ENV_VAR}` here rather than the secret itself. Never logged.
    #[serde(default)]
    pub password: String,
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    #[serde(default)]
    pub mode: SnapshotMode,
    /// Rows per chunk; progress is checkpointed after every chunk (default 20000).
    #[serde(default = "default_chunk_size")]
    pub chunk_size: u32,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            mode: SnapshotMode::Initial,
            chunk_size: default_chunk_size(),
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
fn default_chunk_size() -> u32 {
    20_000
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("./state")
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
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
                    message: e.to_string(),
                })?;
        interpolate_table(&mut table, "")?;
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                ConfigError::Invalid {
                    key,
                    message: e.into_inner().to_string(),
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid("name", "use letters, digits, '-' and '_' only"));
        }
        let s = &self.source;
        if s.host.is_empty() {
            return Err(invalid("source.host", "must not be empty"));
        }
        if s.user.is_empty() {
            return Err(invalid("source.user", "must not be empty"));
        }
        if s.server_id == 0 {
            return Err(invalid(
                "source.server_id",
                "0 is not a valid replica server id; pick a unique id ≥ 1",
            ));
        }
        if s.include.is_empty() {
            return Err(invalid(
                "source.include",
                "list at least one `database.table` pattern, e.g. \"stocks.*\"",
            ));
        }
        for (key, patterns, parts) in [
            ("source.include", &s.include, 2),
            ("source.exclude", &s.exclude, 2),
            ("source.exclude_columns", &s.exclude_columns, 3),
        ] {
            for p in patterns {
                if p.split('.').count() != parts {
                    let shape = if parts == 2 {
                        "database.table"
                    } else {
                        "database.table.column"
                    };
                    return Err(invalid(
                        key,
                        format!("pattern `{p}` must have the form `{shape}`"),
                    ));
                }
                Glob::new(p).map_err(|e| invalid(key, format!("pattern `{p}`: {e}")))?;
            }
        }
        for (table, cols) in &s.keys {
            if table.split('.').count() != 2 {
                return Err(invalid(
                    &format!("source.keys.{table}"),
                    "table must be written `database.table`",
                ));
            }
            if cols.is_empty() {
                return Err(invalid(
                    &format!("source.keys.{table}"),
                    "list at least one key column",
                ));
            }
        }
        if s.snapshot.chunk_size == 0 {
            return Err(invalid("source.snapshot.chunk_size", "must be at least 1"));
        }
        if !self.observe.listen.is_empty()
            && self.observe.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(invalid(
                "observe.listen",
                "use host:port, e.g. 0.0.0.0:9464, or \"\" to turn it off",
            ));
        }
        let lake = &self.lake;
        if lake.root.is_empty() {
            return Err(invalid("lake.root", "must not be empty"));
        }
        if lake.root.contains("://")
            && !lake.root.starts_with("s3://")
            && !lake.root.starts_with("file://")
        {
            return Err(invalid(
                "lake.root",
                "use a local path, file:// or s3://bucket/prefix",
            ));
        }
        if lake.flush_max_rows == 0 || lake.flush_max_bytes == 0 || lake.flush_interval_ms == 0 {
            return Err(invalid(
                "lake.flush_max_rows",
                "flush limits must be at least 1",
            ));
        }
        if lake.write_file_mb == 0 || lake.target_file_mb == 0 {
            return Err(invalid(
                "lake.write_file_mb",
                "file sizes must be at least 1 MiB",
            ));
        }
        if lake.checkpoint_every == 0 {
            return Err(invalid("lake.checkpoint_every", "must be at least 1"));
        }
        for (table, spec) in &lake.partitions {
            let key = format!("lake.partitions.\"{table}\"");
            if table.split('.').count() != 2 || table.contains('*') {
                return Err(invalid(&key, "name one table as \"db.table\""));
            }
            if let Err(e) = crate::lake::partition::Partitioning::parse(spec) {
                return Err(invalid(&key, e));
            }
        }
        if s.max_backoff_secs == 0 {
            return Err(invalid("source.max_backoff_secs", "must be at least 1"));
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

fn interpolate_table(table: &mut toml::Table, prefix: &str) -> Result<(), ConfigError> {
    for (k, v) in table.iter_mut() {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        interpolate_value(v, &key)?;
    }
    Ok(())
}

fn interpolate_value(v: &mut toml::Value, key: &str) -> Result<(), ConfigError> {
    match v {
        toml::Value::String(s) => *s = interpolate(s, key)?,
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{key}[{i}]"))?;
            }
        }
        toml::Value::Table(t) => interpolate_table(t, key)?,
        _ => {}
    }
    Ok(())
}

/// Replaces `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`.
pub fn interpolate(s: &str, key: &str) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| {
                invalid(
                    key,
                    "unterminated `${` (write `$$` for a literal dollar sign)",
                )
            })?;
            let expr = &body[..end];
            let (var, default) = match expr.split_once(":-") {
                Some((var, d)) => (var, Some(d)),
                None => (expr, None),
            };
            match (std::env::var(var), default) {
                (Ok(val), _) => out.push_str(&val),
                (Err(_), Some(d)) => out.push_str(d),
                (Err(_), None) => {
                    return Err(ConfigError::MissingEnv {
                        key: key.into(),
                        var: var.into(),
                    })
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Which tables and columns are captured.
#[derive(Debug, Clone)]
pub struct TableFilter {
    include: Vec<GlobMatcher>,
    exclude: Vec<GlobMatcher>,
    exclude_columns: Vec<GlobMatcher>,
}

impl TableFilter {
    fn new(s: &SourceConfig) -> Self {
        Self::from_patterns(&s.include, &s.exclude, &s.exclude_columns)
    }

    /// Invalid patterns are skipped; `Config::validate` rejects them before this is reached.
    pub fn from_patterns(
        include: &[String],
        exclude: &[String],
        exclude_columns: &[String],
    ) -> Self {
        let compile = |ps: &[String]| -> Vec<GlobMatcher> {
            ps.iter()
                .filter_map(|p| Glob::new(p).ok())
                .map(|g| g.compile_matcher())
                .collect()
        };
        TableFilter {
            include: compile(include),
            exclude: compile(exclude),
            exclude_columns: compile(exclude_columns),
        }
    }

    pub fn captures(&self, database: &str, table: &str) -> bool {
        let name = format!("{database}.{table}");
        self.include.iter().any(|g| g.is_match(&name))
            && !self.exclude.iter().any(|g| g.is_match(&name))
    }

    pub fn drops_column(&self, database: &str, table: &str, column: &str) -> bool {
        if self.exclude_columns.is_empty() {
            return false;
        }
        let name = format!("{database}.{table}.{column}");
        self.exclude_columns.iter().any(|g| g.is_match(&name))
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
}
