//! Colour for the human format: the severity word of each finding, on terminals only. `auto`
//! colours when stdout is a terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`;
//! `always` and `never` say so. Applied after fitting, so widths are measured without escapes;
//! machine formats are never coloured.

use std::io::IsTerminal;

/// Whether to colour, from `--color`.
pub fn enabled(choice: crate::cli::ColorChoice) -> bool {
    use crate::cli::ColorChoice;
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
                && std::io::stdout().is_terminal()
        }
    }
}

/// `text` with each finding line's severity (`error[`, `warning[`, `note[`, `allowed[`) coloured.
pub fn severities(text: &str) -> String {
    const STYLES: [(&str, &str); 4] =
        [("error", "\x1b[1;31m"), ("warning", "\x1b[1;33m"), ("note", "\x1b[1;36m"), ("allowed", "\x1b[2m")];
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        match STYLES.iter().find(|(word, _)| line.strip_prefix(word).is_some_and(|r| r.starts_with('['))) {
            Some((word, style)) => {
                out.push_str(style);
                out.push_str(word);
                out.push_str("\x1b[0m");
                out.push_str(&line[word.len()..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_severity_words_are_coloured() {
        let out = super::severities("error[x] a: b\n  = help: error[y]\nsummary\n");
        assert_eq!(out, "\x1b[1;31merror\x1b[0m[x] a: b\n  = help: error[y]\nsummary\n");
    }
}
