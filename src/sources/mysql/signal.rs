//! `binlake snapshot`: asks a running connector to snapshot tables again, by inserting an
//! `execute-snapshot` row into its signal table (`source.signal_table`). The connector reads the row
//! from the binlog, in order with the changes around it, so the request needs no other channel to the
//! running process and works the same for every sink.

use super::{connect, SourceError};
use crate::config::Config;
use crate::event::TableId;
use mysql_async::prelude::*;

/// The signal table's definition (Debezium's layout), for the error that says it is missing.
pub fn signal_table_ddl(id: &TableId) -> String {
    format!(
        "CREATE TABLE `{}`.`{}` (id VARCHAR(64) PRIMARY KEY, type VARCHAR(32) NOT NULL, data VARCHAR(2048) NULL)",
        id.database.replace('`', "``"),
        id.table.replace('`', "``")
    )
}

/// Writes one `execute-snapshot` signal for `tables` (each `db.table`, captured by `config`); returns
/// the signal's id.
pub async fn request_snapshot(config: &Config, tables: &[String]) -> Result<String, SourceError> {
    let src = &config.source;
    let Some(signal) = src.signal_table() else {
        return Err(SourceError::Config(
            "source.signal_table is not set: binlake snapshot writes its request there. Create the table \
             (`CREATE TABLE db.binlake_signal (id VARCHAR(64) PRIMARY KEY, type VARCHAR(32) NOT NULL, data \
             VARCHAR(2048) NULL)`), set source.signal_table = \"db.binlake_signal\" and restart the connector"
                .into(),
        ));
    };
    let filter = config.filter();
    let mut ids = vec![];
    for t in tables {
        let id = TableId::parse(t)
            .ok_or_else(|| SourceError::Config(format!("`{t}` is not a `database.table` name")))?;
        if !filter.captures(&id.database, &id.table) {
            return Err(SourceError::Config(format!(
                "{id} is not captured by this connector (source.include / source.exclude)"
            )));
        }
        ids.push(id.to_string());
    }
    if ids.is_empty() {
        return Err(SourceError::Config(
            "name at least one table with --table".into(),
        ));
    }
    let id = format!(
        "binlake-{}-{}",
        config.name,
        crate::event::calendar::now_ms()
    );
    let data = serde_json::json!({ "data-collections": ids, "type": "incremental" }).to_string();
    let mut conn = connect(src).await?;
    let sql = format!(
        "INSERT INTO `{}`.`{}` (id, type, data) VALUES (?, 'execute-snapshot', ?)",
        signal.database.replace('`', "``"),
        signal.table.replace('`', "``")
    );
    match conn.exec_drop(sql, (id.clone(), data)).await {
        Ok(()) => Ok(id),
        Err(mysql_async::Error::Server(e)) if e.code == 1146 => Err(SourceError::Config(format!(
            "the signal table {signal} does not exist: {}",
            signal_table_ddl(&signal)
        ))),
        Err(mysql_async::Error::Server(e)) if matches!(e.code, 1142 | 1044) => {
            Err(SourceError::Config(format!(
                "{}: the binlake user may not write the signal table; GRANT INSERT ON {signal} TO it",
                e.message
            )))
        }
        Err(e) => Err(e.into()),
    }
}
