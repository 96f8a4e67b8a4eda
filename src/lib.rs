//! difyplan: capacity planning and configuration checks for self-hosted Dify.
//!
//! The library computes; it never prints. `main.rs` maps results to exit codes.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod calibrate;
pub mod cli;
pub mod cmd;
pub mod deployment;
pub mod dify;
pub mod exit;
pub mod findings;
pub mod model;
pub mod read;
pub mod render;
pub mod report;
pub mod safety;
