//! The recogniser for the statements of QUERY events. Columns come from TABLE_MAP metadata, so no DDL
//! grammar is needed for them; what must be known from the statement text is which tables it creates,
//! drops, renames or empties, and whether it can change rows without row events. A statement that is
//! none of the known kinds is reported with every name it mentions, so a caller can stop when one of
//! them is a captured table instead of guessing.

/// A table name as written: the database part when the statement gives one.
pub type Name = (Option<String>, String);

/// The column clauses of an ALTER TABLE.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ColumnClauses {
    /// Columns `ADD [COLUMN] name` created (not `ADD COLUMN IF NOT EXISTS`, which may have done nothing):
    /// the statement succeeded, so they did not exist before it.
    pub added: Vec<String>,
    /// A `MODIFY`, `CHANGE`, `RENAME COLUMN` or `CONVERT TO CHARACTER SET` clause: existing values may
    /// have been converted or moved to another name.
    pub reshaped: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Ddl {
    /// `CREATE [OR REPLACE] TABLE [IF NOT EXISTS] t …` (also `… LIKE s` and `… SELECT`).
    Create {
        table: Name,
        or_replace: bool,
        if_not_exists: bool,
    },
    /// `ALTER TABLE t …`. `rename_to`: `… RENAME [TO|AS] u`. `rows_changed`: a clause that removes or
    /// brings rows without row events (partition and tablespace operations), quoted. `columns`: what
    /// the statement says about columns, for when the schema known from before it is not trustworthy.
    Alter {
        table: Name,
        rename_to: Option<Name>,
        rows_changed: Option<String>,
        columns: ColumnClauses,
    },
    /// `DROP TABLE [IF EXISTS] a, b …` (never a TEMPORARY table).
    Drop(Vec<Name>),
    /// `RENAME TABLE a TO b, c TO d`, in order.
    Rename(Vec<(Name, Name)>),
    Truncate(Name),
    /// `DROP DATABASE|SCHEMA [IF EXISTS] db`: every table in it is dropped.
    DropDatabase(String),
    /// Cannot change a table's rows or columns: transaction control, savepoints, accounts, other object
    /// kinds (views, triggers, routines, events, indexes, databases), maintenance statements.
    NoTableChange,
    /// Not a kind binlake knows. `names`: every identifier, and `db.name` pair, the statement mentions.
    Unrecognised {
        names: Vec<Name>,
    },
}

/// Statement kinds that carry no table change, by their first word.
const NO_TABLE_CHANGE: &[&str] = &[
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "START",
    "XA",
    "GRANT",
    "REVOKE",
    "FLUSH",
    "ANALYZE",
    "OPTIMIZE",
    "REPAIR",
    "CHECK",
    "CHECKSUM",
    "INSTALL",
    "UNINSTALL",
    "USE",
];

/// Objects other than tables that CREATE/ALTER/DROP may name (their bodies may name tables, but they
/// change no table's rows or columns themselves).
const OTHER_OBJECTS: &[&str] = &[
    "INDEX",
    "VIEW",
    "DATABASE",
    "SCHEMA",
    "USER",
    "ROLE",
    "TRIGGER",
    "PROCEDURE",
    "FUNCTION",
    "EVENT",
    "SEQUENCE",
    "SERVER",
    "TABLESPACE",
    "LOGFILE",
    "PACKAGE",
    "SPATIAL",
    "RESOURCE",
];

/// ALTER TABLE clauses that remove, swap or bring rows without row events.
const ROW_CHANGING_CLAUSES: &[(&str, &str)] = &[
    ("DROP", "PARTITION"),
    ("TRUNCATE", "PARTITION"),
    ("EXCHANGE", "PARTITION"),
    ("CONVERT", "PARTITION"),
    ("CONVERT", "TABLE"),
    ("DISCARD", "TABLESPACE"),
    ("IMPORT", "TABLESPACE"),
    ("DISCARD", "PARTITION"),
    ("IMPORT", "PARTITION"),
];

struct Words {
    tokens: Vec<String>,
    upper: Vec<String>,
}

impl Words {
    fn new(sql: &str) -> Words {
        let tokens = tokenize(sql);
        let upper = tokens.iter().map(|t| t.to_ascii_uppercase()).collect();
        Words { tokens, upper }
    }

    fn word(&self, i: usize) -> &str {
        self.upper.get(i).map(String::as_str).unwrap_or("")
    }

    /// A table name at `i` (`t`, `db.t`, backticked parts), moving `i` past it.
    fn table_name(&self, i: &mut usize) -> Option<Name> {
        let first = ident(self.tokens.get(*i)?)?;
        *i += 1;
        if self.tokens.get(*i).map(String::as_str) == Some(".") {
            let second = ident(self.tokens.get(*i + 1)?)?;
            *i += 2;
            Some((Some(first), second))
        } else {
            Some((None, first))
        }
    }

    /// Skips `IF EXISTS` / `IF NOT EXISTS`; returns whether it was there.
    fn if_exists(&self, i: &mut usize) -> bool {
        if self.word(*i) != "IF" {
            return false;
        }
        *i += if self.word(*i + 1) == "NOT" { 3 } else { 2 };
        true
    }

    /// `WAIT n` / `NOWAIT` (MariaDB's lock-wait options after a table name).
    fn skip_wait(&self, i: &mut usize) {
        match self.word(*i) {
            "WAIT" => *i += 2,
            "NOWAIT" => *i += 1,
            _ => {}
        }
    }

    /// Every identifier the statement mentions, with `a.b` pairs read as database and table.
    fn all_names(&self) -> Vec<Name> {
        let mut names = vec![];
        let mut i = 0;
        while i < self.tokens.len() {
            match self.table_name(&mut i) {
                Some(n) => names.push(n),
                None => i += 1,
            }
        }
        names
    }
}

/// Classifies a statement from a QUERY event. Names without a database use the event's default schema.
pub fn classify(sql: &str) -> Ddl {
    let w = Words::new(sql);
    let mut start = 0;
    // MariaDB: `SET STATEMENT var = value [, …] FOR <statement>`
    if w.word(0) == "SET" && w.word(1) == "STATEMENT" {
        match w.upper.iter().position(|t| t == "FOR") {
            Some(f) => start = f + 1,
            None => {
                return Ddl::Unrecognised {
                    names: w.all_names(),
                }
            }
        }
    } else if w.word(0) == "SET" {
        return Ddl::NoTableChange;
    }
    let first = w.word(start).to_string();
    if NO_TABLE_CHANGE.contains(&first.as_str()) {
        return Ddl::NoTableChange;
    }
    let recognised = match first.as_str() {
        "CREATE" => create(&w, start + 1),
        "ALTER" => alter(&w, start + 1),
        "DROP" => drop(&w, start + 1),
        "RENAME" => rename(&w, start + 1),
        "TRUNCATE" => {
            let mut i = start + 1;
            if w.word(i) == "TABLE" {
                i += 1;
            }
            w.table_name(&mut i).map(Ddl::Truncate)
        }
        _ => None,
    };
    recognised.unwrap_or_else(|| Ddl::Unrecognised {
        names: w.all_names(),
    })
}

/// Index of the object keyword after CREATE/ALTER/DROP modifiers (`OR REPLACE`, `TEMPORARY`, `ONLINE`,
/// `IGNORE`, `DEFINER = …`, `ALGORITHM = …`, `UNIQUE` …), or `None` when the statement ends first.
fn object_at(w: &Words, mut i: usize) -> Option<usize> {
    while i < w.upper.len() {
        let word = w.word(i);
        if word == "TABLE" || OTHER_OBJECTS.contains(&word) {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn temporary_before(w: &Words, from: usize, object: usize) -> bool {
    (from..object).any(|i| w.word(i) == "TEMPORARY")
}

fn create(w: &Words, from: usize) -> Option<Ddl> {
    let at = object_at(w, from)?;
    if w.word(at) != "TABLE" || temporary_before(w, from, at) {
        return Some(Ddl::NoTableChange);
    }
    let or_replace = (from..at).any(|i| w.word(i) == "REPLACE");
    let mut i = at + 1;
    let if_not_exists = w.if_exists(&mut i);
    let table = w.table_name(&mut i)?;
    Some(Ddl::Create {
        table,
        or_replace,
        if_not_exists,
    })
}

fn alter(w: &Words, from: usize) -> Option<Ddl> {
    let at = object_at(w, from)?;
    if w.word(at) != "TABLE" {
        return Some(Ddl::NoTableChange);
    }
    let mut i = at + 1;
    w.if_exists(&mut i);
    let table = w.table_name(&mut i)?;
    let mut rename_to = None;
    let mut rows_changed = None;
    let mut j = i;
    while j < w.upper.len() {
        let word = w.word(j);
        if let Some((a, b)) = ROW_CHANGING_CLAUSES
            .iter()
            .find(|(a, b)| word == *a && w.word(j + 1) == *b)
        {
            rows_changed.get_or_insert_with(|| format!("{a} {b}"));
        }
        // `RENAME [TO|AS] u`, not `RENAME COLUMN|INDEX|KEY …`
        if word == "RENAME" && !matches!(w.word(j + 1), "COLUMN" | "INDEX" | "KEY") {
            let mut k = j + 1;
            if matches!(w.word(k), "TO" | "AS") {
                k += 1;
            }
            if let Some(to) = w.table_name(&mut k) {
                rename_to = Some(to);
                j = k;
                continue;
            }
        }
        j += 1;
    }
    Some(Ddl::Alter {
        table,
        rename_to,
        rows_changed,
        columns: column_clauses(w, i),
    })
}

/// Reads the comma-separated clauses after the table name (commas inside parentheses belong to a
/// column definition or a list).
fn column_clauses(w: &Words, from: usize) -> ColumnClauses {
    let mut out = ColumnClauses::default();
    let mut depth = 0usize;
    let mut clause_start = true;
    let mut j = from;
    while j < w.upper.len() {
        let word = w.word(j);
        if clause_start && depth == 0 {
            match word {
                "ADD" => {
                    let mut k = j + 1;
                    if w.word(k) == "COLUMN" {
                        k += 1;
                    }
                    let conditional = w.word(k) == "IF";
                    if w.word(k) == "(" {
                        // ADD [COLUMN] (a INT, b INT)
                        let mut inner = 0usize;
                        let mut expect_name = true;
                        for t in k + 1..w.upper.len() {
                            match w.word(t) {
                                "(" => inner += 1,
                                ")" if inner == 0 => break,
                                ")" => inner -= 1,
                                "," if inner == 0 => {
                                    expect_name = true;
                                    continue;
                                }
                                _ => {}
                            }
                            if expect_name {
                                out.added.extend(ident(&w.tokens[t]));
                                expect_name = false;
                            }
                        }
                    } else if !conditional && !NOT_COLUMNS.contains(&w.word(k)) {
                        out.added.extend(w.tokens.get(k).and_then(|t| ident(t)));
                    }
                }
                "MODIFY" | "CHANGE" => out.reshaped = true,
                "RENAME" if w.word(j + 1) == "COLUMN" => out.reshaped = true,
                "CONVERT" if w.word(j + 1) == "TO" => out.reshaped = true,
                _ => {}
            }
        }
        clause_start = false;
        match word {
            "(" => depth += 1,
            ")" => depth = depth.saturating_sub(1),
            "," if depth == 0 => clause_start = true,
            _ => {}
        }
        j += 1;
    }
    out
}

/// What may follow `ADD` other than a column.
const NOT_COLUMNS: &[&str] = &[
    "INDEX",
    "KEY",
    "UNIQUE",
    "PRIMARY",
    "CONSTRAINT",
    "FOREIGN",
    "FULLTEXT",
    "SPATIAL",
    "PARTITION",
    "CHECK",
    "PERIOD",
    "SYSTEM",
    "VECTOR",
];

fn drop(w: &Words, from: usize) -> Option<Ddl> {
    let at = object_at(w, from)?;
    let mut i = at + 1;
    match w.word(at) {
        "TABLE" if temporary_before(w, from, at) => Some(Ddl::NoTableChange),
        "TABLE" => {
            w.if_exists(&mut i);
            let mut tables = vec![];
            loop {
                tables.push(w.table_name(&mut i)?);
                w.skip_wait(&mut i);
                if w.word(i) != "," {
                    break;
                }
                i += 1;
            }
            Some(Ddl::Drop(tables))
        }
        "DATABASE" | "SCHEMA" => {
            w.if_exists(&mut i);
            Some(Ddl::DropDatabase(ident(w.tokens.get(i)?)?))
        }
        _ => Some(Ddl::NoTableChange),
    }
}

fn rename(w: &Words, from: usize) -> Option<Ddl> {
    if !matches!(w.word(from), "TABLE" | "TABLES") {
        // RENAME USER
        return Some(Ddl::NoTableChange);
    }
    let mut i = from + 1;
    w.if_exists(&mut i);
    let mut pairs = vec![];
    loop {
        let old = w.table_name(&mut i)?;
        w.skip_wait(&mut i);
        if w.word(i) != "TO" {
            return None;
        }
        i += 1;
        let new = w.table_name(&mut i)?;
        pairs.push((old, new));
        if w.word(i) != "," {
            break;
        }
        i += 1;
    }
    Some(Ddl::Rename(pairs))
}

fn ident(tok: &str) -> Option<String> {
    if let Some(inner) = tok.strip_prefix('`') {
        return Some(inner.strip_suffix('`').unwrap_or(inner).replace("``", "`"));
    }
    if !tok.is_empty()
        && tok
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        && !tok.chars().all(|c| c.is_ascii_digit())
    {
        Some(tok.to_string())
    } else {
        None
    }
}

/// Splits into words, backquoted names and single punctuation characters; skips comments and string
/// literals, and keeps the body of `/*! versioned */` comments (the server runs it).
fn tokenize(sql: &str) -> Vec<String> {
    let mut out = vec![];
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let end = (i + 2..chars.len().saturating_sub(1))
                .find(|&j| chars[j] == '*' && chars[j + 1] == '/')
                .unwrap_or(chars.len());
            // `/*!50100 …*/` and MariaDB's `/*M!100100 …*/` hold statement text the server runs
            let versioned = match chars.get(i + 2) {
                Some('!') => Some(3),
                Some('M') if chars.get(i + 3) == Some(&'!') => Some(4),
                _ => None,
            };
            if let Some(skip) = versioned {
                let body: String = chars[(i + skip).min(end)..end].iter().collect();
                let body = body.trim_start_matches(|c: char| c.is_ascii_digit());
                out.extend(tokenize(body));
            }
            i = end + 2;
        } else if (c == '-' && chars.get(i + 1) == Some(&'-')) || c == '#' {
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

    fn n(db: Option<&str>, name: &str) -> Name {
        (db.map(String::from), name.to_string())
    }

    #[test]
    fn creates_with_their_modifiers() {
        assert_eq!(
            classify("create table if not exists q (id int)"),
            Ddl::Create {
                table: n(None, "q"),
                or_replace: false,
                if_not_exists: true
            }
        );
        assert_eq!(
            classify("CREATE OR REPLACE TABLE `s`.`my t` (id INT PRIMARY KEY)"),
            Ddl::Create {
                table: n(Some("s"), "my t"),
                or_replace: true,
                if_not_exists: false
            }
        );
        assert_eq!(
            classify("CREATE TABLE `_t_gho` LIKE `t`"),
            Ddl::Create {
                table: n(None, "_t_gho"),
                or_replace: false,
                if_not_exists: false
            }
        );
        assert_eq!(
            classify("CREATE TEMPORARY TABLE tmp (x int)"),
            Ddl::NoTableChange
        );
        assert_eq!(classify("CREATE INDEX i ON q (x)"), Ddl::NoTableChange);
        assert_eq!(
            classify("CREATE DEFINER=`root`@`localhost` TRIGGER tr AFTER INSERT ON t FOR EACH ROW INSERT INTO u VALUES (1)"),
            Ddl::NoTableChange
        );
        assert_eq!(
            classify("CREATE OR REPLACE ALGORITHM=UNDEFINED VIEW v AS SELECT * FROM t"),
            Ddl::NoTableChange
        );
        assert_eq!(classify("CREATE DATABASE d"), Ddl::NoTableChange);
    }

    #[test]
    fn drops_lists_and_temporaries() {
        assert_eq!(
            classify("DROP TABLE IF EXISTS a, s.b /* generated by server */"),
            Ddl::Drop(vec![n(None, "a"), n(Some("s"), "b")])
        );
        assert_eq!(
            classify("DROP TABLE `x``y`.`a.b` WAIT 5, c NOWAIT CASCADE"),
            Ddl::Drop(vec![n(Some("x`y"), "a.b"), n(None, "c")])
        );
        assert_eq!(
            classify("DROP TEMPORARY TABLE IF EXISTS `t` /* generated by server */"),
            Ddl::NoTableChange
        );
        assert_eq!(
            classify("/* a comment */ DROP /*!40005 TEMPORARY */ TABLE t"),
            Ddl::NoTableChange
        );
        assert_eq!(
            classify("DROP DATABASE IF EXISTS `shop`"),
            Ddl::DropDatabase("shop".into())
        );
        assert_eq!(classify("DROP SCHEMA s"), Ddl::DropDatabase("s".into()));
        assert_eq!(classify("DROP INDEX i ON t"), Ddl::NoTableChange);
        assert_eq!(classify("DROP VIEW IF EXISTS t"), Ddl::NoTableChange);
    }

    #[test]
    fn renames_in_every_form() {
        assert_eq!(
            classify("RENAME TABLE `t` TO `_t_del`, `_t_gho` TO `t`"),
            Ddl::Rename(vec![
                (n(None, "t"), n(None, "_t_del")),
                (n(None, "_t_gho"), n(None, "t"))
            ])
        );
        assert_eq!(
            classify("rename table if exists a.x wait 1 to b.y"),
            Ddl::Rename(vec![(n(Some("a"), "x"), n(Some("b"), "y"))])
        );
        assert_eq!(
            classify("ALTER TABLE a RENAME b"),
            Ddl::Alter {
                table: n(None, "a"),
                rename_to: Some(n(None, "b")),
                rows_changed: None,
                columns: ColumnClauses::default(),
            }
        );
        assert_eq!(
            classify("ALTER TABLE s.a ADD COLUMN z INT, RENAME TO s.b"),
            Ddl::Alter {
                table: n(Some("s"), "a"),
                rename_to: Some(n(Some("s"), "b")),
                rows_changed: None,
                columns: ColumnClauses {
                    added: vec!["z".into()],
                    reshaped: false
                },
            }
        );
        assert_eq!(
            classify("ALTER TABLE a RENAME COLUMN x TO y"),
            Ddl::Alter {
                table: n(None, "a"),
                rename_to: None,
                rows_changed: None,
                columns: ColumnClauses {
                    added: vec![],
                    reshaped: true
                },
            }
        );
        assert_eq!(classify("RENAME USER a TO b"), Ddl::NoTableChange);
    }

    #[test]
    fn alters_that_change_rows_without_row_events_are_named() {
        for (sql, clause) in [
            ("ALTER TABLE t TRUNCATE PARTITION p0", "TRUNCATE PARTITION"),
            ("ALTER TABLE t DROP PARTITION p0, p1", "DROP PARTITION"),
            (
                "ALTER TABLE t EXCHANGE PARTITION p0 WITH TABLE u",
                "EXCHANGE PARTITION",
            ),
            ("ALTER TABLE t DISCARD TABLESPACE", "DISCARD TABLESPACE"),
        ] {
            match classify(sql) {
                Ddl::Alter { rows_changed, .. } => {
                    assert_eq!(rows_changed.as_deref(), Some(clause), "{sql}")
                }
                other => panic!("{sql}: {other:?}"),
            }
        }
        assert_eq!(
            classify("ALTER ONLINE IGNORE TABLE IF EXISTS `s`.`q` ADD COLUMN x INT, DROP COLUMN y"),
            Ddl::Alter {
                table: n(Some("s"), "q"),
                rename_to: None,
                rows_changed: None,
                columns: ColumnClauses {
                    added: vec!["x".into()],
                    reshaped: false
                },
            }
        );
    }

    #[test]
    fn column_clauses_of_an_alter() {
        let columns = |sql: &str| match classify(sql) {
            Ddl::Alter { columns, .. } => columns,
            other => panic!("{sql}: {other:?}"),
        };
        let c = columns(
            "ALTER TABLE t ADD COLUMN `a b` DECIMAL(10,2) DEFAULT 1.5, ADD c ENUM('x','y'), \
             ADD COLUMN IF NOT EXISTS d INT, ADD INDEX i (a, c), ADD CONSTRAINT k UNIQUE (c), \
             ADD COLUMN (e INT, f VARCHAR(3) DEFAULT 'z'), ALTER COLUMN g SET DEFAULT 2",
        );
        assert_eq!(c.added, ["a b", "c", "e", "f"]);
        assert!(!c.reshaped);
        for sql in [
            "ALTER TABLE t MODIFY v BIGINT",
            "ALTER TABLE t ADD x INT, CHANGE COLUMN e e2 INT NOT NULL",
            "ALTER TABLE t RENAME COLUMN a TO b",
            "ALTER TABLE t CONVERT TO CHARACTER SET ascii",
        ] {
            assert!(columns(sql).reshaped, "{sql}");
        }
        // words inside a definition or a comment are no clauses
        let c =
            columns("ALTER TABLE t ADD note VARCHAR(9) COMMENT 'modify, change', DROP COLUMN z");
        assert_eq!((c.added, c.reshaped), (vec!["note".to_string()], false));
    }

    #[test]
    fn truncates_and_statements_without_table_changes() {
        assert_eq!(
            classify("TRUNCATE TABLE s.q"),
            Ddl::Truncate(n(Some("s"), "q"))
        );
        assert_eq!(classify("truncate q"), Ddl::Truncate(n(None, "q")));
        assert_eq!(
            classify("SET STATEMENT max_statement_time=60 FOR TRUNCATE t"),
            Ddl::Truncate(n(None, "t"))
        );
        for sql in [
            "BEGIN",
            "COMMIT",
            "SAVEPOINT `sp`",
            "ROLLBACK TO SAVEPOINT sp",
            "GRANT SELECT ON d.t TO u",
            "ANALYZE TABLE t",
            "OPTIMIZE TABLE t",
            "FLUSH PRIVILEGES",
            "SET PASSWORD FOR u = PASSWORD('x')",
            "CREATE USER u IDENTIFIED BY 'p'",
            "ALTER DATABASE d CHARACTER SET utf8mb4",
        ] {
            assert_eq!(classify(sql), Ddl::NoTableChange, "{sql}");
        }
    }

    #[test]
    fn anything_else_is_reported_with_the_names_it_mentions() {
        assert_eq!(
            classify("INSERT INTO `d`.t (a) SELECT a FROM u -- statement-logged"),
            Ddl::Unrecognised {
                names: vec![
                    n(None, "INSERT"),
                    n(None, "INTO"),
                    n(Some("d"), "t"),
                    n(None, "a"),
                    n(None, "SELECT"),
                    n(None, "a"),
                    n(None, "FROM"),
                    n(None, "u"),
                ]
            }
        );
        match classify("LOAD DATA INFILE 'x.csv' INTO TABLE q") {
            Ddl::Unrecognised { names } => assert!(names.contains(&n(None, "q"))),
            other => panic!("{other:?}"),
        }
        // a malformed statement of a known kind is not guessed at either
        match classify("DROP TABLE") {
            Ddl::Unrecognised { .. } => {}
            other => panic!("{other:?}"),
        }
    }
}
