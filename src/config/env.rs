//! `${VAR}` / `${VAR:-default}` interpolation from the environment, and keeping secrets out of errors.

use super::{invalid, ConfigError};

/// Keys whose values are secrets wherever they appear.
pub(super) fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token", "webhook_url"]
        .iter()
        .any(|w| key.contains(w))
}

/// A TOML syntax error quotes the line it is on: blank out the value of a secret key there.
pub(super) fn redact_secret_lines(message: &str) -> String {
    message
        .lines()
        .map(|line| match line.split_once('=') {
            Some((left, _)) if is_secret_key(left) => format!("{left}= <redacted>"),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Interpolates every string; `secrets` collects what must never appear in an error: values taken from
/// the environment and values of secret keys.
pub(super) fn interpolate_table(
    table: &mut toml::Table,
    prefix: &str,
    secrets: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for (k, v) in table.iter_mut() {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        interpolate_value(v, &key, secrets)?;
        if let (true, toml::Value::String(s)) = (is_secret_key(k), &*v) {
            secrets.push(s.clone());
        }
    }
    Ok(())
}

fn interpolate_value(
    v: &mut toml::Value,
    key: &str,
    secrets: &mut Vec<String>,
) -> Result<(), ConfigError> {
    match v {
        toml::Value::String(s) => {
            let (text, from_env) = interpolate_tracked(s, key)?;
            secrets.extend(from_env);
            *s = text;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{key}[{i}]"), secrets)?;
            }
        }
        toml::Value::Table(t) => interpolate_table(t, key, secrets)?,
        _ => {}
    }
    Ok(())
}

/// Replaces `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`.
pub fn interpolate(s: &str, key: &str) -> Result<String, ConfigError> {
    interpolate_tracked(s, key).map(|(text, _)| text)
}

/// `interpolate`, also returning the values it took from the environment.
fn interpolate_tracked(s: &str, key: &str) -> Result<(String, Vec<String>), ConfigError> {
    let mut from_env = vec![];
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| {
                invalid(
                    key,
                    "unterminated `${` (write `$$` for a literal dollar sign)",
                )
            })?;
            let expr = &body[..end];
            let (var, default) = match expr.split_once(":-") {
                Some((var, d)) => (var, Some(d)),
                None => (expr, None),
            };
            match (std::env::var(var), default) {
                (Ok(val), _) => {
                    out.push_str(&val);
                    from_env.push(val);
                }
                (Err(_), Some(d)) => out.push_str(d),
                (Err(_), None) => {
                    return Err(ConfigError::MissingEnv {
                        key: key.into(),
                        var: var.into(),
                    })
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok((out, from_env))
}
