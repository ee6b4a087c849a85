//! High availability: of several `binlake run` tasks of one connector exactly one is active. They share a
//! lease under `<lake.root>/_binlake/ha/<connector>/`:
//!
//! - `epoch-<n>.json`: created once, with a conditional PUT that fails when the object exists, by the task
//!   that became leader for epoch `n`. Two standbys racing for `n` cannot both win.
//! - `heartbeat-<n>.json`: rewritten by the leader of epoch `n` every `ha.renew_secs`.
//!
//! A standby watches the newest epoch's heartbeat and takes over (creates `n + 1`) when it has not changed
//! for `ha.takeover_secs` of the standby's own clock, so clocks of different hosts never have to agree.
//! A leader that finds a newer epoch, or cannot renew for half the takeover time, steps down.
//!
//! Fencing: every Delta commit of the leader carries the `txn` `binlake-ha:<connector>` = its epoch, and
//! a new leader first commits that `txn` to each table it opens. A deposed leader's later commit then
//! conflicts on that app id (or, after a reload, sees a newer epoch) and is refused: two leaders never
//! interleave their commits, even when the old one was only paused.

use crate::config::HaConfig;
use deltalake::ObjectStoreError;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The epoch this process leads (0: not a leader, or HA off); read by every Delta commit.
pub static EPOCH: AtomicI64 = AtomicI64::new(0);

/// Set when HA is on: the fence's Delta `txn` app id, `binlake-ha:<connector>`.
static FENCE_APP: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Turns fencing on for this process's Delta commits (before any table is opened).
pub fn enable(connector: &str) {
    let _ = FENCE_APP.set(format!("binlake-ha:{connector}"));
}

/// The fence every Delta commit must carry: `None` with HA off; an error once this process does not
/// lead (never elected, or deposed), so nothing is committed.
pub fn fence() -> Result<Option<(String, i64)>, crate::sinks::lake::LakeError> {
    let Some(app) = FENCE_APP.get() else {
        return Ok(None);
    };
    match EPOCH.load(Ordering::SeqCst) {
        0 => Err(crate::sinks::lake::LakeError::Definite(
            "this task does not lead the connector (HA): it stopped without committing; the leader \
             writes the lake"
                .into(),
        )),
        epoch => Ok(Some((app.clone(), epoch))),
    }
}

/// A table fenced by a newer leader than this process's epoch.
pub fn deposed_error(epoch: i64, fenced: i64) -> crate::sinks::lake::LakeError {
    EPOCH.store(0, Ordering::SeqCst);
    crate::sinks::lake::LakeError::Definite(format!(
        "a newer leader (epoch {fenced}) has taken over from this task (epoch {epoch}): stopping without \
         committing"
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum HaError {
    #[error("HA lease under {root}: {source}")]
    Store {
        root: String,
        source: ObjectStoreError,
    },
    #[error("HA lease: {0}")]
    Lake(#[from] crate::sinks::lake::LakeError),
    #[error("HA lease object {path} is corrupt: {detail}; remove the folder {folder} while no binlake of this connector runs")]
    Corrupt {
        path: String,
        folder: String,
        detail: String,
    },
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
struct Heartbeat {
    holder: String,
    epoch: i64,
    /// Increases with every renewal: a standby only needs to see it change.
    beat: u64,
    /// The leader stopped cleanly (drained): a standby takes over at once.
    #[serde(default)]
    released: bool,
}

pub struct Lease {
    connector: String,
    store: deltalake::logstore::ObjectStoreRef,
    root: String,
    holder: String,
    cfg: HaConfig,
}

/// What the leader's renewal task reports when it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deposed {
    /// A standby created a newer epoch.
    NewerEpoch(i64),
    /// The heartbeat could not be written for half the takeover time.
    CannotRenew(String),
}

impl std::fmt::Display for Deposed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Deposed::NewerEpoch(e) => write!(f, "another task took the lead (epoch {e})"),
            Deposed::CannotRenew(why) => write!(f, "the lease could not be renewed: {why}"),
        }
    }
}

fn epoch_path(n: i64) -> deltalake::Path {
    deltalake::Path::from(format!("epoch-{n:020}.json"))
}

fn heartbeat_path(n: i64) -> deltalake::Path {
    deltalake::Path::from(format!("heartbeat-{n:020}.json"))
}

impl Lease {
    pub fn new(
        lake: &crate::config::LakeConfig,
        connector: &str,
        cfg: &HaConfig,
    ) -> Result<Self, HaError> {
        let root = format!(
            "{}/_binlake/ha/{}",
            lake.root.trim_end_matches('/'),
            crate::names::encode(connector).map_err(crate::sinks::lake::LakeError::from)?
        );
        let url =
            deltalake::ensure_table_uri(&root).map_err(crate::sinks::lake::LakeError::from)?;
        let table = deltalake::DeltaTableBuilder::from_url(url)
            .map_err(crate::sinks::lake::LakeError::from)?
            .with_storage_options(crate::sinks::lake::storage_options(lake))
            .build()
            .map_err(crate::sinks::lake::LakeError::from)?;
        Ok(Lease {
            connector: connector.to_string(),
            store: table.object_store(),
            root,
            holder: format!("{}-{}", hostname(), uuid_like()),
            cfg: cfg.clone(),
        })
    }

    fn err(&self, source: ObjectStoreError) -> HaError {
        HaError::Store {
            root: self.root.clone(),
            source,
        }
    }

    /// The newest epoch anyone created (0: none yet).
    async fn newest_epoch(&self) -> Result<i64, HaError> {
        use futures_util::TryStreamExt;
        let objects: Vec<_> = self
            .store
            .list(None)
            .try_collect()
            .await
            .map_err(|e| self.err(e))?;
        Ok(objects
            .iter()
            .filter_map(|o| {
                o.location
                    .filename()?
                    .strip_prefix("epoch-")?
                    .strip_suffix(".json")?
                    .parse::<i64>()
                    .ok()
            })
            .max()
            .unwrap_or(0))
    }

    async fn heartbeat(&self, epoch: i64) -> Result<Option<Heartbeat>, HaError> {
        match self.store.get(&heartbeat_path(epoch)).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(|e| self.err(e))?;
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| HaError::Corrupt {
                        path: heartbeat_path(epoch).to_string(),
                        folder: self.root.clone(),
                        detail: e.to_string(),
                    })
            }
            Err(ObjectStoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Creates epoch `n` unless someone did: true when this process now leads it.
    async fn claim(&self, n: i64) -> Result<bool, HaError> {
        let body = serde_json::to_vec(&Heartbeat {
            holder: self.holder.clone(),
            epoch: n,
            beat: 0,
            released: false,
        })
        .expect("serializes");
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.store.put_opts(&epoch_path(n), body.into(), opts).await {
            Ok(_) => Ok(true),
            Err(ObjectStoreError::AlreadyExists { .. } | ObjectStoreError::Precondition { .. }) => {
                Ok(false)
            }
            Err(e) => Err(self.err(e)),
        }
    }

    async fn beat(&self, epoch: i64, beat: u64) -> Result<(), ObjectStoreError> {
        self.write_heartbeat(epoch, beat, false).await
    }

    async fn write_heartbeat(
        &self,
        epoch: i64,
        beat: u64,
        released: bool,
    ) -> Result<(), ObjectStoreError> {
        let body = serde_json::to_vec(&Heartbeat {
            holder: self.holder.clone(),
            epoch,
            beat,
            released,
        })
        .expect("serializes");
        self.store
            .put(&heartbeat_path(epoch), body.into())
            .await
            .map(|_| ())
    }

    /// Waits as a standby until this process leads an epoch, which it returns; `None` when cancelled
    /// first. The newest epoch's heartbeat must stand still for `takeover_secs` before a takeover.
    pub async fn acquire(&self, cancel: &CancellationToken) -> Result<Option<i64>, HaError> {
        let takeover = Duration::from_secs(self.cfg.takeover_secs);
        let poll = Duration::from_secs(self.cfg.renew_secs);
        let mut watched: Option<(i64, Option<Heartbeat>)> = None;
        let mut still_since = Instant::now();
        loop {
            let newest = self.newest_epoch().await?;
            if newest == 0 && self.claim(1).await? {
                return self.lead(1).await.map(Some);
            }
            let seen = (newest, self.heartbeat(newest).await?);
            let released = seen.1.as_ref().is_some_and(|h| h.released);
            if released && self.claim(newest + 1).await? {
                tracing::info!(
                    epoch = newest + 1,
                    "the leader stopped cleanly; taking over"
                );
                return self.lead(newest + 1).await.map(Some);
            }
            if watched.as_ref() != Some(&seen) {
                if watched.is_none() {
                    tracing::info!(epoch = newest, takeover_secs = takeover.as_secs(), "standby: another task holds the lease; this one takes over when its heartbeat stops");
                }
                watched = Some(seen);
                still_since = Instant::now();
            } else if still_since.elapsed() >= takeover {
                let next = newest + 1;
                if self.claim(next).await? {
                    tracing::warn!(
                        epoch = next,
                        silent_secs = still_since.elapsed().as_secs(),
                        "the leader's heartbeat stopped; taking over"
                    );
                    return self.lead(next).await.map(Some);
                }
                // another standby won the race: watch its epoch from now
                watched = None;
                still_since = Instant::now();
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = cancel.cancelled() => return Ok(None),
            }
        }
    }

    async fn lead(&self, epoch: i64) -> Result<i64, HaError> {
        self.beat(epoch, 1).await.map_err(|e| self.err(e))?;
        EPOCH.store(epoch, Ordering::SeqCst);
        crate::observe::METRICS
            .ha_role
            .with_label_values(&[&self.connector])
            .set(1);
        tracing::info!(epoch, holder = %self.holder, "leading this connector");
        Ok(epoch)
    }

    /// The leader's renewal loop, until `stop` or until it is deposed; on deposition it cancels
    /// `pipeline` (the drain commits nothing: the fence refuses it) and says why.
    pub async fn renew(
        self: Arc<Self>,
        epoch: i64,
        stop: CancellationToken,
        pipeline: CancellationToken,
    ) -> Option<Deposed> {
        let every = Duration::from_secs(self.cfg.renew_secs);
        let give_up = Duration::from_secs(self.cfg.takeover_secs) / 2;
        let mut beat = 1u64;
        let mut renewed = Instant::now();
        let deposed = loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => break None,
            }
            // a newer epoch means a standby took over: this process must not write any more
            match self.store.head(&epoch_path(epoch + 1)).await {
                Ok(_) => break Some(Deposed::NewerEpoch(epoch + 1)),
                Err(ObjectStoreError::NotFound { .. }) => {}
                Err(e) => tracing::warn!(error = %e, "checking the HA lease"),
            }
            beat += 1;
            match self.beat(epoch, beat).await {
                Ok(()) => renewed = Instant::now(),
                Err(e) if renewed.elapsed() >= give_up => {
                    break Some(Deposed::CannotRenew(e.to_string()))
                }
                Err(e) => tracing::warn!(error = %e, "renewing the HA lease; retrying"),
            }
        };
        if let Some(why) = &deposed {
            EPOCH.store(0, Ordering::SeqCst);
            crate::observe::METRICS
                .ha_role
                .with_label_values(&[&self.connector])
                .set(0);
            tracing::error!(epoch, reason = %why, "stepping down: this task no longer leads the connector");
            pipeline.cancel();
        }
        deposed
    }
}

impl Lease {
    /// After a clean stop (everything committed): tells the standbys to take over now instead of after
    /// `takeover_secs`. Not after a deposition: the lease is someone else's then.
    pub async fn release(&self, epoch: i64) {
        if EPOCH.load(Ordering::SeqCst) != epoch {
            return;
        }
        EPOCH.store(0, Ordering::SeqCst);
        crate::observe::METRICS
            .ha_role
            .with_label_values(&[&self.connector])
            .set(0);
        if let Err(e) = self.write_heartbeat(epoch, u64::MAX, true).await {
            tracing::warn!(error = %e, "releasing the HA lease; a standby takes over after ha.takeover_secs");
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

/// A process-unique id: the pid and start time are enough to tell two holders apart.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{:x}", std::process::id(), nanos)
}

/// How `binlake run` goes on after the HA step.
pub enum Start {
    /// This task writes (HA off, or elected); `finish` it when the pipeline returns.
    Lead(Leader),
    /// Cancelled while a standby: nothing to do.
    Stopped,
}

/// The leader's side while the pipeline runs: the renewal task, if HA is on.
pub struct Leader {
    renewal: Option<Renewal>,
}

struct Renewal {
    lease: Arc<Lease>,
    epoch: i64,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Option<Deposed>>,
}

/// With `[ha] enabled`: waits as a standby (ready, so orchestrator health checks pass) until this task
/// leads, then renews the lease in the background; a deposition cancels `pipeline`.
pub async fn start(
    config: &crate::config::Config,
    pipeline: &CancellationToken,
) -> Result<Start, HaError> {
    if !config.ha.enabled {
        return Ok(Start::Lead(Leader { renewal: None }));
    }
    enable(&config.name);
    crate::observe::METRICS
        .ha_role
        .with_label_values(&[&config.name])
        .set(0);
    let lease = Arc::new(Lease::new(&config.lake, &config.name, &config.ha)?);
    crate::observe::READY.store(true, Ordering::Relaxed);
    let Some(epoch) = lease.acquire(pipeline).await? else {
        return Ok(Start::Stopped);
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(lease.clone().renew(epoch, stop.clone(), pipeline.clone()));
    Ok(Start::Lead(Leader {
        renewal: Some(Renewal {
            lease,
            epoch,
            stop,
            task,
        }),
    }))
}

impl Leader {
    /// Stops renewing; after a clean run releases the lease for a standby. Returns why this task was
    /// deposed, if it was.
    pub async fn finish(self, clean: bool) -> Option<Deposed> {
        let r = self.renewal?;
        r.stop.cancel();
        let deposed = r.task.await.ok().flatten();
        if deposed.is_none() && clean {
            r.lease.release(r.epoch).await;
        }
        deposed
    }
}
