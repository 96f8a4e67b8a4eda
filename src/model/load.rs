//! What a load puts in flight on a given shape of processes: the arithmetic `size` sizes by and
//! `check --qps` judges by, in one place (docs/model.md §5, §9). Pure functions of a profile,
//! a rate and the processes that serve it.

use super::assumptions::Assumptions;
use super::profile::Profile;
use super::queueing::{poisson_plus_queue_groups_quantile, poisson_plus_queues_quantile};
use super::units::Millis;

/// A gevent process is never counted above this utilisation when its requests' time is
/// stretched by CPU queueing (the stretch 1 / (1 − ρ) grows without bound towards 1).
pub const MAX_UTILISATION: f64 = 0.95;

/// `ρ` clamped to what the stretch can take.
pub fn utilisation(rho: f64) -> f64 {
    if rho.is_finite() { rho.clamp(0.0, MAX_UTILISATION) } else { MAX_UTILISATION }
}

/// A request's time in a gevent process whose core runs at utilisation `rho`: its CPU part
/// waits behind the other greenlets', about CPU × ρ/(1 − ρ) more (processor sharing). Each
/// process queues on its own core: processes sharing a listen backlog do not share that wait
/// (dividing it among them understated the greenlets a CPU-heavy pod needs, shown by the
/// simulation; docs/model.md §9).
pub fn stretched(seconds: f64, cpu: Millis, rho: f64) -> f64 {
    let rho = utilisation(rho);
    seconds + cpu.seconds() * rho / (1.0 - rho)
}

/// The api's CPU cores at `lambda` requests per second.
pub fn api_cores(p: &Profile, lambda: f64) -> f64 {
    (lambda * p.api_cpu_ms()).seconds()
}

/// The workers' CPU cores at `lambda`: streaming runs and Celery tasks.
pub fn worker_cores(p: &Profile, lambda: f64) -> f64 {
    (lambda * p.streaming_share * p.worker_cpu_ms_streaming + lambda * p.celery_tasks * p.celery_task_cpu_ms).seconds()
}

/// The plugin daemon's CPU cores at `lambda`.
pub fn plugin_cores(p: &Profile, lambda: f64) -> f64 {
    (lambda * p.plugin_cpu_ms).seconds()
}

/// A streaming run's time in a worker whose core runs at `worker_rho`, CPU queueing included.
pub fn run_seconds(p: &Profile, worker_rho: f64) -> f64 {
    stretched(p.request_seconds, p.worker_cpu_ms_streaming, worker_rho)
}

/// How long the api holds a request's greenlet, and how many are held on average.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiFlight {
    /// A blocking request's time, its CPU queueing included.
    pub blocking_seconds: f64,
    /// The mix of blocking and streaming times.
    pub seconds: f64,
    /// Requests in flight on average (Little's law).
    pub in_flight: f64,
}

/// The api's requests in flight at `lambda` when each of its processes runs its core at `rho`;
/// a streaming request holds its greenlet for its run's `run_seconds` in a worker.
pub fn api_flight(p: &Profile, lambda: f64, rho: f64, run_seconds: f64) -> ApiFlight {
    // A blocking request waits in the api for its CPU behind its process's other greenlets;
    // a streaming request holds its greenlet while its run executes in a worker, which
    // stretches the run's CPU the same way.
    let blocking = stretched(p.request_seconds, p.api_cpu_ms_blocking_total(), rho);
    let streaming = stretched(run_seconds, p.api_cpu_ms_streaming, rho);
    let seconds = p.blocking_share() * blocking + p.streaming_share * streaming;
    ApiFlight { blocking_seconds: blocking, seconds, in_flight: lambda * seconds }
}

/// The workers a streaming request's run executes on: how many, their utilisation and the
/// cores all of them use at the load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workers {
    pub count: u64,
    pub rho: f64,
    pub cores: f64,
}

/// The requests one pod of `replicas` must admit at once, its `per_pod` processes sharing the
/// pod's listen backlog: the `quantile` of the requests waiting on I/O (Poisson) plus one CPU
/// queue per process (processor sharing on its own core, a geometric tail) plus, for streaming
/// requests, their runs queueing on the workers' cores (each worker's queue geometric too,
/// thinned to this pod's share of it), with the overload headroom, + 1 for the arriving request
/// ([`for_an_arrival`]). A streaming request holds its greenlet until its run ends, so a worker
/// whose core is crowded holds the api's greenlets with it (docs/model.md §9).
#[allow(clippy::too_many_arguments)]
pub fn api_pod_quantile(
    p: &Profile,
    lambda: f64,
    flight: &ApiFlight,
    rho: f64,
    replicas: u64,
    per_pod: u64,
    workers: Workers,
    a: &Assumptions,
) -> u64 {
    let cpu_s = p.api_cpu_ms().seconds() / (1.0 - utilisation(rho));
    let rho_pod = utilisation(rho * a.overload_headroom);
    // This pod's runs' share of the CPU work queued on each worker, and the thinned geometric
    // queue they form there: P(k or more) = ρ'ᵏ with ρ' = fρ / (1 − ρ + fρ).
    let runs_cpu = lambda / replicas as f64 * p.streaming_share * p.worker_cpu_ms_streaming.seconds();
    let share = if workers.cores > 0.0 { (runs_cpu / workers.cores).min(1.0) } else { 0.0 };
    let rho_w = utilisation(workers.rho * a.overload_headroom);
    let rho_runs = share * rho_w / (1.0 - rho_w + share * rho_w);
    let on_workers =
        if workers.count > 0 && rho_runs > 0.0 { workers.count as f64 * rho_runs / (1.0 - rho_runs) } else { 0.0 };
    let waiting_on_io =
        (lambda * (flight.seconds - cpu_s).max(0.0) / replicas as f64 * a.overload_headroom - on_workers).max(0.0);
    for_an_arrival(poisson_plus_queue_groups_quantile(
        waiting_on_io,
        (per_pod, rho_pod),
        (workers.count, rho_runs),
        a.quantile,
    ))
}

/// The greenlets or slots an arriving request or run finds one free in with probability
/// `quantile`: it waits when every one is busy, so they must cover the `quantile` of the work
/// already in flight (which Poisson arrivals see as it is at any moment) plus itself. Without
/// the + 1 exactly the quantile is busy at that probability, and in simulation 0.12–0.20% of
/// requests waited instead of 0.1% (docs/model.md §9).
pub fn for_an_arrival(in_flight_quantile: u64) -> u64 {
    in_flight_quantile + 1
}

/// A worker's core at the runs and tasks in flight that `-c` is sized for (their quantile, not
/// their mean) is kept at or below this utilisation. Each run brings its CPU with it, so a
/// moment with many runs in flight loads the cores in proportion; near saturation every run on
/// a core stretches, and the runs in flight grow further (a fatter tail than the independent
/// counts the quantile sums). In simulation, plans of two to eight workers whose cores reached
/// 0.86–0.92 at the quantile kept 0.1–0.2% of runs waiting for a slot, at 0.6–0.7 none
/// (docs/model.md §9). Large plans sit at about 0.77 (their quantile is near their mean).
pub const CORE_AT_QUANTILE_MAX: f64 = 0.8;

/// The utilisation of the workers' cores, `rho` at the mean `in_flight`, when `quantile` runs
/// and tasks are in flight.
pub fn utilisation_at_quantile(rho: f64, quantile: u64, in_flight: f64) -> f64 {
    if in_flight > 0.0 { rho * quantile as f64 / in_flight } else { 0.0 }
}

/// The fewest workers, at least `at_least`, whose cores stay at or below
/// [`CORE_AT_QUANTILE_MAX`] when the runs and tasks in flight are at the quantile `-c` covers.
pub fn workers_for_the_quantile(p: &Profile, lambda: f64, at_least: u64, a: &Assumptions) -> u64 {
    let cores = worker_cores(p, lambda);
    let mut workers = at_least.max(1);
    // Each worker adds a core; the bound is met by about cores ÷ bound × the quantile's excess.
    while workers < at_least.max(1) * 4 + 64 {
        let rho = cores / workers as f64;
        let flight = worker_flight(p, lambda, rho);
        let in_flight_quantile = worker_quantile(cores, &flight, rho, workers, a) - 1;
        if utilisation_at_quantile(rho, in_flight_quantile, flight.in_flight * a.overload_headroom)
            <= CORE_AT_QUANTILE_MAX
        {
            break;
        }
        workers += 1;
    }
    workers
}

/// The workers' runs and tasks in flight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerFlight {
    pub run_seconds: f64,
    pub task_seconds: f64,
    pub in_flight: f64,
}

/// The streaming runs and Celery tasks in flight at `lambda` when the workers run at `rho`.
pub fn worker_flight(p: &Profile, lambda: f64, rho: f64) -> WorkerFlight {
    let run_seconds = stretched(p.request_seconds, p.worker_cpu_ms_streaming, rho);
    let task_seconds = stretched(p.celery_task_seconds, p.celery_task_cpu_ms, rho);
    let in_flight = lambda * p.streaming_share * run_seconds + lambda * p.celery_tasks * task_seconds;
    WorkerFlight { run_seconds, task_seconds, in_flight }
}

/// The runs and tasks `workers` workers (one core each, at `rho`, needing `cpu_cores` in all)
/// must admit at once, all reading one broker queue: those waiting on I/O (Poisson) plus each
/// worker's own CPU queue, with the overload headroom, + 1 for the arriving run or task
/// ([`for_an_arrival`]).
pub fn worker_quantile(cpu_cores: f64, flight: &WorkerFlight, rho: f64, workers: u64, a: &Assumptions) -> u64 {
    let on_cpu = cpu_cores / (1.0 - utilisation(rho));
    let waiting_on_io = (flight.in_flight - on_cpu).max(0.0) * a.overload_headroom;
    let rho_h = utilisation(rho * a.overload_headroom);
    for_an_arrival(poisson_plus_queues_quantile(waiting_on_io, workers, rho_h, a.quantile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretch_by_hand() {
        // 100 ms of CPU at ρ 0.5: 100 ms more.
        assert!((stretched(1.0, Millis(100.0), 0.5) - 1.1).abs() < 1e-12);
        // Saturated or undefined utilisation is held at the ceiling, never infinite.
        assert!(stretched(1.0, Millis(100.0), 7.0).is_finite());
        assert_eq!(utilisation(f64::NAN), MAX_UTILISATION);
    }

    /// `workflow` at 10 QPS needs 0.94 worker cores: two workers run at 0.47, but with the runs
    /// and tasks in flight at their quantile (29 against a mean of 14.8) at 0.92, so a third is
    /// planned; at 500 QPS the quantile is near the mean and the CPU target's workers suffice.
    #[test]
    fn workers_keep_a_core_below_the_bound_at_the_quantile() {
        let p = Profile::builtin("workflow").unwrap();
        let a = Assumptions::default();
        assert_eq!(workers_for_the_quantile(&p, 10.0, 2, &a), 3);
        let by_cpu = (worker_cores(&p, 500.0) / 0.7).ceil() as u64;
        assert_eq!(workers_for_the_quantile(&p, 500.0, by_cpu, &a), by_cpu);
        for (qps, at_least) in [(10.0, 2), (100.0, 14), (500.0, by_cpu)] {
            let w = workers_for_the_quantile(&p, qps, at_least, &a);
            let rho = worker_cores(&p, qps) / w as f64;
            let f = worker_flight(&p, qps, rho);
            let q = worker_quantile(worker_cores(&p, qps), &f, rho, w, &a) - 1;
            assert!(utilisation_at_quantile(rho, q, f.in_flight) <= CORE_AT_QUANTILE_MAX, "{qps}: {w}");
        }
    }

    /// A pod's streaming requests whose runs queue on crowded workers need more greenlets than
    /// the same requests counted as Poisson; with no streaming share the workers add nothing.
    #[test]
    fn runs_queueing_on_the_workers_widen_the_pods_quantile() {
        let p = Profile::builtin("chat").unwrap();
        let a = Assumptions::default();
        let rho = api_cores(&p, 10.0) / 2.0;
        let f = api_flight(&p, 10.0, rho, run_seconds(&p, 0.6));
        let cores = worker_cores(&p, 10.0);
        let none = Workers { count: 0, rho: 0.0, cores };
        let busy = Workers { count: 4, rho: 0.9, cores };
        assert!(
            api_pod_quantile(&p, 10.0, &f, rho, 2, 1, busy, &a) > api_pod_quantile(&p, 10.0, &f, rho, 2, 1, none, &a)
        );
        let mut blocking = p.clone();
        blocking.streaming_share = 0.0;
        let f = api_flight(&blocking, 10.0, rho, run_seconds(&blocking, 0.6));
        assert_eq!(
            api_pod_quantile(&blocking, 10.0, &f, rho, 2, 1, busy, &a),
            api_pod_quantile(&blocking, 10.0, &f, rho, 2, 1, none, &a)
        );
    }

    #[test]
    fn more_load_never_needs_less() {
        let p = Profile::builtin("workflow").unwrap();
        let a = Assumptions::default();
        let mut last = 0;
        for qps in [1.0, 10.0, 50.0, 100.0, 400.0] {
            let rho = api_cores(&p, qps) / 8.0;
            let f = api_flight(&p, qps, rho, run_seconds(&p, 0.5));
            let w = Workers { count: 4, rho: 0.5, cores: worker_cores(&p, qps) };
            let q = api_pod_quantile(&p, qps, &f, rho, 2, 4, w, &a);
            assert!(q >= last, "{qps}: {q} < {last}");
            last = q;
        }
    }
}
