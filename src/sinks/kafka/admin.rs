//! The admin client with its main queue served. rdkafka's `AdminClient` polls only the queue its
//! operations answer on; the client's own events — its log lines, its errors (a refused SCRAM password),
//! and the MSK IAM token refresh without which it never authenticates — wait on the main queue, which
//! nothing else reads. A thread of ours serves that queue for as long as the client lives.

use super::client::KafkaContext;
use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use std::ffi::{c_char, CStr, CString};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// How long one poll of the main queue waits; also how soon the thread notices a drop.
const POLL_MS: i32 = 100;

pub struct Admin {
    client: AdminClient<KafkaContext>,
    stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
}

/// The client's handle, moved to the polling thread; `Admin::drop` joins that thread before the client
/// is destroyed, so the handle outlives every use.
struct Handle(*mut rd::rd_kafka_t);
// SAFETY: librdkafka handles may be used from any thread.
unsafe impl Send for Handle {}

impl Admin {
    pub fn new(client: AdminClient<KafkaContext>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Handle(client.inner().native_ptr());
        let context = client.inner().context().clone();
        let poller = std::thread::Builder::new()
            .name("kafka-admin-events".into())
            .spawn({
                let stop = stop.clone();
                move || serve_main_queue(handle, &context, &stop)
            })?;
        Ok(Admin {
            client,
            stop,
            poller: Some(poller),
        })
    }
}

impl Deref for Admin {
    type Target = AdminClient<KafkaContext>;
    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(poller) = self.poller.take() {
            let _ = poller.join();
        }
    }
}

fn serve_main_queue(handle: Handle, context: &KafkaContext, stop: &AtomicBool) {
    let rk = handle.0;
    // SAFETY: `rk` is live until this thread is joined (see `Handle`); the queue reference is released
    // below, and every event polled is destroyed after use.
    let queue = unsafe { rd::rd_kafka_queue_get_main(rk) };
    while !stop.load(Ordering::Relaxed) {
        let event = unsafe { rd::rd_kafka_queue_poll(queue, POLL_MS) };
        if event.is_null() {
            continue;
        }
        unsafe {
            match rd::rd_kafka_event_type(event) {
                rd::RD_KAFKA_EVENT_LOG => log_event(event, context),
                rd::RD_KAFKA_EVENT_ERROR => {
                    let code = rd::rd_kafka_event_error(event);
                    let reason = text(rd::rd_kafka_event_error_string(event));
                    context.error(
                        rdkafka::error::KafkaError::Global(code.into()),
                        reason.trim(),
                    );
                }
                rd::RD_KAFKA_EVENT_OAUTHBEARER_TOKEN_REFRESH => token_refresh(rk, event, context),
                _ => {}
            }
            rd::rd_kafka_event_destroy(event);
        }
    }
    unsafe { rd::rd_kafka_queue_destroy(queue) };
}

/// # Safety
/// `s` is null or a NUL-terminated string.
unsafe fn text(s: *const c_char) -> String {
    if s.is_null() {
        String::new()
    } else {
        CStr::from_ptr(s).to_string_lossy().into_owned()
    }
}

/// # Safety
/// `event` is a live log event.
unsafe fn log_event(event: *mut rd::rd_kafka_event_t, context: &KafkaContext) {
    let (mut facility, mut message, mut level) = (std::ptr::null(), std::ptr::null(), 0);
    if rd::rd_kafka_event_log(event, &mut facility, &mut message, &mut level) == 0 {
        let level = match level {
            0 => RDKafkaLogLevel::Emerg,
            1 => RDKafkaLogLevel::Alert,
            2 => RDKafkaLogLevel::Critical,
            3 => RDKafkaLogLevel::Error,
            4 => RDKafkaLogLevel::Warning,
            5 => RDKafkaLogLevel::Notice,
            6 => RDKafkaLogLevel::Info,
            _ => RDKafkaLogLevel::Debug,
        };
        context.log(level, &text(facility), &text(message));
    }
}

/// # Safety
/// `rk` is the live client and `event` its live token-refresh event.
unsafe fn token_refresh(
    rk: *mut rd::rd_kafka_t,
    event: *mut rd::rd_kafka_event_t,
    context: &KafkaContext,
) {
    let config = rd::rd_kafka_event_config_string(event);
    let config = (!config.is_null()).then(|| text(config));
    let token = context
        .generate_oauth_token(config.as_deref())
        .map_err(|e| e.to_string())
        .and_then(|t| {
            let token = CString::new(t.token).map_err(|e| e.to_string())?;
            let principal = CString::new(t.principal_name).map_err(|e| e.to_string())?;
            Ok((token, principal, t.lifetime_ms))
        });
    let failure = match token {
        Ok((token, principal, lifetime_ms)) => {
            let mut errstr = [0 as c_char; 512];
            let code = rd::rd_kafka_oauthbearer_set_token(
                rk,
                token.as_ptr(),
                lifetime_ms,
                principal.as_ptr(),
                std::ptr::null_mut(),
                0,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
            if code == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return;
            }
            text(errstr.as_ptr())
        }
        Err(e) => e,
    };
    tracing::warn!(reason = %failure, "the Kafka admin client has no IAM token");
    let reason = CString::new(failure.replace('\0', " ")).unwrap_or_default();
    rd::rd_kafka_oauthbearer_set_token_failure(rk, reason.as_ptr());
}
