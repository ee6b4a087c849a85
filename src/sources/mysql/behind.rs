//! How far the binlog reader is behind the server, in bytes: the rest of the file it reads plus every
//! newer binlog file (`SHOW BINARY LOGS` gives each file's size; the newest one's is the server's
//! current position).

use super::{connect, timed, SourceError};
use crate::config::SourceConfig;
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// The server's binlog files and their sizes, oldest first.
pub async fn binlog_sizes(cfg: &SourceConfig) -> Result<Vec<(String, u64)>, SourceError> {
    let mut conn = connect(cfg).await?;
    let limit = Duration::from_secs(cfg.query_timeout_secs);
    // MySQL 8 adds an Encrypted column: read the first two by position
    let rows: Vec<mysql_async::Row> =
        timed(limit, "SHOW BINARY LOGS", conn.query("SHOW BINARY LOGS")).await?;
    conn.disconnect().await.ok();
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r.get::<String, _>(0)?, r.get::<u64, _>(1)?)))
        .collect())
}

/// Bytes after `reader` (file, position) in `logs`; `None` when the reader's file is not among them
/// (purged, or a different server).
pub fn bytes_behind(reader: (&str, u64), logs: &[(String, u64)]) -> Option<u64> {
    let at = logs.iter().position(|(f, _)| f == reader.0)?;
    let rest_of_file = logs[at].1.saturating_sub(reader.1);
    Some(rest_of_file + logs[at + 1..].iter().map(|(_, size)| size).sum::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_of_the_file_plus_every_newer_one() {
        let logs = vec![
            ("mysql-bin.000001".to_string(), 1000),
            ("mysql-bin.000002".to_string(), 500),
            ("mysql-bin.000003".to_string(), 300),
        ];
        assert_eq!(bytes_behind(("mysql-bin.000003", 300), &logs), Some(0));
        assert_eq!(bytes_behind(("mysql-bin.000003", 100), &logs), Some(200));
        assert_eq!(
            bytes_behind(("mysql-bin.000001", 900), &logs),
            Some(100 + 500 + 300)
        );
        assert_eq!(bytes_behind(("mysql-bin.000000", 4), &logs), None);
    }
}
