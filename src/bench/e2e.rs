//! The path a user runs, measured from outside: a `binlake run` process from its start until the last row
//! is delivered — counted as lines on its stdout pipe, or seen in the lake's resume marker — beside the
//! MariaDB C client reading the same table in the same run. `--suite memory` streams one very large
//! transaction and one of very wide rows into the lake and reports the process's peak resident memory.

use super::source::source_config;
use super::BenchArgs;
use crate::event::progress::Checkpoint;
use crate::event::BinlogPosition;
use crate::sources::mysql::{connect, current_position, ServerInfo};
use mysql_async::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

struct Bench {
    admin_url: String,
    dir: PathBuf,
}

/// What one `binlake run` delivered.
struct Delivered {
    secs: f64,
    peak_rss_mib: u64,
    /// Process start to the first row on stdout (start-up: config, preflight, connections).
    first_row_secs: Option<f64>,
}

impl Bench {
    /// A scratch directory `binlake-<label>-<pid>` and an admin connection to the bench server.
    async fn start(
        args: &BenchArgs,
        label: &str,
    ) -> anyhow::Result<(
        Bench,
        crate::config::SourceConfig,
        mysql_async::Conn,
        ServerInfo,
    )> {
        let dir = std::env::temp_dir().join(format!("binlake-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let cfg = source_config(&args.admin_url)?;
        let mut conn = connect(&cfg).await?;
        let info = ServerInfo::read(&mut conn).await?;
        let bench = Bench {
            admin_url: args.admin_url.clone(),
            dir,
        };
        Ok((bench, cfg, conn, info))
    }

    fn config(&self, name: &str, sink: &str, extra_source: &str) -> anyhow::Result<PathBuf> {
        self.config_with(name, sink, extra_source, "")
    }

    /// `config` with `tail` (more TOML tables, e.g. `[[quality.expect]]`) appended.
    fn config_with(
        &self,
        name: &str,
        sink: &str,
        extra_source: &str,
        tail: &str,
    ) -> anyhow::Result<PathBuf> {
        let opts = mysql_async::Opts::from_url(&self.admin_url)?;
        let text = format!(
            "name = \"{name}\"\n[source]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\npassword = \"{}\"\n\
             server_id = {}\ninclude = [\"binlake_bench.*\"]\n{extra_source}\n[sink]\nkind = \"{sink}\"\n\
             [state]\ndir = \"{}\"\n[observe]\nlisten = \"\"\n[lake]\nroot = \"{}\"\nmaintain_interval_secs = 0\n{tail}",
            opts.ip_or_hostname(),
            opts.tcp_port(),
            opts.user().unwrap_or("root"),
            opts.pass().unwrap_or(""),
            6000 + rand::random::<u32>() % 1000,
            self.dir.join(name).join("state").display(),
            self.dir.join(name).join("lake").display(),
        );
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&path, text)?;
        Ok(path)
    }

    fn spawn(&self, config: &Path, stdout: Stdio) -> anyhow::Result<tokio::process::Child> {
        Ok(tokio::process::Command::new(std::env::current_exe()?)
            .args(["run", "--config"])
            .arg(config)
            .env(
                "BINLAKE_LOG",
                "error,buoyant_kernel=off,delta_kernel=off,deltalake_core=off",
            )
            .stdout(stdout)
            .kill_on_drop(true)
            .spawn()?)
    }

    /// Process start to the `rows`-th line on its stdout.
    async fn to_stdout(&self, config: &Path, rows: u64) -> anyhow::Result<Delivered> {
        let started = Instant::now();
        let mut child = self.spawn(config, Stdio::piped())?;
        let mut out = child.stdout.take().expect("piped");
        let mut buf = vec![0u8; 1 << 20];
        let mut lines = 0u64;
        let mut first_line = None;
        while lines < rows {
            let n = out.read(&mut buf).await?;
            anyhow::ensure!(n > 0, "binlake stopped after {lines} of {rows} lines");
            lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
            if lines > 0 && first_line.is_none() {
                first_line = Some(started.elapsed().as_secs_f64());
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let peak_rss_mib = peak_rss_of(child.id());
        child.kill().await.ok();
        Ok(Delivered {
            secs,
            peak_rss_mib,
            first_row_secs: first_line,
        })
    }

    /// Process start to the lake's resume marker reaching `until` (past the snapshot).
    async fn to_lake(
        &self,
        name: &str,
        config: &Path,
        until: &BinlogPosition,
    ) -> anyhow::Result<Delivered> {
        self.to_lake_when(name, config, |cp| cp.position >= *until)
            .await
    }

    /// Process start to the first resume marker past the snapshot that satisfies `done`.
    async fn to_lake_when(
        &self,
        name: &str,
        config: &Path,
        done: impl Fn(&Checkpoint) -> bool,
    ) -> anyhow::Result<Delivered> {
        let marker = self
            .dir
            .join(name)
            .join("lake/_binlake")
            .join(format!("{name}.checkpoint.json"));
        let started = Instant::now();
        let mut child = self.spawn(config, Stdio::null())?;
        let mut peak = 0;
        loop {
            peak = peak.max(peak_rss_of(child.id()));
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("binlake exited early: {status}");
            }
            if let Ok(text) = std::fs::read_to_string(&marker) {
                if let Ok(cp) = serde_json::from_str::<Checkpoint>(&text) {
                    if cp.snapshot.as_ref().is_none_or(|s| s.complete) && done(&cp) {
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        let peak_rss_mib = peak.max(peak_rss_of(child.id()));
        child.kill().await.ok();
        Ok(Delivered {
            secs,
            peak_rss_mib,
            first_row_secs: None,
        })
    }

    /// Writes the checkpoint a run resumes from (stdout sink: state file; lake sink: resume marker).
    fn resume_at(&self, name: &str, lake: bool, position: &BinlogPosition) -> anyhow::Result<()> {
        let cp = Checkpoint {
            next_seq: 1,
            position: position.clone(),
            gtid: None,
            snapshot: None,
            xa: None,
            tables: Default::default(),
            sync: false,
        };
        let path = if lake {
            self.dir.join(name).join("lake/_binlake")
        } else {
            self.dir.join(name).join("state")
        };
        std::fs::create_dir_all(&path)?;
        std::fs::write(
            path.join(format!("{name}.checkpoint.json")),
            serde_json::to_vec(&cp)?,
        )?;
        Ok(())
    }
}

/// Peak resident set of a child process (Linux `VmHWM`), in MiB.
pub fn peak_rss_of(pid: Option<u32>) -> u64 {
    pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

pub async fn reset_table(conn: &mut mysql_async::Conn, ddl: &str) -> anyhow::Result<()> {
    conn.query_drop("DROP DATABASE IF EXISTS binlake_bench")
        .await?;
    conn.query_drop("CREATE DATABASE binlake_bench").await?;
    // the SEQUENCE engine's seq_1_to_n tables resolve in the current database
    conn.query_drop("USE binlake_bench").await?;
    conn.query_drop(ddl).await?;
    Ok(())
}

pub const QUOTES: &str = "CREATE TABLE binlake_bench.quotes (id BIGINT UNSIGNED PRIMARY KEY, symbol VARCHAR(12) NOT NULL, \
    bid DECIMAL(18,6) NOT NULL, ask DECIMAL(18,6) NOT NULL, bid_size INT NOT NULL, ask_size INT NOT NULL, \
    venue ENUM('XNAS','XNYS','ARCX','BATS') NOT NULL, ts DATETIME(6) NOT NULL)";

/// Inserts quotes 1..=`rows` in transactions of `per_transaction` rows; returns the binlog range they fill.
pub async fn load_quotes(
    conn: &mut mysql_async::Conn,
    info: &ServerInfo,
    rows: u64,
    per_transaction: u64,
) -> anyhow::Result<(BinlogPosition, BinlogPosition)> {
    let position = |p: Option<BinlogPosition>| p.ok_or_else(|| anyhow::anyhow!("binlog is off"));
    let start = position(current_position(conn, info).await?)?;
    let mut done = 0;
    while done < rows {
        let n = per_transaction.min(rows - done);
        conn.query_drop(quotes_from(done + 1, done + n)).await?;
        done += n;
    }
    let end = position(current_position(conn, info).await?)?;
    Ok((start, end))
}

pub fn quotes_from(first: u64, last: u64) -> String {
    format!(
        "INSERT INTO binlake_bench.quotes SELECT seq, CONCAT('SYM', seq % 500), 100 + (seq % 9973) / 100, \
         100.01 + (seq % 9973) / 100, seq % 1000, (seq * 7) % 1000, ELT(1 + seq % 4, 'XNAS','XNYS','ARCX','BATS'), \
         TIMESTAMPADD(MICROSECOND, seq, '2026-11-20 14:30:00') FROM seq_{first}_to_{last}"
    )
}

fn rate(rows: u64, d: &Delivered) -> String {
    let first = d
        .first_row_secs
        .map(|f| format!(" (first row after {f:.2} s)"))
        .unwrap_or_default();
    format!(
        "{rows} rows in {:.2} s = {:.0} rows/s{first}, peak RSS {} MiB",
        d.secs,
        rows as f64 / d.secs,
        d.peak_rss_mib
    )
}

/// The C client reading the whole table, for comparison in the same run.
fn c_client(admin_url: &str) -> anyhow::Result<f64> {
    let opts = mysql_async::Opts::from_url(admin_url)?;
    let mut client = std::process::Command::new("mariadb");
    client
        .args(["--no-defaults", "--quick", "-N", "-B"])
        .arg(format!("-h{}", opts.ip_or_hostname()))
        .arg(format!("-P{}", opts.tcp_port()))
        .arg(format!("-u{}", opts.user().unwrap_or("root")));
    if let Some(pass) = opts.pass().filter(|p| !p.is_empty()) {
        client.env("MYSQL_PWD", pass);
    }
    let started = Instant::now();
    let status = client
        .args(["-e", "SELECT * FROM binlake_bench.quotes"])
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "mariadb client failed");
    Ok(started.elapsed().as_secs_f64())
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let (bench, cfg, mut conn, info) = Bench::start(args, "e2e").await?;
    let dir = bench.dir.clone();

    // snapshot: one table of `rows`
    let rows = args.rows;
    reset_table(&mut conn, QUOTES).await?;
    conn.query_drop(quotes_from(1, rows)).await?;
    let secs = c_client(&args.admin_url)?;
    println!(
        "C client (mariadb --quick) reading the table: {rows} rows in {secs:.2} s = {:.0} rows/s",
        rows as f64 / secs
    );
    // the same table read and rendered in this process, for the ratio the README reports
    let (read, in_process) =
        super::source::snapshot_in_process(&cfg, &mut conn, &info, true).await?;
    println!(
        "snapshot → JSON in process (decode + render, no pipe): {read} rows in {in_process:.2} s = {:.0} rows/s",
        read as f64 / in_process
    );
    let c = bench.config(
        "snap_stdout",
        "stdout",
        "[source.snapshot]\nchunk_size = 50000",
    )?;
    let d = bench.to_stdout(&c, rows).await?;
    println!(
        "snapshot → stdout (process start to last line): {}; {:.2}× the in-process time",
        rate(rows, &d),
        d.secs / in_process
    );
    let c = bench.config("snap_lake", "lake", "[source.snapshot]\nchunk_size = 50000")?;
    let end = current_position(&mut conn, &info)
        .await?
        .expect("binlog on");
    println!(
        "snapshot → lake (process start to last row committed): {}",
        rate(rows, &bench.to_lake("snap_lake", &c, &end).await?)
    );

    // streaming: the same number of rows in 1,000-row transactions, read from the binlog
    reset_table(&mut conn, QUOTES).await?;
    let (start, end) = load_quotes(&mut conn, &info, rows, 1000).await?;
    // the same binlog range decoded and rendered in this process, for the ratio the README reports
    let (events, secs) =
        super::source::stream_in_process(&cfg, &mut conn, &start, &end, true).await?;
    println!(
        "binlog → JSON in process (same range, decode + render, no pipe): {events} events in {secs:.2} s = {:.0} events/s",
        events as f64 / secs
    );
    bench.resume_at("stream_stdout", false, &start)?;
    let c = bench.config("stream_stdout", "stdout", "")?;
    let d = bench.to_stdout(&c, rows).await?;
    println!(
        "binlog → stdout, 1,000-row transactions (process start to last line): {}; {:.2}× the in-process time",
        rate(rows, &d),
        d.secs / secs
    );
    bench.resume_at("stream_lake", true, &start)?;
    let c = bench.config("stream_lake", "lake", "")?;
    println!(
        "binlog → lake, 1,000-row transactions (process start to last row committed): {}",
        rate(rows, &bench.to_lake("stream_lake", &c, &end).await?)
    );
    conn.query_drop("DROP DATABASE binlake_bench").await?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// Ten row-level expectations on the quotes table, all passing (the work is the same either way).
const QUALITY: &str = r#"
[[quality.expect]]
id = "bid_positive"
table = "binlake_bench.quotes"
type = "between"
column = "bid"
min_value = 0
strict_min = true
[[quality.expect]]
id = "ask_positive"
table = "binlake_bench.quotes"
type = "between"
column = "ask"
min_value = 0
strict_min = true
[[quality.expect]]
id = "not_crossed"
table = "binlake_bench.quotes"
type = "column_pair_greater_than"
column_a = "ask"
column_b = "bid"
or_equal = true
[[quality.expect]]
id = "symbol_pattern"
table = "binlake_bench.quotes"
type = "match_regex"
column = "symbol"
regex = "^SYM[0-9]+$"
[[quality.expect]]
id = "symbol_length"
table = "binlake_bench.quotes"
type = "value_lengths_between"
column = "symbol"
min_value = 1
max_value = 12
[[quality.expect]]
id = "venue_known"
table = "binlake_bench.quotes"
type = "in_set"
column = "venue"
value_set = ["XNAS", "XNYS", "ARCX", "BATS"]
[[quality.expect]]
id = "sizes_not_null"
table = "binlake_bench.quotes"
type = "not_null"
column = "bid_size"
[[quality.expect]]
id = "size_sane"
table = "binlake_bench.quotes"
type = "between"
column = "ask_size"
min_value = 0
max_value = 1000000
[[quality.expect]]
id = "price_scale"
table = "binlake_bench.quotes"
type = "decimal_scale_at_most"
column = "bid"
scale = 6
[[quality.expect]]
id = "ts_not_in_future"
table = "binlake_bench.quotes"
type = "timestamp_not_in_future"
column = "ts"
tolerance_secs = 5
"#;

/// `--suite lake --quality`: the same binlog range into the lake by `binlake run`, process start to the
/// last row committed, without and with ten row-level expectations, alternating.
pub async fn quality_overhead(args: &BenchArgs) -> anyhow::Result<()> {
    let (bench, _, mut conn, info) = Bench::start(args, "quality").await?;
    let dir = bench.dir.clone();
    reset_table(&mut conn, QUOTES).await?;
    let rows = args.rows;
    let (start, end) = load_quotes(&mut conn, &info, rows, 10_000).await?;
    let mut secs: [Vec<f64>; 2] = [vec![], vec![]];
    for round in 1..=3 {
        for (i, (label, tail)) in [("plain", ""), ("quality", QUALITY)]
            .into_iter()
            .enumerate()
        {
            let name = format!("q_{label}_{round}");
            bench.resume_at(&name, true, &start)?;
            let c = bench.config_with(&name, "lake", "", tail)?;
            let d = bench.to_lake(&name, &c, &end).await?;
            let mut line = format!(
                "binlog → lake, 10,000-row transactions, {label} (round {round}): {}",
                rate(rows, &d)
            );
            if !tail.is_empty() {
                // proof of work: the evaluations the run recorded
                let lake = crate::config::Config::load(&c)?.lake;
                let n = crate::sinks::lake::query::sql(
                    &lake,
                    "SELECT count(*) AS n, sum(element_count) AS rows FROM binlake_quality.results",
                )
                .await?
                .collect()
                .await?;
                let cell =
                    |i| deltalake::arrow::util::display::array_value_to_string(n[0].column(i), 0);
                line += &format!("; {} evaluations over {} rows recorded", cell(0)?, cell(1)?);
            }
            println!("{line}");
            secs[i].push(d.secs);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (plain, quality) = (median(&mut secs[0]), median(&mut secs[1]));
    println!(
        "median: plain {plain:.2} s, with ten expectations {quality:.2} s: {:+.1}% time",
        (quality / plain - 1.0) * 100.0
    );
    conn.query_drop("DROP DATABASE binlake_bench").await?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// `--suite memory`: one transaction of `--big-tx-rows` rows, then one of `--wide-rows` rows of
/// `--wide-row-kb` KiB each, binlog → lake; the peak resident memory of the binlake process for each.
pub async fn memory(args: &BenchArgs) -> anyhow::Result<()> {
    let (bench, _, mut conn, info) = Bench::start(args, "mem").await?;
    let dir = bench.dir.clone();

    reset_table(&mut conn, QUOTES).await?;
    let start = current_position(&mut conn, &info)
        .await?
        .expect("binlog on");
    // one statement, one transaction
    conn.query_drop(quotes_from(1, args.big_tx_rows)).await?;
    bench.resume_at("big_tx", true, &start)?;
    let c = bench.config("big_tx", "lake", "")?;
    // by `_seq`, not position: a large transaction may rotate the binlog after it
    let rows = args.big_tx_rows;
    let d = bench
        .to_lake_when("big_tx", &c, |cp| cp.next_seq > rows)
        .await?;
    println!(
        "one transaction of {} rows → lake: {:.1} s, peak RSS {} MiB",
        args.big_tx_rows, d.secs, d.peak_rss_mib
    );

    // BLACKHOLE keeps the rows only in the binlog, which is all this run reads: InnoDB would take an hour
    // to store 20 GiB of them on this machine, and the table's contents play no part in the figure
    conn.query_drop("INSTALL SONAME 'ha_blackhole'").await.ok();
    reset_table(
        &mut conn,
        "CREATE TABLE binlake_bench.wide (id INT PRIMARY KEY, payload LONGTEXT NOT NULL) ENGINE=BLACKHOLE",
    )
    .await?;
    conn.query_drop("SET SESSION max_statement_time = 0")
        .await
        .ok();
    let start = current_position(&mut conn, &info)
        .await?
        .expect("binlog on");
    let kb = args.wide_row_kb;
    let mut tx = conn.start_transaction(Default::default()).await?;
    let mut done = 0;
    while done < args.wide_rows {
        let n = 100.min(args.wide_rows - done);
        tx.query_drop(format!(
            "INSERT INTO binlake_bench.wide SELECT seq, REPEAT(CHAR(65 + seq % 26), {}) FROM seq_{}_to_{}",
            kb * 1024,
            done + 1,
            done + n
        ))
        .await?;
        done += n;
    }
    tx.commit().await?;
    bench.resume_at("wide_tx", true, &start)?;
    let c = bench.config("wide_tx", "lake", "")?;
    // a transaction this large rotates the binlog after it, so the server's position is in the next file:
    // done once every row's `_seq` (1 … wide_rows) is committed
    let rows = args.wide_rows;
    let d = bench
        .to_lake_when("wide_tx", &c, |cp| cp.next_seq > rows)
        .await?;
    println!(
        "one transaction of {} rows of {kb} KiB ({} MiB) → lake: {:.1} s, peak RSS {} MiB",
        args.wide_rows,
        args.wide_rows * kb / 1024,
        d.secs,
        d.peak_rss_mib
    );
    conn.query_drop("DROP DATABASE binlake_bench").await?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
