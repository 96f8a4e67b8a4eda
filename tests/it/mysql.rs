//! Dify on MySQL (`DB_TYPE=mysql`): `check` reads Dify 1.16.1's own compose project with
//! `db_mysql`'s cap, and the cap is MySQL's (an ordinary account gets every slot, `root` one more).

use crate::support::{difyplan, fixture, json};
use std::path::Path;

/// A copy of Dify 1.16.1's docker folder whose `.env` is `.env.example` with `DB_TYPE=mysql`
/// and the extra lines given (later lines win, as in compose).
fn mysql_project(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("1.16.1");
    for name in ["docker-compose.yaml", "env.example"] {
        std::fs::copy(src.join(name), dir.path().join(name)).unwrap();
    }
    let example = std::fs::read_to_string(src.join("env.example")).unwrap();
    assert!(example.contains("\nDB_TYPE=postgresql\n"), "Dify's .env.example chooses PostgreSQL");
    let env = example.replace("\nDB_TYPE=postgresql\n", "\nDB_TYPE=mysql\n") + extra;
    std::fs::write(dir.path().join(".env"), env).unwrap();
    dir
}

fn check(dir: &Path, more: &[&str]) -> crate::support::Run {
    let compose = dir.join("docker-compose.yaml");
    let mut args = vec!["check", compose.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(more);
    difyplan(&args)
}

/// Dify's defaults on MySQL: 190 against db_mysql's `${MYSQL_MAX_CONNECTIONS:-1000}`.
#[test]
fn dify_1161_on_mysql_fits_its_cap() {
    let dir = mysql_project("");
    let r = check(dir.path(), &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = json(&r);
    let d = &v["deployments"][0];
    assert_eq!(d["deployment"]["db_type"], "mysql");
    assert_eq!(d["budget"]["demand"], 190);
    assert_eq!(d["budget"]["cap"]["max_connections"], 1000);
    // DB_USERNAME is still `postgres`: an ordinary MySQL account, which MySQL withholds nothing from.
    assert_eq!(d["budget"]["usable"], 1000);
    // The cap's source is db_mysql's command, the line that holds --max_connections.
    let line = std::fs::read_to_string(dir.path().join("docker-compose.yaml"))
        .unwrap()
        .lines()
        .position(|l| l.trim_start().starts_with("db_mysql:"))
        .unwrap();
    let src = &d["deployment"]["max_connections"]["source"];
    assert!(src["line"].as_u64().unwrap() > line as u64, "{src}");
    let codes: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert!(!codes.contains(&"idle-in-transaction-timeout-off"), "a PostgreSQL setting: {codes:?}");
    assert!(!codes.contains(&"max-connections-unknown"), "{codes:?}");
}

/// `MYSQL_MAX_CONNECTIONS=150` in `.env` reaches db_mysql's command: 190 > 150, exit 1, and the
/// finding names MySQL's key and points at the `.env` line.
#[test]
fn dify_1161_on_mysql_over_a_small_cap() {
    let dir = mysql_project("MYSQL_MAX_CONNECTIONS=150\n");
    let r = check(dir.path(), &[]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v = json(&r);
    assert_eq!(v["deployments"][0]["budget"]["cap"]["max_connections"], 150);
    let f = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "connection-budget-exceeded").unwrap();
    assert!(f["message"].as_str().unwrap().contains("demand 190 exceeds the usable cap 150"), "{f}");
    assert!(f["remedy"].as_str().unwrap().contains("MYSQL_MAX_CONNECTIONS"), "{f}");
    assert!(f["remedy"].as_str().unwrap().contains("at least 190"), "{f}");
    let lines = std::fs::read_to_string(dir.path().join(".env")).unwrap().lines().count();
    assert_eq!(f["source"]["line"], lines, "the MYSQL_MAX_CONNECTIONS line");
}

/// `root` holds CONNECTION_ADMIN: it may open max_connections + 1, and is told to leave that
/// connection to operators.
#[test]
fn root_gets_one_more_connection() {
    let dir = mysql_project("DB_USERNAME=root\nMYSQL_MAX_CONNECTIONS=189\n");
    let r = check(dir.path(), &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = json(&r);
    assert_eq!(v["deployments"][0]["budget"]["usable"], 190);
    let f = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "superuser-app-role").unwrap();
    assert!(f["message"].as_str().unwrap().contains("CONNECTION_ADMIN"), "{f}");
    let dir = mysql_project("DB_USERNAME=root\nMYSQL_MAX_CONNECTIONS=188\n");
    assert_eq!(check(dir.path(), &[]).code, 1);
}

/// An external MySQL (no db_mysql running): the cap comes from `--db-max-connections`, and
/// without it MySQL's default 151 is assumed and said.
#[test]
fn external_mysql_cap_from_the_flag() {
    let dir = mysql_project("COMPOSE_PROFILES=weaviate,collaboration\n");
    let v = json(&check(dir.path(), &["--fail-on", "never"]));
    assert_eq!(v["deployments"][0]["budget"]["cap"]["max_connections"], 151);
    let f = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "max-connections-unknown").unwrap();
    assert!(f["message"].as_str().unwrap().contains("MySQL's default 151"), "{f}");
    assert!(f["remedy"].as_str().unwrap().contains("--db-max-connections"), "{f}");
    let r = check(dir.path(), &["--db-max-connections", "180"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(json(&r)["deployments"][0]["budget"]["cap"]["max_connections"], 180);
    // The PostgreSQL name of the flag keeps working.
    let r = check(dir.path(), &["--pg-max-connections", "400"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// A lone `.env` with `DB_TYPE=mysql` is read with MYSQL_MAX_CONNECTIONS (compose fallback 1000).
#[test]
fn lone_env_on_mysql() {
    let dir = mysql_project("MYSQL_MAX_CONNECTIONS=150\n");
    let env = dir.path().join(".env");
    let r = difyplan(&["check", env.to_str().unwrap(), "--format", "json"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(json(&r)["deployments"][0]["budget"]["cap"]["max_connections"], 150);
}

/// A DB_TYPE difyplan does not model is refused, naming the line.
#[test]
fn other_db_types_are_refused() {
    let dir = mysql_project("DB_TYPE=oceanbase\n");
    let r = check(dir.path(), &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("DB_TYPE=oceanbase") && r.stderr.contains(".env:"), "{}", r.stderr);
}

/// A set rendered with `--db-type mysql` (Dify 1.16.1's `.env` patched, the compose override
/// beside its compose file) passes its own `check`: DB_TYPE, MYSQL_MAX_CONNECTIONS and
/// db_mysql's command read back as planned, no budget finding.
#[test]
fn rendered_mysql_set_passes_its_own_check() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("1.16.1");
    std::fs::copy(src.join("docker-compose.yaml"), dir.path().join("docker-compose.yaml")).unwrap();
    std::fs::copy(src.join("env.example"), dir.path().join(".env")).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let env = s(&dir.path().join(".env"));
    let base = s(&dir.path().join("docker-compose.yaml"));
    let plan = json(&difyplan(&["size", "--qps", "20", "--db-type", "mysql", "--format", "json"]));
    let r =
        difyplan(&["render", "env", "--qps", "20", "--db-type", "mysql", "--patch", &env, "--write", "--no-backup"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("CREATE USER"), "the MySQL account to create: {}", r.stderr);
    let r = difyplan(&[
        "render",
        "compose",
        "--qps",
        "20",
        "--db-type",
        "mysql",
        "--compose-file",
        &base,
        "-o",
        &s(dir.path()),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(dir.path().join(".env")).unwrap();
    for key in [
        "DB_TYPE=mysql",
        "DB_HOST=db_mysql",
        "DB_PORT=3306",
        "MYSQL_MAX_CONNECTIONS=",
        "MYSQL_INNODB_BUFFER_POOL_SIZE=",
    ] {
        assert!(text.lines().any(|l| l.starts_with(key)), "{key} in the patched .env");
    }
    let over = std::fs::read_to_string(dir.path().join("docker-compose.override.yaml")).unwrap();
    assert!(over.contains("db_mysql:") && over.contains("--max_connections="), "{over}");
    assert!(!over.contains("POSTGRES_USER"), "{over}");
    let r = difyplan(&["check", &s(dir.path()), "--format", "json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = json(&r);
    let d = &v["deployments"][0];
    assert_eq!(d["deployment"]["db_type"], "mysql");
    assert_eq!(d["budget"]["cap"]["max_connections"], plan["database"]["max_connections"]);
    assert!(d["budget"]["fits"].as_bool().unwrap());
    let codes: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert!(!codes.contains(&"connection-budget-exceeded") && !codes.contains(&"superuser-app-role"), "{codes:?}");
}

/// PgBouncer speaks PostgreSQL only: refused with MySQL, naming ProxySQL.
#[test]
fn pgbouncer_with_mysql_is_refused() {
    let r = difyplan(&["size", "--qps", "20", "--db-type", "mysql", "--pooler", "pgbouncer"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("ProxySQL") && r.stderr.contains("PostgreSQL only"), "{}", r.stderr);
}

/// calibrate reads PostgreSQL only, and says so for a Dify on MySQL (exit 2).
#[test]
fn calibrate_says_postgresql_only() {
    let dir = mysql_project("");
    let r = difyplan(&["calibrate", dir.path().to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("PostgreSQL only") && r.stderr.contains("--db-type mysql"), "{}", r.stderr);
    let r = difyplan(&["calibrate", "--database-url", "mysql://root@127.0.0.1:3306/dify"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("PostgreSQL only"), "{}", r.stderr);
}

/// douban/charts has no MySQL path: `render helm --db-type mysql` refuses it, naming the chart
/// and what to do (Kubernetes manifests and dify-helm are rendered: tests/it/mysql_kubernetes.rs).
#[test]
fn douban_render_refuses_mysql() {
    let r = difyplan(&["render", "helm", "--chart", "douban", "--qps", "20", "--db-type", "mysql"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains("douban/charts") && r.stderr.contains("render kubernetes --db-type mysql"),
        "{}",
        r.stderr
    );
}

/// `matrix --db-type mysql` prints every tier for MySQL: the application role may use every slot
/// of max_connections (no superuser-reserved slots to withhold), unlike PostgreSQL's tiers; with
/// PgBouncer it is refused.
#[test]
fn matrix_prints_mysql_tiers() {
    let cells = |db: &str| -> Vec<(u64, u64)> {
        let r = difyplan(&["matrix", "--profile", "workflow", "--target", "compose", "--db-type", db, "--wide"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        // The last two columns: max_connections │ demand / usable.
        r.stdout
            .lines()
            .filter(|l| l.starts_with("│ ") && l.contains(" / "))
            .filter_map(|l| {
                let cols: Vec<&str> = l.split('│').map(str::trim).filter(|c| !c.is_empty()).collect();
                let max: u64 = cols.get(cols.len().checked_sub(2)?)?.parse().ok()?;
                let usable: u64 = cols.last()?.split(" / ").nth(1)?.parse().ok()?;
                Some((max, usable))
            })
            .collect()
    };
    let mysql = cells("mysql");
    assert!(mysql.len() >= 15, "{mysql:?}");
    assert!(mysql.iter().all(|(max, usable)| usable == max), "{mysql:?}");
    let pg = cells("postgresql");
    assert!(pg.iter().all(|(max, usable)| usable + 3 == *max), "{pg:?}");
    let r = difyplan(&["matrix", "--db-type", "mysql", "--pooler", "pgbouncer"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("ProxySQL"), "{}", r.stderr);
}
