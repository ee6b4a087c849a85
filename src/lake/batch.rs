//! The lake sink: buffers events, collapses them to the last change per key, and flushes one MERGE per
//! table when the batch reaches max rows, max bytes or max latency, then moves the resume checkpoint.
//! Only whole transactions are flushed, unless a single transaction outgrows the batch limits.

use super::glue::GlueCatalog;
use super::partition::Partitioning;
use super::table::{KeyChange, LakeTable, Prior, TableOptions};
use super::{app_id, storage_options, table_uri, LakeError, ResumeMarker};
use crate::checkpoint::Checkpoint;
use crate::config::LakeConfig;
use crate::event::{ChangeEvent, Op, SourceMessage, TableId, Value};
use crate::pipeline::{PipelineError, Sink};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Transient commit failures are retried with backoff this many times before the pipeline stops.
const MAX_COMMIT_RETRIES: u32 = 8;

#[derive(Default)]
struct TableBatch {
    /// Key (serialized) → latest change in this batch.
    changes: HashMap<Vec<u8>, KeyChange>,
    /// A TRUNCATE in this batch: earlier changes were discarded; it is applied before `changes`.
    truncate_seq: Option<u64>,
    max_seq: u64,
    prior: Prior,
}

/// What a change says about the row its key already has in the table.
enum Stored<'a> {
    /// The before image: the row as the table holds it, since the table equals the source at its last `_seq`.
    Row(&'a [Value]),
    /// An insert: MySQL had no row with this key, so neither has the table.
    Absent,
    /// A snapshot read says nothing about an older row.
    Unknown,
}

impl TableBatch {
    fn put(
        &mut self,
        ev: &ChangeEvent,
        op: &'static str,
        row: Vec<Value>,
        stored: Stored,
        rules: (Option<&Partitioning>, bool),
        bytes: &mut usize,
    ) {
        let key = serde_json::to_vec(&ev.schema.key_of(&row)).expect("values serialize");
        if !self.changes.contains_key(&key) {
            // the first change of a key in the batch is the one that knows the stored row
            self.note_stored(&ev.schema, &row, stored, rules);
        }
        *bytes += row.iter().map(approx_size).sum::<usize>() + key.len();
        self.changes.insert(
            key,
            KeyChange {
                seq: ev.seq,
                op,
                schema: ev.schema.clone(),
                row,
                deleted: op == "d",
                source_ts_ms: ev.source.ts_ms,
            },
        );
    }

    /// Adds one event: the latest change per key wins, and the first change of each key notes where
    /// its stored row is.
    fn add(&mut self, ev: &ChangeEvent, rules: (Option<&Partitioning>, bool), bytes: &mut usize) {
        self.max_seq = self.max_seq.max(ev.seq);
        let before = ev.before.as_deref();
        let stored_before = || before.map_or(Stored::Unknown, Stored::Row);
        match ev.op {
            Op::Truncate => {
                // applied before the batch's changes, so every later key starts out absent
                self.changes.clear();
                self.prior = Prior::default();
                self.truncate_seq = Some(ev.seq);
            }
            Op::Update if ev.key_changed() => {
                let old = before.unwrap_or_default().to_vec();
                self.put(ev, "d", old, stored_before(), rules, bytes);
                let after = ev.after.clone().unwrap_or_default();
                self.put(ev, "u", after, Stored::Absent, rules, bytes);
            }
            Op::Insert | Op::Read | Op::Update => {
                let stored = match ev.op {
                    Op::Insert => Stored::Absent,
                    Op::Read => Stored::Unknown,
                    _ => stored_before(),
                };
                let after = ev.after.clone().unwrap_or_default();
                self.put(ev, ev.op.code(), after, stored, rules, bytes);
            }
            Op::Delete => {
                let old = before.unwrap_or_default().to_vec();
                self.put(ev, "d", old, stored_before(), rules, bytes);
            }
        }
    }

    fn note_stored(
        &mut self,
        schema: &crate::event::TableSchema,
        row: &[Value],
        stored: Stored,
        (partitioning, soft_delete): (Option<&Partitioning>, bool),
    ) {
        let stored_row = match stored {
            Stored::Row(r) => r,
            Stored::Absent if !soft_delete => return,
            // a soft-deleted row of this key may still be stored, in any partition
            Stored::Absent => return self.prior.unknown = true,
            Stored::Unknown => match partitioning {
                // the partition column is part of the key, so an older row sits in the same partition
                Some(p)
                    if schema
                        .key
                        .iter()
                        .any(|&k| schema.columns[k].name == p.source_column) =>
                {
                    row
                }
                _ => return self.prior.unknown = true,
            },
        };
        match partitioning {
            None => {
                self.prior.partitions.insert(None);
            }
            Some(p) if schema.columns.iter().any(|c| c.name == p.source_column) => {
                self.prior.partitions.insert(p.value(schema, stored_row));
            }
            // the partition column was dropped in MySQL: this image cannot tell the stored partition
            Some(_) => self.prior.unknown = true,
        }
    }
}

pub struct LakeSink {
    cfg: LakeConfig,
    connector: String,
    storage: HashMap<String, String>,
    marker: ResumeMarker,
    catalog: Option<GlueCatalog>,
    tables: HashMap<TableId, LakeTable>,
    /// Highest `_seq` each table already holds: replayed events at or below it are skipped.
    committed: HashMap<TableId, u64>,
    /// Events of the open transaction (after the last checkpoint).
    open_tx: Vec<ChangeEvent>,
    ready: HashMap<TableId, TableBatch>,
    ready_rows: usize,
    ready_bytes: usize,
    ready_checkpoint: Option<Checkpoint>,
    /// A checkpoint arrived that the marker does not hold yet.
    marker_dirty: bool,
    last_flush: Instant,
    last_maintenance: Instant,
    first_buffered: Option<Instant>,
    pub stats: FlushStats,
}

/// What the last flushes did; read by metrics and benchmarks.
#[derive(Debug, Default, Clone)]
pub struct FlushStats {
    pub flushes: u64,
    pub rows_merged: u64,
    pub last_flush: Duration,
    pub last_source_ts_ms: i64,
}

impl LakeSink {
    pub async fn new(cfg: &LakeConfig, connector: &str) -> Result<Self, LakeError> {
        let catalog = match &cfg.glue {
            Some(g) => Some(GlueCatalog::new(g).await),
            None => None,
        };
        Ok(LakeSink {
            marker: ResumeMarker::new(cfg, connector)?,
            catalog,
            storage: storage_options(cfg),
            cfg: cfg.clone(),
            connector: connector.to_string(),
            tables: HashMap::new(),
            committed: HashMap::new(),
            open_tx: vec![],
            ready: HashMap::new(),
            ready_rows: 0,
            ready_bytes: 0,
            ready_checkpoint: None,
            marker_dirty: false,
            last_flush: Instant::now(),
            last_maintenance: Instant::now(),
            first_buffered: None,
            stats: FlushStats::default(),
        })
    }

    async fn table(
        &mut self,
        ev_schema: &crate::event::TableSchema,
    ) -> Result<&mut LakeTable, LakeError> {
        let id = ev_schema.id();
        if !self.tables.contains_key(&id) {
            let uri = table_uri(&self.cfg, &ev_schema.database, &ev_schema.table);
            let options = TableOptions {
                partitioning: self.partitioning(&id)?,
                ..TableOptions::new(&self.cfg, &self.connector)
            };
            let t = LakeTable::open_or_create(&uri, &self.storage, ev_schema, options).await?;
            let seq = t.committed_seq().await?.unwrap_or(0);
            self.committed.insert(id.clone(), seq);
            self.tables.insert(id.clone(), t);
            // registering on every start keeps Glue in step even if it was changed or lost meanwhile
            self.register(&id).await?;
        }
        Ok(self.tables.get_mut(&id).expect("inserted above"))
    }

    fn partitioning(&self, id: &TableId) -> Result<Option<Partitioning>, LakeError> {
        self.cfg
            .partitions
            .get(&id.0)
            .map(|spec| Partitioning::parse(spec).map_err(LakeError::Definite))
            .transpose()
    }

    async fn register(&self, id: &TableId) -> Result<(), LakeError> {
        let (Some(catalog), Some(table)) = (&self.catalog, self.tables.get(id)) else {
            return Ok(());
        };
        let (db, name) = id.0.split_once('.').unwrap_or(("", &id.0));
        catalog
            .register(
                db,
                name,
                &table_uri(&self.cfg, db, name),
                &table.all_columns()?,
            )
            .await
    }

    async fn evolve(&mut self, schema: &crate::event::TableSchema) -> Result<(), LakeError> {
        if self.table(schema).await?.evolve(schema).await? {
            self.register(&schema.id()).await?;
        }
        Ok(())
    }

    async fn accept(&mut self, ev: ChangeEvent) -> Result<(), LakeError> {
        let id = ev.schema.id();
        self.table(&ev.schema).await?;
        if ev.seq <= self.committed[&id] {
            return Ok(()); // replay of something this table already has
        }
        if self.in_snapshot() && !self.ready.is_empty() && !self.ready.contains_key(&id) {
            // Snapshot chunks are flushed one table at a time, so each commit is atomic with its checkpoint:
            // a resumed snapshot never re-reads a range that Delta already holds (see resume_point).
            self.flush().await?;
        }
        self.first_buffered.get_or_insert_with(Instant::now);
        self.open_tx.push(ev);
        if self.open_tx.len() >= self.cfg.flush_max_rows && !self.in_snapshot() {
            // One transaction larger than a batch: flush it in parts to keep memory bounded.
            self.seal_open_tx();
            self.flush().await?;
        }
        Ok(())
    }

    fn in_snapshot(&self) -> bool {
        self.ready_checkpoint
            .as_ref()
            .is_none_or(|cp| cp.snapshot.as_ref().is_some_and(|s| !s.complete))
    }

    /// Moves the events of the finished transaction(s) into the per-table batches.
    fn seal_open_tx(&mut self) {
        for ev in std::mem::take(&mut self.open_tx) {
            let id = ev.schema.id();
            let rules = (
                self.tables.get(&id).and_then(|t| t.partitioning.as_ref()),
                self.cfg.soft_delete,
            );
            self.ready_rows += 1;
            self.ready
                .entry(id)
                .or_default()
                .add(&ev, rules, &mut self.ready_bytes);
            self.stats.last_source_ts_ms = self.stats.last_source_ts_ms.max(ev.source.ts_ms);
        }
    }

    fn due(&self) -> bool {
        let interval = Duration::from_millis(self.cfg.flush_interval_ms);
        self.ready_rows >= self.cfg.flush_max_rows
            || self.ready_bytes >= self.cfg.flush_max_bytes
            || (self.ready_rows > 0 && self.first_buffered.is_some_and(|t| t.elapsed() >= interval))
            // an idle capture still moves its resume position forward
            || (self.marker_dirty && self.last_flush.elapsed() >= interval)
    }

    /// Commits every table's batch, then records the checkpoint they reach.
    pub async fn flush(&mut self) -> Result<(), LakeError> {
        let started = Instant::now();
        let checkpoint = self.ready_checkpoint.clone();
        let mut merged = 0;
        let flush_tables = self.ready.len();
        for (id, batch) in std::mem::take(&mut self.ready) {
            let changes: Vec<KeyChange> = batch.changes.into_values().collect();
            if let Some(latest) = changes.iter().max_by_key(|c| c.schema.version) {
                self.evolve(&latest.schema.clone()).await?;
            }
            let table = self.tables.get_mut(&id).expect("opened on first event");
            let newest_ts = changes.iter().map(|c| c.source_ts_ms).max();
            let commit_started = Instant::now();
            let mut attempt = 0u32;
            loop {
                let result = async {
                    if let Some(seq) = batch.truncate_seq {
                        table
                            .truncate(seq, checkpoint.as_ref(), flush_tables)
                            .await?;
                    }
                    table
                        .merge(
                            &changes,
                            &batch.prior,
                            batch.max_seq,
                            checkpoint.as_ref(),
                            flush_tables,
                        )
                        .await
                }
                .await;
                match result {
                    Ok(applied) => {
                        merged += applied.rows;
                        crate::observe::METRICS
                            .rows_rewritten
                            .with_label_values(&[id.0.as_str()])
                            .inc_by(applied.rows_rewritten as u64);
                        break;
                    }
                    // a retried commit is harmless: `_seq` guards every row and truncate is idempotent
                    Err(e) if e.is_transient() && attempt < MAX_COMMIT_RETRIES => {
                        let wait = crate::source::backoff(attempt, Duration::from_secs(30));
                        tracing::warn!(table = %id, error = %e, retry_in_s = wait.as_secs(), "lake commit failed; retrying");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        table.reload().await?;
                        // the failed call may have committed after all (a lost reply); an append must not repeat
                        if table.committed_seq().await? >= Some(batch.max_seq) {
                            merged += changes.len();
                            break;
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            let m = &crate::observe::METRICS;
            m.commit_seconds
                .with_label_values(&[id.0.as_str()])
                .observe(commit_started.elapsed().as_secs_f64());
            m.batch_rows
                .with_label_values(&[id.0.as_str()])
                .observe(changes.len() as f64);
            m.rows_merged
                .with_label_values(&[id.0.as_str()])
                .inc_by(changes.len() as u64);
            if let Some(ts) = newest_ts {
                m.lag_ms
                    .with_label_values(&[id.0.as_str()])
                    .set(crate::pipeline::now_ms() - ts);
            }
            self.committed.insert(id, batch.max_seq);
        }
        if let (Some(cp), true) = (&checkpoint, self.marker_dirty) {
            self.marker.save(cp).await?;
            self.marker_dirty = false;
        }
        self.last_flush = Instant::now();
        self.ready_rows = 0;
        self.ready_bytes = 0;
        self.first_buffered = if self.open_tx.is_empty() {
            None
        } else {
            Some(Instant::now())
        };
        self.stats.flushes += 1;
        self.stats.rows_merged += merged as u64;
        self.stats.last_flush = started.elapsed();
        if merged > 0 {
            tracing::debug!(
                rows = merged,
                ms = started.elapsed().as_millis() as u64,
                "lake batch committed"
            );
        }
        Ok(())
    }
}

fn approx_size(v: &Value) -> usize {
    match v {
        Value::String(s) | Value::Decimal(s) | Value::Json(s) | Value::Enum(s) | Value::Set(s) => {
            s.len() + 24
        }
        Value::Bytes(b) => b.len() + 24,
        Value::Geometry { wkb, .. } => wkb.len() + 28,
        Value::Vector(v) => v.len() * 4 + 24,
        _ => 16,
    }
}

impl Sink for LakeSink {
    /// The newer of the resume marker and the checkpoints in single-table commits. The marker is written
    /// after a whole flush; a crash before that leaves the tables' own commits ahead of it. A single-table
    /// commit holds its data and checkpoint atomically, so resuming from it loses nothing; multi-table
    /// flushes are only trusted through the marker, written once all their tables committed.
    async fn resume_point(&mut self) -> Result<Option<Checkpoint>, PipelineError> {
        let mut best = self.marker.load().await?;
        for (db, table) in super::query::list_tables(&self.cfg).await? {
            let uri = table_uri(&self.cfg, &db, &table);
            let url = deltalake::ensure_table_uri(&uri).map_err(LakeError::from)?;
            let t =
                deltalake::DeltaTable::try_from_url_with_storage_options(url, self.storage.clone())
                    .await
                    .map_err(LakeError::from)?;
            let id = TableId::new(&db, &table);
            super::table::check_partitioning(&t, &id.0, self.partitioning(&id)?.as_ref())?;
            let lt = LakeTable::wrap(t, self.cfg.soft_delete, app_id(&self.connector))?;
            if let Some(cp) = lt.last_commit_checkpoint().await? {
                if best.as_ref().is_none_or(|b| cp.next_seq > b.next_seq) {
                    tracing::info!(table = %format!("{db}.{table}"), next_seq = cp.next_seq, "resuming from a commit newer than the marker");
                    best = Some(cp);
                }
            }
        }
        Ok(best)
    }

    async fn send(&mut self, msg: SourceMessage) -> Result<(), PipelineError> {
        match msg {
            SourceMessage::Change(ev) => self.accept(ev).await?,
            SourceMessage::SchemaChange(sc) => {
                // create or evolve now, so Glue and readers see new columns even before rows arrive
                if !sc.schema.key.is_empty() {
                    self.evolve(&sc.schema).await?;
                }
            }
            SourceMessage::Checkpoint(cp) => {
                self.seal_open_tx();
                self.ready_checkpoint = Some(cp);
                self.marker_dirty = true;
                if self.due() {
                    self.flush().await?;
                }
            }
        }
        Ok(())
    }

    async fn tick(&mut self) -> Result<(), PipelineError> {
        if self.due() {
            self.flush().await?;
        }
        let every = self.cfg.maintain_interval_secs;
        if every > 0 && self.last_maintenance.elapsed() >= Duration::from_secs(every) {
            self.last_maintenance = Instant::now();
            for (id, table) in self.tables.iter_mut() {
                // maintenance failures are not data loss: report and carry on streaming
                match table
                    .maintain(self.cfg.target_file_mb, self.cfg.vacuum_retention_hours)
                    .await
                {
                    Ok(m) => {
                        tracing::info!(table = %id, compacted = m.files_removed, into = m.files_added, vacuumed = m.files_vacuumed, "maintenance")
                    }
                    Err(e) => {
                        tracing::warn!(table = %id, error = %e, "maintenance failed; will retry next interval")
                    }
                }
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), PipelineError> {
        // The open transaction is left for the replay; everything up to the last checkpoint is made durable.
        self.open_tx.clear();
        self.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{BinlogPosition, ColumnKind, ColumnSchema, EventSource, Row, TableSchema};
    use std::sync::Arc;

    fn schema(key_includes_day: bool) -> Arc<TableSchema> {
        let col = ColumnSchema::new;
        Arc::new(TableSchema {
            database: "d".into(),
            table: "t".into(),
            columns: vec![col("id", ColumnKind::BigInt), col("day", ColumnKind::Date)],
            key: if key_includes_day {
                vec![0, 1]
            } else {
                vec![0]
            },
            version: 1,
        })
    }

    fn row(id: i64, day: u8) -> Row {
        vec![
            Value::Int(id),
            Value::Date {
                year: 2026,
                month: 11,
                day,
            },
        ]
    }

    fn ev(
        schema: &Arc<TableSchema>,
        op: Op,
        before: Option<Row>,
        after: Option<Row>,
    ) -> ChangeEvent {
        ChangeEvent {
            op,
            schema: schema.clone(),
            before,
            after,
            source: EventSource {
                server_id: 1,
                position: BinlogPosition::new("b.000001", 4),
                row: 0,
                gtid: None,
                ts_ms: 0,
                snapshot: op == Op::Read,
            },
            seq: 1,
            tx_order: 1,
        }
    }

    fn batch_of(events: &[ChangeEvent], partitioned: bool, soft: bool) -> TableBatch {
        let p = Partitioning::parse("day(day)").unwrap();
        let mut b = TableBatch::default();
        let mut bytes = 0;
        for e in events {
            b.add(e, (partitioned.then_some(&p), soft), &mut bytes);
        }
        b
    }

    fn days(b: &TableBatch) -> Vec<Option<String>> {
        b.prior.partitions.iter().cloned().collect()
    }

    #[test]
    fn inserts_only_need_no_read_of_the_table() {
        let s = schema(false);
        let events = [
            ev(&s, Op::Insert, None, Some(row(1, 20))),
            ev(&s, Op::Insert, None, Some(row(2, 21))),
            // a key inserted and updated within the batch is still new to the table
            ev(&s, Op::Update, Some(row(2, 21)), Some(row(2, 19))),
            ev(&s, Op::Delete, Some(row(1, 20)), None),
        ];
        assert!(batch_of(&events, true, false).prior.all_new());
        assert!(batch_of(&events, false, false).prior.all_new());
        // with soft delete an insert may revive a deleted row stored anywhere
        assert!(batch_of(&events, true, true).prior.unknown);
    }

    #[test]
    fn the_first_change_of_a_key_names_its_stored_partition() {
        let s = schema(false);
        let events = [
            ev(&s, Op::Update, Some(row(1, 18)), Some(row(1, 19))),
            ev(&s, Op::Update, Some(row(1, 19)), Some(row(1, 20))),
            ev(&s, Op::Delete, Some(row(2, 17)), None),
            // key change: the old key's row is stored, the new key is not
            ev(&s, Op::Update, Some(row(3, 16)), Some(row(4, 21))),
        ];
        let b = batch_of(&events, true, false);
        assert!(!b.prior.unknown);
        let want = ["2026-11-16", "2026-11-17", "2026-11-18"].map(|d| Some(d.to_string()));
        assert_eq!(days(&b), want);
        assert_eq!(b.changes.len(), 4, "keys 1, 2, 3 (deleted), 4");
        // unpartitioned: stored rows exist, so a MERGE reads the table
        let b = batch_of(&events, false, false);
        assert!(!b.prior.all_new() && !b.prior.unknown);
    }

    #[test]
    fn snapshot_reads_are_unknown_unless_the_key_fixes_the_partition() {
        let s = schema(false);
        let b = batch_of(&[ev(&s, Op::Read, None, Some(row(1, 20)))], true, false);
        assert!(b.prior.unknown);
        let s = schema(true);
        let b = batch_of(&[ev(&s, Op::Read, None, Some(row(1, 20)))], true, false);
        assert!(!b.prior.unknown);
        assert_eq!(days(&b), [Some("2026-11-20".to_string())]);
    }

    #[test]
    fn truncate_starts_every_key_out_absent() {
        let s = schema(false);
        let t = ev(&s, Op::Truncate, None, None);
        let events = [
            ev(&s, Op::Update, Some(row(1, 18)), Some(row(1, 19))),
            t,
            ev(&s, Op::Insert, None, Some(row(1, 20))),
        ];
        let b = batch_of(&events, true, false);
        assert!(b.prior.all_new());
        assert!(b.truncate_seq.is_some());
    }
}
