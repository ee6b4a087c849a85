//! The stdout sink: one Debezium-envelope JSON line per event, in the envelope the Kafka stage publishes;
//! its progress is a local checkpoint file, saved (atomically: temp file, fsync, rename) after stdout is
//! flushed, so a crash leaves the old or the new checkpoint and a replay repeats at most what followed it.

use super::envelope::{Envelope, SchemaChangeJson};
use super::{Sink, SinkError};
use crate::event::progress::Checkpoint;
use crate::event::SourceMessage;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the stdout sink persists the newest checkpoint it has made durable.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot write checkpoint {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read checkpoint {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "checkpoint {path} is corrupt ({source}); move it away to start over with a fresh snapshot"
    )]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

pub struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CheckpointStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|source| {
                CheckpointError::Corrupt {
                    path: self.path.clone(),
                    source,
                }
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CheckpointError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }

    pub fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let err = |source| CheckpointError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(checkpoint).expect("checkpoint serializes");
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// One JSON line per event on stdout, in the envelope the Kafka stage publishes; the checkpoint is a
/// local file saved after stdout is flushed.
pub struct StdoutSink<W: Write + Send> {
    out: W,
    connector: String,
    store: Option<CheckpointStore>,
    pending: Option<Checkpoint>,
    last_save: Instant,
    clock: CoarseClock,
}

/// The envelope's `ts_ms` (when binlake processed the event) read from the system clock once per 256
/// events, not for every one: at hundreds of thousands of events a second it stays within a millisecond.
#[derive(Default)]
struct CoarseClock {
    reads: u8,
    now_ms: i64,
}

impl CoarseClock {
    fn now_ms(&mut self) -> i64 {
        if self.reads == 0 {
            self.now_ms = crate::event::calendar::now_ms();
        }
        self.reads = self.reads.wrapping_add(1);
        self.now_ms
    }
}

impl<W: Write + Send> StdoutSink<W> {
    /// `store: None` keeps no checkpoint (offline decoding).
    pub fn new(out: W, connector: &str, store: Option<CheckpointStore>) -> Self {
        StdoutSink {
            out,
            connector: connector.to_string(),
            store,
            pending: None,
            last_save: Instant::now(),
            clock: CoarseClock::default(),
        }
    }

    pub fn write(&mut self, msg: &SourceMessage) -> Result<(), SinkError> {
        let io = |e: std::io::Error| SinkError::Io {
            what: "stdout",
            source: e,
        };
        match msg {
            SourceMessage::Change(ev) => {
                serde_json::to_writer(
                    &mut self.out,
                    &Envelope {
                        event: ev,
                        connector: &self.connector,
                        now_ms: self.clock.now_ms(),
                    },
                )
                .map_err(|e| io(e.into()))?;
                self.out.write_all(b"\n").map_err(io)?;
            }
            SourceMessage::SchemaChange(sc) => {
                serde_json::to_writer(&mut self.out, &SchemaChangeJson(sc))
                    .map_err(|e| io(e.into()))?;
                self.out.write_all(b"\n").map_err(io)?;
            }
            SourceMessage::Checkpoint(cp) => self.pending = Some(cp.clone()),
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| SinkError::Io {
            what: "stdout",
            source: e,
        })?;
        if let (Some(store), Some(cp)) = (&self.store, self.pending.take()) {
            store.save(&cp)?;
        }
        self.last_save = Instant::now();
        Ok(())
    }
}

impl<W: Write + Send> Sink for StdoutSink<W> {
    async fn resume_point(&mut self) -> Result<Option<Checkpoint>, SinkError> {
        Ok(match &self.store {
            Some(store) => store.load()?,
            None => None,
        })
    }

    async fn send(&mut self, msg: SourceMessage) -> Result<(), SinkError> {
        self.write(&msg)
    }

    async fn tick(&mut self) -> Result<(), SinkError> {
        if self.pending.is_some() && self.last_save.elapsed() >= CHECKPOINT_INTERVAL {
            self.flush()?;
        } else {
            // readers see every line within a tick; the checkpoint keeps its own, slower cadence
            self.out.flush().map_err(|e| SinkError::Io {
                what: "stdout",
                source: e,
            })?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), SinkError> {
        self.flush()
    }

    fn resnapshot_hint(&self) -> String {
        match &self.store {
            Some(store) => format!(
                "stop binlake, move the checkpoint {} away and start again",
                store.path().display()
            ),
            None => "decode from the start of the binlog".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::BinlogPosition;

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join("x/c.json"));
        assert!(store.load().unwrap().is_none());
        let cp = Checkpoint {
            next_seq: 7,
            position: BinlogPosition::new("b.000002", 4),
            gtid: Some("0-1-5".into()),
            snapshot: None,
            xa: None,
            tables: Default::default(),
            sync: false,
        };
        store.save(&cp).unwrap();
        assert_eq!(store.load().unwrap(), Some(cp));
    }
}
