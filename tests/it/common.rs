//! Shared helpers: service URLs, per-test databases, in-process pipeline runs and strict state replay.

use binlake::checkpoint::{Checkpoint, CheckpointStore};
use binlake::config::Config;
use binlake::event::{ChangeEvent, Op, SourceMessage, Value};
use binlake::pipeline::{self, PipelineError, Sink};
use mysql_async::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the services with `eval \"$(scripts/services up)\"`")
    })
}

pub async fn admin() -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::from_opts(
        mysql_async::Opts::from_url(&env("BINLAKE_TEST_MYSQL_ADMIN_URL")).unwrap(),
    )
    .init(vec!["SET NAMES utf8mb4", "SET time_zone = '+00:00'"]);
    mysql_async::Conn::new(opts)
        .await
        .expect("admin connection")
}

/// A fresh database for one test, plus a state directory and a config capturing only that database.
pub struct TestDb {
    pub name: String,
    pub dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(prefix: &str) -> TestDb {
        let name = format!("it_{prefix}_{}", rand::random::<u32>());
        admin()
            .await
            .query_drop(format!("CREATE DATABASE `{name}`"))
            .await
            .unwrap();
        TestDb {
            name,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn config_text(&self, extra_source: &str) -> String {
        let url = mysql_async::Opts::from_url(&env("BINLAKE_MYSQL_URL")).unwrap();
        format!(
            "name = \"it\"\n[source]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\npassword = \"{}\"\nserver_id = {}\ninclude = [\"{}.*\"]\n{extra_source}\n[state]\ndir = \"{}\"\n[lake]\nroot = \"{}\"\nflush_interval_ms = 200\n",
            url.ip_or_hostname(),
            url.tcp_port(),
            url.user().unwrap(),
            url.pass().unwrap_or(""),
            10_000 + rand::random::<u32>() % 1_000_000,
            self.name,
            self.dir.path().join("state").display(),
            self.lake_root().display()
        )
    }

    pub fn lake_root(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    pub fn config(&self, extra_source: &str) -> Config {
        Config::parse(&self.config_text(extra_source), Path::new("it.toml")).unwrap()
    }

    pub fn config_file(&self, extra_source: &str) -> PathBuf {
        let p = self.dir.path().join("connector.toml");
        std::fs::write(&p, self.config_text(extra_source)).unwrap();
        p
    }

    pub async fn exec(&self, sql: &str) {
        let mut c = admin().await;
        c.query_drop(format!("USE `{}`", self.name)).await.unwrap();
        c.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

pub type Messages = Arc<Mutex<Vec<SourceMessage>>>;
pub type Done = Box<dyn Fn(&[SourceMessage]) -> bool + Send>;

/// Collects messages and keeps the checkpoint file like the stdout sink; cancels once `done` says so.
pub struct Collect {
    pub messages: Messages,
    pub done: Done,
    pub cancel: CancellationToken,
    pub store: CheckpointStore,
}

impl Sink for Collect {
    async fn resume_point(&mut self) -> Result<Option<Checkpoint>, PipelineError> {
        Ok(self.store.load()?)
    }
    async fn send(&mut self, msg: SourceMessage) -> Result<(), PipelineError> {
        let mut m = self.messages.lock().unwrap();
        if let SourceMessage::Checkpoint(cp) = &msg {
            self.store.save(cp)?;
        }
        let is_checkpoint = matches!(msg, SourceMessage::Checkpoint(_));
        m.push(msg);
        if is_checkpoint && (self.done)(&m) {
            self.cancel.cancel();
        }
        Ok(())
    }
    async fn tick(&mut self) -> Result<(), PipelineError> {
        Ok(())
    }
    async fn finish(&mut self) -> Result<(), PipelineError> {
        Ok(())
    }
}

/// Runs the pipeline in-process in the background; returns the shared message log and the stop handle.
pub fn start(
    config: Config,
    done: impl Fn(&[SourceMessage]) -> bool + Send + 'static,
) -> (
    Messages,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), PipelineError>>,
) {
    let messages = Arc::new(Mutex::new(Vec::new()));
    let cancel = CancellationToken::new();
    let store = CheckpointStore::new(config.checkpoint_path());
    let mut sink = Collect {
        messages: messages.clone(),
        done: Box::new(done),
        cancel: cancel.clone(),
        store,
    };
    let c = cancel.clone();
    let handle = tokio::spawn(async move { pipeline::run(&config, &mut sink, c).await });
    (messages, cancel, handle)
}

/// Runs until `done` holds (checked at each checkpoint) or the timeout expires (panics).
pub async fn run_until(
    config: Config,
    done: impl Fn(&[SourceMessage]) -> bool + Send + 'static,
    secs: u64,
) -> Vec<SourceMessage> {
    let (messages, cancel, handle) = start(config, done);
    match tokio::time::timeout(Duration::from_secs(secs), handle).await {
        Ok(r) => r.unwrap().expect("pipeline run"),
        Err(_) => {
            cancel.cancel();
            let n = messages.lock().unwrap().len();
            panic!("pipeline did not reach the expected state within {secs}s ({n} messages)");
        }
    }
    let m = messages.lock().unwrap().clone();
    m
}

pub fn changes(messages: &[SourceMessage]) -> Vec<&ChangeEvent> {
    messages
        .iter()
        .filter_map(|m| match m {
            SourceMessage::Change(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// Table state rebuilt from events, keyed by the key values' debug text; rows as column name → value.
pub type State = BTreeMap<String, BTreeMap<String, Value>>;

fn named(ev: &ChangeEvent, row: &[Value]) -> BTreeMap<String, Value> {
    ev.schema
        .columns
        .iter()
        .zip(row)
        .map(|(c, v)| (c.name.clone(), v.clone()))
        .collect()
}

/// Applies events strictly: an insert of a present key is a duplicate, an update or delete of an absent
/// key (or with a before image that differs from the state) is a gap. Panics with the offending event.
pub fn replay(events: &[&ChangeEvent], table: &str) -> State {
    let mut state = State::new();
    for ev in events.iter().filter(|e| e.schema.table == table) {
        let key = |row: &[Value]| format!("{:?}", ev.schema.key_of(&row.to_vec()));
        match ev.op {
            Op::Read | Op::Insert => {
                let after = ev.after.as_ref().unwrap();
                let prev = state.insert(key(after), named(ev, after));
                assert!(
                    prev.is_none(),
                    "duplicate: {:?} seq {} inserts an existing key {}",
                    ev.op,
                    ev.seq,
                    key(after)
                );
            }
            Op::Update => {
                let (before, after) = (ev.before.as_ref().unwrap(), ev.after.as_ref().unwrap());
                let prev = state.remove(&key(before));
                assert_eq!(
                    prev.as_ref(),
                    Some(&named(ev, before)),
                    "gap: update seq {} of key {} does not match state",
                    ev.seq,
                    key(before)
                );
                let clash = state.insert(key(after), named(ev, after));
                assert!(
                    clash.is_none(),
                    "duplicate: update seq {} moves onto an existing key",
                    ev.seq
                );
            }
            Op::Delete => {
                let before = ev.before.as_ref().unwrap();
                let prev = state.remove(&key(before));
                assert_eq!(
                    prev.as_ref(),
                    Some(&named(ev, before)),
                    "gap: delete seq {} of key {} does not match state",
                    ev.seq,
                    key(before)
                );
            }
            Op::Truncate => state.clear(),
        }
    }
    state
}

/// The table's schema and rows as SELECT returns them, decoded with the snapshot decoder.
pub async fn select_rows(db: &str, table: &str) -> (binlake::event::TableSchema, Vec<Vec<Value>>) {
    let mut conn = admin().await;
    let filter = binlake::config::TableFilter::from_patterns(&[format!("{db}.{table}")], &[], &[]);
    let schemas =
        binlake::source::schema::load_tables(&mut conn, &filter, &Default::default(), None)
            .await
            .unwrap();
    let schema = schemas.values().next().expect("table exists").clone();
    let cols: Vec<String> = schema
        .columns
        .iter()
        .map(|c| format!("`{}`", c.name))
        .collect();
    let rows: Vec<mysql_async::Row> = conn
        .exec(
            format!("SELECT {} FROM `{db}`.`{table}`", cols.join(",")),
            (),
        )
        .await
        .unwrap();
    let rows = rows
        .into_iter()
        .map(|r| {
            schema
                .columns
                .iter()
                .zip(r.unwrap())
                .map(|(c, v)| binlake::source::decode::from_snapshot(c, v).unwrap())
                .collect()
        })
        .collect();
    (schema, rows)
}

/// The table as SELECT returns it, keyed like `replay`.
pub async fn select_state(db: &str, table: &str) -> State {
    let (schema, rows) = select_rows(db, table).await;
    let mut state = State::new();
    for values in rows {
        let key = format!("{:?}", schema.key_of(&values));
        state.insert(
            key,
            schema
                .columns
                .iter()
                .map(|c| c.name.clone())
                .zip(values)
                .collect(),
        );
    }
    state
}

pub fn assert_same_state(got: &State, want: &State, what: &str) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} rows from events, {} rows in MariaDB",
        got.len(),
        want.len()
    );
    for (k, row) in want {
        assert_eq!(got.get(k), Some(row), "{what}: row {k} differs");
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_binlake")
}

/// Waits until the source has finished its snapshot and streams the binlog, so that later writes arrive
/// as binlog changes rather than snapshot reads.
pub async fn wait_streaming(messages: &Messages, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let streaming = messages.lock().unwrap().iter().any(|m| {
            matches!(m, SourceMessage::Checkpoint(cp) if cp.snapshot.as_ref().is_none_or(|s| s.complete))
        });
        if streaming {
            // the stream connects right after the snapshot's last checkpoint
            tokio::time::sleep(Duration::from_millis(300)).await;
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "source did not start streaming within {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
