//! One model behind every command: what `render` writes passes `check --qps` at its own load,
//! with no capacity or pool finding, and fails once the load passes what the plan says it
//! admits — for every built-in profile, 10, 100 and 500 QPS, with and without PgBouncer, on
//! compose (Dify's own project, `.env` patched and an override rendered), Kubernetes manifests
//! and Helm values of both community charts.

use super::support::{difyplan, fixture, json};
use std::path::Path;

const PROFILES: [&str; 4] = ["chat", "workflow", "agent", "benchmark"];
const QPS: [&str; 3] = ["10", "100", "500"];
const POOLERS: [&str; 2] = ["none", "pgbouncer"];

/// Codes about capacity and pools: none may appear on a set difyplan planned for the load.
const PLAN_CODES: [&str; 13] = [
    "pool-deadlock-risk",
    "pool-chat-stall",
    "worker-pool-below-concurrency",
    "worker-pool-deadlock-risk",
    "pooler-deadlock-risk",
    "pooler-max-client-conn-low",
    "connection-budget-exceeded",
    "streaming-runs-serialized",
    "api-greenlets-below-load",
    "api-processes-below-load",
    "worker-concurrency-below-load",
    "worker-processes-below-load",
    "plugin-daemon-below-load",
];

/// The plan's `max_connections` and the smallest factor by which the load may rise before work
/// queues (the api's or the worker's admission).
fn plan_facts(profile: &str, qps: &str, target: &str, pooler: &str) -> (u64, f64) {
    plan_facts_with(profile, qps, target, pooler, &[])
}

pub(crate) fn plan_facts_with(profile: &str, qps: &str, target: &str, pooler: &str, extra: &[&str]) -> (u64, f64) {
    let mut args =
        vec!["size", "--qps", qps, "--profile", profile, "--target", target, "--pooler", pooler, "--format", "json"];
    args.extend_from_slice(extra);
    let r = difyplan(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan = json(&r);
    let max_connections = plan["database"]["max_connections"].as_u64().unwrap();
    let factor =
        ["api", "worker"].iter().filter_map(|c| plan["overload"][c]["factor"].as_f64()).fold(f64::INFINITY, f64::min);
    assert!(factor.is_finite() && factor >= 1.0, "{profile} {qps}: overload {}", plan["overload"]);
    (max_connections, factor)
}

/// `check --format json` of `dir` at `qps` with `extra` flags; the codes it reports and its exit.
fn check_codes(dir: &Path, qps: &str, profile: &str, extra: &[&str]) -> (i32, Vec<String>, String) {
    let dir = dir.display().to_string();
    let mut args = vec!["check", &dir, "--qps", qps, "--profile", profile, "--format", "json"];
    args.extend_from_slice(extra);
    let r = difyplan(&args);
    assert!(r.code == 0 || r.code == 1, "{profile} {qps}: {}", r.stderr);
    let report = json(&r);
    let codes = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{} {}", f["code"].as_str().unwrap(), f["severity"].as_str().unwrap()))
        .collect();
    (r.code, codes, r.stdout)
}

/// The set passes at its own load and fails beyond what the plan admits.
pub(crate) fn round_trip(dir: &Path, case: &str, profile: &str, qps: &str, factor: f64, extra: &[&str]) {
    let (code, codes, out) = check_codes(dir, qps, profile, extra);
    let planned: Vec<&String> = codes.iter().filter(|c| PLAN_CODES.iter().any(|p| c.starts_with(p))).collect();
    assert!(planned.is_empty(), "{case}: difyplan's own set is flagged: {planned:?}\n{out}");
    assert_eq!(code, 0, "{case}: {codes:?}");
    let beyond = format!("{}", qps.parse::<f64>().unwrap() * factor * 1.1);
    let (code, codes, _) = check_codes(dir, &beyond, profile, extra);
    assert_eq!(code, 1, "{case} at {beyond} QPS, past the plan's admission ×{factor}: {codes:?}");
    assert!(
        codes.iter().any(|c| c.contains("-below-load error")),
        "{case} at {beyond} QPS: no capacity error: {codes:?}"
    );
}

#[test]
fn compose_sets_pass_their_own_check() {
    for profile in PROFILES {
        for qps in QPS {
            for pooler in POOLERS {
                let case = format!("compose {profile} {qps} {pooler}");
                let dir = tempfile::tempdir().unwrap();
                let project = dir.path();
                std::fs::copy(fixture("1.16.1/docker-compose.yaml"), project.join("docker-compose.yaml")).unwrap();
                std::fs::copy(fixture("1.16.1/env.example"), project.join(".env")).unwrap();
                let env = project.join(".env").display().to_string();
                let plan = ["--qps", qps, "--profile", profile, "--pooler", pooler];
                let mut patch = vec!["render", "env"];
                patch.extend_from_slice(&plan);
                patch.extend_from_slice(&["--patch", &env, "--write", "--no-backup"]);
                let r = difyplan(&patch);
                assert_eq!(r.code, 0, "{case}: {}", r.stderr);
                let out = project.display().to_string();
                let mut compose = vec!["render", "compose"];
                compose.extend_from_slice(&plan);
                compose.extend_from_slice(&["-o", &out]);
                let r = difyplan(&compose);
                assert_eq!(r.code, 0, "{case}: {}", r.stderr);
                let (_, factor) = plan_facts(profile, qps, "compose", pooler);
                round_trip(project, &case, profile, qps, factor, &[]);
            }
        }
    }
}

#[test]
fn kubernetes_sets_pass_their_own_check() {
    for profile in PROFILES {
        for qps in QPS {
            for pooler in POOLERS {
                let case = format!("kubernetes {profile} {qps} {pooler}");
                let dir = tempfile::tempdir().unwrap();
                let out = dir.path().display().to_string();
                let r = difyplan(&[
                    "render",
                    "kubernetes",
                    "--qps",
                    qps,
                    "--profile",
                    profile,
                    "--pooler",
                    pooler,
                    "-o",
                    &out,
                ]);
                assert_eq!(r.code, 0, "{case}: {}", r.stderr);
                // The database runs outside the manifests: its cap is the plan's, the role dedicated.
                std::fs::write(
                    dir.path().join("dify-config.yaml"),
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dify-config\ndata:\n  DB_USERNAME: dify\n",
                )
                .unwrap();
                let (max_connections, factor) = plan_facts(profile, qps, "kubernetes", pooler);
                let cap = max_connections.to_string();
                let extra = ["--pg-max-connections", &cap, "--app-role", "dedicated"];
                round_trip(dir.path(), &case, profile, qps, factor, &extra);
            }
        }
    }
}

#[test]
fn helm_values_pass_their_own_check() {
    for chart in ["borispolonsky", "douban"] {
        for profile in PROFILES {
            for qps in QPS {
                let case = format!("helm {chart} {profile} {qps}");
                let dir = tempfile::tempdir().unwrap();
                let out = dir.path().display().to_string();
                let r = difyplan(&["render", "helm", "--chart", chart, "--qps", qps, "--profile", profile, "-o", &out]);
                assert_eq!(r.code, 0, "{case}: {}", r.stderr);
                // douban's chart renders no rolling-update strategy: render plans with Kubernetes'
                // default surge for it, and says so in the file.
                let assumed: &[&str] =
                    if chart == "douban" { &["--assume", "max_surge=0.25", "--assume", "beat_surge=1"] } else { &[] };
                let (_, factor) = plan_facts_with(profile, qps, "kubernetes", "none", assumed);
                // The cap is the chart's embedded PostgreSQL's, as the values set it.
                let extra = ["--app-role", "dedicated", "--chart", chart];
                round_trip(dir.path(), &case, profile, qps, factor, &extra);
            }
        }
    }
}

/// `size` never plans what `check` flags, blocking chat included: a worker whose chat runs never
/// stream is planned a pool of its `-c`, and `check` with the same profile does not call it a
/// deadlock; with streaming chat the same pool is an error.
#[test]
fn blocking_chat_worker_is_judged_as_planned() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let plan = ["--qps", "100", "--profile", "chat", "--streaming-share", "0"];
    let mut args = vec!["render", "kubernetes", "-o", &out];
    args.extend_from_slice(&plan);
    let r = difyplan(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (code, codes, out) =
        check_codes(dir.path(), "100", "chat", &["--streaming-share", "0", "--pg-max-connections", "100000"]);
    assert!(!codes.iter().any(|c| c.starts_with("worker-pool")), "{codes:?}\n{out}");
    assert_eq!(code, 0, "{codes:?}");
    let (code, codes, _) = check_codes(dir.path(), "100", "chat", &["--pg-max-connections", "100000"]);
    assert!(codes.iter().any(|c| c.starts_with("worker-pool") && c.ends_with("error")), "{codes:?}");
    assert_eq!(code, 1);
}
