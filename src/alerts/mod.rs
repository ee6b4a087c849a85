//! Alerts: quality findings and pipeline health, sent to Slack and/or a webhook by a task of their own.
//! Ingestion only ever `try_send`s into a bounded queue: a slow or dead Slack never slows or stops the
//! pipeline; what does not fit is dropped, counted (`binlake_alerts_dropped_total`) and logged.

pub mod deliver;
pub mod tracker;

use crate::config::alerts::AlertsConfig;
use deliver::Destination;
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracker::{Notice, Tracker};

/// One expectation's evaluation on one batch, as people read it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Finding {
    pub table: String,
    pub expectation: String,
    pub description: String,
    pub severity: String,
    pub failed: bool,
    pub observed: String,
    pub expected: String,
    pub unexpected: u64,
    pub checked: u64,
    pub sample_keys: Vec<String>,
    /// The batch's `_seq` range.
    pub seq: (i64, i64),
    /// Athena SQL that shows the failing rows (empty: none applies).
    pub sql: String,
    /// A pipeline health check (lag, binlog retention), not a quality expectation.
    pub health: bool,
}

#[derive(Debug)]
pub enum Alert {
    /// Every evaluation of one table's batch (passing ones resolve earlier failures).
    Evaluated {
        table: String,
        findings: Vec<Finding>,
    },
    /// The pipeline stopped with a definite error.
    Stopped { error: String },
    /// At start: `(table, expectation)` pairs whose latest recorded evaluation failed, already announced
    /// by an earlier process.
    StillFailing { failing: Vec<(String, String)> },
}

/// Where alerts are queued; cheap to clone. `Alerts::off()` when none are configured.
#[derive(Clone)]
pub struct Alerts {
    tx: Option<mpsc::Sender<Alert>>,
}

impl Alerts {
    pub fn off() -> Self {
        Alerts { tx: None }
    }

    pub fn send(&self, alert: Alert) {
        let Some(tx) = &self.tx else { return };
        if let Err(e) = tx.try_send(alert) {
            crate::observe::METRICS.alerts_dropped.inc();
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "alert queue full",
                mpsc::error::TrySendError::Closed(_) => "alert task ended",
            };
            tracing::warn!(reason = why, "alert dropped");
        }
    }
}

/// The running alert task; `finish` lets it send what is queued.
pub struct AlertTask {
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl AlertTask {
    /// Waits up to `within` for the queued alerts to go out (every `Alerts` handle must be dropped first,
    /// or the task keeps waiting for more).
    pub async fn finish(mut self, within: Duration) {
        if let Some(handle) = self.handle.take() {
            if tokio::time::timeout(within, handle).await.is_err() {
                tracing::warn!(
                    secs = within.as_secs(),
                    "alerts still queued at exit were not sent"
                );
            }
        }
    }
}

/// Starts the alert task for `connector` (a no-op handle when no destination is configured).
pub fn spawn(cfg: &AlertsConfig, connector: &str) -> (Alerts, AlertTask) {
    if !cfg.enabled() {
        return (Alerts::off(), AlertTask { handle: None });
    }
    let (tx, rx) = mpsc::channel(cfg.queue);
    let mut destinations = vec![];
    if let Some(s) = &cfg.slack {
        destinations.push(Destination::slack(s));
    }
    if let Some(w) = &cfg.webhook {
        destinations.push(Destination::webhook(w));
    }
    let tracker = Tracker::new(Duration::from_secs(cfg.remind_every_secs));
    let handle = tokio::spawn(run(rx, tracker, destinations, connector.to_string()));
    (
        Alerts { tx: Some(tx) },
        AlertTask {
            handle: Some(handle),
        },
    )
}

async fn run(
    mut rx: mpsc::Receiver<Alert>,
    mut tracker: Tracker,
    mut destinations: Vec<Destination>,
    connector: String,
) {
    while let Some(alert) = rx.recv().await {
        let notices = match alert {
            Alert::Evaluated { table, findings } => {
                tracker.observe(&table, findings, Instant::now())
            }
            Alert::Stopped { error } => vec![Notice::Stopped { error }],
            Alert::StillFailing { failing } => {
                tracker.known_failing(failing, Instant::now());
                vec![]
            }
        };
        for notice in &notices {
            for d in &mut destinations {
                match d.send(notice, &connector).await {
                    Ok(()) => crate::observe::METRICS
                        .alerts_sent
                        .with_label_values(&[d.name()])
                        .inc(),
                    Err(e) => {
                        crate::observe::METRICS.alerts_dropped.inc();
                        tracing::error!(destination = d.name(), error = %e, "alert not delivered");
                    }
                }
            }
        }
    }
}
