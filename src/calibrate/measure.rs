//! The queries: what Dify's own tables say about the load, read in one read-only transaction.
//!
//! Columns read (present in every Dify release with workflows, 0.6 onwards; checked against the
//! schema of 1.16.1, alembic revision 56124e050600):
//! - `workflow_runs`: `id`, `app_id`, `type` (`workflow` runs are requests; `chat` runs belong to
//!   an advanced-chat message and are counted through `messages`), `triggered_from`, `status`,
//!   `elapsed_time` (seconds), `total_steps` (nodes run), `created_at`.
//! - `messages`: `app_id`, `created_at`, `provider_response_latency` (seconds), `invoke_from`,
//!   `workflow_run_id`.
//! - `workflow_app_logs`: `workflow_run_id`, `created_from` (where a workflow run came from).
//! - `apps`: `id`, `mode`.
//!
//! Every query is bounded by the window on `created_at` (an index in Dify's schema) and runs
//! under the session's statement timeout; nothing is written and no object is created.

use super::DEFAULT_SERVICE_API_STREAMING_SHARE;
use super::db::{Db, query_error};
use super::saturation::Concurrency;
use super::window::Window;
use anyhow::{Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;

/// The tables and columns calibrate reads.
pub const REQUIRED: &[(&str, &[&str])] = &[
    ("apps", &["id", "mode"]),
    (
        "workflow_runs",
        &["id", "app_id", "type", "triggered_from", "status", "elapsed_time", "total_steps", "created_at"],
    ),
    ("messages", &["app_id", "created_at", "provider_response_latency", "invoke_from", "workflow_run_id"]),
    ("workflow_app_logs", &["workflow_run_id", "created_from"]),
];

/// Tables whose size is workflow log (runs, node executions, app logs, messages).
const LOG_TABLES: &[&str] = &["workflow_runs", "workflow_node_executions", "workflow_app_logs", "messages"];

/// Rows counted exactly at most, when the planner has no estimate yet.
const COUNT_LIMIT: i64 = 1_000_000;
/// A table this large without an index on `created_at` would be scanned whole: refused.
const SCAN_LIMIT_ROWS: f64 = 200_000.0;

/// Where requests come from that always stream: Dify's web app, explore, and the editor.
pub const STREAMING_SOURCES: &[&str] = &["web-app", "explore", "installed-app", "debugger", "debugging"];
/// The service API: the caller chooses blocking or streaming, which no table records.
pub const SERVICE_API: &str = "service-api";

#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// `alembic_version.version_num`: Dify's schema revision.
    pub schema_revision: Option<String>,
    pub database: String,
    pub requests: Requests,
    pub rate: Rate,
    pub duration: Durations,
    pub mix: Mix,
    /// Mean `workflow_runs.total_steps` of the finished runs (workflow and advanced-chat).
    pub nodes_per_run: Option<f64>,
    pub log: LogSize,
    /// Requests in flight over the window, from the rows' start and duration.
    pub concurrency: Concurrency,
}

#[derive(Debug, Clone, Serialize)]
pub struct Requests {
    pub total: u64,
    /// `workflow_runs` of type `workflow`.
    pub workflow_runs: u64,
    /// `messages` (an advanced-chat message's own workflow run is not counted again).
    pub chat_messages: u64,
    /// By the app's mode (`apps.mode`).
    pub by_app_mode: BTreeMap<String, u64>,
    /// By where they came from (`messages.invoke_from`, `workflow_app_logs.created_from`).
    pub by_source: BTreeMap<String, u64>,
}

/// Requests per second.
#[derive(Debug, Clone, Serialize)]
pub struct Rate {
    /// Requests ÷ window seconds.
    pub mean: f64,
    /// The 95th percentile of the whole minutes of the window (minutes without requests count as 0).
    pub p95_minute: f64,
    pub peak_minute: f64,
    /// Whole minutes counted (from the window's start; a last partial minute is left out when
    /// there is a whole one).
    pub minutes: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stat {
    pub count: u64,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
}

/// Seconds per request: finished workflow runs (`elapsed_time`) and answered messages
/// (`provider_response_latency`).
#[derive(Debug, Clone, Serialize)]
pub struct Durations {
    pub all: Stat,
    pub workflow: Stat,
    pub chat: Stat,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mix {
    /// Messages ÷ requests.
    pub chat_share: f64,
    /// Messages to agent apps ÷ requests.
    pub agent_share: f64,
    /// Requests from the service API ÷ requests.
    pub service_api_share: f64,
    /// Requests from sources that always stream ÷ requests.
    pub streaming_sources_share: f64,
    /// The share of service-API requests taken to stream (`--service-api-streaming-share`; no
    /// table of Dify records the response mode).
    pub service_api_streaming_share: f64,
    /// The share above was not given but assumed, and service-API requests were measured: the
    /// streaming share rests on an assumption.
    pub service_api_streaming_share_assumed: bool,
    /// streaming sources + service API × its streaming share, and other sources (triggers,
    /// schedules: they run in the worker) counted as streaming.
    pub streaming_share: f64,
    /// Messages in the window that also wrote a workflow run (advanced-chat).
    pub messages_with_workflow_run: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogSize {
    /// Table, bytes on disk (with indexes and TOAST), rows (the planner's estimate, or counted).
    pub tables: Vec<TableSize>,
    /// Requests those rows hold: workflow runs + messages that wrote none.
    pub requests_estimate: Option<f64>,
    pub bytes_per_request: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableSize {
    pub table: String,
    pub bytes: i64,
    pub rows: Option<f64>,
}

/// The schema is Dify's, its columns are there, and the role may read them; names the fix otherwise.
pub fn check_schema(db: &Db, who: &str) -> Result<()> {
    let tables: Vec<&str> = REQUIRED.iter().map(|(t, _)| *t).collect();
    let rows = db
        .query(
            "SELECT c.relname::text, a.attname::text, has_table_privilege(c.oid, 'SELECT')
             FROM unnest($1::text[]) AS t(name)
             JOIN pg_class c ON c.oid = to_regclass(t.name)
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped",
            &[&tables],
        )
        .map_err(|e| query_error(&e, &format!("{who}: reading the catalog")))?;
    let database: String = db.query_one("SELECT current_database()::text", &[]).map(|r| r.get(0)).unwrap_or_default();
    let found: Vec<&str> =
        tables.iter().copied().filter(|t| rows.iter().any(|r| r.get::<_, String>(0) == *t)).collect();
    if found.is_empty() {
        bail!(
            "{who}: database `{database}` has none of Dify's tables (apps, workflow_runs, messages) — \
                point calibrate at the database Dify's api uses (DB_DATABASE, usually `dify`; not \
                `dify_plugin`)"
        );
    }
    for (table, columns) in REQUIRED {
        if !found.contains(table) {
            bail!(
                "{who}: database `{database}` has no table `{table}` (it has {}) — this is not a Dify \
                    database calibrate can read, or its schema is older than Dify 0.6: upgrade Dify, or point \
                    at the database Dify's api uses",
                found.join(", ")
            );
        }
        let have: Vec<String> = rows
            .iter()
            .filter(|r| r.get::<_, String>(0) == *table)
            .filter_map(|r| r.get::<_, Option<String>>(1))
            .collect();
        let missing: Vec<&str> = columns.iter().copied().filter(|c| !have.iter().any(|h| h == c)).collect();
        if !missing.is_empty() {
            bail!(
                "{who}: table `{table}` has no column {} — its schema is from a Dify release calibrate \
                    does not read (it needs the columns of Dify 0.6 or later, checked against 1.16.1); \
                    upgrade Dify (its migrations add the column), then measure again",
                missing.iter().map(|c| format!("`{table}.{c}`")).collect::<Vec<_>>().join(", ")
            );
        }
        if !rows.iter().any(|r| r.get::<_, String>(0) == *table && r.get::<_, bool>(2)) {
            let user: String = db.query_one("SELECT current_user::text", &[]).map(|r| r.get(0)).unwrap_or_default();
            bail!(
                "{who}: role `{user}` may not read table `{table}` — grant it: GRANT SELECT ON {} TO \
                    {user}; (or GRANT pg_read_all_data TO {user} on PostgreSQL 14+), or connect as Dify's own \
                    role",
                tables.join(", "),
            );
        }
    }
    // The window must be found by an index, or a large table would be read whole.
    for table in ["workflow_runs", "messages"] {
        let row = db
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                                WHERE i.indrelid = to_regclass($1) AND a.attname = 'created_at'),
                        (SELECT reltuples::float8 FROM pg_class WHERE oid = to_regclass($1))",
                &[&table],
            )
            .map_err(|e| query_error(&e, &format!("{who}: reading the catalog")))?;
        let (indexed, rows): (bool, f64) = (row.get(0), row.get(1));
        if !indexed && rows > SCAN_LIMIT_ROWS {
            bail!(
                "{who}: `{table}` has about {rows:.0} rows and no index that starts with `created_at`, so \
                    measuring a window would read it whole — run calibrate against a replica, or add the \
                    index Dify 1.x creates (CREATE INDEX CONCURRENTLY ON {table} (created_at))"
            );
        }
    }
    Ok(())
}

/// The window's bounds on `created_at`, as parameters $1 and $2 (Unix seconds, UTC).
const WIN: &str = "created_at >= (to_timestamp($1::float8) AT TIME ZONE 'UTC') AND created_at < \
    (to_timestamp($2::float8) AT TIME ZONE 'UTC')";

/// [`WIN`] on a table's alias.
fn win(alias: &str) -> String {
    WIN.replace("created_at", &format!("{alias}.created_at"))
}

/// Everything measured over the window, in one read-only snapshot.
pub fn measure(db: &Db, window: &Window, service_api_streaming_share: Option<f64>) -> Result<Measured> {
    db.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .map_err(|e| query_error(&e, "starting a read-only transaction"))?;
    let schema_revision = schema_revision(db)?;
    let database: String = db.query_one("SELECT current_database()::text", &[]).map(|r| r.get(0)).unwrap_or_default();
    let per_minute = requests_per_minute(db, window)?;
    let rate = minute_rates(&per_minute, window);
    let total: u64 = per_minute.values().sum();
    let duration = durations(db, window)?;
    let (requests, mix) = request_mix(db, window, total, service_api_streaming_share)?;
    let nodes_per_run = nodes_per_run(db, window)?;
    let log = log_size(db, &requests, mix.messages_with_workflow_run)?;
    let concurrency = super::saturation::concurrency(db, window)?;
    db.batch_execute("COMMIT").map_err(|e| query_error(&e, "ending the transaction"))?;
    Ok(Measured { schema_revision, database, requests, rate, duration, mix, nodes_per_run, log, concurrency })
}

/// `alembic_version.version_num`, when the role may read it.
fn schema_revision(db: &Db) -> Result<Option<String>> {
    let readable = db
        .query_one(
            "SELECT to_regclass('alembic_version') IS NOT NULL AND has_table_privilege('alembic_version', 'SELECT')",
            &[],
        )
        .map(|r| r.get::<_, Option<bool>>(0).unwrap_or(false))
        .unwrap_or(false);
    if !readable {
        return Ok(None);
    }
    Ok(db
        .query_opt("SELECT version_num::text FROM alembic_version LIMIT 1", &[])
        .map_err(|e| query_error(&e, "reading alembic_version"))?
        .map(|r| r.get(0)))
}

/// Requests per minute from the window's start: workflow runs of type `workflow` and messages.
fn requests_per_minute(db: &Db, window: &Window) -> Result<BTreeMap<i64, u64>> {
    let rows = db
        .query(
            &format!(
                "SELECT floor((extract(epoch FROM created_at)::float8 - $1::float8) / 60)::int8 AS b, count(*)::int8 FROM (
                   SELECT created_at FROM workflow_runs WHERE {WIN} AND type = 'workflow'
                   UNION ALL
                   SELECT created_at FROM messages WHERE {WIN}
                 ) r GROUP BY 1"
            ),
            &[&window.from, &window.to],
        )
        .map_err(|e| query_error(&e, "counting requests per minute"))?;
    Ok(rows.iter().map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1) as u64)).collect())
}

/// Durations: finished workflow runs and answered messages.
fn durations(db: &Db, window: &Window) -> Result<Durations> {
    let stats = db
        .query(
            &format!(
                "SELECT kind, count(*)::int8, avg(d)::float8,
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY d)::float8,
                        percentile_cont(0.95) WITHIN GROUP (ORDER BY d)::float8
                 FROM (
                   SELECT 'workflow'::text AS kind, elapsed_time AS d FROM workflow_runs
                     WHERE {WIN} AND type = 'workflow' AND status <> 'running'
                   UNION ALL
                   SELECT 'chat', provider_response_latency FROM messages WHERE {WIN} AND provider_response_latency > 0
                 ) x GROUP BY GROUPING SETS ((kind), ())"
            ),
            &[&window.from, &window.to],
        )
        .map_err(|e| query_error(&e, "reading request durations"))?;
    let stat = |kind: Option<&str>| {
        stats
            .iter()
            .find(|r| r.get::<_, Option<String>>(0).as_deref() == kind)
            .map(|r| Stat { count: r.get::<_, i64>(1) as u64, mean: r.get(2), p50: r.get(3), p95: r.get(4) })
            .unwrap_or_default()
    };
    Ok(Durations { all: stat(None), workflow: stat(Some("workflow")), chat: stat(Some("chat")) })
}

/// Requests by app mode and source, and the mix they make.
fn request_mix(
    db: &Db,
    window: &Window,
    total: u64,
    service_api_streaming_share: Option<f64>,
) -> Result<(Requests, Mix)> {
    let (win_r, win_m) = (win("r"), win("m"));
    let mix_rows = db
        .query(
            &format!(
                "SELECT 'workflow'::text, coalesce(a.mode::text, 'unknown'),
                        coalesce((SELECT l.created_from::text FROM workflow_app_logs l WHERE l.workflow_run_id = r.id LIMIT 1),
                                 CASE WHEN r.triggered_from = 'debugging' THEN 'debugger' ELSE r.triggered_from::text END),
                        count(*)::int8, 0::int8
                 FROM workflow_runs r LEFT JOIN apps a ON a.id = r.app_id
                 WHERE {win_r} AND r.type = 'workflow' GROUP BY 1, 2, 3
                 UNION ALL
                 SELECT 'chat', coalesce(a.mode::text, 'unknown'), coalesce(m.invoke_from::text, 'unknown'),
                        count(*)::int8, count(m.workflow_run_id)::int8
                 FROM messages m LEFT JOIN apps a ON a.id = m.app_id
                 WHERE {win_m} GROUP BY 1, 2, 3"
            ),
            &[&window.from, &window.to],
        )
        .map_err(|e| query_error(&e, "reading the request mix"))?;
    let mut requests = Requests {
        total,
        workflow_runs: 0,
        chat_messages: 0,
        by_app_mode: BTreeMap::new(),
        by_source: BTreeMap::new(),
    };
    let (mut agent, mut linked) = (0u64, 0u64);
    for r in &mix_rows {
        let (kind, mode, source): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let n = r.get::<_, i64>(3) as u64;
        if kind == "chat" {
            requests.chat_messages += n;
            linked += r.get::<_, i64>(4) as u64;
            if mode == "agent-chat" {
                agent += n;
            }
        } else {
            requests.workflow_runs += n;
        }
        *requests.by_app_mode.entry(mode).or_default() += n;
        *requests.by_source.entry(source).or_default() += n;
    }
    let share = |n: u64| if total > 0 { n as f64 / total as f64 } else { 0.0 };
    let service = requests.by_source.get(SERVICE_API).copied().unwrap_or(0);
    let always: u64 =
        requests.by_source.iter().filter(|(s, _)| STREAMING_SOURCES.contains(&s.as_str())).map(|(_, n)| n).sum();
    let other = total.saturating_sub(service + always);
    let (api_share, assumed) = match service_api_streaming_share {
        Some(s) => (s, false),
        None => (DEFAULT_SERVICE_API_STREAMING_SHARE, service > 0),
    };
    let mix = Mix {
        chat_share: share(requests.chat_messages),
        agent_share: share(agent),
        service_api_share: share(service),
        streaming_sources_share: share(always),
        service_api_streaming_share: api_share,
        service_api_streaming_share_assumed: assumed,
        streaming_share: if total > 0 {
            ((always + other) as f64 + service as f64 * api_share) / total as f64
        } else {
            0.0
        },
        messages_with_workflow_run: linked,
    };
    Ok((requests, mix))
}

/// Mean `workflow_runs.total_steps` of the finished runs.
fn nodes_per_run(db: &Db, window: &Window) -> Result<Option<f64>> {
    Ok(db
        .query_one(
            &format!("SELECT avg(total_steps)::float8 FROM workflow_runs WHERE {WIN} AND status <> 'running'"),
            &[&window.from, &window.to],
        )
        .map_err(|e| query_error(&e, "reading nodes per run"))?
        .get(0))
}

/// Log bytes: relation sizes ÷ the requests their rows hold.
fn log_size(db: &Db, requests: &Requests, linked: u64) -> Result<LogSize> {
    let mut tables = Vec::new();
    for table in LOG_TABLES {
        let row = db
            .query_opt(
                "SELECT pg_total_relation_size(c.oid)::int8, c.reltuples::float8, has_table_privilege(c.oid, 'SELECT')
                 FROM pg_class c WHERE c.oid = to_regclass($1)",
                &[table],
            )
            .map_err(|e| query_error(&e, "reading table sizes"))?;
        let Some(row) = row else { continue };
        let (bytes, estimate, readable): (i64, f64, bool) = (row.get(0), row.get(1), row.get(2));
        let rows = if estimate > 0.0 {
            Some(estimate)
        } else if readable {
            // Never analysed: count, but not past a bound.
            let n: i64 = db
                .query_one(&format!("SELECT count(*)::int8 FROM (SELECT 1 FROM {table} LIMIT {COUNT_LIMIT}) s"), &[])
                .map_err(|e| query_error(&e, "counting log rows"))?
                .get(0);
            (n < COUNT_LIMIT).then_some(n as f64)
        } else {
            None
        };
        tables.push(TableSize { table: table.to_string(), bytes, rows });
    }
    let rows_of = |name: &str| tables.iter().find(|t| t.table == name).and_then(|t| t.rows);
    // Messages that wrote a workflow run are already counted as runs: the planner's share of
    // messages without one (pg_stats), else the window's.
    let null_frac: Option<f64> = db
        .query_opt(
            "SELECT null_frac::float8 FROM pg_stats WHERE tablename = 'messages' AND attname = 'workflow_run_id'
               AND schemaname = (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass('messages'))",
            &[],
        )
        .map_err(|e| query_error(&e, "reading planner statistics"))?
        .map(|r| r.get(0));
    let linked_share = match null_frac {
        Some(n) => 1.0 - n,
        None if requests.chat_messages > 0 => linked as f64 / requests.chat_messages as f64,
        None => 0.0,
    };
    let requests_estimate = match (rows_of("workflow_runs"), rows_of("messages")) {
        (Some(w), Some(m)) => Some(w + m * (1.0 - linked_share)),
        (Some(w), None) => Some(w),
        _ => None,
    };
    let bytes: i64 = tables.iter().map(|t| t.bytes).sum();
    let bytes_per_request = requests_estimate.filter(|r| *r >= 1.0).map(|r| bytes as f64 / r);
    Ok(LogSize { tables, requests_estimate, bytes_per_request })
}

/// Mean over the window; p95 and peak over its whole minutes.
fn minute_rates(per_bucket: &BTreeMap<i64, u64>, window: &Window) -> Rate {
    let total: u64 = per_bucket.values().sum();
    let whole = (window.seconds() / 60.0).floor() as i64;
    let buckets = whole.max(1);
    let mut counts: Vec<u64> = (0..buckets).map(|b| per_bucket.get(&b).copied().unwrap_or(0)).collect();
    let scale = if whole >= 1 { 60.0 } else { window.seconds() };
    counts.sort_unstable();
    let rank = ((0.95 * counts.len() as f64).ceil() as usize).clamp(1, counts.len()) - 1;
    Rate {
        mean: total as f64 / window.seconds(),
        p95_minute: counts[rank] as f64 / scale,
        peak_minute: *counts.last().unwrap_or(&0) as f64 / scale,
        minutes: whole.max(0) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_fill_zeros_and_skip_the_partial_minute() {
        let w = Window { from: 0.0, to: 200.0 }; // 3 whole minutes and 20 s
        let counts: BTreeMap<i64, u64> = [(0, 60), (2, 120), (3, 600)].into_iter().collect();
        let r = minute_rates(&counts, &w);
        assert_eq!(r.minutes, 3);
        assert_eq!(r.mean, 780.0 / 200.0);
        assert_eq!(r.peak_minute, 2.0); // bucket 3 is the partial minute
        assert_eq!(r.p95_minute, 2.0);
        let short = Window { from: 0.0, to: 30.0 };
        let r = minute_rates(&[(0, 60)].into_iter().collect(), &short);
        assert_eq!((r.minutes, r.peak_minute), (0, 2.0));
    }
}
