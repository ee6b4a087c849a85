//! The live binlog stream: connects as a replica, feeds events through the decoder, reconnects with
//! backoff on transient errors, and stops at a transaction boundary when cancelled.

use super::binlog::{BinlogDecoder, SchemaLookup};
use super::schema::load_tables;
use super::{connect, is_purged_error, Flavor, ServerInfo, SourceError};
use crate::channel::MessageSender;
use crate::config::{SourceConfig, TableFilter};
use crate::event::{ColumnSchema, TableId, TableSchema, Value};
use crate::retry::Backoff;
use futures_util::StreamExt;
use mysql_async::prelude::*;
use mysql_async::BinlogStreamRequest;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a stop request waits for the open transaction to finish before leaving it for the replay.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// Silence on the replication connection longer than this many heartbeat periods means it is dead.
const MISSED_HEARTBEATS: u64 = 4;

/// Events already received are decoded together and handed to the sink as one batch, up to this much
/// raw binlog: one hand-over (and one thread wake-up) per batch instead of per rows event, while the
/// channel's byte bound still holds.
const COALESCE_BYTES: usize = 1 << 20;

pub struct LiveLookup<'a> {
    pub conn: mysql_async::Conn,
    pub filter: &'a TableFilter,
    pub keys: &'a std::collections::BTreeMap<String, Vec<String>>,
    pub timeout: Duration,
}

impl SchemaLookup for LiveLookup<'_> {
    async fn lookup(&mut self, id: &TableId) -> Result<Option<TableSchema>, SourceError> {
        let found = tokio::time::timeout(
            self.timeout,
            load_tables(&mut self.conn, self.filter, self.keys, Some(id)),
        )
        .await
        .map_err(|_| SourceError::Timeout {
            what: format!("schema lookup of {id}"),
            secs: self.timeout.as_secs(),
        })??;
        Ok(found.into_iter().find(|(k, _)| k == id).map(|(_, v)| v))
    }

    async fn added_default(
        &mut self,
        id: &TableId,
        column: &ColumnSchema,
        statement_ts_ms: i64,
    ) -> Result<Option<Value>, SourceError> {
        let what = format!("default of {id} column `{}`", column.name);
        let secs = self.timeout.as_secs();
        tokio::time::timeout(
            self.timeout,
            super::defaults::added_default(&mut self.conn, id, column, statement_ts_ms),
        )
        .await
        .map_err(|_| SourceError::Timeout { what, secs })?
    }
}

pub async fn run_stream(
    cfg: &SourceConfig,
    filter: &TableFilter,
    decoder: &mut BinlogDecoder,
    tx: &MessageSender,
    cancel: &CancellationToken,
    identity: &super::StreamIdentity,
) -> Result<(), SourceError> {
    let mut backoff = Backoff::reconnect(Duration::from_secs(cfg.max_backoff_secs));
    loop {
        match stream_once(cfg, filter, decoder, tx, cancel, identity, &mut backoff).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && !cancel.is_cancelled() => {
                let wait = backoff
                    .next_delay()
                    .unwrap_or(Duration::from_secs(cfg.max_backoff_secs));
                crate::observe::METRICS.source_reconnects.inc();
                crate::observe::error("source", "transient");
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "binlog stream interrupted; reconnecting");
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
    tx: &MessageSender,
    cancel: &CancellationToken,
    identity: &super::StreamIdentity,
    backoff: &mut Backoff,
) -> Result<(), SourceError> {
    let mut conn = connect(cfg).await?;
    let info = ServerInfo::read(&mut conn).await?;
    if info.flavor == Flavor::MariaDb {
        // 4 = MARIA_SLAVE_CAPABILITY_GTID: the server then sends its GTID events instead of dummies.
        conn.query_drop("SET @mariadb_slave_capability = 4").await?;
    }
    // Heartbeats on an idle server let a silent (half-open) connection be told from a quiet one.
    let heartbeat = Duration::from_secs(cfg.heartbeat_secs);
    conn.query_drop(format!(
        "SET @master_heartbeat_period = {}",
        heartbeat.as_nanos()
    ))
    .await?;
    let silence_limit = heartbeat * MISSED_HEARTBEATS as u32;
    let lookup_conn = connect(cfg).await?;
    let mut lookup = LiveLookup {
        conn: lookup_conn,
        filter,
        keys: &cfg.keys,
        timeout: Duration::from_secs(cfg.query_timeout_secs),
    };

    let start = decoder.position();
    let gtid = decoder.gtid();
    let mut request = BinlogStreamRequest::new(cfg.server_id)
        .with_hostname(identity.report_host.as_bytes())
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
                resnapshot: identity.resnapshot.clone(),
                detail: "no file position and no GTID state to resume from".into(),
            })
        }
        _ => {}
    }
    let purged = |e: mysql_async::Error| match e {
        mysql_async::Error::Server(s) if is_purged_error(&s) => SourceError::PositionPurged {
            position: start.clone(),
            resnapshot: identity.resnapshot.clone(),
            detail: s.message.clone(),
        },
        e => SourceError::Mysql(e),
    };
    let mut stream = super::timed(
        Duration::from_secs(cfg.connect_timeout_secs),
        "start the binlog dump",
        conn.get_binlog_stream(request),
    )
    .await
    .map_err(|e| match e {
        SourceError::Mysql(m) => purged(m),
        e => e,
    })?;
    tracing::info!(position = %start, gtid = ?gtid, by_gtid, server = %info.version_text, "streaming binlog");

    let mut out = Vec::new();
    let mut stop_deadline: Option<tokio::time::Instant> = None;
    // snapshots taken while streaming: one chunk read at a time, on a connection of its own
    let mut chunk_reader = Some(super::chunks::ChunkReader::new(cfg, filter, &info));
    let mut reading: Option<ChunkRead> = None;
    let mut chunk_backoff = Backoff::reconnect(Duration::from_secs(cfg.max_backoff_secs));
    let mut chunk_retry_at: Option<tokio::time::Instant> = None;
    let result = loop {
        if reading.is_none()
            && stop_deadline.is_none()
            && chunk_retry_at.is_none_or(|t| tokio::time::Instant::now() >= t)
        {
            if let Some(request) = decoder.next_chunk_request() {
                let reader = chunk_reader.take().expect("one read at a time");
                reading = Some(tokio::spawn(reader.read(request)));
            }
        }
        let next = tokio::select! {
            read = wait_chunk(&mut reading), if reading.is_some() => {
                reading = None;
                let (reader, chunk) = match read {
                    Ok(done) => done,
                    Err(e) => break Err(SourceError::Config(format!("snapshot chunk reader task: {e}"))),
                };
                chunk_reader = Some(reader);
                match chunk {
                    Ok(chunk) => {
                        chunk_backoff.reset();
                        chunk_retry_at = None;
                        decoder.chunk_arrived(chunk);
                    }
                    Err(e) if e.is_transient() => {
                        let wait = chunk_backoff.next_delay().unwrap_or(Duration::from_secs(cfg.max_backoff_secs));
                        crate::observe::error("source", "transient");
                        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "reading a snapshot chunk; retrying");
                        decoder.chunk_abandoned();
                        chunk_retry_at = Some(tokio::time::Instant::now() + wait);
                    }
                    Err(e) => break Err(e),
                }
                if decoder.emit_ready_chunk(&mut out) {
                    let size = out.len();
                    if tx.send_all(std::mem::replace(&mut out, Vec::with_capacity(size))).await.is_err() {
                        break Err(SourceError::DownstreamClosed);
                    }
                }
                continue;
            }
            _ = sleep_until_opt(chunk_retry_at), if reading.is_none() && chunk_retry_at.is_some() => {
                chunk_retry_at = None;
                continue;
            }
            _ = cancel.cancelled(), if stop_deadline.is_none() => {
                if !decoder.in_transaction() {
                    break Ok(());
                }
                stop_deadline = Some(tokio::time::Instant::now() + STOP_GRACE);
                continue;
            }
            _ = sleep_until_opt(stop_deadline) => {
                tracing::warn!("stopping inside an open transaction; it will be replayed on restart");
                break Ok(());
            }
            next = tokio::time::timeout(silence_limit, stream.next()) => match next {
                Ok(next) => next,
                Err(_) => break Err(SourceError::Timeout {
                    what: format!(
                        "binlog stream (no event or heartbeat for {MISSED_HEARTBEATS} heartbeat periods of {} s; \
                         the connection is treated as dead)",
                        heartbeat.as_secs()
                    ),
                    secs: silence_limit.as_secs(),
                }),
            },
        };
        let event = match next {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => break Err(purged(e)),
            None => {
                break Err(SourceError::Mysql(mysql_async::Error::Driver(
                    mysql_async::DriverError::ConnectionClosed,
                )))
            }
        };
        backoff.reset();
        if let Err(e) = decoder.handle(&event, &mut out, &mut lookup).await {
            break Err(e);
        }
        // Take what has already arrived without waiting, so the batch grows only while the stream is busy.
        // The decoder's reconnect position moves with every decoded transaction, so whatever went wrong,
        // the events decoded whole before it are handed over first (what the per-event loop did too).
        let mut raw = event.data().len();
        let mut failed = None;
        while raw < COALESCE_BYTES && stop_deadline.is_none() {
            let Some(next) = futures_util::FutureExt::now_or_never(stream.next()) else {
                break;
            };
            let whole = out.len();
            let result = match next {
                Some(Ok(ev)) => {
                    raw += ev.data().len();
                    decoder.handle(&ev, &mut out, &mut lookup).await
                }
                Some(Err(e)) => Err(purged(e)),
                None => Err(SourceError::Mysql(mysql_async::Error::Driver(
                    mysql_async::DriverError::ConnectionClosed,
                ))),
            };
            if let Err(e) = result {
                out.truncate(whole);
                failed = Some(e);
                break;
            }
        }
        if failed.is_none() {
            // a chunk whose position the stream has reached goes out at this transaction boundary
            decoder.emit_ready_chunk(&mut out);
        }
        // the next batch starts at this one's size: growing a vector of thousands of events by doubling
        // copies it over and over, into freshly faulted pages (a tenth of the stdout path's time)
        let size = out.len();
        if tx
            .send_all(std::mem::replace(&mut out, Vec::with_capacity(size)))
            .await
            .is_err()
        {
            break Err(SourceError::DownstreamClosed);
        }
        if let Some(e) = failed {
            break Err(e);
        }
        if stop_deadline.is_some() && !decoder.in_transaction() {
            break Ok(());
        }
    };
    // a chunk being read is asked for again by the next connection (or the next run)
    if let Some(read) = reading {
        read.abort();
    }
    decoder.chunk_abandoned();
    result
}

type ChunkRead = tokio::task::JoinHandle<(
    super::chunks::ChunkReader,
    Result<super::binlog::incremental::Chunk, SourceError>,
)>;

async fn wait_chunk(
    reading: &mut Option<ChunkRead>,
) -> Result<
    (
        super::chunks::ChunkReader,
        Result<super::binlog::incremental::Chunk, SourceError>,
    ),
    tokio::task::JoinError,
> {
    match reading {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
