//! `--sample-activity`: `pg_stat_activity` every 100 ms, the database's client connections by
//! state and by client, and the connections held per request in flight (Little's law with the
//! rate of the same seconds).

use super::db::Db;
use super::db::query_error;
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    pub seconds: f64,
    pub samples: u64,
    /// Mean and peak connections per state (`active`, `idle`, `idle in transaction`, …;
    /// `hidden` when the role may not see other roles' states: grant it pg_read_all_stats).
    pub by_state: BTreeMap<String, Level>,
    /// Mean and peak per client: role, application_name, address.
    pub by_client: Vec<ClientLevel>,
    /// Mean connections held (active or in a transaction), the ones a request keeps.
    pub held_mean: f64,
    /// Requests (workflow runs and messages) created during the sample, per second.
    pub rate: f64,
    /// rate × mean request seconds.
    pub in_flight: Option<f64>,
    /// held_mean ÷ in_flight.
    pub connections_per_request: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Level {
    pub mean: f64,
    pub peak: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientLevel {
    pub role: String,
    pub application: String,
    pub address: String,
    pub held: Level,
    pub total: Level,
}

/// A client: role, application_name, address.
type Client3 = (String, String, String);

const HELD: &[&str] = &["active", "idle in transaction", "idle in transaction (aborted)"];

/// Samples for `duration`, then counts the requests of those seconds; `request_seconds` is the
/// measured mean request time. `progress` is told the time sampled so far after each sample
/// (the command prints it on stderr).
pub fn sample(
    client: &Db,
    duration: Duration,
    request_seconds: Option<f64>,
    progress: &mut dyn FnMut(Duration),
) -> Result<Activity> {
    // Each statement outside a transaction sees a fresh pg_stat_activity.
    let stmt = client
        .prepare(
            "SELECT coalesce(state, 'hidden')::text, coalesce(usename::text, ''), coalesce(application_name, '')::text,
                    coalesce(host(client_addr), 'local')::text, count(*)::int8
             FROM pg_stat_activity
             WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
             GROUP BY 1, 2, 3, 4",
        )
        .map_err(|e| query_error(&e, "reading pg_stat_activity"))?;
    let now = |client: &Db| -> Result<f64> {
        client
            .query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[])
            .map(|r| r.get(0))
            .map_err(|e| query_error(&e, "reading the server's clock"))
    };
    let start = now(client)?;
    let began = Instant::now();
    let mut samples = 0u64;
    let mut states: BTreeMap<String, (u64, u64)> = BTreeMap::new(); // sum, peak
    // Per client: held sum, held peak, open sum, open peak.
    let mut clients: BTreeMap<Client3, (u64, u64, u64, u64)> = BTreeMap::new();
    let mut held_sum = 0u64;
    while began.elapsed() < duration {
        let tick = Instant::now();
        let rows = client.query(&stmt, &[]).map_err(|e| query_error(&e, "reading pg_stat_activity"))?;
        samples += 1;
        progress(began.elapsed());
        let mut this_state: BTreeMap<String, u64> = BTreeMap::new();
        let mut this_client: BTreeMap<Client3, (u64, u64)> = BTreeMap::new();
        for r in &rows {
            let (state, role, app, addr): (String, String, String, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
            let n = r.get::<_, i64>(4) as u64;
            *this_state.entry(state.clone()).or_default() += n;
            let e = this_client.entry((role, app, addr)).or_default();
            e.1 += n;
            if HELD.contains(&state.as_str()) {
                e.0 += n;
                held_sum += n;
            }
        }
        for (s, n) in this_state {
            let e = states.entry(s).or_default();
            e.0 += n;
            e.1 = e.1.max(n);
        }
        for (k, (held, total)) in this_client {
            let e = clients.entry(k).or_default();
            e.0 += held;
            e.1 = e.1.max(held);
            e.2 += total;
            e.3 = e.3.max(total);
        }
        if let Some(rest) = INTERVAL.checked_sub(tick.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let end = now(client)?;
    let n: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM workflow_runs WHERE type = 'workflow' AND created_at >= (to_timestamp($1) AT TIME ZONE 'UTC') AND created_at < (to_timestamp($2) AT TIME ZONE 'UTC'))
                  + (SELECT count(*) FROM messages WHERE created_at >= (to_timestamp($1) AT TIME ZONE 'UTC') AND created_at < (to_timestamp($2) AT TIME ZONE 'UTC'))",
            &[&start, &end],
        )
        .map_err(|e| query_error(&e, "counting the requests of the sample"))?
        .get(0);
    let seconds = (end - start).max(1e-3);
    let samples_f = samples.max(1) as f64;
    let rate = n as f64 / seconds;
    let held_mean = held_sum as f64 / samples_f;
    let in_flight = request_seconds.map(|w| rate * w);
    let connections_per_request = in_flight.filter(|l| *l >= 0.01).map(|l| held_mean / l);
    Ok(Activity {
        seconds,
        samples,
        by_state: states
            .into_iter()
            .map(|(s, (sum, peak))| (s, Level { mean: sum as f64 / samples_f, peak }))
            .collect(),
        by_client: clients
            .into_iter()
            .map(|((role, application, address), (hs, hp, ts, tp))| ClientLevel {
                role,
                application,
                address,
                held: Level { mean: hs as f64 / samples_f, peak: hp },
                total: Level { mean: ts as f64 / samples_f, peak: tp },
            })
            .collect(),
        held_mean,
        rate,
        in_flight,
        connections_per_request,
    })
}
