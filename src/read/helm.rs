//! Helm values of the two community Dify charts, read the way each chart renders them: which
//! Deployments exist, their replicas, HPA maximum, rolling-update surge and environment.
//!
//! # What the charts do (read with the `search` tool; paths and commits of what was read)
//!
//! **BorisPolonsky/dify-helm** (`charts/dify/`):
//! - `values.yaml` @ `5644ee382e2c1fc6d154430baf7960133baa1220` (the newest read: `image.api.tag`
//!   "1.16.1"), also @ `0110fe1eaf7ac012a0dbe9dcac7caed669b49809` (1.2.0) and `b37eef6a…` (0.3.8).
//!   Components `api`, `worker`, `beat`, `apiWebsocket`, `pluginDaemon` (and `web`, `sandbox`,
//!   `proxy`, `ssrfProxy`, `agentBackend`, `localSandbox`, not among DOMAIN.md §2's), each with
//!   `enabled` (default true; `apiWebsocket.enabled` false), `replicas` (1; `beat` has none),
//!   `updateStrategy` (`{}`; `beat.updateStrategy.type` is `Recreate`), `extraEnv` (a list of
//!   `{name, value | valueFrom}`). `api.autoscaling` and `worker.autoscaling` default to
//!   `{enabled: false, minReplicas: 1, maxReplicas: 100, targetCPUUtilizationPercentage: 80}`.
//!   The image tag is `image.api.tag`. No pool size, worker count or max_connections is set anywhere.
//! - `templates/api-deployment.yaml` @ `02138e46…`: `replicas: {{ .Values.api.replicas }}` even
//!   with autoscaling; `strategy:` only when `api.updateStrategy` is set (so Kubernetes' default
//!   RollingUpdate with maxSurge 25% otherwise); `env:` = LOG_LEVEL, CODE_EXECUTION_API_KEY, then
//!   `api.extraEnv`; `envFrom:` the api ConfigMap and Secret. Kubernetes lets `env` override
//!   `envFrom`, and a later `env` entry of the same name override an earlier one.
//! - `templates/api-websocket-deployment.yaml` @ `5644ee38…`: rendered when `apiWebsocket.enabled`
//!   and `api.enabled`; `env:` MIGRATION_ENABLED=false, SERVER_WORKER_AMOUNT=1,
//!   SERVER_WORKER_CLASS=geventwebsocket…, LOG_LEVEL, then `apiWebsocket.extraEnv`; `envFrom:` the
//!   *api* ConfigMap and Secret (not `api.extraEnv`).
//! - `templates/beat-deployment.yaml` @ `07fcc06e…`: a separate Deployment when `beat.enabled`,
//!   `replicas: 1` fixed, `strategy` from `beat.updateStrategy`; `env:` MODE=beat, LOG_LEVEL, then
//!   `beat.extraEnv`; `envFrom:` the *worker* ConfigMap and Secret (not `worker.extraEnv`).
//! - `templates/worker-deployment.yaml` @ `44307a52…` (an older version): `replicas:
//!   {{ .Values.worker.replicas }}`, `env:` = `worker.extraEnv`, `envFrom:` worker ConfigMap/Secret.
//!   Newer values document `worker.updateStrategy`; it is honoured like `api.updateStrategy`.
//! - `templates/plugin-daemon-deployment.yaml` @ `5f92e8c5…`: `replicas:
//!   {{ .Values.pluginDaemon.replicas }}`, `env:` = `pluginDaemon.extraEnv`, `envFrom:` its own
//!   ConfigMap (DB host, port, database; no pool keys). `pluginDaemon.updateStrategy` is documented
//!   in the newest values and honoured.
//! - `templates/hpa.yaml` @ `af936bb8…`: HPAs only for `api`, `web`, `worker`, `sandbox`, each
//!   `maxReplicas: {{ .Values.<c>.autoscaling.maxReplicas }}`. An `autoscaling` block elsewhere
//!   renders nothing and is ignored here.
//! - `templates/api-config.yaml` @ `4a3da647…` and `config.tpl` (the version with
//!   `dify.pluginDaemon.db.config`, and @ `8d099af2…`): the ConfigMaps set MODE (api), MIGRATION_ENABLED
//!   (`api.migration`), DB_HOST/PORT/DATABASE, Redis, storage, vector store, no SQLALCHEMY_*,
//!   SERVER_WORKER_*, CELERY_* or DB_MAX_* key. `credentials.tpl` (`dify.db.credentials`):
//!   DB_USERNAME = `externalPostgres.username` when `externalPostgres.enabled`, else
//!   `postgresql.global.postgresql.auth.username`, or `postgres` when that is empty.
//! - The bundled database is the bitnami `postgresql` subchart (`postgresql.enabled`, default
//!   true; architecture `replication`); an external one is `externalPostgres.{enabled, username,
//!   password, address, port, database.api, database.pluginDaemon}`.
//!
//! **douban/charts** (`charts/dify/`):
//! - `values.yaml` @ `06cc538fe16af7dd66a962384a7867f8f45451d5` (the newest read: `global.image.tag`
//!   "1.10.1-fix.1"), also @ `dabe054b…` (older, no `workerBeat`/`pluginDaemon`). Components `api`,
//!   `worker`, `workerBeat` ("MUST run as a single replica"), `pluginDaemon` (`enabled: true`,
//!   `updateStrategy.type: Recreate`), `frontend`, `sandbox`; `<c>.replicaCount` (1), `<c>.envs`
//!   (lists), `api/worker.autoscaling` as above; `global.extraEnvs` (frontend, api, worker, plugin
//!   daemon) and `global.extraBackendEnvs` (api, worker, plugin daemon). The image tag is
//!   `coalesce <c>.image.tag global.image.tag .Chart.AppVersion`.
//! - `templates/deployment.yaml` @ `3fa7828c…` and `01b8c3b4…`: `replicas:` is left out when
//!   `<c>.autoscaling.enabled` (the HPA owns it); no `strategy` (Kubernetes' default); `env:` =
//!   MODE, `dify.commonEnvs`, `dify.commonBackendEnvs`, `global.extraEnvs`,
//!   `global.extraBackendEnvs`, `api.envs`, in that order.
//! - `templates/_helpers.tpl` @ `3fa7828c…`: `dify.commonBackendEnvs` sets DB_USERNAME=postgres
//!   (and the password, host, database) when `postgresql.embedded`; otherwise the database comes
//!   from `global.extraBackendEnvs`.
//! - `templates/hpa.yaml` @ `c72e0043…`: HPAs for `api`, `frontend`, `worker`, `sandbox`.
//!
//! **bitnami PostgreSQL** (the bundled database of both charts): the chart's
//! `primary.extendedConfiguration` is "appended to main or default configuration",
//! `primary.configuration` replaces `postgresql.conf`, `primary.extraEnvVars` adds env; the
//! container reads `POSTGRESQL_MAX_CONNECTIONS` (alias `POSTGRES_MAX_CONNECTIONS`) —
//! bitnami/containers `bitnami/postgresql/17/debian-12/rootfs/opt/bitnami/scripts/postgresql-env.sh`
//! @ `165b82cb9d331d76ce225c2f5b83a4a811b5309f`. With none of them, PostgreSQL's default 100 applies.
//!
//! # Semantics
//! - A values file is an override of the chart's defaults (Helm merges it over `values.yaml`), so
//!   a key the file does not set takes the chart default above; `null` deletes a default, and
//!   switches follow Go-template truthiness (`"false"` as a string is true).
//! - Worst-case pods = HPA maximum (or replicas) + surge; surge = the strategy's `maxSurge`, or
//!   Kubernetes' default 25% rounded up, of that maximum; 0 for `Recreate`.
//! - Autoscaling on without `maxReplicas` in the file takes the chart default 100; an explicit
//!   `null`/empty maximum cannot be counted and is reported (`hpa-unbounded`).
//! - The douban chart's template for `workerBeat` and `pluginDaemon` was not among the versions
//!   read: they are taken to get the same env lists as the worker (the global lists, then their
//!   own `envs`), and only `pluginDaemon.updateStrategy` to be rendered.

use super::compose::Options;
use super::inputs::Input;
use super::yaml::{self, Document, PathSeg, Value};
use crate::dify::deployment::{self, Deployed, Deployment, Env, Source, Valued};
use crate::dify::{Component, DifyVersion, defaults};
use crate::findings::rules::SIZING_KEYS;

/// Kubernetes' default `maxSurge` for a Deployment without a strategy, in percent, rounded up
/// (DOMAIN.md §2; Kubernetes Deployment docs).
const K8S_DEFAULT_MAX_SURGE_PCT: u64 = 25;
/// Both charts' default `autoscaling.maxReplicas` (dify-helm and douban `values.yaml`, above).
const CHART_DEFAULT_MAX_REPLICAS: u64 = 100;
/// Both charts' default `autoscaling.minReplicas` and replica count.
const CHART_DEFAULT_REPLICAS: u64 = 1;

/// Which community chart a values file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chart {
    /// BorisPolonsky/dify-helm.
    DifyHelm,
    /// douban/charts.
    Douban,
}

impl Chart {
    fn name(self) -> &'static str {
        match self {
            Chart::DifyHelm => "BorisPolonsky/dify-helm",
            Chart::Douban => "douban/charts",
        }
    }
}

/// Keys only one chart has, to tell them apart.
const DIFY_HELM_MARKS: &[&[&str]] = &[
    &["image", "api"],
    &["api", "enabled"],
    &["api", "replicas"],
    &["api", "extraEnv"],
    &["api", "updateStrategy"],
    &["api", "migration"],
    &["worker", "enabled"],
    &["worker", "replicas"],
    &["worker", "extraEnv"],
    &["worker", "updateStrategy"],
    &["beat"],
    &["apiWebsocket"],
    &["pluginDaemon", "replicas"],
    &["pluginDaemon", "extraEnv"],
    &["externalPostgres"],
    &["postgresql", "enabled"],
    &["postgresql", "global"],
];
const DOUBAN_MARKS: &[&[&str]] = &[
    &["api", "replicaCount"],
    &["api", "envs"],
    &["worker", "replicaCount"],
    &["worker", "envs"],
    &["workerBeat"],
    &["global", "extraBackendEnvs"],
    &["global", "extraEnvs"],
    &["frontend"],
    &["pluginDaemon", "replicaCount"],
    &["pluginDaemon", "envs"],
    &["postgresql", "embedded"],
    &["redis", "embedded"],
];

/// How a Deployment's rolling-update strategy is decided.
#[derive(Debug, Clone, Copy)]
enum Strategy {
    /// The template sets none: Kubernetes' default RollingUpdate, maxSurge 25%.
    KubernetesDefault,
    /// The template renders `<key>.updateStrategy`; `recreate_by_default` when the chart's own
    /// values set `type: Recreate`.
    Values { recreate_by_default: bool },
}

/// How one chart renders one Dify component.
struct Spec {
    component: Component,
    /// The values key (`api`, `workerBeat`, …).
    key: &'static str,
    /// `Some(default)` when `<key>.enabled` decides whether the Deployment is rendered.
    enabled_default: Option<bool>,
    /// The replica count key under `<key>`; `None` when the template fixes one replica.
    replicas_key: Option<&'static str>,
    /// The chart renders an HPA from `<key>.autoscaling`.
    hpa: bool,
    /// The Deployment leaves `replicas` out when autoscaling is on (douban), so the HPA minimum applies.
    hpa_drops_replicas: bool,
    strategy: Strategy,
    /// Env the template or the chart's ConfigMaps give the container, lowest precedence first.
    base_env: Vec<(&'static str, Valued<String>)>,
    /// Value paths of `{name, value}` lists appended to `env:`, in template order (later wins).
    env_lists: Vec<Vec<&'static str>>,
}

/// One `{name, value}` entry of an env list.
struct EnvItem {
    name: String,
    /// `None` for `valueFrom` (a Secret or ConfigMap difyplan cannot see).
    value: Option<String>,
    source: Source,
}

/// The values document with located lookups.
struct Values<'a> {
    doc: &'a Document,
    file: &'a str,
}

impl Values<'_> {
    fn get(&self, keys: &[&str]) -> Option<&Value> {
        self.doc.get(&PathSeg::keys(keys))
    }

    fn has(&self, keys: &[&str]) -> bool {
        self.get(keys).is_some()
    }

    fn src_at(&self, path: &[PathSeg]) -> Source {
        Source::file(self.file, self.doc.line_of(path).unwrap_or(1))
    }

    fn src(&self, keys: &[&str]) -> Source {
        self.src_at(&PathSeg::keys(keys))
    }

    /// A non-empty scalar, as Helm would print it.
    fn string(&self, keys: &[&str]) -> Option<Valued<String>> {
        let s = self.get(keys).and_then(yaml::scalar_string)?;
        (!s.trim().is_empty()).then(|| Valued::new(s.trim().to_string(), self.src(keys)))
    }

    /// A switch as a Go template's `if` sees it; `default` when the file does not set it.
    fn truthy(&self, keys: &[&str], default: bool) -> bool {
        match self.get(keys) {
            None => default,
            Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
            Some(Value::Sequence(s)) => !s.is_empty(),
            Some(Value::Mapping(m)) => !m.is_empty(),
            Some(Value::Tagged(_)) => true,
        }
    }

    /// A whole number; `None` when the file does not set it (or sets `null`).
    fn count(&self, keys: &[&str]) -> Result<Option<Valued<u64>>, String> {
        let Some(v) = self.get(keys) else { return Ok(None) };
        let text = match v {
            Value::Null => return Ok(None),
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        };
        let src = self.src(keys);
        let max = if keys.last().is_some_and(|k| k.to_ascii_lowercase().contains("connections")) {
            crate::dify::deployment::MAX_CONNECTIONS
        } else {
            crate::dify::deployment::MAX_COUNT
        };
        match text.as_deref().map(|t| crate::dify::deployment::whole_count(t, max)) {
            Some(Ok(n)) => Ok(Some(Valued::new(n, src))),
            Some(Err(why)) if !why.starts_with("is not") => Err(format!(
                "{src}: {} `{}` {why}",
                keys.join("."),
                crate::safety::shown(text.as_deref().unwrap_or_default())
            )),
            _ => Err(format!(
                "{src}: {} must be a whole number, found `{}` — write a count such as 2",
                keys.join("."),
                yaml::scalar_string(v).unwrap_or_else(|| "a list or mapping".into())
            )),
        }
    }

    /// A list of `{name, value | valueFrom}` as Kubernetes takes it in `env:`. Absent, `null`
    /// and `{}` (old chart versions wrote `extraEnv: {}`) are empty.
    fn env_list(&self, keys: &[&str]) -> Result<Vec<EnvItem>, String> {
        let items = match self.get(keys) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Mapping(m)) if m.is_empty() => return Ok(Vec::new()),
            Some(Value::Sequence(items)) => items,
            Some(_) => {
                return Err(format!(
                    "{}: {} must be a list of `- name: KEY` / `value: \"…\"` entries — write it as a YAML list",
                    self.src(keys),
                    keys.join(".")
                ));
            }
        };
        let base = PathSeg::keys(keys);
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let mut at = base.clone();
            at.push(PathSeg::Index(i));
            let Some(name) = yaml::get(item, &[PathSeg::from("name")]).and_then(yaml::scalar_string) else {
                return Err(format!(
                    "{}: an entry of {} has no `name:` — give each entry a name and a value",
                    self.src_at(&at),
                    keys.join(".")
                ));
            };
            let value_path = [at.clone(), vec![PathSeg::from("value")]].concat();
            let value = match yaml::get(item, &[PathSeg::from("value")]) {
                Some(v) => Some(yaml::scalar_string(v).unwrap_or_default()),
                None if yaml::get(item, &[PathSeg::from("valueFrom")]).is_some() => None,
                None => Some(String::new()),
            };
            let source =
                if self.doc.line_of(&value_path).is_some() { self.src_at(&value_path) } else { self.src_at(&at) };
            out.push(EnvItem { name: name.trim().to_string(), value, source });
        }
        Ok(out)
    }
}

/// Read one values file of either community chart into a deployment description.
pub fn read(input: &Input, opts: &Options) -> Result<Deployment, String> {
    let file = crate::safety::shown_path(&input.path);
    let text = input.text()?;
    let docs = yaml::parse_documents(&text, &file).map_err(|e| e.to_string())?;
    let Some(doc) = docs.first() else {
        return Err(format!("{file}:1: the values file is empty — pass the values file the chart is installed with"));
    };
    if !doc.value.is_mapping() {
        return Err(format!(
            "{file}:1: Helm values must be a mapping at the top level — pass the values file the chart is installed with"
        ));
    }
    let v = Values { doc, file: &file };
    let chart = detect(&v)?;

    let (version, version_source) = version(&v, chart, opts);
    let role = chart_db_username(&v, chart);
    let specs = match chart {
        Chart::DifyHelm => dify_helm_specs(&v, role.as_ref()),
        Chart::Douban => douban_specs(role.as_ref()),
    };
    let mut components = Vec::new();
    let mut unbounded = Vec::new();
    for spec in &specs {
        if let Some(r) = component(&v, chart, spec, opts)? {
            components.push(r.deployed);
            unbounded.extend(r.unbounded);
        }
    }
    components.sort_by_key(|c| c.component);

    let db = database(&v, chart, opts)?;
    let (app_role, app_role_superuser) = super::app_role(&components, opts);
    Ok(Deployment {
        version,
        version_source,
        components,
        max_connections: db.max_connections,
        max_connections_found: db.found,
        app_role,
        app_role_superuser,
        idle_in_transaction_timeout: db.idle_timeout,
        unbounded_autoscalers: unbounded,
    })
}

/// Which chart the file is for, by the keys only one of them has.
fn detect(v: &Values) -> Result<Chart, String> {
    let score = |marks: &[&[&str]]| marks.iter().filter(|m| v.has(m)).count();
    let (boris, douban) = (score(DIFY_HELM_MARKS), score(DOUBAN_MARKS));
    match boris.cmp(&douban) {
        std::cmp::Ordering::Greater => Ok(Chart::DifyHelm),
        std::cmp::Ordering::Less => Ok(Chart::Douban),
        std::cmp::Ordering::Equal if boris == 0 => Err(format!(
            "{}: not the values of a Dify chart difyplan knows — it reads {} (api.replicas, api.extraEnv, image.api.tag) and {} (api.replicaCount, global.extraBackendEnvs, workerBeat); for another chart, check the output of `helm template` instead",
            v.file,
            Chart::DifyHelm.name(),
            Chart::Douban.name()
        )),
        std::cmp::Ordering::Equal => Err(format!(
            "{}: has as many keys of {} as of {} — keep only the keys of the chart you install (dify-helm: replicas, extraEnv; douban: replicaCount, envs)",
            v.file,
            Chart::DifyHelm.name(),
            Chart::Douban.name()
        )),
    }
}

/// The Dify release: `--dify-version`, else the api image tag, else the latest.
fn version(v: &Values, chart: Chart, opts: &Options) -> (DifyVersion, Source) {
    if let Some(ver) = opts.dify_version {
        return (ver, Source::Flag { flag: "--dify-version".into() });
    }
    let tag = match chart {
        Chart::DifyHelm => v.string(&["image", "api", "tag"]),
        // `coalesce .Values.api.image.tag .Values.global.image.tag .Chart.AppVersion`
        Chart::Douban => v.string(&["api", "image", "tag"]).or_else(|| v.string(&["global", "image", "tag"])),
    };
    match tag {
        Some(t) => match t.value.parse::<DifyVersion>() {
            Ok(ver) => (ver, t.source),
            Err(_) => (
                DifyVersion::LATEST,
                Source::default(format!(
                    "image tag `{}` ({}) is not a release difyplan knows; assumed the latest (pass --dify-version)",
                    t.value, t.source
                )),
            ),
        },
        None => (
            DifyVersion::LATEST,
            Source::default(
                "no image tag in the values: the chart's default image, assumed the latest (pass --dify-version)",
            ),
        ),
    }
}

/// DB_USERNAME as the chart itself sets it (dify-helm: its Secret; douban: `commonBackendEnvs`).
fn chart_db_username(v: &Values, chart: Chart) -> Option<Valued<String>> {
    match chart {
        Chart::DifyHelm => {
            if v.truthy(&["externalPostgres", "enabled"], false) {
                v.string(&["externalPostgres", "username"])
            } else if v.truthy(&["postgresql", "enabled"], true) {
                Some(v.string(&["postgresql", "global", "postgresql", "auth", "username"]).unwrap_or_else(|| {
                    Valued::new(
                        "postgres".into(),
                        Source::default("dify-helm: postgresql.global.postgresql.auth.username is empty, so postgres"),
                    )
                }))
            } else {
                None
            }
        }
        Chart::Douban => v.truthy(&["postgresql", "embedded"], true).then(|| {
            Valued::new(
                "postgres".into(),
                Source::default("douban/charts: the embedded PostgreSQL sets DB_USERNAME=postgres"),
            )
        }),
    }
}

fn chart_default(what: &str) -> Source {
    Source::default(what.to_string())
}

fn fixed(value: &str, what: &str) -> Valued<String> {
    Valued::new(value.to_string(), chart_default(what))
}

/// The Dify Deployments of BorisPolonsky/dify-helm (templates above).
fn dify_helm_specs(v: &Values, role: Option<&Valued<String>>) -> Vec<Spec> {
    let with_role = |mut env: Vec<(&'static str, Valued<String>)>| {
        if let Some(r) = role {
            env.push(("DB_USERNAME", r.clone()));
        }
        env
    };
    let migration =
        v.string(&["api", "migration"]).unwrap_or_else(|| fixed("true", "dify-helm default api.migration: true"));
    let values = Strategy::Values { recreate_by_default: false };
    vec![
        Spec {
            component: Component::Api,
            key: "api",
            enabled_default: Some(true),
            replicas_key: Some("replicas"),
            hpa: true,
            hpa_drops_replicas: false,
            strategy: values,
            base_env: with_role(vec![
                ("MODE", fixed("api", "dify-helm api ConfigMap")),
                ("MIGRATION_ENABLED", migration),
            ]),
            env_lists: vec![vec!["api", "extraEnv"]],
        },
        Spec {
            component: Component::ApiWebsocket,
            key: "apiWebsocket",
            enabled_default: Some(false),
            replicas_key: Some("replicas"),
            hpa: false,
            hpa_drops_replicas: false,
            strategy: values,
            base_env: with_role(vec![
                ("MODE", fixed("api", "dify-helm api ConfigMap")),
                ("MIGRATION_ENABLED", fixed("false", "dify-helm api-websocket-deployment.yaml")),
                (
                    "SERVER_WORKER_AMOUNT",
                    fixed("1", "dify-helm api-websocket-deployment.yaml sets SERVER_WORKER_AMOUNT=1"),
                ),
            ]),
            env_lists: vec![vec!["apiWebsocket", "extraEnv"]],
        },
        Spec {
            component: Component::Worker,
            key: "worker",
            enabled_default: Some(true),
            replicas_key: Some("replicas"),
            hpa: true,
            hpa_drops_replicas: false,
            strategy: values,
            base_env: with_role(vec![("MODE", fixed("worker", "dify-helm worker Deployment"))]),
            env_lists: vec![vec!["worker", "extraEnv"]],
        },
        Spec {
            component: Component::WorkerBeat,
            key: "beat",
            enabled_default: Some(true),
            replicas_key: None,
            hpa: false,
            hpa_drops_replicas: false,
            strategy: Strategy::Values { recreate_by_default: true },
            base_env: with_role(vec![("MODE", fixed("beat", "dify-helm beat-deployment.yaml"))]),
            env_lists: vec![vec!["beat", "extraEnv"]],
        },
        Spec {
            component: Component::PluginDaemon,
            key: "pluginDaemon",
            enabled_default: Some(true),
            replicas_key: Some("replicas"),
            hpa: false,
            hpa_drops_replicas: false,
            strategy: values,
            base_env: Vec::new(),
            env_lists: vec![vec!["pluginDaemon", "extraEnv"]],
        },
    ]
}

/// The Dify Deployments of douban/charts (templates above).
fn douban_specs(role: Option<&Valued<String>>) -> Vec<Spec> {
    let backend = |mode: &'static str, own: &'static str| {
        let mut env = vec![("MODE", fixed(mode, "douban/charts deployment.yaml"))];
        if let Some(r) = role {
            env.push(("DB_USERNAME", r.clone()));
        }
        (env, vec![vec!["global", "extraEnvs"], vec!["global", "extraBackendEnvs"], vec![own, "envs"]])
    };
    let (api_env, api_lists) = backend("api", "api");
    let (worker_env, worker_lists) = backend("worker", "worker");
    let (beat_env, beat_lists) = backend("beat", "workerBeat");
    vec![
        Spec {
            component: Component::Api,
            key: "api",
            enabled_default: None,
            replicas_key: Some("replicaCount"),
            hpa: true,
            hpa_drops_replicas: true,
            strategy: Strategy::KubernetesDefault,
            base_env: api_env,
            env_lists: api_lists,
        },
        Spec {
            component: Component::Worker,
            key: "worker",
            enabled_default: None,
            replicas_key: Some("replicaCount"),
            hpa: true,
            hpa_drops_replicas: true,
            strategy: Strategy::KubernetesDefault,
            base_env: worker_env,
            env_lists: worker_lists,
        },
        Spec {
            component: Component::WorkerBeat,
            key: "workerBeat",
            enabled_default: None,
            replicas_key: Some("replicaCount"),
            hpa: false,
            hpa_drops_replicas: false,
            strategy: Strategy::KubernetesDefault,
            base_env: beat_env,
            env_lists: beat_lists,
        },
        Spec {
            component: Component::PluginDaemon,
            key: "pluginDaemon",
            enabled_default: Some(true),
            replicas_key: Some("replicaCount"),
            hpa: false,
            hpa_drops_replicas: false,
            strategy: Strategy::Values { recreate_by_default: true },
            base_env: Vec::new(),
            env_lists: vec![
                vec!["global", "extraEnvs"],
                vec!["global", "extraBackendEnvs"],
                vec!["pluginDaemon", "envs"],
            ],
        },
    ]
}

/// A component as the chart renders it.
struct Rendered {
    deployed: Deployed,
    /// Its autoscaler, when that has no maximum the budget can count.
    unbounded: Option<Valued<String>>,
}

/// One component as the chart renders it; `None` when the chart does not render it.
fn component(v: &Values, chart: Chart, spec: &Spec, opts: &Options) -> Result<Option<Rendered>, String> {
    let key = spec.key;
    if let Some(default) = spec.enabled_default
        && !v.truthy(&[key, "enabled"], default)
    {
        return Ok(None);
    }
    // The websocket Deployment also needs the api (`if and .Values.apiWebsocket.enabled .Values.api.enabled`).
    if spec.component == Component::ApiWebsocket && !v.truthy(&["api", "enabled"], true) {
        return Ok(None);
    }
    let at = if v.has(&[key]) {
        v.src(&[key])
    } else {
        Source::default(format!("{}: `{key}` rendered from the chart's defaults", chart.name()))
    };

    let mut replicas = match spec.replicas_key {
        Some(rk) => v.count(&[key, rk])?.unwrap_or_else(|| {
            Valued::new(
                CHART_DEFAULT_REPLICAS,
                Source::default(format!("chart default {key}.{rk}: {CHART_DEFAULT_REPLICAS}")),
            )
        }),
        None => {
            Valued::new(1, Source::default(format!("{}: the {key} Deployment has exactly one replica", chart.name())))
        }
    };
    let mut unbounded = None;
    let max_replicas = if spec.hpa && v.truthy(&[key, "autoscaling", "enabled"], false) {
        if spec.hpa_drops_replicas {
            replicas = v.count(&[key, "autoscaling", "minReplicas"])?.unwrap_or_else(|| {
                Valued::new(CHART_DEFAULT_REPLICAS, Source::default("chart default autoscaling.minReplicas: 1"))
            });
        }
        let max_path = [key, "autoscaling", "maxReplicas"];
        match v.get(&max_path) {
            None => Valued::new(
                CHART_DEFAULT_MAX_REPLICAS,
                Source::default(format!("chart default {key}.autoscaling.maxReplicas: {CHART_DEFAULT_MAX_REPLICAS}")),
            ),
            Some(Value::Null) => {
                unbounded =
                    Some(Valued::new(format!("{key}: autoscaling is enabled with no maxReplicas"), v.src(&max_path)));
                replicas.clone()
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                unbounded = Some(Valued::new(
                    format!("{key}: autoscaling is enabled with an empty maxReplicas"),
                    v.src(&max_path),
                ));
                replicas.clone()
            }
            Some(_) => v.count(&max_path)?.unwrap_or_else(|| replicas.clone()),
        }
    } else {
        replicas.clone()
    };
    let surge = surge(v, spec, max_replicas.value.max(replicas.value))?;

    let mut env = Env::new();
    for (k, val) in &spec.base_env {
        env.insert((*k).to_string(), val.clone());
    }
    for list in &spec.env_lists {
        for item in v.env_list(list)? {
            match item.value {
                Some(value) => {
                    env.insert(item.name, Valued::new(value, item.source));
                }
                None if SIZING_KEYS.contains(&item.name.as_str()) => {
                    return Err(format!(
                        "{}: {} comes from a valueFrom difyplan cannot read — write it with `value:`, or check the rendered manifests (`helm template`) instead",
                        item.source, item.name
                    ));
                }
                None => {
                    env.insert(item.name, Valued::new("(valueFrom)".into(), item.source));
                }
            }
        }
    }
    let deployed = deployment::interpret(spec.component, key, at, env, replicas, max_replicas, surge, opts.host_cpus)?;
    Ok(Some(Rendered { deployed, unbounded }))
}

/// Extra pods of a rolling update, computed on the most pods the Deployment can have.
fn surge(v: &Values, spec: &Spec, pods: u64) -> Result<Valued<u64>, String> {
    let key = spec.key;
    let k8s_default = || {
        Valued::new(
            pods.saturating_mul(K8S_DEFAULT_MAX_SURGE_PCT).div_ceil(100),
            Source::default(format!("Kubernetes default maxSurge 25% of {pods}, rounded up")),
        )
    };
    let Strategy::Values { recreate_by_default } = spec.strategy else { return Ok(k8s_default()) };
    let type_path = [key, "updateStrategy", "type"];
    let ty = v.get(&type_path).and_then(yaml::scalar_string);
    match ty.as_deref() {
        Some("Recreate") => Ok(Valued::new(0, v.src(&type_path))),
        None if recreate_by_default => {
            Ok(Valued::new(0, Source::default(format!("chart default {key}.updateStrategy.type: Recreate"))))
        }
        None | Some("RollingUpdate") => {
            let surge_path = [key, "updateStrategy", "rollingUpdate", "maxSurge"];
            let Some(raw) = v.get(&surge_path) else { return Ok(k8s_default()) };
            let src = v.src(&surge_path);
            let text = yaml::scalar_string(raw).unwrap_or_default();
            let text = text.trim();
            super::kubernetes::max_surge_pods(text, pods)
                .map(|n| Valued::new(n, src.clone()))
                .ok_or_else(|| format!("{src}: maxSurge `{text}` is neither a count nor a percentage — write 1 or 25%"))
        }
        Some(other) => Err(format!(
            "{}: updateStrategy.type `{other}` is not a Deployment strategy — write RollingUpdate or Recreate",
            v.src(&type_path)
        )),
    }
}

/// What the values say about the database server.
struct Database {
    max_connections: Valued<u64>,
    /// Read from the values (or the bundled server's known default) or the flag, not assumed.
    found: bool,
    /// `idle_in_transaction_session_timeout`, when the values write postgresql.conf settings.
    idle_timeout: Option<Valued<String>>,
}

/// `max_connections` (and whether it was found) and `idle_in_transaction_session_timeout` of the
/// bundled bitnami PostgreSQL, as far as the values set them.
fn database(v: &Values, chart: Chart, opts: &Options) -> Result<Database, String> {
    let bundled = match chart {
        Chart::DifyHelm => {
            !v.truthy(&["externalPostgres", "enabled"], false) && v.truthy(&["postgresql", "enabled"], true)
        }
        Chart::Douban => v.truthy(&["postgresql", "embedded"], true),
    };
    let mut max: Option<Valued<String>> = None;
    let mut idle: Option<Valued<String>> = None;
    let mut conf_written = None;
    if bundled {
        // extendedConfiguration is appended after the main file, so it wins over `configuration`,
        // which replaces the file the container's env would otherwise edit.
        for conf in ["extendedConfiguration", "configuration"] {
            let path = ["postgresql", "primary", conf];
            let Some(text) = v.get(&path).and_then(yaml::scalar_string) else { continue };
            conf_written.get_or_insert_with(|| v.src(&path));
            // Within one snippet the last setting wins, as in postgresql.conf.
            let (mut file_max, mut file_idle) = (None, None);
            for (name, value, source) in conf_settings(v, &path, &text) {
                match name.as_str() {
                    "max_connections" => file_max = Some(Valued::new(value, source)),
                    "idle_in_transaction_session_timeout" => file_idle = Some(Valued::new(value, source)),
                    _ => {}
                }
            }
            max = max.or(file_max);
            idle = idle.or(file_idle);
        }
        if max.is_none() {
            for item in v.env_list(&["postgresql", "primary", "extraEnvVars"])? {
                if matches!(item.name.as_str(), "POSTGRESQL_MAX_CONNECTIONS" | "POSTGRES_MAX_CONNECTIONS")
                    && let Some(value) = item.value
                {
                    max = Some(Valued::new(value, item.source));
                }
            }
        }
    }
    let max = max.as_ref().map(super::postgres::max_connections).transpose()?;
    let (max, found) = match (opts.pg_max_connections, max) {
        (Some(n), _) => (Valued::new(n, Source::Flag { flag: "--pg-max-connections".into() }), true),
        (None, Some(m)) => (m, true),
        (None, None) if bundled => (
            Valued::new(
                defaults::COMPOSE_MAX_CONNECTIONS,
                Source::default("bundled PostgreSQL without max_connections in the values: PostgreSQL default 100"),
            ),
            true,
        ),
        (None, None) => (
            Valued::new(
                defaults::COMPOSE_MAX_CONNECTIONS,
                Source::default(
                    "external database: max_connections is not in the values; PostgreSQL default 100 assumed",
                ),
            ),
            false,
        ),
    };
    let idle_timeout = conf_written.map(|at| idle.unwrap_or_else(|| Valued::new("0".into(), at)));
    Ok(Database { max_connections: max, found, idle_timeout })
}

/// `name = value` settings of a postgresql.conf snippet with the line each is written on.
fn conf_settings(v: &Values, path: &[&str], text: &str) -> Vec<(String, String, Source)> {
    let key_path = PathSeg::keys(path);
    let key_line = v.doc.line_of(&key_path).unwrap_or(1);
    // A block scalar (`|`) starts on the line after its key; a flow scalar is all on the key's line.
    let first = v.doc.value_position_of(&key_path).map(|p| p.line).filter(|l| *l > key_line);
    super::postgres::conf_lines(text)
        .into_iter()
        .map(|(i, name, value)| (name, value, Source::file(v.file, first.map_or(key_line, |f| f + i))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        yaml::parse_documents(text, "v.yaml").unwrap().remove(0)
    }

    #[test]
    fn conf_snippet_lines_and_forms() {
        let d = doc(
            "postgresql:\n  primary:\n    extendedConfiguration: |\n      # comment\n      max_connections = 300\n      idle_in_transaction_session_timeout='10min' # off by default\n      shared_buffers 1GB\n",
        );
        let v = Values { doc: &d, file: "v.yaml" };
        let text = v.get(&["postgresql", "primary", "extendedConfiguration"]).and_then(yaml::scalar_string).unwrap();
        let got: Vec<(String, String, usize)> =
            conf_settings(&v, &["postgresql", "primary", "extendedConfiguration"], &text)
                .into_iter()
                .map(|(n, val, s)| (n, val, s.location().unwrap().1))
                .collect();
        assert_eq!(
            got,
            [
                ("max_connections".into(), "300".into(), 5),
                ("idle_in_transaction_session_timeout".into(), "10min".into(), 6),
                ("shared_buffers".into(), "1GB".into(), 7)
            ]
        );
    }

    #[test]
    fn surge_rounds_up_and_reads_strategies() {
        let spec = |strategy| Spec {
            component: Component::Api,
            key: "api",
            enabled_default: Some(true),
            replicas_key: Some("replicas"),
            hpa: true,
            hpa_drops_replicas: false,
            strategy,
            base_env: Vec::new(),
            env_lists: Vec::new(),
        };
        let values = Strategy::Values { recreate_by_default: false };
        let cases: [(&str, Strategy, u64, u64); 7] = [
            ("api: {}", Strategy::KubernetesDefault, 10, 3),
            ("api: {}", Strategy::KubernetesDefault, 0, 0),
            ("api: {}", Strategy::Values { recreate_by_default: true }, 4, 0),
            ("api: {updateStrategy: {type: Recreate}}", values, 8, 0),
            ("api: {updateStrategy: {rollingUpdate: {maxSurge: 10%}}}", values, 11, 2),
            ("api: {updateStrategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 3}}}", values, 1, 3),
            ("api: {updateStrategy: {type: RollingUpdate}}", Strategy::Values { recreate_by_default: true }, 1, 1),
        ];
        for (text, strategy, pods, want) in cases {
            let d = doc(text);
            let v = Values { doc: &d, file: "v.yaml" };
            assert_eq!(surge(&v, &spec(strategy), pods).unwrap().value, want, "{text} with {pods} pods");
        }
        let d = doc("api: {updateStrategy: {rollingUpdate: {maxSurge: lots}}}");
        let err = surge(&Values { doc: &d, file: "v.yaml" }, &spec(values), 3).unwrap_err();
        assert!(err.starts_with("v.yaml:1: maxSurge `lots`"), "{err}");
    }
}
