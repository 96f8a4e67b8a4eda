//! Readers of the real files operators commit: `.env` files (docker compose rules) and YAML
//! (compose files, Kubernetes manifests, Helm values).

pub mod dotenv;
pub mod yaml;
