//! Compose projects as committed: env files a service names in `env_file:` belong to the
//! project, files given by name are read by their content, and the official image's
//! `POSTGRES_USER` is a superuser.

use crate::support::{difyplan, json};

const COMPOSE: &str = r#"services:
  api:
    image: langgenius/dify-api:1.9.1
    env_file: [./dify.env]
  db:
    image: postgres:15-alpine
    environment:
      POSTGRES_USER: POSTGRES_ROLE
    command: ["postgres", "-c", "max_connections=300"]
"#;

#[test]
fn env_file_of_a_service_is_not_a_deployment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("docker-compose.yaml"), COMPOSE.replace("POSTGRES_ROLE", "dify")).unwrap();
    std::fs::write(
        dir.path().join("dify.env"),
        "SQLALCHEMY_POOL_SIZE=20\nSQLALCHEMY_MAX_OVERFLOW=5\nDB_USERNAME=dify\n",
    )
    .unwrap();
    let r = difyplan(&["check", &dir.path().display().to_string(), "--format", "json"]);
    assert!(r.code <= 1, "{}", r.stderr);
    let v = json(&r);
    let deployments = v["deployments"].as_array().unwrap();
    assert_eq!(deployments.len(), 1, "{v}");
    assert_eq!(deployments[0]["kind"], "compose");
    // The api read the env file: 1 container × SERVER_WORKER_AMOUNT 1 × (20 + 5).
    assert_eq!(deployments[0]["budget"]["demand"], 25);
    // DB_USERNAME is the official image's POSTGRES_USER: a superuser.
    assert_eq!(deployments[0]["deployment"]["app_role_superuser"], true);

    std::fs::write(dir.path().join("docker-compose.yaml"), COMPOSE.replace("POSTGRES_ROLE", "admin")).unwrap();
    let r = difyplan(&["check", &dir.path().display().to_string(), "--format", "json"]);
    assert_eq!(json(&r)["deployments"][0]["deployment"]["app_role_superuser"], false);
}

#[test]
fn files_given_by_name_are_read_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let compose = dir.path().join("stack.prod");
    std::fs::write(
        &compose,
        COMPOSE.replace("POSTGRES_ROLE", "admin").replace(
            "env_file: [./dify.env]",
            "environment: {SQLALCHEMY_POOL_SIZE: \"7\", SQLALCHEMY_MAX_OVERFLOW: \"0\"}",
        ),
    )
    .unwrap();
    let env = dir.path().join(".env.prod");
    std::fs::write(&env, "SQLALCHEMY_POOL_SIZE=9\nSQLALCHEMY_MAX_OVERFLOW=0\n").unwrap();
    for (path, kind, demand) in [(&compose, "compose", 7), (&env, "env", 9)] {
        let r = difyplan(&["check", &path.display().to_string(), "--format", "json"]);
        assert!(r.code <= 1, "{}: {}", path.display(), r.stderr);
        let v = json(&r);
        assert_eq!(v["deployments"][0]["kind"], kind);
        let api = v["deployments"][0]["budget"]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["component"] == "api")
            .cloned()
            .unwrap();
        assert_eq!(api["per_process_max"], demand, "{api}");
    }
    // Anything else is refused by its content, with the file named.
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "just some words\n").unwrap();
    let r = difyplan(&["check", &notes.display().to_string()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("notes.txt: not a .env, compose, Kubernetes or Helm values file by its content"),
        "{}",
        r.stderr
    );
}

/// A Dify service that starts gunicorn or Celery itself bypasses the entrypoint that turns
/// SERVER_WORKER_* and CELERY_WORKER_AMOUNT into flags: refused at the command's line, on compose
/// and on Kubernetes; a command that runs the entrypoint is read as before.
#[test]
fn a_command_that_starts_the_server_itself_is_refused_where_it_is_written() {
    let compose = |command: &str| {
        format!(
            "services:\n  worker:\n    image: langgenius/dify-api:1.16.1\n    environment:\n      MODE: worker\n      \
             CELERY_WORKER_AMOUNT: \"4\"\n    command: {command}\n  db_postgres:\n    image: postgres:15-alpine\n    \
             command: [\"postgres\", \"-c\", \"max_connections=300\"]\n"
        )
    };
    let dir = crate::support::folder(&[("docker-compose.yaml", &compose("celery -A app.celery worker -c 16"))]);
    let r = difyplan(&["check", &crate::support::s(dir.path())]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("docker-compose.yaml:7:") && r.stderr.contains("runs `celery` itself"), "{}", r.stderr);
    assert!(r.stderr.contains("CELERY_WORKER_AMOUNT"), "{}", r.stderr);

    let dir = crate::support::folder(&[("docker-compose.yaml", &compose("[\"/bin/bash\", \"/entrypoint.sh\"]"))]);
    let r = difyplan(&["check", &crate::support::s(dir.path()), "--format", "json"]);
    assert!(r.code <= 1, "{}", r.stderr);
    let worker = &json(&r)["deployments"][0]["deployment"]["components"][0];
    assert_eq!(worker["concurrency"]["value"], 4, "{worker}");

    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dify-api\nspec:\n  template:\n    spec:\n      \
                    containers:\n        - name: api\n          image: langgenius/dify-api:1.16.1\n          command:\n            \
                    - gunicorn\n          args: [\"--workers\", \"8\", \"app:app\"]\n";
    let dir = crate::support::folder(&[("api.yaml", manifest)]);
    let r = difyplan(&["check", &crate::support::s(dir.path())]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("api.yaml:12:") && r.stderr.contains("runs `gunicorn` itself"), "{}", r.stderr);
}
