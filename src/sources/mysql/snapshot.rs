//! Consistent, chunked, resumable snapshot. All chunks of one session are read in a single
//! REPEATABLE READ transaction opened at a known binlog position (MariaDB reports it without locks;
//! MySQL needs a momentary FLUSH TABLES WITH READ LOCK). A checkpoint after every chunk lets a restart
//! continue with the next chunk in a new session; checkpoint segments record which position each key
//! range was read at, so the stream emits exactly the changes the snapshot does not contain.

use super::decode::from_snapshot;
use super::schema::{load_tables, CapturedTable};
use super::{connect, Flavor, ServerInfo, SourceError};
use crate::channel::MessageSender;
use crate::config::{SourceConfig, TableFilter};
use crate::event::progress::{Checkpoint, SnapshotProgress};
use crate::event::{
    BinlogPosition, ChangeEvent, ColumnKind, EventSource, Op, SourceMessage, TableId, Value,
};
use mysql_async::prelude::*;
use mysql_async::Conn;
use tokio_util::sync::CancellationToken;

/// Snapshot rows travel to the sink in batches of this many (fewer at a chunk's end).
const ROWS_PER_BATCH: usize = 256;

/// Opens the snapshot transaction and returns the binlog position (and GTID state) it corresponds to.
pub async fn open_consistent_snapshot(
    conn: &mut Conn,
    info: &ServerInfo,
) -> Result<(BinlogPosition, Option<String>), SourceError> {
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await?;
    match info.flavor {
        Flavor::MariaDb => {
            conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                .await?;
            let rows: Vec<(String, String)> =
                conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await?;
            let get = |name: &str| {
                rows.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            let file = get("Binlog_snapshot_file").unwrap_or_default();
            let pos: u64 = get("Binlog_snapshot_position")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            if file.is_empty() {
                return Err(SourceError::Preflight(
                    "binary logging is off (log_bin); start the server with --log-bin".into(),
                ));
            }
            let gtid: Option<String> = conn
                .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file.clone(), pos))
                .await?
                .flatten();
            Ok((
                BinlogPosition::new(file, pos),
                gtid.filter(|g| !g.is_empty()),
            ))
        }
        Flavor::MySql => {
            conn.query_drop("FLUSH TABLES WITH READ LOCK").await.map_err(|e| {
                SourceError::Preflight(format!(
                    "cannot take the momentary read lock that pins the snapshot position ({e}); GRANT RELOAD ON *.* to the binlake user"
                ))
            })?;
            let result = async {
                conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                    .await?;
                let sql = if info.version >= (8, 4, 0) {
                    "SHOW BINARY LOG STATUS"
                } else {
                    "SHOW MASTER STATUS"
                };
                let row: Option<mysql_async::Row> = conn.query_first(sql).await?;
                Ok::<_, mysql_async::Error>(row)
            }
            .await;
            conn.query_drop("UNLOCK TABLES").await?;
            let row = result?
                .ok_or_else(|| SourceError::Preflight("binary logging is off (log_bin)".into()))?;
            let file: String = row.get(0).unwrap_or_default();
            let pos: u64 = row.get(1).unwrap_or_default();
            let gtid: Option<String> = row
                .get::<Option<String>, _>(4)
                .flatten()
                .map(|g| g.replace('\n', ""));
            Ok((
                BinlogPosition::new(file, pos),
                gtid.filter(|g| !g.is_empty()),
            ))
        }
    }
}

fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// A table's quoted key columns, all columns, and `db`.`table`, for the SELECTs that read it in key order.
pub(super) fn select_parts(table: &CapturedTable) -> (Vec<String>, Vec<String>, String) {
    let full = &table.full;
    let key = full
        .key
        .iter()
        .map(|&k| quote(&full.columns[k].name))
        .collect();
    let cols = full.columns.iter().map(|c| quote(&c.name)).collect();
    (
        key,
        cols,
        format!("{}.{}", quote(&full.database), quote(&full.table)),
    )
}

/// Key types whose order this process reproduces exactly; others restart the table if a session ends mid-table.
fn key_orderable(table: &CapturedTable) -> bool {
    table.full.key.iter().all(|&k| {
        let c = &table.full.columns[k];
        !matches!(
            c.kind,
            ColumnKind::Text | ColumnKind::Enum | ColumnKind::Set | ColumnKind::Json
        )
    })
}

pub(super) fn to_param(v: &Value) -> mysql_async::Value {
    use mysql_async::Value as M;
    match v {
        Value::Null | Value::Absent => M::NULL,
        Value::Int(i) => M::Int(*i),
        Value::UInt(u) | Value::Bit(u) => M::UInt(*u),
        Value::Float(f) => M::Float(*f),
        Value::Double(d) => M::Double(*d),
        Value::Year(y) => M::Int(*y as i64),
        Value::Decimal(s) | Value::Enum(s) | Value::Set(s) | Value::String(s) | Value::Json(s) => {
            M::Bytes(s.clone().into_bytes())
        }
        Value::Bytes(b) => M::Bytes(b.clone()),
        Value::Date { year, month, day } => M::Date(*year, *month, *day, 0, 0, 0, 0),
        Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        } => M::Date(*year, *month, *day, *hour, *minute, *second, *micros),
        Value::Timestamp { secs, micros } => {
            let (y, mo, d) = crate::event::calendar::civil_from_days(secs.div_euclid(86_400));
            let s = secs.rem_euclid(86_400);
            M::Date(
                y as u16,
                mo as u8,
                d as u8,
                (s / 3600) as u8,
                (s / 60 % 60) as u8,
                (s % 60) as u8,
                *micros,
            )
        }
        Value::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
        } => M::Time(
            *negative,
            hours / 24,
            (hours % 24) as u8,
            *minutes,
            *seconds,
            *micros,
        ),
        Value::Geometry { srid, wkb } => {
            let mut b = srid.to_le_bytes().to_vec();
            b.extend_from_slice(wkb);
            M::Bytes(b)
        }
        Value::Vector(v) => M::Bytes(v.iter().flat_map(|f| f.to_le_bytes()).collect()),
    }
}

/// `(k1 > ?) OR (k1 = ? AND k2 > ?) …`, which every server's range optimizer uses.
pub(super) fn after_key_predicate(key_cols: &[String]) -> String {
    (0..key_cols.len())
        .map(|i| {
            let mut parts: Vec<String> = key_cols[..i].iter().map(|c| format!("{c} = ?")).collect();
            parts.push(format!("{} > ?", key_cols[i]));
            format!("({})", parts.join(" AND "))
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

pub(super) fn after_key_params(key: &[Value]) -> Vec<mysql_async::Value> {
    let mut params = vec![];
    for i in 0..key.len() {
        for v in &key[..=i] {
            params.push(to_param(v));
        }
    }
    params
}

/// Errors that mean a table changed under the snapshot (ALTER/DROP between reading its definition and its
/// rows): the session is retried with a fresh snapshot from the last checkpointed chunk.
fn snapshot_error(e: mysql_async::Error) -> SourceError {
    match &e {
        // table definition changed, unknown column, table does not exist
        mysql_async::Error::Server(s) if matches!(s.code, 1412 | 1054 | 1146) => {
            SourceError::SnapshotRetry(s.message.clone())
        }
        _ => SourceError::Mysql(e),
    }
}

/// How far one table's snapshot is: metrics per chunk, and a log line every `PROGRESS_LOG_EVERY`.
struct TableProgress {
    table: String,
    estimate: u64,
    rows: u64,
    started: std::time::Instant,
    logged: std::time::Instant,
    /// Only when stderr is a terminal: rows/s and ETA drawn in place.
    bar: Option<indicatif::ProgressBar>,
}

const PROGRESS_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl TableProgress {
    /// The server's row estimate (information_schema) sets the total; a failed lookup only leaves it 0.
    async fn start(conn: &mut Conn, id: &TableId, timeout: std::time::Duration) -> TableProgress {
        let lookup = conn.exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (id.database.as_str(), id.table.as_str()),
        );
        let estimate: Option<u64> = tokio::time::timeout(timeout, lookup)
            .await
            .ok()
            .and_then(|r| r.ok())
            .flatten();
        let table = id.to_string();
        let estimate = estimate.unwrap_or(0);
        crate::observe::METRICS
            .snapshot_rows_estimate
            .with_label_values(&[&table])
            .set(estimate as i64);
        let now = std::time::Instant::now();
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = indicatif::ProgressBar::new(estimate.max(1));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {human_pos}/{human_len} rows {per_sec} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(table.clone());
            bar
        });
        TableProgress {
            table,
            estimate,
            rows: 0,
            started: now,
            logged: now,
            bar,
        }
    }

    fn chunk(&mut self, rows: u64, finished: bool) {
        self.rows += rows;
        let m = &crate::observe::METRICS;
        m.snapshot_rows
            .with_label_values(&[&self.table])
            .inc_by(rows);
        if let Some(bar) = &self.bar {
            if self.rows > bar.length().unwrap_or(0) {
                bar.set_length(self.rows);
            }
            bar.set_position(self.rows);
            if finished {
                bar.set_length(self.rows);
                bar.finish();
            }
        }
        if finished {
            // the estimate is approximate: a finished table is complete whatever it said
            m.snapshot_rows_estimate
                .with_label_values(&[&self.table])
                .set(m.snapshot_rows.with_label_values(&[&self.table]).get() as i64);
        }
        if self.logged.elapsed() >= PROGRESS_LOG_EVERY && !finished {
            self.logged = std::time::Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            let rate = self.rows as f64 / secs;
            let eta_secs = (rate > 0.0 && self.estimate > self.rows)
                .then(|| ((self.estimate - self.rows) as f64 / rate) as u64);
            tracing::info!(table = %self.table, rows = self.rows, estimate = self.estimate, rows_per_sec = rate as u64, eta_secs, "snapshot progress");
        }
    }
}

/// Records a chunk of `id` read at `position` up to `upper` (`None`: the table is finished). With
/// `reserve`, the `_seq`s the next chunk may hand out before its checkpoint is stored are reserved.
fn record_chunk(
    checkpoint: &mut Checkpoint,
    id: &TableId,
    upper: Option<Vec<Value>>,
    position: &BinlogPosition,
    reserve: Option<u64>,
) {
    checkpoint
        .snapshot
        .as_mut()
        .expect("snapshot progress")
        .tables
        .entry(id.clone())
        .or_default()
        .record_chunk(upper, position);
    if let Some(rows) = reserve {
        reserve_next_chunk(checkpoint, rows);
    }
}

/// Reserves the `_seq`s one chunk of `rows` may take from `next_seq` on, plus the TRUNCATE a restarted
/// table may emit, for a restart to start after.
fn reserve_next_chunk(checkpoint: &mut Checkpoint, rows: u64) {
    let next_seq = checkpoint.next_seq;
    checkpoint
        .snapshot
        .as_mut()
        .expect("snapshot progress")
        .reserved_seq = next_seq + rows + 1;
}

/// Runs (or resumes) the snapshot, updating `checkpoint` as chunks are handed downstream. Returns false
/// when cancelled before it finished. `replay_unsaved`: the sink keeps rows handed over past its stored
/// checkpoint (see [`SnapshotProgress::opened`]).
#[allow(clippy::too_many_arguments)]
pub async fn run_snapshot(
    cfg: &SourceConfig,
    filter: &TableFilter,
    info: &ServerInfo,
    tables: &[TableId],
    checkpoint: &mut Checkpoint,
    tx: &MessageSender,
    cancel: &CancellationToken,
    replay_unsaved: bool,
) -> Result<bool, SourceError> {
    let mut conn = connect(cfg).await?;
    // rows are read as the sink takes them: a slow sink must not make the server give up on the result
    conn.query_drop("SET SESSION net_write_timeout = 3600")
        .await?;
    let (position, gtid) = open_consistent_snapshot(&mut conn, info).await?;
    let progress = checkpoint
        .snapshot
        .get_or_insert_with(SnapshotProgress::default);
    let earlier = progress.first_position().cloned();
    let reserved = progress.reserved_seq;
    if earlier.is_none() {
        checkpoint.position = position.clone();
        checkpoint.gtid = gtid;
    }
    let reserve = replay_unsaved.then_some(cfg.snapshot.chunk_size as u64);
    if let Some(rows) = reserve {
        // Stored before the first row goes out: a restart then streams from this session's position and
        // starts its `_seq`s past anything this session may hand out before its next stored checkpoint.
        let snapshot = checkpoint.snapshot.as_mut().expect("snapshot progress");
        snapshot.opened = Some(earlier.unwrap_or_else(|| position.clone()));
        checkpoint.next_seq = checkpoint.next_seq.max(reserved);
        reserve_next_chunk(checkpoint, rows);
        tx.send(SourceMessage::Checkpoint(checkpoint.clone()))
            .await
            .map_err(|_| SourceError::DownstreamClosed)?;
    }
    tracing::info!(position = %position, tables = tables.len(), "snapshot session opened");
    let ts_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let source = EventSource {
        server_id: info.server_id,
        position: position.clone(),
        row: 0,
        gtid: None,
        ts_ms,
        snapshot: true,
    };
    let send = |msg: SourceMessage| async move {
        tx.send(msg)
            .await
            .map_err(|_| SourceError::DownstreamClosed)
    };
    let send_all = |batch: Vec<SourceMessage>| async move {
        tx.send_all(batch)
            .await
            .map_err(|_| SourceError::DownstreamClosed)
    };

    for id in tables {
        if checkpoint
            .snapshot
            .as_ref()
            .is_some_and(|p| p.tables.get(id).is_some_and(|t| t.done))
        {
            continue;
        }
        // The definition as of now, read inside the snapshot transaction: an ALTER after this point makes
        // the SELECT fail with "table definition changed" and the session is retried.
        let Some(schema) = load_tables(&mut conn, filter, &cfg.keys, Some(id))
            .await?
            .remove(id)
        else {
            tracing::warn!(table = %id, "table is gone; nothing to snapshot");
            record_chunk(checkpoint, id, None, &position, reserve);
            continue;
        };
        let table = CapturedTable::new(schema, filter)?;
        let chunk = cfg.snapshot.chunk_size as usize;
        let chunk_max_bytes = (cfg.snapshot.chunk_max_mb as usize) << 20;
        let (key_cols, cols, from) = select_parts(&table);
        let order = key_cols.join(", ");
        let first_sql = format!(
            "SELECT {} FROM {from} ORDER BY {order} LIMIT {chunk}",
            cols.join(", ")
        );
        let next_sql = format!(
            "SELECT {} FROM {from} WHERE {} ORDER BY {order} LIMIT {chunk}",
            cols.join(", "),
            after_key_predicate(&key_cols)
        );

        let tp = checkpoint
            .snapshot
            .as_mut()
            .unwrap()
            .tables
            .entry(id.clone())
            .or_default();
        let resumed_elsewhere = tp.segments.last().is_some_and(|s| s.position != position);
        if resumed_elsewhere && !key_orderable(&table) {
            // Rows read in the earlier session cannot be told apart from ours by key order here: start this
            // table over, and tell consumers to drop what they have of it.
            tracing::warn!(table = %id, "restarting this table's snapshot: its key order is collation-dependent");
            tp.segments.clear();
            let ev = ChangeEvent {
                op: Op::Truncate,
                schema: table.projected.clone(),
                before: None,
                after: None,
                source: source.clone(),
                seq: checkpoint.next_seq,
                tx_order: 0,
            };
            send(SourceMessage::Change(ev)).await?;
            checkpoint.next_seq += 1;
        }
        let first_stmt = conn.prep(&first_sql).await.map_err(snapshot_error)?;
        let next_stmt = conn.prep(&next_sql).await.map_err(snapshot_error)?;
        let mut progress = TableProgress::start(
            &mut conn,
            id,
            std::time::Duration::from_secs(cfg.query_timeout_secs),
        )
        .await;
        loop {
            if cancel.is_cancelled() {
                conn.query_drop("ROLLBACK").await.ok();
                return Ok(false);
            }
            let resume = checkpoint.snapshot.as_ref().unwrap().tables[id]
                .resume_key()
                .cloned();
            let query_timeout = std::time::Duration::from_secs(cfg.query_timeout_secs);
            let timeout = || SourceError::Timeout {
                what: format!("snapshot chunk of {id}"),
                secs: query_timeout.as_secs(),
            };
            let chunk_read = async {
                match &resume {
                    None => conn.exec_iter(&first_stmt, ()).await,
                    Some(key) => conn.exec_iter(&next_stmt, after_key_params(key)).await,
                }
            };
            // Rows are handed on as they arrive, never a whole chunk at once: after `chunk_max_mb` a
            // checkpoint ends the key range read so far (a restart continues after its last key).
            let mut result = tokio::time::timeout(query_timeout, chunk_read)
                .await
                .map_err(|_| timeout())?
                .map_err(snapshot_error)?;
            let mut n = 0usize;
            let mut last_key = None;
            let mut seq = checkpoint.next_seq;
            let mut bytes = 0usize;
            let mut rows_out: Vec<SourceMessage> = Vec::with_capacity(ROWS_PER_BATCH);
            while let Some(row) = tokio::time::timeout(query_timeout, result.next())
                .await
                .map_err(|_| timeout())?
                .map_err(snapshot_error)?
            {
                let values: Vec<mysql_async::Value> = row.unwrap();
                let mut full_row = Vec::with_capacity(values.len());
                for (col, v) in table.full.columns.iter().zip(values) {
                    full_row.push(from_snapshot(col, v).map_err(|e| SourceError::Decode {
                        table: id.clone(),
                        detail: format!("`{}` in snapshot: {}", col.name, e.0),
                    })?);
                }
                last_key = Some(table.full.key_of(&full_row));
                let ev = ChangeEvent {
                    op: Op::Read,
                    schema: table.projected.clone(),
                    before: None,
                    after: Some(table.project(full_row)),
                    source: source.clone(),
                    seq,
                    tx_order: 0,
                };
                seq += 1;
                n += 1;
                bytes += ev.approx_bytes();
                rows_out.push(SourceMessage::Change(ev));
                if rows_out.len() >= ROWS_PER_BATCH {
                    send_all(std::mem::take(&mut rows_out)).await?;
                }
                if bytes >= chunk_max_bytes {
                    send_all(std::mem::take(&mut rows_out)).await?;
                    checkpoint.next_seq = seq;
                    record_chunk(checkpoint, id, last_key.clone(), &position, reserve);
                    send(SourceMessage::Checkpoint(checkpoint.clone())).await?;
                    bytes = 0;
                }
            }
            drop(result);
            send_all(rows_out).await?;
            checkpoint.next_seq = seq;
            let upper = if n < chunk { None } else { last_key };
            let finished = upper.is_none();
            record_chunk(checkpoint, id, upper, &position, reserve);
            send(SourceMessage::Checkpoint(checkpoint.clone())).await?;
            progress.chunk(n as u64, finished);
            if finished {
                tracing::info!(table = %id, "table snapshot complete");
                break;
            }
        }
    }
    conn.query_drop("COMMIT").await?;
    checkpoint.snapshot.as_mut().unwrap().complete = true;
    send(SourceMessage::Checkpoint(checkpoint.clone())).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_recorded_chunk_reserves_the_next_chunks_seqs() {
        let id = TableId::new("d", "t");
        let p1 = BinlogPosition::new("b.000001", 100);
        let mut cp = Checkpoint {
            next_seq: 501,
            position: p1.clone(),
            gtid: None,
            snapshot: Some(SnapshotProgress::default()),
            xa: None,
            tables: Default::default(),
            sync: false,
        };
        record_chunk(&mut cp, &id, Some(vec![Value::Int(500)]), &p1, Some(200));
        let snap = cp.snapshot.as_ref().unwrap();
        // the next chunk hands out at most 200 rows plus a TRUNCATE before its checkpoint is stored
        assert_eq!(snap.reserved_seq, 702);
        assert_eq!(snap.tables[&id].resume_key(), Some(&vec![Value::Int(500)]));
        // without a reservation (the lake and stdout sinks) nothing is reserved
        let mut direct = cp.clone();
        direct.snapshot.as_mut().unwrap().reserved_seq = 0;
        record_chunk(&mut direct, &id, None, &p1, None);
        assert_eq!(direct.snapshot.as_ref().unwrap().reserved_seq, 0);
        assert!(direct.snapshot.as_ref().unwrap().tables[&id].done);
    }

    #[test]
    fn composite_key_predicate() {
        let p = after_key_predicate(&["`a`".into(), "`b`".into()]);
        assert_eq!(p, "(`a` > ?) OR (`a` = ? AND `b` > ?)");
        assert_eq!(after_key_params(&[Value::Int(1), Value::Int(2)]).len(), 3);
    }
}
