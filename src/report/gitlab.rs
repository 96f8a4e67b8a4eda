//! GitLab Code Quality: a JSON array of issues (description, check_name, fingerprint, severity,
//! location.path, location.lines.begin), the report a merge request's Code Quality widget shows.

use crate::findings::{Finding, Report, Severity};
use serde_json::{Value, json};

/// GitLab's severities: info, minor, major, critical, blocker.
fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Error => "critical",
        Severity::Warning => "major",
        Severity::Note => "info",
    }
}

/// A stable identifier of a finding across runs: the same code, file, deployment and message
/// give the same fingerprint, so GitLab can tell new findings from old ones. Two 64-bit FNV-1a
/// hashes with different offsets, as 32 hex digits.
pub fn fingerprint(f: &Finding) -> String {
    let key = format!(
        "{}\0{}\0{}\0{}",
        f.code,
        f.place().map_or("", |(p, _)| p),
        f.deployment.as_deref().unwrap_or(""),
        f.message
    );
    let fnv = |offset: u64| key.bytes().fold(offset, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    format!("{:016x}{:016x}", fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142))
}

pub fn render(report: &Report) -> serde_json::Result<String> {
    // Code Quality has no suppressed state: allowed findings are listed as `info`, with the
    // reason, so the exception stays visible in the merge request.
    let allowed = report.suppressed.iter().map(|s| (&s.finding, Some(s)));
    let issues: Vec<Value> = report
        .findings
        .iter()
        .map(|f| (f, None))
        .chain(allowed)
        .map(|(f, sup)| {
            let (path, line) = f.place().unwrap_or(("", 1));
            let description = match sup {
                None => format!("{} — {}", f.message, f.remedy),
                Some(s) => format!("(allowed at {}: {}) {}", s.allowed_at, s.reason, f.message),
            };
            json!({
                "type": "issue",
                "check_name": f.code.as_str(),
                "description": description,
                "categories": ["Bug Risk"],
                "severity": if sup.is_some() { "info" } else { severity(f.severity) },
                "fingerprint": fingerprint(f),
                "location": { "path": path, "lines": { "begin": line.max(1) } },
            })
        })
        .collect();
    serde_json::to_string_pretty(&issues)
}
