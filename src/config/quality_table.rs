//! Table-level expectations: checked over a whole Delta table (`binlake validate`), not per batch. They
//! share `[[quality.expect]]` with the row-level ones; the `type` decides which kind an entry is.

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
    /// committed the change) is at most `max_age_secs` old.
    Freshness {
        #[serde(default)]
        column: Option<String>,
        max_age_secs: u64,
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
            } => format!(
                "newest {} at most {max_age_secs} s old",
                column.as_deref().unwrap_or("_source_ts")
            ),
            TableCheck::Schema { columns, exact } => format!(
                "columns {}{}",
                if *exact { "exactly " } else { "include " },
                columns.join(", ")
            ),
            TableCheck::Sql { query } => format!("no rows from: {query}"),
        }
    }
}
