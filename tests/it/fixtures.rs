//! MySQL 8.0/9.x (and MariaDB) binlog files from ../shared/fixtures/binlog, decoded offline. CI always has
//! that folder beside the clone, so its absence is a failure. Values are asserted exactly; the expected
//! ones are those rust_mysql_common's own tests assert for the same files (BIT, TIME, ENUM/SET, JSON opaque
//! values, VECTOR, the MINIMAL-metadata INT, the tagged GTID), plus invariants the files carry themselves
//! (generated columns that must agree with the JSON document they are extracted from).

use binlake::config::TableFilter;
use binlake::event::{ChangeEvent, Op, SourceMessage, Value};
use binlake::sources::mysql::offline::decode_file;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/binlog");
    assert!(
        dir.is_dir(),
        "{} is missing: the MySQL 8.0/9.x binlog fixtures live in shared/ beside the clone",
        dir.display()
    );
    dir
}

async fn decode(name: &str) -> Vec<ChangeEvent> {
    let mut out = vec![];
    decode_file(
        &fixtures().join(name),
        TableFilter::from_patterns(&["*.*".into()], &[], &[]),
        |m| {
            if let SourceMessage::Change(c) = m {
                out.push(c);
            }
            Ok(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    out
}

/// Column → value of one row image.
fn named(ev: &ChangeEvent, row: &[Value]) -> Vec<(String, Value)> {
    ev.schema
        .columns
        .iter()
        .zip(row)
        .filter(|(_, v)| !matches!(v, Value::Absent))
        .map(|(c, v)| (c.name.clone(), v.clone()))
        .collect()
}

fn after(ev: &ChangeEvent) -> Vec<(String, Value)> {
    named(ev, ev.after.as_deref().expect("after image"))
}

fn s(x: &str) -> Value {
    Value::String(x.into())
}

#[tokio::test]
async fn every_fixture_decodes_and_the_truncated_one_fails_cleanly() {
    let dir = fixtures();
    let mut decoded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".md") {
            continue;
        }
        let result = decode_file(
            &path,
            TableFilter::from_patterns(&["*.*".into()], &[], &[]),
            |_| Ok(()),
        )
        .await;
        if name.contains("truncated") {
            let err = result.expect_err("a truncated binlog must fail");
            assert!(
                err.to_string().contains("truncated") || err.to_string().contains("not readable"),
                "{name}: {err}"
            );
        } else {
            result.unwrap_or_else(|e| panic!("{name}: {e}"));
            decoded += 1;
        }
    }
    assert_eq!(decoded, 15, "every fixture but the truncated one decodes");
}

#[tokio::test]
async fn bit_and_time() {
    let bits = decode("mysql_type_bit.000001").await;
    assert!(!bits.is_empty());
    for ev in &bits {
        assert_eq!(ev.op, Op::Insert);
        assert_eq!(
            after(ev),
            vec![
                ("a".into(), Value::Bit(0b100)),
                ("b".into(), s("foo")),
                ("c".into(), Value::Bit(0b100000)),
            ]
        );
    }
    // -(21 days 03:48:27): TIME's range is hours, so 507 of them
    let times = decode("time_issue.000001").await;
    assert_eq!(
        after(&times[0]),
        vec![(
            "@0".into(),
            Value::Time {
                negative: true,
                hours: 507,
                minutes: 48,
                seconds: 27,
                micros: 0
            }
        )]
    );
}

#[tokio::test]
async fn enum_and_set_by_name_through_insert_update_delete() {
    let evs = decode("mysql-enum-string-set.000001").await;
    let ops: Vec<Op> = evs.iter().map(|e| e.op).collect();
    assert_eq!(ops, [Op::Insert, Op::Update, Op::Delete]);
    let digits = "0123456789".repeat(10);
    let inserted = after(&evs[0]);
    assert_eq!(inserted[0], ("f1".into(), s(&digits)));
    assert_eq!(inserted[2], ("f3".into(), Value::Enum("var1".into())));
    assert_eq!(inserted[3], ("f4".into(), Value::Set("one,three".into())));
    assert_eq!(inserted[4], ("f5".into(), s("0123456789")));
    assert_eq!(named(&evs[1], evs[1].before.as_deref().unwrap()), inserted);
    let updated = after(&evs[1]);
    assert_eq!(updated[0], ("f1".into(), s("field1")));
    assert_eq!(updated[1], ("f2".into(), s("field_2")));
    assert_eq!(updated[2], ("f3".into(), Value::Enum("variant2".into())));
    assert_eq!(updated[3], ("f4".into(), Value::Set("two,four".into())));
    assert_eq!(named(&evs[2], evs[2].before.as_deref().unwrap()), updated);
    for (ev, n) in evs.iter().zip(3..) {
        assert_eq!(
            ev.source.gtid.as_deref(),
            Some(format!("93e95066-a2f4-11ec-9b69-9657f0ae95e2:{n}").as_str())
        );
    }
}

#[tokio::test]
async fn json_documents_opaque_values_and_partial_updates() {
    let opaque = decode("json-opaque.binlog").await;
    let docs: Vec<serde_json::Value> = opaque
        .iter()
        .map(|e| match &after(e)[0].1 {
            Value::Json(t) => serde_json::from_str(t).unwrap(),
            other => panic!("JSON expected, got {other:?}"),
        })
        .collect();
    assert_eq!(
        docs,
        [
            serde_json::json!({"a": "base64:type15:VQ=="}),
            serde_json::json!({"b": "2012-03-18"}),
            serde_json::json!({"c": "2012-03-18 11:30:45.000000"}),
            serde_json::json!({"c": "87:31:46.654321"}),
            serde_json::json!({"d": "123.456"}),
            serde_json::json!({"e": "9.00"}),
            serde_json::json!({"e": [0, 1, true, false]}),
            serde_json::json!({"e": null}),
        ]
    );

    // @1 is the document; @2 and @3 are generated from it (name, age). Full images and documents rebuilt
    // from PARTIAL_UPDATE_ROWS diffs must agree with them.
    let evs = decode("json.binlog.000001").await;
    assert_eq!(evs.len(), 18);
    let mut checked = 0;
    for ev in &evs {
        let row = after(ev);
        let get = |c: &str| row.iter().find(|(n, _)| n == c).map(|(_, v)| v.clone());
        if let (Some(Value::Json(doc)), Some(name), Some(Value::Int(age))) =
            (get("@1"), get("@2"), get("@3"))
        {
            let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
            assert_eq!(doc["age"], serde_json::json!(age), "{doc}");
            assert_eq!(Value::String(doc["name"].as_str().unwrap().into()), name);
            checked += 1;
        }
    }
    assert_eq!(
        checked, 12,
        "six inserts and six updates carry the document"
    );
    let ages: Vec<i64> = evs
        .iter()
        .filter(|e| e.op == Op::Update)
        .filter_map(|e| match after(e).iter().find(|(n, _)| n == "@3") {
            Some((_, Value::Int(a))) => Some(*a),
            _ => None,
        })
        .collect();
    assert_eq!(ages, [25, 33, 41, 25, 33, 41, 26, 34, 42, 26, 34, 42]);
}

#[tokio::test]
async fn vectors_invisible_columns_and_minimal_metadata() {
    let vectors = decode("vector.binlog").await;
    assert_eq!(
        after(&vectors[0]),
        vec![
            ("id".into(), Value::UInt(1)),
            ("vector_column".into(), Value::Vector(vec![1.1, 2.2, 3.3]))
        ]
    );
    assert_eq!(
        after(&vectors[1]),
        vec![
            ("id".into(), Value::UInt(2)),
            ("vector_column".into(), Value::Vector(vec![1.0, -1.0, 0.0]))
        ]
    );

    // invisible columns are columns like any other in the row image
    let inv = decode("binlog-invisible-columns.000001").await;
    assert_eq!(
        after(&inv[0]),
        vec![
            ("f1".into(), Value::UInt(1)),
            ("f2".into(), Value::UInt(2)),
            ("f3".into(), Value::Int(-3)),
            ("f4".into(), s("4")),
            ("f5".into(), Value::Bytes(vec![5])),
            ("f6".into(), Value::UInt(6_000_000_000)),
        ]
    );
    let update = inv.iter().find(|e| e.op == Op::Update).expect("an update");
    assert_eq!(
        after(update)[..4],
        [
            ("f1".into(), Value::UInt(111)),
            ("f2".into(), Value::UInt(222)),
            ("f3".into(), Value::Int(-333)),
            ("f4".into(), s("444")),
        ]
    );

    // MINIMAL metadata carries no names (columns are `@n`) but keeps signedness: an INT UNSIGNED above 2^31
    let minimal = decode("minimal_row_metadata.000001").await;
    let row = after(&minimal[0]);
    assert_eq!(
        row.iter().find(|(n, _)| n == "@4").unwrap().1,
        Value::UInt(3_230_202_323)
    );
}

#[tokio::test]
async fn gtids_tagged_and_mariadb() {
    let tagged = decode("binlog_transaction_with_GTID_TAG.000001").await;
    assert_eq!(
        tagged
            .iter()
            .map(|e| e.source.gtid.clone().unwrap())
            .collect::<Vec<_>>(),
        ["55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3"]
    );
    assert_eq!(
        after(&tagged[0]),
        vec![
            ("@0".into(), Value::Int(3)),
            ("@1".into(), Value::Int(100)),
            ("@2".into(), Value::Decimal("250.00".into())),
        ]
    );
    let mariadb = decode("mariadb-bin.000001").await;
    let gtids: Vec<String> = mariadb
        .iter()
        .map(|e| e.source.gtid.clone().unwrap())
        .collect();
    assert_eq!(gtids[..2], ["0-1-1", "0-1-2"]);
    assert_eq!(
        after(&mariadb[0])[..3],
        [
            ("id".into(), Value::Int(62)),
            ("topic".into(), s("foo")),
            ("event_type".into(), Value::Enum("JSON".into())),
        ]
    );
}
