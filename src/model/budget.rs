//! The connection budget: worst-case demand of every component against the usable
//! `max_connections`. `size` and `check` both call this one implementation (docs/model.md §2).

use crate::dify::Component;
use crate::dify::db_type::DbType;
use serde::Serialize;

/// One component's worst case: every pod that can exist at once, every process full.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct BudgetLine {
    pub component: Component,
    /// Pods that can run at once: maximum replicas plus rolling-update surge.
    pub worst_pods: u64,
    /// Processes per pod that each own a pool (1 for a gevent worker and the plugin daemon).
    pub processes: u64,
    /// Connections one process may open: `SQLALCHEMY_POOL_SIZE + SQLALCHEMY_MAX_OVERFLOW`,
    /// or the plugin daemon's `DB_MAX_OPEN_CONNS`.
    pub per_process_max: u64,
    /// `worst_pods × processes × per_process_max`.
    pub connections: u64,
}

impl BudgetLine {
    pub fn new(component: Component, worst_pods: u64, processes: u64, per_process_max: u64) -> Self {
        let connections = worst_pods.saturating_mul(processes).saturating_mul(per_process_max);
        BudgetLine { component, worst_pods, processes, per_process_max, connections }
    }
}

/// Connections held outside the components' pools.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Reserve {
    pub name: String,
    pub connections: u64,
    pub why: String,
}

/// A pooler's server connections, in place of the pools of the components it serves.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PoolerLine {
    /// `pgbouncer`.
    pub name: String,
    pub pods: u64,
    /// Processes per pod, each with its own server pool.
    pub processes: u64,
    /// `default_pool_size`: server connections per process.
    pub default_pool_size: u64,
    /// `pods × processes × default_pool_size`.
    pub connections: u64,
    /// The components whose lines it replaces (their pools now cost client slots, not backends).
    pub replaces: Vec<Component>,
    /// What those components' lines would have been.
    pub replaced_connections: u64,
}

/// How PostgreSQL hands out its slots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Cap {
    pub max_connections: u64,
    /// A superuser may also use the reserved slots (docs/model.md §2).
    pub app_role_superuser: bool,
    pub superuser_reserved_connections: u64,
    pub reserved_connections: u64,
    /// The server: PostgreSQL withholds slots from a non-superuser; MySQL gives an account with
    /// `CONNECTION_ADMIN` one more than `max_connections` (docs/model.md §11).
    #[serde(default, skip_serializing_if = "DbType::is_postgresql")]
    pub db_type: DbType,
    /// MySQL: connections beyond `max_connections` an administrator account may open (1).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub superuser_extra_connections: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Cap {
    /// PostgreSQL's cap: `superuser_reserved_connections` (3) withheld from a non-superuser.
    pub fn postgresql(max_connections: u64, app_role_superuser: bool) -> Cap {
        Cap {
            max_connections,
            app_role_superuser,
            superuser_reserved_connections: crate::dify::defaults::SUPERUSER_RESERVED_CONNECTIONS,
            reserved_connections: crate::dify::defaults::RESERVED_CONNECTIONS,
            db_type: DbType::Postgresql,
            superuser_extra_connections: 0,
        }
    }

    /// MySQL's cap: every `max_connections` slot for any account, and one more for an account
    /// with `CONNECTION_ADMIN` or `SUPER` (MySQL 8.0 manual, "Too many connections").
    pub fn mysql(max_connections: u64, app_role_superuser: bool) -> Cap {
        Cap {
            max_connections,
            app_role_superuser,
            superuser_reserved_connections: 0,
            reserved_connections: 0,
            db_type: DbType::Mysql,
            superuser_extra_connections: crate::dify::db_type::mysql::SUPERUSER_EXTRA_CONNECTIONS,
        }
    }

    /// Slots the application role can use: all of them for a superuser (MySQL: one more);
    /// otherwise `max_connections − superuser_reserved_connections − reserved_connections`.
    pub fn usable(&self) -> u64 {
        if self.app_role_superuser {
            self.max_connections.saturating_add(self.superuser_extra_connections)
        } else {
            self.max_connections
                .saturating_sub(self.superuser_reserved_connections)
                .saturating_sub(self.reserved_connections)
        }
    }

    /// The slots a non-superuser role cannot use.
    pub fn withheld(&self) -> u64 {
        self.max_connections.saturating_sub(self.usable())
    }
}

/// The whole budget, ready for any output format.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Budget {
    pub lines: Vec<BudgetLine>,
    /// A pooler in front of some components: its server connections count, their pools do not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooler: Option<PoolerLine>,
    pub reserves: Vec<Reserve>,
    /// Σ lines + Σ reserves.
    pub demand: u64,
    pub cap: Cap,
    pub usable: u64,
    /// `usable − demand` (negative when the plan does not fit).
    pub headroom: i64,
    /// headroom ÷ usable × 100.
    pub headroom_pct: f64,
    pub fits: bool,
}

impl Budget {
    pub fn new(lines: Vec<BudgetLine>, reserves: Vec<Reserve>, cap: Cap) -> Budget {
        Self::with_pooler(lines, None, reserves, cap)
    }

    /// A budget where `pooler` stands for the components it serves (their lines are not in `lines`).
    pub fn with_pooler(lines: Vec<BudgetLine>, pooler: Option<PoolerLine>, reserves: Vec<Reserve>, cap: Cap) -> Budget {
        let demand = lines
            .iter()
            .map(|l| l.connections)
            .chain(pooler.iter().map(|p| p.connections))
            .chain(reserves.iter().map(|r| r.connections))
            .fold(0u64, u64::saturating_add);
        let usable = cap.usable();
        // In 128 bits, so no cap or demand can wrap the difference around.
        let headroom =
            (i128::from(usable) - i128::from(demand)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        let headroom_pct = if usable == 0 { -100.0 } else { headroom as f64 * 100.0 / usable as f64 };
        Budget { lines, pooler, reserves, demand, cap, usable, headroom, headroom_pct, fits: demand <= usable }
    }

    pub fn component_demand(&self) -> u64 {
        self.lines.iter().map(|l| l.connections).chain(self.pooler.iter().map(|p| p.connections)).sum()
    }
}

/// The smallest `max_connections` that gives `demand` usable slots, rounded up to `step`.
pub fn choose_max_connections(
    demand: u64,
    app_role_superuser: bool,
    superuser_reserved: u64,
    reserved: u64,
    step: u64,
) -> u64 {
    let need = if app_role_superuser { demand } else { demand + superuser_reserved + reserved };
    let step = step.max(1);
    need.div_ceil(step) * step
}

/// The budget line of a deployed component: its worst-case pods × processes × pool.
pub fn line_of(c: &crate::deployment::Deployed) -> BudgetLine {
    BudgetLine::new(c.component, c.worst_pods(), c.processes.value, c.per_process_max)
}

/// A deployed PgBouncer's line: pods × processes × (default_pool_size + reserve_pool_size)
/// server connections, standing for the client pools routed to it in `d`.
fn pooler_line_of(d: &crate::deployment::Deployment) -> Option<PoolerLine> {
    let p = d.pooler.as_ref()?;
    let per_process = p.default_pool_size.value.saturating_add(p.reserve_pool_size.value);
    Some(PoolerLine {
        name: p.name.clone(),
        pods: p.pods.value,
        processes: p.processes,
        default_pool_size: per_process,
        connections: p.pods.value.saturating_mul(p.processes).saturating_mul(per_process),
        replaces: p.routed.clone(),
        replaced_connections: d.components.iter().filter(|c| d.routed(c)).map(|c| line_of(c).connections).sum(),
    })
}

/// The cap a deployment's database gives the application role.
pub fn cap_of(d: &crate::deployment::Deployment) -> Cap {
    match d.db_type {
        crate::dify::db_type::DbType::Postgresql => Cap::postgresql(d.max_connections.value, d.app_role_superuser),
        crate::dify::db_type::DbType::Mysql => Cap::mysql(d.max_connections.value, d.app_role_superuser),
    }
}

/// A deployment's budget as it is: the components that connect themselves, the pooler's
/// server connections for the ones routed through it, and `reserves`.
pub fn of_deployment(d: &crate::deployment::Deployment, reserves: Vec<Reserve>) -> Budget {
    let lines = d.components.iter().filter(|c| !d.routed(c)).map(line_of).collect();
    Budget::with_pooler(lines, pooler_line_of(d), reserves, cap_of(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(max: u64, su: bool) -> Cap {
        Cap::postgresql(max, su)
    }

    /// MySQL: a non-superuser gets every slot, `root` one more; nothing is withheld.
    #[test]
    fn mysql_cap() {
        assert_eq!(Cap::mysql(1000, false).usable(), 1000);
        assert_eq!(Cap::mysql(1000, true).usable(), 1001);
        assert_eq!(Cap::mysql(1000, true).withheld(), 0);
        let b = Budget::new(vec![BudgetLine::new(Component::Api, 1, 1, 151)], vec![], Cap::mysql(150, true));
        assert!(b.fits, "root reaches max_connections + 1");
        let b = Budget::new(vec![BudgetLine::new(Component::Api, 1, 1, 151)], vec![], Cap::mysql(150, false));
        assert!(!b.fits);
    }

    /// docs/model.md §2: Dify 1.9.1 defaults: api 1×1×(30+10) + worker 40 + beat 40 + plugin 30 = 150 > 100.
    #[test]
    fn dify_191_defaults_by_hand() {
        let lines = vec![
            BudgetLine::new(Component::Api, 1, 1, 40),
            BudgetLine::new(Component::Worker, 1, 1, 40),
            BudgetLine::new(Component::WorkerBeat, 1, 1, 40),
            BudgetLine::new(Component::PluginDaemon, 1, 1, 30),
        ];
        let b = Budget::new(lines, vec![], cap(100, true));
        assert_eq!(b.demand, 150);
        assert!(!b.fits);
        assert_eq!(b.headroom, -50);
    }

    /// docs/model.md §2: Dify 1.16.1 defaults: api, api_websocket, worker and beat share the pool
    /// 30 + 10; the plugin daemon opens 30: 40 + 40 + 40 + 40 + 30 = 190 against 200.
    #[test]
    fn dify_1161_defaults_from_constants() {
        use crate::dify::defaults as d;
        let pool = d::SQLALCHEMY_POOL_SIZE + d::SQLALCHEMY_MAX_OVERFLOW;
        let lines = vec![
            BudgetLine::new(Component::Api, 1, d::SERVER_WORKER_AMOUNT, pool),
            BudgetLine::new(Component::ApiWebsocket, 1, d::API_WEBSOCKET_WORKER_AMOUNT, pool),
            BudgetLine::new(Component::Worker, 1, 1, pool),
            BudgetLine::new(Component::WorkerBeat, 1, 1, pool),
            BudgetLine::new(Component::PluginDaemon, 1, 1, d::PLUGIN_DB_MAX_OPEN_CONNS),
        ];
        let b = Budget::new(lines, vec![], cap(200, true));
        assert_eq!(b.demand, 190);
        assert!(b.fits);
        assert_eq!(b.headroom, 10);
    }

    /// A non-superuser loses the 3 reserved slots: 200 − 3 = 197.
    #[test]
    fn non_superuser_loses_reserved_slots() {
        assert_eq!(cap(200, false).usable(), 197);
        assert_eq!(cap(200, true).usable(), 200);
        let c = Cap { reserved_connections: 5, ..cap(200, false) };
        assert_eq!(c.usable(), 192);
        assert_eq!(c.withheld(), 8);
    }

    /// HPA 3 → 15 pods × pool 50 = 750 (docs/model.md §2's incident).
    #[test]
    fn hpa_incident() {
        let b = Budget::new(vec![BudgetLine::new(Component::Api, 15, 1, 50)], vec![], cap(200, true));
        assert_eq!(b.demand, 750);
        assert!(!b.fits);
    }

    #[test]
    fn rounding_of_chosen_cap() {
        assert_eq!(choose_max_connections(191, true, 3, 0, 10), 200);
        assert_eq!(choose_max_connections(191, false, 3, 0, 10), 200);
        assert_eq!(choose_max_connections(197, false, 3, 0, 10), 200);
        assert_eq!(choose_max_connections(198, false, 3, 0, 10), 210);
    }
}
