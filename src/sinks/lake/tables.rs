//! The Delta tables a lake writer has open, shared by both ways into the lake (direct from the binlog,
//! and `binlake sink` from Kafka): opening or creating a table, its partitioning, schema evolution, Glue
//! registration, and how a failed commit is retried.

use super::glue::GlueCatalog;
use super::partition::Partitioning;
use super::table::{LakeTable, TableOptions};
use super::{storage_options, table_uri, LakeError, LakeErrorKind};
use crate::config::LakeConfig;
use crate::event::{TableId, TableSchema};
use crate::retry::Backoff;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct Tables {
    pub cfg: LakeConfig,
    pub connector: String,
    pub storage: HashMap<String, String>,
    catalog: Option<GlueCatalog>,
    /// Looked up for every record the sink takes: a fast hasher.
    open: HashMap<TableId, LakeTable, foldhash::fast::RandomState>,
    /// Dropped tables taken out of Glue: registered again with their next schema.
    deregistered: std::collections::HashSet<TableId>,
}

impl Tables {
    pub async fn new(cfg: &LakeConfig, connector: &str) -> Self {
        let catalog = match &cfg.glue {
            Some(g) => Some(GlueCatalog::new(g).await),
            None => None,
        };
        Tables {
            catalog,
            storage: storage_options(cfg),
            cfg: cfg.clone(),
            connector: connector.to_string(),
            open: HashMap::default(),
            deregistered: Default::default(),
        }
    }

    pub fn get(&self, id: &TableId) -> Option<&LakeTable> {
        self.open.get(id)
    }

    pub fn get_mut(&mut self, id: &TableId) -> Option<&mut LakeTable> {
        self.open.get_mut(id)
    }

    /// The table `schema` belongs to, opened (or created) and registered in Glue on first use; the flag
    /// says whether this call opened it.
    pub async fn open(
        &mut self,
        schema: &TableSchema,
    ) -> Result<(&mut LakeTable, bool), LakeError> {
        let id = schema.id();
        let opened = !self.open.contains_key(&id);
        if opened {
            let uri = table_uri(&self.cfg, &schema.database, &schema.table)?;
            let options = TableOptions {
                partitioning: self.partitioning(&id)?,
                ..TableOptions::new(&self.cfg, &self.connector)
            };
            let t = LakeTable::open_or_create(&uri, &self.storage, schema, options).await?;
            self.open.insert(id.clone(), t);
            // registering on every start keeps Glue in step even if it was changed or lost meanwhile
            self.register(&id).await?;
        }
        Ok((self.open.get_mut(&id).expect("opened above"), opened))
    }

    /// Whether the lake holds a Delta table for `id` (open or on storage).
    pub async fn exists(&self, id: &TableId) -> Result<bool, LakeError> {
        if self.open.contains_key(id) {
            return Ok(true);
        }
        let uri = table_uri(&self.cfg, &id.database, &id.table)?;
        let url = deltalake::ensure_table_uri(&uri)?;
        let table =
            deltalake::DeltaTable::try_from_url_with_storage_options(url, self.storage.clone())
                .await?;
        Ok(table.version().is_some())
    }

    pub fn partitioning(&self, id: &TableId) -> Result<Option<Partitioning>, LakeError> {
        crate::config::for_table(&self.cfg.partitions, id)
            .map(|spec| {
                Partitioning::parse(spec)
                    .map(|p| p.with_prefix(&self.cfg.metadata_prefix))
                    .map_err(LakeError::Definite)
            })
            .transpose()
    }

    async fn register(&self, id: &TableId) -> Result<(), LakeError> {
        let (Some(catalog), Some(table)) = (&self.catalog, self.open.get(id)) else {
            return Ok(());
        };
        if table.source_columns().next().is_none() {
            return Ok(()); // known by name only: nothing a reader could query yet
        }
        catalog
            .register(
                &id.database,
                &id.table,
                &table_uri(&self.cfg, &id.database, &id.table)?,
                &table.all_columns()?,
            )
            .await
    }

    /// After a DROP committed with nothing after it: the table leaves Glue until a schema of that name
    /// comes again.
    pub async fn deregister_dropped(&mut self, id: &TableId) -> Result<(), LakeError> {
        if let Some(catalog) = &self.catalog {
            catalog.deregister(&id.database, &id.table).await?;
            self.deregistered.insert(id.clone());
        }
        Ok(())
    }

    /// Adds the columns `schema` has and the table lacks (and tells Glue). A table whose key differs
    /// from `schema`'s (opened by name only to be emptied, or created again with another key) is opened
    /// again first: the MERGE matches rows by the key.
    pub async fn evolve(&mut self, schema: &TableSchema) -> Result<(), LakeError> {
        let id = schema.id();
        if !schema.columns.is_empty() {
            let key: Vec<&str> = schema
                .key
                .iter()
                .map(|&k| schema.columns[k].name.as_str())
                .collect();
            if self.open.get(&id).is_some_and(|t| t.key != key) {
                self.open.remove(&id);
            }
        }
        let changed = self.open(schema).await?.0.evolve(schema).await?;
        if self.deregistered.remove(&id) || changed {
            self.register(&id).await?;
        }
        Ok(())
    }
}

/// How long to wait before retrying a failed commit, or `None` to give up: conflicts and transient errors
/// back off separately; nothing is retried past the drain deadline.
pub struct CommitRetry {
    transient: Backoff,
    conflict: Backoff,
}

impl Default for CommitRetry {
    fn default() -> Self {
        CommitRetry {
            transient: Backoff::transient(),
            conflict: Backoff::conflict(),
        }
    }
}

impl CommitRetry {
    pub fn wait(
        &mut self,
        e: &LakeError,
        table: &TableId,
        deadline: Option<Instant>,
    ) -> Option<Duration> {
        let kind = e.kind();
        crate::observe::error(
            "lake",
            match kind {
                LakeErrorKind::Conflict => "conflict",
                LakeErrorKind::Transient => "transient",
                LakeErrorKind::Definite => "definite",
            },
        );
        let wait = match kind {
            LakeErrorKind::Conflict => self.conflict.next_delay(),
            LakeErrorKind::Transient => self.transient.next_delay(),
            LakeErrorKind::Definite => None,
        }
        .filter(|w| deadline.is_none_or(|d| Instant::now() + *w < d))?;
        if kind == LakeErrorKind::Conflict {
            crate::observe::METRICS
                .lake_commit_conflicts
                .with_label_values(&[table.to_string().as_str()])
                .inc();
            tracing::info!(table = %table, error = %e, "another writer committed first; applying the batch again");
        } else {
            tracing::warn!(table = %table, error = %e, retry_in_ms = wait.as_millis() as u64, "lake commit failed; retrying");
        }
        Some(wait)
    }
}

/// Metrics of one table's commit of `rows` changes, started at `started`; `newest_ts_ms` is the source
/// time of the newest change in it.
pub fn record_commit(table: &str, rows: usize, started: Instant, newest_ts_ms: Option<i64>) {
    let m = &crate::observe::METRICS;
    m.commit_seconds
        .with_label_values(&[table])
        .observe(started.elapsed().as_secs_f64());
    m.batch_rows
        .with_label_values(&[table])
        .observe(rows as f64);
    m.rows_merged
        .with_label_values(&[table])
        .inc_by(rows as u64);
    if let Some(ts) = newest_ts_ms {
        m.lag_ms
            .with_label_values(&[table])
            .set(crate::event::calendar::now_ms() - ts);
    }
}
