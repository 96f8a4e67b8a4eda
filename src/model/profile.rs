//! Workload profiles: what one request costs each component. Built-in profiles are the TOML files
//! in `matrices/profiles/`, embedded at build time; users may pass their own file.

use super::units::Millis;
use serde::{Deserialize, Serialize};

/// What one request at the api costs, on average. Every field is per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// A short name (the file stem for built-ins).
    pub name: String,
    /// One line for people.
    pub description: String,
    /// Mean time in the system, seconds, LLM streaming included (W of Little's law).
    pub request_seconds: f64,
    /// Share of requests sent with `response_mode: streaming`; the rest block.
    pub streaming_share: f64,
    /// Share of requests to chat apps (Chatflow, agent); the rest go to workflow apps.
    pub chat_share: f64,
    /// Connections one in-flight blocking request holds, mean.
    pub connections_mean: f64,
    /// Connections one in-flight blocking request holds, peak.
    pub connections_peak: f64,
    /// api CPU per blocking request besides its wait, ms: the fixed part.
    pub api_cpu_ms_blocking: Millis,
    /// api CPU per second a blocking request waits (the worker thread polls while it waits), ms.
    /// Measured on Dify 1.16.1: about 5.4 ms per second of wait (docs/model.md, "CPU"). Profiles
    /// written before this field existed take the measured value.
    #[serde(default = "default_api_cpu_ms_per_wait_second")]
    pub api_cpu_ms_per_wait_second: f64,
    /// api CPU per streaming request (relaying events), ms.
    pub api_cpu_ms_streaming: Millis,
    /// Celery worker CPU per streaming run, ms.
    pub worker_cpu_ms_streaming: Millis,
    /// PostgreSQL CPU per request, ms.
    pub pg_cpu_ms: Millis,
    /// Plugin daemon CPU per request, ms.
    pub plugin_cpu_ms: Millis,
    /// Time the plugin daemon holds a connection to `dify_plugin` per request, ms.
    pub plugin_db_ms: Millis,
    /// Background Celery tasks queued per request (besides streaming runs).
    pub celery_tasks: f64,
    /// Seconds one background task runs.
    pub celery_task_seconds: f64,
    /// Worker CPU per background task, ms.
    pub celery_task_cpu_ms: Millis,
    /// Redis operations per request (api, worker and plugin daemon together).
    pub redis_ops: f64,
    /// Bytes of workflow log (runs, node executions, messages) written to PostgreSQL per request.
    pub workflow_log_bytes: f64,
    /// What a measured profile rests on besides measurement (a value assumed, a window measured
    /// while saturated), one sentence each; `size` repeats them when it reads the profile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caveats: Vec<String>,
}

/// The built-in profiles, embedded so `cargo install` carries them.
pub const BUILTIN: &[(&str, &str)] = &[
    ("agent", include_str!("../../matrices/profiles/agent.toml")),
    ("benchmark", include_str!("../../matrices/profiles/benchmark.toml")),
    ("chat", include_str!("../../matrices/profiles/chat.toml")),
    ("workflow", include_str!("../../matrices/profiles/workflow.toml")),
];

/// A bad profile, with where it is as data; the text (which names the file, the line and what
/// to do) is this one `Display`.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("unknown profile `{name}` — use one of {known} or the path of a profile TOML file")]
    Unknown { name: String, known: String },
    /// The file could not be read.
    #[error("{0}")]
    Read(String),
    /// Not TOML of a profile: a syntax error, an unknown or missing field.
    #[error(
        "{file}:{line}:{column}: {message} — a profile has the fields of the built-in ones, each also a flag \
         (`difyplan size --help` lists them)"
    )]
    Syntax { file: String, line: usize, column: usize, message: String },
    /// A field out of its range, at its line when the file has one.
    #[error("{file}{}: {invalid}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Field { file: String, line: Option<usize>, invalid: Invalid },
    /// A command-line override out of range, or not a finite number.
    #[error("command-line override: {0}")]
    Override(Invalid),
}

/// A value out of its range: the field, and what is wrong and what to give.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{problem}")]
pub struct Invalid {
    /// The field it is about, when one field is.
    pub field: Option<&'static str>,
    pub problem: String,
}

impl Invalid {
    fn of(field: &'static str, problem: String) -> Invalid {
        Invalid { field: Some(field), problem }
    }
}

impl Profile {
    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Result<Profile, ProfileError> {
        match BUILTIN.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => Profile::parse(text, &format!("built-in profile `{name}`")),
            None => Err(ProfileError::Unknown {
                name: name.to_string(),
                known: BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// Whether `name` is a built-in profile.
    pub fn is_builtin(name: &str) -> bool {
        BUILTIN.iter().any(|(n, _)| *n == name)
    }

    /// Parse and validate; `source` names the file in messages.
    pub fn parse(text: &str, source: &str) -> Result<Profile, ProfileError> {
        let profile: Profile = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ProfileError::Syntax { file: source.to_string(), line, column, message: e.message().trim().to_string() }
        })?;
        profile.validate().map_err(|invalid| ProfileError::Field {
            file: source.to_string(),
            line: invalid.field.and_then(|f| field_line(text, f)),
            invalid,
        })?;
        Ok(profile)
    }

    /// Apply command-line overrides, then validate again.
    /// `overrides` serializes to a map of profile fields (the command line's flags, `None` left
    /// out); each replaces the profile's value.
    pub fn with_overrides(&self, overrides: &impl Serialize) -> Result<Profile, ProfileError> {
        let not_a_number = || {
            ProfileError::Override(Invalid {
                field: None,
                problem: "a profile override is not a finite number — pass a plain number such as 8 or 0.5".into(),
            })
        };
        let mut value = serde_json::to_value(self).map_err(|_| not_a_number())?;
        let patch = serde_json::to_value(overrides).map_err(|_| not_a_number())?;
        if let (Some(base), Some(patch)) = (value.as_object_mut(), patch.as_object()) {
            for (k, v) in patch {
                base.insert(k.clone(), v.clone());
            }
        }
        // A non-finite override cannot pass through JSON; catch it before it becomes `null`.
        let profile: Profile = serde_json::from_value(value).map_err(|_| not_a_number())?;
        profile.validate().map_err(ProfileError::Override)?;
        Ok(profile)
    }

    /// Every value finite and within its meaning; the message names the field and the fix.
    pub fn validate(&self) -> Result<(), Invalid> {
        let fields: [(&str, f64); 17] = [
            ("request_seconds", self.request_seconds),
            ("streaming_share", self.streaming_share),
            ("chat_share", self.chat_share),
            ("connections_mean", self.connections_mean),
            ("connections_peak", self.connections_peak),
            ("api_cpu_ms_blocking", self.api_cpu_ms_blocking.ms()),
            ("api_cpu_ms_per_wait_second", self.api_cpu_ms_per_wait_second),
            ("api_cpu_ms_streaming", self.api_cpu_ms_streaming.ms()),
            ("worker_cpu_ms_streaming", self.worker_cpu_ms_streaming.ms()),
            ("pg_cpu_ms", self.pg_cpu_ms.ms()),
            ("plugin_cpu_ms", self.plugin_cpu_ms.ms()),
            ("plugin_db_ms", self.plugin_db_ms.ms()),
            ("celery_tasks", self.celery_tasks),
            ("celery_task_seconds", self.celery_task_seconds),
            ("celery_task_cpu_ms", self.celery_task_cpu_ms.ms()),
            ("redis_ops", self.redis_ops),
            ("workflow_log_bytes", self.workflow_log_bytes),
        ];
        // The name goes into every rendered file's header comment: one line of plain text.
        if self.name.chars().any(|c| c.is_control()) {
            return Err(Invalid::of(
                "name",
                format!(
                    "`name` is `{}`, which holds a control character — write the name on one line, as plain text",
                    crate::safety::escape(&self.name)
                ),
            ));
        }
        for (name, v) in fields {
            if !v.is_finite() || v < 0.0 {
                return Err(Invalid::of(name, format!("`{name}` is {}; it must be a finite number ≥ 0", shown(v))));
            }
        }
        // Every field has a ceiling far above real workloads, so no product in the model can
        // reach infinity (an `inf` in a table, a `null` in JSON).
        for (name, v, max) in [
            ("connections_mean", self.connections_mean, 1_000.0),
            ("connections_peak", self.connections_peak, 1_000.0),
            ("plugin_db_ms", self.plugin_db_ms.ms(), 3_600_000.0),
            ("api_cpu_ms_per_wait_second", self.api_cpu_ms_per_wait_second, 1_000.0),
            ("celery_tasks", self.celery_tasks, 1_000.0),
            ("celery_task_seconds", self.celery_task_seconds, 86_400.0),
            ("redis_ops", self.redis_ops, 1_000_000.0),
            ("workflow_log_bytes", self.workflow_log_bytes, 1e9),
        ] {
            if v > max {
                return Err(Invalid::of(
                    name,
                    format!(
                        "`{name}` is {}, above {} — no real workload is near that; give a measured value",
                        shown(v),
                        shown(max)
                    ),
                ));
            }
        }
        for (name, v) in [("streaming_share", self.streaming_share), ("chat_share", self.chat_share)] {
            if v > 1.0 {
                return Err(Invalid::of(name, format!("`{name}` is {}; a share lies between 0 and 1", shown(v))));
            }
        }
        if !(self.request_seconds >= 0.001 && self.request_seconds <= 3600.0) {
            return Err(Invalid::of(
                "request_seconds",
                format!(
                    "`request_seconds` is {}; give the mean request time in seconds, between 0.001 and 3600",
                    shown(self.request_seconds)
                ),
            ));
        }
        if self.connections_mean < 1.0 || self.connections_peak < self.connections_mean {
            return Err(Invalid::of(
                "connections_mean",
                format!(
                    "connections per request must satisfy 1 ≤ connections_mean ({}) ≤ connections_peak ({}); a \
                        blocking request holds at least one connection",
                    shown(self.connections_mean),
                    shown(self.connections_peak)
                ),
            ));
        }
        for (name, v) in [
            ("api_cpu_ms_blocking", self.api_cpu_ms_blocking.ms()),
            ("api_cpu_ms_streaming", self.api_cpu_ms_streaming.ms()),
            ("worker_cpu_ms_streaming", self.worker_cpu_ms_streaming.ms()),
            ("pg_cpu_ms", self.pg_cpu_ms.ms()),
            ("plugin_cpu_ms", self.plugin_cpu_ms.ms()),
            ("celery_task_cpu_ms", self.celery_task_cpu_ms.ms()),
        ] {
            if v > 60_000.0 {
                return Err(Invalid::of(
                    name,
                    format!(
                        "`{name}` is {} ms of CPU per request; values above 60000 are not a web workload",
                        shown(v)
                    ),
                ));
            }
        }
        if (self.api_cpu_ms_blocking + self.api_cpu_ms_streaming).ms() <= 0.0 {
            return Err(Invalid::of(
                "api_cpu_ms_blocking",
                "api CPU per request is 0; every request costs the api some CPU (the measured minimum is 32 ms)".into(),
            ));
        }
        Ok(())
    }

    pub fn blocking_share(&self) -> f64 {
        1.0 - self.streaming_share
    }

    /// api CPU of one blocking request, ms: the fixed part plus the part that grows with the
    /// wait (the whole request time is taken as the wait).
    pub fn api_cpu_ms_blocking_total(&self) -> Millis {
        self.api_cpu_ms_blocking + Millis(self.api_cpu_ms_per_wait_second * self.request_seconds)
    }

    /// api CPU per request averaged over the response modes, ms.
    pub fn api_cpu_ms(&self) -> Millis {
        self.blocking_share() * self.api_cpu_ms_blocking_total() + self.streaming_share * self.api_cpu_ms_streaming
    }
}

/// The measured growth of the api's CPU with a blocking request's wait (docs/model.md, "CPU").
pub const MEASURED_API_CPU_MS_PER_WAIT_SECOND: f64 = 5.4;

fn default_api_cpu_ms_per_wait_second() -> f64 {
    MEASURED_API_CPU_MS_PER_WAIT_SECOND
}

/// A number as a message shows it: exponent form when it is huge or tiny, not 300 digits.
fn shown(v: f64) -> String {
    if v != 0.0 && !(1e-6..1e9).contains(&v.abs()) { format!("{v:e}") } else { v.to_string() }
}

/// The line of the first field a validation message names (`name = …` in the file).
/// The line of `field`'s `field = …` in a profile file.
fn field_line(text: &str, field: &str) -> Option<usize> {
    text.lines().position(|l| l.split_once('=').is_some_and(|(k, _)| k.trim() == field)).map(|i| i + 1)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
