//! The channel between the source and the sink, bounded in messages and in bytes: a transaction of large
//! rows waits for the sink as surely as one of many small rows does. Messages travel in batches (the
//! changes of one binlog event, a run of snapshot rows), so the hand-over between threads costs once per
//! batch rather than once per row.

use crate::event::SourceMessage;
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// The receiving stage is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

struct Sized {
    batch: Vec<SourceMessage>,
    _bytes: OwnedSemaphorePermit,
}

#[derive(Clone)]
pub struct MessageSender {
    tx: mpsc::Sender<Sized>,
    budget: Arc<Semaphore>,
    max_bytes: usize,
}

pub struct MessageReceiver {
    rx: mpsc::Receiver<Sized>,
    budget: Arc<Semaphore>,
}

/// At most `capacity` batches and `max_bytes` bytes (estimated) in flight. One batch larger than
/// `max_bytes` still passes, alone.
pub fn channel(capacity: usize, max_bytes: usize) -> (MessageSender, MessageReceiver) {
    let max_bytes = max_bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let budget = Arc::new(Semaphore::new(max_bytes));
    let (tx, rx) = mpsc::channel(capacity);
    (
        MessageSender {
            tx,
            budget: budget.clone(),
            max_bytes,
        },
        MessageReceiver { rx, budget },
    )
}

impl MessageSender {
    /// Waits until the message fits; fails at once when the receiver is gone.
    pub async fn send(&self, msg: SourceMessage) -> Result<(), Closed> {
        self.send_all(vec![msg]).await
    }

    /// Sends `batch` as one unit, in order; an empty batch is not sent.
    pub async fn send_all(&self, batch: Vec<SourceMessage>) -> Result<(), Closed> {
        if batch.is_empty() {
            return Ok(());
        }
        let bytes: usize = batch.iter().map(SourceMessage::approx_bytes).sum();
        let bytes = bytes.clamp(1, self.max_bytes) as u32;
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(bytes)
            .await
            .map_err(|_| Closed)?;
        self.tx
            .send(Sized {
                batch,
                _bytes: permit,
            })
            .await
            .map_err(|_| Closed)
    }
}

impl MessageReceiver {
    /// The next batch; its bytes leave the budget as it is handed over (the sink bounds its own
    /// buffers). `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Vec<SourceMessage>> {
        self.rx.recv().await.map(|s| s.batch)
    }
}

impl Drop for MessageReceiver {
    fn drop(&mut self) {
        // a sender waiting for bytes would otherwise wait for a receiver that never reads again
        self.budget.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::progress::Checkpoint;
    use crate::event::BinlogPosition;

    fn checkpoint() -> SourceMessage {
        SourceMessage::Checkpoint(Checkpoint {
            next_seq: 1,
            position: BinlogPosition::new("b.000001", 4),
            gtid: None,
            snapshot: None,
            xa: None,
            tables: Default::default(),
            sync: false,
        })
    }

    #[tokio::test]
    async fn bytes_bound_the_channel_and_a_dropped_receiver_frees_the_sender() {
        let size = checkpoint().approx_bytes();
        let (tx, rx) = channel(1000, size * 2);
        tx.send(checkpoint()).await.unwrap();
        tx.send(checkpoint()).await.unwrap();
        // the third does not fit until something is received
        let third =
            tokio::time::timeout(std::time::Duration::from_millis(200), tx.send(checkpoint()))
                .await;
        assert!(third.is_err(), "blocked on bytes");
        drop(rx);
        assert_eq!(tx.send(checkpoint()).await, Err(Closed));
    }
}
