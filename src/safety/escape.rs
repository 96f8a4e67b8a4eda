//! Control characters from inputs never reach a terminal or a CI log as themselves: a newline in
//! a value could start a GitHub Actions command of its own, an ESC could rewrite the screen.
//! [`escape`] is the one function every format (and every error message) uses for them.

use std::borrow::Cow;
use std::path::Path;

/// `s` with every control character written as an escape a reader can see: `\n`, `\r`, `\t`,
/// `\e` for ESC, `\u{..}` for the others (C0, DEL, C1, and the Unicode line and paragraph
/// separators and bidirectional overrides that reorder what a terminal shows). A backslash is
/// kept as it is, so ordinary Windows paths stay readable.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x1b' => out.push_str("\\e"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A path as it is shown in messages and reports: [`escape`]d.
pub fn shown_path(path: &Path) -> String {
    escape(&clean_path(&path.to_string_lossy())).into_owned()
}

/// A path as every format shows it: `.` segments and repeated slashes dropped (`pe/./envs/a`
/// → `pe/envs/a`, `./.env` → `.env`), so the human, GitHub, SARIF, GitLab and JSON outputs
/// name a file the same way and code-scanning tools accept the URI. `..` is kept: it is not
/// lexically removable through a symlink.
pub fn clean_path(path: &str) -> String {
    if path == "-" {
        return path.to_string();
    }
    let absolute = path.starts_with('/');
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    match (absolute, parts.is_empty()) {
        (true, _) => format!("/{}", parts.join("/")),
        (false, true) => ".".to_string(),
        (false, false) => parts.join("/"),
    }
}

/// GitHub Actions' escaping of a workflow command's message (`%`, CR, LF as `%25`, `%0D`,
/// `%0A`), then [`escape`] for every other control character.
pub fn github_data(s: &str) -> String {
    escape(&s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")).into_owned()
}

/// GitHub Actions' escaping of a workflow command's property (`file=`, `title=`): as for the
/// message, plus `:` and `,`, which end a property.
pub fn github_property(s: &str) -> String {
    github_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lose_their_dot_segments() {
        assert_eq!(clean_path("./docker-compose.yaml"), "docker-compose.yaml");
        assert_eq!(clean_path("pe/./envs//a.env"), "pe/envs/a.env");
        assert_eq!(clean_path("././.env"), ".env");
        assert_eq!(clean_path("../shared/x"), "../shared/x");
        assert_eq!(clean_path("."), ".");
        assert_eq!(clean_path("/abs/./x"), "/abs/x");
        assert_eq!(clean_path("-"), "-");
    }

    #[test]
    fn control_characters_are_visible() {
        assert_eq!(escape("plain/path.env"), "plain/path.env");
        assert_eq!(escape("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(escape("\x1b[31mred"), "\\e[31mred");
        assert_eq!(escape("x\u{7f}\u{0}\u{9b}\u{202e}"), "x\\u{7f}\\u{0}\\u{9b}\\u{202e}");
        assert_eq!(escape("C:\\dify\\.env é"), "C:\\dify\\.env é");
    }

    #[test]
    fn github_commands_cannot_be_injected() {
        let hostile = "x\n::error file=a::owned 100%";
        let data = github_data(hostile);
        assert!(!data.contains('\n') && !data.contains("100%\""), "{data}");
        assert_eq!(data, "x%0A::error file=a::owned 100%25");
        assert_eq!(github_property("a:b,c%\r\x1b"), "a%3Ab%2Cc%25%0D\\e");
    }
}
