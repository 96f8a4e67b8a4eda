//! One module per subcommand; each has `run(args, io) -> Result<ExitStatus>`. Shared here:
//! turning the plan options into a model input.

pub mod calibrate;
pub mod check;
pub mod explain;
pub mod matrix;
pub mod render;
pub mod schema;
pub mod shell;
pub mod size;
pub mod templates;

use crate::cli::{AppRole, PlanArgs};
use crate::model::assumptions::Assumptions;
use crate::model::plan::{self, PlanInput};
use crate::model::profile::Profile;
use anyhow::Result;
use std::io::Write;

/// Where a command writes: the product to `out`, the process (warnings, "wrote …") to `err`.
pub struct Io<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

/// Build the model input from the shared plan options; every problem is a located message.
/// With `--max-qps` the QPS is the highest the fixed cap holds (`model::solve`).
pub fn plan_input(args: &PlanArgs) -> Result<PlanInput> {
    // clap requires one of --qps and --max-qps; 0 only reaches here from library callers.
    let qps = args.qps.unwrap_or(if args.max_qps { 1.0 } else { 0.0 });
    plan::check_qps(qps)?;
    let profile = Profile::load(&args.profile)?.with_overrides(&args.overrides)?;
    let assumptions = Assumptions::default().with_overrides(&args.assume).map_err(anyhow::Error::msg)?;
    let input = PlanInput {
        qps,
        profile,
        target: args.target,
        edition: args.edition,
        dify_version: args.dify_version,
        collaboration: !args.no_collaboration,
        app_role_superuser: args.app_role == AppRole::Superuser,
        pg_max_connections: args.pg_max_connections,
        workflow_log_store: args.workflow_log_store,
        retention_days: args.retention_days,
        pooler: args.pooler,
        pg_host: crate::model::plan::PgHostSpec {
            memory_bytes: args.pg_memory,
            cpus: args.pg_cpus,
            storage: args.pg_storage,
            pg_version: args.pg_version,
        },
        assumptions,
    };
    if args.max_qps {
        return Ok(crate::model::solve::max_qps_input(&input)?);
    }
    Ok(input)
}
