//! A MySQL plan proved on a real MySQL-protocol server (Debian's MariaDB, which enforces
//! `max_connections` as MySQL does): a throwaway server on 127.0.0.1 with the plan's cap holds
//! every connection the plan can open, refuses one more to the application's ordinary account,
//! and gives an administrator account (SUPER) exactly one more.

use crate::support::{difyplan, json};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// MySQL's error for a connection beyond the cap (ER_CON_COUNT_ERROR, "Too many connections").
const TOO_MANY_CONNECTIONS: u16 = 1040;

#[test]
fn mysql_plan_cap_holds_on_a_real_server() {
    let Some(bin) = mariadbd() else { return };
    let plan = json(&difyplan(&["size", "--qps", "1", "--db-type", "mysql", "--format", "json"]));
    let demand = plan["budget"]["demand"].as_u64().unwrap() as usize;
    let usable = plan["budget"]["usable"].as_u64().unwrap() as usize;
    let settings = plan["database"]["server_settings"].as_array().unwrap();
    let setting = |name: &str| {
        settings.iter().find(|p| p[0] == name).and_then(|p| p[1].as_str()).unwrap_or_else(|| panic!("{name}"))
    };
    let max_connections: usize = setting("max_connections").parse().unwrap();
    assert!(demand <= usable && usable == max_connections, "an ordinary account gets the whole cap");
    assert!(max_connections < 1000, "a small plan keeps the test short: {max_connections}");
    let _guard = crate::pg_server::one_server_at_a_time();
    crate::pg_server::raise_open_files_limit(max_connections + 64);
    // The plan's cap and commit setting; the buffer pool and redo log are kept small here (the
    // plan sizes them for a whole host), since they do not change how connections are counted.
    let server = MariaDb::start(
        &bin,
        &[
            format!("--max_connections={max_connections}"),
            format!("--innodb_flush_log_at_trx_commit={}", setting("innodb_flush_log_at_trx_commit")),
        ],
    );
    let mut held = Vec::new();
    for i in 0..demand {
        held.push(
            server.connect("dify").unwrap_or_else(|e| panic!("connection {} of the plan's {demand}: {e}", i + 1)),
        );
    }
    // The rest of the cap (the plan's headroom) is the application's too.
    for i in demand..max_connections {
        held.push(server.connect("dify").unwrap_or_else(|e| panic!("connection {} of {max_connections}: {e}", i + 1)));
    }
    match server.connect("dify") {
        Err(Refused::Error(code, msg)) => assert_eq!(code, TOO_MANY_CONNECTIONS, "{msg}"),
        other => panic!("connection {} should be refused: {other:?}", max_connections + 1),
    }
    // An administrator (SUPER, as Dify's `root` is) gets exactly one more.
    // The refused connection's thread may still be counted for a moment after its error.
    let deadline = Instant::now() + Duration::from_secs(10);
    let admin = loop {
        match server.connect("admin") {
            Err(Refused::Error(TOO_MANY_CONNECTIONS, _)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            other => break other,
        }
    };
    held.push(admin.expect("the administrator's extra connection"));
    match server.connect("admin") {
        Err(Refused::Error(code, _)) => assert_eq!(code, TOO_MANY_CONNECTIONS),
        other => panic!("max_connections + 2 should be refused: {other:?}"),
    }
    drop(held);
}

/// The server binaries, or a skip (an assertion under CI: the install script must provide them).
fn mariadbd() -> Option<PathBuf> {
    let dir = std::env::var_os("DIFYPLAN_MARIADB_BIN").map(PathBuf::from);
    let found = [dir.map(|d| d.join("mariadbd")), Some("/usr/sbin/mariadbd".into())]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .filter(|_| Command::new("mariadb-install-db").arg("--help").output().is_ok());
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(!ci, "CI is set and no mariadbd / mariadb-install-db: run scripts/install-test-deps first");
        let _ = writeln!(
            io::stderr(),
            "\n*** SKIPPED mysql_server: no MariaDB server; run scripts/install-test-deps ***\n"
        );
    }
    found
}

/// A throwaway MariaDB: its own data folder, 127.0.0.1 and a free port, accounts `dify`
/// (ordinary, on databases dify and dify_plugin) and `admin` (ALL PRIVILEGES, so SUPER), both
/// without a password. Dropped (also on panic) it is killed; started with PR_SET_PDEATHSIG it
/// also dies with the test process.
struct MariaDb {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl MariaDb {
    fn start(bin: &Path, settings: &[String]) -> MariaDb {
        let dir = tempfile::Builder::new().prefix("difyplan-mariadb-").tempdir().unwrap();
        let data = dir.path().join("data");
        // SAFETY: geteuid takes no arguments, cannot fail and touches no memory of ours.
        let root = unsafe { libc::geteuid() } == 0;
        let user = if root { "--user=root".to_string() } else { format!("--user={}", whoami()) };
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .arg(&user)
            .stdin(Stdio::null())
            .output()
            .expect("run mariadb-install-db");
        assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        let init = dir.path().join("init.sql");
        std::fs::write(
            &init,
            // One statement a line: the server reads the init file line by line.
            "CREATE DATABASE dify;\n\
             CREATE DATABASE dify_plugin;\n\
             CREATE USER 'dify'@'%' IDENTIFIED BY '';\n\
             GRANT ALL ON dify.* TO 'dify'@'%';\n\
             GRANT ALL ON dify_plugin.* TO 'dify'@'%';\n\
             CREATE USER 'admin'@'%' IDENTIFIED BY '';\n\
             GRANT ALL PRIVILEGES ON *.* TO 'admin'@'%';\n",
        )
        .unwrap();
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        let mut cmd = Command::new(bin);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--log-error={}", dir.path().join("error.log").display()))
            .arg(format!("--init-file={}", init.display()))
            .arg(format!("--port={port}"))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=32M",
            ])
            .arg(&user)
            .args(settings)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl in the child before exec; async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start mariadbd");
        let mut server = MariaDb { child, port, dir };
        let deadline = Instant::now() + START_TIMEOUT;
        // Ready when `dify` (made by the init file) can log in.
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("mariadbd exited ({status}):\n{}", server.log());
            }
            match server.connect("dify") {
                Ok(_) => break,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                Err(e) => panic!("mariadbd did not accept `dify` in {START_TIMEOUT:?}: {e:?}\n{}", server.log()),
            }
        }
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Log in as `user` (no password) with the client/server protocol, and keep the socket open.
    fn connect(&self, user: &str) -> Result<TcpStream, Refused> {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).map_err(Refused::Io)?;
        s.set_read_timeout(Some(IO_TIMEOUT)).map_err(Refused::Io)?;
        let (seq, greeting) = read_packet(&mut s)?;
        error_of(&greeting)?;
        // HandshakeResponse41: CLIENT_LONG_PASSWORD | PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH.
        let caps: u32 = 0x1 | 0x200 | 0x8000 | 0x80000;
        let mut body = Vec::new();
        body.extend_from_slice(&caps.to_le_bytes());
        body.extend_from_slice(&(1u32 << 24).to_le_bytes());
        body.push(33); // utf8
        body.extend_from_slice(&[0; 23]);
        body.extend_from_slice(user.as_bytes());
        body.push(0);
        body.push(0); // an empty password: no auth data
        body.extend_from_slice(b"mysql_native_password\0");
        write_packet(&mut s, seq.wrapping_add(1), &body)?;
        let (seq, reply) = read_packet(&mut s)?;
        match reply.first() {
            Some(0x00) => Ok(s),
            Some(0xfe) => {
                // An authentication switch: answer with the empty password again.
                write_packet(&mut s, seq.wrapping_add(1), &[])?;
                let (_, reply) = read_packet(&mut s)?;
                error_of(&reply)?;
                Ok(s)
            }
            _ => {
                error_of(&reply)?;
                Err(Refused::Protocol(format!("unexpected reply {reply:?}")))
            }
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Debug)]
enum Refused {
    Io(#[allow(dead_code)] io::Error),
    /// The server's ERR packet: code and message.
    Error(u16, String),
    Protocol(#[allow(dead_code)] String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

fn error_of(packet: &[u8]) -> Result<(), Refused> {
    if packet.first() == Some(&0xff) && packet.len() >= 3 {
        let code = u16::from_le_bytes([packet[1], packet[2]]);
        return Err(Refused::Error(code, String::from_utf8_lossy(&packet[3..]).into_owned()));
    }
    Ok(())
}

fn read_packet(s: &mut TcpStream) -> Result<(u8, Vec<u8>), Refused> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).map_err(Refused::Io)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
    let mut body = vec![0; len];
    s.read_exact(&mut body).map_err(Refused::Io)?;
    Ok((head[3], body))
}

fn write_packet(s: &mut TcpStream, seq: u8, body: &[u8]) -> Result<(), Refused> {
    let len = (body.len() as u32).to_le_bytes();
    let mut packet = vec![len[0], len[1], len[2], seq];
    packet.extend_from_slice(body);
    s.write_all(&packet).map_err(Refused::Io)
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "nobody".into())
}
