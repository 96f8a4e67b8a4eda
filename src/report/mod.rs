//! Output formats. Each is a pure function of the model's plain data: table, json, env.

pub mod env;
pub mod json;
pub mod table;
