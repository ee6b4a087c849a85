//! A snapshot taken while streaming: a `--rows`-row table joins the capture of a running connector
//! while `--rate` changes/s stream into another table. Reports the snapshot's rows/s beside an initial
//! snapshot of the same table (each from process start to its last row in Delta), and the stream's
//! MySQL commit → Delta commit latency while the snapshot runs. Direct mode, a local lake.

use super::source::source_config;
use super::BenchArgs;
use crate::config::Config;
use crate::sinks::lake::batch::LakeSink;
use crate::sinks::lake::{storage_options, table_uri};
use mysql_async::prelude::*;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const DB: &str = "binlake_bench_inc";

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let dir = match &args.lake_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("binlake-bench-inc-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let src = source_config(&args.admin_url)?;
    let mut conn = crate::sources::mysql::connect(&src).await?;
    conn.query_drop(format!("DROP DATABASE IF EXISTS {DB}"))
        .await?;
    conn.query_drop(format!("CREATE DATABASE {DB}")).await?;
    // MariaDB's seq_1_to_N tables resolve in the current database
    conn.query_drop(format!("USE {DB}")).await?;
    conn.query_drop(format!("CREATE TABLE {DB}.big (id BIGINT PRIMARY KEY, symbol VARCHAR(8) NOT NULL, price DECIMAL(12,4) NOT NULL, ts DATETIME(6) NOT NULL)")).await?;
    conn.query_drop(format!("CREATE TABLE {DB}.ticks (id BIGINT PRIMARY KEY, symbol VARCHAR(8) NOT NULL, price DECIMAL(12,4) NOT NULL, ts DATETIME(6) NOT NULL)")).await?;
    let mut loaded = 0u64;
    while loaded < args.rows {
        let n = (args.rows - loaded).min(50_000);
        conn.query_drop(format!(
            "INSERT INTO {DB}.big SELECT seq, CONCAT('S', seq % 500), 100 + seq % 900, NOW(6) FROM seq_{}_to_{}",
            loaded + 1,
            loaded + n
        ))
        .await?;
        loaded += n;
    }

    // the same table as an initial snapshot, into a lake of its own
    let initial_cfg = config(&src, &dir.join("initial"), "big")?;
    let started = Instant::now();
    let (cancel, pipeline) = start(&initial_cfg);
    wait_rows(&initial_cfg, "big", args.rows, started).await?;
    let initial = started.elapsed();
    cancel.cancel();
    pipeline.await??;

    // a connector that streams ticks, then restarted with big in its capture as well
    let inc_dir = dir.join("incremental");
    let ticks_only = config(&src, &inc_dir, "ticks")?;
    let (cancel, pipeline) = start(&ticks_only);
    conn.query_drop(format!(
        "INSERT INTO {DB}.ticks VALUES (1, 'S1', 100.25, NOW(6))"
    ))
    .await?;
    wait_rows(&ticks_only, "ticks", 1, Instant::now()).await?;
    cancel.cancel();
    pipeline.await??;
    let both = config(&src, &inc_dir, "*")?;
    let started = Instant::now();
    let (cancel, pipeline) = start(&both);
    let per_tick = (args.rate / 50).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut commits: Vec<(u64, i64)> = vec![];
    let mut next = 2u64;
    let big_uri = table_uri(&both.lake, DB, "big")?;
    let mut snapshot_done = None;
    let mut last_check = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(1800);
    while snapshot_done.is_none() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the snapshot did not finish within 30 minutes"
        );
        tick.tick().await;
        let values: Vec<String> = (next..next + per_tick)
            .map(|id| format!("({id}, 'S{}', {}.25, NOW(6))", id % 50, 100 + id % 900))
            .collect();
        conn.query_drop(format!(
            "INSERT INTO {DB}.ticks VALUES {}",
            values.join(",")
        ))
        .await?;
        next += per_tick;
        commits.push((next - 1, crate::event::calendar::now_ms()));
        if last_check.elapsed() >= Duration::from_millis(500) {
            last_check = Instant::now();
            if delta_rows(&big_uri).await? >= args.rows {
                snapshot_done = Some(started.elapsed());
            }
        }
    }
    let during = snapshot_done.expect("loop ends with it");
    let written = next - 1;
    let ticks_uri = table_uri(&both.lake, DB, "ticks")?;
    let wait = Instant::now() + Duration::from_secs(60);
    let visible = loop {
        let v = max_id_by_commit(&ticks_uri)?;
        if v.last().is_some_and(|p| p.0 >= written) || Instant::now() > wait {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    cancel.cancel();
    pipeline.await??;
    let mut latencies: Vec<i64> = commits
        .iter()
        .filter_map(|(id, at)| {
            visible
                .iter()
                .find(|(max, _)| max >= id)
                .map(|(_, ts)| ts - at)
        })
        .collect();
    anyhow::ensure!(
        latencies.len() == commits.len(),
        "{} of {} tick batches never became visible",
        commits.len() - latencies.len(),
        commits.len()
    );
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    let rate = |d: Duration| args.rows as f64 / d.as_secs_f64();
    println!(
        "incremental: {} rows snapshotted while streaming in {:.2} s ({:.0} rows/s, from process start) vs an initial snapshot of the same table in {:.2} s ({:.0} rows/s): {:.2}x the time (target <= 2x)",
        args.rows,
        during.as_secs_f64(),
        rate(during),
        initial.as_secs_f64(),
        rate(initial),
        during.as_secs_f64() / initial.as_secs_f64()
    );
    println!(
        "incremental: meanwhile {:.0} changes/s streamed to another table, MySQL commit -> Delta commit p50 {} ms, p99 {} ms, max {} ms over {} batches (target p99 <= 2000 ms)",
        (written - 1) as f64 / during.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        latencies.last().unwrap(),
        latencies.len()
    );
    conn.query_drop(format!("DROP DATABASE {DB}")).await?;
    if args.lake_dir.is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(())
}

fn config(
    src: &crate::config::SourceConfig,
    root: &std::path::Path,
    tables: &str,
) -> anyhow::Result<Config> {
    let text = format!(
        "name = \"bench\"\n[source]\nhost = {:?}\nport = {}\nuser = {:?}\npassword = {:?}\nserver_id = 5497\ninclude = [\"{DB}.{tables}\"]\n[lake]\nroot = {:?}\nflush_interval_ms = 1000\n[observe]\nlisten = \"\"\n",
        src.host,
        src.port,
        src.user,
        src.password,
        root.display().to_string()
    );
    Ok(Config::parse(&text, std::path::Path::new("bench.toml"))?)
}

fn start(
    config: &Config,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let cancel = CancellationToken::new();
    let (config, c) = (config.clone(), cancel.clone());
    let handle = tokio::spawn(async move {
        let mut sink = LakeSink::new(&config)
            .await
            .map_err(crate::sinks::SinkError::from)?;
        crate::pipeline::run(&config, &mut sink, c).await?;
        Ok(())
    });
    (cancel, handle)
}

async fn wait_rows(
    config: &Config,
    table: &str,
    rows: u64,
    started: Instant,
) -> anyhow::Result<()> {
    let uri = table_uri(&config.lake, DB, table)?;
    while delta_rows(&uri).await? < rows {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "{table} did not reach {rows} rows"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Rows in the table's current version, from its files' statistics (0 before it exists).
async fn delta_rows(uri: &str) -> anyhow::Result<u64> {
    let url = deltalake::ensure_table_uri(uri)?;
    let Ok(t) = deltalake::DeltaTable::try_from_url_with_storage_options(
        url,
        storage_options(&Default::default()),
    )
    .await
    else {
        return Ok(0);
    };
    if t.version().is_none() {
        return Ok(0);
    }
    let snapshot = t.snapshot()?;
    Ok(snapshot
        .log_data()
        .iter()
        .map(|f| f.num_records().unwrap_or(0) as u64)
        .sum())
}

/// Per commit of an insert-only table (in version order): the highest id it held, from the added files'
/// statistics, and the commit's time — read from the local `_delta_log`.
fn max_id_by_commit(uri: &str) -> anyhow::Result<Vec<(u64, i64)>> {
    let log = std::path::Path::new(uri).join("_delta_log");
    let mut versions: Vec<std::path::PathBuf> = std::fs::read_dir(&log)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    versions.sort();
    let mut out = vec![];
    let mut max_id = 0u64;
    for v in versions {
        let mut ts = None;
        for line in std::fs::read_to_string(&v)?.lines() {
            let action: serde_json::Value = serde_json::from_str(line)?;
            if let Some(info) = action.get("commitInfo") {
                ts = info.get("timestamp").and_then(|t| t.as_i64());
            }
            if let Some(stats) = action
                .get("add")
                .and_then(|a| a.get("stats"))
                .and_then(|s| s.as_str())
            {
                let stats: serde_json::Value = serde_json::from_str(stats)?;
                if let Some(id) = stats["maxValues"]["id"].as_u64() {
                    max_id = max_id.max(id);
                }
            }
        }
        if let Some(ts) = ts {
            out.push((max_id, ts));
        }
    }
    Ok(out)
}
