//! Where operators work: shell completions and the man page, output that fits the terminal,
//! `--max-qps`, `difyplan.toml` found upward, SARIF rule help, the committed JSON Schemas.

use crate::support::{Run, difyplan, difyplan_with, fixture, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn ok(r: &Run) {
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
}

fn widest(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

// ---- completions and man page ---------------------------------------------------------------

/// The completion `bash` offers for `words` (the cursor at the end of the last one).
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let prog = format!(
        "source {script}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE={line:?}; COMP_POINT={point}; \
         complete -p difyplan >/dev/null || exit 3; \
         _difyplan difyplan {cur} {prev}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script = script.display(),
        words = words.join(" "),
        cword = words.len() - 1,
        point = line.len(),
        cur = words[words.len() - 1],
        prev = words[words.len() - 2],
    );
    let out = Command::new("bash").arg("--norc").arg("-c").arg(prog).output().expect("bash");
    assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}

#[test]
fn bash_completion_loads_and_completes_subcommands_and_flags() {
    let r = difyplan(&["completions", "bash"]);
    ok(&r);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("difyplan.bash");
    std::fs::write(&script, &r.stdout).unwrap();
    assert_eq!(bash_complete(&script, &["difyplan", "ren"]), ["render"]);
    let s = bash_complete(&script, &["difyplan", "s"]);
    assert!(s.contains(&"size".to_string()) && s.contains(&"schema".to_string()), "{s:?}");
    assert_eq!(bash_complete(&script, &["difyplan", "size", "--max-q"]), ["--max-qps"]);
    assert_eq!(bash_complete(&script, &["difyplan", "check", "--fail-on", "w"]), ["warning"]);
}

#[test]
fn every_shell_gets_a_script() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = difyplan(&["completions", shell]);
        ok(&r);
        assert!(r.stdout.contains("difyplan") && r.stdout.contains("max-qps"), "{shell}");
    }
    assert_eq!(difyplan(&["completions", "tcsh"]).code, 2);
}

#[test]
fn man_page_renders_with_every_subcommand() {
    let r = difyplan(&["man"]);
    ok(&r);
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("difyplan.1");
    std::fs::write(&page, &r.stdout).unwrap();
    // man -l formats a local file the way `man difyplan` would show it once installed.
    let out = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .expect("man (Debian's man-db; scripts/install-test-deps installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "man -l: {}", String::from_utf8_lossy(&out.stderr));
    for heading in [
        "NAME",
        "SYNOPSIS",
        "DIFYPLAN SIZE",
        "DIFYPLAN CHECK",
        "DIFYPLAN RENDER COMPOSE",
        "DIFYPLAN SCHEMA",
        "DIFYPLAN EXPLAIN",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "EXAMPLES",
    ] {
        assert!(text.contains(heading), "{heading} missing:\n{text}");
    }
    assert!(text.contains("--max-qps") && text.contains("--fail-on"), "{text}");
    // check takes several paths: its synopsis says so.
    let check = text.split("DIFYPLAN CHECK").nth(1).unwrap();
    assert!(check.split("Options").next().unwrap().contains("[PATH]..."), "{check}");
    assert!(text.contains("NO_COLOR") && text.contains("difyplan.toml"), "{text}");
    // groff's own warnings (bad requests, unknown escapes) are errors of the generated roff.
    let out = Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).arg(&page).output().expect("groff");
    assert!(out.status.success() && out.stderr.is_empty(), "groff: {}", String::from_utf8_lossy(&out.stderr));
}

// ---- output that fits ------------------------------------------------------------------------

const PLAN: [&str; 8] = ["size", "--qps", "500", "--target", "kubernetes", "--profile", "workflow", "--explain"];

#[test]
fn tables_fit_columns_and_keep_every_value() {
    let full = difyplan(&PLAN);
    ok(&full);
    assert!(widest(&full.stdout) > 300, "today's full table without COLUMNS or a terminal");
    for cols in ["60", "80", "120"] {
        let r = difyplan_with(&PLAN, None, &[("COLUMNS", cols)]);
        ok(&r);
        let n: usize = cols.parse().unwrap();
        assert!(widest(&r.stdout) <= n, "COLUMNS={cols}: {} wide\n{}", widest(&r.stdout), r.stdout);
        // Every number of the component table is still there, labelled.
        let plan = json(&difyplan(&[
            "size",
            "--qps",
            "500",
            "--target",
            "kubernetes",
            "--profile",
            "workflow",
            "--format",
            "json",
        ]));
        for c in plan["components"].as_array().unwrap() {
            assert!(r.stdout.contains(&format!("- {}", c["component"].as_str().unwrap())), "{}", r.stdout);
            assert!(r.stdout.contains(&format!("worst total      {}", c["worst_total"])), "{}", r.stdout);
        }
        assert!(r.stdout.contains(&format!("demand\n    connections  {}", plan["budget"]["demand"])), "{}", r.stdout);
        let step = plan["derivations"].as_array().unwrap().iter().find(|d| d["name"] == "api.in_flight_mean").unwrap();
        let value = step["value"].as_str().unwrap();
        assert!(
            r.stdout.contains(&format!("- api.in_flight_mean = {value}\n    formula  λ × time in flight")),
            "{}",
            r.stdout
        );
    }
    // Wide enough: the full tables and lines, byte for byte as --wide makes them.
    let mut wide = PLAN.to_vec();
    wide.push("--wide");
    let unwrapped = difyplan(&wide);
    assert_eq!(difyplan_with(&PLAN, None, &[("COLUMNS", "2000")]).stdout, unwrapped.stdout);
    // --wide on request, whatever COLUMNS says.
    assert_eq!(difyplan_with(&wide, None, &[("COLUMNS", "80")]).stdout, unwrapped.stdout);
    // Piped without COLUMNS: the same tables, and prose wrapped at 100 columns, not thousands.
    let table_lines =
        |s: &str| s.lines().filter(|l| l.starts_with(['┌', '│', '├', '└'])).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(table_lines(&full.stdout), table_lines(&unwrapped.stdout));
    let prose = |s: &str| {
        s.lines().filter(|l| !l.starts_with(['┌', '│', '├', '└'])).map(|l| l.chars().count()).max().unwrap_or(0)
    };
    assert!(prose(&unwrapped.stdout) > 100 && prose(&full.stdout) <= 100, "{}", full.stdout);
    // Machine formats never change.
    for format in ["json", "env"] {
        let args = ["size", "--qps", "500", "--format", format];
        assert_eq!(difyplan_with(&args, None, &[("COLUMNS", "40")]).stdout, difyplan(&args).stdout, "{format}");
    }
}

#[test]
fn check_human_fits_and_machine_formats_do_not_change() {
    let base = fixture("1.16.1");
    let args = |format: &str| {
        vec![
            "check".to_string(),
            base.join("docker-compose.yaml").display().to_string(),
            "--env-file".into(),
            base.join("env.example").display().to_string(),
            "--format".into(),
            format.into(),
        ]
    };
    let run = |format: &str, cols: Option<&str>| {
        let a = args(format);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        match cols {
            Some(c) => difyplan_with(&a, None, &[("COLUMNS", c)]),
            None => difyplan(&a),
        }
    };
    let full = run("human", None);
    let narrow = run("human", Some("100"));
    assert_eq!(full.code, narrow.code);
    assert!(widest(&full.stdout) > 100);
    assert!(widest(&narrow.stdout) <= 100 || narrow.stdout.lines().any(|l| !l.contains(' ')), "{}", narrow.stdout);
    assert!(narrow.stdout.contains("- api\n"), "{}", narrow.stdout);
    for format in ["json", "github", "sarif"] {
        assert_eq!(run(format, Some("40")).stdout, run(format, None).stdout, "{format}");
    }
}

// ---- --max-qps -------------------------------------------------------------------------------

#[test]
fn max_qps_prints_the_plan_at_the_highest_qps_the_cap_holds() {
    let failed = difyplan(&["size", "--qps", "100", "--pg-max-connections", "500"]);
    assert_eq!(failed.code, 1);
    let said: f64 = failed
        .stderr
        .split("holds at most ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("{}", failed.stderr));
    let r = difyplan(&["size", "--pg-max-connections", "500", "--max-qps", "--format", "json"]);
    ok(&r);
    let plan = json(&r);
    assert_eq!(plan["input"]["qps"].as_f64(), Some(said), "the number the failure names");
    assert_eq!(plan["budget"]["fits"], true);
    assert!(r.stderr.contains(&format!("holds at most {said} QPS")), "{}", r.stderr);
    // It is the highest: a tenth more does not fit.
    let above = format!("{}", said * 1.1);
    assert_eq!(difyplan(&["size", "--qps", &above, "--pg-max-connections", "500"]).code, 1);
    // Render takes it too, and its header reproduces the plan with the number.
    let env = difyplan(&["render", "env", "--pg-max-connections", "500", "--max-qps"]);
    ok(&env);
    assert!(env.stdout.contains(&format!("--qps {said} ")), "{}", env.stdout);
}

#[test]
fn max_qps_needs_a_cap_and_excludes_qps() {
    let r = difyplan(&["size", "--max-qps"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--pg-max-connections"), "{}", r.stderr);
    assert_eq!(difyplan(&["size", "--max-qps", "--qps", "5", "--pg-max-connections", "500"]).code, 2);
    assert_eq!(difyplan(&["size"]).code, 2);
    // A cap that holds nothing of the profile: the lowest load's shortfall, exit 1.
    let r = difyplan(&["size", "--pg-max-connections", "5", "--max-qps"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.contains("DOES NOT FIT"), "{}", r.stdout);
}

// ---- difyplan.toml upward --------------------------------------------------------------------

fn check_in(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_difyplan"))
        .args(args)
        .current_dir(dir)
        .env_remove("COLUMNS")
        .output()
        .expect("difyplan");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const ALLOW_SUPERUSER: &str = "[[allow]]\ncode = \"superuser-app-role\"\nreason = \"test\"\n";

#[test]
fn config_is_found_upward_to_the_repository_root() {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("repo");
    let deep = repo.join("deploy/docker");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::create_dir(repo.join(".git")).unwrap();
    std::fs::copy(fixture("1.16.1/env.example"), deep.join(".env")).unwrap();
    let codes = |r: &Run| -> Vec<String> {
        json(r)["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
    };
    let args = ["check", ".env", "--format", "json", "--exit-zero"];
    // No config anywhere: the finding is reported.
    assert!(codes(&check_in(&deep, &args)).contains(&"superuser-app-role".to_string()));
    // One above the repository root is not read.
    std::fs::write(root.path().join("difyplan.toml"), ALLOW_SUPERUSER).unwrap();
    assert!(codes(&check_in(&deep, &args)).contains(&"superuser-app-role".to_string()));
    // At the repository root it is.
    std::fs::write(repo.join("difyplan.toml"), ALLOW_SUPERUSER).unwrap();
    let r = check_in(&deep, &args);
    assert!(!codes(&r).contains(&"superuser-app-role".to_string()), "{}", r.stdout);
    assert_eq!(json(&r)["summary"]["suppressed"], 1);
    // The nearest wins, and --config wins over it.
    std::fs::write(deep.join("../difyplan.toml"), "[[allow]]\ncode = \"hpa-unbounded\"\nreason = \"x\"\n").unwrap();
    let r = check_in(&deep, &args);
    let c = codes(&r);
    assert!(c.contains(&"superuser-app-role".to_string()) && c.contains(&"unused-allow".to_string()), "{c:?}");
    let unused =
        json(&r)["findings"].as_array().unwrap().iter().find(|f| f["code"] == "unused-allow").cloned().unwrap();
    assert_eq!(unused["source"]["path"], "../difyplan.toml");
    let with_config = ["check", ".env", "--format", "json", "--exit-zero", "--config", "../../difyplan.toml"];
    assert!(!codes(&check_in(&deep, &with_config)).contains(&"superuser-app-role".to_string()));
}

// ---- SARIF rules -----------------------------------------------------------------------------

#[test]
fn sarif_rules_have_descriptions_and_help_into_the_readme_table() {
    let base = fixture("1.9.1");
    let r = difyplan(&[
        "check",
        &base.join("docker-compose.yaml").display().to_string(),
        "--env-file",
        &base.join("env.example").display().to_string(),
        "--format",
        "sarif",
    ]);
    let sarif = json(&r);
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
    assert!(rules.len() >= 15);
    for rule in rules {
        let id = rule["id"].as_str().unwrap();
        let short = rule["shortDescription"]["text"].as_str().unwrap();
        let full = rule["fullDescription"]["text"].as_str().unwrap();
        assert!(full.len() > short.len() / 2 && full != short, "{id}");
        let uri = rule["helpUri"].as_str().unwrap();
        assert!(uri.starts_with("https://") && uri.ends_with(&format!("README.md#{id}")), "{uri}");
        assert!(rule["help"]["markdown"].as_str().unwrap().contains(uri));
        // The anchor exists in the README's table of codes.
        assert!(readme.contains(&format!("<a id=\"{id}\"></a>`{id}`")), "README has no anchor for {id}");
    }
}

// ---- JSON Schemas ----------------------------------------------------------------------------

fn schema_path(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("schemas/{kind}.schema.json"))
}

/// The committed schemas are what the types generate. `DIFYPLAN_UPDATE_SCHEMAS=1` rewrites
/// them (the same as `difyplan schema plan > schemas/plan.schema.json`).
#[test]
fn committed_schemas_match_the_types() {
    for kind in ["plan", "check"] {
        let r = difyplan(&["schema", kind]);
        ok(&r);
        let path = schema_path(kind);
        if std::env::var_os("DIFYPLAN_UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &r.stdout).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == r.stdout,
            "{} differs from what the Rust types generate: run `difyplan schema {kind} > schemas/{kind}.schema.json` \
             (or DIFYPLAN_UPDATE_SCHEMAS=1 cargo test --test it schemas) and commit it",
            path.display()
        );
    }
}

/// Real outputs validate against the committed schemas with PyPI's check-jsonschema.
#[test]
fn real_outputs_validate_against_the_schemas() {
    let Some(validator) = crate::integrations::check_jsonschema() else { return };
    let dir = tempfile::tempdir().unwrap();
    let b = |v: &str, f: &str| fixture(v).join(f).display().to_string();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("plan", vec!["size", "--qps", "500", "--format", "json"].into_iter().map(String::from).collect()),
        (
            "plan",
            [
                "size",
                "--qps",
                "200",
                "--target",
                "kubernetes",
                "--profile",
                "workflow",
                "--retention-days",
                "30",
                "--format",
                "json",
            ]
            .map(String::from)
            .to_vec(),
        ),
        (
            "plan",
            ["size", "--qps", "300", "--pg-max-connections", "500", "--format", "json"].map(String::from).to_vec(),
        ),
        (
            "check",
            vec![
                "check".into(),
                b("1.9.1", "docker-compose.yaml"),
                "--env-file".into(),
                b("1.9.1", "env.example"),
                "--format".into(),
                "json".into(),
            ],
        ),
        (
            "check",
            vec![
                "check".into(),
                b("1.16.1", "docker-compose.yaml"),
                "--env-file".into(),
                b("1.16.1", "env.example"),
                "--format".into(),
                "json".into(),
            ],
        ),
    ];
    let mut files = Vec::new();
    for (i, (kind, args)) in cases.iter().enumerate() {
        let r = difyplan(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
        let f = dir.path().join(format!("{i}-{kind}.json"));
        std::fs::write(&f, &r.stdout).unwrap();
        files.push((kind, f));
    }
    for kind in ["plan", "check"] {
        let docs: Vec<&PathBuf> = files.iter().filter(|(k, _)| **k == kind).map(|(_, f)| f).collect();
        let out = Command::new(&validator).arg("--schemafile").arg(schema_path(kind)).args(&docs).output().unwrap();
        assert!(
            out.status.success(),
            "{kind}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The validator can fail: a plan with a required field removed does not validate.
    let mut broken = json(&difyplan(&["size", "--qps", "10", "--format", "json"]));
    broken["budget"].as_object_mut().unwrap().remove("demand");
    let f = dir.path().join("broken.json");
    std::fs::write(&f, broken.to_string()).unwrap();
    let out = Command::new(&validator).arg("--schemafile").arg(schema_path("plan")).arg(&f).output().unwrap();
    assert!(!out.status.success(), "a plan without budget.demand validated");
}

// ---- size and check agree on the application role ---------------------------------------------

/// A Dify compose project as released (compose file, `envs/`, `.env` from `.env.example`),
/// its `.env` patched and an override rendered by difyplan, then checked by difyplan.
fn rendered_compose_checks(version: &str, qps: &str, extra: &[&str], check_extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(fixture(&format!("{version}/docker-compose.yaml")), d.join("docker-compose.yaml")).unwrap();
    let env = std::fs::read_to_string(fixture(&format!("{version}/env.example"))).unwrap();
    std::fs::write(d.join(".env"), &env).unwrap();
    let envs = fixture(&format!("{version}/envs"));
    if envs.is_dir() {
        let out = Command::new("cp").arg("-r").arg(&envs).arg(d).output().unwrap();
        assert!(out.status.success());
    }
    let s = |p: PathBuf| p.display().to_string();
    let mut patch = vec!["render", "env", "--qps", qps, "--dify-version", version];
    patch.extend_from_slice(extra);
    let env_file = s(d.join(".env"));
    patch.extend_from_slice(&["--patch", &env_file, "--write", "--no-backup"]);
    let r = difyplan(&patch);
    ok(&r);
    // A dedicated role: the patch says to create it before Dify restarts.
    if !extra.contains(&"superuser") {
        assert!(
            r.stderr.contains("DB_USERNAME becomes `dify`") && r.stderr.contains("CREATE ROLE dify"),
            "{}",
            r.stderr
        );
        assert!(std::fs::read_to_string(d.join(".env")).unwrap().contains("\nDB_USERNAME=dify\n"));
    }
    let mut compose = vec!["render", "compose", "--qps", qps, "--dify-version", version];
    compose.extend_from_slice(extra);
    let (file, out) = (s(d.join("docker-compose.yaml")), s(d.to_path_buf()));
    compose.extend_from_slice(&["--compose-file", &file, "-o", &out]);
    ok(&difyplan(&compose));
    let mut check = vec!["check", &out, "--fail-on", "warning"];
    check.extend_from_slice(check_extra);
    difyplan(&check)
}

#[test]
fn a_rendered_compose_set_passes_its_own_check_at_warning() {
    for version in ["1.16.1", "1.9.1"] {
        for qps in ["20", "300"] {
            let r = rendered_compose_checks(version, qps, &[], &[]);
            assert_eq!(r.code, 0, "{version} {qps}:\n{}{}", r.stdout, r.stderr);
            assert!(r.stdout.contains("app role `dify` (not a superuser"), "{}", r.stdout);
        }
    }
    // Keeping the superuser is a choice check still reports.
    let r = rendered_compose_checks("1.16.1", "20", &["--app-role", "superuser"], &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("superuser-app-role"), "{}", r.stdout);
}

/// A plan for workflow apps only sizes its pools for them; `check --profile workflow` knows the
/// workload and passes the set at warning, while without it `check` assumes chat apps may run.
#[test]
fn a_workflow_only_set_passes_when_check_knows_the_workload() {
    let workflow = ["--profile", "workflow"];
    let r = rendered_compose_checks("1.16.1", "300", &workflow, &workflow);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = rendered_compose_checks("1.16.1", "300", &workflow, &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("pool-chat-stall") && r.stdout.contains("worker-pool-deadlock-risk"), "{}", r.stdout);
}

#[test]
fn rendered_kubernetes_manifests_pass_their_own_check_at_warning() {
    for qps in ["10", "500"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().display().to_string();
        ok(&difyplan(&["render", "kubernetes", "--qps", qps, "-o", &out]));
        let r = difyplan(&["check", &out, "--fail-on", "warning"]);
        assert_eq!(r.code, 0, "{qps}:\n{}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("app role `dify` (not a superuser"), "{}", r.stdout);
    }
}

#[test]
fn compose_api_containers_hold_a_bounded_number_of_processes() {
    let plan = json(&difyplan(&["size", "--qps", "3000", "--format", "json"]));
    let api = plan["components"].as_array().unwrap().iter().find(|c| c["component"] == "api").unwrap().clone();
    let cap = plan["input"]["assumptions"]["compose_api_processes_per_container"].as_u64().unwrap();
    assert_eq!(cap, 32);
    assert!(api["processes_per_pod"].as_u64().unwrap() <= cap, "{api}");
    assert!(api["replicas"].as_u64().unwrap() > 2, "more containers instead: {api}");
    let r = difyplan(&["render", "compose", "--qps", "3000"]);
    ok(&r);
    assert!(
        r.stdout.contains(&format!("At most {cap} processes per container")) && r.stdout.contains("render kubernetes"),
        "{}",
        r.stdout
    );
    // The pools' comments: each key its own part, not both the formula of the sum.
    let worker = r.stdout.split("\n  worker:\n").nth(1).unwrap();
    let comment_of =
        |key: &str| worker.lines().take_while(|l| !l.contains(&format!("{key}:"))).last().unwrap().to_string();
    assert!(comment_of("SQLALCHEMY_POOL_SIZE").contains("what a busy process usually holds"), "{worker}");
    assert!(comment_of("SQLALCHEMY_MAX_OVERFLOW").contains("− pool"), "{worker}");
    assert_ne!(comment_of("SQLALCHEMY_POOL_SIZE"), comment_of("SQLALCHEMY_MAX_OVERFLOW"));
    // max_connections is in the override's command and in .env: the override says so.
    assert!(r.stdout.contains("is POSTGRES_MAX_CONNECTIONS of the same plan"), "{}", r.stdout);
}
