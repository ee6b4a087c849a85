//! binlake: MySQL/MariaDB change-data-capture into Kafka and Delta Lake. See ARCHITECTURE.md for the data flow.

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod event;
pub mod lake;
pub mod observe;
pub mod pipeline;
pub mod publish;
pub mod source;
