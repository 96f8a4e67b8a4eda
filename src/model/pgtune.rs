//! PostgreSQL settings for Dify's database: PGTune's "web" formulas on Linux (le0pard/pgtune at
//! 7caef27) and the two timeouts Dify's compose passes; the memory check is in `pg_memory`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The PGTune revision followed: `src/features/configuration/configurationSlice.js` for the
/// formulas and `src/common/components/configurationView/index.jsx` for the order and the value
/// formatting, both at this commit (the newest revision we could read; it offers PostgreSQL 10–18).
/// Since 421728c PGTune also asks for the database size against RAM (`dbSize`): work_mem × 1.3
/// below RAM, × 0.9 above 3 × RAM, and random_page_cost 1.1 whatever the disk below RAM; and on
/// Linux from PostgreSQL 18 it leaves io_workers out (io_uring does not use them).
///
/// The formulas are PGTune's "web" profile as docs/model.md §5 states them (maintenance_work_mem capped at 8 GB, work_mem floored at 4 MB,
/// max_worker_processes = CPUs if ≥ 4 else 8) is what this revision computes. Older revisions
/// differ (7d204bdb: a 2 GB cap, a 64 kB floor, huge_pages from 32 GB of RAM), so the tests pin
/// this one. Sizes are integer kB (1 kB = 1024 bytes, PostgreSQL's unit); PGTune floors exact
/// quotients of integers, which is what integer division computes.
pub const PGTUNE_REVISION: &str = "le0pard/pgtune@7caef27c204d304623eda21f23e7d56c1ad78d36";

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
/// PGTune's `dbSize` factors on work_mem: × 13/10 when the data fits in RAM ("OS cache is
/// underutilized"), × 9/10 above 3 × RAM ("OS cache is under massive pressure").
const WORK_MEM_LESS_RAM: f64 = 1.3;
const WORK_MEM_GREATER_RAM: f64 = 0.9;
/// PGTune's "More than 3x RAM" boundary.
const GREATER_RAM_FACTOR: u64 = 3;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// PGTune's "DB size" input: the data against the host's RAM (`DB_SIZE_*` in `constants.js`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataSize {
    /// "Less than RAM".
    LessRam,
    /// "1x - 3x RAM": PGTune's default, and what difyplan uses unless it projects more.
    MidRam,
    /// "More than 3x RAM".
    GreaterRam,
}

impl DataSize {
    /// The class of `data_bytes` on a host of `memory_bytes`. difyplan's projection counts the
    /// workflow logs only (the rest of Dify's data is not projected), so it is a lower bound of the
    /// data: it can show that the data is above 3 × RAM, never that it is below RAM. Below
    /// 3 × RAM, or without a projection, PGTune's default "1x - 3x RAM" stands.
    pub fn from_projection(data_bytes: Option<u64>, memory_bytes: u64) -> DataSize {
        match data_bytes {
            Some(d) if u128::from(d) > u128::from(memory_bytes) * u128::from(GREATER_RAM_FACTOR) => {
                DataSize::GreaterRam
            }
            _ => DataSize::MidRam,
        }
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
    pub fn validate(&self) -> Result<(), HostError> {
        check_memory_bounds(self.memory_bytes)?;
        if self.cpus == 0 {
            return Err(HostError::NoCpus);
        }
        if !PG_VERSIONS.contains(&self.pg_version) {
            return Err(HostError::PgVersion(self.pg_version));
        }
        Ok(())
    }

    fn memory_kb(&self) -> u64 {
        self.memory_bytes / KIB
    }
}

fn check_memory_bounds(bytes: u64) -> Result<(), HostError> {
    if bytes < MIN_MEMORY_BYTES {
        return Err(HostError::MemoryBelowMin(bytes));
    }
    if bytes > MAX_MEMORY_BYTES {
        return Err(HostError::MemoryAboveMax(bytes));
    }
    Ok(())
}

/// A database host difyplan cannot tune for, with what to pass instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("database memory {} is below PGTune's minimum of 512 MiB — pass at least 512MiB", human_bytes(*.0))]
    MemoryBelowMin(u64),
    #[error(
        "database memory {} is above 16 TiB, where PGTune's values leave PostgreSQL's ranges — pass at most 16TiB",
        human_bytes(*.0)
    )]
    MemoryAboveMax(u64),
    #[error("--pg-cpus 0: PostgreSQL needs at least one CPU — pass the database's core count, e.g. --pg-cpus 2")]
    NoCpus,
    #[error(
        "PostgreSQL {0}: PGTune's formulas cover versions {from} to {to} — pass one of those (Dify ships 15)",
        from = PG_VERSIONS.start(),
        to = PG_VERSIONS.end()
    )]
    PgVersion(u32),
    /// A memory size that is not a number with a unit, or out of bounds.
    #[error("memory `{text}`: {problem}")]
    Memory { text: String, problem: MemoryProblem },
}

/// What is wrong with a written memory size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryProblem {
    #[error("no number — write a number and a unit, such as 16GiB, 512MiB or 8g")]
    NoNumber,
    #[error("no unit — write a number and a unit, such as 16GiB, 512MiB or 8g")]
    NoUnit,
    #[error("unknown unit `{0}` — write a number and a unit, such as 16GiB, 512MiB or 8g")]
    UnknownUnit(String),
    #[error("not a number — write a number and a unit, such as 16GiB, 512MiB or 8g")]
    NotANumber,
    #[error("{0}")]
    OutOfBounds(Box<HostError>),
}

/// Read a memory size such as `16GiB`, `16GB`, `512MiB`, `8g` or `1.5 GiB` into bytes.
///
/// GB and GiB (and every other prefix) are both taken as powers of 1024, as PGTune and
/// PostgreSQL do (PostgreSQL's `1GB` is 1024 MB), so `16GB` tunes exactly as PGTune's "16 GB".
/// Units are case-insensitive: b, k/kb/kib, m/mb/mib, g/gb/gib, t/tb/tib. A unit is required:
/// a bare number is ambiguous. Sizes must lie between 512 MiB and 16 TiB ([`PgHost::validate`]).
pub fn parse_memory(s: &str) -> Result<u64, HostError> {
    let text = s.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let bad = |problem: MemoryProblem| HostError::Memory { text: s.to_string(), problem };
    if number.is_empty() {
        return Err(bad(MemoryProblem::NoNumber));
    }
    let scale = match unit.as_str() {
        "" => return Err(bad(MemoryProblem::NoUnit)),
        "b" => 1,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => GIB,
        "t" | "tb" | "tib" => TIB,
        _ => return Err(bad(MemoryProblem::UnknownUnit(unit))),
    };
    let bytes = if number.contains('.') {
        let value: f64 = number.parse().map_err(|_| bad(MemoryProblem::NotANumber))?;
        let bytes = (value * scale as f64).round();
        // Anything at or above 2^64 is far beyond the 16 TiB bound; saturate and let the bound speak.
        if bytes >= u64::MAX as f64 { u64::MAX } else { bytes as u64 }
    } else {
        let value: u64 = number.parse().map_err(|_| bad(MemoryProblem::NotANumber))?;
        value.saturating_mul(scale)
    };
    check_memory_bounds(bytes).map_err(|e| bad(MemoryProblem::OutOfBounds(Box::new(e))))?;
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
    /// PGTune: `try` from 2 GB of shared_buffers, else `off`; `on` when difyplan's memory check
    /// counts on huge pages (see `pg_memory`).
    pub huge_pages: &'static str,
    /// With `huge_pages = on`: the 2 MiB pages to reserve (`vm.nr_hugepages`), from PostgreSQL's
    /// own shared memory arithmetic (docs/model.md §5).
    pub huge_pages_reserved: Option<u64>,
    /// PGTune's database-size input this tuning was made for.
    pub data_size: DataSize,
    /// work_mem as PGTune computes it; `work_mem_kb` is lower when the open backends would not
    /// fit with it (docs/model.md §5).
    pub pgtune_work_mem_kb: u64,
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
    tune_for(host, max_connections, DataSize::MidRam)
}

/// [`tune`] with PGTune's database-size input.
pub fn tune_for(host: &PgHost, max_connections: u64, data_size: DataSize) -> Tuning {
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
    let mut work_mem_kb = (ram_kb - shared_buffers_kb) / divisor;
    // JavaScript's Math.floor(workMem × 1.3) in doubles, so values equal PGTune's to the kB.
    let factor = match data_size {
        DataSize::LessRam => Some(WORK_MEM_LESS_RAM),
        DataSize::MidRam => None,
        DataSize::GreaterRam => Some(WORK_MEM_GREATER_RAM),
    };
    if let Some(f) = factor {
        work_mem_kb = (work_mem_kb as f64 * f).floor() as u64;
    }
    work_mem_kb = work_mem_kb.max(WORK_MEM_FLOOR_KB);

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
    // selectIoWorkers: a quarter of the CPUs, between PostgreSQL's default 3 and its maximum 32 —
    // but not with io_uring, which PGTune picks on Linux from 18 (and difyplan tunes Linux only).
    let io_workers =
        (version >= 18 && cpus > 0 && io_method.is_none()).then(|| (cpus / 4).clamp(3, 32)).filter(|&n| n > 3);

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
        // selectRandomPageCost: data that fits in RAM is read from the page cache, whatever the disk.
        random_page_cost: if data_size == DataSize::LessRam { 1.1 } else { host.storage.random_page_cost() },
        effective_io_concurrency: Some(host.storage.effective_io_concurrency()),
        work_mem_kb,
        huge_pages: if shared_buffers_kb >= HUGE_PAGES_MIN_SHARED_BUFFERS_KB { "try" } else { "off" },
        huge_pages_reserved: None,
        data_size,
        pgtune_work_mem_kb: work_mem_kb,
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

/// Bytes for people: MiB below 1 GiB (rounded up), GiB with one decimal above.
pub(crate) fn human_bytes(bytes: u64) -> String {
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
        // 7caef27: io_uring (Linux, 18) needs no io workers.
        assert_eq!(at(18, 16).io_workers, None);
        assert_eq!(at(18, 64).io_workers, None);
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
    fn database_size_input_of_pgtune_7caef27() {
        // PGTune's own tests: 64 GB, web, Linux, 15 — "less_ram" is ⌊mid × 1.3⌋, "greater_ram" ⌊mid × 0.9⌋.
        let h = host(64, 2);
        let mid = tune_for(&h, 100, DataSize::MidRam).work_mem_kb;
        assert_eq!(mid, tune(&h, 100).work_mem_kb);
        assert_eq!(tune_for(&h, 100, DataSize::LessRam).work_mem_kb, (mid as f64 * 1.3).floor() as u64);
        assert_eq!(tune_for(&h, 100, DataSize::GreaterRam).work_mem_kb, (mid as f64 * 0.9).floor() as u64);
        // The 4 MB floor applies after the factor.
        assert_eq!(tune_for(&host(4, 4), 9999, DataSize::GreaterRam).work_mem_kb, 4096);
        // Data in RAM: random_page_cost 1.1 even on spinning disks.
        let hdd = PgHost { storage: Storage::Hdd, ..h };
        assert_eq!(tune_for(&hdd, 100, DataSize::LessRam).random_page_cost, 1.1);
        assert_eq!(tune_for(&hdd, 100, DataSize::GreaterRam).random_page_cost, 4.0);
    }

    #[test]
    fn the_projection_only_ever_says_more_than_three_times_ram() {
        let ram = 16 * GIB;
        assert_eq!(DataSize::from_projection(None, ram), DataSize::MidRam);
        assert_eq!(DataSize::from_projection(Some(0), ram), DataSize::MidRam);
        assert_eq!(DataSize::from_projection(Some(3 * ram), ram), DataSize::MidRam);
        assert_eq!(DataSize::from_projection(Some(3 * ram + 1), ram), DataSize::GreaterRam);
        assert_eq!(DataSize::from_projection(Some(u64::MAX), u64::MAX), DataSize::MidRam);
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
            let err = parse_memory(input).expect_err(input).to_string();
            assert!(err.contains(why), "{input}: {err}");
            assert!(err.contains("16GiB") || err.contains("pass"), "{input}: {err}");
        }
    }

    #[test]
    fn validate_host() {
        assert!(DEFAULT_HOST.validate().is_ok());
        assert_eq!(PgHost { cpus: 0, ..DEFAULT_HOST }.validate(), Err(HostError::NoCpus));
        assert!(PgHost { pg_version: 9, ..DEFAULT_HOST }.validate().unwrap_err().to_string().contains("10 to 18"));
        assert!(PgHost { memory_bytes: MIB, ..DEFAULT_HOST }.validate().is_err());
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
