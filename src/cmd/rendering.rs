//! What every `render` command shares: the plan for the file's target (none when it does not
//! fit), the words that reproduce it, the self-check of each document and the all-or-nothing
//! output.

use super::{Io, plan_input};
use crate::cli::{PlanArgs, RenderOutputArgs};
use crate::exit::ExitStatus;
use crate::model::assumptions::Target;
use crate::model::plan::{self, Plan};
use crate::read::yaml;
use crate::render::context::{self, RenderKind};
use crate::render::engine::Source;
use crate::render::write::{self, Existing, Output};
use crate::report;
use anyhow::{Result, bail};

/// One rendered file: its name in an output folder and its text.
pub(super) struct Rendered {
    pub(super) file: String,
    pub(super) text: String,
}

/// Plan for `kind`'s target. A plan whose fixed cap cannot hold it is never rendered: the
/// shortfall goes to stderr and the command exits 1, as `size --format env` does.
pub(super) fn make_plan(args: &PlanArgs, kind: RenderKind, io: &mut Io) -> Result<Option<(Plan, String)>> {
    if kind == RenderKind::Compose && args.target == Target::Kubernetes {
        bail!(
            "render compose plans for docker compose — drop --target kubernetes, or use `render \
                kubernetes` / `render helm`"
        );
    }
    let mut args = args.clone();
    args.target = context::target_for(kind, args.target);
    let input = plan_input(&args)?;
    if let Some(note) = input.dify_version.newer_note() {
        writeln!(io.err, "difyplan: note: {note}")?;
    }
    // --max-qps solved for a QPS: the header reproduces the plan with that number.
    args.qps = Some(input.qps);
    args.max_qps = false;
    let plan = plan::plan(&input)?;
    if !plan.budget.fits {
        writeln!(io.err, "{}", report::table::shortfall_summary(&plan))?;
        writeln!(io.err, "difyplan: nothing rendered — the plan does not fit its max_connections")?;
        return Ok(None);
    }
    if let Some(why) = report::table::memory_shortfall(&plan) {
        writeln!(io.err, "{why}")?;
        writeln!(io.err, "difyplan: nothing rendered — the database host cannot hold the plan's backends")?;
        return Ok(None);
    }
    // The command line goes into every file's header comment: a path with a newline must not
    // start a line of its own there.
    Ok(Some((plan, crate::safety::escape(&command_line(&args, kind)).into_owned())))
}

/// The `difyplan render …` words that reproduce this plan (only the options that differ from
/// their defaults), for the header of every file.
fn command_line(a: &PlanArgs, kind: RenderKind) -> String {
    let sub = match kind {
        RenderKind::Env => "env",
        RenderKind::Compose => "compose",
        RenderKind::Kubernetes => "kubernetes",
        RenderKind::Helm => "helm",
        RenderKind::Alerts => "alerts",
        RenderKind::Postgresql => "postgresql",
    };
    let mut w = vec![
        format!("difyplan render {sub} --qps {}", a.qps.unwrap_or_default()),
        format!("--profile {}", a.profile),
        format!("--edition {}", a.edition),
        format!("--dify-version {}", a.dify_version),
    ];
    if matches!(kind, RenderKind::Env | RenderKind::Alerts | RenderKind::Postgresql) && a.target != Target::Compose {
        w.push(format!("--target {}", a.target));
    }
    if a.no_collaboration {
        w.push("--no-collaboration".into());
    }
    if a.app_role == crate::cli::AppRole::Superuser {
        w.push("--app-role superuser".into());
    }
    if let Some(n) = a.pg_max_connections {
        w.push(format!("--pg-max-connections {n}"));
    }
    if let Some(m) = a.pg_memory {
        w.push(format!("--pg-memory {}MiB", m >> 20));
    }
    if let Some(c) = a.pg_cpus {
        w.push(format!("--pg-cpus {c}"));
    }
    if a.pg_storage != crate::model::pgtune::Storage::Ssd {
        w.push(format!("--pg-storage {}", a.pg_storage));
    }
    if a.pg_version != 15 {
        w.push(format!("--pg-version {}", a.pg_version));
    }
    if a.pooler == crate::model::pooler::Pooler::Pgbouncer {
        w.push("--pooler pgbouncer".into());
    }
    for x in &a.assume {
        w.push(format!("--assume {x}"));
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&a.overrides) {
        for (k, v) in map {
            w.push(format!("--{} {v}", k.replace('_', "-")));
        }
    }
    w.join(" ")
}

pub(super) fn source(out: &RenderOutputArgs) -> Source {
    out.templates.clone().map_or(Source::Builtin, Source::Folder)
}

/// Check a rendered document before anyone deploys it: YAML must parse, a `.env` must read back.
pub(super) fn self_check(r: &Rendered, template: &str, src: &Source) -> Result<()> {
    let shown = match src {
        Source::Builtin => format!("built-in template {template}"),
        Source::Folder(d) => crate::safety::shown_path(&d.join(template)),
    };
    if r.file.ends_with(".yaml") {
        if let Err(e) = yaml::parse_documents(&r.text, &r.file) {
            bail!("{shown} produced YAML that does not parse ({e}) — fix the template");
        }
    } else if let Err(e) = crate::read::dotenv::parse(&r.text, &r.file, &Default::default()) {
        bail!("{shown} produced a .env that does not parse ({e}) — fix the template");
    }
    Ok(())
}

/// Print one document, or write every file into the output folder (all or nothing).
pub(super) fn emit(docs: Vec<Rendered>, out: &RenderOutputArgs, separator: &str, io: &mut Io) -> Result<ExitStatus> {
    let Some(dir) = out.dir() else {
        let text: Vec<String> = docs.into_iter().map(|d| d.text).collect();
        write!(io.out, "{}", text.join(separator))?;
        return Ok(ExitStatus::Success);
    };
    write::check_folder(dir)?;
    let outputs: Vec<Output> = docs
        .iter()
        .map(|d| Output { path: dir.join(&d.file), contents: d.text.clone().into_bytes(), mode: None, owner: None })
        .collect();
    write::write_all(&outputs, if out.force { Existing::Replace } else { Existing::Keep })?;
    for o in &outputs {
        writeln!(io.err, "wrote {}", crate::safety::shown_path(&o.path))?;
    }
    Ok(ExitStatus::Success)
}
