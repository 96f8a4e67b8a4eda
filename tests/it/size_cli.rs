//! `difyplan size` end to end: every built-in profile at the acceptance QPS levels, the three
//! formats, the env keys against Dify's own `.env.example`, and bad input.

use crate::support::{difyplan, fixture, json};
use std::collections::BTreeSet;

const PROFILES: [&str; 4] = ["chat", "workflow", "agent", "benchmark"];

/// `size --qps 10, 100, 500, 2000` for each built-in profile prints a plan whose
/// worst-case demand fits the usable cap; the JSON's arithmetic adds up.
#[test]
fn acceptance_levels_fit() {
    for profile in PROFILES {
        for qps in ["10", "100", "500", "2000"] {
            for target in ["compose", "kubernetes"] {
                let run =
                    difyplan(&["size", "--qps", qps, "--profile", profile, "--target", target, "--format", "json"]);
                if run.code == 1 {
                    // Only where no single PostgreSQL server could take the plan (its limit is
                    // 262,143): 2,000 QPS of 20-second agent requests on Kubernetes.
                    let v = json(&run);
                    assert!(
                        v["shortfall"]["needed_max_connections"].as_u64().unwrap() > 262_143,
                        "{profile} {qps} {target}: {}",
                        run.stderr
                    );
                    assert!(run.stderr.contains("missing"));
                    assert_eq!((profile, qps, target), ("agent", "2000", "kubernetes"));
                    continue;
                }
                assert_eq!(run.code, 0, "{profile} {qps} {target}: {}", run.stderr);
                let v = json(&run);
                assert_eq!(v["schema_version"], 1);
                let demand = v["budget"]["demand"].as_u64().unwrap();
                let usable = v["budget"]["usable"].as_u64().unwrap();
                assert!(demand <= usable, "{profile} {qps}: {demand} > {usable}");
                let lines: u64 = v["budget"]["lines"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| {
                        l["worst_pods"].as_u64().unwrap()
                            * l["processes"].as_u64().unwrap()
                            * l["per_process_max"].as_u64().unwrap()
                    })
                    .sum();
                let reserves: u64 = v["budget"]["reserves"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["connections"].as_u64().unwrap())
                    .sum();
                assert_eq!(lines + reserves, demand);
                let max = v["database"]["max_connections"].as_u64().unwrap();
                assert_eq!(usable, max - 3, "a dedicated role (the default) loses superuser_reserved_connections");
            }
        }
    }
}

#[test]
fn table_names_every_component_and_the_budget() {
    let run = difyplan(&["size", "--qps", "500"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for word in [
        "api",
        "api_websocket",
        "worker",
        "worker_beat",
        "plugin_daemon",
        "demand",
        "max_connections",
        "usable cap",
        "headroom",
        "efficiency",
    ] {
        assert!(run.stdout.contains(word), "table lacks {word}:\n{}", run.stdout);
    }
    assert!(run.stderr.is_empty(), "a fitting plan prints nothing on stderr: {}", run.stderr);
}

#[test]
fn explain_shows_formulas() {
    let run = difyplan(&["size", "--qps", "500", "--explain"]);
    assert_eq!(run.code, 0);
    for word in ["SERVER_WORKER_CONNECTIONS", "Little's law", "Poisson", "POSTGRES_MAX_CONNECTIONS", "docs/model.md §8"]
    {
        assert!(run.stdout.contains(word), "explain lacks {word}");
    }
}

/// Keys Dify's env files assign (`KEY=` at the start of a line): `.env.example`, and for 1.16.1
/// also `envs/**/*.env.example`, where that release moved most settings.
fn env_example_keys(version: &str) -> BTreeSet<String> {
    fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                files(&p, out);
            } else if p.to_string_lossy().ends_with(".env.example") {
                out.push(p);
            }
        }
    }
    let mut paths = vec![fixture(&format!("{version}/env.example"))];
    files(&fixture(&format!("{version}/envs")), &mut paths);
    let mut keys = BTreeSet::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("fixture");
        keys.extend(
            text.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string())).filter(|k| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            }),
        );
    }
    keys
}

/// Only keys that exist in Dify's `.env.example` or the plugin daemon's documented
/// settings; a misspelt key fails here. Commented per-service lines count too.
#[test]
fn env_keys_exist_in_dify() {
    for (version, extra) in [("1.16.1", &[][..]), ("1.9.1", &["--no-collaboration"][..])] {
        let known = env_example_keys(version);
        assert!(known.contains("SQLALCHEMY_POOL_SIZE"), "fixture parse sanity");
        for profile in PROFILES {
            let mut args = vec![
                "size",
                "--qps",
                "500",
                "--profile",
                profile,
                "--format",
                "env",
                "--dify-version",
                version,
                "--retention-days",
                "30",
            ];
            args.extend_from_slice(extra);
            if version == "1.16.1" {
                args.extend_from_slice(&["--workflow-log-store", "logstore"]);
            } else {
                args.extend_from_slice(&["--workflow-log-store", "celery"]);
            }
            let run = difyplan(&args);
            assert_eq!(run.code, 0, "{}", run.stderr);
            let mut seen = 0;
            for line in run.stdout.lines() {
                let assignment = line.trim_start_matches("# ");
                let Some((key, _)) = assignment.split_once('=') else { continue };
                if !key.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') || key.is_empty() {
                    continue;
                }
                seen += 1;
                assert!(
                    known.contains(key)
                        || difyplan::dify::keys::PLUGIN_DAEMON_DOCUMENTED.contains(&key)
                        || difyplan::dify::keys::API_READS_UNLISTED.contains(&key),
                    "{version}: `{key}` is not a Dify setting"
                );
            }
            assert!(seen >= 10, "{version} {profile}: only {seen} keys");
        }
    }
}

/// The env format carries the same numbers as the JSON.
#[test]
fn env_matches_json() {
    let v = json(&difyplan(&["size", "--qps", "200", "--format", "json"]));
    let env = difyplan(&["size", "--qps", "200", "--format", "env"]).stdout;
    let get = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{k} missing"))
    };
    let api = v["components"].as_array().unwrap().iter().find(|c| c["component"] == "api").unwrap();
    assert_eq!(get("SERVER_WORKER_AMOUNT"), api["processes_per_pod"].to_string());
    assert_eq!(get("SERVER_WORKER_CONNECTIONS"), api["slots_per_process"].to_string());
    assert_eq!(get("SQLALCHEMY_POOL_SIZE"), api["pool_size"].to_string());
    assert_eq!(get("SQLALCHEMY_MAX_OVERFLOW"), api["max_overflow"].to_string());
    assert_eq!(get("POSTGRES_MAX_CONNECTIONS"), v["database"]["max_connections"].to_string());
}

/// A fixed cap that cannot hold the plan: exit 1, the shortfall and the ways out; the env
/// format prints nothing to paste.
#[test]
fn fixed_cap_too_small() {
    let run = difyplan(&["size", "--qps", "500", "--pg-max-connections", "100"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("missing"), "{}", run.stderr);
    assert!(run.stdout.contains("DOES NOT FIT"));
    assert!(run.stdout.contains("ways out"));
    assert!(run.stdout.contains("max_connections ≥"));
    let env = difyplan(&["size", "--qps", "500", "--pg-max-connections", "100", "--format", "env"]);
    assert_eq!(env.code, 1);
    assert!(env.stdout.is_empty(), "an infeasible plan is not printed as an env: {}", env.stdout);
    let v = json(&difyplan(&["size", "--qps", "500", "--pg-max-connections", "100", "--format", "json"]));
    assert_eq!(v["budget"]["fits"], false);
    let missing = v["shortfall"]["missing"].as_u64().unwrap();
    assert_eq!(missing, v["budget"]["demand"].as_u64().unwrap() - 97);
}

/// The highest QPS a fixed cap holds, found by the shortfall search, really fits that cap.
#[test]
fn max_qps_at_cap_fits() {
    let v = json(&difyplan(&[
        "size",
        "--qps",
        "300",
        "--profile",
        "workflow",
        "--pg-max-connections",
        "800",
        "--format",
        "json",
    ]));
    let q = v["shortfall"]["max_qps_at_cap"].as_f64().expect("a cap of 800 holds some QPS");
    let at = difyplan(&[
        "size",
        "--qps",
        &q.to_string(),
        "--profile",
        "workflow",
        "--pg-max-connections",
        "800",
        "--format",
        "json",
    ]);
    assert_eq!(at.code, 0, "{q} QPS should fit: {}", at.stderr);
}

/// A fixed cap that is large enough plans exactly as a free one, with that cap.
#[test]
fn fixed_cap_large_enough() {
    let run = difyplan(&[
        "size",
        "--qps",
        "50",
        "--profile",
        "workflow",
        "--pg-max-connections",
        "5000",
        "--app-role",
        "superuser",
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 0);
    let v = json(&run);
    assert_eq!(v["budget"]["usable"], 5000, "a superuser uses every slot");
    assert_eq!(v["database"]["max_connections_chosen"], false);
}

#[test]
fn profile_overrides_change_the_plan() {
    let base = json(&difyplan(&["size", "--qps", "100", "--profile", "workflow", "--format", "json"]));
    let slow = json(&difyplan(&[
        "size",
        "--qps",
        "100",
        "--profile",
        "workflow",
        "--request-seconds",
        "16",
        "--format",
        "json",
    ]));
    assert_eq!(slow["input"]["profile"]["request_seconds"], 16.0);
    assert!(slow["budget"]["demand"].as_u64() > base["budget"]["demand"].as_u64());
}

#[test]
fn user_profile_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.toml");
    let chat = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/matrices/profiles/chat.toml")).unwrap();
    std::fs::write(&path, chat.replace("name = \"chat\"", "name = \"mine\"")).unwrap();
    let run = difyplan(&["size", "--qps", "20", "--profile", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(json(&run)["input"]["profile"]["name"], "mine");
}

/// Bad input: each exits 2 with one line that names the problem and the fix.
#[test]
fn bad_input_exits_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let chat = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/matrices/profiles/chat.toml")).unwrap();
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, format!("{chat}\nrequest_secs = 3\n")).unwrap();
    let missing = dir.path().join("missing.toml");
    std::fs::write(&missing, chat.lines().filter(|l| !l.starts_with("pg_cpu_ms")).collect::<Vec<_>>().join("\n"))
        .unwrap();
    let negative = dir.path().join("negative.toml");
    std::fs::write(&negative, chat.replace("request_seconds = 8.0", "request_seconds = -2.0")).unwrap();
    let binary = dir.path().join("binary.toml");
    std::fs::write(&binary, b"name = \"x\"\0\xff").unwrap();
    let p = |f: &std::path::Path| f.to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--qps".into(), "0".into()], "above 0"),
        (vec!["--qps".into(), "-5".into()], "above 0"),
        (vec!["--qps".into(), "nan".into()], "not a number"),
        (vec!["--qps".into(), "inf".into()], "not a number"),
        (vec!["--qps".into(), "abc".into()], "invalid value 'abc'"),
        (vec!["--qps".into(), "5000000".into()], "1000000"),
        (vec!["--qps".into(), "10".into(), "--profile".into(), "nope".into()], "unknown profile `nope`"),
        (vec!["--qps".into(), "10".into(), "--profile".into(), p(&unknown)], "unknown field `request_secs`"),
        (vec!["--qps".into(), "10".into(), "--profile".into(), p(&missing)], "missing field `pg_cpu_ms`"),
        (vec!["--qps".into(), "10".into(), "--profile".into(), p(&negative)], "request_seconds"),
        (vec!["--qps".into(), "10".into(), "--profile".into(), p(&binary)], "binary data"),
        (vec!["--qps".into(), "10".into(), "--profile".into(), p(dir.path())], "is a folder"),
        (vec!["--qps".into(), "10".into(), "--profile".into(), p(&dir.path().join("absent.toml"))], "no such file"),
        (vec!["--qps".into(), "10".into(), "--request-seconds".into(), "-1".into()], "request_seconds"),
        (vec!["--qps".into(), "10".into(), "--streaming-share".into(), "1.5".into()], "between 0 and 1"),
        (vec!["--qps".into(), "10".into(), "--api-cpu-ms-blocking".into(), "nan".into()], "finite"),
        (vec!["--qps".into(), "10".into(), "--assume".into(), "quantile=2".into()], "quantile"),
        (vec!["--qps".into(), "10".into(), "--assume".into(), "bogus=1".into()], "unknown key `bogus`"),
        (vec!["--qps".into(), "10".into(), "--assume".into(), "admin_reserve=1.5".into()], "whole number"),
        (vec!["--qps".into(), "10".into(), "--pg-max-connections".into(), "0".into()], "pg-max-connections"),
        (vec!["--qps".into(), "10".into(), "--dify-version".into(), "0.6".into()], "is a 0.x release"),
        (vec!["--qps".into(), "10".into(), "--target".into(), "nomad".into()], "invalid value 'nomad'"),
    ];
    for (args, expect) in cases {
        let mut full = vec!["size".to_string()];
        full.extend(args.clone());
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let run = difyplan(&refs);
        assert_eq!(run.code, 2, "{args:?}: exit {} stderr {}", run.code, run.stderr);
        assert!(run.stderr.contains(expect), "{args:?}: expected `{expect}` in: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{args:?} panicked");
        assert!(run.stdout.is_empty(), "{args:?} printed a plan");
    }
}

#[test]
fn snapshots_of_the_three_formats() {
    for format in ["table", "json", "env"] {
        let run = difyplan(&["size", "--qps", "500", "--format", format]);
        assert_eq!(run.code, 0);
        insta::assert_snapshot!(format!("size_qps500_{format}"), run.stdout);
    }
    let k8s = difyplan(&["size", "--qps", "500", "--target", "kubernetes", "--profile", "workflow"]);
    insta::assert_snapshot!("size_qps500_kubernetes_workflow_table", k8s.stdout);
}

#[test]
fn help_is_stable() {
    let run = difyplan(&["size", "--help"]);
    assert_eq!(run.code, 0);
    insta::assert_snapshot!("size_help", run.stdout);
}

/// `size --qps 500 --retention-days 300` shows the disk plan; with the log store the
/// env has the four repository keys and the switches, and no secret values.
#[test]
fn workflow_log_storage() {
    let r = difyplan(&["size", "--qps", "500", "--retention-days", "300"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("300 days keep"), "{}", r.stdout);
    let v = json(&difyplan(&["size", "--qps", "500", "--retention-days", "300", "--format", "json"]));
    // By hand: 500 QPS × 0.5 mean load × 86,400 s × 6,700 bytes = 144.72 GB a day; × 300 days;
    // × 1.3 for bloat, indexes and WAL.
    let daily = 500.0 * 0.5 * 86_400.0 * 6_700.0;
    assert!((v["logs"]["daily_bytes"].as_f64().unwrap() - daily).abs() < 1.0);
    assert!((v["logs"]["pg_disk_bytes"].as_f64().unwrap() - daily * 300.0 * 1.3).abs() < 1e3);
    assert_eq!(v["logs"]["recommend_log_store"], true, "about 40 TiB of logs");
    let pg = json(&difyplan(&[
        "size",
        "--qps",
        "500",
        "--retention-days",
        "300",
        "--format",
        "json",
        "--workflow-log-store",
        "logstore",
    ]));
    assert_eq!(pg["logs"]["pg_disk_bytes"], 0.0);
    assert!(pg["database"]["cores"].as_u64() < v["database"]["cores"].as_u64(), "the log store saves PostgreSQL CPU");
    let env = difyplan(&[
        "size",
        "--qps",
        "500",
        "--retention-days",
        "300",
        "--format",
        "env",
        "--workflow-log-store",
        "logstore",
    ])
    .stdout;
    for key in [
        "CORE_WORKFLOW_EXECUTION_REPOSITORY",
        "CORE_WORKFLOW_NODE_EXECUTION_REPOSITORY",
        "API_WORKFLOW_RUN_REPOSITORY",
        "API_WORKFLOW_NODE_EXECUTION_REPOSITORY",
    ] {
        let line = env.lines().find(|l| l.starts_with(&format!("{key}="))).unwrap_or_else(|| panic!("{key} missing"));
        assert!(line.contains("extensions.logstore.repositories."), "{line}");
    }
    assert!(env.lines().any(|l| l == "LOGSTORE_DUAL_WRITE_ENABLED=true"));
    assert!(env.lines().any(|l| l == "LOGSTORE_DUAL_READ_ENABLED=true"));
    for secret in ["ALIYUN_SLS_ACCESS_KEY_ID", "ALIYUN_SLS_ACCESS_KEY_SECRET"] {
        assert!(env.lines().any(|l| l == format!("{secret}=")), "{secret} is a placeholder without a value");
    }
    // Off the request path, a blocking request holds one session: the api's usual pool and the
    // connections in use shrink; the worst case (the measured peak) does not grow.
    let base = json(&difyplan(&["size", "--qps", "200", "--profile", "workflow", "--format", "json"]));
    for store in ["celery", "logstore"] {
        let moved = json(&difyplan(&[
            "size",
            "--qps",
            "200",
            "--profile",
            "workflow",
            "--format",
            "json",
            "--workflow-log-store",
            store,
        ]));
        let api = |v: &serde_json::Value| {
            v["components"].as_array().unwrap().iter().find(|c| c["component"] == "api").unwrap().clone()
        };
        assert!(api(&moved)["pool_size"].as_u64() < api(&base)["pool_size"].as_u64(), "{store}");
        assert!(
            moved["efficiency"]["mean_connections_in_use"].as_f64()
                < base["efficiency"]["mean_connections_in_use"].as_f64(),
            "{store}"
        );
        assert!(moved["budget"]["demand"].as_u64() <= base["budget"]["demand"].as_u64(), "{store}");
        assert!(
            moved["derivations"].as_array().unwrap().iter().any(|d| d["name"] == "connections per blocking request"),
            "--explain shows the change"
        );
    }
    let old = difyplan(&["size", "--qps", "10", "--dify-version", "1.9.1", "--workflow-log-store", "logstore"]);
    assert_eq!(old.code, 2);
    assert!(old.stderr.contains("no log-store repositories"));
}

/// Redis topology from the operations per second; the vendor's one-Redis limit.
#[test]
fn redis_topology() {
    let small = json(&difyplan(&["size", "--qps", "20", "--edition", "test", "--format", "json"]));
    assert_eq!(small["redis"]["topology"], "standalone");
    let ha = json(&difyplan(&["size", "--qps", "20", "--format", "json"]));
    assert_eq!(ha["redis"]["topology"], "sentinel");
    // 200 QPS × 40 operations = 8,000/s: the vendor's saturation point → cluster.
    let big = json(&difyplan(&["size", "--qps", "200", "--format", "json"]));
    assert_eq!(big["redis"]["topology"], "cluster");
    assert_eq!(big["redis"]["plugin_daemon_topology"], "sentinel");
    let env = difyplan(&["size", "--qps", "200", "--format", "env"]).stdout;
    assert!(env.lines().any(|l| l == "# REDIS_USE_CLUSTERS=true"));
}

/// A database too small for the plan gets the warning with the largest safe
/// max_connections and the remedy; without --pg-memory the host is chosen and said to be.
#[test]
fn database_too_small_warns_with_numbers() {
    let run = difyplan(&["size", "--qps", "100", "--pg-memory", "2GiB", "--pg-cpus", "2", "--format", "json"]);
    // A host that cannot hold the backends is a shortfall: exit 1, the user's 2 GiB not "assumed".
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("cannot hold the plan's"), "{}", run.stderr);
    let v = json(&run);
    assert_eq!(v["database"]["memory"]["fits"], false);
    for note in v["notes"].as_array().unwrap().iter().filter_map(|n| n.as_str()) {
        assert!(!(note.contains("assumed") && note.contains("GiB (")), "the given memory is called assumed: {note}");
    }
    let env = difyplan(&["size", "--qps", "100", "--pg-memory", "2GiB", "--pg-cpus", "2", "--format", "env"]);
    assert_eq!((env.code, env.stdout.as_str()), (1, ""), "nothing to paste from a plan that does not fit");
    let largest = v["database"]["memory"]["largest_safe_backends"].as_u64().unwrap();
    let open = v["database"]["memory"]["open_backends"].as_u64().unwrap();
    assert!(largest < open, "{largest} fit, {open} can be open");
    assert_eq!(open, v["budget"]["demand"].as_u64().unwrap(), "every pool at its maximum can be open");
    let note = v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .find(|n| n.starts_with("WARNING"))
        .expect("a memory warning");
    assert!(note.contains(&format!("at most {largest} fit")), "{note}");
    assert!(note.contains("--pg-memory"), "{note}");
    // PGTune's own numbers for the host: shared_buffers is a quarter of 2 GiB.
    assert!(
        v["database"]["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|kv| kv[0] == "POSTGRES_SHARED_BUFFERS" && kv[1] == "512MB")
    );
    // The parts add up to the need, by hand from the JSON's own numbers: shared memory (at least
    // shared_buffers and 48 kB per slot), page tables or huge pages, 2 MiB and one work_mem per
    // open backend (work_mem at its 64 kB floor here), autovacuum.
    let m = &v["database"]["memory"];
    let n = |k: &str| m[k].as_u64().unwrap_or_else(|| panic!("{k}"));
    let slots = v["database"]["max_connections"].as_u64().unwrap();
    assert!(n("shared_memory_bytes") >= 512 * 1024 * 1024 + slots * 48 * 1024);
    let work_mem_kb = v["database"]["tuning"]["work_mem_kb"].as_u64().unwrap();
    assert_eq!(work_mem_kb, 64);
    assert_eq!(
        n("needed_bytes"),
        n("shared_memory_bytes")
            + n("page_tables_bytes")
            + n("autovacuum_bytes")
            + open * (2 * 1024 * 1024 + work_mem_kb * 1024)
    );
    let chosen = json(&difyplan(&["size", "--qps", "100", "--format", "json"]));
    assert_eq!(chosen["database"]["memory"]["fits"], true);
    assert!(
        chosen["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().starts_with("PostgreSQL host assumed"))
    );
}
