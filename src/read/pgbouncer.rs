//! PgBouncer as operators deploy it: its pgbouncer.ini (a compose `configs:` entry, a file, or
//! a ConfigMap) or the environment variables of the common images, and which Dify components
//! connect through it (their `DB_HOST`). One reader for compose and Kubernetes.

use crate::deployment::{CountError, Deployed, DeployedPooler, Env, Source, Valued};
use std::collections::BTreeMap;

/// PgBouncer's own defaults for what the budget reads.
const DEFAULT_POOL_SIZE: u64 = 20;
const DEFAULT_MAX_CLIENT_CONN: u64 = 100;

/// Settings by name, each with the line it was read from.
pub type Settings = BTreeMap<String, Valued<String>>;

/// Whether an image runs PgBouncer.
pub fn is_pgbouncer_image(image: &str) -> bool {
    image.rsplit('/').next().unwrap_or(image).to_ascii_lowercase().contains("pgbouncer")
}

/// `key = value` lines of the `[pgbouncer]` section. `first_line` is where the text's first
/// line sits in `path` (a block scalar starts on the line after its key).
pub fn ini(text: &str, path: &str, first_line: usize) -> Settings {
    let mut out = Settings::new();
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
            continue;
        }
        if section != "pgbouncer" {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.insert(
                k.trim().to_ascii_lowercase(),
                Valued::new(v.trim().to_string(), Source::file(path, first_line + i)),
            );
        }
    }
    out
}

/// The settings the common images take as environment variables: `DEFAULT_POOL_SIZE`, … in
/// edoburu/pgbouncer, `PGBOUNCER_DEFAULT_POOL_SIZE`, … in Bitnami's.
pub fn from_env(env: &Env) -> Settings {
    let mut out = Settings::new();
    for name in ["default_pool_size", "reserve_pool_size", "max_client_conn", "pool_mode"] {
        let upper = name.to_ascii_uppercase();
        if let Some(v) = env.get(&format!("PGBOUNCER_{upper}")).or_else(|| env.get(&upper)) {
            out.insert(name.to_string(), v.clone());
        }
    }
    out
}

/// PgBouncer processes a container starts: several `pgbouncer` invocations in a shell script
/// share one port (`so_reuseport`); anything else is one.
pub fn processes(words: &[String]) -> u64 {
    let script = words.join(" ");
    (script.matches("pgbouncer ").count() as u64).max(1)
}

fn number(settings: &Settings, key: &str, default: u64, at: &Source) -> Result<Valued<u64>, CountError> {
    match settings.get(key) {
        Some(v) => crate::deployment::whole_count(&v.value, crate::deployment::MAX_CONNECTIONS)
            .map(|n| Valued::new(n, v.source.clone()))
            .map_err(|problem| {
                CountError::new(v.source.clone(), &format!("PgBouncer's {key}"), &v.value, problem).example(default)
            }),
        None => Ok(Valued::new(default, Source::default(format!("PgBouncer default {key} ({default}), {at}")))),
    }
}

/// The pooler from its settings; `routed` is filled by [`route`].
pub fn pooler(
    name: &str,
    at: Source,
    settings: &Settings,
    pods: Valued<u64>,
    processes: u64,
) -> Result<DeployedPooler, CountError> {
    let pool_mode = settings
        .get("pool_mode")
        .cloned()
        .unwrap_or_else(|| Valued::new("session".into(), Source::default("PgBouncer default pool_mode (session)")));
    Ok(DeployedPooler {
        name: name.to_string(),
        default_pool_size: number(settings, "default_pool_size", DEFAULT_POOL_SIZE, &at)?,
        reserve_pool_size: number(settings, "reserve_pool_size", 0, &at)?,
        max_client_conn: number(settings, "max_client_conn", DEFAULT_MAX_CLIENT_CONN, &at)?,
        at,
        pods,
        processes,
        pool_mode,
        routed: Vec::new(),
    })
}

/// Mark the components whose `DB_HOST` names the pooler (`names`: its service, or its
/// Kubernetes Deployment and Services; a cluster DNS name counts by its first label).
pub fn route(pooler: &mut DeployedPooler, components: &[Deployed], names: &[String]) {
    for c in components {
        let Some(host) = c.env.get("DB_HOST") else { continue };
        let host = host.value.trim();
        let first = host.split('.').next().unwrap_or(host);
        if names.iter().any(|n| n == host || n == first) && !pooler.routed.contains(&c.component) {
            pooler.routed.push(c.component);
        }
    }
    pooler.routed.sort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_section_and_lines() {
        let s = ini(
            "; c\n[databases]\n* = host=db\n\n[pgbouncer]\ndefault_pool_size = 40\nmax_client_conn=500 \n",
            "f",
            10,
        );
        assert_eq!(s["default_pool_size"].value, "40");
        assert_eq!(s["default_pool_size"].source, Source::file("f", 15));
        assert_eq!(s["max_client_conn"].value, "500");
        assert!(!s.contains_key("*"));
    }

    #[test]
    fn processes_in_a_script() {
        let w = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(processes(&w(&["pgbouncer", "/etc/pgbouncer/pgbouncer.ini"])), 1);
        assert_eq!(processes(&w(&["/bin/sh", "-c", "pgbouncer /a & pgbouncer /a & exec pgbouncer /a"])), 3);
    }
}
