//! The model layer of skiff: everything that can be said about a Pod without touching the
//! machine. Manifests are decoded strictly into `k8s-openapi` types, defaulted and validated
//! exactly as the Kubernetes API server would, and their resources reduced to the numbers the
//! kubelet uses (effective requests and limits, QoS class, oom_score_adj, cgroup values).

pub mod quantity;
pub mod defaults;
pub mod field;
pub mod manifest;
pub mod validation;
pub mod resources;
