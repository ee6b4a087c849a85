//! Partitioned lake tables: rows land in the partition of their day, rows whose day changes move, the
//! lake still equals MariaDB, a MERGE reads only the partitions its stored rows live in, and a
//! partitioning that does not fit the table or the existing Delta table stops with a definite error.

use crate::common::*;
use crate::lake::{assert_lake_equals_source, lake_catch_up, start_lake};
use crate::snapshot_stream::create_quotes;
use binlake::event::{ColumnKind, ColumnSchema, TableSchema, Value};
use binlake::sinks::lake::partition::Partitioning;
use binlake::sinks::lake::table::{KeyChange, LakeTable, Prior, Progress, TableOptions};
use binlake::sinks::lake::{storage_options, table_uri};
use std::sync::Arc;

const TRADES: &str = "CREATE TABLE trades (id BIGINT PRIMARY KEY, symbol VARCHAR(8) NOT NULL, \
    price DECIMAL(12,4) NOT NULL, qty INT NOT NULL, traded_at DATETIME(6) NULL, settled_at TIMESTAMP NULL)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_lake_equals_source_and_rows_move_between_days() {
    let db = TestDb::new("lakepart").await;
    create_quotes(&db, 0).await;
    db.exec(TRADES).await;
    // snapshot rows over five days, one without a day
    db.exec(
        "INSERT INTO trades SELECT seq, CONCAT('S', seq % 7), seq / 10, seq % 100, \
         TIMESTAMP('2026-11-16 09:30:00') + INTERVAL (seq % 5) DAY + INTERVAL seq SECOND, NULL \
         FROM seq_1_to_500",
    )
    .await;
    db.exec("UPDATE trades SET traded_at = NULL WHERE id = 7")
        .await;
    let mut config = db.config("");
    let trades = format!("{}.trades", db.name);
    config
        .lake
        .partitions
        .insert(trades.clone(), "day(traded_at)".into());
    let (cancel, handle) = start_lake(config.clone());
    crate::lake::wait_for_lake(&config, &trades, "id = 500", 60).await;

    for sql in [
        // new trades today and a late one for an old day
        "INSERT INTO trades VALUES (1001, 'A', 10.5, 5, '2026-11-21 10:00:00.000001', NULL)",
        "INSERT INTO trades VALUES (1002, 'B', 11.5, 6, '2026-11-16 15:59:59.999999', '2026-11-18 00:00:00')",
        // a correction of the price only, and one that moves the trade to another day
        "UPDATE trades SET price = price + 1 WHERE id = 3",
        "UPDATE trades SET traded_at = traded_at + INTERVAL 2 DAY WHERE id = 4",
        // moved twice within one batch: the first move's before image names the stored partition
        "UPDATE trades SET traded_at = '2026-11-19 12:00:00' WHERE id = 1001",
        "UPDATE trades SET traded_at = '2026-11-20 12:00:00' WHERE id = 1001",
        // out of the NULL partition and into it
        "UPDATE trades SET traded_at = '2026-11-17 10:00:00' WHERE id = 7",
        "UPDATE trades SET traded_at = NULL WHERE id = 8",
        // cancellations, a key change and a cancelled new trade
        "DELETE FROM trades WHERE id IN (10, 11, 12)",
        "UPDATE trades SET id = 2001, traded_at = '2026-11-21 11:00:00' WHERE id = 20",
        "INSERT INTO trades VALUES (1003, 'C', 1, 1, '2026-11-21 12:00:00', NULL)",
        "DELETE FROM trades WHERE id = 1003",
        "UPDATE trades SET settled_at = '2026-11-21 23:59:59' WHERE id BETWEEN 100 AND 140",
    ] {
        db.exec(sql).await;
    }
    lake_catch_up(&db, &config, 60).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();

    assert_lake_equals_source(&config, &db.name, "trades").await;
    // every row sits in the partition of its own day
    let misplaced = count(
        &config,
        &format!("SELECT count(*) FROM {trades} WHERE _traded_at_day IS DISTINCT FROM CAST(traded_at AS DATE)"),
    )
    .await;
    assert_eq!(misplaced, 0, "rows outside their day's partition");
    assert_eq!(
        count(
            &config,
            &format!("SELECT count(*) FROM {trades} WHERE _traded_at_day IS NULL")
        )
        .await,
        1,
        "only trade 8 has no day"
    );
    // Delta records the partition column and the files live in one directory per day
    let table_dir = db.lake_root().join(&db.name).join("trades");
    let mut days: Vec<String> = std::fs::read_dir(&table_dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("_traded_at_day="))
        .collect();
    days.sort();
    assert!(
        days.contains(&"_traded_at_day=2026-11-21".to_string())
            && days.contains(&"_traded_at_day=2026-11-16".to_string()),
        "{days:?}"
    );
    let url = deltalake::ensure_table_uri(table_dir.to_str().unwrap()).unwrap();
    let t = deltalake::open_table(url).await.unwrap();
    assert_eq!(
        t.snapshot()
            .unwrap()
            .metadata()
            .partition_columns()
            .to_vec(),
        vec!["_traded_at_day".to_string()]
    );

    // a different partitioning for the existing table is refused, naming the way out
    let mut changed = config.clone();
    changed
        .lake
        .partitions
        .insert(trades.clone(), "month(traded_at)".into());
    let (_cancel, handle) = start_lake(changed);
    let err = handle.await.unwrap().unwrap_err().to_string();
    assert!(err.contains("partitioning is fixed"), "{err}");

    // a column that is not a date or time is refused before anything is written
    let mut wrong = db.config("");
    wrong.lake.root = db.dir.path().join("lake2").display().to_string();
    wrong.lake.partitions.insert(trades, "day(symbol)".into());
    let (_cancel, handle) = start_lake(wrong);
    let err = handle.await.unwrap().unwrap_err().to_string();
    assert!(err.contains("not a DATE, DATETIME or TIMESTAMP"), "{err}");
}

async fn count(config: &binlake::config::Config, sql: &str) -> u64 {
    let batches = binlake::sinks::lake::query::sql(&config.lake, sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    deltalake::arrow::util::display::array_value_to_string(batches[0].column(0), 0)
        .unwrap()
        .parse()
        .unwrap()
}

/// A lake in a temporary directory, with the default settings.
fn local_lake(dir: &tempfile::TempDir) -> binlake::config::LakeConfig {
    binlake::config::LakeConfig {
        root: dir.path().display().to_string(),
        ..Default::default()
    }
}

fn column(name: &str, kind: ColumnKind) -> ColumnSchema {
    ColumnSchema::new(name, kind)
}

/// A MERGE whose stored rows all live in one day reads that day's files only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_reads_only_the_partitions_of_stored_rows() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = local_lake(&dir);
    let schema = Arc::new(TableSchema {
        database: "p".into(),
        table: "t".into(),
        columns: vec![
            column("id", ColumnKind::BigInt),
            column("qty", ColumnKind::Int),
            column("day", ColumnKind::Date),
        ],
        key: vec![0],
        version: 1,
    });
    let partitioning = Partitioning::parse("day(day)").unwrap();
    let mut table = LakeTable::open_or_create(
        &table_uri(&cfg, "p", "t").unwrap(),
        &storage_options(&cfg),
        &schema,
        TableOptions {
            partitioning: Some(partitioning.clone()),
            ..TableOptions::new(&cfg, "test")
        },
    )
    .await
    .unwrap();
    let change = |id: i64, seq: u64, op: &'static str, qty: i64, day: u8| KeyChange {
        seq,
        op,
        schema: schema.clone(),
        row: vec![
            Value::Int(id),
            Value::Int(qty),
            Value::Date {
                year: 2026,
                month: 11,
                day,
            },
        ],
        deleted: op == "d",
        source_ts_ms: 0,
        origin: None,
    };
    // three days, one file each; all keys new, so the batch is appended without reading the table
    let load: Vec<KeyChange> = (1..=30)
        .map(|id| change(id, id as u64, "c", 0, 18 + (id % 3) as u8))
        .collect();
    let applied = table
        .merge(&load, &Prior::default(), 30, &Progress::NONE)
        .await
        .unwrap();
    assert_eq!((applied.rows, applied.files_scanned), (30, 0));

    // corrections of two rows stored on the 19th (ids 1 and 4), one moving to the 21st
    let prior = Prior {
        unknown: false,
        partitions: [Some("2026-11-19".to_string())].into(),
    };
    let batch = vec![change(1, 31, "u", 5, 19), change(4, 32, "u", 6, 21)];
    let applied = table
        .merge(&batch, &prior, 32, &Progress::NONE)
        .await
        .unwrap();
    assert_eq!(applied.files_scanned, 1, "{applied:?}");
    assert_eq!(applied.files_skipped, 2, "{applied:?}");
    assert_eq!(applied.rows_rewritten, 8, "{applied:?}");

    let rows = binlake::sinks::lake::query::sql(
        &cfg,
        "SELECT id, qty, CAST(_day_day AS VARCHAR) FROM p.t WHERE id IN (1, 4) ORDER BY id",
    )
    .await
    .unwrap()
    .collect()
    .await
    .unwrap();
    let text = deltalake::arrow::util::pretty::pretty_format_batches(&rows)
        .unwrap()
        .to_string();
    assert!(text.contains("| 1  | 5   | 2026-11-19"), "{text}");
    assert!(text.contains("| 4  | 6   | 2026-11-21"), "{text}");
    let config = binlake::config::Config {
        lake: cfg.clone(),
        ..binlake::config::Config::parse(
            "name = \"t\"\n[source]\nuser = \"u\"\ninclude = [\"p.*\"]\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap()
    };
    assert_eq!(count(&config, "SELECT count(*) FROM p.t").await, 30);
}

/// A batch whose events cannot say which keys are stored (Kafka mode, snapshot reads) is appended when
/// the table holds none of its keys and merged when it holds one; an append probed over a table state
/// that another writer has since moved fails as a conflict instead of doubling a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_are_probed_before_an_append() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = local_lake(&dir);
    let schema = Arc::new(TableSchema {
        database: "p".into(),
        table: "probe".into(),
        columns: vec![
            column("id", ColumnKind::BigInt),
            column("qty", ColumnKind::Int),
        ],
        key: vec![0],
        version: 1,
    });
    let open = || async {
        LakeTable::open_or_create(
            &table_uri(&cfg, "p", "probe").unwrap(),
            &storage_options(&cfg),
            &schema,
            TableOptions::new(&cfg, "test"),
        )
        .await
        .unwrap()
    };
    let mut table = open().await;
    let change = |id: i64, seq: u64, qty: i64| KeyChange {
        seq,
        op: "c",
        schema: schema.clone(),
        row: vec![Value::Int(id), Value::Int(qty)],
        deleted: false,
        source_ts_ms: 0,
        origin: None,
    };
    let unknown = Prior {
        unknown: true,
        ..Prior::default()
    };
    let evens: Vec<KeyChange> = (1..=30).map(|i| change(2 * i, i as u64, 0)).collect();
    let applied = table
        .merge(&evens, &unknown, 30, &Progress::NONE)
        .await
        .unwrap();
    assert!(applied.appended, "{applied:?}");
    // keys inside the stored range, none of them stored: still an append
    let odds: Vec<KeyChange> = (1..=30)
        .map(|i| change(2 * i - 1, 30 + i as u64, 0))
        .collect();
    let applied = table
        .merge(&odds, &unknown, 60, &Progress::NONE)
        .await
        .unwrap();
    assert!(applied.appended, "{applied:?}");
    // one stored key among new ones: the MERGE updates it
    let mixed = vec![change(5, 111, 7), change(500, 112, 0)];
    let applied = table
        .merge(&mixed, &unknown, 112, &Progress::NONE)
        .await
        .unwrap();
    assert!(!applied.appended, "{applied:?}");

    // a second handle, loaded now, then left behind by a commit of key 600 through the first
    let mut stale = open().await;
    let applied = table
        .merge(&[change(600, 113, 1)], &unknown, 113, &Progress::NONE)
        .await
        .unwrap();
    assert!(applied.appended, "{applied:?}");
    let err = stale
        .merge(&[change(600, 114, 2)], &unknown, 114, &Progress::NONE)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        binlake::sinks::lake::LakeErrorKind::Conflict,
        "{err}"
    );
    stale.reload().await.unwrap();
    let applied = stale
        .merge(&[change(600, 114, 2)], &unknown, 114, &Progress::NONE)
        .await
        .unwrap();
    assert!(!applied.appended, "{applied:?}");

    let ctx = deltalake::datafusion::prelude::SessionContext::new();
    stale.reload().await.unwrap();
    ctx.register_table("t", stale.table.table_provider().await.unwrap())
        .unwrap();
    let rows = ctx
        .sql(
            "SELECT count(*), count(DISTINCT id), sum(CASE WHEN id = 5 THEN qty END), \
              sum(CASE WHEN id = 600 THEN qty END) FROM t",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let cells: Vec<String> = (0..4)
        .map(|i| {
            deltalake::arrow::util::display::array_value_to_string(rows[0].column(i), 0).unwrap()
        })
        .collect();
    // every key once; key 5 updated by the MERGE, key 600 by the MERGE after the conflict
    assert_eq!(cells, ["62", "62", "7", "2"]);
}
