//! Suppression: `[[allow]]` entries in `difyplan.toml`, and inline comments in the checked files
//! (`# difyplan: allow CODE -- reason` on the line above a finding's line or at its end). Each
//! needs a reason; one that matches nothing is itself reported, so stale exceptions do not pile
//! up (as in cargo-deny). Parsing and matching only: the command reads the files.

use super::anchor::Location;
use super::{Code, Finding};
use crate::deployment::Source;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The config file's name.
pub const FILE_NAME: &str = "difyplan.toml";

/// The nearest `difyplan.toml` from `start` (a folder, or a file's folder) upward, stopping at
/// the repository root (the first folder holding `.git`, a folder or a worktree's file) or the
/// filesystem root. Relative to `start` when `start` is relative, so messages stay short.
pub fn discover(start: &Path) -> Option<PathBuf> {
    let start = if start.is_file() || start.as_os_str() == "-" {
        start.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
    } else {
        start
    };
    let abs = start.canonicalize().ok()?;
    let mut rel = start.to_path_buf();
    for dir in abs.ancestors() {
        if dir.join(FILE_NAME).is_file() {
            return Some(if start.is_absolute() { dir.join(FILE_NAME) } else { rel.join(FILE_NAME) })
                .map(|p| PathBuf::from(crate::safety::escape::clean_path(&p.to_string_lossy())));
        }
        if dir.join(".git").exists() {
            return None;
        }
        // One folder up: drop the last named folder, or add `..` once there is none left.
        if matches!(rel.components().next_back(), Some(std::path::Component::Normal(_))) {
            rel.pop();
        } else {
            rel.push("..");
        }
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
    /// Deployment-wide findings (the budget, the app role) have none.
    pub component: Option<String>,
    /// Only findings located in this file: a path relative to the folder of `difyplan.toml`,
    /// or the end of the file's path (`docker/.env`).
    pub path: Option<String>,
    /// Set by the loader: where the entry is (`difyplan.toml` and the line of its `[[allow]]`),
    /// for the unused-allow finding and the report of what it allowed.
    #[serde(skip)]
    pub at: Option<Location>,
    /// Set by the loader: the folder of the config file, against which `path` resolves.
    #[serde(skip)]
    pub base: Option<PathBuf>,
    /// An inline comment: it applies to this line of `at`'s file only.
    #[serde(skip)]
    pub inline_line: Option<usize>,
}

impl Config {
    /// Parse `difyplan.toml`; errors name the file, the line and what to do.
    pub fn parse(text: &str, file: &str) -> Result<Config, AllowError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            AllowError { file: file.to_string(), line, problem: Problem::Toml(e.message().trim().to_string()) }
        })?;
        // Entry lines: the n-th `[[allow]]` header.
        let headers: Vec<usize> =
            text.lines().enumerate().filter(|(_, l)| l.trim() == "[[allow]]").map(|(i, _)| i + 1).collect();
        let base = Path::new(file).parent().map(Path::to_path_buf);
        for (i, allow) in config.allow.iter_mut().enumerate() {
            let line = headers.get(i).copied().unwrap_or(1);
            allow.at = Some(Location::new(file, line));
            allow.base = base.clone();
            let error = |problem| AllowError { file: file.to_string(), line, problem };
            known_code(&allow.code).map_err(|e| error(Problem::UnknownCode(e)))?;
            if allow.reason.trim().is_empty() {
                return Err(error(Problem::EmptyReason(allow.code.clone())));
            }
        }
        Ok(config)
    }
}

fn known_code(name: &str) -> Result<Code, super::explain::UnknownCode> {
    super::explain::lookup(name)
}

/// A bad allow entry (in `difyplan.toml` or an inline comment): where, and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: {problem}")]
pub struct AllowError {
    pub file: String,
    pub line: usize,
    pub problem: Problem,
}

/// What is wrong with an allow entry, and what to write instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("{0} — an allow entry is `[[allow]]` with `code` and `reason` (optional `component`, `path`)")]
    Toml(String),
    #[error(transparent)]
    UnknownCode(super::explain::UnknownCode),
    #[error("the allow entry for `{0}` has an empty reason — say why the team accepts it")]
    EmptyReason(String),
    #[error("an inline allow needs a reason — write `# {MARKER} CODE -- why the team accepts it`")]
    InlineWithoutReason,
    #[error("an inline allow names no finding code — write `# {MARKER} CODE -- why`")]
    InlineWithoutCode,
}

/// The marker of an inline suppression, after the comment's `#`.
const MARKER: &str = "difyplan: allow";

/// The inline suppressions of one checked file: `# difyplan: allow CODE[, CODE…] -- reason`,
/// alone on the line above the finding's line or at the end of that line. `shown` is the path
/// as the findings name it. Errors (an unknown code, no reason) are located.
pub fn inline(text: &str, shown: &str) -> Result<Vec<Allow>, AllowError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(hash) = comment_start(line) else { continue };
        let comment = line[hash + 1..].trim();
        let Some(rest) = comment.strip_prefix(MARKER) else { continue };
        let n = i + 1;
        let (codes, reason) = match rest.split_once("--") {
            Some((c, r)) if !r.trim().is_empty() => (c, r.trim()),
            _ => {
                return Err(AllowError { file: shown.to_string(), line: n, problem: Problem::InlineWithoutReason });
            }
        };
        let alone = line[..hash].trim().is_empty();
        let codes: Vec<&str> = codes.split([',', ' ']).map(str::trim).filter(|c| !c.is_empty()).collect();
        if codes.is_empty() {
            return Err(AllowError { file: shown.to_string(), line: n, problem: Problem::InlineWithoutCode });
        }
        for code in codes {
            known_code(code).map_err(|e| AllowError {
                file: shown.to_string(),
                line: n,
                problem: Problem::UnknownCode(e),
            })?;
            out.push(Allow {
                code: code.to_string(),
                reason: reason.to_string(),
                component: None,
                path: None,
                at: Some(Location::new(shown, n)),
                base: None,
                // Alone on its line: the next line that is not itself a comment.
                inline_line: Some(if alone { next_content_line(text, i) } else { n }),
            });
        }
    }
    Ok(out)
}

/// Where a `#` comment starts: at the line's start or after whitespace (so `a#b` in a value is
/// not a comment), outside quotes.
fn comment_start(line: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') if prev.is_whitespace() => return Some(i),
            _ => {}
        }
        prev = c;
    }
    None
}

/// The 1-based number of the first line after index `i` that is neither blank nor a comment.
fn next_content_line(text: &str, i: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(i + 1)
        .find(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map_or(i + 2, |(j, _)| j + 1)
}

/// The same file, whichever way it was named (relative, absolute, through `..`).
fn same_file(a: &str, b: &Path) -> bool {
    match (Path::new(a).canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => Path::new(a) == b,
    }
}

/// `path` ends with `suffix` at a path-component boundary.
fn ends_with_path(path: &str, suffix: &str) -> bool {
    let suffix = crate::safety::escape::clean_path(suffix);
    Path::new(path).ends_with(Path::new(&suffix))
}

impl Allow {
    pub fn matches(&self, f: &Finding) -> bool {
        if f.code.as_str() != self.code {
            return false;
        }
        let place = f.place();
        if let Some(line) = self.inline_line {
            let Some(at) = &self.at else { return false };
            let on = |p: &str, l: usize| l == line && (p == at.path || same_file(p, Path::new(&at.path)));
            let by_source = f.source.as_ref().and_then(Source::location).is_some_and(|(p, l)| on(p, l));
            return by_source || place.is_some_and(|(p, l)| on(p, l));
        }
        let component_ok = self.component.as_deref().is_none_or(|c| f.component.is_some_and(|fc| fc.service() == c));
        let path_ok = self.path.as_deref().is_none_or(|p| {
            place.is_some_and(|(fp, _)| {
                ends_with_path(fp, p)
                    || Path::new(p).is_absolute() && same_file(fp, Path::new(p))
                    || self.base.as_ref().is_some_and(|b| same_file(fp, &b.join(p)))
            })
        });
        component_ok && path_ok
    }

    /// Where the entry is, as `file:line`.
    pub fn origin(&self) -> String {
        self.at.as_ref().map_or_else(String::new, |l| format!("{}:{}", l.path, l.line))
    }
}

/// A finding kept out of the results, with the reason that allowed it and where it was allowed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Suppressed {
    pub finding: Finding,
    pub reason: String,
    /// The allow entry or inline comment, as `file:line`.
    pub allowed_at: String,
    /// `inline` (a comment in the checked file) or `config` (difyplan.toml).
    pub kind: String,
}

/// Split findings into kept and suppressed; report allow entries that matched nothing.
pub fn apply(findings: Vec<Finding>, allows: &[Allow]) -> (Vec<Finding>, Vec<Suppressed>) {
    let mut used = vec![false; allows.len()];
    let mut kept = Vec::new();
    let mut suppressed = Vec::new();
    for f in findings {
        // Inline comments first: they are the narrower exception.
        let hit = allows
            .iter()
            .enumerate()
            .filter(|(_, a)| a.inline_line.is_some())
            .chain(allows.iter().enumerate().filter(|(_, a)| a.inline_line.is_none()))
            .find(|(_, a)| a.matches(&f))
            .map(|(i, _)| i);
        match hit {
            Some(i) => {
                used[i] = true;
                let a = &allows[i];
                suppressed.push(Suppressed {
                    reason: a.reason.clone(),
                    allowed_at: a.origin(),
                    kind: if a.inline_line.is_some() { "inline" } else { "config" }.to_string(),
                    finding: f,
                });
            }
            None => kept.push(f),
        }
    }
    for (allow, used) in allows.iter().zip(used) {
        if !used {
            let what = if allow.inline_line.is_some() { "inline allow" } else { "allow entry" };
            let mut f = Finding::new(
                Code::UnusedAllow,
                format!("the {what} for `{}` matches no finding", allow.code),
                "remove it, or narrow it to what it was meant for",
            );
            if let Some(at) = &allow.at {
                f = f.at(&Source::file(at.path.clone(), at.line));
            }
            kept.push(f);
        }
    }
    (kept, suppressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_comments_above_or_at_the_end() {
        let text = "A=1\n# difyplan: allow superuser-app-role -- managed database\nDB_USERNAME=postgres\n\
                    SQLALCHEMY_POOL_SIZE=90 # difyplan: allow pool-chat-stall, pool-deadlock-risk -- workflow only\n\
                    B=\"x # difyplan: allow nope\"\n";
        let allows = inline(text, "docker/.env").unwrap();
        let got: Vec<(&str, Option<usize>, usize)> =
            allows.iter().map(|a| (a.code.as_str(), a.inline_line, a.at.as_ref().unwrap().line)).collect();
        assert_eq!(
            got,
            [("superuser-app-role", Some(3), 2), ("pool-chat-stall", Some(4), 4), ("pool-deadlock-risk", Some(4), 4)]
        );
        assert_eq!(allows[0].reason, "managed database");
    }

    #[test]
    fn inline_comments_need_a_reason_and_a_known_code() {
        let e = inline("# difyplan: allow superuser-app-role\n", "a.env").unwrap_err();
        assert_eq!((e.file.as_str(), e.line, &e.problem), ("a.env", 1, &Problem::InlineWithoutReason));
        let e = inline("x: 1 # difyplan: allow superuser-app-rol -- x\n", "v.yaml").unwrap_err();
        let Problem::UnknownCode(unknown) = &e.problem else { panic!("{e}") };
        assert!(unknown.near.contains(&"superuser-app-role"), "{e}");
        assert!(e.to_string().starts_with("v.yaml:1: unknown finding code"), "{e}");
    }

    #[test]
    fn paths_match_at_component_boundaries() {
        assert!(ends_with_path("deploy/docker/.env", "docker/.env"));
        assert!(ends_with_path("docker/.env", "./docker/.env"));
        assert!(!ends_with_path("mydocker/.env", "docker/.env"));
    }
}
