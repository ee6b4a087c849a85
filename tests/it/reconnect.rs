//! Transient failures: the server kills binlake's replication connection mid-stream (often inside a
//! multi-statement transaction); binlake reconnects with backoff and continues with no gap and no duplicate.

use crate::common::*;
use crate::snapshot_stream::{assert_contiguous, catch_up, create_quotes, has_row_with};
use mysql_async::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_replication_connection_reconnects_and_continues_exactly() {
    let db = TestDb::new("reconnect").await;
    create_quotes(&db, 100).await;
    // A user of its own, so only this test's connections are killed.
    let user = format!("rc{}", rand::random::<u32>());
    let mut admin_conn = admin().await;
    for host in ["127.0.0.1", "localhost"] {
        admin_conn
            .query_drop(format!("CREATE USER '{user}'@'{host}' IDENTIFIED BY 'pw'"))
            .await
            .unwrap();
        admin_conn
            .query_drop(format!(
                "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '{user}'@'{host}'"
            ))
            .await
            .unwrap();
    }
    let text = db
        .config_text("")
        .replace("user = \"binlake\"", &format!("user = \"{user}\""))
        .replace(
            &format!(
                "password = \"{}\"",
                mysql_async::Opts::from_url(&env("BINLAKE_MYSQL_URL"))
                    .unwrap()
                    .pass()
                    .unwrap_or("")
            ),
            "password = \"pw\"",
        );
    let config = binlake::config::Config::parse(&text, std::path::Path::new("rc.toml")).unwrap();
    let (messages, cancel, handle) = start(config, |_| false);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.name.clone(), stop.clone());
        tokio::spawn(async move {
            let mut conn = admin().await;
            conn.query_drop(format!("USE `{db}`")).await.unwrap();
            let mut id = 1000u64;
            while !stop.load(Ordering::Relaxed) {
                // several rows events per transaction, so kills land mid-transaction too
                let mut tx = conn.start_transaction(Default::default()).await.unwrap();
                for _ in 0..20 {
                    id += 1;
                    tx.query_drop(format!("INSERT INTO quotes VALUES ({id}, 'RC', 1.5, 1)"))
                        .await
                        .unwrap();
                    tx.query_drop(format!(
                        "UPDATE quotes SET qty = qty + 1 WHERE id = {}",
                        id - 1
                    ))
                    .await
                    .unwrap();
                }
                tx.commit().await.unwrap();
            }
        })
    };
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        // wait for the (re)connected replication session, then kill it
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        let ids = loop {
            let ids: Vec<u64> = admin_conn
                .query(format!(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{user}' AND COMMAND LIKE 'Binlog Dump%'"
                ))
                .await
                .unwrap();
            if !ids.is_empty() {
                break ids;
            }
            if handle.is_finished() {
                panic!("pipeline stopped: {:?}", handle.await.unwrap());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "binlake did not reconnect"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for id in ids {
            let _ = admin_conn.query_drop(format!("KILL {id}")).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let m = messages.clone();
    catch_up(&db, 60, |id, qty| {
        let m = m.clone();
        async move { has_row_with(&m.lock().unwrap(), id, qty) }
    })
    .await;
    cancel.cancel();
    handle.await.unwrap().unwrap();
    for host in ["127.0.0.1", "localhost"] {
        admin_conn
            .query_drop(format!("DROP USER '{user}'@'{host}'"))
            .await
            .unwrap();
    }
    let all = messages.lock().unwrap().clone();
    let events = changes(&all);
    assert_contiguous(events.iter().map(|e| e.seq));
    let want = select_state(&db.name, "quotes").await;
    assert_same_state(
        &replay(&events, "quotes"),
        &want,
        "after three killed connections",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_and_column_filters_apply_to_snapshot_and_stream() {
    let db = TestDb::new("filters").await;
    db.exec("CREATE TABLE keep_me (id INT PRIMARY KEY, secret VARCHAR(10), v INT)")
        .await;
    db.exec("CREATE TABLE skip_me (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO keep_me VALUES (1, 'pw', 10)").await;
    db.exec("INSERT INTO skip_me VALUES (1)").await;
    let extra = format!(
        "exclude = [\"{0}.skip_*\"]\nexclude_columns = [\"{0}.keep_me.secret\"]",
        db.name
    );
    let (messages, cancel, handle) = start(db.config(&extra), |_| false);
    wait_streaming(&messages, 90).await;
    db.exec("INSERT INTO keep_me VALUES (2, 'pw2', 20)").await;
    db.exec("INSERT INTO skip_me VALUES (2)").await;
    db.exec("UPDATE keep_me SET secret = 'x', v = 11 WHERE id = 1")
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while changes(&messages.lock().unwrap()).len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "events did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    handle.await.unwrap().unwrap();
    let all = messages.lock().unwrap().clone();
    let events = changes(&all);
    assert_eq!(
        events.len(),
        3,
        "only keep_me: one snapshot row, one insert, one update"
    );
    for e in &events {
        assert_eq!(e.schema.table, "keep_me");
        assert_eq!(
            e.schema
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["id", "v"]
        );
        assert!(e.after.as_ref().unwrap().len() == 2);
    }
}

/// Resumes a SIGSTOPped server however the test ends, so no other test finds it frozen.
struct Frozen(i32);

impl Frozen {
    fn new(pid: i32) -> Self {
        assert_eq!(unsafe { kill(pid, 19) }, 0, "SIGSTOP the server");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        unsafe { kill(self.0, 18) }; // SIGCONT
    }
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

async fn reconnects(port: u16) -> Option<u64> {
    let body = crate::lake::http_get(port, "/metrics").await?.1;
    body.lines()
        .find(|l| l.starts_with("binlake_source_reconnects_total "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_is_noticed_and_the_stream_reconnects() {
    // the auxiliary server: freezing it stalls no other test
    let db = TestDb::on_aux("freeze").await;
    create_quotes(&db, 100).await;
    let pid: i32 = std::fs::read_to_string(env("BINLAKE_TEST_AUX_MYSQL_PIDFILE"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = db.dir.path().join("freeze.toml");
    std::fs::write(
        &path,
        db.config_text("heartbeat_secs = 1\nconnect_timeout_secs = 2\nmax_backoff_secs = 2")
            .replace(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"127.0.0.1:{port}\""),
            ),
    )
    .unwrap();
    let config = binlake::config::Config::load(&path).unwrap();
    let mut child = spawn_binlake(&path, &[]);
    crate::lake::lake_catch_up(&db, &config, 90).await;
    let before = reconnects(port).await.expect("metrics served");
    {
        let _frozen = Frozen::new(pid);
        // a half-open connection: no error, no data; four missed heartbeats later binlake gives up on it
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while reconnects(port).await.unwrap_or(0) <= before {
            assert_alive(&mut child, "while the server is frozen");
            assert!(
                std::time::Instant::now() < deadline,
                "binlake did not notice the frozen server within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } // SIGCONT
    db.exec("UPDATE quotes SET qty = 7 WHERE id = 3").await;
    db.exec("INSERT INTO quotes VALUES (101, 'F', 1.00, 1)")
        .await;
    crate::lake::lake_catch_up(&db, &config, 90).await;
    assert_alive(&mut child, "after the server resumed");
    assert!(signal_and_wait(&mut child, 15).success());
    crate::lake::assert_lake_equals_source(&config, &db.name, "quotes").await;
}
