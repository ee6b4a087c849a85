//! `binlake query "SQL"`: DataFusion over every Delta table under the lake root, named `db.table`, so
//! results can be checked without Athena.

use super::{storage_options, LakeError};
use crate::config::LakeConfig;
use deltalake::datafusion::catalog::MemorySchemaProvider;
use deltalake::datafusion::prelude::{DataFrame, SessionContext};
use std::sync::Arc;

/// Lists `(database, table)` pairs (MySQL's names) that hold a Delta log under the root.
pub async fn list_tables(cfg: &LakeConfig) -> Result<Vec<(String, String)>, LakeError> {
    let url = deltalake::ensure_table_uri(&cfg.root)?;
    let store = deltalake::DeltaTableBuilder::from_url(url)?
        .with_storage_options(storage_options(cfg))
        .build()?
        .object_store();
    let mut out = vec![];
    for db in store.list_with_delimiter(None).await?.common_prefixes {
        // folders that are no encoded name (binlake's own `_binlake`, anything else) hold no table
        let Some(db_name) = db.filename().and_then(crate::names::decode) else {
            continue;
        };
        for table in store.list_with_delimiter(Some(&db)).await?.common_prefixes {
            let log = table.clone().join("_delta_log");
            let Some(table_name) = table.filename().and_then(crate::names::decode) else {
                continue;
            };
            if !store
                .list_with_delimiter(Some(&log))
                .await?
                .objects
                .is_empty()
            {
                out.push((db_name.clone(), table_name));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A DataFusion session with every lake table registered under MySQL's names: `db.table`, or
/// `"My DB"."Odd.Table"` in double quotes for names with capitals or other characters.
pub async fn session(cfg: &LakeConfig) -> Result<SessionContext, LakeError> {
    let ctx = SessionContext::new();
    let catalog = ctx.catalog("datafusion").expect("default catalog");
    for (db, table) in list_tables(cfg).await? {
        if catalog.schema(&db).is_none() {
            catalog.register_schema(&db, Arc::new(MemorySchemaProvider::new()))?;
        }
        let uri = super::table_uri(cfg, &db, &table)?;
        let url = deltalake::ensure_table_uri(&uri)?;
        let t = deltalake::DeltaTable::try_from_url_with_storage_options(url, storage_options(cfg))
            .await?;
        t.update_datafusion_session(&ctx.state())?;
        ctx.register_table(
            deltalake::datafusion::common::TableReference::partial(db.as_str(), table.as_str()),
            t.table_provider().await?,
        )?;
    }
    // binlake's own quality results, under the name Glue gives them
    let uri = format!(
        "{}/{}",
        cfg.root.trim_end_matches('/'),
        super::quality::RESULTS_DIR
    );
    let url = deltalake::ensure_table_uri(&uri)?;
    let t =
        deltalake::DeltaTable::try_from_url_with_storage_options(url, storage_options(cfg)).await?;
    if t.version().is_some() {
        let db = super::quality::RESULTS_DATABASE;
        if catalog.schema(db).is_none() {
            catalog.register_schema(db, Arc::new(MemorySchemaProvider::new()))?;
        }
        t.update_datafusion_session(&ctx.state())?;
        ctx.register_table(
            deltalake::datafusion::common::TableReference::partial(
                db,
                super::quality::RESULTS_TABLE,
            ),
            t.table_provider().await?,
        )?;
    }
    Ok(ctx)
}

pub async fn sql(cfg: &LakeConfig, query: &str) -> Result<DataFrame, LakeError> {
    Ok(session(cfg).await?.sql(query).await?)
}
