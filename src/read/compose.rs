//! Dify's docker compose files, both layouts: 1.9.x (`x-shared-env` merged with `<<:`) and
//! 1.16.x (`env_file:` lists, `./.env` last). Produces the deployment description.

use super::dotenv;
use super::yaml::{self, Document, PathSeg};
use crate::deployment::{self, Cap, Deployment, Env, Source, Valued};
use crate::dify::db_type::{DbType, mysql};
use crate::dify::{Component, DifyVersion, defaults};
use crate::read::error::Error;
use serde_yaml::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What `check` was told beyond the files.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dify_version: Option<DifyVersion>,
    pub pg_max_connections: Option<u64>,
    /// Overrides detection from `DB_USERNAME`.
    pub app_role_superuser: Option<bool>,
    /// CPUs of the host, for `CELERY_AUTO_SCALE` without `CELERY_MAX_WORKERS` (the entrypoint uses nproc).
    pub host_cpus: u64,
}

/// The most services one compose project may have: Dify's own file has about 40, so this is
/// far above any real project and keeps the work per project bounded.
pub const MAX_SERVICES: usize = 1_000;

/// A compose project: the files merged in order (`-f a -f b`) and the `.env` used to interpolate.
#[derive(Debug, Clone)]
pub struct Project {
    pub files: Vec<PathBuf>,
    /// Texts already read (standard input, or files read to classify them), by position in `files`.
    pub texts: Vec<Option<String>>,
    pub env_file: Option<PathBuf>,
}

/// The project `.env`: values with their lines, and the parsed entries.
struct ProjectEnv {
    path: String,
    file: Option<PathBuf>,
    values: BTreeMap<String, (String, usize)>,
    /// Bytes produced by interpolation so far.
    expanded: std::cell::Cell<usize>,
}

impl ProjectEnv {
    fn read(path: Option<&Path>) -> Result<ProjectEnv, Error> {
        let Some(path) = path else {
            return Ok(ProjectEnv {
                path: String::new(),
                file: None,
                values: BTreeMap::new(),
                expanded: Default::default(),
            });
        };
        let name = crate::safety::shown_path(path);
        let text = super::read_text(path)?;
        let entries = dotenv::parse(&text, &name, &BTreeMap::new())?;
        let values = entries.into_iter().map(|e| (e.key, (e.value, e.line))).collect();
        Ok(ProjectEnv { path: name, file: Some(path.to_path_buf()), values, expanded: Default::default() })
    }

    fn get(&self, key: &str) -> Option<String> {
        self.values.get(key).map(|(v, _)| v.clone())
    }

    fn vars(&self) -> BTreeMap<String, String> {
        self.values.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect()
    }

    /// Interpolate a compose value; the source is the `.env` line when exactly one variable
    /// from `.env` supplied it, otherwise where the value is written.
    fn interpolate(&self, raw: &str, written_at: Source) -> Result<Valued<String>, Error> {
        let used = RefCell::new(Vec::new());
        let lookup = |k: &str| {
            let v = self.values.get(k);
            if let Some((_, line)) = v {
                used.borrow_mut().push(*line);
            }
            v.map(|(v, _)| v.clone())
        };
        let value = dotenv::interpolate(raw, &lookup)
            .map_err(|cause| Error::Interpolation { at: written_at.clone(), cause })?;
        // Many `${LONG}` references must not copy a long value without end.
        self.expanded.set(self.expanded.get() + value.len());
        if self.expanded.get() > dotenv::MAX_TOTAL_BYTES {
            return Err(Error::at(
                written_at.clone(),
                format!(
                    "the project's values expand to more than {} MiB in all — `${{VAR}}` \
                 references copy long values many times; write the values out",
                    dotenv::MAX_TOTAL_BYTES >> 20
                ),
            ));
        }
        let used = used.into_inner();
        let source = match used.as_slice() {
            [line] => Source::file(self.path.clone(), *line),
            _ => written_at,
        };
        Ok(Valued::new(value, source))
    }
}

/// One service after merging every file: its mapping and where each key was written.
struct Service {
    name: String,
    /// Merged service mapping.
    value: serde_yaml::Mapping,
    /// For `environment` keys: (file, line) where each was last set.
    env_lines: BTreeMap<String, Source>,
    /// env_file entries with the folder they are relative to.
    env_files: Vec<(PathBuf, bool, Source)>,
    /// Where the service itself is declared.
    at: Source,
}

/// Read a compose project into a deployment description.
pub fn read(project: &Project, opts: &Options) -> Result<Deployment, Error> {
    let env = ProjectEnv::read(project.env_file.as_deref())?;
    let mut merged = merge_files(project, &env)?;
    let (version, version_source) = merged.version(opts)?;
    let profiles = active_profiles(&env);
    let mut roles = Roles::default();
    for svc in merged.services.values().filter(|svc| svc.runs_with(&profiles)) {
        roles.take(svc, version);
    }
    let mut env_cache = BTreeMap::new();
    let mut components = Vec::new();
    for svc in roles.dify {
        if let Some(program) = deployment::own_server(&run_words(svc, &env)?) {
            return Err(super::bypass_refusal(&svc.name, program));
        }
        let svc_env = service_env(svc, &env, &mut env_cache)?;
        let Some(component) = component_of(svc, &svc_env) else { continue };
        let replicas = replicas(svc, &env)?;
        let mut comp = deployment::interpret(
            component,
            &svc.name,
            svc.at.clone(),
            svc_env,
            replicas.clone(),
            replicas,
            Valued::new(0, Source::default("compose recreates containers: no surge")),
            opts.host_cpus,
        )?;
        comp.cores = cpus(svc, &env)?;
        components.push(comp);
    }
    components.sort_by_key(|c| c.component);
    let pooler = match roles.pooler {
        Some(svc) => Some(read_pooler(svc, &env, &merged.configs, &components, &mut env_cache)?),
        None => None,
    };

    let db_type = db_type(&components, &env)?;
    if db_type == DbType::Mysql {
        return read_mysql(version, version_source, components, pooler, roles.mysql, &env, opts, &mut env_cache);
    }
    let db = roles.postgres;
    let (max_connections, idle_timeout) = database_settings(db, &env, opts)?;
    let (app_role, mut app_role_superuser) = super::app_role(&components, opts);
    // The official postgres image (and those built on it) creates POSTGRES_USER as a superuser.
    if let Some(db) = db
        && opts.app_role_superuser.is_none()
        && official_postgres(db.value.get("image").and_then(Value::as_str).unwrap_or_default())
    {
        let db_env = service_env(db, &env, &mut env_cache)?;
        let user = db_env.get("POSTGRES_USER").map_or("postgres", |u| u.value.as_str());
        if user == app_role.value {
            app_role_superuser = true;
        }
    }
    let cap = Cap {
        max_connections,
        found: db.is_some() || opts.pg_max_connections.is_some(),
        app_role,
        app_role_superuser,
        idle_timeout: db.map(|_| idle_timeout),
    };
    Ok(Deployment { pooler, ..Deployment::new(version, version_source, db_type, components, cap) })
}

/// The project's files merged as compose merges them, with what they say of the release.
#[derive(Default)]
struct Merged {
    services: BTreeMap<String, Service>,
    /// The 1.x `x-shared-env` layout (Dify 1.0.0 to 1.14.0).
    layout_v19: bool,
    /// The release a dify-api image tag names.
    image_version: Option<DifyVersion>,
    /// A dify-api image tag naming a release difyplan does not model (0.x), with where it stands.
    image_refused: Option<Error>,
    /// Top-level `configs:` (a PgBouncer's pgbouncer.ini): name → (text, file, first line).
    configs: BTreeMap<String, (String, String, usize)>,
}

/// Read and merge the project's compose files in order (later files override earlier ones).
fn merge_files(project: &Project, env: &ProjectEnv) -> Result<Merged, Error> {
    let mut merged = Merged::default();
    for (i, file) in project.files.iter().enumerate() {
        let name = crate::safety::shown_path(file);
        let read;
        let text = match project.texts.get(i).and_then(Option::as_deref) {
            Some(t) => t,
            None => {
                read = super::read_text(file)?;
                read.as_str()
            }
        };
        let docs = yaml::parse_documents(text, &name)?;
        let Some(doc) = docs.into_iter().next() else { continue };
        let Some(root) = doc.value.as_mapping() else {
            return Err(Error::line(
                name.clone(),
                1,
                "not a compose file (the top level is not a mapping) — pass a docker-compose.yaml",
            ));
        };
        if root.keys().any(|k| k.as_str() == Some("x-shared-env")) {
            merged.layout_v19 = true;
        }
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        merged.configs.extend(configs_of(root, &doc, &name, &dir));
        let Some(svcs) = root.get("services").and_then(Value::as_mapping) else { continue };
        if svcs.len() + merged.services.len() > MAX_SERVICES {
            return Err(doc
                .error_at(
                    &seg(&["services"]),
                    format!(
                        "more than {MAX_SERVICES} services in one compose project — Dify's has about 40; pass the \
                         project's own compose files"
                    ),
                )
                .into());
        }
        for (key, svc) in svcs {
            let Some(svc_name) = key.as_str() else { continue };
            let Some(svc) = svc.as_mapping() else { continue };
            merged.note_image(svc_name, svc, &doc, &name, env);
            let entry = merged.services.entry(svc_name.to_string()).or_insert_with(|| Service {
                name: svc_name.to_string(),
                value: serde_yaml::Mapping::new(),
                env_lines: BTreeMap::new(),
                env_files: Vec::new(),
                at: Source::file(
                    name.clone(),
                    doc.line_of(&[PathSeg::Key("services".into()), PathSeg::Key(svc_name.into())]).unwrap_or(1),
                ),
            });
            merge_service(entry, svc, &doc, &name, &dir)?;
        }
    }
    Ok(merged)
}

/// A file's top-level `configs:`: inline `content`, or a `file` beside it.
fn configs_of(
    root: &serde_yaml::Mapping,
    doc: &yaml::Document,
    name: &str,
    dir: &Path,
) -> Vec<(String, (String, String, usize))> {
    let mut out = Vec::new();
    let Some(cfgs) = root.get("configs").and_then(Value::as_mapping) else { return out };
    for (k, cfg) in cfgs {
        let Some(cfg_name) = k.as_str() else { continue };
        if let Some(text) = cfg.get("content").and_then(Value::as_str) {
            // A block scalar's text starts on the line after its key.
            let line = doc.line_of(&seg(&["configs", cfg_name, "content"])).unwrap_or(1);
            out.push((cfg_name.to_string(), (text.to_string(), name.to_string(), line + 1)));
        } else if let Some(f) = cfg.get("file").and_then(Value::as_str) {
            let path = dir.join(f);
            if let Ok(text) = super::read_text(&path) {
                out.push((cfg_name.to_string(), (text, path.display().to_string(), 1)));
            }
        }
    }
    out
}

impl Merged {
    /// The release a service's dify-api image names: the image as compose runs it
    /// (`${DIFY_VERSION}` and the like interpolated from `.env`).
    fn note_image(
        &mut self,
        svc_name: &str,
        svc: &serde_yaml::Mapping,
        doc: &yaml::Document,
        name: &str,
        env: &ProjectEnv,
    ) {
        let image = svc.get("image").and_then(Value::as_str).map(|raw| {
            let vars = env.vars();
            dotenv::interpolate(raw, &|k| vars.get(k).cloned()).unwrap_or_else(|_| raw.to_string())
        });
        let Some(tag) = image.as_deref().and_then(DifyVersion::api_image_tag) else { return };
        match DifyVersion::from_image_tag(tag) {
            Ok(v) => self.image_version = v.or(self.image_version),
            Err(e) => {
                let at = [PathSeg::Key("services".into()), PathSeg::Key(svc_name.into()), PathSeg::Key("image".into())];
                self.image_refused.get_or_insert(Error::line(name, doc.line_of(&at).unwrap_or(1), e));
            }
        }
    }

    /// The release to read with, and what says so: `--dify-version`, else the images, else the
    /// compose layout.
    fn version(&mut self, opts: &Options) -> Result<(DifyVersion, Source), Error> {
        if let (None, Some(e)) = (opts.dify_version, self.image_refused.take()) {
            return Err(e);
        }
        let fallback = if self.layout_v19 { DifyVersion::V1_9 } else { DifyVersion::LATEST };
        let version = opts.dify_version.or(self.image_version).unwrap_or(fallback);
        let source = if opts.dify_version.is_some() {
            Source::Flag { flag: "--dify-version".into() }
        } else if self.image_version.is_some() {
            Source::default("image tag of langgenius/dify-api")
        } else {
            Source::default(if self.layout_v19 {
                "compose layout (x-shared-env, Dify 1.0.0 to 1.14.0); 1.9.1 assumed (pass --dify-version)"
            } else {
                "compose layout (env_file lists); assumed the latest"
            })
        };
        Ok((version, source))
    }
}

/// `COMPOSE_PROFILES` of the project's `.env`, interpolated.
fn active_profiles(env: &ProjectEnv) -> Vec<String> {
    let raw = env.get("COMPOSE_PROFILES").unwrap_or_default();
    let vars = env.vars();
    dotenv::interpolate(&raw, &|k| vars.get(k).cloned())
        .unwrap_or(raw)
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The services that matter, by what they run: the database (PostgreSQL or MySQL), a PgBouncer,
/// and Dify's own; every vector store and proxy is left out.
#[derive(Default)]
struct Roles<'a> {
    postgres: Option<&'a Service>,
    mysql: Option<&'a Service>,
    pooler: Option<&'a Service>,
    dify: Vec<&'a Service>,
}

impl<'a> Roles<'a> {
    fn take(&mut self, svc: &'a Service, version: DifyVersion) {
        let image = svc.value.get("image").and_then(Value::as_str).unwrap_or_default();
        if is_db(svc, version) {
            self.postgres = Some(svc);
        } else if is_mysql_db(svc) {
            self.mysql = self.mysql.or(Some(svc));
        } else if super::pgbouncer::is_pgbouncer_image(image) {
            self.pooler = self.pooler.or(Some(svc));
        } else if Component::ALL.iter().any(|c| c.service() == svc.name)
            || image.contains("dify-api")
            || image.contains("dify-plugin-daemon")
        {
            self.dify.push(svc);
        }
    }
}

impl Service {
    /// Whether compose starts the service with these profiles: a service without `profiles:`
    /// always runs.
    fn runs_with(&self, profiles: &[String]) -> bool {
        match self.value.get("profiles").and_then(Value::as_sequence) {
            Some(list) => list.iter().filter_map(Value::as_str).any(|p| profiles.iter().any(|q| q == p)),
            None => true,
        }
    }
}

/// A PgBouncer service: its pgbouncer.ini from a `configs:` entry mounted as `*.ini` (else the
/// image's environment variables), its containers and processes, and the services routed to it.
fn read_pooler(
    svc: &Service,
    env: &ProjectEnv,
    configs: &BTreeMap<String, (String, String, usize)>,
    components: &[deployment::Deployed],
    cache: &mut BTreeMap<PathBuf, Vec<dotenv::Entry>>,
) -> Result<deployment::DeployedPooler, Error> {
    let mounted = svc.value.get("configs").and_then(Value::as_sequence).into_iter().flatten().find_map(|item| {
        let (source, target) = match item {
            Value::String(s) => (s.clone(), s.clone()),
            Value::Mapping(m) => (
                m.get("source").and_then(Value::as_str).unwrap_or_default().to_string(),
                m.get("target").and_then(Value::as_str).unwrap_or_default().to_string(),
            ),
            _ => return None,
        };
        (target.ends_with(".ini") || source.ends_with("ini")).then(|| configs.get(&source)).flatten()
    });
    let settings = match mounted {
        Some((text, file, line)) => super::pgbouncer::ini(text, file, *line),
        None => super::pgbouncer::from_env(&service_env(svc, env, cache)?),
    };
    let words: Vec<String> = ["entrypoint", "command"]
        .iter()
        .filter_map(|k| svc.value.get(*k))
        .flat_map(|v| match v {
            Value::Sequence(items) => items.iter().filter_map(yaml::scalar_string).collect(),
            other => yaml::scalar_string(other).map(|s| shell_words(&s)).unwrap_or_default(),
        })
        .collect();
    let mut p = super::pgbouncer::pooler(
        &svc.name,
        svc.at.clone(),
        &settings,
        replicas(svc, env)?,
        super::pgbouncer::processes(&words),
    )?;
    super::pgbouncer::route(&mut p, components, std::slice::from_ref(&svc.name));
    Ok(p)
}

fn seg(keys: &[&str]) -> Vec<PathSeg> {
    keys.iter().map(|k| PathSeg::Key((*k).to_string())).collect()
}

/// Merge one file's service definition into the accumulated one, as compose does: maps
/// (environment, deploy) merge key by key, `env_file` appends, everything else is replaced.
fn merge_service(
    into: &mut Service,
    svc: &serde_yaml::Mapping,
    doc: &Document,
    file: &str,
    dir: &Path,
) -> Result<(), Error> {
    let name = into.name.clone();
    for (k, v) in svc {
        let Some(key) = k.as_str() else { continue };
        match key {
            "environment" => {
                let map =
                    into.value.entry(Value::from("environment")).or_insert_with(|| Value::Mapping(Default::default()));
                let Some(map) = map.as_mapping_mut() else { continue };
                for (env_key, env_val, line) in environment_entries(v, doc, &name, file)? {
                    into.env_lines.insert(env_key.clone(), Source::file(file, line));
                    map.insert(Value::from(env_key), env_val);
                }
            }
            "env_file" => {
                let items: Vec<Value> = match v {
                    Value::Sequence(s) => s.clone(),
                    other => vec![other.clone()],
                };
                for (i, item) in items.iter().enumerate() {
                    let line = doc
                        .line_of(&[
                            PathSeg::Key("services".into()),
                            PathSeg::Key(name.clone()),
                            PathSeg::Key("env_file".into()),
                            PathSeg::Index(i),
                        ])
                        .unwrap_or(1);
                    let (path, required) = match item {
                        Value::String(p) => (p.clone(), true),
                        Value::Mapping(m) => (
                            m.get("path").and_then(Value::as_str).unwrap_or_default().to_string(),
                            m.get("required").and_then(Value::as_bool).unwrap_or(true),
                        ),
                        _ => continue,
                    };
                    into.env_files.push((dir.join(path), required, Source::file(file, line)));
                }
            }
            "deploy" => {
                let slot =
                    into.value.entry(Value::from("deploy")).or_insert_with(|| Value::Mapping(Default::default()));
                if let (Some(slot), Some(new)) = (slot.as_mapping_mut(), v.as_mapping()) {
                    for (dk, dv) in new {
                        slot.insert(dk.clone(), dv.clone());
                    }
                }
                if let Some(line) = doc.line_of(&seg(&["services", &name, "deploy", "replicas"])) {
                    into.env_lines.insert("\0replicas".into(), Source::file(file, line));
                }
                if let Some(line) = doc.line_of(&seg(&["services", &name, "deploy", "resources", "limits", "cpus"])) {
                    into.env_lines.insert("\0cpus".into(), Source::file(file, line));
                }
            }
            _ => {
                if (key == "command" || key == "entrypoint" || key == "scale" || key == "cpus")
                    && let Some(line) = doc.line_of(&seg(&["services", &name, key]))
                {
                    into.env_lines.insert(format!("\0{key}"), Source::file(file, line));
                }
                into.value.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

/// `environment:` as a map or a list of `KEY=VALUE` / `KEY`, with each entry's line.
fn environment_entries(
    v: &Value,
    doc: &Document,
    service: &str,
    file: &str,
) -> Result<Vec<(String, Value, usize)>, Error> {
    let base = seg(&["services", service, "environment"]);
    let mut out = Vec::new();
    match v {
        Value::Mapping(m) => {
            for (k, val) in m {
                let Some(key) = yaml::scalar_string(k) else { continue };
                let mut path = base.clone();
                path.push(PathSeg::Key(key.clone()));
                let line = doc.line_of(&path).unwrap_or(1);
                out.push((key, val.clone(), line));
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                let Some(s) = yaml::scalar_string(item) else { continue };
                let mut path = base.clone();
                path.push(PathSeg::Index(i));
                let line = doc.line_of(&path).unwrap_or(1);
                match s.split_once('=') {
                    Some((k, val)) => out.push((k.to_string(), Value::from(val), line)),
                    // A bare `KEY` takes its value from the project environment.
                    None => out.push((s.clone(), Value::from(format!("${{{s}}}")), line)),
                }
            }
        }
        Value::Null => {}
        _ => {
            return Err(Error::line(
                file,
                doc.line_of(&base).unwrap_or(1),
                format!("services.{service}.environment must be a mapping or a list"),
            ));
        }
    }
    Ok(out)
}

/// The environment a container of this service gets: env_file entries in order, then
/// `environment:`, interpolated from the project `.env` only (never the runner's environment).
fn service_env(
    svc: &Service,
    env: &ProjectEnv,
    cache: &mut BTreeMap<PathBuf, Vec<dotenv::Entry>>,
) -> Result<Env, Error> {
    let mut out = Env::new();
    let vars = env.vars();
    for (path, required, at) in &svc.env_files {
        // `--env-file` names the project's `.env`; a service's `./.env` entry means that file.
        let project_env = env.file.as_ref().filter(|_| path.file_name().is_some_and(|n| n == ".env"));
        let path = project_env.unwrap_or(path);
        if !path.exists() {
            if *required {
                let hint = if path.file_name().is_some_and(|n| n == ".env") {
                    " (Dify's setup copies .env.example to .env), or pass --env-file"
                } else {
                    ""
                };
                return Err(Error::at(
                    at.clone(),
                    format!(
                        "env_file {} of service {} does not exist — create it{hint} or mark it `required: false`",
                        crate::safety::shown_path(path),
                        svc.name
                    ),
                ));
            }
            continue;
        }
        let name = crate::safety::shown_path(path);
        if !cache.contains_key(path) {
            let text = super::read_text(path)?;
            cache.insert(path.clone(), dotenv::parse(&text, &name, &vars)?);
        }
        for e in &cache[path] {
            out.insert(e.key.clone(), Valued::new(e.value.clone(), Source::file(name.clone(), e.line)));
        }
    }
    if let Some(map) = svc.value.get("environment").and_then(Value::as_mapping) {
        for (k, v) in map {
            let Some(key) = k.as_str() else { continue };
            let at = svc.env_lines.get(key).cloned().unwrap_or_else(|| svc.at.clone());
            let raw = yaml::scalar_string(v).unwrap_or_default();
            out.insert(key.to_string(), env.interpolate(&raw, at)?);
        }
    }
    Ok(out)
}

/// Dify's `DB_TYPE` as the api sees it (its environment, else the project `.env`).
fn db_type(components: &[deployment::Deployed], env: &ProjectEnv) -> Result<DbType, Error> {
    let from_api = components.iter().find(|c| c.component == Component::Api).and_then(|c| c.env.get("DB_TYPE"));
    match from_api {
        Some(v) => super::mysql::db_type(v),
        None => match env.values.get("DB_TYPE") {
            Some((v, line)) => super::mysql::db_type(&Valued::new(v.clone(), Source::file(env.path.clone(), *line))),
            None => Ok(DbType::Postgresql),
        },
    }
}

/// Dify's `db_mysql` service, or any service running a MySQL-protocol image.
fn is_mysql_db(svc: &Service) -> bool {
    svc.name == mysql::COMPOSE_SERVICE
        || super::mysql::is_mysql_image(svc.value.get("image").and_then(Value::as_str).unwrap_or_default())
}

/// The words of a service's `command:`, split as compose does and each interpolated from the
/// project `.env`, so each setting's source is the `.env` line of its own variable.
fn command_words(svc: &Service, env: &ProjectEnv) -> Result<Vec<Valued<String>>, Error> {
    words_of(svc, "command", env)
}

/// The words of a service's `entrypoint:` then `command:`, as the container runs them.
fn run_words(svc: &Service, env: &ProjectEnv) -> Result<Vec<Valued<String>>, Error> {
    let mut words = words_of(svc, "entrypoint", env)?;
    words.extend(words_of(svc, "command", env)?);
    Ok(words)
}

fn words_of(svc: &Service, key: &str, env: &ProjectEnv) -> Result<Vec<Valued<String>>, Error> {
    let at = svc.env_lines.get(&format!("\0{key}")).cloned().unwrap_or_else(|| svc.at.clone());
    match svc.value.get(key) {
        Some(Value::String(s)) => shell_words(s).iter().map(|w| env.interpolate(w, at.clone())).collect(),
        Some(Value::Sequence(items)) => {
            items.iter().filter_map(yaml::scalar_string).map(|w| env.interpolate(&w, at.clone())).collect()
        }
        _ => Ok(Vec::new()),
    }
}

/// The rest of a compose project whose `DB_TYPE` is `mysql`: the cap from `db_mysql`'s
/// `--max_connections` (Dify's `MYSQL_MAX_CONNECTIONS`), the app role a superuser when it is
/// `root` (the only account the image creates with `CONNECTION_ADMIN`), docs/model.md §11.
#[allow(clippy::too_many_arguments)]
fn read_mysql(
    version: DifyVersion,
    version_source: Source,
    components: Vec<deployment::Deployed>,
    pooler: Option<deployment::DeployedPooler>,
    db: Option<&Service>,
    env: &ProjectEnv,
    opts: &Options,
    cache: &mut BTreeMap<PathBuf, Vec<dotenv::Entry>>,
) -> Result<Deployment, Error> {
    if let Some(p) = &pooler {
        return Err(Error::at(
            p.at.clone(),
            "a PgBouncer in front of a MySQL database (DB_TYPE=mysql) — PgBouncer speaks PostgreSQL only; \
             the MySQL equivalent is ProxySQL, which difyplan does not read: check its budget by hand"
                .to_string(),
        ));
    }
    let mut max = None;
    let mut db_user = None;
    if let Some(db) = db {
        let settings = super::mysql::command_line(&command_words(db, env)?);
        max = match settings.get("max_connections") {
            Some(v) => Some(super::mysql::max_connections(v)?),
            None => Some(Valued::new(
                mysql::DEFAULT_MAX_CONNECTIONS,
                Source::default("MySQL default (151): no --max_connections on the server's command"),
            )),
        };
        db_user = service_env(db, env, cache)?.get("MYSQL_USER").map(|u| u.value.clone());
    }
    let max_connections = match (opts.pg_max_connections, max) {
        (Some(n), _) => Valued::new(n, Source::Flag { flag: "--db-max-connections".into() }),
        (None, Some(m)) => m,
        (None, None) => Valued::new(
            mysql::DEFAULT_MAX_CONNECTIONS,
            Source::default("no database service: MySQL default 151 assumed"),
        ),
    };
    let (app_role, app_role_superuser) = super::app_role_for(&components, opts, DbType::Mysql);
    // MYSQL_USER is an ordinary account the image creates; only root holds CONNECTION_ADMIN.
    let app_role_superuser = app_role_superuser && db_user.as_deref() != Some(app_role.value.as_str());
    let found = db.is_some() || opts.pg_max_connections.is_some();
    let cap = Cap { max_connections, found, app_role, app_role_superuser, idle_timeout: None };
    Ok(Deployment::new(version, version_source, DbType::Mysql, components, cap))
}

/// The official `postgres` image or one built on it (not Bitnami's `postgresql`).
fn official_postgres(image: &str) -> bool {
    super::postgres::server_image(image) == Some(super::postgres::ServerImage::Official)
}

fn is_db(svc: &Service, version: DifyVersion) -> bool {
    svc.name == version.db_service() || svc.name == "db" || svc.name == "db_postgres"
}

/// Which Dify component a service is: by its compose name, else by image and `MODE`.
fn component_of(svc: &Service, env: &Env) -> Option<Component> {
    let by_name = Component::ALL.into_iter().find(|c| c.service() == svc.name);
    if by_name.is_some() {
        return by_name;
    }
    let image = svc.value.get("image").and_then(Value::as_str).unwrap_or_default();
    if image.contains("dify-plugin-daemon") {
        return Some(Component::PluginDaemon);
    }
    if image.contains("dify-api") {
        return match env.get("MODE").map(|m| m.value.as_str()) {
            Some("worker") => Some(Component::Worker),
            Some("beat") => Some(Component::WorkerBeat),
            _ if svc.name.contains("websocket") => Some(Component::ApiWebsocket),
            _ => Some(Component::Api),
        };
    }
    None
}

fn replicas(svc: &Service, env: &ProjectEnv) -> Result<Valued<u64>, Error> {
    let raw = svc
        .value
        .get("deploy")
        .and_then(|d| d.get("replicas"))
        .map(|v| ("\0replicas", v))
        .or_else(|| svc.value.get("scale").map(|v| ("\0scale", v)));
    let Some((key, v)) = raw else { return Ok(Valued::new(1, Source::default("compose default: 1 replica"))) };
    let at = svc.env_lines.get(key).cloned().unwrap_or_else(|| svc.at.clone());
    let text = env.interpolate(&yaml::scalar_string(v).unwrap_or_default(), at)?;
    let n = deployment::whole_count(&text.value, deployment::MAX_COUNT).map_err(|problem| {
        let name = format!("service {}'s replicas", crate::safety::escape(&svc.name));
        deployment::CountError::new(text.source.clone(), &name, &text.value, problem)
    })?;
    Ok(Valued::new(n, text.source))
}

/// The CPU limit of a service's containers: `deploy.resources.limits.cpus`, else the legacy
/// service-level `cpus`; `None` when neither is set (the container may use the host's cores).
fn cpus(svc: &Service, env: &ProjectEnv) -> Result<Option<Valued<f64>>, Error> {
    let raw = svc
        .value
        .get("deploy")
        .and_then(|d| d.get("resources"))
        .and_then(|r| r.get("limits"))
        .and_then(|l| l.get("cpus"))
        .map(|v| ("\0cpus", v))
        .or_else(|| svc.value.get("cpus").map(|v| ("\0cpus", v)));
    let Some((key, v)) = raw else { return Ok(None) };
    let at = svc.env_lines.get(key).cloned().unwrap_or_else(|| svc.at.clone());
    let text = env.interpolate(&yaml::scalar_string(v).unwrap_or_default(), at)?;
    match text.value.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(Some(Valued::new(n, text.source))),
        // Compose treats 0 as no limit.
        Ok(0.0) => Ok(None),
        _ => Err(Error::at(
            text.source.clone(),
            format!(
                "cpus `{}` of service {} is not a positive number of CPUs — write it as compose does, e.g. \"2\" or \"0.5\"",
                crate::safety::shown(&text.value),
                crate::safety::escape(&svc.name)
            ),
        )),
    }
}

/// `max_connections` and `idle_in_transaction_session_timeout` from the database service's
/// `command:` (`postgres -c 'max_connections=…'`), docs/model.md §3.
fn database_settings(
    db: Option<&Service>,
    env: &ProjectEnv,
    opts: &Options,
) -> Result<(Valued<u64>, Valued<String>), Error> {
    let mut timeout = Valued::new(
        "0".to_string(),
        db.map_or_else(
            || Source::default("PostgreSQL default (0, off)"),
            |d| d.env_lines.get("\0command").cloned().unwrap_or_else(|| d.at.clone()),
        ),
    );
    let mut max = None;
    if let Some(db) = db {
        let at = db.env_lines.get("\0command").cloned().unwrap_or_else(|| db.at.clone());
        let words: Vec<Valued<String>> = match db.value.get("command") {
            // Split first, then interpolate each word, so each setting's source is the `.env`
            // line of its own variable (same result unless a value holds quotes or spaces).
            Some(Value::String(s)) => {
                shell_words(s).iter().map(|w| env.interpolate(w, at.clone())).collect::<Result<_, _>>()?
            }
            Some(Value::Sequence(items)) => items
                .iter()
                .filter_map(yaml::scalar_string)
                .map(|w| env.interpolate(&w, at.clone()))
                .collect::<Result<_, _>>()?,
            _ => Vec::new(),
        };
        let settings = super::postgres::command_line(&words);
        if let Some(v) = settings.get("max_connections") {
            max = Some(super::postgres::max_connections(v)?);
        }
        if let Some(v) = settings.get("idle_in_transaction_session_timeout") {
            timeout = v.clone();
        }
        if max.is_none() {
            max = Some(Valued::new(defaults::COMPOSE_MAX_CONNECTIONS, Source::default("PostgreSQL default (100)")));
        }
    }
    let max = match (opts.pg_max_connections, max) {
        (Some(n), _) => Valued::new(n, Source::Flag { flag: "--pg-max-connections".into() }),
        (None, Some(m)) => m,
        (None, None) => Valued::new(
            defaults::COMPOSE_MAX_CONNECTIONS,
            Source::default("no database service: PostgreSQL default 100 assumed"),
        ),
    };
    Ok((max, timeout))
}

/// Split a command line the way a POSIX shell would (quotes and backslashes), which is what
/// compose does with a string `command:`.
pub fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    cur.push(d);
                }
            }
            '"' => {
                in_word = true;
                while let Some(d) = chars.next() {
                    match d {
                        '"' => break,
                        '\\' => {
                            if let Some(e) = chars.next() {
                                cur.push(e);
                            }
                        }
                        _ => cur.push(d),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(e) = chars.next() {
                    cur.push(e);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// A lone `.env` (no compose file beside it) read as Dify's own compose file would use it: every
/// Dify service takes it, api_websocket maps its `API_WEBSOCKET_*` keys and runs when
/// `COMPOSE_PROFILES` has `collaboration`, and the database gets `POSTGRES_MAX_CONNECTIONS`.
pub fn read_env_only(input: &super::inputs::Input, opts: &Options) -> Result<Deployment, Error> {
    let name = crate::safety::shown_path(&input.path);
    let text = input.text()?;
    let entries = dotenv::parse(&text, &name, &BTreeMap::new())?;
    let env: Env =
        entries.into_iter().map(|e| (e.key, Valued::new(e.value, Source::file(name.clone(), e.line)))).collect();
    let marked = DifyVersion::from_env_keys(|k| env.contains_key(k));
    let (version, version_source) = match (opts.dify_version, marked) {
        (Some(v), _) => (v, Source::Flag { flag: "--dify-version".into() }),
        (None, Some((v, why))) => (v, Source::default(why)),
        (None, None) => (
            DifyVersion::LATEST,
            Source::default("no version marker in the .env; assumed the latest (pass --dify-version)"),
        ),
    };
    let profiles = env.get("COMPOSE_PROFILES").map(|v| v.value.clone()).unwrap_or_default();
    let one = || Valued::new(1, Source::default("compose default: 1 replica"));
    let no_surge = || Valued::new(0, Source::default("compose recreates containers: no surge"));
    let era = version.era();
    // Before 1.8.0 the compose file's x-shared-env passes no SQLALCHEMY_MAX_OVERFLOW from `.env`.
    let mut shared = env.clone();
    if !era.overflow_key {
        shared.remove("SQLALCHEMY_MAX_OVERFLOW");
    }
    let mut components = Vec::new();
    for c in [Component::Api, Component::Worker, Component::WorkerBeat, Component::PluginDaemon] {
        // Before 1.7.0 the compose file runs no beat.
        if c == Component::WorkerBeat && !era.worker_beat {
            continue;
        }
        components.push(deployment::interpret(
            c,
            c.service(),
            Source::default("Dify's compose file (not among the inputs)"),
            shared.clone(),
            one(),
            one(),
            no_surge(),
            opts.host_cpus,
        )?);
    }
    if version.has_api_websocket() && profiles.split(',').any(|p| p.trim() == "collaboration") {
        let mut ws = env.clone();
        for (from, to) in [
            ("API_WEBSOCKET_WORKER_AMOUNT", "SERVER_WORKER_AMOUNT"),
            ("API_WEBSOCKET_WORKER_CONNECTIONS", "SERVER_WORKER_CONNECTIONS"),
        ] {
            match env.get(from) {
                Some(v) => ws.insert(to.to_string(), v.clone()),
                None => ws.remove(to),
            };
        }
        // 1.14.1 and 1.15's compose file fixes api_websocket at one process.
        if !era.websocket_amount_key {
            ws.remove("SERVER_WORKER_AMOUNT");
        }
        components.push(deployment::interpret(
            Component::ApiWebsocket,
            "api_websocket",
            Source::default("Dify's compose file (not among the inputs)"),
            ws,
            one(),
            one(),
            no_surge(),
            opts.host_cpus,
        )?);
    }
    components.sort_by_key(|c| c.component);
    let db_type = match env.get("DB_TYPE") {
        Some(v) => super::mysql::db_type(v)?,
        None => DbType::Postgresql,
    };
    if db_type == DbType::Mysql {
        let max_connections = match opts.pg_max_connections {
            Some(n) => Valued::new(n, Source::Flag { flag: "--db-max-connections".into() }),
            None => deployment::env_number(
                &env,
                "MYSQL_MAX_CONNECTIONS",
                mysql::COMPOSE_MAX_CONNECTIONS,
                "compose fallback ${MYSQL_MAX_CONNECTIONS:-1000}",
            )?,
        };
        let (app_role, app_role_superuser) = super::app_role_for(&components, opts, DbType::Mysql);
        let cap = Cap { max_connections, found: true, app_role, app_role_superuser, idle_timeout: None };
        return Ok(Deployment::new(version, version_source, db_type, components, cap));
    }
    let max_connections = match opts.pg_max_connections {
        Some(n) => Valued::new(n, Source::Flag { flag: "--pg-max-connections".into() }),
        None => deployment::env_number(
            &env,
            "POSTGRES_MAX_CONNECTIONS",
            defaults::COMPOSE_MAX_CONNECTIONS,
            "compose fallback ${POSTGRES_MAX_CONNECTIONS:-100}",
        )?,
    };
    let idle = env
        .get("POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT")
        .cloned()
        .unwrap_or_else(|| Valued::new("0".into(), Source::default("PostgreSQL default (0, off)")));
    let (app_role, app_role_superuser) = super::app_role(&components, opts);
    let cap = Cap { max_connections, found: true, app_role, app_role_superuser, idle_timeout: Some(idle) };
    Ok(Deployment::new(version, version_source, db_type, components, cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_like_sh() {
        assert_eq!(
            shell_words("postgres -c 'max_connections=200' -c work_mem=4MB"),
            vec!["postgres", "-c", "max_connections=200", "-c", "work_mem=4MB"]
        );
        assert_eq!(shell_words("  a  \"b c\" d\\ e "), vec!["a", "b c", "d e"]);
        assert_eq!(shell_words(""), Vec::<String>::new());
        assert_eq!(shell_words("''"), vec![""]);
    }
}
