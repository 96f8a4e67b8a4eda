//! Requests in flight over the window, from each row's start and duration, and whether they sat
//! at a ceiling: an admission limit (the api's greenlets, the worker's `-c`) that held the rest
//! back. A saturated window measures the load that got through, not the load that came.

use super::db::Db;
use super::db::query_error;
use super::window::Window;
use anyhow::Result;
use serde::Serialize;

/// A window is saturated when requests in flight sat at a limit for at least this share of it.
pub const SATURATED_SHARE: f64 = 0.01;
/// Without a configuration: a level held this share of the window, within [`CEILING_NEAR_PEAK`]
/// of the peak, is a ceiling. On the real Dify 1.16.1 runs of docs/model.md ("calibrate under
/// overload"), the runs held back by 10 greenlets, `-c 1`, a full worker or the api's greenlets
/// sat at their limit for 24–99 % of the window; runs that were not held back never spent more
/// than 10 % at one level.
pub const CEILING_SHARE: f64 = 0.2;
/// How close to the peak a ceiling lies (arrivals round to the second, so a few rise above it).
pub const CEILING_NEAR_PEAK: f64 = 0.85;

/// Requests in flight: seconds of the window spent at each level.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Concurrency {
    pub mean: f64,
    pub peak: u64,
    /// (requests in flight, seconds of the window at that level), ascending; levels never held
    /// are left out.
    #[serde(skip)]
    pub levels: Vec<(u64, f64)>,
    /// A level the window sat at, found without a configuration.
    pub ceiling: Option<Ceiling>,
    /// Set with `--compare`: the configuration's admission limits and the time at each.
    pub limits: Vec<AtLimit>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    pub level: u64,
    pub seconds: f64,
    pub share: f64,
}

/// One admission limit of the configuration and the time the window spent at or above it.
#[derive(Debug, Clone, Serialize)]
pub struct AtLimit {
    /// `api greenlets`, `worker -c slots`.
    pub what: String,
    pub limit: f64,
    pub seconds: f64,
    pub share: f64,
    /// At the limit for at least [`SATURATED_SHARE`] of the window.
    pub saturated: bool,
}

impl Concurrency {
    /// Seconds of the window with at least `limit` requests in flight.
    pub fn seconds_at_or_above(&self, limit: f64) -> f64 {
        self.levels.iter().filter(|(n, _)| *n as f64 >= limit - 1e-9).map(|(_, s)| s).sum()
    }

    /// The time at each of the configuration's limits, over a window of `seconds`. A window
    /// that spent more time well above a limit (more than [`CEILING_NEAR_PEAK`] below it) than
    /// at it was not held back by it: that configuration is not the one measured, and its lines
    /// in `--compare` say it is too small instead.
    pub fn judge(&mut self, limits: &[(String, f64)], seconds: f64) {
        self.limits = limits
            .iter()
            .filter(|(_, l)| *l >= 1.0)
            .map(|(what, limit)| {
                let at = self.seconds_at_or_above(*limit);
                let above = self.seconds_at_or_above((limit / CEILING_NEAR_PEAK).floor() + 1.0);
                let share = if seconds > 0.0 { at / seconds } else { 0.0 };
                let saturated = share >= SATURATED_SHARE && above < at - above;
                AtLimit { what: what.clone(), limit: *limit, seconds: at, share, saturated }
            })
            .collect();
    }

    /// Saturated: at a configuration's limit, or (without one) at a ceiling.
    pub fn saturated(&self) -> bool {
        self.limits.iter().any(|l| l.saturated) || (self.limits.is_empty() && self.ceiling.is_some())
    }

    /// The most of the window spent at a limit (or the ceiling), as a share.
    pub fn saturated_share(&self) -> f64 {
        let at_limits = self.limits.iter().filter(|l| l.saturated).map(|l| l.share).fold(0.0, f64::max);
        if self.limits.is_empty() { self.ceiling.as_ref().map_or(0.0, |c| c.share) } else { at_limits }
    }

    /// One sentence for the report and the profile; `None` when not saturated.
    pub fn caveat(&self, rate: f64) -> Option<String> {
        if !self.saturated() {
            return None;
        }
        let at = match self.limits.iter().filter(|l| l.saturated).max_by(|a, b| a.share.total_cmp(&b.share)) {
            Some(l) => format!("at the configuration's {} ({})", l.what, crate::model::capacity::fmt(l.limit)),
            None => format!(
                "at a ceiling of {} requests in flight (an admission limit: the api's greenlets or the worker's -c)",
                self.ceiling.as_ref().map_or(0, |c| c.level)
            ),
        };
        Some(format!(
            "saturated: requests in flight sat {at} for {:.0}% of the window, so {rate:.2} req/s is a lower \
                bound of the offered load (the rest waited in the listen backlog or the worker's queue, where no \
                table sees it) and request_seconds leaves that wait out — measure a window without saturation, or \
                size above this rate",
            self.saturated_share() * 100.0
        ))
    }
}

/// Requests in flight over the window: workflow runs from `created_at` for `elapsed_time`,
/// messages from `created_at` for `provider_response_latency`; a sweep over start and end
/// events, done in the database so only the levels come back.
pub fn concurrency(db: &Db, window: &Window) -> Result<Concurrency> {
    let rows = db
        .query(
            "WITH req AS (
               SELECT extract(epoch FROM created_at)::float8 AS s, elapsed_time::float8 AS d FROM workflow_runs
                 WHERE created_at >= (to_timestamp($1::float8) AT TIME ZONE 'UTC')
                   AND created_at < (to_timestamp($2::float8) AT TIME ZONE 'UTC')
                   AND type = 'workflow' AND elapsed_time > 0
               UNION ALL
               SELECT extract(epoch FROM created_at)::float8, provider_response_latency::float8 FROM messages
                 WHERE created_at >= (to_timestamp($1::float8) AT TIME ZONE 'UTC')
                   AND created_at < (to_timestamp($2::float8) AT TIME ZONE 'UTC')
                   AND provider_response_latency > 0
             ), ev AS (
               SELECT s AS t, 1 AS step FROM req UNION ALL SELECT s + d, -1 FROM req
             ), lvl AS (
               SELECT t, sum(step) OVER (ORDER BY t, step ROWS UNBOUNDED PRECEDING) AS n,
                      lead(t) OVER (ORDER BY t, step) AS next
               FROM ev
             )
             SELECT n::int8, sum(greatest(least(next, $2::float8) - greatest(t, $1::float8), 0))::float8
             FROM lvl WHERE next IS NOT NULL GROUP BY 1 ORDER BY 1",
            &[&window.from, &window.to],
        )
        .map_err(|e| query_error(&e, "reading requests in flight"))?;
    let levels: Vec<(u64, f64)> =
        rows.iter().map(|r| (r.get::<_, i64>(0).max(0) as u64, r.get::<_, f64>(1))).filter(|(_, s)| *s > 0.0).collect();
    Ok(from_levels(levels, window.seconds()))
}

/// The summary of the levels over a window of `seconds`.
pub fn from_levels(levels: Vec<(u64, f64)>, seconds: f64) -> Concurrency {
    let peak = levels.iter().map(|(n, _)| *n).max().unwrap_or(0);
    let mean = if seconds > 0.0 { levels.iter().map(|(n, s)| *n as f64 * s).sum::<f64>() / seconds } else { 0.0 };
    let ceiling = levels
        .iter()
        .filter(|(n, _)| *n >= 1 && *n as f64 >= CEILING_NEAR_PEAK * peak as f64)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|&(level, s)| Ceiling { level, seconds: s, share: if seconds > 0.0 { s / seconds } else { 0.0 } })
        .filter(|c| c.share >= CEILING_SHARE);
    Concurrency { mean, peak, levels, ceiling, limits: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plateau_is_a_ceiling_and_poisson_wander_is_not() {
        // Held back by 10 greenlets: 88 of 98 s at 10.
        let held = from_levels(vec![(1, 0.7), (3, 6.4), (9, 1.6), (10, 87.6)], 98.0);
        assert_eq!(held.ceiling.as_ref().map(|c| c.level), Some(10));
        assert!(held.saturated());
        assert!(held.caveat(2.0).unwrap().contains("lower bound"));
        // Not held back: no level holds a fifth of the window.
        let free = from_levels((1..40).map(|n| (n, 2.0)).collect(), 80.0);
        assert!(free.ceiling.is_none() && !free.saturated() && free.caveat(5.0).is_none());
    }

    #[test]
    fn limits_of_a_configuration() {
        let mut c = from_levels(vec![(5, 50.0), (10, 20.0), (11, 1.0)], 100.0);
        c.judge(&[("api greenlets".into(), 10.0), ("worker -c slots".into(), 40.0)], 100.0);
        assert!(c.limits[0].saturated && (c.limits[0].seconds - 21.0).abs() < 1e-9);
        assert!(!c.limits[1].saturated);
        assert!(c.saturated());
        assert!((c.saturated_share() - 0.21).abs() < 1e-9);
        // 100 in flight against a configuration of 10: not the configuration that was measured.
        let mut other = from_levels(vec![(10, 5.0), (100, 80.0)], 100.0);
        other.judge(&[("api greenlets".into(), 10.0)], 100.0);
        assert!(!other.limits[0].saturated && !other.saturated());
    }
}
