//! Where the database is and how to reach it, read-only: a URL, the libpq environment, or a Dify
//! project's `DB_*` settings; TLS by `sslmode` as libpq means it. No message ever shows the password.
//! Every step is bounded (see [`Limits`]): a server that never answers is given up, not waited for.

use super::db::{Db, Failure, seconds};
use anyhow::{Result, anyhow, bail};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::{Config, NoTls};

/// How long reaching the server may take, all of it (name lookup, TCP, TLS, startup,
/// authentication), when `--connect-timeout` is not given.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest any one statement may run when `--query-timeout` is not given (the server cancels it).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The bounds of a session.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Reaching the server, all steps together.
    pub connect: Duration,
    /// One statement: the server's `statement_timeout`. calibrate itself waits this long and as
    /// much again (at most 5 s more), so the server's own cancellation arrives first.
    pub query: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { connect: CONNECT_TIMEOUT, query: QUERY_TIMEOUT }
    }
}

impl Limits {
    fn client_query_bound(&self) -> Duration {
        self.query + self.query.min(Duration::from_secs(5))
    }
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str, from: &str) -> Result<SslMode> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                bail!("{from}: sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full")
            }
        })
    }
}

/// Everything needed to connect, with the password kept out of `Debug` and every message.
pub struct Target {
    pub config: Config,
    pub sslmode: SslMode,
    pub root_cert: Option<PathBuf>,
    /// Where the settings came from, for messages: `--database-url`, `the libpq environment`, a file.
    pub from: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.describe())
    }
}

impl Target {
    /// `user@host:port/database` — never the password.
    pub fn describe(&self) -> String {
        let host = self
            .config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(s) => s.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".into());
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!("{}@{host}:{port}/{}", self.config.get_user().unwrap_or("?"), self.config.get_dbname().unwrap_or("?"))
    }

    /// A URL (`postgresql://…` or libpq's `key=value` form). `sslmode` and `sslrootcert` are
    /// taken out and handled here, since libpq's verify modes are not the driver's.
    pub fn from_url(url: &str, from: &str) -> Result<Target> {
        let (rest, params) = split_ssl_params(url);
        let mut config: Config = rest.parse().map_err(|e: tokio_postgres::Error| {
            // The driver's messages name the part it could not read, never the value.
            anyhow!("{from}: not a PostgreSQL connection URL ({e}) — use postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
        })?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let sslmode = match params.iter().find(|(k, _)| k == "sslmode") {
            Some((_, v)) => SslMode::parse(v, from)?,
            None => match env("PGSSLMODE") {
                Some(v) => SslMode::parse(&v, "PGSSLMODE")?,
                None => SslMode::Prefer,
            },
        };
        let root_cert = params
            .iter()
            .find(|(k, _)| k == "sslrootcert")
            .map(|(_, v)| PathBuf::from(v))
            .or_else(|| env("PGSSLROOTCERT").map(PathBuf::from));
        if config.get_user().is_none() {
            config.user(env("PGUSER").unwrap_or_else(|| "postgres".into()));
        }
        if config.get_password().is_none()
            && let Some(p) = env("PGPASSWORD")
        {
            config.password(p);
        }
        if config.get_dbname().is_none() {
            config.dbname(env("PGDATABASE").unwrap_or_else(|| "dify".into()));
        }
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        Ok(Target { config, sslmode, root_cert, from: from.into() })
    }

    /// The libpq environment: PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE,
    /// PGSSLROOTCERT. `None` when none of PGHOST, PGPORT, PGDATABASE is set.
    pub fn from_libpq_env() -> Result<Option<Target>> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if env("PGHOST").is_none() && env("PGPORT").is_none() && env("PGDATABASE").is_none() {
            return Ok(None);
        }
        let mut config = Config::new();
        config.host(env("PGHOST").unwrap_or_else(|| "localhost".into()));
        if let Some(port) = env("PGPORT") {
            config
                .port(port.parse().map_err(|_| anyhow!("PGPORT `{port}` is not a port number — set it to e.g. 5432"))?);
        }
        Self::finish(config, "the libpq environment (PG*)")
    }

    /// A Dify project's settings: DB_HOST, DB_PORT, DB_USERNAME, DB_PASSWORD, DB_DATABASE as the
    /// api sees them. PGHOST and PGPORT, when set, replace the host and port (the compose service
    /// name `db_postgres` is reachable from inside the project only).
    pub fn from_dify_env(get: impl Fn(&str) -> Option<String>, from: &str) -> Result<Target> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut config = Config::new();
        let host = env("PGHOST").or_else(|| get("DB_HOST")).unwrap_or_else(|| "db_postgres".into());
        config.host(&host);
        let port = env("PGPORT").or_else(|| get("DB_PORT")).unwrap_or_else(|| "5432".into());
        config.port(port.parse().map_err(|_| anyhow!("{from}: DB_PORT `{port}` is not a port number"))?);
        config.user(get("DB_USERNAME").unwrap_or_else(|| "postgres".into()));
        if let Some(p) = get("DB_PASSWORD") {
            config.password(p);
        }
        config.dbname(get("DB_DATABASE").unwrap_or_else(|| "dify".into()));
        let sslmode = match env("PGSSLMODE") {
            Some(v) => SslMode::parse(&v, "PGSSLMODE")?,
            None => SslMode::Prefer,
        };
        Ok(Target { config, sslmode, root_cert: env("PGSSLROOTCERT").map(PathBuf::from), from: from.into() })
    }

    fn finish(mut config: Config, from: &str) -> Result<Option<Target>> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        config.user(env("PGUSER").unwrap_or_else(|| "postgres".into()));
        if let Some(p) = env("PGPASSWORD") {
            config.password(p);
        }
        config.dbname(env("PGDATABASE").unwrap_or_else(|| "dify".into()));
        let sslmode = match env("PGSSLMODE") {
            Some(v) => SslMode::parse(&v, "PGSSLMODE")?,
            None => SslMode::Prefer,
        };
        Ok(Some(Target { config, sslmode, root_cert: env("PGSSLROOTCERT").map(PathBuf::from), from: from.into() }))
    }

    /// Connects with a read-only session: every transaction read-only, each statement cancelled
    /// by the server after `limits.query`, locks never waited for long; the whole connection
    /// within `limits.connect`.
    pub fn connect(&self, limits: Limits) -> Result<Db> {
        let mut config = self.config.clone();
        config.connect_timeout(limits.connect);
        config.application_name("difyplan calibrate");
        config.options(format!(
            "-c default_transaction_read_only=on -c statement_timeout={} -c lock_timeout=1000 -c \
                idle_in_transaction_session_timeout=60000",
            limits.query.as_millis().max(1)
        ));
        let bound = limits.client_query_bound();
        let result = match self.sslmode {
            SslMode::Disable => {
                config.ssl_mode(PgSslMode::Disable);
                Db::connect(config.connect(NoTls), limits.connect, bound)
            }
            mode => {
                config.ssl_mode(if matches!(mode, SslMode::Allow | SslMode::Prefer) {
                    PgSslMode::Prefer
                } else {
                    PgSslMode::Require
                });
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_config()?);
                Db::connect(config.connect(tls), limits.connect, bound)
            }
        };
        result.map_err(|e| anyhow!(self.explain(&e, limits)))
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow!("TLS setup: {e}"))?;
        // libpq: `require` with a root certificate verifies it like verify-ca.
        let verify = match (self.sslmode, &self.root_cert) {
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => bail!(
                "{}: sslmode={} needs the CA that signed the server's certificate — add \
                    sslrootcert=/path/to/ca.pem to the URL or set PGSSLROOTCERT",
                self.from,
                if self.sslmode == SslMode::VerifyCa { "verify-ca" } else { "verify-full" }
            ),
            (SslMode::VerifyCa | SslMode::VerifyFull | SslMode::Require, Some(path)) => Some(path.clone()),
            _ => None,
        };
        let Some(path) = verify else {
            // allow, prefer and require: encrypted, the certificate not checked (libpq's meaning).
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
                .with_no_client_auth());
        };
        let mut roots = rustls::RootCertStore::empty();
        let text =
            std::fs::read(&path).map_err(|e| anyhow!("{}: {e} — sslrootcert must name a PEM file", path.display()))?;
        use rustls_pki_types::pem::PemObject;
        let mut n = 0;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&text) {
            let cert = cert.map_err(|e| anyhow!("{}: not a PEM certificate ({e})", path.display()))?;
            roots.add(cert).map_err(|e| anyhow!("{}: {e}", path.display()))?;
            n += 1;
        }
        if n == 0 {
            bail!("{}: no certificate in the file — sslrootcert must name the CA's PEM file", path.display());
        }
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let builder = builder.dangerous();
        Ok(if self.sslmode == SslMode::VerifyFull {
            builder.with_custom_certificate_verifier(webpki).with_no_client_auth()
        } else {
            builder.with_custom_certificate_verifier(Arc::new(ChainOnly(webpki))).with_no_client_auth()
        })
    }

    /// What went wrong and what to do, from the driver's error; no password in it.
    fn explain(&self, failure: &Failure, limits: Limits) -> String {
        let at = self.describe();
        let e = match failure {
            Failure::Pg(e) => e,
            Failure::TimedOut(d) => {
                return format!(
                    "{at}: no complete answer within {} while connecting (TCP, TLS, startup and \
                        authentication) — check the host and port (a firewall that drops packets, or a port \
                        that is not PostgreSQL's, looks like this), or raise --connect-timeout on a slow link",
                    seconds(*d)
                );
            }
        };
        if let Some(db) = e.as_db_error() {
            let state = db.code().code();
            let what = match state {
                "28P01" => format!(
                    "password authentication failed for `{}` — check the password (DB_PASSWORD, PGPASSWORD or the URL)",
                    self.config.get_user().unwrap_or("?")
                ),
                "28000" => format!(
                    "the server refuses `{}` ({}) — check the user name and the server's pg_hba.conf",
                    self.config.get_user().unwrap_or("?"),
                    db.message()
                ),
                "3D000" => format!("{} — name Dify's database (DB_DATABASE, usually `dify`)", db.message()),
                "53300" => format!("{} — the server is full; try again or free a connection", db.message()),
                _ => format!("{} (SQLSTATE {state})", db.message()),
            };
            return format!("{at}: {what}");
        }
        let text = e.to_string();
        let source = std::error::Error::source(e).map(|s| s.to_string()).unwrap_or_default();
        let detail = if source.is_empty() { text.clone() } else { format!("{text}: {source}") };
        let hint = if detail.contains("timed out") || detail.contains("timeout") {
            format!("no answer within {} — check the host, port and firewall", seconds(limits.connect))
        } else if detail.contains("unexpected message")
            || detail.contains("error parsing")
            || detail.contains("invalid message")
            || detail.contains("unexpected response")
        {
            "what answers there does not speak PostgreSQL's protocol — check the port (DB_PORT, PGPORT or \
                the URL) and that no proxy of another kind listens on it"
                .into()
        } else if detail.contains("connection closed") || detail.contains("unexpected EOF") {
            "the server hung up during the startup exchange — check that it is PostgreSQL (not another \
                service on that port), its log, and whether it accepts connections from here"
                .into()
        } else if detail.contains("does not support TLS") || detail.contains("server does not support") {
            "the server does not offer TLS: use sslmode=prefer or disable, or turn ssl on at the server".into()
        } else if detail.contains("certificate") || detail.contains("TLS") || detail.contains("tls") {
            "the TLS handshake failed: check sslmode and that sslrootcert is the CA that signed the \
                server's certificate"
                .into()
        } else if detail.contains("failed to lookup")
            || detail.contains("resolve")
            || detail.contains("Name or service")
        {
            "the host name does not resolve; from outside Dify's compose project set PGHOST=127.0.0.1 \
                and PGPORT to the published port"
                .into()
        } else if detail.contains("refused") {
            "nothing listens there: check the host and port (PGHOST/PGPORT, DB_HOST/DB_PORT or the URL)".into()
        } else if detail.contains("password") {
            "the server asks for a password: set PGPASSWORD, DB_PASSWORD or put it in the URL".into()
        } else {
            "check the host, port, user and database".into()
        };
        format!("{at}: cannot connect ({}) — {hint}", scrub(&detail, self.config.get_password()))
    }
}

/// Drops the password from a text, should a driver ever echo it.
pub fn scrub(text: &str, password: Option<&[u8]>) -> String {
    match password.and_then(|p| std::str::from_utf8(p).ok()).filter(|p| !p.is_empty()) {
        Some(p) => text.replace(p, "***"),
        None => text.to_string(),
    }
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query or a key=value string.
fn split_ssl_params(url: &str) -> (String, Vec<(String, String)>) {
    let mut params = Vec::new();
    let is_ssl = |k: &str| k == "sslmode" || k == "sslrootcert";
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else { return (url.to_string(), params) };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some((k, v)) if is_ssl(k) => params.push((k.to_string(), percent_decode(v))),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        (rest, params)
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            match word.split_once('=') {
                Some((k, v)) if is_ssl(k) => params.push((k.to_string(), v.trim_matches('\'').to_string())),
                _ => kept.push(word),
            }
        }
        (kept.join(" "), params)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'%'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `require`: encryption without checking who answers (libpq's meaning of the mode).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to the CA; the host name is not compared.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_params_are_taken_out_of_urls() {
        let (rest, p) = split_ssl_params("postgresql://u:p@h:5/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&x=1");
        assert_eq!(rest, "postgresql://u:p@h:5/db?x=1");
        assert_eq!(p, [("sslmode".into(), "verify-full".into()), ("sslrootcert".into(), "/tmp/ca.pem".into())]);
        let (rest, p) = split_ssl_params("host=h sslmode=require user=u");
        assert_eq!(rest, "host=h user=u");
        assert_eq!(p, [("sslmode".to_string(), "require".to_string())]);
    }

    #[test]
    fn describe_never_shows_the_password() {
        let t = Target::from_url("postgresql://reader:Secr3t-pw@db.example:6543/dify", "--database-url").unwrap();
        assert_eq!(t.describe(), "reader@db.example:6543/dify");
        assert!(!format!("{t:?}").contains("Secr3t"));
        assert_eq!(scrub("x Secr3t-pw y", t.config.get_password()), "x *** y");
    }
}
