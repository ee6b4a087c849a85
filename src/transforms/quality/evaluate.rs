//! Evaluating a table's row-level expectations on one Arrow batch: which live rows fail each, how many,
//! and a few of their keys and values for people to look at.

use super::rules::failing;
use super::QualityError;
use crate::config::quality::Expectation;
use deltalake::arrow::array::{Array, BooleanArray, RecordBatch};
use deltalake::arrow::compute::kernels::boolean::and;
use deltalake::arrow::compute::prep_null_mask_filter;
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use deltalake::datafusion::common::DFSchema;
use deltalake::datafusion::prelude::SessionContext;

/// Keys a result and an alert show at most.
pub const MAX_SAMPLE_KEYS: usize = 20;
/// Failing values `observed` shows at most.
const MAX_OBSERVED: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
        }
    }
}

/// One expectation on one batch.
#[derive(Debug, Clone)]
pub struct Evaluation<'a> {
    pub expectation: &'a Expectation,
    /// Rows checked: the batch's live rows (deletes carry no new values).
    pub element_count: u64,
    pub unexpected_count: u64,
    pub status: Status,
    /// A few failing values, `column=value`.
    pub observed: String,
    pub sample_keys: Vec<String>,
    /// Row `i` of the batch failed.
    pub failing: BooleanArray,
}

impl Evaluation<'_> {
    pub fn unexpected_fraction(&self) -> f64 {
        if self.element_count == 0 {
            0.0
        } else {
            self.unexpected_count as f64 / self.element_count as f64
        }
    }
}

/// Evaluates `expectations` on the rows of `batch` that `checked` selects; `key` names the key columns.
pub fn evaluate<'a>(
    ctx: &SessionContext,
    expectations: &[&'a Expectation],
    batch: &RecordBatch,
    checked: &BooleanArray,
    key: &[String],
    now_us: i64,
) -> Result<Vec<Evaluation<'a>>, QualityError> {
    let schema = DFSchema::try_from(batch.schema().as_ref().clone())?;
    let element_count = checked.true_count() as u64;
    let mut out = Vec::with_capacity(expectations.len());
    for &e in expectations {
        let predicate = failing(e, &batch.schema(), now_us)?;
        let physical = ctx.create_physical_expr(predicate, &schema)?;
        let result = physical.evaluate(batch)?.into_array(batch.num_rows())?;
        let result = result
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| QualityError::NotBoolean(e.id.clone()))?;
        // NULL (a missing value, for every type but not_null) does not fail
        let failing = if result.null_count() > 0 {
            and(&prep_null_mask_filter(result), checked)?
        } else {
            and(result, checked)?
        };
        out.push(summarize(e, failing, element_count, batch, key)?);
    }
    Ok(out)
}

/// Counts, status and samples of one expectation whose failing rows are `failing`.
fn summarize<'a>(
    e: &'a Expectation,
    failing: BooleanArray,
    element_count: u64,
    batch: &RecordBatch,
    key: &[String],
) -> Result<Evaluation<'a>, QualityError> {
    let unexpected_count = failing.true_count() as u64;
    let allowed = ((1.0 - e.mostly) * element_count as f64).floor() as u64;
    let status = if unexpected_count > allowed {
        Status::Fail
    } else {
        Status::Pass
    };
    let rows: Vec<usize> = failing
        .values()
        .set_indices()
        .take(MAX_SAMPLE_KEYS)
        .collect();
    Ok(Evaluation {
        expectation: e,
        element_count,
        unexpected_count,
        status,
        observed: render_rows(
            batch,
            &e.check.columns(),
            &rows[..rows.len().min(MAX_OBSERVED)],
        )?,
        sample_keys: rows
            .iter()
            .map(|&i| render_key(batch, key, i))
            .collect::<Result<_, _>>()?,
        failing,
    })
}

/// The same evaluations limited to the rows `keep` selects (of those `checked` selected before).
pub fn restrict<'a>(
    evaluations: &[Evaluation<'a>],
    checked: &BooleanArray,
    keep: &BooleanArray,
    batch: &RecordBatch,
    key: &[String],
) -> Result<Vec<Evaluation<'a>>, QualityError> {
    let element_count = and(checked, keep)?.true_count() as u64;
    evaluations
        .iter()
        .map(|ev| {
            summarize(
                ev.expectation,
                and(&ev.failing, keep)?,
                element_count,
                batch,
                key,
            )
        })
        .collect()
}

fn cell(batch: &RecordBatch, column: &str, row: usize) -> Result<String, QualityError> {
    let Ok(i) = batch.schema().index_of(column) else {
        return Ok("?".into());
    };
    let options = FormatOptions::default().with_null("NULL");
    let f = ArrayFormatter::try_new(batch.column(i).as_ref(), &options)?;
    Ok(f.value(row).to_string())
}

/// `value` for a one-column key, `a=1,b=x` for a compound one.
pub fn render_key(batch: &RecordBatch, key: &[String], row: usize) -> Result<String, QualityError> {
    if let [only] = key {
        return cell(batch, only, row);
    }
    Ok(key
        .iter()
        .map(|k| Ok(format!("{k}={}", cell(batch, k, row)?)))
        .collect::<Result<Vec<_>, QualityError>>()?
        .join(","))
}

/// `bid=-1.5; bid=0` — the checked columns of the given rows.
fn render_rows(
    batch: &RecordBatch,
    columns: &[&str],
    rows: &[usize],
) -> Result<String, QualityError> {
    let mut parts = vec![];
    for &row in rows {
        let cells = columns
            .iter()
            .map(|c| Ok(format!("{c}={}", cell(batch, c, row)?)))
            .collect::<Result<Vec<_>, QualityError>>()?;
        parts.push(cells.join(", "));
    }
    Ok(parts.join("; "))
}
