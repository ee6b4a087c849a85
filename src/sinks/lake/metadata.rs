//! binlake's own columns in every Delta table (`_op`, `_seq`, `_source_ts`, `_ingested_at`, with soft
//! delete `_deleted`, and a partition column), named with `lake.metadata_prefix` so that no source column
//! is ever mistaken for one of them.

use super::arrow::utc_micros;
use super::partition::Partitioning;
use super::LakeError;
use crate::event::TableSchema;
use deltalake::arrow::datatypes::{DataType, Field};

/// The metadata column names of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataColumns {
    prefix: String,
    soft_delete: bool,
}

impl MetadataColumns {
    pub fn new(prefix: &str, soft_delete: bool) -> Self {
        MetadataColumns {
            prefix: prefix.to_string(),
            soft_delete,
        }
    }

    pub fn op(&self) -> String {
        format!("{}op", self.prefix)
    }
    pub fn seq(&self) -> String {
        format!("{}seq", self.prefix)
    }
    pub fn source_ts(&self) -> String {
        format!("{}source_ts", self.prefix)
    }
    pub fn ingested_at(&self) -> String {
        format!("{}ingested_at", self.prefix)
    }
    pub fn deleted(&self) -> String {
        format!("{}deleted", self.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The metadata columns this table has, in table order.
    pub fn fields(&self) -> Vec<Field> {
        let mut f = vec![
            Field::new(self.op(), DataType::Utf8, false),
            Field::new(self.seq(), DataType::Int64, false),
            Field::new(self.source_ts(), utc_micros(), true),
            Field::new(self.ingested_at(), utc_micros(), true),
        ];
        if self.soft_delete {
            f.push(Field::new(self.deleted(), DataType::Boolean, false));
        }
        f
    }

    /// Every name binlake owns in this table: the metadata columns and the partition column.
    pub fn owned_names(&self, partitioning: Option<&Partitioning>) -> Vec<String> {
        let mut names: Vec<String> = self.fields().iter().map(|f| f.name().clone()).collect();
        names.extend(partitioning.map(|p| p.column_name()));
        names
    }

    /// A source column with one of binlake's names would be overwritten or dropped: refuse it, naming the
    /// column and the way out. Compared without case, as Athena and Spark resolve column names.
    pub fn check_source(
        &self,
        schema: &TableSchema,
        partitioning: Option<&Partitioning>,
    ) -> Result<(), LakeError> {
        let owned = self.owned_names(partitioning);
        for c in &schema.columns {
            if let Some(clash) = owned.iter().find(|n| n.eq_ignore_ascii_case(&c.name)) {
                return Err(LakeError::Definite(format!(
                    "{}: source column `{}` has the name of binlake's metadata column `{clash}`. Way out: set \
                     lake.metadata_prefix to a prefix no source column starts with (e.g. \"_bl_\"); it applies to \
                     tables binlake creates, so use a new lake.root (binlake then starts with a full snapshot)",
                    schema.id(),
                    c.name
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ColumnKind, ColumnSchema};

    fn schema(columns: &[&str]) -> TableSchema {
        TableSchema {
            database: "d".into(),
            table: "t".into(),
            columns: columns
                .iter()
                .map(|c| ColumnSchema::new(c, ColumnKind::Int))
                .collect(),
            key: vec![0],
            version: 1,
        }
    }

    #[test]
    fn underscore_source_columns_are_fine_unless_they_clash() {
        let meta = MetadataColumns::new("_", false);
        assert!(meta
            .check_source(&schema(&["_id", "_deleted", "x"]), None)
            .is_ok());
        let err = meta
            .check_source(&schema(&["id", "_SEQ"]), None)
            .unwrap_err();
        assert!(
            err.to_string().contains("`_SEQ`") && err.to_string().contains("lake.metadata_prefix")
        );
        let soft = MetadataColumns::new("_", true);
        assert!(soft
            .check_source(&schema(&["id", "_deleted"]), None)
            .is_err());
        let p = Partitioning::parse("day(ts)").unwrap();
        assert!(meta
            .check_source(&schema(&["id", "_ts_day"]), Some(&p))
            .is_err());
        let other = MetadataColumns::new("_bl_", true);
        assert!(other
            .check_source(&schema(&["_id", "_seq", "_op", "_deleted"]), None)
            .is_ok());
        assert_eq!(other.seq(), "_bl_seq");
    }
}
