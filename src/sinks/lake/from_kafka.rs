//! The lake side of `binlake sink`: change events read back from Kafka, batched per table and committed
//! together with the offsets they reach — one Delta `txn` per partition, version = the last offset
//! written — so a record lands once however often it is read. A topic holds one table, so every commit
//! is one table's data with its own partitions' offsets, atomically.
//!
//! Records arrive per partition in publish order, but a publisher that crashed republishes its
//! unacknowledged tail: older changes of a key may follow newer ones. Three rules keep the table right:
//! a binlog change whose `_seq` is below the partition's highest is a republished copy and is skipped;
//! the MERGE never lets a lower `_seq` overwrite a higher one; and batch images are not trusted to say
//! where a stored row is, so every batch MERGEs over the table (`TableBatch::blind`).
//!
//! Fencing: a member that lost partitions in a rebalance (or a group coordinator that assigned one twice)
//! may still hold an older batch of them. A commit goes ahead only against a table state in which every
//! partition this process holds still stands where it last saw it; the Delta `txn` of each partition in
//! the commit makes a concurrent commit of the same partition a conflict, after which the check runs again.

use super::collapse::TableBatch;
use super::quality::QualityGate;
use super::table::Progress;
use super::tables::{record_commit, CommitRetry, Tables};
use super::LakeError;
use crate::config::quality::QualityConfig;
use crate::config::LakeConfig;
use crate::event::{TableId, TableSchema};
use crate::sources::kafka::consumer::Consumed;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A partition rewound at the same offset this many times in a row (read again from Delta's position in
/// between) has its records out of order in the log: the sink stops.
const REWINDS_BEFORE_STOP: u32 = 3;

/// No record for this long: the sink has read everything the broker had for it.
const CAUGHT_UP_AFTER: Duration = Duration::from_millis(100);

type Partition = (Arc<str>, i32);

/// The maps looked up for every record: a fast hasher (their keys are the process's own topics and tables).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What the sink holds uncommitted.
struct Buffered {
    rows: usize,
    bytes: usize,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Buffered {
    /// Due at the first limit reached (rows, bytes, age), or once the sink has caught up with at least
    /// a tenth of `flush_max_rows`: the tail of a backlog does not wait out the interval, while a
    /// trickle of changes still gathers into one commit per interval.
    fn due(&self, cfg: &LakeConfig, now: Instant) -> bool {
        let since = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t));
        let caught_up = since(self.last).is_some_and(|d| d >= CAUGHT_UP_AFTER);
        self.rows >= cfg.flush_max_rows
            || self.bytes >= cfg.flush_max_bytes
            || (caught_up && self.rows >= (cfg.flush_max_rows / 10).max(1))
            || since(self.first).is_some_and(|d| d >= Duration::from_millis(cfg.flush_interval_ms))
    }
}

/// The Delta `txn` app id recording how far `topic[partition]` is written.
pub fn app_id(connector: &str, topic: &str, partition: i32) -> String {
    format!("binlake:{connector}:{topic}:{partition}")
}

/// The Delta `txn` app id recording the `_seq` of the table's last TRUNCATE: a change older than it,
/// arriving later from another partition, is void.
pub fn truncate_app_id(connector: &str, topic: &str) -> String {
    format!("binlake:{connector}:{topic}:truncated")
}

#[derive(Default)]
struct PartitionState {
    table: Option<TableId>,
    /// The last offset Delta holds for this partition, as this process last saw it.
    in_delta: Option<i64>,
    /// Highest binlog `_seq` applied (committed) and buffered from this partition.
    committed_seq: u64,
    buffered_seq: u64,
    /// The lowest offset the next record may have (the one sought, then the last taken + 1); offsets
    /// may skip (compaction, and brokers that leave gaps) but never go back.
    next_offset: Option<i64>,
    /// The offset the partition was started at, until its first record arrives: a first record past
    /// it means the broker skipped records (tansu does, fetching from inside a record batch).
    started_at: Option<i64>,
    /// A record Delta already holds came since the start: the partition was read from before the start.
    saw_written: bool,
    /// `binlake_kafka_consumed_total` of the partition's topic, looked up once rather than per record.
    consumed: Option<prometheus::IntCounter>,
}

#[derive(Default)]
struct Pending {
    batch: TableBatch,
    /// Last offset buffered per partition.
    offsets: BTreeMap<Partition, i64>,
    newest_ts_ms: Option<i64>,
}

/// What a flush did for the consumer: positions to commit to the group (lag tools), and partitions whose
/// buffered records were dropped because another writer committed them first, to be read again from
/// the position Delta now holds.
#[derive(Debug, Default)]
pub struct Flushed {
    pub committed: Vec<(Arc<str>, i32, i64)>,
    pub reread: Vec<(Arc<str>, i32, Option<i64>)>,
}

pub struct KafkaLake {
    tables: Tables,
    partitions: FastMap<Partition, PartitionState>,
    /// `_seq` high-water marks outlive a revocation: a stale one only skips less.
    seq_marks: HashMap<Partition, u64>,
    /// Per table topic, the `_seq` of the last TRUNCATE (Delta's, then what this process buffered).
    truncated: FastMap<Arc<str>, u64>,
    pending: FastMap<TableId, Pending>,
    rows: usize,
    bytes: usize,
    first_buffered: Option<Instant>,
    /// When the last record was buffered: a pause in the stream means the sink has caught up.
    last_buffered: Option<Instant>,
    stop: CancellationToken,
    stop_seen: Option<Instant>,
    quality: QualityGate,
    /// Per partition, the offset of its last rewind and how many times in a row it came.
    rewinds: HashMap<Partition, (i64, u32)>,
    /// Per table, the version at which every held partition's `txn` was known to equal `in_delta`:
    /// a commit from another state checks first.
    verified: HashMap<TableId, i64>,
    /// The table topics are compacted: offsets may skip anywhere, also at a partition's start.
    compacted: bool,
    /// Partitions whose first record came past their start: they are read again from their first
    /// offset (records Delta holds are skipped) until one starts without a gap.
    full_read: std::collections::HashSet<Partition>,
}

impl KafkaLake {
    pub async fn new(cfg: &LakeConfig, quality: &QualityConfig, connector: &str) -> Self {
        KafkaLake {
            quality: QualityGate::new(cfg, quality, connector).await,
            tables: Tables::new(cfg, connector).await,
            partitions: FastMap::default(),
            seq_marks: HashMap::new(),
            truncated: FastMap::default(),
            pending: FastMap::default(),
            rows: 0,
            bytes: 0,
            first_buffered: None,
            last_buffered: None,
            stop: CancellationToken::new(),
            stop_seen: None,
            verified: HashMap::new(),
            rewinds: HashMap::new(),
            compacted: false,
            full_read: Default::default(),
        }
    }

    /// Whether the table topics are compacted (`kafka.topics.cleanup_policy`).
    pub fn with_compacted_topics(mut self, compacted: bool) -> Self {
        self.compacted = compacted;
        self
    }

    /// Where a partition starts, given the last offset Delta holds: the next one; from its first offset
    /// if Delta holds none, or if a start at the next one skipped records before.
    pub fn start_offset(
        &self,
        topic: &Arc<str>,
        partition: i32,
        in_delta: Option<i64>,
    ) -> rdkafka::Offset {
        match in_delta {
            Some(v) if !self.full_read.contains(&(topic.clone(), partition)) => {
                rdkafka::Offset::Offset(v + 1)
            }
            _ => rdkafka::Offset::Beginning,
        }
    }

    /// Where failing expectations are reported.
    pub fn with_alerts(mut self, alerts: crate::alerts::Alerts) -> Self {
        self.quality.set_alerts(alerts);
        self
    }

    pub fn watch_stop(&mut self, stop: CancellationToken) {
        if self.tables.cfg.maintain_interval_secs > 0 {
            super::maintenance::spawn_scheduled(
                self.tables.cfg.clone(),
                self.tables.connector.clone(),
                stop.clone(),
            );
        }
        self.stop = stop;
    }

    /// The last offset of `topic[partition]` that the table holds (`None`: nothing yet), opening or
    /// creating the table; from now on records of that partition are accepted.
    pub async fn position(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        schema: &TableSchema,
    ) -> Result<Option<i64>, LakeError> {
        let app = app_id(&self.tables.connector, topic, partition);
        let truncate_app = truncate_app_id(&self.tables.connector, topic);
        let (table, _) = self.tables.open(schema).await?;
        table.reload().await?;
        let in_delta = table.txn_version(&app).await?;
        let truncated = table.txn_version(&truncate_app).await?;
        let mark = self.truncated.entry(topic.clone()).or_default();
        *mark = (*mark).max(truncated.unwrap_or(0) as u64);
        let key = (topic.clone(), partition);
        let seq = self.seq_marks.get(&key).copied().unwrap_or(0);
        // the reload may have brought other writers' commits of partitions held before
        self.verified.remove(&schema.id());
        let next_offset = in_delta.map(|v| v + 1);
        self.partitions.insert(
            key,
            PartitionState {
                table: Some(schema.id()),
                in_delta,
                committed_seq: seq,
                buffered_seq: seq,
                next_offset,
                started_at: next_offset,
                saw_written: false,
                consumed: Some(
                    crate::observe::METRICS
                        .kafka_consumed
                        .with_label_values(&[&**topic]),
                ),
            },
        );
        Ok(in_delta)
    }

    /// Takes one record, received at `now` (read once per turn of the loop: a clock read per record
    /// showed in profiles). Records of partitions not sought (`position`) are ignored: they belong to an
    /// assignment this process no longer has.
    pub fn accept(&mut self, c: Consumed, now: Instant) -> Result<(), LakeError> {
        let key = (c.topic.clone(), c.partition);
        let Some(state) = self.partitions.get_mut(&key) else {
            return Ok(());
        };
        if state.in_delta.is_some_and(|v| c.offset <= v) {
            state.saw_written = true;
            return Ok(()); // already in Delta
        }
        if let Some(start) = state.started_at.take() {
            if c.offset > start && !self.compacted {
                crate::observe::error("kafka_sink", "start_gap");
                let (topic, partition, got) = (c.topic.to_string(), c.partition, c.offset);
                if self.full_read.insert(key.clone()) {
                    return Err(LakeError::StartGap {
                        topic,
                        partition,
                        start,
                        got,
                    });
                }
                if !state.saw_written {
                    return Err(LakeError::RecordsGone {
                        topic,
                        partition,
                        start,
                        got,
                    });
                }
                // read from its first offset, the log itself has the hole: nothing more to read
                tracing::warn!(topic = %c.topic, partition = c.partition, start, got, "offsets missing from the topic itself");
            }
            // read contiguously from where Delta stands: the next start may be exact again
            self.full_read.remove(&key);
        }
        if let Some(next) = state.next_offset {
            if c.offset < next {
                let (topic, partition, after, got) =
                    (c.topic.to_string(), c.partition, next - 1, c.offset);
                let seen = self.rewinds.entry(key).or_insert((got, 0));
                if seen.0 != got {
                    *seen = (got, 0);
                }
                seen.1 += 1;
                return Err(if seen.1 >= REWINDS_BEFORE_STOP {
                    LakeError::OffsetRewound {
                        topic,
                        partition,
                        after,
                        got,
                    }
                } else {
                    LakeError::Rewound {
                        topic,
                        partition,
                        after,
                        got,
                    }
                });
            }
        }
        state.next_offset = Some(c.offset + 1);
        let Some(table) = state.table.as_ref() else {
            return Ok(());
        };
        if let Some(consumed) = &state.consumed {
            consumed.inc();
        }
        let mut apply = c.event;
        let truncated = self.truncated.entry(c.topic.clone()).or_default();
        if let Some(ev) = &apply {
            if ev.seq < *truncated {
                apply = None; // older than a TRUNCATE already taken
            } else if ev.op.empties_table() {
                *truncated = ev.seq;
            }
        }
        if let Some(ev) = &apply {
            if !ev.source.snapshot {
                if ev.seq < state.buffered_seq {
                    crate::observe::METRICS
                        .kafka_republished_skipped
                        .with_label_values(&[&*c.topic])
                        .inc();
                    apply = None;
                } else {
                    state.buffered_seq = ev.seq;
                }
            }
        }
        if let Some(ev) = &apply {
            // compared field by field: this runs for every record
            if ev.schema.database != table.database || ev.schema.table != table.table {
                return Err(LakeError::Definite(format!(
                    "{}[{}]@{} holds a change of {} but the topic belongs to {table}; one topic must carry \
                     one table",
                    c.topic,
                    c.partition,
                    c.offset,
                    ev.schema.id()
                )));
            }
            // the table was opened when the partition was sought; newer schemas are applied at the commit
        }
        let rules = (
            self.tables.get(table).and_then(|t| t.partitioning.as_ref()),
            self.tables.cfg.soft_delete,
        );
        // looked up before inserting: a table id is two strings to copy, and it is nearly always there
        if !self.pending.contains_key(table) {
            self.pending.insert(table.clone(), Pending::default());
        }
        let pending = self.pending.get_mut(table).expect("inserted above");
        pending.batch.blind = true;
        pending.offsets.insert(key, c.offset);
        pending.batch.origin = Some(c.partition);
        if let Some(ev) = apply {
            pending.newest_ts_ms = pending.newest_ts_ms.max(Some(ev.source.ts_ms));
            pending.batch.add(ev, rules, &mut self.bytes);
            self.rows += 1;
        }
        self.first_buffered.get_or_insert(now);
        self.last_buffered = Some(now);
        Ok(())
    }

    /// Partitions of `id` this process holds whose `txn` in the table's current state differs from
    /// where this process last saw it, with the value they have now.
    async fn moved_partitions(
        &self,
        id: &TableId,
    ) -> Result<Vec<(Arc<str>, i32, Option<i64>)>, LakeError> {
        let table = self.tables.get(id).expect("opened when sought");
        let mut moved = vec![];
        for ((topic, part), s) in &self.partitions {
            if s.table.as_ref() != Some(id) {
                continue;
            }
            let now = table
                .txn_version(&app_id(&self.tables.connector, topic, *part))
                .await?;
            if now != s.in_delta {
                moved.push((topic.clone(), *part, now));
            }
        }
        Ok(moved)
    }

    pub fn due(&self) -> bool {
        let buffered = Buffered {
            rows: self.rows,
            bytes: self.bytes,
            first: self.first_buffered,
            last: self.last_buffered,
        };
        buffered.due(&self.tables.cfg, Instant::now())
    }

    /// Forgets everything buffered (the partitions were revoked, or are read again).
    pub fn discard(&mut self) {
        self.pending.clear();
        self.rows = 0;
        self.bytes = 0;
        self.first_buffered = None;
        for s in self.partitions.values_mut() {
            s.buffered_seq = s.committed_seq;
        }
    }

    /// After a revocation: every partition must be sought again before its records count.
    pub fn forget_partitions(&mut self) {
        self.discard();
        self.partitions.clear();
    }

    /// Commits every table's batch with its partitions' offsets.
    pub async fn flush(&mut self) -> Result<Flushed, LakeError> {
        let mut out = Flushed::default();
        let pending = std::mem::take(&mut self.pending);
        self.rows = 0;
        self.bytes = 0;
        self.first_buffered = None;
        for (id, p) in pending {
            match self.commit_table(&id, p).await? {
                Ok(committed) => out.committed.extend(committed),
                Err(reread) => out.reread.extend(reread),
            }
        }
        Ok(out)
    }

    /// One table's commit, retried on conflicts and transient errors. `Ok(Err(_))`: another writer
    /// committed some of these partitions meanwhile (a rebalance, or this commit's own lost reply), so
    /// the batch is dropped and those partitions are read again from Delta's position.
    #[allow(clippy::type_complexity)]
    async fn commit_table(
        &mut self,
        id: &TableId,
        mut p: Pending,
    ) -> Result<Result<Vec<(Arc<str>, i32, i64)>, Vec<(Arc<str>, i32, Option<i64>)>>, LakeError>
    {
        let connector = self.tables.connector.clone();
        let mut offsets: Vec<(String, i64)> = p
            .offsets
            .iter()
            .map(|((t, part), o)| (app_id(&connector, t, *part), *o))
            .collect();
        if let (Some(seq), Some(((topic, _), _))) = (p.batch.truncate_seq, p.offsets.iter().next())
        {
            offsets.push((truncate_app_id(&connector, topic), seq as i64));
        }
        let changes = p.batch.take_changes();
        // A TRUNCATE or DROP with changes after it is committed alone and first, recording only the
        // truncate's `_seq`: were the merge after it to fail, the partitions are read again from where
        // Delta stood, and their records older than the truncate are void.
        let truncate_alone = p.batch.truncate_seq.filter(|_| !changes.is_empty());
        if let Some(seq) = truncate_alone {
            let topic = p.offsets.keys().next().map(|(t, _)| t.clone());
            self.empty_table(id, topic.as_deref().unwrap_or_default(), seq)
                .await?;
            crate::crash::point(crate::crash::AFTER_TRUNCATE_COMMIT);
        }
        // the change with the highest `_seq` has the newest schema
        if let Some(latest) = changes.iter().max_by_key(|c| c.seq) {
            self.tables.evolve(&latest.schema.clone()).await?;
        }
        let label = id.to_string();
        let started = Instant::now();
        let mut retry = CommitRetry::default();
        let mut retrying = false;
        let origins: Vec<i32> = changes.iter().map(|c| c.origin.unwrap_or(-1)).collect();
        loop {
            let result = async {
                if retrying {
                    self.tables.get_mut(id).expect("opened").reload().await?;
                }
                // the fence: commit only over a state where this process's partitions stand where it saw them
                let version = self.tables.get(id).expect("opened").version();
                if retrying || self.verified.get(id).copied() != version {
                    let moved = self.moved_partitions(id).await?;
                    if !moved.is_empty() {
                        return Ok(Some(moved));
                    }
                    if let Some(v) = version {
                        self.verified.insert(id.clone(), v);
                    }
                }
                let table = self.tables.get_mut(id).expect("opened when sought");
                let progress = Progress::Offsets(&offsets);
                if let (Some(seq), None) = (p.batch.truncate_seq, truncate_alone) {
                    table.truncate(seq, &progress).await?;
                }
                if changes.is_empty() && p.batch.truncate_seq.is_none() {
                    // only tombstones or skipped copies: nothing to write; Delta's offset stays behind
                    // and they are read again after a restart
                    return Ok(None);
                }
                let rows = table.prepare(&changes)?;
                tracing::debug!(table = %id, rows = changes.len(), "batch prepared for the merge");
                if self.quality.watches(id) {
                    let (meta, key) = (&table.meta, &table.key);
                    self.quality
                        .check(id, &rows, meta, key, Some(&origins))
                        .await?;
                    crate::crash::point(crate::crash::AFTER_QUALITY_RECORD);
                }
                table
                    .merge_batch(rows, &p.batch.prior, p.batch.max_seq, &progress)
                    .await?;
                // still verified only if no other writer's commit came in between (delta-rs rebases a
                // commit over the ones it does not conflict with)
                match (version, table.version()) {
                    (Some(v), Some(after)) if after == v + 1 => {
                        self.verified.insert(id.clone(), after);
                    }
                    _ => {
                        self.verified.remove(id);
                    }
                }
                Ok::<_, LakeError>(None)
            }
            .await;
            match result {
                Ok(None) => break,
                Ok(Some(moved)) => {
                    tracing::info!(table = %id, partitions = ?moved, "another writer committed these partitions; reading them again from Delta's position");
                    self.verified.remove(id);
                    return Ok(Err(self.read_again(&p.offsets, &moved)));
                }
                Err(e) => {
                    let deadline = super::batch::drain_deadline(&self.stop, &mut self.stop_seen);
                    let Some(wait) = retry.wait(&e, id, deadline) else {
                        return Err(e);
                    };
                    tokio::time::sleep(wait).await;
                    retrying = true;
                }
            }
        }
        if p.batch.truncate_seq.is_some() && truncate_alone.is_none() {
            crate::crash::point(crate::crash::AFTER_TRUNCATE_COMMIT);
            if p.batch.dropped {
                self.tables.deregister_dropped(id).await?;
            }
        }
        record_commit(&label, changes.len(), started, p.newest_ts_ms);
        tracing::debug!(table = %id, rows = changes.len(), "batch committed");
        crate::crash::point(crate::crash::AFTER_KAFKA_SINK_COMMIT);
        let mut committed = vec![];
        let wrote = !changes.is_empty() || p.batch.truncate_seq.is_some();
        for ((t, part), offset) in &p.offsets {
            if let Some(s) = self.partitions.get_mut(&(t.clone(), *part)) {
                if wrote {
                    s.in_delta = Some(*offset);
                }
                s.committed_seq = s.buffered_seq;
                self.seq_marks.insert((t.clone(), *part), s.committed_seq);
            }
            // the group's offset (for lag tools) never runs ahead of the one Delta holds
            if wrote {
                committed.push((t.clone(), *part, offset + 1));
            }
        }
        Ok(Ok(committed))
    }

    /// A TRUNCATE or DROP at `seq` committed on its own: rows older than it go, and the commit records
    /// only the table's truncate mark (no partition offsets, so no fence is needed: another member
    /// applying the same truncate conflicts on the mark and then finds it applied).
    async fn empty_table(&mut self, id: &TableId, topic: &str, seq: u64) -> Result<(), LakeError> {
        let mark = [(truncate_app_id(&self.tables.connector, topic), seq as i64)];
        let mut retry = CommitRetry::default();
        let mut retrying = false;
        loop {
            let table = self.tables.get_mut(id).expect("opened when sought");
            let result = async {
                if retrying {
                    table.reload().await?;
                    if table.txn_version(&mark[0].0).await? >= Some(seq as i64) {
                        return Ok(());
                    }
                }
                table.truncate(seq, &Progress::Offsets(&mark)).await
            }
            .await;
            match result {
                Ok(()) => {
                    self.verified.remove(id);
                    return Ok(());
                }
                Err(e) => {
                    let deadline = super::batch::drain_deadline(&self.stop, &mut self.stop_seen);
                    let Some(wait) = retry.wait(&e, id, deadline) else {
                        return Err(e);
                    };
                    tokio::time::sleep(wait).await;
                    retrying = true;
                }
            }
        }
    }

    /// After another writer moved some of this table's partitions: every partition of the dropped batch
    /// and every moved one restarts at the position Delta holds now.
    fn read_again(
        &mut self,
        batch: &BTreeMap<Partition, i64>,
        moved: &[(Arc<str>, i32, Option<i64>)],
    ) -> Vec<(Arc<str>, i32, Option<i64>)> {
        let mut keys: Vec<Partition> = batch.keys().cloned().collect();
        for (t, part, _) in moved {
            if !keys.iter().any(|(kt, kp)| kt == t && kp == part) {
                keys.push((t.clone(), *part));
            }
        }
        let mut reread = vec![];
        for key in keys {
            let now = moved
                .iter()
                .find(|(t, part, _)| *t == key.0 && *part == key.1)
                .map(|m| m.2);
            let Some(s) = self.partitions.get_mut(&key) else {
                continue;
            };
            if let Some(now) = now {
                s.in_delta = now;
            }
            s.buffered_seq = s.committed_seq;
            s.next_offset = s.in_delta.map(|v| v + 1);
            s.started_at = s.next_offset;
            s.saw_written = false;
            reread.push((key.0, key.1, s.in_delta));
        }
        reread
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_due_at_a_limit_or_when_a_large_one_has_caught_up() {
        let cfg = LakeConfig {
            flush_max_rows: 1000,
            flush_max_bytes: 1 << 20,
            flush_interval_ms: 1000,
            ..LakeConfig::default()
        };
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let held = |rows, last_ms| Buffered {
            rows,
            bytes: rows * 100,
            first: Some(t0),
            last: Some(at(last_ms)),
        };
        // records still arriving: neither a small nor a large batch is due before a limit
        assert!(!held(50, 500).due(&cfg, at(550)));
        assert!(!held(500, 500).due(&cfg, at(550)));
        // caught up (no record for 100 ms): a tenth of flush_max_rows goes now, a trickle waits
        assert!(held(100, 500).due(&cfg, at(600)));
        assert!(!held(99, 500).due(&cfg, at(900)));
        // the limits
        assert!(held(99, 500).due(&cfg, at(1000)));
        assert!(held(1000, 999).due(&cfg, at(999)));
        let wide = Buffered {
            bytes: 1 << 20,
            ..held(1, 10)
        };
        assert!(wide.due(&cfg, at(10)));
        let empty = Buffered {
            rows: 0,
            bytes: 0,
            first: None,
            last: None,
        };
        assert!(!empty.due(&cfg, at(5000)));
    }
}
