//! MySQL → Delta/Arrow type mapping (docs/types.md, "Lake" columns) and row → RecordBatch conversion.

use super::LakeError;
use crate::event::calendar::{days_from_civil, render_temporal};
use crate::event::{ColumnKind, ColumnSchema, Value};
use deltalake::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder, ListBuilder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::{DataType, Field, TimeUnit};
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::schema::types::ColumnPath;
use std::sync::Arc;

/// Widest decimal Delta (and Athena) store exactly; wider MySQL decimals become strings.
pub const MAX_DELTA_PRECISION: u32 = 38;

pub fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Arrow type of a source column in the lake. Every column is nullable in the lake: dropped columns
/// stay as nulls, and zero dates have no Delta representation.
pub fn lake_type(col: &ColumnSchema) -> DataType {
    use ColumnKind as K;
    match col.kind {
        K::TinyInt if col.unsigned => DataType::Int16,
        K::TinyInt => DataType::Int8,
        K::SmallInt if col.unsigned => DataType::Int32,
        K::SmallInt => DataType::Int16,
        K::MediumInt => DataType::Int32,
        K::Int if col.unsigned => DataType::Int64,
        K::Int => DataType::Int32,
        K::BigInt if col.unsigned => DataType::Decimal128(20, 0),
        K::BigInt => DataType::Int64,
        K::Float => DataType::Float32,
        K::Double => DataType::Float64,
        K::Decimal => {
            let (p, s) = (col.precision.unwrap_or(10), col.scale.unwrap_or(0));
            if p <= MAX_DELTA_PRECISION {
                DataType::Decimal128(p as u8, s as i8)
            } else {
                DataType::Utf8
            }
        }
        K::Date => DataType::Date32,
        K::DateTime | K::Timestamp => utc_micros(),
        K::Year => DataType::Int16,
        K::Bit => match col.precision.unwrap_or(64) {
            1 => DataType::Boolean,
            n if n <= 63 => DataType::Int64,
            _ => DataType::Decimal128(20, 0),
        },
        K::Time | K::Enum | K::Set | K::Text | K::Json => DataType::Utf8,
        K::Binary | K::Geometry => DataType::Binary,
        K::Vector => DataType::List(Arc::new(Field::new("element", DataType::Float32, true))),
    }
}

/// Parquet settings for the files binlake writes. Dictionary encoding pays off only where values repeat
/// (symbols, enum-like strings, `_op`); for keys, prices, timestamps and `_seq` the writer would build a
/// dictionary per column chunk and throw it away, which was the largest cost of a MERGE's file rewrites
/// (and, once the dictionary overflows, made the files larger, not smaller).
/// MERGE and appends write snappy (cheap to rewrite again); compaction writes zstd, for the colder bulk
/// of the table that Athena scans and bills by the byte.
pub fn writer_properties(
    columns: &[(String, DataType)],
    compression: Compression,
) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_created_by(format!("binlake {}", env!("CARGO_PKG_VERSION")))
        .set_compression(compression)
        .set_dictionary_enabled(false);
    for (name, ty) in columns {
        if dictionary_pays_off(ty) {
            b = b.set_column_dictionary_enabled(ColumnPath::from(name.as_str()), true);
        }
    }
    b.build()
}

/// Compression of compacted files.
pub fn compaction_compression() -> Compression {
    Compression::ZSTD(ZstdLevel::try_new(3).expect("valid zstd level"))
}

fn dictionary_pays_off(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary
    )
}

/// Parses exact decimal text into an i128 with `scale` fractional digits.
pub fn decimal_to_i128(text: &str, scale: i8) -> Option<i128> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = scale as usize;
    if frac.len() > scale {
        return None;
    }
    // digits gathered 18 at a time in a u64 (cannot overflow), then folded into the i128: one checked
    // 128-bit step per 18 digits rather than per digit (this runs for every decimal in every batch)
    let mut v: i128 = 0;
    let (mut chunk, mut chunk_digits) = (0u64, 0u32);
    for b in int
        .bytes()
        .chain(frac.bytes())
        .chain(std::iter::repeat_n(b'0', scale - frac.len()))
    {
        if !b.is_ascii_digit() {
            return None;
        }
        chunk = chunk * 10 + u64::from(b - b'0');
        chunk_digits += 1;
        if chunk_digits == 18 {
            v = v.checked_mul(10i128.pow(18))?.checked_add(chunk as i128)?;
            (chunk, chunk_digits) = (0, 0);
        }
    }
    if chunk_digits > 0 {
        v = v
            .checked_mul(10i128.pow(chunk_digits))?
            .checked_add(chunk as i128)?;
    }
    Some(if neg { -v } else { v })
}

/// Builds one Arrow column of type `ty` from `values` (`None` for rows that lack the column).
pub fn build_column(
    name: &str,
    ty: &DataType,
    values: &[Option<&Value>],
) -> Result<ArrayRef, LakeError> {
    let bad = |v: &Value| LakeError::Definite(format!("column `{name}`: {v:?} does not fit {ty}"));
    macro_rules! ints {
        ($builder:ty, $t:ty) => {{
            let mut b = <$builder>::with_capacity(values.len());
            for v in values {
                match v {
                    None | Some(Value::Null) | Some(Value::Absent) => b.append_null(),
                    Some(Value::Int(i)) => {
                        b.append_value(<$t>::try_from(*i).map_err(|_| bad(v.unwrap()))?)
                    }
                    Some(Value::UInt(u)) | Some(Value::Bit(u)) => {
                        b.append_value(<$t>::try_from(*u).map_err(|_| bad(v.unwrap()))?)
                    }
                    Some(Value::Year(y)) => {
                        b.append_value(<$t>::try_from(*y).map_err(|_| bad(v.unwrap()))?)
                    }
                    Some(other) => return Err(bad(other)),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match ty {
        DataType::Int8 => ints!(Int8Builder, i8),
        DataType::Int16 => ints!(Int16Builder, i16),
        DataType::Int32 => ints!(Int32Builder, i32),
        DataType::Int64 => ints!(Int64Builder, i64),
        DataType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(values.len());
            for v in values {
                match v {
                    None | Some(Value::Null) | Some(Value::Absent) => b.append_null(),
                    Some(Value::Bit(u)) => b.append_value(*u != 0),
                    Some(other) => return Err(bad(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Float32 => {
            let mut b = Float32Builder::with_capacity(values.len());
            for v in values {
                match v {
                    None | Some(Value::Null) | Some(Value::Absent) => b.append_null(),
                    Some(Value::Float(f)) => b.append_value(*f),
                    Some(other) => return Err(bad(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Float64 => {
            let mut b = Float64Builder::with_capacity(values.len());
            for v in values {
                match v {
                    None | Some(Value::Null) | Some(Value::Absent) => b.append_null(),
                    Some(Value::Double(f)) => b.append_value(*f),
                    Some(Value::Float(f)) => b.append_value(*f as f64),
                    Some(other) => return Err(bad(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Decimal128(p, s) => {
            let mut b = Decimal128Builder::with_capacity(values.len());
            for v in values {
                match v {
                    None | Some(Value::Null) | Some(Value::Absent) => b.append_null(),
                    Some(Value::UInt(u)) | Some(Value::Bit(u)) => {
                        b.append_value(*u as i128 * 10i128.pow(*s as u32))
                    }
                    Some(Value::Int(i)) => b.append_value(*i as i128 * 10i128.pow(*s as u32)),
                    Some(Value::Decimal(t)) => {
                        b.append_value(decimal_to_i128(t, *s).ok_or_else(|| bad(v.unwrap()))?)
                    }
                    Some(other) => return Err(bad(other)),
                }
            }
            Arc::new(
                b.finish()
                    .with_precision_and_scale(*p, *s)
                    .map_err(LakeError::from)?,
            )
        }
        DataType::Date32 => {
            let mut b = Date32Builder::with_capacity(values.len());
            for v in values {
                match v {
                    // zero, partial-zero and invalid dates have no Delta date: null (docs/types.md)
                    Some(Value::Date { year, month, day }) => b.append_option(
                        days_from_civil(*year as i64, *month as i64, *day as i64).map(|d| d as i32),
                    ),
                    None | Some(Value::Null) | Some(Value::Absent) => b.append_null(),
                    Some(other) => return Err(bad(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(values.len());
            for v in values {
                match v {
                    None | Some(Value::Null) | Some(Value::Absent) => b.append_null(),
                    Some(v @ (Value::DateTime { .. } | Value::Timestamp { .. })) => {
                        b.append_option(crate::event::calendar::epoch_micros(v))
                    }
                    Some(other) => return Err(bad(other)),
                }
            }
            Arc::new(b.finish().with_timezone("UTC"))
        }
        DataType::Utf8 => {
            let mut b = StringBuilder::with_capacity(values.len(), values.len() * 16);
            for v in values {
                match v {
                    None | Some(Value::Null) | Some(Value::Absent) => b.append_null(),
                    Some(
                        Value::String(s)
                        | Value::Enum(s)
                        | Value::Set(s)
                        | Value::Json(s)
                        | Value::Decimal(s),
                    ) => b.append_value(s),
                    Some(t @ Value::Time { .. }) => b.append_value(render_temporal(t)),
                    Some(other) => return Err(bad(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Binary => {
            let mut b = BinaryBuilder::with_capacity(values.len(), values.len() * 16);
            for v in values {
                match v {
                    None | Some(Value::Null) | Some(Value::Absent) => b.append_null(),
                    Some(Value::Bytes(x)) => b.append_value(x),
                    Some(Value::Geometry { wkb, .. }) => b.append_value(wkb),
                    Some(other) => return Err(bad(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::List(_) => {
            let mut b = ListBuilder::new(Float32Builder::new());
            for v in values {
                match v {
                    None | Some(Value::Null) | Some(Value::Absent) => b.append_null(),
                    Some(Value::Vector(x)) => {
                        b.values().append_slice(x);
                        b.append(true);
                    }
                    Some(other) => return Err(bad(other)),
                }
            }
            Arc::new(b.finish())
        }
        other => {
            return Err(LakeError::Definite(format!(
                "column `{name}`: no lake mapping for {other}"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(
        kind: ColumnKind,
        unsigned: bool,
        precision: Option<u32>,
        scale: Option<u32>,
    ) -> ColumnSchema {
        ColumnSchema {
            name: "c".into(),
            kind,
            sql_type: String::new(),
            unsigned,
            nullable: true,
            charset: None,
            members: vec![],
            precision,
            scale,
            added: None,
        }
    }

    #[test]
    fn exact_mappings() {
        assert_eq!(
            lake_type(&col(ColumnKind::BigInt, true, None, None)),
            DataType::Decimal128(20, 0)
        );
        assert_eq!(
            lake_type(&col(ColumnKind::TinyInt, true, None, None)),
            DataType::Int16
        );
        assert_eq!(
            lake_type(&col(ColumnKind::SmallInt, true, None, None)),
            DataType::Int32
        );
        assert_eq!(
            lake_type(&col(ColumnKind::SmallInt, false, None, None)),
            DataType::Int16
        );
        assert_eq!(
            lake_type(&col(ColumnKind::Int, true, None, None)),
            DataType::Int64
        );
        assert_eq!(
            lake_type(&col(ColumnKind::Decimal, false, Some(38), Some(10))),
            DataType::Decimal128(38, 10)
        );
        assert_eq!(
            lake_type(&col(ColumnKind::Decimal, false, Some(65), Some(30))),
            DataType::Utf8
        );
    }

    #[test]
    fn decimal_text_to_scaled_integer() {
        assert_eq!(decimal_to_i128("-12.5", 2), Some(-1250));
        assert_eq!(
            decimal_to_i128("18446744073709551615", 0),
            Some(18446744073709551615)
        );
        assert_eq!(decimal_to_i128("1.234", 2), None);
        // across the 18-digit chunks, up to the largest DECIMAL(38) and one digit past it
        let nines = "9".repeat(38);
        assert_eq!(decimal_to_i128(&nines, 0), Some(10i128.pow(38) - 1));
        assert_eq!(
            decimal_to_i128(&format!("-{}.{}", &nines[..20], &nines[..18]), 18),
            Some(-(10i128.pow(38) - 1))
        );
        assert_eq!(decimal_to_i128(&"9".repeat(39), 0), None);
        assert_eq!(
            decimal_to_i128("170141183460469231731687303715884105727", 0),
            Some(i128::MAX)
        );
        assert_eq!(
            decimal_to_i128("123456789012345678.9", 3),
            Some(123_456_789_012_345_678_900)
        );
        assert_eq!(decimal_to_i128("0.05", 4), Some(500));
        assert_eq!(decimal_to_i128("1e5", 0), None);
        assert_eq!(decimal_to_i128("+1", 0), None);
    }

    #[test]
    fn dictionaries_only_where_values_repeat() {
        let columns = [
            ("id".to_string(), DataType::Decimal128(20, 0)),
            ("symbol".to_string(), DataType::Utf8),
            ("quoted_at".to_string(), utc_micros()),
            ("_seq".to_string(), DataType::Int64),
            ("_op".to_string(), DataType::Utf8),
            ("payload".to_string(), DataType::Binary),
        ];
        let props = writer_properties(&columns, Compression::SNAPPY);
        let dict = |c: &str| props.dictionary_enabled(&ColumnPath::from(c));
        assert!(dict("symbol") && dict("_op") && dict("payload"));
        assert!(!dict("id") && !dict("quoted_at") && !dict("_seq"));
        // a column added later (not yet known to these properties) gets no dictionary
        assert!(!dict("added_later"));
        assert_eq!(
            props.compression(&ColumnPath::from("id")),
            Compression::SNAPPY
        );
        let compact = writer_properties(&columns, compaction_compression());
        assert!(matches!(
            compact.compression(&ColumnPath::from("id")),
            Compression::ZSTD(_)
        ));
    }
}
