//! A YAML tree that remembers where each part was written, for kustomize builds: patches from
//! several files are merged into one resource, and every value keeps the file and line that set
//! it, so a budget built from an overlay points at the overlay's line.

use crate::read::yaml::{Document, Origins, PathSeg};
use serde_yaml::{Mapping, Value};

/// File and line a part was written at.
pub type At = (String, usize);

/// A value with where it was written; mappings keep their order.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Scalar(Value, At),
    Seq(Vec<Node>, At),
    Map(Vec<(String, Node)>, At),
}

fn untag(mut value: &Value) -> &Value {
    while let Value::Tagged(tagged) = value {
        value = &tagged.value;
    }
    value
}

/// A mapping key as text (kustomize's keys are strings; `8080:` is `"8080"`).
fn key_text(k: &Value) -> String {
    crate::read::yaml::scalar_string(untag(k)).unwrap_or_default()
}

impl Node {
    /// A parsed document, each part located in its file (`line_shift` moves the lines of an
    /// inline patch to where its text sits in the kustomization; `file` renames it).
    pub fn of_document(doc: &Document, file: Option<&str>, line_shift: usize) -> Node {
        let mut path = Vec::new();
        Self::walk(doc, &doc.value, &mut path, file, line_shift)
    }

    fn walk(doc: &Document, v: &Value, path: &mut Vec<PathSeg>, file: Option<&str>, shift: usize) -> Node {
        let (f, line) = doc.written_at(path);
        let at = (file.map_or(f, str::to_string), line + shift);
        match untag(v) {
            Value::Mapping(m) => {
                let mut entries = Vec::with_capacity(m.len());
                for (k, v) in m {
                    let k = key_text(k);
                    path.push(PathSeg::Key(k.clone()));
                    entries.push((k, Self::walk(doc, v, path, file, shift)));
                    path.pop();
                }
                Node::Map(entries, at)
            }
            Value::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, v) in items.iter().enumerate() {
                    path.push(PathSeg::Index(i));
                    out.push(Self::walk(doc, v, path, file, shift));
                    path.pop();
                }
                Node::Seq(out, at)
            }
            other => Node::Scalar(other.clone(), at),
        }
    }

    pub fn str(s: &str, at: &At) -> Node {
        Node::Scalar(Value::String(s.to_string()), at.clone())
    }

    pub fn at(&self) -> &At {
        match self {
            Node::Scalar(_, at) | Node::Seq(_, at) | Node::Map(_, at) => at,
        }
    }

    /// The plain value.
    pub fn value(&self) -> Value {
        match self {
            Node::Scalar(v, _) => v.clone(),
            Node::Seq(items, _) => Value::Sequence(items.iter().map(Node::value).collect()),
            Node::Map(entries, _) => {
                let mut m = Mapping::new();
                for (k, v) in entries {
                    m.insert(Value::String(k.clone()), v.value());
                }
                Value::Mapping(m)
            }
        }
    }

    /// Where every part was written, by path.
    pub fn origins(&self) -> Origins {
        let mut out = Origins::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, path: &mut Vec<PathSeg>, out: &mut Origins) {
        out.insert(path.clone(), self.at().clone());
        match self {
            Node::Scalar(..) => {}
            Node::Seq(items, _) => {
                for (i, v) in items.iter().enumerate() {
                    path.push(PathSeg::Index(i));
                    v.collect(path, out);
                    path.pop();
                }
            }
            Node::Map(entries, _) => {
                for (k, v) in entries {
                    path.push(PathSeg::Key(k.clone()));
                    v.collect(path, out);
                    path.pop();
                }
            }
        }
    }

    /// A built document of this tree.
    pub fn document(&self, file: String) -> Document {
        Document::built(self.value(), file, self.origins())
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries, _) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match self {
            Node::Map(entries, _) => entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn get_path(&self, keys: &[&str]) -> Option<&Node> {
        keys.iter().try_fold(self, |n, k| n.get(k))
    }

    pub fn get_path_mut(&mut self, keys: &[&str]) -> Option<&mut Node> {
        let mut cur = self;
        for k in keys {
            cur = cur.get_mut(k)?;
        }
        Some(cur)
    }

    /// Set `key` of a mapping (in place when it exists, else appended); no-op on other nodes.
    pub fn set(&mut self, key: &str, value: Node) {
        if let Node::Map(entries, _) = self {
            match entries.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = value,
                None => entries.push((key.to_string(), value)),
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Node> {
        match self {
            Node::Map(entries, _) => {
                let i = entries.iter().position(|(k, _)| k == key)?;
                Some(entries.remove(i).1)
            }
            _ => None,
        }
    }

    /// The mapping at `keys`, made (empty, located at `at`) where missing.
    pub fn ensure_map(&mut self, keys: &[&str], at: &At) -> Option<&mut Node> {
        let mut cur = self;
        for k in keys {
            if !matches!(cur, Node::Map(..)) {
                return None;
            }
            if cur.get(k).is_none_or(|n| !matches!(n, Node::Map(..))) {
                cur.set(k, Node::Map(Vec::new(), at.clone()));
            }
            cur = cur.get_mut(k)?;
        }
        Some(cur)
    }

    /// A scalar as text (`3` → "3").
    pub fn text(&self) -> Option<String> {
        match self {
            Node::Scalar(v, _) => crate::read::yaml::scalar_string(v),
            _ => None,
        }
    }

    pub fn items(&self) -> &[Node] {
        match self {
            Node::Seq(items, _) => items,
            _ => &[],
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar(Value::Null, _))
    }

    /// Every mapping in the tree (depth first), for transformers that act wherever a field is.
    pub fn for_each_map(&mut self, f: &mut dyn FnMut(&mut Node)) {
        if matches!(self, Node::Map(..)) {
            f(self);
        }
        match self {
            Node::Scalar(..) => {}
            Node::Seq(items, _) => items.iter_mut().for_each(|n| n.for_each_map(f)),
            Node::Map(entries, _) => entries.iter_mut().for_each(|(_, n)| n.for_each_map(f)),
        }
    }
}
