//! The pooler tier (`--pooler pgbouncer`) end to end: the plan's arithmetic, the refusal of a
//! server pool below the safety bound, the rendered files under the ecosystem's validators and
//! read back by `check`, and the rendered pgbouncer.ini on a real PgBouncer in front of a real
//! PostgreSQL (Debian's `pgbouncer`, installed by scripts/install-test-deps).

use crate::pg_server::{APP_ROLE, ONE_SERVER_AT_A_TIME, PgBin, PgConn, PgError, PgServer, ServerUser};
use crate::render_cli::{KUBERNETES_VERSION, compose_tool, docker_compose, kubernetes_validate_tool};
use crate::support::{Run, difyplan, fixture, json, s};
use serde_yaml::Value;
use std::fs;
use std::io::{self, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn ok(r: &Run) {
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
}

fn plan(args: &[&str]) -> serde_json::Value {
    let mut argv = vec!["size"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--format", "json"]);
    let r = difyplan(&argv);
    ok(&r);
    json(&r)
}

fn count(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn component<'a>(plan: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    plan["components"].as_array().unwrap().iter().find(|c| c["component"] == name).unwrap()
}

/// Σ request greenlets of the api at the HPA maximum and surge.
fn api_greenlets(plan: &serde_json::Value) -> u64 {
    let api = component(plan, "api");
    (count(&api["max_replicas"]) + count(&api["surge"]))
        * count(&api["processes_per_pod"])
        * count(&api["slots_per_process"])
}

// ---- the plan -------------------------------------------------------------------------------

/// The server pool covers the bound computed by hand from the component rows (workflow: one
/// nested checkout per greenlet; chat: two per greenlet and one per worker slot), it replaces
/// the api's and worker's budget lines, and the demand is the rest plus the server connections.
#[test]
fn server_pool_covers_the_bound_and_replaces_the_pools() {
    for (profile, target) in [("workflow", "compose"), ("chat", "compose"), ("workflow", "kubernetes")] {
        let args = ["--qps", "200", "--profile", profile, "--target", target, "--pooler", "pgbouncer"];
        let p = plan(&args);
        let pooler = &p["pooler"];
        let worker = component(&p, "worker");
        let worker_slots =
            (count(&worker["max_replicas"]) + count(&worker["surge"])) * count(&worker["slots_per_process"]);
        let bound = match profile {
            "workflow" => api_greenlets(&p) + 1,
            _ => 2 * api_greenlets(&p) + worker_slots + 1,
        };
        assert_eq!(count(&pooler["safety_bound"]), bound, "{args:?}");
        let pool = count(&pooler["default_pool_size"]);
        assert!(pool >= bound && pool >= count(&pooler["in_use_quantile"]), "{args:?}: {pooler}");
        let budget = &p["budget"];
        let lines: Vec<&str> =
            budget["lines"].as_array().unwrap().iter().map(|l| l["component"].as_str().unwrap()).collect();
        assert!(!lines.contains(&"api") && !lines.contains(&"worker"), "{args:?}: {lines:?}");
        let servers = count(&budget["pooler"]["connections"]);
        assert_eq!(
            servers,
            count(&pooler["pods"]) * count(&pooler["processes_per_pod"]) * pool,
            "every PgBouncer process holds the whole pool"
        );
        let rest: u64 = budget["lines"].as_array().unwrap().iter().map(|l| count(&l["connections"])).sum::<u64>()
            + budget["reserves"].as_array().unwrap().iter().map(|r| count(&r["connections"])).sum::<u64>();
        assert_eq!(count(&budget["demand"]), rest + servers, "{args:?}");
        // Client pools cost PgBouncer client slots: every one of them.
        let clients = count(&component(&p, "api")["worst_total"]) + count(&worker["worst_total"]);
        assert!(count(&pooler["max_client_conn"]) >= clients, "{args:?}");
    }
}

/// Workflow at 500 QPS on Kubernetes: the pooler cuts the worst case; the numbers are printed for
/// the record. The safety bound is Σ greenlets + 1; see `worst_case_with_smaller_greenlets` for
/// the target.
#[test]
fn workflow_500_pooler_cuts_the_worst_case() {
    let base = ["--qps", "500", "--profile", "workflow", "--target", "kubernetes"];
    let without = plan(&base);
    let mut args = base.to_vec();
    args.extend_from_slice(&["--pooler", "pgbouncer"]);
    let with = plan(&args);
    let (a, b) = (count(&without["budget"]["demand"]), count(&with["budget"]["demand"]));
    assert!(b < a, "{b} ≥ {a}");
    assert_eq!(
        count(&with["pooler"]["safety_bound"]),
        api_greenlets(&with) + 1,
        "workflow: the bound is Σ greenlets + 1"
    );
    let rules = ["safety_bound", "in_use_quantile", "saturation_quantile"].map(|k| count(&with["pooler"][k]));
    assert_eq!(
        count(&with["budget"]["pooler"]["connections"]),
        rules.into_iter().max().unwrap(),
        "the server pool covers the bound, the quantile in use and the saturation quantile"
    );
    assert_eq!(with["pooler"]["sized_by"], "saturation", "workflow: every greenlet busy sets it");
    // Without a pooler the plan says what one would save, with its number.
    let notes: Vec<&str> = without["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    let advice = notes.iter().find(|n| n.contains("--pooler pgbouncer")).unwrap_or_else(|| panic!("{notes:?}"));
    assert!(advice.contains(&format!("from {a} to {b}")), "{advice}");
    assert!(!notes.iter().any(|n| n.contains("does not help")), "{notes:?}");
    eprintln!("workflow 500 QPS kubernetes: worst case {a} without a pooler, {b} with PgBouncer");
}

/// The target for workflow at 500 QPS on compose: at most 3,500 with the pooler, whose server
/// pool keeps every greenlet busy with blocking requests without a convoy (docs/pooler.md).
#[test]
fn worst_case_with_smaller_greenlets() {
    let p = plan(&["--qps", "500", "--profile", "workflow", "--pooler", "pgbouncer"]);
    let demand = count(&p["budget"]["demand"]);
    assert!(demand <= 3500, "worst case {demand}");
}

/// A server pool forced below the bound is refused (exit 2, the bound in the message), by
/// `size` and by `render`, which then writes nothing; at the bound it is accepted.
#[test]
fn forced_pool_below_the_bound_is_refused() {
    let p = plan(&["--qps", "50", "--profile", "workflow", "--pooler", "pgbouncer"]);
    let bound = count(&p["pooler"]["safety_bound"]);
    let below = format!("pgbouncer_pool_size={}", bound - 1);
    let r = difyplan(&["size", "--qps", "50", "--profile", "workflow", "--pooler", "pgbouncer", "--assume", &below]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("safety bound {bound}")) && r.stderr.contains("deadlock"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let r = difyplan(&[
        "render",
        "compose",
        "--qps",
        "50",
        "--profile",
        "workflow",
        "--pooler",
        "pgbouncer",
        "--assume",
        &below,
        "-o",
        &s(dir.path()),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "nothing rendered");
    let at = format!("pgbouncer_pool_size={}", bound.max(count(&p["pooler"]["in_use_quantile"])));
    let r = difyplan(&["size", "--qps", "50", "--profile", "workflow", "--pooler", "pgbouncer", "--assume", &at]);
    ok(&r);
    // Forcing a pool without a pooler is a mistake too.
    let r = difyplan(&["size", "--qps", "50", "--assume", &at]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--pooler pgbouncer"), "{}", r.stderr);
}

// ---- the rendered files ---------------------------------------------------------------------

/// A compose project laid out like Dify's `docker/`: the fixture's compose file, its
/// `.env.example` patched as `.env`, and the override rendered with the pooler.
fn compose_project(version: &str, qps: &str, profile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(fixture(&format!("{version}/docker-compose.yaml")), dir.path().join("docker-compose.yaml")).unwrap();
    fs::copy(fixture(&format!("{version}/env.example")), dir.path().join(".env")).unwrap();
    let env = s(&dir.path().join(".env"));
    let common = ["--qps", qps, "--profile", profile, "--dify-version", version, "--pooler", "pgbouncer"];
    let mut args = vec!["render", "env"];
    args.extend_from_slice(&common);
    args.extend_from_slice(&["--patch", &env, "--write", "--no-backup"]);
    ok(&difyplan(&args));
    let base = s(&dir.path().join("docker-compose.yaml"));
    let out = s(dir.path());
    let mut args = vec!["render", "compose"];
    args.extend_from_slice(&common);
    args.extend_from_slice(&["--compose-file", &base, "-o", &out]);
    ok(&difyplan(&args));
    dir
}

/// pgbouncer.ini as the compose override carries it.
fn ini_of_override(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join("docker-compose.override.yaml")).unwrap();
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    doc["configs"]["difyplan_pgbouncer_ini"]["content"].as_str().expect("configs.difyplan_pgbouncer_ini.content").into()
}

fn ini_value(ini: &str, key: &str) -> Option<String> {
    ini.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

fn codes(report: &serde_json::Value) -> Vec<String> {
    report["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
}

/// The override merges with each Dify release's compose file under Docker Compose: api and
/// worker point at PgBouncer, the others stay on PostgreSQL, PgBouncer gets the ini and the
/// credentials from the project's `.env`; `check` reads it back within budget, budgeted by the
/// server pool, with no pooler finding.
#[test]
fn compose_with_pooler_merges_and_passes_check() {
    let tool = compose_tool();
    for version in ["1.9.1", "1.16.1"] {
        for (qps, profile) in [("10", "workflow"), ("200", "chat")] {
            let dir = compose_project(version, qps, profile);
            let p = plan(&["--qps", qps, "--profile", profile, "--dify-version", version, "--pooler", "pgbouncer"]);
            let ini = ini_of_override(dir.path());
            assert_eq!(ini_value(&ini, "default_pool_size"), Some(p["pooler"]["default_pool_size"].to_string()));
            assert_eq!(ini_value(&ini, "max_client_conn"), Some(p["pooler"]["max_client_conn"].to_string()));
            assert_eq!(ini_value(&ini, "pool_mode").as_deref(), Some("transaction"));
            if let Some(tool) = &tool {
                let (good, merged, err) = docker_compose(tool, dir.path(), &["config"]);
                assert!(good, "docker compose rejected the override for {version}:\n{err}");
                let merged: Value = serde_yaml::from_str(&merged).unwrap();
                let svc = &merged["services"];
                for routed in ["api", "worker"] {
                    assert_eq!(svc[routed]["environment"]["DB_HOST"].as_str(), Some("pgbouncer"), "{routed}");
                    assert_eq!(svc[routed]["environment"]["DB_PORT"].as_str(), Some("6432"), "{routed}");
                }
                let db = if version == "1.9.1" { "db" } else { "db_postgres" };
                assert_eq!(svc["worker_beat"]["environment"]["DB_HOST"].as_str(), Some(db), "beat stays direct");
                assert!(svc["pgbouncer"]["image"].as_str().unwrap().starts_with("edoburu/pgbouncer:"));
                // Compose interpolated the credentials from the .env; difyplan wrote only the names.
                let userlist = merged["configs"]["difyplan_pgbouncer_userlist"]["content"].as_str().unwrap();
                // The patched .env names the dedicated role the plan counted (DB_USERNAME=dify).
                assert_eq!(userlist, "\"dify\" \"difyai123456\"");
                assert!(
                    !fs::read_to_string(dir.path().join("docker-compose.override.yaml")).unwrap().contains("difyai")
                );
            }
            let r = difyplan(&["check", &s(dir.path()), "--format", "json", "--app-role", "dedicated"]);
            assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
            let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
            let found = codes(&report);
            for bad in [
                "connection-budget-exceeded",
                "pool-deadlock-risk",
                "pooler-deadlock-risk",
                "pooler-max-client-conn-low",
            ] {
                assert!(!found.iter().any(|c| c == bad), "{version} {qps} {profile}: {bad} in {found:?}");
            }
            let b = &report["deployments"][0]["budget"];
            assert_eq!(b["pooler"]["connections"], p["budget"]["pooler"]["connections"], "{version} {qps}");
            let reserves: u64 =
                p["budget"]["reserves"].as_array().unwrap().iter().map(|r| count(&r["connections"])).sum();
            assert_eq!(
                count(&b["demand"]) + reserves,
                count(&p["budget"]["demand"]),
                "check counts what the plan counted"
            );
        }
    }
}

/// `check` finds a server pool below the bound and client slots below the client pools, at
/// the lines that set them, in an otherwise planned project.
#[test]
fn check_finds_a_small_server_pool_and_few_client_slots() {
    let dir = compose_project("1.16.1", "10", "workflow");
    let path = dir.path().join("docker-compose.override.yaml");
    let text = fs::read_to_string(&path).unwrap();
    let ini = ini_of_override(dir.path());
    let (pool, clients) = (ini_value(&ini, "default_pool_size").unwrap(), ini_value(&ini, "max_client_conn").unwrap());
    let text = text
        .replace(&format!("default_pool_size = {pool}"), "default_pool_size = 5")
        .replace(&format!("max_client_conn = {clients}"), "max_client_conn = 10");
    fs::write(&path, &text).unwrap();
    let r = difyplan(&["check", &s(dir.path()), "--format", "json", "--app-role", "dedicated"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.trim() == needle).unwrap() as u64 + 1;
    for (code, needle) in
        [("pooler-deadlock-risk", "default_pool_size = 5"), ("pooler-max-client-conn-low", "max_client_conn = 10")]
    {
        let f = report["findings"].as_array().unwrap().iter().find(|f| f["code"] == code).unwrap_or_else(|| {
            panic!("no {code} in {:?}", codes(&report));
        });
        assert_eq!(f["source"]["line"].as_u64(), Some(line_of(needle)), "{code}");
    }
}

/// The manifests validate strictly, PgBouncer's included (Deployment, Service, ConfigMap,
/// PDB), and `check` reads them back within budget with no pooler finding.
#[test]
fn kubernetes_with_pooler_validates_and_passes_check() {
    let tool = kubernetes_validate_tool();
    for (edition, qps) in [("ha", "100"), ("test", "10")] {
        let dir = tempfile::tempdir().unwrap();
        ok(&difyplan(&[
            "render",
            "kubernetes",
            "--qps",
            qps,
            "--edition",
            edition,
            "--pooler",
            "pgbouncer",
            "-o",
            &s(dir.path()),
        ]));
        let text = fs::read_to_string(dir.path().join("pgbouncer.yaml")).unwrap();
        let kinds: Vec<String> = difyplan::read::yaml::parse_documents(&text, "pgbouncer.yaml")
            .unwrap()
            .iter()
            .map(|d| d.value["kind"].as_str().unwrap().to_string())
            .collect();
        // One PgBouncer pod by default (its server pool counted once): no disruption budget.
        assert_eq!(kinds, ["ConfigMap", "Deployment", "Service"], "{edition}");
        if let Some(tool) = &tool {
            let files: Vec<PathBuf> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
            let out = std::process::Command::new(tool)
                .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
                .args(&files)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "{edition}: kubernetes-validate failed:\n{log}");
            assert!(log.contains("deployment/dify-pgbouncer") && log.contains("service/dify-pgbouncer"), "{log}");
        }
        let p = plan(&["--qps", qps, "--edition", edition, "--target", "kubernetes", "--pooler", "pgbouncer"]);
        let max = p["database"]["max_connections"].to_string();
        let (_, report) = crate::support::check_rendered_manifests(dir.path(), &max);
        let found = codes(&report);
        for bad in
            ["connection-budget-exceeded", "pool-deadlock-risk", "pooler-deadlock-risk", "pooler-max-client-conn-low"]
        {
            assert!(!found.iter().any(|c| c == bad), "{edition}: {bad} in {found:?}");
        }
        let b = &report["deployments"][0]["budget"];
        assert_eq!(b["pooler"]["connections"], p["budget"]["pooler"]["connections"], "{edition}");
        let routed: Vec<&str> =
            b["pooler"]["replaces"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        assert_eq!(routed, ["api", "worker"]);
    }
}

/// On Kubernetes at 500 QPS the pooler pays: one PgBouncer pod holds the server pool once, so
/// the pooled worst case is at most 0.8 × the unpooled one for chat, workflow and agent.
#[test]
fn kubernetes_500_pooler_cuts_the_worst_case_by_a_fifth() {
    for profile in ["chat", "workflow", "agent"] {
        let args = ["--qps", "500", "--profile", profile, "--target", "kubernetes"];
        let direct = count(&plan(&args)["efficiency"]["worst_case_connections"]);
        let mut pooled_args = args.to_vec();
        pooled_args.extend_from_slice(&["--pooler", "pgbouncer"]);
        let p = plan(&pooled_args);
        let pooled = count(&p["efficiency"]["worst_case_connections"]);
        assert!(pooled as f64 <= 0.8 * direct as f64, "{profile}: pooled {pooled} vs {direct} without");
        assert_eq!(count(&p["pooler"]["pods"]), 1, "{profile}");
        // The plan says which rule set the server pool.
        assert!(["safety", "in-use", "saturation"].contains(&p["pooler"]["sized_by"].as_str().unwrap()), "{profile}");
    }
}

// ---- a real PgBouncer -----------------------------------------------------------------------

/// Debian's `pgbouncer` (`DIFYPLAN_PGBOUNCER` names another), or a loud skip outside CI.
fn pgbouncer_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DIFYPLAN_PGBOUNCER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = ["/usr/sbin", "/usr/bin"]
        .into_iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file());
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(!ci, "CI is set and no pgbouncer is installed: run scripts/install-test-deps before the tests");
        let _ = writeln!(io::stderr(), "\n*** SKIPPED pooler: no pgbouncer. Run scripts/install-test-deps. ***\n");
    }
    found
}

/// A PgBouncer started with a rendered pgbouncer.ini, changed only where the test machine
/// differs from the deployment: PostgreSQL's address, the listening address and port, and
/// trust authentication (the test server has no passwords). Runs as the PostgreSQL server's
/// user (PgBouncer refuses root) and dies with the test.
struct Bouncer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Bouncer {
    fn start(bin: &Path, ini: &str, pg_port: u16, overrides: &[(&str, &str)]) -> Bouncer {
        let user = ServerUser::get();
        let dir = tempfile::Builder::new().prefix("difyplan-pgbouncer-").tempdir().unwrap();
        user.own(dir.path());
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        let userlist = dir.path().join("userlist.txt");
        fs::write(&userlist, format!("\"{APP_ROLE}\" \"\"\n")).unwrap();
        let port_s = port.to_string();
        let userlist_s = s(&userlist);
        let mut site: Vec<(&str, &str)> = vec![
            ("listen_addr", "127.0.0.1"),
            ("listen_port", &port_s),
            ("auth_type", "trust"),
            ("auth_file", &userlist_s),
        ];
        site.extend_from_slice(overrides);
        let mut text = String::new();
        for line in ini.lines() {
            let key = line.split_once('=').map(|(k, _)| k.trim()).unwrap_or_default();
            let out = if key == "*" {
                // `* = host=<db> port=5432 timezone=UTC`: the same entry, on the test server.
                let rest = line.split_once("port=5432").map(|(_, r)| r).expect("the [databases] entry");
                format!("* = host=127.0.0.1 port={pg_port}{rest}")
            } else if let Some((_, v)) = site.iter().find(|(k, _)| *k == key) {
                format!("{key} = {v}")
            } else {
                line.to_string()
            };
            text.push_str(&out);
            text.push('\n');
        }
        let ini_path = dir.path().join("pgbouncer.ini");
        fs::write(&ini_path, &text).unwrap();
        let log = fs::File::create(dir.path().join("pgbouncer.log")).unwrap();
        let child = user
            .command(bin)
            .arg(&ini_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run pgbouncer");
        let mut b = Bouncer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Ok(Some(status)) = b.child.try_wait() {
                panic!("pgbouncer exited ({status}):\n{}\nwith\n{text}", b.log());
            }
            assert!(Instant::now() < deadline, "pgbouncer did not listen:\n{}", b.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        b
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    /// A client as Dify's psycopg2 connects: with `options=-c timezone=UTC`.
    fn client(&self) -> Result<PgConn, PgError> {
        let mut conn = PgConn::open(self.port)?;
        let mut body = 196_608_u32.to_be_bytes().to_vec();
        for (k, v) in [("user", APP_ROLE), ("database", "dify"), ("options", "-c timezone=UTC")] {
            for x in [k, v] {
                body.extend_from_slice(x.as_bytes());
                body.push(0);
            }
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        msg.extend(body);
        conn.stream.write_all(&msg)?;
        conn.finish_startup()?;
        Ok(conn)
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send a simple query without waiting for its answer.
fn send(conn: &PgConn, sql: &str) {
    let mut m = vec![b'Q'];
    m.extend(((sql.len() + 5) as u32).to_be_bytes());
    m.extend(sql.as_bytes());
    m.push(0);
    (&conn.stream).write_all(&m).unwrap();
}

/// The answer to a sent query: `Ok` at ReadyForQuery, `Err` with the error; `None` if nothing
/// arrives within `wait` (the query waits for a server connection).
fn answer(conn: &PgConn, wait: Duration) -> Option<Result<(), PgError>> {
    conn.stream.set_read_timeout(Some(wait)).unwrap();
    let mut error = None;
    loop {
        match conn.read_message() {
            Ok((b'E', body)) => error = Some(crate::pg_server::error_response(&body)),
            Ok((b'Z', _)) => {
                conn.stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                return Some(error.map_or(Ok(()), Err));
            }
            Ok(_) => {}
            Err(e) if error.is_none() && matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return None;
            }
            // PgBouncer closes the client after an error such as query_wait_timeout.
            Err(e) => return Some(Err(error.unwrap_or_else(|| e.into()))),
        }
    }
}

fn server_connections(admin: &PgConn) -> u64 {
    admin
        .query(&format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{APP_ROLE}' AND datname = 'dify'"))
        .parse()
        .unwrap()
}

/// The rendered pgbouncer.ini on a real PgBouncer in front of a real PostgreSQL started with
/// the plan's max_connections: every client connection the plan allows opens (with Dify's
/// `options` startup parameter), one more is refused; clients holding transactions get at most
/// the planned server pool, one more waits instead of failing and is served when one commits;
/// server connections run in UTC whatever the server's own timezone.
#[test]
fn rendered_ini_on_a_real_pgbouncer() {
    let dir = compose_project("1.16.1", "10", "workflow");
    let ini = ini_of_override(dir.path());
    let p = plan(&["--qps", "10", "--profile", "workflow", "--pooler", "pgbouncer"]);
    every_client_and_never_more_servers("compose", &ini, &p);
}

/// The Kubernetes layout on a real PgBouncer: the one pod's pgbouncer.ini from the rendered
/// ConfigMap, its server pool the plan's whole server connections (counted once: one pod, one
/// process), every client slot the plan allows served on it, never more server connections.
#[test]
fn kubernetes_pgbouncer_pod_on_a_real_pgbouncer() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--qps", "10", "--profile", "workflow", "--target", "kubernetes", "--pooler", "pgbouncer"];
    let mut render = vec!["render", "kubernetes"];
    render.extend_from_slice(&args[..4]);
    let out = s(dir.path());
    render.extend_from_slice(&["--pooler", "pgbouncer", "-o", &out]);
    ok(&difyplan(&render));
    let p = plan(&args);
    let pooler = &p["pooler"];
    assert_eq!((count(&pooler["pods"]), count(&pooler["processes_per_pod"])), (1, 1), "{pooler}");
    assert_eq!(pooler["server_connections"], pooler["default_pool_size"], "the bound counted once");
    assert_eq!(p["budget"]["pooler"]["connections"], pooler["server_connections"]);
    let text = fs::read_to_string(dir.path().join("pgbouncer.yaml")).unwrap();
    let docs = difyplan::read::yaml::parse_documents(&text, "pgbouncer.yaml").unwrap();
    let deployment = docs.iter().find(|d| d.value["kind"].as_str() == Some("Deployment")).unwrap();
    assert_eq!(deployment.value["spec"]["replicas"].as_u64(), Some(1));
    assert_eq!(deployment.value["spec"]["strategy"]["rollingUpdate"]["maxSurge"].as_u64(), Some(0));
    let config = docs.iter().find(|d| d.value["kind"].as_str() == Some("ConfigMap")).unwrap();
    let ini = config.value["data"]["pgbouncer.ini"].as_str().unwrap().to_string();
    every_client_and_never_more_servers("kubernetes", &ini, &p);
}

/// `ini` on a real PgBouncer before a real PostgreSQL at the plan's max_connections: every client
/// slot opens, one more is refused; clients in transactions get at most the server connections
/// the plan budgets, one more waits and is served once a transaction ends.
fn every_client_and_never_more_servers(what: &str, ini: &str, p: &serde_json::Value) {
    let Some(bouncer_bin) = pgbouncer_bin() else { return };
    let Some(pg_bin) = PgBin::find_or_skip("pooler") else { return };
    let pool = count(&p["pooler"]["default_pool_size"]) as usize;
    let max_clients = count(&p["pooler"]["max_client_conn"]) as usize;
    let budgeted = count(&p["budget"]["pooler"]["connections"]) as usize;
    assert_eq!(ini_value(ini, "default_pool_size"), Some(pool.to_string()), "{what}");
    assert_eq!(ini_value(ini, "max_client_conn"), Some(max_clients.to_string()), "{what}");

    let _one = ONE_SERVER_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    crate::pg_server::raise_open_files_limit(2 * max_clients + 64);
    let max_connections = p["database"]["max_connections"].to_string();
    let server =
        PgServer::start_with(&pg_bin, &[("max_connections", max_connections), ("timezone", "Asia/Tokyo".to_string())]);
    let bouncer = Bouncer::start(&bouncer_bin, ini, server.port(), &[]);
    let admin = server.connect("postgres", "postgres").expect("superuser connection");

    let clients: Vec<PgConn> = (0..max_clients)
        .map(|i| {
            bouncer
                .client()
                .unwrap_or_else(|e| panic!("{what}: client {} of {max_clients}: {e}\n{}", i + 1, bouncer.log()))
        })
        .collect();
    let refused = bouncer.client().map(drop).expect_err("one client beyond max_client_conn");
    assert!(refused.message.contains("max_client_conn"), "{refused}");
    assert_eq!(clients[0].query("SHOW timezone"), "UTC", "the [databases] entry sets UTC");

    // Every server connection the pool allows, each lent to a client holding a transaction.
    for c in &clients[..pool] {
        c.query("BEGIN; SELECT 1");
    }
    assert_eq!(server_connections(&admin), pool as u64, "{}", bouncer.log());
    let waiting = &clients[pool];
    send(waiting, "BEGIN; SELECT 1");
    assert!(answer(waiting, Duration::from_secs(2)).is_none(), "{what}: served beyond the server pool");
    let open = server_connections(&admin);
    assert!(open == pool as u64 && open <= budgeted as u64, "{what}: the server sees {open}, budgeted {budgeted}");
    clients[0].query("COMMIT");
    answer(waiting, Duration::from_secs(10)).expect("served once a transaction ended").unwrap();
    for c in clients[1..=pool].iter() {
        c.query("COMMIT");
    }
    assert!(server_connections(&admin) <= pool as u64);
    drop(clients);
    admin.close();
}

/// The safety bound on a real PgBouncer: two requests each hold a transaction and ask for a
/// second connection (as a Dify request does at its start and end). A server pool of 2 (the
/// requests in flight) deadlocks until PgBouncer's query_wait_timeout fails them; the bound,
/// 2 × 1 + 1 = 3, completes both.
#[test]
fn server_pool_below_the_bound_deadlocks_on_a_real_pgbouncer() {
    let Some(bouncer_bin) = pgbouncer_bin() else { return };
    let Some(pg_bin) = PgBin::find_or_skip("pooler deadlock") else { return };
    let dir = compose_project("1.16.1", "10", "workflow");
    let ini = ini_of_override(dir.path());
    let _one = ONE_SERVER_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let server = PgServer::start_with(&pg_bin, &[("max_connections", "50".to_string())]);
    for (pool, deadlocks) in [("2", true), ("3", false)] {
        let bouncer = Bouncer::start(
            &bouncer_bin,
            &ini,
            server.port(),
            &[("default_pool_size", pool), ("max_db_connections", pool), ("query_wait_timeout", "3")],
        );
        let first: Vec<PgConn> = (0..2).map(|_| bouncer.client().unwrap()).collect();
        let nested: Vec<PgConn> = (0..2).map(|_| bouncer.client().unwrap()).collect();
        for c in &first {
            c.query("BEGIN; SELECT 1");
        }
        for c in &nested {
            send(c, "BEGIN; SELECT 1");
        }
        let answers: Vec<Option<Result<(), PgError>>> =
            nested.iter().map(|c| answer(c, Duration::from_secs(8))).collect();
        if deadlocks {
            for a in &answers {
                let e = a.as_ref().expect("PgBouncer answers after query_wait_timeout").as_ref().unwrap_err();
                assert!(e.message.contains("query_wait_timeout"), "{e}");
            }
        } else {
            // One nested checkout is served at once; its request finishes and frees the other's.
            let served = answers.iter().position(|a| matches!(a, Some(Ok(())))).expect("one served");
            nested[served].query("COMMIT");
            first[served].query("COMMIT");
            let other = 1 - served;
            if answers[other].is_none() {
                answer(&nested[other], Duration::from_secs(8)).expect("served after the first finished").unwrap();
            }
        }
    }
}

/// Golden files of the pooler's outputs: the plan's table and the rendered PgBouncer files.
#[test]
fn snapshots_of_the_pooler_outputs() {
    let r = difyplan(&["size", "--qps", "500", "--profile", "workflow", "--pooler", "pgbouncer"]);
    ok(&r);
    insta::assert_snapshot!("pooler_size_qps500_workflow_table", r.stdout);
    let dir = tempfile::tempdir().unwrap();
    ok(&difyplan(&["render", "kubernetes", "--qps", "100", "--pooler", "pgbouncer", "-o", &s(dir.path())]));
    insta::assert_snapshot!("pooler_kubernetes_qps100", fs::read_to_string(dir.path().join("pgbouncer.yaml")).unwrap());
    let r = difyplan(&["render", "compose", "--qps", "100", "--profile", "workflow", "--pooler", "pgbouncer"]);
    ok(&r);
    insta::assert_snapshot!("pooler_compose_qps100_workflow", r.stdout);
}

/// Session pooling pins a server connection per client connection for as long as it stays
/// open, and SQLAlchemy keeps its pools open: a pool below the client pools is a deadlock too.
#[test]
fn check_finds_session_pooling_below_the_client_pools() {
    let dir = compose_project("1.16.1", "10", "workflow");
    let path = dir.path().join("docker-compose.override.yaml");
    let text = fs::read_to_string(&path).unwrap().replace("pool_mode = transaction", "pool_mode = session");
    fs::write(&path, &text).unwrap();
    let r = difyplan(&["check", &s(dir.path()), "--format", "json", "--app-role", "dedicated"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "pooler-deadlock-risk")
        .unwrap_or_else(|| panic!("{:?}", codes(&report)));
    assert!(f["message"].as_str().unwrap().contains("pool_mode session"), "{f}");
    let line = text.lines().position(|l| l.trim() == "pool_mode = session").unwrap() as u64 + 1;
    assert_eq!(f["source"]["line"].as_u64(), Some(line));
}
