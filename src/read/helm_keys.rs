//! Values keys a chart does not have, read as Helm reads them: Helm merges the values over the
//! chart's defaults and ignores a key no template reads, unless the chart's `values.schema.json`
//! forbids it (`additionalProperties: false`), in which case `helm install` fails.
//!
//! Neither community chart forbids unknown keys: douban/charts ships no schema, and
//! BorisPolonsky/dify-helm's `charts/dify/values.schema.json` (added in 0.31, read at
//! `5644ee3`) sets no `additionalProperties` anywhere. A vendored chart's own schema is read.

use super::yaml::{self, Value};
use crate::read::error::Error;
use std::path::Path;

/// A key of the values that a schema's `additionalProperties: false` forbids, with its path.
pub struct Forbidden {
    pub path: Vec<String>,
}

/// The keys of `values` that `schema` forbids, as Helm's JSON Schema validation would report
/// them. Only `properties` and `additionalProperties` are followed; a node with
/// `patternProperties`, `$ref` or a combinator (`allOf`, `anyOf`, `oneOf`) is not judged, so a
/// key is never refused on a rule this reading does not apply.
pub fn forbidden(values: &Value, schema: &serde_json::Value) -> Vec<Forbidden> {
    let mut out = Vec::new();
    walk(values, schema, &mut Vec::new(), &mut out);
    out
}

fn walk(values: &Value, schema: &serde_json::Value, at: &mut Vec<String>, out: &mut Vec<Forbidden>) {
    let Some(map) = values.as_mapping() else { return };
    let undecidable = ["patternProperties", "$ref", "allOf", "anyOf", "oneOf"].iter().any(|k| schema.get(k).is_some());
    if undecidable {
        return;
    }
    let props = schema.get("properties").and_then(serde_json::Value::as_object);
    let additional = schema.get("additionalProperties");
    for (k, v) in map {
        let Some(key) = yaml::scalar_string(k) else { continue };
        at.push(key.clone());
        match props.and_then(|p| p.get(&key)) {
            Some(sub) => walk(v, sub, at, out),
            None => match additional {
                Some(serde_json::Value::Bool(false)) => out.push(Forbidden { path: at.clone() }),
                Some(sub @ serde_json::Value::Object(_)) => walk(v, sub, at, out),
                _ => {}
            },
        }
        at.pop();
    }
}

/// A vendored chart's `values.schema.json`, when it has one: `Ok(None)` without a file, an error
/// naming the file when it is not JSON (Helm refuses such a chart too).
pub fn vendored_schema(chart_dir: &Path) -> Result<Option<(String, serde_json::Value)>, Error> {
    let path = chart_dir.join("values.schema.json");
    if !path.is_file() {
        return Ok(None);
    }
    let name = crate::safety::shown_path(&path);
    let text = super::read_text(&path)?;
    let schema = serde_json::from_str(&text).map_err(|e| {
        let problem = format!("not valid JSON ({e}) — Helm refuses a chart whose schema it cannot read; fix the file");
        Error::line(name.clone(), e.line(), problem)
    })?;
    Ok(Some((name, schema)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn only_closed_objects_forbid_keys() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "api": {"type": "object", "additionalProperties": false, "properties": {"replicas": {}}},
                "worker": {"type": "object"},
                "open": {"additionalProperties": {"additionalProperties": false, "properties": {"a": {}}}},
                "patterned": {"additionalProperties": false, "patternProperties": {"^x": {}}}
            }
        });
        let v = values(
            "api: {replicas: 2, resources: {}}\nworker: {anything: 1}\nnginx: {}\nopen: {one: {a: 1, b: 2}}\npatterned: {y: 1}\n",
        );
        let paths: Vec<String> = forbidden(&v, &schema).iter().map(|f| f.path.join(".")).collect();
        assert_eq!(paths, ["api.resources", "open.one.b"]);
    }

    #[test]
    fn a_schema_without_additional_properties_forbids_nothing() {
        let schema = serde_json::json!({"type": "object", "properties": {"image": {"type": "object"}}});
        assert!(forbidden(&values("resources: {}\nnginx: {enabled: true}\n"), &schema).is_empty());
    }
}
