//! The sizing model: from a target QPS and a workload profile to every knob of a Dify
//! deployment, with the connection budget that proves it fits (docs/model.md §10). Each
//! component is sized by its own step in `components`; this module runs them, then the budget
//! and the database steps.

use super::assumptions::{Assumptions, EditionRules, Target};
use super::budget::{self, Budget, BudgetLine, Cap, Reserve};
use super::components::{self as size, Admission, Ctx, fmt2, round2};
use super::pg_memory::{self, MemoryCheck};
use super::pgtune::{self, DataSize, PgHost, Timeouts, Tuning};
use super::storage::{self, LogPlan, LogStore, RedisPlan};
use crate::dify::db_type::DbType;
use crate::dify::{Component, DifyVersion};
use serde::Serialize;

/// The version of the JSON document `size --format json` prints. Bump on any breaking change.
pub const SCHEMA_VERSION: u32 = 1;

/// Above this the model's inputs leave the range anything here was calibrated on.
pub const MAX_QPS: f64 = 1_000_000.0;

pub use super::components::ComponentPlan;
pub use super::derivation::Derivation;
use super::derivation::Recorder;
pub use super::input::{PgHostSpec, PlanInput};

/// The whole plan: plain data that every output format reads.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Plan {
    pub schema_version: u32,
    pub input: PlanInput,
    pub edition_rules: EditionRules,
    pub components: Vec<ComponentPlan>,
    /// How far the load may rise before requests wait in the api's listen backlog or the broker.
    pub overload: Overload,
    pub database: DatabasePlan,
    pub budget: Budget,
    pub efficiency: Efficiency,
    /// Workflow-log volume, where it lives and what PostgreSQL disk it needs.
    pub logs: LogPlan,
    pub redis: RedisPlan,
    /// Present when a fixed cap cannot hold the plan.
    pub shortfall: Option<Shortfall>,
    /// Kubernetes: how much of the worst case the HPA maximum and the surge add, and the levers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes_overhead: Option<KubernetesOverhead>,
    /// PgBouncer in front of the api and worker, when planned (`--pooler pgbouncer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooler: Option<super::pooler::PoolerPlan>,
    pub notes: Vec<String>,
    /// Every value with the formula and the numbers that produced it (`--explain`).
    pub derivations: Vec<Derivation>,
}

/// The database server.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DatabasePlan {
    pub max_connections: u64,
    /// difyplan chose `max_connections` (no fixed cap was given).
    pub max_connections_chosen: bool,
    /// PostgreSQL cores: λ × CPU ms ÷ target utilisation.
    pub cores: u64,
    /// About cores × 2 queries can usefully run at once (docs/model.md §5, HikariCP).
    pub useful_active_connections: u64,
    /// The host the settings are tuned for.
    pub host: PgHost,
    /// Which parts of the host difyplan chose (the user gave no `--pg-memory` / `--pg-cpus`).
    pub host_memory_chosen: bool,
    pub host_cpus_chosen: bool,
    /// PGTune's "web" settings for the host and `max_connections` (docs/model.md §5).
    pub tuning: Tuning,
    /// Whether `max_connections` backends fit the host's memory.
    pub memory: MemoryCheck,
    pub timeouts: Timeouts,
    /// The Dify `.env` keys for the database service, in `.env.example` order.
    pub env: Vec<(String, String)>,
    /// Every server setting, for people who run their own PostgreSQL (`postgres -c` names;
    /// `mysqld --name=value` names on MySQL).
    pub server_settings: Vec<(String, String)>,
    /// On MySQL (`--db-type mysql`): its own settings, which replace the PostgreSQL ones in
    /// `env` and `server_settings` (the PostgreSQL fields above then do not apply).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mysql: Option<super::mysql::MysqlTuning>,
}

/// Dify's `GUNICORN_TIMEOUT` (`.env.example` of both versions): the longest a request runs.
const GUNICORN_TIMEOUT_S: u64 = 360;

/// Tune the database for `max_connections`. Without `--pg-memory` the memory is the smallest
/// power of two GiB, from Dify's 4 GiB minimum, that holds the backends (PGTune's memory check);
/// without `--pg-cpus` the cores are the plan's PostgreSQL cores, at least PGTune's default 2.
fn database(
    spec: &PgHostSpec,
    max_connections: u64,
    open_backends: u64,
    cores: u64,
    request_seconds: f64,
    data_bytes: Option<u64>,
    notes: &mut Vec<String>,
) -> (PgHost, bool, bool, Tuning, MemoryCheck, Timeouts) {
    let cpus = spec.cpus.unwrap_or_else(|| (cores.min(u32::MAX as u64) as u32).max(pgtune::DEFAULT_HOST.cpus));
    let mut host = PgHost {
        memory_bytes: spec.memory_bytes.unwrap_or(pgtune::DEFAULT_HOST.memory_bytes),
        cpus,
        storage: spec.storage,
        pg_version: spec.pg_version,
    };
    if spec.memory_bytes.is_none() {
        while host.memory_bytes < pgtune::MAX_MEMORY_BYTES
            && !pg_memory::fits_after_tuning(
                &host,
                max_connections,
                open_backends,
                DataSize::from_projection(data_bytes, host.memory_bytes),
            )
        {
            host.memory_bytes *= 2;
        }
    }
    let data_size = DataSize::from_projection(data_bytes, host.memory_bytes);
    let (tuning, memory) = pg_memory::settle(&host, pgtune::tune_for(&host, max_connections, data_size), open_backends);
    let gib = host.memory_bytes as f64 / GIB_F;
    if spec.memory_bytes.is_none() || spec.cpus.is_none() {
        // Only what difyplan chose is called assumed; the user's own values are theirs.
        let mut assumed = Vec::new();
        if spec.memory_bytes.is_none() {
            assumed.push(format!(
                "{gib:.0} GiB (the smallest power of two from 4 GiB that holds the backends that can be open)"
            ));
        }
        if spec.cpus.is_none() {
            assumed.push(format!("{} CPUs (the plan's database cores)", host.cpus));
        }
        let flags = match (spec.memory_bytes.is_none(), spec.cpus.is_none()) {
            (true, true) => "--pg-memory and --pg-cpus",
            (true, false) => "--pg-memory",
            _ => "--pg-cpus",
        };
        notes.push(format!(
            "PostgreSQL host assumed: {}; {} storage, PostgreSQL {} — pass {flags} to tune for yours.",
            assumed.join(", "),
            host.storage,
            host.pg_version
        ));
    }
    if !memory.fits {
        notes.push(format!(
            "WARNING: {} open backends do not fit the database host's {gib:.0} GiB: at most {} fit. {}",
            memory.open_backends, memory.largest_safe_backends, memory.remedy
        ));
    }
    notes.extend(memory.huge_pages_advice.iter().cloned());
    notes.extend(memory.work_mem_advice.iter().cloned());
    notes.extend(tuning.warnings.iter().cloned());
    let timeouts = pgtune::timeouts(request_seconds, GUNICORN_TIMEOUT_S);
    (host, spec.memory_bytes.is_none(), spec.cpus.is_none(), tuning, memory, timeouts)
}

/// The load the plan admits before work queues, and what happens beyond it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Overload {
    pub api: Admission,
    pub worker: Admission,
}

impl Overload {
    /// One sentence for the plan's notes.
    pub fn describe(&self, qps: f64, target: Target) -> String {
        let (api, worker) = (&self.api, &self.worker);
        format!(
            "Overload: the api admits {} requests at once, {:.2} × the {:.1} in flight at {qps} QPS, \
                so up to about {:.0} QPS before requests wait in the listen backlog (holding no \
                connection; latency then grows with the backlog, nothing deadlocks); the workers run {} \
                at once, {:.2} × the mean, beyond which runs wait in the broker.{} For more headroom: \
                --assume overload_headroom=1.5.",
            api.admitted,
            api.factor,
            api.mean_in_flight,
            qps * api.factor,
            worker.admitted,
            worker.factor,
            if target == Target::Kubernetes { " The HPA adds pods up to its maximum as CPU rises." } else { "" }
        )
    }
}

/// How close the plan is to the physical minimum.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Efficiency {
    pub worst_case_connections: u64,
    pub mean_connections_in_use: f64,
    /// worst ÷ mean: 1 would be a plan with no safety margin at all.
    pub ratio: f64,
}

/// Kubernetes: the worst case's parts that exist only because pods may scale out or surge.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct KubernetesOverhead {
    pub worst_case: u64,
    /// Worst case minus the same plan with no HPA headroom (`hpa_max_factor=1`).
    pub from_hpa_maximum: u64,
    /// Worst case minus the same plan with no surge (`max_surge=0`).
    pub from_surge: u64,
    /// The worst case with neither: the pods at the planned replicas.
    pub at_replicas: u64,
    /// What the operator may trade, each with the worst case it gives and its cost.
    pub levers: Vec<Lever>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Lever {
    /// The `--assume` to pass.
    pub assume: String,
    pub worst_case: u64,
    /// What it costs in overload headroom or rollouts.
    pub cost: String,
}

/// A fixed surge offered as a lever when a component would surge more pods than this.
const LEVER_SURGE_PODS: u64 = 2;
/// The lower HPA ceiling offered as a lever (when the edition's is higher).
const LEVER_HPA_FACTOR: f64 = 1.2;

/// The Kubernetes overhead of `plan`, each variant planned again.
fn kubernetes_overhead(input: &PlanInput, plan: &Plan) -> KubernetesOverhead {
    let a = &input.assumptions;
    let worst = |assumptions: Assumptions| {
        plan_core(&PlanInput { assumptions, ..input.clone() }).efficiency.worst_case_connections
    };
    let worst_case = plan.efficiency.worst_case_connections;
    let no_hpa = worst(Assumptions { hpa_max_factor: Some(1.0), ..a.clone() });
    let no_surge = worst(Assumptions { max_surge: 0.0, max_surge_pods: 0, ..a.clone() });
    let at_replicas = worst(Assumptions { hpa_max_factor: Some(1.0), max_surge: 0.0, max_surge_pods: 0, ..a.clone() });
    let mut levers = Vec::new();
    let hpa = plan.edition_rules.hpa_max_factor;
    if plan.components.iter().any(|c| c.surge > LEVER_SURGE_PODS) {
        levers.push(Lever {
            assume: format!("max_surge_pods={LEVER_SURGE_PODS}"),
            worst_case: worst(Assumptions { max_surge_pods: LEVER_SURGE_PODS, ..a.clone() }),
            cost: format!(
                "a rollout replaces at most {LEVER_SURGE_PODS} pods of a component at a time: slower \
                    rollouts, no capacity lost"
            ),
        });
    }
    if hpa > LEVER_HPA_FACTOR {
        let admits = plan.overload.api.factor;
        levers.push(Lever {
            assume: format!("hpa_max_factor={LEVER_HPA_FACTOR}"),
            worst_case: worst(Assumptions { hpa_max_factor: Some(LEVER_HPA_FACTOR), ..a.clone() }),
            cost: format!(
                "the HPA adds pods for up to {LEVER_HPA_FACTOR} × the planned load instead of {hpa} ×; \
                    beyond it requests wait in the listen backlog once the api's {admits} × admission is \
                    full (latency grows, nothing deadlocks)"
            ),
        });
    }
    levers.retain(|l| l.worst_case < worst_case);
    KubernetesOverhead {
        worst_case,
        from_hpa_maximum: worst_case.saturating_sub(no_hpa),
        from_surge: worst_case.saturating_sub(no_surge),
        at_replicas,
        levers,
    }
}

impl KubernetesOverhead {
    /// One sentence for the plan's notes.
    pub fn describe(&self) -> String {
        let pct = |v: u64| v as f64 * 100.0 / self.worst_case.max(1) as f64;
        let levers: Vec<String> =
            self.levers.iter().map(|l| format!("--assume {} gives {} ({})", l.assume, l.worst_case, l.cost)).collect();
        format!(
            "Kubernetes overhead: of the worst case {}, the HPA maximum adds {} ({:.0}%) and the rollout \
                surge {} ({:.0}%); at the planned replicas it would be {}.{}",
            self.worst_case,
            self.from_hpa_maximum,
            pct(self.from_hpa_maximum),
            self.from_surge,
            pct(self.from_surge),
            self.at_replicas,
            if levers.is_empty() { String::new() } else { format!(" Levers: {}.", levers.join("; ")) }
        )
    }
}

/// Why a fixed cap cannot hold the plan, and what would.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Shortfall {
    /// Connections missing: demand − usable cap.
    pub missing: u64,
    /// The `max_connections` this plan needs.
    pub needed_max_connections: u64,
    /// The highest QPS of this profile the fixed cap can hold, if any.
    pub max_qps_at_cap: Option<f64>,
    pub ways_out: Vec<WayOut>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct WayOut {
    pub action: String,
    /// Connections of demand it removes (0 where it raises the cap instead).
    pub saves: u64,
    pub enough: bool,
}

/// A bad request to the model (exit 2): what is wrong, as data, with one message each.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("--qps {0} is not a number of requests per second — pass a positive number such as 500")]
    QpsNotANumber(f64),
    #[error("--qps {0}: the target must be above 0 requests per second — pass for example --qps 10")]
    QpsNotPositive(f64),
    #[error(
        "--qps {0} is above {MAX_QPS:.0}, beyond anything the model was calibrated on — plan per cluster or \
         region, each below 1,000,000"
    )]
    QpsTooHigh(f64),
    #[error(transparent)]
    Profile(#[from] super::profile::Invalid),
    #[error(transparent)]
    Assumption(#[from] super::assumptions::AssumptionError),
    #[error(transparent)]
    Host(#[from] super::pgtune::HostError),
    #[error(transparent)]
    Pooler(#[from] super::pooler::PoolerError),
    #[error(
        "--workflow-log-store logstore: Dify {0} has no log-store repositories (they came with 1.11.2) — use \
         Dify 1.11.2 or later, or --workflow-log-store celery"
    )]
    LogStoreNeedsNewerDify(DifyVersion),
    #[error(
        "--workflow-log-store celery: Dify {0} has no Celery workflow repositories (they came with 1.8.0) — use \
         Dify 1.8.0 or later, or keep the logs in PostgreSQL (--workflow-log-store postgres)"
    )]
    CeleryStoreNeedsNewerDify(DifyVersion),
    #[error("--max-qps solves for a fixed cap — add --pg-max-connections N (the database's max_connections)")]
    MaxQpsNeedsCap,
}

/// Validate the target QPS with a message that says what to do.
pub fn check_qps(qps: f64) -> Result<(), InputError> {
    if qps.is_nan() || qps.is_infinite() {
        return Err(InputError::QpsNotANumber(qps));
    }
    if qps <= 0.0 {
        return Err(InputError::QpsNotPositive(qps));
    }
    if qps > MAX_QPS {
        return Err(InputError::QpsTooHigh(qps));
    }
    Ok(())
}

/// Plan a deployment. Never fails for valid input: an infeasible fixed cap is reported in
/// `shortfall` and `budget.fits`.
pub fn plan(input: &PlanInput) -> Result<Plan, InputError> {
    check_qps(input.qps)?;
    input.profile.validate()?;
    input.assumptions.validate()?;
    let era = input.dify_version.era();
    if input.workflow_log_store == LogStore::Logstore && !era.logstore {
        return Err(InputError::LogStoreNeedsNewerDify(input.dify_version));
    }
    if input.workflow_log_store == LogStore::Celery && !era.celery_repositories {
        return Err(InputError::CeleryStoreNeedsNewerDify(input.dify_version));
    }
    if let Some(m) = input.pg_host.memory_bytes {
        PgHost {
            memory_bytes: m,
            cpus: input.pg_host.cpus.unwrap_or(2),
            storage: input.pg_host.storage,
            pg_version: input.pg_host.pg_version,
        }
        .validate()?;
    }
    super::pooler::check_input(input)?;
    let mut plan = plan_core(input);
    if let Some(refused) = plan.pooler.as_ref().and_then(super::pooler::refusal) {
        return Err(refused.into());
    }
    if input.target == Target::Kubernetes {
        let overhead = kubernetes_overhead(input, &plan);
        plan.notes.push(overhead.describe());
        plan.kubernetes_overhead = Some(overhead);
    }
    if !plan.budget.fits {
        plan.shortfall = Some(shortfall(input, &plan));
    }
    Ok(plan)
}

fn plan_core(input: &PlanInput) -> Plan {
    let p = &input.profile;
    let a = &input.assumptions;
    let rules = input.edition.rules();
    // With the workflow logs off the request path (Celery repositories or a log store) the run's
    // records are no longer written through a second session at its start and end: a blocking
    // request holds its one session (the view's) and nothing more. An assumption: the measured
    // excess over one connection (1.06–1.17) is those writes. The peak, and so the pool bound,
    // is left as measured (docs/model.md §8).
    let connections_mean = input.blocking_connections_mean();
    let mut cx = Ctx {
        input,
        p,
        a,
        rules,
        cpu_target: a.cpu_target.unwrap_or(rules.cpu_target),
        hpa_factor: a.hpa_max_factor.unwrap_or(rules.hpa_max_factor),
        lambda: input.qps,
        connections_mean,
        rec: Recorder { steps: Vec::new() },
        notes: Vec::new(),
    };
    if connections_mean < p.connections_mean {
        cx.rec.note(
            "connections per blocking request",
            connections_mean,
            format!(
                "{} → {connections_mean} with the workflow logs off the request path (--workflow-log-store {:?})",
                p.connections_mean, input.workflow_log_store
            )
            .to_lowercase(),
            "assumption, docs/model.md §6, §8: the excess over one session is the run's record writes",
        );
    }

    let mut components = Vec::new();
    let (api, api_admission) = size::api(&mut cx);
    components.push(api);
    if input.dify_version.has_api_websocket() && input.collaboration {
        components.push(size::api_websocket(&mut cx));
    }
    let (worker, worker_admission) = size::worker(&mut cx);
    components.push(worker);
    // Before 1.7.0 Dify's compose file ran no beat; the image has `MODE=beat` since 1.0.0, so a
    // Kubernetes deployment (the charts run one) keeps it.
    if input.dify_version.has_worker_beat() || input.target == Target::Kubernetes {
        components.push(size::worker_beat(&mut cx));
    }
    components.push(size::plugin_daemon(&mut cx));
    if input.target == Target::Compose {
        let cores: f64 = components.iter().map(|c| c.cpu_per_pod * c.replicas as f64).sum();
        if cores > COMPOSE_HOST_CORES_WARN {
            cx.notes.push(format!(
                "The plan needs about {cores:.0} cores, more than one compose host usually has: consider \
                    --target kubernetes."
            ));
        }
    }
    let overload = Overload { api: api_admission, worker: worker_admission };
    cx.notes.push(overload.describe(input.qps, input.target));

    // The pooler is sized from the finished components (src/model/pooler.rs).
    let pooler = super::pooler::plan(input, &components, cx.cpu_target).map(|(pooler, steps)| {
        cx.rec.steps.extend(steps);
        cx.notes.extend(super::pooler::notes(&pooler, input.target));
        pooler
    });
    let budget = connection_budget(&mut cx, &components, pooler.as_ref());
    let (database, logs, redis) = database_step(&mut cx, &budget);

    let mean: f64 = components.iter().map(|c| c.mean_connections).sum();
    let worst = budget.component_demand();
    let efficiency = Efficiency {
        worst_case_connections: worst,
        mean_connections_in_use: round2(mean),
        ratio: round2(worst as f64 / mean.max(1.0)),
    };
    cx.rec.note(
        "efficiency",
        fmt2(efficiency.ratio),
        format!("worst case {worst} ÷ mean in use {mean:.1}"),
        "docs/model.md §10",
    );
    if budget.demand as f64 > 20.0 * (database.cores as f64 * 2.0).max(1.0) {
        cx.notes.push(format!(
            "The worst case ({}) is far above the queries PostgreSQL runs usefully at once (about {}): \
                most connections sit idle or idle in transaction while their requests wait.",
            budget.demand,
            database.cores * 2
        ));
    }
    cx.notes.extend(super::pooler::advice(input, &components, cx.cpu_target, budget.demand));

    Plan {
        schema_version: SCHEMA_VERSION,
        input: input.clone(),
        edition_rules: EditionRules { cpu_target: cx.cpu_target, hpa_max_factor: cx.hpa_factor, ..rules },
        components,
        overload,
        database,
        budget,
        efficiency,
        logs,
        redis,
        shortfall: None,
        kubernetes_overhead: None,
        pooler,
        notes: cx.notes,
        derivations: cx.rec.steps,
    }
}

/// The budget step: every component's worst case (those behind a pooler replaced by its server
/// connections), the reserves, and `max_connections`.
fn connection_budget(cx: &mut Ctx, components: &[ComponentPlan], pooler: Option<&super::pooler::PoolerPlan>) -> Budget {
    let (input, a) = (cx.input, cx.a);
    let pooler_line = pooler.map(super::pooler::budget_line);
    let routed = |c: &ComponentPlan| pooler_line.as_ref().is_some_and(|p| p.replaces.contains(&c.component));
    let lines: Vec<BudgetLine> = components
        .iter()
        .filter(|c| !routed(c))
        .map(|c| BudgetLine::new(c.component, c.max_replicas + c.surge, c.processes_per_pod, c.per_process_max))
        .collect();
    let starting: u64 = components
        .iter()
        .filter(|c| c.component.runs_migrations())
        .map(|c| match input.target {
            Target::Compose => 1,
            Target::Kubernetes => c.surge.max(u64::from(c.component.singleton())),
        })
        .sum();
    let reserves = vec![
        Reserve {
            name: "migration".into(),
            connections: starting * a.migration_connections,
            why: format!(
                "{starting} containers may start at once and run `flask upgrade-db` ({} connections each, \
                    measured)",
                a.migration_connections
            ),
        },
        Reserve {
            name: "admin".into(),
            connections: a.admin_reserve,
            why: "monitoring, backups and an operator's psql (assumption, --assume admin_reserve=)".into(),
        },
    ];
    let demand: u64 = lines
        .iter()
        .map(|l| l.connections)
        .chain(pooler_line.iter().map(|p| p.connections))
        .chain(reserves.iter().map(|r| r.connections))
        .sum();
    let mysql = input.db_type == DbType::Mysql;
    let (max_connections, chosen) = match input.pg_max_connections {
        Some(cap) => (cap, false),
        // MySQL withholds nothing from an ordinary account and gives root one more.
        None if mysql => {
            let extra =
                if input.app_role_superuser { crate::dify::db_type::mysql::SUPERUSER_EXTRA_CONNECTIONS } else { 0 };
            let need = demand.saturating_sub(extra).max(1);
            let step = a.max_connections_step.max(1);
            ((need.div_ceil(step) * step).min(crate::dify::db_type::mysql::MAX_MAX_CONNECTIONS), true)
        }
        // One server takes at most PostgreSQL's own limit; beyond it the plan cannot fit.
        None => (
            budget::choose_max_connections(
                demand,
                input.app_role_superuser,
                a.superuser_reserved_connections,
                a.reserved_connections,
                a.max_connections_step,
            )
            .min(pgtune::PG_MAX_CONNECTIONS_LIMIT),
            true,
        ),
    };
    let cap = Cap {
        max_connections,
        app_role_superuser: input.app_role_superuser,
        superuser_reserved_connections: a.superuser_reserved_connections,
        reserved_connections: a.reserved_connections,
        ..Cap::postgresql(max_connections, input.app_role_superuser)
    };
    let cap = if mysql { Cap::mysql(max_connections, input.app_role_superuser) } else { cap };
    let budget = Budget::with_pooler(lines, pooler_line, reserves, cap);
    cx.rec.note(
        "demand",
        budget.demand,
        if pooler.is_some() {
            "Σ (max replicas + surge) × processes × per-process maximum of the direct components + \
                PgBouncer's server connections + reserves"
                .into()
        } else {
            "Σ (max replicas + surge) × processes × per-process maximum + reserves".into()
        },
        "docs/model.md §2",
    );
    cx.rec.note(
        input.db_type.max_connections_key(),
        max_connections,
        if chosen && mysql {
            format!(
                "demand {}{}, rounded up to a multiple of {} (MySQL withholds no slots from an ordinary account)",
                budget.demand,
                if input.app_role_superuser { " − 1 more that root may open (CONNECTION_ADMIN)" } else { "" },
                a.max_connections_step
            )
        } else if chosen {
            format!(
                "demand {} + {} slots withheld from a non-superuser, rounded up to a multiple of {}",
                budget.demand,
                if input.app_role_superuser { 0 } else { a.superuser_reserved_connections + a.reserved_connections },
                a.max_connections_step
            )
        } else {
            "fixed by --pg-max-connections".into()
        },
        "docs/model.md §10",
    );
    budget
}

/// The database step: cores, workflow-log storage, Redis, the host and its tuning.
fn database_step(cx: &mut Ctx, budget: &Budget) -> (DatabasePlan, LogPlan, RedisPlan) {
    let (input, p, a, lambda) = (cx.input, cx.p, cx.a, cx.lambda);
    let max_connections = budget.cap.max_connections;
    let logs = storage::logs(lambda, p, input.workflow_log_store, input.retention_days);
    let pg_cpu_ms = p.pg_cpu_ms - logs.pg_cpu_ms_saved;
    let pg_cores = ((lambda * pg_cpu_ms).seconds() / a.pg_cpu_target).ceil().max(1.0) as u64;
    cx.rec.note(
        "database.cores",
        pg_cores,
        format!(
            "ceil({lambda} × {pg_cpu_ms} ms ÷ {}){}",
            a.pg_cpu_target,
            if logs.pg_cpu_ms_saved.ms() > 0.0 {
                format!(
                    " — {:.1} ms per request less with the logs in the log store ({} → {pg_cpu_ms} ms)",
                    logs.pg_cpu_ms_saved, p.pg_cpu_ms
                )
            } else {
                String::new()
            }
        ),
        "docs/model.md §8: 11–35 ms per request; target is an assumption",
    );
    cx.rec.note(
        "workflow logs in PostgreSQL",
        format!("{:.0} GiB", logs.pg_disk_bytes / GIB_F),
        logs.reasoning.join("; "),
        "docs/model.md §6, §8",
    );
    if logs.recommend_log_store {
        cx.notes.push(format!(
            "Workflow logs would keep {:.0} GiB in PostgreSQL ({:.0} GiB of disk {}): move them to a \
                log store (--workflow-log-store logstore).",
            logs.retained_bytes / GIB_F,
            logs.pg_disk_bytes / GIB_F,
            logs.retention_days.map_or("a year".to_string(), |d| format!("for {d} days"))
        ));
    }
    let stream_in_flight = lambda * p.streaming_share * p.request_seconds;
    let redis = storage::redis(lambda, p, stream_in_flight, input.edition);
    cx.rec.note(
        "redis",
        format!("{:?}", redis.topology).to_lowercase(),
        redis.reasoning.join("; "),
        "docs/model.md §1, §3",
    );
    // The backends that can be open: every pool at its maximum plus the reserves, at most the cap.
    let open_backends = budget.demand.min(max_connections);
    let (host, host_memory_chosen, host_cpus_chosen, tuning, memory, timeouts) = database(
        &input.pg_host,
        max_connections,
        open_backends,
        pg_cores,
        p.request_seconds,
        (logs.pg_disk_bytes > 0.0).then_some(logs.pg_disk_bytes as u64),
        &mut cx.notes,
    );
    cx.rec.note(
        "database memory",
        format!("{:.1} GiB of {:.0} GiB", memory.needed_bytes as f64 / GIB_F, host.memory_bytes as f64 / GIB_F),
        format!(
            "{} shared memory{} + {open_backends} open backends × ({} MiB + work_mem {}{}) + {} autovacuum",
            human_mib(memory.shared_memory_bytes),
            if tuning.huge_pages_reserved.is_some() { " (huge pages)" } else { "" },
            pg_memory::PER_BACKEND_OVERHEAD_BYTES >> 20,
            pgtune::format_kb(tuning.work_mem_kb),
            if memory.page_tables_bytes > 0 { " + page tables" } else { "" },
            human_mib(memory.autovacuum_bytes)
        ),
        "PostgreSQL 15's shared memory arithmetic, measured per backend, docs/model.md §5, §9",
    );
    let kb = pgtune::format_kb;
    let mut env = vec![
        ("POSTGRES_MAX_CONNECTIONS".to_string(), max_connections.to_string()),
        ("POSTGRES_SHARED_BUFFERS".to_string(), kb(tuning.shared_buffers_kb)),
        ("POSTGRES_WORK_MEM".to_string(), kb(tuning.work_mem_kb)),
        ("POSTGRES_MAINTENANCE_WORK_MEM".to_string(), kb(tuning.maintenance_work_mem_kb)),
        ("POSTGRES_EFFECTIVE_CACHE_SIZE".to_string(), kb(tuning.effective_cache_size_kb)),
        ("POSTGRES_STATEMENT_TIMEOUT".to_string(), timeouts.statement_ms.to_string()),
        ("POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT".to_string(), timeouts.idle_in_transaction_ms.to_string()),
    ];
    // Before 1.9.2 the compose file passes no timeouts to PostgreSQL: they go on the server's
    // command line.
    if !input.dify_version.era().db_timeouts {
        env.truncate(5);
    }
    // PGTune's list starts with max_connections, tuned for the plan's.
    let mut server_settings: Vec<(String, String)> =
        tuning.settings().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    server_settings.push(("statement_timeout".into(), timeouts.statement_ms.to_string()));
    server_settings.push(("idle_in_transaction_session_timeout".into(), timeouts.idle_in_transaction_ms.to_string()));
    cx.rec.note(
        "POSTGRES_SHARED_BUFFERS",
        kb(tuning.shared_buffers_kb),
        format!("RAM / 4 of {} GiB", host.memory_bytes >> 30),
        pgtune::PGTUNE_REVISION,
    );
    cx.rec.note(
        "POSTGRES_WORK_MEM",
        kb(tuning.work_mem_kb),
        format!(
            "(RAM − shared_buffers) ÷ (({max_connections} + {} workers) × 3){}, at least 4 MB{}",
            tuning.worker_processes(),
            match tuning.data_size {
                DataSize::GreaterRam => " × 0.9 (data projected above 3 × RAM)",
                _ => "",
            },
            if tuning.work_mem_kb < tuning.pgtune_work_mem_kb {
                format!(
                    " = {}; lowered so every open backend fits (docs/model.md §5)",
                    pgtune::format_kb(tuning.pgtune_work_mem_kb)
                )
            } else {
                String::new()
            }
        ),
        pgtune::PGTUNE_REVISION,
    );
    cx.rec.note(
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT",
        timeouts.idle_in_transaction_ms,
        timeouts.reasoning.join(" "),
        "docs/model.md §1, §8",
    );
    let mysql = (input.db_type == DbType::Mysql).then(|| mysql_step(cx, budget));
    if let Some(m) = &mysql {
        env = m.env();
        server_settings = m.settings();
    }
    let database = DatabasePlan {
        mysql,
        max_connections,
        max_connections_chosen: input.pg_max_connections.is_none(),
        cores: pg_cores,
        useful_active_connections: pg_cores * 2,
        host,
        host_memory_chosen,
        host_cpus_chosen,
        tuning,
        memory,
        timeouts,
        env,
        server_settings,
    };
    (database, logs, redis)
}

/// MySQL's settings: the host's memory as given, or the smallest power of two from 4 GiB that
/// holds the connections and a buffer pool of one chunk (docs/model.md §11).
fn mysql_step(cx: &mut Ctx, budget: &Budget) -> super::mysql::MysqlTuning {
    let extra = if budget.cap.app_role_superuser { budget.cap.superuser_extra_connections } else { 0 };
    let max = budget.cap.max_connections;
    let t = match cx.input.pg_host.memory_bytes {
        Some(m) => super::mysql::tune(m, max, extra),
        None => {
            let mut m = pgtune::DEFAULT_HOST.memory_bytes;
            let mut t = super::mysql::tune(m, max, extra);
            while !t.fits && m < pgtune::MAX_MEMORY_BYTES {
                m *= 2;
                t = super::mysql::tune(m, max, extra);
            }
            cx.notes.push(format!(
                "MySQL host assumed: {} GiB (the smallest power of two from 4 GiB that holds {} connections and the \
                 buffer pool) — pass --db-memory to tune for yours.",
                m >> 30,
                t.connections
            ));
            t
        }
    };
    if !t.fits {
        cx.notes.push(format!(
            "WARNING: {} MySQL connections × {} KiB leave no buffer pool in {} GiB: a larger host, or fewer connections.",
            t.connections,
            t.per_connection_bytes >> 10,
            t.host_memory_bytes >> 30
        ));
    }
    for (key, value) in t.env() {
        cx.rec.note(&key, value, t.reasoning.join("; "), "docs/model.md §11");
    }
    t
}

const GIB_F: f64 = (1u64 << 30) as f64;

fn human_mib(bytes: u64) -> String {
    format!("{} MiB", bytes.div_ceil(1 << 20))
}
/// Above this many cores a single compose host is unusual (assumption).
const COMPOSE_HOST_CORES_WARN: f64 = 64.0;

/// Ways out of a fixed cap that is too small, each measured by planning again.
fn shortfall(input: &PlanInput, plan: &Plan) -> Shortfall {
    let b = &plan.budget;
    let missing = b.demand.saturating_sub(b.usable);
    let a = &input.assumptions;
    let needed = budget::choose_max_connections(
        b.demand,
        input.app_role_superuser,
        a.superuser_reserved_connections,
        a.reserved_connections,
        1,
    );
    let fits = |qps: f64| plan_core(&PlanInput { qps, ..input.clone() }).budget.fits;
    // Binary search on a log scale: demand grows with QPS (a property the tests hold).
    let max_qps_at_cap = if fits(0.01) {
        let (mut lo, mut hi) = (0.01f64, input.qps);
        for _ in 0..40 {
            let mid = (lo * hi).sqrt();
            if fits(mid) { lo = mid } else { hi = mid }
        }
        Some(round_down_2sig(lo))
    } else {
        None
    };
    let mut ways = Vec::new();
    if needed > pgtune::PG_MAX_CONNECTIONS_LIMIT {
        ways.push(WayOut {
            action: format!(
                "split the deployment: one PostgreSQL server takes at most {} connections and this plan needs {needed}",
                pgtune::PG_MAX_CONNECTIONS_LIMIT
            ),
            saves: 0,
            enough: true,
        });
    } else {
        ways.push(WayOut {
            action: format!("a larger database: max_connections ≥ {needed}"), saves: 0, enough: true
        });
    }
    let try_variant = |action: String, variant: PlanInput| {
        let other = plan_core(&variant);
        let saves = b.demand.saturating_sub(other.budget.demand);
        (saves > 0).then_some(WayOut { action, saves, enough: other.budget.demand <= b.usable })
    };
    if let Some(plugin) = plan.components.iter().find(|c| c.component == Component::PluginDaemon) {
        let line = plugin.worst_total;
        let pooled = plugin.per_process_max;
        if line > pooled {
            ways.push(WayOut {
                action: format!(
                    "PgBouncer in front of the plugin daemon (DB_TYPE=pgbouncer): its {line} worst-case \
                    connections become one pool of about {pooled}"
                ),
                saves: line - pooled,
                enough: b.demand - (line - pooled) <= b.usable,
            });
        }
    }
    if input.profile.chat_share > 0.0 {
        let mut profile = input.profile.clone();
        profile.chat_share = 0.0;
        ways.extend(try_variant(
            "a smaller overflow, if the deployment serves workflow apps only: --chat-share 0 (api \
            pools need greenlets + 1 instead of 2 ×)"
                .into(),
            PlanInput { profile, ..input.clone() },
        ));
    }
    if input.target == Target::Kubernetes {
        let assumptions = Assumptions { hpa_max_factor: Some(1.0), max_surge: 0.0, ..a.clone() };
        ways.extend(try_variant(
            "no autoscaling headroom and maxSurge 0 (maxUnavailable instead): --assume \
            hpa_max_factor=1 --assume max_surge=0"
                .into(),
            PlanInput { assumptions, ..input.clone() },
        ));
        let assumptions = Assumptions { api_processes_per_pod: a.api_processes_per_pod * 2, ..a.clone() };
        ways.extend(try_variant(
            format!("fewer, larger api pods: --assume api_processes_per_pod={}", a.api_processes_per_pod * 2),
            PlanInput { assumptions, ..input.clone() },
        ));
    }
    if input.pooler.is_none() {
        ways.extend(try_variant(
            "PgBouncer in front of the api and worker, its server pool at the safety bound: --pooler pgbouncer".into(),
            PlanInput { pooler: super::pooler::Pooler::Pgbouncer, ..input.clone() },
        ));
    }
    if input.collaboration && input.dify_version.has_api_websocket() {
        ways.extend(try_variant(
            "turn off the collaboration profile (api_websocket): --no-collaboration".into(),
            PlanInput { collaboration: false, ..input.clone() },
        ));
    }
    if let Some(q) = max_qps_at_cap {
        ways.push(WayOut {
            action: format!("a lower target: this cap holds at most {q} QPS of this profile"),
            saves: 0,
            enough: true,
        });
    }
    Shortfall { missing, needed_max_connections: needed, max_qps_at_cap, ways_out: ways }
}

/// Round down to two significant digits, so "at most" stays true, and print cleanly (3.9, not
/// 3.9000000000000004): the digits are formatted, then read back.
pub(super) fn round_down_2sig(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 0.0;
    }
    let exponent = v.log10().floor() as i32 - 1;
    let mag = 10f64.powi(exponent);
    let rounded = (v / mag).floor() * mag;
    let decimals = (-exponent).max(0) as usize;
    format!("{rounded:.decimals$}").parse().unwrap_or(rounded)
}
