//! The lake side of the sink loop, so that a commit overlaps consumption: a flush runs as a task of its
//! own (the lake moves into it and comes back when it has committed) while the loop goes on receiving
//! and decoding records into a hold bounded like one batch. When the flush lands, the held records go
//! to the lake in the order they came, before any later one.

use super::{settle, IngestError};
use crate::config::LakeConfig;
use crate::sinks::lake::from_kafka::{Flushed, KafkaLake};
use crate::sinks::lake::LakeError;
use crate::sources::kafka::consumer::{ChangeConsumer, Consumed};
use std::sync::Arc;
use tokio::task::{JoinError, JoinHandle};

type Landed = Result<(KafkaLake, Result<Flushed, LakeError>), JoinError>;

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
        self.flight.is_some() && (self.held.len() >= self.max_rows || self.held_bytes >= self.max_bytes)
    }

    pub async fn accept(&mut self, c: Consumed) -> Result<(), LakeError> {
        match &mut self.idle {
            Some(lake) => {
                lake.accept(c).await?;
                self.flush_if_due();
            }
            None => {
                self.held_bytes += 64 + c.event.as_ref().map_or(0, |e| e.approx_bytes());
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
        let mut lake = self.idle.take().expect("checked");
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

    /// Takes the lake back from a finished flush. The held records stay held until `release_held`.
    pub fn landed(&mut self, landed: Landed) -> Result<Flushed, IngestError> {
        self.flight = None;
        let (lake, flushed) = landed.map_err(|e| {
            LakeError::Definite(format!("the flush task ended abnormally: {e}"))
        })?;
        self.idle = Some(lake);
        Ok(flushed?)
    }

    /// Waits for the flush under way, if any, and settles it (group offsets, partitions read again,
    /// held records to the lake): afterwards the lake is idle.
    pub async fn land(&mut self, consumer: &ChangeConsumer) -> Result<(), IngestError> {
        if let Some(flight) = self.flight.as_mut() {
            let landed = flight.await;
            let flushed = self.landed(landed)?;
            settle(consumer, flushed, self).await?;
        }
        Ok(())
    }

    /// Hands the held records to the lake, except those of partitions about to be read again from
    /// Delta's position (the seek delivers them again).
    pub async fn release_held(
        &mut self,
        reread: &[(Arc<str>, i32, Option<i64>)],
    ) -> Result<(), LakeError> {
        let lake = self.idle.as_mut().expect("released after landing");
        self.held_bytes = 0;
        for c in std::mem::take(&mut self.held) {
            if reread
                .iter()
                .any(|(t, p, _)| *t == c.topic && *p == c.partition)
            {
                continue;
            }
            lake.accept(c).await?;
        }
        self.flush_if_due();
        Ok(())
    }

    /// After a failed step: the flush under way lands whatever its outcome, and everything buffered or
    /// held is dropped; every partition must be sought again to Delta's position.
    pub async fn abandon(&mut self) -> Result<(), IngestError> {
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
            .expect("landed")
            .forget_partitions();
        Ok(())
    }
}
