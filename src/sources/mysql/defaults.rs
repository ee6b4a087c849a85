//! The value a column added by ALTER TABLE took in the rows that existed: MySQL fills them with the
//! column's default (or the type's implicit one for a NOT NULL column without a default) and logs no row
//! event for it, so the lake must be told.

use super::decode::from_snapshot;
use super::SourceError;
use crate::event::{BinlogPosition, ColumnKind, ColumnSchema, TableId, Value};
use mysql_async::prelude::*;

/// How information_schema writes a column's default.
#[derive(Debug, PartialEq)]
enum Default {
    /// NULL, or none on a nullable column.
    Null,
    /// None on a NOT NULL column: the type's implicit default.
    Implicit,
    /// A constant, which `DEFAULT(col)` evaluates.
    Literal,
    /// CURRENT_TIMESTAMP and its synonyms: the statement's time.
    Now,
    /// Any other expression: one value per row, which binlake cannot know.
    Expression(String),
}

/// Reads `COLUMN_DEFAULT` and `EXTRA` as MySQL 8 (unquoted literals, `DEFAULT_GENERATED` for
/// expressions, SQL NULL for a NULL default) and MariaDB ≥ 10.2.7 (quoted string literals, `NULL` as
/// text for a NULL default, SQL NULL for none) write them.
fn classify(default: Option<&str>, extra: &str, nullable: bool) -> Default {
    let Some(text) = default else {
        return if nullable {
            Default::Null
        } else {
            Default::Implicit
        };
    };
    let upper = text.trim().to_ascii_uppercase();
    if ["CURRENT_TIMESTAMP", "NOW(", "LOCALTIME"]
        .iter()
        .any(|f| upper.starts_with(f))
    {
        return Default::Now;
    }
    if extra.to_ascii_uppercase().contains("DEFAULT_GENERATED") {
        return Default::Expression(text.to_string());
    }
    if upper == "NULL" {
        return Default::Null;
    }
    // MariaDB quotes string literals and writes expressions bare; MySQL writes literals bare
    let literal = text.starts_with('\'')
        || text.parse::<f64>().is_ok()
        || upper.starts_with("B'")
        || upper.starts_with("X'")
        || upper.starts_with("0X")
        || !text.contains('(');
    if literal {
        Default::Literal
    } else {
        Default::Expression(text.to_string())
    }
}

/// The value MySQL gives a NOT NULL column without a default in rows that existed when it was added.
fn implicit(column: &ColumnSchema) -> Option<Value> {
    use ColumnKind as K;
    Some(match column.kind {
        K::TinyInt | K::SmallInt | K::MediumInt | K::Int | K::BigInt if column.unsigned => {
            Value::UInt(0)
        }
        K::TinyInt | K::SmallInt | K::MediumInt | K::Int | K::BigInt => Value::Int(0),
        K::Float => Value::Float(0.0),
        K::Double => Value::Double(0.0),
        K::Decimal => {
            let scale = column.scale.unwrap_or(0) as usize;
            Value::Decimal(if scale == 0 {
                "0".into()
            } else {
                format!("0.{}", "0".repeat(scale))
            })
        }
        K::Date => Value::Date {
            year: 0,
            month: 0,
            day: 0,
        },
        K::DateTime => Value::DateTime {
            year: 0,
            month: 0,
            day: 0,
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
        },
        K::Timestamp => Value::Timestamp { secs: 0, micros: 0 },
        K::Time => Value::Time {
            negative: false,
            hours: 0,
            minutes: 0,
            seconds: 0,
            micros: 0,
        },
        K::Year => Value::Year(0),
        K::Bit => Value::Bit(0),
        K::Enum => Value::Enum(column.members.first().cloned().unwrap_or_default()),
        K::Set => Value::Set(String::new()),
        K::Text => Value::String(String::new()),
        K::Binary => Value::Bytes(vec![]),
        K::Json | K::Geometry | K::Vector => return None,
    })
}

fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// The value the existing rows of `id` took for `column`, just added by a statement logged at
/// `statement_ts_ms`. `None`: nothing to fill in (NULL, or the column or table is gone again, or the
/// table has no row). A default binlake cannot reproduce is a definite error naming the table.
pub async fn added_default(
    conn: &mut mysql_async::Conn,
    id: &TableId,
    column: &ColumnSchema,
    statement_ts_ms: i64,
) -> Result<Option<Value>, SourceError> {
    let row: Option<(Option<String>, String, String)> = conn
        .exec_first(
            "SELECT COLUMN_DEFAULT, EXTRA, IS_NULLABLE FROM information_schema.COLUMNS \
             WHERE BINARY TABLE_SCHEMA = BINARY ? AND BINARY TABLE_NAME = BINARY ? \
               AND BINARY COLUMN_NAME = BINARY ?",
            (&id.database, &id.table, &column.name),
        )
        .await?;
    let Some((default, extra, nullable)) = row else {
        return Ok(None);
    };
    // the decoder puts in the statement's position
    let cannot = |why: String| {
        SourceError::NeedsSnapshot {
        table: id.clone(),
        position: BinlogPosition::new("", 0),
        detail: format!(
            "column `{}` was added with {why}; the rows that existed got values binlake cannot know",
            column.name
        ),
    }
    };
    match classify(default.as_deref(), &extra, nullable == "YES") {
        Default::Null => Ok(None),
        Default::Implicit => implicit(column)
            .map(Some)
            .ok_or_else(|| cannot(format!("no default on a NOT NULL {:?} column", column.kind))),
        Default::Now => match (column.kind, column.precision.unwrap_or(0)) {
            // the statement's time is in the event, to the second
            (ColumnKind::Timestamp, 0) => Ok(Some(Value::Timestamp {
                secs: statement_ts_ms.div_euclid(1000),
                micros: 0,
            })),
            _ => Err(cannot(format!(
                "DEFAULT {} on a {:?} column (the statement's time is known to the second, in UTC)",
                default.unwrap_or_default(),
                column.kind
            ))),
        },
        Default::Expression(e) => Err(cannot(format!("the expression default {e}"))),
        Default::Literal => {
            let sql = format!(
                "SELECT DEFAULT({}) FROM {}.{} LIMIT 1",
                quote(&column.name),
                quote(&id.database),
                quote(&id.table)
            );
            // the binary protocol, as the snapshot reads: typed values for `from_snapshot`
            let value: Option<mysql_async::Value> = conn.query_first(sql).await?;
            let Some(value) = value else {
                return Ok(None); // no rows: nothing existed to fill
            };
            // DEFAULT() comes back as text, whatever the column's type
            from_snapshot(column, typed(column, value))
                .map(Some)
                .map_err(|e| SourceError::Decode {
                    table: id.clone(),
                    detail: format!("`{}` (its default): {}", column.name, e.0),
                })
        }
    }
}

/// A value the server sent as text, typed as the binary protocol (which the snapshot reads) types it.
fn typed(column: &ColumnSchema, value: mysql_async::Value) -> mysql_async::Value {
    use mysql_async::Value as M;
    use ColumnKind as K;
    let M::Bytes(bytes) = &value else {
        return value;
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return value;
    };
    let text = text.trim();
    let parsed = match column.kind {
        K::TinyInt | K::SmallInt | K::MediumInt | K::Int | K::BigInt if column.unsigned => {
            text.parse().ok().map(M::UInt)
        }
        K::TinyInt | K::SmallInt | K::MediumInt | K::Int | K::BigInt | K::Year => {
            text.parse().ok().map(M::Int)
        }
        K::Float => text.parse().ok().map(M::Float),
        K::Double => text.parse().ok().map(M::Double),
        K::Date | K::DateTime | K::Timestamp => parse_datetime(text),
        K::Time => parse_time(text),
        _ => None,
    };
    parsed.unwrap_or(value)
}

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]]` as the binary protocol's date value.
fn parse_datetime(text: &str) -> Option<mysql_async::Value> {
    let (date, time) = text.split_once(' ').unwrap_or((text, "00:00:00"));
    let mut d = date.split('-').map(|p| p.parse::<u32>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|p| p.parse::<u32>().ok());
    let (h, mi, s) = (t.next()??, t.next()??, t.next()??);
    let micros = format!("{frac:0<6}").get(..6)?.parse::<u32>().ok()?;
    Some(mysql_async::Value::Date(
        y as u16, mo as u8, day as u8, h as u8, mi as u8, s as u8, micros,
    ))
}

/// `[-]HHH:MM:SS[.ffffff]` as the binary protocol's time value.
fn parse_time(text: &str) -> Option<mysql_async::Value> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (hms, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut t = hms.split(':').map(|p| p.parse::<u32>().ok());
    let (h, mi, s) = (t.next()??, t.next()??, t.next()??);
    let micros = format!("{frac:0<6}").get(..6)?.parse::<u32>().ok()?;
    Some(mysql_async::Value::Time(
        negative,
        h / 24,
        (h % 24) as u8,
        mi as u8,
        s as u8,
        micros,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_read_as_both_servers_write_them() {
        // MariaDB
        assert_eq!(classify(Some("'dflt'"), "", true), Default::Literal);
        assert_eq!(classify(Some("7"), "", false), Default::Literal);
        assert_eq!(classify(Some("NULL"), "", true), Default::Null);
        assert_eq!(classify(None, "", true), Default::Null);
        assert_eq!(classify(None, "", false), Default::Implicit);
        assert_eq!(
            classify(Some("current_timestamp()"), "", false),
            Default::Now
        );
        assert_eq!(
            classify(Some("rand()"), "", true),
            Default::Expression("rand()".into())
        );
        assert_eq!(classify(Some("b'101'"), "", true), Default::Literal);
        // MySQL 8
        assert_eq!(classify(Some("dflt"), "", true), Default::Literal);
        assert_eq!(
            classify(Some("CURRENT_TIMESTAMP"), "DEFAULT_GENERATED", false),
            Default::Now
        );
        assert_eq!(
            classify(Some("(now() + interval 1 day)"), "DEFAULT_GENERATED", true),
            Default::Expression("(now() + interval 1 day)".into())
        );
    }

    #[test]
    fn text_defaults_take_the_column_type() {
        use mysql_async::Value as M;
        let col = |kind| ColumnSchema::new("c", kind);
        let text = |t: &str| M::Bytes(t.as_bytes().to_vec());
        assert_eq!(typed(&col(ColumnKind::Int), text("7")), M::Int(7));
        assert_eq!(typed(&col(ColumnKind::Double), text("2.5")), M::Double(2.5));
        assert_eq!(
            typed(&col(ColumnKind::DateTime), text("2026-12-07 01:02:03.5")),
            M::Date(2026, 12, 7, 1, 2, 3, 500_000)
        );
        assert_eq!(
            typed(&col(ColumnKind::Date), text("2026-12-07")),
            M::Date(2026, 12, 7, 0, 0, 0, 0)
        );
        assert_eq!(
            typed(&col(ColumnKind::Time), text("-838:59:59")),
            M::Time(true, 34, 22, 59, 59, 0)
        );
        assert_eq!(typed(&col(ColumnKind::Text), text("dflt")), text("dflt"));
    }

    #[test]
    fn implicit_defaults_follow_the_type() {
        let col = |kind| ColumnSchema::new("c", kind);
        assert_eq!(implicit(&col(ColumnKind::Int)), Some(Value::Int(0)));
        assert_eq!(
            implicit(&ColumnSchema {
                scale: Some(2),
                ..col(ColumnKind::Decimal)
            }),
            Some(Value::Decimal("0.00".into()))
        );
        assert_eq!(
            implicit(&col(ColumnKind::Text)),
            Some(Value::String(String::new()))
        );
        assert_eq!(
            implicit(&ColumnSchema {
                members: vec!["x".into(), "y".into()],
                ..col(ColumnKind::Enum)
            }),
            Some(Value::Enum("x".into()))
        );
        assert_eq!(implicit(&col(ColumnKind::Json)), None);
    }
}
