//! Compaction and vacuum: on demand (`binlake maintain`) and on a schedule, as a task of its own beside
//! ingestion so a long compaction never holds up a batch. A concurrent MERGE and a compaction are two Delta
//! writers: whichever commits second gets a conflict and applies its work again on the new version.

use super::query::list_tables;
use super::table::{LakeTable, Maintenance};
use super::{app_id, storage_options, table_uri, LakeError, LakeErrorKind};
use crate::config::LakeConfig;
use crate::retry::Backoff;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Compacts and vacuums one table, applying the work again when another writer commits first.
pub async fn maintain_table(
    cfg: &LakeConfig,
    connector: &str,
    database: &str,
    table: &str,
) -> Result<Maintenance, LakeError> {
    let mut conflict = Backoff::conflict();
    let mut transient = Backoff::transient();
    loop {
        let result = async {
            let url = deltalake::ensure_table_uri(table_uri(cfg, database, table)?)?;
            let t =
                deltalake::DeltaTable::try_from_url_with_storage_options(url, storage_options(cfg))
                    .await?;
            let mut lt =
                LakeTable::wrap(t, cfg.soft_delete, &cfg.metadata_prefix, app_id(connector))?;
            lt.maintain(cfg.target_file_mb, cfg.vacuum_retention_hours)
                .await
        }
        .await;
        let e = match result {
            Ok(m) => return Ok(m),
            Err(e) => e,
        };
        let (wait, kind) = match e.kind() {
            LakeErrorKind::Conflict => (conflict.next_delay(), "conflict"),
            LakeErrorKind::Transient => (transient.next_delay(), "transient"),
            LakeErrorKind::Definite => (None, "definite"),
        };
        crate::observe::error("maintenance", kind);
        let Some(wait) = wait else { return Err(e) };
        tracing::info!(table = %format!("{database}.{table}"), error = %e, "maintenance conflicted or failed; trying again");
        tokio::time::sleep(wait).await;
    }
}

/// `binlake maintain`: every table under the root; one report line per table.
pub async fn maintain_all(cfg: &LakeConfig, connector: &str) -> Result<Vec<String>, LakeError> {
    let mut report = vec![];
    for (db, table) in list_tables(cfg).await? {
        let m = maintain_table(cfg, connector, &db, &table).await?;
        report.push(format!(
            "{db}.{table}: compacted {} files into {}, vacuumed {} files",
            m.files_removed, m.files_added, m.files_vacuumed
        ));
    }
    Ok(report)
}

/// Runs maintenance every `lake.maintain_interval_secs` until `stop`; failures are logged, not fatal
/// (nothing is lost when a compaction does not happen).
pub fn spawn_scheduled(
    cfg: LakeConfig,
    connector: String,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_secs(cfg.maintain_interval_secs);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            let tables = match list_tables(&cfg).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "maintenance: cannot list the lake tables; will retry next interval");
                    continue;
                }
            };
            for (db, table) in tables {
                if stop.is_cancelled() {
                    return;
                }
                match maintain_table(&cfg, &connector, &db, &table).await {
                    Ok(m) => {
                        tracing::info!(table = %format!("{db}.{table}"), compacted = m.files_removed, into = m.files_added, vacuumed = m.files_vacuumed, "maintenance")
                    }
                    Err(e) => {
                        tracing::warn!(table = %format!("{db}.{table}"), error = %e, "maintenance failed; will retry next interval")
                    }
                }
            }
        }
    })
}
