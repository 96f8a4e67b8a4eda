//! `difyplan docs [DOC [SECTION]]`: the project's own documentation, embedded in the binary, so
//! the sources every output cites (`docs/model.md §8`) are there for a user of an installed
//! binary who has no checkout beside it.

use super::Io;
use crate::cli::DocsArgs;
use crate::exit::ExitStatus;
use anyhow::{Result, bail};

/// The documents, by the name `docs` takes and the file outputs cite.
const DOCS: &[(&str, &str, &str)] = &[
    ("model", "docs/model.md", include_str!("../../docs/model.md")),
    ("pooler", "docs/pooler.md", include_str!("../../docs/pooler.md")),
    ("simulation", "docs/simulation.md", include_str!("../../docs/simulation.md")),
    ("alerts", "docs/alerts.md", include_str!("../../docs/alerts.md")),
];

pub fn run(args: &DocsArgs, io: &mut Io) -> Result<ExitStatus> {
    let Some(name) = &args.doc else {
        for (name, file, text) in DOCS {
            let title = text.lines().next().unwrap_or_default().trim_start_matches('#').trim();
            writeln!(io.out, "{name:<11} {file:<19} {title}")?;
        }
        return Ok(ExitStatus::Success);
    };
    let wanted = name.trim_start_matches("docs/").trim_end_matches(".md");
    let Some((_, file, text)) = DOCS.iter().find(|(n, _, _)| *n == wanted) else {
        let names: Vec<&str> = DOCS.iter().map(|(n, _, _)| *n).collect();
        bail!("no document `{name}` — difyplan docs has {}", names.join(", "));
    };
    match &args.section {
        None => write!(io.out, "{text}")?,
        Some(s) => match section(text, s) {
            Some(part) => write!(io.out, "{part}")?,
            None => bail!("{file} has no section {s} — `difyplan docs {wanted}` prints it whole, with its headings"),
        },
    }
    Ok(ExitStatus::Success)
}

/// The section numbered `number` (`8`, `§8`): from its `## §8` heading to the next `## `.
fn section<'a>(text: &'a str, number: &str) -> Option<&'a str> {
    let n = number.trim().trim_start_matches('§');
    if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let heading = format!("## §{n} ");
    let start = text.find(&heading).filter(|i| *i == 0 || text.as_bytes()[i - 1] == b'\n')?;
    let end = text[start + 3..].find("\n## ").map_or(text.len(), |e| start + 3 + e + 1);
    Some(&text[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_by_number() {
        let model = DOCS[0].2;
        let eight = section(model, "8").unwrap();
        assert!(eight.starts_with("## §8 "), "{eight:.40}");
        assert!(!eight[3..].contains("\n## "), "one section only");
        assert_eq!(section(model, "§8"), Some(eight));
        assert!(section(model, "99").is_none() && section(model, "x").is_none());
        // Section 1 is not the heading of section 10 or 11.
        assert!(section(model, "1").unwrap().starts_with("## §1 The problem"));
    }
}
