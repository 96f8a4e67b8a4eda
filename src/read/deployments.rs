//! One place that groups the files found into deployments, for `check` and `calibrate`: a
//! compose project per folder (base file + override, the folder's `.env`), other compose files
//! alone, all manifests together, each Helm release (its values layers, chart and autoscalers),
//! and `.env` files that no compose file uses as Dify's default layout.

use super::compose::{self, Options, Project};
use super::inputs::{self, Input, Kind};
use crate::deployment::Deployment;
use crate::read::error::Error;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Group the inputs into deployments: a compose project per folder (base file + override, the
/// folder's `.env`), other compose files alone, all manifests together, each values file alone,
/// and `.env` files that no compose file uses as Dify's default layout.
pub fn deployments(
    found: &[Input],
    env_file: Option<&Path>,
    values: &[PathBuf],
    chart: Option<&str>,
    opts: &Options,
) -> Result<Vec<(String, String, Deployment)>, Error> {
    let mut out = Vec::new();
    // kustomize trees, built before the Helm releases take files in.
    let trees = super::kustomize::trees(found)?;
    // Helm releases first: they take in their values files, GitOps objects and autoscalers.
    let gathered = super::release::gather(found, values, chart)?;
    let found: Vec<Input> =
        found.iter().enumerate().filter(|(i, _)| !gathered.used.contains(i)).map(|(_, i)| i.clone()).collect();
    let found = found.as_slice();
    let mut by_dir: BTreeMap<PathBuf, Vec<&Input>> = BTreeMap::new();
    for i in found.iter().filter(|i| i.kind == Kind::Compose) {
        by_dir.entry(i.path.parent().map(Path::to_path_buf).unwrap_or_default()).or_default().push(i);
    }
    let mut used_envs = Vec::new();
    for (dir, mut files) in by_dir {
        files.sort_by_key(|f| (inputs::compose_rank(&f.path), f.path.clone()));
        let dir_env = env_file.map(Path::to_path_buf).or_else(|| Some(dir.join(".env")).filter(|p| p.is_file()));
        if let Some(e) = &dir_env {
            used_envs.push(e.clone());
        }
        let (main, rest): (Vec<&Input>, Vec<&Input>) =
            files.into_iter().partition(|f| inputs::compose_rank(&f.path) < 2);
        let mut groups: Vec<Vec<&Input>> = rest.into_iter().map(|f| vec![f]).collect();
        if !main.is_empty() {
            groups.insert(0, main);
        }
        for group in groups {
            // Env files a service reads (`env_file:`) are part of this project, not deployments of their own.
            for f in &group {
                used_envs.extend(service_env_files(f, &dir));
            }
            let project = Project {
                files: group.iter().map(|i| i.path.clone()).collect(),
                texts: group.iter().map(|i| i.text.clone()).collect(),
                env_file: dir_env.clone(),
            };
            let label = project.files.iter().map(|f| crate::safety::shown_path(f)).collect::<Vec<_>>().join(" + ");
            let d = compose::read(&project, opts)?;
            // A compose file with no Dify service (Dify's middleware file, say) is not a deployment.
            if !d.components.is_empty() {
                out.push((label, "compose".to_string(), d));
            }
        }
    }
    for i in found.iter().filter(|i| i.kind == Kind::Env) {
        let same = |p: &PathBuf| p.canonicalize().ok() == i.path.canonicalize().ok();
        if i.path.as_os_str() != "-" && used_envs.iter().any(same) {
            continue;
        }
        let d = compose::read_env_only(i, opts)?;
        out.push((crate::safety::shown_path(&i.path), "env".to_string(), d));
    }
    let manifests: Vec<&Input> = found.iter().filter(|i| i.kind == Kind::Kubernetes).collect();
    // kustomize trees, each built as `kubectl kustomize` builds it: one deployment per root.
    let (trees, manifests) = trees.split(&manifests);
    for tree in trees {
        let d = super::kubernetes::read_documents(&tree.documents, opts)?;
        if !d.components.is_empty() || !d.unbounded_autoscalers.is_empty() {
            out.push((tree.label, "kubernetes".to_string(), d));
        }
    }
    if !manifests.is_empty() {
        let d = super::kubernetes::read(&manifests, opts)?;
        let label = manifests.iter().map(|i| crate::safety::shown_path(&i.path)).collect::<Vec<_>>().join(" + ");
        if !d.components.is_empty() || !d.unbounded_autoscalers.is_empty() {
            out.push((label, "kubernetes".to_string(), d));
        }
    }
    for (label, release) in &gathered.releases {
        let d = super::helm::read_release(release, opts)?;
        out.push((label.clone(), "helm".to_string(), d));
    }
    Ok(out)
}

/// The files the services of a compose file name in `env_file:` (a path, a list of paths, or
/// of `{path: …}`), relative to the compose file's folder.
fn service_env_files(input: &Input, dir: &Path) -> Vec<PathBuf> {
    use super::yaml;
    let Ok(text) = input.text() else { return Vec::new() };
    let Ok(docs) = yaml::parse_documents(&text, &input.path.display().to_string()) else { return Vec::new() };
    let mut out = Vec::new();
    for doc in &docs {
        let Some(services) = doc.value.get("services").and_then(|s| s.as_mapping()) else { continue };
        for svc in services.values() {
            let items = match svc.get("env_file") {
                Some(serde_yaml::Value::Sequence(items)) => items.clone(),
                Some(v) => vec![v.clone()],
                None => Vec::new(),
            };
            for item in items {
                let path = yaml::scalar_string(&item).or_else(|| item.get("path").and_then(yaml::scalar_string));
                out.extend(path.map(|p| dir.join(p)));
            }
        }
    }
    out
}
