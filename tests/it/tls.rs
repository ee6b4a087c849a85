//! TLS to MySQL against a MariaDB that accepts only TLS (`require_secure_transport=ON`) with a certificate
//! from a CA made by scripts/services: verify_ca works, a wrong CA fails preflight clearly, and `disabled`
//! is refused by the server with a message that says what to change.

use crate::common::*;
use binlake::config::Config;
use binlake::event::Op;
use mysql_async::prelude::*;

/// Creates a database with one row on the TLS server (over its socket, which needs no TLS).
async fn tls_db() -> String {
    let name = format!("it_tls_{}", rand::random::<u32>());
    let opts = mysql_async::OptsBuilder::default()
        .socket(Some(env("BINLAKE_TEST_TLS_MYSQL_SOCKET")))
        .prefer_socket(true)
        .user(Some("root"));
    let mut conn = mysql_async::Conn::new(opts)
        .await
        .expect("socket connection");
    conn.query_drop(format!(
        "CREATE DATABASE `{name}`; CREATE TABLE `{name}`.t (id INT PRIMARY KEY, v VARCHAR(10)); \
         INSERT INTO `{name}`.t VALUES (1, 'secure')"
    ))
    .await
    .unwrap();
    name
}

fn config_text(dir: &std::path::Path, db: &str, tls: &str) -> String {
    let url = mysql_async::Opts::from_url(&env("BINLAKE_TEST_TLS_MYSQL_URL")).unwrap();
    format!(
        "name = \"tls\"\n[source]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\npassword = \"{}\"\n\
         server_id = {}\ninclude = [\"{db}.*\"]\n[source.tls]\n{tls}\n[sink]\nkind = \"stdout\"\n\
         [state]\ndir = \"{}\"\n[observe]\nlisten = \"\"\n",
        url.tcp_port(),
        url.user().unwrap(),
        url.pass().unwrap_or(""),
        10_000 + rand::random::<u32>() % 1_000_000,
        dir.join("state").display()
    )
}

async fn check(text: &str, dir: &std::path::Path) -> (bool, String) {
    let path = dir.join("tls.toml");
    std::fs::write(&path, text).unwrap();
    let out = crate::hardening::run_binary_to_exit(&["check"], &path, 60).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_streams_and_a_wrong_ca_or_no_tls_fails_preflight_clearly() {
    let db = tls_db().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = env("BINLAKE_TEST_TLS_CA");

    for mode in ["verify_ca", "verify_identity"] {
        let text = config_text(
            dir.path(),
            &db,
            &format!("mode = \"{mode}\"\nca_file = \"{ca}\""),
        );
        let (ok, out) = check(&text, dir.path()).await;
        assert!(ok, "{mode}: preflight passes over TLS:\n{out}");
        // and the snapshot row arrives over the verified connection
        let config = Config::parse(&text, std::path::Path::new("tls.toml")).unwrap();
        let _ = std::fs::remove_dir_all(dir.path().join("state"));
        let messages = run_until(config, |m| changes(m).iter().any(|c| c.op == Op::Read), 60).await;
        assert_eq!(changes(&messages).len(), 1, "{mode}: one snapshot row");
    }

    let other = env("BINLAKE_TEST_TLS_OTHER_CA");
    let text = config_text(
        dir.path(),
        &db,
        &format!("mode = \"verify_ca\"\nca_file = \"{other}\""),
    );
    let (ok, out) = check(&text, dir.path()).await;
    assert!(
        !ok,
        "a CA that did not sign the server certificate is refused:\n{out}"
    );
    assert!(out.contains("FAIL connect") && out.contains("TLS"), "{out}");
    assert!(
        out.contains("ca_file"),
        "the message names the setting to fix:\n{out}"
    );

    let text = config_text(dir.path(), &db, "mode = \"disabled\"");
    let (ok, out) = check(&text, dir.path()).await;
    assert!(!ok, "the server refuses a plain connection:\n{out}");
    assert!(
        out.contains("FAIL connect") && out.contains("source.tls.mode"),
        "{out}"
    );
}
