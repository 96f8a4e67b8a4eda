//! `difyplan completions SHELL` and `difyplan man`: generated from the clap definitions, so
//! they always match `--help`.

use super::Io;
use crate::cli::{Cli, CompletionsArgs};
use crate::exit::ExitStatus;
use anyhow::Result;
use clap::CommandFactory;

pub fn completions(args: &CompletionsArgs, io: &mut Io) -> Result<ExitStatus> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "difyplan", io.out);
    Ok(ExitStatus::Success)
}

/// One page, difyplan(1): the top-level synopsis and options, then each subcommand's own.
pub fn man(io: &mut Io) -> Result<ExitStatus> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut head = Vec::new();
    man.render_title(&mut head)?;
    man.render_name_section(&mut head)?;
    man.render_synopsis_section(&mut head)?;
    man.render_description_section(&mut head)?;
    man.render_subcommands_section(&mut head)?;
    // The subcommands are sections of this page, not pages of their own (difyplan-size(1)).
    let head = String::from_utf8_lossy(&head).into_owned();
    let head = head.lines().map(|l| match l.strip_prefix("difyplan\\-").and_then(|r| r.strip_suffix("(1)")) {
        Some(sub) => format!("\\fBdifyplan {sub}\\fR"),
        None => l.to_string(),
    });
    writeln!(io.out, "{}", head.collect::<Vec<_>>().join("\n"))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        section(io, sub, &format!("difyplan {}", sub.get_name()))?;
    }
    man.render_version_section(io.out)?;
    Ok(ExitStatus::Success)
}

/// A subcommand's synopsis, description and options as an `.SH` section of the one page.
fn section(io: &mut Io, sub: &clap::Command, path: &str) -> Result<()> {
    let mut roff = Vec::new();
    let sub = sub.clone().display_name(path.to_string()).bin_name(path.to_string());
    let man = clap_mangen::Man::new(sub.clone());
    man.render_synopsis_section(&mut roff)?;
    man.render_options_section(&mut roff)?;
    if sub.has_subcommands() {
        man.render_subcommands_section(&mut roff)?;
    }
    let text = String::from_utf8_lossy(&roff);
    // The generated headings are SYNOPSIS and OPTIONS; name them after the subcommand.
    let upper = path.to_uppercase();
    let text = text
        .replace(".SH ", ".SS ")
        .replacen(".SS SYNOPSIS", &format!(".SH \"{upper}\""), 1)
        .replace(".SS OPTIONS", ".SS Options")
        .replace(".SS SUBCOMMANDS", ".SS Subcommands");
    write!(io.out, "{text}")?;
    for s in sub.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        section(io, s, &format!("{path} {}", s.get_name()))?;
    }
    Ok(())
}
