//! The pooler as the files that deploy it: `pgbouncer.ini` (one text for compose and
//! Kubernetes, a pure function of the plan) and the view the compose and Kubernetes templates read.

use crate::model::assumptions::Target;
use crate::model::plan::Plan;
use crate::model::pooler::{PLUGIN_DAEMON_DIRECT, PoolerPlan};
use serde::Serialize;

/// The image: edoburu/pgbouncer, a small Alpine image that ships a current PgBouncer (1.25.1,
/// so ≥ 1.20) and nothing else, widely used and rebuilt for each PgBouncer release. It is run
/// with the rendered pgbouncer.ini as its command, so the config its entrypoint can generate
/// from environment variables is never used.
pub const IMAGE: &str = "edoburu/pgbouncer:v1.25.1-p0";
/// Where the config is mounted in the container.
pub const INI_PATH: &str = "/etc/pgbouncer/pgbouncer.ini";
pub const USERLIST_PATH: &str = "/etc/pgbouncer/userlist.txt";
/// The compose service and the Kubernetes name.
pub const COMPOSE_SERVICE: &str = "pgbouncer";
pub const KUBERNETES_NAME: &str = "dify-pgbouncer";
/// Kubernetes: the Secret holding userlist.txt, which difyplan never writes (credentials).
pub const KUBERNETES_AUTH_SECRET: &str = "dify-pgbouncer-auth";
/// Kubernetes: the PostgreSQL host PgBouncer connects to. The manifests do not run the
/// database; the operator points this at theirs.
pub const KUBERNETES_DB_HOST: &str = "dify-postgresql";
/// Memory of a PgBouncer process: a base plus about 8 KiB per connection it may hold (its
/// packet buffers); an assumption with a wide margin.
const BASE_MEMORY_MIB: u64 = 64;

/// Where a routed component connects: PgBouncer instead of PostgreSQL (keys of Dify's `.env.example`).
pub const DB_HOST: crate::dify::keys::Key = crate::dify::keys::Key {
    name: "DB_HOST",
    doc: "the host Dify's database connections go to: PgBouncer, which holds the server pool",
};
pub const DB_PORT: crate::dify::keys::Key =
    crate::dify::keys::Key { name: "DB_PORT", doc: "PgBouncer's port (PostgreSQL's is 5432)" };

/// What the templates read about the pooler.
#[derive(Debug, Clone, Serialize)]
pub struct PoolerView {
    pub service: &'static str,
    pub name: &'static str,
    pub image: &'static str,
    pub port: u16,
    pub pods: u64,
    pub processes: u64,
    /// Kubernetes: maxUnavailable 1 and no surge (a surge pod would hold a whole server pool).
    pub pdb: bool,
    pub cpu_compose: String,
    pub cpu_quantity: String,
    pub memory_mib: u64,
    pub open_files: u64,
    /// The container's command: one process, or several on one port (`so_reuseport`).
    pub command: Vec<String>,
    pub ini_path: &'static str,
    pub userlist_path: &'static str,
    pub auth_secret: &'static str,
    /// pgbouncer.ini, line by line (templates indent it into a block).
    pub ini_lines: Vec<String>,
    pub default_pool_size: u64,
    pub server_connections: u64,
    pub max_client_conn: u64,
    pub safety_bound: u64,
    /// Why the plugin daemon does not go through it.
    pub plugin_daemon: &'static str,
}

/// The view for `plan`'s pooler, with PgBouncer connecting to `db_host`.
pub fn view(plan: &Plan, p: &PoolerPlan, db_host: &str) -> PoolerView {
    let processes = p.processes_per_pod;
    let one = vec!["pgbouncer".to_string(), INI_PATH.to_string()];
    let command = if processes == 1 {
        one
    } else {
        // N identical processes share the port (so_reuseport); the last one is the container's.
        let start = format!("pgbouncer {INI_PATH}");
        let mut script = vec![format!("{start} &"); (processes - 1) as usize];
        script.push(format!("exec {start}"));
        vec!["/bin/sh".into(), "-c".into(), script.join(" ")]
    };
    let cpu = processes as f64;
    let per_process_mib = (p.open_files * 8).div_ceil(1024);
    PoolerView {
        service: COMPOSE_SERVICE,
        name: KUBERNETES_NAME,
        image: IMAGE,
        port: p.port,
        pods: p.pods,
        processes,
        pdb: plan.input.target == Target::Kubernetes && p.pods >= 2,
        cpu_compose: format!("{cpu}"),
        cpu_quantity: format!("{}m", processes * 1000),
        memory_mib: BASE_MEMORY_MIB + processes * per_process_mib,
        open_files: p.open_files,
        command,
        ini_path: INI_PATH,
        userlist_path: USERLIST_PATH,
        auth_secret: KUBERNETES_AUTH_SECRET,
        ini_lines: ini(plan, p, db_host).lines().map(str::to_string).collect(),
        default_pool_size: p.default_pool_size,
        server_connections: p.server_connections,
        max_client_conn: p.max_client_conn,
        safety_bound: p.safety_bound,
        plugin_daemon: PLUGIN_DAEMON_DIRECT,
    }
}

/// pgbouncer.ini for the plan. Every value is the plan's or says why it is what it is.
pub fn ini(plan: &Plan, p: &PoolerPlan, db_host: &str) -> String {
    let routed: Vec<&str> = p.routed.iter().map(|c| c.service()).collect();
    let mut s = String::new();
    let mut line = |l: &str| {
        s.push_str(l);
        s.push('\n');
    };
    line(&format!(
        "; PgBouncer for Dify's {} (difyplan {}, {} QPS of profile `{}`).",
        routed.join(" and "),
        env!("CARGO_PKG_VERSION"),
        plan.input.qps,
        plan.input.profile.name
    ));
    line("[databases]");
    line("; Any database name Dify asks for (DB_DATABASE), on the PostgreSQL server. Every server");
    line("; connection runs in UTC, which Dify asks for with `options=-c timezone=UTC`; PgBouncer drops");
    line("; that startup parameter (ignore_startup_parameters below) instead of refusing the client.");
    line(&format!("* = host={db_host} port=5432 timezone=UTC"));
    line("");
    line("[pgbouncer]");
    line("listen_addr = 0.0.0.0");
    line(&format!("listen_port = {}", p.port));
    line("; TCP only, so several processes can share the port.");
    line("unix_socket_dir =");
    if p.processes_per_pod > 1 {
        line(&format!(
            "; {} single-threaded processes per pod share the port; each keeps its own server pool.",
            p.processes_per_pod
        ));
        line("so_reuseport = 1");
    }
    line("; Passwords come from userlist.txt (\"user\" \"password\" per line), which difyplan never writes.");
    line("auth_type = scram-sha-256");
    line(&format!("auth_file = {USERLIST_PATH}"));
    line("; A server connection is lent for one transaction. A blocking Dify request keeps its");
    line("; transaction open for its whole duration, so nothing is multiplexed there: the pool is sized");
    line("; to everything that can hold a connection while asking for another.");
    line("pool_mode = transaction");
    line(&format!(
        "; Safety bound {}: every api request greenlet and chat worker slot at the HPA maximum and surge",
        p.safety_bound
    ));
    line(&format!(
        "; × its nested checkouts + 1; below it the shared pool deadlocks. In use at the plan's quantile: {}.",
        p.in_use_quantile
    ));
    line(&format!(
        "; Every greenlet and slot busy (overload, or every request blocking): {}. The pool is set by {}.",
        p.saturation_quantile, p.sized_by
    ));
    line(&format!("default_pool_size = {}", p.default_pool_size));
    line("; No connections beyond the pool: the connection budget counts exactly default_pool_size.");
    line("reserve_pool_size = 0");
    line("min_pool_size = 0");
    line(&format!("max_db_connections = {}", p.default_pool_size));
    line(&format!(
        "; Every client connection the api and worker pools may open ({} plus migrations): they cost",
        p.replaced_connections
    ));
    line("; client slots here, not PostgreSQL backends.");
    line(&format!("max_client_conn = {}", p.max_client_conn));
    line("; Fail a query that waited this long for a server connection, as SQLAlchemy's own pool timeout would.");
    line(&format!("query_wait_timeout = {}", p.query_wait_timeout_s));
    line("; Close the backends a burst opened within a minute (each costs PostgreSQL memory).");
    line(&format!("server_idle_timeout = {}", p.server_idle_timeout_s));
    line("; Dify (psycopg2) sends `options=-c timezone=UTC`; PgBouncer before 1.20 refuses it otherwise.");
    line("ignore_startup_parameters = extra_float_digits,options");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ini parses as PgBouncer's `key = value` lines, with the plan's pool.
    #[test]
    fn ini_has_the_plan() {
        let input = crate::model::plan::PlanInput {
            pooler: crate::model::pooler::Pooler::Pgbouncer,
            ..crate::model::plan::PlanInput::new(50.0, crate::model::profile::Profile::builtin("workflow").unwrap())
        };
        let plan = crate::model::plan::plan(&input).unwrap();
        let p = plan.pooler.as_ref().unwrap();
        let text = ini(&plan, p, "db_postgres");
        let get = |k: &str| {
            text.lines().find_map(|l| l.split_once(" = ").filter(|(key, _)| *key == k).map(|(_, v)| v.to_string()))
        };
        assert_eq!(get("default_pool_size"), Some(p.default_pool_size.to_string()));
        assert_eq!(get("pool_mode").as_deref(), Some("transaction"));
        assert!(p.default_pool_size >= p.safety_bound);
        assert!(text.contains("* = host=db_postgres port=5432"));
    }
}
