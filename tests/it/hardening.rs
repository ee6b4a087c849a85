//! Failure modes found in review (issue 8): a sink failing mid-snapshot, restarts right after a stop,
//! vacuum retention, source columns that look like binlake's own.

use crate::common::*;
use crate::lake::{assert_lake_equals_source, start_lake, wait_for_lake};
use crate::snapshot_stream::create_quotes;
use binlake::event::{ColumnKind, ColumnSchema, TableSchema};
use binlake::sinks::lake::table::{LakeTable, TableOptions};
use binlake::sinks::lake::{storage_options, table_uri};
use std::time::{Duration, Instant};

/// Runs the binary to completion, or fails the test if it is still running after `secs`.
pub async fn run_binary_to_exit(
    args: &[&str],
    config: &std::path::Path,
    secs: u64,
) -> std::process::Output {
    let child = tokio::process::Command::new(binary())
        .args(args)
        .arg("--config")
        .arg(config)
        .env("BINLAKE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(secs), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("binlake {args:?} still running after {secs}s"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definite_lake_error_during_the_snapshot_exits_with_the_error() {
    let db = TestDb::new("snapfail").await;
    // far more rows than the channel holds, so the source is blocked in `send` when the sink fails
    create_quotes(&db, 100_000).await;
    let config_path = db.config_file("[source.snapshot]\nchunk_size = 1000");
    let config = binlake::config::Config::load(&config_path).unwrap();
    // A Delta table already at the quotes location whose `bid` is a string, holding a row: the first
    // flush cannot evolve it (an empty one would take the source's columns).
    let mut id = ColumnSchema::new("id", ColumnKind::BigInt);
    id.unsigned = true;
    let schema = std::sync::Arc::new(TableSchema {
        database: db.name.clone(),
        table: "quotes".into(),
        columns: vec![id, ColumnSchema::new("bid", ColumnKind::Text)],
        key: vec![0],
        version: 1,
    });
    let mut table = LakeTable::open_or_create(
        &table_uri(&config.lake, &db.name, "quotes").unwrap(),
        &storage_options(&config.lake),
        &schema,
        TableOptions::new(&config.lake, &config.name),
    )
    .await
    .unwrap();
    let row = binlake::sinks::lake::table::KeyChange {
        seq: 1,
        op: "c",
        schema: schema.clone(),
        row: vec![
            binlake::event::Value::UInt(1_000_000),
            binlake::event::Value::String("not a decimal".into()),
        ],
        deleted: false,
        source_ts_ms: 0,
        origin: None,
    };
    table.append(&[row], 1).await.unwrap();
    let started = Instant::now();
    let out = run_binary_to_exit(&["run"], &config_path, 60).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a definite error exits non-zero");
    assert!(
        stderr.contains("`bid`") && stderr.contains("Way out"),
        "the error names the column and the fix: {stderr}"
    );
    eprintln!("stopped {:?} after start", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_below_the_retention_floor_needs_force() {
    let db = TestDb::new("vacfloor").await;
    create_quotes(&db, 10).await;
    let config_path = db.config_file("");
    let out = run_binary_to_exit(
        &["maintain", "--vacuum-retention-hours", "1"],
        &config_path,
        60,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused without --force");
    assert!(
        stderr.contains("168 h floor") && stderr.contains("--force"),
        "{stderr}"
    );
    let out = run_binary_to_exit(
        &["maintain", "--vacuum-retention-hours", "1", "--force"],
        &config_path,
        60,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the config file is refused the same way before anything connects
    let text = std::fs::read_to_string(&config_path).unwrap() + "vacuum_retention_hours = 2\n";
    std::fs::write(&config_path, text).unwrap();
    let out = run_binary_to_exit(&["maintain"], &config_path, 60).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("lake.vacuum_retention_hours") && stderr.contains("vacuum_force"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_right_after_a_stop_resumes_without_error() {
    let db = TestDb::new("restartnow").await;
    create_quotes(&db, 100).await;
    let config_path = db.config_file("");
    let config = binlake::config::Config::load(&config_path).unwrap();
    let mut child = spawn_binlake(&config_path, &[]);
    for (signal, name) in [(15, "SIGTERM"), (9, "SIGKILL")] {
        crate::lake::lake_catch_up(&db, &config, 90).await;
        assert_alive(&mut child, &format!("before {name}"));
        let status = signal_and_wait(&mut child, signal);
        if signal == 15 {
            assert!(status.success(), "graceful stop exits 0, got {status}");
        }
        // at once: the server still lists the previous process's replication connection
        child = spawn_binlake(&config_path, &[]);
        db.exec(&format!(
            "INSERT INTO quotes VALUES ({}, 'R', 1.00, 1)",
            1000 + signal
        ))
        .await;
    }
    crate::lake::lake_catch_up(&db, &config, 90).await;
    assert_alive(&mut child, "after the restarts");
    assert!(signal_and_wait(&mut child, 15).success());
    assert_lake_equals_source(&config, &db.name, "quotes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_columns_starting_with_underscore_reach_the_lake() {
    let db = TestDb::new("underscore").await;
    db.exec("CREATE TABLE t (_id INT PRIMARY KEY, _note VARCHAR(10), v INT)")
        .await;
    db.exec("INSERT INTO t VALUES (1, 'a', 10), (2, NULL, 20)")
        .await;
    let config = db.config("");
    let (cancel, handle) = start_lake(config.clone());
    let t = format!("{}.t", db.name);
    wait_for_lake(&config, &t, "_id = 2", 60).await;
    db.exec("UPDATE t SET _note = 'b' WHERE _id = 2").await;
    db.exec("INSERT INTO t VALUES (3, 'c', 30)").await;
    db.exec("DELETE FROM t WHERE _id = 1").await;
    wait_for_lake(&config, &t, "_id = 3 AND _note = 'c'", 60).await;
    wait_for_lake(&config, &t, "_id = 2 AND _note = 'b'", 60).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();
    assert_lake_equals_source(&config, &db.name, "t").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_column_named_like_a_metadata_column_is_refused_until_the_prefix_changes() {
    let db = TestDb::new("metaclash").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, _seq BIGINT, _op CHAR(1))")
        .await;
    db.exec("INSERT INTO t VALUES (1, 100, 'x')").await;
    let config_path = db.config_file("");
    let out = run_binary_to_exit(&["check"], &config_path, 60).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("FAIL metadata columns") && stdout.contains("lake.metadata_prefix"),
        "{stdout}"
    );
    assert!(
        stdout.contains("`_seq`") || stdout.contains("`_op`"),
        "{stdout}"
    );
    let out = run_binary_to_exit(&["run"], &config_path, 60).await;
    assert!(!out.status.success(), "run refuses to start");
    assert!(String::from_utf8_lossy(&out.stderr).contains("metadata"));
    // with another prefix the same columns are ordinary source columns
    let text = std::fs::read_to_string(&config_path).unwrap() + "metadata_prefix = \"_bl_\"\n";
    std::fs::write(&config_path, text).unwrap();
    let config = binlake::config::Config::load(&config_path).unwrap();
    let (cancel, handle) = start_lake(config.clone());
    let t = format!("{}.t", db.name);
    wait_for_lake(&config, &t, "id = 1 AND _seq = 100 AND _bl_seq > 0", 60).await;
    db.exec("UPDATE t SET _seq = 101, _op = 'y' WHERE id = 1")
        .await;
    wait_for_lake(&config, &t, "id = 1 AND _seq = 101 AND _op = 'y'", 60).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();
    assert_lake_equals_source(&config, &db.name, "t").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintain_in_a_loop_while_streaming_conflicts_are_retried() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let db = TestDb::new("conflicts").await;
    create_quotes(&db, 2000).await;
    let config_path = db.config_file("");
    let config = binlake::config::Config::load(&config_path).unwrap();
    let mut child = spawn_binlake(&config_path, &[]);
    crate::lake::lake_catch_up(&db, &config, 90).await;
    let stop = Arc::new(AtomicBool::new(false));
    let w = tokio::spawn(crate::snapshot_stream::writer(
        db.name.clone(),
        stop.clone(),
        2000,
    ));
    // every flush (200 ms) commits a small file; each compaction rewrites them under the running MERGEs
    for round in 0..6 {
        let out = run_binary_to_exit(&["maintain"], &config_path, 120).await;
        assert!(
            out.status.success(),
            "maintain round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_alive(&mut child, &format!("after maintain round {round}"));
    }
    stop.store(true, Ordering::Relaxed);
    w.await.unwrap();
    crate::lake::lake_catch_up(&db, &config, 90).await;
    assert_alive(&mut child, "after the workload");
    assert!(signal_and_wait(&mut child, 15).success());
    assert_lake_equals_source(&config, &db.name, "quotes").await;
}
