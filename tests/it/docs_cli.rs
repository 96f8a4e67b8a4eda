//! `difyplan docs`: every source an output cites (`docs/model.md §N`) can be printed by an
//! installed binary, section by section.

use crate::support::difyplan;
use std::collections::BTreeSet;
use std::path::Path;

/// Every `docs/model.md §N` cited anywhere in the code or the templates.
fn cited_sections() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stack = vec![root.join("src"), root.join("templates")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&p) else { continue };
            for part in text.split("docs/model.md §").skip(1) {
                let n: String = part.chars().take_while(char::is_ascii_digit).collect();
                if !n.is_empty() {
                    out.insert(n);
                }
            }
        }
    }
    out
}

#[test]
fn every_cited_section_prints() {
    let cited = cited_sections();
    assert!(cited.len() >= 8, "{cited:?}");
    for n in &cited {
        let r = difyplan(&["docs", "model", n]);
        assert_eq!(r.code, 0, "docs/model.md §{n} is cited but does not print: {}", r.stderr);
        assert!(r.stdout.starts_with(&format!("## §{n} ")), "§{n}: {:.60}", r.stdout);
    }
    let r = difyplan(&["docs"]);
    assert!(r.stdout.contains("model") && r.stdout.contains("docs/pooler.md"), "{}", r.stdout);
    let r = difyplan(&["docs", "nope"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("model, pooler"), "{}", r.stderr);
    let r = difyplan(&["docs", "model", "99"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no section 99"), "{}", r.stderr);
}
