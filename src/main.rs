//! binlake command line: wiring only.

use anyhow::Context;
use binlake::config::{Config, TableFilter};
use binlake::pipeline::{self, Sink, StdoutSink};
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
        #[arg(long, value_enum, default_value = "stdout")]
        sink: SinkKind,
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
    /// One Debezium-envelope JSON line per event on stdout.
    Stdout,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    binlake::observe::init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, sink } => {
            let config = Config::load(&config)?;
            let cancel = CancellationToken::new();
            pipeline::cancel_on_signals(cancel.clone());
            match sink {
                SinkKind::Stdout => {
                    let mut sink = StdoutSink::new(
                        std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock()),
                        &config.name,
                    );
                    pipeline::run(&config, &mut sink, cancel).await?;
                }
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
                std::io::BufWriter::new(std::io::stdout().lock()),
                "binlog-decode",
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
