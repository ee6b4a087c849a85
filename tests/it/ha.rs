//! Two `binlake run` tasks of one connector with `[ha]`: one leads, one waits. A killed leader is replaced
//! within the takeover bound, and a paused one, resumed after losing the lease, steps down without
//! committing; the lake equals MariaDB either way.

use crate::common::{assert_alive, binary, signal_and_wait, wait_exit, TestDb};
use crate::kafka_sink::wait_for_any;
use crate::lake::{assert_lake_equals_source, lake_catch_up, wait_for_lake};
use crate::snapshot_stream::{create_quotes, writer};
use binlake::config::Config;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TAKEOVER_SECS: u64 = 6;

fn ha_config(db: &TestDb) -> (Config, PathBuf) {
    let text = db.config_text("")
        + &format!("[ha]\nenabled = true\ntakeover_secs = {TAKEOVER_SECS}\nrenew_secs = 1\n");
    let path = db.dir.path().join("ha.toml");
    std::fs::write(&path, text).unwrap();
    (Config::load(&path).unwrap(), path)
}

/// On a failure, prints the tasks' logs (and kills them: they would outlive the test).
pub struct LogsOnFailure(pub Vec<(PathBuf, u32)>);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (log, pid) in &self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            eprintln!("--- {}", log.display());
            eprintln!("{}", std::fs::read_to_string(log).unwrap_or_default());
        }
    }
}

fn spawn_logged(config: &Path, log: &Path) -> std::process::Child {
    std::process::Command::new(binary())
        .args(["run", "--config"])
        .arg(config)
        .env(
            "BINLAKE_LOG",
            "info,buoyant_kernel=off,delta_kernel=off,deltalake_core=warn",
        )
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

pub async fn wait_for_log(log: &Path, needle: &str, secs: u64) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains(needle)
        {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{} did not log `{needle}` within {secs}s:\n{}",
            log.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `binlake-ha` epoch of every commit of the table, in commit order (commits without one: 0).
fn fence_epochs(config: &Config, db: &str, table: &str) -> Vec<i64> {
    let dir = Path::new(&config.lake.root)
        .join(db)
        .join(table)
        .join("_delta_log");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|a| {
                    let txn = a.get("txn")?;
                    (txn["appId"].as_str()? == "binlake-ha:it").then(|| txn["version"].as_i64())?
                })
                .next()
                .unwrap_or(0)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_by_the_standby_within_the_takeover_bound() {
    let db = TestDb::new("hakill").await;
    create_quotes(&db, 200).await;
    let (config, path) = ha_config(&db);
    let (a_log, b_log) = (db.dir.path().join("a.log"), db.dir.path().join("b.log"));
    let mut a = spawn_logged(&path, &a_log);
    wait_for_log(&a_log, "leading this connector", 30).await;
    let mut b = spawn_logged(&path, &b_log);
    let _logs = LogsOnFailure(vec![(a_log.clone(), a.id()), (b_log.clone(), b.id())]);
    wait_for_log(&b_log, "standby", 30).await;
    let quotes = format!("{}.quotes", db.name);
    wait_for_lake(&config, &quotes, "id = 200", 60).await;

    let stop = Arc::new(AtomicBool::new(false));
    let w = tokio::spawn(writer(db.name.clone(), stop.clone(), 200));
    wait_for_any(&config, &quotes, "id > 260", 60).await;
    assert_alive(&mut b, "as a standby");
    assert!(
        !std::fs::read_to_string(&b_log)
            .unwrap()
            .contains("leading this connector"),
        "the standby must not lead while the leader lives"
    );
    let killed = Instant::now();
    assert_eq!(signal_and_wait(&mut a, 9).signal(), Some(9));
    let took_over = wait_for_log(&b_log, "leading this connector", 60).await;
    eprintln!(
        "the standby took over {:?} after the kill",
        took_over - killed
    );
    // the standby notices a heartbeat that stands still for takeover_secs, polling once a renew period
    let bound = Duration::from_secs(TAKEOVER_SECS + 2 + 3);
    assert!(
        took_over - killed <= bound,
        "took over after {:?}, bound {bound:?}",
        took_over - killed
    );
    wait_for_any(&config, &quotes, "id > 400", 90).await;
    stop.store(true, Ordering::Relaxed);
    w.await.unwrap();
    lake_catch_up(&db, &config, 90).await;
    assert!(signal_and_wait(&mut b, 15).success(), "graceful stop");
    // equal row sets: a key written twice would be an extra row
    assert_lake_equals_source(&config, &db.name, "quotes").await;
    let epochs = fence_epochs(&config, &db.name, "quotes");
    assert!(epochs.contains(&1) && epochs.contains(&2), "{epochs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_resumed_after_losing_the_lease_steps_down_without_committing() {
    let db = TestDb::new("hapause").await;
    create_quotes(&db, 200).await;
    let (config, path) = ha_config(&db);
    let (a_log, b_log) = (db.dir.path().join("a.log"), db.dir.path().join("b.log"));
    let mut a = spawn_logged(&path, &a_log);
    wait_for_log(&a_log, "leading this connector", 30).await;
    let mut b = spawn_logged(&path, &b_log);
    let _logs = LogsOnFailure(vec![(a_log.clone(), a.id()), (b_log.clone(), b.id())]);
    wait_for_log(&b_log, "standby", 30).await;
    let quotes = format!("{}.quotes", db.name);
    wait_for_lake(&config, &quotes, "id = 200", 60).await;
    let stop = Arc::new(AtomicBool::new(false));
    let w = tokio::spawn(writer(db.name.clone(), stop.clone(), 200));
    wait_for_any(&config, &quotes, "id > 260", 60).await;

    // pause the leader past its lease: the standby takes over and writes
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    assert_eq!(unsafe { kill(a.id() as i32, 19) }, 0, "SIGSTOP");
    wait_for_log(&b_log, "leading this connector", 60).await;
    // rows the new leader wrote: beyond what MariaDB held when it took over
    let mut conn = crate::common::admin_for(&db.name).await;
    let newest: u64 = mysql_async::prelude::Queryable::query_first(
        &mut conn,
        format!("SELECT max(id) FROM `{}`.quotes", db.name),
    )
    .await
    .unwrap()
    .unwrap();
    wait_for_any(&config, &quotes, &format!("id > {newest}"), 90).await;
    // resumed, the old leader finds the newer epoch (or its commit hits the fence) and stops
    assert_eq!(unsafe { kill(a.id() as i32, 18) }, 0, "SIGCONT");
    let status = wait_exit(&mut a, 60, "the deposed leader exits").await;
    assert!(!status.success(), "a deposed leader exits non-zero");
    let a_text = std::fs::read_to_string(&a_log).unwrap();
    assert!(
        a_text.contains("stepping down") || a_text.contains("newer leader"),
        "{a_text}"
    );
    stop.store(true, Ordering::Relaxed);
    w.await.unwrap();
    lake_catch_up(&db, &config, 90).await;
    assert!(signal_and_wait(&mut b, 15).success(), "graceful stop");
    assert_lake_equals_source(&config, &db.name, "quotes").await;
    // no commit of epoch 1 after the first of epoch 2: the two leaders never interleave
    let epochs = fence_epochs(&config, &db.name, "quotes");
    let first_of_2 = epochs
        .iter()
        .position(|&e| e == 2)
        .expect("the new leader committed");
    assert!(
        epochs[first_of_2..].iter().all(|&e| e != 1),
        "a deposed leader committed after the new one: {epochs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_on_s3_elects_one_leader_and_replaces_a_silent_one() {
    // the same lease on moto's S3: epochs by conditional PUT (If-None-Match), heartbeats overwritten
    let endpoint = crate::common::env("BINLAKE_TEST_S3_ENDPOINT");
    let bucket = format!("binlake-ha-{}", rand::random::<u32>());
    let made = std::process::Command::new("python3")
        .args(["-c", "import boto3,sys; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1').create_bucket(Bucket=sys.argv[2])"])
        .args([&endpoint, &bucket])
        .status()
        .unwrap();
    assert!(made.success(), "bucket created on moto");
    let text = format!(
        "name = \"it\"\n[source]\nhost = \"127.0.0.1\"\nuser = \"u\"\ninclude = [\"d.*\"]\n[lake]\nroot = \"s3://{bucket}/lake\"\n\
         [lake.s3]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\n[ha]\nenabled = true\ntakeover_secs = 3\nrenew_secs = 1\n"
    );
    let config = Config::parse(&text, Path::new("ha-s3.toml")).unwrap();
    let lease = |_: &str| {
        Arc::new(binlake::ha::Lease::new(&config.lake, &config.name, &config.ha).unwrap())
    };
    let (a, b, c) = (lease("a"), lease("b"), lease("c"));
    let never = tokio_util::sync::CancellationToken::new();
    assert_eq!(
        a.acquire(&never).await.unwrap(),
        Some(1),
        "the first task leads epoch 1"
    );
    let (a_stop, a_pipeline) = (never.child_token(), never.child_token());
    let a_renew = tokio::spawn(a.clone().renew(1, a_stop.clone(), a_pipeline.clone()));
    // two standbys race for the next epoch; while the leader renews, neither gets it
    let standby = |l: Arc<binlake::ha::Lease>| {
        let cancel = never.child_token();
        let task = tokio::spawn({
            let cancel = cancel.clone();
            async move { l.acquire(&cancel).await.unwrap() }
        });
        (cancel, task)
    };
    let (b_cancel, b_task) = standby(b.clone());
    let (c_cancel, c_task) = standby(c.clone());
    let still_leading = Instant::now() + Duration::from_secs(6);
    while Instant::now() < still_leading {
        assert!(
            !b_task.is_finished() && !c_task.is_finished(),
            "a standby took over a live leader"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // the leader falls silent (its renewal stops without releasing): exactly one standby takes epoch 2
    let silent = Instant::now();
    a_stop.cancel();
    assert_eq!(a_renew.await.unwrap(), None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(b_task.is_finished() || c_task.is_finished()) {
        assert!(
            Instant::now() < deadline,
            "no standby took over within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = silent.elapsed();
    let (won, winner, lost_cancel, lost) = if b_task.is_finished() {
        (b_task.await.unwrap(), b, c_cancel, c_task)
    } else {
        (c_task.await.unwrap(), c, b_cancel, b_task)
    };
    assert_eq!(
        won,
        Some(2),
        "the new leader holds epoch 2 (after {took:?})"
    );
    // while the new leader renews, the loser keeps waiting past the takeover time
    let renewing = never.child_token();
    let winner_renew = tokio::spawn(winner.renew(2, renewing.clone(), never.child_token()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!lost.is_finished(), "both standbys took epoch 2");
    lost_cancel.cancel();
    assert_eq!(lost.await.unwrap(), None);
    renewing.cancel();
    assert_eq!(winner_renew.await.unwrap(), None);
    // the old leader, renewing again, finds the newer epoch and steps down, cancelling its pipeline
    let deposed = a
        .clone()
        .renew(1, never.child_token(), a_pipeline.clone())
        .await;
    assert_eq!(deposed, Some(binlake::ha::Deposed::NewerEpoch(2)));
    assert!(a_pipeline.is_cancelled());
}
