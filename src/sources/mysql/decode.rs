//! Converts server values into the lossless internal `Value`: binlog row images (decoded here with
//! mysql_common's per-column value parser) and snapshot rows (binary protocol), so both paths agree.

use super::charset::decode_text;
use crate::event::calendar::days_from_civil;
use crate::event::{ColumnKind, ColumnSchema, Value};
use mysql_common::binlog::jsondiff::{JsonDiff, JsonDiffOperation};
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;
use mysql_common::misc::raw::int::{LenEnc, RawInt};
use mysql_common::value::Value as MyValue;

/// A value that could not be converted; the caller adds table and column.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError(pub String);

type Result<T> = std::result::Result<T, DecodeError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(DecodeError(msg.into()))
}

/// Per-column decoding inputs from the TABLE_MAP event.
#[derive(Debug, Clone)]
pub struct WireColumn {
    pub column_type: ColumnType,
    pub meta: Vec<u8>,
}

/// Decodes one row image. `present[i]` says whether column i is in the image; `partial_json` marks JSON
/// columns (by column index) that carry a JSON diff instead of a document (PARTIAL_UPDATE_ROWS).
pub fn read_row_image<'a>(
    buf: &mut ParseBuf<'a>,
    columns: &[ColumnSchema],
    wire: &'a [WireColumn],
    present: &[bool],
    partial_json: Option<&[bool]>,
    before: Option<&[Value]>,
) -> Result<Vec<Value>> {
    let n_present = present.iter().filter(|p| **p).count();
    let null_bytes: &[u8] = buf
        .parse(n_present.div_ceil(8))
        .map_err(|e| DecodeError(format!("null bitmap: {e}")))?;
    let mut row = Vec::with_capacity(columns.len());
    let mut image_idx = 0usize;
    for (i, col) in columns.iter().enumerate() {
        if !present.get(i).copied().unwrap_or(false) {
            row.push(Value::Absent);
            continue;
        }
        let is_null = null_bytes[image_idx / 8] & (1 << (image_idx % 8)) != 0;
        image_idx += 1;
        if is_null {
            row.push(Value::Null);
            continue;
        }
        let w = &wire[i];
        let is_partial = partial_json
            .map(|p| p.get(i).copied().unwrap_or(false))
            .unwrap_or(false);
        let ctx = (w.column_type, w.meta.as_slice(), col.unsigned, is_partial);
        let raw: BinlogValue<'_> = buf
            .parse(ctx)
            .map_err(|e| DecodeError(format!("column `{}`: {e}", col.name)))?;
        let value = match raw {
            BinlogValue::JsonDiff(diffs) => {
                let base = before.and_then(|b| b.get(i));
                apply_partial_json(base, &diffs)
                    .map_err(|e| DecodeError(format!("column `{}`: {}", col.name, e.0)))?
            }
            other => from_binlog(col, other)
                .map_err(|e| DecodeError(format!("column `{}`: {}", col.name, e.0)))?,
        };
        let value = match value {
            // The binlog drops the zero padding of BINARY(n); SELECT returns all n bytes.
            Value::Bytes(mut b) if w.column_type == ColumnType::MYSQL_TYPE_STRING => {
                b.resize(b.len().max(fixed_string_len(&w.meta)), 0);
                Value::Bytes(b)
            }
            other => other,
        };
        row.push(value);
    }
    Ok(row)
}

/// Declared byte length of a CHAR/BINARY column from its TABLE_MAP metadata.
fn fixed_string_len(meta: &[u8]) -> usize {
    match meta {
        [b0, b1, ..] if *b0 != 0 => {
            let (b0, b1) = (*b0 as usize, *b1 as usize);
            if b0 & 0x30 != 0x30 {
                b1 | (((b0 & 0x30) ^ 0x30) << 4)
            } else {
                b1
            }
        }
        _ => 0,
    }
}

/// Reads the PARTIAL_UPDATE_ROWS shared-image header: which JSON columns carry diffs.
pub fn read_partial_json_columns(
    buf: &mut ParseBuf<'_>,
    wire: &[WireColumn],
) -> Result<Option<Vec<bool>>> {
    let options: RawInt<LenEnc> = buf
        .parse(())
        .map_err(|e| DecodeError(format!("value options: {e}")))?;
    if *options & 1 == 0 {
        return Ok(None);
    }
    let json_cols: Vec<usize> = wire
        .iter()
        .enumerate()
        .filter(|(_, w)| w.column_type == ColumnType::MYSQL_TYPE_JSON)
        .map(|(i, _)| i)
        .collect();
    let bits: &[u8] = buf
        .parse(json_cols.len().div_ceil(8))
        .map_err(|e| DecodeError(format!("partial bitmap: {e}")))?;
    let mut partial = vec![false; wire.len()];
    for (j, &col) in json_cols.iter().enumerate() {
        partial[col] = bits[j / 8] & (1 << (j % 8)) != 0;
    }
    Ok(Some(partial))
}

pub fn from_binlog(col: &ColumnSchema, v: BinlogValue<'_>) -> Result<Value> {
    match v {
        BinlogValue::Value(MyValue::NULL) => Ok(Value::Null),
        BinlogValue::Value(v) => from_binlog_plain(col, v),
        BinlogValue::Jsonb(j) => {
            // parse() also renders opaque scalars (DECIMAL, DATE/TIME/DATETIME, others as `base64:typeN:…`).
            let dom = j
                .parse()
                .map_err(|e| DecodeError(format!("binary JSON: {e}")))?;
            Ok(Value::Json(serde_json::Value::from(dom).to_string()))
        }
        BinlogValue::JsonDiff(_) => err("JSON diff without a before image"),
    }
}

fn from_binlog_plain(col: &ColumnSchema, v: MyValue) -> Result<Value> {
    use ColumnKind as K;
    match (col.kind, v) {
        // mysql_common reads a signed 24-bit integer into 32 bits without extending its sign
        (K::MediumInt, MyValue::Int(i)) if !col.unsigned => Ok(Value::Int(sign_extend_24(i))),
        (K::Timestamp, MyValue::Int(secs)) => Ok(Value::Timestamp { secs, micros: 0 }),
        (K::Timestamp, MyValue::Bytes(b)) => parse_epoch(&b),
        (K::Year, MyValue::Bytes(b)) => {
            // The binlog stores YEAR as year-1900; mysql_common adds 1900 back, so 1900 is the zero year.
            let y: u16 = ascii(&b)?
                .parse()
                .map_err(|_| DecodeError("bad YEAR".into()))?;
            Ok(Value::Year(if y == 1900 { 0 } else { y }))
        }
        (K::Enum, MyValue::Int(idx)) => enum_member(col, idx as usize),
        (K::Set, MyValue::Bytes(mask)) => {
            let mut bits: u64 = 0;
            for (i, b) in mask.iter().enumerate() {
                bits |= (*b as u64) << (8 * i);
            }
            Ok(Value::Set(set_from_bits(col, bits)))
        }
        (K::Text, MyValue::Bytes(b)) => {
            let cs = col.charset.as_deref().unwrap_or("utf8mb4");
            decode_text(cs, &b).map(Value::String).map_err(DecodeError)
        }
        (K::Json, MyValue::Bytes(b)) => normalize_json(&b),
        (_, v) => common(col, v),
    }
}

/// Converts a snapshot (binary protocol) value; strings arrive in the connection charset, utf8mb4.
pub fn from_snapshot(col: &ColumnSchema, v: MyValue) -> Result<Value> {
    use ColumnKind as K;
    match (col.kind, v) {
        (_, MyValue::NULL) => Ok(Value::Null),
        (K::Timestamp, MyValue::Date(y, mo, d, h, mi, s, us)) => {
            if y == 0 && mo == 0 && d == 0 {
                return Ok(Value::Timestamp { secs: 0, micros: 0 });
            }
            let days = days_from_civil(y as i64, mo as i64, d as i64).ok_or_else(|| {
                DecodeError(format!(
                    "TIMESTAMP on a day that does not exist: {y}-{mo}-{d}"
                ))
            })?;
            Ok(Value::Timestamp {
                secs: days * 86_400 + h as i64 * 3600 + mi as i64 * 60 + s as i64,
                micros: us,
            })
        }
        (K::Timestamp, MyValue::Bytes(b)) => {
            parse_datetime_text(&b).and_then(|v| from_snapshot(col, v))
        }
        (K::Year, MyValue::Int(y)) => Ok(Value::Year(y as u16)),
        (K::Year, MyValue::UInt(y)) => Ok(Value::Year(y as u16)),
        (K::Year, MyValue::Bytes(b)) => Ok(Value::Year(
            ascii(&b)?
                .parse()
                .map_err(|_| DecodeError("bad YEAR".into()))?,
        )),
        (K::Enum, MyValue::Bytes(b)) => Ok(Value::Enum(utf8(b)?)),
        (K::Set, MyValue::Bytes(b)) => Ok(Value::Set(utf8(b)?)),
        (K::Text, MyValue::Bytes(b)) => Ok(Value::String(utf8(b)?)),
        (K::Json, MyValue::Bytes(b)) => normalize_json(&b),
        (_, v) => common(col, v),
    }
}

/// Conversions that are the same for binlog and snapshot values.
fn common(col: &ColumnSchema, v: MyValue) -> Result<Value> {
    use ColumnKind as K;
    match (col.kind, v) {
        (K::TinyInt | K::SmallInt | K::MediumInt | K::Int | K::BigInt, MyValue::Int(i)) => {
            if col.unsigned {
                // Without signedness metadata the binlog parser reads unsigned columns as signed: reinterpret.
                let u = match col.kind {
                    K::TinyInt => i as u8 as u64,
                    K::SmallInt => i as u16 as u64,
                    K::MediumInt => (i as u64) & 0xFF_FFFF,
                    K::Int => i as u32 as u64,
                    _ => i as u64,
                };
                Ok(Value::UInt(u))
            } else {
                Ok(Value::Int(i))
            }
        }
        (K::TinyInt | K::SmallInt | K::MediumInt | K::Int | K::BigInt, MyValue::UInt(u)) => {
            if col.unsigned {
                Ok(Value::UInt(u))
            } else {
                Ok(Value::Int(u as i64))
            }
        }
        (K::Float, MyValue::Float(f)) => Ok(Value::Float(f)),
        (K::Float, MyValue::Double(d)) => Ok(Value::Float(d as f32)),
        (K::Double, MyValue::Double(d)) => Ok(Value::Double(d)),
        (K::Double, MyValue::Float(f)) => Ok(Value::Double(f as f64)),
        (K::Decimal, MyValue::Bytes(b)) => Ok(Value::Decimal(ascii(&b)?.to_string())),
        (K::Date, MyValue::Date(y, m, d, ..)) => Ok(Value::Date {
            year: y,
            month: m,
            day: d,
        }),
        (K::DateTime, MyValue::Date(year, month, day, hour, minute, second, micros)) => {
            Ok(Value::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
            })
        }
        (K::Date | K::DateTime, MyValue::Bytes(b)) => {
            parse_datetime_text(&b).and_then(|v| common(col, v))
        }
        (K::Time, MyValue::Time(negative, days, h, minutes, seconds, micros)) => Ok(Value::Time {
            negative,
            hours: days * 24 + h as u32,
            minutes,
            seconds,
            micros,
        }),
        (K::Bit, MyValue::Bytes(b)) => {
            if b.len() > 8 {
                return err("BIT wider than 64 bits");
            }
            Ok(Value::Bit(
                b.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64),
            ))
        }
        (K::Binary, MyValue::Bytes(b)) => Ok(Value::Bytes(b)),
        (K::Geometry, MyValue::Bytes(b)) => {
            if b.len() < 4 {
                return err("GEOMETRY value shorter than its SRID");
            }
            Ok(Value::Geometry {
                srid: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                wkb: b[4..].to_vec(),
            })
        }
        (K::Vector, MyValue::Bytes(b)) => {
            if b.len() % 4 != 0 {
                return err("VECTOR length is not a multiple of 4 bytes");
            }
            Ok(Value::Vector(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ))
        }
        (kind, v) => err(format!("unexpected {v:?} for a {kind:?} column")),
    }
}

/// A MEDIUMINT read as its 24 raw bits: values with the top bit set are negative.
fn sign_extend_24(i: i64) -> i64 {
    let bits = i & 0xFF_FFFF;
    if bits & 0x80_0000 != 0 {
        bits - 0x100_0000
    } else {
        bits
    }
}

fn enum_member(col: &ColumnSchema, idx: usize) -> Result<Value> {
    if idx == 0 {
        // Index 0 is MySQL's error value for an invalid ENUM string inserted in non-strict mode.
        return Ok(Value::Enum(String::new()));
    }
    if col.members.is_empty() {
        return Ok(Value::Enum(idx.to_string()));
    }
    col.members
        .get(idx - 1)
        .cloned()
        .map(Value::Enum)
        .ok_or_else(|| {
            DecodeError(format!(
                "ENUM index {idx} beyond {} members",
                col.members.len()
            ))
        })
}

fn set_from_bits(col: &ColumnSchema, bits: u64) -> String {
    let mut names = Vec::new();
    for i in 0..64 {
        if bits & (1 << i) != 0 {
            names.push(
                col.members
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("#{i}")),
            );
        }
    }
    names.join(",")
}

fn ascii(b: &[u8]) -> Result<&str> {
    std::str::from_utf8(b).map_err(|_| DecodeError("non-ASCII numeric text".into()))
}

fn utf8(b: Vec<u8>) -> Result<String> {
    String::from_utf8(b).map_err(|e| {
        DecodeError(format!(
            "invalid utf8mb4 at offset {}",
            e.utf8_error().valid_up_to()
        ))
    })
}

fn normalize_json(b: &[u8]) -> Result<Value> {
    let v: serde_json::Value =
        serde_json::from_slice(b).map_err(|e| DecodeError(format!("invalid JSON text: {e}")))?;
    Ok(Value::Json(v.to_string()))
}

/// `secs` or `secs.micros` as the binlog's TIMESTAMP2 text.
fn parse_epoch(b: &[u8]) -> Result<Value> {
    let s = ascii(b)?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    let secs: i64 = secs
        .parse()
        .map_err(|_| DecodeError(format!("bad TIMESTAMP `{s}`")))?;
    let micros: u32 = format!("{frac:0<6}")[..6]
        .parse()
        .map_err(|_| DecodeError(format!("bad TIMESTAMP `{s}`")))?;
    Ok(Value::Timestamp { secs, micros })
}

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]]` as the text protocol sends temporal values.
fn parse_datetime_text(b: &[u8]) -> Result<MyValue> {
    let s = ascii(b)?;
    let bad = || DecodeError(format!("bad date/time `{s}`"));
    let (date, time) = s.split_once(' ').unwrap_or((s, "00:00:00"));
    let mut d = date.split('-').map(|x| x.parse::<u32>());
    let (y, mo, da) = (d.next(), d.next(), d.next());
    let (Some(Ok(y)), Some(Ok(mo)), Some(Ok(da))) = (y, mo, da) else {
        return Err(bad());
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<u32>());
    let (Some(Ok(h)), Some(Ok(mi)), Some(Ok(se))) = (t.next(), t.next(), t.next()) else {
        return Err(bad());
    };
    let us: u32 = format!("{frac:0<6}")[..6].parse().map_err(|_| bad())?;
    Ok(MyValue::Date(
        y as u16, mo as u8, da as u8, h as u8, mi as u8, se as u8, us,
    ))
}

/// Applies MySQL partial JSON updates (binlog_row_value_options=PARTIAL_JSON) to the before image.
fn apply_partial_json(base: Option<&Value>, diffs: &[JsonDiff<'_>]) -> Result<Value> {
    let text = match base {
        Some(Value::Json(text)) => text,
        // A MINIMAL before image lacks the document, so the new one is not in this event either.
        None | Some(Value::Absent) => return Ok(Value::Absent),
        Some(Value::Null) => return err("partial JSON update of a NULL document"),
        Some(other) => return err(format!("partial JSON update of a non-JSON value {other:?}")),
    };
    let mut doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| DecodeError(e.to_string()))?;
    for diff in diffs {
        let path = parse_json_path(&diff.path_str())?;
        let value = match diff.value() {
            Some(v) => Some(
                serde_json::Value::try_from(v.clone()).map_err(|e| DecodeError(e.to_string()))?,
            ),
            None => None,
        };
        apply_one(&mut doc, &path, diff.operation(), value)?;
    }
    Ok(Value::Json(doc.to_string()))
}

#[derive(Debug, PartialEq)]
enum PathLeg {
    Key(String),
    Index(usize),
}

fn parse_json_path(p: &str) -> Result<Vec<PathLeg>> {
    let bad = || DecodeError(format!("unsupported JSON path `{p}`"));
    let mut rest = p.trim().strip_prefix('$').ok_or_else(bad)?;
    let mut legs = vec![];
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            if let Some(r) = r.strip_prefix('"') {
                let mut key = String::new();
                let mut chars = r.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => key.push(chars.next().ok_or_else(bad)?.1),
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        c => key.push(c),
                    }
                }
                rest = &r[end.ok_or_else(bad)?..];
                legs.push(PathLeg::Key(key));
            } else {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                legs.push(PathLeg::Key(r[..end].to_string()));
                rest = &r[end..];
            }
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(bad)?;
            legs.push(PathLeg::Index(r[..end].trim().parse().map_err(|_| bad())?));
            rest = &r[end + 1..];
        } else {
            return Err(bad());
        }
    }
    Ok(legs)
}

fn apply_one(
    doc: &mut serde_json::Value,
    path: &[PathLeg],
    op: JsonDiffOperation,
    value: Option<serde_json::Value>,
) -> Result<()> {
    let Some((last, parents)) = path.split_last() else {
        if let (JsonDiffOperation::REPLACE, Some(v)) = (op, value) {
            *doc = v;
            return Ok(());
        }
        return err("partial JSON update on the document root");
    };
    let mut target = &mut *doc;
    for leg in parents {
        target = match leg {
            PathLeg::Key(k) => target.get_mut(k.as_str()),
            PathLeg::Index(i) => target.get_mut(*i),
        }
        .ok_or_else(|| DecodeError("partial JSON update path not in the before image".into()))?;
    }
    match (op, last, target) {
        (JsonDiffOperation::REMOVE, PathLeg::Key(k), serde_json::Value::Object(m)) => {
            m.remove(k);
        }
        (JsonDiffOperation::REMOVE, PathLeg::Index(i), serde_json::Value::Array(a))
            if *i < a.len() =>
        {
            a.remove(*i);
        }
        (_, PathLeg::Key(k), serde_json::Value::Object(m)) => {
            m.insert(k.clone(), value.unwrap_or(serde_json::Value::Null));
        }
        (JsonDiffOperation::INSERT, PathLeg::Index(i), serde_json::Value::Array(a)) => {
            let i = (*i).min(a.len());
            a.insert(i, value.unwrap_or(serde_json::Value::Null));
        }
        (JsonDiffOperation::REPLACE, PathLeg::Index(i), serde_json::Value::Array(a))
            if *i < a.len() =>
        {
            a[*i] = value.unwrap_or(serde_json::Value::Null);
        }
        _ => return err("partial JSON update does not fit the before image"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(kind: ColumnKind, unsigned: bool) -> ColumnSchema {
        ColumnSchema {
            name: "c".into(),
            kind,
            sql_type: String::new(),
            unsigned,
            nullable: true,
            charset: None,
            members: vec!["a".into(), "b".into(), "c".into()],
            precision: None,
            scale: None,
            added: None,
        }
    }

    #[test]
    fn unsigned_without_signedness_metadata_is_reinterpreted() {
        assert_eq!(
            common(&col(ColumnKind::BigInt, true), MyValue::Int(-1)).unwrap(),
            Value::UInt(u64::MAX)
        );
        assert_eq!(
            common(&col(ColumnKind::TinyInt, true), MyValue::Int(-1)).unwrap(),
            Value::UInt(255)
        );
        assert_eq!(
            common(&col(ColumnKind::BigInt, false), MyValue::Int(i64::MIN)).unwrap(),
            Value::Int(i64::MIN)
        );
    }

    #[test]
    fn signed_mediumint_from_the_binlog_keeps_its_sign() {
        let signed = col(ColumnKind::MediumInt, false);
        for (raw, want) in [
            (0xFF_FFFF, -1),
            (0x80_0000, -8_388_608),
            (0x7F_FFFF, 8_388_607),
            (0, 0),
            (-1, -1),
        ] {
            assert_eq!(
                from_binlog_plain(&signed, MyValue::Int(raw)).unwrap(),
                Value::Int(want)
            );
        }
        assert_eq!(
            from_binlog_plain(&col(ColumnKind::MediumInt, true), MyValue::Int(0xFF_FFFF)).unwrap(),
            Value::UInt(16_777_215)
        );
    }

    #[test]
    fn set_and_enum_by_name() {
        assert_eq!(set_from_bits(&col(ColumnKind::Set, false), 0b101), "a,c");
        assert_eq!(
            enum_member(&col(ColumnKind::Enum, false), 2).unwrap(),
            Value::Enum("b".into())
        );
    }

    #[test]
    fn json_paths() {
        assert_eq!(
            parse_json_path("$.a[3].\"b c\"").unwrap(),
            vec![
                PathLeg::Key("a".into()),
                PathLeg::Index(3),
                PathLeg::Key("b c".into())
            ]
        );
    }

    #[test]
    fn timestamp_text() {
        assert_eq!(
            parse_epoch(b"1700000000.5").unwrap(),
            Value::Timestamp {
                secs: 1_700_000_000,
                micros: 500_000
            }
        );
    }
}
