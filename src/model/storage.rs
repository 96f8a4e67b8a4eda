//! Workflow-log storage (docs/model.md §6) and Redis topology (docs/model.md §1, §3): the volume the logs
//! add to PostgreSQL, where they should live, and which Redis the traffic needs.

use super::assumptions::Edition;
use super::profile::Profile;
use super::units::Millis;
use serde::{Deserialize, Serialize};

/// Where workflow runs and node executions are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogStore {
    /// Dify's default: SQLAlchemy repositories, written on the request path.
    Postgres,
    /// The Celery repositories: the writes leave the request path for the `workflow_storage`
    /// queue, still into PostgreSQL.
    Celery,
    /// A log store (Aliyun SLS) instead of PostgreSQL: the logs leave the database.
    Logstore,
}

/// The four repository keys for each store (docs/model.md §6; Dify's env files).
pub fn repository_keys(store: LogStore) -> [(&'static str, &'static str); 4] {
    match store {
        LogStore::Postgres => [
            (
                "CORE_WORKFLOW_EXECUTION_REPOSITORY",
                "core.repositories.sqlalchemy_workflow_execution_repository.SQLAlchemyWorkflowExecutionRepository",
            ),
            (
                "CORE_WORKFLOW_NODE_EXECUTION_REPOSITORY",
                "core.repositories.sqlalchemy_workflow_node_execution_repository.SQLAlchemyWorkflowNodeExecutionRepository",
            ),
            (
                "API_WORKFLOW_RUN_REPOSITORY",
                "repositories.sqlalchemy_api_workflow_run_repository.DifyAPISQLAlchemyWorkflowRunRepository",
            ),
            (
                "API_WORKFLOW_NODE_EXECUTION_REPOSITORY",
                "repositories.sqlalchemy_api_workflow_node_execution_repository.DifyAPISQLAlchemyWorkflowNodeExecutionRepository",
            ),
        ],
        LogStore::Celery => [
            (
                "CORE_WORKFLOW_EXECUTION_REPOSITORY",
                "core.repositories.celery_workflow_execution_repository.CeleryWorkflowExecutionRepository",
            ),
            (
                "CORE_WORKFLOW_NODE_EXECUTION_REPOSITORY",
                "core.repositories.celery_workflow_node_execution_repository.CeleryWorkflowNodeExecutionRepository",
            ),
            (
                "API_WORKFLOW_RUN_REPOSITORY",
                "repositories.sqlalchemy_api_workflow_run_repository.DifyAPISQLAlchemyWorkflowRunRepository",
            ),
            (
                "API_WORKFLOW_NODE_EXECUTION_REPOSITORY",
                "repositories.sqlalchemy_api_workflow_node_execution_repository.DifyAPISQLAlchemyWorkflowNodeExecutionRepository",
            ),
        ],
        LogStore::Logstore => [
            (
                "CORE_WORKFLOW_EXECUTION_REPOSITORY",
                "extensions.logstore.repositories.logstore_workflow_execution_repository.LogstoreWorkflowExecutionRepository",
            ),
            (
                "CORE_WORKFLOW_NODE_EXECUTION_REPOSITORY",
                "extensions.logstore.repositories.logstore_workflow_node_execution_repository.LogstoreWorkflowNodeExecutionRepository",
            ),
            (
                "API_WORKFLOW_RUN_REPOSITORY",
                "extensions.logstore.repositories.logstore_api_workflow_run_repository.LogstoreAPIWorkflowRunRepository",
            ),
            (
                "API_WORKFLOW_NODE_EXECUTION_REPOSITORY",
                "extensions.logstore.repositories.logstore_api_workflow_node_execution_repository.LogstoreAPIWorkflowNodeExecutionRepository",
            ),
        ],
    }
}

/// The log store's credentials, written as placeholders only, never values (docs/model.md §6).
pub const LOGSTORE_CREDENTIAL_KEYS: [&str; 6] = [
    "ALIYUN_SLS_ACCESS_KEY_ID",
    "ALIYUN_SLS_ACCESS_KEY_SECRET",
    "ALIYUN_SLS_ENDPOINT",
    "ALIYUN_SLS_REGION",
    "ALIYUN_SLS_PROJECT_NAME",
    "ALIYUN_SLS_LOGSTORE_TTL",
];

/// Share of a request's PostgreSQL CPU spent writing workflow runs and node executions: their
/// rows are most of the growth per request (docs/model.md §8: runs and node executions are 2.7 of
/// 6.7 KB for a chat message and nearly all of a workflow run's). An assumption: 40%.
pub const LOG_WRITE_PG_CPU_SHARE: f64 = 0.4;
/// Day's mean traffic ÷ the target (peak) QPS: an assumption for the daily log volume.
pub const DAILY_AVERAGE_LOAD: f64 = 0.5;
/// Table bloat, indexes not in the measured sizes, and WAL on top of the rows: an assumption.
pub const PG_DISK_OVERHEAD: f64 = 0.3;
/// Above this much log kept in PostgreSQL difyplan recommends a log store: one operator's 3 TB
/// of logs cost about 10× in PostgreSQL what the log store cost (docs/model.md §6). Assumption, GiB.
pub const LOG_STORE_THRESHOLD_GIB: f64 = 500.0;
/// One Redis saturated near 200 QPS in the vendor's test (docs/model.md §1); at the `chat`
/// profile's 40 operations per request that is 8,000 operations per second.
pub const REDIS_SATURATION_QPS: f64 = 200.0;
pub const REDIS_REFERENCE_OPS_PER_REQUEST: f64 = 40.0;

/// What the workflow logs cost.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct LogPlan {
    pub store: LogStore,
    /// Bytes written per day at the day's mean load.
    pub daily_bytes: f64,
    /// Days kept (`None`: kept for ever, Dify 1.16.1's default `WORKFLOW_LOG_CLEANUP_ENABLED=false`).
    pub retention_days: Option<u32>,
    /// Log bytes kept in PostgreSQL at the end of the retention (per year when kept for ever).
    pub retained_bytes: f64,
    /// PostgreSQL disk for the logs, overhead included (0 when they live in a log store).
    pub pg_disk_bytes: f64,
    /// PostgreSQL CPU per request the store saves, ms.
    pub pg_cpu_ms_saved: Millis,
    pub recommend_log_store: bool,
    pub reasoning: Vec<String>,
}

/// Size the workflow logs for `qps` of `profile` kept `retention_days`.
pub fn logs(qps: f64, profile: &Profile, store: LogStore, retention_days: Option<u32>) -> LogPlan {
    let daily_bytes = qps * DAILY_AVERAGE_LOAD * 86_400.0 * profile.workflow_log_bytes;
    let days = retention_days.map_or(365.0, f64::from);
    let retained_bytes = daily_bytes * days;
    let in_pg = store != LogStore::Logstore;
    let pg_disk_bytes = if in_pg { retained_bytes * (1.0 + PG_DISK_OVERHEAD) } else { 0.0 };
    let pg_cpu_ms_saved = if in_pg { Millis(0.0) } else { profile.pg_cpu_ms * LOG_WRITE_PG_CPU_SHARE };
    let gib = |b: f64| b / (1u64 << 30) as f64;
    let recommend_log_store = store != LogStore::Logstore && gib(retained_bytes) > LOG_STORE_THRESHOLD_GIB;
    let mut reasoning = vec![format!(
        "{:.1} GiB of workflow log a day: {qps} QPS × {DAILY_AVERAGE_LOAD} mean load × 86,400 s × \
            {} bytes per request (a floor: real prompts are stored several times)",
        gib(daily_bytes),
        profile.workflow_log_bytes
    )];
    reasoning.push(match retention_days {
        Some(d) => format!(
            "{d} days kept: {:.0} GiB; set WORKFLOW_LOG_CLEANUP_ENABLED=true and WORKFLOW_LOG_RETENTION_DAYS={d}",
            gib(retained_bytes)
        ),
        None => format!(
            "no retention: Dify 1.16.1 keeps the logs for ever by default; {:.0} GiB a year (pass --retention-days)",
            gib(retained_bytes)
        ),
    });
    if in_pg {
        reasoning.push(format!(
            "PostgreSQL disk for them: {:.0} GiB with {:.0}% for bloat, indexes and WAL",
            gib(pg_disk_bytes),
            PG_DISK_OVERHEAD * 100.0
        ));
    } else {
        reasoning.push(format!(
            "in the log store: PostgreSQL keeps none of it and saves about {pg_cpu_ms_saved:.1} ms of \
            CPU per request ({:.0}% of {} ms, an assumption)",
            LOG_WRITE_PG_CPU_SHARE * 100.0,
            profile.pg_cpu_ms
        ));
    }
    if store == LogStore::Celery {
        reasoning.push(
            "the Celery repositories take the writes off the request path (queue workflow_storage); \
            the rows still land in PostgreSQL"
                .into(),
        );
    }
    if recommend_log_store {
        reasoning.push(format!(
            "above {LOG_STORE_THRESHOLD_GIB:.0} GiB of logs in PostgreSQL: move them to a log store \
            (--workflow-log-store logstore; Dify's WORKFLOW_*_REPOSITORY settings choose it)"
        ));
    }
    LogPlan {
        store,
        daily_bytes,
        retention_days,
        retained_bytes,
        pg_disk_bytes,
        pg_cpu_ms_saved,
        recommend_log_store,
        reasoning,
    }
}

/// Which Redis the traffic needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedisTopology {
    Standalone,
    Sentinel,
    Cluster,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RedisPlan {
    pub ops_per_second: f64,
    /// Pub/sub connections the api holds for streams in flight (one per stream, two for chat).
    pub pubsub_connections: u64,
    pub topology: RedisTopology,
    /// Topology for the plugin daemon, which cannot use a cluster.
    pub plugin_daemon_topology: RedisTopology,
    pub reasoning: Vec<String>,
}

pub fn redis(qps: f64, profile: &Profile, streams_in_flight: f64, edition: Edition) -> RedisPlan {
    let ops_per_second = qps * profile.redis_ops;
    let limit = REDIS_SATURATION_QPS * REDIS_REFERENCE_OPS_PER_REQUEST;
    let ha = edition != Edition::Test;
    let topology = if ops_per_second >= limit {
        RedisTopology::Cluster
    } else if ha {
        RedisTopology::Sentinel
    } else {
        RedisTopology::Standalone
    };
    let plugin_daemon_topology =
        if ha || topology == RedisTopology::Cluster { RedisTopology::Sentinel } else { RedisTopology::Standalone };
    let pubsub_connections = (streams_in_flight * (1.0 + profile.chat_share)).ceil() as u64;
    let mut reasoning = vec![format!(
        "{ops_per_second:.0} Redis operations per second ({qps} QPS × {} per request); one Redis \
            saturated near {REDIS_SATURATION_QPS:.0} QPS of the vendor's traffic, about {limit:.0} \
            operations per second",
        profile.redis_ops
    )];
    reasoning.push(match topology {
        RedisTopology::Cluster => {
            "the api and worker on Redis Cluster (REDIS_USE_CLUSTERS=true, REDIS_CLUSTERS=host:port,…)".to_string()
        }
        RedisTopology::Sentinel => {
            "Redis with a replica behind Sentinel for failover (REDIS_USE_SENTINEL=true)".to_string()
        }
        RedisTopology::Standalone => "one Redis is enough".to_string(),
    });
    if topology == RedisTopology::Cluster {
        reasoning.push(
            "the plugin daemon supports standalone and sentinel only: give it its \
            own Redis behind Sentinel, since its session key per request is the hot path the vendor \
            saw"
            .into(),
        );
    }
    reasoning.push(format!(
        "about {pubsub_connections} pub/sub connections for streams in flight (measured: one per \
        stream, two for chat) — within Redis' default maxclients 10000 only \
        below that"
    ));
    RedisPlan { ops_per_second, pubsub_connections, topology, plugin_daemon_topology, reasoning }
}
