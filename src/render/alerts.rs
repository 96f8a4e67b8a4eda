//! The plan as Prometheus alerts: every threshold the rules compare against, computed once from
//! the plan with the plan's figure it comes from, for the `alerts/` templates to print.

use crate::dify::Component;
use crate::model::plan::Plan;
use serde::Serialize;

/// Share of the usable cap at which the first connection alert warns: the last 10% is what is
/// left before PostgreSQL answers `too many clients` (docs/alerts.md, "Connections near the cap").
pub const NEAR_CAP_SHARE: f64 = 0.9;

/// A sustained mean in use this many times the plan's mean means the load or the profile changed.
/// The plans' mean in use was 16–28% above what a real Dify 1.16.1 used at the planned load
/// (docs/model.md §9), so 1.25 × the plan is about 1.5 × what the planned load really holds.
pub const MEAN_IN_USE_FACTOR: f64 = 1.25;

/// Window over which the connections in use are averaged before they are compared with the
/// plan's mean: long enough that Poisson bursts (the worst case is built for them) average out.
pub const MEAN_IN_USE_WINDOW: &str = "15m";

/// A transaction idle this share of `idle_in_transaction_session_timeout` is already 5 × the
/// longest request the timeout was sized for (it is 10 × the profile's request duration, or
/// GUNICORN_TIMEOUT): a run that died holding its connection (docs/model.md §8).
pub const IDLE_TRANSACTION_SHARE: f64 = 0.5;

/// How far back the broker's queues are compared to say they grow.
pub const BROKER_GROWTH_WINDOW: &str = "5m";

/// The Celery queues Dify's worker consumes (the api image's entrypoint, community edition, with
/// the queues releases added: streaming runs go through `workflow_based_app_execution`). A queue a
/// release does not use exports 0 with redis_exporter's `--check-single-keys`.
pub const CELERY_QUEUES: &[&str] = &[
    "api_token",
    "app_deletion",
    "conversation",
    "dataset",
    "dataset_summary",
    "mail",
    "ops_trace",
    "pipeline",
    "plugin",
    "priority_dataset",
    "priority_pipeline",
    "retention",
    "schedule_executor",
    "schedule_poller",
    "trigger_refresh_executor",
    "trigger_refresh_publisher",
    "triggered_workflow_dispatcher",
    "workflow",
    "workflow_based_app_execution",
    "workflow_storage",
];

/// Dify's default `CELERY_BROKER_URL` uses Redis database 1 (`redis://…@redis:6379/1`).
pub const BROKER_DB: &str = "db1";

/// The database the plugin daemon uses (`DB_PLUGIN_DATABASE`, default `dify_plugin`).
pub const PLUGIN_DATABASE: &str = "dify_plugin";

/// Each alert's own `for:` (how long its condition must hold), unless `--hold` replaces them all.
#[derive(Debug, Clone, Serialize)]
pub struct Holds {
    pub near_cap: String,
    pub at_cap: String,
    pub above_worst_case: String,
    pub mean_in_use: String,
    pub idle_transaction: String,
    pub broker: String,
    pub component: String,
}

impl Holds {
    fn new(all: Option<&str>) -> Holds {
        let h = |own: &str| all.unwrap_or(own).to_string();
        Holds {
            near_cap: h("2m"),
            at_cap: h("1m"),
            above_worst_case: h("5m"),
            mean_in_use: h("15m"),
            idle_transaction: h("1m"),
            broker: h("10m"),
            component: h("5m"),
        }
    }
}

/// One component's connections against its planned maximum.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentLimit {
    /// Compose service name (`api_websocket`), the alert's `component` label.
    pub component: &'static str,
    /// The series selector that attributes connections to it.
    pub selector: String,
    /// How the selector knows it: the `application_name` rendered for it, or its own database.
    pub attributed_by: String,
    /// Its planned maximum: worst pods × processes × per-process maximum.
    pub max: u64,
    /// `2 pods × 1 processes × 127`.
    pub arithmetic: String,
}

/// Everything the alert templates compare against.
#[derive(Debug, Clone, Serialize)]
pub struct AlertsView {
    pub holds: Holds,
    pub max_connections: u64,
    pub usable: u64,
    /// Connections withheld from the application role (superuser reserve, reserved_connections).
    pub withheld: u64,
    /// ⌈NEAR_CAP_SHARE × usable⌉.
    pub near_cap: u64,
    pub near_cap_percent: u64,
    /// The plan's worst case: every pool full, every reserve used.
    pub demand: u64,
    pub mean_in_use: f64,
    /// MEAN_IN_USE_FACTOR × mean_in_use, one decimal.
    pub mean_in_use_limit: f64,
    pub mean_in_use_factor: f64,
    pub mean_in_use_window: String,
    pub idle_timeout_seconds: u64,
    /// IDLE_TRANSACTION_SHARE × the timeout.
    pub idle_transaction_seconds: u64,
    /// The workers' slots: Celery `-c` × workers at the plan's replicas.
    pub worker_slots: u64,
    pub broker_db: &'static str,
    /// `^(api_token|…)$`: the queue keys.
    pub broker_queues: String,
    /// The same keys as redis_exporter's flag wants them (`db1=api_token,db1=…`).
    pub broker_check_keys: String,
    pub broker_growth_window: String,
    pub components: Vec<ComponentLimit>,
    /// Components whose connections go through PgBouncer: counted in its server pool, no
    /// per-component alert.
    pub pooled: Vec<&'static str>,
}

/// The `application_name` a component's connections carry (set through `DB_EXTRAS`, which Dify
/// appends to its connection URL); the plugin daemon is told apart by its database instead.
pub fn application_name(c: Component) -> Option<&'static str> {
    match c {
        Component::Api => Some("dify-api"),
        Component::ApiWebsocket => Some("dify-api-websocket"),
        Component::Worker => Some("dify-worker"),
        Component::WorkerBeat => Some("dify-worker-beat"),
        Component::PluginDaemon => None,
    }
}

/// The thresholds of `plan`; `hold` replaces every alert's `for:` when given.
pub fn view(plan: &Plan, hold: Option<&str>) -> AlertsView {
    let b = &plan.budget;
    let usable = b.usable;
    let near_cap = ((usable as f64) * NEAR_CAP_SHARE).ceil() as u64;
    let mean = plan.efficiency.mean_connections_in_use;
    let timeout_s = plan.database.timeouts.idle_in_transaction_ms / 1000;
    let components = b
        .lines
        .iter()
        .map(|l| {
            let (selector, attributed_by) = match application_name(l.component) {
                Some(name) => (format!("application_name=\"{name}\""), format!("application_name {name}")),
                None => (format!("datname=\"{PLUGIN_DATABASE}\""), format!("its database {PLUGIN_DATABASE}")),
            };
            ComponentLimit {
                component: l.component.service(),
                selector,
                attributed_by,
                max: l.connections,
                arithmetic: format!("{} pods × {} processes × {}", l.worst_pods, l.processes, l.per_process_max),
            }
        })
        .collect();
    AlertsView {
        holds: Holds::new(hold),
        max_connections: b.cap.max_connections,
        usable,
        withheld: b.cap.max_connections - usable,
        near_cap,
        near_cap_percent: (NEAR_CAP_SHARE * 100.0).round() as u64,
        demand: b.demand,
        mean_in_use: (mean * 10.0).round() / 10.0,
        mean_in_use_limit: (mean * MEAN_IN_USE_FACTOR * 10.0).round() / 10.0,
        mean_in_use_factor: MEAN_IN_USE_FACTOR,
        mean_in_use_window: MEAN_IN_USE_WINDOW.to_string(),
        idle_timeout_seconds: timeout_s,
        idle_transaction_seconds: ((timeout_s as f64) * IDLE_TRANSACTION_SHARE).round() as u64,
        worker_slots: plan.overload.worker.admitted,
        broker_db: BROKER_DB,
        broker_queues: format!("^({})$", CELERY_QUEUES.join("|")),
        broker_check_keys: CELERY_QUEUES.iter().map(|q| format!("{BROKER_DB}={q}")).collect::<Vec<_>>().join(","),
        broker_growth_window: BROKER_GROWTH_WINDOW.to_string(),
        components,
        pooled: plan.pooler.as_ref().map(|p| p.routed.iter().map(|c| c.service()).collect()).unwrap_or_default(),
    }
}

/// `--hold`: a Prometheus duration of one unit (`30s`, `2m`, `1h`), at least one second.
pub fn parse_hold(s: &str) -> Result<String, String> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    let n: u64 = digits.parse().map_err(|_| format!("`{s}`: expected a number and a unit, e.g. 30s, 2m or 1h"))?;
    if !["s", "m", "h"].contains(&unit) {
        return Err(format!("`{s}`: the unit must be s, m or h, e.g. 30s, 2m or 1h"));
    }
    if n == 0 {
        return Err(format!("`{s}`: must be at least 1s (an alert that needs no hold fires on one scrape's noise)"));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_accepts_prometheus_durations_only() {
        assert_eq!(parse_hold("30s").unwrap(), "30s");
        assert_eq!(parse_hold("2m").unwrap(), "2m");
        for bad in ["", "5", "1d2", "s", "0s", "1.5m", "-1m", "10ms"] {
            assert!(parse_hold(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn queues_are_sorted_and_unique() {
        let mut q = CELERY_QUEUES.to_vec();
        q.sort_unstable();
        q.dedup();
        assert_eq!(q, CELERY_QUEUES);
    }
}
