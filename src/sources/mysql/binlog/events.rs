//! Which binlog event types carry rows, which are known to carry nothing a row-based change stream needs,
//! and MariaDB's own type numbers. Anything on neither list stops the stream (see `BinlogDecoder::handle`).

use mysql_common::binlog::consts::EventType;

pub const MARIADB_ANNOTATE_ROWS: u8 = 160;
pub const MARIADB_BINLOG_CHECKPOINT: u8 = 161;
pub const MARIADB_GTID: u8 = 162;
pub const MARIADB_GTID_LIST: u8 = 163;
pub const MARIADB_START_ENCRYPTION: u8 = 164;
pub const MARIADB_QUERY_COMPRESSED: u8 = 165;
/// MySQL's HEARTBEAT_LOG_EVENT_V2 (no name in mysql_common yet).
pub const HEARTBEAT_V2: u8 = 0x29;

/// Events that carry row data: each is decoded or the stream stops.
pub fn is_rows_event(t: u8) -> bool {
    use EventType as E;
    [
        E::WRITE_ROWS_EVENT_V1,
        E::UPDATE_ROWS_EVENT_V1,
        E::DELETE_ROWS_EVENT_V1,
        E::WRITE_ROWS_EVENT,
        E::UPDATE_ROWS_EVENT,
        E::DELETE_ROWS_EVENT,
        E::PARTIAL_UPDATE_ROWS_EVENT,
    ]
    .iter()
    .any(|e| *e as u8 == t)
}

/// Events known to carry nothing a row-based change stream needs. Anything not listed here, and not
/// handled, stops the stream with a definite error rather than being skipped.
pub fn is_irrelevant_event(t: u8) -> bool {
    use EventType as E;
    [
        E::FORMAT_DESCRIPTION_EVENT, // parsed by the stream reader itself
        E::STOP_EVENT,
        E::HEARTBEAT_EVENT,
        E::IGNORABLE_EVENT,
        E::ROWS_QUERY_EVENT,     // the statement text of the rows that follow
        E::ANONYMOUS_GTID_EVENT, // transaction start without GTIDs; BEGIN/XID delimit it
        E::PREVIOUS_GTIDS_EVENT, // GTID set of earlier files
        E::TRANSACTION_CONTEXT_EVENT, // group replication certification
        E::VIEW_CHANGE_EVENT,    // group replication membership
        E::INTVAR_EVENT,         // statement-based context (auto-increment, LAST_INSERT_ID)
        E::RAND_EVENT,
        E::USER_VAR_EVENT,
    ]
    .iter()
    .any(|e| *e as u8 == t)
        || matches!(
            t,
            HEARTBEAT_V2 | MARIADB_ANNOTATE_ROWS | MARIADB_BINLOG_CHECKPOINT | MARIADB_GTID_LIST
        )
}
