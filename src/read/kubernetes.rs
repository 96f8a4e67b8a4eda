//! Kubernetes manifests (plain, or the output of `kustomize build` / `helm template`).
use super::inputs::Input;
use super::compose::Options;
use crate::dify::deployment::Deployment;

pub fn read(_inputs: &[&Input], _opts: &Options) -> Result<Deployment, String> {
    Err("Kubernetes manifests are not read yet".into())
}
