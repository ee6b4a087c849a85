//! binlog_row_metadata=MINIMAL (no column names, enum values or keys in TABLE_MAP): the decoder falls back
//! to information_schema, reloads it at each DDL, and fails loudly when it cannot match the binlog.

use crate::common::env;
use binlake::config::{SourceConfig, TableFilter};
use binlake::event::progress::Checkpoint;
use binlake::event::{BinlogPosition, SourceMessage, Value};
use binlake::sources::mysql::binlog::{BinlogDecoder, DecoderOptions};
use binlake::sources::mysql::schema::{load_collations, load_tables, CapturedTable};
use binlake::sources::mysql::stream::run_stream;
use binlake::sources::mysql::{current_position, ServerInfo, SourceError};
use mysql_async::prelude::*;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn bad_admin() -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::from_opts(
        mysql_async::Opts::from_url(&env("BINLAKE_TEST_BAD_MYSQL_ADMIN_URL")).unwrap(),
    )
    .init(vec![
        "SET NAMES utf8mb4",
        "SET SESSION binlog_format = 'ROW'",
    ]);
    mysql_async::Conn::new(opts).await.unwrap()
}

/// Streams `db` on the MINIMAL-metadata server from `from` (default: now) while `write` runs.
async fn stream_while(
    db: &str,
    from: Option<BinlogPosition>,
    write: &[&str],
    expect: usize,
) -> Result<Vec<SourceMessage>, SourceError> {
    let url = mysql_async::Opts::from_url(&env("BINLAKE_TEST_BAD_MYSQL_URL")).unwrap();
    let cfg: SourceConfig = toml::from_str(&format!(
        "host = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\npassword = \"{}\"\nserver_id = {}\ninclude = [\"{db}.*\"]\n",
        url.tcp_port(),
        url.user().unwrap(),
        url.pass().unwrap_or(""),
        20_000 + rand::random::<u32>() % 1_000_000
    ))
    .unwrap();
    let filter = TableFilter::from_patterns(&cfg.include, &[], &[]);
    let mut conn = binlake::sources::mysql::connect(&cfg).await.unwrap();
    let info = ServerInfo::read(&mut conn).await.unwrap();
    let tables: Vec<CapturedTable> = load_tables(&mut conn, &filter, &cfg.keys, None)
        .await
        .unwrap()
        .into_values()
        .map(|s| CapturedTable::new(s, &filter).unwrap())
        .collect();
    let start = Checkpoint {
        next_seq: 1,
        position: match from {
            Some(p) => p,
            None => current_position(&mut conn, &info).await.unwrap().unwrap(),
        },
        gtid: None,
        snapshot: None,
        xa: None,
        tables: Default::default(),
        sync: false,
    };
    let opts = DecoderOptions {
        filter: filter.clone(),
        keys: Default::default(),
        collations: load_collations(&mut conn).await.unwrap(),
        allow_anonymous_columns: false,
        max_prepared_xa_bytes: usize::MAX,
        signal_table: None,
    };
    let mut decoder = BinlogDecoder::new(opts, &start, true, tables);
    let (tx, mut rx) = binlake::channel::channel(1024, 64 << 20);
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let identity = binlake::sources::mysql::StreamIdentity::new("minimal", "test");
    // the stream starts at the position read above: writes after this line are in it however soon they come
    let task =
        tokio::spawn(
            async move { run_stream(&cfg, &filter, &mut decoder, &tx, &c, &identity).await },
        );
    let mut admin = bad_admin().await;
    admin.query_drop(format!("USE `{db}`")).await.unwrap();
    for sql in write {
        admin.query_drop(*sql).await.unwrap();
        // one statement at a time, so information_schema never runs ahead of the stream
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut out = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while out
        .iter()
        .filter(|m| matches!(m, SourceMessage::Change(_)))
        .count()
        < expect
    {
        tokio::select! {
            m = rx.recv() => match m { Some(batch) => out.extend(batch), None => break },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    cancel.cancel();
    task.await.unwrap().map(|_| out)
}

fn row(m: &SourceMessage) -> Option<std::collections::BTreeMap<String, Value>> {
    match m {
        SourceMessage::Change(c) => Some(
            c.schema
                .columns
                .iter()
                .map(|c| c.name.clone())
                .zip(c.after.clone()?)
                .collect(),
        ),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimal_metadata_uses_information_schema_across_ddl() {
    let db = format!("it_minimal_{}", rand::random::<u32>());
    let mut admin = bad_admin().await;
    admin
        .query_drop(format!("CREATE DATABASE `{db}`"))
        .await
        .unwrap();
    admin
        .query_drop(format!(
            "CREATE TABLE `{db}`.t (id INT UNSIGNED PRIMARY KEY, big BIGINT UNSIGNED, e ENUM('x','y'), s VARCHAR(10) CHARACTER SET latin1)"
        ))
        .await
        .unwrap();
    let out = stream_while(
        &db,
        None,
        &[
            "INSERT INTO t VALUES (4294967295, 18446744073709551615, 'y', 'café')",
            "ALTER TABLE t ADD COLUMN extra SMALLINT UNSIGNED FIRST",
            "INSERT INTO t (extra, id, big, e, s) VALUES (65535, 2, 1, 'x', 'ÿ')",
        ],
        2,
    )
    .await
    .expect("stream");
    let rows: Vec<_> = out.iter().filter_map(row).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], Value::UInt(4294967295));
    assert_eq!(
        rows[0]["big"],
        Value::UInt(u64::MAX),
        "signedness from information_schema"
    );
    assert_eq!(
        rows[0]["e"],
        Value::Enum("y".into()),
        "ENUM names from information_schema"
    );
    assert_eq!(rows[0]["s"], Value::String("café".into()), "latin1 decoded");
    assert!(!rows[0].contains_key("extra"));
    assert_eq!(rows[1]["extra"], Value::UInt(65535));
    assert_eq!(rows[1]["s"], Value::String("ÿ".into()));
    assert!(out.iter().any(
        |m| matches!(m, SourceMessage::SchemaChange(sc) if sc.ddl.contains("ADD COLUMN extra"))
    ));

    // Resuming before a DDL that information_schema is already past cannot be decoded safely: loud error.
    admin
        .query_drop(format!("CREATE TABLE `{db}`.u (id INT PRIMARY KEY, a INT)"))
        .await
        .unwrap();
    let info = ServerInfo::read(&mut admin).await.unwrap();
    let before = current_position(&mut admin, &info).await.unwrap().unwrap();
    admin.query_drop(format!("USE `{db}`")).await.unwrap();
    admin
        .query_drop("INSERT INTO u VALUES (1, 1)")
        .await
        .unwrap();
    admin
        .query_drop("ALTER TABLE u DROP COLUMN a, ADD COLUMN b VARCHAR(3), ADD COLUMN c INT")
        .await
        .unwrap();
    let err = stream_while(&db, Some(before), &[], 1)
        .await
        .expect_err("must not guess the columns");
    assert!(matches!(err, SourceError::SchemaUnknown { .. }), "{err}");
    assert!(
        err.to_string().contains("binlog_row_metadata=FULL"),
        "{err}"
    );
    admin
        .query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .unwrap();
}
