//! The live binlog stream: connects as a replica, feeds events through the decoder, reconnects with
//! backoff on transient errors, and stops at a transaction boundary when cancelled.

use super::binlog::{BinlogDecoder, SchemaLookup};
use super::schema::load_tables;
use super::{backoff, connect, is_purged_error, Flavor, ServerInfo, SourceError};
use crate::config::{SourceConfig, TableFilter};
use crate::event::{SourceMessage, TableId, TableSchema};
use futures_util::StreamExt;
use mysql_async::prelude::*;
use mysql_async::BinlogStreamRequest;
use std::time::Duration;
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

/// How long a stop request waits for the open transaction to finish before leaving it for the replay.
const STOP_GRACE: Duration = Duration::from_secs(15);

pub struct LiveLookup<'a> {
    pub conn: mysql_async::Conn,
    pub filter: &'a TableFilter,
    pub keys: &'a std::collections::BTreeMap<String, Vec<String>>,
}

impl SchemaLookup for LiveLookup<'_> {
    async fn lookup(&mut self, id: &TableId) -> Result<Option<TableSchema>, SourceError> {
        Ok(
            load_tables(&mut self.conn, self.filter, self.keys, Some(id))
                .await?
                .remove(id),
        )
    }
}

pub async fn run_stream(
    cfg: &SourceConfig,
    filter: &TableFilter,
    decoder: &mut BinlogDecoder,
    tx: &Sender<SourceMessage>,
    cancel: &CancellationToken,
    checkpoint_path: &str,
) -> Result<(), SourceError> {
    let mut attempt = 0u32;
    loop {
        match stream_once(
            cfg,
            filter,
            decoder,
            tx,
            cancel,
            checkpoint_path,
            &mut attempt,
        )
        .await
        {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && !cancel.is_cancelled() => {
                let wait = backoff(attempt, Duration::from_secs(cfg.max_backoff_secs));
                attempt += 1;
                tracing::warn!(error = %e, retry_in_s = wait.as_secs(), attempt, "binlog stream interrupted; reconnecting");
                let resume = decoder.prepare_reconnect();
                tracing::info!(position = %resume, "will resume from the last committed transaction");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cancel.cancelled() => return Ok(()),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

async fn stream_once(
    cfg: &SourceConfig,
    filter: &TableFilter,
    decoder: &mut BinlogDecoder,
    tx: &Sender<SourceMessage>,
    cancel: &CancellationToken,
    checkpoint_path: &str,
    attempt: &mut u32,
) -> Result<(), SourceError> {
    let mut conn = connect(cfg).await?;
    let info = ServerInfo::read(&mut conn).await?;
    if info.flavor == Flavor::MariaDb {
        // 4 = MARIA_SLAVE_CAPABILITY_GTID: the server then sends its GTID events instead of dummies.
        conn.query_drop("SET @mariadb_slave_capability = 4").await?;
    }
    // Heartbeats every second let us notice a dead connection on an idle server.
    conn.query_drop("SET @master_heartbeat_period = 1000000000")
        .await?;
    let lookup_conn = connect(cfg).await?;
    let mut lookup = LiveLookup {
        conn: lookup_conn,
        filter,
        keys: &cfg.keys,
    };

    let start = decoder.position();
    let gtid = decoder.gtid();
    let mut request = BinlogStreamRequest::new(cfg.server_id)
        .with_filename(start.file.as_bytes())
        .with_pos(start.pos);
    let by_gtid = start.file.is_empty();
    let sids: Vec<mysql_async::Sid<'static>> = match (&gtid, by_gtid, &info.flavor) {
        (Some(g), true, Flavor::MySql) => g
            .split(',')
            .map(|part| part.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|e| {
                SourceError::Config(format!("checkpoint GTID set `{g}` does not parse: {e:?}"))
            })?,
        _ => vec![],
    };
    match (&gtid, by_gtid, &info.flavor) {
        (Some(g), true, Flavor::MariaDb) => {
            // MariaDB positions by @slave_connect_state when it is set; file/pos are then ignored.
            conn.exec_drop("SET @slave_connect_state = ?", (g.clone(),))
                .await?;
            conn.query_drop("SET @slave_gtid_strict_mode = 0").await?;
        }
        (Some(_), true, Flavor::MySql) => request = request.with_gtid().with_gtid_set(sids),
        (None, true, _) => {
            return Err(SourceError::PositionPurged {
                position: start.clone(),
                checkpoint: checkpoint_path.to_string(),
                detail: "no file position and no GTID state to resume from".into(),
            })
        }
        _ => {}
    }
    let purged = |e: mysql_async::Error| match e {
        mysql_async::Error::Server(s) if is_purged_error(&s) => SourceError::PositionPurged {
            position: start.clone(),
            checkpoint: checkpoint_path.to_string(),
            detail: s.message.clone(),
        },
        e => SourceError::Mysql(e),
    };
    let mut stream = conn.get_binlog_stream(request).await.map_err(purged)?;
    tracing::info!(position = %start, gtid = ?gtid, by_gtid, server = %info.version_text, "streaming binlog");

    let mut out = Vec::new();
    let mut stop_deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled(), if stop_deadline.is_none() => {
                if !decoder.in_transaction() {
                    return Ok(());
                }
                stop_deadline = Some(tokio::time::Instant::now() + STOP_GRACE);
                continue;
            }
            _ = sleep_until_opt(stop_deadline) => {
                tracing::warn!("stopping inside an open transaction; it will be replayed on restart");
                return Ok(());
            }
            next = stream.next() => next,
        };
        let event = match next {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => return Err(purged(e)),
            None => {
                return Err(SourceError::Mysql(mysql_async::Error::Driver(
                    mysql_async::DriverError::ConnectionClosed,
                )))
            }
        };
        *attempt = 0;
        decoder.handle(&event, &mut out, &mut lookup).await?;
        for msg in out.drain(..) {
            tx.send(msg)
                .await
                .map_err(|_| SourceError::DownstreamClosed)?;
        }
        if stop_deadline.is_some() && !decoder.in_transaction() {
            return Ok(());
        }
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
