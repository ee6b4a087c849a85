//! Sending notices: Slack (Block Kit, by incoming webhook or `chat.postMessage`) and a plain JSON webhook.
//! Each destination is rate limited, honours `429 Retry-After`, retries 5xx and network errors with
//! backoff, and gives up on other answers (a revoked webhook will not heal by retrying). No URL or token is
//! ever logged: reqwest errors are stripped of their URL.

use super::tracker::Notice;
use super::Finding;
use crate::config::alerts::{SlackConfig, WebhookConfig};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A request to Slack or a webhook may take this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per message for 5xx and network errors (429 is retried as Slack asks, within the same cap).
const ATTEMPTS: u32 = 5;
/// The longest `Retry-After` obeyed; a longer one drops the message (and is logged).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// Sample keys an alert shows (the results table keeps 20).
const KEYS_SHOWN: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{destination} answered {status}: {body}")]
    Refused {
        destination: &'static str,
        status: u16,
        body: String,
    },
    #[error("{destination} stayed unavailable after {ATTEMPTS} attempts: {last}")]
    Unavailable {
        destination: &'static str,
        last: String,
    },
}

enum Target {
    SlackWebhook {
        url: String,
    },
    SlackBot {
        api: String,
        token: String,
        channel: String,
    },
    Json {
        url: String,
    },
}

pub struct Destination {
    target: Target,
    min_interval: Duration,
    last_sent: Option<Instant>,
    client: reqwest::Client,
}

impl Destination {
    pub fn slack(cfg: &SlackConfig) -> Self {
        let target = match (&cfg.webhook_url, &cfg.bot_token, &cfg.channel) {
            (Some(url), _, _) => Target::SlackWebhook { url: url.clone() },
            (None, Some(token), Some(channel)) => Target::SlackBot {
                api: cfg.api_url.trim_end_matches('/').to_string(),
                token: token.clone(),
                channel: channel.clone(),
            },
            _ => unreachable!("validated: a webhook URL, or a bot token and channel"),
        };
        Self::new(target, Duration::from_millis(cfg.min_interval_ms))
    }

    pub fn webhook(cfg: &WebhookConfig) -> Self {
        Self::new(
            Target::Json {
                url: cfg.webhook_url.clone(),
            },
            Duration::ZERO,
        )
    }

    fn new(target: Target, min_interval: Duration) -> Self {
        Destination {
            target,
            min_interval,
            last_sent: None,
            client: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("an HTTP client with a timeout"),
        }
    }

    pub fn name(&self) -> &'static str {
        match self.target {
            Target::SlackWebhook { .. } | Target::SlackBot { .. } => "slack",
            Target::Json { .. } => "webhook",
        }
    }

    /// Sends one notice, waiting out the rate limit and the retries.
    pub async fn send(&mut self, notice: &Notice, connector: &str) -> Result<(), DeliveryError> {
        let destination = self.name();
        let (url, body, bearer) = match &self.target {
            Target::SlackWebhook { url } => (url.clone(), slack_message(notice, connector), None),
            Target::SlackBot {
                api,
                token,
                channel,
            } => {
                let mut body = slack_message(notice, connector);
                body["channel"] = json!(channel);
                (format!("{api}/chat.postMessage"), body, Some(token.clone()))
            }
            Target::Json { url } => (url.clone(), json_message(notice, connector), None),
        };
        let mut last = String::new();
        let mut backoff = Duration::from_millis(500);
        for _ in 0..ATTEMPTS {
            if let Some(at) = self.last_sent {
                let next = at + self.min_interval;
                if next > Instant::now() {
                    tokio::time::sleep_until(next.into()).await;
                }
            }
            self.last_sent = Some(Instant::now());
            let mut request = self
                .client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&body).expect("JSON values serialize"));
            if let Some(token) = &bearer {
                request = request.bearer_auth(token);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = e.without_url().to_string();
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    continue;
                }
            };
            let status = response.status();
            if status.as_u16() == 429 {
                let wait = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(backoff, Duration::from_secs);
                if wait > MAX_RETRY_AFTER {
                    return Err(DeliveryError::Unavailable {
                        destination,
                        last: format!("rate limited for {} s", wait.as_secs()),
                    });
                }
                last = "429 rate limited".into();
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() {
                last = format!("HTTP {status}");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                continue;
            }
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(DeliveryError::Refused {
                    destination,
                    status: status.as_u16(),
                    body: text.chars().take(200).collect(),
                });
            }
            // the Web API answers 200 with {"ok": false, "error": …} when it refuses
            if bearer.is_some() {
                let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if answer["ok"] != json!(true) {
                    let error = answer["error"]
                        .as_str()
                        .unwrap_or("no error given")
                        .to_string();
                    if error == "ratelimited" {
                        last = error;
                        tokio::time::sleep(backoff.max(Duration::from_secs(1))).await;
                        continue;
                    }
                    return Err(DeliveryError::Refused {
                        destination,
                        status: 200,
                        body: error,
                    });
                }
            }
            return Ok(());
        }
        Err(DeliveryError::Unavailable { destination, last })
    }
}

fn count(n: u64) -> String {
    // 12345 → 12,345: easier to read on a phone
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn finding_text(f: &Finding) -> String {
    let keys: Vec<&str> = f
        .sample_keys
        .iter()
        .take(KEYS_SHOWN)
        .map(String::as_str)
        .collect();
    let mut text = format!("*{}* ({})", f.expectation, f.severity);
    if !f.description.is_empty() {
        text.push_str(&format!(" — {}", f.description));
    }
    text.push_str(&format!(
        "\nexpected `{}`, observed `{}`",
        f.expected, f.observed
    ));
    // health findings have no rows; table-level ones no batch
    let mut facts = vec![];
    if f.checked > 0 || f.unexpected > 0 {
        facts.push(format!(
            "{} of {} rows",
            count(f.unexpected),
            count(f.checked)
        ));
    }
    if !keys.is_empty() {
        facts.push(format!(
            "keys {}{}",
            keys.join(", "),
            if f.sample_keys.len() > keys.len() {
                ", …"
            } else {
                ""
            }
        ));
    }
    if f.seq != (0, 0) {
        facts.push(format!("_seq {}–{}", f.seq.0, f.seq.1));
    }
    if !facts.is_empty() {
        text.push('\n');
        text.push_str(&facts.join(" · "));
    }
    text
}

/// The Block Kit message: a header line, one section per expectation, the SQL that shows the rows.
pub fn slack_message(notice: &Notice, connector: &str) -> Value {
    let context =
        |text: String| json!({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]});
    let section =
        |text: String| json!({"type": "section", "text": {"type": "mrkdwn", "text": text}});
    let (headline, mut blocks) = match notice {
        Notice::Failing {
            table,
            findings,
            reminder,
        } => {
            let kind = if findings.iter().all(|f| f.health) {
                "health"
            } else {
                "quality"
            };
            let what = if findings.len() == 1 {
                format!("1 {kind} check")
            } else {
                format!("{} {kind} checks", findings.len())
            };
            let headline = if *reminder {
                format!(":large_orange_circle: still failing: {what} on {table}")
            } else {
                format!(":red_circle: {what} failing on {table}")
            };
            let mut blocks = vec![];
            for f in findings {
                blocks.push(section(finding_text(f)));
                if !f.sql.is_empty() {
                    blocks.push(context(format!("Athena: `{}`", f.sql)));
                }
            }
            (headline, blocks)
        }
        Notice::Resolved { table, resolved } => {
            let names: Vec<String> = resolved
                .iter()
                .map(|(f, d)| format!("*{}* (failed for {})", f.expectation, human(*d)))
                .collect();
            (
                format!(":large_green_circle: resolved on {table}"),
                vec![section(names.join("\n"))],
            )
        }
        Notice::Stopped { error } => (
            ":octagonal_sign: binlake stopped".to_string(),
            vec![section(format!(
                "```{}```",
                error.chars().take(2500).collect::<String>()
            ))],
        ),
    };
    blocks.insert(
        0,
        json!({"type": "header", "text": {"type": "plain_text", "text": headline.chars().take(150).collect::<String>()}}),
    );
    blocks.push(context(format!("connector `{connector}`")));
    json!({ "text": headline, "blocks": blocks })
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// The same notice as plain JSON, for PagerDuty/Teams/Opsgenie bridges.
pub fn json_message(notice: &Notice, connector: &str) -> Value {
    match notice {
        Notice::Failing {
            table,
            findings,
            reminder,
        } => json!({
            "kind": if *reminder { "reminder" } else { "failing" },
            "connector": connector,
            "table": table,
            "findings": findings,
        }),
        Notice::Resolved { table, resolved } => json!({
            "kind": "resolved",
            "connector": connector,
            "table": table,
            "findings": resolved.iter().map(|(f, d)| json!({"finding": f, "failed_for_secs": d.as_secs()})).collect::<Vec<_>>(),
        }),
        Notice::Stopped { error } => json!({
            "kind": "stopped",
            "connector": connector,
            "error": error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well_on_a_phone() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(human(Duration::from_secs(3800)), "1 h 3 min");
    }

    #[test]
    fn health_and_table_level_findings_leave_out_what_they_lack() {
        let lag = Finding {
            table: "pipeline".into(),
            expectation: "lag".into(),
            severity: "warn".into(),
            failed: true,
            observed: "the oldest change not yet committed is 400 s old".into(),
            expected: "at most 300 s".into(),
            health: true,
            ..Default::default()
        };
        let notice = Notice::Failing {
            table: "pipeline".into(),
            findings: vec![lag],
            reminder: false,
        };
        let msg = slack_message(&notice, "stocks");
        assert_eq!(
            msg["text"],
            ":red_circle: 1 health check failing on pipeline"
        );
        let blocks = msg["blocks"].to_string();
        assert!(!blocks.contains("_seq") && !blocks.contains("Athena") && !blocks.contains("rows"));
        let dup = Finding {
            table: "stocks.trades".into(),
            expectation: "trades_not_doubled".into(),
            failed: true,
            unexpected: 2,
            checked: 1000,
            sample_keys: vec!["sym=AAPL".into()],
            sql: "SELECT 1".into(),
            ..Default::default()
        };
        let text = finding_text(&dup);
        assert!(text.ends_with("2 of 1,000 rows · keys sym=AAPL"), "{text}");
    }
}
