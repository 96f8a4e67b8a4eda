//! PostgreSQL's own settings as operators write them: `-c name=value` on a server's command
//! line and `name = value` lines of postgresql.conf. One reader for compose, manifests and Helm values.

use crate::deployment::Valued;
use crate::read::error::Error;
use std::collections::BTreeMap;

/// Settings given as `-c name=value` or `--name=value` among a command's words, each with the
/// source of its word. A later setting wins, as on PostgreSQL's command line.
pub fn command_line(words: &[Valued<String>]) -> BTreeMap<String, Valued<String>> {
    let mut settings = BTreeMap::new();
    let mut i = 0;
    while i < words.len() {
        let pair = if words[i].value == "-c" {
            i += 1;
            words.get(i).map(|w| w.value.as_str())
        } else {
            words[i].value.strip_prefix("--")
        };
        if let (Some((k, v)), Some(word)) = (pair.and_then(|p| p.split_once('=')), words.get(i)) {
            settings.insert(k.trim().to_string(), Valued::new(v.trim().to_string(), word.source.clone()));
        }
        i += 1;
    }
    settings
}

/// `name = value` (or `name value`) lines of a postgresql.conf text: (0-based line, lower-case
/// name, value without quotes). Comments and blank lines are skipped.
pub fn conf_lines(text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        let pair = line.split_once('=').or_else(|| line.split_once(char::is_whitespace));
        let Some((name, value)) = pair else { continue };
        out.push((i, name.trim().to_ascii_lowercase(), value.trim().trim_matches(['\'', '"']).to_string()));
    }
    out
}

/// A `max_connections` value as a count, or a located message that says what to write.
pub fn max_connections(v: &Valued<String>) -> Result<Valued<u64>, Error> {
    let n =
        crate::deployment::whole_count(v.value.trim().trim_matches(['\'', '"']), crate::deployment::MAX_CONNECTIONS)
            .map_err(|problem| {
                crate::deployment::CountError::new(v.source.clone(), "max_connections", &v.value, problem).example(200)
            })?;
    Ok(Valued::new(n, v.source.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::Source;

    fn words(ws: &[&str]) -> Vec<Valued<String>> {
        ws.iter().enumerate().map(|(i, w)| Valued::new(w.to_string(), Source::file("f", i + 1))).collect()
    }

    #[test]
    fn command_line_forms() {
        let s = command_line(&words(&[
            "postgres",
            "-c",
            "max_connections=200",
            "--work_mem=4MB",
            "-c",
            "max_connections=300",
            "-c",
        ]));
        assert_eq!(s["max_connections"].value, "300");
        assert_eq!(s["max_connections"].source, Source::file("f", 6));
        assert_eq!(s["work_mem"].value, "4MB");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn conf_forms() {
        let got = conf_lines(
            "# c\nmax_connections = 300\n\nshared_buffers 1GB\nidle_in_transaction_session_timeout='10min' # x\n",
        );
        assert_eq!(
            got,
            [
                (1, "max_connections".into(), "300".into()),
                (3, "shared_buffers".into(), "1GB".into()),
                (4, "idle_in_transaction_session_timeout".into(), "10min".into())
            ]
        );
    }
}

/// What a container image says about the PostgreSQL server it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerImage {
    /// The official `postgres` image, or one built on it (`pgvector/pgvector`, `postgis/postgis`,
    /// `ankane/pgvector`, `timescale/timescaledb`): its entrypoint creates `POSTGRES_USER` (default
    /// `postgres`) as the bootstrap superuser.
    Official,
    /// Another PostgreSQL image (Bitnami's `postgresql`, where `POSTGRES_USER` is an ordinary role).
    Other,
}

/// Images built `FROM postgres` whose entrypoint is the official one (each project's Dockerfile:
/// pgvector/pgvector `FROM postgres:$PG_MAJOR-…`, postgis/docker-postgis `FROM postgres:…`,
/// ankane/pgvector (the pgvector image before it moved), timescale/timescaledb-docker `FROM postgres:…-alpine`).
const BUILT_ON_OFFICIAL: &[&str] =
    &["pgvector/pgvector", "postgis/postgis", "ankane/pgvector", "timescale/timescaledb"];

/// The PostgreSQL server an image runs, or `None` when it is not a PostgreSQL image. A registry
/// host or mirror prefix is ignored (`docker.io/library/postgres:16`, `mirror.example/pgvector/pgvector:pg16`).
pub fn server_image(image: &str) -> Option<ServerImage> {
    let image = image.trim();
    let repo = image.split('@').next().unwrap_or(image);
    // The tag follows the last `:` after the last `/` (a registry port is before a `/`).
    let repo = match repo.rfind(':') {
        Some(i) if !repo[i..].contains('/') => &repo[..i],
        _ => repo,
    };
    let repo = repo.to_ascii_lowercase();
    let parts: Vec<&str> = repo.split('/').collect();
    let name = *parts.last()?;
    let owner_name = parts.len().checked_sub(2).map(|i| format!("{}/{name}", parts[i]));
    if repo.contains("bitnami") {
        return (name.starts_with("postgres")).then_some(ServerImage::Other);
    }
    if name == "postgres" || owner_name.as_deref().is_some_and(|o| BUILT_ON_OFFICIAL.contains(&o)) {
        return Some(ServerImage::Official);
    }
    (name.starts_with("postgres") || name.starts_with("postgis") || name.starts_with("pgvector"))
        .then_some(ServerImage::Other)
}

#[cfg(test)]
mod image_tests {
    use super::{ServerImage, server_image};

    #[test]
    fn official_and_built_on_it() {
        for image in [
            "postgres:15-alpine",
            "docker.io/library/postgres:16",
            "postgres@sha256:abcd",
            "pgvector/pgvector:pg16",
            "postgis/postgis:16-3.4",
            "registry.example.com:5000/mirror/pgvector/pgvector:0.8.0-pg17",
            "ankane/pgvector:latest",
            "timescale/timescaledb:latest-pg16",
        ] {
            assert_eq!(server_image(image), Some(ServerImage::Official), "{image}");
        }
    }

    #[test]
    fn others() {
        assert_eq!(server_image("bitnami/postgresql:15.4.0"), Some(ServerImage::Other));
        assert_eq!(server_image("docker.io/bitnami/postgresql:17"), Some(ServerImage::Other));
        assert_eq!(server_image("langgenius/dify-api:1.16.1"), None);
        assert_eq!(server_image("redis:7"), None);
        assert_eq!(server_image("edoburu/pgbouncer:1.23"), None);
    }
}
