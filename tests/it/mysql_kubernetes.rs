//! Dify on MySQL in Kubernetes manifests and Helm values: `check` reads `DB_TYPE` and the MySQL
//! server's cap (args over a mounted my.cnf), and what `render --db-type mysql` writes for
//! Kubernetes and dify-helm passes its own `check`; douban/charts is refused.

use crate::render_cli::{KUBERNETES_VERSION, kubernetes_validate_tool};
use crate::round_trip::{plan_facts_with, round_trip};
use crate::support::{check_json, difyplan, folder, s};
use std::process::{Command, Stdio};

/// Dify 1.16.1 on Kubernetes with Dify's own pools (no sizing keys set), `DB_TYPE=mysql` in
/// the shared ConfigMap, and a MySQL server whose container is `server`.
fn manifests(server: &str) -> String {
    let dify = |name: &str, image: &str, mode: Option<&str>| {
        let env = mode.map_or(String::new(), |m| format!("          env:\n            - {{name: MODE, value: {m}}}\n"));
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    \
             matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      \
             containers:\n        - name: main\n          image: {image}\n{env}          envFrom:\n            - \
             configMapRef: {{name: dify-config}}\n---\n"
        )
    };
    let mut out = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dify-config\ndata:\n  DB_TYPE: mysql\n  DB_HOST: mysql\n  \
         DB_PORT: \"3306\"\n  DB_USERNAME: dify\n---\n",
    );
    out += &dify("dify-api", "langgenius/dify-api:1.16.1", Some("api"));
    out += &dify("dify-worker", "langgenius/dify-api:1.16.1", Some("worker"));
    out += &dify("dify-plugin-daemon", "langgenius/dify-plugin-daemon:0.6.10-local", None);
    out + server
}

/// A MySQL StatefulSet: `args` (one YAML list line each), and a ConfigMap `mysql-conf`
/// mounted at `mount` when given.
fn mysql(args: &[&str], mount: Option<&str>) -> String {
    let args = if args.is_empty() {
        String::new()
    } else {
        format!("          args: [{}]\n", args.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", "))
    };
    let (mounts, volumes) = match mount {
        Some(at) => (
            format!("          volumeMounts:\n            - {{name: conf, mountPath: {at}}}\n"),
            "      volumes:\n        - {name: conf, configMap: {name: mysql-conf}}\n".to_string(),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: mysql\nspec:\n  serviceName: mysql\n  selector:\n    \
         matchLabels: {{app: mysql}}\n  template:\n    metadata:\n      labels: {{app: mysql}}\n    spec:\n      \
         containers:\n        - name: mysql\n          image: mysql:8.0\n{args}          env:\n            - {{name: \
         MYSQL_USER, value: dify}}\n{mounts}{volumes}"
    )
}

const CONF: &str = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mysql-conf\ndata:\n  dify.cnf: |\n    \
                    [client]\n    max_connections = 5\n    [mysqld]\n    max_connections = 1000\n";

fn report(text: &str, more: &[&str]) -> (crate::support::Run, serde_json::Value) {
    let dir = folder(&[("dify.yaml", text)]);
    let path = s(&dir.path().join("dify.yaml"));
    let mut args = vec![path.as_str()];
    args.extend_from_slice(more);
    check_json(&args)
}

fn codes(v: &serde_json::Value) -> Vec<String> {
    v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
}

/// A MySQL server at `--max_connections=150` under Dify 1.16.1's default pools: over budget, and
/// the finding points at the server's args and names MySQL's key.
#[test]
fn server_at_150_fails_with_dify_defaults() {
    let text = manifests(&mysql(&["--max_connections=150", "--innodb_buffer_pool_size=1G"], None));
    let (r, v) = report(&text, &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let d = &v["deployments"][0];
    assert_eq!(d["deployment"]["db_type"], "mysql");
    assert_eq!(d["budget"]["cap"]["max_connections"], 150);
    // MYSQL_USER is an ordinary account: MySQL withholds nothing from it.
    assert_eq!(d["budget"]["usable"], 150);
    assert!(d["budget"]["demand"].as_u64().unwrap() > 150, "{}", d["budget"]);
    let line = text.lines().position(|l| l.contains("--max_connections=150")).unwrap() + 1;
    assert_eq!(d["deployment"]["max_connections"]["source"]["line"], line);
    let f = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "connection-budget-exceeded").unwrap();
    assert!(f["remedy"].as_str().unwrap().contains("--max_connections"), "{f}");
    assert!(!codes(&v).contains(&"idle-in-transaction-timeout-off".to_string()), "a PostgreSQL setting");
    // The two-word form is the same option.
    let (_, v) = report(&manifests(&mysql(&["--max-connections", "150"], None)), &[]);
    assert_eq!(v["deployments"][0]["budget"]["cap"]["max_connections"], 150);
}

/// A my.cnf from a ConfigMap mounted at conf.d: its `[mysqld]` group counts (not `[client]`),
/// with its own line; args win over it, as on mysqld's command line.
#[test]
fn my_cnf_from_a_config_map() {
    let text = manifests(&(mysql(&[], Some("/etc/mysql/conf.d")) + CONF));
    let (r, v) = report(&text, &[]);
    let d = &v["deployments"][0];
    assert_eq!(d["budget"]["cap"]["max_connections"], 1000, "{}", r.stderr);
    assert_eq!(r.code, 0, "{:?}", codes(&v));
    let line = text.lines().position(|l| l.trim() == "max_connections = 1000").unwrap() + 1;
    assert_eq!(d["deployment"]["max_connections"]["source"]["line"], line);
    let (r, v) = report(&manifests(&(mysql(&["--max_connections=150"], Some("/etc/mysql/conf.d")) + CONF)), &[]);
    assert_eq!(v["deployments"][0]["budget"]["cap"]["max_connections"], 150);
    assert_eq!(r.code, 1);
    // Mounted where mysqld reads nothing, the file does not count: MySQL's default 151.
    let (_, v) = report(&manifests(&(mysql(&[], Some("/srv/conf")) + CONF)), &[]);
    assert_eq!(v["deployments"][0]["budget"]["cap"]["max_connections"], 151);
}

/// A my.cnf mounted as the main option file (Bitnami's chart mounts one with `subPath`) is read
/// first and a conf.d file after it wins, as mysqld reads them.
#[test]
fn main_my_cnf_then_conf_d() {
    let server = |mounts: &str| {
        format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: mysql\nspec:\n  serviceName: mysql\n  \
             selector:\n    matchLabels: {{app: mysql}}\n  template:\n    metadata:\n      labels: {{app: mysql}}\n    \
             spec:\n      containers:\n        - name: mysql\n          image: bitnami/mysql:8.0\n          \
             volumeMounts:\n{mounts}      volumes:\n        - {{name: main, configMap: {{name: mysql-main}}}}\n        \
             - {{name: conf, configMap: {{name: mysql-conf}}}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  \
             name: mysql-main\ndata:\n  my.cnf: |\n    [mysqld]\n    max_connections = 400\n"
        )
    };
    let main = "            - {name: main, mountPath: /opt/bitnami/mysql/conf/my.cnf, subPath: my.cnf}\n";
    let conf_d = "            - {name: conf, mountPath: /etc/mysql/conf.d}\n";
    let (_, v) = report(&manifests(&server(main)), &["--fail-on", "never"]);
    assert_eq!(v["deployments"][0]["budget"]["cap"]["max_connections"], 400);
    let text = manifests(&(server(&format!("{conf_d}{main}")) + CONF));
    let (_, v) = report(&text, &["--fail-on", "never"]);
    assert_eq!(v["deployments"][0]["budget"]["cap"]["max_connections"], 1000, "conf.d is read after my.cnf");
}

/// DB_TYPE=mysql with no MySQL server in the manifests: MySQL's 151 assumed and said, with the
/// same advice as compose; `--db-max-connections` gives the cap.
#[test]
fn external_mysql_needs_the_flag() {
    let text = manifests("");
    let (_, v) = report(&text, &["--fail-on", "never"]);
    assert_eq!(v["deployments"][0]["budget"]["cap"]["max_connections"], 151);
    let f = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "max-connections-unknown").unwrap();
    assert!(f["remedy"].as_str().unwrap().contains("--db-max-connections"), "{f}");
    let (r, v) = report(&text, &["--db-max-connections", "1000"]);
    assert_eq!(r.code, 0, "{:?}", codes(&v));
    assert_eq!(v["deployments"][0]["budget"]["cap"]["max_connections"], 1000);
    // Another DB_TYPE is refused at its line.
    let dir = folder(&[("dify.yaml", &text.replace("DB_TYPE: mysql", "DB_TYPE: oceanbase"))]);
    let r = difyplan(&["check", &s(&dir.path().join("dify.yaml"))]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("dify.yaml:6") && r.stderr.contains("DB_TYPE=oceanbase"), "{}", r.stderr);
}

/// What `render kubernetes --db-type mysql` writes passes its own `check --qps Q --profile P`
/// (the server's cap read from mysql.yaml, no flag) and fails past the plan's admission; the
/// manifests validate against Kubernetes' schemas.
#[test]
fn rendered_kubernetes_sets_pass_their_own_check() {
    let tool = kubernetes_validate_tool();
    for (profile, qps) in [("chat", "10"), ("workflow", "100"), ("agent", "500")] {
        let case = format!("kubernetes mysql {profile} {qps}");
        let dir = tempfile::tempdir().unwrap();
        let out = s(dir.path());
        let r =
            difyplan(&["render", "kubernetes", "--qps", qps, "--profile", profile, "--db-type", "mysql", "-o", &out]);
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        let text = std::fs::read_to_string(dir.path().join("mysql.yaml")).unwrap();
        assert!(!dir.path().join("postgresql.yaml").exists(), "{case}");
        let (max, factor) = plan_facts_with(profile, qps, "kubernetes", "none", &["--db-type", "mysql"]);
        assert!(text.contains(&format!("- \"--max_connections={max}\"")), "{case}: {text}");
        assert!(text.contains("--innodb_buffer_pool_size="), "{case}");
        let (_, v) = check_json(&[&out, "--qps", qps, "--profile", profile]);
        let d = &v["deployments"][0];
        assert_eq!(d["deployment"]["db_type"], "mysql", "{case}");
        assert_eq!(d["budget"]["cap"]["max_connections"], max, "{case}");
        assert_eq!(d["deployment"]["app_role_superuser"], false, "{case}");
        round_trip(dir.path(), &case, profile, qps, factor, &[]);
        if let Some(tool) = &tool {
            let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
            let out = Command::new(tool)
                .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
                .args(&files)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "{case}: kubernetes-validate failed:\n{log}");
            assert!(log.contains("statefulset/dify-mysql") && log.contains("service/dify-mysql"), "{log}");
        }
    }
    // root (--app-role superuser) may open one more: check reads it as the superuser.
    let dir = tempfile::tempdir().unwrap();
    let out = s(dir.path());
    let args = ["render", "kubernetes", "--qps", "20", "--db-type", "mysql", "--app-role", "superuser", "-o", &out];
    assert_eq!(difyplan(&args).code, 0);
    let (_, v) = check_json(&[&out]);
    let b = &v["deployments"][0]["budget"];
    assert_eq!(b["usable"].as_u64().unwrap(), b["cap"]["max_connections"].as_u64().unwrap() + 1, "{b}");
}

/// dify-helm's externalMysql: values rendered with `--db-type mysql` pass their own check
/// against the planned server (`--db-max-connections`); without the flag the cap is unknown.
#[test]
fn rendered_dify_helm_values_pass_their_own_check() {
    for (profile, qps) in [("chat", "10"), ("workflow", "100")] {
        let case = format!("helm borispolonsky mysql {profile} {qps}");
        let dir = tempfile::tempdir().unwrap();
        let out = s(dir.path());
        let r = difyplan(&[
            "render",
            "helm",
            "--chart",
            "borispolonsky",
            "--qps",
            qps,
            "--profile",
            profile,
            "--db-type",
            "mysql",
            "-o",
            &out,
        ]);
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        let (max, factor) = plan_facts_with(profile, qps, "kubernetes", "none", &["--db-type", "mysql"]);
        let cap = max.to_string();
        let values = s(&dir.path().join("values.yaml"));
        let (_, v) = check_json(&[&values, "--qps", qps, "--profile", profile]);
        let d = &v["deployments"][0];
        assert_eq!(d["deployment"]["db_type"], "mysql", "{case}");
        assert_eq!(d["deployment"]["app_role"]["value"], "dify", "{case}");
        assert!(codes(&v).contains(&"max-connections-unknown".to_string()), "{case}");
        round_trip(
            dir.path(),
            &case,
            profile,
            qps,
            factor,
            &["--db-max-connections", &cap, "--chart", "borispolonsky"],
        );
    }
}

/// dify-helm's externalMysql as users write it: `root` by default (CONNECTION_ADMIN, one more
/// connection); only from 0.34, whose templates read it; DB_TYPE=mysql beside a bundled
/// PostgreSQL is refused; douban/charts is refused by render, naming the chart and what to do.
#[test]
fn helm_charts_and_their_mysql_paths() {
    let values = "api:\n  replicas: 1\n  extraEnv:\n    - {name: SQLALCHEMY_POOL_SIZE, value: \"10\"}\n\
                  externalMysql:\n  enabled: true\n  address: mysql.example\n";
    let dir = folder(&[("values.yaml", values)]);
    let path = s(&dir.path().join("values.yaml"));
    let (_, v) = check_json(&[&path, "--chart", "borispolonsky", "--db-max-connections", "500"]);
    let d = &v["deployments"][0];
    assert_eq!(d["deployment"]["db_type"], "mysql");
    assert_eq!(d["deployment"]["app_role"]["value"], "root");
    assert_eq!(d["budget"]["usable"], 501);
    assert!(codes(&v).contains(&"superuser-app-role".to_string()));
    let (_, v) = check_json(&[&path, "--chart", "borispolonsky@0.33.0", "--fail-on", "never"]);
    assert_eq!(v["deployments"][0]["deployment"]["db_type"], serde_json::Value::Null, "0.33 reads no externalMysql");

    let douban = "api:\n  envs:\n    - {name: DB_TYPE, value: mysql}\n    - {name: SERVER_WORKER_AMOUNT, value: \"2\"}\nworker:\n  replicaCount: 1\n";
    let dir = folder(&[("values.yaml", douban)]);
    let r = difyplan(&["check", &s(&dir.path().join("values.yaml")), "--chart", "douban"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("values.yaml:3") && r.stderr.contains("postgresql.embedded: false"), "{}", r.stderr);
    let dir = folder(&[("values.yaml", &format!("postgresql:\n  embedded: false\n{douban}"))]);
    let (_, v) = check_json(&[&s(&dir.path().join("values.yaml")), "--chart", "douban", "--db-max-connections", "400"]);
    assert_eq!(v["deployments"][0]["deployment"]["db_type"], "mysql");
    assert_eq!(v["deployments"][0]["budget"]["cap"]["max_connections"], 400);

    let r = difyplan(&["render", "helm", "--chart", "douban", "--qps", "20", "--db-type", "mysql"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("douban/charts has no MySQL path") && r.stderr.contains("--chart borispolonsky"));
    let r = difyplan(&["render", "helm", "--chart", "borispolonsky@0.33.0", "--qps", "20", "--db-type", "mysql"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("0.33 has no MySQL path"), "{}", r.stderr);
    let r = difyplan(&["render", "kubernetes", "--qps", "20", "--db-type", "mysql", "--pooler", "pgbouncer"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("ProxySQL"), "{}", r.stderr);
}
