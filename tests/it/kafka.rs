//! The Kafka publisher against a real broker (tansu) and MariaDB: topics rebuilt into tables equal
//! MariaDB, Debezium's encodings and partitioning, tombstones, schema changes, the offsets topic and
//! resume, and a record larger than the limit stopping with a definite error.

use crate::common::{self, env, TestDb};
use base64::Engine;
use binlake::config::Config;
use binlake::event::progress::Checkpoint;
use binlake::pipeline::{self, PipelineError};
use binlake::sinks::kafka::KafkaSink;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub fn brokers() -> String {
    env("BINLAKE_KAFKA_BROKERS")
}

#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
}

impl Record {
    pub fn key_json(&self) -> Json {
        serde_json::from_slice(self.key.as_deref().expect("keyed record")).unwrap()
    }
    pub fn value_json(&self) -> Option<Json> {
        self.value
            .as_deref()
            .map(|v| serde_json::from_slice(v).unwrap())
    }
}

/// Every record of `topic`, in offset order within each partition. An absent topic reads as empty.
/// The end of each partition is the end-of-partition event of the fetch, not ListOffsets: tansu's
/// ListOffsets answers with the last batch's base offset + 1.
fn read_topic_blocking(mut client: ClientConfig, topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = client
        .set("group.id", "binlake-it-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).unwrap();
    let Some(t) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
    else {
        return vec![];
    };
    // An empty partition's end comes as a global error, not through poll: leave out the partitions
    // ListOffsets calls empty (it is right about those, only the end of a full one it gets wrong).
    let mut tpl = TopicPartitionList::new();
    let mut open = std::collections::BTreeSet::new();
    for p in t.partitions() {
        let (_, high) = consumer.fetch_watermarks(topic, p.id(), timeout).unwrap();
        if high > 0 {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
            open.insert(p.id());
        }
    }
    if open.is_empty() {
        return vec![];
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = vec![];
    while !open.is_empty() {
        assert!(
            Instant::now() < deadline,
            "reading {topic} stalled; partitions {open:?} never ended"
        );
        let m = match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
                continue;
            }
            Some(m) => m.unwrap(),
        };
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Record {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
        });
    }
    out
}

pub async fn read_topic(topic: &str) -> Vec<Record> {
    read_topic_at(&brokers(), topic).await
}

pub async fn read_topic_at(brokers: &str, topic: &str) -> Vec<Record> {
    read_topic_with(reader_config(brokers), topic).await
}

/// A reader's client settings for a broker without authentication.
pub fn reader_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

/// Every record of `topic`, read by a client with these settings (brokers, security).
pub async fn read_topic_with(client: ClientConfig, topic: &str) -> Vec<Record> {
    let t = topic.to_string();
    tokio::task::spawn_blocking(move || read_topic_blocking(client, &t))
        .await
        .unwrap()
}

/// Reads `topic` until `done` holds; fails after `secs`.
pub async fn wait_records(topic: &str, secs: u64, done: impl Fn(&[Record]) -> bool) -> Vec<Record> {
    wait_records_at(&brokers(), topic, secs, done).await
}

pub async fn wait_records_at(
    brokers: &str,
    topic: &str,
    secs: u64,
    done: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    wait_records_with(reader_config(brokers), topic, secs, done).await
}

/// Reads `topic` with a client of these settings until `done` holds; fails after `secs`.
pub async fn wait_records_with(
    client: ClientConfig,
    topic: &str,
    secs: u64,
    done: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let records = read_topic_with(client.clone(), topic).await;
        if done(&records) {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: expected records did not arrive within {secs}s ({} records)",
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Kafka's `Utils.murmur2` (the Java client's default partitioner), written from its definition.
pub fn java_murmur2(data: &[u8]) -> i32 {
    let m: u32 = 0x5bd1_e995;
    let seed: u32 = 0x9747_b28c;
    let len = data.len();
    let mut h = seed ^ len as u32;
    for chunk in data.chunks_exact(4) {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(m);
        k ^= k >> 24;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    let tail = &data[len - len % 4..];
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(m);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(m);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java producer picks for `key` among `n`.
pub fn java_partition(key: &[u8], n: i32) -> i32 {
    ((java_murmur2(key) & 0x7fff_ffff) as i64 % n as i64) as i32
}

#[test]
fn murmur2_matches_kafkas_test_vectors() {
    // the vectors of Kafka's own UtilsTest
    for (input, want) in [
        (&b"21"[..], -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58897971,
        ),
        (b"abc", 479470107),
    ] {
        assert_eq!(
            java_murmur2(input),
            want,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

pub fn kafka_section(prefix: &str, extra: &str) -> String {
    format!(
        "\n[sink]\nkind = \"kafka\"\n[kafka]\nbrokers = \"{}\"\ntopic_prefix = \"{prefix}\"\n{extra}\n",
        brokers()
    )
}

pub fn unique_prefix(what: &str) -> String {
    format!("it_{what}_{}", rand::random::<u32>())
}

/// Runs the publisher in-process until cancelled.
pub async fn start_publisher(
    config: Config,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), PipelineError>>,
) {
    let mut sink = KafkaSink::new(config.kafka().unwrap(), &config.name)
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let handle = tokio::spawn(async move { pipeline::run(&config, &mut sink, c).await });
    (cancel, handle)
}

pub async fn stop(
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), PipelineError>>,
) {
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .expect("publisher drains within 30 s")
        .unwrap()
        .expect("publisher ends cleanly");
}

fn key_id(r: &Record) -> i64 {
    r.key_json()["id"].as_i64().unwrap()
}

/// Connect Decimal bytes (Java BigInteger, two's complement big-endian) as an integer.
fn unscaled(b64: &str) -> i128 {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let mut v: i128 = if bytes[0] & 0x80 != 0 { -1 } else { 0 };
    for b in bytes {
        v = (v << 8) | b as i128;
    }
    v
}

/// The table rebuilt from a topic: key id → `after`, applying records in partition order (a key
/// always lands in one partition). Checks that every tombstone follows a delete of its key.
fn rebuild(records: &[Record]) -> BTreeMap<i64, Json> {
    let mut state = BTreeMap::new();
    let mut last_op: BTreeMap<i64, String> = BTreeMap::new();
    for r in records {
        let id = key_id(r);
        let Some(v) = r.value_json() else {
            assert_eq!(
                last_op.get(&id).map(String::as_str),
                Some("d"),
                "tombstone of {id} without a delete"
            );
            last_op.insert(id, "tombstone".into());
            continue;
        };
        let op = v["op"].as_str().unwrap().to_string();
        match op.as_str() {
            "d" => {
                assert!(state.remove(&id).is_some(), "delete of absent key {id}");
            }
            "c" | "r" | "u" => {
                assert_eq!(
                    v["after"]["id"].as_i64(),
                    Some(id),
                    "key and after image disagree"
                );
                state.insert(id, v["after"].clone());
            }
            other => panic!("unexpected op {other}"),
        }
        last_op.insert(id, op);
    }
    state
}

const QUOTES: &str = "CREATE TABLE q (id BIGINT PRIMARY KEY, symbol VARCHAR(12) NOT NULL, \
    bid DECIMAL(18,6) NOT NULL, qty INT UNSIGNED NOT NULL, ts DATETIME(6) NOT NULL, note TEXT NULL)";

fn quotes_rows(first: u32, last: u32) -> String {
    format!(
        "INSERT INTO q SELECT seq, CONCAT('S', seq % 7), seq / 7 - 3, seq * 3, \
         TIMESTAMPADD(MICROSECOND, seq * 1001, '2026-11-20 14:30:00'), IF(seq % 5 = 0, NULL, CONCAT('n', seq)) \
         FROM seq_{first}_to_{last}"
    )
}

/// MariaDB's rows in the Debezium encoding's terms: id → (symbol, unscaled bid, qty, µs since epoch, note).
async fn mariadb_quotes(db: &str) -> BTreeMap<i64, (String, i128, u64, i64, Option<String>)> {
    use mysql_async::prelude::*;
    let mut conn = common::admin_for(db).await;
    let rows: Vec<(i64, String, String, u64, i64, Option<String>)> = conn
        .query(format!(
            "SELECT id, symbol, CAST(bid * 1000000 AS DECIMAL(30,0)), qty, \
             TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', ts), note FROM `{db}`.q"
        ))
        .await
        .unwrap();
    rows.into_iter()
        .map(|(id, s, bid, qty, ts, note)| (id, (s, bid.parse().unwrap(), qty, ts, note)))
        .collect()
}

fn assert_equals_mariadb(
    state: &BTreeMap<i64, Json>,
    want: &BTreeMap<i64, (String, i128, u64, i64, Option<String>)>,
) {
    assert_eq!(state.len(), want.len(), "rows in the topic vs MariaDB");
    for (id, (symbol, bid, qty, ts, note)) in want {
        let got = state
            .get(id)
            .unwrap_or_else(|| panic!("row {id} missing from the topic"));
        assert_eq!(
            got["symbol"].as_str(),
            Some(symbol.as_str()),
            "row {id} symbol"
        );
        assert_eq!(unscaled(got["bid"].as_str().unwrap()), *bid, "row {id} bid");
        assert_eq!(got["qty"].as_u64(), Some(*qty), "row {id} qty");
        assert_eq!(
            got["ts"].as_i64(),
            Some(*ts),
            "row {id} ts (MicroTimestamp)"
        );
        assert_eq!(got["note"].as_str(), note.as_deref(), "row {id} note");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_topics_rebuild_the_table_and_resume_from_the_offsets_topic() {
    let db = TestDb::new("kafka_pub").await;
    db.exec(QUOTES).await;
    db.exec(&quotes_rows(1, 200)).await;
    let prefix = unique_prefix("pub");
    let text = db.config_text("") + &kafka_section(&prefix, "[kafka.topics]\npartitions = 3\n");
    let config = Config::parse(&text, Path::new("it.toml")).unwrap();
    let server_id = config.source.server_id;
    let topic = format!("{prefix}.{}.q", db.name);

    let (cancel, handle) = start_publisher(config.clone()).await;
    common::wait_replica_registered(&db.name, server_id, 60).await;
    db.exec(&quotes_rows(201, 400)).await;
    db.exec("UPDATE q SET bid = bid + 1.5, note = 'corrected' WHERE id % 3 = 0")
        .await;
    db.exec("DELETE FROM q WHERE id % 10 = 0").await;
    // a key change: Debezium's delete + tombstone of the old key, create of the new one
    db.exec("UPDATE q SET id = 100007 WHERE id = 7").await;
    db.exec(&quotes_rows(999_999, 999_999)).await;
    wait_records(&topic, 60, |rs| {
        rs.iter().any(|r| r.value.is_some() && key_id(r) == 999_999)
    })
    .await;
    // partitions are delivered independently: the drain waits for every acknowledgement
    stop(cancel, handle).await;
    let records = read_topic(&topic).await;

    // every record sits in the partition Java's producer would choose for its key bytes
    for r in &records {
        assert_eq!(
            r.partition,
            java_partition(r.key.as_deref().unwrap(), 3),
            "partition of {:?}",
            r.key_json()
        );
        let seq: u64 = r.headers["binlake.seq"].parse().unwrap();
        assert!(seq > 0);
    }
    let ops = |op: &str| {
        records
            .iter()
            .filter(|r| r.value_json().is_some_and(|v| v["op"] == op))
            .count()
    };
    assert_eq!(ops("r"), 200, "snapshot reads");
    // 40 deleted rows plus the old key of the key change
    assert_eq!(ops("d"), 41);
    assert_eq!(
        records.iter().filter(|r| r.value.is_none()).count(),
        41,
        "a tombstone per delete"
    );
    let streamed = records
        .iter()
        .filter(|r| r.value_json().is_some_and(|v| v["op"] != "r"))
        .collect::<Vec<_>>();
    assert!(streamed
        .iter()
        .all(|r| r.headers.contains_key("binlake.gtid")));
    let first = streamed[0].value_json().unwrap();
    assert_eq!(first["source"]["connector"], "mysql");
    assert_eq!(first["source"]["name"], prefix.as_str());
    assert_eq!(first["source"]["table"], "q");
    assert!(first["transaction"]["id"].is_string());
    assert!(first.get("schema").is_none(), "no schema block by default");

    let state = rebuild(&records);
    assert_equals_mariadb(&state, &mariadb_quotes(&db.name).await);

    // the schema-change topic describes the table, with binlake's schema inside
    let schemas = read_topic(&prefix).await;
    let s = schemas
        .iter()
        .filter_map(Record::value_json)
        .find(|v| v["binlake"]["schema"]["table"] == "q")
        .expect("a schema record for q");
    assert_eq!(
        s["tableChanges"][0]["table"]["primaryKeyColumnNames"],
        serde_json::json!(["id"])
    );

    // the offsets topic holds the position after the last record
    let offsets = read_topic(&format!("{prefix}.binlake.offsets")).await;
    let last = offsets.last().expect("an offsets record");
    assert_eq!(last.key_json(), serde_json::json!({"connector": "it"}));
    let cp: Checkpoint = serde_json::from_slice(last.value.as_deref().unwrap()).unwrap();
    assert!(cp.snapshot.as_ref().is_none_or(|s| s.complete));

    // a new process resumes there: no second snapshot, nothing published twice
    let (cancel, handle) = start_publisher(config).await;
    db.exec(&quotes_rows(1_000_000, 1_000_000)).await;
    wait_records(&topic, 60, |rs| {
        rs.iter()
            .any(|r| r.value.is_some() && key_id(r) == 1_000_000)
    })
    .await;
    stop(cancel, handle).await;
    let again = read_topic(&topic).await;
    assert_eq!(
        again.len(),
        records.len() + 1,
        "only the new row was published"
    );
    assert_equals_mariadb(&rebuild(&again), &mariadb_quotes(&db.name).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_block_and_added_columns() {
    let db = TestDb::new("kafka_schema").await;
    db.exec(QUOTES).await;
    db.exec(&quotes_rows(1, 3)).await;
    let prefix = unique_prefix("schema");
    let text = db.config_text("") + &kafka_section(&prefix, "schemas_enable = true\n");
    let config = Config::parse(&text, Path::new("it.toml")).unwrap();
    let server_id = config.source.server_id;
    let topic = format!("{prefix}.{}.q", db.name);
    let (cancel, handle) = start_publisher(config).await;
    common::wait_replica_registered(&db.name, server_id, 60).await;
    db.exec("ALTER TABLE q ADD COLUMN venue ENUM('XNAS','XNYS') NULL")
        .await;
    db.exec("INSERT INTO q VALUES (50, 'AAPL', 1.25, 5, '2026-11-20 14:30:00.5', NULL, 'XNYS')")
        .await;
    wait_records(&topic, 60, |rs| {
        rs.iter()
            .any(|r| r.value.is_some() && r.key_json()["payload"]["id"] == 50)
    })
    .await;
    stop(cancel, handle).await;
    let records = read_topic(&topic).await;

    let last = records.last().unwrap().value_json().unwrap();
    let schema = &last["schema"];
    assert_eq!(schema["name"], format!("{topic}.Envelope"));
    let after = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "after")
        .unwrap();
    let field = |name: &str| {
        after["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == name)
            .unwrap_or_else(|| panic!("no field {name}"))
            .clone()
    };
    assert_eq!(
        field("bid")["name"],
        "org.apache.kafka.connect.data.Decimal"
    );
    assert_eq!(field("bid")["parameters"]["scale"], "6");
    assert_eq!(field("ts")["name"], "io.debezium.time.MicroTimestamp");
    assert_eq!(field("venue")["parameters"]["allowed"], "XNAS,XNYS");
    assert_eq!(field("qty")["type"], "int64", "INT UNSIGNED is int64");
    let payload = &last["payload"]["after"];
    assert_eq!(payload["venue"], "XNYS");
    assert_eq!(unscaled(payload["bid"].as_str().unwrap()), 1_250_000);
    // 2026-11-20T14:30:00.5 in µs since the epoch
    assert_eq!(payload["ts"].as_i64(), Some(1_795_185_000_500_000));
    let key = records.last().unwrap().key_json();
    assert_eq!(key["schema"]["name"], format!("{topic}.Key"));
    // the ALTER reached the schema-change topic as an ALTER with the new column
    let schemas = read_topic(&prefix).await;
    let alter = schemas
        .iter()
        .filter_map(Record::value_json)
        .find(|v| v["tableChanges"][0]["type"] == "ALTER")
        .expect("an ALTER record");
    assert!(alter["ddl"].as_str().unwrap().contains("ADD COLUMN venue"));
    let cols = alter["binlake"]["schema"]["columns"].as_array().unwrap();
    assert_eq!(cols.last().unwrap()["name"], "venue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_over_the_size_limit_stops_with_the_table_and_the_setting() {
    let db = TestDb::new("kafka_big").await;
    db.exec(QUOTES).await;
    db.exec("INSERT INTO q VALUES (1, 'X', 1, 1, '2026-11-20 14:30:00', REPEAT('x', 8000))")
        .await;
    let prefix = unique_prefix("big");
    let text = db.config_text("")
        + &kafka_section(&prefix, "[kafka.producer]\nmax_message_bytes = 4000\n");
    let config = Config::parse(&text, Path::new("it.toml")).unwrap();
    let (_cancel, handle) = start_publisher(config).await;
    let err = tokio::time::timeout(Duration::from_secs(60), handle)
        .await
        .expect("the publisher stops instead of hanging")
        .unwrap()
        .expect_err("a record over the limit is an error, never dropped")
        .to_string();
    assert!(err.contains(&format!("{prefix}.{}.q", db.name)), "{err}");
    assert!(err.contains("{\"id\":1}"), "{err}");
    assert!(
        err.contains("max.message.bytes") && err.contains("kafka.producer.max_message_bytes"),
        "{err}"
    );
    // nothing was stored as done: the offsets topic has no position past the record
    let offsets = read_topic(&format!("{prefix}.binlake.offsets")).await;
    for r in offsets {
        let cp: Checkpoint = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        assert!(cp.snapshot.as_ref().is_some_and(|s| !s.complete), "{cp:?}");
    }
}

/// A consumer that knows only Debezium's format (Python confluent-kafka, scripts/debezium_consumer.py)
/// rebuilds the table from the topic; it equals MariaDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debezium_only_consumer_reproduces_the_table() {
    let db = TestDb::new("kafka_dbz").await;
    db.exec(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, d DECIMAL(10,3) NOT NULL, dt DATETIME(3) NOT NULL, \
         dt6 DATETIME(6) NULL, day DATE NOT NULL, b BIT(12) NOT NULL, bin VARBINARY(8) NULL, \
         txt VARCHAR(20) NULL, e ENUM('XNAS','XNYS') NOT NULL)",
    )
    .await;
    db.exec(
        "INSERT INTO t SELECT seq, seq * 1.125 - 40, TIMESTAMPADD(MICROSECOND, seq * 1000, '2026-11-20 14:30:00'), \
         IF(seq % 4 = 0, NULL, TIMESTAMPADD(MICROSECOND, seq * 7, '1969-12-31 23:59:59')), \
         DATE_ADD('1960-02-29', INTERVAL seq * 97 DAY), seq * 13 % 4096, IF(seq % 3 = 0, NULL, UNHEX(HEX(seq))), \
         IF(seq % 5 = 0, NULL, CONCAT('t\"', seq)), ELT(1 + seq % 2, 'XNAS', 'XNYS') FROM seq_1_to_60",
    )
    .await;
    let prefix = unique_prefix("dbz");
    let text = db.config_text("")
        + &kafka_section(
            &prefix,
            "schemas_enable = true\n[kafka.topics]\npartitions = 2\n",
        );
    let config = Config::parse(&text, Path::new("it.toml")).unwrap();
    let server_id = config.source.server_id;
    let topic = format!("{prefix}.{}.t", db.name);
    let (cancel, handle) = start_publisher(config).await;
    common::wait_replica_registered(&db.name, server_id, 60).await;
    db.exec("UPDATE t SET d = -d, txt = 'changed' WHERE id % 7 = 0")
        .await;
    db.exec("DELETE FROM t WHERE id % 11 = 0").await;
    db.exec("UPDATE t SET id = 1000 WHERE id = 13").await;
    db.exec("INSERT INTO t VALUES (2000, 0, '2026-11-20 00:00:00', NULL, '2026-11-20', 0, NULL, NULL, 'XNAS')")
        .await;
    wait_records(&topic, 60, |rs| {
        rs.iter()
            .any(|r| r.value.is_some() && r.key_json()["payload"]["id"] == 2000)
    })
    .await;
    stop(cancel, handle).await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/debezium_consumer.py");
    let out = std::process::Command::new("python3")
        .args([script, &brokers(), &topic])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "debezium_consumer.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<Json> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    use mysql_async::prelude::*;
    let mut conn = common::admin_for(&db.name).await;
    let want: Vec<String> = conn
        .query(format!(
            "SELECT JSON_OBJECT('id', id, 'd', CAST(d AS CHAR), \
             'dt', DATE_FORMAT(dt, '%Y-%m-%dT%H:%i:%s.%f'), 'dt6', DATE_FORMAT(dt6, '%Y-%m-%dT%H:%i:%s.%f'), \
             'day', DATE_FORMAT(day, '%Y-%m-%d'), 'b', CAST(b AS UNSIGNED), 'bin', LOWER(HEX(bin)), \
             'txt', txt, 'e', e) FROM `{}`.t ORDER BY id",
            db.name
        ))
        .await
        .unwrap();
    let want: BTreeMap<i64, Json> = want
        .iter()
        .map(|s| {
            let v: Json = serde_json::from_str(s).unwrap();
            (v["id"].as_i64().unwrap(), v)
        })
        .collect();
    let got: BTreeMap<i64, Json> = got
        .into_iter()
        .map(|v| (v["id"].as_i64().unwrap(), v))
        .collect();
    assert_eq!(
        got.len(),
        want.len(),
        "rows rebuilt by the Debezium consumer vs MariaDB"
    );
    for (id, w) in &want {
        assert_eq!(got.get(id), Some(w), "row {id}");
    }
}

/// Debezium's transaction metadata (BEGIN/END with per-table counts, and the `transaction` block of each
/// change) and heartbeats on an idle stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_metadata_and_heartbeats() {
    let db = TestDb::new("kafka_tx").await;
    db.exec(QUOTES).await;
    db.exec("CREATE TABLE side (id INT PRIMARY KEY, v INT)")
        .await;
    let prefix = unique_prefix("tx");
    let text = db.config_text("")
        + &kafka_section(
            &prefix,
            "provide_transaction_metadata = true\nheartbeat_interval_ms = 200\n",
        );
    let config = Config::parse(&text, Path::new("it.toml")).unwrap();
    let server_id = config.source.server_id;
    let (cancel, handle) = start_publisher(config).await;
    common::wait_replica_registered(&db.name, server_id, 60).await;
    db.exec(
        "BEGIN; INSERT INTO q VALUES (1, 'A', 1, 1, '2026-11-20 14:30:00', NULL), \
         (2, 'B', 2, 2, '2026-11-20 14:30:00', NULL); INSERT INTO side VALUES (1, 1); COMMIT",
    )
    .await;
    let tx_topic = format!("{prefix}.transaction");
    wait_records(&tx_topic, 60, |rs| {
        rs.iter()
            .any(|r| r.value_json().is_some_and(|v| v["status"] == "END"))
    })
    .await;
    // an idle stream still shows it is alive (only this test turns heartbeats on, so the process-wide
    // counter is this publisher's)
    let heartbeats = || {
        binlake::observe::METRICS
            .kafka_records
            .with_label_values(&["heartbeat"])
            .get()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while heartbeats() < 2 {
        assert!(
            Instant::now() < deadline,
            "no heartbeat within 60 s of an idle stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop(cancel, handle).await;
    let beats = read_topic(&format!("__debezium-heartbeat.{prefix}")).await;
    assert!(beats.len() >= 2, "{} heartbeat records", beats.len());
    assert_eq!(
        beats[0].key_json(),
        serde_json::json!({"serverName": prefix})
    );

    let txs = read_topic(&tx_topic).await;
    let begin = txs[0].value_json().unwrap();
    let end = txs[1].value_json().unwrap();
    assert_eq!(begin["status"], "BEGIN");
    assert_eq!(end["status"], "END");
    assert_eq!(begin["id"], end["id"]);
    assert_eq!(end["event_count"], 3);
    let counts: BTreeMap<String, u64> = end["data_collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["data_collection"].as_str().unwrap().to_string(),
                c["event_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts[&format!("{}.q", db.name)], 2);
    assert_eq!(counts[&format!("{}.side", db.name)], 1);
    let changes = read_topic(&format!("{prefix}.{}.q", db.name)).await;
    let orders: Vec<(u64, u64)> = changes
        .iter()
        .filter_map(Record::value_json)
        .map(|v| {
            assert_eq!(v["transaction"]["id"], begin["id"]);
            (
                v["transaction"]["total_order"].as_u64().unwrap(),
                v["transaction"]["data_collection_order"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(orders, [(1, 1), (2, 2)]);
}
