//! Crash points for crash-safety tests: with `BINLAKE_CRASH_AT=<point>` set, the process kills itself with
//! SIGKILL when it reaches that point, exactly as `kill -9` at that instant would — no drain, no flush, no
//! destructors. Unset (production), a point costs one cached lookup.

use std::sync::OnceLock;

/// After the quality stage recorded a batch's results (and quarantined its rows), before the MERGE.
pub const AFTER_QUALITY_RECORD: &str = "after_quality_record";

/// In `binlake sink`, right after a Delta commit of a batch read from Kafka (and before the group's
/// offsets are committed): Delta's position may then lie inside a producer's record batch.
pub const AFTER_KAFKA_SINK_COMMIT: &str = "after_kafka_sink_commit";

/// Right after the commit that empties a table for a TRUNCATE or DROP, before the batch's later changes
/// are merged (both modes).
pub const AFTER_TRUNCATE_COMMIT: &str = "after_truncate_commit";

pub fn point(name: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("BINLAKE_CRASH_AT").ok());
    if at.as_deref() == Some(name) {
        tracing::error!(
            point = name,
            "BINLAKE_CRASH_AT reached: killing this process"
        );
        // SAFETY: kill(2) on our own pid; SIGKILL cannot be caught, so nothing runs after it
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
