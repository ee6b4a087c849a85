//! Progress: the resumable state of the source (binlog position, GTID state, next `_seq`, snapshot and
//! XA progress). The source emits it; the sink that makes everything before it durable keeps it.

use crate::event::{BinlogPosition, TableId, Value};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// `_seq` the next emitted event gets.
    pub next_seq: u64,
    /// Where the binlog stream resumes (a transaction boundary).
    pub position: BinlogPosition,
    /// GTID state at `position`: a MySQL GTID set or MariaDB `domain-server-seq` list.
    pub gtid: Option<String>,
    /// Present from the first snapshot chunk until the stream has passed every snapshot position.
    pub snapshot: Option<SnapshotProgress>,
    /// Present while an XA transaction is prepared but neither committed nor rolled back: `position`,
    /// `gtid` are then the start of its group, so a restart reads its rows again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xa: Option<XaReplay>,
    /// Which captured tables the sink has whole, and which are being snapshotted while the stream runs.
    #[serde(default, skip_serializing_if = "Lifecycle::is_empty")]
    pub tables: Lifecycle,
    /// Not stored: everything before this checkpoint must be durable before anything after it is
    /// handed on (around the chunks of a snapshot taken while streaming, whose `_seq`s depend on the
    /// chunk read; a replay must never number later changes differently).
    #[serde(skip)]
    pub sync: bool,
}

/// Per-table progress beside the binlog position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Lifecycle {
    /// Captured tables the sink holds whole: snapshotted, or followed since their creation. A captured
    /// table outside this set (added to `source.include` later) gets a snapshot while the stream runs.
    /// `None` in checkpoints written before binlake kept it: then every table captured at start counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole: Option<std::collections::BTreeSet<TableId>>,
    /// Tables being snapshotted while the stream runs, in the order they were asked for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub snapshots: BTreeMap<TableId, Incremental>,
}

impl Lifecycle {
    pub fn is_empty(&self) -> bool {
        self.whole.is_none() && self.snapshots.is_empty()
    }
}

/// A snapshot taken while the stream runs, chunk by chunk in key order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Incremental {
    /// The last key handed over: the next chunk starts after it (`None`: at the first key).
    pub after: Option<Vec<Value>>,
    /// Chunks handed over so far (for progress reports).
    pub chunks: u64,
    /// Rows handed over so far.
    pub rows: u64,
}

/// How to resume behind a prepared XA transaction without emitting anything twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XaReplay {
    /// `_seq` the stream had at `position`: re-reading from there reproduces the same `_seq`s.
    pub resume_seq: u64,
    /// Everything up to this transaction boundary was delivered already; it is re-read, not re-emitted.
    pub delivered: BinlogPosition,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SnapshotProgress {
    pub complete: bool,
    pub tables: BTreeMap<TableId, TableProgress>,
    /// Set (to the first session's position, before it hands out a row) when the sink keeps rows handed
    /// over past its stored checkpoint (Kafka). Rows an interrupted session handed out past
    /// its stored chunk stay visible, and a later session re-reads that key range at a later position; so
    /// binlog changes after this position are emitted for every key, a replay that brings each key to its
    /// current state and deletes the keys that vanished between the sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened: Option<BinlogPosition>,
    /// `_seq`s from here on may have been handed out by a session that stopped before storing them; a new
    /// session continues here, so its rows supersede those (a sink keeps the higher `_seq` of a key).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reserved_seq: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Snapshot progress of one table. Rows are read in key order in chunks; a chunk read in a later snapshot
/// session (after a restart) was read at a later binlog position, so the key range is split into segments,
/// each with the position its rows reflect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TableProgress {
    pub segments: Vec<Segment>,
    pub done: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Inclusive upper key bound; `None` means unbounded (the table's last segment once done).
    pub upper: Option<Vec<Value>>,
    /// Binlog position the rows of this key range were read at.
    pub position: BinlogPosition,
}

impl TableProgress {
    /// The last key read so far, where the next chunk starts (exclusive).
    pub fn resume_key(&self) -> Option<&Vec<Value>> {
        self.segments.last().and_then(|s| s.upper.as_ref())
    }

    /// Records a chunk read at `position` ending at `upper` (`None` when the table is finished).
    pub fn record_chunk(&mut self, upper: Option<Vec<Value>>, position: &BinlogPosition) {
        match self.segments.last_mut() {
            Some(last) if &last.position == position => last.upper = upper.clone(),
            _ => self.segments.push(Segment {
                upper: upper.clone(),
                position: position.clone(),
            }),
        }
        if upper.is_none() {
            self.done = true;
        }
    }

    /// Position whose rows cover `key`: binlog changes to this key at or before it are already in the snapshot.
    /// `None` when the key order cannot be decided here (a collated string key spanning sessions).
    pub fn position_for(&self, key: &[Value]) -> Option<&BinlogPosition> {
        if self.segments.len() == 1 {
            return Some(&self.segments[0].position);
        }
        for seg in &self.segments {
            match &seg.upper {
                None => return Some(&seg.position),
                Some(upper) => match compare_keys(key, upper)? {
                    Ordering::Less | Ordering::Equal => return Some(&seg.position),
                    Ordering::Greater => continue,
                },
            }
        }
        self.segments.last().map(|s| &s.position)
    }
}

pub fn compare_keys(a: &[Value], b: &[Value]) -> Option<Ordering> {
    for (x, y) in a.iter().zip(b) {
        match x.key_cmp(y)? {
            Ordering::Equal => continue,
            other => return Some(other),
        }
    }
    Some(Ordering::Equal)
}

impl SnapshotProgress {
    /// Latest position any snapshot segment was read at; once the stream is past it the snapshot
    /// no longer affects which binlog changes are emitted.
    pub fn last_position(&self) -> Option<&BinlogPosition> {
        self.tables
            .values()
            .flat_map(|t| t.segments.iter().map(|s| &s.position))
            .max()
    }

    pub fn first_position(&self) -> Option<&BinlogPosition> {
        self.tables
            .values()
            .flat_map(|t| t.segments.iter().map(|s| &s.position))
            .chain(self.opened.as_ref())
            .min()
    }

    /// Position up to which the snapshot of `table` reflects binlog changes to `key`: changes at or before
    /// it are not emitted. `None` when the key order cannot be decided here.
    pub fn covered_through<'a>(
        &'a self,
        table: &'a TableProgress,
        key: &[Value],
    ) -> Option<&'a BinlogPosition> {
        match &self.opened {
            Some(opened) => Some(opened),
            None => table.position_for(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_route_keys_to_the_session_that_read_them() {
        let p1 = BinlogPosition::new("b.000001", 100);
        let p2 = BinlogPosition::new("b.000001", 500);
        let mut t = TableProgress::default();
        t.record_chunk(Some(vec![Value::Int(10)]), &p1);
        t.record_chunk(Some(vec![Value::Int(20)]), &p1);
        t.record_chunk(None, &p2);
        assert_eq!(t.segments.len(), 2);
        assert_eq!(t.position_for(&[Value::Int(20)]), Some(&p1));
        assert_eq!(t.position_for(&[Value::Int(21)]), Some(&p2));
        assert!(t.done);
    }

    #[test]
    fn an_opened_snapshot_replays_every_key_from_its_first_session() {
        let p1 = BinlogPosition::new("b.000001", 100);
        let p2 = BinlogPosition::new("b.000001", 500);
        let mut t = TableProgress::default();
        t.record_chunk(None, &p2);
        let mut s = SnapshotProgress::default();
        assert_eq!(s.covered_through(&t, &[Value::Int(1)]), Some(&p2));
        s.opened = Some(p1.clone());
        s.tables.insert(TableId::new("d", "t"), t.clone());
        assert_eq!(s.covered_through(&t, &[Value::Int(1)]), Some(&p1));
        assert_eq!(s.first_position(), Some(&p1));
        assert_eq!(s.last_position(), Some(&p2));
    }

    #[test]
    fn checkpoints_written_before_the_fields_existed_still_load() {
        let s: SnapshotProgress =
            serde_json::from_str(r#"{"complete":false,"tables":{}}"#).unwrap();
        assert_eq!((&s.opened, s.reserved_seq), (&None, 0));
        assert!(!serde_json::to_string(&s).unwrap().contains("reserved_seq"));
    }
}
