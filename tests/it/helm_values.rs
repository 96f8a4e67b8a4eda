//! `difyplan check` on Helm values of the two community charts (BorisPolonsky/dify-helm and
//! douban/charts): replicas, HPA maximum, rolling-update surge and env read from the values the
//! way each chart renders them, with the expected demand computed by hand in each test.

use crate::support::{difyplan, json};
use serde_json::Value;

/// A values file written for one case, with the path `check` is given.
struct Case {
    _dir: tempfile::TempDir,
    path: String,
    text: &'static str,
}

fn case(name: &str, text: &'static str) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    Case { path: path.display().to_string(), _dir: dir, text }
}

impl Case {
    /// `check <file> --format json <extra>`: the exit code and the report.
    fn check(&self, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["check", self.path.as_str(), "--format", "json"];
        args.extend_from_slice(extra);
        let r = difyplan(&args);
        assert!(r.code <= 1, "{}\n{}", r.stdout, r.stderr);
        (r.code, json(&r))
    }

    /// The 1-based line of the first line containing `needle` at or after the first line
    /// containing `anchor`: `line("name: SERVER_WORKER_AMOUNT", "value:")`.
    fn line(&self, anchor: &str, needle: &str) -> usize {
        let lines: Vec<&str> = self.text.lines().collect();
        let start = lines.iter().position(|l| l.contains(anchor)).unwrap_or_else(|| panic!("no line with {anchor:?}"));
        start
            + lines[start..]
                .iter()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no {needle:?} after {anchor:?}"))
            + 1
    }

    fn file_source(&self, line: usize) -> Value {
        serde_json::json!({"kind": "file", "path": self.path, "line": line})
    }
}

fn codes(v: &Value) -> Vec<String> {
    v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
}

fn finding<'a>(v: &'a Value, code: &str) -> &'a Value {
    v["findings"].as_array().unwrap().iter().find(|f| f["code"] == code).unwrap_or_else(|| panic!("no {code}: {v}"))
}

/// `component → worst_pods` of the budget, in budget order.
fn worst_pods(v: &Value) -> Vec<(String, u64)> {
    v["deployments"][0]["budget"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["component"].as_str().unwrap().to_string(), l["worst_pods"].as_u64().unwrap()))
        .collect()
}

fn component<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["deployments"][0]["deployment"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component"] == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

fn pairs(expected: &[(&str, u64)]) -> Vec<(String, u64)> {
    expected.iter().map(|(c, n)| (c.to_string(), *n)).collect()
}

/// dify-helm with an autoscaled api and an external database.
const DIFY_HELM_HPA: &str = r#"# values-prod.yaml for BorisPolonsky/dify-helm
image:
  api:
    repository: langgenius/dify-api
    tag: "1.16.1"
api:
  enabled: true
  replicas: 2
  resources:
    requests:
      cpu: "1"
      memory: 2Gi
  autoscaling:
    enabled: true
    minReplicas: 2
    maxReplicas: 10
    targetCPUUtilizationPercentage: 70
  extraEnv:
  - name: CHECK_UPDATE_URL
    value: ""
  - name: SERVER_WORKER_AMOUNT
    value: "4"
  - name: SQLALCHEMY_POOL_SIZE
    value: "30"
  - name: SQLALCHEMY_MAX_OVERFLOW
    value: "10"
  - name: DB_PASSWORD
    valueFrom:
      secretKeyRef:
        name: dify-db
        key: password
worker:
  enabled: true
  replicas: 3
  extraEnv:
  - name: CELERY_WORKER_AMOUNT
    value: "20"
  - name: SQLALCHEMY_POOL_SIZE
    value: "20"
  - name: SQLALCHEMY_MAX_OVERFLOW
    value: "5"
beat:
  enabled: true
  extraEnv:
  - name: SQLALCHEMY_POOL_SIZE
    value: "1"
  - name: SQLALCHEMY_MAX_OVERFLOW
    value: "1"
pluginDaemon:
  enabled: true
  replicas: 2
  extraEnv:
  - name: DB_MAX_OPEN_CONNS
    value: "20"
  - name: DB_MAX_IDLE_CONNS
    value: "5"
postgresql:
  enabled: false
externalPostgres:
  enabled: true
  username: dify_app
  password: change-me
  address: pg.example.internal
  port: 5432
  database:
    api: dify
    pluginDaemon: dify_plugin
"#;

/// The HPA maximum and Kubernetes' default surge on it; the worker, beat and plugin daemon from
/// their own lists; the external database's cap unknown until `--pg-max-connections` decides.
#[test]
fn dify_helm_hpa_maximum_surge_and_pools() {
    let c = case("values-prod.yaml", DIFY_HELM_HPA);
    // api: HPA max 10, surge ceil(25% × 10) = 3 → 13 pods × SERVER_WORKER_AMOUNT 4 × (30 + 10) = 2080
    // worker: 3 replicas, surge ceil(25% × 3) = 1 → 4 pods × 1 gevent process × (20 + 5) = 100
    // beat: 1 replica, the chart's Recreate strategy → 1 pod × 1 × (1 + 1) = 2
    // plugin daemon: 2 replicas, surge ceil(25% × 2) = 1 → 3 pods × DB_MAX_OPEN_CONNS 20 = 60
    // demand 2080 + 100 + 2 + 60 = 2242
    let (code, v) = c.check(&[]);
    assert_eq!(code, 1, "{v}");
    let b = &v["deployments"][0]["budget"];
    assert_eq!(b["demand"], 2242);
    assert_eq!(worst_pods(&v), pairs(&[("api", 13), ("worker", 4), ("worker_beat", 1), ("plugin_daemon", 3)]));
    assert_eq!(v["deployments"][0]["kind"], "helm");

    // Each number points at the values line that set it.
    let api = component(&v, "api");
    assert_eq!(api["max_replicas"]["value"], 10);
    assert_eq!(api["max_replicas"]["source"], c.file_source(c.line("maxReplicas: 10", "maxReplicas")));
    assert_eq!(api["replicas"]["source"], c.file_source(c.line("replicas: 2", "replicas")));
    assert_eq!(api["surge"]["value"], 3);
    assert_eq!(api["surge"]["source"]["kind"], "default");
    assert_eq!(api["processes"]["value"], 4);
    assert_eq!(api["processes"]["source"], c.file_source(c.line("name: SERVER_WORKER_AMOUNT", "value:")));
    assert_eq!(api["pool_size"]["source"], c.file_source(c.line("name: SQLALCHEMY_POOL_SIZE", "value:")));
    let worker = component(&v, "worker");
    assert_eq!(worker["concurrency"]["source"], c.file_source(c.line("name: CELERY_WORKER_AMOUNT", "value:")));
    assert_eq!(worker["pool_size"]["value"], 20);
    // beat does not inherit the worker's extraEnv: its own list sets its pool.
    let beat = component(&v, "worker_beat");
    assert_eq!(beat["per_process_max"], 2);
    assert_eq!(beat["surge"]["value"], 0);
    let daemon = component(&v, "plugin_daemon");
    assert_eq!(daemon["per_process_max"], 20);
    assert_eq!(daemon["at"], c.file_source(c.line("pluginDaemon:", "pluginDaemon:")));

    // The role is the external database's username, not a superuser; the cap is unknown.
    let d = &v["deployments"][0]["deployment"];
    assert_eq!(d["app_role"]["value"], "dify_app");
    assert_eq!(d["app_role"]["source"], c.file_source(c.line("username: dify_app", "username")));
    assert_eq!(d["app_role_superuser"], false);
    assert_eq!(d["version"], "1.16.1");
    assert_eq!(d["version_source"], c.file_source(c.line("tag: \"1.16.1\"", "tag")));
    assert_eq!(d["max_connections_found"], false);
    assert_eq!(d["idle_in_transaction_timeout"], Value::Null);
    let found = codes(&v);
    assert!(found.contains(&"max-connections-unknown".into()), "{found:?}");
    assert!(found.contains(&"connection-budget-exceeded".into()), "{found:?}");
    assert!(!found.contains(&"hpa-unbounded".into()));
    // The secret's value never shows; a valueFrom leaves no value to show.
    let r = difyplan(&["check", c.path.as_str(), "--format", "json"]);
    assert!(!r.stdout.contains("change-me"));

    // The flag decides: 3000 − 3 reserved = 2997 usable ≥ 2242 → the budget fits. The worker's
    // pool is below 2 × its -c, where streaming chat runs deadlock it (measured): an error, so
    // exit 1; a deployment whose chat runs do not stream passes.
    let (code, v) = c.check(&["--pg-max-connections", "3000"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["summary"]["within_budget"], true);
    let (code, _) = c.check(&["--pg-max-connections", "3000", "--streaming-share", "0"]);
    assert_eq!(code, 0);
    // No chart version is stated: the newest known one's defaults, said in a note.
    assert_eq!(codes(&v), ["worker-pool-deadlock-risk", "chart-version-assumed"]);
    assert_eq!(v["deployments"][0]["budget"]["usable"], 2997);
    // 2200 − 3 = 2197 < 2242 → exit 1.
    let (code, v) = c.check(&["--pg-max-connections", "2200"]);
    assert_eq!(code, 1);
    assert_eq!(codes(&v), ["connection-budget-exceeded", "worker-pool-deadlock-risk", "chart-version-assumed"]);
}

/// Autoscaling without a usable maximum: an explicit `null` cannot be counted (`hpa-unbounded`);
/// a file that leaves `maxReplicas` out gets the chart's default 100.
#[test]
fn dify_helm_autoscaling_without_maximum() {
    let c = case(
        "values.yaml",
        r#"api:
  replicas: 2
  autoscaling:
    enabled: true
    minReplicas: 2
    maxReplicas: null
worker:
  replicas: 1
externalPostgres:
  enabled: true
  username: dify
"#,
    );
    let (code, v) = c.check(&["--pg-max-connections", "1000"]);
    assert_eq!(code, 1, "hpa-unbounded is an error");
    let f = finding(&v, "hpa-unbounded");
    assert_eq!(f["source"], c.file_source(c.line("maxReplicas: null", "maxReplicas")));
    assert!(f["message"].as_str().unwrap().contains("api"), "{f}");
    assert_eq!(v["deployments"][0]["deployment"]["unbounded_autoscalers"].as_array().unwrap().len(), 1);
    // Only what can be counted: 2 replicas + ceil(25% × 2) = 1 → 3 pods × 1 × 40 = 120;
    // worker 1 + 1 → 2 × 40 = 80; beat 1 × 40 (Recreate); plugin daemon 1 + 1 → 2 × 30 = 60.
    assert_eq!(worst_pods(&v), pairs(&[("api", 3), ("worker", 2), ("worker_beat", 1), ("plugin_daemon", 2)]));
    assert_eq!(v["deployments"][0]["budget"]["demand"], 120 + 80 + 40 + 60);

    // Left out, the chart's `maxReplicas: 100` applies: 100 + ceil(25% × 100) = 125 pods.
    let c = case(
        "values.yaml",
        r#"api:
  autoscaling:
    enabled: true
worker:
  enabled: false
"#,
    );
    let (_, v) = c.check(&[]);
    assert!(!codes(&v).contains(&"hpa-unbounded".into()));
    let api = component(&v, "api");
    assert_eq!(api["max_replicas"]["value"], 100);
    assert_eq!(api["max_replicas"]["source"]["kind"], "default");
    assert_eq!(api["surge"]["value"], 25);
    assert_eq!(worst_pods(&v)[0], ("api".to_string(), 125));

    // An HPA the chart does not render (pluginDaemon has none) changes nothing.
    let c = case(
        "values.yaml",
        r#"api:
  replicas: 1
pluginDaemon:
  replicas: 1
  autoscaling:
    enabled: true
    maxReplicas: 50
"#,
    );
    let (_, v) = c.check(&[]);
    assert_eq!(component(&v, "plugin_daemon")["max_replicas"]["value"], 1);
}

/// Explicit strategies (a percentage, a count, Recreate, and RollingUpdate over the chart's
/// Recreate for beat), api_websocket when enabled, the bundled database's defaults.
#[test]
fn dify_helm_strategies_websocket_and_bundled_database() {
    let c = case(
        "values.yaml",
        r#"image:
  api:
    tag: "1.16.1"
api:
  replicas: 4
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 50%
      maxUnavailable: 0
apiWebsocket:
  enabled: true
  replicas: 2
  updateStrategy:
    type: Recreate
worker:
  enabled: false
beat:
  updateStrategy:
    type: RollingUpdate
pluginDaemon:
  replicas: 1
  updateStrategy:
    rollingUpdate:
      maxSurge: 2
"#,
    );
    // api: 4 + ceil(50% × 4) = 2 → 6 pods × 1 × 40 = 240
    // api_websocket: 2 + 0 (Recreate) → 2 pods × SERVER_WORKER_AMOUNT 1 (set by the chart) × 40 = 80
    // worker: disabled. beat: RollingUpdate, default 25% of 1 → 1 → 2 pods × 40 = 80
    // plugin daemon: 1 + 2 → 3 pods × 30 = 90; demand 490 against the bundled PostgreSQL's 100
    let (code, v) = c.check(&[]);
    assert_eq!(code, 1);
    assert_eq!(worst_pods(&v), pairs(&[("api", 6), ("api_websocket", 2), ("worker_beat", 2), ("plugin_daemon", 3)]));
    assert_eq!(v["deployments"][0]["budget"]["demand"], 490);
    let api = component(&v, "api");
    assert_eq!(api["surge"]["source"], c.file_source(c.line("maxSurge: 50%", "maxSurge")));
    let ws = component(&v, "api_websocket");
    assert_eq!(ws["processes"]["value"], 1);
    assert_eq!(ws["processes"]["source"]["kind"], "default");
    assert_eq!(ws["surge"]["source"], c.file_source(c.line("type: Recreate", "type")));
    // The bundled database: its cap is PostgreSQL's default (known, not assumed); the chart's
    // role is `postgres`, a superuser.
    let d = &v["deployments"][0]["deployment"];
    assert_eq!(d["max_connections"]["value"], 100);
    assert_eq!(d["max_connections_found"], true);
    assert_eq!(d["app_role"]["value"], "postgres");
    let found = codes(&v);
    assert!(!found.contains(&"max-connections-unknown".into()), "{found:?}");
    assert!(found.contains(&"superuser-app-role".into()), "{found:?}");

    // The bundled database's settings from the values: the bitnami container's env and a
    // postgresql.conf snippet (which wins), with its own role.
    let c = case(
        "values.yaml",
        r#"api:
  replicas: 1
worker:
  replicas: 1
postgresql:
  enabled: true
  # the chart's default replication would need the read replica's cap too
  architecture: standalone
  global:
    postgresql:
      auth:
        username: dify
        password: change-me
        database: dify
  primary:
    extraEnvVars:
    - name: POSTGRESQL_MAX_CONNECTIONS
      value: "300"
"#,
    );
    let (_, v) = c.check(&[]);
    let d = &v["deployments"][0]["deployment"];
    assert_eq!(d["max_connections"]["value"], 300);
    assert_eq!(d["max_connections"]["source"], c.file_source(c.line("POSTGRESQL_MAX_CONNECTIONS", "value:")));
    assert_eq!(d["app_role"]["value"], "dify");
    assert_eq!(d["app_role_superuser"], false);
    assert_eq!(d["idle_in_transaction_timeout"], Value::Null, "no postgresql.conf settings in the values");
    let c = case(
        "values.yaml",
        r#"api:
  replicas: 1
worker:
  replicas: 1
postgresql:
  architecture: standalone
  primary:
    extraEnvVars:
    - name: POSTGRESQL_MAX_CONNECTIONS
      value: "300"
    extendedConfiguration: |
      # tuned for Dify
      max_connections = 500
      shared_buffers = 1GB
"#,
    );
    let (_, v) = c.check(&[]);
    let d = &v["deployments"][0]["deployment"];
    assert_eq!(d["max_connections"]["value"], 500);
    assert_eq!(d["max_connections"]["source"], c.file_source(c.line("max_connections = 500", "max_connections")));
    // Settings written but no idle timeout among them: off, pointing at the block to add it to.
    assert_eq!(d["idle_in_transaction_timeout"]["value"], "0");
    assert_eq!(
        finding(&v, "idle-in-transaction-timeout-off")["source"],
        c.file_source(c.line("extendedConfiguration", "extendedConfiguration"))
    );
}

/// douban/charts: the global env lists, each component's own list last; the HPA minimum as the
/// replica count; the embedded PostgreSQL's settings; read from a folder.
const DOUBAN: &str = r#"# values for douban/charts dify
global:
  host: dify.example.com
  enableTLS: true
  image:
    tag: "1.9.1"
  extraEnvs: []
  extraBackendEnvs:
  - name: SECRET_KEY
    valueFrom:
      secretKeyRef:
        name: dify
        key: SECRET_KEY
  - name: DB_USERNAME
    value: dify
  - name: SQLALCHEMY_POOL_SIZE
    value: "20"
  - name: SQLALCHEMY_MAX_OVERFLOW
    value: "10"
api:
  replicaCount: 2
  autoscaling:
    enabled: true
    minReplicas: 2
    maxReplicas: 6
    targetCPUUtilizationPercentage: 80
  envs:
  - name: SERVER_WORKER_AMOUNT
    value: "2"
worker:
  replicaCount: 2
  envs:
  - name: CELERY_WORKER_AMOUNT
    value: "10"
workerBeat:
  replicaCount: 1
  envs:
  - name: SQLALCHEMY_POOL_SIZE
    value: "1"
  - name: SQLALCHEMY_MAX_OVERFLOW
    value: "0"
pluginDaemon:
  enabled: true
  replicaCount: 1
  envs:
  - name: DB_DATABASE
    value: dify_plugin
  - name: DB_MAX_OPEN_CONNS
    value: "10"
  - name: DB_MAX_IDLE_CONNS
    value: "5"
postgresql:
  embedded: true
  architecture: standalone
  auth:
    postgresPassword: change-me
    database: dify
  primary:
    extendedConfiguration: |
      max_connections = 400
      idle_in_transaction_session_timeout = 600000
"#;

#[test]
fn douban_global_lists_hpa_and_embedded_database() {
    let c = case("values.yaml", DOUBAN);
    // api: HPA max 6, surge ceil(25% × 6) = 2 → 8 pods × SERVER_WORKER_AMOUNT 2 × (20 + 10) = 480
    // worker: 2 replicas, surge ceil(25% × 2) = 1 → 3 pods × 1 × (20 + 10) = 90
    // workerBeat: 1 replica, surge ceil(25% × 1) = 1 → 2 pods × 1 × (1 + 0) = 2
    // plugin daemon: 1 replica, the chart's Recreate → 1 pod × DB_MAX_OPEN_CONNS 10 = 10
    // demand 480 + 90 + 2 + 10 = 582 against max_connections 400 − 3 (role `dify`) = 397
    let dir = std::path::Path::new(&c.path).parent().unwrap().display().to_string();
    let r = difyplan(&["check", dir.as_str(), "--format", "json"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v = json(&r);
    assert_eq!(v["deployments"][0]["kind"], "helm");
    assert_eq!(v["deployments"][0]["budget"]["demand"], 582);
    assert_eq!(v["deployments"][0]["budget"]["usable"], 397);
    assert_eq!(worst_pods(&v), pairs(&[("api", 8), ("worker", 3), ("worker_beat", 2), ("plugin_daemon", 1)]));
    assert_eq!(codes(&v), ["connection-budget-exceeded", "chart-version-assumed"]);

    let api = component(&v, "api");
    // With autoscaling the chart leaves `replicas` out: the HPA minimum is the floor.
    assert_eq!(api["replicas"]["source"], c.file_source(c.line("minReplicas: 2", "minReplicas")));
    assert_eq!(api["max_replicas"]["source"], c.file_source(c.line("maxReplicas: 6", "maxReplicas")));
    assert_eq!(api["pool_size"]["source"], c.file_source(c.line("extraBackendEnvs", "value: \"20\"")));
    let beat = component(&v, "worker_beat");
    assert_eq!(beat["pool_size"]["source"], c.file_source(c.line("workerBeat:", "value: \"1\"")));
    assert_eq!(component(&v, "plugin_daemon")["surge"]["value"], 0);

    let d = &v["deployments"][0]["deployment"];
    assert_eq!(d["version"], "1.9.1");
    assert_eq!(d["version_source"], c.file_source(c.line("tag: \"1.9.1\"", "tag")));
    assert_eq!(d["max_connections"]["value"], 400);
    assert_eq!(d["max_connections"]["source"], c.file_source(c.line("max_connections = 400", "max_connections")));
    assert_eq!(d["idle_in_transaction_timeout"]["value"], "600000");
    assert_eq!(d["app_role"]["value"], "dify");
    assert_eq!(d["app_role"]["source"], c.file_source(c.line("name: DB_USERNAME", "value:")));
    assert!(!r.stdout.contains("change-me"));

    // The flag decides: 700 − 3 = 697 ≥ 582 → exit 0.
    let (code, v) = c.check(&["--pg-max-connections", "700"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["deployments"][0]["deployment"]["max_connections"]["source"]["kind"], "flag");
}

/// An external database with douban/charts: nothing in the values says its cap.
#[test]
fn douban_external_database_cap_unknown() {
    let c = case(
        "values.yaml",
        r#"global:
  extraBackendEnvs:
  - name: DB_HOST
    value: pg.example.internal
  - name: DB_USERNAME
    value: dify
api:
  replicaCount: 1
postgresql:
  embedded: false
"#,
    );
    // api 2 × 40 + worker 2 × 40 + workerBeat 2 × 40 + plugin daemon 1 × 30 = 270
    let (code, v) = c.check(&[]);
    assert_eq!(code, 1);
    assert_eq!(v["deployments"][0]["budget"]["demand"], 270);
    assert!(codes(&v).contains(&"max-connections-unknown".into()));
    assert_eq!(v["deployments"][0]["deployment"]["max_connections_found"], false);
    let (code, v) = c.check(&["--pg-max-connections", "300"]);
    assert!(!codes(&v).contains(&"max-connections-unknown".into()));
    assert!(!codes(&v).contains(&"connection-budget-exceeded".into()), "297 usable ≥ 270");
    assert_eq!(code, 0, "{v}");
}

/// A trimmed copy of BorisPolonsky/dify-helm's own `values.yaml` (charts/dify/values.yaml @
/// 5644ee38, image 1.16.1): the keys that decide the budget, as the chart ships them.
const DIFY_HELM_DEFAULTS: &str = r#"global:
  edition: "SELF_HOSTED"
  internalApiKey: ""
image:
  api:
    repository: langgenius/dify-api
    tag: "1.16.1"
    pullPolicy: IfNotPresent
  pluginDaemon:
    repository: langgenius/dify-plugin-daemon
    tag: 0.6.3-local
api:
  enabled: true
  replicas: 1
  resources: {}
  autoscaling:
    enabled: false
    minReplicas: 1
    maxReplicas: 100
    targetCPUUtilizationPercentage: 80
  updateStrategy: {}
  extraEnv:
  # Apply your own Environment Variables if necessary.
  - name: CHECK_UPDATE_URL
    value: ""
  logLevel: INFO
  migration: true
worker:
  enabled: true
  replicas: 1
  autoscaling:
    enabled: false
    minReplicas: 1
    maxReplicas: 100
    targetCPUUtilizationPercentage: 80
  updateStrategy: {}
  extraEnv:
  # Apply your own Environment Variables if necessary.
  logLevel: INFO
beat:
  enabled: true
  updateStrategy:
    type: Recreate
  extraEnv:
  logLevel: INFO
apiWebsocket:
  enabled: false
  replicas: 1
  updateStrategy: {}
  extraEnv: []
web:
  enabled: true
  replicas: 1
sandbox:
  enabled: true
  replicas: 1
pluginDaemon:
  enabled: true
  replicas: 1
  updateStrategy: {}
  extraEnv:
postgresql:
  enabled: true
  name: postgres
  global:
    postgresql:
      auth:
        postgresPassword: "difyai123456"
        username: ""
        password: ""
        database: "dify"
  architecture: replication
  primary:
    persistence:
      enabled: true
      size: 8Gi
"#;

#[test]
fn dify_helm_chart_defaults() {
    let c = case("values.yaml", DIFY_HELM_DEFAULTS);
    // api 1 + ceil(25% × 1) = 2 pods × 1 × 40 = 80; worker the same, 80; beat 1 pod (Recreate) × 40;
    // plugin daemon 2 pods × 30 = 60; no api_websocket (disabled). 260 against the bundled 100.
    let (code, v) = c.check(&[]);
    assert_eq!(code, 1);
    assert_eq!(worst_pods(&v), pairs(&[("api", 2), ("worker", 2), ("worker_beat", 1), ("plugin_daemon", 2)]));
    assert_eq!(v["deployments"][0]["budget"]["demand"], 260);
    let d = &v["deployments"][0]["deployment"];
    assert_eq!(d["version"], "1.16.1");
    assert_eq!(d["app_role"]["value"], "postgres");
    assert_eq!(d["app_role"]["source"]["kind"], "default");
    assert_eq!(d["max_connections"]["value"], 100);
    assert_eq!(d["max_connections_found"], true);
    let api = component(&v, "api");
    assert_eq!(api["processes"]["value"], 1);
    assert_eq!(api["per_process_max"], 40);
    assert_eq!(api["env"]["MIGRATION_ENABLED"]["value"], "true");
    assert_eq!(api["env"]["MIGRATION_ENABLED"]["source"], c.file_source(c.line("migration: true", "migration")));
    let mut found = codes(&v);
    found.sort();
    assert_eq!(
        found,
        [
            "beat-pool-oversized",
            "chart-version-assumed",
            "connection-budget-exceeded",
            "plugin-daemon-pool-default",
            "streaming-runs-serialized",
            "superuser-app-role"
        ]
    );
}

/// A trimmed copy of douban/charts' own `values.yaml` (charts/dify/values.yaml @ 06cc538f,
/// image 1.10.1-fix.1).
const DOUBAN_DEFAULTS: &str = r#"volumes: []
volumeMounts: []
global:
  host: "chart-example.local"
  port: ""
  enableTLS: false
  image:
    tag: "1.10.1-fix.1"
  edition: "SELF_HOSTED"
  storageType: "s3"
  extraEnvs: []
  extraBackendEnvs:
  - name: SECRET_KEY
    value: "PleaseReplaceThisToYourSecretOrUse"
frontend:
  replicaCount: 1
  image:
    repository: langgenius/dify-web
    tag: ""
  autoscaling:
    enabled: false
    minReplicas: 1
    maxReplicas: 100
api:
  replicaCount: 1
  image:
    repository: langgenius/dify-api
    tag: ""
  envs:
  - name: CODE_MAX_NUMBER
    value: "9223372036854775807"
  - name: CODE_MAX_STRING_LENGTH
    value: "80000"
  autoscaling:
    enabled: false
    minReplicas: 1
    maxReplicas: 100
    targetCPUUtilizationPercentage: 80
worker:
  replicaCount: 1
  envs: []
  autoscaling:
    enabled: false
    minReplicas: 1
    maxReplicas: 100
    targetCPUUtilizationPercentage: 80
workerBeat:
  # It MUST run as a single replica (no scaling) to avoid duplicate scheduled tasks.
  replicaCount: 1
  envs: []
sandbox:
  replicaCount: 1
  apiKey: "dify-sandbox"
pluginDaemon:
  enabled: true
  replicaCount: 1
  updateStrategy:
    type: Recreate
  envs:
  - name: SERVER_PORT
    value: "5002"
  - name: DB_DATABASE
    value: "dify_plugin"
redis:
  embedded: true
  architecture: standalone
postgresql:
  embedded: true
  architecture: standalone
  auth:
    postgresPassword: "testpassword"
    database: "dify"
  primary:
    persistence:
      enabled: false
minio:
  embedded: false
"#;

#[test]
fn douban_chart_defaults() {
    let c = case("values.yaml", DOUBAN_DEFAULTS);
    // api 1 + 1 surge → 2 × 40 = 80; worker 80; workerBeat 2 × 40 = 80; plugin daemon 1 (Recreate) × 30.
    let (code, v) = c.check(&[]);
    assert_eq!(code, 1);
    assert_eq!(worst_pods(&v), pairs(&[("api", 2), ("worker", 2), ("worker_beat", 2), ("plugin_daemon", 1)]));
    assert_eq!(v["deployments"][0]["budget"]["demand"], 270);
    let d = &v["deployments"][0]["deployment"];
    // 1.10.1-fix.1 is a fix of 1.10.1, read with 1.10.1's row (db_postgres, db_mysql).
    assert_eq!(d["version"], "1.10.1");
    assert_eq!(d["version_source"], c.file_source(c.line("tag: \"1.10.1-fix.1\"", "tag")));
    assert_eq!(d["app_role"]["value"], "postgres");
    assert_eq!(d["max_connections"]["value"], 100);
    assert_eq!(d["max_connections_found"], true);
    assert_eq!(component(&v, "api")["env"]["MODE"]["value"], "api");
    let mut found = codes(&v);
    found.sort();
    assert_eq!(
        found,
        [
            "beat-pool-oversized",
            "chart-version-assumed",
            "connection-budget-exceeded",
            "plugin-daemon-pool-default",
            "streaming-runs-serialized",
            "superuser-app-role"
        ]
    );
}

/// Values of neither chart, and a sizing key hidden in a Secret: exit 2 with the file, the line
/// and what to do.
#[test]
fn unreadable_values_exit_2() {
    let c = case("values.yaml", "api:\n  port: 80\nworker:\n  threads: 4\n");
    let r = difyplan(&["check", c.path.as_str()]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains(&c.path)
            && r.stderr.contains("BorisPolonsky/dify-helm")
            && r.stderr.contains("douban/charts"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("helm template"), "{}", r.stderr);

    let c = case(
        "values.yaml",
        r#"worker:
  replicas: 1
api:
  replicas: 1
  extraEnv:
  - name: SQLALCHEMY_POOL_SIZE
    valueFrom:
      configMapKeyRef:
        name: tuning
        key: pool
"#,
    );
    let r = difyplan(&["check", c.path.as_str()]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let at = format!("{}:{}", c.path, c.line("name: SQLALCHEMY_POOL_SIZE", "name"));
    assert!(r.stderr.contains(&at) && r.stderr.contains("valueFrom"), "{}", r.stderr);

    let c = case("values.yaml", "api:\n  replicas: two\nworker:\n  replicas: 1\n");
    let r = difyplan(&["check", c.path.as_str()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains(&format!("{}:2", c.path)) && r.stderr.contains("api.replicas"), "{}", r.stderr);
}
