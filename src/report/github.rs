//! GitHub Actions workflow commands: one `::error file=…,line=…,title=…::message` per finding,
//! escaped as the runner expects, then a notice with the summary.

use crate::findings::{Report, Severity};
use std::fmt::Write;

pub use crate::safety::escape::{github_data as escape_data, github_property as escape_property};

pub fn render(report: &Report) -> String {
    let mut s = String::new();
    for f in &report.findings {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "notice",
        };
        let mut props = Vec::new();
        if let Some((path, line)) = f.place() {
            props.push(format!("file={}", escape_property(path)));
            props.push(format!("line={line}"));
        }
        props.push(format!("title={}", escape_property(&format!("difyplan {}", f.code))));
        let _ = writeln!(s, "::{level} {}::{}", props.join(","), escape_data(&format!("{} — {}", f.message, f.remedy)));
    }
    // Allowed findings stay visible, as notices that say who allowed them and why.
    for sup in &report.suppressed {
        let f = &sup.finding;
        let mut props = Vec::new();
        if let Some((path, line)) = f.place() {
            props.push(format!("file={}", escape_property(path)));
            props.push(format!("line={line}"));
        }
        props.push(format!("title={}", escape_property(&format!("difyplan {} (allowed)", f.code))));
        let text = format!("{} — allowed at {}: {}", f.message, sup.allowed_at, sup.reason);
        let _ = writeln!(s, "::notice {}::{}", props.join(","), escape_data(&text));
    }
    let _ = writeln!(s, "{}", escape_summary(report));
    s
}

fn escape_summary(report: &Report) -> String {
    format!("::notice title=difyplan check::{}", escape_data(&super::check_human::summary_line(report)))
}
