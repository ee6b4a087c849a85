//! `binlake validate`: the table-level expectations evaluated now, over the Delta tables as they stand
//! (DataFusion SQL through `binlake query`'s session), printed as a table, JSON or JUnit, and recorded in
//! `binlake_quality.results` with `level = 'table'`.

use super::parity;
use super::query;
pub use super::validate_report::{render_html, render_junit, render_table};
use super::validate_time;
use super::LakeError;
use crate::config::quality::{StatBounds, TableCheck, TableExpectation};
use crate::config::Config;
use crate::event::TableId;
use crate::transforms::quality::{Status, MAX_SAMPLE_KEYS};
use deltalake::arrow::array::{Array, RecordBatch};
use deltalake::arrow::util::display::array_value_to_string;
use deltalake::datafusion::prelude::SessionContext;

/// One table-level expectation evaluated.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableResult {
    pub table: String,
    pub expectation: String,
    #[serde(rename = "type")]
    pub type_name: &'static str,
    pub severity: &'static str,
    pub description: String,
    pub status: &'static str,
    pub observed: String,
    pub expected: String,
    /// Rows in the table.
    pub element_count: u64,
    pub unexpected_count: u64,
    pub sample_keys: Vec<String>,
    /// Athena SQL that shows the failing rows, where one query can.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sql: String,
    /// The table is not in the lake (yet): a failure on demand, not judged by the scheduled run.
    #[serde(skip)]
    pub absent: bool,
}

fn quoted(id: &TableId) -> String {
    format!(
        "\"{}\".\"{}\"",
        id.database.replace('"', "\"\""),
        id.table.replace('"', "\"\"")
    )
}

fn idents(names: &[String]) -> String {
    names
        .iter()
        .map(|c| ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(super) async fn rows(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, LakeError> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// The single value of a one-row, one-column query, as f64 (NULL: None).
pub(super) async fn number(ctx: &SessionContext, sql: &str) -> Result<Option<f64>, LakeError> {
    let batches = rows(
        ctx,
        &format!("SELECT CAST(v AS DOUBLE) AS v FROM ({sql}) q"),
    )
    .await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let col = b
        .column(0)
        .as_any()
        .downcast_ref::<deltalake::arrow::array::Float64Array>()
        .expect("cast to DOUBLE");
    Ok((!col.is_null(0)).then(|| col.value(0)))
}

/// Each row of the batches as `a=1,b=x` (or the value alone for one column), at most `MAX_SAMPLE_KEYS`.
fn samples(batches: &[RecordBatch]) -> Result<Vec<String>, LakeError> {
    let mut out = vec![];
    for b in batches {
        for r in 0..b.num_rows() {
            if out.len() == MAX_SAMPLE_KEYS {
                return Ok(out);
            }
            let cells: Vec<String> = (0..b.num_columns())
                .map(|c| {
                    let v = array_value_to_string(b.column(c), r)?;
                    Ok(if b.num_columns() == 1 {
                        v
                    } else {
                        format!("{}={v}", b.schema().field(c).name())
                    })
                })
                .collect::<Result<_, LakeError>>()?;
            out.push(cells.join(","));
        }
    }
    Ok(out)
}

fn within(v: Option<f64>, min: Option<f64>, max: Option<f64>) -> bool {
    v.is_some_and(|v| min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m))
}

fn show(v: Option<f64>) -> String {
    v.map_or("NULL".into(), |v| format!("{v}"))
}

/// Evaluates the table-level expectations (of `only`, when given) over the lake as it stands.
pub async fn validate(
    config: &Config,
    only: Option<&TableId>,
) -> Result<Vec<TableResult>, LakeError> {
    validate_some(config, only, &|_| true).await
}

/// `validate` of the expectations whose check `pick` accepts (the scheduled run keeps parity apart).
pub async fn validate_some(
    config: &Config,
    only: Option<&TableId>,
    pick: &(dyn Fn(&TableCheck) -> bool + Sync),
) -> Result<Vec<TableResult>, LakeError> {
    let ctx = query::session(&config.lake).await?;
    let present = query::list_tables(&config.lake).await?;
    let deleted = format!("{}deleted", config.lake.metadata_prefix);
    let mut out = vec![];
    for e in &config.quality.tables {
        if only.is_some_and(|t| t != &e.table) || !pick(&e.check) {
            continue;
        }
        let mut r = TableResult {
            table: e.table.to_string(),
            expectation: e.id.clone(),
            type_name: e.check.type_name(),
            severity: e.severity.as_str(),
            description: e.description.clone(),
            status: Status::Fail.as_str(),
            observed: String::new(),
            expected: e.check.expected(),
            element_count: 0,
            unexpected_count: 0,
            sample_keys: vec![],
            sql: athena_sql(e),
            absent: false,
        };
        if !present.contains(&(e.table.database.clone(), e.table.table.clone())) {
            r.observed = "the table is not in the lake yet".into();
            r.absent = true;
            out.push(r);
            continue;
        }
        // soft-deleted rows are not part of the table MySQL has
        let t = if config.lake.soft_delete {
            format!(
                "(SELECT * FROM {} WHERE NOT {})",
                quoted(&e.table),
                ident(&deleted)
            )
        } else {
            quoted(&e.table)
        };
        r.element_count = number(&ctx, &format!("SELECT count(*) AS v FROM {t} s"))
            .await?
            .unwrap_or(0.0) as u64;
        let pass = evaluate(&ctx, e, &t, config, &mut r).await?;
        r.status = if pass { Status::Pass } else { Status::Fail }.as_str();
        out.push(r);
    }
    Ok(out)
}

async fn evaluate(
    ctx: &SessionContext,
    e: &TableExpectation,
    t: &str,
    config: &Config,
    r: &mut TableResult,
) -> Result<bool, LakeError> {
    let stat =
        |f: &str, b: &StatBounds| format!("SELECT {f}({}) AS v FROM {t} s", ident(&b.column));
    let source_ts = format!("{}source_ts", config.lake.metadata_prefix);
    let now = chrono::Utc::now();
    Ok(match &e.check {
        TableCheck::Unique { column_list } => {
            let cols = idents(column_list);
            let dup = format!("SELECT {cols} FROM {t} s GROUP BY {cols} HAVING count(*) > 1");
            r.unexpected_count = number(ctx, &format!("SELECT count(*) AS v FROM ({dup}) d"))
                .await?
                .unwrap_or(0.0) as u64;
            r.sample_keys = samples(&rows(ctx, &format!("{dup} LIMIT {MAX_SAMPLE_KEYS}")).await?)?;
            r.observed = format!("{} duplicated values", r.unexpected_count);
            r.unexpected_count == 0
        }
        TableCheck::RowCountBetween {
            min_value,
            max_value,
        } => {
            r.observed = format!("{} rows", r.element_count);
            within(
                Some(r.element_count as f64),
                min_value.map(|v| v as f64),
                max_value.map(|v| v as f64),
            )
        }
        TableCheck::NullFractionAtMost {
            column,
            max_fraction,
        } => {
            let nulls = number(
                ctx,
                &format!("SELECT count(*) - count({}) AS v FROM {t} s", ident(column)),
            )
            .await?
            .unwrap_or(0.0);
            r.unexpected_count = nulls as u64;
            let fraction = if r.element_count == 0 {
                0.0
            } else {
                nulls / r.element_count as f64
            };
            r.observed = format!("{fraction:.4} NULL ({nulls} rows)");
            fraction <= *max_fraction
        }
        TableCheck::DistinctCountBetween {
            column,
            min_value,
            max_value,
        } => {
            let v = number(
                ctx,
                &format!("SELECT count(DISTINCT {}) AS v FROM {t} s", ident(column)),
            )
            .await?;
            r.observed = format!("{} distinct", show(v));
            within(v, min_value.map(|v| v as f64), max_value.map(|v| v as f64))
        }
        TableCheck::MinBetween(b)
        | TableCheck::MaxBetween(b)
        | TableCheck::MeanBetween(b)
        | TableCheck::StddevBetween(b)
        | TableCheck::SumBetween(b) => {
            let f = match &e.check {
                TableCheck::MinBetween(_) => "min",
                TableCheck::MaxBetween(_) => "max",
                TableCheck::MeanBetween(_) => "avg",
                TableCheck::StddevBetween(_) => "stddev",
                _ => "sum",
            };
            let v = number(ctx, &stat(f, b)).await?;
            r.observed = format!("{f}({}) = {}", b.column, show(v));
            within(v, b.min_value, b.max_value)
        }
        TableCheck::Freshness {
            column,
            max_age_secs,
            active_hours,
        } => {
            let c = column.clone().unwrap_or(source_ts);
            let hours = active_hours.as_ref();
            validate_time::freshness(ctx, t, &c, *max_age_secs, hours, now, r).await?
        }
        TableCheck::Anomaly {
            column,
            metric,
            value_column,
            bucket_secs,
            trailing,
            max_deviations,
            active_hours,
        } => {
            let c = column.clone().unwrap_or(source_ts);
            validate_time::anomaly(
                ctx,
                t,
                &c,
                *metric,
                value_column.as_deref(),
                *bucket_secs,
                *trailing,
                *max_deviations,
                active_hours.as_ref(),
                now,
                r,
            )
            .await?
        }
        TableCheck::Parity {
            chunk_rows,
            rounds,
            catch_up_secs,
        } => {
            let opts = parity::ParityOptions {
                chunk_rows: *chunk_rows,
                rounds: *rounds,
                catch_up: std::time::Duration::from_secs(*catch_up_secs),
            };
            parity::parity(config, &e.table, &opts, r).await?
        }
        TableCheck::Schema { columns, exact } => {
            let df = ctx.sql(&format!("SELECT * FROM {t} s LIMIT 0")).await?;
            let prefix = &config.lake.metadata_prefix;
            // binlake's own columns are not the source's
            let have: Vec<String> = df
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|n| !n.starts_with(prefix.as_str()) || columns.contains(n))
                .collect();
            let missing: Vec<&String> = columns.iter().filter(|c| !have.contains(c)).collect();
            let extra: Vec<&String> = have.iter().filter(|c| !columns.contains(c)).collect();
            r.unexpected_count = (missing.len() + if *exact { extra.len() } else { 0 }) as u64;
            r.observed = format!("missing {missing:?}, others {extra:?}");
            missing.is_empty() && (!*exact || extra.is_empty())
        }
        TableCheck::Sql { query } => {
            let sql = query.replace("{table}", t);
            let found = rows(ctx, &sql).await?;
            r.unexpected_count = found.iter().map(|b| b.num_rows() as u64).sum();
            r.sample_keys = samples(&found)?;
            r.observed = format!("{} rows returned", r.unexpected_count);
            r.unexpected_count == 0
        }
    })
}

/// The Athena query that lists what a table-level expectation found, for the types one query can show.
fn athena_sql(e: &TableExpectation) -> String {
    let (Ok(db), Ok(table)) = (
        crate::names::encode(&e.table.database),
        crate::names::encode(&e.table.table),
    ) else {
        return String::new();
    };
    let t = format!("\"{db}\".\"{table}\"");
    match &e.check {
        TableCheck::Unique { column_list } => {
            let cols = idents(column_list);
            format!("SELECT {cols}, count(*) FROM {t} GROUP BY {cols} HAVING count(*) > 1")
        }
        TableCheck::Sql { query } => query.replace("{table}", &t),
        _ => String::new(),
    }
}
