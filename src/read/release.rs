//! Helm releases as teams commit them: values files (alone, or layered in order with
//! `--values`), a `Chart.yaml` beside them, Flux `HelmRelease`s and Argo CD `Application`s with the
//! values they carry or point to, and autoscalers committed beside the values. Each becomes one
//! [`Release`] for the Helm reader; what names the chart is kept with it.

use super::helm::{Chart, ChartRef, HELM_TEMPLATE_ADVICE, Hpa, Layer, Release, values_document};
use super::inputs::{Input, Kind};
use super::yaml::{self, Document, PathSeg};
use crate::deployment::{Source, Valued};
use crate::read::error::Error;
use serde_yaml::Value;
use std::path::{Path, PathBuf};

/// The releases found, with the indices of the inputs they took in (values files, Chart.yaml,
/// GitOps files, ConfigMaps of values, autoscalers), so nothing is read twice.
pub struct Gathered {
    pub releases: Vec<(String, Release)>,
    pub used: Vec<usize>,
}

/// `--chart NAME[@VERSION]`: `borispolonsky` (or `BorisPolonsky/dify-helm`) or `douban` (or `douban/charts`).
pub fn parse_chart_flag(s: &str) -> Result<(Chart, Option<String>), Error> {
    let (name, version) = match s.split_once('@') {
        Some((n, v)) => (n, Some(v.trim().to_string()).filter(|v| !v.is_empty())),
        None => (s, None),
    };
    match name.trim().to_ascii_lowercase().as_str() {
        "borispolonsky" | "borispolonsky/dify-helm" | "dify-helm" => Ok((Chart::DifyHelm, version)),
        "douban" | "douban/charts" => Ok((Chart::Douban, version)),
        other => Err(Error::at(
            Source::Flag { flag: "--chart".into() },
            format!(
                "`{other}` is not a chart whose values difyplan reads: it reads borispolonsky \
                 (BorisPolonsky/dify-helm) and douban (douban/charts) — for another chart, {HELM_TEMPLATE_ADVICE}"
            ),
        )),
    }
}

fn p(keys: &[&str]) -> Vec<PathSeg> {
    PathSeg::keys(keys)
}

fn at(doc: &Document, path: &[PathSeg]) -> Source {
    Source::file(doc.file.clone(), doc.line_of(path).unwrap_or_else(|| doc.start().line))
}

/// The chart a repository and chart name mean: `Ok(None)` when they do not settle it (a chart
/// called `dify` from a repository not named), an error for a chart difyplan does not read.
fn identify(name: Option<&str>, repo: Option<&str>, said_by: &Source) -> Result<Option<Chart>, Error> {
    let repo = repo.unwrap_or_default().to_ascii_lowercase();
    if repo.contains("langgenius") {
        return Err(langgenius_refusal(said_by, name.unwrap_or("dify"), None, &[]));
    }
    if repo.contains("borispolonsky") {
        return Ok(Some(Chart::DifyHelm));
    }
    if repo.contains("douban") {
        return Ok(Some(Chart::Douban));
    }
    match name {
        Some(n) if n.trim() != "dify" && !n.trim().ends_with("/dify") => Err(Error::at(
            said_by.clone(),
            format!(
                "chart `{n}` is not one whose values difyplan reads (BorisPolonsky/dify-helm, \
                douban/charts) — {HELM_TEMPLATE_ADVICE}"
            ),
        )),
        _ => Ok(None),
    }
}

/// What a `Chart.yaml` says: BorisPolonsky's (`postgresql.enabled`, weaviate) or douban's
/// (`postgresql.embedded`) `dify` chart, with its version; another chart is refused.
fn chart_yaml(path: &Path, text: &str) -> Result<ChartRef, Error> {
    let file = path.display().to_string();
    let docs = yaml::parse_documents(text, &file)?;
    let doc =
        docs.first().ok_or_else(|| Error::line(file.clone(), 1, "an empty Chart.yaml — check the chart folder"))?;
    let name = yaml::get_string(&doc.value, &p(&["name"])).unwrap_or_default();
    let said_by = at(doc, &p(&["name"]));
    let conditions: Vec<String> = doc
        .get(&p(&["dependencies"]))
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|d| yaml::get_string(d, &p(&["condition"])))
        .collect();
    let home =
        ["home", "description"].iter().filter_map(|k| yaml::get_string(&doc.value, &p(&[k]))).collect::<String>();
    let chart = if name != "dify" {
        None
    } else if conditions.iter().any(|c| c == "postgresql.embedded") {
        Some(Chart::Douban)
    } else if conditions.iter().any(|c| c == "postgresql.enabled" || c == "weaviate.enabled")
        || home.contains("Instant cloud deployment")
    {
        Some(Chart::DifyHelm)
    } else {
        None
    };
    let Some(chart) = chart else {
        return Err(Error::at(
            said_by.clone(),
            format!(
                "chart `{name}` is not BorisPolonsky/dify-helm's or douban/charts' `dify` \
                chart, whose values difyplan reads — {HELM_TEMPLATE_ADVICE}"
            ),
        ));
    };
    let mut version = yaml::get_string(&doc.value, &p(&["version"]));
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    // A vendored chart: its templates say which released version it is, or that it is a fork.
    if let Some(digest) = super::chart_identity::templates_digest(&dir)? {
        match super::chart_identity::identify(chart, version.as_deref(), &digest) {
            super::chart_identity::Identity::Known(v) => version = Some(v.to_string()),
            super::chart_identity::Identity::Fork => {
                let shown = crate::safety::shown_path(&dir);
                return Err(Error::at(
                    said_by.clone(),
                    format!(
                        "`{shown}` is a fork of {}'s `dify` chart: its templates/ differ from every released \
                        version, so how it renders replicas, strategies and pools is not known — check what it \
                        renders: `helm template dify {shown} -f <your values> | difyplan check -`",
                        chart.name()
                    ),
                ));
            }
        }
    }
    Ok(ChartRef { chart, version, said_by, dir: Some(dir) })
}

/// A chart a GitOps object takes from a folder of its git repository (an Argo CD source's `path`,
/// a Flux chart from a GitRepository), looked up from the object's folder and the folders above
/// it: read like any chart kept in the repository. In a git submodule that is not checked out, it
/// is refused with the command that checks it out.
fn local_chart(dir: &Path, path: &str, said_by: &Source) -> Result<Option<ChartRef>, Error> {
    let rel = path.trim_start_matches("./");
    if let Some(found) = dir.ancestors().take(6).map(|d| d.join(rel)).find(|c| c.join("Chart.yaml").is_file()) {
        let file = found.join("Chart.yaml");
        let text = super::read_text(&file)?;
        return chart_yaml(&file, &text).map(Some);
    }
    match super::submodule::not_checked_out(dir, "the chart", path, said_by) {
        Some(refusal) => Err(refusal),
        None => Ok(None),
    }
}

/// A values string (Argo CD `helm.values`, a ConfigMap's data) as a layer, lines counted in the file.
fn string_layer(doc: &Document, path: &[PathSeg]) -> Result<Option<Layer>, Error> {
    let Some(text) = doc.get(path).and_then(yaml::scalar_string) else { return Ok(None) };
    let key_line = doc.line_of(path).unwrap_or(1);
    // A block scalar starts on the line after its key.
    let first = doc.value_position_of(path).map_or(key_line, |p| p.line);
    let offset = if first > key_line { first - 1 } else { key_line - 1 };
    let name = doc.file.clone();
    let docs = yaml::parse_documents(&text, &name).map_err(|mut e| {
        e.message = format!("{} (inside {})", e.message, yaml::path_string(path));
        e
    })?;
    let Some(inner) = docs.into_iter().next() else { return Ok(None) };
    if !inner.value.is_mapping() {
        return Err(Error::at(
            at(doc, path).clone(),
            "the values must be a mapping — write `key: value` lines".to_string(),
        ));
    }
    Ok(Some(Layer { file: name, doc: inner, prefix: Vec::new(), line_offset: offset }))
}

fn embedded_layer(doc: &Document, path: &[PathSeg]) -> Option<Layer> {
    doc.get(path).filter(|v| v.is_mapping()).map(|_| Layer {
        file: doc.file.clone(),
        doc: doc.clone(),
        prefix: path.to_vec(),
        line_offset: 0,
    })
}

/// A release a command installs: its label, the release, the folder of the file, and the values
/// inputs it took in.
type CommandRelease = (String, Release, PathBuf, Vec<usize>);

/// A release for each `helm upgrade|install` or `helm_release` of a file: the chart it names (a
/// vendored folder's Chart.yaml, or a repository chart by name) and its values files in order,
/// each found beside the file or in a folder above it. Returns the values inputs it took in.
fn releases_of_commands(input: &Input, values_inputs: &[(usize, &Input)]) -> Result<Vec<CommandRelease>, Error> {
    let text = input.text()?;
    let file = crate::safety::shown_path(&input.path);
    let dir = input.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut installs = super::deploy_cmd::helm_commands(&text, &file, &dir);
    installs.extend(super::deploy_cmd::terraform_releases(&text, &file, &dir));
    // A path as written, looked up from the file's folder and the folders above it (a CI file
    // runs from the repository's root).
    let resolve = |p: &str| -> Option<PathBuf> {
        let p = p.trim_start_matches("./");
        dir.ancestors().take(5).map(|d| d.join(p)).find(|c| c.exists())
    };
    let mut out = Vec::new();
    for install in installs {
        let said = |what: &str| Error::at(install.at.clone(), what);
        let lower = format!("{} {}", install.chart, install.repo.clone().unwrap_or_default()).to_ascii_lowercase();
        if lower.contains("langgenius") {
            return Err(langgenius_refusal(&install.at, &install.chart, install.version.as_deref(), &install.values));
        }
        // A chart pinned as a git submodule that this clone has not checked out.
        if resolve(&install.chart).filter(|p| p.join("Chart.yaml").is_file()).is_none()
            && let Some(refusal) = super::submodule::not_checked_out(&dir, "the chart", &install.chart, &install.at)
        {
            return Err(refusal);
        }
        let chart = match resolve(&install.chart).filter(|p| p.join("Chart.yaml").is_file()) {
            Some(chart_dir) => {
                let chart_file = chart_dir.join("Chart.yaml");
                let text = super::read_text(&chart_file)?;
                Some(chart_yaml(&chart_file, &text)?)
            }
            None if install.chart.contains('/')
                && !install.chart.starts_with('.')
                && !install.chart.contains("://") =>
            {
                // `REPO/CHART`: the repository alias says nothing about whose chart it is.
                let name = install.chart.rsplit('/').next().unwrap_or_default();
                identify(Some(name), install.repo.as_deref(), &install.at)?.map(|chart| ChartRef {
                    chart,
                    version: install.version.clone(),
                    said_by: install.at.clone(),
                    dir: None,
                })
            }
            None => {
                return Err(said(&format!(
                    "the chart `{}` of this helm command is not in the files — check it from the chart's folder, or \
                        {HELM_TEMPLATE_ADVICE}",
                    install.chart
                )));
            }
        };
        let mut layers = Vec::new();
        let mut taken = Vec::new();
        for v in &install.values {
            if v.contains('$') {
                return Err(said(&format!(
                    "values file `{v}` is named through a variable — pass the values files in order with --values"
                )));
            }
            let Some(path) = resolve(v).filter(|p| p.is_file()) else {
                return Err(said(&format!("values file `{v}` of this helm command is not in the files — pass it")));
            };
            let text = super::read_text(&path)?;
            layers.push(Layer::file(values_document(&text, &crate::safety::shown_path(&path))?));
            taken.extend(values_inputs.iter().filter(|(_, i)| same_file(&i.path, &path)).map(|(n, _)| *n));
        }
        // The chart's own values.yaml is what Helm merges the layers over: not a release of its own.
        if let Some(dir) = chart.as_ref().and_then(|c| c.dir.as_ref()) {
            taken.extend(
                values_inputs.iter().filter(|(_, i)| same_file(&i.path, &dir.join("values.yaml"))).map(|(n, _)| *n),
            );
        }
        let label = format!("{} (helm {})", install.at, install.chart);
        out.push((label, Release { layers, chart, hpas: Vec::new() }, dir.clone(), taken));
    }
    Ok(out)
}

/// LangGenius's chart (langgenius.github.io/dify-helm, Dify's enterprise edition) is not one
/// whose values difyplan reads: the refusal names it and the command that renders it for `check -`.
fn langgenius_refusal(at: &Source, chart: &str, version: Option<&str>, values: &[String]) -> Error {
    let version = version.map(|v| format!(" --version {v}")).unwrap_or_default();
    let files: String =
        if values.is_empty() { " -f values.yaml".into() } else { values.iter().map(|v| format!(" -f {v}")).collect() };
    let problem = format!(
        "chart `{chart}` is LangGenius's `dify` chart (https://langgenius.github.io/dify-helm, Dify's enterprise \
            edition), whose values difyplan does not read — check what it renders: `helm repo add dify \
            https://langgenius.github.io/dify-helm && helm template dify dify/dify{version}{files} | difyplan check -`"
    );
    Error::at(at.clone(), problem)
}

/// The file a Kustomization's `configMapGenerator` named `name` puts under `key`, if one does.
fn generated_values_file<'a>(
    docs: impl Iterator<Item = &'a Document>,
    name: &str,
    key: &str,
) -> Result<Option<PathBuf>, Error> {
    for d in docs.filter(|d| super::kustomize::is_kustomization(d)) {
        for g in super::kustomize::generated(d)? {
            if g.name == name
                && let Some((_, path)) = g.files.into_iter().find(|(k, _)| k == key)
            {
                return Ok(Some(path));
            }
        }
    }
    Ok(None)
}

fn kind(doc: &Document) -> (String, String) {
    (
        yaml::get_string(&doc.value, &p(&["apiVersion"])).unwrap_or_default(),
        yaml::get_string(&doc.value, &p(&["kind"])).unwrap_or_default(),
    )
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || (a.canonicalize().ok().is_some() && a.canonicalize().ok() == b.canonicalize().ok())
}

/// Gather the releases among `found`, `--values` files (one release, in order) and `--chart`.
pub fn gather(found: &[Input], values: &[PathBuf], chart_flag: Option<&str>) -> Result<Gathered, Error> {
    let flag = chart_flag.map(parse_chart_flag).transpose()?;
    let manifests = Manifests::parse(found)?;
    let values_inputs: Vec<(usize, &Input)> =
        found.iter().enumerate().filter(|(_, i)| i.kind == Kind::HelmValues).collect();
    let mut taken = Taken::default();
    let mut releases = gitops_releases(found, &manifests, &values_inputs, &mut taken)?;
    take_data_files(found, &manifests, &mut taken)?;
    // Deploy scripts, Makefiles, CI files and Terraform: the chart and the layers they install.
    for (i, input) in found.iter().enumerate().filter(|(_, i)| i.kind == Kind::DeployCommand) {
        taken.used.push(i);
        for (label, release, dir, values_taken) in releases_of_commands(input, &values_inputs)? {
            taken.values_used.extend(values_taken);
            releases.push((label, release, dir));
        }
    }
    releases.extend(values_releases(values, &values_inputs, &mut taken)?);
    taken.used.append(&mut taken.values_used);
    name_charts(found, &mut releases, &mut taken.used, flag)?;
    attach_autoscalers(found, &manifests, &mut releases, &mut taken.used)?;
    Ok(Gathered { releases: releases.into_iter().map(|(l, r, _)| (l, r)).collect(), used: taken.used })
}

/// A release with its label and the folder its chart and layers are looked up from.
type Found = (String, Release, PathBuf);

/// The Kubernetes inputs, parsed once, by input index.
struct Manifests(Vec<(usize, Vec<Document>)>);

impl Manifests {
    fn parse(found: &[Input]) -> Result<Manifests, Error> {
        let mut out = Vec::new();
        for (i, input) in found.iter().enumerate().filter(|(_, i)| i.kind == Kind::Kubernetes) {
            let docs = yaml::parse_documents(&input.text()?, &input.path.display().to_string())?;
            out.push((i, docs));
        }
        Ok(Manifests(out))
    }

    fn docs(&self) -> impl Iterator<Item = &Document> {
        self.0.iter().flat_map(|(_, d)| d.iter())
    }

    fn named(&self, kind_name: &str, name: &str) -> Option<&Document> {
        self.docs().find(|d| {
            kind(d).1 == kind_name && yaml::get_string(&d.value, &p(&["metadata", "name"])).as_deref() == Some(name)
        })
    }

    fn helm_repo_url(&self, name: &str) -> Option<String> {
        self.named("HelmRepository", name).and_then(|d| yaml::get_string(&d.value, &p(&["spec", "url"])))
    }
}

/// Which inputs the releases took in, so that nothing is read twice.
#[derive(Default)]
struct Taken {
    /// Inputs taken in (GitOps files, deploy scripts, Chart.yaml, data files, autoscalers).
    used: Vec<usize>,
    /// Values inputs a release layered; the rest are releases of their own.
    values_used: Vec<usize>,
    /// ConfigMaps that carry a HelmRelease's values.
    config_maps_used: Vec<String>,
    /// A Kustomization generated a HelmRelease's values: its file is part of the release.
    generators_used: bool,
}

impl Taken {
    /// The chart's own values.yaml is what Helm merges the values over: not a release of its own.
    fn chart_values(&mut self, chart: Option<&ChartRef>, values_inputs: &[(usize, &Input)]) {
        if let Some(d) = chart.and_then(|c| c.dir.as_ref()) {
            let own = d.join("values.yaml");
            self.values_used.extend(values_inputs.iter().filter(|(_, i)| same_file(&i.path, &own)).map(|(n, _)| *n));
        }
    }

    fn values_file(&mut self, path: &Path, values_inputs: &[(usize, &Input)]) {
        self.values_used.extend(values_inputs.iter().filter(|(_, i)| same_file(&i.path, path)).map(|(n, _)| *n));
    }
}

/// The releases of Flux `HelmRelease`s and Argo CD `Application`s; their files are taken in.
fn gitops_releases(
    found: &[Input],
    manifests: &Manifests,
    values_inputs: &[(usize, &Input)],
    taken: &mut Taken,
) -> Result<Vec<Found>, Error> {
    let mut releases = Vec::new();
    for (idx, docs) in &manifests.0 {
        let dir = found[*idx].path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut gitops = false;
        for doc in docs {
            let (api, k) = kind(doc);
            let release = if k == "HelmRelease" && api.starts_with("helm.toolkit.fluxcd.io") {
                Some(flux_release(doc, &dir, manifests, values_inputs, taken)?)
            } else if k == "Application" && api.starts_with("argoproj.io") {
                argo_release(doc, &dir, found, values_inputs, taken)?
            } else {
                None
            };
            if let Some((label, release)) = release {
                gitops = true;
                releases.push((label, release, dir.clone()));
            }
        }
        if gitops {
            taken.used.push(*idx);
        }
    }
    Ok(releases)
}

/// A Flux `HelmRelease`: its chart, then `valuesFrom` in order, then `spec.values` over them.
fn flux_release(
    doc: &Document,
    dir: &Path,
    manifests: &Manifests,
    values_inputs: &[(usize, &Input)],
    taken: &mut Taken,
) -> Result<(String, Release), Error> {
    let chart_path = p(&["spec", "chart", "spec", "chart"]);
    let name = yaml::get_string(&doc.value, &chart_path);
    let said_by = at(doc, &chart_path);
    let repo = yaml::get_string(&doc.value, &p(&["spec", "chart", "spec", "sourceRef", "name"]))
        .and_then(|r| manifests.helm_repo_url(&r));
    let chart = identify(name.as_deref(), repo.as_deref(), &said_by)?;
    // A chart from a folder of a Flux GitRepository (this repository, or a submodule of it).
    let from_git = yaml::get_string(&doc.value, &p(&["spec", "chart", "spec", "sourceRef", "kind"]))
        .is_some_and(|k| k == "GitRepository");
    let local = match name.as_deref() {
        Some(n) if chart.is_none() && from_git => local_chart(dir, n, &said_by)?,
        _ => None,
    };
    taken.chart_values(local.as_ref(), values_inputs);
    let version = yaml::get_string(&doc.value, &p(&["spec", "chart", "spec", "version"]));
    let mut layers = Vec::new();
    let from = p(&["spec", "valuesFrom"]);
    for (n, item) in doc.get(&from).and_then(Value::as_sequence).into_iter().flatten().enumerate() {
        let item_at = at(doc, &[from.clone(), vec![PathSeg::Index(n)]].concat());
        layers.extend(values_from(item, &item_at, manifests, values_inputs, taken)?);
    }
    layers.extend(embedded_layer(doc, &p(&["spec", "values"])));
    let chart = local.or_else(|| chart.map(|chart| ChartRef { chart, version, said_by, dir: None }));
    let label = format!(
        "{} (HelmRelease {})",
        doc.file,
        yaml::get_string(&doc.value, &p(&["metadata", "name"])).unwrap_or_default()
    );
    Ok((label, Release { layers, chart, hpas: Vec::new() }))
}

/// One item of a HelmRelease's `valuesFrom`: a ConfigMap among the inputs, or one a Kustomization
/// generates from a values file; `None` when it is optional and absent.
fn values_from(
    item: &Value,
    item_at: &Source,
    manifests: &Manifests,
    values_inputs: &[(usize, &Input)],
    taken: &mut Taken,
) -> Result<Option<Layer>, Error> {
    let ref_kind = yaml::get_string(item, &p(&["kind"])).unwrap_or_default();
    let ref_name = yaml::get_string(item, &p(&["name"])).unwrap_or_default();
    let key = yaml::get_string(item, &p(&["valuesKey"])).unwrap_or_else(|| "values.yaml".into());
    let optional = yaml::get(item, &p(&["optional"])).and_then(Value::as_bool) == Some(true);
    if ref_kind != "ConfigMap" {
        return Err(Error::at(
            item_at.clone(),
            format!(
                "values from {ref_kind} `{ref_name}` are not in the files — pass them as a values file \
                (--values), or {HELM_TEMPLATE_ADVICE}"
            ),
        ));
    }
    if let Some(cm) = manifests.named("ConfigMap", &ref_name) {
        taken.config_maps_used.push(ref_name.clone());
        return string_layer(cm, &p(&["data", &key]));
    }
    if let Some(path) = generated_values_file(manifests.docs(), &ref_name, &key)? {
        taken.generators_used = true;
        let text = super::read_text(&path)?;
        taken.values_file(&path, values_inputs);
        return Ok(Some(Layer::file(values_document(&text, &crate::safety::shown_path(&path))?)));
    }
    if optional {
        return Ok(None);
    }
    Err(Error::at(
        item_at.clone(),
        format!(
            "ConfigMap `{ref_name}` of the HelmRelease's valuesFrom is not among the inputs — pass the \
            file that defines it"
        ),
    ))
}

/// An Argo CD `Application` whose source has a chart (or Helm settings): its chart, then
/// `valueFiles` in order, then `values`, then `valuesObject` over them. `None` when no source
/// is a chart (a `$values` source only carries files).
fn argo_release(
    doc: &Document,
    dir: &Path,
    found: &[Input],
    values_inputs: &[(usize, &Input)],
    taken: &mut Taken,
) -> Result<Option<(String, Release)>, Error> {
    let sources: Vec<Vec<PathSeg>> = match doc.get(&p(&["spec", "sources"])).and_then(Value::as_sequence) {
        Some(items) => (0..items.len()).map(|n| [p(&["spec", "sources"]), vec![PathSeg::Index(n)]].concat()).collect(),
        None => vec![p(&["spec", "source"])],
    };
    let Some(src) = sources.iter().find(|s| {
        let has = |k: &str| doc.get(&[s.as_slice(), p(&[k]).as_slice()].concat()).is_some();
        has("chart") || has("helm")
    }) else {
        return Ok(None);
    };
    let sub = |keys: &[&str]| [src.clone(), p(keys)].concat();
    let name = yaml::get_string(&doc.value, &sub(&["chart"]));
    let repo = yaml::get_string(&doc.value, &sub(&["repoURL"]));
    let said_by = at(doc, &sub(if name.is_some() { &["chart"] } else { &["repoURL"] }));
    let chart = identify(name.as_deref(), repo.as_deref(), &said_by)?;
    // A chart from a folder of the Application's git repository (this one, or a submodule).
    let local = match yaml::get_string(&doc.value, &sub(&["path"])) {
        Some(path) if chart.is_none() && name.is_none() => local_chart(dir, &path, &at(doc, &sub(&["path"])))?,
        _ => None,
    };
    taken.chart_values(local.as_ref(), values_inputs);
    // A chart repository's targetRevision is the chart version; a git revision is not.
    let version = name.as_ref().and(yaml::get_string(&doc.value, &sub(&["targetRevision"])));
    let mut layers = Vec::new();
    let files = sub(&["helm", "valueFiles"]);
    for (n, f) in doc.get(&files).and_then(Value::as_sequence).into_iter().flatten().enumerate() {
        let f = yaml::scalar_string(f).unwrap_or_default();
        let f_at = at(doc, &[files.clone(), vec![PathSeg::Index(n)]].concat());
        layers.push(value_file(&f, &f_at, dir, found, values_inputs, taken)?);
    }
    layers.extend(string_layer(doc, &sub(&["helm", "values"]))?);
    layers.extend(embedded_layer(doc, &sub(&["helm", "valuesObject"])));
    let chart = local.or_else(|| chart.map(|chart| ChartRef { chart, version, said_by, dir: None }));
    let label = format!(
        "{} (Application {})",
        doc.file,
        yaml::get_string(&doc.value, &p(&["metadata", "name"])).unwrap_or_default()
    );
    Ok(Some((label, Release { layers, chart, hpas: Vec::new() })))
}

/// One of an Application's `valueFiles`: a values input whose path ends with it, else the file
/// beside the Application (an override of a key or two is not recognised as values on its own).
fn value_file(
    f: &str,
    f_at: &Source,
    dir: &Path,
    found: &[Input],
    values_inputs: &[(usize, &Input)],
    taken: &mut Taken,
) -> Result<Layer, Error> {
    let file_name = f.rsplit('/').next().unwrap_or(f).to_string();
    let relative = f.trim_start_matches("$values/").trim_start_matches("./");
    let hit = values_inputs.iter().find(|(_, i)| {
        i.path.display().to_string().ends_with(relative)
            || (!f.contains('/') && i.path.file_name().and_then(|n| n.to_str()) == Some(file_name.as_str()))
    });
    if let Some((vi, input)) = hit {
        taken.values_used.push(*vi);
        return Ok(Layer::file(values_document(&input.text()?, &input.path.display().to_string())?));
    }
    let beside = dir.join(relative);
    let beside = if beside.is_file() { beside } else { dir.join(&file_name) };
    if !beside.is_file() {
        return Err(Error::at(
            f_at.clone(),
            format!(
                "valueFiles `{f}` is not among the inputs — pass it beside the Application (it is read in the \
                order listed)"
            ),
        ));
    }
    let text = super::read_text(&beside)?;
    taken.used.extend(found.iter().enumerate().filter(|(_, other)| same_file(&other.path, &beside)).map(|(i, _)| i));
    Ok(Layer::file(values_document(&text, &beside.display().to_string())?))
}

/// Inputs that are data of the releases or manifests, not deployments: env files a Kustomization
/// generates a ConfigMap from, and files of nothing but the ConfigMaps (and repositories) that
/// carry a HelmRelease's values.
fn take_data_files(found: &[Input], manifests: &Manifests, taken: &mut Taken) -> Result<(), Error> {
    for d in manifests.docs().filter(|d| super::kustomize::is_kustomization(d)) {
        for g in super::kustomize::generated(d)? {
            for env in &g.envs {
                taken.used.extend(found.iter().enumerate().filter(|(_, i)| same_file(&i.path, env)).map(|(n, _)| n));
            }
        }
    }
    for (idx, docs) in &manifests.0 {
        let only_values = !docs.is_empty()
            && docs.iter().all(|d| {
                kind(d).1 == "ConfigMap"
                    && yaml::get_string(&d.value, &p(&["metadata", "name"]))
                        .is_some_and(|n| taken.config_maps_used.contains(&n))
                    || kind(d).1 == "HelmRepository"
                    || (taken.generators_used && super::kustomize::is_kustomization(d))
            });
        if only_values && !taken.used.contains(idx) {
            taken.used.push(*idx);
        }
    }
    Ok(())
}

/// `--values a.yaml --values b.yaml` as one release, in Helm's order; then every values file
/// nothing has taken in, as a release of its own.
fn values_releases(
    values: &[PathBuf],
    values_inputs: &[(usize, &Input)],
    taken: &mut Taken,
) -> Result<Vec<Found>, Error> {
    let mut releases = Vec::new();
    if !values.is_empty() {
        let mut layers = Vec::new();
        for path in values {
            let text = super::read_text(path)?;
            layers.push(Layer::file(values_document(&text, &path.display().to_string())?));
            taken.values_file(path, values_inputs);
        }
        let dir = values[0].parent().map(Path::to_path_buf).unwrap_or_default();
        let label = values.iter().map(|v| v.display().to_string()).collect::<Vec<_>>().join(" + ");
        releases.push((label, Release { layers, chart: None, hpas: Vec::new() }, dir));
    }
    for (vi, input) in values_inputs {
        if taken.values_used.contains(vi) {
            continue;
        }
        taken.values_used.push(*vi);
        let name = input.path.display().to_string();
        let layer = Layer::file(values_document(&input.text()?, &name)?);
        let dir = input.path.parent().map(Path::to_path_buf).unwrap_or_default();
        releases.push((name, Release { layers: vec![layer], chart: None, hpas: Vec::new() }, dir));
    }
    Ok(releases)
}

/// The chart of each release nothing has named yet: a `Chart.yaml` beside its values, else the
/// one chart folder of the tree, else `--chart` (which a release naming another chart refuses).
fn name_charts(
    found: &[Input],
    releases: &mut [Found],
    used: &mut Vec<usize>,
    flag: Option<(Chart, Option<String>)>,
) -> Result<(), Error> {
    for (_, release, dir) in releases.iter_mut() {
        let chart_file = dir.join("Chart.yaml");
        if release.chart.is_none() && chart_file.is_file() {
            let text = super::read_text(&chart_file)?;
            release.chart = Some(chart_yaml(&chart_file, &text)?);
        }
    }
    let charts: Vec<&Input> = found.iter().filter(|i| i.kind == Kind::ChartMeta).collect();
    if let [only] = charts.as_slice() {
        for (_, release, _) in releases.iter_mut().filter(|(_, r, _)| r.chart.is_none()) {
            release.chart = Some(chart_yaml(&only.path, &only.text()?)?);
        }
    }
    for (i, input) in found.iter().enumerate().filter(|(_, i)| i.kind == Kind::ChartMeta) {
        used.push(i);
        let dir = input.path.parent().map(Path::to_path_buf).unwrap_or_default();
        if !releases.iter().any(|(_, _, d)| same_file(d, &dir)) {
            // A chart folder without values: its defaults are the release.
            chart_yaml(&input.path, &input.text()?)?;
        }
    }
    let Some((chart, version)) = flag else { return Ok(()) };
    for (label, release, _) in releases.iter_mut() {
        match &release.chart {
            Some(r) if r.chart != chart => {
                return Err(Error::at(
                    r.said_by.clone(),
                    format!(
                        "says the chart is {}, but --chart says {} — drop the flag or fix {label}",
                        r.chart.name(),
                        chart.name()
                    ),
                ));
            }
            Some(_) => {}
            None => {
                release.chart = Some(ChartRef {
                    chart,
                    version: version.clone(),
                    said_by: Source::Flag { flag: "--chart".into() },
                    dir: None,
                })
            }
        }
    }
    Ok(())
}

/// Autoscalers committed beside the values (files of nothing but HPAs) join the release in
/// their folder, or the only release.
fn attach_autoscalers(
    found: &[Input],
    manifests: &Manifests,
    releases: &mut [Found],
    used: &mut Vec<usize>,
) -> Result<(), Error> {
    if releases.is_empty() {
        return Ok(());
    }
    for (idx, docs) in &manifests.0 {
        if used.contains(idx) || docs.is_empty() || !docs.iter().all(|d| kind(d).1 == "HorizontalPodAutoscaler") {
            continue;
        }
        let dir = found[*idx].path.parent().map(Path::to_path_buf).unwrap_or_default();
        let beside: Vec<usize> =
            releases.iter().enumerate().filter(|(_, (_, _, d))| same_file(d, &dir)).map(|(n, _)| n).collect();
        let target = match (beside.as_slice(), releases.len()) {
            ([one], _) => *one,
            ([], 1) => 0,
            _ => continue,
        };
        for d in docs {
            let max_path = p(&["spec", "maxReplicas"]);
            let max = match yaml::get_string(&d.value, &max_path) {
                Some(m) => Some(Valued::new(
                    crate::deployment::whole_count(&m, crate::deployment::MAX_COUNT).map_err(|problem| {
                        crate::deployment::CountError::new(at(d, &max_path), "maxReplicas", &m, problem)
                    })?,
                    at(d, &max_path),
                )),
                None => None,
            };
            releases[target].1.hpas.push(Hpa {
                target: yaml::get_string(&d.value, &p(&["spec", "scaleTargetRef", "name"])).unwrap_or_default(),
                max,
                at: at(d, &p(&["metadata", "name"])),
            });
        }
        used.push(*idx);
    }
    Ok(())
}
