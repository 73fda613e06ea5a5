//! `skiff serve`: the node as a single-node Kubernetes. The API server (crates/skiff-api)
//! answers clients; the kubelet loop ([`kubelet`]) routes its pods to the node's pod workers
//! (crates/skiff-node, the same workers `skiff run` uses) and their statuses and events back.

pub mod controllers;
pub mod events;
pub mod kubelet;
pub mod logs;
pub mod metrics;
pub mod node;
