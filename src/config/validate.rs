//! Every value checked before anything connects, each error naming its key.

use super::{invalid, Config, ConfigError, TlsMode, VACUUM_RETENTION_FLOOR_HOURS};
use globset::Glob;

impl Config {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
        if let Some(signal) = &s.signal_table {
            if crate::event::TableId::parse(signal).is_none() {
                return Err(invalid(
                    "source.signal_table",
                    "must be written `database.table` (a name with `.` in backticks: `a.b`.t)",
                ));
            }
        }
        for (table, cols) in &s.keys {
            if crate::event::TableId::parse(table).is_none() {
                return Err(invalid(
                    &format!("source.keys.{table}"),
                    "table must be written `database.table` (a name with `.` in backticks: `a.b`.t)",
                ));
            }
            if cols.is_empty() {
                return Err(invalid(
                    &format!("source.keys.{table}"),
                    "list at least one key column",
                ));
            }
        }
        if s.snapshot.chunk_max_mb == 0 {
            return Err(invalid(
                "source.snapshot.chunk_max_mb",
                "must be at least 1",
            ));
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
        if lake.metadata_prefix.is_empty()
            || !lake
                .metadata_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(invalid(
                "lake.metadata_prefix",
                "use letters, digits and '_' only (Athena column names), e.g. \"_\" or \"_bl_\"",
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
        if lake.vacuum_retention_hours < VACUUM_RETENTION_FLOOR_HOURS && !lake.vacuum_force {
            return Err(invalid(
                "lake.vacuum_retention_hours",
                format!(
                    "{} h is below the {VACUUM_RETENTION_FLOOR_HOURS} h floor: vacuum could delete files that running \
                     readers (Athena, Spark, a time-travel query) still need; raise it, or set lake.vacuum_force = true \
                     if no reader can be older than that",
                    lake.vacuum_retention_hours
                ),
            ));
        }
        if lake.checkpoint_every == 0 {
            return Err(invalid("lake.checkpoint_every", "must be at least 1"));
        }
        if let Some(g) = &lake.glue {
            if !g
                .database_prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(invalid(
                    "lake.glue.database_prefix",
                    "use lower-case letters, digits and '_' only (Glue and Athena names)",
                ));
            }
        }
        for (table, spec) in &lake.partitions {
            let key = format!("lake.partitions.\"{table}\"");
            if crate::event::TableId::parse(table).is_none() || table.contains('*') {
                return Err(invalid(&key, "name one table as \"db.table\""));
            }
            if let Err(e) = crate::sinks::lake::partition::Partitioning::parse(spec) {
                return Err(invalid(&key, e));
            }
        }
        for (key, v) in [
            ("source.heartbeat_secs", s.heartbeat_secs),
            ("source.connect_timeout_secs", s.connect_timeout_secs),
            ("source.query_timeout_secs", s.query_timeout_secs),
            ("source.max_prepared_xa_mb", s.max_prepared_xa_mb),
            ("source.buffer_max_mb", s.buffer_max_mb),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        let tls = &s.tls;
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err(invalid(
                "source.tls.cert_file",
                "set cert_file and key_file together (client certificate and its key)",
            ));
        }
        if tls.mode == TlsMode::Disabled && (tls.ca_file.is_some() || tls.cert_file.is_some()) {
            return Err(invalid(
                "source.tls.mode",
                "is `disabled` but TLS files are set; use verify_ca or verify_identity to use them",
            ));
        }
        for (key, file) in [
            ("source.tls.ca_file", &tls.ca_file),
            ("source.tls.cert_file", &tls.cert_file),
            ("source.tls.key_file", &tls.key_file),
        ] {
            if let Some(f) = file {
                if !f.is_file() {
                    return Err(invalid(
                        key,
                        format!("{} is not a readable file", f.display()),
                    ));
                }
            }
        }
        if s.max_backoff_secs == 0 {
            return Err(invalid("source.max_backoff_secs", "must be at least 1"));
        }
        if let Some(k) = &self.kafka {
            k.validate()?;
        }
        if self.sink.kind == super::SinkKind::Kafka {
            self.kafka()?;
        }
        let filter = self.filter();
        self.quality
            .validate(&|t| filter.captures(&t.database, &t.table))?;
        self.alerts.validate()?;
        if self.source.auth == super::SourceAuth::Iam
            && matches!(self.source.tls.mode, TlsMode::Disabled | TlsMode::Preferred)
        {
            return Err(invalid(
                "source.auth",
                "\"iam\" sends a token in clear text and RDS accepts it only over TLS: set source.tls.mode = \"required\" \
                 (or verify_ca / verify_identity with the RDS CA bundle)",
            ));
        }
        let ha = &self.ha;
        if ha.renew_secs == 0 || ha.renew_secs * 3 > ha.takeover_secs {
            return Err(invalid(
                "ha.renew_secs",
                format!(
                    "must be at least 1 and at most a third of ha.takeover_secs ({}), so a live leader is \
                     never taken for dead",
                    ha.takeover_secs
                ),
            ));
        }
        Ok(())
    }

    /// The `[kafka]` section, which `sink.kind = "kafka"` (or `--sink kafka`) needs.
    pub fn kafka(&self) -> Result<&super::kafka::KafkaConfig, ConfigError> {
        self.kafka.as_ref().ok_or_else(|| {
            invalid(
                "kafka",
                "the kafka sink needs a [kafka] section with at least `brokers = \"host:port\"`",
            )
        })
    }
}

/// The rules a section declares with `validator` attributes, reported as binlake's config errors
/// (`alerts.queue: must be between 1 and 100000`); the first failing field, by name, is named.
pub(super) fn declared(section: &str, v: &impl validator::Validate) -> Result<(), ConfigError> {
    let Err(errors) = v.validate() else {
        return Ok(());
    };
    let fields = errors.field_errors();
    let mut names: Vec<_> = fields.keys().collect();
    names.sort();
    let Some(field) = names.first() else {
        return Err(invalid(section, errors.to_string()));
    };
    let message = fields[*field]
        .first()
        .map(|e| match (&e.message, e.code.as_ref()) {
            (Some(m), _) => m.to_string(),
            (None, "range") => match (e.params.get("min"), e.params.get("max")) {
                (Some(min), Some(max)) => format!("must be between {min} and {max}"),
                (Some(min), None) => format!("must be at least {min}"),
                (None, Some(max)) => format!("must be at most {max}"),
                (None, None) => "out of range".into(),
            },
            (None, code) => format!("fails the `{code}` rule"),
        })
        .unwrap_or_default();
    Err(invalid(&format!("{section}.{field}"), message))
}
