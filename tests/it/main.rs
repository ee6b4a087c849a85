//! Integration tests against the real services from `scripts/services up` (one test binary).

mod common;
mod ddl;
mod failures;
mod fixtures;
mod lake;
mod lake_options;
mod minimal;
mod partitions;
mod reconnect;
mod restart;
mod snapshot_stream;
mod types;
