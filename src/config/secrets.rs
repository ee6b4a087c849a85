//! Secrets by reference: a password key may hold `secretsmanager:<name or ARN>[#json-key]` (AWS Secrets
//! Manager, credentials and region from the AWS default chain; `AWS_ENDPOINT_URL_SECRETS_MANAGER` points
//! elsewhere) or `file:<path>` (a mounted secret), instead of the value itself. References are resolved at
//! start, and again when the server refuses the password (a rotated secret), never written to a log, an
//! error or a metric.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Where a secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    File(PathBuf),
    SecretsManager {
        id: String,
        json_key: Option<String>,
    },
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::File(p) => write!(f, "file {}", p.display()),
            SecretRef::SecretsManager { id, json_key: None } => write!(f, "secret `{id}`"),
            SecretRef::SecretsManager {
                id,
                json_key: Some(k),
            } => write!(f, "key `{k}` of secret `{id}`"),
        }
    }
}

/// The reference a config value names, if it is one (otherwise the value is the secret itself).
pub fn parse_ref(value: &str) -> Option<SecretRef> {
    if let Some(path) = value.strip_prefix("file:") {
        return Some(SecretRef::File(PathBuf::from(path)));
    }
    let rest = value.strip_prefix("secretsmanager:")?;
    // an ARN contains `:` but never `#`, so the last `#` starts the JSON key
    let (id, json_key) = match rest.rsplit_once('#') {
        Some((id, key)) => (id, Some(key.to_string())),
        None => (rest, None),
    };
    Some(SecretRef::SecretsManager {
        id: id.to_string(),
        json_key,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("config key `{key}`: `{value}` is not a valid secret reference: write `secretsmanager:<name or ARN>[#json-key]` or `file:<path>`")]
    BadRef { key: String, value: String },
    #[error("config key `{key}`: cannot read {secret}: {reason}")]
    Definite {
        key: String,
        secret: String,
        reason: String,
    },
    #[error("config key `{key}`: reading {secret} failed for now ({reason}); binlake retries")]
    Transient {
        key: String,
        secret: String,
        reason: String,
    },
}

impl SecretError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SecretError::Transient { .. })
    }
}

/// Fetches `r` for config key `key`, retrying transient failures for up to about a minute.
pub async fn fetch(key: &str, r: &SecretRef) -> Result<String, SecretError> {
    let mut backoff =
        crate::retry::Backoff::new(Duration::from_millis(500), Duration::from_secs(10), Some(8));
    loop {
        match fetch_once(key, r).await {
            Err(e) if e.is_transient() => match backoff.next_delay() {
                Some(wait) => {
                    crate::observe::error("secrets", "transient");
                    tracing::warn!(error = %e, "reading a secret; retrying");
                    tokio::time::sleep(wait).await;
                }
                None => return Err(e),
            },
            other => return other,
        }
    }
}

async fn fetch_once(key: &str, r: &SecretRef) -> Result<String, SecretError> {
    let definite = |reason: String| SecretError::Definite {
        key: key.to_string(),
        secret: r.to_string(),
        reason,
    };
    let value = match r {
        SecretRef::File(path) => std::fs::read_to_string(path)
            .map_err(|e| definite(e.to_string()))?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
        SecretRef::SecretsManager { id, .. } => secrets_manager(key, r, id).await?,
    };
    let SecretRef::SecretsManager {
        json_key: Some(field),
        ..
    } = r
    else {
        return Ok(value);
    };
    // the error names the keys the secret has, never a value
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&value)
        .map_err(|_| definite("its value is not a JSON object, so it has no keys".into()))?;
    match object.get(field) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(definite(format!("`{field}` is not a string"))),
        None => Err(definite(format!(
            "it has no key `{field}` (keys: {})",
            object.keys().cloned().collect::<Vec<_>>().join(", ")
        ))),
    }
}

async fn secrets_manager(key: &str, r: &SecretRef, id: &str) -> Result<String, SecretError> {
    use aws_sdk_secretsmanager::error::SdkError;
    static CLIENT: tokio::sync::OnceCell<aws_sdk_secretsmanager::Client> =
        tokio::sync::OnceCell::const_new();
    let client = CLIENT
        .get_or_init(|| async {
            let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .timeout_config(
                    aws_config::timeout::TimeoutConfig::builder()
                        .operation_timeout(Duration::from_secs(20))
                        .operation_attempt_timeout(Duration::from_secs(10))
                        .build(),
                )
                .load()
                .await;
            aws_sdk_secretsmanager::Client::new(&conf)
        })
        .await;
    let err = |transient: bool, reason: String| {
        let (key, secret) = (key.to_string(), r.to_string());
        if transient {
            SecretError::Transient {
                key,
                secret,
                reason,
            }
        } else {
            SecretError::Definite {
                key,
                secret,
                reason,
            }
        }
    };
    match client.get_secret_value().secret_id(id).send().await {
        Ok(out) => out
            .secret_string()
            .map(str::to_string)
            .ok_or_else(|| err(false, "it holds binary data, not a string".into())),
        Err(e) => {
            let transient = match &e {
                SdkError::TimeoutError(_)
                | SdkError::DispatchFailure(_)
                | SdkError::ResponseError(_) => true,
                SdkError::ServiceError(s) => {
                    s.err().is_internal_service_error() || s.raw().status().as_u16() == 429
                }
                _ => false,
            };
            let reason = match e.as_service_error() {
                Some(s) if s.is_resource_not_found_exception() => {
                    "no such secret in this account and region (check the name and AWS_REGION)"
                        .to_string()
                }
                _ => aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
            };
            Err(err(transient, reason))
        }
    }
}

/// Values fetched again after the server refused the one resolved at start, by config key.
static REFRESHED: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Default::default);

/// The newest value of the secret behind config key `key`: a refreshed one, or `configured`.
pub fn current(key: &str, configured: &str) -> String {
    REFRESHED
        .lock()
        .expect("secrets")
        .get(key)
        .cloned()
        .unwrap_or_else(|| configured.to_string())
}

/// Secrets Manager is asked at most this often per key, however often a server refuses the password
/// (librdkafka reports every failed reconnect; each costs an API call).
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

static LAST_REFRESH: LazyLock<Mutex<HashMap<String, std::time::Instant>>> =
    LazyLock::new(Default::default);

/// Fetches the secret behind `key` again (after an authentication failure); true when it changed.
/// Within `MIN_REFRESH_INTERVAL` of the previous fetch it answers false without asking.
pub async fn refresh(key: &str, r: &SecretRef, configured: &str) -> Result<bool, SecretError> {
    {
        let mut last = LAST_REFRESH.lock().expect("secrets");
        let now = std::time::Instant::now();
        if last
            .get(key)
            .is_some_and(|at| now.duration_since(*at) < MIN_REFRESH_INTERVAL)
        {
            return Ok(false);
        }
        last.insert(key.to_string(), now);
    }
    let fresh = fetch(key, r).await?;
    let changed = fresh != current(key, configured);
    if changed {
        tracing::info!(key, secret = %r, "the secret changed; using the new value");
        REFRESHED
            .lock()
            .expect("secrets")
            .insert(key.to_string(), fresh);
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_literals() {
        assert_eq!(parse_ref("hunter2"), None);
        assert_eq!(
            parse_ref("file:/run/secrets/mysql"),
            Some(SecretRef::File("/run/secrets/mysql".into()))
        );
        assert_eq!(
            parse_ref("secretsmanager:binlake/mysql"),
            Some(SecretRef::SecretsManager {
                id: "binlake/mysql".into(),
                json_key: None
            })
        );
        assert_eq!(
            parse_ref("secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:db-AbC#password"),
            Some(SecretRef::SecretsManager {
                id: "arn:aws:secretsmanager:us-east-1:1:secret:db-AbC".into(),
                json_key: Some("password".into())
            })
        );
    }

    #[tokio::test]
    async fn a_file_secret_loses_its_trailing_newline_and_a_missing_one_is_definite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "plain-pw\n").unwrap();
        let file = SecretRef::File(path);
        assert_eq!(fetch("source.password", &file).await.unwrap(), "plain-pw");
        let missing = fetch(
            "source.password",
            &SecretRef::File(dir.path().join("absent")),
        )
        .await
        .unwrap_err();
        assert!(!missing.is_transient());
        assert!(missing.to_string().contains("source.password"), "{missing}");
    }
}
