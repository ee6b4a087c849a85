//! `binlake query "SQL"`: DataFusion over every Delta table under the lake root, named `db.table`, so
//! results can be checked without Athena.

use super::{storage_options, LakeError};
use crate::config::LakeConfig;
use deltalake::datafusion::catalog::MemorySchemaProvider;
use deltalake::datafusion::prelude::{DataFrame, SessionContext};
use std::sync::Arc;

/// Lists `(database, table)` pairs that hold a Delta log under the root.
pub async fn list_tables(cfg: &LakeConfig) -> Result<Vec<(String, String)>, LakeError> {
    let url = deltalake::ensure_table_uri(&cfg.root)?;
    let store = deltalake::DeltaTableBuilder::from_url(url)?
        .with_storage_options(storage_options(cfg))
        .build()?
        .object_store();
    let mut out = vec![];
    for db in store.list_with_delimiter(None).await?.common_prefixes {
        let db_name = db.filename().unwrap_or_default().to_string();
        if db_name.starts_with('_') || db_name.is_empty() {
            continue;
        }
        for table in store.list_with_delimiter(Some(&db)).await?.common_prefixes {
            let log = table.clone().join("_delta_log");
            if !store
                .list_with_delimiter(Some(&log))
                .await?
                .objects
                .is_empty()
            {
                out.push((
                    db_name.clone(),
                    table.filename().unwrap_or_default().to_string(),
                ));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A DataFusion session with every lake table registered as `db.table`.
pub async fn session(cfg: &LakeConfig) -> Result<SessionContext, LakeError> {
    let ctx = SessionContext::new();
    let catalog = ctx.catalog("datafusion").expect("default catalog");
    for (db, table) in list_tables(cfg).await? {
        if catalog.schema(&db).is_none() {
            catalog.register_schema(&db, Arc::new(MemorySchemaProvider::new()))?;
        }
        let uri = super::table_uri(cfg, &db, &table);
        let url = deltalake::ensure_table_uri(&uri)?;
        let t = deltalake::DeltaTable::try_from_url_with_storage_options(url, storage_options(cfg))
            .await?;
        t.update_datafusion_session(&ctx.state())?;
        ctx.register_table(format!("{db}.{table}").as_str(), t.table_provider().await?)?;
    }
    Ok(ctx)
}

pub async fn sql(cfg: &LakeConfig, query: &str) -> Result<DataFrame, LakeError> {
    Ok(session(cfg).await?.sql(query).await?)
}

/// `binlake maintain`: compacts and vacuums every table under the root; returns one line per table.
pub async fn maintain_all(cfg: &LakeConfig, connector: &str) -> Result<Vec<String>, LakeError> {
    let mut report = vec![];
    for (db, table) in list_tables(cfg).await? {
        let url = deltalake::ensure_table_uri(super::table_uri(cfg, &db, &table))?;
        let t = deltalake::DeltaTable::try_from_url_with_storage_options(url, storage_options(cfg))
            .await?;
        let mut lt = super::table::LakeTable::wrap(t, cfg.soft_delete, super::app_id(connector))?;
        let m = lt
            .maintain(cfg.target_file_mb, cfg.vacuum_retention_hours)
            .await?;
        report.push(format!(
            "{db}.{table}: compacted {} files into {}, vacuumed {} files",
            m.files_removed, m.files_added, m.files_vacuumed
        ));
    }
    Ok(report)
}
