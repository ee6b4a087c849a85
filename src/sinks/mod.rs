//! Sinks: where change events go. A sink decides when data is durable and owns the progress: it keeps
//! the checkpoint of the last message it made durable and tells the source where to resume.

pub mod envelope;
pub mod kafka;
pub mod lake;
pub mod stdout;

use crate::event::progress::Checkpoint;
use crate::event::SourceMessage;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Lake(#[from] lake::LakeError),
    #[error(transparent)]
    Kafka(#[from] kafka::KafkaError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Progress(#[from] stdout::CheckpointError),
}

pub trait Sink: Send {
    /// The checkpoint the source resumes from; `None` starts fresh (snapshot).
    fn resume_point(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Checkpoint>, SinkError>> + Send;
    /// The highest `_seq` this sink holds (0: none), asked only when there is no checkpoint to resume
    /// from: the new stream's `_seq`s start above it, so they never sit below what the sink has.
    fn seq_floor(&mut self) -> impl std::future::Future<Output = Result<u64, SinkError>> + Send {
        async { Ok(0) }
    }
    /// Takes the next message in source order; may make a batch durable.
    fn send(
        &mut self,
        msg: SourceMessage,
    ) -> impl std::future::Future<Output = Result<(), SinkError>> + Send;
    /// Called every 100 ms so time-based flushes happen on an idle stream.
    fn tick(&mut self) -> impl std::future::Future<Output = Result<(), SinkError>> + Send;
    /// Drain: make everything up to the last checkpoint durable and record that checkpoint.
    fn finish(&mut self) -> impl std::future::Future<Output = Result<(), SinkError>> + Send;
    /// How an operator starts over with a fresh snapshot, given where this sink keeps its progress.
    fn resnapshot_hint(&self) -> String;
    /// The stop request the pipeline runs under: once it fires, retries must fit the drain budget.
    fn watch_stop(&mut self, _stop: CancellationToken) {}
    /// Whether rows handed over after the last stored checkpoint stay visible after a crash, where a
    /// restart's events under the same `_seq`s cannot replace them (records on a topic). The lake commits
    /// rows with their checkpoint; stdout readers keep the last value per `_seq`.
    fn keeps_rows_past_checkpoint(&self) -> bool {
        false
    }
}
