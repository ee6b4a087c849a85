//! MySQL 8.0/9.x (and MariaDB) binlog files from ../shared/fixtures/binlog decode without error; the
//! truncated one fails cleanly. Skipped with a message when the folder is absent.

use binlake::config::TableFilter;
use binlake::event::{SourceMessage, Value};
use binlake::sources::mysql::offline::decode_file;
use std::path::PathBuf;

fn fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/binlog");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: {} is absent (it holds MySQL 8.0/9.x binlog fixtures)",
            dir.display()
        );
        None
    }
}

async fn decode(
    path: &std::path::Path,
) -> Result<Vec<SourceMessage>, binlake::sources::mysql::SourceError> {
    let mut out = vec![];
    decode_file(
        path,
        TableFilter::from_patterns(&["*.*".into()], &[], &[]),
        |m| {
            out.push(m);
            Ok(())
        },
    )
    .await?;
    Ok(out)
}

fn values(messages: &[SourceMessage]) -> Vec<Value> {
    messages
        .iter()
        .filter_map(|m| match m {
            SourceMessage::Change(c) => Some(c),
            _ => None,
        })
        .flat_map(|c| {
            c.before
                .iter()
                .chain(c.after.iter())
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn every_fixture_decodes_and_the_truncated_one_fails_cleanly() {
    let Some(dir) = fixtures() else { return };
    let mut decoded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".md") {
            continue;
        }
        let result = decode(&path).await;
        if name.contains("truncated") {
            let err = result.expect_err("a truncated binlog must fail");
            assert!(
                err.to_string().contains("truncated") || err.to_string().contains("not readable"),
                "{name}: {err}"
            );
        } else {
            let msgs = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            decoded += 1;
            eprintln!("{name}: {} messages", msgs.len());
        }
    }
    assert!(decoded >= 10);
}

#[tokio::test]
async fn fixture_contents_decode_to_the_right_values() {
    let Some(dir) = fixtures() else { return };
    let enums = values(
        &decode(&dir.join("mysql-enum-string-set.000001"))
            .await
            .unwrap(),
    );
    assert!(
        enums
            .iter()
            .any(|v| matches!(v, Value::Enum(s) if !s.is_empty())),
        "ENUM by name: {enums:?}"
    );
    let vectors = values(&decode(&dir.join("vector.binlog")).await.unwrap());
    assert!(
        vectors
            .iter()
            .any(|v| matches!(v, Value::Vector(x) if !x.is_empty())),
        "VECTOR: {vectors:?}"
    );
    let json = values(&decode(&dir.join("json.binlog.000001")).await.unwrap());
    assert!(
        json.iter().any(|v| matches!(v, Value::Json(_))),
        "JSON documents"
    );
    let compressed = decode(&dir.join("transaction_compression.000001"))
        .await
        .unwrap();
    assert!(
        compressed
            .iter()
            .any(|m| matches!(m, SourceMessage::Change(_))),
        "rows inside compressed transactions"
    );
    let mariadb = decode(&dir.join("mariadb-bin.000001")).await.unwrap();
    let gtids: Vec<_> = mariadb
        .iter()
        .filter_map(|m| match m {
            SourceMessage::Change(c) => c.source.gtid.clone(),
            _ => None,
        })
        .collect();
    assert!(
        gtids.iter().all(|g| g.split('-').count() == 3),
        "MariaDB GTIDs: {gtids:?}"
    );
}
