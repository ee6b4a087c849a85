//! Observability: tracing setup (logs on stderr, stdout stays the data stream), the metrics (names defined
//! here only) and the HTTP endpoint serving `/metrics`, `/healthz` and `/readyz`.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;

/// delta-kernel logs expected conditions (a table that does not exist yet) as errors, and deltalake's
/// commit path logs each commit conflict binlake then retries; binlake reports the errors it gets back
/// itself.
const DEFAULT_FILTER: &str =
    "warn,binlake=info,buoyant_kernel=off,delta_kernel=off,deltalake_core=error,deltalake_core::kernel::transaction=off";

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; coloured only when stderr is a terminal.
    Text,
    /// One JSON object per line, for CloudWatch and other collectors.
    Json,
}

/// `BINLAKE_LOG` (or `RUST_LOG`) sets the filter, default `DEFAULT_FILTER`. Colour codes only reach a
/// terminal: files, pipes and ECS log drivers get plain text.
pub fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = std::env::var("BINLAKE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| DEFAULT_FILTER.to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

pub struct Metrics {
    pub registry: Registry,
    /// Change events received from the source, by table and op (c/u/d/r/t).
    pub events: IntCounterVec,
    /// Rows merged into Delta, by table.
    pub rows_merged: IntCounterVec,
    /// Unchanged rows copied while rewriting files a MERGE touched (write amplification), by table.
    pub rows_rewritten: IntCounterVec,
    /// Rows per MERGE batch, by table.
    pub batch_rows: HistogramVec,
    /// Quality expectations evaluated on a batch, by table and expectation id.
    pub quality_evaluations: IntCounterVec,
    /// Quality evaluations that failed, by table and expectation id.
    pub quality_failures: IntCounterVec,
    /// Alert messages delivered, by destination (slack, webhook).
    pub alerts_sent: IntCounterVec,
    /// Alerts not delivered: queue full, or the destination refused or stayed down.
    pub alerts_dropped: prometheus::IntCounter,
    /// Seconds per Delta commit (MERGE or truncate), by table.
    pub commit_seconds: HistogramVec,
    /// Milliseconds between the source commit of the newest change in the last batch and its Delta commit.
    pub lag_ms: IntGaugeVec,
    /// Binlog offset of the last checkpoint made durable.
    pub checkpoint_pos: IntGauge,
    /// Seconds since the source committed the oldest change not yet committed to the lake (0: none
    /// waiting): grows when the pipeline stalls, unlike `lag_ms`, which only moves at commits.
    pub uncommitted_age_seconds: IntGauge,
    /// Times the source reconnected after a transient error (dead connection, timeout, server restart).
    pub source_reconnects: prometheus::IntCounter,
    /// Delta commits retried because another writer committed first, by table.
    pub lake_commit_conflicts: IntCounterVec,
    /// Records handed to the Kafka producer, by kind (change, tombstone, schema, transaction, offsets,
    /// heartbeat).
    pub kafka_records: IntCounterVec,
    /// Records sent to Kafka and not yet acknowledged by the broker.
    pub kafka_in_flight: IntGauge,
    /// Times the publisher waited because the producer's queue was full (a slow or unreachable broker).
    pub kafka_queue_full: prometheus::IntCounter,
    /// Records the lake sink read, by topic.
    pub kafka_consumed: IntCounterVec,
    /// Records the lake sink could not read and sent to the dead-letter topic (or stopped on), by topic.
    pub kafka_dead_letters: IntCounterVec,
    /// Records the lake sink skipped as a republished copy of a change it already applied, by topic.
    pub kafka_republished_skipped: IntCounterVec,
    /// Errors by stage (source, lake, kafka, kafka_sink, glue) and kind (transient: retried; conflict:
    /// retried; definite: stopped). See `error`.
    pub errors: IntCounterVec,
    /// Rows read by the snapshot, by table.
    pub snapshot_rows: IntCounterVec,
    /// Row count of a table being snapshotted as the server estimates it (information_schema), by table.
    pub snapshot_rows_estimate: IntGaugeVec,
    /// Events and bytes the sink holds uncommitted (the open transaction and the pending batches).
    pub buffered_events: IntGauge,
    pub buffered_bytes: IntGauge,
    /// Glue catalog calls, by operation and result (ok, error).
    pub glue_calls: IntCounterVec,
    /// Seconds between the server time of the last binlog event read and now (0 while idle with heartbeats).
    pub source_lag_seconds: IntGauge,
    /// With `[ha]` on: 1 while this task leads its connector, 0 as a standby (no series with HA off).
    pub ha_role: IntGaugeVec,
    /// Binlog bytes between the last transaction read and the end of the server's newest binlog.
    pub source_behind_bytes: IntGauge,
}

/// Counts one error of `stage` (source, lake, kafka, kafka_sink, glue) and `kind` (transient, conflict,
/// definite).
pub fn error(stage: &str, kind: &str) {
    METRICS.errors.with_label_values(&[stage, kind]).inc();
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let events = IntCounterVec::new(
        Opts::new("binlake_events_total", "change events from the source"),
        &["table", "op"],
    )
    .unwrap();
    let rows_merged = IntCounterVec::new(
        Opts::new("binlake_lake_rows_merged_total", "rows merged into Delta"),
        &["table"],
    )
    .unwrap();
    let rows_rewritten = IntCounterVec::new(
        Opts::new(
            "binlake_lake_rows_rewritten_total",
            "unchanged rows copied into new files by MERGE (copy-on-write amplification)",
        ),
        &["table"],
    )
    .unwrap();
    let quality_evaluations = IntCounterVec::new(
        Opts::new(
            "binlake_quality_evaluations_total",
            "quality expectations evaluated on a batch",
        ),
        &["table", "expectation"],
    )
    .unwrap();
    let quality_failures = IntCounterVec::new(
        Opts::new(
            "binlake_quality_failures_total",
            "quality evaluations that failed",
        ),
        &["table", "expectation"],
    )
    .unwrap();
    let alerts_sent = IntCounterVec::new(
        Opts::new("binlake_alerts_sent_total", "alert messages delivered"),
        &["destination"],
    )
    .unwrap();
    let alerts_dropped = prometheus::IntCounter::new(
        "binlake_alerts_dropped_total",
        "alerts not delivered (queue full, destination refused or unavailable)",
    )
    .unwrap();
    let batch_rows = HistogramVec::new(
        HistogramOpts::new("binlake_lake_batch_rows", "rows per MERGE batch")
            .buckets(prometheus::exponential_buckets(10.0, 4.0, 9).unwrap()),
        &["table"],
    )
    .unwrap();
    let commit_seconds = HistogramVec::new(
        HistogramOpts::new("binlake_lake_commit_seconds", "seconds per Delta commit")
            .buckets(prometheus::exponential_buckets(0.01, 2.0, 12).unwrap()),
        &["table"],
    )
    .unwrap();
    let lag_ms = IntGaugeVec::new(
        Opts::new(
            "binlake_lag_ms",
            "source commit to Delta commit, newest change of the last batch",
        ),
        &["table"],
    )
    .unwrap();
    let checkpoint_pos = IntGauge::new(
        "binlake_checkpoint_binlog_pos",
        "binlog offset of the last durable checkpoint",
    )
    .unwrap();
    let uncommitted_age_seconds = IntGauge::new(
        "binlake_uncommitted_age_seconds",
        "age of the oldest change received and not yet committed to the destination",
    )
    .unwrap();
    let source_reconnects = prometheus::IntCounter::new(
        "binlake_source_reconnects_total",
        "reconnects of the source after a transient error",
    )
    .unwrap();
    let lake_commit_conflicts = IntCounterVec::new(
        Opts::new(
            "binlake_lake_commit_conflicts_total",
            "Delta commits retried because a concurrent writer committed first",
        ),
        &["table"],
    )
    .unwrap();
    let kafka_records = IntCounterVec::new(
        Opts::new(
            "binlake_kafka_records_total",
            "records handed to the Kafka producer",
        ),
        &["kind"],
    )
    .unwrap();
    let kafka_in_flight = IntGauge::new(
        "binlake_kafka_in_flight_records",
        "records sent to Kafka and not yet acknowledged",
    )
    .unwrap();
    let kafka_queue_full = prometheus::IntCounter::new(
        "binlake_kafka_queue_full_total",
        "waits for space in the producer queue (slow or unreachable broker)",
    )
    .unwrap();
    let kafka_consumed = IntCounterVec::new(
        Opts::new("binlake_kafka_consumed_total", "records the lake sink read"),
        &["topic"],
    )
    .unwrap();
    let kafka_dead_letters = IntCounterVec::new(
        Opts::new(
            "binlake_kafka_dead_letters_total",
            "records the lake sink could not read (sent to the dead-letter topic)",
        ),
        &["topic"],
    )
    .unwrap();
    let kafka_republished_skipped = IntCounterVec::new(
        Opts::new(
            "binlake_kafka_republished_skipped_total",
            "republished copies of changes the lake sink already applied",
        ),
        &["topic"],
    )
    .unwrap();
    let errors = IntCounterVec::new(
        Opts::new("binlake_errors_total", "errors by stage and kind"),
        &["stage", "kind"],
    )
    .unwrap();
    let snapshot_rows = IntCounterVec::new(
        Opts::new("binlake_snapshot_rows_total", "rows read by the snapshot"),
        &["table"],
    )
    .unwrap();
    let snapshot_rows_estimate = IntGaugeVec::new(
        Opts::new(
            "binlake_snapshot_rows_estimate",
            "the server's row estimate of a table being snapshotted",
        ),
        &["table"],
    )
    .unwrap();
    let buffered_events = IntGauge::new(
        "binlake_buffered_events",
        "events the sink holds uncommitted",
    )
    .unwrap();
    let buffered_bytes = IntGauge::new(
        "binlake_buffered_bytes",
        "bytes of events the sink holds uncommitted",
    )
    .unwrap();
    let glue_calls = IntCounterVec::new(
        Opts::new("binlake_glue_calls_total", "Glue catalog calls"),
        &["op", "result"],
    )
    .unwrap();
    let source_lag_seconds = IntGauge::new(
        "binlake_source_lag_seconds",
        "now minus the server time of the last binlog event read",
    )
    .unwrap();
    let source_behind_bytes = IntGauge::new(
        "binlake_source_behind_bytes",
        "binlog bytes the server holds beyond the last transaction read",
    )
    .unwrap();
    let ha_role = IntGaugeVec::new(
        Opts::new(
            "binlake_ha_leader",
            "1 while this task leads its connector (HA), 0 as a standby",
        ),
        &["connector"],
    )
    .unwrap();
    for c in [
        Box::new(events.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(ha_role.clone()),
        Box::new(source_behind_bytes.clone()),
        Box::new(errors.clone()),
        Box::new(snapshot_rows.clone()),
        Box::new(snapshot_rows_estimate.clone()),
        Box::new(buffered_events.clone()),
        Box::new(buffered_bytes.clone()),
        Box::new(glue_calls.clone()),
        Box::new(source_lag_seconds.clone()),
        Box::new(kafka_consumed.clone()),
        Box::new(kafka_dead_letters.clone()),
        Box::new(kafka_republished_skipped.clone()),
        Box::new(kafka_records.clone()),
        Box::new(kafka_in_flight.clone()),
        Box::new(kafka_queue_full.clone()),
        Box::new(source_reconnects.clone()),
        Box::new(lake_commit_conflicts.clone()),
        Box::new(rows_merged.clone()),
        Box::new(rows_rewritten.clone()),
        Box::new(batch_rows.clone()),
        Box::new(quality_evaluations.clone()),
        Box::new(quality_failures.clone()),
        Box::new(alerts_sent.clone()),
        Box::new(alerts_dropped.clone()),
        Box::new(commit_seconds.clone()),
        Box::new(lag_ms.clone()),
        Box::new(checkpoint_pos.clone()),
        Box::new(uncommitted_age_seconds.clone()),
    ] {
        registry.register(c).unwrap();
    }
    Metrics {
        registry,
        events,
        rows_merged,
        rows_rewritten,
        batch_rows,
        quality_evaluations,
        quality_failures,
        alerts_sent,
        alerts_dropped,
        commit_seconds,
        lag_ms,
        checkpoint_pos,
        uncommitted_age_seconds,
        source_reconnects,
        lake_commit_conflicts,
        kafka_records,
        kafka_in_flight,
        kafka_queue_full,
        kafka_consumed,
        kafka_dead_letters,
        kafka_republished_skipped,
        errors,
        snapshot_rows,
        snapshot_rows_estimate,
        buffered_events,
        buffered_bytes,
        glue_calls,
        source_lag_seconds,
        ha_role,
        source_behind_bytes,
    }
});

/// Where the binlog reader is: the file (set at each rotation) and the end of the last transaction read.
/// The watch compares it with the server's binlogs (`binlake_source_behind_bytes`).
pub static SOURCE_POS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static SOURCE_FILE: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

pub fn set_source_file(file: &str) {
    *SOURCE_FILE.lock().expect("source file") = file.to_string();
}

/// The reader's binlog file and position, once it has read one.
pub fn source_position() -> Option<(String, u64)> {
    let file = SOURCE_FILE.lock().expect("source file").clone();
    (!file.is_empty()).then(|| (file, SOURCE_POS.load(Ordering::Relaxed)))
}

/// GETs `url` and succeeds on a 200 answer within `timeout` (`binlake health`).
pub async fn probe(url: &str, timeout: std::time::Duration) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    match response.status() {
        reqwest::StatusCode::OK => Ok(()),
        status => Err(format!("{url} answered {status}")),
    }
}

/// Readiness: set once the source passed preflight and delivers; health: cleared when the pipeline fails.
pub static READY: AtomicBool = AtomicBool::new(false);
pub static HEALTHY: AtomicBool = AtomicBool::new(true);

/// Source commit time (ms since the epoch) of the oldest change the sink holds uncommitted; 0 when it
/// holds none. The lake sink keeps it; the health watch turns it into an age and a lag alert.
pub static UNCOMMITTED_SINCE_MS: std::sync::atomic::AtomicI64 =
    std::sync::atomic::AtomicI64::new(0);

pub fn render_metrics() -> String {
    TextEncoder::new()
        .encode_to_string(&METRICS.registry.gather())
        .unwrap_or_default()
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listen` until the process ends.
pub async fn serve(listen: &str) -> std::io::Result<std::net::SocketAddr> {
    use axum::{http::StatusCode, routing::get, Router};
    let app = Router::new()
        .route("/metrics", get(|| async { render_metrics() }))
        .route(
            "/healthz",
            get(|| async {
                if HEALTHY.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "pipeline failed; see the logs",
                    )
                }
            }),
        )
        .route(
            "/readyz",
            get(|| async {
                if READY.load(Ordering::Relaxed) && HEALTHY.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting")
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    Ok(addr)
}
