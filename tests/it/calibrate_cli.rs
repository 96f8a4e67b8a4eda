//! `difyplan calibrate` against a real PostgreSQL holding a real Dify 1.16.1 database after known
//! load (`../shared/fixtures/dify-db/1.16.1`, its SOURCE.md gives every run): the rates,
//! durations and the chat/workflow split are recovered; TLS works; `--sample-activity` sees
//! sessions idle in transaction; every way of failing exits 2 quickly without the password.

use crate::pg_server::{PgBin, PgServer, ServerUser};
use crate::support::{Run, difyplan, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The role calibrate reads as in these tests: password authentication, SELECT on Dify's tables.
const READER: &str = "calib_reader";
const SECRET: &str = "Tr0ub4dor-and-3-horses";
/// Any failing run must end within this (the connect timeout is 10 s).
const BOUNDED: Duration = Duration::from_secs(15);

fn dump_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/dify-db/1.16.1")
}

/// One row of SOURCE.md's table of runs.
#[derive(Debug)]
struct SourceRun {
    name: String,
    endpoint: String,
    app: String,
    rate: f64,
    from: String,
    to: String,
    sent: u64,
    succeeded: u64,
    mean_seconds: Option<f64>,
    notes: String,
}

fn source_runs() -> Vec<SourceRun> {
    let text = std::fs::read_to_string(dump_dir().join("SOURCE.md")).expect("SOURCE.md beside the dump");
    let mut runs = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| run")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 10 {
            continue;
        }
        let (start, end) = cells[5].split_once('–').unwrap_or_else(|| panic!("window in {line}"));
        runs.push(SourceRun {
            name: cells[0].into(),
            endpoint: cells[1].into(),
            app: cells[2].into(),
            rate: cells[3].parse().unwrap(),
            from: format!("2026-12-01T{start}"),
            to: format!("2026-12-01T{end}"),
            sent: cells[6].parse().unwrap(),
            succeeded: cells[7].parse().unwrap(),
            mean_seconds: cells[8].parse().ok(),
            notes: cells[9].into(),
        });
    }
    assert!(runs.len() >= 10, "SOURCE.md table not read: {runs:?}");
    runs
}

/// The runs whose every request succeeded without queueing in front of Dify: their rows hold the
/// load as sent. (Runs that queued start rows after their window or time them from later.)
fn clean(run: &SourceRun) -> bool {
    run.succeeded == run.sent
        && run.mean_seconds.is_some()
        && (run.notes.is_empty() || run.notes == "through PgBouncer" || run.notes == "a new conversation per message")
}

/// A window one second wider each side: `messages.created_at` is stored to the second and a
/// row is written a few ms after the client sent the request.
fn widened(iso: &str, by: f64) -> String {
    let (date, time) = iso.split_once('T').unwrap();
    let mut parts = time.split(':');
    let (h, m, s): (f64, f64, f64) = (
        parts.next().unwrap().parse().unwrap(),
        parts.next().unwrap().parse().unwrap(),
        parts.next().unwrap().parse().unwrap(),
    );
    let total = h * 3600.0 + m * 60.0 + s + by;
    let (h, rest) = ((total / 3600.0).floor(), total % 3600.0);
    let (m, s) = ((rest / 60.0).floor(), rest % 60.0);
    format!("{date}T{h:02}:{m:02}:{s:06.3}Z")
}

/// A server with Dify's database loaded from the dump, the reader role, and a pg_hba.conf that
/// asks the reader for its password (everyone else: trust, as the harness's server does).
struct Loaded {
    server: PgServer,
    _hba: tempfile::TempDir,
}

fn start_loaded(bin: &PgBin, extra: &[(&str, String)], hba_first: &str) -> Loaded {
    let hba_dir = tempfile::Builder::new().prefix("difyplan-hba-").tempdir().unwrap();
    let hba = hba_dir.path().join("pg_hba.conf");
    std::fs::write(
        &hba,
        format!(
            "{hba_first}local all all trust\nhost all {READER} 127.0.0.1/32 scram-sha-256\nhostssl all {READER} 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n"
        ),
    )
    .unwrap();
    let user = ServerUser::get();
    user.own(hba_dir.path());
    user.own(&hba);
    let mut settings: Vec<(&str, String)> = vec![("hba_file", hba.display().to_string())];
    settings.extend(extra.iter().cloned());
    let server = PgServer::start_with(bin, &settings);
    load_dump(bin, server.port());
    let admin = server.connect("postgres", "dify").expect("superuser");
    for sql in [
        format!("CREATE ROLE {READER} LOGIN PASSWORD '{SECRET}'"),
        format!("GRANT CONNECT ON DATABASE dify, dify_plugin TO {READER}"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}"),
        "CREATE ROLE no_access LOGIN".into(),
        "GRANT CONNECT ON DATABASE dify TO no_access".into(),
        // What autovacuum does on a live server: the planner's row estimates.
        "ANALYZE".into(),
    ] {
        admin.try_query(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    admin.close();
    Loaded { server, _hba: hba_dir }
}

/// `zcat dump | psql`, as SOURCE.md says.
fn load_dump(bin: &PgBin, port: u16) {
    let psql = [bin.dir().join("psql"), PathBuf::from("/usr/bin/psql")]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("psql"));
    let dump = std::fs::read(dump_dir().join("dify.sql.gz")).expect("the dump");
    let mut zcat = Command::new("gzip")
        .args(["-dc"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut zin = zcat.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut zin, &dump));
    let out = Command::new(&psql)
        .args([
            "-q",
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "dify",
        ])
        .env_remove("PGPASSWORD")
        .env_remove("PGDATABASE")
        .stdin(zcat.stdout.take().unwrap())
        .output()
        .expect("psql (installed with the PostgreSQL server)");
    writer.join().unwrap().unwrap();
    assert!(zcat.wait().unwrap().success());
    assert!(out.status.success(), "loading the dump: {}", String::from_utf8_lossy(&out.stderr));
}

fn url(port: u16, user: &str, password: Option<&str>, db: &str) -> String {
    match password {
        Some(p) => format!("postgresql://{user}:{p}@127.0.0.1:{port}/{db}?sslmode=disable"),
        None => format!("postgresql://{user}@127.0.0.1:{port}/{db}?sslmode=disable"),
    }
}

/// Runs calibrate with the libpq environment cleared except what is given.
fn calibrate(args: &[&str], env: &[(&str, &str)]) -> (Run, Duration) {
    let started = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_difyplan"));
    cmd.arg("calibrate").args(args).env("NO_COLOR", "1");
    for k in ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE", "PGSSLROOTCERT"] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run difyplan");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stdout.contains(SECRET) && !run.stderr.contains(SECRET),
        "the password was printed: {}{}",
        run.stdout,
        run.stderr
    );
    (run, started.elapsed())
}

fn within(measured: f64, expected: f64, what: &str) {
    assert!((measured - expected).abs() <= 0.10 * expected, "{what}: measured {measured}, expected {expected} ± 10%");
}

#[test]
fn fixture_runs_are_recovered_and_failures_exit_2() {
    let Some(bin) = PgBin::find_or_skip("calibrate") else { return };
    let _one = crate::pg_server::one_server_at_a_time();
    let loaded = start_loaded(&bin, &[], "");
    let port = loaded.server.port();
    let port_s = port.to_string();
    let objects = || {
        let admin = loaded.server.connect("postgres", "dify").unwrap();
        let n = admin.query("SELECT count(*) FROM pg_class");
        admin.close();
        n
    };
    let before = objects();

    // Each clean run: rate and duration within 10 %, the split exact. The reader connects
    // through the libpq environment with its password.
    let env = [
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", port_s.as_str()),
        ("PGUSER", READER),
        ("PGPASSWORD", SECRET),
        ("PGDATABASE", "dify"),
        ("PGSSLMODE", "disable"),
    ];
    let runs: Vec<SourceRun> = source_runs().into_iter().filter(clean).collect();
    assert!(runs.len() >= 6, "{runs:?}");
    for run in &runs {
        let (from, to) = (widened(&run.from, -1.0), widened(&run.to, 1.0));
        let (r, _) = calibrate(&["--from", &from, "--to", &to, "--format", "json"], &env);
        assert_eq!(r.code, 0, "{}: {}", run.name, r.stderr);
        let v = json(&r);
        assert_eq!(v["schema_version"], 1);
        let m = &v["measured"];
        within(m["rate"]["mean"].as_f64().unwrap(), run.rate, &format!("{} rate", run.name));
        within(
            m["duration"]["all"]["mean"].as_f64().unwrap(),
            run.mean_seconds.unwrap(),
            &format!("{} duration", run.name),
        );
        let (chat, workflow) =
            (m["requests"]["chat_messages"].as_u64().unwrap(), m["requests"]["workflow_runs"].as_u64().unwrap());
        if run.endpoint.starts_with("chat-messages") {
            assert_eq!((chat, workflow), (run.sent, 0), "{}: {m}", run.name);
            assert_eq!(m["mix"]["chat_share"], 1.0);
        } else {
            assert_eq!((chat, workflow), (0, run.sent), "{}: {m}", run.name);
            assert_eq!(m["mix"]["chat_share"], 0.0);
        }
        assert_eq!(m["requests"]["by_app_mode"][&run.app], run.sent, "{}: {m}", run.name);
        assert_eq!(m["requests"]["by_source"]["service-api"], run.sent, "{}: {m}", run.name);
        // Every request came through the service API: the stated default share streams.
        assert_eq!(m["mix"]["streaming_share"], 0.5, "{}", run.name);
        assert_eq!(m["nodes_per_run"], 3.0, "{}: Start → HTTP Request → End/Answer", run.name);
        assert!(m["concurrency"]["ceiling"].is_null(), "{}: not held back: {}", run.name, m["concurrency"]);
        eprintln!(
            "{}: rate {:.3} (sent {}/s), duration {:.3} s (client {} s), {chat} chat + {workflow} workflow",
            run.name,
            m["rate"]["mean"].as_f64().unwrap(),
            run.rate,
            m["duration"]["all"]["mean"].as_f64().unwrap(),
            run.mean_seconds.unwrap()
        );
        let bytes = m["log"]["bytes_per_request"].as_f64().unwrap();
        assert!((1_000.0..20_000.0).contains(&bytes), "{}: {bytes} log bytes per request", run.name);
    }

    // The measured profile is one `size` takes as it is, at the peak minute it reports.
    let wf = runs.iter().find(|r| r.name == "wf21-plan").expect("wf21-plan in SOURCE.md");
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("mine.toml");
    let mine_s = mine.to_str().unwrap();
    let db_url = url(port, READER, Some(SECRET), "dify");
    let (r, _) =
        calibrate(&["--database-url", &db_url, "--from", &wf.from, "--to", &wf.to, "--write-profile", mine_s], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let next = r.stdout.lines().find_map(|l| l.strip_prefix("next: ")).unwrap_or_else(|| panic!("{}", r.stdout));
    let argv: Vec<&str> = next.split_whitespace().collect();
    assert_eq!(&argv[..3], ["difyplan", "size", "--qps"], "{next}");
    let peak: f64 = argv[3].parse().unwrap();
    assert!((5.0..7.0).contains(&peak), "the peak minute of 5 req/s: {next}");
    assert_eq!(argv[5], mine_s);
    let size = difyplan(&["size", "--qps", argv[3], "--profile", mine_s, "--format", "json"]);
    assert_eq!(size.code, 0, "{}", size.stderr);
    let plan = json(&size);
    within(plan["input"]["profile"]["request_seconds"].as_f64().unwrap(), 20.93, "profile request_seconds");
    let text = std::fs::read_to_string(&mine).unwrap();
    assert!(text.contains("# not measured: from the built-in profile `workflow`\napi_cpu_ms_blocking = "), "{text}");
    assert!(!text.contains(SECRET));
    // --compare: Dify's default compose project beside that load (5 req/s × 21 s ≈ 100 in flight).
    let project = tempfile::tempdir().unwrap();
    std::fs::copy(crate::support::fixture("1.16.1/docker-compose.yaml"), project.path().join("docker-compose.yaml"))
        .unwrap();
    std::fs::copy(crate::support::fixture("1.16.1/env.example"), project.path().join(".env")).unwrap();
    let project_s = project.path().to_str().unwrap();
    let (r, _) = calibrate(
        &["--database-url", &db_url, "--from", &wf.from, "--to", &wf.to, "--compare", project_s, "--format", "json"],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines = json(&r)["compare"]["lines"].as_array().cloned().unwrap_or_default();
    let greenlets = lines.iter().find(|l| l["what"] == "greenlets").unwrap_or_else(|| panic!("{}", r.stdout));
    assert_eq!(greenlets["current"], 10.0);
    assert!(greenlets["needed_mean"].as_f64().unwrap() > 90.0, "{greenlets}");
    // That load ran with more greenlets than this project has: too small, not saturated.
    assert_eq!(json(&r)["compare"]["saturated"], false, "{}", r.stdout);

    // A window held back by 10 greenlets (wf-naive-a: 448 sent at 5/s, 133 rows): requests in
    // flight sat at the project's 10 greenlets. The report, the profile and size say the rate is
    // a lower bound, and --compare says this configuration is saturated, not sized.
    let naive = source_runs().into_iter().find(|r| r.name == "wf-naive-a").expect("wf-naive-a in SOURCE.md");
    let sat = dir.path().join("saturated.toml");
    let sat_s = sat.to_str().unwrap();
    let (from, to) = (widened(&naive.from, -1.0), widened(&naive.to, 1.0));
    let naive_args = ["--database-url", &db_url, "--from", &from, "--to", &to, "--compare", project_s];
    let (r, _) = calibrate(&[&naive_args[..], &["--format", "json", "--write-profile", sat_s]].concat(), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = json(&r);
    let c = &v["measured"]["concurrency"];
    assert_eq!(c["peak"], 10, "{c}");
    let api =
        c["limits"].as_array().unwrap().iter().find(|l| l["what"] == "api greenlets").unwrap_or_else(|| panic!("{c}"));
    assert_eq!((api["limit"].as_f64(), api["saturated"].as_bool()), (Some(10.0), Some(true)), "{c}");
    assert!(api["share"].as_f64().unwrap() > 0.8, "sat at 10 for most of the window: {c}");
    assert_eq!(v["compare"]["saturated"], true);
    let caveats = v["caveats"].as_array().unwrap();
    assert!(caveats.iter().any(|c| c.as_str().unwrap().contains("is a lower bound of the offered load")), "{v}");
    let (r, _) = calibrate(&naive_args, &[]);
    assert!(r.stdout.contains("ATTENTION: saturated") && r.stdout.contains("SATURATED, not sized"), "{}", r.stdout);
    let line = r.stdout.lines().find(|l| l.contains("greenlets") && l.contains(" has ")).unwrap_or_default();
    assert!(
        line.trim_end().ends_with("saturated") || line.contains("  saturated  ("),
        "the greenlet line's verdict: {}",
        r.stdout
    );
    let text = std::fs::read_to_string(&sat).unwrap();
    // Every field of a profile is written, the CPU growth with the wait included.
    for field in ["api_cpu_ms_per_wait_second", "request_seconds", "workflow_log_bytes", "redis_ops"] {
        assert!(text.lines().any(|l| l.starts_with(&format!("{field} = "))), "{field}: {text}");
    }
    assert!(text.contains("caveats = [") && text.contains("lower bound") && text.contains("LOWER BOUND"), "{text}");
    let size = difyplan(&["size", "--qps", "5", "--profile", sat_s]);
    assert_eq!(size.code, 0, "{}", size.stderr);
    assert!(size.stderr.contains("lower bound of the offered load"), "size repeats it: {}", size.stderr);
    // Without a configuration, the plateau is seen as a ceiling.
    let (r, _) = calibrate(&["--database-url", &db_url, "--from", &from, "--to", &to, "--format", "json"], &[]);
    assert_eq!(json(&r)["measured"]["concurrency"]["ceiling"]["level"], 10, "{}", r.stdout);

    // The service API's streaming share: given, it is used and nothing is assumed; not given,
    // 0.5 is an assumption the report highlights, the profile carries and size repeats.
    for (share, streaming) in [("0", 0.0), ("1", 1.0)] {
        let (r, _) = calibrate(
            &[
                "--database-url",
                &db_url,
                "--from",
                &wf.from,
                "--to",
                &wf.to,
                "--format",
                "json",
                "--service-api-streaming-share",
                share,
            ],
            &[],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        let v = json(&r);
        assert_eq!(v["measured"]["mix"]["streaming_share"], streaming);
        assert_eq!(v["profile"]["streaming_share"], streaming);
        assert!(v["caveats"].as_array().unwrap().is_empty(), "{v}");
    }
    let (r, _) = calibrate(&["--database-url", &db_url, "--from", &wf.from, "--to", &wf.to], &[]);
    assert!(
        r.stdout.contains("ATTENTION: assumed: 100.0% of the requests came through the service API"),
        "{}",
        r.stdout
    );
    let text = std::fs::read_to_string(&mine).unwrap();
    assert!(text.contains("# ASSUMED in part") && text.contains("caveats = ["), "{text}");
    let size = difyplan(&["size", "--qps", "5", "--profile", mine_s]);
    assert!(size.stderr.contains("streaming_share 0.5000 is an assumption"), "{}", size.stderr);
    // The connection read from a Dify project's .env, as `check` reads it.
    let env_path = project.path().join(".env");
    let env_text = std::fs::read_to_string(&env_path)
        .unwrap()
        .replace("DB_USERNAME=postgres", &format!("DB_USERNAME={READER}"))
        .replace("DB_PASSWORD=difyai123456", &format!("DB_PASSWORD={SECRET}"))
        .replace("DB_HOST=db_postgres", "DB_HOST=127.0.0.1")
        .replace("DB_PORT=5432", &format!("DB_PORT={port}"));
    assert!(env_text.contains(SECRET) && env_text.contains("DB_HOST=127.0.0.1"));
    std::fs::write(&env_path, env_text).unwrap();
    let (r, _) =
        calibrate(&[project_s, "--from", &wf.from, "--to", &wf.to, "--format", "json"], &[("PGSSLMODE", "disable")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(json(&r)["database"], format!("{READER}@127.0.0.1:{port}/dify"));
    // Never overwritten without --force.
    std::fs::write(&mine, "keep").unwrap();
    let (r, _) =
        calibrate(&["--database-url", &db_url, "--from", &wf.from, "--to", &wf.to, "--write-profile", mine_s], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "keep");

    // --sample-activity: three sessions held idle in transaction are seen, by state and client.
    let held: Vec<_> = (0..3)
        .map(|_| {
            let c = loaded.server.connect("dify_app", "dify").expect("dify_app");
            c.try_query("BEGIN; SELECT 1").expect("open a transaction");
            c
        })
        .collect();
    let admin_url = url(port, "postgres", None, "dify");
    let (r, _) = calibrate(
        &[
            "--database-url",
            &admin_url,
            "--from",
            &wf.from,
            "--to",
            &wf.to,
            "--sample-activity",
            "1s",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let a = &json(&r)["activity"];
    assert!(a["samples"].as_u64().unwrap() >= 5, "{a}");
    assert_eq!(a["by_state"]["idle in transaction"]["peak"], 3, "{a}");
    assert!(a["by_state"]["idle in transaction"]["mean"].as_f64().unwrap() >= 2.9, "{a}");
    let app =
        a["by_client"].as_array().unwrap().iter().find(|c| c["role"] == "dify_app").unwrap_or_else(|| panic!("{a}"));
    assert_eq!(app["held"]["peak"], 3, "{a}");
    assert!(a["connections_per_request"].is_null(), "no requests arrive during the sample: {a}");
    let (r, _) =
        calibrate(&["--database-url", &admin_url, "--from", &wf.from, "--to", &wf.to, "--sample-activity", "1s"], &[]);
    assert!(r.stdout.contains("idle in transaction"), "{}", r.stdout);
    drop(held);

    // Failures: exit 2, what to do, bounded time, no password.
    let admin = loaded.server.connect("postgres", "dify").unwrap();
    admin.try_query("CREATE DATABASE dify_old TEMPLATE dify").ok();
    admin.close();
    let old = loaded.server.connect("postgres", "dify_old").expect("dify_old");
    old.try_query("ALTER TABLE messages DROP COLUMN invoke_from").expect("drop a column");
    old.try_query(&format!("GRANT CONNECT ON DATABASE dify_old TO {READER}")).unwrap();
    old.close();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let wrong = format!("postgresql://{READER}:not-{SECRET}@127.0.0.1:{port}/dify?sslmode=disable");
    let cases: Vec<(String, Vec<String>, &str)> = vec![
        (
            "role without table access".into(),
            vec!["--database-url".into(), url(port, "no_access", None, "dify")],
            "may not read table",
        ),
        (
            "not Dify's database".into(),
            vec!["--database-url".into(), url(port, READER, Some(SECRET), "dify_plugin")],
            "none of Dify's tables",
        ),
        (
            "an older schema".into(),
            vec!["--database-url".into(), url(port, READER, Some(SECRET), "dify_old")],
            "`messages.invoke_from`",
        ),
        ("a wrong password".into(), vec!["--database-url".into(), wrong], "password authentication failed"),
        (
            "nothing listening".into(),
            vec!["--database-url".into(), url(closed, READER, Some(SECRET), "dify")],
            "nothing listens there",
        ),
        (
            "require against a server without TLS".into(),
            vec![
                "--database-url".into(),
                format!("postgresql://{READER}:{SECRET}@127.0.0.1:{port}/dify?sslmode=require"),
            ],
            "TLS",
        ),
    ];
    for (what, mut args, expect) in cases {
        args.extend(["--from".into(), wf.from.clone(), "--to".into(), wf.to.clone()]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (r, took) = calibrate(&argv, &[]);
        assert_eq!(r.code, 2, "{what}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(expect), "{what}: expected `{expect}` in {}", r.stderr);
        assert!(r.stderr.contains(" — "), "{what}: says what to do: {}", r.stderr);
        assert!(took < BOUNDED, "{what}: took {took:?}");
    }
    // The password given through the environment is not printed either.
    let (r, _) = calibrate(
        &["--from", &wf.from, "--to", &wf.to],
        &[
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", &port_s),
            ("PGUSER", READER),
            ("PGPASSWORD", "wrong-one"),
            ("PGDATABASE", "dify"),
            ("PGSSLMODE", "disable"),
        ],
    );
    assert_eq!(r.code, 2);
    assert!(!r.stderr.contains("wrong-one"), "{}", r.stderr);
    // Nothing was created by any of the runs above (dify_old is the test's own).
    assert_eq!(objects(), before, "calibrate created objects in `dify`");
}

/// Input errors are found before any connection is tried.
#[test]
fn bad_flags_exit_2_before_connecting() {
    for (args, expect) in [
        (vec!["--since", "7"], "unit"),
        (vec!["--from", "yesterday"], "ISO 8601"),
        (vec!["--from", "2026-12-02", "--to", "2026-12-01"], "before --to"),
        (vec!["--service-api-streaming-share", "1.5"], "between 0 and 1"),
        (vec!["--sample-activity", "2h"], "at most 1h"),
        (vec![], "no database given"),
    ] {
        let (r, took) = calibrate(&args, &[]);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(expect), "{args:?}: {}", r.stderr);
        assert!(took < Duration::from_secs(5));
    }
}

/// A throwaway CA and a server certificate for 127.0.0.1 and localhost, by the openssl CLI.
fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out =
            Command::new("openssl").args(args).current_dir(dir).output().expect("openssl (scripts/install-test-deps)");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    for ca in ["ca", "other-ca"] {
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=difyplan test {ca}"),
        ]);
    }
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

#[test]
fn tls_require_and_verify_full() {
    let Some(bin) = PgBin::find_or_skip("calibrate over TLS") else { return };
    let _one = crate::pg_server::one_server_at_a_time();
    let certs = tempfile::Builder::new().prefix("difyplan-tls-").tempdir().unwrap();
    make_certs(certs.path());
    let user = ServerUser::get();
    user.own(certs.path());
    for f in ["server.key", "server.crt"] {
        let p = certs.path().join(f);
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        user.own(&p);
    }
    let loaded = start_loaded(
        &bin,
        &[
            ("ssl", "on".into()),
            ("ssl_cert_file", certs.path().join("server.crt").display().to_string()),
            ("ssl_key_file", certs.path().join("server.key").display().to_string()),
        ],
        // The reader may only come in over TLS: a run that succeeds was encrypted.
        &format!("hostnossl all {READER} 127.0.0.1/32 reject\n"),
    );
    let port = loaded.server.port();
    let run = source_runs().into_iter().find(|r| r.name == "chat-plan").expect("chat-plan");
    let (from, to) = (widened(&run.from, -1.0), widened(&run.to, 1.0));
    let window = ["--from", from.as_str(), "--to", to.as_str()];
    let ca = certs.path().join("ca.crt");
    let other = certs.path().join("other-ca.crt");
    let base = format!("postgresql://{READER}:{SECRET}@localhost:{port}/dify");
    let ok = |query: String| {
        let u = format!("{base}?{query}");
        let mut args = vec!["--database-url", u.as_str(), "--format", "json"];
        args.extend_from_slice(&window);
        calibrate(&args, &[]).0
    };
    let r = ok("sslmode=require".into());
    assert_eq!(r.code, 0, "sslmode=require: {}", r.stderr);
    assert_eq!(json(&r)["measured"]["requests"]["chat_messages"], run.sent, "{}", r.stdout);
    let r = ok(format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    assert_eq!(r.code, 0, "verify-full with the right CA: {}", r.stderr);
    let r = ok(format!("sslmode=verify-full&sslrootcert={}", other.display()));
    assert_eq!(r.code, 2, "verify-full with another CA must fail: {}", r.stdout);
    assert!(r.stderr.contains("TLS") || r.stderr.contains("certificate"), "{}", r.stderr);
    let r = ok("sslmode=verify-full".into());
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("sslrootcert"), "{}", r.stderr);
    // Without TLS the server turns the reader away, so the runs above were encrypted.
    let r = ok("sslmode=disable".into());
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains(" — "), "{}", r.stderr);
}
