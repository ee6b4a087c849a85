//! Counts change events per table and operation (`binlake_events_total`) and marks the pipeline ready.

use super::{Transform, TransformError};
use crate::event::{Op, SourceMessage, TableSchema};
use std::collections::HashMap;
use std::sync::Arc;

/// Per-event metrics without per-event allocation: one counter handle per (schema version, op), the schema
/// kept alive so its address cannot be reused by another table.
#[derive(Default)]
pub struct EventMetrics(HashMap<(usize, Op), (Arc<TableSchema>, prometheus::IntCounter)>);

impl Transform for EventMetrics {
    fn apply(&mut self, msg: SourceMessage) -> Result<SourceMessage, TransformError> {
        self.record(&msg);
        Ok(msg)
    }
}

impl EventMetrics {
    fn record(&mut self, msg: &SourceMessage) {
        use crate::observe::{METRICS, READY};
        READY.store(true, std::sync::atomic::Ordering::Relaxed);
        match msg {
            SourceMessage::Change(ev) => {
                let key = (Arc::as_ptr(&ev.schema) as usize, ev.op);
                let (_, counter) = self.0.entry(key).or_insert_with(|| {
                    let table = ev.schema.id().to_string();
                    let c = METRICS
                        .events
                        .with_label_values(&[table.as_str(), ev.op.code()]);
                    (ev.schema.clone(), c)
                });
                counter.inc();
            }
            SourceMessage::Checkpoint(cp) => METRICS.checkpoint_pos.set(cp.position.pos as i64),
            SourceMessage::SchemaChange(_) => {}
        }
    }
}
