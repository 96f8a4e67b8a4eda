//! `difyplan calibrate` against servers that do not behave: one that accepts and never answers,
//! one that answers garbage, one that drip-feeds bytes, one that hangs up after the startup
//! packet, one that lets the session start and then never answers a query. Each run must end in
//! exit 2 within its own short deadline, name the host and port, and never print the password.
//! The servers listen on 127.0.0.1 only and stop by themselves.

use crate::support::Run;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "H0stile-pa55word";
/// The deadline given to calibrate in these tests (`--connect-timeout`, `--query-timeout`).
const DEADLINE: &str = "1s";
/// Process start and exit on a busy machine, on top of the deadline.
const SLACK: Duration = Duration::from_secs(3);
/// How long a server keeps going before it stops by itself.
const SERVER_LIFE: Duration = Duration::from_secs(12);

#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// Accepts, reads, never writes.
    Silent,
    /// Answers the first bytes with text that is not PostgreSQL's protocol.
    Garbage,
    /// Announces a long message, then sends one byte every 100 ms.
    Drip,
    /// Reads the startup packet and closes the connection.
    HangUp,
    /// Completes the startup (no authentication), then never answers a query.
    StallQueries,
}

/// Starts a server on a free loopback port; its thread ends after [`SERVER_LIFE`].
fn serve(behaviour: Behaviour) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let end = Instant::now() + SERVER_LIFE;
        let mut held: Vec<TcpStream> = Vec::new();
        while Instant::now() < end {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
                    if let Some(s) = greet(stream, behaviour) {
                        held.push(s);
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
            if let Behaviour::Drip = behaviour {
                for s in &mut held {
                    let _ = s.write_all(b"x");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    port
}

/// Reads what the client sends first (an SSL request or a startup packet).
fn read_some(stream: &mut TcpStream) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).unwrap_or(0);
    buf.truncate(n);
    buf
}

/// The server's side of the first exchange; the stream is returned when it is to be kept open.
fn greet(mut stream: TcpStream, behaviour: Behaviour) -> Option<TcpStream> {
    match behaviour {
        Behaviour::Silent => Some(stream),
        Behaviour::Garbage => {
            read_some(&mut stream);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n\x00\xff\x13garbage");
            Some(stream)
        }
        Behaviour::Drip => {
            read_some(&mut stream);
            // An ErrorResponse of 64 KiB, then the server's loop adds a byte every 100 ms.
            let _ = stream.write_all(&[b'E', 0, 1, 0, 0]);
            Some(stream)
        }
        Behaviour::HangUp => {
            read_some(&mut stream);
            None
        }
        Behaviour::StallQueries => {
            let first = read_some(&mut stream);
            // An SSL request (length 8, code 80877103) is refused with `N`; then the startup packet.
            if first.len() == 8 && first[4..8] == [0x04, 0xd2, 0x16, 0x2f] {
                let _ = stream.write_all(b"N");
                read_some(&mut stream);
            }
            // AuthenticationOk, BackendKeyData, ReadyForQuery (idle).
            let mut hello = vec![b'R', 0, 0, 0, 8, 0, 0, 0, 0];
            hello.extend([b'K', 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 2]);
            hello.extend([b'Z', 0, 0, 0, 5, b'I']);
            let _ = stream.write_all(&hello);
            Some(stream)
        }
    }
}

/// Runs calibrate with a hard stop well past its deadline, so a binary without bounds fails the
/// test instead of hanging it.
fn calibrate(args: &[&str]) -> (Run, Duration) {
    let started = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_difyplan"));
    cmd.arg("calibrate").args(args).env("NO_COLOR", "1").stdout(Stdio::piped()).stderr(Stdio::piped());
    for k in ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE", "PGSSLROOTCERT"] {
        cmd.env_remove(k);
    }
    let mut child = cmd.spawn().expect("spawn difyplan");
    let hard_stop = Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > hard_stop {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("collect output");
    let took = started.elapsed();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (run, took)
}

#[test]
fn every_network_step_is_bounded() {
    let cases: [(Behaviour, &str, &str); 6] = [
        (Behaviour::Silent, "disable", "no complete answer within 1 s"),
        (Behaviour::Silent, "prefer", "no complete answer within 1 s"),
        (Behaviour::Garbage, "disable", "127.0.0.1"),
        (Behaviour::Drip, "disable", "no complete answer within 1 s"),
        (Behaviour::HangUp, "disable", "127.0.0.1"),
        (Behaviour::StallQueries, "disable", "no complete answer within 2 s"),
    ];
    // The deadline the run may take: the connect bound, or (queries) the query bound of 1 s plus as much again.
    let bound =
        |b: Behaviour| if let Behaviour::StallQueries = b { Duration::from_secs(2) } else { Duration::from_secs(1) };
    for (behaviour, sslmode, expect) in cases {
        let port = serve(behaviour);
        let url = format!("postgresql://reader:{SECRET}@127.0.0.1:{port}/dify?sslmode={sslmode}");
        let (r, took) = calibrate(&[
            "--database-url",
            &url,
            "--since",
            "1h",
            "--connect-timeout",
            DEADLINE,
            "--query-timeout",
            DEADLINE,
        ]);
        let what = format!("{behaviour:?} (sslmode={sslmode})");
        assert_eq!(r.code, 2, "{what}: {}{}", r.stdout, r.stderr);
        assert!(took < bound(behaviour) + SLACK, "{what}: took {took:?}: {}", r.stderr);
        assert!(r.stderr.contains(&format!("127.0.0.1:{port}")), "{what}: names the host and port: {}", r.stderr);
        assert!(r.stderr.contains(expect), "{what}: expected `{expect}` in {}", r.stderr);
        assert!(r.stderr.contains(" — "), "{what}: says what to do: {}", r.stderr);
        assert!(!r.stderr.contains(SECRET) && !r.stdout.contains(SECRET), "{what}: printed the password");
    }
}

/// The bounds are flags with sane values; nonsense is refused before any connection.
#[test]
fn timeout_flags_are_checked() {
    let (r, _) = calibrate(&["--database-url", "postgresql://u@127.0.0.1:1/dify", "--connect-timeout", "0s"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--connect-timeout"), "{}", r.stderr);
    let (r, _) = calibrate(&["--database-url", "postgresql://u@127.0.0.1:1/dify", "--query-timeout", "2d"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--query-timeout"), "{}", r.stderr);
}
