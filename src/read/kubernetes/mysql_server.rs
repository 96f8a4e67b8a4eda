//! Dify on MySQL in Kubernetes manifests: `DB_TYPE` from the Dify containers' environment, and
//! the cap of a MySQL server among the workloads (`--max_connections` in its `args`/`command`,
//! else a my.cnf mounted from a ConfigMap) or in a ConfigMap alone (docs/model.md §11).

use super::Workload;
use crate::deployment::{Env, Source, Valued};
use crate::dify::db_type::mysql;
use crate::read::error::Error;
use std::collections::BTreeMap;

/// What a MySQL server's manifest says: its `max_connections` (MySQL's default 151 when nothing
/// sets it) and the ordinary account its image creates (`MYSQL_USER`).
pub(super) struct Server {
    pub(super) max_connections: Valued<u64>,
    pub(super) user: Option<String>,
}

/// The settings of a MySQL container in mysqld's order: option files first (a main my.cnf, then
/// the files of a `conf.d` folder, each later one winning), then `--name=value` words of
/// `command`/`args`, which override every option file.
pub(super) fn server(w: &Workload, env: &Env, config_maps: &super::ConfigMaps) -> Result<Server, Error> {
    let d = &w.doc;
    let mut settings = mounted_cnf(w, config_maps);
    settings.extend(crate::read::mysql::command_line(&super::container_words(w)));
    let max_connections = match settings.get("max_connections") {
        Some(v) => crate::read::mysql::max_connections(v)?,
        None => Valued::new(
            mysql::DEFAULT_MAX_CONNECTIONS,
            Source::default(format!(
                "MySQL default (151): {} {} sets no max_connections (args or a mounted my.cnf)",
                d.kind(),
                d.name()
            )),
        ),
    };
    let user = ["MYSQL_USER", "MARIADB_USER"].iter().find_map(|k| env.get(*k)).map(|u| u.value.clone());
    Ok(Server { max_connections, user })
}

/// The `[mysqld]` settings of `.cnf` files mounted from ConfigMaps: a file mounted as the main
/// option file (`…/my.cnf`, or any `.cnf` path) first, then those of a folder ending in `conf.d`
/// (which the mysql and mariadb images include after it), in name order as mysqld reads them.
fn mounted_cnf(w: &Workload, config_maps: &super::ConfigMaps) -> BTreeMap<String, Valued<String>> {
    // (read after the main file, settings).
    let mut files: Vec<(bool, BTreeMap<String, Valued<String>>)> = Vec::new();
    for m in super::mounted_config_maps(w, config_maps) {
        let (mount_path, cm) = (m.path.as_str(), m.data);
        let (in_conf_d, keys): (bool, Vec<&String>) = match &m.sub_path {
            // One key mounted as one file: read when mysqld reads that file.
            Some(key) if mount_path.ends_with(".cnf") => (false, cm.keys().filter(|k| *k == key).collect()),
            Some(key) if key.ends_with(".cnf") && conf_d(mount_path.rsplit_once('/').map_or("", |(dir, _)| dir)) => {
                (true, cm.keys().filter(|k| *k == key).collect())
            }
            Some(_) => continue,
            // The whole ConfigMap as a folder: mysqld reads its `.cnf` files when it includes
            // the folder.
            None if conf_d(mount_path) => (true, cm.keys().filter(|k| k.ends_with(".cnf")).collect()),
            None => continue,
        };
        for key in keys {
            let v = &cm[key];
            let (file, first) = match &v.source {
                // A block scalar starts on the line after its key.
                Source::File { path, line } => (path.clone(), line + 1),
                other => (other.to_string(), 1),
            };
            files.push((in_conf_d, crate::read::mysql::my_cnf(&v.value, &file, first)));
        }
    }
    super::layered(files)
}

/// A folder the mysql and mariadb images include (`!includedir`).
fn conf_d(dir: &str) -> bool {
    dir.ends_with("conf.d")
}

/// No MySQL server among the workloads: a ConfigMap's `.cnf` key whose `[mysqld]` group sets
/// `max_connections`, as operators keep the server's option file beside the manifests.
pub(super) fn cnf_in_config_maps(config_maps: &super::ConfigMaps) -> Result<Option<Valued<u64>>, Error> {
    for env in config_maps.values() {
        for v in env.iter().filter(|(k, _)| k.ends_with(".cnf")).map(|(_, v)| v) {
            let (file, first) = match &v.source {
                Source::File { path, line } => (path.clone(), line + 1),
                other => (other.to_string(), 1),
            };
            if let Some(max) = crate::read::mysql::my_cnf(&v.value, &file, first).get("max_connections") {
                return crate::read::mysql::max_connections(max).map(Some);
            }
        }
    }
    Ok(None)
}
