//! How `binlake validate` prints its results: a table for people, JSON for scripts, JUnit for CI, and a
//! one-page HTML report (`--html`) to share.

use super::validate::TableResult;

/// `--format table`: one line per expectation.
pub fn render_table(results: &[TableResult]) -> String {
    let mut out = String::new();
    for r in results {
        out.push_str(&format!(
            "{:<4} {:<28} {:<24} {:<22} {} (expected {})\n",
            r.status.to_uppercase(),
            r.table,
            r.expectation,
            r.type_name,
            r.observed,
            r.expected
        ));
        if !r.sample_keys.is_empty() {
            out.push_str(&format!("     e.g. {}\n", r.sample_keys.join(" ")));
        }
    }
    let failed = results.iter().filter(|r| r.status == "fail").count();
    out.push_str(&format!(
        "{} expectations, {failed} failed\n",
        results.len()
    ));
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `--format junit`: one test suite per table, one test case per expectation (CI systems read it).
pub fn render_junit(results: &[TableResult]) -> String {
    let mut tables: Vec<&str> = results.iter().map(|r| r.table.as_str()).collect();
    tables.dedup();
    let failures = results.iter().filter(|r| r.status == "fail").count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"binlake validate\" tests=\"{}\" failures=\"{failures}\">\n",
        results.len()
    );
    let mut seen = std::collections::BTreeSet::new();
    for table in tables {
        if !seen.insert(table) {
            continue;
        }
        let cases: Vec<&TableResult> = results.iter().filter(|r| r.table == table).collect();
        let failed = cases.iter().filter(|r| r.status == "fail").count();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\">\n",
            xml(table),
            cases.len()
        ));
        for r in cases {
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\">",
                xml(table),
                xml(&r.expectation)
            ));
            if r.status == "fail" {
                out.push_str(&format!(
                    "<failure type=\"{}\" message=\"{}\">expected {}; e.g. {}</failure>",
                    r.type_name,
                    xml(&r.observed),
                    xml(&r.expected),
                    xml(&r.sample_keys.join(" "))
                ));
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn html(s: &str) -> String {
    xml(s)
}

/// `--html`: one self-contained page, a section per table, one row per expectation.
pub fn render_html(results: &[TableResult], connector: &str, at: &str) -> String {
    let failed = results.iter().filter(|r| r.status == "fail").count();
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>binlake validate: {c}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}\
         table{{border-collapse:collapse;width:100%;margin-bottom:2em}}\
         th,td{{border:1px solid #ccc;padding:.4em .6em;text-align:left;vertical-align:top}}\
         th{{background:#f3f3f3}}.pass{{color:#17702e;font-weight:bold}}.fail{{color:#b00020;font-weight:bold}}\
         code{{font-size:.9em}}</style></head><body>\n\
         <h1>binlake validate: {c}</h1>\n<p>{at} · {n} expectations, <span class=\"{cls}\">{failed} failed</span></p>\n",
        c = html(connector),
        n = results.len(),
        cls = if failed > 0 { "fail" } else { "pass" },
    );
    let mut tables: Vec<&str> = results.iter().map(|r| r.table.as_str()).collect();
    tables.sort_unstable();
    tables.dedup();
    for table in tables {
        out.push_str(&format!(
            "<h2>{}</h2>\n<table><tr><th>status</th><th>expectation</th><th>type</th><th>severity</th>\
             <th>observed</th><th>expected</th><th>rows</th><th>unexpected</th><th>examples</th></tr>\n",
            html(table)
        ));
        for r in results.iter().filter(|r| r.table == table) {
            out.push_str(&format!(
                "<tr><td class=\"{s}\">{S}</td><td>{id}<br><small>{d}</small></td><td>{t}</td><td>{sev}</td>\
                 <td>{o}</td><td>{e}</td><td>{n}</td><td>{u}</td><td><code>{k}</code></td></tr>\n",
                s = r.status,
                S = r.status.to_uppercase(),
                id = html(&r.expectation),
                d = html(&r.description),
                t = r.type_name,
                sev = r.severity,
                o = html(&r.observed),
                e = html(&r.expected),
                n = r.element_count,
                u = r.unexpected_count,
                k = html(&r.sample_keys.join(" ")),
            ));
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(table: &str, id: &str, status: &'static str) -> TableResult {
        TableResult {
            table: table.into(),
            expectation: id.into(),
            type_name: "unique",
            severity: "warn",
            description: "ids <unique>".into(),
            status,
            observed: "2 duplicated values".into(),
            expected: "(id) unique".into(),
            element_count: 10,
            unexpected_count: 2,
            sample_keys: vec!["7".into()],
            sql: String::new(),
            absent: false,
        }
    }

    #[test]
    fn reports_escape_names_and_count_failures() {
        let rs = vec![
            result("stocks.trades", "ids", "fail"),
            result("stocks.quotes", "q", "pass"),
        ];
        let page = render_html(&rs, "stocks", "2026-12-04 10:00 UTC");
        assert!(page.contains("2 expectations, <span class=\"fail\">1 failed</span>"));
        assert!(page.contains("ids &lt;unique&gt;"));
        assert_eq!(page.matches("<h2>").count(), 2);
        let junit = render_junit(&rs);
        assert!(junit.contains("tests=\"2\" failures=\"1\""));
        assert!(render_table(&rs).ends_with("2 expectations, 1 failed\n"));
    }
}
