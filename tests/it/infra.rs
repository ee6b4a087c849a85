//! The deployment files: static checks of infra/ (Terraform parse + checkov, Dockerfile, dashboard and
//! alert rules naming only defined metrics, promtool), and the config the Terraform module renders for
//! its tasks, loaded the way a task loads it (`--config env:BINLAKE_CONFIG`).

use crate::common::{binary, TestDb};
use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn infra_files_pass_the_static_checks() {
    // scripts/test installs checkov, python-hcl2 and PyYAML into a venv and names its python here
    let python = std::env::var("BINLAKE_INFRA_PYTHON").expect(
        "BINLAKE_INFRA_PYTHON is not set: scripts/test sets it to a Python with checkov and python-hcl2",
    );
    let out = Command::new(&python)
        .arg(repo().join("scripts/check_infra.py"))
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "scripts/check_infra.py:\n{text}");
    assert!(text.contains("OK"), "{text}");
}

/// The module's config template with Terraform's interpolations filled in as `templatefile` would;
/// `flags` are the `%{ if … }` conditions that hold.
fn render(flags: &[&str], values: &[(&str, String)]) -> String {
    let template =
        std::fs::read_to_string(repo().join("infra/terraform/modules/binlake/binlake.toml.tftpl"))
            .unwrap();
    let mut out = String::new();
    let mut keep = true;
    for line in template.lines() {
        let trimmed = line.trim();
        match trimmed {
            _ if trimmed.starts_with("%{ if ") => {
                let flag = trimmed.trim_start_matches("%{ if ").trim_end_matches(" }");
                keep = flags.contains(&flag);
            }
            "%{ endif }" => keep = true,
            _ if keep => {
                out.push_str(line);
                out.push('\n');
            }
            _ => {}
        }
    }
    // `$${X}` is Terraform's escape for a literal `${X}` that binlake interpolates at start
    let mut out = out.replace("$${", "\u{0}");
    for (name, value) in values {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    let out = out.replace('\u{0}', "${");
    assert_eq!(
        out.replace("${BINLAKE_SLACK_TOKEN}", "")
            .matches("${")
            .count(),
        0,
        "unfilled template values in\n{out}"
    );
    out
}

fn check_config_only(config: &str, slack_token: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(binary());
    cmd.args(["check", "--config", "env:BINLAKE_CONFIG", "--config-only"])
        .env("BINLAKE_CONFIG", config)
        .env_remove("BINLAKE_SLACK_TOKEN");
    if let Some(t) = slack_token {
        cmd.env("BINLAKE_SLACK_TOKEN", t);
    }
    cmd.output().unwrap()
}

#[test]
fn the_config_terraform_renders_loads_from_the_environment() {
    let values = |sink: &str| {
        vec![
            ("name", "stocks".to_string()),
            ("mysql_host", "db.internal".to_string()),
            ("mysql_port", "3306".to_string()),
            ("mysql_user", "binlake".to_string()),
            ("server_id", "5401".to_string()),
            ("include", "[\"stocks.*\", \"ref.symbols\"]".to_string()),
            ("bucket", "acme-lake".to_string()),
            ("lake_prefix", "lake".to_string()),
            ("region", "us-east-1".to_string()),
            ("metrics_port", "9464".to_string()),
            ("sink_kind", sink.to_string()),
            ("brokers", "b-1.msk:9098,b-2.msk:9098".to_string()),
            ("partitions", "6".to_string()),
            (
                "mysql_secret_arn",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:binlake-stocks/mysql-AbCdEf"
                    .to_string(),
            ),
            ("slack_channel", "#cdc-alerts".to_string()),
        ]
    };
    for (flags, sink) in [
        (vec![], "lake"),
        (vec!["ha"], "lake"),
        (vec!["kafka", "ha"], "kafka"),
        (vec!["kafka", "slack"], "kafka"),
    ] {
        let config = render(&flags, &values(sink));
        assert!(
            config.contains("password = \"secretsmanager:arn:aws:secretsmanager:"),
            "{config}"
        );
        let out = check_config_only(&config, Some("xoxb-s3cret"));
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{flags:?} config refused:\n{text}\n{config}"
        );
        assert!(text.contains("config OK: connector stocks"), "{text}");
        assert!(
            !text.contains("xoxb-s3cret"),
            "the token was printed: {text}"
        );
    }
    // the Slack token comes from the environment ECS fills from Secrets Manager: without it, a clear error
    let out = check_config_only(&render(&["slack"], &values("lake")), None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("BINLAKE_SLACK_TOKEN") && err.contains("alerts.slack.bot_token"),
        "{err}"
    );
    // and `env:` naming a variable that is not set says so
    let out = Command::new(binary())
        .args([
            "check",
            "--config-only",
            "--config",
            "env:BINLAKE_NO_SUCH_CONFIG",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("BINLAKE_NO_SUCH_CONFIG"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_from_the_environment_runs_the_pipeline() {
    // the same loading path against the real server: `binlake check` connects with it
    let db = TestDb::new("envcfg").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").await;
    let out = Command::new(binary())
        .args(["check", "--config", "env:BINLAKE_CONFIG"])
        .env("BINLAKE_CONFIG", db.config_text(""))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
