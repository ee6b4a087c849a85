//! Source stage entry point: preflight, snapshot if needed, then the binlog stream.

use super::binlog::{BinlogDecoder, DecoderOptions};
use super::schema::{load_collations, load_tables, CapturedTable};
use super::snapshot::run_snapshot;
use super::stream::run_stream;
use super::{binlog_files, connect, current_position, preflight, Flavor, ServerInfo, SourceError};
use crate::channel::MessageSender;
use crate::config::{Config, SnapshotMode};
use crate::event::progress::{Checkpoint, SnapshotProgress};
use crate::event::{BinlogPosition, TableId};
use mysql_async::prelude::*;
use tokio_util::sync::CancellationToken;

/// Runs the source until cancelled (Ok) or a definite error. Transient errors are retried inside.
pub async fn run_source(
    config: &Config,
    start: Option<Checkpoint>,
    seq_floor: u64,
    tx: MessageSender,
    cancel: CancellationToken,
    identity: &super::StreamIdentity,
) -> Result<(), SourceError> {
    let report = preflight::run(config, start.as_ref(), identity).await;
    for check in &report.checks {
        tracing::info!(check = check.name, status = ?check.status, detail = %check.detail, "preflight");
    }
    if !report.passed() {
        let msg = report
            .failures()
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        return Err(SourceError::Preflight(msg));
    }
    let src = &config.source;
    let filter = config.filter();
    let mut conn = connect(src).await?;
    let info = ServerInfo::read(&mut conn).await?;
    let collations = load_collations(&mut conn).await?;
    let schemas = load_tables(&mut conn, &filter, &src.keys, None).await?;
    let tables: Vec<CapturedTable> = schemas
        .into_values()
        .map(|s| CapturedTable::new(s, &filter))
        .collect::<Result<_, _>>()?;

    let mut resnapshot_all = false;
    let mut checkpoint = match start {
        Some(mut cp) => {
            if !binlog_files(&mut conn).await?.contains(&cp.position.file) {
                match (&cp.gtid, &cp.snapshot) {
                    // Another server (a failover target) or renamed files: find our place by GTID instead.
                    (Some(gtid), None) => {
                        tracing::warn!(file = %cp.position.file, gtid = %gtid, "checkpoint file not on this server; resuming by GTID");
                        cp.position = BinlogPosition::new("", 4);
                    }
                    _ if src.snapshot.mode == SnapshotMode::WhenNeeded => {
                        tracing::warn!(position = %cp.position, "the resume position was purged from the server: streaming from the current position and snapshotting every captured table again while streaming (source.snapshot.mode = \"when_needed\")");
                        cp = streaming_from_now(&mut conn, &info, cp.next_seq + PURGE_SEQ_GAP).await?;
                        resnapshot_all = true;
                    }
                    _ => {
                        return Err(SourceError::PositionPurged {
                            position: cp.position,
                            resnapshot: identity.resnapshot.clone(),
                            detail: "the file is not in SHOW BINARY LOGS and the checkpoint has no usable GTID state".into(),
                        })
                    }
                }
            }
            tracing::info!(position = %cp.position, next_seq = cp.next_seq, "resuming from checkpoint");
            cp
        }
        None => match src.snapshot.mode {
            SnapshotMode::Initial | SnapshotMode::WhenNeeded => Checkpoint {
                next_seq: seq_floor + 1,
                position: BinlogPosition::new("", 4),
                gtid: None,
                snapshot: Some(SnapshotProgress::default()),
                xa: None,
                tables: Default::default(),
                sync: false,
            },
            SnapshotMode::Never => streaming_from_now(&mut conn, &info, seq_floor + 1).await?,
        },
    };
    drop(conn);

    let ids: Vec<_> = tables.iter().map(|t| t.full.id()).collect();
    let mut backoff =
        crate::retry::Backoff::reconnect(std::time::Duration::from_secs(src.max_backoff_secs));
    while checkpoint.snapshot.as_ref().is_some_and(|s| !s.complete) {
        match run_snapshot(
            src,
            &filter,
            &info,
            &ids,
            &mut checkpoint,
            &tx,
            &cancel,
            identity.sink_keeps_unsaved_rows,
        )
        .await
        {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            // resumes after the last chunk handed downstream, in a new snapshot session
            Err(e) if e.is_transient() && !cancel.is_cancelled() => {
                let what = "snapshot interrupted; retrying";
                if !wait_to_retry(&e, what, &mut backoff, src.max_backoff_secs, &cancel).await {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
    // schemas may have changed while the snapshot ran; a connection lost here is retried like one lost
    // in the snapshot or the stream (a test killed it right after the snapshot, and the process exited)
    let schemas = loop {
        let loaded = async {
            let mut conn = connect(src).await?;
            load_tables(&mut conn, &filter, &src.keys, None).await
        }
        .await;
        match loaded {
            Ok(schemas) => break schemas,
            Err(e) if e.is_transient() && !cancel.is_cancelled() => {
                let what = "reading the table schemas after the snapshot; retrying";
                if !wait_to_retry(&e, what, &mut backoff, src.max_backoff_secs, &cancel).await {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    };
    let tables: Vec<CapturedTable> = schemas
        .into_values()
        .map(|s| CapturedTable::new(s, &filter))
        .collect::<Result<_, _>>()?;

    // Tables the sink does not hold whole (added to source.include since, or out of an exclude) are
    // snapshotted while the stream runs. Checkpoints from before binlake kept the set count every
    // table captured now; after the initial snapshot, its tables.
    let captured: std::collections::BTreeSet<TableId> =
        tables.iter().map(|t| t.full.id()).collect();
    let lifecycle = &mut checkpoint.tables;
    let whole = lifecycle
        .whole
        .get_or_insert_with(|| match &checkpoint.snapshot {
            Some(s) => s.tables.keys().cloned().collect(),
            None => captured.clone(),
        });
    if src.snapshot.mode == SnapshotMode::Never {
        whole.extend(captured.iter().cloned());
    }
    // a table left out of the capture (excluded since, or gone) is not held whole any more: changes to
    // it go unseen from here, so should it join again it is snapshotted again
    whole.retain(|t| captured.contains(t));
    lifecycle.snapshots.retain(|t, _| captured.contains(t));
    let joined: Vec<TableId> = captured
        .iter()
        .filter(|t| !whole.contains(*t) && !lifecycle.snapshots.contains_key(*t))
        .cloned()
        .collect();
    for id in &joined {
        tracing::info!(table = %id, "a table joined the capture: snapshotting it while the stream runs");
    }
    for (id, progress) in &lifecycle.snapshots {
        tracing::info!(table = %id, chunks = progress.chunks, rows = progress.rows, "snapshot while streaming to resume");
    }

    let opts = DecoderOptions {
        filter: filter.clone(),
        keys: src.keys.clone(),
        collations,
        allow_anonymous_columns: false,
        max_prepared_xa_bytes: (src.max_prepared_xa_mb as usize) << 20,
        signal_table: src.signal_table(),
    };
    let mut decoder = BinlogDecoder::new(opts, &checkpoint, info.flavor == Flavor::MariaDb, tables);
    // Rows deleted while the position was lost are still in the sink, and so are rows a table that
    // joins the capture again held when it left it: each such table is emptied here and snapshotted
    // again. The replay after this point numbers its changes above these `_seq`s (higher than in the
    // run that wrote them, so a copy the sink holds is superseded by the same values, never lost).
    let restart: Vec<TableId> = if resnapshot_all {
        captured.iter().cloned().collect()
    } else {
        joined
    };
    if !restart.is_empty() {
        let start = decoder.start_resnapshots(&restart);
        tx.send_all(start)
            .await
            .map_err(|_| SourceError::DownstreamClosed)?;
    }
    run_stream(src, &filter, &mut decoder, &tx, &cancel, identity).await
}

/// A resume position purged from the server is abandoned for the current one; `_seq` jumps this far
/// past the checkpoint's, above anything the sink may hold from the lost stretch after it.
const PURGE_SEQ_GAP: u64 = 1 << 40;

/// A checkpoint at the server's current position (GTID state included), nothing snapshotted.
async fn streaming_from_now(
    conn: &mut mysql_async::Conn,
    info: &ServerInfo,
    next_seq: u64,
) -> Result<Checkpoint, SourceError> {
    let position = current_position(conn, info)
        .await?
        .ok_or_else(|| SourceError::Preflight("binary logging is off".into()))?;
    let gtid_sql = if info.flavor == Flavor::MariaDb {
        "SELECT @@gtid_binlog_pos"
    } else {
        "SELECT @@gtid_executed"
    };
    let gtid: Option<String> = conn.query_first(gtid_sql).await?;
    Ok(Checkpoint {
        next_seq,
        position,
        gtid: gtid.filter(|g| !g.is_empty()),
        snapshot: None,
        xa: None,
        tables: Default::default(),
        sync: false,
    })
}

/// Counts and logs a transient error, then waits out the backoff; false when cancelled meanwhile.
async fn wait_to_retry(
    e: &SourceError,
    what: &str,
    backoff: &mut crate::retry::Backoff,
    max_backoff_secs: u64,
    cancel: &CancellationToken,
) -> bool {
    let wait = backoff
        .next_delay()
        .unwrap_or(std::time::Duration::from_secs(max_backoff_secs));
    crate::observe::error("source", "transient");
    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "{what}");
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = cancel.cancelled() => false,
    }
}
