//! Column values read back from Kafka records, in either encoding the publisher writes, given the
//! column's schema (from the schema-change topic). The inverse of `sinks/kafka/debezium.rs` and of the
//! binlake envelope: for every type the value read equals the value published, except where the
//! `debezium` encoding itself drops information (zero dates become null or the epoch; `double` decimals).

use crate::config::kafka::{BigintUnsignedMode, DecimalMode, Encoding};
use crate::event::calendar::civil_from_days;
use crate::event::{ColumnKind, ColumnSchema, Value};
use crate::sinks::kafka::debezium::Modes;
use base64::Engine;
use deltalake::arrow::datatypes::i256;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column `{column}`: {detail}")]
pub struct ValueError {
    pub column: String,
    pub detail: String,
}

/// One column's JSON as a record holds it, read without building a `serde_json::Value` for scalars (this
/// runs for every column of every record the sink consumes): a string borrows the record's bytes unless
/// it holds escapes. Objects and arrays (geometry, vectors) are kept as JSON.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Cell<'a> {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Json(Json),
}

impl<'a> Cell<'a> {
    pub fn is_null(&self) -> bool {
        matches!(self, Cell::Null)
    }

    /// As `serde_json::Value::as_i64`: an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Cell::Int(i) => Some(i),
            Cell::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Cell::UInt(u) => Some(u),
            Cell::Int(i) => u64::try_from(i).ok(),
            _ => None,
        }
    }

    /// As `serde_json::Value::as_f64`: any number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Cell::Int(i) => Some(i as f64),
            Cell::UInt(u) => Some(u as f64),
            Cell::Float(f) => Some(f),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Cell::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Cell::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn json(&self) -> Option<&Json> {
        match self {
            Cell::Json(j) => Some(j),
            _ => None,
        }
    }
}

/// As JSON text, for error messages.
impl std::fmt::Display for Cell<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Cell::Null => f.write_str("null"),
            Cell::Bool(b) => write!(f, "{b}"),
            Cell::Int(i) => write!(f, "{i}"),
            Cell::UInt(u) => write!(f, "{u}"),
            Cell::Float(x) => write!(f, "{}", Json::from(*x)),
            Cell::Str(s) => write!(f, "{}", Json::from(&**s)),
            Cell::Json(j) => write!(f, "{j}"),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Cell<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CellVisitor(std::marker::PhantomData))
    }
}

struct CellVisitor<'a>(std::marker::PhantomData<Cell<'a>>);

impl<'de: 'a, 'a> Visitor<'de> for CellVisitor<'a> {
    type Value = Cell<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Cell<'a>, E> {
        Ok(Cell::Null)
    }

    fn visit_none<E>(self) -> Result<Cell<'a>, E> {
        Ok(Cell::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Cell<'a>, D::Error> {
        Cell::deserialize(d)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Cell<'a>, E> {
        Ok(Cell::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Cell<'a>, E> {
        Ok(Cell::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Cell<'a>, E> {
        Ok(Cell::UInt(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Cell<'a>, E> {
        Ok(Cell::Float(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cell<'a>, E> {
        Ok(Cell::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cell<'a>, E> {
        Ok(Cell::Str(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Cell<'a>, E> {
        Ok(Cell::Str(Cow::Owned(v)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Cell<'a>, A::Error> {
        Json::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Cell::Json)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Cell<'a>, A::Error> {
        Json::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(Cell::Json)
    }
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// `unscaled` × 10^-scale as decimal text, as MySQL prints it (`scale` fractional digits).
fn decimal_text(unscaled: i256, scale: u32) -> String {
    let negative = unscaled < i256::ZERO;
    // i256's own formatting goes through a big integer; nearly every MySQL DECIMAL fits in an i128
    let digits = match unscaled.to_i128() {
        Some(v) => v.unsigned_abs().to_string(),
        None => unscaled.wrapping_abs().to_string(),
    };
    let scale = scale as usize;
    let pad = (scale + 1).saturating_sub(digits.len());
    let mut text = String::with_capacity(digits.len() + pad + 2);
    if negative {
        text.push('-');
    }
    let padded = std::iter::repeat_n('0', pad).chain(digits.chars());
    let int_len = digits.len() + pad - scale;
    for (i, c) in padded.enumerate() {
        if i == int_len {
            text.push('.');
        }
        text.push(c);
    }
    text
}

/// Base64 of a Java `BigInteger.toByteArray()` (a Debezium precise DECIMAL or BIGINT UNSIGNED) back to an
/// integer, decoded on the stack.
fn twos_complement_b64(s: &str) -> Option<i256> {
    let mut buf = [0u8; 48];
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(s, &mut buf)
        .ok()?;
    from_twos_complement(&buf[..n])
}

/// Java `BigInteger.toByteArray()` bytes back to an integer.
fn from_twos_complement(bytes: &[u8]) -> Option<i256> {
    if bytes.is_empty() || bytes.len() > 32 {
        return None;
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut be = [fill; 32];
    be[32 - bytes.len()..].copy_from_slice(bytes);
    Some(i256::from_be_bytes(be))
}

fn datetime_from_micros(micros: i64) -> Value {
    let days = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    let (year, month, day) = civil_from_days(days);
    Value::DateTime {
        year: year as u16,
        month: month as u8,
        day: day as u8,
        hour: (rest / 3_600_000_000) as u8,
        minute: (rest / 60_000_000 % 60) as u8,
        second: (rest / 1_000_000 % 60) as u8,
        micros: (rest % 1_000_000) as u32,
    }
}

fn time_from_micros(micros: i64) -> Value {
    let negative = micros < 0;
    let m = micros.unsigned_abs();
    Value::Time {
        negative,
        hours: (m / 3_600_000_000) as u32,
        minutes: (m / 60_000_000 % 60) as u8,
        seconds: (m / 1_000_000 % 60) as u8,
        micros: (m % 1_000_000) as u32,
    }
}

/// `2018-06-20T13:37:03.12Z` (the zoned or binlake TIMESTAMP text) as an instant.
fn parse_zoned(s: &str) -> Option<Value> {
    if s == "0000-00-00T00:00:00Z" {
        return Some(Value::Timestamp { secs: 0, micros: 0 });
    }
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(Value::Timestamp {
        secs: t.timestamp(),
        micros: t.timestamp_subsec_micros(),
    })
}

/// `2024-02-29` (zero parts allowed).
fn parse_date(s: &str) -> Option<(u16, u8, u8)> {
    let mut it = s.splitn(3, '-');
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

/// `HH:MM:SS[.ffffff]` with an optional leading `-` (hours up to 838).
fn parse_time(s: &str) -> Option<Value> {
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut it = hms.splitn(3, ':');
    let hours = it.next()?.parse().ok()?;
    let minutes = it.next()?.parse().ok()?;
    let seconds = it.next()?.parse().ok()?;
    let micros = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").get(..6)?.parse().ok()?
    };
    Some(Value::Time {
        negative,
        hours,
        minutes,
        seconds,
        micros,
    })
}

/// The value of `col` from its JSON in `encoding`; JSON null is `Value::Null`.
pub fn read_value(
    col: &ColumnSchema,
    json: &Cell,
    encoding: Encoding,
    modes: Modes,
) -> Result<Value, ValueError> {
    let bad = || ValueError {
        column: col.name.clone(),
        detail: format!(
            "{json} is not a {:?} value in the {encoding:?} encoding",
            col.kind
        ),
    };
    if json.is_null() {
        return Ok(Value::Null);
    }
    let int = || json.as_i64().ok_or_else(bad);
    let text = || json.as_str().ok_or_else(bad);
    let debezium = encoding == Encoding::Debezium;
    use ColumnKind as K;
    Ok(match col.kind {
        K::TinyInt | K::SmallInt | K::MediumInt | K::Int if col.unsigned => {
            Value::UInt(json.as_u64().ok_or_else(bad)?)
        }
        K::TinyInt | K::SmallInt | K::MediumInt | K::Int => Value::Int(int()?),
        K::BigInt if col.unsigned => match (debezium, modes.bigint_unsigned) {
            // Debezium's `long` wrote the 64 bits as a signed long: read them back as unsigned
            (true, BigintUnsignedMode::Long) => Value::UInt(int()? as u64),
            (true, BigintUnsignedMode::Precise) => {
                let v = twos_complement_b64(text()?).ok_or_else(bad)?;
                Value::UInt(
                    v.to_i128()
                        .and_then(|v| u64::try_from(v).ok())
                        .ok_or_else(bad)?,
                )
            }
            (false, _) => Value::UInt(json.as_u64().ok_or_else(bad)?),
        },
        K::BigInt => Value::Int(int()?),
        K::Float => Value::Float(json.as_f64().ok_or_else(bad)? as f32),
        K::Double => Value::Double(json.as_f64().ok_or_else(bad)?),
        K::Decimal => match (debezium, modes.decimal) {
            (true, DecimalMode::Precise) => {
                let v = twos_complement_b64(text()?).ok_or_else(bad)?;
                Value::Decimal(decimal_text(v, col.scale.unwrap_or(0)))
            }
            (true, DecimalMode::Double) => {
                Value::Decimal(json.as_f64().ok_or_else(bad)?.to_string())
            }
            _ => Value::Decimal(text()?.to_string()),
        },
        K::Date if debezium => {
            let (year, month, day) = civil_from_days(int()?);
            Value::Date {
                year: year as u16,
                month: month as u8,
                day: day as u8,
            }
        }
        K::Date => {
            let (year, month, day) = parse_date(text()?).ok_or_else(bad)?;
            Value::Date { year, month, day }
        }
        K::DateTime if debezium => {
            let t = int()?;
            datetime_from_micros(if col.precision.unwrap_or(0) <= 3 {
                t * 1000
            } else {
                t
            })
        }
        K::DateTime => {
            let s = text()?;
            let (date, time) = s.split_once('T').ok_or_else(bad)?;
            let (year, month, day) = parse_date(date).ok_or_else(bad)?;
            let Some(Value::Time {
                hours,
                minutes,
                seconds,
                micros,
                ..
            }) = parse_time(time)
            else {
                return Err(bad());
            };
            Value::DateTime {
                year,
                month,
                day,
                hour: hours as u8,
                minute: minutes,
                second: seconds,
                micros,
            }
        }
        K::Timestamp => parse_zoned(text()?).ok_or_else(bad)?,
        K::Time if debezium => time_from_micros(int()?),
        K::Time => parse_time(text()?).ok_or_else(bad)?,
        K::Year => Value::Year(u16::try_from(int()?).map_err(|_| bad())?),
        K::Bit if debezium && col.precision == Some(1) => {
            Value::Bit(u64::from(json.as_bool().ok_or_else(bad)?))
        }
        K::Bit if debezium => {
            let bytes = b64(text()?).ok_or_else(bad)?;
            if bytes.len() > 8 {
                return Err(bad());
            }
            let mut le = [0u8; 8];
            le[..bytes.len()].copy_from_slice(&bytes);
            Value::Bit(u64::from_le_bytes(le))
        }
        K::Bit => Value::Bit(json.as_u64().ok_or_else(bad)?),
        K::Enum => Value::Enum(text()?.to_string()),
        K::Set => Value::Set(text()?.to_string()),
        K::Text => Value::String(text()?.to_string()),
        K::Json => Value::Json(text()?.to_string()),
        K::Binary => Value::Bytes(b64(text()?).ok_or_else(bad)?),
        K::Geometry => {
            let json = json.json().ok_or_else(bad)?;
            Value::Geometry {
                srid: json["srid"]
                    .as_u64()
                    .and_then(|s| u32::try_from(s).ok())
                    .unwrap_or(0),
                wkb: b64(json["wkb"].as_str().ok_or_else(bad)?).ok_or_else(bad)?,
            }
        }
        K::Vector => Value::Vector(
            json.json()
                .and_then(Json::as_array)
                .ok_or_else(bad)?
                .iter()
                .map(|f| f.as_f64().map(|f| f as f32).ok_or_else(bad))
                .collect::<Result<_, _>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::envelope::ValueJson;
    use crate::sinks::kafka::debezium::FieldValue;

    fn col(
        kind: ColumnKind,
        unsigned: bool,
        precision: Option<u32>,
        scale: Option<u32>,
    ) -> ColumnSchema {
        ColumnSchema {
            unsigned,
            precision,
            scale,
            ..ColumnSchema::new("c", kind)
        }
    }

    fn cell(json: &Json) -> Cell<'static> {
        Cell::deserialize(json.clone()).unwrap()
    }

    /// Strings borrow the record unless they hold escapes; objects stay JSON; numbers keep their kind.
    #[test]
    fn cells_read_from_record_bytes() {
        let text = br#"["plain","a\"b",{"srid":4326},-3,18446744073709551615,1.5,true,null]"#;
        let cells: Vec<Cell> = serde_json::from_slice(text).unwrap();
        assert!(matches!(&cells[0], Cell::Str(Cow::Borrowed("plain"))));
        assert!(matches!(&cells[1], Cell::Str(Cow::Owned(s)) if s == "a\"b"));
        assert_eq!(cells[2].json().unwrap()["srid"], 4326);
        assert_eq!((cells[3].as_i64(), cells[3].as_u64()), (Some(-3), None));
        assert_eq!(
            (cells[4].as_i64(), cells[4].as_u64()),
            (None, Some(u64::MAX))
        );
        assert_eq!((cells[5].as_f64(), cells[5].as_i64()), (Some(1.5), None));
        assert_eq!(cells[6].as_bool(), Some(true));
        assert!(cells[7].is_null());
        assert_eq!(cells[1].to_string(), r#""a\"b""#);
    }

    const ALL_MODES: [Modes; 4] = [
        Modes {
            decimal: DecimalMode::Precise,
            bigint_unsigned: BigintUnsignedMode::Long,
        },
        Modes {
            decimal: DecimalMode::String,
            bigint_unsigned: BigintUnsignedMode::Precise,
        },
        Modes {
            decimal: DecimalMode::Precise,
            bigint_unsigned: BigintUnsignedMode::Precise,
        },
        Modes {
            decimal: DecimalMode::String,
            bigint_unsigned: BigintUnsignedMode::Long,
        },
    ];

    /// Every value written in both encodings (and every handling mode) reads back equal.
    #[test]
    fn both_encodings_read_back_what_was_written() {
        let dt = |micros| Value::DateTime {
            year: 1969,
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 58,
            micros,
        };
        let cases: Vec<(ColumnSchema, Value)> = vec![
            (
                col(ColumnKind::TinyInt, false, None, None),
                Value::Int(-128),
            ),
            (
                col(ColumnKind::MediumInt, true, None, None),
                Value::UInt(16_777_215),
            ),
            (
                col(ColumnKind::Int, false, None, None),
                Value::Int(-2_147_483_648),
            ),
            (
                col(ColumnKind::BigInt, false, None, None),
                Value::Int(i64::MIN),
            ),
            (
                col(ColumnKind::BigInt, true, None, None),
                Value::UInt(u64::MAX),
            ),
            (
                col(ColumnKind::BigInt, true, None, None),
                Value::UInt(9_223_372_036_854_775_808),
            ),
            (col(ColumnKind::Float, false, None, None), Value::Float(1.5)),
            (
                col(ColumnKind::Double, false, None, None),
                Value::Double(-2.25e300),
            ),
            (
                col(ColumnKind::Decimal, false, Some(65), Some(30)),
                Value::Decimal(format!("-{}.{}", "9".repeat(35), "1".repeat(30))),
            ),
            (
                col(ColumnKind::Decimal, false, Some(10), Some(3)),
                Value::Decimal("-0.005".into()),
            ),
            (
                col(ColumnKind::Decimal, false, Some(5), Some(0)),
                Value::Decimal("0".into()),
            ),
            (
                col(ColumnKind::Date, false, None, None),
                Value::Date {
                    year: 1960,
                    month: 2,
                    day: 29,
                },
            ),
            (col(ColumnKind::DateTime, false, Some(6), None), dt(999_999)),
            (col(ColumnKind::DateTime, false, Some(3), None), dt(123_000)),
            (
                col(ColumnKind::Timestamp, false, Some(6), None),
                Value::Timestamp {
                    secs: 2_147_483_647,
                    micros: 999_999,
                },
            ),
            (
                col(ColumnKind::Timestamp, false, Some(0), None),
                Value::Timestamp { secs: 1, micros: 0 },
            ),
            (
                col(ColumnKind::Time, false, Some(6), None),
                Value::Time {
                    negative: true,
                    hours: 838,
                    minutes: 59,
                    seconds: 59,
                    micros: 1,
                },
            ),
            (col(ColumnKind::Year, false, None, None), Value::Year(2155)),
            (col(ColumnKind::Bit, false, Some(1), None), Value::Bit(1)),
            (
                col(ColumnKind::Bit, false, Some(64), None),
                Value::Bit(u64::MAX - 5),
            ),
            (
                col(ColumnKind::Bit, false, Some(12), None),
                Value::Bit(0xa05),
            ),
            (
                col(ColumnKind::Enum, false, None, None),
                Value::Enum("XNYS".into()),
            ),
            (
                col(ColumnKind::Set, false, None, None),
                Value::Set("a,c".into()),
            ),
            (
                col(ColumnKind::Text, false, None, None),
                Value::String("tick \"quoted\" ✓".into()),
            ),
            (
                col(ColumnKind::Json, false, None, None),
                Value::Json("{\"a\":[1,2]}".into()),
            ),
            (
                col(ColumnKind::Binary, false, None, None),
                Value::Bytes(vec![0, 255, 7]),
            ),
            (
                col(ColumnKind::Geometry, false, None, None),
                Value::Geometry {
                    srid: 4326,
                    wkb: vec![1, 2, 3],
                },
            ),
            (
                col(ColumnKind::Vector, false, None, None),
                Value::Vector(vec![0.5, -1.0]),
            ),
            (col(ColumnKind::Int, false, None, None), Value::Null),
        ];
        for (c, v) in &cases {
            for modes in ALL_MODES {
                let written = serde_json::to_value(FieldValue {
                    col: c,
                    value: v,
                    modes,
                })
                .unwrap();
                assert_eq!(
                    read_value(c, &cell(&written), Encoding::Debezium, modes).as_ref(),
                    Ok(v),
                    "debezium {:?} {modes:?} via {written}",
                    c.kind
                );
            }
            let written = serde_json::to_value(ValueJson(v)).unwrap();
            assert_eq!(
                read_value(c, &cell(&written), Encoding::Binlake, ALL_MODES[0]).as_ref(),
                Ok(v),
                "binlake {:?} via {written}",
                c.kind
            );
        }
    }

    #[test]
    fn what_debezium_drops_and_what_is_refused() {
        let modes = ALL_MODES[0];
        // a zero date in a nullable column is written as null by Debezium
        let d = col(ColumnKind::Date, false, None, None);
        let zero = Value::Date {
            year: 0,
            month: 0,
            day: 0,
        };
        let written = serde_json::to_value(FieldValue {
            col: &d,
            value: &zero,
            modes,
        })
        .unwrap();
        assert_eq!(
            read_value(&d, &cell(&written), Encoding::Debezium, modes),
            Ok(Value::Null)
        );
        // the binlake encoding keeps it
        let written = serde_json::to_value(ValueJson(&zero)).unwrap();
        assert_eq!(
            read_value(&d, &cell(&written), Encoding::Binlake, modes),
            Ok(zero)
        );
        // a value of the wrong shape names the column
        let err = read_value(
            &d,
            &cell(&serde_json::json!("x")),
            Encoding::Debezium,
            modes,
        )
        .unwrap_err();
        assert_eq!(err.column, "c");
    }
}
