//! Kubernetes manifests: Deployments, StatefulSets, HorizontalPodAutoscalers and ConfigMaps,
//! plain or the output of `kustomize build` / `helm template`. Produces the deployment description.

use super::compose::Options;
use super::inputs::Input;
use super::yaml::{self, Document, PathSeg};
use crate::deployment::{self, Cap, Deployment, Env, Observation, Observed, Source, Valued};
use crate::dify::db_type::DbType;
use crate::dify::{Component, DifyVersion, defaults};
use crate::read::error::Error;
use serde_yaml::Value;
use std::collections::BTreeMap;

mod mysql_server;

/// Kubernetes' default `maxSurge` for a Deployment (docs/model.md §2).
const DEFAULT_MAX_SURGE: &str = "25%";

fn path(keys: &[&str]) -> Vec<PathSeg> {
    PathSeg::keys(keys)
}

fn join(base: &[PathSeg], more: &[PathSeg]) -> Vec<PathSeg> {
    base.iter().chain(more).cloned().collect()
}

/// Autoscalers by (namespace, target kind, target name): the maximum, and where the HPA is.
type Autoscalers = BTreeMap<(String, String, String), (Option<Valued<u64>>, Source)>;
/// ConfigMaps by (namespace, name): their data keys, each with where it is written.
type ConfigMaps = BTreeMap<(String, String), Env>;
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
        let (file, line) = self.doc.written_at(p);
        Source::file(file, line)
    }
}

/// One workload's pod template container that runs Dify or PostgreSQL.
struct Workload<'a> {
    doc: Doc<'a>,
    container: Vec<PathSeg>,
    image: String,
}

/// Read every manifest of the inputs as one deployment.
pub fn read(inputs: &[&Input], opts: &Options) -> Result<Deployment, Error> {
    let mut documents = Vec::new();
    for input in inputs {
        let name = crate::safety::shown_path(&input.path);
        documents.extend(yaml::parse_documents(&input.text()?, &name)?);
    }
    read_documents(&documents, opts)
}

/// Read parsed manifests (of files, or a kustomize build) as one deployment.
pub fn read_documents(documents: &[Document], opts: &Options) -> Result<Deployment, Error> {
    let expanded = expand(documents)?;
    let config_maps = config_maps(&expanded)?;
    let hpas = autoscalers(&expanded)?;
    let mut pooler = None;
    for d in expanded.iter().filter(|d| matches!(d.kind(), "Deployment" | "StatefulSet")) {
        if pooler.is_none() {
            pooler = read_pooler(d, &expanded, &config_maps)?;
        }
    }
    let workloads = workloads(expanded);

    let mut servers = Servers::default();
    let mut images = ImageVersion::default();
    let mut components = Vec::new();
    let mut counted = Vec::new();
    for w in &workloads {
        let env = container_env(w, &config_maps)?;
        if servers.take(w, &env, &config_maps)? {
            continue;
        }
        images.note(w);
        components.push(dify_component(w, env, &hpas, &mut counted, opts)?);
    }
    components.sort_by(|a, b| a.component.cmp(&b.component).then(a.name.cmp(&b.name)));
    let pooler = pooler.map(|(mut p, names)| {
        super::pgbouncer::route(&mut p, &components, &names);
        p
    });
    let observed = standby_faults(servers.max_connections(), &servers.standbys);
    let unbounded_autoscalers = unbounded_autoscalers(&hpas, &counted);
    let (version, version_source) = images.version(opts)?;
    let db_type = super::mysql::components_db_type(&components)?.unwrap_or_default();
    let cap = match db_type {
        DbType::Mysql => mysql_cap(servers.mysql, pooler.as_ref(), &config_maps, &components, opts)?,
        DbType::Postgresql => postgres_cap(servers.postgres, &config_maps, &components, opts)?,
    };
    Ok(Deployment {
        unbounded_autoscalers,
        pooler: if db_type == DbType::Mysql { None } else { pooler },
        observed,
        ..Deployment::new(version, version_source, db_type, components, cap)
    })
}

/// The documents as `Doc`s; a `kind: List` (`kubectl get -o yaml`, holding its manifests in
/// `items`) is refused.
fn expand(documents: &[Document]) -> Result<Vec<Doc<'_>>, Error> {
    let mut expanded = Vec::new();
    for d in documents {
        if d.get(&path(&["kind"])).and_then(Value::as_str) == Some("List") {
            return Err(Error::line(
                d.file.clone(),
                d.start().line,
                "a `kind: List` — split it into documents (`kubectl get -o yaml` output is not what \
                    is committed; pass the manifests)"
                    .to_string(),
            ));
        }
        expanded.push(Doc { doc: d });
    }
    Ok(expanded)
}

/// ConfigMaps by (namespace, name): data keys with their lines, and those a Kustomization
/// generates (configMapGenerator: envs, files, literals).
fn config_maps(expanded: &[Doc]) -> Result<ConfigMaps, Error> {
    let mut config_maps = ConfigMaps::new();
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
    for d in expanded.iter().filter(|d| super::kustomize::is_kustomization(d.doc)) {
        for g in super::kustomize::generated(d.doc)? {
            let mut env: Env = g.data.into_iter().collect();
            for (key, path) in g.files {
                let text = super::read_text(&path)?;
                env.insert(key, Valued::new(text, Source::file(crate::safety::shown_path(&path), 1)));
            }
            config_maps.entry((g.namespace.unwrap_or_else(|| "default".into()), g.name)).or_default().extend(env);
        }
    }
    Ok(config_maps)
}

/// Autoscalers by their target.
fn autoscalers(expanded: &[Doc]) -> Result<Autoscalers, Error> {
    let mut hpas = Autoscalers::new();
    for d in expanded.iter().filter(|d| d.kind() == "HorizontalPodAutoscaler") {
        let kind = yaml::get_string(&d.doc.value, &path(&["spec", "scaleTargetRef", "kind"])).unwrap_or_default();
        let target = yaml::get_string(&d.doc.value, &path(&["spec", "scaleTargetRef", "name"])).unwrap_or_default();
        let max = count_at(d, &path(&["spec", "maxReplicas"]), "maxReplicas")?;
        hpas.insert((d.namespace(), kind, target), (max, d.at(&path(&["metadata", "name"]))));
    }
    Ok(hpas)
}

/// A count written at `p` of a document, located; `None` when absent.
fn count_at(d: &Doc, p: &[PathSeg], name: &str) -> Result<Option<Valued<u64>>, Error> {
    let Some(text) = yaml::get_string(&d.doc.value, p) else { return Ok(None) };
    let n = deployment::whole_count(&text, deployment::MAX_COUNT)
        .map_err(|problem| deployment::CountError::new(d.at(p), name, &text, problem))?;
    Ok(Some(Valued::new(n, d.at(p))))
}

/// The Deployments and StatefulSets whose pods run a Dify image, PostgreSQL or MySQL: the first
/// such container of each (sidecars are skipped).
fn workloads(expanded: Vec<Doc<'_>>) -> Vec<Workload<'_>> {
    let mut workloads = Vec::new();
    for d in expanded.into_iter().filter(|d| matches!(d.kind(), "Deployment" | "StatefulSet")) {
        let containers = path(&["spec", "template", "spec", "containers"]);
        let count = d.doc.get(&containers).and_then(Value::as_sequence).map_or(0, Vec::len);
        let found = (0..count).find_map(|i| {
            let c = join(&containers, &[PathSeg::Index(i)]);
            let image = yaml::get_string(&d.doc.value, &join(&c, &path(&["image"]))).unwrap_or_default();
            (image.contains("dify-api")
                || image.contains("dify-plugin-daemon")
                || is_postgres_image(&image)
                || super::mysql::is_mysql_image(&image))
            .then_some((c, image))
        });
        if let Some((container, image)) = found {
            workloads.push(Workload { doc: d, container, image });
        }
    }
    workloads
}

/// What the database workloads say.
#[derive(Default)]
struct Servers {
    postgres: Postgres,
    /// Hot standbys (Bitnami's read replicas): checked against the primary afterwards.
    standbys: Vec<(String, Valued<u64>)>,
    mysql: Option<mysql_server::Server>,
}

/// The PostgreSQL primary's settings and the superuser its image creates.
#[derive(Default)]
struct Postgres {
    max_connections: Option<Valued<u64>>,
    idle_timeout: Option<Valued<String>>,
    superuser: Option<String>,
}

impl Servers {
    /// Take in a database workload; `false` for a Dify one.
    fn take(&mut self, w: &Workload, env: &Env, config_maps: &ConfigMaps) -> Result<bool, Error> {
        if super::mysql::is_mysql_image(&w.image) {
            if self.mysql.is_none() {
                self.mysql = Some(mysql_server::server(w, env, config_maps)?);
            }
            return Ok(true);
        }
        if !is_postgres_image(&w.image) {
            return Ok(false);
        }
        let (max, idle) = postgres_settings(w, env, config_maps)?;
        if is_standby(&w.doc, env) {
            self.standbys.extend(max.map(|m| (w.doc.name(), m)));
            return Ok(true);
        }
        let pg = &mut self.postgres;
        pg.max_connections = max.or(pg.max_connections.take());
        pg.idle_timeout = Some(idle);
        // The official image (and those built on it) creates POSTGRES_USER as a superuser
        // (Bitnami's does not).
        if super::postgres::server_image(&w.image) == Some(super::postgres::ServerImage::Official) {
            pg.superuser = Some(env.get("POSTGRES_USER").map_or_else(|| "postgres".to_string(), |u| u.value.clone()));
        }
        Ok(true)
    }

    fn max_connections(&self) -> Option<&Valued<u64>> {
        self.postgres.max_connections.as_ref()
    }
}

/// The Dify release the dify-api images name.
#[derive(Default)]
struct ImageVersion {
    version: Option<DifyVersion>,
    /// A tag that names no release, with where it stands.
    unknown_tag: Option<Valued<String>>,
    /// A tag naming a release difyplan does not model (0.x), with where it stands.
    refused: Option<Error>,
}

impl ImageVersion {
    fn note(&mut self, w: &Workload) {
        let Some(tag) = DifyVersion::api_image_tag(&w.image) else { return };
        let at = || w.doc.at(&join(&w.container, &path(&["image"])));
        match DifyVersion::from_image_tag(tag) {
            Ok(Some(v)) => self.version = Some(v),
            Ok(None) => self.unknown_tag = Some(Valued::new(tag.to_string(), at())),
            Err(e) => {
                self.refused.get_or_insert(Error::at(at(), e));
            }
        }
    }

    /// The release to read with, and what says so: `--dify-version`, else the images, else the
    /// latest with a note.
    fn version(self, opts: &Options) -> Result<(DifyVersion, Source), Error> {
        if let (None, Some(e)) = (opts.dify_version, self.refused) {
            return Err(e);
        }
        let version = opts.dify_version.or(self.version).unwrap_or(DifyVersion::LATEST);
        let source = if opts.dify_version.is_some() {
            Source::Flag { flag: "--dify-version".into() }
        } else if self.version.is_some() {
            Source::default("image tag of langgenius/dify-api")
        } else if let Some(tag) = self.unknown_tag {
            Source::default(format!(
                "dify-api image tag `{}` ({}) names no Dify release; the latest ({}) assumed (pass \
                    --dify-version)",
                tag.value,
                tag.source,
                DifyVersion::LATEST
            ))
        } else {
            Source::default("no dify-api image tag; the latest layout assumed (pass --dify-version)")
        };
        Ok((version, source))
    }
}

/// Which Dify process a workload runs: the plugin daemon by its image, else by `MODE` (and the
/// websocket api by its name or worker class).
fn component_of(w: &Workload, env: &Env) -> Component {
    if w.image.contains("dify-plugin-daemon") {
        return Component::PluginDaemon;
    }
    match env.get("MODE").map(|m| m.value.as_str()) {
        Some("worker") => Component::Worker,
        Some("beat") => Component::WorkerBeat,
        _ if w.doc.name().contains("websocket")
            || env.get("SERVER_WORKER_CLASS").is_some_and(|c| c.value.contains("websocket")) =>
        {
            Component::ApiWebsocket
        }
        _ => Component::Api,
    }
}

/// A Dify workload as a deployed component: its replicas, the maximum its autoscaler allows
/// (recorded in `counted`), the rolling-update surge, its settings and its cores.
fn dify_component(
    w: &Workload,
    env: Env,
    hpas: &Autoscalers,
    counted: &mut Vec<(String, String, String)>,
    opts: &Options,
) -> Result<deployment::Deployed, Error> {
    let d = &w.doc;
    if let Some(program) = deployment::own_server(&container_words(w)) {
        return Err(super::bypass_refusal(&d.name(), program));
    }
    let replicas = count_at(d, &path(&["spec", "replicas"]), "replicas")?
        .unwrap_or_else(|| Valued::new(1, Source::default("Kubernetes default: 1 replica")));
    let key = (d.namespace(), d.kind().to_string(), d.name());
    let max_replicas = match hpas.get(&key) {
        Some((Some(max), _)) => {
            counted.push(key.clone());
            max.clone()
        }
        Some((None, _)) | None => replicas.clone(),
    };
    let surge = surge(d, max_replicas.value.max(replicas.value))?;
    let mut deployed = deployment::interpret(
        component_of(w, &env),
        &d.name(),
        d.at(&path(&["metadata", "name"])),
        env,
        replicas,
        max_replicas,
        surge,
        opts.host_cpus,
    )?;
    deployed.cores = cpu_limit(d, &w.container)?;
    Ok(deployed)
}

/// The words of a container's `command` then `args`, each split as a shell would and located.
fn container_words(w: &Workload) -> Vec<Valued<String>> {
    let mut words = Vec::new();
    for field in ["command", "args"] {
        let p = join(&w.container, &path(&[field]));
        for (i, item) in w.doc.doc.get(&p).and_then(Value::as_sequence).into_iter().flatten().enumerate() {
            let at = w.doc.at(&join(&p, &[PathSeg::Index(i)]));
            for word in super::compose::shell_words(&yaml::scalar_string(item).unwrap_or_default()) {
                words.push(Valued::new(word, at.clone()));
            }
        }
    }
    words
}

/// Autoscalers whose target was not found or which have no maximum: not counted.
fn unbounded_autoscalers(hpas: &Autoscalers, counted: &[(String, String, String)]) -> Vec<Valued<String>> {
    hpas.iter()
        .filter(|(key, (max, _))| max.is_none() || !counted.contains(key))
        .filter(|((_, kind, _), _)| matches!(kind.as_str(), "Deployment" | "StatefulSet" | ""))
        .map(|((ns, kind, name), (max, at))| {
            let why =
                if max.is_none() { "has no maxReplicas" } else { "targets a workload that is not among the inputs" };
            Valued::new(format!("HorizontalPodAutoscaler for {kind} {ns}/{name} {why}"), at.clone())
        })
        .collect()
}

/// MySQL's cap: `--db-max-connections`, else the server's Deployment or StatefulSet, else its
/// my.cnf in a ConfigMap, else MySQL's default. PgBouncer in front of it is refused.
fn mysql_cap(
    server: Option<mysql_server::Server>,
    pooler: Option<&deployment::DeployedPooler>,
    config_maps: &ConfigMaps,
    components: &[deployment::Deployed],
    opts: &Options,
) -> Result<Cap, Error> {
    if let Some(p) = pooler {
        return Err(Error::at(
            p.at.clone(),
            "a PgBouncer in front of a MySQL database (DB_TYPE=mysql) — PgBouncer speaks PostgreSQL only; \
             the MySQL equivalent is ProxySQL, which difyplan does not read: check its budget by hand"
                .to_string(),
        ));
    }
    let (max, user) = match server {
        Some(s) => (Some(s.max_connections), s.user),
        None => (mysql_server::cnf_in_config_maps(config_maps)?, None),
    };
    let (max_connections, found) = match (opts.pg_max_connections, max) {
        (Some(n), _) => (Valued::new(n, Source::Flag { flag: "--db-max-connections".into() }), true),
        (None, Some(m)) => (m, true),
        (None, None) => (
            Valued::new(
                crate::dify::db_type::mysql::DEFAULT_MAX_CONNECTIONS,
                Source::default("no MySQL server or my.cnf in the inputs: MySQL default 151 assumed"),
            ),
            false,
        ),
    };
    let (app_role, superuser) = super::app_role_for(components, opts, DbType::Mysql);
    // MYSQL_USER is an ordinary account the image creates; only root holds CONNECTION_ADMIN.
    let app_role_superuser =
        superuser && (opts.app_role_superuser.is_some() || user.as_deref() != Some(app_role.value.as_str()));
    Ok(Cap { max_connections, found, app_role, app_role_superuser, idle_timeout: None })
}

/// PostgreSQL's cap: `--pg-max-connections`, else the primary's settings, else a
/// postgresql.conf in a ConfigMap, else PostgreSQL's default.
fn postgres_cap(
    mut pg: Postgres,
    config_maps: &ConfigMaps,
    components: &[deployment::Deployed],
    opts: &Options,
) -> Result<Cap, Error> {
    if pg.max_connections.is_none()
        && let Some((max, idle)) = conf_in_config_maps(config_maps)?
    {
        // The file sets the server's settings; what it leaves out is PostgreSQL's default (0).
        pg.idle_timeout = Some(idle.unwrap_or_else(|| Valued::new("0".into(), max.source.clone())));
        pg.max_connections = Some(max);
    }
    let (max_connections, found) = match (opts.pg_max_connections, pg.max_connections) {
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
    let (app_role, mut app_role_superuser) = super::app_role(components, opts);
    if opts.app_role_superuser.is_none() && pg.superuser.as_deref() == Some(app_role.value.as_str()) {
        app_role_superuser = true;
    }
    Ok(Cap { max_connections, found, app_role, app_role_superuser, idle_timeout: pg.idle_timeout })
}

/// A workload running PgBouncer: its pgbouncer.ini from a mounted ConfigMap (else the image's
/// environment variables), pods and processes, and the names Dify may reach it by (the
/// workload's, and every Service that selects its pods).
fn read_pooler(
    d: &Doc,
    all: &[Doc],
    config_maps: &ConfigMaps,
) -> Result<Option<(deployment::DeployedPooler, Vec<String>)>, Error> {
    let containers = path(&["spec", "template", "spec", "containers"]);
    let count = d.doc.get(&containers).and_then(Value::as_sequence).map_or(0, Vec::len);
    let Some((container, image)) = (0..count).find_map(|i| {
        let c = join(&containers, &[PathSeg::Index(i)]);
        let image = yaml::get_string(&d.doc.value, &join(&c, &path(&["image"]))).unwrap_or_default();
        super::pgbouncer::is_pgbouncer_image(&image).then_some((c, image))
    }) else {
        return Ok(None);
    };
    // Volumes that are ConfigMaps, by volume name.
    let volumes: BTreeMap<String, String> = d
        .doc
        .get(&path(&["spec", "template", "spec", "volumes"]))
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            Some((yaml::get_string(v, &path(&["name"]))?, yaml::get_string(v, &path(&["configMap", "name"]))?))
        })
        .collect();
    let mounts = d.doc.get(&join(&container, &path(&["volumeMounts"]))).and_then(Value::as_sequence);
    let ini_text = mounts.into_iter().flatten().find_map(|m| {
        let cm = volumes.get(&yaml::get_string(m, &path(&["name"]))?)?;
        let data = config_maps.get(&(d.namespace(), cm.clone()))?;
        let sub = yaml::get_string(m, &path(&["subPath"]));
        match sub {
            Some(key) => data.get(&key).filter(|_| key.ends_with(".ini")),
            None => data.iter().find(|(k, _)| k.ends_with(".ini")).map(|(_, v)| v),
        }
    });
    let settings = match ini_text {
        Some(v) => match &v.source {
            // A block scalar starts on the line after its key.
            Source::File { path, line } => super::pgbouncer::ini(&v.value, path, line + 1),
            _ => super::pgbouncer::ini(&v.value, "", 1),
        },
        None => {
            let w = Workload { doc: Doc { doc: d.doc }, container: container.clone(), image };
            super::pgbouncer::from_env(&container_env(&w, config_maps)?)
        }
    };
    let mut words = Vec::new();
    for field in ["command", "args"] {
        if let Some(items) = d.doc.get(&join(&container, &path(&[field]))).and_then(Value::as_sequence) {
            words.extend(items.iter().filter_map(yaml::scalar_string));
        }
    }
    let replicas = count_at(d, &path(&["spec", "replicas"]), "replicas")?.map_or(1, |r| r.value);
    let surge = surge(d, replicas)?;
    let pods = Valued::new(replicas.saturating_add(surge.value), d.at(&path(&["spec", "replicas"])));
    let p = super::pgbouncer::pooler(
        &d.name(),
        d.at(&path(&["metadata", "name"])),
        &settings,
        pods,
        super::pgbouncer::processes(&words),
    )?;
    // Services whose selector matches the pod template's labels.
    let labels = d.doc.get(&path(&["spec", "template", "metadata", "labels"])).and_then(Value::as_mapping);
    let mut names = vec![d.name()];
    for svc in all.iter().filter(|s| s.kind() == "Service" && s.namespace() == d.namespace()) {
        let Some(selector) = svc.doc.get(&path(&["spec", "selector"])).and_then(Value::as_mapping) else { continue };
        let matches = !selector.is_empty()
            && selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)).is_some_and(|lv| lv == v));
        if matches {
            names.push(svc.name());
        }
    }
    Ok(Some((p, names)))
}

/// Hot standbys below their primary's `max_connections`: each refuses to start (a fault of the
/// deployment, reported as a finding).
fn standby_faults(primary: Option<&Valued<u64>>, standbys: &[(String, Valued<u64>)]) -> Vec<Observed> {
    let Some(primary) = primary else { return Vec::new() };
    standbys
        .iter()
        .filter(|(_, standby)| standby.value < primary.value)
        .map(|(name, standby)| Observed {
            what: Observation::ReplicaBelowPrimary,
            message: format!(
                "the read replica {name} runs with max_connections {} but its primary with {} ({}): a hot standby \
                    refuses to start below its primary's",
                standby.value, primary.value, primary.source
            ),
            remedy: format!(
                "give the replica at least {} (Bitnami: readReplicas.extendedConfiguration)",
                primary.value
            ),
            source: standby.source.clone(),
        })
        .collect()
}

fn is_postgres_image(image: &str) -> bool {
    super::postgres::server_image(image).is_some()
}

/// A hot standby: Bitnami's read replica (`POSTGRES_REPLICATION_MODE=slave`, or the chart's
/// `app.kubernetes.io/component: read` label).
fn is_standby(d: &Doc, env: &Env) -> bool {
    let mode = ["POSTGRES_REPLICATION_MODE", "POSTGRESQL_REPLICATION_MODE"]
        .iter()
        .find_map(|k| env.get(*k))
        .map(|v| v.value.trim().to_ascii_lowercase());
    if let Some(mode) = mode {
        return mode == "slave" || mode == "standby" || mode == "replica";
    }
    yaml::get_string(&d.doc.value, &path(&["metadata", "labels", "app.kubernetes.io/component"])).as_deref()
        == Some("read")
}

/// The container's environment: `envFrom` ConfigMaps first, then `env` (which wins, as in
/// Kubernetes). Secrets and `valueFrom` references are left out: their values are not in the files.
fn container_env(w: &Workload, config_maps: &ConfigMaps) -> Result<Env, Error> {
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
                return Err(Error::at(
                    d.at(&join(&env_from, &[PathSeg::Index(i)])).clone(),
                    format!(
                        "ConfigMap `{name}` (namespace {}) used by {} {} is not in the given files — pass the \
                        file that defines it",
                        key.0,
                        d.kind(),
                        d.name()
                    ),
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

/// `max_connections` and `idle_in_transaction_session_timeout` from the PostgreSQL container, in
/// the server's order of precedence: `-c name=value` or `--name=value` in `args`/`command`, then
/// `.conf` files of ConfigMaps mounted into the container (a `conf.d/` folder, such as the
/// Bitnami chart's `extendedConfiguration`, over a mounted `postgresql.conf`), then the Bitnami
/// image's `POSTGRESQL_MAX_CONNECTIONS` / `POSTGRESQL_IDLE_IN_TRANSACTION_SESSION_TIMEOUT`
/// variables, which the image writes into its `postgresql.conf`.
fn postgres_settings(
    w: &Workload,
    env: &Env,
    config_maps: &ConfigMaps,
) -> Result<(Option<Valued<u64>>, Valued<String>), Error> {
    let d = &w.doc;
    let words = container_words(w);
    let mut settings = super::postgres::command_line(&words);
    for (name, value) in mounted_conf(w, config_maps) {
        settings.entry(name).or_insert(value);
    }
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

/// A ConfigMap mounted into a workload's container: where, the one key it mounts as a file
/// (`subPath`), and its data.
struct Mount<'a> {
    path: String,
    sub_path: Option<String>,
    data: &'a Env,
}

/// The ConfigMaps among the inputs mounted into the container, in the order of its volumeMounts.
fn mounted_config_maps<'a>(w: &Workload, config_maps: &'a ConfigMaps) -> Vec<Mount<'a>> {
    let d = &w.doc;
    let volumes = path(&["spec", "template", "spec", "volumes"]);
    let config_map_of = |volume: &str| {
        d.doc.get(&volumes).and_then(Value::as_sequence)?.iter().find_map(|v| {
            (yaml::get_string(v, &path(&["name"])).as_deref() == Some(volume))
                .then(|| yaml::get_string(v, &path(&["configMap", "name"])))
                .flatten()
        })
    };
    let mounts = join(&w.container, &path(&["volumeMounts"]));
    let mut out = Vec::new();
    for m in d.doc.get(&mounts).and_then(Value::as_sequence).into_iter().flatten() {
        let Some(volume) = yaml::get_string(m, &path(&["name"])) else { continue };
        let Some(cm_name) = config_map_of(&volume) else { continue };
        let Some(data) = config_maps.get(&(d.namespace(), cm_name)) else { continue };
        let mount_path = yaml::get_string(m, &path(&["mountPath"])).unwrap_or_default();
        let sub_path = yaml::get_string(m, &path(&["subPath"]));
        out.push(Mount { path: mount_path.trim_end_matches('/').to_string(), sub_path, data });
    }
    out
}

/// Settings files applied in the order a server reads them: the main files, then those of an
/// included folder (`conf.d`), each over the ones before.
fn layered(mut files: Vec<(bool, BTreeMap<String, Valued<String>>)>) -> BTreeMap<String, Valued<String>> {
    files.sort_by_key(|(in_folder, _)| *in_folder);
    let mut out = BTreeMap::new();
    for (_, settings) in files {
        out.extend(settings);
    }
    out
}

/// Settings of `.conf` keys of ConfigMaps mounted into the container: files in a `conf.d`
/// folder override the main file, and within one file the last line wins.
fn mounted_conf(w: &Workload, config_maps: &ConfigMaps) -> BTreeMap<String, Valued<String>> {
    let mut files = Vec::new();
    for m in mounted_config_maps(w, config_maps) {
        let in_conf_d = m.path.ends_with("conf.d");
        for v in m.data.iter().filter(|(k, _)| k.ends_with(".conf")).map(|(_, v)| v) {
            let mut settings = BTreeMap::new();
            for (i, name, value) in super::postgres::conf_lines(&v.value) {
                // A block scalar starts on the line after its key.
                let at = match &v.source {
                    Source::File { path, line } => Source::file(path.clone(), line + 1 + i),
                    other => other.clone(),
                };
                settings.insert(name, Valued::new(value, at));
            }
            files.push((in_conf_d, settings));
        }
    }
    layered(files)
}

/// Rolling-update surge in pods for `replicas`: `maxSurge` as a number or a percentage of the
/// replicas rounded up (Kubernetes' rule); 0 for `Recreate` and for StatefulSets, which replace
/// pods one at a time.
fn surge(d: &Doc, replicas: u64) -> Result<Valued<u64>, Error> {
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
        .ok_or_else(|| Error::at(source.clone(), format!("maxSurge `{raw}` is not a number or a percentage")))?;
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
fn conf_in_config_maps(config_maps: &ConfigMaps) -> Result<Option<ServerSettings>, Error> {
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

/// The container's CPU: `resources.limits.cpu`, else `resources.requests.cpu` (what the
/// scheduler guarantees); `None` when neither is set.
fn cpu_limit(d: &Doc, container: &[PathSeg]) -> Result<Option<Valued<f64>>, Error> {
    resources_cpu(|kind| {
        let at = join(container, &path(&["resources", kind, "cpu"]));
        yaml::get_string(&d.doc.value, &at).map(|raw| (raw, d.at(&at)))
    })
}

/// A container's CPU from its `resources`: `get("limits")`, else `get("requests")` (what the
/// scheduler guarantees), each the raw quantity and where it was written; `None` when neither is
/// set. Manifests and Helm values (which put `resources` on the container as it is) share it.
pub fn resources_cpu(get: impl Fn(&str) -> Option<(String, Source)>) -> Result<Option<Valued<f64>>, Error> {
    let Some((raw, at)) = get("limits").or_else(|| get("requests")) else { return Ok(None) };
    match cpu_quantity(&raw) {
        Some(n) => Ok(Some(Valued::new(n, at))),
        None => Err(Error::at(
            at.clone(),
            format!(
                "cpu `{}` is not a Kubernetes CPU quantity — write it as `2`, `1.5` or `500m`",
                crate::safety::shown(&raw)
            ),
        )),
    }
}

/// A Kubernetes CPU quantity in cores: `2`, `1.5`, `500m`.
pub fn cpu_quantity(raw: &str) -> Option<f64> {
    let raw = raw.trim();
    let (digits, scale) = match raw.strip_suffix('m') {
        Some(milli) => (milli, 1000.0),
        None => (raw, 1.0),
    };
    let n: f64 = digits.parse().ok()?;
    (n.is_finite() && n > 0.0).then_some(n / scale)
}
