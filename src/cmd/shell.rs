//! `difyplan completions SHELL` and `difyplan man`: generated from the clap definitions, so
//! they always match `--help`.

use super::Io;
use crate::cli::{Cli, CompletionsArgs};
use crate::exit::ExitStatus;
use anyhow::Result;
use clap::CommandFactory;

pub fn completions(args: &CompletionsArgs, io: &mut Io) -> Result<ExitStatus> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "difyplan", &mut script);
    let mut script = String::from_utf8_lossy(&script).into_owned();
    if args.shell == clap_complete::Shell::Bash {
        // `--profile NAME|FILE`: the built-in names, and files too.
        let names = crate::model::profile::BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" ");
        script = script.replace(
            &format!("COMPREPLY=($(compgen -W \"{names}\" -- \"${{cur}}\"))"),
            &format!("COMPREPLY=($(compgen -W \"{names}\" -f -- \"${{cur}}\"))"),
        );
    }
    io.out.write_all(script.as_bytes())?;
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
    write!(io.out, "{MAN_TAIL}")?;
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
    let mut text = String::from_utf8_lossy(&roff).into_owned();
    // clap_mangen writes a repeatable positional as `[PATH]`; the synopsis says it repeats.
    for a in sub.get_positionals() {
        if matches!(a.get_action(), clap::ArgAction::Append) {
            let name =
                a.get_value_names().and_then(|n| n.first()).map_or_else(|| a.get_id().to_string(), |n| n.to_string());
            let one = format!("[\\fI{name}\\fR]");
            text = text.replacen(&format!("{one} "), &format!("{one}... "), 1);
        }
    }
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

/// The sections after the subcommands: what the exit codes mean, the environment read, the files
/// looked for, and examples — for users of an installed binary, who have no README.
const MAN_TAIL: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success: the plan fits, or \fBcheck\fR found nothing at or above \fB\-\-fail\-on\fR.
.TP
\fB1\fR
\fBcheck\fR: a finding reached \fB\-\-fail\-on\fR (default \fBerror\fR; \fB\-\-exit\-zero\fR never exits 1).
\fBsize\fR and \fBrender\fR: the plan does not fit a fixed \fB\-\-pg\-max\-connections\fR.
.TP
\fB2\fR
Bad usage or input: an unreadable or invalid file (named with its line), an unknown flag or code, a failed write.
A closed output pipe is not an error.
.SH ENVIRONMENT
.TP
\fBCOLUMNS\fR
Width that tables and text are fitted to (default: the terminal's; in a pipe, tables stay whole and text wraps at 100 columns). \fB\-\-wide\fR ignores it.
.TP
\fBNO_COLOR\fR
When set and not empty, \fBcheck\fR prints no colour unless \fB\-\-color always\fR. \fBTERM=dumb\fR does the same.
.TP
\fBPGHOST\fR, \fBPGPORT\fR, \fBPGUSER\fR, \fBPGPASSWORD\fR, \fBPGDATABASE\fR, \fBPGSSLMODE\fR, \fBPGSSLROOTCERT\fR
\fBcalibrate\fR: the database to measure, as libpq reads them. \fBcheck\fR never reads the environment: a \fB.env\fR is interpolated from its own values only.
.SH FILES
.TP
\fBdifyplan.toml\fR
\fBcheck\fR's allow\-list: the nearest one from each checked path upward to the repository root, and from the current folder; \fB\-\-config\fR replaces them. Each \fB[[allow]]\fR has \fBcode\fR and \fBreason\fR, optionally \fBcomponent\fR and \fBpath\fR. In a checked file, \fB# difyplan: allow CODE \-\- reason\fR on the line above a finding or at its end accepts it there.
.TP
\fB.env\fR, \fBdocker\-compose.yaml\fR, \fBdocker\-compose.override.yaml\fR, manifests, Helm values
What \fBcheck\fR reads; folders are walked, and a compose folder is one project.
.TP
Profiles
The built\-in profiles \fBchat\fR, \fBworkflow\fR, \fBagent\fR and \fBbenchmark\fR are embedded in the binary; \fB\-\-profile FILE.toml\fR takes one \fBcalibrate \-\-write\-profile\fR wrote. Every profile value is also a flag (\fBdifyplan size \-\-help\fR).
.SH EXAMPLES
.nf
difyplan size \-\-qps 500
difyplan size \-\-qps 200 \-\-pg\-max\-connections 1000 \-\-format env > sizing.env
difyplan render compose \-\-qps 100 \-o docker/
difyplan check docker/ \-\-format sarif > difyplan.sarif
difyplan check docker/ \-\-qps 50 \-\-profile workflow
difyplan explain pool\-deadlock\-risk
difyplan explain \-\-list
difyplan docs model 8
.fi
.SH "SEE ALSO"
\fBdifyplan explain CODE\fR for each finding code of \fBcheck\fR: what it means, what was measured, how to fix or accept it.
\fBdifyplan docs\fR for the documents outputs cite as \fIdocs/model.md §N\fR (the model's facts, figures and rules), \fIdocs/pooler.md\fR and \fIdocs/alerts.md\fR, embedded in the binary.
"#;
