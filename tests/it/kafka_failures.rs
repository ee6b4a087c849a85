//! The publisher under failure: SIGKILL at moments while it streams under a steady writer, SIGKILL during
//! the snapshot, and a broker frozen (SIGSTOP) for 30 s under load with a `binlake sink` reading it. After
//! each, the topic rebuilds to MariaDB's table (and the lake equals it); a binlog change may appear twice
//! only as the same change with the same `binlake.seq`; `_seq` has no gap past the snapshot.

use crate::common::*;
use crate::kafka::{
    brokers, read_topic, read_topic_at, unique_prefix, wait_records, wait_records_at, Record,
};
use crate::snapshot_stream::{create_quotes, sentinel, writer};
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A connector file publishing `db` to `brokers` in the binlake encoding, with metrics on `port`.
fn config_file(db: &TestDb, prefix: &str, brokers: &str, port: u16, extra: &str) -> PathBuf {
    let text = db
        .config_text("")
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""))
        + &format!(
            "\n[sink]\nkind = \"kafka\"\n[kafka]\nbrokers = \"{brokers}\"\ntopic_prefix = \"{prefix}\"\n\
             encoding = \"binlake\"\n{extra}\n"
        );
    let p = db.dir.path().join("kafka.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn seq(r: &Record) -> u64 {
    r.headers["binlake.seq"].parse().unwrap()
}

/// The table rebuilt from the topic, tolerating what a republished tail repeats (a delete of a key the
/// replay already removed). Values as the binlake encoding writes them.
fn rebuild(records: &[Record]) -> BTreeMap<u64, (String, String, i64)> {
    let mut state = BTreeMap::new();
    for r in records {
        let Some(v) = r.value_json() else { continue };
        let id = r.key_json()["id"].as_u64().unwrap();
        match v["op"].as_str().unwrap() {
            "d" => {
                state.remove(&id);
            }
            _ => {
                let a = &v["after"];
                state.insert(
                    id,
                    (
                        a["symbol"].as_str().unwrap().to_string(),
                        a["bid"].as_str().unwrap().to_string(),
                        a["qty"].as_i64().unwrap(),
                    ),
                );
            }
        }
    }
    state
}

async fn mariadb_rows(db: &str) -> BTreeMap<u64, (String, String, i64)> {
    use mysql_async::prelude::*;
    let rows: Vec<(u64, String, String, i64)> = admin_for(db)
        .await
        .query(format!(
            "SELECT id, symbol, CAST(bid AS CHAR), qty FROM `{db}`.quotes"
        ))
        .await
        .unwrap();
    rows.into_iter()
        .map(|(i, s, b, q)| (i, (s, b, q)))
        .collect()
}

/// Duplicates carry the same change under the same `binlake.seq`, and the `_seq`s have no gap. A snapshot
/// chunk read again after a crash keeps its `_seq`s but may hold newer values (it was read later); the
/// later record wins for its key, so only changes from the binlog must repeat exactly.
fn assert_duplicates_are_identical_and_no_gap(records: &[Record]) {
    let mut by_seq: BTreeMap<(u64, u8), (Json, Json)> = BTreeMap::new();
    let mut seqs = BTreeSet::new();
    for r in records {
        seqs.insert(seq(r));
        if r.value_json().is_some_and(|v| v["op"] == "r") {
            continue;
        }
        let value = r.value_json().map(|mut v| {
            v.as_object_mut().unwrap().remove("ts_ms"); // processing time differs by design
            v
        });
        let tombstone = value.is_none();
        let content = (r.key_json(), value.unwrap_or(Json::Null));
        // a delete is followed by its tombstone, and a key change is a delete (of the old key) and a
        // create (of the new one): up to three records share one `_seq`
        let kind = match (tombstone, content.1["op"].as_str()) {
            (true, _) => 2,
            (false, Some("d")) => 1,
            _ => 0,
        };
        let slot = (seq(r), kind);
        if let Some(prev) = by_seq.get(&slot) {
            assert_eq!(
                prev,
                &content,
                "seq {} published twice with different content",
                seq(r)
            );
        } else {
            by_seq.insert(slot, content);
        }
    }
    let (min, max) = (*seqs.first().unwrap(), *seqs.last().unwrap());
    assert_eq!(
        seqs.len() as u64,
        max - min + 1,
        "a gap in _seq between {min} and {max}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_publishing_loses_nothing() {
    let db = TestDb::new("kafka_kill").await;
    create_quotes(&db, 300).await;
    let prefix = unique_prefix("kill");
    let topic = format!("{prefix}.{}.quotes", db.name);
    let port = free_port();
    let config = config_file(
        &db,
        &prefix,
        &brokers(),
        port,
        "[kafka.topics]\npartitions = 2\n",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let w = tokio::spawn(writer(db.name.clone(), stop.clone(), 300));
    for i in 0..3 {
        let mut child = spawn_binlake(&config, &[]);
        // kill once this process has published binlog changes of its own (its own counters: changes
        // handed to the producer minus its snapshot reads) while the writer keeps writing. A kill during
        // the snapshot is a different case (see the README's open defects), so the snapshot — however
        // many rows the writer added before binlake started — is behind each kill.
        let deadline = Instant::now() + Duration::from_secs(90);
        let wanted = 100.0 + rand::random::<u64>() as f64 % 2000.0;
        loop {
            assert_alive(&mut child, &format!("before kill {i}"));
            let changes = metric(port, "binlake_kafka_records_total{kind=\"change\"}").await;
            let snapshot_reads = metric_sum(port, "binlake_events_total{", "op=\"r\"").await;
            if changes.is_some_and(|n| n - snapshot_reads > wanted) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kill {i}: nothing published within 90 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    w.await.unwrap();
    let mut child = spawn_binlake(&config, &[]);
    let id = sentinel(&db).await;
    wait_records(&topic, 90, |rs| {
        rs.iter()
            .any(|r| r.value.is_some() && r.key_json()["id"].as_u64() == Some(id))
    })
    .await;
    assert_alive(&mut child, "after the last restart");
    assert!(signal_and_wait(&mut child, 15).success(), "graceful stop");
    let records = read_topic(&topic).await;
    assert_duplicates_are_identical_and_no_gap(&records);
    assert_rebuilds_to(&records, &mariadb_rows(&db.name).await);
}

/// A publisher SIGKILLed in the middle of the snapshot, with rows deleted and updated before it restarts:
/// rows it published past its last stored chunk stay on the topic, and the restarted snapshot reads a later
/// state of that key range. The topic read in order (as a Debezium consumer would) and the lake behind
/// `binlake sink` (which keeps the higher `_seq` per key) both equal MariaDB: no phantom of a deleted row,
/// no stale value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_the_snapshot_leaves_no_phantom_rows() {
    const ROWS: u64 = 60_000;
    let db = TestDb::new("kafka_killsnap").await;
    create_quotes(&db, ROWS).await;
    let prefix = unique_prefix("killsnap");
    let topic = format!("{prefix}.{}.quotes", db.name);
    let port = free_port();
    let partitions = crate::kafka_sink::PARTITIONS;
    let config = config_file(
        &db,
        &prefix,
        &brokers(),
        port,
        &format!("[kafka.topics]\npartitions = {partitions}\n"),
    );
    // small chunks, each stored before the next goes out: the snapshot takes seconds
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[state]\n",
        "[source.snapshot]\nchunk_size = 200\n[state]\n",
    );
    std::fs::write(&config, &text).unwrap();
    let mut child = spawn_binlake(&config, &[]);
    let wanted = 2_000.0 + (rand::random::<u64>() % 20_000) as f64;
    let deadline = Instant::now() + Duration::from_secs(90);
    while metric_sum(port, "binlake_events_total{", "op=\"r\"").await < wanted {
        assert_alive(&mut child, "before the kill");
        assert!(
            Instant::now() < deadline,
            "the snapshot did not start within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let reads = read_topic(&topic)
        .await
        .iter()
        .filter(|r| r.value_json().is_some_and(|v| v["op"] == "r"))
        .count() as u64;
    assert!(
        reads > 0 && reads < ROWS,
        "the kill landed during the snapshot: {reads} of {ROWS} rows published"
    );
    db.exec("DELETE FROM quotes WHERE id % 3 = 0").await;
    db.exec("UPDATE quotes SET qty = qty + 7 WHERE id % 3 = 1")
        .await;

    let mut child = spawn_binlake(&config, &[]);
    // the replayed deletes come from the stream, after the snapshot: rows inserted from now on can only
    // arrive through the stream, so the catch-up below proves the whole replay is in the lake
    wait_records(&topic, 120, |rs| {
        rs.iter()
            .any(|r| r.value_json().is_some_and(|v| v["op"] == "d"))
    })
    .await;
    let lake_config =
        binlake::config::Config::parse(&text, std::path::Path::new("it.toml")).unwrap();
    let (sink, sunk) = crate::kafka_sink::start_sink(lake_config.clone());
    crate::kafka_sink::catch_up_quotes(&lake_config, &db, 180).await;
    sink.cancel();
    sunk.await.unwrap().unwrap();
    assert_alive(&mut child, "after the restart");
    assert!(signal_and_wait(&mut child, 15).success(), "graceful stop");
    let records = read_topic(&topic).await;
    assert_rebuilds_to(&records, &mariadb_rows(&db.name).await);
    crate::lake::assert_lake_equals_source(&lake_config, &db.name, "quotes").await;
}

/// The topic rebuilt equals MariaDB; if not, the failure shows each differing key's records.
fn assert_rebuilds_to(records: &[Record], expected: &BTreeMap<u64, (String, String, i64)>) {
    let got = rebuild(records);
    if &got == expected {
        return;
    }
    let ids: BTreeSet<u64> = got.keys().chain(expected.keys()).copied().collect();
    let mut report = String::new();
    for id in ids
        .into_iter()
        .filter(|id| got.get(id) != expected.get(id))
        .take(10)
    {
        report += &format!(
            "id {id}: topic {:?}, MariaDB {:?}\n",
            got.get(&id),
            expected.get(&id)
        );
        for r in records
            .iter()
            .filter(|r| r.key_json()["id"].as_u64() == Some(id))
        {
            report += &format!(
                "  p{} @{} seq {} {}\n",
                r.partition,
                r.offset,
                seq(r),
                r.value_json().map_or("tombstone".into(), |v| format!(
                    "{} {}",
                    v["op"], v["after"]
                ))
            );
        }
    }
    panic!(
        "topic vs MariaDB: {} keys in the topic, {} in MariaDB\n{report}",
        got.len(),
        expected.len()
    );
}

/// Resumes a SIGSTOPped broker however the test ends.
struct Frozen(i32);

impl Drop for Frozen {
    fn drop(&mut self) {
        unsafe { libc_kill(self.0, 18) }; // SIGCONT
    }
}

async fn metric(port: u16, name: &str) -> Option<f64> {
    let body = crate::lake::http_get(port, "/metrics").await?.1;
    body.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
}

/// The sum of every series of a labelled metric whose labels contain `label`.
async fn metric_sum(port: u16, prefix: &str, label: &str) -> f64 {
    let Some((_, body)) = crate::lake::http_get(port, "/metrics").await else {
        return 0.0;
    };
    body.lines()
        .filter(|l| l.starts_with(prefix) && l.contains(label))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

fn rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_broker_holds_the_binlog_reader_back_and_nothing_is_lost() {
    let partitions = crate::kafka_sink::PARTITIONS;
    let db = TestDb::new("kafka_freeze").await;
    create_quotes(&db, 100).await;
    let prefix = unique_prefix("freeze");
    let topic = format!("{prefix}.{}.quotes", db.name);
    let port = free_port();
    // a small producer queue and channel, so 30 s of writes fill them and the reader must wait
    let config = config_file(
        &db,
        &prefix,
        &env("BINLAKE_TEST_AUX_KAFKA_BROKERS"),
        port,
        &format!(
            "[kafka.producer]\nbuffer_max_mb = 1\n[kafka.topics]\npartitions = {partitions}\n"
        ),
    );
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("[source]\n", "[source]\nbuffer_max_mb = 2\n"),
    )
    .unwrap();
    let pid: i32 = std::fs::read_to_string(env("BINLAKE_TEST_AUX_KAFKA_PIDFILE"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let aux = env("BINLAKE_TEST_AUX_KAFKA_BROKERS");
    let mut child = spawn_binlake(&config, &[]);
    wait_records_at(&aux, &topic, 60, |rs| rs.len() >= 100).await;
    // the Kafka → lake sink reads the same broker, as its own process with its own metrics port
    let sink_text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!("listen = \"127.0.0.1:{}\"", free_port()),
    );
    let sink_config = db.dir.path().join("sink.toml");
    std::fs::write(&sink_config, &sink_text).unwrap();
    let mut sink = spawn_binlake_sink(&sink_config);
    let stop = Arc::new(AtomicBool::new(false));
    let w = tokio::spawn(writer(db.name.clone(), stop.clone(), 100));
    let mut peak_rss = 0;
    let mut sink_peak_rss = 0;
    {
        assert_eq!(unsafe { libc_kill(pid, 19) }, 0, "SIGSTOP the broker");
        let _frozen = Frozen(pid);
        let frozen_at = Instant::now();
        while frozen_at.elapsed() < Duration::from_secs(30) {
            assert_alive(&mut child, "while the broker is frozen");
            assert_alive(&mut sink, "the sink, while the broker is frozen");
            peak_rss = peak_rss.max(rss_mib(child.id()));
            sink_peak_rss = sink_peak_rss.max(rss_mib(sink.id()));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let waits = metric(port, "binlake_kafka_queue_full_total")
            .await
            .unwrap_or(0.0);
        assert!(
            waits > 0.0,
            "the producer queue never filled: the reader was not held back"
        );
    } // SIGCONT
    stop.store(true, Ordering::Relaxed);
    let written = w.await.unwrap();
    assert!(
        written > 1000,
        "the writer kept writing while the broker was frozen ({written})"
    );
    let id = sentinel(&db).await;
    wait_records_at(&aux, &topic, 120, |rs| {
        rs.iter()
            .any(|r| r.value.is_some() && r.key_json()["id"].as_u64() == Some(id))
    })
    .await;
    assert_alive(
        &mut child,
        "after the broker resumed: it recovered without a restart",
    );
    // the sink recovered too: one fresh key per partition reaches the lake, so everything before it did
    let lake_config =
        binlake::config::Config::parse(&sink_text, std::path::Path::new("it.toml")).unwrap();
    crate::kafka_sink::catch_up_quotes(&lake_config, &db, 120).await;
    assert_alive(&mut sink, "the sink, after the broker resumed");
    assert!(signal_and_wait(&mut child, 15).success(), "graceful stop");
    assert!(
        signal_and_wait(&mut sink, 15).success(),
        "graceful stop of the sink"
    );
    assert!(
        peak_rss < 400,
        "memory stayed bounded while the broker was frozen: {peak_rss} MiB"
    );
    assert!(
        sink_peak_rss < 600,
        "the sink's memory stayed bounded while the broker was frozen: {sink_peak_rss} MiB"
    );
    let records = read_topic_at(&aux, &topic).await;
    assert_duplicates_are_identical_and_no_gap(&records);
    assert_rebuilds_to(&records, &mariadb_rows(&db.name).await);
    crate::lake::assert_lake_equals_source(&lake_config, &db.name, "quotes").await;
}
