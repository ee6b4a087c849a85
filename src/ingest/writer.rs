//! The lake side of the sink loop, so that a Delta commit overlaps consumption: a flush runs as a task
//! of its own (the lake moves into it and comes back when it has committed) while the loop goes on
//! receiving and decoding records into a hold bounded like one batch. When the flush lands, the held
//! records go to the lake in the order they came, before any later one. The lake is never shared: it
//! is either here, idle, or inside the one flush task.

use crate::config::LakeConfig;
use crate::sinks::lake::from_kafka::{Flushed, KafkaLake};
use crate::sinks::lake::LakeError;
use crate::sources::kafka::consumer::Consumed;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::{JoinError, JoinHandle};

pub type Landed = Result<(KafkaLake, Result<Flushed, LakeError>), JoinError>;

/// Bytes counted per held record besides its row images: about what its key adds to a batch. The hold
/// counts in the batch's own measure, so that it holds a whole batch: when the flush under way lands,
/// the held records make the next batch due at once and the next flush overlaps decoding again.
const RECORD_OVERHEAD: usize = 16;

pub struct Writer {
    /// The lake, while no flush is under way.
    idle: Option<KafkaLake>,
    flight: Option<JoinHandle<(KafkaLake, Result<Flushed, LakeError>)>>,
    held: Vec<Consumed>,
    held_bytes: usize,
    max_rows: usize,
    max_bytes: usize,
}

impl Writer {
    pub fn new(lake: KafkaLake, cfg: &LakeConfig) -> Self {
        Writer {
            idle: Some(lake),
            flight: None,
            held: vec![],
            held_bytes: 0,
            max_rows: cfg.flush_max_rows.max(1),
            max_bytes: cfg.flush_max_bytes.max(1),
        }
    }

    /// The lake, unless a flush has it.
    pub fn idle_mut(&mut self) -> Option<&mut KafkaLake> {
        self.idle.as_mut()
    }

    /// The hold is as large as a batch may be: nothing more is received until the flush lands.
    pub fn hold_full(&self) -> bool {
        self.flight.is_some()
            && (self.held.len() >= self.max_rows || self.held_bytes >= self.max_bytes)
    }

    /// Records that may still be taken before the hold is full (any number while no flush runs). A
    /// turn of the loop takes at most this many, so the bytes held pass their bound by one turn at most.
    pub fn room(&self) -> usize {
        if self.flight.is_none() {
            return usize::MAX;
        }
        self.max_rows.saturating_sub(self.held.len()).max(1)
    }

    /// Gives the record (received at `now`) to the lake, or holds it while a flush runs; starts a flush
    /// when one is due.
    pub fn accept(&mut self, c: Consumed, now: Instant) -> Result<(), LakeError> {
        match &mut self.idle {
            Some(lake) => {
                lake.accept(c, now)?;
                self.flush_if_due();
            }
            None => {
                self.held_bytes +=
                    RECORD_OVERHEAD + c.event.as_ref().map_or(0, |e| e.image_bytes());
                self.held.push(c);
            }
        }
        Ok(())
    }

    /// Starts committing what the lake buffered, in a task of its own, when a batch is due.
    pub fn flush_if_due(&mut self) {
        if !self.idle.as_ref().is_some_and(KafkaLake::due) {
            return;
        }
        let mut lake = self.idle.take().expect("checked above");
        tracing::debug!("flush started");
        self.flight = Some(tokio::spawn(async move {
            let flushed = lake.flush().await;
            (lake, flushed)
        }));
    }

    /// Completes when the flush under way has committed (or failed); never, when there is none.
    /// Cancel-safe: the flush goes on, and a later call completes with it.
    pub async fn flushing(&mut self) -> Landed {
        match &mut self.flight {
            Some(flight) => flight.await,
            None => std::future::pending().await,
        }
    }

    /// Waits for the flush under way, if any (`None`: the lake is idle already).
    pub async fn wait(&mut self) -> Option<Landed> {
        match &mut self.flight {
            Some(flight) => Some(flight.await),
            None => None,
        }
    }

    /// Takes the lake back from a finished flush. The held records stay held until `release_held`.
    pub fn landed(&mut self, landed: Landed) -> Result<Flushed, LakeError> {
        self.flight = None;
        tracing::debug!(held = self.held.len(), "flush landed");
        let (lake, flushed) = landed
            .map_err(|e| LakeError::Definite(format!("the flush task ended abnormally: {e}")))?;
        self.idle = Some(lake);
        flushed
    }

    /// Hands the held records to the lake, except those of partitions about to be read again from
    /// Delta's position (the seek delivers them again).
    pub fn release_held(
        &mut self,
        reread: &[(Arc<str>, i32, Option<i64>)],
    ) -> Result<(), LakeError> {
        let lake = self.idle.as_mut().expect("released after landing");
        self.held_bytes = 0;
        let now = Instant::now();
        // drained, not replaced: the hold keeps its capacity for the next flush
        for c in self.held.drain(..) {
            if reread
                .iter()
                .any(|(t, p, _)| *t == c.topic && *p == c.partition)
            {
                continue;
            }
            lake.accept(c, now)?;
        }
        tracing::debug!("held records released");
        self.flush_if_due();
        Ok(())
    }

    /// After a failed step: the flush under way lands whatever its outcome, and everything buffered or
    /// held is dropped; every partition must be started again at Delta's position.
    pub async fn abandon(&mut self) -> Result<(), LakeError> {
        if let Some(flight) = self.flight.take() {
            let (lake, flushed) = flight.await.map_err(|e| {
                LakeError::Definite(format!("the flush task ended abnormally: {e}"))
            })?;
            if let Err(e) = flushed {
                tracing::warn!(error = %e, "the flush under way failed too");
            }
            self.idle = Some(lake);
        }
        self.held.clear();
        self.held_bytes = 0;
        self.idle
            .as_mut()
            .expect("landed above")
            .forget_partitions();
        Ok(())
    }
}
