//! Applying a batch to a Delta table: an append when every key is new, otherwise one MERGE guarded by
//! `_seq` that reads only the partitions the batch's stored rows live in. When the events cannot tell
//! (Kafka mode, snapshot reads), the table's key columns are probed first: a batch none of whose keys is
//! stored is appended too, over exactly the table state that was probed.

use super::arrow::{build_column, writer_properties};
use super::table::{quote, Applied, KeyChange, LakeTable, Prior, Progress};
use super::LakeError;
use crate::event::{TableSchema, Value};
use deltalake::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::compute::filter_record_batch;
use deltalake::arrow::compute::kernels::boolean::not;
use deltalake::arrow::compute::kernels::cmp::eq;
use deltalake::arrow::datatypes::{Field, Schema};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use std::collections::HashMap;
use std::sync::Arc;

impl LakeTable {
    /// Applies the batch: inserts new keys, updates keys whose stored `_seq` is older, deletes (or marks
    /// deleted); `_seq` makes replays idempotent. A batch of keys the table cannot hold yet is appended
    /// without reading the table; otherwise the MERGE reads only the partitions `prior` names.
    pub async fn merge(
        &mut self,
        changes: &[KeyChange],
        prior: &Prior,
        last_seq: u64,
        progress: &Progress<'_>,
    ) -> Result<Applied, LakeError> {
        let batch = self.prepare(changes)?;
        self.merge_batch(batch, prior, last_seq, progress).await
    }

    /// A batch's changes as the table's columns (deletes included): what the MERGE applies and what
    /// quality expectations check.
    pub fn prepare(&self, changes: &[KeyChange]) -> Result<RecordBatch, LakeError> {
        self.to_batch(&changes.iter().collect::<Vec<_>>())
    }

    /// `merge` of a batch made by `prepare`.
    pub async fn merge_batch(
        &mut self,
        batch: RecordBatch,
        prior: &Prior,
        last_seq: u64,
        progress: &Progress<'_>,
    ) -> Result<Applied, LakeError> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(Applied::default());
        }
        let mut props = self.commit_properties(last_seq, progress)?;
        let unstored = prior.unknown
            && match self.stores_any_key(&batch).await {
                Ok(stored) => !stored,
                Err(e) => {
                    // the MERGE is right whatever the table holds; a key type the probe cannot bound
                    // or a read that failed leaves the decision to it (a failed read fails it too)
                    tracing::debug!(error = %e, "key probe failed; merging");
                    false
                }
            };
        if unstored {
            // the probe holds for this table state only: a commit that landed since fails this one
            // (a conflict, retried from a reload) rather than being rebased over it
            props = props.with_max_retries(0);
        }
        if prior.all_new() || unstored {
            // a key inserted and deleted within the batch leaves nothing (or, soft, a deleted row)
            let batch = if self.soft_delete {
                batch
            } else {
                self.without_deletes(batch)?
            };
            let batch = self.in_table_order(batch)?;
            self.table = self
                .table
                .clone()
                .write(vec![batch])
                .with_writer_properties(self.writer_properties()?)
                .with_commit_properties(props)
                .await?;
            return Ok(Applied {
                rows: n,
                appended: true,
                ..Default::default()
            });
        }
        let ctx = SessionContext::new();
        let source = ctx.read_batch(batch)?;
        let mut on = self
            .key
            .iter()
            .map(|k| format!("target.{0} = source.{0}", quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        if let (Some(p), false) = (&self.partitioning, prior.unknown) {
            on = format!(
                "{on} AND {}",
                p.prune_predicate("target", &prior.partitions)
            );
        }
        let mut all: Vec<String> = self.columns.iter().map(|(c, _)| c.clone()).collect();
        all.extend(self.meta.owned_names(self.partitioning.as_ref()));
        let (seq, op) = (quote(&self.meta.seq()), quote(&self.meta.op()));
        // at an equal `_seq` the later record wins: a snapshot chunk published again after a crash keeps
        // its `_seq`s but was read later (Kafka mode); direct mode never merges a `_seq` twice
        let newer = format!("source.{seq} >= target.{seq}");
        let table = self.table.clone();
        let mut builder = table
            .merge(source, on)
            .with_source_alias("source")
            .with_target_alias("target");
        let soft = self.soft_delete;
        let cols = all.clone();
        builder = builder.when_matched_update(|u| {
            let u = u.predicate(if soft {
                newer.clone()
            } else {
                format!("{newer} AND source.{op} <> 'd'")
            });
            cols.iter().fold(u, |u, c| {
                u.update(c.as_str(), format!("source.{}", quote(c)))
            })
        })?;
        if !soft {
            builder = builder
                .when_matched_delete(|d| d.predicate(format!("{newer} AND source.{op} = 'd'")))?;
        }
        let cols = all.clone();
        builder = builder.when_not_matched_insert(|i| {
            let i = if soft {
                i
            } else {
                i.predicate(format!("source.{op} <> 'd'"))
            };
            cols.iter()
                .fold(i, |i, c| i.set(c.as_str(), format!("source.{}", quote(c))))
        })?;
        let (table, m) = builder
            .with_writer_properties(self.writer_properties()?)
            .with_commit_properties(props)
            .await?;
        self.table = table;
        tracing::debug!(
            rows = n,
            files_scanned = m.num_target_files_scanned,
            files_skipped = m.num_target_files_skipped_during_scan,
            rows_rewritten = m.num_target_rows_copied,
            scan_ms = m.scan_time_ms,
            rewrite_ms = m.rewrite_time_ms,
            "merged"
        );
        Ok(Applied {
            rows: n,
            rows_rewritten: m.num_target_rows_copied,
            files_scanned: m.num_target_files_scanned,
            files_skipped: m.num_target_files_skipped_during_scan,
            appended: false,
        })
    }

    /// Whether the table stores a row (deleted ones included) with a key of `batch`, at the loaded
    /// version. Only the key columns are read, of the files whose statistics overlap the batch's key
    /// range; a table without a key column always counts as storing.
    async fn stores_any_key(&self, batch: &RecordBatch) -> Result<bool, LakeError> {
        use deltalake::datafusion::common::{Column, JoinType, ScalarValue};
        use deltalake::datafusion::functions_aggregate::expr_fn::{max, min};
        use deltalake::datafusion::prelude::{lit, Expr};
        if self.key.is_empty() {
            return Ok(true);
        }
        if self.table.version().is_none() || self.table.snapshot()?.log_data().num_files() == 0 {
            return Ok(false);
        }
        let key = |alias: &str, name: &str| Expr::Column(Column::new(Some(alias), name));
        let ctx = SessionContext::new();
        let positions = self
            .key
            .iter()
            .map(|k| batch.schema().index_of(k))
            .collect::<Result<Vec<_>, _>>()?;
        let source = ctx
            .read_batch(batch.project(&positions)?)?
            .alias("source")?;
        let bounds: Vec<Expr> = self
            .key
            .iter()
            .flat_map(|k| [min(key("source", k)), max(key("source", k))])
            .collect();
        let range = source.clone().aggregate(vec![], bounds)?.collect().await?;
        let mut target = ctx
            .read_table(self.table.table_provider().await?)?
            .alias("target")?
            .select(
                self.key
                    .iter()
                    .map(|k| key("target", k))
                    .collect::<Vec<_>>(),
            )?;
        for (i, k) in self.key.iter().enumerate() {
            let bound = |j: usize| -> Result<ScalarValue, LakeError> {
                let column = range.first().map(|b| b.column(j).clone()).ok_or_else(|| {
                    LakeError::Definite("the key range of a batch came back empty".into())
                })?;
                Ok(ScalarValue::try_from_array(&column, 0)?)
            };
            let (low, high) = (bound(2 * i)?, bound(2 * i + 1)?);
            if low.is_null() {
                return Ok(true); // no key values to bound the scan with: let the MERGE decide
            }
            target = target.filter(key("target", k).between(lit(low), lit(high)))?;
        }
        let on: Vec<Expr> = self
            .key
            .iter()
            .map(|k| key("target", k).eq(key("source", k)))
            .collect();
        let found = target
            .join_on(source, JoinType::LeftSemi, on)?
            .limit(0, Some(1))?
            .count()
            .await?;
        Ok(found > 0)
    }

    fn without_deletes(&self, batch: RecordBatch) -> Result<RecordBatch, LakeError> {
        let op = batch
            .column_by_name(&self.meta.op())
            .ok_or_else(|| LakeError::Definite("a lake batch lacks its operation column".into()))?;
        let deletes = eq(op, &StringArray::new_scalar("d"))?;
        if deletes.true_count() == 0 {
            return Ok(batch);
        }
        Ok(filter_record_batch(&batch, &not(&deletes)?)?)
    }

    fn writer_properties(&self) -> Result<WriterProperties, LakeError> {
        Ok(writer_properties(&self.all_columns()?, Compression::SNAPPY))
    }

    /// A write appends by position: columns added after the metadata columns must come last here too.
    fn in_table_order(&self, batch: RecordBatch) -> Result<RecordBatch, LakeError> {
        let order = self
            .all_columns()?
            .iter()
            .map(|(name, _)| {
                batch.schema().index_of(name).map_err(|_| {
                    LakeError::Definite(format!("batch lacks the table's column `{name}`"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        batch.project(&order).map_err(LakeError::from)
    }

    fn to_batch(&self, changes: &[&KeyChange]) -> Result<RecordBatch, LakeError> {
        let mut fields = vec![];
        let mut arrays: Vec<ArrayRef> = vec![];
        // index of each lake column in each change's schema
        let mut positions: HashMap<*const TableSchema, Vec<Option<usize>>> = HashMap::new();
        for ch in changes {
            positions.entry(Arc::as_ptr(&ch.schema)).or_insert_with(|| {
                self.columns
                    .iter()
                    .map(|(name, _)| ch.schema.columns.iter().position(|c| &c.name == name))
                    .collect()
            });
        }
        // looked up once per row, not once per row and column
        let row_positions: Vec<&[Option<usize>]> = changes
            .iter()
            .map(|ch| positions[&Arc::as_ptr(&ch.schema)].as_slice())
            .collect();
        for (ci, (name, ty)) in self.columns.iter().enumerate() {
            // an image from before the column was added: the row holds the value MySQL gave it then
            let added = self.added.get(ci).and_then(Option::as_ref);
            let values: Vec<Option<&Value>> = changes
                .iter()
                .zip(&row_positions)
                .map(|(ch, at)| match at[ci] {
                    Some(i) => ch.row.get(i),
                    None => added.filter(|a| ch.seq < a.before_seq).map(|a| &a.value),
                })
                .zip(changes)
                // a hard delete only needs the key
                .map(|(v, ch)| {
                    if ch.op == "d" && !self.soft_delete && !self.key.contains(name) {
                        None
                    } else {
                        v
                    }
                })
                .collect();
            arrays.push(build_column(name, ty, &values)?);
            fields.push(Field::new(name, ty.clone(), true));
        }
        let now = crate::event::calendar::now_ms() * 1000;
        let meta = &self.meta;
        for f in meta.fields() {
            let name = f.name();
            let array: ArrayRef = if *name == meta.op() {
                Arc::new(StringArray::from_iter_values(changes.iter().map(|c| c.op)))
            } else if *name == meta.seq() {
                Arc::new(Int64Array::from_iter_values(
                    changes.iter().map(|c| c.seq as i64),
                ))
            } else if *name == meta.source_ts() {
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        changes.iter().map(|c| c.source_ts_ms * 1000),
                    )
                    .with_timezone("UTC"),
                )
            } else if *name == meta.ingested_at() {
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(changes.iter().map(|_| now))
                        .with_timezone("UTC"),
                )
            } else {
                Arc::new(BooleanArray::from_iter(
                    changes.iter().map(|c| Some(c.deleted)),
                ))
            };
            arrays.push(array);
            fields.push(f);
        }
        if let Some(p) = &self.partitioning {
            let values: Vec<Option<String>> =
                changes.iter().map(|c| p.value(&c.schema, &c.row)).collect();
            arrays.push(p.array(&values));
            fields.push(Field::new(p.column_name(), p.data_type(), true));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(LakeError::from)
    }
}
