//! The sink's consumer against tansu: a partition the group assigns starts where the sink says (Delta's
//! position), even when the group's committed offset says otherwise. When the sink paused and sought
//! newly assigned partitions, librdkafka's own lookup of the committed offset could land after the seek
//! and restart the partition there: records skipped when it was ahead of Delta's, a rewind when behind.
//! The start is given the moment the assignment is seen, as in a rebalance whose schemas are known.

use crate::kafka::{brokers, unique_prefix};
use binlake::config::kafka::KafkaConfig;
use binlake::sinks::kafka::client::{admin_client, ensure_topic, TopicSpec};
use binlake::sources::kafka::consumer::ChangeConsumer;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

const RECORDS: i64 = 200;
const COMMITTED: i64 = 150;

fn kafka_config(prefix: &str) -> KafkaConfig {
    toml::from_str(&format!(
        "brokers = \"{}\"\ntopic_prefix = \"{prefix}\"\n[consumer]\ndlq = false\n",
        brokers()
    ))
    .unwrap()
}

async fn fill_topic(config: &KafkaConfig, topic: &str) {
    let admin = admin_client(config).unwrap();
    let spec = TopicSpec {
        name: topic,
        partitions: 1,
        replication_factor: 1,
        config: vec![("cleanup.policy", "delete")],
    };
    ensure_topic(&admin, &spec, Duration::from_secs(10))
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("max.in.flight.requests.per.connection", "1")
        .create()
        .unwrap();
    for n in 0..RECORDS {
        let key = n.to_string();
        let offset = producer
            .send(
                FutureRecord::to(topic).key(&key).payload(&key),
                Duration::from_secs(10),
            )
            .await
            .unwrap()
            .offset;
        assert_eq!(offset, n, "record {n} stored at offset {offset}");
    }
}

/// Commits `next` as the group's offset of `topic`[0] from outside the group, and reads it back.
fn commit_group_offset(group: &str, topic: &str, next: i64) {
    let outsider: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(next))
        .unwrap();
    outsider.commit(&tpl, CommitMode::Sync).unwrap();
    let mut ask = TopicPartitionList::new();
    ask.add_partition(topic, 0);
    let committed = outsider
        .committed_offsets(ask, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        committed.find_partition(topic, 0).unwrap().offset(),
        Offset::Offset(next),
        "the group's offset is set before the sink's consumer joins"
    );
}

/// Offsets of `topic` delivered after the assignment, with the partition started at `start` as soon as
/// it is assigned: until offset `RECORDS - 1`, and then for another second, so that a partition
/// restarted late at an earlier offset shows as records delivered again.
async fn offsets_after_start(consumer: &ChangeConsumer, topic: &str, start: i64) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = vec![];
    let mut sought = false;
    let mut last_seen_at: Option<Instant> = None;
    loop {
        if last_seen_at.is_some_and(|t| t.elapsed() > Duration::from_secs(1)) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "offsets {start}..{RECORDS} not delivered within 60 s (sought: {sought}; got {seen:?})"
        );
        // the receive runs the rebalance callback; the check right after it is the quickest start
        let got = tokio::time::timeout(Duration::from_millis(1), consumer.recv()).await;
        if let Some(r) = consumer.take_rebalance() {
            let starts: Vec<(String, i32, Offset)> = r
                .assigned
                .into_iter()
                .map(|(t, p)| {
                    let at = if t == topic {
                        Offset::Offset(start)
                    } else {
                        Offset::Invalid
                    };
                    (t, p, at)
                })
                .collect();
            sought |= starts.iter().any(|(t, _, _)| t == topic);
            consumer.assign_at(&starts).unwrap();
        }
        let Ok(m) = got else { continue };
        let m = m.unwrap();
        if m.topic() != topic {
            continue;
        }
        assert!(sought, "offset {} delivered before the start", m.offset());
        seen.push(m.offset());
        if m.offset() == RECORDS - 1 {
            last_seen_at = Some(Instant::now());
        }
        if seen.len() as i64 > 2 * RECORDS {
            return seen;
        }
    }
}

async fn start_wins_over(committed: i64, start: i64) {
    let prefix = unique_prefix("assign");
    let config = kafka_config(&prefix);
    let topic = format!("{prefix}.db.t");
    fill_topic(&config, &topic).await;
    commit_group_offset(&config.group_id("it"), &topic, committed);
    let consumer = ChangeConsumer::new(&config, "it").unwrap();
    consumer.subscribe().unwrap();
    let seen = offsets_after_start(&consumer, &topic, start).await;
    let want: Vec<i64> = (start..RECORDS).collect();
    assert_eq!(
        seen, want,
        "the sink's start at {start} must hold against the group's offset {committed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_offset_ahead_of_the_start_skips_nothing() {
    start_wins_over(COMMITTED, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_offset_behind_the_start_rewinds_nothing() {
    start_wins_over(20, COMMITTED).await;
}

/// librdkafka keeps a partition's application pause across a new assignment of it. A partition paused
/// for a restart after a failed step (`restart_assigned`) and assigned again before that restart (a
/// rebalance during the retry's wait) must fetch again: `assign_at` resumes what it assigns. (Without
/// that, a CI run's sink held a partition for minutes and read nothing from it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_partition_assigned_again_fetches() {
    let prefix = unique_prefix("assign");
    let config = kafka_config(&prefix);
    let topic = format!("{prefix}.db.t");
    fill_topic(&config, &topic).await;
    let consumer = ChangeConsumer::new(&config, "it").unwrap();
    consumer.subscribe().unwrap();
    let first = offsets_after_start(&consumer, &topic, 0).await;
    assert_eq!(first, (0..RECORDS).collect::<Vec<_>>());
    consumer.restart_assigned().unwrap();
    let queued = consumer
        .take_rebalance()
        .expect("the paused partition is queued");
    assert!(queued.restart.contains(&(topic.clone(), 0)), "{queued:?}");
    let again = 100;
    consumer
        .assign_at(&[(topic.clone(), 0, Offset::Offset(again))])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = vec![];
    while seen.last() != Some(&(RECORDS - 1)) {
        assert!(
            Instant::now() < deadline,
            "offsets {again}..{RECORDS} not delivered within 30 s after the new assignment (got {seen:?})"
        );
        let Ok(m) = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await else {
            continue;
        };
        seen.push(m.unwrap().offset());
    }
    assert_eq!(seen, (again..RECORDS).collect::<Vec<_>>());
}
