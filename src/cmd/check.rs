//! `difyplan check`: the CI gate. Reads committed configuration, computes the worst-case
//! connection demand with the same budget code as `size`, and reports findings.

use super::Io;
use crate::cli::{CheckArgs, CheckFormat};
use crate::exit::ExitStatus;
use crate::findings::allow::{self, Allow, Config};
use crate::findings::capacity;
use crate::findings::{Checked, Report, rules};
use crate::model::assumptions::{Assumptions, Edition};
use crate::model::capacity::Load;
use crate::model::profile::Profile;
use crate::read::compose::Options;
use crate::read::inputs::{self, Input};
use crate::report;
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

/// CPUs assumed for `CELERY_AUTO_SCALE` without `CELERY_MAX_WORKERS` (the entrypoint's nproc).
const DEFAULT_HOST_CPUS: u64 = 4;

pub fn run(args: &CheckArgs, io: &mut Io) -> Result<ExitStatus> {
    let paths = if args.paths.is_empty() { vec![PathBuf::from(".")] } else { args.paths.clone() };
    let opts = Options {
        dify_version: args.dify_version,
        pg_max_connections: args.pg_max_connections,
        app_role_superuser: args.app_role.map(|r| r == crate::cli::AppRole::Superuser),
        host_cpus: args.host_cpus.unwrap_or(DEFAULT_HOST_CPUS),
    };
    if let Some(env_file) = &args.env_file {
        // Fail on a bad --env-file before anything else, not only when a compose file needs it.
        crate::read::read_text(env_file)?;
    }
    // With only --values, the values are the input.
    let paths = if args.paths.is_empty() && !args.values.is_empty() { Vec::new() } else { paths };
    let found = inputs::collect(&paths)?;
    if found.is_empty() && args.values.is_empty() {
        bail!(
            "{}: no .env, compose, Kubernetes or Helm values file found — pass the folder or files Dify is deployed from",
            paths.iter().map(|p| crate::safety::shown_path(p)).collect::<Vec<_>>().join(", ")
        );
    }
    let mut allows = load_config(args.config.as_deref(), &paths, &args.values)?;
    let mut checked = Vec::new();
    let found_deployments = crate::read::deployments::deployments(
        &found,
        args.env_file.as_deref(),
        &args.values,
        args.chart.as_deref(),
        &opts,
    )
    .map_err(anyhow::Error::msg)?;
    if found_deployments.is_empty() {
        // A gate that passes because it read nothing would hide a wrong path.
        let files: Vec<String> = found.iter().map(|i| crate::safety::shown_path(&i.path)).collect();
        bail!(
            "{}: no Dify service found (no api, worker, worker_beat, api_websocket or plugin_daemon) — pass the files Dify is deployed from",
            files.join(", ")
        );
    }
    for (label, kind, deployment) in found_deployments {
        let reserves = if args.admin_reserve > 0 {
            vec![crate::model::budget::Reserve {
                name: "admin".into(),
                connections: args.admin_reserve,
                why: "--admin-reserve: monitoring, backups and psql".into(),
            }]
        } else {
            Vec::new()
        };
        let budget = crate::model::budget::of_deployment(&deployment, reserves);
        checked.push(Checked { label, kind, deployment, budget });
    }
    let workload = Workload::from_args(&args.load)?;
    let apps = rules::Apps::of(&workload.profile, &workload.assumptions);
    let mut findings = Vec::new();
    for c in &checked {
        let mut found = rules::check(&c.deployment, &c.budget, &apps);
        if let Some(qps) = workload.qps {
            let load =
                Load { qps, profile: &workload.profile, assumptions: &workload.assumptions, edition: workload.edition };
            let lines = crate::model::capacity::assess(&c.deployment, &load);
            found.extend(capacity::findings(&lines, &load, c.kind == "compose"));
        }
        let files: Vec<String> = c.label.split(" + ").map(str::to_string).collect();
        for mut f in found {
            f.deployment = Some(c.label.clone());
            f.location = crate::findings::anchor::locate(&f, &c.deployment, &files);
            findings.push(f);
        }
    }
    allows.extend(inline_allows(&found, &args.values, args.env_file.as_deref(), &findings)?);
    let (kept, suppressed) = allow::apply(findings, &allows);
    let report = Report::new(checked, kept, suppressed);
    let text = match args.format {
        CheckFormat::Human => {
            let text = if args.quiet {
                report::check_human::render_findings(&report)
            } else {
                report::check_human::render(&report)
            };
            let text = report::fit::fit(&text, report::fit::target_width(args.wide));
            if report::color::enabled(args.color) { report::color::severities(&text) } else { text }
        }
        CheckFormat::Json => report::json::check(&report)? + "\n",
        CheckFormat::Github => report::github::render(&report),
        CheckFormat::Sarif => report::sarif::render(&report)? + "\n",
        CheckFormat::Gitlab => report::gitlab::render(&report)? + "\n",
    };
    write!(io.out, "{text}")?;
    let failing = report.worst().is_some_and(|w| args.fail_on.threshold().is_some_and(|t| w >= t));
    Ok(if failing && !args.exit_zero { ExitStatus::Findings } else { ExitStatus::Success })
}

/// The workload a deployment is judged against: the profile (`--profile`, default `chat`, with
/// the override flags) and the model's assumptions, which `check` always applies to the pool
/// rules; with `--qps` also the load for the capacity findings.
struct Workload {
    profile: Profile,
    assumptions: Assumptions,
    edition: Edition,
    qps: Option<f64>,
}

impl Workload {
    fn from_args(args: &crate::cli::LoadArgs) -> Result<Workload> {
        let profile =
            crate::read::profile(args.profile.as_deref().unwrap_or("chat"))?.with_overrides(&args.overrides)?;
        if let Some(qps) = args.qps {
            crate::model::plan::check_qps(qps)?;
        }
        let assumptions = Assumptions::default().with_overrides(&args.assume)?;
        Ok(Workload { profile, assumptions, edition: args.edition, qps: args.qps })
    }
}

/// The allow entries: `--config FILE`'s; else those of the nearest `difyplan.toml` from each
/// checked path upward to the repository root, and from the current folder (each file once).
fn load_config(path: Option<&Path>, paths: &[PathBuf], values: &[PathBuf]) -> Result<Vec<Allow>> {
    let found: Vec<PathBuf> = match path {
        Some(p) => vec![p.to_path_buf()],
        None => paths
            .iter()
            .chain(values)
            .filter(|p| p.as_os_str() != "-")
            .map(PathBuf::as_path)
            .chain([Path::new(".")])
            .filter_map(allow::discover)
            .collect(),
    };
    let mut seen = Vec::new();
    let mut allows = Vec::new();
    for path in found {
        let key = path.canonicalize().unwrap_or_else(|_| path.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let name = crate::safety::shown_path(&path);
        let text = crate::read::read_text(&path)?;
        allows.extend(Config::parse(&text, &name)?.allow);
    }
    Ok(allows)
}

/// The inline `# difyplan: allow CODE -- reason` comments of the checked files: the inputs, the
/// values files, the --env-file, and every file a finding is located in (an `env_file:` a
/// compose service reads). Each file once.
fn inline_allows(
    found: &[Input],
    values: &[PathBuf],
    env_file: Option<&Path>,
    findings: &[crate::findings::Finding],
) -> Result<Vec<Allow>> {
    let mut files: Vec<(PathBuf, Option<String>)> = found.iter().map(|i| (i.path.clone(), i.text.clone())).collect();
    files.extend(values.iter().chain(env_file.map(Path::to_path_buf).as_ref()).map(|p| (p.clone(), None)));
    files.extend(findings.iter().filter_map(|f| f.place()).map(|(p, _)| (PathBuf::from(p), None)));
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (path, text) in files {
        if path.as_os_str() == "-" && text.is_none() {
            continue;
        }
        let key = path.canonicalize().unwrap_or_else(|_| path.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let text = match text {
            Some(t) => t,
            None if path.is_file() => crate::read::read_text(&path)?,
            None => continue,
        };
        if !text.contains("difyplan:") {
            continue;
        }
        out.extend(allow::inline(&text, &crate::safety::shown_path(&path))?);
    }
    Ok(out)
}
