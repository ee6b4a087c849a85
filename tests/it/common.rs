//! Shared helpers: service URLs, per-test databases, in-process pipeline runs and strict state replay.

use binlake::config::Config;
use binlake::event::progress::Checkpoint;
use binlake::event::{ChangeEvent, Op, SourceMessage, Value};
use binlake::pipeline::{self, PipelineError};
use binlake::sinks::stdout::CheckpointStore;
use binlake::sinks::{Sink, SinkError};
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
    admin_at(&env("BINLAKE_TEST_MYSQL_ADMIN_URL")).await
}

async fn admin_at(url: &str) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(url).unwrap())
        .init(vec!["SET NAMES utf8mb4", "SET time_zone = '+00:00'"]);
    mysql_async::Conn::new(opts)
        .await
        .expect("admin connection")
}

/// Test databases on the auxiliary server (the one tests may freeze) have names starting with this.
pub const AUX_PREFIX: &str = "it_aux";
/// Test databases on the server that takes a binlog file past 4 GiB (which every reader of that server
/// would stream through) have names starting with this.
pub const BIG_PREFIX: &str = "it_big";

/// The environment variables naming (replication URL, admin URL) of the server that holds `db`.
fn server_of(db: &str) -> (&'static str, &'static str) {
    if db.starts_with(AUX_PREFIX) {
        (
            "BINLAKE_TEST_AUX_MYSQL_URL",
            "BINLAKE_TEST_AUX_MYSQL_ADMIN_URL",
        )
    } else if db.starts_with(BIG_PREFIX) {
        (
            "BINLAKE_TEST_BIG_MYSQL_URL",
            "BINLAKE_TEST_BIG_MYSQL_ADMIN_URL",
        )
    } else {
        ("BINLAKE_MYSQL_URL", "BINLAKE_TEST_MYSQL_ADMIN_URL")
    }
}

/// Root on the server that holds test database `db`.
pub async fn admin_for(db: &str) -> mysql_async::Conn {
    admin_at(&env(server_of(db).1)).await
}

/// A fresh database for one test, plus a state directory and a config capturing only that database.
pub struct TestDb {
    pub name: String,
    pub dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(prefix: &str) -> TestDb {
        Self::named(format!("it_{prefix}_{}", rand::random::<u32>())).await
    }

    /// A database on the auxiliary server, which a test may freeze without stalling the others.
    pub async fn on_aux(prefix: &str) -> TestDb {
        Self::named(format!("{AUX_PREFIX}_{prefix}_{}", rand::random::<u32>())).await
    }

    /// A database on the server kept for binlog files past 4 GiB.
    pub async fn on_big(prefix: &str) -> TestDb {
        Self::named(format!("{BIG_PREFIX}_{prefix}_{}", rand::random::<u32>())).await
    }

    async fn named(name: String) -> TestDb {
        admin_for(&name)
            .await
            .query_drop(format!("CREATE DATABASE `{name}`"))
            .await
            .unwrap();
        TestDb {
            name,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn replication_url(&self) -> String {
        env(server_of(&self.name).0)
    }

    pub fn config_text(&self, extra_source: &str) -> String {
        let url = mysql_async::Opts::from_url(&self.replication_url()).unwrap();
        format!(
            "name = \"it\"\n[source]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\npassword = \"{}\"\nserver_id = {}\ninclude = [\"{}.*\"]\n{extra_source}\n[state]\ndir = \"{}\"\n[observe]\nlisten = \"127.0.0.1:0\"\n[lake]\nroot = \"{}\"\nflush_interval_ms = 200\n",
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
        let mut c = admin_for(&self.name).await;
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
    async fn resume_point(&mut self) -> Result<Option<Checkpoint>, SinkError> {
        Ok(self.store.load()?)
    }
    async fn send(&mut self, msg: SourceMessage) -> Result<(), SinkError> {
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
    async fn tick(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    async fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    fn resnapshot_hint(&self) -> String {
        format!("move the checkpoint {} away", self.store.path().display())
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
            Op::Truncate | Op::Drop => state.clear(),
        }
    }
    state
}

/// The table's schema and rows as SELECT returns them, decoded with the snapshot decoder.
pub async fn select_rows(db: &str, table: &str) -> (binlake::event::TableSchema, Vec<Vec<Value>>) {
    let mut conn = admin_for(db).await;
    let filter = binlake::config::TableFilter::from_patterns(&[format!("{db}.{table}")], &[], &[]);
    let schemas =
        binlake::sources::mysql::schema::load_tables(&mut conn, &filter, &Default::default(), None)
            .await
            .unwrap();
    let schema = schemas.values().next().expect("table exists").clone();
    let cols: Vec<String> = schema
        .columns
        .iter()
        .map(|c| format!("`{}`", c.name.replace('`', "``")))
        .collect();
    let rows: Vec<mysql_async::Row> = conn
        .exec(
            format!(
                "SELECT {} FROM `{}`.`{}`",
                cols.join(","),
                db.replace('`', "``"),
                table.replace('`', "``")
            ),
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
                .map(|(c, v)| binlake::sources::mysql::decode::from_snapshot(c, v).unwrap())
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
            // every write from now on lies after the snapshot position, so the stream delivers it
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "source did not start streaming within {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until a replica with `server_id` is registered with the server: the source has finished its
/// snapshot and streams, so every later write arrives through the binlog.
pub async fn wait_replica_registered(db: &str, server_id: u32, secs: u64) {
    let mut conn = admin_for(db).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let hosts: Vec<mysql_async::Row> = conn.query("SHOW SLAVE HOSTS").await.unwrap();
        if hosts.iter().any(|r| r.get::<u32, _>(0) == Some(server_id)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no replica with server_id {server_id} registered within {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `binlake run` (lake sink unless `args` say otherwise) as a child process.
pub fn spawn_binlake(config: &Path, args: &[&str]) -> std::process::Child {
    std::process::Command::new(binary())
        .arg("run")
        .args(args)
        .arg("--config")
        .arg(config)
        .env("BINLAKE_LOG", "warn")
        .spawn()
        .unwrap()
}

/// A `binlake sink` process (Kafka → lake) on `config`.
pub fn spawn_binlake_sink(config: &Path) -> std::process::Child {
    std::process::Command::new(binary())
        .args(["sink", "--config"])
        .arg(config)
        .env("BINLAKE_LOG", "warn")
        .spawn()
        .unwrap()
}

/// A `binlake sink` process logging at info level into `log` (rebalances, seeks, commits retried), for
/// tests that print it when they fail.
pub fn spawn_binlake_sink_logged(config: &Path, log: &Path) -> std::process::Child {
    std::process::Command::new(binary())
        .args(["sink", "--config"])
        .arg(config)
        .env("BINLAKE_LOG", "info,buoyant_kernel=off,deltalake_core=warn")
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Waits until the child exits on its own (a definite error, a crash point) and returns how; fails
/// with `what` after `secs`.
pub async fn wait_exit(
    child: &mut std::process::Child,
    secs: u64,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} within {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fails the test when the child has exited on its own.
pub fn assert_alive(child: &mut std::process::Child, what: &str) {
    if let Some(status) = child.try_wait().unwrap() {
        panic!("binlake exited unexpectedly ({status}) {what}");
    }
}

/// Sends `signal` (e.g. 15, 9) to the child and waits for it.
pub fn signal_and_wait(child: &mut std::process::Child, signal: i32) -> std::process::ExitStatus {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    assert_eq!(
        unsafe { kill(child.id() as i32, signal) },
        0,
        "kill -{signal}"
    );
    child.wait().unwrap()
}
