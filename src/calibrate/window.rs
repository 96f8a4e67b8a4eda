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

/// ISO 8601: `2026-12-01`, `2026-12-01T13:41:40`, `2026-12-01 13:41:40.426Z`, `…+02:00`.
pub fn parse_time(s: &str) -> Result<f64> {
    let s = s.trim();
    let bad = || anyhow::anyhow!("not an ISO 8601 time — use e.g. 2026-12-01T13:41:40Z or 2026-12-01T15:41:40+02:00");
    if s.len() < 10 {
        return Err(bad());
    }
    let (date, rest) = s.split_at(10);
    let d: Vec<&str> = date.split('-').collect();
    if d.len() != 3 || d[0].len() != 4 || d[1].len() != 2 || d[2].len() != 2 {
        return Err(bad());
    }
    let num = |x: &str| x.parse::<i64>().map_err(|_| bad());
    let (y, mo, da) = (num(d[0])?, num(d[1])?, num(d[2])?);
    if !(1..=12).contains(&mo) || !(1..=days_in_month(y, mo)).contains(&da) {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, mo, da) as f64 * 86_400.0;
    let rest = rest.strip_prefix(['T', 't', ' ']).unwrap_or(rest);
    if rest.is_empty() {
        return Ok(secs);
    }
    // The offset: Z, or ±HH:MM / ±HHMM / ±HH after the time.
    let (time, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let t: Vec<&str> = time.split(':').collect();
    if t.len() < 2 || t.len() > 3 || t[0].len() != 2 || t[1].len() != 2 {
        return Err(bad());
    }
    let (h, mi) = (num(t[0])?, num(t[1])?);
    let sec: f64 = match t.get(2) {
        Some(x) if x.len() >= 2 && x.chars().all(|c| c.is_ascii_digit() || c == '.') => x.parse().map_err(|_| bad())?,
        Some(_) => return Err(bad()),
        None => 0.0,
    };
    if h > 23 || mi > 59 || !(0.0..61.0).contains(&sec) {
        return Err(bad());
    }
    secs += (h * 3600 + mi * 60) as f64 + sec;
    let off = match offset {
        "" | "Z" | "z" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let digits: String = o[1..].chars().filter(|c| *c != ':').collect();
            if !(digits.len() == 2 || digits.len() == 4) || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let oh = num(&digits[..2])?;
            let om = if digits.len() == 4 { num(&digits[2..])? } else { 0 };
            sign * (oh * 3600 + om * 60)
        }
    };
    Ok(secs - off as f64)
}

/// `2026-12-01T13:41:40Z` (milliseconds when there are any).
pub fn format_time(t: f64) -> String {
    let days = (t / 86_400.0).floor() as i64;
    let rem = t - days as f64 * 86_400.0;
    let (y, m, d) = civil_from_days(days);
    let h = (rem / 3600.0).floor();
    let mi = ((rem - h * 3600.0) / 60.0).floor();
    let s = rem - h * 3600.0 - mi * 60.0;
    let ms = (s * 1000.0).round() as i64;
    if ms % 1000 == 0 {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{:02}Z", ms / 1000)
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{:02}.{:03}Z", ms / 1000, ms % 1000)
    }
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
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
