//! The lake stage: change events → micro-batches → one MERGE per Delta table per batch, exactly once.
//! Progress lives in the lake itself: each commit carries a `txn` action (app id `binlake:<connector>`,
//! version = last `_seq`) plus the source position in its metadata, and after every batch the resume
//! checkpoint is written to `<root>/_binlake/<connector>.checkpoint.json`. On start the source resumes
//! from that checkpoint and each table skips the `_seq`s it already has.

pub mod arrow;
pub mod batch;
pub mod collapse;
pub mod from_kafka;
pub mod glue;
pub mod maintenance;
pub mod merge;
pub mod metadata;
mod parity;
pub mod partition;
pub mod quality;
pub mod query;
pub mod table;
pub mod tables;
pub mod validate;
mod validate_report;
mod validate_time;

use crate::config::LakeConfig;
use crate::event::progress::Checkpoint;
use deltalake::arrow::error::ArrowError;
use deltalake::datafusion::error::DataFusionError;
use deltalake::DeltaTableError;
use object_store::ObjectStoreExt;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("Delta: {0}")]
    Delta(#[from] DeltaTableError),
    #[error("lake storage: {0}")]
    Storage(#[from] deltalake::ObjectStoreError),
    /// DataFusion running a MERGE or a query; may wrap storage I/O.
    #[error("query engine: {0}")]
    QueryEngine(#[from] DataFusionError),
    #[error("schema: {0}")]
    Schema(#[from] ArrowError),
    #[error("catalog: {detail}")]
    Catalog { detail: String, transient: bool },
    #[error("table name: {0}")]
    Name(#[from] crate::names::NameError),
    /// A quality expectation that does not fit its table, or a `stop` expectation that failed.
    #[error("{0}")]
    Quality(#[from] crate::transforms::quality::QualityError),
    /// The table cannot go on without an operator; the message says why and how to fix it.
    #[error("{0}")]
    Definite(String),
    /// The consumer handed over a record before one it handed over already: nothing is applied from
    /// it, and the partitions are read again from Delta's position. The same rewind again after that is
    /// the log itself out of order (`OffsetRewound`).
    #[error("{topic}[{partition}]: offset {got} came after {after}; reading again from Delta's position")]
    Rewound {
        topic: String,
        partition: i32,
        after: i64,
        got: i64,
    },
    /// The broker delivered a partition's records out of offset order, at the same place each time it
    /// was read again. Offsets recorded in Delta would then cover records never applied: definite. Kafka and MSK never do this; a Kafka-compatible broker
    /// that stores concurrent produce requests out of order can (tansu does).
    #[error(
        "{topic}[{partition}]: the broker delivered offset {got} after {after}. Records out of offset order \
         break exactly-once (Delta records the last offset written), so the sink stops. Kafka and MSK keep \
         offset order; with another broker, publish with one request in flight (kafka.producer.idempotence = \
         false) and re-publish the topics"
    )]
    OffsetRewound {
        topic: String,
        partition: i32,
        after: i64,
        got: i64,
    },
    /// A partition's first record after its start is past the start offset on a topic that is not
    /// compacted: the broker skipped records (tansu does when the start is inside a record batch). The
    /// partition is read again from its first offset.
    #[error("{topic}[{partition}]: started at offset {start} but the first record is {got}; reading it again from its first offset")]
    StartGap {
        topic: String,
        partition: i32,
        start: i64,
        got: i64,
    },
    /// The same, with the partition read from its first offset: the records are gone from the topic.
    #[error(
        "{topic}[{partition}]: Delta holds offsets up to {}, but the topic's records resume at {got}: offsets \
         {start}..{got} are no longer on the topic (retention shorter than the sink's lag?). Those changes \
         cannot reach the lake from this topic; keep topics longer than the sink can lag, and start the \
         publisher over with a fresh snapshot (a tombstone for the connector's key on its offsets topic)",
        start - 1
    )]
    RecordsGone {
        topic: String,
        partition: i32,
        start: i64,
        got: i64,
    },
}

/// How the lake stage treats an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LakeErrorKind {
    /// I/O, throttling, a lost connection: retry with backoff.
    Transient,
    /// Another writer committed first: reload the table and apply the batch again.
    Conflict,
    /// Retrying cannot help.
    Definite,
}

impl LakeError {
    pub fn kind(&self) -> LakeErrorKind {
        use LakeErrorKind::*;
        match self {
            LakeError::Storage(_) | LakeError::Rewound { .. } | LakeError::StartGap { .. } => {
                Transient
            }
            LakeError::Delta(e) => delta_kind(e),
            LakeError::QueryEngine(e) => datafusion_kind(e),
            LakeError::Schema(e) => arrow_kind(e),
            LakeError::Catalog { transient, .. } => {
                if *transient {
                    Transient
                } else {
                    Definite
                }
            }
            LakeError::Definite(_)
            | LakeError::Name(_)
            | LakeError::Quality(_)
            | LakeError::OffsetRewound { .. }
            | LakeError::RecordsGone { .. } => Definite,
        }
    }

    /// Transient errors and commit conflicts are retried; everything else stops the pipeline.
    pub fn is_transient(&self) -> bool {
        self.kind() != LakeErrorKind::Definite
    }
}

fn delta_kind(e: &DeltaTableError) -> LakeErrorKind {
    use deltalake::kernel::transaction::TransactionError as T;
    use LakeErrorKind::*;
    match e {
        DeltaTableError::VersionAlreadyExists(_) | DeltaTableError::VersionMismatch(..) => Conflict,
        DeltaTableError::Transaction { source } => match source {
            T::CommitConflict(_) | T::MaxCommitAttempts(_) | T::VersionAlreadyExists(_) => Conflict,
            T::ObjectStore { .. } | T::LogStoreError { .. } => Transient,
            _ => Definite,
        },
        DeltaTableError::ObjectStore { .. } | DeltaTableError::Io { .. } => Transient,
        DeltaTableError::Parquet { source } => match source {
            deltalake::parquet::errors::ParquetError::External(inner) => {
                external_kind(inner.as_ref())
            }
            _ => Definite,
        },
        DeltaTableError::Arrow { source } => arrow_kind(source),
        DeltaTableError::GenericError { source } => external_kind(source.as_ref()),
        _ => Definite,
    }
}

fn datafusion_kind(e: &DataFusionError) -> LakeErrorKind {
    use LakeErrorKind::*;
    match e {
        DataFusionError::ObjectStore(_) | DataFusionError::IoError(_) => Transient,
        DataFusionError::ArrowError(a, _) => arrow_kind(a),
        DataFusionError::ParquetError(p) => match p.as_ref() {
            deltalake::parquet::errors::ParquetError::External(inner) => {
                external_kind(inner.as_ref())
            }
            _ => Definite,
        },
        DataFusionError::External(inner) => external_kind(inner.as_ref()),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            datafusion_kind(inner)
        }
        DataFusionError::Shared(inner) => datafusion_kind(inner),
        _ => Definite,
    }
}

fn arrow_kind(e: &ArrowError) -> LakeErrorKind {
    match e {
        ArrowError::IoError(..) => LakeErrorKind::Transient,
        ArrowError::ExternalError(inner) => external_kind(inner.as_ref()),
        _ => LakeErrorKind::Definite,
    }
}

/// Errors that reach us boxed (DataFusion and Parquet wrap storage errors this way).
fn external_kind(e: &(dyn std::error::Error + Send + Sync + 'static)) -> LakeErrorKind {
    if let Some(d) = e.downcast_ref::<DeltaTableError>() {
        delta_kind(d)
    } else if let Some(d) = e.downcast_ref::<DataFusionError>() {
        datafusion_kind(d)
    } else if e.downcast_ref::<deltalake::ObjectStoreError>().is_some()
        || e.downcast_ref::<std::io::Error>().is_some()
    {
        LakeErrorKind::Transient
    } else {
        LakeErrorKind::Definite
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

/// `<root>/<db>/<table>`, each name in the lake's safe encoding (`crate::names`): whatever MySQL calls
/// a table, its files stay under the root and apart from every other table's.
pub fn table_uri(cfg: &LakeConfig, database: &str, table: &str) -> Result<String, LakeError> {
    table_uri_raw(&cfg.root, database, table)
}

pub fn table_uri_raw(root: &str, database: &str, table: &str) -> Result<String, LakeError> {
    Ok(format!(
        "{}/{}/{}",
        root.trim_end_matches('/'),
        crate::names::encode(database)?,
        crate::names::encode(table)?
    ))
}

pub fn app_id(connector: &str) -> String {
    format!("binlake:{connector}")
}
