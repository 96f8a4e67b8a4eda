//! Where a repository says how its chart is installed: `helm upgrade|install NAME CHART -f a -f b`
//! in deploy scripts, Makefiles and CI files, and Terraform `helm_release` blocks. Each names the
//! chart (a path or a repository chart) and the values files in the order Helm layers them.

use crate::deployment::Source;
use std::path::{Path, PathBuf};

/// One `helm upgrade|install` (or `helm_release`) found in a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Install {
    /// The chart as written: `./charts/dify`, `douban/dify`, `oci://…`.
    pub chart: String,
    /// `--repo URL` / Terraform `repository`.
    pub repo: Option<String>,
    /// `--version` / Terraform `version`.
    pub version: Option<String>,
    /// The values files in Helm's order (later wins), as written.
    pub values: Vec<String>,
    /// `--set` / `--set-string` / Terraform `set` blocks were given: keys difyplan does not layer.
    pub sets: bool,
    pub at: Source,
    /// The folder the paths are relative to (the file's folder; Terraform's `path.module`).
    pub dir: PathBuf,
}

/// Whether a file's text runs Helm or declares a Helm release.
pub fn mentions_install(text: &str) -> bool {
    text.contains("helm_release") || text.contains("helm upgrade") || text.contains("helm install")
}

/// Flags of `helm upgrade|install` that take a value (the rest are switches).
const VALUE_FLAGS: &[&str] = &[
    "-n",
    "--namespace",
    "--kube-context",
    "--kubeconfig",
    "--timeout",
    "-o",
    "--output",
    "--description",
    "--post-renderer",
    "--post-renderer-args",
    "--history-max",
    "--username",
    "--password",
    "--ca-file",
    "--cert-file",
    "--key-file",
    "--set-file",
    "--set-json",
    "--set-literal",
    "--labels",
    "-l",
];

/// Every `helm upgrade|install` of a shell script, Makefile or CI file.
pub fn helm_commands(text: &str, file: &str, dir: &Path) -> Vec<Install> {
    let mut out = Vec::new();
    // Lines joined where a backslash continues them, each with the line it started on.
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (start, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        let trimmed = raw.trim_end();
        if let Some(cont) = trimmed.strip_suffix('\\') {
            acc.push_str(cont);
            acc.push(' ');
            pending = Some((start, acc));
        } else {
            acc.push_str(trimmed);
            logical.push((start, acc));
        }
    }
    logical.extend(pending);
    for (line, text) in logical {
        let words = shell_words(&text);
        let mut i = 0;
        while i + 1 < words.len() {
            if words[i] == "helm" && matches!(words[i + 1].as_str(), "upgrade" | "install") {
                let end = words[i..]
                    .iter()
                    .position(|w| matches!(w.as_str(), ";" | "&&" | "||" | "|"))
                    .map_or(words.len(), |e| i + e);
                if let Some(install) = parse_helm(&words[i + 2..end], Source::file(file, line), dir) {
                    out.push(install);
                }
                i = end;
            }
            i += 1;
        }
    }
    out
}

fn parse_helm(args: &[String], at: Source, dir: &Path) -> Option<Install> {
    let mut positional = Vec::new();
    let mut install = Install {
        chart: String::new(),
        repo: None,
        version: None,
        values: Vec::new(),
        sets: false,
        at,
        dir: dir.to_path_buf(),
    };
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || {
            inline.clone().or_else(|| {
                i += 1;
                args.get(i).cloned()
            })
        };
        match flag {
            "-f" | "--values" => install
                .values
                .extend(value().into_iter().flat_map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())),
            "--repo" => install.repo = value(),
            "--version" => install.version = value(),
            "--set" | "--set-string" | "--set-json" | "--set-file" | "--set-literal" => {
                install.sets = true;
                value();
            }
            f if VALUE_FLAGS.contains(&f) => {
                value();
            }
            f if f.starts_with('-') => {}
            _ => positional.push(a.clone()),
        }
        i += 1;
    }
    // NAME CHART (or CHART alone with --generate-name).
    install.chart = positional.get(1).or(positional.first())?.clone();
    Some(install)
}

/// Words as a shell splits them: quotes removed, `$VAR`s kept as written, `;`, `&&`, `||`, `|`
/// and a `#` comment ending the command.
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, '#') if !started => break,
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            (None, ';' | '|' | '&') => {
                if started {
                    words.push(std::mem::take(&mut cur));
                    started = false;
                }
                let mut op = c.to_string();
                if chars.peek() == Some(&c) {
                    op.push(c);
                    chars.next();
                }
                words.push(op);
            }
            (None, c) => {
                cur.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(cur);
    }
    words
}

/// Terraform `resource "helm_release" "…" { … }` blocks: `chart`, `repository`, `version` and
/// the `values = [file("…"), …]` list in order (`${path.module}` and `${path.root}` are the file's
/// folder). `templatefile(…)` values and `set` blocks are noted as `sets` (not layered).
pub fn terraform_releases(text: &str, file: &str, dir: &Path) -> Vec<Install> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(pos) = rest.find("\"helm_release\"") {
        let start = offset + pos;
        let Some(open) = text[start..].find('{').map(|o| start + o) else { break };
        let Some(close) = matching_brace(text, open) else { break };
        let body = &text[open + 1..close];
        let line = text[..start].lines().count().max(1);
        let attr = |name: &str| -> Option<String> {
            body.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        let module =
            |p: &str| p.replace("${path.module}/", "").replace("${path.root}/", "").replace("${path.cwd}/", "");
        let mut values = Vec::new();
        let mut sets = body.lines().any(|l| {
            l.trim_start().starts_with("set ")
                || l.trim_start().starts_with("set {")
                || l.trim().starts_with("set_sensitive")
        });
        if let Some(v) = body.find("values").and_then(|v| body[v..].find('[').map(|b| v + b)) {
            let list_end = body[v..].find(']').map_or(body.len(), |e| v + e);
            let list = &body[v + 1..list_end];
            for item in list.split("file(").skip(1) {
                let path: String =
                    item.trim_start().trim_start_matches('"').chars().take_while(|c| *c != '"').collect();
                values.push(module(&path));
            }
            sets |= list.contains("templatefile(") || list.contains("yamlencode(");
        }
        if let Some(chart) = attr("chart") {
            out.push(Install {
                chart: module(&chart),
                repo: attr("repository"),
                version: attr("version"),
                values,
                sets,
                at: Source::file(file, line),
                dir: dir.to_path_buf(),
            });
        }
        offset = close;
        rest = &text[close..];
    }
    out
}

fn matching_brace(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_upgrade_with_layers_and_continuations() {
        let text = "#!/bin/sh\nset -e\nhelm upgrade --install dify ./charts/dify \\\n  -n dify --create-namespace \\\n  -f values.yaml -f \"values-prod.yaml\" --set api.replicas=2 --wait && echo done\n";
        let found = helm_commands(text, "deploy.sh", Path::new("."));
        assert_eq!(found.len(), 1);
        let i = &found[0];
        assert_eq!(i.chart, "./charts/dify");
        assert_eq!(i.values, ["values.yaml", "values-prod.yaml"]);
        assert!(i.sets);
        assert_eq!(i.at, Source::file("deploy.sh", 3));
    }

    #[test]
    fn makefile_and_inline_flags() {
        let text = "deploy:\n\thelm install dify douban/dify --version=0.9.1 --values=base.yaml,prod.yaml # go\n";
        let i = &helm_commands(text, "Makefile", Path::new("."))[0];
        assert_eq!((i.chart.as_str(), i.version.as_deref()), ("douban/dify", Some("0.9.1")));
        assert_eq!(i.values, ["base.yaml", "prod.yaml"]);
        assert!(!i.sets);
    }

    #[test]
    fn terraform_helm_release() {
        let text = r#"
resource "helm_release" "dify" {
  name  = "dify"
  chart = "${path.module}/charts/dify"
  values = [
    file("${path.module}/values/prod.yaml"),
  ]
}
"#;
        let i = &terraform_releases(text, "main.tf", Path::new("."))[0];
        assert_eq!(i.chart, "charts/dify");
        assert_eq!(i.values, ["values/prod.yaml"]);
        assert_eq!(i.at, Source::file("main.tf", 2));
    }
}
