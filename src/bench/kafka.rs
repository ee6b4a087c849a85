//! `--suite kafka`: both Kafka halves as a user runs them, each a process timed from its start. The
//! publisher (`binlake run --sink kafka`) until the broker has acknowledged the last record (its own
//! metrics: every change handed to the producer and none in flight), streaming `--rows` rows written in
//! 1,000-row transactions; then the lake sink (`binlake sink`) over those topics until every row is merged
//! into Delta (its `binlake_lake_rows_merged_total`).

use super::e2e::{load_quotes, peak_rss_of, reset_table, QUOTES};
use super::source::source_config;
use super::BenchArgs;
use crate::event::progress::Checkpoint;
use crate::sources::mysql::{connect, ServerInfo};
use mysql_async::prelude::*;
use std::time::{Duration, Instant};

async fn metrics(port: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    Some(body)
}

fn value(body: &str, name: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0.0)
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let brokers =
        std::env::var("BINLAKE_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9192".into());
    let dir = std::env::temp_dir().join(format!("binlake-kafka-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("state"))?;
    let cfg = source_config(&args.admin_url)?;
    let mut conn = connect(&cfg).await?;
    let info = ServerInfo::read(&mut conn).await?;
    reset_table(&mut conn, QUOTES).await?;
    let rows = args.rows;
    let (start, _) = load_quotes(&mut conn, &info, rows, 1000).await?;

    for encoding in ["debezium", "binlake"] {
        let prefix = format!("bench{}_{encoding}", rand::random::<u32>());
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let opts = mysql_async::Opts::from_url(&args.admin_url)?;
        let text = format!(
            "name = \"kbench\"\n[source]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\npassword = \"{}\"\n\
             server_id = {}\ninclude = [\"binlake_bench.*\"]\n[sink]\nkind = \"kafka\"\n[kafka]\n\
             brokers = \"{brokers}\"\ntopic_prefix = \"{prefix}\"\nencoding = \"{encoding}\"\n\
             [kafka.topics]\npartitions = 3\n[observe]\nlisten = \"127.0.0.1:{port}\"\n\
             [lake]\nroot = \"{}\"\n",
            opts.ip_or_hostname(),
            opts.tcp_port(),
            opts.user().unwrap_or("root"),
            opts.pass().unwrap_or(""),
            6000 + rand::random::<u32>() % 1000,
            dir.join(format!("lake-{encoding}")).display(),
        );
        let config = dir.join(format!("{encoding}.toml"));
        std::fs::write(&config, text)?;
        // resume at the position before the load (a checkpoint in the offsets topic would be the usual
        // way; the bench starts the stream there directly)
        let checkpoint = Checkpoint {
            next_seq: 1,
            position: start.clone(),
            gtid: None,
            snapshot: None,
            xa: None,
            tables: Default::default(),
            sync: false,
        };
        let offsets = format!("{prefix}.binlake.offsets");
        seed_offsets(&brokers, &offsets, &checkpoint).await?;
        let (secs, peak) = time_process("run", &config, port, |body| {
            let sent = value(body, "binlake_kafka_records_total{kind=\"change\"}");
            let in_flight = value(body, "binlake_kafka_in_flight_records");
            sent >= rows as f64 && in_flight == 0.0
        })
        .await?;
        println!(
            "binlog → Kafka ({encoding} encoding, 3 partitions), 1,000-row transactions, process start to last \
             record acknowledged: {rows} events in {secs:.2} s = {:.0} events/s, peak RSS {peak} MiB",
            rows as f64 / secs
        );
        sink(&config, port, rows, encoding).await?;
    }
    conn.query_drop("DROP DATABASE binlake_bench").await?;
    std::fs::remove_dir_all(&dir).ok();
    publish_latency(args, &brokers).await
}

/// MySQL commit → record readable on the broker, at `--rate` changes/s for `--seconds`: each row carries
/// `UTC_TIMESTAMP(6)` from its INSERT, and a consumer in this process (fetch wait 1 ms) takes the time it
/// reads the record. An upper bound of commit → acknowledged, which it includes.
async fn publish_latency(args: &BenchArgs, brokers: &str) -> anyhow::Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let src = source_config(&args.admin_url)?;
    let mut conn = connect(&src).await?;
    conn.query_drop("DROP DATABASE IF EXISTS binlake_bench_kafka")
        .await?;
    conn.query_drop("CREATE DATABASE binlake_bench_kafka")
        .await?;
    conn.query_drop(
        "CREATE TABLE binlake_bench_kafka.ticks (id BIGINT PRIMARY KEY, ts DATETIME(6) NOT NULL)",
    )
    .await?;
    let prefix = format!("benchlat{}", rand::random::<u32>());
    let text = format!(
        "name = \"klat\"\n[source]\nhost = {:?}\nport = {}\nuser = {:?}\npassword = {:?}\nserver_id = 5497\n\
         include = [\"binlake_bench_kafka.*\"]\n[sink]\nkind = \"kafka\"\n[kafka]\nbrokers = {brokers:?}\n\
         topic_prefix = \"{prefix}\"\nencoding = \"binlake\"\n[observe]\nlisten = \"\"\n",
        src.host, src.port, src.user, src.password,
    );
    let config = crate::config::Config::parse(&text, std::path::Path::new("bench.toml"))?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let publisher = {
        let (config, cancel) = (config.clone(), cancel.clone());
        tokio::spawn(async move {
            let mut sink = crate::sinks::kafka::KafkaSink::new(config.kafka()?, &config.name)
                .await
                .map_err(crate::sinks::SinkError::from)?;
            crate::pipeline::run(&config, &mut sink, cancel)
                .await
                .map_err(anyhow::Error::from)
        })
    };
    let topic = format!("{prefix}.binlake_bench_kafka.ticks");
    let total = args.rate * args.seconds;
    let reader = {
        let (brokers, topic) = (brokers.to_string(), topic.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<i64>> {
            let consumer: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", format!("{topic}.bench"))
                .set("auto.offset.reset", "earliest")
                .set("fetch.wait.max.ms", "1")
                .set("topic.metadata.refresh.interval.ms", "200")
                .create()?;
            consumer.subscribe(&[&topic])?;
            let mut latencies = vec![];
            let deadline = Instant::now() + Duration::from_secs(120);
            while (latencies.len() as u64) < total && Instant::now() < deadline {
                let Some(m) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let Ok(m) = m else { continue };
                let now = chrono::Utc::now().timestamp_micros();
                let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default())?;
                // the binlake encoding writes DATETIME as ISO 8601 (`T`, no zone)
                let ts = v["after"]["ts"]
                    .as_str()
                    .unwrap_or_default()
                    .replace('T', " ");
                let ts = ts.trim_end_matches('Z');
                let at = chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S%.f")
                    .map_err(|e| anyhow::anyhow!("ts {ts:?}: {e}"))?
                    .and_utc()
                    .timestamp_micros();
                latencies.push((now - at) / 1000);
            }
            Ok(latencies)
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await; // preflight, empty snapshot, stream connected
    let per_tick = (args.rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut next = 1u64;
    while next <= total {
        tick.tick().await;
        let values: Vec<String> = (next..(next + per_tick).min(total + 1))
            .map(|id| format!("({id}, UTC_TIMESTAMP(6))"))
            .collect();
        next += values.len() as u64;
        conn.query_drop(format!(
            "INSERT INTO binlake_bench_kafka.ticks VALUES {}",
            values.join(",")
        ))
        .await?;
    }
    let mut latencies = reader.await??;
    cancel.cancel();
    publisher.await??;
    conn.query_drop("DROP DATABASE binlake_bench_kafka").await?;
    anyhow::ensure!(
        latencies.len() as u64 == total,
        "{} of {total} records read within 120 s",
        latencies.len()
    );
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "binlog → Kafka latency (MySQL commit → record read from the broker) at {} changes/s for {} s, \
         inserts of {per_tick} rows every 10 ms: p50 {} ms, p99 {} ms, max {} ms",
        args.rate,
        args.seconds,
        pct(0.5),
        pct(0.99),
        latencies.last().unwrap()
    );
    Ok(())
}

/// Runs `binlake <command> --config config` until its metrics on `port` satisfy `done`; returns the
/// seconds from process start and the peak RSS in MiB, and kills the process.
async fn time_process(
    command: &str,
    config: &std::path::Path,
    port: u16,
    done: impl Fn(&str) -> bool,
) -> anyhow::Result<(f64, u64)> {
    let (secs, _, peak) = time_process_from(command, config, port, |_| true, done).await?;
    Ok((secs, peak))
}

/// `time_process`, also returning the seconds from process start until the metrics first satisfy
/// `begun` (the work under way: start-up behind it).
async fn time_process_from(
    command: &str,
    config: &std::path::Path,
    port: u16,
    begun: impl Fn(&str) -> bool,
    done: impl Fn(&str) -> bool,
) -> anyhow::Result<(f64, f64, u64)> {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args([command, "--config"])
        .arg(config)
        .env("BINLAKE_LOG", "error")
        .kill_on_drop(true)
        .spawn()?;
    let mut peak = 0;
    let mut begun_at = None;
    loop {
        peak = peak.max(peak_rss_of(child.id()));
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("binlake {command} exited early: {status}");
        }
        if let Some(body) = metrics(port).await {
            if begun_at.is_none() && begun(&body) {
                begun_at = Some(started.elapsed().as_secs_f64());
            }
            if done(&body) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    child.kill().await.ok();
    Ok((secs, begun_at.unwrap_or(secs), peak))
}

/// `binlake sink` over the topics just published, from process start until every row is in Delta.
async fn sink(
    config: &std::path::Path,
    port: u16,
    rows: u64,
    encoding: &str,
) -> anyhow::Result<()> {
    let merged = |body: &str| value(body, "binlake_lake_rows_merged_total");
    let (secs, first, peak) = time_process_from(
        "sink",
        config,
        port,
        |body| merged(body) > 0.0,
        |body| merged(body) >= rows as f64,
    )
    .await?;
    println!(
        "Kafka → lake ({encoding} encoding, 3 partitions), `binlake sink` process start to the last row merged \
         into Delta: {rows} rows in {secs:.2} s = {:.0} rows/s, peak RSS {peak} MiB; first rows merged after \
         {first:.2} s (start-up, group join, the first batch)",
        rows as f64 / secs
    );
    Ok(())
}

/// Writes `checkpoint` as the connector's stored position, creating the offsets topic.
async fn seed_offsets(brokers: &str, topic: &str, checkpoint: &Checkpoint) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    let admin: AdminClient<_> = config.create()?;
    admin
        .create_topics(
            [&NewTopic::new(topic, 1, TopicReplication::Fixed(-1))
                .set("cleanup.policy", "compact")],
            &AdminOptions::new(),
        )
        .await?;
    let producer: FutureProducer = config.create()?;
    let key = crate::sinks::kafka::offsets::offsets_key("kbench");
    let value = serde_json::to_vec(checkpoint)?;
    producer
        .send(
            FutureRecord::to(topic).key(&key).payload(&value),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;
    Ok(())
}
