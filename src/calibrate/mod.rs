//! `difyplan calibrate`: measure a running Dify's load from its own PostgreSQL tables, read-only,
//! and turn it into a profile `size` takes as it is.

pub mod activity;
pub mod connect;
pub mod db;
pub mod measure;
pub mod saturation;
pub mod window;

use crate::model::capacity::{Capacity, Shortfall};
use crate::model::profile::Profile;
use activity::Activity;
use measure::Measured;
use serde::Serialize;
use window::{Window, format_time};

/// The version of the JSON document `calibrate --format json` prints.
pub const SCHEMA_VERSION: u32 = 1;
/// The share of service-API requests taken to stream when `--service-api-streaming-share` is not
/// given: an assumption, written into the profile as one. No table of Dify records the response
/// mode: checked against every table of Dify 1.16.1's schema (alembic revision 56124e050600);
/// `messages.invoke_from` and `workflow_app_logs.created_from` say where a request came from
/// (service API, web app, …), not whether it streamed.
pub const DEFAULT_SERVICE_API_STREAMING_SHARE: f64 = 0.5;

/// What `calibrate` found: plain data for both formats.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    /// `user@host:port/database`.
    pub database: String,
    pub window: WindowOut,
    pub measured: Measured,
    pub activity: Option<Activity>,
    /// The profile measured (the values `--write-profile` writes).
    pub profile: Profile,
    /// The built-in profile whose values fill the fields not measured.
    pub profile_base: String,
    /// Profile fields taken from the measurement; the others are the base's.
    pub profile_measured: Vec<String>,
    /// The `size` command to run.
    pub size_command: String,
    /// `--compare`: the current capacity beside the measured need at the peak minute.
    pub compare: Option<Compare>,
    /// What the profile rests on besides measurement (the profile's `caveats`), highlighted.
    pub caveats: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowOut {
    pub from: String,
    pub to: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Compare {
    pub deployment: String,
    pub qps: f64,
    pub lines: Vec<Capacity>,
    /// The window sat at this configuration's admission limits: it is saturated, and the lines
    /// above compare it with the load that got through, not the load that came.
    pub saturated: bool,
}

/// The configuration's admission limits on requests in flight, as `check` counts them: the api's
/// greenlets (every request holds one), and the worker's `-c` slots ÷ the streaming share (only
/// streaming runs take a slot; none when nothing streams).
pub fn admission_limits(d: &crate::deployment::Deployment, streaming_share: f64) -> Vec<(String, f64)> {
    use crate::model::capacity::{self, Load, Measure};
    let Ok(profile) = Profile::builtin("chat") else { return Vec::new() };
    let assumptions = crate::model::assumptions::Assumptions::default();
    let edition = crate::model::assumptions::Edition::Ha;
    let load = Load { qps: 1.0, profile: &profile, assumptions: &assumptions, edition };
    capacity::assess(d, &load)
        .into_iter()
        .filter_map(|l| match l.measure {
            Measure::Greenlets => Some((format!("{} {}", l.component, l.measure.label()), l.current)),
            Measure::Slots if streaming_share >= 0.01 => {
                Some((format!("{} {}", l.component, l.measure.label()), l.current / streaming_share))
            }
            _ => None,
        })
        .collect()
}

/// The sentences a profile must carry: the window was saturated; the service API's streaming
/// share was assumed.
pub fn caveats(m: &Measured) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = m.concurrency.caveat(m.rate.mean) {
        out.push(c);
    }
    if m.mix.service_api_streaming_share_assumed {
        out.push(format!(
            "assumed: {:.1}% of the requests came through the service API, whose response mode no table of \
                Dify records; {} of them were taken to stream, so streaming_share {:.4} is an assumption — \
                pass --service-api-streaming-share to calibrate (e.g. from your API clients' code or access \
                logs), or --streaming-share to size",
            m.mix.service_api_share * 100.0,
            m.mix.service_api_streaming_share,
            m.mix.streaming_share
        ));
    }
    out
}

impl WindowOut {
    pub fn new(w: &Window) -> WindowOut {
        WindowOut { from: format_time(w.from), to: format_time(w.to), seconds: w.seconds() }
    }
}

/// The built-in profile nearest the measured mix: agent, chat or workflow.
pub fn nearest_builtin(m: &Measured) -> &'static str {
    if m.mix.agent_share > 0.5 {
        "agent"
    } else if m.mix.chat_share >= 0.5 {
        "chat"
    } else {
        "workflow"
    }
}

/// The measured profile: the nearest built-in with every measured field replaced.
pub fn build_profile(
    m: &Measured,
    a: Option<&Activity>,
    database: &str,
    w: &Window,
) -> Result<(Profile, String, Vec<String>), String> {
    let base_name = nearest_builtin(m);
    let mut p = Profile::builtin(base_name).map_err(|e| e.to_string())?;
    let mut measured = Vec::new();
    p.name = "calibrated".into();
    p.description = format!(
        "Measured by difyplan calibrate on {database}, {} to {} ({} requests); other fields from `{base_name}`",
        format_time(w.from),
        format_time(w.to),
        m.requests.total
    );
    if let Some(mean) = m.duration.all.mean.filter(|v| *v > 0.0) {
        p.request_seconds = round4(mean.clamp(0.001, 3600.0));
        measured.push("request_seconds".to_string());
    }
    if m.requests.total > 0 {
        p.streaming_share = round4(m.mix.streaming_share);
        p.chat_share = round4(m.mix.chat_share);
        measured.extend(["streaming_share".to_string(), "chat_share".to_string()]);
    }
    if let Some(b) = m.log.bytes_per_request {
        p.workflow_log_bytes = b.round();
        measured.push("workflow_log_bytes".into());
    }
    if let Some(c) = a.and_then(|a| a.connections_per_request).filter(|c| c.is_finite() && *c >= 1.0) {
        p.connections_mean = round4(c);
        p.connections_peak = p.connections_peak.max(p.connections_mean);
        measured.push("connections_mean".into());
    }
    p.caveats = caveats(m);
    p.validate().map_err(|e| e.to_string())?;
    Ok((p, base_name.to_string(), measured))
}

/// The profile as TOML that `size --profile FILE` reads: every field, each commented with
/// where its value comes from.
pub fn profile_toml(r: &Report) -> String {
    let p = &r.profile;
    let m = &r.measured;
    // Every field of the profile, as the type has them (toml_edit writes them), then a comment
    // on each that says whether it was measured and how.
    let mut doc = match toml_edit::ser::to_document(p) {
        Ok(doc) => doc,
        Err(e) => return format!("# the profile could not be written as TOML: {e}\n"),
    };
    let dur = |s: &measure::Stat| format!("p50 {}, p95 {}, {} requests", secs(s.p50), secs(s.p95), s.count);
    let keys: Vec<String> = doc.as_table().iter().map(|(k, _)| k.to_string()).collect();
    for key in &keys {
        let key = key.as_str();
        let table = doc.as_table_mut();
        if let Some(f) = table.get(key).and_then(|i| i.as_float()) {
            table.insert(key, toml_edit::value(round4(f)));
        }
        let comment = match key {
            "name" => format!(
                "Measured by `difyplan calibrate` on {}, {} to {}: {} requests ({} workflow runs, {} chat \
                    messages).\n# Fields not measured keep the values of the built-in profile `{}`, each marked so.",
                r.database,
                r.window.from,
                r.window.to,
                m.requests.total,
                m.requests.workflow_runs,
                m.requests.chat_messages,
                r.profile_base
            ),
            "description" => continue,
            "caveats" => {
                "What this profile rests on besides measurement; `size` repeats it when it reads the file.".into()
            }
            _ if r.profile_measured.iter().any(|k| k == key) => match key {
                "request_seconds" => format!(
                    "measured: mean of workflow_runs.elapsed_time (finished runs) and \
                                messages.provider_response_latency; {}{}",
                    dur(&m.duration.all),
                    if m.concurrency.saturated() {
                        "; LOWER BOUND: the window was saturated, the wait in front of Dify is not in it"
                    } else {
                        ""
                    }
                ),
                "streaming_share" if m.mix.service_api_streaming_share_assumed => format!(
                    "ASSUMED in part: web app, explore and editor requests stream; service-API requests \
                                ({:.1}%) taken as {} streaming, an assumption (no table of Dify records the response \
                                mode; give --service-api-streaming-share)",
                    m.mix.service_api_share * 100.0,
                    m.mix.service_api_streaming_share
                ),
                "streaming_share" => format!(
                    "measured: web app, explore and editor requests stream; service-API requests ({:.1}%) \
                                counted as {} streaming (--service-api-streaming-share)",
                    m.mix.service_api_share * 100.0,
                    m.mix.service_api_streaming_share
                ),
                "chat_share" => "measured: messages ÷ (messages + workflow runs of workflow apps)".into(),
                "workflow_log_bytes" => {
                    "measured: size of workflow_runs, workflow_node_executions, workflow_app_logs and messages \
                            ÷ the requests they hold"
                        .into()
                }
                "connections_mean" => {
                    "measured: --sample-activity, connections active or in a transaction ÷ requests in flight".into()
                }
                _ => "measured".into(),
            },
            _ => format!("not measured: from the built-in profile `{}`", r.profile_base),
        };
        if let Some(mut k) = doc.as_table_mut().key_mut(key) {
            k.leaf_decor_mut().set_prefix(format!("# {comment}\n"));
        }
    }
    doc.to_string()
}

/// The `size` command for the measured load: the 95th-percentile minute (at least the mean).
pub fn size_command(m: &Measured, profile_file: Option<&str>) -> String {
    let qps = plan_qps(m);
    format!(
        "difyplan size --qps {} --profile {}",
        crate::model::capacity::fmt(qps),
        profile_file.unwrap_or("FILE.toml")
    )
}

/// The QPS to plan for: the peak minute, which `size`'s quantiles then cover within the minute.
pub fn plan_qps(m: &Measured) -> f64 {
    let q = m.rate.peak_minute.max(m.rate.mean);
    // Two significant decimals, rounded up, never below 0.01.
    ((q * 100.0 - 1e-9).ceil() / 100.0).max(0.01)
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

/// `8.23 s`, or `—`.
pub fn secs(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2} s")).unwrap_or_else(|| "—".into())
}

pub fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{:.2}", v)).unwrap_or_else(|| "—".into())
}

/// The report for people.
pub fn render_table(r: &Report) -> String {
    let m = &r.measured;
    let mut o = String::new();
    let pct = |v: f64| format!("{:.1}%", v * 100.0);
    o.push_str(&format!(
        "Dify database {} (schema revision {}), {} to {} ({:.0} s)\n\n",
        r.database,
        m.schema_revision.as_deref().unwrap_or("unknown"),
        r.window.from,
        r.window.to,
        r.window.seconds
    ));
    for c in &r.caveats {
        o.push_str(&format!("ATTENTION: {c}\n"));
    }
    if !r.caveats.is_empty() {
        o.push('\n');
    }
    o.push_str(&format!(
        "requests          {} = {} workflow runs (workflow_runs, type workflow) + {} chat messages \
            (messages; {} of them advanced-chat, whose workflow run is not counted again)\n",
        m.requests.total, m.requests.workflow_runs, m.requests.chat_messages, m.mix.messages_with_workflow_run
    ));
    o.push_str(&format!(
        "rate (req/s)      mean {:.2}   p95 minute {:.2}   peak minute {:.2}   ({} whole minutes)\n",
        m.rate.mean, m.rate.p95_minute, m.rate.peak_minute, m.rate.minutes
    ));
    let line = |name: &str, s: &measure::Stat| {
        format!(
            "{name:<18}mean {}   p50 {}   p95 {}   ({} finished)\n",
            secs(s.mean),
            secs(s.p50),
            secs(s.p95),
            s.count
        )
    };
    let c = &m.concurrency;
    o.push_str(&format!(
        "in flight         mean {:.2}   peak {}{}\n",
        c.mean,
        c.peak,
        c.ceiling
            .as_ref()
            .map(|k| format!("   sat at {} for {:.0} s ({:.0}% of the window)", k.level, k.seconds, k.share * 100.0))
            .unwrap_or_default()
    ));
    for l in &c.limits {
        o.push_str(&format!(
            "  at {} ({})  {:.0} s ({:.1}% of the window){}\n",
            l.what,
            crate::model::capacity::fmt(l.limit),
            l.seconds,
            l.share * 100.0,
            if l.saturated { "  saturated" } else { "" }
        ));
    }
    o.push_str(&line("duration, all", &m.duration.all));
    o.push_str(&line("  workflow runs", &m.duration.workflow));
    o.push_str(&line("  chat messages", &m.duration.chat));
    o.push_str(&format!(
        "mix               chat {}   workflow {}   by app mode: {}\n",
        pct(m.mix.chat_share),
        pct(1.0 - m.mix.chat_share),
        m.requests.by_app_mode.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    ));
    o.push_str(&format!(
        "sources           {}\n",
        m.requests.by_source.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    ));
    o.push_str(&format!(
        "streaming share   {} (web app, explore, editor: {}; service API {} taken as {} streaming: \
            --service-api-streaming-share)\n",
        pct(m.mix.streaming_share),
        pct(m.mix.streaming_sources_share),
        pct(m.mix.service_api_share),
        m.mix.service_api_streaming_share
    ));
    o.push_str(&format!("nodes per run     {}\n", opt(m.nodes_per_run)));
    let tables = m
        .log
        .tables
        .iter()
        .map(|t| format!("{} {} B / {} rows", t.table, t.bytes, t.rows.map_or("?".into(), |r| format!("{r:.0}"))))
        .collect::<Vec<_>>()
        .join(", ");
    o.push_str(&format!(
        "log bytes/request {} ({tables})\n",
        m.log.bytes_per_request.map_or("— (no row estimate: ANALYZE has not run)".into(), |b| format!("{b:.0}"))
    ));
    if let Some(a) = &r.activity {
        o.push_str(&format!(
            "\nactivity over {:.1} s ({} samples every 100 ms), connections to this database:\n",
            a.seconds, a.samples
        ));
        for (state, l) in &a.by_state {
            o.push_str(&format!("  {state:<30} mean {:>7.2}   peak {:>4}\n", l.mean, l.peak));
        }
        o.push_str("  by client (role, application, address): held (active or in a transaction) / open\n");
        for c in &a.by_client {
            o.push_str(&format!(
                "  {:<16} {:<24} {:<16} held mean {:.2} peak {}   open mean {:.2} peak {}\n",
                c.role, c.application, c.address, c.held.mean, c.held.peak, c.total.mean, c.total.peak
            ));
        }
        o.push_str(&format!(
            "  requests in flight {} (rate {:.2}/s over the same seconds × mean {}); connections held \
                per request in flight {}\n",
            a.in_flight.map_or("—".into(), |l| format!("{l:.2}")),
            a.rate,
            secs(m.duration.all.mean),
            a.connections_per_request.map_or("— (no requests during the sample)".into(), |c| format!("{c:.2}"))
        ));
    }
    o.push_str(&format!("\nprofile: measured {}; the rest from `{}`\n", r.profile_measured.join(", "), r.profile_base));
    if let Some(c) = &r.compare {
        o.push_str(&format!(
            "\ncurrent capacity of {} at {} req/s (the peak minute):\n",
            c.deployment,
            crate::model::capacity::fmt(c.qps)
        ));
        if c.saturated {
            o.push_str(
                "  this configuration is SATURATED, not sized: the window sat at its admission limits, so the \
                    load below is what got through; the load that came was higher\n",
            );
        }
        for l in &c.lines {
            let at_limit = m
                .concurrency
                .limits
                .iter()
                .any(|a| a.saturated && a.what == format!("{} {}", l.component, l.measure.label()));
            let verdict = match l.shortfall() {
                _ if at_limit => "saturated",
                Some(Shortfall::BelowMean) => "queues without bound",
                Some(_) => "queues at peaks",
                None => "ok",
            };
            o.push_str(&format!(
                "  {:<14} {:<26} has {:>7}  needs mean {:>7}  peak {:>7}  {verdict}  ({})\n",
                l.component.to_string(),
                l.measure.label(),
                crate::model::capacity::fmt(l.current),
                crate::model::capacity::fmt(l.needed_mean),
                crate::model::capacity::fmt(l.needed_peak),
                l.current_how
            ));
        }
    }
    o.push_str(&format!("\nnext: {}\n", r.size_command));
    o
}
