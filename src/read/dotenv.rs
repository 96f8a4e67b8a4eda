//! Reads `.env` files the way docker compose does (compose-go's `dotenv` and `template` packages),
//! interpolating only from an explicit map and keeping line numbers and byte spans for patching.

use std::collections::BTreeMap;
use std::ops::Range;

/// How deep `${A:-${B:-...}}` may nest before we give up. Compose has no limit; ours keeps the
/// recursion (and the work per byte) bounded on hostile input, far above anything a real file uses.
const MAX_NESTING: usize = 32;

/// The most assignments one `.env` may hold: Dify's has about 600, so this is far above any real
/// file and keeps what a file turns into (entries, their sources) bounded in memory.
pub const MAX_ENTRIES: usize = 20_000;

/// The longest value interpolation may produce (a certificate or a credentials JSON is a few KB).
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// The most bytes all values of one file may expand to (the size limit of the file itself).
pub const MAX_TOTAL_BYTES: usize = 16 << 20;

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
            message: format!("byte 0x{bad:02x} is not valid UTF-8 — save the file as UTF-8 text"),
        }
    })
}

/// Parse `text` read from `file` (used only in messages). `vars` supplies variables for
/// interpolation; lookups fall back to earlier assignments in the same file, as compose does, and
/// never to the process environment, so a check gives the same answer on every machine.
/// Returns the entries in file order; a bare `KEY` line yields an entry only when `vars` has it.
pub fn parse(text: &str, file: &str, vars: &BTreeMap<String, String>) -> Result<Vec<Entry>, ParseError> {
    Parser::new(text, file, vars).run()
}

/// Convenience: the final key→value map (later assignments win, as in compose).
pub fn parse_map(
    text: &str,
    file: &str,
    vars: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ParseError> {
    Ok(parse(text, file, vars)?.into_iter().map(|entry| (entry.key, entry.value)).collect())
}

/// Interpolate one string with compose's rules (`template.go`): `$VAR`, `${VAR}`, `${VAR:-x}`,
/// `${VAR-x}`, `${VAR:?err}`, `${VAR?err}`, `${VAR:+x}`, `${VAR+x}`, `$$` → `$`, nested defaults.
/// An unset variable becomes the empty string (compose warns; we stay silent). A `$` that starts
/// no reference is kept; a malformed `${...}` or a failed `?` check is an error message.
pub fn interpolate(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Interpolation> {
    substitute(s, lookup, 0)
}

/// Why a value cannot be interpolated as compose would; the caller adds where it was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Interpolation {
    #[error("variable references nested more than {MAX_NESTING} levels deep — simplify the value")]
    TooDeep,
    #[error(
        "the value expands to more than {} MiB — a chain of `${{VAR}}` references that copies values into \
         each other; write the value out",
        MAX_VALUE_BYTES >> 20
    )]
    TooLong,
    /// A `${` at this 1-based byte of the value that does not form a reference. The reference is
    /// not quoted: in a password, `${` is just part of the secret.
    #[error(
        "invalid variable reference (a `${{` at byte {0} of the value that does not form one) — write \
         `${{VAR}}`, `${{VAR:-default}}`, or `$$` for a literal `$`"
    )]
    InvalidReference(usize),
    /// `${NAME:?message}` with NAME unset (or empty).
    #[error(
        "required variable {name} is missing a value{} — set {name} in the file or in the variables given \
         to difyplan",
        if message.is_empty() { String::new() } else { format!(": {message}") }
    )]
    Required { name: String, message: String },
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
    /// Keys whose values were interpolated from a secret.
    tainted: std::cell::RefCell<std::collections::BTreeSet<String>>,
    /// Whether the statement being read used a secret.
    uses_secret: std::cell::Cell<bool>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, file: &'a str, vars: &'a BTreeMap<String, String>) -> Self {
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Parser {
            text,
            file,
            vars,
            line_starts,
            seen: BTreeMap::new(),
            tainted: Default::default(),
            uses_secret: Default::default(),
        }
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
        if end > 0 && self.text.as_bytes()[end - 1] == b'\r' { end - 1 } else { end }
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
            return Err(
                self.error(nul, "NUL byte in the file — a .env file must be plain text; remove the byte".into())
            );
        }
        // Compose skips a UTF-8 byte-order mark, which some Windows editors add.
        let mut at = if self.text.starts_with('\u{feff}') { 3 } else { 0 };
        let mut entries = Vec::new();
        let mut total = 0usize;
        while let Some(start) = self.statement_start(at) {
            if entries.len() == MAX_ENTRIES {
                return Err(self.error(
                    start,
                    format!(
                        "more than {MAX_ENTRIES} assignments — Dify's .env has about 600; pass the \
                         .env itself, not a generated or concatenated file"
                    ),
                ));
            }
            self.uses_secret.set(false);
            let (entry, next) = self.statement(start)?;
            if let Some(entry) = entry {
                total += entry.value.len();
                if total > MAX_TOTAL_BYTES {
                    return Err(self.error(
                        start,
                        format!(
                            "the values expand to more than {} MiB in all — `${{VAR}}` references \
                             copy long values many times; write the values out",
                            MAX_TOTAL_BYTES >> 20
                        ),
                    ));
                }
                crate::safety::note(&entry.key, &entry.value);
                if self.uses_secret.get() {
                    crate::safety::secret::register(&entry.value);
                    self.tainted.borrow_mut().insert(entry.key.clone());
                }
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
                    // Only the name read so far is shown: the rest of the line may be a secret.
                    let shown = crate::safety::escape(text[key_start..here].trim_end());
                    return Err(self.error(
                        here,
                        format!(
                            "unexpected character {} in variable name `{shown}…` — names may \
                             use letters, digits, `_`, `.`, `-`, `[` and `]`; write `KEY=value`",
                            crate::safety::escape(&format!("{c:?}"))
                        ),
                    ));
                }
            }
        }
        let key = text[key_start..name_end].trim_end();
        if key.is_empty() {
            return Err(self.error(key_start, "missing variable name before the separator — write `KEY=value`".into()));
        }
        if let Some(space) = key.find(char::is_whitespace) {
            // `DB_PASSWORD S3cret`: what follows the space is likely the value, never shown.
            let name = crate::safety::escape(&key[..space]);
            return Err(self.error(
                key_start + space,
                format!(
                    "variable name `{name}` contains a space, then more text (not shown) — write \
                     `{name}=value`, or remove the space"
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

        let mut value_start = self.skip_blanks(separator + 1);
        // An empty value on a CRLF line: the value ends where the line does, before the `\r`.
        if value_start > separator + 1
            && text.as_bytes().get(value_start) == Some(&b'\n')
            && text.as_bytes()[value_start - 1] == b'\r'
        {
            value_start -= 1;
        }
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
            return Err(
                self.error(start, "`export` is not followed by a variable name — write `export KEY=value`".into())
            );
        }
        Ok(at)
    }

    /// Reads a quoted value opening at `open`; returns the value, the end of its raw text, its
    /// form, and an offset on its last line.
    fn quoted(&self, open: usize, quote: u8) -> Result<(String, usize, ValueForm, usize), ParseError> {
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
        let after =
            text[close + 1..].find(|c: char| c == '\n' || !c.is_whitespace()).map_or(text.len(), |i| close + 1 + i);
        match text[after..].chars().next() {
            None | Some('\n' | '#') => {}
            Some(_) => {
                // The text is not shown: it may be the rest of a secret.
                return Err(self.error(
                    after,
                    format!(
                        "unexpected text after the closing {quote} (not shown) — start a comment \
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
            // A value built from a secret is a secret too.
            if crate::safety::is_secret_key(name) || self.tainted.borrow().contains(name) {
                self.uses_secret.set(true);
            }
            self.vars.get(name).or_else(|| self.seen.get(name)).cloned()
        };
        substitute(value, &lookup, 0).map_err(|message| self.error(at, message.to_string()))
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
    bytes[start..].iter().position(|b| !(b.is_ascii_alphanumeric() || *b == b'_')).map_or(bytes.len(), |i| start + i)
}

fn is_name_start(b: Option<&u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
}

fn substitute(s: &str, lookup: &dyn Fn(&str) -> Option<String>, depth: usize) -> Result<String, Interpolation> {
    if depth > MAX_NESTING {
        return Err(Interpolation::TooDeep);
    }
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    while let Some(offset) = s[at..].find('$') {
        // `B=${A}${A}`, `C=${B}${B}`, … doubles at each line: values are bounded, like YAML aliases.
        if out.len() > MAX_VALUE_BYTES {
            return Err(Interpolation::TooLong);
        }
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
    if out.len() > MAX_VALUE_BYTES {
        return Err(Interpolation::TooLong);
    }
    Ok(out)
}

/// Resolves the `${...}` starting at `dollar`; returns its value and the offset after it.
fn braced(
    s: &str,
    dollar: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
    depth: usize,
) -> Result<(String, usize), Interpolation> {
    let bytes = s.as_bytes();
    let invalid = || Interpolation::InvalidReference(dollar + 1);
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
                return Err(Interpolation::Required { name: name.to_string(), message: arg });
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Expected outcome: the entries `(key, value, line)` in order, or `(line, part of message)`.
    type Expect = Result<&'static [(&'static str, &'static str, usize)], (usize, &'static str)>;

    struct Case {
        name: &'static str,
        text: &'static str,
        vars: &'static [(&'static str, &'static str)],
        expect: Expect,
    }

    const fn ok(
        name: &'static str,
        text: &'static str,
        entries: &'static [(&'static str, &'static str, usize)],
    ) -> Case {
        Case { name, text, vars: &[], expect: Ok(entries) }
    }

    const fn err(name: &'static str, text: &'static str, line: usize, msg: &'static str) -> Case {
        Case { name, text, vars: &[], expect: Err((line, msg)) }
    }

    const fn with_vars(mut case: Case, vars: &'static [(&'static str, &'static str)]) -> Case {
        case.vars = vars;
        case
    }

    /// Each case states what compose-go's `dotenv` parser gives for the same input (see
    /// `parser.go`, `godotenv_test.go` and `template.go` in compose-spec/compose-go v2).
    #[rustfmt::skip]
    const CASES: &[Case] = &[
        ok("plain", "FOO=bar", &[("FOO", "bar", 1)]),
        ok("blanks around key and value", "  FOO  =  bar  ", &[("FOO", "bar", 1)]),
        ok("tab before key", "\tKEY=value", &[("KEY", "value", 1)]),
        ok("export prefix", "export FOO=bar", &[("FOO", "bar", 1)]),
        ok("export with tab", "export\tFOO=2", &[("FOO", "2", 1)]),
        ok("export as part of a name", "exportFOO=2\nexport_FOO =3", &[("exportFOO", "2", 1), ("export_FOO", "3", 2)]),
        ok("yaml-style colon", "OPTION_A: 1", &[("OPTION_A", "1", 1)]),
        ok("yaml-style with equals in value", "OPTION_A: Foo=bar", &[("OPTION_A", "Foo=bar", 1)]),
        ok("colon inside value", "OPTION_A=1:B", &[("OPTION_A", "1:B", 1)]),
        ok("equals inside value", "URL=postgres://h:5432/db?sslmode=disable", &[("URL", "postgres://h:5432/db?sslmode=disable", 1)]),
        ok("trailing equals", "FOO=foobar=", &[("FOO", "foobar=", 1)]),
        ok("name with dot, dash, brackets", "a.b-c[0]=1", &[("a.b-c[0]", "1", 1)]),
        ok("empty value", "KEY=\nNEXT=1", &[("KEY", "", 1), ("NEXT", "1", 2)]),
        ok("empty double quotes", "KEY=\"\"", &[("KEY", "", 1)]),
        ok("empty single quotes", "KEY=''", &[("KEY", "", 1)]),
        ok("inline comment", "FOO=bar # this is foo", &[("FOO", "bar", 1)]),
        ok("hash without space is value", "PASS=ab#cd", &[("PASS", "ab#cd", 1)]),
        ok("hash after tab is value", "A=b\t#c", &[("A", "b\t#c", 1)]),
        ok("value starting with hash", "A=#x", &[("A", "#x", 1)]),
        ok("blank then hash after = is value", "A= # c", &[("A", "# c", 1)]),
        ok("comments and blank lines", "# c\n\n  # indented\n\t\nA=1\n", &[("A", "1", 5)]),
        ok("CRLF line endings", "A=1\r\nB='2'\r\nC=\"3\"\r\n\r\nD=\r\nE\r\n", &[("A", "1", 1), ("B", "2", 2), ("C", "3", 3), ("D", "", 5)]),
        ok("double-quote escapes", r#"A="a\nb\tc\"d\\e\rf""#, &[("A", "a\nb\tc\"d\\e\rf", 1)]),
        ok("unknown escape kept", r#"A="a\qb\xc""#, &[("A", "a\\qb\\xc", 1)]),
        ok("octal escapes", r#"A="\0123|\0|\012|\0400""#, &[("A", "S|\\|\\12|\\400", 1)]),
        ok("single quotes are literal", r"A='a\nb $X ${Y:?no}'", &[("A", "a\\nb $X ${Y:?no}", 1)]),
        ok("escaped single quote", r"A='it\'s'", &[("A", "it's", 1)]),
        ok("escaped double quote", r#"FOO="escaped\"bar""#, &[("FOO", "escaped\"bar", 1)]),
        ok("single quotes inside double", r#"FOO="'d'""#, &[("FOO", "'d'", 1)]),
        ok("quotes inside unquoted value", r#"A=a"b'c"#, &[("A", "a\"b'c", 1)]),
        ok("escaped dollar in double quotes", r#"A="foo\$BAR""#, &[("A", "foo$BAR", 1)]),
        ok("escaped and real reference", "FOO=test\nBAR=\"foo\\${FOO} ${FOO}\"", &[("FOO", "test", 1), ("BAR", "foo${FOO} test", 2)]),
        ok("multi-line double quotes", "A=\"line1\nline2\"\nB=2", &[("A", "line1\nline2", 1), ("B", "2", 3)]),
        ok("multi-line single quotes", "A='x\n# not a comment\ny'\nB=3", &[("A", "x\n# not a comment\ny", 1), ("B", "3", 4)]),
        ok("comment after closing quote", "A=\"x # y\" # comment\nB='z'#c", &[("A", "x # y", 1), ("B", "z", 2)]),
        ok("blank before quote", "A=  'x'", &[("A", "x", 1)]),
        ok("bare key unset is skipped", "HOST\nA=1", &[("A", "1", 2)]),
        with_vars(ok("bare key from vars", "HOST\nA=$HOST", &[("HOST", "h", 1), ("A", "h", 2)]), &[("HOST", "h")]),
        ok("bare key at end of file", "A=1\nHOST", &[("A", "1", 1)]),
        with_vars(ok("interpolate from vars", "A=${X}/$X", &[("A", "1/1", 1)]), &[("X", "1")]),
        ok("interpolate from earlier line", "A=1\nB=$A-${A}", &[("A", "1", 1), ("B", "1-1", 2)]),
        with_vars(ok("vars win over earlier lines", "A=1\nB=$A", &[("A", "1", 1), ("B", "9", 2)]), &[("A", "9")]),
        ok("later line not visible", "B=$A\nA=1", &[("B", "", 1), ("A", "1", 2)]),
        ok("unset is empty", "A=x${NOPE}y$NOPE", &[("A", "xy", 1)]),
        ok("double dollar", "A=$$HOME and $${X}", &[("A", "$HOME and ${X}", 1)]),
        ok("lone dollar kept", "A=a$1b $ c$ $-", &[("A", "a$1b $ c$ $-", 1)]),
        ok(":- when unset", "A=${U:-d}", &[("A", "d", 1)]),
        with_vars(ok(":- when empty", "A=${U:-d}", &[("A", "d", 1)]), &[("U", "")]),
        ok("- when unset", "A=${U-d}", &[("A", "d", 1)]),
        with_vars(ok("- when empty", "A=${U-d}", &[("A", "", 1)]), &[("U", "")]),
        with_vars(ok(":+ when set", "A=${U:+x}", &[("A", "x", 1)]), &[("U", "v")]),
        with_vars(ok(":+ when empty", "A=${U:+x}", &[("A", "", 1)]), &[("U", "")]),
        with_vars(ok("+ when empty", "A=${U+x}", &[("A", "x", 1)]), &[("U", "")]),
        ok("+ when unset", "A=${U+x}", &[("A", "", 1)]),
        with_vars(ok("? when empty", "A=${U?must}", &[("A", "", 1)]), &[("U", "")]),
        with_vars(ok(":? when set", "A=${U:?must}", &[("A", "v", 1)]), &[("U", "v")]),
        err(":? when unset", "A=1\nB=${U:?please set U}", 2, "required variable U is missing a value: please set U"),
        with_vars(err(":? when empty", "A=${U:?}", 1, "required variable U is missing a value —"), &[("U", "")]),
        err("? when unset", "A=${U?}", 1, "required variable U is missing a value"),
        err(":? in double quotes", "A=\"x\ny${U:?gone}\"", 1, "gone"),
        ok("nested default", "A=${U:-${V:-c}}", &[("A", "c", 1)]),
        with_vars(ok("nested default inner set", "A=${U:-${V:-c}}", &[("A", "v", 1)]), &[("V", "v")]),
        ok("brace after reference", "A=${U:-x}}", &[("A", "x}", 1)]),
        ok("compose profiles", "COMPOSE_PROFILES=${VECTOR_STORE:-weaviate},${DB_TYPE:-postgresql},collaboration", &[("COMPOSE_PROFILES", "weaviate,postgresql,collaboration", 1)]),
        ok("date format", "LOG_DATEFORMAT=%Y-%m-%d %H:%M:%S", &[("LOG_DATEFORMAT", "%Y-%m-%d %H:%M:%S", 1)]),
        ok("value with spaces", "NGINX_SSL_PROTOCOLS=TLSv1.2 TLSv1.3", &[("NGINX_SSL_PROTOCOLS", "TLSv1.2 TLSv1.3", 1)]),
        ok("duplicate keys kept in order", "A=1\nA=2", &[("A", "1", 1), ("A", "2", 2)]),
        ok("utf-8 value", "A=héllo wörld ✓", &[("A", "héllo wörld ✓", 1)]),
        ok("byte-order mark", "\u{feff}A=1", &[("A", "1", 1)]),
        err("unterminated double quote", "A=1\nB=\"abc\nC=2", 2, "unterminated double-quoted value"),
        err("unterminated single quote", "A='abc", 1, "unterminated single-quoted value"),
        err("lone quote", "KEY=\"", 1, "unterminated"),
        err("text after closing quote", "A=\"x\" y", 1, "after the closing"),
        err("invalid character in name", "A=1\nlol$wut", 2, "unexpected character '$' in variable name"),
        err("space in name", "A B=1", 1, "contains a space"),
        err("missing name", "=value", 1, "missing variable name"),
        err("export alone", "export\nA=1", 1, "`export` is not followed"),
        err("invalid braced name", "A=${1}", 1, "invalid variable reference"),
        err("empty braces", "A=${}", 1, "invalid variable reference"),
        err("unknown operator", "A=${U:x}", 1, "invalid variable reference"),
        err("unclosed brace", "A=${U", 1, "invalid variable reference"),
        err("unclosed default", "A=${U:-x\nB=}", 1, "invalid variable reference"),
        err("comment cuts a reference", "A=${U:-x #y}", 1, "invalid variable reference"),
        err("NUL byte", "A=1\nB=x\0", 2, "NUL byte"),
    ];

    /// `KEY=` on a CRLF line: the value's span is empty and sits before the `\r`, and the line's
    /// span leaves the `\r` out, so a patch keeps the line ending.
    #[test]
    fn empty_value_on_crlf_line() {
        let text = "A=\r\nB=2\r\n";
        let entries = parse(text, "t.env", &BTreeMap::new()).unwrap();
        assert_eq!(entries[0].value, "");
        assert_eq!(entries[0].raw_value_span, 2..2);
        assert_eq!(entries[0].line_span, 0..2);
        assert_eq!(entries[1].line_span, 4..7);
    }

    #[test]
    fn compose_syntax_table() {
        assert!(CASES.len() >= 40);
        let mut failures = Vec::new();
        for case in CASES {
            let got = parse(case.text, "t.env", &map(case.vars));
            let ok = match (&got, &case.expect) {
                (Ok(entries), Ok(expected)) => {
                    let got: Vec<_> = entries.iter().map(|e| (e.key.as_str(), e.value.as_str(), e.line)).collect();
                    got == *expected
                }
                (Err(e), Err((line, msg))) => e.line == *line && e.message.contains(msg),
                _ => false,
            };
            if !ok {
                failures.push(format!("{}: got {got:?}, expected {:?}", case.name, case.expect));
            }
        }
        assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
    }

    #[test]
    fn parse_map_last_assignment_wins() {
        let got = parse_map("A=1\nB=2\nA=3\n", "t.env", &BTreeMap::new()).expect("parses");
        assert_eq!(got, map(&[("A", "3"), ("B", "2")]));
    }

    #[test]
    fn error_display_and_columns() {
        let e = parse("A=1\n  lol$wut=2\n", "deploy/.env", &BTreeMap::new()).expect_err("bad key");
        assert_eq!((e.line, e.column), (2, 6));
        assert!(e.to_string().starts_with("deploy/.env:2:6: unexpected character '$'"), "{e}");
        assert!(e.message.contains(" — "), "says what to do: {e}");

        let e = parse("A=1\nB= \"ab\ncd", "x.env", &BTreeMap::new()).expect_err("open quote");
        assert_eq!((e.line, e.column), (2, 4), "points at the opening quote: {e}");
        let _: &dyn std::error::Error = &e;
    }

    #[test]
    fn spans_cover_the_text_as_written() {
        let text = "# head\r\n  export A = 'x y' # c\r\nB=\"l1\nl2\"\r\nC=plain  # note\nD=\nE=tail";
        let entries = parse(text, "t.env", &BTreeMap::new()).expect("parses");
        let got: Vec<_> = entries
            .iter()
            .map(|e| (e.key.as_str(), &text[e.raw_value_span.clone()], &text[e.line_span.clone()], e.form))
            .collect();
        assert_eq!(
            got,
            [
                ("A", "'x y'", "  export A = 'x y' # c", ValueForm::SingleQuoted),
                ("B", "\"l1\nl2\"", "B=\"l1\nl2\"", ValueForm::DoubleQuoted),
                ("C", "plain", "C=plain  # note", ValueForm::Unquoted),
                ("D", "", "D=", ValueForm::Unquoted),
                ("E", "tail", "E=tail", ValueForm::Unquoted),
            ]
        );
        assert_eq!(entries.iter().map(|e| e.line).collect::<Vec<_>>(), [2, 3, 5, 6, 7]);

        let vars = map(&[("HOST", "h")]);
        let entries = parse("HOST\r\n", "t.env", &vars).expect("parses");
        assert_eq!(entries[0].form, ValueForm::Inherited);
        assert_eq!(entries[0].raw_value_span, 4..4);
        assert_eq!(entries[0].line_span, 0..4);
    }

    #[test]
    fn interpolate_alone() {
        let lookup = |name: &str| (name == "SET").then(|| "v".to_string());
        assert_eq!(interpolate("${SET}-${UNSET:-d}-$$", &lookup), Ok("v-d-$".to_string()));
        let e = interpolate("${UNSET:?needed for x}", &lookup).expect_err("required");
        assert_eq!(e, Interpolation::Required { name: "UNSET".into(), message: "needed for x".into() });
        assert!(e.to_string().starts_with("required variable UNSET is missing a value: needed for x"), "{e}");
        // compose resolves a default before it knows whether the default is needed
        assert!(interpolate("${SET:-${UNSET:?boom}}", &lookup).is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}x{}", "${U:-".repeat(40), "}".repeat(40));
        let e = interpolate(&deep, &|_: &str| None).expect_err("too deep");
        assert_eq!(e, Interpolation::TooDeep);
        assert!(e.to_string().contains("nested more than 32"), "{e}");
        let fine = format!("{}x{}", "${U:-".repeat(30), "}".repeat(30));
        assert_eq!(interpolate(&fine, &|_: &str| None), Ok("x".to_string()));
    }

    #[test]
    fn pathological_input_stays_fast() {
        let inputs = [
            format!("A={}", "${U:-{".repeat(20_000)),
            format!("A={}", "${U:-x}".repeat(20_000)),
            format!("A={}{}", "${U:-".repeat(20_000), "}".repeat(20_000)),
            format!("A=\"{}\"", "\\0".repeat(50_000)),
            "A='\\".repeat(20_000),
            "# c\n".repeat(50_000),
        ];
        let started = std::time::Instant::now();
        for input in &inputs {
            let _ = parse(input, "t.env", &BTreeMap::new());
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn decode_locates_bad_bytes() {
        assert_eq!(decode(b"A=1\n", "t.env").expect("utf-8"), "A=1\n");
        let e = decode(b"A=1\nB=\xffx", "t.env").expect_err("bad byte");
        assert_eq!((e.line, e.column), (2, 3));
        assert!(e.message.contains("0xff"), "{e}");
    }

    // ---- real Dify files ----

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/dify/");

    fn read_fixture(rel: &str) -> String {
        let path = format!("{FIXTURES}{rel}");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    /// Parses a fixture and checks it against a simple independent reading: every non-comment
    /// line is `KEY=rest` with no quotes, so the entry must sit on that line, its raw span must be
    /// `rest` up to ` #`, and without `$` its value must be that text.
    fn check_fixture(rel: &str, vars: &BTreeMap<String, String>) -> Vec<Entry> {
        let text = read_fixture(rel);
        let entries = parse(&text, rel, vars).unwrap_or_else(|e| panic!("{e}"));
        let mut expected = Vec::new();
        for (i, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (key, rest) = line.split_once('=').unwrap_or_else(|| panic!("{rel}:{}: not KEY=value: {line}", i + 1));
            let simple = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            assert!(simple, "{rel}:{}: unexpected key {key:?}", i + 1);
            assert!(!rest.contains(['"', '\'']), "{rel}:{}: quoted value", i + 1);
            expected.push((i + 1, key, rest, line));
        }
        assert_eq!(entries.len(), expected.len(), "{rel}: entry count");
        for (entry, (line, key, rest, whole)) in entries.iter().zip(&expected) {
            let written = rest.split(" #").next().unwrap_or(rest).trim();
            assert_eq!((entry.key.as_str(), entry.line), (*key, *line), "{rel}");
            assert_eq!(&text[entry.raw_value_span.clone()], written, "{rel}:{line}");
            assert_eq!(&text[entry.line_span.clone()], *whole, "{rel}:{line}");
            if !written.contains('$') {
                assert_eq!(entry.value, written, "{rel}:{line}");
            }
        }
        entries
    }

    fn value_of<'e>(entries: &'e [Entry], key: &str) -> &'e str {
        entries.iter().rev().find(|e| e.key == key).map(|e| e.value.as_str()).unwrap_or_else(|| panic!("no {key}"))
    }

    #[test]
    fn dify_1_16_1_env_example() {
        let entries = check_fixture("1.16.1/env.example", &BTreeMap::new());
        assert!(entries.len() > 200);
        assert_eq!(value_of(&entries, "SQLALCHEMY_POOL_SIZE"), "30");
        assert_eq!(value_of(&entries, "POSTGRES_MAX_CONNECTIONS"), "200");
        assert_eq!(value_of(&entries, "LOG_DATEFORMAT"), "%Y-%m-%d %H:%M:%S");
        assert_eq!(value_of(&entries, "NGINX_SSL_PROTOCOLS"), "TLSv1.2 TLSv1.3");
        assert_eq!(value_of(&entries, "COMPOSE_PROFILES"), "weaviate,postgresql,collaboration");
        let line = entries.iter().find(|e| e.key == "COMPOSE_PROFILES").map(|e| e.line);
        assert_eq!(line, Some(314));

        // The given variables win over the file's own earlier lines, as in compose.
        let vars = map(&[("VECTOR_STORE", "qdrant"), ("DB_TYPE", "mysql")]);
        let entries = check_fixture("1.16.1/env.example", &vars);
        assert_eq!(value_of(&entries, "COMPOSE_PROFILES"), "qdrant,mysql,collaboration");
        assert_eq!(value_of(&entries, "VECTOR_STORE"), "weaviate");
    }

    #[test]
    fn dify_1_9_1_env_example() {
        let entries = check_fixture("1.9.1/env.example", &BTreeMap::new());
        assert!(entries.len() > 500);
        assert_eq!(value_of(&entries, "SQLALCHEMY_POOL_SIZE"), "30");
        assert_eq!(value_of(&entries, "POSTGRES_MAX_CONNECTIONS"), "100");
        assert_eq!(value_of(&entries, "LOG_DATEFORMAT"), "%Y-%m-%d %H:%M:%S");
        assert_eq!(value_of(&entries, "NGINX_SSL_PROTOCOLS"), "TLSv1.1 TLSv1.2 TLSv1.3");
        assert_eq!(value_of(&entries, "OPENSEARCH_INITIAL_ADMIN_PASSWORD"), "Qazwsxedc!@#123");
        assert_eq!(value_of(&entries, "COMPOSE_PROFILES"), "weaviate");
        // `POSTGRES_USER=${DB_USERNAME}` reads an earlier line of the same file.
        assert_eq!(value_of(&entries, "POSTGRES_USER"), "postgres");
        assert_eq!(value_of(&entries, "POSTGRES_DB"), "dify");
    }

    #[test]
    fn dify_1_16_1_split_env_examples() {
        fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
            let mut items: Vec<_> = std::fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .filter_map(Result::ok)
                .map(|item| item.path())
                .collect();
            items.sort();
            for path in items {
                if path.is_dir() {
                    walk(&path, found);
                } else if path.to_string_lossy().ends_with(".env.example") {
                    found.push(path.to_string_lossy().into_owned());
                }
            }
        }
        let mut files = Vec::new();
        walk(std::path::Path::new(&format!("{FIXTURES}1.16.1/envs")), &mut files);
        assert!(files.len() >= 30, "found {}", files.len());
        let mut total = 0;
        for path in &files {
            let rel = path.strip_prefix(FIXTURES).unwrap_or(path);
            let entries = check_fixture(rel, &BTreeMap::new());
            total += entries.len();
            if rel.ends_with("core-services/shared.env.example") {
                assert_eq!(value_of(&entries, "LOG_DATEFORMAT"), "%Y-%m-%d %H:%M:%S");
                assert_eq!(value_of(&entries, "COMPOSE_PROFILES"), "weaviate,postgresql,collaboration");
            }
            if rel.ends_with("infrastructure/nginx.env.example") {
                assert_eq!(value_of(&entries, "NGINX_SSL_PROTOCOLS"), "TLSv1.2 TLSv1.3");
            }
            if rel.ends_with("core-services/api.env.example") {
                assert_eq!(value_of(&entries, "KNOWLEDGE_FS_ENABLED"), "false");
            }
        }
        assert!(total > 900, "{total} entries");
    }

    // ---- properties ----

    /// Fragments that exercise every branch of the parser and of interpolation.
    fn syntax_soup() -> impl Strategy<Value = String> {
        let tokens = prop::sample::select(vec![
            "A", "b_1", "=", ":", " ", "\t", "\n", "\r\n", "#", " #", "'", "\"", "\\", "\\0", "$", "$$", "${", "}",
            "{", ":-", "-", ":+", "+", ":?", "?", "export ", "\u{feff}", "é", "\u{a0}", "\0",
        ]);
        prop::collection::vec(tokens, 0..400).prop_map(|parts| parts.concat())
    }

    fn bare_value() -> impl Strategy<Value = String> {
        // Words joined by single spaces; a word after a space never starts with `#`.
        "([A-Za-z0-9_./:@%+,=!?#{}-]{1,12}( [A-Za-z0-9_./:@%+,=!?{}-][A-Za-z0-9_./:@%+,=!?#{}-]{0,8}){0,3})?"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn never_panics_on_any_text(text in "(?s).{0,4096}") {
            let _ = parse(&text, "t.env", &BTreeMap::new());
            let _ = interpolate(&text, &|_: &str| None);
        }

        #[test]
        fn never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
            let _ = decode(&bytes, "t.env");
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse(&text, "t.env", &BTreeMap::new());
        }

        #[test]
        fn never_panics_on_env_syntax(text in syntax_soup()) {
            let vars = map(&[("A", "1"), ("b_1", "")]);
            if let Ok(entries) = parse(&text, "t.env", &vars) {
                for e in &entries {
                    prop_assert!(text.get(e.raw_value_span.clone()).is_some());
                    prop_assert!(text.get(e.line_span.clone()).is_some());
                }
            }
            let _ = interpolate(&text, &|name: &str| vars.get(name).cloned());
        }

        #[test]
        fn simple_files_round_trip(
            pairs in prop::collection::vec(("[A-Za-z_][A-Za-z0-9_.]{0,12}", bare_value(), any::<bool>()), 0..40),
            crlf in any::<bool>(),
        ) {
            let newline = if crlf { "\r\n" } else { "\n" };
            let text: String = pairs
                .iter()
                .map(|(k, v, export)| format!("{}{k}={v}{newline}", if *export { "export " } else { "" }))
                .collect();
            let entries = parse(&text, "t.env", &BTreeMap::new())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got: Vec<_> = entries.iter().map(|e| (e.key.clone(), e.value.clone(), e.line)).collect();
            let want: Vec<_> = pairs
                .iter()
                .enumerate()
                .map(|(i, (k, v, _))| (k.clone(), v.clone(), i + 1))
                .collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn quote_value_round_trips(value in "(?s)[^\\x00]{0,64}") {
            let written = quote_value(&value).ok_or_else(|| TestCaseError::fail("no NUL"))?;
            let text = format!("K={written}\n# after\n");
            let entries = parse(&text, "t.env", &BTreeMap::new())
                .map_err(|e| TestCaseError::fail(format!("{written:?}: {e}")))?;
            prop_assert_eq!(entries.len(), 1);
            prop_assert_eq!(&entries[0].value, &value);
            prop_assert_eq!(&text[entries[0].raw_value_span.clone()], written.as_str());
        }
    }
}
