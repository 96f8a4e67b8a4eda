//! MySQL's own settings as operators write them: `--name=value` on `mysqld`'s command line (Dify's
//! `db_mysql` service) and `name = value` lines of a my.cnf `[mysqld]` group. One reader for
//! compose and manifests; option names with `-` and `_` are the same option, as MySQL reads them.

use crate::deployment::{Source, Valued};
use crate::dify::db_type::mysql;
use crate::read::error::Error;
use std::collections::BTreeMap;

/// Images of a MySQL-protocol server: MySQL, MariaDB, Percona.
pub fn is_mysql_image(image: &str) -> bool {
    let name = image.rsplit('/').next().unwrap_or(image);
    let name = name.split([':', '@']).next().unwrap_or(name);
    matches!(name, "mysql" | "mariadb" | "mysql-server" | "percona-server" | "percona")
}

fn option_name(s: &str) -> String {
    s.trim().replace('-', "_").to_ascii_lowercase()
}

/// `--name=value` and `--name value` words of a mysqld command line, each with the source of its
/// word; a later one wins, as in mysqld.
pub fn command_line(words: &[Valued<String>]) -> BTreeMap<String, Valued<String>> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < words.len() {
        if let Some(opt) = words[i].value.strip_prefix("--") {
            match opt.split_once('=') {
                Some((k, v)) => {
                    out.insert(option_name(k), Valued::new(v.trim().to_string(), words[i].source.clone()));
                }
                None if option_name(opt) == "max_connections" => {
                    if let Some(next) = words.get(i + 1) {
                        out.insert(option_name(opt), next.clone());
                        i += 1;
                    }
                }
                None => {}
            }
        }
        i += 1;
    }
    out
}

/// The `[mysqld]` (and `[server]`, `[mariadb]`) settings of a my.cnf text: lower-case name with
/// `_`, value without quotes, and the line in `file` (`first_line` is the text's first line).
pub fn my_cnf(text: &str, file: &str, first_line: usize) -> BTreeMap<String, Valued<String>> {
    let mut out = BTreeMap::new();
    let mut in_server = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split(['#', ';']).next().unwrap_or_default().trim();
        if let Some(group) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let group = group.trim().to_ascii_lowercase();
            in_server = matches!(group.as_str(), "mysqld" | "server" | "mariadb" | "mysqld-8.0");
            continue;
        }
        if !in_server {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else { continue };
        let value = value.trim().trim_matches(['\'', '"']).to_string();
        out.insert(option_name(name), Valued::new(value, Source::file(file, first_line + i)));
    }
    out
}

/// A `max_connections` value as a count (MySQL takes 1 to 100,000), or a located message.
pub fn max_connections(v: &Valued<String>) -> Result<Valued<u64>, Error> {
    let shown = crate::safety::shown(&v.value);
    match v.value.trim().parse::<u64>() {
        Ok(n) if (1..=mysql::MAX_MAX_CONNECTIONS).contains(&n) => Ok(Valued::new(n, v.source.clone())),
        Ok(_) => Err(Error::at(
            v.source.clone(),
            format!(
                "max_connections `{shown}` is outside MySQL's range 1 to {} — write a count such as 1000",
                mysql::MAX_MAX_CONNECTIONS
            ),
        )),
        Err(_) => Err(Error::at(
            v.source.clone(),
            format!(
                "max_connections `{shown}` is not a whole number — write a count such as 1000 (MySQL's \
             MYSQL_MAX_CONNECTIONS in Dify's .env)"
            ),
        )),
    }
}

/// Dify's `DB_TYPE` as read from a file: PostgreSQL or MySQL, else where and what to do.
pub fn db_type(v: &crate::deployment::Valued<String>) -> Result<crate::dify::db_type::DbType, Error> {
    crate::dify::db_type::DbType::parse_dify(&v.value).ok_or_else(|| {
        Error::at(
            v.source.clone(),
            format!(
                "DB_TYPE={} is a database difyplan does not model (it plans PostgreSQL and MySQL) — check this \
                 deployment's connection budget by hand",
                crate::safety::shown(v.value.trim())
            ),
        )
    })
}

/// Dify's `DB_TYPE` as its containers see it (Kubernetes manifests, Helm values): the api's,
/// else the first component's that sets it; `None` when none does.
pub fn components_db_type(
    components: &[crate::deployment::Deployed],
) -> Result<Option<crate::dify::db_type::DbType>, Error> {
    use crate::dify::Component;
    let api = components.iter().find(|c| c.component == Component::Api).and_then(|c| c.env.get("DB_TYPE"));
    let any = || components.iter().find_map(|c| c.env.get("DB_TYPE"));
    match api.or_else(any) {
        Some(v) => db_type(v).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[&str]) -> Vec<Valued<String>> {
        ws.iter().enumerate().map(|(i, w)| Valued::new(w.to_string(), Source::file("f", i + 1))).collect()
    }

    #[test]
    fn mysqld_command_line() {
        let s = command_line(&words(&[
            "--max_connections=1000",
            "--innodb_buffer_pool_size=512M",
            "--max-connections",
            "300",
        ]));
        assert_eq!(s["max_connections"].value, "300");
        assert_eq!(s["max_connections"].source, Source::file("f", 4));
        assert_eq!(s["innodb_buffer_pool_size"].value, "512M");
    }

    #[test]
    fn my_cnf_groups() {
        let s = my_cnf("[client]\nmax_connections=5\n[mysqld]\n# c\nmax-connections = 400 # x\n", "cm.yaml", 10);
        assert_eq!(s["max_connections"].value, "400");
        assert_eq!(s["max_connections"].source, Source::file("cm.yaml", 14));
    }

    #[test]
    fn images_and_counts() {
        assert!(is_mysql_image("mysql:8.0"));
        assert!(is_mysql_image("docker.io/library/mariadb:11"));
        assert!(!is_mysql_image("postgres:15-alpine"));
        let v = |s: &str| Valued::new(s.to_string(), Source::file("f", 1));
        assert_eq!(max_connections(&v("1000")).unwrap().value, 1000);
        assert!(max_connections(&v("0")).unwrap_err().to_string().contains("range"));
        let Error::At { at, .. } = max_connections(&v("many")).unwrap_err() else { panic!("not located") };
        assert_eq!(at, Source::file("f", 1));
    }
}
