//! Which database Dify runs on: Dify's own `DB_TYPE` (`postgresql`, its default, or `mysql`),
//! and the few facts that differ between the two servers' connection caps (docs/model.md §11).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Dify's `DB_TYPE`, with its own values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DbType {
    /// PostgreSQL (Dify's default).
    #[default]
    Postgresql,
    /// MySQL 8 (Dify's compose service `db_mysql`), or a MySQL-compatible server.
    Mysql,
}

impl DbType {
    pub fn as_str(self) -> &'static str {
        match self {
            DbType::Postgresql => "postgresql",
            DbType::Mysql => "mysql",
        }
    }

    pub fn is_postgresql(&self) -> bool {
        *self == DbType::Postgresql
    }

    /// The server's name for people.
    pub fn server(self) -> &'static str {
        match self {
            DbType::Postgresql => "PostgreSQL",
            DbType::Mysql => "MySQL",
        }
    }

    /// The `.env` key of the server's `max_connections` in Dify's compose file.
    pub fn max_connections_key(self) -> &'static str {
        match self {
            DbType::Postgresql => "POSTGRES_MAX_CONNECTIONS",
            DbType::Mysql => "MYSQL_MAX_CONNECTIONS",
        }
    }

    /// Read a `DB_TYPE` value: `None` for anything else Dify accepts (OceanBase, seekdb), whose
    /// connection cap is not modelled.
    pub fn parse_dify(value: &str) -> Option<DbType> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "postgresql" | "postgres" => Some(DbType::Postgresql),
            "mysql" => Some(DbType::Mysql),
            _ => None,
        }
    }
}

impl fmt::Display for DbType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// MySQL's facts for the budget (MySQL 8.0 reference manual; docs/model.md §11).
pub mod mysql {
    /// `max_connections` when nothing sets it (the server's default).
    pub const DEFAULT_MAX_CONNECTIONS: u64 = 151;
    /// Dify 1.16.1's compose fallback `--max_connections=${MYSQL_MAX_CONNECTIONS:-1000}`.
    pub const COMPOSE_MAX_CONNECTIONS: u64 = 1000;
    /// One connection beyond `max_connections` is kept for an account with `CONNECTION_ADMIN`
    /// (or `SUPER`): Dify's compose connects as `root`, which has it.
    pub const SUPERUSER_EXTRA_CONNECTIONS: u64 = 1;
    /// The only account the `mysql` image creates with those privileges.
    pub const SUPERUSER: &str = "root";
    /// MySQL's own bounds on `max_connections`.
    pub const MAX_MAX_CONNECTIONS: u64 = 100_000;
    /// Dify's compose service.
    pub const COMPOSE_SERVICE: &str = "db_mysql";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dify_values() {
        assert_eq!(DbType::parse_dify("postgresql"), Some(DbType::Postgresql));
        assert_eq!(DbType::parse_dify(" MySQL "), Some(DbType::Mysql));
        assert_eq!(DbType::parse_dify(""), Some(DbType::Postgresql));
        assert_eq!(DbType::parse_dify("oceanbase"), None);
    }
}
