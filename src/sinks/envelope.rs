//! Debezium-compatible JSON envelope: `before`, `after`, `source{…}`, `op`, `ts_ms`, plus `transaction`
//! and the connector-wide `_seq`. Value renderings are documented in docs/types.md.

use crate::event::calendar::Temporal;
use crate::event::{ChangeEvent, EventSource, Row, SchemaChange, TableSchema, Value};
use base64::Engine;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

pub const CONNECTOR_VERSION: &str = env!("CARGO_PKG_VERSION");

pub struct Envelope<'a> {
    pub event: &'a ChangeEvent,
    pub connector: &'a str,
    pub now_ms: i64,
}

impl Serialize for Envelope<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ev = self.event;
        let mut m = s.serialize_map(Some(7))?;
        m.serialize_entry(
            "before",
            &ev.before.as_ref().map(|r| RowJson(&ev.schema, r)),
        )?;
        m.serialize_entry("after", &ev.after.as_ref().map(|r| RowJson(&ev.schema, r)))?;
        m.serialize_entry(
            "source",
            &SourceJson {
                source: &ev.source,
                schema: &ev.schema,
                connector: self.connector,
                debezium_fields: false,
            },
        )?;
        m.serialize_entry("op", ev.op.code())?;
        m.serialize_entry("ts_ms", &self.now_ms)?;
        let tx = ev.source.gtid.as_ref().map(|id| TxJson {
            id,
            total_order: ev.tx_order,
        });
        m.serialize_entry("transaction", &tx)?;
        m.serialize_entry("_seq", &ev.seq)?;
        if ev.op == crate::event::Op::Drop {
            // a DROP is a truncate on the wire; readers that care can tell them apart
            m.serialize_entry("dropped", &true)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct TxJson<'a> {
    id: &'a str,
    total_order: u64,
}

/// The `source` block. `name` is the connector name (binlake envelope) or Debezium's logical server
/// name, the topic prefix (debezium encoding, which also carries Debezium's always-null `sequence`,
/// `thread` and `query`).
pub struct SourceJson<'a> {
    pub source: &'a EventSource,
    pub schema: &'a TableSchema,
    pub connector: &'a str,
    pub debezium_fields: bool,
}

impl Serialize for SourceJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let src = self.source;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("version", CONNECTOR_VERSION)?;
        m.serialize_entry("connector", "mysql")?;
        m.serialize_entry("name", self.connector)?;
        m.serialize_entry("ts_ms", &src.ts_ms)?;
        m.serialize_entry("snapshot", if src.snapshot { "true" } else { "false" })?;
        m.serialize_entry("db", &self.schema.database)?;
        if self.debezium_fields {
            m.serialize_entry("sequence", &None::<&str>)?;
        }
        m.serialize_entry("table", &self.schema.table)?;
        m.serialize_entry("server_id", &src.server_id)?;
        m.serialize_entry("gtid", &src.gtid)?;
        m.serialize_entry("file", &src.position.file)?;
        m.serialize_entry("pos", &src.position.pos)?;
        m.serialize_entry("row", &src.row)?;
        if self.debezium_fields {
            m.serialize_entry("thread", &None::<i64>)?;
            m.serialize_entry("query", &None::<&str>)?;
        }
        m.end()
    }
}

pub struct RowJson<'a>(pub &'a TableSchema, pub &'a Row);

impl Serialize for RowJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (col, v) in self.0.columns.iter().zip(self.1) {
            if !matches!(v, Value::Absent) {
                m.serialize_entry(&col.name, &ValueJson(v))?;
            }
        }
        m.end()
    }
}

pub struct ValueJson<'a>(pub &'a Value);

impl Serialize for ValueJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null | Value::Absent => s.serialize_none(),
            Value::Int(i) => s.serialize_i64(*i),
            Value::UInt(u) | Value::Bit(u) => s.serialize_u64(*u),
            Value::Float(f) => s.serialize_f32(*f),
            Value::Double(d) => s.serialize_f64(*d),
            Value::Year(y) => s.serialize_u16(*y),
            Value::Decimal(t)
            | Value::Enum(t)
            | Value::Set(t)
            | Value::String(t)
            | Value::Json(t) => s.serialize_str(t),
            Value::Bytes(b) => {
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
            }
            Value::Vector(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for f in v {
                    seq.serialize_element(f)?;
                }
                seq.end()
            }
            Value::Geometry { srid, wkb } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("srid", srid)?;
                m.serialize_entry(
                    "wkb",
                    &base64::engine::general_purpose::STANDARD.encode(wkb),
                )?;
                m.end()
            }
            other => s.collect_str(&Temporal(other)),
        }
    }
}

/// One JSON line describing a schema change (the Kafka stage sends these to the schema-history topic).
pub struct SchemaChangeJson<'a>(pub &'a SchemaChange);

impl Serialize for SchemaChangeJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let sc = self.0;
        let mut m = s.serialize_map(Some(1))?;
        #[derive(Serialize)]
        struct Col<'a> {
            name: &'a str,
            #[serde(rename = "type")]
            sql_type: &'a str,
            kind: crate::event::ColumnKind,
            nullable: bool,
            key: bool,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            db: &'a str,
            table: &'a str,
            version: u32,
            ddl: &'a str,
            columns: Vec<Col<'a>>,
            file: &'a str,
            pos: u64,
            gtid: &'a Option<String>,
            ts_ms: i64,
        }
        let schema = &sc.schema;
        let body = Body {
            db: &schema.database,
            table: &schema.table,
            version: schema.version,
            ddl: &sc.ddl,
            columns: schema
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| Col {
                    name: &c.name,
                    sql_type: &c.sql_type,
                    kind: c.kind,
                    nullable: c.nullable,
                    key: schema.key.contains(&i),
                })
                .collect(),
            file: &sc.source.position.file,
            pos: sc.source.position.pos,
            gtid: &sc.source.gtid,
            ts_ms: sc.source.ts_ms,
        };
        m.serialize_entry("schema_change", &body)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_unsigned_stays_exact() {
        let json = serde_json::to_string(&ValueJson(&Value::UInt(u64::MAX))).unwrap();
        assert_eq!(json, "18446744073709551615");
    }
}
