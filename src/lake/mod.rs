//! The lake stage: change events → micro-batches → one MERGE per Delta table per batch, exactly once.
//! Progress lives in the lake itself: each commit carries a `txn` action (app id `binlake:<connector>`,
//! version = last `_seq`) plus the source position in its metadata, and after every batch the resume
//! checkpoint is written to `<root>/_binlake/<connector>.checkpoint.json`. On start the source resumes
//! from that checkpoint and each table skips the `_seq`s it already has.

pub mod arrow;
pub mod batch;
pub mod glue;
pub mod partition;
pub mod query;
pub mod table;

use crate::checkpoint::Checkpoint;
use crate::config::LakeConfig;
use deltalake::DeltaTableError;
use object_store::ObjectStoreExt;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("Delta: {0}")]
    Delta(#[from] DeltaTableError),
    #[error("lake storage: {0}")]
    Storage(#[from] deltalake::ObjectStoreError),
    #[error("catalog: {0}")]
    Catalog(String),
    /// The table cannot go on without an operator; the message says why and how to fix it.
    #[error("{0}")]
    Definite(String),
}

impl LakeError {
    /// I/O, throttling and commit conflicts are retried; everything else stops the pipeline.
    pub fn is_transient(&self) -> bool {
        match self {
            LakeError::Storage(_) => true,
            LakeError::Delta(e) => matches!(
                e,
                DeltaTableError::ObjectStore { .. }
                    | DeltaTableError::Io { .. }
                    | DeltaTableError::VersionAlreadyExists(_)
            ),
            LakeError::Catalog(_) | LakeError::Definite(_) => false,
        }
    }
}

impl From<deltalake::arrow::error::ArrowError> for LakeError {
    fn from(e: deltalake::arrow::error::ArrowError) -> Self {
        LakeError::Definite(format!("schema: {e}"))
    }
}

impl From<deltalake::datafusion::error::DataFusionError> for LakeError {
    fn from(e: deltalake::datafusion::error::DataFusionError) -> Self {
        LakeError::Definite(format!("query engine: {e}"))
    }
}

/// Storage options for deltalake/object_store from the lake config (S3 endpoint override, region, …).
pub fn storage_options(cfg: &LakeConfig) -> HashMap<String, String> {
    static S3_HANDLERS: std::sync::Once = std::sync::Once::new();
    S3_HANDLERS.call_once(|| deltalake::aws::register_handlers(None));
    let mut o = HashMap::new();
    if let Some(s3) = &cfg.s3 {
        if let Some(endpoint) = &s3.endpoint {
            o.insert("AWS_ENDPOINT_URL".into(), endpoint.clone());
            if endpoint.starts_with("http://") {
                o.insert("AWS_ALLOW_HTTP".into(), "true".into());
            }
        }
        if let Some(region) = &s3.region {
            o.insert("AWS_REGION".into(), region.clone());
        }
        // Commits rely on S3 conditional PUT (If-None-Match), deltalake's default: no lock table needed.
    }
    o
}

/// Where the resume checkpoint is kept: `<root>/_binlake/<connector>.checkpoint.json`.
pub struct ResumeMarker {
    store: deltalake::logstore::ObjectStoreRef,
    path: deltalake::Path,
}

impl ResumeMarker {
    pub fn new(cfg: &LakeConfig, connector: &str) -> Result<Self, LakeError> {
        let uri = format!("{}/_binlake", cfg.root.trim_end_matches('/'));
        let url = deltalake::ensure_table_uri(&uri)?;
        let table = deltalake::DeltaTableBuilder::from_url(url)?
            .with_storage_options(storage_options(cfg))
            .build()?;
        Ok(ResumeMarker {
            store: table.object_store(),
            path: deltalake::Path::from(format!("{connector}.checkpoint.json")),
        })
    }

    pub async fn load(&self) -> Result<Option<Checkpoint>, LakeError> {
        match self.store.get(&self.path).await {
            Ok(r) => {
                let bytes = r.bytes().await?;
                serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                    LakeError::Definite(format!(
                        "resume checkpoint {} is corrupt: {e}; remove it to re-snapshot",
                        self.path
                    ))
                })
            }
            Err(deltalake::ObjectStoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn save(&self, cp: &Checkpoint) -> Result<(), LakeError> {
        let bytes = serde_json::to_vec_pretty(cp).expect("checkpoint serializes");
        self.store.put(&self.path, bytes.into()).await?;
        Ok(())
    }
}

/// `<root>/<db>/<table>`
pub fn table_uri(cfg: &LakeConfig, database: &str, table: &str) -> String {
    format!("{}/{}/{}", cfg.root.trim_end_matches('/'), database, table)
}

pub fn app_id(connector: &str) -> String {
    format!("binlake:{connector}")
}
