//! Stage orchestration: source → bounded channel → transforms → sink. The sink persists progress only
//! after everything before it is durable downstream. SIGTERM/SIGINT cancel: the source stops at a
//! transaction boundary and the sink drains; a failing sink stops the source within seconds.

use crate::config::Config;
use crate::event::SourceMessage;
use crate::sinks::{Sink, SinkError};
use crate::sources::mysql::runner::run_source;
use crate::sources::mysql::{SourceError, StreamIdentity};
use crate::transforms::{EventMetrics, Transform, TransformError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Messages buffered between source and sink (also bounded in bytes by `source.buffer_max_mb`).
pub const CHANNEL_CAPACITY: usize = 8192;

/// How long a failed pipeline waits for the source to stop before abandoning it.
const SOURCE_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How often sinks get a chance to flush by time.
const TICK: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Transform(#[from] TransformError),
    #[error("the source task ended abnormally: {0}")]
    SourceTask(#[from] tokio::task::JoinError),
}

/// Runs source → transforms → sink until cancelled or a definite error; the sink drains on the way out.
pub async fn run(
    config: &Config,
    sink: &mut impl Sink,
    cancel: CancellationToken,
) -> Result<(), PipelineError> {
    sink.watch_stop(cancel.clone());
    let start = sink.resume_point().await?;
    let mut identity = StreamIdentity::new(&config.name, sink.resnapshot_hint());
    identity.sink_keeps_unsaved_rows = sink.keeps_rows_past_checkpoint();
    let (tx, mut rx) = crate::channel::channel(
        CHANNEL_CAPACITY,
        (config.source.buffer_max_mb as usize) << 20,
    );
    let source_config = config.clone();
    let source_cancel = cancel.clone();
    let source_run =
        async move { run_source(&source_config, start, tx, source_cancel, &identity).await };
    let mut source = if sink.runs_beside_source() {
        SourceTask::Inline(Box::pin(source_run))
    } else {
        SourceTask::Spawned(tokio::spawn(source_run))
    };
    let mut source_ended = None;
    let mut tick = tokio::time::interval(TICK);
    let mut transforms: Vec<Box<dyn Transform>> = vec![Box::new(EventMetrics::default())];
    let result: Result<(), PipelineError> = loop {
        tokio::select! {
            batch = rx.recv() => match batch {
                Some(batch) => {
                    if let Err(e) = deliver(batch, &mut transforms, sink).await { break Err(e) }
                }
                None => break Ok(()),
            },
            // an inline source runs only while polled here; a spawned one is merely watched
            ended = &mut source, if source_ended.is_none() => source_ended = Some(ended),
            _ = tick.tick() => if let Err(e) = sink.tick().await { break Err(e.into()) },
        }
    };
    if let Err(e) = result {
        crate::observe::HEALTHY.store(false, std::sync::atomic::Ordering::Relaxed);
        // The sink failed; the last durable checkpoint stays as it is. Close the channel before waiting for
        // the source: one blocked in `send` on a full channel fails at once instead of waiting forever for
        // a receiver that no longer reads.
        drop(rx);
        cancel.cancel();
        if source_ended.is_none()
            && tokio::time::timeout(SOURCE_STOP_TIMEOUT, &mut source)
                .await
                .is_err()
        {
            tracing::warn!("source did not stop in time after the sink failed; abandoning it");
            source.abort();
        }
        return Err(e);
    }
    sink.finish().await?;
    let ended = match source_ended {
        Some(ended) => ended,
        None => (&mut source).await,
    };
    ended?.map_err(|e| {
        crate::observe::HEALTHY.store(false, std::sync::atomic::Ordering::Relaxed);
        PipelineError::from(e)
    })
}

/// The source's task: its own (the default: decoding and the sink's work run on two cores), or a future
/// polled by the pipeline's loop for a sink whose work per event is as light as decoding, where handing
/// each batch to another core costs more than it gains (cache misses, frees across threads) and the
/// second core is better left to whoever reads the sink's output.
enum SourceTask {
    Spawned(tokio::task::JoinHandle<Result<(), SourceError>>),
    Inline(std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SourceError>> + Send>>),
}

impl SourceTask {
    fn abort(&self) {
        if let SourceTask::Spawned(task) = self {
            task.abort();
        }
        // an inline source stops when the pipeline returns and drops it
    }
}

impl std::future::Future for SourceTask {
    type Output = Result<Result<(), SourceError>, tokio::task::JoinError>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.get_mut() {
            SourceTask::Spawned(task) => std::pin::Pin::new(task).poll(cx),
            SourceTask::Inline(run) => run.as_mut().poll(cx).map(Ok),
        }
    }
}

/// Hands one batch through the transforms to the sink, message by message.
async fn deliver(
    batch: Vec<SourceMessage>,
    transforms: &mut [Box<dyn Transform>],
    sink: &mut impl Sink,
) -> Result<(), PipelineError> {
    for msg in batch {
        let msg = transforms.iter_mut().try_fold(msg, |m, t| t.apply(m))?;
        sink.send(msg).await?;
    }
    Ok(())
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
