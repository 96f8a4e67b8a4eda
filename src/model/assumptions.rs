//! Every constant of the sizing model in one place, each with where it comes from. Users
//! override any of them with `--assume KEY=VALUE`; the plan's JSON lists the values it used.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Documented defaults of the model; all overridable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Assumptions {
    /// Quantile of the Poisson in-flight count that greenlet slots and Celery concurrency cover.
    /// Sized to a high quantile of the in-flight count, not its mean (docs/model.md §5).
    pub quantile: f64,
    /// CPU utilisation target of api, worker and plugin daemon; `None` takes the edition's.
    pub cpu_target: Option<f64>,
    /// HPA maximum ÷ replicas at the target QPS (Kubernetes); `None` takes the edition's.
    pub hpa_max_factor: Option<f64>,
    /// Rolling-update surge as a share of the maximum replicas. Kubernetes' default is 25%
    /// (docs/model.md §2); every surge pod holds a full set of pools, so plans bound it at 10%
    /// ("rolling updates with a bounded surge", docs/model.md §7) and render that `maxSurge`.
    pub max_surge: f64,
    /// gevent api processes per pod at most (Kubernetes): one process per core (docs/model.md §5), 4-core pods.
    pub api_processes_per_pod: u64,
    /// gevent api processes per compose container at most: a 32-core share of a host for one
    /// container (an assumption; fewer, larger containers share one listen backlog among more
    /// processes, which needs fewer greenlets). More processes become more containers (`deploy.replicas`); past one host's
    /// cores, spread the containers over hosts or run Dify on Kubernetes.
    pub compose_api_processes_per_container: u64,
    /// Memory per api or worker process, MiB: the vendor's tiers give 1 GiB per core (docs/model.md §4).
    pub process_memory_mib: u64,
    /// Greenlets one gevent process may admit at most: gunicorn's default worker_connections (docs/model.md §5).
    pub slots_per_process_max: u64,
    /// Seconds a streaming request holds a DB connection at its start: "under 0.7 s" (docs/model.md §8).
    pub streaming_start_hold_seconds: f64,
    /// Chat apps: api pool ÷ admitted requests; measured ≈ 2 (docs/model.md §8, 20+0 clean at 10 greenlets).
    pub chat_pool_factor: f64,
    /// Worker pool ÷ `-c` when chat runs stream: a chat run holds one connection for its whole
    /// duration and takes a second at its start and end, so under overload a pool of `-c` + 10%
    /// deadlocked and 2 × `-c` only queued (docs/model.md §9).
    pub worker_chat_pool_factor: f64,
    /// Greenlets and `-c` cover the quantile of this multiple of the planned in-flight mean: 1
    /// sizes for the target load; 1.5 admits half as much again before requests wait in the
    /// listen backlog or the broker (docs/model.md §10, "Overload").
    pub overload_headroom: f64,
    /// Worker connections per concurrent workflow run: 2–4 busy for 8 runs (docs/model.md §8).
    pub worker_workflow_connections_per_run: f64,
    /// api_websocket pool per process. Its connection use was not measured (docs/model.md §8); an assumption.
    pub websocket_pool_size: u64,
    pub websocket_max_overflow: u64,
    /// Extra beat pods during an update: 0 with `strategy: Recreate` (what difyplan renders); 1
    /// where a chart renders no strategy and Kubernetes' default rolling update applies.
    pub beat_surge: u64,
    /// worker_beat pool: beat holds 0 at idle and about 1 in practice (docs/model.md §2, §8).
    pub beat_pool_size: u64,
    pub beat_max_overflow: u64,
    /// Cores per plugin-daemon replica: the vendor runs 2C4G instances (docs/model.md §4).
    pub plugin_cores_per_replica: f64,
    pub plugin_memory_mib: u64,
    /// The plugin daemon's own background work (installs, endpoint lookups): an assumption.
    pub plugin_open_conns_floor: u64,
    /// Connections for monitoring, backups and an operator's psql: an assumption.
    pub admin_reserve: u64,
    /// Connections `flask upgrade-db` opens in a starting container: 1–2 (docs/model.md §2).
    pub migration_connections: u64,
    /// PostgreSQL CPU utilisation target: leaves room for autovacuum and checkpoints; an assumption.
    pub pg_cpu_target: f64,
    /// PostgreSQL `superuser_reserved_connections` (default 3) and `reserved_connections` (PG ≥ 16, default 0).
    pub superuser_reserved_connections: u64,
    pub reserved_connections: u64,
    /// Step `max_connections` is rounded up to when difyplan chooses it.
    pub max_connections_step: u64,
    /// PgBouncer CPU per api request, ms: about 50 statements relayed at about 20 µs each
    /// (an assumption, not measured); one PgBouncer process is single-threaded.
    pub pgbouncer_cpu_ms: f64,
    /// A forced PgBouncer `default_pool_size` (0: difyplan sizes it). A value below the safety
    /// bound is refused: such a shared pool deadlocks.
    pub pgbouncer_pool_size: u64,
    /// Kubernetes: PgBouncer pods. One by default, so the server pool is counted once; each pod
    /// more holds a whole server pool again (a client's nested checkout may land on any pod),
    /// the price of a pooler that survives the loss of a pod (docs/pooler.md).
    pub pgbouncer_pods: u64,
    /// Kubernetes: at most this many extra pods per component during a rollout (0: no cap, the
    /// `max_surge` share alone). A lever for large deployments, where a share of the HPA maximum
    /// is many pods (docs/model.md §10, "Kubernetes overhead").
    pub max_surge_pods: u64,
}

impl Default for Assumptions {
    fn default() -> Self {
        Assumptions {
            quantile: 0.999,
            cpu_target: None,
            hpa_max_factor: None,
            max_surge: 0.1,
            api_processes_per_pod: 4,
            compose_api_processes_per_container: 32,
            process_memory_mib: 1024,
            slots_per_process_max: 1000,
            streaming_start_hold_seconds: 0.7,
            chat_pool_factor: 2.0,
            worker_chat_pool_factor: 2.0,
            overload_headroom: 1.0,
            worker_workflow_connections_per_run: 0.5,
            websocket_pool_size: 5,
            websocket_max_overflow: 5,
            beat_surge: 0,
            beat_pool_size: 1,
            beat_max_overflow: 1,
            plugin_cores_per_replica: 2.0,
            plugin_memory_mib: 4096,
            plugin_open_conns_floor: 5,
            admin_reserve: 5,
            migration_connections: 2,
            pg_cpu_target: 0.6,
            superuser_reserved_connections: crate::dify::defaults::SUPERUSER_RESERVED_CONNECTIONS,
            reserved_connections: crate::dify::defaults::RESERVED_CONNECTIONS,
            max_connections_step: 10,
            pgbouncer_cpu_ms: 1.0,
            pgbouncer_pool_size: 0,
            pgbouncer_pods: 1,
            max_surge_pods: 0,
        }
    }
}

impl Assumptions {
    /// Apply `KEY=VALUE` overrides; the error names the key and lists the valid ones.
    pub fn with_overrides(&self, pairs: &[String]) -> Result<Assumptions, AssumptionError> {
        let mut value = serde_json::to_value(self).expect("assumptions serialize to a JSON object");
        let map = value.as_object_mut().expect("assumptions serialize to a JSON object");
        for pair in pairs {
            let (key, raw) = pair.split_once('=').ok_or_else(|| AssumptionError::NotKeyValue(pair.clone()))?;
            let key = key.trim().replace('-', "_");
            if !map.contains_key(&key) {
                let mut known: Vec<String> = map.keys().cloned().collect();
                known.sort();
                return Err(AssumptionError::UnknownKey { key, known });
            }
            let parsed: f64 = raw
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| AssumptionError::NotANumber { key: key.clone(), raw: raw.to_string() })?;
            // Counts stay whole numbers; ratios (and the optional ones, null by default) take fractions.
            let as_json = if map[&key].is_u64() {
                if parsed.fract() != 0.0 {
                    return Err(AssumptionError::NotWhole { key, raw: raw.to_string() });
                }
                serde_json::json!(parsed as u64)
            } else {
                serde_json::json!(parsed)
            };
            map.insert(key, as_json);
        }
        let out: Assumptions = serde_json::from_value(value).map_err(|e| AssumptionError::Malformed(e.to_string()))?;
        out.validate()?;
        Ok(out)
    }

    pub fn validate(&self) -> Result<(), AssumptionError> {
        let out_of =
            |key: &'static str, value: f64, range: Range| Err(AssumptionError::OutOfRange { key, value, range });
        for (key, v) in [("quantile", self.quantile), ("pg_cpu_target", self.pg_cpu_target)] {
            if !(v > 0.0 && v < 1.0) {
                return out_of(key, v, Range::OpenUnit);
            }
        }
        if let Some(t) = self.cpu_target
            && !(t > 0.0 && t <= 1.0)
        {
            return out_of("cpu_target", t, Range::HalfOpenUnit);
        }
        if let Some(f) = self.hpa_max_factor
            && !(1.0..=10.0).contains(&f)
        {
            return out_of("hpa_max_factor", f, Range::OneToTen);
        }
        if self.max_surge > 1.0 {
            return out_of("max_surge", self.max_surge, Range::Share);
        }
        for (key, v) in [
            ("api_processes_per_pod", self.api_processes_per_pod),
            ("compose_api_processes_per_container", self.compose_api_processes_per_container),
            ("slots_per_process_max", self.slots_per_process_max),
            ("max_connections_step", self.max_connections_step),
            ("pgbouncer_pods", self.pgbouncer_pods),
        ] {
            if v == 0 {
                return out_of(key, 0.0, Range::AtLeastOne);
            }
        }
        if self.worker_chat_pool_factor < 1.0 {
            return out_of(
                "worker_chat_pool_factor",
                self.worker_chat_pool_factor,
                Range::DeadlockFactor("worker-pool-deadlock-risk"),
            );
        }
        if !(1.0..=10.0).contains(&self.overload_headroom) {
            return out_of("overload_headroom", self.overload_headroom, Range::OneToTen);
        }
        if self.chat_pool_factor < 1.0 {
            return out_of("chat_pool_factor", self.chat_pool_factor, Range::DeadlockFactor("pool-chat-stall"));
        }
        if self.plugin_cores_per_replica <= 0.0 {
            return out_of("plugin_cores_per_replica", self.plugin_cores_per_replica, Range::Positive);
        }
        Ok(())
    }
}

/// A bad `--assume`: the key and the value as data, one message each.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AssumptionError {
    #[error("--assume `{0}` is not KEY=VALUE — for example --assume quantile=0.9999")]
    NotKeyValue(String),
    #[error("--assume: unknown key `{key}` — known keys: {}", known.join(", "))]
    UnknownKey { key: String, known: Vec<String> },
    #[error("--assume {key}: `{raw}` is not a number ≥ 0 — pass a plain number")]
    NotANumber { key: String, raw: String },
    #[error("--assume {key}: `{raw}` must be a whole number")]
    NotWhole { key: String, raw: String },
    #[error("--assume {key}={value}: {range}")]
    OutOfRange { key: &'static str, value: f64, range: Range },
    /// The overrides did not make a valid set (serde's message).
    #[error("--assume: {0}")]
    Malformed(String),
}

/// The range an assumption must lie in, said in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    OpenUnit,
    HalfOpenUnit,
    OneToTen,
    Share,
    AtLeastOne,
    Positive,
    /// A pool factor below 1 deadlocks: the pool is smaller than what its holders may hold. The
    /// finding code that explains it.
    DeadlockFactor(&'static str),
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Range::OpenUnit => "must lie strictly between 0 and 1",
            Range::HalfOpenUnit => "must lie in (0, 1]",
            Range::OneToTen => "must lie between 1 and 10",
            Range::Share => "a surge is a share of replicas, 0 to 1",
            Range::AtLeastOne => "must be at least 1",
            Range::Positive => "must be > 0",
            Range::DeadlockFactor(code) => {
                return write!(
                    f,
                    "must be ≥ 1 (below it the pool is smaller than what its holders may hold and they \
                     deadlock: `difyplan explain {code}`)"
                );
            }
        })
    }
}

/// Where the deployment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// docker compose on one host: no autoscaling, containers are recreated (no surge).
    Compose,
    /// Kubernetes: replicas, an HPA maximum and rolling-update surge.
    Kubernetes,
}

/// The vendor's three templates (docs/model.md §7): minimum replicas and headroom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Edition {
    Test,
    Ha,
    Performance,
}

/// What an edition sets (minimum replicas 1 / 2 / 3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct EditionRules {
    pub min_replicas: u64,
    /// CPU utilisation target: the headroom against bursts and a lost replica.
    pub cpu_target: f64,
    /// HPA maximum ÷ replicas at the target QPS; docs/model.md §7's "min 3, max 10" is a wider
    /// range than a budget can afford, so the default stays at 1.5 (assumption).
    pub hpa_max_factor: f64,
    pub zone_spread: bool,
    pub disruption_budget: bool,
}

impl Edition {
    pub fn rules(self) -> EditionRules {
        match self {
            Edition::Test => EditionRules {
                min_replicas: 1,
                cpu_target: 0.8,
                hpa_max_factor: 1.0,
                zone_spread: false,
                disruption_budget: false,
            },
            Edition::Ha => EditionRules {
                min_replicas: 2,
                cpu_target: 0.7,
                hpa_max_factor: 1.5,
                zone_spread: true,
                disruption_budget: true,
            },
            Edition::Performance => EditionRules {
                min_replicas: 3,
                cpu_target: 0.6,
                hpa_max_factor: 1.5,
                zone_spread: true,
                disruption_budget: true,
            },
        }
    }
}

impl fmt::Display for Edition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Edition::Test => "test",
            Edition::Ha => "ha",
            Edition::Performance => "performance",
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Target::Compose => "compose",
            Target::Kubernetes => "kubernetes",
        })
    }
}

impl FromStr for Edition {
    type Err = String;
    /// clap's value parser shows the message as it is.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "test" => Ok(Edition::Test),
            "ha" => Ok(Edition::Ha),
            "performance" => Ok(Edition::Performance),
            _ => Err(format!("unknown edition `{s}` — use test, ha or performance")),
        }
    }
}
