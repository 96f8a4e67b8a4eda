//! Findings: what `check` reports about a deployment, each with a stable kebab-case code, a
//! severity and a one-line remedy (the codes are a contract: never renamed, only added).

pub mod allow;
pub mod capacity;
pub mod rules;

use crate::deployment::Source;
use crate::dify::Component;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How serious a finding is. Ordered: `Note < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Note,
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

macro_rules! codes {
    ($( $variant:ident = $name:literal, $sev:ident, $desc:literal; )*) => {
        /// Every finding code difyplan can report.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
        pub enum Code { $( #[serde(rename = $name)] $variant, )* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];
            /// The stable kebab-case name.
            pub fn as_str(self) -> &'static str { match self { $(Code::$variant => $name,)* } }
            pub fn severity(self) -> Severity { match self { $(Code::$variant => Severity::$sev,)* } }
            /// One line: what the code means.
            pub fn description(self) -> &'static str { match self { $(Code::$variant => $desc,)* } }
            pub fn parse(s: &str) -> Option<Code> { match s { $($name => Some(Code::$variant),)* _ => None } }
        }
    };
}

codes! {
    ConnectionBudgetExceeded = "connection-budget-exceeded", Error, "worst-case connection demand exceeds the usable max_connections";
    PoolDeadlockRisk = "pool-deadlock-risk", Error, "a process's pool + overflow does not exceed the api requests it admits: requests deadlock \
        (measured, docs/model.md §8)";
    PoolChatStall = "pool-chat-stall", Error, "a process's pool + overflow is below 2 × its greenlets while chat apps run: chat requests \
        nest a second and third checkout, and the api deadlocks (measured: pool = greenlets + 1 completed 0 of 360 chat \
        requests at full admission, connections idle in transaction until the process was killed)";
    WorkerPoolBelowConcurrency = "worker-pool-below-concurrency", Error, "a gevent worker's pool + overflow is below its -c while chat runs \
        stream through it: each run holds a connection for its whole duration, so the runs beyond the pool time out";
    WorkerPoolDeadlockRisk = "worker-pool-deadlock-risk", Error, "a gevent worker's pool + overflow is below 2 × its -c while chat runs \
        stream through it: a run holds a connection and takes a second at its start and end, so a full worker deadlocks \
        (measured: -c × 1.1 served 28 of 300 chat runs at twice the load; 2 × -c served all)";
    RedisMaxConnectionsLow = "redis-max-connections-low", Warning, "REDIS_MAX_CONNECTIONS is below the pub/sub connections a process's admitted streams need";
    StreamingRunsSerialized = "streaming-runs-serialized", Warning, "the worker runs one task at a time, so concurrent streaming runs queue";
    BeatPoolOversized = "beat-pool-oversized", Warning, "worker_beat gets a pool far larger than the ~1 connection it uses";
    PluginDaemonPoolDefault = "plugin-daemon-pool-default", Warning, "the plugin daemon's default DB_MAX_OPEN_CONNS of 30 per replica applies silently";
    SuperuserAppRole = "superuser-app-role", Warning, "the application connects as a superuser, so PostgreSQL's reserved slots do not protect \
        the operators";
    IdleInTransactionTimeoutOff = "idle-in-transaction-timeout-off", Warning, "idle_in_transaction_session_timeout is off: a dead run keeps its connection for ever";
    UnknownSizingKey = "unknown-sizing-key", Warning, "a key that looks like a sizing setting but is not one Dify reads";
    PreforkMultipliesPools = "prefork-multiplies-pools", Warning, "a prefork Celery worker opens one pool per child process";
    HpaUnbounded = "hpa-unbounded", Error, "an autoscaler whose maximum is not counted in the budget";
    MaxConnectionsUnknown = "max-connections-unknown", Warning, "no max_connections was found in the inputs; PostgreSQL's default 100 was assumed";
    ChartVersionAssumed = "chart-version-assumed", Note, "the Helm chart version was not stated or is not one difyplan knows: another version's \
        defaults were applied";
    UnusedAllow = "unused-allow", Warning, "an allow entry in difyplan.toml matches no finding";
    PoolerDeadlockRisk = "pooler-deadlock-risk", Error, "a PgBouncer server pool is below the api requests that can hold a connection while asking \
        for another, + 1 (in session mode: below the client pools): requests deadlock (measured)";
    PoolerClientSlotsLow = "pooler-max-client-conn-low", Error, "PgBouncer's max_client_conn is below the client pools routed to it: their connections \
        beyond it are refused";
    ApiGreenletsBelowLoad = "api-greenlets-below-load", Error, "check --qps: the api's greenlets are below the requests in flight at that load, so \
        requests queue";
    ApiProcessesBelowLoad = "api-processes-below-load", Error, "check --qps: the api's processes (one core each) are below the CPU the load needs";
    WorkerConcurrencyBelowLoad = "worker-concurrency-below-load", Error, "check --qps: the worker's -c is below the streaming runs and tasks in flight at that load";
    WorkerProcessesBelowLoad = "worker-processes-below-load", Error, "check --qps: the workers (one core each) are below the CPU the load's streaming runs and tasks need";
    PluginDaemonBelowLoad = "plugin-daemon-below-load", Error, "check --qps: the plugin daemon's cores (its CPU limit × replicas) are below the CPU the load needs";
    ReplicaBelowPrimary = "replica-below-primary", Error, "a PostgreSQL read replica's max_connections is below its primary's: the hot standby \
        refuses to start";
    UnknownValuesKey = "unknown-values-key", Note, "a Helm values key the chart does not have: Helm ignores it, and so does the reading";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    /// What is wrong, with the numbers.
    pub message: String,
    /// What to do, in one line.
    pub remedy: String,
    pub component: Option<Component>,
    /// The line to change, where there is one.
    pub source: Option<Source>,
    /// Which deployment of the inputs it is about.
    pub deployment: Option<String>,
}

impl Finding {
    pub fn new(code: Code, message: impl Into<String>, remedy: impl Into<String>) -> Finding {
        Finding {
            code,
            severity: code.severity(),
            message: message.into(),
            remedy: remedy.into(),
            component: None,
            source: None,
            deployment: None,
        }
    }
    pub fn at(mut self, source: &Source) -> Finding {
        self.source = Some(source.clone());
        self
    }
    pub fn on(mut self, component: Component) -> Finding {
        self.component = Some(component);
        self
    }
}

/// The version of the JSON document `check --format json` prints.
pub const SCHEMA_VERSION: u32 = 1;

/// One deployment found in the inputs, with its budget.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Checked {
    /// A name for people: the files it was read from.
    pub label: String,
    /// compose, kubernetes, helm or env.
    pub kind: String,
    pub deployment: crate::deployment::Deployment,
    pub budget: crate::model::budget::Budget,
}

/// Counts for the summary line and the exit code.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub notes: usize,
    pub suppressed: usize,
    /// Every deployment's demand fits its usable cap.
    pub within_budget: bool,
}

/// What `check` found: plain data for every output format.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Report {
    pub schema_version: u32,
    pub deployments: Vec<Checked>,
    pub findings: Vec<Finding>,
    pub suppressed: Vec<allow::Suppressed>,
    pub summary: Summary,
}

impl Report {
    pub fn new(deployments: Vec<Checked>, mut findings: Vec<Finding>, suppressed: Vec<allow::Suppressed>) -> Report {
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.deployment.cmp(&b.deployment))
                .then(a.code.cmp(&b.code))
                .then(a.source.cmp(&b.source))
        });
        let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
        let summary = Summary {
            errors: count(Severity::Error),
            warnings: count(Severity::Warning),
            notes: count(Severity::Note),
            suppressed: suppressed.len(),
            within_budget: deployments.iter().all(|d| d.budget.fits),
        };
        Report { schema_version: SCHEMA_VERSION, deployments, findings, suppressed, summary }
    }

    /// The most severe finding, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}
