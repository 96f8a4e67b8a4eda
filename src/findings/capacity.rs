//! `check --qps`: the model's capacity lines (`model::capacity`, the arithmetic `size` plans
//! with) as findings. Below the mean a queue grows without bound: an error. Between the mean and
//! the peak `size` plans for, work waits at peaks: a warning.

use super::{Code, Finding, Severity};
use crate::dify::Component;
use crate::model::capacity::{Capacity, Load, Measure, Shortfall, fmt};

/// The finding's severity for a capacity line; `None` when it covers the peak.
pub fn severity(c: &Capacity) -> Option<Severity> {
    c.shortfall().map(|s| match s {
        Shortfall::BelowMean => Severity::Error,
        Shortfall::BelowPeak => Severity::Warning,
    })
}

/// The shortfalls as findings. `compose`: the deployment runs on docker compose, where the plugin
/// daemon is one container whose CPU limit is the lever, not its replicas.
pub fn findings(lines: &[Capacity], load: &Load, compose: bool) -> Vec<Finding> {
    let p = load.profile;
    let mut out = Vec::new();
    for c in lines {
        let Some(severity) = severity(c) else { continue };
        let code = match c.measure {
            Measure::Greenlets => Code::ApiGreenletsBelowLoad,
            Measure::ApiCores => Code::ApiProcessesBelowLoad,
            Measure::Slots => Code::WorkerConcurrencyBelowLoad,
            Measure::WorkerCores => Code::WorkerProcessesBelowLoad,
            Measure::PluginCores => Code::PluginDaemonBelowLoad,
        };
        let load_words = format!(
            "{} req/s × {} s ({} streaming, profile `{}`)",
            fmt(load.qps),
            fmt(p.request_seconds),
            fmt(p.streaming_share),
            p.name
        );
        let setting = if c.component == Component::PluginDaemon && compose {
            "the plugin_daemon container's `cpus` limit (compose runs one: it publishes the plugin debugging port)"
                .to_string()
        } else {
            c.setting.clone()
        };
        let message = match severity {
            Severity::Error => format!(
                "{} has {} {} ({}) but {load_words} needs {} on average: requests queue without bound",
                c.component,
                fmt(c.current),
                c.measure.label(),
                c.current_how,
                fmt(c.needed_mean)
            ),
            _ => format!(
                "{} has {} {} ({}): enough for the mean {} of {load_words} but below the peak {}, so requests \
                    wait at peaks",
                c.component,
                fmt(c.current),
                c.measure.label(),
                c.current_how,
                fmt(c.needed_mean),
                fmt(c.needed_peak)
            ),
        };
        let remedy = format!(
            "raise {setting} to {} in total (`difyplan size --qps {} --profile {}` computes every setting)",
            fmt(c.needed_peak.ceil()),
            fmt(load.qps),
            p.name
        );
        let mut f = Finding::new(code, message, remedy).on(c.component);
        f.severity = severity;
        if let Some(s) = &c.source {
            f = f.at(s);
        }
        out.push(f);
    }
    out
}
