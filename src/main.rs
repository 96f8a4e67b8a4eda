//! Parse arguments, call the library, map the result to an exit code.

use clap::Parser;
use difyplan::cli::{Cli, Command};
use difyplan::cmd::{self, Io};
use difyplan::exit::ExitStatus;
use difyplan::safety::escape;
use difyplan::safety::sink::Scrubbed;
use std::io::Write;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { ExitStatus::Error.code() } else { 0 };
            match flag_suggestion(&e) {
                Some(tip) => {
                    // clap's own message, with the tip after its first line.
                    let text = e.render().to_string();
                    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
                    eprint!("{first}\n\n  tip: {tip}\n{rest}");
                }
                None => {
                    let _ = e.print();
                }
            }
            std::process::exit(code);
        }
    };
    // Everything printed goes through the scrubber: no secret a reader saw reaches a log.
    let stdout = std::io::stdout();
    let mut out = Scrubbed::new(stdout.lock());
    let mut err = Scrubbed::new(std::io::stderr());
    let mut io = Io { out: &mut out, err: &mut err };
    let result = match &cli.command {
        Command::Size(args) => cmd::size::run(args, &mut io),
        Command::Check(args) => cmd::check::run(args, &mut io),
        Command::Matrix(args) => cmd::matrix::run(args, &mut io),
        Command::Render(args) => cmd::render::run(args, &mut io),
        Command::Templates(args) => cmd::templates::run(args, &mut io),
        Command::Completions(args) => cmd::shell::completions(args, &mut io),
        Command::Man => cmd::shell::man(&mut io),
        Command::Schema(args) => cmd::schema::run(args, &mut io),
        Command::Calibrate(args) => cmd::calibrate::run(args, &mut io),
        Command::Explain(args) => cmd::explain::run(args, &mut io),
        Command::Docs(args) => cmd::docs::run(args, &mut io),
    };
    let status = match result {
        Ok(status) => status,
        // A closed pipe (`difyplan size | head`) is the reader's choice, not a failure.
        Err(e) if is_broken_pipe(&e) => ExitStatus::Success,
        Err(e) => {
            // One line, with the input's control characters escaped and its secrets scrubbed.
            let message = escape(&format!("{e:#}")).into_owned();
            let _ = writeln!(err, "difyplan: error: {message}");
            let _ = err.flush();
            ExitStatus::Error
        }
    };
    let _ = err.flush();
    if let Err(e) = out.flush()
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        let _ = writeln!(err, "difyplan: error: writing output: {e}");
        let _ = err.flush();
        std::process::exit(ExitStatus::Error.code());
    }
    std::process::exit(status.code());
}

/// For an unknown `--flag` clap finds no near name for (`--qsp`), the nearest flags of the
/// subcommand by edit distance (`strsim`), as "did you mean '--qps'?".
fn flag_suggestion(e: &clap::Error) -> Option<String> {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument || e.get(ContextKind::SuggestedArg).is_some() {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else { return None };
    let wrong = arg.strip_prefix("--")?.split('=').next()?;
    // The subcommand the flag was given to: follow the words of the command line.
    let mut cmd = Cli::command();
    for word in std::env::args().skip(1).take_while(|w| !w.starts_with('-')) {
        match cmd.find_subcommand(&word) {
            Some(sub) => cmd = sub.clone(),
            None => break,
        }
    }
    let longs: Vec<String> = cmd.get_arguments().filter_map(|a| a.get_long().map(str::to_string)).collect();
    let near = difyplan::findings::explain::nearest(wrong, longs.iter().map(String::as_str));
    let first = near.first()?;
    Some(format!("did you mean '--{first}'?"))
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
