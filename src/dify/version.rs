//! Dify releases: one parser for `--dify-version` and image tags, and the table of the releases
//! whose compose layout or shipped settings differ (docs/model.md §3a, with the file each row was read from).

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// A Dify 1.x release (or a newer one, read with the newest row of [`ERAS`]). Ordered by release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DifyVersion {
    major: u32,
    minor: u32,
    patch: u32,
}

/// How the compose file hands `.env` to Dify's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A top-level `x-shared-env` mapping merged into each service's `environment:`: only the
    /// keys it lists reach a container.
    SharedEnv,
    /// `env_file:` lists ending in `.env`: every key of `.env` reaches the services that list it.
    EnvFiles,
}

/// What changed at one release, and stayed until the next row. Only what difyplan reads or
/// writes is here (docs/model.md §3a has the rest: the 1.7.0 repository keys, 1.14.0's
/// `.env.example` values); the pool defaults are in none of the rows because no 1.x release changed
/// them (`SQLALCHEMY_POOL_SIZE` 30, `SQLALCHEMY_MAX_OVERFLOW` 10, `SERVER_WORKER_AMOUNT` 1,
/// `SERVER_WORKER_CONNECTIONS` 10, the plugin daemon's 30 open / 10 idle — docs/model.md §3a).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Era {
    /// The first release of the row.
    pub since: DifyVersion,
    pub layout: Layout,
    /// The compose service that runs PostgreSQL.
    pub db_service: &'static str,
    /// The compose file has a `db_mysql` service and `DB_TYPE` chooses it.
    pub mysql: bool,
    /// The compose file has the `api_websocket` service (profile `collaboration`).
    pub api_websocket: bool,
    /// api_websocket takes its process count from `API_WEBSOCKET_WORKER_AMOUNT` (before, the
    /// compose file fixed it at 1).
    pub websocket_amount_key: bool,
    /// The compose file has a `worker_beat` service (before, no beat ran in compose; the image
    /// has run `MODE=beat` since 1.0.0, so a Kubernetes deployment may run one).
    pub worker_beat: bool,
    /// `SQLALCHEMY_MAX_OVERFLOW` is in `x-shared-env`/`.env`, so compose can set it; before, the
    /// api's own default 10 applied whatever `.env` said.
    pub overflow_key: bool,
    /// The database service takes `statement_timeout` and `idle_in_transaction_session_timeout`
    /// from `POSTGRES_STATEMENT_TIMEOUT` / `POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT`.
    pub db_timeouts: bool,
    /// The Celery workflow repositories exist.
    pub celery_repositories: bool,
    /// The log-store (Aliyun SLS) workflow repositories exist.
    pub logstore: bool,
    /// The Celery app a health check pings (`celery -A <this> inspect ping`).
    pub celery_app: &'static str,
}

const fn v(major: u32, minor: u32, patch: u32) -> DifyVersion {
    DifyVersion { major, minor, patch }
}

/// The rows, oldest first. Each row is the previous one with what its release changed; the
/// sources (release tag, or the version-bump commit on main, and the file) are in
/// docs/model.md §3a.
pub const ERAS: [Era; 9] = {
    const E1_0: Era = Era {
        since: v(1, 0, 0),
        layout: Layout::SharedEnv,
        db_service: "db",
        mysql: false,
        api_websocket: false,
        websocket_amount_key: false,
        worker_beat: false,
        overflow_key: false,
        db_timeouts: false,
        celery_repositories: false,
        logstore: false,
        celery_app: "app.celery",
    };
    const E1_7: Era = Era { since: v(1, 7, 0), worker_beat: true, ..E1_0 };
    const E1_8: Era = Era { since: v(1, 8, 0), overflow_key: true, celery_repositories: true, ..E1_7 };
    const E1_9_2: Era = Era { since: v(1, 9, 2), db_timeouts: true, ..E1_8 };
    const E1_10_1: Era = Era { since: v(1, 10, 1), db_service: "db_postgres", mysql: true, ..E1_9_2 };
    const E1_11_2: Era = Era { since: v(1, 11, 2), logstore: true, ..E1_10_1 };
    const E1_14: Era = Era { since: v(1, 14, 0), celery_app: "celery_healthcheck.celery", ..E1_11_2 };
    const E1_14_1: Era = Era { since: v(1, 14, 1), layout: Layout::EnvFiles, api_websocket: true, ..E1_14 };
    const E1_16: Era = Era { since: v(1, 16, 0), websocket_amount_key: true, ..E1_14_1 };
    [E1_0, E1_7, E1_8, E1_9_2, E1_10_1, E1_11_2, E1_14, E1_14_1, E1_16]
};

/// Every 1.x release difyplan has read, with the plugin daemon image its compose file runs
/// (release tags 1.0.0 to 1.9.1; the version-bump commits on main after; 1.16.1 as main ran it
/// at the reference commit of docs/model.md §3a).
pub const RELEASES: &[(DifyVersion, &str)] = &[
    (v(1, 0, 0), "0.0.3-local"),
    (v(1, 0, 1), "0.0.4-local"),
    (v(1, 1, 0), "0.0.5-local"),
    (v(1, 1, 1), "0.0.6-local"),
    (v(1, 1, 2), "0.0.6-local"),
    (v(1, 1, 3), "0.0.6-local"),
    (v(1, 2, 0), "0.0.7-local"),
    (v(1, 3, 0), "0.0.8-local"),
    (v(1, 3, 1), "0.0.9-local"),
    (v(1, 4, 0), "0.0.10-local"),
    (v(1, 4, 1), "0.1.1-local"),
    (v(1, 4, 2), "0.1.2-local"),
    (v(1, 4, 3), "0.1.2-local"),
    (v(1, 5, 0), "0.1.2-local"),
    (v(1, 5, 1), "0.1.2-local"),
    (v(1, 6, 0), "0.1.3-local"),
    (v(1, 7, 0), "0.2.0-local"),
    (v(1, 7, 1), "0.2.0-local"),
    (v(1, 7, 2), "0.2.0-local"),
    (v(1, 8, 0), "0.2.0-local"),
    (v(1, 8, 1), "0.2.0-local"),
    (v(1, 9, 0), "0.3.0-local"),
    (v(1, 9, 1), "0.3.0-local"),
    (v(1, 9, 2), "0.3.3-local"),
    (v(1, 10, 0), "0.4.1-local"),
    (v(1, 10, 1), "0.4.1-local"),
    (v(1, 11, 0), "0.5.1-local"),
    (v(1, 11, 1), "0.5.1-local"),
    (v(1, 11, 2), "0.5.2-local"),
    (v(1, 11, 3), "0.5.2-local"),
    (v(1, 11, 4), "0.5.2-local"),
    (v(1, 12, 0), "0.5.3-local"),
    (v(1, 12, 1), "0.5.3-local"),
    (v(1, 13, 0), "0.5.3-local"),
    (v(1, 13, 1), "0.5.4-local"),
    (v(1, 13, 2), "0.5.4-local"),
    (v(1, 13, 3), "0.5.3-local"),
    (v(1, 14, 0), "0.6.0-local"),
    (v(1, 14, 1), "0.6.0-local"),
    (v(1, 14, 2), "0.6.1-local"),
    (v(1, 15, 0), "0.6.3-local"),
    (v(1, 16, 0), "0.6.3-local"),
    (v(1, 16, 1), "0.6.10-local"),
];

impl DifyVersion {
    /// The 1.9 line difyplan was first written for (`x-shared-env`, database service `db`).
    pub const V1_9: DifyVersion = v(1, 9, 1);
    /// The 1.16 line (`env_file:` lists, `db_postgres`, api_websocket).
    pub const V1_16: DifyVersion = v(1, 16, 1);
    /// The newest release in [`RELEASES`]; a newer one is read with its row and a note.
    pub const LATEST: DifyVersion = v(1, 16, 1);
    /// The oldest release difyplan models: 1.0.0 brought the plugin daemon.
    pub const OLDEST: DifyVersion = v(1, 0, 0);

    /// The row of [`ERAS`] this release belongs to.
    pub fn era(self) -> &'static Era {
        ERAS.iter().rev().find(|e| e.since <= self).unwrap_or(&ERAS[0])
    }

    /// Newer than every release difyplan has read: planned and read with the newest row, which
    /// `check` reports as `dify-version-newer` and `size`/`render` say in a note.
    pub fn is_newer_than_known(self) -> bool {
        self > Self::LATEST
    }

    /// The note `size`, `render` and `check` give for a release newer than the table.
    pub fn newer_note(self) -> Option<String> {
        self.is_newer_than_known().then(|| {
            format!(
                "Dify {self} is newer than the releases difyplan knows (1.0.0 to {latest}): read and planned \
                 with {latest}'s layout and defaults — compare {self}'s docker/.env.example and \
                 docker-compose.yaml with {latest}'s",
                latest = Self::LATEST
            )
        })
    }

    /// The compose service that runs PostgreSQL (docs/model.md §3).
    pub fn db_service(self) -> &'static str {
        self.era().db_service
    }

    pub fn has_api_websocket(self) -> bool {
        self.era().api_websocket
    }

    /// The compose file has a `db_mysql` service and `DB_TYPE` chooses it (docs/model.md §11).
    pub fn has_mysql(self) -> bool {
        self.era().mysql
    }

    pub fn has_worker_beat(self) -> bool {
        self.era().worker_beat
    }

    /// The plugin daemon image Dify's compose file runs with this release (the newest known
    /// release's for one not in [`RELEASES`] and newer; the series' nearest older one otherwise).
    pub fn plugin_daemon_tag(self) -> &'static str {
        RELEASES.iter().rev().find(|(r, _)| *r <= self).map_or(RELEASES[0].1, |(_, t)| t)
    }

    /// The release a Dify `.env` belongs to, from the keys each release's `.env.example` has
    /// (docs/model.md §3a): `API_WEBSOCKET_WORKER_AMOUNT` from 1.16.0,
    /// `API_WEBSOCKET_WORKER_CONNECTIONS` from 1.14.1, the workflow repository keys from 1.7.0 to
    /// 1.14.0 (then in `envs/`), `SQLALCHEMY_MAX_OVERFLOW` from 1.8.0. A release of the rows the
    /// keys point to, and what said so; `None` when the file shows none of them.
    pub fn from_env_keys(has: impl Fn(&str) -> bool) -> Option<(DifyVersion, &'static str)> {
        let repositories = has("CORE_WORKFLOW_EXECUTION_REPOSITORY");
        if has("API_WEBSOCKET_WORKER_AMOUNT") {
            Some((Self::LATEST, "API_WEBSOCKET_WORKER_AMOUNT in the .env (Dify 1.16.0 or later)"))
        } else if has("API_WEBSOCKET_WORKER_CONNECTIONS") {
            Some((
                v(1, 15, 0),
                "API_WEBSOCKET_WORKER_CONNECTIONS without API_WEBSOCKET_WORKER_AMOUNT in the .env (Dify 1.14.1 \
                 to 1.15)",
            ))
        } else if repositories && !has("SQLALCHEMY_MAX_OVERFLOW") {
            Some((v(1, 7, 2), "workflow repository keys without SQLALCHEMY_MAX_OVERFLOW in the .env (Dify 1.7)"))
        } else if repositories {
            Some((Self::V1_9, "workflow repository keys in the .env (Dify 1.8.0 to 1.14.0; 1.9.1 assumed)"))
        } else {
            None
        }
    }

    /// The tag of a Dify api image reference: `langgenius/dify-api:1.9.1`, a registry mirror's
    /// `registry.example.com:5000/langgenius/dify-api:1.9.1`, a rebuilt `example/custom-dify-api:…`,
    /// with or without `@sha256:…`. `None` for another image or one without a tag.
    pub fn api_image_tag(image: &str) -> Option<&str> {
        let reference = image.trim().split('@').next().unwrap_or_default();
        let (name, tag) = reference.rsplit_once(':')?;
        (!tag.contains('/') && name.rsplit('/').next().is_some_and(|n| n.ends_with("dify-api"))).then_some(tag)
    }

    /// The version in an image tag (`1.9.1`, `v1.10.1-fix.1`, `1.16.1@sha256:…`). `Ok(None)` when
    /// the tag names no release (`latest`, `main`, a commit, a date); an error when it names one
    /// difyplan does not model (0.x). The same parser as `--dify-version`.
    pub fn from_image_tag(tag: &str) -> Result<Option<DifyVersion>, String> {
        let tag = tag.split('@').next().unwrap_or_default().trim();
        if release_shape(tag).is_none() {
            return Ok(None);
        }
        tag.parse().map(Some).map_err(|e| format!("image tag `{tag}`: {e}"))
    }
}

impl fmt::Display for DifyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for DifyVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl schemars::JsonSchema for DifyVersion {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DifyVersion".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A Dify release, major.minor.patch (1.0.0 or later).",
            "type": "string",
            "pattern": "^[1-9][0-9]*\\.[0-9]+\\.[0-9]+$"
        })
    }
}

/// A release as written: major, minor, the patch when given, and the rest (`-fix.1`, `-beta.2`).
type Shape<'a> = ((u32, u32, Option<u32>), &'a str);

/// `major.minor[.patch]` and the rest (`-fix.1`, `-beta.2`, `+build`) of a release, `v` allowed
/// before it; `None` for anything else.
fn release_shape(text: &str) -> Option<Shape<'_>> {
    let bare = text.strip_prefix('v').unwrap_or(text);
    let (core, suffix) = match bare.find(['-', '+']) {
        Some(i) => (&bare[..i], &bare[i..]),
        None => (bare, ""),
    };
    let parts: Vec<Option<u32>> = core.split('.').map(|p| p.parse().ok()).collect();
    match parts[..] {
        [Some(a), Some(b)] => Some(((a, b, None), suffix)),
        [Some(a), Some(b), Some(c)] => Some(((a, b, Some(c)), suffix)),
        _ => None,
    }
}

impl FromStr for DifyVersion {
    type Err = String;
    /// A release (`1.9.1`, `v1.10.1-fix.1`) or a minor series (`1.12`: its newest known release).
    /// 0.x is refused: it has no plugin daemon and another layout.
    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        let Some(((major, minor, patch), suffix)) = release_shape(text) else {
            return Err(format!(
                "`{text}` is not a Dify release — pass one like 1.9.1 or 1.16 (difyplan knows 1.0.0 to {})",
                DifyVersion::LATEST
            ));
        };
        if major == 0 {
            return Err(format!(
                "Dify {text} is a 0.x release: difyplan models Dify 1.x (1.0.0 to {}), whose plugin daemon \
                 and compose layout 0.x does not have — plan for the 1.x release you will upgrade to \
                 (--dify-version 1.16.1, or that release's files)",
                DifyVersion::LATEST
            ));
        }
        if major == 2 && minor == 0 && patch == Some(0) && !suffix.is_empty() {
            return Err(format!(
                "Dify {text} is a pre-release of the knowledge pipeline (September 2025) that shipped as \
                 1.9.0 — pass --dify-version 1.9.0, or run a 1.x release"
            ));
        }
        let patch = patch.unwrap_or_else(|| {
            // A series: its newest known release, else its first.
            RELEASES.iter().rev().find(|(r, _)| r.major == major && r.minor == minor).map_or(0, |(r, _)| r.patch)
        });
        Ok(v(major, minor, patch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DifyVersion {
        s.parse().unwrap()
    }

    #[test]
    fn eras_are_ordered_and_every_release_has_one() {
        assert!(ERAS.windows(2).all(|w| w[0].since < w[1].since));
        assert!(RELEASES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(ERAS[0].since, DifyVersion::OLDEST);
        assert_eq!(RELEASES.last().unwrap().0, DifyVersion::LATEST);
        // Each row starts at a release difyplan has read.
        assert!(ERAS.iter().all(|e| RELEASES.iter().any(|(r, _)| *r == e.since)));
    }

    #[test]
    fn each_release_gets_its_rows_facts() {
        assert_eq!(p("1.6.0").db_service(), "db");
        assert!(!p("1.6.0").has_worker_beat());
        assert!(p("1.7.0").has_worker_beat());
        assert!(!p("1.7.2").era().overflow_key);
        assert!(p("1.8.0").era().overflow_key);
        assert!(!p("1.9.1").era().db_timeouts);
        assert!(p("1.9.2").era().db_timeouts);
        assert_eq!(p("1.10.0").db_service(), "db");
        assert_eq!(p("1.10.1").db_service(), "db_postgres");
        assert!(p("1.10.1").has_mysql() && !p("1.10.0").has_mysql());
        assert!(!p("1.11.1").era().logstore && p("1.11.2").era().logstore);
        assert_eq!(p("1.13.3").era().celery_app, "app.celery");
        assert_eq!(p("1.14.0").era().celery_app, "celery_healthcheck.celery");
        assert_eq!(p("1.14.0").era().layout, Layout::SharedEnv);
        assert!(!p("1.14.0").has_api_websocket());
        assert_eq!(p("1.14.1").era().layout, Layout::EnvFiles);
        assert!(p("1.14.1").has_api_websocket() && !p("1.15.0").era().websocket_amount_key);
        assert!(p("1.16.0").era().websocket_amount_key);
    }

    #[test]
    fn the_old_pair_keeps_its_meaning() {
        assert_eq!(DifyVersion::V1_9.db_service(), "db");
        assert!(!DifyVersion::V1_9.has_api_websocket() && !DifyVersion::V1_9.has_mysql());
        assert_eq!(DifyVersion::V1_16.db_service(), "db_postgres");
        assert!(DifyVersion::V1_16.has_api_websocket() && DifyVersion::V1_16.has_mysql());
        assert!(DifyVersion::V1_9 < DifyVersion::V1_16);
    }

    #[test]
    fn series_and_suffixes() {
        assert_eq!(p("1.9").to_string(), "1.9.2");
        assert_eq!(p("1.16"), DifyVersion::V1_16);
        assert_eq!(p("1.12").to_string(), "1.12.1");
        assert_eq!(p("v1.10.1-fix.1").to_string(), "1.10.1");
        assert_eq!(p("1.17").to_string(), "1.17.0");
        assert_eq!(p("1.12.5").to_string(), "1.12.5");
        assert_eq!(p("1.12.5").era().since, v(1, 11, 2));
    }

    #[test]
    fn newer_than_the_table_gets_the_newest_row_and_a_note() {
        for s in ["1.17", "1.16.2", "2.1.0", "3.0"] {
            let ver = p(s);
            assert!(ver.is_newer_than_known(), "{s}");
            assert_eq!(ver.era(), ERAS.last().unwrap(), "{s}");
            assert!(ver.newer_note().unwrap().contains(&ver.to_string()));
            assert_eq!(ver.plugin_daemon_tag(), "0.6.10-local");
        }
        assert!(DifyVersion::LATEST.newer_note().is_none());
    }

    #[test]
    fn refused() {
        let e = "0.15.3".parse::<DifyVersion>().unwrap_err();
        assert!(e.contains("0.x") && e.contains("1.x"), "{e}");
        assert!("2.0.0-beta.2".parse::<DifyVersion>().unwrap_err().contains("1.9.0"));
        assert!("latest".parse::<DifyVersion>().is_err());
        assert!("1".parse::<DifyVersion>().is_err());
        assert!("1.x".parse::<DifyVersion>().is_err());
    }

    #[test]
    fn image_tags_go_through_the_same_parser() {
        assert_eq!(DifyVersion::from_image_tag("1.12.1").unwrap(), Some(p("1.12.1")));
        assert_eq!(DifyVersion::from_image_tag("1.9.1@sha256:abc").unwrap(), Some(DifyVersion::V1_9));
        assert_eq!(DifyVersion::from_image_tag("latest").unwrap(), None);
        assert_eq!(DifyVersion::from_image_tag("main").unwrap(), None);
        assert_eq!(DifyVersion::from_image_tag("20240101").unwrap(), None);
        assert_eq!(DifyVersion::from_image_tag("1.9.1.2").unwrap(), None);
        assert_eq!(DifyVersion::from_image_tag("v1.16.1").unwrap(), Some(DifyVersion::V1_16));
        assert!(DifyVersion::from_image_tag("0.15.3").unwrap_err().contains("image tag `0.15.3`"));
    }

    #[test]
    fn env_keys_name_their_rows() {
        let of = |keys: &[&str]| DifyVersion::from_env_keys(|k| keys.contains(&k)).map(|(v, _)| v.to_string());
        assert_eq!(of(&["API_WEBSOCKET_WORKER_AMOUNT", "API_WEBSOCKET_WORKER_CONNECTIONS"]).unwrap(), "1.16.1");
        assert_eq!(of(&["API_WEBSOCKET_WORKER_CONNECTIONS"]).unwrap(), "1.15.0");
        assert_eq!(of(&["CORE_WORKFLOW_EXECUTION_REPOSITORY"]).unwrap(), "1.7.2");
        assert_eq!(of(&["CORE_WORKFLOW_EXECUTION_REPOSITORY", "SQLALCHEMY_MAX_OVERFLOW"]).unwrap(), "1.9.1");
        assert_eq!(of(&["SQLALCHEMY_POOL_SIZE"]), None);
    }

    #[test]
    fn api_image_references() {
        let tag = DifyVersion::api_image_tag;
        assert_eq!(tag("langgenius/dify-api:1.9.1"), Some("1.9.1"));
        assert_eq!(tag("registry.example.com:5000/langgenius/dify-api:1.12.0"), Some("1.12.0"));
        assert_eq!(tag("langgenius/dify-api:1.16.1@sha256:0123"), Some("1.16.1"));
        assert_eq!(tag("registry.example.com:5000/langgenius/dify-api"), None);
        assert_eq!(tag("langgenius/dify-plugin-daemon:0.3.0-local"), None);
        assert_eq!(tag("langgenius/dify-web:1.9.1"), None);
        assert_eq!(tag("example/dify-api-proxy:1.9.1"), None);
        // A rebuilt image named after Dify's.
        assert_eq!(tag("example/custom-dify-api:1.9.1"), Some("1.9.1"));
    }

    #[test]
    fn daemon_image_per_release() {
        assert_eq!(p("1.9.1").plugin_daemon_tag(), "0.3.0-local");
        assert_eq!(p("1.12.0").plugin_daemon_tag(), "0.5.3-local");
        assert_eq!(p("1.0.0").plugin_daemon_tag(), "0.0.3-local");
    }
}
