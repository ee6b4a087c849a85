//! Just enough DDL recognition to know which tables a statement touches and whether it truncates.

#[derive(Debug, PartialEq, Eq)]
pub enum Ddl {
    /// CREATE/ALTER/DROP/RENAME: schemas of these `(database, table)` pairs may have changed.
    SchemaChange(Vec<(Option<String>, String)>),
    Truncate(Option<String>, String),
    Other,
}

/// Classifies a statement from a QUERY event. Table names without a database use the event's default schema.
pub fn classify(sql: &str) -> Ddl {
    let tokens = tokenize(sql);
    let upper: Vec<String> = tokens.iter().map(|t| t.to_ascii_uppercase()).collect();
    let word = |i: usize| upper.get(i).map(String::as_str).unwrap_or("");
    let mut i = 0;
    match word(0) {
        "TRUNCATE" => {
            i = if word(1) == "TABLE" { 2 } else { 1 };
            match table_name(&tokens, &mut i) {
                Some((db, t)) => Ddl::Truncate(db, t),
                None => Ddl::Other,
            }
        }
        "ALTER" | "CREATE" | "DROP" | "RENAME" => {
            // skip modifiers up to TABLE: CREATE TEMPORARY TABLE, ALTER ONLINE IGNORE TABLE, CREATE OR REPLACE TABLE
            while i < upper.len() && upper[i] != "TABLE" {
                if matches!(
                    word(i),
                    "INDEX"
                        | "VIEW"
                        | "DATABASE"
                        | "SCHEMA"
                        | "USER"
                        | "TRIGGER"
                        | "PROCEDURE"
                        | "FUNCTION"
                        | "EVENT"
                        | "SEQUENCE"
                ) {
                    return Ddl::Other;
                }
                i += 1;
            }
            if word(i - 1) == "TEMPORARY" || i >= upper.len() {
                return Ddl::Other;
            }
            i += 1;
            if word(i) == "IF" {
                i += if word(i + 1) == "NOT" { 3 } else { 2 };
            }
            let mut tables = vec![];
            let renaming = word(0) == "RENAME";
            let dropping = word(0) == "DROP";
            // DROP and RENAME take comma-separated lists; ALTER … RENAME [TO|AS] names a second table.
            while let Some(name) = table_name(&tokens, &mut i) {
                tables.push(name);
                if renaming && word(i) == "TO" {
                    i += 1;
                    tables.extend(table_name(&tokens, &mut i));
                }
                if (renaming || dropping) && word(i) == "," {
                    i += 1;
                    continue;
                }
                if word(0) == "ALTER" && word(i) == "RENAME" {
                    i += 1;
                    if matches!(word(i), "TO" | "AS") {
                        i += 1;
                    }
                    tables.extend(table_name(&tokens, &mut i));
                }
                break;
            }
            if tables.is_empty() {
                Ddl::Other
            } else {
                Ddl::SchemaChange(tables)
            }
        }
        _ => Ddl::Other,
    }
}

fn table_name(tokens: &[String], i: &mut usize) -> Option<(Option<String>, String)> {
    let first = ident(tokens.get(*i)?)?;
    *i += 1;
    if tokens.get(*i).map(String::as_str) == Some(".") {
        let second = ident(tokens.get(*i + 1)?)?;
        *i += 2;
        Some((Some(first), second))
    } else {
        Some((None, first))
    }
}

fn ident(tok: &str) -> Option<String> {
    if let Some(inner) = tok.strip_prefix('`') {
        return Some(inner.strip_suffix('`').unwrap_or(inner).replace("``", "`"));
    }
    if tok
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        && !tok.is_empty()
    {
        Some(tok.to_string())
    } else {
        None
    }
}

/// Splits into identifiers, backquoted names, and single punctuation characters; skips comments and strings.
fn tokenize(sql: &str) -> Vec<String> {
    let mut out = vec![];
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() && out.len() < 64 {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            // keep the body of /*! versioned comments */, drop plain comments
            let end = (i + 2..chars.len().saturating_sub(1))
                .find(|&j| chars[j] == '*' && chars[j + 1] == '/');
            let end = end.unwrap_or(chars.len());
            if chars.get(i + 2) == Some(&'!') {
                let body: String = chars[i + 3..end.min(chars.len())].iter().collect();
                let body = body.trim_start_matches(|c: char| c.is_ascii_digit());
                out.extend(tokenize(body));
            }
            i = end + 2;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') || c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '`' {
            let mut j = i + 1;
            while j < chars.len() {
                if chars[j] == '`' {
                    if chars.get(j + 1) == Some(&'`') {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j += 1;
            }
            out.push(chars[i..(j + 1).min(chars.len())].iter().collect());
            i = j + 1;
        } else if c == '\'' || c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            i = j + 1;
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut j = i;
            while j < chars.len()
                && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '$')
            {
                j += 1;
            }
            out.push(chars[i..j].iter().collect());
            i = j;
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(db: Option<&str>, name: &str) -> (Option<String>, String) {
        (db.map(String::from), name.to_string())
    }

    #[test]
    fn recognises_table_ddl() {
        assert_eq!(
            classify("ALTER TABLE `s`.`q` ADD COLUMN x INT"),
            Ddl::SchemaChange(vec![t(Some("s"), "q")])
        );
        assert_eq!(
            classify("create table if not exists q (id int)"),
            Ddl::SchemaChange(vec![t(None, "q")])
        );
        assert_eq!(
            classify("DROP TABLE IF EXISTS a, s.b /* generated by server */"),
            Ddl::SchemaChange(vec![t(None, "a"), t(Some("s"), "b")])
        );
        assert_eq!(
            classify("RENAME TABLE a TO b, c TO d"),
            Ddl::SchemaChange(vec![t(None, "a"), t(None, "b"), t(None, "c"), t(None, "d")])
        );
        assert_eq!(
            classify("TRUNCATE TABLE s.q"),
            Ddl::Truncate(Some("s".into()), "q".into())
        );
        assert_eq!(classify("truncate q"), Ddl::Truncate(None, "q".into()));
        assert_eq!(classify("CREATE INDEX i ON q (x)"), Ddl::Other);
        assert_eq!(classify("CREATE TEMPORARY TABLE tmp (x int)"), Ddl::Other);
        assert_eq!(classify("BEGIN"), Ddl::Other);
    }
}
