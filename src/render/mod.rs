//! Rendering plans into the files operators deploy: the template engine with its embedded
//! templates, the view of a plan the templates read, the `.env` patcher and its diff, and the
//! writer that never leaves half a file behind.

pub mod alerts;
pub mod context;
pub mod engine;
pub mod mysql;
pub mod patch;
pub mod pgbouncer;
pub mod write;
