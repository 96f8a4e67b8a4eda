//! Readers of the real files operators commit: `.env` files (docker compose rules) and YAML
//! (compose files, Kubernetes manifests, Helm values).

pub mod chart_identity;
pub mod compose;
pub mod deploy_cmd;
pub mod deployments;
pub mod dotenv;
pub mod error;
pub mod helm;
pub mod helm_keys;
pub mod inputs;
pub mod kubernetes;
pub mod kustomize;
pub mod mysql;
pub mod pgbouncer;
pub mod postgres;
pub mod release;
pub mod submodule;
pub mod yaml;

use crate::deployment::{Deployed, Source, Valued};
use crate::dify::Component;
use std::io::Read;
use std::path::Path;

/// A workload profile: a built-in name, or the path of a profile TOML file (one `calibrate`
/// wrote, say).
pub fn profile(spec: &str) -> Result<crate::model::profile::Profile, crate::model::profile::ProfileError> {
    use crate::model::profile::{Profile, ProfileError};
    let path = Path::new(spec);
    if Profile::is_builtin(spec) || (!spec.ends_with(".toml") && !path.exists()) {
        return Profile::builtin(spec);
    }
    let text = read_text(path).map_err(|e| ProfileError::Read(e.to_string()))?;
    Profile::parse(&text, &crate::safety::shown_path(path))
}

/// The largest input file difyplan reads. Real Dify files are under 100 KB; a larger one is a
/// mistake (a log, a dump) and reading it whole would only waste memory.
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// A file that cannot be read as text: the file (and line) as data, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening it, or asking for its kind, failed.
    #[error("{file}: {}", explain_open(cause))]
    Open { file: String, cause: std::io::Error },
    /// Reading the open file failed.
    #[error("{file}: {cause}")]
    Read { file: String, cause: std::io::Error },
    #[error("{file}: is a folder, not a file — name a file inside it")]
    Folder { file: String },
    #[error("{file}: is {kind}, not a regular file — difyplan reads only regular files; name the file itself")]
    NotRegular { file: String, kind: &'static str },
    #[error(
        "{file}: larger than {} MiB — difyplan reads configuration files, not dumps; check the path",
        MAX_INPUT_BYTES / 1024 / 1024
    )]
    TooLarge { file: String },
    #[error("{file}:{line}: binary data (a NUL byte) — this is not a text configuration file")]
    Binary { file: String, line: usize },
    #[error("{file}:{line}: bytes that are not UTF-8 at offset {offset} — save the file as UTF-8")]
    NotUtf8 { file: String, line: usize, offset: usize },
}

/// Read a whole text file: refuses folders, files over [`MAX_INPUT_BYTES`], binary data and
/// bytes that are not UTF-8, naming the file (and the line, where there is one).
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = read_bytes(path)?;
    text_from_bytes(bytes, &crate::safety::shown_path(path))
}

/// Read a whole regular file, at most [`MAX_INPUT_BYTES`] (one byte more, to tell that it is
/// larger). Every file difyplan reads comes through here: the kind is checked from metadata
/// before opening, and the file is opened without blocking, so a FIFO, a device or a socket is
/// refused instead of hanging the process, whether it was named or found in a folder.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, ReadError> {
    let name = crate::safety::shown_path(path);
    let open = |cause| ReadError::Open { file: name.clone(), cause };
    let meta = std::fs::metadata(path).map_err(open)?;
    check_regular(&meta, &name)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Were the file swapped for a FIFO between the check and the open, this open does not wait
        // for a writer; the kind is checked again on the open file below.
        opts.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = opts.open(path).map_err(open)?;
    let meta = file.metadata().map_err(open)?;
    check_regular(&meta, &name)?;
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_INPUT_BYTES + 1) as usize);
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|cause| ReadError::Read { file: name.clone(), cause })?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(ReadError::TooLarge { file: name });
    }
    Ok(bytes)
}

/// Only regular files are read: anything else would block (a FIFO, a terminal) or never end
/// (`/dev/zero`).
fn check_regular(meta: &std::fs::Metadata, name: &str) -> Result<(), ReadError> {
    if meta.is_file() {
        return Ok(());
    }
    if meta.is_dir() {
        return Err(ReadError::Folder { file: name.to_string() });
    }
    Err(ReadError::NotRegular { file: name.to_string(), kind: file_kind(meta) })
}

/// A word for what a non-regular file is.
pub fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() { "a folder" } else { "not a regular file" }
}

/// What a failed open or metadata call means, and what to do.
pub fn explain_open(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match (e.kind(), e.raw_os_error()) {
        (K::NotFound, _) => "no such file — check the path".into(),
        (K::PermissionDenied, _) => "permission denied — make the file readable".into(),
        (_, Some(libc::ELOOP)) => {
            "a loop of symbolic links — point the link at the real file (`ls -l` shows where it leads)".into()
        }
        (_, Some(libc::ENAMETOOLONG)) => "the path is too long — use a shorter path or a relative one".into(),
        (_, Some(libc::ENOTDIR)) => "a part of the path is a file, not a folder — check the path".into(),
        _ => e.to_string(),
    }
}

/// The refusal for a Dify service that starts its server itself: where, and what to do.
pub fn bypass_refusal(service: &str, program: &crate::deployment::Valued<String>) -> error::Error {
    error::Error::at(
        program.source.clone(),
        format!(
            "{} runs `{}` itself instead of the image's entrypoint, so SERVER_WORKER_AMOUNT, \
             SERVER_WORKER_CONNECTIONS and CELERY_WORKER_AMOUNT do not set its processes, greenlets or -c, and \
             difyplan reads only those keys — remove the command and set the keys, or check this service's \
             connections by hand",
            crate::safety::escape(service),
            crate::safety::escape(&program.value)
        ),
    )
}

/// Lexically clean `a/./b/../c` into `a/c` (paths are shown, and compared, this way); a
/// leading `..` stays.
pub fn lexical(path: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Read standard input as one text file named `-`.
pub fn read_stdin() -> Result<String, ReadError> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|cause| ReadError::Read { file: "-".into(), cause })?;
    text_from_bytes(bytes, "-")
}

/// The checks shared by files and standard input.
pub fn text_from_bytes(bytes: Vec<u8>, name: &str) -> Result<String, ReadError> {
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(ReadError::TooLarge { file: name.to_string() });
    }
    if let Some(pos) = bytes.iter().position(|&b| b == 0) {
        let line = bytes[..pos].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(ReadError::Binary { file: name.to_string(), line });
    }
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
        ReadError::NotUtf8 { file: name.to_string(), line, offset }
    })
}

/// The role Dify connects as: `DB_USERNAME` of the api (else of the first component), or Dify's
/// default `postgres`; a superuser when it is `postgres`, unless `--app-role` says otherwise.
pub fn app_role(components: &[Deployed], opts: &compose::Options) -> (Valued<String>, bool) {
    app_role_for(components, opts, crate::dify::db_type::DbType::Postgresql)
}

/// `DB_USERNAME` and whether it is the server's superuser: `postgres` on PostgreSQL, `root`
/// (the account with `CONNECTION_ADMIN`) on MySQL, unless `--app-role` says.
pub fn app_role_for(
    components: &[Deployed],
    opts: &compose::Options,
    db_type: crate::dify::db_type::DbType,
) -> (Valued<String>, bool) {
    let role = components
        .iter()
        .find(|c| c.component == Component::Api)
        .or(components.first())
        .and_then(|c| c.env.get("DB_USERNAME").cloned())
        .unwrap_or_else(|| Valued::new("postgres".into(), Source::default("Dify default (postgres)")));
    let superuser_name = match db_type {
        crate::dify::db_type::DbType::Postgresql => "postgres",
        crate::dify::db_type::DbType::Mysql => crate::dify::db_type::mysql::SUPERUSER,
    };
    let superuser = opts.app_role_superuser.unwrap_or(role.value == superuser_name);
    (role, superuser)
}
