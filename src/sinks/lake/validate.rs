//! `binlake validate`: the table-level expectations evaluated now, over the Delta tables as they stand
//! (DataFusion SQL through `binlake query`'s session), printed as a table, JSON or JUnit, and recorded in
//! `binlake_quality.results` with `level = 'table'`.

use super::query;
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
}

fn quoted(id: &TableId) -> String {
    format!(
        "\"{}\".\"{}\"",
        id.database.replace('"', "\"\""),
        id.table.replace('"', "\"\"")
    )
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn rows(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, LakeError> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// The single value of a one-row, one-column query, as f64 (NULL: None).
async fn number(ctx: &SessionContext, sql: &str) -> Result<Option<f64>, LakeError> {
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
    let ctx = query::session(&config.lake).await?;
    let present = query::list_tables(&config.lake).await?;
    let deleted = format!("{}deleted", config.lake.metadata_prefix);
    let mut out = vec![];
    for e in &config.quality.tables {
        if only.is_some_and(|t| t != &e.table) {
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
        };
        if !present.contains(&(e.table.database.clone(), e.table.table.clone())) {
            r.observed = "the table is not in the lake yet".into();
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
    Ok(match &e.check {
        TableCheck::Unique { column_list } => {
            let cols = column_list
                .iter()
                .map(|c| ident(c))
                .collect::<Vec<_>>()
                .join(", ");
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
        } => {
            let c = column
                .clone()
                .unwrap_or_else(|| format!("{}source_ts", config.lake.metadata_prefix));
            let newest = number(
                ctx,
                &format!("SELECT to_unixtime(max({})) AS v FROM {t} s", ident(&c)),
            )
            .await?;
            let now = crate::event::calendar::now_ms() as f64 / 1000.0;
            match newest {
                Some(ts) => {
                    let age = (now - ts).max(0.0);
                    r.observed = format!("newest {c} is {age:.0} s old");
                    age <= *max_age_secs as f64
                }
                None => {
                    r.observed = format!("no {c} at all");
                    false
                }
            }
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

/// `--format table`: one line per expectation.
pub fn render_table(results: &[TableResult]) -> String {
    let mut out = String::new();
    for r in results {
        out.push_str(&format!(
            "{:<4} {:<28} {:<24} {:<22} {} (expected {})\n",
            r.status.to_uppercase(),
            r.table,
            r.expectation,
            r.type_name,
            r.observed,
            r.expected
        ));
        if !r.sample_keys.is_empty() {
            out.push_str(&format!("     e.g. {}\n", r.sample_keys.join(" ")));
        }
    }
    let failed = results.iter().filter(|r| r.status == "fail").count();
    out.push_str(&format!(
        "{} expectations, {failed} failed\n",
        results.len()
    ));
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `--format junit`: one test suite per table, one test case per expectation (CI systems read it).
pub fn render_junit(results: &[TableResult]) -> String {
    let mut tables: Vec<&str> = results.iter().map(|r| r.table.as_str()).collect();
    tables.dedup();
    let failures = results.iter().filter(|r| r.status == "fail").count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"binlake validate\" tests=\"{}\" failures=\"{failures}\">\n",
        results.len()
    );
    let mut seen = std::collections::BTreeSet::new();
    for table in tables {
        if !seen.insert(table) {
            continue;
        }
        let cases: Vec<&TableResult> = results.iter().filter(|r| r.table == table).collect();
        let failed = cases.iter().filter(|r| r.status == "fail").count();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\">\n",
            xml(table),
            cases.len()
        ));
        for r in cases {
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\">",
                xml(table),
                xml(&r.expectation)
            ));
            if r.status == "fail" {
                out.push_str(&format!(
                    "<failure type=\"{}\" message=\"{}\">expected {}; e.g. {}</failure>",
                    r.type_name,
                    xml(&r.observed),
                    xml(&r.expected),
                    xml(&r.sample_keys.join(" "))
                ));
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
