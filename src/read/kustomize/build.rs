//! kustomize trees built as `kubectl kustomize DIR` builds them, for what changes the budget:
//! `resources` (files and folders, bases and overlays), `components`, the generators, patches
//! (strategic merge and JSON 6902), `namespace`, `namePrefix`/`nameSuffix` with the references to
//! renamed ConfigMaps, Secrets and workloads, `images`, `replicas` and labels. What is not built
//! here (`helmCharts:`, `replacements:`, remote bases, plugins) is refused with the command that
//! renders the tree for `check -`.

use super::generator::{KUSTOMIZATION_NAMES, is_kustomization_name};
use super::node::{At, Node};
use super::patch;
use crate::deployment::Source;
use crate::read::error::Error;
use crate::read::inputs::Input;
use crate::read::lexical;
use crate::read::yaml::{self, Document, PathSeg};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Fields of a kustomization built here, or without effect on the budget.
const APPLIED: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "resources",
    "bases",
    "components",
    "namespace",
    "namePrefix",
    "nameSuffix",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "images",
    "replicas",
    "commonLabels",
    "labels",
    "commonAnnotations",
    "buildMetadata",
    "sortOptions",
];

/// Kinds kustomize does not prefix or suffix.
const NOT_RENAMED: &[&str] = &["CustomResourceDefinition", "APIService", "Namespace"];

/// Cluster-scoped kinds: `namespace:` leaves them alone.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "APIService",
    "IngressClass",
    "RuntimeClass",
    "CSIDriver",
    "VolumeSnapshotClass",
];

/// A Flux `Kustomization` object (`kustomize.toolkit.fluxcd.io`) kept in a file named like a
/// kustomization: a resource Flux applies, not a kustomization kustomize builds.
fn is_flux_object(doc: &Document) -> bool {
    yaml::get_string(&doc.value, &PathSeg::keys(&["apiVersion"]))
        .is_some_and(|a| a.starts_with("kustomize.toolkit.fluxcd.io"))
}

/// One resource of a build, with the names it had (kustomize matches patches and `replicas` by
/// any of them).
#[derive(Clone)]
struct Resource {
    node: Node,
    names: Vec<String>,
}

impl Resource {
    fn new(node: Node) -> Resource {
        let name = node.get_path(&["metadata", "name"]).and_then(Node::text).unwrap_or_default();
        Resource { node, names: vec![name] }
    }
    fn kind(&self) -> String {
        self.node.get("kind").and_then(Node::text).unwrap_or_default()
    }
    fn name(&self) -> String {
        self.names.last().cloned().unwrap_or_default()
    }
    fn api_version(&self) -> String {
        self.node.get("apiVersion").and_then(Node::text).unwrap_or_default()
    }
    fn namespace(&self) -> Option<String> {
        self.node.get_path(&["metadata", "namespace"]).and_then(Node::text)
    }
    fn rename(&mut self, name: String, at: &At) {
        if let Some(meta) = self.node.ensure_map(&["metadata"], at) {
            meta.set("name", Node::str(&name, at));
        }
        self.names.push(name);
    }
}

/// The built documents of one tree and every file the build read.
pub struct Built {
    /// The folder given to the build, as shown.
    pub label: String,
    pub documents: Vec<Document>,
}

/// One kustomization being built, for messages.
struct Ctx<'a> {
    /// The folder of the tree's root kustomization, as the command to run names it.
    root: &'a str,
    /// Kustomization folders being built (a cycle is an error).
    stack: Vec<PathBuf>,
    /// Every file read.
    read: BTreeSet<PathBuf>,
}

impl Ctx<'_> {
    /// A refusal: what is not built, and the command that renders the tree.
    fn refuse(&self, at: &At, what: &str) -> Error {
        let problem = format!(
            "{what} — difyplan does not build that part of kustomize; check what the tree renders: kubectl \
             kustomize {} | difyplan check -",
            self.root
        );
        Error::line(at.0.clone(), at.1, problem)
    }
}

fn kustomization_in(dir: &Path) -> Option<PathBuf> {
    KUSTOMIZATION_NAMES.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// Parse the kustomization file at `file`.
fn parse(file: &Path) -> Result<Document, Error> {
    let shown = crate::safety::shown_path(file);
    let text = crate::read::read_text(file)?;
    let mut docs = yaml::parse_documents(&text, &shown)?;
    if docs.is_empty() {
        return Ok(Document::built(serde_yaml::Value::Mapping(Default::default()), shown, Default::default()));
    }
    Ok(docs.swap_remove(0))
}

/// The folders a kustomization names in `resources`/`bases`/`components` (no build).
fn named_folders(file: &Path) -> Vec<PathBuf> {
    let Ok(doc) = parse(file) else { return Vec::new() };
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for field in ["resources", "bases", "components"] {
        for item in doc.value.get(field).and_then(|v| v.as_sequence()).into_iter().flatten() {
            if let Some(s) = yaml::scalar_string(item) {
                let p = dir.join(&s);
                if p.is_dir() {
                    out.push(p.canonicalize().unwrap_or(p));
                }
            }
        }
    }
    out
}

/// The kustomize trees of the inputs, built: each root kustomization (one no other
/// kustomization found names as a resource) with the files its build read.
pub struct Trees {
    roots: Vec<(PathBuf, Built, BTreeSet<PathBuf>)>,
}

fn dir_of(i: &Input) -> PathBuf {
    let d = i.path.parent().map(Path::to_path_buf).unwrap_or_default();
    d.canonicalize().unwrap_or(d)
}

/// Build every kustomize tree among the manifests of `found` (before anything else takes them
/// in, so a tree difyplan cannot build is refused whoever reads its files).
pub fn trees(found: &[Input]) -> Result<Trees, Error> {
    let kustomizations: Vec<&Input> = found
        .iter()
        .filter(|i| i.kind == crate::read::inputs::Kind::Kubernetes)
        .filter(|i| i.path.as_os_str() != "-" && is_kustomization_name(&i.path))
        .filter(|i| !parse(&i.path).is_ok_and(|d| is_flux_object(&d)))
        .collect();
    let named: BTreeSet<PathBuf> = kustomizations.iter().flat_map(|k| named_folders(&k.path)).collect();
    let mut roots = Vec::new();
    for k in kustomizations.iter().filter(|k| !named.contains(&dir_of(k))) {
        // A Component is built only into the kustomizations that name it.
        if parse(&k.path)
            .is_ok_and(|d| yaml::get_string(&d.value, &PathSeg::keys(&["kind"])).as_deref() == Some("Component"))
        {
            continue;
        }
        let dir = k.path.parent().map(Path::to_path_buf).unwrap_or_default();
        let (b, files) = build(&dir)?;
        roots.push((canon(&k.path), b, files));
    }
    Ok(Trees { roots })
}

impl Trees {
    /// The trees whose root kustomization is among `manifests` (what no Helm release took in),
    /// and the manifests in no tree.
    pub fn split<'a>(self, manifests: &[&'a Input]) -> (Vec<Built>, Vec<&'a Input>) {
        let present: BTreeSet<PathBuf> = manifests.iter().map(|i| canon(&i.path)).collect();
        let mut built = Vec::new();
        let mut read = BTreeSet::new();
        for (root, b, files) in self.roots {
            if present.contains(&root) {
                read.extend(files);
                built.push(b);
            }
        }
        // A manifest no tree names is read as it is: `kubectl apply -f` may deploy it beside the
        // tree, and a patch file no tree uses holds no workload that runs.
        let rest = manifests
            .iter()
            .copied()
            .filter(|i| i.path.as_os_str() == "-" || !read.contains(&canon(&i.path)))
            .collect();
        (built, rest)
    }
}

/// Build the kustomization in `dir` as `kubectl kustomize dir` does; also the files it read.
pub fn build(dir: &Path) -> Result<(Built, BTreeSet<PathBuf>), Error> {
    let label = crate::safety::shown_path(dir);
    let shown_root = if label.is_empty() { ".".to_string() } else { label.clone() };
    let mut ctx = Ctx { root: &shown_root, stack: Vec::new(), read: BTreeSet::new() };
    let resources = build_dir(&lexical(dir), &mut ctx)?;
    let file = kustomization_in(dir).map(|f| crate::safety::shown_path(&lexical(&f))).unwrap_or_default();
    let documents = resources.iter().map(|r| r.node.document(file.clone())).collect();
    Ok((Built { label: format!("{shown_root} (kustomize)"), documents }, ctx.read))
}

fn canon(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

fn build_dir(dir: &Path, ctx: &mut Ctx) -> Result<Vec<Resource>, Error> {
    let mut resources = Vec::new();
    build_into(dir, ctx, &mut resources, false)?;
    Ok(resources)
}

/// Build the kustomization in `dir` onto `resources`: empty for a kustomization, the including
/// kustomization's resources so far for a Component (`component`), whose generators and
/// transformers act on them.
fn build_into(dir: &Path, ctx: &mut Ctx, resources: &mut Vec<Resource>, component: bool) -> Result<(), Error> {
    let shown_dir = crate::safety::shown_path(dir);
    let Some(file) = kustomization_in(dir) else {
        return Err(Error::file(
            shown_dir.clone(),
            "a folder named in `resources` has no kustomization.yaml — kustomize refuses it too; \
                name the files, or add a kustomization"
                .to_string(),
        ));
    };
    if ctx.stack.contains(&canon(dir)) {
        return Err(Error::file(
            shown_dir.clone(),
            "the kustomization names itself through its resources — a cycle".to_string(),
        ));
    }
    ctx.stack.push(canon(dir));
    ctx.read.insert(canon(&file));
    let doc = parse(&file)?;
    let k = Node::of_document(&doc, None, 0);
    let at = |keys: &[&str]| k.get_path(keys).map_or_else(|| (doc.file.clone(), 1), |n| n.at().clone());

    let is_component = k.get("kind").and_then(Node::text).as_deref() == Some("Component");
    if is_component != component {
        let what = if component {
            "a folder named in `components:` whose kustomization is not a Component — kustomize refuses it too"
        } else {
            "a Component named in `resources:` — kustomize refuses it too; name it in `components:`"
        };
        return Err(Error::line(at(&["kind"]).0.clone(), at(&["kind"]).1, what.to_string()));
    }
    if let Some(charts) = k.get("helmCharts") {
        let first = charts.items().first();
        let name = first.and_then(|c| c.get("name")).and_then(Node::text).unwrap_or_default();
        let repo = first.and_then(|c| c.get("repo")).and_then(Node::text).unwrap_or_default();
        let version = first.and_then(|c| c.get("version")).and_then(Node::text).unwrap_or_default();
        let whose = if repo.contains("langgenius.github.io/dify-helm") { " (LangGenius's chart)" } else { "" };
        return Err(Error::line(
            at(&["helmCharts"]).0.clone(),
            at(&["helmCharts"]).1,
            format!(
                "`helmCharts:` inflates the chart `{name}`{whose} from {} {} — difyplan does not render \
                charts inside kustomize; check what the tree renders: kubectl kustomize --enable-helm {} | \
                difyplan check -",
                if repo.is_empty() { "its repository" } else { &repo },
                if version.is_empty() { "(no version)".to_string() } else { format!("version {version}") },
                ctx.root
            ),
        ));
    }
    if let Node::Map(entries, _) = &k {
        for (key, v) in entries {
            if !APPLIED.contains(&key.as_str()) {
                return Err(ctx.refuse(v.at(), &format!("`{key}:`")));
            }
        }
    }

    // Resources, in order: files (every document) and folders (built).
    for field in ["resources", "bases"] {
        for item in k.get(field).map(Node::items).unwrap_or_default() {
            let entry = item.text().unwrap_or_default();
            if entry.contains("://") || entry.starts_with("github.com/") || entry.contains("?ref=") {
                return Err(ctx.refuse(item.at(), &format!("the remote resource `{entry}`")));
            }
            let path = lexical(&dir.join(&entry));
            // A base in a git submodule this clone has not checked out.
            if !path.is_file() && kustomization_in(&path).is_none() {
                let said_by = Source::file(item.at().0.clone(), item.at().1);
                let target = path.to_string_lossy();
                if let Some(refusal) =
                    crate::read::submodule::not_checked_out(Path::new(""), "the resource", &target, &said_by)
                {
                    return Err(refusal);
                }
            }
            if path.is_dir() {
                resources.extend(build_dir(&path, ctx)?);
            } else if path.is_file() {
                for d in read_docs(&path, ctx)? {
                    resources.push(Resource::new(Node::of_document(&d, None, 0)));
                }
            } else {
                return Err(Error::line(
                    item.at().0.clone(),
                    item.at().1,
                    format!("the resource `{entry}` is not in the tree — kustomize refuses it too; check the path"),
                ));
            }
        }
    }

    // Components, in order, each on the resources so far.
    for item in k.get("components").map(Node::items).unwrap_or_default() {
        let entry = item.text().unwrap_or_default();
        let path = lexical(&dir.join(&entry));
        if kustomization_in(&path).is_none() {
            let said_by = Source::file(item.at().0.clone(), item.at().1);
            let target = path.to_string_lossy();
            if let Some(refusal) =
                crate::read::submodule::not_checked_out(Path::new(""), "the component", &target, &said_by)
            {
                return Err(refusal);
            }
            return Err(ctx.refuse(item.at(), &format!("the component `{entry}` that is not a folder of the tree")));
        }
        build_into(&path, ctx, resources, true)?;
    }

    generators(&doc, resources, ctx)?;

    // Transformers, in kustomize's order.
    for item in k.get("patchesStrategicMerge").map(Node::items).unwrap_or_default() {
        let patches = patch_documents(item, dir, ctx)?;
        for p in patches {
            apply_strategic(&p, None, resources, ctx)?;
        }
    }
    for item in k.get("patches").map(Node::items).unwrap_or_default() {
        if item.get("options").is_some_and(|o| matches!(o, Node::Map(e, _) if !e.is_empty())) {
            return Err(ctx.refuse(item.at(), "a patch with `options`"));
        }
        let target = item.get("target");
        let source = item.get("path").or_else(|| item.get("patch")).unwrap_or(item);
        let patches = patch_documents(source, dir, ctx)?;
        for p in patches {
            if matches!(p, Node::Seq(..)) {
                let Some(target) = target else {
                    return Err(Error::line(
                        item.at().0.clone(),
                        item.at().1,
                        "a JSON 6902 patch without `target` — kustomize refuses it too; name the target".to_string(),
                    ));
                };
                apply_json(&p, target, resources, ctx)?;
            } else {
                apply_strategic(&p, target, resources, ctx)?;
            }
        }
    }
    if let Some(ns) = k.get("namespace").and_then(Node::text) {
        let at = at(&["namespace"]);
        for r in resources.iter_mut().filter(|r| !CLUSTER_SCOPED.contains(&r.kind().as_str())) {
            if let Some(meta) = r.node.ensure_map(&["metadata"], &at) {
                meta.set("namespace", Node::str(&ns, &at));
            }
        }
    }
    let prefix = k.get("namePrefix").and_then(Node::text).unwrap_or_default();
    let suffix = k.get("nameSuffix").and_then(Node::text).unwrap_or_default();
    if !prefix.is_empty() || !suffix.is_empty() {
        let at = at(&[if prefix.is_empty() { "nameSuffix" } else { "namePrefix" }]);
        rename_all(resources, &prefix, &suffix, &at);
    }
    labels(&k, resources);
    for item in k.get("patchesJson6902").map(Node::items).unwrap_or_default() {
        let target = item.get("target").ok_or_else(|| {
            Error::line(
                item.at().0.clone(),
                item.at().1,
                "a patchesJson6902 entry without `target` — kustomize refuses it too",
            )
        })?;
        let source = item.get("path").or_else(|| item.get("patch")).unwrap_or(item);
        for p in patch_documents(source, dir, ctx)? {
            apply_json(&p, target, resources, ctx)?;
        }
    }
    replicas(&k, resources)?;
    images(&k, resources);
    ctx.stack.pop();
    Ok(())
}

fn read_docs(path: &Path, ctx: &mut Ctx) -> Result<Vec<Document>, Error> {
    ctx.read.insert(canon(path));
    let text = crate::read::read_text(path)?;
    Ok(yaml::parse_documents(&text, &crate::safety::shown_path(path))?)
}

/// The documents of a patch: a file named by `source` (relative to `dir`), or inline text.
fn patch_documents(source: &Node, dir: &Path, ctx: &mut Ctx) -> Result<Vec<Node>, Error> {
    if let Node::Map(..) | Node::Seq(..) = source {
        return Err(ctx.refuse(source.at(), "a patch written as a mapping instead of a file or text"));
    }
    let text = source.text().unwrap_or_default();
    let path = lexical(&dir.join(text.trim()));
    if !text.contains('\n') && path.is_file() {
        return Ok(read_docs(&path, ctx)?.iter().map(|d| Node::of_document(d, None, 0)).collect());
    }
    let (file, line) = source.at().clone();
    let docs = yaml::parse_documents(&text, &file)
        .map_err(|e| Error::line(file.clone(), line, format!("an inline patch: {e}")))?;
    // A block scalar's text starts on the line after its key.
    Ok(docs.iter().map(|d| Node::of_document(d, Some(&file), line)).collect())
}

/// The resources a `target` selects (kind, name as kustomize's anchored regular expression,
/// namespace, group, version, label selector).
fn selected(target: &Node, resources: &[Resource], ctx: &Ctx) -> Result<Vec<usize>, Error> {
    let field = |k: &str| target.get(k).and_then(Node::text);
    if target.get("annotationSelector").is_some() {
        return Err(ctx.refuse(target.at(), "a patch target with `annotationSelector`"));
    }
    let name = match field("name") {
        Some(n) => Some(NamePattern::parse(&n).ok_or_else(|| {
            ctx.refuse(target.at(), &format!("the target name `{n}` (a regular expression beyond `.` and `*`)"))
        })?),
        None => None,
    };
    let labels = match field("labelSelector") {
        Some(s) => Some(label_selector(&s).ok_or_else(|| {
            ctx.refuse(target.at(), &format!("the label selector `{s}` (only `key=value` terms are built)"))
        })?),
        None => None,
    };
    let mut out = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let api = r.api_version();
        let (group, version) = api.rsplit_once('/').unwrap_or(("", &api));
        let ok = field("kind").is_none_or(|k| k == r.kind())
            && field("group").is_none_or(|g| g == group)
            && field("version").is_none_or(|v| v == version)
            && field("namespace").is_none_or(|n| Some(n) == r.namespace())
            // A target selects by the current name or the original one, not one a base gave it
            // in between (a patch without a target matches any of them).
            && name.as_ref().is_none_or(|p| [r.names.first(), r.names.last()].into_iter().flatten().any(|n| p.matches(n)))
            && labels.as_ref().is_none_or(|want| {
                want.iter().all(|(k, v)| {
                    r.node.get_path(&["metadata", "labels", k]).and_then(Node::text).as_deref() == Some(v.as_str())
                })
            });
        if ok {
            out.push(i);
        }
    }
    Ok(out)
}

/// `key=value[,key=value]` (also `==`); `None` for set-based or negated terms.
fn label_selector(s: &str) -> Option<Vec<(String, String)>> {
    s.split(',')
        .map(|term| {
            let (k, v) = term.split_once("==").or_else(|| term.split_once('='))?;
            (!k.ends_with('!') && !k.contains(' ')).then(|| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// A target name: a literal or a pattern of `.` (any character) and `*` (repeat), anchored, as
/// kustomize matches it. Other regular expression syntax is not built.
struct NamePattern(Vec<(Option<char>, bool)>);

impl NamePattern {
    fn parse(s: &str) -> Option<NamePattern> {
        let s = s.strip_prefix('^').unwrap_or(s);
        let s = s.strip_suffix('$').unwrap_or(s);
        let mut items: Vec<(Option<char>, bool)> = Vec::new();
        for c in s.chars() {
            match c {
                '*' => items.last_mut()?.1 = true,
                '.' => items.push((None, false)),
                '+' | '?' | '|' | '(' | ')' | '[' | ']' | '{' | '}' | '\\' | '^' | '$' => return None,
                c => items.push((Some(c), false)),
            }
        }
        Some(NamePattern(items))
    }

    fn matches(&self, name: &str) -> bool {
        fn go(p: &[(Option<char>, bool)], s: &[char]) -> bool {
            let Some(((c, star), rest)) = p.split_first() else { return s.is_empty() };
            let one = |x: &char| c.is_none_or(|c| c == *x);
            if *star {
                let mut i = 0;
                loop {
                    if go(rest, &s[i..]) {
                        return true;
                    }
                    if i < s.len() && one(&s[i]) {
                        i += 1;
                    } else {
                        return false;
                    }
                }
            }
            s.first().is_some_and(one) && go(rest, &s[1..])
        }
        let chars: Vec<char> = name.chars().collect();
        go(&self.0, &chars)
    }
}

/// A strategic-merge patch: on the `target`'s resources, else on the resource of the patch's
/// own kind and name.
fn apply_strategic(patch: &Node, target: Option<&Node>, resources: &mut Vec<Resource>, ctx: &Ctx) -> Result<(), Error> {
    let kind = patch.get("kind").and_then(Node::text);
    let name = patch.get_path(&["metadata", "name"]).and_then(Node::text);
    let namespace = patch.get_path(&["metadata", "namespace"]).and_then(Node::text);
    let hits = match target {
        Some(t) => selected(t, resources, ctx)?,
        None => resources
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                kind.as_ref().is_some_and(|k| *k == r.kind())
                    && name.as_ref().is_some_and(|n| r.names.contains(n))
                    && namespace.as_ref().is_none_or(|n| Some(n.clone()) == r.namespace())
            })
            .map(|(i, _)| i)
            .collect(),
    };
    if hits.is_empty() && target.is_none() {
        let (file, line) = patch.at();
        return Err(Error::line(
            file.clone(),
            *line,
            format!(
                "the patch for {} `{}` matches no resource of the build — kustomize refuses it too; \
                check its kind and name",
                kind.unwrap_or_default(),
                name.unwrap_or_default()
            ),
        ));
    }
    // The patch's identity is not merged: the target keeps its own.
    let mut body = patch.clone();
    body.remove("apiVersion");
    body.remove("kind");
    if let Some(meta) = body.get_mut("metadata") {
        meta.remove("name");
        meta.remove("namespace");
    }
    gitops_patched(&hits, resources, patch, ctx)?;
    // `$patch: delete` on the whole object removes the resource from the build.
    if patch.get("$patch").and_then(Node::text).as_deref() == Some("delete") {
        let mut n = 0;
        resources.retain(|_| {
            n += 1;
            !hits.contains(&(n - 1))
        });
        return Ok(());
    }
    for i in hits {
        patch::strategic_merge(&mut resources[i].node, &body, "", false)
            .map_err(|why| ctx.refuse(patch.at(), &format!("the strategic-merge patch uses {why}")))?;
    }
    Ok(())
}

/// A patch of a Flux HelmRelease or an Argo CD Application: their values are read from their own
/// files, before any patch, so a patched one is refused with the command that renders it.
fn gitops_patched(hits: &[usize], resources: &[Resource], patch: &Node, ctx: &Ctx) -> Result<(), Error> {
    match hits.iter().map(|&i| &resources[i]).find(|r| matches!(r.kind().as_str(), "HelmRelease" | "Application")) {
        Some(r) => Err(ctx.refuse(
            patch.at(),
            &format!(
                "a patch of the {} `{}` (its values are read from its own file, before patches)",
                r.kind(),
                r.name()
            ),
        )),
        None => Ok(()),
    }
}

fn apply_json(ops: &Node, target: &Node, resources: &mut [Resource], ctx: &Ctx) -> Result<(), Error> {
    let hits = selected(target, resources, ctx)?;
    gitops_patched(&hits, resources, ops, ctx)?;
    for i in hits {
        patch::json6902(&mut resources[i].node, ops).map_err(|why| {
            let (file, line) = ops.at();
            let problem = format!(
                "the JSON 6902 patch on {} `{}`: {why} — kustomize refuses it too",
                resources[i].kind(),
                resources[i].name()
            );
            Error::line(file.clone(), *line, problem)
        })?;
    }
    Ok(())
}

/// `configMapGenerator` and `secretGenerator`: new ConfigMaps, or `behavior: merge|replace`
/// on one the resources hold.
fn generators(doc: &Document, resources: &mut Vec<Resource>, ctx: &mut Ctx) -> Result<(), Error> {
    let generated = super::generator::generated(doc)?;
    for g in generated {
        let kind = if g.secret { "Secret" } else { "ConfigMap" };
        let at = (doc.file.clone(), g.line);
        for e in &g.envs {
            ctx.read.insert(canon(e));
        }
        let mut data = Vec::new();
        if !g.secret {
            for (key, v) in &g.data {
                let vat = v.source.location().map_or_else(|| at.clone(), |(p, l)| (p.to_string(), l));
                data.push((key.clone(), Node::str(&v.value, &vat)));
            }
            for (key, path) in &g.files {
                ctx.read.insert(canon(path));
                let text = crate::read::read_text(path)?;
                data.push((key.clone(), Node::str(&text, &(crate::safety::shown_path(path), 1))));
            }
        }
        let existing = resources.iter_mut().find(|r| r.kind() == kind && r.names.contains(&g.name));
        match (g.behavior.as_deref(), existing) {
            (Some("merge"), Some(r)) => {
                let map = r.node.ensure_map(&["data"], &at).ok_or_else(|| ctx.refuse(&at, "a generator's merge"))?;
                for (key, v) in data {
                    map.set(&key, v);
                }
            }
            (Some("replace"), Some(r)) => r.node.set("data", Node::Map(data, at.clone())),
            (Some(b @ ("merge" | "replace")), None) => {
                return Err(Error::line(
                    at.0.clone(),
                    at.1,
                    format!(
                        "`behavior: {b}` on the {kind} `{}` that no resource of the build holds — kustomize \
                        refuses it too",
                        g.name
                    ),
                ));
            }
            _ => {
                let mut meta = vec![("name".to_string(), Node::str(&g.name, &at))];
                if let Some(ns) = &g.namespace {
                    meta.push(("namespace".to_string(), Node::str(ns, &at)));
                }
                let node = Node::Map(
                    vec![
                        ("apiVersion".into(), Node::str("v1", &at)),
                        ("kind".into(), Node::str(kind, &at)),
                        ("metadata".into(), Node::Map(meta, at.clone())),
                        ("data".into(), Node::Map(data, at.clone())),
                    ],
                    at.clone(),
                );
                resources.push(Resource::new(node));
            }
        }
    }
    Ok(())
}

/// `namePrefix`/`nameSuffix`, and the references to the renamed ConfigMaps, Secrets, workloads
/// and Services rewritten as kustomize's name references are.
fn rename_all(resources: &mut [Resource], prefix: &str, suffix: &str, at: &At) {
    let mut renamed: BTreeMap<(String, String), String> = BTreeMap::new();
    for r in resources.iter_mut() {
        let kind = r.kind();
        if NOT_RENAMED.contains(&kind.as_str()) {
            continue;
        }
        let old = r.name();
        let new = format!("{prefix}{old}{suffix}");
        renamed.insert((kind, old), new.clone());
        r.rename(new, at);
    }
    let re = |kind: &str, node: Option<&mut Node>| {
        if let Some(n) = node
            && let Some(old) = n.text()
            && let Some(new) = renamed.get(&(kind.to_string(), old))
        {
            *n = Node::str(new, n.at());
        }
    };
    for r in resources.iter_mut() {
        let kind = r.kind();
        if kind == "HorizontalPodAutoscaler" {
            let target = r.node.get_path(&["spec", "scaleTargetRef", "kind"]).and_then(Node::text).unwrap_or_default();
            re(&target, r.node.get_path_mut(&["spec", "scaleTargetRef", "name"]));
        }
        if kind == "StatefulSet" {
            re("Service", r.node.get_path_mut(&["spec", "serviceName"]));
        }
        r.node.for_each_map(&mut |m| {
            // A pod spec: its containers' references and its volumes.
            if m.get("containers").is_none() {
                return;
            }
            re("ServiceAccount", m.get_mut("serviceAccountName"));
            for field in ["containers", "initContainers"] {
                if let Some(Node::Seq(cs, _)) = m.get_mut(field) {
                    for c in cs {
                        if let Some(Node::Seq(items, _)) = c.get_mut("envFrom") {
                            for e in items {
                                re("ConfigMap", e.get_path_mut(&["configMapRef", "name"]));
                                re("Secret", e.get_path_mut(&["secretRef", "name"]));
                            }
                        }
                        if let Some(Node::Seq(items, _)) = c.get_mut("env") {
                            for e in items {
                                re("ConfigMap", e.get_path_mut(&["valueFrom", "configMapKeyRef", "name"]));
                                re("Secret", e.get_path_mut(&["valueFrom", "secretKeyRef", "name"]));
                            }
                        }
                    }
                }
            }
            if let Some(Node::Seq(vols, _)) = m.get_mut("volumes") {
                for v in vols {
                    re("ConfigMap", v.get_path_mut(&["configMap", "name"]));
                    re("Secret", v.get_path_mut(&["secret", "secretName"]));
                    re("PersistentVolumeClaim", v.get_path_mut(&["persistentVolumeClaim", "claimName"]));
                    if let Some(Node::Seq(sources, _)) = v.get_path_mut(&["projected", "sources"]) {
                        for s in sources {
                            re("ConfigMap", s.get_path_mut(&["configMap", "name"]));
                            re("Secret", s.get_path_mut(&["secret", "name"]));
                        }
                    }
                }
            }
            if let Some(Node::Seq(secrets, _)) = m.get_mut("imagePullSecrets") {
                for s in secrets {
                    re("Secret", s.get_mut("name"));
                }
            }
        });
    }
}

/// Kinds whose selector and pod template `commonLabels` (and `labels` with `includeSelectors`)
/// extend.
const WORKLOADS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"];

/// `commonLabels`, and `labels` (with `includeSelectors`/`includeTemplates`): on every
/// resource's labels, and where they say, on selectors and pod templates.
fn labels(k: &Node, resources: &mut [Resource]) {
    // (labels, on selectors, on pod templates)
    type LabelSet = (Vec<(String, Node)>, bool, bool);
    let mut sets: Vec<LabelSet> = Vec::new();
    if let Some(Node::Map(pairs, _)) = k.get("commonLabels") {
        sets.push((pairs.clone(), true, true));
    }
    for l in k.get("labels").map(Node::items).unwrap_or_default() {
        let Some(Node::Map(pairs, _)) = l.get("pairs") else { continue };
        let selectors = l.get("includeSelectors").and_then(Node::text).as_deref() == Some("true");
        let templates = selectors || l.get("includeTemplates").and_then(Node::text).as_deref() == Some("true");
        sets.push((pairs.clone(), selectors, templates));
    }
    for (pairs, selectors, templates) in sets {
        for r in resources.iter_mut() {
            let kind = r.kind();
            let mut places: Vec<Vec<&str>> = vec![vec!["metadata", "labels"]];
            if selectors && kind == "Service" {
                places.push(vec!["spec", "selector"]);
            }
            if WORKLOADS.contains(&kind.as_str()) {
                if selectors {
                    places.push(vec!["spec", "selector", "matchLabels"]);
                }
                if templates {
                    places.push(vec!["spec", "template", "metadata", "labels"]);
                }
            }
            for place in places {
                let at = r.node.at().clone();
                if let Some(m) = r.node.ensure_map(&place, &at) {
                    for (key, v) in &pairs {
                        m.set(key, v.clone());
                    }
                }
            }
        }
    }
}

/// `replicas:`: the count of each named Deployment, StatefulSet, ReplicaSet or
/// ReplicationController.
fn replicas(k: &Node, resources: &mut [Resource]) -> Result<(), Error> {
    for item in k.get("replicas").map(Node::items).unwrap_or_default() {
        let name = item.get("name").and_then(Node::text).unwrap_or_default();
        let Some(count) = item.get("count") else { continue };
        let mut hit = false;
        for r in resources.iter_mut().filter(|r| {
            matches!(r.kind().as_str(), "Deployment" | "StatefulSet" | "ReplicaSet" | "ReplicationController")
                && r.names.contains(&name)
        }) {
            let at = count.at().clone();
            if let Some(spec) = r.node.ensure_map(&["spec"], &at) {
                spec.set("replicas", count.clone());
                hit = true;
            }
        }
        if !hit {
            return Err(Error::line(
                item.at().0.clone(),
                item.at().1,
                format!(
                    "`replicas:` names `{name}`, which no Deployment or StatefulSet of the build is — check the name"
                ),
            ));
        }
    }
    Ok(())
}

/// The name of an image without its tag and digest.
fn image_name(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

/// `images:`: `newName`, `newTag` and `digest` of every container (and init container) whose
/// image has the entry's name.
fn images(k: &Node, resources: &mut [Resource]) {
    for item in k.get("images").map(Node::items).unwrap_or_default() {
        let Some(name) = item.get("name").and_then(Node::text) else { continue };
        let new_name = item.get("newName").and_then(Node::text);
        let new_tag = item.get("newTag").and_then(Node::text);
        let digest = item.get("digest").and_then(Node::text);
        let at = item.at().clone();
        for r in resources.iter_mut() {
            r.node.for_each_map(&mut |m| {
                for field in ["containers", "initContainers"] {
                    let Some(Node::Seq(cs, _)) = m.get_mut(field) else { continue };
                    for c in cs {
                        let Some(image) = c.get("image").and_then(Node::text) else { continue };
                        if image_name(&image) != name {
                            continue;
                        }
                        let base = new_name.clone().unwrap_or_else(|| name.clone());
                        let rest = &image[image_name(&image).len()..];
                        let new = match (&digest, &new_tag) {
                            (Some(d), _) => format!("{base}@{d}"),
                            (None, Some(t)) => format!("{base}:{t}"),
                            (None, None) => format!("{base}{rest}"),
                        };
                        c.set("image", Node::str(&new, &at));
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_patterns_are_anchored() {
        let p = NamePattern::parse("dify-.*").unwrap();
        assert!(p.matches("dify-api"));
        assert!(!p.matches("my-dify-api"));
        assert!(NamePattern::parse("dify-api").unwrap().matches("dify-api"));
        assert!(!NamePattern::parse("dify-api").unwrap().matches("dify-api2"));
        assert!(NamePattern::parse("(api|worker)").is_none());
    }

    #[test]
    fn image_names_drop_tag_and_digest() {
        assert_eq!(image_name("langgenius/dify-api:1.16.1"), "langgenius/dify-api");
        assert_eq!(image_name("registry:5000/dify-api"), "registry:5000/dify-api");
        assert_eq!(image_name("registry:5000/dify-api:1@sha256:ab"), "registry:5000/dify-api");
    }

    #[test]
    fn paths_are_cleaned() {
        assert_eq!(lexical(Path::new("a/overlays/prod/../../base/./x.yaml")), PathBuf::from("a/base/x.yaml"));
        assert_eq!(lexical(Path::new("../base")), PathBuf::from("../base"));
    }
}
