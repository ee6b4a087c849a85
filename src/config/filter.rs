//! Which tables and columns are captured, and lookups in maps keyed by table name.

use super::SourceConfig;
use globset::{Glob, GlobMatcher};
use std::collections::BTreeMap;

/// The entry of a `"db.table" = …` map (`source.keys`, `lake.partitions`) that names `id`.
pub fn for_table<'a, V>(map: &'a BTreeMap<String, V>, id: &crate::event::TableId) -> Option<&'a V> {
    map.iter()
        .find(|(k, _)| crate::event::TableId::parse(k).as_ref() == Some(id))
        .map(|(_, v)| v)
}

/// Which tables and columns are captured.
#[derive(Debug, Clone)]
pub struct TableFilter {
    include: Vec<GlobMatcher>,
    exclude: Vec<GlobMatcher>,
    exclude_columns: Vec<GlobMatcher>,
}

impl TableFilter {
    pub(crate) fn new(s: &SourceConfig) -> Self {
        let mut filter = Self::from_patterns(&s.include, &s.exclude, &s.exclude_columns);
        // the signal table carries requests to binlake, not data to capture
        if let Some(signal) = s.signal_table() {
            let exact = format!(
                "{}.{}",
                globset::escape(&signal.database),
                globset::escape(&signal.table)
            );
            if let Ok(g) = Glob::new(&exact) {
                filter.exclude.push(g.compile_matcher());
            }
        }
        filter
    }

    /// Invalid patterns are skipped; `Config::validate` rejects them before this is reached.
    pub fn from_patterns(
        include: &[String],
        exclude: &[String],
        exclude_columns: &[String],
    ) -> Self {
        let compile = |ps: &[String]| -> Vec<GlobMatcher> {
            ps.iter()
                .filter_map(|p| Glob::new(p).ok())
                .map(|g| g.compile_matcher())
                .collect()
        };
        TableFilter {
            include: compile(include),
            exclude: compile(exclude),
            exclude_columns: compile(exclude_columns),
        }
    }

    pub fn captures(&self, database: &str, table: &str) -> bool {
        let name = format!("{database}.{table}");
        self.include.iter().any(|g| g.is_match(&name))
            && !self.exclude.iter().any(|g| g.is_match(&name))
    }

    pub fn drops_column(&self, database: &str, table: &str, column: &str) -> bool {
        if self.exclude_columns.is_empty() {
            return false;
        }
        let name = format!("{database}.{table}.{column}");
        self.exclude_columns.iter().any(|g| g.is_match(&name))
    }
}
