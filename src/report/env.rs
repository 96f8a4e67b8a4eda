//! The env format: the Dify keys of a plan, grouped and commented, ready for `docker/.env`.
//! Values for one service only are written as comments that say where they belong.

use crate::dify::keys::Scope;
use crate::model::plan::Plan;
use crate::model::settings::settings;
use std::fmt::Write;

/// The `.env` text.
pub fn plan(plan: &Plan, explain: bool) -> String {
    let i = &plan.input;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# difyplan {}: {} QPS of profile `{}` on {} (edition {}, Dify {}).",
        env!("CARGO_PKG_VERSION"),
        i.qps,
        i.profile.name,
        i.target,
        i.edition,
        i.dify_version
    );
    let _ = writeln!(
        s,
        "# Worst-case {} connections {} of {} usable (max_connections {}).",
        plan.input.db_type.server(),
        plan.budget.demand,
        plan.budget.usable,
        plan.budget.cap.max_connections
    );
    for c in &plan.components {
        let _ = writeln!(
            s,
            "# {}: {} replica(s){}",
            c.component,
            c.replicas,
            if c.max_replicas > c.replicas || c.surge > 0 {
                format!(", at most {} + {} surge", c.max_replicas, c.surge)
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(
        s,
        "# Keys marked \"only\" belong on that one service (docker-compose.override.yaml): compose \
            shares one environment between api, worker and worker_beat."
    );
    let all = settings(plan);
    for setting in &all {
        let _ = writeln!(s);
        match setting.scope {
            Scope::Shared => {
                let _ = writeln!(s, "# {}", setting.doc);
                let _ = writeln!(s, "{}={}", setting.key, env_value(&setting.value));
            }
            Scope::Service(svc) => {
                let _ = writeln!(s, "# {svc} only — {}:", setting.doc);
                let _ = writeln!(s, "# {}={}", setting.key, env_value(&setting.value));
            }
            Scope::Suggested => {
                let _ = writeln!(s, "# suggested, with your hosts — {}:", setting.doc);
                let _ = writeln!(s, "# {}={}", setting.key, env_value(&setting.value));
            }
        }
    }
    if explain {
        let _ = writeln!(s);
        for d in &plan.derivations {
            let _ = writeln!(s, "# {} = {}: {} [{}]", d.name, d.value, d.formula, d.source);
        }
    }
    s
}

/// A value as a `.env` line carries it: compose's quoting, the same as every rendered `.env`
/// (a value the plan makes never holds a NUL; were one to, it is left out rather than written
/// unreadable).
fn env_value(value: &str) -> String {
    crate::read::dotenv::quote_value(value).unwrap_or_default()
}
