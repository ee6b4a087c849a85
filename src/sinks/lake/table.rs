//! One Delta table per source table: create on first use, add columns as the source schema grows,
//! MERGE a collapsed batch guarded by `_seq`, truncate, and record progress in Delta `txn` actions.

use super::arrow::{compaction_compression, lake_type, writer_properties};
use super::metadata::MetadataColumns;
use super::partition::Partitioning;
use super::LakeError;
use crate::event::progress::Checkpoint;
use crate::event::{AddedDefault, Row, TableSchema};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructField, StructType, Transaction};
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
    /// Kafka mode: the partition the change was read from (quality marks are kept per partition).
    pub origin: Option<i32>,
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
    /// Written as an append: no key of the batch was stored, so the table was not read.
    pub appended: bool,
}

/// What a commit records as progress, atomically with its data.
pub enum Progress<'a> {
    /// Direct mode: the source checkpoint the batch reaches, and how many tables its flush touched.
    Source {
        checkpoint: Option<&'a Checkpoint>,
        flush_tables: usize,
    },
    /// Kafka mode: per partition consumed, the `txn` app id and the last offset written.
    Offsets(&'a [(String, i64)]),
}

impl Progress<'_> {
    /// A direct-mode commit outside a pipeline (bulk loads, tests): no checkpoint.
    pub const NONE: Progress<'static> = Progress::Source {
        checkpoint: None,
        flush_tables: 1,
    };
}

/// What one maintenance run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Maintenance {
    pub files_removed: u64,
    pub files_added: u64,
    pub files_vacuumed: u64,
}

const META_LAST_SEQ: &str = "binlake.last_seq";
/// Delta field metadata of a column added while rows existed: the `AddedDefault`, as JSON.
const ADDED_METADATA: &str = "binlake.added";
const META_APP_ID: &str = "binlake.app_id";
const META_FLUSH_TABLES: &str = "binlake.flush_tables";
const META_CHECKPOINT: &str = "binlake.checkpoint";

/// How a table is created and written; fixed per connector.
#[derive(Debug, Clone)]
pub struct TableOptions {
    pub soft_delete: bool,
    /// `lake.metadata_prefix`: starts the names of binlake's own columns.
    pub metadata_prefix: String,
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
            metadata_prefix: cfg.metadata_prefix.clone(),
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
    pub(super) columns: Vec<(String, DataType)>,
    /// Per column of `columns`: added by ALTER TABLE while rows existed, with the value those rows
    /// hold in MySQL (kept in the Delta field's metadata, `binlake.added`).
    pub(super) added: Vec<Option<AddedDefault>>,
    pub(crate) key: Vec<String>,
    pub(super) soft_delete: bool,
    pub(super) meta: MetadataColumns,
    app_id: String,
    pub partitioning: Option<Partitioning>,
}

fn added_json(added: &AddedDefault) -> String {
    serde_json::to_string(added).expect("a value serializes")
}

/// An existing table keeps the metadata prefix it was created with: under another prefix its metadata
/// columns would be taken for source columns.
fn check_metadata_prefix(
    table: &DeltaTable,
    id: &str,
    meta: &MetadataColumns,
) -> Result<(), LakeError> {
    let schema = table.snapshot()?.snapshot().arrow_schema();
    if schema.field_with_name(&meta.seq()).is_ok() {
        return Ok(());
    }
    Err(LakeError::Definite(format!(
        "{id}: the Delta table has no `{}` column, so it was created with another lake.metadata_prefix than \
         \"{}\". Way out: restore the previous lake.metadata_prefix, or use a new lake.root",
        meta.seq(),
        meta.prefix()
    )))
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

pub(super) fn quote(name: &str) -> String {
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
            metadata_prefix,
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
        // a table known by name only is opened to be emptied: its columns are whatever Delta holds
        let named_only = schema.columns.is_empty();
        if let (Some(p), false) = (&partitioning, named_only) {
            p.check(schema)?;
        }
        let meta = MetadataColumns::new(&metadata_prefix, soft_delete);
        meta.check_source(schema, partitioning.as_ref())?;
        let expected_partitions: Vec<String> =
            partitioning.iter().map(|p| p.column_name()).collect();
        let table = if table.version().is_some() {
            check_partitioning(&table, &schema.id().to_string(), partitioning.as_ref())?;
            check_metadata_prefix(&table, &schema.id().to_string(), &meta)?;
            table
        } else {
            let mut fields: Vec<Field> = schema
                .columns
                .iter()
                .map(|c| Field::new(&c.name, lake_type(c), true))
                .collect();
            fields.extend(meta.fields());
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
            added: vec![],
            key,
            soft_delete,
            meta,
            app_id,
            partitioning,
        };
        t.refresh_columns()?;
        t.fence().await?;
        Ok(t)
    }

    /// With HA on: refuses a table a newer leader has fenced, and fences it for this leader's epoch if it
    /// is not yet (an empty commit carrying the epoch's `txn`), so a deposed leader's commits conflict.
    async fn fence(&mut self) -> Result<(), LakeError> {
        let Some((app, epoch)) = crate::ha::fence()? else {
            return Ok(());
        };
        let fenced = self.txn_version(&app).await?.unwrap_or(0);
        if fenced > epoch {
            return Err(crate::ha::deposed_error(epoch, fenced));
        }
        if fenced < epoch {
            use deltalake::kernel::transaction::CommitBuilder;
            use deltalake::protocol::{DeltaOperation, OutputMode};
            let props = CommitProperties::default()
                .with_application_transaction(Transaction::new(&app, epoch));
            let snapshot = self.table.snapshot()?.clone();
            CommitBuilder::from(props)
                .build(
                    Some(&snapshot),
                    self.table.log_store(),
                    DeltaOperation::StreamingUpdate {
                        output_mode: OutputMode::Append,
                        query_id: app.clone(),
                        epoch_id: epoch,
                    },
                )
                .await?;
            self.table.update_state().await?;
            tracing::info!(epoch, "fenced the table for this leader");
        }
        Ok(())
    }

    /// An existing table, opened to read this connector's progress.
    pub fn wrap(
        table: DeltaTable,
        soft_delete: bool,
        metadata_prefix: &str,
        app_id: String,
    ) -> Result<Self, LakeError> {
        let mut t = LakeTable {
            table,
            columns: vec![],
            added: vec![],
            key: vec![],
            soft_delete,
            meta: MetadataColumns::new(metadata_prefix, soft_delete),
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
        // only binlake's own columns are left out: a source column may well start with `_`
        let owned = self.meta.owned_names(self.partitioning.as_ref());
        self.columns = arrow
            .fields()
            .iter()
            .filter(|f| !owned.contains(f.name()))
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        let kernel = self.table.snapshot()?.schema();
        self.added = self
            .columns
            .iter()
            .map(
                |(name, _)| match kernel.field(name)?.metadata().get(ADDED_METADATA)? {
                    deltalake::kernel::MetadataValue::String(json) => {
                        serde_json::from_str(json).ok()
                    }
                    _ => None,
                },
            )
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
        // a column added by ALTER TABLE may clash with binlake's names too
        self.meta.check_source(schema, self.partitioning.as_ref())?;
        let differs = |(name, ty): &(String, DataType)| {
            schema
                .columns
                .iter()
                .find(|c| &c.name == name)
                .is_none_or(|c| &lake_type(c) != ty)
        };
        if !schema.columns.is_empty() && self.columns.iter().any(differs) && self.holds_no_rows()? {
            // emptied by a DROP (or TRUNCATE): the table takes the new columns exactly, as MySQL's did
            self.replace_columns(schema).await?;
            return Ok(true);
        }
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
        // columns added while rows existed, and older ones added again with another default
        let newly_added: Vec<(&str, &AddedDefault)> = schema
            .columns
            .iter()
            .filter_map(|c| Some((c.name.as_str(), c.added.as_ref()?)))
            .filter(|(name, a)| {
                let stored = self
                    .columns
                    .iter()
                    .position(|(n, _)| n == name)
                    .and_then(|i| self.added[i].as_ref());
                stored.is_none_or(|s| s.before_seq < a.before_seq)
            })
            .collect();
        if new_fields.is_empty() && newly_added.is_empty() {
            return Ok(false);
        }
        if !new_fields.is_empty() {
            tracing::info!(table = %schema.id(), columns = ?new_fields.iter().map(|f| f.name().clone()).collect::<Vec<_>>(), "adding columns");
            let kernel: StructType = Arc::new(Schema::new(new_fields)).try_into_kernel()?;
            let fields: Vec<StructField> = kernel
                .fields()
                .cloned()
                .map(|f| match newly_added.iter().find(|(n, _)| *n == f.name()) {
                    Some((_, a)) => f.add_metadata([(ADDED_METADATA, added_json(a))]),
                    None => f,
                })
                .collect();
            let table = self.table.clone();
            self.table = table.add_columns().with_fields(fields).await?;
            self.refresh_columns()?;
        }
        for (name, added) in newly_added {
            self.backfill(name, added).await?;
        }
        Ok(true)
    }

    /// Rows older than the ALTER that added `column` take the value MySQL gave them, and the column's
    /// metadata records it, so rows still on their way with images from before get it too
    /// (`merge.rs`). Idempotent: run again, it writes the same values.
    async fn backfill(&mut self, column: &str, added: &AddedDefault) -> Result<(), LakeError> {
        use deltalake::datafusion::common::ScalarValue;
        use deltalake::datafusion::prelude::lit;
        let Some(i) = self.columns.iter().position(|(n, _)| n == column) else {
            return Ok(());
        };
        if self.added[i].as_ref() != Some(added) {
            let metadata = std::collections::HashMap::from([(
                ADDED_METADATA.to_string(),
                deltalake::kernel::MetadataValue::String(added_json(added)),
            )]);
            let table = self.table.clone();
            self.table = table
                .update_field_metadata()
                .with_field_name(column)
                .with_metadata(metadata)
                .await?;
            self.refresh_columns()?;
        }
        let ty = self.columns[i].1.clone();
        let array = super::arrow::build_column(column, &ty, &[Some(&added.value)])?;
        let value = ScalarValue::try_from_array(&array, 0)?;
        tracing::info!(
            column,
            before_seq = added.before_seq,
            "backfilling a column added while rows existed"
        );
        let (table, metrics) = self
            .table
            .clone()
            .update()
            .with_predicate(format!(
                "{} < {}",
                quote(&self.meta.seq()),
                added.before_seq
            ))
            .with_update(column, lit(value))
            .await?;
        self.table = table;
        tracing::info!(column, rows = metrics.num_updated_rows, "backfilled");
        Ok(())
    }

    /// No data file at the loaded version: nothing a schema change could strand.
    pub fn holds_no_rows(&self) -> Result<bool, LakeError> {
        Ok(self.table.snapshot()?.log_data().num_files() == 0)
    }

    /// Gives an empty table exactly `schema`'s columns (plus binlake's), keeping its partitioning and
    /// properties: one metadata commit, no data.
    async fn replace_columns(&mut self, schema: &TableSchema) -> Result<(), LakeError> {
        use deltalake::arrow::array::new_empty_array;
        use deltalake::operations::write::SchemaMode;
        use deltalake::protocol::SaveMode;
        let mut fields: Vec<Field> = schema
            .columns
            .iter()
            .map(|c| Field::new(&c.name, lake_type(c), true))
            .collect();
        fields.extend(self.meta.fields());
        if let Some(p) = &self.partitioning {
            p.check(schema)?;
            fields.push(Field::new(p.column_name(), p.data_type(), true));
        }
        let arrow = Arc::new(Schema::new(fields));
        let columns = arrow
            .fields()
            .iter()
            .map(|f| new_empty_array(f.data_type()))
            .collect();
        let empty = deltalake::arrow::record_batch::RecordBatch::try_new(arrow, columns)?;
        tracing::info!(table = %schema.id(), "the table is empty: replacing its columns with the source's");
        let partitions = self
            .table
            .snapshot()?
            .metadata()
            .partition_columns()
            .to_vec();
        self.table = self
            .table
            .clone()
            .write(vec![empty])
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(SchemaMode::Overwrite)
            .with_partition_columns(partitions)
            .await?;
        self.key = schema
            .key
            .iter()
            .map(|&k| schema.columns[k].name.clone())
            .collect();
        self.refresh_columns()
    }

    /// Reloads the table state after a failed commit, before a retry.
    pub async fn reload(&mut self) -> Result<(), LakeError> {
        self.table.update_state().await?;
        self.refresh_columns()?;
        // a commit that failed may have lost to a newer leader's fence
        if let Some((app, epoch)) = crate::ha::fence()? {
            let fenced = self.txn_version(&app).await?.unwrap_or(0);
            if fenced > epoch {
                return Err(crate::ha::deposed_error(epoch, fenced));
            }
        }
        Ok(())
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

    /// TRUNCATE in MySQL at `seq`: deletes every row older than it (all of them in direct mode; in Kafka
    /// mode rows of other partitions may already be newer), recording `seq` as this table's progress.
    pub async fn truncate(&mut self, seq: u64, progress: &Progress<'_>) -> Result<(), LakeError> {
        let props = self.commit_properties(seq, progress)?;
        let (table, _) = self
            .table
            .clone()
            .delete()
            .with_predicate(format!("{} < {seq}", quote(&self.meta.seq())))
            .with_commit_properties(props)
            .await?;
        self.table = table;
        Ok(())
    }

    /// Every commit records its progress atomically with its data. Direct mode: the connector's `txn`
    /// (last `_seq`) and, in the metadata, the checkpoint the batch reaches and how many tables the flush
    /// touched (a single-table flush's commit is atomic with its checkpoint, so a restart may resume from
    /// it: see `LakeSink::resume_point`). Kafka mode: one `txn` per partition consumed, version = the last
    /// offset written.
    pub(super) fn commit_properties(
        &self,
        last_seq: u64,
        progress: &Progress<'_>,
    ) -> Result<CommitProperties, LakeError> {
        // with HA on, every commit carries the leader's epoch: one by a deposed leader conflicts with the
        // new leader's fence on that app id
        let fence = crate::ha::fence()?.map(|(app, epoch)| Transaction::new(&app, epoch));
        let mut meta = vec![
            (META_LAST_SEQ.to_string(), serde_json::json!(last_seq)),
            (META_APP_ID.to_string(), serde_json::json!(self.app_id)),
        ];
        let props = CommitProperties::default();
        let props = match progress {
            Progress::Source {
                checkpoint,
                flush_tables,
            } => {
                meta.push((
                    META_FLUSH_TABLES.to_string(),
                    serde_json::json!(flush_tables),
                ));
                if let Some(cp) = checkpoint {
                    meta.push((
                        META_CHECKPOINT.to_string(),
                        serde_json::to_value(cp).expect("checkpoint serializes"),
                    ));
                }
                props.with_application_transaction(Transaction::new(&self.app_id, last_seq as i64))
            }
            Progress::Offsets(offsets) => props.with_application_transactions(
                offsets
                    .iter()
                    .map(|(app, offset)| Transaction::new(app, *offset))
                    .collect(),
            ),
        };
        let props = match fence {
            Some(t) => props.with_application_transaction(t),
            None => props,
        };
        Ok(props.with_metadata(meta))
    }

    /// The table version this handle's state is at.
    pub fn version(&self) -> Option<i64> {
        self.table.version().map(|v| v as i64)
    }

    /// The version of `app_id`'s `txn` in this table (Kafka mode: the last offset of a partition written).
    pub async fn txn_version(&self, app_id: &str) -> Result<Option<i64>, LakeError> {
        let state = self.table.snapshot()?;
        Ok(state
            .transaction_version(self.table.log_store().as_ref(), app_id)
            .await?)
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
        self.merge(changes, &Prior::default(), last_seq, &Progress::NONE)
            .await
            .map(|_| ())
    }
}
