//! Batching: the changes of one table in a micro-batch, collapsed to the latest change per key, and what
//! they tell about the rows the table already stores (so a MERGE reads only the partitions it must).

use super::partition::Partitioning;
use super::table::{KeyChange, Prior};
use crate::event::{ChangeEvent, Op, Value};
use std::collections::HashMap;

#[derive(Default)]
pub struct TableBatch {
    /// Key (`TableSchema::key_bytes`) → latest change in this batch.
    pub changes: HashMap<Vec<u8>, KeyChange, foldhash::fast::RandomState>,
    /// A TRUNCATE or DROP in this batch: earlier changes were discarded; it is applied before `changes`.
    pub truncate_seq: Option<u64>,
    /// The last of those was a DROP: the table leaves the catalog unless changes follow it.
    pub dropped: bool,
    pub max_seq: u64,
    pub prior: Prior,
    /// The events' images say nothing reliable about the stored rows: Kafka mode, where a republished
    /// tail repeats older changes after newer ones were applied. Every batch then MERGEs over the table.
    pub blind: bool,
    /// Kafka mode: the partition of the change being added (set before each `add`).
    pub origin: Option<i32>,
}

/// What a change says about the row its key already has in the table.
enum Stored<'a> {
    /// The before image: the row as the table holds it, since the table equals the source at its last `_seq`.
    Row(&'a [Value]),
    /// An insert: MySQL had no row with this key, so neither has the table.
    Absent,
    /// A snapshot read says nothing about an older row.
    Unknown,
    /// The row given with it is the stored row (a delete's before image).
    Given,
}

/// The before image, moved out of the event, and what it says about the stored row.
fn take_before(ev: &mut ChangeEvent) -> (Vec<Value>, Stored<'static>) {
    match ev.before.take() {
        Some(row) => (row, Stored::Given),
        None => (vec![], Stored::Unknown),
    }
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
        let key = ev.schema.key_bytes(&row);
        match self.changes.get(&key) {
            // the first change of a key in the batch is the one that knows the stored row
            None => self.note_stored(&ev.schema, &row, stored, rules),
            // Kafka: a republished older change must not replace a newer one of the same batch
            Some(newer) if newer.seq > ev.seq => return,
            Some(_) => {}
        }
        *bytes += row.iter().map(Value::approx_bytes).sum::<usize>() + key.len();
        self.changes.insert(
            key,
            KeyChange {
                seq: ev.seq,
                op,
                schema: ev.schema.clone(),
                row,
                deleted: op == "d",
                source_ts_ms: ev.source.ts_ms,
                origin: self.origin,
            },
        );
    }

    /// The batch's changes (one per key) in source (`_seq`) order, leaving none behind: files, quality
    /// samples and logs list rows as they happened, and building the columns walks the rows in the order
    /// they were decoded (the map's hash order missed the cache on nearly every row).
    pub fn take_changes(&mut self) -> Vec<KeyChange> {
        let mut changes: Vec<KeyChange> = std::mem::take(&mut self.changes).into_values().collect();
        changes.sort_unstable_by_key(|c| c.seq);
        changes
    }

    /// Adds one event: the latest change per key wins, and the first change of each key notes where
    /// its stored row is. The event's images move into the batch (this runs for every change).
    pub fn add(
        &mut self,
        mut ev: ChangeEvent,
        rules: (Option<&Partitioning>, bool),
        bytes: &mut usize,
    ) {
        self.max_seq = self.max_seq.max(ev.seq);
        match ev.op {
            Op::Truncate | Op::Drop if self.blind => {
                // Kafka: partitions interleave, so changes later than the TRUNCATE may already be here;
                // only the earlier ones go (the truncate itself removes stored rows older than it)
                self.changes.retain(|_, c| c.seq > ev.seq);
                if self.truncate_seq.is_none_or(|t| ev.seq > t) {
                    self.truncate_seq = Some(ev.seq);
                    self.dropped = ev.op == Op::Drop;
                }
            }
            Op::Truncate | Op::Drop => {
                self.dropped = ev.op == Op::Drop;
                // applied before the batch's changes, so every later key starts out absent
                self.changes.clear();
                self.prior = Prior {
                    unknown: self.blind,
                    ..Prior::default()
                };
                self.truncate_seq = Some(ev.seq);
            }
            Op::Update if ev.key_changed() => {
                let after = ev.after.take().unwrap_or_default();
                let (old, stored) = take_before(&mut ev);
                self.put(&ev, "d", old, stored, rules, bytes);
                self.put(&ev, "u", after, Stored::Absent, rules, bytes);
            }
            Op::Insert | Op::Read | Op::Update => {
                let after = ev.after.take().unwrap_or_default();
                let stored = match ev.op {
                    Op::Insert => Stored::Absent,
                    Op::Read => Stored::Unknown,
                    _ => ev.before.as_deref().map_or(Stored::Unknown, Stored::Row),
                };
                self.put(&ev, ev.op.code(), after, stored, rules, bytes);
            }
            Op::Delete => {
                let (old, stored) = take_before(&mut ev);
                self.put(&ev, "d", old, stored, rules, bytes);
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
        if self.blind {
            return self.prior.unknown = true;
        }
        let stored_row = match stored {
            Stored::Row(r) => r,
            Stored::Given => row,
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
            b.add(e.clone(), (partitioned.then_some(&p), soft), &mut bytes);
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

    #[test]
    fn a_republished_older_change_does_not_replace_a_newer_one() {
        let s = schema(false);
        let with_seq = |mut e: ChangeEvent, seq| {
            e.seq = seq;
            e
        };
        let events = [
            with_seq(ev(&s, Op::Insert, None, Some(row(1, 20))), 5),
            with_seq(ev(&s, Op::Delete, Some(row(1, 20)), None), 6),
            // the publisher's tail again, after a crash: the insert must not revive the key
            with_seq(ev(&s, Op::Insert, None, Some(row(1, 20))), 5),
        ];
        let mut b = TableBatch {
            blind: true,
            ..TableBatch::default()
        };
        let mut bytes = 0;
        for e in &events {
            b.add(e.clone(), (None, false), &mut bytes);
        }
        let only = b.changes.values().next().unwrap();
        assert_eq!((b.changes.len(), only.seq, only.deleted), (1, 6, true));
    }
}
