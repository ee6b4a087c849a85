//! Source benchmark: loads rows into MariaDB, then measures binlog decoding (events/s) and snapshot
//! reading (rows/s) through the real source code paths.

use super::BenchArgs;

use crate::config::{SnapshotConfig, SourceConfig, TableFilter};
use crate::event::progress::{Checkpoint, SnapshotProgress};
use crate::event::{BinlogPosition, SourceMessage};
use crate::sinks::stdout::StdoutSink;
use crate::sources::mysql::binlog::{BinlogDecoder, DecoderOptions, NoLookup};
use crate::sources::mysql::schema::{load_collations, load_tables, CapturedTable};
use crate::sources::mysql::snapshot::run_snapshot;
use crate::sources::mysql::{connect, current_position, Flavor, ServerInfo};
use futures_util::StreamExt;
use mysql_async::prelude::*;
use mysql_async::BinlogStreamRequest;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

pub fn source_config(url: &str) -> anyhow::Result<SourceConfig> {
    let opts = mysql_async::Opts::from_url(url)?;
    let toml = format!(
        "host = {:?}\nport = {}\nuser = {:?}\npassword = {:?}\nserver_id = 5499\ninclude = [\"binlake_bench.*\"]\n",
        opts.ip_or_hostname(),
        opts.tcp_port(),
        opts.user().unwrap_or("root"),
        opts.pass().unwrap_or("")
    );
    let mut cfg: SourceConfig = toml::from_str(&toml)?;
    cfg.snapshot = SnapshotConfig {
        chunk_size: 50_000,
        ..SnapshotConfig::default()
    };
    Ok(cfg)
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let cfg = source_config(&args.admin_url)?;
    let mut conn = connect(&cfg).await?;
    let info = ServerInfo::read(&mut conn).await?;
    anyhow::ensure!(
        info.flavor == Flavor::MariaDb,
        "the bench loads rows with MariaDB's SEQUENCE engine"
    );
    conn.query_drop("DROP DATABASE IF EXISTS binlake_bench")
        .await?;
    conn.query_drop("CREATE DATABASE binlake_bench").await?;
    conn.query_drop("USE binlake_bench").await?;
    conn.query_drop(
        "CREATE TABLE binlake_bench.quotes (id BIGINT UNSIGNED PRIMARY KEY, symbol VARCHAR(12) NOT NULL, \
         bid DECIMAL(18,6) NOT NULL, ask DECIMAL(18,6) NOT NULL, bid_size INT NOT NULL, ask_size INT NOT NULL, \
         venue ENUM('XNAS','XNYS','ARCX','BATS') NOT NULL, ts DATETIME(6) NOT NULL)",
    )
    .await?;
    let start = current_position(&mut conn, &info)
        .await?
        .ok_or_else(|| anyhow::anyhow!("binlog is off"))?;
    let load_started = Instant::now();
    let batch = 100_000u64;
    let mut done = 0u64;
    while done < args.rows {
        let n = batch.min(args.rows - done);
        conn.query_drop(format!(
            "INSERT INTO binlake_bench.quotes SELECT seq, CONCAT('SYM', seq % 500), 100 + (seq % 9973) / 100, \
             100.01 + (seq % 9973) / 100, seq % 1000, (seq * 7) % 1000, ELT(1 + seq % 4, 'XNAS','XNYS','ARCX','BATS'), \
             TIMESTAMPADD(MICROSECOND, seq, '2026-11-20 14:30:00') FROM seq_{}_to_{}",
            done + 1,
            done + n
        ))
        .await?;
        done += n;
    }
    let end = current_position(&mut conn, &info).await?.unwrap();
    println!(
        "loaded {} rows in {:.1} s ({start} → {end})",
        args.rows,
        load_started.elapsed().as_secs_f64()
    );

    let (events, stream_secs) =
        stream_in_process(&cfg, &mut conn, &start, &end, args.with_json).await?;
    println!(
        "binlog stream: {events} events in {stream_secs:.2} s = {:.0} events/s{}",
        events as f64 / stream_secs,
        if args.with_json {
            " (including JSON envelope rendering)"
        } else {
            " (decoded to change events)"
        }
    );
    let (rows, snap_secs) = snapshot_in_process(&cfg, &mut conn, &info, false).await?;
    println!(
        "snapshot: {rows} rows in {snap_secs:.2} s = {:.0} rows/s",
        rows as f64 / snap_secs
    );
    println!("peak resident memory: {} MiB (transactions of {batch} rows streamed through bounded channels)", peak_rss_mib());
    conn.query_drop("DROP DATABASE binlake_bench").await?;
    Ok(())
}

/// Reads every captured table through the chunked snapshot reader in this process (and renders each row
/// as the stdout sink's JSON line into a sink that discards it, with `with_json`); returns (rows, seconds).
pub async fn snapshot_in_process(
    cfg: &SourceConfig,
    conn: &mut mysql_async::Conn,
    info: &ServerInfo,
    with_json: bool,
) -> anyhow::Result<(u64, f64)> {
    let filter = TableFilter::from_patterns(&cfg.include, &[], &[]);
    let tables: Vec<CapturedTable> = load_tables(conn, &filter, &cfg.keys, None)
        .await?
        .into_values()
        .map(|s| CapturedTable::new(s, &filter))
        .collect::<Result<_, _>>()?;
    let (tx, mut rx) = crate::channel::channel(crate::pipeline::CHANNEL_CAPACITY, 64 << 20);
    // the consumer stands where the pipeline's sink would: a task of its own behind the channel
    let counter = tokio::spawn(async move {
        let mut json = StdoutSink::new(std::io::sink(), "bench", None);
        let mut rows = 0u64;
        while let Some(batch) = rx.recv().await {
            for msg in &batch {
                if let SourceMessage::Change(_) = msg {
                    rows += 1;
                    if with_json {
                        json.write(msg)?;
                    }
                }
            }
        }
        anyhow::Ok(rows)
    });
    let mut cp = Checkpoint {
        next_seq: 1,
        position: BinlogPosition::new("", 4),
        gtid: None,
        snapshot: Some(SnapshotProgress::default()),
        xa: None,
        tables: Default::default(),
        sync: false,
    };
    let t0 = Instant::now();
    let ids: Vec<_> = tables.iter().map(|t| t.full.id()).collect();
    run_snapshot(
        cfg,
        &filter,
        info,
        &ids,
        &mut cp,
        &tx,
        &CancellationToken::new(),
        false,
    )
    .await?;
    drop(tx);
    let rows = counter.await??;
    Ok((rows, t0.elapsed().as_secs_f64()))
}

/// Decodes the binlog from `start` to `end` in this process (and renders each event as the stdout sink's
/// JSON line into a sink that discards it, with `with_json`); returns (events, seconds).
pub async fn stream_in_process(
    cfg: &SourceConfig,
    conn: &mut mysql_async::Conn,
    start: &BinlogPosition,
    end: &BinlogPosition,
    with_json: bool,
) -> anyhow::Result<(u64, f64)> {
    let filter = TableFilter::from_patterns(&cfg.include, &[], &[]);
    let collations = load_collations(conn).await?;
    let tables: Vec<CapturedTable> = load_tables(conn, &filter, &cfg.keys, None)
        .await?
        .into_values()
        .map(|s| CapturedTable::new(s, &filter))
        .collect::<Result<_, _>>()?;
    let opts = DecoderOptions {
        filter: filter.clone(),
        keys: Default::default(),
        collations,
        allow_anonymous_columns: false,
        max_prepared_xa_bytes: usize::MAX,
        signal_table: None,
    };
    let cp = Checkpoint {
        next_seq: 1,
        position: start.clone(),
        gtid: None,
        snapshot: None,
        xa: None,
        tables: Default::default(),
        sync: false,
    };
    let mut decoder = BinlogDecoder::new(opts, &cp, true, tables);
    let mut stream_conn = connect(cfg).await?;
    stream_conn
        .query_drop("SET @mariadb_slave_capability = 4")
        .await?;
    let request = BinlogStreamRequest::new(cfg.server_id)
        .with_filename(start.file.as_bytes())
        .with_pos(start.pos);
    let mut stream = stream_conn.get_binlog_stream(request).await?;
    let mut json = StdoutSink::new(std::io::sink(), "bench", None);
    let mut out = Vec::new();
    let mut events = 0u64;
    let t0 = Instant::now();
    while let Some(ev) = stream.next().await {
        decoder.handle(&ev?, &mut out, &mut NoLookup).await?;
        for msg in out.drain(..) {
            if let SourceMessage::Change(_) = msg {
                events += 1;
                if with_json {
                    json.write(&msg)?;
                }
            }
        }
        if decoder.position() >= *end && !decoder.in_transaction() {
            break;
        }
    }
    Ok((events, t0.elapsed().as_secs_f64()))
}

/// Peak resident set size of this process (Linux `VmHWM`).
pub fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}
