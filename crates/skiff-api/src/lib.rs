//! skiff's Kubernetes API server (issue 11): what `skiff serve` answers kubectl, client-go and
//! kube-rs programs with. It knows objects, not processes: the node is behind [`node::NodeBackend`]
//! and the daemon (crates/skiff `serve`) wires the two.
//!
//! Layers, bottom up:
//! * [`store`]: the durable revision log (redb) — one global revision counter that is every
//!   object's resourceVersion, optimistic concurrency, watch from a revision, compaction.
//! * `registry`: what kube-apiserver's generic registry and the per-kind strategies do on top of
//!   the store: defaulting, validation, create/update/delete/patch rules (graceful pod deletion,
//!   finalizers, pod update rules), admission.
//! * `http`: REST routing, content negotiation (Table), watch streams, exec/attach/port-forward
//!   streams (`http::stream`: SPDY/3.1 and WebSocket), Status errors, discovery,
//!   `/version`, `/openapi`.
//! * `transport`: the unix socket and TLS listeners, bearer tokens.

pub mod http;
pub mod metrics;
pub mod node;
pub mod openapi;
pub mod patch;
pub mod registry;
pub mod store;
pub mod tables;
pub mod transport;
