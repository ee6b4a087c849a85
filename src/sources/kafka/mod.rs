//! The Kafka source of `binlake sink` (Kafka → lake), being built: reading the publisher's records back
//! into change events. values.rs reads column values in either encoding, record.rs whole change records.

pub mod record;
pub mod values;
