//! The lake sink: buffers events, collapses them to the last change per key, and flushes one MERGE per
//! table when the batch reaches max rows, max bytes or max latency, then moves the resume checkpoint.
//! Only whole transactions are flushed, unless a single transaction outgrows the batch limits.

use super::collapse::TableBatch;
use super::quality::QualityGate;
use super::table::{Applied, LakeTable, Progress};
use super::tables::{record_commit, CommitRetry, Tables};
use super::{app_id, table_uri, LakeError, ResumeMarker};
use crate::config::{Config, LakeConfig};
use crate::event::progress::Checkpoint;
use crate::event::{ChangeEvent, SourceMessage, TableId};
use crate::sinks::{Sink, SinkError};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// After a stop request, commits are retried for at most this long, inside ECS's 30 s stop timeout.
const DRAIN_BUDGET: Duration = Duration::from_secs(20);

pub struct LakeSink {
    cfg: LakeConfig,
    connector: String,
    marker: ResumeMarker,
    tables: Tables,
    /// Expectations checked on each table's batch before it is merged.
    quality: QualityGate,
    /// Highest `_seq` each table already holds: replayed events at or below it are skipped.
    committed: HashMap<TableId, u64>,
    /// Events of the open transaction (after the last checkpoint), and their size.
    open_tx: Vec<ChangeEvent>,
    open_tx_bytes: usize,
    ready: HashMap<TableId, TableBatch>,
    ready_rows: usize,
    ready_bytes: usize,
    ready_checkpoint: Option<Checkpoint>,
    /// A checkpoint arrived that the marker does not hold yet.
    marker_dirty: bool,
    last_flush: Instant,
    first_buffered: Option<Instant>,
    /// The pipeline's stop request; once it fires, retries must end within `DRAIN_BUDGET`.
    stop: CancellationToken,
    stop_seen: Option<Instant>,
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
    pub async fn new(config: &Config) -> Result<Self, LakeError> {
        let (cfg, connector) = (&config.lake, config.name.as_str());
        Ok(LakeSink {
            marker: ResumeMarker::new(cfg, connector)?,
            tables: Tables::new(cfg, connector).await,
            quality: QualityGate::new(cfg, &config.quality, connector).await,
            cfg: cfg.clone(),
            connector: connector.to_string(),
            committed: HashMap::new(),
            open_tx: vec![],
            open_tx_bytes: 0,
            ready: HashMap::new(),
            ready_rows: 0,
            ready_bytes: 0,
            ready_checkpoint: None,
            marker_dirty: false,
            last_flush: Instant::now(),
            first_buffered: None,
            stop: CancellationToken::new(),
            stop_seen: None,
            stats: FlushStats::default(),
        })
    }

    /// Sends quality findings to the alert task.
    pub fn with_alerts(mut self, alerts: crate::alerts::Alerts) -> Self {
        self.quality.set_alerts(alerts);
        self
    }

    /// Opens the event's table on first use and learns the highest `_seq` it holds.
    async fn table(&mut self, schema: &crate::event::TableSchema) -> Result<(), LakeError> {
        let (table, _) = self.tables.open(schema).await?;
        let id = schema.id();
        if !self.committed.contains_key(&id) {
            let seq = table.committed_seq().await?.unwrap_or(0);
            self.committed.insert(id, seq);
        }
        Ok(())
    }

    async fn accept(&mut self, ev: ChangeEvent) -> Result<(), LakeError> {
        let id = ev.schema.id();
        if ev.schema.columns.is_empty() && !self.tables.exists(&id).await? {
            return Ok(()); // a DROP of a table the lake never held
        }
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
        // the oldest waiting change keeps its time: set only when none was waiting
        crate::observe::UNCOMMITTED_SINCE_MS
            .compare_exchange(
                0,
                ev.source.ts_ms.max(1),
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .ok();
        let streamed = !ev.source.snapshot;
        self.open_tx_bytes += ev.approx_bytes();
        self.open_tx.push(ev);
        let too_big = self.open_tx.len() >= self.cfg.flush_max_rows
            || self.open_tx_bytes >= self.cfg.flush_max_bytes;
        if too_big && streamed {
            // One transaction larger than a batch (also the first one after a restart): flush it in parts
            // to keep memory bounded. Each part carries the checkpoint before the transaction, and a replay
            // skips the `_seq`s a table already holds. Snapshot chunks are bounded by the source instead.
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
        self.open_tx_bytes = 0;
        for ev in std::mem::take(&mut self.open_tx) {
            let id = ev.schema.id();
            let rules = (
                self.tables.get(&id).and_then(|t| t.partitioning.as_ref()),
                self.cfg.soft_delete,
            );
            self.ready_rows += 1;
            self.stats.last_source_ts_ms = self.stats.last_source_ts_ms.max(ev.source.ts_ms);
            self.ready
                .entry(id)
                .or_default()
                .add(ev, rules, &mut self.ready_bytes);
        }
        self.publish_buffered();
    }

    /// The buffered gauges, updated per transaction and per flush (not per event: this is the hot path).
    fn publish_buffered(&self) {
        let m = &crate::observe::METRICS;
        m.buffered_events
            .set((self.ready_rows + self.open_tx.len()) as i64);
        m.buffered_bytes
            .set((self.ready_bytes + self.open_tx_bytes) as i64);
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
        for (id, mut batch) in std::mem::take(&mut self.ready) {
            let label = id.to_string();
            let changes = batch.take_changes();
            if let Some(seq) = batch.truncate_seq {
                // committed alone and first: it carries the checkpoint only when nothing follows it, so
                // a crash before the changes after it are merged resumes before them
                let progress = Progress::Source {
                    checkpoint: checkpoint.as_ref().filter(|_| changes.is_empty()),
                    flush_tables,
                };
                self.empty_table(&id, seq, &progress).await?;
                crate::crash::point(crate::crash::AFTER_TRUNCATE_COMMIT);
                if batch.dropped && changes.is_empty() {
                    self.tables.deregister_dropped(&id).await?;
                }
                self.committed.insert(id.clone(), seq);
                if changes.is_empty() {
                    continue;
                }
            }
            // the change with the highest `_seq` has the newest schema
            if let Some(latest) = changes.iter().max_by_key(|c| c.seq) {
                self.tables.evolve(&latest.schema.clone()).await?;
            }
            let table = self.tables.get_mut(&id).expect("opened on first event");
            let quality = &mut self.quality;
            let newest_ts = changes.iter().map(|c| c.source_ts_ms).max();
            let commit_started = Instant::now();
            let mut retry = CommitRetry::default();
            let mut retrying = false;
            loop {
                let result = async {
                    if retrying {
                        table.reload().await?;
                        // the failed call may have committed after all (a lost reply): never apply it twice
                        if table.committed_seq().await? >= Some(batch.max_seq) {
                            return Ok(None);
                        }
                    }
                    let progress = Progress::Source {
                        checkpoint: checkpoint.as_ref(),
                        flush_tables,
                    };
                    let rows = table.prepare(&changes)?;
                    if quality.watches(&id) {
                        quality
                            .check(&id, &rows, &table.meta, &table.key, None)
                            .await?;
                        crate::crash::point(crate::crash::AFTER_QUALITY_RECORD);
                    }
                    table
                        .merge_batch(rows, &batch.prior, batch.max_seq, &progress)
                        .await
                        .map(Some)
                }
                .await;
                match result {
                    Ok(applied) => {
                        let applied = applied.unwrap_or(Applied {
                            rows: changes.len(),
                            ..Default::default()
                        });
                        merged += applied.rows;
                        crate::observe::METRICS
                            .rows_rewritten
                            .with_label_values(&[label.as_str()])
                            .inc_by(applied.rows_rewritten as u64);
                        break;
                    }
                    // a retried commit is harmless: `_seq` guards every row
                    Err(e) => {
                        let deadline = drain_deadline(&self.stop, &mut self.stop_seen);
                        let Some(wait) = retry.wait(&e, &id, deadline) else {
                            return Err(e);
                        };
                        tokio::time::sleep(wait).await;
                        retrying = true;
                    }
                }
            }
            record_commit(&label, changes.len(), commit_started, newest_ts);
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
        // what is still held is the open transaction's part (its first change is the oldest)
        let oldest = self.open_tx.first().map_or(0, |ev| ev.source.ts_ms.max(1));
        crate::observe::UNCOMMITTED_SINCE_MS.store(oldest, std::sync::atomic::Ordering::Relaxed);
        self.publish_buffered();
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

impl LakeSink {
    /// A TRUNCATE or DROP at `seq`: every stored row older than it goes, in one commit that records
    /// `seq` (retried like a batch; a lost reply that committed after all is not applied twice).
    async fn empty_table(
        &mut self,
        id: &TableId,
        seq: u64,
        progress: &Progress<'_>,
    ) -> Result<(), LakeError> {
        let mut retry = CommitRetry::default();
        let mut retrying = false;
        loop {
            let table = self.tables.get_mut(id).expect("opened on first event");
            let result = async {
                if retrying {
                    table.reload().await?;
                    if table.committed_seq().await? >= Some(seq) {
                        return Ok(());
                    }
                }
                table.truncate(seq, progress).await
            }
            .await;
            match result {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let deadline = drain_deadline(&self.stop, &mut self.stop_seen);
                    let Some(wait) = retry.wait(&e, id, deadline) else {
                        return Err(e);
                    };
                    tokio::time::sleep(wait).await;
                    retrying = true;
                }
            }
        }
    }

    /// Whether `id` has a TRUNCATE or DROP buffered (sealed or in the open transaction).
    fn empties_pending(&self, id: &TableId) -> bool {
        self.ready.get(id).is_some_and(|b| b.truncate_seq.is_some())
            || self
                .open_tx
                .iter()
                .any(|ev| ev.op.empties_table() && ev.schema.id() == *id)
    }
}

impl LakeSink {
    /// Every lake table of a source table (not binlake's quarantine copies), loaded.
    async fn source_tables(&self) -> Result<Vec<(TableId, deltalake::DeltaTable)>, LakeError> {
        let mut out = vec![];
        for (db, table) in super::query::list_tables(&self.cfg).await? {
            if table.ends_with(super::quality::QUARANTINE_SUFFIX) {
                continue; // binlake's copy of failing rows: no progress of its own
            }
            let url = deltalake::ensure_table_uri(&table_uri(&self.cfg, &db, &table)?)?;
            let t = deltalake::DeltaTable::try_from_url_with_storage_options(
                url,
                self.tables.storage.clone(),
            )
            .await?;
            out.push((TableId::new(&db, &table), t));
        }
        Ok(out)
    }
}

/// The latest time a retry may end: `DRAIN_BUDGET` after the stop request, none before one.
pub(super) fn drain_deadline(
    stop: &CancellationToken,
    seen: &mut Option<Instant>,
) -> Option<Instant> {
    stop.is_cancelled()
        .then(|| *seen.get_or_insert_with(Instant::now) + DRAIN_BUDGET)
}

impl Sink for LakeSink {
    fn watch_stop(&mut self, stop: CancellationToken) {
        if self.cfg.maintain_interval_secs > 0 {
            super::maintenance::spawn_scheduled(
                self.cfg.clone(),
                self.connector.clone(),
                stop.clone(),
            );
        }
        self.stop = stop;
    }

    /// The newer of the resume marker and the checkpoints in single-table commits. The marker is written
    /// after a whole flush; a crash before that leaves the tables' own commits ahead of it. A single-table
    /// commit holds its data and checkpoint atomically, so resuming from it loses nothing; multi-table
    /// flushes are only trusted through the marker, written once all their tables committed.
    async fn resume_point(&mut self) -> Result<Option<Checkpoint>, SinkError> {
        let mut best = self.marker.load().await?;
        for (id, t) in self.source_tables().await? {
            let (db, table) = (&id.database, &id.table);
            super::table::check_partitioning(
                &t,
                &id.to_string(),
                self.tables.partitioning(&id)?.as_ref(),
            )?;
            let lt = LakeTable::wrap(
                t,
                self.cfg.soft_delete,
                &self.cfg.metadata_prefix,
                app_id(&self.connector),
            )?;
            if let Some(cp) = lt.last_commit_checkpoint().await? {
                if best.as_ref().is_none_or(|b| cp.next_seq > b.next_seq) {
                    tracing::info!(table = %format!("{db}.{table}"), next_seq = cp.next_seq, "resuming from a commit newer than the marker");
                    best = Some(cp);
                }
            }
        }
        Ok(best)
    }

    /// The highest `_seq` any lake table holds from this connector (its `txn` version).
    async fn seq_floor(&mut self) -> Result<u64, SinkError> {
        let mut floor = 0;
        for (_, t) in self.source_tables().await? {
            let lt = LakeTable::wrap(
                t,
                self.cfg.soft_delete,
                &self.cfg.metadata_prefix,
                app_id(&self.connector),
            )?;
            floor = floor.max(lt.committed_seq().await?.unwrap_or(0));
        }
        Ok(floor)
    }

    async fn send(&mut self, msg: SourceMessage) -> Result<(), SinkError> {
        match msg {
            SourceMessage::Change(ev) => self.accept(ev).await?,
            SourceMessage::SchemaChange(sc) => {
                if self.empties_pending(&sc.schema.id()) {
                    // a table created again after a DROP: the drop lands first, so the new columns meet
                    // an empty table (which takes them exactly) and Glue sees the new table. A DDL is a
                    // transaction of its own, so the open one holds only its events.
                    self.seal_open_tx();
                    self.flush().await?;
                }
                // create or evolve now, so Glue and readers see new columns even before rows arrive
                if !sc.schema.key.is_empty() {
                    self.tables.evolve(&sc.schema).await?;
                }
            }
            SourceMessage::Checkpoint(cp) => {
                self.seal_open_tx();
                // around a chunk of a snapshot taken while streaming: durable before anything after it
                let sync = cp.sync;
                self.ready_checkpoint = Some(cp);
                self.marker_dirty = true;
                if sync || self.due() {
                    self.flush().await?;
                }
            }
        }
        Ok(())
    }

    async fn tick(&mut self) -> Result<(), SinkError> {
        if self.due() {
            self.flush().await?;
        }
        Ok(())
    }

    fn resnapshot_hint(&self) -> String {
        format!(
            "stop binlake and point lake.root at a new location (or move {} away): binlake then starts with a \
             full snapshot into fresh Delta tables",
            self.cfg.root
        )
    }

    async fn finish(&mut self) -> Result<(), SinkError> {
        // The open transaction is left for the replay; everything up to the last checkpoint is made durable.
        self.open_tx.clear();
        self.open_tx_bytes = 0;
        self.flush().await?;
        Ok(())
    }
}
