//! Passwords by reference: `secretsmanager:` (moto's Secrets Manager) and `file:`, a password rotated under
//! a running pipeline, and no secret in the logs or metrics of a whole run.

use crate::common::{admin, binary, env, signal_and_wait, TestDb};
use crate::lake::{assert_lake_equals_source, http_get, lake_has, wait_for_lake};
use binlake::config::Config;
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::Command;

async fn secrets_client() -> aws_sdk_secretsmanager::Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(env("BINLAKE_TEST_S3_ENDPOINT"))
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&conf)
}

async fn put_secret(name: &str, value: &str) {
    let client = secrets_client().await;
    let created = client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await;
    if created.is_err() {
        client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .send()
            .await
            .expect("updating the secret in moto");
    }
}

/// `binlake <args>` with Secrets Manager pointed at moto.
fn binlake(args: &[&str], config: &Path) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(args).arg("--config").arg(config).env(
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        env("BINLAKE_TEST_S3_ENDPOINT"),
    );
    cmd
}

/// `binlake <args>` in the background with debug logs (what the no-secret-in-logs checks read) in `log`.
fn spawn_logged(args: &[&str], config: &Path, log: &Path) -> std::process::Child {
    binlake(args, config)
        .env("BINLAKE_LOG", "debug")
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn output_text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// The test config with `source.password` (and optionally `source.user`) replaced.
fn config_with(db: &TestDb, file: &str, user: Option<&str>, password: &str) -> PathBuf {
    let url = mysql_async::Opts::from_url(&env("BINLAKE_MYSQL_URL")).unwrap();
    let mut text = db.config_text("").replace(
        &format!("password = \"{}\"", url.pass().unwrap_or("")),
        &format!("password = \"{password}\""),
    );
    if let Some(user) = user {
        text = text.replace(
            &format!("user = \"{}\"", url.user().unwrap()),
            &format!("user = \"{user}\""),
        );
    }
    assert!(text.contains(password), "{text}");
    let path = db.dir.path().join(file);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_from_secrets_manager_or_a_file_connect_and_are_never_shown() {
    let db = TestDb::new("secref").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let url = mysql_async::Opts::from_url(&env("BINLAKE_MYSQL_URL")).unwrap();
    let password = url.pass().unwrap().to_string();
    let name = format!("binlake-it/{}", db.name);
    put_secret(
        &name,
        &format!(
            r#"{{"username":"{}","password":"{password}"}}"#,
            url.user().unwrap()
        ),
    )
    .await;

    // a key of a JSON secret, the whole of a plain one, a mounted file
    let plain = format!("{name}-plain");
    put_secret(&plain, &password).await;
    let file = db.dir.path().join("mysql-password");
    std::fs::write(&file, format!("{password}\n")).unwrap();
    for (n, reference) in [
        format!("secretsmanager:{name}#password"),
        format!("secretsmanager:{plain}"),
        format!("file:{}", file.display()),
    ]
    .iter()
    .enumerate()
    {
        let path = config_with(&db, &format!("ok{n}.toml"), None, reference);
        let out = binlake(&["check"], &path).output().unwrap();
        let text = output_text(&out);
        assert!(out.status.success(), "{reference}:\n{text}");
        assert!(
            !text.contains(&password),
            "the password was printed:\n{text}"
        );
    }

    // a key the secret lacks: the error names the secret and its keys, never a value
    let path = config_with(
        &db,
        "badkey.toml",
        None,
        &format!("secretsmanager:{name}#pass"),
    );
    let out = binlake(&["check"], &path).output().unwrap();
    let text = output_text(&out);
    assert!(!out.status.success());
    assert!(
        text.contains("source.password")
            && text.contains("no key `pass`")
            && text.contains("password, username"),
        "{text}"
    );
    assert!(!text.contains(&password), "{text}");
    // a secret that does not exist is definite, with the fix
    let path = config_with(
        &db,
        "absent.toml",
        None,
        "secretsmanager:binlake-it/no-such-secret",
    );
    let out = binlake(&["check"], &path).output().unwrap();
    let text = output_text(&out);
    assert!(!out.status.success());
    assert!(text.contains("no such secret"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_rotated_under_a_running_pipeline_is_fetched_again() {
    let db = TestDb::new("secrot").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        .await;
    db.exec("INSERT INTO t VALUES (1, 'a'), (2, 'b')").await;
    let user = format!("rot{}", &db.name[db.name.len().saturating_sub(8)..]);
    let (first, second) = (
        format!("first-{}", rand::random::<u32>()),
        format!("second-{}", rand::random::<u32>()),
    );
    let mut root = admin().await;
    for host in ["127.0.0.1", "localhost"] {
        root.query_drop(format!(
            "CREATE USER '{user}'@'{host}' IDENTIFIED BY '{first}'"
        ))
        .await
        .unwrap();
        root.query_drop(format!(
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '{user}'@'{host}'"
        ))
        .await
        .unwrap();
    }
    let name = format!("binlake-it/{}/rotating", db.name);
    put_secret(&name, &first).await;
    let path = config_with(
        &db,
        "rot.toml",
        Some(&user),
        &format!("secretsmanager:{name}"),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    let log = db.dir.path().join("rot.log");
    let mut child = binlake(&["run"], &path)
        .env(
            "BINLAKE_LOG",
            "debug,buoyant_kernel=off,delta_kernel=off,deltalake_core=info",
        )
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let table = format!("{}.t", db.name);
    wait_for_lake(&config, &table, "id = 2", 60).await;

    // rotate: the secret first, then MySQL; then drop binlake's connections so it must log in again
    put_secret(&name, &second).await;
    for host in ["127.0.0.1", "localhost"] {
        root.query_drop(format!(
            "ALTER USER '{user}'@'{host}' IDENTIFIED BY '{second}'"
        ))
        .await
        .unwrap();
    }
    let ids: Vec<u64> = root
        .exec(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?",
            (user.as_str(),),
        )
        .await
        .unwrap();
    assert!(!ids.is_empty(), "binlake holds a connection as {user}");
    for id in ids {
        root.query_drop(format!("KILL {id}")).await.ok();
    }
    db.exec("INSERT INTO t VALUES (3, 'after rotation')").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !lake_has(&config, &table, "id = 3").await {
        if std::time::Instant::now() > deadline {
            let logged = std::fs::read_to_string(&log).unwrap_or_default();
            // binlake's own lines and the error it ended with (DataFusion's plans would fill the tail)
            let ours = |l: &&str| l.contains("binlake::") || l.starts_with("Error");
            let tail: Vec<&str> = logged.lines().filter(ours).rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "the row written after the rotation is not in the lake after 90 s; binlake's log ends:\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("the secret changed; using the new value"),
        "binlake fetched the secret again:\n{logged}"
    );
    let metrics = http_get(port, "/metrics").await.unwrap().1;
    assert!(signal_and_wait(&mut child, 15).success(), "graceful stop");
    assert_lake_equals_source(&config, &db.name, "t").await;

    // a whole run's logs (debug level) and its metrics hold neither password
    let logged = std::fs::read_to_string(&log).unwrap();
    for secret in [&first, &second] {
        assert!(!logged.contains(secret.as_str()), "a password in the log");
        assert!(!metrics.contains(secret.as_str()), "a password in /metrics");
    }
    for host in ["127.0.0.1", "localhost"] {
        root.query_drop(format!("DROP USER '{user}'@'{host}'"))
            .await
            .ok();
    }
}

/// `kafka.sasl_password` from Secrets Manager, over TLS to a broker that checks SCRAM-SHA-512: the secret
/// holds a stale password at start, the broker refuses it, and once the secret holds the right one the
/// publisher fetches it again, hands it to its clients and publishes the table; `binlake sink` then reads
/// the topics over SCRAM into a lake equal to MariaDB. Neither password is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_kafka_scram_password_is_fetched_again_from_its_secret() {
    use crate::kafka::{unique_prefix, wait_records_with};
    let brokers = env("BINLAKE_TEST_SCRAM_KAFKA_BROKERS");
    let ca = env("BINLAKE_TEST_TLS_CA");
    let db = TestDb::new("kscram").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        .await;
    db.exec("INSERT INTO t VALUES (1, 'a'), (2, 'b')").await;
    // the broker's one user (scripts/services adds it before turning authentication on)
    let (user, right) = (
        env("BINLAKE_TEST_SCRAM_USER"),
        env("BINLAKE_TEST_SCRAM_PASSWORD"),
    );
    let stale = format!("stale-{}", rand::random::<u32>());
    let name = format!("binlake-it/{}/kafka", db.name);
    put_secret(&name, &stale).await;

    let prefix = unique_prefix("scram");
    let path = db.dir.path().join("scram.toml");
    std::fs::write(
        &path,
        db.config_text("")
            + &format!(
                "[sink]\nkind = \"kafka\"\n[kafka]\nbrokers = \"{brokers}\"\ntopic_prefix = \"{prefix}\"\n\
                 security = \"sasl_scram\"\nca_file = \"{ca}\"\nsasl_username = \"{user}\"\n\
                 sasl_password = \"secretsmanager:{name}\"\n"
            ),
    )
    .unwrap();
    let log = db.dir.path().join("scram.log");
    let mut child = spawn_logged(&["run"], &path, &log);
    let mut on_failure = crate::ha::LogsOnFailure(vec![(log.clone(), child.id())]);
    crate::ha::wait_for_log(&log, "Authentication failure", 60).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "binlake keeps trying while the broker refuses the password"
    );
    put_secret(&name, &right).await;

    let mut reader = crate::kafka::reader_config(&brokers);
    reader
        .set("security.protocol", "sasl_ssl")
        .set("ssl.ca.location", &ca)
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", &user)
        .set("sasl.password", &right);
    let topic = format!("{prefix}.{}.t", db.name);
    let records = wait_records_with(reader, &topic, 120, |r| r.len() >= 2).await;
    let mut ids: Vec<i64> = records
        .iter()
        .map(|r| r.key_json()["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2]);
    assert!(signal_and_wait(&mut child, 15).success(), "graceful stop");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("the secret changed; using the new value")
            && logged.contains("the Kafka client uses the new SCRAM password"),
        "binlake fetched the secret again and gave it to its clients:\n{logged}"
    );

    // the lake sink reads the topics over the same SASL_SSL connection settings into Delta
    let config = Config::load(&path).unwrap();
    let sink_log = db.dir.path().join("scram-sink.log");
    let mut sink = spawn_logged(&["sink"], &path, &sink_log);
    on_failure.0.push((sink_log.clone(), sink.id()));
    wait_for_lake(&config, &format!("{}.t", db.name), "id = 2", 90).await;
    assert!(signal_and_wait(&mut sink, 15).success(), "sink stops");
    assert_lake_equals_source(&config, &db.name, "t").await;
    let logged = logged + &std::fs::read_to_string(&sink_log).unwrap();
    for secret in [&stale, &right] {
        assert!(!logged.contains(secret.as_str()), "a password in the log");
    }
}
