//! Readers of the real files operators commit: `.env` files (docker compose rules) and YAML
//! (compose files, Kubernetes manifests, Helm values).

pub mod compose;
pub mod dotenv;
pub mod helm;
pub mod inputs;
pub mod kubernetes;
pub mod pgbouncer;
pub mod postgres;
pub mod release;
pub mod yaml;

use crate::dify::Component;
use crate::dify::deployment::{Deployed, Source, Valued};
use std::io::Read;
use std::path::Path;

/// The largest input file difyplan reads. Real Dify files are under 100 KB; a larger one is a
/// mistake (a log, a dump) and reading it whole would only waste memory.
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// A file that cannot be read as text, with its name and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

/// Read a whole text file: refuses folders, files over [`MAX_INPUT_BYTES`], binary data and
/// bytes that are not UTF-8, naming the file (and the line, where there is one).
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let name = path.display();
    let meta = std::fs::metadata(path).map_err(|e| {
        ReadError(match e.kind() {
            std::io::ErrorKind::NotFound => format!("{name}: no such file — check the path"),
            std::io::ErrorKind::PermissionDenied => format!("{name}: permission denied — make the file readable"),
            _ => format!("{name}: {e}"),
        })
    })?;
    if meta.is_dir() {
        return Err(ReadError(format!("{name}: is a folder, not a file — name a file inside it")));
    }
    let file = std::fs::File::open(path).map_err(|e| {
        ReadError(match e.kind() {
            std::io::ErrorKind::PermissionDenied => format!("{name}: permission denied — make the file readable"),
            _ => format!("{name}: {e}"),
        })
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes).map_err(|e| ReadError(format!("{name}: {e}")))?;
    text_from_bytes(bytes, &name.to_string())
}

/// Read standard input as one text file named `-`.
pub fn read_stdin() -> Result<String, ReadError> {
    let mut bytes = Vec::new();
    std::io::stdin().take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes).map_err(|e| ReadError(format!("-: {e}")))?;
    text_from_bytes(bytes, "-")
}

/// The checks shared by files and standard input.
pub fn text_from_bytes(bytes: Vec<u8>, name: &str) -> Result<String, ReadError> {
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(ReadError(format!(
            "{name}: larger than {} MiB — difyplan reads configuration files, not dumps; check the path",
            MAX_INPUT_BYTES / 1024 / 1024
        )));
    }
    if let Some(pos) = bytes.iter().position(|&b| b == 0) {
        let line = bytes[..pos].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(ReadError(format!(
            "{name}:{line}: binary data (a NUL byte) — this is not a text configuration file"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let pos = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..pos].iter().filter(|&&b| b == b'\n').count() + 1;
        ReadError(format!("{name}:{line}: bytes that are not UTF-8 at offset {pos} — save the file as UTF-8"))
    })
}

/// The role Dify connects as: `DB_USERNAME` of the api (else of the first component), or Dify's
/// default `postgres`; a superuser when it is `postgres`, unless `--app-role` says otherwise.
pub fn app_role(components: &[Deployed], opts: &compose::Options) -> (Valued<String>, bool) {
    let role = components
        .iter()
        .find(|c| c.component == Component::Api)
        .or(components.first())
        .and_then(|c| c.env.get("DB_USERNAME").cloned())
        .unwrap_or_else(|| Valued::new("postgres".into(), Source::default("Dify default (postgres)")));
    let superuser = opts.app_role_superuser.unwrap_or(role.value == "postgres");
    (role, superuser)
}
