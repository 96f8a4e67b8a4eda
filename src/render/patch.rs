//! The `.env` patcher: sets the plan's shared sizing keys in an existing Dify `.env` and
//! changes nothing else — comments, order, blank lines, unknown keys, secrets and line endings
//! stay byte for byte. Only a value's own bytes are replaced; keys the file lacks go into one
//! marked block at the end, so a second run finds nothing to do.

use crate::read::dotenv::{self, Entry, ValueForm};
use std::collections::BTreeMap;
use std::ops::Range;

/// First and last line of the block of keys difyplan added.
pub const BLOCK_BEGIN: &str = "# >>> difyplan: sizing keys this file did not set (difyplan render env --patch) >>>";
pub const BLOCK_END: &str = "# <<< difyplan <<<";

/// Keys that every Dify `.env` of the supported versions sets (both fixtures' `env.example`),
/// besides the sizing keys: a file with none of them is not Dify's `.env`.
const DIFY_LANDMARKS: &[&str] = &[
    "SECRET_KEY",
    "CONSOLE_API_URL",
    "DB_USERNAME",
    "DB_HOST",
    "DB_DATABASE",
    "REDIS_HOST",
    "CELERY_BROKER_URL",
    "VECTOR_STORE",
    "STORAGE_TYPE",
    "MIGRATION_ENABLED",
    "DIFY_PORT",
];

/// A file that cannot be patched: the file (and line) as data, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The file is not a Dify `.env` at all.
    #[error(
        "{file}: {why}, not a Dify .env — --patch takes Dify's docker/.env (copy docker/.env.example to \
         docker/.env first)"
    )]
    NotDifyEnv { file: String, why: NotEnv },
    /// Bytes that are not UTF-8 text.
    #[error("{0} — not a Dify .env")]
    NotText(dotenv::ParseError),
    /// Not `.env` syntax.
    #[error("{0}")]
    Syntax(dotenv::ParseError),
    /// A value `.env` quoting cannot carry (a newline together with both quote kinds, say).
    #[error("{file}{}: {key} cannot hold the value {value:?}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Unquotable { file: String, line: Option<usize>, key: String, value: String },
}

/// Why a file is not a Dify `.env`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotEnv {
    #[error("the file is empty")]
    Empty,
    #[error("binary data (a NUL byte)")]
    Binary,
    #[error("a YAML file")]
    Yaml,
    #[error("sets none of Dify's settings ({0} …)")]
    NoDifyKey(String),
}

/// One value that changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    /// 1-based line of the assignment.
    pub line: usize,
    pub old: String,
    pub new: String,
}

/// The patched text and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patched {
    pub text: String,
    pub changed: Vec<Change>,
    /// Keys added in the marked block, with their values.
    pub added: Vec<(String, String)>,
}

impl Patched {
    pub fn is_unchanged(&self) -> bool {
        self.changed.is_empty() && self.added.is_empty()
    }
}

/// Check that `bytes` read from `file` are a Dify `.env` and return them as text. Refuses
/// empty files, binary data, YAML and `.env` files that set no Dify key.
pub fn dify_env_text<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str, PatchError> {
    let not_env = |why: NotEnv| PatchError::NotDifyEnv { file: file.to_string(), why };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(not_env(NotEnv::Empty));
    }
    if bytes.contains(&0) {
        return Err(not_env(NotEnv::Binary));
    }
    let text = dotenv::decode(bytes, file).map_err(PatchError::NotText)?;
    let yaml_kind = matches!(
        crate::read::inputs::classify_text(std::path::Path::new(file), text),
        Some(
            crate::read::inputs::Kind::Compose
                | crate::read::inputs::Kind::Kubernetes
                | crate::read::inputs::Kind::HelmValues
        )
    );
    if yaml_kind || looks_like_yaml(text) {
        return Err(not_env(NotEnv::Yaml));
    }
    let entries = dotenv::parse(text, file, &BTreeMap::new()).map_err(PatchError::Syntax)?;
    let known = |k: &str| DIFY_LANDMARKS.contains(&k) || crate::dify::keys::find(k).is_some();
    if !entries.iter().any(|e| known(&e.key)) {
        return Err(not_env(NotEnv::NoDifyKey(DIFY_LANDMARKS[..4].join(", "))));
    }
    Ok(text)
}

/// YAML, not `.env`: a document marker, or a first statement written `key: value` / `- item`
/// with no `KEY=VALUE` line anywhere.
fn looks_like_yaml(text: &str) -> bool {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let Some(first) = lines.next() else { return false };
    if first == "---" || first.starts_with("%YAML") {
        return true;
    }
    let has_assignment = text.lines().any(|l| {
        let l = l.trim_start().strip_prefix("export ").unwrap_or(l.trim_start());
        l.split_once('=').is_some_and(|(k, _)| !k.is_empty() && !k.contains(':') && !k.contains(' '))
    });
    let yaml_line = first.starts_with("- ")
        || first.split_once(':').is_some_and(|(k, rest)| {
            !k.contains('=') && !k.contains(' ') && (rest.is_empty() || rest.starts_with(' '))
        });
    yaml_line && !has_assignment
}

/// Set `wanted` (key → value) in `text`. Every assignment of a wanted key whose value differs
/// gets a new value in the same quoting form; keys with no assignment are appended in the
/// marked block (inside the existing block, if a previous run made one).
pub fn patch(text: &str, file: &str, wanted: &[(String, String)]) -> Result<Patched, PatchError> {
    let entries = dotenv::parse(text, file, &BTreeMap::new()).map_err(PatchError::Syntax)?;
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let mut changed = Vec::new();
    let mut added = Vec::new();
    for (key, value) in wanted {
        let found: Vec<&Entry> = entries.iter().filter(|e| &e.key == key).collect();
        if found.is_empty() {
            added.push((key.clone(), value.clone()));
            continue;
        }
        for e in found {
            if &e.value == value {
                continue;
            }
            let new = rewrite(e, value).ok_or_else(|| PatchError::Unquotable {
                file: file.to_string(),
                line: Some(e.line),
                key: key.clone(),
                value: value.clone(),
            })?;
            // An empty value at the end of a CRLF line is reported after the `\r` (the reader
            // counts `\r` as a blank); the new value belongs before the line ending.
            let mut span = e.raw_value_span.clone();
            while span.is_empty() && span.start > 0 && text.as_bytes()[span.start - 1] == b'\r' {
                span = span.start - 1..span.start - 1;
            }
            changed.push(Change {
                key: key.clone(),
                line: e.line,
                old: text[span.clone()].to_string(),
                new: new.clone(),
            });
            edits.push((span, new));
        }
    }
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    let mut out = text.to_string();
    for (span, new) in edits {
        out.replace_range(span, &new);
    }
    if !added.is_empty() {
        out = add_block(out, file, &added)?;
    }
    changed.sort_by_key(|c| c.line);
    Ok(Patched { text: out, changed, added })
}

/// The replacement for an assignment's value bytes, in the form it was written.
fn rewrite(e: &Entry, value: &str) -> Option<String> {
    let bare = dotenv::quote_value(value)?;
    Some(match e.form {
        ValueForm::Inherited => format!("={bare}"),
        ValueForm::Unquoted => bare,
        ValueForm::SingleQuoted if !value.contains(['\'', '\n']) => format!("'{value}'"),
        ValueForm::SingleQuoted => bare,
        ValueForm::DoubleQuoted if bare.starts_with('"') => bare,
        ValueForm::DoubleQuoted => format!("\"{bare}\""),
    })
}

fn add_block(mut text: String, file: &str, added: &[(String, String)]) -> Result<String, PatchError> {
    let nl = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut lines = String::new();
    for (k, v) in added {
        let v = dotenv::quote_value(v).ok_or_else(|| PatchError::Unquotable {
            file: file.to_string(),
            line: None,
            key: k.clone(),
            value: v.clone(),
        })?;
        lines.push_str(&format!("{k}={v}{nl}"));
    }
    // A block from an earlier run takes the new keys just before its end marker.
    if let Some(end) = find_line(&text, BLOCK_END)
        && find_line(&text, BLOCK_BEGIN).is_some_and(|b| b < end)
    {
        text.insert_str(end, &lines);
        return Ok(text);
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push_str(nl);
    }
    text.push_str(nl);
    text.push_str(BLOCK_BEGIN);
    text.push_str(nl);
    text.push_str(&lines);
    text.push_str(BLOCK_END);
    text.push_str(nl);
    Ok(text)
}

/// Byte offset of the line that is exactly `line` (a CR before the newline allowed).
fn find_line(text: &str, line: &str) -> Option<usize> {
    let mut at = 0;
    for l in text.split_inclusive('\n') {
        if l.trim_end_matches(['\n', '\r']) == line {
            return Some(at);
        }
        at += l.len();
    }
    None
}

/// A unified diff of `old` → `new` with `name` in the headers; empty when they are equal.
pub fn unified_diff(old: &str, new: &str, name: &str) -> String {
    if old == new {
        return String::new();
    }
    // Context lines would print the file's secrets: both sides are shown redacted. The patch
    // never changes a secret's line, so the redacted diff shows the same change.
    let (old, new) = (redacted(old), redacted(new));
    let diff = similar::TextDiff::from_lines(&old, &new);
    let mut out = diff.unified_diff().context_radius(3).header(&format!("a/{name}"), &format!("b/{name}")).to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// `text` with the value of every secret-named key replaced by `***` and URL passwords masked
/// (each value in place, so lines keep their numbers); a file that does not parse is shown
/// with every value after `=` replaced, since which ones are secrets is unknown.
fn redacted(text: &str) -> String {
    use crate::safety::{REDACTED, is_secret_key, mask_url_passwords};
    let Ok(entries) = dotenv::parse(text, "", &BTreeMap::new()) else {
        return text
            .split_inclusive('\n')
            .map(|l| match l.split_once('=') {
                Some((k, v)) => format!("{k}={REDACTED}{}", if v.ends_with('\n') { "\n" } else { "" }),
                None => l.to_string(),
            })
            .collect();
    };
    let mut out = text.to_string();
    for e in entries.iter().rev() {
        let raw = &text[e.raw_value_span.clone()];
        if is_secret_key(&e.key) && !raw.is_empty() {
            out.replace_range(e.raw_value_span.clone(), REDACTED);
        } else if let std::borrow::Cow::Owned(masked) = mask_url_passwords(raw) {
            out.replace_range(e.raw_value_span.clone(), &masked);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn replaces_only_the_value_and_keeps_its_form() {
        let text = "# c\r\nA=1 # keep\r\nB='x'\r\nC=\"y\"\r\n\r\nexport D=4\r\nSECRET_KEY=s3cr3t\r\n";
        let p = patch(text, "t.env", &w(&[("A", "2"), ("B", "z"), ("C", "a b"), ("D", "5")])).unwrap();
        assert_eq!(p.text, "# c\r\nA=2 # keep\r\nB='z'\r\nC=\"a b\"\r\n\r\nexport D=5\r\nSECRET_KEY=s3cr3t\r\n");
        assert_eq!(p.changed.len(), 4);
        assert!(p.added.is_empty());
    }

    #[test]
    fn missing_keys_go_into_one_block_and_a_second_run_changes_nothing() {
        let text = "SECRET_KEY=x\nA=1";
        let wanted = w(&[("A", "2"), ("NEW", "3")]);
        let p = patch(text, "t.env", &wanted).unwrap();
        assert_eq!(p.text, format!("SECRET_KEY=x\nA=2\n\n{BLOCK_BEGIN}\nNEW=3\n{BLOCK_END}\n"));
        let again = patch(&p.text, "t.env", &wanted).unwrap();
        assert!(again.is_unchanged());
        assert_eq!(again.text, p.text);
        // A key needed later joins the same block.
        let more = patch(&p.text, "t.env", &w(&[("A", "2"), ("NEW", "3"), ("LATER", "4")])).unwrap();
        assert_eq!(more.text, format!("SECRET_KEY=x\nA=2\n\n{BLOCK_BEGIN}\nNEW=3\nLATER=4\n{BLOCK_END}\n"));
    }

    #[test]
    fn empty_values_at_crlf_line_ends() {
        let text = "SECRET_KEY=x\r\nCELERY_WORKER_AMOUNT=\r\nB=1\r\n";
        let p = patch(text, "t.env", &w(&[("CELERY_WORKER_AMOUNT", "4")])).unwrap();
        assert_eq!(p.text, "SECRET_KEY=x\r\nCELERY_WORKER_AMOUNT=4\r\nB=1\r\n");
    }

    #[test]
    fn equal_values_keep_their_spelling() {
        let text = "SECRET_KEY=x\nA=${UNSET:-7}\nB=\"7\"\n";
        let p = patch(text, "t.env", &w(&[("A", "7"), ("B", "7")])).unwrap();
        assert!(p.is_unchanged());
        assert_eq!(p.text, text);
    }

    #[test]
    fn refuses_what_is_not_a_dify_env() {
        for (bytes, want) in [
            (&b""[..], "empty"),
            (&b"  \n\n"[..], "empty"),
            (&b"A=1\0\n"[..], "binary"),
            (&b"\xff\xfe=1\n"[..], "UTF-8"),
            (&b"services:\n  api:\n    image: x\n"[..], "YAML"),
            (&b"---\na: 1\n"[..], "YAML"),
            (&b"FOO=1\nBAR=2\n"[..], "none of Dify's settings"),
        ] {
            let err = dify_env_text(bytes, "x.env").unwrap_err().to_string();
            assert!(err.starts_with("x.env") && err.contains(want), "{want}: {err}");
        }
        assert!(dify_env_text(b"SECRET_KEY=1\n", "x.env").is_ok());
    }

    #[test]
    fn landmarks_are_in_both_fixtures() {
        for v in ["1.9.1", "1.16.1"] {
            let path = format!("{}/../shared/fixtures/dify/{v}/env.example", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap();
            let keys: Vec<String> =
                dotenv::parse(&text, &path, &BTreeMap::new()).unwrap().into_iter().map(|e| e.key).collect();
            for k in DIFY_LANDMARKS {
                assert!(keys.iter().any(|x| x == k), "{k} missing from {path}");
            }
        }
    }

    #[test]
    fn diff_is_unified() {
        let d = unified_diff("a\nb\n", "a\nc\n", ".env");
        assert!(d.starts_with("--- a/.env\n+++ b/.env\n@@"), "{d}");
        assert!(d.contains("-b\n+c\n"));
        assert_eq!(unified_diff("a\n", "a\n", ".env"), "");
    }
}
