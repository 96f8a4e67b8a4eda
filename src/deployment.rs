//! A deployment description: what runs, how many of it, and every setting with where it came
//! from. The config readers (compose, Kubernetes, Helm values) produce it; the model judges it
//! (`model::budget::of_deployment`, `model::capacity`) and `check` reports.

use crate::dify::db_type::DbType;
use crate::dify::{Component, DifyVersion, defaults};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// Where a value came from, so a finding can point at the line to change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// A line of a file the user gave.
    File { path: String, line: usize },
    /// Not set anywhere: Dify's (or PostgreSQL's, or Kubernetes') default applies.
    Default { what: String },
    /// A command-line flag.
    Flag { flag: String },
}

impl Source {
    /// A line of a file; the path is cleaned as every format shows it (`clean_path`).
    pub fn file(path: impl Into<String>, line: usize) -> Source {
        Source::File { path: crate::safety::escape::clean_path(&path.into()), line }
    }
    pub fn default(what: impl Into<String>) -> Source {
        Source::Default { what: what.into() }
    }
    /// `(path, line)` when the value was written in a file.
    pub fn location(&self) -> Option<(&str, usize)> {
        match self {
            Source::File { path, line } => Some((path, *line)),
            _ => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File { path, line } => write!(f, "{path}:{line}"),
            Source::Default { what } => f.write_str(what),
            Source::Flag { flag } => write!(f, "{flag}"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Valued<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Valued<T> {
    pub fn new(value: T, source: Source) -> Self {
        Valued { value, source }
    }
}

/// An environment as a component sees it: every variable with its source.
pub type Env = BTreeMap<String, Valued<String>>;

/// How the Celery worker runs its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CeleryPool {
    /// One process; its greenlets share one SQLAlchemy pool.
    Gevent,
    /// One process per task slot, each with its own pool.
    Prefork,
    /// Threads in one process sharing one pool (`threads`, `solo`, `eventlet`).
    Shared,
}

/// One component as deployed.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Deployed {
    pub component: Component,
    /// The service, Deployment or chart key it was read from.
    pub name: String,
    /// Where it is declared (the service, the manifest, the values key).
    pub at: Source,
    pub replicas: Valued<u64>,
    /// The HPA maximum when an autoscaler targets it; otherwise the replicas.
    pub max_replicas: Valued<u64>,
    /// Extra pods during a rolling update.
    pub surge: Valued<u64>,
    /// Processes per pod with their own pool.
    pub processes: Valued<u64>,
    /// Request greenlets per process (api, api_websocket).
    pub greenlets: Option<Valued<u64>>,
    /// Celery `-c` (worker).
    pub concurrency: Option<Valued<u64>>,
    pub celery_pool: Option<CeleryPool>,
    /// `SQLALCHEMY_POOL_SIZE` (plugin daemon: `DB_MAX_IDLE_CONNS`).
    pub pool_size: Valued<u64>,
    /// `SQLALCHEMY_MAX_OVERFLOW` (plugin daemon: none; the cap is `DB_MAX_OPEN_CONNS`).
    pub max_overflow: Valued<u64>,
    /// Connections one process may open.
    pub per_process_max: u64,
    /// The CPU cores one container or pod may use (compose `cpus`, Kubernetes `resources`), when
    /// the inputs set a limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cores: Option<Valued<f64>>,
    /// The environment the component runs with. Serialized with secrets masked and only
    /// the settings difyplan reads, so no output can leak a password.
    #[serde(serialize_with = "serialize_env")]
    #[schemars(with = "Env")]
    pub env: Env,
}

impl Deployed {
    /// Pods that can run at once: maximum replicas plus surge.
    pub fn worst_pods(&self) -> u64 {
        self.max_replicas.value.max(self.replicas.value).saturating_add(self.surge.value)
    }
}

/// A PgBouncer between Dify and PostgreSQL, as deployed.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DeployedPooler {
    /// The compose service or Deployment.
    pub name: String,
    pub at: Source,
    /// Pods (containers) that can run at once: replicas plus surge.
    pub pods: Valued<u64>,
    /// PgBouncer processes per pod (several on one port with `so_reuseport`), each with its own pools.
    pub processes: u64,
    pub default_pool_size: Valued<u64>,
    /// `reserve_pool_size`: more server connections a pool may open when clients wait.
    pub reserve_pool_size: Valued<u64>,
    pub max_client_conn: Valued<u64>,
    pub pool_mode: Valued<String>,
    /// The components whose `DB_HOST` points at it.
    pub routed: Vec<Component>,
}

/// Everything `check` knows about one deployment.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Deployment {
    pub version: DifyVersion,
    pub version_source: Source,
    /// Dify's `DB_TYPE`: the server whose cap applies (shown only for MySQL).
    #[serde(default, skip_serializing_if = "DbType::is_postgresql")]
    pub db_type: DbType,
    pub components: Vec<Deployed>,
    pub max_connections: Valued<u64>,
    /// `max_connections` was read from the inputs or a flag, not assumed.
    pub max_connections_found: bool,
    /// `DB_USERNAME`; Dify's default `postgres` is a superuser.
    pub app_role: Valued<String>,
    pub app_role_superuser: bool,
    /// PostgreSQL's `idle_in_transaction_session_timeout` as configured (ms or with a unit);
    /// `None` when the database's settings are not among the inputs.
    pub idle_in_transaction_timeout: Option<Valued<String>>,
    /// Autoscalers whose target is not among the inputs, or whose maximum is not set: their
    /// pods were not counted (`hpa-unbounded`).
    pub unbounded_autoscalers: Vec<Valued<String>>,
    /// Helm values: the chart and the chart version whose defaults the reading applied, with
    /// what said which chart it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart: Option<Valued<String>>,
    /// Helm values: the chart version was not stated or is not one difyplan knows, so another
    /// version's defaults were applied (`chart-version-assumed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart_version_assumed: Option<Valued<String>>,
    /// A PgBouncer the api or worker connect through, when the inputs have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooler: Option<DeployedPooler>,
    /// What the reader saw that is not bad input: faults of the deployment (a read replica that
    /// would not start) and notes on how it was read (a values key the chart ignores). `check`
    /// reports each as a finding; the budget is computed all the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observed: Vec<Observed>,
}

/// The database's cap and how Dify connects to it, as a reader found them.
pub struct Cap {
    pub max_connections: Valued<u64>,
    /// Whether the cap was read from the inputs or a flag (else a default was assumed).
    pub found: bool,
    pub app_role: Valued<String>,
    pub app_role_superuser: bool,
    pub idle_timeout: Option<Valued<String>>,
}

impl Deployment {
    /// A deployment of `components` on a database with `cap`, with nothing else seen: no
    /// pooler, no chart, no autoscaler left uncounted and no observation (readers add them).
    pub fn new(
        version: DifyVersion,
        version_source: Source,
        db_type: DbType,
        components: Vec<Deployed>,
        cap: Cap,
    ) -> Deployment {
        Deployment {
            version,
            version_source,
            db_type,
            components,
            max_connections: cap.max_connections,
            max_connections_found: cap.found,
            app_role: cap.app_role,
            app_role_superuser: cap.app_role_superuser,
            idle_in_transaction_timeout: cap.idle_timeout,
            unbounded_autoscalers: Vec::new(),
            chart: None,
            chart_version_assumed: None,
            pooler: None,
            observed: Vec::new(),
        }
    }
}

/// One thing a reader saw about a deployment, for `check` to report.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Observed {
    pub what: Observation,
    /// What was seen, with the numbers.
    pub message: String,
    /// What to do.
    pub remedy: String,
    pub source: Source,
}

/// The kinds of [`Observed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Observation {
    /// A hot standby whose `max_connections` is below its primary's: it refuses to start.
    ReplicaBelowPrimary,
    /// A Helm values key the chart does not have: Helm ignores it (no schema forbids it).
    UnknownValuesKey,
}

impl Deployment {
    /// Whether this component's connections go through the pooler.
    pub fn routed(&self, c: &Deployed) -> bool {
        self.pooler.as_ref().is_some_and(|p| p.routed.contains(&c.component))
    }
}

/// The largest count difyplan takes from a file (replicas, processes, greenlets, pool sizes):
/// far above any real deployment, and small enough that the budget's products of three counts
/// stay exact in 64 bits.
pub const MAX_COUNT: u64 = 100_000;

/// PostgreSQL's own ceiling on `max_connections` (its MAX_BACKENDS, 2^18 − 1).
pub const MAX_CONNECTIONS: u64 = 262_143;

/// Read a count written in a file: a whole number from 0 to `max`. The error is what is wrong
/// with it, for the caller to locate ([`CountError`]).
pub fn whole_count(text: &str, max: u64) -> Result<u64, BadCount> {
    let text = text.trim();
    match text.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        Ok(_) => Err(BadCount::TooLarge(max)),
        Err(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => Err(BadCount::TooLarge(max)),
        Err(_) if text.strip_prefix('-').is_some_and(|r| r.parse::<f64>().is_ok()) => Err(BadCount::Negative(max)),
        Err(_) => Err(BadCount::NotWhole(max)),
    }
}

/// What is wrong with a written count; each carries the largest count allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadCount {
    #[error("is larger than {0}, more than any real deployment — write a realistic count")]
    TooLarge(u64),
    #[error("is negative — a count is a whole number from 0 to {0}")]
    Negative(u64),
    #[error("is not a whole number — write a count from 0 to {0}")]
    NotWhole(u64),
}

/// A count in a file that is not one: where, the setting as written (secrets masked), what is
/// wrong, and an example count to write instead of a word.
#[derive(Debug, Clone, PartialEq)]
pub struct CountError {
    pub at: Source,
    /// `KEY=value`, or the setting's name and its value in backquotes.
    pub setting: String,
    pub problem: BadCount,
    pub example: Option<u64>,
}

impl CountError {
    /// A bad count for the setting `name` written as `value` at `at`.
    pub fn new(at: Source, name: &str, value: &str, problem: BadCount) -> CountError {
        let setting = format!("{name} `{}`", crate::safety::shown(value));
        CountError { at, setting, problem, example: None }
    }

    /// With an example count for a value that is not a number at all.
    pub fn example(self, n: u64) -> CountError {
        CountError { example: Some(n), ..self }
    }
}

impl std::fmt::Display for CountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.problem, self.example) {
            (BadCount::NotWhole(_), Some(n)) => {
                write!(f, "{}: {} is not a whole number — write a count such as {n}", self.at, self.setting)
            }
            _ => write!(f, "{}: {} {}", self.at, self.setting, self.problem),
        }
    }
}

impl std::error::Error for CountError {}

/// Readers that still report a message take the count error's.
impl From<CountError> for String {
    fn from(e: CountError) -> String {
        e.to_string()
    }
}

/// The gunicorn or Celery a Dify container's own command starts, bypassing the image's
/// entrypoint: that entrypoint is what turns `SERVER_WORKER_AMOUNT`, `SERVER_WORKER_CONNECTIONS`
/// and `CELERY_WORKER_AMOUNT` into the servers' flags (docs/model.md §2), so with its own command
/// those keys no longer set the processes, greenlets or `-c` that [`interpret`] reads from them.
pub fn own_server(words: &[Valued<String>]) -> Option<&Valued<String>> {
    words.iter().find(|w| {
        let program = w.value.rsplit('/').next().unwrap_or_default();
        matches!(program, "gunicorn" | "celery")
    })
}

/// A number read from the environment, or Dify's default when unset or empty.
pub fn env_number(env: &Env, key: &str, default: u64, default_what: &str) -> Result<Valued<u64>, CountError> {
    match env.get(key) {
        Some(v) if !v.value.trim().is_empty() => {
            let max = if key.ends_with("MAX_CONNECTIONS") { MAX_CONNECTIONS } else { MAX_COUNT };
            let n = whole_count(&v.value, max).map_err(|problem| {
                let value = crate::safety::secret::shown_value(key, v.value.trim(), false);
                CountError { at: v.source.clone(), setting: format!("{key}={value}"), problem, example: Some(default) }
            })?;
            Ok(Valued::new(n, v.source.clone()))
        }
        // Present but empty: the default applies, and the empty line is where to change it.
        Some(v) => Ok(Valued::new(default, v.source.clone())),
        None => Ok(Valued::new(default, Source::default(default_what))),
    }
}

fn flag_true(env: &Env, key: &str) -> bool {
    env.get(key).is_some_and(|v| v.value.trim().eq_ignore_ascii_case("true"))
}

/// Turn a component's environment into processes and pools: the one place that knows how each
/// Dify process reads its settings (docs/model.md §2, Dify's `api/docker/entrypoint.sh`).
#[allow(clippy::too_many_arguments)]
pub fn interpret(
    component: Component,
    name: &str,
    at: Source,
    env: Env,
    replicas: Valued<u64>,
    max_replicas: Valued<u64>,
    surge: Valued<u64>,
    host_cpus: u64,
) -> Result<Deployed, CountError> {
    let dify = |what: &str| format!("Dify default ({what})");
    let mut greenlets = None;
    let mut concurrency = None;
    let mut celery_pool = None;
    let (processes, pool_size, max_overflow, per_process_max);
    match component {
        Component::PluginDaemon => {
            let open =
                env_number(&env, "DB_MAX_OPEN_CONNS", defaults::PLUGIN_DB_MAX_OPEN_CONNS, "plugin daemon default 30")?;
            let idle =
                env_number(&env, "DB_MAX_IDLE_CONNS", defaults::PLUGIN_DB_MAX_IDLE_CONNS, "plugin daemon default 10")?;
            per_process_max = open.value;
            processes = Valued::new(1, Source::default("one Go process"));
            max_overflow = Valued::new(open.value.saturating_sub(idle.value), open.source.clone());
            pool_size = idle;
        }
        _ => {
            pool_size = env_number(&env, "SQLALCHEMY_POOL_SIZE", defaults::SQLALCHEMY_POOL_SIZE, &dify("30"))?;
            max_overflow = env_number(&env, "SQLALCHEMY_MAX_OVERFLOW", defaults::SQLALCHEMY_MAX_OVERFLOW, &dify("10"))?;
            per_process_max = pool_size.value.saturating_add(max_overflow.value);
            processes = match component {
                Component::Api => {
                    greenlets = Some(env_number(
                        &env,
                        "SERVER_WORKER_CONNECTIONS",
                        defaults::SERVER_WORKER_CONNECTIONS,
                        &dify("10"),
                    )?);
                    env_number(&env, "SERVER_WORKER_AMOUNT", defaults::SERVER_WORKER_AMOUNT, &dify("1"))?
                }
                Component::ApiWebsocket => {
                    greenlets = Some(env_number(
                        &env,
                        "SERVER_WORKER_CONNECTIONS",
                        defaults::API_WEBSOCKET_WORKER_CONNECTIONS,
                        &dify("1000"),
                    )?);
                    env_number(&env, "SERVER_WORKER_AMOUNT", defaults::API_WEBSOCKET_WORKER_AMOUNT, &dify("1"))?
                }
                Component::Worker => {
                    let class =
                        env.get("CELERY_WORKER_CLASS").map(|v| v.value.trim().to_ascii_lowercase()).unwrap_or_default();
                    let pool = match class.as_str() {
                        "" | "gevent" => CeleryPool::Gevent,
                        "prefork" | "processes" => CeleryPool::Prefork,
                        _ => CeleryPool::Shared,
                    };
                    celery_pool = Some(pool);
                    let c = if flag_true(&env, "CELERY_AUTO_SCALE") {
                        env_number(
                            &env,
                            "CELERY_MAX_WORKERS",
                            host_cpus,
                            "assumed --host-cpus (the entrypoint uses the host's nproc)",
                        )?
                    } else {
                        env_number(
                            &env,
                            "CELERY_WORKER_AMOUNT",
                            defaults::CELERY_WORKER_AMOUNT,
                            "entrypoint default -c 1",
                        )?
                    };
                    concurrency = Some(c.clone());
                    match pool {
                        CeleryPool::Prefork => c,
                        _ => Valued::new(1, Source::default("one Celery process")),
                    }
                }
                // The plugin daemon took the branch above; beat is one scheduler process.
                Component::WorkerBeat | Component::PluginDaemon => Valued::new(1, Source::default("one beat process")),
            };
        }
    }
    Ok(Deployed {
        component,
        name: name.to_string(),
        at,
        replicas,
        max_replicas,
        surge,
        processes,
        greenlets,
        concurrency,
        celery_pool,
        pool_size,
        max_overflow,
        per_process_max,
        cores: None,
        env,
    })
}

/// The settings of an environment that outputs show.
pub const SHOWN_KEYS: &[&str] = &["MODE", "DB_USERNAME", "REDIS_MAX_CONNECTIONS", "MIGRATION_ENABLED"];

fn serialize_env<S: serde::Serializer>(env: &Env, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let keys = crate::dify::keys::SIZING_KEYS;
    let mut map = s.serialize_map(None)?;
    for (k, v) in env {
        if keys.contains(&k.as_str()) || SHOWN_KEYS.contains(&k.as_str()) {
            map.serialize_entry(
                k,
                &Valued::new(crate::safety::secret::shown_value(k, &v.value, false), v.source.clone()),
            )?;
        }
    }
    map.end()
}
