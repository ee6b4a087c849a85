//! Reads the chunks of snapshots taken while the stream runs (`binlog/incremental.rs` decides which
//! and when to hand them over): each chunk in a consistent-snapshot transaction of its own, whose binlog
//! position is the chunk's watermark.

use super::binlog::incremental::{Chunk, ChunkRequest};
use super::decode::from_snapshot;
use super::schema::{load_tables, CapturedTable};
use super::snapshot::{
    after_key_params, after_key_predicate, open_consistent_snapshot, select_parts,
};
use super::{connect, ServerInfo, SourceError};
use crate::config::{SourceConfig, TableFilter};
use mysql_async::prelude::*;
use std::time::Duration;

/// Owns the connection chunks are read on, between reads (it moves into the read's task and back).
pub struct ChunkReader {
    cfg: SourceConfig,
    filter: TableFilter,
    info: ServerInfo,
    conn: Option<mysql_async::Conn>,
}

impl ChunkReader {
    pub fn new(cfg: &SourceConfig, filter: &TableFilter, info: &ServerInfo) -> Self {
        ChunkReader {
            cfg: cfg.clone(),
            filter: filter.clone(),
            info: info.clone(),
            conn: None,
        }
    }

    /// Reads one chunk; the connection is dropped after an error and made again for the next read.
    pub async fn read(mut self, request: ChunkRequest) -> (Self, Result<Chunk, SourceError>) {
        let timeout = Duration::from_secs(self.cfg.query_timeout_secs);
        let result = match tokio::time::timeout(timeout, self.read_chunk(&request)).await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Timeout {
                what: format!("snapshot chunk of {}", request.table),
                secs: timeout.as_secs(),
            }),
        };
        if result.is_err() {
            self.conn = None;
        }
        (self, result)
    }

    async fn read_chunk(&mut self, request: &ChunkRequest) -> Result<Chunk, SourceError> {
        if self.conn.is_none() {
            let mut conn = connect(&self.cfg).await?;
            conn.query_drop("SET SESSION net_write_timeout = 3600")
                .await?;
            self.conn = Some(conn);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let id = &request.table;
        let (position, _) = open_consistent_snapshot(conn, &self.info).await?;
        // the definition inside the transaction: an ALTER after it fails the SELECT, and the chunk is
        // asked for again
        let Some(schema) = load_tables(conn, &self.filter, &self.cfg.keys, Some(id))
            .await?
            .remove(id)
        else {
            conn.query_drop("ROLLBACK").await?;
            return Ok(Chunk {
                request: request.id,
                table: id.clone(),
                captured: None,
                rows: vec![],
                position,
                last_key: None,
            });
        };
        let table = CapturedTable::new(schema, &self.filter)?;
        let chunk_rows = self.cfg.snapshot.chunk_size as usize;
        let max_bytes = (self.cfg.snapshot.chunk_max_mb as usize) << 20;
        let (key_cols, cols, from) = select_parts(&table);
        let order = key_cols.join(", ");
        let (sql, params) = match &request.after {
            None => (
                format!(
                    "SELECT {} FROM {from} ORDER BY {order} LIMIT {chunk_rows}",
                    cols.join(", ")
                ),
                vec![],
            ),
            Some(key) => (
                format!(
                    "SELECT {} FROM {from} WHERE {} ORDER BY {order} LIMIT {chunk_rows}",
                    cols.join(", "),
                    after_key_predicate(&key_cols)
                ),
                after_key_params(key),
            ),
        };
        // rows are decoded as they arrive, and the chunk ends early past `chunk_max_mb`: wide rows stay
        // bounded in memory (the rest of the result is read and dropped)
        let mut result = conn.exec_iter(sql, params).await?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut cut = false;
        while let Some(row) = result.next().await? {
            let values: Vec<mysql_async::Value> = row.unwrap();
            let mut full = Vec::with_capacity(values.len());
            for (col, v) in table.full.columns.iter().zip(values) {
                full.push(from_snapshot(col, v).map_err(|e| SourceError::Decode {
                    table: id.clone(),
                    detail: format!("`{}` in snapshot: {}", col.name, e.0),
                })?);
            }
            bytes += full
                .iter()
                .map(crate::event::Value::approx_bytes)
                .sum::<usize>();
            out.push(full);
            if bytes >= max_bytes {
                cut = true;
                break;
            }
        }
        drop(result);
        conn.query_drop("COMMIT").await?;
        let complete = !cut && out.len() < chunk_rows;
        let last_key = if complete {
            None
        } else {
            out.last().map(|r| table.full.key_of(r))
        };
        Ok(Chunk {
            request: request.id,
            table: id.clone(),
            captured: Some(table),
            rows: out,
            position,
            last_key,
        })
    }
}
