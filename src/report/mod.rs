//! Output formats. Each is a pure function of the model's plain data: table, json, env.

pub mod check_human;
pub mod color;
pub mod env;
pub mod fit;
pub mod github;
pub mod gitlab;
pub mod json;
pub mod matrix;
pub mod pgconf;
pub mod sarif;
pub mod table;
