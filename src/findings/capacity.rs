//! Capacity against a load: what a deployment's settings can carry at a given QPS and profile,
//! with the same arithmetic as `size` (Little's law for the mean in flight, the Poisson quantile
//! for the peaks, one core per gevent process). `check --qps` turns the shortfalls into findings;
//! `calibrate --compare` prints the lines beside the measured need.
//!
//! Below the mean (requests in flight, or cores) a component receives work faster than it can
//! finish it, so its queue grows without bound: an error. Between the mean and the quantile (or
//! the CPU target) it copes on average but queues at peaks: a warning.

use super::{Code, Finding, Severity};
use crate::dify::Component;
use crate::dify::deployment::{Deployed, Deployment, Source};
use crate::model::assumptions::{Assumptions, Edition};
use crate::model::profile::Profile;
use crate::model::queueing::poisson_quantile;
use serde::Serialize;

/// The load a deployment is judged against.
#[derive(Debug, Clone)]
pub struct Load<'a> {
    pub qps: f64,
    pub profile: &'a Profile,
    pub assumptions: &'a Assumptions,
}

/// One capacity of one component beside what the load needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capacity {
    pub component: Component,
    /// What is counted: `greenlets`, `processes (cores)`, `-c (runs)`, `cores`.
    pub what: String,
    /// What the deployment has.
    pub current: f64,
    /// The mean the load needs: below it the queue grows without bound.
    pub needed_mean: f64,
    /// The peak to size for (the in-flight quantile, or the cores at the CPU target).
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
    pub fn severity(&self) -> Option<Severity> {
        if self.current < self.needed_mean {
            Some(Severity::Error)
        } else if self.current < self.needed_peak {
            Some(Severity::Warning)
        } else {
            None
        }
    }
}

/// The CPU target of the edition `size` plans by default (`ha`), unless `--assume cpu_target=` says otherwise.
fn cpu_target(a: &Assumptions) -> f64 {
    a.cpu_target.unwrap_or(Edition::Ha.rules().cpu_target)
}

fn replicas_times(c: &Deployed) -> u64 {
    c.replicas.value.max(1)
}

/// Every capacity line for the components the deployment runs.
pub fn assess(d: &Deployment, load: &Load) -> Vec<Capacity> {
    let p = load.profile;
    let a = load.assumptions;
    let lambda = load.qps;
    let target = cpu_target(a);
    let mut out = Vec::new();

    let apis: Vec<&Deployed> = d.components.iter().filter(|c| c.component == Component::Api).collect();
    if !apis.is_empty() {
        // Every request, blocking or streaming, holds an api greenlet for its whole time.
        let in_flight = lambda * p.request_seconds;
        let quantile = poisson_quantile(in_flight, a.quantile) as f64;
        let greenlets: u64 = apis
            .iter()
            .map(|c| replicas_times(c) * c.processes.value * c.greenlets.as_ref().map_or(1, |g| g.value))
            .sum();
        let processes: u64 = apis.iter().map(|c| replicas_times(c) * c.processes.value).sum();
        let first = apis[0];
        let how = |c: &Deployed, per: Option<u64>| match per {
            Some(g) => format!("{} replicas × {} processes × {g}", replicas_times(c), c.processes.value),
            None => format!("{} replicas × {}", replicas_times(c), c.processes.value),
        };
        out.push(Capacity {
            component: Component::Api,
            what: "greenlets".into(),
            current: greenlets as f64,
            needed_mean: in_flight,
            needed_peak: quantile,
            setting: "SERVER_WORKER_CONNECTIONS (greenlets per process) or SERVER_WORKER_AMOUNT (processes)".into(),
            current_how: apis
                .iter()
                .map(|c| how(c, c.greenlets.as_ref().map(|g| g.value)))
                .collect::<Vec<_>>()
                .join(" + "),
            source: first.greenlets.as_ref().map(|g| g.source.clone()).or(Some(first.at.clone())),
        });
        // One gevent process uses at most one core.
        let cores = lambda * p.api_cpu_ms() / 1000.0;
        out.push(Capacity {
            component: Component::Api,
            what: "processes (one core each)".into(),
            current: processes as f64,
            needed_mean: cores,
            needed_peak: cores / target,
            setting: "SERVER_WORKER_AMOUNT (one gevent process per core) or api replicas".into(),
            current_how: apis.iter().map(|c| how(c, None)).collect::<Vec<_>>().join(" + "),
            source: Some(first.processes.source.clone()),
        });
    }

    let workers: Vec<&Deployed> = d.components.iter().filter(|c| c.component == Component::Worker).collect();
    if !workers.is_empty() {
        // Streaming runs execute in the worker for the request's whole time; background tasks beside them.
        let in_flight =
            lambda * p.streaming_share * p.request_seconds + lambda * p.celery_tasks * p.celery_task_seconds;
        let slots: u64 =
            workers.iter().map(|c| replicas_times(c) * c.concurrency.as_ref().map_or(1, |v| v.value)).sum();
        let first = workers[0];
        out.push(Capacity {
            component: Component::Worker,
            what: "-c slots".into(),
            current: slots as f64,
            needed_mean: in_flight,
            needed_peak: poisson_quantile(in_flight, a.quantile) as f64,
            setting: "CELERY_WORKER_AMOUNT (the worker's -c) or worker replicas".into(),
            current_how: workers
                .iter()
                .map(|c| {
                    format!("{} replicas × -c {}", replicas_times(c), c.concurrency.as_ref().map_or(1, |v| v.value))
                })
                .collect::<Vec<_>>()
                .join(" + "),
            source: first.concurrency.as_ref().map(|v| v.source.clone()).or(Some(first.at.clone())),
        });
    }

    let plugins: Vec<&Deployed> = d.components.iter().filter(|c| c.component == Component::PluginDaemon).collect();
    if !plugins.is_empty() {
        let replicas: u64 = plugins.iter().map(|c| replicas_times(c)).sum();
        let cores = lambda * p.plugin_cpu_ms / 1000.0;
        out.push(Capacity {
            component: Component::PluginDaemon,
            what: "cores".into(),
            current: replicas as f64 * a.plugin_cores_per_replica,
            needed_mean: cores,
            needed_peak: cores / target,
            setting: "plugin_daemon replicas".into(),
            current_how: format!("{replicas} replicas × {} cores (assumed per replica)", a.plugin_cores_per_replica),
            source: Some(plugins[0].replicas.source.clone()),
        });
    }
    out
}

/// The shortfalls as findings: errors below the mean, warnings below the peak.
pub fn findings(lines: &[Capacity], load: &Load) -> Vec<Finding> {
    let p = load.profile;
    let mut out = Vec::new();
    for c in lines {
        let Some(severity) = c.severity() else { continue };
        let code = match (c.component, c.what.as_str()) {
            (Component::Api, "greenlets") => Code::ApiGreenletsBelowLoad,
            (Component::Api, _) => Code::ApiProcessesBelowLoad,
            (Component::Worker, _) => Code::WorkerConcurrencyBelowLoad,
            _ => Code::PluginDaemonBelowLoad,
        };
        let load_words = format!(
            "{} req/s × {} s ({} streaming, profile `{}`)",
            fmt(load.qps),
            fmt(p.request_seconds),
            fmt(p.streaming_share),
            p.name
        );
        let (message, remedy) = match severity {
            Severity::Error => (
                format!(
                    "{} has {} {} ({}) but {load_words} needs {} on average: requests queue without bound",
                    c.component,
                    fmt(c.current),
                    c.what,
                    c.current_how,
                    fmt(c.needed_mean)
                ),
                format!(
                    "raise {} to at least {} in total (`difyplan size --qps {} --profile …` computes every setting)",
                    c.setting,
                    fmt(c.needed_peak.ceil()),
                    fmt(load.qps)
                ),
            ),
            _ => (
                format!(
                    "{} has {} {} ({}): enough for the mean {} of {load_words} but below the peak {}, so requests wait at peaks",
                    c.component,
                    fmt(c.current),
                    c.what,
                    c.current_how,
                    fmt(c.needed_mean),
                    fmt(c.needed_peak)
                ),
                format!("raise {} to {} in total", c.setting, fmt(c.needed_peak.ceil())),
            ),
        };
        let mut f = Finding::new(code, message, remedy).on(c.component);
        f.severity = severity;
        if let Some(s) = &c.source {
            f = f.at(s);
        }
        out.push(f);
    }
    out
}

/// Two decimals at most, no trailing zeros.
pub fn fmt(v: f64) -> String {
    let s = format!("{:.2}", v);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
