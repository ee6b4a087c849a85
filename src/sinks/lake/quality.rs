//! The lake side of data quality: before a table's batch is merged, its expectations are evaluated
//! (`transforms::quality`), the results appended to `binlake_quality.results`, failing rows of
//! `quarantine` expectations copied into `<db>/<table>__quarantine`, and a failing `stop` expectation ends
//! the flush before anything is merged.
//!
//! A replayed batch (after a crash between recording and merging) must not be recorded twice. Both tables
//! carry a Delta `txn` per source table (app id `binlake-quality:<connector>:<db.table>`, version = the
//! highest `_seq` recorded), written atomically with the rows; only rows above it are recorded again. A
//! `stop` expectation is judged on every row, replayed or not: its batch was never merged, so it returns.

use super::glue::GlueCatalog;
use super::metadata::MetadataColumns;
use super::{storage_options, LakeError};
use crate::alerts::{Alert, Alerts, Finding};
use crate::config::quality::{QualityConfig, Severity};
use crate::config::LakeConfig;
use crate::event::TableId;
use crate::transforms::quality::{evaluate, restrict, Evaluation, QualityError, Status};
use deltalake::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use deltalake::arrow::compute::kernels::cmp::neq;
use deltalake::arrow::compute::{concat_batches, filter, filter_record_batch};
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::Transaction;
use deltalake::operations::write::SchemaMode;
use deltalake::DeltaTable;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Where the results table lives under the lake root. Not an encoded MySQL name (those never start with
/// `_` followed by a plain word), so no source database can land on it; Glue and `binlake query` call it
/// `binlake_quality.results`.
pub const RESULTS_DIR: &str = "_binlake_quality/results";
pub const RESULTS_DATABASE: &str = "binlake_quality";
pub const RESULTS_TABLE: &str = "results";
pub const QUARANTINE_SUFFIX: &str = "__quarantine";

pub struct QualityGate {
    quality: Arc<QualityConfig>,
    connector: String,
    root: String,
    meta_prefix: String,
    /// Glue's database prefix, for the Athena SQL in alerts.
    glue_prefix: String,
    storage: HashMap<String, String>,
    catalog: Option<GlueCatalog>,
    ctx: SessionContext,
    results: Option<DeltaTable>,
    quarantines: HashMap<TableId, DeltaTable>,
    /// Glue registrations done by this process.
    registered: HashSet<String>,
    alerts: Alerts,
    /// The alert task has been told which expectations were failing when this process started.
    alerts_seeded: bool,
}

impl QualityGate {
    pub async fn new(lake: &LakeConfig, quality: &QualityConfig, connector: &str) -> Self {
        let catalog = match (&lake.glue, quality.expect.is_empty()) {
            (Some(g), false) => Some(GlueCatalog::new(g).await),
            _ => None,
        };
        QualityGate {
            quality: Arc::new(quality.clone()),
            connector: connector.to_string(),
            root: lake.root.trim_end_matches('/').to_string(),
            meta_prefix: lake.metadata_prefix.clone(),
            glue_prefix: lake
                .glue
                .as_ref()
                .map(|g| g.database_prefix.clone())
                .unwrap_or_default(),
            storage: storage_options(lake),
            catalog,
            ctx: SessionContext::new(),
            results: None,
            quarantines: HashMap::new(),
            registered: HashSet::new(),
            alerts: Alerts::off(),
            alerts_seeded: false,
        }
    }

    pub fn set_alerts(&mut self, alerts: Alerts) {
        self.alerts = alerts;
    }

    pub fn watches(&self, id: &TableId) -> bool {
        self.quality.for_table(id).next().is_some()
    }

    fn app_id(&self, id: &TableId) -> String {
        format!("binlake-quality:{}:{id}", self.connector)
    }

    /// Evaluates `id`'s expectations on `batch` (a lake batch: source columns and metadata columns);
    /// records what has not been recorded yet; fails with a definite error if a `stop` expectation fails.
    /// `origins`: in Kafka mode, the partition each row of `batch` was read from. Each partition keeps
    /// its own mark (sink processes share a table's partitions, and `_seq` rises within a partition),
    /// direct mode one per table.
    pub async fn check(
        &mut self,
        id: &TableId,
        batch: &RecordBatch,
        meta: &MetadataColumns,
        key: &[String],
        origins: Option<&[i32]>,
    ) -> Result<(), LakeError> {
        // a handle of its own: the evaluations borrow the expectations while `self` records them
        let quality = Arc::clone(&self.quality);
        let expectations: Vec<_> = quality.for_table(id).collect();
        if expectations.is_empty() || batch.num_rows() == 0 {
            return Ok(());
        }
        if !self.alerts_seeded {
            self.seed_alerts().await?;
        }
        let op = column::<StringArray>(batch, &meta.op())?;
        let seq = column::<Int64Array>(batch, &meta.seq())?;
        let live = neq(op, &StringArray::new_scalar("d"))?;
        let seq_min = deltalake::arrow::compute::min(seq).unwrap_or(0);
        let seq_max = deltalake::arrow::compute::max(seq).unwrap_or(0);
        let now_us = crate::event::calendar::now_ms() * 1000;
        let all = evaluate(&self.ctx, &expectations, batch, &live, key, now_us)
            .map_err(LakeError::from)?;

        // results and quarantine each know how far they are written: a batch replayed after a crash
        // adds only the rows above that
        let marks = Marks::of(seq, origins);
        let results_app = self.app_id(id);
        let recorded = if self.quality.record_results {
            let table = self.results_table().await?;
            marks.read(table, &results_app).await?
        } else {
            vec![0; marks.names.len()]
        };
        if let Some((keep, range)) = marks.fresh(seq, &recorded, seq_min)? {
            let fresh = restrict_to(&all, &live, &keep, batch, key)?;
            let txns = marks.advanced(&results_app, &recorded);
            self.record(id, &fresh, range, txns).await?;
            for ev in &fresh {
                count_and_log(id, ev);
            }
            // alerts follow what is recorded: a replayed batch alerts no more than it records
            let findings = fresh
                .iter()
                .map(|ev| self.finding(id, ev, range))
                .collect::<Result<_, _>>()?;
            self.alerts.send(Alert::Evaluated {
                table: id.to_string(),
                findings,
            });
        }
        if let Some(ev) = all
            .iter()
            .find(|ev| ev.expectation.severity == Severity::Stop && ev.status == Status::Fail)
        {
            return Err(QualityError::Stopped {
                expectation: ev.expectation.id.clone(),
                description: ev.expectation.description.clone(),
                table: id.to_string(),
                unexpected: ev.unexpected_count,
                checked: ev.element_count,
                seq_min,
                seq_max,
                sample: ev.sample_keys.join(" "),
                expected: ev.expectation.check.expected(),
            }
            .into());
        }
        // only once the batch will be merged: a stopped batch comes back, maybe with other severities
        if all
            .iter()
            .any(|ev| ev.expectation.severity == Severity::Quarantine && ev.unexpected_count > 0)
        {
            let app = self.app_id(id);
            let table = self.quarantine_table(id).await?;
            let quarantined = marks.read(table, &app).await?;
            if let Some((keep, _)) = marks.fresh(seq, &quarantined, seq_min)? {
                let fresh = restrict_to(&all, &live, &keep, batch, key)?;
                let txns = marks.advanced(&app, &quarantined);
                self.quarantine(id, batch, &fresh, txns).await?;
            }
        }
        Ok(())
    }

    /// Tells the alert task which expectations of this connector failed on their latest evaluation, so a
    /// restart (an ECS deploy) does not announce them again as new failures.
    async fn seed_alerts(&mut self) -> Result<(), LakeError> {
        if !self.quality.record_results {
            self.alerts_seeded = true;
            return Ok(());
        }
        let table = self.results_table().await?.clone();
        if table.version().is_some() {
            let ctx = SessionContext::new();
            ctx.register_table("results", table.table_provider().await?)?;
            // connector names are letters, digits, '-' and '_' (validated): safe in a literal
            let sql = format!(
                "SELECT table_name, expectation_id FROM (SELECT table_name, expectation_id, status, \
                 row_number() OVER (PARTITION BY table_name, expectation_id ORDER BY seq_max DESC, \
                 evaluated_at DESC) AS n FROM results WHERE connector = '{}') WHERE n = 1 AND status = 'fail'",
                self.connector
            );
            let batches = ctx.sql(&sql).await?.collect().await?;
            let mut failing = vec![];
            for b in &batches {
                let cell = |i: usize, row: usize| {
                    deltalake::arrow::util::display::array_value_to_string(b.column(i), row)
                };
                for row in 0..b.num_rows() {
                    failing.push((cell(0, row)?, cell(1, row)?));
                }
            }
            if !failing.is_empty() {
                self.alerts.send(Alert::StillFailing { failing });
            }
        }
        self.alerts_seeded = true;
        Ok(())
    }

    /// An evaluation as an alert shows it, with the Athena SQL that lists the failing rows.
    fn finding(
        &self,
        id: &TableId,
        ev: &Evaluation<'_>,
        seq: (i64, i64),
    ) -> Result<Finding, LakeError> {
        let e = ev.expectation;
        let db = format!(
            "{}{}",
            self.glue_prefix,
            crate::names::encode(&id.database)?
        );
        let seq_col = format!("\"{}seq\"", self.meta_prefix);
        let sql = if e.severity == Severity::Quarantine {
            let table = crate::names::encode(&format!("{}{QUARANTINE_SUFFIX}", id.table))?;
            format!(
                "SELECT * FROM \"{db}\".\"{table}\" WHERE \"{}expectation\" = '{}' AND {seq_col} BETWEEN {} AND {}",
                self.meta_prefix, e.id, seq.0, seq.1
            )
        } else {
            let table = crate::names::encode(&id.table)?;
            format!(
                "SELECT * FROM \"{db}\".\"{table}\" WHERE {seq_col} BETWEEN {} AND {} AND ({})",
                seq.0,
                seq.1,
                e.check.failing_sql()
            )
        };
        Ok(Finding {
            table: id.to_string(),
            expectation: e.id.clone(),
            description: e.description.clone(),
            severity: e.severity.as_str().to_string(),
            failed: ev.status == Status::Fail,
            observed: ev.observed.clone(),
            expected: e.check.expected(),
            unexpected: ev.unexpected_count,
            checked: ev.element_count,
            sample_keys: ev.sample_keys.clone(),
            seq,
            sql,
            health: false,
        })
    }

    async fn results_table(&mut self) -> Result<&mut DeltaTable, LakeError> {
        if self.results.is_none() {
            let uri = format!("{}/{RESULTS_DIR}", self.root);
            self.results = Some(open(&uri, &self.storage).await?);
        }
        Ok(self.results.as_mut().expect("opened above"))
    }

    /// One results row per expectation, with the `txn` that makes the write happen once.
    async fn record(
        &mut self,
        id: &TableId,
        evaluations: &[Evaluation<'_>],
        (seq_min, seq_max): (i64, i64),
        txns: Vec<Transaction>,
    ) -> Result<(), LakeError> {
        if !self.quality.record_results {
            return Ok(());
        }
        let batch = results_batch(&self.connector, id, evaluations, seq_min, seq_max)?;
        let table = self.results_table().await?;
        let written = append(table.clone(), batch, txns).await?;
        let columns = columns_of(&written)?;
        self.results = Some(written);
        self.register(
            RESULTS_DATABASE,
            RESULTS_TABLE,
            &format!("{}/{RESULTS_DIR}", self.root),
            &columns,
        )
        .await
    }

    /// Copies the failing rows of every `quarantine` expectation into `<db>/<table>__quarantine`.
    async fn quarantine(
        &mut self,
        id: &TableId,
        batch: &RecordBatch,
        evaluations: &[Evaluation<'_>],
        txns: Vec<Transaction>,
    ) -> Result<(), LakeError> {
        let mut parts = vec![];
        for ev in evaluations {
            if ev.expectation.severity != Severity::Quarantine || ev.unexpected_count == 0 {
                continue;
            }
            parts.push(self.quarantine_rows(batch, ev)?);
        }
        if parts.is_empty() {
            return Ok(());
        }
        let rows = concat_batches(&parts[0].schema(), &parts)?;
        let (table_name, uri) = self.quarantine_uri(id)?;
        let table = self.quarantine_table(id).await?.clone();
        let written = append(table, rows, txns).await?;
        let columns = columns_of(&written)?;
        self.quarantines.insert(id.clone(), written);
        self.register(&id.database, &table_name, &uri, &columns)
            .await
    }

    fn quarantine_uri(&self, id: &TableId) -> Result<(String, String), LakeError> {
        let name = format!("{}{QUARANTINE_SUFFIX}", id.table);
        let uri = super::table_uri_raw(&self.root, &id.database, &name)?;
        Ok((name, uri))
    }

    async fn quarantine_table(&mut self, id: &TableId) -> Result<&DeltaTable, LakeError> {
        if !self.quarantines.contains_key(id) {
            let (_, uri) = self.quarantine_uri(id)?;
            let t = open(&uri, &self.storage).await?;
            self.quarantines.insert(id.clone(), t);
        }
        Ok(self.quarantines.get(id).expect("opened above"))
    }

    /// The failing rows of one expectation, with the expectation, the reason and when.
    fn quarantine_rows(
        &self,
        batch: &RecordBatch,
        ev: &Evaluation<'_>,
    ) -> Result<RecordBatch, LakeError> {
        let rows = filter_record_batch(batch, &ev.failing)?;
        let n = rows.num_rows();
        let e = ev.expectation;
        let reason = format!("{}: expected {}", e.check.type_name(), e.check.expected());
        let now = crate::event::calendar::now_ms() * 1000;
        let mut fields: Vec<Field> = rows
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut arrays: Vec<ArrayRef> = rows.columns().to_vec();
        let p = &self.meta_prefix;
        fields.push(Field::new(format!("{p}expectation"), DataType::Utf8, true));
        arrays.push(Arc::new(StringArray::from(vec![e.id.as_str(); n])));
        fields.push(Field::new(format!("{p}reason"), DataType::Utf8, true));
        arrays.push(Arc::new(StringArray::from(vec![reason.as_str(); n])));
        fields.push(Field::new(format!("{p}quarantined_at"), utc_micros(), true));
        arrays.push(Arc::new(
            TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC"),
        ));
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
    }

    async fn register(
        &mut self,
        database: &str,
        table: &str,
        uri: &str,
        columns: &[(String, DataType)],
    ) -> Result<(), LakeError> {
        let Some(catalog) = &self.catalog else {
            return Ok(());
        };
        // once per process, and again when columns were added
        let stamp = format!("{database}.{table}:{}", columns.len());
        if self.registered.insert(stamp) {
            catalog.register(database, table, uri, columns).await?;
        }
        Ok(())
    }
}

/// `all` limited to the live rows above `through` (all of them when the whole batch is above it).
/// The evaluations of the rows `keep` selects (all of them: the evaluations as they are).
fn restrict_to<'a>(
    all: &[Evaluation<'a>],
    live: &BooleanArray,
    keep: &BooleanArray,
    batch: &RecordBatch,
    key: &[String],
) -> Result<Vec<Evaluation<'a>>, LakeError> {
    if keep.true_count() == batch.num_rows() {
        return Ok(all.to_vec());
    }
    Ok(restrict(all, live, keep, batch, key)?)
}

/// How far results (or quarantined rows) are written, as Delta `txn`s: one per table in direct mode,
/// one per partition in Kafka mode (`<app>@<partition>`), each the highest `_seq` written.
struct Marks {
    /// Suffix of each mark's app id.
    names: Vec<String>,
    /// Per row, the index of its mark.
    of_row: Vec<usize>,
    /// Per mark, the highest `_seq` of its rows in this batch.
    max_seq: Vec<i64>,
}

impl Marks {
    fn of(seq: &Int64Array, origins: Option<&[i32]>) -> Self {
        let mut names: Vec<String> = vec![];
        let mut of_row = Vec::with_capacity(seq.len());
        let mut max_seq: Vec<i64> = vec![];
        for row in 0..seq.len() {
            let name = origins.map_or(String::new(), |o| format!("@{}", o[row]));
            let i = match names.iter().position(|n| *n == name) {
                Some(i) => i,
                None => {
                    names.push(name);
                    max_seq.push(i64::MIN);
                    names.len() - 1
                }
            };
            of_row.push(i);
            max_seq[i] = max_seq[i].max(seq.value(row));
        }
        Marks {
            names,
            of_row,
            max_seq,
        }
    }

    async fn read(&self, table: &DeltaTable, app: &str) -> Result<Vec<i64>, LakeError> {
        let mut out = Vec::with_capacity(self.names.len());
        for name in &self.names {
            out.push(txn_version(table, &format!("{app}{name}")).await?);
        }
        Ok(out)
    }

    /// The rows above their mark and the `_seq` range to label them with (None: nothing new).
    fn fresh(
        &self,
        seq: &Int64Array,
        written: &[i64],
        seq_min: i64,
    ) -> Result<Option<(BooleanArray, (i64, i64))>, LakeError> {
        if self.max_seq.iter().zip(written).all(|(max, w)| max <= w) {
            return Ok(None);
        }
        let keep: BooleanArray = (0..seq.len())
            .map(|r| Some(seq.value(r) > written[self.of_row[r]]))
            .collect();
        let range = if self.names.len() == 1 && self.names[0].is_empty() {
            // direct mode: the batch's range above the mark, so ranges never overlap
            (written[0].max(seq_min - 1) + 1, self.max_seq[0])
        } else {
            let fresh = filter(seq, &keep)?;
            let fresh = fresh
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("filtered");
            (
                deltalake::arrow::compute::min(fresh).unwrap_or(0),
                deltalake::arrow::compute::max(fresh).unwrap_or(0),
            )
        };
        Ok(Some((keep, range)))
    }

    /// The `txn`s that move each mark with new rows up to its highest `_seq` in the batch.
    fn advanced(&self, app: &str, written: &[i64]) -> Vec<Transaction> {
        self.names
            .iter()
            .zip(&self.max_seq)
            .zip(written)
            .filter(|((_, max), w)| *max > *w)
            .map(|((name, max), _)| Transaction::new(format!("{app}{name}"), *max))
            .collect()
    }
}

fn count_and_log(id: &TableId, ev: &Evaluation<'_>) {
    let (table, expectation) = (id.to_string(), ev.expectation.id.as_str());
    crate::observe::METRICS
        .quality_evaluations
        .with_label_values(&[table.as_str(), expectation])
        .inc();
    if ev.status == Status::Fail {
        crate::observe::METRICS
            .quality_failures
            .with_label_values(&[table.as_str(), expectation])
            .inc();
        tracing::warn!(
            table = %id,
            expectation,
            severity = ev.expectation.severity.as_str(),
            unexpected = ev.unexpected_count,
            checked = ev.element_count,
            observed = %ev.observed,
            "quality expectation failed"
        );
    }
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, LakeError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            LakeError::Definite(format!("a lake batch lacks its metadata column `{name}`"))
        })
}

async fn open(uri: &str, storage: &HashMap<String, String>) -> Result<DeltaTable, LakeError> {
    let url = deltalake::ensure_table_uri(uri)?;
    Ok(DeltaTable::try_from_url_with_storage_options(url, storage.clone()).await?)
}

async fn txn_version(table: &DeltaTable, app: &str) -> Result<i64, LakeError> {
    if table.version().is_none() {
        return Ok(0);
    }
    Ok(table
        .snapshot()?
        .transaction_version(table.log_store().as_ref(), app)
        .await?
        .unwrap_or(0))
}

/// Appends `rows` (creating the table on first use, adding columns the rows bring) with the `txn`s that
/// mark what is now written.
async fn append(
    table: DeltaTable,
    rows: RecordBatch,
    txns: Vec<Transaction>,
) -> Result<DeltaTable, LakeError> {
    let props = CommitProperties::default().with_application_transactions(txns);
    Ok(table
        .write(vec![rows])
        .with_schema_mode(SchemaMode::Merge)
        .with_commit_properties(props)
        .await?)
}

fn columns_of(table: &DeltaTable) -> Result<Vec<(String, DataType)>, LakeError> {
    let arrow = table.snapshot()?.snapshot().arrow_schema();
    Ok(arrow
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect())
}

/// Appends `binlake validate`'s table-level results (no `_seq` range: they judge the table as it stands).
pub async fn record_table_results(
    lake: &LakeConfig,
    connector: &str,
    results: &[super::validate::TableResult],
) -> Result<(), LakeError> {
    if results.is_empty() {
        return Ok(());
    }
    let n = results.len();
    let now = crate::event::calendar::now_ms() * 1000;
    let text = |f: &dyn Fn(&super::validate::TableResult) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(results.iter().map(f)))
    };
    let mut keys = ListBuilder::new(StringBuilder::new());
    for r in results {
        for k in &r.sample_keys {
            keys.values().append_value(k);
        }
        keys.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
        Arc::new(StringArray::from(vec![connector; n])),
        text(&|r| r.table.clone()),
        text(&|r| r.expectation.clone()),
        text(&|r| r.type_name.to_string()),
        text(&|r| r.description.clone()),
        Arc::new(StringArray::from(vec!["table"; n])),
        text(&|r| r.severity.to_string()),
        text(&|r| r.status.to_string()),
        text(&|r| r.observed.clone()),
        text(&|r| r.expected.clone()),
        Arc::new(Int64Array::from_iter_values(
            results.iter().map(|r| r.element_count as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            results.iter().map(|r| r.unexpected_count as i64),
        )),
        Arc::new(Float64Array::from_iter_values(results.iter().map(|r| {
            if r.element_count == 0 {
                0.0
            } else {
                r.unexpected_count as f64 / r.element_count as f64
            }
        }))),
        Arc::new(keys.finish()),
        Arc::new(Int64Array::from(vec![None::<i64>; n])),
        Arc::new(Int64Array::from(vec![None::<i64>; n])),
    ];
    let batch = RecordBatch::try_new(Arc::new(results_schema()), columns)?;
    let uri = format!("{}/{RESULTS_DIR}", lake.root.trim_end_matches('/'));
    let table = open(&uri, &storage_options(lake)).await?;
    table
        .write(vec![batch])
        .with_schema_mode(SchemaMode::Merge)
        .await?;
    Ok(())
}

/// The results table's columns, one row per evaluation.
pub fn results_schema() -> Schema {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let int = |n: &str| Field::new(n, DataType::Int64, true);
    Schema::new(vec![
        Field::new("evaluated_at", utc_micros(), true),
        text("connector"),
        text("table_name"),
        text("expectation_id"),
        text("expectation_type"),
        text("description"),
        text("level"),
        text("severity"),
        text("status"),
        text("observed"),
        text("expected"),
        int("element_count"),
        int("unexpected_count"),
        Field::new("unexpected_fraction", DataType::Float64, true),
        Field::new(
            "sample_keys",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        int("seq_min"),
        int("seq_max"),
    ])
}

fn results_batch(
    connector: &str,
    id: &TableId,
    evaluations: &[Evaluation<'_>],
    seq_min: i64,
    seq_max: i64,
) -> Result<RecordBatch, LakeError> {
    let n = evaluations.len();
    let now = crate::event::calendar::now_ms() * 1000;
    let each = |f: &dyn Fn(&Evaluation<'_>) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(evaluations.iter().map(f)))
    };
    let mut keys = ListBuilder::new(StringBuilder::new());
    for ev in evaluations {
        for k in &ev.sample_keys {
            keys.values().append_value(k);
        }
        keys.append(true);
    }
    let table = id.to_string();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
        Arc::new(StringArray::from(vec![connector; n])),
        Arc::new(StringArray::from(vec![table.as_str(); n])),
        each(&|e| e.expectation.id.clone()),
        each(&|e| e.expectation.check.type_name().to_string()),
        each(&|e| e.expectation.description.clone()),
        Arc::new(StringArray::from(vec!["row"; n])),
        each(&|e| e.expectation.severity.as_str().to_string()),
        each(&|e| e.status.as_str().to_string()),
        each(&|e| e.observed.clone()),
        each(&|e| e.expectation.check.expected()),
        Arc::new(Int64Array::from_iter_values(
            evaluations.iter().map(|e| e.element_count as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            evaluations.iter().map(|e| e.unexpected_count as i64),
        )),
        Arc::new(Float64Array::from_iter_values(
            evaluations.iter().map(|e| e.unexpected_fraction()),
        )),
        Arc::new(keys.finish()),
        Arc::new(Int64Array::from(vec![seq_min; n])),
        Arc::new(Int64Array::from(vec![seq_max; n])),
    ];
    Ok(RecordBatch::try_new(Arc::new(results_schema()), columns)?)
}
