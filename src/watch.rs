//! Checks that run beside the pipeline on timers and report to the alert task: the table-level quality
//! expectations (`quality.table_check_interval_secs`, parity on `quality.parity_interval_secs`), the lag
//! of the oldest change not yet committed (`alerts.max_lag_secs`) and the source's binlog retention
//! (`source.min_binlog_retention_hours`). A failing watch is logged and tried again next time: it never
//! stops ingestion.

use crate::alerts::{Alert, Alerts, Finding};
use crate::config::quality::TableCheck;
use crate::config::Config;
use crate::sinks::lake::validate::{self, TableResult};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the lag is measured (an atomic load: cheap).
const LAG_EVERY: Duration = Duration::from_secs(1);
/// How often the binlog retention is read.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// How often the bytes the reader is behind the server are measured (one short connection).
const BEHIND_EVERY: Duration = Duration::from_secs(15);

/// The pseudo-table health findings are filed under.
pub const PIPELINE: &str = "pipeline";

/// The running watch.
pub struct Watch {
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

impl Watch {
    /// Starts the watch. `lake`: the table-level checks run (the lake is the destination); `source`: the
    /// lag and retention watches run (this process reads the binlog).
    pub fn spawn(config: &Config, alerts: Alerts, lake: bool, source: bool) -> Self {
        let config = config.clone();
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let handle = tokio::spawn(async move { run(config, alerts, token, lake, source).await });
        Watch { cancel, handle }
    }

    /// Stops the watch (a check in progress is abandoned after a moment), dropping its alert handle.
    pub async fn stop(self) {
        self.cancel.cancel();
        let abort = self.handle.abort_handle();
        match tokio::time::timeout(Duration::from_secs(2), self.handle).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_cancelled() => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the watch task failed"),
            Err(_) => abort.abort(),
        }
    }
}

/// Ticks every `period` (none when `on` is false or the period is 0). `first_at_once`: the first tick
/// comes now; otherwise after one period (a starting pipeline has no table to check yet).
fn every(period: Duration, on: bool, first_at_once: bool) -> Option<tokio::time::Interval> {
    (on && !period.is_zero()).then(|| {
        let start = tokio::time::Instant::now()
            + if first_at_once {
                Duration::ZERO
            } else {
                period
            };
        let mut i = tokio::time::interval_at(start, period);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    })
}

async fn tick(i: &mut Option<tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn run(config: Config, alerts: Alerts, cancel: CancellationToken, lake: bool, source: bool) {
    let has = |parity: bool| {
        config
            .quality
            .tables
            .iter()
            .any(|e| matches!(e.check, TableCheck::Parity { .. }) == parity)
    };
    let secs = Duration::from_secs;
    let q = &config.quality;
    let mut tables = every(secs(q.table_check_interval_secs), lake && has(false), false);
    let mut parity = every(secs(q.parity_interval_secs), lake && has(true), false);
    let mut lag = every(LAG_EVERY, source, true);
    let mut retention = every(RETENTION_EVERY, source, true);
    let mut behind = every(BEHIND_EVERY, source, false);
    let mut lag_failing = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick(&mut tables) => table_checks(&config, &alerts, false).await,
            _ = tick(&mut parity) => table_checks(&config, &alerts, true).await,
            _ = tick(&mut lag) => lag_check(&config, &alerts, &mut lag_failing),
            _ = tick(&mut retention) => retention_check(&config, &alerts).await,
            _ = tick(&mut behind) => behind_check(&config).await,
        }
    }
}

/// Evaluates the table-level expectations (parity ones, or all others), records and reports them.
async fn table_checks(config: &Config, alerts: &Alerts, parity: bool) {
    let pick = |c: &TableCheck| matches!(c, TableCheck::Parity { .. }) == parity;
    let results = match validate::validate_some(config, None, &pick).await {
        // a table not in the lake yet is still being snapshotted (or not captured): `validate` says so
        Ok(r) => r.into_iter().filter(|r| !r.absent).collect::<Vec<_>>(),
        Err(e) => {
            tracing::warn!(error = %e, parity, "scheduled table checks failed; trying again next time");
            return;
        }
    };
    if config.quality.record_results {
        if let Err(e) =
            crate::sinks::lake::quality::record_table_results(&config.lake, &config.name, &results)
                .await
        {
            tracing::warn!(error = %e, "table check results not recorded");
        }
    }
    let mut by_table: BTreeMap<String, Vec<Finding>> = BTreeMap::new();
    for r in &results {
        by_table
            .entry(r.table.clone())
            .or_default()
            .push(finding(r));
    }
    let failed = results.iter().filter(|r| r.status == "fail").count();
    tracing::info!(
        expectations = results.len(),
        failed,
        parity,
        "table checks evaluated"
    );
    for (table, findings) in by_table {
        alerts.send(Alert::Evaluated { table, findings });
    }
}

/// A table-level result as an alert reads it.
pub fn finding(r: &TableResult) -> Finding {
    Finding {
        table: r.table.clone(),
        expectation: r.expectation.clone(),
        description: r.description.clone(),
        severity: r.severity.to_string(),
        failed: r.status == "fail",
        observed: r.observed.clone(),
        expected: r.expected.clone(),
        unexpected: r.unexpected_count,
        checked: r.element_count,
        sample_keys: r.sample_keys.clone(),
        seq: (0, 0),
        sql: r.sql.clone(),
        health: false,
    }
}

fn health(
    check: &str,
    description: &str,
    failed: bool,
    observed: String,
    expected: String,
) -> Finding {
    Finding {
        table: PIPELINE.into(),
        expectation: check.into(),
        description: description.into(),
        severity: "warn".into(),
        failed,
        observed,
        expected,
        health: true,
        ..Default::default()
    }
}

/// The age of the oldest change not yet committed, as a gauge and, past `alerts.max_lag_secs`, an alert.
fn lag_check(config: &Config, alerts: &Alerts, failing: &mut bool) {
    let since = crate::observe::UNCOMMITTED_SINCE_MS.load(Ordering::Relaxed);
    let age_secs = if since == 0 {
        0
    } else {
        ((crate::event::calendar::now_ms() - since) / 1000).max(0)
    };
    crate::observe::METRICS
        .uncommitted_age_seconds
        .set(age_secs);
    let max = config.alerts.max_lag_secs as i64;
    if max == 0 {
        return;
    }
    let over = age_secs > max;
    if over != *failing {
        *failing = over;
        if over {
            tracing::warn!(
                age_secs,
                max_lag_secs = max,
                "changes are late reaching the destination"
            );
        }
        alerts.send(Alert::Evaluated {
            table: PIPELINE.into(),
            findings: vec![health(
                "lag",
                "changes reach the destination within alerts.max_lag_secs",
                over,
                format!("the oldest change not yet committed is {age_secs} s old"),
                format!("at most {max} s"),
            )],
        });
    }
}

/// Sets `binlake_source_behind_bytes` from the server's binlog sizes and the reader's position.
async fn behind_check(config: &Config) {
    let Some((file, pos)) = crate::observe::source_position() else {
        return; // still snapshotting, or nothing read yet
    };
    match crate::sources::mysql::behind::binlog_sizes(&config.source).await {
        Ok(logs) => {
            if let Some(bytes) = crate::sources::mysql::behind::bytes_behind((&file, pos), &logs) {
                crate::observe::METRICS
                    .source_behind_bytes
                    .set(bytes as i64);
            }
        }
        Err(e) => tracing::debug!(error = %e, "binlog sizes not read; trying again later"),
    }
}

/// Reads the server's binlog retention and reports it against `source.min_binlog_retention_hours`.
async fn retention_check(config: &Config, alerts: &Alerts) {
    let hours = match crate::sources::mysql::preflight::binlog_retention_hours(&config.source).await
    {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "binlog retention not read; trying again later");
            return;
        }
    };
    let floor = config.source.min_binlog_retention_hours as f64;
    // None: binlogs never expire
    let failed = hours.is_some_and(|h| h < floor);
    alerts.send(Alert::Evaluated {
        table: PIPELINE.into(),
        findings: vec![health(
            "binlog_retention",
            "the server keeps binlogs long enough to resume after an outage without a re-snapshot",
            failed,
            match hours {
                Some(h) => format!("binlogs expire after {h:.1} h"),
                None => "binlogs never expire".into(),
            },
            format!(
                "at least {floor} h (raise binlog_expire_logs_seconds to {})",
                (floor * 3600.0) as u64
            ),
        )],
    });
}
