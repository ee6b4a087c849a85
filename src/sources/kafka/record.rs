//! A change record read back into a `ChangeEvent`: the envelope (with or without JsonConverter's schema
//! block) in either encoding, the table's schema from the schema-change topic, `_seq` from the
//! `binlake.seq` header.

use super::values::{read_value, Cell, ValueError};
use crate::config::kafka::Encoding;
use crate::event::{BinlogPosition, ChangeEvent, EventSource, Op, Row, TableSchema, Value};
use crate::sinks::kafka::debezium::Modes;
use serde::de::{DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, Visitor};
use std::borrow::Cow;
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

/// Part of the error for a record whose columns differ from its schema version's.
const SCHEMA_MISMATCH: &str = "not a column of the record's schema version";

impl RecordError {
    /// The record names a column its schema version lacks: the schema read for that version is not
    /// the one the record was written with.
    pub fn is_schema_mismatch(&self) -> bool {
        matches!(self, RecordError::Json(e) if e.to_string().contains(SCHEMA_MISMATCH))
    }
}

/// How a record's values are read: the table's schema and the publisher's encodings.
#[derive(Clone, Copy)]
struct Reading<'s> {
    schema: &'s TableSchema,
    encoding: Encoding,
    modes: Modes,
}

/// A row image read straight from the JSON into the schema's column order, without building a JSON
/// tree first (this runs for every record the sink consumes). A column the image lacks is
/// `Value::Absent` (a partial row image, or a column the record predates); a field the schema lacks
/// is ignored.
struct RowSeed<'s>(Reading<'s>);

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Option<Row>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Option<Row>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a row image (an object) or null")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let columns = &self.0.schema.columns;
        let mut row: Row = vec![Value::Absent; columns.len()];
        let mut next = 0;
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            // the publisher writes the columns in schema order: try the next one before searching
            let at = if columns.get(next).is_some_and(|c| c.name == name) {
                Some(next)
            } else {
                columns.iter().position(|c| c.name == name)
            };
            let Some(at) = at else {
                // the record was written with other columns than this schema version has: never
                // apply it with this one (a publisher that reused a version number)
                return Err(A::Error::custom(format!(
                    "column `{name}` is {SCHEMA_MISMATCH} {}",
                    self.0.schema.version
                )));
            };
            next = at + 1;
            let cell: Cell<'de> = map.next_value()?;
            row[at] = read_value(&columns[at], &cell, self.0.encoding, self.0.modes)
                .map_err(A::Error::custom)?;
        }
        Ok(Some(row))
    }
}

/// The `source` block: only the fields binlake reads, each leniently (a missing or odd field reads as
/// zero or empty, as Debezium's optional fields may be).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct SourceJson<'a> {
    #[serde(borrow)]
    server_id: Cell<'a>,
    #[serde(borrow)]
    file: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pos: Cell<'a>,
    #[serde(borrow)]
    row: Cell<'a>,
    #[serde(borrow)]
    gtid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ts_ms: Cell<'a>,
    #[serde(borrow)]
    snapshot: Cell<'a>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct TransactionJson<'a> {
    #[serde(borrow)]
    total_order: Cell<'a>,
}

/// An envelope's fields as read; with JsonConverter's schema block, the `payload` holds them.
#[derive(Default)]
struct Parsed {
    op: Option<Op>,
    before: Option<Row>,
    after: Option<Row>,
    source: Option<EventSource>,
    tx_order: u64,
    schema_block: bool,
    payload: Option<Box<Parsed>>,
}

struct EnvelopeSeed<'s>(Reading<'s>);

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = Parsed;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

fn op_of(code: &str) -> Option<Op> {
    Some(match code {
        "c" => Op::Insert,
        "u" => Op::Update,
        "d" => Op::Delete,
        "r" => Op::Read,
        "t" => Op::Truncate,
        _ => return None,
    })
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = Parsed;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a change envelope (an object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut p = Parsed::default();
        while let Some(field) = map.next_key::<Cow<'de, str>>()? {
            match &*field {
                "before" => p.before = map.next_value_seed(RowSeed(self.0))?,
                "after" => p.after = map.next_value_seed(RowSeed(self.0))?,
                "op" => {
                    let code: Option<Cow<'de, str>> = map.next_value()?;
                    p.op = code.as_deref().and_then(op_of);
                }
                "source" => {
                    let src: Option<SourceJson<'de>> = map.next_value()?;
                    let src = src.unwrap_or_default();
                    p.source = Some(EventSource {
                        server_id: src.server_id.as_u64().unwrap_or(0) as u32,
                        position: BinlogPosition::new(
                            src.file.as_deref().unwrap_or_default(),
                            src.pos.as_u64().unwrap_or(0),
                        ),
                        row: src.row.as_u64().unwrap_or(0) as u32,
                        gtid: src.gtid.map(Cow::into_owned),
                        ts_ms: src.ts_ms.as_i64().unwrap_or(0),
                        snapshot: src.snapshot.as_str().is_some_and(|s| s != "false"),
                    });
                }
                "transaction" => {
                    let tx: Option<TransactionJson<'de>> = map.next_value()?;
                    p.tx_order = tx.and_then(|t| t.total_order.as_u64()).unwrap_or(0);
                }
                "schema" => {
                    p.schema_block = true;
                    map.next_value::<IgnoredAny>()?;
                }
                "payload" => p.payload = Some(Box::new(map.next_value_seed(self.0.envelope())?)),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(p)
    }
}

impl<'s> Reading<'s> {
    fn envelope(self) -> EnvelopeSeed<'s> {
        EnvelopeSeed(self)
    }
}

/// The change event a record's value holds. `seq` comes from the record's `binlake.seq` header.
pub fn read_change(
    schema: &Arc<TableSchema>,
    value: &[u8],
    seq: u64,
    encoding: Encoding,
    modes: Modes,
) -> Result<ChangeEvent, RecordError> {
    let reading = Reading {
        schema,
        encoding,
        modes,
    };
    let mut de = serde_json::Deserializer::from_slice(value);
    let mut parsed = reading.envelope().deserialize(&mut de)?;
    de.end()?;
    if parsed.schema_block {
        if let Some(payload) = parsed.payload.take() {
            parsed = *payload;
        }
    }
    let op = parsed
        .op
        .ok_or(RecordError::Envelope("`op` is not one of c, u, d, r, t"))?;
    Ok(ChangeEvent {
        op,
        schema: schema.clone(),
        before: parsed.before,
        after: parsed.after,
        source: parsed.source.unwrap_or_else(|| EventSource {
            server_id: 0,
            position: BinlogPosition::new("", 0),
            row: 0,
            gtid: None,
            ts_ms: 0,
            snapshot: false,
        }),
        seq,
        tx_order: parsed.tx_order,
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

    /// Images read by name whatever the field order: a column the image lacks is absent, and a field
    /// the schema lacks means the record was written with another schema (refused, never applied with
    /// this one); inside JsonConverter's wrapper only the payload counts.
    #[test]
    fn images_are_read_by_column_name() {
        let schema = Arc::new(TableSchema {
            database: "d".into(),
            table: "t".into(),
            columns: vec![
                ColumnSchema::new("id", ColumnKind::BigInt),
                ColumnSchema::new("note", ColumnKind::Text),
                ColumnSchema::new("n", ColumnKind::Int),
            ],
            key: vec![0],
            version: 1,
        });
        let modes = Modes {
            decimal: Default::default(),
            bigint_unsigned: Default::default(),
        };
        let envelope = r#"{"op":"u","after":{"n":7,"id":3},
            "before":{"id":3,"note":"a\"b","n":6},"source":{"file":"b.000002","pos":99,"gtid":null,
            "snapshot":"false","ts_ms":12},"transaction":{"total_order":4}}"#;
        for value in [
            envelope.to_string(),
            format!(r#"{{"schema":{{"type":"struct","op":"d"}},"payload":{envelope}}}"#),
        ] {
            let ev = read_change(&schema, value.as_bytes(), 5, Encoding::Binlake, modes).unwrap();
            assert_eq!(ev.op, Op::Update);
            assert_eq!(
                ev.after,
                Some(vec![Value::Int(3), Value::Absent, Value::Int(7)])
            );
            assert_eq!(
                ev.before,
                Some(vec![
                    Value::Int(3),
                    Value::String("a\"b".into()),
                    Value::Int(6)
                ])
            );
            assert_eq!(ev.source.position, BinlogPosition::new("b.000002", 99));
            assert_eq!(
                (ev.source.ts_ms, ev.source.gtid, ev.tx_order),
                (12, None, 4)
            );
            assert!(!ev.source.snapshot);
        }
        let other_schema = r#"{"op":"c","after":{"id":3,"extra":{"deep":[1,2]}}}"#;
        let refused = read_change(
            &schema,
            other_schema.as_bytes(),
            1,
            Encoding::Binlake,
            modes,
        )
        .unwrap_err();
        assert!(refused.is_schema_mismatch(), "{refused}");
        let bad = r#"{"op":"c","after":{"id":"x"}}"#;
        assert!(read_change(&schema, bad.as_bytes(), 1, Encoding::Binlake, modes).is_err());
        let trailing = r#"{"op":"c","after":null} x"#;
        assert!(read_change(&schema, trailing.as_bytes(), 1, Encoding::Binlake, modes).is_err());
    }
}
