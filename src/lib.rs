//! binlake: MySQL/MariaDB change-data-capture into Delta Lake (and Kafka next). The data flow, the
//! components and the error and progress models are described in docs/architecture.md.

pub mod alerts;
pub mod bench;
pub mod channel;
pub mod config;
pub mod crash;
pub mod event;
pub mod ha;
pub mod ingest;
pub mod names;
pub mod observe;
pub mod pipeline;
pub mod retry;
pub mod sinks;
pub mod sources;
pub mod transforms;
pub mod watch;
