//! kustomize trees, built as `kubectl kustomize` builds them: the tree walk with its resources,
//! overlays, components, names and namespaces (`build`), the ConfigMaps and Secrets its
//! generators make (`generator`), strategic-merge and JSON 6902 patches (`patch`) on a YAML tree
//! that remembers where each value was written (`node`).

mod build;
mod generator;
mod node;
mod patch;

pub use build::{Trees, trees};
pub use generator::{Generated, generated, is_kustomization, is_kustomization_name};
