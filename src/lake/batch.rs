//! The lake sink: buffers events, collapses them to the last change per key, and flushes one MERGE per
//! table when the batch reaches max rows, max bytes or max latency, then moves the resume checkpoint.
//! Only whole transactions are flushed, unless a single transaction outgrows the batch limits.

use super::glue::GlueCatalog;
use super::table::{KeyChange, LakeTable};
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
            let t = LakeTable::open_or_create(
                &uri,
                &self.storage,
                ev_schema,
                self.cfg.soft_delete,
                self.cfg.checkpoint_every,
                app_id(&self.connector),
            )
            .await?;
            let seq = t.committed_seq().await?.unwrap_or(0);
            self.committed.insert(id.clone(), seq);
            self.tables.insert(id.clone(), t);
            // registering on every start keeps Glue in step even if it was changed or lost meanwhile
            self.register(&id).await?;
        }
        Ok(self.tables.get_mut(&id).expect("inserted above"))
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
            let batch = self.ready.entry(id).or_default();
            batch.max_seq = batch.max_seq.max(ev.seq);
            self.ready_rows += 1;
            let ts = ev.source.ts_ms;
            match ev.op {
                Op::Truncate => {
                    batch.changes.clear();
                    batch.truncate_seq = Some(ev.seq);
                }
                Op::Insert | Op::Read | Op::Update => {
                    if let (Op::Update, Some(before)) = (ev.op, &ev.before) {
                        if ev.key_changed() {
                            put(batch, &ev, "d", before.clone(), ts, &mut self.ready_bytes);
                        }
                    }
                    let after = ev.after.clone().unwrap_or_default();
                    let op = ev.op.code();
                    put(batch, &ev, op, after, ts, &mut self.ready_bytes);
                }
                Op::Delete => {
                    let before = ev.before.clone().unwrap_or_default();
                    put(batch, &ev, "d", before, ts, &mut self.ready_bytes);
                }
            }
            self.stats.last_source_ts_ms = self.stats.last_source_ts_ms.max(ts);
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
                        .merge(&changes, batch.max_seq, checkpoint.as_ref(), flush_tables)
                        .await
                }
                .await;
                match result {
                    Ok(n) => {
                        merged += n;
                        break;
                    }
                    // a retried commit is harmless: `_seq` guards every row and truncate is idempotent
                    Err(e) if e.is_transient() && attempt < MAX_COMMIT_RETRIES => {
                        let wait = crate::source::backoff(attempt, Duration::from_secs(30));
                        tracing::warn!(table = %id, error = %e, retry_in_s = wait.as_secs(), "lake commit failed; retrying");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        table.reload().await?;
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

fn put(
    batch: &mut TableBatch,
    ev: &ChangeEvent,
    op: &'static str,
    row: Vec<Value>,
    ts: i64,
    bytes: &mut usize,
) {
    let key = serde_json::to_vec(&ev.schema.key_of(&row)).expect("values serialize");
    *bytes += row.iter().map(approx_size).sum::<usize>() + key.len();
    batch.changes.insert(
        key,
        KeyChange {
            seq: ev.seq,
            op,
            schema: ev.schema.clone(),
            row,
            deleted: op == "d",
            source_ts_ms: ts,
        },
    );
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
