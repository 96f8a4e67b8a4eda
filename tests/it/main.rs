//! difyplan's integration tests: the whole CLI (exit codes, messages, formats) and the model's
//! properties. Real Dify files come from `../shared/fixtures/dify/`, never from copies.

mod alerts;
mod bad_input;
mod calibrate_cli;
mod capacity_cli;
mod check_cli;
mod compose_inputs;
mod docs_cli;
mod fuzz;
mod helm_releases;
mod helm_rendered;
mod helm_repos;
mod helm_values;
mod hostile_servers;
mod integrations;
mod kubernetes_cli;
mod kustomize_trees;
mod matrix_files;
mod mysql;
mod mysql_kubernetes;
mod mysql_server;
mod operator_fit;
mod operators;
mod pg_server;
mod pg_tuning;
mod plan_properties;
mod pooler;
mod readme;
mod render_cli;
mod round_trip;
mod simulation;
mod size_cli;
mod support;
mod versions;
mod walk_cli;
