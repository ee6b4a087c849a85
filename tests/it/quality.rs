//! Data quality against the real services: row-level expectations on the stock workload with injected
//! faults; the main table still equals MariaDB, `binlake_quality.results` and the quarantine table (read
//! by DataFusion and by DuckDB) hold exactly the expected rows, a `stop` expectation halts before the
//! merge, and a replay of the same batch records nothing twice.

use crate::common::*;
use crate::lake::{assert_lake_equals_source, query_cells, start_lake, wait_for_lake};
use binlake::config::Config;
use std::path::Path;
use std::time::Duration;

const QUOTES: &str =
    "CREATE TABLE quotes (id BIGINT UNSIGNED PRIMARY KEY, symbol VARCHAR(12) NOT NULL, \
    bid DECIMAL(18,6) NOT NULL, ask DECIMAL(18,6) NOT NULL, note TEXT, ts DATETIME(6) NOT NULL)";

fn expectations(db: &str, bid_severity: &str) -> String {
    format!(
        r#"
[[quality.expect]]
id = "bid_positive"
table = "{db}.quotes"
type = "between"
column = "bid"
min_value = 0
strict_min = true
severity = "{bid_severity}"
description = "prices are positive"

[[quality.expect]]
id = "ask_at_least_bid"
table = "{db}.quotes"
type = "column_pair_greater_than"
column_a = "ask"
column_b = "bid"
or_equal = true
description = "the book is not crossed"

[[quality.expect]]
id = "symbol_pattern"
table = "{db}.quotes"
type = "match_regex"
column = "symbol"
regex = "^[A-Z]{{1,5}}$"
severity = "quarantine"

[[quality.expect]]
id = "note_is_json"
table = "{db}.quotes"
type = "json_parseable"
column = "note"

[[quality.expect]]
id = "cents_only"
table = "{db}.quotes"
type = "decimal_scale_at_most"
column = "ask"
scale = 2
mostly = 0.5
"#
    )
}

fn config(db: &TestDb, bid_severity: &str) -> Config {
    let text = db.config_text("") + &expectations(&db.name, bid_severity);
    Config::parse(&text, Path::new("quality.toml")).unwrap()
}

/// Good rows 1..=100 (snapshot), then faults: 1001–1003 negative bid, 1004–1005 bid above ask,
/// 1006 a lower-case symbol, 1007 a note that is not JSON, 1008 an ask with three decimal places.
async fn load(db: &TestDb) {
    db.exec(QUOTES).await;
    db.exec(
        "INSERT INTO quotes SELECT seq, 'AAPL', 100 + seq / 100, 100.5 + seq / 100, '{\"src\":1}', \
         '2026-11-20 14:30:00' FROM seq_1_to_100",
    )
    .await;
}

async fn faults(db: &TestDb) {
    db.exec(
        "INSERT INTO quotes VALUES \
         (1001, 'MSFT', -1.5, 2, NULL, NOW(6)), (1002, 'MSFT', -2, 3, NULL, NOW(6)), \
         (1003, 'MSFT', 0, 1, NULL, NOW(6)), (1004, 'IBM', 10, 9.99, NULL, NOW(6)), \
         (1005, 'IBM', 10, 9, NULL, NOW(6)), (1006, 'ibm', 10, 11, NULL, NOW(6)), \
         (1007, 'IBM', 10, 11, '{broken', NOW(6)), (1008, 'IBM', 10, 11.125, '[1]', NOW(6))",
    )
    .await;
}

/// `SELECT …` over the results of this test's table, as text cells.
async fn results(config: &Config, db: &str, select: &str) -> Vec<Vec<String>> {
    query_cells(
        config,
        &format!(
            "SELECT {select} FROM binlake_quality.results WHERE table_name = '{db}.quotes' \
             GROUP BY expectation_id ORDER BY expectation_id"
        ),
    )
    .await
}

pub fn duckdb(path: &Path, sql: &str) -> Vec<String> {
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/delta_query.py"
        ))
        .arg(path)
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_expectations_record_results_and_quarantine_while_the_lake_equals_the_source() {
    let db = TestDb::new("quality").await;
    load(&db).await;
    let config = config(&db, "quarantine");
    let (cancel, handle) = start_lake(config.clone());
    wait_for_lake(&config, &format!("{}.quotes", db.name), "id = 100", 60).await;
    faults(&db).await;
    wait_for_lake(&config, &format!("{}.quotes", db.name), "id = 1008", 60).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();

    // the main table mirrors MariaDB, bad rows included
    assert_lake_equals_source(&config, &db.name, "quotes").await;
    // and /metrics counts the evaluations and failures per table and expectation
    let metrics = binlake::observe::render_metrics();
    let line = |name: &str, expectation: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(name)
                    && l.contains(&format!("table=\"{}.quotes\"", db.name))
                    && l.contains(&format!("expectation=\"{expectation}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    };
    assert_eq!(
        line("binlake_quality_failures_total", "bid_positive").as_deref(),
        Some("1"),
        "{metrics}"
    );
    assert_eq!(
        line("binlake_quality_failures_total", "cents_only"),
        None,
        "a pass under `mostly`"
    );
    let evaluations = query_cells(
        &config,
        &format!(
            "SELECT CAST(count(*) AS VARCHAR) AS n FROM binlake_quality.results \
             WHERE table_name = '{}.quotes' AND expectation_id = 'bid_positive'",
            db.name
        ),
    )
    .await;
    assert_eq!(
        line("binlake_quality_evaluations_total", "bid_positive"),
        Some(evaluations[0][0].clone()),
        "one evaluation counted per recorded result"
    );

    // per expectation: evaluations, rows checked and rows failing over both batches
    let got = results(
        &config,
        &db.name,
        "expectation_id, CAST(SUM(element_count) AS VARCHAR), CAST(SUM(unexpected_count) AS VARCHAR), \
         CAST(MIN(seq_min) AS VARCHAR), CAST(MAX(seq_max) AS VARCHAR)",
    )
    .await;
    let failing: Vec<(String, String, String)> = got
        .iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    let want = [
        ("ask_at_least_bid", "108", "2"),
        ("bid_positive", "108", "3"),
        // 11.125 has three places; `mostly = 0.5` lets the batch pass all the same
        ("cents_only", "108", "1"),
        ("note_is_json", "108", "1"),
        ("symbol_pattern", "108", "1"),
    ];
    assert_eq!(
        failing,
        want.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect::<Vec<_>>()
    );
    // the results of one table's batches cover its `_seq`s once: no range recorded twice
    let ranges = query_cells(
        &config,
        &format!(
            "SELECT seq_min, seq_max FROM binlake_quality.results \
             WHERE table_name = '{}.quotes' AND expectation_id = 'bid_positive' ORDER BY seq_min",
            db.name
        ),
    )
    .await;
    for pair in ranges.windows(2) {
        let prev_max: i64 = pair[0][1].parse().unwrap();
        let next_min: i64 = pair[1][0].parse().unwrap();
        assert!(prev_max < next_min, "overlapping result ranges: {ranges:?}");
    }
    // the failing run names its sample keys
    let samples = query_cells(
        &config,
        &format!(
            "SELECT array_to_string(sample_keys, ' '), observed FROM binlake_quality.results WHERE \
             table_name = '{}.quotes' AND expectation_id = 'bid_positive' AND status = 'fail'",
            db.name
        ),
    )
    .await;
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert_eq!(samples[0][0], "1001 1002 1003");
    assert!(samples[0][1].contains("bid=-1.500000"), "{samples:?}");

    // quarantine: the failing rows of quarantine expectations, once each, with the reason
    let quarantine =
        binlake::sinks::lake::table_uri(&config.lake, &db.name, "quotes__quarantine").unwrap();
    let rows = duckdb(
        Path::new(&quarantine),
        "SELECT id, _expectation, _reason FROM t ORDER BY id, _expectation",
    );
    assert_eq!(
        rows,
        vec![
            "1001\tbid_positive\tbetween: expected bid > 0",
            "1002\tbid_positive\tbetween: expected bid > 0",
            "1003\tbid_positive\tbetween: expected bid > 0",
            "1006\tsymbol_pattern\tmatch_regex: expected symbol matches /^[A-Z]{1,5}$/",
        ]
    );
    // the results table through DuckDB too
    let results_path = config.lake.root.clone() + "/" + binlake::sinks::lake::quality::RESULTS_DIR;
    let failed = duckdb(
        Path::new(&results_path),
        &format!(
            "SELECT expectation_id FROM t WHERE table_name = '{}.quotes' AND status = 'fail' ORDER BY 1",
            db.name
        ),
    );
    assert_eq!(
        failed,
        vec![
            "ask_at_least_bid",
            "bid_positive",
            "note_is_json",
            "symbol_pattern"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_expectation_halts_before_the_merge_and_a_replay_records_nothing_twice() {
    let db = TestDb::new("qstop").await;
    load(&db).await;
    let stop = config(&db, "stop");
    let (_cancel, handle) = start_lake(stop.clone());
    wait_for_lake(&stop, &format!("{}.quotes", db.name), "id = 100", 60).await;
    faults(&db).await;
    let err = tokio::time::timeout(Duration::from_secs(60), handle)
        .await
        .expect("the pipeline stops on its own")
        .unwrap()
        .expect_err("a failing stop expectation is an error");
    let text = err.to_string();
    assert!(
        text.contains("bid_positive")
            && text.contains("1001 1002 1003")
            && text.contains("quarantine"),
        "{text}"
    );
    let quotes = format!("\"{}\".quotes", db.name);
    let merged = query_cells(
        &stop,
        &format!("SELECT count(*) FROM {quotes} WHERE id > 1000"),
    )
    .await;
    assert_eq!(merged[0][0], "0", "nothing of the failing batch is merged");
    let recorded = |c: Config| {
        let name = db.name.clone();
        async move {
            results(
                &c,
                &name,
                "expectation_id, CAST(count(*) AS VARCHAR), CAST(SUM(unexpected_count) AS VARCHAR)",
            )
            .await
        }
    };
    let first = recorded(stop.clone()).await;
    assert!(
        first.iter().any(|r| r[0] == "bid_positive" && r[2] == "3"),
        "{first:?}"
    );

    // the same batch again (as after a crash between recording and merging): stops again, records nothing
    let (_cancel, handle) = start_lake(stop.clone());
    let err = tokio::time::timeout(Duration::from_secs(60), handle)
        .await
        .expect("stops again")
        .unwrap()
        .expect_err("still failing");
    assert!(err.to_string().contains("bid_positive"), "{err}");
    assert_eq!(
        recorded(stop.clone()).await,
        first,
        "a replay recorded results twice"
    );

    // the operator's way out: quarantine instead of stop; the batch merges, its rows are set aside once
    let go_on = config(&db, "quarantine");
    let (cancel, handle) = start_lake(go_on.clone());
    wait_for_lake(&go_on, &format!("{}.quotes", db.name), "id = 1008", 60).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();
    assert_lake_equals_source(&go_on, &db.name, "quotes").await;
    assert_eq!(
        recorded(go_on.clone()).await,
        first,
        "results recorded twice"
    );
    let quarantined = query_cells(
        &go_on,
        &format!(
            "SELECT id, _expectation FROM \"{}\".quotes__quarantine ORDER BY id, _expectation",
            db.name
        ),
    )
    .await;
    assert_eq!(
        quarantined,
        [
            ["1001", "bid_positive"],
            ["1002", "bid_positive"],
            ["1003", "bid_positive"],
            ["1006", "symbol_pattern"]
        ]
        .map(|r| r.map(String::from).to_vec())
        .to_vec()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expectation_on_a_missing_column_stops_with_its_name() {
    let db = TestDb::new("qcol").await;
    load(&db).await;
    let text = db.config_text("")
        + &format!(
            "[[quality.expect]]\nid = \"typo\"\ntable = \"{}.quotes\"\ntype = \"not_null\"\ncolumn = \"bidd\"\n",
            db.name
        );
    let config = Config::parse(&text, Path::new("q.toml")).unwrap();
    let (_cancel, handle) = start_lake(config);
    let err = tokio::time::timeout(Duration::from_secs(60), handle)
        .await
        .expect("stops")
        .unwrap()
        .expect_err("a missing column is a definite error");
    let text = err.to_string();
    assert!(text.contains("typo") && text.contains("bidd"), "{text}");
}

const TABLE_EXPECTATIONS: &str = r#"
[[quality.expect]]
id = "rows_ok"
table = "DB.quotes"
type = "row_count_between"
min_value = 100
max_value = 200
[[quality.expect]]
id = "ids_unique"
table = "DB.quotes"
type = "unique"
column_list = ["id"]
[[quality.expect]]
id = "symbol_unique"
table = "DB.quotes"
type = "unique"
column_list = ["symbol"]
[[quality.expect]]
id = "note_nulls"
table = "DB.quotes"
type = "null_fraction_at_most"
column = "note"
max_fraction = 0.01
[[quality.expect]]
id = "symbols_distinct"
table = "DB.quotes"
type = "distinct_count_between"
column = "symbol"
min_value = 1
max_value = 10
[[quality.expect]]
id = "bid_min"
table = "DB.quotes"
type = "min_between"
column = "bid"
min_value = 0
[[quality.expect]]
id = "ask_mean"
table = "DB.quotes"
type = "mean_between"
column = "ask"
min_value = 1
max_value = 1000
[[quality.expect]]
id = "fresh"
table = "DB.quotes"
type = "freshness"
max_age_secs = 3600
[[quality.expect]]
id = "columns"
table = "DB.quotes"
type = "schema"
columns = ["id", "symbol", "bid", "ask", "note", "ts"]
exact = true
[[quality.expect]]
id = "crossed"
table = "DB.quotes"
type = "sql"
query = "SELECT id FROM {table} WHERE ask < bid ORDER BY id"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_runs_table_expectations_prints_junit_and_exits_1_on_failure() {
    let db = TestDb::new("qvalid").await;
    load(&db).await;
    faults(&db).await;
    let text = db.config_text("") + &TABLE_EXPECTATIONS.replace("DB.", &format!("{}.", db.name));
    let path = db.dir.path().join("validate.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::parse(&text, &path).unwrap();
    assert_eq!(
        (config.quality.expect.len(), config.quality.tables.len()),
        (0, 10)
    );
    let (cancel, handle) = start_lake(config.clone());
    wait_for_lake(&config, &format!("{}.quotes", db.name), "id = 1008", 60).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();

    let validate = |format: &str| {
        std::process::Command::new(binary())
            .args(["validate", "--format", format, "--config"])
            .arg(&path)
            .env("BINLAKE_LOG", "error")
            .output()
            .unwrap()
    };
    let out = validate("json");
    assert_eq!(out.status.code(), Some(1), "a failing expectation exits 1");
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let status: Vec<(String, String)> = results
        .iter()
        .map(|r| {
            (
                r["expectation"].as_str().unwrap().into(),
                r["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("rows_ok", "pass"),
        ("ids_unique", "pass"),
        ("symbol_unique", "fail"),
        ("note_nulls", "fail"),
        ("symbols_distinct", "pass"),
        ("bid_min", "fail"),
        ("ask_mean", "pass"),
        ("fresh", "pass"),
        ("columns", "pass"),
        ("crossed", "fail"),
    ];
    assert_eq!(
        status,
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
    let crossed = results
        .iter()
        .find(|r| r["expectation"] == "crossed")
        .unwrap();
    assert_eq!(crossed["sample_keys"], serde_json::json!(["1004", "1005"]));
    assert_eq!(crossed["element_count"], 108);
    let nulls = results
        .iter()
        .find(|r| r["expectation"] == "note_nulls")
        .unwrap();
    assert_eq!(nulls["unexpected_count"], 6, "{nulls}");

    let out = validate("junit");
    assert_eq!(out.status.code(), Some(1));
    let junit = String::from_utf8(out.stdout).unwrap();
    assert!(junit.contains("tests=\"10\" failures=\"4\""), "{junit}");
    assert!(
        junit.contains("<testcase classname=") && junit.contains("name=\"crossed\"><failure"),
        "{junit}"
    );
    // both runs are in the results table, as table-level evaluations
    let recorded = query_cells(
        &config,
        &format!(
            "SELECT count(*) FROM binlake_quality.results WHERE level = 'table' AND table_name = '{}.quotes'",
            db.name
        ),
    )
    .await;
    assert_eq!(recorded[0][0], "20");

    // only passing expectations: exit 0
    let passing = db.config_text("")
        + &TABLE_EXPECTATIONS
            .replace("DB.", &format!("{}.", db.name))
            .split("[[quality.expect]]")
            .filter(|e| {
                ["rows_ok", "ids_unique", "fresh", "columns"]
                    .iter()
                    .any(|id| e.contains(&format!("\"{id}\"")))
            })
            .map(|e| format!("[[quality.expect]]{e}"))
            .collect::<String>();
    std::fs::write(&path, passing).unwrap();
    let out = validate("table");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 expectations, 0 failed"));
}
