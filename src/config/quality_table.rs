//! Table-level expectations: checked over a whole Delta table (`binlake validate`), not per batch. They
//! share `[[quality.expect]]` with the row-level ones; the `type` decides which kind an entry is.

use super::hours::ActiveHours;
use super::quality::Severity;
use crate::event::TableId;
use serde::Deserialize;

/// One table-level `[[quality.expect]]` entry.
#[derive(Debug, Clone)]
pub struct TableExpectation {
    pub id: String,
    pub table: TableId,
    pub severity: Severity,
    pub description: String,
    pub check: TableCheck,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TableCheck {
    /// expect_compound_columns_to_be_unique (one column: expect_column_values_to_be_unique)
    Unique { column_list: Vec<String> },
    /// expect_table_row_count_to_be_between
    RowCountBetween {
        #[serde(default)]
        min_value: Option<u64>,
        #[serde(default)]
        max_value: Option<u64>,
    },
    /// expect_column_values_to_not_be_null with `mostly` over the table: at most this fraction NULL
    NullFractionAtMost { column: String, max_fraction: f64 },
    /// expect_column_unique_value_count_to_be_between
    DistinctCountBetween {
        column: String,
        #[serde(default)]
        min_value: Option<u64>,
        #[serde(default)]
        max_value: Option<u64>,
    },
    /// expect_column_min_to_be_between
    MinBetween(StatBounds),
    /// expect_column_max_to_be_between
    MaxBetween(StatBounds),
    /// expect_column_mean_to_be_between
    MeanBetween(StatBounds),
    /// expect_column_stdev_to_be_between
    StddevBetween(StatBounds),
    /// expect_column_sum_to_be_between
    SumBetween(StatBounds),
    /// No GE counterpart: the newest value of `column` (default: binlake's `_source_ts`, when the source
    /// committed the change) is at most `max_age_secs` old. With `active_hours`, checked only inside them,
    /// and the age counts from the window's start at the earliest (the first minutes after the open do
    /// not fail for last night's silence).
    Freshness {
        #[serde(default)]
        column: Option<String>,
        max_age_secs: u64,
        #[serde(default)]
        active_hours: Option<ActiveHours>,
    },
    /// No GE counterpart (GE needs a custom metric store for this): `metric` over the last complete
    /// `bucket_secs` bucket of `column` (default `_source_ts`) lies within `max_deviations` standard
    /// deviations of the `trailing` buckets before it (e.g. trades per minute). Empty buckets count as 0
    /// for `count` and `sum`; a count's deviation is at least √mean (Poisson noise), so a steady feed
    /// does not fail on one extra row. With `active_hours`, only buckets inside them are used.
    Anomaly {
        #[serde(default)]
        column: Option<String>,
        #[serde(default)]
        metric: AnomalyMetric,
        /// The column `sum`, `mean`, `min` and `max` aggregate.
        #[serde(default)]
        value_column: Option<String>,
        #[serde(default = "default_bucket_secs")]
        bucket_secs: u64,
        #[serde(default = "default_trailing")]
        trailing: u32,
        #[serde(default = "default_deviations")]
        max_deviations: f64,
        #[serde(default)]
        active_hours: Option<ActiveHours>,
    },
    /// expect_table_columns_to_match_set: these columns exist (and, with `exact`, no other source column).
    Schema {
        columns: Vec<String>,
        #[serde(default)]
        exact: bool,
    },
    /// A query returning the failing rows; `{table}` stands for the table (e.g.
    /// `SELECT id FROM {table} WHERE ask < bid`).
    Sql { query: String },
    /// No GE counterpart (CDC-specific): the Delta table equals the MySQL table — row count and every
    /// row compared, chunk by chunk in key order, at one binlog position; differing keys are re-read
    /// from fresh snapshots up to `rounds` times (a busy table moves on while it is compared).
    Parity {
        #[serde(default = "default_chunk_rows")]
        chunk_rows: usize,
        #[serde(default = "default_rounds")]
        rounds: u32,
        /// How long to wait for the lake to reach the snapshot's binlog position (direct mode).
        #[serde(default = "default_catch_up")]
        catch_up_secs: u64,
    },
}

fn default_chunk_rows() -> usize {
    10_000
}
fn default_rounds() -> u32 {
    3
}
fn default_catch_up() -> u64 {
    60
}

fn default_bucket_secs() -> u64 {
    60
}
fn default_trailing() -> u32 {
    30
}
fn default_deviations() -> f64 {
    3.0
}

/// What an anomaly expectation measures per bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyMetric {
    #[default]
    Count,
    Sum,
    Mean,
    Min,
    Max,
}

impl AnomalyMetric {
    /// The DataFusion aggregate.
    pub fn function(self) -> &'static str {
        match self {
            AnomalyMetric::Count => "count",
            AnomalyMetric::Sum => "sum",
            AnomalyMetric::Mean => "avg",
            AnomalyMetric::Min => "min",
            AnomalyMetric::Max => "max",
        }
    }

    /// Whether an empty bucket means 0 (rather than no value).
    pub fn zero_when_empty(self) -> bool {
        matches!(self, AnomalyMetric::Count | AnomalyMetric::Sum)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatBounds {
    pub column: String,
    #[serde(default)]
    pub min_value: Option<f64>,
    #[serde(default)]
    pub max_value: Option<f64>,
}

pub const TABLE_CHECK_TYPES: &[&str] = &[
    "unique",
    "row_count_between",
    "null_fraction_at_most",
    "distinct_count_between",
    "min_between",
    "max_between",
    "mean_between",
    "stddev_between",
    "sum_between",
    "freshness",
    "schema",
    "sql",
    "anomaly",
    "parity",
];

impl TableCheck {
    pub fn type_name(&self) -> &'static str {
        let i = match self {
            TableCheck::Unique { .. } => 0,
            TableCheck::RowCountBetween { .. } => 1,
            TableCheck::NullFractionAtMost { .. } => 2,
            TableCheck::DistinctCountBetween { .. } => 3,
            TableCheck::MinBetween(_) => 4,
            TableCheck::MaxBetween(_) => 5,
            TableCheck::MeanBetween(_) => 6,
            TableCheck::StddevBetween(_) => 7,
            TableCheck::SumBetween(_) => 8,
            TableCheck::Freshness { .. } => 9,
            TableCheck::Schema { .. } => 10,
            TableCheck::Sql { .. } => 11,
            TableCheck::Anomaly { .. } => 12,
            TableCheck::Parity { .. } => 13,
        };
        TABLE_CHECK_TYPES[i]
    }

    /// Parameter problems, in words (None: fine).
    pub fn problem(&self) -> Option<String> {
        let bounds = |min: Option<f64>, max: Option<f64>| match (min, max) {
            (None, None) => Some("give min_value, max_value or both".to_string()),
            (Some(a), Some(b)) if a > b => Some(format!("min_value {a} > max_value {b}")),
            _ => None,
        };
        match self {
            TableCheck::Unique { column_list } if column_list.is_empty() => {
                Some("column_list is empty".into())
            }
            TableCheck::RowCountBetween {
                min_value,
                max_value,
            }
            | TableCheck::DistinctCountBetween {
                min_value,
                max_value,
                ..
            } => bounds(min_value.map(|v| v as f64), max_value.map(|v| v as f64)),
            TableCheck::NullFractionAtMost { max_fraction, .. }
                if !(0.0..=1.0).contains(max_fraction) =>
            {
                Some("max_fraction must be in [0, 1]".into())
            }
            TableCheck::MinBetween(b)
            | TableCheck::MaxBetween(b)
            | TableCheck::MeanBetween(b)
            | TableCheck::StddevBetween(b)
            | TableCheck::SumBetween(b) => bounds(b.min_value, b.max_value),
            TableCheck::Schema { columns, .. } if columns.is_empty() => {
                Some("columns is empty".into())
            }
            TableCheck::Sql { query } if !query.contains("{table}") => {
                Some("the query must name its table as {table}".into())
            }
            TableCheck::Anomaly {
                metric,
                value_column,
                bucket_secs,
                trailing,
                max_deviations,
                ..
            } => {
                if *metric != AnomalyMetric::Count && value_column.is_none() {
                    Some(format!(
                        "metric {metric:?} needs value_column (the column it aggregates)"
                    ))
                } else if *bucket_secs == 0 {
                    Some("bucket_secs must be at least 1".into())
                } else if !(3..=10_000).contains(trailing) {
                    Some("trailing must be between 3 and 10000 buckets".into())
                } else if max_deviations.is_nan() || *max_deviations <= 0.0 {
                    Some("max_deviations must be above 0".into())
                } else {
                    None
                }
            }
            TableCheck::Parity {
                chunk_rows, rounds, ..
            } => {
                if !(100..=1_000_000).contains(chunk_rows) {
                    Some("chunk_rows must be between 100 and 1000000".into())
                } else if !(1..=10).contains(rounds) {
                    Some("rounds must be between 1 and 10".into())
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// What passing means, in words.
    pub fn expected(&self) -> String {
        let range = |min: Option<String>, max: Option<String>| {
            format!(
                "in [{}, {}]",
                min.unwrap_or_else(|| "-".into()),
                max.unwrap_or_else(|| "-".into())
            )
        };
        let stat = |name: &str, b: &StatBounds| {
            format!(
                "{name}({}) {}",
                b.column,
                range(
                    b.min_value.map(|v| v.to_string()),
                    b.max_value.map(|v| v.to_string())
                )
            )
        };
        match self {
            TableCheck::Unique { column_list } => format!("({}) unique", column_list.join(", ")),
            TableCheck::RowCountBetween {
                min_value,
                max_value,
            } => format!(
                "row count {}",
                range(
                    min_value.map(|v| v.to_string()),
                    max_value.map(|v| v.to_string())
                )
            ),
            TableCheck::NullFractionAtMost {
                column,
                max_fraction,
            } => format!("NULL fraction of {column} <= {max_fraction}"),
            TableCheck::DistinctCountBetween {
                column,
                min_value,
                max_value,
            } => format!(
                "distinct {column} {}",
                range(
                    min_value.map(|v| v.to_string()),
                    max_value.map(|v| v.to_string())
                )
            ),
            TableCheck::MinBetween(b) => stat("min", b),
            TableCheck::MaxBetween(b) => stat("max", b),
            TableCheck::MeanBetween(b) => stat("mean", b),
            TableCheck::StddevBetween(b) => stat("stddev", b),
            TableCheck::SumBetween(b) => stat("sum", b),
            TableCheck::Freshness {
                column,
                max_age_secs,
                active_hours,
            } => format!(
                "newest {} at most {max_age_secs} s old{}",
                column.as_deref().unwrap_or("_source_ts"),
                active_hours
                    .as_ref()
                    .map(|h| format!(" during {}", h.describe()))
                    .unwrap_or_default()
            ),
            TableCheck::Anomaly {
                column,
                metric,
                value_column,
                bucket_secs,
                trailing,
                max_deviations,
                ..
            } => format!(
                "{}({}) per {bucket_secs} s of {} within {max_deviations} σ of the last {trailing} buckets",
                metric.function(),
                value_column.as_deref().unwrap_or("*"),
                column.as_deref().unwrap_or("_source_ts")
            ),
            TableCheck::Schema { columns, exact } => format!(
                "columns {}{}",
                if *exact { "exactly " } else { "include " },
                columns.join(", ")
            ),
            TableCheck::Sql { query } => format!("no rows from: {query}"),
            TableCheck::Parity { .. } => "every row equal to the source's".into(),
        }
    }
}
