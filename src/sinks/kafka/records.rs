//! The records besides change events, shaped as Debezium's: schema changes on `<topic_prefix>`,
//! transaction BEGIN/END on `<topic_prefix>.transaction`, heartbeats. Schema-change records also carry
//! binlake's own `TableSchema` under `binlake.schema`, from which `binlake sink` rebuilds the table.

use crate::event::{ColumnKind, ColumnSchema, SchemaChange, TableId, TableSchema};
use serde_json::{json, Value as Json};
use std::sync::Arc;

/// Debezium's topic names for a prefix.
pub struct Topics {
    pub prefix: String,
}

impl Topics {
    /// `<prefix>.<db>.<table>`, the names encoded by `names::encode` (unchanged for ordinary names).
    pub fn table(&self, id: &TableId) -> Result<String, crate::names::NameError> {
        Ok(format!(
            "{}.{}.{}",
            self.prefix,
            crate::names::encode(&id.database)?,
            crate::names::encode(&id.table)?
        ))
    }
    pub fn schema_changes(&self) -> String {
        self.prefix.clone()
    }
    pub fn transactions(&self) -> String {
        format!("{}.transaction", self.prefix)
    }
    pub fn offsets(&self) -> String {
        format!("{}.binlake.offsets", self.prefix)
    }
    pub fn dead_letters(&self) -> String {
        format!("{}.binlake.dlq", self.prefix)
    }
    pub fn heartbeat(&self) -> String {
        format!("__debezium-heartbeat.{}", self.prefix)
    }
}

/// java.sql.Types of a column, as Debezium's schema history records it.
fn jdbc_type(col: &ColumnSchema) -> i32 {
    match col.kind {
        ColumnKind::TinyInt => -6,
        ColumnKind::SmallInt => 5,
        ColumnKind::MediumInt | ColumnKind::Int => 4,
        ColumnKind::BigInt => -5,
        ColumnKind::Float => 7,
        ColumnKind::Double => 8,
        ColumnKind::Decimal => 3,
        ColumnKind::Date => 91,
        ColumnKind::DateTime | ColumnKind::Timestamp => 93,
        ColumnKind::Time => 92,
        ColumnKind::Year => 4,
        ColumnKind::Bit => -7,
        ColumnKind::Enum | ColumnKind::Set => 1,
        ColumnKind::Text => 12,
        ColumnKind::Binary => -3,
        ColumnKind::Json | ColumnKind::Geometry | ColumnKind::Vector => 1111,
    }
}

pub fn schema_change_key(sc: &SchemaChange) -> Json {
    json!({ "databaseName": sc.schema.database })
}

/// A schema-change record: Debezium's `tableChanges` plus binlake's schema.
pub fn schema_change_value(sc: &SchemaChange, server_name: &str) -> Json {
    let schema = &sc.schema;
    let columns: Vec<Json> = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "name": c.name,
                "jdbcType": jdbc_type(c),
                "typeName": format!("{:?}", c.kind).to_ascii_uppercase(),
                "typeExpression": c.sql_type,
                "charsetName": c.charset,
                "length": c.precision,
                "scale": c.scale,
                "position": i + 1,
                "optional": c.nullable,
                "autoIncremented": false,
                "generated": false,
                "enumValues": if c.members.is_empty() { Json::Null } else { json!(c.members) },
            })
        })
        .collect();
    let key_names: Vec<&str> = schema
        .key
        .iter()
        .map(|&i| schema.columns[i].name.as_str())
        .collect();
    json!({
        "source": {
            "version": crate::sinks::envelope::CONNECTOR_VERSION,
            "connector": "mysql",
            "name": server_name,
            "ts_ms": sc.source.ts_ms,
            "snapshot": if sc.source.snapshot { "true" } else { "false" },
            "db": schema.database,
            "table": schema.table,
            "server_id": sc.source.server_id,
            "gtid": sc.source.gtid,
            "file": sc.source.position.file,
            "pos": sc.source.position.pos,
        },
        "ts_ms": sc.source.ts_ms,
        "databaseName": schema.database,
        "schemaName": null,
        "ddl": sc.ddl,
        "tableChanges": [{
            "type": change_type(&sc.ddl),
            "id": format!("\"{}\".\"{}\"", schema.database, schema.table),
            "table": {
                "defaultCharsetName": null,
                "primaryKeyColumnNames": key_names,
                "columns": columns,
            }
        }],
        "binlake": { "schema": **schema },
    })
}

/// Debezium's `tableChanges[].type`: from the statement; a schema announced without one (a snapshot,
/// a table first met in the stream) is a CREATE for its readers.
fn change_type(ddl: &str) -> &'static str {
    let first = ddl
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    match first.as_str() {
        "" | "CREATE" => "CREATE",
        "DROP" => "DROP",
        _ => "ALTER",
    }
}

/// What a transaction held, for its END record.
#[derive(Debug, Default)]
pub struct TxCounts {
    pub id: String,
    pub ts_ms: i64,
    pub total: u64,
    /// Events per table, in first-seen order; a transaction touches few tables, so a list searched by
    /// name costs less than building a map key for every event.
    pub per_table: Vec<(Arc<TableSchema>, u64)>,
}

impl TxCounts {
    /// Counts one event of `table`; returns its order among that table's events in the transaction.
    pub fn count(&mut self, table: &Arc<TableSchema>) -> u64 {
        self.total += 1;
        let same = |t: &TableSchema| {
            std::ptr::eq(t, &**table) || (t.database == table.database && t.table == table.table)
        };
        match self.per_table.iter_mut().find(|(t, _)| same(t)) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.per_table.push((table.clone(), 1));
                1
            }
        }
    }
}

pub fn tx_key(id: &str) -> Json {
    json!({ "id": id })
}

pub fn tx_begin(tx: &TxCounts) -> Json {
    json!({"status": "BEGIN", "id": tx.id, "ts_ms": tx.ts_ms, "event_count": null, "data_collections": null})
}

pub fn tx_end(tx: &TxCounts) -> Json {
    let collections: Vec<Json> = tx
        .per_table
        .iter()
        .map(|(t, n)| json!({"data_collection": t.id().to_string(), "event_count": n}))
        .collect();
    json!({"status": "END", "id": tx.id, "ts_ms": tx.ts_ms, "event_count": tx.total,
           "data_collections": collections})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_encode_odd_identifiers() {
        let t = Topics {
            prefix: "stocks".into(),
        };
        assert_eq!(
            t.table(&TableId::new("stocks", "quotes")).unwrap(),
            "stocks.stocks.quotes"
        );
        // `.` in a name can never make two tables share a topic
        assert_eq!(
            t.table(&TableId::new("a.b", "c")).unwrap(),
            "stocks._a_2eb.c"
        );
        assert_eq!(
            t.table(&TableId::new("a", "b.c")).unwrap(),
            "stocks.a._b_2ec"
        );
        assert_eq!(
            t.table(&TableId::new("x", "Quotes")).unwrap(),
            "stocks.x.__51uotes"
        );
        assert!(t.table(&TableId::new("x", "")).is_err());
        for name in [
            t.offsets(),
            t.dead_letters(),
            t.transactions(),
            t.heartbeat(),
        ] {
            assert!(crate::config::kafka::is_topic_safe(&name), "{name}");
        }
    }

    #[test]
    fn transaction_counts_per_table() {
        let mut tx = TxCounts {
            id: "0-1-7".into(),
            ..Default::default()
        };
        let table = |name: &str| {
            Arc::new(TableSchema {
                database: "s".into(),
                table: name.into(),
                columns: vec![],
                key: vec![],
                version: 1,
            })
        };
        let (q, t) = (table("quotes"), table("trades"));
        assert_eq!(tx.count(&q), 1);
        assert_eq!(tx.count(&t), 1);
        assert_eq!(tx.count(&q), 2);
        let end = tx_end(&tx);
        assert_eq!(end["event_count"], 3);
        assert_eq!(
            end["data_collections"][0],
            json!({"data_collection": "s.quotes", "event_count": 2})
        );
        assert_eq!(tx_begin(&tx)["status"], "BEGIN");
    }
}
