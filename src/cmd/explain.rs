//! `difyplan explain CODE` and `difyplan explain --list`: the full description of a finding
//! code, for users of an installed binary who have no README beside it.

use super::Io;
use crate::cli::ExplainArgs;
use crate::exit::ExitStatus;
use crate::findings::explain;
use anyhow::{Result, bail};

pub fn run(args: &ExplainArgs, io: &mut Io) -> Result<ExitStatus> {
    let width = crate::report::fit::prose_width(false).unwrap_or(crate::report::fit::PIPED_PROSE_WIDTH);
    if args.list {
        write!(io.out, "{}", explain::list())?;
        return Ok(ExitStatus::Success);
    }
    let Some(name) = &args.code else {
        bail!("name a finding code (`difyplan explain pool-deadlock-risk`), or pass --list");
    };
    let code = explain::lookup(name)?;
    write!(io.out, "{}", explain::wrap(&explain::explain(code), width))?;
    Ok(ExitStatus::Success)
}
