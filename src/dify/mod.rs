//! What Dify is: its versions, the components that open PostgreSQL connections, and how each
//! one turns its settings into processes and pools. The one place that knows (docs/model.md §2, §3).

use serde::Serialize;
use std::fmt;

pub mod db_type;
pub mod keys;
pub mod rules;
pub mod version;

pub use version::DifyVersion;

/// A Dify process kind that holds connections to the main PostgreSQL server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    Api,
    ApiWebsocket,
    Worker,
    WorkerBeat,
    PluginDaemon,
}

impl Component {
    pub const ALL: [Component; 5] =
        [Component::Api, Component::ApiWebsocket, Component::Worker, Component::WorkerBeat, Component::PluginDaemon];

    /// The compose service name, which is also the name difyplan uses everywhere.
    pub fn service(self) -> &'static str {
        match self {
            Component::Api => "api",
            Component::ApiWebsocket => "api_websocket",
            Component::Worker => "worker",
            Component::WorkerBeat => "worker_beat",
            Component::PluginDaemon => "plugin_daemon",
        }
    }

    /// Runs the Dify api image, so runs `flask upgrade-db` at start when `MIGRATION_ENABLED=true`.
    pub fn runs_migrations(self) -> bool {
        !matches!(self, Component::PluginDaemon)
    }

    /// Serves api requests through gunicorn request greenlets, where the pool-deadlock rule of
    /// docs/model.md §8 applies. api_websocket's greenlets are websocket sessions, not requests.
    pub fn serves_api_requests(self) -> bool {
        self == Component::Api
    }

    /// Exactly one replica ever runs (a second beat would schedule every task twice).
    pub fn singleton(self) -> bool {
        self == Component::WorkerBeat
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.service())
    }
}

/// Dify's shipped defaults for the sizing keys (docs/model.md §2, §3; the fixtures' `.env.example`).
/// The same in every 1.x release (docs/model.md §3a); what differs per release is in `version::ERAS`.
pub mod defaults {
    /// `SQLALCHEMY_POOL_SIZE` (api/configs; `.env.example` of both versions).
    pub const SQLALCHEMY_POOL_SIZE: u64 = 30;
    /// `SQLALCHEMY_MAX_OVERFLOW` (PR #24432).
    pub const SQLALCHEMY_MAX_OVERFLOW: u64 = 10;
    /// `SERVER_WORKER_AMOUNT` (entrypoint default).
    pub const SERVER_WORKER_AMOUNT: u64 = 1;
    /// `SERVER_WORKER_CONNECTIONS` (entrypoint default).
    pub const SERVER_WORKER_CONNECTIONS: u64 = 10;
    /// `API_WEBSOCKET_WORKER_AMOUNT` / `_CONNECTIONS` (1.16.1 compose fallbacks).
    pub const API_WEBSOCKET_WORKER_AMOUNT: u64 = 1;
    pub const API_WEBSOCKET_WORKER_CONNECTIONS: u64 = 1000;
    /// The Celery entrypoint's `-c ${CELERY_WORKER_AMOUNT:-1}`.
    pub const CELERY_WORKER_AMOUNT: u64 = 1;
    /// The plugin daemon's own `DB_MAX_OPEN_CONNS` / `DB_MAX_IDLE_CONNS` (docs/model.md §2).
    pub const PLUGIN_DB_MAX_OPEN_CONNS: u64 = 30;
    pub const PLUGIN_DB_MAX_IDLE_CONNS: u64 = 10;
    /// PostgreSQL's `superuser_reserved_connections` default, and `reserved_connections` (PG ≥ 16).
    pub const SUPERUSER_RESERVED_CONNECTIONS: u64 = 3;
    pub const RESERVED_CONNECTIONS: u64 = 0;
    /// The compose fallback `${POSTGRES_MAX_CONNECTIONS:-100}` (both versions' compose file).
    pub const COMPOSE_MAX_CONNECTIONS: u64 = 100;
}
