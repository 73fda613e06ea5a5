//! The model layer of skiff: everything that can be said about a Pod without touching the
//! machine. Manifests are decoded strictly into `k8s-openapi` types, defaulted and validated
//! exactly as the Kubernetes API server would, and their resources reduced to the numbers the
//! kubelet uses (effective requests and limits, QoS class, oom_score_adj, cgroup values).
//! Also the other pure pieces the node, the CLI and an API server share: update validation
//! (`validation::update`), `$(VAR)` expansion (`expand`), downward API values (`downward`) and
//! kubectl's columns (`display`). No I/O here.

pub mod admission;
pub mod api_version;
pub mod defaults;
pub mod display;
pub mod downward;
pub mod expand;
pub mod field;
pub mod gates;
pub mod manifest;
pub mod policy;
pub mod quantity;
pub mod resources;
pub mod strategy;
pub mod validation;
pub mod workloads;

use k8s_openapi::api::core::v1::Pod;

/// The Kubernetes API version skiff implements: the k8s-openapi feature it builds against,
/// and the API server's and kubelet's behaviour of that release. Messages and `skiff version`
/// name it; keep it equal to the `v1_NN` feature in the workspace Cargo.toml.
pub const KUBERNETES_MAJOR: u32 = 1;
/// See [`KUBERNETES_MAJOR`].
pub const KUBERNETES_MINOR: u32 = 37;

/// A Pod the API server would refuse, with every reason.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}", field::invalid_message("Pod", .name, .errors))]
pub struct PodInvalid {
    pub name: String,
    pub errors: field::ErrorList,
}

/// What the API server does to a Pod on create: default it (D1–D7, at decoding), reset what
/// only the server sets and drop fields of disabled gates (`strategy`, `gates`), then validate
/// it (V0–V14). Returns the prepared Pod or every validation error.
pub fn prepare_pod(mut pod: Pod) -> Result<Pod, PodInvalid> {
    defaults::default_pod(&mut pod);
    strategy::prepare_for_create(&mut pod);
    let errors = validation::validate_pod(&pod);
    if errors.is_empty() {
        Ok(pod)
    } else {
        Err(PodInvalid {
            name: pod.metadata.name.clone().unwrap_or_default(),
            errors,
        })
    }
}
