//! `binlake sink` (Kafka → lake) against tansu, MariaDB and a local lake: MariaDB → publisher → topics →
//! sink → Delta equals MariaDB (through DataFusion and DuckDB) with the Debezium encoding, an added column,
//! updates, deletes and key changes; two sinks in one group with one SIGKILLed under a writer; a record
//! nobody can read goes to the dead-letter topic (or, with `dlq = false`, stops the sink naming it).

use crate::common::*;
use crate::kafka::{
    brokers, java_partition, kafka_section, read_topic, start_publisher, stop, unique_prefix,
    wait_records,
};
use crate::lake::{assert_lake_equals_source, differing_keys, query_cells, wait_for_lake};
use crate::snapshot_stream::{create_quotes, writer};
use binlake::config::Config;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const PARTITIONS: i32 = 2;

pub fn sink_config(db: &TestDb, prefix: &str, extra: &str) -> (Config, PathBuf) {
    let text = db.config_text("")
        + &kafka_section(
            prefix,
            &format!("[kafka.topics]\npartitions = {PARTITIONS}\n{extra}"),
        );
    let path = db.dir.path().join("sink.toml");
    std::fs::write(&path, &text).unwrap();
    (Config::parse(&text, Path::new("it.toml")).unwrap(), path)
}

pub fn start_sink(
    config: Config,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), binlake::ingest::IngestError>>,
) {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    (
        cancel,
        tokio::spawn(async move { binlake::ingest::run(&config, c).await }),
    )
}

/// Cancels an in-process sink and waits for its drain.
pub async fn stop_sink(
    sink: CancellationToken,
    sunk: tokio::task::JoinHandle<Result<(), binlake::ingest::IngestError>>,
) {
    sink.cancel();
    tokio::time::timeout(Duration::from_secs(30), sunk)
        .await
        .expect("the sink drains within 30 s")
        .unwrap()
        .expect("the sink ends cleanly");
}

/// One fresh key per partition of `table`'s topic, inserted now (`insert` makes the statement for an
/// id), then waited for in the lake: once each is there, so is everything published before it (each
/// partition is read in order).
async fn catch_up_table(
    config: &Config,
    db: &TestDb,
    table: &str,
    insert: impl Fn(u64) -> String,
    secs: u64,
) {
    let mut ids = vec![];
    let mut id = 1_000_000 + rand::random::<u32>() as u64 % 1_000_000;
    for p in 0..PARTITIONS {
        while java_partition(format!("{{\"id\":{id}}}").as_bytes(), PARTITIONS) != p {
            id += 1;
        }
        db.exec(&insert(id)).await;
        ids.push(id);
        id += 1;
    }
    for id in ids {
        wait_for_lake(
            config,
            &format!("{}.{table}", db.name),
            &format!("id = {id}"),
            secs,
        )
        .await;
    }
}

/// Waits until some row of `table` (with an `id` key) matches `cond` in the lake.
pub async fn wait_for_any(config: &Config, table: &str, cond: &str, secs: u64) {
    let one = format!("id = (SELECT max(id) FROM {table} WHERE {cond})");
    wait_for_lake(config, table, &one, secs).await;
}

pub async fn catch_up_quotes(config: &Config, db: &TestDb, secs: u64) {
    let insert =
        |id| format!("INSERT INTO quotes (id, symbol, bid, qty) VALUES ({id}, 'END', 0, 0)");
    catch_up_table(config, db, "quotes", insert, secs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_topics_sink_into_a_lake_equal_to_mariadb() {
    let db = TestDb::new("ksink").await;
    create_quotes(&db, 400).await;
    db.exec(
        "CREATE TABLE ticks (id INT PRIMARY KEY, px DECIMAL(18,6), at DATETIME(6), d DATE, \
         note VARCHAR(40), doc JSON, flag BIT(3), f DOUBLE, t TIME(3), e ENUM('a','b'), bin VARBINARY(8), \
         ts TIMESTAMP(3) NULL)",
    )
    .await;
    db.exec(
        "INSERT INTO ticks VALUES \
         (1, -12.5, '1969-12-31 23:59:59.999999', '1900-01-01', 'it''s \"quoted\"', '{\"a\": [1, 2]}', b'101', \
          -0.25, '-838:59:59.000', 'b', x'00ff', '2026-11-30 01:02:03.456'), \
         (2, 99999999.999999, '2026-11-30 12:00:00', '2026-11-30', NULL, NULL, NULL, 1e300, '12:00:00.5', 'a', '', NULL), \
         (3, 0, '2000-02-29 00:00:00.5', '9999-12-31', 'ü€', '[]', b'000', 0, '00:00:00', NULL, NULL, '1970-01-01 00:00:01')",
    )
    .await;
    db.exec("CREATE TABLE marks (id INT PRIMARY KEY, v VARCHAR(10))")
        .await;
    db.exec("INSERT INTO marks SELECT seq, CONCAT('m', seq) FROM seq_1_to_20")
        .await;
    let prefix = unique_prefix("sink");
    let (config, _) = sink_config(&db, &prefix, "");
    let (publisher, published) = start_publisher(config.clone()).await;
    let (sink, sunk) = start_sink(config.clone());
    let quotes = format!("{}.quotes", db.name);
    // the snapshot reaches the lake through Kafka
    wait_for_lake(&config, &quotes, "id = 400", 90).await;
    let stop_writer = Arc::new(AtomicBool::new(false));
    let w = tokio::spawn(writer(db.name.clone(), stop_writer.clone(), 400));
    wait_for_any(&config, &quotes, "id > 420", 90).await;
    // a column added mid-stream flows to the Delta table
    db.exec("ALTER TABLE quotes ADD COLUMN venue VARCHAR(8) NULL")
        .await;
    db.exec("UPDATE quotes SET venue = 'XNAS' WHERE id % 3 = 0")
        .await;
    db.exec("UPDATE ticks SET px = px + 1, note = 'changed' WHERE id = 1")
        .await;
    db.exec("DELETE FROM ticks WHERE id = 2").await;
    db.exec("UPDATE ticks SET id = 30 WHERE id = 3").await;
    // a TRUNCATE (its record has no key, so it lands in either partition) between changes in both
    db.exec("UPDATE marks SET v = 'old' WHERE id < 10").await;
    db.exec("TRUNCATE TABLE marks").await;
    db.exec("INSERT INTO marks SELECT seq, CONCAT('n', seq) FROM seq_5_to_15")
        .await;
    wait_for_any(&config, &quotes, "venue = 'XNAS'", 90).await;
    stop_writer.store(true, Ordering::Relaxed);
    assert!(w.await.unwrap() > 0, "the writer wrote");
    catch_up_quotes(&config, &db, 90).await;
    let ticks = |id| format!("INSERT INTO ticks (id) VALUES ({id})");
    catch_up_table(&config, &db, "ticks", ticks, 90).await;
    let marks = |id| format!("INSERT INTO marks (id) VALUES ({id})");
    catch_up_table(&config, &db, "marks", marks, 90).await;
    assert_lake_equals_source(&config, &db.name, "quotes").await;
    assert_lake_equals_source(&config, &db.name, "ticks").await;
    assert_lake_equals_source(&config, &db.name, "marks").await;
    stop_sink(sink, sunk).await;
    stop(publisher, published).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sinks_in_one_group_one_killed_leave_the_lake_equal() {
    let db = TestDb::new("ksink_kill").await;
    create_quotes(&db, 300).await;
    let prefix = unique_prefix("sinkkill");
    // tansu sometimes leaves a member out of the rebalance that follows a dead member's eviction; the
    // others then wait for it until the rebalance timeout (max.poll.interval.ms) drops it
    let (config, path) = sink_config(
        &db,
        &prefix,
        // tansu stores concurrent produce requests of a partition out of offset order, which the sink
        // refuses: one request in flight keeps the order
        "[kafka.consumer]\nmax_poll_interval_ms = 20000\n[kafka.producer]\nidempotence = false\n",
    );
    let (publisher, published) = start_publisher(config.clone()).await;
    let logs = db.dir.path().to_path_buf();
    let guard = SinksOnFailure {
        logs: logs.clone(),
        pids: std::sync::Mutex::new(vec![]),
    };
    let spawn_sink = || {
        let mut pids = guard.pids.lock().unwrap();
        let log = logs.join(format!("sink{}.log", pids.len()));
        let child = spawn_binlake_sink_logged(&path, &log);
        pids.push(child.id());
        (child, log)
    };
    // the group forms over the table topic: a topic appearing under a formed group rebalances it, and
    // tansu has left a member out of such a rebalance, waiting for it indefinitely (CI, 2026-12-06)
    let topic = format!("{prefix}.{}.quotes", db.name);
    wait_records(&topic, 90, |r| r.len() >= 300).await;
    let taking = "reading from the position Delta holds";
    let (mut a, mut a_log) = spawn_sink();
    wait_for_log(&a_log, taking, 90).await;
    let (mut b, b_log) = spawn_sink();
    let quotes = format!("{}.quotes", db.name);
    wait_for_lake(&config, &quotes, "id = 300", 90).await;
    let stop_writer = Arc::new(AtomicBool::new(false));
    let w = tokio::spawn(writer(db.name.clone(), stop_writer.clone(), 300));
    for round in 0..2 {
        // kill one member while changes flow; the other takes its partitions over from Delta's offsets
        let floor = 300 + 150 * (round + 1);
        wait_for_any(&config, &quotes, &format!("id > {floor}"), 90).await;
        // the kill lands on a member that owns a table partition, not on one still joining the group
        // (tansu then waits out the dead joiner's session before anyone gets its partitions)
        wait_for_log(&a_log, taking, 90).await;
        assert_alive(&mut a, "before the kill");
        assert_alive(&mut b, "before the kill");
        a.kill().unwrap(); // SIGKILL
        a.wait().unwrap();
        // The replacement joins once the survivor holds every table partition (when the dead member's
        // session expires, or at once if the dead one held none): tansu can leave a member out of an
        // eviction's rebalance when another joins during it, and then waits for that member
        // indefinitely. tansu has also handed a partition to the dead member in the eviction's
        // rebalance (its JoinGroup reply still listing it; CI, 2026-12-07): the survivor never gets it
        // then, and the replacement's join, 40 s on, is what rebalances the group without the dead one.
        let all = PARTITIONS as usize;
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        while held_partitions(&b_log, &topic) < all && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_alive(&mut b, "after the kill");
        wait_for_any(&config, &quotes, &format!("id > {}", floor + 100), 90).await;
        (a, a_log) = spawn_sink();
    }
    stop_writer.store(true, Ordering::Relaxed);
    w.await.unwrap();
    catch_up_quotes(&config, &db, 120).await;
    assert_alive(&mut a, "at the end");
    assert_alive(&mut b, "at the end");
    assert!(signal_and_wait(&mut a, 15).success(), "graceful stop");
    assert!(signal_and_wait(&mut b, 15).success(), "graceful stop");
    explain_differences(&config, &db, &format!("{prefix}.{}.quotes", db.name)).await;
    // equal row sets: a key written twice would be an extra row
    assert_lake_equals_source(&config, &db.name, "quotes").await;
    stop(publisher, published).await;
}

/// Waits until the log file contains `needle`.
async fn wait_for_log(log: &std::path::Path, needle: &str, secs: u64) {
    wait_for_log_count(log, needle, 1, secs).await;
}

fn log_count(log: &std::path::Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

/// How many partitions of `topic` the sink logging to `log` holds: those it started reading since its
/// last revocation.
fn held_partitions(log: &std::path::Path, topic: &str) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let current = text
        .rfind("partitions revoked")
        .map_or(text.as_str(), |at| &text[at..]);
    (0..PARTITIONS)
        .filter(|p| {
            current.contains(&format!(
                "reading from the position Delta holds topic={topic} partition={p} "
            ))
        })
        .count()
}

/// Waits until the log file contains `needle` at least `n` times.
async fn wait_for_log_count(log: &std::path::Path, needle: &str, n: usize, secs: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while log_count(log, needle) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{} did not log `{needle}` {n} times within {secs}s",
            log.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// If the test fails, kills the sink processes it started (they would outlive it) and prints their logs.
struct SinksOnFailure {
    logs: PathBuf,
    pids: std::sync::Mutex<Vec<u32>>,
}

impl Drop for SinksOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (n, pid) in self.pids.lock().unwrap().iter().enumerate() {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            let log =
                std::fs::read_to_string(self.logs.join(format!("sink{n}.log"))).unwrap_or_default();
            eprintln!("--- sink{n}.log (pid {pid})");
            // librdkafka's own warnings and errors stay: they tell a broker's fault from the sink's
            let chatter = |l: &&str| l.contains("librdkafka") && l.contains(" INFO ");
            for line in log.lines().filter(|l| !chatter(l)) {
                eprintln!("{line}");
            }
        }
    }
}

/// When the lake's keys differ from MariaDB's, prints every record of those keys on the topic (partition,
/// offset, op, `binlake.seq`), so a failure tells a record never published from one the sink skipped
/// (the sinks' logs follow, from `SinksOnFailure`).
async fn explain_differences(config: &Config, db: &TestDb, topic: &str) {
    let (only_source, only_lake) = differing_keys(config, &db.name, "quotes", "id").await;
    let odd: Vec<i64> = only_source
        .iter()
        .chain(only_lake.iter().map(|r| &r[0]))
        .map(|k| k.parse().unwrap())
        .collect();
    if odd.is_empty() {
        return;
    }
    eprintln!(
        "topic records of the keys only in MariaDB {only_source:?} or only in Delta {only_lake:?}:"
    );
    for r in read_topic(topic).await {
        let Some(key) = r.key.as_deref() else {
            continue;
        };
        let key: serde_json::Value = serde_json::from_slice(key).unwrap_or_default();
        let id = key
            .pointer("/payload/id")
            .or(key.get("id"))
            .and_then(|v| v.as_i64());
        if id.is_some_and(|id| odd.contains(&id)) {
            let value: serde_json::Value =
                serde_json::from_slice(r.value.as_deref().unwrap_or(b"null")).unwrap_or_default();
            let op = value.pointer("/payload/op").or(value.get("op")).cloned();
            eprintln!(
                "  id {id:?}: partition {} offset {} op {op:?} seq {:?}",
                r.partition,
                r.offset,
                r.headers.get("binlake.seq")
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_record_goes_to_the_dead_letter_topic() {
    let db = TestDb::new("ksink_dlq").await;
    create_quotes(&db, 50).await;
    let prefix = unique_prefix("sinkdlq");
    let (config, _) = sink_config(&db, &prefix, "");
    let (publisher, published) = start_publisher(config.clone()).await;
    let topic = format!("{prefix}.{}.quotes", db.name);
    let quotes = format!("{}.quotes", db.name);
    let (sink, sunk) = start_sink(config.clone());
    wait_for_lake(&config, &quotes, "id = 50", 90).await;
    // a record no binlake publisher wrote, in the middle of partition 0
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&topic)
                .partition(0)
                .key("{\"id\":1}")
                .payload("not a change event"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    catch_up_quotes(&config, &db, 90).await;
    let dlq = read_topic(&format!("{prefix}.binlake.dlq")).await;
    assert_eq!(dlq.len(), 1, "one dead letter");
    let letter = &dlq[0];
    assert_eq!(letter.value.as_deref(), Some(&b"not a change event"[..]));
    assert_eq!(letter.headers["binlake.dlq.topic"], topic);
    assert_eq!(letter.headers["binlake.dlq.partition"], "0");
    assert!(
        letter.headers["binlake.dlq.error"].contains("binlake.seq"),
        "the error says what is wrong: {}",
        letter.headers["binlake.dlq.error"]
    );
    assert_lake_equals_source(&config, &db.name, "quotes").await;
    sink.cancel();
    sunk.await.unwrap().expect("the sink ends cleanly");

    // without a dead-letter topic the same record stops a sink (a new group into a new lake) for good
    let strict_text = db.config_text("").replace(
        &db.lake_root().display().to_string(),
        &db.dir.path().join("strict-lake").display().to_string(),
    ) + &kafka_section(
        &prefix,
        "[kafka.consumer]\ndlq = false\ngroup_id = \"strict\"\n",
    );
    let strict = Config::parse(&strict_text, Path::new("it.toml")).unwrap();
    let (_cancel, strict_run) = start_sink(strict);
    let err = tokio::time::timeout(Duration::from_secs(90), strict_run)
        .await
        .expect("the sink stops within 90 s")
        .unwrap()
        .expect_err("a definite error");
    let text = err.to_string();
    assert!(
        text.contains(&format!("{topic}[0]@")) && text.contains("binlake.seq"),
        "the error names the record and the cause: {text}"
    );
    stop(publisher, published).await;
}

/// Quarantined ids and the failing rows recorded for `expectation`, as the lake holds them.
async fn quality_state(config: &Config, db: &TestDb) -> (Vec<Vec<String>>, String) {
    let quarantined = crate::lake::query_cells(
        config,
        &format!(
            "SELECT CAST(id AS VARCHAR) AS i FROM \"{}\".quotes__quarantine ORDER BY id",
            db.name
        ),
    )
    .await;
    let failing = crate::lake::query_cells(
        config,
        &format!(
            "SELECT CAST(SUM(unexpected_count) AS VARCHAR) AS n FROM binlake_quality.results \
             WHERE table_name = '{}.quotes' AND expectation_id = 'bid_not_negative'",
            db.name
        ),
    )
    .await;
    (quarantined, failing[0][0].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_checks_expectations_once_per_partition_across_a_crash() {
    let db = TestDb::new("ksink_q").await;
    create_quotes(&db, 200).await;
    let prefix = unique_prefix("sinkq");
    let (_, path) = sink_config(&db, &prefix, "");
    let text = std::fs::read_to_string(&path).unwrap()
        + &format!(
            "\n[[quality.expect]]\nid = \"bid_not_negative\"\ntable = \"{}.quotes\"\ntype = \"between\"\n\
             column = \"bid\"\nmin_value = 0\nseverity = \"quarantine\"\n",
            db.name
        );
    std::fs::write(&path, &text).unwrap();
    let config = Config::parse(&text, &path).unwrap();
    let (publisher, published) = start_publisher(config.clone()).await;
    let (sink, sunk) = start_sink(config.clone());
    let quotes = format!("{}.quotes", db.name);
    wait_for_lake(&config, &quotes, "id = 200", 90).await;
    // negative bids, spread over both partitions by their keys
    db.exec("INSERT INTO quotes VALUES (1001, 'X', -1, 0), (1002, 'X', -2, 0), (1003, 'X', -3, 0), (1004, 'X', -4, 0)")
        .await;
    catch_up_quotes(&config, &db, 90).await;
    stop_sink(sink, sunk).await;
    let ids = |v: &[u32]| v.iter().map(|i| vec![i.to_string()]).collect::<Vec<_>>();
    assert_eq!(
        quality_state(&config, &db).await,
        (ids(&[1001, 1002, 1003, 1004]), "4".to_string())
    );
    assert_lake_equals_source(&config, &db.name, "quotes").await;

    // a sink process killed after recording a batch's results and before its MERGE; the next one
    // replays the batch from Delta's offsets and records, quarantines nothing twice
    let mut crashing = std::process::Command::new(binary())
        .args(["sink", "--config"])
        .arg(&path)
        .env("BINLAKE_CRASH_AT", binlake::crash::AFTER_QUALITY_RECORD)
        .env("BINLAKE_LOG", "warn")
        .spawn()
        .unwrap();
    db.exec("INSERT INTO quotes VALUES (1005, 'X', -5, 0), (1006, 'X', -6, 0)")
        .await;
    let status = wait_exit(&mut crashing, 90, "the crash point was not reached").await;
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed at the crash point");
    // a group of its own: the position comes from Delta's offsets either way, and the dead member's
    // session (which tansu waits out before reassigning) is not what this test is about
    let mut restarted = config.clone();
    restarted.kafka.as_mut().unwrap().consumer.group_id = Some(format!("{prefix}-after-crash"));
    let (sink, sunk) = start_sink(restarted);
    catch_up_quotes(&config, &db, 90).await;
    stop_sink(sink, sunk).await;
    assert_eq!(
        quality_state(&config, &db).await,
        (ids(&[1001, 1002, 1003, 1004, 1005, 1006]), "6".to_string())
    );
    assert_lake_equals_source(&config, &db.name, "quotes").await;
    stop(publisher, published).await;
}

/// tansu, asked to fetch from an offset inside a producer's record batch, skips to the next batch. A sink
/// killed right after its first 7-record commit leaves Delta's position inside such a batch; the next
/// sink must notice that its first record is past its start, read the partition from its first offset,
/// and miss nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_killed_inside_a_producer_batch_misses_nothing() {
    let db = TestDb::new("ksink_mid").await;
    create_quotes(&db, 3000).await;
    let prefix = unique_prefix("sinkmid");
    // one produce request in flight, as in the two-sinks test
    let (config, path) = sink_config(&db, &prefix, "[kafka.producer]\nidempotence = false\n");
    let (publisher, published) = start_publisher(config.clone()).await;
    let small = db.dir.path().join("small.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let limit = "flush_interval_ms = 200\n";
    assert!(text.contains(limit), "the lake section sets {limit}");
    // a group of its own: tansu would hold the next member of a group with a dead one back for good
    // (the two-sinks test meets that too)
    let small_text = text.replace(limit, &format!("{limit}flush_max_rows = 7\n"))
        + &format!("[kafka.consumer]\ngroup_id = \"{prefix}.killed\"\n");
    std::fs::write(&small, small_text).unwrap();
    let mut first = std::process::Command::new(binary())
        .args(["sink", "--config"])
        .arg(&small)
        .env("BINLAKE_LOG", "warn")
        .env("BINLAKE_CRASH_AT", binlake::crash::AFTER_KAFKA_SINK_COMMIT)
        .spawn()
        .unwrap();
    let died = wait_exit(&mut first, 90, "the first sink's first commit").await;
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        died.signal(),
        Some(9),
        "killed at its crash point: {died:?}"
    );
    let quotes = format!("{}.quotes", db.name);
    let held: u64 = query_cells(&config, &format!("SELECT count(*) FROM {quotes}")).await[0][0]
        .parse()
        .unwrap();
    assert!(
        (1..3000).contains(&held),
        "the first commit took a few rows, not all: {held}"
    );
    let log = db.dir.path().join("sink0.log");
    let mut second = spawn_binlake_sink_logged(&path, &log);
    let _guard = SinksOnFailure {
        logs: db.dir.path().to_path_buf(),
        pids: std::sync::Mutex::new(vec![second.id()]),
    };
    catch_up_quotes(&config, &db, 120).await;
    assert!(signal_and_wait(&mut second, 15).success(), "graceful stop");
    assert_lake_equals_source(&config, &db.name, "quotes").await;
    // the guard is what this test is about: it must have met the gap (if tansu ever fetches from inside
    // a batch correctly, this fails and the test needs another way to make a gap)
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("reading it again from its first offset"),
        "the second sink met no start gap:\n{text}"
    );
    stop(publisher, published).await;
}
