//! `kubectl exec`, `attach`, `cp` and `port-forward`: the pods subresources `exec`, `attach` and
//! `portforward`, upgraded to a streaming protocol, with the process work done by the node
//! ([`crate::node::NodeBackend::exec`], `attach`, `port_forward`).
//!
//! Protocols (images-serve-facts §5.2):
//! * WebSocket `v5.channel.k8s.io` (kubectl ≥ 1.30 tries it first) and `v4.channel.k8s.io`
//!   (kube-rs): one binary message per write, `[channel] + payload`; channels 0 stdin,
//!   1 stdout, 2 stderr, 3 error (a `metav1.Status`), 4 resize; v5's `[255, ch]` closes a
//!   channel (stdin EOF). See [`exec`].
//! * SPDY/3.1 with `X-Stream-Protocol-Version: v4.channel.k8s.io` (kubectl ≤ 1.29 and the
//!   fallback of all): the client opens one stream per `streamtype`. See [`spdy`], [`frame`].
//! * Port-forward: SPDY `portforward.k8s.io`, plain or tunnelled in the binary messages of a
//!   `SPDY/3.1+portforward.k8s.io` WebSocket (kubectl ≥ 1.31). See [`portforward`].
//!
//! What kube-apiserver checks before it proxies to the kubelet is checked here
//! (pkg/registry/core/pod/strategy.go `streamLocation`): the pod (404), the container (400,
//! `validateContainer`), the node binding (400); then the kubelet's option rules
//! (remotecommand `NewOptions`).

pub mod exec;
pub mod frame;
pub mod pipe;
pub mod portforward;
pub mod spdy;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::http::Params;
use crate::node::{ExecOptions, NodeBackend};
use crate::registry::{Api, ApiError, Resource};

/// kubelet's `--streaming-connection-idle-timeout` default.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 3600);
/// How long the client has to open the streams it asked for (kubelet's stream creation
/// timeout).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// After the end of a session, how long the server keeps reading until the client closes
/// (closing first could reset the connection under output the client has not read).
pub const FINISH_LINGER: Duration = Duration::from_secs(60);

pub const V4: &str = "v4.channel.k8s.io";
pub const V5: &str = "v5.channel.k8s.io";
pub const PORT_FORWARD_V1: &str = "portforward.k8s.io";
pub const TUNNEL_PORT_FORWARD: &str = "SPDY/3.1+portforward.k8s.io";

/// Which subresource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Exec,
    Attach,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "BadRequest", message)
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        429 => "TooManyRequests",
        _ => "InternalError",
    }
}

/// How the client asked to upgrade.
enum Upgrade {
    WebSocket,
    Spdy,
}

fn upgrade_kind(h: &HeaderMap) -> Option<Upgrade> {
    let conn = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
    if !conn {
        return None;
    }
    let up = h.get(header::UPGRADE)?.to_str().ok()?.trim();
    if up.eq_ignore_ascii_case("websocket") {
        Some(Upgrade::WebSocket)
    } else if up.eq_ignore_ascii_case("SPDY/3.1") {
        Some(Upgrade::Spdy)
    } else {
        None
    }
}

/// The values of a protocol-list header, in the client's order (one per line, or comma
/// separated).
fn offered(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// httpstream.Handshake: the first protocol the client offers that the server speaks.
fn negotiate(h: &HeaderMap, name: &str, server: &[&str]) -> Result<String, ApiError> {
    let client = offered(h, name);
    client
        .iter()
        .find(|c| server.contains(&c.as_str()))
        .cloned()
        .ok_or_else(|| {
            ApiError::new(
                403,
                "Forbidden",
                format!(
                    "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]",
                    client.join(" "),
                    server.join(" ")
                ),
            )
        })
}

/// Every container name of the pod in kube's VisitContainers order.
fn container_names(pod: &Pod) -> Vec<String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let mut names: Vec<String> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    names.extend(spec.containers.iter().map(|c| c.name.clone()));
    names.extend(
        spec.ephemeral_containers
            .iter()
            .flatten()
            .map(|c| c.name.clone()),
    );
    names
}

/// kube-apiserver's `validateContainer`: the named container must exist; none named is the
/// only app container, else a 400 listing the choices as Go prints a `[]string`. (kubectl
/// applies the `kubectl.kubernetes.io/default-container` annotation itself, client side.)
pub fn choose_container(pod: &Pod, name: &str, asked: Option<&str>) -> Result<String, ApiError> {
    let names = container_names(pod);
    match asked.filter(|c| !c.is_empty()) {
        Some(c) if names.iter().any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(bad(format!("container {c} is not valid for pod {name}"))),
        None => {
            let apps = pod.spec.as_ref().map_or(&[][..], |s| &s.containers[..]);
            match apps {
                [only] => Ok(only.name.clone()),
                [] => Err(bad(format!(
                    "a container name must be specified for pod {name}"
                ))),
                _ => Err(bad(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    names.join(" ")
                ))),
            }
        }
    }
}

/// PodExecOptions / PodAttachOptions from the query, with the kubelet's rules (a TTY has no
/// separate stderr; at least one stream).
pub(crate) fn stream_options(
    kind: Kind,
    p: &Params,
    container: String,
) -> Result<ExecOptions, ApiError> {
    let command: Vec<String> = match kind {
        Kind::Exec => p.all("command").into_iter().map(str::to_string).collect(),
        Kind::Attach => Vec::new(),
    };
    let tty = p.bool("tty");
    let o = ExecOptions {
        container,
        command,
        stdin: p.bool("stdin"),
        stdout: p.bool("stdout"),
        stderr: p.bool("stderr") && !tty,
        tty,
    };
    if !o.stdin && !o.stdout && !o.stderr {
        return Err(bad("you must specify at least 1 of stdin, stdout, stderr"));
    }
    if kind == Kind::Exec && o.command.is_empty() {
        return Err(bad("you must specify a command"));
    }
    Ok(o)
}

fn pod_of(api: &Api, r: &'static Resource, ns: &str, name: &str) -> Result<Pod, ApiError> {
    let object = api.get(r, ns, name)?;
    Pod::deserialize(&*object)
        .map_err(|e| ApiError::new(500, "InternalError", format!("decoding pod: {e}")))
}

fn require_node(pod: &Pod, name: &str) -> Result<(), ApiError> {
    let bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    if bound {
        Ok(())
    } else {
        Err(bad(format!("pod {name} does not have a host assigned")))
    }
}

fn upgrade_required() -> ApiError {
    bad("Upgrade request required")
}

/// The 101 answer to a SPDY upgrade.
fn spdy_switching(protocol: &str) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    if let Ok(v) = HeaderValue::from_str(protocol) {
        h.insert("X-Stream-Protocol-Version", v);
    }
    resp
}

/// The upgraded connection of a SPDY request, as reader and writer halves.
async fn spdy_transport(
    on_upgrade: hyper::upgrade::OnUpgrade,
) -> Option<(spdy::Reader, spdy::Writer)> {
    match on_upgrade.await {
        Ok(up) => {
            let io = hyper_util::rt::TokioIo::new(up);
            let (r, w) = tokio::io::split(io);
            Some((
                spdy::Reader::Raw(Box::new(r)),
                spdy::Writer::Raw(Box::new(w)),
            ))
        }
        Err(e) => {
            tracing::debug!("SPDY upgrade failed: {e}");
            None
        }
    }
}

/// `GET|POST …/pods/{name}/exec|attach|portforward` (`r` is the pods resource).
pub(crate) async fn serve(
    (api, r): (&Api, &'static Resource),
    shutdown: &CancellationToken,
    sub: &str,
    ns: &str,
    name: &str,
    p: &Params,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    let pod = pod_of(api, r, ns, name)?;
    let node = api.node().clone();
    match sub {
        "portforward" => {
            require_node(&pod, name)?;
            portforward_request(node, pod, shutdown.clone(), &mut parts).await
        }
        _ => {
            let kind = if sub == "attach" {
                Kind::Attach
            } else {
                Kind::Exec
            };
            let container = choose_container(&pod, name, p.get("container"))?;
            let mut options = stream_options(kind, p, container)?;
            require_node(&pod, name)?;
            if kind == Kind::Attach {
                // The kubelet takes the TTY setting from the container's spec: whether the
                // process runs on a terminal cannot change after it started.
                options.tty = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.iter().find(|c| c.name == options.container))
                    .and_then(|c| c.tty)
                    .unwrap_or(false);
                if options.tty {
                    options.stderr = false;
                }
            }
            exec::request(node, pod, kind, options, shutdown.clone(), &mut parts).await
        }
    }
}

async fn portforward_request(
    node: Arc<dyn NodeBackend>,
    pod: Pod,
    shutdown: CancellationToken,
    parts: &mut Parts,
) -> Result<Response, ApiError> {
    match upgrade_kind(&parts.headers) {
        Some(Upgrade::WebSocket) => {
            let protocols = offered(&parts.headers, "Sec-WebSocket-Protocol");
            if !protocols.iter().any(|p| p == TUNNEL_PORT_FORWARD) {
                return Err(bad(
                    "unable to upgrade: no tunneling spdy protocols provided",
                ));
            }
            let mut ws = WebSocketUpgrade::from_request_parts(parts, &())
                .await
                .map_err(|e| bad(e.to_string()))?;
            ws.set_selected_protocol(HeaderValue::from_static(TUNNEL_PORT_FORWARD));
            Ok(ws
                .max_message_size(frame::MAX_DATA_LEN + 16)
                .max_frame_size(frame::MAX_DATA_LEN + 16)
                .on_upgrade(move |socket| async move {
                    use futures_util::StreamExt;
                    let (sink, stream) = socket.split();
                    portforward::run(
                        node,
                        pod,
                        spdy::Reader::Ws(stream),
                        spdy::Writer::Ws(sink),
                        shutdown,
                    )
                    .await;
                }))
        }
        Some(Upgrade::Spdy) => {
            // The kubelet accepts a client that names no protocol (old clients).
            let protocol = if offered(&parts.headers, "X-Stream-Protocol-Version").is_empty() {
                PORT_FORWARD_V1.to_string()
            } else {
                negotiate(
                    &parts.headers,
                    "X-Stream-Protocol-Version",
                    &[PORT_FORWARD_V1],
                )?
            };
            let on_upgrade = parts
                .extensions
                .remove::<hyper::upgrade::OnUpgrade>()
                .ok_or_else(|| bad("the connection cannot be upgraded"))?;
            tokio::spawn(async move {
                if let Some((r, w)) = spdy_transport(on_upgrade).await {
                    portforward::run(node, pod, r, w, shutdown).await;
                }
            });
            Ok(spdy_switching(&protocol))
        }
        None => Err(upgrade_required()),
    }
}

/// A spawned task that is aborted when this handle is dropped (the node's future: dropping
/// it kills the process).
pub(crate) struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests;
