//! Hostile names: databases and tables named `../x`, `a/b`, `a.b`, with a backtick, a space, non-ASCII
//! letters, and two tables differing only in case. Every table lands under `lake.root`, none collide,
//! `binlake query` finds each under its MySQL name, and a restart resumes them all.

use crate::common::*;
use crate::lake::{assert_lake_equals_source, lake_name, start_lake, wait_for_lake};
use mysql_async::prelude::*;

const TABLES: &[&str] = &[
    "a.b", "a/b", "../x", "tick`s", "my table", "café", "Quotes", "quotes",
];

fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_database_and_table_names_stay_inside_the_lake_and_apart() {
    let db = TestDb::new("names").await;
    // a second database whose own name is hostile
    let odd_db = format!("It.Names/../{}", rand::random::<u32>());
    let mut admin = admin().await;
    admin
        .query_drop(format!("CREATE DATABASE {}", quoted(&odd_db)))
        .await
        .unwrap();
    let mut tables: Vec<(String, String)> = TABLES
        .iter()
        .map(|t| (db.name.clone(), t.to_string()))
        .collect();
    tables.push((odd_db.clone(), "t".into()));
    tables.push((odd_db.clone(), "../x".into()));
    for (d, t) in &tables {
        admin
            .query_drop(format!(
                "CREATE TABLE {}.{} (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO {0}.{1} VALUES (1, 'one')",
                quoted(d),
                quoted(t)
            ))
            .await
            .unwrap();
    }
    // `?` stands for the `.` and `/` in the odd database's name
    let pattern = odd_db.replace(['.', '/'], "?");
    let text = db.config_text("").replace(
        &format!("include = [\"{}.*\"]", db.name),
        &format!("include = [\"{}.*\", \"{pattern}.*\"]", db.name),
    );
    let config_path = db.dir.path().join("names.toml");
    let config = binlake::config::Config::parse(&text, &config_path).unwrap();
    let (cancel, handle) = start_lake(config.clone());
    for (d, t) in &tables {
        wait_for_lake(&config, &lake_name(d, t), "id = 1", 90).await;
    }
    // streamed changes, then a restart that must find every table again
    for (i, (d, t)) in tables.iter().enumerate() {
        admin
            .query_drop(format!(
                "INSERT INTO {}.{} VALUES (2, 'two'); UPDATE {0}.{1} SET v = 'x{i}' WHERE id = 1",
                quoted(d),
                quoted(t)
            ))
            .await
            .unwrap();
    }
    for (d, t) in &tables {
        wait_for_lake(&config, &lake_name(d, t), "id = 2", 90).await;
    }
    cancel.cancel();
    handle.await.unwrap().unwrap();
    let (cancel, handle) = start_lake(config.clone());
    for (d, t) in &tables {
        admin
            .query_drop(format!(
                "INSERT INTO {}.{} VALUES (3, 'three')",
                quoted(d),
                quoted(t)
            ))
            .await
            .unwrap();
    }
    for (d, t) in &tables {
        wait_for_lake(&config, &lake_name(d, t), "id = 3", 90).await;
    }
    cancel.cancel();
    handle.await.unwrap().unwrap();

    // every table is a folder of its own directly under the root, and nothing was written beside the root
    let root = db.lake_root();
    let listed = binlake::sinks::lake::query::list_tables(&config.lake)
        .await
        .unwrap();
    let mut want: Vec<(String, String)> = tables.clone();
    want.sort();
    assert_eq!(
        listed, want,
        "the lake lists each table under its MySQL name"
    );
    let mut dirs = std::collections::BTreeSet::new();
    for (d, t) in &tables {
        let uri = binlake::sinks::lake::table_uri(&config.lake, d, t).unwrap();
        let path = std::path::Path::new(&uri).canonicalize().unwrap();
        assert!(
            path.starts_with(root.canonicalize().unwrap()),
            "{d}.{t} at {}",
            path.display()
        );
        assert!(path.join("_delta_log").is_dir(), "{d}.{t}");
        assert!(dirs.insert(path), "{d}.{t} shares a folder");
    }
    std::fs::write(&config_path, &text).unwrap();
    let beside: Vec<String> = std::fs::read_dir(db.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        beside
            .iter()
            .all(|n| ["lake", "state", "names.toml"].contains(&n.as_str())),
        "files outside the lake root: {beside:?}"
    );
    for (d, t) in &tables {
        assert_lake_equals_source(&config, d, t).await;
    }
    // `binlake query` reaches them by their MySQL names
    let out = std::process::Command::new(binary())
        .args(["query", "--config"])
        .arg(&config_path)
        .arg(format!(
            "SELECT count(*) AS n FROM {} WHERE v = 'three'",
            lake_name(&odd_db, "../x")
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("| 1 "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    admin
        .query_drop(format!("DROP DATABASE {}", quoted(&odd_db)))
        .await
        .unwrap();
}
