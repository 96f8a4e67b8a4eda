//! Hardening (issue #6): a table of bad inputs across the commands. Each exits 2, within bounded
//! time, with a message that names the file (and the line, where there is one) and says what to do.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run difyplan in `dir` with a time limit; (exit code, stderr, stdout).
fn run_limited(dir: &Path, args: &[String], as_nobody: bool) -> (i32, String, String) {
    // Another user may not reach the build folder (a private checkout or target dir): that run
    // uses a copy of the binary inside `dir`, which it can reach.
    let binary = if as_nobody {
        let copy = dir.join("difyplan-bin");
        std::fs::copy(env!("CARGO_BIN_EXE_difyplan"), &copy).expect("copy the binary");
        copy
    } else {
        PathBuf::from(env!("CARGO_BIN_EXE_difyplan"))
    };
    let mut cmd = Command::new(&binary);
    cmd.args(args).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if as_nobody {
        use std::os::unix::process::CommandExt;
        cmd.uid(65534).gid(65534);
    }
    let mut child = cmd.spawn().expect("spawn");
    let started = Instant::now();
    loop {
        if let Some(_status) = child.try_wait().expect("wait") {
            break;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("{args:?} ran longer than 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

struct Case {
    name: &'static str,
    /// Files to create: (relative path, bytes).
    files: Vec<(&'static str, Vec<u8>)>,
    args: Vec<&'static str>,
    /// Every one of these must appear in stderr.
    expect: Vec<&'static str>,
}

fn case(
    name: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
    args: &[&'static str],
    expect: &[&'static str],
) -> Case {
    Case { name, files, args: args.to_vec(), expect: expect.to_vec() }
}

fn t(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

const COMPOSE: &str =
    "services:\n  api:\n    image: langgenius/dify-api:1.16.1\n    environment:\n      SQLALCHEMY_POOL_SIZE: 30\n";
const PROFILE: &str = include_str!("../../matrices/profiles/chat.toml");

fn cases() -> Vec<Case> {
    let laughs = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\nservices: [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    let deep = format!("services: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let big = {
        let mut b = b"A=1\n".to_vec();
        b.resize(50 * 1024 * 1024, b'#');
        b
    };
    vec![
        case(
            "env: unterminated double quote",
            vec![("bad.env", t("A=1\nB=\"never closed\nC=3\n"))],
            &["check", "bad.env"],
            &["bad.env:2"],
        ),
        case(
            "env: unterminated single quote",
            vec![("bad.env", t("A='open\n"))],
            &["check", "bad.env"],
            &["bad.env:1"],
        ),
        case(
            "env: text after a closing quote",
            vec![("bad.env", t("A=1\nB=\"x\" y\n"))],
            &["check", "bad.env"],
            &["bad.env:2"],
        ),
        case(
            "env: required variable",
            vec![("bad.env", t("A=${MISSING:?set MISSING first}\n"))],
            &["check", "bad.env"],
            &["bad.env:1", "set MISSING first"],
        ),
        case("env: unclosed ${", vec![("bad.env", t("A=1\nB=${C\n"))], &["check", "bad.env"], &["bad.env:2"]),
        case("env: invalid key", vec![("bad.env", t("GOOD=1\nBAD KEY=2\n"))], &["check", "bad.env"], &["bad.env:2"]),
        case(
            "env: not UTF-8",
            vec![("bad.env", b"A=1\nB=\xff\xfe\n".to_vec())],
            &["check", "bad.env"],
            &["bad.env:2", "UTF-8"],
        ),
        case(
            "env: binary",
            vec![("bad.env", b"A=1\n\x00\x01\x02".to_vec())],
            &["check", "bad.env"],
            &["bad.env:2", "binary"],
        ),
        case("env: 50 MB", vec![("big.env", big.clone())], &["check", "big.env"], &["big.env", "larger than 16 MiB"]),
        case(
            "env: pool not a number",
            vec![(".env", t("SQLALCHEMY_POOL_SIZE=thirty\n"))],
            &["check", ".env"],
            &[".env:1", "SQLALCHEMY_POOL_SIZE=thirty", "whole number"],
        ),
        case(
            "compose: YAML syntax",
            vec![("docker-compose.yaml", t("services:\n  api:\n    image: [unclosed\n"))],
            &["check", "docker-compose.yaml"],
            &["docker-compose.yaml:"],
        ),
        case(
            "compose: billion laughs",
            vec![("docker-compose.yaml", t(laughs))],
            &["check", "docker-compose.yaml"],
            &["docker-compose.yaml"],
        ),
        case(
            "compose: deep nesting",
            vec![("docker-compose.yaml", t(&deep))],
            &["check", "docker-compose.yaml"],
            &["docker-compose.yaml:1"],
        ),
        case(
            "compose: top level not a mapping",
            vec![("docker-compose.yaml", t("- services\n- api\n"))],
            &["check", "docker-compose.yaml"],
            &["docker-compose.yaml"],
        ),
        case(
            "compose: environment a number",
            vec![(
                "docker-compose.yaml",
                t("services:\n  api:\n    image: langgenius/dify-api:1.16.1\n    environment: 5\n"),
            )],
            &["check", "docker-compose.yaml"],
            &["docker-compose.yaml:4", "environment"],
        ),
        case(
            "compose: replicas not a number",
            vec![("docker-compose.yaml", t(&format!("{COMPOSE}    deploy:\n      replicas: many\n")))],
            &["check", "docker-compose.yaml"],
            &["docker-compose.yaml:7", "replicas"],
        ),
        case(
            "compose: missing required env_file",
            vec![(
                "docker-compose.yaml",
                t("services:\n  api:\n    image: langgenius/dify-api:1.16.1\n    env_file: [./api.env]\n"),
            )],
            &["check", "docker-compose.yaml"],
            &["docker-compose.yaml:4", "api.env", "required: false"],
        ),
        case(
            "kubernetes: replicas not a number",
            vec![(
                "k.yaml",
                t(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  replicas: many\n  template:\n    spec:\n      containers:\n        - {name: a, image: langgenius/dify-api:1.16.1}\n",
                ),
            )],
            &["check", "k.yaml"],
            &["k.yaml:5", "replicas"],
        ),
        case(
            "kubernetes: maxSurge nonsense",
            vec![(
                "k.yaml",
                t(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  strategy: {rollingUpdate: {maxSurge: lots}}\n  template:\n    spec:\n      containers:\n        - {name: a, image: langgenius/dify-api:1.16.1}\n",
                ),
            )],
            &["check", "k.yaml"],
            &["k.yaml:5", "maxSurge"],
        ),
        case(
            "kubernetes: ConfigMap missing",
            vec![(
                "k.yaml",
                t(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          image: langgenius/dify-api:1.16.1\n          envFrom:\n            - configMapRef: {name: absent}\n",
                ),
            )],
            &["check", "k.yaml"],
            &["k.yaml:11", "absent"],
        ),
        case(
            "kubernetes: kind List",
            vec![("k.yaml", t("apiVersion: v1\nkind: List\nitems: []\n"))],
            &["check", "k.yaml"],
            &["k.yaml:1", "List"],
        ),
        case("missing file", vec![], &["check", "absent.env"], &["absent.env", "no such file"]),
        case(
            "folder where a file is expected",
            vec![("dir/x", t(""))],
            &["check", "--env-file", "dir", "."],
            &["dir", "is a folder"],
        ),
        case("empty folder", vec![("empty/.keep", t(""))], &["check", "empty"], &["empty", "no .env, compose"]),
        case(
            "unknown file type",
            vec![("notes.txt", t("just prose\n"))],
            &["check", "notes.txt"],
            &["notes.txt", "not a .env, compose"],
        ),
        case(
            "difyplan.toml: bad TOML",
            vec![(".env", t("A=1\n")), ("difyplan.toml", t("[[allow]\ncode = 1\n"))],
            &["check", ".env", "--config", "difyplan.toml"],
            &["difyplan.toml:1"],
        ),
        case(
            "difyplan.toml: allow without reason",
            vec![(".env", t("A=1\n")), ("difyplan.toml", t("[[allow]]\ncode = \"superuser-app-role\"\n"))],
            &["check", ".env", "--config", "difyplan.toml"],
            &["difyplan.toml", "reason"],
        ),
        case("size: qps not a number", vec![], &["size", "--qps", "abc"], &["invalid value 'abc'"]),
        case(
            "size: profile not UTF-8",
            vec![("p.toml", b"name = \"\xff\"\n".to_vec())],
            &["size", "--qps", "10", "--profile", "p.toml"],
            &["p.toml:1", "UTF-8"],
        ),
        case(
            "size: profile is YAML",
            vec![("p.toml", t("name: chat\nrequest_seconds: 8\n"))],
            &["size", "--qps", "10", "--profile", "p.toml"],
            &["p.toml:1"],
        ),
        case(
            "size: profile with an unknown field",
            vec![("p.toml", t(&format!("{PROFILE}\nlatency = 3\n")))],
            &["size", "--qps", "10", "--profile", "p.toml"],
            &["p.toml:", "unknown field `latency`"],
        ),
        case("size: memory without a unit", vec![], &["size", "--qps", "10", "--pg-memory", "12"], &["--pg-memory"]),
        case(
            "size: memory below PGTune's minimum",
            vec![],
            &["size", "--qps", "10", "--pg-memory", "100MiB"],
            &["512"],
        ),
        case(
            "size: assumption out of range",
            vec![],
            &["size", "--qps", "10", "--assume", "quantile=1.5"],
            &["quantile"],
        ),
        case(
            "conflict: --exit-zero with --fail-on",
            vec![(".env", t("A=1\n"))],
            &["check", ".env", "--exit-zero", "--fail-on", "warning"],
            &["cannot be used with"],
        ),
        case("conflict: matrix --force without --write", vec![], &["matrix", "--force"], &["--write"]),
        case(
            "conflict: matrix --write with --profile",
            vec![],
            &["matrix", "--write", "--profile", "chat"],
            &["cannot be used with"],
        ),
        case("unknown subcommand", vec![], &["plan", "--qps", "5"], &["unrecognized subcommand 'plan'"]),
    ]
}

#[test]
fn bad_inputs_exit_2_with_a_located_message() {
    let all = cases();
    assert!(all.len() >= 30, "the issue asks for at least 30 cases");
    for c in all {
        let dir = tempfile::tempdir().unwrap();
        for (path, bytes) in &c.files {
            let p: PathBuf = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
        }
        let args: Vec<String> = c.args.iter().map(|s| s.to_string()).collect();
        let started = Instant::now();
        let (code, stderr, stdout) = run_limited(dir.path(), &args, false);
        assert_eq!(code, 2, "{}: exit {code}\nstderr: {stderr}\nstdout: {stdout}", c.name);
        for e in &c.expect {
            assert!(stderr.contains(e), "{}: expected `{e}` in: {stderr}", c.name);
        }
        assert!(!stderr.contains("panicked"), "{}: panicked", c.name);
        assert!(started.elapsed() < Duration::from_secs(10), "{}: took {:?}", c.name, started.elapsed());
    }
}

/// A file the user cannot read. Root reads anything, so as root the case runs as `nobody`.
#[test]
fn unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret.env");
    std::fs::write(&file, "A=1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    if is_root() {
        // `nobody` must reach the folder through its parents (TMPDIR may be private).
        let blocked = dir
            .path()
            .ancestors()
            .skip(1)
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 == 0));
        assert!(
            blocked.is_none(),
            "{} is not reachable by nobody because of {}: point TMPDIR elsewhere",
            dir.path().display(),
            blocked.unwrap().display()
        );
    }
    let (code, stderr, _) = run_limited(dir.path(), &["check".into(), "secret.env".into()], is_root());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("secret.env") && stderr.contains("permission denied"), "{stderr}");
}
