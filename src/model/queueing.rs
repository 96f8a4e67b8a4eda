//! Queueing arithmetic: Little's law and quantiles of the Poisson distribution.
//! Requests in flight are random; limits are sized to a high quantile, not to the mean (docs/model.md §5).

/// Smallest `k` with P(X ≤ k) ≥ `level` for X ~ Poisson(`mean`).
///
/// Summed exactly in log space over a window of ±(12σ + 20) around the mean, which holds every
/// term that can matter at double precision, so it is exact for small means and stays fast
/// (a few thousand terms) for the largest means the model accepts.
pub fn poisson_quantile(mean: f64, level: f64) -> u64 {
    if mean.is_nan() || mean <= 0.0 || !mean.is_finite() {
        return 0;
    }
    let level = level.clamp(0.0, 1.0 - 1e-12);
    let sd = mean.sqrt();
    let lo = (mean - 12.0 * sd - 20.0).floor().max(0.0) as u64;
    let hi = (mean + 12.0 * sd + 20.0).ceil() as u64;
    let ln_mean = mean.ln();
    let mut cdf = 0.0;
    for k in lo..=hi {
        let kf = k as f64;
        cdf += (kf * ln_mean - mean - ln_factorial(kf)).exp();
        if cdf >= level {
            return k;
        }
    }
    hi
}

/// Above these the sum of [`poisson_plus_queues_quantile`] is taken as normal: exact sums would
/// cost thousands of terms per step, and the central limit makes the tail near-normal there.
const EXACT_QUEUES_MAX: u64 = 8;
const EXACT_MEAN_MAX: f64 = 2_000.0;

/// Smallest `n` with P(X + Y ≤ n) ≥ `level`, X ~ Poisson(`mean`) and Y the requests in `cores`
/// independent processor-sharing queues at utilisation `rho` each (geometric: P(Y₁ ≥ k) = ρᵏ, so
/// Y is negative binomial). The requests a pod holds: those waiting on I/O follow the Poisson
/// count, those queueing for a core the much longer geometric tail of a busy CPU.
pub fn poisson_plus_queues_quantile(mean: f64, cores: u64, rho: f64, level: f64) -> u64 {
    poisson_plus_queue_groups_quantile(mean, (cores, rho), (0, 0.0), level)
}

/// [`poisson_plus_queues_quantile`] with a second group of `other.0` queues at utilisation
/// `other.1` each (the api's streaming requests whose runs queue on the workers' cores). The
/// first group decides whether the sum is taken exactly or as normal, so without a second group
/// this is exactly the one-group quantile.
pub fn poisson_plus_queue_groups_quantile(mean: f64, first: (u64, f64), other: (u64, f64), level: f64) -> u64 {
    let start = poisson_quantile(mean, level);
    let groups: Vec<(f64, f64)> = [first, other]
        .into_iter()
        .filter(|&(cores, rho)| cores > 0 && rho > 0.0 && rho < 1.0)
        .map(|(cores, rho)| (cores as f64, rho))
        .collect();
    if groups.is_empty() {
        return start;
    }
    let level = level.clamp(0.0, 1.0 - 1e-12);
    if first.0 > EXACT_QUEUES_MAX || other.0 > 8 * EXACT_QUEUES_MAX || mean > EXACT_MEAN_MAX {
        // Many queues or many requests: the sum is close to normal (its mean and variance exact).
        let queued: f64 = groups.iter().map(|&(r, rho)| r * rho / (1.0 - rho)).sum();
        let variance =
            mean.max(0.0) + groups.iter().map(|&(r, rho)| r * rho / ((1.0 - rho) * (1.0 - rho))).sum::<f64>();
        let n = (mean.max(0.0) + queued + normal_quantile(level) * variance.sqrt() - 1e-9).ceil().max(0.0) as u64;
        return n.max(start);
    }
    // Each group's negative binomial probabilities, until its tail no longer matters, convolved.
    let mut pmf = vec![1.0];
    for &(r, rho) in &groups {
        let mut own = vec![(1.0 - rho).powf(r)];
        let mut total = own[0];
        while total < 1.0 - 1e-13 && own.len() < 200_000 {
            let k = (own.len() - 1) as f64;
            let next = own[own.len() - 1] * rho * (k + r) / (k + 1.0);
            total += next;
            own.push(next);
        }
        let mut sum = vec![0.0; pmf.len() + own.len() - 1];
        for (i, &a) in pmf.iter().enumerate() {
            for (j, &b) in own.iter().enumerate() {
                sum[i + j] += a * b;
            }
        }
        pmf = sum;
    }
    // Poisson's distribution function over the window that can matter.
    let mean = mean.max(0.0);
    let sd = mean.sqrt();
    let lo = (mean - 12.0 * sd - 20.0).floor().max(0.0) as usize;
    let hi = (mean + 12.0 * sd + 20.0).ceil() as usize + pmf.len();
    let mut cdf = Vec::with_capacity(hi - lo + 1);
    let mut acc = 0.0;
    for k in lo..=hi {
        let kf = k as f64;
        if mean > 0.0 {
            acc += (kf * mean.ln() - mean - ln_factorial(kf)).exp();
        } else if k == 0 {
            acc = 1.0;
        }
        cdf.push(acc.min(1.0));
    }
    let poisson_cdf = |m: usize| if m < lo { 0.0 } else { cdf.get(m - lo).copied().unwrap_or(1.0) };
    let mut n = start as usize;
    loop {
        let p: f64 = pmf.iter().enumerate().take(n + 1).map(|(k, &w)| w * poisson_cdf(n - k)).sum();
        if p >= level || n >= hi {
            return n as u64;
        }
        n += 1;
    }
}

/// The `p` quantile of the standard normal distribution (Acklam's rational approximation,
/// relative error below 1.2e-9), for `p` strictly between 0 and 1.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] =
        [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// ln(k!) — exact table for small k, Stirling's series beyond (error below 1e-12 there).
fn ln_factorial(k: f64) -> f64 {
    if k < 20.0 {
        let mut acc = 0.0;
        let mut i = 2.0;
        while i <= k {
            acc += f64::ln(i);
            i += 1.0;
        }
        return acc;
    }
    let n = k + 1.0; // ln Γ(n)
    (n - 0.5) * n.ln() - n + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * n) - 1.0 / (360.0 * n.powi(3))
        + 1.0 / (1260.0 * n.powi(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tables: Φ⁻¹(0.999) = 3.0902, Φ⁻¹(0.975) = 1.9600, Φ⁻¹(0.5) = 0, Φ⁻¹(0.001) = −3.0902.
    #[test]
    fn normal_quantile_matches_tables() {
        for (p, z) in [(0.999, 3.090232), (0.975, 1.959964), (0.5, 0.0), (0.001, -3.090232), (0.9, 1.281552)] {
            assert!((normal_quantile(p) - z).abs() < 1e-5, "{p}: {}", normal_quantile(p));
        }
    }

    /// Hand-computed: Poisson(1): P(0)=.3679 P(≤1)=.7358 P(≤2)=.9197 P(≤3)=.9810 P(≤4)=.9963
    /// P(≤5)=.99941 → the 99.9% quantile is 5 and the 99% quantile is 4.
    #[test]
    fn small_mean_by_hand() {
        assert_eq!(poisson_quantile(1.0, 0.999), 5);
        assert_eq!(poisson_quantile(1.0, 0.99), 4);
        assert_eq!(poisson_quantile(1.0, 0.5), 1);
        assert_eq!(poisson_quantile(0.0, 0.999), 0);
    }

    /// Poisson(10): P(≤20) = 0.99841, P(≤21) = 0.99919 (tables) → 21.
    #[test]
    fn mean_ten_from_tables() {
        assert_eq!(poisson_quantile(10.0, 0.999), 21);
    }

    /// For a large mean the normal approximation with continuity correction is within a couple
    /// of units: 10,000 + 3.0902·100 = 10,309.
    #[test]
    fn large_mean_near_normal() {
        let q = poisson_quantile(10_000.0, 0.999);
        assert!((10_305..=10_315).contains(&q), "{q}");
    }

    /// Without CPU queueing it is the Poisson quantile; one core at ρ = 0.5 alone: P(Y ≥ k) = 0.5ᵏ,
    /// so the 99.9% quantile is 9 (0.5¹⁰ < 0.001 ≤ 0.5⁹); a sum needs more than either part.
    #[test]
    fn poisson_plus_queues_by_hand() {
        assert_eq!(poisson_plus_queues_quantile(10.0, 0, 0.5, 0.999), 21);
        assert_eq!(poisson_plus_queues_quantile(0.0, 1, 0.5, 0.999), 9);
        let both = poisson_plus_queues_quantile(10.0, 1, 0.5, 0.999);
        assert!(both > 21 && both < 30, "{both}");
    }

    /// Without a second group it is the one-group quantile; a second group of queues adds its
    /// tail: one core at ρ 0.5 twice is the negative binomial with r = 2, P(Y ≥ k) = (k + 2)·0.5^(k+1)
    /// (k = 12: 0.0017, k = 13: 0.00092), so its 99.9% quantile is 12 (P(Y ≤ 12) ≥ 0.999).
    #[test]
    fn queue_groups_by_hand() {
        for (mean, cores, rho) in [(10.0, 1, 0.5), (40.0, 4, 0.7), (3000.0, 2, 0.6), (100.0, 20, 0.5)] {
            assert_eq!(
                poisson_plus_queue_groups_quantile(mean, (cores, rho), (0, 0.0), 0.999),
                poisson_plus_queues_quantile(mean, cores, rho, 0.999)
            );
        }
        assert_eq!(poisson_plus_queue_groups_quantile(0.0, (1, 0.5), (1, 0.5), 0.999), 12);
        assert_eq!(poisson_plus_queues_quantile(0.0, 2, 0.5, 0.999), 12);
        let one = poisson_plus_queues_quantile(40.0, 1, 0.3, 0.999);
        let two = poisson_plus_queue_groups_quantile(40.0, (1, 0.3), (4, 0.4), 0.999);
        assert!(two > one, "{two} vs {one}");
    }

    #[test]
    fn ln_factorial_matches_product() {
        let exact: f64 = (2..=30).map(|i| (i as f64).ln()).sum();
        assert!((ln_factorial(30.0) - exact).abs() < 1e-9);
    }

    #[test]
    fn monotone_in_mean() {
        let mut last = 0;
        for i in 0..2000 {
            let q = poisson_quantile(i as f64 * 0.37, 0.999);
            assert!(q >= last);
            last = q;
        }
    }
}
