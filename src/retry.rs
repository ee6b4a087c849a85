//! The one retry policy every stage uses: exponential backoff with jitter (so restarted tasks do not retry
//! in step), a cap per wait, and an optional deadline, which the drain on SIGTERM sets so that retries
//! never outlive the stop budget.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    waits: backon::ExponentialBackoff,
    deadline: Option<Instant>,
}

impl Backoff {
    /// Waits from `min` doubling up to `max`, jittered; `attempts` bounds how many (None: no bound).
    pub fn new(min: Duration, max: Duration, attempts: Option<usize>) -> Self {
        let builder = ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_jitter();
        let builder = match attempts {
            Some(n) => builder.with_max_times(n),
            None => builder.without_max_times(),
        };
        Backoff {
            waits: builder.build(),
            builder,
            deadline: None,
        }
    }

    /// Reconnecting a source: 1 s up to `max`, for as long as it takes.
    pub fn reconnect(max: Duration) -> Self {
        Self::new(
            Duration::from_secs(1),
            max.max(Duration::from_secs(1)),
            None,
        )
    }

    /// A storage or catalog call that failed transiently.
    pub fn transient() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(30), Some(8))
    }

    /// A commit another writer got in first: retry soon, many times.
    pub fn conflict() -> Self {
        Self::new(Duration::from_millis(50), Duration::from_secs(2), Some(30))
    }

    /// No wait may end after `deadline`.
    pub fn until(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Starts over from the shortest wait (after a success).
    pub fn reset(&mut self) {
        self.waits = self.builder.build();
    }

    /// The next wait, or `None` when the attempts are used up or the wait would end past the deadline.
    pub fn next_delay(&mut self) -> Option<Duration> {
        let wait = self.waits.next()?;
        match self.deadline {
            Some(d) if Instant::now() + wait > d => None,
            _ => Some(wait),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_are_capped_and_stop() {
        let mut b = Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(40),
            Some(5),
        );
        let waits: Vec<Duration> = std::iter::from_fn(|| b.next_delay()).collect();
        assert_eq!(waits.len(), 5);
        // jitter adds up to one more wait, never beyond twice the cap
        assert!(
            waits.iter().all(|w| *w <= Duration::from_millis(80)),
            "{waits:?}"
        );
        b.reset();
        assert!(b.next_delay().is_some());
    }

    #[test]
    fn a_deadline_ends_the_retries() {
        let mut b = Backoff::reconnect(Duration::from_secs(30)).until(Some(Instant::now()));
        assert_eq!(b.next_delay(), None);
    }
}
