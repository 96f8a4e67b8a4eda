//! `difyplan render alerts`: a plan as Prometheus alerting rules (a rules file for compose, a
//! `PrometheusRule` for the prometheus-operator on Kubernetes) and postgres_exporter's query file.

use super::Io;
use super::rendering::{Rendered, emit, make_plan, self_check, source};
use crate::cli::RenderAlertsArgs;
use crate::exit::ExitStatus;
use crate::model::assumptions::Target;
use crate::render::alerts::{self, AlertsView};
use crate::render::context::{self, ComposeView, Context, RenderKind};
use crate::render::engine::Engine;
use anyhow::Result;

/// The rules template (both targets) and the exporter's queries.
pub const RULES_TEMPLATE: &str = "alerts/rules.yaml.j2";
pub const QUERIES_TEMPLATE: &str = "alerts/postgres-exporter-queries.yaml.j2";
/// The queries file's name, in an output folder and in the messages.
const QUERIES_FILE: &str = "postgres-exporter-queries.yaml";

/// The context of the alert templates: everything `render` knows, plus the thresholds.
#[derive(serde::Serialize)]
struct AlertsContext<'a> {
    #[serde(flatten)]
    base: &'a Context,
    alerts: AlertsView,
}

pub fn run(args: &RenderAlertsArgs, io: &mut Io) -> Result<ExitStatus> {
    let Some((plan, command)) = make_plan(&args.plan, RenderKind::Alerts, io)? else {
        return Ok(ExitStatus::Findings);
    };
    let command = match &args.hold {
        Some(h) => format!("{command} --hold {h}"),
        None => command,
    };
    let base = context::build(&plan, command, ComposeView::default(), None);
    let ctx = AlertsContext { base: &base, alerts: alerts::view(&plan, args.hold.as_deref()) };
    let src = source(&args.out);
    let engine = Engine::load(&src, &[RULES_TEMPLATE, QUERIES_TEMPLATE])?;
    let rules_file = match plan.input.target {
        Target::Compose => "dify-alerts.rules.yaml",
        Target::Kubernetes => "dify-alerts.prometheusrule.yaml",
    };
    let rules = Rendered { file: rules_file.into(), text: engine.render(RULES_TEMPLATE, &ctx)? };
    self_check(&rules, RULES_TEMPLATE, &src)?;
    let queries = Rendered { file: QUERIES_FILE.into(), text: engine.render(QUERIES_TEMPLATE, &ctx)? };
    self_check(&queries, QUERIES_TEMPLATE, &src)?;
    if args.out.dir().is_none() {
        // stdout carries one document a rule loader reads as it is; the per-component series
        // need the queries file too, which only an output folder can hold beside it.
        writeln!(
            io.err,
            "note: the per-component alerts read a series postgres_exporter publishes only with \
                --extend.query-path={QUERIES_FILE}: add -o DIR to write it beside the rules (docs/alerts.md)"
        )?;
        return emit(vec![rules], &args.out, "", io);
    }
    emit(vec![rules, queries], &args.out, "", io)
}
