//! Suppression: `[[allow]]` entries in `difyplan.toml`. Each needs a `reason`; an entry that
//! matches nothing is itself reported, so stale exceptions do not pile up (as in cargo-deny).

use super::{Code, Finding};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The config file's name.
pub const FILE_NAME: &str = "difyplan.toml";

/// The nearest `difyplan.toml` from `start` upward, stopping at the repository root (the first
/// folder holding `.git`, a folder or a worktree's file) or the filesystem root. The path is
/// relative to `start` (`difyplan.toml`, `../difyplan.toml`, …) so messages stay short.
pub fn discover(start: &Path) -> Option<PathBuf> {
    let abs = start.canonicalize().ok()?;
    let mut rel = PathBuf::new();
    for dir in abs.ancestors() {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Some(rel.join(FILE_NAME));
        }
        if dir.join(".git").exists() {
            return None;
        }
        rel.push("..");
    }
    None
}

/// `difyplan.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub allow: Vec<Allow>,
}

/// One exception: a code, optionally narrowed to a component or a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allow {
    pub code: String,
    /// Why the team accepts it. Required: an exception without a reason is not reviewable.
    pub reason: String,
    /// Only findings on this component (compose service name, e.g. `worker_beat`).
    pub component: Option<String>,
    /// Only findings located in a file whose path ends with this.
    pub path: Option<String>,
    /// Set by the loader: the line of the entry, for the unused-allow finding.
    #[serde(skip)]
    pub line: usize,
}

impl Config {
    /// Parse `difyplan.toml`; errors name the file, the line and what to do.
    pub fn parse(text: &str, file: &str) -> Result<Config, String> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            format!("{file}:{line}: {} — an allow entry is `[[allow]]` with `code` and `reason` (optional `component`, `path`)", e.message().trim())
        })?;
        // Entry lines: the n-th `[[allow]]` header.
        let headers: Vec<usize> =
            text.lines().enumerate().filter(|(_, l)| l.trim() == "[[allow]]").map(|(i, _)| i + 1).collect();
        for (i, allow) in config.allow.iter_mut().enumerate() {
            allow.line = headers.get(i).copied().unwrap_or(1);
            if Code::parse(&allow.code).is_none() {
                let known: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
                return Err(format!(
                    "{file}:{}: unknown finding code `{}` — known codes: {}",
                    allow.line,
                    allow.code,
                    known.join(", ")
                ));
            }
            if allow.reason.trim().is_empty() {
                return Err(format!(
                    "{file}:{}: the allow entry for `{}` has an empty reason — say why the team accepts it",
                    allow.line, allow.code
                ));
            }
        }
        Ok(config)
    }
}

impl Allow {
    pub fn matches(&self, f: &Finding) -> bool {
        f.code.as_str() == self.code
            && self.component.as_deref().is_none_or(|c| f.component.is_some_and(|fc| fc.service() == c))
            && self
                .path
                .as_deref()
                .is_none_or(|p| f.source.as_ref().and_then(|s| s.location()).is_some_and(|(path, _)| path.ends_with(p)))
    }
}

/// A finding kept out of the results, with the reason that allowed it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Suppressed {
    pub finding: Finding,
    pub reason: String,
}

/// Split findings into kept and suppressed; report allow entries that matched nothing.
pub fn apply(findings: Vec<Finding>, config: &Config, config_file: &str) -> (Vec<Finding>, Vec<Suppressed>) {
    let mut used = vec![false; config.allow.len()];
    let mut kept = Vec::new();
    let mut suppressed = Vec::new();
    for f in findings {
        match config.allow.iter().position(|a| a.matches(&f)) {
            Some(i) => {
                used[i] = true;
                suppressed.push(Suppressed { reason: config.allow[i].reason.clone(), finding: f });
            }
            None => kept.push(f),
        }
    }
    for (allow, used) in config.allow.iter().zip(used) {
        if !used {
            kept.push(
                Finding::new(
                    Code::UnusedAllow,
                    format!("the allow entry for `{}` matches no finding", allow.code),
                    "remove the entry, or narrow it to what it was meant for",
                )
                .at(&crate::deployment::Source::file(config_file, allow.line)),
            );
        }
    }
    (kept, suppressed)
}
