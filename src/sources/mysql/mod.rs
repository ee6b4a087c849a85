//! The MySQL/MariaDB source: preflight checks, consistent snapshot, binlog stream, schema and type decoding.

pub mod behind;
pub mod binlog;
pub mod charset;
pub mod chunks;
pub mod connect;
pub mod ddl;
pub mod decode;
pub mod defaults;
pub mod gtid;
pub mod iam_auth;
pub mod offline;
pub mod parity;
pub mod preflight;
pub mod retype;
pub mod runner;
pub mod schema;
pub mod signal;
pub mod snapshot;
pub mod stream;
pub mod xa;

pub use connect::{connect, connection_opts, timed};

use crate::event::{BinlogPosition, TableId};
use mysql_async::prelude::*;
use mysql_async::Conn;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("MySQL error: {0}")]
    Mysql(#[from] mysql_async::Error),
    /// `source.auth = "iam"` could not make a token (no region, no credentials).
    #[error("IAM database authentication: {detail}")]
    IamAuth { detail: String },
    /// The typed "needs re-snapshot" error: the resume position cannot be served any more.
    #[error(
        "cannot resume at binlog position {position}: {detail}. The changes after it are no longer on the server \
         (purged, or a different server), so the captured tables need a re-snapshot: {resnapshot} (or set \
         source.snapshot.mode = \"when_needed\" to snapshot them again while streaming); raise binlog retention \
         (binlog_expire_logs_seconds / expire_logs_days) so it does not recur"
    )]
    PositionPurged {
        position: BinlogPosition,
        /// How to re-snapshot with the sink in use (where that sink keeps its progress).
        resnapshot: String,
        detail: String,
    },
    #[error("cannot decode {table} column {detail}; binlake stops this stream rather than emit a wrong value")]
    Decode { table: TableId, detail: String },
    /// An event that may carry data and cannot be turned into changes: never skipped.
    #[error("binlog event at {position} cannot be streamed: {detail}")]
    UnreadableEvent {
        position: BinlogPosition,
        detail: String,
    },
    #[error("binlog is not readable at {position}: {detail}")]
    CorruptBinlog {
        position: BinlogPosition,
        detail: String,
    },
    #[error("{table} column `{column}` has type `{sql_type}`, which binlake does not support; exclude it with source.exclude_columns")]
    UnsupportedType {
        table: TableId,
        column: String,
        sql_type: String,
    },
    #[error(
        "schema of {table} in the binlog does not match information_schema and the TABLE_MAP has no column names; \
         set binlog_row_metadata=FULL so every row carries its own column names"
    )]
    SchemaUnknown { table: TableId },
    /// A captured table's rows changed in a way the binlog does not carry as rows (renamed in from
    /// another name, partitions dropped or exchanged): it cannot be followed from here without a
    /// snapshot of it.
    #[error(
        "{table} needs a snapshot at binlog position {position}: {detail}. binlake stops rather than let the \
         lake differ from MySQL; re-snapshot the table (see the README, \"Re-snapshot\")"
    )]
    NeedsSnapshot {
        table: TableId,
        position: BinlogPosition,
        detail: String,
    },
    #[error("a table changed during the snapshot ({0}); retrying the snapshot session")]
    SnapshotRetry(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("preflight failed: {0}")]
    Preflight(String),
    #[error("downstream stage stopped")]
    DownstreamClosed,
    /// A network read or connect that did not complete in time (a half-open connection, a frozen
    /// server): transient, the stream reconnects from its last checkpoint.
    #[error("{what}: no answer within {secs} s")]
    Timeout { what: String, secs: u64 },
    /// TLS could not be established or the server's certificate was refused: fixing it needs an operator.
    #[error("TLS to {server}: {detail}")]
    Tls { server: String, detail: String },
}

impl SourceError {
    /// Transient errors are retried with backoff; everything else stops the source with its message.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Mysql(e) => mysql_is_transient(e),
            SourceError::SnapshotRetry(_) | SourceError::Timeout { .. } => true,
            _ => false,
        }
    }
}

fn mysql_is_transient(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Io(_) => connect::tls_failure(e).is_none(),
        mysql_async::Error::Driver(d) => matches!(
            d,
            mysql_async::DriverError::ConnectionClosed | mysql_async::DriverError::PoolDisconnected
        ),
        // too many connections, lock wait timeout, deadlock, query interrupted, server shutdown, connection killed
        mysql_async::Error::Server(s) => matches!(
            s.code,
            1040 | 1053 | 1205 | 1213 | 1317 | 1927 | 2006 | 2013
        ),
        _ => false,
    }
}

/// True when the server refused a binlog dump because it cannot serve the requested position
/// (ER_MASTER_FATAL_ERROR_READING_BINLOG: file or GTID purged, unknown file, GTID not in its binlog).
pub fn is_purged_error(e: &mysql_async::ServerError) -> bool {
    e.code == 1236
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    MySql,
}

#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub flavor: Flavor,
    pub version: (u16, u16, u16),
    pub version_text: String,
    pub server_id: u32,
}

impl ServerInfo {
    pub async fn read(conn: &mut Conn) -> Result<Self, SourceError> {
        let (version_text, server_id): (String, u32) = conn
            .query_first("SELECT VERSION(), @@server_id")
            .await?
            .unwrap_or_default();
        let flavor = if version_text.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        Ok(ServerInfo {
            flavor,
            version: conn.server_version(),
            version_text,
            server_id,
        })
    }
}

/// The server's current binlog end position, from `SHOW MASTER STATUS` (`SHOW BINARY LOG STATUS` on MySQL ≥ 8.4).
pub async fn current_position(
    conn: &mut Conn,
    info: &ServerInfo,
) -> Result<Option<BinlogPosition>, SourceError> {
    let sql = if info.flavor == Flavor::MySql && info.version >= (8, 4, 0) {
        "SHOW BINARY LOG STATUS"
    } else {
        "SHOW MASTER STATUS"
    };
    let row: Option<mysql_async::Row> = conn.query_first(sql).await?;
    Ok(row.map(|r| {
        let file: String = r.get(0).unwrap_or_default();
        let pos: u64 = r.get(1).unwrap_or_default();
        BinlogPosition::new(file, pos)
    }))
}

/// Binlog files still on the server.
pub async fn binlog_files(conn: &mut Conn) -> Result<Vec<String>, SourceError> {
    let rows: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await?;
    Ok(rows
        .into_iter()
        .map(|r| r.get::<String, _>(0).unwrap_or_default())
        .collect())
}

/// Who the source is to the server, and what its errors tell an operator to do.
#[derive(Debug, Clone)]
pub struct StreamIdentity {
    /// Report host of the replication connection (see `report_host`).
    pub report_host: String,
    /// How to start over with a fresh snapshot, for the sink that keeps the progress.
    pub resnapshot: String,
    /// The sink keeps rows handed over past its stored checkpoint (Kafka), so a snapshot interrupted
    /// mid-chunk leaves rows out there that a later session must supersede.
    pub sink_keeps_unsaved_rows: bool,
}

impl StreamIdentity {
    pub fn new(connector: &str, resnapshot: impl Into<String>) -> Self {
        StreamIdentity {
            report_host: report_host(connector),
            resnapshot: resnapshot.into(),
            sink_keeps_unsaved_rows: false,
        }
    }
}

/// The report host binlake registers its replication connection with (`SHOW SLAVE HOSTS` lists it), so
/// preflight can tell this connector's own leftover connection from another replica using the same id.
pub fn report_host(connector: &str) -> String {
    // the server keeps at most 60 characters of it
    format!("binlake-{connector}").chars().take(60).collect()
}
