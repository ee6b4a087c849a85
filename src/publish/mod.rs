//! Publishing change events: the Debezium-compatible JSON envelope (Kafka producer comes with the Kafka stage).

pub mod envelope;
