//! Kafka records of change events: key = the key columns, value = the change envelope, in the
//! `debezium` or `binlake` encoding, with or without JsonConverter's `schema` block. Schemas are rendered
//! once per table version and spliced in, so the schema block costs a copy, not a serialization.

use super::debezium::{envelope_schema, struct_schema, Modes, RowValue};
use crate::config::kafka::{Encoding, KafkaConfig};
use crate::event::{ChangeEvent, TableId, TableSchema};
use crate::sinks::envelope::{Envelope, SourceJson, ValueJson};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// The parts of a record binlake writes for one change event.
pub struct EncodedRecord<'a> {
    pub topic: &'a str,
    /// `None` for a table without a key (Debezium sends a null key too).
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
}

/// Per table version: topic and rendered schema blocks.
struct TableCodec {
    version: u32,
    schema: Arc<TableSchema>,
    topic: String,
    key_schema: Option<Arc<str>>,
    value_schema: Option<Arc<str>>,
}

pub struct Encoder {
    encoding: Encoding,
    schemas_enable: bool,
    modes: Modes,
    /// Debezium's logical server name (`source.name`): the topic prefix.
    server_name: String,
    connector: String,
    tables: HashMap<TableId, TableCodec>,
    /// The table of the previous event: most events follow one of their own table.
    last: Option<TableId>,
    key: Vec<u8>,
    value: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot encode a change of {table}: {source}")]
pub struct EncodeError {
    pub table: TableId,
    pub source: serde_json::Error,
}

impl Encoder {
    pub fn new(config: &KafkaConfig, connector: &str) -> Self {
        Encoder {
            encoding: config.encoding,
            schemas_enable: config.schemas_enable,
            modes: Modes {
                decimal: config.decimal_handling_mode,
                bigint_unsigned: config.bigint_unsigned_handling_mode,
            },
            server_name: config.prefix(connector).to_string(),
            connector: connector.to_string(),
            tables: HashMap::new(),
            last: None,
            key: Vec::with_capacity(256),
            value: Vec::with_capacity(4096),
        }
    }

    fn codec(&mut self, schema: &Arc<TableSchema>, topic: &str) -> &TableCodec {
        if let Some(last) = &self.last {
            if Arc::ptr_eq(&self.tables[last].schema, schema) && self.tables[last].topic == topic {
                return &self.tables[last];
            }
        }
        let id = schema.id();
        let stale = self.tables.get(&id).is_none_or(|c| {
            c.version != schema.version || c.topic != topic || *c.schema != **schema
        });
        if stale {
            let (key_schema, value_schema) = if self.schemas_enable {
                let key = (!schema.key.is_empty()).then(|| {
                    Arc::from(
                        struct_schema(
                            schema,
                            Some(&schema.key),
                            &format!("{topic}.Key"),
                            false,
                            self.modes,
                        )
                        .to_string(),
                    )
                });
                (
                    key,
                    Some(Arc::from(
                        envelope_schema(schema, topic, self.modes).to_string(),
                    )),
                )
            } else {
                (None, None)
            };
            self.tables.insert(
                id.clone(),
                TableCodec {
                    version: schema.version,
                    schema: schema.clone(),
                    topic: topic.to_string(),
                    key_schema,
                    value_schema,
                },
            );
        }
        self.last = Some(id.clone());
        &self.tables[&id]
    }

    /// Encodes `ev` for `topic`; `data_collection_order` is the event's order among its table's events
    /// in the transaction. Returns key and value bytes borrowed from the encoder's buffers.
    pub fn encode(
        &mut self,
        ev: &ChangeEvent,
        topic: &str,
        now_ms: i64,
        data_collection_order: u64,
    ) -> Result<EncodedRecord<'_>, EncodeError> {
        let err = |source| EncodeError {
            table: ev.schema.id(),
            source,
        };
        let (key_schema, value_schema) = {
            let c = self.codec(&ev.schema, topic);
            (c.key_schema.clone(), c.value_schema.clone())
        };
        self.key.clear();
        self.value.clear();
        let schema = &ev.schema;
        let has_key = !schema.key.is_empty();
        // the key is the key columns of the row as it is after the change (before, for a delete)
        let key_row = ev.after.as_ref().or(ev.before.as_ref());
        if has_key {
            if let Some(row) = key_row {
                open_schema_block(&mut self.key, key_schema.as_deref());
                match self.encoding {
                    Encoding::Debezium => serde_json::to_writer(
                        &mut self.key,
                        &RowValue {
                            schema,
                            row,
                            only: Some(&schema.key),
                            modes: self.modes,
                        },
                    ),
                    Encoding::Binlake => {
                        serde_json::to_writer(&mut self.key, &KeyJson { schema, row })
                    }
                }
                .map_err(err)?;
                close_schema_block(&mut self.key, key_schema.is_some());
            }
        }
        open_schema_block(&mut self.value, value_schema.as_deref());
        match self.encoding {
            Encoding::Debezium => serde_json::to_writer(
                &mut self.value,
                &DebeziumEnvelope {
                    ev,
                    server_name: &self.server_name,
                    now_ms,
                    modes: self.modes,
                    data_collection_order,
                },
            ),
            Encoding::Binlake => serde_json::to_writer(
                &mut self.value,
                &Envelope {
                    event: ev,
                    connector: &self.connector,
                    now_ms,
                },
            ),
        }
        .map_err(err)?;
        close_schema_block(&mut self.value, value_schema.is_some());
        let topic = &self.tables[self.last.as_ref().expect("codec just used")].topic;
        Ok(EncodedRecord {
            topic,
            key: (has_key && key_row.is_some()).then_some(self.key.as_slice()),
            value: &self.value,
        })
    }

    /// The key bytes of the last encoded record (for the tombstone after a delete).
    pub fn last_key(&self) -> &[u8] {
        &self.key
    }
}

fn open_schema_block(buf: &mut Vec<u8>, schema: Option<&str>) {
    if let Some(s) = schema {
        buf.extend_from_slice(b"{\"schema\":");
        buf.extend_from_slice(s.as_bytes());
        buf.extend_from_slice(b",\"payload\":");
    }
}

fn close_schema_block(buf: &mut Vec<u8>, open: bool) {
    if open {
        buf.push(b'}');
    }
}

/// The key columns in the `binlake` encoding.
struct KeyJson<'a> {
    schema: &'a TableSchema,
    row: &'a crate::event::Row,
}

impl Serialize for KeyJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.schema.key.len()))?;
        for &i in &self.schema.key {
            if let (Some(col), Some(v)) = (self.schema.columns.get(i), self.row.get(i)) {
                m.serialize_entry(&col.name, &ValueJson(v))?;
            }
        }
        m.end()
    }
}

struct DebeziumEnvelope<'a> {
    ev: &'a ChangeEvent,
    server_name: &'a str,
    now_ms: i64,
    modes: Modes,
    data_collection_order: u64,
}

impl<'a> Serialize for DebeziumEnvelope<'a> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ev = self.ev;
        let row = |r: &'a Option<crate::event::Row>| -> Option<RowValue<'a>> {
            r.as_ref().map(|row| RowValue {
                schema: &ev.schema,
                row,
                only: None,
                modes: self.modes,
            })
        };
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("before", &row(&ev.before))?;
        m.serialize_entry("after", &row(&ev.after))?;
        m.serialize_entry(
            "source",
            &SourceJson {
                source: &ev.source,
                schema: &ev.schema,
                connector: self.server_name,
                debezium_fields: true,
            },
        )?;
        m.serialize_entry("op", ev.op.code())?;
        m.serialize_entry("ts_ms", &self.now_ms)?;
        #[derive(Serialize)]
        struct Block<'b> {
            id: &'b str,
            total_order: u64,
            data_collection_order: u64,
        }
        m.serialize_entry(
            "transaction",
            &ev.source
                .gtid
                .as_deref()
                .filter(|_| !ev.source.snapshot)
                .map(|id| Block {
                    id,
                    total_order: ev.tx_order,
                    data_collection_order: self.data_collection_order,
                }),
        )?;
        m.end()
    }
}
