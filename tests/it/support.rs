//! Running the built binary and finding the shared fixtures.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The result of one difyplan run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn difyplan(args: &[&str]) -> Run {
    difyplan_in(args, None)
}

/// Run with `stdin` fed from a string (or closed).
pub fn difyplan_in(args: &[&str], stdin: Option<&str>) -> Run {
    difyplan_with(args, stdin, &[])
}

/// Run with extra environment variables. `COLUMNS` is removed unless given, so table output
/// is the full-width layout whatever the shell running the tests exports.
pub fn difyplan_with(args: &[&str], stdin: Option<&str>, envs: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_difyplan"));
    cmd.args(args).env("NO_COLOR", "1").env_remove("COLUMNS").stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.envs(envs.iter().copied());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().expect("spawn difyplan");
    if let Some(text) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin");
        let _ = pipe.write_all(text.as_bytes());
    }
    let Output { status, stdout, stderr } = child.wait_with_output().expect("wait difyplan");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `../shared/fixtures/dify/<rest>` beside the project.
pub fn fixture(rest: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/dify").join(rest)
}

pub fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", run.stdout, run.stderr))
}

/// `../shared/fixtures/helm/<rest>`: real `helm template` output of the community charts.
pub fn helm_fixture(rest: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/helm").join(rest)
}

/// Where scripts/install-validators puts the validators the tests run.
pub fn tools_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DIFYPLAN_TOOLS") {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
    cache.join("difyplan/tools")
}

/// A validator, or `None` with a loud message; with `CI` set a missing validator fails the test.
pub fn tool(path: PathBuf, what: &str) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path);
    }
    let msg = format!("{what} is missing ({}): run scripts/install-validators", path.display());
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("\n!!!!! SKIPPED: {msg} !!!!!\n");
    None
}

/// `check --format json` of rendered Kubernetes manifests in `dir` as an operator's set holds
/// them: beside the `dify-config` ConfigMap that names the application role, against the plan's
/// `max_connections` (the database runs outside the manifests). Exits 0 or 1; the report.
pub fn check_rendered_manifests(dir: &std::path::Path, max_connections: &str) -> (Run, serde_json::Value) {
    std::fs::write(
        dir.join("dify-config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dify-config\ndata:\n  DB_USERNAME: dify\n",
    )
    .unwrap();
    let dir = dir.display().to_string();
    let r = difyplan(&[
        "check",
        &dir,
        "--format",
        "json",
        "--pg-max-connections",
        max_connections,
        "--app-role",
        "dedicated",
    ]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let report = serde_json::from_str(&r.stdout).unwrap();
    (r, report)
}

/// Run in the folder `dir` (paths in the output are then relative to it), with extra
/// environment variables; `COLUMNS` is removed unless given.
pub fn difyplan_at(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let o = Command::new(env!("CARGO_BIN_EXE_difyplan"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("COLUMNS")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("spawn difyplan");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A folder of files for one case: `(relative path, text)`, folders made as needed.
pub fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// `check --format json` with `args`, which must exit 0 or 1; the run and its report.
pub fn check_json(args: &[&str]) -> (Run, serde_json::Value) {
    let mut all = vec!["check", "--format", "json"];
    all.extend_from_slice(args);
    let r = difyplan(&all);
    assert!(r.code <= 1, "{}\n{}", r.stdout, r.stderr);
    let v = json(&r);
    (r, v)
}

/// A path as an argument.
pub fn s(p: &std::path::Path) -> String {
    p.display().to_string()
}
