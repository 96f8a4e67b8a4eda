//! Output that fits the terminal. The table and human formats are made at full width; where
//! the terminal (or `COLUMNS`) is narrower, each table wider than it becomes one record per row
//! (the row's first cell as a title, then `column  value` lines) and long prose lines wrap.
//! `--wide` keeps the full tables. Without a terminal and without `COLUMNS` tables stay whole, so
//! pipes and golden files see the full tables, and prose wraps at [`PIPED_PROSE_WIDTH`] rather
//! than running to thousands of characters. Machine formats never pass through here. Wrapping
//! and display width come from `textwrap` and `unicode-width` (a `─` or a CJK character counts
//! as the columns a terminal gives it).

use std::io::IsTerminal;

/// Narrowest layout attempted; below this lines may still overflow.
const MIN_WIDTH: usize = 30;

/// Where prose wraps when there is no terminal and no `COLUMNS` (a log, a file, a pager):
/// readable in any viewer, and no line of thousands of characters.
pub const PIPED_PROSE_WIDTH: usize = 100;

/// The width prose is wrapped to: [`target_width`]'s, else [`PIPED_PROSE_WIDTH`].
pub fn prose_width(wide: bool) -> Option<usize> {
    target_width(wide).prose.or(Some(PIPED_PROSE_WIDTH))
}

/// What to fit output to: the tables' width and the prose's (`None`: as made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Width {
    pub tables: Option<usize>,
    pub prose: Option<usize>,
}

impl From<Option<usize>> for Width {
    /// Tables and prose fitted to the same width, or neither.
    fn from(w: Option<usize>) -> Width {
        Width { tables: w, prose: w }
    }
}

/// The width to fit: nothing with `--wide`; else `COLUMNS` when it is a positive number; else
/// the terminal's width when stdout is one; else (a pipe, a file) whole tables and prose
/// wrapped at [`PIPED_PROSE_WIDTH`].
pub fn target_width(wide: bool) -> Width {
    if wide {
        return Width { tables: None, prose: None };
    }
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()).filter(|n| *n > 0) {
        return Some(n).into();
    }
    if std::io::stdout().is_terminal()
        && let Some((w, _)) = terminal_size::terminal_size()
    {
        return Some(w.0 as usize).into();
    }
    Width { tables: None, prose: Some(PIPED_PROSE_WIDTH) }
}

/// Columns a terminal gives `s`.
pub fn width_of(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// `text` fitted to `width`: tables wider than its `tables` become records, prose wraps at its
/// `prose`; `None` leaves them as made.
pub fn fit(text: &str, width: impl Into<Width>) -> String {
    let width = width.into();
    let Some(width) = width.tables else {
        return match width.prose {
            Some(p) => wrap_prose(text, p.max(MIN_WIDTH)),
            None => text.to_string(),
        };
    };
    let width = width.max(MIN_WIDTH);
    let mut out = String::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].starts_with('┌') {
            let end = (i..lines.len()).find(|&j| lines[j].starts_with('└')).unwrap_or(lines.len() - 1);
            let table = &lines[i..=end];
            if table.iter().all(|l| width_of(l) <= width) {
                table.iter().for_each(|l| push_line(&mut out, l));
            } else {
                out.push_str(&records(table, width));
            }
            i = end + 1;
        } else {
            out.push_str(&wrap(lines[i], width));
            i += 1;
        }
    }
    out
}

fn push_line(out: &mut String, l: &str) {
    out.push_str(l);
    out.push('\n');
}

/// The cells of a `│ a │ b │` line.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim_start_matches('│').trim_end_matches('│');
    inner.split('│').map(|c| c.trim().to_string()).collect()
}

/// A box-drawn table as one record per row.
fn records(table: &[&str], width: usize) -> String {
    let rows: Vec<Vec<String>> = table.iter().filter(|l| l.starts_with('│')).map(|l| cells(l)).collect();
    let Some((header, body)) = rows.split_first() else { return String::new() };
    // The explain table's second column is the value: `name = value` is its title.
    let (title_cols, sep) = if header.get(1).is_some_and(|h| h == "=") { (2, " = ") } else { (1, " ") };
    let labels = &header[title_cols.min(header.len())..];
    let label_w = labels.iter().map(|l| width_of(l)).max().unwrap_or(0);
    let mut out = String::new();
    push_line(&mut out, &format!("{}:", header[0]));
    for row in body {
        let title: Vec<&str> = row.iter().take(title_cols).map(String::as_str).collect();
        out.push_str(&wrap(&format!("- {}", title.join(sep)), width));
        for (label, value) in labels.iter().zip(row.iter().skip(title_cols)) {
            if value.is_empty() {
                continue;
            }
            let indent = 4 + label_w + 2;
            if indent + 12 <= width {
                let first = format!("    {label:<label_w$}  ");
                out.push_str(&wrap_with(value, width, &first, &" ".repeat(indent)));
            } else {
                push_line(&mut out, &format!("    {label}"));
                out.push_str(&wrap_with(value, width, "      ", "      "));
            }
        }
    }
    out
}

/// A prose line wrapped at word boundaries, continuation lines indented two more than it.
fn wrap(line: &str, width: usize) -> String {
    let lead = line.len() - line.trim_start().len();
    let rest = " ".repeat(lead + 2);
    wrap_with(line.trim_start(), width, &line[..lead], &rest)
}

fn wrap_with(text: &str, width: usize, first: &str, rest: &str) -> String {
    // A word longer than a whole line (a commit hash, a path) is cut where the line ends.
    let options = textwrap::Options::new(width)
        .initial_indent(first)
        .subsequent_indent(rest)
        .break_words(true)
        // `--pg-max-connections` and `per-service` stay whole.
        .word_splitter(textwrap::WordSplitter::NoHyphenation);
    let mut out = String::new();
    for l in textwrap::wrap(text, options) {
        push_line(&mut out, l.trim_end());
    }
    if out.is_empty() {
        push_line(&mut out, first.trim_end());
    }
    out
}

/// Every line outside a box-drawn table wrapped at `width`; tables untouched.
fn wrap_prose(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut in_table = false;
    for l in text.lines() {
        in_table |= l.starts_with('┌');
        if in_table || width_of(l) <= width {
            push_line(&mut out, l);
        } else {
            out.push_str(&wrap(l, width));
        }
        in_table &= !l.starts_with('└');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str =
        "┌──────┬────────┐\n│ name │ value  │\n├──────┼────────┤\n│ a    │ 1 2 3  │\n└──────┴────────┘\n";

    #[test]
    fn piped_prose_wraps_but_tables_stay_whole() {
        let wide = TABLE.replace("────────", &"─".repeat(150));
        let text = format!("{}\n{wide}", "word ".repeat(60));
        let out = fit(&text, Width { tables: None, prose: Some(PIPED_PROSE_WIDTH) });
        assert!(out.contains(&wide), "{out}");
        assert!(out.lines().filter(|l| !l.contains('─')).all(|l| width_of(l) <= PIPED_PROSE_WIDTH), "{out}");
    }

    #[test]
    fn a_table_that_fits_is_unchanged() {
        assert_eq!(fit(TABLE, Some(80)), TABLE);
        assert_eq!(fit(TABLE, None), TABLE);
    }

    #[test]
    fn a_wide_table_becomes_records_within_the_width() {
        let long = TABLE.replace("1 2 3 ", &"word ".repeat(20));
        let wide = long.replace("────────", &"─".repeat(101));
        let out = fit(&wide, Some(40));
        assert!(out.lines().all(|l| width_of(l) <= 40), "{out}");
        assert!(out.starts_with("name:\n- a\n    value  word word"), "{out}");
    }

    #[test]
    fn prose_wraps_with_a_hanging_indent() {
        let out = fit(&format!("note: {}\n", "x ".repeat(40)), Some(30));
        assert!(out.lines().all(|l| width_of(l) <= 30), "{out}");
        assert!(out.lines().nth(1).unwrap().starts_with("  x"), "{out}");
    }

    #[test]
    fn a_word_longer_than_the_line_is_cut() {
        let out = fit(&format!("source {}\n", "a".repeat(70)), Some(30));
        assert!(out.lines().all(|l| width_of(l) <= 30), "{out}");
        assert_eq!(out.replace(['\n', ' '], ""), format!("source{}", "a".repeat(70)));
    }
}
