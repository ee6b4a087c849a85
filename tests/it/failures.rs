//! Definite failures are loud and precise: a misconfigured server fails preflight, a purged resume position
//! stops with the re-snapshot instructions, bad configuration names its key.

use crate::common::*;
use std::process::Command;

#[test]
fn misconfigured_server_fails_preflight_with_the_fix() {
    let url = mysql_async::Opts::from_url(&env("BINLAKE_TEST_BAD_MYSQL_URL")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"bad\"\n[source]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\npassword = \"{}\"\ninclude = [\"nothing_here.*\"]\n[state]\ndir = \"{}\"\n",
            url.ip_or_hostname(),
            url.tcp_port(),
            url.user().unwrap(),
            url.pass().unwrap_or(""),
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["check", "--sink", "stdout", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "check must exit non-zero:\n{stdout}");
    assert!(
        stdout.contains("FAIL binlog_format") && stdout.contains("STATEMENT"),
        "{stdout}"
    );
    assert!(
        stdout.contains("binlog_format=ROW"),
        "the fix is named:\n{stdout}"
    );
    assert!(stdout.contains("FAIL binlog_row_metadata"), "{stdout}");
    assert!(stdout.contains("FAIL tables"), "{stdout}");

    // `run` performs the same checks and refuses to start.
    let out = Command::new(binary())
        .args(["run", "--sink", "stdout", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("binlog_format"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_resume_position_is_a_definite_error_naming_the_resnapshot() {
    let db = TestDb::new("purged").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let config = db.config_file("");
    // A checkpoint pointing at a binlog file the server no longer has (as after PURGE BINARY LOGS).
    let state = db.dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("it.checkpoint.json"),
        r#"{"next_seq": 42, "position": {"file": "mysql-bin.000000", "pos": 4}, "gtid": null, "snapshot": null}"#,
    )
    .unwrap();
    let check = Command::new(binary())
        .args(["check", "--sink", "stdout", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        !check.status.success() && stdout.contains("FAIL resume position"),
        "{stdout}"
    );
    assert!(
        stdout.contains("it.checkpoint.json") && stdout.contains("move the checkpoint"),
        "the stdout sink's advice names its checkpoint file: {stdout}"
    );
    // The lake sink keeps its progress in the lake, and its advice says so (not state.dir).
    let marker = db.lake_root().join("_binlake");
    std::fs::create_dir_all(&marker).unwrap();
    std::fs::write(
        marker.join("it.checkpoint.json"),
        r#"{"next_seq": 42, "position": {"file": "mysql-bin.000000", "pos": 4}, "gtid": null, "snapshot": null}"#,
    )
    .unwrap();
    let check = Command::new(binary())
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        !check.status.success() && stdout.contains("FAIL resume position"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lake.root") && !stdout.contains("move the checkpoint"),
        "the lake sink's advice: {stdout}"
    );
    let out = Command::new(binary())
        .args(["run", "--sink", "stdout", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("re-snapshot") && stderr.contains("mysql-bin.000000"),
        "{stderr}"
    );
}

#[test]
fn bad_config_names_the_key_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "name = \"x\"\n[source]\nuser = \"u\"\ninclude = [\"db.*\"]\nchunk = 5\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("source") && stderr.contains("chunk"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_by_gtid_when_the_checkpoint_file_is_not_on_the_server() {
    use binlake::event::{Op, Value};
    let db = TestDb::new("gtid").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    db.exec("INSERT INTO t VALUES (1, 1), (2, 2)").await;
    let first = run_until(db.config(""), |m| changes(m).len() >= 2, 20).await;
    assert_eq!(changes(&first).len(), 2);

    // As after a failover: same GTID history, different binlog file names.
    let path = db.dir.path().join("state/it.checkpoint.json");
    let mut cp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        cp["gtid"].is_string(),
        "checkpoint carries the GTID state: {cp}"
    );
    cp["position"]["file"] = "failover-bin.000042".into();
    cp["snapshot"] = serde_json::Value::Null;
    std::fs::write(&path, cp.to_string()).unwrap();
    let next_seq = cp["next_seq"].as_u64().unwrap();

    db.exec("INSERT INTO t VALUES (3, 3)").await;
    db.exec("UPDATE t SET v = 20 WHERE id = 2").await;
    let second = run_until(db.config(""), |m| changes(m).len() >= 2, 20).await;
    let events = changes(&second);
    assert_eq!(events.len(), 2, "exactly the changes after the checkpoint");
    assert_eq!((events[0].op, events[0].seq), (Op::Insert, next_seq));
    assert_eq!(events[0].after.as_ref().unwrap()[0], Value::Int(3));
    assert_eq!((events[1].op, events[1].seq), (Op::Update, next_seq + 1));
    assert!(
        events[1].source.position.file.starts_with("mysql-bin."),
        "real file name learned from the server"
    );
}
