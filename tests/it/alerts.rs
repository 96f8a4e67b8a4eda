//! `render alerts` against the real tools: promtool checks and unit-tests the rendered rules of
//! every profile and target with series on both sides of each threshold, and a real PostgreSQL,
//! postgres_exporter and Prometheus see the near-cap alert fire and resolve.

use crate::pg_server::{APP_ROLE, PgBin, PgConn, PgServer, one_server_at_a_time};
use crate::support::{difyplan, json};
use serde_json::Value;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROFILES: [&str; 4] = ["chat", "workflow", "agent", "benchmark"];
const TARGETS: [&str; 2] = ["compose", "kubernetes"];

/// A binary the tests need, on PATH (Debian's packages put them in /usr/bin). Missing: a loud
/// skip, or a failure in CI, where scripts/install-test-deps must have installed it.
fn binary(names: &[&str], package: &str) -> Option<PathBuf> {
    let paths: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    let found = names.iter().find_map(|n| paths.iter().map(|d| d.join(n)).find(|p| p.is_file()));
    if found.is_none() {
        let msg = format!("none of {names:?} on PATH (Debian package {package}): run scripts/install-test-deps");
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(!ci, "CI is set and {msg}");
        let _ = writeln!(std::io::stderr(), "\n*** SKIPPED alerts: {msg} ***\n");
    }
    found
}

/// The plan's thresholds, worked out here from `size --format json` as docs/alerts.md states
/// them, independently of the renderer.
struct Thresholds {
    usable: u64,
    demand: u64,
    near_cap: u64,
    mean_limit: f64,
    idle_bound: u64,
    worker_slots: u64,
    /// (compose service, series labels that attribute it, planned maximum)
    components: Vec<(String, String, u64)>,
}

fn thresholds(plan: &Value) -> Thresholds {
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"));
    let usable = n(&plan["budget"]["usable"]);
    let mean = plan["efficiency"]["mean_connections_in_use"].as_f64().unwrap();
    let components = plan["budget"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let c = l["component"].as_str().unwrap().to_string();
            let labels = match c.as_str() {
                "api" => r#"application_name="dify-api",datname="dify""#,
                "api_websocket" => r#"application_name="dify-api-websocket",datname="dify""#,
                "worker" => r#"application_name="dify-worker",datname="dify""#,
                "worker_beat" => r#"application_name="dify-worker-beat",datname="dify""#,
                "plugin_daemon" => r#"application_name="unnamed",datname="dify_plugin""#,
                other => panic!("unknown component {other}"),
            };
            (c, labels.to_string(), n(&l["connections"]))
        })
        .collect();
    Thresholds {
        usable,
        demand: n(&plan["budget"]["demand"]),
        near_cap: (usable as f64 * 0.9).ceil() as u64,
        mean_limit: (mean * 1.25 * 10.0).round() / 10.0,
        idle_bound: n(&plan["database"]["timeouts"]["idle_in_transaction_ms"]) / 2000,
        worker_slots: n(&plan["overload"]["worker"]["admitted"]),
        components,
    }
}

/// `render alerts ARGS -o DIR`; the path of a plain rules file (a PrometheusRule's `spec`,
/// checked to be one, on Kubernetes).
fn render_rules(dir: &Path, args: &[&str]) -> PathBuf {
    let d = dir.display().to_string();
    let argv: Vec<&str> = ["render", "alerts"].iter().chain(args).chain(&["-o", d.as_str()]).copied().collect();
    let run = difyplan(&argv);
    assert_eq!(run.code, 0, "{argv:?}: {}", run.stderr);
    assert!(dir.join("postgres-exporter-queries.yaml").is_file(), "{argv:?}: no queries file");
    let compose = dir.join("dify-alerts.rules.yaml");
    if compose.is_file() {
        return compose;
    }
    let text = std::fs::read_to_string(dir.join("dify-alerts.prometheusrule.yaml")).expect("a PrometheusRule");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(doc["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"), "{argv:?}");
    assert_eq!(doc["kind"].as_str(), Some("PrometheusRule"), "{argv:?}");
    let rules = dir.join("spec.rules.yaml");
    std::fs::write(&rules, serde_yaml::to_string(&doc["spec"]).unwrap()).unwrap();
    rules
}

/// One promtool unit test: the series held constant (or as given) for 40 minutes, and the alerts
/// that must be firing at the end, every `for:` and window long past.
#[derive(Default, Clone)]
struct Scenario {
    name: String,
    idle: u64,
    in_use: u64,
    oldest_idle_transaction: u64,
    /// promtool's expanding notation for the broker queue's length.
    queue: Option<String>,
    queue_fires: bool,
    /// (component index, its connections)
    component: Option<(usize, u64)>,
    /// No series at all: the exporters are missing.
    empty: bool,
}

impl Scenario {
    fn expected(&self, t: &Thresholds) -> Vec<(String, String)> {
        let mut firing: Vec<(String, String)> = Vec::new();
        let mut fire = |name: &str, labels: String| firing.push((name.to_string(), labels));
        if self.empty {
            fire("DifyPlanSeriesMissing", r#"severity="warning""#.into());
            // absent() keeps the selector's equality matchers as labels.
            fire("DifyPlanBrokerSeriesMissing", r#"db="db1",severity="warning""#.into());
            return firing;
        }
        let total = self.idle + self.in_use;
        let warning = || r#"severity="warning""#.to_string();
        if total >= t.near_cap {
            fire("DifyPostgresConnectionsNearCap", warning());
        }
        if total >= t.usable {
            fire("DifyPostgresConnectionsAtCap", r#"severity="critical""#.into());
        }
        if total > t.demand {
            fire("DifyPostgresConnectionsAboveWorstCase", warning());
        }
        if self.in_use as f64 > t.mean_limit {
            fire("DifyPostgresConnectionsInUseAboveMean", warning());
        }
        if self.oldest_idle_transaction > t.idle_bound {
            fire("DifyPostgresTransactionIdleTooLong", warning());
        }
        if self.queue_fires {
            fire("DifyCeleryQueueGrowing", warning());
        }
        if let Some((i, count)) = self.component
            && count > t.components[i].2
        {
            fire(
                "DifyComponentConnectionsAbovePlan",
                format!(r#"component="{}",severity="warning""#, t.components[i].0),
            );
        }
        firing
    }

    fn yaml(&self, t: &Thresholds) -> String {
        let mut y = String::new();
        writeln!(y, "  # {}\n  - interval: 1m\n    input_series:", self.name).unwrap();
        let mut series = |s: &str, values: String| {
            writeln!(y, "      - series: '{s}'\n        values: '{values}'").unwrap();
        };
        if !self.empty {
            series(r#"pg_stat_activity_count{datname="dify",state="idle"}"#, format!("{}x40", self.idle));
            series(r#"pg_stat_activity_count{datname="dify",state="active"}"#, format!("{}x40", self.in_use));
            series(
                r#"pg_stat_activity_max_tx_duration{datname="dify",state="idle in transaction"}"#,
                format!("{}x40", self.oldest_idle_transaction),
            );
            series(
                r#"redis_key_size{db="db1",key="workflow_based_app_execution"}"#,
                self.queue.clone().unwrap_or_else(|| "0x40".into()),
            );
            series(r#"redis_key_size{db="db1",key="dataset"}"#, "0x40".into());
            for (i, (_, labels, _)) in t.components.iter().enumerate() {
                let count = self.component.filter(|(j, _)| *j == i).map_or(0, |(_, c)| c);
                series(&format!("difyplan_connections_count{{{labels}}}"), format!("{count}x40"));
            }
        }
        writeln!(y, "    promql_expr_test:\n      - expr: ALERTS{{alertstate=\"firing\"}}\n        eval_time: 40m")
            .unwrap();
        let expected = self.expected(t);
        if expected.is_empty() {
            writeln!(y, "        exp_samples: []").unwrap();
        } else {
            writeln!(y, "        exp_samples:").unwrap();
            for (name, labels) in expected {
                writeln!(
                    y,
                    "          - labels: 'ALERTS{{alertname=\"{name}\",alertstate=\"firing\",{labels}}}'\n            value: 1"
                )
                .unwrap();
            }
        }
        y
    }
}

/// Series on both sides of every threshold of the plan.
fn scenarios(t: &Thresholds) -> Vec<Scenario> {
    let mut out = vec![Scenario { name: "quiet".into(), ..Default::default() }];
    let mut totals = vec![t.near_cap - 1, t.near_cap, t.demand, t.demand + 1, t.usable - 1, t.usable];
    totals.sort_unstable();
    totals.dedup();
    for idle in totals {
        out.push(Scenario { name: format!("{idle} connections open"), idle, ..Default::default() });
    }
    let below = t.mean_limit.floor() as u64;
    for in_use in [below, below + 1] {
        out.push(Scenario { name: format!("{in_use} in use"), in_use, ..Default::default() });
    }
    for age in [t.idle_bound, t.idle_bound + 1] {
        out.push(Scenario {
            name: format!("idle in transaction for {age} s"),
            oldest_idle_transaction: age,
            ..Default::default()
        });
    }
    let s = t.worker_slots;
    for (name, queue, fires) in [
        ("broker: a backlog above the slots that does not grow", format!("{}x40", s + 5), false),
        ("broker: a backlog that grows but stays within the slots", format!("0+{}x40", s as f64 / 41.0), false),
        ("broker: a backlog above the slots that grows", format!("{}+1x40", s + 1), true),
    ] {
        out.push(Scenario { name: name.into(), queue: Some(queue), queue_fires: fires, ..Default::default() });
    }
    for (i, (c, _, max)) in t.components.iter().enumerate() {
        for count in [*max, max + 1] {
            out.push(Scenario {
                name: format!("{c} holds {count}"),
                component: Some((i, count)),
                ..Default::default()
            });
        }
    }
    out.push(Scenario { name: "no exporters".into(), empty: true, ..Default::default() });
    out
}

fn promtool(promtool: &Path, args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(promtool).args(args).current_dir(dir).output().expect("run promtool");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn unit_tests(rules: &Path, t: &Thresholds, scenarios: &[Scenario]) -> String {
    let mut y =
        format!("rule_files: [{}]\nevaluation_interval: 1m\ntests:\n", rules.file_name().unwrap().to_string_lossy());
    for s in scenarios {
        y.push_str(&s.yaml(t));
    }
    y
}

/// Every profile on both targets: `promtool check rules` passes, and `promtool test rules` finds
/// each alert firing exactly on its side of the plan's threshold.
#[test]
fn rendered_rules_pass_promtool_for_every_profile_and_target() {
    let Some(promtool_bin) = binary(&["promtool"], "prometheus") else { return };
    let mut runs = Vec::new();
    for profile in PROFILES {
        for target in TARGETS {
            let args = ["--qps", "20", "--profile", profile, "--target", target];
            let dir = tempfile::tempdir().unwrap();
            let rules = render_rules(dir.path(), &args);
            let rules_name = rules.file_name().unwrap().to_string_lossy().into_owned();
            let (ok, out) = promtool(&promtool_bin, &["check", "rules", &rules_name], dir.path());
            assert!(ok, "{args:?}: promtool check rules:\n{out}");
            let plan =
                json(&difyplan(&["size", "--format", "json", args[0], args[1], args[2], args[3], args[4], args[5]]));
            let t = thresholds(&plan);
            assert_eq!(t.components.len(), plan["components"].as_array().unwrap().len(), "{args:?}");
            let tests = unit_tests(&rules, &t, &scenarios(&t));
            std::fs::write(dir.path().join("tests.yaml"), &tests).unwrap();
            // Each run sets up a fresh store per test group: side by side, the eight take the
            // time of about two.
            let child = Command::new(&promtool_bin)
                .args(["test", "rules", "tests.yaml"])
                .current_dir(dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run promtool");
            runs.push((args, dir, tests, child));
        }
    }
    for (args, _dir, tests, child) in runs {
        let out = child.wait_with_output().expect("wait for promtool");
        assert!(
            out.status.success(),
            "{args:?}: promtool test rules:\n{}{}\n--- tests.yaml\n{tests}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The unit tests can fail: claiming the near-cap alert stays quiet at its threshold is refused.
#[test]
fn promtool_refuses_a_wrong_expectation() {
    let Some(promtool_bin) = binary(&["promtool"], "prometheus") else { return };
    let args = ["--qps", "20", "--profile", "workflow"];
    let dir = tempfile::tempdir().unwrap();
    let rules = render_rules(dir.path(), &args);
    let mut t = thresholds(&json(&difyplan(&["size", "--format", "json", args[0], args[1], args[2], args[3]])));
    let at = Scenario { name: "at the threshold".into(), idle: t.near_cap, ..Default::default() };
    t.near_cap += 1; // what a renderer one off would have written
    std::fs::write(dir.path().join("tests.yaml"), unit_tests(&rules, &t, &[at])).unwrap();
    let (ok, out) = promtool(&promtool_bin, &["test", "rules", "tests.yaml"], dir.path());
    assert!(!ok, "promtool accepted a wrong expectation:\n{out}");
    assert!(out.contains("DifyPostgresConnectionsNearCap"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// End to end: PostgreSQL, postgres_exporter and Prometheus on 127.0.0.1

/// A child process killed and reaped when dropped, and killed by the kernel if the test process
/// dies first (PR_SET_PDEATHSIG).
struct Proc {
    child: Child,
    what: &'static str,
    log: PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, what: &'static str, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null()).stdout(file.try_clone().unwrap()).stderr(file);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
        Proc { child, what, log }
    }

    /// Panics with the process's log if it has exited.
    fn alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.what, std::fs::read_to_string(&self.log).unwrap_or_default());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).unwrap().port()
}

/// GET over HTTP/1.0; the body, or `None` while nothing listens.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_string()).filter(|_| head.contains(" 200 "))
}

fn encode(q: &str) -> String {
    q.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// Prometheus's instant query: the samples' values.
fn query(port: u16, q: &str) -> Vec<f64> {
    let Some(body) = http_get(port, &format!("/api/v1/query?query={}", encode(q))) else { return Vec::new() };
    let v: Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"].as_array().into_iter().flatten().filter_map(|r| r["value"][1].as_str()?.parse().ok()).collect()
}

/// The state of an alert in Prometheus's `/api/v1/alerts` (`pending`, `firing`), `None` when
/// it is not active.
fn alert(port: u16, name: &str) -> Option<(String, Value)> {
    let v: Value = serde_json::from_str(&http_get(port, "/api/v1/alerts")?).unwrap();
    v["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == name)
        .map(|a| (a["state"].as_str().unwrap_or_default().to_string(), a.clone()))
}

fn wait_for<T>(what: &str, limit: Duration, procs: &mut [&mut Proc], mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(x) = f() {
            return x;
        }
        for p in procs.iter_mut() {
            p.alive();
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A small plan's rules on a real Prometheus scraping a real postgres_exporter in front of a
/// real PostgreSQL started with the plan's max_connections: quiet with one connection, firing
/// once the test holds the near-cap threshold's connections, resolved after they close.
#[test]
fn near_cap_alert_fires_and_resolves_on_real_postgres_and_prometheus() {
    let Some(prometheus) = binary(&["prometheus"], "prometheus") else { return };
    let Some(exporter) = binary(&["prometheus-postgres-exporter", "postgres_exporter"], "prometheus-postgres-exporter")
    else {
        return;
    };
    let Some(pg) = PgBin::find_or_skip("alerts end to end") else { return };
    let started = Instant::now();
    // The smallest plan: max_connections 30, so the threshold is a few dozen connections.
    let args = ["--qps", "1", "--profile", "benchmark", "--edition", "test", "--no-collaboration"];
    let dir = tempfile::tempdir().unwrap();
    let argv: Vec<&str> = args.iter().copied().chain(["--hold", "1s"]).collect();
    let rules = render_rules(dir.path(), &argv);
    let plan =
        json(&difyplan(&["size", "--format", "json", args[0], args[1], args[2], args[3], args[4], args[5], args[6]]));
    let t = thresholds(&plan);
    let rendered = std::fs::read_to_string(&rules).unwrap();
    assert!(rendered.contains(&format!("sum(pg_stat_activity_count) >= {}", t.near_cap)), "{rendered}");

    let _one = one_server_at_a_time();
    let max_connections = plan["database"]["max_connections"].as_u64().unwrap().to_string();
    let server = PgServer::start_with(&pg, &[("max_connections", max_connections)]);

    let exporter_port = free_port();
    let mut cmd = Command::new(exporter);
    cmd.env("DATA_SOURCE_NAME", format!("postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable", server.port()))
        .arg(format!("--web.listen-address=127.0.0.1:{exporter_port}"))
        .arg(format!("--extend.query-path={}", dir.path().join("postgres-exporter-queries.yaml").display()));
    let mut exporter = Proc::spawn(cmd, "postgres_exporter", dir.path().join("exporter.log"));

    let prom_port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [{}]\nscrape_configs:\n  - job_name: postgres\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(prometheus);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"));
    let mut prom = Proc::spawn(cmd, "prometheus", dir.path().join("prometheus.log"));

    // Scraped: the exporter's own connection shows, the per-component query runs.
    wait_for("pg_stat_activity_count scraped", Duration::from_secs(30), &mut [&mut exporter, &mut prom], || {
        query(prom_port, "sum(pg_stat_activity_count)").first().copied().filter(|v| *v >= 1.0)
    });
    wait_for("difyplan_connections_count scraped", Duration::from_secs(10), &mut [&mut exporter, &mut prom], || {
        (!query(prom_port, "difyplan_connections_count").is_empty()).then_some(())
    });
    // A few evaluations with the server nearly empty: nothing about connections is active.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(alert(prom_port, "DifyPostgresConnectionsNearCap"), None, "active with one connection open");

    // What is open already (the exporter's connections) plus these reach the threshold.
    let open = query(prom_port, "sum(pg_stat_activity_count)")[0] as u64;
    assert!(open < t.near_cap, "{open} open before the test opened any");
    let held: Vec<PgConn> = (0..t.near_cap - open)
        .map(|i| server.connect(APP_ROLE, "dify").unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    let (_, firing) =
        wait_for("the near-cap alert firing", Duration::from_secs(30), &mut [&mut exporter, &mut prom], || {
            alert(prom_port, "DifyPostgresConnectionsNearCap").filter(|(state, _)| state == "firing")
        });
    assert_eq!(firing["labels"]["severity"], "warning");
    let planned = firing["annotations"]["planned"].as_str().unwrap_or_default();
    assert!(planned.ends_with(&format!("= {}", t.near_cap)), "{planned}");
    // The harness names its connections: the per-component query attributes them.
    let named = query(prom_port, r#"sum(difyplan_connections_count{application_name="difyplan-test",datname="dify"})"#);
    assert_eq!(named, vec![(t.near_cap - open) as f64], "connections attributed by application_name");
    assert_eq!(alert(prom_port, "DifyPostgresConnectionsAtCap"), None, "below the usable cap {}", t.usable);

    for c in held {
        c.close();
    }
    wait_for("the near-cap alert resolved", Duration::from_secs(30), &mut [&mut exporter, &mut prom], || {
        alert(prom_port, "DifyPostgresConnectionsNearCap").is_none().then_some(())
    });
    drop(prom);
    drop(exporter);
    drop(server);
    eprintln!("alerts end to end: threshold {} of usable {}, in {:.1?}", t.near_cap, t.usable, started.elapsed());
}

/// The command line: exported templates render what the built-in ones do, the header reproduces
/// the plan (`--target`, `--hold` included), and a bad `--hold` is refused with exit 2.
#[test]
fn render_alerts_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    assert_eq!(difyplan(&["templates", "export", &d]).code, 0);
    let args = ["render", "alerts", "--qps", "50", "--target", "kubernetes", "--hold", "30s"];
    let builtin = difyplan(&args);
    assert_eq!(builtin.code, 0, "{}", builtin.stderr);
    assert!(
        builtin.stdout.contains("# Reproduce: difyplan render alerts --qps 50 --profile chat --edition ha --dify-version 1.16.1 --target kubernetes --hold 30s"),
        "{}",
        builtin.stdout
    );
    assert!(builtin.stdout.contains("kind: PrometheusRule") && builtin.stdout.contains("for: 30s"));
    assert!(builtin.stderr.contains("--extend.query-path"), "{}", builtin.stderr);
    let mut with_dir = args.to_vec();
    with_dir.extend(["--templates", d.as_str()]);
    assert_eq!(difyplan(&with_dir).stdout, builtin.stdout);
    for bad in ["0s", "5", "1d"] {
        let r = difyplan(&["render", "alerts", "--qps", "50", "--hold", bad]);
        assert_eq!(r.code, 2, "--hold {bad}: {}", r.stderr);
        assert!(r.stderr.contains("--hold"), "{}", r.stderr);
    }
}
