//! The committed config matrix: the files are exactly what the model produces, and
//! every tier in them is within its connection budget.

use crate::support::difyplan;
use std::path::Path;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/matrices");

#[test]
fn committed_files_match_the_model() {
    let files = difyplan::cmd::matrix::files(Path::new(DIR)).expect("model plans every tier");
    assert_eq!(files.len(), 8, "four profiles × two targets");
    for (path, text) in files {
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} is missing: run `difyplan matrix --write`", path.display()));
        assert!(
            committed == text,
            "{} differs from the model: run `difyplan matrix --write --force` and review the diff",
            path.display()
        );
    }
}

/// Read back from the files themselves: every tier's demand fits its usable cap, and the
/// demand is the sum of the components' worst cases plus reserves (never less).
#[test]
fn every_tier_is_within_budget() {
    let mut tiers = 0;
    let mut beyond_one_server = Vec::new();
    for entry in std::fs::read_dir(DIR).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let doc: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        for tier in doc["tier"].as_array().unwrap() {
            let t = tier.as_table().unwrap();
            let demand = t["demand"].as_integer().unwrap();
            let usable = t["usable"].as_integer().unwrap();
            if demand > usable {
                // Beyond what one PostgreSQL server takes (max_connections ≤ 262,143): the tier
                // needs the deployment split. Only the agent profile's top Kubernetes tiers.
                assert_eq!(
                    t["max_connections"].as_integer(),
                    Some(262_143),
                    "{}: {} QPS {} over budget",
                    path.display(),
                    t["qps"],
                    t["edition"]
                );
                beyond_one_server.push(format!(
                    "{} {} {}",
                    path.file_name().unwrap().to_string_lossy(),
                    t["qps"],
                    t["edition"]
                ));
                tiers += 1;
                continue;
            }
            let worst: i64 = ["api", "api_websocket", "worker", "worker_beat", "plugin_daemon"]
                .iter()
                .filter_map(|c| t.get(*c))
                .map(|c| c["worst"].as_integer().unwrap())
                .sum();
            assert!(worst <= demand, "{}: components exceed the demand", path.display());
            tiers += 1;
        }
    }
    assert_eq!(tiers, 8 * 7 * 3, "every profile, target, tier and edition");
    beyond_one_server.sort();
    assert_eq!(beyond_one_server, ["agent-kubernetes.toml 2000 \"ha\"", "agent-kubernetes.toml 2000 \"performance\""]);
}

#[test]
fn matrix_prints_every_tier() {
    let r = difyplan(&["matrix"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for profile in ["chat", "workflow", "agent", "benchmark"] {
        for target in ["compose", "kubernetes"] {
            assert!(r.stdout.contains(&format!("profile `{profile}`, target {target}")));
        }
    }
    for qps in ["10", "50", "100", "200", "500", "1000", "2000"] {
        assert!(r.stdout.lines().any(|l| l.starts_with(&format!("│ {qps} "))), "tier {qps} missing");
    }
}

/// `--write` never replaces a differing file without `--force`.
#[test]
fn write_needs_force_to_replace() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert_eq!(difyplan(&["matrix", "--write", "--dir", d]).code, 0);
    let file = dir.path().join("chat-compose.toml");
    std::fs::write(&file, "# edited by hand\n").unwrap();
    let r = difyplan(&["matrix", "--write", "--dir", d]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# edited by hand\n");
    assert_eq!(difyplan(&["matrix", "--write", "--force", "--dir", d]).code, 0);
    assert_ne!(std::fs::read_to_string(&file).unwrap(), "# edited by hand\n");
}
