//! The PostgreSQL settings against a real PostgreSQL: the huge pages a plan reserves cover what
//! the server computes for its settings, the files say `on` whenever the notes do, no plan claims
//! a host it does not fit, and the ALTER SYSTEM form applies and survives a restart.

use crate::pg_server::{PgBin, PgServer, ServerUser, one_server_at_a_time};
use crate::support::{Run, difyplan, json};
use serde_json::Value;
use std::path::Path;

/// `difyplan size ARGS --format FORMAT`, whatever its exit code (a plan that does not fit exits 1
/// and still prints its JSON).
fn size(args: &[&str], format: &str) -> Run {
    let argv: Vec<&str> = ["size"].iter().chain(args).chain(&["--format", format]).copied().collect();
    difyplan(&argv)
}

fn server_settings(plan: &Value) -> Vec<(String, String)> {
    plan["database"]["server_settings"]
        .as_array()
        .expect("server_settings")
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_str().unwrap().to_string()))
        .collect()
}

/// `postgres -C NAME` with every setting on the command line: PostgreSQL's own computation,
/// nothing allocated.
fn postgres_c(bin: &PgBin, data: &Path, name: &str, settings: &[(String, String)]) -> u64 {
    let mut cmd = ServerUser::get().command(&bin.dir().join("postgres"));
    cmd.arg("-D").arg(data).arg("-C").arg(name);
    for (k, v) in settings {
        cmd.arg("-c").arg(format!("{k}={v}"));
    }
    let out = cmd.output().expect("run postgres -C");
    assert!(out.status.success(), "postgres -C {name}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().unwrap_or_else(|_| panic!("postgres -C {name} printed {text:?}"))
}

/// Hosts from 4 GiB to 256 GiB and loads from tens to thousands of connections: wherever the plan
/// sets huge_pages = on, its vm.nr_hugepages is at least PostgreSQL 15's
/// `shared_memory_size_in_huge_pages` for the same settings, and its shared memory is at least
/// `shared_memory_size` everywhere; the notes and the settings agree; exit 1 exactly when the host
/// does not hold the backends, and a plan that fits adds up to at most the host.
#[test]
fn huge_pages_and_memory_by_postgresql_own_arithmetic() {
    let Some(bin) = PgBin::major(15).or_else(|| PgBin::find_or_skip("huge pages by PostgreSQL's arithmetic")) else {
        return;
    };
    let user = ServerUser::get();
    let dir = tempfile::Builder::new().prefix("difyplan-pgmem-").tempdir().unwrap();
    user.own(dir.path());
    let data = dir.path().join("data");
    let init = user
        .command(&bin.dir().join("initdb"))
        .args(["--username=postgres", "--auth=trust", "--no-sync", "--pgdata"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let (mut huge, mut not_fitting, mut lowered) = (0, 0, 0);
    for (memory, cpus) in [("4GiB", "2"), ("8GiB", "4"), ("16GiB", "12"), ("64GiB", "16"), ("256GiB", "32")] {
        for (qps, profile) in [("5", "workflow"), ("50", "chat"), ("200", "chat"), ("500", "workflow")] {
            let args = ["--qps", qps, "--profile", profile, "--pg-memory", memory, "--pg-cpus", cpus];
            let run = size(&args, "json");
            let plan = json(&run);
            let case = format!("{args:?}");
            let db = &plan["database"];
            let m = &db["memory"];
            let fits = m["fits"].as_bool().unwrap();
            if !plan["budget"]["fits"].as_bool().unwrap() {
                continue;
            }
            assert_eq!(run.code, if fits { 0 } else { 1 }, "{case}: {}", run.stderr);
            if fits {
                assert!(m["needed_bytes"].as_u64() <= m["available_bytes"].as_u64(), "{case}");
            } else {
                not_fitting += 1;
                assert!(run.stderr.contains("cannot hold"), "{case}: {}", run.stderr);
                assert!(!run.stderr.contains("assumed:"), "{case}: the user's memory is not assumed");
            }
            let settings = server_settings(&plan);
            let setting = |n: &str| settings.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            let notes_say_on =
                plan["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("huge_pages = on"));
            let on = setting("huge_pages").as_deref() == Some("on");
            assert_eq!(on, notes_say_on, "{case}: the settings and the notes disagree on huge_pages");
            let measured_pages = postgres_c(&bin, &data, "shared_memory_size_in_huge_pages", &settings);
            let measured_mb = postgres_c(&bin, &data, "shared_memory_size", &settings);
            if on {
                huge += 1;
                let reserved = db["tuning"]["huge_pages_reserved"].as_u64().expect("a reservation with on");
                assert!(
                    reserved >= measured_pages,
                    "{case}: reserves {reserved} pages, PostgreSQL needs {measured_pages}"
                );
                // Not wastefully many either: within 1% and 8 pages.
                assert!(reserved <= measured_pages + measured_pages / 100 + 8, "{case}: {reserved} ≫ {measured_pages}");
            } else {
                assert!(m["shared_memory_bytes"].as_u64().unwrap() >= measured_mb << 20, "{case}: {m}");
            }
            if setting("work_mem") != Some(format_kb(db["tuning"]["pgtune_work_mem_kb"].as_u64().unwrap())) {
                lowered += 1;
            }
        }
    }
    // The sweep must reach each branch, or it proves less than it says.
    assert!(huge >= 3, "{huge} plans on huge pages");
    assert!(not_fitting >= 2, "{not_fitting} plans that do not fit");
    assert!(lowered >= 2, "{lowered} plans with work_mem below PGTune's");
}

/// PGTune's `formatValue`, as the plan prints kB sizes.
fn format_kb(kb: u64) -> String {
    if kb.is_multiple_of(1024 * 1024) {
        format!("{}GB", kb / (1024 * 1024))
    } else if kb.is_multiple_of(1024) {
        format!("{}MB", kb / 1024)
    } else {
        format!("{kb}kB")
    }
}

/// `size --format alter-system` on a real server: every statement accepted, the server
/// restarts, and SHOW gives each planned value. A plan that counts on huge pages restarts with
/// `huge_pages=try` on the command line (this machine reserves none), and pg_file_settings shows
/// the statement's `on` was written.
#[test]
fn alter_system_applies_to_a_real_server() {
    let Some(bin) = PgBin::find_or_skip("ALTER SYSTEM on a real server") else { return };
    let _one = one_server_at_a_time();
    for args in [
        ["--qps", "2", "--profile", "workflow", "--pg-memory", "2GiB", "--pg-cpus", "4"],
        ["--qps", "20", "--profile", "chat", "--pg-memory", "4GiB", "--pg-cpus", "2"],
    ] {
        let run = size(&args, "alter-system");
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        let plan = json(&size(&args, "json"));
        let planned = server_settings(&plan);
        let statements: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("ALTER SYSTEM SET ")).collect();
        assert_eq!(statements.len(), planned.len(), "{args:?}: one statement per setting\n{}", run.stdout);
        for line in run.stdout.lines() {
            assert!(line.is_empty() || line.starts_with("--") || line.starts_with("ALTER SYSTEM SET "), "{line}");
        }
        let mut server = PgServer::start_with(&bin, &[]);
        let admin = server.connect("postgres", "postgres").expect("superuser");
        for s in &statements {
            admin.try_query(s).unwrap_or_else(|e| panic!("{args:?}: {s}: {e}"));
        }
        admin.close();
        let huge_on = planned.iter().any(|(k, v)| k == "huge_pages" && v == "on");
        let overrides = if huge_on { vec![("huge_pages", "try".to_string())] } else { vec![] };
        server.restart_with(&bin, &overrides).unwrap_or_else(|log| panic!("{args:?}: no restart:\n{log}"));
        let admin = server.connect("postgres", "postgres").expect("superuser after restart");
        for (name, value) in &planned {
            if huge_on && name == "huge_pages" {
                let written = admin.query("SELECT setting FROM pg_file_settings WHERE name = 'huge_pages'");
                assert_eq!(written, "on", "{args:?}");
                continue;
            }
            let shown = admin.query(&format!("SHOW {name}"));
            assert_eq!(&shown, &shown_as(name, value), "{args:?}: {name}");
        }
        admin.close();
    }
}

/// How SHOW prints a value difyplan writes: timeouts in ms come back with the largest exact
/// unit (60000 → 1min), everything else as written.
fn shown_as(name: &str, value: &str) -> String {
    if name.ends_with("_timeout") {
        let ms: u64 = value.parse().unwrap();
        return if ms.is_multiple_of(60_000) {
            format!("{}min", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        };
    }
    value.to_string()
}

/// Every rendered file of a plan that counts on huge pages says `on` (never `try`) and carries
/// the reservation beside it; a plan whose host cannot hold its backends renders nothing.
#[test]
fn rendered_files_agree_with_the_notes_on_huge_pages() {
    let args = ["--qps", "50", "--profile", "chat", "--pg-memory", "16GiB", "--pg-cpus", "12"];
    let plan = json(&size(&args, "json"));
    let pages = plan["database"]["tuning"]["huge_pages_reserved"].as_u64().expect("this plan counts on huge pages");
    let render = |what: &[&str]| {
        let argv: Vec<&str> = ["render"].iter().chain(what).chain(&args).copied().collect();
        let run = difyplan(&argv);
        assert_eq!(run.code, 0, "{argv:?}: {}", run.stderr);
        assert!(!run.stdout.contains("huge_pages=try") && !run.stdout.contains("huge_pages = 'try'"), "{argv:?}");
        run.stdout
    };
    let compose = render(&["compose"]);
    assert!(compose.contains("\"huge_pages=on\""), "{compose}");
    assert!(compose.contains(&format!("vm.nr_hugepages={pages}")), "{compose}");
    let env = render(&["env"]);
    assert!(env.contains(&format!("vm.nr_hugepages={pages}")), "{env}");
    // Kubernetes plans for its own target (HPA, surge): its own reservation.
    let mut kube_args = args.to_vec();
    kube_args.extend(["--target", "kubernetes"]);
    let kube_plan = json(&size(&kube_args, "json"));
    let kube_pages = kube_plan["database"]["tuning"]["huge_pages_reserved"].as_u64().expect("on huge pages");
    let kubernetes = render(&["kubernetes"]);
    assert!(kubernetes.contains("huge_pages = 'on'") && kubernetes.contains("huge_pages=on"), "{kubernetes}");
    assert!(kubernetes.contains(&format!("hugepages-2Mi: {}Mi", kube_pages * 2)), "{kubernetes}");
    let values = render(&["helm", "--chart", "borispolonsky"]);
    assert!(values.contains("huge_pages = 'on'"));
    assert_eq!(
        values.matches(&format!("hugepages-2Mi: {}Mi", kube_pages * 2)).count(),
        4,
        "primary and replica: {values}"
    );
    // douban's chart plans for its rolling update's surge: a reservation of its own, still beside `on`.
    let values = render(&["helm", "--chart", "douban"]);
    assert!(values.contains("huge_pages = 'on'") && values.contains("hugepages-2Mi: "), "{values}");
    let conf = render(&["postgresql"]);
    assert!(conf.lines().any(|l| l == "huge_pages = on"), "{conf}");
    assert!(conf.contains(&format!("vm.nr_hugepages = {pages}")), "{conf}");
    let sql = render(&["postgresql", "--alter-system"]);
    assert!(sql.contains("ALTER SYSTEM SET huge_pages = 'on';"), "{sql}");

    // Into a folder: both files; a host too small: nothing, exit 1.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let argv: Vec<&str> = ["render", "postgresql", "-o", out].iter().chain(&args).copied().collect();
    assert_eq!(difyplan(&argv).code, 0);
    assert!(dir.path().join("postgresql.conf").is_file() && dir.path().join("alter-system.sql").is_file());
    let small = tempfile::tempdir().unwrap();
    for what in ["compose", "kubernetes", "env", "postgresql"] {
        let small_out = small.path().to_str().unwrap();
        let run = difyplan(&["render", what, "--qps", "200", "--pg-memory", "16GiB", "-o", small_out]);
        assert_eq!(run.code, 1, "{what}: {}", run.stderr);
        assert!(run.stderr.contains("nothing rendered"), "{what}: {}", run.stderr);
    }
    assert_eq!(std::fs::read_dir(small.path()).unwrap().count(), 0, "nothing written for a host too small");
}
