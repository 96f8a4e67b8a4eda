//! What a deployment's settings carry at a given load: the same arithmetic `size` plans with
//! (`load`: CPU-stretched times, per-pod quantiles of the requests waiting on I/O plus one CPU
//! queue per process, one core per gevent process), fed with what the deployment really has — replicas, processes, greenlets, `-c`, and
//! the cores each container or pod may use. `check --qps` turns the shortfalls into findings;
//! `calibrate --compare` prints the lines beside the measured need.
//!
//! Below the mean (requests in flight, or cores) a component receives work faster than it can
//! finish it, so its queue grows without bound. Between the mean and the peak it copes on
//! average but queues at peaks. A plan `size` makes has every line at or above its peak.

use super::assumptions::{Assumptions, Edition};
use super::load;
use super::profile::Profile;
use crate::deployment::{Deployed, Deployment, Source};
use crate::dify::Component;
use serde::Serialize;

/// The load a deployment is judged against.
#[derive(Debug, Clone)]
pub struct Load<'a> {
    pub qps: f64,
    pub profile: &'a Profile,
    pub assumptions: &'a Assumptions,
    /// The edition whose CPU target sets the peak of the CPU lines (`size` plans `ha` by default).
    pub edition: Edition,
}

impl Load<'_> {
    fn cpu_target(&self) -> f64 {
        self.assumptions.cpu_target.unwrap_or(self.edition.rules().cpu_target)
    }
}

/// What a capacity line counts; it serializes as its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// The api's request greenlets: requests admitted at once.
    Greenlets,
    /// The api's cores: one gevent process uses at most one, and no more than its container's.
    ApiCores,
    /// The workers' Celery `-c` slots: runs and tasks admitted at once.
    Slots,
    /// The workers' cores.
    WorkerCores,
    /// The plugin daemon's cores.
    PluginCores,
}

impl Measure {
    /// For people: what is counted.
    pub fn label(self) -> &'static str {
        match self {
            Measure::Greenlets => "greenlets",
            Measure::ApiCores => "processes (one core each)",
            Measure::Slots => "-c slots",
            Measure::WorkerCores => "workers (one core each)",
            Measure::PluginCores => "cores",
        }
    }
}

impl Serialize for Measure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

/// How far a capacity falls short of its load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shortfall {
    /// Below the peak: work waits at peaks.
    BelowPeak,
    /// Below the mean: the queue grows without bound.
    BelowMean,
}

/// One capacity of one component beside what the load needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capacity {
    pub component: Component,
    /// What is counted (`what` in JSON: its label, for people).
    #[serde(rename = "what")]
    pub measure: Measure,
    /// What the deployment has.
    pub current: f64,
    /// The mean the load needs: below it the queue grows without bound.
    pub needed_mean: f64,
    /// The peak `size` plans for (the in-flight quantile, or the cores at the CPU target).
    pub needed_peak: f64,
    /// The settings that set `current`.
    pub setting: String,
    /// How `current` is made up, for people.
    pub current_how: String,
    #[serde(skip)]
    pub source: Option<Source>,
}

impl Capacity {
    /// `None` when the capacity covers the peak.
    pub fn shortfall(&self) -> Option<Shortfall> {
        // A hair of tolerance: `size` rounds its peaks up, and a float's last bits are noise.
        if self.current < self.needed_mean - 1e-9 {
            Some(Shortfall::BelowMean)
        } else if self.current < self.needed_peak - 1e-6 {
            Some(Shortfall::BelowPeak)
        } else {
            None
        }
    }
}

/// The cores one process of `c` may use: one for a gevent process, fewer when its container's or
/// pod's CPU limit gives each process less.
fn cores_per_process(c: &Deployed) -> f64 {
    let processes = c.processes.value.max(1) as f64;
    match &c.cores {
        Some(limit) => (limit.value / processes).min(1.0),
        None => 1.0,
    }
}

/// The replicas of `c` the load is spread over (at least one).
fn replicas(c: &Deployed) -> u64 {
    c.replicas.value.max(1)
}

/// Processes (one core each at most) the replicas of `c` run.
fn running(c: &Deployed) -> f64 {
    replicas(c) as f64 * c.processes.value.max(1) as f64 * cores_per_process(c)
}

/// The cores the workers have: one gevent process each, within its CPU limit.
fn worker_cores_available(workers: &[&Deployed]) -> f64 {
    workers.iter().map(|c| replicas(c) as f64 * cores_per_process(c)).sum()
}

fn of(d: &Deployment, component: Component) -> Vec<&Deployed> {
    d.components.iter().filter(|c| c.component == component).collect()
}

/// Every capacity line for the components the deployment runs.
pub fn assess(d: &Deployment, load: &Load) -> Vec<Capacity> {
    let workers = of(d, Component::Worker);
    let on_workers = load::Workers {
        count: workers.iter().map(|c| replicas(c)).sum(),
        rho: worker_utilisation(&workers, load),
        cores: load::worker_cores(load.profile, load.qps),
    };
    let mut out = Vec::new();
    out.extend(api(&of(d, Component::Api), load, on_workers));
    out.extend(worker(&workers, load));
    out.extend(plugin_daemon(&of(d, Component::PluginDaemon), load));
    out
}

/// The workers' utilisation: from the deployment's workers, or, where the inputs have none, the
/// workers `size` would plan (its CPU target's worth).
fn worker_utilisation(workers: &[&Deployed], load: &Load) -> f64 {
    let cores = load::worker_cores(load.profile, load.qps);
    let have = worker_cores_available(workers);
    if have > 0.0 { cores / have } else { cores / planned_workers(load) as f64 }
}

/// The workers `size` would plan where the inputs have none: its CPU target's worth, and enough
/// for a core at the quantile of runs in flight.
fn planned_workers(load: &Load) -> u64 {
    let by_cpu = (load::worker_cores(load.profile, load.qps) / load.cpu_target()).ceil().max(1.0) as u64;
    load::workers_for_the_quantile(load.profile, load.qps, by_cpu, load.assumptions)
}

/// The workers' cores at their peak: the CPU target's worth, or, where that leaves a core busier
/// than [`load::CORE_AT_QUANTILE_MAX`] at the quantile of runs in flight, the workers `size`
/// plans for it (one core each).
fn worker_cores_needed(load: &Load) -> f64 {
    let by_target = load::worker_cores(load.profile, load.qps) / load.cpu_target();
    let planned = planned_workers(load);
    if planned > by_target.ceil().max(1.0) as u64 { planned as f64 } else { by_target }
}

/// The api: greenlets against the per-pod quantile of the requests in flight, cores against the
/// CPU. Several api workloads share the load in proportion to their cores.
fn api(apis: &[&Deployed], load: &Load, workers: load::Workers) -> Vec<Capacity> {
    let Some(first) = apis.first() else { return Vec::new() };
    let (p, a) = (load.profile, load.assumptions);
    let cpu_cores = load::api_cores(p, load.qps);
    let total: f64 = apis.iter().map(|c| running(c)).sum();
    let run_seconds = load::run_seconds(p, workers.rho);
    let (mut current, mut mean, mut peak) = (0.0, 0.0, 0.0);
    for c in apis {
        let share = running(c) / total;
        let (pods, per_pod) = (replicas(c), c.processes.value.max(1));
        let lambda = load.qps * share;
        let rho = cpu_cores * share / running(c);
        let flight = load::api_flight(p, lambda, rho, run_seconds);
        let pod_quantile = load::api_pod_quantile(p, lambda, &flight, rho, pods, per_pod, workers, a);
        let greenlets = c.greenlets.as_ref().map_or(1, |g| g.value);
        current += (pods * per_pod * greenlets) as f64;
        mean += flight.in_flight;
        peak += (pods * per_pod * pod_quantile.div_ceil(per_pod).max(1)) as f64;
    }
    let how = |per: &dyn Fn(&Deployed) -> String| apis.iter().map(|c| per(c)).collect::<Vec<_>>().join(" + ");
    let greenlets = Capacity {
        component: Component::Api,
        measure: Measure::Greenlets,
        current,
        needed_mean: mean,
        needed_peak: peak,
        setting: "SERVER_WORKER_CONNECTIONS (greenlets per process) or SERVER_WORKER_AMOUNT (processes)".into(),
        current_how: how(&|c| {
            format!(
                "{} replicas × {} processes × {}",
                replicas(c),
                c.processes.value,
                c.greenlets.as_ref().map_or(1, |g| g.value)
            )
        }),
        source: first.greenlets.as_ref().map(|g| g.source.clone()).or(Some(first.at.clone())),
    };
    let cores = Capacity {
        component: Component::Api,
        measure: Measure::ApiCores,
        current: total,
        needed_mean: cpu_cores,
        needed_peak: cpu_cores / load.cpu_target(),
        setting: "SERVER_WORKER_AMOUNT (one gevent process per core, within the container's CPU limit) or api \
            replicas"
            .into(),
        current_how: how(&|c| cores_how(c, "processes")),
        source: Some(first.processes.source.clone()),
    };
    vec![greenlets, cores]
}

/// `2 replicas × 4 processes`, with the CPU limit when it gives a process less than a core.
fn cores_how(c: &Deployed, unit: &str) -> String {
    let base = format!("{} replicas × {} {unit}", replicas(c), c.processes.value);
    match &c.cores {
        Some(limit) if cores_per_process(c) < 1.0 => format!("{base} within a CPU limit of {}", fmt(limit.value)),
        _ => base,
    }
}

/// The workers: `-c` against the quantile of the runs and tasks in flight (one broker queue for
/// all), cores against the CPU.
fn worker(workers: &[&Deployed], load: &Load) -> Vec<Capacity> {
    let Some(first) = workers.first() else { return Vec::new() };
    let (p, a) = (load.profile, load.assumptions);
    let cores = load::worker_cores(p, load.qps);
    let have = worker_cores_available(workers);
    let rho = cores / have;
    let flight = load::worker_flight(p, load.qps, rho);
    let count: u64 = workers.iter().map(|c| replicas(c)).sum();
    let slots: u64 = workers.iter().map(|c| replicas(c) * c.concurrency.as_ref().map_or(1, |v| v.value)).sum();
    let concurrency = Capacity {
        component: Component::Worker,
        measure: Measure::Slots,
        current: slots as f64,
        needed_mean: flight.in_flight,
        needed_peak: load::worker_quantile(cores, &flight, rho, count, a) as f64,
        setting: "CELERY_WORKER_AMOUNT (the worker's -c) or worker replicas".into(),
        current_how: workers
            .iter()
            .map(|c| format!("{} replicas × -c {}", replicas(c), c.concurrency.as_ref().map_or(1, |v| v.value)))
            .collect::<Vec<_>>()
            .join(" + "),
        source: first.concurrency.as_ref().map(|v| v.source.clone()).or(Some(first.at.clone())),
    };
    let cpu = Capacity {
        component: Component::Worker,
        measure: Measure::WorkerCores,
        current: have,
        needed_mean: cores,
        needed_peak: worker_cores_needed(load),
        setting: "worker replicas (one gevent process, one core each)".into(),
        current_how: workers.iter().map(|c| cores_how(c, "process")).collect::<Vec<_>>().join(" + "),
        source: Some(first.replicas.source.clone()),
    };
    vec![concurrency, cpu]
}

/// The plugin daemon: its cores (the container's or pod's CPU limit, else the assumed cores per
/// replica) against the CPU the load needs.
fn plugin_daemon(plugins: &[&Deployed], load: &Load) -> Vec<Capacity> {
    let Some(first) = plugins.first() else { return Vec::new() };
    let a = load.assumptions;
    let cores = load::plugin_cores(load.profile, load.qps);
    let per = |c: &Deployed| c.cores.as_ref().map_or(a.plugin_cores_per_replica, |l| l.value);
    let current: f64 = plugins.iter().map(|c| replicas(c) as f64 * per(c)).sum();
    let how = plugins
        .iter()
        .map(|c| match &c.cores {
            Some(l) => format!("{} replicas × {} cores (its CPU limit)", replicas(c), fmt(l.value)),
            None => format!(
                "{} replicas × {} cores (assumed per replica: no CPU limit in the inputs)",
                replicas(c),
                fmt(a.plugin_cores_per_replica)
            ),
        })
        .collect::<Vec<_>>()
        .join(" + ");
    // Where the CPU limit was read, that is the line to change; else the replicas.
    let source = first.cores.as_ref().map(|l| l.source.clone()).unwrap_or_else(|| first.replicas.source.clone());
    vec![Capacity {
        component: Component::PluginDaemon,
        measure: Measure::PluginCores,
        current,
        needed_mean: cores,
        needed_peak: cores / load.cpu_target(),
        setting: "the plugin daemon's CPU limit, or its replicas where it can scale".into(),
        current_how: how,
        source: Some(source),
    }]
}

/// Two decimals at most, no trailing zeros.
pub fn fmt(v: f64) -> String {
    let s = format!("{:.2}", v);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
