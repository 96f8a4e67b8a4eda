//! difyplan's integration tests: the whole CLI (exit codes, messages, formats) and the model's
//! properties. Real Dify files come from `../shared/fixtures/dify/`, never from copies.

mod bad_input;
mod calibrate_cli;
mod capacity_cli;
mod check_cli;
mod fuzz;
mod helm_values;
mod kubernetes_cli;
mod matrix_files;
mod pg_server;
mod plan_properties;
mod render_cli;
mod size_cli;
mod support;
