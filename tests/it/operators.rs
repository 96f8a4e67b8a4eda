//! Where operators meet difyplan: code scanning (SARIF with the real schema, GitHub
//! annotations, GitLab Code Quality), suppressions (difyplan.toml found from the checked path,
//! inline comments), `explain`, quiet and colour, from the outside.

use crate::support::{Run, difyplan, difyplan_at, fixture, helm_fixture, json, tools_dir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Dify 1.16.1's compose project as an operator has it: `docker/` with the compose file and the
/// `.env` copied from `.env.example`, in a scratch git repository.
fn dify_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let docker = dir.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    std::fs::copy(fixture("1.16.1/docker-compose.yaml"), docker.join("docker-compose.yaml")).unwrap();
    std::fs::copy(fixture("1.16.1/env.example"), docker.join(".env")).unwrap();
    dir
}

fn sarif_schema() -> Option<PathBuf> {
    crate::support::tool(tools_dir().join("sarif-schema-2.1.0/sarif-schema-2.1.0.json"), "the SARIF 2.1.0 schema")
}

/// The inputs the code-scanning checks run on: Dify's defaults, Helm values, and a load.
fn scanning_cases(repo: &Path) -> Vec<(&'static str, PathBuf, Vec<String>)> {
    let values = helm_fixture("borispolonsky-scaled.values.yaml").canonicalize().unwrap();
    std::fs::copy(&values, repo.join("values.yaml")).unwrap();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        ("Dify's defaults", repo.to_path_buf(), s(&["check", "docker"])),
        ("Dify's defaults, checked from inside", repo.join("docker"), s(&["check", "."])),
        ("Helm values", repo.to_path_buf(), s(&["check", "--values", "values.yaml"])),
        (
            "Helm values by absolute path",
            repo.to_path_buf(),
            vec!["check".into(), "--values".into(), repo.join("values.yaml").display().to_string()],
        ),
        ("--qps", repo.to_path_buf(), s(&["check", "./docker/", "--qps", "100"])),
    ]
}

fn run_in(dir: &Path, args: &[String], extra: &[&str]) -> Run {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    difyplan_at(dir, &all, &[])
}

/// Every result of every format has a file and a line, the same relative path in each format,
/// with no `./` segment; the SARIF validates against the OASIS schema.
#[test]
fn every_format_anchors_every_finding_to_the_same_file_and_line() {
    let repo = dify_repo();
    let schema = sarif_schema();
    let cj = crate::integrations::check_jsonschema();
    for (what, cwd, args) in scanning_cases(repo.path()) {
        let sarif = run_in(&cwd, &args, &["--format", "sarif"]);
        assert!(sarif.code <= 1, "{what}: {}", sarif.stderr);
        let doc = json(&sarif);
        let results = doc["runs"][0]["results"].as_array().unwrap();
        assert!(!results.is_empty(), "{what}: no results");
        let mut sarif_places = Vec::new();
        for r in results {
            let loc = &r["locations"][0]["physicalLocation"];
            let uri = loc["artifactLocation"]["uri"].as_str().unwrap_or_else(|| panic!("{what}: no location: {r}"));
            let line = loc["region"]["startLine"].as_u64().unwrap();
            assert!(line >= 1, "{what}: {r}");
            assert!(!uri.starts_with('/') && !uri.starts_with("./") && !uri.contains("/./"), "{what}: {uri}");
            assert!(cwd.join(uri).is_file(), "{what}: {uri} is not a file under {}", cwd.display());
            sarif_places.push((r["ruleId"].as_str().unwrap().to_string(), format!("{uri}:{line}")));
        }
        if let (Some(schema), Some(cj)) = (&schema, &cj) {
            let file = cwd.join("out.sarif");
            std::fs::write(&file, &sarif.stdout).unwrap();
            let o = Command::new(cj).arg("--schemafile").arg(schema).arg(&file).output().unwrap();
            assert!(
                o.status.success(),
                "{what}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            std::fs::remove_file(&file).unwrap();
        }
        // GitHub annotations: the same files and lines, in the same order.
        let gh = run_in(&cwd, &args, &["--format", "github"]);
        let gh_places: Vec<(String, String)> = gh
            .stdout
            .lines()
            .filter(|l| !l.starts_with("::notice title=difyplan check::"))
            .map(|l| {
                let props = l.split("::").nth(1).unwrap().split_once(' ').unwrap().1;
                let get =
                    |k: &str| props.split(',').find_map(|p| p.strip_prefix(k)).unwrap_or_else(|| panic!("{what}: {l}"));
                (get("title=difyplan ").to_string(), format!("{}:{}", get("file="), get("line=")))
            })
            .collect();
        assert_eq!(gh_places, sarif_places, "{what}: github and sarif disagree");
        // GitLab Code Quality and JSON: the same.
        let gl = json(&run_in(&cwd, &args, &["--format", "gitlab"]));
        let gl_places: Vec<(String, String)> = gl
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                for k in ["description", "check_name", "fingerprint", "severity"] {
                    assert!(i[k].as_str().is_some_and(|v| !v.is_empty()), "{what}: {k} in {i}");
                }
                let place = format!("{}:{}", i["location"]["path"].as_str().unwrap(), i["location"]["lines"]["begin"]);
                (i["check_name"].as_str().unwrap().to_string(), place)
            })
            .collect();
        assert_eq!(gl_places, sarif_places, "{what}: gitlab and sarif disagree");
        let js = json(&run_in(&cwd, &args, &["--format", "json"]));
        let js_places: Vec<(String, String)> = js["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["code"].as_str().unwrap().to_string(),
                    format!("{}:{}", f["location"]["path"].as_str().unwrap(), f["location"]["line"]),
                )
            })
            .collect();
        assert_eq!(js_places, sarif_places, "{what}: json and sarif disagree");
        // The human format names the same places.
        let human = run_in(&cwd, &args, &["--format", "human", "--wide"]);
        for (_, place) in &sarif_places {
            assert!(
                human.stdout.contains(place.as_str()) || !place.ends_with(":1"),
                "{what}: {place} not in {}",
                human.stdout
            );
        }
    }
}

/// Fingerprints are stable across runs and differ between findings.
#[test]
fn gitlab_fingerprints_are_stable_and_distinct() {
    let repo = dify_repo();
    let a = json(&difyplan_at(repo.path(), &["check", "docker", "--format", "gitlab"], &[]));
    let b = json(&difyplan_at(repo.path(), &["check", "docker", "--format", "gitlab"], &[]));
    assert_eq!(a, b);
    let prints: Vec<&str> = a.as_array().unwrap().iter().map(|i| i["fingerprint"].as_str().unwrap()).collect();
    let mut unique = prints.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), prints.len(), "{prints:?}");
}

// ---- Suppressions ------------------------------------------------------------------------------

/// The README's allow-list example, as written there.
fn readme_allow_example() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("```toml\n[[allow]]").expect("README has an allow-list example") + "```toml\n".len();
    readme[start..start + readme[start..].find("```").unwrap()].to_string()
}

fn allowed_codes(v: &serde_json::Value) -> Vec<String> {
    v["suppressed"].as_array().unwrap().iter().map(|s| s["finding"]["code"].as_str().unwrap().to_string()).collect()
}

fn codes(v: &serde_json::Value) -> Vec<String> {
    v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
}

/// The README's example suppresses what it says, from the repository root, from inside the
/// checked folder, from elsewhere with a relative and with an absolute path.
#[test]
fn the_readme_allow_example_works_wherever_check_runs() {
    let repo = dify_repo();
    std::fs::write(repo.path().join("difyplan.toml"), readme_allow_example()).unwrap();
    let abs = repo.path().join("docker").display().to_string();
    let elsewhere = tempfile::tempdir().unwrap();
    let rel_from_elsewhere = pathdiff(repo.path().join("docker"), elsewhere.path());
    for (cwd, target) in [
        (repo.path().to_path_buf(), "docker".to_string()),
        (repo.path().join("docker"), ".".to_string()),
        (elsewhere.path().to_path_buf(), abs.clone()),
        (elsewhere.path().to_path_buf(), rel_from_elsewhere),
    ] {
        let r = difyplan_at(&cwd, &["check", &target, "--format", "json"], &[]);
        assert_eq!(r.code, 0, "{target}: {}", r.stderr);
        let v = json(&r);
        let allowed = allowed_codes(&v);
        for code in ["superuser-app-role", "beat-pool-oversized"] {
            assert!(allowed.contains(&code.to_string()), "{target} from {}: {code} not allowed: {v}", cwd.display());
        }
        assert!(!codes(&v).contains(&"unused-allow".to_string()), "{target}: {:?}", codes(&v));
    }
}

/// A relative path from `base` to `path` through `..`.
fn pathdiff(path: PathBuf, base: &Path) -> String {
    let ups = base.canonicalize().unwrap().components().count() - 1;
    format!("{}{}", "../".repeat(ups), path.canonicalize().unwrap().display().to_string().trim_start_matches('/'))
}

/// `# difyplan: allow CODE -- reason` above a line or at its end, in `.env`, compose and values
/// files; the reason is shown in every format; an unused one is reported; none without a reason.
#[test]
fn inline_suppressions_in_every_kind_of_file() {
    let repo = dify_repo();
    let env = repo.path().join("docker/.env");
    let text = std::fs::read_to_string(&env).unwrap();
    let text = text
        .replacen(
            "DB_USERNAME=postgres",
            "# difyplan: allow superuser-app-role -- the managed database has no other role\nDB_USERNAME=postgres",
            1,
        )
        .replacen(
            "SQLALCHEMY_POOL_SIZE=30",
            "SQLALCHEMY_POOL_SIZE=30 # difyplan: allow beat-pool-oversized -- beat shares the api's pool on purpose",
            1,
        );
    std::fs::write(&env, &text).unwrap();
    let compose = repo.path().join("docker/docker-compose.yaml");
    let yaml = std::fs::read_to_string(&compose).unwrap();
    assert!(yaml.contains("\n  plugin_daemon:\n"), "fixture sanity");
    let yaml = yaml.replacen(
        "\n  plugin_daemon:\n",
        "\n  # difyplan: allow plugin-daemon-pool-default -- the daemon is idle here\n  plugin_daemon:\n",
        1,
    );
    std::fs::write(&compose, yaml).unwrap();
    let r = difyplan_at(repo.path(), &["check", "docker", "--format", "json"], &[]);
    assert!(r.code <= 1, "{}", r.stderr);
    let v = json(&r);
    let allowed = allowed_codes(&v);
    for code in ["superuser-app-role", "beat-pool-oversized", "plugin-daemon-pool-default"] {
        assert!(allowed.contains(&code.to_string()), "{code} not allowed: {allowed:?}\n{}", r.stdout);
    }
    assert_eq!(v["suppressed"][0]["kind"], "inline");
    // Shown in every format, with the reason.
    for format in ["human", "github", "sarif", "gitlab", "json"] {
        let r = difyplan_at(repo.path(), &["check", "docker", "--format", format, "--wide"], &[]);
        assert!(r.stdout.contains("the managed database has no other role"), "{format}: {}", r.stdout);
    }
    let sarif = json(&difyplan_at(repo.path(), &["check", "docker", "--format", "sarif"], &[]));
    let suppressed: Vec<&serde_json::Value> =
        sarif["runs"][0]["results"].as_array().unwrap().iter().filter(|r| r["suppressions"].is_array()).collect();
    assert_eq!(suppressed.len(), 3);
    assert!(suppressed.iter().all(|r| r["suppressions"][0]["kind"] == "inSource"));
    // Helm values: at the end of the line the finding is anchored to.
    let values = std::fs::read_to_string(helm_fixture("borispolonsky-scaled.values.yaml")).unwrap();
    let gh = difyplan_at(
        repo.path(),
        &[
            "check",
            "--values",
            &helm_fixture("borispolonsky-scaled.values.yaml").display().to_string(),
            "--format",
            "json",
        ],
        &[],
    );
    let line = json(&gh)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "worker-pool-deadlock-risk")
        .unwrap()["location"]["line"]
        .as_u64()
        .unwrap() as usize;
    let mut lines: Vec<String> = values.lines().map(str::to_string).collect();
    lines[line - 1].push_str("  # difyplan: allow worker-pool-deadlock-risk -- workers run no chat apps");
    lines.push("# difyplan: allow hpa-unbounded -- nothing to allow".into());
    std::fs::write(repo.path().join("values.yaml"), lines.join("\n") + "\n").unwrap();
    let v = json(&difyplan_at(repo.path(), &["check", "--values", "values.yaml", "--format", "json"], &[]));
    assert!(allowed_codes(&v).contains(&"worker-pool-deadlock-risk".to_string()), "{v}");
    let unused = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "unused-allow")
        .expect("unused inline allow reported");
    assert_eq!(unused["location"]["path"], "values.yaml");
    assert_eq!(unused["location"]["line"], lines.len());
    // No reason, or an unknown code: exit 2 at the comment's line, with the nearest code.
    std::fs::write(&env, text.replace(" -- the managed database has no other role", "")).unwrap();
    let r = difyplan_at(repo.path(), &["check", "docker"], &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("docker/.env:") && r.stderr.contains("needs a reason"), "{}", r.stderr);
    std::fs::write(&env, text.replace("allow superuser-app-role", "allow superuser-app-rol")).unwrap();
    let r = difyplan_at(repo.path(), &["check", "docker"], &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("`superuser-app-role`"), "{}", r.stderr);
}

// ---- explain, quiet, colour --------------------------------------------------------------------

#[test]
fn explain_a_code_list_them_and_refuse_a_typo() {
    for code in difyplan::findings::Code::ALL {
        let r = difyplan(&["explain", code.as_str()]);
        assert_eq!(r.code, 0, "{code}: {}", r.stderr);
        let flat = r.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(code.full_description()), "{code}: {}", r.stdout);
        assert!(r.stdout.contains(&format!("# difyplan: allow {code} -- ")), "{code}");
        assert!(r.stdout.lines().all(|l| l.chars().count() <= 100), "{code}: {}", r.stdout);
    }
    let list = difyplan(&["explain", "--list"]);
    assert_eq!(list.code, 0);
    assert_eq!(list.stdout.lines().count(), difyplan::findings::Code::ALL.len());
    let r = difyplan(&["explain", "pool-deadlok-risk"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("did you mean `pool-deadlock-risk`"), "{}", r.stderr);
}

/// The README's table of codes has every code once, with its severity from the one table.
#[test]
fn readme_table_of_codes_matches_the_code_table() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for code in difyplan::findings::Code::ALL {
        let anchor = format!("| <a id=\"{code}\"></a>`{code}` | ");
        assert_eq!(readme.matches(&anchor).count(), 1, "README's table lists {code} once");
        let row = readme.split(&anchor).nth(1).unwrap();
        let severity = row.split(" |").next().unwrap().trim_end_matches(['¹', '²']);
        assert_eq!(severity, code.severity().to_string(), "{code}");
    }
}

#[test]
fn quiet_prints_findings_and_the_summary_only() {
    let repo = dify_repo();
    let r = difyplan_at(repo.path(), &["check", "docker", "--quiet"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains('┌'), "{}", r.stdout);
    assert!(r.stdout.contains("warning[superuser-app-role]"), "{}", r.stdout);
    assert!(r.stdout.trim_end().lines().last().unwrap().starts_with("difyplan check: "), "{}", r.stdout);
}

/// Colour on a terminal (a real pseudo-terminal from `script`), never with NO_COLOR or
/// TERM=dumb, never in a pipe unless asked, never in JSON.
#[test]
fn colour_follows_the_terminal_and_no_color() {
    let repo = dify_repo();
    let bin = env!("CARGO_BIN_EXE_difyplan");
    let piped = difyplan_at(repo.path(), &["check", "docker"], &[("NO_COLOR", "")]);
    assert!(!piped.stdout.contains('\x1b'), "coloured in a pipe");
    let always = difyplan_at(repo.path(), &["check", "docker", "--color", "always"], &[]);
    assert!(always.stdout.contains("\x1b[1;33mwarning\x1b[0m[superuser-app-role]"), "{}", always.stdout);
    let json_out = difyplan_at(repo.path(), &["check", "docker", "--color", "always", "--format", "json"], &[]);
    assert!(!json_out.stdout.contains('\x1b'));
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("\n!!!!! SKIPPED: `script` (util-linux) is missing: the terminal half of the colour test !!!!!\n");
        return;
    }
    let on_tty = |envs: &[(&str, &str)]| {
        let o = Command::new("script")
            .args(["-qec", &format!("{bin} check docker --quiet"), "/dev/null"])
            .current_dir(repo.path())
            .env_remove("NO_COLOR")
            .env("TERM", "xterm")
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(on_tty(&[]).contains("\x1b[1;33mwarning"), "no colour on a terminal: {:?}", on_tty(&[]));
    assert!(!on_tty(&[("NO_COLOR", "1")]).contains("\x1b[1;33m"), "NO_COLOR ignored");
    assert!(!on_tty(&[("TERM", "dumb")]).contains("\x1b[1;33m"), "TERM=dumb ignored");
}

// ---- Commands as the README writes them ------------------------------------------------------

/// Output folders are made; `render helm` takes `NAME@VERSION` as `check` does and its header
/// says it; a version difyplan does not know is refused.
#[test]
fn output_folders_are_made_and_render_helm_takes_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let r = difyplan_at(dir.path(), &["render", "kubernetes", "--qps", "10", "-o", "k8s/"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(dir.path().join("k8s/api.yaml").is_file());
    // `-o -` is stdout, as `-` is everywhere else: no folder named `-`.
    let r = difyplan_at(dir.path(), &["render", "compose", "--qps", "10", "-o", "-"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("# docker-compose.override.yaml"), "{}", r.stdout);
    assert!(!dir.path().join("-").exists());
    let r = difyplan_at(dir.path(), &["templates", "export", "my-templates/"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(std::fs::read_dir(dir.path().join("my-templates")).unwrap().count() > 0);
    // matrix --write outside the repository: its folder is made.
    let r = difyplan_at(dir.path(), &["matrix", "--write"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(dir.path().join("matrices/chat-compose.toml").is_file());
    let r = difyplan_at(dir.path(), &["render", "helm", "--qps", "10", "--chart", "borispolonsky@0.36"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("render helm --chart borispolonsky@0.36"), "{}", r.stdout);
    let r = difyplan_at(dir.path(), &["render", "helm", "--qps", "10", "--chart", "douban@0.3"], &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("0.4 to 0.9"), "{}", r.stderr);
}

/// Every table fits an 80-column terminal: `matrix` too, and the man page's lines.
#[test]
fn matrix_fits_columns() {
    let r = crate::support::difyplan_with(&["matrix", "--profile", "chat"], None, &[("COLUMNS", "80")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let widest = r.stdout.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest <= 80, "{widest} columns:\n{}", r.stdout);
    let full = difyplan(&["matrix", "--profile", "chat"]);
    assert!(full.stdout.lines().map(|l| l.chars().count()).max().unwrap() > 80, "piped: whole tables");
}

// ---- Messages for installed users ----------------------------------------------------------------

/// A mistyped flag gets the nearest one; a negative count says it is negative.
#[test]
fn typos_and_bad_counts_say_what_to_write() {
    let r = difyplan(&["size", "--qsp", "5"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("did you mean '--qps'?"), "{}", r.stderr);
    let r = difyplan(&["render", "env", "--qsp", "5"]);
    assert!(r.stderr.contains("did you mean '--qps'?"), "{}", r.stderr);
    let r = crate::support::difyplan_in(&["check", "-"], Some("SERVER_WORKER_AMOUNT=-5\nDB_USERNAME=dify\n"));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("-5 is negative") && !r.stderr.contains("not a whole number"), "{}", r.stderr);
}

/// No output points at files only the repository has.
#[test]
fn messages_point_to_what_an_installed_binary_has() {
    let repo = dify_repo();
    let texts = [
        difyplan_at(repo.path(), &["check", "docker", "--qps", "50", "--wide"], &[]),
        difyplan(&["size", "--qps", "500", "--wide"]),
        difyplan(&["size", "--qps", "5", "--assume", "chat_pool_factor=0.5"]),
    ];
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(bad.path().join("p.toml"), "request_secondz = 3\n").unwrap();
    let profile = difyplan(&["size", "--qps", "5", "--profile", &bad.path().join("p.toml").display().to_string()]);
    assert_eq!(profile.code, 2);
    for r in texts.iter().chain([&profile]) {
        let all = format!("{}{}", r.stdout, r.stderr);
        for repo_only in ["docs/model.md", "matrices/profiles", "README"] {
            assert!(!all.contains(repo_only), "{repo_only} in:\n{all}");
        }
    }
}

/// Bash completes `--profile` with the built-in names (and files).
#[test]
fn completions_offer_the_builtin_profiles() {
    let script = difyplan(&["completions", "bash"]).stdout;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("difyplan.bash");
    std::fs::write(&file, script).unwrap();
    let o = Command::new("bash")
        .args(["--noprofile", "--norc", "-c"])
        .arg(format!(
            "source '{}'; COMP_WORDS=(difyplan size --profile w); COMP_CWORD=3; COMP_LINE='difyplan size --profile w'; \
             COMP_POINT=${{#COMP_LINE}}; _difyplan difyplan w --profile; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display()
        ))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "workflow", "{}", String::from_utf8_lossy(&o.stderr));
}

/// The plugin daemon keeps the vendor's 2C4G ratio: compose's one container at 10 to 24 cores
/// gets 2 GiB per core, not 4 GiB whatever its cores; a Kubernetes replica stays 2C4G.
#[test]
fn plugin_daemon_memory_follows_its_cores() {
    for (qps, target) in [("100", "compose"), ("300", "compose"), ("500", "compose"), ("500", "kubernetes")] {
        let v = json(&difyplan(&["size", "--qps", qps, "--target", target, "--format", "json"]));
        let c = v["components"].as_array().unwrap().iter().find(|c| c["component"] == "plugin_daemon").unwrap();
        let cpus = c["cpu_per_pod"].as_f64().unwrap();
        let mib = c["memory_mib_per_pod"].as_f64().unwrap();
        assert!(mib >= 2048.0 * cpus && mib >= 4096.0, "{qps} QPS on {target}: {cpus} cores, {mib} MiB");
    }
}
