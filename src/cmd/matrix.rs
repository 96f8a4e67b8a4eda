//! `difyplan matrix`: the committed tier tables — every built-in profile and target at 10 to
//! 2,000 QPS in all three editions — printed, or regenerated with `--write`.

use super::Io;
use crate::cli::MatrixArgs;
use crate::dify::db_type::DbType;
use crate::exit::ExitStatus;
use crate::model::assumptions::{Edition, Target};
use crate::model::plan::{self, Plan, PlanInput};
use crate::model::pooler::Pooler;
use crate::model::profile::{self, Profile};
use crate::report;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The tiers of the matrix.
pub const TIERS: [f64; 7] = [10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0];
pub const EDITIONS: [Edition; 3] = [Edition::Test, Edition::Ha, Edition::Performance];
pub const TARGETS: [Target; 2] = [Target::Compose, Target::Kubernetes];

/// Every tier of one built-in profile on one target, with the default assumptions.
pub fn plans(profile: &Profile, target: Target) -> Result<Vec<Plan>> {
    plans_with(profile, target, Pooler::None, DbType::Postgresql)
}

/// Every tier of one built-in profile on one target, with or without a pooler, on PostgreSQL
/// or MySQL.
pub fn plans_with(profile: &Profile, target: Target, pooler: Pooler, db_type: DbType) -> Result<Vec<Plan>> {
    let mut out = Vec::new();
    for qps in TIERS {
        for edition in EDITIONS {
            let input = PlanInput { target, edition, pooler, db_type, ..PlanInput::new(qps, profile.clone()) };
            if db_type == DbType::Mysql {
                super::mysql_supported(&input)?;
            }
            out.push(plan::plan(&input)?);
        }
    }
    Ok(out)
}

/// The committed file's path for a profile and target under `dir`.
pub fn file_path(dir: &Path, profile: &str, target: Target) -> PathBuf {
    dir.join(format!("{profile}-{target}.toml"))
}

/// The text of every matrix file, in a fixed order.
pub fn files(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for (name, _) in profile::BUILTIN {
        let p = Profile::builtin(name)?;
        for target in TARGETS {
            out.push((
                file_path(dir, name, target),
                report::matrix::file_text(name, &target.to_string(), &plans(&p, target)?),
            ));
        }
    }
    Ok(out)
}

pub fn run(args: &MatrixArgs, io: &mut Io) -> Result<ExitStatus> {
    if args.write {
        let outputs: Vec<crate::render::write::Output> = files(&args.dir)?
            .into_iter()
            .filter(|(path, text)| crate::read::read_text(path).ok().as_deref() != Some(text.as_str()))
            .map(|(path, text)| crate::render::write::Output {
                path,
                contents: text.into_bytes(),
                mode: None,
                owner: None,
            })
            .collect();
        let existing =
            if args.force { crate::render::write::Existing::Replace } else { crate::render::write::Existing::Keep };
        crate::render::write::write_all(&outputs, existing)?;
        for o in &outputs {
            writeln!(io.err, "wrote {}", crate::safety::shown_path(&o.path))?;
        }
        if outputs.is_empty() {
            writeln!(io.err, "the matrix files under {} are up to date", crate::safety::shown_path(&args.dir))?;
        }
        return Ok(ExitStatus::Success);
    }
    for (name, _) in profile::BUILTIN {
        if args.profile.as_deref().is_some_and(|p| p != *name) {
            continue;
        }
        let p = Profile::builtin(name)?;
        for target in TARGETS {
            if args.target.is_some_and(|t| t != target) {
                continue;
            }
            let table =
                report::matrix::table(name, &target.to_string(), &plans_with(&p, target, args.pooler, args.db_type)?);
            write!(io.out, "{}", report::fit::fit(&table, report::fit::target_width(args.wide)))?;
            writeln!(io.out)?;
        }
    }
    Ok(ExitStatus::Success)
}
