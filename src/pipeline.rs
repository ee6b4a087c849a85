//! Stage orchestration: source → bounded channel → sink; the sink persists the latest checkpoint only
//! after everything before it is durable downstream. SIGTERM/SIGINT cancel; the source stops at a
//! transaction boundary and the sink drains.

use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use crate::config::Config;
use crate::event::SourceMessage;
use crate::publish::envelope::{Envelope, SchemaChangeJson};
use crate::source::runner::run_source;
use crate::source::SourceError;
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Messages buffered between source and sink; bounds memory whatever the transaction size.
pub const CHANNEL_CAPACITY: usize = 8192;
/// How often the sink persists the newest checkpoint it has made durable.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("sink: {0}")]
    Sink(String),
}

/// Where change events go. `flush` must make everything written so far durable.
pub trait Sink {
    fn write(&mut self, msg: &SourceMessage) -> Result<(), PipelineError>;
    fn flush(&mut self) -> Result<(), PipelineError>;
}

/// One JSON line per event on stdout, in the envelope the Kafka stage publishes.
pub struct StdoutSink<W: Write> {
    out: W,
    connector: String,
}

impl<W: Write> StdoutSink<W> {
    pub fn new(out: W, connector: &str) -> Self {
        StdoutSink {
            out,
            connector: connector.to_string(),
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl<W: Write> Sink for StdoutSink<W> {
    fn write(&mut self, msg: &SourceMessage) -> Result<(), PipelineError> {
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
            SourceMessage::Checkpoint(_) => {}
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PipelineError> {
        self.out
            .flush()
            .map_err(|e| PipelineError::Sink(format!("stdout: {e}")))
    }
}

/// Runs source → sink until cancelled or a definite error; saves the checkpoint on the way and at the end.
pub async fn run(
    config: &Config,
    sink: &mut impl Sink,
    cancel: CancellationToken,
) -> Result<(), PipelineError> {
    let store = CheckpointStore::new(config.checkpoint_path());
    let start = store.load()?;
    let (tx, mut rx) = mpsc::channel::<SourceMessage>(CHANNEL_CAPACITY);
    let source_config = config.clone();
    let source_cancel = cancel.clone();
    let source =
        tokio::spawn(async move { run_source(&source_config, start, tx, source_cancel).await });

    let mut pending: Option<Checkpoint> = None;
    let mut last_save = Instant::now();
    let result = loop {
        let Some(msg) = rx.recv().await else {
            break Ok(());
        };
        if let Err(e) = sink.write(&msg) {
            break Err(e);
        }
        if let SourceMessage::Checkpoint(cp) = msg {
            pending = Some(cp);
            if last_save.elapsed() >= CHECKPOINT_INTERVAL && rx.is_empty() {
                sink.flush()?;
                store.save(pending.as_ref().unwrap())?;
                pending = None;
                last_save = Instant::now();
            }
        }
    };
    if result.is_err() {
        // The sink failed: stop the source, keep the last durable checkpoint.
        cancel.cancel();
        let _ = source.await;
        return result;
    }
    sink.flush()?;
    if let Some(cp) = pending {
        store.save(&cp)?;
    }
    match source.await {
        Ok(r) => r.map_err(PipelineError::from),
        Err(e) => Err(PipelineError::Sink(format!("source task failed: {e}"))),
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
