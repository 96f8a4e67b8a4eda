//! The README's shell commands run as written, in order, in a scratch folder that holds what a
//! reader has (Dify's compose folder, manifests, Helm values), so the README cannot drift from
//! the tool. Its figures that come from the tool are checked against it too.

use crate::support::{fixture, helm_fixture};
use std::path::Path;
use std::process::Command;

/// Commands the test cannot run here, each with why. A listed command that the README no
/// longer shows fails the test, so the list cannot outlive the README.
const NOT_RUN: &[(&str, &str)] = &[
    ("cargo run --release", "builds the project: the test suite already did"),
    ("scripts/test", "runs this very suite"),
    ("helm template", "needs helm and a chart from the network"),
    ("difyplan calibrate", "needs a running Dify's database; tests/it/calibrate_cli.rs measures a real one"),
];

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// Every command line of every ```sh block, continuation lines joined.
fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + 6..];
        let end = body.find("```").expect("an unclosed ```sh block");
        let mut pending = String::new();
        for line in body[..end].lines() {
            if let Some(head) = line.strip_suffix('\\') {
                pending.push_str(head);
                continue;
            }
            pending.push_str(line);
            if !pending.trim().is_empty() && !pending.trim_start().starts_with('#') {
                out.push(pending.trim().to_string());
            }
            pending.clear();
        }
        rest = &body[end + 3..];
    }
    out
}

/// What a reader has before following the README: Dify's compose folder with its `.env`, the
/// manifests of a Kubernetes deployment, Helm values (a chart folder, a pair of values files, a
/// Flux release) and a profile `calibrate` wrote.
fn reader_folder(dir: &Path) {
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap();
    w("docker/docker-compose.yaml", &read(fixture("1.16.1/docker-compose.yaml")));
    w("docker/.env", &read(fixture("1.16.1/env.example")));
    w("k8s/dify.yaml", &read(helm_fixture("douban-defaults.rendered.yaml")));
    w(
        "deploy/dify/Chart.yaml",
        "apiVersion: v2\nname: dify\nversion: 0.38.0\ndependencies:\n- name: postgresql\n  condition: postgresql.enabled\n",
    );
    w("deploy/dify/values.yaml", &read(helm_fixture("borispolonsky-scaled.values.yaml")));
    w("values.yaml", &read(helm_fixture("douban-scaled.values.yaml")));
    w("values-prod.yaml", "api:\n  replicaCount: 3\n");
    w(
        "gitops/dify.yaml",
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: dify}\nspec:\n  chart:\n    spec:\n      \
         chart: dify\n      version: 0.9.1\n      sourceRef: {kind: HelmRepository, name: douban}\n  values:\n    api:\n      \
         replicaCount: 2\n",
    );
    w("mine.toml", &read(Path::new(env!("CARGO_MANIFEST_DIR")).join("matrices/profiles/workflow.toml")));
}

#[test]
fn readme_commands_run_as_written() {
    let text = readme();
    let all = commands(&text);
    assert!(all.len() >= 20, "the README's ```sh blocks: {all:?}");
    for (prefix, _) in NOT_RUN {
        assert!(all.iter().any(|c| c.contains(prefix)), "NOT_RUN lists `{prefix}`, which the README no longer shows");
    }
    let dir = tempfile::tempdir().unwrap();
    reader_folder(dir.path());
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_difyplan")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut ran = 0;
    for cmd in &all {
        if let Some((_, why)) = NOT_RUN.iter().find(|(p, _)| cmd.contains(p)) {
            eprintln!("README command not run ({why}): {cmd}");
            continue;
        }
        let o = Command::new("bash")
            .args(["--noprofile", "--norc", "-o", "pipefail", "-c", cmd])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .env_remove("COLUMNS")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        // 1 is an answer (findings, a plan that does not fit); 2 is a command that fails as written.
        let code = o.status.code().unwrap_or(-1);
        assert!(
            code == 0 || code == 1,
            "README command exits {code}: {cmd}\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 20, "{ran} commands ran");
}

/// Figures the README quotes from the tool: the assumptions' defaults, and the agent tier that
/// cannot fit.
#[test]
fn readme_figures_come_from_the_tool() {
    let text = readme();
    let start = text.find("Assumptions you can override with").expect("the README lists the assumptions");
    let list = &text[start..start + text[start..].find("\n\n").unwrap()];
    let list = list.split_whitespace().collect::<Vec<_>>().join(" ");
    let defaults = serde_json::to_value(difyplan::model::assumptions::Assumptions::default()).unwrap();
    for (key, value) in defaults.as_object().unwrap() {
        let mention = format!("`{key}`");
        let at = list.find(&mention).unwrap_or_else(|| panic!("the README does not list the assumption {key}"));
        let Some(number) = value.as_f64() else { continue };
        // `key` (value), or `a` / `b` (x / y): the value in the same place of the parentheses.
        let after = &list[at + mention.len()..];
        let values = match after.strip_prefix(" / ") {
            // The first of a pair: its value is the first in the parentheses after the second name.
            Some(rest) => &rest[rest.find(" (").unwrap() + 2..],
            None => after.strip_prefix(" (").unwrap_or_else(|| panic!("`{key}` has no (default) in the README")),
        };
        // The second of a pair, `a` / `b` (x / y): its value follows the first's.
        let values = match list[..at].trim_end().strip_suffix('/') {
            Some(_) => values.split(" / ").nth(1).unwrap_or(values),
            None => values,
        };
        let first: String = values.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let quoted: f64 = first.parse().unwrap_or_else(|_| panic!("`{key}`: no number in ({values:.20}…)"));
        assert_eq!(quoted, number, "the README says `{key}` ({quoted}), the tool uses {number}");
    }
    for (edition, _) in [("ha", ()), ("performance", ())] {
        let r = crate::support::difyplan(&[
            "size",
            "--qps",
            "2000",
            "--profile",
            "agent",
            "--target",
            "kubernetes",
            "--edition",
            edition,
            "--format",
            "json",
        ]);
        let demand = crate::support::json(&r)["budget"]["demand"].as_u64().unwrap();
        let shown = format!("{},{:03}", demand / 1000, demand % 1000);
        assert!(
            text.contains(&shown),
            "the README does not give {edition}'s {shown} connections of agent at 2,000 QPS"
        );
    }
}
