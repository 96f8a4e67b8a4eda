//! Git submodules that hold a chart: `.gitmodules` names each submodule's folder. A checked-out
//! submodule is read like any vendored chart; one that is not (an empty folder, as a clone
//! without `--recurse-submodules` leaves it) is refused with the command that checks it out.

use std::path::{Path, PathBuf};

/// One `[submodule "…"]` section of a `.gitmodules` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submodule {
    /// `path =`, relative to the repository's root (where `.gitmodules` is).
    pub path: String,
    pub url: Option<String>,
    /// The `.gitmodules` file and the line of the section's `path =`.
    pub gitmodules: PathBuf,
    pub line: usize,
}

impl Submodule {
    /// The submodule's folder.
    pub fn dir(&self) -> PathBuf {
        self.gitmodules.parent().unwrap_or(Path::new(".")).join(&self.path)
    }

    /// Checked out: its folder holds something (git leaves an empty folder otherwise).
    pub fn checked_out(&self) -> bool {
        std::fs::read_dir(self.dir()).is_ok_and(|mut entries| entries.next().is_some())
    }
}

/// The sections of a `.gitmodules` file (git-config syntax: `[submodule "name"]`, `key = value`,
/// `#`/`;` comments).
pub fn parse(text: &str, file: &Path) -> Vec<Submodule> {
    // An open `[submodule]` section: its url, and its path with the line.
    type Section = (Option<String>, Option<(String, usize)>);
    let mut out: Vec<Submodule> = Vec::new();
    let mut section: Option<Section> = None;
    let finish = |section: Option<Section>, out: &mut Vec<Submodule>| {
        if let Some((url, Some((path, line)))) = section {
            out.push(Submodule { path, url, gitmodules: file.to_path_buf(), line });
        }
    };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if line.starts_with('[') {
            finish(section.take(), &mut out);
            if line.trim_start_matches('[').trim_start().starts_with("submodule") {
                section = Some((None, None));
            }
            continue;
        }
        let Some((_, ref mut path)) = section else { continue };
        let Some((key, value)) = line.split_once('=') else { continue };
        let value = value.trim().trim_matches('"').to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "path" => *path = Some((value.trim_end_matches('/').to_string(), i + 1)),
            "url" => section.as_mut().expect("in a section").0 = Some(value),
            _ => {}
        }
    }
    finish(section.take(), &mut out);
    out
}

/// The submodule that holds `target` (a chart folder as a command names it, relative to `from`
/// or a folder above it), from the `.gitmodules` of the folders above it.
pub fn holding(from: &Path, target: &str) -> Option<Submodule> {
    let target = target.trim_start_matches("./");
    for base in from.ancestors().take(5) {
        let full = super::lexical(&base.join(target));
        for root in full.ancestors().skip(1) {
            let file = root.join(".gitmodules");
            let Ok(text) = std::fs::read_to_string(&file) else { continue };
            let Ok(inside) = full.strip_prefix(root) else { continue };
            if let Some(m) = parse(&text, &file).into_iter().find(|m| inside.starts_with(&m.path)) {
                return Some(m);
            }
        }
    }
    None
}

/// The refusal for `what` ("the chart", "the resource") at `target` in a submodule that is not
/// checked out: `None` when `target` is in no submodule or the submodule is there.
pub fn not_checked_out(
    from: &Path,
    what: &str,
    target: &str,
    said_by: &crate::deployment::Source,
) -> Option<crate::read::error::Error> {
    let m = holding(from, target)?;
    if m.checked_out() {
        return None;
    }
    let url = m.url.as_deref().map(|u| format!(" ({u})")).unwrap_or_default();
    let problem = format!(
        "{what} `{target}` is in the git submodule `{}`{url}, named at {}:{}, which is not checked out \
            (an empty folder, as a clone without --recurse-submodules leaves it) — run `git submodule update --init \
            {}` and check again",
        m.path,
        crate::safety::shown_path(&m.gitmodules),
        m.line,
        m.path
    );
    Some(crate::read::error::Error::at(said_by.clone(), problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_with_their_path_and_url() {
        let text = "[submodule \"dify-helm\"]\n\tpath = vendor/dify-helm\n\turl = https://github.com/BorisPolonsky/dify-helm.git\n# c\n[core]\n\tpath = no\n[submodule \"x\"]\n  url = u\n  path = \"charts/x/\"\n";
        let m = parse(text, Path::new(".gitmodules"));
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].path, "vendor/dify-helm");
        assert_eq!(m[0].line, 2);
        assert_eq!(m[0].url.as_deref(), Some("https://github.com/BorisPolonsky/dify-helm.git"));
        assert_eq!(m[1].path, "charts/x");
        assert_eq!(m[1].line, 9);
    }
}
