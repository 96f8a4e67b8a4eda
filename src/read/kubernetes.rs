//! Kubernetes manifests: Deployments, StatefulSets, HorizontalPodAutoscalers and ConfigMaps,
//! plain or the output of `kustomize build` / `helm template`. Produces the deployment description.

use super::compose::Options;
use super::inputs::Input;
use super::yaml::{self, Document, PathSeg};
use crate::dify::deployment::{self, Deployment, Env, Source, Valued};
use crate::dify::{Component, DifyVersion, defaults};
use serde_yaml::Value;
use std::collections::BTreeMap;

/// Kubernetes' default `maxSurge` for a Deployment (DOMAIN.md §2).
const DEFAULT_MAX_SURGE: &str = "25%";

fn path(keys: &[&str]) -> Vec<PathSeg> {
    PathSeg::keys(keys)
}

fn join(base: &[PathSeg], more: &[PathSeg]) -> Vec<PathSeg> {
    base.iter().chain(more).cloned().collect()
}

/// Autoscalers by (namespace, target kind, target name): the maximum, and where the HPA is.
type Autoscalers = BTreeMap<(String, String, String), (Option<Valued<u64>>, Source)>;
/// `max_connections` and `idle_in_transaction_session_timeout` read from a server's settings.
type ServerSettings = (Valued<u64>, Option<Valued<String>>);

/// A document with the file it came from.
struct Doc<'a> {
    doc: &'a Document,
}

impl Doc<'_> {
    fn kind(&self) -> &str {
        self.doc.get(&path(&["kind"])).and_then(Value::as_str).unwrap_or_default()
    }
    fn name(&self) -> String {
        yaml::get_string(&self.doc.value, &path(&["metadata", "name"])).unwrap_or_default()
    }
    fn namespace(&self) -> String {
        yaml::get_string(&self.doc.value, &path(&["metadata", "namespace"])).unwrap_or_else(|| "default".into())
    }
    fn at(&self, p: &[PathSeg]) -> Source {
        Source::file(self.doc.file.clone(), self.doc.line_of(p).unwrap_or_else(|| self.doc.start().line))
    }
}

/// One workload's pod template container that runs Dify or PostgreSQL.
struct Workload<'a> {
    doc: Doc<'a>,
    container: Vec<PathSeg>,
    image: String,
}

/// Read every manifest of the inputs as one deployment.
pub fn read(inputs: &[&Input], opts: &Options) -> Result<Deployment, String> {
    let mut documents = Vec::new();
    for input in inputs {
        let name = crate::safety::shown_path(&input.path);
        documents.extend(yaml::parse_documents(&input.text()?, &name).map_err(|e| e.to_string())?);
    }
    // `kind: List` (kubectl get -o yaml) holds its manifests in `items`.
    let mut expanded = Vec::new();
    for d in &documents {
        if d.get(&path(&["kind"])).and_then(Value::as_str) == Some("List") {
            return Err(format!(
                "{}:{}: a `kind: List` — split it into documents (`kubectl get -o yaml` output is not what is committed; pass the manifests)",
                d.file,
                d.start().line
            ));
        }
        expanded.push(Doc { doc: d });
    }

    // ConfigMaps by (namespace, name): data keys with their lines.
    let mut config_maps: BTreeMap<(String, String), Env> = BTreeMap::new();
    for d in expanded.iter().filter(|d| d.kind() == "ConfigMap") {
        let mut env = Env::new();
        if let Some(Value::Mapping(data)) = d.doc.get(&path(&["data"])) {
            for (k, v) in data {
                let (Some(k), Some(v)) = (yaml::scalar_string(k), yaml::scalar_string(v)) else { continue };
                let at = d.at(&path(&["data", &k]));
                env.insert(k, Valued::new(v, at));
            }
        }
        config_maps.insert((d.namespace(), d.name()), env);
    }

    // Autoscalers by their target.
    let mut hpas: Autoscalers = BTreeMap::new();
    for d in expanded.iter().filter(|d| d.kind() == "HorizontalPodAutoscaler") {
        let kind = yaml::get_string(&d.doc.value, &path(&["spec", "scaleTargetRef", "kind"])).unwrap_or_default();
        let target = yaml::get_string(&d.doc.value, &path(&["spec", "scaleTargetRef", "name"])).unwrap_or_default();
        let max = match yaml::get_string(&d.doc.value, &path(&["spec", "maxReplicas"])) {
            Some(m) => Some(Valued::new(
                deployment::whole_count(&m, deployment::MAX_COUNT).map_err(|why| {
                    format!(
                        "{}: maxReplicas `{}` {why}",
                        d.at(&path(&["spec", "maxReplicas"])),
                        crate::safety::shown(&m)
                    )
                })?,
                d.at(&path(&["spec", "maxReplicas"])),
            )),
            None => None,
        };
        hpas.insert((d.namespace(), kind, target), (max, d.at(&path(&["metadata", "name"]))));
    }

    let mut workloads = Vec::new();
    for d in expanded.into_iter().filter(|d| matches!(d.kind(), "Deployment" | "StatefulSet")) {
        let containers = path(&["spec", "template", "spec", "containers"]);
        let count = d.doc.get(&containers).and_then(Value::as_sequence).map_or(0, Vec::len);
        // The first container that runs a Dify image or PostgreSQL; sidecars are skipped.
        let found = (0..count).find_map(|i| {
            let c = join(&containers, &[PathSeg::Index(i)]);
            let image = yaml::get_string(&d.doc.value, &join(&c, &path(&["image"]))).unwrap_or_default();
            (image.contains("dify-api") || image.contains("dify-plugin-daemon") || is_postgres_image(&image))
                .then_some((c, image))
        });
        if let Some((container, image)) = found {
            workloads.push(Workload { doc: d, container, image });
        }
    }

    let mut components = Vec::new();
    let mut counted = Vec::new();
    let mut max_connections = None;
    let mut idle_timeout = None;
    let mut image_version = None;
    for w in &workloads {
        let d = &w.doc;
        let env = container_env(w, &config_maps)?;
        if is_postgres_image(&w.image) {
            let (max, idle) = postgres_settings(w, &env)?;
            max_connections = max.or(max_connections);
            idle_timeout = Some(idle);
            continue;
        }
        if let Some(tag) = w.image.split("dify-api:").nth(1) {
            image_version = tag.parse::<DifyVersion>().ok().or(image_version);
        }
        let component = if w.image.contains("dify-plugin-daemon") {
            Component::PluginDaemon
        } else {
            match env.get("MODE").map(|m| m.value.as_str()) {
                Some("worker") => Component::Worker,
                Some("beat") => Component::WorkerBeat,
                _ if d.name().contains("websocket")
                    || env.get("SERVER_WORKER_CLASS").is_some_and(|c| c.value.contains("websocket")) =>
                {
                    Component::ApiWebsocket
                }
                _ => Component::Api,
            }
        };
        let replicas = match yaml::get_string(&d.doc.value, &path(&["spec", "replicas"])) {
            Some(r) => Valued::new(
                deployment::whole_count(&r, deployment::MAX_COUNT).map_err(|why| {
                    format!("{}: replicas `{}` {why}", d.at(&path(&["spec", "replicas"])), crate::safety::shown(&r))
                })?,
                d.at(&path(&["spec", "replicas"])),
            ),
            None => Valued::new(1, Source::default("Kubernetes default: 1 replica")),
        };
        let key = (d.namespace(), d.kind().to_string(), d.name());
        let max_replicas = match hpas.get(&key) {
            Some((Some(max), _)) => {
                counted.push(key.clone());
                max.clone()
            }
            Some((None, _)) | None => replicas.clone(),
        };
        let surge = surge(d, max_replicas.value.max(replicas.value))?;
        components.push(deployment::interpret(
            component,
            &d.name(),
            d.at(&path(&["metadata", "name"])),
            env,
            replicas,
            max_replicas,
            surge,
            opts.host_cpus,
        )?);
    }
    components.sort_by(|a, b| a.component.cmp(&b.component).then(a.name.cmp(&b.name)));

    // Autoscalers whose target was not found or which have no maximum: not counted.
    let unbounded_autoscalers = hpas
        .iter()
        .filter(|(key, (max, _))| max.is_none() || !counted.contains(key))
        .filter(|((_, kind, _), _)| matches!(kind.as_str(), "Deployment" | "StatefulSet" | ""))
        .map(|((ns, kind, name), (max, at))| {
            let why =
                if max.is_none() { "has no maxReplicas" } else { "targets a workload that is not among the inputs" };
            Valued::new(format!("HorizontalPodAutoscaler for {kind} {ns}/{name} {why}"), at.clone())
        })
        .collect();

    let version = opts.dify_version.or(image_version).unwrap_or(DifyVersion::LATEST);
    let version_source = if opts.dify_version.is_some() {
        Source::Flag { flag: "--dify-version".into() }
    } else if image_version.is_some() {
        Source::default("image tag of langgenius/dify-api")
    } else {
        Source::default("no image tag; assumed the latest (pass --dify-version)")
    };
    // No PostgreSQL workload among the inputs: a ConfigMap may carry its postgresql.conf.
    if max_connections.is_none()
        && let Some((max, idle)) = conf_in_config_maps(&config_maps)?
    {
        // The file sets the server's settings; what it leaves out is PostgreSQL's default (0).
        idle_timeout = Some(idle.unwrap_or_else(|| Valued::new("0".into(), max.source.clone())));
        max_connections = Some(max);
    }
    let (max_connections, found) = match (opts.pg_max_connections, max_connections) {
        (Some(n), _) => (Valued::new(n, Source::Flag { flag: "--pg-max-connections".into() }), true),
        (None, Some(m)) => (m, true),
        (None, None) => (
            Valued::new(
                defaults::COMPOSE_MAX_CONNECTIONS,
                Source::default("PostgreSQL default 100 (no max_connections in the inputs)"),
            ),
            false,
        ),
    };
    let (app_role, app_role_superuser) = super::app_role(&components, opts);
    Ok(Deployment {
        version,
        version_source,
        components,
        max_connections,
        max_connections_found: found,
        app_role,
        app_role_superuser,
        idle_in_transaction_timeout: idle_timeout,
        unbounded_autoscalers,
    })
}

fn is_postgres_image(image: &str) -> bool {
    let name = image.rsplit('/').next().unwrap_or(image);
    name.starts_with("postgres") || name.starts_with("postgresql")
}

/// The container's environment: `envFrom` ConfigMaps first, then `env` (which wins, as in
/// Kubernetes). Secrets and `valueFrom` references are left out: their values are not in the files.
fn container_env(w: &Workload, config_maps: &BTreeMap<(String, String), Env>) -> Result<Env, String> {
    let d = &w.doc;
    let mut env = Env::new();
    let env_from = join(&w.container, &path(&["envFrom"]));
    if let Some(items) = d.doc.get(&env_from).and_then(Value::as_sequence) {
        for (i, item) in items.iter().enumerate() {
            let Some(name) = yaml::get_string(item, &path(&["configMapRef", "name"])) else { continue };
            let prefix = yaml::get_string(item, &path(&["prefix"])).unwrap_or_default();
            let key = (d.namespace(), name.clone());
            let optional = yaml::get(item, &path(&["configMapRef", "optional"])).and_then(Value::as_bool) == Some(true);
            let Some(cm) = config_maps.get(&key) else {
                if optional {
                    // Kubernetes starts the pod without it; so does the budget.
                    continue;
                }
                return Err(format!(
                    "{}: ConfigMap `{name}` (namespace {}) used by {} {} is not in the given files — pass the file that defines it",
                    d.at(&join(&env_from, &[PathSeg::Index(i)])),
                    key.0,
                    d.kind(),
                    d.name()
                ));
            };
            for (k, v) in cm {
                env.insert(format!("{prefix}{k}"), v.clone());
            }
        }
    }
    let env_path = join(&w.container, &path(&["env"]));
    if let Some(items) = d.doc.get(&env_path).and_then(Value::as_sequence) {
        for (i, item) in items.iter().enumerate() {
            let Some(name) = yaml::get_string(item, &path(&["name"])) else { continue };
            let at = d.at(&join(&env_path, &[PathSeg::Index(i)]));
            match yaml::get(item, &path(&["value"])) {
                Some(v) => {
                    env.insert(name, Valued::new(yaml::scalar_string(v).unwrap_or_default(), at));
                }
                None if yaml::get(item, &path(&["valueFrom"])).is_some() => {
                    // A Secret or field reference: present, value unknown.
                    env.insert(name, Valued::new(String::new(), at));
                }
                None => {
                    env.insert(name, Valued::new(String::new(), at));
                }
            }
        }
    }
    Ok(env)
}

/// `max_connections` and `idle_in_transaction_session_timeout` from the PostgreSQL container:
/// `-c name=value` or `--name=value` in `args`/`command`, or the Bitnami image's
/// `POSTGRESQL_MAX_CONNECTIONS` / `POSTGRESQL_IDLE_IN_TRANSACTION_SESSION_TIMEOUT` variables.
fn postgres_settings(w: &Workload, env: &Env) -> Result<(Option<Valued<u64>>, Valued<String>), String> {
    let d = &w.doc;
    let mut words: Vec<Valued<String>> = Vec::new();
    for field in ["command", "args"] {
        let p = join(&w.container, &path(&[field]));
        if let Some(items) = d.doc.get(&p).and_then(Value::as_sequence) {
            for (i, item) in items.iter().enumerate() {
                let at = d.at(&join(&p, &[PathSeg::Index(i)]));
                for word in super::compose::shell_words(&yaml::scalar_string(item).unwrap_or_default()) {
                    words.push(Valued::new(word, at.clone()));
                }
            }
        }
    }
    let mut settings = super::postgres::command_line(&words);
    for (var, name) in [
        ("POSTGRESQL_MAX_CONNECTIONS", "max_connections"),
        ("POSTGRESQL_IDLE_IN_TRANSACTION_SESSION_TIMEOUT", "idle_in_transaction_session_timeout"),
    ] {
        if let Some(v) = env.get(var) {
            settings.entry(name.to_string()).or_insert_with(|| v.clone());
        }
    }
    let max = match settings.get("max_connections") {
        Some(v) => Some(super::postgres::max_connections(v)?),
        // The server runs with PostgreSQL's own default when nothing sets it.
        None => Some(Valued::new(defaults::COMPOSE_MAX_CONNECTIONS, Source::default("PostgreSQL default (100)"))),
    };
    let idle = settings
        .get("idle_in_transaction_session_timeout")
        .cloned()
        .unwrap_or_else(|| Valued::new("0".into(), d.at(&join(&w.container, &path(&["image"])))));
    Ok((max, idle))
}

/// Rolling-update surge in pods for `replicas`: `maxSurge` as a number or a percentage of the
/// replicas rounded up (Kubernetes' rule); 0 for `Recreate` and for StatefulSets, which replace
/// pods one at a time.
fn surge(d: &Doc, replicas: u64) -> Result<Valued<u64>, String> {
    if d.kind() == "StatefulSet" {
        return Ok(Valued::new(0, Source::default("StatefulSet: pods are replaced, not surged")));
    }
    let strategy = yaml::get_string(&d.doc.value, &path(&["spec", "strategy", "type"]));
    if strategy.as_deref() == Some("Recreate") {
        return Ok(Valued::new(0, d.at(&path(&["spec", "strategy", "type"]))));
    }
    let p = path(&["spec", "strategy", "rollingUpdate", "maxSurge"]);
    let (raw, source) = match yaml::get_string(&d.doc.value, &p) {
        Some(v) => (v, d.at(&p)),
        None => (DEFAULT_MAX_SURGE.to_string(), Source::default("Kubernetes default maxSurge 25%")),
    };
    let pods = max_surge_pods(&raw, replicas)
        .ok_or_else(|| format!("{source}: maxSurge `{raw}` is not a number or a percentage"))?;
    Ok(Valued::new(pods, source))
}

/// `maxSurge` in pods for `replicas`: a count, or a percentage of the replicas rounded up
/// (Kubernetes' rule). `None` when it is neither.
pub fn max_surge_pods(raw: &str, replicas: u64) -> Option<u64> {
    let raw = raw.trim();
    match raw.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<u64>().ok().map(|p| replicas.saturating_mul(p).div_ceil(100)),
        None => raw.parse::<u64>().ok(),
    }
}

/// `max_connections` (and `idle_in_transaction_session_timeout`) from a `postgresql.conf` carried
/// in a ConfigMap's data (`key = value` lines, `#` comments), as operators mount it into the server.
fn conf_in_config_maps(config_maps: &BTreeMap<(String, String), Env>) -> Result<Option<ServerSettings>, String> {
    for env in config_maps.values() {
        for (key, v) in env {
            if !key.ends_with(".conf") {
                continue;
            }
            let mut max = None;
            let mut idle = None;
            for (i, name, value) in super::postgres::conf_lines(&v.value) {
                // A block scalar starts on the line after its key.
                let at = match &v.source {
                    Source::File { path, line } => Source::file(path.clone(), line + 1 + i),
                    other => other.clone(),
                };
                match name.as_str() {
                    "max_connections" => max = Some(super::postgres::max_connections(&Valued::new(value, at))?),
                    "idle_in_transaction_session_timeout" => idle = Some(Valued::new(value, at)),
                    _ => {}
                }
            }
            if let Some(max) = max {
                return Ok(Some((max, idle)));
            }
        }
    }
    Ok(None)
}
