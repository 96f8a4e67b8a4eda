//! Dify on MySQL in Helm values. BorisPolonsky/dify-helm has a MySQL path from 0.34 on:
//! `externalMysql` (an existing server; the chart runs none), chosen when `externalPostgres` is
//! off. douban/charts has none: its templates set `DB_*` for the embedded PostgreSQL only, so a
//! MySQL there is `DB_TYPE=mysql` in the env lists with `postgresql.embedded: false`
//! (docs/model.md §11).

use super::{Chart, KnownVersion, Values, major_minor};
use crate::deployment::{Deployed, Source, Valued};
use crate::dify::db_type::{DbType, mysql};
use crate::read::error::Error;

/// The first dify-helm minor version whose templates read `externalMysql` (config.tpl,
/// credentials.tpl).
pub const DIFY_HELM_FIRST: u64 = 34;

/// dify-helm's `externalMysql.username` default (values.yaml 0.34 to 0.38).
const DIFY_HELM_USERNAME: &str = "root";

/// Whether a chart version has a MySQL path: dify-helm from 0.34, douban never.
pub fn supported(chart: Chart, known: &KnownVersion) -> bool {
    chart == Chart::DifyHelm && major_minor(&known.label).is_some_and(|(_, minor)| minor >= DIFY_HELM_FIRST)
}

/// dify-helm's `externalMysql.enabled` (and `externalPostgres` off, which its templates test
/// first): where it is written, when the chart version reads it.
pub(super) fn external(v: &Values, chart: Chart, known: &KnownVersion) -> Option<Source> {
    (supported(chart, known)
        && !v.truthy(&["externalPostgres", "enabled"], false)
        && v.truthy(&["externalMysql", "enabled"], false))
    .then(|| v.src(&["externalMysql", "enabled"]))
}

/// `DB_USERNAME` as dify-helm's Secret sets it from `externalMysql.username` (default `root`).
pub(super) fn username(v: &Values) -> Valued<String> {
    v.string(&["externalMysql", "username"]).unwrap_or_else(|| {
        Valued::new(DIFY_HELM_USERNAME.into(), Source::default("dify-helm default externalMysql.username: root"))
    })
}

/// The database Dify uses: `DB_TYPE` of a component's env list (the container's own env wins
/// over the chart's ConfigMap), else the chart's MySQL path, else PostgreSQL. A MySQL
/// `DB_TYPE` beside the chart's bundled PostgreSQL is refused: the chart points `DB_HOST` at
/// PostgreSQL, which a MySQL client cannot talk to.
pub(super) fn db_type(
    components: &[Deployed],
    chart_mysql: Option<&Source>,
    bundled_postgres: bool,
    chart: Chart,
) -> Result<DbType, Error> {
    match crate::read::mysql::components_db_type(components)? {
        Some(DbType::Mysql) if chart_mysql.is_none() && bundled_postgres => {
            let at = components.iter().find_map(|c| c.env.get("DB_TYPE")).map(|v| v.source.clone());
            let (switch, mysql_path) = match chart {
                Chart::DifyHelm => (
                    "postgresql.enabled: false",
                    "; or use the chart's own MySQL path, externalMysql.enabled (0.34 or later)",
                ),
                Chart::Douban => ("postgresql.embedded: false", " (douban/charts has no MySQL values of its own)"),
            };
            Err(Error::file(
                at.map_or_else(|| "values".to_string(), |s| s.to_string()).clone(),
                format!(
                    "DB_TYPE=mysql while the chart's bundled PostgreSQL is on, and the chart points DB_HOST at it — \
                 set {switch} and DB_HOST/DB_PORT/DB_USERNAME of your MySQL server in the same env list{mysql_path}"
                ),
            ))
        }
        Some(t) => Ok(t),
        None if chart_mysql.is_some() => Ok(DbType::Mysql),
        None => Ok(DbType::Postgresql),
    }
}

/// The cap of an external MySQL: neither chart runs a MySQL server, so its `max_connections`
/// is not in the values — `--db-max-connections`, else MySQL's default 151, said as assumed.
pub(super) fn max_connections(opts: &super::Options) -> (Valued<u64>, bool) {
    match opts.pg_max_connections {
        Some(n) => (Valued::new(n, Source::Flag { flag: "--db-max-connections".into() }), true),
        None => (
            Valued::new(
                mysql::DEFAULT_MAX_CONNECTIONS,
                Source::default(
                    "external MySQL: its max_connections is not in the values (neither chart runs a MySQL \
                     server); MySQL default 151 assumed",
                ),
            ),
            false,
        ),
    }
}
