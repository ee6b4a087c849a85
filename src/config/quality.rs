//! `[quality]` and `[[quality.expect]]`: expectations checked on every batch before the lake merges it.
//! Types and parameter names follow Great Expectations' (`docs/quality.md` maps each one), so a team
//! moving from a GE suite recognises them.

pub use super::quality_table::{
    AnomalyMetric, StatBounds, TableCheck, TableExpectation, TABLE_CHECK_TYPES,
};
use super::{invalid, ConfigError};
use crate::event::TableId;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeSet;

#[derive(Debug, Clone)]
pub struct QualityConfig {
    /// Write every evaluation to the Delta table `<lake.root>/binlake_quality/results` (default true).
    pub record_results: bool,
    /// `run` and `sink` evaluate the table-level expectations this often (default 300 s; 0: only
    /// `binlake validate`).
    pub table_check_interval_secs: u64,
    /// `parity` expectations read every row of the source and the lake, so they run on their own, rarer
    /// schedule (default 0: only `binlake validate`; 86400 for nightly).
    pub parity_interval_secs: u64,
    /// The row-level `[[quality.expect]]` entries, checked on every batch.
    pub expect: Vec<Expectation>,
    /// The table-level ones, checked over the Delta table (`binlake validate`).
    pub tables: Vec<TableExpectation>,
}

/// `[quality]` as written: each `[[quality.expect]]` becomes a row-level or a table-level expectation by
/// its `type`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuality {
    #[serde(default = "yes")]
    record_results: bool,
    #[serde(default = "default_table_check_interval")]
    table_check_interval_secs: u64,
    #[serde(default)]
    parity_interval_secs: u64,
    #[serde(default)]
    expect: Vec<toml::Table>,
}

fn default_table_check_interval() -> u64 {
    300
}

impl<'de> Deserialize<'de> for QualityConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawQuality::deserialize(d)?;
        let mut cfg = QualityConfig {
            record_results: raw.record_results,
            table_check_interval_secs: raw.table_check_interval_secs,
            parity_interval_secs: raw.parity_interval_secs,
            expect: vec![],
            tables: vec![],
        };
        for t in raw.expect {
            let is_table = matches!(t.get("type"), Some(toml::Value::String(s)) if TABLE_CHECK_TYPES.contains(&s.as_str()));
            if is_table {
                cfg.tables.push(table_expectation::<D::Error>(t)?);
            } else {
                cfg.expect.push(
                    Expectation::deserialize(toml::Value::Table(t)).map_err(D::Error::custom)?,
                );
            }
        }
        Ok(cfg)
    }
}

fn table_expectation<E: serde::de::Error>(mut t: toml::Table) -> Result<TableExpectation, E> {
    let (id, table, severity, description) = common::<E>(&mut t)?;
    let type_name = t
        .get("type")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let check = TableCheck::deserialize(toml::Value::Table(t))
        .map_err(|e| E::custom(format!("expectation `{id}` ({type_name}): {e}")))?;
    Ok(TableExpectation {
        id,
        table,
        severity,
        description,
        check,
    })
}

/// The keys every expectation has: id, table, severity, description.
fn common<E: serde::de::Error>(
    t: &mut toml::Table,
) -> Result<(String, TableId, Severity, String), E> {
    let id = take_text::<E>(t, "id")?.ok_or_else(|| E::missing_field("id"))?;
    let table_text = take_text::<E>(t, "table")?.ok_or_else(|| E::missing_field("table"))?;
    let description = take_text::<E>(t, "description")?.unwrap_or_default();
    let severity = match take_text::<E>(t, "severity")? {
        None => Severity::default(),
        Some(s) => Severity::deserialize(toml::Value::String(s.clone())).map_err(|_| {
            E::custom(format!(
                "expectation `{id}`: severity `{s}` is not one of warn, quarantine, stop"
            ))
        })?,
    };
    let table = TableId::parse(&table_text).ok_or_else(|| {
        E::custom(format!(
            "expectation `{id}`: table `{table_text}` must be written `database.table`"
        ))
    })?;
    Ok((id, table, severity, description))
}

fn yes() -> bool {
    true
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            record_results: true,
            table_check_interval_secs: default_table_check_interval(),
            parity_interval_secs: 0,
            expect: vec![],
            tables: vec![],
        }
    }
}

/// What a failing expectation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Record the result (and alert); the batch is merged as it is.
    #[default]
    Warn,
    /// Also copy the failing rows into `<db>/<table>__quarantine`; the main table still mirrors the source.
    Quarantine,
    /// Stop before merging the batch: a definite error, nothing merged, nothing lost.
    Stop,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warn => "warn",
            Severity::Quarantine => "quarantine",
            Severity::Stop => "stop",
        }
    }
}

/// One `[[quality.expect]]` entry: what every expectation has, and its type with its parameters.
#[derive(Debug, Clone)]
pub struct Expectation {
    /// Unique; names the expectation in results, metrics and alerts.
    pub id: String,
    pub table: TableId,
    pub severity: Severity,
    pub description: String,
    /// Fraction of a batch's rows that must meet a row-level expectation (Great Expectations' `mostly`;
    /// default 1.0: every row).
    pub mostly: f64,
    pub check: Check,
}

/// A literal in a config: a number, or text (dates and timestamps are written as quoted text).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

impl std::fmt::Display for Literal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Literal::Int(v) => write!(f, "{v}"),
            Literal::Float(v) => write!(f, "{v}"),
            Literal::Text(v) => write!(f, "{v:?}"),
            Literal::Bool(v) => write!(f, "{v}"),
        }
    }
}

/// The row-level expectation types, each named after its Great Expectations counterpart.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// expect_column_values_to_not_be_null
    NotNull { column: String },
    /// expect_column_values_to_be_between (numbers, dates and timestamps)
    Between {
        column: String,
        #[serde(default)]
        min_value: Option<Literal>,
        #[serde(default)]
        max_value: Option<Literal>,
        #[serde(default)]
        strict_min: bool,
        #[serde(default)]
        strict_max: bool,
    },
    /// expect_column_values_to_be_in_set
    InSet {
        column: String,
        value_set: Vec<Literal>,
    },
    /// expect_column_values_to_not_be_in_set
    NotInSet {
        column: String,
        value_set: Vec<Literal>,
    },
    /// expect_column_values_to_match_regex
    MatchRegex { column: String, regex: String },
    /// expect_column_values_to_not_match_regex
    NotMatchRegex { column: String, regex: String },
    /// expect_column_value_lengths_to_be_between
    ValueLengthsBetween {
        column: String,
        #[serde(default)]
        min_value: Option<u64>,
        #[serde(default)]
        max_value: Option<u64>,
    },
    /// expect_column_pair_values_a_to_be_greater_than_b
    ColumnPairGreaterThan {
        column_a: String,
        column_b: String,
        #[serde(default)]
        or_equal: bool,
    },
    /// expect_multicolumn_sum_to_equal
    MulticolumnSumEqual {
        column_list: Vec<String>,
        sum_total: f64,
        /// Absolute difference still counted as equal (default 0: exact).
        #[serde(default)]
        tolerance: f64,
    },
    /// expect_column_values_to_be_json_parseable
    JsonParseable { column: String },
    /// No GE counterpart: at most `scale` digits after the decimal point (e.g. prices in whole cents).
    DecimalScaleAtMost { column: String, scale: u8 },
    /// No GE counterpart (GE writes it as between with max_value = now): not later than now + tolerance.
    TimestampNotInFuture {
        column: String,
        #[serde(default)]
        tolerance_secs: u64,
    },
}

/// Every type name `type = …` accepts, for error messages and docs.
pub const CHECK_TYPES: &[&str] = &[
    "not_null",
    "between",
    "in_set",
    "not_in_set",
    "match_regex",
    "not_match_regex",
    "value_lengths_between",
    "column_pair_greater_than",
    "multicolumn_sum_equal",
    "json_parseable",
    "decimal_scale_at_most",
    "timestamp_not_in_future",
];

impl Check {
    pub fn type_name(&self) -> &'static str {
        let i = match self {
            Check::NotNull { .. } => 0,
            Check::Between { .. } => 1,
            Check::InSet { .. } => 2,
            Check::NotInSet { .. } => 3,
            Check::MatchRegex { .. } => 4,
            Check::NotMatchRegex { .. } => 5,
            Check::ValueLengthsBetween { .. } => 6,
            Check::ColumnPairGreaterThan { .. } => 7,
            Check::MulticolumnSumEqual { .. } => 8,
            Check::JsonParseable { .. } => 9,
            Check::DecimalScaleAtMost { .. } => 10,
            Check::TimestampNotInFuture { .. } => 11,
        };
        CHECK_TYPES[i]
    }

    /// The source columns the check reads, in the order its messages name them.
    pub fn columns(&self) -> Vec<&str> {
        match self {
            Check::NotNull { column }
            | Check::Between { column, .. }
            | Check::InSet { column, .. }
            | Check::NotInSet { column, .. }
            | Check::MatchRegex { column, .. }
            | Check::NotMatchRegex { column, .. }
            | Check::ValueLengthsBetween { column, .. }
            | Check::JsonParseable { column }
            | Check::DecimalScaleAtMost { column, .. }
            | Check::TimestampNotInFuture { column, .. } => vec![column.as_str()],
            Check::ColumnPairGreaterThan {
                column_a, column_b, ..
            } => vec![column_a.as_str(), column_b.as_str()],
            Check::MulticolumnSumEqual { column_list, .. } => {
                column_list.iter().map(String::as_str).collect()
            }
        }
    }

    /// What a passing row looks like, in words, for results and alerts.
    pub fn expected(&self) -> String {
        let list = |v: &[Literal]| {
            v.iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Check::NotNull { column } => format!("{column} is not null"),
            Check::Between {
                column,
                min_value,
                max_value,
                strict_min,
                strict_max,
            } => {
                let mut parts = vec![];
                if let Some(min) = min_value {
                    parts.push(format!(
                        "{column} {} {min}",
                        if *strict_min { ">" } else { ">=" }
                    ));
                }
                if let Some(max) = max_value {
                    parts.push(format!(
                        "{column} {} {max}",
                        if *strict_max { "<" } else { "<=" }
                    ));
                }
                parts.join(" and ")
            }
            Check::InSet { column, value_set } => format!("{column} in {{{}}}", list(value_set)),
            Check::NotInSet { column, value_set } => {
                format!("{column} not in {{{}}}", list(value_set))
            }
            Check::MatchRegex { column, regex } => format!("{column} matches /{regex}/"),
            Check::NotMatchRegex { column, regex } => format!("{column} does not match /{regex}/"),
            Check::ValueLengthsBetween {
                column,
                min_value,
                max_value,
            } => format!(
                "length({column}) in [{}, {}]",
                min_value.map_or("-".into(), |v| v.to_string()),
                max_value.map_or("-".into(), |v| v.to_string())
            ),
            Check::ColumnPairGreaterThan {
                column_a,
                column_b,
                or_equal,
            } => format!(
                "{column_a} {} {column_b}",
                if *or_equal { ">=" } else { ">" }
            ),
            Check::MulticolumnSumEqual {
                column_list,
                sum_total,
                tolerance,
            } => {
                let sum = column_list.join(" + ");
                if *tolerance > 0.0 {
                    format!("{sum} = {sum_total} ± {tolerance}")
                } else {
                    format!("{sum} = {sum_total}")
                }
            }
            Check::JsonParseable { column } => format!("{column} is valid JSON"),
            Check::DecimalScaleAtMost { column, scale } => {
                format!("{column} has at most {scale} decimal places")
            }
            Check::TimestampNotInFuture {
                column,
                tolerance_secs,
            } => format!("{column} <= now + {tolerance_secs} s"),
        }
    }
}

/// `"name"` for Athena (Trino) SQL.
fn sql_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sql_literal(l: &Literal) -> String {
    match l {
        Literal::Text(v) => format!("'{}'", v.replace('\'', "''")),
        other => other.to_string(),
    }
}

impl Check {
    /// An Athena (Trino) condition true for the rows that fail, for the SQL an alert links to.
    pub fn failing_sql(&self) -> String {
        let list = |v: &[Literal]| v.iter().map(sql_literal).collect::<Vec<_>>().join(", ");
        let text = |v: &str| format!("'{}'", v.replace('\'', "''"));
        match self {
            Check::NotNull { column } => format!("{} IS NULL", sql_ident(column)),
            Check::Between {
                column,
                min_value,
                max_value,
                strict_min,
                strict_max,
            } => {
                let c = sql_ident(column);
                let mut parts = vec![];
                if let Some(min) = min_value {
                    parts.push(format!(
                        "{c} {} {}",
                        if *strict_min { "<=" } else { "<" },
                        sql_literal(min)
                    ));
                }
                if let Some(max) = max_value {
                    parts.push(format!(
                        "{c} {} {}",
                        if *strict_max { ">=" } else { ">" },
                        sql_literal(max)
                    ));
                }
                parts.join(" OR ")
            }
            Check::InSet { column, value_set } => {
                format!("{} NOT IN ({})", sql_ident(column), list(value_set))
            }
            Check::NotInSet { column, value_set } => {
                format!("{} IN ({})", sql_ident(column), list(value_set))
            }
            Check::MatchRegex { column, regex } => {
                format!("NOT regexp_like({}, {})", sql_ident(column), text(regex))
            }
            Check::NotMatchRegex { column, regex } => {
                format!("regexp_like({}, {})", sql_ident(column), text(regex))
            }
            Check::ValueLengthsBetween {
                column,
                min_value,
                max_value,
            } => {
                let c = sql_ident(column);
                let mut parts = vec![];
                if let Some(min) = min_value {
                    parts.push(format!("length({c}) < {min}"));
                }
                if let Some(max) = max_value {
                    parts.push(format!("length({c}) > {max}"));
                }
                parts.join(" OR ")
            }
            Check::ColumnPairGreaterThan {
                column_a,
                column_b,
                or_equal,
            } => format!(
                "{} {} {}",
                sql_ident(column_a),
                if *or_equal { "<" } else { "<=" },
                sql_ident(column_b)
            ),
            Check::MulticolumnSumEqual {
                column_list,
                sum_total,
                tolerance,
            } => format!(
                "abs(({}) - {sum_total}) > {tolerance}",
                column_list
                    .iter()
                    .map(|c| sql_ident(c))
                    .collect::<Vec<_>>()
                    .join(" + ")
            ),
            Check::JsonParseable { column } => {
                let c = sql_ident(column);
                format!("{c} IS NOT NULL AND try(json_parse({c})) IS NULL")
            }
            Check::DecimalScaleAtMost { column, scale } => {
                let c = sql_ident(column);
                format!("{c} <> round({c}, {scale})")
            }
            Check::TimestampNotInFuture {
                column,
                tolerance_secs,
            } => format!(
                "{} > current_timestamp + INTERVAL '{tolerance_secs}' SECOND",
                sql_ident(column)
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Expectation {
    /// The common keys are taken out first and the rest must fit the named type exactly: serde's
    /// `flatten` would silently accept unknown keys, and a misspelt parameter must be an error.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut t = toml::Table::deserialize(d)?;
        let (id, table, severity, description) = common::<D::Error>(&mut t)?;
        let mostly = match t.remove("mostly") {
            None => 1.0,
            Some(toml::Value::Float(f)) => f,
            Some(toml::Value::Integer(i)) => i as f64,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "expectation `{id}`: `mostly` must be a number, not {}",
                    other.type_str()
                )))
            }
        };
        let type_name = match t.get("type") {
            Some(toml::Value::String(s)) => s.clone(),
            _ => {
                return Err(D::Error::custom(format!(
                    "expectation `{id}`: `type` is missing; one of {}, {}",
                    CHECK_TYPES.join(", "),
                    TABLE_CHECK_TYPES.join(", ")
                )))
            }
        };
        if !CHECK_TYPES.contains(&type_name.as_str()) {
            return Err(D::Error::custom(format!(
                "expectation `{id}`: unknown type `{type_name}`; one of {}, {}",
                CHECK_TYPES.join(", "),
                TABLE_CHECK_TYPES.join(", ")
            )));
        }
        let check = Check::deserialize(toml::Value::Table(t))
            .map_err(|e| D::Error::custom(format!("expectation `{id}` ({type_name}): {e}")))?;
        Ok(Expectation {
            id,
            table,
            severity,
            description,
            mostly,
            check,
        })
    }
}

/// What every expectation must satisfy: a plain id, used once, on a captured table.
fn common_problem(
    id: &str,
    table: &TableId,
    ids: &mut BTreeSet<String>,
    captured: &dyn Fn(&TableId) -> bool,
) -> Result<(), String> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err("the id must be letters, digits, '_' and '-'".into());
    }
    if !ids.insert(id.to_string()) {
        return Err("the id is used twice; ids must be unique".into());
    }
    if !captured(table) {
        return Err(format!(
            "table {table} is not captured (see source.include / source.exclude)"
        ));
    }
    Ok(())
}

fn take_text<E: serde::de::Error>(t: &mut toml::Table, key: &str) -> Result<Option<String>, E> {
    match t.remove(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(E::custom(format!(
            "`{key}` must be a string, not {}",
            other.type_str()
        ))),
    }
}

impl QualityConfig {
    /// Ids unique, parameters sensible, regexes compile, every table captured by `source.include`.
    pub(super) fn validate(&self, captured: &dyn Fn(&TableId) -> bool) -> Result<(), ConfigError> {
        let mut ids = BTreeSet::new();
        self.validate_tables(captured, &mut ids)?;
        let ids = &mut ids;
        for (i, e) in self.expect.iter().enumerate() {
            let key = format!("quality.expect[{i}]");
            let bad = |m: String| invalid(&key, format!("expectation `{}`: {m}", e.id));
            common_problem(&e.id, &e.table, ids, captured).map_err(bad)?;
            if !(e.mostly > 0.0 && e.mostly <= 1.0) {
                return Err(bad(format!("mostly = {} must be in (0, 1]", e.mostly)));
            }
            if e.check.columns().iter().any(|c| c.is_empty()) {
                return Err(bad("a column name is empty".into()));
            }
            match &e.check {
                Check::Between {
                    min_value: None,
                    max_value: None,
                    ..
                }
                | Check::ValueLengthsBetween {
                    min_value: None,
                    max_value: None,
                    ..
                } => return Err(bad("give min_value, max_value or both".into())),
                Check::ValueLengthsBetween {
                    min_value: Some(a),
                    max_value: Some(b),
                    ..
                } if a > b => return Err(bad(format!("min_value {a} > max_value {b}"))),
                Check::InSet { value_set, .. } | Check::NotInSet { value_set, .. }
                    if value_set.is_empty() =>
                {
                    return Err(bad("value_set is empty".into()))
                }
                Check::MatchRegex { regex, .. } | Check::NotMatchRegex { regex, .. } => {
                    regex::Regex::new(regex)
                        .map_err(|err| bad(format!("regex does not compile: {err}")))?;
                }
                Check::MulticolumnSumEqual {
                    column_list,
                    tolerance,
                    ..
                } => {
                    if column_list.len() < 2 {
                        return Err(bad("column_list needs at least two columns".into()));
                    }
                    if *tolerance < 0.0 {
                        return Err(bad("tolerance must not be negative".into()));
                    }
                }
                Check::DecimalScaleAtMost { scale, .. } if *scale > 38 => {
                    return Err(bad("scale must be at most 38".into()))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn validate_tables(
        &self,
        captured: &dyn Fn(&TableId) -> bool,
        ids: &mut BTreeSet<String>,
    ) -> Result<(), ConfigError> {
        for (i, e) in self.tables.iter().enumerate() {
            let key = format!("quality.expect (table-level #{i})");
            let bad = |m: String| invalid(&key, format!("expectation `{}`: {m}", e.id));
            common_problem(&e.id, &e.table, ids, captured).map_err(bad)?;
            if e.severity == Severity::Quarantine {
                return Err(bad(
                    "a table-level expectation has no rows to quarantine; use warn or stop".into(),
                ));
            }
            if let Some(problem) = e.check.problem() {
                return Err(bad(problem));
            }
        }
        Ok(())
    }

    /// The expectations of one table.
    pub fn for_table<'a>(&'a self, table: &'a TableId) -> impl Iterator<Item = &'a Expectation> {
        self.expect.iter().filter(move |e| &e.table == table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<QualityConfig, String> {
        let cfg: QualityConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate(&|t| t.database == "stocks")
            .map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    #[test]
    fn a_full_entry_parses() {
        let cfg = parse(
            r#"
            [[expect]]
            id = "bid_positive"
            table = "stocks.quotes"
            type = "between"
            column = "bid"
            min_value = 0
            strict_min = true
            severity = "quarantine"
            description = "prices are positive"
            mostly = 0.99
            "#,
        )
        .unwrap();
        let e = &cfg.expect[0];
        assert_eq!(e.severity, Severity::Quarantine);
        assert_eq!(e.mostly, 0.99);
        assert_eq!(e.table, TableId::new("stocks", "quotes"));
        assert_eq!(
            e.check,
            Check::Between {
                column: "bid".into(),
                min_value: Some(Literal::Int(0)),
                max_value: None,
                strict_min: true,
                strict_max: false
            }
        );
        assert_eq!(e.check.expected(), "bid > 0");
        assert_eq!(e.check.failing_sql(), "\"bid\" <= 0");
    }

    #[test]
    fn a_misspelt_parameter_is_refused() {
        let err = parse(
            r#"
            [[expect]]
            id = "x"
            table = "stocks.quotes"
            type = "not_null"
            colum = "bid"
            "#,
        )
        .unwrap_err();
        assert!(err.contains("colum"), "{err}");
        assert!(err.contains("expectation `x`"), "{err}");
    }

    #[test]
    fn table_level_entries_are_told_apart_by_type_and_checked() {
        let cfg = parse(
            "[[expect]]\nid = \"m\"\ntable = \"stocks.q\"\ntype = \"min_between\"\ncolumn = \"bid\"\nmin_value = 0\n\
             [[expect]]\nid = \"r\"\ntable = \"stocks.q\"\ntype = \"not_null\"\ncolumn = \"bid\"\n",
        )
        .unwrap();
        assert_eq!((cfg.expect.len(), cfg.tables.len()), (1, 1));
        assert_eq!(cfg.tables[0].check.expected(), "min(bid) in [0, -]");
        for (body, needle) in [
            (
                "type = \"min_between\"\ncolumn = \"bid\"\nminimum = 0",
                "minimum",
            ),
            ("type = \"row_count_between\"", "give min_value"),
            ("type = \"sql\"\nquery = \"SELECT 1\"", "{table}"),
            (
                "type = \"unique\"\ncolumn_list = [\"id\"]\nseverity = \"quarantine\"",
                "no rows to quarantine",
            ),
        ] {
            let err = parse(&format!(
                "[[expect]]\nid = \"t1\"\ntable = \"stocks.q\"\n{body}\n"
            ))
            .unwrap_err();
            assert!(err.contains(needle) && err.contains("t1"), "{body}: {err}");
        }
    }

    #[test]
    fn unknown_type_lists_the_known_ones() {
        let err = parse(
            "[[expect]]\nid = \"x\"\ntable = \"stocks.q\"\ntype = \"be_positive\"\ncolumn = \"a\"\n",
        )
        .unwrap_err();
        assert!(
            err.contains("be_positive") && err.contains("match_regex"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_id() {
        for (body, needle) in [
            (
                "type = \"match_regex\"\ncolumn = \"s\"\nregex = \"(\"",
                "regex does not compile",
            ),
            ("type = \"between\"\ncolumn = \"s\"", "give min_value"),
            (
                "type = \"in_set\"\ncolumn = \"s\"\nvalue_set = []",
                "value_set is empty",
            ),
            (
                "type = \"not_null\"\ncolumn = \"s\"\nmostly = 1.5",
                "mostly",
            ),
            (
                "type = \"not_null\"\ncolumn = \"s\"\nseverity = \"page\"",
                "severity `page`",
            ),
        ] {
            let err = parse(&format!(
                "[[expect]]\nid = \"e1\"\ntable = \"stocks.q\"\n{body}\n"
            ))
            .unwrap_err();
            assert!(err.contains(needle) && err.contains("e1"), "{body}: {err}");
        }
        let err = parse(
            "[[expect]]\nid = \"a\"\ntable = \"other.q\"\ntype = \"not_null\"\ncolumn = \"s\"\n",
        )
        .unwrap_err();
        assert!(err.contains("not captured"), "{err}");
        let twice =
            "[[expect]]\nid = \"a\"\ntable = \"stocks.q\"\ntype = \"not_null\"\ncolumn = \"s\"\n";
        let err = parse(&format!("{twice}{twice}")).unwrap_err();
        assert!(err.contains("used twice"), "{err}");
    }
}
