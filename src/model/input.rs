//! What the user asked for: the plan's input, as every sizing step reads it.

use super::assumptions::{Assumptions, Edition, Target};
use super::pgtune::{self, Storage};
use super::profile::Profile;
use super::storage::LogStore;
use crate::dify::DifyVersion;
use crate::dify::db_type::DbType;
use serde::{Deserialize, Serialize};

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PlanInput {
    pub qps: f64,
    pub profile: Profile,
    pub target: Target,
    pub edition: Edition,
    pub dify_version: DifyVersion,
    /// api_websocket runs (compose profile `collaboration`, on by default in 1.16.1).
    pub collaboration: bool,
    /// The application's database role is a superuser (Dify's default `postgres` is).
    pub app_role_superuser: bool,
    /// A fixed `max_connections`, as managed databases impose; `None` lets difyplan choose.
    pub pg_max_connections: Option<u64>,
    /// The database host as far as the user described it (`--pg-memory`, `--pg-cpus`, ...).
    pub pg_host: PgHostSpec,
    /// Where workflow logs are written (docs/model.md §6).
    pub workflow_log_store: LogStore,
    /// Days workflow logs are kept; `None`: for ever (Dify's default).
    pub retention_days: Option<u32>,
    /// A pooler in front of PostgreSQL (`--pooler`); see `pooler.rs`.
    pub pooler: Pooler,
    pub assumptions: Assumptions,
    /// Dify's `DB_TYPE`: PostgreSQL (default) or MySQL (docs/model.md §11).
    #[serde(default, skip_serializing_if = "DbType::is_postgresql")]
    pub db_type: DbType,
}

impl PlanInput {
    /// `qps` of `profile` with every other choice at its default: compose, edition ha, the
    /// latest Dify, collaboration on, a dedicated role, no fixed cap, the host chosen, workflow
    /// logs in PostgreSQL kept for ever, no pooler, the documented assumptions.
    pub fn new(qps: f64, profile: Profile) -> PlanInput {
        PlanInput {
            qps,
            profile,
            target: Target::Compose,
            edition: Edition::Ha,
            dify_version: DifyVersion::LATEST,
            collaboration: true,
            app_role_superuser: false,
            pg_max_connections: None,
            pg_host: PgHostSpec::default(),
            workflow_log_store: LogStore::Postgres,
            retention_days: None,
            pooler: Pooler::None,
            assumptions: Assumptions::default(),
            db_type: DbType::Postgresql,
        }
    }

    /// Mean connections of one blocking request: the profile's, or 1 with the workflow logs off the
    /// request path.
    pub fn blocking_connections_mean(&self) -> f64 {
        if self.workflow_log_store == LogStore::Postgres {
            self.profile.connections_mean
        } else {
            1.0f64.min(self.profile.connections_mean)
        }
    }
}

/// The database host as given; what is missing difyplan chooses and says so.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PgHostSpec {
    pub memory_bytes: Option<u64>,
    pub cpus: Option<u32>,
    pub storage: Storage,
    pub pg_version: u32,
}

impl Default for PgHostSpec {
    fn default() -> Self {
        PgHostSpec {
            memory_bytes: None,
            cpus: None,
            storage: pgtune::DEFAULT_HOST.storage,
            pg_version: pgtune::DEFAULT_HOST.pg_version,
        }
    }
}

/// Which pooler sits in front of PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Pooler {
    /// Every process connects to PostgreSQL itself (Dify's layout).
    #[default]
    None,
    /// PgBouncer in transaction mode in front of the api and worker processes.
    Pgbouncer,
}
