//! Snapshot + stream under a concurrent writer: the reconstructed state equals the table, with no gap and
//! no duplicate (strict replay), and `_seq` is contiguous.

use crate::common::*;
use binlake::event::{Op, SourceMessage};
use mysql_async::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Inserts, updates (some moving the key) and deletes rows until `stop`; returns statements run.
pub async fn writer(db: String, stop: Arc<AtomicBool>, first_id: u64) -> u64 {
    let mut conn = admin().await;
    conn.query_drop(format!("USE `{db}`")).await.unwrap();
    let mut next = first_id;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let r = rand::random::<u32>() % 10;
        let sql = match r {
            0..=4 => {
                next += 1;
                format!(
                    "INSERT INTO quotes (id, symbol, bid, qty) VALUES ({next}, 'S{}', {}.25, {})",
                    next % 50,
                    next % 1000,
                    r
                )
            }
            5..=7 => format!(
                "UPDATE quotes SET bid = bid + 1, qty = qty + 1 WHERE id = {}",
                1 + rand::random::<u64>() % next
            ),
            8 => format!(
                "DELETE FROM quotes WHERE id = {}",
                1 + rand::random::<u64>() % next
            ),
            _ => {
                // a key change: move a row to a fresh id
                next += 1;
                format!(
                    "UPDATE quotes SET id = {next} WHERE id = {}",
                    1 + rand::random::<u64>() % (next - 1)
                )
            }
        };
        conn.query_drop(sql).await.unwrap();
        n += 1;
    }
    n
}

pub async fn create_quotes(db: &TestDb, rows: u64) {
    db.exec("CREATE TABLE quotes (id BIGINT UNSIGNED PRIMARY KEY, symbol VARCHAR(8) NOT NULL, bid DECIMAL(12,2) NOT NULL, qty INT NOT NULL)").await;
    if rows > 0 {
        db.exec(&format!("INSERT INTO quotes SELECT seq, CONCAT('S', seq % 50), seq % 1000, 0 FROM seq_1_to_{rows}")).await;
    }
}

/// Inserts a sentinel row and returns its id: once its event is out, everything before it is too.
pub async fn sentinel(db: &TestDb) -> u64 {
    let id = 900_000_000 + rand::random::<u32>() as u64 % 1_000_000;
    db.exec(&format!(
        "INSERT INTO quotes (id, symbol, bid, qty) VALUES ({id}, 'END', 0, 0)"
    ))
    .await;
    id
}

/// Proves downstream has caught up with MariaDB: inserts a sentinel row, waits until it is visible, then
/// sets its qty to -1 and waits for that too. A restarted run may read the row in a snapshot while its
/// stream still lags; the update is later than any such snapshot, so it can only arrive through the stream,
/// after everything before it.
pub async fn catch_up<F, Fut>(db: &TestDb, secs: u64, visible: F)
where
    F: Fn(u64, i64) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let id = sentinel(db).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    for qty in [0, -1] {
        if qty == -1 {
            db.exec(&format!("UPDATE quotes SET qty = -1 WHERE id = {id}"))
                .await;
        }
        while !visible(id, qty).await {
            assert!(
                std::time::Instant::now() < deadline,
                "downstream did not catch up within {secs}s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// True when an event carries row `id` with this `qty` (quotes: id, symbol, bid, qty).
pub fn has_row_with(messages: &[SourceMessage], id: u64, qty: i64) -> bool {
    changes(messages).iter().any(|c| {
        c.after.as_ref().is_some_and(|a| {
            a.first() == Some(&binlake::event::Value::UInt(id))
                && a.get(3) == Some(&binlake::event::Value::Int(qty))
        })
    })
}

pub fn assert_contiguous(seqs: impl IntoIterator<Item = u64>) {
    let seqs: Vec<u64> = seqs.into_iter().collect();
    for (i, s) in seqs.iter().enumerate() {
        assert_eq!(*s, i as u64 + 1, "_seq is not contiguous at position {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_stream_under_concurrent_writes_has_no_gap_or_duplicate() {
    let db = TestDb::new("snapstream").await;
    create_quotes(&db, 20_000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let w = tokio::spawn(writer(db.name.clone(), stop.clone(), 20_000));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // Small chunks so the snapshot runs for a while under the writer.
    let (messages, cancel, handle) =
        start(db.config("[source.snapshot]\nchunk_size = 500"), |_| false);
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let statements = w.await.unwrap();
    let m = messages.clone();
    catch_up(&db, 60, |id, qty| {
        let m = m.clone();
        async move { has_row_with(&m.lock().unwrap(), id, qty) }
    })
    .await;
    cancel.cancel();
    handle.await.unwrap().unwrap();

    let all = messages.lock().unwrap().clone();
    let events = changes(&all);
    assert!(statements > 50, "writer ran {statements} statements");
    assert!(events.iter().any(|e| e.op == Op::Read) && events.iter().any(|e| e.op != Op::Read));
    assert_contiguous(events.iter().map(|e| e.seq));
    let want = select_state(&db.name, "quotes").await;
    assert_same_state(&replay(&events, "quotes"), &want, "snapshot + stream");
}
