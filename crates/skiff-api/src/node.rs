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

    /// The pod's lifecycle timeline (skiff-timeline's JSON: per container instance its starts,
    /// probes, hooks, signals and exits), live while the pod runs; `None` when the node has
    /// none (a pod it never ran). Served as the pods' `timeline` subresource.
    fn timeline(&self, pod: &Pod) -> Option<serde_json::Value> {
        let _ = pod;
        None
    }

    // The streaming side (issue 12): exec, attach, port-forward. Default bodies refuse, so a
    // backend without them (tests' fakes) still builds.
    /// Run `options.command` in the container's namespaces, cgroup and credentials, wiring
    /// `io`; resolves to the exit code when the process ends. The process never outlives the
    /// container and is killed if the future is dropped (client gone). An error the future
    /// returns on its first poll (before its first `Pending`: container unknown or not
    /// running) is the HTTP answer to the upgrade request, which kubectl prints as the
    /// server's error; a later one becomes a Status on the error stream. Same for `attach`.
    fn exec(
        &self,
        pod: &Pod,
        options: ExecOptions,
        io: StreamIo,
    ) -> NodeFuture<Result<i32, StreamError>> {
        let _ = (pod, options, io);
        Box::pin(async {
            Err(StreamError {
                code: 400,
                message: "exec is not supported by this node".into(),
            })
        })
    }
    /// Attach `io` to the running container's own stdio (held by its monitor); resolves when
    /// the container's output ends or the client detaches.
    fn attach(
        &self,
        pod: &Pod,
        options: ExecOptions,
        io: StreamIo,
    ) -> NodeFuture<Result<(), StreamError>> {
        let _ = (pod, options, io);
        Box::pin(async {
            Err(StreamError {
                code: 400,
                message: "attach is not supported by this node".into(),
            })
        })
    }
    /// Dial TCP `port` on the pod's loopback inside its network namespace.
    fn port_forward(
        &self,
        pod: &Pod,
        port: u16,
    ) -> NodeFuture<Result<Box<dyn PodConnection>, StreamError>> {
        let _ = (pod, port);
        Box::pin(async {
            Err(StreamError {
                code: 400,
                message: "port-forward is not supported by this node".into(),
            })
        })
    }
}

/// A terminal size from a `resize` stream/channel (`{"Width":…,"Height":…}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TermSize {
    pub width: u16,
    pub height: u16,
}

/// Byte sources and sinks the HTTP layer hands to the node for exec and attach, already
/// demultiplexed from the SPDY streams or WebSocket channels the client opened. A `None`
/// is a stream the client did not ask for.
pub struct StreamIo {
    pub stdin: Option<Pin<Box<dyn tokio::io::AsyncRead + Send>>>,
    pub stdout: Option<Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
    pub stderr: Option<Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
    /// Terminal size changes (TTY sessions only); the first arrives before or soon after start.
    pub resize: Option<tokio::sync::mpsc::Receiver<TermSize>>,
}

/// `POST …/pods/{name}/exec` or `/attach` options (PodExecOptions / PodAttachOptions), checked
/// by the HTTP layer. `command` is empty for attach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// Resolved container name (the HTTP layer applies kubectl's default-container rules).
    pub container: String,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// Why an exec, attach or port-forward could not run (before or while streaming); the HTTP
/// layer turns it into a Status (before the upgrade: the response; after: the error stream).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StreamError {
    /// HTTP code: 400 (`container "x" is not valid for pod "p"`, not running), 404, 500.
    pub code: u16,
    pub message: String,
}

/// A boxed future, for the async node methods (the trait stays object-safe).
pub type NodeFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// A connection dialled inside the pod's network namespace.
pub trait PodConnection: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> PodConnection for T {}
