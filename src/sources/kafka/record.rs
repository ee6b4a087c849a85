//! A change record read back into a `ChangeEvent`: the envelope (with or without JsonConverter's schema
//! block) in either encoding, the table's schema from the schema-change topic, `_seq` from the
//! `binlake.seq` header.

use super::values::{read_value, ValueError};
use crate::config::kafka::Encoding;
use crate::event::{BinlogPosition, ChangeEvent, EventSource, Op, Row, TableSchema, Value};
use crate::sinks::kafka::debezium::Modes;
use serde_json::Value as Json;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("no change envelope: {0}")]
    Envelope(&'static str),
    #[error(transparent)]
    Value(#[from] ValueError),
}

fn row(
    schema: &TableSchema,
    image: &Json,
    encoding: Encoding,
    modes: Modes,
) -> Result<Option<Row>, RecordError> {
    if image.is_null() {
        return Ok(None);
    }
    let fields = image
        .as_object()
        .ok_or(RecordError::Envelope("a row image is not an object"))?;
    schema
        .columns
        .iter()
        .map(|col| match fields.get(&col.name) {
            // not in the image: a partial row image, or a column the record predates
            None => Ok(Value::Absent),
            Some(v) => Ok(read_value(col, v, encoding, modes)?),
        })
        .collect::<Result<Row, RecordError>>()
        .map(Some)
}

/// The change event a record's value holds. `seq` comes from the record's `binlake.seq` header.
pub fn read_change(
    schema: &Arc<TableSchema>,
    value: &[u8],
    seq: u64,
    encoding: Encoding,
    modes: Modes,
) -> Result<ChangeEvent, RecordError> {
    let mut envelope: Json = serde_json::from_slice(value)?;
    if envelope.get("schema").is_some() && envelope.get("payload").is_some() {
        envelope = envelope["payload"].take();
    }
    let op = match envelope["op"].as_str() {
        Some("c") => Op::Insert,
        Some("u") => Op::Update,
        Some("d") => Op::Delete,
        Some("r") => Op::Read,
        Some("t") => Op::Truncate,
        _ => return Err(RecordError::Envelope("`op` is not one of c, u, d, r, t")),
    };
    let src = &envelope["source"];
    let source = EventSource {
        server_id: src["server_id"].as_u64().unwrap_or(0) as u32,
        position: BinlogPosition::new(
            src["file"].as_str().unwrap_or_default(),
            src["pos"].as_u64().unwrap_or(0),
        ),
        row: src["row"].as_u64().unwrap_or(0) as u32,
        gtid: src["gtid"].as_str().map(str::to_string),
        ts_ms: src["ts_ms"].as_i64().unwrap_or(0),
        snapshot: src["snapshot"].as_str().is_some_and(|s| s != "false"),
    };
    Ok(ChangeEvent {
        op,
        schema: schema.clone(),
        before: row(schema, &envelope["before"], encoding, modes)?,
        after: row(schema, &envelope["after"], encoding, modes)?,
        source,
        seq,
        tx_order: envelope["transaction"]["total_order"].as_u64().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::kafka::KafkaConfig;
    use crate::event::{ColumnKind, ColumnSchema};
    use crate::sinks::kafka::encode::Encoder;

    fn kafka_config(extra: &str) -> KafkaConfig {
        toml::from_str(&format!("brokers = \"127.0.0.1:9092\"\n{extra}")).unwrap()
    }

    #[test]
    fn published_changes_read_back_equal() {
        let mut id = ColumnSchema::new("id", ColumnKind::BigInt);
        id.nullable = false;
        let mut price = ColumnSchema::new("price", ColumnKind::Decimal);
        (price.precision, price.scale) = (Some(12), Some(4));
        let mut at = ColumnSchema::new("at", ColumnKind::DateTime);
        at.precision = Some(6);
        let schema = Arc::new(TableSchema {
            database: "stocks".into(),
            table: "quotes".into(),
            columns: vec![id, price, at, ColumnSchema::new("note", ColumnKind::Text)],
            key: vec![0],
            version: 2,
        });
        let image = |p: &str| {
            vec![
                Value::Int(42),
                Value::Decimal(p.into()),
                Value::DateTime {
                    year: 2026,
                    month: 11,
                    day: 20,
                    hour: 14,
                    minute: 30,
                    second: 1,
                    micros: 250_000,
                },
                Value::Null,
            ]
        };
        let ev = ChangeEvent {
            op: Op::Update,
            schema: schema.clone(),
            before: Some(image("101.5000")),
            after: Some(image("-0.0001")),
            source: EventSource {
                server_id: 1,
                position: BinlogPosition::new("mysql-bin.000003", 4242),
                row: 3,
                gtid: Some("0-1-77".into()),
                ts_ms: 1_795_185_000_000,
                snapshot: false,
            },
            seq: 9001,
            tx_order: 5,
        };
        for extra in [
            "",
            "schemas_enable = true",
            "decimal_handling_mode = \"string\"",
            "encoding = \"binlake\"",
        ] {
            let config = kafka_config(extra);
            let modes = Modes {
                decimal: config.decimal_handling_mode,
                bigint_unsigned: config.bigint_unsigned_handling_mode,
            };
            let mut encoder = Encoder::new(&config, "c");
            let value = encoder
                .encode(&ev, "c.stocks.quotes", 0, 1)
                .unwrap()
                .value
                .to_vec();
            let back = read_change(&schema, &value, 9001, config.encoding, modes).unwrap();
            assert_eq!(back, ev, "{extra}");
        }
    }

    #[test]
    fn a_record_without_an_envelope_is_refused() {
        let schema = Arc::new(TableSchema {
            database: "d".into(),
            table: "t".into(),
            columns: vec![],
            key: vec![],
            version: 1,
        });
        let modes = Modes {
            decimal: Default::default(),
            bigint_unsigned: Default::default(),
        };
        assert!(read_change(&schema, b"{\"x\":1}", 1, Encoding::Debezium, modes).is_err());
        assert!(read_change(&schema, b"not json", 1, Encoding::Debezium, modes).is_err());
    }
}
