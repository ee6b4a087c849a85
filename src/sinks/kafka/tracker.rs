//! Which records the broker has acknowledged, in source order. Records are grouped in epochs: an epoch is
//! everything sent between two source checkpoints. A checkpoint may be stored once its epoch and every
//! epoch before it have no record left unacknowledged — acknowledgements arrive out of order across
//! partitions, so a single counter would not do. The state is a counter per open epoch, not per record.

use std::collections::VecDeque;
use std::sync::Mutex;

/// A record the broker refused for good (librdkafka has already retried what can be retried).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFailure {
    pub topic: String,
    /// The record key as text (lossy UTF-8, shortened), to name the row in the error.
    pub key: String,
    pub error: rdkafka::error::KafkaError,
}

#[derive(Default)]
struct State {
    /// Epoch number of `outstanding[0]`.
    first: u64,
    /// Unacknowledged records per epoch, from `first` to the open epoch (the last one).
    outstanding: VecDeque<u64>,
    failure: Option<DeliveryFailure>,
}

#[derive(Default)]
pub struct Tracker {
    state: Mutex<State>,
    /// Woken on every acknowledgement, so a sender waiting for queue space or a drain wakes up.
    pub acked: tokio::sync::Notify,
}

impl Tracker {
    pub fn new() -> Self {
        let t = Tracker::default();
        t.state.lock().unwrap().outstanding.push_back(0);
        t
    }

    /// One more record in the open epoch; returns the epoch to pass as the record's opaque value.
    pub fn sent(&self) -> usize {
        let mut s = self.state.lock().unwrap();
        *s.outstanding.back_mut().expect("an open epoch") += 1;
        (s.first as usize) + s.outstanding.len() - 1
    }

    /// A record counted by `sent` never reached the producer's queue.
    pub fn unsent(&self, epoch: usize) {
        self.settle(epoch, None);
    }

    /// Called from the producer's thread when the broker answered for a record of `epoch`.
    pub fn settle(&self, epoch: usize, failure: Option<DeliveryFailure>) {
        {
            let mut s = self.state.lock().unwrap();
            let i = epoch as u64 - s.first;
            if let Some(n) = s.outstanding.get_mut(i as usize) {
                *n = n.saturating_sub(1);
            }
            if s.failure.is_none() {
                s.failure = failure;
            }
        }
        self.acked.notify_one();
    }

    /// Closes the open epoch (a checkpoint was sent after its records); returns the closed epoch's number.
    pub fn close_epoch(&self) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.outstanding.push_back(0);
        s.first + s.outstanding.len() as u64 - 2
    }

    /// The newest closed epoch with nothing outstanding in it or before it (None: no such epoch yet).
    /// Completed epochs are forgotten.
    pub fn completed_through(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap();
        while s.outstanding.len() > 1 && s.outstanding[0] == 0 {
            s.outstanding.pop_front();
            s.first += 1;
        }
        s.first.checked_sub(1)
    }

    /// Records sent and not yet acknowledged.
    pub fn in_flight(&self) -> u64 {
        self.state.lock().unwrap().outstanding.iter().sum()
    }

    pub fn failure(&self) -> Option<DeliveryFailure> {
        self.state.lock().unwrap().failure.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_completes_only_after_every_earlier_one() {
        let t = Tracker::new();
        let a1 = t.sent();
        let a2 = t.sent();
        assert_eq!(t.close_epoch(), 0);
        let b1 = t.sent();
        assert_eq!(t.close_epoch(), 1);
        assert_eq!(t.completed_through(), None);
        // the later epoch is acknowledged first: nothing may be stored yet
        t.settle(b1, None);
        assert_eq!(t.completed_through(), None);
        t.settle(a1, None);
        assert_eq!(t.completed_through(), None);
        t.settle(a2, None);
        assert_eq!(t.completed_through(), Some(1));
        assert_eq!(t.in_flight(), 0);
        // an empty epoch completes at once; the open epoch never counts
        assert_eq!(t.close_epoch(), 2);
        assert_eq!(t.completed_through(), Some(2));
        let c = t.sent();
        assert_eq!(t.completed_through(), Some(2));
        t.unsent(c);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn the_first_failure_is_kept() {
        let t = Tracker::new();
        let e = t.sent();
        let fail = |topic: &str| DeliveryFailure {
            topic: topic.into(),
            key: "{}".into(),
            error: rdkafka::error::KafkaError::Canceled,
        };
        t.settle(e, Some(fail("a")));
        t.settle(e, Some(fail("b")));
        assert_eq!(t.failure().unwrap().topic, "a");
    }
}
