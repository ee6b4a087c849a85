//! The `debezium` encoding: each MySQL type as Debezium's MySQL connector writes it with its default
//! settings (`time.precision.mode=adaptive_time_microseconds`, `binary.handling.mode=bytes`), through
//! Kafka Connect's JsonConverter, so a consumer written for Debezium reads binlake's topics unchanged.
//! docs/types.md puts this and the `binlake` encoding side by side.

use crate::config::kafka::{BigintUnsignedMode, DecimalMode};
use crate::event::calendar::days_from_civil;
use crate::event::{ColumnKind, ColumnSchema, Row, TableSchema, Value};
use base64::Engine;
use deltalake::arrow::datatypes::{i256, Decimal256Type};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::{json, Value as Json};

/// The two handling modes that change how a value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modes {
    pub decimal: DecimalMode,
    pub bigint_unsigned: BigintUnsignedMode,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Big-endian two's complement in the fewest bytes, as Java's `BigInteger.toByteArray()`.
fn minimal_twos_complement(v: i256) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let sign = if v.is_negative() { 0xff } else { 0x00 };
    let mut start = 0;
    // drop a leading sign byte while the next byte still carries the same sign bit
    while start < bytes.len() - 1
        && bytes[start] == sign
        && (bytes[start + 1] & 0x80) == (sign & 0x80)
    {
        start += 1;
    }
    bytes[start..].to_vec()
}

/// Connect Decimal bytes of a decimal text at `scale`; `None` when the text is not a decimal.
pub fn decimal_bytes(text: &str, scale: u32) -> Option<Vec<u8>> {
    let unscaled = deltalake::arrow::compute::kernels::cast_utils::parse_decimal::<Decimal256Type>(
        text,
        76,
        scale as i8,
    )
    .ok()?;
    Some(minimal_twos_complement(unscaled))
}

fn fsp(col: &ColumnSchema) -> u32 {
    col.precision.unwrap_or(0).min(6)
}

/// Milliseconds (fsp ≤ 3) or microseconds (fsp > 3) since the epoch of a wall-clock DATETIME read as UTC.
fn datetime_epoch(col: &ColumnSchema, v: &Value) -> Option<i64> {
    let micros = crate::event::calendar::epoch_micros(v)?;
    Some(if fsp(col) <= 3 {
        micros.div_euclid(1000)
    } else {
        micros
    })
}

/// ISO-8601 UTC with the column's fractional digits: `2026-11-20T14:30:00.123Z`.
fn zoned_timestamp(col: &ColumnSchema, secs: i64, micros: u32) -> String {
    let (y, mo, d) = crate::event::calendar::civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    let mut s = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        t / 3600,
        t / 60 % 60,
        t % 60
    );
    let digits = fsp(col) as usize;
    if digits > 0 {
        let frac = format!("{micros:06}");
        s.push('.');
        s.push_str(&frac[..digits]);
    }
    s.push('Z');
    s
}

/// One column value in the Debezium encoding.
pub struct FieldValue<'a> {
    pub col: &'a ColumnSchema,
    pub value: &'a Value,
    pub modes: Modes,
}

impl Serialize for FieldValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let col = self.col;
        // Debezium writes a zero or invalid date of a NOT NULL column as the epoch, of a nullable one as null
        let zero = |s: S| {
            if col.nullable {
                s.serialize_none()
            } else {
                s.serialize_i64(0)
            }
        };
        match self.value {
            Value::Null | Value::Absent => s.serialize_none(),
            Value::Int(i) => s.serialize_i64(*i),
            Value::UInt(u) if col.kind == ColumnKind::BigInt => match self.modes.bigint_unsigned {
                // Debezium's `long`: the 64 bits read as a signed long
                BigintUnsignedMode::Long => s.serialize_i64(*u as i64),
                BigintUnsignedMode::Precise => {
                    s.serialize_str(&b64(&minimal_twos_complement(i256::from_i128(*u as i128))))
                }
            },
            Value::UInt(u) => s.serialize_u64(*u),
            Value::Float(f) => s.serialize_f32(*f),
            Value::Double(d) => s.serialize_f64(*d),
            Value::Decimal(text) => match self.modes.decimal {
                DecimalMode::String => s.serialize_str(text),
                DecimalMode::Double => match text.parse::<f64>() {
                    Ok(d) => s.serialize_f64(d),
                    Err(_) => Err(serde::ser::Error::custom(format!(
                        "column `{}`: `{text}` is not a decimal",
                        col.name
                    ))),
                },
                DecimalMode::Precise => match decimal_bytes(text, col.scale.unwrap_or(0)) {
                    Some(bytes) => s.serialize_str(&b64(&bytes)),
                    None => Err(serde::ser::Error::custom(format!(
                        "column `{}`: `{text}` is not a decimal",
                        col.name
                    ))),
                },
            },
            Value::Date { year, month, day } => {
                match days_from_civil(*year as i64, *month as i64, *day as i64) {
                    Some(d) => s.serialize_i64(d),
                    None => zero(s),
                }
            }
            v @ Value::DateTime { .. } => match datetime_epoch(col, v) {
                Some(t) => s.serialize_i64(t),
                None => zero(s),
            },
            Value::Timestamp { secs: 0, micros: 0 } if col.nullable => s.serialize_none(),
            Value::Timestamp { secs, micros } => {
                s.serialize_str(&zoned_timestamp(col, *secs, *micros))
            }
            t @ Value::Time { .. } => s.serialize_i64(t.time_micros() as i64),
            Value::Year(y) => s.serialize_u16(*y),
            Value::Bit(b) => {
                let width = col.precision.unwrap_or(64).clamp(1, 64);
                if width == 1 {
                    s.serialize_bool(*b & 1 == 1)
                } else {
                    // io.debezium.data.Bits: little-endian, ceil(width / 8) bytes
                    let n = width.div_ceil(8) as usize;
                    s.serialize_str(&b64(&b.to_le_bytes()[..n]))
                }
            }
            Value::Enum(t) | Value::Set(t) | Value::String(t) | Value::Json(t) => {
                s.serialize_str(t)
            }
            Value::Bytes(b) => s.serialize_str(&b64(b)),
            Value::Geometry { srid, wkb } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("wkb", &b64(wkb))?;
                m.serialize_entry("srid", srid)?;
                m.end()
            }
            Value::Vector(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for f in v {
                    seq.serialize_element(f)?;
                }
                seq.end()
            }
        }
    }
}

/// A row image (all columns, or only `only` by index) in the Debezium encoding.
pub struct RowValue<'a> {
    pub schema: &'a TableSchema,
    pub row: &'a Row,
    pub only: Option<&'a [usize]>,
    pub modes: Modes,
}

impl Serialize for RowValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let mut put = |i: usize| -> Result<(), S::Error> {
            let (Some(col), Some(value)) = (self.schema.columns.get(i), self.row.get(i)) else {
                return Ok(());
            };
            if matches!(value, Value::Absent) {
                return Ok(());
            }
            m.serialize_entry(
                &col.name,
                &FieldValue {
                    col,
                    value,
                    modes: self.modes,
                },
            )
        };
        match self.only {
            Some(indexes) => indexes.iter().try_for_each(|&i| put(i))?,
            None => (0..self.schema.columns.len()).try_for_each(&mut put)?,
        }
        m.end()
    }
}

/// The Connect schema of one column (JsonConverter's `schema` block).
pub fn field_schema(col: &ColumnSchema, modes: Modes) -> Json {
    let named = |ty: &str, name: &str| json!({"type": ty, "name": name, "version": 1});
    let mut f = match col.kind {
        ColumnKind::TinyInt => json!({"type": "int16"}),
        ColumnKind::SmallInt if col.unsigned => json!({"type": "int32"}),
        ColumnKind::SmallInt => json!({"type": "int16"}),
        ColumnKind::MediumInt => json!({"type": "int32"}),
        ColumnKind::Int if col.unsigned => json!({"type": "int64"}),
        ColumnKind::Int => json!({"type": "int32"}),
        ColumnKind::BigInt
            if col.unsigned && modes.bigint_unsigned == BigintUnsignedMode::Precise =>
        {
            json!({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
                   "parameters": {"scale": "0", "connect.decimal.precision": "20"}})
        }
        ColumnKind::BigInt => json!({"type": "int64"}),
        ColumnKind::Float => json!({"type": "float"}),
        ColumnKind::Double => json!({"type": "double"}),
        ColumnKind::Decimal => match modes.decimal {
            DecimalMode::Precise => json!({
                "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
                "parameters": {
                    "scale": col.scale.unwrap_or(0).to_string(),
                    "connect.decimal.precision": col.precision.unwrap_or(10).to_string(),
                }
            }),
            DecimalMode::String => json!({"type": "string"}),
            DecimalMode::Double => json!({"type": "double"}),
        },
        ColumnKind::Date => named("int32", "io.debezium.time.Date"),
        ColumnKind::DateTime if fsp(col) <= 3 => named("int64", "io.debezium.time.Timestamp"),
        ColumnKind::DateTime => named("int64", "io.debezium.time.MicroTimestamp"),
        ColumnKind::Timestamp => named("string", "io.debezium.time.ZonedTimestamp"),
        ColumnKind::Time => named("int64", "io.debezium.time.MicroTime"),
        ColumnKind::Year => named("int32", "io.debezium.time.Year"),
        ColumnKind::Bit if col.precision == Some(1) => json!({"type": "boolean"}),
        ColumnKind::Bit => json!({"type": "bytes", "name": "io.debezium.data.Bits", "version": 1,
            "parameters": {"length": col.precision.unwrap_or(64).to_string()}}),
        ColumnKind::Enum => json!({"type": "string", "name": "io.debezium.data.Enum", "version": 1,
            "parameters": {"allowed": col.members.join(",")}}),
        ColumnKind::Set => {
            json!({"type": "string", "name": "io.debezium.data.EnumSet", "version": 1,
            "parameters": {"allowed": col.members.join(",")}})
        }
        ColumnKind::Text => json!({"type": "string"}),
        ColumnKind::Binary => json!({"type": "bytes"}),
        ColumnKind::Json => named("string", "io.debezium.data.Json"),
        ColumnKind::Geometry => json!({
            "type": "struct", "name": "io.debezium.data.geometry.Geometry", "version": 1,
            "doc": "Geometry",
            "fields": [
                {"type": "bytes", "optional": false, "field": "wkb"},
                {"type": "int32", "optional": true, "field": "srid"},
            ]
        }),
        ColumnKind::Vector => json!({
            "type": "array", "name": "io.debezium.data.FloatVector", "version": 1,
            "items": {"type": "float", "optional": false}
        }),
    };
    f["optional"] = json!(col.nullable);
    f["field"] = json!(col.name);
    f
}

/// The struct schema of a row image (`<topic>.Value`) or key (`<topic>.Key`).
pub fn struct_schema(
    schema: &TableSchema,
    only: Option<&[usize]>,
    name: &str,
    optional: bool,
    modes: Modes,
) -> Json {
    let fields: Vec<Json> = match only {
        Some(idx) => idx
            .iter()
            .map(|&i| field_schema(&schema.columns[i], modes))
            .collect(),
        None => schema
            .columns
            .iter()
            .map(|c| field_schema(c, modes))
            .collect(),
    };
    json!({"type": "struct", "fields": fields, "optional": optional, "name": name})
}

/// The envelope schema of a table topic: before, after, source, op, ts_ms, transaction.
pub fn envelope_schema(schema: &TableSchema, topic: &str, modes: Modes) -> Json {
    let mut before = struct_schema(schema, None, &format!("{topic}.Value"), true, modes);
    let mut after = before.clone();
    before["field"] = json!("before");
    after["field"] = json!("after");
    let s = |ty: &str, field: &str, optional: bool| json!({"type": ty, "optional": optional, "field": field});
    let source = json!({
        "type": "struct", "optional": false, "name": "io.debezium.connector.mysql.Source", "field": "source",
        "fields": [
            s("string", "version", false), s("string", "connector", false), s("string", "name", false),
            s("int64", "ts_ms", false),
            {"type": "string", "optional": true, "name": "io.debezium.data.Enum", "version": 1,
             "parameters": {"allowed": "true,last,false,incremental"}, "default": "false", "field": "snapshot"},
            s("string", "db", false), s("string", "sequence", true), s("string", "table", true),
            s("int64", "server_id", false), s("string", "gtid", true), s("string", "file", false),
            s("int64", "pos", false), s("int32", "row", false), s("int64", "thread", true),
            s("string", "query", true),
        ]
    });
    let transaction = json!({
        "type": "struct", "optional": true, "name": "event.block", "version": 1, "field": "transaction",
        "fields": [s("string", "id", false), s("int64", "total_order", false),
                   s("int64", "data_collection_order", false)]
    });
    json!({
        "type": "struct", "optional": false, "name": format!("{topic}.Envelope"), "version": 1,
        "fields": [before, after, source, s("string", "op", false), s("int64", "ts_ms", true), transaction]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: Modes = Modes {
        decimal: DecimalMode::Precise,
        bigint_unsigned: BigintUnsignedMode::Long,
    };

    fn enc(col: &ColumnSchema, v: Value, modes: Modes) -> String {
        serde_json::to_string(&FieldValue {
            col,
            value: &v,
            modes,
        })
        .unwrap()
    }

    fn col(kind: ColumnKind) -> ColumnSchema {
        ColumnSchema::new("c", kind)
    }

    #[test]
    fn decimals_are_java_big_decimal_bytes() {
        // BigInteger(12345).toByteArray() = [0x30, 0x39]; -1 → [0xff]; 128 → [0x00, 0x80]
        assert_eq!(decimal_bytes("123.45", 2).unwrap(), vec![0x30, 0x39]);
        assert_eq!(decimal_bytes("-0.01", 2).unwrap(), vec![0xff]);
        assert_eq!(decimal_bytes("1.28", 2).unwrap(), vec![0x00, 0x80]);
        assert_eq!(decimal_bytes("0", 0).unwrap(), vec![0x00]);
        assert_eq!(decimal_bytes("-128", 0).unwrap(), vec![0x80]);
        assert_eq!(decimal_bytes("-129", 0).unwrap(), vec![0xff, 0x7f]);
        // 65 digits still fit
        let big = "9".repeat(35) + "." + &"9".repeat(30);
        assert!(decimal_bytes(&big, 30).unwrap().len() <= 28);
        let mut c = col(ColumnKind::Decimal);
        c.scale = Some(2);
        assert_eq!(enc(&c, Value::Decimal("123.45".into()), MODES), "\"MDk=\"");
        let string = Modes {
            decimal: DecimalMode::String,
            ..MODES
        };
        assert_eq!(
            enc(&c, Value::Decimal("123.45".into()), string),
            "\"123.45\""
        );
        let double = Modes {
            decimal: DecimalMode::Double,
            ..MODES
        };
        assert_eq!(enc(&c, Value::Decimal("123.45".into()), double), "123.45");
    }

    #[test]
    fn bigint_unsigned_long_wraps_precise_keeps() {
        let mut c = col(ColumnKind::BigInt);
        c.unsigned = true;
        assert_eq!(enc(&c, Value::UInt(u64::MAX), MODES), "-1");
        let precise = Modes {
            bigint_unsigned: BigintUnsignedMode::Precise,
            ..MODES
        };
        // 2^64-1 = 0x00ffffffffffffffff
        assert_eq!(
            enc(&c, Value::UInt(u64::MAX), precise),
            format!("\"{}\"", b64(&[0, 255, 255, 255, 255, 255, 255, 255, 255]))
        );
        // smaller unsigned types are exact numbers
        let mut i = col(ColumnKind::Int);
        i.unsigned = true;
        assert_eq!(enc(&i, Value::UInt(4_294_967_295), MODES), "4294967295");
    }

    #[test]
    fn temporal_types_follow_debezium() {
        let d = col(ColumnKind::Date);
        let date = |y, m, day| Value::Date {
            year: y,
            month: m,
            day,
        };
        assert_eq!(enc(&d, date(1970, 1, 2), MODES), "1");
        assert_eq!(enc(&d, date(1969, 12, 31), MODES), "-1");
        assert_eq!(enc(&d, date(0, 0, 0), MODES), "null");
        let mut not_null = d.clone();
        not_null.nullable = false;
        assert_eq!(enc(&not_null, date(0, 0, 0), MODES), "0");

        let dt = |micros| Value::DateTime {
            year: 2018,
            month: 6,
            day: 20,
            hour: 6,
            minute: 37,
            second: 3,
            micros,
        };
        let mut ms = col(ColumnKind::DateTime);
        ms.precision = Some(3);
        assert_eq!(enc(&ms, dt(123_000), MODES), "1529476623123");
        let mut us = col(ColumnKind::DateTime);
        us.precision = Some(6);
        assert_eq!(enc(&us, dt(123_456), MODES), "1529476623123456");

        let mut ts = col(ColumnKind::Timestamp);
        ts.precision = Some(0);
        let at = Value::Timestamp {
            secs: 1_529_476_623,
            micros: 0,
        };
        assert_eq!(enc(&ts, at.clone(), MODES), "\"2018-06-20T06:37:03Z\"");
        ts.precision = Some(3);
        assert_eq!(enc(&ts, at, MODES), "\"2018-06-20T06:37:03.000Z\"");

        let t = Value::Time {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 0,
        };
        assert_eq!(enc(&col(ColumnKind::Time), t, MODES), "-3020399000000");
    }

    #[test]
    fn bits_enums_and_geometry() {
        let mut b1 = col(ColumnKind::Bit);
        b1.precision = Some(1);
        assert_eq!(enc(&b1, Value::Bit(1), MODES), "true");
        let mut b12 = col(ColumnKind::Bit);
        b12.precision = Some(12);
        // 0x0a05 little-endian in two bytes
        assert_eq!(
            enc(&b12, Value::Bit(0x0a05), MODES),
            format!("\"{}\"", b64(&[0x05, 0x0a]))
        );
        let mut e = col(ColumnKind::Enum);
        e.members = vec!["XNAS".into(), "XNYS".into()];
        assert_eq!(
            field_schema(&e, MODES)["parameters"]["allowed"],
            json!("XNAS,XNYS")
        );
        let g = enc(
            &col(ColumnKind::Geometry),
            Value::Geometry {
                srid: 4326,
                wkb: vec![1, 2],
            },
            MODES,
        );
        assert_eq!(g, "{\"wkb\":\"AQI=\",\"srid\":4326}");
    }
}
