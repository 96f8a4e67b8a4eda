//! Hardening: a table of bad inputs across the commands. Each exits 2, within bounded
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
        case("conflict: matrix --force without --write", vec![], &["matrix", "--force"], &["--write"]),
        case(
            "conflict: matrix --write with --profile",
            vec![],
            &["matrix", "--write", "--profile", "chat"],
            &["cannot be used with"],
        ),
        case("unknown subcommand", vec![], &["plan", "--qps", "5"], &["unrecognized subcommand 'plan'"]),
        // Absurd but parseable numbers: a located refusal, never a plan with `inf` or a wrapped headroom.
        case(
            "env: pool of 2^64 - 1",
            vec![(".env", t("SQLALCHEMY_POOL_SIZE=18446744073709551615\n"))],
            &["check", ".env"],
            &[".env:1", "SQLALCHEMY_POOL_SIZE", "larger than 100000"],
        ),
        case(
            "env: max_connections above PostgreSQL's ceiling",
            vec![(".env", t("POSTGRES_MAX_CONNECTIONS=9999999999\n"))],
            &["check", ".env"],
            &[".env:1", "larger than 262143"],
        ),
        case(
            "compose: replicas beyond 64 bits",
            vec![(
                "docker-compose.yaml",
                t(&format!("{COMPOSE}    deploy:\n      replicas: 99999999999999999999999\n")),
            )],
            &["check", "docker-compose.yaml"],
            &["docker-compose.yaml:7", "larger than"],
        ),
        case(
            "kubernetes: a million replicas",
            vec![(
                "k.yaml",
                t(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  replicas: 1000000\n  template:\n    spec:\n      containers:\n        - {name: a, image: langgenius/dify-api:1.16.1}\n",
                ),
            )],
            &["check", "k.yaml"],
            &["k.yaml:5", "larger than 100000"],
        ),
        case(
            "size: profile value that makes the plan infinite",
            vec![(
                "p.toml",
                t(&PROFILE
                    .lines()
                    .map(|l| {
                        if l.starts_with("workflow_log_bytes") {
                            "workflow_log_bytes = 1e300".to_string()
                        } else {
                            l.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")),
            )],
            &["size", "--qps", "10", "--profile", "p.toml", "--format", "json"],
            &["p.toml:", "workflow_log_bytes", "1e300"],
        ),
        // Bounded work.
        case(
            "compose: more than 1,000 services",
            vec![("docker-compose.yaml", t(&many_services(1_001)))],
            &["check", "docker-compose.yaml"],
            &["docker-compose.yaml:1", "more than 1000 services"],
        ),
        case(
            "yaml: more than 200,000 values",
            vec![("docker-compose.yaml", t(&format!("{COMPOSE}x-items:\n{}", "  - 1\n".repeat(200_001))))],
            &["check", "docker-compose.yaml"],
            &["docker-compose.yaml:", "more than 200000 YAML values"],
        ),
        case(
            "env: more than 20,000 assignments",
            vec![(".env", t(&(0..20_001).map(|i| format!("K{i}=1\n")).collect::<String>()))],
            &["check", ".env"],
            &[".env:20001", "more than 20000 assignments"],
        ),
        case(
            "env: references that double at each line",
            vec![(
                ".env",
                t(&format!(
                    "A={}\n{}",
                    "x".repeat(1000),
                    (1..14)
                        .map(|i| format!(
                            "A{i}=${{A{p}}}${{A{p}}}\n",
                            p = if i == 1 { String::new() } else { (i - 1).to_string() }
                        ))
                        .collect::<String>()
                )),
            )],
            &["check", ".env"],
            &[".env:12", "expands to more than 1 MiB"],
        ),
        case("a device as input", vec![], &["check", "--env-file", "/dev/zero", "."], &["/dev/zero", "a device"]),
    ]
}

/// A compose file with `n` Dify api services.
fn many_services(n: usize) -> String {
    let mut s = String::from("services:\n");
    for i in 0..n {
        s.push_str(&format!("  api{i}:\n    image: langgenius/dify-api:1.16.1\n"));
    }
    s
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

// ---- hostile and careless inputs: secrets, files, bounded work, output injection ----

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo {}", path.display());
}

/// A Dify `.env` with secrets beside the sizing keys, and at its end.
const SECRET_ENV: &str = "SECRET_KEY=sk-Unique-Secret-Key-1\nDB_USERNAME=dify\nDB_PASSWORD=Db-Pass-Word-2\n\
SQLALCHEMY_POOL_SIZE=30\nCELERY_BROKER_URL=redis://:Broker-Pass-3@redis:6379/1\nSERVER_WORKER_AMOUNT=1\n\
OPENAI_API_KEY=Api-Key-Value-4\n";
const SECRETS: &[&str] = &["sk-Unique-Secret-Key-1", "Db-Pass-Word-2", "Broker-Pass-3", "Api-Key-Value-4"];

fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "{what} shows the secret {s}:\n{text}");
    }
}

#[test]
fn patch_diff_shows_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), SECRET_ENV).unwrap();
    let (code, stderr, stdout) =
        run_limited(dir.path(), &args(&["render", "env", "--qps", "50", "--patch", ".env"]), false);
    assert_eq!(code, 0, "{stderr}");
    assert_no_secret("the diff", &format!("{stdout}{stderr}"), SECRETS);
    // The context is still there, with the values hidden.
    assert!(stdout.contains(" DB_PASSWORD=***") && stdout.contains("redis://:***@redis"), "{stdout}");
    assert!(stdout.contains("+SQLALCHEMY_POOL_SIZE="), "{stdout}");
}

#[test]
fn errors_quote_no_secret() {
    let cases: &[(&str, &str, &str)] = &[
        ("a space instead of =", "DB_USERNAME=dify\nDB_PASSWORD S3cret-Space\n", ".env:2"),
        ("a password with ${", "DB_PASSWORD=ab${S3cret-Brace\n", ".env:1"),
        ("text after a closing quote", "DB_PASSWORD=\"ab\" S3cret-After\n", ".env:1"),
        (
            "a sizing key interpolating a secret",
            "DB_PASSWORD=S3cret-Interp\nPOSTGRES_MAX_CONNECTIONS=${DB_PASSWORD}\n",
            ".env:2",
        ),
        (
            "a pool interpolating a secret inside text",
            "REDIS_PASSWORD=S3cret-Mixed\nSQLALCHEMY_POOL_SIZE=x${REDIS_PASSWORD}y\n",
            ".env:2",
        ),
    ];
    for (name, text, at) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), text).unwrap();
        let (code, stderr, stdout) = run_limited(dir.path(), &args(&["check", ".env"]), false);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.contains(at), "{name}: no location {at}: {stderr}");
        assert!(stderr.contains(" — "), "{name}: says what to do: {stderr}");
        assert!(!format!("{stdout}{stderr}").contains("S3cret"), "{name}: {stderr}");
    }
}

#[test]
fn compose_secrets_stay_out_of_every_format() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "DB_PASSWORD=Compose-Secret-5\nPOOL=x${DB_PASSWORD}\n").unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yaml"),
        "services:\n  api:\n    image: langgenius/dify-api:1.16.1\n    environment:\n      DB_PASSWORD: ${DB_PASSWORD}\n      SQLALCHEMY_MAX_OVERFLOW: ${POOL}\n",
    )
    .unwrap();
    for format in ["human", "json", "github", "sarif"] {
        let (code, stderr, stdout) = run_limited(dir.path(), &args(&["check", ".", "--format", format]), false);
        assert_eq!(code, 2, "{format}: {stderr}");
        assert!(stderr.contains("SQLALCHEMY_MAX_OVERFLOW=***"), "{format}: {stderr}");
        assert_no_secret(format, &format!("{stdout}{stderr}"), &["Compose-Secret-5"]);
    }
}

#[test]
fn write_goes_through_a_linked_env_and_keeps_the_link() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("shared")).unwrap();
    std::fs::create_dir_all(dir.path().join("project")).unwrap();
    std::fs::write(dir.path().join("shared/dify.env"), SECRET_ENV).unwrap();
    std::os::unix::fs::symlink("../shared/dify.env", dir.path().join("project/.env")).unwrap();
    // A temporary copy a killed run left behind (a process id that cannot exist).
    let stale = dir.path().join("shared/.dify.env.difyplan-3999999999-0.tmp");
    std::fs::write(&stale, SECRET_ENV).unwrap();
    let (code, stderr, _) =
        run_limited(dir.path(), &args(&["render", "env", "--qps", "50", "--patch", "project/.env", "--write"]), false);
    assert_eq!(code, 0, "{stderr}");
    let link = std::fs::symlink_metadata(dir.path().join("project/.env")).unwrap();
    assert!(link.file_type().is_symlink(), "the link was replaced by a file");
    let written = std::fs::read_to_string(dir.path().join("shared/dify.env")).unwrap();
    assert!(!written.contains("SQLALCHEMY_POOL_SIZE=30\n"), "the target kept the old value:\n{written}");
    assert_eq!(std::fs::read_to_string(dir.path().join("shared/dify.env.bak")).unwrap(), SECRET_ENV);
    assert!(!stale.exists(), "the stale temporary file is still there");
    assert_no_secret("the write", &stderr, SECRETS);
}

#[test]
fn write_keeps_owner_group_and_mode() {
    if !is_root() {
        return; // only root can give a file to another user
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    std::fs::write(&env, SECRET_ENV).unwrap();
    std::os::unix::fs::chown(&env, Some(1234), Some(2345)).unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, stderr, _) =
        run_limited(dir.path(), &args(&["render", "env", "--qps", "50", "--patch", ".env", "--write"]), false);
    assert_eq!(code, 0, "{stderr}");
    for p in [env.clone(), dir.path().join(".env.bak")] {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1234, 2345, 0o640), "{}", p.display());
    }
}

/// A write refused after the backup was made (another user's file in a sticky folder) leaves
/// no backup and no temporary file, and the message says what to do.
#[test]
fn failed_write_leaves_no_backup() {
    if !is_root() {
        return; // the refusal needs a file of another user
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let blocked =
        dir.path().ancestors().skip(1).any(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 == 0));
    if blocked {
        return; // `nobody` cannot reach TMPDIR here (see unreadable_file)
    }
    let env = dir.path().join(".env");
    std::fs::write(&env, SECRET_ENV).unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, stderr, _) =
        run_limited(dir.path(), &args(&["render", "env", "--qps", "50", "--patch", ".env", "--write"]), true);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("nothing was written") && stderr.contains("not permitted"), "{stderr}");
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "difyplan-bin" && n != ".env")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(std::fs::read_to_string(&env).unwrap(), SECRET_ENV);
}

#[test]
fn templates_export_stays_inside_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
    std::os::unix::fs::symlink("../elsewhere", dir.path().join("out/helm")).unwrap();
    let (code, stderr, _) = run_limited(dir.path(), &args(&["templates", "export", "out"]), false);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("out/helm") && stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.path().join("elsewhere")).unwrap().count(), 0, "wrote outside the folder");
}

#[test]
fn fifos_never_block() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("pipe.env"));
    for a in [
        args(&["check", "pipe.env"]),
        args(&["check", "--env-file", "pipe.env", "."]),
        args(&["render", "env", "--qps", "10", "--patch", "pipe.env"]),
        args(&["size", "--qps", "10", "--profile", "pipe.env"]),
    ] {
        let (code, stderr, _) = run_limited(dir.path(), &a, false);
        assert_eq!(code, 2, "{a:?}: {stderr}");
        assert!(stderr.contains("pipe.env") && stderr.contains("FIFO"), "{a:?}: {stderr}");
    }
    // Found in a walked folder, a FIFO is skipped; the real .env is read.
    let walked = tempfile::tempdir().unwrap();
    mkfifo(&walked.path().join(".env"));
    std::fs::create_dir(walked.path().join("real")).unwrap();
    std::fs::write(walked.path().join("real/.env"), "SQLALCHEMY_POOL_SIZE=5\n").unwrap();
    let (code, stderr, stdout) = run_limited(walked.path(), &args(&["check", ".", "--format", "json"]), false);
    assert!(code < 2, "{stderr}");
    assert!(stdout.contains("real/.env"), "{stdout}");
}

#[test]
fn walks_count_each_file_once_and_stay_in_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "SQLALCHEMY_POOL_SIZE=5\n").unwrap();
    std::os::unix::fs::symlink(".", dir.path().join("loop")).unwrap();
    std::os::unix::fs::symlink("/", dir.path().join("root")).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::os::unix::fs::symlink("..", dir.path().join("sub/up")).unwrap();
    let (code, stderr, stdout) = run_limited(dir.path(), &args(&["check", ".", "--format", "json"]), false);
    assert!(code < 2, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let n = report["deployments"].as_array().map_or(0, Vec::len);
    assert_eq!(n, 1, "the one .env was read {n} times");
}

#[test]
fn link_loops_and_long_paths_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("b.env", dir.path().join("a.env")).unwrap();
    std::os::unix::fs::symlink("a.env", dir.path().join("b.env")).unwrap();
    let (code, stderr, _) = run_limited(dir.path(), &args(&["check", "--env-file", "a.env", "."]), false);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("a.env") && stderr.contains("loop of symbolic links"), "{stderr}");
    let long = format!("{}.env", "x".repeat(300));
    let (code, stderr, _) = run_limited(dir.path(), &args(&["check", "--env-file", &long, "."]), false);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("too long"), "{stderr}");
}

#[test]
fn control_characters_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    // A value with a newline and a GitHub command, in a file whose name holds an ANSI escape.
    let name = "evil\x1b[2J.env";
    std::fs::write(dir.path().join(name), "SQLALCHEMY_POOL_SIZE=30\nDB_USERNAME=\"x\\n::error file=a.py::owned\"\n")
        .unwrap();
    for format in ["human", "github"] {
        let (code, stderr, stdout) = run_limited(dir.path(), &args(&["check", ".", "--format", format]), false);
        assert!(code < 2, "{format}: {stderr}");
        let all = format!("{stdout}{stderr}");
        assert!(!all.contains('\x1b'), "{format}: an escape sequence reached the output:\n{all}");
        assert!(!all.lines().any(|l| l.starts_with("::error file=a.py")), "{format}: injected a command:\n{all}");
    }
    // In an error message as well.
    std::fs::write(dir.path().join(name), "A=\"open\n").unwrap();
    let (code, stderr, _) = run_limited(dir.path(), &args(&["check", name]), false);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains('\x1b') && stderr.contains("evil\\e[2J.env:1"), "{stderr}");
}
