//! `difyplan render`: a plan as the files operators deploy — a `.env` (or a patch of one), a
//! compose override, Kubernetes manifests, Helm values — from the embedded templates or a user's.

use super::Io;
use super::rendering::{Rendered, emit, make_plan, self_check, source};
use crate::cli::{
    HelmChart, RenderArgs, RenderCommand, RenderComposeArgs, RenderEnvArgs, RenderHelmArgs, RenderKubernetesArgs,
    RenderPostgresqlArgs,
};
use crate::dify::DifyVersion;
use crate::dify::keys::Scope;
use crate::exit::ExitStatus;
use crate::model::plan::Plan;
use crate::read::yaml;
use crate::render::context::{self, ComposeView, Context, RenderKind};
use crate::render::engine::Engine;
use crate::render::patch;
use crate::render::write::{self, Existing, Output};
use crate::report;
use anyhow::{Result, bail};
use serde_yaml::Value;
use std::path::{Path, PathBuf};

pub fn run(args: &RenderArgs, io: &mut Io) -> Result<ExitStatus> {
    match &args.what {
        RenderCommand::Env(a) => env(a, io),
        RenderCommand::Compose(a) => compose(a, io),
        RenderCommand::Kubernetes(a) => kubernetes(a, io),
        RenderCommand::Helm(a) => helm(a, io),
        RenderCommand::Alerts(a) => super::alerts::run(a, io),
        RenderCommand::Postgresql(a) => postgresql(a, io),
    }
}

fn env(args: &RenderEnvArgs, io: &mut Io) -> Result<ExitStatus> {
    let mut plan_args = args.plan.clone();
    if let Some(v) = args.patch.as_deref().and_then(env_file_version).filter(|v| *v != plan_args.dify_version) {
        // The file says which Dify reads it; its keys (timeouts, api_websocket) differ by release.
        writeln!(
            io.err,
            "note: {} is a Dify {v} .env: planning for {v}, not {}",
            args.patch.as_deref().map(crate::safety::shown_path).unwrap_or_default(),
            plan_args.dify_version
        )?;
        plan_args.dify_version = v;
    }
    let Some((plan, command)) = make_plan(&plan_args, RenderKind::Env, io)? else { return Ok(ExitStatus::Findings) };
    if let Some(file) = &args.patch {
        return patch_env(&plan, file, args, io);
    }
    let ctx = context::build(&plan, command, ComposeView::default(), None);
    let src = source(&args.out);
    let engine = Engine::load(&src, &["env.j2"])?;
    let doc = Rendered { file: ".env".into(), text: engine.render("env.j2", &ctx)? };
    self_check(&doc, "env.j2", &src)?;
    emit(vec![doc], &args.out, "", io)
}

/// The Dify release a `.env` belongs to, from its keys (`DifyVersion::from_env_keys`). `None`
/// when the file shows none of them (the flag decides).
fn env_file_version(path: &Path) -> Option<crate::dify::DifyVersion> {
    let text = crate::read::read_text(path).ok()?;
    let keys: Vec<String> =
        crate::read::dotenv::parse(&text, "", &Default::default()).ok()?.into_iter().map(|e| e.key).collect();
    crate::dify::DifyVersion::from_env_keys(|k| keys.iter().any(|x| x == k)).map(|(v, _)| v)
}

/// `--patch FILE`: set the shared sizing keys in a Dify `.env`, print the diff, or apply it.
fn patch_env(plan: &Plan, file: &Path, args: &RenderEnvArgs, io: &mut Io) -> Result<ExitStatus> {
    let name = crate::safety::shown_path(file);
    let bytes = crate::read::read_bytes(file)?;
    let text = patch::dify_env_text(&bytes, &name)?;
    let settings = crate::model::settings::settings(plan);
    let wanted: Vec<(String, String)> =
        settings.iter().filter(|s| s.scope == Scope::Shared).map(|s| (s.key.to_string(), s.value.clone())).collect();
    let patched = patch::patch(text, &name, &wanted)?;
    let role = crate::dify::keys::DB_USERNAME.name;
    let role_changed = patched.changed.iter().any(|c| c.key == role) || patched.added.iter().any(|(k, _)| k == role);
    if role_changed && plan.input.db_type == crate::dify::db_type::DbType::Mysql {
        writeln!(
            io.err,
            "note: DB_USERNAME becomes `{}` — {}",
            settings.iter().find(|s| s.key == role).map_or("", |s| s.value.as_str()),
            if plan.input.app_role_superuser {
                "root, the only account the mysql image creates"
            } else {
                "an ordinary MySQL account the plan counts on: create it before Dify restarts, as root: CREATE USER \
                 'dify'@'%' IDENTIFIED BY '<DB_PASSWORD>'; GRANT ALL ON `dify`.* TO 'dify'@'%'; GRANT ALL ON \
                 `dify_plugin`.* TO 'dify'@'%'; (or keep root with --app-role superuser)"
            }
        )?;
    } else if role_changed {
        // The plan counted a dedicated role; Dify cannot connect until it exists.
        writeln!(
            io.err,
            "note: DB_USERNAME becomes `{app}`, the dedicated role the plan counts on — create it \
                before Dify restarts, as the superuser: CREATE ROLE {app} LOGIN CREATEDB PASSWORD \
                '<DB_PASSWORD>'; ALTER DATABASE dify OWNER TO {app}; (or keep the superuser with \
                --app-role superuser)",
            app = crate::dify::keys::APP_ROLE
        )?;
    }
    let services: Vec<&str> = {
        let mut v: Vec<&str> = settings
            .iter()
            .filter_map(|s| match s.scope {
                Scope::Service(svc) => Some(svc),
                Scope::Shared | Scope::Suggested => None,
            })
            .collect();
        v.dedup();
        v
    };
    if !services.is_empty() {
        writeln!(
            io.err,
            "note: values for {} alone are not set in a shared .env: put them in \
                docker-compose.override.yaml (difyplan render compose)",
            services.join(", ")
        )?;
    }
    if patched.is_unchanged() {
        writeln!(io.err, "{name}: already has the plan's values — nothing to change")?;
        return Ok(ExitStatus::Success);
    }
    let summary = format!(
        "{} value(s) changed, {} key(s) added in the difyplan block",
        patched.changed.len(),
        patched.added.len()
    );
    if !args.write {
        let file_name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| name.clone());
        write!(io.out, "{}", patch::unified_diff(text, &patched.text, &file_name))?;
        writeln!(io.err, "{name}: {summary}; nothing written — add --write to apply")?;
        return Ok(ExitStatus::Success);
    }
    // A `.env` that is a symbolic link (one file shared by several projects) is written through:
    // the link's target gets the new text, replaced atomically in its own folder, and the
    // backup lies beside it; the link stays a link.
    let target = if std::fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_symlink()) {
        let target = std::fs::canonicalize(file)
            .map_err(|e| anyhow::anyhow!("{name}: {} — nothing was written", crate::read::explain_open(&e)))?;
        writeln!(io.err, "{name} is a link: writing its target {}", crate::safety::shown_path(&target))?;
        target
    } else {
        file.to_path_buf()
    };
    let (mode, owner) = (write::mode_of(&target), write::owner_of(&target));
    let mut made_backup = None;
    if !args.no_backup {
        let mut bak = target.as_os_str().to_owned();
        bak.push(".bak");
        let bak = PathBuf::from(bak);
        let existed = std::fs::symlink_metadata(&bak).is_ok();
        let existing = if args.out.force { Existing::Replace } else { Existing::Keep };
        write::write_all(&[Output { path: bak.clone(), contents: bytes.clone(), mode, owner }], existing)
            .map_err(|e| anyhow::anyhow!("{e} (the backup of {name}; or pass --no-backup)"))?;
        if !existed {
            made_backup = Some(bak);
        }
    }
    if let Err(e) = write::write_all(
        &[Output { path: target.clone(), contents: patched.text.into_bytes(), mode, owner }],
        Existing::Replace,
    ) {
        // Nothing was written, so the backup made for this write goes too.
        if let Some(bak) = &made_backup {
            let _ = std::fs::remove_file(bak);
        }
        return Err(e.into());
    }
    if !args.no_backup {
        let mut bak = target.as_os_str().to_owned();
        bak.push(".bak");
        writeln!(io.err, "kept the original as {}", crate::safety::shown_path(Path::new(&bak)))?;
    }
    writeln!(io.err, "{name}: {summary}")?;
    Ok(ExitStatus::Success)
}

/// What a given compose file says: the version it runs, its PostgreSQL service, its services.
struct ComposeFile {
    version: Option<DifyVersion>,
    db_service: String,
    services: Vec<String>,
}

fn read_compose_file(path: &Path) -> Result<ComposeFile> {
    let name = crate::safety::shown_path(path);
    let text = crate::read::read_text(path)?;
    let docs = yaml::parse_documents(&text, &name)?;
    let root = docs.first().map(|d| &d.value);
    let Some(services) = root.and_then(|r| r.get("services")).and_then(Value::as_mapping) else {
        bail!("{name}: no `services:` — pass Dify's docker/docker-compose.yaml to --compose-file");
    };
    let mut names = Vec::new();
    let mut version = None;
    let mut db = None;
    for (k, svc) in services {
        let Some(n) = k.as_str() else { continue };
        if n.chars().any(char::is_control) {
            bail!(
                "{name}: the service name `{}` holds a control character — compose service names are \
                 letters, digits, `-`, `_` and `.`; rename it",
                crate::safety::escape(n)
            );
        }
        names.push(n.to_string());
        let image = svc.get("image").and_then(Value::as_str).unwrap_or_default();
        if let Some(tag) = DifyVersion::api_image_tag(image) {
            version =
                DifyVersion::from_image_tag(tag).map_err(|e| anyhow::anyhow!("{name}: service {n}: {e}"))?.or(version);
        }
        let is_postgres = image.starts_with("postgres:") || image.starts_with("postgres@") || image == "postgres";
        if (n == "db_postgres" || n == "db") || (db.is_none() && is_postgres) {
            db = Some(n.to_string());
        }
    }
    if version.is_none() && root.and_then(|r| r.get("x-shared-env")).is_some() {
        version = Some(DifyVersion::V1_9);
    }
    let Some(db_service) = db else {
        bail!(
            "{name}: no PostgreSQL service (db_postgres, db, or a postgres image) — the override sets \
                its command; add the service or pass Dify's own compose file"
        );
    };
    if !names.iter().any(|n| n == "api") {
        bail!("{name}: no `api` service — pass Dify's docker/docker-compose.yaml to --compose-file");
    }
    Ok(ComposeFile { version, db_service, services: names })
}

fn compose(args: &RenderComposeArgs, io: &mut Io) -> Result<ExitStatus> {
    let mut plan_args = args.plan.clone();
    let mut view = ComposeView::default();
    let mut db_service = None;
    let mut present = None;
    if let Some(file) = &args.compose_file {
        let found = read_compose_file(file)?;
        if let Some(v) = found.version.filter(|v| *v != plan_args.dify_version) {
            writeln!(
                io.err,
                "note: {} runs Dify {v}: planning for {v}, not {}",
                crate::safety::shown_path(file),
                plan_args.dify_version
            )?;
            plan_args.dify_version = v;
        }
        view.base_file = Some(crate::safety::shown_path(file));
        db_service = Some(found.db_service);
        if plan_args.db_type == crate::dify::db_type::DbType::Mysql {
            let svc = crate::dify::db_type::mysql::COMPOSE_SERVICE;
            if !found.services.iter().any(|s| s == svc) {
                bail!(
                    "{}: no `{svc}` service — --db-type mysql sets its command; pass the compose file of Dify 1.10.1 or later",
                    crate::safety::shown_path(file)
                );
            }
            db_service = Some(svc.to_string());
        }
        present = Some(found.services);
    }
    let Some((plan, command)) = make_plan(&plan_args, RenderKind::Compose, io)? else {
        return Ok(ExitStatus::Findings);
    };
    if let Some(present) = &present {
        view.missing = plan
            .components
            .iter()
            .map(|c| c.component.service().to_string())
            .filter(|s| !present.contains(s))
            .collect();
    }
    let ctx = context::build(&plan, command, view, db_service);
    let src = source(&args.out);
    let name = "compose/docker-compose.override.yaml.j2";
    let engine = Engine::load(&src, &[name])?;
    let doc = Rendered { file: "docker-compose.override.yaml".into(), text: engine.render(name, &ctx)? };
    self_check(&doc, name, &src)?;
    emit(vec![doc], &args.out, "", io)
}

fn kubernetes(args: &RenderKubernetesArgs, io: &mut Io) -> Result<ExitStatus> {
    let Some((plan, command)) = make_plan(&args.plan, RenderKind::Kubernetes, io)? else {
        return Ok(ExitStatus::Findings);
    };
    let ctx = context::build(&plan, command, ComposeView::default(), None);
    let src = source(&args.out);
    let mysql = ctx.database.mysql;
    let (component_t, pg_t) = if mysql {
        ("kubernetes/component.yaml.j2", "kubernetes/mysql.yaml.j2")
    } else {
        ("kubernetes/component.yaml.j2", "kubernetes/postgresql.yaml.j2")
    };
    let pooler_t = "kubernetes/pgbouncer.yaml.j2";
    let mut names = vec![component_t, pg_t];
    if ctx.pooler.is_some() {
        names.push(pooler_t);
    }
    let engine = Engine::load(&src, &names)?;
    let mut docs = Vec::new();
    for c in &ctx.components {
        let text = engine.render(component_t, &ComponentContext { base: &ctx, component: c })?;
        let doc = Rendered { file: format!("{}.yaml", c.slug), text };
        self_check(&doc, component_t, &src)?;
        docs.push(doc);
    }
    let doc = if mysql {
        let text = engine.render(pg_t, &ctx.mysql_server())?;
        Rendered { file: "mysql.yaml".into(), text }
    } else {
        Rendered { file: "postgresql.yaml".into(), text: engine.render(pg_t, &ctx)? }
    };
    self_check(&doc, pg_t, &src)?;
    docs.push(doc);
    if ctx.pooler.is_some() {
        let doc = Rendered { file: "pgbouncer.yaml".into(), text: engine.render(pooler_t, &ctx)? };
        self_check(&doc, pooler_t, &src)?;
        docs.push(doc);
    }
    emit(docs, &args.out, "---\n", io)
}

/// The context of one component's manifests: everything, plus `component`.
#[derive(serde::Serialize)]
struct ComponentContext<'a> {
    #[serde(flatten)]
    base: &'a Context,
    component: &'a context::ComponentView,
}

fn helm(args: &RenderHelmArgs, io: &mut Io) -> Result<ExitStatus> {
    if args.plan.pooler != crate::model::pooler::Pooler::None {
        bail!(
            "render helm --pooler pgbouncer: neither community chart runs a PgBouncer — use `render kubernetes --pooler pgbouncer`, or drop --pooler"
        );
    }
    let mut plan_args = args.plan.clone();
    // A version must be one whose values difyplan knows how to write.
    let version = match &args.chart.version {
        None => None,
        Some(v) => {
            let chart = match args.chart.chart {
                HelmChart::Borispolonsky => crate::read::helm::Chart::DifyHelm,
                HelmChart::Douban => crate::read::helm::Chart::Douban,
            };
            let said = crate::read::helm::ChartRef {
                chart,
                version: Some(v.clone()),
                said_by: crate::deployment::Source::Flag { flag: "--chart".into() },
                dir: None,
            };
            if let (_, Some(note)) = crate::read::helm::chart_version(chart, Some(&said)) {
                let note = note.value.split(": read with").next().unwrap_or(&note.value).to_string();
                bail!(
                    "--chart {}@{v}: {note} — pass a version difyplan knows, or the chart name alone",
                    args.chart_name()
                );
            }
            Some(v.clone())
        }
    };
    if plan_args.db_type == crate::dify::db_type::DbType::Mysql {
        refuse_mysql_chart(args, version.as_deref())?;
    }
    if args.chart.chart == HelmChart::Douban {
        // douban's templates render no update strategy, so Kubernetes' default rolling update
        // (maxSurge 25%, rounded up) applies to every Deployment, beat included: plan for it.
        let set = |assume: &[String], key: &str| {
            assume.iter().any(|a| a.split('=').next().is_some_and(|k| k.trim().replace('-', "_") == key))
        };
        for (key, value) in [("max_surge", "0.25"), ("beat_surge", "1")] {
            if !set(&plan_args.assume, key) {
                plan_args.assume.push(format!("{key}={value}"));
            }
        }
    }
    let Some((plan, mut command)) = make_plan(&plan_args, RenderKind::Helm, io)? else {
        return Ok(ExitStatus::Findings);
    };
    let chart = args.chart_name();
    let spec = match &version {
        Some(v) => format!("{chart}@{v}"),
        None => chart.to_string(),
    };
    command = command.replacen("render helm", &format!("render helm --chart {spec}"), 1);
    let ctx = context::build(&plan, command, ComposeView::default(), None);
    let src = source(&args.out);
    let name = format!("helm/{chart}.yaml.j2");
    let engine = Engine::load(&src, &[&name])?;
    let doc = Rendered { file: "values.yaml".into(), text: engine.render(&name, &ctx)? };
    self_check(&doc, &name, &src)?;
    emit(vec![doc], &args.out, "", io)
}

/// `--db-type mysql` needs a chart with a MySQL path: dify-helm's `externalMysql` (0.34 on);
/// douban/charts has none (docs/model.md §11).
fn refuse_mysql_chart(args: &RenderHelmArgs, version: Option<&str>) -> Result<()> {
    use crate::read::helm::{Chart, mysql};
    match args.chart.chart {
        HelmChart::Douban => bail!(
            "render helm --chart douban --db-type mysql: douban/charts has no MySQL path (its templates set DB_HOST \
             and DB_* for its embedded PostgreSQL only) — use --chart borispolonsky (dify-helm 0.34 or later has \
             externalMysql), or `render kubernetes --db-type mysql` for manifests with a MySQL server"
        ),
        HelmChart::Borispolonsky => {
            let minor = version.and_then(|v| {
                let mut parts = v.trim().trim_start_matches(['v', '~', '^']).split('.');
                (parts.next()? == "0").then(|| parts.next()?.parse::<u64>().ok()).flatten()
            });
            if let Some(minor) = minor.filter(|m| *m < mysql::DIFY_HELM_FIRST) {
                bail!(
                    "render helm --chart borispolonsky@{} --db-type mysql: {} 0.{minor} has no MySQL path \
                     (externalMysql arrived in 0.{}) — upgrade the chart and pass its version, or use `render \
                     kubernetes --db-type mysql`",
                    version.unwrap_or_default(),
                    Chart::DifyHelm.name(),
                    mysql::DIFY_HELM_FIRST
                );
            }
            Ok(())
        }
    }
}

/// `render postgresql`: PGTune's two forms of the plan's server settings, for a PostgreSQL that
/// Dify's compose file does not start (a managed or existing server). To stdout one form
/// (`postgresql.conf`, or the SQL with `--alter-system`); into a folder both files.
fn postgresql(args: &RenderPostgresqlArgs, io: &mut Io) -> Result<ExitStatus> {
    let Some((plan, command)) = make_plan(&args.plan, RenderKind::Postgresql, io)? else {
        return Ok(ExitStatus::Findings);
    };
    let reproduce = |marker: &str| format!("{marker} Reproduce: {command}\n");
    let conf = Rendered {
        file: "postgresql.conf".into(),
        text: format!("{}{}", reproduce("#"), report::pgconf::postgresql_conf(&plan)),
    };
    let sql = Rendered {
        file: "alter-system.sql".into(),
        text: format!("{}{}", reproduce("--"), report::pgconf::alter_system(&plan)),
    };
    if args.out.templates.is_some() {
        bail!("render postgresql uses no template — drop --templates");
    }
    let docs = match (args.out.dir(), args.alter_system) {
        (Some(_), _) => vec![conf, sql],
        (None, true) => vec![sql],
        (None, false) => vec![conf],
    };
    emit(docs, &args.out, "", io)
}
