//! The JSON format: the plan as one versioned document, a stable contract for scripts
//! (`schema_version`; fields are only ever added within a version).

use crate::model::plan::Plan;

pub fn plan(plan: &Plan) -> serde_json::Result<String> {
    serde_json::to_string_pretty(plan)
}

/// The `check` report as one versioned document (secrets masked by the model's serializers).
pub fn check(report: &crate::findings::Report) -> serde_json::Result<String> {
    serde_json::to_string_pretty(report)
}
