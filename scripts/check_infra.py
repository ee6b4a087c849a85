#!/usr/bin/env python3
"""Static checks of infra/: the Terraform parses (python-hcl2) and passes checkov with no failed check
(skips only with a written reason), the Dockerfile has what ECS needs, and the Grafana dashboard and the
Prometheus rules are well formed and name only metrics binlake defines (src/observe.rs).
Run with the Python that has checkov, python-hcl2 and PyYAML (scripts/test installs them in a venv).
Exit status 1 with every problem listed."""
import glob
import json
import os
import re
import subprocess
import sys

import hcl2
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
problems = []


def problem(msg):
    problems.append(msg)


def defined_metrics():
    src = open(os.path.join(ROOT, "src/observe.rs")).read()
    return set(re.findall(r'"(binlake_[a-z0-9_]+)"', src))


def metric_names(expr):
    names = set(re.findall(r"\b(binlake_[a-z0-9_]+)", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def check_terraform():
    tf_root = os.path.join(ROOT, "infra/terraform")
    files = sorted(glob.glob(os.path.join(tf_root, "**/*.tf"), recursive=True))
    if not files:
        problem("no Terraform files under infra/terraform")
    for path in files:
        rel = os.path.relpath(path, ROOT)
        try:
            with open(path) as f:
                doc = hcl2.load(f)
        except Exception as e:  # the parser's own error says where
            problem(f"{rel}: does not parse: {e}")
            continue
        for block in doc.get("variable", []):
            for name, body in block.items():
                if not body.get("description"):
                    problem(f"{rel}: variable {name} has no description")
                if "type" not in body:
                    problem(f"{rel}: variable {name} has no type")
        for block in doc.get("output", []):
            for name, body in block.items():
                if not body.get("description"):
                    problem(f"{rel}: output {name} has no description")
    outputs = set()
    for path in glob.glob(os.path.join(tf_root, "modules/binlake/*.tf")):
        with open(path) as f:
            for block in hcl2.load(f).get("output", []):
                outputs.update(block)
    for needed in ("athena_workgroup", "glue_databases"):
        if needed not in outputs:
            problem(f"modules/binlake: no output {needed}")
    for target in ("modules/binlake", "examples/stocks"):
        run_checkov(os.path.join(tf_root, target))


def run_checkov(directory):
    checkov = os.path.join(os.path.dirname(sys.executable), "checkov")
    out = subprocess.run(
        [checkov, "-d", directory, "--framework", "terraform", "-o", "json", "--quiet",
         "--skip-download", "--download-external-modules", "false"],
        capture_output=True, text=True, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    try:
        report = json.loads(out.stdout)
    except json.JSONDecodeError:
        problem(f"checkov on {directory} gave no report: {out.stderr[-2000:]}")
        return
    reports = report if isinstance(report, list) else [report]
    rel = os.path.relpath(directory, ROOT)
    scanned = 0
    for r in reports:
        if not isinstance(r, dict) or "results" not in r:
            continue  # "no resources found" summary of an empty framework
        scanned += r["summary"]["passed"] + r["summary"]["failed"]
        for c in r["results"].get("failed_checks", []):
            problem(f"checkov {rel}: {c['check_id']} {c['check_name']} on {c['resource']} ({c['file_path']}:{c['file_line_range']})")
        for c in r["results"].get("skipped_checks", []):
            reason = (c.get("check_result") or {}).get("suppress_comment", "")
            if not reason or reason == "No comment provided":
                problem(f"checkov {rel}: {c['check_id']} skipped on {c['resource']} without a reason")
        if r["summary"].get("parsing_errors"):
            problem(f"checkov {rel}: {r['summary']['parsing_errors']} parsing errors")
    if scanned == 0 and rel.endswith("modules/binlake"):
        problem(f"checkov {rel}: no check ran (nothing scanned)")


def check_dockerfile():
    text = open(os.path.join(ROOT, "infra/Dockerfile")).read().replace("\\\n", " ")
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    if not any("cargo build" in l and "--locked" in l for l in lines):
        problem("Dockerfile: the build does not use --locked")
    stages = [i for i, l in enumerate(lines) if l.upper().startswith("FROM ")]
    if len(stages) < 2:
        problem("Dockerfile: not a multi-stage build")
    runtime = lines[stages[-1]:] if stages else lines
    users = [l.split(None, 1)[1] for l in runtime if l.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problem("Dockerfile: the runtime stage does not switch to a non-root user")
    if not any(l.upper().startswith("HEALTHCHECK") and "/readyz" in l for l in runtime):
        problem("Dockerfile: no HEALTHCHECK on /readyz")
    if not any(l.upper() == "STOPSIGNAL SIGTERM" for l in runtime):
        problem("Dockerfile: STOPSIGNAL is not SIGTERM")
    if not any("ca-certificates" in l for l in runtime):
        problem("Dockerfile: the runtime image has no CA certificates")


def check_dashboard(metrics):
    path = os.path.join(ROOT, "infra/grafana/binlake.json")
    dash = json.load(open(path))
    panels = dash.get("panels", [])
    ids = [p.get("id") for p in panels]
    if len(set(ids)) != len(ids):
        problem("dashboard: panel ids repeat")
    used = set()
    for p in panels:
        for key in ("type", "title", "gridPos", "targets"):
            if key not in p:
                problem(f"dashboard: panel {p.get('title')} has no {key}")
        for t in p.get("targets", []):
            if not t.get("expr") or not t.get("refId"):
                problem(f"dashboard: panel {p.get('title')} has a target without expr or refId")
            used |= metric_names(t.get("expr", ""))
    for m in sorted(used - metrics):
        problem(f"dashboard: metric {m} is not defined in src/observe.rs")
    titles = " ".join(p.get("title", "").lower() for p in panels)
    for topic in ("events", "lag", "latency", "errors", "snapshot", "quality"):
        if topic not in titles:
            problem(f"dashboard: no panel about {topic}")


def check_alerts(metrics):
    doc = yaml.safe_load(open(os.path.join(ROOT, "infra/prometheus/alerts.yml")))
    names = []
    for group in doc.get("groups", []):
        if not group.get("name"):
            problem("alerts: a group without a name")
        for rule in group.get("rules", []):
            name = rule.get("alert")
            names.append(name)
            if not name or not rule.get("expr"):
                problem(f"alerts: rule {name} lacks alert or expr")
            if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
                problem(f"alerts: {name} has no severity critical|warning|info")
            for key in ("summary", "description"):
                if not rule.get("annotations", {}).get(key):
                    problem(f"alerts: {name} has no {key}")
            if "for" in rule and not re.fullmatch(r"\d+[smh]", str(rule["for"])):
                problem(f"alerts: {name} has an invalid `for`: {rule['for']}")
            if str(rule.get("expr", "")).count("(") != str(rule.get("expr", "")).count(")"):
                problem(f"alerts: {name} has unbalanced parentheses")
            for m in sorted(metric_names(str(rule.get("expr", ""))) - metrics):
                problem(f"alerts: {name} uses {m}, not defined in src/observe.rs")
    if len(set(names)) != len(names):
        problem("alerts: alert names repeat")
    for needed in ("BinlakeDown", "BinlakeLagHigh", "BinlakeErrorRate", "BinlakeSnapshotStalled", "BinlakeNoLeader"):
        if needed not in names:
            problem(f"alerts: no {needed}")
    promtool = subprocess.run(["sh", "-c", "command -v promtool"], capture_output=True, text=True).stdout.strip()
    if promtool:
        out = subprocess.run([promtool, "check", "rules", os.path.join(ROOT, "infra/prometheus/alerts.yml")],
                             capture_output=True, text=True)
        if out.returncode != 0:
            problem(f"alerts: promtool check rules failed: {out.stdout}{out.stderr}")
    return bool(promtool)


def main():
    metrics = defined_metrics()
    if not metrics:
        problem("no metric names found in src/observe.rs")
    check_terraform()
    check_dockerfile()
    check_dashboard(metrics)
    used_promtool = check_alerts(metrics)
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"infra: terraform, checkov, Dockerfile, dashboard and alerts OK (promtool: {'yes' if used_promtool else 'not installed'})")


if __name__ == "__main__":
    main()
