//! Slack alerts from a real `binlake run` process to a fake Slack on loopback that records every request
//! and answers as scripted (429 with Retry-After, 500, 200): one grouped message when expectations start
//! failing, silence while they keep failing, one "resolved" message, the retries and the rate limit
//! honoured, a "stopped" message on a definite error, and the webhook's secret never in the logs.

use crate::common::*;
use crate::lake::wait_for_lake;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use binlake::config::Config;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "T0001/B0002/s3cr3tPathPart";

#[derive(Default)]
pub struct FakeSlack {
    /// (when, status answered, body)
    pub requests: Vec<(Instant, u16, serde_json::Value)>,
    /// Statuses to answer next (then 200).
    script: Vec<u16>,
}

impl FakeSlack {
    pub fn delivered(&self) -> Vec<serde_json::Value> {
        self.requests
            .iter()
            .filter(|r| r.1 == 200)
            .map(|r| r.2.clone())
            .collect()
    }
}

async fn hook(
    State(s): State<Arc<Mutex<FakeSlack>>>,
    body: String,
) -> (StatusCode, HeaderMap, String) {
    let mut s = s.lock().unwrap();
    let status = if s.script.is_empty() {
        200
    } else {
        s.script.remove(0)
    };
    let body: serde_json::Value = serde_json::from_str(&body).expect("alerts are JSON");
    s.requests.push((Instant::now(), status, body));
    let mut headers = HeaderMap::new();
    if status == 429 {
        headers.insert("retry-after", "1".parse().unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), headers, "ok".into())
}

pub async fn fake_slack(script: Vec<u16>) -> (Arc<Mutex<FakeSlack>>, String) {
    let state = Arc::new(Mutex::new(FakeSlack {
        script,
        ..Default::default()
    }));
    let app = axum::Router::new()
        .route("/services/{*rest}", axum::routing::post(hook))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/services/{SECRET}",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, url)
}

/// Waits until the fake Slack has delivered `n` messages.
pub async fn wait_delivered(
    slack: &Arc<Mutex<FakeSlack>>,
    n: usize,
    secs: u64,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = slack.lock().unwrap().delivered();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} Slack messages within {secs}s: {got:#?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn text_of(message: &serde_json::Value) -> String {
    message["blocks"].to_string()
}

fn config_text(db: &TestDb, extra: &str) -> String {
    db.config_text("")
        + &format!(
            r#"
[alerts]
remind_every_secs = 3600
[alerts.slack]
webhook_url = "${{IT_SLACK_WEBHOOK}}"
min_interval_ms = 400

[[quality.expect]]
id = "bid_positive"
table = "{db}.quotes"
type = "between"
column = "bid"
min_value = 0
strict_min = true
severity = "quarantine"
description = "prices are positive"

[[quality.expect]]
id = "ask_at_least_bid"
table = "{db}.quotes"
type = "column_pair_greater_than"
column_a = "ask"
column_b = "bid"
or_equal = true
{extra}
"#,
            db = db.name
        )
}

pub fn spawn_logged(config: &Path, url: &str, log: &Path) -> std::process::Child {
    std::process::Command::new(binary())
        .args(["run", "--config"])
        .arg(config)
        .env("IT_SLACK_WEBHOOK", url)
        .env("BINLAKE_LOG", "debug,buoyant_kernel=off,delta_kernel=off,deltalake_core=off,datafusion=off,hyper=off,aws=off")
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_expectations_alert_once_grouped_then_resolve_with_retries_and_no_secret_in_logs() {
    let db = TestDb::new("alerts").await;
    db.exec("CREATE TABLE quotes (id BIGINT PRIMARY KEY, bid DECIMAL(12,2) NOT NULL, ask DECIMAL(12,2) NOT NULL)")
        .await;
    db.exec("INSERT INTO quotes SELECT seq, 10, 11 FROM seq_1_to_50")
        .await;
    // the first message meets a 429 (Retry-After: 1) and a 500 before it is accepted
    let (slack, url) = fake_slack(vec![429, 500]).await;
    let path = db.dir.path().join("alerts.toml");
    std::fs::write(&path, config_text(&db, "")).unwrap();
    let config = Config::parse(
        &std::fs::read_to_string(&path)
            .unwrap()
            .replace("${IT_SLACK_WEBHOOK}", &url),
        &path,
    )
    .unwrap();
    let log = db.dir.path().join("run.log");
    let mut child = spawn_logged(&path, &url, &log);
    let quotes = format!("{}.quotes", db.name);
    wait_for_lake(&config, &quotes, "id = 50", 60).await;

    // both start failing in one batch: one message naming both
    db.exec("INSERT INTO quotes VALUES (101, -1, 5), (102, -2, 5), (103, 9, 8)")
        .await;
    let got = wait_delivered(&slack, 1, 60).await;
    let first = text_of(&got[0]);
    assert!(
        got[0]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("2 quality checks failing on {quotes}")),
        "{:#}",
        got[0]
    );
    assert!(
        first.contains("bid_positive") && first.contains("ask_at_least_bid"),
        "{first}"
    );
    assert!(
        first.contains("keys 101, 102") && first.contains("bid=-1.00"),
        "{first}"
    );
    assert!(
        first.contains("quotes__quarantine") && first.contains("BETWEEN"),
        "{first}"
    );

    // bid still failing, ask fine again: only ask resolves; then a good batch resolves bid
    db.exec("INSERT INTO quotes VALUES (104, -3, 5)").await;
    let got = wait_delivered(&slack, 2, 60).await;
    let resolved = text_of(&got[1]);
    assert!(
        got[1]["text"].as_str().unwrap().contains("resolved"),
        "{:#}",
        got[1]
    );
    assert!(
        resolved.contains("ask_at_least_bid") && !resolved.contains("bid_positive"),
        "{resolved}"
    );
    db.exec("INSERT INTO quotes VALUES (105, 10, 11)").await;
    let got = wait_delivered(&slack, 3, 60).await;
    let resolved = text_of(&got[2]);
    assert!(
        resolved.contains("bid_positive") && !resolved.contains("ask_at_least_bid"),
        "{resolved}"
    );
    // failing again after being resolved is a new start
    db.exec("INSERT INTO quotes VALUES (106, -4, 5)").await;
    let got = wait_delivered(&slack, 4, 60).await;
    assert!(
        got[3]["text"]
            .as_str()
            .unwrap()
            .contains("1 quality check failing"),
        "{:#}",
        got[3]
    );
    // and while it keeps failing (within remind_every_secs), nothing more
    db.exec("INSERT INTO quotes VALUES (107, -5, 5)").await;
    wait_for_lake(&config, &quotes, "id = 107", 60).await;
    assert_eq!(
        signal_and_wait(&mut child, 15).code(),
        Some(0),
        "clean stop"
    );
    let requests: Vec<(Instant, u16)> = slack
        .lock()
        .unwrap()
        .requests
        .iter()
        .map(|r| (r.0, r.1))
        .collect();
    assert_eq!(
        requests.iter().map(|r| r.1).collect::<Vec<_>>(),
        [429, 500, 200, 200, 200, 200],
        "the first message retried through 429 and 500; two resolved, one new start; nothing while failing"
    );
    assert!(
        requests[1].0 - requests[0].0 >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    for pair in requests.windows(2) {
        // measured at receipt: a few ms of delivery jitter either way
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap >= Duration::from_millis(380),
            "rate limit kept: {gap:?}"
        );
    }

    // a definite error (an expectation on a column the table lacks) stops binlake with a Slack message
    std::fs::write(
        &path,
        config_text(
            &db,
            &format!("\n[[quality.expect]]\nid = \"typo\"\ntable = \"{}.quotes\"\ntype = \"not_null\"\ncolumn = \"bidd\"\n", db.name),
        ),
    )
    .unwrap();
    db.exec("INSERT INTO quotes VALUES (108, 10, 11)").await;
    let mut child = spawn_logged(&path, &url, &log.with_extension("2.log"));
    let status = wait_exit(&mut child, 60, "binlake did not stop on the definite error").await;
    assert!(!status.success());
    let got = wait_delivered(&slack, 5, 10).await;
    let stopped = text_of(&got[4]);
    let headlines: Vec<&str> = got.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert!(headlines[4].contains("stopped"), "{headlines:#?}");
    assert!(
        stopped.contains("typo") && stopped.contains("bidd"),
        "{stopped}"
    );

    // a restart knows bid_positive was failing (from the results): the replayed good row 108 resolves it
    // instead of the next failure being announced as new
    std::fs::write(&path, config_text(&db, "")).unwrap();
    let mut child = spawn_logged(&path, &url, &log.with_extension("3.log"));
    let got = wait_delivered(&slack, 6, 60).await;
    let headlines: Vec<&str> = got.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert!(
        headlines[5].contains("resolved") && text_of(&got[5]).contains("bid_positive"),
        "{headlines:#?}"
    );
    assert_eq!(
        signal_and_wait(&mut child, 15).code(),
        Some(0),
        "clean stop"
    );

    for l in [
        log.clone(),
        log.with_extension("2.log"),
        log.with_extension("3.log"),
    ] {
        let text = std::fs::read_to_string(&l).unwrap();
        assert!(text.contains("binlake"), "the log is written: {text}");
        assert!(
            !text.contains("s3cr3tPathPart"),
            "the webhook URL's secret is in {}",
            l.display()
        );
    }
}
