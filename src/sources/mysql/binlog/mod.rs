//! Turns binlog events into change events: tracks position, GTIDs, transactions and table maps; decodes
//! rows; applies the snapshot's key-range positions so snapshot + stream have no gap and no duplicate.
//! The same decoder serves the live stream and offline `binlog decode`.

use super::charset::CollationMap;
use super::ddl::{self, ColumnClauses, Ddl};
use super::decode::WireColumn;
use super::gtid::{format_uuid, GtidState};
use super::schema::{self, same_shape, CapturedTable};
use super::xa::{parse_xa_statement, PreparedSet, XaVerb};
use super::SourceError;
use crate::config::TableFilter;
use crate::event::progress::{Checkpoint, Lifecycle, SnapshotProgress, XaReplay};
use crate::event::{
    AddedDefault, BinlogPosition, ChangeEvent, ColumnSchema, EventSource, Op, SchemaChange,
    SourceMessage, TableId, TableSchema, Value,
};
mod events;
pub mod incremental;
mod rows;

use events::{
    is_irrelevant_event, is_rows_event, MARIADB_GTID, MARIADB_QUERY_COMPRESSED,
    MARIADB_START_ENCRYPTION,
};
use mysql_common::binlog::consts::{BinlogChecksumAlg, EventType};
use mysql_common::binlog::events::{Event, GtidEvent, QueryEvent, RotateEvent, TableMapEvent};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

const MARIADB_FL_STANDALONE: u8 = 1;
const LOG_EVENT_ARTIFICIAL_F: u16 = 0x20;
/// The replication protocol (COM_BINLOG_DUMP, event headers) carries 4-byte file offsets: a transaction
/// that ends past 4 GiB in its file has an end position no replica can ask for.
const MAX_ADDRESSABLE: u64 = u32::MAX as u64;

/// The true end offset of an event whose header holds it modulo 2^32. Events are far smaller than
/// 4 GiB, so a header offset nearly 4 GiB below the previous end has wrapped; a small step back is taken
/// as it is.
fn unwrap_end(prev_end: u64, header_end: u32) -> u64 {
    let end = (prev_end & !MAX_ADDRESSABLE) | header_end as u64;
    if end + (1 << 31) < prev_end {
        end + (1 << 32)
    } else {
        end
    }
}

/// A transaction boundary a replication connection can start from, with the stream's state there.
#[derive(Clone)]
struct Boundary {
    position: BinlogPosition,
    next_seq: u64,
    gtid: Option<String>,
}

/// Binlog file names are printable ASCII; drops anything after the name (checksum bytes of early events).
fn clean_file_name(name: &str) -> String {
    name.chars().take_while(|c| c.is_ascii_graphic()).collect()
}

/// Looks up a table's current schema in information_schema (live stream) or nowhere (offline decoding).
pub trait SchemaLookup {
    fn lookup(
        &mut self,
        id: &TableId,
    ) -> impl std::future::Future<Output = Result<Option<TableSchema>, SourceError>> + Send;

    /// The value MySQL gave the existing rows of `id` for `column`, just added by a statement logged at
    /// `statement_ts_ms`; `None` when there is nothing to fill in (no server to ask, no row).
    fn added_default(
        &mut self,
        id: &TableId,
        column: &ColumnSchema,
        statement_ts_ms: i64,
    ) -> impl std::future::Future<Output = Result<Option<Value>, SourceError>> + Send;
}

/// Offline decoding has no server to ask.
pub struct NoLookup;

impl SchemaLookup for NoLookup {
    async fn lookup(&mut self, _id: &TableId) -> Result<Option<TableSchema>, SourceError> {
        Ok(None)
    }

    async fn added_default(
        &mut self,
        _id: &TableId,
        _column: &ColumnSchema,
        _statement_ts_ms: i64,
    ) -> Result<Option<Value>, SourceError> {
        Ok(None)
    }
}

struct TableDecoder {
    captured: CapturedTable,
    wire: Vec<WireColumn>,
}

#[derive(Default)]
struct Tx {
    open: bool,
    /// The xid of an XA transaction (`XA START`): its rows are held until `XA COMMIT`.
    xa: Option<String>,
    gtid: Option<String>,
    mysql_gtid: Option<(String, u64)>,
    mariadb_gtid: Option<(u32, u32, u64)>,
    ts_ms: i64,
    order: u64,
}

pub struct DecoderOptions {
    pub filter: TableFilter,
    pub keys: BTreeMap<String, Vec<String>>,
    pub collations: CollationMap,
    /// Accept MINIMAL-metadata table maps without a known schema, naming columns `@0`, `@1`, … (offline only).
    pub allow_anonymous_columns: bool,
    /// Most bytes of row changes one prepared, uncommitted XA transaction may hold.
    pub max_prepared_xa_bytes: usize,
    /// `source.signal_table`: its inserts are requests to binlake (`incremental.rs`), never changes.
    pub signal_table: Option<TableId>,
}

pub struct BinlogDecoder {
    opts: DecoderOptions,
    file: String,
    /// End offset of the last outer event.
    pos: u64,
    /// Offset after which the current compressed transaction payload ends; inner events have no offsets.
    payload_end: Option<u64>,
    /// Last transaction boundary: where a reconnect resumes.
    committed: BinlogPosition,
    /// The GTID state at `committed`, rendered once per boundary (checkpoints, XA groups and the
    /// addressable boundary all need it).
    committed_gtid: Option<String>,
    /// Last boundary below 4 GiB in its file: where to resume when `committed` lies beyond.
    addressable: Boundary,
    next_seq: u64,
    gtid_state: GtidState,
    tx: Tx,
    table_maps: HashMap<u64, Option<Arc<TableDecoder>>>,
    tables: HashMap<TableId, CapturedTable>,
    snapshot: Option<SnapshotProgress>,
    /// After a reconnect, rows events up to here were already emitted.
    skip_until: Option<BinlogPosition>,
    last_rows_pos: Option<BinlogPosition>,
    pending_ddl: HashMap<TableId, String>,
    prepared: PreparedSet,
    /// After a restart behind a prepared XA transaction: transactions ending here or before were delivered
    /// already; they are decoded again (same `_seq`s) but not emitted.
    replay_until: Option<BinlogPosition>,
    /// Tables the sink holds whole, and snapshots taken while streaming (`incremental.rs`).
    lifecycle: Lifecycle,
    /// The chunk being read for a snapshot taken while streaming, and the keys of its table changed
    /// in the stream since it was asked for.
    chunk: Option<incremental::Window>,
    /// Chunk requests made so far: a chunk answers the request with its number.
    chunk_requests: u64,
    /// Tables whose schema was read at start and not seen in the stream since: it may already show
    /// what a DDL still ahead in the stream did (binlake was down while it ran).
    read_at_start: HashSet<TableId>,
}

impl BinlogDecoder {
    pub fn new(
        opts: DecoderOptions,
        start: &Checkpoint,
        flavor_is_mariadb: bool,
        tables: Vec<CapturedTable>,
    ) -> Self {
        let gtid_state = match (&start.gtid, flavor_is_mariadb) {
            (Some(g), true) => GtidState::parse_mariadb(g),
            (Some(g), false) => GtidState::parse_mysql(g),
            (None, _) => GtidState::Unknown,
        };
        let committed_gtid = gtid_state.render();
        let next_seq = start.xa.as_ref().map_or(start.next_seq, |x| x.resume_seq);
        BinlogDecoder {
            opts,
            file: start.position.file.clone(),
            pos: start.position.pos,
            payload_end: None,
            committed: start.position.clone(),
            addressable: Boundary {
                position: start.position.clone(),
                next_seq,
                gtid: committed_gtid.clone(),
            },
            committed_gtid,
            next_seq,
            gtid_state,
            tx: Tx::default(),
            table_maps: HashMap::new(),
            read_at_start: tables.iter().map(|t| t.full.id()).collect(),
            tables: tables.into_iter().map(|t| (t.full.id(), t)).collect(),
            snapshot: start.snapshot.clone(),
            skip_until: None,
            last_rows_pos: None,
            pending_ddl: HashMap::new(),
            prepared: PreparedSet::default(),
            replay_until: start.xa.as_ref().map(|x| x.delivered.clone()),
            lifecycle: start.tables.clone(),
            chunk: None,
            chunk_requests: 0,
        }
    }

    pub fn in_transaction(&self) -> bool {
        self.tx.open
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Position a new connection resumes from; rows already emitted are skipped on the way.
    pub fn prepare_reconnect(&mut self) -> BinlogPosition {
        self.skip_until = self.last_rows_pos.clone().filter(|p| *p > self.committed);
        if self.committed.pos > MAX_ADDRESSABLE {
            // Start from the last addressable boundary and re-read up to the last rows emitted, taking the
            // same `_seq`s again without emitting them.
            let delivered = self.skip_until.take().unwrap_or(self.committed.clone());
            self.replay_until = self.replay_until.take().max(Some(delivered));
            self.next_seq = self.addressable.next_seq;
            self.committed = self.addressable.position.clone();
            self.committed_gtid = self.addressable.gtid.clone();
        }
        // an XA group cut off before its XA_PREPARE is read again from its start
        self.prepared.drop_incomplete();
        self.tx = Tx::default();
        self.payload_end = None;
        self.file = self.committed.file.clone();
        self.pos = self.committed.pos;
        self.committed.clone()
    }

    /// GTID state at the last transaction boundary.
    pub fn gtid(&self) -> Option<String> {
        self.committed_gtid.clone()
    }

    pub fn position(&self) -> BinlogPosition {
        BinlogPosition::new(self.file.clone(), self.payload_end.unwrap_or(self.pos))
    }

    pub fn checkpoint(&self) -> Checkpoint {
        let checkpoint = self.boundary_checkpoint();
        if checkpoint.position.pos <= MAX_ADDRESSABLE {
            return checkpoint;
        }
        // past 4 GiB: resume at the last boundary a replica can ask for and re-read, not re-emit, the rest
        let a = &self.addressable;
        Checkpoint {
            next_seq: self.next_seq,
            position: a.position.clone(),
            gtid: a.gtid.clone(),
            snapshot: self.snapshot.clone(),
            xa: Some(XaReplay {
                resume_seq: a.next_seq,
                delivered: self.committed.clone(),
            }),
            tables: self.lifecycle.clone(),
            sync: false,
        }
    }

    fn boundary_checkpoint(&self) -> Checkpoint {
        match self.prepared.oldest() {
            // resume where the oldest prepared XA transaction's group starts, so its rows are read again
            Some(xa) => Checkpoint {
                next_seq: self.next_seq,
                position: xa.start.clone(),
                gtid: xa.gtid.clone(),
                snapshot: self.snapshot.clone(),
                xa: Some(XaReplay {
                    resume_seq: xa.next_seq,
                    delivered: self.committed.clone(),
                }),
                tables: self.lifecycle.clone(),
                sync: false,
            },
            None => Checkpoint {
                next_seq: self.next_seq,
                position: self.committed.clone(),
                gtid: self.committed_gtid.clone(),
                snapshot: self.snapshot.clone(),
                xa: None,
                tables: self.lifecycle.clone(),
                sync: false,
            },
        }
    }

    /// True while re-reading what an earlier run delivered already (behind a prepared XA transaction).
    fn replaying(&self) -> bool {
        self.replay_until
            .as_ref()
            .is_some_and(|d| self.position() <= *d)
    }

    pub async fn handle(
        &mut self,
        ev: &Event,
        out: &mut Vec<SourceMessage>,
        lookup: &mut impl SchemaLookup,
    ) -> Result<(), SourceError> {
        let header = ev.header();
        let type_raw = header.event_type_raw();
        self.verify_checksum(ev)?;
        let inner =
            self.payload_end.is_some() && type_raw != EventType::TRANSACTION_PAYLOAD_EVENT as u8;
        let log_pos = match header.log_pos() {
            0 => 0, // artificial
            // a format description opens every stream, whatever the position asked for
            end if inner || type_raw == EventType::FORMAT_DESCRIPTION_EVENT as u8 => end as u64,
            end => unwrap_end(self.pos, end),
        };
        if !inner && log_pos > 0 && type_raw != EventType::HEARTBEAT_EVENT as u8 {
            self.pos = log_pos;
        }
        if type_raw == EventType::HEARTBEAT_EVENT as u8 || type_raw == events::HEARTBEAT_V2 {
            // the server only sends heartbeats when it has nothing newer: caught up
            crate::observe::METRICS.source_lag_seconds.set(0);
        }
        let corrupt = |e: std::io::Error, me: &Self| SourceError::CorruptBinlog {
            position: me.position(),
            detail: e.to_string(),
        };

        match type_raw {
            t if t == EventType::ROTATE_EVENT as u8 => {
                let re: RotateEvent<'_> = ev.read_event().map_err(|e| corrupt(e, self))?;
                // The artificial rotate that opens a stream arrives before the format description, so its name
                // still ends in checksum bytes; it only repeats the file we asked for.
                let artificial = log_pos == 0 || header.flags_raw() & LOG_EVENT_ARTIFICIAL_F != 0;
                if !artificial || self.file.is_empty() {
                    self.file = clean_file_name(&re.name());
                    crate::observe::set_source_file(&self.file);
                }
                self.pos = re.position();
                if !self.tx.open && !artificial {
                    self.committed = BinlogPosition::new(self.file.clone(), self.pos);
                    self.note_addressable();
                }
            }
            t if t == EventType::GTID_EVENT as u8
                || t == EventType::GTID_TAGGED_LOG_EVENT as u8 =>
            {
                let g: GtidEvent = ev.read_event().map_err(|e| corrupt(e, self))?;
                let mut sid = format_uuid(&g.sid());
                if let Some(tag) = g.tag() {
                    sid = format!("{sid}:{}", tag.as_str());
                }
                let ts = g.original_commit_timestamp();
                self.tx = Tx {
                    gtid: Some(format!("{sid}:{}", g.gno())),
                    mysql_gtid: Some((sid, g.gno())),
                    ts_ms: if ts > 0 {
                        (ts / 1000) as i64
                    } else {
                        header.timestamp() as i64 * 1000
                    },
                    ..Tx::default()
                };
            }
            MARIADB_GTID => {
                let d = ev.data();
                if d.len() < 13 {
                    return Err(SourceError::CorruptBinlog {
                        position: self.position(),
                        detail: "short MariaDB GTID event".into(),
                    });
                }
                let seq = u64::from_le_bytes(d[0..8].try_into().unwrap());
                let domain = u32::from_le_bytes(d[8..12].try_into().unwrap());
                let flags = d[12];
                let server = header.server_id();
                self.tx = Tx {
                    gtid: Some(format!("{domain}-{server}-{seq}")),
                    mariadb_gtid: Some((domain, server, seq)),
                    ts_ms: header.timestamp() as i64 * 1000,
                    // standalone (DDL) transactions have no BEGIN; the next QUERY is the whole transaction
                    open: flags & MARIADB_FL_STANDALONE == 0,
                    ..Tx::default()
                };
                // MariaDB logs no `XA START` statement: an XA group's GTID event carries its xid
                if let Some(xid) = super::xa::mariadb_prepared_xid(d) {
                    self.open_xa(xid);
                }
            }
            t if t == EventType::QUERY_EVENT as u8 => {
                let q: QueryEvent<'_> = ev.read_event().map_err(|e| corrupt(e, self))?;
                let sql = q.query();
                let trimmed = sql.trim();
                let xa = parse_xa_statement(trimmed);
                if trimmed.eq_ignore_ascii_case("BEGIN") {
                    self.tx.open = true;
                    if self.tx.gtid.is_none() {
                        self.tx.ts_ms = header.timestamp() as i64 * 1000;
                    }
                } else if let Some((XaVerb::Start, xid, _)) = &xa {
                    if self.tx.gtid.is_none() {
                        self.tx.ts_ms = header.timestamp() as i64 * 1000;
                    }
                    if self.tx.xa.is_none() {
                        self.open_xa(xid.clone());
                    }
                } else if let Some((XaVerb::Commit, xid, one_phase)) = &xa {
                    // `XA COMMIT … ONE PHASE` ends its own group (commit() emits it); a two-phase one
                    // commits a group prepared earlier
                    if !one_phase {
                        self.release_xa(xid, out)?;
                    }
                    self.commit(out);
                } else if let Some((XaVerb::Rollback, xid, _)) = &xa {
                    if self.prepared.take(xid).is_some() {
                        tracing::info!(xid = %xid, "XA transaction rolled back; its rows are dropped");
                    }
                    self.commit(out);
                } else if trimmed.eq_ignore_ascii_case("COMMIT")
                    || trimmed.eq_ignore_ascii_case("ROLLBACK")
                {
                    self.commit(out);
                } else if xa.is_some() || is_savepoint_statement(trimmed) {
                    // XA END / XA PREPARE as text and savepoints carry no row changes of their own
                } else {
                    if self.tx.gtid.is_none() {
                        self.tx.ts_ms = header.timestamp() as i64 * 1000;
                    }
                    let default_db = q.schema().into_owned();
                    self.handle_ddl(&default_db, &sql, header.server_id(), out, lookup)
                        .await?;
                    self.commit(out);
                }
            }
            t if t == EventType::XID_EVENT as u8 => self.commit(out),
            t if t == EventType::XA_PREPARE_LOG_EVENT as u8 => {
                // the end of an XA group: its rows stay held until XA COMMIT; the position moves on
                if let Some(xid) = self.tx.xa.take() {
                    self.prepared.mark_prepared(&xid);
                }
                self.commit(out);
            }
            t if t == EventType::TABLE_MAP_EVENT as u8 => {
                let tme: TableMapEvent<'_> = ev.read_event().map_err(|e| corrupt(e, self))?;
                self.handle_table_map(&tme, header.server_id(), out, lookup)
                    .await?;
            }
            t if t == EventType::TRANSACTION_PAYLOAD_EVENT as u8 => {
                self.payload_end = Some(log_pos);
            }
            t if is_rows_event(t) => match ev.read_data() {
                Ok(Some(mysql_common::binlog::events::EventData::RowsEvent(rows))) => {
                    self.handle_rows(&rows, header.server_id(), out)?
                }
                Ok(_) => {
                    return Err(SourceError::CorruptBinlog {
                        position: self.position(),
                        detail: format!("rows event (type {t}) did not parse as rows"),
                    })
                }
                Err(e) => return Err(corrupt(e, self)),
            },
            t if is_irrelevant_event(t) => {}
            t if t == EventType::INCIDENT_EVENT as u8 => {
                return Err(SourceError::UnreadableEvent {
                    position: self.position(),
                    detail: "the server logged an INCIDENT (it lost changes, e.g. a failed non-transactional \
                             write); the captured tables need a re-snapshot"
                        .into(),
                })
            }
            MARIADB_START_ENCRYPTION => {
                return Err(SourceError::UnreadableEvent {
                    position: self.position(),
                    detail: "the binlog is encrypted (encrypt_binlog=ON), which binlake cannot read".into(),
                })
            }
            MARIADB_QUERY_COMPRESSED | 166..=171 => {
                return Err(SourceError::UnreadableEvent {
                    position: self.position(),
                    detail: "MariaDB compressed binlog events; set log_bin_compress=OFF on the server"
                        .into(),
                })
            }
            t => {
                return Err(SourceError::UnreadableEvent {
                    position: self.position(),
                    detail: format!(
                        "binlog event type {t} is not one binlake decodes or knows to carry no row data \
                         (statement-based LOAD DATA, or a newer server's event)"
                    ),
                })
            }
        }
        Ok(())
    }

    /// An XA group begins: its rows are held under `xid`. The group starts at the last boundary, where a
    /// restart resumes to read it again.
    fn open_xa(&mut self, xid: String) {
        self.tx.open = true;
        self.prepared.open(
            &xid,
            self.committed.clone(),
            self.committed_gtid.clone(),
            self.next_seq,
        );
        self.tx.xa = Some(xid);
    }

    /// `XA COMMIT` of a transaction prepared in an earlier group: emits the rows it held.
    fn release_xa(&mut self, xid: &str, out: &mut Vec<SourceMessage>) -> Result<(), SourceError> {
        if self.emit_held(xid, out) || self.replaying() {
            return Ok(());
        }
        Err(SourceError::UnreadableEvent {
            position: self.position(),
            detail: format!(
                "XA COMMIT {xid} commits a transaction prepared before the position binlake started from, so \
                 its rows are not in the stream; the captured tables need a re-snapshot"
            ),
        })
    }

    /// Emits the rows held for `xid`, with the `_seq`s of its commit; false when none are held.
    fn emit_held(&mut self, xid: &str, out: &mut Vec<SourceMessage>) -> bool {
        let Some(xa) = self.prepared.take(xid) else {
            return false;
        };
        let replaying = self.replaying();
        for mut ev in xa.events {
            self.tx.order += 1;
            ev.tx_order = self.tx.order;
            ev.seq = self.take_seq();
            if !replaying {
                self.note_changed(&ev);
                out.push(SourceMessage::Change(ev));
            }
        }
        true
    }

    fn verify_checksum(&self, ev: &Event) -> Result<(), SourceError> {
        let footer = ev.footer();
        if !footer.get_checksum_enabled() {
            return Ok(());
        }
        if let (Ok(Some(alg)), Some(stored)) = (footer.get_checksum_alg(), ev.checksum()) {
            if alg == BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32 {
                let computed = ev.calc_checksum(alg);
                if computed != u32::from_le_bytes(stored) {
                    return Err(SourceError::CorruptBinlog {
                        position: self.position(),
                        detail: format!(
                            "CRC32 mismatch (stored {:08x}, computed {computed:08x})",
                            u32::from_le_bytes(stored)
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    fn commit(&mut self, out: &mut Vec<SourceMessage>) {
        if let Some((sid, gno)) = self.tx.mysql_gtid.take() {
            self.gtid_state.add_mysql(&sid, gno);
        }
        if let Some((d, s, n)) = self.tx.mariadb_gtid.take() {
            self.gtid_state.add_mariadb(d, s, n);
        }
        if let Some(xid) = self.tx.xa.take() {
            // an XA group that ends without XA_PREPARE (XA COMMIT … ONE PHASE) commits its rows now
            self.emit_held(&xid, out);
        }
        if self.tx.ts_ms > 0 {
            let now_ms = chrono::Utc::now().timestamp_millis();
            crate::observe::METRICS
                .source_lag_seconds
                .set((now_ms - self.tx.ts_ms).max(0) / 1000);
        }
        self.tx = Tx::default();
        let end = self.position();
        crate::observe::SOURCE_POS.store(end.pos, std::sync::atomic::Ordering::Relaxed);
        self.payload_end = None;
        self.committed = end.clone();
        self.committed_gtid = self.gtid_state.render();
        self.note_addressable();
        // table ids are only valid within the transaction that maps them; forgetting them bounds the cache
        self.table_maps.clear();
        if let Some(snap) = &self.snapshot {
            if snap.complete && snap.last_position().is_none_or(|p| end > *p) {
                self.snapshot = None;
            }
        }
        if self.replay_until.as_ref().is_some_and(|d| end <= *d) {
            return; // delivered before the restart, checkpoint included
        }
        self.replay_until = None;
        out.push(SourceMessage::Checkpoint(self.checkpoint()));
    }

    fn source(&self, server_id: u32, row: u32) -> EventSource {
        EventSource {
            server_id,
            position: self.position(),
            row,
            gtid: self.tx.gtid.clone(),
            ts_ms: self.tx.ts_ms,
            snapshot: false,
        }
    }

    async fn handle_ddl(
        &mut self,
        default_db: &str,
        sql: &str,
        server_id: u32,
        out: &mut Vec<SourceMessage>,
        lookup: &mut impl SchemaLookup,
    ) -> Result<(), SourceError> {
        let resolve =
            |(db, table): ddl::Name| TableId::new(db.as_deref().unwrap_or(default_db), &table);
        match ddl::classify(sql) {
            Ddl::Truncate(name) => {
                let id = resolve(name);
                let Some(captured) = self.tables.get(&id).cloned() else {
                    return Ok(());
                };
                if self.truncate_suppressed(&id)? {
                    return Ok(());
                }
                self.emit_table_op(Op::Truncate, captured.projected.clone(), server_id, out);
            }
            Ddl::Drop(names) => {
                for name in names {
                    self.drop_table(&resolve(name), server_id, out)?;
                }
            }
            Ddl::DropDatabase(db) => {
                let mut ids: Vec<TableId> = self
                    .tables
                    .keys()
                    .filter(|id| id.database == db)
                    .cloned()
                    .collect();
                ids.sort();
                for id in ids {
                    self.drop_table(&id, server_id, out)?;
                }
            }
            Ddl::Create {
                table,
                or_replace,
                if_not_exists,
            } => {
                let id = resolve(table);
                if !self.opts.filter.captures(&id.database, &id.table) {
                    return Ok(());
                }
                let existed = self.tables.contains_key(&id);
                if existed && if_not_exists && !or_replace {
                    return Ok(()); // the table was there: the statement did nothing
                }
                if existed {
                    // replaced (or created again after a drop this process did not see): the table
                    // starts empty, whatever the lake held of the old one
                    self.drop_table(&id, server_id, out)?;
                }
                self.reload_schema(&id, &ColumnClauses::default(), sql, server_id, out, lookup)
                    .await?;
                self.followed_from_creation(&id);
            }
            Ddl::Alter {
                table,
                rename_to: Some(to),
                rows_changed,
                ..
            } => {
                let from = resolve(table);
                self.resnapshot_for_row_changes(
                    &from,
                    rows_changed.as_deref(),
                    sql,
                    server_id,
                    out,
                );
                self.rename_table(&from, &resolve(to), sql, server_id, out, lookup)
                    .await?;
            }
            Ddl::Alter {
                table,
                rename_to: None,
                rows_changed,
                columns,
            } => {
                let id = resolve(table);
                if !self.opts.filter.captures(&id.database, &id.table) {
                    return Ok(());
                }
                if !self
                    .reload_schema(&id, &columns, sql, server_id, out, lookup)
                    .await?
                {
                    self.resnapshot_for_row_changes(
                        &id,
                        rows_changed.as_deref(),
                        sql,
                        server_id,
                        out,
                    );
                }
            }
            Ddl::Rename(pairs) => {
                for (from, to) in pairs {
                    self.rename_table(&resolve(from), &resolve(to), sql, server_id, out, lookup)
                        .await?;
                }
            }
            Ddl::NoTableChange => {}
            Ddl::Unrecognised { names } => {
                let named = names.into_iter().map(resolve).find(|id| {
                    self.tables.keys().any(|t| {
                        t.database == id.database && t.table.eq_ignore_ascii_case(&id.table)
                    })
                });
                if let Some(id) = named {
                    return Err(SourceError::UnreadableEvent {
                        position: self.position(),
                        detail: format!(
                            "the statement `{}` names the captured table {id}, and binlake does not know what it \
                             does to its rows or columns (a statement-logged change? check binlog_format = ROW). \
                             Nothing after it is applied; once the table is right again, re-snapshot it",
                            quote_statement(sql)
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// An event that empties a table at this point of the stream (TRUNCATE, DROP).
    fn emit_table_op(
        &mut self,
        op: Op,
        schema: Arc<TableSchema>,
        server_id: u32,
        out: &mut Vec<SourceMessage>,
    ) {
        self.tx.order += 1;
        let source = self.source(server_id, 0);
        let seq = self.take_seq();
        out.push(SourceMessage::Change(ChangeEvent {
            op,
            schema,
            before: None,
            after: None,
            source,
            seq,
            tx_order: self.tx.order,
        }));
    }

    /// A captured table is gone under this name: its lake table is emptied here and leaves the catalog.
    /// A table this process never saw is dropped by name (its schema has no columns): the lake may hold
    /// it from an earlier run.
    fn drop_table(
        &mut self,
        id: &TableId,
        server_id: u32,
        out: &mut Vec<SourceMessage>,
    ) -> Result<(), SourceError> {
        if !self.opts.filter.captures(&id.database, &id.table) {
            return Ok(());
        }
        self.table_maps
            .retain(|_, d| d.as_ref().is_none_or(|d| d.captured.full.id() != *id));
        self.pending_ddl.remove(id);
        self.forget_table(id);
        let schema = match self.tables.remove(id) {
            Some(t) => t.projected.clone(),
            None => Arc::new(TableSchema::named_only(id)),
        };
        if self.truncate_suppressed(id)? {
            return Ok(()); // the snapshot was read after it
        }
        self.emit_table_op(Op::Drop, schema, server_id, out);
        Ok(())
    }

    /// `from` becomes `to`. Captured under the old name: that table is dropped. Captured under the new
    /// name: the rows it arrives with were never streamed under that name, so it cannot be followed from
    /// here without a snapshot of it.
    async fn rename_table(
        &mut self,
        from: &TableId,
        to: &TableId,
        sql: &str,
        server_id: u32,
        out: &mut Vec<SourceMessage>,
        lookup: &mut impl SchemaLookup,
    ) -> Result<(), SourceError> {
        self.drop_table(from, server_id, out)?;
        if !self.opts.filter.captures(&to.database, &to.table) {
            return Ok(());
        }
        self.drop_table(to, server_id, out)?;
        tracing::info!(statement = %quote_statement(sql), from = %from, to = %to, "a table renamed into the capture: its rows were not streamed under that name");
        self.reload_schema(to, &ColumnClauses::default(), sql, server_id, out, lookup)
            .await?;
        self.schedule_snapshot(to);
        Ok(())
    }

    /// ALTER TABLE clauses that remove or bring rows without row events: the table is emptied here and
    /// snapshotted again while the stream runs. True when it was.
    fn resnapshot_for_row_changes(
        &mut self,
        id: &TableId,
        clause: Option<&str>,
        sql: &str,
        server_id: u32,
        out: &mut Vec<SourceMessage>,
    ) -> bool {
        let Some(clause) = clause else { return false };
        let Some(captured) = self.tables.get(id).cloned() else {
            return false;
        };
        tracing::warn!(table = %id, clause, statement = %quote_statement(sql), "rows changed without row events: snapshotting the table again");
        self.emit_table_op(Op::Truncate, captured.projected.clone(), server_id, out);
        self.schedule_snapshot(id);
        true
    }

    /// Asked for by a signal (`source.signal_table`) or at start: a captured table is emptied here and
    /// snapshotted again while the stream runs.
    pub(super) fn resnapshot(
        &mut self,
        id: &TableId,
        server_id: u32,
        out: &mut Vec<SourceMessage>,
    ) {
        if let Some(captured) = self.tables.get(id).cloned() {
            self.emit_table_op(Op::Truncate, captured.projected.clone(), server_id, out);
        }
        self.schedule_snapshot(id);
    }

    /// Columns of `fresh` that the known schema of `id` lacks, or that the statement's `ADD` clauses name
    /// (`added`: the known schema may have been read at start, after the statement ran), were added by
    /// this statement: the rows that existed hold MySQL's default for them, which no row event carries,
    /// so the schema says which value and up to which `_seq` (the lake backfills it). Columns kept carry
    /// what they had. A statement that also removed columns may have renamed them, which is no
    /// addition: nothing is filled in then.
    async fn note_added_columns(
        &mut self,
        id: &TableId,
        added: &[String],
        fresh: &mut TableSchema,
        lookup: &mut impl SchemaLookup,
    ) -> Result<(), SourceError> {
        let Some(old) = self.tables.get(id).map(|t| t.full.clone()) else {
            return Ok(()); // a new table has no older rows
        };
        let named = |cols: &[ColumnSchema], name: &str| cols.iter().any(|c| c.name == name);
        let removed = old.columns.iter().any(|c| !named(&fresh.columns, &c.name));
        let before_seq = self.next_seq;
        for c in fresh.columns.iter_mut() {
            let named_added = added.iter().any(|a| a.eq_ignore_ascii_case(&c.name));
            if let Some(o) = old.columns.iter().find(|o| o.name == c.name) {
                c.added = o.added.clone();
                if !named_added {
                    continue;
                }
            } else if removed && !named_added {
                tracing::warn!(table = %id, column = %c.name, "a column appeared while others went (a rename?): rows older than the statement show NULL in it in the lake");
                continue;
            }
            let position = self.position();
            let value = lookup
                .added_default(id, c, self.tx.ts_ms)
                .await
                .map_err(|e| match e {
                    SourceError::NeedsSnapshot { table, detail, .. } => {
                        SourceError::NeedsSnapshot {
                            table,
                            position,
                            detail,
                        }
                    }
                    e => e,
                })?;
            c.added = value
                .filter(|v| !v.is_null())
                .map(|value| AddedDefault { before_seq, value });
        }
        Ok(())
    }

    /// Reads a captured table's schema after a statement that created or altered it, and announces it.
    /// True when the statement may have rewritten the rows it held, so the table is snapshotted again.
    async fn reload_schema(
        &mut self,
        id: &TableId,
        columns: &ColumnClauses,
        sql: &str,
        server_id: u32,
        out: &mut Vec<SourceMessage>,
        lookup: &mut impl SchemaLookup,
    ) -> Result<bool, SourceError> {
        // Table maps are re-sent before the next rows event; forget ours so it is re-resolved.
        self.table_maps
            .retain(|_, d| d.as_ref().is_none_or(|d| d.captured.full.id() != *id));
        match lookup.lookup(id).await? {
            Some(mut fresh) => {
                let read_at_start = self.read_at_start.remove(id);
                // only MODIFY, CHANGE, RENAME COLUMN and CONVERT TO convert or move existing values;
                // the schema read now may already show later statements, so nothing else is compared
                let rewritten = match self.tables.get(id).filter(|_| columns.reshaped) {
                    Some(old) => {
                        let new = CapturedTable::new(fresh.clone(), &self.opts.filter)?;
                        crate::sources::mysql::retype::values_rewritten(
                            &old.projected,
                            &new.projected,
                        )
                        .or_else(|| {
                            // the schema read at start already shows what this statement did (binlake
                            // was down while it ran): how it converted the rows cannot be told
                            (read_at_start && same_shape(&old.full, &fresh)).then(|| {
                                "columns reshaped while binlake was not running".to_string()
                            })
                        })
                        .map(|why| (why, old.projected.clone()))
                    }
                    None => None,
                };
                match &rewritten {
                    // MySQL converted the rows in place, with no row events: the table is emptied here,
                    // takes its new columns exactly, and is read again while the stream runs
                    Some((why, old)) => {
                        tracing::warn!(table = %id, why = %why, statement = %quote_statement(sql), "the statement may have rewritten existing rows: snapshotting the table again");
                        self.emit_table_op(Op::Truncate, old.clone(), server_id, out);
                    }
                    None => {
                        self.note_added_columns(id, &columns.added, &mut fresh, lookup)
                            .await?
                    }
                }
                let captured = CapturedTable::new(fresh, &self.opts.filter)?;
                out.push(SourceMessage::SchemaChange(SchemaChange {
                    schema: captured.projected.clone(),
                    ddl: sql.to_string(),
                    source: self.source(server_id, 0),
                }));
                self.tables.insert(id.clone(), captured);
                if rewritten.is_some() {
                    self.schedule_snapshot(id);
                }
                return Ok(rewritten.is_some());
            }
            None => {
                // Offline, or the table is gone again: report with the next table map (if any).
                self.pending_ddl.insert(id.clone(), sql.to_string());
            }
        }
        Ok(false)
    }

    async fn handle_table_map(
        &mut self,
        tme: &TableMapEvent<'_>,
        server_id: u32,
        out: &mut Vec<SourceMessage>,
        lookup: &mut impl SchemaLookup,
    ) -> Result<(), SourceError> {
        let db = tme.database_name();
        let table = tme.table_name();
        let id = TableId::new(&db, &table);
        let signal = self.opts.signal_table.as_ref() == Some(&id);
        if !signal && !self.opts.filter.captures(&db, &table) {
            self.table_maps.insert(tme.table_id(), None);
            return Ok(());
        }
        let tm = schema::schema_from_table_map(tme, &self.opts.collations).map_err(|e| {
            SourceError::CorruptBinlog {
                position: self.position(),
                detail: format!("TABLE_MAP of {id}: {e}"),
            }
        })?;
        let known = self.tables.get(&id).cloned();
        // the stream's own view of the table from here on
        self.read_at_start.remove(&id);

        let captured = if tm.names_known {
            let mut from_map = tm.schema.clone();
            if from_map.key.is_empty() {
                if let Some(names) = crate::config::for_table(&self.opts.keys, &id) {
                    from_map.key = names
                        .iter()
                        .filter_map(|n| from_map.column_index(n))
                        .collect();
                }
                if from_map.key.is_empty() {
                    if let Some(k) = &known {
                        from_map.key = k.full.key.clone();
                    }
                }
            }
            if let Some(k) = &known {
                for c in from_map.columns.iter_mut() {
                    c.added = k
                        .full
                        .columns
                        .iter()
                        .find(|o| o.name == c.name)
                        .and_then(|o| o.added.clone());
                }
            }
            match known {
                Some(k) if same_shape(&k.full, &from_map) => k,
                _ => {
                    let captured = CapturedTable::new(from_map, &self.opts.filter)?;
                    out.push(SourceMessage::SchemaChange(SchemaChange {
                        schema: captured.projected.clone(),
                        ddl: self.pending_ddl.remove(&id).unwrap_or_default(),
                        source: self.source(server_id, 0),
                    }));
                    captured
                }
            }
        } else {
            let usable = |s: &TableSchema| schema::matches_table_map(s, &tm);
            match known {
                Some(k) if usable(&k.full) => k,
                _ => match lookup.lookup(&id).await? {
                    Some(fresh) if usable(&fresh) => CapturedTable::new(fresh, &self.opts.filter)?,
                    _ if self.opts.allow_anonymous_columns => {
                        CapturedTable::new(tm.schema.clone(), &self.opts.filter)?
                    }
                    _ => return Err(SourceError::SchemaUnknown { table: id }),
                },
            }
        };
        self.tables.insert(id, captured.clone());
        let wire = (0..tm.column_types.len())
            .map(|i| WireColumn {
                column_type: tm.column_types[i],
                meta: tme.get_column_metadata(i).unwrap_or(&[]).to_vec(),
            })
            .collect();
        self.table_maps.insert(
            tme.table_id(),
            Some(Arc::new(TableDecoder { captured, wire })),
        );
        Ok(())
    }

    fn note_addressable(&mut self) {
        if self.committed.pos <= MAX_ADDRESSABLE {
            self.addressable = Boundary {
                position: self.committed.clone(),
                next_seq: self.next_seq,
                gtid: self.committed_gtid.clone(),
            };
        }
    }

    fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }
}

/// `SAVEPOINT`, `ROLLBACK TO [SAVEPOINT]`, `RELEASE SAVEPOINT`: inside a transaction, never its end.
fn is_savepoint_statement(sql: &str) -> bool {
    let upper: Vec<String> = sql
        .split_whitespace()
        .take(2)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    match upper.first().map(String::as_str) {
        Some("SAVEPOINT") => true,
        Some("ROLLBACK") | Some("RELEASE") => {
            matches!(
                upper.get(1).map(String::as_str),
                Some("TO") | Some("SAVEPOINT")
            )
        }
        _ => false,
    }
}

/// A statement as an error quotes it: on one line, at most 300 characters.
fn quote_statement(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::unwrap_end;

    #[test]
    fn header_offsets_past_4_gib_are_unwrapped() {
        const GIB: u64 = 1 << 30;
        // below 4 GiB nothing changes
        assert_eq!(unwrap_end(4, 256), 256);
        assert_eq!(unwrap_end(3 * GIB, (3 * GIB + 100) as u32), 3 * GIB + 100);
        // an event ending just past 4 GiB, then the next one
        let past = 4 * GIB + 100;
        assert_eq!(unwrap_end(4 * GIB - 50, past as u32), past);
        assert_eq!(unwrap_end(past, (past + 10) as u32), past + 10);
        // a second wrap, at 8 GiB
        assert_eq!(unwrap_end(8 * GIB - 1, (8 * GIB + 5) as u32), 8 * GIB + 5);
        // a small step back is not a wrap
        assert_eq!(unwrap_end(GIB, 256), 256);
    }
}
