//! `check --qps`: the configuration judged against the load it must carry, with the same model
//! as `size`. Dify's default compose project (10 greenlets, `-c 4`) cannot carry 5 req/s of 9 s
//! workflow runs; the project `render` plans for that load can.

use crate::support::{difyplan, fixture, json};
use std::path::Path;

const LOAD: &[&str] = &["--qps", "5", "--profile", "workflow", "--request-seconds", "9"];

/// A copy of Dify 1.16.1's compose project (compose file and `.env` from `env.example`).
fn default_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("1.16.1/docker-compose.yaml"), dir.path().join("docker-compose.yaml")).unwrap();
    std::fs::copy(fixture("1.16.1/env.example"), dir.path().join(".env")).unwrap();
    dir
}

fn check(dir: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let path = dir.to_str().unwrap();
    let mut args = vec!["check", path, "--format", "json"];
    args.extend_from_slice(extra);
    let run = difyplan(&args);
    assert!(run.code == 0 || run.code == 1, "{args:?}: {}", run.stderr);
    (run.code, json(&run))
}

fn finding<'a>(v: &'a serde_json::Value, code: &str) -> Option<&'a serde_json::Value> {
    v["findings"].as_array().unwrap().iter().find(|f| f["code"] == code)
}

/// The number in "needs N on average".
fn needed_mean(msg: &str) -> f64 {
    let after = msg.split("needs ").nth(1).unwrap_or_else(|| panic!("{msg}"));
    after.split_whitespace().next().unwrap().parse().unwrap_or_else(|_| panic!("{msg}"))
}

#[test]
fn default_compose_fails_the_load_and_passes_without_it() {
    let dir = default_project();
    let (code, plain) = check(dir.path(), &[]);
    assert_eq!(code, 0, "without --qps check behaves as before: {plain}");
    assert!(finding(&plain, "api-greenlets-below-load").is_none());

    let (code, v) = check(dir.path(), LOAD);
    assert_eq!(code, 1, "{v}");
    let f = finding(&v, "api-greenlets-below-load").unwrap_or_else(|| panic!("no greenlet finding: {v}"));
    assert_eq!(f["severity"], "error");
    let msg = f["message"].as_str().unwrap();
    // 10 greenlets against λW = 5 × 9 = 45 in flight on average, plus the CPU queueing of the one
    // process (the model's stretch, as `size` counts it): between 45 and 46.
    assert!(msg.contains("has 10 greenlets"), "{msg}");
    let needs = needed_mean(msg);
    assert!(needs > 45.0 && needs < 46.0, "{msg}");
    assert!(f["remedy"].as_str().unwrap().contains("SERVER_WORKER_CONNECTIONS"), "{f}");
    // The worker's -c 4 against 5 × (0.3 × 9 + 1 × 0.2) = 14.5 runs and tasks in flight, plus the
    // CPU queueing of its one core.
    let w = finding(&v, "worker-concurrency-below-load").unwrap_or_else(|| panic!("no worker finding: {v}"));
    let needs = needed_mean(w["message"].as_str().unwrap());
    assert!(needs > 14.5 && needs < 15.5, "{w}");
    // Its one worker has the core for the mean (0.47) and the CPU target, but with the runs and
    // tasks in flight at their quantile it would run past 0.8: `size` plans two, a warning.
    let cores = finding(&v, "worker-processes-below-load").unwrap_or_else(|| panic!("no worker cores: {v}"));
    assert_eq!(cores["severity"], "warning", "{cores}");
    assert!(cores["message"].as_str().unwrap().contains("below the peak 2"), "{cores}");
    // Its other findings are the ones it had without --qps.
    let before = plain["findings"].as_array().unwrap().len();
    assert_eq!(v["findings"].as_array().unwrap().len(), before + 3, "{v}");
}

#[test]
fn the_planned_project_carries_the_load() {
    let dir = default_project();
    let path = dir.path().to_str().unwrap();
    let env = dir.path().join(".env");
    let mut render: Vec<&str> = vec!["render", "compose"];
    render.extend_from_slice(LOAD);
    render.extend_from_slice(&["-o", path]);
    let r = difyplan(&render);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut patch: Vec<&str> = vec!["render", "env"];
    patch.extend_from_slice(LOAD);
    patch.extend_from_slice(&["--patch", env.to_str().unwrap(), "--write", "--no-backup"]);
    let r = difyplan(&patch);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (code, v) = check(dir.path(), LOAD);
    assert_eq!(code, 0, "{v}");
    for c in ["api-greenlets-below-load", "api-processes-below-load", "worker-concurrency-below-load"] {
        assert!(finding(&v, c).is_none(), "{c}: {v}");
    }
    // Twice the load it was planned for is more than it can carry.
    let (code, v) = check(dir.path(), &["--qps", "10", "--profile", "workflow", "--request-seconds", "9"]);
    assert_eq!(code, 1, "{v}");
    assert!(finding(&v, "api-greenlets-below-load").is_some(), "{v}");
}

#[test]
fn peaks_warn_and_cpu_errors() {
    let dir = default_project();
    // 1 req/s × 9 s = 9 in flight on average, 10 greenlets: enough for the mean, not the 99.9% peak (19).
    let (code, v) = check(dir.path(), &["--qps", "1", "--profile", "workflow", "--request-seconds", "9"]);
    let f = finding(&v, "api-greenlets-below-load").unwrap_or_else(|| panic!("{v}"));
    assert_eq!(f["severity"], "warning", "{f}");
    assert_eq!(code, 0, "{v}");
    // 150 ms of CPU per blocking request at 20 req/s is more than one process (one core) can run.
    let (_, v) = check(dir.path(), &["--qps", "20", "--profile", "workflow", "--request-seconds", "0.1"]);
    let f = finding(&v, "api-processes-below-load").unwrap_or_else(|| panic!("{v}"));
    assert_eq!(f["severity"], "error", "{f}");
    // A bad load is bad input.
    let r = difyplan(&["check", dir.path().to_str().unwrap(), "--qps", "-1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}
