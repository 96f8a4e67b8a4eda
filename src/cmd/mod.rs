//! One module per subcommand; each has `run(args, io) -> Result<ExitStatus>`. Shared here:
//! turning the plan options into a model input.

pub mod alerts;
pub mod calibrate;
pub mod check;
pub mod docs;
pub mod explain;
pub mod matrix;
pub mod render;
mod rendering;
pub mod schema;
pub mod shell;
pub mod size;
pub mod templates;

use crate::cli::{AppRole, PlanArgs};
use crate::model::assumptions::Assumptions;
use crate::model::plan::{self, PlanInput};
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
    let profile = crate::read::profile(&args.profile)?.with_overrides(&args.overrides)?;
    let assumptions = Assumptions::default().with_overrides(&args.assume)?;
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
        db_type: args.db_type,
    };
    if args.db_type == crate::dify::db_type::DbType::Mysql {
        mysql_supported(&input)?;
    }
    if args.max_qps {
        return Ok(crate::model::solve::max_qps_input(&input)?);
    }
    Ok(input)
}

/// What a MySQL plan cannot be: behind PgBouncer, or for a Dify release without MySQL, or above
/// MySQL's own cap.
pub(crate) fn mysql_supported(input: &PlanInput) -> Result<()> {
    use crate::dify::db_type::mysql;
    if input.pooler == crate::model::pooler::Pooler::Pgbouncer {
        anyhow::bail!(
            "--pooler pgbouncer with --db-type mysql: PgBouncer speaks PostgreSQL only — the MySQL \
             equivalent is ProxySQL, which difyplan does not plan; drop --pooler (each process keeps its own pool)"
        );
    }
    if !input.dify_version.has_mysql() {
        anyhow::bail!(
            "--db-type mysql with --dify-version {}: that release's compose file has no db_mysql service \
             (it came with 1.10.1) — plan MySQL with --dify-version 1.10.1 or later",
            input.dify_version
        );
    }
    if let Some(n) = input.pg_max_connections.filter(|n| *n > mysql::MAX_MAX_CONNECTIONS) {
        anyhow::bail!(
            "--db-max-connections {n}: MySQL's max_connections goes up to {} — give the server's real value",
            mysql::MAX_MAX_CONNECTIONS
        );
    }
    Ok(())
}
