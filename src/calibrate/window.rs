//! The measured window: `--since 7d`, or `--from`/`--to` in ISO 8601 (UTC when no offset).
//! Kept as Unix seconds; Dify stores UTC in `timestamp without time zone` columns.

use anyhow::{Result, bail};

/// A half-open interval [from, to) of Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub from: f64,
    pub to: f64,
}

impl Window {
    pub fn seconds(&self) -> f64 {
        self.to - self.from
    }

    /// From the flags; `now` is the current Unix time.
    pub fn from_flags(since: Option<&str>, from: Option<&str>, to: Option<&str>, now: f64) -> Result<Window> {
        let to = match to {
            Some(t) => parse_time(t).map_err(|e| anyhow::anyhow!("--to `{t}`: {e}"))?,
            None => now,
        };
        let from = match (since, from) {
            (Some(_), Some(_)) => bail!("--since and --from both given — use one: --since 7d, or --from/--to"),
            (_, Some(f)) => parse_time(f).map_err(|e| anyhow::anyhow!("--from `{f}`: {e}"))?,
            (Some(s), None) => to - parse_duration(s).map_err(|e| anyhow::anyhow!("--since `{s}`: {e}"))?,
            (None, None) => to - 7.0 * 86_400.0,
        };
        if from >= to {
            bail!("the window is empty ({} to {}) — --from must be before --to", format_time(from), format_time(to));
        }
        if to - from > 366.0 * 86_400.0 {
            bail!("the window is longer than a year — measure a busy week, e.g. --since 7d");
        }
        Ok(Window { from, to })
    }
}

/// `90s`, `15m`, `6h`, `7d`, `2w`.
pub fn parse_duration(s: &str) -> Result<f64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 =
        num.parse().map_err(|_| anyhow::anyhow!("not a duration — use a number and a unit: 90s, 15m, 6h, 7d"))?;
    let unit = match unit.trim() {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 7.0 * 86_400.0,
        "" => bail!("a duration needs a unit: 90s, 15m, 6h, 7d"),
        other => bail!("unit `{other}` — use s, m, h, d or w"),
    };
    let v = n * unit;
    if !(v.is_finite() && v > 0.0) {
        bail!("a duration must be more than 0");
    }
    Ok(v)
}

/// ISO 8601: `2026-12-01`, `2026-12-01T13:41:40`, `2026-12-01 13:41:40.426Z`, `…+02:00` (read by
/// the `jiff` crate; a time without an offset is UTC, as Dify stores it).
pub fn parse_time(s: &str) -> Result<f64> {
    use jiff::civil::{Date, DateTime};
    let s = s.trim();
    let bad = || anyhow::anyhow!("not an ISO 8601 time — use e.g. 2026-12-01T13:41:40Z or 2026-12-01T15:41:40+02:00");
    let timestamp = if let Ok(t) = s.parse::<jiff::Timestamp>() {
        t
    } else if let Ok(dt) =
        s.parse::<DateTime>().or_else(|_| s.parse::<Date>().map(|d| d.to_datetime(jiff::civil::Time::midnight())))
    {
        jiff::tz::Offset::UTC.to_timestamp(dt).map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    Ok(timestamp.as_millisecond() as f64 / 1000.0 + f64::from(timestamp.subsec_microsecond() % 1000) / 1_000_000.0)
}

/// `2026-12-01T13:41:40Z` (milliseconds when there are any).
pub fn format_time(t: f64) -> String {
    let ms = (t * 1000.0).round() as i64;
    let Ok(ts) = jiff::Timestamp::from_millisecond(ms) else { return format!("{t} s after 1970") };
    if ms % 1000 == 0 {
        ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times() {
        // date -u -d 2026-12-01T13:41:40Z +%s → 1796132500
        assert_eq!(parse_time("2026-12-01T13:41:40Z").unwrap(), 1_796_132_500.0);
        assert_eq!(parse_time("2026-12-01 13:41:40").unwrap(), 1_796_132_500.0);
        assert_eq!(parse_time("2026-12-01T15:41:40+02:00").unwrap(), 1_796_132_500.0);
        assert_eq!(parse_time("2026-12-01T08:41:40-0500").unwrap(), 1_796_132_500.0);
        assert!((parse_time("2026-12-01T13:41:40.426").unwrap() - 1_796_132_500.426).abs() < 1e-6);
        assert_eq!(parse_time("1970-01-01").unwrap(), 0.0);
        assert_eq!(format_time(1_796_132_500.426), "2026-12-01T13:41:40.426Z");
        assert_eq!(format_time(951_782_400.0), "2000-02-29T00:00:00Z");
        for bad in ["yesterday", "2026-13-01", "2026-02-30", "2026-12-01T25:00", "2026-12-01T10:00+5"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows() {
        let w = Window::from_flags(Some("7d"), None, None, 1_000_000.0).unwrap();
        assert_eq!(w.seconds(), 604_800.0);
        assert_eq!(parse_duration("90s").unwrap(), 90.0);
        assert!(parse_duration("7").is_err() && parse_duration("7y").is_err() && parse_duration("0s").is_err());
        assert!(Window::from_flags(None, Some("2026-12-02"), Some("2026-12-01"), 0.0).is_err());
        assert!(Window::from_flags(Some("1d"), Some("2026-12-01"), None, 0.0).is_err());
    }
}
