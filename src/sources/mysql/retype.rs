//! Whether an ALTER TABLE may have rewritten the values of rows that already existed. MySQL converts
//! every row in place when a column's type changes (INT → BIGINT, DECIMAL(10,2) → DECIMAL(10,0),
//! DATETIME(6) → DATETIME(0), a shorter VARCHAR…) and logs no row event for it. (NULL → NOT NULL is not
//! counted: the schema read at start does not say nullability the way the one read after a DDL does, and
//! in strict mode, the default, MySQL refuses the change while NULLs exist.) The
//! lake can follow such a table only by reading it again; widenings that keep every value and the lake's
//! column type (a longer VARCHAR, more fractional digits, ENUM members appended) need nothing.

use crate::event::{ColumnKind, ColumnSchema, TableSchema};

/// Why the rows `old` held may differ from what `new` holds now, or `None` when every column that both
/// have keeps its values and its representation.
pub fn values_rewritten(old: &TableSchema, new: &TableSchema) -> Option<String> {
    let named = |cols: &[ColumnSchema], name: &str| cols.iter().any(|c| c.name == name);
    let went = old.columns.iter().any(|c| !named(&new.columns, &c.name));
    let came = new.columns.iter().any(|c| !named(&old.columns, &c.name));
    if went && came {
        // CHANGE old new renames a column and keeps its values, which no event carries
        return Some("columns went and others came in one statement (a column renamed?)".into());
    }
    old.columns.iter().find_map(|o| {
        let n = new.columns.iter().find(|n| n.name == o.name)?;
        column_rewritten(o, n).map(|why| format!("column `{}` {why}", o.name))
    })
}

fn column_rewritten(o: &ColumnSchema, n: &ColumnSchema) -> Option<String> {
    let retyped = || Some(format!("changed from {} to {}", o.sql_type, n.sql_type));
    if o.kind != n.kind || o.unsigned != n.unsigned {
        return retyped();
    }
    match o.kind {
        ColumnKind::Decimal | ColumnKind::Bit
            if (o.precision, o.scale) != (n.precision, n.scale) =>
        {
            retyped()
        }
        ColumnKind::DateTime | ColumnKind::Timestamp | ColumnKind::Time
            if n.precision.unwrap_or(0) < o.precision.unwrap_or(0) =>
        {
            retyped() // fractional seconds rounded away
        }
        ColumnKind::Enum | ColumnKind::Set if !n.members.starts_with(&o.members) => retyped(),
        ColumnKind::Text | ColumnKind::Binary => {
            // a schema read from a TABLE_MAP names only the kind (`text`): its length is unknown
            let sized =
                |c: &ColumnSchema| c.sql_type != format!("{:?}", c.kind).to_ascii_lowercase();
            let shorter = sized(o)
                && sized(n)
                && capacity(&n.sql_type)
                    .zip(capacity(&o.sql_type))
                    .is_some_and(|(n, o)| n < o);
            if shorter {
                return retyped(); // values may have been cut short
            }
            if !charset_keeps_text(o.charset.as_deref(), n.charset.as_deref()) {
                return Some(format!(
                    "changed character set from {} to {}",
                    o.charset.as_deref().unwrap_or("binary"),
                    n.charset.as_deref().unwrap_or("binary")
                ));
            }
            None
        }
        _ => None,
    }
}

/// Whether converting text from `old` to `new` keeps every character: the same set, or into UTF-8 (to
/// utf8mb4 from anything, to utf8mb3 from anything but utf8mb4).
fn charset_keeps_text(old: Option<&str>, new: Option<&str>) -> bool {
    let unify = |c: &str| if c == "utf8" { "utf8mb3" } else { c }.to_string();
    match (old.map(unify), new.map(unify)) {
        (o, n) if o == n => true,
        (_, Some(n)) if n == "utf8mb4" => true,
        (Some(o), Some(n)) if n == "utf8mb3" => o != "utf8mb4",
        _ => false,
    }
}

/// The most characters (or bytes) a string type holds: `varchar(20)` → 20, `mediumtext` → 16 MiB − 1;
/// `None` when the type does not say (then no shrink is assumed).
fn capacity(sql_type: &str) -> Option<u64> {
    let t = sql_type.to_ascii_lowercase();
    if let Some(open) = t.find('(') {
        let close = t[open..].find(')')? + open;
        return t[open + 1..close].trim().parse().ok();
    }
    let base = t.split_whitespace().next()?;
    Some(match base {
        "tinytext" | "tinyblob" => 255,
        "text" | "blob" => 65_535,
        "mediumtext" | "mediumblob" => 16_777_215,
        "longtext" | "longblob" => 4_294_967_295,
        "char" | "binary" => 1,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::TableId;

    fn col(name: &str, kind: ColumnKind, sql_type: &str) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            kind,
            sql_type: sql_type.into(),
            unsigned: false,
            nullable: true,
            charset: matches!(kind, ColumnKind::Text).then(|| "utf8mb4".into()),
            members: vec![],
            precision: None,
            scale: None,
            added: None,
        }
    }

    fn table(columns: Vec<ColumnSchema>) -> TableSchema {
        let mut t = TableSchema::named_only(&TableId::new("d", "t"));
        t.columns = columns;
        t
    }

    fn rewritten(old: ColumnSchema, new: ColumnSchema) -> Option<String> {
        let id = col("id", ColumnKind::Int, "int(11)");
        values_rewritten(&table(vec![id.clone(), old]), &table(vec![id, new]))
    }

    #[test]
    fn widenings_that_keep_values_and_lake_types_need_nothing() {
        let v = |t: &str| col("v", ColumnKind::Text, t);
        assert_eq!(rewritten(v("varchar(10)"), v("varchar(200)")), None);
        assert_eq!(rewritten(v("varchar(10)"), v("text")), None);
        assert_eq!(rewritten(v("tinytext"), v("mediumtext")), None);
        let mut latin = v("varchar(10)");
        latin.charset = Some("latin1".into());
        assert_eq!(rewritten(latin, v("varchar(10)")), None);
        let ts = col("ts", ColumnKind::DateTime, "datetime");
        let mut finer = ts.clone();
        finer.precision = Some(6);
        assert_eq!(rewritten(ts, finer.clone()), None);
        assert!(rewritten(finer, col("ts", ColumnKind::DateTime, "datetime")).is_some());
        let mut e = col("e", ColumnKind::Enum, "enum('a','b')");
        e.members = vec!["a".into(), "b".into()];
        let mut more = e.clone();
        more.members.push("c".into());
        assert_eq!(rewritten(e.clone(), more.clone()), None);
        assert!(rewritten(more, e).is_some(), "a member removed");
        let mut not_null = col("n", ColumnKind::Int, "int(11)");
        not_null.nullable = false;
        assert_eq!(
            rewritten(not_null.clone(), col("n", ColumnKind::Int, "int(11)")),
            None
        );
        assert_eq!(
            rewritten(col("n", ColumnKind::Int, "int(11)"), not_null),
            None
        );
    }

    #[test]
    fn conversions_that_may_rewrite_values_are_named() {
        let why = rewritten(
            col("v", ColumnKind::Int, "int(11)"),
            col("v", ColumnKind::BigInt, "bigint(20)"),
        )
        .unwrap();
        assert!(why.contains("`v`") && why.contains("bigint(20)"), "{why}");
        let v = |t: &str| col("v", ColumnKind::Text, t);
        assert!(rewritten(v("varchar(20)"), v("varchar(5)")).is_some());
        assert!(rewritten(v("mediumtext"), v("varchar(100)")).is_some());
        // a TABLE_MAP's schema says only `text`: no length to compare
        assert_eq!(rewritten(v("text"), v("varchar(100)")), None);
        let mut ascii = v("varchar(10)");
        ascii.charset = Some("ascii".into());
        assert!(rewritten(v("varchar(10)"), ascii).is_some());
        let mut d = col("d", ColumnKind::Decimal, "decimal(10,2)");
        (d.precision, d.scale) = (Some(10), Some(2));
        let mut coarser = d.clone();
        coarser.scale = Some(0);
        assert!(rewritten(d, coarser).is_some());
        let mut unsigned = col("u", ColumnKind::Int, "int(10) unsigned");
        unsigned.unsigned = true;
        assert!(rewritten(col("u", ColumnKind::Int, "int(11)"), unsigned).is_some());
    }

    #[test]
    fn a_column_renamed_is_told_from_columns_added_or_dropped() {
        let id = col("id", ColumnKind::Int, "int(11)");
        let a = col("a", ColumnKind::Int, "int(11)");
        let b = col("b", ColumnKind::Int, "int(11)");
        let before = table(vec![id.clone(), a.clone()]);
        assert!(values_rewritten(&before, &table(vec![id.clone(), b.clone()])).is_some());
        assert_eq!(
            values_rewritten(&before, &table(vec![id.clone(), a.clone(), b])),
            None
        );
        assert_eq!(values_rewritten(&before, &table(vec![id])), None);
    }
}
