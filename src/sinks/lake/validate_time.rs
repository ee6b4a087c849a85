//! The table-level expectations that depend on the clock: freshness (how old the newest change is) and
//! anomaly (a per-bucket metric against its trailing buckets), both optionally only during active hours.

use super::validate::{ident, number, rows, TableResult};
use super::LakeError;
use crate::config::hours::ActiveHours;
use crate::config::quality::AnomalyMetric;
use chrono::{DateTime, TimeZone, Utc};
use deltalake::arrow::array::{Array, Float64Array, Int64Array};
use deltalake::datafusion::prelude::SessionContext;
use std::collections::HashMap;

/// How far back anomaly history is looked for when active hours leave gaps (a long weekend).
const HISTORY_LOOKBACK_SECS: i64 = 8 * 86_400;

/// Fewer trailing buckets than this: not judged yet.
const MIN_HISTORY: usize = 3;

pub(super) async fn freshness(
    ctx: &SessionContext,
    t: &str,
    column: &str,
    max_age_secs: u64,
    hours: Option<&ActiveHours>,
    now: DateTime<Utc>,
    r: &mut TableResult,
) -> Result<bool, LakeError> {
    let window_start = match hours {
        Some(h) => match h.window_start(now) {
            Some(start) => Some(start),
            None => {
                r.observed = format!("outside active hours ({}): not checked", h.describe());
                return Ok(true);
            }
        },
        None => None,
    };
    let newest = number(
        ctx,
        &format!("SELECT to_unixtime(max({})) AS v FROM {t} s", ident(column)),
    )
    .await?;
    let now_secs = now.timestamp_millis() as f64 / 1000.0;
    // after the open, last session's silence does not count against the feed
    let since = match (newest, window_start) {
        (Some(ts), Some(open)) => Some(ts.max(open.timestamp() as f64)),
        (None, Some(open)) => Some(open.timestamp() as f64),
        (ts, None) => ts,
    };
    Ok(match since {
        Some(ts) => {
            let age = (now_secs - ts).max(0.0);
            r.observed = match newest {
                Some(_) => format!("newest {column} is {age:.0} s old"),
                None => format!("no {column} at all, {age:.0} s into the window"),
            };
            age <= max_age_secs as f64
        }
        None => {
            r.observed = format!("no {column} at all");
            false
        }
    })
}

/// The buckets an anomaly check reads at `now`: the last complete one, and the trailing ones before it
/// (newest first), all inside active hours when given.
fn bucket_plan(
    now: DateTime<Utc>,
    bucket_secs: u64,
    trailing: u32,
    hours: Option<&ActiveHours>,
) -> Option<(i64, Vec<i64>)> {
    let size = bucket_secs as i64;
    let inside = |b: i64| {
        hours.is_none_or(|h| {
            Utc.timestamp_opt(b * size, 0)
                .single()
                .is_some_and(|t| h.contains(t))
        })
    };
    let observed = now.timestamp().div_euclid(size) - 1;
    if !inside(observed) {
        return None;
    }
    let oldest = observed - (trailing as i64) - HISTORY_LOOKBACK_SECS / size;
    let history = (oldest..observed)
        .rev()
        .filter(|b| inside(*b))
        .take(trailing as usize)
        .collect();
    Some((observed, history))
}

/// Whether `observed` lies within `max_deviations` of the history; the text says by how much.
fn judge(
    observed: f64,
    history: &[f64],
    metric: AnomalyMetric,
    max_deviations: f64,
) -> (bool, String) {
    let n = history.len() as f64;
    let mean = history.iter().sum::<f64>() / n;
    let var = history.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let mut sigma = var.sqrt();
    if metric == AnomalyMetric::Count {
        sigma = sigma.max(mean.sqrt());
    }
    let deviations = if sigma > 0.0 {
        (observed - mean).abs() / sigma
    } else if observed == mean {
        0.0
    } else {
        f64::INFINITY
    };
    (
        deviations <= max_deviations,
        format!(
            "{observed} vs mean {mean:.2} ± {sigma:.2} of {} buckets: {deviations:.1} σ",
            history.len()
        ),
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn anomaly(
    ctx: &SessionContext,
    t: &str,
    column: &str,
    metric: AnomalyMetric,
    value_column: Option<&str>,
    bucket_secs: u64,
    trailing: u32,
    max_deviations: f64,
    hours: Option<&ActiveHours>,
    now: DateTime<Utc>,
    r: &mut TableResult,
) -> Result<bool, LakeError> {
    let Some((observed, history)) = bucket_plan(now, bucket_secs, trailing, hours) else {
        r.observed = format!(
            "the last complete bucket is outside active hours ({}): not checked",
            hours.map(|h| h.describe()).unwrap_or_default()
        );
        return Ok(true);
    };
    let size = bucket_secs as i64;
    let lo = history.last().copied().unwrap_or(observed) * size;
    let hi = (observed + 1) * size;
    let value = match (metric, value_column) {
        (AnomalyMetric::Count, _) | (_, None) => "count(*)".to_string(),
        (m, Some(c)) => format!("{}({})", m.function(), ident(c)),
    };
    let ts = format!("to_unixtime({})", ident(column));
    let sql = format!(
        "SELECT CAST(floor({ts} / {size}) AS BIGINT) AS b, CAST({value} AS DOUBLE) AS v \
         FROM {t} s WHERE {ts} >= {lo} AND {ts} < {hi} GROUP BY 1"
    );
    let mut per_bucket: HashMap<i64, f64> = HashMap::new();
    for batch in rows(ctx, &sql).await? {
        let (Some(b), Some(v)) = (
            batch.column(0).as_any().downcast_ref::<Int64Array>(),
            batch.column(1).as_any().downcast_ref::<Float64Array>(),
        ) else {
            continue;
        };
        for i in 0..batch.num_rows() {
            if !b.is_null(i) && !v.is_null(i) {
                per_bucket.insert(b.value(i), v.value(i));
            }
        }
    }
    // buckets before the first one with data predate the table (or the feed): not history
    let first_seen = per_bucket.keys().min().copied();
    let value_of = |b: i64| match per_bucket.get(&b) {
        Some(v) => Some(*v),
        None if metric.zero_when_empty() && first_seen.is_some_and(|f| b >= f) => Some(0.0),
        None => None,
    };
    let past: Vec<f64> = history.iter().filter_map(|b| value_of(*b)).collect();
    let bucket_time = Utc
        .timestamp_opt(observed * size, 0)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    if past.len() < MIN_HISTORY {
        r.observed = format!(
            "{} trailing buckets with data before {bucket_time}; at least {MIN_HISTORY} needed: not judged yet",
            past.len()
        );
        return Ok(true);
    }
    let Some(current) = value_of(observed) else {
        r.observed = format!("no value in the bucket at {bucket_time}");
        return Ok(false);
    };
    let (pass, text) = judge(current, &past, metric, max_deviations);
    r.observed = format!("bucket {bucket_time}: {text}");
    if !pass {
        r.unexpected_count = 1;
        r.sample_keys = vec![bucket_time];
    }
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_stopped_feed_and_a_burst_are_anomalies_a_steady_one_is_not() {
        let steady = [60.0, 58.0, 61.0, 59.0, 62.0, 60.0];
        assert!(judge(61.0, &steady, AnomalyMetric::Count, 3.0).0);
        assert!(!judge(0.0, &steady, AnomalyMetric::Count, 3.0).0);
        assert!(!judge(400.0, &steady, AnomalyMetric::Count, 3.0).0);
        // a perfectly steady count does not fail on one extra row (Poisson floor)
        assert!(judge(11.0, &[10.0; 5], AnomalyMetric::Count, 3.0).0);
        // a constant mean price that moves is an anomaly
        assert!(!judge(11.0, &[10.0; 5], AnomalyMetric::Mean, 3.0).0);
    }

    #[test]
    fn buckets_skip_closed_hours_back_to_the_previous_session() {
        let v: toml::Value = toml::from_str(
            r#"h = { timezone = "America/New_York", start = "09:30", end = "16:00" }"#,
        )
        .unwrap();
        let hours: ActiveHours = serde::Deserialize::deserialize(v["h"].clone()).unwrap();
        // Monday 09:35 New York: the 09:34 bucket is observed; history reaches back into Friday's session
        let (observed, history) =
            bucket_plan(utc("2026-11-30T14:35:10Z"), 60, 10, Some(&hours)).unwrap();
        assert_eq!(observed * 60, utc("2026-11-30T14:34:00Z").timestamp());
        assert_eq!(history.len(), 10);
        assert_eq!(history[3] * 60, utc("2026-11-30T14:30:00Z").timestamp());
        assert_eq!(history[4] * 60, utc("2026-11-27T20:59:00Z").timestamp());
        // Saturday: nothing to judge
        assert!(bucket_plan(utc("2026-11-28T15:00:00Z"), 60, 10, Some(&hours)).is_none());
        // no hours: simply the buckets before
        let (o, h) = bucket_plan(utc("2026-11-28T15:00:30Z"), 60, 3, None).unwrap();
        assert_eq!(h, vec![o - 1, o - 2, o - 3]);
    }
}
