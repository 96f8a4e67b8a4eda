//! Units that are easy to confuse. Profiles write CPU and database time per request in
//! milliseconds, as profilers and `pg_stat_statements` report them; the model computes in
//! seconds (Little's law: in flight = requests per second × seconds). A [`Millis`] turns into
//! seconds only through [`Millis::seconds`], so no formula divides by 1000 by hand or forgets to.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, Mul, Sub};

/// A duration in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
#[schemars(inline)]
pub struct Millis(pub f64);

impl Millis {
    /// The same duration in seconds, the model's unit.
    pub fn seconds(self) -> f64 {
        self.0 / 1000.0
    }

    /// The number of milliseconds, for output that says "ms".
    pub fn ms(self) -> f64 {
        self.0
    }
}

impl Add for Millis {
    type Output = Millis;
    fn add(self, other: Millis) -> Millis {
        Millis(self.0 + other.0)
    }
}

impl Sub for Millis {
    type Output = Millis;
    fn sub(self, other: Millis) -> Millis {
        Millis(self.0 - other.0)
    }
}

/// A share of a duration.
impl Mul<f64> for Millis {
    type Output = Millis;
    fn mul(self, share: f64) -> Millis {
        Millis(self.0 * share)
    }
}

/// A share or a count of requests times a per-request duration.
impl Mul<Millis> for f64 {
    type Output = Millis;
    fn mul(self, m: Millis) -> Millis {
        Millis(self * m.0)
    }
}

/// The number alone (with the formatter's precision), for text that writes "ms" itself.
impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_become_seconds_once() {
        assert_eq!(Millis(250.0).seconds(), 0.25);
        assert_eq!((2.0 * Millis(3.0) + Millis(4.0)).ms(), 10.0);
    }

    #[test]
    fn profiles_write_plain_numbers() {
        #[derive(Serialize, Deserialize)]
        struct T {
            cpu_ms: Millis,
        }
        let t: T = toml::from_str("cpu_ms = 12.5").unwrap();
        assert_eq!(t.cpu_ms, Millis(12.5));
        assert_eq!(toml::to_string(&t).unwrap().trim(), "cpu_ms = 12.5");
    }
}
