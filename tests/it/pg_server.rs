//! Plans proved against a real PostgreSQL server: a throwaway server set up like Dify's,
//! the plan's whole worst-case demand opened at once, then the cap and the superuser reserve probed.

use crate::support::{Run, difyplan, json};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Where Debian's packages put each major version's server binaries (not on PATH).
const DEBIAN_LAYOUT: &str = "/usr/lib/postgresql";
/// The application role every plan here assumes (`input.app_role_superuser == false`).
pub(crate) const APP_ROLE: &str = "dify_app";
/// How long a starting server may take before the test gives up on it.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one connection attempt may wait for the server before it counts as hung.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections whose startup packets are sent before their answers are read: the postmaster
/// forks one backend per connection, and letting them initialise side by side instead of one by
/// one makes thousands of connections take seconds.
const PIPELINE: usize = 64;

/// One server at a time: the large plan alone runs about two thousand backends, and the machine
/// (and CI's) is shared.
pub(crate) static ONE_SERVER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Held by a test while its server runs (other test modules start servers too).
pub fn one_server_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_SERVER_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The tests

/// A small plan, with the cap difyplan chooses for it.
#[test]
fn small_plan_holds_on_a_real_server() {
    prove_plan(&["--qps", "10", "--profile", "workflow"]);
}

/// A large plan: about two thousand connections, the scale where a real server's limits
/// (semaphores, shared memory, file descriptors) would show up. The host is given as 16 GiB so
/// the rendered shared_buffers (4 GB) can be mapped on a 24 GiB test machine; the plan's own
/// choice would be larger, and its memory warning says so.
#[test]
fn large_plan_holds_on_a_real_server() {
    prove_plan(&["--qps", "200", "--profile", "workflow", "--pg-memory", "16GiB"]);
}

/// A managed database's fixed cap: the plan's demand stays below it, so the test first fills
/// the cap to the last usable slot and only then probes the reserve.
#[test]
fn plan_under_a_managed_cap_holds_on_a_real_server() {
    prove_plan(&["--qps", "30", "--profile", "workflow", "--pg-max-connections", "400"]);
}

/// Runs `difyplan size <args>` as JSON and as `.env`, starts a server with exactly the rendered
/// `POSTGRES_MAX_CONNECTIONS` and the other rendered `POSTGRES_*` settings, and checks the budget on it: every
/// usable slot opens for the application role, one more does not, a superuser still gets in.
fn prove_plan(args: &[&str]) {
    let plan = json(&size(args, "json"));
    let env = size(args, "env").stdout;
    let max_connections = env_value(&env, "POSTGRES_MAX_CONNECTIONS")
        .unwrap_or_else(|| panic!("{args:?}: no POSTGRES_MAX_CONNECTIONS in\n{env}"));
    let budget = &plan["budget"];
    let count = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("{args:?}: not a count: {v}")) as usize;
    assert_eq!(
        max_connections.parse::<usize>().ok(),
        Some(count(&plan["database"]["max_connections"])),
        "{args:?}: env and JSON disagree"
    );
    assert_eq!(plan["input"]["app_role_superuser"], false, "{args:?}: these tests prove the dedicated-role budget");
    assert_eq!(
        budget["cap"]["reserved_connections"], 0,
        "{args:?}: the test server keeps PostgreSQL 16's default reserved_connections=0"
    );
    let reserved = count(&budget["cap"]["superuser_reserved_connections"]);
    let (demand, usable) = (count(&budget["demand"]), count(&budget["usable"]));
    assert_eq!(
        usable,
        count(&plan["database"]["max_connections"]) - reserved,
        "{args:?}: a non-superuser role can use max_connections − {reserved}"
    );
    assert!(demand <= usable, "{args:?}: the plan does not fit ({demand} > {usable})");

    // Where the components connect: the plugin daemon to `dify_plugin`, everyone else (the
    // migration and admin reserves included) to `dify`.
    let plugin = budget["lines"]
        .as_array()
        .expect("budget.lines")
        .iter()
        .filter(|l| l["component"] == "plugin_daemon")
        .map(|l| count(&l["connections"]))
        .sum::<usize>();
    let mut targets = vec!["dify_plugin"; plugin];
    targets.resize(demand, "dify");
    // A plan below its cap: fill the rest so the probe below meets the cap, not the plan.
    targets.resize(usable, "dify");

    let Some(bin) = PgBin::find_or_skip(&format!("size {}", args.join(" "))) else { return };
    let _one = ONE_SERVER_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    raise_open_files_limit(usable + 64);
    let settings: Vec<(&str, String)> =
        std::iter::once(("max_connections", max_connections.clone())).chain(rendered_settings(&env)).collect();
    let started = Instant::now();
    let server = PgServer::start_with(&bin, &settings);
    let up = started.elapsed();

    let admin = server.connect("postgres", "postgres").expect("superuser connection for the checks");
    assert_eq!(admin.query("SHOW max_connections"), settings[0].1, "the server runs with the plan's max_connections");
    assert_eq!(
        admin.query("SHOW superuser_reserved_connections"),
        reserved.to_string(),
        "the plan's reserve is the server's"
    );
    if bin.major >= 16 {
        assert_eq!(admin.query("SHOW reserved_connections"), "0");
    }
    // Its slot must be free before the fill, or the last usable slot would look taken.
    admin.close();

    let opened = Instant::now();
    let held: Vec<PgConn> = server
        .connect_many(APP_ROLE, &targets)
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            conn.unwrap_or_else(|e| {
                panic!("{args:?}: connection {} of {usable} ({demand} demanded) to {} refused: {e}", i + 1, targets[i])
            })
        })
        .collect();
    let open_time = opened.elapsed();
    assert!(held.iter().all(|c| c.parameter("is_superuser") == Some("off")), "{APP_ROLE} must not be a superuser");

    // All usable slots are taken but `reserved` are still free: PostgreSQL refuses the
    // application role because of the reservation (53300, "remaining connection slots are
    // reserved for ... superuser ..."), not because the server is full ("sorry, too many
    // clients already", also 53300).
    let refused =
        server.connect(APP_ROLE, "dify").map(drop).expect_err("one connection beyond the usable cap must be refused");
    assert_eq!(refused.code.as_deref(), Some("53300"), "{refused}");
    assert!(
        refused.message.contains("reserved for") && refused.message.to_lowercase().contains("superuser"),
        "refused by the superuser reserve, not by a full server: {refused}"
    );

    // The reserve is there for the superuser: an operator can still get in.
    let operator = server
        .connect("postgres", "dify")
        .unwrap_or_else(|e| panic!("{args:?}: the superuser reserve did not hold: {e}"));
    assert_eq!(operator.parameter("is_superuser"), Some("on"));
    let by_database = |db: &str| {
        operator
            .query(&format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{APP_ROLE}' AND datname = '{db}'"))
    };
    assert_eq!(by_database("dify_plugin"), plugin.to_string());
    assert_eq!(by_database("dify"), (usable - plugin).to_string());

    drop(held);
    drop(operator);
    let stopping = Instant::now();
    drop(server);
    eprintln!(
        "{args:?}: max_connections {max_connections}, demand {demand}, usable {usable}: server up in {up:.2?}, {usable} connections in {open_time:.2?}, stopped in {:.2?}; one more: {refused}",
        stopping.elapsed()
    );
}

fn size(args: &[&str], format: &str) -> Run {
    let argv: Vec<&str> = ["size"].iter().chain(args).chain(&["--format", format]).copied().collect();
    let run = difyplan(&argv);
    assert_eq!(run.code, 0, "difyplan {argv:?}: {}", run.stderr);
    run
}

/// The value of `KEY=value` in a rendered `.env` (comments and blank lines skipped).
fn env_value(env: &str, key: &str) -> Option<String> {
    env.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_string())
}

/// The server settings other than `max_connections` exactly as the rendered `.env` writes them:
/// the `POSTGRES_*` keys Dify's compose file passes to `postgres -c`.
fn rendered_settings(env: &str) -> Vec<(&'static str, String)> {
    [
        "shared_buffers",
        "work_mem",
        "maintenance_work_mem",
        "effective_cache_size",
        "statement_timeout",
        "idle_in_transaction_session_timeout",
    ]
    .into_iter()
    .map(|setting| {
        let key = format!("POSTGRES_{}", setting.to_uppercase());
        (setting, env_value(env, &key).unwrap_or_else(|| panic!("the rendered .env has no {key}:\n{env}")))
    })
    .collect()
}

/// Every server setting difyplan renders (`database.server_settings`: PGTune's list, the
/// timeouts) for a plan on a given host.
fn server_settings(args: &[&str]) -> Vec<(String, String)> {
    let plan = json(&size(args, "json"));
    plan["database"]["server_settings"]
        .as_array()
        .expect("server_settings")
        .iter()
        .map(|pair| (pair[0].as_str().unwrap().to_string(), pair[1].as_str().unwrap().to_string()))
        .collect()
}

/// PostgreSQL accepts every setting difyplan renders, values and units, on hosts this
/// machine can start a server for: the server starts with all of them on its command line.
#[test]
fn rendered_server_settings_start_a_real_server() {
    let Some(bin) = PgBin::find_or_skip("rendered server settings") else { return };
    let _one = ONE_SERVER_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for host in [
        ["--pg-memory", "4GiB", "--pg-cpus", "2", "--pg-storage", "ssd"],
        ["--pg-memory", "8GiB", "--pg-cpus", "4", "--pg-storage", "hdd"],
        ["--pg-memory", "16GiB", "--pg-cpus", "8", "--pg-storage", "nvme"],
    ] {
        let mut args = vec!["--qps", "20", "--profile", "workflow", "--pg-version", "15"];
        args.extend_from_slice(&host);
        let settings = server_settings(&args);
        assert!(settings.len() >= 15, "{host:?}: {settings:?}");
        // This machine reserves no huge pages: `on` would stop the server at start, so it starts
        // with `try`; that the plan's reservation suffices is proved by pg_tuning.rs.
        let settings: Vec<(String, String)> = settings
            .into_iter()
            .map(|(k, v)| if k == "huge_pages" && v == "on" { (k, "try".to_string()) } else { (k, v) })
            .collect();
        let refs: Vec<(&str, String)> = settings.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let server = PgServer::start_with(&bin, &refs);
        let admin = server.connect("postgres", "postgres").expect("superuser connection");
        for (name, value) in &settings {
            let source = admin.query(&format!("SELECT source FROM pg_settings WHERE name = '{name}'"));
            assert_eq!(source, "command line", "{host:?}: {name}={value} was not taken from the command line");
        }
        assert_eq!(admin.query("SHOW shared_buffers"), settings.iter().find(|(k, _)| k == "shared_buffers").unwrap().1);
        admin.close();
    }
}

/// The settings for hosts too large to start here (256 GiB to 16 TiB, which hold this plan): `postgres -C` parses each
/// value with the server's own rules without allocating anything, for the version Dify ships (15)
/// and the installed one.
#[test]
fn rendered_server_settings_for_large_hosts_parse() {
    let Some(bin) = PgBin::find_or_skip("large-host settings") else { return };
    let mut bins = vec![bin];
    if bins[0].major != 15
        && let Some(b15) = PgBin::major(15)
    {
        bins.push(b15);
    }
    for bin in bins {
        let user = ServerUser::get();
        let dir = tempfile::Builder::new().prefix("difyplan-pgc-").tempdir().unwrap();
        user.own(dir.path());
        let data = dir.path().join("data");
        let init = user
            .command(&bin.dir.join("initdb"))
            .args(["--username=postgres", "--auth=trust", "--no-sync", "--pgdata"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
        for memory in ["256GiB", "1TiB", "16TiB"] {
            let version = bin.major.to_string();
            let settings = server_settings(&[
                "--qps",
                "2000",
                "--profile",
                "chat",
                "--pg-memory",
                memory,
                "--pg-cpus",
                "64",
                "--pg-version",
                &version,
            ]);
            for (name, value) in &settings {
                let out = user
                    .command(&bin.dir.join("postgres"))
                    .arg("-D")
                    .arg(&data)
                    .arg("-C")
                    .arg(name)
                    .arg("-c")
                    .arg(format!("{name}={value}"))
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "PostgreSQL {} refuses {name}={value} ({memory}): {}",
                    bin.major,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// Thousands of held sockets need as many descriptors; many shells start with a soft limit of
/// 1024, so lift it to the hard limit, or say what to change.
pub(crate) fn raise_open_files_limit(needed: usize) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0, "getrlimit: {}", io::Error::last_os_error());
        if (limit.rlim_cur as usize) < needed {
            assert!(
                limit.rlim_max as usize >= needed,
                "{needed} open files are needed but the hard limit is {}: raise `ulimit -Hn`",
                limit.rlim_max
            );
            limit.rlim_cur = limit.rlim_max;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0, "setrlimit: {}", io::Error::last_os_error());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Finding the server binaries

/// One installed PostgreSQL's server binaries (`initdb`, `postgres`).
pub struct PgBin {
    dir: PathBuf,
    pub major: u32,
}

impl PgBin {
    /// The binaries to test with: `DIFYPLAN_PG_BIN` (a folder), else `DIFYPLAN_PG_MAJOR` (a
    /// Debian major version), else the newest in Debian's layout, else `initdb` on PATH.
    /// Asking for one by name that is not there is an error, never a skip.
    pub fn find() -> Option<PgBin> {
        if let Some(dir) = std::env::var_os("DIFYPLAN_PG_BIN") {
            return Some(Self::at(PathBuf::from(&dir)).unwrap_or_else(|| {
                panic!("DIFYPLAN_PG_BIN={}: no initdb and postgres there", Path::new(&dir).display())
            }));
        }
        if let Ok(major) = std::env::var("DIFYPLAN_PG_MAJOR") {
            let major = major
                .parse()
                .unwrap_or_else(|_| panic!("DIFYPLAN_PG_MAJOR={major}: expected a major version such as 15"));
            return Some(
                Self::major(major).unwrap_or_else(|| {
                    panic!("DIFYPLAN_PG_MAJOR={major}: not installed in {DEBIAN_LAYOUT}/{major}/bin")
                }),
            );
        }
        let newest = std::fs::read_dir(DEBIAN_LAYOUT)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(Self::major)
            .max_by_key(|b| b.major);
        newest.or_else(|| std::env::split_paths(&std::env::var_os("PATH")?).find_map(Self::at))
    }

    /// The folder of the server binaries (Debian's holds `psql` too).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A specific major version from Debian's layout, e.g. `PgBin::major(15)`.
    pub fn major(major: u32) -> Option<PgBin> {
        Self::at(Path::new(DEBIAN_LAYOUT).join(major.to_string()).join("bin"))
    }

    /// The folder if it holds both binaries, with the major version `postgres --version` reports.
    fn at(dir: PathBuf) -> Option<PgBin> {
        if !dir.join("initdb").is_file() || !dir.join("postgres").is_file() {
            return None;
        }
        let out = Command::new(dir.join("postgres")).arg("--version").output().ok()?;
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.split_whitespace().nth(2)?;
        let major = version.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
        Some(PgBin { dir, major })
    }

    /// `find()`, or `None` after a loud message when nothing is installed outside CI. In CI a
    /// missing server fails the test: `scripts/install-test-deps` must have installed one.
    pub fn find_or_skip(test: &str) -> Option<PgBin> {
        if let Some(bin) = Self::find() {
            return Some(bin);
        }
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        let what = format!(
            "no PostgreSQL server binaries (initdb, postgres) in {DEBIAN_LAYOUT}/*/bin, DIFYPLAN_PG_BIN or PATH"
        );
        assert!(!ci, "CI is set and {what}: run scripts/install-test-deps before the tests");
        // Straight to the stderr descriptor: libtest captures `eprintln!` of passing tests.
        let _ = writeln!(
            io::stderr(),
            "\n*** SKIPPED pg_server `{test}`: {what}. Run scripts/install-test-deps to test plans against a real server. ***\n"
        );
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The server

/// A throwaway PostgreSQL server set up like Dify's: superuser `postgres`, databases `dify` and
/// `dify_plugin`, and the non-superuser application role `dify_app` allowed to connect to both.
///
/// It listens on 127.0.0.1 only (trust authentication) and keeps its socket, data and log in a
/// temporary folder. Dropping it (also while a test unwinds from a panic) stops the server
/// immediately and removes the folder.
///
/// Why the server cannot outlive the test process: the postmaster is this process's own child
/// (not daemonised by `pg_ctl`) and is started with `PR_SET_PDEATHSIG = SIGQUIT`, so if the
/// thread that started it dies without running `Drop` (the test binary is killed, aborts, or
/// gets Ctrl-C), the kernel sends it SIGQUIT, PostgreSQL's immediate shutdown, which also stops
/// its backends. No watchdog process is needed. Only the temporary folder is left behind then.
/// A `PgServer` must therefore stay on the thread that started it.
pub struct PgServer {
    postmaster: Child,
    port: u16,
    dir: TempDir,
}

impl PgServer {
    /// A server from the newest installed binaries (see [`PgBin::find`]) with `-c` settings.
    #[allow(dead_code)] // the harness's short form; the tests pass the binaries they checked for
    pub fn start(settings: &[(&str, String)]) -> PgServer {
        let bin = PgBin::find().expect("no PostgreSQL server installed: run scripts/install-test-deps");
        Self::start_with(&bin, settings)
    }

    /// `initdb`, start with `settings` as `-c name=value`, wait until it accepts connections,
    /// and create Dify's databases and role.
    pub fn start_with(bin: &PgBin, settings: &[(&str, String)]) -> PgServer {
        // A free port is picked by binding port 0; another process may take it before the
        // postmaster does, so a lost race is retried from scratch with a new port.
        let mut attempt = 1;
        loop {
            match Self::try_start(bin, settings) {
                Ok(server) => {
                    server.create_dify_databases();
                    return server;
                }
                Err(log) if attempt < 3 && log.contains("could not bind") => attempt += 1,
                Err(log) => panic!("PostgreSQL {} did not start with {settings:?}:\n{log}", bin.major),
            }
        }
    }

    /// One `initdb` and start; on failure the server's log (the folder is gone by then).
    fn try_start(bin: &PgBin, settings: &[(&str, String)]) -> Result<PgServer, String> {
        let user = ServerUser::get();
        let dir = tempfile::Builder::new().prefix("difyplan-pg-").tempdir().expect("temporary folder for the server");
        user.own(dir.path());
        let data = dir.path().join("data");
        let initdb = user
            .command(&bin.dir.join("initdb"))
            .args(["--username=postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--pgdata"])
            .arg(&data)
            .output()
            .expect("run initdb");
        if !initdb.status.success() {
            return Err(format!(
                "initdb failed:\n{}{}",
                String::from_utf8_lossy(&initdb.stdout),
                String::from_utf8_lossy(&initdb.stderr)
            ));
        }

        let port =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("a free local port").port();
        let postmaster = Self::spawn(bin, &user, dir.path(), port, settings);
        let mut server = PgServer { postmaster, port, dir };
        server.wait_until_ready().map(|()| server)
    }

    /// The postmaster on `dir`'s data folder, logging to `dir/postgres.log` (appended).
    fn spawn(bin: &PgBin, user: &ServerUser, dir: &Path, port: u16, settings: &[(&str, String)]) -> Child {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(dir.join("postgres.log")).expect("server log");
        let mut cmd = user.command(&bin.dir.join("postgres"));
        cmd.arg("-D").arg(dir.join("data")).arg("-p").arg(port.to_string());
        cmd.arg("-c").arg("listen_addresses=127.0.0.1");
        cmd.arg("-c").arg(format!("unix_socket_directories={}", dir.display()));
        // Test data need not survive a crash; this spares the disk CREATE DATABASE's syncs.
        cmd.arg("-c").arg("fsync=off");
        for (name, value) in settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        cmd.spawn().expect("run postgres")
    }

    /// Stop the server and start it again on the same data and port with `settings` on its
    /// command line (what `ALTER SYSTEM` wrote is read at this start); the log on failure.
    pub fn restart_with(&mut self, bin: &PgBin, settings: &[(&str, String)]) -> Result<(), String> {
        self.stop();
        self.postmaster = Self::spawn(bin, &ServerUser::get(), self.dir.path(), self.port, settings);
        self.wait_until_ready()
    }

    /// Polls with superuser connections until one succeeds; on failure returns the server's log.
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let error = match self.connect("postgres", "postgres") {
                Ok(probe) => {
                    probe.close();
                    return Ok(());
                }
                Err(e) => e,
            };
            if let Ok(Some(status)) = self.postmaster.try_wait() {
                return Err(format!("postgres exited ({status}):\n{}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after {START_TIMEOUT:?} ({error}):\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn create_dify_databases(&self) {
        let admin = self.connect("postgres", "postgres").expect("superuser connection");
        for sql in [
            format!("CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER"),
            "CREATE DATABASE dify".to_string(),
            "CREATE DATABASE dify_plugin".to_string(),
            // PUBLIC may connect anywhere by default; take that away so the grant is what lets
            // the application role in.
            "REVOKE CONNECT ON DATABASE dify, dify_plugin FROM PUBLIC".to_string(),
            format!("GRANT CONNECT ON DATABASE dify, dify_plugin TO {APP_ROLE}"),
        ] {
            admin.try_query(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        admin.close();
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// One connection over TCP, as a real component would make it.
    pub fn connect(&self, user: &str, database: &str) -> Result<PgConn, PgError> {
        let mut conn = PgConn::open(self.port)?;
        conn.send_startup(user, database)?;
        conn.finish_startup()?;
        Ok(conn)
    }

    /// One connection as `user` to each of `databases`, opened [`PIPELINE`] at a time; the
    /// results are in the order of `databases`.
    pub fn connect_many(&self, user: &str, databases: &[&str]) -> Vec<Result<PgConn, PgError>> {
        let mut done = Vec::with_capacity(databases.len());
        for batch in databases.chunks(PIPELINE) {
            let sent: Vec<Result<PgConn, PgError>> = batch
                .iter()
                .map(|db| {
                    let mut conn = PgConn::open(self.port)?;
                    conn.send_startup(user, db)?;
                    Ok(conn)
                })
                .collect();
            done.extend(sent.into_iter().map(|c| c.and_then(|mut c| c.finish_startup().map(|()| c))));
        }
        done
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log"))
            .unwrap_or_else(|e| format!("(no server log: {e})"))
    }

    /// Immediate shutdown (SIGQUIT, what `pg_ctl stop -m immediate` sends), escalating to
    /// SIGKILL if the server has not exited within ten seconds; the postmaster is reaped either
    /// way, so its pid cannot be reused under us.
    fn stop(&mut self) {
        if !matches!(self.postmaster.try_wait(), Ok(None)) {
            return; // exited and reaped already: its pid may belong to someone else by now
        }
        // SAFETY: signalling our own child, not reaped yet, so the pid is still its own.
        unsafe { libc::kill(self.postmaster.id() as i32, libc::SIGQUIT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.postmaster.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = self.postmaster.kill();
                let _ = self.postmaster.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        // The TempDir field is dropped next and removes the folder.
    }
}

/// Who the server runs as. PostgreSQL refuses to run as root, so when the tests run as root
/// (CI containers) the server runs as the `postgres` account that Debian's package creates, else
/// as `nobody` (or `DIFYPLAN_PG_USER`). `Command::uid` switches user in the child itself: no
/// `su`, `runuser` or `sudo` needed, nothing asks for a password.
pub(crate) struct ServerUser {
    /// `None` when the tests do not run as root: the server runs as the current user.
    ids: Option<(u32, u32)>,
}

impl ServerUser {
    pub(crate) fn get() -> ServerUser {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return ServerUser { ids: None };
        }
        let names = match std::env::var("DIFYPLAN_PG_USER") {
            Ok(name) => vec![name],
            Err(_) => vec!["postgres".to_string(), "nobody".to_string()],
        };
        let ids = names.iter().find_map(|n| user_ids(n)).unwrap_or_else(|| {
            panic!("running as root and none of the users {names:?} exists to run PostgreSQL as: set DIFYPLAN_PG_USER")
        });
        ServerUser { ids: Some(ids) }
    }

    /// Hands the server's folder to the server's user.
    pub(crate) fn own(&self, dir: &Path) {
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", dir.display()));
            // The server's user must reach the folder through its parents (TMPDIR may be private).
            let blocked = dir.ancestors().skip(1).find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o001 == 0)
            });
            assert!(
                blocked.is_none(),
                "{} is not reachable by the server's user (uid {uid}) because of {}: point TMPDIR elsewhere",
                dir.display(),
                blocked.unwrap().display()
            );
        }
    }

    /// A command that runs as the server's user and dies with the thread that started it.
    pub(crate) fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_remove("PGDATA").env_remove("PGPORT").env_remove("PGHOST");
        if let Some((uid, gid)) = self.ids {
            cmd.uid(uid).gid(gid);
        }
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
        // functions. It runs after the switch of user, which would clear the death signal.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before the death signal was armed.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        cmd
    }
}

/// `(uid, gid)` of a user from the system's user database.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let name = CString::new(name).ok()?;
    // SAFETY: getpwnam_r fills `pwd` with pointers into `buf`, both outliving their use here.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found);
        (rc == 0 && !found.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal client

/// A PostgreSQL wire-protocol (v3) connection: startup with trust authentication, simple
/// queries, and Terminate on drop. Raw rather than a driver so that a held connection costs one
/// socket and nothing else, which keeps thousands of them cheap and fast to open.
pub struct PgConn {
    pub(crate) stream: TcpStream,
    /// What the server reported at startup (`ParameterStatus`), e.g. `is_superuser`.
    parameters: HashMap<String, String>,
    terminated: bool,
}

/// A refusal from the server (with its SQLSTATE) or an I/O failure (without).
#[derive(Debug)]
pub struct PgError {
    pub code: Option<String>,
    pub message: String,
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(code) => write!(f, "SQLSTATE {code}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl From<io::Error> for PgError {
    fn from(e: io::Error) -> Self {
        PgError { code: None, message: e.to_string() }
    }
}

impl PgConn {
    pub(crate) fn open(port: u16) -> Result<PgConn, PgError> {
        let stream = TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(PgConn { stream, parameters: HashMap::new(), terminated: false })
    }

    fn send_startup(&mut self, user: &str, database: &str) -> Result<(), PgError> {
        let mut body = 196_608_u32.to_be_bytes().to_vec(); // protocol 3.0
        for (key, value) in [("user", user), ("database", database), ("application_name", "difyplan-test")] {
            for s in [key, value] {
                body.extend_from_slice(s.as_bytes());
                body.push(0);
            }
        }
        body.push(0);
        let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        message.extend(body);
        self.stream.write_all(&message)?;
        Ok(())
    }

    /// Reads until ReadyForQuery (accepted) or ErrorResponse (refused, e.g. 53300).
    pub(crate) fn finish_startup(&mut self) -> Result<(), PgError> {
        loop {
            let (tag, body) = self.read_message()?;
            match tag {
                b'R' if body.get(..4) == Some(&[0, 0, 0, 0]) => {} // AuthenticationOk
                b'R' => {
                    return Err(PgError {
                        code: None,
                        message: "the server asks for a password; the harness sets up trust authentication".into(),
                    });
                }
                b'S' => {
                    let mut parts = body.split(|b| *b == 0).map(|s| String::from_utf8_lossy(s).into_owned());
                    if let (Some(name), Some(value)) = (parts.next(), parts.next()) {
                        self.parameters.insert(name, value);
                    }
                }
                b'E' => return Err(error_response(&body)),
                b'Z' => return Ok(()),
                _ => {} // BackendKeyData, NoticeResponse
            }
        }
    }

    /// Terminate and wait until the server closes the socket. A backend closes it only after
    /// releasing its connection slot, so the slot is free when this returns; a plain drop
    /// frees it a moment later.
    pub fn close(mut self) {
        let _ = self.stream.write_all(&[b'X', 0, 0, 0, 4]);
        self.terminated = true;
        let _ = io::copy(&mut self.stream, &mut io::sink());
    }

    /// A parameter the server reported at startup.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// One statement by the simple query protocol; the first column of its first row, or "".
    pub fn try_query(&self, sql: &str) -> Result<String, PgError> {
        let mut message = vec![b'Q'];
        message.extend(((sql.len() + 5) as u32).to_be_bytes());
        message.extend(sql.as_bytes());
        message.push(0);
        (&self.stream).write_all(&message)?;
        let (mut first, mut error) = (None, None);
        loop {
            let (tag, body) = self.read_message()?;
            match tag {
                b'D' if first.is_none() => first = Some(first_column(&body)),
                b'E' => error = Some(error_response(&body)),
                b'Z' => return error.map_or_else(|| Ok(first.unwrap_or_default()), Err),
                _ => {}
            }
        }
    }

    pub fn query(&self, sql: &str) -> String {
        self.try_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub(crate) fn read_message(&self) -> io::Result<(u8, Vec<u8>)> {
        let mut head = [0_u8; 5];
        (&self.stream).read_exact(&mut head)?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0; len.saturating_sub(4)];
        (&self.stream).read_exact(&mut body)?;
        Ok((head[0], body))
    }
}

impl Drop for PgConn {
    /// Terminate, so the backend exits at once instead of logging an unexpected EOF.
    fn drop(&mut self) {
        if !self.terminated {
            let _ = self.stream.write_all(&[b'X', 0, 0, 0, 4]);
        }
    }
}

/// SQLSTATE (`C`) and message (`M`) of an ErrorResponse.
pub(crate) fn error_response(body: &[u8]) -> PgError {
    let mut error = PgError { code: None, message: String::new() };
    let mut rest = body;
    while let [field, tail @ ..] = rest {
        if *field == 0 {
            break;
        }
        let Ok(value) = CStr::from_bytes_until_nul(tail) else { break };
        rest = &tail[value.to_bytes_with_nul().len()..];
        let value = value.to_string_lossy().into_owned();
        match field {
            b'C' => error.code = Some(value),
            b'M' => error.message = value,
            _ => {}
        }
    }
    error
}

/// The first column of a DataRow as text ("" for NULL).
fn first_column(body: &[u8]) -> String {
    let Some(len) = body.get(2..6).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]])) else { return String::new() };
    let len = usize::try_from(len).unwrap_or(0);
    body.get(6..6 + len).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}
