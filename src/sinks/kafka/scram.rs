//! A rotated SCRAM password reaches running Kafka clients: when the broker refuses the password, the
//! secret it came from (`kafka.sasl_password = "secretsmanager:…"` or `"file:…"`) is fetched again and a
//! new value is handed to the client, which uses it on its next connection attempt. librdkafka keeps
//! retrying with what it has otherwise, so a rotation would stall every client until a restart.

use crate::config::kafka::{KafkaConfig, Security};
use crate::config::secrets::{self, SecretRef};
use rdkafka::bindings::rd_kafka_t;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex};

/// The config key the secret belongs to (also the key of the refreshed value in `secrets`).
const KEY: &str = "kafka.sasl_password";

/// One client's SCRAM credentials and where a new password comes from.
pub struct ScramCredentials {
    username: CString,
    configured: String,
    secret: SecretRef,
    /// The client's librdkafka handle, set once the client exists.
    handle: AtomicPtr<rd_kafka_t>,
    /// The password the client has now.
    applied: Mutex<String>,
}

impl ScramCredentials {
    /// `Some` when `config` uses SCRAM with a password from a secret reference.
    pub fn for_config(config: &KafkaConfig) -> Option<Arc<Self>> {
        if config.security != Security::SaslScram {
            return None;
        }
        let secret = config.sasl_password_ref.clone()?;
        let configured = config.sasl_password.clone().unwrap_or_default();
        Some(Arc::new(ScramCredentials {
            // validation refuses neither; a NUL in a user name would only mean no rotation
            username: CString::new(config.sasl_username.clone().unwrap_or_default()).ok()?,
            applied: Mutex::new(secrets::current(KEY, &configured)),
            configured,
            secret,
            handle: AtomicPtr::new(std::ptr::null_mut()),
        }))
    }

    /// Remembers the client these credentials belong to. The handle is only used from the client's own
    /// error callback, which librdkafka calls while the client exists.
    pub fn bind(&self, handle: *mut rd_kafka_t) {
        self.handle.store(handle, Ordering::Release);
    }

    /// Called from the client's error callback when the broker refused the password: fetches the secret
    /// again (at most every few seconds across clients) and gives the client the newest value.
    /// Blocks the callback's thread while fetching; the client cannot connect meanwhile anyway.
    pub fn refused(&self, runtime: &tokio::runtime::Handle) {
        let handle = self.handle.load(Ordering::Acquire);
        tracing::debug!(client = ?handle, "the broker refused this client's SCRAM password");
        if handle.is_null() {
            return;
        }
        let fetched = std::thread::scope(|s| {
            s.spawn(|| runtime.block_on(secrets::refresh(KEY, &self.secret, &self.configured)))
                .join()
        });
        match fetched {
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the Kafka broker refused the SCRAM password; fetching it again failed")
            }
            Err(_) => tracing::warn!("fetching the SCRAM password again panicked"),
            Ok(Ok(_)) => {}
        }
        let newest = secrets::current(KEY, &self.configured);
        let mut applied = self.applied.lock().expect("scram credentials");
        if *applied == newest {
            return;
        }
        let Ok(password) = CString::new(newest.clone()) else {
            tracing::warn!(secret = %self.secret, "the SCRAM password holds a NUL byte; not used");
            return;
        };
        // SAFETY: `handle` is the live client calling this callback; librdkafka copies both strings.
        let error = unsafe {
            rdkafka::bindings::rd_kafka_sasl_set_credentials(
                handle,
                self.username.as_ptr(),
                password.as_ptr(),
            )
        };
        if error.is_null() {
            *applied = newest;
            tracing::info!(secret = %self.secret, "the Kafka client uses the new SCRAM password from now on");
        } else {
            // SAFETY: a non-null error from librdkafka, read and then freed once
            let reason = unsafe {
                let text = CStr::from_ptr(rdkafka::bindings::rd_kafka_error_string(error))
                    .to_string_lossy()
                    .into_owned();
                rdkafka::bindings::rd_kafka_error_destroy(error);
                text
            };
            tracing::warn!(
                reason,
                "the Kafka client did not take the new SCRAM password"
            );
        }
    }
}
