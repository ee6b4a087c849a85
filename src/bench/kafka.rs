//! `--suite kafka`: the publisher as a user runs it — a `binlake run --sink kafka` process from its start
//! until the broker has acknowledged the last record (read from the process's own metrics: every change
//! handed to the producer and none in flight) — streaming `--rows` rows written in 1,000-row transactions.

use super::e2e::{peak_rss_of, quotes_from, reset_table, QUOTES};
use super::source::source_config;
use super::BenchArgs;
use crate::event::progress::Checkpoint;
use crate::sources::mysql::{connect, current_position, ServerInfo};
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
    let start = current_position(&mut conn, &info)
        .await?
        .expect("binlog on");
    let rows = args.rows;
    let mut done = 0;
    while done < rows {
        let n = 1000.min(rows - done);
        conn.query_drop(quotes_from(done + 1, done + n)).await?;
        done += n;
    }

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
             [kafka.topics]\npartitions = 3\n[observe]\nlisten = \"127.0.0.1:{port}\"\n",
            opts.ip_or_hostname(),
            opts.tcp_port(),
            opts.user().unwrap_or("root"),
            opts.pass().unwrap_or(""),
            6000 + rand::random::<u32>() % 1000,
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
        };
        let offsets = format!("{prefix}.binlake.offsets");
        seed_offsets(&brokers, &offsets, &checkpoint).await?;
        let started = Instant::now();
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["run", "--config"])
            .arg(&config)
            .env("BINLAKE_LOG", "error")
            .kill_on_drop(true)
            .spawn()?;
        let mut peak = 0;
        loop {
            peak = peak.max(peak_rss_of(child.id()));
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("binlake exited early: {status}");
            }
            if let Some(body) = metrics(port).await {
                let sent = value(&body, "binlake_kafka_records_total{kind=\"change\"}");
                let in_flight = value(&body, "binlake_kafka_in_flight_records");
                if sent >= rows as f64 && in_flight == 0.0 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        child.kill().await.ok();
        println!(
            "binlog → Kafka ({encoding} encoding, 3 partitions), 1,000-row transactions, process start to last \
             record acknowledged: {rows} events in {secs:.2} s = {:.0} events/s, peak RSS {peak} MiB",
            rows as f64 / secs
        );
    }
    conn.query_drop("DROP DATABASE binlake_bench").await?;
    std::fs::remove_dir_all(&dir).ok();
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
