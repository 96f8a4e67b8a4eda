//! The one module that reads and writes YAML, so the YAML crate can be swapped in one place:
//! multi-document parsing with merge keys resolved, `file:line:column` for any node, scalar helpers.
//!
//! Values come from `serde_yaml` (the maintained `yaml_serde`, libyaml underneath), which bounds
//! alias expansion ("billion laughs"). `serde_yaml::Value` carries no positions, so a first pass
//! with the span-aware `saphyr-parser` records where every node and key was written; [`Document`]
//! answers "which line?" by walking that record with the same path, following aliases and merge
//! keys the way the value was merged. That pass also rejects nesting deeper than 128 levels before
//! libyaml sees it (libyaml's time grows with the square of flow nesting: 200 KB of `{a: ` takes
//! seconds). libyaml has the last word on syntax: when saphyr rejects a text libyaml accepts (libyaml
//! is more lenient, e.g. a comment glued to a quoted scalar), the text parses and positions are
//! unknown (`None`); the values never depend on the position pass.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser};
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use serde_yaml::{Mapping, Value};

/// Largest YAML input difyplan reads. Real compose files, manifests and Helm values are well under
/// 1 MiB (Dify 1.16.1's compose file is about 60 KB); the bound keeps a mistaken argument (a log,
/// an image, a dump) from costing seconds and memory. Callers check it with [`check_size`] before
/// reading a whole file; [`parse_bytes`] checks it too.
pub const MAX_INPUT_BYTES: usize = super::MAX_INPUT_BYTES as usize;

/// Deepest nesting of sequences and mappings accepted: serde_yaml's own recursion limit, checked
/// earlier and in linear time by the position pass.
const MAX_DEPTH: usize = 128;

/// Longest chain of merge keys followed when locating a key (`<<: *a` where `a` itself has
/// `<<: *b`, …). Real files use one level; the bound only keeps a self-referencing anchor from
/// looping.
const MAX_MERGE_DEPTH: usize = 64;

/// Where something was written: 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The first character of a file, used when nothing more precise is known.
    pub const START: Position = Position { line: 1, column: 1 };
}

/// One step of a path into a document: a mapping key or a sequence index.
///
/// Keys are compared as compose reads them ([`scalar_string`]), so `Key("8080")` finds both
/// `8080:` and `"8080":`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

impl PathSeg {
    /// A path made only of mapping keys: `PathSeg::keys(&["services", "api", "environment"])`.
    pub fn keys(keys: &[&str]) -> Vec<PathSeg> {
        keys.iter().map(|k| PathSeg::Key((*k).to_string())).collect()
    }
}

impl From<&str> for PathSeg {
    fn from(key: &str) -> Self {
        PathSeg::Key(key.to_string())
    }
}

impl From<String> for PathSeg {
    fn from(key: String) -> Self {
        PathSeg::Key(key)
    }
}

impl From<usize> for PathSeg {
    fn from(index: usize) -> Self {
        PathSeg::Index(index)
    }
}

/// Renders a path for messages the way users write it: `services.api.env_file[0]`.
pub fn path_string(path: &[PathSeg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSeg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// A located problem in a YAML file, shown as `file:line:column: message`.
///
/// `line` and `column` are 1-based; both are 0 only when the problem concerns the whole file (it is
/// too large), and then it is shown as `file: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// What is wrong, then ` — ` and what to do about it.
    pub message: String,
}

impl YamlError {
    fn at(file: &str, at: Position, message: impl Into<String>) -> Self {
        YamlError { file: file.to_string(), line: at.line, column: at.column, message: message.into() }
    }
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
        }
    }
}

impl std::error::Error for YamlError {}

/// One YAML document of a file, with merge keys resolved and the positions of what was written.
#[derive(Debug, Clone)]
pub struct Document {
    /// The document's value after merge keys (`<<: *anchor`, `<<: [*a, *b]`) were applied at
    /// every depth. Aliases are expanded.
    pub value: Value,
    /// The file name given to [`parse_documents`], for messages.
    pub file: String,
    /// 0-based place of this document in the stream, counting the empty documents that were
    /// skipped, so `index` 2 is the third `---` section.
    pub index: usize,
    spans: Option<SpanTree>,
    /// For a document built from several files (a kustomize build): the file and line each
    /// part was written at, by path in the built value.
    origins: Option<std::sync::Arc<Origins>>,
}

/// Where each part of a built document was written: path → (file, line).
pub type Origins = HashMap<Vec<PathSeg>, (String, usize)>;

impl Document {
    /// The value at `path`, if there is one (merge keys already applied).
    pub fn get(&self, path: &[PathSeg]) -> Option<&Value> {
        get(&self.value, path)
    }

    /// Where the last step of `path` was written: the key for a mapping key, the item for a
    /// sequence index, the document's first node for an empty path.
    ///
    /// A key that a merge (`<<: *anchor`) brought in is reported where it is written in the
    /// anchored mapping, since that is the line to change; a key the mapping sets itself wins over
    /// merged ones, exactly as in [`Document::value`]. `None` when the path does not exist or the
    /// positions are unknown (see the module notes).
    pub fn position_of(&self, path: &[PathSeg]) -> Option<Position> {
        self.spans.as_ref()?.locate(path).map(|(at, _)| at)
    }

    /// Where the value at `path` starts, e.g. the line after `command: >` for a folded block
    /// scalar, or the `*alias` itself when the value is an alias.
    pub fn value_position_of(&self, path: &[PathSeg]) -> Option<Position> {
        let spans = self.spans.as_ref()?;
        spans.locate(path).map(|(_, node)| spans.nodes[node].at)
    }

    /// The 1-based line of [`Document::position_of`].
    pub fn line_of(&self, path: &[PathSeg]) -> Option<usize> {
        self.position_of(path).map(|p| p.line)
    }

    /// Where the document starts (its `---`, or its first node when it has none).
    pub fn start(&self) -> Position {
        self.spans.as_ref().map_or(Position::START, |s| s.start)
    }

    /// A document built from several files (a kustomize build): `value` with where each part
    /// was written; `file` names the build in messages about the whole document.
    pub fn built(value: Value, file: String, origins: Origins) -> Document {
        Document { value, file, index: 0, spans: None, origins: Some(std::sync::Arc::new(origins)) }
    }

    /// The file and line where `path` (or the nearest part of it that exists) was written: for a
    /// built document the file that wrote it, else this document's file.
    pub fn written_at(&self, path: &[PathSeg]) -> (String, usize) {
        if let Some(origins) = &self.origins {
            return (0..=path.len())
                .rev()
                .find_map(|n| origins.get(&path[..n]).cloned())
                .unwrap_or_else(|| (self.file.clone(), 1));
        }
        (self.file.clone(), self.line_of(path).unwrap_or_else(|| self.start().line))
    }

    /// A problem located at `path`, or at the nearest part of it that exists (for a missing key:
    /// the mapping that lacks it), or at the document's start.
    pub fn error_at(&self, path: &[PathSeg], message: impl Into<String>) -> YamlError {
        let at = (0..=path.len()).rev().find_map(|n| self.position_of(&path[..n])).unwrap_or_else(|| self.start());
        YamlError::at(&self.file, at, message)
    }

    /// Converts the merged value into a typed struct (serde does not apply merge keys by itself,
    /// hence this instead of deserializing the text directly).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, YamlError> {
        serde_yaml::from_value(self.value.clone())
            .map_err(|err| YamlError::at(&self.file, self.start(), format!("{err} — fix that field of this document")))
    }
}

/// Errors unless a file of `len` bytes is small enough to read (see [`MAX_INPUT_BYTES`]).
pub fn check_size(len: u64, file: &str) -> Result<(), YamlError> {
    if len > MAX_INPUT_BYTES as u64 {
        return Err(YamlError {
            file: file.to_string(),
            line: 0,
            column: 0,
            message: format!(
                "the file is {len} bytes, more than the {} MiB difyplan reads as YAML — pass the \
                 compose file, manifest or values file itself",
                MAX_INPUT_BYTES / (1024 * 1024)
            ),
        });
    }
    Ok(())
}

/// Parses raw file bytes: checks the size and that they are UTF-8 text, then [`parse_documents`].
pub fn parse_bytes(bytes: &[u8], file: &str) -> Result<Vec<Document>, YamlError> {
    check_size(bytes.len() as u64, file)?;
    let text = std::str::from_utf8(bytes).map_err(|err| {
        let good = bytes.get(..err.valid_up_to()).unwrap_or_default();
        // Valid UTF-8 by construction; the fallback only keeps this panic-free.
        let prefix = std::str::from_utf8(good).unwrap_or_default();
        let bad = bytes.get(err.valid_up_to()).copied().unwrap_or(0);
        YamlError::at(
            file,
            position_after(prefix),
            format!(
                "byte 0x{bad:02x} is not valid UTF-8, so this is not a YAML text file (binary \
                 data?) — pass the YAML file itself, saved as UTF-8"
            ),
        )
    })?;
    parse_documents(text, file)
}

/// Parses every document of `text` (separated by `---`), skipping empty ones (only comments, or
/// nothing, or `null`), and resolves merge keys in each. `file` is used only in messages.
///
/// Hostile input fails fast with a located error: alias bombs (serde_yaml's repetition limit),
/// nesting deeper than 128 levels, control characters such as NUL.
pub fn parse_documents(text: &str, file: &str) -> Result<Vec<Document>, YamlError> {
    check_characters(text, file)?;
    let mut trees = match build_span_trees(text) {
        Ok(trees) => trees,
        Err(ScanStop::TooDeep(at)) => {
            return Err(YamlError::at(
                file,
                at,
                format!(
                    "nesting deeper than {MAX_DEPTH} levels — no compose file, manifest or values \
                     file needs that; check for unbalanced brackets"
                ),
            ));
        }
        Err(ScanStop::TooMany(at)) => {
            return Err(YamlError::at(
                file,
                at,
                format!(
                    "more than {MAX_NODES} YAML values in one file — no compose file, manifest or \
                     values file has that many; pass the file itself, or split generated manifests \
                     into several files"
                ),
            ));
        }
        Err(ScanStop::Rejected) => Vec::new(),
    };

    let mut values = Vec::new();
    for de in serde_yaml::Deserializer::from_str(text) {
        match Value::deserialize(de) {
            Ok(value) => values.push(value),
            Err(err) => return Err(parse_error(file, trees.get(values.len()), &err)),
        }
    }

    // serde_yaml reports one empty document for an empty stream; the span pass reports none.
    if trees.len() != values.len() {
        trees.clear();
    }
    let mut trees = trees.into_iter();

    let mut docs = Vec::new();
    for (index, mut value) in values.into_iter().enumerate() {
        let spans = trees.next();
        if value.is_null() {
            continue;
        }
        let mut path = Vec::new();
        let mut doc = Document { value: Value::Null, file: file.to_string(), index, spans, origins: None };
        if let Err(message) = resolve_merges(&mut value, &mut path) {
            return Err(doc.error_at(&path, message));
        }
        note_secrets(&value, 0);
        doc.value = value;
        docs.push(doc);
    }
    Ok(docs)
}

/// Tell the secret registry about every value a secret-named key holds: `DB_PASSWORD: x` in a
/// compose `environment:`, `password:` in Helm values, and `{name: DB_PASSWORD, value: x}` in a
/// Kubernetes `env:` list. Nesting is bounded by the parser's depth limit.
fn note_secrets(value: &Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match untag(value) {
        Value::Mapping(map) => {
            if let (Some(Value::String(name)), Some(v)) = (map_get(map, "name"), map_get(map, "value"))
                && let Some(v) = scalar_string(untag(v))
            {
                crate::safety::note(name, &v);
            }
            for (k, v) in map {
                if let (Some(k), Some(v)) = (scalar_string(k), scalar_string(untag(v))) {
                    crate::safety::note_yaml(&k, &v);
                }
                note_secrets(v, depth + 1);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                // `- DB_PASSWORD=x` in a compose `environment:` list.
                if let Value::String(s) = item
                    && let Some((k, v)) = s.split_once('=')
                {
                    crate::safety::note(k, v);
                }
                note_secrets(item, depth + 1);
            }
        }
        _ => {}
    }
}

/// Writes a value as YAML (all YAML writing goes through here too).
pub fn to_string<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    serde_yaml::to_string(value).map_err(|err| anyhow::anyhow!("could not write YAML: {err}"))
}

/// The value at `path` inside `value`, if there is one. Mapping keys match as in [`PathSeg`];
/// tags (`!reset`, `!override`, …) are looked through.
pub fn get<'a>(value: &'a Value, path: &[PathSeg]) -> Option<&'a Value> {
    let mut cur = value;
    for seg in path {
        cur = untag(cur);
        cur = match (seg, cur) {
            (PathSeg::Key(k), Value::Mapping(map)) => map_get(map, k)?,
            (PathSeg::Index(i), Value::Sequence(items)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(untag(cur))
}

/// [`get`] then [`scalar_string`]: `get_string(&doc.value, &PathSeg::keys(&["x", "replicas"]))`.
pub fn get_string(value: &Value, path: &[PathSeg]) -> Option<String> {
    get(value, path).and_then(scalar_string)
}

/// A scalar as the text docker compose passes on (compose-go converts with Go's `fmt.Sprint`):
/// strings as they are, `30` → `"30"`, `true` → `"true"`, `1.0` → `"1"`, `0.5` → `"0.5"`.
///
/// `None` for `null` (in `environment:`, compose then takes the variable from its own
/// environment: the caller decides) and for sequences and mappings.
pub fn scalar_string(value: &Value) -> Option<String> {
    match untag(value) {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if n.is_f64() => go_float(f),
            _ => n.to_string(),
        }),
        _ => None,
    }
}

/// Go's `%v` for a float64: shortest digits, exponent form below 1e-4 and from 1e21 on.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let abs = f.abs();
    if abs == 0.0 || (1e-4..1e21).contains(&abs) {
        // Rust's `Display` is the shortest round-trip form without an exponent, as Go's here.
        return format!("{f}");
    }
    // Rust writes `1.5e-7`; Go writes `1.5e-07` (sign always, at least two digits).
    let sci = format!("{f:e}");
    match sci.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = exp.strip_prefix('-').map_or(("+", exp), |d| ("-", d));
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => sci,
    }
}

fn untag(mut value: &Value) -> &Value {
    while let Value::Tagged(tagged) = value {
        value = &tagged.value;
    }
    value
}

fn map_get<'a>(map: &'a Mapping, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter().find(|(k, _)| !k.is_string() && scalar_string(k).as_deref() == Some(key)).map(|(_, v)| v)
    })
}

/// Applies merge keys at every depth, as YAML 1.1's merge type says: a mapping's own keys win
/// over merged ones, and in `<<: [*a, *b]` the earlier source wins.
///
/// Sources are resolved before they are merged, so `<<: *b` where `b` has `<<: *a` brings in
/// `a`'s keys too; `serde_yaml`'s `Value::apply_merge` handles each mapping once, parent first,
/// and leaves such a nested `<<` behind as a literal key. On error, `path` points at the bad `<<`
/// (or item of it). Recursion depth is bounded by serde_yaml's nesting limit (128).
fn resolve_merges(value: &mut Value, path: &mut Vec<PathSeg>) -> Result<(), String> {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map.iter_mut() {
                path.push(PathSeg::Key(scalar_string(key).unwrap_or_else(|| format!("{key:?}"))));
                resolve_merges(child, path)?;
                path.pop();
            }
            let Some(merge) = map.shift_remove("<<") else {
                return Ok(());
            };
            path.push(PathSeg::Key("<<".to_string()));
            let sources = match merge {
                Value::Mapping(source) => vec![source],
                Value::Sequence(items) => {
                    let mut sources = Vec::with_capacity(items.len());
                    for (i, item) in items.into_iter().enumerate() {
                        match item {
                            Value::Mapping(source) => sources.push(source),
                            other => {
                                path.push(PathSeg::Index(i));
                                return Err(merge_message(&other, "each item of a `<<:` list"));
                            }
                        }
                    }
                    sources
                }
                other => return Err(merge_message(&other, "`<<:` (a YAML merge key)")),
            };
            path.pop();
            for source in sources {
                for (key, value) in source {
                    map.entry(key).or_insert(value);
                }
            }
            Ok(())
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(PathSeg::Index(i));
                resolve_merges(item, path)?;
                path.pop();
            }
            Ok(())
        }
        Value::Tagged(tagged) => resolve_merges(&mut tagged.value, path),
        _ => Ok(()),
    }
}

fn merge_message(found: &Value, what: &str) -> String {
    let kind = match found {
        Value::Null => "nothing",
        Value::Sequence(_) => "a list",
        Value::Tagged(_) => "a tagged value",
        _ => "a scalar",
    };
    format!(
        "{what} must be a mapping, usually an alias such as `<<: *defaults`, but this is {kind} — \
         point it at an anchored mapping (`x-defaults: &defaults`) or write the keys out"
    )
}

/// Rejects characters YAML forbids (C0 controls but tab and line breaks, DEL, C1 but NEL,
/// U+FFFE/U+FFFF) before parsing: libyaml reports them without a line, and a NUL almost always
/// means a binary file was passed by mistake.
fn check_characters(text: &str, file: &str) -> Result<(), YamlError> {
    let printable = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}')
            || ('\u{e000}'..='\u{fffd}').contains(&c)
            || c >= '\u{10000}'
    };
    let Some((at, bad)) = text.char_indices().find(|&(_, c)| !printable(c)) else {
        return Ok(());
    };
    let position = position_after(&text[..at]);
    let message = if bad == '\0' {
        "a NUL byte: this looks like a binary file, not YAML text — pass the YAML file itself".to_string()
    } else {
        format!(
            "control character U+{:04X} is not allowed in YAML — delete it, or write it as an \
             escape (\"\\x{:02x}\") inside a double-quoted string",
            u32::from(bad),
            u32::from(bad)
        )
    };
    Err(YamlError::at(file, position, message))
}

/// The position of the character that follows `prefix`.
fn position_after(prefix: &str) -> Position {
    let line_start = prefix.rfind('\n').map_or(0, |i| i + 1);
    Position { line: prefix.matches('\n').count() + 1, column: prefix[line_start..].chars().count() + 1 }
}

/// Turns a serde_yaml error into a located one that says what to do. `doc` is the position
/// record of the document that failed, used when serde_yaml gives no position (alias bombs).
fn parse_error(file: &str, doc: Option<&SpanTree>, err: &serde_yaml::Error) -> YamlError {
    let raw = err.to_string();
    let at = match err.location() {
        Some(loc) => Position { line: loc.line().max(1), column: loc.column().max(1) },
        None => doc.map_or(Position::START, SpanTree::first_alias),
    };
    // The position goes in front of the message; drop serde_yaml's copy of it.
    let text_at = format!(" at line {} column {}", at.line, at.column);
    let problem = raw.replacen(&text_at, "", 1);
    let hint = if raw.contains("repetition limit exceeded") {
        "the aliases (`*name`) here expand to far too much data, as in a \"billion laughs\" \
         alias bomb — write the values out instead of nesting aliases"
            .to_string()
    } else if raw.contains("recursion limit exceeded") {
        format!(
            "{problem}: nesting deeper than 128 levels — no compose file, manifest or values file \
             needs that; check for unbalanced brackets"
        )
    } else if raw.contains(" as u128") || raw.contains(" as i128") {
        // serde_yaml keeps integers in 64 bits; a longer one is no syntax error but a number
        // larger than any count, size or timeout.
        let path = problem.split(": invalid type").next().filter(|p| *p != problem).unwrap_or("a value");
        format!(
            "{path}: a number larger than 18446744073709551615 — no setting is that large; write a \
             realistic value"
        )
    } else if raw.contains("duplicate entry") {
        format!("{problem} — keep only one of the keys with that name in this mapping")
    } else if raw.contains("unknown anchor") {
        format!(
            "{problem}: an alias (`*name`) refers to an anchor (`&name`) that is not defined \
             earlier in the same document — define the anchor first or fix the name"
        )
    } else {
        format!("{problem} — fix the YAML syntax here (indentation, quotes, brackets, `:` spacing)")
    };
    YamlError::at(file, at, hint)
}

// ---------------------------------------------------------------------------------------------
// Positions: a tree of what was written, with aliases kept as references (never expanded, so
// it is linear in the text even for an alias bomb).

type NodeId = usize;

#[derive(Debug, Clone)]
struct SpanTree {
    /// Where the document starts.
    start: Position,
    nodes: Vec<Node>,
    root: Option<NodeId>,
    /// For each large mapping, its keys to their first entry, so finding a key (once per
    /// service of a 50,000-service file) is not a walk through all of them.
    index: HashMap<NodeId, HashMap<String, usize>>,
}

/// Scalars longer than this are not kept in the position pass (no key is that long).
const MAX_KEY_TEXT: usize = 256;

/// Mappings with more entries than this get an [`SpanTree::index`].
const INDEXED_MAPPING: usize = 16;

/// The most YAML nodes (scalars, aliases, sequences, mappings) one input may hold. Dify's
/// compose file has about 3,000 and 2,000 Kubernetes manifests about 70,000; the limit keeps
/// the parsed trees of a 16 MiB file within a bounded amount of memory.
pub const MAX_NODES: usize = 200_000;

#[derive(Debug, Clone)]
struct Node {
    at: Position,
    kind: NodeKind,
}

#[derive(Debug, Clone)]
enum NodeKind {
    Scalar(String),
    Sequence(Vec<NodeId>),
    /// (key node, value node) in the order written; `<<` entries included.
    Mapping(Vec<(NodeId, NodeId)>),
    /// The anchored node it refers to (`None` for an unknown anchor).
    Alias(Option<NodeId>),
}

impl SpanTree {
    /// Where to report an error that has no position: the document's first alias (what an alias
    /// bomb is made of), or its start.
    fn first_alias(&self) -> Position {
        self.nodes.iter().find(|n| matches!(n.kind, NodeKind::Alias(_))).map_or(self.start, |n| n.at)
    }

    /// Follows an alias to the node it names.
    fn resolve(&self, id: NodeId) -> Option<NodeId> {
        match self.nodes.get(id)?.kind {
            // An alias always names a node that is not itself an alias.
            NodeKind::Alias(target) => target,
            _ => Some(id),
        }
    }

    fn scalar(&self, id: NodeId) -> Option<&str> {
        match &self.nodes.get(self.resolve(id)?)?.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The (key, value) entry for `key` in mapping `map`: its own entry, else the first merge
    /// source (`<<`) that has it, searched the same way.
    fn find_key(&self, map: NodeId, key: &str, depth: usize) -> Option<(NodeId, NodeId)> {
        if depth > MAX_MERGE_DEPTH {
            return None;
        }
        let NodeKind::Mapping(entries) = &self.nodes.get(map)?.kind else {
            return None;
        };
        let own = match self.index.get(&map) {
            Some(index) => index.get(key).map(|&i| entries[i]),
            None => entries.iter().find(|&&(k, _)| self.scalar(k) == Some(key)).copied(),
        };
        if let Some(entry) = own {
            return Some(entry);
        }
        for &(k, v) in entries {
            if self.scalar(k) != Some("<<") {
                continue;
            }
            let source = self.resolve(v)?;
            let found = match &self.nodes.get(source)?.kind {
                NodeKind::Mapping(_) => self.find_key(source, key, depth + 1),
                NodeKind::Sequence(items) => {
                    items.iter().find_map(|&item| self.find_key(self.resolve(item)?, key, depth + 1))
                }
                _ => None,
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Where the last step of `path` was written, and the node it leads to.
    fn locate(&self, path: &[PathSeg]) -> Option<(Position, NodeId)> {
        let mut cur = self.root?;
        let mut at = self.nodes.get(cur)?.at;
        for seg in path {
            let node = self.resolve(cur)?;
            let (written, next) = match (seg, &self.nodes.get(node)?.kind) {
                (PathSeg::Key(k), NodeKind::Mapping(_)) => self.find_key(node, k, 0)?,
                (PathSeg::Index(i), NodeKind::Sequence(items)) => {
                    let item = *items.get(*i)?;
                    (item, item)
                }
                _ => return None,
            };
            at = self.nodes.get(written)?.at;
            cur = next;
        }
        Some((at, cur))
    }
}

/// Builds a [`SpanTree`] from the events of one document.
#[derive(Default)]
struct TreeBuilder {
    start: Option<Position>,
    nodes: Vec<Node>,
    root: Option<NodeId>,
    /// Open sequences and mappings, innermost last, each with the key awaiting its value.
    open: Vec<(NodeId, Option<NodeId>)>,
    /// saphyr's anchor ids (unique in the stream) to the anchored node.
    anchors: HashMap<usize, NodeId>,
}

impl TreeBuilder {
    fn add(&mut self, at: Position, kind: NodeKind, anchor: usize) -> NodeId {
        let id = self.nodes.len();
        let is_container = matches!(kind, NodeKind::Sequence(_) | NodeKind::Mapping(_));
        self.nodes.push(Node { at, kind });
        if anchor != 0 {
            self.anchors.insert(anchor, id);
        }
        match self.open.last_mut() {
            None => self.root = self.root.or(Some(id)),
            Some((parent, pending_key)) => match &mut self.nodes[*parent].kind {
                NodeKind::Sequence(items) => items.push(id),
                NodeKind::Mapping(entries) => match pending_key.take() {
                    Some(key) => entries.push((key, id)),
                    None => *pending_key = Some(id),
                },
                _ => {}
            },
        }
        if is_container {
            self.open.push((id, None));
        }
        id
    }

    fn finish(self) -> SpanTree {
        let start = self.start.or_else(|| self.nodes.first().map(|n| n.at)).unwrap_or(Position::START);
        let mut tree = SpanTree { start, nodes: self.nodes, root: self.root, index: HashMap::new() };
        let mut index = HashMap::new();
        for (id, node) in tree.nodes.iter().enumerate() {
            let NodeKind::Mapping(entries) = &node.kind else { continue };
            if entries.len() <= INDEXED_MAPPING {
                continue;
            }
            let mut keys = HashMap::with_capacity(entries.len());
            for (i, &(k, _)) in entries.iter().enumerate() {
                if let Some(key) = tree.scalar(k) {
                    keys.entry(key.to_string()).or_insert(i);
                }
            }
            index.insert(id, keys);
        }
        tree.index = index;
        tree
    }
}

/// Why the position pass stopped early.
#[derive(Debug)]
enum ScanStop {
    /// Nesting deeper than [`MAX_DEPTH`], at this node.
    TooDeep(Position),
    /// saphyr rejects the text; serde_yaml's verdict on it stands, positions are unknown.
    Rejected,
    /// More than [`MAX_NODES`] nodes, at this one.
    TooMany(Position),
}

/// Runs the span-aware parser over the whole stream: one tree per document.
fn build_span_trees(text: &str) -> Result<Vec<SpanTree>, ScanStop> {
    let mut trees = Vec::new();
    let mut doc: Option<TreeBuilder> = None;
    let mut parser = Parser::new_from_str(text);
    let mut nodes = 0usize;
    // saphyr repeats an error forever once it has one, so stop at the first.
    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(found) => found,
            // saphyr's own flow-nesting limit (255 levels).
            Err(err) if err.info() == "recursion limit exceeded" => {
                let mark = err.marker();
                return Err(ScanStop::TooDeep(Position { line: mark.line(), column: mark.col() + 1 }));
            }
            Err(_) => return Err(ScanStop::Rejected),
        };
        let at = Position { line: span.start.line(), column: span.start.col() + 1 };
        if matches!(event, Event::Scalar(..) | Event::Alias(..) | Event::SequenceStart(..) | Event::MappingStart(..)) {
            nodes += 1;
            if nodes > MAX_NODES {
                return Err(ScanStop::TooMany(at));
            }
        }
        if matches!(event, Event::SequenceStart(..) | Event::MappingStart(..))
            && doc.as_ref().is_some_and(|b| b.open.len() >= MAX_DEPTH)
        {
            return Err(ScanStop::TooDeep(at));
        }
        match event {
            Event::DocumentStart(_) => {
                trees.extend(doc.take().map(TreeBuilder::finish));
                doc = Some(TreeBuilder { start: Some(at), ..TreeBuilder::default() });
            }
            Event::DocumentEnd | Event::StreamEnd => {
                trees.extend(doc.take().map(TreeBuilder::finish));
            }
            Event::Scalar(value, _, anchor, _) => {
                // Only keys are ever looked up by text; a long scalar is a value, kept as nothing
                // so the position pass stays small beside the parsed document.
                let text = if value.len() <= MAX_KEY_TEXT { value.into_owned() } else { String::new() };
                doc.get_or_insert_default().add(at, NodeKind::Scalar(text), anchor);
            }
            Event::Alias(anchor) => {
                let b = doc.get_or_insert_default();
                let target = b.anchors.get(&anchor).copied();
                b.add(at, NodeKind::Alias(target), 0);
            }
            Event::SequenceStart(anchor, _) => {
                doc.get_or_insert_default().add(at, NodeKind::Sequence(Vec::new()), anchor);
            }
            Event::MappingStart(anchor, _) => {
                doc.get_or_insert_default().add(at, NodeKind::Mapping(Vec::new()), anchor);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(b) = doc.as_mut() {
                    b.open.pop();
                }
            }
            Event::StreamStart | Event::Nothing => {}
        }
    }
    trees.extend(doc.take().map(TreeBuilder::finish));
    Ok(trees)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn fixture(rel: &str) -> String {
        let path = format!("{}/../shared/fixtures/dify/{rel}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
    }

    fn p(keys: &[&str]) -> Vec<PathSeg> {
        PathSeg::keys(keys)
    }

    /// 1-based line of the first line of `text` after line `after` that starts with `prefix`
    /// (indentation included), so a test finds a key inside a given block without copying a
    /// line number.
    fn find_line(text: &str, after: usize, prefix: &str) -> usize {
        text.lines()
            .enumerate()
            .skip(after)
            .find(|(_, l)| l.starts_with(prefix))
            .map(|(i, _)| i + 1)
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} after line {after}"))
    }

    fn only(docs: Vec<Document>) -> Document {
        assert_eq!(docs.len(), 1);
        docs.into_iter().next().expect("one document")
    }

    /// Every key and index reachable in the merged value must have a position: the two parsers
    /// agree on the whole file.
    fn assert_all_located(doc: &Document) {
        fn walk(doc: &Document, value: &Value, path: &mut Vec<PathSeg>, count: &mut usize) {
            match value {
                Value::Mapping(map) => {
                    for (k, v) in map {
                        let Some(key) = scalar_string(k) else {
                            continue;
                        };
                        path.push(PathSeg::Key(key));
                        assert!(doc.position_of(path).is_some(), "no position for {}", path_string(path));
                        *count += 1;
                        walk(doc, v, path, count);
                        path.pop();
                    }
                }
                Value::Sequence(items) => {
                    for (i, v) in items.iter().enumerate() {
                        path.push(PathSeg::Index(i));
                        assert!(doc.position_of(path).is_some(), "no position for {}", path_string(path));
                        *count += 1;
                        walk(doc, v, path, count);
                        path.pop();
                    }
                }
                Value::Tagged(t) => walk(doc, &t.value, path, count),
                _ => {}
            }
        }
        let mut count = 0;
        walk(doc, &doc.value, &mut Vec::new(), &mut count);
        assert!(count > 100, "walked only {count} nodes");
    }

    #[test]
    fn dify_1_9_1_compose_merges_shared_env_and_locates_it() {
        let text = fixture("1.9.1/docker-compose.yaml");
        let doc = only(parse_documents(&text, "docker-compose.yaml").expect("parses"));

        let pool = p(&["services", "api", "environment", "SQLALCHEMY_POOL_SIZE"]);
        assert_eq!(get_string(&doc.value, &pool).as_deref(), Some("${SQLALCHEMY_POOL_SIZE:-30}"));
        // The merged key is reported inside `x-shared-env`, where it is written.
        let shared = find_line(&text, 0, "x-shared-env:");
        let written = find_line(&text, shared, "  SQLALCHEMY_POOL_SIZE:");
        assert!(written < find_line(&text, 0, "services:"));
        assert_eq!(doc.line_of(&pool), Some(written));
        let col = text.lines().nth(written - 1).map(|l| l.len() - l.trim_start().len() + 1);
        assert_eq!(doc.position_of(&pool).map(|p| p.column), col);

        // A key the service sets itself is reported on the service's own line.
        let mode = p(&["services", "worker", "environment", "MODE"]);
        assert_eq!(get_string(&doc.value, &mode).as_deref(), Some("worker"));
        let worker = find_line(&text, 0, "  worker:");
        let env = find_line(&text, worker, "    environment:");
        assert_eq!(doc.line_of(&mode), Some(find_line(&text, env, "      MODE:")));

        // Merged into every service that asks, and no `<<` key survives.
        for service in ["api", "worker", "worker_beat"] {
            let env = doc.get(&p(&["services", service, "environment"])).expect("env");
            assert!(env.get("<<").is_none());
            assert!(env.get("SQLALCHEMY_POOL_SIZE").is_some(), "{service}");
        }
        assert_all_located(&doc);
    }

    #[test]
    fn dify_1_16_1_compose_db_command_and_env_files() {
        let text = fixture("1.16.1/docker-compose.yaml");
        let doc = only(parse_documents(&text, "docker-compose.yaml").expect("parses"));

        let command = p(&["services", "db_postgres", "command"]);
        let cmd = get_string(&doc.value, &command).expect("command is a string");
        assert!(cmd.starts_with("postgres -c 'max_connections=${POSTGRES_MAX_CONNECTIONS:-100}'"));
        let service = find_line(&text, 0, "  db_postgres:");
        let line = find_line(&text, service, "    command:");
        assert_eq!(doc.line_of(&command), Some(line));
        // The folded scalar's text starts on the next line.
        assert_eq!(doc.value_position_of(&command).map(|p| p.line), Some(line + 1));

        let env_file = p(&["services", "api", "env_file"]);
        let Some(Value::Sequence(files)) = doc.get(&env_file) else {
            panic!("env_file is a list");
        };
        assert!(files.len() > 10);
        for (i, item) in files.iter().enumerate() {
            if let Value::Mapping(_) = item {
                let mut req = env_file.clone();
                req.extend([PathSeg::Index(i), "required".into()]);
                assert_eq!(doc.get(&req), Some(&Value::Bool(false)));
                assert_eq!(get_string(&doc.value, &req).as_deref(), Some("false"));
            }
        }
        assert_eq!(files.last().and_then(scalar_string).as_deref(), Some("./.env"));
        // `env_file` came from `<<: *shared-api-worker-config`: its line is in that block.
        let anchor = find_line(&text, 0, "x-shared-api-worker-config:");
        assert_eq!(doc.line_of(&env_file), Some(find_line(&text, anchor, "  env_file:")));
        let mut first = env_file.clone();
        first.push(PathSeg::Index(0));
        assert_eq!(doc.line_of(&first), Some(find_line(&text, anchor, "    - path:")));
        assert_all_located(&doc);
    }

    const K8S: &str = "\
# Dify api on Kubernetes
apiVersion: apps/v1
kind: Deployment
metadata:
  name: dify-api
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: api
          env:
            - name: SQLALCHEMY_POOL_SIZE
              value: \"30\"
---
# only a comment: skipped
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: dify-api}
spec:
  minReplicas: 2
  maxReplicas: 10
  replicas: 4
---
apiVersion: v1
kind: ConfigMap
data:
  SERVER_WORKER_AMOUNT: 2
  GEVENT: true
...
";

    #[test]
    fn kubernetes_multi_document() {
        let docs = parse_documents(K8S, "dify.yaml").expect("parses");
        let kinds: Vec<_> = docs.iter().filter_map(|d| get_string(&d.value, &p(&["kind"]))).collect();
        assert_eq!(kinds, ["Deployment", "HorizontalPodAutoscaler", "ConfigMap"]);
        assert_eq!(docs.iter().map(|d| d.index).collect::<Vec<_>>(), [0, 2, 3]);

        let replicas = p(&["spec", "replicas"]);
        assert_eq!(docs[0].line_of(&replicas), Some(7));
        assert_eq!(docs[1].line_of(&replicas), Some(find_line(K8S, 17, "  replicas:")));
        assert_eq!(get_string(&docs[1].value, &replicas).as_deref(), Some("4"));
        assert_eq!(docs[1].line_of(&p(&["metadata", "name"])), Some(20));
        assert_eq!(docs[1].position_of(&p(&["metadata", "name"])).map(|p| p.column), Some(12));
        assert_eq!(docs[1].start().line, 17);

        let value = ["spec", "template", "spec", "containers"]
            .iter()
            .map(|&k| PathSeg::from(k))
            .chain([0.into(), "env".into(), 0.into(), "value".into()])
            .collect::<Vec<_>>();
        assert_eq!(get_string(&docs[0].value, &value).as_deref(), Some("30"));
        assert_eq!(docs[0].line_of(&value), Some(14));
        assert_eq!(path_string(&value), "spec.template.spec.containers[0].env[0].value");

        let data = &docs[2];
        assert_eq!(get_string(&data.value, &p(&["data", "SERVER_WORKER_AMOUNT"])).as_deref(), Some("2"));
        assert_eq!(get_string(&data.value, &p(&["data", "GEVENT"])).as_deref(), Some("true"));
        assert_eq!(data.line_of(&p(&["data", "GEVENT"])), Some(30));
        assert_eq!(data.line_of(&p(&["data", "MISSING"])), None);
        let err = data.error_at(&p(&["data", "MISSING"]), "missing — add it");
        assert_eq!(err.to_string(), "dify.yaml:28:1: missing — add it");
    }

    #[test]
    fn empty_streams_give_no_documents() {
        for text in ["", "\n", "# nothing\n", "---\n", "---\n# c\n---\n...\n", "~\n", "null"] {
            let docs = parse_documents(text, "x.yaml").expect(text);
            assert!(docs.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn merge_keys_nested_lists_and_precedence() {
        let text = "\
base: &base
  a: base-a
  b: base-b
  nested: {x: 1}
more: &more
  <<: *base
  b: more-b
  c: more-c
other: &other
  c: other-c
  d: other-d
svc:
  env:
    <<: [*more, *other]
    d: own-d
  list:
    - <<: *base
      a: item-a
";
        let doc = only(parse_documents(text, "m.yaml").expect("parses"));
        let env = |k: &str| get_string(&doc.value, &p(&["svc", "env", k]));
        // Own key beats merged ones; earlier source beats later; a source's own merge is applied.
        assert_eq!(env("a").as_deref(), Some("base-a"));
        assert_eq!(env("b").as_deref(), Some("more-b"));
        assert_eq!(env("c").as_deref(), Some("more-c"));
        assert_eq!(env("d").as_deref(), Some("own-d"));
        assert!(doc.get(&p(&["svc", "env", "<<"])).is_none());
        assert!(doc.get(&p(&["more", "<<"])).is_none());
        // Why this module merges by itself: serde_yaml's `apply_merge` leaves `more`'s own `<<`
        // behind as a literal key of `svc.env`.
        let mut raw: Value = serde_yaml::from_str(text).expect("parses");
        raw.apply_merge().expect("merges");
        assert!(get(&raw, &p(&["svc", "env", "<<"])).is_some());
        assert_eq!(get_string(&doc.value, &p(&["svc", "env", "nested", "x"])).as_deref(), Some("1"));

        let line = |path: &[&str]| doc.line_of(&p(path));
        assert_eq!(line(&["svc", "env", "a"]), Some(2));
        assert_eq!(line(&["svc", "env", "b"]), Some(7));
        assert_eq!(line(&["svc", "env", "c"]), Some(8));
        assert_eq!(line(&["svc", "env", "d"]), Some(15));
        assert_eq!(line(&["svc", "env", "nested", "x"]), Some(4));

        let item: Vec<PathSeg> = vec!["svc".into(), "list".into(), 0.into()];
        let mut a = item.clone();
        a.push("a".into());
        let mut b = item.clone();
        b.push("b".into());
        assert_eq!(get_string(&doc.value, &a).as_deref(), Some("item-a"));
        assert_eq!(doc.line_of(&a), Some(18));
        assert_eq!(get_string(&doc.value, &b).as_deref(), Some("base-b"));
        assert_eq!(doc.line_of(&b), Some(3));
        assert_eq!(doc.line_of(&item), Some(17));
    }

    #[test]
    fn bad_merge_values_are_located_errors() {
        let err = parse_documents("a: 1\nsvc:\n  <<: 3\n", "m.yaml").expect_err("scalar merge");
        assert_eq!((err.line, err.column), (3, 3));
        assert!(err.message.contains("must be a mapping"), "{err}");
        let err = parse_documents("x: &x {a: 1}\nsvc:\n  <<:\n    - *x\n    - [1]\n", "m.yaml")
            .expect_err("list in merge list");
        assert_eq!((err.line, err.column), (5, 7));
        assert!(err.message.contains("each item"), "{err}");
    }

    #[test]
    fn scalars_render_as_compose_does() {
        let doc = only(
            parse_documents(
                "i: 30\nneg: -2\nt: true\nf: 1.0\nh: 0.5\nbig: 1.0e+21\nsmall: 0.00001\n\
                 s: '30'\nn: ~\nl: [1]\ntag: !override 5\nhex: 0x1F\n",
                "s.yaml",
            )
            .expect("parses"),
        );
        let s = |k: &str| get_string(&doc.value, &p(&[k]));
        assert_eq!(s("i").as_deref(), Some("30"));
        assert_eq!(s("neg").as_deref(), Some("-2"));
        assert_eq!(s("t").as_deref(), Some("true"));
        assert_eq!(s("f").as_deref(), Some("1"));
        assert_eq!(s("h").as_deref(), Some("0.5"));
        assert_eq!(s("big").as_deref(), Some("1e+21"));
        assert_eq!(s("small").as_deref(), Some("1e-05"));
        assert_eq!(s("s").as_deref(), Some("30"));
        assert_eq!(s("n"), None);
        assert_eq!(s("l"), None);
        assert_eq!(s("tag").as_deref(), Some("5"));
        assert_eq!(s("hex").as_deref(), Some("31"));
        assert_eq!(go_float(f64::NAN), "NaN");
        assert_eq!(go_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(go_float(-0.0), "-0");
        assert_eq!(go_float(123456.75), "123456.75");
    }

    #[test]
    fn non_string_keys_match_by_text() {
        let doc = only(parse_documents("ports:\n  8080: web\n  \"9090\": metrics\n", "k.yaml").expect("parses"));
        assert_eq!(get_string(&doc.value, &p(&["ports", "8080"])).as_deref(), Some("web"));
        assert_eq!(doc.line_of(&p(&["ports", "8080"])), Some(2));
        assert_eq!(doc.line_of(&p(&["ports", "9090"])), Some(3));
        assert_eq!(doc.line_of(&[]), Some(1));
    }

    #[test]
    fn typed_conversion_sees_merged_keys() {
        #[derive(serde::Deserialize)]
        struct Svc {
            image: String,
            replicas: u32,
        }
        let doc = only(
            parse_documents("d: &d {image: dify-api}\nsvc:\n  <<: *d\n  replicas: 2\n", "t.yaml").expect("parses"),
        );
        let svc: Svc = serde_yaml::from_value(doc.get(&p(&["svc"])).cloned().expect("svc")).expect("typed");
        assert_eq!((svc.image.as_str(), svc.replicas), ("dify-api", 2));
        let err = doc.deserialize::<Svc>().err().expect("not a Svc");
        assert_eq!((err.line, err.column), (1, 1));
    }

    #[test]
    fn writes_yaml() {
        let mut map = Mapping::new();
        map.insert("replicas".into(), 2.into());
        let text = to_string(&map).expect("writes");
        assert_eq!(text, "replicas: 2\n");
    }

    fn assert_fast_error(text: &str, expect: &str) -> YamlError {
        let started = Instant::now();
        let err = parse_documents(text, "evil.yaml").expect_err("must be rejected");
        // A hang guard, not a speed target (the speed is benchmarked): generous for a loaded machine.
        assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
        assert!(err.message.contains(expect), "{err}");
        assert!(err.line >= 1 && err.column >= 1, "{err:?}");
        assert!(err.message.contains(" — "), "says what to do: {err}");
        err
    }

    #[test]
    fn billion_laughs_fails_fast() {
        let mut text =
            String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for w in names.windows(2) {
            let refs = vec![format!("*{}", w[0]); 9].join(",");
            text.push_str(&format!("{0}: &{0} [{refs}]\n", w[1]));
        }
        let err = assert_fast_error(&text, "billion laughs");
        // Pointed at the first alias.
        assert_eq!((err.line, err.column), (2, 8));
        // The same bomb made of mappings.
        let mut maps = String::from("a: &a {x: lol, y: lol, z: lol}\n");
        for w in names.windows(2) {
            let refs: Vec<_> = (0..9).map(|k| format!("k{k}: *{}", w[0])).collect();
            maps.push_str(&format!("{0}: &{0} {{{1}}}\n", w[1], refs.join(", ")));
        }
        assert_fast_error(&maps, "billion laughs");
    }

    #[test]
    fn deep_nesting_errors_without_overflow() {
        let err = assert_fast_error(&"[".repeat(10_000), "nesting deeper");
        assert_eq!(err.line, 1);
        assert_fast_error(&format!("{}1{}", "{a: ".repeat(10_000), "}".repeat(10_000)), "nesting deeper");
        let block: String = (0..300).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        let err = assert_fast_error(&block, "nesting deeper");
        assert_eq!((err.line, err.column), (129, 129));
        // 200 KB of nested flow mappings: seconds in libyaml, so the position pass must stop it.
        assert_fast_error(&"{a: ".repeat(50_000), "nesting deeper");
    }

    #[test]
    fn libyaml_has_the_last_word_on_syntax() {
        // saphyr rejects a comment glued to a quoted scalar; libyaml accepts it.
        let doc = only(parse_documents("a: 'x'# glued\n", "g.yaml").expect("libyaml accepts"));
        assert_eq!(get_string(&doc.value, &p(&["a"])).as_deref(), Some("x"));
        assert_eq!(doc.line_of(&p(&["a"])), None);
        assert_eq!(doc.error_at(&p(&["a"]), "m — n").to_string(), "g.yaml:1:1: m — n");
    }

    #[test]
    fn binary_and_control_characters_are_rejected() {
        let err = assert_fast_error("a: 1\nb: x\0y\n", "NUL");
        assert_eq!((err.line, err.column), (2, 5));
        assert_eq!(
            err.to_string(),
            "evil.yaml:2:5: a NUL byte: this looks like a binary file, not YAML text — pass the \
             YAML file itself"
        );
        let err = assert_fast_error("a: \u{7}\n", "U+0007");
        assert_eq!((err.line, err.column), (1, 4));
        let err = parse_bytes(b"a: 1\n\x89PNG\r\n", "img.yaml").expect_err("not UTF-8");
        assert_eq!((err.line, err.column), (2, 1));
        assert!(err.message.contains("0x89"), "{err}");
        assert_eq!(parse_bytes(b"a: 1\n", "ok.yaml").map(|d| d.len()), Ok(1));
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let err = assert_fast_error("a: [1, 2\nb: 3\n", "did not find expected ',' or ']'");
        assert_eq!((err.line, err.column), (2, 2));
        assert!(!err.message.contains("at line 2 column 2"), "position not repeated: {err}");
        let err = assert_fast_error("a:\n  b: 1\n c: 2\n", "did not find expected key");
        assert_eq!((err.line, err.column), (3, 2));
        assert!(err.to_string().starts_with("evil.yaml:3:2: "), "{err}");
        let err = assert_fast_error("ok: 1\n---\nx: *nope\n", "unknown anchor");
        assert_eq!(err.line, 3);
        assert_fast_error("a: 1\na: 2\n", "duplicate entry");
    }

    #[test]
    fn size_limit() {
        assert!(check_size(MAX_INPUT_BYTES as u64, "f.yaml").is_ok());
        let err = check_size(MAX_INPUT_BYTES as u64 + 1, "f.yaml").expect_err("too big");
        assert!(err.to_string().starts_with("f.yaml: the file is 16777217 bytes, more than the 16 MiB"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// Arbitrary text never panics; whatever parses can be walked and located.
        #[test]
        fn arbitrary_text_never_panics(text in "(?s).{0,3000}") {
            exercise(&text);
        }

        /// YAML-looking token soup reaches deeper into both parsers than random characters.
        #[test]
        fn yaml_token_soup_never_panics(tokens in proptest::collection::vec(
            proptest::sample::select(vec![
                "a", "b", "<<", ":", ": ", " ", "  ", "\n", "\n  ", "- ", "&x ", "*x", "&y ", "*y",
                "<<: ", "[", "]", "{", "}", ", ", "---\n", "...\n", "'", "\"", "# c", "|\n", ">\n",
                "? ", "!!str ", "!t ", "1", "0x1", "1.5", "true", "~", "\t", "\r\n", "\\", "%YAML 1.1\n",
            ]),
            0..400,
        )) {
            exercise(&tokens.concat());
        }
    }

    fn exercise(text: &str) {
        if let Ok(docs) = parse_documents(text, "p.yaml") {
            for doc in &docs {
                walk_all(doc, &doc.value, &mut Vec::new(), 0);
            }
        }
    }

    fn walk_all(doc: &Document, value: &Value, path: &mut Vec<PathSeg>, seen: usize) -> usize {
        let mut seen = seen + 1;
        if seen > 2_000 {
            return seen;
        }
        let _ = (doc.position_of(path), doc.value_position_of(path), doc.error_at(path, "x"));
        match value {
            Value::Mapping(map) => {
                for (k, v) in map {
                    path.push(PathSeg::Key(scalar_string(k).unwrap_or_default()));
                    seen = walk_all(doc, v, path, seen);
                    path.pop();
                }
            }
            Value::Sequence(items) => {
                for (i, v) in items.iter().enumerate() {
                    path.push(PathSeg::Index(i));
                    seen = walk_all(doc, v, path, seen);
                    path.pop();
                }
            }
            other => {
                let _ = scalar_string(other);
            }
        }
        seen
    }
}
