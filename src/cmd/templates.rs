//! `difyplan templates`: the built-in templates `render` uses — list their names, or export
//! them into a folder to edit and pass back with `render … --templates DIR`.

use super::Io;
use crate::cli::{TemplatesArgs, TemplatesCommand};
use crate::exit::ExitStatus;
use crate::render::engine::BUILTINS;
use crate::render::write::{self, Existing, Output};
use anyhow::Result;
use std::path::Path;

pub fn run(args: &TemplatesArgs, io: &mut Io) -> Result<ExitStatus> {
    match &args.what {
        TemplatesCommand::List => {
            for b in BUILTINS {
                writeln!(io.out, "{}", b.name)?;
            }
            Ok(ExitStatus::Success)
        }
        TemplatesCommand::Export(a) => export(&a.dir, a.force, io),
    }
}

/// Write every built-in template under `dir` (made when missing), all or nothing; the
/// subfolders the templates live in are made, and removed again if the write fails.
fn export(dir: &Path, force: bool, io: &mut Io) -> Result<ExitStatus> {
    write::check_folder(dir)?;
    let mut made = Vec::new();
    for b in BUILTINS {
        if let Some(sub) = Path::new(b.name).parent().filter(|p| !p.as_os_str().is_empty()) {
            let path = dir.join(sub);
            // A subfolder that is a link would carry the export out of DIR.
            if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_dir()) {
                for d in made.iter().rev() {
                    let _ = std::fs::remove_dir(d);
                }
                anyhow::bail!(
                    "{}: is a symbolic link or a file, not a folder — templates export writes only inside {}; \
                     remove it or export into an empty folder (nothing was written)",
                    crate::safety::shown_path(&path),
                    crate::safety::shown_path(dir)
                );
            }
            if !path.exists() {
                std::fs::create_dir(&path)
                    .map_err(|e| anyhow::anyhow!("{}: {e} — nothing was written", crate::safety::shown_path(&path)))?;
                made.push(path);
            }
        }
    }
    let outputs: Vec<Output> = BUILTINS
        .iter()
        .map(|b| Output { path: dir.join(b.name), contents: b.source.as_bytes().to_vec(), mode: None, owner: None })
        .collect();
    if let Err(e) = write::write_all(&outputs, if force { Existing::Replace } else { Existing::Keep }) {
        for d in made.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        return Err(e.into());
    }
    for o in &outputs {
        writeln!(io.err, "wrote {}", crate::safety::shown_path(&o.path))?;
    }
    Ok(ExitStatus::Success)
}
