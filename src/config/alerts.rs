//! `[alerts]`: where failing quality expectations and pipeline health go — a Slack channel (incoming
//! webhook, or a bot token and channel) and/or any URL as plain JSON. Secrets (the webhook URL carries one,
//! the bot token is one) come from the environment and never appear in logs or errors.

use super::validate::declared;
use super::{invalid, ConfigError};
use serde::Deserialize;
use std::fmt;
use validator::Validate;

#[derive(Clone, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    #[serde(default)]
    pub slack: Option<SlackConfig>,
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    /// While an expectation keeps failing, remind at most this often (default 3600 s).
    #[serde(default = "default_remind_every")]
    #[validate(range(min = 1))]
    pub remind_every_secs: u64,
    /// Alerts waiting to be sent; beyond it new ones are dropped (counted and logged), never blocking
    /// ingestion (default 256).
    #[serde(default = "default_queue")]
    #[validate(range(min = 1, max = 100_000))]
    pub queue: usize,
    /// Alert when the oldest change not yet in the destination is older than this (default 300 s; 0: off).
    #[serde(default = "default_max_lag")]
    pub max_lag_secs: u64,
}

fn default_max_lag() -> u64 {
    300
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            slack: None,
            webhook: None,
            remind_every_secs: default_remind_every(),
            queue: default_queue(),
            max_lag_secs: default_max_lag(),
        }
    }
}

fn default_remind_every() -> u64 {
    3600
}
fn default_queue() -> usize {
    256
}

#[derive(Clone, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// An incoming-webhook URL (`https://hooks.slack.com/services/…`): a secret, e.g. `${SLACK_WEBHOOK_URL}`.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Or a bot token (`xoxb-…`, e.g. `${SLACK_BOT_TOKEN}`) with `chat:write`, and the channel to post in.
    #[serde(default)]
    pub bot_token: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    /// Slack's Web API base, for `chat.postMessage` (default `https://slack.com/api`).
    #[serde(default = "default_api")]
    pub api_url: String,
    /// At most one message per this many ms to the channel (Slack allows about one per second).
    #[serde(default = "default_interval")]
    #[validate(range(max = 60_000))]
    pub min_interval_ms: u64,
}

fn default_api() -> String {
    "https://slack.com/api".into()
}
fn default_interval() -> u64 {
    1000
}

impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackConfig")
            .field(
                "webhook_url",
                &self.webhook_url.as_ref().map(|_| "<redacted>"),
            )
            .field("bot_token", &self.bot_token.as_ref().map(|_| "<redacted>"))
            .field("channel", &self.channel)
            .field("api_url", &self.api_url)
            .finish()
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Receives each alert as a JSON object (a secret: bridges embed keys in URLs).
    pub webhook_url: String,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookConfig { webhook_url: <redacted> }")
    }
}

impl fmt::Debug for AlertsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertsConfig")
            .field("slack", &self.slack)
            .field("webhook", &self.webhook)
            .field("remind_every_secs", &self.remind_every_secs)
            .finish()
    }
}

fn http_url(key: &str, url: &str) -> Result<(), ConfigError> {
    // never echo the URL: it carries the secret
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(invalid(key, "must be an http(s):// URL"))
    }
}

impl AlertsConfig {
    pub fn enabled(&self) -> bool {
        self.slack.is_some() || self.webhook.is_some()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(s) = &self.slack {
            match (&s.webhook_url, &s.bot_token, &s.channel) {
                (Some(url), None, _) => http_url("alerts.slack.webhook_url", url)?,
                (None, Some(token), Some(channel)) => {
                    if token.is_empty() || channel.is_empty() {
                        return Err(invalid(
                            "alerts.slack",
                            "bot_token and channel must not be empty",
                        ));
                    }
                    http_url("alerts.slack.api_url", &s.api_url)?;
                }
                (None, Some(_), None) => {
                    return Err(invalid(
                        "alerts.slack.channel",
                        "a bot token posts with chat.postMessage, which needs the channel (e.g. \"#market-data-alerts\")",
                    ))
                }
                (Some(_), Some(_), _) => {
                    return Err(invalid(
                        "alerts.slack",
                        "give webhook_url or bot_token, not both",
                    ))
                }
                (None, None, _) => {
                    return Err(invalid(
                        "alerts.slack",
                        "give webhook_url (an incoming webhook) or bot_token and channel",
                    ))
                }
            }
        }
        if let Some(w) = &self.webhook {
            http_url("alerts.webhook.webhook_url", &w.webhook_url)?;
        }
        if let Some(s) = &self.slack {
            declared("alerts.slack", s)?;
        }
        declared("alerts", self)
    }
}
