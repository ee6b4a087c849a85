//! The one internal model every stage speaks: values, rows, table schemas, change events and positions.

pub mod calendar;
pub mod progress;

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// A column value, lossless for every MySQL/MariaDB type (see docs/types.md for the mapping).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v")]
pub enum Value {
    Null,
    /// Column not present in a partial (MINIMAL/NOBLOB) row image; never produced with binlog_row_image=FULL.
    Absent,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Exact decimal text as MySQL prints it (up to 65 digits).
    Decimal(String),
    /// Calendar date; zero parts are kept as stored ('0000-00-00', '2024-00-10').
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    /// Wall-clock DATETIME, no time zone.
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
    },
    /// TIMESTAMP as an instant: seconds since the Unix epoch in UTC plus microseconds. 0 is the zero timestamp.
    Timestamp {
        secs: i64,
        micros: u32,
    },
    /// TIME is a signed duration up to ±838:59:59.999999.
    Time {
        negative: bool,
        hours: u32,
        minutes: u8,
        seconds: u8,
        micros: u32,
    },
    Year(u16),
    /// BIT(n), n ≤ 64, as an unsigned integer.
    Bit(u64),
    Enum(String),
    /// SET members in definition order, comma-separated as MySQL prints them.
    Set(String),
    String(String),
    Bytes(Vec<u8>),
    /// JSON document as compact JSON text.
    Json(String),
    /// GEOMETRY: SRID and well-known binary.
    Geometry {
        srid: u32,
        wkb: Vec<u8>,
    },
    Vector(Vec<f32>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Memory this value takes, roughly: what byte limits on buffers count.
    /// Appends a self-delimiting encoding of the value (a tag, then fixed-width or length-prefixed
    /// content): a sequence of values written this way identifies them.
    pub fn write_key(&self, out: &mut Vec<u8>) {
        fn text(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
            out.push(tag);
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        match self {
            Value::Null => out.push(0),
            Value::Absent => out.push(1),
            Value::Int(v) => {
                out.push(2);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::UInt(v) => {
                out.push(3);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::Float(v) => {
                out.push(4);
                out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            Value::Double(v) => {
                out.push(5);
                out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            Value::Decimal(s) => text(out, 6, s.as_bytes()),
            Value::Date { year, month, day } => {
                out.push(7);
                out.extend_from_slice(&year.to_le_bytes());
                out.extend_from_slice(&[*month, *day]);
            }
            Value::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
            } => {
                out.push(8);
                out.extend_from_slice(&year.to_le_bytes());
                out.extend_from_slice(&[*month, *day, *hour, *minute, *second]);
                out.extend_from_slice(&micros.to_le_bytes());
            }
            Value::Timestamp { secs, micros } => {
                out.push(9);
                out.extend_from_slice(&secs.to_le_bytes());
                out.extend_from_slice(&micros.to_le_bytes());
            }
            Value::Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
            } => {
                out.extend_from_slice(&[10, *negative as u8]);
                out.extend_from_slice(&hours.to_le_bytes());
                out.extend_from_slice(&[*minutes, *seconds]);
                out.extend_from_slice(&micros.to_le_bytes());
            }
            Value::Year(y) => {
                out.push(11);
                out.extend_from_slice(&y.to_le_bytes());
            }
            Value::Bit(v) => {
                out.push(12);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::Enum(s) => text(out, 13, s.as_bytes()),
            Value::Set(s) => text(out, 14, s.as_bytes()),
            Value::String(s) => text(out, 15, s.as_bytes()),
            Value::Bytes(b) => text(out, 16, b),
            Value::Json(s) => text(out, 17, s.as_bytes()),
            Value::Geometry { srid, wkb } => {
                out.push(18);
                out.extend_from_slice(&srid.to_le_bytes());
                text(out, 18, wkb);
            }
            Value::Vector(v) => {
                out.push(19);
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                for f in v {
                    out.extend_from_slice(&f.to_bits().to_le_bytes());
                }
            }
        }
    }

    pub fn approx_bytes(&self) -> usize {
        let inline = std::mem::size_of::<Value>();
        match self {
            Value::String(s)
            | Value::Decimal(s)
            | Value::Json(s)
            | Value::Enum(s)
            | Value::Set(s) => inline + s.len(),
            Value::Bytes(b) => inline + b.len(),
            Value::Geometry { wkb, .. } => inline + wkb.len(),
            Value::Vector(v) => inline + v.len() * 4,
            _ => inline,
        }
    }

    /// Order of two key values of the same column type, as MySQL orders them for numeric, temporal and
    /// binary types. `None` when the order depends on a collation this process does not know.
    pub fn key_cmp(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (Null, Null) => Some(Ordering::Equal),
            (Null, _) => Some(Ordering::Less),
            (_, Null) => Some(Ordering::Greater),
            (Int(a), Int(b)) => Some(a.cmp(b)),
            (UInt(a), UInt(b)) => Some(a.cmp(b)),
            (Int(a), UInt(b)) => Some((*a as i128).cmp(&(*b as i128))),
            (UInt(a), Int(b)) => Some((*a as i128).cmp(&(*b as i128))),
            (Float(a), Float(b)) => a.partial_cmp(b),
            (Double(a), Double(b)) => a.partial_cmp(b),
            (Decimal(a), Decimal(b)) => Some(decimal_cmp(a, b)),
            (Date { .. }, Date { .. })
            | (DateTime { .. }, DateTime { .. })
            | (Timestamp { .. }, Timestamp { .. })
            | (Year(_), Year(_))
            | (Bit(_), Bit(_)) => Some(self.temporal_key().cmp(&other.temporal_key())),
            (Time { .. }, Time { .. }) => Some(self.time_micros().cmp(&other.time_micros())),
            (Bytes(a), Bytes(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    fn temporal_key(&self) -> (i64, u64) {
        match *self {
            Value::Date { year, month, day } => (
                0,
                ((year as u64) << 16) | ((month as u64) << 8) | day as u64,
            ),
            Value::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
            } => (
                ((year as i64) << 16) | ((month as i64) << 8) | day as i64,
                ((hour as u64) << 48)
                    | ((minute as u64) << 40)
                    | ((second as u64) << 32)
                    | micros as u64,
            ),
            Value::Timestamp { secs, micros } => (secs, micros as u64),
            Value::Year(y) => (y as i64, 0),
            Value::Bit(b) => (0, b),
            _ => (0, 0),
        }
    }

    /// A TIME as signed microseconds (0 for other types).
    pub fn time_micros(&self) -> i128 {
        match *self {
            Value::Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
            } => {
                let v = (((hours as i128 * 60 + minutes as i128) * 60 + seconds as i128)
                    * 1_000_000)
                    + micros as i128;
                if negative {
                    -v
                } else {
                    v
                }
            }
            _ => 0,
        }
    }
}

/// Compares two decimal strings numerically without floating point.
fn decimal_cmp(a: &str, b: &str) -> Ordering {
    let (neg_a, a) = split_sign(a);
    let (neg_b, b) = split_sign(b);
    let a_zero = a.bytes().all(|c| c == b'0' || c == b'.');
    let b_zero = b.bytes().all(|c| c == b'0' || c == b'.');
    let neg_a = neg_a && !a_zero;
    let neg_b = neg_b && !b_zero;
    match (neg_a, neg_b) {
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    let magnitude = {
        let (ai, af) = a.split_once('.').unwrap_or((a, ""));
        let (bi, bf) = b.split_once('.').unwrap_or((b, ""));
        let ai = ai.trim_start_matches('0');
        let bi = bi.trim_start_matches('0');
        ai.len()
            .cmp(&bi.len())
            .then_with(|| ai.cmp(bi))
            .then_with(|| {
                let len = af.len().max(bf.len());
                let af = format!("{af:0<len$}");
                let bf = format!("{bf:0<len$}");
                af.cmp(&bf)
            })
    };
    if neg_a {
        magnitude.reverse()
    } else {
        magnitude
    }
}

fn split_sign(s: &str) -> (bool, &str) {
    match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    }
}

/// Column type family; drives value decoding and (later) the lake type mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    TinyInt,
    SmallInt,
    MediumInt,
    Int,
    BigInt,
    Float,
    Double,
    Decimal,
    Date,
    DateTime,
    Timestamp,
    Time,
    Year,
    Bit,
    Enum,
    Set,
    /// CHAR/VARCHAR/TEXT with a character set.
    Text,
    /// BINARY/VARBINARY/BLOB (the `binary` character set).
    Binary,
    Json,
    Geometry,
    Vector,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSchema {
    pub name: String,
    pub kind: ColumnKind,
    /// Full SQL type as the server prints it, e.g. `decimal(65,30) unsigned`.
    pub sql_type: String,
    pub unsigned: bool,
    pub nullable: bool,
    /// Character set of text, enum and set columns (`utf8mb4`, `latin1`, …).
    pub charset: Option<String>,
    /// ENUM or SET members in definition order.
    pub members: Vec<String>,
    /// DECIMAL digits, BIT width, or the fractional-second digits of DATETIME/TIMESTAMP/TIME (0–6).
    pub precision: Option<u32>,
    pub scale: Option<u32>,
    /// Added by ALTER TABLE while binlake streamed: the value MySQL gave the rows that existed then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added: Option<AddedDefault>,
}

/// A column added to a table that had rows: every row older than `before_seq` holds `value` in MySQL
/// (the column's default then), though no row event says so. The lake backfills it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddedDefault {
    /// The `_seq` the stream had at the ALTER: rows with a lower `_seq` existed before the column.
    pub before_seq: u64,
    pub value: Value,
}

impl ColumnSchema {
    /// A nullable column of `kind` with no type details (tests and benchmarks build schemas by hand).
    pub fn new(name: &str, kind: ColumnKind) -> Self {
        ColumnSchema {
            name: name.into(),
            kind,
            sql_type: String::new(),
            unsigned: false,
            nullable: true,
            charset: None,
            members: vec![],
            precision: None,
            scale: None,
            added: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSchema {
    pub database: String,
    pub table: String,
    pub columns: Vec<ColumnSchema>,
    /// Indexes into `columns` of the key (primary key or configured key), in key order.
    pub key: Vec<usize>,
    /// Bumped on every schema change seen for this table, so consumers can tell versions apart.
    pub version: u32,
}

impl TableSchema {
    /// A table known only by name (dropped before this process saw its columns): enough to find its
    /// lake table, never to write rows.
    pub fn named_only(id: &TableId) -> TableSchema {
        TableSchema {
            database: id.database.clone(),
            table: id.table.clone(),
            columns: vec![],
            key: vec![],
            version: 0,
        }
    }

    pub fn id(&self) -> TableId {
        TableId::new(&self.database, &self.table)
    }

    /// The version a column set is known by: a hash of the columns (names, types, details) and the
    /// key, so a number always means the same columns, in every process and across restarts (readers of
    /// the schema-change topic key schemas by it). FNV-1a over their JSON form; never 0.
    pub fn content_version(&self) -> u32 {
        let bytes = serde_json::to_vec(&(&self.columns, &self.key)).expect("a schema serializes");
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            hash ^= b as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        ((hash >> 32) as u32 ^ hash as u32).max(1)
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    pub fn key_of(&self, row: &Row) -> Vec<Value> {
        self.key
            .iter()
            .map(|&i| row.get(i).cloned().unwrap_or(Value::Absent))
            .collect()
    }

    /// The key of `row` as bytes that are equal exactly when the key values are: batches collapse the
    /// changes of one key by it (this runs for every change, so it writes bytes without cloning values).
    pub fn key_bytes(&self, row: &[Value]) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * self.key.len());
        for &i in &self.key {
            row.get(i).unwrap_or(&Value::Absent).write_key(&mut out);
        }
        out
    }

    /// Whether two images of this table hold the same key.
    pub fn same_key(&self, a: &[Value], b: &[Value]) -> bool {
        self.key.iter().all(|&i| a.get(i) == b.get(i))
    }
}

/// A table: database and table name, case as the server reports it. Written `db.table`; a part that holds
/// a `.` or a backtick is written in backticks, as in SQL (`` `a.b`.t ``), so the text form is unambiguous
/// and, for ordinary names, the familiar one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    pub database: String,
    pub table: String,
}

impl TableId {
    pub fn new(database: &str, table: &str) -> Self {
        TableId {
            database: database.to_string(),
            table: table.to_string(),
        }
    }

    /// Parses the text form; `None` when it is not `db.table`.
    pub fn parse(s: &str) -> Option<TableId> {
        let (database, rest) = parse_part(s)?;
        let rest = rest.strip_prefix('.')?;
        let (table, rest) = parse_part(rest)?;
        rest.is_empty().then(|| TableId { database, table })
    }
}

/// One part of `db.table`: backticked (`` ` `` doubled inside) or up to the next `.`.
fn parse_part(s: &str) -> Option<(String, &str)> {
    if let Some(body) = s.strip_prefix('`') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '`' {
                if body[i + 1..].starts_with('`') {
                    out.push('`');
                    chars.next();
                } else {
                    return (!out.is_empty()).then(|| (out, &body[i + 1..]));
                }
            } else {
                out.push(c);
            }
        }
        None
    } else {
        let end = s.find('.').unwrap_or(s.len());
        let part = &s[..end];
        (!part.is_empty() && !part.contains('`')).then(|| (part.to_string(), &s[end..]))
    }
}

fn write_part(f: &mut fmt::Formatter<'_>, part: &str) -> fmt::Result {
    if part.contains(['.', '`']) || part.is_empty() {
        write!(f, "`{}`", part.replace('`', "``"))
    } else {
        f.write_str(part)
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_part(f, &self.database)?;
        f.write_str(".")?;
        write_part(f, &self.table)
    }
}

impl Serialize for TableId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TableId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TableId::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("`{s}` is not a `database.table` name"))
        })
    }
}

/// Values of one row, aligned with the columns of its `TableSchema`.
pub type Row = Vec<Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "c")]
    Insert,
    #[serde(rename = "u")]
    Update,
    #[serde(rename = "d")]
    Delete,
    #[serde(rename = "r")]
    Read,
    #[serde(rename = "t")]
    Truncate,
    /// The table was dropped (DROP TABLE, CREATE OR REPLACE, renamed away): like a TRUNCATE its rows are
    /// gone at this `_seq`, and the table leaves the catalog until it is created again. On the wire it is
    /// a truncate (`"t"`, the nearest Debezium operation) marked as a drop.
    #[serde(rename = "drop")]
    Drop,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Insert => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate | Op::Drop => "t",
        }
    }

    /// TRUNCATE and DROP: every row of the table older than this change is gone.
    pub fn empties_table(self) -> bool {
        matches!(self, Op::Truncate | Op::Drop)
    }
}

/// A place in the binlog: file name and byte offset of the next event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BinlogPosition {
    pub file: String,
    pub pos: u64,
}

impl BinlogPosition {
    pub fn new(file: impl Into<String>, pos: u64) -> Self {
        BinlogPosition {
            file: file.into(),
            pos,
        }
    }

    /// Numeric suffix of the file name (`mysql-bin.000042` → 42), the order the server rotates in.
    fn file_index(&self) -> u64 {
        self.file
            .rsplit('.')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

impl PartialOrd for BinlogPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BinlogPosition {
    fn cmp(&self, other: &Self) -> Ordering {
        self.file_index()
            .cmp(&other.file_index())
            .then_with(|| self.file.cmp(&other.file))
            .then_with(|| self.pos.cmp(&other.pos))
    }
}

impl fmt::Display for BinlogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

/// Where one event came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSource {
    pub server_id: u32,
    /// Binlog file and end offset of the rows event (for snapshot reads: the snapshot position).
    pub position: BinlogPosition,
    /// Index of the row inside its rows event.
    pub row: u32,
    /// GTID of the transaction (`uuid:n` on MySQL, `domain-server-seq` on MariaDB), when known.
    pub gtid: Option<String>,
    /// Commit time of the transaction in ms since the epoch (the binlog event timestamp).
    pub ts_ms: i64,
    pub snapshot: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub op: Op,
    pub schema: Arc<TableSchema>,
    pub before: Option<Row>,
    pub after: Option<Row>,
    pub source: EventSource,
    /// Connector-wide sequence number, assigned in binlog order and reproduced on replay.
    pub seq: u64,
    /// Order of this event inside its transaction, from 1.
    pub tx_order: u64,
}

impl ChangeEvent {
    /// Memory this event takes, roughly (both row images and the fixed part).
    /// The bytes its row images add to a lake batch, as the batch counts them against
    /// `lake.flush_max_bytes` (a key adds a few more).
    pub fn image_bytes(&self) -> usize {
        [&self.before, &self.after]
            .into_iter()
            .flatten()
            .flat_map(|r| r.iter())
            .map(Value::approx_bytes)
            .sum()
    }

    pub fn approx_bytes(&self) -> usize {
        let row = |r: &Option<Row>| {
            r.as_ref()
                .map_or(0, |r| r.iter().map(Value::approx_bytes).sum())
        };
        std::mem::size_of::<ChangeEvent>()
            + row(&self.before)
            + row(&self.after)
            + self.source.position.file.len()
            + self.source.gtid.as_ref().map_or(0, String::len)
    }

    /// True when an update changed the key: consumers must delete the old key and write the new one.
    pub fn key_changed(&self) -> bool {
        match (&self.before, &self.after) {
            (Some(b), Some(a)) if self.op == Op::Update => !self.schema.same_key(b, a),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SchemaChange {
    pub schema: Arc<TableSchema>,
    pub ddl: String,
    pub source: EventSource,
}

impl SourceMessage {
    /// Memory this message takes, roughly: what the channel's byte bound counts.
    pub fn approx_bytes(&self) -> usize {
        match self {
            SourceMessage::Change(ev) => ev.approx_bytes(),
            SourceMessage::SchemaChange(sc) => 1024 + sc.ddl.len() + sc.schema.columns.len() * 128,
            SourceMessage::Checkpoint(cp) => {
                256 + cp.snapshot.as_ref().map_or(0, |s| {
                    s.tables.values().map(|t| 64 + t.segments.len() * 128).sum()
                })
            }
        }
    }
}

/// What the source emits, in order.
#[derive(Debug, Clone)]
pub enum SourceMessage {
    Change(ChangeEvent),
    SchemaChange(SchemaChange),
    /// Everything before this message is a complete unit (a committed transaction or a snapshot chunk):
    /// once it is durable downstream, the source may restart from this checkpoint.
    Checkpoint(crate::event::progress::Checkpoint),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key bytes are equal exactly when the key values are: lengths delimit texts, tags delimit types.
    #[test]
    fn key_bytes_identify_the_key_values() {
        let schema = TableSchema {
            database: "d".into(),
            table: "t".into(),
            columns: vec![
                ColumnSchema::new("a", ColumnKind::Text),
                ColumnSchema::new("note", ColumnKind::Text),
                ColumnSchema::new("b", ColumnKind::Text),
            ],
            key: vec![0, 2],
            version: 1,
        };
        let row = |a: Value, b: Value| vec![a, Value::String("not in the key".into()), b];
        let s = |t: &str| Value::String(t.into());
        let same = [
            (row(s("ab"), s("c")), row(s("ab"), s("c"))),
            (
                row(Value::Int(1), Value::Null),
                row(Value::Int(1), Value::Null),
            ),
        ];
        for (x, y) in &same {
            assert_eq!(schema.key_bytes(x), schema.key_bytes(y));
            assert!(schema.same_key(x, y));
        }
        let mut other = row(s("ab"), s("c"));
        other[1] = Value::Null;
        assert_eq!(schema.key_bytes(&other), schema.key_bytes(&same[0].0));
        let different = [
            (row(s("ab"), s("c")), row(s("a"), s("bc"))),
            (
                row(Value::Int(1), Value::Null),
                row(Value::UInt(1), Value::Null),
            ),
            (
                row(Value::Null, Value::Null),
                row(Value::Absent, Value::Null),
            ),
            (
                row(s("1"), Value::Null),
                row(Value::Decimal("1".into()), Value::Null),
            ),
            (
                row(Value::Double(0.0), Value::Null),
                row(Value::Double(-0.0), Value::Null),
            ),
        ];
        for (x, y) in &different {
            assert_ne!(schema.key_bytes(x), schema.key_bytes(y), "{x:?} vs {y:?}");
        }
    }

    #[test]
    fn schema_versions_follow_the_columns_alone() {
        let schema = |cols: &[(&str, ColumnKind)]| TableSchema {
            database: "d".into(),
            table: "t".into(),
            columns: cols.iter().map(|(n, k)| ColumnSchema::new(n, *k)).collect(),
            key: vec![0],
            version: 0,
        };
        let a = schema(&[("id", ColumnKind::Int), ("c", ColumnKind::Int)]);
        let mut elsewhere = a.clone();
        elsewhere.table = "renamed".into();
        // the same columns: the same version, in any process; a fixed value, so it holds across builds
        assert_eq!(a.content_version(), elsewhere.content_version());
        assert_eq!(a.content_version(), 3_698_999_674);
        for other in [
            schema(&[("id", ColumnKind::Int)]),
            schema(&[("id", ColumnKind::Int), ("c", ColumnKind::BigInt)]),
            schema(&[("id", ColumnKind::Int), ("d", ColumnKind::Int)]),
            schema(&[("c", ColumnKind::Int), ("id", ColumnKind::Int)]),
        ] {
            assert_ne!(a.content_version(), other.content_version(), "{other:?}");
        }
        let mut nullable = a.clone();
        nullable.columns[1].nullable = false;
        assert_ne!(a.content_version(), nullable.content_version());
    }

    #[test]
    fn decimal_order_is_numeric() {
        assert_eq!(decimal_cmp("10.5", "9.99"), Ordering::Greater);
        assert_eq!(decimal_cmp("-10.5", "-9.99"), Ordering::Less);
        assert_eq!(decimal_cmp("-0.00", "0"), Ordering::Equal);
        assert_eq!(decimal_cmp("0.10", "0.1"), Ordering::Equal);
        assert_eq!(decimal_cmp("-1", "0.5"), Ordering::Less);
    }

    #[test]
    fn binlog_positions_order_by_file_index_then_offset() {
        let a = BinlogPosition::new("mysql-bin.000009", 900);
        let b = BinlogPosition::new("mysql-bin.000010", 4);
        assert!(a < b);
        assert!(BinlogPosition::new("mysql-bin.000010", 5) > b);
    }

    #[test]
    fn table_ids_read_and_write_unambiguously() {
        for (db, t, text) in [
            ("stocks", "quotes", "stocks.quotes"),
            ("a.b", "t", "`a.b`.t"),
            ("x", "tick`s", "`x`.`tick``s`"),
            ("../x", "my table", "`../x`.my table"),
        ] {
            let id = TableId::new(db, t);
            let shown = id.to_string();
            if db != "x" {
                assert_eq!(shown, text);
            }
            assert_eq!(TableId::parse(&shown), Some(id.clone()), "{shown}");
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(serde_json::from_str::<TableId>(&json).unwrap(), id);
        }
        assert_eq!(TableId::parse("nodot"), None);
        assert_eq!(TableId::parse("a.b.c"), None);
    }

    #[test]
    fn unsigned_and_signed_keys_compare_exactly() {
        assert_eq!(
            Value::UInt(u64::MAX).key_cmp(&Value::Int(-1)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            Value::String("a".into()).key_cmp(&Value::String("B".into())),
            None
        );
    }
}
