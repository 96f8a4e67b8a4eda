//! Dify releases: every 1.x release is planned and read with its own row of the release table
//! (docs/model.md §3a), from `--dify-version` and from an image tag alike; a newer release gets
//! the newest row and says so; a 0.x release is refused.

use crate::support::{difyplan, fixture, json};
use std::path::Path;

/// One release per row of the table, with what difyplan must do with it.
struct Row {
    release: &'static str,
    worker_beat: bool,
    api_websocket: bool,
    /// `SQLALCHEMY_MAX_OVERFLOW` goes in the shared `.env` (else on the api's own environment).
    overflow_shared: bool,
    /// The database timeouts are compose keys.
    db_timeouts: bool,
    db_service: &'static str,
    daemon: &'static str,
}

const ROWS: &[Row] = &[
    Row {
        release: "1.6.0",
        worker_beat: false,
        api_websocket: false,
        overflow_shared: false,
        db_timeouts: false,
        db_service: "db",
        daemon: "0.1.3-local",
    },
    Row {
        release: "1.7.2",
        worker_beat: true,
        api_websocket: false,
        overflow_shared: false,
        db_timeouts: false,
        db_service: "db",
        daemon: "0.2.0-local",
    },
    Row {
        release: "1.9.1",
        worker_beat: true,
        api_websocket: false,
        overflow_shared: true,
        db_timeouts: false,
        db_service: "db",
        daemon: "0.3.0-local",
    },
    Row {
        release: "1.9.2",
        worker_beat: true,
        api_websocket: false,
        overflow_shared: true,
        db_timeouts: true,
        db_service: "db",
        daemon: "0.3.3-local",
    },
    Row {
        release: "1.12.0",
        worker_beat: true,
        api_websocket: false,
        overflow_shared: true,
        db_timeouts: true,
        db_service: "db_postgres",
        daemon: "0.5.3-local",
    },
    Row {
        release: "1.14.1",
        worker_beat: true,
        api_websocket: true,
        overflow_shared: true,
        db_timeouts: true,
        db_service: "db_postgres",
        daemon: "0.6.0-local",
    },
    Row {
        release: "1.16.1",
        worker_beat: true,
        api_websocket: true,
        overflow_shared: true,
        db_timeouts: true,
        db_service: "db_postgres",
        daemon: "0.6.10-local",
    },
];

fn components(plan: &serde_json::Value) -> Vec<String> {
    plan["components"].as_array().unwrap().iter().map(|c| c["component"].as_str().unwrap().to_string()).collect()
}

#[test]
fn each_release_is_planned_with_its_own_row() {
    for row in ROWS {
        let r = difyplan(&["size", "--qps", "10", "--format", "json", "--dify-version", row.release]);
        assert_eq!(r.code, 0, "{}: {}", row.release, r.stderr);
        let plan = json(&r);
        assert_eq!(plan["input"]["dify_version"], row.release);
        let names = components(&plan);
        assert_eq!(names.contains(&"worker_beat".to_string()), row.worker_beat, "{}: {names:?}", row.release);
        assert_eq!(names.contains(&"api_websocket".to_string()), row.api_websocket, "{}: {names:?}", row.release);
        assert!(!r.stderr.contains("newer than"), "{}: {}", row.release, r.stderr);
        // On Kubernetes the beat runs whatever the compose file did (the image has `MODE=beat`).
        let k = json(&difyplan(&[
            "size",
            "--qps",
            "10",
            "--format",
            "json",
            "--target",
            "kubernetes",
            "--dify-version",
            row.release,
        ]));
        assert!(components(&k).contains(&"worker_beat".to_string()), "{}", row.release);

        let env = difyplan(&["size", "--qps", "10", "--format", "env", "--dify-version", row.release]).stdout;
        let shared_overflow = env.lines().any(|l| l.starts_with("SQLALCHEMY_MAX_OVERFLOW="));
        assert_eq!(shared_overflow, row.overflow_shared, "{}:\n{env}", row.release);
        let api_only = env.contains("# api only — extra connections a process may open above the pool size");
        assert_eq!(api_only, !row.overflow_shared, "{}:\n{env}", row.release);
        assert_eq!(env.contains("\nPOSTGRES_STATEMENT_TIMEOUT="), row.db_timeouts, "{}:\n{env}", row.release);
        // api_websocket's process count is a key from 1.16.0 (1.14.1 and 1.15 fix it at 1).
        let amount_key = env.contains("\nAPI_WEBSOCKET_WORKER_AMOUNT=");
        assert_eq!(amount_key, row.release == "1.16.1", "{}:\n{env}", row.release);

        let compose = difyplan(&["render", "compose", "--qps", "10", "--dify-version", row.release, "-o", "-"]);
        assert_eq!(compose.code, 0, "{}: {}", row.release, compose.stderr);
        assert!(
            compose.stdout.contains(&format!("\n  {}:\n", row.db_service)),
            "{}: no `{}` service in\n{}",
            row.release,
            row.db_service,
            compose.stdout
        );
        let k8s = difyplan(&["render", "kubernetes", "--qps", "10", "--dify-version", row.release, "-o", "-"]);
        assert_eq!(k8s.code, 0, "{}: {}", row.release, k8s.stderr);
        assert!(k8s.stdout.contains(&format!("image: \"langgenius/dify-api:{}\"", row.release)), "{}", row.release);
        assert!(
            k8s.stdout.contains(&format!("image: \"langgenius/dify-plugin-daemon:{}\"", row.daemon)),
            "{}: daemon {}",
            row.release,
            row.daemon
        );
    }
}

#[test]
fn a_series_is_its_newest_known_release() {
    let r = difyplan(&["size", "--qps", "10", "--format", "json", "--dify-version", "1.12"]);
    assert_eq!(json(&r)["input"]["dify_version"], "1.12.1");
    let r = difyplan(&["size", "--qps", "10", "--format", "json", "--dify-version", "v1.10.1-fix.1"]);
    assert_eq!(json(&r)["input"]["dify_version"], "1.10.1");
}

/// A copy of a real compose project with the dify-api image tag replaced.
fn project(version: &str, tag: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let compose = std::fs::read_to_string(fixture(&format!("{version}/docker-compose.yaml"))).unwrap();
    let compose = compose.replace(&format!("langgenius/dify-api:{version}"), &format!("langgenius/dify-api:{tag}"));
    std::fs::write(dir.path().join("docker-compose.yaml"), compose).unwrap();
    std::fs::copy(fixture(&format!("{version}/env.example")), dir.path().join(".env")).unwrap();
    dir
}

fn check(dir: &Path, extra: &[&str]) -> crate::support::Run {
    let mut args = vec!["check", dir.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    difyplan(&args)
}

fn codes(v: &serde_json::Value) -> Vec<String> {
    v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
}

#[test]
fn image_tags_and_the_flag_agree() {
    // Real compose files of both layouts, run with releases of several rows.
    for (layout, tag) in [("1.9.1", "1.6.0"), ("1.9.1", "1.12.0"), ("1.16.1", "1.14.1"), ("1.16.1", "1.15.0")] {
        let tagged = check(project(layout, tag).path(), &[]);
        assert!(tagged.code <= 1, "{tag}: {}", tagged.stderr);
        let by_tag = json(&tagged);
        let d = &by_tag["deployments"][0]["deployment"];
        assert_eq!(d["version"], tag);
        assert_eq!(d["version_source"]["what"], "image tag of langgenius/dify-api", "{}", d["version_source"]);

        // The same file with a tag that names no release, and the release as the flag.
        let flagged = check(project(layout, "latest").path(), &["--dify-version", tag]);
        assert!(flagged.code <= 1, "{tag}: {}", flagged.stderr);
        let by_flag = json(&flagged);
        let f = &by_flag["deployments"][0]["deployment"];
        assert_eq!(f["version"], tag);
        assert_eq!(f["version_source"]["flag"], "--dify-version");
        assert_eq!(by_tag["deployments"][0]["budget"], by_flag["deployments"][0]["budget"], "{tag}");
        assert_eq!(codes(&by_tag), codes(&by_flag), "{tag}");
        assert!(!codes(&by_tag).contains(&"dify-version-newer".to_string()), "{tag}");
    }
}

#[test]
fn a_newer_release_gets_the_newest_row_and_says_so() {
    let newest = json(&check(project("1.16.1", "1.16.1").path(), &[]));
    let r = check(project("1.16.1", "1.17.0").path(), &[]);
    assert!(r.code <= 1, "{}", r.stderr);
    let newer = json(&r);
    assert_eq!(newer["deployments"][0]["deployment"]["version"], "1.17.0");
    assert_eq!(newer["deployments"][0]["budget"], newest["deployments"][0]["budget"]);
    let note = newer["findings"].as_array().unwrap().iter().find(|f| f["code"] == "dify-version-newer");
    let note = note.unwrap_or_else(|| panic!("no dify-version-newer in {}", newer["findings"]));
    assert_eq!(note["severity"], "note");
    assert!(note["message"].as_str().unwrap().contains("1.17.0"), "{note}");
    assert!(note["message"].as_str().unwrap().contains("1.16.1"), "{note}");
    // The note changes no verdict: the same codes besides it.
    let mut rest = codes(&newer);
    rest.retain(|c| c != "dify-version-newer");
    assert_eq!(rest, codes(&newest));

    // size and render: the newest row's plan and a note line on stderr.
    let r = difyplan(&["size", "--qps", "10", "--format", "json", "--dify-version", "1.17"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("note: Dify 1.17.0 is newer than the releases difyplan knows"), "{}", r.stderr);
    let plan = json(&r);
    assert_eq!(plan["input"]["dify_version"], "1.17.0");
    let newest = json(&difyplan(&["size", "--qps", "10", "--format", "json", "--dify-version", "1.16.1"]));
    assert_eq!(components(&plan), components(&newest));
    assert_eq!(plan["budget"], newest["budget"]);
    let r = difyplan(&["render", "env", "--qps", "10", "--dify-version", "1.17", "-o", "-"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("note: Dify 1.17.0 is newer"), "{}", r.stderr);
}

#[test]
fn a_zero_x_release_is_refused_not_read_as_the_latest() {
    let dir = project("1.9.1", "0.15.3");
    let r = check(dir.path(), &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let text = std::fs::read_to_string(dir.path().join("docker-compose.yaml")).unwrap();
    let line = text.lines().position(|l| l.contains("dify-api:0.15.3")).unwrap() + 1;
    assert!(r.stderr.contains(&format!("docker-compose.yaml:{line}: image tag `0.15.3`")), "{}", r.stderr);
    assert!(r.stderr.contains("0.x release") && r.stderr.contains("1.x"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    // Stating the release difyplan should read it as is the way out.
    let r = check(dir.path(), &["--dify-version", "1.9.1"]);
    assert!(r.code <= 1, "{}", r.stderr);
    assert_eq!(json(&r)["deployments"][0]["deployment"]["version"], "1.9.1");

    for v in ["0.15.3", "0.6"] {
        let r = difyplan(&["size", "--qps", "10", "--dify-version", v]);
        assert_eq!(r.code, 2, "{v}");
        assert!(r.stderr.contains(&format!("Dify {v} is a 0.x release")), "{}", r.stderr);
    }
    let r = difyplan(&["size", "--qps", "10", "--dify-version", "2.0.0-beta.2"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("1.9.0"), "{}", r.stderr);
}

#[test]
fn what_a_release_does_not_have_is_refused_with_the_first_that_has_it() {
    let r = difyplan(&["size", "--qps", "10", "--dify-version", "1.11.1", "--workflow-log-store", "logstore"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("1.11.2"), "{}", r.stderr);
    let r = difyplan(&["size", "--qps", "10", "--dify-version", "1.11.2", "--workflow-log-store", "logstore"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = difyplan(&["size", "--qps", "10", "--dify-version", "1.7.2", "--workflow-log-store", "celery"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("1.8.0"), "{}", r.stderr);
    let r = difyplan(&["size", "--qps", "10", "--dify-version", "1.10.0", "--db-type", "mysql"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("1.10.1"), "{}", r.stderr);
    let r = difyplan(&["size", "--qps", "10", "--dify-version", "1.10.1", "--db-type", "mysql"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn helm_values_read_the_release_from_the_tag_or_the_charts_default_image() {
    let values = |tag: Option<&str>| {
        let image = tag.map(|t| format!("  image:\n    tag: {t}\n")).unwrap_or_default();
        crate::support::folder(&[(
            "values.yaml",
            &format!("api:\n  replicaCount: 1\n{image}worker:\n  replicaCount: 1\n"),
        )])
    };
    let read = |dir: &tempfile::TempDir, chart: &str| {
        let path = dir.path().join("values.yaml");
        difyplan(&["check", path.to_str().unwrap(), "--chart", chart, "--format", "json"])
    };
    // A tag of any row is that release, at its line.
    let dir = values(Some("1.12.0"));
    let r = read(&dir, "douban@0.7.0");
    assert!(r.code <= 1, "{}", r.stderr);
    let d = &json(&r)["deployments"][0]["deployment"];
    assert_eq!(d["version"], "1.12.0");
    assert_eq!(d["version_source"]["line"], 4, "{}", d["version_source"]);
    // No tag: the chart version's default image (douban 0.7 ships 1.9.1).
    let r = read(&values(None), "douban@0.7.0");
    assert_eq!(json(&r)["deployments"][0]["deployment"]["version"], "1.9.1");
    // A 0.x tag, or a chart version whose default image is 0.x (douban 0.5: Dify 0.6.11), is refused.
    let r = read(&values(Some("0.15.3")), "douban@0.7.0");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("values.yaml:4: image tag `0.15.3`"), "{}", r.stderr);
    let r = read(&values(None), "douban@0.5.0");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("values.yaml: douban") && r.stderr.contains("Dify 0.6.11"), "{}", r.stderr);
    // Stating the release is the way out.
    let dir = values(None);
    let path = dir.path().join("values.yaml");
    let r = difyplan(&["check", path.to_str().unwrap(), "--chart", "douban@0.5.0", "--dify-version", "1.9.1"]);
    assert!(r.code <= 1, "{}", r.stderr);
}

/// `tests/data/dify/<release>/<file>`: real files of releases the shared fixtures do not cover.
fn release_file(rest: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dify").join(rest)
}

fn component<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let all = v["deployments"][0]["deployment"]["components"].as_array().unwrap();
    all.iter().find(|c| c["component"] == name).unwrap_or_else(|| panic!("no {name} in {all:?}"))
}

#[test]
fn a_real_1_6_compose_file_runs_no_beat_and_passes_no_overflow_from_env() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(release_file("1.6.0/docker-compose.yaml"), dir.path().join("docker-compose.yaml")).unwrap();
    // The operator sets both keys in .env; 1.6.0's x-shared-env lists only the pool size.
    std::fs::write(dir.path().join(".env"), "SQLALCHEMY_POOL_SIZE=20\nSQLALCHEMY_MAX_OVERFLOW=50\n").unwrap();
    let r = check(dir.path(), &[]);
    assert!(r.code <= 1, "{}", r.stderr);
    let v = json(&r);
    let d = &v["deployments"][0]["deployment"];
    assert_eq!(d["version"], "1.6.0");
    let names: Vec<&str> =
        d["components"].as_array().unwrap().iter().map(|c| c["component"].as_str().unwrap()).collect();
    assert_eq!(names, ["api", "worker", "plugin_daemon"]);
    assert_eq!(component(&v, "api")["pool_size"]["value"], 20);
    assert_eq!(component(&v, "api")["max_overflow"]["value"], 10);
    assert_eq!(component(&v, "api")["max_overflow"]["source"]["kind"], "default");
    // api (20+10) + worker (20+10) + the daemon's 30.
    assert_eq!(v["deployments"][0]["budget"]["demand"], 90);

    // render for that file: no worker_beat, the overflow on the api's own environment.
    let r = difyplan(&[
        "render",
        "compose",
        "--qps",
        "10",
        "--compose-file",
        release_file("1.6.0/docker-compose.yaml").to_str().unwrap(),
        "-o",
        "-",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("runs Dify 1.6.0: planning for 1.6.0"), "{}", r.stderr);
    assert!(!r.stdout.contains("worker_beat:"), "{}", r.stdout);
    assert!(r.stdout.contains("\n  db:\n"), "{}", r.stdout);
    let api = r.stdout.split("\n  api:\n").nth(1).unwrap().split("\n  worker:\n").next().unwrap();
    assert!(api.contains("SQLALCHEMY_MAX_OVERFLOW"), "{api}");
}

#[test]
fn a_real_1_14_1_compose_file_fixes_api_websocket_at_one_process() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(release_file("1.14.1/docker-compose.yaml"), dir.path().join("docker-compose.yaml")).unwrap();
    let mut env = std::fs::read_to_string(release_file("1.14.1/env.example")).unwrap();
    env.push_str("API_WEBSOCKET_WORKER_AMOUNT=4\n");
    std::fs::write(dir.path().join(".env"), env).unwrap();
    let r = check(dir.path(), &[]);
    assert!(r.code <= 1, "{}", r.stderr);
    let v = json(&r);
    assert_eq!(v["deployments"][0]["deployment"]["version"], "1.14.1");
    let ws = component(&v, "api_websocket");
    assert_eq!(ws["processes"]["value"], 1, "{ws}");
    assert!(ws["processes"]["source"]["path"].as_str().unwrap().ends_with("docker-compose.yaml"), "{ws}");
    // Dify's defaults: api, api_websocket, worker and beat at 30 + 10, the daemon's 30; the
    // .env.example's max_connections 200.
    assert_eq!(v["deployments"][0]["budget"]["demand"], 190);
    assert_eq!(v["deployments"][0]["deployment"]["max_connections"]["value"], 200);
}

#[test]
fn a_env_to_patch_names_the_rows_its_keys_belong_to() {
    let dir = tempfile::tempdir().unwrap();
    let patch = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        difyplan(&["render", "env", "--qps", "10", "--patch", path.to_str().unwrap()])
    };
    // 1.14.1's real .env.example: api_websocket's connections, not yet its process count.
    let r = patch("a.env", &std::fs::read_to_string(release_file("1.14.1/env.example")).unwrap());
    assert!(r.code <= 1, "{}", r.stderr);
    assert!(r.stderr.contains("is a Dify 1.15.0 .env: planning for 1.15.0"), "{}", r.stderr);
    // The workflow repositories without the overflow key: 1.7.
    let r = patch("b.env", "SQLALCHEMY_POOL_SIZE=30\nCORE_WORKFLOW_EXECUTION_REPOSITORY=x\n");
    assert!(r.stderr.contains("is a Dify 1.7.2 .env"), "{}", r.stderr);
    // ... with it: 1.8.0 to 1.14.0, planned as 1.9.1.
    let r = patch("c.env", "SQLALCHEMY_MAX_OVERFLOW=10\nCORE_WORKFLOW_EXECUTION_REPOSITORY=x\n");
    assert!(r.stderr.contains("is a Dify 1.9.1 .env"), "{}", r.stderr);
    // 1.16.1's: the default release, no note.
    let r = patch("d.env", &std::fs::read_to_string(fixture("1.16.1/env.example")).unwrap());
    assert!(!r.stderr.contains(".env: planning for"), "{}", r.stderr);
}

#[test]
fn a_lone_env_is_read_as_its_releases_compose_file_would_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let read = |text: &str, extra: &[&str]| {
        let path = dir.path().join(".env");
        std::fs::write(&path, text).unwrap();
        let mut args = vec!["check", path.to_str().unwrap(), "--format", "json"];
        args.extend_from_slice(extra);
        let r = difyplan(&args);
        assert!(r.code <= 1, "{}", r.stderr);
        json(&r)
    };
    let names = |v: &serde_json::Value| -> Vec<String> {
        let all = v["deployments"][0]["deployment"]["components"].as_array().unwrap();
        all.iter().map(|c| c["component"].as_str().unwrap().to_string()).collect()
    };
    // 1.6.0: no beat, and the overflow in .env never reaches a container.
    let v = read("SQLALCHEMY_POOL_SIZE=20\nSQLALCHEMY_MAX_OVERFLOW=50\n", &["--dify-version", "1.6.0"]);
    assert_eq!(names(&v), ["api", "worker", "plugin_daemon"]);
    assert_eq!(component(&v, "api")["max_overflow"]["value"], 10);
    // 1.8.0: the beat, and the overflow from .env.
    let v = read("SQLALCHEMY_POOL_SIZE=20\nSQLALCHEMY_MAX_OVERFLOW=50\n", &["--dify-version", "1.8.0"]);
    assert_eq!(names(&v), ["api", "worker", "worker_beat", "plugin_daemon"]);
    assert_eq!(component(&v, "api")["max_overflow"]["value"], 50);
    // The keys say the release: the workflow repositories without the overflow key are 1.7.
    let v = read("CORE_WORKFLOW_EXECUTION_REPOSITORY=x\n", &[]);
    let d = &v["deployments"][0]["deployment"];
    assert_eq!(d["version"], "1.7.2");
    assert!(d["version_source"]["what"].as_str().unwrap().contains("Dify 1.7"), "{}", d["version_source"]);
    // 1.15's api_websocket runs one process whatever API_WEBSOCKET_WORKER_AMOUNT says; 1.16's takes it.
    let ws = "COMPOSE_PROFILES=collaboration\nAPI_WEBSOCKET_WORKER_AMOUNT=4\nAPI_WEBSOCKET_WORKER_CONNECTIONS=500\n";
    let v = read(ws, &["--dify-version", "1.15.0"]);
    assert_eq!(component(&v, "api_websocket")["processes"]["value"], 1);
    let v = read(ws, &[]);
    assert_eq!(v["deployments"][0]["deployment"]["version"], "1.16.1");
    assert_eq!(component(&v, "api_websocket")["processes"]["value"], 4);
}

#[test]
fn a_mirrored_or_interpolated_api_image_names_its_release() {
    for (image, env) in [
        ("registry.example.com:5000/langgenius/dify-api:1.12.0", ""),
        ("langgenius/dify-api:${DIFY_VERSION:-1.9.1}", "DIFY_VERSION=1.12.0\n"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let compose = std::fs::read_to_string(fixture("1.9.1/docker-compose.yaml"))
            .unwrap()
            .replace("langgenius/dify-api:1.9.1", image);
        std::fs::write(dir.path().join("docker-compose.yaml"), compose).unwrap();
        let mut text = std::fs::read_to_string(fixture("1.9.1/env.example")).unwrap();
        text.push_str(env);
        std::fs::write(dir.path().join(".env"), text).unwrap();
        let r = check(dir.path(), &[]);
        assert!(r.code <= 1, "{image}: {}", r.stderr);
        assert_eq!(json(&r)["deployments"][0]["deployment"]["version"], "1.12.0", "{image}");
    }
}
