//! The pool rules measured on a real Dify api (docs/model.md §8), in one place for `size` (which
//! sizes pools by them) and `check` (which flags pools that break them).

use serde::Serialize;

/// What a per-process pool of `pool + overflow` does for a process that admits `greenlets`
/// api requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PoolVerdict {
    /// pool + overflow ≤ greenlets: every admitted request holds one connection and waits for a
    /// second; measured: 10+0 with 10 greenlets completed 3 of 30, then 0.
    Deadlock,
    /// Enough for workflow apps, below ≈ 2 × greenlets where chat apps stall (11+0 with 10
    /// greenlets: 167 pool timeouts and 5× latency).
    ChatStall,
    Safe,
}

/// The smallest pool + overflow that cannot deadlock: greenlets × (peak − 1) + 1, the classic
/// bound (docs/model.md §8). With Dify's peak of 2 connections per request: greenlets + 1.
pub fn deadlock_free_pool(greenlets: u64, peak_connections: u64) -> u64 {
    greenlets.saturating_mul(peak_connections.saturating_sub(1).max(1)).saturating_add(1)
}

/// The pool chat apps need: about `factor` (measured 2) × the admitted requests.
pub fn chat_pool(greenlets: u64, factor: f64) -> u64 {
    (greenlets as f64 * factor).ceil() as u64
}

/// Judge a process's pool against the greenlets it admits.
pub fn judge_api_pool(pool_size: u64, max_overflow: u64, greenlets: u64, chat_factor: f64) -> PoolVerdict {
    let cap = pool_size.saturating_add(max_overflow);
    if cap < deadlock_free_pool(greenlets, 2) {
        PoolVerdict::Deadlock
    } else if cap < chat_pool(greenlets, chat_factor) {
        PoolVerdict::ChatStall
    } else {
        PoolVerdict::Safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/model.md §8, one process with 10 greenlets: workflow apps are safe with 30+10, 11+0 and
    /// 20+0 and deadlock with 10+0; chat apps need about 20; with 50 greenlets 30+10 deadlocks.
    #[test]
    fn measured_boundaries() {
        let workflow_safe = |p, o, g| judge_api_pool(p, o, g, 2.0) != PoolVerdict::Deadlock;
        let chat_safe = |p, o, g| judge_api_pool(p, o, g, 2.0) == PoolVerdict::Safe;
        assert!(workflow_safe(30, 10, 10));
        assert!(workflow_safe(11, 0, 10));
        assert!(workflow_safe(20, 0, 10));
        assert!(!workflow_safe(10, 0, 10));
        assert!(chat_safe(20, 0, 10));
        assert!(chat_safe(30, 10, 10));
        assert!(!chat_safe(11, 0, 10));
        assert!(!chat_safe(15, 0, 10), "15+0 was erratic for chat (2.6–11.4 s)");
        assert!(!workflow_safe(30, 10, 50));
        assert!(!chat_safe(30, 10, 50));
        // 21 with 20 concurrent completed 60 of 60; pool 2+0 with 10 completed 0 of 10.
        assert!(workflow_safe(21, 0, 20));
        assert!(!workflow_safe(2, 0, 10));
    }

    #[test]
    fn deadlock_bound_by_hand() {
        assert_eq!(deadlock_free_pool(10, 2), 11);
        assert_eq!(deadlock_free_pool(10, 3), 21);
        assert_eq!(chat_pool(10, 2.0), 20);
        assert_eq!(chat_pool(149, 2.0), 298);
    }
}
