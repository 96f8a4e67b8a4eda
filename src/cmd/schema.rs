//! `difyplan schema plan|check`: the JSON Schema of each JSON document, generated from the
//! Rust types that serialize it. The committed copies in `schemas/` are regenerated with
//! `difyplan schema plan > schemas/plan.schema.json` (and `check`); a test fails when they differ.

use super::Io;
use crate::cli::{SchemaArgs, SchemaKind};
use crate::exit::ExitStatus;
use anyhow::Result;

/// The schema as pretty JSON with a final newline, as committed.
pub fn text(kind: SchemaKind) -> Result<String> {
    let (schema, id) = match kind {
        SchemaKind::Plan => (schemars::schema_for!(crate::model::plan::Plan), "plan"),
        SchemaKind::Check => (schemars::schema_for!(crate::findings::Report), "check"),
    };
    let mut value = schema.to_value();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("$id".into(), format!("https://difyplan.invalid/schemas/{id}.schema.json").into());
    }
    Ok(serde_json::to_string_pretty(&value)? + "\n")
}

pub fn run(args: &SchemaArgs, io: &mut Io) -> Result<ExitStatus> {
    write!(io.out, "{}", text(args.kind)?)?;
    Ok(ExitStatus::Success)
}
