//! Which values are secrets and how they are shown. A CI log is public to everyone who can read
//! the repository, so no output and no error ever holds the value of a key that names a secret,
//! a value interpolated from one, or the password of a URL: they show as [`REDACTED`], next to
//! the file and line they come from.

use std::borrow::Cow;
use std::sync::Mutex;

/// What a secret shows as.
pub const REDACTED: &str = "***";

/// Whether a variable's name says its value is a secret: a word (between `_`, `.` or `-`) such
/// as `PASSWORD`, `SECRET`, `TOKEN`, `CREDENTIAL(S)` or `DSN`, or `KEY` as the last word
/// (`SECRET_KEY`, `OPENAI_API_KEY`, `S3_ACCESS_KEY`, but not `KEY_PREFIX`). Case is ignored.
/// Names like `ACCESS_TOKEN_EXPIRE_MINUTES` count too: a false alarm only hides a number.
pub fn is_secret_key(key: &str) -> bool {
    // camelCase (Helm values: `secretKey`, `apiKey`) splits into words as well.
    let mut split = String::with_capacity(key.len() + 4);
    let mut prev_lower = false;
    for c in key.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            split.push('_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        split.push(c.to_ascii_uppercase());
    }
    let upper = split;
    let words: Vec<&str> = upper.split(['_', '.', '-']).filter(|w| !w.is_empty()).collect();
    const WORDS: &[&str] = &[
        "PASSWORD",
        "PASSWD",
        "PASS",
        "PWD",
        "SECRET",
        "SECRETS",
        "TOKEN",
        "TOKENS",
        "CREDENTIAL",
        "CREDENTIALS",
        "DSN",
        "APIKEY",
        "PRIVATE",
        "AUTH",
    ];
    words.iter().any(|w| WORDS.contains(w) || w.ends_with("PASSWORD") || w.ends_with("SECRET"))
        || words.last().is_some_and(|w| *w == "KEY" || *w == "KEYS")
}

/// The secret values read so far in this run: `all` for exact matches (a whole value quoted in
/// a message), `scrubbed` (longest first) for the ones also taken out of any text they appear in.
struct Secrets {
    all: std::collections::BTreeSet<String>,
    scrubbed: Vec<String>,
}

static SECRETS: Mutex<Secrets> = Mutex::new(Secrets { all: std::collections::BTreeSet::new(), scrubbed: Vec::new() });

/// Remember that `value`, read for `key`, is a secret when the key names one; a URL password in
/// any value is one too. Every reader calls this for every value it reads, so [`scrub`] can take
/// the values out of whatever is printed, wherever a message or a report would have quoted them.
pub fn note(key: &str, value: &str) {
    if is_secret_key(key) {
        register(value);
    }
    if value.contains("://") {
        for password in url_passwords(value) {
            register(password);
        }
    }
}

/// The same as [`note`] for a key of a YAML file: upper-case keys are environment variables and
/// follow the same rule; other keys (`topologyKey`, `secretKeyRef`, `key:`) are structure, and
/// count only with a strong word (`password`, `secret`, `token`, `credentials`, `dsn`).
pub fn note_yaml(key: &str, value: &str) {
    let env_like = key.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    let strong =
        ["password", "secret", "token", "credential", "dsn"].iter().any(|w| key.to_ascii_lowercase().contains(w))
            && !key.ends_with("Ref")
            && !key.ends_with("Name");
    if env_like || strong {
        note(key, value);
    } else if value.contains("://") {
        note("", value);
    }
}

/// Remember one secret value (each line of it, for a value that spans lines). Numbers and
/// `true`/`false` are left out: a token's lifetime in minutes is no secret, and hiding every `30`
/// would hide the plan. Only values of 8 characters or more that mix kinds of characters are
/// taken out of running text (a password `dify` must not hide the word everywhere); a shorter
/// one is still hidden wherever it is quoted as a whole value ([`shown`]).
pub fn register(value: &str) {
    let mut secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    for part in value.split(['\n', '\r']).map(str::trim) {
        let trivial = part.is_empty()
            || part.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-')
            || matches!(part.to_ascii_lowercase().as_str(), "true" | "false" | "null" | "none");
        if trivial {
            continue;
        }
        secrets.all.insert(part.to_string());
        let classes = [
            part.chars().any(|c| c.is_ascii_lowercase()),
            part.chars().any(|c| c.is_ascii_uppercase()),
            part.chars().any(|c| c.is_ascii_digit()),
            part.chars().any(|c| !c.is_ascii_alphanumeric()),
        ];
        if part.chars().count() < 8 || classes.iter().filter(|&&c| c).count() < 2 {
            continue;
        }
        for form in [part.to_string(), super::escape(part).into_owned()] {
            if !secrets.scrubbed.contains(&form) {
                secrets.scrubbed.push(form);
            }
        }
    }
    secrets.scrubbed.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Whether `value` (trimmed) is, as a whole, a secret read so far.
pub fn is_secret_value(value: &str) -> bool {
    SECRETS.lock().unwrap_or_else(|e| e.into_inner()).all.contains(value.trim())
}

/// How a value read from a file is quoted in a message: [`REDACTED`] when it is a secret, else
/// with URL passwords masked and control characters escaped.
pub fn shown(value: &str) -> String {
    if is_secret_value(value) {
        return REDACTED.to_string();
    }
    super::escape(&mask_url_passwords(value)).into_owned()
}

/// `text` with every secret value read so far, and every URL password, replaced by [`REDACTED`].
/// Every output and every error goes through this before it is printed.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = mask_url_passwords(text);
    for secret in secrets.scrubbed.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
        }
    }
    out
}

/// The passwords of the URLs in `text`.
fn url_passwords(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let tail = &rest[i + 3..];
        let end = tail.find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace()).unwrap_or(tail.len());
        let authority = &tail[..end];
        if let Some((colon, at)) = authority.rfind('@').and_then(|at| authority[..at].find(':').map(|c| (c, at))) {
            found.push(&authority[colon + 1..at]);
        }
        rest = &tail[end..];
    }
    found
}

/// `text` with the password of every URL in it (`scheme://user:password@host`) replaced by
/// [`REDACTED`].
pub fn mask_url_passwords(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first `/`, `?`, `#` or blank; its userinfo at the last `@`.
        let end = tail.find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace()).unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@').and_then(|at| authority[..at].find(':').map(|colon| (colon, at))) {
            Some((colon, at)) => {
                out.push_str(&authority[..=colon]);
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// How a value of `key` is shown: [`REDACTED`] for a secret (by its name, or because it was
/// interpolated from one: `tainted`), else the value with URL passwords masked and control
/// characters escaped.
pub fn shown_value(key: &str, value: &str, tainted: bool) -> String {
    if tainted || is_secret_key(key) || is_secret_value(value) {
        return REDACTED.to_string();
    }
    super::escape(&mask_url_passwords(value)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for k in [
            "DB_PASSWORD",
            "SECRET_KEY",
            "OPENAI_API_KEY",
            "S3_SECRET_KEY",
            "REDIS_PASSWORD",
            "PLUGIN_DAEMON_KEY",
            "SENTRY_DSN",
            "CODE_EXECUTION_API_KEY",
            "INIT_PASSWORD",
            "WEAVIATE_API_KEY",
            "db.password",
            "GOOGLE_STORAGE_SERVICE_ACCOUNT_JSON_BASE64_CREDENTIALS",
            "NOTION_INTERNAL_SECRET",
            "PGPASSWORD",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["SQLALCHEMY_POOL_SIZE", "POSTGRES_MAX_CONNECTIONS", "KEY_PREFIX", "DB_USERNAME", "DB_HOST", "MONKEY"]
        {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn url_passwords() {
        assert_eq!(mask_url_passwords("redis://:p4ss@redis:6379/1"), "redis://:***@redis:6379/1");
        assert_eq!(
            mask_url_passwords("a postgresql://u:p@ss@db/x and http://h/"),
            "a postgresql://u:***@db/x and http://h/"
        );
        assert_eq!(mask_url_passwords("http://user@host/x"), "http://user@host/x");
        assert_eq!(mask_url_passwords("no url"), "no url");
    }

    #[test]
    fn scrubbed_everywhere_once_noted() {
        note("DB_PASSWORD", "Zq9-unique-secret");
        note("ACCESS_TOKEN_EXPIRE_MINUTES", "60");
        note("ORACLE_PASSWORD", "dify");
        note_yaml("topologyKey", "topology.kubernetes.io/zone");
        note("CELERY_BROKER_URL", "redis://:Other-pw-77@redis:6379/1");
        let text = "a.env:3: POSTGRES_MAX_CONNECTIONS=Zq9-unique-secret is not a whole number; 60 s; Other-pw-77; \
                    dify-api; topology.kubernetes.io/zone";
        assert_eq!(
            scrub(text),
            "a.env:3: POSTGRES_MAX_CONNECTIONS=*** is not a whole number; 60 s; ***; dify-api; topology.kubernetes.io/zone"
        );
        // A short secret is still hidden where it is quoted whole.
        assert_eq!(shown(" dify "), "***");
        assert_eq!(shown("dify-api"), "dify-api");
    }

    #[test]
    fn shown_values() {
        assert_eq!(shown_value("DB_PASSWORD", "S3cret", false), "***");
        assert_eq!(shown_value("POSTGRES_MAX_CONNECTIONS", "S3cret", true), "***");
        assert_eq!(shown_value("CELERY_BROKER_URL", "redis://:pw@r:6379/1\n", false), "redis://:***@r:6379/1\\n");
    }
}
