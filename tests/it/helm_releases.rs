//! Helm releases as teams commit them: which chart (Chart.yaml, HelmRelease, Application,
//! `--chart`, or keys that settle it — else a refusal pointing to `helm template`), the chart
//! version's defaults, values layered in Helm's order, and autoscalers committed beside the values.

use crate::support::{check_json as run, difyplan, folder, json, s};
use serde_json::Value;

fn worst_pods(v: &Value, n: usize) -> Vec<(String, u64)> {
    v["deployments"][n]["budget"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["component"].as_str().unwrap().to_string(), l["worst_pods"].as_u64().unwrap()))
        .collect()
}

fn pairs(expected: &[(&str, u64)]) -> Vec<(String, u64)> {
    expected.iter().map(|(c, n)| (c.to_string(), *n)).collect()
}

fn codes(v: &Value) -> Vec<String> {
    v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
}

const BORIS_CHART_YAML: &str = "apiVersion: v2\nname: dify\ndescription: Instant cloud deployment for https://github.com/langgenius/dify.\nversion: VERSION\ndependencies:\n- name: postgresql\n  condition: postgresql.enabled\n";
const DOUBAN_CHART_YAML: &str = "apiVersion: v2\nname: dify\nmaintainers:\n  - name: douban\nversion: VERSION\ndependencies:\n  - name: postgresql\n    condition: postgresql.embedded\n";

/// dify-helm values that set every pool, so the defaults per version show in the pods only.
const BORIS_VALUES: &str = "image:
  api:
    tag: \"1.12.1\"
api:
  replicas: 2
  extraEnv:
    - {name: SQLALCHEMY_POOL_SIZE, value: \"10\"}
    - {name: SQLALCHEMY_MAX_OVERFLOW, value: \"0\"}
worker:
  replicas: 1
  extraEnv:
    - {name: SQLALCHEMY_POOL_SIZE, value: \"10\"}
    - {name: SQLALCHEMY_MAX_OVERFLOW, value: \"0\"}
pluginDaemon:
  replicas: 1
postgresql:
  primary:
    extendedConfiguration: |
      max_connections = 500
  readReplicas:
    extendedConfiguration: |
      max_connections = 500
";

#[test]
fn custom_charts_are_refused_with_the_helm_template_route() {
    for values in [
        // A chart of one's own with a shared env block.
        "sharedEnv:\n  SQLALCHEMY_POOL_SIZE: \"30\"\napi:\n  replicas: 2\nworker:\n  replicas: 1\npostgresql:\n  enabled: false\n",
        // `api.image` as a plain string: neither chart writes it so.
        "api:\n  image: langgenius/dify-api:1.9.1\n  replicas: 2\nworker:\n  replicas: 1\nbeat:\n  enabled: true\n",
    ] {
        let dir = folder(&[("values.yaml", values)]);
        let r = difyplan(&["check", &s(dir.path())]);
        assert_eq!(r.code, 2, "{values}\n{}", r.stdout);
        assert!(r.stderr.contains("helm template") && r.stderr.contains("| difyplan check -"), "{}", r.stderr);
        assert!(r.stderr.contains("values.yaml"), "{}", r.stderr);
    }
    // A Chart.yaml of another chart says so, whatever the keys.
    let dir =
        folder(&[("Chart.yaml", "apiVersion: v2\nname: my-dify\nversion: 1.0.0\n"), ("values.yaml", BORIS_VALUES)]);
    let r = difyplan(&["check", &s(dir.path())]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("Chart.yaml:2: chart `my-dify`") && r.stderr.contains("helm template"), "{}", r.stderr);
    // Keys of both charts and nothing that says which: refused, naming --chart.
    let dir = folder(&[("values.yaml", "api:\n  replicas: 2\n  replicaCount: 2\nworker:\n  replicas: 1\n")]);
    let r = difyplan(&["check", &s(dir.path())]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("--chart"), "{}", r.stderr);
}

#[test]
fn chart_folder_is_walked_past_templates_with_its_versions_defaults() {
    // 0.36: beat exists but is off by default, so no beat Deployment.
    // api 2 + surge 1 = 3 × 10 = 30; worker 1 + 1 = 2 × 10 = 20; plugin daemon 1 + 1 = 2 × 30 = 60 → 110.
    let chart = BORIS_CHART_YAML.replace("VERSION", "0.36.0");
    // Templates that are no released version's: a fork, whose rendering is not known.
    let dir = folder(&[
        ("Chart.yaml", &chart),
        ("values.yaml", BORIS_VALUES),
        (
            "templates/api.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: {{ .Values.api.replicas }}\n",
        ),
        ("templates/_helpers.tpl", "{{- define \"x\" -}}{{- end }}\n"),
    ]);
    let r = difyplan(&["check", &s(dir.path())]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains("is a fork of BorisPolonsky/dify-helm") && r.stderr.contains("helm template"),
        "{}",
        r.stderr
    );
    let dir = folder(&[("Chart.yaml", &chart), ("values.yaml", BORIS_VALUES)]);
    let (_, v) = run(&[&s(dir.path())]);
    assert_eq!(v["deployments"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(worst_pods(&v, 0), pairs(&[("api", 3), ("worker", 2), ("plugin_daemon", 2)]));
    assert_eq!(v["deployments"][0]["budget"]["demand"], 110);
    assert_eq!(v["deployments"][0]["deployment"]["max_connections"]["value"], 500);
    let chart_read = &v["deployments"][0]["deployment"]["chart"];
    assert_eq!(chart_read["value"], "BorisPolonsky/dify-helm 0.36");
    assert_eq!(chart_read["source"]["line"], 2);
    assert!(!codes(&v).contains(&"chart-version-assumed".to_string()), "{:?}", codes(&v));

    // 0.37 turns beat on (Recreate: 1 pod × Dify's 30 + 10 = 40): 150.
    let chart = BORIS_CHART_YAML.replace("VERSION", "0.37.0");
    let dir = folder(&[("Chart.yaml", &chart), ("values.yaml", BORIS_VALUES)]);
    let (_, v) = run(&[&s(dir.path())]);
    assert_eq!(worst_pods(&v, 0), pairs(&[("api", 3), ("worker", 2), ("worker_beat", 1), ("plugin_daemon", 2)]));
    assert_eq!(v["deployments"][0]["budget"]["demand"], 150);

    // A version difyplan does not know: the nearest known one, and a note saying so.
    let chart = BORIS_CHART_YAML.replace("VERSION", "0.52.0");
    let dir = folder(&[("Chart.yaml", &chart), ("values.yaml", BORIS_VALUES)]);
    let (_, v) = run(&[&s(dir.path())]);
    assert_eq!(v["deployments"][0]["deployment"]["chart"]["value"], "BorisPolonsky/dify-helm 0.38");
    let note = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "chart-version-assumed").unwrap();
    assert_eq!(note["severity"], "note");
    assert!(note["message"].as_str().unwrap().contains("`0.52.0` is not one difyplan knows"), "{note}");
}

#[test]
fn layered_values_are_one_release_in_helm_order() {
    // base: api 2 replicas with pool 10 + 0; prod: api 5 replicas, its own extraEnv list (Helm
    // replaces lists whole, so the pool goes back to Dify's 30 + 10 = 40).
    // api 5 + surge 2 = 7 × 40 = 280; worker 1 + 1 = 2 × 10 = 20; plugin daemon 2 × 30 = 60 → 360.
    let prod = "api:\n  replicas: 5\n  extraEnv:\n    - {name: LOG_LEVEL, value: INFO}\n";
    let dir = folder(&[("values.yaml", BORIS_VALUES), ("values-prod.yaml", prod)]);
    let base = s(&dir.path().join("values.yaml"));
    let over = s(&dir.path().join("values-prod.yaml"));
    let (_, v) = run(&["--values", &base, "--values", &over, "--chart", "borispolonsky@0.36.0"]);
    assert_eq!(v["deployments"].as_array().unwrap().len(), 1);
    assert_eq!(v["deployments"][0]["label"], format!("{base} + {over}"));
    assert_eq!(worst_pods(&v, 0), pairs(&[("api", 7), ("worker", 2), ("plugin_daemon", 2)]));
    assert_eq!(v["deployments"][0]["budget"]["demand"], 360);
    let api = &v["deployments"][0]["deployment"]["components"][0];
    assert_eq!(api["replicas"]["source"], serde_json::json!({"kind": "file", "path": over, "line": 2}));
    // The other order: the base's 2 replicas and pool win.
    let (_, v) = run(&["--values", &over, "--values", &base, "--chart", "borispolonsky@0.36.0"]);
    assert_eq!(worst_pods(&v, 0)[0], ("api".to_string(), 3));
    // --chart contradicting a Chart.yaml is refused.
    let chart = DOUBAN_CHART_YAML.replace("VERSION", "0.9.1");
    std::fs::write(dir.path().join("Chart.yaml"), chart).unwrap();
    let r = difyplan(&["check", "--values", &base, "--chart", "borispolonsky"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("--chart says BorisPolonsky/dify-helm"), "{}", r.stderr);
}

#[test]
fn hpa_beside_values_is_linked_by_deployment_name() {
    // The worker's HPA (max 6) owns its pods: 6 + surge 2 = 8 × 10 = 80; api 3 × 10 = 30;
    // plugin daemon 2 × 30 = 60 → 170, and no separate deployment or hpa-unbounded.
    let hpa = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: dify-worker}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: dify-worker}\n  minReplicas: 1\n  maxReplicas: 6\n";
    let chart = BORIS_CHART_YAML.replace("VERSION", "0.36.0");
    let dir = folder(&[("Chart.yaml", &chart), ("values.yaml", BORIS_VALUES), ("hpa.yaml", hpa)]);
    let (_, v) = run(&[&s(dir.path())]);
    assert_eq!(v["deployments"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(worst_pods(&v, 0), pairs(&[("api", 3), ("worker", 8), ("plugin_daemon", 2)]));
    assert_eq!(v["deployments"][0]["budget"]["demand"], 170);
    assert!(!codes(&v).contains(&"hpa-unbounded".to_string()));
    // An HPA for a Deployment the release does not render is not counted, and says so.
    let stray = hpa.replace("name: dify-worker}", "name: dify-sandbox}");
    let dir = folder(&[("Chart.yaml", &chart), ("values.yaml", BORIS_VALUES), ("hpa.yaml", &stray)]);
    let (r, v) = run(&[&s(dir.path())]);
    assert_eq!(r.code, 1);
    assert!(codes(&v).contains(&"hpa-unbounded".to_string()), "{:?}", codes(&v));
}

#[test]
fn flux_helm_release_with_values_from_a_config_map() {
    // douban 0.9 via its HelmRepository: the ConfigMap's values, then spec.values over them.
    // api 3 (spec.values) + 1 = 4 × (5 + 10); worker 2 × 40; workerBeat 2 × 40; plugin daemon 1 × 30.
    let release = "apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata: {name: douban}
spec:
  url: https://douban.github.io/charts/
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: dify}
spec:
  chart:
    spec:
      chart: dify
      version: 0.9.1
      sourceRef: {kind: HelmRepository, name: douban}
  valuesFrom:
    - kind: ConfigMap
      name: dify-values
  values:
    api:
      replicaCount: 3
";
    let cm = "apiVersion: v1
kind: ConfigMap
metadata: {name: dify-values}
data:
  values.yaml: |
    api:
      replicaCount: 2
      envs:
        - {name: SQLALCHEMY_POOL_SIZE, value: \"5\"}
    postgresql:
      embedded: false
";
    let dir = folder(&[("release.yaml", release), ("values-cm.yaml", cm)]);
    let (_, v) = run(&[&s(dir.path()), "--pg-max-connections", "500"]);
    assert_eq!(v["deployments"].as_array().unwrap().len(), 1, "{v}");
    let d = &v["deployments"][0];
    assert_eq!(d["kind"], "helm");
    assert_eq!(d["deployment"]["chart"]["value"], "douban/charts 0.9");
    assert_eq!(worst_pods(&v, 0), pairs(&[("api", 4), ("worker", 2), ("worker_beat", 2), ("plugin_daemon", 1)]));
    assert_eq!(d["budget"]["demand"], 4 * 15 + 2 * 40 + 2 * 40 + 30);
    let api = &d["deployment"]["components"][0];
    let cm_path = s(&dir.path().join("values-cm.yaml"));
    assert_eq!(api["pool_size"]["source"], serde_json::json!({"kind": "file", "path": cm_path, "line": 9}));
}

#[test]
fn argo_application_names_douban_whatever_the_keys() {
    // `postgresql.enabled` is no douban key, but the Application names douban's repository.
    // valueFiles in order, then `values`, then `valuesObject`: api 6 (prod) + 2 = 8; worker 5
    // (valuesObject) + 2 = 7; 0.7 has no workerBeat; plugin daemon 1. Pools 7 + 10 from the base.
    let app = "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: dify}
spec:
  source:
    repoURL: https://douban.github.io/charts/
    chart: dify
    targetRevision: 0.7.1
    helm:
      valueFiles: [values-base.yaml, values-prod.yaml]
      values: |
        worker:
          replicaCount: 4
      valuesObject:
        postgresql:
          enabled: false
        worker:
          replicaCount: 5
";
    let base = "api:\n  replicaCount: 1\nworker:\n  replicaCount: 1\nglobal:\n  extraBackendEnvs:\n    - {name: SQLALCHEMY_POOL_SIZE, value: \"7\"}\n";
    let dir =
        folder(&[("app.yaml", app), ("values-base.yaml", base), ("values-prod.yaml", "api:\n  replicaCount: 6\n")]);
    let (_, v) = run(&[&s(dir.path()), "--pg-max-connections", "500"]);
    assert_eq!(v["deployments"].as_array().unwrap().len(), 1, "{v}");
    let d = &v["deployments"][0];
    assert_eq!(d["deployment"]["chart"]["value"], "douban/charts 0.7");
    assert_eq!(d["deployment"]["version"], "1.9.1");
    assert_eq!(worst_pods(&v, 0), pairs(&[("api", 8), ("worker", 7), ("plugin_daemon", 1)]));
    assert_eq!(d["budget"]["demand"], 8 * 17 + 7 * 17 + 30);
}

#[test]
fn douban_plugin_daemon_replicas_as_its_template_renders_them() {
    // Without `pluginDaemon.autoscaling` the template writes `replicas: 1` whatever replicaCount says.
    let chart = DOUBAN_CHART_YAML.replace("VERSION", "0.9.1");
    let values = |daemon: &str| format!("api:\n  replicaCount: 1\nworker:\n  replicaCount: 1\npluginDaemon:\n{daemon}");
    for (daemon, pods) in [
        ("  replicaCount: 8\n", 1),
        ("  replicaCount: 8\n  autoscaling:\n    enabled: false\n", 8),
        ("  replicaCount: 8\n  autoscaling:\n    enabled: true\n", 1),
    ] {
        let dir = folder(&[("Chart.yaml", &chart), ("values.yaml", &values(daemon))]);
        let (_, v) = run(&[&s(dir.path())]);
        let got = worst_pods(&v, 0).into_iter().find(|(c, _)| c == "plugin_daemon").unwrap().1;
        assert_eq!(got, pods, "{daemon}");
    }
}

/// `render helm` for both charts, read back by `check` with each chart's template rules: the
/// plan's replicas for every component the chart runs (and the HPA maximum where the chart has
/// one), no env name the chart's template sets itself, and read replicas as large as the primary.
#[test]
fn rendered_values_read_back_give_the_plans_replicas() {
    for (chart, extra) in
        [("borispolonsky", &[][..]), ("douban", &["--assume", "max_surge=0.25", "--assume", "beat_surge=1"][..])]
    {
        for qps in ["10", "300"] {
            let dir = tempfile::tempdir().unwrap();
            let r = difyplan(&["render", "helm", "--chart", chart, "--qps", qps, "-o", &s(dir.path())]);
            assert_eq!(r.code, 0, "{}", r.stderr);
            let values = dir.path().join("values.yaml");
            let text = std::fs::read_to_string(&values).unwrap();
            let mut size = vec!["size", "--qps", qps, "--target", "kubernetes", "--format", "json"];
            size.extend_from_slice(extra);
            let plan = json(&difyplan(&size));
            let (_, v) = run(&[&s(&values), "--chart", chart]);
            let read = v["deployments"][0]["deployment"]["components"].as_array().unwrap();
            for c in plan["components"].as_array().unwrap() {
                let name = c["component"].as_str().unwrap();
                let Some(got) = read.iter().find(|r| r["component"] == name) else {
                    // douban runs no api_websocket: the template says so.
                    assert!(chart == "douban" && name == "api_websocket", "{chart} {qps}: {name} not read back");
                    continue;
                };
                assert_eq!(got["replicas"]["value"], c["replicas"], "{chart} {qps} QPS: {name} replicas");
                if matches!(name, "api" | "worker") {
                    assert_eq!(got["max_replicas"]["value"], c["max_replicas"], "{chart} {qps} QPS: {name} maximum");
                }
            }
            let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
            if chart == "borispolonsky" {
                // The websocket template sets these two itself.
                let env = doc["apiWebsocket"]["extraEnv"].as_sequence().unwrap();
                let names: Vec<&str> = env.iter().map(|e| e["name"].as_str().unwrap()).collect();
                for set_by_chart in ["SERVER_WORKER_AMOUNT", "SERVER_WORKER_CLASS", "MIGRATION_ENABLED", "LOG_LEVEL"] {
                    assert!(!names.contains(&set_by_chart), "{qps}: {set_by_chart} in {names:?}");
                }
                // The read replica (architecture: replication by default) gets the primary's settings.
                let primary = doc["postgresql"]["primary"]["extendedConfiguration"].as_str().unwrap();
                assert!(primary.contains("max_connections = '"), "{primary}");
                assert_eq!(doc["postgresql"]["readReplicas"]["extendedConfiguration"].as_str(), Some(primary));
            } else {
                assert_eq!(doc["pluginDaemon"]["autoscaling"]["enabled"], serde_yaml::Value::Bool(false));
            }
        }
    }
}

#[test]
fn bundled_read_replica_below_the_primary_is_an_error_with_the_budget() {
    // dify-helm's default `architecture: replication`: the replica left at 100 would not start.
    let values =
        BORIS_VALUES.replace("  readReplicas:\n    extendedConfiguration: |\n      max_connections = 500\n", "");
    assert_ne!(values, BORIS_VALUES);
    let chart = BORIS_CHART_YAML.replace("VERSION", "0.38.0");
    let dir = folder(&[("Chart.yaml", &chart), ("values.yaml", &values)]);
    let (r, v) = run(&[&s(dir.path())]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let f = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "replica-below-primary").unwrap();
    assert!(
        f["message"].as_str().unwrap().contains("the primary gets max_connections 500 but the read replica"),
        "{f}"
    );
    assert_eq!(f["source"]["line"], 19, "{f}");
    assert!(f["remedy"].as_str().unwrap().contains("readReplicas.extendedConfiguration"), "{f}");
    // The budget is reported all the same.
    assert_eq!(v["deployments"][0]["deployment"]["max_connections"]["value"], 500);
    assert!(v["deployments"][0]["budget"]["demand"].as_u64().is_some(), "{v}");
    // Standalone: no replica to start.
    let standalone = values.replace("postgresql:\n", "postgresql:\n  architecture: standalone\n");
    let dir = folder(&[("Chart.yaml", &chart), ("values.yaml", &standalone)]);
    let (_, v) = run(&[&s(dir.path())]);
    assert_eq!(v["deployments"][0]["deployment"]["max_connections"]["value"], 500);
}

/// The fixtures' hand-written values, read with the chart and version they were rendered with,
/// give what their rendered output carries (see helm_rendered).
#[test]
fn fixture_values_agree_with_their_rendered_output() {
    for (file, chart, demand, max) in [
        ("borispolonsky-scaled.values.yaml", "borispolonsky@0.38.0-rc2", 2606, 1200),
        ("douban-scaled.values.yaml", "douban@0.9.1", 1417, 900),
    ] {
        let path = crate::support::helm_fixture(file).display().to_string();
        let (_, v) = run(&[&path, "--chart", chart]);
        let d = &v["deployments"][0];
        assert_eq!(d["budget"]["demand"], demand, "{file}");
        assert_eq!(d["deployment"]["max_connections"]["value"], max, "{file}");
        assert!(!codes(&v).contains(&"chart-version-assumed".to_string()), "{file}");
    }
}
