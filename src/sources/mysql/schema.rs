//! Table schemas: from information_schema (snapshot, MINIMAL-metadata fallback) and from the TABLE_MAP
//! event's optional metadata (FULL), plus the projection that drops excluded columns.

use super::charset::CollationMap;
use super::SourceError;
use crate::config::TableFilter;
use crate::event::{ColumnKind, ColumnSchema, TableId, TableSchema};
use mysql_async::prelude::*;
use mysql_common::binlog::events::{OptionalMetaExtractor, OptionalMetadataField, TableMapEvent};
use mysql_common::constants::ColumnType;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A captured table: the full schema (to decode binlog rows, which carry every column) and the projected
/// schema that events are emitted with (excluded columns removed).
#[derive(Debug, Clone)]
pub struct CapturedTable {
    pub full: Arc<TableSchema>,
    pub projected: Arc<TableSchema>,
    /// Indexes into `full.columns` kept in `projected`.
    pub projection: Vec<usize>,
}

impl CapturedTable {
    pub fn new(full: TableSchema, filter: &TableFilter) -> Result<Self, SourceError> {
        let projection: Vec<usize> = (0..full.columns.len())
            .filter(|&i| !filter.drops_column(&full.database, &full.table, &full.columns[i].name))
            .collect();
        for &k in &full.key {
            if !projection.contains(&k) {
                return Err(SourceError::Config(format!(
                    "column `{}` of {} is part of the key and cannot be excluded (source.exclude_columns)",
                    full.columns[k].name,
                    full.id()
                )));
            }
        }
        let mut full = full;
        full.version = full.content_version();
        let mut projected = full.clone();
        projected.columns = projection
            .iter()
            .map(|&i| full.columns[i].clone())
            .collect();
        projected.key = full
            .key
            .iter()
            .map(|k| projection.iter().position(|p| p == k).unwrap())
            .collect();
        // what readers see is the projected columns: their version is theirs
        projected.version = projected.content_version();
        Ok(CapturedTable {
            full: Arc::new(full),
            projected: Arc::new(projected),
            projection,
        })
    }

    pub fn project(&self, row: Vec<crate::event::Value>) -> Vec<crate::event::Value> {
        if self.projection.len() == row.len() {
            return row;
        }
        let mut row = row;
        self.projection
            .iter()
            .map(|&i| std::mem::replace(&mut row[i], crate::event::Value::Absent))
            .collect()
    }
}

pub fn kind_from_data_type(data_type: &str, charset: Option<&str>) -> Option<ColumnKind> {
    use ColumnKind::*;
    Some(match data_type {
        "tinyint" => TinyInt,
        "smallint" => SmallInt,
        "mediumint" => MediumInt,
        "int" | "integer" => Int,
        "bigint" => BigInt,
        "float" => Float,
        "double" | "real" => Double,
        "decimal" | "numeric" => Decimal,
        "date" => Date,
        "datetime" => DateTime,
        "timestamp" => Timestamp,
        "time" => Time,
        "year" => Year,
        "bit" => Bit,
        "enum" => Enum,
        "set" => Set,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
            if charset == Some("binary") {
                Binary
            } else {
                Text
            }
        }
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Binary,
        "json" => Json,
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => Geometry,
        "vector" => Vector,
        _ => return None,
    })
}

/// Parses the members of `enum('a','b''c')` / `set(...)`.
pub fn parse_members(column_type: &str) -> Vec<String> {
    let Some(start) = column_type.find('(') else {
        return vec![];
    };
    let body = &column_type[start + 1..column_type.rfind(')').unwrap_or(column_type.len())];
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    s.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        s.push(n)
                    }
                }
                other => s.push(other),
            }
        }
        out.push(s);
    }
    out
}

type ColumnRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<u64>,
    Option<u64>,
    String,
);

/// Loads every captured base table's schema. `keys` supplies key columns for tables without a primary key.
pub async fn load_tables(
    conn: &mut mysql_async::Conn,
    filter: &TableFilter,
    keys: &BTreeMap<String, Vec<String>>,
    only: Option<&TableId>,
) -> Result<BTreeMap<TableId, TableSchema>, SourceError> {
    let mut sql = String::from(
        "SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.IS_NULLABLE, \
         c.CHARACTER_SET_NAME, c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.COLUMN_KEY \
         FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
           ON BINARY t.TABLE_SCHEMA = BINARY c.TABLE_SCHEMA AND BINARY t.TABLE_NAME = BINARY c.TABLE_NAME \
         WHERE t.TABLE_TYPE = 'BASE TABLE' \
           AND c.TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')",
    );
    let mut params: Vec<mysql_async::Value> = vec![];
    if let Some(id) = only {
        // information_schema compares names without case: `Quotes` and `quotes` are two tables here
        sql.push_str(" AND BINARY c.TABLE_SCHEMA = BINARY ? AND BINARY c.TABLE_NAME = BINARY ?");
        params.push(id.database.as_str().into());
        params.push(id.table.as_str().into());
    }
    sql.push_str(" ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION");
    let rows: Vec<ColumnRow> = conn.exec(sql, params).await?;
    let pk_rows: Vec<(String, String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE CONSTRAINT_NAME = 'PRIMARY' ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
        )
        .await?;
    let mut pks: HashMap<TableId, Vec<String>> = HashMap::new();
    for (db, t, c) in pk_rows {
        pks.entry(TableId::new(&db, &t)).or_default().push(c);
    }

    let mut tables: BTreeMap<TableId, TableSchema> = BTreeMap::new();
    for (db, table, name, data_type, column_type, nullable, charset, precision, scale, _key) in rows
    {
        if !filter.captures(&db, &table) {
            continue;
        }
        let id = TableId::new(&db, &table);
        let data_type = data_type.to_ascii_lowercase();
        let kind = kind_from_data_type(&data_type, charset.as_deref()).ok_or_else(|| {
            SourceError::UnsupportedType {
                table: id.clone(),
                column: name.clone(),
                sql_type: column_type.clone(),
            }
        })?;
        let members = if matches!(kind, ColumnKind::Enum | ColumnKind::Set) {
            parse_members(&column_type)
        } else {
            vec![]
        };
        let schema = tables.entry(id.clone()).or_insert_with(|| TableSchema {
            database: db.clone(),
            table: table.clone(),
            columns: vec![],
            key: vec![],
            version: 1,
        });
        let precision = match kind {
            ColumnKind::Decimal => precision.map(|p| p as u32),
            ColumnKind::Bit => precision.map(|p| p as u32),
            ColumnKind::DateTime | ColumnKind::Timestamp | ColumnKind::Time => {
                Some(fractional_digits(&column_type))
            }
            _ => None,
        };
        schema.columns.push(ColumnSchema {
            unsigned: column_type.contains("unsigned"),
            name,
            kind,
            sql_type: column_type,
            nullable: nullable == "YES",
            charset,
            members,
            precision,
            scale: if kind == ColumnKind::Decimal {
                scale.map(|s| s as u32)
            } else {
                None
            },
            added: None,
        });
    }
    let mut unique: Option<HashMap<TableId, Vec<UniqueIndex>>> = None;
    for (id, schema) in tables.iter_mut() {
        let configured = crate::config::for_table(keys, id);
        let key_names = configured
            .cloned()
            .or_else(|| pks.get(id).cloned())
            .unwrap_or_default();
        schema.key = resolve_key(schema, &key_names)?;
        if let Some(names) = configured {
            if unique.is_none() {
                unique = Some(unique_indexes(conn, only).await?);
            }
            let indexes = unique.as_ref().and_then(|u| u.get(id)).map(Vec::as_slice);
            check_configured_key(id, names, indexes.unwrap_or_default())?;
        }
    }
    Ok(tables)
}

/// A UNIQUE index (or the primary key): its columns, and whether each is NOT NULL.
#[derive(Debug, Clone)]
struct UniqueIndex {
    name: String,
    columns: Vec<(String, bool)>,
}

async fn unique_indexes(
    conn: &mut mysql_async::Conn,
    only: Option<&TableId>,
) -> Result<HashMap<TableId, Vec<UniqueIndex>>, SourceError> {
    let mut sql = String::from(
        "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, COLUMN_NAME, NULLABLE FROM information_schema.STATISTICS \
         WHERE NON_UNIQUE = 0",
    );
    let mut params: Vec<mysql_async::Value> = vec![];
    if let Some(id) = only {
        sql.push_str(" AND BINARY TABLE_SCHEMA = BINARY ? AND BINARY TABLE_NAME = BINARY ?");
        params.push(id.database.as_str().into());
        params.push(id.table.as_str().into());
    }
    sql.push_str(" ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX");
    let rows: Vec<(String, String, String, String, String)> = conn.exec(sql, params).await?;
    let mut out: HashMap<TableId, Vec<UniqueIndex>> = HashMap::new();
    for (db, table, index, column, nullable) in rows {
        let indexes = out.entry(TableId::new(&db, &table)).or_default();
        if indexes.last().is_none_or(|i| i.name != index) {
            indexes.push(UniqueIndex {
                name: index,
                columns: vec![],
            });
        }
        let last = indexes.last_mut().expect("pushed above");
        last.columns
            .push((column, !nullable.eq_ignore_ascii_case("YES")));
    }
    Ok(out)
}

/// A key from `source.keys` must identify rows: some UNIQUE index over NOT NULL columns lies within
/// it. Otherwise rows sharing a key value would collapse into one in the lake.
fn check_configured_key(
    id: &TableId,
    key: &[String],
    indexes: &[UniqueIndex],
) -> Result<(), SourceError> {
    let in_key = |c: &str| key.iter().any(|k| k.eq_ignore_ascii_case(c));
    let covered = indexes
        .iter()
        .any(|i| i.columns.iter().all(|(c, not_null)| *not_null && in_key(c)));
    if covered {
        return Ok(());
    }
    let nullable_unique: Vec<&str> = indexes
        .iter()
        .filter(|i| i.columns.iter().all(|(c, _)| in_key(c)))
        .map(|i| i.name.as_str())
        .collect();
    let why = if nullable_unique.is_empty() {
        "no UNIQUE index lies within those columns, so rows may share a key value".to_string()
    } else {
        format!(
            "the UNIQUE index(es) {} within them allow NULLs, and rows with NULL keys may repeat",
            nullable_unique.join(", ")
        )
    };
    Err(SourceError::Config(format!(
        "source.keys gives {id} the key ({}), but {why}; binlake would keep one row per key value and lose \
         the others. Fix: add a primary key or a UNIQUE index over NOT NULL columns to {id} in MySQL, or \
         name such columns in source.keys",
        key.join(", ")
    )))
}

fn resolve_key(schema: &TableSchema, names: &[String]) -> Result<Vec<usize>, SourceError> {
    names
        .iter()
        .map(|n| {
            schema.column_index(n).ok_or_else(|| {
                SourceError::Config(format!(
                    "key column `{n}` configured for {} does not exist",
                    schema.id()
                ))
            })
        })
        .collect()
}

/// Column kind for a TABLE_MAP column type.
fn kind_from_column_type(t: ColumnType, charset: Option<&str>) -> ColumnKind {
    use ColumnType::*;
    let text_or_binary = if charset == Some("binary") {
        ColumnKind::Binary
    } else {
        ColumnKind::Text
    };
    match t {
        MYSQL_TYPE_TINY => ColumnKind::TinyInt,
        MYSQL_TYPE_SHORT => ColumnKind::SmallInt,
        MYSQL_TYPE_INT24 => ColumnKind::MediumInt,
        MYSQL_TYPE_LONG => ColumnKind::Int,
        MYSQL_TYPE_LONGLONG => ColumnKind::BigInt,
        MYSQL_TYPE_FLOAT => ColumnKind::Float,
        MYSQL_TYPE_DOUBLE => ColumnKind::Double,
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => ColumnKind::Decimal,
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => ColumnKind::Date,
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => ColumnKind::DateTime,
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => ColumnKind::Timestamp,
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => ColumnKind::Time,
        MYSQL_TYPE_YEAR => ColumnKind::Year,
        MYSQL_TYPE_BIT => ColumnKind::Bit,
        MYSQL_TYPE_ENUM => ColumnKind::Enum,
        MYSQL_TYPE_SET => ColumnKind::Set,
        MYSQL_TYPE_JSON => ColumnKind::Json,
        MYSQL_TYPE_GEOMETRY => ColumnKind::Geometry,
        MYSQL_TYPE_VECTOR => ColumnKind::Vector,
        _ => text_or_binary,
    }
}

/// What a TABLE_MAP event says about its table. `names_known` is false with binlog_row_metadata=MINIMAL.
pub struct TableMapSchema {
    pub schema: TableSchema,
    pub names_known: bool,
    /// Column types as the rows are encoded, to check an information_schema schema against.
    pub column_types: Vec<ColumnType>,
}

pub fn schema_from_table_map(
    tme: &TableMapEvent<'_>,
    collations: &CollationMap,
) -> std::io::Result<TableMapSchema> {
    let n = tme.columns_count() as usize;
    let meta = OptionalMetaExtractor::new(tme.iter_optional_meta())?;
    let mut signedness = meta.iter_signedness();
    let mut charsets = meta.iter_charset();
    let mut enum_set_charsets = meta.iter_enum_and_set_charset();
    let mut names = meta.iter_column_name();
    let pk: Vec<u64> = meta.iter_primary_key().collect::<std::io::Result<_>>()?;

    let mut enum_values: Vec<Vec<String>> = vec![];
    let mut set_values: Vec<Vec<String>> = vec![];
    for field in tme.iter_optional_meta() {
        match field? {
            OptionalMetadataField::EnumStrValue(v) => {
                for e in v.iter_values() {
                    enum_values.push(e?.values().iter().map(|x| x.value().into_owned()).collect());
                }
            }
            OptionalMetadataField::SetStrValue(v) => {
                for s in v.iter_values() {
                    set_values.push(s?.values().iter().map(|x| x.value().into_owned()).collect());
                }
            }
            _ => {}
        }
    }
    let (mut enum_iter, mut set_iter) = (enum_values.into_iter(), set_values.into_iter());

    let mut columns = Vec::with_capacity(n);
    let mut column_types = Vec::with_capacity(n);
    let mut names_known = true;
    for i in 0..n {
        let t = tme
            .get_column_type(i)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "TABLE_MAP without column type",
                )
            })?;
        column_types.push(t);
        let col_meta = tme.get_column_metadata(i).unwrap_or(&[]);
        let unsigned = t.is_numeric_type() && signedness.next().unwrap_or(false);
        let charset_id = if t.is_character_type() {
            charsets.next().transpose()?
        } else if t.is_enum_or_set_type() {
            enum_set_charsets.next().transpose()?
        } else {
            None
        };
        let charset = charset_id.map(|id| collations.charset(id).unwrap_or("utf8mb4").to_string());
        let name = match names.next().transpose()? {
            Some(n) => n.name().into_owned(),
            None => {
                names_known = false;
                format!("@{i}")
            }
        };
        let kind = kind_from_column_type(t, charset.as_deref());
        let members = match kind {
            ColumnKind::Enum => enum_iter.next().unwrap_or_default(),
            ColumnKind::Set => set_iter.next().unwrap_or_default(),
            _ => vec![],
        };
        let (precision, scale) = match kind {
            ColumnKind::Decimal if col_meta.len() >= 2 => {
                (Some(col_meta[0] as u32), Some(col_meta[1] as u32))
            }
            ColumnKind::Bit if col_meta.len() >= 2 => {
                (Some(col_meta[1] as u32 * 8 + col_meta[0] as u32), None)
            }
            // DATETIME2/TIMESTAMP2/TIME2 carry their fractional digits; the pre-5.6 types have none
            ColumnKind::DateTime | ColumnKind::Timestamp | ColumnKind::Time => {
                (Some(col_meta.first().map_or(0, |&f| f as u32)), None)
            }
            _ => (None, None),
        };
        let nullable = tme.null_bitmask().get(i).map(|b| *b).unwrap_or(true);
        columns.push(ColumnSchema {
            name,
            sql_type: format!("{kind:?}").to_ascii_lowercase(),
            kind,
            unsigned,
            nullable,
            charset: if matches!(kind, ColumnKind::Text | ColumnKind::Enum | ColumnKind::Set) {
                charset
            } else {
                None
            },
            members,
            precision,
            scale,
            added: None,
        });
    }
    let schema = TableSchema {
        database: tme.database_name().into_owned(),
        table: tme.table_name().into_owned(),
        columns,
        key: pk.into_iter().map(|k| k as usize).collect(),
        version: 1,
    };
    Ok(TableMapSchema {
        schema,
        names_known,
        column_types,
    })
}

/// Fractional-second digits of a temporal column type: `datetime(6)` → 6, `timestamp` → 0.
fn fractional_digits(column_type: &str) -> u32 {
    column_type
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(digits, _)| digits.trim().parse().ok())
        .unwrap_or(0)
}

/// True when two schemas decode and present rows identically (ignores the `sql_type` text and versions).
pub fn same_shape(a: &TableSchema, b: &TableSchema) -> bool {
    a.key == b.key
        && a.columns.len() == b.columns.len()
        && a.columns.iter().zip(&b.columns).all(|(x, y)| {
            x.name == y.name
                && x.kind == y.kind
                && x.unsigned == y.unsigned
                && x.members == y.members
                && x.charset == y.charset
                && (x.kind != ColumnKind::Decimal
                    || (x.precision, x.scale) == (y.precision, y.scale))
        })
}

/// True when an information_schema schema can decode rows described by a MINIMAL TABLE_MAP.
pub fn matches_table_map(schema: &TableSchema, tm: &TableMapSchema) -> bool {
    schema.columns.len() == tm.schema.columns.len()
        && schema.columns.iter().zip(&tm.schema.columns).all(|(s, t)| {
            s.kind == t.kind
                || matches!(
                    (s.kind, t.kind),
                    (ColumnKind::Text, ColumnKind::Binary) | (ColumnKind::Binary, ColumnKind::Text)
                )
                || (s.kind == ColumnKind::Json
                    && matches!(t.kind, ColumnKind::Text | ColumnKind::Binary))
        })
}

pub async fn load_collations(conn: &mut mysql_async::Conn) -> Result<CollationMap, SourceError> {
    let rows: Vec<(u64, String)> = conn
        .query(
            "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL",
        )
        .await?;
    Ok(CollationMap::from_pairs(
        rows.into_iter().map(|(id, cs)| (id as u16, cs)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_members_with_quotes_and_commas() {
        assert_eq!(
            parse_members("enum('a','b''c','d,e')"),
            vec!["a", "b'c", "d,e"]
        );
        assert_eq!(parse_members("set('x','')"), vec!["x", ""]);
    }

    #[test]
    fn a_configured_key_needs_a_unique_not_null_index_within_it() {
        let id = TableId::new("d", "t");
        let index = |name: &str, cols: &[(&str, bool)]| UniqueIndex {
            name: name.into(),
            columns: cols.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
        };
        let key = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // no index at all: rows may share the key
        let e = check_configured_key(&id, &key(&["sym"]), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("d.t") && e.contains("(sym)") && e.contains("Fix:"),
            "{e}"
        );
        // a unique index within the key, NOT NULL: the key is unique
        let u = [index("u_id", &[("id", true)])];
        check_configured_key(&id, &key(&["id", "sym"]), &u).unwrap();
        check_configured_key(&id, &key(&["ID"]), &u).unwrap();
        // one that reaches outside the key does not make it unique
        let wide = [index("u_id_day", &[("id", true), ("day", true)])];
        assert!(check_configured_key(&id, &key(&["id"]), &wide).is_err());
        // NULLs repeat under a UNIQUE index
        let nullable = [index("u_code", &[("code", false)])];
        let e = check_configured_key(&id, &key(&["code"]), &nullable)
            .unwrap_err()
            .to_string();
        assert!(e.contains("u_code") && e.contains("NULL"), "{e}");
    }
}
