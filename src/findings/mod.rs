//! Findings: what `check` reports about a deployment, each with a stable kebab-case code, a
//! severity and a one-line remedy (the codes are a contract: never renamed, only added).

pub mod allow;
pub mod anchor;
pub mod capacity;
pub mod explain;
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
    ($( $variant:ident = $name:literal, $sev:ident, $desc:literal, $full:literal; )*) => {
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
            /// The whole story: what is wrong, what was measured, what to do. `explain`, SARIF's
            /// rule help and the README's table of codes all come from (or are tested against) it.
            pub fn full_description(self) -> &'static str { match self { $(Code::$variant => $full,)* } }
            pub fn parse(s: &str) -> Option<Code> { match s { $($name => Some(Code::$variant),)* _ => None } }
        }
    };
}

// The single table of finding codes: name, default severity, one line, and the full description.
codes! {
    ConnectionBudgetExceeded = "connection-budget-exceeded", Error,
        "worst-case connection demand exceeds the usable max_connections",
        "The worst case — every process of every replica (autoscaler maximum and rolling-update \
                surge included) opening its whole pool and overflow — needs more PostgreSQL connections \
                than max_connections leaves to the application role. Under load PostgreSQL refuses the \
                excess with 'sorry, too many clients already'. Lower the pools or replicas (difyplan size \
                plans them), or raise max_connections.";
    PoolDeadlockRisk = "pool-deadlock-risk", Error,
        "a process's pool + overflow does not exceed the api requests it admits: requests deadlock \
        (measured)",
        "An api process admits SERVER_WORKER_CONNECTIONS requests at once, and a request can hold \
                two connections; with SQLALCHEMY_POOL_SIZE + SQLALCHEMY_MAX_OVERFLOW at or below the \
                requests admitted, requests wait for each other's connections until they time out \
                (measured on a real Dify api). Raise the pool + overflow above the greenlets, or admit \
                fewer greenlets.";
    PoolChatStall = "pool-chat-stall", Error,
        "a process's pool + overflow is below 2 × its greenlets while chat apps run: chat requests nest a \
        second and third checkout, and the api deadlocks (measured)",
        "A chat request holds a connection for its whole run and nests a second and a third short \
                checkout; below 2 × SERVER_WORKER_CONNECTIONS a process with every greenlet busy waits on \
                itself. On a real Dify 1.16.1 a chat api pool of greenlets + 1 served 0 of 360 requests at \
                full admission, its connections idle in transaction until the process was killed: an \
                error. Raise pool + overflow to twice the greenlets + 1 (what difyplan size plans), or \
                check a deployment without chat apps with --profile workflow.";
    WorkerPoolBelowConcurrency = "worker-pool-below-concurrency", Error,
        "a gevent worker's pool + overflow is below its -c while chat runs stream through it: the runs \
        beyond the pool time out",
        "A gevent Celery worker runs -c tasks at once and a streaming chat run holds a connection \
                for its whole duration; a pool + overflow below -c makes the runs beyond it time out. \
                Raise the worker's pool to 2 × -c + 1 (what difyplan size plans), or check a deployment \
                whose chat runs do not stream with --streaming-share 0.";
    WorkerPoolDeadlockRisk = "worker-pool-deadlock-risk", Error,
        "a gevent worker's pool + overflow is below 2 × its -c while chat runs stream through it: a full \
        worker deadlocks (measured)",
        "A chat run in a gevent Celery worker holds a connection for its whole duration and takes \
                a second at its start and end. With pool + overflow below 2 × -c, a worker whose every \
                slot runs chat waits on itself: on a real Dify 1.16.1 a worker pool of -c × 1.1 served 28 \
                of 300 chat runs at twice its planned load, while 2 × -c served all of them. Raise the \
                worker's pool to 2 × -c + 1 if chat runs stream through it.";
    RedisMaxConnectionsLow = "redis-max-connections-low", Warning,
        "REDIS_MAX_CONNECTIONS is below the pub/sub connections a process's admitted streams need",
        "Each streaming response subscribes to Redis pub/sub; REDIS_MAX_CONNECTIONS below the \
                streams a process admits makes requests fail to get a Redis connection. Raise \
                REDIS_MAX_CONNECTIONS to the greenlets a process admits.";
    StreamingRunsSerialized = "streaming-runs-serialized", Warning,
        "the worker runs one task at a time, so concurrent streaming runs queue",
        "The worker runs one Celery task at a time (-c 1), so concurrent streaming runs queue \
                behind each other. Raise CELERY_WORKER_AMOUNT (difyplan size plans it).";
    BeatPoolOversized = "beat-pool-oversized", Warning,
        "worker_beat gets a pool far larger than the ~1 connection it uses",
        "worker_beat shares the api's environment in compose and inherits its pool, though it uses \
                about one connection; the rest is counted in the worst case for nothing. Give worker_beat \
                its own SQLALCHEMY_POOL_SIZE and SQLALCHEMY_MAX_OVERFLOW.";
    PluginDaemonPoolDefault = "plugin-daemon-pool-default", Warning,
        "the plugin daemon's default DB_MAX_OPEN_CONNS of 30 per replica applies silently",
        "DB_MAX_OPEN_CONNS is not set, so every plugin daemon replica may open 30 connections. Set \
                DB_MAX_OPEN_CONNS (and DB_MAX_IDLE_CONNS) to what the daemon needs.";
    SuperuserAppRole = "superuser-app-role", Warning,
        "the application connects as a superuser, so PostgreSQL's reserved slots do not protect \
        the operators",
        "Dify connects as a superuser (the default postgres role), so \
                superuser_reserved_connections do not keep slots free for operators when the pools fill \
                max_connections. Create a dedicated non-superuser role and set DB_USERNAME to it.";
    IdleInTransactionTimeoutOff = "idle-in-transaction-timeout-off", Warning,
        "idle_in_transaction_session_timeout is off: a dead run keeps its connection for ever",
        "idle_in_transaction_session_timeout is 0: a run that dies inside a transaction keeps its \
                connection and its locks until the server restarts. Set it (difyplan size prints a value \
                from the longest request).";
    UnknownSizingKey = "unknown-sizing-key", Warning,
        "a key that looks like a sizing setting but is not one Dify reads",
        "A key close to a sizing setting Dify reads (a typo such as SQLALCHEMY_POOLSIZE) is \
                ignored by Dify, so the default applies. Fix the key's name.";
    PreforkMultipliesPools = "prefork-multiplies-pools", Warning,
        "a prefork Celery worker opens one pool per child process",
        "A prefork Celery worker forks -c child processes, each with its own SQLAlchemy pool, so \
                the worker's connections are -c × (pool + overflow). Use the gevent pool Dify ships, or \
                count and lower the children's pools.";
    HpaUnbounded = "hpa-unbounded", Error,
        "an autoscaler whose maximum is not counted in the budget",
        "A HorizontalPodAutoscaler scales a Dify component beyond the replicas counted in the \
                budget. The worst case counts the autoscaler's maximum plus the rolling-update surge; \
                make sure the inputs include the autoscaler with its maxReplicas.";
    MaxConnectionsUnknown = "max-connections-unknown", Warning,
        "no max_connections was found in the inputs; PostgreSQL's default 100 was assumed",
        "No max_connections was found in the inputs (database command, postgresql.conf, chart \
                values), so PostgreSQL's default of 100 was assumed. Pass --pg-max-connections for a \
                managed database, or put the setting in the files.";
    ChartVersionAssumed = "chart-version-assumed", Note,
        "the Helm chart version was not stated or is not one difyplan knows: another version's \
        defaults were applied",
        "The Helm values name no chart version, or one difyplan does not know, so the defaults of \
                the nearest known version were applied. Chart defaults (which components run, their \
                replicas) change between versions; state the version (Chart.yaml, HelmRelease, \
                Application or --chart NAME@VERSION), or check the output of helm template instead.";
    DifyVersionNewer = "dify-version-newer", Note,
        "the Dify release is newer than the releases difyplan knows: the newest known release's \
        layout and defaults were applied",
        "The Dify release (an image tag or --dify-version) is newer than every release difyplan has \
                read, so it was read with the newest known release's compose layout and defaults. A \
                new release can change them; compare its \
                docker/.env.example and docker-compose.yaml with the newest known release's, or update \
                difyplan.";
    UnusedAllow = "unused-allow", Warning,
        "an allow entry in difyplan.toml matches no finding",
        "An allow entry in difyplan.toml matches no finding: the exception is stale or mistyped. \
                Remove it or narrow it to what it was meant for.";
    PoolerDeadlockRisk = "pooler-deadlock-risk", Error,
        "a PgBouncer server pool is below the api requests that can hold a connection while asking \
        for another, + 1 (in session mode: below the client pools): requests deadlock (measured)",
        "PgBouncer in transaction mode cannot share a connection that a request keeps in a \
                transaction for its whole life; a server pool below the requests that can hold one while \
                asking for another, + 1, deadlocks (measured on a real Dify: pool 5 with 10 concurrent \
                requests completed none). Raise default_pool_size to the safety bound difyplan size \
                --pooler pgbouncer prints.";
    PoolerClientSlotsLow = "pooler-max-client-conn-low", Error,
        "PgBouncer's max_client_conn is below the client pools routed to it: their connections \
        beyond it are refused",
        "Every process's SQLAlchemy pool opens client connections to PgBouncer; max_client_conn \
                below their sum makes PgBouncer refuse the excess. Raise max_client_conn to the client \
                pools routed to it.";
    ApiGreenletsBelowLoad = "api-greenlets-below-load", Error,
        "check --qps: the api's greenlets are below the requests in flight at that load, so \
        requests queue",
        "check --qps: the api's greenlet slots (replicas × SERVER_WORKER_AMOUNT × \
                SERVER_WORKER_CONNECTIONS) are below the requests in flight at that load (Little's law; \
                an error below the mean, a warning below its 99.9% quantile), so requests queue in the \
                listen backlog and time out. Raise SERVER_WORKER_CONNECTIONS or the processes (difyplan \
                size plans both).";
    ApiProcessesBelowLoad = "api-processes-below-load", Error,
        "check --qps: the api's processes (one core each) are below the CPU the load needs",
        "check --qps: the api's gevent processes, one core each, are below the CPU the load needs \
                at the edition's CPU target; a saturated process stretches every request it holds. Raise \
                SERVER_WORKER_AMOUNT or the replicas.";
    WorkerConcurrencyBelowLoad = "worker-concurrency-below-load", Error,
        "check --qps: the worker's -c is below the streaming runs and tasks in flight at that load",
        "check --qps: the worker's -c across its replicas is below the streaming runs and tasks in \
                flight at that load, so runs queue in the broker (the entrypoint's -c 1 failed 95% of \
                streaming chat runs at 2.5/s on a real Dify). Raise CELERY_WORKER_AMOUNT or the worker \
                replicas.";
    WorkerProcessesBelowLoad = "worker-processes-below-load", Error,
        "check --qps: the workers (one core each) are below the CPU the load's streaming runs and tasks need",
        "check --qps: the workers (one gevent process and one core each) are below the CPU the \
                load's streaming runs and background tasks need at the CPU target, so runs slow down and \
                queue. Add worker replicas.";
    PluginDaemonBelowLoad = "plugin-daemon-below-load", Error,
        "check --qps: the plugin daemon's cores (its CPU limit × replicas) are below the CPU the load needs",
        "check --qps: the plugin daemon's cores (its container's or pod's CPU limit, or 2 per \
                replica when none is set, × its replicas) are below the CPU the load needs at the CPU \
                target (about 30 QPS per 2-core instance). Raise its CPU limit (compose runs one \
                container) or its replicas (Kubernetes).";
    ReplicaBelowPrimary = "replica-below-primary", Error,
        "a PostgreSQL read replica's max_connections is below its primary's: the hot standby refuses to start",
        "A PostgreSQL hot standby (the Bitnami chart's read replica) refuses to start when its \
                max_connections is below its primary's, so the deployment would not come up. Give the \
                replica the primary's settings (readReplicas.extendedConfiguration), or run the server \
                standalone. The budget is reported all the same.";
    UnknownValuesKey = "unknown-values-key", Note,
        "a Helm values key the chart does not have: Helm ignores it, and so does the reading",
        "Helm merges a values file over the chart's defaults and ignores a key no template reads, \
                unless the chart's values.schema.json forbids it; difyplan reads the values the same way \
                and notes the key, which may be left from an older chart version or meant for another \
                chart.";
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
    /// Where tools anchor it: the line to change, else the file that sets the deployment's
    /// identity (`anchor::locate`). The same path in every format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<anchor::Location>,
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
            location: None,
        }
    }
    pub fn at(mut self, source: &Source) -> Finding {
        self.source = Some(source.clone());
        self.location = source.location().map(|(path, line)| anchor::Location::new(path, line));
        self
    }

    /// `(path, line)` for tools: the anchored location, else the source's.
    pub fn place(&self) -> Option<(&str, usize)> {
        match &self.location {
            Some(l) => Some((l.path.as_str(), l.line)),
            None => self.source.as_ref().and_then(|s| s.location()),
        }
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
