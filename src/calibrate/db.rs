//! One read-only session in which every network step is bounded: reaching the server (TCP, TLS,
//! startup and authentication) within the connect deadline, then each statement within its own.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement, ToStatement};

/// Why a step of the session failed.
#[derive(Debug)]
pub enum Failure {
    /// The server (or the driver) said no.
    Pg(tokio_postgres::Error),
    /// No complete answer within the bound; the session is not used again.
    TimedOut(Duration),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        Failure::Pg(e)
    }
}

/// A connected session. Its runtime drives the connection only while a statement runs.
pub struct Db {
    rt: Option<Runtime>,
    client: Client,
    /// The longest any one statement may take, the answer's transfer included.
    query_bound: Duration,
    /// Set once a statement timed out: the protocol state is unknown, so nothing more is sent.
    broken: Cell<bool>,
}

impl Db {
    /// Connects with `connect` (the driver's connect future, TLS or not) within `deadline`, all
    /// of it: name lookup, TCP, TLS handshake, startup, authentication. A server that never
    /// answers, answers a byte at a time or stops half-way is given up at the deadline.
    pub fn connect<F, C>(connect: F, deadline: Duration, query_bound: Duration) -> Result<Db, Failure>
    where
        F: Future<Output = Result<(Client, C), tokio_postgres::Error>>,
        C: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a single-threaded runtime builds");
        match rt.block_on(async { tokio::time::timeout(deadline, connect).await }) {
            Ok(Ok((client, connection))) => {
                rt.spawn(async move {
                    // Errors surface in the statement that was waiting for the connection.
                    let _ = connection.await;
                });
                Ok(Db { rt: Some(rt), client, query_bound, broken: Cell::new(false) })
            }
            Ok(Err(e)) => {
                // A name lookup still running must not hold the process.
                rt.shutdown_background();
                Err(Failure::Pg(e))
            }
            Err(_) => {
                rt.shutdown_background();
                Err(Failure::TimedOut(deadline))
            }
        }
    }

    fn run<T>(&self, step: impl Future<Output = Result<T, tokio_postgres::Error>>) -> Result<T, Failure> {
        if self.broken.get() {
            return Err(Failure::TimedOut(self.query_bound));
        }
        let rt = self.rt.as_ref().expect("the runtime lives as long as the session");
        match rt.block_on(async { tokio::time::timeout(self.query_bound, step).await }) {
            Ok(r) => r.map_err(Failure::Pg),
            Err(_) => {
                self.broken.set(true);
                Err(Failure::TimedOut(self.query_bound))
            }
        }
    }

    pub fn query<T: ?Sized + ToStatement>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Failure> {
        self.run(self.client.query(statement, params))
    }

    pub fn query_one<T: ?Sized + ToStatement>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Failure> {
        self.run(self.client.query_one(statement, params))
    }

    pub fn query_opt<T: ?Sized + ToStatement>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Failure> {
        self.run(self.client.query_opt(statement, params))
    }

    pub fn prepare(&self, query: &str) -> Result<Statement, Failure> {
        self.run(self.client.prepare(query))
    }

    /// Statements without parameters or results (`BEGIN …`, `COMMIT`).
    pub fn batch_execute(&self, query: &str) -> Result<(), Failure> {
        self.run(self.client.batch_execute(query))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// `15 s`, `0.5 s`.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 { format!("{s:.0} s") } else { format!("{s} s") }
}

/// A failed query: what it was doing and what to do.
pub fn query_error(failure: &Failure, doing: &str) -> anyhow::Error {
    let e = match failure {
        Failure::Pg(e) => e,
        Failure::TimedOut(d) => {
            return anyhow::anyhow!(
                "{doing}: no complete answer within {} — the server stopped answering (or the network \
                    dropped the connection); check the server, measure a shorter window (--since 1d), or \
                    raise --query-timeout",
                seconds(*d)
            );
        }
    };
    if let Some(db) = e.as_db_error() {
        return match db.code().code() {
            "57014" => anyhow::anyhow!(
                "{doing}: the query ran longer than the statement timeout and was cancelled — measure a \
                    shorter window (--since 1d) or against a replica, or raise --query-timeout"
            ),
            "42501" => anyhow::anyhow!(
                "{doing}: {} — grant the role SELECT on Dify's tables (or pg_read_all_data on PostgreSQL 14+)",
                db.message()
            ),
            "25006" => {
                anyhow::anyhow!("{doing}: {} — calibrate only reads; this is a bug, please report it", db.message())
            }
            code => anyhow::anyhow!("{doing}: {} (SQLSTATE {code})", db.message()),
        };
    }
    anyhow::anyhow!("{doing}: {e} — the connection was lost; check the server and try again")
}
