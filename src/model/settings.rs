//! The plan in Dify's keys: every env setting a plan sets, with its value and where it applies
//! (the shared `.env`, one service's own environment, or a suggestion). One mapping for `size
//! --format env` and every file `render` writes.

use super::plan::{ComponentPlan, Plan};
use crate::dify::Component;
use crate::dify::keys::{self, Key, Scope};
use crate::dify::version::Layout;

/// One key of the plan with its value and where it applies.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Setting {
    pub key: &'static str,
    pub value: String,
    pub doc: &'static str,
    #[serde(skip)]
    pub scope: Scope,
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Scope::Shared => s.serialize_str("shared"),
            Scope::Service(name) => s.serialize_str(name),
            Scope::Suggested => s.serialize_str("suggested"),
        }
    }
}

fn set(key: Key, value: impl ToString, scope: Scope) -> Setting {
    Setting { key: key.name, value: value.to_string(), doc: key.doc, scope }
}

fn find(plan: &Plan, c: Component) -> Option<&ComponentPlan> {
    plan.components.iter().find(|p| p.component == c)
}

/// Every env setting of a plan, in the order they are written. Shared keys carry the api's
/// values; the other Dify-image services get theirs as per-service overrides.
pub fn settings(plan: &Plan) -> Vec<Setting> {
    let mut out = Vec::new();
    if let Some(api) = find(plan, Component::Api) {
        out.push(set(keys::SERVER_WORKER_AMOUNT, api.processes_per_pod, Scope::Shared));
        out.push(set(keys::SERVER_WORKER_CLASS, "gevent", Scope::Shared));
        out.push(set(keys::SERVER_WORKER_CONNECTIONS, api.slots_per_process.unwrap_or(1), Scope::Shared));
        out.push(set(keys::SQLALCHEMY_POOL_SIZE, api.pool_size, Scope::Shared));
        // Before 1.8.0 `x-shared-env` does not pass SQLALCHEMY_MAX_OVERFLOW from `.env`: it goes on
        // the api's own environment.
        let overflow = if plan.input.dify_version.era().overflow_key { Scope::Shared } else { Scope::Service("api") };
        out.push(set(keys::SQLALCHEMY_MAX_OVERFLOW, api.max_overflow, overflow));
    }
    if let Some(w) = find(plan, Component::Worker) {
        out.push(set(keys::CELERY_WORKER_CLASS, "", Scope::Shared));
        out.push(set(keys::CELERY_WORKER_AMOUNT, w.slots_per_process.unwrap_or(1), Scope::Shared));
        out.push(set(keys::CELERY_AUTO_SCALE, "false", Scope::Shared));
        out.push(set(keys::SQLALCHEMY_POOL_SIZE, w.pool_size, Scope::Service("worker")));
        out.push(set(keys::SQLALCHEMY_MAX_OVERFLOW, w.max_overflow, Scope::Service("worker")));
    }
    if let Some(b) = find(plan, Component::WorkerBeat) {
        out.push(set(keys::SQLALCHEMY_POOL_SIZE, b.pool_size, Scope::Service("worker_beat")));
        out.push(set(keys::SQLALCHEMY_MAX_OVERFLOW, b.max_overflow, Scope::Service("worker_beat")));
    }
    if let Some(ws) = find(plan, Component::ApiWebsocket) {
        // 1.14.1 and 1.15 fix api_websocket at one process; the key came with 1.16.0.
        if plan.input.dify_version.era().websocket_amount_key {
            out.push(set(keys::API_WEBSOCKET_WORKER_AMOUNT, ws.processes_per_pod, Scope::Shared));
        }
        out.push(set(keys::API_WEBSOCKET_WORKER_CONNECTIONS, ws.slots_per_process.unwrap_or(1), Scope::Shared));
        out.push(set(keys::SQLALCHEMY_POOL_SIZE, ws.pool_size, Scope::Service("api_websocket")));
        out.push(set(keys::SQLALCHEMY_MAX_OVERFLOW, ws.max_overflow, Scope::Service("api_websocket")));
    }
    if let Some(p) = find(plan, Component::PluginDaemon) {
        // From 1.14.1 compose passes `.env` to the daemon as its last env_file and only the daemon
        // reads these keys, so they can stand in `.env`; under `x-shared-env` the daemon takes no `.env`.
        let scope = if plan.input.dify_version.era().layout == Layout::EnvFiles {
            Scope::Shared
        } else {
            Scope::Service("plugin_daemon")
        };
        out.push(set(keys::DB_MAX_OPEN_CONNS, p.per_process_max, scope));
        out.push(set(keys::DB_MAX_IDLE_CONNS, p.pool_size, scope));
    }
    let mysql = plan.input.db_type == crate::dify::db_type::DbType::Mysql;
    if mysql {
        out.push(set(keys::DB_TYPE, "mysql", Scope::Shared));
        if plan.input.target == crate::model::assumptions::Target::Compose {
            // Dify's .env points DB_HOST and DB_PORT at db_postgres:5432.
            out.push(set(keys::DB_HOST, crate::dify::db_type::mysql::COMPOSE_SERVICE, Scope::Shared));
            out.push(set(keys::DB_PORT, 3306, Scope::Shared));
        }
    }
    if mysql && !plan.input.app_role_superuser {
        out.push(set(keys::DB_USERNAME_MYSQL, keys::APP_ROLE, Scope::Shared));
    } else if mysql {
        // Dify's DB_USERNAME is `postgres`; the only account the mysql image creates is root.
        out.push(set(keys::DB_USERNAME_MYSQL, crate::dify::db_type::mysql::SUPERUSER, Scope::Shared));
    } else if !plan.input.app_role_superuser {
        // The plan withheld the superuser-reserved slots: name the role it planned for, so the
        // files say what `check` then reads.
        out.push(set(keys::DB_USERNAME, keys::APP_ROLE, Scope::Shared));
    }
    for c in &plan.components {
        if let Some(extras) = db_extras(plan, c.component) {
            out.push(set(keys::DB_EXTRAS, extras, Scope::Service(c.component.service())));
        }
    }
    logs_and_redis(plan, &mut out);
    for (name, value) in &plan.database.env {
        if let Some(key) = keys::find(name) {
            out.push(Setting { key: key.name, value: value.clone(), doc: key.doc, scope: Scope::Shared });
        }
    }
    out
}

fn raw(key: &'static str, value: impl ToString, doc: &'static str, scope: Scope) -> Setting {
    Setting { key, value: value.to_string(), doc, scope }
}

/// Workflow-log repositories and retention (docs/model.md §6), and the Redis topology.
fn logs_and_redis(plan: &Plan, out: &mut Vec<Setting>) {
    use crate::model::storage::{self, LogStore, RedisTopology};
    let logs = &plan.logs;
    if logs.store != LogStore::Postgres {
        for (key, class) in storage::repository_keys(logs.store) {
            out.push(raw(key, class, "workflow-log repository (docs/model.md §6)", Scope::Shared));
        }
    }
    if logs.store == LogStore::Logstore {
        for key in storage::LOGSTORE_CREDENTIAL_KEYS {
            let value = if key == "ALIYUN_SLS_LOGSTORE_TTL" {
                logs.retention_days.unwrap_or(365).to_string()
            } else {
                String::new()
            };
            out.push(raw(
                key,
                value,
                "log store setting: fill in from your secret store (difyplan never writes credentials)",
                Scope::Shared,
            ));
        }
        out.push(raw(
            "LOGSTORE_DUAL_WRITE_ENABLED",
            "true",
            "migration: write to PostgreSQL and the log store; set false once the log store is trusted",
            Scope::Shared,
        ));
        out.push(raw(
            "LOGSTORE_DUAL_READ_ENABLED",
            "true",
            "migration: read old records from PostgreSQL while they are kept",
            Scope::Shared,
        ));
    }
    if let Some(days) = logs.retention_days {
        out.push(raw(
            "WORKFLOW_LOG_CLEANUP_ENABLED",
            "true",
            "delete workflow logs older than the retention",
            Scope::Shared,
        ));
        out.push(raw("WORKFLOW_LOG_RETENTION_DAYS", days, "days workflow logs are kept in PostgreSQL", Scope::Shared));
    }
    match plan.redis.topology {
        RedisTopology::Standalone => {}
        RedisTopology::Sentinel => {
            out.push(raw(
                "REDIS_USE_SENTINEL",
                "true",
                "Redis behind Sentinel for failover (set the sentinels' hosts)",
                Scope::Suggested,
            ));
            out.push(raw(
                "REDIS_SENTINELS",
                "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379",
                "the Sentinel hosts",
                Scope::Suggested,
            ));
            out.push(raw("REDIS_SENTINEL_SERVICE_NAME", "mymaster", "the Sentinel service name", Scope::Suggested));
        }
        RedisTopology::Cluster => {
            out.push(raw(
                "REDIS_USE_CLUSTERS",
                "true",
                "Redis Cluster for the api and worker; the plugin daemon needs its own Redis behind Sentinel",
                Scope::Suggested,
            ));
            out.push(raw(
                "REDIS_CLUSTERS",
                "redis-1:6379,redis-2:6379,redis-3:6379",
                "the cluster's nodes",
                Scope::Suggested,
            ));
        }
    }
}

/// `DB_EXTRAS` of a component: each component of the api image names its connections
/// (PostgreSQL's `application_name`, which its connection URL appends), so pg_stat_activity, the
/// alerts and calibrate --sample-activity tell them apart. None for MySQL, whose driver takes no
/// application_name, and for the plugin daemon, which wraps DB_EXTRAS into libpq's options.
pub fn db_extras(plan: &Plan, component: Component) -> Option<String> {
    let name = keys::application_name(component.service())?;
    plan.input.db_type.is_postgresql().then(|| format!("application_name={name}"))
}
