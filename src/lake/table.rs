//! One Delta table per source table: create on first use, add columns as the source schema grows,
//! MERGE a collapsed batch guarded by `_seq`, truncate, and record progress in Delta `txn` actions.

use super::arrow::{
    build_column, compaction_compression, lake_type, metadata_fields, writer_properties, DELETED,
    INGESTED_AT, OP, SEQ, SOURCE_TS,
};
use super::partition::Partitioning;
use super::LakeError;
use crate::checkpoint::Checkpoint;
use crate::event::{Row, TableSchema, Value};
use deltalake::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructField, StructType, Transaction};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::{DeltaTable, TableProperty};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// The latest change of one key within a batch.
#[derive(Debug, Clone)]
pub struct KeyChange {
    pub seq: u64,
    pub op: &'static str,
    /// Source schema the row was captured with (rows of one batch may span schema versions).
    pub schema: Arc<TableSchema>,
    /// Full row for upserts; for deletes the before image (only its key is used, unless soft delete).
    pub row: Row,
    pub deleted: bool,
    pub source_ts_ms: i64,
}

/// What a batch's events tell about the rows its keys already have in the table.
#[derive(Debug, Default, Clone)]
pub struct Prior {
    /// Some key may have a stored row the events say nothing about (snapshot reads; with soft delete,
    /// an insert may revive a deleted row).
    pub unknown: bool,
    /// Partitions holding stored rows of the batch's keys (`None`: the NULL partition, or the whole
    /// table when it is unpartitioned).
    pub partitions: BTreeSet<Option<String>>,
}

impl Prior {
    /// Every key is new to the table: the batch can be appended without reading the table.
    pub fn all_new(&self) -> bool {
        !self.unknown && self.partitions.is_empty()
    }
}

/// What applying one batch did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Applied {
    /// Changes applied (after collapsing to one per key).
    pub rows: usize,
    /// Unchanged rows copied while rewriting the files that held matched keys.
    pub rows_rewritten: usize,
    pub files_scanned: usize,
    pub files_skipped: usize,
}

/// What one maintenance run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Maintenance {
    pub files_removed: u64,
    pub files_added: u64,
    pub files_vacuumed: u64,
}

const META_LAST_SEQ: &str = "binlake.last_seq";
const META_APP_ID: &str = "binlake.app_id";
const META_FLUSH_TABLES: &str = "binlake.flush_tables";
const META_CHECKPOINT: &str = "binlake.checkpoint";

/// How a table is created and written; fixed per connector.
#[derive(Debug, Clone)]
pub struct TableOptions {
    pub soft_delete: bool,
    pub checkpoint_every: u32,
    /// `delta.targetFileSize` of new tables, MiB.
    pub write_file_mb: u64,
    /// `binlake:<connector>`: the Delta `txn` app id.
    pub app_id: String,
    pub partitioning: Option<Partitioning>,
}

impl TableOptions {
    pub fn new(cfg: &crate::config::LakeConfig, connector: &str) -> Self {
        TableOptions {
            soft_delete: cfg.soft_delete,
            checkpoint_every: cfg.checkpoint_every,
            write_file_mb: cfg.write_file_mb,
            app_id: super::app_id(connector),
            partitioning: None,
        }
    }
}

pub struct LakeTable {
    pub table: DeltaTable,
    /// Source columns as stored, in Delta order, with their lake type.
    columns: Vec<(String, DataType)>,
    key: Vec<String>,
    soft_delete: bool,
    app_id: String,
    pub partitioning: Option<Partitioning>,
}

/// An existing table keeps the partitioning it was created with; a different `[lake.partitions]` entry
/// is a definite error before anything is written.
pub fn check_partitioning(
    table: &DeltaTable,
    id: &str,
    partitioning: Option<&Partitioning>,
) -> Result<(), LakeError> {
    let expected: Vec<String> = partitioning.iter().map(|p| p.column_name()).collect();
    let stored = table.snapshot()?.metadata().partition_columns().to_vec();
    if stored == expected {
        return Ok(());
    }
    Err(LakeError::Definite(format!(
        "{id}: the Delta table is partitioned by {stored:?} but lake.partitions asks for {expected:?}; \
         partitioning is fixed when a table is created. Way out: restore the previous lake.partitions \
         entry, or re-snapshot the table into a new lake root"
    )))
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl LakeTable {
    pub async fn open_or_create(
        uri: &str,
        storage: &HashMap<String, String>,
        schema: &TableSchema,
        options: TableOptions,
    ) -> Result<Self, LakeError> {
        let TableOptions {
            soft_delete,
            checkpoint_every,
            write_file_mb,
            app_id,
            partitioning,
        } = options;
        let url = deltalake::ensure_table_uri(uri)?;
        let table = DeltaTable::try_from_url_with_storage_options(url, storage.clone()).await?;
        let key: Vec<String> = schema
            .key
            .iter()
            .map(|&k| schema.columns[k].name.clone())
            .collect();
        if let Some(p) = &partitioning {
            p.check(schema)?;
        }
        let expected_partitions: Vec<String> =
            partitioning.iter().map(|p| p.column_name()).collect();
        let table = if table.version().is_some() {
            check_partitioning(&table, &schema.id().0, partitioning.as_ref())?;
            table
        } else {
            let mut fields: Vec<Field> = schema
                .columns
                .iter()
                .map(|c| Field::new(&c.name, lake_type(c), true))
                .collect();
            fields.extend(metadata_fields(soft_delete));
            if let Some(p) = &partitioning {
                fields.push(Field::new(p.column_name(), p.data_type(), true));
            }
            let kernel: StructType = Arc::new(Schema::new(fields)).try_into_kernel()?;
            let columns: Vec<StructField> = kernel.fields().cloned().collect();
            tracing::info!(table = %schema.id(), uri, "creating Delta table");
            table
                .create()
                .with_columns(columns)
                .with_partition_columns(expected_partitions)
                .with_table_name(schema.table.clone())
                .with_comment(format!("binlake capture of MySQL {}", schema.id()))
                .with_configuration_property(
                    TableProperty::CheckpointInterval,
                    Some(checkpoint_every.to_string()),
                )
                .with_configuration_property(
                    TableProperty::TargetFileSize,
                    Some((write_file_mb.max(1) << 20).to_string()),
                )
                .await?
        };
        let mut t = LakeTable {
            table,
            columns: vec![],
            key,
            soft_delete,
            app_id,
            partitioning,
        };
        t.refresh_columns()?;
        Ok(t)
    }

    /// An existing table, opened to read this connector's progress.
    pub fn wrap(table: DeltaTable, soft_delete: bool, app_id: String) -> Result<Self, LakeError> {
        let mut t = LakeTable {
            table,
            columns: vec![],
            key: vec![],
            soft_delete,
            app_id,
            partitioning: None,
        };
        t.refresh_columns()?;
        Ok(t)
    }

    fn refresh_columns(&mut self) -> Result<(), LakeError> {
        let arrow: Schema = self
            .table
            .snapshot()?
            .snapshot()
            .arrow_schema()
            .as_ref()
            .clone();
        self.columns = arrow
            .fields()
            .iter()
            .filter(|f| !f.name().starts_with('_'))
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        Ok(())
    }

    /// Highest `_seq` already committed to this table by this connector.
    pub async fn committed_seq(&self) -> Result<Option<u64>, LakeError> {
        let state = self.table.snapshot()?;
        let v = state
            .transaction_version(self.table.log_store().as_ref(), &self.app_id)
            .await?;
        Ok(v.map(|v| v as u64))
    }

    /// Adds columns the source gained (returns whether it did); a column whose type changed
    /// incompatibly stops the table.
    pub async fn evolve(&mut self, schema: &TableSchema) -> Result<bool, LakeError> {
        let mut new_fields = vec![];
        for c in &schema.columns {
            let ty = lake_type(c);
            match self.columns.iter().find(|(n, _)| n == &c.name) {
                Some((_, existing)) if existing == &ty => {}
                Some((_, existing)) => {
                    return Err(LakeError::Definite(format!(
                        "{}: column `{}` changed from {existing} to {ty} in MySQL, which Delta cannot express in place. \
                         Way out: rename the column in MySQL (binlake then adds it as a new column), or point \
                         lake.root at a new location, where binlake starts with a full snapshot",
                        schema.id(),
                        c.name
                    )))
                }
                None => new_fields.push(Field::new(&c.name, ty, true)),
            }
        }
        if new_fields.is_empty() {
            return Ok(false);
        }
        tracing::info!(table = %schema.id(), columns = ?new_fields.iter().map(|f| f.name().clone()).collect::<Vec<_>>(), "adding columns");
        let kernel: StructType = Arc::new(Schema::new(new_fields)).try_into_kernel()?;
        let fields: Vec<StructField> = kernel.fields().cloned().collect();
        let table = self.table.clone();
        self.table = table.add_columns().with_fields(fields).await?;
        self.refresh_columns()?;
        Ok(true)
    }

    /// Reloads the table state after a failed commit, before a retry.
    pub async fn reload(&mut self) -> Result<(), LakeError> {
        self.table.update_state().await?;
        self.refresh_columns()
    }

    /// Every column with its type, metadata columns included (what Glue and Athena see).
    pub fn all_columns(&self) -> Result<Vec<(String, DataType)>, LakeError> {
        let arrow = self.table.snapshot()?.snapshot().arrow_schema();
        Ok(arrow
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect())
    }

    pub fn source_columns(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|(n, _)| n.as_str())
    }

    /// Deletes every row (TRUNCATE in MySQL), recording `seq` as this table's progress.
    pub async fn truncate(
        &mut self,
        seq: u64,
        checkpoint: Option<&Checkpoint>,
        flush_tables: usize,
    ) -> Result<(), LakeError> {
        let props = self.commit_properties(seq, checkpoint, flush_tables);
        let (table, _) = self
            .table
            .clone()
            .delete()
            .with_commit_properties(props)
            .await?;
        self.table = table;
        Ok(())
    }

    /// Every commit carries the connector's `txn` (last `_seq`) and, in its metadata, the checkpoint the
    /// batch reaches and how many tables the flush touched: a single-table flush's commit is atomic with
    /// its checkpoint, so a restart may resume from it (see `LakeSink::resume_point`).
    fn commit_properties(
        &self,
        last_seq: u64,
        checkpoint: Option<&Checkpoint>,
        flush_tables: usize,
    ) -> CommitProperties {
        let mut meta = vec![
            (META_LAST_SEQ.to_string(), serde_json::json!(last_seq)),
            (META_APP_ID.to_string(), serde_json::json!(self.app_id)),
            (
                META_FLUSH_TABLES.to_string(),
                serde_json::json!(flush_tables),
            ),
        ];
        if let Some(cp) = checkpoint {
            meta.push((
                META_CHECKPOINT.to_string(),
                serde_json::to_value(cp).expect("checkpoint serializes"),
            ));
        }
        CommitProperties::default()
            .with_application_transaction(Transaction::new(&self.app_id, last_seq as i64))
            .with_metadata(meta)
    }

    /// The checkpoint recorded by this connector's latest commit, if that commit came from a single-table flush.
    pub async fn last_commit_checkpoint(&self) -> Result<Option<Checkpoint>, LakeError> {
        use futures_util::TryStreamExt;
        let infos: Vec<_> = self.table.history(Some(50)).try_collect().await?;
        for info in infos {
            if info.info.get(META_APP_ID).and_then(|v| v.as_str()) != Some(self.app_id.as_str()) {
                continue;
            }
            if info.info.get(META_FLUSH_TABLES).and_then(|v| v.as_u64()) != Some(1) {
                return Ok(None);
            }
            return Ok(info
                .info
                .get(META_CHECKPOINT)
                .and_then(|v| serde_json::from_value(v.clone()).ok()));
        }
        Ok(None)
    }

    /// Compacts small files into ~`target_mb` files, then removes files unreferenced for longer than
    /// `retention_hours` (readers of older versions need them until then).
    pub async fn maintain(
        &mut self,
        target_mb: u64,
        retention_hours: u64,
    ) -> Result<Maintenance, LakeError> {
        let target = std::num::NonZeroU64::new(target_mb.max(1) << 20).expect("non-zero");
        let (table, optimized) = self
            .table
            .clone()
            .optimize()
            .with_writer_properties(writer_properties(
                &self.all_columns()?,
                compaction_compression(),
            ))
            .with_target_size(target)
            .await?;
        let (table, vacuumed) = table
            .vacuum()
            .with_retention_period(chrono::Duration::hours(retention_hours as i64))
            .with_enforce_retention_duration(false)
            .await?;
        self.table = table;
        Ok(Maintenance {
            files_removed: optimized.num_files_removed,
            files_added: optimized.num_files_added,
            files_vacuumed: vacuumed.files_deleted.len() as u64,
        })
    }

    /// Appends rows without matching (bulk loading an empty table, e.g. for benchmarks); callers guarantee
    /// the keys are new.
    pub async fn append(&mut self, changes: &[KeyChange], last_seq: u64) -> Result<(), LakeError> {
        self.merge(changes, &Prior::default(), last_seq, None, 1)
            .await
            .map(|_| ())
    }

    /// Applies the batch: inserts new keys, updates keys whose stored `_seq` is older, deletes (or marks
    /// deleted); `_seq` makes replays idempotent. A batch of keys the table cannot hold yet is appended
    /// without reading the table; otherwise the MERGE reads only the partitions `prior` names.
    pub async fn merge(
        &mut self,
        changes: &[KeyChange],
        prior: &Prior,
        last_seq: u64,
        checkpoint: Option<&Checkpoint>,
        flush_tables: usize,
    ) -> Result<Applied, LakeError> {
        if changes.is_empty() {
            return Ok(Applied::default());
        }
        let n = changes.len();
        let props = self.commit_properties(last_seq, checkpoint, flush_tables);
        if prior.all_new() {
            // a key inserted and deleted within the batch leaves nothing (or, soft, a deleted row)
            let rows: Vec<KeyChange> = changes
                .iter()
                .filter(|c| self.soft_delete || c.op != "d")
                .cloned()
                .collect();
            let batch = self.in_table_order(self.to_batch(&rows)?)?;
            self.table = self
                .table
                .clone()
                .write(vec![batch])
                .with_writer_properties(self.writer_properties()?)
                .with_commit_properties(props)
                .await?;
            return Ok(Applied {
                rows: n,
                ..Default::default()
            });
        }
        let batch = self.to_batch(changes)?;
        let ctx = SessionContext::new();
        let source = ctx
            .read_batch(batch)
            .map_err(|e| LakeError::Definite(e.to_string()))?;
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
        all.extend([OP, SEQ, SOURCE_TS, INGESTED_AT].map(String::from));
        if self.soft_delete {
            all.push(DELETED.to_string());
        }
        all.extend(self.partitioning.iter().map(|p| p.column_name()));
        let newer = format!("source.{SEQ} > target.{SEQ}");
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
                format!("{newer} AND source.{OP} <> 'd'")
            });
            cols.iter().fold(u, |u, c| {
                u.update(c.as_str(), format!("source.{}", quote(c)))
            })
        })?;
        if !soft {
            builder = builder
                .when_matched_delete(|d| d.predicate(format!("{newer} AND source.{OP} = 'd'")))?;
        }
        let cols = all.clone();
        builder = builder.when_not_matched_insert(|i| {
            let i = if soft {
                i
            } else {
                i.predicate(format!("source.{OP} <> 'd'"))
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
        })
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
        batch
            .project(&order)
            .map_err(|e| LakeError::Definite(e.to_string()))
    }

    fn to_batch(&self, changes: &[KeyChange]) -> Result<RecordBatch, LakeError> {
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
        for (ci, (name, ty)) in self.columns.iter().enumerate() {
            let values: Vec<Option<&Value>> = changes
                .iter()
                .map(|ch| positions[&Arc::as_ptr(&ch.schema)][ci].and_then(|i| ch.row.get(i)))
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
        let now = crate::pipeline::now_ms() * 1000;
        for f in metadata_fields(self.soft_delete) {
            let array: ArrayRef = match f.name().as_str() {
                OP => Arc::new(StringArray::from_iter_values(changes.iter().map(|c| c.op))),
                SEQ => Arc::new(Int64Array::from_iter_values(
                    changes.iter().map(|c| c.seq as i64),
                )),
                SOURCE_TS => Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        changes.iter().map(|c| c.source_ts_ms * 1000),
                    )
                    .with_timezone("UTC"),
                ),
                INGESTED_AT => Arc::new(
                    TimestampMicrosecondArray::from_iter_values(changes.iter().map(|_| now))
                        .with_timezone("UTC"),
                ),
                _ => Arc::new(BooleanArray::from_iter(
                    changes.iter().map(|c| Some(c.deleted)),
                )),
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
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| LakeError::Definite(e.to_string()))
    }
}
