//! SIGKILL and restart the binary during the snapshot and during streaming: after discarding each run's
//! uncommitted tail (events the next run replays with the same `_seq`), the event stream continues exactly.

use crate::common::*;
use crate::snapshot_stream::{assert_contiguous, catch_up, create_quotes, writer};
use binlake::event::{ChangeEvent, ColumnKind, ColumnSchema, Op, TableSchema, Value};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn spawn(config: &std::path::Path, out: &std::path::Path) -> Child {
    Command::new(binary())
        .args(["run", "--sink", "stdout", "--config"])
        .arg(config)
        .env("BINLAKE_LOG", "warn")
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("_seq").is_some())
        .collect()
}

/// Concatenates runs, dropping from each run the events the next run re-emitted (same `_seq` or later).
fn stitch(runs: &[Vec<serde_json::Value>]) -> Vec<serde_json::Value> {
    let mut out = vec![];
    for (i, run) in runs.iter().enumerate() {
        let next_first = runs[i + 1..]
            .iter()
            .find_map(|r| r.first())
            .map(|v| v["_seq"].as_u64().unwrap());
        for v in run {
            if next_first.is_none_or(|n| v["_seq"].as_u64().unwrap() < n) {
                out.push(v.clone());
            }
        }
    }
    out
}

/// Turns JSON envelope lines back into events over a `quotes` schema, for the strict replay.
fn to_events(lines: &[serde_json::Value]) -> Vec<ChangeEvent> {
    let col = |name: &str, kind| ColumnSchema {
        name: name.into(),
        kind,
        sql_type: String::new(),
        unsigned: false,
        nullable: false,
        charset: None,
        members: vec![],
        precision: None,
        scale: None,
        added: None,
    };
    let schema = std::sync::Arc::new(TableSchema {
        database: String::new(),
        table: "quotes".into(),
        columns: vec![
            col("id", ColumnKind::BigInt),
            col("symbol", ColumnKind::Text),
            col("bid", ColumnKind::Decimal),
            col("qty", ColumnKind::Int),
        ],
        key: vec![0],
        version: 1,
    });
    let row = |v: &serde_json::Value| -> Option<Vec<Value>> {
        if v.is_null() {
            return None;
        }
        Some(vec![
            Value::UInt(v["id"].as_u64().unwrap()),
            Value::String(v["symbol"].as_str().unwrap().into()),
            Value::Decimal(v["bid"].as_str().unwrap().into()),
            Value::Int(v["qty"].as_i64().unwrap()),
        ])
    };
    lines
        .iter()
        .map(|l| ChangeEvent {
            op: match l["op"].as_str().unwrap() {
                "r" => Op::Read,
                "c" => Op::Insert,
                "u" => Op::Update,
                "d" => Op::Delete,
                _ => Op::Truncate,
            },
            schema: schema.clone(),
            before: row(&l["before"]),
            after: row(&l["after"]),
            source: serde_json::from_value(serde_json::json!({
                "server_id": 0, "position": {"file": "", "pos": 0}, "row": 0, "gtid": null, "ts_ms": 0, "snapshot": false
            }))
            .unwrap(),
            seq: l["_seq"].as_u64().unwrap(),
            tx_order: 0,
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Phase {
    Snapshot,
    Streaming,
}

/// The phase and `_seq` progress the process's own checkpoint file records, if it has one.
fn progress(db: &TestDb) -> Option<(Phase, u64)> {
    let text = std::fs::read_to_string(db.dir.path().join("state/it.checkpoint.json")).ok()?;
    let cp: binlake::event::progress::Checkpoint = serde_json::from_str(&text).ok()?;
    let phase = if cp.snapshot.as_ref().is_some_and(|s| !s.complete) {
        Phase::Snapshot
    } else {
        Phase::Streaming
    };
    Some((phase, cp.next_seq))
}

async fn kill_restart_cycle(
    prefix: &str,
    initial_rows: u64,
    chunk: u32,
    kills: usize,
    phase: Phase,
) {
    let db = TestDb::new(prefix).await;
    create_quotes(&db, initial_rows).await;
    let config = db.config_file(&format!("[source.snapshot]\nchunk_size = {chunk}"));
    let stop = Arc::new(AtomicBool::new(false));
    let w = tokio::spawn(writer(db.name.clone(), stop.clone(), initial_rows));
    let mut outputs = vec![];
    for i in 0..kills {
        let out = db.dir.path().join(format!("run{i}.jsonl"));
        let before = progress(&db).map_or(0, |(_, seq)| seq);
        let mut child = spawn(&config, &out);
        // kill once this process has made progress of its own in the phase the test is about
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            assert_alive(&mut child, &format!("before kill {i}"));
            match progress(&db) {
                Some((p, seq)) if p == phase && seq > before => break,
                Some((p, _)) if p != phase && phase == Phase::Snapshot => {
                    panic!("kill {i}: the snapshot finished before the kill could land in it")
                }
                _ => {}
            }
            assert!(
                std::time::Instant::now() < deadline,
                "kill {i}: no progress within 90 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert_eq!(
            progress(&db).map(|(p, _)| p),
            Some(phase),
            "kill {i} landed in the {phase:?} phase"
        );
        outputs.push(out);
    }
    stop.store(true, Ordering::Relaxed);
    w.await.unwrap();
    let out = db.dir.path().join("final.jsonl");
    let mut child = spawn(&config, &out);
    let o = out.clone();
    catch_up(&db, 90, |id, qty| {
        let o = o.clone();
        async move {
            lines(&o).iter().any(|l| {
                l["after"]["id"].as_u64() == Some(id) && l["after"]["qty"].as_i64() == Some(qty)
            })
        }
    })
    .await;
    unsafe { libc_kill(child.id() as i32, 15) }; // SIGTERM: drain and save
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful stop exits 0, got {status}");
    outputs.push(out);

    let runs: Vec<Vec<serde_json::Value>> = outputs.iter().map(|p| lines(p)).collect();
    let stitched = stitch(&runs);
    assert_contiguous(stitched.iter().map(|v| v["_seq"].as_u64().unwrap()));
    let events = to_events(&stitched);
    let refs: Vec<&ChangeEvent> = events.iter().collect();
    let want = select_state(&db.name, "quotes").await;
    let got = replay(&refs, "quotes");
    // select_state uses the full schema; compare on the four columns the envelope carries
    assert_same_state(&got, &want, "after kills and restarts");

    // A restart after the graceful stop emits nothing old: the checkpoint was exact. Its first event is
    // a row inserted after it started, and nothing precedes it.
    let out = db.dir.path().join("idle.jsonl");
    let mut child = spawn(&config, &out);
    let id = crate::snapshot_stream::sentinel(&db).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while !lines(&out)
        .iter()
        .any(|l| l["after"]["id"].as_u64() == Some(id))
    {
        assert_alive(&mut child, "after the idle restart");
        assert!(
            std::time::Instant::now() < deadline,
            "the new row did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unsafe { libc_kill(child.id() as i32, 15) };
    child.wait().unwrap();
    let emitted = lines(&out);
    assert_eq!(
        emitted.len(),
        1,
        "restart after a graceful stop repeated events: {emitted:?}"
    );
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_snapshot_resumes_where_it_stopped() {
    // 1M rows in 200-row chunks take several seconds: each kill lands inside the snapshot (checked from
    // the process's own checkpoint)
    kill_restart_cycle("killsnap", 1_000_000, 200, 3, Phase::Snapshot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_streaming_continues_exactly() {
    kill_restart_cycle("killstream", 100, 1000, 3, Phase::Streaming).await;
}
