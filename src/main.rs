//! binlake command line: wiring only.

use anyhow::Context;
use binlake::config::{Config, SinkKind, TableFilter};
use binlake::pipeline;
use binlake::sinks::stdout::StdoutSink;
use binlake::sinks::Sink;
use binlake::sources::mysql::preflight;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "binlake",
    version,
    about = "MySQL/MariaDB change-data-capture into Kafka and Delta Lake"
)]
struct Cli {
    /// Log format on stderr: text (coloured only on a terminal) or json (one object per line).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "BINLAKE_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: binlake::observe::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Snapshot (first run), then stream the binlog continuously; resumes from the checkpoint.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Override `[sink] kind` from the config.
        #[arg(long, value_enum)]
        sink: Option<SinkKind>,
    },
    /// Kafka → lake: read the table topics a `kind = "kafka"` publisher writes into the Delta tables,
    /// exactly once; run several in one consumer group to share the partitions.
    Sink {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Snapshot tables of a running connector again while it streams: writes an `execute-snapshot`
    /// signal to `source.signal_table`, which the connector reads from the binlog.
    Snapshot {
        #[arg(long, short)]
        config: PathBuf,
        /// A captured table (`db.table`); repeat for several.
        #[arg(long, required = true)]
        table: Vec<String>,
    },
    /// Run SQL over the lake's Delta tables (named `db.table`) with DataFusion.
    Query {
        #[arg(long, short)]
        config: PathBuf,
        sql: String,
    },
    /// Evaluate the table-level quality expectations over the lake now; exit 1 if one fails.
    Validate {
        #[arg(long, short)]
        config: PathBuf,
        /// Only this table (`db.table`).
        #[arg(long)]
        table: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: ValidateFormat,
        /// Also write a one-page HTML report (per table, pass/fail with observed values) to this file.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Compact small files and vacuum unreferenced ones in every lake table (also runs on a schedule).
    Maintain {
        #[arg(long, short)]
        config: PathBuf,
        /// Override lake.vacuum_retention_hours for this run.
        #[arg(long)]
        vacuum_retention_hours: Option<u64>,
        /// Allow a retention below the 168 h floor (files running readers still need may be deleted).
        #[arg(long)]
        force: bool,
    },
    /// Verify the server and user can deliver a lossless change stream; non-zero exit when not.
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// Override `[sink] kind` (whose progress the resume-position check reads).
        #[arg(long, value_enum)]
        sink: Option<SinkKind>,
        /// Only load and validate the config (keys, values, interpolation); connect to nothing.
        #[arg(long)]
        config_only: bool,
    },
    /// Exit 0 when the URL (a binlake's `/readyz` or `/healthz`) answers 200 within the timeout: the
    /// container's health check, with no HTTP client in the image.
    Health {
        #[arg(long, default_value = "http://127.0.0.1:9464/readyz")]
        url: String,
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
    },
    /// Offline binlog tools.
    Binlog {
        #[command(subcommand)]
        command: BinlogCommand,
    },
    /// Load rows into MariaDB and measure snapshot rows/s and binlog decode events/s.
    Bench(binlake::bench::BenchArgs),
}

#[derive(Subcommand)]
enum BinlogCommand {
    /// Decode a binlog file to JSON lines (the same envelope `run --sink stdout` prints).
    Decode {
        file: PathBuf,
        /// `database.table` glob patterns to include (default: everything).
        #[arg(long, default_value = "*.*")]
        include: Vec<String>,
    },
}

/// Sends the "stopped" alert for a failed run, then lets queued alerts go out, within ECS's stop timeout
/// after the pipeline's own drain.
async fn stop_alert(
    alerts: binlake::alerts::Alerts,
    task: binlake::alerts::AlertTask,
    error: Option<String>,
) {
    if let Some(error) = error {
        alerts.send(binlake::alerts::Alert::Stopped { error });
    }
    drop(alerts);
    task.finish(std::time::Duration::from_secs(4)).await;
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ValidateFormat {
    Table,
    Json,
    Junit,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    binlake::observe::init_tracing(cli.log_format);
    match cli.command {
        Command::Run { config, sink } => {
            let mut config = Config::load(&config)?;
            config.resolve_secrets().await?;
            config.sink.kind = sink.unwrap_or(config.sink.kind);
            if !config.observe.listen.is_empty() {
                binlake::observe::serve(&config.observe.listen).await?;
            }
            let cancel = CancellationToken::new();
            pipeline::cancel_on_signals(cancel.clone());
            if config.sink.kind != SinkKind::Lake && !config.quality.expect.is_empty() {
                tracing::warn!(
                    sink = ?config.sink.kind,
                    expectations = config.quality.expect.len(),
                    "row-level quality expectations are evaluated where the lake is written (the lake sink, or `binlake sink` reading this publisher's topics); this process does not check them"
                );
            }
            // with [ha]: wait as a standby until this task leads the connector
            let leader = match binlake::ha::start(&config, &cancel).await? {
                binlake::ha::Start::Lead(leader) => leader,
                binlake::ha::Start::Stopped => return Ok(()),
            };
            let (alerts, alert_task) = binlake::alerts::spawn(&config.alerts, &config.name);
            let watch = binlake::watch::Watch::spawn(
                &config,
                alerts.clone(),
                config.sink.kind == SinkKind::Lake,
                true,
            );
            let result: anyhow::Result<()> = async {
                match config.sink.kind {
                    SinkKind::Lake => {
                        let mut sink = binlake::sinks::lake::batch::LakeSink::new(&config)
                            .await?
                            .with_alerts(alerts.clone());
                        pipeline::run(&config, &mut sink, cancel).await?;
                    }
                    SinkKind::Stdout => {
                        widen_stdout_pipe();
                        let mut sink = stdout_sink(&config);
                        pipeline::run(&config, &mut sink, cancel).await?;
                    }
                    SinkKind::Kafka => {
                        let mut sink =
                            binlake::sinks::kafka::KafkaSink::new(config.kafka()?, &config.name)
                                .await?;
                        pipeline::run(&config, &mut sink, cancel).await?;
                    }
                }
                Ok(())
            }
            .await;
            // deposed: the drain committed nothing and the error says so
            let result = match leader.finish(result.is_ok()).await {
                Some(why) => result.and(Err(anyhow::anyhow!("stepped down: {why}"))),
                None => result,
            };
            watch.stop().await;
            stop_alert(
                alerts,
                alert_task,
                result.as_ref().err().map(|e| format!("{e:#}")),
            )
            .await;
            result?;
        }
        Command::Sink { config } => {
            let mut config = Config::load(&config)?;
            config.resolve_secrets().await?;
            if !config.observe.listen.is_empty() {
                binlake::observe::serve(&config.observe.listen).await?;
            }
            let cancel = CancellationToken::new();
            pipeline::cancel_on_signals(cancel.clone());
            let (alerts, alert_task) = binlake::alerts::spawn(&config.alerts, &config.name);
            let watch = binlake::watch::Watch::spawn(&config, alerts.clone(), true, false);
            let result = binlake::ingest::run_with_alerts(&config, cancel, alerts.clone()).await;
            watch.stop().await;
            stop_alert(
                alerts,
                alert_task,
                result.as_ref().err().map(|e| format!("{e:#}")),
            )
            .await;
            result?;
        }
        Command::Validate {
            config,
            table,
            format,
            html,
        } => {
            let mut config = Config::load(&config)?;
            config.resolve_secrets().await?;
            let only = match &table {
                Some(t) => Some(
                    binlake::event::TableId::parse(t)
                        .ok_or_else(|| anyhow::anyhow!("--table {t}: write it `database.table`"))?,
                ),
                None => None,
            };
            if config.quality.tables.is_empty() {
                anyhow::bail!(
                    "no table-level expectations in the config (types: {})",
                    binlake::config::quality::TABLE_CHECK_TYPES.join(", ")
                );
            }
            use binlake::sinks::lake::validate;
            let results = validate::validate(&config, only.as_ref()).await?;
            if config.quality.record_results {
                binlake::sinks::lake::quality::record_table_results(
                    &config.lake,
                    &config.name,
                    &results,
                )
                .await?;
            }
            let text = match format {
                ValidateFormat::Table => validate::render_table(&results),
                ValidateFormat::Json => serde_json::to_string_pretty(&results)? + "\n",
                ValidateFormat::Junit => validate::render_junit(&results),
            };
            print!("{text}");
            if let Some(path) = html {
                let at = chrono::Utc::now()
                    .format("%Y-%m-%d %H:%M:%S UTC")
                    .to_string();
                let page = validate::render_html(&results, &config.name, &at);
                std::fs::write(&path, page)
                    .with_context(|| format!("writing the report to {}", path.display()))?;
            }
            if results.iter().any(|r| r.status == "fail") {
                use std::io::Write;
                std::io::stdout().flush()?;
                std::process::exit(1);
            }
        }
        Command::Snapshot { config, table } => {
            let config = Config::load(&config)?;
            let id = binlake::sources::mysql::signal::request_snapshot(&config, &table).await?;
            println!(
                "asked connector {} to snapshot {} again (signal {id} in {}); the running connector picks it up \
                 from the binlog, empties those tables in the lake and fills them chunk by chunk while it streams",
                config.name,
                table.join(", "),
                config.source.signal_table.as_deref().unwrap_or_default()
            );
        }
        Command::Query { config, sql } => {
            let config = Config::load(&config)?;
            binlake::sinks::lake::query::sql(&config.lake, &sql)
                .await?
                .show()
                .await?;
        }
        Command::Maintain {
            config,
            vacuum_retention_hours,
            force,
        } => {
            let mut config = Config::load(&config)?;
            if let Some(h) = vacuum_retention_hours {
                let floor = binlake::config::VACUUM_RETENTION_FLOOR_HOURS;
                anyhow::ensure!(
                    h >= floor || force || config.lake.vacuum_force,
                    "--vacuum-retention-hours {h} is below the {floor} h floor: vacuum could delete files that \
                     running readers still need; add --force if no reader can be older than {h} h"
                );
                config.lake.vacuum_retention_hours = h;
            }
            for line in
                binlake::sinks::lake::maintenance::maintain_all(&config.lake, &config.name).await?
            {
                println!("{line}");
            }
        }
        Command::Check {
            config,
            sink,
            config_only,
        } => {
            let mut config = Config::load(&config)?;
            config.sink.kind = sink.unwrap_or(config.sink.kind);
            if config_only {
                println!(
                    "config OK: connector {}, sink {:?}, tables {:?}",
                    config.name, config.sink.kind, config.source.include
                );
                return Ok(());
            }
            config.resolve_secrets().await?;
            // the resume position and the re-snapshot advice come from the sink that keeps the progress
            let (checkpoint, hint) = match config.sink.kind {
                SinkKind::Lake => {
                    let mut sink = binlake::sinks::lake::batch::LakeSink::new(&config).await?;
                    (sink.resume_point().await?, sink.resnapshot_hint())
                }
                SinkKind::Stdout => {
                    let mut sink = stdout_sink(&config);
                    (sink.resume_point().await?, sink.resnapshot_hint())
                }
                SinkKind::Kafka => {
                    let mut sink =
                        binlake::sinks::kafka::KafkaSink::new(config.kafka()?, &config.name)
                            .await?;
                    (sink.resume_point().await?, sink.resnapshot_hint())
                }
            };
            let identity = binlake::sources::mysql::StreamIdentity::new(&config.name, hint);
            let report = preflight::run(&config, checkpoint.as_ref(), &identity).await;
            for check in &report.checks {
                println!("{check}");
            }
            if !report.passed() {
                anyhow::bail!(
                    "{} check(s) failed; streaming would not be lossless",
                    report.failures().len()
                );
            }
            println!("all checks passed");
        }
        Command::Health { url, timeout_secs } => {
            if let Err(e) =
                binlake::observe::probe(&url, std::time::Duration::from_secs(timeout_secs)).await
            {
                eprintln!("unhealthy: {e}");
                std::process::exit(1);
            }
        }
        Command::Binlog {
            command: BinlogCommand::Decode { file, include },
        } => {
            let filter = TableFilter::from_patterns(&include, &[], &[]);
            let mut sink = StdoutSink::new(
                std::io::BufWriter::new(std::io::stdout()),
                "binlog-decode",
                None,
            );
            let mut sink_error = None;
            let result = binlake::sources::mysql::offline::decode_file(&file, filter, |msg| {
                if let Err(e) = sink.write(&msg) {
                    sink_error = Some(e);
                }
                Ok(())
            })
            .await;
            sink.flush()?;
            if let Some(e) = sink_error {
                return Err(e.into());
            }
            let events = result.with_context(|| format!("decoding {}", file.display()))?;
            tracing::info!(events, file = %file.display(), "decoded");
        }
        Command::Bench(args) => binlake::bench::run(args).await?,
    }
    Ok(())
}

/// When stdout is a pipe, asks for a 1 MiB pipe buffer (Linux allows that much by default): with the
/// default 64 KiB, the sink stalls in write(2) whenever the reader is a moment late, and every stall is a
/// hand-over between the two processes. Best effort: a file or terminal keeps what it has.
fn widen_stdout_pipe() {
    #[cfg(target_os = "linux")]
    // SAFETY: fcntl on fd 1 with an integer argument; on a non-pipe it fails with EBADF/EINVAL, ignored
    unsafe {
        libc::fcntl(1, libc::F_SETPIPE_SZ, 1 << 20);
    }
}

fn stdout_sink(config: &Config) -> StdoutSink<std::io::BufWriter<std::io::Stdout>> {
    let store = binlake::sinks::stdout::CheckpointStore::new(config.checkpoint_path());
    let out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
    StdoutSink::new(out, &config.name, Some(store))
}
