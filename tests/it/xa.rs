//! XA transactions on MariaDB: rows of a prepared transaction reach the lake only after `XA COMMIT`, never
//! after `XA ROLLBACK`, also when binlake restarts while they are prepared.

use crate::common::*;
use crate::lake::{assert_lake_equals_source, lake_catch_up, lake_has, start_lake, wait_for_lake};
use crate::snapshot_stream::create_quotes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xa_rows_reach_the_lake_only_when_committed() {
    let db = TestDb::new("xa").await;
    create_quotes(&db, 10).await;
    let config = db.config("");
    let quotes = format!("{}.quotes", db.name);
    // xids are global to the server: unique per run
    let xid = |name: &str| format!("'{}_{name}'", db.name);
    let (cancel, handle) = start_lake(config.clone());
    wait_for_lake(&config, &quotes, "id = 10", 60).await;

    // prepared in one session and resolved from another, as a transaction manager does
    db.exec(&format!(
        "XA START {0}; INSERT INTO quotes VALUES (101, 'XA', 1.00, 1); \
         UPDATE quotes SET qty = 5 WHERE id = 1; XA END {0}; XA PREPARE {0}",
        xid("c")
    ))
    .await;
    db.exec(&format!(
        "XA START {0}; INSERT INTO quotes VALUES (201, 'XA', 1.00, 1); \
         DELETE FROM quotes WHERE id = 2; XA END {0}; XA PREPARE {0}",
        xid("r")
    ))
    .await;
    // a later ordinary transaction arrives while both are prepared
    db.exec("INSERT INTO quotes VALUES (11, 'N', 1.00, 0)")
        .await;
    wait_for_lake(&config, &quotes, "id = 11", 60).await;
    assert!(
        !lake_has(&config, &quotes, "id = 101").await,
        "prepared insert is not in the lake"
    );
    assert!(
        !lake_has(&config, &quotes, "id = 1 AND qty = 5").await,
        "prepared update not applied"
    );
    assert!(
        lake_has(&config, &quotes, "id = 2").await,
        "prepared delete not applied"
    );

    // a restart while both are prepared must read their rows again
    cancel.cancel();
    handle.await.unwrap().unwrap();
    let (cancel, handle) = start_lake(config.clone());
    db.exec(&format!("XA COMMIT {}", xid("c"))).await;
    db.exec(&format!("XA ROLLBACK {}", xid("r"))).await;
    db.exec(&format!(
        "XA START {0}; INSERT INTO quotes VALUES (301, 'XA1', 1.00, 1); XA END {0}; XA COMMIT {0} ONE PHASE",
        xid("o")
    ))
    .await;
    wait_for_lake(&config, &quotes, "id = 101", 60).await;
    wait_for_lake(&config, &quotes, "id = 301", 60).await;
    lake_catch_up(&db, &config, 60).await;
    assert!(
        lake_has(&config, &quotes, "id = 1 AND qty = 5").await,
        "committed update applied"
    );
    assert!(
        !lake_has(&config, &quotes, "id = 201").await,
        "rolled-back insert never lands"
    );
    assert!(
        lake_has(&config, &quotes, "id = 2").await,
        "rolled-back delete never applied"
    );
    cancel.cancel();
    handle.await.unwrap().unwrap();
    assert_lake_equals_source(&config, &db.name, "quotes").await;
}
