//! Deployments as public repositories commit them: values with keys the chart ignores, a chart
//! vendored in the tree and deployed by a script or Terraform, databases on images built on the
//! official postgres image. Minimal reproductions of what those repositories hold; the chart keys
//! are those of BorisPolonsky/dify-helm and douban/charts (`charts/dify/values.yaml`).

use crate::support::{check_json as check, difyplan, folder, json, s};
use serde_json::Value;
use std::path::Path;

fn findings<'a>(v: &'a Value, code: &str) -> Vec<&'a Value> {
    v["findings"].as_array().unwrap().iter().filter(|f| f["code"] == code).collect()
}

fn demand(v: &Value) -> u64 {
    v["deployments"][0]["budget"]["demand"].as_u64().unwrap()
}

/// dify-helm values of the kind kept for years: an old top-level `resources:` (a key of 0.14 to
/// 0.30) and an `nginx:` block no version has. Helm installs them; both are notes.
const BORIS_OLD_KEYS: &str = "image:
  api:
    tag: \"1.16.1\"
api:
  replicas: 2
worker:
  replicas: 1
resources:
  limits:
    cpu: 2
nginx:
  enabled: true
  replicas: 2
postgresql:
  primary:
    extendedConfiguration: |
      max_connections = 300
  readReplicas:
    extendedConfiguration: |
      max_connections = 300
";

#[test]
fn keys_the_chart_ignores_are_notes_not_refusals() {
    let dir = folder(&[("values.yaml", BORIS_OLD_KEYS)]);
    let (_, v) = check(&[&s(dir.path())]);
    let notes = findings(&v, "unknown-values-key");
    let msgs: Vec<&str> = notes.iter().map(|f| f["message"].as_str().unwrap()).collect();
    assert_eq!(notes.len(), 2, "{msgs:?}");
    assert!(msgs[0].contains("`resources:` is a key of older versions only"), "{msgs:?}");
    assert!(msgs[1].contains("`nginx:` is not a key of it"), "{msgs:?}");
    assert_eq!(notes[1]["severity"], "note");
    assert_eq!(notes[1]["source"]["line"], 11);
    // The budget is the chart's, surge included: api 3 × 40, worker 2 × 40, beat 40, plugin daemon 2 × 30.
    assert_eq!(demand(&v), 300);
}

#[test]
fn a_vendored_schema_that_forbids_a_key_is_refused_as_helm_does() {
    let chart = "apiVersion: v2\nname: dify\ndescription: Instant cloud deployment for https://github.com/langgenius/dify.\nversion: 0.38.0\ndependencies:\n- name: postgresql\n  condition: postgresql.enabled\n";
    let closed = r#"{"type": "object", "additionalProperties": false,
        "properties": {"image": {}, "api": {}, "worker": {}, "postgresql": {}, "resources": {}}}"#;
    let dir = folder(&[("Chart.yaml", chart), ("values.schema.json", closed), ("values.yaml", BORIS_OLD_KEYS)]);
    let r = difyplan(&["check", &s(dir.path())]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("values.yaml:11: `nginx` is not allowed by the chart's"), "{}", r.stderr);
    // The same schema open: the key is a note again.
    let open = closed.replace("\"additionalProperties\": false,", "");
    let dir = folder(&[("Chart.yaml", chart), ("values.schema.json", &open), ("values.yaml", BORIS_OLD_KEYS)]);
    let (_, v) = check(&[&s(dir.path())]);
    assert_eq!(findings(&v, "unknown-values-key").len(), 2);
}

#[test]
fn an_unknown_key_that_sets_pools_still_needs_the_chart_named() {
    let values = "api:\n  replicas: 2\nworker:\n  replicas: 1\nsharedEnv:\n  SQLALCHEMY_POOL_SIZE: \"10\"\n";
    let dir = folder(&[("values.yaml", values)]);
    let r = difyplan(&["check", &s(dir.path())]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("values.yaml:5: `sharedEnv:` sets SQLALCHEMY_POOL_SIZE"), "{}", r.stderr);
    // Named, Helm ignores it: a note, and the pools are the chart's.
    let (_, v) = check(&["--chart", "borispolonsky@0.38", &s(&dir.path().join("values.yaml"))]);
    assert_eq!(findings(&v, "unknown-values-key").len(), 1);
}

/// A compose database on pgvector's image (built on the official one) with `POSTGRES_USER: dify`:
/// Dify connecting as `dify` connects as the superuser the entrypoint created.
#[test]
fn images_built_on_the_official_postgres_image_make_postgres_user_the_superuser() {
    for image in ["pgvector/pgvector:pg16", "postgis/postgis:16-3.4", "postgres:16"] {
        let compose = format!(
            "services:
  api:
    image: langgenius/dify-api:1.16.1
    environment:
      DB_USERNAME: dify
  db_postgres:
    image: {image}
    environment:
      POSTGRES_USER: dify
    command: postgres -c max_connections=200
"
        );
        let dir = folder(&[("docker-compose.yaml", &compose)]);
        let (_, v) = check(&[&s(dir.path())]);
        assert_eq!(v["deployments"][0]["deployment"]["app_role_superuser"], true, "{image}");
        assert_eq!(findings(&v, "superuser-app-role").len(), 1, "{image}");
    }
    let compose = "services:\n  api:\n    image: langgenius/dify-api:1.16.1\n    environment:\n      DB_USERNAME: dify\n  db_postgres:\n    image: bitnami/postgresql:16\n    environment:\n      POSTGRES_USER: dify\n";
    let dir = folder(&[("docker-compose.yaml", compose)]);
    let (_, v) = check(&[&s(dir.path())]);
    assert_eq!(v["deployments"][0]["deployment"]["app_role_superuser"], false);
}

/// Copy the vendored douban 0.4.1 chart (tests/data/charts) into `dest`.
fn vendor_douban_041(dest: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/charts/douban-dify-0.4.1");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let to = dest.join(p.strip_prefix(&src).unwrap());
            if p.is_dir() {
                std::fs::create_dir_all(&to).unwrap();
                stack.push(p);
            } else {
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(&p, &to).unwrap();
            }
        }
    }
}

const DOUBAN_PROD: &str =
    "global:\n  image:\n    tag: \"1.9.1\"\napi:\n  replicaCount: 2\nworker:\n  replicaCount: 2\n";

/// A repository that vendors douban's chart 0.4.1 unchanged and installs it from Terraform with a
/// values layer: the chart is that version (no plugin daemon, no beat), read with its values.
#[test]
fn a_vendored_copy_of_a_known_version_deployed_by_terraform_is_that_version() {
    let tf = "resource \"helm_release\" \"dify\" {\n  name  = \"dify\"\n  chart = \"${path.module}/charts/dify\"\n  values = [\n    file(\"${path.module}/deploy/prod.yaml\"),\n  ]\n}\n";
    let dir = folder(&[("main.tf", tf), ("deploy/prod.yaml", DOUBAN_PROD)]);
    vendor_douban_041(&dir.path().join("charts/dify"));
    let (_, v) = check(&[&s(dir.path())]);
    assert_eq!(v["deployments"].as_array().unwrap().len(), 1, "{v}");
    let d = &v["deployments"][0]["deployment"];
    assert!(d["chart"]["value"].as_str().unwrap().contains("douban/charts 0.4"), "{d}");
    let comps: Vec<&str> =
        d["components"].as_array().unwrap().iter().map(|c| c["component"].as_str().unwrap()).collect();
    assert_eq!(comps, ["api", "worker"], "no plugin daemon and no beat in 0.4");
    // api and worker: 2 replicas + 1 surge, 40 each.
    assert_eq!(demand(&v), 240);
    assert!(findings(&v, "chart-version-assumed").is_empty());
}

/// The same chart with a template edited (a fork): not read with the upstream defaults.
#[test]
fn a_fork_of_a_known_chart_is_refused_with_the_helm_template_command() {
    let script = "#!/bin/sh\nhelm upgrade --install dify ./charts/dify \\\n  -f deploy/prod.yaml\n";
    let dir = folder(&[("deploy.sh", script), ("deploy/prod.yaml", DOUBAN_PROD)]);
    vendor_douban_041(&dir.path().join("charts/dify"));
    let dep = dir.path().join("charts/dify/templates/deployment.yaml");
    let text =
        std::fs::read_to_string(&dep).unwrap().replace("replicas: {{ .Values.api.replicaCount }}", "replicas: 3");
    std::fs::write(&dep, text).unwrap();
    let r = difyplan(&["check", &s(dir.path())]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("is a fork of douban/charts"), "{}", r.stderr);
    assert!(r.stderr.contains("helm template dify") && r.stderr.contains("| difyplan check -"), "{}", r.stderr);
}

/// `helm upgrade dify ./charts/dify -f base -f prod` in a deploy script: one release, layered in
/// the script's order, not two deployments.
#[test]
fn a_deploy_script_layers_its_values_files_in_order() {
    let script = "#!/bin/sh\nset -eu\nhelm upgrade --install dify ./charts/dify -n dify \\\n  -f values/base.yaml \\\n  -f values/prod.yaml --wait\n";
    let base = "global:\n  image:\n    tag: \"1.9.1\"\napi:\n  replicaCount: 1\nworker:\n  replicaCount: 1\n";
    let prod = "api:\n  replicaCount: 4\n";
    let dir = folder(&[("scripts/deploy.sh", script), ("values/base.yaml", base), ("values/prod.yaml", prod)]);
    vendor_douban_041(&dir.path().join("charts/dify"));
    let (_, v) = check(&[&s(dir.path())]);
    assert_eq!(v["deployments"].as_array().unwrap().len(), 1, "{v}");
    let api = &v["deployments"][0]["deployment"]["components"][0];
    assert_eq!(api["replicas"]["value"], 4);
    assert!(api["replicas"]["source"]["path"].as_str().unwrap().ends_with("values/prod.yaml"), "{api}");
}

/// LangGenius's chart pinned by an Argo CD Application: named, with the command that renders it.
#[test]
fn langgeniuss_chart_is_named_with_the_command_that_renders_it() {
    let app = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: dify\nspec:\n  source:\n    repoURL: https://langgenius.github.io/dify-helm\n    chart: dify\n    targetRevision: 3.5.3\n    helm:\n      valueFiles:\n        - values.yaml\n";
    let values = "global:\n  appSecretKey: x\napi:\n  replicas: 2\nworker:\n  replicas: 1\n";
    let dir = folder(&[("app.yaml", app), ("values.yaml", values)]);
    let r = difyplan(&["check", &s(dir.path())]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("LangGenius's `dify` chart"), "{}", r.stderr);
    assert!(r.stderr.contains("helm template dify dify/dify"), "{}", r.stderr);
}

/// Manifests whose Dify ConfigMap kustomize generates from an env file (`configMapGenerator:
/// envs:`), referenced by its name as a kustomize tree holds it. `kubectl kustomize` on this tree
/// renders the ConfigMap `dify-env-<hash>` with the env file's keys and rewrites the reference.
#[test]
fn kustomize_config_map_generator_envs_are_read() {
    let kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - api.yaml\nconfigMapGenerator:\n  - name: dify-env\n    envs:\n      - dify.env\n    literals:\n      - SQLALCHEMY_MAX_OVERFLOW=5\n";
    let api = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dify-api\nspec:\n  replicas: 2\n  strategy:\n    type: Recreate\n  template:\n    spec:\n      containers:\n        - name: api\n          image: langgenius/dify-api:1.16.1\n          envFrom:\n            - configMapRef:\n                name: dify-env\n";
    let env = "# pools\nSQLALCHEMY_POOL_SIZE=25\nSERVER_WORKER_CONNECTIONS=10\n";
    let dir = folder(&[("kustomization.yaml", kustomization), ("api.yaml", api), ("dify.env", env)]);
    let (_, v) = check(&[&s(dir.path()), "--pg-max-connections", "200"]);
    let api = &v["deployments"][0]["deployment"]["components"][0];
    assert_eq!(api["pool_size"]["value"], 25, "{api}");
    assert_eq!(api["pool_size"]["source"]["line"], 2, "{api}");
    assert_eq!(api["max_overflow"]["value"], 5, "{api}");
    assert_eq!(demand(&v), 60);
}

/// A Flux HelmRelease whose valuesFrom ConfigMap kustomize generates from values.yaml.
#[test]
fn flux_values_from_a_generated_config_map_are_read() {
    let kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: dify\nresources:\n  - release.yaml\nconfigMapGenerator:\n  - name: dify-values\n    files:\n      - values.yaml=values-prod.yaml\n";
    let release = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: dify\nspec:\n  chart:\n    spec:\n      chart: dify\n      version: 0.9.1\n      sourceRef:\n        kind: HelmRepository\n        name: douban\n  valuesFrom:\n    - kind: ConfigMap\n      name: dify-values\n---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: douban\nspec:\n  url: https://douban.github.io/charts/\n";
    let values = "global:\n  image:\n    tag: \"1.10.1\"\napi:\n  replicaCount: 3\n";
    let dir = folder(&[("kustomization.yaml", kustomization), ("release.yaml", release), ("values-prod.yaml", values)]);
    let (_, v) = check(&[&s(dir.path())]);
    assert_eq!(v["deployments"].as_array().unwrap().len(), 1, "{v}");
    let api = &v["deployments"][0]["deployment"]["components"][0];
    assert_eq!(api["replicas"]["value"], 3, "{api}");
    assert!(api["replicas"]["source"]["path"].as_str().unwrap().ends_with("values-prod.yaml"), "{api}");
}

/// The same tree through the real `kubectl kustomize` (when installed): the rendered output and
/// the tree give the same budget.
#[test]
fn kustomize_tree_and_its_kubectl_rendering_agree() {
    let kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - api.yaml\nconfigMapGenerator:\n  - name: dify-env\n    envs:\n      - dify.env\n";
    let api = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dify-api\nspec:\n  replicas: 3\n  template:\n    spec:\n      containers:\n        - name: api\n          image: langgenius/dify-api:1.16.1\n          envFrom:\n            - configMapRef:\n                name: dify-env\n";
    let env = "SQLALCHEMY_POOL_SIZE=12\nSQLALCHEMY_MAX_OVERFLOW=3\nSERVER_WORKER_AMOUNT=2\n";
    let dir = folder(&[("kustomization.yaml", kustomization), ("api.yaml", api), ("dify.env", env)]);
    let Ok(out) = std::process::Command::new("kubectl").arg("kustomize").arg(dir.path()).output() else {
        eprintln!("\n!!!!! SKIPPED: kubectl is not installed: the tree is not compared with kubectl kustomize !!!!!\n");
        return;
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rendered = String::from_utf8(out.stdout).unwrap();
    let r = crate::support::difyplan_in(
        &["check", "-", "--format", "json", "--pg-max-connections", "500"],
        Some(&rendered),
    );
    let from_kubectl = json(&r);
    let (_, from_tree) = check(&[&s(dir.path()), "--pg-max-connections", "500"]);
    // 3 replicas + 1 surge, 2 processes × (12 + 3).
    assert_eq!(demand(&from_tree), 120);
    assert_eq!(demand(&from_kubectl), demand(&from_tree));
}

/// A repository that pins douban/charts as a git submodule (`.gitmodules` names
/// `vendor/douban-charts`) and installs `./vendor/douban-charts/charts/dify` from its deploy
/// script with a values layer: checked out, the submodule's chart is read like any vendored one
/// (0.4.1, no plugin daemon, no beat).
#[test]
fn a_chart_pinned_as_a_git_submodule_is_read_when_checked_out() {
    let gitmodules = "[submodule \"vendor/douban-charts\"]\n\tpath = vendor/douban-charts\n\turl = https://github.com/douban/charts.git\n";
    let script = "#!/bin/sh\nhelm upgrade --install dify ./vendor/douban-charts/charts/dify -f deploy/prod.yaml\n";
    let dir = folder(&[(".gitmodules", gitmodules), ("deploy.sh", script), ("deploy/prod.yaml", DOUBAN_PROD)]);
    let sub = dir.path().join("vendor/douban-charts");
    vendor_douban_041(&sub.join("charts/dify"));
    // A checked-out submodule's `.git` is a file that points into the superproject.
    std::fs::write(sub.join(".git"), "gitdir: ../../.git/modules/vendor/douban-charts\n").unwrap();
    let (_, v) = check(&[&s(dir.path())]);
    assert_eq!(v["deployments"].as_array().unwrap().len(), 1, "{v}");
    let d = &v["deployments"][0]["deployment"];
    assert!(d["chart"]["value"].as_str().unwrap().contains("douban/charts 0.4"), "{d}");
    assert_eq!(demand(&v), 240);
}

/// The same repository cloned without `--recurse-submodules`: the submodule's folder is empty.
/// Refused, naming the submodule and the command that checks it out, instead of reading the
/// values with some other chart's defaults.
#[test]
fn a_submodule_chart_not_checked_out_is_refused_with_the_git_command() {
    let gitmodules =
        "[submodule \"douban\"]\n\tpath = vendor/douban-charts\n\turl = https://github.com/douban/charts.git\n";
    let script = "#!/bin/sh\nhelm upgrade --install dify vendor/douban-charts/charts/dify -f deploy/prod.yaml\n";
    let dir = folder(&[(".gitmodules", gitmodules), ("deploy.sh", script), ("deploy/prod.yaml", DOUBAN_PROD)]);
    std::fs::create_dir_all(dir.path().join("vendor/douban-charts")).unwrap();
    let r = difyplan(&["check", &s(dir.path())]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("deploy.sh:2: the chart `vendor/douban-charts/charts/dify` is in the git submodule `vendor/douban-charts` (https://github.com/douban/charts.git)"), "{}", r.stderr);
    assert!(r.stderr.contains(".gitmodules:2"), "{}", r.stderr);
    assert!(r.stderr.contains("git submodule update --init vendor/douban-charts"), "{}", r.stderr);
}

/// An Argo CD Application whose source is a folder of the repository itself, a git submodule
/// pinning douban/charts (`path: vendor/douban-charts/charts/dify`): read like a vendored chart
/// when checked out, refused with the git command when the folder is empty.
#[test]
fn an_application_with_a_chart_path_in_a_submodule() {
    let gitmodules =
        "[submodule \"douban\"]\n\tpath = vendor/douban-charts\n\turl = https://github.com/douban/charts.git\n";
    let app = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: dify\nspec:\n  source:\n    repoURL: https://git.example.org/platform/deploy.git\n    targetRevision: main\n    path: vendor/douban-charts/charts/dify\n    helm:\n      valuesObject:\n        global:\n          image:\n            tag: \"1.9.1\"\n        api:\n          replicaCount: 2\n        worker:\n          replicaCount: 2\n";
    let dir = folder(&[(".gitmodules", gitmodules), ("argocd/dify.yaml", app)]);
    let sub = dir.path().join("vendor/douban-charts");
    std::fs::create_dir_all(&sub).unwrap();
    let r = difyplan(&["check", &s(dir.path())]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains("dify.yaml:9: the chart `vendor/douban-charts/charts/dify` is in the git submodule"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("git submodule update --init vendor/douban-charts"), "{}", r.stderr);
    vendor_douban_041(&sub.join("charts/dify"));
    let (_, v) = check(&[&s(dir.path())]);
    assert_eq!(v["deployments"].as_array().unwrap().len(), 1, "{v}");
    let d = &v["deployments"][0]["deployment"];
    assert!(d["chart"]["value"].as_str().unwrap().contains("douban/charts 0.4"), "{d}");
    assert_eq!(demand(&v), 240);
}

/// A Flux HelmRelease whose chart is a folder of the GitRepository Flux syncs (the repository
/// itself, where a submodule pins douban/charts): read like a vendored chart, or refused with the
/// git command when the submodule is not checked out.
#[test]
fn a_flux_chart_from_a_git_repository_folder_in_a_submodule() {
    let gitmodules =
        "[submodule \"douban\"]\n\tpath = vendor/douban-charts\n\turl = https://github.com/douban/charts.git\n";
    let release = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: dify\nspec:\n  chart:\n    spec:\n      chart: ./vendor/douban-charts/charts/dify\n      sourceRef:\n        kind: GitRepository\n        name: platform\n  values:\n    global:\n      image:\n        tag: \"1.9.1\"\n    api:\n      replicaCount: 2\n    worker:\n      replicaCount: 2\n";
    let dir = folder(&[(".gitmodules", gitmodules), ("clusters/prod/dify.yaml", release)]);
    let sub = dir.path().join("vendor/douban-charts");
    std::fs::create_dir_all(&sub).unwrap();
    let r = difyplan(&["check", &s(dir.path())]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains("dify.yaml:8: the chart `./vendor/douban-charts/charts/dify` is in the git submodule"),
        "{}",
        r.stderr
    );
    vendor_douban_041(&sub.join("charts/dify"));
    let (_, v) = check(&[&s(dir.path())]);
    assert_eq!(v["deployments"].as_array().unwrap().len(), 1, "{v}");
    assert!(v["deployments"][0]["deployment"]["chart"]["value"].as_str().unwrap().contains("douban/charts 0.4"));
    assert_eq!(demand(&v), 240);
}
