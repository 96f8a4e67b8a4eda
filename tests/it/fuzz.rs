//! Fuzzing the readers through `check`'s own entry points with property tests: arbitrary bytes,
//! and structured compose files and manifests with hostile values. No panic, no hang.
//! `DIFYPLAN_FUZZ_CASES=N` sets the campaign's length (256 per property in the suite).

use difyplan::cmd::check;
use proptest::prelude::*;
use std::time::{Duration, Instant};

fn cases() -> u32 {
    std::env::var("DIFYPLAN_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// Run `check` on one folder holding `files`, in process; it must return (Ok or Err), fast.
fn check_folder(files: &[(&str, Vec<u8>)]) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let started = Instant::now();
    let args = difyplan::cli::CheckArgs {
        paths: vec![dir.path().to_path_buf()],
        format: difyplan::cli::CheckFormat::Json,
        fail_on: difyplan::cli::FailOn::Error,
        exit_zero: false,
        quiet: false,
        color: difyplan::cli::ColorChoice::Never,
        pg_max_connections: None,
        dify_version: None,
        app_role: None,
        config: None,
        env_file: None,
        host_cpus: None,
        admin_reserve: 0,
        values: Vec::new(),
        chart: None,
        wide: false,
        load: Default::default(),
    };
    let mut out = Vec::new();
    let mut err = Vec::new();
    let _ = check::run(&args, &mut difyplan::cmd::Io { out: &mut out, err: &mut err });
    assert!(started.elapsed() < Duration::from_secs(5), "check took {:?}", started.elapsed());
}

/// Values that have broken parsers before: huge numbers, signs, units, interpolation, quotes.
fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("18446744073709551615".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("-1".to_string()),
        Just("1e9".to_string()),
        Just("".to_string()),
        Just("\"30\"".to_string()),
        Just("'${A:-${B:-${C}}}'".to_string()),
        Just("${SQLALCHEMY_POOL_SIZE:?unset}".to_string()),
        Just("100%".to_string()),
        Just("4294967296%".to_string()),
        Just("*anchor".to_string()),
        Just("[1, 2]".to_string()),
        Just("{a: 1}".to_string()),
        (0u64..100_000).prop_map(|n| n.to_string()),
        "[ -~]{0,12}",
    ]
}

const KEYS: &[&str] = &[
    "SQLALCHEMY_POOL_SIZE",
    "SQLALCHEMY_MAX_OVERFLOW",
    "SERVER_WORKER_AMOUNT",
    "SERVER_WORKER_CONNECTIONS",
    "CELERY_WORKER_AMOUNT",
    "CELERY_WORKER_CLASS",
    "CELERY_AUTO_SCALE",
    "CELERY_MAX_WORKERS",
    "DB_MAX_OPEN_CONNS",
    "DB_MAX_IDLE_CONNS",
    "POSTGRES_MAX_CONNECTIONS",
    "REDIS_MAX_CONNECTIONS",
    "COMPOSE_PROFILES",
    "DB_USERNAME",
    "MODE",
];

fn compose_file() -> impl Strategy<Value = (String, String)> {
    let service = (
        prop::sample::select(vec![
            "api",
            "worker",
            "worker_beat",
            "plugin_daemon",
            "api_websocket",
            "db",
            "db_postgres",
            "x",
        ]),
        prop::collection::vec((prop::sample::select(KEYS.to_vec()), hostile_value()), 0..6),
        hostile_value(),
        hostile_value(),
    );
    (prop::collection::vec(service, 1..6), prop::collection::vec((prop::sample::select(KEYS.to_vec()), hostile_value()), 0..8)).prop_map(|(services, env)| {
        let mut y = String::from("services:\n");
        for (name, vars, replicas, command) in services {
            y.push_str(&format!("  {name}:\n    image: langgenius/dify-api:1.16.1\n    deploy:\n      replicas: {replicas}\n    command: {command}\n    environment:\n"));
            for (k, v) in vars {
                y.push_str(&format!("      {k}: {v}\n"));
            }
        }
        let e: String = env.into_iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        (y, e)
    })
}

fn manifests() -> impl Strategy<Value = String> {
    let doc = (
        prop::sample::select(vec!["Deployment", "StatefulSet", "HorizontalPodAutoscaler", "ConfigMap"]),
        hostile_value(),
        hostile_value(),
        prop::collection::vec((prop::sample::select(KEYS.to_vec()), hostile_value()), 0..5),
    );
    prop::collection::vec(doc, 1..6).prop_map(|docs| {
        docs.into_iter()
            .map(|(kind, a, b, env)| {
                let env: String = env.into_iter().map(|(k, v)| format!("            - name: {k}\n              value: {v}\n")).collect();
                let data: String = KEYS.iter().take(3).map(|k| format!("  {k}: {a}\n")).collect();
                format!(
                    "apiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: x\ndata:\n{data}spec:\n  replicas: {a}\n  maxReplicas: {b}\n  scaleTargetRef: {{kind: Deployment, name: x}}\n  strategy:\n    rollingUpdate:\n      maxSurge: {b}\n  template:\n    spec:\n      containers:\n        - name: c\n          image: langgenius/dify-api:1.16.1\n          args: [\"-c\", \"max_connections={a}\"]\n          envFrom:\n            - configMapRef: {{name: x}}\n          env:\n{env}"
                )
            })
            .collect::<Vec<_>>()
            .join("---\n")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_as_every_kind(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check_folder(&[(".env", bytes.clone())]);
        check_folder(&[("docker-compose.yaml", bytes.clone())]);
        check_folder(&[("manifests.yaml", [b"apiVersion: v1\nkind: ConfigMap\n".as_slice(), &bytes].concat())]);
    }

    #[test]
    fn hostile_compose_projects((compose, env) in compose_file()) {
        check_folder(&[("docker-compose.yaml", compose.into_bytes()), (".env", env.into_bytes())]);
    }

    #[test]
    fn hostile_manifests(text in manifests()) {
        check_folder(&[("all.yaml", text.into_bytes())]);
    }
}
