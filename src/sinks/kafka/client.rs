//! The librdkafka clients: one configuration (brokers, security, timeouts) for the producer, the admin
//! client and the offsets reader; librdkafka's logs and errors go to tracing; MSK IAM tokens are signed
//! from the AWS default credential chain and refreshed by librdkafka before they expire.

use super::scram::ScramCredentials;
use super::tracker::{DeliveryFailure, Tracker};
use super::KafkaError;
use crate::config::kafka::{KafkaConfig, Security};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::ProducerContext;
use std::sync::Arc;
use std::time::Duration;

/// Callbacks shared by every client binlake makes.
pub struct KafkaContext {
    /// Region for MSK IAM tokens; `None` unless `security = "iam"`.
    iam_region: Option<String>,
    runtime: tokio::runtime::Handle,
    tracker: Option<Arc<Tracker>>,
    /// Set for SCRAM with a password from a secret reference.
    scram: Option<Arc<ScramCredentials>>,
}

impl KafkaContext {
    pub fn new(config: &KafkaConfig, tracker: Option<Arc<Tracker>>) -> Self {
        KafkaContext {
            iam_region: (config.security == Security::Iam)
                .then(|| config.region.clone().unwrap_or_default()),
            runtime: tokio::runtime::Handle::current(),
            tracker,
            scram: ScramCredentials::for_config(config),
        }
    }

    /// The SCRAM credentials to `bind` to the client made with this context.
    pub fn scram(&self) -> Option<Arc<ScramCredentials>> {
        self.scram.clone()
    }
}

/// Lets `client` take a rotated SCRAM password (a no-op without a secret reference).
pub fn bind<C: ClientContext>(
    scram: Option<Arc<ScramCredentials>>,
    client: &rdkafka::client::Client<C>,
) {
    if let Some(scram) = scram {
        scram.bind(client.native_ptr());
    }
}

impl ClientContext for KafkaContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(facility = fac, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(facility = fac, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if matches!(error, rdkafka::error::KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF)
        {
            // the end of an empty partition, which the offsets reader expects
            tracing::debug!(reason, "kafka client reached the end of a partition");
            return;
        }
        // broker connections come and go; librdkafka retries them itself
        tracing::warn!(%error, reason, "kafka client");
        if let (
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed),
            Some(scram),
        ) = (error.rdkafka_error_code(), &self.scram)
        {
            scram.refused(&self.runtime);
        }
    }

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        let region = self
            .iam_region
            .clone()
            .ok_or("OAUTHBEARER tokens are only made for security = \"iam\"")?;
        let runtime = self.runtime.clone();
        // librdkafka calls this on its own thread, which may be inside a runtime: sign on a fresh thread
        let signed = std::thread::scope(|s| {
            s.spawn(|| runtime.block_on(super::iam::token(region)))
                .join()
                .map_err(|_| "the IAM token signer panicked".to_string())
        })?;
        let token = signed.map_err(|e| e.to_string())?;
        Ok(OAuthToken {
            token: token.token,
            principal_name: String::new(),
            lifetime_ms: token.expires_at_ms,
        })
    }
}

impl rdkafka::consumer::ConsumerContext for KafkaContext {}

impl ProducerContext for KafkaContext {
    /// The epoch the record belongs to (see tracker.rs).
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, epoch: usize) {
        let Some(tracker) = &self.tracker else { return };
        let failure = result.as_ref().err().map(|(error, msg)| {
            let key = msg
                .key()
                .map(|k| {
                    let text = String::from_utf8_lossy(k);
                    text.chars().take(200).collect::<String>()
                })
                .unwrap_or_else(|| "(no key)".into());
            DeliveryFailure {
                topic: msg.topic().to_string(),
                key,
                error: error.clone(),
            }
        });
        tracker.settle(epoch, failure);
    }
}

/// Brokers, security and timeouts, shared by every client.
pub fn base_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("client.id", "binlake")
        .set(
            "socket.timeout.ms",
            (config.request_timeout_secs * 1000).to_string(),
        )
        .set("socket.keepalive.enable", "true")
        .set_log_level(RDKafkaLogLevel::Warning);
    match config.security {
        Security::Plaintext => {
            c.set("security.protocol", "plaintext");
        }
        Security::Tls => {
            c.set("security.protocol", "ssl");
        }
        Security::SaslScram => {
            c.set("security.protocol", "sasl_ssl")
                .set("sasl.mechanism", "SCRAM-SHA-512")
                .set(
                    "sasl.username",
                    config.sasl_username.as_deref().unwrap_or(""),
                )
                .set(
                    "sasl.password",
                    // a value fetched again after the broker refused the first one, if any
                    crate::config::secrets::current(
                        "kafka.sasl_password",
                        config.sasl_password.as_deref().unwrap_or(""),
                    ),
                );
        }
        Security::Iam => {
            c.set("security.protocol", "sasl_ssl")
                .set("sasl.mechanism", "OAUTHBEARER");
        }
    }
    if let Some(ca) = &config.ca_file {
        c.set("ssl.ca.location", ca.display().to_string());
    }
    c
}

/// The producer's settings: idempotent (per-key order kept across retries), acks from every in-sync
/// replica, Java's murmur2 partitioner, and no local delivery timeout — while the broker is away, records
/// wait in the bounded queue and the binlog reader waits behind them.
pub fn producer_config(config: &KafkaConfig) -> ClientConfig {
    let p = &config.producer;
    let mut c = base_config(config);
    if p.idempotence {
        c.set("enable.idempotence", "true");
    } else {
        // without idempotence, retries could reorder batches of one partition unless one request is in flight
        c.set("enable.idempotence", "false")
            .set("max.in.flight.requests.per.connection", "1");
    }
    c.set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", "0")
        .set("compression.type", &p.compression)
        .set("linger.ms", p.linger_ms.to_string())
        .set("batch.size", p.batch_size.to_string())
        .set("message.max.bytes", p.max_message_bytes.to_string())
        .set(
            "queue.buffering.max.kbytes",
            (p.buffer_max_mb * 1024).to_string(),
        )
        .set("queue.buffering.max.messages", "1000000");
    c
}

/// What a new topic looks like.
pub struct TopicSpec<'a> {
    pub name: &'a str,
    pub partitions: i32,
    pub replication_factor: i32,
    pub config: Vec<(&'a str, &'a str)>,
}

/// Creates `spec` unless it exists. Errors that name a cause (authorization, policy, invalid config)
/// are definite; timeouts are transient.
pub async fn ensure_topic(
    admin: &AdminClient<KafkaContext>,
    spec: &TopicSpec<'_>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let mut topic = NewTopic::new(
        spec.name,
        spec.partitions,
        TopicReplication::Fixed(spec.replication_factor),
    );
    for (k, v) in &spec.config {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    let results = admin
        .create_topics([&topic], &opts)
        .await
        .map_err(|e| KafkaError::Admin {
            topic: spec.name.to_string(),
            error: e.to_string(),
            transient: true,
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                let transient = matches!(
                    code,
                    RDKafkaErrorCode::RequestTimedOut
                        | RDKafkaErrorCode::OperationTimedOut
                        | RDKafkaErrorCode::BrokerTransportFailure
                        | RDKafkaErrorCode::AllBrokersDown
                        | RDKafkaErrorCode::NotController
                        | RDKafkaErrorCode::LeaderNotAvailable
                );
                return Err(KafkaError::Admin {
                    topic: name,
                    error: code.to_string(),
                    transient,
                });
            }
        }
    }
    Ok(())
}

/// An admin client whose own events (logs, errors, IAM token refreshes) are served; see admin.rs.
pub fn admin_client(config: &KafkaConfig) -> Result<super::admin::Admin, KafkaError> {
    let context = KafkaContext::new(config, None);
    let scram = context.scram();
    let admin: AdminClient<KafkaContext> = base_config(config)
        .create_with_context(context)
        .map_err(|e| KafkaError::Client(e.to_string()))?;
    bind(scram, admin.inner());
    super::admin::Admin::new(admin).map_err(|e| KafkaError::Client(e.to_string()))
}
