//! The source side of the parity check: one table read in key order, chunk by chunk, inside one
//! consistent snapshot whose binlog position is known, so the lake can be compared at that position.

use super::decode::from_snapshot;
use super::schema::{load_tables, CapturedTable};
use super::snapshot::{
    after_key_params, after_key_predicate, open_consistent_snapshot, select_parts, to_param,
};
use super::{connect, ServerInfo, SourceError};
use crate::config::SourceConfig;
use crate::config::TableFilter;
use crate::event::{BinlogPosition, TableId, Value};
use mysql_async::prelude::*;
use mysql_async::Conn;
use std::time::Duration;

/// One table under a consistent snapshot.
pub struct SnapshotReader {
    conn: Conn,
    pub table: CapturedTable,
    pub position: BinlogPosition,
    select: String,
    from: String,
    key_cols: Vec<String>,
    timeout: Duration,
}

impl SnapshotReader {
    /// Opens a snapshot of `id` (None: the table does not exist or is not captured).
    pub async fn open(
        cfg: &SourceConfig,
        filter: &TableFilter,
        id: &TableId,
    ) -> Result<Option<Self>, SourceError> {
        let mut conn = connect(cfg).await?;
        let info = ServerInfo::read(&mut conn).await?;
        let (position, _) = open_consistent_snapshot(&mut conn, &info).await?;
        let Some(schema) = load_tables(&mut conn, filter, &cfg.keys, Some(id))
            .await?
            .remove(id)
        else {
            return Ok(None);
        };
        let table = CapturedTable::new(schema, filter)?;
        let (key_cols, cols, from) = select_parts(&table);
        Ok(Some(SnapshotReader {
            conn,
            table,
            position,
            select: cols.join(", "),
            from,
            key_cols,
            timeout: Duration::from_secs(cfg.query_timeout_secs),
        }))
    }

    /// Rows in the table at the snapshot.
    pub async fn count(&mut self) -> Result<u64, SourceError> {
        let sql = format!("SELECT COUNT(*) FROM {}", self.from);
        let what = format!("row count of {}", self.table.full.id());
        let n: Option<u64> = timed(self.timeout, what, self.conn.query_first(sql)).await?;
        Ok(n.unwrap_or(0))
    }

    /// Up to `limit` rows (projected, as captured) after `after` in key order.
    pub async fn chunk(
        &mut self,
        after: Option<&[Value]>,
        limit: usize,
    ) -> Result<Vec<Vec<Value>>, SourceError> {
        let order = self.key_cols.join(", ");
        let (sql, params) = match after {
            None => (
                format!(
                    "SELECT {} FROM {} ORDER BY {order} LIMIT {limit}",
                    self.select, self.from
                ),
                vec![],
            ),
            Some(key) => (
                format!(
                    "SELECT {} FROM {} WHERE {} ORDER BY {order} LIMIT {limit}",
                    self.select,
                    self.from,
                    after_key_predicate(&self.key_cols)
                ),
                after_key_params(key),
            ),
        };
        self.read(&sql, params).await
    }

    /// The rows (projected) whose keys are among `keys`.
    pub async fn rows_with_keys(
        &mut self,
        keys: &[Vec<Value>],
    ) -> Result<Vec<Vec<Value>>, SourceError> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        let one = format!("({})", vec!["?"; self.key_cols.len()].join(", "));
        let sql = format!(
            "SELECT {} FROM {} WHERE ({}) IN ({})",
            self.select,
            self.from,
            self.key_cols.join(", "),
            vec![one; keys.len()].join(", ")
        );
        let params = keys.iter().flatten().map(to_param).collect();
        self.read(&sql, params).await
    }

    async fn read(
        &mut self,
        sql: &str,
        params: Vec<mysql_async::Value>,
    ) -> Result<Vec<Vec<Value>>, SourceError> {
        let id = self.table.full.id();
        let what = format!("parity read of {id}");
        let rows: Vec<mysql_async::Row> =
            timed(self.timeout, what, self.conn.exec(sql, params)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let values: Vec<mysql_async::Value> = row.unwrap();
            let mut full = Vec::with_capacity(values.len());
            for (col, v) in self.table.full.columns.iter().zip(values) {
                full.push(from_snapshot(col, v).map_err(|e| SourceError::Decode {
                    table: id.clone(),
                    detail: format!("`{}`: {}", col.name, e.0),
                })?);
            }
            out.push(self.table.project(full));
        }
        Ok(out)
    }

    /// Ends the snapshot transaction.
    pub async fn close(mut self) -> Result<(), SourceError> {
        timed(
            self.timeout,
            "COMMIT".into(),
            self.conn.query_drop("COMMIT"),
        )
        .await?;
        self.conn.disconnect().await.map_err(SourceError::from)
    }
}

async fn timed<T>(
    timeout: Duration,
    what: String,
    f: impl std::future::Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, SourceError> {
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| SourceError::Timeout {
            what,
            secs: timeout.as_secs(),
        })?
        .map_err(SourceError::from)
}
