//! Helm values of the two community Dify charts, read the way each chart renders them: which
//! Deployments exist, their replicas, HPA maximum, rolling-update surge and environment.
//!
//! # What the charts do (read with the `search` tool; paths and commits of what was read)
//!
//! **BorisPolonsky/dify-helm** (`charts/dify/`):
//! - `values.yaml` @ `5644ee382e2c1fc6d154430baf7960133baa1220` (the newest read: `image.api.tag`
//!   "1.16.1"), also @ `0110fe1eaf7ac012a0dbe9dcac7caed669b49809` (1.2.0) and `b37eef6a…` (0.3.8).
//!   Components `api`, `worker`, `beat`, `apiWebsocket`, `pluginDaemon` (and `web`, `sandbox`,
//!   `proxy`, `ssrfProxy`, `agentBackend`, `localSandbox`, not among the components of docs/model.md §2), each with
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
//! **Versions** (each chart's `Chart.yaml` and `values.yaml` history, read with git log/show):
//! dify-helm 0.31 (Dify 1.9.1) to 0.38 (1.16.1): `beat` exists from 0.28 with `enabled: false`,
//! true from 0.37; `apiWebsocket` from 0.38 (its template sets SERVER_WORKER_AMOUNT=1 and
//! SERVER_WORKER_CLASS itself). douban 0.7 (Dify 1.9.1) to 0.9.1: `workerBeat` from 0.8; the
//! plugin daemon's template (0.6 on) renders `replicas: 1` unless `pluginDaemon.autoscaling` is set,
//! `replicaCount | default 1` when it is set and off, and no `replicas` when it is on.
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
use crate::deployment::{self, Cap, Deployed, Deployment, Env, Observation, Observed, Source, Valued};
use crate::dify::{Component, DifyVersion, defaults};
use crate::findings::rules::SIZING_KEYS;
use crate::read::error::Error;

pub mod mysql;

/// Kubernetes' default `maxSurge` for a Deployment without a strategy, in percent, rounded up
/// (docs/model.md §2; Kubernetes Deployment docs).
const K8S_DEFAULT_MAX_SURGE_PCT: u64 = 25;
/// Both charts' default `autoscaling.maxReplicas` (dify-helm and douban `values.yaml`, above).
const CHART_DEFAULT_MAX_REPLICAS: u64 = 100;
/// Both charts' default `autoscaling.minReplicas` and replica count.
const CHART_DEFAULT_REPLICAS: u64 = 1;

/// Which community chart a values file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    /// BorisPolonsky/dify-helm.
    DifyHelm,
    /// douban/charts.
    Douban,
}

impl Chart {
    pub fn name(self) -> &'static str {
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
];
/// Top-level keys of dify-helm's values (0.31 to 0.38).
const DIFY_HELM_TOP: &[&str] = &[
    "global",
    "image",
    "api",
    "worker",
    "beat",
    "apiWebsocket",
    "proxy",
    "web",
    "sandbox",
    "ssrfProxy",
    "pluginDaemon",
    "agentBackend",
    "localSandbox",
    "postgresql",
    "weaviate",
    "service",
    "ingress",
    "httproute",
    "nodeSelector",
    "tolerations",
    "affinity",
    "redis",
    "externalPostgres",
    "externalMysql",
    "externalRedis",
    "externalS3",
    "externalAzureBlobStorage",
    "externalOSS",
    "externalGCS",
    "externalCOS",
    "externalOBS",
    "externalTOS",
    "externalWeaviate",
    "externalQdrant",
    "externalMilvus",
    "externalPgvector",
    "externalTencentVectorDB",
    "externalMyScaleDB",
    "externalTableStore",
    "externalElasticsearch",
    "externalSecret",
];
/// Top-level keys of older dify-helm versions, gone from 0.31 on (the chart's values.yaml history).
const DIFY_HELM_OLD_TOP: &[&str] = &["resources", "externalTvector", "agentbox"];
/// Top-level keys of douban's values (0.4 to 0.9).
const DOUBAN_TOP: &[&str] = &[
    "volumes",
    "volumeMounts",
    "nameOverride",
    "fullnameOverride",
    "global",
    "ingress",
    "httpRoute",
    "serviceAccount",
    "frontend",
    "api",
    "worker",
    "workerBeat",
    "sandbox",
    "pluginDaemon",
    "redis",
    "postgresql",
    "minio",
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

/// One values layer of a release: a values file, or the values a HelmRelease or an Argo CD
/// Application carries (at `prefix` inside its document, or in a string starting after line
/// `line_offset`).
pub struct Layer {
    pub file: String,
    pub doc: Document,
    pub prefix: Vec<PathSeg>,
    pub line_offset: usize,
}

impl Layer {
    /// A whole values file.
    pub fn file(doc: Document) -> Layer {
        Layer { file: doc.file.clone(), doc, prefix: Vec::new(), line_offset: 0 }
    }

    fn value(&self) -> Option<&Value> {
        self.doc.get(&self.prefix)
    }

    fn full(&self, path: &[PathSeg]) -> Vec<PathSeg> {
        self.prefix.iter().chain(path).cloned().collect()
    }

    fn line_of(&self, path: &[PathSeg]) -> Option<usize> {
        self.doc.line_of(&self.full(path)).map(|l| l + self.line_offset)
    }

    fn value_line_of(&self, path: &[PathSeg]) -> Option<usize> {
        self.doc.value_position_of(&self.full(path)).map(|p| p.line + self.line_offset)
    }
}

/// An autoscaler committed beside the values, targeting one of the chart's Deployments by name.
pub struct Hpa {
    /// `spec.scaleTargetRef.name`.
    pub target: String,
    pub max: Option<Valued<u64>>,
    pub at: Source,
}

/// What says which chart (and which version of it) the values are for.
pub struct ChartRef {
    pub chart: Chart,
    /// The chart version as written (`0.38.0-rc2`), when something says it.
    pub version: Option<String>,
    pub said_by: Source,
    /// The chart's folder, when the chart itself is among the files (vendored).
    pub dir: Option<std::path::PathBuf>,
}

/// One Helm release as `helm upgrade -f a.yaml -f b.yaml` installs it: the values layers in
/// Helm's order (later wins), the chart when something says it, and autoscalers beside it.
pub struct Release {
    pub layers: Vec<Layer>,
    pub chart: Option<ChartRef>,
    pub hpas: Vec<Hpa>,
}

/// Helm's merge of values layers: mappings merge key by key, anything else (lists included) is
/// replaced by the later layer; `null` is kept so that it deletes the chart's default.
fn merge(into: &mut Value, over: &Value) {
    match (into, over) {
        (Value::Mapping(a), Value::Mapping(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) if existing.is_mapping() && v.is_mapping() => merge(existing, v),
                    _ => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (into, over) => *into = over.clone(),
    }
}

/// The merged values of a release with located lookups (the last layer that writes a key).
struct Values<'a> {
    merged: Value,
    layers: &'a [Layer],
    /// Names the release in messages.
    file: &'a str,
}

impl<'a> Values<'a> {
    fn new(layers: &'a [Layer], file: &'a str) -> Values<'a> {
        let mut merged = Value::Mapping(Default::default());
        for l in layers {
            if let Some(v) = l.value() {
                merge(&mut merged, v);
            }
        }
        Values { merged, layers, file }
    }

    fn get(&self, keys: &[&str]) -> Option<&Value> {
        yaml::get(&self.merged, &PathSeg::keys(keys))
    }

    fn has(&self, keys: &[&str]) -> bool {
        self.get(keys).is_some()
    }

    /// The layer that wrote `path` last, and the line.
    fn written(&self, path: &[PathSeg]) -> Option<(&Layer, usize)> {
        self.layers.iter().rev().find_map(|l| l.line_of(path).map(|line| (l, line)))
    }

    fn src_at(&self, path: &[PathSeg]) -> Source {
        match self.written(path) {
            Some((l, line)) => Source::file(l.file.clone(), line),
            None => Source::file(self.file, 1),
        }
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
    fn count(&self, keys: &[&str]) -> Result<Option<Valued<u64>>, Error> {
        let Some(v) = self.get(keys) else { return Ok(None) };
        let text = match v {
            Value::Null => return Ok(None),
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        };
        let src = self.src(keys);
        let max = if keys.last().is_some_and(|k| k.to_ascii_lowercase().contains("connections")) {
            crate::deployment::MAX_CONNECTIONS
        } else {
            crate::deployment::MAX_COUNT
        };
        let written = text.clone().unwrap_or_else(|| "a list or mapping".into());
        let n = crate::deployment::whole_count(text.as_deref().unwrap_or_default(), max)
            .map_err(|problem| crate::deployment::CountError::new(src.clone(), &keys.join("."), &written, problem))
            .map_err(|e| e.example(2))?;
        Ok(Some(Valued::new(n, src)))
    }

    /// A list of `{name, value | valueFrom}` as Kubernetes takes it in `env:`. Absent, `null`
    /// and `{}` (old chart versions wrote `extraEnv: {}`) are empty.
    fn env_list(&self, keys: &[&str]) -> Result<Vec<EnvItem>, Error> {
        let items = match self.get(keys) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Mapping(m)) if m.is_empty() => return Ok(Vec::new()),
            Some(Value::Sequence(items)) => items,
            Some(_) => {
                return Err(Error::at(
                    self.src(keys).clone(),
                    format!(
                        "{} must be a list of `- name: KEY` / `value: \"…\"` entries — write it as a YAML list",
                        keys.join(".")
                    ),
                ));
            }
        };
        let base = PathSeg::keys(keys);
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let mut at = base.clone();
            at.push(PathSeg::Index(i));
            let Some(name) = yaml::get(item, &[PathSeg::from("name")]).and_then(yaml::scalar_string) else {
                return Err(Error::at(
                    self.src_at(&at).clone(),
                    format!("an entry of {} has no `name:` — give each entry a name and a value", keys.join(".")),
                ));
            };
            let value_path = [at.clone(), vec![PathSeg::from("value")]].concat();
            let value = match yaml::get(item, &[PathSeg::from("value")]) {
                Some(v) => Some(yaml::scalar_string(v).unwrap_or_default()),
                None if yaml::get(item, &[PathSeg::from("valueFrom")]).is_some() => None,
                None => Some(String::new()),
            };
            let source = if self.written(&value_path).is_some() { self.src_at(&value_path) } else { self.src_at(&at) };
            out.push(EnvItem { name: name.trim().to_string(), value, source });
        }
        Ok(out)
    }
}

/// Read one values file of either community chart into a deployment description.
pub fn read(input: &Input, opts: &Options) -> Result<Deployment, Error> {
    let file = crate::safety::shown_path(&input.path);
    let doc = values_document(&input.text()?, &file)?;
    read_release(&Release { layers: vec![Layer::file(doc)], chart: None, hpas: Vec::new() }, opts)
}

/// The one document of a values file, which must be a mapping.
pub fn values_document(text: &str, file: &str) -> Result<Document, Error> {
    let docs = yaml::parse_documents(text, file)?;
    let Some(doc) = docs.into_iter().next() else {
        return Err(Error::line(
            file,
            1,
            "the values file is empty — pass the values file the chart is installed with",
        ));
    };
    if !doc.value.is_mapping() {
        return Err(Error::line(
            file,
            1,
            "Helm values must be a mapping at the top level — pass the values file the chart is installed with",
        ));
    }
    Ok(doc)
}

/// The advice for every chart (or reading) difyplan does not know: check what Helm renders.
pub const HELM_TEMPLATE_ADVICE: &str =
    "check what the chart renders instead: `helm template dify <chart> -f values.yaml | difyplan check -`";

/// Read one release (its values layers merged in Helm's order) into a deployment description.
pub fn read_release(release: &Release, opts: &Options) -> Result<Deployment, Error> {
    let file = release.layers.iter().map(|l| l.file.as_str()).collect::<Vec<_>>().join(" + ");
    let first = release.layers.first().map_or("-", |l| l.file.as_str());
    let v = Values::new(&release.layers, first);
    let (chart, chart_said_by) = match &release.chart {
        Some(r) => (r.chart, Some(r)),
        None => (detect(&v, &file)?, None),
    };
    if chart_said_by.is_none() {
        refuse_foreign_sizing(&v, chart)?;
    }
    let (known, assumed) = chart_version(chart, chart_said_by);
    let mut observed = unknown_keys(&v, chart, chart_said_by.and_then(|r| r.dir.as_deref()))?;

    let (version, version_source) = version(&v, chart, opts, &known)?;
    let chart_mysql = mysql::external(&v, chart, &known);
    let role = if chart_mysql.is_some() { Some(mysql::username(&v)) } else { chart_db_username(&v, chart) };
    let specs = match chart {
        Chart::DifyHelm => dify_helm_specs(&v, role.as_ref(), &known),
        Chart::Douban => douban_specs(role.as_ref(), &known),
    };
    let mut components = Vec::new();
    let mut unbounded = Vec::new();
    let mut linked = vec![false; release.hpas.len()];
    for spec in &specs {
        if let Some(r) = component(&v, chart, spec, opts, &release.hpas, &mut linked)? {
            components.push(r.deployed);
            unbounded.extend(r.unbounded);
        }
    }
    components.sort_by_key(|c| c.component);
    for (hpa, _) in release.hpas.iter().zip(&linked).filter(|(_, l)| !**l) {
        unbounded.push(Valued::new(
            format!(
                "HorizontalPodAutoscaler for Deployment {} targets no Dify Deployment this release renders",
                hpa.target
            ),
            hpa.at.clone(),
        ));
    }

    let db_type = mysql::db_type(&components, chart_mysql.as_ref(), bundled_postgres(&v, chart), chart)?;
    let mut db = database(&v, chart, opts)?;
    if db_type == crate::dify::db_type::DbType::Mysql {
        (db.max_connections, db.found) = mysql::max_connections(opts);
        db.idle_timeout = None;
        db.observed.clear();
    }
    let (app_role, app_role_superuser) = super::app_role_for(&components, opts, db_type);
    let chart_read = Valued::new(
        format!("{} {}", chart.name(), known.label),
        match chart_said_by {
            Some(r) => r.said_by.clone(),
            None => Source::default("the values' keys"),
        },
    );
    observed.extend(db.observed);
    let cap = Cap {
        max_connections: db.max_connections,
        found: db.found,
        app_role,
        app_role_superuser,
        idle_timeout: db.idle_timeout,
    };
    Ok(Deployment {
        unbounded_autoscalers: unbounded,
        chart: Some(chart_read),
        chart_version_assumed: assumed,
        observed,
        ..Deployment::new(version, version_source, db_type, components, cap)
    })
}

/// A chart version whose defaults difyplan knows (read from each chart's history).
pub struct KnownVersion {
    /// `0.38`.
    pub label: String,
    /// dify-helm: `beat.enabled`'s default (false before 0.37); douban: whether `workerBeat` exists (0.8 on).
    pub beat_default: bool,
    /// dify-helm renders an `apiWebsocket` Deployment (0.38 on).
    pub websocket: bool,
    /// The chart has a plugin daemon (douban from 0.6; dify-helm from 0.22, so every known version).
    pub plugin_daemon: bool,
    /// The Dify image tag the chart installs by default.
    pub dify_default: &'static str,
}

/// The minor versions difyplan knows per chart (those shipping Dify 1.9 or later).
fn known_minors(chart: Chart) -> std::ops::RangeInclusive<u64> {
    match chart {
        Chart::DifyHelm => 31..=38,
        Chart::Douban => 4..=9,
    }
}

fn known(chart: Chart, minor: u64) -> KnownVersion {
    let label = format!("0.{minor}");
    match chart {
        Chart::DifyHelm => KnownVersion {
            label,
            beat_default: minor >= 37,
            websocket: minor >= 38,
            plugin_daemon: true,
            dify_default: match minor {
                ..=31 => "1.9.1",
                32 | 33 => "1.10.0",
                34 | 35 => "1.10.1-fix.1",
                36 => "1.12.1",
                37 => "1.14.2",
                _ => "1.16.1",
            },
        },
        Chart::Douban => KnownVersion {
            label,
            beat_default: minor >= 8,
            websocket: false,
            plugin_daemon: minor >= 6,
            // Chart.yaml's appVersion: 0.6.11 up to 0.5.1, 1.1.0 (0.6.0) to 1.7.0 (0.6.8), 1.9.1 (0.7).
            dify_default: match minor {
                ..=5 => "0.6.11",
                6 => "1.7.0",
                7 => "1.9.1",
                _ => "1.10.1-fix.1",
            },
        },
    }
}

/// `0.38.0-rc2`, `v0.38.0`, `~0.38.0`, `0.38.x` → (0, 38).
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let v = version.trim().trim_start_matches(['^', '~', '>', '=', '<', ' ', 'v']);
    let mut parts = v.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The known version whose defaults the reading uses, and a `chart-version-assumed` note when it
/// is not the version that was said (or none was).
pub fn chart_version(chart: Chart, said: Option<&ChartRef>) -> (KnownVersion, Option<Valued<String>>) {
    let range = known_minors(chart);
    let (lo, hi) = (*range.start(), *range.end());
    let latest = known(chart, hi);
    let Some((version, at)) = said.and_then(|r| r.version.as_deref().map(|v| (v, r.said_by.clone()))) else {
        let note = format!(
            "no chart version is stated: read with the defaults of {} {} (the newest difyplan knows)",
            chart.name(),
            latest.label
        );
        let at = said.map_or_else(|| Source::default("the values' keys"), |r| r.said_by.clone());
        return (latest, Some(Valued::new(note, at)));
    };
    match major_minor(version) {
        Some((0, m)) if range.contains(&m) => (known(chart, m), None),
        parsed => {
            let nearest = match parsed {
                Some((0, m)) if m < lo => known(chart, lo),
                _ => latest,
            };
            let note = format!(
                "{} chart version `{version}` is not one difyplan knows (0.{lo} to 0.{hi}): read with the \
                    defaults of {} — check the reading, or {HELM_TEMPLATE_ADVICE}",
                chart.name(),
                nearest.label
            );
            (nearest, Some(Valued::new(note, at)))
        }
    }
}

/// Top-level keys the chart does not have: Helm ignores them, so they are notes — unless the
/// chart's `values.schema.json` forbids a key, which Helm refuses, and so does this reading.
fn unknown_keys(v: &Values, chart: Chart, chart_dir: Option<&std::path::Path>) -> Result<Vec<Observed>, Error> {
    let schema = chart_dir.map(super::helm_keys::vendored_schema).transpose()?.flatten();
    if let Some((schema_file, schema)) = schema
        && let Some(f) = super::helm_keys::forbidden(&v.merged, &schema).first()
    {
        let path: Vec<&str> = f.path.iter().map(String::as_str).collect();
        return Err(Error::at(
            v.src(&path).clone(),
            format!(
                "`{}` is not allowed by the chart's {schema_file} (additionalProperties: false) — Helm \
                refuses these values too; remove the key or fix the schema",
                f.path.join(".")
            ),
        ));
    }
    let (keys, historic) = match chart {
        Chart::DifyHelm => (DIFY_HELM_TOP, DIFY_HELM_OLD_TOP),
        Chart::Douban => (DOUBAN_TOP, &[][..]),
    };
    let top: Vec<String> =
        v.merged.as_mapping().map(|m| m.keys().filter_map(yaml::scalar_string).collect()).unwrap_or_default();
    Ok(top
        .iter()
        .filter(|k| !keys.contains(&k.as_str()))
        .map(|k| {
            let why = if historic.contains(&k.as_str()) { "a key of older versions only" } else { "not a key of it" };
            Observed {
                what: Observation::UnknownValuesKey,
                message: format!("`{k}:` is {why} in {}: Helm ignores it, and so does this reading", chart.name()),
                remedy: format!(
                    "remove `{k}:` or move it where the chart reads it; if the values are for another chart, \
                        {HELM_TEMPLATE_ADVICE}"
                ),
                source: v.src(&[k.as_str()]),
            }
        })
        .collect())
}

/// When only the keys said which chart it is, an unknown top-level key that carries a sizing
/// setting (`sharedEnv: {SQLALCHEMY_POOL_SIZE: …}`) may be how another chart reads it: the verdict
/// depends on which chart the values are for, which cannot be known — refused.
fn refuse_foreign_sizing(v: &Values, chart: Chart) -> Result<(), Error> {
    let keys = match chart {
        Chart::DifyHelm => DIFY_HELM_TOP,
        Chart::Douban => DOUBAN_TOP,
    };
    let Some(map) = v.merged.as_mapping() else { return Ok(()) };
    for (k, val) in map {
        let Some(k) = yaml::scalar_string(k) else { continue };
        if keys.contains(&k.as_str()) {
            continue;
        }
        if let Some(sizing) = sizing_key_in(val) {
            return Err(Error::at(
                v.src(&[k.as_str()]).clone(),
                format!(
                    "`{k}:` sets {sizing}, but it is not a key of {} and nothing says which chart the values are \
                    for — name the chart (Chart.yaml, --chart) if Helm ignores it there, or {HELM_TEMPLATE_ADVICE}",
                    chart.name()
                ),
            ));
        }
    }
    Ok(())
}

/// The first sizing key named anywhere in a values subtree (as a key or a `name:` value).
fn sizing_key_in(value: &Value) -> Option<&'static str> {
    let hit = |s: &str| SIZING_KEYS.iter().copied().find(|k| *k == s.trim());
    match value {
        Value::Mapping(m) => {
            m.iter().find_map(|(k, v)| yaml::scalar_string(k).and_then(|k| hit(&k)).or_else(|| sizing_key_in(v)))
        }
        Value::Sequence(items) => items.iter().find_map(sizing_key_in),
        Value::String(s) => hit(s),
        _ => None,
    }
}

/// Which chart the values are for when nothing says it: only when the keys settle it — some key
/// only that chart has, none only the other has, and no key has the other chart's shape.
fn detect(v: &Values, file: &str) -> Result<Chart, Error> {
    let score = |marks: &[&[&str]]| marks.iter().filter(|m| v.has(m)).count();
    let (boris, douban) = (score(DIFY_HELM_MARKS), score(DOUBAN_MARKS));
    // A top-level key the chart does not have is ignored by Helm: a note (`unknown_keys`). Keys
    // of the other chart's shape say the values are another chart's.
    let foreign = |chart: Chart| -> Option<String> {
        // dify-helm's images are `image.<component>`; douban's `<component>.image` is a mapping.
        let shape = match chart {
            Chart::DifyHelm => v.has(&["api", "image"]).then(|| "`api.image`".to_string()),
            Chart::Douban => {
                v.get(&["api", "image"]).filter(|i| !i.is_mapping()).map(|_| "`api.image` as a string".into())
            }
        };
        shape.map(|s| format!("{s} is not how {} is written", chart.name()))
    };
    let settled = match (boris, douban) {
        (b, 0) if b > 0 => Some(Chart::DifyHelm),
        (0, d) if d > 0 => Some(Chart::Douban),
        _ => None,
    };
    match settled {
        Some(chart) => match foreign(chart) {
            None => Ok(chart),
            Some(why) => Err(Error::file(
                file,
                format!(
                    "does not say which chart it is for, and {why}: the values of another chart — \
                    difyplan reads {} and {} values only; {HELM_TEMPLATE_ADVICE}",
                    Chart::DifyHelm.name(),
                    Chart::Douban.name()
                ),
            )),
        },
        None if boris == 0 => Err(Error::file(
            file,
            format!(
                "not the values of a Dify chart difyplan knows — it reads {} (api.replicas, \
                api.extraEnv, image.api.tag) and {} (api.replicaCount, global.extraBackendEnvs, \
                workerBeat); for another chart, {HELM_TEMPLATE_ADVICE}",
                Chart::DifyHelm.name(),
                Chart::Douban.name()
            ),
        )),
        None => Err(Error::file(
            file,
            format!(
                "has keys of both {} and {} and nothing says which chart it is for — name it with \
                --chart borispolonsky or --chart douban (or keep a Chart.yaml beside it), or \
                {HELM_TEMPLATE_ADVICE}",
                Chart::DifyHelm.name(),
                Chart::Douban.name()
            ),
        )),
    }
}

/// The Dify release: `--dify-version`, else the api image tag, else the chart version's default
/// image, else the latest. A 0.x release (a tag, or the default image of an old chart) is refused.
fn version(v: &Values, chart: Chart, opts: &Options, known: &KnownVersion) -> Result<(DifyVersion, Source), Error> {
    if let Some(ver) = opts.dify_version {
        return Ok((ver, Source::Flag { flag: "--dify-version".into() }));
    }
    let tag = match chart {
        Chart::DifyHelm => v.string(&["image", "api", "tag"]),
        // `coalesce .Values.api.image.tag .Values.global.image.tag .Chart.AppVersion`
        Chart::Douban => v.string(&["api", "image", "tag"]).or_else(|| v.string(&["global", "image", "tag"])),
    };
    Ok(match tag {
        Some(t) => match DifyVersion::from_image_tag(&t.value) {
            Ok(Some(ver)) => (ver, t.source),
            Ok(None) => (
                DifyVersion::LATEST,
                Source::default(format!(
                    "image tag `{}` ({}) names no Dify release; the latest ({}) assumed (pass --dify-version)",
                    t.value,
                    t.source,
                    DifyVersion::LATEST
                )),
            ),
            Err(e) => return Err(Error::at(t.source.clone(), e.to_string())),
        },
        None => match DifyVersion::from_image_tag(known.dify_default) {
            Ok(Some(ver)) => (
                ver,
                Source::default(format!(
                    "no image tag in the values: {} {}'s default image {}",
                    chart.name(),
                    known.label,
                    known.dify_default
                )),
            ),
            Ok(None) => (DifyVersion::LATEST, Source::default("no image tag in the values; assumed the latest")),
            Err(e) => {
                return Err(Error::file(
                    v.file,
                    format!(
                        "{} {} runs Dify {} when the values set no image tag — {e}",
                        chart.name(),
                        known.label,
                        known.dify_default
                    ),
                ));
            }
        },
    })
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
fn dify_helm_specs(v: &Values, role: Option<&Valued<String>>, known: &KnownVersion) -> Vec<Spec> {
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
                (
                    "SERVER_WORKER_CLASS",
                    fixed(
                        "geventwebsocket.gunicorn.workers.GeventWebSocketWorker",
                        "dify-helm api-websocket-deployment.yaml",
                    ),
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
            // Off by default before 0.37.
            enabled_default: Some(known.beat_default),
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
    .into_iter()
    // The apiWebsocket Deployment exists from 0.38 on.
    .filter(|s| s.component != Component::ApiWebsocket || known.websocket)
    .collect()
}

/// The Dify Deployments of douban/charts (templates above).
fn douban_specs(role: Option<&Valued<String>>, known: &KnownVersion) -> Vec<Spec> {
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
    .into_iter()
    // workerBeat exists from 0.8 on, the plugin daemon from 0.6 on.
    .filter(|s| s.component != Component::WorkerBeat || known.beat_default)
    .filter(|s| s.component != Component::PluginDaemon || known.plugin_daemon)
    .collect()
}

/// The Deployment name a chart gives a component, after the release's full name (`dify-api`).
fn deployment_suffix(chart: Chart, component: Component) -> &'static str {
    match (chart, component) {
        (_, Component::Api) => "-api",
        (_, Component::ApiWebsocket) => "-api-websocket",
        (_, Component::Worker) => "-worker",
        (Chart::DifyHelm, Component::WorkerBeat) => "-beat",
        (Chart::Douban, Component::WorkerBeat) => "-worker-beat",
        (_, Component::PluginDaemon) => "-plugin-daemon",
    }
}

/// A component as the chart renders it.
struct Rendered {
    deployed: Deployed,
    /// Its autoscaler, when that has no maximum the budget can count.
    unbounded: Option<Valued<String>>,
}

/// One component as the chart renders it; `None` when the chart does not render it.
fn component(
    v: &Values,
    chart: Chart,
    spec: &Spec,
    opts: &Options,
    hpas: &[Hpa],
    linked: &mut [bool],
) -> Result<Option<Rendered>, Error> {
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
    // douban renders the plugin daemon with `replicas: 1` unless `pluginDaemon.autoscaling` is set;
    // with it and autoscaling off, `replicaCount | default 1`; with autoscaling on, no replicas
    // (Kubernetes' 1) and no autoscaler.
    if chart == Chart::Douban && spec.component == Component::PluginDaemon {
        replicas = if !v.has(&[key, "autoscaling"]) {
            Valued::new(
                1,
                Source::default(
                    "douban/charts renders the plugin daemon with replicas: 1 unless pluginDaemon.autoscaling is set",
                ),
            )
        } else if v.truthy(&[key, "autoscaling", "enabled"], false) {
            Valued::new(
                1,
                Source::default(
                    "douban/charts leaves replicas out with pluginDaemon.autoscaling.enabled, and renders no \
                        autoscaler for it: 1",
                ),
            )
        } else {
            match v.count(&[key, "replicaCount"])? {
                Some(n) if n.value > 0 => n,
                _ => Valued::new(1, Source::default("douban/charts: pluginDaemon.replicaCount | default 1")),
            }
        };
    }
    let mut unbounded = None;
    // An autoscaler committed beside the values, targeting this Deployment by name.
    let suffix = deployment_suffix(chart, spec.component);
    let beside = hpas.iter().position(|h| h.target.ends_with(suffix) || h.target == suffix[1..]);
    let max_replicas = if let Some(i) = beside {
        linked[i] = true;
        let h = &hpas[i];
        match &h.max {
            Some(m) => m.clone(),
            None => {
                unbounded = Some(Valued::new(
                    format!("HorizontalPodAutoscaler for Deployment {} has no maxReplicas", h.target),
                    h.at.clone(),
                ));
                replicas.clone()
            }
        }
    } else if spec.hpa && v.truthy(&[key, "autoscaling", "enabled"], false) {
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
                    return Err(Error::at(
                        item.source.clone(),
                        format!(
                            "{} comes from a valueFrom difyplan cannot read — write it with `value:`, or check the \
                            rendered manifests (`helm template`) instead",
                            item.name
                        ),
                    ));
                }
                None => {
                    env.insert(item.name, Valued::new("(valueFrom)".into(), item.source));
                }
            }
        }
    }
    let mut deployed =
        deployment::interpret(spec.component, key, at, env, replicas, max_replicas, surge, opts.host_cpus)?;
    deployed.cores = cpu_limit(v, key)?;
    Ok(Some(Rendered { deployed, unbounded }))
}

/// `KEY.resources.limits.cpu`, else `.requests.cpu`: both charts put it on the component's
/// container as it is.
fn cpu_limit(v: &Values, key: &str) -> Result<Option<Valued<f64>>, Error> {
    super::kubernetes::resources_cpu(|kind| {
        let at = [key, "resources", kind, "cpu"];
        v.get(&at).and_then(yaml::scalar_string).map(|raw| (raw, v.src(&at)))
    })
}

/// Extra pods of a rolling update, computed on the most pods the Deployment can have.
fn surge(v: &Values, spec: &Spec, pods: u64) -> Result<Valued<u64>, Error> {
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
            super::kubernetes::max_surge_pods(text, pods).map(|n| Valued::new(n, src.clone())).ok_or_else(|| {
                Error::at(
                    src.clone(),
                    format!("maxSurge `{text}` is neither a count nor a percentage — write 1 or 25%"),
                )
            })
        }
        Some(other) => Err(Error::at(
            v.src(&type_path).clone(),
            format!("updateStrategy.type `{other}` is not a Deployment strategy — write RollingUpdate or Recreate"),
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
    /// Faults of the server the values describe (a read replica below its primary).
    observed: Vec<Observed>,
}

/// `max_connections` (and whether it was found) and `idle_in_transaction_session_timeout` of the
/// bundled bitnami PostgreSQL, as far as the values set them.
fn database(v: &Values, chart: Chart, opts: &Options) -> Result<Database, Error> {
    let bundled = bundled_postgres(v, chart);
    let (mut max, mut idle, mut conf_written) = (None, None, None);
    let mut observed = Vec::new();
    if bundled {
        (max, idle, conf_written) = server_settings(v, "primary")?;
        // dify-helm sets the Bitnami subchart's `architecture: replication` (the subchart's own
        // default is standalone): its read replica is a hot standby, which refuses to start with
        // max_connections below its primary's.
        let default_arch = if chart == Chart::DifyHelm { "replication" } else { "standalone" };
        let arch = v.string(&["postgresql", "architecture"]).map_or(default_arch.to_string(), |a| a.value);
        if arch == "replication" {
            let primary = max.as_ref().map(super::postgres::max_connections).transpose()?;
            let replica =
                server_settings(v, "readReplicas")?.0.as_ref().map(super::postgres::max_connections).transpose()?;
            let floor = defaults::COMPOSE_MAX_CONNECTIONS;
            let p = primary.as_ref().map_or(floor, |m| m.value);
            let r = replica.as_ref().map_or(floor, |m| m.value);
            if r < p {
                let at = primary.as_ref().map_or_else(|| v.src(&["postgresql"]), |m| m.source.clone());
                let said = replica.map_or_else(
                    || "sets none (PostgreSQL's 100)".to_string(),
                    |m| format!("sets {} ({})", m.value, m.source),
                );
                observed.push(Observed {
                    what: Observation::ReplicaBelowPrimary,
                    message: format!(
                        "the primary gets max_connections {p} but the read replica of `architecture: replication` \
                            {said}: a hot standby refuses to start below its primary's"
                    ),
                    remedy: "set the same under postgresql.readReplicas.extendedConfiguration, or \
                        `postgresql.architecture: standalone`"
                        .into(),
                    source: at,
                });
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
    Ok(Database { max_connections: max, found, idle_timeout, observed })
}

/// The chart runs its bundled PostgreSQL (Bitnami's subchart).
fn bundled_postgres(v: &Values, chart: Chart) -> bool {
    match chart {
        Chart::DifyHelm => {
            !v.truthy(&["externalPostgres", "enabled"], false) && v.truthy(&["postgresql", "enabled"], true)
        }
        Chart::Douban => v.truthy(&["postgresql", "embedded"], true),
    }
}

/// Settings of the Bitnami subchart's `primary` or `readReplicas`: `max_connections`,
/// `idle_in_transaction_session_timeout`, and where a postgresql.conf snippet was written.
type ServerSettings = (Option<Valued<String>>, Option<Valued<String>>, Option<Source>);

fn server_settings(v: &Values, role: &str) -> Result<ServerSettings, Error> {
    let (mut max, mut idle, mut conf_written) = (None, None, None);
    // extendedConfiguration is appended after the main file, so it wins over `configuration`,
    // which replaces the file the container's env would otherwise edit.
    for conf in ["extendedConfiguration", "configuration"] {
        let path = ["postgresql", role, conf];
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
        for item in v.env_list(&["postgresql", role, "extraEnvVars"])? {
            if matches!(item.name.as_str(), "POSTGRESQL_MAX_CONNECTIONS" | "POSTGRES_MAX_CONNECTIONS")
                && let Some(value) = item.value
            {
                max = Some(Valued::new(value, item.source));
            }
        }
    }
    Ok((max, idle, conf_written))
}

/// `name = value` settings of a postgresql.conf snippet with the line each is written on.
fn conf_settings(v: &Values, path: &[&str], text: &str) -> Vec<(String, String, Source)> {
    let key_path = PathSeg::keys(path);
    let (file, key_line, first) = match v.written(&key_path) {
        // A block scalar (`|`) starts on the line after its key; a flow scalar is all on the key's line.
        Some((l, line)) => (l.file.clone(), line, l.value_line_of(&key_path).filter(|f| *f > line)),
        None => (v.file.to_string(), 1, None),
    };
    super::postgres::conf_lines(text)
        .into_iter()
        .map(|(i, name, value)| (name, value, Source::file(file.clone(), first.map_or(key_line, |f| f + i))))
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
        let d = doc("postgresql:\n  primary:\n    extendedConfiguration: |\n      # comment\n      \
                max_connections = 300\n      idle_in_transaction_session_timeout='10min' # off by \
                default\n      shared_buffers 1GB\n");
        let layers = [Layer::file(d)];
        let v = Values::new(&layers, "v.yaml");
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
            let layers = [Layer::file(doc(text))];
            let v = Values::new(&layers, "v.yaml");
            assert_eq!(surge(&v, &spec(strategy), pods).unwrap().value, want, "{text} with {pods} pods");
        }
        let layers = [Layer::file(doc("api: {updateStrategy: {rollingUpdate: {maxSurge: lots}}}"))];
        let err = surge(&Values::new(&layers, "v.yaml"), &spec(values), 3).unwrap_err();
        let Error::At { at, problem } = &err else { panic!("{err}") };
        assert_eq!(at, &Source::file("v.yaml", 1));
        assert!(problem.starts_with("maxSurge `lots`"), "{err}");
    }
}
