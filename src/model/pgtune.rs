//! PostgreSQL settings for Dify's database: PGTune's "web" formulas on Linux (le0pard/pgtune at
//! 421728c), a memory check of `max_connections`, and the two timeouts Dify's compose passes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The PGTune revision followed: `src/features/configuration/configurationSlice.js` for the
/// formulas and `src/common/components/configurationView/index.jsx` for the order and the value
/// formatting, both at this commit (the newest revision we could read; it offers PostgreSQL 10–18).
///
/// The formulas are PGTune's "web" profile as docs/model.md §5 states them (maintenance_work_mem capped at 8 GB, work_mem floored at 4 MB,
/// max_worker_processes = CPUs if ≥ 4 else 8) is what this revision computes. Older revisions
/// differ (7d204bdb: a 2 GB cap, a 64 kB floor, huge_pages from 32 GB of RAM), so the tests pin
/// this one. Sizes are integer kB (1 kB = 1024 bytes, PostgreSQL's unit); PGTune floors exact
/// quotients of integers, which is what integer division computes.
pub const PGTUNE_REVISION: &str = "le0pard/pgtune@421728c2f26fae14285f9805d31198b98925d697";

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

/// kB per MB and per GB: PGTune's `SIZE_UNIT_MAP` and `KB_UNIT_MAP` are 1024-based throughout.
const KB_PER_MB: u64 = 1024;
const KB_PER_GB: u64 = 1024 * 1024;

/// PGTune's form refuses less than 512 MB of RAM (`validation.js`, `MIN_MB_MEMORY`).
pub const MIN_MEMORY_BYTES: u64 = 512 * MIB;
/// Above 16 TiB some of PGTune's values leave PostgreSQL's ranges (`effective_cache_size` is at
/// most INT_MAX 8 kB pages = 16 TiB; 3/4 of 16 TiB still fits), so larger hosts are refused.
pub const MAX_MEMORY_BYTES: u64 = 16 * TIB;
/// The PostgreSQL major versions PGTune offers at 421728c (`constants.js`, `DB_VERSIONS`).
pub const PG_VERSIONS: std::ops::RangeInclusive<u32> = 10..=18;
/// PostgreSQL refuses `max_connections` above MAX_BACKENDS = 2^18 − 1 (`postmaster.h`).
pub const PG_MAX_CONNECTIONS_LIMIT: u64 = 262_143;

/// PGTune: `max_worker_processes` when it does not set it (fewer than 4 CPUs), which is
/// PostgreSQL's default and the count work_mem is divided by (`DEFAULT_DB_SETTINGS`).
const DEFAULT_MAX_WORKER_PROCESSES: u64 = 8;
/// PGTune sets the parallel settings only from this many CPUs (`selectParallelSettings`).
const PARALLEL_MIN_CPUS: u32 = 4;
/// PGTune caps workers per gather and parallel maintenance workers at 4 except for "dw".
const PARALLEL_WORKERS_CAP: u64 = 4;
/// work_mem = (RAM − shared_buffers) ÷ ((max_connections + workers) × 3): each backend may run
/// two or three sorts or hashes at once (`selectWorkMem`'s comment).
const WORK_MEM_USES_PER_BACKEND: u64 = 3;
/// PGTune's floor for work_mem, 4 MB: "to prevent disk-spill for simple queries".
const WORK_MEM_FLOOR_KB: u64 = 4 * KB_PER_MB;
/// maintenance_work_mem = RAM/16 for "web", capped at 8 GB (Linux, any version).
const MAINTENANCE_WORK_MEM_CAP_KB: u64 = 8 * KB_PER_GB;
/// From this maintenance_work_mem PGTune caps autovacuum_work_mem at 2 GB per worker.
const AUTOVACUUM_WORK_MEM_CAP_KB: u64 = 2 * KB_PER_GB;
/// wal_buffers = 3% of shared_buffers (PostgreSQL's own auto-tuning since 9.1), at most 16 MB,
/// rounded up to 16 MB above 14 MB, and at least 32 kB.
const WAL_BUFFERS_MAX_KB: u64 = 16 * KB_PER_MB;
const WAL_BUFFERS_NEAR_MAX_KB: u64 = 14 * KB_PER_MB;
const WAL_BUFFERS_MIN_KB: u64 = 32;
/// huge_pages = try from 2 GB of shared_buffers (`selectHugePages`; Linux).
const HUGE_PAGES_MIN_SHARED_BUFFERS_KB: u64 = 2 * KB_PER_GB;
/// "web": min_wal_size 1 GB, max_wal_size 4 GB (`selectCheckpointSegments`).
const WEB_MIN_WAL_SIZE_KB: u64 = KB_PER_GB;
const WEB_MAX_WAL_SIZE_KB: u64 = 4 * KB_PER_GB;
/// 0.9 for every type, after PostgreSQL commit bbcc4eb2 made it the default.
const CHECKPOINT_COMPLETION_TARGET: f64 = 0.9;
/// "web": 100, PostgreSQL's default.
const WEB_DEFAULT_STATISTICS_TARGET: u64 = 100;
/// PGTune warns below 256 MB and above 100 GB of RAM (`selectWarningInfoMessages`).
const LOW_MEMORY_WARNING_BYTES: u64 = 256 * MIB;
const HIGH_MEMORY_WARNING_BYTES: u64 = 100 * GIB;

/// What the data directory sits on; it sets the planner's I/O costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// Solid-state disks: PGTune's default.
    Ssd,
    /// Spinning disks.
    Hdd,
    /// Local NVMe.
    Nvme,
    /// A storage array over the network.
    San,
}

impl Storage {
    /// `random_page_cost`: PGTune's `selectRandomPageCost` (hdd 4, every other kind 1.1).
    pub fn random_page_cost(self) -> f64 {
        match self {
            Storage::Hdd => 4.0,
            Storage::Ssd | Storage::San | Storage::Nvme => 1.1,
        }
    }

    /// `effective_io_concurrency` on Linux: PGTune's `selectEffectiveIoConcurrency`.
    pub fn effective_io_concurrency(self) -> u64 {
        match self {
            Storage::Hdd => 2,
            Storage::Ssd => 200,
            Storage::San => 300,
            Storage::Nvme => 1000,
        }
    }
}

impl fmt::Display for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Storage::Ssd => "ssd",
            Storage::Hdd => "hdd",
            Storage::Nvme => "nvme",
            Storage::San => "san",
        })
    }
}

/// The machine (or container limit) PostgreSQL runs on. Linux is assumed: Dify ships
/// PostgreSQL as a Linux container (`postgres:15-alpine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgHost {
    pub memory_bytes: u64,
    pub cpus: u32,
    pub storage: Storage,
    /// PostgreSQL major version (10–18, as PGTune offers).
    pub pg_version: u32,
}

/// The host assumed when the user gives no `--pg-memory`/`--pg-cpus`: Dify's minimum system
/// requirements (README quick start: "CPU >= 2 Core, RAM >= 4 GiB"), an SSD, and PostgreSQL 15,
/// the `postgres:15-alpine` image of both compose files (Dify 1.9.1 and 1.16.1).
/// Those 4 GiB are the whole host's in Dify's README; giving them all to PostgreSQL is generous,
/// so output built on this default should say that it was assumed.
pub const DEFAULT_HOST: PgHost = PgHost { memory_bytes: 4 * GIB, cpus: 2, storage: Storage::Ssd, pg_version: 15 };

impl PgHost {
    /// Refuse hosts outside what PGTune and PostgreSQL accept, saying what to pass instead.
    pub fn validate(&self) -> Result<(), String> {
        check_memory_bounds(self.memory_bytes)?;
        if self.cpus == 0 {
            return Err(
                "--pg-cpus 0: PostgreSQL needs at least one CPU — pass the database's core count, e.g. --pg-cpus 2"
                    .into(),
            );
        }
        if !PG_VERSIONS.contains(&self.pg_version) {
            return Err(format!(
                "PostgreSQL {}: PGTune's formulas cover versions {} to {} — pass one of those (Dify ships 15)",
                self.pg_version,
                PG_VERSIONS.start(),
                PG_VERSIONS.end()
            ));
        }
        Ok(())
    }

    fn memory_kb(&self) -> u64 {
        self.memory_bytes / KIB
    }
}

fn check_memory_bounds(bytes: u64) -> Result<(), String> {
    if bytes < MIN_MEMORY_BYTES {
        return Err(format!(
            "database memory {} is below PGTune's minimum of 512 MiB — pass at least 512MiB",
            human_bytes(bytes)
        ));
    }
    if bytes > MAX_MEMORY_BYTES {
        return Err(format!(
            "database memory {} is above 16 TiB, where PGTune's values leave PostgreSQL's ranges — pass at most 16TiB",
            human_bytes(bytes)
        ));
    }
    Ok(())
}

/// Read a memory size such as `16GiB`, `16GB`, `512MiB`, `8g` or `1.5 GiB` into bytes.
///
/// GB and GiB (and every other prefix) are both taken as powers of 1024, as PGTune and
/// PostgreSQL do (PostgreSQL's `1GB` is 1024 MB), so `16GB` tunes exactly as PGTune's "16 GB".
/// Units are case-insensitive: b, k/kb/kib, m/mb/mib, g/gb/gib, t/tb/tib. A unit is required:
/// a bare number is ambiguous. Sizes must lie between 512 MiB and 16 TiB ([`PgHost::validate`]).
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let bad = |why: &str| format!("memory `{s}`: {why} — write a number and a unit, such as 16GiB, 512MiB or 8g");
    if number.is_empty() {
        return Err(bad("no number"));
    }
    let scale = match unit.as_str() {
        "" => return Err(bad("no unit")),
        "b" => 1,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => GIB,
        "t" | "tb" | "tib" => TIB,
        _ => return Err(bad(&format!("unknown unit `{}`", unit))),
    };
    let bytes = if number.contains('.') {
        let value: f64 = number.parse().map_err(|_| bad("not a number"))?;
        let bytes = (value * scale as f64).round();
        // Anything at or above 2^64 is far beyond the 16 TiB bound; saturate and let the bound speak.
        if bytes >= u64::MAX as f64 { u64::MAX } else { bytes as u64 }
    } else {
        let value: u64 = number.parse().map_err(|_| bad("not a number"))?;
        value.saturating_mul(scale)
    };
    check_memory_bounds(bytes).map_err(|e| format!("memory `{s}`: {e}"))?;
    Ok(bytes)
}

/// PGTune's "web" settings for one host and `max_connections`. Sizes in kB; `None` means
/// PGTune leaves the setting at PostgreSQL's default (it then omits it from its output).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Tuning {
    pub max_connections: u64,
    /// RAM/4.
    pub shared_buffers_kb: u64,
    /// 3·RAM/4: what the planner may assume the OS caches.
    pub effective_cache_size_kb: u64,
    /// RAM/16, at most 8 GB.
    pub maintenance_work_mem_kb: u64,
    pub checkpoint_completion_target: f64,
    /// 3% of shared_buffers, 32 kB to 16 MB.
    pub wal_buffers_kb: u64,
    pub default_statistics_target: u64,
    pub random_page_cost: f64,
    /// Always set on Linux (PGTune leaves it out on Windows and macOS, which difyplan does not tune).
    pub effective_io_concurrency: Option<u64>,
    /// (RAM − shared_buffers) ÷ ((max_connections + worker processes) × 3), at least 4 MB.
    pub work_mem_kb: u64,
    /// `try` from 2 GB of shared_buffers, else `off`.
    pub huge_pages: &'static str,
    /// `off` from PostgreSQL 12 for web workloads (JIT slows short queries).
    pub jit: Option<&'static str>,
    /// `lz4` from PostgreSQL 15 (Dify's `postgres:15-alpine` is built `--with-lz4`), `on` for 10–14.
    pub wal_compression: Option<&'static str>,
    /// 4 from 16 CPUs, 5 from 32; PostgreSQL's 3 otherwise.
    pub autovacuum_max_workers: Option<u64>,
    /// 2 GB when maintenance_work_mem reaches 2 GB, so autovacuum workers do not each take 8 GB.
    pub autovacuum_work_mem_kb: Option<u64>,
    /// `io_uring` from PostgreSQL 18 (asynchronous I/O) on Linux.
    pub io_method: Option<&'static str>,
    /// PostgreSQL 18: a quarter of the CPUs (at most 32), set only when above PostgreSQL's 3.
    pub io_workers: Option<u64>,
    pub min_wal_size_kb: u64,
    pub max_wal_size_kb: u64,
    /// The CPUs, from 4 CPUs; below that PostgreSQL's 8.
    pub max_worker_processes: Option<u64>,
    /// CPUs/2 rounded up, at most 4.
    pub max_parallel_workers_per_gather: Option<u64>,
    /// The CPUs (PostgreSQL ≥ 10).
    pub max_parallel_workers: Option<u64>,
    /// CPUs/2 rounded up, at most 4 (PostgreSQL ≥ 11).
    pub max_parallel_maintenance_workers: Option<u64>,
    /// PGTune's warnings, and ours where a value needs something of the server.
    pub warnings: Vec<String>,
}

impl Tuning {
    /// Setting name → value as PostgreSQL reads it in `postgres -c name=value` or
    /// postgresql.conf, in PGTune's order, leaving out what PGTune leaves out. Sizes use
    /// PGTune's formatting (GB or MB only when exact, else kB), so the strings equal PGTune's.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = vec![
            ("max_connections", self.max_connections.to_string()),
            ("shared_buffers", format_kb(self.shared_buffers_kb)),
            ("effective_cache_size", format_kb(self.effective_cache_size_kb)),
            ("maintenance_work_mem", format_kb(self.maintenance_work_mem_kb)),
            ("checkpoint_completion_target", self.checkpoint_completion_target.to_string()),
            ("wal_buffers", format_kb(self.wal_buffers_kb)),
            ("default_statistics_target", self.default_statistics_target.to_string()),
            ("random_page_cost", self.random_page_cost.to_string()),
        ];
        let optional: [(&'static str, Option<String>); 8] = [
            ("effective_io_concurrency", self.effective_io_concurrency.map(|v| v.to_string())),
            ("work_mem", Some(format_kb(self.work_mem_kb))),
            ("huge_pages", Some(self.huge_pages.to_string())),
            ("jit", self.jit.map(str::to_string)),
            ("wal_compression", self.wal_compression.map(str::to_string)),
            ("autovacuum_max_workers", self.autovacuum_max_workers.map(|v| v.to_string())),
            ("autovacuum_work_mem", self.autovacuum_work_mem_kb.map(format_kb)),
            ("io_method", self.io_method.map(str::to_string)),
        ];
        out.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        if let Some(v) = self.io_workers {
            out.push(("io_workers", v.to_string()));
        }
        out.push(("min_wal_size", format_kb(self.min_wal_size_kb)));
        out.push(("max_wal_size", format_kb(self.max_wal_size_kb)));
        let parallel = [
            ("max_worker_processes", self.max_worker_processes),
            ("max_parallel_workers_per_gather", self.max_parallel_workers_per_gather),
            ("max_parallel_workers", self.max_parallel_workers),
            ("max_parallel_maintenance_workers", self.max_parallel_maintenance_workers),
        ];
        out.extend(parallel.into_iter().filter_map(|(k, v)| v.map(|v| (k, v.to_string()))));
        out
    }

    /// The worker processes PGTune divides work_mem by: `max_worker_processes`, or
    /// PostgreSQL's 8 when PGTune does not set it.
    pub fn worker_processes(&self) -> u64 {
        self.max_worker_processes.unwrap_or(DEFAULT_MAX_WORKER_PROCESSES)
    }
}

/// PGTune's `formatValue`: the largest of GB, MB, kB that shows the value without loss.
pub fn format_kb(kb: u64) -> String {
    if kb.is_multiple_of(KB_PER_GB) {
        format!("{}GB", kb / KB_PER_GB)
    } else if kb.is_multiple_of(KB_PER_MB) {
        format!("{}MB", kb / KB_PER_MB)
    } else {
        format!("{kb}kB")
    }
}

/// PGTune's "web" tuning on Linux for `host` and `max_connections` (used as given, as PGTune
/// does; difyplan's plan chooses it). Total: it never fails and never panics, whatever the
/// host; call [`PgHost::validate`] first to refuse hosts PGTune would not tune.
pub fn tune(host: &PgHost, max_connections: u64) -> Tuning {
    let ram_kb = host.memory_kb();
    let cpus = u64::from(host.cpus);
    let version = host.pg_version;

    let shared_buffers_kb = ram_kb / 4;
    let effective_cache_size_kb = ram_kb * 3 / 4; // ram_kb ≤ 2^54, so no overflow
    let maintenance_work_mem_kb = (ram_kb / 16).min(MAINTENANCE_WORK_MEM_CAP_KB);

    let mut wal_buffers_kb = (shared_buffers_kb.saturating_mul(3) / 100).min(WAL_BUFFERS_MAX_KB);
    if wal_buffers_kb > WAL_BUFFERS_NEAR_MAX_KB {
        wal_buffers_kb = WAL_BUFFERS_MAX_KB;
    }
    wal_buffers_kb = wal_buffers_kb.max(WAL_BUFFERS_MIN_KB);

    let parallel = host.cpus >= PARALLEL_MIN_CPUS;
    let half_cpus_capped = cpus.div_ceil(2).min(PARALLEL_WORKERS_CAP);
    let max_worker_processes = parallel.then_some(cpus);
    let max_parallel_workers_per_gather = parallel.then_some(half_cpus_capped);
    let max_parallel_workers = (parallel && version >= 10).then_some(cpus);
    let max_parallel_maintenance_workers = (parallel && version >= 11).then_some(half_cpus_capped);

    let workers = max_worker_processes.unwrap_or(DEFAULT_MAX_WORKER_PROCESSES);
    let divisor = max_connections.saturating_add(workers).saturating_mul(WORK_MEM_USES_PER_BACKEND);
    let work_mem_kb = ((ram_kb - shared_buffers_kb) / divisor).max(WORK_MEM_FLOOR_KB);

    // selectAutovacuumMaxWorkers: PostgreSQL's 3 autovacuum workers are raised only on big servers.
    let autovacuum_max_workers = match host.cpus {
        32.. => Some(5),
        16.. => Some(4),
        _ => None,
    };
    let autovacuum_work_mem_kb =
        (maintenance_work_mem_kb >= AUTOVACUUM_WORK_MEM_CAP_KB).then_some(AUTOVACUUM_WORK_MEM_CAP_KB);

    let wal_compression = match version {
        15.. => Some("lz4"),
        10.. => Some("on"),
        _ => None,
    };
    let io_method = (version >= 18).then_some("io_uring");
    // selectIoWorkers: a quarter of the CPUs, between PostgreSQL's default 3 and its maximum 32.
    let io_workers = (version >= 18 && cpus > 0).then(|| (cpus / 4).clamp(3, 32)).filter(|&n| n > 3);

    let mut warnings = Vec::new();
    if host.memory_bytes < LOW_MEMORY_WARNING_BYTES {
        warnings.push("PGTune is not meant for hosts under 256 MB of memory".to_string());
    } else if host.memory_bytes > HIGH_MEMORY_WARNING_BYTES {
        warnings.push("PGTune is not meant for hosts over 100 GB of memory; review its values".to_string());
    }
    if wal_compression == Some("lz4") {
        warnings.push(
            "wal_compression = lz4 needs a PostgreSQL built --with-lz4 (the official postgres images are)".to_string(),
        );
    }
    if io_method == Some("io_uring") {
        warnings
            .push("io_method = io_uring needs a PostgreSQL built --with-liburing; use `worker` otherwise".to_string());
    }
    if max_connections > PG_MAX_CONNECTIONS_LIMIT {
        warnings.push(format!(
            "max_connections {max_connections} is above PostgreSQL's limit of \
                {PG_MAX_CONNECTIONS_LIMIT}: the server will not start"
        ));
    }

    Tuning {
        max_connections,
        shared_buffers_kb,
        effective_cache_size_kb,
        maintenance_work_mem_kb,
        checkpoint_completion_target: CHECKPOINT_COMPLETION_TARGET,
        wal_buffers_kb,
        default_statistics_target: WEB_DEFAULT_STATISTICS_TARGET,
        random_page_cost: host.storage.random_page_cost(),
        effective_io_concurrency: Some(host.storage.effective_io_concurrency()),
        work_mem_kb,
        huge_pages: if shared_buffers_kb >= HUGE_PAGES_MIN_SHARED_BUFFERS_KB { "try" } else { "off" },
        jit: (version >= 12).then_some("off"),
        wal_compression,
        autovacuum_max_workers,
        autovacuum_work_mem_kb,
        io_method,
        io_workers,
        min_wal_size_kb: WEB_MIN_WAL_SIZE_KB,
        max_wal_size_kb: WEB_MAX_WAL_SIZE_KB,
        max_worker_processes,
        max_parallel_workers_per_gather,
        max_parallel_workers,
        max_parallel_maintenance_workers,
        warnings,
    }
}

/// What one open backend costs besides work_mem. Measured on PostgreSQL 15: 1.06–1.10 MiB of
/// private memory idle, 1.41–1.47 MiB after a catalog query left it idle in transaction,
/// whatever max_connections is (docs/model.md §9); rounded up to 2 MiB, the published accurate
/// measure ("under 2 MiB per connection"). Page tables come on top without huge pages, see
/// [`huge_pages_advice`].
pub const PER_BACKEND_OVERHEAD_BYTES: u64 = 2 * MIB;
/// Shared memory per `max_connections` slot, allocated at start whether used or not: about
/// 48 kB measured (143 MB at 100 slots, 617 MB at 10,000; docs/model.md §9).
pub const PER_SLOT_BYTES: u64 = 48 * KIB;
/// work_mem allowances per connection running a query: Dify's queries are short lookups and
/// writes (11–28 ms of PostgreSQL CPU per request, docs/model.md §8), so one sort or hash at a time.
/// PGTune's own divisor of 3 is the headroom above this (maintenance, autovacuum, the OS).
pub const WORK_MEM_ALLOWANCES_PER_BACKEND: u64 = 1;
/// Backends running a query at once, per CPU. Most of Dify's connections sit idle in
/// transaction while requests wait on the LLM (docs/model.md §1, §8), and PostgreSQL runs about
/// cores × 2 queries usefully at once (docs/model.md §5); twice that is the allowance.
pub const ACTIVE_BACKENDS_PER_CPU: u64 = 4;

/// Whether the backends that can be open fit the database's memory, and what would.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct MemoryCheck {
    pub fits: bool,
    /// Backends that can be open at once: the plan's worst case, at most max_connections.
    pub open_backends: u64,
    /// shared_buffers + max_connections × per-slot shared memory + open backends × overhead
    /// + work_mem of the backends running a query at once.
    pub needed_bytes: u64,
    /// The host's memory.
    pub available_bytes: u64,
    /// The most backends that fit open at once, with max_connections set to that many and
    /// PGTune re-tuned for it (see [`memory_check`]).
    pub largest_safe_backends: u64,
    /// Backend overhead + work_mem × allowances, at the tuned work_mem.
    pub per_backend_bytes: u64,
    /// The smallest whole number of GiB at which these backends fit after re-tuning; `None`
    /// when not even 16 TiB would.
    pub memory_to_fit_bytes: Option<u64>,
    /// One sentence: what fits, or what to change.
    pub remedy: String,
    /// Set when the page tables of many backends call for huge pages.
    pub huge_pages_advice: Option<String>,
}

/// Memory sanity: shared_buffers + max_connections × 48 kB + open backends × (overhead) +
/// work_mem of the active backends ≤ RAM.
///
/// Memory follows the backends really open (each process keeps `SQLALCHEMY_POOL_SIZE` open
/// after a burst, overflow while in use), not max_connections × a per-connection figure: an
/// unused slot costs only its shared memory. work_mem depends on max_connections (PGTune divides
/// by it), so the largest safe count is the largest `n` for which `tune(host, n)` passes with
/// `n` backends open — what the operator gets after re-running with it; a bisection finds it.
pub fn memory_check(host: &PgHost, tuning: &Tuning, open_backends: u64) -> MemoryCheck {
    let open_backends = open_backends.min(tuning.max_connections);
    let available_bytes = host.memory_bytes;
    let per_backend_bytes = per_backend_bytes(tuning);
    let needed_bytes = needed_bytes(tuning, host.cpus, open_backends);
    let fits = needed_bytes <= available_bytes;
    let largest = largest_safe_backends(host);
    let memory_to_fit_bytes = memory_to_fit(host, tuning.max_connections, open_backends);

    let remedy = if fits {
        format!(
            "fits: {open_backends} open backends and {} slots need about {} of {}; up to {largest} \
                open backends would fit",
            tuning.max_connections,
            human_bytes(needed_bytes),
            human_bytes(available_bytes)
        )
    } else {
        let more_memory = match memory_to_fit_bytes {
            Some(bytes) => format!("or give PostgreSQL at least {} of memory (--pg-memory)", human_bytes(bytes)),
            None => "no host up to 16 TiB holds that many; split the load across databases".to_string(),
        };
        let fewer = if largest == 0 {
            "not one connection fits beside shared_buffers".to_string()
        } else {
            format!(
                "bring the connections that can be open to {largest} or less (smaller pools, fewer \
                    processes, or a pooler: --pooler pgbouncer)"
            )
        };
        format!(
            "{open_backends} open backends and {} slots need about {} but PostgreSQL has {}: {fewer}, {more_memory}",
            tuning.max_connections,
            human_bytes(needed_bytes),
            human_bytes(available_bytes)
        )
    };

    MemoryCheck {
        fits,
        open_backends,
        needed_bytes,
        available_bytes,
        largest_safe_backends: largest,
        per_backend_bytes,
        memory_to_fit_bytes,
        remedy,
        huge_pages_advice: huge_pages_advice(tuning, open_backends, available_bytes),
    }
}

/// Without huge pages every backend that touches all of shared_buffers maps it with 4 kB pages:
/// 8 bytes of page table per 4 kB, shared_buffers ÷ 512 per backend. When that could take more
/// than a tenth of the host, say so and how many 2 MiB huge pages to reserve.
pub fn huge_pages_advice(tuning: &Tuning, open_backends: u64, memory_bytes: u64) -> Option<String> {
    let shared = tuning.shared_buffers_kb.saturating_mul(KIB);
    let page_tables = u128::from(shared / 512) * u128::from(open_backends);
    if page_tables * 10 <= u128::from(memory_bytes) {
        return None;
    }
    let pages = (shared + shared / 20).div_ceil(2 * MIB);
    Some(format!(
        "{open_backends} backends mapping {} of shared_buffers with 4 kB pages could spend up to \
            {} on page tables: set huge_pages = on and reserve the huge pages on the database host \
            (vm.nr_hugepages = {pages} at 2 MiB each); the memory plan counts backends with huge pages",
        human_bytes(shared),
        human_bytes(u64::try_from(page_tables).unwrap_or(u64::MAX))
    ))
}

fn per_backend_bytes(tuning: &Tuning) -> u64 {
    let work_mem = tuning.work_mem_kb.saturating_mul(KIB).saturating_mul(WORK_MEM_ALLOWANCES_PER_BACKEND);
    PER_BACKEND_OVERHEAD_BYTES.saturating_add(work_mem)
}

/// shared_buffers + every slot's shared memory + every open backend's overhead + work_mem for
/// the backends that run a query at once.
fn needed_bytes(tuning: &Tuning, cpus: u32, open_backends: u64) -> u64 {
    let shared = u128::from(tuning.shared_buffers_kb) * u128::from(KIB);
    let slots = u128::from(tuning.max_connections) * u128::from(PER_SLOT_BYTES);
    let backends = u128::from(open_backends) * u128::from(PER_BACKEND_OVERHEAD_BYTES);
    let active = u128::from(open_backends.min(u64::from(cpus).saturating_mul(ACTIVE_BACKENDS_PER_CPU)));
    let work_mem = active * u128::from(per_backend_bytes(tuning) - PER_BACKEND_OVERHEAD_BYTES);
    u64::try_from(shared + slots + backends + work_mem).unwrap_or(u64::MAX)
}

/// Whether `open` backends of `max_connections` fit once PGTune re-tunes for them.
pub fn fits_after_tuning(host: &PgHost, max_connections: u64, open: u64) -> bool {
    needed_bytes(&tune(host, max_connections), host.cpus, open.min(max_connections)) <= host.memory_bytes
}

fn largest_safe_backends(host: &PgHost) -> u64 {
    let fits = |n: u64| fits_after_tuning(host, n, n);
    // Every backend costs at least the overhead, so none past this bound can fit.
    let room = host.memory_bytes.saturating_sub(host.memory_kb() / 4 * KIB);
    let bound = room / PER_BACKEND_OVERHEAD_BYTES;
    let (mut lo, mut hi) = (0, bound);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) { lo = mid } else { hi = mid - 1 }
    }
    // The need is not strictly monotone for small counts (the active backends' work_mem falls as
    // PGTune divides by more connections), so settle on an edge: fits at n, not at n + 1.
    while lo > 0 && !fits(lo) {
        lo -= 1;
    }
    while lo < bound && fits(lo + 1) {
        lo += 1;
    }
    lo
}

fn memory_to_fit(host: &PgHost, max_connections: u64, open: u64) -> Option<u64> {
    let at = |gib: u64| PgHost { memory_bytes: gib * GIB, ..*host };
    let (mut lo, mut hi) = (1, MAX_MEMORY_BYTES / GIB);
    if !fits_after_tuning(&at(hi), max_connections, open) {
        return None;
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fits_after_tuning(&at(mid), max_connections, open) { hi = mid } else { lo = mid + 1 }
    }
    Some(lo * GIB)
}

/// Bytes for people: MiB below 1 GiB (rounded up), GiB with one decimal above.
fn human_bytes(bytes: u64) -> String {
    if bytes >= GIB { format!("{:.1} GiB", bytes as f64 / GIB as f64) } else { format!("{} MiB", bytes.div_ceil(MIB)) }
}

/// A request may legitimately sit idle in transaction this many times the profile's mean
/// duration: LLM latency has a long tail (an assumption, for when it exceeds GUNICORN_TIMEOUT).
pub const IDLE_REQUEST_MULTIPLE: f64 = 10.0;
/// Never below one minute: a shorter idle-in-transaction timeout would cut healthy requests that
/// wait on one slow model call, and 0 would mean "never" to PostgreSQL.
pub const MIN_IDLE_IN_TRANSACTION_S: u64 = 60;
/// statement_timeout: Dify's statements take milliseconds (11–28 ms of PostgreSQL CPU per
/// request, docs/model.md §8); one minute is far above that and still stops a runaway query.
pub const STATEMENT_TIMEOUT_S: u64 = 60;
/// PostgreSQL's timeouts are int milliseconds: at most INT_MAX.
const PG_MAX_TIMEOUT_MS: u64 = i32::MAX as u64;

/// `POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT` and `POSTGRES_STATEMENT_TIMEOUT`, in ms.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Timeouts {
    pub idle_in_transaction_ms: u64,
    pub statement_ms: u64,
    /// Why, one sentence each, for `--explain` and the rendered `.env`'s comments.
    pub reasoning: Vec<String>,
}

/// The two timeouts from a request's mean duration and `GUNICORN_TIMEOUT`.
///
/// Rule: idle_in_transaction_session_timeout = max(GUNICORN_TIMEOUT, 10 × request_seconds,
/// 60 s). A Dify request holds its session idle in transaction for its whole life, LLM wait
/// included (docs/model.md §1, §8), so the timeout must outlast the longest legitimate request, or
/// PostgreSQL kills healthy requests; but it should not be 0 (Dify's default), because dead
/// workflow threads left sessions idle in transaction for minutes and held pool slots (§8).
/// statement_timeout bounds one SQL statement, not the request: 60 s.
pub fn timeouts(request_seconds: f64, gunicorn_timeout_s: u64) -> Timeouts {
    let request_seconds = if request_seconds.is_finite() && request_seconds > 0.0 { request_seconds } else { 0.0 };
    // `as` saturates: a absurdly long request becomes u64::MAX and is clamped below.
    let from_request_s = (request_seconds * IDLE_REQUEST_MULTIPLE).ceil() as u64;
    let idle_s = gunicorn_timeout_s.max(from_request_s).max(MIN_IDLE_IN_TRANSACTION_S);
    let idle_in_transaction_ms = idle_s.saturating_mul(1000).min(PG_MAX_TIMEOUT_MS);
    let statement_ms = (STATEMENT_TIMEOUT_S * 1000).min(idle_in_transaction_ms);

    let binding = if idle_s == gunicorn_timeout_s && gunicorn_timeout_s >= from_request_s {
        format!("GUNICORN_TIMEOUT ({gunicorn_timeout_s} s) is the longer bound")
    } else if idle_s == from_request_s {
        format!("{IDLE_REQUEST_MULTIPLE} × the {request_seconds} s request ({from_request_s} s) is the longer bound")
    } else {
        format!("both bounds are under the {MIN_IDLE_IN_TRANSACTION_S} s floor")
    };
    let reasoning = vec![
        "A Dify request keeps its database session idle in transaction for its whole duration, \
         the LLM call included (measured): idle_in_transaction_session_timeout must outlast \
         the longest legitimate request, or PostgreSQL terminates healthy requests."
            .to_string(),
        format!(
            "idle_in_transaction_session_timeout = max(GUNICORN_TIMEOUT, {IDLE_REQUEST_MULTIPLE} × request \
             duration, {MIN_IDLE_IN_TRANSACTION_S} s) = {} s: {binding}.",
            idle_in_transaction_ms / 1000
        ),
        "Dify's default 0 never times out; a dead workflow thread then holds its connection idle in \
         transaction until the process restarts (measured), so a finite value returns those slots."
            .to_string(),
        "Under gevent, gunicorn does not cut a request at its timeout (only silent workers are \
         killed), and app runs may last up to APP_MAX_EXECUTION_TIME (1200 s in Dify 1.16.1): \
         if your apps legitimately run that long, raise this timeout to match."
            .to_string(),
        format!(
            "statement_timeout = {} s bounds one SQL statement, not the request: Dify's statements take \
             milliseconds (measured). Migrations or log clean-ups on large tables may need more; \
             run them with their own `SET statement_timeout`.",
            statement_ms / 1000
        ),
    ];
    Timeouts { idle_in_transaction_ms, statement_ms, reasoning }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(gib: u64, cpus: u32) -> PgHost {
        PgHost { memory_bytes: gib * GIB, cpus, storage: Storage::Ssd, pg_version: 15 }
    }

    fn setting(t: &Tuning, name: &str) -> Option<String> {
        t.settings().into_iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    fn memory_four(t: &Tuning) -> [String; 4] {
        ["shared_buffers", "effective_cache_size", "maintenance_work_mem", "work_mem"]
            .map(|k| setting(t, k).unwrap_or_default())
    }

    /// PGTune's own results for "web", Linux, SSD: the acceptance cases of the PGTune module.
    /// None of these four depends on the PostgreSQL version on Linux, so every version must agree.
    #[test]
    fn pgtune_web_results() {
        for version in PG_VERSIONS {
            let at = |gib, cpus, conns| tune(&PgHost { pg_version: version, ..host(gib, cpus) }, conns);
            assert_eq!(memory_four(&at(8, 2, 200)), ["2GB", "6GB", "512MB", "10082kB"], "PG {version}");
            assert_eq!(memory_four(&at(16, 4, 400)), ["4GB", "12GB", "1GB", "10381kB"], "PG {version}");
            assert_eq!(memory_four(&at(32, 8, 500)), ["8GB", "24GB", "2GB", "16513kB"], "PG {version}");
        }
    }

    #[test]
    fn full_output_in_pgtune_order() {
        // PGTune 421728c, web, Linux, 16 GB, 4 CPUs, 400 connections, SSD, PostgreSQL 15.
        let got = tune(&host(16, 4), 400).settings();
        let want = [
            ("max_connections", "400"),
            ("shared_buffers", "4GB"),
            ("effective_cache_size", "12GB"),
            ("maintenance_work_mem", "1GB"),
            ("checkpoint_completion_target", "0.9"),
            ("wal_buffers", "16MB"),
            ("default_statistics_target", "100"),
            ("random_page_cost", "1.1"),
            ("effective_io_concurrency", "200"),
            ("work_mem", "10381kB"),
            ("huge_pages", "try"),
            ("jit", "off"),
            ("wal_compression", "lz4"),
            ("min_wal_size", "1GB"),
            ("max_wal_size", "4GB"),
            ("max_worker_processes", "4"),
            ("max_parallel_workers_per_gather", "2"),
            ("max_parallel_workers", "4"),
            ("max_parallel_maintenance_workers", "2"),
        ];
        let want: Vec<(&str, String)> = want.iter().map(|(k, v)| (*k, v.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn work_mem_divides_by_eight_workers_below_four_cpus_and_by_the_cpus_from_four() {
        // 8 GB: (8388608 − 2097152) kB ÷ ((100 + 8) × 3) = 19418.07 → 19418 with 2 CPUs;
        // ÷ ((100 + 4) × 3) = 20164.92 → 20164 with 4 CPUs.
        assert_eq!(tune(&host(8, 2), 100).work_mem_kb, 19418);
        assert_eq!(tune(&host(8, 4), 100).work_mem_kb, 20164);
        assert_eq!(tune(&host(8, 2), 100).max_worker_processes, None);
        assert_eq!(tune(&host(8, 4), 100).worker_processes(), 4);
    }

    #[test]
    fn work_mem_floor_is_4mb() {
        // PGTune's own test: 4 GB, 4 CPUs, 9999 connections → 3145728 ÷ 30009 = 104 kB → 4096 kB.
        let t = tune(&host(4, 4), 9999);
        assert_eq!(t.work_mem_kb, 4096);
        assert_eq!(setting(&t, "work_mem").as_deref(), Some("4MB"));
        // 2 GiB, 2000 connections: 1572864 ÷ 6024 = 261 kB → floored.
        assert_eq!(tune(&host(2, 2), 2000).work_mem_kb, 4096);
    }

    #[test]
    fn maintenance_work_mem_cap_is_8gb_and_autovacuum_is_held_at_2gb() {
        let at64 = tune(&host(64, 8), 200);
        assert_eq!(setting(&at64, "maintenance_work_mem").as_deref(), Some("4GB"));
        assert_eq!(setting(&at64, "autovacuum_work_mem").as_deref(), Some("2GB"));
        let at256 = tune(&host(256, 8), 200);
        assert_eq!(at256.maintenance_work_mem_kb, 8_388_608); // PGTune's test: 8GB in kB
        assert_eq!(tune(&host(16, 4), 200).autovacuum_work_mem_kb, None);
        assert_eq!(tune(&host(32, 4), 200).autovacuum_work_mem_kb, Some(2_097_152)); // ≥ 2 GB: held at 2 GB
    }

    #[test]
    fn wal_buffers_is_3_percent_capped_at_16mb_rounded_up_near_it_and_at_least_32kb() {
        // 1 GiB: shared_buffers 262144 kB × 3% = 7864 kB.
        assert_eq!(tune(&host(1, 2), 100).wal_buffers_kb, 7864);
        // 2 GiB: 524288 × 3% = 15728 kB, above 14 MB → 16 MB.
        assert_eq!(setting(&tune(&host(2, 2), 100), "wal_buffers").as_deref(), Some("16MB"));
        // 64 GiB: 3% would be 503316 kB → capped.
        assert_eq!(tune(&host(64, 2), 100).wal_buffers_kb, 16 * 1024);
        // 4 MiB of RAM (only via a hand-built host): 1024 × 3% = 30 kB → 32 kB.
        let tiny = PgHost { memory_bytes: 4 * MIB, ..host(1, 2) };
        assert_eq!(tune(&tiny, 20).wal_buffers_kb, 32);
    }

    #[test]
    fn storage_sets_planner_costs() {
        let cases = [
            (Storage::Ssd, "1.1", "200"),
            (Storage::Hdd, "4", "2"),
            (Storage::San, "1.1", "300"),
            (Storage::Nvme, "1.1", "1000"),
        ];
        for (storage, cost, io) in cases {
            let t = tune(&PgHost { storage, ..host(8, 2) }, 100);
            assert_eq!(setting(&t, "random_page_cost").as_deref(), Some(cost), "{storage}");
            assert_eq!(setting(&t, "effective_io_concurrency").as_deref(), Some(io), "{storage}");
        }
    }

    #[test]
    fn storage_reads_and_writes_lowercase() {
        assert_eq!(serde_json::to_string(&Storage::Nvme).unwrap(), "\"nvme\"");
        assert_eq!(serde_json::from_str::<Storage>("\"san\"").unwrap(), Storage::San);
        assert_eq!(<Storage as clap::ValueEnum>::from_str("hdd", true), Ok(Storage::Hdd));
    }

    #[test]
    fn version_dependence() {
        let at = |version, cpus| tune(&PgHost { pg_version: version, ..host(16, cpus) }, 200);
        // PostgreSQL 10: no parallel maintenance workers (11+), no jit setting (12+), pglz WAL compression.
        let v10 = at(10, 8);
        assert_eq!(v10.max_parallel_workers, Some(8));
        assert_eq!(v10.max_parallel_maintenance_workers, None);
        assert_eq!(v10.jit, None);
        assert_eq!(v10.wal_compression, Some("on"));
        let v11 = at(11, 8);
        assert_eq!(v11.max_parallel_maintenance_workers, Some(4));
        assert_eq!(at(12, 8).jit, Some("off"));
        assert_eq!(at(14, 8).wal_compression, Some("on"));
        assert_eq!(at(15, 8).wal_compression, Some("lz4"));
        // Asynchronous I/O from 18: io_uring; io_workers only above PostgreSQL's 3 (16 CPUs → 4).
        assert_eq!(at(17, 16).io_method, None);
        assert_eq!(at(18, 16).io_method, Some("io_uring"));
        assert_eq!(at(18, 16).io_workers, Some(4));
        assert_eq!(at(18, 8).io_workers, None);
        assert_eq!(at(17, 16).io_workers, None);
    }

    #[test]
    fn parallel_settings_from_four_cpus() {
        let two = tune(&host(8, 2), 100);
        assert!(two.settings().iter().all(|(k, _)| !k.contains("parallel") && *k != "max_worker_processes"));
        // PGTune's own test: 12 CPUs → 12, 4, 12, 4.
        let twelve = tune(&host(8, 12), 100);
        assert_eq!(
            [
                twelve.max_worker_processes,
                twelve.max_parallel_workers_per_gather,
                twelve.max_parallel_workers,
                twelve.max_parallel_maintenance_workers
            ],
            [Some(12), Some(4), Some(12), Some(4)]
        );
        let five = tune(&host(8, 5), 100);
        assert_eq!(five.max_parallel_workers_per_gather, Some(3)); // ⌈5/2⌉
    }

    #[test]
    fn huge_pages_from_2gb_of_shared_buffers_and_autovacuum_workers_by_cpus() {
        assert_eq!(tune(&host(4, 2), 100).huge_pages, "off");
        assert_eq!(tune(&host(8, 2), 100).huge_pages, "try");
        assert_eq!(tune(&host(8, 8), 100).autovacuum_max_workers, None);
        assert_eq!(tune(&host(8, 16), 100).autovacuum_max_workers, Some(4));
        assert_eq!(tune(&host(8, 32), 100).autovacuum_max_workers, Some(5));
    }

    #[test]
    fn formatting_uses_the_largest_exact_unit() {
        assert_eq!(format_kb(2 * 1024 * 1024), "2GB");
        assert_eq!(format_kb(512 * 1024), "512MB");
        assert_eq!(format_kb(1536 * 1024), "1536MB");
        assert_eq!(format_kb(10082), "10082kB");
        assert_eq!(format_kb(32), "32kB");
    }

    #[test]
    fn every_value_is_an_integer_with_a_postgres_unit_or_a_plain_value() {
        for gib in [1, 3, 7, 48, 1000] {
            for cpus in [1, 4, 48] {
                let t = tune(&PgHost { pg_version: 18, ..host(gib, cpus) }, 333);
                for (name, value) in t.settings() {
                    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
                    let unit = &value[digits.len()..];
                    let ok = ["off", "try", "on", "lz4", "io_uring"].contains(&value.as_str())
                        || match unit {
                            "kB" | "MB" | "GB" => digits.parse::<u64>().is_ok(),
                            "" => digits.parse::<f64>().is_ok(),
                            _ => false,
                        };
                    assert!(ok, "{name} = {value}");
                }
            }
        }
    }

    #[test]
    fn odd_memory_sizes_stay_exact() {
        // 1000 MiB = 1024000 kB: shared_buffers 256000 kB = 250MB; maintenance 64000 kB is not whole MB.
        let t = tune(&PgHost { memory_bytes: 1000 * MIB, ..host(1, 2) }, 100);
        assert_eq!(setting(&t, "shared_buffers").as_deref(), Some("250MB"));
        assert_eq!(setting(&t, "effective_cache_size").as_deref(), Some("750MB"));
        assert_eq!(t.maintenance_work_mem_kb, 64000);
        assert_eq!(setting(&t, "maintenance_work_mem").as_deref(), Some("64000kB"));
    }

    #[test]
    fn tune_is_total() {
        for bytes in [0, 1, 1023, MAX_MEMORY_BYTES, u64::MAX] {
            for conns in [0, 1, u64::MAX] {
                for cpus in [0, 1, u32::MAX] {
                    let h = PgHost { memory_bytes: bytes, cpus, storage: Storage::Hdd, pg_version: 0 };
                    let t = tune(&h, conns);
                    let _ = t.settings();
                    let _ = memory_check(&h, &t, conns);
                }
            }
        }
        assert!(!tune(&host(8, 2), PG_MAX_CONNECTIONS_LIMIT + 1).warnings.is_empty());
    }

    #[test]
    fn parse_memory_accepts_binary_units() {
        assert_eq!(parse_memory("16GiB"), Ok(16 * GIB));
        assert_eq!(parse_memory("16GB"), Ok(16 * GIB));
        assert_eq!(parse_memory("16gb"), Ok(16 * GIB));
        assert_eq!(parse_memory("8g"), Ok(8 * GIB));
        assert_eq!(parse_memory("512MiB"), Ok(512 * MIB));
        assert_eq!(parse_memory(" 1.5 GiB "), Ok(1536 * MIB));
        assert_eq!(parse_memory("1048576k"), Ok(GIB));
        assert_eq!(parse_memory("1TB"), Ok(TIB));
        assert_eq!(parse_memory("2147483648b"), Ok(2 * GIB));
    }

    #[test]
    fn parse_memory_errors_say_what_to_write() {
        for (input, why) in [
            ("", "no number"),
            ("GiB", "no number"),
            ("16", "no unit"),
            ("16 gigs", "unknown unit `gigs`"),
            ("1.2.3GB", "not a number"),
            ("-4GB", "no number"),
            ("256MiB", "below PGTune's minimum"),
            ("0g", "below PGTune's minimum"),
            ("17TiB", "above 16 TiB"),
            ("99999999999999999999GB", "not a number"),
            ("1e30GB", "unknown unit"),
            ("9999999999999999T", "above 16 TiB"),
        ] {
            let err = parse_memory(input).expect_err(input);
            assert!(err.contains(why), "{input}: {err}");
            assert!(err.contains("16GiB") || err.contains("pass"), "{input}: {err}");
        }
    }

    #[test]
    fn validate_host() {
        assert!(DEFAULT_HOST.validate().is_ok());
        assert!(PgHost { cpus: 0, ..DEFAULT_HOST }.validate().unwrap_err().contains("--pg-cpus"));
        assert!(PgHost { pg_version: 9, ..DEFAULT_HOST }.validate().unwrap_err().contains("10 to 18"));
        assert!(PgHost { memory_bytes: MIB, ..DEFAULT_HOST }.validate().is_err());
    }

    #[test]
    fn memory_check_too_small_database() {
        // 2 GiB = 2097152 kB, 2 CPUs, 2000 connections all open: shared_buffers 524288 kB,
        // work_mem floored to 4096 kB; 2000 slots × 48 kB = 96000 kB; every open backend
        // 2048 kB, the 4 × 2 = 8 running a query also work_mem:
        // needed 524288 + 96000 + 2000 × 2048 + 8 × 4096 = 4749056 kB ≫ RAM.
        let h = host(2, 2);
        let c = memory_check(&h, &tune(&h, 2000), 2000);
        assert!(!c.fits);
        assert_eq!(c.per_backend_bytes, (2048 + 4096) * 1024);
        assert_eq!(c.needed_bytes, 4_749_056 * 1024);
        assert_eq!(c.available_bytes, 2 * GIB);
        // Largest safe, by hand: 48 n + 2048 n + 8 × work_mem(n) ≤ 2097152 − 524288 = 1572864 kB,
        // work_mem(n) = max(4096, ⌊1572864 ÷ (3(n + 8))⌋), at the floor from n = 121:
        //   n = 734: 2096 × 734 + 32768 = 1571232 ≤ 1572864 — fits;
        //   n = 735: 1573328 > 1572864 — does not.
        assert_eq!(c.largest_safe_backends, 734);
        assert!(c.remedy.contains("to 734 or less"), "{}", c.remedy);
        // The memory that holds 2000 open, R GiB: 2000 × 2096 + 32768 = 4224768 kB ≤ 786432 R
        // (3R/4 GiB in kB), so R = 6 (4718592).
        let to_fit = c.memory_to_fit_bytes.expect("a host up to 16 TiB holds 2000");
        assert!(fits_after_tuning(&PgHost { memory_bytes: to_fit, ..h }, 2000, 2000));
        assert!(!fits_after_tuning(&PgHost { memory_bytes: to_fit - GIB, ..h }, 2000, 2000));
        assert_eq!(to_fit, 6 * GIB);
        assert!(c.remedy.contains("6.0 GiB"), "{}", c.remedy);
    }

    #[test]
    fn unused_slots_cost_only_shared_memory() {
        // The same 2 GiB host holds 2000 slots when only 100 backends can be open.
        let h = host(2, 2);
        let c = memory_check(&h, &tune(&h, 2000), 100);
        assert!(c.fits, "{}", c.remedy);
        assert_eq!(c.open_backends, 100);
    }

    #[test]
    fn vendor_500_qps_database_holds_every_slot() {
        // 16 cores, 128 GB, max_connections 12,800, every slot open: 32 GiB shared_buffers +
        // 12,800 × (48 kB + 2 MiB) ≈ 26 GiB + work_mem of 64 active backends.
        let h = PgHost { memory_bytes: 128 * GIB, cpus: 16, ..DEFAULT_HOST };
        let c = memory_check(&h, &tune(&h, 12_800), 12_800);
        assert!(c.fits, "{}", c.remedy);
        assert!(c.huge_pages_advice.is_some(), "12,800 backends over 32 GiB of shared_buffers need huge pages");
    }

    #[test]
    fn memory_check_fits_for_pgtune_defaults() {
        let h = host(8, 2);
        let c = memory_check(&h, &tune(&h, 200), 200);
        assert!(c.fits, "{}", c.remedy);
        assert!(c.largest_safe_backends >= 200);
        assert!(c.remedy.starts_with("fits"));
        assert_eq!(c.huge_pages_advice, None);
    }

    #[test]
    fn largest_safe_is_the_edge_of_fitting() {
        for gib in [1, 2, 4, 16] {
            let h = host(gib, 4);
            let n = largest_safe_backends(&h);
            assert!(fits_after_tuning(&h, n, n), "{gib} GiB, {n}");
            assert!(!fits_after_tuning(&h, n + 1, n + 1), "{gib} GiB, {n}");
            // Beyond the edge nothing fits again (the need grows once the overhead dominates).
            for conns in n + 1..=n + 200 {
                assert!(!fits_after_tuning(&h, conns, conns), "{gib} GiB, {conns}");
            }
        }
    }

    #[test]
    fn timeouts_from_gunicorn_and_request() {
        // Dify's compose: GUNICORN_TIMEOUT 360 s; a 12 s chat request → 120 s, so 360 s binds.
        let t = timeouts(12.0, 360);
        assert_eq!(t.idle_in_transaction_ms, 360_000);
        assert_eq!(t.statement_ms, 60_000);
        assert!(t.reasoning.iter().any(|r| r.contains("GUNICORN_TIMEOUT (360 s)")));
        // A 90 s agent run: 10 × 90 = 900 s.
        assert_eq!(timeouts(90.0, 360).idle_in_transaction_ms, 900_000);
        // gunicorn's 0 means "no timeout"; a 2 s request gives 20 s; the floor is 60 s.
        assert_eq!(timeouts(2.0, 0).idle_in_transaction_ms, 60_000);
        assert_eq!(timeouts(0.25, 30).idle_in_transaction_ms, 60_000);
    }

    #[test]
    fn timeouts_are_total_and_within_postgres_range() {
        for secs in [f64::NAN, f64::INFINITY, -5.0, 0.0, 1e300] {
            let t = timeouts(secs, u64::MAX);
            assert!(t.idle_in_transaction_ms <= i32::MAX as u64);
            assert!(t.idle_in_transaction_ms >= 60_000);
            assert!(t.statement_ms <= t.idle_in_transaction_ms);
        }
        assert_eq!(timeouts(f64::NAN, 0).idle_in_transaction_ms, 60_000);
    }
}
