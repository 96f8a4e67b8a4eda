//! kustomize's `configMapGenerator` (and `secretGenerator`) as `kubectl kustomize` renders them:
//! a ConfigMap named after the generator (kustomize appends a content hash and rewrites every
//! reference in the same build, so references by the generator's name are what a tree holds),
//! in the Kustomization's `namespace`, with data from `envs` (`KEY=VALUE` lines), `files`
//! (`[key=]path`, the file's text under its name) and `literals` (`KEY=VALUE`), later entries
//! winning.

use crate::deployment::{Source, Valued};
use crate::read::error::Error;
use crate::read::yaml::{self, Document, PathSeg};
use serde_yaml::Value;
use std::path::{Path, PathBuf};

/// One generated ConfigMap (or Secret).
pub struct Generated {
    pub name: String,
    pub namespace: Option<String>,
    /// Data keys with their values and where each was written.
    pub data: Vec<(String, Valued<String>)>,
    /// `files` entries: the data key and the file it was read from.
    pub files: Vec<(String, PathBuf)>,
    /// The `envs` files read into `data`.
    pub envs: Vec<PathBuf>,
    /// A `secretGenerator`'s (its data is not read: Secrets are not in the budget).
    pub secret: bool,
    /// `behavior:` (`create`, `merge`, `replace`), when written.
    pub behavior: Option<String>,
    /// The line of the generator's entry.
    pub line: usize,
}

fn p(keys: &[&str]) -> Vec<PathSeg> {
    PathSeg::keys(keys)
}

/// The names kustomize looks for in a folder, in its order.
pub const KUSTOMIZATION_NAMES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Whether a file is a kustomization by its name.
pub fn is_kustomization_name(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| KUSTOMIZATION_NAMES.contains(&n))
}

/// Whether a document is a Kustomization (by its kind, or by its file's name).
pub fn is_kustomization(doc: &Document) -> bool {
    is_kustomization_name(Path::new(&doc.file))
        || yaml::get_string(&doc.value, &p(&["kind"])).as_deref() == Some("Kustomization")
        || yaml::get_string(&doc.value, &p(&["apiVersion"])).is_some_and(|a| a.starts_with("kustomize.config.k8s.io"))
}

/// The ConfigMaps and Secrets a Kustomization generates, files read relative to its folder.
pub fn generated(doc: &Document) -> Result<Vec<Generated>, Error> {
    let dir = Path::new(&doc.file).parent().map(Path::to_path_buf).unwrap_or_default();
    let namespace = yaml::get_string(&doc.value, &p(&["namespace"]));
    let mut out = Vec::new();
    for generator in ["configMapGenerator", "secretGenerator"] {
        let items = doc.get(&p(&[generator])).and_then(Value::as_sequence).cloned().unwrap_or_default();
        for (n, item) in items.iter().enumerate() {
            let base = [PathSeg::Key(generator.into()), PathSeg::Index(n)];
            let at = |more: &[PathSeg]| {
                let full: Vec<PathSeg> = base.iter().chain(more).cloned().collect();
                Source::file(doc.file.clone(), doc.line_of(&full).unwrap_or_else(|| doc.start().line))
            };
            let Some(name) = yaml::get_string(item, &p(&["name"])) else { continue };
            let mut g = Generated {
                name,
                namespace: yaml::get_string(item, &p(&["namespace"])).or_else(|| namespace.clone()),
                data: Vec::new(),
                files: Vec::new(),
                envs: Vec::new(),
                secret: generator == "secretGenerator",
                behavior: yaml::get_string(item, &p(&["behavior"])),
                line: doc.line_of(&base).unwrap_or_else(|| doc.start().line),
            };
            let list = |key: &str| -> Vec<String> {
                yaml::get(item, &p(&[key]))
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                    .filter_map(yaml::scalar_string)
                    .collect()
            };
            // kustomize: envs (and the older `env`), then files, then literals.
            let mut envs = list("envs");
            envs.extend(yaml::get_string(item, &p(&["env"])));
            for env in envs {
                let path = dir.join(&env);
                g.envs.push(path.clone());
                let text = crate::read::read_text(&path).map_err(|e| {
                    Error::at(
                        at(&p(&["envs"])),
                        format!("the env file `{env}` of configMapGenerator `{}` — {e}", g.name),
                    )
                })?;
                let shown = crate::safety::shown_path(&path);
                for (i, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    if let Some((k, v)) = line.split_once('=') {
                        g.data.push((
                            k.trim().to_string(),
                            Valued::new(v.to_string(), Source::file(shown.clone(), i + 1)),
                        ));
                    }
                }
            }
            for f in list("files") {
                let (key, file) = match f.split_once('=') {
                    Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
                    None => (f.rsplit('/').next().unwrap_or(&f).to_string(), f.clone()),
                };
                g.files.push((key, dir.join(file)));
            }
            for (i, lit) in list("literals").into_iter().enumerate() {
                if let Some((k, v)) = lit.split_once('=') {
                    let src = at(&[PathSeg::Key("literals".into()), PathSeg::Index(i)]);
                    g.data.push((k.trim().to_string(), Valued::new(v.trim_matches(['"', '\'']).to_string(), src)));
                }
            }
            out.push(g);
        }
    }
    Ok(out)
}
