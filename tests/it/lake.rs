//! The lake equals the source: after a mixed workload (type matrix, updates, deletes, key changes, DDL,
//! truncate) and after SIGKILLs at random moments, every Delta table equals its MariaDB table — read
//! through binlake (DataFusion) and through DuckDB's delta extension.

use crate::common::*;
use crate::snapshot_stream::{catch_up, create_quotes, writer};
use binlake::config::Config;
use binlake::pipeline;
use binlake::sinks::lake::{arrow::build_column, batch::LakeSink, query};
use deltalake::arrow::array::{Array, ArrayRef};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::arrow::util::display::array_value_to_string;
use mysql_async::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub fn start_lake(
    config: Config,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), pipeline::PipelineError>>,
) {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let handle = tokio::spawn(async move {
        let mut sink = LakeSink::new(&config)
            .await
            .map_err(binlake::sinks::SinkError::from)?;
        pipeline::run(&config, &mut sink, c).await
    });
    (cancel, handle)
}

/// `catch_up` observed through the lake's quotes table.
pub async fn lake_catch_up(db: &TestDb, config: &Config, secs: u64) {
    let quotes = format!("{}.quotes", db.name);
    catch_up(db, secs, |id, qty| {
        let (config, quotes) = (config.clone(), quotes.clone());
        async move { lake_has(&config, &quotes, &format!("id = {id} AND qty = {qty}")).await }
    })
    .await;
}

/// True when `SELECT count(*) … WHERE cond` over the lake returns 1.
pub async fn lake_has(config: &Config, table: &str, cond: &str) -> bool {
    let Ok(df) = query::sql(
        &config.lake,
        &format!("SELECT count(*) AS n FROM {table} WHERE {cond}"),
    )
    .await
    else {
        return false;
    };
    let Ok(batches) = df.collect().await else {
        return false;
    };
    batches
        .first()
        .map(|b| array_value_to_string(b.column(0), 0).unwrap())
        == Some("1".into())
}

/// Waits until `SELECT count(*) … WHERE cond` over the lake returns 1.
pub async fn wait_for_lake(config: &Config, table: &str, cond: &str, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(df) = query::sql(
            &config.lake,
            &format!("SELECT count(*) AS n FROM {table} WHERE {cond}"),
        )
        .await
        {
            if let Ok(batches) = df.collect().await {
                if batches
                    .first()
                    .map(|b| array_value_to_string(b.column(0), 0).unwrap())
                    == Some("1".into())
                {
                    return;
                }
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "lake did not show {table} WHERE {cond} within {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every row's cells as text (`NULL` for nulls), in the batches' order.
pub fn cells(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut rows = vec![];
    for b in batches {
        for r in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(r) {
                            "NULL".to_string()
                        } else {
                            array_value_to_string(c, r).unwrap()
                        }
                    })
                    .collect(),
            );
        }
    }
    rows
}

/// The rows `sql` returns over the lake, as text cells.
pub async fn query_cells(config: &Config, sql: &str) -> Vec<Vec<String>> {
    let batches = query::sql(&config.lake, sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    cells(&batches)
}

fn rows_as_text(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows: Vec<String> = cells(batches).iter().map(|r| r.join(" | ")).collect();
    rows.sort();
    rows
}

/// Keys (of column `key`, as text) only MariaDB's `db.table` has, and `[key, _op, _seq]` of the rows only
/// the lake has.
pub async fn differing_keys(
    config: &Config,
    db: &str,
    table: &str,
    key: &str,
) -> (Vec<String>, Vec<[String; 3]>) {
    let lake = query_cells(
        config,
        &format!(
            "SELECT CAST(\"{key}\" AS VARCHAR), _op, _seq FROM {}",
            lake_name(db, table)
        ),
    )
    .await;
    let mysql: std::collections::BTreeSet<String> = {
        let mut c = admin_for(db).await;
        let v: Vec<String> = c
            .query(format!(
                "SELECT CAST(`{key}` AS CHAR) FROM `{}`.`{}`",
                db.replace('`', "``"),
                table.replace('`', "``")
            ))
            .await
            .unwrap();
        v.into_iter().collect()
    };
    let in_lake: std::collections::BTreeSet<&String> = lake.iter().map(|r| &r[0]).collect();
    let only_source = mysql
        .iter()
        .filter(|k| !in_lake.contains(k))
        .cloned()
        .collect();
    let mut only_lake: Vec<[String; 3]> = lake
        .into_iter()
        .filter(|r| !mysql.contains(&r[0]))
        .map(|r| [r[0].clone(), r[1].clone(), r[2].clone()])
        .collect();
    only_lake.sort();
    (only_source, only_lake)
}

/// The MariaDB table as the lake should hold it: SELECT, decode, and map each value with the documented
/// lake mapping onto the given Delta columns.
async fn expected_batch(db: &str, table: &str, lake_fields: &[Field]) -> RecordBatch {
    try_expected_batch(db, table, lake_fields)
        .await
        .unwrap_or_else(|e| panic!("{db}.{table}: {e}"))
}

/// As `expected_batch`; `Err` when a MariaDB value does not fit the lake's column (a type change the
/// lake has not caught up with yet).
async fn try_expected_batch(
    db: &str,
    table: &str,
    lake_fields: &[Field],
) -> Result<RecordBatch, String> {
    let (schema, rows) = select_rows(db, table).await;
    let arrays: Vec<ArrayRef> = lake_fields
        .iter()
        .map(|f| {
            let idx = schema.column_index(f.name());
            let values: Vec<Option<&binlake::event::Value>> =
                rows.iter().map(|r| idx.map(|i| &r[i])).collect();
            build_column(f.name(), f.data_type(), &values).map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    Ok(RecordBatch::try_new(Arc::new(Schema::new(lake_fields.to_vec())), arrays).unwrap())
}

/// `"db"."table"` for SQL over the lake (DataFusion keeps quoted names as they are).
pub fn lake_name(db: &str, table: &str) -> String {
    format!(
        "\"{}\".\"{}\"",
        db.replace('"', "\"\""),
        table.replace('"', "\"\"")
    )
}

/// Whether the Delta table equals the MariaDB table now (through DataFusion); `Err` says how it
/// differs. For waiting until the lake caught up; `assert_lake_equals_source` then checks it fully.
pub async fn lake_matches_source(config: &Config, db: &str, table: &str) -> Result<(), String> {
    let name = lake_name(db, table);
    let df = query::sql(&config.lake, &format!("SELECT * FROM {name}"))
        .await
        .map_err(|e| e.to_string())?;
    let fields: Vec<Field> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let ty = match f.data_type() {
                DataType::Utf8View => DataType::Utf8,
                DataType::BinaryView => DataType::Binary,
                other => other.clone(),
            };
            Field::new(f.name(), ty, true)
        })
        .collect();
    let mut conn = admin_for(db).await;
    let live: Vec<String> = conn
        .exec("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (db, table))
        .await
        .map_err(|e| e.to_string())?;
    // a column MariaDB has and the lake lacks is a difference too
    if let Some(missing) = live.iter().find(|c| !fields.iter().any(|f| f.name() == *c)) {
        return Err(format!("the lake has no column `{missing}`"));
    }
    let fields: Vec<Field> = fields
        .into_iter()
        .filter(|f| live.contains(f.name()))
        .collect();
    let names: Vec<String> = fields.iter().map(|f| format!("\"{}\"", f.name())).collect();
    let actual = query::sql(
        &config.lake,
        &format!("SELECT {} FROM {name}", names.join(", ")),
    )
    .await
    .map_err(|e| e.to_string())?
    .collect()
    .await
    .map_err(|e| e.to_string())?;
    let expected = try_expected_batch(db, table, &fields).await?;
    let (got, want) = (
        rows_as_text(&actual),
        rows_as_text(std::slice::from_ref(&expected)),
    );
    if got != want {
        let first = got
            .iter()
            .zip(&want)
            .find(|(g, w)| g != w)
            .map(|(g, w)| format!("; first difference: lake `{g}`, MariaDB `{w}`"))
            .unwrap_or_default();
        return Err(format!(
            "{} rows in Delta, {} in MariaDB{first}",
            got.len(),
            want.len()
        ));
    }
    Ok(())
}

/// Waits until the Delta table equals the MariaDB table, then asserts it fully (DuckDB too).
pub async fn wait_lake_equals_source(config: &Config, db: &str, table: &str, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match lake_matches_source(config, db, table).await {
            Ok(()) => break,
            Err(why) => assert!(
                std::time::Instant::now() < deadline,
                "{db}.{table}: the lake did not equal MariaDB within {secs}s: {why}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_lake_equals_source(config, db, table).await;
}

/// Asserts the Delta table equals the MariaDB table, through DataFusion and through DuckDB.
pub async fn assert_lake_equals_source(config: &Config, db: &str, table: &str) {
    let name = lake_name(db, table);
    let df = query::sql(&config.lake, &format!("SELECT * FROM {name}"))
        .await
        .unwrap();
    let fields: Vec<Field> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            // DataFusion reads strings and binaries as view types; the stored Delta type is the plain one
            let ty = match f.data_type() {
                DataType::Utf8View => DataType::Utf8,
                DataType::BinaryView => DataType::Binary,
                other => other.clone(),
            };
            Field::new(f.name(), ty, true)
        })
        .collect();
    // Columns dropped in MariaDB stay in Delta with their last values (null for rows written since):
    // compare the columns MariaDB still has.
    let mut conn = admin_for(db).await;
    let live: Vec<String> = conn
        .exec("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (db, table))
        .await
        .unwrap();
    let fields: Vec<Field> = fields
        .into_iter()
        .filter(|f| live.contains(f.name()))
        .collect();
    let names: Vec<String> = fields.iter().map(|f| format!("\"{}\"", f.name())).collect();
    let actual = query::sql(
        &config.lake,
        &format!("SELECT {} FROM {name}", names.join(", ")),
    )
    .await
    .unwrap()
    .collect()
    .await
    .unwrap();
    let expected = expected_batch(db, table, &fields).await;
    let (got, want) = (
        rows_as_text(&actual),
        rows_as_text(std::slice::from_ref(&expected)),
    );
    if got.len() != want.len() {
        // show which keys differ, with their lake bookkeeping, before failing
        let (only_source, only_lake) = differing_keys(config, db, table, fields[0].name()).await;
        eprintln!(
            "{} keys only in MariaDB, e.g. {:?}; {} keys only in Delta (key, _op, _seq), e.g. {:?}",
            only_source.len(),
            &only_source[..only_source.len().min(40)],
            only_lake.len(),
            &only_lake[..only_lake.len().min(40)]
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{db}.{table}: {} rows in Delta, {} in MariaDB",
        got.len(),
        want.len()
    );
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "{db}.{table}: Delta row differs from MariaDB");
    }

    // Independent reader: DuckDB's delta_scan against the expected rows written as Parquet (local lakes;
    // DuckDB would need its httpfs extension, which is not on PyPI, to reach S3).
    if config.lake.root.starts_with("s3://") {
        return;
    }
    let parquet = config.lake.root.clone()
        + &format!(
            "/../expected_{}.parquet",
            binlake::names::encode(table).unwrap()
        );
    let file = std::fs::File::create(&parquet).unwrap();
    let mut w =
        deltalake::parquet::arrow::ArrowWriter::try_new(file, expected.schema(), None).unwrap();
    w.write(&expected).unwrap();
    w.close().unwrap();
    let columns: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/delta_diff.py"
        ))
        .arg(binlake::sinks::lake::table_uri(&config.lake, db, table).unwrap())
        .arg(&parquet)
        .arg(columns.join(","))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "duckdb check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n: Vec<usize> = stdout
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(
        n[0], 0,
        "{db}.{table}: DuckDB sees {} Delta rows not in MariaDB",
        n[0]
    );
    assert_eq!(n[1], 0, "{db}.{table}: DuckDB misses {} MariaDB rows", n[1]);
    assert_eq!(n[2], n[3], "{db}.{table}: duplicate keys in Delta");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_equals_source_after_mixed_workload() {
    let db = TestDb::new("lakemix").await;
    let mut conn = admin().await;
    conn.query_drop(format!("USE `{}`", db.name)).await.unwrap();
    conn.query_drop("SET SESSION sql_mode = ''").await.unwrap();
    for (name, cols) in crate::types::TABLES {
        conn.query_drop(format!(
            "CREATE TABLE {name} ({cols}) CHARACTER SET utf8mb4"
        ))
        .await
        .unwrap();
    }
    for sql in crate::types::INSERTS {
        conn.query_drop(*sql).await.unwrap();
    }
    create_quotes(&db, 2000).await;
    let config = db.config("");
    let (cancel, handle) = start_lake(config.clone());
    // snapshot first, then changes through the binlog while it streams
    wait_for_lake(&config, &format!("{}.ints", db.name), "id = 2", 60).await;
    for sql in crate::types::CHANGES {
        conn.query_drop(*sql).await.unwrap();
    }
    for sql in [
        "ALTER TABLE strs ADD COLUMN extra INT",
        "UPDATE strs SET extra = 7 WHERE id = 2",
        "INSERT INTO strs (id, c, extra) VALUES (9, 'new', 9)",
        "ALTER TABLE nums DROP COLUMN f",
        "INSERT INTO nums (id, d10) VALUES (9, '1.25')",
        "TRUNCATE TABLE bins",
        "INSERT INTO bins (id, vb) VALUES (7, X'07')",
    ] {
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let w = tokio::spawn(writer(db.name.clone(), stop.clone(), 2000));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    w.await.unwrap();
    lake_catch_up(&db, &config, 60).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();

    for (name, _) in crate::types::TABLES {
        assert_lake_equals_source(&config, &db.name, name).await;
    }
    // the dropped column stays, null for rows written after the drop
    wait_for_lake(
        &config,
        &format!("{}.nums", db.name),
        "id = 9 AND f IS NULL",
        1,
    )
    .await;
    wait_for_lake(
        &config,
        &format!("{}.nums", db.name),
        "id = 1 AND f IS NOT NULL",
        1,
    )
    .await;
    wait_for_lake(
        &config,
        &format!("{}.strs", db.name),
        "id = 2 AND extra = 7",
        1,
    )
    .await;
    assert_lake_equals_source(&config, &db.name, "quotes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_survives_sigkill_at_random_moments() {
    let db = TestDb::new("lakekill").await;
    create_quotes(&db, 20_000).await;
    let config_path = db.config_file("[source.snapshot]\nchunk_size = 2000");
    let config = Config::load(&config_path).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let w = tokio::spawn(writer(db.name.clone(), stop.clone(), 20_000));
    let spawn = || {
        std::process::Command::new(binary())
            .args(["run", "--config"])
            .arg(&config_path)
            .env("BINLAKE_LOG", "error")
            .spawn()
            .unwrap()
    };
    let log =
        binlake::sinks::lake::table_uri(&config.lake, &db.name, "quotes").unwrap() + "/_delta_log";
    let commits = || {
        std::fs::read_dir(&log)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
                })
                .count()
            })
            .unwrap_or(0)
    };
    // DDL between the kills, under the writer: a column added with a default (backfilled), a type
    // change (the table read again while streaming, so a later kill lands inside that snapshot), and a
    // TRUNCATE
    let ddl = [
        None,
        Some("ALTER TABLE quotes ADD COLUMN venue VARCHAR(8) NOT NULL DEFAULT 'XNYS'"),
        Some("ALTER TABLE quotes MODIFY COLUMN qty BIGINT NOT NULL"),
        Some("TRUNCATE TABLE quotes"),
    ];
    for (round, statement) in ddl.into_iter().enumerate() {
        if let Some(sql) = statement {
            db.exec(sql).await;
        }
        let before = commits();
        let mut child = spawn();
        // the kill lands while this process writes: it has committed, and goes on committing
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while commits() <= before {
            assert_alive(&mut child, &format!("before kill {round}"));
            assert!(
                std::time::Instant::now() < deadline,
                "no commit within 90 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 1500)).await;
        assert_alive(&mut child, &format!("at kill {round}"));
        child.kill().unwrap(); // SIGKILL: before, during or after a commit
        child.wait().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    w.await.unwrap();
    let mut child = spawn();
    lake_catch_up(&db, &config, 90).await;
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success(), "graceful stop exits 0");
    assert_lake_equals_source(&config, &db.name, "quotes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_lake_on_moto_with_glue_registration() {
    let endpoint = env("BINLAKE_TEST_S3_ENDPOINT");
    let bucket = format!("binlake-it-{}", rand::random::<u32>());
    let made = std::process::Command::new("python3")
        .args(["-c", "import boto3,sys; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1').create_bucket(Bucket=sys.argv[2])"])
        .args([&endpoint, &bucket])
        .status()
        .unwrap();
    assert!(made.success(), "bucket created on moto");
    let db = TestDb::new("s3glue").await;
    create_quotes(&db, 500).await;
    let prefix = format!("it{}_", rand::random::<u16>());
    let text = db.config_text("").replace(
        &format!("root = \"{}\"\nflush_interval_ms = 200", db.lake_root().display()),
        &format!(
            "root = \"s3://{bucket}/lake\"\nflush_interval_ms = 200\n[lake.s3]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\n[lake.glue]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\ndatabase_prefix = \"{prefix}\""
        ),
    );
    let config = Config::parse(&text, std::path::Path::new("s3.toml")).unwrap();
    let (cancel, handle) = start_lake(config.clone());
    let quotes = format!("{}.quotes", db.name);
    wait_for_lake(&config, &quotes, "id = 500", 60).await;
    db.exec("ALTER TABLE quotes ADD COLUMN venue VARCHAR(8)")
        .await;
    db.exec("INSERT INTO quotes VALUES (501, 'S3', 1.00, 1, 'XNAS')")
        .await;
    db.exec("DELETE FROM quotes WHERE id = 7").await;
    db.exec("UPDATE quotes SET bid = 2.50 WHERE id = 8").await;
    wait_for_lake(&config, &quotes, "id = 501 AND venue = 'XNAS'", 60).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();
    assert_lake_equals_source(&config, &db.name, "quotes").await;
    // a restart registers again: idempotent, the same single table
    let (cancel, handle) = start_lake(config.clone());
    db.exec("INSERT INTO quotes VALUES (502, 'S3', 1.00, 1, 'XNYS')")
        .await;
    wait_for_lake(&config, &quotes, "id = 502", 60).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();
    assert_lake_equals_source(&config, &db.name, "quotes").await;

    // Glue: database, external DELTA table at the table's S3 location, columns in sync (incl. the new one)
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .load()
        .await;
    let glue = aws_sdk_glue::Client::new(&conf);
    let t = glue
        .get_table()
        .database_name(format!("{prefix}{}", db.name).to_ascii_lowercase())
        .name("quotes")
        .send()
        .await
        .expect("Glue table registered")
        .table
        .unwrap();
    assert_eq!(t.table_type(), Some("EXTERNAL_TABLE"));
    let tables = glue
        .get_tables()
        .database_name(format!("{prefix}{}", db.name).to_ascii_lowercase())
        .send()
        .await
        .unwrap();
    assert_eq!(
        tables.table_list().len(),
        1,
        "one Glue table after a restart"
    );
    let params = t.parameters().unwrap();
    assert_eq!(params.get("table_type").map(String::as_str), Some("DELTA"));
    let sd = t.storage_descriptor().unwrap();
    assert_eq!(
        sd.location(),
        Some(format!("s3://{bucket}/lake/{}/quotes", db.name).as_str())
    );
    let cols: Vec<(String, String)> = sd
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.r#type().unwrap_or("").to_string()))
        .collect();
    for want in [
        ("id", "decimal(20,0)"),
        ("symbol", "string"),
        ("bid", "decimal(12,2)"),
        ("qty", "int"),
        ("venue", "string"),
        ("_seq", "bigint"),
    ] {
        assert!(
            cols.contains(&(want.0.to_string(), want.1.to_string())),
            "Glue column {want:?} missing from {cols:?}"
        );
    }

    // DROP TABLE takes the table out of Glue; created again, it comes back with its new columns
    let glue_db = format!("{prefix}{}", db.name).to_ascii_lowercase();
    let glue_columns = |t: aws_sdk_glue::types::Table| -> Vec<String> {
        t.storage_descriptor()
            .unwrap()
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect()
    };
    let (cancel, handle) = start_lake(config.clone());
    // streaming first (a start with no table to capture fails its preflight)
    db.exec("INSERT INTO quotes VALUES (503, 'S3', 1.00, 1, 'XNYS')")
        .await;
    wait_for_lake(&config, &quotes, "id = 503", 60).await;
    db.exec("DROP TABLE quotes").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let got = glue
            .get_table()
            .database_name(&glue_db)
            .name("quotes")
            .send()
            .await;
        match got {
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_entity_not_found_exception()) =>
            {
                break
            }
            Err(e) => panic!("Glue: {e:?}"),
            Ok(_) => {}
        }
        if handle.is_finished() {
            panic!("the pipeline stopped: {:?}", handle.await);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped table stayed in Glue for 120 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    db.exec("CREATE TABLE quotes (id BIGINT UNSIGNED PRIMARY KEY, sym VARCHAR(8))")
        .await;
    db.exec("INSERT INTO quotes VALUES (1, 'AGAIN')").await;
    wait_for_lake(&config, &quotes, "id = 1 AND sym = 'AGAIN'", 120).await;
    let again = glue
        .get_table()
        .database_name(&glue_db)
        .name("quotes")
        .send()
        .await
        .expect("registered again")
        .table
        .unwrap();
    let cols = glue_columns(again);
    assert!(
        cols.contains(&"sym".to_string()) && !cols.contains(&"bid".to_string()),
        "Glue columns of the new table: {cols:?}"
    );
    cancel.cancel();
    handle.await.unwrap().unwrap();
    assert_lake_equals_source(&config, &db.name, "quotes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_during_the_snapshot_is_retried_and_lands_in_the_lake() {
    let db = TestDb::new("lakeddlsnap").await;
    create_quotes(&db, 100_000).await;
    // 500 chunks, each its own commit: long enough that a loaded machine still lands the ALTER inside it
    let config = db.config("[source.snapshot]\nchunk_size = 200");
    let (cancel, handle) = start_lake(config.clone());
    let quotes = format!("{}.quotes", db.name);
    // the snapshot has begun (its first chunk is in the lake) and has not finished: watched on the
    // Delta log's files, which a loaded machine still sees at once (a query may take longer than the
    // whole snapshot)
    let log = std::path::PathBuf::from(
        binlake::sinks::lake::table_uri(&config.lake, &db.name, "quotes").unwrap(),
    )
    .join("_delta_log");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !log.join("00000000000000000001.json").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no first chunk in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    db.exec("ALTER TABLE quotes ADD COLUMN note VARCHAR(10) DEFAULT NULL")
        .await;
    assert!(
        !lake_has(&config, &quotes, "id = 100000").await,
        "the ALTER ran after the snapshot had finished"
    );
    db.exec("UPDATE quotes SET note = 'n' WHERE id % 1000 = 0")
        .await;
    db.exec("ALTER TABLE quotes DROP COLUMN note").await;
    db.exec("DELETE FROM quotes WHERE id % 997 = 0").await;
    lake_catch_up(&db, &config, 90).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();
    assert_lake_equals_source(&config, &db.name, "quotes").await;
}

pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        status,
        buf.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_sigterm_drain() {
    let db = TestDb::new("lakeobs").await;
    create_quotes(&db, 100).await;
    // a port nobody else holds: bind one, free it, hand it to the child
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = db.dir.path().join("obs.toml");
    std::fs::write(
        &path,
        db.config_text("").replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        ),
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    let mut child = std::process::Command::new(binary())
        .args(["run", "--config"])
        .arg(&path)
        .env("BINLAKE_LOG", "error")
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while http_get(port, "/readyz").await.map(|r| r.0) != Some(200) {
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(http_get(port, "/healthz").await.unwrap().0, 200);
    // the container's health check (no HTTP client in the image)
    let health = || {
        std::process::Command::new(binary())
            .args(["health", "--timeout-secs", "2", "--url"])
            .arg(format!("http://127.0.0.1:{port}/readyz"))
            .status()
            .unwrap()
    };
    assert!(health().success(), "binlake health on a ready process");
    let quotes = format!("{}.quotes", db.name);
    lake_catch_up(&db, &config, 60).await;
    let (status, body) = http_get(port, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    for metric in [
        format!("binlake_events_total{{op=\"r\",table=\"{quotes}\"}} 100"),
        format!("binlake_lake_rows_merged_total{{table=\"{quotes}\"}}"),
        format!("binlake_lag_ms{{table=\"{quotes}\"}}"),
        "binlake_lake_commit_seconds_bucket".to_string(),
        // snapshot progress: rows read, and the estimate set to the rows read once the table finished
        format!("binlake_snapshot_rows_total{{table=\"{quotes}\"}} 100"),
        format!("binlake_snapshot_rows_estimate{{table=\"{quotes}\"}} 100"),
        "binlake_buffered_bytes ".to_string(),
        "binlake_source_lag_seconds ".to_string(),
    ] {
        assert!(body.contains(&metric), "missing {metric} in\n{body}");
    }

    // SIGTERM right after a burst of writes: binlake drains, commits and exits cleanly within 25 s.
    for i in 0..50 {
        db.exec(&format!(
            "INSERT INTO quotes VALUES ({}, 'T', 1.00, {i})",
            10_000 + i
        ))
        .await;
    }
    let stopped = std::time::Instant::now();
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful stop exits 0, got {status}");
    assert!(
        stopped.elapsed() < Duration::from_secs(25),
        "drain took {:?}",
        stopped.elapsed()
    );
    assert!(
        !health().success(),
        "binlake health fails once the process is gone"
    );
    // what was read before the stop is committed; a restart continues from there with nothing lost or doubled
    let mut child = std::process::Command::new(binary())
        .args(["run", "--config"])
        .arg(&path)
        .env("BINLAKE_LOG", "error")
        .spawn()
        .unwrap();
    lake_catch_up(&db, &config, 60).await;
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_lake_equals_source(&config, &db.name, "quotes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintain_compacts_small_files_and_keeps_the_data() {
    let db = TestDb::new("lakemaint").await;
    create_quotes(&db, 100).await;
    let mut config = db.config("");
    config.lake.checkpoint_every = 3;
    let (cancel, handle) = start_lake(config.clone());
    wait_for_lake(&config, &format!("{}.quotes", db.name), "id = 100", 60).await;
    // one small commit per flush interval
    for i in 0..6 {
        db.exec(&format!(
            "INSERT INTO quotes VALUES ({}, 'M', 1.00, {i})",
            1000 + i
        ))
        .await;
        db.exec(&format!(
            "UPDATE quotes SET qty = qty + 1 WHERE id = {}",
            1 + i
        ))
        .await;
        // one small commit per round
        wait_for_lake(
            &config,
            &format!("{}.quotes", db.name),
            &format!("id = {}", 1000 + i),
            60,
        )
        .await;
    }
    let quotes = format!("{}.quotes", db.name);
    lake_catch_up(&db, &config, 60).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();

    let out = std::process::Command::new(binary())
        .args([
            "maintain",
            "--vacuum-retention-hours",
            "0",
            "--force",
            "--config",
        ])
        .arg(db.config_file(""))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&quotes))
        .expect("a report line for the table");
    let n: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(",").parse().ok())
        .collect();
    assert!(
        n[0] > 1 && n[1] == 1,
        "small files compacted into one: {line}"
    );
    assert!(n[2] > 0, "unreferenced files vacuumed: {line}");
    // Athena engine v3 compatibility: reader protocol ≤ 3 and no reader features it lacks
    let log = config.lake.root.clone() + &format!("/{}/quotes/_delta_log", db.name);
    // classic single-file checkpoints (`<version>.checkpoint.parquet`) every `checkpoint_every` commits
    let checkpoints: Vec<String> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("checkpoint") && n != "_last_checkpoint")
        .collect();
    assert!(!checkpoints.is_empty(), "no Delta checkpoint written");
    for name in &checkpoints {
        let version = name
            .strip_suffix(".checkpoint.parquet")
            .unwrap_or_else(|| panic!("{name}: not a classic checkpoint"));
        let version: u64 = version.parse().unwrap();
        // every third commit, counting version 0 as the first
        assert_eq!((version + 1) % 3, 0, "checkpoint at version {version}");
    }
    assert!(std::path::Path::new(&(log.clone() + "/_last_checkpoint")).exists());
    for entry in std::fs::read_dir(&log).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let action: serde_json::Value = serde_json::from_str(line).unwrap();
                if let Some(p) = action.get("protocol") {
                    assert!(p["minReaderVersion"].as_u64().unwrap() <= 3, "{p}");
                    assert!(
                        p.get("readerFeatures")
                            .is_none_or(|f| f.as_array().is_some_and(|a| a.is_empty())),
                        "{p}"
                    );
                }
            }
        }
    }
    assert_parquet_encodings(&(config.lake.root.clone() + &format!("/{}/quotes", db.name)));
    assert_lake_equals_source(&config, &db.name, "quotes").await;
}

/// The compacted file (the only one left after a vacuum with no retention): zstd, and dictionaries only
/// on string columns, where values repeat.
fn assert_parquet_encodings(table_dir: &str) {
    use deltalake::parquet::basic::{Compression, Encoding};
    use deltalake::parquet::file::reader::{FileReader, SerializedFileReader};
    let files: Vec<_> = std::fs::read_dir(table_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let reader = SerializedFileReader::new(std::fs::File::open(&files[0]).unwrap()).unwrap();
    let row_group = reader.metadata().row_group(0);
    for column in row_group.columns() {
        let name = column.column_path().string();
        let dictionary = column
            .encodings()
            .any(|e| e == Encoding::RLE_DICTIONARY || e == Encoding::PLAIN_DICTIONARY);
        let strings = matches!(name.as_str(), "symbol" | "_op");
        assert_eq!(dictionary, strings, "dictionary encoding of `{name}`");
        assert!(
            matches!(column.compression(), Compression::ZSTD(_)),
            "`{name}` compressed with {:?}",
            column.compression()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_behind_the_server_come_from_its_binlog_sizes() {
    // what `binlake_source_behind_bytes` is computed from: the newest file's size is the server's position
    let db = TestDb::new("behind").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let config = db.config("");
    let mut conn = crate::common::admin().await;
    let (file, pos): (String, u64) = {
        let row: mysql_async::Row =
            mysql_async::prelude::Queryable::query_first(&mut conn, "SHOW MASTER STATUS")
                .await
                .unwrap()
                .unwrap();
        (row.get(0).unwrap(), row.get(1).unwrap())
    };
    let logs = binlake::sources::mysql::behind::binlog_sizes(&config.source)
        .await
        .unwrap();
    let newest = logs.last().unwrap();
    assert_eq!(newest.0, file);
    assert!(newest.1 >= pos, "{logs:?} vs {file}:{pos}");
    assert_eq!(
        binlake::sources::mysql::behind::bytes_behind((&file, 4), &logs),
        Some(newest.1 - 4)
    );
}
