//! One sizing step per Dify component: the processes and pods it runs, the greenlets or Celery
//! `-c` each process admits, and the pool that keeps it deadlock-free (docs/model.md §10).
//!
//! Every step follows the same safety rule: a pool covers every request or run its process
//! admits that may hold a connection while asking for another, times the checkouts each may
//! nest, + 1. Load beyond what the processes admit waits in a queue that holds no connection:
//! gunicorn's listen backlog (one per pod, shared by its processes) or the Celery broker (one
//! for every worker). Greenlets and `-c` are therefore sized against those shared queues.

use super::assumptions::{Assumptions, EditionRules, Target};
use super::derivation::Recorder;
use super::input::PlanInput;
use super::load::{self, utilisation};
use super::profile::Profile;
use super::queueing::{normal_quantile, poisson_quantile};
use super::units::Millis;
use crate::dify::{Component, defaults, rules};
use serde::Serialize;

/// What every step reads: the request, its profile and assumptions, the edition's rules.
pub(super) struct Ctx<'a> {
    pub input: &'a PlanInput,
    pub p: &'a Profile,
    pub a: &'a Assumptions,
    pub rules: EditionRules,
    pub cpu_target: f64,
    pub hpa_factor: f64,
    pub lambda: f64,
    /// Mean connections of one blocking request (1 when the workflow logs leave the request path).
    pub connections_mean: f64,
    pub rec: Recorder,
    pub notes: Vec<String>,
}

/// Celery `-c` never below Dify 1.16.1's `.env.example` value (4): the worker also runs
/// indexing, mail and scheduled tasks.
pub const WORKER_CONCURRENCY_FLOOR: u64 = 4;
/// worker_beat: a scheduler, mostly asleep (assumption).
const BEAT_CPU: f64 = 0.25;
const BEAT_MEMORY_MIB: u64 = 512;

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
    /// price of one pool per process (docs/model.md §5).
    pub shared_pool_equivalent: Option<u64>,
    pub cpu_per_pod: f64,
    pub memory_mib_per_pod: u64,
}

/// How much load the plan admits before requests queue, per component that queues.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Admission {
    /// Requests (api) or runs and tasks (worker) the processes admit at once.
    pub admitted: u64,
    /// Mean in flight at the target QPS.
    pub mean_in_flight: f64,
    /// admitted ÷ mean in flight: how far the load may rise before work waits in the queue.
    pub factor: f64,
}

impl Admission {
    fn new(admitted: u64, in_flight: f64) -> Admission {
        Admission { admitted, mean_in_flight: round2(in_flight), factor: round2(admitted as f64 / in_flight.max(1e-9)) }
    }
}

/// What the api step computes, before it is explained.
struct ApiSizing {
    cpu_ms: Millis,
    cpu_cores: f64,
    by_cpu: u64,
    processes: u64,
    replicas: u64,
    per_pod: u64,
    greenlets: u64,
    /// Utilisation of one process's core.
    rho: f64,
    /// A streaming request's run in a worker, CPU queueing included.
    run_seconds: f64,
    /// The workers those runs queue on.
    workers: load::Workers,
    w_eff: f64,
    in_flight: f64,
    pod_quantile: u64,
    pools: ApiPools,
}

/// The api's pools, from the safety rule and the wait target of a full process.
struct ApiPools {
    safety: u64,
    wait_pool: u64,
    max: u64,
    hold_full: f64,
    most_per_request: u64,
    hold_mean: f64,
    per_process_in_flight: f64,
    pool: u64,
    mean: f64,
    shared: u64,
}

/// The api: processes from CPU, greenlets from the pod's shared backlog, pools from the rule.
pub(super) fn api(cx: &mut Ctx) -> (ComponentPlan, Admission) {
    let s = api_sizing(cx);
    explain_api(cx, &s);
    let a = cx.a;
    let running = s.replicas * s.per_pod;
    let (hpa, surge) = scaling(s.replicas, cx.input.target, cx.hpa_factor, a);
    let admission = Admission::new(running * s.greenlets, s.in_flight);
    let plan = component(
        Component::Api,
        [s.replicas, hpa, surge, s.per_pod],
        Some(s.greenlets),
        s.pools.pool,
        s.pools.max,
        s.pools.mean,
        Some(s.pools.shared),
        s.per_pod as f64,
        s.per_pod * a.process_memory_mib,
    );
    (plan, admission)
}

/// The api's numbers: processes from CPU, then pods and greenlets until one process admits no
/// more than `slots_per_process_max`, then the pools.
fn api_sizing(cx: &Ctx) -> ApiSizing {
    let (p, a, lambda) = (cx.p, cx.a, cx.lambda);
    let cpu_ms = p.api_cpu_ms();
    let cpu_cores = load::api_cores(p, lambda);
    let by_cpu = ceil_clean(cpu_cores / cx.cpu_target).max(1);
    let mut processes = by_cpu.max(cx.rules.min_replicas);
    let (worker_cores, _, workers) = worker_cpu(cx);
    let workers = load::Workers { count: workers, rho: worker_cores / workers as f64, cores: worker_cores };
    let run_seconds = load::run_seconds(p, workers.rho);
    loop {
        let (replicas, per_pod) = split_into_pods(
            processes,
            cx.rules.min_replicas,
            a.api_processes_per_pod,
            a.compose_api_processes_per_container,
            cx.input.target,
        );
        let running = replicas * per_pod;
        let rho = cpu_cores / running as f64;
        let flight = load::api_flight(p, lambda, rho, run_seconds);
        let (blocking, w_eff, in_flight) = (flight.blocking_seconds, flight.seconds, flight.in_flight);
        let pod_quantile = load::api_pod_quantile(p, lambda, &flight, rho, replicas, per_pod, workers, a);
        let greenlets = pod_quantile.div_ceil(per_pod).max(1);
        if greenlets <= a.slots_per_process_max {
            let pools = api_pools(cx, greenlets, blocking, in_flight, running);
            return ApiSizing {
                cpu_ms,
                cpu_cores,
                by_cpu,
                processes,
                replicas,
                per_pod,
                greenlets,
                rho,
                run_seconds,
                workers,
                w_eff,
                in_flight,
                pod_quantile,
                pools,
            };
        }
        // One process cannot admit that many: more processes share the backlog.
        let total = poisson_quantile(in_flight * a.overload_headroom, a.quantile);
        processes = (processes + 1).max(total.div_ceil(a.slots_per_process_max));
    }
}

/// The api's per-process pool: the larger of the safety rule and the wait target of a process
/// whose greenlets are all busy; the usual size below it; the mean in use.
fn api_pools(cx: &Ctx, greenlets: u64, blocking: f64, in_flight: f64, running: u64) -> ApiPools {
    let (p, a) = (cx.p, cx.a);
    let per_process_in_flight = in_flight / running as f64;
    let peak = p.connections_peak.ceil() as u64;
    let chat = p.chat_share > 0.0;
    let safety = api_safety(cx, greenlets);
    let stream_hold = (a.streaming_start_hold_seconds / p.request_seconds).min(1.0);
    // What one busy greenlet holds: a blocking request 1 and, for a share of its time, a nested
    // second; a streaming request 2 while it starts. The mean and second moment of that mix.
    let nested = (cx.connections_mean - 1.0).max(0.0);
    let (b, st) = (p.blocking_share(), p.streaming_share);
    let hold_full = b * (1.0 + nested) + st * 2.0 * stream_hold;
    let hold_square = b * (1.0 + 3.0 * nested) + st * 4.0 * stream_hold;
    // Checkouts one request may hold at once: the measured peak, and a third short one for chat.
    let most_per_request = peak + u64::from(chat);
    let wait_pool = quantile_of_sum(greenlets, hold_full, hold_square, a.quantile).min(greenlets * most_per_request);
    let max = safety.max(wait_pool);
    let hold_mean = b * cx.connections_mean + st * stream_hold;
    let pool = usual_pool(per_process_in_flight, hold_mean, max);
    // A blocking request holds its session for its own time in flight; a streaming one only at
    // its start.
    let mean =
        cx.lambda * (b * blocking * cx.connections_mean + st * a.streaming_start_hold_seconds.min(p.request_seconds));
    let shared = api_safety(cx, poisson_quantile(in_flight, a.quantile));
    ApiPools {
        safety,
        wait_pool,
        max,
        hold_full,
        most_per_request,
        hold_mean,
        per_process_in_flight,
        pool,
        mean,
        shared,
    }
}
/// The api's safety rule for `admitted` requests: chat apps the measured 2 × the admitted
/// requests, + 1 as the classic bound for three nested checkouts (a simulated chat pool of
/// exactly 2 × deadlocked once its CPU saturated); workflow apps admitted × (peak − 1) + 1.
fn api_safety(cx: &Ctx, admitted: u64) -> u64 {
    if cx.p.chat_share > 0.0 {
        rules::chat_pool(admitted, cx.a.chat_pool_factor) + 1
    } else {
        rules::deadlock_free_pool(admitted, cx.p.connections_peak.ceil() as u64)
    }
}

/// The api step's derivations, each value with its formula and source.
fn explain_api(cx: &mut Ctx, s: &ApiSizing) {
    let (p, a, lambda) = (cx.p, cx.a, cx.lambda);
    let (cpu_cores, per_pod, replicas, greenlets) = (s.cpu_cores, s.per_pod, s.replicas, s.greenlets);
    let running = replicas * per_pod;
    cx.rec.note(
        "api.cpu_cores",
        fmt2(cpu_cores),
        format!(
            "λ × CPU = {lambda} × {:.1} ms (blocking {} ms + {} ms × {} s of wait, × {:.2}; \
                streaming {} ms × {:.2})",
            s.cpu_ms,
            p.api_cpu_ms_blocking,
            p.api_cpu_ms_per_wait_second,
            p.request_seconds,
            p.blocking_share(),
            p.api_cpu_ms_streaming,
            p.streaming_share
        ),
        "profile; CPU grows with the wait, docs/model.md §9",
    );
    cx.rec.note(
        "api.processes",
        running,
        format!(
            "max(ceil({cpu_cores:.2} cores ÷ {} target) = {}, {} edition minimum) — one gevent process per core",
            cx.cpu_target, s.by_cpu, cx.rules.min_replicas
        ),
        "docs/model.md §5; target from the edition",
    );
    cx.rec.note(
        "api.replicas × SERVER_WORKER_AMOUNT",
        format!("{replicas} × {per_pod}"),
        match cx.input.target {
            Target::Compose => format!(
                "{replicas} containers (at least the edition's {}, at most {} processes each) × \
                    ceil({} ÷ {replicas})",
                cx.rules.min_replicas, a.compose_api_processes_per_container, s.processes
            ),
            Target::Kubernetes => {
                format!(
                    "pods of at most {} processes, at least {} replicas",
                    a.api_processes_per_pod, cx.rules.min_replicas
                )
            }
        },
        "edition; --assume api_processes_per_pod=, compose_api_processes_per_container=",
    );
    let rho = utilisation(s.rho);
    cx.rec.note(
        "api.time_in_flight",
        format!("{:.3} s", s.w_eff),
        format!(
            "blocking: W + CPU × ρ/(1 − ρ) = {} s + {:.3} s × {rho:.2}/(1 − {rho:.2}); streaming: the run's \
                time in a worker, {:.3} s; mixed {:.2} : {:.2} — a busy gevent process keeps a request \
                longer by its CPU queueing, each process on its own core",
            p.request_seconds,
            p.api_cpu_ms_blocking_total().seconds(),
            s.run_seconds,
            p.blocking_share(),
            p.streaming_share
        ),
        "docs/model.md §9",
    );
    cx.rec.note(
        "api.in_flight_mean",
        fmt1(s.in_flight),
        format!("λ × time in flight = {lambda} × {:.3} s", s.w_eff),
        "Little's law, docs/model.md §5",
    );
    cx.rec.note(
        "SERVER_WORKER_CONNECTIONS",
        greenlets,
        format!(
            "ceil((q{} of Poisson(requests waiting on I/O) + {per_pod} processor-sharing queues at ρ {:.2} \
                + its streaming requests' runs queueing on {} workers' cores at ρ {:.2}) + 1 arriving = {} in \
                one {} (mean in flight {:.1}) ÷ {per_pod} processes): its processes share one listen backlog, \
                each queues on its own core",
            a.quantile,
            utilisation(s.rho * a.overload_headroom),
            s.workers.count,
            utilisation(s.workers.rho * a.overload_headroom),
            s.pod_quantile,
            if cx.input.target == Target::Compose { "container" } else { "pod" },
            s.in_flight / replicas as f64 * a.overload_headroom,
        ),
        "docs/model.md §9; quantile and overload_headroom are assumptions (--assume)",
    );
    let pools = &s.pools;
    let chat = p.chat_share > 0.0;
    cx.rec.note(
        "api pool (SQLALCHEMY_POOL_SIZE + SQLALCHEMY_MAX_OVERFLOW)",
        pools.max,
        format!(
            "max({} by the safety rule, {} for the wait target) — safety: {}; wait target: \
                the q{} of the connections {greenlets} busy greenlets hold (mean {:.1}: {:.3} \
                each; normal approximation), at most {} each",
            pools.safety,
            pools.wait_pool,
            if chat {
                format!("{} × {greenlets} greenlets + 1, chat apps nest a third checkout", a.chat_pool_factor)
            } else {
                format!("{greenlets} greenlets × ({} peak − 1) + 1", p.connections_peak)
            },
            a.quantile,
            greenlets as f64 * pools.hold_full,
            pools.hold_full,
            pools.most_per_request,
        ),
        "measured, docs/model.md §8, §9",
    );
    cx.rec.note(
        "SQLALCHEMY_POOL_SIZE",
        pools.pool,
        format!(
            "ceil({:.2} in flight per process × {:.3} connections each), at most {}: what a process \
                usually holds stays open, the rest is overflow",
            pools.per_process_in_flight, pools.hold_mean, pools.max
        ),
        "docs/model.md §8",
    );
}

/// api_websocket (the `collaboration` profile): the edition's replicas, an assumed small pool.
pub(super) fn api_websocket(cx: &mut Ctx) -> ComponentPlan {
    let a = cx.a;
    let replicas = cx.rules.min_replicas;
    let (max, surge) = match cx.input.target {
        Target::Compose => (replicas, 0),
        // Websocket sessions are long-lived: no HPA, but a rolling update still surges.
        Target::Kubernetes => (replicas, (replicas as f64 * a.max_surge).ceil() as u64),
    };
    let (ps, po) = (a.websocket_pool_size, a.websocket_max_overflow);
    cx.rec.note(
        "api_websocket pool",
        ps + po,
        format!("{ps} + {po}, a per-service override: its use was not measured"),
        "assumption (--assume websocket_pool_size=, websocket_max_overflow=)",
    );
    component(
        Component::ApiWebsocket,
        [replicas, max, surge, defaults::API_WEBSOCKET_WORKER_AMOUNT],
        Some(defaults::API_WEBSOCKET_WORKER_CONNECTIONS),
        ps.min(ps + po).max(1),
        ps + po,
        replicas as f64,
        None,
        1.0,
        a.process_memory_mib,
    )
}

/// The workers' cores at the target QPS, the workers those need at the CPU target (one core
/// each), and the workers planned: at least the edition's replicas, and enough that a core stays
/// below [`load::CORE_AT_QUANTILE_MAX`] at the quantile of runs in flight.
fn worker_cpu(cx: &Ctx) -> (f64, u64, u64) {
    let cores = load::worker_cores(cx.p, cx.lambda);
    let by_cpu = ceil_clean(cores / cx.cpu_target).max(1);
    let workers = load::workers_for_the_quantile(cx.p, cx.lambda, by_cpu.max(cx.rules.min_replicas), cx.a);
    (cores, by_cpu, workers)
}

/// What the worker step computes, before it is explained.
struct WorkerSizing {
    stream_rate: f64,
    task_rate: f64,
    cpu_cores: f64,
    by_cpu: u64,
    workers: u64,
    slots: u64,
    run_seconds: f64,
    task_seconds: f64,
    in_flight: f64,
    quantile: u64,
    holds: SlotHolds,
    chat: bool,
    safety: u64,
    max: u64,
    pool: u64,
    mean: f64,
}

/// What one busy worker slot holds, by the kind of work in it: the shares of chat runs,
/// workflow runs and tasks among the slots, and the mean and second moment of the connections
/// a slot holds. Shares come from the profile alone, so they do not wobble with the QPS through
/// floating-point noise.
pub(super) struct SlotHolds {
    pub chat_runs: f64,
    pub workflow_runs: f64,
    pub tasks: f64,
    pub mean: f64,
    pub square: f64,
}

/// [`SlotHolds`] of the profile: a chat run holds 1 and a nested second for a share of its time,
/// a workflow run about `worker_workflow_connections_per_run`, a task 1. With no work of the
/// profile's in the worker, its slots run Dify's own tasks (indexing, mail, schedules).
pub(super) fn slot_holds(p: &Profile, a: &Assumptions, connections_mean: f64) -> SlotHolds {
    let per_request = p.streaming_share * p.request_seconds + p.celery_tasks * p.celery_task_seconds;
    let share = |x: f64| if per_request > 0.0 { x / per_request } else { 0.0 };
    let chat_runs = share(p.streaming_share * p.request_seconds * p.chat_share);
    let workflow_runs = share(p.streaming_share * p.request_seconds * (1.0 - p.chat_share));
    let tasks = if per_request > 0.0 { share(p.celery_tasks * p.celery_task_seconds) } else { 1.0 };
    let nested = (connections_mean - 1.0).max(0.0);
    let wf = a.worker_workflow_connections_per_run;
    SlotHolds {
        chat_runs,
        workflow_runs,
        tasks,
        mean: chat_runs * connections_mean + workflow_runs * wf + tasks,
        square: chat_runs * (1.0 + 3.0 * nested) + workflow_runs * wf + tasks,
    }
}

/// The Celery worker (gevent pool): workers from CPU, `-c` from the one broker queue they all
/// read, a pool of 2 × `-c` where chat runs stream through it.
pub(super) fn worker(cx: &mut Ctx) -> (ComponentPlan, Admission) {
    let s = worker_sizing(cx);
    explain_worker(cx, &s);
    let a = cx.a;
    if cx.p.streaming_share > 0.0 && s.chat {
        cx.notes.push(
            "The Celery worker under gevent may ignore SQLALCHEMY_POOL_SIZE (langgenius/dify#30536, \
            open): watch its connections after a deploy."
                .into(),
        );
    }
    let (hpa, surge) = scaling(s.workers, cx.input.target, cx.hpa_factor, a);
    let admission = Admission::new(s.workers * s.slots, s.in_flight);
    let plan = component(
        Component::Worker,
        [s.workers, hpa, surge, 1],
        Some(s.slots),
        s.pool,
        s.max,
        s.mean,
        None,
        1.0,
        a.process_memory_mib,
    );
    (plan, admission)
}

/// The worker's numbers: workers from CPU, then `-c` until one worker runs no more than
/// `slots_per_process_max`, then the pool.
fn worker_sizing(cx: &Ctx) -> WorkerSizing {
    let (p, a, lambda) = (cx.p, cx.a, cx.lambda);
    let stream_rate = lambda * p.streaming_share;
    let task_rate = lambda * p.celery_tasks;
    let (cpu_cores, by_cpu, mut workers) = worker_cpu(cx);
    let (slots, run_seconds, task_seconds, in_flight, quantile) = loop {
        let rho = cpu_cores / workers as f64;
        let flight = load::worker_flight(p, lambda, rho);
        let (run_seconds, task_seconds, in_flight) = (flight.run_seconds, flight.task_seconds, flight.in_flight);
        let quantile = load::worker_quantile(cpu_cores, &flight, rho, workers, a);
        let slots = quantile.div_ceil(workers).max(WORKER_CONCURRENCY_FLOOR);
        if slots <= a.slots_per_process_max {
            break (slots, run_seconds, task_seconds, in_flight, quantile);
        }
        workers = (workers + 1).max(quantile.div_ceil(a.slots_per_process_max));
    };
    let holds = slot_holds(p, a, cx.connections_mean);
    let chat = holds.chat_runs > 0.0;
    // The wait target of a full worker: what its slots hold at once.
    let wait_pool = quantile_of_sum(slots, holds.mean, holds.square, a.quantile).min(slots * 2);
    let safety = if chat {
        // Any slot may hold a chat run, which nests a second checkout: 2 × -c + 1.
        rules::chat_pool(slots, a.worker_chat_pool_factor) + 1
    } else {
        ceil_clean(slots as f64 * (holds.workflow_runs * a.worker_workflow_connections_per_run + holds.tasks)).max(2)
    };
    let max = safety.max(wait_pool);
    let pool = usual_pool(in_flight / workers as f64, holds.mean, max);
    let stream_in_flight = stream_rate * run_seconds;
    let mean = stream_in_flight * p.chat_share * cx.connections_mean
        + stream_in_flight * (1.0 - p.chat_share) * a.worker_workflow_connections_per_run
        + task_rate * task_seconds;
    WorkerSizing {
        stream_rate,
        task_rate,
        cpu_cores,
        by_cpu,
        workers,
        slots,
        run_seconds,
        task_seconds,
        in_flight,
        quantile,
        holds,
        chat,
        safety,
        max,
        pool,
        mean,
    }
}

/// The worker step's derivations.
fn explain_worker(cx: &mut Ctx, s: &WorkerSizing) {
    let a = cx.a;
    let (slots, workers) = (s.slots, s.workers);
    cx.rec.note(
        "worker.in_flight_mean",
        fmt1(s.in_flight),
        format!(
            "streaming runs {:.1}/s × {:.3} s + tasks {:.1}/s × {:.3} s (CPU queueing included)",
            s.stream_rate, s.run_seconds, s.task_rate, s.task_seconds
        ),
        "Little's law; streaming runs execute in the worker, docs/model.md §8",
    );
    cx.rec.note(
        "worker.replicas",
        workers,
        format!(
            "max(ceil({:.2} cores ÷ {}) = {}, {} edition minimum) — one gevent process per worker, one core; \
                at least as many as keep a core at or below {} busy when the runs and tasks in flight \
                are at the quantile -c covers",
            s.cpu_cores,
            cx.cpu_target,
            s.by_cpu,
            cx.rules.min_replicas,
            load::CORE_AT_QUANTILE_MAX
        ),
        "docs/model.md §5, §9",
    );
    cx.rec.note(
        "CELERY_WORKER_AMOUNT",
        slots,
        format!(
            "max({WORKER_CONCURRENCY_FLOOR}, ceil((q{} of Poisson(runs and tasks waiting on I/O) + \
                {workers} processor-sharing queues) + 1 arriving = {} (mean in flight {:.1}) ÷ {workers} \
                workers)): every worker reads one broker queue and queues on its own core",
            a.quantile,
            s.quantile,
            s.in_flight * a.overload_headroom,
        ),
        "docs/model.md §8, §9; floor: Dify 1.16.1 .env.example (4)",
    );
    debug_assert!(s.max >= s.safety);
    cx.rec.note(
        "worker pool (per process)",
        s.max,
        if s.chat {
            format!(
                "{} × {slots} + 1: a chat run holds a connection throughout and nests a second at its \
                    start and end; -c + 10% deadlocked under overload, 2 × -c queued",
                a.worker_chat_pool_factor
            )
        } else {
            format!(
                "ceil({slots} × ({:.2} workflow runs × {} + {:.2} tasks × 1)), at least \
                    2: workflow runs hold connections only for moments",
                s.holds.workflow_runs, a.worker_workflow_connections_per_run, s.holds.tasks
            )
        },
        "measured, docs/model.md §8, §9",
    );
}

/// worker_beat: one scheduler process, its own small pool (compose would give it the api's).
pub(super) fn worker_beat(cx: &mut Ctx) -> ComponentPlan {
    let a = cx.a;
    let (bp, bo) = (a.beat_pool_size, a.beat_max_overflow);
    cx.rec.note(
        "worker_beat pool",
        bp + bo,
        format!(
            "{bp} + {bo} as a per-service override: one process running one task at a time holds 1 and \
                may nest 1 (the safety rule); compose would otherwise give beat the api's pool"
        ),
        "docs/model.md §2: beat holds about 1",
    );
    let surge = if cx.input.target == Target::Kubernetes { a.beat_surge } else { 0 };
    component(
        Component::WorkerBeat,
        [1, 1, surge, 1],
        None,
        bp.max(1),
        (bp + bo).max(1),
        1.0,
        None,
        BEAT_CPU,
        BEAT_MEMORY_MIB,
    )
}

/// The plugin daemon (Go): replicas from its CPU, `DB_MAX_OPEN_CONNS` from the quantile of its
/// connections in flight instead of the default 30.
pub(super) fn plugin_daemon(cx: &mut Ctx) -> ComponentPlan {
    let (p, a, lambda) = (cx.p, cx.a, cx.lambda);
    let cores = load::plugin_cores(p, lambda);
    let in_flight = (lambda * p.plugin_db_ms).seconds();
    let per_replica_cores = a.plugin_cores_per_replica * cx.cpu_target;
    let (replicas, cpu_per_pod) = match cx.input.target {
        // The daemon publishes its debugging port on the host, so compose runs exactly one.
        Target::Compose => (1, a.plugin_cores_per_replica.max((cores / cx.cpu_target).ceil())),
        Target::Kubernetes => {
            (((cores / per_replica_cores).ceil() as u64).max(cx.rules.min_replicas), a.plugin_cores_per_replica)
        }
    };
    let busy = match cx.input.target {
        Target::Compose => in_flight,
        Target::Kubernetes if cores > 0.0 => in_flight.min(in_flight * per_replica_cores / cores),
        Target::Kubernetes => in_flight,
    };
    let open = (poisson_quantile(busy, a.quantile) + 1).max(a.plugin_open_conns_floor);
    let idle = (busy.ceil() as u64).clamp(1, open);
    cx.rec.note(
        "plugin_daemon.replicas",
        replicas,
        format!(
            "max(ceil({cores:.2} cores ÷ ({} cores × {})), {} edition minimum); compose runs one",
            a.plugin_cores_per_replica, cx.cpu_target, cx.rules.min_replicas
        ),
        "docs/model.md §4: about 30 QPS per 2-core instance",
    );
    cx.rec.note(
        "DB_MAX_OPEN_CONNS",
        open,
        format!(
            "max({}, Poisson({busy:.2}) q{} + 1) per replica, instead of the default 30: a call holds \
                one connection and nests none (an assumption: not measured)",
            a.plugin_open_conns_floor, a.quantile
        ),
        "profile plugin_db_ms; floor is an assumption",
    );
    let (hpa, surge) = scaling(replicas, cx.input.target, cx.hpa_factor, a);
    // Memory keeps the vendor's instance ratio (plugin_memory_mib per plugin_cores_per_replica
    // cores, 2C4G): compose's one container that grows to 10 or 24 cores grows its memory too.
    let memory_mib = ((a.plugin_memory_mib as f64) * cpu_per_pod / a.plugin_cores_per_replica.max(f64::MIN_POSITIVE))
        .ceil()
        .max(a.plugin_memory_mib as f64) as u64;
    component(
        Component::PluginDaemon,
        [replicas, hpa, surge, 1],
        None,
        idle,
        open,
        in_flight,
        None,
        cpu_per_pod,
        memory_mib,
    )
}

/// The `level` quantile of the connections `n` busy slots hold, each holding a random amount
/// with mean `mean` and second moment `square`: the normal approximation of the sum.
fn quantile_of_sum(n: u64, mean: f64, square: f64, level: f64) -> u64 {
    let n = n as f64;
    let variance = (n * (square - mean * mean)).max(0.0);
    ceil_clean(n * mean + normal_quantile(level) * variance.sqrt())
}

/// Replicas and processes per pod for `processes` gevent processes. Compose spreads them evenly
/// over the fewest containers of at most `compose_max` processes (at least the edition's
/// replicas); Kubernetes fills pods up to `per_pod_max`, then adds pods.
fn split_into_pods(
    processes: u64,
    min_replicas: u64,
    per_pod_max: u64,
    compose_max: u64,
    target: Target,
) -> (u64, u64) {
    match target {
        Target::Compose => {
            let containers = min_replicas.max(processes.div_ceil(compose_max.max(1))).max(1);
            (containers, processes.div_ceil(containers).max(1))
        }
        Target::Kubernetes => {
            let per_pod = per_pod_max.min(processes.div_ceil(min_replicas)).max(1);
            (min_replicas.max(processes.div_ceil(per_pod)), per_pod)
        }
    }
}

/// HPA maximum and surge for a scalable component: the surge a share of the HPA maximum, at
/// most `max_surge_pods` when that is set.
fn scaling(replicas: u64, target: Target, hpa_factor: f64, a: &Assumptions) -> (u64, u64) {
    match target {
        Target::Compose => (replicas, 0),
        Target::Kubernetes => {
            let max = ((replicas as f64 * hpa_factor).ceil() as u64).max(replicas);
            let surge = (max as f64 * a.max_surge).ceil() as u64;
            (max, if a.max_surge_pods > 0 { surge.min(a.max_surge_pods) } else { surge })
        }
    }
}

/// `SQLALCHEMY_POOL_SIZE`: the connections a process usually holds, so they stay open between
/// bursts; the rest of the maximum is overflow, closed on return.
fn usual_pool(in_flight_per_process: f64, held_each: f64, max: u64) -> u64 {
    if in_flight_per_process.is_finite() { ceil_clean(in_flight_per_process * held_each).clamp(1, max) } else { max }
}

/// One component's plan; `[replicas, max_replicas, surge, processes_per_pod]`.
#[allow(clippy::too_many_arguments)]
fn component(
    component: Component,
    [replicas, max_replicas, surge, processes_per_pod]: [u64; 4],
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

/// `ceil`, forgiving the last bits of floating-point noise (4.000000001 is 4).
pub(super) fn ceil_clean(v: f64) -> u64 {
    (v - 1e-9).ceil().max(0.0) as u64
}

pub(super) fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub(super) fn fmt1(v: f64) -> String {
    format!("{v:.1}")
}

pub(super) fn fmt2(v: f64) -> String {
    format!("{v:.2}")
}
