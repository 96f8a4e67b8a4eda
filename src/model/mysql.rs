//! MySQL's own tuning for a plan: memory per connection (a thread and its stack, per-session
//! buffers when a query uses them), `innodb_buffer_pool_size` from the host's memory less what
//! the connections may take, and the redo log (docs/model.md §11). Only the settings Dify's
//! `db_mysql` service takes from `.env` are written.

use serde::Serialize;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// MySQL 8.0 defaults (reference manual, server system variables), per connection:
/// `thread_stack` (1 MiB on 64-bit builds) is taken when the connection's thread starts; the
/// other four are allocated when a query needs them, each up to its size.
pub const THREAD_STACK: u64 = MIB;
pub const SORT_BUFFER_SIZE: u64 = 256 * KIB;
pub const JOIN_BUFFER_SIZE: u64 = 256 * KIB;
pub const READ_BUFFER_SIZE: u64 = 128 * KIB;
pub const READ_RND_BUFFER_SIZE: u64 = 256 * KIB;
/// MySQLTuner's per-thread buffers: the five above added up (1,920 KiB with 8.0's defaults);
/// times `max_connections` it is MySQLTuner's "maximum possible memory" of the connections.
pub const PER_CONNECTION_BYTES: u64 =
    THREAD_STACK + SORT_BUFFER_SIZE + JOIN_BUFFER_SIZE + READ_BUFFER_SIZE + READ_RND_BUFFER_SIZE;
/// MySQLTuner's server buffers besides the buffer pool, 8.0 defaults: `key_buffer_size` 8 MiB,
/// the in-memory temporary table limit `tmp_table_size` 16 MiB, `innodb_log_buffer_size` 16 MiB
/// (the query cache is gone in 8.0).
pub const SERVER_BUFFERS_BYTES: u64 = (8 + 16 + 16) * MIB;
/// Share of the host left to the operating system, the rest of mysqld (performance_schema,
/// table caches) and a monitoring agent: difyplan's assumption, docs/model.md §11.
pub const HOST_RESERVE: f64 = 0.15;
/// The buffer pool is resized in chunks of `innodb_buffer_pool_chunk_size` (128 MiB): a size
/// that is not a multiple is rounded up by the server, so difyplan writes a multiple.
pub const BUFFER_POOL_CHUNK: u64 = 128 * MIB;
/// Dify's compose fallbacks (`db_mysql`'s command in 1.16.1).
pub const DIFY_BUFFER_POOL: &str = "512M";
pub const DIFY_FLUSH_LOG_AT_TRX_COMMIT: u8 = 2;

/// `innodb_dedicated_server`'s buffer pool for a host (MySQL 8.0 manual): 128 MiB below 1 GiB,
/// half of 1–4 GiB, 75 % above. difyplan takes it as the ceiling.
pub fn dedicated_buffer_pool(memory: u64) -> u64 {
    if memory < GIB {
        128 * MIB
    } else if memory <= 4 * GIB {
        memory / 2
    } else {
        memory / 4 * 3
    }
}

/// `innodb_dedicated_server`'s redo log file size for a host (MySQL 8.0.14–8.0.29 manual):
/// 512 MiB below 8 GiB, 1 GiB to 128 GiB, 2 GiB above (two files, `innodb_log_files_in_group`).
pub fn dedicated_log_file(memory: u64) -> u64 {
    if memory < 8 * GIB {
        512 * MIB
    } else if memory <= 128 * GIB {
        GIB
    } else {
        2 * GIB
    }
}

/// The MySQL settings of a plan, with the arithmetic that produced them.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct MysqlTuning {
    pub max_connections: u64,
    /// Connections the server may hold at once: `max_connections`, + 1 for an account with
    /// `CONNECTION_ADMIN`.
    pub connections: u64,
    /// MySQLTuner's per-thread buffers at MySQL 8.0's defaults.
    pub per_connection_bytes: u64,
    /// `connections × per_connection_bytes`.
    pub connections_bytes: u64,
    pub server_buffers_bytes: u64,
    pub host_memory_bytes: u64,
    pub innodb_buffer_pool_bytes: u64,
    pub innodb_log_file_bytes: u64,
    pub innodb_flush_log_at_trx_commit: u8,
    /// The buffer pool of at least one chunk and the connections fit the host.
    pub fits: bool,
    pub reasoning: Vec<String>,
}

/// A size as MySQL's options take it: `512M`, `3G`.
pub fn format_size(bytes: u64) -> String {
    if bytes.is_multiple_of(GIB) {
        format!("{}G", bytes / GIB)
    } else if bytes.is_multiple_of(MIB) {
        format!("{}M", bytes / MIB)
    } else {
        format!("{}K", bytes.div_ceil(KIB))
    }
}

/// Tune MySQL for `max_connections` on a host of `memory` bytes.
pub fn tune(memory: u64, max_connections: u64, extra_connections: u64) -> MysqlTuning {
    let connections = max_connections.saturating_add(extra_connections);
    let connections_bytes = connections.saturating_mul(PER_CONNECTION_BYTES);
    let reserve = (memory as f64 * HOST_RESERVE) as u64;
    let room = memory.saturating_sub(reserve).saturating_sub(SERVER_BUFFERS_BYTES).saturating_sub(connections_bytes);
    let ceiling = dedicated_buffer_pool(memory);
    let pool = room.min(ceiling) / BUFFER_POOL_CHUNK * BUFFER_POOL_CHUNK;
    let fits = pool >= BUFFER_POOL_CHUNK;
    let pool = pool.max(BUFFER_POOL_CHUNK);
    let log = dedicated_log_file(memory);
    let mib = |b: u64| b / MIB;
    let reasoning = vec![
        format!(
            "connections {connections} (max_connections {max_connections} + {extra_connections} for CONNECTION_ADMIN) × \
             {} KiB per connection (thread_stack 1024 + sort 256 + join 256 + read 128 + read_rnd 256 KiB, \
             MySQLTuner's per-thread buffers) = {} MiB",
            PER_CONNECTION_BYTES / KIB,
            mib(connections_bytes)
        ),
        format!(
            "innodb_buffer_pool_size = min({} MiB (innodb_dedicated_server for {} MiB), {} MiB host − {} MiB \
             reserve ({:.0} %) − {} MiB server buffers − {} MiB connections), in 128 MiB chunks = {} MiB",
            mib(ceiling),
            mib(memory),
            mib(memory),
            mib(reserve),
            HOST_RESERVE * 100.0,
            mib(SERVER_BUFFERS_BYTES),
            mib(connections_bytes),
            mib(pool)
        ),
        format!("innodb_log_file_size {} MiB (innodb_dedicated_server for {} MiB)", mib(log), mib(memory)),
    ];
    MysqlTuning {
        max_connections,
        connections,
        per_connection_bytes: PER_CONNECTION_BYTES,
        connections_bytes,
        server_buffers_bytes: SERVER_BUFFERS_BYTES,
        host_memory_bytes: memory,
        innodb_buffer_pool_bytes: pool,
        innodb_log_file_bytes: log,
        innodb_flush_log_at_trx_commit: DIFY_FLUSH_LOG_AT_TRX_COMMIT,
        fits,
        reasoning,
    }
}

impl MysqlTuning {
    /// The `.env` keys of Dify's `db_mysql` service, in `db-mysql.env.example` order.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("MYSQL_INNODB_LOG_FILE_SIZE".into(), format_size(self.innodb_log_file_bytes)),
            ("MYSQL_INNODB_FLUSH_LOG_AT_TRX_COMMIT".into(), self.innodb_flush_log_at_trx_commit.to_string()),
            ("MYSQL_MAX_CONNECTIONS".into(), self.max_connections.to_string()),
            ("MYSQL_INNODB_BUFFER_POOL_SIZE".into(), format_size(self.innodb_buffer_pool_bytes)),
        ]
    }

    /// The server's options (mysqld names), as `db_mysql`'s command passes them.
    pub fn settings(&self) -> Vec<(String, String)> {
        vec![
            ("max_connections".into(), self.max_connections.to_string()),
            ("innodb_buffer_pool_size".into(), format_size(self.innodb_buffer_pool_bytes)),
            ("innodb_log_file_size".into(), format_size(self.innodb_log_file_bytes)),
            ("innodb_flush_log_at_trx_commit".into(), self.innodb_flush_log_at_trx_commit.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand: 4 GiB, max_connections 200 (+1): 201 × 1,920 KiB = 376 MiB; room 4096 − 614
    /// − 40 − 376 = 3065 MiB; ceiling 2048 MiB (half of 4 GiB) → 2048 MiB.
    #[test]
    fn four_gib_by_hand() {
        let t = tune(4 * GIB, 200, 1);
        assert_eq!(PER_CONNECTION_BYTES, 1920 * KIB);
        assert_eq!(t.connections_bytes / MIB, 376);
        assert_eq!(t.innodb_buffer_pool_bytes, 2 * GIB);
        assert_eq!(format_size(t.innodb_buffer_pool_bytes), "2G");
        assert_eq!(format_size(t.innodb_log_file_bytes), "512M");
        assert!(t.fits);
    }

    /// Many connections eat into the pool: 4 GiB with 1,500 connections (2,812 MiB) leaves
    /// 4096 − 614 − 40 − 2812 = 630 MiB → 512 MiB in chunks.
    #[test]
    fn connections_come_first() {
        let t = tune(4 * GIB, 1499, 1);
        assert_eq!(t.innodb_buffer_pool_bytes, 512 * MIB);
        assert!(t.fits);
        let t = tune(4 * GIB, 2000, 0);
        assert!(!t.fits, "{t:?}");
    }

    #[test]
    fn dedicated_formulas() {
        assert_eq!(dedicated_buffer_pool(512 * MIB), 128 * MIB);
        assert_eq!(dedicated_buffer_pool(2 * GIB), GIB);
        assert_eq!(dedicated_buffer_pool(16 * GIB), 12 * GIB);
        assert_eq!(dedicated_log_file(16 * GIB), GIB);
        assert_eq!(dedicated_log_file(256 * GIB), 2 * GIB);
    }
}
