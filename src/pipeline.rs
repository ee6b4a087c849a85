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
    // a fresh start (a reset, a lost checkpoint) continues above every `_seq` the sink holds: a sink
    // drops a change whose `_seq` is not above what it has of that key or partition
    let seq_floor = match &start {
        Some(_) => 0,
        None => sink.seq_floor().await?,
    };
    if seq_floor > 0 {
        tracing::info!(
            seq_floor,
            "starting without a checkpoint: `_seq` continues above what the sink holds"
        );
    }
    let mut identity = StreamIdentity::new(&config.name, sink.resnapshot_hint());
    identity.sink_keeps_unsaved_rows = sink.keeps_rows_past_checkpoint();
    let (tx, mut rx) = crate::channel::channel(
        CHANNEL_CAPACITY,
        (config.source.buffer_max_mb as usize) << 20,
    );
    let source_config = config.clone();
    let source_cancel = cancel.clone();
    let mut source = tokio::spawn(async move {
        run_source(
            &source_config,
            start,
            seq_floor,
            tx,
            source_cancel,
            &identity,
        )
        .await
    });
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
        if tokio::time::timeout(SOURCE_STOP_TIMEOUT, &mut source)
            .await
            .is_err()
        {
            tracing::warn!("source did not stop in time after the sink failed; abandoning it");
            source.abort();
        }
        return Err(e);
    }
    sink.finish().await?;
    source.await?.map_err(|e| {
        crate::observe::HEALTHY.store(false, std::sync::atomic::Ordering::Relaxed);
        PipelineError::from(e)
    })
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
