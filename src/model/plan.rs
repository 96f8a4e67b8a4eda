//! The sizing model: from a target QPS and a workload profile to every knob of a Dify
//! deployment, with the connection budget that proves it fits (issue #2, DOMAIN.md §2, §5, §8).

use super::assumptions::{Assumptions, Edition, EditionRules, Target};
use super::budget::{self, Budget, BudgetLine, Cap, Reserve};
use super::pgtune::{self, MemoryCheck, PgHost, Storage, Timeouts, Tuning};
use super::profile::Profile;
use super::queueing::poisson_quantile;
use super::storage::{self, LogPlan, LogStore, RedisPlan};
use crate::dify::{Component, DifyVersion, rules};
use serde::Serialize;

/// The version of the JSON document `size --format json` prints. Bump on any breaking change.
pub const SCHEMA_VERSION: u32 = 1;

/// Above this the model's inputs leave the range anything here was calibrated on.
pub const MAX_QPS: f64 = 1_000_000.0;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PlanInput {
    pub qps: f64,
    pub profile: Profile,
    pub target: Target,
    pub edition: Edition,
    pub dify_version: DifyVersion,
    /// api_websocket runs (compose profile `collaboration`, on by default in 1.16.1).
    pub collaboration: bool,
    /// The application's database role is a superuser (Dify's default `postgres` is).
    pub app_role_superuser: bool,
    /// A fixed `max_connections`, as managed databases impose; `None` lets difyplan choose.
    pub pg_max_connections: Option<u64>,
    /// The database host as far as the user described it (`--pg-memory`, `--pg-cpus`, ...).
    pub pg_host: PgHostSpec,
    /// Where workflow logs are written (DOMAIN.md §6).
    pub workflow_log_store: LogStore,
    /// Days workflow logs are kept; `None`: for ever (Dify's default).
    pub retention_days: Option<u32>,
    pub assumptions: Assumptions,
}

/// The database host as given; what is missing difyplan chooses and says so.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PgHostSpec {
    pub memory_bytes: Option<u64>,
    pub cpus: Option<u32>,
    pub storage: Storage,
    pub pg_version: u32,
}

impl Default for PgHostSpec {
    fn default() -> Self {
        PgHostSpec {
            memory_bytes: None,
            cpus: None,
            storage: pgtune::DEFAULT_HOST.storage,
            pg_version: pgtune::DEFAULT_HOST.pg_version,
        }
    }
}

/// The whole plan: plain data that every output format reads.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Plan {
    pub schema_version: u32,
    pub input: PlanInput,
    pub edition_rules: EditionRules,
    pub components: Vec<ComponentPlan>,
    pub database: DatabasePlan,
    pub budget: Budget,
    pub efficiency: Efficiency,
    /// Workflow-log volume, where it lives and what PostgreSQL disk it needs.
    pub logs: LogPlan,
    pub redis: RedisPlan,
    /// Present when a fixed cap cannot hold the plan.
    pub shortfall: Option<Shortfall>,
    pub notes: Vec<String>,
    /// Every value with the formula and the numbers that produced it (`--explain`).
    pub derivations: Vec<Derivation>,
}

/// One component's sizing.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ComponentPlan {
    pub component: Component,
    /// Replicas at the target QPS (the HPA minimum on Kubernetes).
    pub replicas: u64,
    /// The most replicas that may run (HPA maximum; = replicas on compose).
    pub max_replicas: u64,
    /// Extra pods during a rolling update (`maxSurge`; 0 on compose, which recreates).
    pub surge: u64,
    /// Processes with their own pool per pod (`SERVER_WORKER_AMOUNT` for api).
    pub processes_per_pod: u64,
    /// Greenlets per process (`SERVER_WORKER_CONNECTIONS`) or Celery `-c`; `None` where it does not apply.
    pub slots_per_process: Option<u64>,
    /// `SQLALCHEMY_POOL_SIZE` (plugin daemon: `DB_MAX_IDLE_CONNS`).
    pub pool_size: u64,
    /// `SQLALCHEMY_MAX_OVERFLOW` (plugin daemon: `DB_MAX_OPEN_CONNS − DB_MAX_IDLE_CONNS`).
    pub max_overflow: u64,
    /// Connections one process may open.
    pub per_process_max: u64,
    pub worst_per_pod: u64,
    /// `(max_replicas + surge) × worst_per_pod`.
    pub worst_total: u64,
    /// Connections in use on average at the target QPS (Little's law).
    pub mean_connections: f64,
    /// A shared pool for the same admitted work would need this many; the difference is the
    /// price of one pool per process (DOMAIN.md §5).
    pub shared_pool_equivalent: Option<u64>,
    pub cpu_per_pod: f64,
    pub memory_mib_per_pod: u64,
}

/// The database server.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DatabasePlan {
    pub max_connections: u64,
    /// difyplan chose `max_connections` (no fixed cap was given).
    pub max_connections_chosen: bool,
    /// PostgreSQL cores: λ × CPU ms ÷ target utilisation.
    pub cores: u64,
    /// About cores × 2 queries can usefully run at once (DOMAIN.md §5, HikariCP).
    pub useful_active_connections: u64,
    /// The host the settings are tuned for.
    pub host: PgHost,
    /// Which parts of the host difyplan chose (the user gave no `--pg-memory` / `--pg-cpus`).
    pub host_memory_chosen: bool,
    pub host_cpus_chosen: bool,
    /// PGTune's "web" settings for the host and `max_connections` (DOMAIN.md §5).
    pub tuning: Tuning,
    /// Whether `max_connections` backends fit the host's memory.
    pub memory: MemoryCheck,
    pub timeouts: Timeouts,
    /// The Dify `.env` keys for the database service, in `.env.example` order.
    pub env: Vec<(String, String)>,
    /// Every server setting, for people who run their own PostgreSQL (`postgres -c` names).
    pub server_settings: Vec<(String, String)>,
}

/// Dify's `GUNICORN_TIMEOUT` (`.env.example` of both versions): the longest a request runs.
const GUNICORN_TIMEOUT_S: u64 = 360;

/// Tune the database for `max_connections`. Without `--pg-memory` the memory is the smallest
/// power of two GiB, from Dify's 4 GiB minimum, that holds the backends (PGTune's memory check);
/// without `--pg-cpus` the cores are the plan's PostgreSQL cores, at least PGTune's default 2.
fn database(
    spec: &PgHostSpec,
    max_connections: u64,
    cores: u64,
    request_seconds: f64,
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
            && !pgtune::memory_check(&host, &pgtune::tune(&host, max_connections)).fits
        {
            host.memory_bytes *= 2;
        }
    }
    let tuning = pgtune::tune(&host, max_connections);
    let memory = pgtune::memory_check(&host, &tuning);
    let gib = host.memory_bytes as f64 / (1u64 << 30) as f64;
    if spec.memory_bytes.is_none() || spec.cpus.is_none() {
        notes.push(format!(
            "PostgreSQL host assumed: {gib:.0} GiB{}, {} CPUs{}, {} storage, PostgreSQL {} — pass --pg-memory and --pg-cpus to tune for yours.",
            if spec.memory_bytes.is_none() { " (the smallest power of two from 4 GiB that holds max_connections backends)" } else { "" },
            host.cpus,
            if spec.cpus.is_none() { " (the plan's database cores)" } else { "" },
            host.storage,
            host.pg_version
        ));
    }
    if !memory.fits {
        notes.push(format!(
            "WARNING: {} backends do not fit {gib:.0} GiB: the largest safe max_connections is {}. {}",
            max_connections, memory.largest_safe_max_connections, memory.remedy
        ));
    }
    notes.extend(tuning.warnings.iter().cloned());
    let timeouts = pgtune::timeouts(request_seconds, GUNICORN_TIMEOUT_S);
    (host, spec.memory_bytes.is_none(), spec.cpus.is_none(), tuning, memory, timeouts)
}

/// How close the plan is to the physical minimum.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Efficiency {
    pub worst_case_connections: u64,
    pub mean_connections_in_use: f64,
    /// worst ÷ mean: 1 would be a plan with no safety margin at all.
    pub ratio: f64,
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

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Derivation {
    pub name: String,
    pub value: String,
    pub formula: String,
    pub source: String,
}

/// A bad request to the model (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// Validate the target QPS with a message that says what to do.
pub fn check_qps(qps: f64) -> Result<(), InputError> {
    if qps.is_nan() || qps.is_infinite() {
        return Err(InputError(format!(
            "--qps {qps} is not a number of requests per second — pass a positive number such as 500"
        )));
    }
    if qps <= 0.0 {
        return Err(InputError(format!(
            "--qps {qps}: the target must be above 0 requests per second — pass for example --qps 10"
        )));
    }
    if qps > MAX_QPS {
        return Err(InputError(format!(
            "--qps {qps} is above {MAX_QPS:.0}, beyond anything the model was calibrated on — plan per cluster or region, each below 1,000,000"
        )));
    }
    Ok(())
}

struct Recorder {
    steps: Vec<Derivation>,
}

impl Recorder {
    fn note(&mut self, name: &str, value: impl ToString, formula: String, source: &str) {
        self.steps.push(Derivation { name: name.into(), value: value.to_string(), formula, source: source.into() });
    }
}

/// Sizing of a pool of gevent processes (api greenlets or a Celery gevent worker's `-c`).
struct Gevent {
    in_flight_mean: f64,
    in_flight_quantile: u64,
    /// Mean in flight in one process running at the CPU target.
    saturated_in_flight: f64,
    cpu_cores: f64,
    processes_by_cpu: u64,
    slots: u64,
    processes: u64,
}

/// Little's law for the mean, the Poisson quantile for the slots, CPU for the processes.
///
/// Slots per process cover the quantile of what one process holds when it runs at the CPU
/// target, so they depend on the profile, not on the QPS; processes then cover both the CPU
/// and the in-flight quantile. Neither shrinks when the QPS grows.
///
/// `min_processes` (the edition's minimum replicas, one process each at least) always run, so
/// the quantile is shared among at least that many processes.
fn size_gevent(
    in_flight_mean: f64,
    cpu_cores: f64,
    cpu_target: f64,
    a: &Assumptions,
    floor_slots: u64,
    min_processes: u64,
) -> Gevent {
    let in_flight_quantile = poisson_quantile(in_flight_mean, a.quantile);
    let saturated_in_flight = if cpu_cores > 0.0 { in_flight_mean * cpu_target / cpu_cores } else { f64::INFINITY };
    let slots_by_saturation =
        if saturated_in_flight.is_finite() { poisson_quantile(saturated_in_flight, a.quantile) } else { u64::MAX };
    let shared = in_flight_quantile.div_ceil(min_processes.max(1));
    let slots = slots_by_saturation.min(shared).min(a.slots_per_process_max).max(floor_slots).max(1);
    let processes_by_cpu = (cpu_cores / cpu_target).ceil() as u64;
    let processes = processes_by_cpu.max(in_flight_quantile.div_ceil(slots)).max(min_processes).max(1);
    Gevent { in_flight_mean, in_flight_quantile, saturated_in_flight, cpu_cores, processes_by_cpu, slots, processes }
}

/// Replicas and processes per pod (compose: per container) for `processes` gevent processes:
/// pods are filled up to `per_pod_max`, then more are added, so no per-pod value shrinks as the
/// load grows.
fn split_into_pods(processes: u64, min_replicas: u64, per_pod_max: u64) -> (u64, u64) {
    let per_pod = per_pod_max.min(processes.div_ceil(min_replicas)).max(1);
    (min_replicas.max(processes.div_ceil(per_pod)), per_pod)
}

/// The most api processes in one pod (Kubernetes) or container (compose).
fn api_processes_cap(target: Target, a: &Assumptions) -> u64 {
    match target {
        Target::Compose => a.compose_api_processes_per_container,
        Target::Kubernetes => a.api_processes_per_pod,
    }
}

/// HPA maximum and surge for a scalable component.
fn scaling(replicas: u64, target: Target, hpa_factor: f64, a: &Assumptions) -> (u64, u64) {
    match target {
        Target::Compose => (replicas, 0),
        Target::Kubernetes => {
            let max = ((replicas as f64 * hpa_factor).ceil() as u64).max(replicas);
            (max, (max as f64 * a.max_surge).ceil() as u64)
        }
    }
}

/// Plan a deployment. Never fails for valid input: an infeasible fixed cap is reported in
/// `shortfall` and `budget.fits`.
pub fn plan(input: &PlanInput) -> Result<Plan, InputError> {
    check_qps(input.qps)?;
    input.profile.validate().map_err(InputError)?;
    input.assumptions.validate().map_err(InputError)?;
    if input.workflow_log_store == LogStore::Logstore && input.dify_version < DifyVersion::V1_16 {
        return Err(InputError(format!(
            "--workflow-log-store logstore: Dify {} has no log-store repositories — use Dify 1.16 or later, or --workflow-log-store celery",
            input.dify_version
        )));
    }
    if let Some(m) = input.pg_host.memory_bytes {
        PgHost {
            memory_bytes: m,
            cpus: input.pg_host.cpus.unwrap_or(2),
            storage: input.pg_host.storage,
            pg_version: input.pg_host.pg_version,
        }
        .validate()
        .map_err(InputError)?;
    }
    let mut plan = plan_core(input);
    if !plan.budget.fits {
        plan.shortfall = Some(shortfall(input, &plan));
    }
    Ok(plan)
}

fn plan_core(input: &PlanInput) -> Plan {
    let p = &input.profile;
    let a = &input.assumptions;
    let rules = input.edition.rules();
    let cpu_target = a.cpu_target.unwrap_or(rules.cpu_target);
    let hpa_factor = a.hpa_max_factor.unwrap_or(rules.hpa_max_factor);
    let lambda = input.qps;
    let mut rec = Recorder { steps: Vec::new() };
    let mut notes = Vec::new();
    let mut components = Vec::new();

    // ---- api -------------------------------------------------------------------------------
    let api_cpu_ms = p.api_cpu_ms();
    let api =
        size_gevent(lambda * p.request_seconds, lambda * api_cpu_ms / 1000.0, cpu_target, a, 1, rules.min_replicas);
    rec.note(
        "api.in_flight_mean",
        fmt1(api.in_flight_mean),
        format!("λ × W = {lambda} × {} s", p.request_seconds),
        "Little's law, DOMAIN.md §5",
    );
    rec.note(
        "api.in_flight_quantile",
        api.in_flight_quantile,
        format!("Poisson({:.1}) quantile {}", api.in_flight_mean, a.quantile),
        "DOMAIN.md §5; quantile is an assumption (--assume quantile=)",
    );
    rec.note(
        "api.cpu_cores",
        fmt2(api.cpu_cores),
        format!(
            "λ × CPU = {lambda} × {api_cpu_ms:.1} ms (blocking {} ms × {:.2} + streaming {} ms × {:.2})",
            p.api_cpu_ms_blocking,
            p.blocking_share(),
            p.api_cpu_ms_streaming,
            p.streaming_share
        ),
        "profile, DOMAIN.md §8",
    );
    rec.note(
        "api.processes_by_cpu",
        api.processes_by_cpu,
        format!("ceil({:.2} cores ÷ {cpu_target} target) — one gevent process per core", api.cpu_cores),
        "DOMAIN.md §5; target from the edition",
    );
    rec.note("SERVER_WORKER_CONNECTIONS", api.slots, format!("min(Poisson({:.1}) q{} = in flight in one process at the CPU target, in-flight quantile {} ÷ {} minimum processes, {} max)", api.saturated_in_flight.min(1e12), a.quantile, api.in_flight_quantile, rules.min_replicas, a.slots_per_process_max), "issue #2: slots cover a high quantile");
    let (api_replicas, api_per_pod) =
        split_into_pods(api.processes, rules.min_replicas, api_processes_cap(input.target, a));
    rec.note(
        "api.processes",
        api.processes,
        format!("max({} by CPU, ceil({} ÷ {} slots))", api.processes_by_cpu, api.in_flight_quantile, api.slots),
        "",
    );
    rec.note(
        "api.replicas × SERVER_WORKER_AMOUNT",
        format!("{api_replicas} × {api_per_pod}"),
        match input.target {
            Target::Compose => format!(
                "{} replicas (edition minimum) × ceil({} ÷ {})",
                rules.min_replicas, api.processes, rules.min_replicas
            ),
            Target::Kubernetes => format!(
                "pods of at most {} processes, at least {} replicas",
                a.api_processes_per_pod, rules.min_replicas
            ),
        },
        "edition; --assume api_processes_per_pod=",
    );
    // Pool: the measured deadlock bound per process against the greenlets it admits.
    let peak = p.connections_peak.ceil() as u64;
    // The measured pool rule for `admitted` requests: 2 × for chat apps, the deadlock bound otherwise.
    let pool_for = |admitted: u64| {
        if p.chat_share > 0.0 {
            rules::chat_pool(admitted, a.chat_pool_factor)
        } else {
            rules::deadlock_free_pool(admitted, peak)
        }
    };
    let api_max = pool_for(api.slots);
    // With the workflow logs off the request path (Celery repositories or a log store) the run's
    // records are no longer written through a second session at its start and end: a blocking
    // request holds its one session (the view's, DOMAIN.md §8) and nothing more. An assumption:
    // the measured excess over one connection (1.06–1.17) is those writes. The peak, and so the
    // pool bound, is left as measured.
    let connections_mean = if input.workflow_log_store == LogStore::Postgres {
        p.connections_mean
    } else {
        1.0f64.min(p.connections_mean)
    };
    if connections_mean < p.connections_mean {
        rec.note(
            "connections per blocking request",
            connections_mean,
            format!(
                "{} → {connections_mean} with the workflow logs off the request path (--workflow-log-store {:?})",
                p.connections_mean, input.workflow_log_store
            )
            .to_lowercase(),
            "assumption from DOMAIN.md §6, §8: the excess over one session is the run's record writes",
        );
    }
    let api_hold = p.blocking_share() * connections_mean
        + p.streaming_share * (a.streaming_start_hold_seconds / p.request_seconds).min(1.0);
    let api_pool = usual_pool(api.saturated_in_flight, api_hold, api_max);
    rec.note(
        "api pool (SQLALCHEMY_POOL_SIZE + SQLALCHEMY_MAX_OVERFLOW)",
        api_max,
        if p.chat_share > 0.0 {
            format!(
                "{} × {} greenlets: chat apps need about 2 × admitted requests (chat share {})",
                a.chat_pool_factor, api.slots, p.chat_share
            )
        } else {
            format!(
                "{} greenlets × ({} peak − 1) + 1: the pool-deadlock bound, enough for workflow apps",
                api.slots, p.connections_peak
            )
        },
        "measured, DOMAIN.md §8",
    );
    rec.note(
        "SQLALCHEMY_POOL_SIZE",
        api_pool,
        format!(
            "min(ceil({:.2} in flight in a process at the CPU target × {:.3} connections held each), {api_max})",
            api.saturated_in_flight.min(1e12),
            api_hold
        ),
        "DOMAIN.md §8: ≈1.1 per blocking request, streaming holds one for 0.7 s",
    );
    let api_mean = lambda
        * (p.blocking_share() * p.request_seconds * connections_mean
            + p.streaming_share * a.streaming_start_hold_seconds.min(p.request_seconds));
    let api_shared = pool_for(api.in_flight_quantile);
    let (api_hpa, api_surge) = scaling(api_replicas, input.target, hpa_factor, a);
    components.push(component(
        Component::Api,
        api_replicas,
        api_hpa,
        api_surge,
        api_per_pod,
        Some(api.slots),
        api_pool,
        api_max,
        api_mean,
        Some(api_shared),
        api_per_pod as f64,
        api_per_pod * a.process_memory_mib,
    ));

    // ---- api_websocket ---------------------------------------------------------------------
    if input.dify_version.has_api_websocket() && input.collaboration {
        let replicas = rules.min_replicas;
        let (max, surge) = match input.target {
            Target::Compose => (replicas, 0),
            // Websocket sessions are long-lived: no HPA, but a rolling update still surges.
            Target::Kubernetes => (replicas, (replicas as f64 * a.max_surge).ceil() as u64),
        };
        let (ps, po) = (a.websocket_pool_size, a.websocket_max_overflow);
        rec.note(
            "api_websocket pool",
            ps + po,
            format!("{ps} + {po}, a per-service override: its use was not measured"),
            "assumption (--assume websocket_pool_size=, websocket_max_overflow=)",
        );
        components.push(component(
            Component::ApiWebsocket,
            replicas,
            max,
            surge,
            crate::dify::defaults::API_WEBSOCKET_WORKER_AMOUNT,
            Some(crate::dify::defaults::API_WEBSOCKET_WORKER_CONNECTIONS),
            ps.min(ps + po).max(1),
            ps + po,
            replicas as f64,
            None,
            1.0,
            a.process_memory_mib,
        ));
    }

    // ---- worker (Celery, gevent pool) -------------------------------------------------------
    let stream_rate = lambda * p.streaming_share;
    let task_rate = lambda * p.celery_tasks;
    let stream_in_flight = stream_rate * p.request_seconds;
    let task_in_flight = task_rate * p.celery_task_seconds;
    let worker_cpu = (stream_rate * p.worker_cpu_ms_streaming + task_rate * p.celery_task_cpu_ms) / 1000.0;
    let worker = size_gevent(
        stream_in_flight + task_in_flight,
        worker_cpu,
        cpu_target,
        a,
        WORKER_CONCURRENCY_FLOOR,
        rules.min_replicas,
    );
    rec.note(
        "worker.in_flight_mean",
        fmt1(worker.in_flight_mean),
        format!(
            "streaming runs {stream_rate:.1}/s × {} s + tasks {task_rate:.1}/s × {} s",
            p.request_seconds, p.celery_task_seconds
        ),
        "Little's law; streaming runs execute in the worker, DOMAIN.md §8",
    );
    rec.note("CELERY_WORKER_AMOUNT", worker.slots, format!("max({WORKER_CONCURRENCY_FLOOR}, min(Poisson({:.1}) q{} in one worker at the CPU target, in-flight quantile {}))", worker.saturated_in_flight.min(1e12), a.quantile, worker.in_flight_quantile), "DOMAIN.md §8: -c is the runs executing at once; floor: Dify 1.16.1 .env.example (4)");
    let worker_replicas = worker.processes.max(rules.min_replicas);
    rec.note(
        "worker.replicas",
        worker_replicas,
        format!(
            "max({} by CPU ({:.2} cores ÷ {cpu_target}), ceil({} ÷ {}), {} edition minimum)",
            worker.processes_by_cpu, worker.cpu_cores, worker.in_flight_quantile, worker.slots, rules.min_replicas
        ),
        "one gevent process per worker, one core",
    );
    // Shares of the worker's work in flight, from the profile alone (per request), so they do not
    // wobble with the QPS through floating-point noise.
    let per_request = p.streaming_share * p.request_seconds + p.celery_tasks * p.celery_task_seconds;
    let share = |x: f64| if per_request > 0.0 { x / per_request } else { 0.0 };
    let chat_stream = share(p.streaming_share * p.request_seconds * p.chat_share);
    let wf_stream = share(p.streaming_share * p.request_seconds * (1.0 - p.chat_share));
    let tasks = share(p.celery_tasks * p.celery_task_seconds);
    let need_per_slot = if per_request > 0.0 {
        chat_stream * (1.0 + a.worker_chat_headroom) + wf_stream * a.worker_workflow_connections_per_run + tasks
    } else {
        1.0
    };
    let worker_max = ceil_clean(worker.slots as f64 * need_per_slot).max(2);
    let worker_mean = stream_in_flight * p.chat_share * connections_mean
        + stream_in_flight * (1.0 - p.chat_share) * a.worker_workflow_connections_per_run
        + task_in_flight;
    let worker_pool = usual_pool(worker.saturated_in_flight, need_per_slot, worker_max);
    rec.note("worker pool (per process)", worker_max, format!("ceil({} × ({chat_stream:.2} chat runs × {} + {wf_stream:.2} workflow runs × {} + {tasks:.2} tasks × 1)), at least 2", worker.slots, 1.0 + a.worker_chat_headroom, a.worker_workflow_connections_per_run), "DOMAIN.md §8: a chat run holds a connection throughout; a workflow run only for moments");
    let (worker_hpa, worker_surge) = scaling(worker_replicas, input.target, hpa_factor, a);
    components.push(component(
        Component::Worker,
        worker_replicas,
        worker_hpa,
        worker_surge,
        1,
        Some(worker.slots),
        worker_pool,
        worker_max,
        worker_mean,
        None,
        1.0,
        a.process_memory_mib,
    ));
    if p.streaming_share > 0.0 && p.chat_share > 0.0 {
        notes.push("The Celery worker under gevent may ignore SQLALCHEMY_POOL_SIZE (Dify issue #30536, open): watch its connections after a deploy.".into());
    }

    // ---- worker_beat -----------------------------------------------------------------------
    let (bp, bo) = (a.beat_pool_size, a.beat_max_overflow);
    rec.note(
        "worker_beat pool",
        bp + bo,
        format!("{bp} + {bo} as a per-service override; compose would otherwise give beat the api's pool"),
        "DOMAIN.md §2: beat holds about 1",
    );
    let beat_surge = if input.target == Target::Kubernetes { a.beat_surge } else { 0 };
    components.push(component(
        Component::WorkerBeat,
        1,
        1,
        beat_surge,
        1,
        None,
        bp.max(1),
        (bp + bo).max(1),
        1.0,
        None,
        BEAT_CPU,
        BEAT_MEMORY_MIB,
    ));

    // ---- plugin_daemon ---------------------------------------------------------------------
    let plugin_cores = lambda * p.plugin_cpu_ms / 1000.0;
    let plugin_in_flight = lambda * p.plugin_db_ms / 1000.0;
    let per_replica_cores = a.plugin_cores_per_replica * cpu_target;
    let (plugin_replicas, plugin_cpu_per_pod) = match input.target {
        // The daemon publishes its debugging port on the host, so compose runs exactly one.
        Target::Compose => (1, a.plugin_cores_per_replica.max((plugin_cores / cpu_target).ceil())),
        Target::Kubernetes => {
            (((plugin_cores / per_replica_cores).ceil() as u64).max(rules.min_replicas), a.plugin_cores_per_replica)
        }
    };
    let plugin_busy = match input.target {
        Target::Compose => plugin_in_flight,
        Target::Kubernetes if plugin_cores > 0.0 => {
            plugin_in_flight.min(plugin_in_flight * per_replica_cores / plugin_cores)
        }
        Target::Kubernetes => plugin_in_flight,
    };
    let plugin_open = (poisson_quantile(plugin_busy, a.quantile) + 1).max(a.plugin_open_conns_floor);
    let plugin_idle = (plugin_busy.ceil() as u64).clamp(1, plugin_open);
    rec.note(
        "plugin_daemon.replicas",
        plugin_replicas,
        format!(
            "max(ceil({plugin_cores:.2} cores ÷ ({} cores × {cpu_target})), {} edition minimum); compose runs one",
            a.plugin_cores_per_replica, rules.min_replicas
        ),
        "DOMAIN.md §4: about 30 QPS per 2-core instance",
    );
    rec.note(
        "DB_MAX_OPEN_CONNS",
        plugin_open,
        format!(
            "max({}, Poisson({plugin_busy:.2}) q{} + 1) per replica, instead of the default 30",
            a.plugin_open_conns_floor, a.quantile
        ),
        "profile plugin_db_ms; floor is an assumption",
    );
    let (plugin_hpa, plugin_surge) = scaling(plugin_replicas, input.target, hpa_factor, a);
    components.push(component(
        Component::PluginDaemon,
        plugin_replicas,
        plugin_hpa,
        plugin_surge,
        1,
        None,
        plugin_idle,
        plugin_open,
        plugin_in_flight,
        None,
        plugin_cpu_per_pod,
        a.plugin_memory_mib,
    ));

    if input.target == Target::Compose {
        let cores: f64 = components.iter().map(|c| c.cpu_per_pod * c.replicas as f64).sum();
        if cores > COMPOSE_HOST_CORES_WARN {
            notes.push(format!("The plan needs about {cores:.0} cores, more than one compose host usually has: consider --target kubernetes."));
        }
    }

    // ---- budget ----------------------------------------------------------------------------
    let lines: Vec<BudgetLine> = components
        .iter()
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
                "{starting} containers may start at once and run `flask upgrade-db` ({} connections each, DOMAIN.md §2)",
                a.migration_connections
            ),
        },
        Reserve {
            name: "admin".into(),
            connections: a.admin_reserve,
            why: "monitoring, backups and an operator's psql (assumption, --assume admin_reserve=)".into(),
        },
    ];
    let demand: u64 = lines.iter().map(|l| l.connections).chain(reserves.iter().map(|r| r.connections)).sum();
    let (max_connections, chosen) = match input.pg_max_connections {
        Some(cap) => (cap, false),
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
    };
    let budget = Budget::new(lines, reserves, cap);
    rec.note(
        "demand",
        budget.demand,
        "Σ (max replicas + surge) × processes × per-process maximum + reserves".into(),
        "DOMAIN.md §2",
    );
    rec.note(
        "POSTGRES_MAX_CONNECTIONS",
        max_connections,
        if chosen {
            format!(
                "demand {} + {} slots withheld from a non-superuser, rounded up to a multiple of {}",
                budget.demand,
                if input.app_role_superuser { 0 } else { a.superuser_reserved_connections + a.reserved_connections },
                a.max_connections_step
            )
        } else {
            "fixed by --pg-max-connections".into()
        },
        "issue #2",
    );

    let logs = storage::logs(lambda, p, input.workflow_log_store, input.retention_days);
    let pg_cpu_ms = p.pg_cpu_ms - logs.pg_cpu_ms_saved;
    let pg_cores = ((lambda * pg_cpu_ms / 1000.0) / a.pg_cpu_target).ceil().max(1.0) as u64;
    rec.note(
        "database.cores",
        pg_cores,
        format!(
            "ceil({lambda} × {pg_cpu_ms} ms ÷ {}){}",
            a.pg_cpu_target,
            if logs.pg_cpu_ms_saved > 0.0 {
                format!(
                    " — {:.1} ms per request less with the logs in the log store ({} → {pg_cpu_ms} ms)",
                    logs.pg_cpu_ms_saved, p.pg_cpu_ms
                )
            } else {
                String::new()
            }
        ),
        "DOMAIN.md §8: 11–35 ms per request; target is an assumption",
    );
    rec.note(
        "workflow logs in PostgreSQL",
        format!("{:.0} GiB", logs.pg_disk_bytes / (1u64 << 30) as f64),
        logs.reasoning.join("; "),
        "DOMAIN.md §6, §8",
    );
    if logs.recommend_log_store {
        notes.push(format!(
            "Workflow logs would keep {:.0} GiB in PostgreSQL ({:.0} GiB of disk {}): move them to a log store (--workflow-log-store logstore).",
            logs.retained_bytes / (1u64 << 30) as f64,
            logs.pg_disk_bytes / (1u64 << 30) as f64,
            logs.retention_days.map_or("a year".to_string(), |d| format!("for {d} days"))
        ));
    }
    let redis = storage::redis(lambda, p, stream_rate * p.request_seconds, input.edition);
    rec.note("redis", format!("{:?}", redis.topology).to_lowercase(), redis.reasoning.join("; "), "DOMAIN.md §1, §3");
    let (host, host_memory_chosen, host_cpus_chosen, tuning, memory, timeouts) =
        database(&input.pg_host, max_connections, pg_cores, p.request_seconds, &mut notes);
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
    // 1.9.x's compose passes no timeouts to PostgreSQL: they go on the server's command line.
    if input.dify_version < DifyVersion::V1_16 {
        env.truncate(5);
    }
    // PGTune's list starts with max_connections, tuned for the plan's.
    let mut server_settings: Vec<(String, String)> =
        tuning.settings().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    server_settings.push(("statement_timeout".into(), timeouts.statement_ms.to_string()));
    server_settings.push(("idle_in_transaction_session_timeout".into(), timeouts.idle_in_transaction_ms.to_string()));
    rec.note(
        "POSTGRES_SHARED_BUFFERS",
        kb(tuning.shared_buffers_kb),
        format!("RAM / 4 of {} GiB", host.memory_bytes >> 30),
        pgtune::PGTUNE_REVISION,
    );
    rec.note(
        "POSTGRES_WORK_MEM",
        kb(tuning.work_mem_kb),
        format!(
            "(RAM − shared_buffers) ÷ (({max_connections} + {} workers) × 3), at least 4 MB",
            tuning.worker_processes()
        ),
        pgtune::PGTUNE_REVISION,
    );
    rec.note(
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT",
        timeouts.idle_in_transaction_ms,
        timeouts.reasoning.join(" "),
        "DOMAIN.md §1, §8",
    );
    let database = DatabasePlan {
        max_connections,
        max_connections_chosen: chosen,
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

    let mean: f64 = components.iter().map(|c| c.mean_connections).sum();
    let worst = budget.component_demand();
    let efficiency = Efficiency {
        worst_case_connections: worst,
        mean_connections_in_use: round2(mean),
        ratio: round2(worst as f64 / mean.max(1.0)),
    };
    rec.note("efficiency", fmt2(efficiency.ratio), format!("worst case {worst} ÷ mean in use {mean:.1}"), "issue #2");
    if budget.demand as f64 > 20.0 * (pg_cores as f64 * 2.0).max(1.0) {
        notes.push(format!(
            "The worst case ({}) is far above the queries PostgreSQL runs usefully at once (about {}): most connections sit idle or idle in transaction while their requests wait (DOMAIN.md §1). A pooler does not help while sessions stay open for the whole request (DOMAIN.md §5).",
            budget.demand, pg_cores * 2
        ));
    }

    Plan {
        schema_version: SCHEMA_VERSION,
        input: input.clone(),
        edition_rules: EditionRules { cpu_target, hpa_max_factor: hpa_factor, ..rules },
        components,
        database,
        budget,
        efficiency,
        logs,
        redis,
        shortfall: None,
        notes,
        derivations: rec.steps,
    }
}

/// Celery `-c` never below Dify 1.16.1's `.env.example` value (4): the worker also runs
/// indexing, mail and scheduled tasks.
const WORKER_CONCURRENCY_FLOOR: u64 = 4;
/// worker_beat: a scheduler, mostly asleep (assumption).
const BEAT_CPU: f64 = 0.25;
const BEAT_MEMORY_MIB: u64 = 512;
/// Above this many cores a single compose host is unusual (assumption).
const COMPOSE_HOST_CORES_WARN: f64 = 64.0;

/// `SQLALCHEMY_POOL_SIZE`: the connections a process at the CPU target usually holds, so they
/// stay open between bursts; the rest of the maximum is overflow. It depends on the profile,
/// not the QPS, so neither it nor the overflow shrinks as the QPS grows; at low QPS it is the
/// whole maximum.
fn usual_pool(saturated_in_flight: f64, held_each: f64, max: u64) -> u64 {
    if saturated_in_flight.is_finite() { ceil_clean(saturated_in_flight * held_each).clamp(1, max) } else { max }
}

#[allow(clippy::too_many_arguments)]
fn component(
    component: Component,
    replicas: u64,
    max_replicas: u64,
    surge: u64,
    processes_per_pod: u64,
    slots: Option<u64>,
    pool_size: u64,
    per_process_max: u64,
    mean: f64,
    shared: Option<u64>,
    cpu: f64,
    memory: u64,
) -> ComponentPlan {
    let worst_per_pod = processes_per_pod * per_process_max;
    ComponentPlan {
        component,
        replicas,
        max_replicas,
        surge,
        processes_per_pod,
        slots_per_process: slots,
        pool_size: pool_size.min(per_process_max),
        max_overflow: per_process_max - pool_size.min(per_process_max),
        per_process_max,
        worst_per_pod,
        worst_total: (max_replicas + surge) * worst_per_pod,
        mean_connections: round2(mean),
        shared_pool_equivalent: shared,
        cpu_per_pod: round2(cpu),
        memory_mib_per_pod: memory,
    }
}

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
                action: format!("PgBouncer in front of the plugin daemon (DB_TYPE=pgbouncer): its {line} worst-case connections become one pool of about {pooled}"),
                saves: line - pooled,
                enough: b.demand - (line - pooled) <= b.usable,
            });
        }
    }
    if input.profile.chat_share > 0.0 {
        let mut profile = input.profile.clone();
        profile.chat_share = 0.0;
        ways.extend(try_variant("a smaller overflow, if the deployment serves workflow apps only: --chat-share 0 (api pools need greenlets + 1 instead of 2 ×)".into(), PlanInput { profile, ..input.clone() }));
    }
    if input.target == Target::Kubernetes {
        let assumptions = Assumptions { hpa_max_factor: Some(1.0), max_surge: 0.0, ..a.clone() };
        ways.extend(try_variant("no autoscaling headroom and maxSurge 0 (maxUnavailable instead): --assume hpa_max_factor=1 --assume max_surge=0".into(), PlanInput { assumptions, ..input.clone() }));
        let assumptions = Assumptions { api_processes_per_pod: a.api_processes_per_pod * 2, ..a.clone() };
        ways.extend(try_variant(
            format!("fewer, larger api pods: --assume api_processes_per_pod={}", a.api_processes_per_pod * 2),
            PlanInput { assumptions, ..input.clone() },
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

/// `ceil`, forgiving the last bits of floating-point noise (4.000000001 is 4).
fn ceil_clean(v: f64) -> u64 {
    (v - 1e-9).ceil().max(0.0) as u64
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn fmt1(v: f64) -> String {
    format!("{v:.1}")
}

fn fmt2(v: f64) -> String {
    format!("{v:.2}")
}

/// Round down to two significant digits, so "at most" stays true, and print cleanly (3.9, not
/// 3.9000000000000004): the digits are formatted, then read back.
fn round_down_2sig(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 0.0;
    }
    let exponent = v.log10().floor() as i32 - 1;
    let mag = 10f64.powi(exponent);
    let rounded = (v / mag).floor() * mag;
    let decimals = (-exponent).max(0) as usize;
    format!("{rounded:.decimals$}").parse().unwrap_or(rounded)
}
