//! The safe writer: every file goes to a temporary file in its target folder, is flushed to
//! disk and renamed into place, so no reader ever sees half a file and a failed write leaves
//! nothing behind. A set of files is all or nothing, and an existing file is kept unless the
//! caller was told `--force`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// One file to write.
#[derive(Debug, Clone)]
pub struct Output {
    pub path: PathBuf,
    pub contents: Vec<u8>,
    /// Unix permission bits for a new file (a copy of the original's for a patched `.env`,
    /// which holds secrets); `None` for the default (0644 less the umask).
    pub mode: Option<u32>,
}

/// A write that could not be done, with the path and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WriteError(pub String);

/// Whether existing files may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Never overwrite: the command says which file is in the way.
    Keep,
    /// `--force`.
    Replace,
}

/// Check that `dir` is a folder that exists. `-o DIR` never creates folders: a typo in a path
/// should not silently make a new tree.
pub fn check_folder(dir: &Path) -> Result<(), WriteError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(WriteError(format!("{}: is a file, not a folder — pass a folder to -o", dir.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(WriteError(format!(
            "{}: no such folder — create it first (difyplan does not create folders)",
            dir.display()
        ))),
        Err(e) => Err(WriteError(format!("{}: {e}", dir.display()))),
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
            return Err(WriteError(format!(
                "{}: already exists — nothing was written; pass --force to replace it, or choose another folder",
                o.path.display()
            )));
        }
        if fs::metadata(&o.path).is_ok_and(|m| m.is_dir()) {
            return Err(WriteError(format!(
                "{}: is a folder — nothing was written; remove it or choose another folder",
                o.path.display()
            )));
        }
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
            return Err(WriteError(format!(
                "{}: {} — nothing was written",
                s.target.display(),
                explain(&e, parent(&s.target))
            )));
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

/// A temporary name in the target's folder: hidden, tagged with the process and a counter so
/// concurrent runs never collide, and recognisable if a crash ever leaves one behind.
fn temp_name(target: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    parent(target).join(format!(".{name}.difyplan-{}-{n}.tmp", std::process::id()))
}

fn stage(o: &Output) -> Result<Staged, WriteError> {
    let dir = parent(&o.path);
    let temp = temp_name(&o.path);
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(o.mode.unwrap_or(0o644));
    }
    let mut file = opts
        .open(&temp)
        .map_err(|e| WriteError(format!("{}: {} — nothing was written", dir.display(), explain(&e, dir))))?;
    let result = file.write_all(&o.contents).and_then(|_| file.sync_all());
    if let Err(e) = result {
        drop(file);
        let _ = fs::remove_file(&temp);
        return Err(WriteError(format!("{}: {} — nothing was written", o.path.display(), explain(&e, dir))));
    }
    #[cfg(unix)]
    if let Some(mode) = o.mode {
        // `mode` at open is filtered by the umask; a copied mode must be exact.
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(&temp, fs::Permissions::from_mode(mode));
    }
    Ok(Staged { temp, target: o.path.clone(), existed: o.path.exists() })
}

/// What an I/O error means for the user, and what to do.
fn explain(e: &io::Error, dir: &Path) -> String {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge | io::ErrorKind::QuotaExceeded => {
            format!("no space left to write in {} ({e}) — free some space or choose another folder", dir.display())
        }
        io::ErrorKind::ReadOnlyFilesystem => {
            format!("{} is on a read-only file system — choose a writable folder", dir.display())
        }
        io::ErrorKind::PermissionDenied => {
            format!("permission denied in {} — make the folder writable or choose another", dir.display())
        }
        io::ErrorKind::NotFound => format!("{} does not exist — create it first", dir.display()),
        _ => e.to_string(),
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
        let a = Output { path: dir.path().join("a.yaml"), contents: b"a: 1\n".to_vec(), mode: None };
        let b = Output { path: dir.path().join("b.yaml"), contents: b"b: 1\n".to_vec(), mode: None };
        write_all(&[a.clone(), b.clone()], Existing::Keep).unwrap();
        assert_eq!(listing(dir.path()), ["a.yaml", "b.yaml"]);
        let a2 = Output { contents: b"a: 2\n".to_vec(), ..a.clone() };
        let c = Output { path: dir.path().join("c.yaml"), contents: b"c\n".to_vec(), mode: None };
        let err = write_all(&[c.clone(), a2.clone()], Existing::Keep).unwrap_err().0;
        assert!(err.contains("a.yaml: already exists"), "{err}");
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
        write_all(&[Output { path: p.clone(), contents: b"A=1\n".to_vec(), mode: Some(0o600) }], Existing::Keep)
            .unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn missing_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            write_all(&[Output { path: dir.path().join("nope/a.yaml"), contents: vec![], mode: None }], Existing::Keep)
                .unwrap_err()
                .0;
        assert!(err.contains("no such folder"), "{err}");
    }
}
