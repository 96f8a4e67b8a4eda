//! What the templates read: the plan as it is (`plan`), plus views computed once here so the
//! templates stay free of logic — each component's own env keys, Kubernetes names, probes,
//! the PostgreSQL settings as a command line, and why each value is what it is.

use crate::dify::keys::{self, Key, Scope};
use crate::dify::{Component, DifyVersion};
use crate::model::assumptions::Target;
use crate::model::plan::{ComponentPlan, Plan};
use crate::model::settings::{Setting, settings};
use serde::Serialize;

/// The whole context of one render.
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    pub difyplan_version: &'static str,
    /// The command that reproduces this output, for the header of every file.
    pub command: String,
    pub qps: String,
    pub profile: String,
    pub edition: String,
    pub target: String,
    pub dify_version: String,
    /// The full plan, for templates that want more than the views below.
    pub plan: Plan,
    pub budget: BudgetView,
    pub components: Vec<ComponentView>,
    /// Shared keys of the `.env`, grouped for the env template.
    pub env_groups: Vec<EnvGroup>,
    /// Keys that belong on one compose service only, grouped by service.
    pub per_service: Vec<ServiceEnv>,
    /// Recommendations that need the operator's own values (Redis hosts): written commented out.
    pub suggested: Vec<EnvVar>,
    pub database: DatabaseView,
    /// PgBouncer in front of the api and worker, when the plan has it.
    pub pooler: Option<super::pgbouncer::PoolerView>,
    pub compose: ComposeView,
    pub zone_spread: bool,
    pub disruption_budget: bool,
    /// The HPA's CPU target in percent (the edition's utilisation target).
    pub cpu_target_percent: u64,
    /// Labels on every Kubernetes object (`app.kubernetes.io/*`, the recommended set).
    pub labels: Vec<Pair>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BudgetView {
    pub demand: u64,
    pub usable: u64,
    pub max_connections: u64,
    /// `api 2 × 18 × 298 = 10728 + …`: the arithmetic behind `demand`.
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    pub name: String,
    pub value: String,
}

/// One env key with its value, what it does and why it has this value.
#[derive(Debug, Clone, Serialize)]
pub struct EnvVar {
    pub key: String,
    pub value: String,
    pub doc: String,
    /// The derivation behind the value (`formula [source]`), when the plan recorded one.
    pub why: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvGroup {
    pub title: String,
    pub settings: Vec<EnvVar>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceEnv {
    pub service: String,
    pub settings: Vec<EnvVar>,
}

/// A probe: HTTP GET on a port, or a command.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub http_path: Option<&'static str>,
    pub port: Option<u16>,
    pub exec: Option<Vec<String>>,
    pub period_seconds: u64,
    pub timeout_seconds: u64,
}

/// One component as every output needs it.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentView {
    /// Compose service name (`api_websocket`).
    pub service: &'static str,
    /// Kubernetes object name (`dify-api-websocket`).
    pub name: String,
    /// `app.kubernetes.io/component` (`api-websocket`).
    pub slug: &'static str,
    /// Key of the component in BorisPolonsky/dify-helm values.
    pub helm_borispolonsky: &'static str,
    /// Key in douban/charts values; `None` where that chart runs no such component.
    pub helm_douban: Option<&'static str>,
    pub replicas: u64,
    pub max_replicas: u64,
    /// Rolling-update `maxSurge`: the surge the budget counted.
    pub surge: u64,
    /// Rolling-update `maxUnavailable`: 0 when the component surges, else 1 (a rollout needs one).
    pub max_unavailable: u64,
    /// An HPA runs (its maximum is above its minimum).
    pub autoscale: bool,
    /// Exactly one replica ever (worker_beat): `strategy: Recreate`, no HPA.
    pub singleton: bool,
    /// Compose may run several (plugin_daemon publishes a host port, so it may not).
    pub compose_scalable: bool,
    /// A PodDisruptionBudget protects it (the edition asks for one and it runs ≥ 2 replicas).
    pub pdb: bool,
    pub processes_per_pod: u64,
    pub per_process_max: u64,
    pub worst_total: u64,
    pub cpu: f64,
    /// Kubernetes CPU quantity (`250m`).
    pub cpu_quantity: String,
    /// Compose `cpus` (`0.25`).
    pub cpu_compose: String,
    pub memory_mib: u64,
    /// Every sizing key this component reads, with its own values (Kubernetes ConfigMap,
    /// Helm env lists).
    pub env: Vec<EnvVar>,
    /// The keys compose must set on this service itself (`environment:` in the override),
    /// because the shared `.env` carries the api's values or none.
    pub compose_env: Vec<EnvVar>,
    pub image: String,
    /// Dify's `MODE` for the api image (`api`, `worker`, `beat`); `None` for the plugin daemon.
    pub mode: Option<&'static str>,
    pub port: Option<u16>,
    pub readiness: Probe,
    pub liveness: Probe,
    /// Allows a slow first start (migrations run before the api serves) without liveness kills.
    pub startup: Option<Probe>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseView {
    /// `PostgreSQL` or `MySQL`.
    pub server: &'static str,
    /// The plan is for MySQL (`db_mysql`, `mysqld --name=value` options).
    pub mysql: bool,
    /// The compose service that runs PostgreSQL (`db_postgres`, `db`, or what the given
    /// compose file calls it).
    pub compose_service: String,
    pub max_connections: u64,
    /// Every server setting, once each (`postgres -c` names).
    pub settings: Vec<Pair>,
    /// `["postgres", "-c", "max_connections=…", …]`: a compose `command:`.
    pub command: Vec<String>,
    /// `["-c", "max_connections=…", …]`: container args for the official image.
    pub args: Vec<String>,
    pub host_memory_gib: u64,
    pub host_cpus: u32,
    pub host_assumed: bool,
    /// With `huge_pages = on`: the 2 MiB pages the host must reserve (`vm.nr_hugepages`).
    pub huge_pages_reserved: Option<u64>,
    /// The same in MiB: a pod's `hugepages-2Mi` request and limit.
    pub huge_pages_mib: Option<u64>,
    /// The host's memory less the huge pages, MiB: the pod's ordinary memory beside them
    /// (Kubernetes refuses huge pages without a memory or CPU request).
    pub memory_beside_huge_pages_mib: u64,
}

/// What a given compose file told us.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ComposeView {
    /// The compose file the override was made for, when one was given.
    pub base_file: Option<String>,
    /// Components planned but absent from the base file: the override leaves them out, since
    /// compose cannot run a service with no image.
    pub missing: Vec<String>,
}

/// Images of each release, as its `docker-compose.yaml` runs them (docs/model.md §3a).
fn images(v: DifyVersion) -> (String, String) {
    (format!("langgenius/dify-api:{v}"), format!("langgenius/dify-plugin-daemon:{}", v.plugin_daemon_tag()))
}

/// api_websocket's gunicorn worker class: 1.16.1's compose fallback for
/// `API_WEBSOCKET_WORKER_CLASS`.
const WEBSOCKET_WORKER_CLASS: &str = "geventwebsocket.gunicorn.workers.GeventWebSocketWorker";

/// Build the context. `command` is the reproducing command line; `compose` what a given
/// compose file said (empty otherwise).
pub fn build(plan: &Plan, command: String, compose: ComposeView, db_service: Option<String>) -> Context {
    let all = settings(plan);
    let components = plan.components.iter().map(|c| component(plan, c)).collect();
    let rules = &plan.edition_rules;
    let v = plan.input.dify_version;
    let db = &plan.database;
    let mut seen = std::collections::BTreeSet::new();
    // `server_settings` may name a setting twice; the first value is the one PostgreSQL's
    // command line would see first, and both are the same number.
    let settings_once: Vec<Pair> = db
        .server_settings
        .iter()
        .filter(|(k, _)| seen.insert(k.clone()))
        .map(|(k, v)| Pair { name: k.clone(), value: v.clone() })
        .collect();
    let mysql = db.mysql.is_some();
    let (args, command_line) = if mysql {
        // The mysql image passes a command of options to mysqld.
        let args: Vec<String> = settings_once.iter().map(|p| format!("--{}={}", p.name, p.value)).collect();
        (args.clone(), args)
    } else {
        let args: Vec<String> =
            settings_once.iter().flat_map(|p| ["-c".to_string(), format!("{}={}", p.name, p.value)]).collect();
        let mut command_line = vec!["postgres".to_string()];
        command_line.extend(args.iter().cloned());
        (args, command_line)
    };
    let compose_service = db_service.unwrap_or_else(|| {
        if mysql { crate::dify::db_type::mysql::COMPOSE_SERVICE.to_string() } else { v.db_service().to_string() }
    });
    let pooler = plan.pooler.as_ref().map(|p| {
        let host = match plan.input.target {
            Target::Compose => compose_service.as_str(),
            Target::Kubernetes => super::pgbouncer::KUBERNETES_DB_HOST,
        };
        super::pgbouncer::view(plan, p, host)
    });
    Context {
        difyplan_version: env!("CARGO_PKG_VERSION"),
        command,
        qps: format!("{}", plan.input.qps),
        profile: plan.input.profile.name.clone(),
        edition: plan.input.edition.to_string(),
        target: plan.input.target.to_string(),
        dify_version: v.to_string(),
        budget: BudgetView {
            demand: plan.budget.demand,
            usable: plan.budget.usable,
            max_connections: plan.budget.cap.max_connections,
            lines: plan
                .budget
                .lines
                .iter()
                .map(|l| {
                    format!(
                        "{} {} × {} × {} = {}",
                        l.component, l.worst_pods, l.processes, l.per_process_max, l.connections
                    )
                })
                .chain(plan.budget.reserves.iter().map(|r| format!("{} reserve {}", r.name, r.connections)))
                .collect(),
        },
        components,
        env_groups: env_groups(plan, &all),
        per_service: per_service(plan, &all),
        suggested: all.iter().filter(|s| s.scope == Scope::Suggested).map(|s| env_var(plan, s)).collect(),
        database: DatabaseView {
            server: plan.input.db_type.server(),
            mysql,
            compose_service,
            max_connections: db.max_connections,
            settings: settings_once,
            command: command_line,
            args,
            host_memory_gib: db.mysql.as_ref().map_or(db.host.memory_bytes, |m| m.host_memory_bytes) >> 30,
            host_cpus: db.host.cpus,
            host_assumed: db.host_memory_chosen || db.host_cpus_chosen,
            huge_pages_reserved: db.tuning.huge_pages_reserved,
            huge_pages_mib: db.tuning.huge_pages_reserved.map(|p| p * (crate::model::pg_memory::HUGE_PAGE_BYTES >> 20)),
            memory_beside_huge_pages_mib: (db.host.memory_bytes >> 20).saturating_sub(
                db.tuning.huge_pages_reserved.unwrap_or(0) * (crate::model::pg_memory::HUGE_PAGE_BYTES >> 20),
            ),
        },
        pooler,
        compose,
        zone_spread: rules.zone_spread,
        disruption_budget: rules.disruption_budget,
        cpu_target_percent: (rules.cpu_target * 100.0).round() as u64,
        labels: vec![
            Pair { name: "app.kubernetes.io/name".into(), value: "dify".into() },
            Pair { name: "app.kubernetes.io/instance".into(), value: "dify".into() },
            Pair { name: "app.kubernetes.io/version".into(), value: v.to_string() },
            Pair { name: "app.kubernetes.io/part-of".into(), value: "dify".into() },
            Pair { name: "app.kubernetes.io/managed-by".into(), value: "difyplan".into() },
        ],
        notes: plan.notes.iter().map(|n| one_line(n)).collect(),
        plan: plan.clone(),
    }
}

fn component(plan: &Plan, c: &ComponentPlan) -> ComponentView {
    let v = plan.input.dify_version;
    let (api_image, daemon_image) = images(v);
    let svc = c.component.service();
    let slug = match c.component {
        Component::Api => "api",
        Component::ApiWebsocket => "api-websocket",
        Component::Worker => "worker",
        Component::WorkerBeat => "worker-beat",
        Component::PluginDaemon => "plugin-daemon",
    };
    let (boris, douban) = match c.component {
        Component::Api => ("api", Some("api")),
        Component::ApiWebsocket => ("apiWebsocket", None),
        Component::Worker => ("worker", Some("worker")),
        Component::WorkerBeat => ("beat", Some("workerBeat")),
        Component::PluginDaemon => ("pluginDaemon", Some("pluginDaemon")),
    };
    let var = |key: &Key, value: String, why: Option<String>| EnvVar {
        key: key.name.to_string(),
        value,
        doc: key.doc.to_string(),
        why,
    };
    // The api's pool size has its own derivation; every other pool is derived as a whole
    // (pool + overflow), and each key's comment says its own part of it.
    let pool = |c: &ComponentPlan, label: &str| {
        let (size_why, overflow_why) = if c.component == Component::Api {
            (why(plan, &["SQLALCHEMY_POOL_SIZE"]), why(plan, &[label]))
        } else {
            pool_parts_why(plan, c, &[label])
        };
        vec![
            var(&keys::SQLALCHEMY_POOL_SIZE, c.pool_size.to_string(), size_why),
            var(&keys::SQLALCHEMY_MAX_OVERFLOW, c.max_overflow.to_string(), overflow_why),
        ]
    };
    let slots = c.slots_per_process.unwrap_or(1).to_string();
    let (env, compose_env) = match c.component {
        Component::Api => {
            let mut env = vec![
                var(
                    &keys::SERVER_WORKER_AMOUNT,
                    c.processes_per_pod.to_string(),
                    why(plan, &["api.replicas × SERVER_WORKER_AMOUNT"]),
                ),
                var(&keys::SERVER_WORKER_CLASS, "gevent".into(), None),
                var(&keys::SERVER_WORKER_CONNECTIONS, slots, why(plan, &["SERVER_WORKER_CONNECTIONS"])),
            ];
            let pool = pool(c, "api pool (SQLALCHEMY_POOL_SIZE + SQLALCHEMY_MAX_OVERFLOW)");
            env.extend(pool.iter().cloned());
            // Before 1.8.0 `x-shared-env` does not pass SQLALCHEMY_MAX_OVERFLOW from `.env`: the
            // api gets it on its own environment (docs/model.md §3a).
            let own = if v.era().overflow_key { Vec::new() } else { pool[1..].to_vec() };
            (env, own)
        }
        Component::ApiWebsocket => {
            let pool = pool(c, "api_websocket pool");
            let mut env = vec![
                var(&keys::SERVER_WORKER_AMOUNT, c.processes_per_pod.to_string(), None),
                var(&keys::SERVER_WORKER_CLASS, WEBSOCKET_WORKER_CLASS.into(), None),
                var(&keys::SERVER_WORKER_CONNECTIONS, slots, None),
            ];
            env.extend(pool.iter().cloned());
            (env, pool)
        }
        Component::Worker => {
            let mut env = vec![
                var(&keys::CELERY_WORKER_CLASS, String::new(), None),
                var(&keys::CELERY_WORKER_AMOUNT, slots, why(plan, &["CELERY_WORKER_AMOUNT"])),
                var(&keys::CELERY_AUTO_SCALE, "false".into(), None),
            ];
            env.extend(pool(c, "worker pool (per process)"));
            (env.clone(), env)
        }
        Component::WorkerBeat => {
            let pool = pool(c, "worker_beat pool");
            (pool.clone(), pool)
        }
        Component::PluginDaemon => {
            let env = vec![
                var(&keys::DB_MAX_OPEN_CONNS, c.per_process_max.to_string(), why(plan, &["DB_MAX_OPEN_CONNS"])),
                var(&keys::DB_MAX_IDLE_CONNS, c.pool_size.to_string(), None),
            ];
            (env.clone(), env)
        }
    };
    // Through the pooler: this component's connections go to PgBouncer (its own value, since
    // compose shares one .env with the components that stay direct).
    let (mut env, mut compose_env) = (env, compose_env);
    if let Some(p) = plan.pooler.as_ref().filter(|p| p.routed.contains(&c.component)) {
        let host = match plan.input.target {
            Target::Compose => super::pgbouncer::COMPOSE_SERVICE,
            Target::Kubernetes => super::pgbouncer::KUBERNETES_NAME,
        };
        let route = [
            var(&super::pgbouncer::DB_HOST, host.to_string(), None),
            var(&super::pgbouncer::DB_PORT, p.port.to_string(), None),
        ];
        env.extend(route.iter().cloned());
        compose_env.extend(route);
    }
    // Each component names its connections (the one rule: model::settings::db_extras).
    if let Some(extras) = crate::model::settings::db_extras(plan, c.component) {
        let named = var(&keys::DB_EXTRAS, extras, None);
        env.push(named.clone());
        compose_env.push(named);
    }
    // Every Dify process connects as the role the plan counted the reserved slots for.
    let on_mysql: Vec<EnvVar> = super::mysql::kubernetes_env(plan)
        .into_iter()
        .map(|(key, value)| EnvVar { key: key.name.into(), value, doc: key.doc.into(), why: None })
        .collect();
    if on_mysql.is_empty() && !plan.input.app_role_superuser {
        env.push(var(&keys::DB_USERNAME, keys::APP_ROLE.to_string(), None));
    }
    // On MySQL: the server and the account (compose takes them from the shared .env).
    env.extend(on_mysql);
    let http = |path: &'static str, port: u16, period: u64| Probe {
        http_path: Some(path),
        port: Some(port),
        exec: None,
        period_seconds: period,
        timeout_seconds: 5,
    };
    let celery_app = v.era().celery_app;
    let ping = Probe {
        http_path: None,
        port: None,
        // Celery names a worker `celery@<hostname>`; on Kubernetes the hostname is the pod's name.
        exec: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("celery -A {celery_app} inspect ping -d celery@$HOSTNAME"),
        ]),
        period_seconds: 60,
        timeout_seconds: 30,
    };
    let beat_alive = Probe {
        http_path: None,
        port: None,
        // The entrypoint execs `celery … beat`, so it is process 1; beat answers no ping.
        exec: Some(vec!["/bin/sh".into(), "-c".into(), "grep -q beat /proc/1/cmdline".into()]),
        period_seconds: 60,
        timeout_seconds: 5,
    };
    let (port, readiness, liveness, startup) = match c.component {
        Component::Api | Component::ApiWebsocket => (
            Some(5001),
            http("/health", 5001, 10),
            http("/health", 5001, 30),
            // Migrations run before gunicorn starts when MIGRATION_ENABLED=true: up to 10 minutes.
            Some(Probe { period_seconds: 10, ..http("/health", 5001, 10) }),
        ),
        Component::Worker => (None, ping.clone(), ping, None),
        Component::WorkerBeat => (None, beat_alive.clone(), beat_alive, None),
        Component::PluginDaemon => (Some(5002), http("/health/check", 5002, 10), http("/health/check", 5002, 30), None),
    };
    let singleton = c.component.singleton();
    ComponentView {
        service: svc,
        name: format!("dify-{slug}"),
        slug,
        helm_borispolonsky: boris,
        helm_douban: douban,
        replicas: c.replicas,
        max_replicas: c.max_replicas,
        surge: c.surge,
        max_unavailable: if c.surge > 0 { 0 } else { 1 },
        autoscale: c.max_replicas > c.replicas && !singleton,
        singleton,
        compose_scalable: c.component != Component::PluginDaemon,
        pdb: plan.edition_rules.disruption_budget && c.replicas >= 2,
        processes_per_pod: c.processes_per_pod,
        per_process_max: c.per_process_max,
        worst_total: c.worst_total,
        cpu: c.cpu_per_pod,
        cpu_quantity: format!("{}m", (c.cpu_per_pod * 1000.0).round() as u64),
        cpu_compose: trim_float(c.cpu_per_pod),
        memory_mib: c.memory_mib_per_pod,
        env,
        compose_env,
        image: if c.component == Component::PluginDaemon { daemon_image.to_string() } else { api_image },
        mode: match c.component {
            Component::Api | Component::ApiWebsocket => Some("api"),
            Component::Worker => Some("worker"),
            Component::WorkerBeat => Some("beat"),
            Component::PluginDaemon => None,
        },
        port,
        readiness,
        liveness,
        startup,
    }
}

/// Text for a comment line: no line breaks.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `18.0` → `18`, `0.25` → `0.25`.
fn trim_float(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The first derivation among `names` the plan recorded, as `formula [source]`.
fn why(plan: &Plan, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| plan.derivations.iter().find(|d| d.name == *n)).map(|d| {
        let text = if d.source.is_empty() { d.formula.clone() } else { format!("{} [{}]", d.formula, d.source) };
        one_line(&text)
    })
}

/// The comments of a per-service pool whose total (pool + overflow) has one derivation: the
/// pool is what a busy process usually holds, the overflow the rest of the total.
fn pool_parts_why(plan: &Plan, c: &ComponentPlan, labels: &[&str]) -> (Option<String>, Option<String>) {
    let total = why(plan, labels);
    let max = c.per_process_max;
    let size = Some(format!("what a busy process usually holds, at most the {max} connections one process may open"));
    let overflow = Some(match total {
        Some(t) => format!("{max} one process may open − pool {}; {max} = {t}", c.pool_size),
        None => format!("{max} one process may open − pool {}", c.pool_size),
    });
    (size, overflow)
}

/// Where a shared key belongs in the env file's groups.
fn group_of(key: &str) -> &'static str {
    if key.starts_with("POSTGRES_") {
        "PostgreSQL server (the database service's command line reads these)"
    } else if key.starts_with("CELERY_") {
        "Celery worker"
    } else if key.starts_with("API_WEBSOCKET_") {
        "api_websocket (collaboration profile)"
    } else if key.starts_with("DB_MAX_") {
        "plugin daemon"
    } else {
        "api (gunicorn with gevent)"
    }
}

fn env_var(plan: &Plan, s: &Setting) -> EnvVar {
    let derivation = match (s.key, s.scope) {
        ("SERVER_WORKER_AMOUNT", _) => why(plan, &["api.replicas × SERVER_WORKER_AMOUNT"]),
        ("SQLALCHEMY_POOL_SIZE", Scope::Shared) => why(plan, &["SQLALCHEMY_POOL_SIZE"]),
        ("SQLALCHEMY_MAX_OVERFLOW", Scope::Shared) => {
            why(plan, &["api pool (SQLALCHEMY_POOL_SIZE + SQLALCHEMY_MAX_OVERFLOW)"])
        }
        (_, Scope::Service(svc)) if s.key.starts_with("SQLALCHEMY_") => {
            let labels = [format!("{svc} pool"), format!("{svc} pool (per process)")];
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            match plan.components.iter().find(|c| c.component.service() == svc) {
                Some(c) => {
                    let (size, overflow) = pool_parts_why(plan, c, &labels);
                    if s.key == "SQLALCHEMY_POOL_SIZE" { size } else { overflow }
                }
                None => why(plan, &labels),
            }
        }
        (key, _) => why(plan, &[key]),
    };
    EnvVar { key: s.key.to_string(), value: s.value.clone(), doc: s.doc.to_string(), why: derivation }
}

fn env_groups(plan: &Plan, all: &[Setting]) -> Vec<EnvGroup> {
    let mut groups: Vec<EnvGroup> = Vec::new();
    for s in all.iter().filter(|s| s.scope == Scope::Shared) {
        let title = group_of(s.key);
        match groups.iter_mut().find(|g| g.title == title) {
            Some(g) => g.settings.push(env_var(plan, s)),
            None => groups.push(EnvGroup { title: title.to_string(), settings: vec![env_var(plan, s)] }),
        }
    }
    groups
}

fn per_service(plan: &Plan, all: &[Setting]) -> Vec<ServiceEnv> {
    let mut out: Vec<ServiceEnv> = Vec::new();
    for s in all {
        let Scope::Service(svc) = s.scope else { continue };
        match out.iter_mut().find(|g| g.service == svc) {
            Some(g) => g.settings.push(env_var(plan, s)),
            None => out.push(ServiceEnv { service: svc.to_string(), settings: vec![env_var(plan, s)] }),
        }
    }
    out
}

/// The target a render command plans for: the one its output runs on.
pub fn target_for(kind: RenderKind, asked: Target) -> Target {
    match kind {
        RenderKind::Env | RenderKind::Alerts | RenderKind::Postgresql => asked,
        RenderKind::Compose => Target::Compose,
        RenderKind::Kubernetes | RenderKind::Helm => Target::Kubernetes,
    }
}

/// What is being rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderKind {
    Env,
    Compose,
    Kubernetes,
    Helm,
    /// Prometheus rules: for the target asked, as `env` is.
    Alerts,
    /// `postgresql.conf` and `ALTER SYSTEM` statements.
    Postgresql,
}

/// The context of mysql.yaml: everything, plus the server's names and Dify's account.
#[derive(Serialize)]
pub struct ServerContext<'a> {
    #[serde(flatten)]
    pub base: &'a Context,
    pub mysql_name: &'static str,
    pub mysql_port: u16,
    pub app_role: &'static str,
}

impl Context {
    /// The context of mysql.yaml (docs/model.md §11).
    pub fn mysql_server(&self) -> ServerContext<'_> {
        use super::mysql;
        ServerContext {
            base: self,
            mysql_name: mysql::KUBERNETES_NAME,
            mysql_port: mysql::PORT,
            app_role: mysql::app_role(&self.plan),
        }
    }
}
