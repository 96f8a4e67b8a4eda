//! Properties of the sizing model over its whole input space (what the model promises): the
//! budget holds or the plan says exactly what is missing; counts are ≥ 1; slots cover the
//! in-flight quantile; no knob shrinks when the QPS grows.

use difyplan::dify::{Component, DifyVersion};
use difyplan::model::assumptions::{Assumptions, Edition, Target};
use difyplan::model::plan::{Plan, PlanInput, plan};
use difyplan::model::profile::Profile;
use proptest::prelude::*;

const PROFILES: [&str; 4] = ["chat", "workflow", "agent", "benchmark"];
const EDITIONS: [Edition; 3] = [Edition::Test, Edition::Ha, Edition::Performance];
const TARGETS: [Target; 2] = [Target::Compose, Target::Kubernetes];

fn input(qps: f64, profile: &str, edition: Edition, target: Target, cap: Option<u64>) -> PlanInput {
    PlanInput {
        qps,
        profile: Profile::builtin(profile).expect("built-in profile"),
        target,
        edition,
        dify_version: DifyVersion::V1_16,
        collaboration: true,
        app_role_superuser: false,
        pg_max_connections: cap,
        pg_host: Default::default(),
        workflow_log_store: difyplan::model::storage::LogStore::Postgres,
        retention_days: None,
        pooler: Default::default(),
        assumptions: Assumptions::default(),
        db_type: Default::default(),
    }
}

/// Poisson quantile by the plain recurrence pmf(k+1) = pmf(k)·m/(k+1), independent of the
/// model's log-space implementation. Valid for means below ~700 (exp(−m) stays normal).
fn poisson_quantile_reference(mean: f64, level: f64) -> u64 {
    assert!(mean < 700.0);
    let (mut pmf, mut cdf, mut k) = ((-mean).exp(), 0.0, 0u64);
    loop {
        cdf += pmf;
        if cdf >= level {
            return k;
        }
        k += 1;
        pmf *= mean / k as f64;
    }
}

/// A lower bound of the 99.9% quantile for any mean: the mean plus 3 standard deviations
/// (the normal quantile is 3.09σ; the Poisson's right skew only adds to it).
fn quantile_lower_bound(mean: f64) -> u64 {
    if mean < 600.0 { poisson_quantile_reference(mean, 0.999) } else { (mean + 3.0 * mean.sqrt()).floor() as u64 }
}

fn comp(plan: &Plan, c: Component) -> &difyplan::model::plan::ComponentPlan {
    plan.components.iter().find(|p| p.component == c).expect("component planned")
}

fn check_invariants(p: &Plan) {
    let b = &p.budget;
    let recomputed: u64 =
        p.components.iter().map(|c| (c.max_replicas + c.surge) * c.processes_per_pod * c.per_process_max).sum::<u64>()
            + b.reserves.iter().map(|r| r.connections).sum::<u64>();
    assert_eq!(b.demand, recomputed, "demand is the sum of its lines");
    if b.fits {
        assert!(b.demand <= b.usable);
        assert!(p.shortfall.is_none());
    } else {
        let s = p.shortfall.as_ref().expect("an infeasible plan explains its shortfall");
        assert_eq!(s.missing, b.demand - b.usable);
        assert!(s.missing > 0);
        assert!(s.needed_max_connections >= b.demand);
        assert!(!s.ways_out.is_empty());
        assert!(
            p.input.pg_max_connections.is_some()
                || s.needed_max_connections > difyplan::model::pgtune::PG_MAX_CONNECTIONS_LIMIT,
            "difyplan's own cap always fits, unless no PostgreSQL server could take the plan"
        );
    }
    for c in &p.components {
        for (name, v) in [
            ("replicas", c.replicas),
            ("max_replicas", c.max_replicas),
            ("processes", c.processes_per_pod),
            ("pool", c.pool_size),
            ("per_process_max", c.per_process_max),
        ] {
            assert!(v >= 1, "{} {name} = {v}", c.component);
        }
        assert!(c.max_replicas >= c.replicas);
        assert_eq!(c.pool_size + c.max_overflow, c.per_process_max);
        if let Some(slots) = c.slots_per_process {
            assert!(slots >= 1);
        }
    }
    let q = p.input.qps;
    let pr = &p.input.profile;
    let api = comp(p, Component::Api);
    let api_slots = api.replicas * api.processes_per_pod * api.slots_per_process.unwrap();
    assert!(
        api_slots >= quantile_lower_bound(q * pr.request_seconds),
        "api slots {api_slots} below the in-flight quantile at {q} QPS"
    );
    let worker = comp(p, Component::Worker);
    let worker_in_flight = q * pr.streaming_share * pr.request_seconds + q * pr.celery_tasks * pr.celery_task_seconds;
    assert!(worker.replicas * worker.slots_per_process.unwrap() >= quantile_lower_bound(worker_in_flight));
    // The measured pool rule (docs/model.md §8) holds in every api process.
    let greenlets = api.slots_per_process.unwrap();
    let need = if pr.chat_share > 0.0 { 2 * greenlets } else { greenlets + 1 };
    assert!(api.per_process_max >= need, "api pool {} below {need}", api.per_process_max);
    if pr.name == "benchmark" {
        let per_process = q / (api.replicas * api.processes_per_pod) as f64;
        assert!(per_process <= 19.0, "one process planned at {per_process:.1} req/s of the measured workflow");
    }
}

/// Resources that must not shrink when the QPS grows, as (name, value) pairs: pods,
/// processes, cores, memory. Per-process values (greenlets, `-c`, pools) may: greenlets are sized
/// against the queue a pod's processes share, so more processes each need fewer, and the
/// connection total follows them (slots always cover the in-flight quantile, checked above).
fn knobs(p: &Plan) -> Vec<(String, u64)> {
    let mut out = vec![("pg_cores".into(), p.database.cores)];
    for c in &p.components {
        let n = c.component.service();
        out.extend([
            (format!("{n}.replicas"), c.replicas),
            (format!("{n}.max_replicas"), c.max_replicas),
            (format!("{n}.surge"), c.surge),
            (format!("{n}.processes"), c.replicas * c.processes_per_pod),
            (format!("{n}.cpu"), (c.cpu_per_pod * c.replicas as f64 * 100.0) as u64),
            (format!("{n}.memory"), c.memory_mib_per_pod * c.replicas),
        ]);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn budget_holds_or_shortfall_is_exact(
        qps in 1u32..=5000,
        profile in 0usize..4,
        edition in 0usize..3,
        target in 0usize..2,
        cap in prop_oneof![Just(None), (100u64..=20_000).prop_map(Some)],
    ) {
        let p = plan(&input(qps as f64, PROFILES[profile], EDITIONS[edition], TARGETS[target], cap)).expect("valid input plans");
        check_invariants(&p);
    }

    #[test]
    fn no_knob_shrinks_when_qps_grows(
        qps in 1u32..=4999,
        step in 1u32..=500,
        profile in 0usize..4,
        edition in 0usize..3,
        target in 0usize..2,
    ) {
        let lo = plan(&input(qps as f64, PROFILES[profile], EDITIONS[edition], TARGETS[target], None)).unwrap();
        let hi = plan(&input((qps + step).min(5000) as f64, PROFILES[profile], EDITIONS[edition], TARGETS[target], None)).unwrap();
        for ((name, a), (_, b)) in knobs(&lo).into_iter().zip(knobs(&hi)) {
            prop_assert!(b >= a, "{name} shrank from {a} to {b} between {} and {} QPS", lo.input.qps, hi.input.qps);
        }
    }
}

/// A deterministic sweep besides the random one: every combination, QPS on a fine grid.
#[test]
fn sweep_every_combination() {
    for profile in PROFILES {
        for edition in EDITIONS {
            for target in TARGETS {
                let mut last: Option<Vec<(String, u64)>> = None;
                let mut qps = 1.0f64;
                while qps <= 5000.0 {
                    let p = plan(&input(qps.round(), profile, edition, target, None)).unwrap();
                    check_invariants(&p);
                    let k = knobs(&p);
                    if let Some(prev) = &last {
                        for ((name, a), (_, b)) in prev.iter().zip(&k) {
                            assert!(b >= a, "{profile}/{edition}/{target}: {name} shrank {a} → {b} at {qps:.0} QPS");
                        }
                    }
                    last = Some(k);
                    qps *= 1.07;
                }
            }
        }
    }
}

/// The reference quantile agrees with hand-computed values, so it can judge the model.
#[test]
fn reference_quantile_by_hand() {
    assert_eq!(poisson_quantile_reference(1.0, 0.999), 5);
    assert_eq!(poisson_quantile_reference(10.0, 0.999), 21);
}

/// By hand, 10 QPS of `benchmark`, edition test (CPU target 0.8, one replica), compose:
/// api CPU 84 ms + 5.4 ms × 0.1 s = 84.54 ms → 0.8454 cores → ceil(0.8454 ÷ 0.8) = 2 processes in
/// the one container, each at ρ = 0.4227. Waiting on I/O: 10 × (0.1 − 0.08454) s = 0.155 requests
/// (Poisson); on the two cores two processor-sharing queues, P(Y = k) = (k + 1)(1 − ρ)²ρᵏ, whose
/// tail P(Y > k) = ρᵏ⁺¹(1 + (k + 1)(1 − ρ)) is 0.00125 at k = 9 and 0.00057 at k = 10: with the
/// Poisson part the 99.9% quantile is 10, + 1 for the arriving request = 11 → ceil(11 ÷ 2) = 6
/// greenlets per process. Pool: the safety rule 6 + 1 = 7; a full process holds 1 +
/// Bernoulli(0.5) per greenlet, mean 9, variance 6 × 0.25, so 9 + 3.09 × 1.225 = 12.8 → 13, never
/// more than 6 × 2 = 12 → 12. Pool size ceil(0.81 in flight per process × 1.5) = 2, overflow 10.
#[test]
fn hand_computed_benchmark_plan() {
    let p = plan(&input(10.0, "benchmark", Edition::Test, Target::Compose, None)).unwrap();
    let api = comp(&p, Component::Api);
    assert_eq!((api.replicas, api.processes_per_pod, api.slots_per_process), (1, 2, Some(6)));
    assert_eq!((api.pool_size, api.max_overflow, api.per_process_max), (2, 10, 12));
    assert_eq!(api.worst_total, 24);
    // beat 1+1, websocket 5+5, worker: no streaming, no tasks → -c 4 floor, pool floor 2 (1+1? no: pool = max).
    assert_eq!(comp(&p, Component::WorkerBeat).worst_total, 2);
    assert_eq!(comp(&p, Component::ApiWebsocket).worst_total, 10);
    let worker = comp(&p, Component::Worker);
    assert_eq!((worker.replicas, worker.slots_per_process, worker.per_process_max), (1, Some(4), 4));
    // plugin daemon: no plugin use → the floor of 5 open connections.
    assert_eq!(comp(&p, Component::PluginDaemon).per_process_max, 5);
    // reserves: compose recreates 4 api-image services × 2 + admin 5 = 13.
    let reserves: u64 = p.budget.reserves.iter().map(|r| r.connections).sum();
    assert_eq!(reserves, 13);
    assert_eq!(p.budget.demand, 24 + 10 + 4 + 2 + 5 + 13);
    // A dedicated role loses 3 slots: 58 + 3 = 61 → rounded to 70.
    assert_eq!(p.database.max_connections, 70);
}
