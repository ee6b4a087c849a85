//! Noise control: which messages a stream of evaluations deserves. One message when an expectation starts
//! failing (all that start in one batch grouped together), at most one reminder per `remind_every` while
//! it keeps failing, and one when it passes again.

use super::Finding;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A message to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Expectations of one table that started failing in one batch (`reminder`: still failing).
    Failing {
        table: String,
        findings: Vec<Finding>,
        reminder: bool,
    },
    /// Expectations of one table that pass again, with how long each failed.
    Resolved {
        table: String,
        resolved: Vec<(Finding, Duration)>,
    },
    /// The pipeline stopped with a definite error; the text says why and how to fix it.
    Stopped { error: String },
}

struct Open {
    since: Instant,
    last_notified: Instant,
}

pub struct Tracker {
    remind_every: Duration,
    open: HashMap<(String, String), Open>,
}

impl Tracker {
    pub fn new(remind_every: Duration) -> Self {
        Tracker {
            remind_every,
            open: HashMap::new(),
        }
    }

    /// Failures an earlier process announced: they remind and resolve, but do not start again.
    pub fn known_failing(&mut self, failing: Vec<(String, String)>, now: Instant) {
        for key in failing {
            self.open.entry(key).or_insert(Open {
                since: now,
                last_notified: now,
            });
        }
    }

    /// The notices one batch's evaluations (of one table) call for, at `now`.
    pub fn observe(&mut self, table: &str, findings: Vec<Finding>, now: Instant) -> Vec<Notice> {
        let (mut started, mut reminders, mut resolved) = (vec![], vec![], vec![]);
        for f in findings {
            let key = (f.table.clone(), f.expectation.clone());
            match (f.failed, self.open.get_mut(&key)) {
                (true, None) => {
                    self.open.insert(
                        key,
                        Open {
                            since: now,
                            last_notified: now,
                        },
                    );
                    started.push(f);
                }
                (true, Some(open)) => {
                    if now.duration_since(open.last_notified) >= self.remind_every {
                        open.last_notified = now;
                        reminders.push(f);
                    }
                }
                (false, Some(_)) => {
                    let open = self.open.remove(&key).expect("present");
                    resolved.push((f, now.duration_since(open.since)));
                }
                (false, None) => {}
            }
        }
        let mut out = vec![];
        for (findings, reminder) in [(started, false), (reminders, true)] {
            if !findings.is_empty() {
                out.push(Notice::Failing {
                    table: table.to_string(),
                    findings,
                    reminder,
                });
            }
        }
        if !resolved.is_empty() {
            out.push(Notice::Resolved {
                table: table.to_string(),
                resolved,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(expectation: &str, failed: bool) -> Finding {
        Finding {
            table: "stocks.quotes".into(),
            expectation: expectation.into(),
            failed,
            ..Finding::default()
        }
    }

    fn names(n: &Notice) -> (String, Vec<String>) {
        match n {
            Notice::Failing {
                findings, reminder, ..
            } => (
                if *reminder { "remind" } else { "failing" }.into(),
                findings.iter().map(|f| f.expectation.clone()).collect(),
            ),
            Notice::Resolved { resolved, .. } => (
                "resolved".into(),
                resolved
                    .iter()
                    .map(|(f, _)| f.expectation.clone())
                    .collect(),
            ),
            Notice::Stopped { .. } => ("stopped".into(), vec![]),
        }
    }

    #[test]
    fn start_group_remind_once_per_period_then_resolve() {
        let mut t = Tracker::new(Duration::from_secs(3600));
        let t0 = Instant::now();
        let batch = |a, b| vec![finding("a", a), finding("b", b), finding("c", false)];
        // two start failing in one batch: one message naming both
        let n = t.observe("stocks.quotes", batch(true, true), t0);
        assert_eq!(
            n.iter().map(names).collect::<Vec<_>>(),
            [("failing".into(), vec!["a".into(), "b".into()])]
        );
        // still failing within the hour: silence
        for m in 1..60 {
            assert!(t
                .observe(
                    "stocks.quotes",
                    batch(true, true),
                    t0 + Duration::from_secs(m * 60)
                )
                .is_empty());
        }
        // after an hour: one reminder for both, then silence again
        let n = t.observe(
            "stocks.quotes",
            batch(true, true),
            t0 + Duration::from_secs(3600),
        );
        assert_eq!(
            n.iter().map(names).collect::<Vec<_>>(),
            [("remind".into(), vec!["a".into(), "b".into()])]
        );
        assert!(t
            .observe(
                "stocks.quotes",
                batch(true, true),
                t0 + Duration::from_secs(3700)
            )
            .is_empty());
        // b passes: resolved once, with how long it failed; a keeps failing quietly
        let n = t.observe(
            "stocks.quotes",
            batch(true, false),
            t0 + Duration::from_secs(3800),
        );
        assert_eq!(
            n.iter().map(names).collect::<Vec<_>>(),
            [("resolved".into(), vec!["b".into()])]
        );
        match &n[0] {
            Notice::Resolved { resolved, .. } => {
                assert_eq!(resolved[0].1, Duration::from_secs(3800))
            }
            other => panic!("{other:?}"),
        }
        assert!(t
            .observe(
                "stocks.quotes",
                batch(true, false),
                t0 + Duration::from_secs(3900)
            )
            .is_empty());
        // b fails again: a new start
        let mut fresh = Tracker::new(Duration::from_secs(3600));
        fresh.known_failing(vec![("stocks.quotes".into(), "a".into())], t0);
        assert!(
            fresh
                .observe("stocks.quotes", vec![finding("a", true)], t0)
                .is_empty(),
            "known: no new start"
        );
        let n = fresh.observe("stocks.quotes", vec![finding("a", false)], t0);
        assert_eq!(
            n.iter().map(names).collect::<Vec<_>>(),
            [("resolved".into(), vec!["a".into()])]
        );
        let n = t.observe(
            "stocks.quotes",
            batch(true, true),
            t0 + Duration::from_secs(4000),
        );
        assert_eq!(
            n.iter().map(names).collect::<Vec<_>>(),
            [("failing".into(), vec!["b".into()])]
        );
    }
}
