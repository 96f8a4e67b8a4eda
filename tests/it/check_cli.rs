//! `difyplan check` end to end: the real Dify fixtures, every finding code (one case that
//! triggers it, one that does not), the allow-list, every output format, and secrets.

use crate::support::{difyplan, difyplan_in, fixture, json};
use std::path::Path;

/// Relative paths (cargo runs tests in the package folder), so outputs and golden files do
/// not depend on where the checkout lives.
fn fixture_args(version: &str) -> Vec<String> {
    assert!(fixture(version).is_dir(), "../shared beside the project");
    vec![
        "check".into(),
        format!("../shared/fixtures/dify/{version}/docker-compose.yaml"),
        "--env-file".into(),
        format!("../shared/fixtures/dify/{version}/env.example"),
        // Unwrapped lines: the assertions below look for whole messages.
        "--wide".into(),
    ]
}

fn run(args: &[String]) -> crate::support::Run {
    difyplan(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn with(mut args: Vec<String>, more: &[&str]) -> Vec<String> {
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

fn codes(report: &serde_json::Value) -> Vec<String> {
    report["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
}

/// Dify 1.9.1's defaults: 150 against max_connections 100, exit 1 with the arithmetic.
#[test]
fn fixture_191_over_budget() {
    let r = run(&fixture_args("1.9.1"));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("connection-budget-exceeded"));
    assert!(r.stdout.contains("worst-case demand 150 exceeds the usable cap 100"), "{}", r.stdout);
    assert!(r.stdout.contains(
        "api 1 × 1 × 40 = 40 + worker 1 × 1 × 40 = 40 + worker_beat 1 × 1 × 40 = 40 + plugin_daemon 1 × 1 × 30 = 30"
    ));
    let v = json(&run(&with(fixture_args("1.9.1"), &["--format", "json"])));
    assert_eq!(v["deployments"][0]["budget"]["demand"], 150);
    assert_eq!(v["deployments"][0]["budget"]["cap"]["max_connections"], 100);
    assert_eq!(v["deployments"][0]["deployment"]["version"], "1.9.1");
    // The pool came from the merged x-shared-env, interpolated from the .env line that sets it.
    let api = &v["deployments"][0]["deployment"]["components"][0];
    assert_eq!(api["component"], "api");
    let line = line_of(&fixture("1.9.1/env.example"), "SQLALCHEMY_POOL_SIZE=");
    assert_eq!(api["pool_size"]["source"]["line"], line);
}

/// The 1-based line where a line starts with `prefix`, computed from the file itself.
fn line_of(path: &Path, prefix: &str) -> usize {
    std::fs::read_to_string(path).unwrap().lines().position(|l| l.starts_with(prefix)).expect("line present") + 1
}

/// Dify 1.16.1: 190 against 200 with api_websocket counted; `postgres` is a superuser,
/// so within budget (exit 0) with warnings; with `--pg-max-connections 150`, exit 1.
#[test]
fn fixture_1161_within_budget_with_warnings() {
    let r = run(&with(fixture_args("1.16.1"), &["--format", "json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    let b = &v["deployments"][0]["budget"];
    assert_eq!(b["demand"], 190);
    assert_eq!(b["usable"], 200);
    let comps: Vec<&str> = v["deployments"][0]["deployment"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["component"].as_str().unwrap())
        .collect();
    assert_eq!(comps, ["api", "api_websocket", "worker", "worker_beat", "plugin_daemon"]);
    let found = codes(&v);
    for code in
        ["superuser-app-role", "beat-pool-oversized", "plugin-daemon-pool-default", "idle-in-transaction-timeout-off"]
    {
        assert!(found.contains(&code.to_string()), "missing {code}: {found:?}");
    }
    assert!(!found.contains(&"connection-budget-exceeded".to_string()));
    let r = run(&with(fixture_args("1.16.1"), &["--pg-max-connections", "150"]));
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("worst-case demand 190 exceeds the usable cap 150"));
}

/// The same `.env` alone is read as Dify's compose would use it: the same totals.
#[test]
fn env_alone_matches_compose() {
    for (version, demand, cap) in [("1.16.1", 190, 200), ("1.9.1", 150, 100)] {
        let text = std::fs::read_to_string(fixture(&format!("{version}/env.example"))).unwrap();
        let r = difyplan_in(&["check", "-", "--format", "json", "--dify-version", version], Some(&text));
        assert!(r.code <= 1, "{}", r.stderr);
        let v = json(&r);
        assert_eq!(v["deployments"][0]["budget"]["demand"], demand, "{version}");
        assert_eq!(v["deployments"][0]["budget"]["cap"]["max_connections"], cap, "{version}");
    }
}

/// A `.env` written for one case; checked alone (Dify's default compose layout, 1.16.1).
fn check_env(text: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), text).unwrap();
    let path = dir.path().display().to_string();
    let mut args = vec!["check", path.as_str(), "--format", "json", "--dify-version", "1.16.1"];
    args.extend_from_slice(extra);
    let r = difyplan(&args);
    assert!(r.code <= 1, "{text}: {}", r.stderr);
    (r.code, json(&r))
}

/// A clean 1.16.1 `.env`: dedicated role, small beat... every knob set as difyplan would.
const CLEAN: &str = "DB_USERNAME=dify_app
SERVER_WORKER_AMOUNT=2
SERVER_WORKER_CONNECTIONS=10
SQLALCHEMY_POOL_SIZE=10
SQLALCHEMY_MAX_OVERFLOW=10
CELERY_WORKER_AMOUNT=8
POSTGRES_MAX_CONNECTIONS=200
POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT=600000
DB_MAX_OPEN_CONNS=10
DB_MAX_IDLE_CONNS=5
COMPOSE_PROFILES=weaviate,postgresql
";

/// Every finding code: one configuration that triggers it and one that does not.
#[test]
fn every_code_triggers_and_stays_quiet() {
    let (code, v) = check_env(CLEAN, &[]);
    let clean = codes(&v);
    // The compose-shared pool reaches beat: that warning is expected even in this file.
    assert_eq!(clean, ["beat-pool-oversized"], "{v}");
    assert_eq!(code, 0);
    let cases: &[(&str, &str, &str)] = &[
        ("connection-budget-exceeded", "POSTGRES_MAX_CONNECTIONS=200", "POSTGRES_MAX_CONNECTIONS=50"),
        ("pool-deadlock-risk", "SQLALCHEMY_MAX_OVERFLOW=10", "SQLALCHEMY_MAX_OVERFLOW=0"),
        ("pool-chat-stall", "SQLALCHEMY_MAX_OVERFLOW=10", "SQLALCHEMY_MAX_OVERFLOW=5"),
        ("worker-pool-below-concurrency", "CELERY_WORKER_AMOUNT=8", "CELERY_WORKER_AMOUNT=40"),
        ("worker-pool-deadlock-risk", "CELERY_WORKER_AMOUNT=8", "CELERY_WORKER_AMOUNT=15"),
        ("redis-max-connections-low", "DB_MAX_IDLE_CONNS=5", "DB_MAX_IDLE_CONNS=5\nREDIS_MAX_CONNECTIONS=5"),
        ("streaming-runs-serialized", "CELERY_WORKER_AMOUNT=8", "CELERY_WORKER_AMOUNT="),
        ("plugin-daemon-pool-default", "DB_MAX_OPEN_CONNS=10\n", ""),
        ("superuser-app-role", "DB_USERNAME=dify_app", "DB_USERNAME=postgres"),
        (
            "idle-in-transaction-timeout-off",
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT=600000",
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT=0",
        ),
        ("unknown-sizing-key", "SQLALCHEMY_POOL_SIZE=10", "SQLALCHEMY_POOL_SIZE=10\nSQLALCHEMY_POOLSIZE=50"),
        ("prefork-multiplies-pools", "CELERY_WORKER_AMOUNT=8", "CELERY_WORKER_AMOUNT=8\nCELERY_WORKER_CLASS=prefork"),
    ];
    for (expect, from, to) in cases {
        assert!(CLEAN.contains(from), "{from}");
        let text = CLEAN.replacen(from, to, 1);
        let (_, v) = check_env(&text, &[]);
        let found = codes(&v);
        assert!(found.contains(&expect.to_string()), "{expect} not raised by `{to}`: {found:?}");
        assert!(!clean.contains(&expect.to_string()));
    }
    // beat-pool-oversized: quiet when the shared pool is small enough for beat.
    let small = CLEAN
        .replace("SQLALCHEMY_POOL_SIZE=10", "SQLALCHEMY_POOL_SIZE=2")
        .replace("SQLALCHEMY_MAX_OVERFLOW=10", "SQLALCHEMY_MAX_OVERFLOW=3")
        .replace("SERVER_WORKER_CONNECTIONS=10", "SERVER_WORKER_CONNECTIONS=2");
    let (_, v) = check_env(&small, &[]);
    assert!(!codes(&v).contains(&"beat-pool-oversized".to_string()), "{v}");
}

/// The measured boundaries reach the findings: 10 greenlets with 10+0 deadlocks, 11+0 only
/// stalls chat apps, 20+0 is clean; api_websocket's 1000 greenlets are not requests.
#[test]
fn pool_findings_follow_the_measured_rule() {
    for (pool, overflow, expect) in
        [(10, 0, Some("pool-deadlock-risk")), (11, 0, Some("pool-chat-stall")), (20, 0, None), (30, 10, None)]
    {
        let text = CLEAN
            .replace("SQLALCHEMY_POOL_SIZE=10", &format!("SQLALCHEMY_POOL_SIZE={pool}"))
            .replace("SQLALCHEMY_MAX_OVERFLOW=10", &format!("SQLALCHEMY_MAX_OVERFLOW={overflow}"));
        let text =
            text.replace("COMPOSE_PROFILES=weaviate,postgresql", "COMPOSE_PROFILES=weaviate,postgresql,collaboration");
        let (_, v) = check_env(&text, &[]);
        let found = codes(&v);
        let pool_codes: Vec<&String> = found.iter().filter(|c| c.starts_with("pool-")).collect();
        match expect {
            Some(code) => assert_eq!(pool_codes, [code], "{pool}+{overflow}"),
            None => assert!(pool_codes.is_empty(), "{pool}+{overflow}: {found:?}"),
        }
        // Exactly one api process was judged, not api_websocket.
        let pool_findings = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["code"].as_str().unwrap().starts_with("pool-"))
            .filter(|f| f["component"] == "api_websocket")
            .count();
        assert_eq!(pool_findings, 0);
    }
}

#[test]
fn fail_on_and_exit_zero() {
    let warn_only = CLEAN.replace("DB_USERNAME=dify_app", "DB_USERNAME=postgres");
    assert_eq!(check_env(&warn_only, &[]).0, 0, "warnings do not fail by default");
    assert_eq!(check_env(&warn_only, &["--fail-on", "warning"]).0, 1);
    let over = CLEAN.replace("POSTGRES_MAX_CONNECTIONS=200", "POSTGRES_MAX_CONNECTIONS=50");
    assert_eq!(check_env(&over, &[]).0, 1);
    assert_eq!(check_env(&over, &["--exit-zero"]).0, 0);
    assert_eq!(check_env(&over, &["--fail-on", "never"]).0, 0);
}

#[test]
fn allow_list_needs_a_reason_and_reports_unused_entries() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), CLEAN.replace("DB_USERNAME=dify_app", "DB_USERNAME=postgres")).unwrap();
    let cfg = dir.path().join("difyplan.toml");
    let target = dir.path().join(".env").display().to_string();
    let run_with = |toml: &str| {
        std::fs::write(&cfg, toml).unwrap();
        difyplan(&["check", &target, "--format", "json", "--config", cfg.to_str().unwrap()])
    };
    let r = run_with(
        "[[allow]]\ncode = \"superuser-app-role\"\nreason = \"managed DB gives us no other role\"\n\n[[allow]]\ncode = \"hpa-unbounded\"\nreason = \"stale\"\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    let found = codes(&v);
    assert!(!found.contains(&"superuser-app-role".to_string()));
    assert_eq!(v["suppressed"][0]["finding"]["code"], "superuser-app-role");
    assert_eq!(v["suppressed"][0]["reason"], "managed DB gives us no other role");
    let unused =
        v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "unused-allow").expect("unused allow reported");
    assert_eq!(unused["source"]["line"], 5);
    let r = run_with("[[allow]]\ncode = \"superuser-app-role\"\n");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing field `reason`"), "{}", r.stderr);
    let r = run_with("[[allow]]\ncode = \"superuser-app-role\"\nreason = \"  \"\n");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("empty reason"), "{}", r.stderr);
    let r = run_with("[[allow]]\ncode = \"no-such-code\"\nreason = \"x\"\n");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown finding code `no-such-code`"));
}

/// Secrets never appear in any format: passwords and keys of the fixtures are masked.
#[test]
fn secrets_never_appear() {
    let text = std::fs::read_to_string(fixture("1.16.1/env.example")).unwrap();
    let secrets: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, v)| difyplan::safety::is_secret_key(k) && v.len() >= 8)
        .map(|(_, v)| v.trim().to_string())
        .collect();
    assert!(secrets.iter().any(|s| s.contains("difyai123456")), "fixture sanity: {secrets:?}");
    for format in ["human", "json", "github", "sarif"] {
        let r = run(&with(fixture_args("1.16.1"), &["--format", format]));
        for s in &secrets {
            assert!(!r.stdout.contains(s.as_str()), "{format} leaks a secret");
        }
    }
}

/// Golden files of every format on both fixtures.
#[test]
fn golden_formats() {
    for version in ["1.9.1", "1.16.1"] {
        for format in ["human", "json", "github", "sarif"] {
            let r = run(&with(fixture_args(version), &["--format", format]));
            assert!(!r.stdout.contains(env!("CARGO_MANIFEST_DIR")), "no machine path in the output");
            insta::assert_snapshot!(format!("check_{version}_{format}"), r.stdout);
        }
    }
}

/// GitHub annotations escape what the runner would misread.
#[test]
fn github_escaping() {
    use difyplan::report::github::{escape_data, escape_property};
    assert_eq!(escape_data("50% a\nb\r"), "50%25 a%0Ab%0D");
    assert_eq!(escape_property("dir,x/a:b.env"), "dir%2Cx/a%3Ab.env");
    let r = run(&with(fixture_args("1.9.1"), &["--format", "github"]));
    let first = r.stdout.lines().next().unwrap();
    assert!(first.starts_with("::error file="), "{first}");
    assert!(first.contains(",line="));
    assert!(first.contains("title=difyplan connection-budget-exceeded::"));
}

#[test]
fn bad_inputs_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad_env = dir.path().join("bad.env");
    std::fs::write(&bad_env, "A=1\nB=\"unterminated\n").unwrap();
    let r = difyplan(&["check", bad_env.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("bad.env:2"), "{}", r.stderr);
    let r = difyplan(&["check", dir.path().join("nope").to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no such file"));
    let empty = tempfile::tempdir().unwrap();
    let r = difyplan(&["check", empty.path().to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no .env, compose"));
}

/// A walked folder holds what compose reads by default: Dify's docker-compose.yaml (and an
/// override), not its development-only docker-compose.middleware.yaml beside it.
#[test]
fn folder_walk_reads_the_default_compose_files() {
    let r = run(&["check".into(), "../shared/fixtures/dify/1.9.1".into(), "--format".into(), "json".into()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v = json(&r);
    assert_eq!(v["deployments"].as_array().unwrap().len(), 1);
    assert_eq!(v["deployments"][0]["budget"]["demand"], 150);
    // 1.16.1 needs its .env, as compose does; the message says how to get one.
    let r = run(&["check".into(), "../shared/fixtures/dify/1.16.1".into()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("docker-compose.yaml:") && r.stderr.contains(".env.example to .env"), "{}", r.stderr);
}
