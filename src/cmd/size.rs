//! `difyplan size`: plan a deployment for a target QPS and print it as a table, JSON or `.env`.

use super::{Io, plan_input};
use crate::cli::{SizeArgs, SizeFormat};
use crate::exit::ExitStatus;
use crate::model::plan;
use crate::report;
use anyhow::Result;

pub fn run(args: &SizeArgs, io: &mut Io) -> Result<ExitStatus> {
    let input = plan_input(&args.plan)?;
    let plan = plan::plan(&input)?;
    // What a measured profile rests on besides measurement is said every time it is used.
    for caveat in &input.profile.caveats {
        writeln!(io.err, "difyplan: profile `{}` ({}): {caveat}", input.profile.name, args.plan.profile)?;
    }
    if let Some(note) = input.dify_version.newer_note() {
        writeln!(io.err, "difyplan: note: {note}")?;
    }
    let width = report::fit::target_width(args.wide);
    let table = |plan: &plan::Plan| report::fit::fit(&report::table::plan(plan, args.explain), width);
    if args.plan.max_qps && plan.budget.fits {
        writeln!(
            io.err,
            "difyplan: max_connections {} holds at most {} QPS of profile `{}` (rounded down to two significant digits); the plan is for that load.",
            plan.budget.cap.max_connections, input.qps, input.profile.name
        )?;
    }
    if !plan.budget.fits {
        // A plan that does not fit is never printed as something to paste: the table and JSON
        // say so in full; the env format prints nothing to stdout.
        writeln!(io.err, "{}", report::table::shortfall_summary(&plan))?;
        match args.format {
            SizeFormat::Env | SizeFormat::PostgresqlConf | SizeFormat::AlterSystem => {
                return Ok(ExitStatus::Findings);
            }
            SizeFormat::Json => writeln!(io.out, "{}", report::json::plan(&plan)?)?,
            SizeFormat::Table => write!(io.out, "{}", table(&plan))?,
        }
        return Ok(ExitStatus::Findings);
    }
    if let Some(why) = report::table::memory_shortfall(&plan) {
        // The database host cannot hold the backends: a shortfall like a too-small cap. Nothing
        // to paste is printed; the table and JSON show the whole plan.
        writeln!(io.err, "{why}")?;
        match args.format {
            SizeFormat::Json => writeln!(io.out, "{}", report::json::plan(&plan)?)?,
            SizeFormat::Table => write!(io.out, "{}", table(&plan))?,
            SizeFormat::Env | SizeFormat::PostgresqlConf | SizeFormat::AlterSystem => {}
        }
        return Ok(ExitStatus::Findings);
    }
    match args.format {
        SizeFormat::Table => write!(io.out, "{}", table(&plan))?,
        SizeFormat::Json => writeln!(io.out, "{}", report::json::plan(&plan)?)?,
        SizeFormat::Env => write!(io.out, "{}", report::env::plan(&plan, args.explain))?,
        SizeFormat::PostgresqlConf => write!(io.out, "{}", report::pgconf::postgresql_conf(&plan))?,
        SizeFormat::AlterSystem => write!(io.out, "{}", report::pgconf::alter_system(&plan))?,
    }
    Ok(ExitStatus::Success)
}
