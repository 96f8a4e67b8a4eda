//! Reads `.env` files the way docker compose does (compose-go's `dotenv` and `template` packages),
//! interpolating only from an explicit map and keeping line numbers and byte spans for patching.

use std::collections::BTreeMap;
use std::ops::Range;

/// How deep `${A:-${B:-...}}` may nest before we give up. Compose has no limit; ours keeps the
/// recursion (and the work per byte) bounded on hostile input, far above anything a real file uses.
const MAX_NESTING: usize = 32;

/// One assignment read from a `.env` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    /// The value compose would see: quotes removed, escapes and `${VAR}` references resolved.
    pub value: String,
    /// 1-based line of the key (a quoted value may continue on later lines).
    pub line: usize,
    /// Byte range of the value as written, quotes included, without leading blanks, an inline
    /// comment, trailing blanks or the line end. Replacing this range rewrites only the value.
    pub raw_value_span: Range<usize>,
    /// Byte range of the whole statement's line(s), without the final `\n` or `\r\n`.
    pub line_span: Range<usize>,
    /// How the value was written, so a patch can keep the same form.
    pub form: ValueForm,
}

/// The syntactic form of a value; compose treats each differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueForm {
    /// A bare `KEY` line: compose takes the value from its environment, here from `vars`.
    Inherited,
    /// `KEY=value`: ends at ` #` or the line end, trailing blanks trimmed, interpolated.
    Unquoted,
    /// `KEY='value'`: literal, may span lines; only `\'` is unescaped.
    SingleQuoted,
    /// `KEY="value"`: may span lines; escapes processed, then interpolated.
    DoubleQuoted,
}

/// A located problem in a `.env` file, shown as `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// What is wrong, then what to do about it.
    pub message: String,
}

/// Checks that raw file bytes are UTF-8 so that [`parse`] can take `&str`; the error points at the
/// first bad byte, because compose would silently mangle such a file.
pub fn decode<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str, ParseError> {
    std::str::from_utf8(bytes).map_err(|err| {
        let good = &bytes[..err.valid_up_to()];
        // The prefix is valid UTF-8 by construction; the fallback only keeps this panic-free.
        let prefix = std::str::from_utf8(good).unwrap_or("");
        let line = prefix.matches('\n').count() + 1;
        let line_start = prefix.rfind('\n').map_or(0, |i| i + 1);
        let bad = bytes.get(err.valid_up_to()).copied().unwrap_or(0);
        ParseError {
            file: file.to_string(),
            line,
            column: prefix[line_start..].chars().count() + 1,
            message: format!(
                "byte 0x{bad:02x} is not valid UTF-8 — save the file as UTF-8 text"
            ),
        }
    })
}

/// Parse `text` read from `file` (used only in messages). `vars` supplies variables for
/// interpolation; lookups fall back to earlier assignments in the same file, as compose does, and
/// never to the process environment, so a check gives the same answer on every machine.
/// Returns the entries in file order; a bare `KEY` line yields an entry only when `vars` has it.
pub fn parse(
    text: &str,
    file: &str,
    vars: &BTreeMap<String, String>,
) -> Result<Vec<Entry>, ParseError> {
    Parser::new(text, file, vars).run()
}

/// Convenience: the final key→value map (later assignments win, as in compose).
pub fn parse_map(
    text: &str,
    file: &str,
    vars: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ParseError> {
    Ok(parse(text, file, vars)?
        .into_iter()
        .map(|entry| (entry.key, entry.value))
        .collect())
}

/// Interpolate one string with compose's rules (`template.go`): `$VAR`, `${VAR}`, `${VAR:-x}`,
/// `${VAR-x}`, `${VAR:?err}`, `${VAR?err}`, `${VAR:+x}`, `${VAR+x}`, `$$` → `$`, nested defaults.
/// An unset variable becomes the empty string (compose warns; we stay silent). A `$` that starts
/// no reference is kept; a malformed `${...}` or a failed `?` check is an error message.
pub fn interpolate(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    substitute(s, lookup, 0)
}

/// Renders `value` so that compose reads it back unchanged: bare when that is unambiguous,
/// otherwise double-quoted with escapes. `None` for a value holding NUL, which no file can carry.
pub fn quote_value(value: &str) -> Option<String> {
    if value.contains('\0') {
        return None;
    }
    let bare_ok = |c: char| c.is_ascii_alphanumeric() || "_./:@%+,=!?-".contains(c);
    if value.chars().all(bare_ok) {
        return Some(value.to_string());
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ => out.push(c),
        }
    }
    out.push('"');
    Some(out)
}

/// Compose's `isSpace`: blanks that never end a line (`\r` included, so CRLF files just work).
fn is_blank(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ' | '\u{85}' | '\u{a0}')
}

/// Compose accepts letters and digits of any script plus `_ . - [ ]` in a name.
fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']')
}

struct Parser<'a> {
    text: &'a str,
    file: &'a str,
    vars: &'a BTreeMap<String, String>,
    /// Byte offset where each line starts, for line numbers and spans.
    line_starts: Vec<usize>,
    /// Values assigned so far: compose's fallback for interpolation.
    seen: BTreeMap<String, String>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, file: &'a str, vars: &'a BTreeMap<String, String>) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Parser { text, file, vars, line_starts, seen: BTreeMap::new() }
    }

    fn error(&self, at: usize, message: String) -> ParseError {
        let line = self.line_of(at);
        let start = self.line_start(line);
        let column = self.text.get(start..at).map_or(1, |s| s.chars().count() + 1);
        ParseError { file: self.file.to_string(), line, column, message }
    }

    fn line_of(&self, at: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= at).max(1)
    }

    fn line_start(&self, line: usize) -> usize {
        self.line_starts.get(line.saturating_sub(1)).copied().unwrap_or(0)
    }

    /// End of the line holding `at`, before its `\n` or `\r\n`.
    fn line_end(&self, at: usize) -> usize {
        let end = self.text[at..].find('\n').map_or(self.text.len(), |i| at + i);
        if end > at && self.text.as_bytes()[end - 1] == b'\r' { end - 1 } else { end }
    }

    /// Offset just past the line holding `at` (after its `\n`), or the end of the text.
    fn next_line(&self, at: usize) -> usize {
        self.text[at..].find('\n').map_or(self.text.len(), |i| at + i + 1)
    }

    fn skip_blanks(&self, mut at: usize) -> usize {
        for c in self.text[at..].chars() {
            if !is_blank(c) {
                break;
            }
            at += c.len_utf8();
        }
        at
    }

    fn run(mut self) -> Result<Vec<Entry>, ParseError> {
        if let Some(nul) = self.text.find('\0') {
            return Err(self.error(
                nul,
                "NUL byte in the file — a .env file must be plain text; remove the byte".into(),
            ));
        }
        // Compose skips a UTF-8 byte-order mark, which some Windows editors add.
        let mut at = if self.text.starts_with('\u{feff}') { 3 } else { 0 };
        let mut entries = Vec::new();
        while let Some(start) = self.statement_start(at) {
            let (entry, next) = self.statement(start)?;
            if let Some(entry) = entry {
                self.seen.insert(entry.key.clone(), entry.value.clone());
                entries.push(entry);
            }
            at = next;
        }
        Ok(entries)
    }

    /// Skips whitespace (newlines included) and `#` comment lines, like compose's
    /// `getStatementStart`; `None` at the end of the text.
    fn statement_start(&self, mut at: usize) -> Option<usize> {
        loop {
            let rest = &self.text[at..];
            let offset = rest.find(|c: char| !c.is_whitespace())?;
            at += offset;
            if !rest[offset..].starts_with('#') {
                return Some(at);
            }
            at += rest[offset..].find('\n')?;
        }
    }

    /// Parses one statement starting at `start`; returns its entry (if any) and where to go on.
    fn statement(&self, start: usize) -> Result<(Option<Entry>, usize), ParseError> {
        let text = self.text;
        let line = self.line_of(start);
        let line_start = self.line_start(line);
        let key_start = self.after_export(start)?;

        // Locate the end of the name: `=`, `:` (compose's YAML-style form) or the line end.
        let mut separator = None;
        let mut name_end = text.len();
        for (offset, c) in text[key_start..].char_indices() {
            let here = key_start + offset;
            match c {
                '=' | ':' => {
                    separator = Some(here);
                    name_end = here;
                    break;
                }
                '\n' => {
                    name_end = here;
                    break;
                }
                c if is_blank(c) || is_key_char(c) => {}
                c => {
                    let shown = &text[key_start..self.line_end(key_start)];
                    return Err(self.error(
                        here,
                        format!(
                            "unexpected character {c:?} in variable name `{shown}` — names may \
                             use letters, digits, `_`, `.`, `-`, `[` and `]`; write `KEY=value`"
                        ),
                    ));
                }
            }
        }
        let key = text[key_start..name_end].trim_end();
        if key.is_empty() {
            return Err(self.error(
                key_start,
                "missing variable name before the separator — write `KEY=value`".into(),
            ));
        }
        if let Some(space) = key.find(char::is_whitespace) {
            return Err(self.error(
                key_start + space,
                format!(
                    "variable name `{key}` contains a space — remove it, or write `KEY=value`"
                ),
            ));
        }
        let key_end = key_start + key.len();

        let Some(separator) = separator else {
            // A bare `KEY`: compose copies it from its environment, or skips it when unset.
            let entry = self.vars.get(key).map(|value| Entry {
                key: key.to_string(),
                value: value.clone(),
                line,
                raw_value_span: key_end..key_end,
                line_span: line_start..self.line_end(key_start),
                form: ValueForm::Inherited,
            });
            return Ok((entry, self.next_line(key_start)));
        };

        let value_start = self.skip_blanks(separator + 1);
        let (value, raw_end, form, last) = match text.as_bytes().get(value_start) {
            Some(&quote @ (b'"' | b'\'')) => self.quoted(value_start, quote)?,
            _ => {
                let end = text[value_start..].find('\n').map_or(text.len(), |i| value_start + i);
                let segment = &text[value_start..end];
                // An inline comment needs a space before `#`, so `PASS=ab#cd` keeps its `#`.
                let segment = segment.find(" #").map_or(segment, |i| &segment[..i]).trim_end();
                let value = self.interpolate_at(segment, value_start)?;
                (value, value_start + segment.len(), ValueForm::Unquoted, value_start)
            }
        };
        let entry = Entry {
            key: key.to_string(),
            value,
            line,
            raw_value_span: value_start..raw_end,
            line_span: line_start..self.line_end(last),
            form,
        };
        Ok((Some(entry), self.next_line(last)))
    }

    /// Skips compose's optional `export ` prefix (the word followed by whitespace).
    fn after_export(&self, start: usize) -> Result<usize, ParseError> {
        let rest = &self.text[start..];
        let Some(after) = rest.strip_prefix("export") else {
            return Ok(start);
        };
        if !after.starts_with([' ', '\t', '\n', '\x0c', '\r']) {
            return Ok(start);
        }
        let at = self.skip_blanks(start + "export".len());
        if at == self.text.len() || self.text[at..].starts_with('\n') {
            return Err(self.error(
                start,
                "`export` is not followed by a variable name — write `export KEY=value`".into(),
            ));
        }
        Ok(at)
    }

    /// Reads a quoted value opening at `open`; returns the value, the end of its raw text, its
    /// form, and an offset on its last line.
    fn quoted(
        &self,
        open: usize,
        quote: u8,
    ) -> Result<(String, usize, ValueForm, usize), ParseError> {
        let text = self.text;
        let quote = char::from(quote);
        let mut chars = String::new();
        let mut escaped = false;
        let mut close = None;
        for (offset, c) in text[open + 1..].char_indices() {
            if escaped {
                // Compose drops the backslash only before the quote character itself.
                escaped = false;
                if c != quote {
                    chars.push('\\');
                }
                chars.push(c);
            } else if c == '\\' {
                escaped = true;
            } else if c == quote {
                close = Some(open + 1 + offset);
                break;
            } else {
                chars.push(c);
            }
        }
        let Some(close) = close else {
            let kind = if quote == '"' { "double" } else { "single" };
            return Err(self.error(
                open,
                format!(
                    "unterminated {kind}-quoted value: the {quote} opened here is never closed — \
                     add the closing {quote}, or write a literal {quote} as \\{quote}"
                ),
            ));
        };
        // Compose starts its next statement after any whitespace; we only allow a comment there.
        let after = text[close + 1..]
            .find(|c: char| c == '\n' || !c.is_whitespace())
            .map_or(text.len(), |i| close + 1 + i);
        match text[after..].chars().next() {
            None | Some('\n' | '#') => {}
            Some(_) => {
                let shown = &text[after..self.line_end(after)];
                return Err(self.error(
                    after,
                    format!(
                        "unexpected text `{shown}` after the closing {quote} — start a comment \
                         with ` #`, or put the whole value inside the quotes"
                    ),
                ));
            }
        }
        let (value, form) = if quote == '"' {
            (self.interpolate_at(&expand_escapes(&chars), open)?, ValueForm::DoubleQuoted)
        } else {
            (chars, ValueForm::SingleQuoted)
        };
        Ok((value, close + 1, form, close))
    }

    /// Interpolates a value from `vars`, then from earlier assignments (compose's order).
    fn interpolate_at(&self, value: &str, at: usize) -> Result<String, ParseError> {
        let lookup = |name: &str| {
            self.vars.get(name).or_else(|| self.seen.get(name)).cloned()
        };
        substitute(value, &lookup, 0).map_err(|message| self.error(at, message))
    }
}

/// Compose's `expandEscapes` for double-quoted values: `\a \b \f \n \r \t \v \" \\`, `\$` (kept
/// as `$$` so interpolation yields a literal `$`) and `\0ooo` octal. Any other backslash stays,
/// as do compose's quirks: `\0` alone becomes `\`, and a bad octal such as `\012` becomes `\12`.
fn expand_escapes(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    while let Some(offset) = s[at..].find('\\') {
        let slash = at + offset;
        out.push_str(&s[at..slash]);
        at = slash + 2;
        match bytes.get(slash + 1) {
            Some(b'a') => out.push('\x07'),
            Some(b'b') => out.push('\x08'),
            Some(b'f') => out.push('\x0c'),
            Some(b'n') => out.push('\n'),
            Some(b'r') => out.push('\r'),
            Some(b't') => out.push('\t'),
            Some(b'v') => out.push('\x0b'),
            Some(b'"') => out.push('"'),
            Some(b'\\') => out.push('\\'),
            Some(b'$') => out.push_str("$$"),
            Some(b'0') => {
                let digits_end = (at..at + 3)
                    .take_while(|&i| bytes.get(i).is_some_and(u8::is_ascii_digit))
                    .last()
                    .map_or(at, |i| i + 1);
                let digits = &s[at..digits_end];
                let octal = (digits.len() == 3)
                    .then(|| u32::from_str_radix(digits, 8).ok())
                    .flatten()
                    .and_then(|v| u8::try_from(v).ok());
                match octal {
                    Some(byte) => out.push(char::from(byte)),
                    None => {
                        out.push('\\');
                        out.push_str(digits);
                    }
                }
                at = digits_end;
            }
            _ => {
                out.push('\\');
                at = slash + 1;
            }
        }
    }
    out.push_str(&s[at..]);
    out
}

/// Compose's name pattern `[_a-z][_a-z0-9]*`, case-insensitive: returns the end of the name.
fn name_end(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
        .map_or(bytes.len(), |i| start + i)
}

fn is_name_start(b: Option<&u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
}

fn substitute(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    depth: usize,
) -> Result<String, String> {
    if depth > MAX_NESTING {
        return Err(format!(
            "variable references nested more than {MAX_NESTING} levels deep — simplify the value"
        ));
    }
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    while let Some(offset) = s[at..].find('$') {
        let dollar = at + offset;
        out.push_str(&s[at..dollar]);
        match bytes.get(dollar + 1) {
            Some(b'$') => {
                out.push('$');
                at = dollar + 2;
            }
            Some(b'{') => {
                let (value, end) = braced(s, dollar, lookup, depth)?;
                out.push_str(&value);
                at = end;
            }
            next if is_name_start(next) => {
                let end = name_end(bytes, dollar + 1);
                out.push_str(&lookup(&s[dollar + 1..end]).unwrap_or_default());
                at = end;
            }
            // Compose's pattern does not match here, so the `$` is kept as written.
            _ => {
                out.push('$');
                at = dollar + 1;
            }
        }
    }
    out.push_str(&s[at..]);
    Ok(out)
}

/// Resolves the `${...}` starting at `dollar`; returns its value and the offset after it.
fn braced(
    s: &str,
    dollar: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
    depth: usize,
) -> Result<(String, usize), String> {
    let bytes = s.as_bytes();
    let invalid = || {
        let end = s[dollar..].find('\n').map_or(s.len(), |i| dollar + i);
        let shown: String = s[dollar..end].chars().take(60).collect();
        format!(
            "invalid variable reference `{shown}` — write `${{VAR}}`, `${{VAR:-default}}`, \
             or `$$` for a literal `$`"
        )
    };
    let start = dollar + 2;
    if !is_name_start(bytes.get(start)) {
        return Err(invalid());
    }
    let end = name_end(bytes, start);
    let name = &s[start..end];
    if bytes.get(end) == Some(&b'}') {
        return Ok((lookup(name).unwrap_or_default(), end + 1));
    }
    let colon = bytes.get(end) == Some(&b':');
    let op_at = if colon { end + 1 } else { end };
    let Some(&op @ (b'-' | b'+' | b'?')) = bytes.get(op_at) else {
        return Err(invalid());
    };
    let arg_start = op_at + 1;
    let close = closing_brace(bytes, dollar).ok_or_else(invalid)?;
    // Compose resolves the default (or message) before looking at the variable, so an error in
    // an unused default is still an error.
    let arg = substitute(&s[arg_start..close], lookup, depth + 1)?;
    let value = lookup(name);
    let set_and_not_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let present = if colon { set_and_not_empty } else { value.is_some() };
    let result = match op {
        b'-' => {
            if present {
                value.unwrap_or_default()
            } else {
                arg
            }
        }
        b'+' => {
            if present {
                arg
            } else {
                value.unwrap_or_default()
            }
        }
        _ => {
            if !present {
                let reason = if arg.is_empty() { String::new() } else { format!(": {arg}") };
                return Err(format!(
                    "required variable {name} is missing a value{reason} — set {name} in the \
                     file or in the variables given to difyplan"
                ));
            }
            value.unwrap_or_default()
        }
    };
    Ok((result, close + 1))
}

/// Where a `${NAME<op>...}` starting at `dollar` ends, as compose finds it: its pattern reaches
/// the last `}` on the line, then `getFirstBraceClosingIndex` counts braces inside that (a `{`
/// also skips the byte after it). Without a balancing `}` the last `}` on the line closes it.
fn closing_brace(bytes: &[u8], dollar: usize) -> Option<usize> {
    let mut open = 0usize;
    let mut last = None;
    let mut at = dollar;
    while let Some(&b) = bytes.get(at) {
        match b {
            b'\n' => break,
            b'}' => {
                last = Some(at);
                open = open.saturating_sub(1);
                if open == 0 {
                    return Some(at);
                }
            }
            b'{' => {
                open += 1;
                match bytes.get(at + 1) {
                    Some(b'\n') => break,
                    Some(b'}') => last = Some(at + 1),
                    _ => {}
                }
                at += 1;
            }
            _ => {}
        }
        at += 1;
    }
    last
}
