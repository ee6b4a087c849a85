//! Lake benchmarks: MERGE throughput of large batches into a large Delta table, and end-to-end latency
//! (MySQL commit → row visible in Delta) of the real direct pipeline at a steady change rate.

use super::source::{peak_rss_mib, source_config};
use super::BenchArgs;
use crate::config::Config;
use crate::event::{ColumnKind, ColumnSchema, TableSchema, Value};
use crate::sinks::lake::batch::LakeSink;
use crate::sinks::lake::table::{KeyChange, LakeTable, Prior, Progress, TableOptions};
use crate::sinks::lake::{storage_options, table_uri};
use mysql_async::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn column(
    name: &str,
    kind: ColumnKind,
    unsigned: bool,
    precision: Option<u32>,
    scale: Option<u32>,
) -> ColumnSchema {
    ColumnSchema {
        name: name.into(),
        kind,
        sql_type: String::new(),
        unsigned,
        nullable: false,
        charset: Some("utf8mb4".into()),
        members: vec![],
        precision,
        scale,
        added: None,
    }
}

fn quote_row(id: u64, bump: u64) -> Vec<Value> {
    vec![
        Value::UInt(id),
        Value::String(format!("SYM{}", id % 500)),
        Value::Decimal(format!(
            "{}.{:06}",
            100 + id % 400,
            (id * 7 + bump) % 1_000_000
        )),
        Value::Decimal(format!(
            "{}.{:06}",
            101 + id % 400,
            (id * 3 + bump) % 1_000_000
        )),
        Value::Int(((id + bump) % 10_000) as i64),
        Value::DateTime {
            year: 2026,
            month: 11,
            day: 20,
            hour: 14,
            minute: (id / 60 % 60) as u8,
            second: (id % 60) as u8,
            micros: (id % 1_000_000) as u32,
        },
    ]
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let dir = match &args.lake_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("binlake-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    merge_throughput(args, &dir).await?;
    end_to_end_latency(args, &dir, None).await?;
    if let Ok(brokers) = std::env::var("BINLAKE_KAFKA_BROKERS") {
        end_to_end_latency(args, &dir, Some(&brokers)).await?;
    } else {
        println!(
            "lake via Kafka: skipped (set BINLAKE_KAFKA_BROKERS, e.g. from scripts/services up)"
        );
    }
    if args.lake_dir.is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(())
}

async fn merge_throughput(args: &BenchArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let cfg = crate::config::LakeConfig {
        root: dir.join("merge").display().to_string(),
        ..Default::default()
    };
    let schema = Arc::new(TableSchema {
        database: "bench".into(),
        table: "quotes".into(),
        columns: vec![
            column("id", ColumnKind::BigInt, true, None, None),
            column("symbol", ColumnKind::Text, false, None, None),
            column("bid", ColumnKind::Decimal, false, Some(18), Some(6)),
            column("ask", ColumnKind::Decimal, false, Some(18), Some(6)),
            column("size", ColumnKind::Int, false, None, None),
            column("quoted_at", ColumnKind::DateTime, false, None, None),
        ],
        key: vec![0],
        version: 1,
    });
    let uri = table_uri(&cfg, "bench", "quotes")?;
    let mut table = LakeTable::open_or_create(
        &uri,
        &storage_options(&cfg),
        &schema,
        TableOptions::new(&cfg, "bench"),
    )
    .await?;
    let change = |id: u64, seq: u64, op: &'static str, bump: u64| KeyChange {
        seq,
        op,
        schema: schema.clone(),
        row: quote_row(id, bump),
        deleted: false,
        source_ts_ms: 0,
        origin: None,
    };
    let started = Instant::now();
    let load_chunk = 1_000_000u64;
    let mut loaded = 0u64;
    while loaded < args.table_rows {
        let n = load_chunk.min(args.table_rows - loaded);
        let changes: Vec<KeyChange> = (loaded + 1..=loaded + n)
            .map(|id| change(id, id, "r", 0))
            .collect();
        table.append(&changes, loaded + n).await?;
        loaded += n;
    }
    println!(
        "lake: loaded {} rows into a Delta table in {:.1} s ({:.0} rows/s, append)",
        args.table_rows,
        started.elapsed().as_secs_f64(),
        args.table_rows as f64 / started.elapsed().as_secs_f64()
    );

    // CDC-shaped batches: 80% new keys, 20% corrections spread over the most recent `correction_window` keys.
    let mut next_id = args.table_rows + 1;
    let mut seq = args.table_rows + 1;
    let mut total = Duration::ZERO;
    let mut merged = 0usize;
    for b in 0..args.batches {
        let mut changes = Vec::with_capacity(args.batch_rows);
        let updates = args.batch_rows / 5;
        // 7919 is prime, so these ids are distinct within a batch (the sink also sends one change per key)
        for i in 0..updates {
            let id = next_id
                - 1
                - ((i as u64 * 7919 + b as u64 * 104_729)
                    % args.correction_window.min(next_id - 1));
            changes.push(change(id, seq, "u", b as u64 + 1));
            seq += 1;
        }
        while changes.len() < args.batch_rows {
            changes.push(change(next_id, seq, "c", 0));
            next_id += 1;
            seq += 1;
        }
        let t0 = Instant::now();
        // the corrected keys have stored rows; the new ones have none
        let prior = Prior {
            unknown: false,
            partitions: [None].into(),
        };
        let applied = table
            .merge(&changes, &prior, seq - 1, &Progress::NONE)
            .await?;
        let took = t0.elapsed();
        total += took;
        merged += applied.rows;
        println!(
            "lake: MERGE batch {b}: {} rows ({updates} updates) in {:.2} s = {:.0} rows/s; {} files read, {} skipped, {} rows rewritten",
            applied.rows,
            took.as_secs_f64(),
            applied.rows as f64 / took.as_secs_f64(),
            applied.files_scanned,
            applied.files_skipped,
            applied.rows_rewritten
        );
    }
    println!(
        "lake: MERGE throughput {:.0} rows/s over {} batches of {} rows (20% corrections within the last {} keys) into a {}-row table; peak RSS {} MiB",
        merged as f64 / total.as_secs_f64(),
        args.batches,
        args.batch_rows,
        args.correction_window,
        args.table_rows,
        peak_rss_mib()
    );
    Ok(())
}

/// MySQL commit → Delta commit at a steady rate, direct (`kafka: None`) or through Kafka: the publisher
/// and `binlake sink` in this process, the table topic with one partition so that a commit's last `_seq`
/// covers every earlier change.
async fn end_to_end_latency(
    args: &BenchArgs,
    dir: &std::path::Path,
    kafka: Option<&str>,
) -> anyhow::Result<()> {
    let src = source_config(&args.admin_url)?;
    let mut conn = crate::sources::mysql::connect(&src).await?;
    conn.query_drop("DROP DATABASE IF EXISTS binlake_bench_e2e")
        .await?;
    conn.query_drop("CREATE DATABASE binlake_bench_e2e").await?;
    conn.query_drop("CREATE TABLE binlake_bench_e2e.ticks (id BIGINT PRIMARY KEY, symbol VARCHAR(8) NOT NULL, price DECIMAL(12,4) NOT NULL, ts DATETIME(6) NOT NULL)").await?;
    let root = dir.join(if kafka.is_some() { "e2e-kafka" } else { "e2e" });
    let mut text = format!(
        "name = \"bench\"\n[source]\nhost = {:?}\nport = {}\nuser = {:?}\npassword = {:?}\nserver_id = 5498\ninclude = [\"binlake_bench_e2e.*\"]\n[lake]\nroot = {:?}\nflush_interval_ms = 1000\n[observe]\nlisten = \"\"\n",
        src.host,
        src.port,
        src.user,
        src.password,
        root.display().to_string()
    );
    if let Some(brokers) = kafka {
        text += &format!(
            "[kafka]\nbrokers = {brokers:?}\ntopic_prefix = \"bench{}\"\n",
            rand::random::<u32>()
        );
    }
    let config = Config::parse(&text, std::path::Path::new("bench.toml"))?;
    let cancel = CancellationToken::new();
    let via_kafka = kafka.is_some();
    let pipeline = {
        let (config, cancel) = (config.clone(), cancel.clone());
        tokio::spawn(async move {
            if !via_kafka {
                let mut sink = LakeSink::new(&config)
                    .await
                    .map_err(crate::sinks::SinkError::from)?;
                return crate::pipeline::run(&config, &mut sink, cancel)
                    .await
                    .map_err(anyhow::Error::from);
            }
            let mut publisher = crate::sinks::kafka::KafkaSink::new(config.kafka()?, &config.name)
                .await
                .map_err(crate::sinks::SinkError::from)?;
            let lake = tokio::spawn({
                let (config, cancel) = (config.clone(), cancel.clone());
                async move { crate::ingest::run(&config, cancel).await }
            });
            crate::pipeline::run(&config, &mut publisher, cancel).await?;
            lake.await??;
            Ok(())
        })
    };
    // Start-up is not latency: one row must be in Delta before the clock starts (preflight, the empty
    // snapshot, and via Kafka the sink's discovery of the table's new topic and its group join).
    let uri = table_uri(&config.lake, "binlake_bench_e2e", "ticks")?;
    conn.query_drop("INSERT INTO binlake_bench_e2e.ticks VALUES (1, 'S1', 100.25, NOW(6))")
        .await?;
    let warm = Instant::now() + Duration::from_secs(120);
    while !delta_points(&config, &uri)
        .await
        .is_ok_and(|p| p.last().is_some_and(|p| p.0 >= 1))
    {
        anyhow::ensure!(
            Instant::now() < warm,
            "the first row did not reach Delta within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Steady writes: a multi-row INSERT every 20 ms; remember when each batch committed.
    let per_tick = (args.rate / 50).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut commits: Vec<(u64, i64)> = vec![];
    let mut next = 2u64;
    let end = Instant::now() + Duration::from_secs(args.seconds);
    while Instant::now() < end {
        tick.tick().await;
        let values: Vec<String> = (next..next + per_tick)
            .map(|id| format!("({id}, 'S{}', {}.25, NOW(6))", id % 50, 100 + id % 900))
            .collect();
        conn.query_drop(format!(
            "INSERT INTO binlake_bench_e2e.ticks VALUES {}",
            values.join(",")
        ))
        .await?;
        next += per_tick;
        commits.push((next - 1, crate::event::calendar::now_ms()));
    }
    let written = next - 1;
    let rate = (written - 1) as f64 / args.seconds as f64;

    // Visibility of each batch = time of the first Delta commit whose last `_seq` covers it. With an empty
    // snapshot and inserts only, `_seq` equals the id.
    let deadline = Instant::now() + Duration::from_secs(60);
    let history = loop {
        let points = delta_points(&config, &uri).await?;
        if points.last().is_some_and(|p| p.0 >= written) || Instant::now() > deadline {
            break points;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    cancel.cancel();
    pipeline.await??;
    let mut latencies: Vec<i64> = commits
        .iter()
        .filter_map(|(last_id, at)| {
            history
                .iter()
                .find(|(seq, _)| seq >= last_id)
                .map(|(_, ts)| ts - at)
        })
        .collect();
    anyhow::ensure!(
        latencies.len() == commits.len(),
        "{} of {} batches never became visible",
        commits.len() - latencies.len(),
        commits.len()
    );
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "lake{}: end-to-end latency (MySQL commit → Delta commit) at {rate:.0} changes/s for {} s (flush interval 1 s): p50 {} ms, p99 {} ms, max {} ms over {} commits",
        if kafka.is_some() { " via Kafka (publisher → tansu → binlake sink)" } else { "" },
        args.seconds,
        pct(0.5),
        pct(0.99),
        latencies.last().unwrap(),
        history.len()
    );
    conn.query_drop("DROP DATABASE binlake_bench_e2e").await?;
    Ok(())
}

/// `(binlake.last_seq, commit time in ms)` of every commit of the table, in `_seq` order.
async fn delta_points(config: &Config, uri: &str) -> anyhow::Result<Vec<(u64, i64)>> {
    let url = deltalake::ensure_table_uri(uri)?;
    let t = deltalake::DeltaTable::try_from_url_with_storage_options(
        url,
        storage_options(&config.lake),
    )
    .await?;
    use futures_util::TryStreamExt;
    let infos: Vec<_> = t.history(None).try_collect().await?;
    let mut points: Vec<(u64, i64)> = infos
        .iter()
        .filter_map(|i| Some((i.info.get("binlake.last_seq")?.as_u64()?, i.timestamp?)))
        .collect();
    points.sort();
    Ok(points)
}
