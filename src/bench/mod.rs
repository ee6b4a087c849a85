//! `binlake bench`: figures, not assertions. `--suite source` measures binlog decoding and snapshot reading;
//! `--suite lake` measures MERGE throughput into a large Delta table and end-to-end latency (MySQL commit →
//! row visible in Delta) at a steady change rate.

pub mod e2e;
pub mod incremental;
pub mod kafka;
pub mod lake;
pub mod source;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Admin connection (creates the bench database): mysql://user:pass@host:port
    #[arg(
        long,
        env = "BINLAKE_TEST_MYSQL_ADMIN_URL",
        default_value = "mysql://root@127.0.0.1:3406"
    )]
    pub admin_url: String,
    /// Which benchmarks to run.
    #[arg(long, value_enum, default_value = "source")]
    pub suite: Suite,
    /// Source suite: rows to load.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Source suite: also render every event as a JSON envelope (to a discarding writer).
    #[arg(long)]
    pub with_json: bool,
    /// Lake suite: rows in the target Delta table before the timed MERGEs.
    #[arg(long, default_value_t = 10_000_000)]
    pub table_rows: u64,
    /// Lake suite: rows per MERGE batch.
    #[arg(long, default_value_t = 100_000)]
    pub batch_rows: usize,
    /// Lake suite: the corrections (20% of each batch) hit keys among this many most recent ones.
    #[arg(long, default_value_t = 100_000)]
    pub correction_window: u64,
    /// Lake suite: timed MERGE batches.
    #[arg(long, default_value_t = 5)]
    pub batches: usize,
    /// Lake suite: steady change rate for the latency run (changes/s).
    #[arg(long, default_value_t = 5_000)]
    pub rate: u64,
    /// Lake suite: seconds of steady writes for the latency run.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Lake suite: where the bench lake goes (a fresh temporary directory by default).
    #[arg(long)]
    pub lake_dir: Option<std::path::PathBuf>,
    /// Lake suite: only compare `binlake run` into the lake without and with ten row-level quality
    /// expectations (`--rows` rows).
    #[arg(long)]
    pub quality: bool,
    /// Memory suite: rows of the one large transaction.
    #[arg(long, default_value_t = 1_000_000)]
    pub big_tx_rows: u64,
    /// Memory suite: rows of the transaction of wide rows.
    #[arg(long, default_value_t = 20_000)]
    pub wide_rows: u64,
    /// Memory suite: KiB per wide row.
    #[arg(long, default_value_t = 1024)]
    pub wide_row_kb: u64,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    /// In-process: binlog decoding and snapshot reading.
    Source,
    /// In-process: MERGE throughput and commit-to-visible latency.
    Lake,
    /// The `binlake run` process from start to last row, on stdout and in the lake, beside the C client.
    E2e,
    /// Peak memory of `binlake run` for one huge transaction and one of wide rows.
    Memory,
    /// `binlake run --sink kafka` to the last record acknowledged, then `binlake sink` to the last row in Delta.
    Kafka,
    /// A `--rows`-row table snapshotted while `--rate` changes/s stream to another (in-process, direct).
    Incremental,
    All,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if matches!(args.suite, Suite::Source | Suite::All) {
        source::run(&args).await?;
    }
    if matches!(args.suite, Suite::Lake) && args.quality {
        e2e::quality_overhead(&args).await?;
    } else if matches!(args.suite, Suite::Lake | Suite::All) {
        lake::run(&args).await?;
    }
    if matches!(args.suite, Suite::E2e | Suite::All) {
        e2e::run(&args).await?;
    }
    if matches!(args.suite, Suite::Memory) {
        e2e::memory(&args).await?;
    }
    if matches!(args.suite, Suite::Kafka) {
        kafka::run(&args).await?;
    }
    if matches!(args.suite, Suite::Incremental) {
        incremental::run(&args).await?;
    }
    Ok(())
}
