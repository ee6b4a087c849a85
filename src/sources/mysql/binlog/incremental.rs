//! Snapshots taken while the stream runs, for a table that joins the capture (added to
//! `source.include`, renamed into it) or is asked for again: chunk by chunk in key order, each chunk
//! read in a transaction of its own whose consistent-snapshot position is its watermark (DBLog's idea).
//!
//! A chunk holds its rows as they were at its position `P`. It is handed over once the stream stands at
//! a transaction boundary at or past `P`; keys the stream changed after `P` (recorded since the chunk
//! was asked for) are left out, as the stream already delivered their newer state. So every key ends at
//! its current value, and no chunk boundary loses or doubles a row under concurrent writes.
//!
//! Numbering: a chunk's rows take `_seq`s in stream order. The checkpoint before them already reserves
//! those `_seq`s and the one after them records the chunk; both are sync points (`Checkpoint::sync`), so
//! a restart from either numbers every later change exactly as the first run did, and a chunk read
//! again after a crash takes new, higher `_seq`s that supersede a partial first hand-over.

use super::BinlogDecoder;
use crate::event::progress::Incremental;
use crate::event::{
    BinlogPosition, ChangeEvent, EventSource, Op, Row, SourceMessage, TableId, Value,
};
use crate::sources::mysql::schema::CapturedTable;
use std::collections::HashMap;

/// One chunk to read: `after` the last key handed over (`None`: from the first key).
#[derive(Debug, Clone)]
pub struct ChunkRequest {
    pub id: u64,
    pub table: TableId,
    pub after: Option<Vec<Value>>,
}

/// The rows of one key range as they were at `position`.
#[derive(Debug)]
pub struct Chunk {
    pub request: u64,
    pub table: TableId,
    /// `None`: the table is gone (dropped since the snapshot was asked for).
    pub captured: Option<CapturedTable>,
    /// Full rows (every column), in key order.
    pub rows: Vec<Row>,
    pub position: BinlogPosition,
    /// The last key read; `None` once the range reached the table's end.
    pub last_key: Option<Vec<Value>>,
}

/// A chunk asked for and not handed over yet.
pub(super) struct Window {
    request: u64,
    table: TableId,
    /// Keys of `table` the stream changed since the chunk was asked for, with the position of the last
    /// change (`TableSchema::key_bytes`).
    changed: HashMap<Vec<u8>, BinlogPosition>,
    chunk: Option<Chunk>,
}

impl BinlogDecoder {
    /// The chunk to read next, when a snapshot is running and no chunk is being read: the first table
    /// asked for, after its last key handed over.
    pub fn next_chunk_request(&mut self) -> Option<ChunkRequest> {
        if self.chunk.is_some() {
            return None;
        }
        let (table, progress) = self.lifecycle.snapshots.iter().next()?;
        self.chunk_requests += 1;
        let request = ChunkRequest {
            id: self.chunk_requests,
            table: table.clone(),
            after: progress.after.clone(),
        };
        self.chunk = Some(Window {
            request: request.id,
            table: table.clone(),
            changed: HashMap::new(),
            chunk: None,
        });
        Some(request)
    }

    /// Whether a snapshot is running (a chunk may be asked for, or is being read).
    pub fn snapshots_running(&self) -> bool {
        !self.lifecycle.snapshots.is_empty()
    }

    /// The chunk read failed or was abandoned (a reconnect): it is asked for again.
    pub fn chunk_abandoned(&mut self) {
        self.chunk = None;
    }

    /// A chunk read finished; one for a request no longer open (the table was asked for again or
    /// dropped meanwhile) is dropped.
    pub fn chunk_arrived(&mut self, chunk: Chunk) {
        if let Some(w) = &mut self.chunk {
            if w.request == chunk.request {
                w.chunk = Some(chunk);
            }
        }
    }

    /// Records that the stream changed a key of the table whose chunk is being read.
    pub(super) fn note_changed(&mut self, ev: &ChangeEvent) {
        let Some(w) = &mut self.chunk else { return };
        if ev.schema.table != w.table.table || ev.schema.database != w.table.database {
            return;
        }
        for row in [&ev.before, &ev.after].into_iter().flatten() {
            w.changed
                .insert(ev.schema.key_bytes(row), ev.source.position.clone());
        }
    }

    /// Hands the chunk over once the stream stands at a transaction boundary at or past its position:
    /// a checkpoint reserving its `_seq`s, its rows (those the stream has not changed since), and a
    /// checkpoint recording it. True when it did.
    pub fn emit_ready_chunk(&mut self, out: &mut Vec<SourceMessage>) -> bool {
        let ready = self.chunk.as_ref().is_some_and(|w| {
            w.chunk
                .as_ref()
                .is_some_and(|c| self.position() >= c.position)
        });
        // not inside a transaction, nor behind a prepared XA one (whose checkpoint resumes before it
        // with the `_seq` it had there, which would number the chunk's stretch differently)
        if !ready || self.tx.open || self.replaying() || self.prepared.oldest().is_some() {
            return false;
        }
        let window = self.chunk.take().expect("ready above");
        let chunk = window.chunk.expect("ready above");
        let Some(captured) = chunk.captured else {
            tracing::info!(table = %chunk.table, "table gone before its snapshot finished");
            self.lifecycle.snapshots.remove(&chunk.table);
            out.push(SourceMessage::Checkpoint(self.checkpoint()));
            return true;
        };
        let newer = |row: &Row| {
            window
                .changed
                .get(&captured.full.key_bytes(row))
                .is_some_and(|at| *at > chunk.position)
        };
        let rows: Vec<Row> = chunk.rows.into_iter().filter(|r| !newer(r)).collect();
        let mut reserved = self.checkpoint();
        reserved.next_seq = self.next_seq + rows.len() as u64;
        reserved.sync = true;
        out.push(SourceMessage::Checkpoint(reserved));
        let source = EventSource {
            server_id: 0,
            position: chunk.position.clone(),
            row: 0,
            gtid: None,
            ts_ms: crate::event::calendar::now_ms(),
            snapshot: true,
        };
        let n = rows.len() as u64;
        for row in rows {
            let seq = self.take_seq();
            out.push(SourceMessage::Change(ChangeEvent {
                op: Op::Read,
                schema: captured.projected.clone(),
                before: None,
                after: Some(captured.project(row)),
                source: source.clone(),
                seq,
                tx_order: 0,
            }));
        }
        crate::observe::METRICS
            .snapshot_rows
            .with_label_values(&[chunk.table.to_string().as_str()])
            .inc_by(n);
        match chunk.last_key {
            Some(key) => {
                let progress = self
                    .lifecycle
                    .snapshots
                    .entry(chunk.table.clone())
                    .or_default();
                progress.after = Some(key);
                progress.chunks += 1;
                progress.rows += n;
            }
            None => {
                let progress = self.lifecycle.snapshots.remove(&chunk.table);
                let rows = progress.map_or(0, |p| p.rows) + n;
                tracing::info!(table = %chunk.table, rows, "snapshot taken while streaming is complete");
                self.lifecycle
                    .whole
                    .get_or_insert_with(Default::default)
                    .insert(chunk.table.clone());
            }
        }
        let mut done = self.checkpoint();
        done.sync = true;
        out.push(SourceMessage::Checkpoint(done));
        true
    }

    /// Asks for a snapshot of `id` while the stream runs (from its first key, also if one was running).
    pub(super) fn schedule_snapshot(&mut self, id: &TableId) {
        tracing::info!(table = %id, "snapshotting the table while the stream runs");
        if let Some(whole) = &mut self.lifecycle.whole {
            whole.remove(id);
        }
        self.lifecycle
            .snapshots
            .insert(id.clone(), Incremental::default());
        if self.chunk.as_ref().is_some_and(|w| w.table == *id) {
            self.chunk = None;
        }
    }

    /// Every table in `ids` emptied and snapshotted again while the stream runs (after a purged resume
    /// position, or tables that joined the capture, whose older copy the sink may still hold): the truncates, then a checkpoint that records the snapshots, durable before the
    /// stream goes on.
    pub fn start_resnapshots(&mut self, ids: &[TableId]) -> Vec<SourceMessage> {
        let mut out = vec![];
        for id in ids {
            self.resnapshot(id, 0, &mut out);
        }
        let mut cp = self.checkpoint();
        cp.sync = true;
        out.push(SourceMessage::Checkpoint(cp));
        out
    }

    /// Rows inserted into the signal table (Debezium's layout: `id`, `type`, `data`): an
    /// `execute-snapshot` whose `data` lists `data-collections` empties and snapshots those captured
    /// tables again while the stream runs. Other signals, and tables not captured, are logged and left.
    pub(super) fn take_signals(
        &mut self,
        schema: &crate::event::TableSchema,
        rows: Vec<Row>,
        server_id: u32,
        out: &mut Vec<SourceMessage>,
    ) {
        let text = |row: &Row, name: &str| match schema.column_index(name).and_then(|i| row.get(i))
        {
            Some(Value::String(s)) | Some(Value::Json(s)) | Some(Value::Enum(s)) => Some(s.clone()),
            Some(Value::Bytes(b)) => String::from_utf8(b.clone()).ok(),
            _ => None,
        };
        for row in rows {
            let kind = text(&row, "type").unwrap_or_default();
            if !kind.eq_ignore_ascii_case("execute-snapshot") {
                tracing::warn!(signal = %kind, "signal not understood; binlake acts on execute-snapshot");
                continue;
            }
            let data: serde_json::Value = text(&row, "data")
                .and_then(|d| serde_json::from_str(&d).ok())
                .unwrap_or_default();
            let tables: Vec<String> = data
                .get("data-collections")
                .and_then(|c| c.as_array())
                .map(|c| {
                    c.iter()
                        .filter_map(|t| t.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if tables.is_empty() {
                tracing::warn!(data = %data, "execute-snapshot signal without data-collections; nothing to do");
            }
            for name in tables {
                match TableId::parse(&name) {
                    Some(id) if self.opts.filter.captures(&id.database, &id.table) => {
                        tracing::info!(table = %id, "snapshot asked for by a signal");
                        self.resnapshot(&id, server_id, out);
                    }
                    _ => {
                        tracing::warn!(table = %name, "a signal asked to snapshot a table binlake does not capture; ignored")
                    }
                }
            }
        }
    }

    /// A table that is gone under this name needs no snapshot and is not held whole any more.
    pub(super) fn forget_table(&mut self, id: &TableId) {
        if let Some(whole) = &mut self.lifecycle.whole {
            whole.remove(id);
        }
        self.lifecycle.snapshots.remove(id);
        if self.chunk.as_ref().is_some_and(|w| w.table == *id) {
            self.chunk = None;
        }
    }

    /// A table created while streaming: the stream has every row it ever had.
    pub(super) fn followed_from_creation(&mut self, id: &TableId) {
        if let Some(whole) = &mut self.lifecycle.whole {
            whole.insert(id.clone());
        }
    }
}
