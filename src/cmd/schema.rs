//! `difyplan schema plan|check`: the JSON Schema of each JSON document, generated from the
//! Rust types that serialize it. The committed copies in `schemas/` are regenerated with
//! `difyplan schema plan > schemas/plan.schema.json` (and `check`); a test fails when they differ.

use super::Io;
use crate::cli::{SchemaArgs, SchemaKind};
use crate::exit::ExitStatus;
use anyhow::Result;

/// The schema as pretty JSON with a final newline, as committed. It states the document's
/// shape only: the doc comments and model defaults schemars would copy in are left out, so the
/// committed schema changes when a field does, not when a comment or an assumption does (the
/// README says what the fields mean).
pub fn text(kind: SchemaKind) -> Result<String> {
    let schema = match kind {
        SchemaKind::Plan => schemars::schema_for!(crate::model::plan::Plan),
        SchemaKind::Check => schemars::schema_for!(crate::findings::Report),
    };
    let mut value = schema.to_value();
    shape_only(&mut value);
    Ok(serde_json::to_string_pretty(&value)? + "\n")
}

/// Remove `description` and `default` from every schema object (not from the maps of
/// property or definition names, where they could be a field's name).
fn shape_only(schema: &mut serde_json::Value) {
    match schema {
        serde_json::Value::Object(map) => {
            map.remove("description");
            map.remove("default");
            for (key, value) in map.iter_mut() {
                match (key.as_str(), value) {
                    (
                        "properties" | "$defs" | "definitions" | "patternProperties",
                        serde_json::Value::Object(named),
                    ) => named.values_mut().for_each(shape_only),
                    (_, v) => shape_only(v),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(shape_only),
        _ => {}
    }
}

pub fn run(args: &SchemaArgs, io: &mut Io) -> Result<ExitStatus> {
    write!(io.out, "{}", text(args.kind)?)?;
    Ok(ExitStatus::Success)
}
