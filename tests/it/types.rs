//! Type matrix: extreme and awkward values per type family, inserted, updated and deleted while streaming;
//! the decoded binlog events and a fresh snapshot both equal what SELECT returns.

use crate::common::*;
use binlake::event::{Op, Value};
use mysql_async::prelude::*;

pub const TABLES: &[(&str, &str)] = &[
    (
        "ints",
        "id INT PRIMARY KEY, ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT, \
         miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED",
    ),
    ("nums", "id INT PRIMARY KEY, d65 DECIMAL(65,30), d65i DECIMAL(65,0), d10 DECIMAL(10,2), f FLOAT, dbl DOUBLE"),
    ("times", "id INT PRIMARY KEY, d DATE, dt DATETIME(6), dt0 DATETIME, ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(6), y YEAR"),
    (
        "strs",
        "id INT PRIMARY KEY, c CHAR(10), vc VARCHAR(100), t TEXT, l VARCHAR(50) CHARACTER SET latin1, \
         e ENUM('a','b','c d'), s SET('x','y','z'), j JSON",
    ),
    ("bins", "id INT PRIMARY KEY, bn BINARY(4), vb VARBINARY(10), bl BLOB, b1 BIT(1), b64 BIT(64), g GEOMETRY"),
];

pub const INSERTS: &[&str] = &[
    "INSERT INTO ints VALUES (1,-128,0,-32768,0,-8388608,0,-2147483648,0,-9223372036854775808,0), \
     (2,127,255,32767,65535,8388607,16777215,2147483647,4294967295,9223372036854775807,18446744073709551615), \
     (3,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL), (4,0,1,0,1,0,1,0,1,0,1), \
     (5,-1,254,-1,65534,-1,16777214,-1,4294967294,-1,18446744073709551614), \
     (6,-128,0,-32768,0,-8388608,0,-2147483648,0,-9223372036854775808,0)",
    "INSERT INTO nums VALUES (1,'-99999999999999999999999999999999999.999999999999999999999999999999', \
     '99999999999999999999999999999999999999999999999999999999999999999','-12345678.90',-3.40282e38,-1.7976931348623157e308), \
     (2,'0.000000000000000000000000000001','-1','0.00',1.17549e-38,2.2250738585072014e-308), \
     (3,NULL,NULL,NULL,NULL,NULL), (4,'0','0','-0.01',0.1,0.1)",
    "INSERT INTO times VALUES (1,'1000-01-01','1000-01-01 00:00:00.000000','9999-12-31 23:59:59','1970-01-01 00:00:01.000000','-838:59:59.000000',1901), \
     (2,'9999-12-31','9999-12-31 23:59:59.999999','2024-02-29 12:34:56','2038-01-19 03:14:07.999999','838:59:59.000000',2155), \
     (3,'0000-00-00','0000-00-00 00:00:00','0000-00-00 00:00:00','0000-00-00 00:00:00','00:00:00.000001',0), \
     (4,NULL,NULL,NULL,NULL,NULL,NULL), (5,'2024-00-10','2024-01-00 10:00:00.5','2000-01-01 00:00:00','2026-11-21 10:00:00.123456','-00:00:00.5',2000)",
    "INSERT INTO strs VALUES (1,'','','','','a','',JSON_OBJECT()), \
     (2,'😀𝄞中','four-byte 😀 𝄞 and ünïcödé','long text 🚀','café € ÿ','c d','x,z','{\"a\": [1, 2.5, \"x\"], \"b\": null, \"c\": {\"d\": true}}'), \
     (3,NULL,NULL,NULL,NULL,NULL,NULL,NULL), (4,'pad  ','trailing  ','t','Ä','b','x,y,z','[1,\"two\",3.0]')",
    "INSERT INTO bins VALUES (1,X'00000000',X'',X'',b'0',b'0',ST_GeomFromText('POINT(1 2)')), \
     (2,X'FFFFFFFF',X'00FF00FF00',X'DEADBEEF00',b'1',b'1111111111111111111111111111111111111111111111111111111111111111', ST_GeomFromText('LINESTRING(0 0, 1 1, 2 3)', 4326)), \
     (3,NULL,NULL,NULL,NULL,NULL,NULL), (4,X'01',X'7f',REPEAT(X'AB', 1000),b'1',b'1000000000000000000000000000000000000000000000000000000000000001',NULL)",
];

pub const CHANGES: &[&str] = &[
    "UPDATE ints SET biu = 18446744073709551614, bi = -1 WHERE id = 2",
    // every signed width at -1 and at its minimum, through an update's before and after images
    "UPDATE ints SET ti = -1, si = -1, mi = -1, i = -1 WHERE id = 6",
    "UPDATE ints SET ti = -128, si = -32768, mi = -8388608, i = -2147483648 WHERE id = 6",
    "UPDATE ints SET id = 40 WHERE id = 4",
    "DELETE FROM ints WHERE id = 1",
    "UPDATE nums SET d65 = '12345678901234567890123456789012345.123456789012345678901234567890' WHERE id = 4",
    "DELETE FROM nums WHERE id = 3",
    "UPDATE times SET ts = '2001-09-09 01:46:40.000001', tm = '-01:02:03.4' WHERE id = 2",
    "DELETE FROM times WHERE id = 4",
    "UPDATE strs SET vc = '🧪 updated', e = 'b', s = 'y', j = '{\"k\": \"🧪\"}' WHERE id = 2",
    "DELETE FROM strs WHERE id = 1",
    "UPDATE bins SET vb = X'0102', b64 = b'1' WHERE id = 2",
    "DELETE FROM bins WHERE id = 3",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_matrix_stream_and_snapshot_equal_select() {
    let db = TestDb::new("types").await;
    for (name, cols) in TABLES {
        db.exec(&format!(
            "CREATE TABLE {name} ({cols}) CHARACTER SET utf8mb4"
        ))
        .await;
    }
    // Start streaming on the empty tables, then write: everything below arrives through the binlog.
    let config = db.config("");
    // 23 inserted rows, and every statement in CHANGES touches exactly one row.
    let expected_changes = 23 + CHANGES.len();
    let (messages, cancel, handle) = start(config, move |m| changes(m).len() >= expected_changes);
    wait_streaming(&messages, 90).await;
    let mut conn = admin().await;
    let (first_file, datadir) = binlog_file_and_datadir(&mut conn).await;
    conn.query_drop(format!("USE `{}`", db.name)).await.unwrap();
    conn.query_drop("SET SESSION sql_mode = ''").await.unwrap();
    for sql in INSERTS.iter().chain(CHANGES) {
        conn.query_drop(*sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    tokio::time::timeout(std::time::Duration::from_secs(90), handle)
        .await
        .expect("stream caught up")
        .unwrap()
        .unwrap();
    cancel.cancel();
    let streamed = messages.lock().unwrap().clone();
    let events = changes(&streamed);

    for (name, _) in TABLES {
        let want = select_state(&db.name, name).await;
        assert_same_state(
            &replay(&events, name),
            &want,
            &format!("binlog stream of {name}"),
        );
    }

    // Spot checks against literal expectations, independent of the decoder under test.
    let ints = replay(&events, "ints");
    let row2 = &ints["[Int(2)]"];
    assert_eq!(row2["biu"], Value::UInt(18446744073709551614));
    assert_eq!(row2["miu"], Value::UInt(16777215));
    assert_eq!(row2["mi"], Value::Int(8_388_607));
    let ints_row = |id: i64| ints[&format!("[Int({id})]")].clone();
    let minus_one = ints_row(5);
    for (col, want) in [
        ("ti", Value::Int(-1)),
        ("si", Value::Int(-1)),
        ("mi", Value::Int(-1)),
        ("i", Value::Int(-1)),
        ("bi", Value::Int(-1)),
        ("tiu", Value::UInt(254)),
        ("siu", Value::UInt(65534)),
        ("miu", Value::UInt(16_777_214)),
        ("iu", Value::UInt(4_294_967_294)),
        ("biu", Value::UInt(18_446_744_073_709_551_614)),
    ] {
        assert_eq!(
            minus_one[col], want,
            "ints.{col} at -1 / max-1 through the binlog"
        );
    }
    let minimums = ints_row(6);
    for (col, want) in [
        ("ti", i8::MIN as i64),
        ("si", i16::MIN as i64),
        ("mi", -8_388_608),
        ("i", i32::MIN as i64),
        ("bi", i64::MIN),
    ] {
        assert_eq!(
            minimums[col],
            Value::Int(want),
            "ints.{col} at its minimum through the binlog"
        );
    }
    assert!(
        ints.contains_key("[Int(40)]"),
        "primary-key change moved the row"
    );
    let pk_change = events
        .iter()
        .find(|e| e.schema.table == "ints" && e.op == Op::Update && e.key_changed());
    assert!(
        pk_change.is_some(),
        "a primary-key update is visible as such"
    );
    let nums = replay(&events, "nums");
    assert_eq!(
        nums["[Int(1)]"]["d65i"],
        Value::Decimal("99999999999999999999999999999999999999999999999999999999999999999".into())
    );
    assert_eq!(
        nums["[Int(1)]"]["d65"],
        Value::Decimal(
            "-99999999999999999999999999999999999.999999999999999999999999999999".into()
        )
    );
    let strs = replay(&events, "strs");
    assert_eq!(strs["[Int(2)]"]["c"], Value::String("😀𝄞中".into()));
    assert_eq!(strs["[Int(2)]"]["l"], Value::String("café € ÿ".into()));
    assert_eq!(strs["[Int(2)]"]["s"], Value::Set("y".into()));
    let times = replay(&events, "times");
    assert_eq!(
        times["[Int(3)]"]["d"],
        Value::Date {
            year: 0,
            month: 0,
            day: 0
        }
    );
    assert_eq!(
        times["[Int(2)]"]["ts"],
        Value::Timestamp {
            secs: 1_000_000_000,
            micros: 1
        }
    );
    assert_eq!(
        times["[Int(1)]"]["tm"],
        Value::Time {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 0
        }
    );
    let bins = replay(&events, "bins");
    assert_eq!(bins["[Int(2)]"]["b64"], Value::Bit(1));
    assert_eq!(bins["[Int(4)]"]["b64"], Value::Bit(0x8000_0000_0000_0001));

    // The same rows through `binlake binlog decode` on the server's own binlog files: the JSON envelope
    // carries the signed values too.
    let envelope_ints = decode_server_binlog(&mut conn, &first_file, &datadir, &db.name).await;
    let after_of = |id: i64| {
        envelope_ints
            .iter()
            .filter(|l| l["after"]["id"].as_i64() == Some(id))
            .next_back()
            .unwrap_or_else(|| panic!("ints row {id} in binlog decode output"))["after"]
            .clone()
    };
    let five = after_of(5);
    for col in ["ti", "si", "mi", "i", "bi"] {
        assert_eq!(
            five[col].as_i64(),
            Some(-1),
            "binlog decode ints.{col}: {five}"
        );
    }
    assert_eq!(five["biu"].as_u64(), Some(18_446_744_073_709_551_614));
    let six = after_of(6);
    assert_eq!(six["mi"].as_i64(), Some(-8_388_608), "binlog decode: {six}");
    assert_eq!(six["bi"].as_i64(), Some(i64::MIN), "binlog decode: {six}");

    // A fresh connector snapshots the same tables: the snapshot path must agree as well.
    let snap_db = TestDb {
        name: db.name.clone(),
        dir: tempfile::tempdir().unwrap(),
    };
    let total_rows: usize = {
        let mut n = 0;
        for (name, _) in TABLES {
            n += select_state(&db.name, name).await.len();
        }
        n
    };
    let snap = run_until(
        snap_db.config("[source.snapshot]\nchunk_size = 2"),
        move |m| changes(m).iter().filter(|c| c.op == Op::Read).count() >= total_rows,
        30,
    )
    .await;
    let snap_events = changes(&snap);
    for (name, _) in TABLES {
        let want = select_state(&db.name, name).await;
        assert_same_state(
            &replay(&snap_events, name),
            &want,
            &format!("snapshot of {name}"),
        );
    }
}

/// The server's current binlog file and its data directory (where the binlog files are).
pub async fn binlog_file_and_datadir(conn: &mut mysql_async::Conn) -> (String, String) {
    let status: mysql_async::Row = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .expect("binlog on");
    let datadir: String = conn.query_first("SELECT @@datadir").await.unwrap().unwrap();
    (status.get::<String, _>(0).unwrap(), datadir)
}

/// Every `ints` change of `db` in the binlog files from `first` on, as `binlake binlog decode` prints them.
async fn decode_server_binlog(
    conn: &mut mysql_async::Conn,
    first: &str,
    datadir: &str,
    db: &str,
) -> Vec<serde_json::Value> {
    // rotate, so the files decoded below are complete while other tests keep writing
    conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
    let (current, _) = binlog_file_and_datadir(conn).await;
    let files: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.unwrap();
    let mut out = vec![];
    for file in files
        .iter()
        .map(|r| r.get::<String, _>(0).unwrap())
        .filter(|f| f.as_str() >= first && f.as_str() < current.as_str())
    {
        let path = std::path::Path::new(datadir).join(&file);
        let run = std::process::Command::new(binary())
            .args(["binlog", "decode", "--include", &format!("{db}.ints")])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "binlog decode {}: {}",
            path.display(),
            String::from_utf8_lossy(&run.stderr)
        );
        out.extend(
            String::from_utf8_lossy(&run.stdout)
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter(|v| v.get("op").is_some()),
        );
    }
    assert!(!out.is_empty(), "no ints changes decoded from {first} on");
    out
}
