//! GTID state tracking: MySQL GTID sets (`uuid[:tag]:1-5:7`) and MariaDB positions (`domain-server-seq`).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Default)]
pub enum GtidState {
    #[default]
    Unknown,
    /// MySQL: source id (uuid, optionally `uuid:tag`) → sorted, merged inclusive intervals.
    MySql(BTreeMap<String, Vec<(u64, u64)>>),
    /// MariaDB: domain id → (server id, sequence number) of the last transaction in that domain.
    MariaDb(BTreeMap<u32, (u32, u64)>),
}

impl GtidState {
    pub fn parse_mysql(s: &str) -> Self {
        let mut map: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        for part in s.split(',').map(|p| p.trim()).filter(|p| !p.is_empty()) {
            let mut pieces = part.split(':');
            let Some(uuid) = pieces.next() else { continue };
            let mut sid = uuid.to_ascii_lowercase();
            for piece in pieces {
                let range = match piece.split_once('-') {
                    Some((a, b)) => a.parse().ok().zip(b.parse().ok()),
                    None => piece.parse().ok().map(|n| (n, n)),
                };
                match range {
                    Some(r) => add_interval(map.entry(sid.clone()).or_default(), r),
                    // a tag switches the source id for the intervals that follow it
                    None => sid = format!("{}:{}", uuid.to_ascii_lowercase(), piece),
                }
            }
        }
        GtidState::MySql(map)
    }

    pub fn parse_mariadb(s: &str) -> Self {
        let mut map = BTreeMap::new();
        for part in s.split(',').map(|p| p.trim()).filter(|p| !p.is_empty()) {
            let nums: Vec<u64> = part.split('-').filter_map(|x| x.parse().ok()).collect();
            if let [d, srv, seq] = nums[..] {
                map.insert(d as u32, (srv as u32, seq));
            }
        }
        GtidState::MariaDb(map)
    }

    pub fn add_mysql(&mut self, sid: &str, gno: u64) {
        if !matches!(self, GtidState::MySql(_)) {
            *self = GtidState::MySql(BTreeMap::new());
        }
        if let GtidState::MySql(map) = self {
            add_interval(map.entry(sid.to_string()).or_default(), (gno, gno));
        }
    }

    pub fn add_mariadb(&mut self, domain: u32, server: u32, seq: u64) {
        if !matches!(self, GtidState::MariaDb(_)) {
            *self = GtidState::MariaDb(BTreeMap::new());
        }
        if let GtidState::MariaDb(map) = self {
            map.insert(domain, (server, seq));
        }
    }

    pub fn render(&self) -> Option<String> {
        match self {
            GtidState::Unknown => None,
            GtidState::MySql(map) => Some(
                map.iter()
                    .map(|(sid, ivs)| {
                        let ranges: Vec<String> = ivs
                            .iter()
                            .map(|(a, b)| {
                                if a == b {
                                    a.to_string()
                                } else {
                                    format!("{a}-{b}")
                                }
                            })
                            .collect();
                        format!("{sid}:{}", ranges.join(":"))
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            GtidState::MariaDb(map) => Some(
                map.iter()
                    .map(|(d, (s, n))| format!("{d}-{s}-{n}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
    }
}

fn add_interval(ivs: &mut Vec<(u64, u64)>, (a, b): (u64, u64)) {
    ivs.push((a, b));
    ivs.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
    for &(s, e) in ivs.iter() {
        match merged.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *ivs = merged;
}

/// Formats a 16-byte MySQL source id as a UUID.
pub fn format_uuid(sid: &[u8; 16]) -> String {
    let h = hex::encode(sid);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_set_merges_and_renders() {
        let mut g = GtidState::parse_mysql("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7");
        g.add_mysql("3e11fa47-71ca-11e1-9e33-c80aa9429562", 6);
        assert_eq!(
            g.render().unwrap(),
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-7"
        );
    }

    #[test]
    fn mariadb_positions_per_domain() {
        let mut g = GtidState::parse_mariadb("0-1-10,1-2-5");
        g.add_mariadb(0, 1, 11);
        assert_eq!(g.render().unwrap(), "0-1-11,1-2-5");
    }
}
