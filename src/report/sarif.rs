//! SARIF 2.1.0 for code-scanning tools: one rule per finding code, one result per finding.

use crate::findings::{Code, Report, Severity};
use serde_json::{Value, json};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The README's table of finding codes; each code is an anchor there.
const CODES_URL: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/blob/main/README.md");

/// Where a code is explained: its anchor in the README's table of codes.
pub fn help_uri(c: Code) -> String {
    format!("{CODES_URL}#{}", c.as_str())
}

/// What a code means and what to do about it, for code-scanning tools' rule help.
pub fn full_description(c: Code) -> &'static str {
    match c {
        Code::ConnectionBudgetExceeded => {
            "The worst case — every process of every replica (autoscaler maximum and rolling-update \
                surge included) opening its whole pool and overflow — needs more PostgreSQL connections \
                than max_connections leaves to the application role. Under load PostgreSQL refuses the \
                excess with 'sorry, too many clients already'. Lower the pools or replicas (difyplan size \
                plans them), or raise max_connections."
        }
        Code::PoolDeadlockRisk => {
            "An api process admits SERVER_WORKER_CONNECTIONS requests at once, and a request can hold \
                two connections; with SQLALCHEMY_POOL_SIZE + SQLALCHEMY_MAX_OVERFLOW at or below the \
                requests admitted, requests wait for each other's connections until they time out \
                (measured on a real Dify api). Raise the pool + overflow above the greenlets, or admit \
                fewer greenlets."
        }
        Code::PoolChatStall => {
            "A chat request holds a connection for its whole run and nests a second and a third short \
                checkout; below 2 × SERVER_WORKER_CONNECTIONS a process with every greenlet busy waits on \
                itself. On a real Dify 1.16.1 a chat api pool of greenlets + 1 served 0 of 360 requests at \
                full admission, its connections idle in transaction until the process was killed: an \
                error. Raise pool + overflow to twice the greenlets + 1 (what difyplan size plans), or \
                check a deployment without chat apps with --profile workflow."
        }
        Code::WorkerPoolBelowConcurrency => {
            "A gevent Celery worker runs -c tasks at once and a streaming chat run holds a connection \
                for its whole duration; a pool + overflow below -c makes the runs beyond it time out. \
                Raise the worker's pool to 2 × -c + 1 (what difyplan size plans), or check a deployment \
                whose chat runs do not stream with --streaming-share 0."
        }
        Code::WorkerPoolDeadlockRisk => {
            "A chat run in a gevent Celery worker holds a connection for its whole duration and takes \
                a second at its start and end. With pool + overflow below 2 × -c, a worker whose every \
                slot runs chat waits on itself: on a real Dify 1.16.1 a worker pool of -c × 1.1 served 28 \
                of 300 chat runs at twice its planned load, while 2 × -c served all of them. Raise the \
                worker's pool to 2 × -c + 1 if chat runs stream through it."
        }
        Code::ChartVersionAssumed => {
            "The Helm values name no chart version, or one difyplan does not know, so the defaults of \
                the nearest known version were applied. Chart defaults (which components run, their \
                replicas) change between versions; state the version (Chart.yaml, HelmRelease, \
                Application or --chart NAME@VERSION), or check the output of helm template instead."
        }
        Code::ReplicaBelowPrimary => {
            "A PostgreSQL hot standby (the Bitnami chart's read replica) refuses to start when its \
                max_connections is below its primary's, so the deployment would not come up. Give the \
                replica the primary's settings (readReplicas.extendedConfiguration), or run the server \
                standalone. The budget is reported all the same."
        }
        Code::UnknownValuesKey => {
            "Helm merges a values file over the chart's defaults and ignores a key no template reads, \
                unless the chart's values.schema.json forbids it; difyplan reads the values the same way \
                and notes the key, which may be left from an older chart version or meant for another \
                chart."
        }
        Code::PoolerDeadlockRisk => {
            "PgBouncer in transaction mode cannot share a connection that a request keeps in a \
                transaction for its whole life; a server pool below the requests that can hold one while \
                asking for another, + 1, deadlocks (measured on a real Dify: pool 5 with 10 concurrent \
                requests completed none). Raise default_pool_size to the safety bound difyplan size \
                --pooler pgbouncer prints."
        }
        Code::PoolerClientSlotsLow => {
            "Every process's SQLAlchemy pool opens client connections to PgBouncer; max_client_conn \
                below their sum makes PgBouncer refuse the excess. Raise max_client_conn to the client \
                pools routed to it."
        }
        Code::ApiGreenletsBelowLoad => {
            "check --qps: the api's greenlet slots (replicas × SERVER_WORKER_AMOUNT × \
                SERVER_WORKER_CONNECTIONS) are below the requests in flight at that load (Little's law; \
                an error below the mean, a warning below its 99.9% quantile), so requests queue in the \
                listen backlog and time out. Raise SERVER_WORKER_CONNECTIONS or the processes (difyplan \
                size plans both)."
        }
        Code::ApiProcessesBelowLoad => {
            "check --qps: the api's gevent processes, one core each, are below the CPU the load needs \
                at the edition's CPU target; a saturated process stretches every request it holds. Raise \
                SERVER_WORKER_AMOUNT or the replicas."
        }
        Code::WorkerConcurrencyBelowLoad => {
            "check --qps: the worker's -c across its replicas is below the streaming runs and tasks in \
                flight at that load, so runs queue in the broker (the entrypoint's -c 1 failed 95% of \
                streaming chat runs at 2.5/s on a real Dify). Raise CELERY_WORKER_AMOUNT or the worker \
                replicas."
        }
        Code::WorkerProcessesBelowLoad => {
            "check --qps: the workers (one gevent process and one core each) are below the CPU the \
                load's streaming runs and background tasks need at the CPU target, so runs slow down and \
                queue. Add worker replicas."
        }
        Code::PluginDaemonBelowLoad => {
            "check --qps: the plugin daemon's cores (its container's or pod's CPU limit, or 2 per \
                replica when none is set, × its replicas) are below the CPU the load needs at the CPU \
                target (about 30 QPS per 2-core instance). Raise its CPU limit (compose runs one \
                container) or its replicas (Kubernetes)."
        }
        Code::RedisMaxConnectionsLow => {
            "Each streaming response subscribes to Redis pub/sub; REDIS_MAX_CONNECTIONS below the \
                streams a process admits makes requests fail to get a Redis connection. Raise \
                REDIS_MAX_CONNECTIONS to the greenlets a process admits."
        }
        Code::StreamingRunsSerialized => {
            "The worker runs one Celery task at a time (-c 1), so concurrent streaming runs queue \
                behind each other. Raise CELERY_WORKER_AMOUNT (difyplan size plans it)."
        }
        Code::BeatPoolOversized => {
            "worker_beat shares the api's environment in compose and inherits its pool, though it uses \
                about one connection; the rest is counted in the worst case for nothing. Give worker_beat \
                its own SQLALCHEMY_POOL_SIZE and SQLALCHEMY_MAX_OVERFLOW."
        }
        Code::PluginDaemonPoolDefault => {
            "DB_MAX_OPEN_CONNS is not set, so every plugin daemon replica may open 30 connections. Set \
                DB_MAX_OPEN_CONNS (and DB_MAX_IDLE_CONNS) to what the daemon needs."
        }
        Code::SuperuserAppRole => {
            "Dify connects as a superuser (the default postgres role), so \
                superuser_reserved_connections do not keep slots free for operators when the pools fill \
                max_connections. Create a dedicated non-superuser role and set DB_USERNAME to it."
        }
        Code::IdleInTransactionTimeoutOff => {
            "idle_in_transaction_session_timeout is 0: a run that dies inside a transaction keeps its \
                connection and its locks until the server restarts. Set it (difyplan size prints a value \
                from the longest request)."
        }
        Code::UnknownSizingKey => {
            "A key close to a sizing setting Dify reads (a typo such as SQLALCHEMY_POOLSIZE) is \
                ignored by Dify, so the default applies. Fix the key's name."
        }
        Code::PreforkMultipliesPools => {
            "A prefork Celery worker forks -c child processes, each with its own SQLAlchemy pool, so \
                the worker's connections are -c × (pool + overflow). Use the gevent pool Dify ships, or \
                count and lower the children's pools."
        }
        Code::HpaUnbounded => {
            "A HorizontalPodAutoscaler scales a Dify component beyond the replicas counted in the \
                budget. The worst case counts the autoscaler's maximum plus the rolling-update surge; \
                make sure the inputs include the autoscaler with its maxReplicas."
        }
        Code::MaxConnectionsUnknown => {
            "No max_connections was found in the inputs (database command, postgresql.conf, chart \
                values), so PostgreSQL's default of 100 was assumed. Pass --pg-max-connections for a \
                managed database, or put the setting in the files."
        }
        Code::UnusedAllow => {
            "An allow entry in difyplan.toml matches no finding: the exception is stale or mistyped. \
                Remove it or narrow it to what it was meant for."
        }
    }
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

pub fn render(report: &Report) -> serde_json::Result<String> {
    let rules: Vec<Value> = Code::ALL
        .iter()
        .map(|c| {
            json!({
                "id": c.as_str(),
                "name": c.as_str(),
                "shortDescription": { "text": c.description() },
                "fullDescription": { "text": full_description(*c) },
                "help": {
                    "text": format!("{} See {}", full_description(*c), help_uri(*c)),
                    "markdown": format!("{}\n\n[`{}` in the table of codes]({})", full_description(*c), c.as_str(), help_uri(*c)),
                },
                "helpUri": help_uri(*c),
                "defaultConfiguration": { "level": level(c.severity()) },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut r = json!({
                "ruleId": f.code.as_str(),
                "ruleIndex": Code::ALL.iter().position(|c| *c == f.code).unwrap_or(0),
                "level": level(f.severity),
                "message": { "text": format!("{} — {}", f.message, f.remedy) },
            });
            if let Some((path, line)) = f.source.as_ref().and_then(|s| s.location()) {
                r["locations"] = json!([{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(path) },
                        "region": { "startLine": line.max(1) },
                    }
                }]);
            }
            r
        })
        .collect();
    let doc = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "difyplan",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc)
}

/// A relative URI reference for a file path: forward slashes, reserved characters escaped.
fn uri(path: &str) -> String {
    let path = path.strip_prefix("./").unwrap_or(path);
    let mut out = String::new();
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => out.push(b as char),
            b'\\' => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
