//! The safe writer: every file goes to a temporary file in its target folder, is flushed to
//! disk and renamed into place, so no reader ever sees half a file and a failed write leaves
//! nothing behind. A set of files is all or nothing, and an existing file is kept unless the
//! caller was told `--force`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::safety::shown_path;

/// One file to write.
#[derive(Debug, Clone)]
pub struct Output {
    pub path: PathBuf,
    pub contents: Vec<u8>,
    /// Unix permission bits for a new file (a copy of the original's for a patched `.env`,
    /// which holds secrets); `None` for the default (0644 less the umask).
    pub mode: Option<u32>,
    /// Owner and group (uid, gid) to give the file, as the original's when difyplan runs as
    /// root on a file of another user; `None` leaves the writer's.
    pub owner: Option<(u32, u32)>,
}

/// A write that could not be done: the path as data, and what to do in the message. Every
/// variant but `NotAFolder` and `CreateFolder` means nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{}: is a file, not a folder — pass a folder to -o", shown_path(.0))]
    NotAFolder(PathBuf),
    #[error("{}: cannot create the folder: {cause}", shown_path(path))]
    CreateFolder { path: PathBuf, cause: io::Error },
    #[error(
        "{}: already exists — nothing was written; pass --force to replace it, or choose another folder",
        shown_path(.0)
    )]
    Exists(PathBuf),
    #[error("{}: is a folder — nothing was written; remove it or choose another folder", shown_path(.0))]
    IsAFolder(PathBuf),
    /// Writing, syncing or renaming `path` in the folder `dir` failed.
    #[error("{}: {} — nothing was written", shown_path(path), explain(cause, dir))]
    Io { path: PathBuf, dir: PathBuf, cause: io::Error },
}

/// Whether existing files may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Never overwrite: the command says which file is in the way.
    Keep,
    /// `--force`.
    Replace,
}

/// Make sure `dir` is a folder: made (with its parents) when missing, as `-o k8s/` or
/// `templates export my-templates/` promise; refused when a file is in the way.
pub fn check_folder(dir: &Path) -> Result<(), WriteError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(WriteError::NotAFolder(dir.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|cause| WriteError::CreateFolder { path: dir.to_path_buf(), cause })
        }
        Err(cause) => Err(WriteError::CreateFolder { path: dir.to_path_buf(), cause }),
    }
}

/// Write every file, or none: all contents go to temporary files first; only when each one is
/// complete and synced are they renamed into place. Existing files stop the whole set before
/// anything is written unless `existing` is [`Existing::Replace`].
pub fn write_all(outputs: &[Output], existing: Existing) -> Result<(), WriteError> {
    for o in outputs {
        let dir = parent(&o.path);
        check_folder(dir)?;
        if existing == Existing::Keep && fs::symlink_metadata(&o.path).is_ok() {
            return Err(WriteError::Exists(o.path.clone()));
        }
        if fs::metadata(&o.path).is_ok_and(|m| m.is_dir()) {
            return Err(WriteError::IsAFolder(o.path.clone()));
        }
    }
    for o in outputs {
        remove_stale_temps(&o.path);
    }
    let mut staged: Vec<Staged> = Vec::new();
    for o in outputs {
        match stage(o) {
            Ok(s) => staged.push(s),
            Err(e) => {
                for s in &staged {
                    let _ = fs::remove_file(&s.temp);
                }
                return Err(e);
            }
        }
    }
    let mut placed: Vec<&Staged> = Vec::new();
    for s in &staged {
        if let Err(e) = fs::rename(&s.temp, &s.target) {
            // Undo: new files disappear again; temporaries are removed.
            for p in &placed {
                if !p.existed {
                    let _ = fs::remove_file(&p.target);
                }
            }
            for s in &staged {
                let _ = fs::remove_file(&s.temp);
            }
            return Err(WriteError::Io { path: s.target.clone(), dir: parent(&s.target).to_path_buf(), cause: e });
        }
        placed.push(s);
    }
    let mut dirs: Vec<&Path> = outputs.iter().map(|o| parent(&o.path)).collect();
    dirs.dedup();
    for d in dirs {
        // The renames are durable once the folder is synced; a failure here loses nothing
        // that was there before, so it is not reported.
        if let Ok(f) = File::open(d) {
            let _ = f.sync_all();
        }
    }
    Ok(())
}

struct Staged {
    temp: PathBuf,
    target: PathBuf,
    existed: bool,
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The tag in every temporary name: `.NAME.difyplan-PID-RANDOM.tmp`.
const TEMP_TAG: &str = ".difyplan-";

/// A new temporary file in the target's folder (the `tempfile` crate makes it with a name no
/// other run can take, created exclusively, readable by the owner only: it may be a copy of a
/// `.env`): hidden, and tagged with the process so a crash's leftovers are recognised.
fn temp_file(target: &Path) -> io::Result<tempfile::NamedTempFile> {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let mut builder = tempfile::Builder::new();
    let prefix = format!(".{name}{TEMP_TAG}{}-", std::process::id());
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o600));
    }
    builder.tempfile_in(parent(target))
}

/// Remove temporary copies of `target` that a killed run left behind (they may hold secrets): files
/// named as [`temp_file`] names them, for the same target, whose process is gone.
fn remove_stale_temps(target: &Path) {
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else { return };
    let prefix = format!(".{name}{TEMP_TAG}");
    let Ok(entries) = fs::read_dir(parent(target)) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|f| f.strip_prefix(&prefix)).and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        let Some(pid) =
            rest.split_once('-').filter(|(_, r)| !r.is_empty()).and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        // Signal 0 checks only that the process exists; EPERM means it exists as another user.
        // SAFETY: kill with signal 0 sends nothing.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

fn stage(o: &Output) -> Result<Staged, WriteError> {
    let dir = parent(&o.path);
    let failed = |cause: io::Error| WriteError::Io { path: o.path.clone(), dir: dir.to_path_buf(), cause };
    let mut file = temp_file(&o.path).map_err(|cause| WriteError::Io {
        path: dir.to_path_buf(),
        dir: dir.to_path_buf(),
        cause,
    })?;
    let result = file
        .as_file_mut()
        .write_all(&o.contents)
        .and_then(|_| finish_meta(file.as_file(), o))
        .and_then(|_| file.as_file().sync_all());
    if let Err(e) = result {
        // Dropping the temporary file removes it.
        return Err(failed(e));
    }
    // From here the set's commit renames it, or removes it when another file fails.
    let temp = file.into_temp_path().keep().map_err(|e| failed(e.error))?;
    Ok(Staged { temp, target: o.path.clone(), existed: fs::symlink_metadata(&o.path).is_ok() })
}

/// Give the complete temporary file its owner and its final mode (exact, not filtered by the
/// umask), before it is renamed into place.
fn finish_meta(file: &File, o: &Output) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Some((uid, gid)) = o.owner {
            std::os::unix::fs::fchown(file, Some(uid), Some(gid))?;
        }
        let mode = match o.mode {
            Some(mode) => mode,
            None => 0o644 & !current_umask(),
        };
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (file, o);
    Ok(())
}

/// The process umask (read by setting it and putting it back; difyplan has one thread writing).
#[cfg(unix)]
fn current_umask() -> u32 {
    // SAFETY: umask only swaps the process's file mode mask.
    let old = unsafe { libc::umask(0o022) };
    // SAFETY: as above, restoring the mask just read.
    unsafe { libc::umask(old) };
    old as u32
}

/// What an I/O error means for the user, and what to do.
fn explain(e: &io::Error, dir: &Path) -> String {
    let dir = shown_path(dir);
    match (e.kind(), e.raw_os_error()) {
        (io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge | io::ErrorKind::QuotaExceeded, _) => {
            format!("no space left to write in {dir} ({e}) — free some space or choose another folder")
        }
        (io::ErrorKind::ReadOnlyFilesystem, _) => {
            format!("{dir} is on a read-only file system — choose a writable folder")
        }
        #[cfg(unix)]
        (_, Some(libc::EPERM)) => format!(
            "operation not permitted in {dir}: the file or the folder is immutable or append-only \
             (`lsattr` shows it; `chattr -i` lifts it) or belongs to another user — lift that or choose another folder"
        ),
        (io::ErrorKind::PermissionDenied, _) => {
            format!("permission denied in {dir} — make the folder writable or choose another")
        }
        (io::ErrorKind::NotFound, _) => format!("{dir} does not exist — create it first"),
        #[cfg(unix)]
        (_, Some(libc::ELOOP)) => {
            "a loop of symbolic links in the path — point the link at a real folder (`ls -l` shows where it leads)"
                .into()
        }
        #[cfg(unix)]
        (_, Some(libc::ENAMETOOLONG)) => "the path is too long — choose a shorter folder or file name".into(),
        _ => e.to_string(),
    }
}

/// The owner and group of an existing file, to give its replacement (and its backup) the same.
pub fn owner_of(path: &Path) -> Option<(u32, u32)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path).ok().map(|m| (m.uid(), m.gid()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The permission bits of an existing file, to give its replacement the same ones.
pub fn mode_of(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn writes_a_set_and_keeps_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = Output { path: dir.path().join("a.yaml"), contents: b"a: 1\n".to_vec(), mode: None, owner: None };
        let b = Output { path: dir.path().join("b.yaml"), contents: b"b: 1\n".to_vec(), mode: None, owner: None };
        write_all(&[a.clone(), b.clone()], Existing::Keep).unwrap();
        assert_eq!(listing(dir.path()), ["a.yaml", "b.yaml"]);
        let a2 = Output { contents: b"a: 2\n".to_vec(), ..a.clone() };
        let c = Output { path: dir.path().join("c.yaml"), contents: b"c\n".to_vec(), mode: None, owner: None };
        let err = write_all(&[c.clone(), a2.clone()], Existing::Keep).unwrap_err();
        assert!(matches!(&err, WriteError::Exists(p) if p.ends_with("a.yaml")), "{err}");
        // Nothing of the set was written, not even the new file before the clash.
        assert_eq!(listing(dir.path()), ["a.yaml", "b.yaml"]);
        write_all(&[a2], Existing::Replace).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("a.yaml")).unwrap(), "a: 2\n");
        assert_eq!(listing(dir.path()), ["a.yaml", "b.yaml"]);
    }

    #[cfg(unix)]
    #[test]
    fn keeps_a_given_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".env");
        write_all(
            &[Output { path: p.clone(), contents: b"A=1\n".to_vec(), mode: Some(0o600), owner: None }],
            Existing::Keep,
        )
        .unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn missing_folder_is_made() {
        let dir = tempfile::tempdir().unwrap();
        write_all(
            &[Output {
                path: dir.path().join("nope/deeper/a.yaml"),
                contents: b"a\n".to_vec(),
                mode: None,
                owner: None,
            }],
            Existing::Keep,
        )
        .unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("nope/deeper/a.yaml")).unwrap(), "a\n");
    }
}
