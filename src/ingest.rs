//! `binlake sink`: the table topics → the lake, exactly once. One loop: records from the consumer into
//! per-table batches, a flush when a batch is due, and rebalances handled between records — revoked
//! partitions drop what they buffered, assigned ones start at the offset after the one Delta holds.
//! A flush commits in a task of its own while the loop goes on reading records into a bounded hold
//! (`writer`), so decoding and the Delta commit run on both cores; a rebalance waits for it to land.

use crate::config::Config;
use crate::retry::Backoff;
use crate::sinks::lake::from_kafka::{Flushed, KafkaLake};
use crate::sinks::lake::LakeError;
use crate::sources::kafka::consumer::{ChangeConsumer, Rebalanced};
use crate::sources::kafka::ConsumeError;
use futures_util::FutureExt;
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};
use rdkafka::Offset;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use writer::Writer;

mod writer;

/// How often the loop checks whether a batch is due when no record arrives.
const TICK: Duration = Duration::from_millis(100);

/// Records taken in one turn of the loop while librdkafka has them ready (and decoded together, on two
/// threads); cancellation, a landed flush and the tick are looked at between turns.
const DRAIN: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    #[error(transparent)]
    Lake(#[from] LakeError),
}

/// Runs until cancelled (then commits what it buffered) or a definite error.
pub async fn run(config: &Config, cancel: CancellationToken) -> Result<(), IngestError> {
    run_with_alerts(config, cancel, crate::alerts::Alerts::off()).await
}

/// `run`, reporting quality findings to `alerts`.
pub async fn run_with_alerts(
    config: &Config,
    cancel: CancellationToken,
    alerts: crate::alerts::Alerts,
) -> Result<(), IngestError> {
    let kafka = config.kafka()?;
    let mut consumer = ChangeConsumer::new(kafka, &config.name)?;
    let mut backoff = Backoff::transient();
    while let Err(e) = consumer.ensure_dead_letter_topic(kafka).await {
        match backoff.next_delay().filter(|_| e.is_transient()) {
            Some(wait) => {
                tracing::warn!(error = %e, "creating the dead-letter topic; retrying");
                tokio::time::sleep(wait).await;
            }
            None => return Err(e.into()),
        }
    }
    consumer.subscribe()?;
    let mut lake = KafkaLake::new(&config.lake, &config.quality, &config.name)
        .await
        .with_alerts(alerts)
        .with_compacted_topics(kafka.topics.cleanup_policy.contains("compact"));
    lake.watch_stop(cancel.clone());
    let mut lake = Writer::new(lake, &config.lake);
    crate::observe::READY.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut tick = tokio::time::interval(TICK);
    // a broker or store outage is waited out, however long, as the source waits out its server
    let retry = || Backoff::reconnect(Duration::from_secs(30));
    let mut backoff = retry();
    let result = loop {
        let step = tokio::select! {
            _ = cancel.cancelled() => break Ok(()),
            // only the receive is raced: reading the record (schema lookups, the DLQ) must not be cut off;
            // while a flush commits, records are read into a hold as large as one batch
            m = consumer.recv(), if !lake.hold_full() => match m {
                Ok(m) => match take_ready(&consumer, &mut lake, m) {
                    Ok(copied) => async {
                        for m in copied {
                            read_copied(&mut consumer, &mut lake, m).await?;
                        }
                        Ok(())
                    }.await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e.into()),
            },
            landed = lake.flushing() => async {
                let flushed = lake.landed(landed)?;
                settle(&consumer, flushed, &mut lake).await?;
                if let Some(idle) = lake.idle_mut() {
                    rebalance(&mut consumer, idle).await?;
                }
                Ok(())
            }.await,
            _ = tick.tick() => async {
                if let Some(idle) = lake.idle_mut() {
                    rebalance(&mut consumer, idle).await?;
                }
                lake.flush_if_due();
                Ok(())
            }.await,
        };
        match step {
            Ok(()) => backoff = retry(),
            Err(e) if is_transient(&e) => match backoff.next_delay() {
                Some(wait) => {
                    crate::observe::error("kafka_sink", "transient");
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "kafka sink; reading again from Delta's positions");
                    // The failed step may have lost records the consumer already handed over (a batch whose
                    // commit gave up, a record whose schema could not be read); taking later ones would
                    // commit offsets past them. Everything restarts from what Delta holds.
                    if let Err(e) = lake.abandon().await {
                        break Err(e.into());
                    }
                    if let Err(e) = consumer.restart_assigned() {
                        // without the restart the forgotten partitions would be ignored for good
                        break Err(e.into());
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = cancel.cancelled() => break Ok(()),
                    }
                }
                None => break Err(e),
            },
            Err(e) => break Err(e),
        }
    };
    // drain: the flush under way lands, then what is buffered goes to Delta (retries bounded by the
    // drain budget)
    let result = match result {
        Ok(()) => land(&consumer, &mut lake).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        crate::observe::error("kafka_sink", "definite");
        crate::observe::HEALTHY.store(false, std::sync::atomic::Ordering::Relaxed);
        return Err(e);
    }
    let flushed = lake.idle_mut().expect("landed").flush().await?;
    consumer.commit(&flushed.committed);
    tracing::info!("kafka sink stopped; buffered records committed");
    Ok(())
}

/// Gives the lake the records of one turn read in place, in order, up to the first that must be
/// copied out (it waits for something): that one and the rest are returned, for `read_copied`. What
/// that record settles (a rebalance, a schema) may change how the later ones are read.
fn take_ready(
    consumer: &ChangeConsumer,
    lake: &mut Writer,
    first: BorrowedMessage<'_>,
) -> Result<Vec<OwnedMessage>, IngestError> {
    let ready = ready_records(consumer, first, lake.room().min(DRAIN))?;
    let in_place = ready.records.len() - usize::from(!ready.settled);
    let mut read = consumer
        .read_many_now(&ready.records[..in_place])
        .into_iter();
    let mut records = ready.records.into_iter();
    let mut copied = vec![];
    let now = Instant::now();
    for m in records.by_ref() {
        match read.next().flatten() {
            Some(c) => lake.accept(c, now)?,
            None => {
                copied.push(m.detach());
                break;
            }
        }
    }
    copied.extend(records.map(|m| m.detach()));
    Ok(copied)
}

/// Records received in one turn of the loop: the first, then what librdkafka has ready now.
struct Ready<'c> {
    records: Vec<BorrowedMessage<'c>>,
    /// No rebalance is pending after the last one. Otherwise the last came with one: it is read only
    /// after the rebalance is settled (copied out, since that waits), and nothing after it is taken.
    settled: bool,
}

/// The received record `first` and up to `max` in all that are ready now, left where librdkafka holds
/// them (nearly every one is read in place).
fn ready_records<'c>(
    consumer: &'c ChangeConsumer,
    first: BorrowedMessage<'c>,
    max: usize,
) -> Result<Ready<'c>, IngestError> {
    let mut ready = Ready {
        records: vec![first],
        settled: !consumer.rebalance_pending(),
    };
    while ready.settled && ready.records.len() < max {
        let Some(m) = consumer.recv().now_or_never() else {
            break;
        };
        ready.records.push(m?);
        ready.settled = !consumer.rebalance_pending();
    }
    Ok(ready)
}

/// A record copied out of librdkafka: a rebalance is settled before it counts, and it is read with
/// whatever waits that takes.
async fn read_copied(
    consumer: &mut ChangeConsumer,
    lake: &mut Writer,
    m: OwnedMessage,
) -> Result<(), IngestError> {
    // A rebalance happens inside the receive: settle it before the record counts. A record of a
    // partition started just now was fetched before the start, which delivers it again if it is still
    // due; taken now, a later offset could go ahead of a gap.
    let started = if consumer.rebalance_pending() {
        land(consumer, lake).await?;
        rebalance(consumer, lake.idle_mut().expect("landed")).await?
    } else {
        vec![]
    };
    if started
        .iter()
        .any(|(t, p)| t == m.topic() && *p == m.partition())
    {
        return Ok(());
    }
    let c = consumer.read(m).await?;
    lake.accept(c, Instant::now())?;
    Ok(())
}

/// Waits for the flush under way, if any, and settles it: afterwards the lake is idle. Settling hands
/// the held records to the lake, which may start the next flush: that one lands too.
async fn land(consumer: &ChangeConsumer, lake: &mut Writer) -> Result<(), IngestError> {
    while let Some(landed) = lake.wait().await {
        let flushed = lake.landed(landed)?;
        settle(consumer, flushed, lake).await?;
    }
    Ok(())
}

fn is_transient(e: &IngestError) -> bool {
    match e {
        IngestError::Consume(c) => c.is_transient(),
        IngestError::Lake(l) => l.is_transient(),
        IngestError::Config(_) => false,
    }
}

/// Applies the partition changes the consumer saw: a revocation drops what was buffered (the new owner
/// reads it from Delta's position); assigned partitions are taken up at the offset after Delta's, and
/// held ones restarted after a failed step are sought there. Returns the partitions started.
async fn rebalance(
    consumer: &mut ChangeConsumer,
    lake: &mut KafkaLake,
) -> Result<Vec<(String, i32)>, IngestError> {
    let Some(Rebalanced {
        revoked,
        assigned,
        restart,
    }) = consumer.take_rebalance()
    else {
        return Ok(vec![]);
    };
    if revoked {
        lake.forget_partitions();
    }
    // on an error the assigned partitions stay to be taken up, and the loop restarts the held ones
    let mut starts = vec![];
    for (topic, partition) in &assigned {
        let at = start_of(consumer, lake, topic, *partition).await?;
        starts.push((topic.clone(), *partition, at));
    }
    if !starts.is_empty() {
        consumer.assign_at(&starts)?;
    }
    for (topic, partition) in &restart {
        let at = start_of(consumer, lake, topic, *partition).await?;
        consumer.start_at(topic, *partition, at).await?;
    }
    Ok(assigned.into_iter().chain(restart).collect())
}

/// Where a partition starts: the offset after the one Delta holds; for a bookkeeping topic, or a topic
/// no schema record names (its records are skipped or dead-lettered), the group's position
/// (`Offset::Invalid`), so dead letters are not sent twice.
async fn start_of(
    consumer: &mut ChangeConsumer,
    lake: &mut KafkaLake,
    topic: &str,
    partition: i32,
) -> Result<Offset, IngestError> {
    let topic: Arc<str> = Arc::from(topic);
    let schema = if consumer.is_bookkeeping(&topic) {
        None
    } else {
        consumer.schemas.latest(&topic).await?
    };
    let Some(schema) = schema else {
        return Ok(Offset::Invalid);
    };
    let in_delta = lake.position(&topic, partition, &schema).await?;
    let at = lake.start_offset(&topic, partition, in_delta);
    tracing::info!(topic = %topic, partition, offset = ?at, "reading from the position Delta holds");
    Ok(at)
}

/// After a flush: commit the group's offsets and read again what another writer took over; then the
/// records held while it committed go to the lake (those of partitions read again are dropped: the
/// restart delivers them again).
async fn settle(
    consumer: &ChangeConsumer,
    flushed: Flushed,
    lake: &mut Writer,
) -> Result<(), IngestError> {
    consumer.commit(&flushed.committed);
    // the other partitions' buffered records were committed; only these restart
    for (topic, partition, in_delta) in &flushed.reread {
        let at = lake
            .idle_mut()
            .expect("settled after landing")
            .start_offset(topic, *partition, *in_delta);
        consumer.start_at(topic, *partition, at).await?;
    }
    lake.release_held(&flushed.reread)?;
    Ok(())
}
