//! Per-table partitioning (`[lake.partitions]`): a partition column binlake derives from a date or time
//! source column, so Athena and the MERGE of each batch read only the partitions a query or batch touches.

use super::LakeError;
use crate::event::calendar::{civil_from_days, days_from_civil};
use crate::event::{ColumnKind, TableSchema, Value};
use deltalake::arrow::array::{ArrayRef, Date32Array, Int32Array, StringArray};
use deltalake::arrow::datatypes::DataType;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Year,
    Month,
    Day,
}

/// How one table is partitioned: `day(traded_at)` puts each row in the partition of its `traded_at` date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitioning {
    pub source_column: String,
    pub transform: Transform,
    /// `lake.metadata_prefix`, which starts the partition column's name.
    pub prefix: String,
}

impl Partitioning {
    /// The same partitioning with its column named after `prefix` (`lake.metadata_prefix`).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    /// Parses `year(col)`, `month(col)` or `day(col)`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        let Some((func, rest)) = spec.split_once('(') else {
            return Err(format!(
                "`{spec}` is not a partition spec; use day(column), month(column) or year(column)"
            ));
        };
        let Some(column) = rest.strip_suffix(')').map(str::trim) else {
            return Err(format!("`{spec}`: missing closing parenthesis"));
        };
        if column.is_empty() {
            return Err(format!("`{spec}`: no column named"));
        }
        let transform = match func.trim().to_ascii_lowercase().as_str() {
            "year" => Transform::Year,
            "month" => Transform::Month,
            "day" => Transform::Day,
            other => {
                return Err(format!(
                    "`{spec}`: unknown transform `{other}`; use day, month or year"
                ))
            }
        };
        Ok(Partitioning {
            source_column: column.to_string(),
            transform,
            prefix: "_".into(),
        })
    }

    /// The partition column in Delta (and Athena): `<prefix><column>_<transform>`, with
    /// `lake.metadata_prefix` (default `_`) marking it as binlake's, like the other metadata columns.
    pub fn column_name(&self) -> String {
        let t = match self.transform {
            Transform::Year => "year",
            Transform::Month => "month",
            Transform::Day => "day",
        };
        format!("{}{}_{t}", self.prefix, self.source_column)
    }

    /// year: int (2026), month: string ('2026-11'), day: date.
    pub fn data_type(&self) -> DataType {
        match self.transform {
            Transform::Year => DataType::Int32,
            Transform::Month => DataType::Utf8,
            Transform::Day => DataType::Date32,
        }
    }

    /// The source column must exist and hold a date or time.
    pub fn check(&self, schema: &TableSchema) -> Result<(), LakeError> {
        let col = schema
            .columns
            .iter()
            .find(|c| c.name == self.source_column)
            .ok_or_else(|| {
                LakeError::Definite(format!(
                    "lake.partitions.\"{}\": {} has no column `{}`; name one of its DATE, DATETIME or TIMESTAMP columns",
                    schema.id(),
                    schema.id(),
                    self.source_column
                ))
            })?;
        match col.kind {
            ColumnKind::Date | ColumnKind::DateTime | ColumnKind::Timestamp => Ok(()),
            _ => Err(LakeError::Definite(format!(
                "lake.partitions.\"{}\": column `{}` is {}, not a DATE, DATETIME or TIMESTAMP",
                schema.id(),
                self.source_column,
                col.sql_type
            ))),
        }
    }

    /// The partition of `row` as text (`2026`, `2026-11`, `2026-11-21`); `None` when the column is NULL,
    /// a zero date or missing from this schema version (a dropped column).
    pub fn value(&self, schema: &TableSchema, row: &[Value]) -> Option<String> {
        let i = schema
            .columns
            .iter()
            .position(|c| c.name == self.source_column)?;
        let (y, m, d) = civil_date(row.get(i)?)?;
        Some(match self.transform {
            Transform::Year => format!("{y:04}"),
            Transform::Month => format!("{y:04}-{m:02}"),
            Transform::Day => format!("{y:04}-{m:02}-{d:02}"),
        })
    }

    /// The partition column for a batch, from the values `value` returned.
    pub fn array(&self, values: &[Option<String>]) -> ArrayRef {
        match self.transform {
            Transform::Year => Arc::new(Int32Array::from_iter(
                values
                    .iter()
                    .map(|v| v.as_deref().and_then(|s| s.parse().ok())),
            )),
            Transform::Month => Arc::new(StringArray::from_iter(values.iter())),
            Transform::Day => Arc::new(Date32Array::from_iter(values.iter().map(|v| {
                let (y, m, d) = parse_ymd(v.as_deref()?)?;
                Some(days_from_civil(y, m, d)? as i32)
            }))),
        }
    }

    /// A SQL literal for a partition value, typed like the column.
    pub fn literal(&self, value: &str) -> String {
        match self.transform {
            Transform::Year => value.to_string(),
            Transform::Month => format!("'{value}'"),
            Transform::Day => format!("CAST('{value}' AS DATE)"),
        }
    }

    /// Restricts a MERGE to the partitions that hold the batch's stored rows, so only their files are read.
    pub fn prune_predicate<'a>(
        &self,
        target_alias: &str,
        partitions: impl IntoIterator<Item = &'a Option<String>>,
    ) -> String {
        let col = format!("{target_alias}.\"{}\"", self.column_name());
        let mut literals = vec![];
        let mut null = false;
        for p in partitions {
            match p {
                Some(v) => literals.push(self.literal(v)),
                None => null = true,
            }
        }
        let mut parts = vec![];
        if !literals.is_empty() {
            parts.push(format!("{col} IN ({})", literals.join(", ")));
        }
        if null {
            parts.push(format!("{col} IS NULL"));
        }
        match parts.len() {
            0 => "FALSE".to_string(),
            1 => parts.remove(0),
            _ => format!("({})", parts.join(" OR ")),
        }
    }
}

fn parse_ymd(s: &str) -> Option<(i64, i64, i64)> {
    let mut it = s.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// The calendar date of a DATE, of a DATETIME's wall clock, or of a TIMESTAMP in UTC.
fn civil_date(v: &Value) -> Option<(i64, u32, u32)> {
    match *v {
        Value::Date { year, month, day }
        | Value::DateTime {
            year, month, day, ..
        } => (month > 0 && day > 0).then_some((year as i64, month as u32, day as u32)),
        Value::Timestamp { secs: 0, micros: 0 } => None,
        Value::Timestamp { secs, .. } => {
            let days = secs.div_euclid(86_400);
            Some(civil_from_days(days))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs_and_rejects_bad_ones() {
        let p = Partitioning::parse(" day( traded_at ) ").unwrap();
        assert_eq!(p.transform, Transform::Day);
        assert_eq!(p.column_name(), "_traded_at_day");
        assert_eq!(
            Partitioning::parse("MONTH(ts)").unwrap().transform,
            Transform::Month
        );
        assert!(Partitioning::parse("ts")
            .unwrap_err()
            .contains("day(column)"));
        assert!(Partitioning::parse("week(ts)")
            .unwrap_err()
            .contains("unknown transform"));
        assert!(Partitioning::parse("day(ts")
            .unwrap_err()
            .contains("parenthesis"));
        assert!(Partitioning::parse("day()")
            .unwrap_err()
            .contains("no column"));
    }

    #[test]
    fn timestamps_fall_in_their_utc_day() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for days in [-800_000i64, -1, 0, 59, 60, 20_000, 20_413, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m as i64, d as i64), Some(days));
        }
        // 2026-11-21T23:59:59Z and the next second
        let v = Value::Timestamp {
            secs: 1_795_305_599,
            micros: 0,
        };
        assert_eq!(civil_date(&v), Some((2026, 11, 21)));
        let v = Value::Timestamp {
            secs: 1_795_305_600,
            micros: 0,
        };
        assert_eq!(civil_date(&v), Some((2026, 11, 22)));
        assert_eq!(civil_date(&Value::Timestamp { secs: 0, micros: 0 }), None);
        let zero = Value::Date {
            year: 0,
            month: 0,
            day: 0,
        };
        assert_eq!(civil_date(&zero), None);
    }

    #[test]
    fn prune_predicate_lists_values_and_null() {
        let p = Partitioning::parse("day(ts)").unwrap();
        let parts = [Some("2026-11-20".to_string()), None];
        assert_eq!(
            p.prune_predicate("target", &parts),
            "(target.\"_ts_day\" IN (CAST('2026-11-20' AS DATE)) OR target.\"_ts_day\" IS NULL)"
        );
        assert_eq!(p.prune_predicate("target", &[]), "FALSE");
        let y = Partitioning::parse("year(ts)").unwrap();
        assert_eq!(
            y.prune_predicate("t", &[Some("2026".to_string())]),
            "t.\"_ts_year\" IN (2026)"
        );
    }
}
