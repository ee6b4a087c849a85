//! The data-quality stage: row-level expectations (`[[quality.expect]]`) evaluated on every batch before
//! the lake merges it, as DataFusion predicates over the Arrow batch. What a failure does depends on the
//! expectation's severity: record it, copy the failing rows into a quarantine table, or stop before the
//! batch is merged. The lake side (results and quarantine tables) is `sinks::lake::quality`.

pub mod evaluate;
pub mod rules;

pub use evaluate::{evaluate, restrict, Evaluation, Status, MAX_SAMPLE_KEYS};

use deltalake::arrow::error::ArrowError;
use deltalake::datafusion::error::DataFusionError;

/// Every variant is definite: a config that does not fit the table, or a `stop` expectation that failed.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error(
        "quality expectation `{expectation}`: table {table} has no column `{column}`; fix the column name in \
         [[quality.expect]] (names are case-sensitive)"
    )]
    UnknownColumn {
        expectation: String,
        table: String,
        column: String,
    },
    #[error("quality expectation `{expectation}`: column `{column}` is {found}; this type needs {needs}")]
    ColumnType {
        expectation: String,
        column: String,
        found: String,
        needs: String,
    },
    #[error("quality expectation `{0}` did not evaluate to true/false")]
    NotBoolean(String),
    #[error("evaluating a quality expectation: {0}")]
    Engine(#[from] DataFusionError),
    #[error("evaluating a quality expectation: {0}")]
    Arrow(#[from] ArrowError),
    /// A `stop` expectation failed: the batch was not merged.
    #[error(
        "quality expectation `{expectation}` ({description}) failed on {table}: {unexpected} of {checked} rows \
         (_seq {seq_min}..={seq_max}), e.g. keys {sample}; expected {expected}. Nothing of this batch was \
         merged and nothing is lost. Correcting the rows in MySQL does not help: binlake replays the failing \
         change first. To go on, change this expectation's severity to `quarantine` (keeps the rows aside) \
         or `warn`, or remove it, and start binlake again"
    )]
    Stopped {
        expectation: String,
        description: String,
        table: String,
        unexpected: u64,
        checked: u64,
        seq_min: i64,
        seq_max: i64,
        sample: String,
        expected: String,
    },
}
