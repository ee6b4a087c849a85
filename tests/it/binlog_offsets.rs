//! A transaction that ends past 4 GiB in its binlog file. The replication protocol's offsets are 4 bytes,
//! so no replica can ask for that end position: the checkpoint must name an earlier boundary and re-read,
//! not re-emit, what lies between. (Such a transaction is followed at once by a rotation, so only a stop
//! in that instant, i.e. a checkpoint stored there, meets the unaddressable position.)

use crate::common::*;
use crate::lake::{query_cells, wait_for_lake};
use binlake::sinks::lake::ResumeMarker;
use mysql_async::prelude::*;

/// Rows of 1 MiB in one transaction: just past 4 GiB of binlog.
const WIDE_ROWS: u64 = 4_200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_ending_past_4_gib_resumes_without_loss_or_repeats() {
    let db = TestDb::on_big("past4g").await;
    // BLACKHOLE: the rows exist only in the binlog, which is all binlake reads; InnoDB would need
    // minutes to store 4 GiB here. The payload is excluded, so the lake stays small.
    db.exec("CREATE TABLE wide (id INT PRIMARY KEY, pad LONGTEXT NOT NULL) ENGINE=BLACKHOLE")
        .await;
    db.exec("CREATE TABLE marks (id INT PRIMARY KEY)").await;
    let extra = format!("exclude_columns = [\"{}.wide.pad\"]", db.name);
    let config_path = db.config_file(&extra);
    let config = binlake::config::Config::load(&config_path).unwrap();
    let (wide, marks) = (format!("{}.wide", db.name), format!("{}.marks", db.name));

    let mut run = spawn_binlake(&config_path, &[]);
    db.exec("INSERT INTO marks VALUES (1)").await;
    wait_for_lake(&config, &marks, "id = 1", 120).await;

    let mut conn = admin_for(&db.name).await;
    conn.query_drop(format!("USE `{}`", db.name)).await.unwrap();
    conn.query_drop("SET SESSION max_statement_time = 0")
        .await
        .unwrap();
    let mut tx = conn.start_transaction(Default::default()).await.unwrap();
    for first in (1..=WIDE_ROWS).step_by(300) {
        let last = (first + 299).min(WIDE_ROWS);
        tx.query_drop(format!(
            "INSERT INTO wide SELECT seq, REPEAT('x', 1048576) FROM seq_{first}_to_{last}"
        ))
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    wait_for_lake(&config, &wide, &format!("id = {WIDE_ROWS}"), 600).await;
    assert_alive(&mut run, "after the transaction past 4 GiB");
    assert!(signal_and_wait(&mut run, 15).success(), "graceful stop");

    // the stored checkpoint names a position a replica can ask for, and what follows it up to the
    // transaction's true end is marked as delivered
    let cp = ResumeMarker::new(&config.lake, "it")
        .unwrap()
        .load()
        .await
        .unwrap()
        .expect("a resume checkpoint");
    assert!(
        cp.position.pos <= u32::MAX as u64,
        "resume position {} cannot be addressed",
        cp.position
    );
    let replay = cp
        .xa
        .as_ref()
        .expect("the transaction's end is kept as delivered");
    assert!(
        replay.delivered.pos > u32::MAX as u64,
        "delivered up to {} (the true end, past 4 GiB)",
        replay.delivered
    );

    // resumed: the big transaction is read again without emitting, then the stream goes on
    let mut run = spawn_binlake(&config_path, &[]);
    db.exec("INSERT INTO marks VALUES (2)").await;
    wait_for_lake(&config, &marks, "id = 2", 600).await;
    assert_alive(&mut run, "after resuming");
    assert!(signal_and_wait(&mut run, 15).success(), "graceful stop");
    let counts = query_cells(
        &config,
        &format!("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM {wide}"),
    )
    .await;
    let row = counts.into_iter().next().expect("one row");
    let n = WIDE_ROWS.to_string();
    assert_eq!(
        row,
        [n.as_str(), n.as_str(), "1", n.as_str()],
        "every row once"
    );
    // `_seq`s stay contiguous: the re-read after the restart emitted nothing twice (a re-emitted row
    // would have taken a fresh `_seq`, pushing the later mark up)
    let seqs: Vec<u64> = query_cells(
        &config,
        &format!("SELECT CAST(_seq AS BIGINT) FROM {marks} ORDER BY id"),
    )
    .await
    .iter()
    .map(|r| r[0].parse().unwrap())
    .collect();
    assert_eq!(seqs.len(), 2, "marks 1 and 2");
    assert_eq!(seqs[1] - seqs[0], WIDE_ROWS + 1, "marks' _seqs {seqs:?}");

    // the 4 GiB file is only needed by this test
    conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
    let logs: Vec<(String, u64)> = conn.query("SHOW BINARY LOGS").await.unwrap();
    let last = &logs.last().expect("binary logs").0;
    conn.query_drop(format!("PURGE BINARY LOGS TO '{last}'"))
        .await
        .unwrap();
}
