//! Preflight: verifies, before anything streams, that the server and the binlake user can deliver a
//! lossless change stream. One line per check, with the fix for each failure.

use super::schema::load_tables;
use super::{binlog_files, connect, Flavor, ServerInfo, SourceError};
use crate::config::Config;
use crate::event::progress::Checkpoint;
use mysql_async::prelude::*;
use mysql_async::Conn;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        write!(f, "{tag} {:<22} {}", self.name, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n     fix: {fix}")?;
        }
        Ok(())
    }
}

pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    pub fn failures(&self) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .collect()
    }
}

fn ok(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Ok,
        detail: detail.into(),
        fix: None,
    }
}
fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}
fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Warn,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

async fn global(conn: &mut Conn, var: &str) -> Result<Option<String>, SourceError> {
    let row: Option<(String, String)> = conn
        .exec_first("SHOW GLOBAL VARIABLES WHERE Variable_name = ?", (var,))
        .await?;
    Ok(row.map(|(_, v)| v))
}

/// Runs every check. A connection failure is itself reported as a failed check.
pub async fn run(
    config: &Config,
    checkpoint: Option<&Checkpoint>,
    identity: &super::StreamIdentity,
) -> Report {
    let mut checks = vec![];
    let src = &config.source;
    let mut conn = match connect(src).await {
        Ok(c) => {
            checks.push(ok(
                "connect",
                format!("{}@{}:{}", src.user, src.host, src.port),
            ));
            c
        }
        Err(e) => {
            let fix = match (&e, src.tls.mode) {
                (SourceError::Tls { .. }, _) => "fix source.tls (mode, ca_file) or the server's certificate",
                (_, crate::config::TlsMode::Disabled) => {
                    "check source.host/port/user/password; a server that requires TLS (require_secure_transport) \
                     refuses plain connections: set source.tls.mode to preferred or stronger"
                }
                _ => "check source.host/port/user/password and that the server accepts TCP connections",
            };
            checks.push(fail(
                "connect",
                format!("{}@{}:{}: {e}", src.user, src.host, src.port),
                fix,
            ));
            return Report { checks };
        }
    };
    if let Err(e) = checks_on(&mut conn, config, checkpoint, identity, &mut checks).await {
        checks.push(fail(
            "query",
            e.to_string(),
            "see the error above; the binlake user may lack privileges",
        ));
    }
    Report { checks }
}

async fn checks_on(
    conn: &mut Conn,
    config: &Config,
    checkpoint: Option<&Checkpoint>,
    identity: &super::StreamIdentity,
    checks: &mut Vec<Check>,
) -> Result<(), SourceError> {
    let info = ServerInfo::read(conn).await?;
    let mariadb = info.flavor == Flavor::MariaDb;
    checks.push(ok("server", info.version_text.clone()));
    let restart_hint = if mariadb {
        "in the [mariadbd] section of the server config"
    } else {
        "in the [mysqld] section of my.cnf"
    };

    let log_bin = global(conn, "log_bin").await?.unwrap_or_default();
    checks.push(if log_bin.eq_ignore_ascii_case("ON") || log_bin == "1" {
        ok("log_bin", "ON")
    } else {
        fail(
            "log_bin",
            format!("is {log_bin:?}: the server writes no binlog"),
            format!("set log_bin=ON (and server_id) {restart_hint} and restart"),
        )
    });

    let format = global(conn, "binlog_format").await?.unwrap_or_default();
    checks.push(if format.eq_ignore_ascii_case("ROW") {
        ok("binlog_format", "ROW")
    } else {
        fail(
            "binlog_format",
            format!("is {format}: statement-based events carry no row values"),
            format!("SET GLOBAL binlog_format='ROW' and add binlog_format=ROW {restart_hint}"),
        )
    });

    let image = global(conn, "binlog_row_image")
        .await?
        .unwrap_or_else(|| "FULL".into());
    checks.push(if image.eq_ignore_ascii_case("FULL") {
        ok("binlog_row_image", "FULL")
    } else {
        fail(
            "binlog_row_image",
            format!("is {image}: updates and deletes would miss column values"),
            format!(
                "SET GLOBAL binlog_row_image='FULL' and add binlog_row_image=FULL {restart_hint}"
            ),
        )
    });

    let minimum = if mariadb {
        "MariaDB 10.5"
    } else {
        "MySQL 8.0.1"
    };
    checks.push(match global(conn, "binlog_row_metadata").await? {
        Some(v) if v.eq_ignore_ascii_case("FULL") => ok("binlog_row_metadata", "FULL"),
        Some(v) => fail(
            "binlog_row_metadata",
            format!("is {v}: rows would not carry column names, so an ALTER TABLE could shift values between columns"),
            format!("SET GLOBAL binlog_row_metadata='FULL' and add binlog_row_metadata=FULL {restart_hint}"),
        ),
        None => fail("binlog_row_metadata", "not supported by this server version", format!("upgrade to {minimum} or later")),
    });

    if !mariadb {
        let opts = global(conn, "binlog_row_value_options")
            .await?
            .unwrap_or_default();
        checks.push(if opts.to_ascii_uppercase().contains("PARTIAL_JSON") {
            warn(
                "binlog_row_value_options",
                "PARTIAL_JSON: JSON updates arrive as diffs, applied to the before image",
                "SET GLOBAL binlog_row_value_options='' for full JSON documents in every update",
            )
        } else {
            ok("binlog_row_value_options", "full JSON values")
        });
        let gtid_mode = global(conn, "gtid_mode")
            .await?
            .unwrap_or_else(|| "OFF".into());
        checks.push(if gtid_mode.eq_ignore_ascii_case("ON") {
            ok("gtid_mode", "ON (positions carry GTID sets)")
        } else {
            warn(
                "gtid_mode",
                format!("{gtid_mode}: positions are file/offset only"),
                "enable gtid_mode=ON and enforce_gtid_consistency=ON to survive failovers",
            )
        });
    } else {
        let pos = global(conn, "gtid_binlog_pos").await?.unwrap_or_default();
        checks.push(ok(
            "gtid",
            format!(
                "MariaDB GTID always on (gtid_binlog_pos {})",
                if pos.is_empty() { "empty" } else { &pos }
            ),
        ));
        if let Some(v) = global(conn, "log_bin_compress").await? {
            checks.push(if v.eq_ignore_ascii_case("ON") {
                fail(
                    "log_bin_compress",
                    "ON: compressed row events are not decoded",
                    "SET GLOBAL log_bin_compress=OFF",
                )
            } else {
                ok("log_bin_compress", "OFF")
            });
        }
    }

    let checksum = global(conn, "binlog_checksum")
        .await?
        .unwrap_or_else(|| "NONE".into());
    checks.push(ok(
        "binlog_checksum",
        format!("{checksum} (verified on every event when CRC32)"),
    ));

    // grants
    let grants: Vec<String> = conn.query("SHOW GRANTS").await?;
    let all = grants.join(" ").to_ascii_uppercase();
    let has = |p: &str| all.contains(p) || all.contains("ALL PRIVILEGES");
    let repl = has("REPLICATION SLAVE") || has("REPLICATION REPLICA");
    let client = has("REPLICATION CLIENT") || has("BINLOG MONITOR") || has("SUPER");
    checks.push(if repl && client {
        ok("grants", "replication and binlog monitoring granted")
    } else {
        let user = &config.source.user;
        fail(
            "grants",
            format!(
                "missing {}",
                [
                    (!repl).then_some("REPLICATION SLAVE"),
                    (!client).then_some("REPLICATION CLIENT")
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ")
            ),
            format!("GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '{user}'@'%'"),
        )
    });
    if !(mariadb || has("RELOAD") || has("BACKUP_ADMIN")) && checkpoint.is_none() {
        checks.push(warn(
            "snapshot lock",
            "no RELOAD grant: the snapshot cannot pin its binlog position with a momentary FLUSH TABLES WITH READ LOCK",
            format!("GRANT RELOAD ON *.* TO '{}'@'%'", config.source.user),
        ));
    }

    // server id
    checks.push(server_id_check(conn, config, &info, identity).await?);

    // retention
    let seconds = retention_secs(conn).await?;
    let hours = seconds / 3600.0;
    let min = config.source.min_binlog_retention_hours as f64;
    checks.push(if seconds == 0.0 {
        ok(
            "binlog retention",
            "binlogs are never expired automatically",
        )
    } else if hours < min {
        warn(
            "binlog retention",
            format!("{hours:.1} h: an outage longer than that forces a re-snapshot"),
            format!(
                "raise binlog_expire_logs_seconds to at least {}",
                (min * 3600.0) as u64
            ),
        )
    } else {
        ok("binlog retention", format!("{hours:.1} h"))
    });

    // resume position still on the server
    if let Some(cp) = checkpoint {
        let files = binlog_files(conn).await.unwrap_or_default();
        checks.push(if files.contains(&cp.position.file) {
            ok("resume position", format!("{} is on the server", cp.position))
        } else if let (Some(gtid), None) = (&cp.gtid, &cp.snapshot) {
            warn(
                "resume position",
                format!("{} is not on this server; will resume by GTID {gtid}", cp.position),
                "nothing if this server took over from the one the checkpoint came from; otherwise re-snapshot",
            )
        } else if config.source.snapshot.mode == crate::config::SnapshotMode::WhenNeeded {
            warn(
                "resume position",
                format!(
                    "{} was purged from the server; source.snapshot.mode = \"when_needed\": binlake streams \
                     from the current position and snapshots every captured table again while it runs",
                    cp.position
                ),
                "raise binlog retention so it does not recur",
            )
        } else {
            fail(
                "resume position",
                format!("{} was purged from the server: changes after it are lost", cp.position),
                format!(
                    "re-snapshot: {}; or set source.snapshot.mode = \"when_needed\" to snapshot again \
                     automatically while streaming",
                    identity.resnapshot
                ),
            )
        });
    }

    // tables
    let filter = config.filter();
    match load_tables(conn, &filter, &config.source.keys, None).await {
        Ok(tables) if tables.is_empty() => checks.push(fail(
            "tables",
            format!(
                "no base table matches source.include {:?}",
                config.source.include
            ),
            "check the patterns and that the binlake user has SELECT on those databases",
        )),
        Ok(tables) => {
            let keyless: Vec<String> = tables
                .values()
                .filter(|t| t.key.is_empty())
                .map(|t| t.id().to_string())
                .collect();
            checks.push(if keyless.is_empty() {
                ok("tables", format!("{} captured, each with a key: {}", tables.len(), tables.keys().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")))
            } else {
                fail(
                    "primary keys",
                    format!("no primary key: {}", keyless.join(", ")),
                    "add a primary key, or configure one under [source.keys] as \"db.table\" = [\"col\"]",
                )
            });
            let mut denied = vec![];
            for id in tables.keys() {
                let (db, t) = (&id.database, &id.table);
                let sql = format!(
                    "SELECT 1 FROM `{}`.`{}` LIMIT 0",
                    db.replace('`', "``"),
                    t.replace('`', "``")
                );
                if conn.query_drop(sql).await.is_err() {
                    denied.push(id.to_string());
                }
            }
            if !denied.is_empty() {
                checks.push(fail(
                    "select",
                    format!("cannot SELECT from {}", denied.join(", ")),
                    "GRANT SELECT on those tables to the binlake user",
                ));
            }
            partition_checks(config, &tables, checks);
            if config.sink.kind == crate::config::SinkKind::Lake {
                metadata_column_checks(config, &tables, checks);
            }
        }
        Err(e) => checks.push(fail(
            "tables",
            e.to_string(),
            "fix the table or exclude it (source.exclude / source.exclude_columns)",
        )),
    }
    Ok(())
}

/// No captured column may carry the name of one of binlake's own lake columns.
fn metadata_column_checks(
    config: &Config,
    tables: &std::collections::BTreeMap<crate::event::TableId, crate::event::TableSchema>,
    checks: &mut Vec<Check>,
) {
    let meta = crate::sinks::lake::metadata::MetadataColumns::new(
        &config.lake.metadata_prefix,
        config.lake.soft_delete,
    );
    let clashes: Vec<String> = tables
        .iter()
        .filter_map(|(id, schema)| {
            let partitioning = crate::config::for_table(&config.lake.partitions, id)
                .and_then(|spec| crate::sinks::lake::partition::Partitioning::parse(spec).ok())
                .map(|p| p.with_prefix(&config.lake.metadata_prefix));
            meta.check_source(schema, partitioning.as_ref())
                .err()
                .map(|e| e.to_string())
        })
        .collect();
    checks.push(if clashes.is_empty() {
        ok(
            "metadata columns",
            format!(
                "no captured column is named like binlake's `{}…` columns",
                config.lake.metadata_prefix
            ),
        )
    } else {
        fail(
            "metadata columns",
            clashes.join("; "),
            "set lake.metadata_prefix (e.g. \"_bl_\") before the tables are created",
        )
    });
}

/// Every `[lake.partitions]` entry names a captured table and one of its date or time columns.
fn partition_checks(
    config: &Config,
    tables: &std::collections::BTreeMap<crate::event::TableId, crate::event::TableSchema>,
    checks: &mut Vec<Check>,
) {
    for (table, spec) in &config.lake.partitions {
        let wanted = crate::event::TableId::parse(table);
        let Some(schema) = tables
            .iter()
            .find(|(id, _)| wanted.as_ref() == Some(*id))
            .map(|(_, s)| s)
        else {
            checks.push(fail(
                "partitions",
                format!("lake.partitions names {table}, which is not captured"),
                "fix the table name or source.include, or remove the entry",
            ));
            continue;
        };
        let checked = crate::sinks::lake::partition::Partitioning::parse(spec)
            .map_err(|e| e.to_string())
            .and_then(|p| p.check(schema).map_err(|e| e.to_string()));
        checks.push(match checked {
            Ok(()) => ok("partitions", format!("{table} by {spec}")),
            Err(e) => fail(
                "partitions",
                e,
                "name a DATE, DATETIME or TIMESTAMP column of the table",
            ),
        });
    }
}

/// Our server id must be free. A replica registered with it under this connector's report host is our own
/// previous process: the server lists its connection for a few seconds after that process exits (until the
/// dump thread's next write fails) and replaces it when we register again, so that is not a conflict. Any
/// other replica holding the id is.
async fn server_id_check(
    conn: &mut Conn,
    config: &Config,
    info: &ServerInfo,
    identity: &super::StreamIdentity,
) -> Result<Check, SourceError> {
    let sid = config.source.server_id;
    if sid == info.server_id {
        return Ok(fail(
            "server_id",
            format!("{sid} equals the server's own server_id"),
            "set source.server_id to an id no server or replica uses",
        ));
    }
    // Needs REPLICATION MASTER ADMIN on MariaDB ≥ 10.5; without it the server's own refusal is the check.
    let Ok(hosts) = conn.query::<mysql_async::Row, _>("SHOW SLAVE HOSTS").await else {
        return Ok(ok(
            "server_id",
            format!(
                "{sid} (server is {}; replicas not listable with this user's grants)",
                info.server_id
            ),
        ));
    };
    let ours = &identity.report_host;
    let holder = hosts
        .iter()
        .find(|r| r.get::<u32, _>(0) == Some(sid))
        .map(|r| r.get::<String, _>(1).unwrap_or_default());
    Ok(match holder {
        None => ok("server_id", format!("{sid} (server is {})", info.server_id)),
        Some(host) if &host == ours => ok(
            "server_id",
            format!("{sid} is still listed for this connector's previous process; the server replaces it"),
        ),
        Some(host) => fail(
            "server_id",
            format!(
                "{sid} is used by another connected replica (report host `{host}`, not this connector's `{ours}`)"
            ),
            "set source.server_id to an id no server or replica uses",
        ),
    })
}

/// How long the server keeps binlogs, in seconds (0: forever). MySQL 8 and MariaDB ≥ 10.6 have
/// `binlog_expire_logs_seconds`; older servers only `expire_logs_days`.
async fn retention_secs(conn: &mut Conn) -> Result<f64, SourceError> {
    Ok(match global(conn, "binlog_expire_logs_seconds").await? {
        Some(s) if s.parse::<f64>().unwrap_or(0.0) > 0.0 => s.parse::<f64>().unwrap_or(0.0),
        _ => {
            global(conn, "expire_logs_days")
                .await?
                .and_then(|d| d.parse::<f64>().ok())
                .unwrap_or(0.0)
                * 86_400.0
        }
    })
}

/// The server's binlog retention in hours (None: binlogs never expire), for the health watch.
pub async fn binlog_retention_hours(
    cfg: &crate::config::SourceConfig,
) -> Result<Option<f64>, SourceError> {
    let mut conn = connect(cfg).await?;
    let secs = retention_secs(&mut conn).await;
    conn.disconnect().await.ok();
    let secs = secs?;
    Ok((secs > 0.0).then_some(secs / 3600.0))
}
