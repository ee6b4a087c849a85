//! Integration tests against the real services from `scripts/services up` (one test binary).

mod alerts;
mod binlog_offsets;
mod common;
mod ddl;
mod failures;
mod fixtures;
mod ha;
mod hardening;
mod infra;
mod kafka;
mod kafka_failures;
mod kafka_sink;
mod lake;
mod lake_options;
mod minimal;
mod names;
mod partitions;
mod quality;
mod quality_watch;
mod reconnect;
mod restart;
mod secrets;
mod snapshot_stream;
mod tls;
mod types;
mod xa;
