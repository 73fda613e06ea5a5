//! What the API server asks of the node it fronts (the daemon implements it over skiff-node):
//! its name, whether a pod fits (admission A1), and container logs. Kept small so the API
//! crate never depends on the node runtime.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use k8s_openapi::api::core::v1::{Node, Pod};

/// A container log as a byte stream (ends at EOF, or never with `follow`).
pub type LogStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// `GET …/pods/{name}/log` query options (PodLogOptions), already checked by the HTTP layer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub container: String,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    /// RFC 3339 `sinceTime`, parsed to unix nanoseconds.
    pub since_time_unix_nanos: Option<i128>,
    pub limit_bytes: Option<i64>,
}

/// Why logs cannot be served; the HTTP layer renders it as a Status with this code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LogError {
    /// HTTP code: 400 (e.g. `previous terminated container "c" in pod "p" not found`), 404.
    pub code: u16,
    pub message: String,
}

/// The node behind the API.
pub trait NodeBackend: Send + Sync + 'static {
    /// The Node object's name; admitted pods get it as `spec.nodeName`.
    fn node_name(&self) -> &str;
    /// The Node object as the node sees itself now (capacity, allocatable, conditions,
    /// addresses, nodeInfo); the API server stores it and refreshes its status.
    fn node_object(&self) -> Node;
    /// Admission on this node (SEMANTICS A1: node fit against the pods already bound here,
    /// which are not terminal). `Err` is the message of a 403 Forbidden refusal.
    fn admit(&self, pod: &Pod, bound: &[Pod]) -> Result<(), String>;
    /// A container's log, from the node's CRI log files.
    fn logs(&self, pod: &Pod, options: &LogOptions) -> Result<LogStream, LogError>;
}
