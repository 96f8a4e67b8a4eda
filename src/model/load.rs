//! What a load puts in flight on a given shape of processes: the arithmetic `size` sizes by and
//! `check --qps` judges by, in one place (docs/model.md §5, §9). Pure functions of a profile,
//! a rate and the processes that serve it.

use super::assumptions::Assumptions;
use super::profile::Profile;
use super::queueing::poisson_plus_queues_quantile;
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

/// The requests one pod of `replicas` must admit at once, its `per_pod` processes sharing the
/// pod's listen backlog: the `quantile` of the requests waiting on I/O (Poisson) plus one CPU
/// queue per process (processor sharing on its own core, a geometric tail), with the overload
/// headroom, + 1 for the arriving request ([`for_an_arrival`]).
pub fn api_pod_quantile(
    p: &Profile,
    lambda: f64,
    flight: &ApiFlight,
    rho: f64,
    replicas: u64,
    per_pod: u64,
    a: &Assumptions,
) -> u64 {
    let cpu_s = p.api_cpu_ms().seconds() / (1.0 - utilisation(rho));
    let waiting_on_io = lambda * (flight.seconds - cpu_s).max(0.0) / replicas as f64 * a.overload_headroom;
    let rho_pod = utilisation(rho * a.overload_headroom);
    for_an_arrival(poisson_plus_queues_quantile(waiting_on_io, per_pod, rho_pod, a.quantile))
}

/// The greenlets or slots an arriving request or run finds one free in with probability
/// `quantile`: it waits when every one is busy, so they must cover the `quantile` of the work
/// already in flight (which Poisson arrivals see as it is at any moment) plus itself. Without
/// the + 1 exactly the quantile is busy at that probability, and in simulation 0.12–0.20% of
/// requests waited instead of 0.1% (docs/model.md §9).
pub fn for_an_arrival(in_flight_quantile: u64) -> u64 {
    in_flight_quantile + 1
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

    #[test]
    fn more_load_never_needs_less() {
        let p = Profile::builtin("workflow").unwrap();
        let a = Assumptions::default();
        let mut last = 0;
        for qps in [1.0, 10.0, 50.0, 100.0, 400.0] {
            let rho = api_cores(&p, qps) / 8.0;
            let f = api_flight(&p, qps, rho, run_seconds(&p, 0.5));
            let q = api_pod_quantile(&p, qps, &f, rho, 2, 4, &a);
            assert!(q >= last, "{qps}: {q} < {last}");
            last = q;
        }
    }
}
