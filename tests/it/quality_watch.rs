//! Table-level quality beside a running pipeline and on demand, against the real services: parity of a
//! MariaDB table with its Delta table (rows changed behind binlake's back are named by key), scheduled
//! checks that alert on a stopped feed and doubled trades and then resolve, the lag and binlog-retention
//! health alerts, anomaly and market-hours freshness, and a SIGKILL between recording a batch's results
//! and merging it that neither records nor alerts twice.

use crate::alerts::{fake_slack, spawn_logged, text_of, wait_delivered};
use crate::common::*;
use crate::lake::{assert_lake_equals_source, query_cells, start_lake, wait_for_lake};
use binlake::config::Config;
use mysql_async::prelude::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn validate(config: &Path, extra: &[&str]) -> (i32, Vec<serde_json::Value>) {
    let out = std::process::Command::new(binary())
        .args(["validate", "--format", "json", "--config"])
        .arg(config)
        .args(extra)
        .env("BINLAKE_LOG", "error")
        .output()
        .unwrap();
    let results = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "validate printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exit code"), results)
}

fn result<'a>(results: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    results
        .iter()
        .find(|r| r["expectation"] == id)
        .unwrap_or_else(|| panic!("no result for {id}: {results:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_passes_when_equal_and_names_the_keys_changed_behind_binlakes_back() {
    let db = TestDb::new("parity").await;
    // a compound key with a text part in a case-insensitive collation, and values of several types
    db.exec(
        "CREATE TABLE book (id BIGINT UNSIGNED NOT NULL, venue VARCHAR(8) NOT NULL, px DECIMAL(18,6), \
         qty INT, note TEXT, ts DATETIME(6), PRIMARY KEY (venue, id))",
    )
    .await;
    db.exec(
        "INSERT INTO book SELECT seq, ELT(1 + seq % 3, 'XNAS', 'arcx', 'BATS'), seq / 7, seq % 500, \
         IF(seq % 11 = 0, NULL, CONCAT('n', seq)), TIMESTAMPADD(SECOND, seq, '2026-11-20 14:30:00') \
         FROM seq_1_to_2500",
    )
    .await;
    let text = db.config_text("")
        + &format!(
            "[[quality.expect]]\nid = \"book_equals_mysql\"\ntable = \"{}.book\"\ntype = \"parity\"\nchunk_rows = 400\n",
            db.name
        );
    let path = db.dir.path().join("parity.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::parse(&text, &path).unwrap();
    let (cancel, handle) = start_lake(config.clone());
    let book = format!("{}.book", db.name);
    wait_for_lake(&config, &book, "id = 2500", 60).await;
    // streamed changes too: updates, deletes, inserts
    db.exec("UPDATE book SET px = px * 2, note = 'moved' WHERE id BETWEEN 100 AND 140")
        .await;
    db.exec("DELETE FROM book WHERE id BETWEEN 200 AND 210")
        .await;
    db.exec("INSERT INTO book VALUES (9000, 'XNAS', 1.5, 1, NULL, NOW(6))")
        .await;
    wait_for_lake(&config, &book, "id = 9000", 60).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();
    assert_lake_equals_source(&config, &db.name, "book").await;

    let html = db.dir.path().join("report.html");
    let (code, results) = validate(&path, &["--html", html.to_str().unwrap()]);
    let r = result(&results, "book_equals_mysql");
    assert_eq!((code, r["status"].as_str()), (0, Some("pass")), "{r:#}");
    assert_eq!(r["element_count"], 2490);
    assert!(
        r["observed"]
            .as_str()
            .unwrap()
            .contains("2490 rows in the source"),
        "{r:#}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains(&book) && page.contains("PASS") && page.contains("book_equals_mysql"),
        "{page}"
    );

    // rows changed with sql_log_bin = 0 reach no binlog: the lake cannot know, parity must
    let mut c = admin_for(&db.name).await;
    c.query_drop("SET SESSION sql_log_bin = 0").await.unwrap();
    for sql in [
        "UPDATE book SET px = 0.5 WHERE venue = 'arcx' AND id = 7",
        "UPDATE book SET note = NULL WHERE venue = 'BATS' AND id = 8",
        "DELETE FROM book WHERE venue = 'XNAS' AND id = 9",
        "INSERT INTO book VALUES (77777, 'IEXG', 3, 3, 'late', NOW(6))",
    ] {
        c.query_drop(format!("USE `{}`", db.name)).await.unwrap();
        c.query_drop(sql).await.unwrap();
    }
    drop(c);
    let (code, results) = validate(&path, &[]);
    let r = result(&results, "book_equals_mysql");
    assert_eq!((code, r["status"].as_str()), (1, Some("fail")), "{r:#}");
    assert_eq!(r["unexpected_count"], 4, "{r:#}");
    let mut samples: Vec<String> = r["sample_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    samples.sort();
    assert_eq!(
        samples,
        [
            "differs: venue=BATS,id=8",
            "differs: venue=arcx,id=7",
            "missing in the lake: venue=IEXG,id=77777",
            "only in the lake: venue=XNAS,id=9",
        ],
        "{r:#}"
    );
    assert!(
        r["observed"]
            .as_str()
            .unwrap()
            .contains("1 missing in the lake, 2 different, 1 only in the lake"),
        "{r:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomaly_and_market_hours_freshness_judge_by_the_clock() {
    let db = TestDb::new("anomaly").await;
    db.exec("CREATE TABLE trades (id BIGINT PRIMARY KEY, sym VARCHAR(8) NOT NULL, at TIMESTAMP(6) NOT NULL)")
        .await;
    db.exec("CREATE TABLE steady (id BIGINT PRIMARY KEY, at TIMESTAMP(6) NOT NULL)")
        .await;
    db.exec("CREATE TABLE old (id BIGINT PRIMARY KEY, at TIMESTAMP(6) NOT NULL)")
        .await;
    db.exec("INSERT INTO old VALUES (1, NOW(6) - INTERVAL 2 HOUR)")
        .await;
    // minutes before this one: 5 rows a minute in both; then trades floods (200 a minute) from the
    // previous minute on, so whichever minute is the last complete one when validate runs, it floods
    db.exec(
        "INSERT INTO steady SELECT seq, TIMESTAMPADD(SECOND, -(seq DIV 5) * 60 + 2, \
         FROM_UNIXTIME(UNIX_TIMESTAMP() DIV 60 * 60 + 60)) FROM seq_1_to_150",
    )
    .await;
    db.exec(
        "INSERT INTO trades SELECT seq, 'AAPL', TIMESTAMPADD(SECOND, -(seq DIV 5) * 60 + 2, \
         FROM_UNIXTIME(UNIX_TIMESTAMP() DIV 60 * 60 - 120)) FROM seq_1_to_100",
    )
    .await;
    db.exec(
        "INSERT INTO trades SELECT 1000 + seq, 'AAPL', TIMESTAMPADD(SECOND, seq % 180, \
         FROM_UNIXTIME(UNIX_TIMESTAMP() DIV 60 * 60 - 60)) FROM seq_1_to_600",
    )
    .await;
    // hours that exclude now: the stale table is not judged; no hours: it is
    let now_hour = chrono::Utc::now()
        .format("%H")
        .to_string()
        .parse::<u32>()
        .unwrap();
    // three hours from now, but not 23 (its window would end at midnight); at 20:xx UTC that is 00:xx,
    // never the current hour
    let away = (now_hour + 3) % 24;
    let away = if away == 23 {
        (now_hour + 4) % 24
    } else {
        away
    };
    assert_ne!(away, now_hour);
    let text = db.config_text("")
        + &format!(
            r#"
[[quality.expect]]
id = "trades_per_minute"
table = "{db}.trades"
type = "anomaly"
column = "at"
trailing = 10
max_deviations = 2
[[quality.expect]]
id = "steady_per_minute"
table = "{db}.steady"
type = "anomaly"
column = "at"
trailing = 10
max_deviations = 2
[[quality.expect]]
id = "stale_in_session"
table = "{db}.old"
type = "freshness"
column = "at"
max_age_secs = 60
active_hours = {{ timezone = "UTC", days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start = "{away:02}:00", end = "{away:02}:59" }}
[[quality.expect]]
id = "stale"
table = "{db}.old"
type = "freshness"
column = "at"
max_age_secs = 3600
"#,
            db = db.name
        );
    let path = db.dir.path().join("anomaly.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::parse(&text, &path).unwrap();
    let (cancel, handle) = start_lake(config.clone());
    wait_for_lake(&config, &format!("{}.trades", db.name), "id = 1600", 60).await;
    wait_for_lake(&config, &format!("{}.steady", db.name), "id = 150", 60).await;
    wait_for_lake(&config, &format!("{}.old", db.name), "id = 1", 60).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();

    let (code, results) = validate(&path, &[]);
    assert_eq!(code, 1);
    let status = |id: &str| result(&results, id)["status"].as_str().unwrap().to_string();
    let flood = result(&results, "trades_per_minute");
    assert_eq!(status("trades_per_minute"), "fail", "{flood:#}");
    assert!(
        flood["observed"].as_str().unwrap().contains("σ"),
        "{flood:#}"
    );
    assert_eq!(
        status("steady_per_minute"),
        "pass",
        "{:#}",
        result(&results, "steady_per_minute")
    );
    let off_hours = result(&results, "stale_in_session");
    assert_eq!(status("stale_in_session"), "pass", "{off_hours:#}");
    assert!(
        off_hours["observed"]
            .as_str()
            .unwrap()
            .contains("outside active hours"),
        "{off_hours:#}"
    );
    // two hours old: fails without hours
    let stale = result(&results, "stale");
    assert_eq!(status("stale"), "fail", "{stale:#}");
    assert!(
        stale["observed"]
            .as_str()
            .unwrap()
            .contains("newest at is 72"),
        "{stale:#}"
    );
}

/// The SELECT of one view in sql/athena/020_quality_views.sql, over DuckDB's view `t` of the results.
fn athena_view(name: &str) -> String {
    let sql = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sql/athena/020_quality_views.sql"
    ))
    .unwrap();
    let head = format!("CREATE OR REPLACE VIEW binlake_quality.{name} AS");
    let start = sql.find(&head).expect("view defined") + head.len();
    let body = &sql[start..];
    body[..body.find(';').unwrap()].replace("binlake_quality.results", "t")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_checks_alert_on_a_stopped_feed_and_doubled_trades_once_then_resolve() {
    let db = TestDb::new("qwatch").await;
    db.exec("CREATE TABLE trades (id BIGINT PRIMARY KEY, sym VARCHAR(8) NOT NULL, px DECIMAL(12,2) NOT NULL, qty INT NOT NULL, at DATETIME(6) NOT NULL)")
        .await;
    db.exec("CREATE TABLE quotes (id BIGINT PRIMARY KEY, sym VARCHAR(8) NOT NULL, at TIMESTAMP(6) NOT NULL)")
        .await;
    db.exec("INSERT INTO trades SELECT seq, 'AAPL', 100 + seq, 10, TIMESTAMPADD(SECOND, seq, '2026-11-20 14:30:00') FROM seq_1_to_20")
        .await;
    // the quote feed's newest quote is already two minutes old: the feed has stopped
    db.exec("INSERT INTO quotes SELECT seq, 'AAPL', NOW(6) - INTERVAL 120 SECOND FROM seq_1_to_5")
        .await;
    let (slack, url) = fake_slack(vec![]).await;
    let text = db.config_text("").replace(
        "[lake]",
        "[quality]\ntable_check_interval_secs = 1\n\n[lake]",
    ) + &format!(
        r#"
[alerts.slack]
webhook_url = "${{IT_SLACK_WEBHOOK}}"
min_interval_ms = 100

[[quality.expect]]
id = "trades_not_doubled"
table = "{db}.trades"
type = "unique"
column_list = ["sym", "px", "qty", "at"]
description = "the feed does not deliver a trade twice"

[[quality.expect]]
id = "quotes_fresh"
table = "{db}.quotes"
type = "freshness"
column = "at"
max_age_secs = 60
description = "quotes keep coming"
"#,
        db = db.name
    );
    let path = db.dir.path().join("watch.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::parse(&text.replace("${IT_SLACK_WEBHOOK}", &url), &path).unwrap();
    let log = db.dir.path().join("watch.log");
    let mut child = spawn_logged(&path, &url, &log);

    // the stopped feed: one message, about quotes only
    let got = wait_delivered(&slack, 1, 60).await;
    let headline = got[0]["text"].as_str().unwrap();
    assert!(
        headline.contains(&format!("1 quality check failing on {}.quotes", db.name)),
        "{headline}"
    );
    assert!(text_of(&got[0]).contains("quotes_fresh"), "{:#}", got[0]);
    // a trade delivered twice under a new id
    db.exec("INSERT INTO trades SELECT 21, sym, px, qty, at FROM trades WHERE id = 7")
        .await;
    let got = wait_delivered(&slack, 2, 60).await;
    let doubled = text_of(&got[1]);
    assert!(
        got[1]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("{}.trades", db.name))
            && doubled.contains("trades_not_doubled")
            && doubled.contains("sym=AAPL,px=107.00,qty=10"),
        "{doubled}"
    );
    assert!(
        doubled.contains("HAVING count(*) > 1"),
        "the Athena query: {doubled}"
    );
    // the feed comes back; the duplicate is removed at the source
    db.exec("INSERT INTO quotes VALUES (6, 'AAPL', NOW(6) + INTERVAL 1 HOUR)")
        .await;
    let got = wait_delivered(&slack, 3, 60).await;
    assert!(
        got[2]["text"].as_str().unwrap().contains("resolved")
            && text_of(&got[2]).contains("quotes_fresh"),
        "{:#}",
        got[2]
    );
    db.exec("DELETE FROM trades WHERE id = 21").await;
    let got = wait_delivered(&slack, 4, 60).await;
    assert!(
        got[3]["text"].as_str().unwrap().contains("resolved")
            && text_of(&got[3]).contains("trades_not_doubled"),
        "{:#}",
        got[3]
    );
    // two more rounds of checks pass without a message (each alert once)
    let passing = format!(
        "SELECT count(*) FROM binlake_quality.results WHERE table_name = '{}.trades' \
         AND status = 'pass' AND level = 'table'",
        db.name
    );
    let count = |cells: Vec<Vec<String>>| cells[0][0].parse::<usize>().unwrap();
    let before = count(query_cells(&config, &passing).await);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(query_cells(&config, &passing).await) < before + 2 {
        assert!(Instant::now() < deadline, "no two more passing rounds");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        signal_and_wait(&mut child, 15).code(),
        Some(0),
        "clean stop"
    );
    assert_eq!(
        slack.lock().unwrap().delivered().len(),
        4,
        "one message per start and per resolution"
    );
    assert_lake_equals_source(&config, &db.name, "trades").await;

    // the Athena views, run by DuckDB over the results table
    let results_path = config.lake.root.clone() + "/" + binlake::sinks::lake::quality::RESULTS_DIR;
    let latest = crate::quality::duckdb(
        Path::new(&results_path),
        &format!(
            "SELECT expectation_id, status FROM ({}) v WHERE table_name LIKE '{}.%' ORDER BY 1",
            athena_view("latest_status"),
            db.name
        ),
    );
    assert_eq!(latest, ["quotes_fresh\tpass", "trades_not_doubled\tpass"]);
    let failures = crate::quality::duckdb(
        Path::new(&results_path),
        &format!(
            "SELECT expectation_id, sum(failed_evaluations) > 0, sum(evaluations) > sum(failed_evaluations) \
             FROM ({}) v WHERE table_name LIKE '{}.%' GROUP BY 1 ORDER BY 1",
            athena_view("failures_by_hour"),
            db.name
        ),
    );
    assert_eq!(
        failures,
        ["quotes_fresh\tTrue\tTrue", "trades_not_doubled\tTrue\tTrue"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_and_short_binlog_retention_reach_the_channel() {
    let db = TestDb::new("qhealth").await;
    db.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, v INT)")
        .await;
    let (slack, url) = fake_slack(vec![]).await;
    // the generic webhook gets the same alerts as plain JSON
    let (hook, hook_url) = fake_slack(vec![]).await;
    // the test server keeps binlogs 24 h: below a 48 h floor. Commits every 4 s: past a 1 s lag.
    let text = db
        .config_text("min_binlog_retention_hours = 48\n")
        .replace("flush_interval_ms = 200", "flush_interval_ms = 4000")
        + "\n[alerts]\nmax_lag_secs = 1\n[alerts.slack]\nwebhook_url = \"${IT_SLACK_WEBHOOK}\"\nmin_interval_ms = 100\n"
        + &format!("[alerts.webhook]\nwebhook_url = \"{hook_url}\"\n");
    let path = db.dir.path().join("health.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::parse(&text.replace("${IT_SLACK_WEBHOOK}", &url), &path).unwrap();
    let mut child = spawn_logged(&path, &url, &db.dir.path().join("health.log"));
    let got = wait_delivered(&slack, 1, 60).await;
    let retention = text_of(&got[0]);
    assert!(
        got[0]["text"]
            .as_str()
            .unwrap()
            .contains("1 health check failing on pipeline")
            && retention.contains("binlog_retention")
            && retention.contains("binlogs expire after 24.0 h")
            && retention.contains("172800"),
        "{:#}",
        got[0]
    );
    wait_replica_registered(&db.name, config.source.server_id, 60).await;
    db.exec("INSERT INTO t VALUES (1, 1)").await;
    let got = wait_delivered(&slack, 2, 60).await;
    assert!(
        text_of(&got[1]).contains("lag") && text_of(&got[1]).contains("not yet committed"),
        "{:#}",
        got[1]
    );
    // committed at the next flush: resolved
    let got = wait_delivered(&slack, 3, 60).await;
    assert!(
        got[2]["text"]
            .as_str()
            .unwrap()
            .contains("resolved on pipeline")
            && text_of(&got[2]).contains("lag"),
        "{:#}",
        got[2]
    );
    wait_for_lake(&config, &format!("{}.t", db.name), "id = 1", 60).await;
    assert_eq!(signal_and_wait(&mut child, 15).code(), Some(0));
    let plain = wait_delivered(&hook, 3, 10).await;
    let seen: Vec<(String, String)> = plain
        .iter()
        .map(|m| {
            let f = &m["findings"][0];
            let expectation = f["expectation"]
                .as_str()
                .or(f["finding"]["expectation"].as_str());
            (
                m["kind"].as_str().unwrap().to_string(),
                expectation.unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("failing", "binlog_retention"),
        ("failing", "lag"),
        ("resolved", "lag"),
    ];
    assert_eq!(
        seen,
        want.map(|(k, e)| (k.to_string(), e.to_string())),
        "{plain:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_between_recording_and_merging_records_and_alerts_nothing_twice() {
    let db = TestDb::new("qcrash").await;
    db.exec("CREATE TABLE quotes (id BIGINT PRIMARY KEY, bid DECIMAL(12,2) NOT NULL)")
        .await;
    let (slack, url) = fake_slack(vec![]).await;
    let text = db.config_text("")
        + &format!(
            "\n[alerts.slack]\nwebhook_url = \"${{IT_SLACK_WEBHOOK}}\"\nmin_interval_ms = 100\n\
             [[quality.expect]]\nid = \"bid_positive\"\ntable = \"{}.quotes\"\ntype = \"between\"\n\
             column = \"bid\"\nmin_value = 0\nstrict_min = true\nseverity = \"quarantine\"\n",
            db.name
        );
    let path = db.dir.path().join("crash.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::parse(&text.replace("${IT_SLACK_WEBHOOK}", &url), &path).unwrap();
    db.exec("INSERT INTO quotes VALUES (1, -1), (2, 5), (3, -3)")
        .await;
    // the first batch is recorded (results, quarantine, alert queued), then the process dies before the MERGE
    let mut child = std::process::Command::new(binary())
        .args(["run", "--config"])
        .arg(&path)
        .env("IT_SLACK_WEBHOOK", &url)
        .env("BINLAKE_CRASH_AT", binlake::crash::AFTER_QUALITY_RECORD)
        .env("BINLAKE_LOG", "warn")
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, 60, "the crash point was not reached").await;
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed at the crash point");
    let recorded = || async {
        query_cells(
            &config,
            &format!(
                "SELECT status, CAST(unexpected_count AS VARCHAR) AS n, CAST(seq_min AS VARCHAR) AS lo, \
                 CAST(seq_max AS VARCHAR) AS hi FROM binlake_quality.results WHERE table_name = '{}.quotes' \
                 ORDER BY seq_min",
                db.name
            ),
        )
        .await
    };
    let before = recorded().await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0][..2], ["fail".to_string(), "2".to_string()]);

    // the restart replays the same batch: merged now, recorded and quarantined once, no second alert
    let mut child = spawn_logged(&path, &url, &db.dir.path().join("after.log"));
    wait_for_lake(&config, &format!("{}.quotes", db.name), "id = 3", 60).await;
    db.exec("INSERT INTO quotes VALUES (4, 7)").await;
    wait_for_lake(&config, &format!("{}.quotes", db.name), "id = 4", 60).await;
    // the good batch resolves what the crashed process announced (or had queued when it died)
    let deadline = Instant::now() + Duration::from_secs(60);
    while !slack
        .lock()
        .unwrap()
        .delivered()
        .iter()
        .any(|m| m["text"].as_str().unwrap().contains("resolved"))
    {
        assert!(Instant::now() < deadline, "no resolved message");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(signal_and_wait(&mut child, 15).code(), Some(0));
    let after = recorded().await;
    assert_eq!(
        after[0], before[0],
        "the crashed batch's results are kept as they were"
    );
    assert_eq!(
        after.len(),
        2,
        "one more batch, nothing recorded twice: {after:?}"
    );
    assert_lake_equals_source(&config, &db.name, "quotes").await;
    let quarantined = query_cells(
        &config,
        &format!(
            "SELECT CAST(id AS VARCHAR) AS i FROM \"{}\".quotes__quarantine ORDER BY id",
            db.name
        ),
    )
    .await;
    assert_eq!(
        quarantined,
        [["1"], ["3"]]
            .map(|r| r.map(String::from).to_vec())
            .to_vec()
    );
    let messages: Vec<String> = slack
        .lock()
        .unwrap()
        .delivered()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    let failing = messages.iter().filter(|m| m.contains("failing")).count();
    assert!(failing <= 1, "announced twice: {messages:#?}");
    assert_eq!(
        messages.iter().filter(|m| m.contains("resolved")).count(),
        1,
        "{messages:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_failing_at_a_restart_reaches_the_channel_with_the_fix() {
    // the misconfigured server (binlog_format=STATEMENT): what a restart meets after someone changed it
    let url = mysql_async::Opts::from_url(&env("BINLAKE_TEST_BAD_MYSQL_URL")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (slack, hook) = fake_slack(vec![]).await;
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"bad\"\n[source]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\npassword = \"{}\"\n\
             include = [\"nothing_here.*\"]\n[state]\ndir = \"{}\"\n[lake]\nroot = \"{}\"\n\
             [alerts.slack]\nwebhook_url = \"${{IT_SLACK_WEBHOOK}}\"\n",
            url.ip_or_hostname(),
            url.tcp_port(),
            url.user().unwrap(),
            url.pass().unwrap_or(""),
            dir.path().display(),
            dir.path().join("lake").display()
        ),
    )
    .unwrap();
    let mut child = spawn_logged(&path, &hook, &dir.path().join("bad.log"));
    let status = wait_exit(
        &mut child,
        60,
        "binlake did not stop on the failing preflight",
    )
    .await;
    assert!(!status.success());
    let got = wait_delivered(&slack, 1, 10).await;
    let stopped = text_of(&got[0]);
    assert!(
        got[0]["text"].as_str().unwrap().contains("stopped")
            && stopped.contains("binlog_format")
            && stopped.contains("binlog_format=ROW"),
        "{:#}",
        got[0]
    );
}
