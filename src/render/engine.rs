//! The template engine: minijinja set up so that YAML and `.env` come out right (strict
//! undefined, no auto-escaping, `true`/`false`, trailing newlines kept), and the built-in
//! templates embedded in the binary so that `cargo install` needs no files beside it.

use crate::safety::shown_path;
use minijinja::value::{Serde, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use std::path::{Path, PathBuf};

/// One built-in template: its name (also its path under `templates/` and in an exported
/// folder) and its text, embedded at build time.
pub struct Builtin {
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! builtin {
    ($name:literal) => {
        Builtin { name: $name, source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $name)) }
    };
}

/// Every template `render` uses. `templates export` writes exactly these.
pub const BUILTINS: &[Builtin] = &[
    builtin!("env.j2"),
    builtin!("compose/docker-compose.override.yaml.j2"),
    builtin!("kubernetes/component.yaml.j2"),
    builtin!("kubernetes/postgresql.yaml.j2"),
    builtin!("kubernetes/mysql.yaml.j2"),
    builtin!("kubernetes/pgbouncer.yaml.j2"),
    builtin!("helm/borispolonsky.yaml.j2"),
    builtin!("helm/douban.yaml.j2"),
    builtin!("alerts/rules.yaml.j2"),
    builtin!("alerts/postgres-exporter-queries.yaml.j2"),
];

/// Where templates come from: the embedded ones, or a user's folder (`--templates DIR`).
#[derive(Debug, Clone)]
pub enum Source {
    Builtin,
    Folder(PathBuf),
}

/// A template failed to load or to render: the message names the template (its file, for a
/// user's folder) and the line, and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("no built-in template named {0} (a difyplan bug)")]
    NoBuiltin(String),
    #[error(
        "{}: no such template folder — pass a folder made by `difyplan templates export {}`",
        shown_path(.0),
        shown_path(.0)
    )]
    NoFolder(PathBuf),
    #[error(
        "{}: the template folder {} lacks the template {name} — copy it from `difyplan templates export NEW_DIR`",
        shown_path(&dir.join(name)),
        shown_path(dir)
    )]
    Missing { dir: PathBuf, name: String },
    #[error(transparent)]
    Read(#[from] crate::read::ReadError),
    /// minijinja refused the template or failed to render it: which one, where, and why.
    #[error("{template}{}: {problem}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Failed { template: String, line: Option<usize>, problem: String },
}

/// An environment holding the templates `names`, configured for YAML and `.env` output.
pub struct Engine {
    env: Environment<'static>,
    source: Source,
}

impl Engine {
    /// Load `names` from `source`. A user's folder must exist and hold every one of them.
    pub fn load(source: &Source, names: &[&str]) -> Result<Engine, TemplateError> {
        let mut env = Environment::new();
        configure(&mut env);
        for name in names {
            let text = match source {
                Source::Builtin => BUILTINS
                    .iter()
                    .find(|b| b.name == *name)
                    .map(|b| b.source.to_string())
                    .ok_or_else(|| TemplateError::NoBuiltin(name.to_string()))?,
                Source::Folder(dir) => read_user_template(dir, name)?,
            };
            env.add_template_owned(name.to_string(), text).map_err(|e| describe(source, &e))?;
        }
        Ok(Engine { env, source: source.clone() })
    }

    /// Render one template with `ctx` (any `Serialize` value).
    pub fn render<S: serde::Serialize>(&self, name: &str, ctx: &S) -> Result<String, TemplateError> {
        let template = self.env.get_template(name).map_err(|e| describe(&self.source, &e))?;
        let mut text = template.render(Value::from(Serde(ctx))).map_err(|e| describe(&self.source, &e))?;
        // Every file ends with exactly one line break, whatever the template's last tag trimmed.
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }
}

fn read_user_template(dir: &Path, name: &str) -> Result<String, TemplateError> {
    if !dir.is_dir() {
        return Err(TemplateError::NoFolder(dir.to_path_buf()));
    }
    let path = dir.join(name);
    if !path.is_file() {
        return Err(TemplateError::Missing { dir: dir.to_path_buf(), name: name.to_string() });
    }
    Ok(crate::read::read_text(&path)?)
}

/// The settings every difyplan template relies on (STYLE.md, "Pitfalls already known").
fn configure(env: &mut Environment<'static>) {
    // An unknown variable is an error, never an empty string in a production file.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // `.yaml` names would get JSON escaping with minijinja's `json` feature: escaping is the
    // filters' job here, so none anywhere.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("static syntax config"),
    );
    env.set_formatter(format_value);
    env.add_filter("yaml", yaml_filter);
    env.add_filter("env", env_filter);
    env.add_filter("json", json_filter);
}

/// Prints values as YAML and `.env` read them: `true`/`false` (minijinja prints `True`), and
/// an error for `none`, which no output should ever contain by accident.
fn format_value(out: &mut minijinja::Output, _state: &mut minijinja::State, value: &Value) -> Result<(), Error> {
    let text = match value.kind() {
        ValueKind::Bool => {
            if value.is_true() {
                "true".to_string()
            } else {
                "false".to_string()
            }
        }
        ValueKind::None => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "printed `none` — test the value with `is none` before printing it",
            ));
        }
        ValueKind::Seq | ValueKind::Map => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "printed a list or mapping — use the `yaml` or `json` filter",
            ));
        }
        _ => value.to_string(),
    };
    out.write_str(&text).map_err(|e| Error::new(ErrorKind::WriteFailure, e.to_string()))
}

/// A YAML scalar that reads back as the same value: numbers and booleans plain, strings plain
/// only when YAML cannot misread them (`yes`, `0x10`, `1e3`, `null`, `: `, a leading `*`),
/// otherwise double-quoted (JSON quoting is valid YAML). Lists and mappings become flow style.
pub fn yaml_filter(value: Value) -> Result<String, Error> {
    match value.kind() {
        ValueKind::Bool => Ok(if value.is_true() { "true" } else { "false" }.to_string()),
        ValueKind::Number => Ok(value.to_string()),
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            Ok(if yaml_plain_ok(s) { s.to_string() } else { json_quote(s) })
        }
        ValueKind::Seq | ValueKind::Map => json_filter(value),
        ValueKind::None => Ok("null".to_string()),
        other => Err(Error::new(ErrorKind::InvalidOperation, format!("the yaml filter cannot write a {other}"))),
    }
}

/// JSON text of a value (also valid YAML flow style).
pub fn json_filter(value: Value) -> Result<String, Error> {
    serde_json::to_string(&value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("cannot write as JSON: {e}")))
}

/// A `.env` value compose reads back unchanged (bare when unambiguous, else double-quoted).
pub fn env_filter(value: Value) -> Result<String, Error> {
    let text = match value.kind() {
        ValueKind::Bool => {
            if value.is_true() {
                "true".to_string()
            } else {
                "false".to_string()
            }
        }
        ValueKind::String => value.as_str().unwrap_or_default().to_string(),
        ValueKind::Number => value.to_string(),
        other => return Err(Error::new(ErrorKind::InvalidOperation, format!("the env filter cannot write a {other}"))),
    };
    crate::read::dotenv::quote_value(&text)
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "a .env value cannot hold a NUL byte"))
}

fn json_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.escape_default()))
}

/// Plain style only for strings made of safe characters that YAML 1.1 and 1.2 both read as
/// strings: no booleans, nulls, numbers (in any base or notation) or timestamps.
fn yaml_plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else { return false };
    if !(first.is_ascii_alphabetic() || first == '/' || first == '_') {
        return false;
    }
    if !s.chars().all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c)) {
        return false;
    }
    const SPECIAL: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"];
    let lower = s.to_ascii_lowercase();
    !SPECIAL.contains(&lower.as_str()) && lower.parse::<f64>().is_err()
}

/// A minijinja error as `template:line: what — what to do`.
fn describe(source: &Source, err: &Error) -> TemplateError {
    let name = err.name().unwrap_or("<template>");
    let template = match source {
        Source::Builtin => format!("built-in template {name}"),
        Source::Folder(dir) => shown_path(&dir.join(name)),
    };
    let problem = match err.kind() {
        ErrorKind::UndefinedError => format!(
            "unknown variable or attribute{} — use only the names the built-in templates use (`difyplan templates export DIR` shows them)",
            err.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        ErrorKind::SyntaxError => format!("syntax error: {}", err.detail().unwrap_or("invalid template")),
        _ => err.detail().map(str::to_string).unwrap_or_else(|| err.kind().to_string()),
    };
    TemplateError::Failed { template, line: err.line(), problem }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, ctx: serde_json::Value) -> Result<String, TemplateError> {
        let mut env = Environment::new();
        configure(&mut env);
        env.add_template_owned("t.yaml", src.to_string()).map_err(|e| describe(&Source::Builtin, &e))?;
        env.get_template("t.yaml").unwrap().render(Value::from(Serde(&ctx))).map_err(|e| describe(&Source::Builtin, &e))
    }

    #[test]
    fn booleans_and_trailing_newline() {
        assert_eq!(
            render("a: {{ x }}\nb: {{ y | yaml }}\n", serde_json::json!({"x": true, "y": false})).unwrap(),
            "a: true\nb: false\n"
        );
    }

    #[test]
    fn no_json_escaping_for_yaml_names() {
        assert_eq!(render("v: {{ s }}\n", serde_json::json!({"s": "a\"b"})).unwrap(), "v: a\"b\n");
    }

    #[test]
    fn unknown_variable_names_template_and_line() {
        let err = render("a: 1\nb: {{ nope }}\n", serde_json::json!({})).unwrap_err();
        let TemplateError::Failed { template, line, problem } = &err else { panic!("{err}") };
        assert_eq!((template.as_str(), *line), ("built-in template t.yaml", Some(2)));
        assert!(problem.starts_with("unknown variable"), "{err}");
    }

    #[test]
    fn none_is_never_printed() {
        let err = render("a: {{ n }}\n", serde_json::json!({"n": null})).unwrap_err().to_string();
        assert!(err.contains("none"), "{err}");
    }

    #[test]
    fn yaml_scalars_read_back_as_strings() {
        for (s, want) in [
            ("gevent", "gevent"),
            ("dify-api", "dify-api"),
            ("22", "\"22\""),
            ("yes", "\"yes\""),
            ("No", "\"No\""),
            ("1e3", "\"1e3\""),
            ("", "\"\""),
            ("a: b", "\"a: b\""),
            ("*x", "\"*x\""),
            ("-c", "\"-c\""),
            ("max_connections=200", "\"max_connections=200\""),
            ("128GB", "\"128GB\""),
            ("null", "\"null\""),
            ("0x1F", "\"0x1F\""),
        ] {
            assert_eq!(yaml_filter(Value::from(s)).unwrap(), want, "{s}");
        }
        assert_eq!(yaml_filter(Value::from(3)).unwrap(), "3");
        assert_eq!(yaml_filter(Value::from(Serde(vec!["a", "1"]))).unwrap(), "[\"a\",\"1\"]");
    }

    #[test]
    fn every_builtin_parses() {
        for b in BUILTINS {
            let mut env = Environment::new();
            configure(&mut env);
            env.add_template(b.name, b.source).unwrap_or_else(|e| panic!("{}: {e}", b.name));
        }
    }
}
