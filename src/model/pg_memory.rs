//! Whether PostgreSQL's memory adds up on its host: the shared memory as PostgreSQL computes it,
//! huge pages and their reservation, every open backend's own memory, work_mem and autovacuum.

use super::pgtune::{self, DataSize, PgHost, Tuning, human_bytes};
use serde::Serialize;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// What one open backend costs besides work_mem. Measured on PostgreSQL 15: 1.06–1.10 MiB of
/// private memory idle, 1.41–1.47 MiB after a catalog query left it idle in transaction,
/// whatever max_connections is (docs/model.md §9); rounded up to 2 MiB, the published accurate
/// measure ("under 2 MiB per connection"). Page tables come on top without huge pages.
pub const PER_BACKEND_OVERHEAD_BYTES: u64 = 2 * MIB;

/// PostgreSQL's shared memory per 1 kB of shared_buffers, in ten-thousandths: the buffers plus
/// their descriptors, the buffer-mapping hash table and the checkpointer's queue. Measured with
/// PostgreSQL 15's `postgres -C shared_memory_size` from 128 MB to 256 GB of shared_buffers: the
/// ratio (less wal_buffers, the slots and 8 MB) ranges 1.0199–1.0225 as the hash tables step in
/// powers of two (docs/model.md §5); 1.0225 is the top of that range.
const SHARED_BUFFERS_PER_10K: u64 = 10_225;
/// Shared memory per backend slot (max_connections, autovacuum workers, background workers, WAL
/// senders, the launcher): PROC entries, the lock table (max_locks_per_transaction 64 per slot),
/// predicate locks, snapshot arrays. Measured on PostgreSQL 15: 47.9 kB per max_connections
/// (100 → 100,000 adds 4,670 MB), 47.8 kB per autovacuum worker, 49.5 kB per worker process,
/// 47.9 kB per WAL sender (10,000 more of each); 50 kB covers all four (docs/model.md §5).
const SHARED_PER_SLOT_BYTES: u64 = 50 * KIB;
/// What does not scale with any setting: 8 MB is the least that keeps the formula at or above
/// every measurement from 128 MB to 256 GB; 12 MB leaves a margin.
const SHARED_FIXED_BYTES: u64 = 12 * MIB;
/// PostgreSQL's defaults for what difyplan does not set (the same in 10–18): the slots
/// `MaxBackends` counts besides max_connections.
const DEFAULT_AUTOVACUUM_MAX_WORKERS: u64 = 3;
const AUTOVACUUM_LAUNCHER: u64 = 1;
const DEFAULT_MAX_WAL_SENDERS: u64 = 10;
/// Linux's default huge page size on x86-64 and arm64.
pub const HUGE_PAGE_BYTES: u64 = 2 * MIB;
/// Without huge pages every backend that touches all of the shared memory maps it with 4 kB
/// pages: 8 bytes of page table per 4 kB page.
const PAGE_TABLE_BYTES_PER_PAGE: u64 = 8;
const SMALL_PAGE_BYTES: u64 = 4 * KIB;
/// difyplan counts on huge pages (sets `huge_pages = on`) when the open backends' page tables
/// could take more than this share of the host: below it, the page tables are counted instead.
const PAGE_TABLES_SHARE_FOR_HUGE_PAGES: u64 = 10;
/// work_mem allowances per open backend: Dify's queries are short lookups and writes (11–28 ms
/// of PostgreSQL CPU per request, docs/model.md §8), one sort or hash at a time. Any open
/// backend may be running one at any moment, so every open backend gets one (docs/model.md §5).
pub const WORK_MEM_ALLOWANCES_PER_BACKEND: u64 = 1;
/// The lowest work_mem difyplan sets when PGTune's would not fit the open backends: 64 kB,
/// PostgreSQL's minimum and PGTune's own floor before its 4 MB one. A sort above it spills to a
/// temporary file, which is slower but cannot exhaust memory.
pub const WORK_MEM_MIN_KB: u64 = 64;
/// PostgreSQL before 17 gives autovacuum's dead-tuple list at most 1 GB whatever
/// autovacuum_work_mem says (PostgreSQL's documentation of `autovacuum_work_mem`).
const AUTOVACUUM_CAP_BEFORE_17_KB: u64 = 1024 * 1024;

/// Whether the backends that can be open fit the database's memory, and what would.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct MemoryCheck {
    pub fits: bool,
    /// Backends that can be open at once: the plan's worst case, at most max_connections.
    pub open_backends: u64,
    /// shared memory + open backends × (overhead + page tables + work_mem) + autovacuum.
    pub needed_bytes: u64,
    /// The host's memory.
    pub available_bytes: u64,
    /// PostgreSQL's shared memory for these settings (what `postgres -C shared_memory_size`
    /// reports), or the reserved huge pages when the plan counts on them.
    pub shared_memory_bytes: u64,
    /// Page tables of the open backends mapping the shared memory with 4 kB pages (0 with huge pages).
    pub page_tables_bytes: u64,
    /// Autovacuum workers × their work memory.
    pub autovacuum_bytes: u64,
    /// The most backends that fit open at once, with max_connections set to that many and
    /// PGTune re-tuned for it.
    pub largest_safe_backends: u64,
    /// Backend overhead + page tables + work_mem × allowances, at the planned work_mem.
    pub per_backend_bytes: u64,
    /// The smallest whole number of GiB at which these backends fit after re-tuning; `None`
    /// when not even 16 TiB would.
    pub memory_to_fit_bytes: Option<u64>,
    /// One sentence: what fits, or what to change.
    pub remedy: String,
    /// Set when the plan counts on huge pages: why, and how many pages to reserve.
    pub huge_pages_advice: Option<String>,
    /// Set when work_mem is below PGTune's so that the open backends fit.
    pub work_mem_advice: Option<String>,
}

/// PostgreSQL's shared memory for these settings, as `postgres -C shared_memory_size` computes
/// it on PostgreSQL 15 (at or above it for every host tried, docs/model.md §5).
pub fn shared_memory_bytes(t: &Tuning) -> u64 {
    let buffers = u128::from(t.shared_buffers_kb) * u128::from(KIB) * u128::from(SHARED_BUFFERS_PER_10K);
    let buffers = buffers.div_ceil(10_000);
    let slots = u128::from(backend_slots(t)) * u128::from(SHARED_PER_SLOT_BYTES);
    let wal = u128::from(t.wal_buffers_kb) * u128::from(KIB);
    u64::try_from(buffers + slots + wal + u128::from(SHARED_FIXED_BYTES)).unwrap_or(u64::MAX)
}

/// PostgreSQL's `MaxBackends` plus the WAL senders: every process that gets a slot in shared memory.
fn backend_slots(t: &Tuning) -> u64 {
    t.max_connections
        .saturating_add(t.autovacuum_max_workers.unwrap_or(DEFAULT_AUTOVACUUM_MAX_WORKERS))
        .saturating_add(AUTOVACUUM_LAUNCHER)
        .saturating_add(t.worker_processes())
        .saturating_add(DEFAULT_MAX_WAL_SENDERS)
}

/// The 2 MiB huge pages PostgreSQL needs for these settings (`vm.nr_hugepages`); PostgreSQL
/// 15's `postgres -C shared_memory_size_in_huge_pages` is at most this.
pub fn huge_pages_needed(t: &Tuning) -> u64 {
    shared_memory_bytes(t).div_ceil(HUGE_PAGE_BYTES)
}

/// Autovacuum workers × the memory each may take (autovacuum_work_mem, else maintenance_work_mem).
fn autovacuum_bytes(t: &Tuning, pg_version: u32) -> u64 {
    let workers = t.autovacuum_max_workers.unwrap_or(DEFAULT_AUTOVACUUM_MAX_WORKERS);
    let mut each_kb = t.autovacuum_work_mem_kb.unwrap_or(t.maintenance_work_mem_kb);
    if pg_version < 17 {
        each_kb = each_kb.min(AUTOVACUUM_CAP_BEFORE_17_KB);
    }
    workers.saturating_mul(each_kb).saturating_mul(KIB)
}

/// The tuning the plan renders and its memory check: PGTune's settings, then `huge_pages = on`
/// with its reservation when page tables would take more than a tenth of the host, then
/// work_mem lowered (not below 64 kB) when every open backend holding one work_mem would not fit
/// what is left. `fits` is false when even that leaves the host short.
pub fn settle(host: &PgHost, mut tuning: Tuning, open_backends: u64) -> (Tuning, MemoryCheck) {
    let open = open_backends.min(tuning.max_connections);
    let shared = shared_memory_bytes(&tuning);
    let page_tables = u128::from(shared / SMALL_PAGE_BYTES * PAGE_TABLE_BYTES_PER_PAGE) * u128::from(open);
    let huge = page_tables * u128::from(PAGE_TABLES_SHARE_FOR_HUGE_PAGES) > u128::from(host.memory_bytes);
    let (shared_counted, page_tables_bytes) = if huge {
        let pages = huge_pages_needed(&tuning);
        tuning.huge_pages = "on";
        tuning.huge_pages_reserved = Some(pages);
        (pages.saturating_mul(HUGE_PAGE_BYTES), 0)
    } else {
        (shared, u64::try_from(page_tables).unwrap_or(u64::MAX))
    };
    let autovacuum = autovacuum_bytes(&tuning, host.pg_version);
    let backends = u128::from(open) * u128::from(PER_BACKEND_OVERHEAD_BYTES);
    let fixed = u128::from(shared_counted) + u128::from(page_tables_bytes) + backends + u128::from(autovacuum);
    let room = u128::from(host.memory_bytes).saturating_sub(fixed);
    let allowances = u128::from(open) * u128::from(WORK_MEM_ALLOWANCES_PER_BACKEND);
    let pgtune_work_mem = tuning.work_mem_kb;
    if let Some(cap) = room.checked_div(allowances) {
        let cap_kb = u64::try_from(cap / u128::from(KIB)).unwrap_or(u64::MAX);
        if cap_kb < tuning.work_mem_kb {
            tuning.work_mem_kb = cap_kb.max(WORK_MEM_MIN_KB);
        }
    }
    let work_mem = allowances * u128::from(tuning.work_mem_kb) * u128::from(KIB);
    let needed_bytes = u64::try_from(fixed + work_mem).unwrap_or(u64::MAX);
    let fits = needed_bytes <= host.memory_bytes;
    let per_backend_bytes = PER_BACKEND_OVERHEAD_BYTES
        .saturating_add(page_tables_bytes.checked_div(open).unwrap_or(0))
        .saturating_add(tuning.work_mem_kb.saturating_mul(KIB).saturating_mul(WORK_MEM_ALLOWANCES_PER_BACKEND));

    let huge_pages_advice = tuning.huge_pages_reserved.map(|pages| {
        format!(
            "huge_pages = on (in every rendered PostgreSQL configuration): {open} backends mapping {} of shared memory \
                with 4 kB pages could spend up to {} on page tables. Reserve the pages on the database \
                host before PostgreSQL starts, or it will not start: vm.nr_hugepages = {pages} (2 MiB \
                each, {} — PostgreSQL's own shared memory for these settings; check with `postgres -C \
                shared_memory_size_in_huge_pages`); on Kubernetes the pod requests hugepages-2Mi: {}Mi",
            human_bytes(shared),
            human_bytes(u64::try_from(page_tables).unwrap_or(u64::MAX)),
            human_bytes(pages * HUGE_PAGE_BYTES),
            pages * 2
        )
    });
    let work_mem_advice = (tuning.work_mem_kb < pgtune_work_mem).then(|| {
        format!(
            "work_mem = {} instead of PGTune's {}: {open} open backends, each with one sort or hash at \
                a time, must fit the {} left after shared memory, backend overhead{} and autovacuum; \
                larger sorts spill to temporary files. Fewer open backends (a pooler in front of \
                PostgreSQL) or more memory give PGTune's value back.",
            pgtune::format_kb(tuning.work_mem_kb),
            pgtune::format_kb(pgtune_work_mem),
            human_bytes(u64::try_from(room).unwrap_or(u64::MAX)),
            if page_tables_bytes > 0 { ", page tables" } else { "" }
        )
    });

    let largest = largest_safe_backends(host, tuning.data_size);
    let memory_to_fit_bytes = memory_to_fit(host, tuning.max_connections, open, tuning.data_size);
    let remedy = if fits {
        format!(
            "fits: {open} open backends and {} slots need about {} of {}; up to {largest} open \
                backends would fit",
            tuning.max_connections,
            human_bytes(needed_bytes),
            human_bytes(host.memory_bytes)
        )
    } else {
        let more_memory = match memory_to_fit_bytes {
            Some(bytes) => format!("or give PostgreSQL at least {} of memory (--pg-memory)", human_bytes(bytes)),
            None => "no host up to 16 TiB holds that many; split the load across databases".to_string(),
        };
        let fewer = if largest == 0 {
            "not one connection fits beside the shared memory".to_string()
        } else {
            format!(
                "bring the connections that can be open to {largest} or less (smaller pools, fewer \
                    processes, or a pooler: --pooler pgbouncer)"
            )
        };
        format!(
            "{open} open backends and {} slots need about {} (work_mem at its {WORK_MEM_MIN_KB} kB \
                floor) but PostgreSQL has {}: {fewer}, {more_memory}",
            tuning.max_connections,
            human_bytes(needed_bytes),
            human_bytes(host.memory_bytes)
        )
    };
    let check = MemoryCheck {
        fits,
        open_backends: open,
        needed_bytes,
        available_bytes: host.memory_bytes,
        shared_memory_bytes: shared_counted,
        page_tables_bytes,
        autovacuum_bytes: autovacuum,
        largest_safe_backends: largest,
        per_backend_bytes,
        memory_to_fit_bytes,
        remedy,
        huge_pages_advice,
        work_mem_advice,
    };
    (tuning, check)
}

/// Whether `open` backends of `max_connections` fit once PGTune re-tunes for them.
pub fn fits_after_tuning(host: &PgHost, max_connections: u64, open: u64, data_size: DataSize) -> bool {
    needed_at_floor(host, &pgtune::tune_for(host, max_connections, data_size), open) <= host.memory_bytes
}

/// [`settle`]'s need with work_mem at its floor: whether any work_mem lets the backends fit.
fn needed_at_floor(host: &PgHost, tuning: &Tuning, open: u64) -> u64 {
    let open = open.min(tuning.max_connections);
    let shared = shared_memory_bytes(tuning);
    let page_tables = u128::from(shared / SMALL_PAGE_BYTES * PAGE_TABLE_BYTES_PER_PAGE) * u128::from(open);
    let shared_side = if page_tables * u128::from(PAGE_TABLES_SHARE_FOR_HUGE_PAGES) > u128::from(host.memory_bytes) {
        u128::from(huge_pages_needed(tuning).saturating_mul(HUGE_PAGE_BYTES))
    } else {
        u128::from(shared) + page_tables
    };
    let work_mem_kb = tuning.work_mem_kb.min(WORK_MEM_MIN_KB);
    let per_backend =
        u128::from(PER_BACKEND_OVERHEAD_BYTES) + u128::from(work_mem_kb * KIB * WORK_MEM_ALLOWANCES_PER_BACKEND);
    let total = shared_side + u128::from(open) * per_backend + u128::from(autovacuum_bytes(tuning, host.pg_version));
    u64::try_from(total).unwrap_or(u64::MAX)
}

fn largest_safe_backends(host: &PgHost, data_size: DataSize) -> u64 {
    let fits = |n: u64| fits_after_tuning(host, n, n, data_size);
    // Every backend costs at least the overhead, so none past this bound can fit.
    let bound = host.memory_bytes / PER_BACKEND_OVERHEAD_BYTES;
    let (mut lo, mut hi) = (0, bound);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) { lo = mid } else { hi = mid - 1 }
    }
    // The need is not monotone where the backends' page tables tip the plan onto huge pages,
    // so settle on an edge: fits at n, not at n + 1.
    while lo > 0 && !fits(lo) {
        lo -= 1;
    }
    while lo < bound && fits(lo + 1) {
        lo += 1;
    }
    lo
}

fn memory_to_fit(host: &PgHost, max_connections: u64, open: u64, data_size: DataSize) -> Option<u64> {
    let at = |gib: u64| PgHost { memory_bytes: gib * GIB, ..*host };
    let (mut lo, mut hi) = (1, pgtune::MAX_MEMORY_BYTES / GIB);
    if !fits_after_tuning(&at(hi), max_connections, open, data_size) {
        return None;
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fits_after_tuning(&at(mid), max_connections, open, data_size) { hi = mid } else { lo = mid + 1 }
    }
    Some(lo * GIB)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pgtune::{DEFAULT_HOST, Storage, tune};

    fn host(gib: u64, cpus: u32) -> PgHost {
        PgHost { memory_bytes: gib * GIB, cpus, storage: Storage::Ssd, pg_version: 15 }
    }

    fn check(h: &PgHost, max_connections: u64, open: u64) -> (Tuning, MemoryCheck) {
        settle(h, tune(h, max_connections), open)
    }

    #[test]
    fn shared_memory_matches_postgresql_15_measurements() {
        // `postgres -C shared_memory_size_in_huge_pages` on PostgreSQL 15 with PGTune's settings:
        // 4 GiB, 2 CPUs, 930 connections → 556; 16 GiB at 3,930 → 2,195; at 7,640 → 2,280.
        for (gib, cpus, conns, measured) in [(4, 2, 930, 556), (16, 12, 3930, 2195), (16, 12, 7640, 2280)] {
            let pages = huge_pages_needed(&tune(&host(gib, cpus), conns));
            assert!(pages >= measured, "{gib} GiB {conns}: {pages} < {measured}");
            assert!(pages <= measured + measured / 100 + 8, "{gib} GiB {conns}: {pages} far above {measured}");
        }
    }

    #[test]
    fn many_backends_count_on_huge_pages_with_the_reservation() {
        let (t, c) = check(&host(16, 12), 3930, 3930);
        assert_eq!(t.huge_pages, "on");
        let pages = t.huge_pages_reserved.expect("reserved");
        assert!(pages >= 2195);
        assert_eq!(c.shared_memory_bytes, pages * HUGE_PAGE_BYTES);
        assert_eq!(c.page_tables_bytes, 0);
        let advice = c.huge_pages_advice.expect("advice");
        assert!(advice.contains(&format!("vm.nr_hugepages = {pages}")), "{advice}");
        assert!(t.settings().contains(&("huge_pages", "on".to_string())));
    }

    #[test]
    fn few_backends_keep_pgtune_huge_pages_and_count_their_page_tables() {
        // 8 GiB, 100 backends: 100 × 2 GiB ÷ 512 = 400 MiB of page tables, under a tenth.
        let (t, c) = check(&host(8, 2), 100, 100);
        assert_eq!(t.huge_pages, "try");
        assert_eq!(t.huge_pages_reserved, None);
        assert!(c.page_tables_bytes > 0);
        assert!(c.fits, "{}", c.remedy);
        assert_eq!(c.work_mem_advice, None);
        assert_eq!(t.work_mem_kb, t.pgtune_work_mem_kb);
    }

    #[test]
    fn work_mem_is_lowered_so_every_open_backend_fits() {
        // 4 GiB at 1,000 connections: PGTune's 4 MB × 1,000 alone is the whole host.
        let h = host(4, 2);
        let (t, c) = check(&h, 1000, 1000);
        assert!(t.work_mem_kb < t.pgtune_work_mem_kb);
        assert!(t.work_mem_kb >= WORK_MEM_MIN_KB);
        assert!(c.fits, "{}", c.remedy);
        assert!(c.needed_bytes <= h.memory_bytes);
        assert!(c.work_mem_advice.is_some());
        // What is counted adds up to the need.
        let sum = c.shared_memory_bytes
            + c.page_tables_bytes
            + c.autovacuum_bytes
            + 1000 * (PER_BACKEND_OVERHEAD_BYTES + t.work_mem_kb * KIB);
        assert_eq!(sum, c.needed_bytes);
    }

    #[test]
    fn too_many_backends_do_not_fit_and_say_what_would() {
        // 16 GiB at 7,640 slots, 7,628 open: 7,628 × 2 MiB is 14.9 GiB beside 4 GiB of shared memory.
        let h = host(16, 12);
        let (_, c) = check(&h, 7640, 7628);
        assert!(!c.fits);
        assert!(c.needed_bytes > h.memory_bytes);
        assert!(c.largest_safe_backends < 7628);
        let to_fit = c.memory_to_fit_bytes.expect("some host holds them");
        assert!(fits_after_tuning(&PgHost { memory_bytes: to_fit, ..h }, 7640, 7628, DataSize::MidRam));
        assert!(!fits_after_tuning(&PgHost { memory_bytes: to_fit - GIB, ..h }, 7640, 7628, DataSize::MidRam));
        assert!(c.remedy.contains(&format!("to {} or less", c.largest_safe_backends)), "{}", c.remedy);
    }

    #[test]
    fn vendor_500_qps_database_holds_every_slot_with_pgtune_work_mem() {
        // 16 cores, 128 GB, max_connections 12,800, every slot open: 32 GiB of shared_buffers on
        // huge pages + 12,800 × (2 MiB + 4 MB) + 4 autovacuum workers × 1 GB.
        let h = PgHost { memory_bytes: 128 * GIB, cpus: 16, ..DEFAULT_HOST };
        let (t, c) = check(&h, 12_800, 12_800);
        assert!(c.fits, "{}", c.remedy);
        assert_eq!(t.huge_pages, "on");
        assert_eq!(t.work_mem_kb, t.pgtune_work_mem_kb);
    }

    #[test]
    fn unused_slots_cost_only_shared_memory() {
        let h = host(2, 2);
        let (_, c) = check(&h, 2000, 100);
        assert!(c.fits, "{}", c.remedy);
        assert_eq!(c.open_backends, 100);
    }

    #[test]
    fn autovacuum_counts_workers_times_their_memory_capped_before_17() {
        // 64 GiB, 16 CPUs: 4 workers × autovacuum_work_mem 2 GB, capped at 1 GB before 17.
        let h = PgHost { cpus: 16, ..host(64, 16) };
        assert_eq!(autovacuum_bytes(&tune(&h, 200), 15), 4 * GIB);
        assert_eq!(autovacuum_bytes(&tune(&h, 200), 17), 8 * GIB);
        // 4 GiB, 2 CPUs: PostgreSQL's 3 workers × maintenance_work_mem 256 MB.
        assert_eq!(autovacuum_bytes(&tune(&DEFAULT_HOST, 100), 15), 768 * MIB);
    }

    #[test]
    fn largest_safe_is_the_edge_of_fitting() {
        for gib in [1, 2, 4, 16] {
            let h = host(gib, 4);
            let n = largest_safe_backends(&h, DataSize::MidRam);
            assert!(fits_after_tuning(&h, n, n, DataSize::MidRam), "{gib} GiB, {n}");
            assert!(!fits_after_tuning(&h, n + 1, n + 1, DataSize::MidRam), "{gib} GiB, {n}");
            let (_, c) = check(&h, n, n);
            assert!(c.fits, "{gib} GiB, {n}: {}", c.remedy);
        }
    }

    #[test]
    fn settle_is_total() {
        for bytes in [0, 1, 1023, pgtune::MAX_MEMORY_BYTES, u64::MAX] {
            for conns in [0, 1, u64::MAX] {
                let h = PgHost { memory_bytes: bytes, cpus: 2, storage: Storage::Hdd, pg_version: 15 };
                if bytes <= pgtune::MAX_MEMORY_BYTES {
                    let _ = settle(&h, tune(&h, conns.min(1_000_000)), conns);
                }
                let _ = needed_at_floor(&h, &tune(&h, conns), conns);
            }
        }
    }
}
