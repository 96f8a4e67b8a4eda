//! The Dify settings difyplan writes, with what each one does. Every key here exists in Dify's
//! `docker/.env.example` or in the plugin daemon's documented settings (a test holds it to that).

/// Where a setting takes effect. Compose shares one environment between api, worker and
/// worker_beat, so a value for one service only must be set on that service (docs/model.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read by every service that takes the shared environment.
    Shared,
    /// Only this compose service must get the value (a per-service `environment:` override).
    Service(&'static str),
    /// A recommendation that needs values only the operator has (hosts): written commented out.
    Suggested,
}

/// One key: its name and a line that says what it does.
pub struct Key {
    pub name: &'static str,
    pub doc: &'static str,
}

pub const SERVER_WORKER_AMOUNT: Key = Key {
    name: "SERVER_WORKER_AMOUNT",
    doc: "gunicorn worker processes per api container; each has its own SQLAlchemy pool",
};
pub const SERVER_WORKER_CLASS: Key =
    Key { name: "SERVER_WORKER_CLASS", doc: "gunicorn worker class; gevent serves many requests per process" };
pub const SERVER_WORKER_CONNECTIONS: Key =
    Key { name: "SERVER_WORKER_CONNECTIONS", doc: "greenlets (requests in flight) one api process admits" };
pub const SQLALCHEMY_POOL_SIZE: Key =
    Key { name: "SQLALCHEMY_POOL_SIZE", doc: "connections a process keeps open in its pool" };
pub const SQLALCHEMY_MAX_OVERFLOW: Key = Key {
    name: "SQLALCHEMY_MAX_OVERFLOW",
    doc: "extra connections a process may open above the pool size, closed on return",
};
pub const CELERY_WORKER_CLASS: Key = Key {
    name: "CELERY_WORKER_CLASS",
    doc: "Celery pool; empty means gevent, one process whose greenlets share one pool",
};
pub const CELERY_WORKER_AMOUNT: Key =
    Key { name: "CELERY_WORKER_AMOUNT", doc: "Celery -c: tasks (streaming runs included) one worker runs at once" };
pub const CELERY_AUTO_SCALE: Key =
    Key { name: "CELERY_AUTO_SCALE", doc: "off, so the worker's concurrency is the fixed value the budget counted" };
pub const API_WEBSOCKET_WORKER_AMOUNT: Key =
    Key { name: "API_WEBSOCKET_WORKER_AMOUNT", doc: "gunicorn processes of api_websocket (collaboration profile)" };
pub const API_WEBSOCKET_WORKER_CONNECTIONS: Key =
    Key { name: "API_WEBSOCKET_WORKER_CONNECTIONS", doc: "websocket sessions one api_websocket process admits" };
pub const POSTGRES_MAX_CONNECTIONS: Key = Key {
    name: "POSTGRES_MAX_CONNECTIONS",
    doc: "PostgreSQL max_connections, shared by the dify and dify_plugin databases",
};
pub const DB_MAX_OPEN_CONNS: Key =
    Key { name: "DB_MAX_OPEN_CONNS", doc: "the plugin daemon's connection cap per replica (its default is 30)" };
pub const DB_MAX_IDLE_CONNS: Key =
    Key { name: "DB_MAX_IDLE_CONNS", doc: "connections the plugin daemon keeps idle per replica (its default is 10)" };

/// Appended to the api image's connection URL (`?<DB_EXTRAS>`, `SQLALCHEMY_DATABASE_URI` in Dify's
/// `api/configs/middleware`): per service, `application_name=…` names its connections in
/// `pg_stat_activity`, which the rendered alerts count per component.
pub const DB_EXTRAS: Key = Key {
    name: "DB_EXTRAS",
    doc: "libpq parameters appended to this service's connection URL: its application_name, so \
        pg_stat_activity and the alerts tell the components apart (join your own with &)",
};

/// Settings Dify's api reads from its environment that its compose files and `.env.example` do
/// not list (read in Dify's own configuration code); the key-existence test accepts these too.
pub const API_READS_UNLISTED: &[&str] = &["DB_EXTRAS"];

/// The `application_name` each component of the api image connects with (`DB_EXTRAS`); the
/// plugin daemon, which wraps DB_EXTRAS into libpq's `options` instead, gets none.
pub fn application_name(service: &str) -> Option<&'static str> {
    match service {
        "api" => Some("dify-api"),
        "api_websocket" => Some("dify-api-websocket"),
        "worker" => Some("dify-worker"),
        "worker_beat" => Some("dify-worker-beat"),
        _ => None,
    }
}

/// Settings of the plugin daemon that are not in Dify's `.env.example` but documented by the
/// daemon itself (docs/model.md §3); the key-existence test accepts these too.
pub const PLUGIN_DAEMON_DOCUMENTED: &[&str] = &["DB_MAX_OPEN_CONNS", "DB_MAX_IDLE_CONNS", "DB_CONN_MAX_LIFETIME"];
pub const POSTGRES_SHARED_BUFFERS: Key =
    Key { name: "POSTGRES_SHARED_BUFFERS", doc: "PostgreSQL shared_buffers (PGTune: RAM / 4)" };
pub const POSTGRES_WORK_MEM: Key = Key {
    name: "POSTGRES_WORK_MEM",
    doc: "PostgreSQL work_mem per sort or hash (PGTune, for max_connections backends)",
};
pub const POSTGRES_MAINTENANCE_WORK_MEM: Key = Key {
    name: "POSTGRES_MAINTENANCE_WORK_MEM",
    doc: "PostgreSQL maintenance_work_mem (PGTune: RAM / 16, at most 8 GB)",
};
pub const POSTGRES_EFFECTIVE_CACHE_SIZE: Key =
    Key { name: "POSTGRES_EFFECTIVE_CACHE_SIZE", doc: "PostgreSQL effective_cache_size (PGTune: 3/4 of RAM)" };
pub const POSTGRES_STATEMENT_TIMEOUT: Key = Key {
    name: "POSTGRES_STATEMENT_TIMEOUT",
    doc: "PostgreSQL statement_timeout, ms: bounds one SQL statement, not the request",
};
pub const POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT: Key = Key {
    name: "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT",
    doc: "PostgreSQL idle_in_transaction_session_timeout, ms: frees connections of dead runs, above \
        the longest request",
};

/// The dedicated role difyplan plans for unless `--app-role superuser` (the name of Dify's
/// database, so one word says both).
pub const APP_ROLE: &str = "dify";

pub const DB_USERNAME: Key = Key {
    name: "DB_USERNAME",
    doc: "the application's database role, without superuser rights so that \
        superuser_reserved_connections stay free for operators. Create it once before Dify \
        starts, as the superuser: CREATE ROLE dify LOGIN CREATEDB PASSWORD '<DB_PASSWORD>'; ALTER \
        DATABASE dify OWNER TO dify; (CREATEDB lets the plugin daemon create its own database). \
        With --app-role superuser difyplan keeps Dify's `postgres` role instead.",
};

/// `DB_TYPE`: which database Dify connects to; `mysql` also starts compose's `db_mysql` through
/// `COMPOSE_PROFILES=…,${DB_TYPE},…`.
pub const DB_TYPE: Key = Key {
    name: "DB_TYPE",
    doc: "the database Dify uses; mysql also starts db_mysql (COMPOSE_PROFILES has ${DB_TYPE})",
};
pub const DB_HOST: Key = Key { name: "DB_HOST", doc: "the database host: compose's MySQL service" };
pub const DB_PORT: Key = Key { name: "DB_PORT", doc: "the database port: MySQL's 3306" };
pub const DB_USERNAME_MYSQL: Key = Key {
    name: "DB_USERNAME",
    doc: "the application's MySQL account, an ordinary one (no CONNECTION_ADMIN or SUPER) so that the \
        connection MySQL keeps for an administrator stays free for operators. Create it once before Dify \
        starts, as root: CREATE USER 'dify'@'%' IDENTIFIED BY '<DB_PASSWORD>'; GRANT ALL ON `dify`.* TO \
        'dify'@'%'; GRANT ALL ON `dify_plugin`.* TO 'dify'@'%'; --app-role superuser keeps root",
};
pub const MYSQL_MAX_CONNECTIONS: Key = Key {
    name: "MYSQL_MAX_CONNECTIONS",
    doc: "MySQL max_connections (db_mysql's --max_connections), shared by the dify and dify_plugin databases",
};
pub const MYSQL_INNODB_BUFFER_POOL_SIZE: Key = Key {
    name: "MYSQL_INNODB_BUFFER_POOL_SIZE",
    doc: "MySQL innodb_buffer_pool_size: the host's memory less what the connections may take (docs/model.md §11)",
};
pub const MYSQL_INNODB_LOG_FILE_SIZE: Key = Key {
    name: "MYSQL_INNODB_LOG_FILE_SIZE",
    doc: "MySQL innodb_log_file_size (innodb_dedicated_server's size for the host)",
};
pub const MYSQL_INNODB_FLUSH_LOG_AT_TRX_COMMIT: Key = Key {
    name: "MYSQL_INNODB_FLUSH_LOG_AT_TRX_COMMIT",
    doc: "MySQL innodb_flush_log_at_trx_commit: Dify's 2 writes the log at each commit and flushes it once a \
        second (1 flushes at each commit: no loss on a crash of the host, slower commits)",
};

/// Every key difyplan writes, for lookups by name.
pub const ALL: &[Key] = &[
    SERVER_WORKER_AMOUNT,
    SERVER_WORKER_CLASS,
    SERVER_WORKER_CONNECTIONS,
    SQLALCHEMY_POOL_SIZE,
    SQLALCHEMY_MAX_OVERFLOW,
    CELERY_WORKER_CLASS,
    CELERY_WORKER_AMOUNT,
    CELERY_AUTO_SCALE,
    API_WEBSOCKET_WORKER_AMOUNT,
    API_WEBSOCKET_WORKER_CONNECTIONS,
    POSTGRES_MAX_CONNECTIONS,
    POSTGRES_SHARED_BUFFERS,
    POSTGRES_WORK_MEM,
    POSTGRES_MAINTENANCE_WORK_MEM,
    POSTGRES_EFFECTIVE_CACHE_SIZE,
    POSTGRES_STATEMENT_TIMEOUT,
    POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
    DB_MAX_OPEN_CONNS,
    DB_MAX_IDLE_CONNS,
    DB_EXTRAS,
    DB_USERNAME,
    DB_TYPE,
    DB_HOST,
    DB_PORT,
    MYSQL_MAX_CONNECTIONS,
    MYSQL_INNODB_BUFFER_POOL_SIZE,
    MYSQL_INNODB_LOG_FILE_SIZE,
    MYSQL_INNODB_FLUSH_LOG_AT_TRX_COMMIT,
];

/// The key of that name, if difyplan writes it.
pub fn find(name: &str) -> Option<&'static Key> {
    ALL.iter().find(|k| k.name == name)
}

/// The settings Dify reads that size pools and processes; near-misses of these are flagged.
pub const SIZING_KEYS: &[&str] = &[
    "SERVER_WORKER_AMOUNT",
    "SERVER_WORKER_CLASS",
    "SERVER_WORKER_CONNECTIONS",
    "GUNICORN_TIMEOUT",
    "CELERY_WORKER_CLASS",
    "CELERY_WORKER_AMOUNT",
    "CELERY_AUTO_SCALE",
    "CELERY_MAX_WORKERS",
    "CELERY_MIN_WORKERS",
    "API_WEBSOCKET_WORKER_AMOUNT",
    "API_WEBSOCKET_WORKER_CONNECTIONS",
    "SQLALCHEMY_POOL_SIZE",
    "SQLALCHEMY_MAX_OVERFLOW",
    "SQLALCHEMY_POOL_RECYCLE",
    "SQLALCHEMY_POOL_PRE_PING",
    "SQLALCHEMY_POOL_USE_LIFO",
    "SQLALCHEMY_POOL_TIMEOUT",
    "POSTGRES_MAX_CONNECTIONS",
    "POSTGRES_SHARED_BUFFERS",
    "POSTGRES_WORK_MEM",
    "POSTGRES_MAINTENANCE_WORK_MEM",
    "POSTGRES_EFFECTIVE_CACHE_SIZE",
    "POSTGRES_STATEMENT_TIMEOUT",
    "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT",
    "DB_MAX_OPEN_CONNS",
    "DB_MAX_IDLE_CONNS",
    "DB_CONN_MAX_LIFETIME",
    "REDIS_MAX_CONNECTIONS",
    "MYSQL_MAX_CONNECTIONS",
    "MYSQL_INNODB_BUFFER_POOL_SIZE",
    "MYSQL_INNODB_LOG_FILE_SIZE",
    "MYSQL_INNODB_FLUSH_LOG_AT_TRX_COMMIT",
];

#[cfg(test)]
mod doc_tests {
    /// A comment of several sentences, rendered above a key in .env files and ConfigMaps, ends
    /// as a sentence does, not cut off mid-sentence.
    #[test]
    fn long_comments_end_their_last_sentence() {
        for k in super::ALL {
            if k.doc.contains(". ") {
                assert!(k.doc.trim_end().ends_with(['.', ')']), "{}: {}", k.name, k.doc);
            }
        }
    }
}
