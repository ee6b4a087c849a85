//! XA transactions: the rows of an `XA START … XA END; XA PREPARE` group are not committed yet. They are
//! held here, per xid, and reach the stream only when a later `XA COMMIT` group commits them (with the
//! `_seq`s of that moment); an `XA ROLLBACK` drops them. While one is prepared, the resume position stays at
//! the start of its group so a restart can read its rows again (see `Checkpoint::xa`).

use crate::event::{BinlogPosition, ChangeEvent};
use std::collections::BTreeMap;

/// One XA transaction seen in the binlog and not yet committed or rolled back.
#[derive(Debug)]
pub struct PreparedXa {
    pub events: Vec<ChangeEvent>,
    pub bytes: usize,
    /// Where its group starts, with the GTID state and next `_seq` there: a restart resumes from here.
    pub start: BinlogPosition,
    pub gtid: Option<String>,
    pub next_seq: u64,
    /// False until the group's XA_PREPARE event: an incomplete one is read again after a reconnect.
    pub prepared: bool,
}

/// The xid of an `XA START|END|COMMIT|ROLLBACK <xid> [ONE PHASE]` statement as the server logs it
/// (`X'7831',X'',1`), and whether it commits in one phase.
pub fn parse_xa_statement(sql: &str) -> Option<(XaVerb, String, bool)> {
    let trimmed = sql.trim();
    let upper = trimmed.to_ascii_uppercase();
    let rest = upper.strip_prefix("XA ")?;
    let (verb, word) = [
        (XaVerb::Start, "START"),
        (XaVerb::Begin, "BEGIN"),
        (XaVerb::End, "END"),
        (XaVerb::Prepare, "PREPARE"),
        (XaVerb::Commit, "COMMIT"),
        (XaVerb::Rollback, "ROLLBACK"),
    ]
    .into_iter()
    .find(|(_, w)| rest.starts_with(w))?;
    // the server writes xids as `X'hex',X'hex',formatID`: upper case makes every writer's form the same
    let mut xid = trimmed[3 + word.len()..].trim().to_ascii_uppercase();
    let one_phase = xid.to_ascii_uppercase().ends_with("ONE PHASE");
    if one_phase {
        xid.truncate(xid.len() - "ONE PHASE".len());
    }
    for suffix in ["JOIN", "RESUME", "SUSPEND FOR MIGRATE", "SUSPEND"] {
        if xid.to_ascii_uppercase().ends_with(suffix) {
            xid.truncate(xid.len() - suffix.len());
        }
    }
    let verb = if verb == XaVerb::Begin {
        XaVerb::Start
    } else {
        verb
    };
    Some((verb, xid.trim().to_string(), one_phase))
}

const MARIADB_FL_GROUP_COMMIT_ID: u8 = 2;
const MARIADB_FL_PREPARED_XA: u8 = 64;

/// The xid a MariaDB GTID event carries when it opens an XA group (`FL_PREPARED_XA`), in the server's
/// text form `X'gtrid',X'bqual',formatID` (upper-case hex, as `parse_xa_statement` returns it).
pub fn mariadb_prepared_xid(gtid_event: &[u8]) -> Option<String> {
    let flags = *gtid_event.get(12)?;
    if flags & MARIADB_FL_PREPARED_XA == 0 {
        return None;
    }
    let mut at = 13;
    if flags & MARIADB_FL_GROUP_COMMIT_ID != 0 {
        at += 8;
    }
    let format_id = u32::from_le_bytes(gtid_event.get(at..at + 4)?.try_into().ok()?);
    let gtrid_len = *gtid_event.get(at + 4)? as usize;
    let bqual_len = *gtid_event.get(at + 5)? as usize;
    let data = gtid_event.get(at + 6..at + 6 + gtrid_len + bqual_len)?;
    let (gtrid, bqual) = data.split_at(gtrid_len);
    Some(format!(
        "X'{}',X'{}',{format_id}",
        hex::encode_upper(gtrid),
        hex::encode_upper(bqual)
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XaVerb {
    Start,
    Begin,
    End,
    Prepare,
    Commit,
    Rollback,
}

/// Prepared XA transactions by xid.
#[derive(Debug, Default)]
pub struct PreparedSet {
    by_xid: BTreeMap<String, PreparedXa>,
}

impl PreparedSet {
    pub fn open(&mut self, xid: &str, start: BinlogPosition, gtid: Option<String>, next_seq: u64) {
        self.by_xid.insert(
            xid.to_string(),
            PreparedXa {
                events: vec![],
                bytes: 0,
                start,
                gtid,
                next_seq,
                prepared: false,
            },
        );
    }

    /// Holds `events` for `xid`; returns the bytes now held for it.
    pub fn hold(&mut self, xid: &str, events: impl IntoIterator<Item = ChangeEvent>) -> usize {
        let Some(xa) = self.by_xid.get_mut(xid) else {
            return 0;
        };
        for ev in events {
            xa.bytes += ev.approx_bytes();
            xa.events.push(ev);
        }
        xa.bytes
    }

    pub fn mark_prepared(&mut self, xid: &str) {
        if let Some(xa) = self.by_xid.get_mut(xid) {
            xa.prepared = true;
        }
    }

    /// Removes and returns `xid`'s held transaction (commit or rollback).
    pub fn take(&mut self, xid: &str) -> Option<PreparedXa> {
        self.by_xid.remove(xid)
    }

    /// Forgets groups whose XA_PREPARE was not read yet: a reconnect reads them again.
    pub fn drop_incomplete(&mut self) {
        self.by_xid.retain(|_, xa| xa.prepared);
    }

    /// The prepared transaction whose group starts first: where a restart must resume.
    pub fn oldest(&self) -> Option<&PreparedXa> {
        self.by_xid
            .values()
            .filter(|x| x.prepared)
            .min_by(|a, b| a.start.cmp(&b.start))
    }

    pub fn is_empty(&self) -> bool {
        self.by_xid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xa_statements_as_logged() {
        assert_eq!(
            parse_xa_statement("XA START X'7831',X'',1"),
            Some((XaVerb::Start, "X'7831',X'',1".into(), false))
        );
        assert_eq!(
            parse_xa_statement("XA COMMIT X'7831',X'',1 ONE PHASE"),
            Some((XaVerb::Commit, "X'7831',X'',1".into(), true))
        );
        assert_eq!(
            parse_xa_statement("xa rollback X'ab',X'01',7"),
            Some((XaVerb::Rollback, "X'AB',X'01',7".into(), false))
        );
        // a MariaDB GTID event opening XA 'x1' (seq 9, domain 0, flags: transactional + prepared XA)
        let mut ev = vec![9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64 | 4];
        ev.extend_from_slice(&1u32.to_le_bytes());
        ev.extend_from_slice(&[2, 0, b'x', b'1']);
        assert_eq!(mariadb_prepared_xid(&ev).as_deref(), Some("X'7831',X'',1"));
        ev[12] = 4;
        assert_eq!(mariadb_prepared_xid(&ev), None);
        assert_eq!(parse_xa_statement("XACT"), None);
        assert_eq!(parse_xa_statement("INSERT INTO t VALUES (1)"), None);
    }
}
