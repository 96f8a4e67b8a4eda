//! The table format for people: one row per component, then the budget, then the notes.
//! Fixed style and no dependence on the terminal width, so golden files stay stable.

use crate::dify::Component;
use crate::model::assumptions::Target;
use crate::model::plan::Plan;
use std::fmt::Write;
use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

/// The whole plan as text.
pub fn plan(plan: &Plan, explain: bool) -> String {
    let mut s = String::new();
    let i = &plan.input;
    let _ = writeln!(
        s,
        "difyplan: {} QPS of profile `{}` on {} (edition {}, Dify {}{})",
        i.qps,
        crate::safety::escape(&i.profile.name),
        i.target,
        i.edition,
        i.dify_version,
        if i.dify_version.has_api_websocket() && !i.collaboration { ", collaboration off" } else { "" }
    );
    let _ = writeln!(s);
    s.push_str(&components(plan));
    let _ = writeln!(s);
    s.push_str(&budget(plan));
    let _ = writeln!(s);
    let e = &plan.efficiency;
    let _ = writeln!(
        s,
        "efficiency: worst case {} ÷ mean in use {:.1} = {:.2}×  (how far the plan sits above the \
            connections actually used)",
        e.worst_case_connections, e.mean_connections_in_use, e.ratio
    );
    let d = &plan.database;
    let _ = writeln!(
        s,
        "database: {} cores for {} (runs about {} queries usefully at once), max_connections {}{}",
        d.cores,
        plan.input.db_type.server(),
        d.useful_active_connections,
        d.max_connections,
        if d.max_connections_chosen { " (chosen by difyplan)" } else { " (fixed)" }
    );
    if let Some(m) = &d.mysql {
        let _ = writeln!(
            s,
            "mysql: {} GiB host; {} connections × {} KiB = {} MiB; innodb_buffer_pool_size {}, \
                innodb_log_file_size {}, innodb_flush_log_at_trx_commit {}",
            m.host_memory_bytes >> 30,
            m.connections,
            m.per_connection_bytes >> 10,
            m.connections_bytes >> 20,
            crate::model::mysql::format_size(m.innodb_buffer_pool_bytes),
            crate::model::mysql::format_size(m.innodb_log_file_bytes),
            m.innodb_flush_log_at_trx_commit
        );
    }
    if let Some(api) = plan.components.iter().find(|c| c.component == Component::Api)
        && let Some(shared) = api.shared_pool_equivalent
    {
        let _ = writeln!(
            s,
            "pools: api's {} processes × {} = {} slots; one shared pool for the same admitted requests \
                would need {} (+{} for a pool per process)",
            api.replicas * api.processes_per_pod,
            api.per_process_max,
            api.replicas * api.processes_per_pod * api.per_process_max,
            shared,
            (api.replicas * api.processes_per_pod * api.per_process_max).saturating_sub(shared)
        );
    }
    if let Some(p) = &plan.pooler {
        let _ = writeln!(
            s,
            "pooler: PgBouncer, {} pod(s) × {} process(es) for {:.2} cores; default_pool_size {} \
                (safety bound {}, in use at q{} {}), max_client_conn {}; backends kept open after a \
                burst: about {} for {} s (without it: {} SQLALCHEMY_POOL_SIZE connections stay open)",
            p.pods,
            p.processes_per_pod,
            p.cpu_cores,
            p.default_pool_size,
            p.safety_bound,
            plan.input.assumptions.quantile,
            p.in_use_quantile,
            p.max_client_conn,
            p.kept_open_typical,
            p.server_idle_timeout_s,
            p.kept_open_without
        );
    }
    let gib = |b: f64| b / (1u64 << 30) as f64;
    let l = &plan.logs;
    let _ = writeln!(
        s,
        "workflow logs: {:.1} GiB a day into {}; {} in PostgreSQL{}",
        gib(l.daily_bytes),
        match l.store {
            crate::model::storage::LogStore::Logstore => "the log store",
            _ => "PostgreSQL",
        },
        match l.retention_days {
            Some(d) => format!("{d} days keep {:.0} GiB of disk", gib(l.pg_disk_bytes)),
            None => format!("kept for ever: {:.0} GiB of disk a year", gib(l.pg_disk_bytes)),
        },
        if l.recommend_log_store { " — move them to a log store" } else { "" }
    );
    let r = &plan.redis;
    let _ = writeln!(
        s,
        "redis: {:.0} operations/s, {} pub/sub connections for streams → {:?} (plugin daemon: {:?})",
        r.ops_per_second, r.pubsub_connections, r.topology, r.plugin_daemon_topology
    );
    for note in &plan.notes {
        let _ = writeln!(s, "note: {note}");
    }
    if let Some(short) = &plan.shortfall {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "DOES NOT FIT: {} connections missing; this plan needs max_connections ≥ {}.",
            short.missing, short.needed_max_connections
        );
        let _ = writeln!(s, "ways out:");
        for w in &short.ways_out {
            let saves = if w.saves > 0 {
                format!(" (saves {}{})", w.saves, if w.enough { ", enough" } else { ", not enough alone" })
            } else {
                String::new()
            };
            let _ = writeln!(s, "  - {}{}", w.action, saves);
        }
    }
    if explain {
        let _ = writeln!(s);
        s.push_str(&derivations(plan));
        let _ =
            writeln!(s, "\nSources cited as docs/model.md §N are in the binary: `difyplan docs model N` prints one.");
    }
    s
}

fn components(plan: &Plan) -> String {
    let mut b = Builder::default();
    b.push_record([
        "component",
        "replicas",
        "processes/pod",
        "greenlets or -c",
        "pool",
        "overflow",
        "max/process",
        "worst/pod",
        "worst total",
        "mean in use",
        "CPU/pod",
        "memory/pod",
    ]);
    for c in &plan.components {
        let replicas = match plan.input.target {
            Target::Kubernetes if c.max_replicas != c.replicas || c.surge > 0 => {
                format!("{} (max {} +{} surge)", c.replicas, c.max_replicas, c.surge)
            }
            _ => c.replicas.to_string(),
        };
        b.push_record([
            c.component.service().to_string(),
            replicas,
            c.processes_per_pod.to_string(),
            c.slots_per_process.map_or("-".into(), |v| v.to_string()),
            c.pool_size.to_string(),
            c.max_overflow.to_string(),
            c.per_process_max.to_string(),
            c.worst_per_pod.to_string(),
            c.worst_total.to_string(),
            format!("{:.1}", c.mean_connections),
            format!("{}", c.cpu_per_pod),
            format!("{} MiB", c.memory_mib_per_pod),
        ]);
    }
    let mut t = b.build();
    t.with(Style::sharp());
    t.modify(Columns::new(1..), Alignment::right());
    format!("{t}\n")
}

fn budget(plan: &Plan) -> String {
    let cap_note = if plan.database.max_connections_chosen {
        "chosen: demand + withheld slots, rounded up"
    } else {
        "fixed (--pg-max-connections)"
    };
    budget_table(&plan.budget, cap_note)
}

/// The budget as a table: each component's worst case, the reserves, the demand against the
/// usable cap. Shared by `size` and `check`.
pub fn budget_table(bud: &crate::model::budget::Budget, cap_note: &str) -> String {
    let mut b = Builder::default();
    b.push_record(["connection budget", "connections", "arithmetic"]);
    for l in &bud.lines {
        b.push_record([
            l.component.service().to_string(),
            l.connections.to_string(),
            format!("{} pods × {} processes × {}", l.worst_pods, l.processes, l.per_process_max),
        ]);
    }
    if let Some(p) = &bud.pooler {
        let replaced: Vec<&str> = p.replaces.iter().map(|c| c.service()).collect();
        b.push_record([
            p.name.clone(),
            p.connections.to_string(),
            format!(
                "{} pods × {} processes × default_pool_size {} — server pool in place of {}'s {} pooled \
                    connections (now PgBouncer client slots)",
                p.pods,
                p.processes,
                p.default_pool_size,
                replaced.join(" and "),
                p.replaced_connections
            ),
        ]);
    }
    for r in &bud.reserves {
        b.push_record([format!("reserve: {}", r.name), r.connections.to_string(), r.why.clone()]);
    }
    b.push_record(["demand".to_string(), bud.demand.to_string(), "worst case, everything at once".to_string()]);
    b.push_record(["max_connections".to_string(), bud.cap.max_connections.to_string(), cap_note.to_string()]);
    b.push_record([
        "withheld from the app role".to_string(),
        bud.cap.withheld().to_string(),
        if bud.cap.db_type == crate::dify::db_type::DbType::Mysql {
            if bud.cap.app_role_superuser {
                format!(
                    "none; MySQL gives an account with CONNECTION_ADMIN {} more",
                    bud.cap.superuser_extra_connections
                )
            } else {
                "none: MySQL withholds no slots from an ordinary account".to_string()
            }
        } else if bud.cap.app_role_superuser {
            "none: the app role is a superuser".to_string()
        } else {
            format!(
                "superuser_reserved_connections {} + reserved_connections {}",
                bud.cap.superuser_reserved_connections, bud.cap.reserved_connections
            )
        },
    ]);
    b.push_record(["usable cap".to_string(), bud.usable.to_string(), String::new()]);
    b.push_record([
        "headroom".to_string(),
        bud.headroom.to_string(),
        format!("{:.1}% of the usable cap{}", bud.headroom_pct, if bud.fits { "" } else { " — DOES NOT FIT" }),
    ]);
    let mut t = b.build();
    t.with(Style::sharp());
    t.modify(Columns::new(1..2), Alignment::right());
    format!("{t}\n")
}

fn derivations(plan: &Plan) -> String {
    let mut b = Builder::default();
    b.push_record(["value", "=", "formula", "source"]);
    for d in &plan.derivations {
        b.push_record([d.name.clone(), d.value.clone(), d.formula.clone(), d.source.clone()]);
    }
    let mut t = b.build();
    t.with(Style::sharp());
    format!("how each value was computed:\n{t}\n")
}

/// One paragraph for stderr when a fixed cap cannot hold the plan.
/// One line for stderr when the database host cannot hold the plan's open backends (`None` when
/// it can): the same kind of shortfall as a cap that is too small, and what to do.
pub fn memory_shortfall(plan: &Plan) -> Option<String> {
    let m = &plan.database.memory;
    (!m.fits).then(|| {
        format!(
            "difyplan: the database host's {} GiB cannot hold the plan's {} open backends: {}",
            plan.database.host.memory_bytes >> 30,
            m.open_backends,
            m.remedy
        )
    })
}

pub fn shortfall_summary(plan: &Plan) -> String {
    let b = &plan.budget;
    let mut s = format!(
        "difyplan: the plan needs {} connections but max_connections {} leaves {} usable: {} missing.",
        b.demand,
        b.cap.max_connections,
        b.usable,
        b.demand.saturating_sub(b.usable)
    );
    if let Some(short) = &plan.shortfall {
        if let Some(q) = short.max_qps_at_cap {
            let _ = write!(s, " This cap holds at most {q} QPS of this profile.");
        }
        let _ = write!(s, " Ways out are listed with the plan (--format table).");
    }
    s
}
