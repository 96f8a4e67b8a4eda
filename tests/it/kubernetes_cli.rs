//! `difyplan check` on Kubernetes manifests written by the tests, with the expected numbers
//! computed by hand in the comments.

use crate::support::{difyplan, json};

/// ConfigMap + api (HPA to 10) + worker + beat + plugin daemon + PostgreSQL, as `helm template`
/// prints them (`# Source:` comments between documents).
const MANIFESTS: &str = r#"---
# Source: dify/templates/config.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: dify-env
data:
  SERVER_WORKER_AMOUNT: "4"
  SQLALCHEMY_POOL_SIZE: "30"
  SQLALCHEMY_MAX_OVERFLOW: "10"
  DB_USERNAME: dify_app
---
# Source: dify/templates/api.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: dify-api
spec:
  replicas: 3
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
        - name: api
          image: langgenius/dify-api:1.16.1
          envFrom:
            - configMapRef:
                name: dify-env
          env:
            - name: MODE
              value: api
            - name: SERVER_WORKER_CONNECTIONS
              value: "10"
        - name: log-shipper
          image: fluent/fluent-bit:3
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: dify-api
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: dify-api}
  minReplicas: 3
  maxReplicas: 10
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: dify-worker
spec:
  replicas: 2
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      containers:
        - name: worker
          image: langgenius/dify-api:1.16.1
          envFrom:
            - configMapRef: {name: dify-env}
          env:
            - name: MODE
              value: worker
            - name: CELERY_WORKER_AMOUNT
              value: "8"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: dify-beat
spec:
  replicas: 1
  strategy:
    type: Recreate
  selector: {matchLabels: {app: beat}}
  template:
    metadata: {labels: {app: beat}}
    spec:
      containers:
        - name: beat
          image: langgenius/dify-api:1.16.1
          env:
            - name: MODE
              value: beat
            - name: SQLALCHEMY_POOL_SIZE
              value: "1"
            - name: SQLALCHEMY_MAX_OVERFLOW
              value: "1"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: dify-plugin-daemon
spec:
  replicas: 2
  strategy:
    rollingUpdate:
      maxSurge: 1
  selector: {matchLabels: {app: plugin}}
  template:
    metadata: {labels: {app: plugin}}
    spec:
      containers:
        - name: plugin-daemon
          image: langgenius/dify-plugin-daemon:0.6.10-local
          env:
            - name: DB_MAX_OPEN_CONNS
              value: "20"
            - name: DB_PASSWORD
              valueFrom:
                secretKeyRef: {name: db, key: password}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: postgres
spec:
  replicas: 1
  selector: {matchLabels: {app: pg}}
  serviceName: postgres
  template:
    metadata: {labels: {app: pg}}
    spec:
      containers:
        - name: postgres
          image: postgres:15-alpine
          args: ["-c", "max_connections=800", "-c", "idle_in_transaction_session_timeout=600000"]
"#;

fn check(files: &[(&str, &str)], extra: &[&str]) -> (i32, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let d = dir.path().display().to_string();
    let mut args = vec!["check", d.as_str(), "--format", "json"];
    args.extend_from_slice(extra);
    let r = difyplan(&args);
    let v = if r.code <= 1 { json(&r) } else { serde_json::Value::Null };
    (r.code, v, r.stderr)
}

fn line(v: &serde_json::Value, component: &str) -> serde_json::Value {
    v["deployments"][0]["budget"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["component"] == component)
        .cloned()
        .unwrap_or_else(|| panic!("no {component} line"))
}

/// By hand: api HPA max 10 + ceil(25% × 10) = 3 surge = 13 pods × 4 processes × (30 + 10) = 2080.
/// worker: 2 + ceil(25% × 2) = 1 → 3 pods × 1 gevent process × 40 = 120.
/// beat: Recreate → 1 pod × 1 × (1 + 1) = 2. plugin daemon: 2 + maxSurge 1 = 3 pods × 20 = 60.
/// Demand 2262 against max_connections 800 (a dedicated role: 797 usable) → exit 1.
#[test]
fn hand_computed_budget() {
    let (code, v, stderr) = check(&[("all.yaml", MANIFESTS)], &[]);
    assert_eq!(code, 1, "{stderr}");
    let api = line(&v, "api");
    assert_eq!(
        (
            api["worst_pods"].as_u64(),
            api["processes"].as_u64(),
            api["per_process_max"].as_u64(),
            api["connections"].as_u64()
        ),
        (Some(13), Some(4), Some(40), Some(2080))
    );
    assert_eq!(line(&v, "worker")["connections"], 120);
    assert_eq!(line(&v, "worker_beat")["connections"], 2);
    assert_eq!(line(&v, "plugin_daemon")["connections"], 60);
    let b = &v["deployments"][0]["budget"];
    assert_eq!(b["demand"], 2262);
    assert_eq!(b["cap"]["max_connections"], 800);
    assert_eq!(b["usable"], 797);
    let codes: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"connection-budget-exceeded"));
    assert!(!codes.contains(&"superuser-app-role"), "DB_USERNAME is dify_app");
    assert!(!codes.contains(&"idle-in-transaction-timeout-off"));
    // Sources: the HPA's maxReplicas line, the ConfigMap's line for the pool.
    let api_c = &v["deployments"][0]["deployment"]["components"][0];
    let text_line = |needle: &str| MANIFESTS.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert_eq!(api_c["max_replicas"]["source"]["line"], text_line("maxReplicas: 10"));
    assert_eq!(api_c["pool_size"]["source"]["line"], text_line("SQLALCHEMY_POOL_SIZE: \"30\""));
    // With a cap that holds it, exit 0.
    let (code, _, _) = check(&[("all.yaml", MANIFESTS)], &["--pg-max-connections", "2300"]);
    assert_eq!(code, 0);
}

/// The ConfigMap may live in another file; a missing one is an input error naming it.
#[test]
fn config_map_across_files_and_missing() {
    let (cm, rest) = MANIFESTS.split_at(MANIFESTS.find("# Source: dify/templates/api.yaml").unwrap());
    let (code, v, _) = check(&[("a-config.yaml", cm), ("b-apps.yaml", rest)], &[]);
    assert_eq!(code, 1);
    assert_eq!(v["deployments"][0]["budget"]["demand"], 2262);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("apps.yaml"), rest).unwrap();
    let r = difyplan(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("ConfigMap `dify-env`") && r.stderr.contains("apps.yaml:"), "{}", r.stderr);
}

/// maxSurge as a percentage rounds up on the maximum replicas; as a number it is pods.
#[test]
fn surge_forms() {
    for (surge, expect_pods) in [("\"50%\"", 10 + 5), ("\"1%\"", 10 + 1), ("0", 10), ("4", 14)] {
        let text = MANIFESTS.replacen(
            "  replicas: 3\n",
            &format!("  replicas: 3\n  strategy:\n    rollingUpdate:\n      maxSurge: {surge}\n"),
            1,
        );
        let (_, v, stderr) = check(&[("all.yaml", &text)], &[]);
        assert_eq!(line(&v, "api")["worst_pods"], expect_pods, "maxSurge {surge}: {stderr}");
    }
}

/// An HPA whose target is not among the inputs, or that has no maximum, is reported.
#[test]
fn hpa_unbounded() {
    let text = MANIFESTS.replace("kind: Deployment, name: dify-api}", "kind: Deployment, name: dify-api-canary}");
    let (code, v, _) = check(&[("all.yaml", &text)], &["--pg-max-connections", "5000"]);
    let codes: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"hpa-unbounded"), "{codes:?}");
    assert_eq!(code, 1, "hpa-unbounded is an error");
    // Without the autoscaler the api counts 3 + 1 surge pods.
    assert_eq!(line(&v, "api")["worst_pods"], 4);
    let (_, v, _) = check(&[("all.yaml", MANIFESTS)], &["--pg-max-connections", "5000"]);
    assert!(!v["findings"].as_array().unwrap().iter().any(|f| f["code"] == "hpa-unbounded"));
}

/// Without a PostgreSQL manifest or flag the cap is unknown: reported, 100 assumed.
#[test]
fn max_connections_unknown() {
    let text = &MANIFESTS[..MANIFESTS.find("kind: StatefulSet").unwrap() - "apiVersion: apps/v1\n".len()];
    let (_, v, _) = check(&[("all.yaml", text)], &[]);
    assert!(v["findings"].as_array().unwrap().iter().any(|f| f["code"] == "max-connections-unknown"));
    assert_eq!(v["deployments"][0]["budget"]["cap"]["max_connections"], 100);
    let (_, v, _) = check(&[("all.yaml", text)], &["--pg-max-connections", "3000"]);
    assert!(!v["findings"].as_array().unwrap().iter().any(|f| f["code"] == "max-connections-unknown"));
}

/// Secrets referenced with valueFrom never show a value; nothing secret is printed.
#[test]
fn secret_refs_are_not_values() {
    let (_, v, _) = check(&[("all.yaml", MANIFESTS)], &[]);
    assert!(!v.to_string().contains("secretKeyRef"));
}
