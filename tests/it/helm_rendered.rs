//! `check` on what `helm template` renders: the two community charts' real output (worked out by
//! hand below) and small manifests of the same shape — the Bitnami PostgreSQL chart's
//! `extendedConfiguration` ConfigMap mounted into `conf.d/`, read replicas, image roles and tags.

use crate::support::{difyplan, helm_fixture, json};
use serde_json::Value;

fn check_file(path: &str) -> (i32, Value) {
    let r = difyplan(&["check", path, "--format", "json"]);
    assert!(r.code <= 1, "{}\n{}", r.stdout, r.stderr);
    (r.code, json(&r))
}

fn worst_pods(v: &Value) -> Vec<(String, u64)> {
    v["deployments"][0]["budget"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["component"].as_str().unwrap().to_string(), l["worst_pods"].as_u64().unwrap()))
        .collect()
}

fn pairs(expected: &[(&str, u64)]) -> Vec<(String, u64)> {
    expected.iter().map(|(c, n)| (c.to_string(), *n)).collect()
}

struct Expected {
    file: &'static str,
    pods: &'static [(&'static str, u64)],
    demand: u64,
    max_connections: u64,
    /// The line of `max_connections = …` in the ConfigMap, when the values set it.
    max_line: Option<u64>,
    idle_off: bool,
}

/// Worked out by hand from the rendered files:
/// - BorisPolonsky defaults: api, worker and plugin daemon 1 replica each with no strategy (25%
///   surge: 2 pods), beat `Recreate` (1 pod); Dify's pools 30 + 10 = 40, the plugin daemon's 30:
///   80 + 80 + 40 + 60 = 260. No ConfigMap sets max_connections: PostgreSQL's 100.
/// - BorisPolonsky scaled: api HPA max 12 + 3 surge = 15 × 2 processes × (40 + 41) = 2430; worker
///   HPA max 6 + 2 = 8 × (10 + 8) = 144; beat 1 × (1 + 1) = 2; plugin daemon 2 + 1 = 3 ×
///   DB_MAX_OPEN_CONNS 10 = 30: 2606. The primary's `override.conf` (line 16) says 1200, and so
///   does the read replica's.
/// - douban defaults: api, worker and worker-beat 1 + 1 surge each × 40 = 240; the plugin daemon
///   `Recreate` 1 × 30: 270, max_connections 100.
/// - douban scaled: api HPA max 8 + 2 = 10 × 2 × (25 + 26) = 1020; worker 5 + 2 = 7 × 51 = 357;
///   worker-beat 2 × (1 + 1) = 4; plugin daemon 3 (`autoscaling: {enabled: false}` with
///   replicaCount 3, `Recreate`) × 12 = 36: 1417; `override.conf` (line 17) says 900.
const RENDERED: &[Expected] = &[
    Expected {
        file: "borispolonsky-defaults.rendered.yaml",
        pods: &[("api", 2), ("worker", 2), ("worker_beat", 1), ("plugin_daemon", 2)],
        demand: 260,
        max_connections: 100,
        max_line: None,
        idle_off: true,
    },
    Expected {
        file: "borispolonsky-scaled.rendered.yaml",
        pods: &[("api", 15), ("worker", 8), ("worker_beat", 1), ("plugin_daemon", 3)],
        demand: 2606,
        max_connections: 1200,
        max_line: Some(16),
        idle_off: false,
    },
    Expected {
        file: "douban-defaults.rendered.yaml",
        pods: &[("api", 2), ("worker", 2), ("worker_beat", 2), ("plugin_daemon", 1)],
        demand: 270,
        max_connections: 100,
        max_line: None,
        idle_off: true,
    },
    Expected {
        file: "douban-scaled.rendered.yaml",
        pods: &[("api", 10), ("worker", 7), ("worker_beat", 2), ("plugin_daemon", 3)],
        demand: 1417,
        max_connections: 900,
        max_line: Some(17),
        idle_off: true,
    },
];

#[test]
fn both_charts_real_output_demand_and_max_connections() {
    for e in RENDERED {
        let path = helm_fixture(e.file).display().to_string();
        let (_, v) = check_file(&path);
        assert_eq!(worst_pods(&v), pairs(e.pods), "{}", e.file);
        let d = &v["deployments"][0];
        assert_eq!(d["budget"]["demand"], e.demand, "{}", e.file);
        assert_eq!(d["deployment"]["max_connections"]["value"], e.max_connections, "{}", e.file);
        assert_eq!(d["deployment"]["max_connections_found"], true, "{}", e.file);
        if let Some(line) = e.max_line {
            assert_eq!(d["deployment"]["max_connections"]["source"]["line"], line, "{}", e.file);
        }
        let idle = d["deployment"]["idle_in_transaction_timeout"]["value"].as_str().unwrap();
        assert_eq!(idle == "0", e.idle_off, "{}: idle timeout {idle}", e.file);
        let codes: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
        assert_eq!(codes.contains(&"idle-in-transaction-timeout-off"), e.idle_off, "{}: {codes:?}", e.file);
    }
}

/// A Bitnami-shaped primary and read replica: the StatefulSets mount their
/// `extendedConfiguration` ConfigMaps into `conf.d/`, with an api Deployment.
fn bitnami(primary_conf: &str, read_conf: &str, command: &str) -> String {
    let statefulset = |name: &str, component: &str, mode: &str, conf: &str| {
        format!(
            r#"---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-extended-configuration}}
data:
  override.conf: |-
{conf}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {name}
  labels: {{app.kubernetes.io/component: {component}}}
spec:
  replicas: 1
  template:
    spec:
      containers:
        - name: postgresql
          image: docker.io/bitnami/postgresql:15.3.0{command}
          env:
            - {{name: POSTGRES_REPLICATION_MODE, value: {mode}}}
            - {{name: POSTGRESQL_MAX_CONNECTIONS, value: "50"}}
          volumeMounts:
            - {{name: postgresql-extended-config, mountPath: /bitnami/postgresql/conf/conf.d/}}
      volumes:
        - name: postgresql-extended-config
          configMap: {{name: {name}-extended-configuration}}
"#
        )
    };
    let indent = |c: &str| c.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n");
    let mut out = statefulset("db-primary", "primary", "master", &indent(primary_conf));
    if !read_conf.is_empty() {
        out += &statefulset("db-read", "read", "slave", &indent(read_conf));
    }
    out + r#"---
apiVersion: apps/v1
kind: Deployment
metadata: {name: dify-api}
spec:
  replicas: 2
  strategy: {type: Recreate}
  template:
    spec:
      containers:
        - name: api
          image: langgenius/dify-api:1.16.1
          env:
            - {name: DB_USERNAME, value: dify}
            - {name: SQLALCHEMY_POOL_SIZE, value: "10"}
            - {name: SQLALCHEMY_MAX_OVERFLOW, value: "0"}
"#
}

#[test]
fn conf_d_overrides_the_image_env_and_a_command_line_overrides_both() {
    // conf.d over POSTGRESQL_MAX_CONNECTIONS (the image writes it into postgresql.conf).
    let text = bitnami("max_connections = 300\nidle_in_transaction_session_timeout = '5min'", "", "");
    let r = crate::support::difyplan_in(&["check", "-", "--format", "json"], Some(&text));
    let v = json(&r);
    let d = &v["deployments"][0]["deployment"];
    assert_eq!(d["max_connections"]["value"], 300, "{}", r.stdout);
    assert_eq!(d["idle_in_transaction_timeout"]["value"], "5min");
    // The api: 2 pods × 10 = 20 of 300.
    assert_eq!(v["deployments"][0]["budget"]["demand"], 20);

    // Without the conf.d line, the image's env applies.
    let r = crate::support::difyplan_in(&["check", "-", "--format", "json"], Some(&bitnami("# nothing", "", "")));
    assert_eq!(json(&r)["deployments"][0]["deployment"]["max_connections"]["value"], 50);

    // `-c` on the command line wins over conf.d.
    let text = bitnami("max_connections = 300", "", "\n          args: [\"-c\", \"max_connections=400\"]");
    let r = crate::support::difyplan_in(&["check", "-", "--format", "json"], Some(&text));
    assert_eq!(json(&r)["deployments"][0]["deployment"]["max_connections"]["value"], 400, "{}", r.stderr);
}

#[test]
fn read_replica_below_its_primary_is_an_error_finding_and_its_own_cap_not_taken() {
    // Equal or higher on the replica: the primary's cap is the one Dify connects to.
    let r = crate::support::difyplan_in(
        &["check", "-", "--format", "json"],
        Some(&bitnami("max_connections = 300", "max_connections = 500", "")),
    );
    assert!(r.code <= 1, "{}", r.stderr);
    assert_eq!(json(&r)["deployments"][0]["deployment"]["max_connections"]["value"], 300);

    // The replica left at the image's 50 while the primary has 300: it would not start. A fault
    // of the deployment: an error finding, with the budget reported against the primary's cap.
    let r = crate::support::difyplan_in(
        &["check", "-", "--format", "json"],
        Some(&bitnami("max_connections = 300", "# none", "")),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v = json(&r);
    assert_eq!(v["deployments"][0]["deployment"]["max_connections"]["value"], 300);
    assert!(v["deployments"][0]["budget"]["demand"].as_u64().is_some(), "{v}");
    let f = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "replica-below-primary").unwrap();
    assert_eq!(f["severity"], "error");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("read replica db-read runs with max_connections 50 but its primary with 300"),
        "{f}"
    );
}

#[test]
fn official_postgres_user_is_a_superuser_and_foreign_tags_are_not_a_dify_version() {
    let manifests = |user: &str, tag: &str| {
        format!(
            r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  template:
    spec:
      containers:
        - name: db
          image: postgres:15-alpine
          args: ["-c", "max_connections=200"]
          env:
            - {{name: POSTGRES_USER, value: {user}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: dify-api}}
spec:
  template:
    spec:
      containers:
        - name: api
          image: langgenius/dify-api:{tag}
          env:
            - {{name: DB_USERNAME, value: dify}}
"#
        )
    };
    // DB_USERNAME is the role the official image created: a superuser.
    let r = crate::support::difyplan_in(&["check", "-", "--format", "json"], Some(&manifests("dify", "1.9.1")));
    let v = json(&r);
    assert_eq!(v["deployments"][0]["deployment"]["app_role_superuser"], true, "{}", r.stdout);
    assert!(v["findings"].as_array().unwrap().iter().any(|f| f["code"] == "superuser-app-role"));
    // Another POSTGRES_USER: dify is an ordinary role.
    let r = crate::support::difyplan_in(&["check", "-", "--format", "json"], Some(&manifests("admin", "1.9.1")));
    assert_eq!(json(&r)["deployments"][0]["deployment"]["app_role_superuser"], false);

    // A tag that names no Dify release is said so, not labelled as one.
    let r = crate::support::difyplan_in(&["check", "-", "--wide"], Some(&manifests("admin", "nightly")));
    assert!(r.code <= 1, "{}", r.stderr);
    let header = r.stdout.lines().next().unwrap();
    assert!(header.contains("`nightly`") && header.contains("names no Dify release"), "{header}");
    // A 0.x release is not "the latest": refused at the image line, with what to do.
    let text = manifests("admin", "0.15.8");
    let line = text.lines().position(|l| l.contains("dify-api:0.15.8")).unwrap() + 1;
    let r = crate::support::difyplan_in(&["check", "-"], Some(&text));
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains(&format!("-:{line}: image tag `0.15.8`")), "{}", r.stderr);
    assert!(r.stderr.contains("0.x release") && r.stderr.contains("1.x"), "{}", r.stderr);
}
