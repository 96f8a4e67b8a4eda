//! What `difyplan explain CODE` prints: one code's full description, its severity and how to
//! suppress it, from the one table of codes (`Code`). Also the nearest names for a typo.

use super::Code;
use std::fmt::Write;

/// Names within a small edit distance of `wrong`, nearest first (at most three). Used for
/// finding codes, allow entries and command-line flags.
pub fn nearest<'a>(wrong: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let wrong = wrong.to_ascii_lowercase();
    let mut scored: Vec<(usize, &str)> = names
        .into_iter()
        .map(|n| (strsim::osa_distance(&wrong, &n.to_ascii_lowercase()), n))
        .filter(|(d, n)| *d <= (n.chars().count() / 3).max(2) || n.contains(wrong.as_str()) && wrong.len() >= 4)
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

/// `CODE` → the code, or an error naming the nearest codes.
pub fn lookup(name: &str) -> Result<Code, UnknownCode> {
    Code::parse(name.trim()).ok_or_else(|| UnknownCode {
        name: name.to_string(),
        near: nearest(name.trim(), Code::ALL.iter().map(|c| c.as_str())),
    })
}

/// A finding code difyplan does not have, with the nearest ones by edit distance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown finding code `{}` — {}", crate::safety::escape(name), hint(near))]
pub struct UnknownCode {
    pub name: String,
    pub near: Vec<&'static str>,
}

fn hint(near: &[&str]) -> String {
    if near.is_empty() {
        "`difyplan explain --list` lists every code".to_string()
    } else {
        format!("did you mean {}? (`difyplan explain --list` lists every code)", quoted(near))
    }
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" or ")
}

/// The whole explanation of one code: paragraphs of one line each (see [`wrap`]) and examples
/// indented by four spaces.
pub fn explain(code: Code) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} ({} by default)", code.as_str(), code.severity());
    let _ = writeln!(s);
    let _ = writeln!(s, "{}.", capitalised(code.description()));
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", code.full_description());
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "To accept it, with the reason the team accepts it, either in difyplan.toml (found from the checked \
         path upward to the repository root, or given with --config):"
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "    [[allow]]");
    let _ = writeln!(s, "    code = \"{}\"", code.as_str());
    let _ = writeln!(s, "    reason = \"why the team accepts it\"");
    let _ = writeln!(s, "    component = \"api\"        # optional: only this component");
    let _ = writeln!(s, "    path = \"docker/.env\"     # optional: only findings in a file ending with this");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "or in the checked file (.env, compose, manifest or values), on the line above the finding's line or \
         at its end:"
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "    # difyplan: allow {} -- why the team accepts it", code.as_str());
    s
}

/// `text` of [`explain`] with its paragraphs wrapped at `width`; examples are left as written.
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    for l in text.lines() {
        if l.starts_with("    ") || l.is_empty() {
            out.push_str(l);
        } else {
            out.push_str(&textwrap::fill(
                l,
                textwrap::Options::new(width).word_splitter(textwrap::WordSplitter::NoHyphenation),
            ));
        }
        out.push('\n');
    }
    out
}

/// Every code with its severity and one line, for `explain --list`.
pub fn list() -> String {
    let w = Code::ALL.iter().map(|c| c.as_str().len()).max().unwrap_or(0);
    let mut s = String::new();
    for c in Code::ALL {
        let _ = writeln!(s, "{:<w$}  {:<7}  {}", c.as_str(), c.severity().to_string(), c.description());
    }
    s
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_code() {
        assert_eq!(nearest("pool-deadlok-risk", Code::ALL.iter().map(|c| c.as_str()))[0], "pool-deadlock-risk");
        assert_eq!(nearest("qsp", ["qps", "profile", "quiet"])[0], "qps");
        assert!(nearest("zzzzzzzz", ["qps", "profile"]).is_empty());
    }

    #[test]
    fn every_code_explains_itself_and_how_to_suppress_it() {
        for c in Code::ALL {
            let text = explain(*c);
            assert!(text.contains(c.full_description()), "{c}");
            assert!(text.contains(&format!("difyplan: allow {c} -- ")), "{c}");
            assert!(!c.full_description().contains("docs/"), "{c}: cites a repository file");
        }
    }
}
