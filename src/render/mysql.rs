//! Dify on MySQL in Kubernetes manifests and Helm values: the keys each Dify container takes to
//! reach the server, and the names of the MySQL StatefulSet difyplan renders (docs/model.md §11).

use crate::dify::keys::{self, Key};
use crate::model::plan::Plan;

/// The Service and StatefulSet of the rendered MySQL server (`DB_HOST` of every Dify container).
pub const KUBERNETES_NAME: &str = "dify-mysql";
/// MySQL's port.
pub const PORT: u16 = 3306;

const DB_HOST: Key = Key { name: "DB_HOST", doc: "the database host: the MySQL Service (mysql.yaml)" };
const DB_TYPE: Key = Key { name: "DB_TYPE", doc: "the database Dify uses: MySQL" };
const DB_PORT: Key = Key { name: "DB_PORT", doc: "the database port: MySQL's 3306" };
const DB_USERNAME_ROOT: Key = Key {
    name: "DB_USERNAME",
    doc: "root, which holds CONNECTION_ADMIN (--app-role superuser): it may take the one connection MySQL \
        keeps for an administrator",
};

/// `DB_TYPE`, `DB_HOST`, `DB_PORT` and `DB_USERNAME` of a Dify container on the plan's MySQL,
/// with their values; empty for a PostgreSQL plan.
pub fn kubernetes_env(plan: &Plan) -> Vec<(&'static Key, String)> {
    if plan.input.db_type != crate::dify::db_type::DbType::Mysql {
        return Vec::new();
    }
    vec![
        (&DB_TYPE, "mysql".into()),
        (&DB_HOST, KUBERNETES_NAME.into()),
        (&DB_PORT, PORT.to_string()),
        if plan.input.app_role_superuser {
            (&DB_USERNAME_ROOT, crate::dify::db_type::mysql::SUPERUSER.into())
        } else {
            (&keys::DB_USERNAME_MYSQL, keys::APP_ROLE.into())
        },
    ]
}

/// The account Dify connects as: `dify`, an ordinary account the image creates; `root` (which
/// holds CONNECTION_ADMIN) with `--app-role superuser`.
pub fn app_role(plan: &Plan) -> &'static str {
    if plan.input.app_role_superuser { crate::dify::db_type::mysql::SUPERUSER } else { keys::APP_ROLE }
}
