//! The checks: each reads a deployment description and its budget and says what is wrong, with
//! the numbers and the line to change. The thresholds are the measured ones (docs/model.md §8).

use super::{Code, Finding};
use crate::deployment::{CeleryPool, Deployed, Deployment, Observation, Source};
use crate::dify::Component;
use crate::dify::db_type::DbType;
use crate::dify::rules::{self, PoolVerdict, judge_api_pool};
use crate::model::assumptions::Assumptions;
use crate::model::budget::Budget;
use crate::model::profile::Profile;
use std::collections::BTreeSet;

/// A beat pool above this is the api's pool inherited through compose's shared environment;
/// beat holds about 1 connection (docs/model.md §2, §8).
const BEAT_POOL_LIMIT: u64 = 5;

/// Which apps run, as far as the pool rules care: the workload profile says it (without one,
/// `check` assumes the `chat` profile). The factors are the model's, so `check` flags exactly
/// the pools `size` would not plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Apps {
    /// Chat apps run: the api's pools need about 2 × the greenlets (docs/model.md §8).
    pub chat: bool,
    /// Chat runs stream, so they execute in the Celery worker and hold a connection throughout.
    pub chat_in_worker: bool,
    pub chat_pool_factor: f64,
    pub worker_chat_pool_factor: f64,
}

impl Apps {
    pub fn of(profile: &Profile, a: &Assumptions) -> Apps {
        let chat = profile.chat_share > 0.0;
        Apps {
            chat,
            chat_in_worker: chat && profile.streaming_share > 0.0,
            chat_pool_factor: a.chat_pool_factor,
            worker_chat_pool_factor: a.worker_chat_pool_factor,
        }
    }
}

/// Every finding for one deployment. A deployment of workflow apps only is not held to the
/// rules chat apps need (`pool-chat-stall`, the worker's chat pool).
pub fn check(d: &Deployment, budget: &Budget, apps: &Apps) -> Vec<Finding> {
    let mut out = Vec::new();
    budget_rule(d, budget, &mut out);
    for c in &d.components {
        pool_rules(c, apps, &mut out);
        worker_rules(c, apps, &mut out);
        redis_rule(c, &mut out);
        if c.component == Component::WorkerBeat && c.per_process_max > BEAT_POOL_LIMIT {
            out.push(
                Finding::new(
                    Code::BeatPoolOversized,
                    format!(
                        "worker_beat may open {} connections ({} + {}) but uses about 1",
                        c.per_process_max, c.pool_size.value, c.max_overflow.value
                    ),
                    "give worker_beat its own SQLALCHEMY_POOL_SIZE=1 and SQLALCHEMY_MAX_OVERFLOW=1 (a \
                    per-service environment override)",
                )
                .on(c.component)
                .at(&c.pool_size.source),
            );
        }
        if c.component == Component::PluginDaemon && !c.env.contains_key("DB_MAX_OPEN_CONNS") {
            out.push(
                Finding::new(
                    Code::PluginDaemonPoolDefault,
                    format!(
                        "plugin_daemon opens up to 30 connections per replica ({} pods: {})",
                        c.worst_pods(),
                        c.worst_pods().saturating_mul(30)
                    ),
                    "set DB_MAX_OPEN_CONNS and DB_MAX_IDLE_CONNS on the plugin daemon to what it needs \
                    (`difyplan size` computes them)",
                )
                .on(c.component)
                .at(&c.at),
            );
        }
    }
    if d.app_role_superuser && d.db_type == DbType::Mysql {
        out.push(
            Finding::new(
                Code::SuperuserAppRole,
                format!(
                    "Dify connects as `{}`, which holds CONNECTION_ADMIN: it may take the {} connection MySQL \
                    keeps beyond max_connections for an administrator",
                    d.app_role.value,
                    crate::dify::db_type::mysql::SUPERUSER_EXTRA_CONNECTIONS
                ),
                "create an ordinary account for DB_USERNAME (CREATE USER … ; GRANT ALL ON dify.* and dify_plugin.*, \
                without CONNECTION_ADMIN or SUPER) and keep `root` for operators",
            )
            .at(&d.app_role.source),
        );
    } else if d.app_role_superuser {
        out.push(
            Finding::new(
                Code::SuperuserAppRole,
                format!(
                    "Dify connects as `{}`, a superuser: it may take the {} reserved slots meant for operators",
                    d.app_role.value,
                    crate::dify::defaults::SUPERUSER_RESERVED_CONNECTIONS
                ),
                "create a dedicated non-superuser role for DB_USERNAME and keep `postgres` for operators",
            )
            .at(&d.app_role.source),
        );
    }
    if let Some(timeout) = &d.idle_in_transaction_timeout {
        let t = timeout.value.trim();
        if t.is_empty() || t.trim_end_matches("ms").trim_end_matches('s').trim_end_matches("min").trim() == "0" {
            out.push(
                Finding::new(
                    Code::IdleInTransactionTimeoutOff,
                    "idle_in_transaction_session_timeout is 0: a crashed run leaves its connection idle in \
                    transaction for ever (measured; `difyplan explain idle-in-transaction-timeout-off`)",
                    "set idle_in_transaction_session_timeout above the longest request (360000 ms with \
                    GUNICORN_TIMEOUT 360): POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT in Dify 1.16's .env, \
                    or `-c idle_in_transaction_session_timeout=360000` on the server's command line (Dify \
                    1.9, your own server)",
                )
                .at(&timeout.source),
            );
        }
    }
    if !d.max_connections_found {
        out.push(Finding::new(
            Code::MaxConnectionsUnknown,
            format!(
                "no max_connections was found in the inputs; {}'s default {} was assumed",
                d.db_type.server(),
                d.max_connections.value
            ),
            if d.db_type == DbType::Mysql {
                "pass --db-max-connections N with the MySQL server's real max_connections, or include the \
                database's configuration (db_mysql's command, a my.cnf)"
            } else {
                "pass --pg-max-connections N with the database's real cap, or include the database's configuration"
            },
        ));
    }
    if let Some(note) = d.version.newer_note() {
        out.push(
            Finding::new(
                Code::DifyVersionNewer,
                note,
                "compare the release's docker/.env.example and docker-compose.yaml with the newest known \
                    release's, or update difyplan",
            )
            .at(&d.version_source),
        );
    }
    if let Some(assumed) = &d.chart_version_assumed {
        out.push(
            Finding::new(
                Code::ChartVersionAssumed,
                assumed.value.clone(),
                "state the chart version (Chart.yaml beside the values, the HelmRelease or Application, or \
                    --chart NAME@VERSION)",
            )
            .at(&assumed.source),
        );
    }
    for hpa in &d.unbounded_autoscalers {
        out.push(
            Finding::new(
                Code::HpaUnbounded,
                format!("{}: its pods are not counted in the budget", hpa.value),
                "include the autoscaled workload's manifest, or set a maxReplicas the budget can count",
            )
            .at(&hpa.source),
        );
    }
    for o in &d.observed {
        let code = match o.what {
            Observation::ReplicaBelowPrimary => Code::ReplicaBelowPrimary,
            Observation::UnknownValuesKey => Code::UnknownValuesKey,
        };
        out.push(Finding::new(code, o.message.clone(), o.remedy.clone()).at(&o.source));
    }
    pooler_rules(d, &mut out);
    unknown_keys(d, &mut out);
    out
}

/// A PgBouncer between Dify and PostgreSQL: its server pool must cover every routed api
/// greenlet that can hold a connection while asking for a second (+ 1), and its client slots
/// every connection the routed pools may open.
fn pooler_rules(d: &Deployment, out: &mut Vec<Finding>) {
    let Some(p) = &d.pooler else { return };
    let routed: Vec<&Deployed> = d.components.iter().filter(|c| d.routed(c)).collect();
    let greenlets: u64 = routed
        .iter()
        .filter(|c| c.component.serves_api_requests())
        .filter_map(|c| {
            c.greenlets.as_ref().map(|g| c.worst_pods().saturating_mul(c.processes.value).saturating_mul(g.value))
        })
        .sum();
    let clients: u64 = routed.iter().map(|c| crate::model::budget::line_of(c).connections).sum();
    let server_pool = p.default_pool_size.value.saturating_add(p.reserve_pool_size.value);
    let mode = p.pool_mode.value.trim().to_ascii_lowercase();
    if mode == "session" && !routed.is_empty() && server_pool < clients {
        // A session pins a server connection for as long as the client stays connected, and
        // SQLAlchemy keeps its pool's connections open: clients beyond the pool wait for ever.
        out.push(
            Finding::new(
                Code::PoolerDeadlockRisk,
                format!(
                    "{}: pool_mode session with default_pool_size {server_pool} < {clients} client connections the routed pools keep open: each pins a server connection while connected, so the rest wait for ever",
                    p.name
                ),
                "set pool_mode = transaction (Dify works with it; `difyplan render` writes it)",
            )
            .at(&p.pool_mode.source),
        );
        return;
    }
    let bound = greenlets.saturating_add(1);
    if greenlets > 0 && server_pool < bound {
        out.push(
            Finding::new(
                Code::PoolerDeadlockRisk,
                format!(
                    "{}: default_pool_size {} (+ reserve {}) < {bound}: the {greenlets} api greenlets routed \
                        to it (at maximum replicas and surge) each hold one server connection and may wait for a \
                        second; a shared pool below that + 1 deadlocks (measured: 80% of requests failed)",
                    p.name, p.default_pool_size.value, p.reserve_pool_size.value
                ),
                format!(
                    "raise default_pool_size to at least {bound} (chat apps: {}), and max_connections with it \
                        — `difyplan size --pooler pgbouncer` computes both",
                    greenlets.saturating_mul(2).saturating_add(1)
                ),
            )
            .at(&p.default_pool_size.source),
        );
    }
    if p.max_client_conn.value < clients {
        out.push(
            Finding::new(
                Code::PoolerClientSlotsLow,
                format!(
                    "{}: max_client_conn {} < {clients} client connections the pools of {} may open: the rest \
                        are refused",
                    p.name,
                    p.max_client_conn.value,
                    routed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
                format!(
                    "raise max_client_conn to at least {clients} (client slots cost PgBouncer file \
                    descriptors, not backends)"
                ),
            )
            .at(&p.max_client_conn.source),
        );
    }
}

fn budget_rule(d: &Deployment, b: &Budget, out: &mut Vec<Finding>) {
    if b.fits {
        return;
    }
    let arithmetic: Vec<String> = b
        .lines
        .iter()
        .map(|l| {
            format!("{} {} × {} × {} = {}", l.component, l.worst_pods, l.processes, l.per_process_max, l.connections)
        })
        .collect();
    let mysql = d.db_type == DbType::Mysql;
    let withheld = match (b.cap.app_role_superuser, mysql) {
        (true, true) => format!(" + {} for an account with CONNECTION_ADMIN", b.cap.superuser_extra_connections),
        (true, false) => String::new(),
        (false, _) if mysql => String::new(),
        (false, _) => format!(" − {} reserved", b.cap.withheld()),
    };
    // The max_connections whose usable cap holds the demand.
    let need = b.demand.saturating_add(b.cap.withheld()).saturating_sub(if b.cap.app_role_superuser {
        b.cap.superuser_extra_connections
    } else {
        0
    });
    let what = if mysql {
        "max_connections (MYSQL_MAX_CONNECTIONS in Dify's .env, the server's --max_connections)"
    } else {
        "max_connections"
    };
    out.push(
        Finding::new(
            Code::ConnectionBudgetExceeded,
            format!(
                "worst-case demand {} exceeds the usable cap {} (max_connections {}{withheld}): {}",
                b.demand,
                b.usable,
                b.cap.max_connections,
                arithmetic.join(" + ")
            ),
            format!(
                "raise {what} to at least {need}, or shrink the pools: `difyplan size` computes a plan that fits{}",
                if mysql { " (with --db-type mysql)" } else { "" }
            ),
        )
        .at(&d.max_connections.source),
    );
}

fn pool_rules(c: &Deployed, apps: &Apps, out: &mut Vec<Finding>) {
    if !c.component.serves_api_requests() {
        return;
    }
    let Some(greenlets) = &c.greenlets else { return };
    let (p, o, g) = (c.pool_size.value, c.max_overflow.value, greenlets.value);
    // Point at the setting that was written, preferring the pool's own line.
    let at = match (&c.pool_size.source, &greenlets.source) {
        (s @ Source::File { .. }, _) => s.clone(),
        (_, s) => s.clone(),
    };
    match judge_api_pool(p, o, g, apps.chat_pool_factor) {
        PoolVerdict::Deadlock => out.push(
            Finding::new(
                Code::PoolDeadlockRisk,
                format!(
                    "{}: pool {p} + overflow {o} = {} ≤ SERVER_WORKER_CONNECTIONS {g}: admitted requests each \
                hold one connection and wait for a second",
                    c.name,
                    p.saturating_add(o)
                ),
                format!(
                    "raise SQLALCHEMY_POOL_SIZE + SQLALCHEMY_MAX_OVERFLOW to at least {} (chat apps: {}), or \
                lower SERVER_WORKER_CONNECTIONS",
                    g.saturating_add(1),
                    g.saturating_mul(2)
                ),
            )
            .on(c.component)
            .at(&at),
        ),
        PoolVerdict::ChatStall if apps.chat => out.push(
            Finding::new(
                Code::PoolChatStall,
                format!(
                    "{}: pool {p} + overflow {o} = {} < {} × SERVER_WORKER_CONNECTIONS {g}: a chat request nests \
                    a second and third checkout, so with every greenlet busy the process deadlocks (measured: \
                    greenlets + 1 served 0 of 360 chat requests)",
                    c.name,
                    p.saturating_add(o),
                    crate::model::capacity::fmt(apps.chat_pool_factor)
                ),
                format!(
                    "raise SQLALCHEMY_POOL_SIZE + SQLALCHEMY_MAX_OVERFLOW to at least {} (`difyplan size` plans \
                    {}), or lower SERVER_WORKER_CONNECTIONS; a deployment without chat apps: check with \
                    --profile workflow",
                    rules::chat_pool(g, apps.chat_pool_factor),
                    rules::chat_pool(g, apps.chat_pool_factor).saturating_add(1)
                ),
            )
            .on(c.component)
            .at(&at),
        ),
        PoolVerdict::ChatStall | PoolVerdict::Safe => {}
    }
}

fn worker_rules(c: &Deployed, apps: &Apps, out: &mut Vec<Finding>) {
    if c.component != Component::Worker {
        return;
    }
    let Some(conc) = &c.concurrency else { return };
    let needed = rules::chat_pool(conc.value, apps.worker_chat_pool_factor);
    let chat_pool = format!(
        "give the worker SQLALCHEMY_POOL_SIZE + SQLALCHEMY_MAX_OVERFLOW ≥ {needed} (a per-service override; \
         `difyplan size` plans {}); a deployment whose chat runs do not stream: check with --streaming-share 0",
        needed.saturating_add(1)
    );
    match c.celery_pool {
        Some(CeleryPool::Gevent) if apps.chat_in_worker && c.per_process_max < conc.value => out.push(
            Finding::new(
                Code::WorkerPoolBelowConcurrency,
                format!(
                    "worker: pool {} + overflow {} = {} < -c {}: each streaming chat run holds a connection \
                for its whole duration, so the runs beyond the pool time out",
                    c.pool_size.value, c.max_overflow.value, c.per_process_max, conc.value
                ),
                chat_pool,
            )
            .on(c.component)
            .at(&c.pool_size.source),
        ),
        Some(CeleryPool::Gevent) if apps.chat_in_worker && c.per_process_max < needed => out.push(
            Finding::new(
                Code::WorkerPoolDeadlockRisk,
                format!(
                    "worker: pool {} + overflow {} = {} < {} × -c {}: a chat run holds a connection for its \
                whole duration and takes a second at its start and end, so when every slot runs chat the \
                pool deadlocks (measured: -c × 1.1 served 28 of 300 chat runs at twice the load; 2 × -c \
                served all)",
                    c.pool_size.value,
                    c.max_overflow.value,
                    c.per_process_max,
                    crate::model::capacity::fmt(apps.worker_chat_pool_factor),
                    conc.value
                ),
                chat_pool,
            )
            .on(c.component)
            .at(&c.pool_size.source),
        ),
        Some(CeleryPool::Prefork) => out.push(
            Finding::new(
                Code::PreforkMultipliesPools,
                format!(
                    "worker runs prefork with {} children: {} pools of {} = {} connections per pod (counted in \
                the budget)",
                    conc.value,
                    conc.value,
                    c.per_process_max,
                    conc.value.saturating_mul(c.per_process_max)
                ),
                "use the gevent pool (CELERY_WORKER_CLASS empty) so the task slots share one pool, or \
                shrink the pool per child",
            )
            .on(c.component)
            .at(&conc.source),
        ),
        _ => {}
    }
    if conc.value <= 1 {
        out.push(
            Finding::new(
                Code::StreamingRunsSerialized,
                "worker runs one task at a time (-c 1): concurrent streaming runs queue behind each other \
                (measured; `difyplan explain streaming-runs-serialized`)",
                "set CELERY_WORKER_AMOUNT to the streaming runs in flight (`difyplan size` computes it)",
            )
            .on(c.component)
            .at(&conc.source),
        );
    }
}

fn redis_rule(c: &Deployed, out: &mut Vec<Finding>) {
    if !matches!(c.component, Component::Api) {
        return;
    }
    let (Some(redis), Some(greenlets)) = (c.env.get("REDIS_MAX_CONNECTIONS"), &c.greenlets) else { return };
    let Ok(max) = redis.value.trim().parse::<u64>() else { return };
    // One pub/sub connection per admitted stream (measured: 20 streams raised Redis connections from 20 to 50).
    if max < greenlets.value {
        out.push(
            Finding::new(
                Code::RedisMaxConnectionsLow,
                format!(
                    "{}: REDIS_MAX_CONNECTIONS {max} < SERVER_WORKER_CONNECTIONS {}: each admitted stream \
                holds one Redis pub/sub connection",
                    c.name, greenlets.value
                ),
                format!(
                    "raise REDIS_MAX_CONNECTIONS to at least {} or leave it empty",
                    greenlets.value.saturating_add(greenlets.value / 2)
                ),
            )
            .on(c.component)
            .at(&redis.source),
        );
    }
}

pub use crate::dify::keys::SIZING_KEYS;

fn unknown_keys(d: &Deployment, out: &mut Vec<Finding>) {
    let mut seen = BTreeSet::new();
    for c in &d.components {
        for (key, v) in &c.env {
            if SIZING_KEYS.contains(&key.as_str()) || !seen.insert((key.clone(), v.source.clone())) {
                continue;
            }
            if let Some(meant) = near_miss(key) {
                out.push(
                    Finding::new(
                        Code::UnknownSizingKey,
                        format!(
                            "`{key}` is not a setting Dify reads; it looks like `{meant}`, which stays at its default"
                        ),
                        format!("rename it to {meant}"),
                    )
                    .at(&v.source),
                );
            }
        }
    }
}

/// A known sizing key the given key was probably meant to be: the same letters with other
/// underscores, or at most two edits away.
pub fn near_miss(key: &str) -> Option<&'static str> {
    static SQUASHED: std::sync::LazyLock<Vec<(String, &'static str)>> =
        std::sync::LazyLock::new(|| SIZING_KEYS.iter().map(|k| (squash(k), *k)).collect());
    let k = squash(key);
    SQUASHED
        .iter()
        .find(|(kn, _)| k == *kn || (k.len() >= 8 && k.len().abs_diff(kn.len()) <= 2 && edit_distance(&k, kn) <= 2))
        .map(|(_, known)| *known)
}

/// Upper case without separators: `sqlalchemy_pool-size` → `SQLALCHEMYPOOLSIZE`.
fn squash(s: &str) -> String {
    s.chars().filter(|c| *c != '_' && *c != '-').map(|c| c.to_ascii_uppercase()).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses() {
        assert_eq!(near_miss("SQLALCHEMY_POOLSIZE"), Some("SQLALCHEMY_POOL_SIZE"));
        assert_eq!(near_miss("SQLALCHEMY_MAX_OVERFLOWS"), Some("SQLALCHEMY_MAX_OVERFLOW"));
        assert_eq!(near_miss("SERVER_WORKER_AMMOUNT"), Some("SERVER_WORKER_AMOUNT"));
        assert_eq!(near_miss("sqlalchemy_pool_size"), Some("SQLALCHEMY_POOL_SIZE"));
        assert_eq!(near_miss("SQLALCHEMY_ECHO"), None);
        assert_eq!(near_miss("DB_PASSWORD"), None);
        assert_eq!(near_miss("REDIS_PORT"), None);
        assert_eq!(near_miss("SERVER_WORKER_CLASS"), Some("SERVER_WORKER_CLASS"));
    }
}
