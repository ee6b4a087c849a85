//! Rows events: decoding each row image, holding the rows of XA transactions until their commit, and the
//! snapshot filter that drops the halves of a change the snapshot already holds.

use super::BinlogDecoder;
use crate::event::{BinlogPosition, ChangeEvent, Op, Row, SourceMessage, TableId};
use crate::sources::mysql::decode::{read_partial_json_columns, read_row_image};
use crate::sources::mysql::schema::CapturedTable;
use crate::sources::mysql::SourceError;
use mysql_common::binlog::events::RowsEventData;
use mysql_common::io::ParseBuf;

impl BinlogDecoder {
    pub(super) fn handle_rows(
        &mut self,
        rows: &RowsEventData<'_>,
        server_id: u32,
        out: &mut Vec<SourceMessage>,
    ) -> Result<(), SourceError> {
        let dec = match self.table_maps.get(&rows.table_id()) {
            Some(Some(dec)) => dec.clone(),
            Some(None) => return Ok(()), // a table outside source.include
            None => {
                return Err(SourceError::UnreadableEvent {
                    position: self.position(),
                    detail: format!(
                        "rows event for table id {} without a TABLE_MAP event before it in its transaction",
                        rows.table_id()
                    ),
                })
            }
        };
        let position = self.position();
        let held_xa = self.tx.xa.clone();
        // rows of an XA transaction are held, never emitted before its commit: no reconnect skipping for them
        let skipping =
            held_xa.is_none() && self.skip_until.as_ref().is_some_and(|s| position <= *s);
        if !skipping && held_xa.is_none() {
            self.skip_until = None;
            self.last_rows_pos = Some(position.clone());
        }
        let full = &dec.captured.full;
        let id = full.id();
        let decode_err = |detail: String| SourceError::Decode {
            table: id.clone(),
            detail,
        };
        let n = full.columns.len();
        let bits = |b: Option<&bitvec::slice::BitSlice<u8>>| {
            b.map(|b| {
                (0..n)
                    .map(|i| b.get(i).map(|x| *x).unwrap_or(false))
                    .collect::<Vec<bool>>()
            })
        };
        let before_bits = bits(rows.columns_before_image());
        let after_bits = bits(rows.columns_after_image());
        let partial = matches!(rows, RowsEventData::PartialUpdateRowsEvent(_));
        let op = match rows {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => Op::Insert,
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => Op::Delete,
            _ => Op::Update,
        };
        let signal = self.opts.signal_table.as_ref() == Some(&id);
        let mut signals = vec![];
        let mut buf = ParseBuf(rows.rows_data());
        let emitted_before = out.len();
        let mut row_idx = 0u32;
        while !buf.is_empty() {
            let before = match &before_bits {
                Some(b) => Some(
                    read_row_image(&mut buf, &full.columns, &dec.wire, b, None, None)
                        .map_err(|e| decode_err(e.0))?,
                ),
                None => None,
            };
            let after = match &after_bits {
                Some(b) => {
                    let partial_cols = if partial {
                        read_partial_json_columns(&mut buf, &dec.wire)
                            .map_err(|e| decode_err(e.0))?
                    } else {
                        None
                    };
                    Some(
                        read_row_image(
                            &mut buf,
                            &full.columns,
                            &dec.wire,
                            b,
                            partial_cols.as_deref(),
                            before.as_deref(),
                        )
                        .map_err(|e| decode_err(e.0))?,
                    )
                }
                None => None,
            };
            let (before, after) = (
                before.map(|r| dec.captured.project(r)),
                after.map(|r| dec.captured.project(r)),
            );
            if signal {
                // a request to binlake, read when inserted; never a change to capture
                if op == Op::Insert {
                    signals.extend(after);
                }
                row_idx += 1;
                continue;
            }
            if let Some((op, before, after)) =
                self.apply_snapshot_filter(&dec.captured, op, before, after, &position)?
            {
                self.tx.order += 1;
                let source = self.source(server_id, row_idx);
                let ev = ChangeEvent {
                    op,
                    schema: dec.captured.projected.clone(),
                    before,
                    after,
                    source,
                    seq: self.take_seq(),
                    tx_order: self.tx.order,
                };
                if held_xa.is_none() && !skipping {
                    self.note_changed(&ev);
                }
                out.push(SourceMessage::Change(ev));
            }
            row_idx += 1;
        }
        if !signals.is_empty() && !skipping && held_xa.is_none() && !self.replaying() {
            self.take_signals(&dec.captured.projected, signals, server_id, out);
        }
        if skipping {
            // Already emitted before the reconnect: keep the transaction's order count, drop the duplicates.
            self.next_seq -= (out.len() - emitted_before) as u64;
            out.truncate(emitted_before);
        } else if let Some(xid) = held_xa {
            // not committed yet: held, and numbered when XA COMMIT arrives
            let held: Vec<ChangeEvent> = out
                .drain(emitted_before..)
                .filter_map(|m| match m {
                    SourceMessage::Change(ev) => Some(ev),
                    _ => None,
                })
                .collect();
            self.next_seq -= held.len() as u64;
            self.tx.order -= held.len() as u64;
            let bytes = self.prepared.hold(&xid, held);
            if bytes > self.opts.max_prepared_xa_bytes {
                return Err(SourceError::UnreadableEvent {
                    position,
                    detail: format!(
                        "XA transaction {xid} holds {} MiB of uncommitted changes, more than \
                         source.max_prepared_xa_mb; raise it, or commit or roll back the transaction sooner",
                        bytes >> 20
                    ),
                });
            }
        } else if self.replaying() {
            // delivered before the restart: the `_seq`s are taken, the events are not emitted again
            out.truncate(emitted_before);
        }
        Ok(())
    }

    /// Drops the halves of a change that the snapshot already reflects (changes at or before the position
    /// the key's snapshot segment was read at).
    #[allow(clippy::type_complexity)]
    fn apply_snapshot_filter(
        &self,
        table: &CapturedTable,
        op: Op,
        before: Option<Row>,
        after: Option<Row>,
        position: &BinlogPosition,
    ) -> Result<Option<(Op, Option<Row>, Option<Row>)>, SourceError> {
        let Some((snapshot, progress)) = self
            .snapshot
            .as_ref()
            .and_then(|s| Some((s, s.tables.get(&table.full.id())?)))
        else {
            return Ok(Some((op, before, after)));
        };
        let schema = &table.projected;
        let covered = |row: &Option<Row>| -> Result<bool, SourceError> {
            let Some(row) = row else { return Ok(false) };
            let key = schema.key_of(row);
            match snapshot.covered_through(progress, &key) {
                Some(p) => Ok(position <= p),
                None => Err(SourceError::Decode {
                    table: schema.id(),
                    detail: "key order unknown across snapshot sessions; re-snapshot this table"
                        .into(),
                }),
            }
        };
        let (b, a) = (covered(&before)?, covered(&after)?);
        Ok(match (op, b, a) {
            (_, true, true) | (Op::Insert, _, true) | (Op::Delete, true, _) => None,
            (Op::Update, true, false) => Some((Op::Insert, None, after)),
            (Op::Update, false, true) => Some((Op::Delete, before, None)),
            _ => Some((op, before, after)),
        })
    }

    pub(super) fn truncate_suppressed(&self, id: &TableId) -> Result<bool, SourceError> {
        let Some(snapshot) = self.snapshot.as_ref() else {
            return Ok(false);
        };
        let Some(progress) = snapshot.tables.get(id) else {
            return Ok(false);
        };
        let pos = self.position();
        // rows of an interrupted session (read at `opened`) may be out there too
        let first = progress
            .segments
            .iter()
            .map(|s| &s.position)
            .chain(snapshot.opened.as_ref())
            .min();
        let last = progress.segments.iter().map(|s| &s.position).max();
        match (first, last) {
            (Some(f), _) if pos <= *f => Ok(true),
            (_, Some(l)) if pos > *l => Ok(false),
            (None, None) => Ok(false),
            _ => Err(SourceError::Decode {
                table: id.clone(),
                detail: "TRUNCATE between two snapshot sessions of this table; re-snapshot it"
                    .into(),
            }),
        }
    }
}
