//! Solving for the load a fixed cap holds: `size --pg-max-connections N --max-qps`. Plans again
//! and again with `plan::plan` (the demand grows with the QPS, a property the tests hold) and
//! bisects on a log scale, so whatever the model becomes, the answer is one of its own plans.

use super::plan::{self, InputError, MAX_QPS, PlanInput, round_down_2sig};

/// The lowest QPS the search tries; a cap that cannot hold this holds nothing of the profile.
pub const MIN_QPS: f64 = 0.01;

/// Bisection steps on the log scale from `MIN_QPS` to `MAX_QPS` (8 decades): 40 steps narrow
/// the ratio to about 1 + 5e-11, far below the two significant digits reported.
const STEPS: usize = 40;

/// The highest QPS (rounded down to two significant digits, as the shortfall message rounds it)
/// whose plan fits `input.pg_max_connections`; `None` when not even `MIN_QPS` fits.
pub fn max_qps(input: &PlanInput) -> Result<Option<f64>, InputError> {
    let fits = |qps: f64| plan::plan(&PlanInput { qps, ..input.clone() }).map(|p| p.budget.fits);
    if input.pg_max_connections.is_none() {
        return Err(InputError::MaxQpsNeedsCap);
    }
    if !fits(MIN_QPS)? {
        return Ok(None);
    }
    if fits(MAX_QPS)? {
        return Ok(Some(MAX_QPS));
    }
    let (mut lo, mut hi) = (MIN_QPS, MAX_QPS);
    for _ in 0..STEPS {
        let mid = (lo * hi).sqrt();
        if fits(mid)? { lo = mid } else { hi = mid }
    }
    let rounded = round_down_2sig(lo).max(MIN_QPS);
    // Rounding down keeps it inside the cap unless the model is not monotonic there.
    Ok(Some(if fits(rounded)? { rounded } else { lo }))
}

/// `input` with its QPS replaced by the highest the cap holds; where the cap holds nothing, the
/// lowest QPS tried, whose plan then reports the shortfall (exit 1) with its ways out.
pub fn max_qps_input(input: &PlanInput) -> Result<PlanInput, InputError> {
    let qps = max_qps(input)?.unwrap_or(MIN_QPS);
    Ok(PlanInput { qps, ..input.clone() })
}

#[cfg(test)]
mod tests {
    use super::round_down_2sig;

    #[test]
    fn rounds_down_to_two_significant_digits() {
        assert_eq!(round_down_2sig(11.97), 11.0);
        assert_eq!(round_down_2sig(1234.0), 1200.0);
        assert_eq!(round_down_2sig(0.0567), 0.056);
    }
}
