//! How each number of a plan was derived: its value, formula and source, collected by the sizing
//! steps for `--explain`.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Derivation {
    pub name: String,
    pub value: String,
    pub formula: String,
    pub source: String,
}

/// Collects every value with its formula and source for `--explain`.
pub(super) struct Recorder {
    pub(super) steps: Vec<Derivation>,
}

impl Recorder {
    pub(super) fn note(&mut self, name: &str, value: impl ToString, formula: String, source: &str) {
        self.steps.push(Derivation { name: name.into(), value: value.to_string(), formula, source: source.into() });
    }
}
