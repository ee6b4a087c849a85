//! The lake equals the source through table lifecycle statements and operator actions, in direct mode
//! (`binlake run`) and through Kafka (`binlake run --sink kafka` + `binlake sink`): DROP and CREATE
//! again, CREATE OR REPLACE, RENAME away, a TRUNCATE inside a batch with a crash between its commit and
//! the changes after it, and statements binlake cannot follow.

use crate::common::*;
use crate::kafka::{start_publisher, stop, unique_prefix};
use crate::kafka_sink::{sink_config, start_sink, stop_sink};
use crate::lake::{lake_name, start_lake, wait_lake_equals_source};
use binlake::config::Config;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Direct,
    Kafka,
}

type Task<E> = tokio::task::JoinHandle<Result<(), E>>;

/// A running pipeline of either mode, in process.
pub struct Running {
    parts: Parts,
}

enum Parts {
    Direct(CancellationToken, Task<binlake::pipeline::PipelineError>),
    Kafka {
        publisher: (CancellationToken, Task<binlake::pipeline::PipelineError>),
        sink: (CancellationToken, Task<binlake::ingest::IngestError>),
    },
}

/// The config of `db` in `mode` (`prefix` names the Kafka topics), with `extra_source` in `[source]`
/// and the config file written beside it.
pub fn mode_config(db: &TestDb, mode: Mode, prefix: &str, extra_source: &str) -> (Config, PathBuf) {
    match mode {
        Mode::Direct => {
            let path = db.config_file(extra_source);
            (db.config(extra_source), path)
        }
        Mode::Kafka => {
            let (_, path) = sink_config(db, prefix, "");
            // sink_config writes the source section without extras: put them in
            let text = std::fs::read_to_string(&path).unwrap().replacen(
                "[state]",
                &format!("{extra_source}\n[state]"),
                1,
            );
            std::fs::write(&path, &text).unwrap();
            (
                Config::parse(&text, std::path::Path::new("it.toml")).unwrap(),
                path,
            )
        }
    }
}

pub async fn start_mode(config: Config, mode: Mode) -> Running {
    let parts = match mode {
        Mode::Direct => {
            let (cancel, handle) = start_lake(config.clone());
            Parts::Direct(cancel, handle)
        }
        Mode::Kafka => Parts::Kafka {
            publisher: start_publisher(config.clone()).await,
            sink: start_sink(config.clone()),
        },
    };
    Running { parts }
}

impl Running {
    /// Fails the test with the pipeline's error if a part has stopped.
    pub fn assert_running(&self) {
        let finished = match &self.parts {
            Parts::Direct(_, h) => h.is_finished(),
            Parts::Kafka { publisher, sink } => publisher.1.is_finished() || sink.1.is_finished(),
        };
        assert!(!finished, "the pipeline stopped");
    }

    /// Whether a part of the pipeline has stopped (with its error, once taken).
    fn finished(&self) -> bool {
        match &self.parts {
            Parts::Direct(_, h) => h.is_finished(),
            Parts::Kafka { publisher, sink } => publisher.1.is_finished() || sink.1.is_finished(),
        }
    }

    /// Waits until the lake's `table` equals MariaDB's (then checks it fully); fails at once with the
    /// pipeline's error if it stops meanwhile.
    pub async fn wait_equal(&mut self, config: &Config, db: &str, table: &str, secs: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match crate::lake::lake_matches_source(config, db, table).await {
                Ok(()) => break,
                Err(why) => {
                    if self.finished() {
                        let error = match &mut self.parts {
                            Parts::Direct(_, h) => format!("{:?}", h.await),
                            Parts::Kafka { publisher, sink } if publisher.1.is_finished() => {
                                format!("publisher: {:?}", (&mut publisher.1).await)
                            }
                            Parts::Kafka { sink, .. } => format!("sink: {:?}", (&mut sink.1).await),
                        };
                        panic!("{db}.{table}: the pipeline stopped ({error}) with the lake unequal: {why}");
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{db}.{table}: the lake did not equal MariaDB within {secs}s: {why}"
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        crate::lake::assert_lake_equals_source(config, db, table).await;
    }

    pub async fn stop(self) {
        match self.parts {
            Parts::Direct(cancel, handle) => {
                cancel.cancel();
                tokio::time::timeout(Duration::from_secs(30), handle)
                    .await
                    .expect("drains within 30 s")
                    .unwrap()
                    .expect("ends cleanly");
            }
            Parts::Kafka { publisher, sink } => {
                stop_sink(sink.0, sink.1).await;
                stop(publisher.0, publisher.1).await;
            }
        }
    }

    /// Waits for the pipeline to stop on its own and returns its error text.
    pub async fn stopped_with(self, secs: u64) -> String {
        let wait = Duration::from_secs(secs);
        match self.parts {
            Parts::Direct(_, handle) => {
                let r = tokio::time::timeout(wait, handle).await.expect("stops");
                format!("{:?}", r.unwrap().expect_err("stops with an error"))
            }
            Parts::Kafka {
                publisher: (stop_publisher, mut published),
                sink: (stop_sink, mut sunk),
            } => {
                // whichever stops first says why: the publisher (the source) or the sink (the lake)
                let (error, publisher_ended) = tokio::time::timeout(wait, async {
                    tokio::select! {
                        r = &mut published => (format!("{:?}", r.unwrap().expect_err("stops with an error")), true),
                        r = &mut sunk => (format!("{:?}", r.unwrap().expect_err("stops with an error")), false),
                    }
                })
                .await
                .expect("a part of the pipeline stops");
                stop_publisher.cancel();
                stop_sink.cancel();
                // the other part drains (a finished handle is not polled again)
                if publisher_ended {
                    let _ = tokio::time::timeout(Duration::from_secs(30), sunk).await;
                } else {
                    let _ = tokio::time::timeout(Duration::from_secs(30), published).await;
                }
                error
            }
        }
    }
}

/// Rows the lake holds for `table` (of `db`); 0 while it has no such table.
pub async fn lake_rows(config: &Config, db: &str, table: &str) -> usize {
    lake_count(config, db, table, "true").await
}

/// Rows of `table` (of `db`) in the lake that match `filter`; 0 while it has no such table.
pub async fn lake_count(config: &Config, db: &str, table: &str, filter: &str) -> usize {
    let sql = format!(
        "SELECT count(*) FROM {} WHERE {filter}",
        lake_name(db, table)
    );
    let Ok(df) = binlake::sinks::lake::query::sql(&config.lake, &sql).await else {
        return 0;
    };
    crate::lake::cells(&df.collect().await.unwrap())[0][0]
        .parse()
        .unwrap()
}

/// Waits until the lake's `table` holds no row (a dropped table).
pub async fn wait_lake_empty(config: &Config, db: &str, table: &str, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let n = lake_rows(config, db, table).await;
        if n == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{db}.{table} still holds {n} rows in the lake after {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn drop_and_create_again(mode: Mode) {
    let db = TestDb::new(&format!("lc_drop_{mode:?}").to_lowercase()).await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    db.exec("INSERT INTO t VALUES (1, 10), (2, 20), (3, 30)")
        .await;
    db.exec("CREATE TABLE r (id INT PRIMARY KEY, v VARCHAR(10))")
        .await;
    db.exec("INSERT INTO r VALUES (1, 'a'), (2, 'b')").await;
    db.exec("CREATE TABLE gone (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO gone VALUES (1), (2)").await;
    let (config, _) = mode_config(&db, mode, &unique_prefix("lcdrop"), "");
    let mut running = start_mode(config.clone(), mode).await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    running.wait_equal(&config, &db.name, "r", 300).await;
    running.wait_equal(&config, &db.name, "gone", 300).await;
    // streamed rows first, so the drop meets rows from both the snapshot and the stream
    db.exec("INSERT INTO t VALUES (4, 40)").await;
    db.exec("UPDATE r SET v = 'changed' WHERE id = 2").await;
    // dropped and created again with another type for `v` and another column
    db.exec("DROP TABLE t").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), extra INT DEFAULT 5)")
        .await;
    db.exec("INSERT INTO t (id, v) VALUES (1, 'new')").await;
    // replaced in one statement, old key inserted again
    db.exec("CREATE OR REPLACE TABLE r (id INT PRIMARY KEY, v VARCHAR(10))")
        .await;
    db.exec("INSERT INTO r VALUES (2, 'again'), (5, 'five')")
        .await;
    db.exec("DROP TABLE IF EXISTS gone, never_there").await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    running.wait_equal(&config, &db.name, "r", 300).await;
    wait_lake_empty(&config, &db.name, "gone", 300).await;
    running.assert_running();
    running.stop().await;
    // a restart replays nothing into the tables it dropped or created again
    let mut running = start_mode(config.clone(), mode).await;
    db.exec("INSERT INTO t (id, v) VALUES (2, 'after restart')")
        .await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    assert_eq!(lake_rows(&config, &db.name, "gone").await, 0);
    running.wait_equal(&config, &db.name, "r", 300).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_and_create_again_direct() {
    drop_and_create_again(Mode::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_and_create_again_through_kafka() {
    drop_and_create_again(Mode::Kafka).await;
}

async fn renamed_away(mode: Mode) {
    let db = TestDb::new(&format!("lc_away_{mode:?}").to_lowercase()).await;
    db.exec("CREATE TABLE a (id INT PRIMARY KEY, v INT)").await;
    db.exec("INSERT INTO a VALUES (1, 1), (2, 2), (3, 3), (4, 4), (5, 5)")
        .await;
    db.exec("CREATE TABLE b (id INT PRIMARY KEY, v INT)").await;
    db.exec("INSERT INTO b VALUES (1, 1)").await;
    // archived tables are not captured
    let exclude = format!("exclude = [\"{}.arch_*\"]", db.name);
    let (config, _) = mode_config(&db, mode, &unique_prefix("lcaway"), &exclude);
    let mut running = start_mode(config.clone(), mode).await;
    running.wait_equal(&config, &db.name, "a", 300).await;
    running.wait_equal(&config, &db.name, "b", 300).await;
    db.exec("INSERT INTO a VALUES (6, 6)").await;
    db.exec("RENAME TABLE a TO arch_a").await;
    db.exec("ALTER TABLE b RENAME TO arch_b").await;
    wait_lake_empty(&config, &db.name, "a", 300).await;
    wait_lake_empty(&config, &db.name, "b", 300).await;
    running.assert_running();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_renamed_out_of_the_capture_is_dropped_direct() {
    renamed_away(Mode::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_renamed_out_of_the_capture_is_dropped_through_kafka() {
    renamed_away(Mode::Kafka).await;
}

/// Rows that change without row events (a partition truncated) are snapshotted again while the stream
/// runs; a statement-logged change to a captured table stops binlake, quoting it.
async fn rows_changed_without_row_events(mode: Mode) {
    let db = TestDb::new(&format!("lc_part_{mode:?}").to_lowercase()).await;
    db.exec(
        "CREATE TABLE p (id INT NOT NULL, v INT, PRIMARY KEY (id)) \
         PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100), PARTITION p1 VALUES LESS THAN MAXVALUE)",
    )
    .await;
    db.exec("INSERT INTO p SELECT seq, seq FROM seq_1_to_300")
        .await;
    let extra = "[source.snapshot]\nchunk_size = 40";
    let (config, _) = mode_config(&db, mode, &unique_prefix("lcpart"), extra);
    let mut running = start_mode(config.clone(), mode).await;
    running.wait_equal(&config, &db.name, "p", 300).await;
    // rows of p0 vanish without row events: binlake empties p and reads it again, chunk by chunk
    db.exec("ALTER TABLE p TRUNCATE PARTITION p0").await;
    db.exec("UPDATE p SET v = -v WHERE id % 7 = 0").await;
    running.wait_equal(&config, &db.name, "p", 300).await;
    running.assert_running();
    // a change logged as a statement cannot be followed: binlake stops and quotes it
    let mut conn = admin_for(&db.name).await;
    mysql_async::prelude::Queryable::query_drop(
        &mut conn,
        format!(
            "SET SESSION binlog_format = 'STATEMENT'; INSERT INTO `{}`.p VALUES (1000, 1000)",
            db.name
        ),
    )
    .await
    .unwrap();
    let error = running.stopped_with(60).await;
    assert!(
        error.contains("INSERT INTO") && error.contains(".p") && error.contains("binlog_format"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_changed_without_row_events_direct() {
    rows_changed_without_row_events(Mode::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_changed_without_row_events_through_kafka() {
    rows_changed_without_row_events(Mode::Kafka).await;
}

/// Writes a batch whose TRUNCATE has changes on both sides, kills the lake writer right after the
/// truncate's own commit, and restarts it: the changes after the truncate still reach the lake.
async fn truncate_inside_a_batch_survives_a_crash(mode: Mode) {
    let db = TestDb::new(&format!("lc_trunc_{mode:?}").to_lowercase()).await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    db.exec("INSERT INTO t SELECT seq, seq FROM seq_1_to_50")
        .await;
    let prefix = unique_prefix("lctrunc");
    let (config, path) = mode_config(&db, mode, &prefix, "");
    // one batch for everything below: a long interval, and no row limit reached
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("flush_interval_ms = 200", "flush_interval_ms = 4000");
    std::fs::write(&path, &text).unwrap();
    let publisher = match mode {
        Mode::Kafka => Some(start_publisher(config.clone()).await),
        Mode::Direct => None,
    };
    // the crashing sink in a group of its own: tansu holds the next member of a group with a dead one
    // back until the dead one's rebalance timeout (kafka_sink's crash tests meet that too)
    let crashing = db.dir.path().join("crashing.toml");
    let own_group = match mode {
        Mode::Kafka => format!("[kafka.consumer]\ngroup_id = \"{prefix}.crashing\"\n"),
        Mode::Direct => String::new(),
    };
    std::fs::write(&crashing, text.clone() + &own_group).unwrap();
    let spawn = |crash: bool| {
        let mut cmd = std::process::Command::new(binary());
        match mode {
            Mode::Direct => cmd.arg("run"),
            Mode::Kafka => cmd.arg("sink"),
        };
        let config_file = if crash { &crashing } else { &path };
        cmd.arg("--config")
            .arg(config_file)
            .env("BINLAKE_LOG", "warn");
        if crash {
            cmd.env("BINLAKE_CRASH_AT", binlake::crash::AFTER_TRUNCATE_COMMIT);
        }
        cmd.spawn().unwrap()
    };
    let mut writer = spawn(true);
    wait_lake_equals_source(&config, &db.name, "t", 300).await;
    db.exec("UPDATE t SET v = -1 WHERE id <= 10").await;
    db.exec("TRUNCATE TABLE t").await;
    db.exec("INSERT INTO t VALUES (7, 70), (8, 80)").await;
    db.exec("UPDATE t SET v = 71 WHERE id = 7").await;
    let status = wait_exit(&mut writer, 300, "the writer reached the crash point").await;
    assert!(!status.success(), "killed at the crash point: {status}");
    let mut writer = spawn(false);
    wait_lake_equals_source(&config, &db.name, "t", 300).await;
    assert_alive(&mut writer, "after catching up");
    signal_and_wait(&mut writer, 15);
    if let Some((cancel, handle)) = publisher {
        stop(cancel, handle).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncate_inside_a_batch_survives_a_crash_after_its_commit_direct() {
    truncate_inside_a_batch_survives_a_crash(Mode::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncate_inside_a_batch_survives_a_crash_after_its_commit_through_kafka() {
    truncate_inside_a_batch_survives_a_crash(Mode::Kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_key_that_is_not_unique_is_refused_at_start() {
    let db = TestDb::new("lc_keys").await;
    db.exec("CREATE TABLE nk (sym VARCHAR(8) NOT NULL, px INT, code INT NULL, UNIQUE KEY u_code (code))")
        .await;
    db.exec("INSERT INTO nk VALUES ('A', 1, NULL), ('A', 2, NULL), ('A', 3, 3), ('A', 4, 4), ('A', 5, 5)")
        .await;
    for column in ["sym", "code"] {
        let keys = format!("keys = {{ \"{}.nk\" = [\"{column}\"] }}", db.name);
        let (config, _) = mode_config(&db, Mode::Direct, "", &keys);
        let error = start_mode(config, Mode::Direct)
            .await
            .stopped_with(60)
            .await;
        assert!(
            error.contains("source.keys") && error.contains(".nk") && error.contains(column),
            "{error}"
        );
    }
    // with a UNIQUE index over NOT NULL columns inside the configured key, every row lands
    db.exec(
        "ALTER TABLE nk ADD COLUMN id INT NOT NULL AUTO_INCREMENT FIRST, ADD UNIQUE KEY u_id (id)",
    )
    .await;
    let keys = format!("keys = {{ \"{}.nk\" = [\"id\", \"sym\"] }}", db.name);
    let (config, _) = mode_config(&db, Mode::Direct, "", &keys);
    let mut running = start_mode(config.clone(), Mode::Direct).await;
    running.wait_equal(&config, &db.name, "nk", 300).await;
    db.exec("INSERT INTO nk (sym, px) VALUES ('A', 6)").await;
    running.wait_equal(&config, &db.name, "nk", 300).await;
    running.stop().await;
}

/// Starting over without a checkpoint (the offsets topic reset, a lost lake marker) snapshots again;
/// the new `_seq`s continue above what the sink holds, so the snapshot and later changes land.
async fn a_fresh_start_continues_above_the_sinks_seq(mode: Mode) {
    let db = TestDb::new(&format!("lc_floor_{mode:?}").to_lowercase()).await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    db.exec("CREATE TABLE u (id INT PRIMARY KEY, v INT)").await;
    db.exec("INSERT INTO t SELECT seq, seq FROM seq_1_to_20")
        .await;
    db.exec("INSERT INTO u SELECT seq, seq FROM seq_1_to_20")
        .await;
    let prefix = unique_prefix("lcfloor");
    let (config, _) = mode_config(&db, mode, &prefix, "");
    let mut running = start_mode(config.clone(), mode).await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    // streamed changes raise the `_seq`s the lake holds well above a new snapshot's first ones
    for i in 0..5 {
        db.exec(&format!(
            "UPDATE t SET v = v + {i}; UPDATE u SET v = v + {i}"
        ))
        .await;
    }
    // the last flush holds both tables: no single-table commit carries a checkpoint
    db.exec("BEGIN; UPDATE t SET v = -1 WHERE id = 1; UPDATE u SET v = -1 WHERE id = 1; COMMIT")
        .await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    running.wait_equal(&config, &db.name, "u", 300).await;
    running.stop().await;
    match mode {
        Mode::Direct => {
            let marker = db.lake_root().join("_binlake/it.checkpoint.json");
            std::fs::remove_file(&marker).expect("the resume marker exists");
        }
        Mode::Kafka => {
            use rdkafka::producer::{FutureProducer, FutureRecord};
            let producer: FutureProducer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", crate::kafka::brokers())
                .create()
                .unwrap();
            let key = binlake::sinks::kafka::offsets::offsets_key("it");
            producer
                .send(
                    FutureRecord::<[u8], [u8]>::to(&format!("{prefix}.binlake.offsets"))
                        .key(key.as_slice()),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
    }
    // (a row deleted while nothing ran is another matter: a snapshot alone cannot tell it is gone)
    db.exec("UPDATE t SET v = 1000 WHERE id = 2").await;
    db.exec("INSERT INTO u VALUES (50, 50)").await;
    let mut running = start_mode(config.clone(), mode).await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    running.wait_equal(&config, &db.name, "u", 300).await;
    db.exec("UPDATE t SET v = 2000 WHERE id = 4").await;
    db.exec("INSERT INTO u VALUES (100, 100)").await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    running.wait_equal(&config, &db.name, "u", 300).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_start_continues_above_the_lakes_seq_direct() {
    a_fresh_start_continues_above_the_sinks_seq(Mode::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_start_continues_above_the_topics_seq_through_kafka() {
    a_fresh_start_continues_above_the_sinks_seq(Mode::Kafka).await;
}

/// ADD COLUMN with defaults on a table with rows: the rows that existed show MySQL's values in the lake,
/// whether or not they were written since; DROP COLUMN leaves the rest equal; a type change and a column
/// renamed (rows MySQL rewrote without row events) are read again while streaming; a longer VARCHAR
/// needs nothing.
async fn added_columns_take_their_defaults(mode: Mode) {
    let db = TestDb::new(&format!("lc_dflt_{mode:?}").to_lowercase()).await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    db.exec("INSERT INTO t SELECT seq, seq FROM seq_1_to_300")
        .await;
    let (config, _) = mode_config(&db, mode, &unique_prefix("lcdflt"), "");
    let mut running = start_mode(config.clone(), mode).await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    db.exec("INSERT INTO t SELECT seq, seq FROM seq_301_to_652")
        .await;
    db.exec(
        "ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 7, ADD COLUMN d VARCHAR(30) DEFAULT 'dflt', \
         ADD COLUMN e INT NOT NULL, ADD COLUMN f DATE NULL, \
         ADD COLUMN g TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP",
    )
    .await;
    // about half the rows are written again after the ALTER, the rest only existed
    db.exec("UPDATE t SET v = v + 1, c = id WHERE id % 2 = 0")
        .await;
    db.exec("INSERT INTO t (id, v, e) VALUES (1000, 1000, 1)")
        .await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    db.exec("ALTER TABLE t DROP COLUMN d").await;
    db.exec("UPDATE t SET v = -v WHERE id % 5 = 0").await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    running.assert_running();
    running.stop().await;
    // a restart replays nothing wrong into the filled rows
    let mut running = start_mode(config.clone(), mode).await;
    db.exec("INSERT INTO t (id, v, c, e) VALUES (1001, 1, 2, 3)")
        .await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    // MySQL converts every row in place, without row events: the table is read again while streaming
    db.exec("ALTER TABLE t MODIFY COLUMN v BIGINT").await;
    db.exec("UPDATE t SET v = 5000000000 WHERE id = 1").await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    // a column renamed keeps its values, which no row event carries
    db.exec("ALTER TABLE t CHANGE COLUMN e e_renamed INT NOT NULL")
        .await;
    db.exec("UPDATE t SET v = v + 1 WHERE id % 3 = 0").await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    // a longer VARCHAR keeps every value: nothing is read again
    db.exec("ALTER TABLE t ADD COLUMN s VARCHAR(5) DEFAULT 'ab'")
        .await;
    db.exec("ALTER TABLE t MODIFY COLUMN s VARCHAR(50) DEFAULT 'ab'")
        .await;
    db.exec("UPDATE t SET s = 'a longer value' WHERE id = 2")
        .await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    running.assert_running();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_columns_take_their_defaults_direct() {
    added_columns_take_their_defaults(Mode::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_columns_take_their_defaults_through_kafka() {
    added_columns_take_their_defaults(Mode::Kafka).await;
}

/// Inserts, updates and deletes on `table` (`id INT` key, `v INT`) until stopped; ids from `first_id`.
/// A statement that fails (a lock wait during a cut-over) is left out: the table is compared with
/// MariaDB at the end, whatever was written.
pub async fn table_writer(
    db: String,
    table: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    first_id: u64,
) -> u64 {
    use mysql_async::prelude::Queryable;
    let mut conn = admin_for(&db).await;
    conn.query_drop(format!("USE `{db}`")).await.unwrap();
    let mut next = first_id;
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let r = rand::random::<u32>() % 10;
        let some = 1 + rand::random::<u64>() % next;
        let sql = match r {
            0..=4 => {
                next += 1;
                format!("INSERT INTO {table} (id, v) VALUES ({next}, {r})")
            }
            5..=7 => format!("UPDATE {table} SET v = v + 1 WHERE id = {some}"),
            _ => format!("DELETE FROM {table} WHERE id = {some}"),
        };
        if conn.query_drop(sql).await.is_ok() {
            n += 1;
        }
    }
    n
}

fn writer_on(
    db: &TestDb,
    table: &'static str,
    first_id: u64,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<u64>,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handle = tokio::spawn(table_writer(db.name.clone(), table, stop.clone(), first_id));
    (stop, handle)
}

async fn stop_writer(
    (stop, handle): (
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        tokio::task::JoinHandle<u64>,
    ),
) {
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(handle.await.unwrap() > 0, "the writer wrote");
}

/// A pt-online-schema-change cut-over (`RENAME TABLE t TO _t_old, _t_new TO t`) with a writer running
/// before and after it, the shadow tables not captured: t is dropped in the lake and snapshotted again
/// while the stream runs, and ends equal to MySQL's t, new column included.
async fn online_schema_change_cut_over(mode: Mode) {
    let db = TestDb::new(&format!("lc_osc_{mode:?}").to_lowercase()).await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    db.exec("INSERT INTO t SELECT seq, seq FROM seq_1_to_2000")
        .await;
    let extra = format!(
        "exclude = [\"{}._*\"]\n[source.snapshot]\nchunk_size = 150",
        db.name
    );
    let (config, _) = mode_config(&db, mode, &unique_prefix("lcosc"), &extra);
    let mut running = start_mode(config.clone(), mode).await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    let writer = writer_on(&db, "t", 2000);
    db.exec("CREATE TABLE _t_new LIKE t").await;
    db.exec("ALTER TABLE _t_new ADD COLUMN w INT NOT NULL DEFAULT 3")
        .await;
    db.exec("CREATE TRIGGER pt_ins AFTER INSERT ON t FOR EACH ROW REPLACE INTO _t_new (id, v) VALUES (NEW.id, NEW.v)")
        .await;
    db.exec("CREATE TRIGGER pt_upd AFTER UPDATE ON t FOR EACH ROW REPLACE INTO _t_new (id, v) VALUES (NEW.id, NEW.v)")
        .await;
    db.exec("CREATE TRIGGER pt_del AFTER DELETE ON t FOR EACH ROW DELETE IGNORE FROM _t_new WHERE id = OLD.id")
        .await;
    db.exec("INSERT IGNORE INTO _t_new (id, v) SELECT id, v FROM t LOCK IN SHARE MODE")
        .await;
    db.exec("RENAME TABLE t TO _t_old, _t_new TO t").await;
    for trigger in ["pt_ins", "pt_upd", "pt_del"] {
        db.exec(&format!("DROP TRIGGER {trigger}")).await;
    }
    db.exec("DROP TABLE _t_old").await;
    // the writer goes on against the new t while binlake snapshots it
    db.exec("INSERT INTO t (id, v) VALUES (1000000, 1)").await;
    crate::lake::wait_for_lake(
        &config,
        &format!("{}.t", db.name),
        "id = 1000000 AND w = 3",
        300,
    )
    .await;
    stop_writer(writer).await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    running.assert_running();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_schema_change_cut_over_leaves_the_table_equal_direct() {
    online_schema_change_cut_over(Mode::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_schema_change_cut_over_leaves_the_table_equal_through_kafka() {
    online_schema_change_cut_over(Mode::Kafka).await;
}

/// A table taken out of `source.exclude` (so it joins the capture) is snapshotted while the stream
/// runs, under a writer, and a SIGKILL in the middle of that snapshot loses and doubles nothing.
async fn a_table_joining_the_capture(mode: Mode) {
    let db = TestDb::new(&format!("lc_join_{mode:?}").to_lowercase()).await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    db.exec("INSERT INTO t SELECT seq, seq FROM seq_1_to_100")
        .await;
    db.exec("CREATE TABLE u (id INT PRIMARY KEY, v INT)").await;
    db.exec("INSERT INTO u SELECT seq, seq FROM seq_1_to_12000")
        .await;
    let prefix = unique_prefix("lcjoin");
    // chunks of 1,000: each chunk is two synchronous commits, and 12 of them leave room for the kill
    let chunks = "[source.snapshot]\nchunk_size = 1000";
    let excluded = format!("exclude = [\"{}.u\"]\n{chunks}", db.name);
    let (config, path) = mode_config(&db, mode, &prefix, &excluded);
    let sink = match mode {
        Mode::Kafka => Some(start_sink(config.clone())),
        Mode::Direct => None,
    };
    let publisher_args: &[&str] = match mode {
        Mode::Direct => &[],
        Mode::Kafka => &["--sink", "kafka"],
    };
    let mut run = spawn_binlake(&path, publisher_args);
    wait_lake_equals_source(&config, &db.name, "t", 300).await;
    db.exec("UPDATE u SET v = -1 WHERE id = 1").await;
    db.exec("INSERT INTO t VALUES (1000, 1000)").await;
    crate::lake::wait_for_lake(&config, &format!("{}.t", db.name), "id = 1000", 300).await;
    assert_eq!(
        signal_and_wait(&mut run, 15).code(),
        Some(0),
        "drains on SIGTERM"
    );
    // u joins the capture, with a writer on it
    let (config, path) = mode_config(&db, mode, &prefix, chunks);
    let writer = writer_on(&db, "u", 12000);
    let mut run = spawn_binlake(&path, publisher_args);
    // DDL on a streamed table while u is read: its rows take the default, across the kill below
    db.exec("ALTER TABLE t ADD COLUMN w INT NOT NULL DEFAULT 3")
        .await;
    db.exec("INSERT INTO t VALUES (1001, 1001, 4)").await;
    let u = format!("{}.u", db.name);
    // killed once part of u is in the lake
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        // the snapshot's rows only: the writer's inserts stream in above 12,000 meanwhile
        let n = lake_count(&config, &db.name, "u", "id <= 12000").await;
        if n > 500 {
            assert!(
                n < 12_000,
                "the kill must land inside the snapshot of u ({n} rows in)"
            );
            break;
        }
        assert_alive(&mut run, "while u is snapshotted");
        assert!(
            std::time::Instant::now() < deadline,
            "u's snapshot did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal_and_wait(&mut run, 9);
    let mut run = spawn_binlake(&path, publisher_args);
    // a row the writer never touches, after the restart: once it is in, the writer may stop
    db.exec("INSERT INTO u VALUES (5000000, 1)").await;
    crate::lake::wait_for_lake(&config, &u, "id = 5000000", 300).await;
    stop_writer(writer).await;
    wait_lake_equals_source(&config, &db.name, "u", 300).await;
    wait_lake_equals_source(&config, &db.name, "t", 300).await;
    assert_alive(&mut run, "after the snapshot");
    assert_eq!(
        signal_and_wait(&mut run, 15).code(),
        Some(0),
        "drains on SIGTERM"
    );
    // t leaves the capture, loses rows meanwhile, and joins again: its old copy in the lake does not
    // survive the new snapshot
    let without_t = format!("exclude = [\"{}.t\"]\n{chunks}", db.name);
    let (_, path_without_t) = mode_config(&db, mode, &prefix, &without_t);
    let mut run = spawn_binlake(&path_without_t, publisher_args);
    db.exec("INSERT INTO u VALUES (5000001, 1)").await;
    crate::lake::wait_for_lake(&config, &u, "id = 5000001", 300).await;
    assert_eq!(
        signal_and_wait(&mut run, 15).code(),
        Some(0),
        "drains on SIGTERM"
    );
    db.exec("DELETE FROM t WHERE id % 3 = 0").await;
    db.exec("UPDATE t SET v = -v WHERE id % 3 = 1").await;
    let (_, path) = mode_config(&db, mode, &prefix, chunks);
    let mut run = spawn_binlake(&path, publisher_args);
    wait_lake_equals_source(&config, &db.name, "t", 300).await;
    wait_lake_equals_source(&config, &db.name, "u", 300).await;
    assert_alive(&mut run, "after t joined again");
    signal_and_wait(&mut run, 15);
    if let Some((cancel, handle)) = sink {
        stop_sink(cancel, handle).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_joining_the_capture_is_snapshotted_while_streaming_direct() {
    a_table_joining_the_capture(Mode::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_joining_the_capture_is_snapshotted_while_streaming_through_kafka() {
    a_table_joining_the_capture(Mode::Kafka).await;
}

/// `binlake snapshot --table` on a running connector: the table is emptied and read again while the
/// stream runs under a writer, which repairs a lake that drifted (rows changed with sql_log_bin = 0).
async fn snapshot_on_demand(mode: Mode) {
    use mysql_async::prelude::Queryable;
    let db = TestDb::new(&format!("lc_ondemand_{mode:?}").to_lowercase()).await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    db.exec("INSERT INTO t SELECT seq, seq FROM seq_1_to_3000")
        .await;
    db.exec("CREATE TABLE binlake_signal (id VARCHAR(64) PRIMARY KEY, type VARCHAR(32) NOT NULL, data VARCHAR(2048) NULL)")
        .await;
    let extra = format!(
        "signal_table = \"{}.binlake_signal\"\n[source.snapshot]\nchunk_size = 200",
        db.name
    );
    let (config, path) = mode_config(&db, mode, &unique_prefix("lcdemand"), &extra);
    let mut running = start_mode(config.clone(), mode).await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    // the signal table is binlake's, not a captured table
    assert!(
        !binlake::sinks::lake::query::list_tables(&config.lake)
            .await
            .unwrap()
            .iter()
            .any(|(_, t)| t == "binlake_signal"),
        "the signal table is not written to the lake"
    );
    let mut conn = admin_for(&db.name).await;
    conn.query_drop(format!(
        "SET SESSION sql_log_bin = 0; UPDATE `{0}`.t SET v = 0 WHERE id % 10 = 0; \
         DELETE FROM `{0}`.t WHERE id % 13 = 0; INSERT INTO `{0}`.t VALUES (5000000, 1)",
        db.name
    ))
    .await
    .unwrap();
    drop(conn);
    let ask = |table: &str| {
        std::process::Command::new(binary())
            .args(["snapshot", "--table", table, "--config"])
            .arg(&path)
            .output()
            .unwrap()
    };
    // without the grant, the refusal says which one
    let refused = ask(&format!("{}.t", db.name));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("GRANT INSERT"),
        "{stderr}"
    );
    let user = mysql_async::Opts::from_url(&env("BINLAKE_MYSQL_URL"))
        .unwrap()
        .user()
        .unwrap()
        .to_string();
    db.exec(&format!(
        "GRANT INSERT ON `{}`.binlake_signal TO '{user}'@'127.0.0.1'",
        db.name
    ))
    .await;
    let not_captured = ask("mysql.user");
    assert!(
        !not_captured.status.success(),
        "a table outside the capture is refused"
    );
    let writer = writer_on(&db, "t", 10_000);
    let asked = ask(&format!("{}.t", db.name));
    assert!(
        asked.status.success(),
        "{}",
        String::from_utf8_lossy(&asked.stderr)
    );
    // the row only the snapshot can bring
    stop_writer(writer).await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    running.assert_running();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_on_demand_repairs_the_table_while_streaming_direct() {
    snapshot_on_demand(Mode::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_on_demand_repairs_the_table_while_streaming_through_kafka() {
    snapshot_on_demand(Mode::Kafka).await;
}

/// `source.snapshot.mode = "when_needed"`: a resume position gone from the server (as after PURGE
/// BINARY LOGS) makes binlake stream from now and snapshot every table again, rows deleted meanwhile
/// included, instead of stopping.
async fn when_needed_recovers_a_purged_position(mode: Mode) {
    let db = TestDb::new(&format!("lc_purged_{mode:?}").to_lowercase()).await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)").await;
    db.exec("INSERT INTO t SELECT seq, seq FROM seq_1_to_500")
        .await;
    let prefix = unique_prefix("lcpurge");
    let extra = "[source.snapshot]\nmode = \"when_needed\"\nchunk_size = 100";
    let (config, _) = mode_config(&db, mode, &prefix, extra);
    let mut running = start_mode(config.clone(), mode).await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    running.stop().await;
    // while nothing runs: changes, and the resume position is gone
    db.exec("DELETE FROM t WHERE id % 9 = 0").await;
    db.exec("UPDATE t SET v = -v WHERE id % 4 = 0").await;
    db.exec("INSERT INTO t VALUES (600, 600)").await;
    let lost = serde_json::json!({
        "next_seq": 5_000_000u64,
        "position": {"file": "mysql-bin.000000", "pos": 4},
        "gtid": null,
        "snapshot": null
    });
    match mode {
        Mode::Direct => std::fs::write(
            db.lake_root().join("_binlake/it.checkpoint.json"),
            lost.to_string(),
        )
        .unwrap(),
        Mode::Kafka => {
            use rdkafka::producer::{FutureProducer, FutureRecord};
            let producer: FutureProducer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", crate::kafka::brokers())
                .create()
                .unwrap();
            let key = binlake::sinks::kafka::offsets::offsets_key("it");
            let value = lost.to_string();
            producer
                .send(
                    FutureRecord::to(&format!("{prefix}.binlake.offsets"))
                        .key(key.as_slice())
                        .payload(value.as_bytes()),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
    }
    let mut running = start_mode(config.clone(), mode).await;
    db.exec("INSERT INTO t VALUES (700, 700)").await;
    running.wait_equal(&config, &db.name, "t", 300).await;
    running.assert_running();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_needed_snapshots_again_after_a_purged_position_direct() {
    when_needed_recovers_a_purged_position(Mode::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_needed_snapshots_again_after_a_purged_position_through_kafka() {
    when_needed_recovers_a_purged_position(Mode::Kafka).await;
}
