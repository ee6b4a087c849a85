//! binlake command line: wiring only.

use anyhow::Context;
use binlake::config::{Config, TableFilter};
use binlake::pipeline::{self, StdoutSink};
use binlake::source::preflight;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "binlake",
    version,
    about = "MySQL/MariaDB change-data-capture into Kafka and Delta Lake"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Snapshot (first run), then stream the binlog continuously; resumes from the checkpoint.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "lake")]
        sink: SinkKind,
    },
    /// Run SQL over the lake's Delta tables (named `db.table`) with DataFusion.
    Query {
        #[arg(long, short)]
        config: PathBuf,
        sql: String,
    },
    /// Compact small files and vacuum unreferenced ones in every lake table (also runs on a schedule).
    Maintain {
        #[arg(long, short)]
        config: PathBuf,
        /// Override lake.vacuum_retention_hours for this run.
        #[arg(long)]
        vacuum_retention_hours: Option<u64>,
    },
    /// Verify the server and user can deliver a lossless change stream; non-zero exit when not.
    Check {
        #[arg(long, short)]
        config: PathBuf,
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

#[derive(Clone, Copy, ValueEnum)]
enum SinkKind {
    /// Delta tables under `lake.root`, exactly once (direct mode: binlog → lake in one process).
    Lake,
    /// One Debezium-envelope JSON line per event on stdout; checkpoint in `state.dir`.
    Stdout,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    binlake::observe::init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, sink } => {
            let config = Config::load(&config)?;
            if !config.observe.listen.is_empty() {
                binlake::observe::serve(&config.observe.listen).await?;
            }
            let cancel = CancellationToken::new();
            pipeline::cancel_on_signals(cancel.clone());
            match sink {
                SinkKind::Lake => {
                    let mut sink =
                        binlake::lake::batch::LakeSink::new(&config.lake, &config.name).await?;
                    pipeline::run(&config, &mut sink, cancel).await?;
                }
                SinkKind::Stdout => {
                    let store = binlake::checkpoint::CheckpointStore::new(config.checkpoint_path());
                    let out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
                    let mut sink = StdoutSink::new(out, &config.name, Some(store));
                    pipeline::run(&config, &mut sink, cancel).await?;
                }
            }
        }
        Command::Query { config, sql } => {
            let config = Config::load(&config)?;
            binlake::lake::query::sql(&config.lake, &sql)
                .await?
                .show()
                .await?;
        }
        Command::Maintain {
            config,
            vacuum_retention_hours,
        } => {
            let mut config = Config::load(&config)?;
            if let Some(h) = vacuum_retention_hours {
                config.lake.vacuum_retention_hours = h;
            }
            for line in binlake::lake::query::maintain_all(&config.lake, &config.name).await? {
                println!("{line}");
            }
        }
        Command::Check { config } => {
            let config = Config::load(&config)?;
            let store = binlake::checkpoint::CheckpointStore::new(config.checkpoint_path());
            let checkpoint = store.load()?;
            let report = preflight::run(&config, checkpoint.as_ref()).await;
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
            let result = binlake::source::offline::decode_file(&file, filter, |msg| {
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
