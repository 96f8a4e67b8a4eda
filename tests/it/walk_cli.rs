//! `check` walking repository-sized trees: a tree thousands of folders deep is walked to the end
//! in bounded time, folders a `.gitignore` excludes and `.git/` are not read, and a git-ignored
//! `.env` (the usual case for a deployment's settings) still is.

use std::ffi::CString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest a walk in these tests may take before the run is stopped and the test fails.
const BOUND: Duration = Duration::from_secs(20);

/// `check ARGS` in `dir`, stopped at [`BOUND`]: (exit code, stdout, stderr, time taken).
fn check(dir: &Path, args: &[&str]) -> (i32, String, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_difyplan"))
        .arg("check")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn difyplan");
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > BOUND {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        took,
    )
}

/// Makes `levels` nested folders `d` under `dir` (deeper than a path may be long: each step is
/// made relative to the last folder's descriptor), with `.env` holding `env` at depth `env_at`.
fn deep_tree(dir: &Path, levels: usize, env_at: usize, env: &str) {
    let name = CString::new("d").unwrap();
    let root = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: plain descriptor calls on C strings that outlive them; every descriptor is closed.
    unsafe {
        let mut fd = libc::open(root.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        assert!(fd >= 0, "open {}", dir.display());
        for depth in 1..=levels {
            assert_eq!(libc::mkdirat(fd, name.as_ptr(), 0o755), 0, "mkdir at depth {depth}");
            let next = libc::openat(fd, name.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
            assert!(next >= 0, "open at depth {depth}");
            libc::close(fd);
            fd = next;
            if depth == env_at {
                let file = CString::new(".env").unwrap();
                let f = libc::openat(fd, file.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644);
                assert!(f >= 0);
                assert_eq!(libc::write(f, env.as_ptr().cast(), env.len()), env.len() as isize);
                libc::close(f);
            }
        }
        libc::close(fd);
    }
}

#[test]
fn a_tree_three_thousand_folders_deep_is_walked_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    deep_tree(dir.path(), 3_000, 40, "SQLALCHEMY_POOL_SIZE=5\n");
    let (code, stdout, stderr, took) = check(dir.path(), &[".", "--format", "json"]);
    assert!(took < BOUND, "the walk was stopped after {took:?}");
    assert!(code < 2, "exit {code}: {stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["deployments"].as_array().map_or(0, Vec::len), 1, "the .env at depth 40: {stdout}");
}

#[test]
fn ignored_folders_and_git_are_not_read_but_an_ignored_env_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A deployment folder whose .env is git-ignored, as a deployment's secrets are.
    std::fs::create_dir_all(d.join("deploy")).unwrap();
    std::fs::write(d.join("deploy/.env"), "SQLALCHEMY_POOL_SIZE=5\n").unwrap();
    std::fs::write(d.join(".gitignore"), "/build-cache/\n.env\n").unwrap();
    // An excluded folder and .git/ hold files that would stop check if read (an unterminated quote).
    for junk in ["build-cache/vendor", ".git/refs"] {
        std::fs::create_dir_all(d.join(junk)).unwrap();
        std::fs::write(d.join(junk).join(".env"), "A=\"open\n").unwrap();
    }
    let (code, stdout, stderr, _) = check(d, &[".", "--format", "json"]);
    assert!(code < 2, "an excluded folder was read: {stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let found = report["deployments"].as_array().cloned().unwrap_or_default();
    assert_eq!(found.len(), 1, "{stdout}");
    assert!(stdout.contains("deploy/.env"), "{stdout}");
    // Named on the command line, an ignored folder is read: the user asked for it.
    let (code, _, stderr, _) = check(d, &["build-cache"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(".env:1"), "{stderr}");
}
