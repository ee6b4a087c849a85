//! The lake sink's consumer: a group member reading every table topic of the connector
//! (`<topic_prefix>.<db>.<table>`), turning records back into change events, and sending what it cannot
//! read to the dead-letter topic. Newly assigned partitions are taken up at the position recorded in
//! Delta (the group's committed offsets are only for lag tools).

use super::record::read_change;
use super::schemas::SchemaLog;
use super::ConsumeError;
use crate::config::kafka::KafkaConfig;
use crate::event::ChangeEvent;
use crate::sinks::kafka::client::{base_config, bind, KafkaContext};
use crate::sinks::kafka::debezium::Modes;
use crate::sinks::kafka::records::Topics;
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A record read from a table topic.
pub struct Consumed {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// `None`: nothing to apply (a tombstone, a record of a non-table topic, or one sent to the DLQ);
    /// its offset still counts as consumed.
    pub event: Option<ChangeEvent>,
}

/// Records below which `read_many_now` decodes all on one thread: a second thread costs about as much
/// to start as decoding a dozen records.
const SPLIT_DECODING_FROM: usize = 64;

/// Records decoded as one unit of the work `read_many_now` shares between its two threads.
const DECODE_CHUNK: usize = 32;

/// A record to be read in place, borrowed from librdkafka's buffer and the schema cache: it may be
/// decoded on another thread (the borrowed message itself may not leave this one).
struct InPlace<'m> {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    /// The schema, the value and `binlake.seq`; `None` for a tombstone.
    change: Option<(&'m Arc<crate::event::TableSchema>, &'m [u8], u64)>,
}

impl InPlace<'_> {
    fn finish(&self, encoding: crate::config::kafka::Encoding, modes: Modes) -> Option<Consumed> {
        let event = match self.change {
            Some((schema, payload, seq)) => {
                Some(read_change(schema, payload, seq, encoding, modes).ok()?)
            }
            None => None,
        };
        Some(Consumed {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            event,
        })
    }
}

/// Partitions gained and lost since the last call to `take_rebalance`.
#[derive(Debug, Default)]
pub struct Rebalanced {
    /// Some partitions were taken away (with the eager protocol: all of them).
    pub revoked: bool,
    /// Partitions the group gave this member and it has not taken up yet: `assign_at` takes them up,
    /// each at its start. They stay here until it has.
    pub assigned: Vec<(String, i32)>,
    /// Held partitions paused after a failed step, to be sought again with `start_at`.
    pub restart: Vec<(String, i32)>,
}

/// librdkafka callbacks of the consumer: those of every binlake client, plus rebalances.
pub struct SinkContext {
    inner: KafkaContext,
    rebalanced: Mutex<Rebalanced>,
}

impl ClientContext for SinkContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.inner.log(level, fac, message)
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.inner.error(error, reason)
    }

    fn generate_oauth_token(
        &self,
        config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        self.inner.generate_oauth_token(config)
    }
}

/// The group's assignment is not applied in the rebalance callback, where the sink cannot yet know where
/// each partition must start: `ChangeConsumer::assign_at` applies it with a start per partition, read
/// from Delta. (Applied without one, librdkafka looks the group's committed offset up, and when that
/// answer lands after the sink has sought the partition it restarts it there: records skipped when the
/// committed offset is ahead of Delta's, a rewind when behind. A logical start that the seek overtakes
/// is no better: librdkafka then queries that logical offset again and starts there.) librdkafka keeps
/// heartbeating meanwhile, and fetches nothing from partitions not yet assigned.
impl ConsumerContext for SinkContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let mut r = self.rebalanced.lock().expect("rebalance state");
        let cooperative = is_cooperative(consumer);
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            if !cooperative {
                // an eager assignment is the whole of it: one not taken up yet (its start failed during
                // an outage) is replaced, not added to
                r.assigned.clear();
            }
            for e in tpl.elements() {
                tracing::info!(
                    topic = e.topic(),
                    partition = e.partition(),
                    "partition assigned"
                );
                let p = (e.topic().to_string(), e.partition());
                if !r.assigned.contains(&p) {
                    r.assigned.push(p);
                }
            }
            return;
        }
        let done = if cooperative {
            consumer.incremental_unassign(tpl)
        } else {
            consumer.unassign()
        };
        if let Err(e) = done {
            tracing::error!(error = %e, "giving partitions back to the group");
        }
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
            tracing::info!(partitions = tpl.count(), "partitions revoked");
        } else {
            let error: RDKafkaErrorCode = err.into();
            tracing::warn!(%error, "rebalance failed; every partition given back");
        }
        r.revoked = true;
        if cooperative && err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
            let gone: Vec<(String, i32)> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            r.assigned.retain(|a| !gone.contains(a));
            r.restart.retain(|a| !gone.contains(a));
        } else {
            r.assigned.clear();
            r.restart.clear();
        }
    }
}

fn is_cooperative<C: Consumer<SinkContext>>(consumer: &C) -> bool {
    matches!(
        consumer.rebalance_protocol(),
        RebalanceProtocol::Cooperative
    )
}

pub struct ChangeConsumer {
    consumer: StreamConsumer<SinkContext>,
    dlq: Option<FutureProducer<KafkaContext>>,
    pub schemas: SchemaLog,
    topics: Topics,
    encoding: crate::config::kafka::Encoding,
    modes: Modes,
    timeout: Duration,
    last_topic: Option<Arc<str>>,
}

/// The subscription: every `<prefix>.<db>.<table>`. Encoded names hold no `.`, so exactly two segments
/// follow the prefix; `<prefix>.transaction` and the heartbeat topic do not match.
pub fn subscription(prefix: &str) -> String {
    let escaped: String = prefix
        .chars()
        .map(|c| match c {
            '.' => "\\.".to_string(),
            c => c.to_string(),
        })
        .collect();
    format!("^{escaped}\\.[^.]+\\.[^.]+$")
}

/// `items.iter().map(f)`, in order, computed by this thread and a scoped helper taking chunks of
/// `DECODE_CHUNK` as they come. Chunks rather than halves: on two cores the flush task often has the
/// other one, and a helper given half the run would keep this thread waiting at the join; here this
/// thread takes whatever the helper has not started, so it waits for one chunk at most.
fn map_on_two_threads<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let chunks: Vec<&[T]> = items.chunks(DECODE_CHUNK).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = vec![];
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(chunk) = chunks.get(i) else {
                return done;
            };
            done.push((i, chunk.iter().map(&f).collect::<Vec<R>>()));
        }
    };
    let (mine, theirs) = std::thread::scope(|scope| {
        let helper = scope.spawn(work);
        let mine = work();
        match helper.join() {
            Ok(theirs) => (mine, theirs),
            // a panic there is one here
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    let mut by_chunk: Vec<Vec<R>> = (0..chunks.len()).map(|_| vec![]).collect();
    for (i, read) in mine.into_iter().chain(theirs) {
        by_chunk[i] = read;
    }
    by_chunk.into_iter().flatten().collect()
}

impl ChangeConsumer {
    pub fn new(config: &KafkaConfig, connector: &str) -> Result<Self, ConsumeError> {
        let prefix = config.prefix(connector).to_string();
        let client = |e: rdkafka::error::KafkaError| ConsumeError::Client(e.to_string());
        let context = KafkaContext::new(config, None);
        let scram = context.scram();
        let consumer: StreamConsumer<SinkContext> = super::consumer_config(config)
            .set("group.id", config.group_id(connector))
            .set("auto.offset.reset", "earliest")
            .set(
                "topic.metadata.refresh.interval.ms",
                config.consumer.topic_refresh_ms.to_string(),
            )
            // while a Delta commit runs, the prefetch queue fills up and librdkafka stops fetching for
            // this long (default 1000 ms): after the commit, the queue empties in a fraction of that and
            // the loop would sit idle for the rest
            .set("fetch.queue.backoff.ms", "20")
            .set(
                "session.timeout.ms",
                config.consumer.session_timeout_ms.to_string(),
            )
            .set(
                "max.poll.interval.ms",
                config.consumer.max_poll_interval_ms.to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (config.consumer.session_timeout_ms / 3).max(1).to_string(),
            )
            .create_with_context(SinkContext {
                inner: context,
                rebalanced: Mutex::new(Rebalanced::default()),
            })
            .map_err(client)?;
        bind(scram, consumer.client());
        let dlq = if config.consumer.dlq {
            let context = KafkaContext::new(config, None);
            let scram = context.scram();
            let producer: FutureProducer<KafkaContext> = base_config(config)
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .create_with_context(context)
                .map_err(client)?;
            bind(scram, producer.client());
            Some(producer)
        } else {
            None
        };
        Ok(ChangeConsumer {
            consumer,
            dlq,
            schemas: SchemaLog::open(config, &prefix)?,
            topics: Topics { prefix },
            encoding: config.encoding,
            modes: Modes {
                decimal: config.decimal_handling_mode,
                bigint_unsigned: config.bigint_unsigned_handling_mode,
            },
            timeout: Duration::from_secs(config.request_timeout_secs),
            last_topic: None,
        })
    }

    /// Creates the dead-letter topic unless it exists (brokers without auto-creation refuse records to
    /// an absent topic), so the first unreadable record does not stop the sink.
    pub async fn ensure_dead_letter_topic(&self, config: &KafkaConfig) -> Result<(), ConsumeError> {
        if self.dlq.is_none() {
            return Ok(());
        }
        let admin = crate::sinks::kafka::client::admin_client(config)
            .map_err(|e| ConsumeError::Client(e.to_string()))?;
        let name = self.topics.dead_letters();
        let spec = crate::sinks::kafka::client::TopicSpec {
            name: &name,
            partitions: 1,
            replication_factor: config.topics.replication_factor,
            config: vec![("cleanup.policy", "delete")],
        };
        crate::sinks::kafka::client::ensure_topic(&admin, &spec, self.timeout)
            .await
            .map_err(|e| {
                if e.is_transient() {
                    ConsumeError::Transient(e.to_string())
                } else {
                    ConsumeError::Client(e.to_string())
                }
            })
    }

    /// Joins the group on every table topic of the connector. Called after the dead-letter topic exists:
    /// the subscription matches it, and a topic appearing under a formed group rebalances it.
    pub fn subscribe(&self) -> Result<(), ConsumeError> {
        self.consumer
            .subscribe(&[&subscription(&self.topics.prefix)])
            .map_err(|e| ConsumeError::Client(e.to_string()))
    }

    /// Topics under the prefix that hold no table's changes.
    pub fn is_bookkeeping(&self, topic: &str) -> bool {
        topic == self.topics.offsets() || topic == self.topics.dead_letters()
    }

    /// Whether `take_rebalance` has something to report.
    pub fn rebalance_pending(&self) -> bool {
        let r = self.consumer.context().rebalanced.lock().expect("state");
        r.revoked || !r.assigned.is_empty() || !r.restart.is_empty()
    }

    /// What changed since the last call. The assigned partitions not taken up yet are reported each
    /// time until `assign_at` takes them up.
    pub fn take_rebalance(&self) -> Option<Rebalanced> {
        let mut r = self.consumer.context().rebalanced.lock().expect("state");
        let changed = r.revoked || !r.assigned.is_empty() || !r.restart.is_empty();
        changed.then(|| Rebalanced {
            revoked: std::mem::take(&mut r.revoked),
            assigned: r.assigned.clone(),
            restart: std::mem::take(&mut r.restart),
        })
    }

    /// Takes up assigned partitions, each at its start (`Offset::Invalid`: the group's committed offset).
    /// With the eager protocol this is the whole assignment at once.
    pub fn assign_at(&self, starts: &[(String, i32, Offset)]) -> Result<(), ConsumeError> {
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, at) in starts {
            let at = match at {
                Offset::Beginning => self.first_offset(topic, *partition)?,
                other => *other,
            };
            tpl.add_partition_offset(topic, *partition, at)
                .map_err(|e| {
                    ConsumeError::Client(format!("{topic}[{partition}] at {at:?}: {e}"))
                })?;
        }
        let done = if is_cooperative(&self.consumer) {
            self.consumer.incremental_assign(&tpl)
        } else {
            self.consumer.assign(&tpl)
        };
        done.map_err(|e| ConsumeError::Transient(format!("taking up the assignment: {e}")))?;
        // librdkafka keeps a partition's application pause across a revocation and a new assignment:
        // one paused by `restart_assigned` and revoked before its restart would never fetch again
        self.consumer.resume(&tpl).map_err(|e| {
            ConsumeError::Transient(format!("resuming the assigned partitions: {e}"))
        })?;
        let mut r = self.consumer.context().rebalanced.lock().expect("state");
        r.assigned
            .retain(|(t, p)| !starts.iter().any(|(st, sp, _)| st == t && sp == p));
        Ok(())
    }

    /// Pauses every partition this member holds and queues them to be started again, as if newly
    /// assigned: after a failed step (a flush that did not commit, a record that could not be read) the
    /// sink must read again from the position Delta holds, or a later offset could commit past a gap.
    pub fn restart_assigned(&self) -> Result<(), ConsumeError> {
        let held = self
            .consumer
            .assignment()
            .map_err(|e| ConsumeError::Transient(format!("reading the assignment: {e}")))?;
        self.consumer
            .pause(&held)
            .map_err(|e| ConsumeError::Transient(format!("pausing the assignment: {e}")))?;
        let mut r = self.consumer.context().rebalanced.lock().expect("state");
        for e in held.elements() {
            let p = (e.topic().to_string(), e.partition());
            if !r.restart.contains(&p) {
                r.restart.push(p);
            }
        }
        Ok(())
    }

    /// Starts fetching a held, paused partition at `offset` (`Offset::Invalid`: the group's committed
    /// offset). The seek is retried for a few seconds before it counts as failed.
    pub async fn start_at(
        &self,
        topic: &str,
        partition: i32,
        offset: Offset,
    ) -> Result<(), ConsumeError> {
        let offset = match offset {
            Offset::Invalid => self.committed(topic, partition)?,
            other => other,
        };
        // A logical offset makes librdkafka look the real one up after the seek; the resume below then
        // outdates that lookup, which it retries only after 500 ms. The partition's first offset, asked
        // for here, starts the fetch at once.
        let offset = match offset {
            Offset::Beginning => self.first_offset(topic, partition)?,
            other => other,
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        let mut attempts = 0;
        loop {
            match self.consumer.seek(topic, partition, offset, self.timeout) {
                Ok(()) => break,
                Err(e) if attempts < 50 => {
                    attempts += 1;
                    tracing::debug!(topic, partition, error = %e, "seek not possible yet");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    return Err(ConsumeError::Transient(format!(
                        "seeking {topic}[{partition}] to {offset:?}: {e}"
                    )))
                }
            }
        }
        self.consumer
            .resume(&tpl)
            .map_err(|e| ConsumeError::Transient(format!("resuming {topic}[{partition}]: {e}")))
    }

    /// The partition's first offset (`super::first_offset`); a failure is transient and the start is
    /// tried again.
    fn first_offset(&self, topic: &str, partition: i32) -> Result<Offset, ConsumeError> {
        super::first_offset(&self.consumer, topic, partition, self.timeout).map_err(|e| {
            ConsumeError::Transient(format!(
                "reading the first offset of {topic}[{partition}]: {e}"
            ))
        })
    }

    /// The group's committed offset of a partition, or its beginning without one.
    fn committed(&self, topic: &str, partition: i32) -> Result<Offset, ConsumeError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        let committed = self
            .consumer
            .committed_offsets(tpl, self.timeout)
            .map_err(|e| {
                ConsumeError::Transient(format!(
                    "reading the group's offset of {topic}[{partition}]: {e}"
                ))
            })?;
        Ok(
            match committed
                .find_partition(topic, partition)
                .map(|e| e.offset())
            {
                Some(o @ Offset::Offset(_)) => o,
                _ => Offset::Beginning,
            },
        )
    }

    /// Commits `(topic, partition, next offset)` to the group, for lag tools only.
    pub fn commit(&self, positions: &[(Arc<str>, i32, i64)]) {
        if positions.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p, next) in positions {
            if tpl
                .add_partition_offset(t, *p, Offset::Offset(*next))
                .is_err()
            {
                return;
            }
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            // the group offset only serves lag tools; progress is in Delta
            tracing::debug!(error = %e, "committing group offsets");
        }
    }

    /// The next record, borrowed from the consumer until dropped. Cancel-safe: a record is only taken
    /// once this returns.
    pub async fn recv(&self) -> Result<BorrowedMessage<'_>, ConsumeError> {
        self.consumer
            .recv()
            .await
            .map_err(|e| ConsumeError::Transient(e.to_string()))
    }

    /// Reads records in place, in order, when nothing has to be waited for or sent: a tombstone of a
    /// table topic, or a record whose schema is known and that decodes. `None`: it takes `read` (a
    /// bookkeeping topic, a schema not read yet, a record for the dead-letter topic). This is the path
    /// of nearly every record, and it copies none. The JSON decoding of a long run is split between
    /// this thread and a second one: it is most of the sink loop's work, and the flush leaves a core
    /// for it.
    pub fn read_many_now<M: Message>(&self, msgs: &[M]) -> Vec<Option<Consumed>> {
        let jobs: Vec<Option<InPlace>> = msgs.iter().map(|m| self.in_place(m)).collect();
        let (encoding, modes) = (self.encoding, self.modes);
        if jobs.len() < 2 * SPLIT_DECODING_FROM {
            return jobs
                .iter()
                .map(|j| j.as_ref()?.finish(encoding, modes))
                .collect();
        }
        map_on_two_threads(&jobs, |j| j.as_ref()?.finish(encoding, modes))
    }

    /// What reading a record in place takes, looked up on this thread; `None` as for `read_many_now`.
    fn in_place<'m, M: Message>(&'m self, msg: &'m M) -> Option<InPlace<'m>> {
        let (partition, offset) = (msg.partition(), msg.offset());
        let Some(payload) = msg.payload() else {
            let topic = self.schemas.known_topic(msg.topic())?.clone();
            return Some(InPlace {
                topic,
                partition,
                offset,
                change: None,
            });
        };
        let (seq, version) = record_headers(msg).ok()?;
        if marks_drop(msg) {
            return None; // rare: read on the ordinary path, which knows the mark
        }
        let (topic, schema) = self.schemas.cached(msg.topic(), version)?;
        Some(InPlace {
            topic: topic.clone(),
            partition,
            offset,
            change: Some((schema, payload, seq)),
        })
    }

    /// A record read back into its change event; one that cannot be read goes to the dead-letter topic
    /// (and counts as consumed) or, without one, stops the sink.
    pub async fn read(&mut self, msg: OwnedMessage) -> Result<Consumed, ConsumeError> {
        // one allocation per topic, not per record
        let topic = match &self.last_topic {
            Some(t) if **t == *msg.topic() => t.clone(),
            _ => {
                let t: Arc<str> = Arc::from(msg.topic());
                self.last_topic = Some(t.clone());
                t
            }
        };
        let (partition, offset) = (msg.partition(), msg.offset());
        let skip = Consumed {
            topic: topic.clone(),
            partition,
            offset,
            event: None,
        };
        if self.is_bookkeeping(&topic) || msg.payload().is_none() {
            // a tombstone follows a delete, whose record already carried the change
            return Ok(skip);
        }
        match self.decode(&msg).await {
            Ok(event) => Ok(Consumed {
                event: Some(event),
                ..skip
            }),
            Err(Undecodable::Sink(e)) => Err(e),
            Err(Undecodable::Record(error)) => {
                crate::observe::METRICS
                    .kafka_dead_letters
                    .with_label_values(&[&*topic])
                    .inc();
                let Some(dlq) = &self.dlq else {
                    return Err(ConsumeError::Unreadable {
                        topic: topic.to_string(),
                        partition,
                        offset,
                        error,
                    });
                };
                tracing::warn!(topic = %topic, partition, offset, %error, "record sent to the dead-letter topic");
                dead_letter(dlq, &self.topics.dead_letters(), &msg, &error, self.timeout).await?;
                Ok(skip)
            }
        }
    }

    async fn decode(&mut self, msg: &OwnedMessage) -> Result<ChangeEvent, Undecodable> {
        let (seq, version) = record_headers(msg).map_err(poison)?;
        let schema = match self.schemas.get(msg.topic(), version).await {
            Ok(s) => s,
            // the record names a schema the publisher never wrote: this record is the problem
            Err(e @ ConsumeError::SchemaMissing { .. }) => return Err(poison(&e.to_string())),
            Err(e) => return Err(Undecodable::Sink(e)),
        };
        let read = read_change(
            &schema,
            msg.payload().unwrap_or_default(),
            seq,
            self.encoding,
            self.modes,
        );
        let mut ev = match read {
            Ok(ev) => ev,
            Err(e) if e.is_schema_mismatch() => {
                // the cached schema is not the one this record was written with: read the
                // schema-change topic on for that version (transient; the partitions restart)
                self.schemas.forget(msg.topic(), version);
                return Err(Undecodable::Sink(ConsumeError::Transient(format!(
                    "{}[{}]@{}: {e}; reading the schema-change topic again",
                    msg.topic(),
                    msg.partition(),
                    msg.offset()
                ))));
            }
            Err(e) => {
                return Err(poison(&format!(
                    "{e} (kafka.encoding is {:?})",
                    self.encoding
                )))
            }
        };
        if ev.op == crate::event::Op::Truncate && marks_drop(msg) {
            ev.op = crate::event::Op::Drop;
        }
        Ok(ev)
    }
}

/// The header that tells a DROP from a TRUNCATE (both are `"op": "t"` in the envelope).
pub const DROP_HEADER: &str = "binlake.dropped";

fn marks_drop<M: Message>(msg: &M) -> bool {
    msg.headers()
        .is_some_and(|h| h.iter().any(|h| h.key == DROP_HEADER))
}

/// A binlake record's `binlake.seq` and `binlake.schema_version` headers.
fn record_headers<M: Message>(msg: &M) -> Result<(u64, u32), &'static str> {
    let header = |name: &str| -> Option<&str> {
        msg.headers()?
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| std::str::from_utf8(h.value?).ok())
    };
    let seq = header("binlake.seq")
        .and_then(|s| s.parse().ok())
        .ok_or("no numeric binlake.seq header: not published by binlake")?;
    let version = header("binlake.schema_version")
        .and_then(|s| s.parse().ok())
        .ok_or("no numeric binlake.schema_version header: not published by binlake")?;
    Ok((seq, version))
}

enum Undecodable {
    /// This record cannot be read: it goes to the dead-letter topic (or stops the sink without one).
    Record(String),
    /// Reading it failed for a reason that is not the record's (the schema topic, the broker).
    Sink(ConsumeError),
}

fn poison(why: &str) -> Undecodable {
    Undecodable::Record(why.to_string())
}

/// Copies `msg` to the dead-letter topic with where it came from and why, and waits for the broker:
/// the offset is only recorded as consumed once the record is safe there.
async fn dead_letter(
    producer: &FutureProducer<KafkaContext>,
    dlq: &str,
    msg: &OwnedMessage,
    error: &str,
    timeout: Duration,
) -> Result<(), ConsumeError> {
    let partition = msg.partition().to_string();
    let offset = msg.offset().to_string();
    let mut headers = msg.headers().cloned().unwrap_or_else(OwnedHeaders::new);
    for (key, value) in [
        ("binlake.dlq.error", error),
        ("binlake.dlq.topic", msg.topic()),
        ("binlake.dlq.partition", &partition),
        ("binlake.dlq.offset", &offset),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(dlq).headers(headers);
    if let Some(k) = msg.key() {
        record = record.key(k);
    }
    if let Some(v) = msg.payload() {
        record = record.payload(v);
    }
    producer
        .send(record, timeout)
        .await
        .map(|_| ())
        .map_err(|(e, _)| ConsumeError::DeadLetter {
            topic: msg.topic().to_string(),
            partition: msg.partition(),
            offset: msg.offset(),
            dlq: dlq.to_string(),
            error: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_shared_between_two_threads_comes_back_in_order() {
        for n in [
            0,
            1,
            DECODE_CHUNK - 1,
            DECODE_CHUNK,
            5 * DECODE_CHUNK + 7,
            4096,
        ] {
            let items: Vec<u64> = (0..n as u64).collect();
            let threads = std::sync::Mutex::new(std::collections::HashSet::new());
            let out = map_on_two_threads(&items, |i| {
                threads.lock().unwrap().insert(std::thread::current().id());
                i * 3
            });
            assert_eq!(
                out,
                items.iter().map(|i| i * 3).collect::<Vec<_>>(),
                "n = {n}"
            );
            assert!(threads.lock().unwrap().len() <= 2);
        }
    }
}
