//! Where each finding is anchored for code-scanning tools and annotations: the line to change
//! when the finding has one; else the line that declares its component; else the line of the
//! deployment-wide setting (the app role, `max_connections`, the version); else the first file
//! of the deployment (the file that sets its identity), line 1. GitHub refuses SARIF results
//! without a location, so every finding gets one.

use super::{Code, Finding};
use crate::deployment::{Deployment, Source};
use serde::Serialize;

/// A file and a line (1-based), the path as every format shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
pub struct Location {
    pub path: String,
    pub line: usize,
}

impl Location {
    /// A location with its path cleaned, and made relative when it lies under the current
    /// folder (code-scanning tools want paths relative to the checkout).
    pub fn new(path: &str, line: usize) -> Location {
        let mut path = crate::safety::escape::clean_path(path);
        if path.starts_with('/')
            && let Ok(cwd) = std::env::current_dir()
            && let Ok(rest) = std::path::Path::new(&path).strip_prefix(&cwd)
            && !rest.as_os_str().is_empty()
        {
            path = rest.to_string_lossy().into_owned();
        }
        Location { path, line: line.max(1) }
    }
}

fn file_of(s: &Source) -> Option<Location> {
    s.location().filter(|(p, _)| !p.is_empty() && *p != "-").map(|(path, line)| Location::new(path, line))
}

/// The location of `f` within the deployment `d`, whose files are `files` (the identity file first).
pub fn locate(f: &Finding, d: &Deployment, files: &[String]) -> Option<Location> {
    if let Some(l) = f.source.as_ref().and_then(file_of) {
        return Some(l);
    }
    let component = f.component.and_then(|c| d.components.iter().find(|x| x.component == c));
    let mut candidates: Vec<&Source> = Vec::new();
    if let Some(c) = component {
        candidates.extend([&c.at, &c.replicas.source, &c.pool_size.source]);
    }
    match f.code {
        Code::SuperuserAppRole => candidates.push(&d.app_role.source),
        Code::MaxConnectionsUnknown | Code::ConnectionBudgetExceeded => candidates.push(&d.max_connections.source),
        Code::ChartVersionAssumed => {
            candidates.extend(d.chart_version_assumed.iter().map(|v| &v.source));
            candidates.extend(d.chart.iter().map(|v| &v.source));
        }
        _ => {}
    }
    if let Some(p) = &d.pooler
        && matches!(f.code, Code::PoolerDeadlockRisk | Code::PoolerClientSlotsLow)
    {
        candidates.push(&p.at);
    }
    candidates.push(&d.version_source);
    if let Some(l) = candidates.into_iter().find_map(file_of) {
        return Some(l);
    }
    files
        .iter()
        .find(|p| !p.is_empty() && p.as_str() != "-")
        .map(|p| Location::new(p, 1))
        .or_else(|| d.components.iter().find_map(|c| file_of(&c.at)))
}
