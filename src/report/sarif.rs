//! SARIF 2.1.0 for code-scanning tools: one rule per finding code, one result per finding.

use crate::findings::{Code, Report, Severity};
use serde_json::{Value, json};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The README's table of finding codes; each code is an anchor there.
const CODES_URL: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/blob/main/README.md");

/// Where a code is explained: its anchor in the README's table of codes.
pub fn help_uri(c: Code) -> String {
    format!("{CODES_URL}#{}", c.as_str())
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

pub fn render(report: &Report) -> serde_json::Result<String> {
    let rules: Vec<Value> = Code::ALL
        .iter()
        .map(|c| {
            json!({
                "id": c.as_str(),
                "name": c.as_str(),
                "shortDescription": { "text": c.description() },
                "fullDescription": { "text": c.full_description() },
                "help": {
                    "text": format!("{} See {}", c.full_description(), help_uri(*c)),
                    "markdown": format!("{}\n\n[`{}` in the table of codes]({})", c.full_description(), c.as_str(), help_uri(*c)),
                },
                "helpUri": help_uri(*c),
                "defaultConfiguration": { "level": level(c.severity()) },
            })
        })
        .collect();
    let allowed = report.suppressed.iter().map(|s| (&s.finding, Some(s)));
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| (f, None))
        .chain(allowed)
        .map(|(f, sup)| {
            let mut r = json!({
                "ruleId": f.code.as_str(),
                "ruleIndex": Code::ALL.iter().position(|c| *c == f.code).unwrap_or(0),
                "level": level(f.severity),
                "message": { "text": format!("{} — {}", f.message, f.remedy) },
            });
            if let Some((path, line)) = f.place() {
                r["locations"] = json!([{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(path) },
                        "region": { "startLine": line.max(1) },
                    }
                }]);
            }
            // An allowed finding is a suppressed result: tools show it as dismissed, with why.
            if let Some(s) = sup {
                let kind = if s.kind == "inline" { "inSource" } else { "external" };
                r["suppressions"] = json!([{
                    "kind": kind,
                    "status": "accepted",
                    "justification": format!("{} (allowed at {})", s.reason, s.allowed_at),
                }]);
            }
            r
        })
        .collect();
    let doc = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "difyplan",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc)
}

/// A relative URI reference for a file path: forward slashes, reserved characters escaped.
fn uri(path: &str) -> String {
    let path = path.strip_prefix("./").unwrap_or(path);
    let mut out = String::new();
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => out.push(b as char),
            b'\\' => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
