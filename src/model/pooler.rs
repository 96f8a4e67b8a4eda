//! The pooler tier: PgBouncer in transaction mode between the api and worker processes and
//! PostgreSQL, sized from the finished component plans. Its server pool replaces one pool per
//! process, and must cover every request that can hold a connection while asking for another.
//!
//! Why the bound and not the connections in use: PgBouncer cannot multiplex a blocking run (it
//! keeps a transaction open for the whole request), and a request takes a second connection at
//! its start and end while holding the first. A server pool sized to the mean in use failed 80%
//! of requests on a real Dify, and one sized to a quantile deadlocked in a cold burst
//! (docs/model.md, "A pooler"). The classic bound holds under any load: Σ (connections each
//! may hold at once − 1) + 1 over everything that can wait while holding.

use super::assumptions::Target;
use super::components::ComponentPlan;
use super::derivation::Derivation;
use super::input::PlanInput;
use super::queueing::{normal_quantile, poisson_quantile};
use crate::dify::Component;
use serde::Serialize;

pub use super::input::Pooler;

impl Pooler {
    pub fn is_none(&self) -> bool {
        *self == Pooler::None
    }
}

/// The components whose connections go through the pooler. api_websocket (unmeasured
/// websocket sessions, 1000 greenlets) and worker_beat (about 1 connection) keep their small
/// direct pools; the plugin daemon keeps its own small pool on `dify_plugin` (see [`PLUGIN_DAEMON_DIRECT`]).
pub const ROUTED: [Component; 2] = [Component::Api, Component::Worker];

/// Why the plugin daemon is not routed through PgBouncer, for the plan and the rendered files.
pub const PLUGIN_DAEMON_DIRECT: &str = "its own small pool on dify_plugin (DB_MAX_OPEN_CONNS, sized to the quantile of its \
    queries in flight), not PgBouncer: routing it through PgBouncer (DB_TYPE=pgbouncer) would \
    save little, turn off its prepared statements, and need a server pool covering its nested \
    checkouts, which were never measured";

/// The listening port of PgBouncer (its default).
pub const PORT: u16 = 6432;
/// Seconds a client waits for a server connection before PgBouncer fails its query: Dify's own
/// `SQLALCHEMY_POOL_TIMEOUT` (30 s), so a wait fails in the pooler no later than it would in
/// SQLAlchemy. With a server pool at the safety bound waits are short; this only bounds overload.
pub const QUERY_WAIT_TIMEOUT_S: u64 = 30;
/// Seconds an idle server connection stays open: long enough to carry the next burst, short
/// enough that the backends opened by a burst close within a minute (PgBouncer's default 600).
pub const SERVER_IDLE_TIMEOUT_S: u64 = 60;
/// A pooler "pays" when it cuts the worst case by at least this share (assumption): below it,
/// one more hop and one more service are not worth the connections.
pub const WORTH_IT_SHARE: f64 = 0.2;
/// File descriptors a PgBouncer process needs beyond one per client and server connection.
const FD_MARGIN: u64 = 100;

/// The pooler as planned.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PoolerPlan {
    pub pooler: Pooler,
    /// The components whose connections go through it.
    pub routed: Vec<Component>,
    /// PgBouncer pods (compose: one container; Kubernetes: a Deployment's replicas).
    pub pods: u64,
    /// PgBouncer processes per pod: one is single-threaded, so more cores mean more processes
    /// on one port (`so_reuseport`). Each process has its own pools.
    pub processes_per_pod: u64,
    /// Cores PgBouncer needs at the target QPS.
    pub cpu_cores: f64,
    /// Σ request greenlets × nested checkouts + Σ chat worker slots × nested checkouts + 1, at
    /// the HPA maximum and surge: below it the shared pool deadlocks.
    pub safety_bound: u64,
    /// The quantile of the routed components' connections in use.
    pub in_use_quantile: u64,
    /// The quantile of the connections held when every api greenlet and worker slot at the HPA
    /// maximum is busy, the api's requests all blocking: below it a pool at the safety bound is
    /// deadlock-free but convoys under overload or a shift of the mix.
    pub saturation_quantile: u64,
    /// The rule that set `default_pool_size`.
    pub sized_by: PoolRule,
    /// `default_pool_size`: server connections per process for the (database, user) pair.
    pub default_pool_size: u64,
    /// The pool was forced with `--assume pgbouncer_pool_size=`.
    pub forced: bool,
    /// pods × processes × default_pool_size: the backends PgBouncer may open. Every process
    /// must hold the whole bound: PgBouncer's processes share no pool, and a client's nested
    /// checkout may land on any of them.
    pub server_connections: u64,
    /// `max_client_conn` per process: every client connection the routed pools may open (any
    /// process may receive all of them), plus the migrations of starting containers.
    pub max_client_conn: u64,
    /// The budget the routed components would take without the pooler.
    pub replaced_connections: u64,
    /// Backends kept open after a burst, for about `server_idle_timeout`: at most the server
    /// connections, typically the quantile in use.
    pub kept_open_typical: u64,
    /// Backends the routed pools would keep open without the pooler (`SQLALCHEMY_POOL_SIZE` each).
    pub kept_open_without: u64,
    /// Open files one process needs: clients + servers + a margin.
    pub open_files: u64,
    pub query_wait_timeout_s: u64,
    pub server_idle_timeout_s: u64,
    pub port: u16,
}

/// The rule behind the server pool's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PoolRule {
    /// The safety bound: no deadlock under any load.
    Safety,
    /// The wait target at the planned load.
    InUse,
    /// The wait target with every greenlet and slot busy, the api's requests all blocking.
    Saturation,
    /// `--assume pgbouncer_pool_size=`.
    Forced,
}

impl std::fmt::Display for PoolRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PoolRule::Safety => "the safety bound",
            PoolRule::InUse => "the wait target at the planned load",
            PoolRule::Saturation => "the wait target with every greenlet and slot busy",
            PoolRule::Forced => "--assume pgbouncer_pool_size=",
        })
    }
}

/// A forced server pool the plan cannot take (exit 2 through the plan's input error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolerError {
    #[error("--assume pgbouncer_pool_size={0}: there is no pooler in this plan — add --pooler pgbouncer")]
    NoPooler(u64),
    #[error(
        "--assume pgbouncer_pool_size={size} is below the safety bound {bound}: every api request greenlet \
         and chat worker slot at the HPA maximum and surge can hold a connection while it asks for \
         another, and a shared server pool smaller than that + 1 deadlocks (measured on a real \
         Dify) — pass at least {bound}, or leave it out"
    )]
    BelowSafetyBound { size: u64, bound: u64 },
    #[error(
        "--assume pgbouncer_pool_size={size} is below the {in_use} connections in use at the plan's \
         quantile: requests would queue for connections at the target load — pass at least {in_use}, or \
         leave it out"
    )]
    BelowInUse { size: u64, in_use: u64 },
}

/// A forced pool without a pooler.
pub fn check_input(input: &PlanInput) -> Result<(), PoolerError> {
    match input.assumptions.pgbouncer_pool_size {
        n if n > 0 && input.pooler.is_none() => Err(PoolerError::NoPooler(n)),
        _ => Ok(()),
    }
}

/// A forced server pool below what the plan needs.
pub fn refusal(p: &PoolerPlan) -> Option<PoolerError> {
    if !p.forced {
        return None;
    }
    let size = p.default_pool_size;
    if size < p.safety_bound {
        return Some(PoolerError::BelowSafetyBound { size, bound: p.safety_bound });
    }
    if size < p.in_use_quantile {
        return Some(PoolerError::BelowInUse { size, in_use: p.in_use_quantile });
    }
    None
}

/// Extra connections one admitted api request may take while holding its first: the same rule
/// as the per-process pool (chat apps about 2 × admitted, workflow apps the measured peak − 1).
fn api_nesting(input: &PlanInput) -> u64 {
    let p = &input.profile;
    if p.chat_share > 0.0 {
        input.assumptions.chat_pool_factor.ceil() as u64
    } else {
        (p.connections_peak.ceil() as u64).saturating_sub(1).max(1)
    }
}

/// Extra connections a worker slot may take while holding one: a streaming chat run holds one
/// for its whole duration and takes a second at its start and end (measured); a workflow run
/// holds one only for moments (a pool of 1 served 8 runs at once), a task is not nested.
fn worker_nesting(input: &PlanInput) -> u64 {
    let p = &input.profile;
    u64::from(p.streaming_share > 0.0 && p.chat_share > 0.0)
}

/// Every api greenlet of some pods busy, and the worker either as busy (every slot, the
/// profile's mix) or at its planned load (`worker_mean` connections in use, Poisson).
struct Saturation {
    greenlets: u64,
    /// The api's requests all blocking (a shift of the mix), else the profile's mix.
    blocking: bool,
    slots: u64,
    worker_mean: f64,
}

impl Saturation {
    /// The `quantile` of the connections held: a blocking request holds 1 and, for a share of its
    /// time, a nested second; a streaming one 2 while it starts; the normal approximation of the sum.
    fn quantile(&self, input: &PlanInput) -> u64 {
        let (p, a) = (&input.profile, &input.assumptions);
        let connections_mean = input.blocking_connections_mean();
        let nested = (connections_mean - 1.0).max(0.0);
        let (b, st) = if self.blocking { (1.0, 0.0) } else { (p.blocking_share(), p.streaming_share) };
        let stream_hold = (a.streaming_start_hold_seconds / p.request_seconds).min(1.0);
        let api_mean = b * (1.0 + nested) + st * 2.0 * stream_hold;
        let api_square = b * (1.0 + 3.0 * nested) + st * 4.0 * stream_hold;
        let w = super::components::slot_holds(p, a, connections_mean);
        let (g, s) = (self.greenlets as f64, self.slots as f64);
        let mean = g * api_mean + s * w.mean + self.worker_mean;
        let variance =
            (g * (api_square - api_mean * api_mean) + s * (w.square - w.mean * w.mean) + self.worker_mean).max(0.0);
        super::components::ceil_clean(mean + normal_quantile(a.quantile) * variance.sqrt())
    }
}

fn pods_at_worst(c: &ComponentPlan) -> u64 {
    c.max_replicas + c.surge
}

/// Size the pooler for finished component plans. `None` without a pooler.
pub fn plan(input: &PlanInput, components: &[ComponentPlan], cpu_target: f64) -> Option<(PoolerPlan, Vec<Derivation>)> {
    match input.pooler {
        Pooler::None => None,
        Pooler::Pgbouncer => Some(size(input, components, cpu_target)),
    }
}

/// Size PgBouncer for these components, whether or not the input asks for it (the advice for
/// plans without a pooler is this plan's worst case).
pub fn size(input: &PlanInput, components: &[ComponentPlan], cpu_target: f64) -> (PoolerPlan, Vec<Derivation>) {
    let a = &input.assumptions;
    let routed: Vec<&ComponentPlan> = components.iter().filter(|c| ROUTED.contains(&c.component)).collect();
    let slots = |comp: Component| -> u64 {
        routed
            .iter()
            .filter(|c| c.component == comp)
            .map(|c| pods_at_worst(c) * c.processes_per_pod * c.slots_per_process.unwrap_or(0))
            .sum()
    };
    let (greenlets, worker_slots) = (slots(Component::Api), slots(Component::Worker));
    let (api_nest, worker_nest) = (api_nesting(input), worker_nesting(input));
    let safety_bound = greenlets * api_nest + worker_slots * worker_nest + 1;
    let mean: f64 = routed.iter().map(|c| c.mean_connections).sum();
    let in_use_quantile = poisson_quantile(mean, a.quantile);
    let busy = |comp: Component, pods: fn(&ComponentPlan) -> u64| -> u64 {
        routed
            .iter()
            .filter(|c| c.component == comp)
            .map(|c| pods(c) * c.processes_per_pod * c.slots_per_process.unwrap_or(0))
            .sum()
    };
    let worker_mean: f64 = routed.iter().filter(|c| c.component == Component::Worker).map(|c| c.mean_connections).sum();
    let overload = Saturation {
        greenlets: busy(Component::Api, |c| c.max_replicas),
        blocking: false,
        slots: busy(Component::Worker, |c| c.max_replicas),
        worker_mean: 0.0,
    };
    let shifted = Saturation { greenlets: busy(Component::Api, |c| c.replicas), blocking: true, slots: 0, worker_mean };
    let (q_overload, q_shifted) = (overload.quantile(input), shifted.quantile(input));
    let saturation_quantile = q_overload.max(q_shifted);
    let forced = a.pgbouncer_pool_size > 0;
    let (default_pool_size, sized_by) = if forced {
        (a.pgbouncer_pool_size, PoolRule::Forced)
    } else {
        [
            (safety_bound, PoolRule::Safety),
            (in_use_quantile, PoolRule::InUse),
            (saturation_quantile, PoolRule::Saturation),
        ]
        .into_iter()
        .fold((0, PoolRule::Safety), |best, next| if next.0 > best.0 { next } else { best })
    };

    let cpu_cores = input.qps * a.pgbouncer_cpu_ms / 1000.0;
    let processes = ((cpu_cores / cpu_target).ceil() as u64).max(1);
    let pods = match input.target {
        Target::Compose => 1,
        // One pod by default: every PgBouncer pod must hold the whole bound, so the bound is
        // counted once only when one pod holds it (docs/pooler.md, "Kubernetes").
        Target::Kubernetes => a.pgbouncer_pods.max(1),
    };
    let processes_per_pod = processes.div_ceil(pods);
    let server_connections = pods * processes_per_pod * default_pool_size;

    let client_pools: u64 = routed.iter().map(|c| c.worst_total).sum();
    let starting: u64 = routed
        .iter()
        .map(|c| match input.target {
            Target::Compose => 1,
            Target::Kubernetes => c.surge.max(1),
        })
        .sum();
    let max_client_conn = client_pools + starting * a.migration_connections;
    let kept_open_without: u64 = routed.iter().map(|c| pods_at_worst(c) * c.processes_per_pod * c.pool_size).sum();
    let plan = PoolerPlan {
        pooler: Pooler::Pgbouncer,
        routed: routed.iter().map(|c| c.component).collect(),
        pods,
        processes_per_pod,
        cpu_cores: (cpu_cores * 100.0).round() / 100.0,
        safety_bound,
        in_use_quantile,
        saturation_quantile,
        sized_by,
        default_pool_size,
        forced,
        server_connections,
        max_client_conn,
        replaced_connections: client_pools,
        kept_open_typical: in_use_quantile.min(server_connections),
        kept_open_without,
        open_files: max_client_conn + default_pool_size + FD_MARGIN,
        query_wait_timeout_s: QUERY_WAIT_TIMEOUT_S,
        server_idle_timeout_s: SERVER_IDLE_TIMEOUT_S,
        port: PORT,
    };
    let d = |name: &str, value: String, formula: String, source: &str| Derivation {
        name: name.into(),
        value,
        formula,
        source: source.into(),
    };
    let steps = vec![
        d(
            "pgbouncer.safety_bound",
            safety_bound.to_string(),
            format!(
                "{greenlets} api greenlets × {api_nest} nested + {worker_slots} worker slots × \
                    {worker_nest} nested + 1, at the HPA maximum and surge"
            ),
            "measured on a real Dify: a shared pool below this deadlocks",
        ),
        d(
            "pgbouncer.in_use_quantile",
            in_use_quantile.to_string(),
            format!("Poisson({mean:.1}) q{} of the api's and worker's connections in use", a.quantile),
            "Little's law",
        ),
        d(
            "pgbouncer.saturation_quantile",
            saturation_quantile.to_string(),
            format!(
                "max(overload {q_overload}: {} api greenlets and {} worker slots at the HPA maximum all \
                    busy with the profile's mix; a shift to blocking {q_shifted}: the {} greenlets at the \
                    planned replicas all busy with blocking requests, the worker at its planned load) — \
                    q{} of the connections they hold (normal approximation)",
                overload.greenlets, overload.slots, shifted.greenlets, a.quantile
            ),
            "no convoy and no throughput lost to the pooler under overload or a shift to blocking requests",
        ),
        d(
            "default_pool_size",
            default_pool_size.to_string(),
            if forced {
                "forced by --assume pgbouncer_pool_size=".into()
            } else {
                format!(
                    "max(safety bound {safety_bound}, in use {in_use_quantile}, saturation {saturation_quantile}): \
                        set by {sized_by}"
                )
            },
            "PgBouncer's server pool per (database, user) pair and process",
        ),
        d(
            "pgbouncer.processes",
            format!("{pods} × {processes_per_pod}"),
            format!(
                "ceil({:.2} cores ÷ {cpu_target}) processes on one port (so_reuseport), in {pods} pod(s); \
                    each holds the whole server pool",
                cpu_cores
            ),
            "PgBouncer is single-threaded; --assume pgbouncer_cpu_ms= (an assumption)",
        ),
        d(
            "max_client_conn",
            max_client_conn.to_string(),
            format!(
                "Σ client pools {client_pools} + {starting} starting containers × {} migration connections",
                a.migration_connections
            ),
            "client connections cost PgBouncer slots, not backends",
        ),
    ];
    (plan, steps)
}

/// The pooler's line in the budget.
pub fn budget_line(p: &PoolerPlan) -> super::budget::PoolerLine {
    super::budget::PoolerLine {
        name: "pgbouncer".into(),
        pods: p.pods,
        processes: p.processes_per_pod,
        default_pool_size: p.default_pool_size,
        connections: p.server_connections,
        replaces: p.routed.clone(),
        replaced_connections: p.replaced_connections,
    }
}

/// For a plan without a pooler: what PgBouncer would change, when that is a large share.
pub fn advice(input: &PlanInput, components: &[ComponentPlan], cpu_target: f64, demand: u64) -> Option<String> {
    if !input.pooler.is_none() {
        return None;
    }
    let (p, _) = size(input, components, cpu_target);
    let pooled = demand.saturating_sub(p.replaced_connections) + p.server_connections;
    let saved = demand.saturating_sub(pooled);
    (demand > 0 && saved as f64 >= WORTH_IT_SHARE * demand as f64).then(|| {
        format!(
            "PgBouncer in front of the api and worker (--pooler pgbouncer) would cut the worst case \
                from {demand} to {pooled} (−{saved}, {:.0}%): one server pool of {} at the safety bound \
                instead of {} connections in per-process pools.",
            saved as f64 * 100.0 / demand as f64,
            p.default_pool_size,
            p.replaced_connections
        )
    })
}

/// Notes for a plan with the pooler.
pub fn notes(p: &PoolerPlan, target: Target) -> Vec<String> {
    let mut out = vec![format!(
        "PgBouncer (transaction mode) serves {}: {} client connections on {} server connections \
            ({} pod(s) × {} process(es) × default_pool_size {}). Keep SQLALCHEMY_POOL_SIZE + \
            MAX_OVERFLOW as planned: a process's pool must still cover its own greenlets, and costs \
            PgBouncer client slots only.",
        p.routed.iter().map(|c| c.service()).collect::<Vec<_>>().join(" and "),
        p.max_client_conn,
        p.server_connections,
        p.pods,
        p.processes_per_pod,
        p.default_pool_size
    )];
    if p.pods * p.processes_per_pod > 1 {
        out.push(format!(
            "Each PgBouncer process keeps its own server pool and a client's nested checkout may land \
                on any of them, so each holds the whole safety bound: {} processes × {} are budgeted.",
            p.pods * p.processes_per_pod,
            p.default_pool_size
        ));
    }
    if target == Target::Kubernetes && p.pods == 1 {
        out.push(format!(
            "One PgBouncer pod holds the server pool, so it is counted once; while that pod restarts \
                Dify's database connections fail for seconds. --assume pgbouncer_pods=2 keeps a second \
                pod at the price of a second whole server pool ({} connections more).",
            p.processes_per_pod * p.default_pool_size
        ));
    }
    if p.server_connections >= p.replaced_connections {
        out.push(format!(
            "PgBouncer does not pay here: its {} server connections are not fewer than the {} the \
                api's and worker's own pools would take — plan without --pooler.",
            p.server_connections, p.replaced_connections
        ));
    }
    out.push(format!("The plugin daemon keeps {PLUGIN_DAEMON_DIRECT}."));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(profile: &str) -> PlanInput {
        PlanInput {
            pooler: Pooler::Pgbouncer,
            ..PlanInput::new(10.0, crate::model::profile::Profile::builtin(profile).unwrap())
        }
    }

    /// Nested checkouts as measured: a workflow request takes one more (peak 2), a chat request
    /// two more (the 2 × admitted pool), a worker slot one more only when chat runs stream.
    #[test]
    fn nesting_by_profile() {
        assert_eq!((api_nesting(&input("workflow")), worker_nesting(&input("workflow"))), (1, 0));
        assert_eq!((api_nesting(&input("chat")), worker_nesting(&input("chat"))), (2, 1));
    }

    /// A forced pool below the bound is refused, naming the bound; at the bound it is not.
    #[test]
    fn refusal_names_the_bound() {
        let mut i = input("workflow");
        let plan = crate::model::plan::plan(&i).unwrap();
        let p = plan.pooler.unwrap();
        i.assumptions.pgbouncer_pool_size = p.safety_bound - 1;
        let err = crate::model::plan::plan(&i).unwrap_err();
        let wanted = PoolerError::BelowSafetyBound { size: p.safety_bound - 1, bound: p.safety_bound };
        assert!(matches!(&err, crate::model::plan::InputError::Pooler(e) if *e == wanted), "{err}");
        i.assumptions.pgbouncer_pool_size = p.default_pool_size;
        assert!(crate::model::plan::plan(&i).is_ok());
    }
}
