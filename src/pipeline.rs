//! Stage orchestration: source → bounded channel → sink; the sink persists the latest checkpoint only
//! after everything before it is durable downstream. SIGTERM/SIGINT cancel; the source stops at a
//! transaction boundary and the sink drains.

use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use crate::config::Config;
use crate::event::{Op, SourceMessage, TableSchema};
use crate::publish::envelope::{Envelope, SchemaChangeJson};
use crate::source::runner::run_source;
use crate::source::SourceError;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Messages buffered between source and sink; bounds memory whatever the transaction size.
pub const CHANNEL_CAPACITY: usize = 8192;
/// How often the stdout sink persists the newest checkpoint it has made durable.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("sink: {0}")]
    Sink(String),
    #[error(transparent)]
    Lake(#[from] crate::lake::LakeError),
}

/// Where change events go. The sink decides when data is durable and keeps the resume checkpoint.
pub trait Sink: Send {
    /// The checkpoint the source resumes from; `None` starts fresh (snapshot).
    fn resume_point(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Checkpoint>, PipelineError>> + Send;
    /// Takes the next message in source order; may make a batch durable.
    fn send(
        &mut self,
        msg: SourceMessage,
    ) -> impl std::future::Future<Output = Result<(), PipelineError>> + Send;
    /// Called every `TICK` so time-based flushes happen on an idle stream.
    fn tick(&mut self) -> impl std::future::Future<Output = Result<(), PipelineError>> + Send;
    /// Drain: make everything up to the last checkpoint durable and record that checkpoint.
    fn finish(&mut self) -> impl std::future::Future<Output = Result<(), PipelineError>> + Send;
}

/// One JSON line per event on stdout, in the envelope the Kafka stage publishes; the checkpoint is a
/// local file saved after stdout is flushed.
pub struct StdoutSink<W: Write + Send> {
    out: W,
    connector: String,
    store: Option<CheckpointStore>,
    pending: Option<Checkpoint>,
    last_save: Instant,
}

impl<W: Write + Send> StdoutSink<W> {
    /// `store: None` keeps no checkpoint (offline decoding).
    pub fn new(out: W, connector: &str, store: Option<CheckpointStore>) -> Self {
        StdoutSink {
            out,
            connector: connector.to_string(),
            store,
            pending: None,
            last_save: Instant::now(),
        }
    }

    pub fn write(&mut self, msg: &SourceMessage) -> Result<(), PipelineError> {
        let io = |e: std::io::Error| PipelineError::Sink(format!("stdout: {e}"));
        match msg {
            SourceMessage::Change(ev) => {
                serde_json::to_writer(
                    &mut self.out,
                    &Envelope {
                        event: ev,
                        connector: &self.connector,
                        now_ms: now_ms(),
                    },
                )
                .map_err(|e| PipelineError::Sink(e.to_string()))?;
                self.out.write_all(b"\n").map_err(io)?;
            }
            SourceMessage::SchemaChange(sc) => {
                serde_json::to_writer(&mut self.out, &SchemaChangeJson(sc))
                    .map_err(|e| PipelineError::Sink(e.to_string()))?;
                self.out.write_all(b"\n").map_err(io)?;
            }
            SourceMessage::Checkpoint(cp) => self.pending = Some(cp.clone()),
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), PipelineError> {
        self.out
            .flush()
            .map_err(|e| PipelineError::Sink(format!("stdout: {e}")))?;
        if let (Some(store), Some(cp)) = (&self.store, self.pending.take()) {
            store.save(&cp)?;
        }
        self.last_save = Instant::now();
        Ok(())
    }
}

impl<W: Write + Send> Sink for StdoutSink<W> {
    async fn resume_point(&mut self) -> Result<Option<Checkpoint>, PipelineError> {
        Ok(match &self.store {
            Some(store) => store.load()?,
            None => None,
        })
    }

    async fn send(&mut self, msg: SourceMessage) -> Result<(), PipelineError> {
        self.write(&msg)
    }

    async fn tick(&mut self) -> Result<(), PipelineError> {
        if self.pending.is_some() && self.last_save.elapsed() >= CHECKPOINT_INTERVAL {
            self.flush()?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), PipelineError> {
        self.flush()
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How often sinks get a chance to flush by time.
const TICK: Duration = Duration::from_millis(100);

/// Runs source → sink until cancelled or a definite error; the sink drains on the way out.
pub async fn run(
    config: &Config,
    sink: &mut impl Sink,
    cancel: CancellationToken,
) -> Result<(), PipelineError> {
    let start = sink.resume_point().await?;
    let (tx, mut rx) = mpsc::channel::<SourceMessage>(CHANNEL_CAPACITY);
    let source_config = config.clone();
    let source_cancel = cancel.clone();
    let source =
        tokio::spawn(async move { run_source(&source_config, start, tx, source_cancel).await });
    let mut tick = tokio::time::interval(TICK);
    let mut counters = EventCounters::default();
    let result = loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => {
                    counters.record(&msg);
                    if let Err(e) = sink.send(msg).await { break Err(e) }
                }
                None => break Ok(()),
            },
            _ = tick.tick() => if let Err(e) = sink.tick().await { break Err(e) },
        }
    };
    if result.is_err() {
        crate::observe::HEALTHY.store(false, std::sync::atomic::Ordering::Relaxed);
        // The sink failed: stop the source; the last durable checkpoint stays as it is.
        cancel.cancel();
        let _ = source.await;
        return result;
    }
    sink.finish().await?;
    match source.await {
        Ok(r) => r
            .inspect_err(|_| {
                crate::observe::HEALTHY.store(false, std::sync::atomic::Ordering::Relaxed)
            })
            .map_err(PipelineError::from),
        Err(e) => Err(PipelineError::Sink(format!("source task failed: {e}"))),
    }
}

/// Per-event metrics without per-event allocation: one counter handle per (schema version, op), the schema
/// kept alive so its address cannot be reused by another table.
#[derive(Default)]
struct EventCounters(HashMap<(usize, Op), (Arc<TableSchema>, prometheus::IntCounter)>);

impl EventCounters {
    fn record(&mut self, msg: &SourceMessage) {
        use crate::observe::{METRICS, READY};
        READY.store(true, std::sync::atomic::Ordering::Relaxed);
        match msg {
            SourceMessage::Change(ev) => {
                let key = (Arc::as_ptr(&ev.schema) as usize, ev.op);
                let (_, counter) = self.0.entry(key).or_insert_with(|| {
                    let c = METRICS
                        .events
                        .with_label_values(&[ev.schema.id().0.as_str(), ev.op.code()]);
                    (ev.schema.clone(), c)
                });
                counter.inc();
            }
            SourceMessage::Checkpoint(cp) => METRICS.checkpoint_pos.set(cp.position.pos as i64),
            SourceMessage::SchemaChange(_) => {}
        }
    }
}

/// Cancels `token` on SIGTERM or Ctrl-C.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining and saving the checkpoint"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: draining and saving the checkpoint"),
        }
        token.cancel();
    });
}
