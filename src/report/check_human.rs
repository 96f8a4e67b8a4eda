//! The human format of `check`: per deployment the effective values with their sources and the
//! budget, then the findings with their remedies, then one summary line.

use super::table::budget_table;
use crate::deployment::{Deployed, Valued};
use crate::findings::Report;
use crate::safety::escape;
use std::fmt::Write;
use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

pub fn render(report: &Report) -> String {
    let mut s = String::new();
    for c in &report.deployments {
        let d = &c.deployment;
        let on =
            if d.db_type.is_postgresql() { String::new() } else { format!(" on {} (DB_TYPE)", d.db_type.server()) };
        line(&mut s, format!("{} {} (Dify {}, from {}){on}", c.kind, c.label, d.version, d.version_source));
        if let Some(chart) = &d.chart {
            line(&mut s, format!("read with the defaults of chart {} (chart from {})", chart.value, chart.source));
        }
        let _ = writeln!(s);
        s.push_str(&components(&d.components));
        let _ = writeln!(s);
        let role = if d.app_role_superuser { "a superuser" } else { "not a superuser" };
        let note = format!(
            "from {}; app role `{}` ({role}, from {})",
            d.max_connections.source, d.app_role.value, d.app_role.source
        );
        s.push_str(&budget_table(&c.budget, &escape(&note)));
        let _ = writeln!(s);
    }
    s.push_str(&render_findings(report));
    s
}

/// The findings, the allowed ones with their reasons, and the summary line (`--quiet`).
pub fn render_findings(report: &Report) -> String {
    let mut s = String::new();
    for f in &report.findings {
        let at = f.source.as_ref().map(|s| format!(" {s}")).unwrap_or_default();
        line(&mut s, format!("{}[{}]{at}: {}", f.severity, f.code, f.message));
        line(&mut s, format!("  = help: {}", f.remedy));
    }
    for sup in &report.suppressed {
        let f = &sup.finding;
        let at = f.place().map(|(p, l)| format!(" {p}:{l}")).unwrap_or_default();
        line(&mut s, format!("allowed[{}]{at}: {}", f.code, f.message));
        line(&mut s, format!("  = allowed at {}: {}", sup.allowed_at, sup.reason));
    }
    if !report.findings.is_empty() || !report.suppressed.is_empty() {
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "{}", summary_line(report));
    s
}

/// One line of the report: whatever an input put in it (a file name, a value) is escaped, so
/// the line stays one line.
fn line(s: &mut String, text: String) {
    s.push_str(&escape(&text));
    s.push('\n');
}

fn src<T: std::fmt::Display>(v: &Valued<T>) -> String {
    escape(&format!("{} ({})", v.value, v.source)).into_owned()
}

fn components(list: &[Deployed]) -> String {
    let mut b = Builder::default();
    b.push_record([
        "component",
        "worst pods",
        "processes",
        "greenlets or -c",
        "pool",
        "overflow",
        "max/process",
        "worst connections",
    ]);
    for c in list {
        let pods = if c.surge.value > 0 || c.max_replicas.value != c.replicas.value {
            format!(
                "{} = max {} ({}) + surge {} ({})",
                c.worst_pods(),
                c.max_replicas.value,
                c.max_replicas.source,
                c.surge.value,
                c.surge.source
            )
        } else {
            format!("{} ({})", c.worst_pods(), c.replicas.source)
        };
        let pods = escape(&pods).into_owned();
        let slots = c.greenlets.as_ref().or(c.concurrency.as_ref()).map_or("-".to_string(), src);
        b.push_record([
            escape(&c.name).into_owned(),
            pods,
            src(&c.processes),
            slots,
            src(&c.pool_size),
            src(&c.max_overflow),
            c.per_process_max.to_string(),
            crate::model::budget::line_of(c).connections.to_string(),
        ]);
    }
    let mut t = b.build();
    t.with(Style::sharp());
    t.modify(Columns::new(6..), Alignment::right());
    format!("{t}\n")
}

/// One line: the counts and whether every deployment is within budget.
pub fn summary_line(report: &Report) -> String {
    let s = &report.summary;
    let budgets: Vec<String> = report
        .deployments
        .iter()
        .map(|c| {
            format!(
                "{} of {} usable{}",
                c.budget.demand,
                c.budget.usable,
                if c.budget.fits { "" } else { " (over budget)" }
            )
        })
        .collect();
    format!(
        "difyplan check: {} error(s), {} warning(s), {} note(s){}; worst-case demand {}",
        s.errors,
        s.warnings,
        s.notes,
        if s.suppressed > 0 { format!(", {} allowed", s.suppressed) } else { String::new() },
        budgets.join("; ")
    )
}
