//! Sources: where change events come from. MySQL and MariaDB today (snapshot, then the binlog).

pub mod kafka;
pub mod mysql;
