//! PGTune's two output forms of the plan's PostgreSQL settings: a `postgresql.conf` block and
//! `ALTER SYSTEM SET` statements, with the host they are tuned for and what they need of it.

use crate::model::pgtune::{self, DataSize};
use crate::model::plan::Plan;

/// The settings a server reads only at start: `ALTER SYSTEM` then needs a restart, not a reload.
const RESTART_SETTINGS: [&str; 7] = [
    "max_connections",
    "shared_buffers",
    "wal_buffers",
    "huge_pages",
    "max_worker_processes",
    "autovacuum_max_workers",
    "io_method",
];

/// Every server setting once, first value kept (`server_settings` may repeat a name; the first
/// is what PostgreSQL's command line would see first).
pub fn settings(plan: &Plan) -> Vec<(String, String)> {
    let mut seen = std::collections::BTreeSet::new();
    plan.database.server_settings.iter().filter(|(k, _)| seen.insert(k.clone())).cloned().collect()
}

/// The comment lines above the settings, without their comment marker.
fn header(plan: &Plan) -> Vec<String> {
    let db = &plan.database;
    let h = &db.host;
    let mut lines = vec![
        format!(
            "PostgreSQL settings from difyplan {}: {} QPS of profile `{}`, Dify {}.",
            env!("CARGO_PKG_VERSION"),
            plan.input.qps,
            plan.input.profile.name,
            plan.input.dify_version
        ),
        format!("PGTune \"web\" ({}), then difyplan's memory check (docs/model.md §5).", pgtune::PGTUNE_REVISION),
        format!("DB Version: {}", h.pg_version),
        "OS Type: linux".to_string(),
        "DB Type: web".to_string(),
        format!(
            "Total Memory (RAM): {} GB{}",
            h.memory_bytes >> 30,
            if db.host_memory_chosen { " (assumed: pass --pg-memory)" } else { "" }
        ),
        format!("CPUs num: {}{}", h.cpus, if db.host_cpus_chosen { " (assumed: pass --pg-cpus)" } else { "" }),
        format!("Connections num: {}", db.max_connections),
        format!("Data Storage: {}", h.storage),
        format!(
            "DB Size: {}",
            match db.tuning.data_size {
                DataSize::LessRam => "less than RAM",
                DataSize::MidRam => "1x - 3x RAM",
                DataSize::GreaterRam => "more than 3x RAM (the projected workflow logs)",
            }
        ),
    ];
    let notes = db.memory.huge_pages_advice.iter().chain(&db.memory.work_mem_advice).chain(&db.tuning.warnings);
    for n in notes {
        lines.push(String::new());
        lines.push(n.clone());
    }
    lines
}

fn comment(lines: &[String], marker: &str) -> String {
    lines.iter().map(|l| if l.is_empty() { format!("{marker}\n") } else { format!("{marker} {l}\n") }).collect()
}

/// `name = value` lines, as PGTune prints them (values unquoted, as postgresql.conf reads them).
pub fn postgresql_conf(plan: &Plan) -> String {
    let mut out = comment(&header(plan), "#");
    out.push('\n');
    for (k, v) in settings(plan) {
        out.push_str(&format!("{k} = {v}\n"));
    }
    out
}

/// `ALTER SYSTEM SET name = 'value';` lines, as PGTune prints them, for psql as a superuser;
/// then a restart (several settings are read only at start).
pub fn alter_system(plan: &Plan) -> String {
    let mut out = comment(&header(plan), "--");
    out.push('\n');
    let all = settings(plan);
    for (k, v) in &all {
        // Values are numbers, units and keywords: no quote to escape, but never trust that.
        out.push_str(&format!("ALTER SYSTEM SET {k} = '{}';\n", v.replace('\'', "''")));
    }
    let restart: Vec<&str> = RESTART_SETTINGS.iter().copied().filter(|r| all.iter().any(|(k, _)| k == r)).collect();
    out.push('\n');
    out.push_str(&comment(
        &[format!(
            "Then restart PostgreSQL: {} take effect only at start (SELECT pg_reload_conf() is not enough).",
            restart.join(", ")
        )],
        "--",
    ));
    out
}
