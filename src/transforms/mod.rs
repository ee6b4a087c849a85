//! Transforms: stages between the source and the sink. Per message, in order: event metrics. Per batch,
//! just before the lake merges it: data quality (`quality`), which needs the batch as Arrow columns.

mod metrics;
pub mod quality;

pub use metrics::EventMetrics;

use crate::event::SourceMessage;

/// A transform that cannot go on stops the pipeline with a definite error (nothing is lost: the sink has
/// not made the message durable).
#[derive(Debug, thiserror::Error)]
#[error("transform {transform}: {detail}")]
pub struct TransformError {
    pub transform: &'static str,
    pub detail: String,
}

pub trait Transform: Send {
    /// Takes a message in source order and passes it on (possibly changed).
    fn apply(&mut self, msg: SourceMessage) -> Result<SourceMessage, TransformError>;
}
