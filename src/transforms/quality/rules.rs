//! Each row-level expectation as a DataFusion predicate that is true for a row that fails it. A NULL
//! result counts as not failing, as in Great Expectations, where only `not_null` looks at missing values.
//! The predicates run as vectorized kernels over the whole Arrow batch.

use super::QualityError;
use crate::config::quality::{Check, Expectation, Literal};
use deltalake::arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use deltalake::arrow::datatypes::{DataType, Schema};
use deltalake::datafusion::common::{Column, ScalarValue};
use deltalake::datafusion::functions::expr_fn::{character_length, octet_length, regexp_like};
use deltalake::datafusion::logical_expr::{
    cast, create_udf, ColumnarValue, Expr, ScalarUDF, Volatility,
};
use deltalake::datafusion::prelude::lit;
use std::ops::Not;
use std::sync::{Arc, OnceLock};

fn column(name: &str) -> Expr {
    // unqualified and unparsed: a source column may contain `.` or capitals
    Expr::Column(Column::from_name(name))
}

fn literal(l: &Literal) -> Expr {
    match l {
        Literal::Int(v) => lit(*v),
        Literal::Float(v) => lit(*v),
        Literal::Text(v) => lit(v.clone()),
        Literal::Bool(v) => lit(*v),
    }
}

/// `json_valid(text)`: whether each value parses as JSON (NULL stays NULL).
fn json_valid() -> &'static ScalarUDF {
    static UDF: OnceLock<ScalarUDF> = OnceLock::new();
    UDF.get_or_init(|| {
        create_udf(
            "binlake_json_valid",
            vec![DataType::Utf8],
            DataType::Boolean,
            Volatility::Immutable,
            Arc::new(|args: &[ColumnarValue]| {
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let text = arrays[0]
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("coerced to Utf8 by the signature");
                let valid: BooleanArray = text
                    .iter()
                    .map(|v| v.map(|s| serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()))
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(valid) as ArrayRef))
            }),
        )
    })
}

/// The column's type in the batch, or a definite error naming the expectation.
fn type_of<'a>(
    e: &Expectation,
    schema: &'a Schema,
    name: &str,
) -> Result<&'a DataType, QualityError> {
    schema
        .field_with_name(name)
        .map(|f| f.data_type())
        .map_err(|_| QualityError::UnknownColumn {
            expectation: e.id.clone(),
            table: e.table.to_string(),
            column: name.to_string(),
        })
}

fn unsupported(e: &Expectation, column: &str, ty: &DataType, needs: &str) -> QualityError {
    QualityError::ColumnType {
        expectation: e.id.clone(),
        column: column.to_string(),
        found: ty.to_string(),
        needs: needs.to_string(),
    }
}

/// The predicate true for the rows of a batch (with `schema`) that fail `e`, evaluated at `now_us`.
pub fn failing(e: &Expectation, schema: &Schema, now_us: i64) -> Result<Expr, QualityError> {
    for c in e.check.columns() {
        type_of(e, schema, c)?;
    }
    Ok(match &e.check {
        Check::NotNull { column: c } => column(c).is_null(),
        Check::Between {
            column: c,
            min_value,
            max_value,
            strict_min,
            strict_max,
        } => {
            let mut fails = vec![];
            if let Some(min) = min_value {
                let v = literal(min);
                fails.push(if *strict_min {
                    column(c).lt_eq(v)
                } else {
                    column(c).lt(v)
                });
            }
            if let Some(max) = max_value {
                let v = literal(max);
                fails.push(if *strict_max {
                    column(c).gt_eq(v)
                } else {
                    column(c).gt(v)
                });
            }
            any(fails)
        }
        Check::InSet {
            column: c,
            value_set,
        } => column(c).in_list(value_set.iter().map(literal).collect(), true),
        Check::NotInSet {
            column: c,
            value_set,
        } => column(c).in_list(value_set.iter().map(literal).collect(), false),
        Check::MatchRegex { column: c, regex } => {
            text_column(e, schema, c)?;
            regexp_like(column(c), lit(regex.clone()), None).not()
        }
        Check::NotMatchRegex { column: c, regex } => {
            text_column(e, schema, c)?;
            regexp_like(column(c), lit(regex.clone()), None)
        }
        Check::ValueLengthsBetween {
            column: c,
            min_value,
            max_value,
        } => {
            let ty = type_of(e, schema, c)?;
            let len = match ty {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                    character_length(column(c))
                }
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                    octet_length(column(c))
                }
                other => return Err(unsupported(e, c, other, "a text or binary column")),
            };
            let mut fails = vec![];
            if let Some(min) = min_value {
                fails.push(len.clone().lt(lit(*min as i64)));
            }
            if let Some(max) = max_value {
                fails.push(len.gt(lit(*max as i64)));
            }
            any(fails)
        }
        Check::ColumnPairGreaterThan {
            column_a,
            column_b,
            or_equal,
        } => {
            if *or_equal {
                column(column_a).lt(column(column_b))
            } else {
                column(column_a).lt_eq(column(column_b))
            }
        }
        Check::MulticolumnSumEqual {
            column_list,
            sum_total,
            tolerance,
        } => multicolumn_sum(e, schema, column_list, *sum_total, *tolerance)?,
        Check::JsonParseable { column: c } => {
            text_column(e, schema, c)?;
            json_valid().call(vec![column(c)]).not()
        }
        Check::DecimalScaleAtMost { column: c, scale } => {
            match type_of(e, schema, c)? {
                DataType::Decimal128(_, s) if *s <= *scale as i8 => lit(false),
                // rounding to `scale` places changes exactly the values that have more of them
                DataType::Decimal128(p, _) => {
                    let rounded = cast(column(c), DataType::Decimal128(*p, *scale as i8));
                    rounded.not_eq(column(c))
                }
                // DECIMALs wider than Delta's 38 digits are kept as text: a non-zero digit past `scale`
                DataType::Utf8 => regexp_like(
                    column(c),
                    lit(format!(r"^[-+]?\d*\.\d{{{scale}}}\d*[1-9]")),
                    None,
                ),
                other => return Err(unsupported(e, c, other, "a DECIMAL column")),
            }
        }
        Check::TimestampNotInFuture {
            column: c,
            tolerance_secs,
        } => {
            let limit_us = now_us + *tolerance_secs as i64 * 1_000_000;
            let limit = match type_of(e, schema, c)? {
                DataType::Timestamp(unit, tz) => {
                    use deltalake::arrow::datatypes::TimeUnit as U;
                    let v = match unit {
                        U::Second => limit_us / 1_000_000,
                        U::Millisecond => limit_us / 1_000,
                        U::Microsecond => limit_us,
                        U::Nanosecond => limit_us.saturating_mul(1_000),
                    };
                    let tz = tz.clone();
                    match unit {
                        U::Second => ScalarValue::TimestampSecond(Some(v), tz),
                        U::Millisecond => ScalarValue::TimestampMillisecond(Some(v), tz),
                        U::Microsecond => ScalarValue::TimestampMicrosecond(Some(v), tz),
                        U::Nanosecond => ScalarValue::TimestampNanosecond(Some(v), tz),
                    }
                }
                DataType::Date32 => {
                    ScalarValue::Date32(Some(limit_us.div_euclid(86_400_000_000) as i32))
                }
                other => {
                    return Err(unsupported(
                        e,
                        c,
                        other,
                        "a DATE, DATETIME or TIMESTAMP column",
                    ))
                }
            };
            column(c).gt(lit(limit))
        }
    })
}

fn text_column(e: &Expectation, schema: &Schema, c: &str) -> Result<(), QualityError> {
    match type_of(e, schema, c)? {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(()),
        other => Err(unsupported(
            e,
            c,
            other,
            "a text column (CHAR, VARCHAR, TEXT, ENUM, SET, JSON)",
        )),
    }
}

fn any(fails: Vec<Expr>) -> Expr {
    fails
        .into_iter()
        .reduce(Expr::or)
        .unwrap_or_else(|| lit(false))
}

/// Integers and DECIMALs are summed exactly (a money column must not fail on float rounding); any
/// floating-point column makes the sum a DOUBLE, compared within `tolerance`.
fn multicolumn_sum(
    e: &Expectation,
    schema: &Schema,
    columns: &[String],
    total: f64,
    tolerance: f64,
) -> Result<Expr, QualityError> {
    let mut exact = true;
    let mut scale: i8 = 0;
    for c in columns {
        match type_of(e, schema, c)? {
            t if t.is_integer() => {}
            DataType::Decimal128(_, s) => scale = scale.max(*s),
            DataType::Float32 | DataType::Float64 => exact = false,
            other => return Err(unsupported(e, c, other, "a numeric column")),
        }
    }
    let (sum, total, tolerance) = if exact {
        // at the widest scale of the columns, so no addend is rounded
        let as_decimal = |v: f64| {
            ScalarValue::Decimal128(
                Some((v * 10f64.powi(scale as i32)).round() as i128),
                38,
                scale,
            )
        };
        let sum = columns
            .iter()
            .map(|c| cast(column(c), DataType::Decimal128(38, scale)))
            .reduce(|a, b| a + b)
            .expect("at least two columns (validated)");
        (sum, lit(as_decimal(total)), lit(as_decimal(tolerance)))
    } else {
        let sum = columns
            .iter()
            .map(|c| cast(column(c), DataType::Float64))
            .reduce(|a, b| a + b)
            .expect("at least two columns (validated)");
        (sum, lit(total), lit(tolerance))
    };
    Ok((sum.clone() - total.clone())
        .gt(tolerance.clone())
        .or((total - sum).gt(tolerance)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::quality::Severity;
    use crate::event::TableId;
    use deltalake::arrow::array::{Decimal128Array, Int64Array, TimestampMicrosecondArray};
    use deltalake::arrow::datatypes::Field;
    use deltalake::arrow::record_batch::RecordBatch;
    use deltalake::datafusion::common::DFSchema;
    use deltalake::datafusion::prelude::SessionContext;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("bid", DataType::Decimal128(18, 6), true),
            Field::new("ask", DataType::Decimal128(18, 6), true),
            Field::new("symbol", DataType::Utf8, true),
            Field::new("doc", DataType::Utf8, true),
            Field::new(
                "ts",
                DataType::Timestamp(
                    deltalake::arrow::datatypes::TimeUnit::Microsecond,
                    Some("UTC".into()),
                ),
                true,
            ),
        ]);
        let dec = |v: &[Option<i128>]| {
            Arc::new(
                Decimal128Array::from(v.to_vec())
                    .with_precision_and_scale(18, 6)
                    .unwrap(),
            ) as ArrayRef
        };
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
                // 1.50, -2.00, NULL, 3.125
                dec(&[Some(1_500_000), Some(-2_000_000), None, Some(3_125_000)]),
                dec(&[Some(1_510_000), Some(-2_500_000), Some(1), Some(3_125_000)]),
                Arc::new(StringArray::from(vec![
                    Some("AAPL"),
                    Some("aapl"),
                    None,
                    Some("MSFTXXXXXXX"),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("{\"a\":1}"),
                    Some("{bad"),
                    None,
                    Some("[]"),
                ])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![
                        Some(0),
                        Some(2_000_000),
                        None,
                        Some(10_000_000),
                    ])
                    .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap()
    }

    /// The ids of the rows failing `check` (now = 1 s after the epoch).
    fn failing_ids(check: Check) -> Vec<i64> {
        let e = Expectation {
            id: "t".into(),
            table: TableId::new("d", "t"),
            severity: Severity::Warn,
            description: String::new(),
            mostly: 1.0,
            check,
        };
        let b = batch();
        let expr = failing(&e, &b.schema(), 1_000_000).unwrap();
        let df = DFSchema::try_from(b.schema().as_ref().clone()).unwrap();
        let phys = SessionContext::new()
            .create_physical_expr(expr, &df)
            .unwrap();
        let out = phys.evaluate(&b).unwrap().into_array(b.num_rows()).unwrap();
        let mask = out.as_any().downcast_ref::<BooleanArray>().unwrap();
        (0..b.num_rows())
            .filter(|&i| mask.is_valid(i) && mask.value(i))
            .map(|i| i as i64 + 1)
            .collect()
    }

    fn col(s: &str) -> String {
        s.to_string()
    }

    #[test]
    fn each_row_rule_flags_exactly_its_rows() {
        assert_eq!(failing_ids(Check::NotNull { column: col("bid") }), vec![3]);
        let between = |min: Option<Literal>, max: Option<Literal>, strict_min| Check::Between {
            column: col("bid"),
            min_value: min,
            max_value: max,
            strict_min,
            strict_max: false,
        };
        assert_eq!(
            failing_ids(between(Some(Literal::Int(0)), None, true)),
            vec![2]
        );
        assert_eq!(
            failing_ids(between(Some(Literal::Float(1.5)), None, false)),
            vec![2]
        );
        assert_eq!(
            failing_ids(between(Some(Literal::Float(1.5)), None, true)),
            vec![1, 2]
        );
        assert_eq!(
            failing_ids(between(None, Some(Literal::Int(3)), false)),
            vec![4]
        );
        assert_eq!(
            failing_ids(Check::Between {
                column: col("ts"),
                min_value: None,
                max_value: Some(Literal::Text("1970-01-01T00:00:05Z".into())),
                strict_min: false,
                strict_max: false,
            }),
            vec![4]
        );
        let set = vec![Literal::Text("AAPL".into()), Literal::Text("MSFT".into())];
        assert_eq!(
            failing_ids(Check::InSet {
                column: col("symbol"),
                value_set: set.clone()
            }),
            vec![2, 4]
        );
        assert_eq!(
            failing_ids(Check::NotInSet {
                column: col("symbol"),
                value_set: set
            }),
            vec![1]
        );
        assert_eq!(
            failing_ids(Check::MatchRegex {
                column: col("symbol"),
                regex: "^[A-Z]{1,5}$".into()
            }),
            vec![2, 4]
        );
        assert_eq!(
            failing_ids(Check::NotMatchRegex {
                column: col("symbol"),
                regex: "[a-z]".into()
            }),
            vec![2]
        );
        assert_eq!(
            failing_ids(Check::ValueLengthsBetween {
                column: col("symbol"),
                min_value: Some(2),
                max_value: Some(5)
            }),
            vec![4]
        );
        assert_eq!(
            failing_ids(Check::ColumnPairGreaterThan {
                column_a: col("ask"),
                column_b: col("bid"),
                or_equal: true
            }),
            vec![2]
        );
        assert_eq!(
            failing_ids(Check::ColumnPairGreaterThan {
                column_a: col("ask"),
                column_b: col("bid"),
                or_equal: false
            }),
            vec![2, 4]
        );
        // 1.50 + 1.51 = 3.01 exactly; 3.125 + 3.125 = 6.25
        assert_eq!(
            failing_ids(Check::MulticolumnSumEqual {
                column_list: vec![col("bid"), col("ask")],
                sum_total: 3.01,
                tolerance: 0.0
            }),
            vec![2, 4]
        );
        assert_eq!(
            failing_ids(Check::JsonParseable { column: col("doc") }),
            vec![2]
        );
        assert_eq!(
            failing_ids(Check::DecimalScaleAtMost {
                column: col("bid"),
                scale: 2
            }),
            vec![4]
        );
        assert_eq!(
            failing_ids(Check::DecimalScaleAtMost {
                column: col("bid"),
                scale: 6
            }),
            Vec::<i64>::new()
        );
        assert_eq!(
            failing_ids(Check::TimestampNotInFuture {
                column: col("ts"),
                tolerance_secs: 0
            }),
            vec![2, 4]
        );
        assert_eq!(
            failing_ids(Check::TimestampNotInFuture {
                column: col("ts"),
                tolerance_secs: 5
            }),
            vec![4]
        );
    }

    #[test]
    fn a_missing_or_mistyped_column_is_named() {
        let e = |check| Expectation {
            id: "e9".into(),
            table: TableId::new("d", "t"),
            severity: Severity::Warn,
            description: String::new(),
            mostly: 1.0,
            check,
        };
        let b = batch();
        let err = failing(
            &e(Check::NotNull {
                column: col("nope"),
            }),
            &b.schema(),
            0,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("nope") && err.to_string().contains("e9"),
            "{err}"
        );
        let err = failing(
            &e(Check::JsonParseable { column: col("id") }),
            &b.schema(),
            0,
        )
        .unwrap_err();
        assert!(err.to_string().contains("text column"), "{err}");
    }
}
