//! Finding the configuration in the paths `check` is given: folders are walked, files are
//! classified by name and content, and compose files are grouped into projects.

use crate::read::error::Error;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// What a file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A docker compose file (top-level `services:`).
    Compose,
    /// Kubernetes manifests (documents with `apiVersion` and `kind`).
    Kubernetes,
    /// Values of one of the community Helm charts.
    HelmValues,
    /// A `.env` file.
    Env,
    /// A Helm chart's `Chart.yaml`: it says which chart the values beside it are for.
    ChartMeta,
    /// A deploy script, Makefile, CI file or Terraform file that installs a Helm chart: it names
    /// the chart and the order of the values files.
    DeployCommand,
}

/// One input file and what it was recognised as.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    pub kind: Kind,
    /// The text, when it was read to classify the file (standard input, YAML).
    pub text: Option<String>,
}

impl Input {
    /// The file's text: what was read to classify it (or from standard input), else read now.
    pub fn text(&self) -> Result<std::borrow::Cow<'_, str>, Error> {
        match &self.text {
            Some(t) => Ok(std::borrow::Cow::Borrowed(t.as_str())),
            None => Ok(std::borrow::Cow::Owned(super::read_text(&self.path)?)),
        }
    }
}

/// Folders never walked whatever the ignore files say: version control, build output,
/// dependencies, Dify's data volumes.
const SKIP_DIRS: &[&str] = &[".git", "target", "node_modules", ".venv", "volumes"];

/// Files read in a folder even when an ignore file matches them: a deployment's `.env` is
/// usually git-ignored, and it is what `check` is for. Ignore files exclude folders only.
const ALWAYS_READ: &[&str] = &[
    ".env",
    "*.env",
    "*.yaml",
    "*.yml",
    // Deploy scripts, Makefiles and Terraform that run `helm upgrade|install` (is_deploy_script_name).
    "*.sh",
    "*.bash",
    "*.tf",
    "*.mk",
    "Makefile",
    "makefile",
    "GNUmakefile",
    "justfile",
    "Justfile",
    // kustomize's third name for a kustomization.
    "Kustomization",
];

/// Walk `paths` (a file, a folder, or `-` for standard input) and classify what is found.
/// Files given by name must be recognisable; files found in folders are skipped when not.
///
/// A walk (the `ignore` crate's, iterative: its time grows with the entries, not with the depth)
/// skips `.git/` and the folders a `.gitignore` or `.ignore` excludes (`node_modules/`,
/// `target/`), stays on the folder's filesystem, and reads each file once, however many links
/// lead to it (files are known by device and inode). It follows a symbolic link to a folder only
/// when the folder is inside the folder being walked: a link out of the tree (`shared -> /`) or
/// back up into it (`x -> .`) is not followed. Links to files are followed wherever they lead (a
/// `.env` shared by several projects is a link). Only regular files are read; a FIFO or a device
/// in a folder is skipped.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<Input>, CollectError> {
    let mut out = Vec::new();
    let mut seen: HashSet<FileId> = HashSet::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let text = super::read_stdin()?;
            let kind = classify_text(Path::new("-"), &text).ok_or(CollectError::StdinUnknown)?;
            out.push(Input { path: path.clone(), kind, text: Some(text) });
            continue;
        }
        let shown = crate::safety::shown_path(path);
        let open = |cause: std::io::Error| match cause.kind() {
            std::io::ErrorKind::NotFound => CollectError::Missing(shown.clone()),
            _ => super::ReadError::Open { file: shown.clone(), cause }.into(),
        };
        let meta = std::fs::metadata(path).map_err(open)?;
        if meta.is_dir() {
            let root = path.canonicalize().map_err(open)?;
            walk(path, &root, &mut seen, &mut out)?;
        } else {
            if !seen.insert(FileId::of(path, &meta)) {
                continue;
            }
            // A file given by name is taken whatever it is called: its content says what it is.
            let text = super::read_text(path)?;
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let kind = if name == "Chart.yaml" {
                Some(Kind::ChartMeta)
            } else if super::kustomize::is_kustomization_name(path) {
                Some(Kind::Kubernetes)
            } else {
                classify_text(path, &text)
            };
            let kind = kind.or_else(|| (!is_yaml(name) && looks_like_env(&text)).then_some(Kind::Env));
            let kind = kind.or_else(|| super::deploy_cmd::mentions_install(&text).then_some(Kind::DeployCommand));
            match kind {
                Some(kind) => out.push(Input { path: path.clone(), kind, text: Some(text) }),
                None => return Err(CollectError::Unknown(shown)),
            }
        }
    }
    Ok(out)
}

/// Why the paths given cannot be gathered into inputs.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Read(#[from] super::ReadError),
    #[error("{0}: no such file or folder — check the path")]
    Missing(String),
    #[error("-: standard input is neither a .env file, a compose file, Kubernetes manifests nor Helm values")]
    StdinUnknown,
    #[error(
        "{0}: not a .env, compose, Kubernetes or Helm values file by its content — pass the files Dify is \
         deployed from, or leave it out"
    )]
    Unknown(String),
}

/// A file's identity: device and inode where there are such, else its canonical path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FileId {
    #[cfg(unix)]
    Inode(u64, u64),
    #[cfg_attr(unix, allow(dead_code))]
    Path(PathBuf),
}

impl FileId {
    fn of(path: &Path, meta: &std::fs::Metadata) -> FileId {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let _ = path;
            FileId::Inode(meta.dev(), meta.ino())
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            FileId::Path(path.canonicalize().unwrap_or_else(|_| path.to_path_buf()))
        }
    }
}

/// Parts of a Helm chart that are not configuration: `templates/` are Go templates, `charts/`
/// its subcharts, `ci/` its test values, `crds/` resource definitions.
const CHART_PARTS: &[&str] = &["templates", "charts", "ci", "crds"];

/// Walk `dir` (as given; `root` is its canonical path), adding what is found.
fn walk(dir: &Path, root: &Path, seen: &mut HashSet<FileId>, out: &mut Vec<Input>) -> Result<(), CollectError> {
    let mut always = ignore::overrides::OverrideBuilder::new(dir);
    for glob in ALWAYS_READ {
        always.add(glob).expect("the always-read globs are valid");
    }
    let always = always.build().expect("the always-read globs are valid");
    let root = root.to_path_buf();
    // Folders reached through a link, by target: each is walked through a link at most once, so
    // links cost at most one more walk of what they lead to.
    let linked: std::sync::Mutex<HashSet<PathBuf>> = std::sync::Mutex::new(HashSet::new());
    let walker = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .git_ignore(true)
        .ignore(true)
        .parents(true)
        // A folder copied out of its repository keeps its .gitignore: still honoured.
        .require_git(false)
        .follow_links(true)
        .same_file_system(true)
        .overrides(always)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |e| {
            let Some(ft) = e.file_type() else { return true };
            if !ft.is_dir() || e.depth() == 0 {
                return true;
            }
            let name = e.file_name().to_str().unwrap_or_default();
            if SKIP_DIRS.contains(&name) {
                return false;
            }
            if CHART_PARTS.contains(&name) && e.path().parent().is_some_and(|p| p.join("Chart.yaml").is_file()) {
                return false;
            }
            // A link to a folder is followed only inside the tree, and once per target.
            if !e.path_is_symlink() {
                return true;
            }
            match e.path().canonicalize() {
                Ok(target) if target.starts_with(&root) => {
                    linked.lock().map(|mut seen| seen.insert(target)).unwrap_or(false)
                }
                _ => false,
            }
        })
        .build();
    for entry in walker {
        // A dangling link, a loop of links, a path too long or an unreadable entry is not configuration.
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let p = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if !seen.insert(FileId::of(p, &meta)) {
            continue;
        }
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let in_chart = || p.parent().is_some_and(|d| d.join("Chart.yaml").is_file());
        if name == "Chart.yaml" {
            out.push(Input { path: p.to_path_buf(), kind: Kind::ChartMeta, text: None });
        } else if name == "values.yaml" && in_chart() {
            let text = super::read_text(p)?;
            out.push(Input { path: p.to_path_buf(), kind: Kind::HelmValues, text: Some(text) });
        } else if let Some(input) = classify(p)? {
            // In a folder, compose reads only its default files (compose.yaml or
            // docker-compose.yaml and the override); others, like Dify's
            // docker-compose.middleware.yaml for development, count only when named.
            if input.kind == Kind::Compose && compose_rank(&input.path) > 1 {
                continue;
            }
            out.push(input);
        }
    }
    Ok(())
}

/// Files that may run `helm upgrade|install` or declare a Terraform `helm_release`.
fn is_deploy_script_name(name: &str) -> bool {
    [".sh", ".bash", ".tf", ".mk"].iter().any(|e| name.ends_with(e))
        || matches!(name, "Makefile" | "makefile" | "GNUmakefile" | "justfile" | "Justfile")
}

fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

fn is_env_name(name: &str) -> bool {
    name == ".env" || (name.ends_with(".env") && !name.ends_with(".example"))
}

/// Classify a file by its name, reading YAML to look at its content.
fn classify(path: &Path) -> Result<Option<Input>, super::ReadError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if is_env_name(name) {
        return Ok(Some(Input { path: path.to_path_buf(), kind: Kind::Env, text: None }));
    }
    // A kustomization may have neither `apiVersion` nor `kind`: its name says what it is.
    if super::kustomize::is_kustomization_name(path) {
        return Ok(Some(Input { path: path.to_path_buf(), kind: Kind::Kubernetes, text: None }));
    }
    if !is_yaml(name) && !is_deploy_script_name(name) {
        return Ok(None);
    }
    let text = super::read_text(path)?;
    let kind = if is_yaml(name) { classify_text(path, &text) } else { None };
    // A CI file (or a script) that installs the chart.
    let kind = kind.or_else(|| super::deploy_cmd::mentions_install(&text).then_some(Kind::DeployCommand));
    Ok(kind.map(|kind| Input { path: path.to_path_buf(), kind, text: Some(text) }))
}

/// Classify by content: compose has top-level `services:`; manifests have `apiVersion:` and
/// `kind:`; Helm values of the community charts have component keys such as `api:` and
/// `worker:`; anything with `KEY=VALUE` lines is a `.env`.
pub fn classify_text(path: &Path, text: &str) -> Option<Kind> {
    let top: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with([' ', '\t', '#', '-']) && l.contains(':'))
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if top.contains(&"services") {
        return Some(Kind::Compose);
    }
    if top.contains(&"apiVersion") && top.contains(&"kind") {
        return Some(Kind::Kubernetes);
    }
    // A values override may name only the api beside keys only these charts have.
    let helm_marks = [
        "worker",
        "pluginDaemon",
        "plugin_daemon",
        "global",
        "externalPostgres",
        "externalMysql",
        "beat",
        "workerBeat",
        "apiWebsocket",
    ];
    if top.contains(&"api") && helm_marks.iter().any(|k| top.contains(k)) {
        return Some(Kind::HelmValues);
    }
    if is_env_name(name) || (!is_yaml(name) && looks_like_env(text)) {
        return Some(Kind::Env);
    }
    None
}

/// `KEY=VALUE` lines.
fn looks_like_env(text: &str) -> bool {
    text.lines().any(|l| {
        l.trim_start().split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.trim().chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ' ')
        })
    })
}

/// Order compose files as compose does: the base file first, then its override.
pub fn compose_rank(path: &Path) -> u8 {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if matches!(name, "compose.yaml" | "compose.yml" | "docker-compose.yaml" | "docker-compose.yml") {
        0
    } else if name.contains(".override.") {
        1
    } else {
        2
    }
}
