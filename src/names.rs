//! The one encoding by which a MySQL database or table name becomes a lake path segment or a Glue/Athena
//! name (and, with the Kafka stage, part of a topic). It is injective, reversible, and its output is always
//! a safe name: lower-case ASCII letters, digits and `_`, never `.` or `/`, so nothing can step outside
//! `lake.root`, and names that differ only in case never collide (Glue lower-cases everything).
//!
//! - A name that is already safe (`[a-z0-9][a-z0-9_]*`) is used as it is: `stocks`, `stock_quotes`.
//! - Any other name becomes `_` followed by its UTF-8 bytes, where `a`–`z` and `0`–`9` stand for
//!   themselves, `_` is written `__` and every other byte `_xx` (two lower-case hex digits):
//!   `Quotes` → `__51uotes`, `a.b` → `_a_2eb`, `../x` → `__2e_2e_2fx`, `my table` → `_my_20table`.
//!
//! Safe names never start with `_` and encoded ones always do, so the two sets cannot meet; binlake's own
//! folder `_binlake` is neither (it would have to encode `binlake`, which is safe as it is).

/// Glue's limit on database and table names; longer encodings are refused.
pub const MAX_ENCODED_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("an empty name cannot be a table or database name in the lake")]
    Empty,
    #[error(
        "`{name}` encodes to {len} characters, more than the {MAX_ENCODED_LEN} Glue allows; rename it in \
         MySQL or leave it out with source.exclude"
    )]
    TooLong { name: String, len: usize },
}

fn is_safe(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// The lake and catalog form of `name`.
pub fn encode(name: &str) -> Result<String, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    let out = if is_safe(name) {
        name.to_string()
    } else {
        let mut out = String::with_capacity(name.len() * 2 + 1);
        out.push('_');
        for b in name.bytes() {
            match b {
                b'a'..=b'z' | b'0'..=b'9' => out.push(b as char),
                b'_' => out.push_str("__"),
                other => out.push_str(&format!("_{other:02x}")),
            }
        }
        out
    };
    if out.len() > MAX_ENCODED_LEN {
        return Err(NameError::TooLong {
            name: name.to_string(),
            len: out.len(),
        });
    }
    Ok(out)
}

/// The name `encoded` stands for; `None` when it is not an output of `encode` (e.g. `_binlake`).
pub fn decode(encoded: &str) -> Option<String> {
    if is_safe(encoded) {
        return Some(encoded.to_string());
    }
    let body = encoded.strip_prefix('_')?;
    let mut bytes = Vec::with_capacity(body.len());
    let mut chars = body.bytes();
    while let Some(b) = chars.next() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' => bytes.push(b),
            b'_' => match chars.next()? {
                b'_' => bytes.push(b'_'),
                hi => {
                    let lo = chars.next()?;
                    let hex = [hi, lo];
                    let byte = u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?;
                    // canonical form only: lower-case hex, and never for a byte written as itself
                    if matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'_')
                        || hex.iter().any(u8::is_ascii_uppercase)
                    {
                        return None;
                    }
                    bytes.push(byte);
                }
            },
            _ => return None,
        }
    }
    let name = String::from_utf8(bytes).ok()?;
    // a safe name is never written in the escaped form
    (!is_safe(&name)).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_stay_and_others_are_escaped() {
        assert_eq!(encode("stock_quotes").unwrap(), "stock_quotes");
        assert_eq!(encode("Quotes").unwrap(), "__51uotes");
        assert_eq!(encode("a.b").unwrap(), "_a_2eb");
        assert_eq!(encode("../x").unwrap(), "__2e_2e_2fx");
        assert_eq!(encode("a/b").unwrap(), "_a_2fb");
        assert_eq!(encode("my table").unwrap(), "_my_20table");
        assert_eq!(encode("_id").unwrap(), "___id");
        assert_eq!(encode("tick`s").unwrap(), "_tick_60s");
        assert_eq!(encode("café").unwrap(), "_caf_c3_a9");
        assert_eq!(encode(""), Err(NameError::Empty));
        assert!(matches!(
            encode(&"é".repeat(64)),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn round_trips_and_never_collides() {
        let names = [
            "quotes", "Quotes", "QUOTES", "a.b", "a_2eb", "_a_2eb", "../x", "a/b", "tick`s",
            "my table", "café", "日本", "_binlake", "binlake", "x_", "_", "__", "0", "a-b",
        ];
        let mut seen = std::collections::HashMap::new();
        for n in names {
            let e = encode(n).unwrap();
            assert!(
                e.bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_')),
                "{n} → {e}"
            );
            assert_eq!(decode(&e).as_deref(), Some(n), "{n} → {e}");
            assert_ne!(e, "_binlake", "{n}");
            if let Some(other) = seen.insert(e.clone(), n) {
                panic!("{n} and {other} both encode to {e}");
            }
        }
        assert_eq!(decode("_binlake"), None);
        assert_eq!(decode("_a_2E"), None, "upper-case hex is not canonical");
        assert_eq!(decode("_abc"), None, "a safe name is never escaped");
    }
}
