//! Lake options against the real MariaDB: soft delete, flushes triggered by max rows and max bytes (not the
//! interval), and a column type change Delta cannot express (the table is read again while streaming).

use crate::common::*;
use crate::lake::{assert_lake_equals_source, start_lake, wait_for_lake, wait_lake_equals_source};
use crate::snapshot_stream::create_quotes;
use binlake::config::Config;
use binlake::sinks::lake::query;
use deltalake::arrow::util::display::array_value_to_string;
use mysql_async::prelude::*;
use std::time::{Duration, Instant};

/// The single value `sql` returns over the lake, as text.
async fn lake_value(config: &Config, sql: &str) -> String {
    let batches = query::sql(&config.lake, sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    array_value_to_string(batches[0].column(0), 0).unwrap()
}

async fn lake_count(config: &Config, table: &str) -> u64 {
    let sql = format!("SELECT count(*) FROM {table}");
    match query::sql(&config.lake, &sql).await {
        Ok(df) => match df.collect().await {
            Ok(b) => array_value_to_string(b[0].column(0), 0)
                .unwrap()
                .parse()
                .unwrap(),
            Err(_) => 0,
        },
        Err(_) => 0, // the table is not created yet
    }
}

async fn wait_for_count(config: &Config, table: &str, at_least: u64, secs: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let n = lake_count(config, table).await;
        if n >= at_least {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "{table}: {n} rows in the lake, expected at least {at_least} within {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn source_count(db: &TestDb) -> u64 {
    let mut c = admin().await;
    c.query_first(format!("SELECT COUNT(*) FROM `{}`.quotes", db.name))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_delete_keeps_deleted_rows_marked() {
    let db = TestDb::new("lakesoft").await;
    create_quotes(&db, 10).await;
    let mut config = db.config("");
    config.lake.soft_delete = true;
    let quotes = format!("{}.quotes", db.name);
    let (cancel, handle) = start_lake(config.clone());
    wait_for_lake(&config, &quotes, "id = 10", 60).await;

    db.exec("DELETE FROM quotes WHERE id IN (2, 3)").await;
    db.exec("UPDATE quotes SET qty = 7 WHERE id = 4").await;
    // a deleted key inserted again revives its row
    db.exec("INSERT INTO quotes VALUES (3, 'R', 1.00, 5)").await;
    wait_for_lake(&config, &quotes, "id = 3 AND qty = 5 AND NOT _deleted", 60).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();

    let one = |sql: String| {
        let config = config.clone();
        async move { lake_value(&config, &sql).await }
    };
    // nothing is removed physically; one row per key; live rows equal MariaDB's
    assert_eq!(one(format!("SELECT count(*) FROM {quotes}")).await, "10");
    assert_eq!(
        one(format!("SELECT count(DISTINCT id) FROM {quotes}")).await,
        "10"
    );
    assert_eq!(
        one(format!("SELECT count(*) FROM {quotes} WHERE NOT _deleted")).await,
        source_count(&db).await.to_string()
    );
    // the deleted row keeps its last values, marked deleted
    assert_eq!(
        one(format!(
            "SELECT concat(symbol, '/', CAST(qty AS VARCHAR), '/', _op, '/', CAST(_deleted AS VARCHAR)) FROM {quotes} WHERE id = 2"
        ))
        .await,
        "S2/0/d/true"
    );
    assert_eq!(
        one(format!(
            "SELECT CAST(qty AS VARCHAR) FROM {quotes} WHERE id = 4 AND NOT _deleted"
        ))
        .await,
        "7"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_flush_at_max_rows_long_before_the_interval() {
    let db = TestDb::new("lakerows").await;
    create_quotes(&db, 0).await;
    let mut config = db.config("");
    config.lake.flush_interval_ms = 600_000; // ten minutes: only the size limit can flush
    config.lake.flush_max_rows = 100;
    let quotes = format!("{}.quotes", db.name);
    let (cancel, handle) = start_lake(config.clone());
    wait_replica_registered(&db.name, config.source.server_id, 60).await;
    for id in 1..=150 {
        db.exec(&format!("INSERT INTO quotes VALUES ({id}, 'S', 1.00, 0)"))
            .await;
    }
    // whole transactions only: the first 100 go as one batch, the other 50 wait for more
    assert_eq!(wait_for_count(&config, &quotes, 100, 60).await, 100);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lake_count(&config, &quotes).await, 100);
    // one transaction larger than a batch is flushed in parts, so it never has to fit in memory whole
    db.exec("INSERT INTO quotes SELECT seq, 'T', 2.00, 1 FROM seq_1000_to_1249")
        .await;
    let n = wait_for_count(&config, &quotes, 350, 60).await;
    assert!(
        (350..400).contains(&n),
        "the 250-row transaction arrives in parts before the drain: {n} rows"
    );
    // SIGTERM-style drain commits the rest
    cancel.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(lake_count(&config, &quotes).await, 400);
    assert_lake_equals_source(&config, &db.name, "quotes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_flush_at_max_bytes_long_before_the_interval() {
    let db = TestDb::new("lakebytes").await;
    create_quotes(&db, 0).await;
    let mut config = db.config("");
    config.lake.flush_interval_ms = 600_000;
    config.lake.flush_max_bytes = 4096;
    let quotes = format!("{}.quotes", db.name);
    let (cancel, handle) = start_lake(config.clone());
    wait_replica_registered(&db.name, config.source.server_id, 60).await;
    // ~100 bytes per buffered row: a few dozen single-row transactions pass 4 KiB
    for id in 1..=100 {
        db.exec(&format!("INSERT INTO quotes VALUES ({id}, 'S', 1.00, 0)"))
            .await;
    }
    let n = wait_for_count(&config, &quotes, 1, 60).await;
    assert!(n < 100, "flushed by size, not everything at once: {n}");
    cancel.cancel();
    handle.await.unwrap().unwrap();
    assert_lake_equals_source(&config, &db.name, "quotes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_change_delta_cannot_express_reads_the_table_again() {
    let db = TestDb::new("laketype").await;
    create_quotes(&db, 5).await;
    let config = db.config("");
    let quotes = format!("{}.quotes", db.name);
    let (cancel, handle) = start_lake(config.clone());
    wait_for_lake(&config, &quotes, "id = 5", 60).await;
    // DECIMAL → VARCHAR: MySQL rewrites every row as text, Delta cannot change the column in place
    db.exec("ALTER TABLE quotes MODIFY bid VARCHAR(20) NOT NULL")
        .await;
    db.exec("UPDATE quotes SET bid = CONCAT(bid, 'x') WHERE id = 2")
        .await;
    wait_lake_equals_source(&config, &db.name, "quotes", 120).await;
    assert!(!handle.is_finished(), "the pipeline keeps running");
    cancel.cancel();
    handle.await.unwrap().unwrap();
    assert_lake_equals_source(&config, &db.name, "quotes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_maintenance_compacts_while_streaming() {
    use futures_util::TryStreamExt;
    let db = TestDb::new("lakesched").await;
    create_quotes(&db, 10).await;
    let mut config = db.config("");
    config.lake.maintain_interval_secs = 1;
    // files replaced by compaction become vacuumable at once
    config.lake.vacuum_retention_hours = 0;
    config.lake.vacuum_force = true;
    let quotes = format!("{}.quotes", db.name);
    let (cancel, handle) = start_lake(config.clone());
    wait_for_lake(&config, &quotes, "id = 10", 60).await;
    // small commits for a few maintenance intervals
    for id in 11..=20 {
        db.exec(&format!("INSERT INTO quotes VALUES ({id}, 'S', 1.00, 0)"))
            .await;
        // one commit each, across several maintenance intervals
        wait_for_lake(&config, &quotes, &format!("id = {id}"), 60).await;
    }
    wait_for_lake(&config, &quotes, "id = 20", 60).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();

    let uri = binlake::sinks::lake::table_uri(&config.lake, &db.name, "quotes").unwrap();
    let table = deltalake::open_table(deltalake::ensure_table_uri(&uri).unwrap())
        .await
        .unwrap();
    let operations: Vec<String> = table
        .history(None)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.operation)
        .collect();
    assert!(
        operations.iter().any(|o| o == "OPTIMIZE"),
        "no scheduled compaction in {operations:?}"
    );
    assert!(
        operations.iter().any(|o| o.starts_with("VACUUM")),
        "no scheduled vacuum in {operations:?}"
    );
    assert_lake_equals_source(&config, &db.name, "quotes").await;
}
