//! Exec and attach sessions: the node's future runs the process on pipes ([`super::pipe`]);
//! the session moves the bytes between the pipes and the client's SPDY streams or WebSocket
//! channels, then reports the result as a `metav1.Status` on the error stream (channel 3) the
//! way the kubelet's remotecommand server does: Success, or `NonZeroExitCode` with an
//! `ExitCode` cause that kubectl turns into its own exit code.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::pipe::{pipes, ResizeParser, SessionIo, Wanted};
use super::spdy::{self, Conn, Limits, Stream};
use super::{
    bad, negotiate, offered, reason_for, spdy_switching, spdy_transport, upgrade_kind,
    upgrade_required, AbortOnDrop, Kind, Upgrade, FINISH_LINGER, IDLE_TIMEOUT,
    STREAM_CREATION_TIMEOUT, V4, V5,
};
use crate::node::{ExecOptions, NodeBackend, StreamError};
use crate::registry::ApiError;

/// What the node's future resolves to: an exit code (attach: 0).
type Outcome = Result<i32, StreamError>;

/// The Status written on the error stream at the end (JSON, kubelet's v4 form).
pub fn status_json(kind: Kind, outcome: &Outcome) -> Vec<u8> {
    let v = match outcome {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(e) if e.code >= 500 => {
            let what = match kind {
                Kind::Exec => "error executing command in container",
                Kind::Attach => "error attaching to container",
            };
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("Internal error occurred: {what}: {}", e.message),
                "reason": "InternalError",
                "details": {"causes": [{"message": format!("{what}: {}", e.message)}]},
                "code": 500,
            })
        }
        Err(e) => json!({
            "metadata": {},
            "status": "Failure",
            "message": e.message,
            "reason": reason_for(e.code),
            "code": e.code,
        }),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Starts the node's work on fresh pipes. An error the node reports at once (container not
/// found, not running) becomes the HTTP answer; later ones go on the error stream.
async fn start_node(
    node: &Arc<dyn NodeBackend>,
    pod: &Pod,
    kind: Kind,
    options: &ExecOptions,
    prefix: bool,
) -> Result<(AbortOnDrop<Outcome>, SessionIo), ApiError> {
    let wanted = Wanted {
        stdin: options.stdin,
        stdout: options.stdout,
        stderr: options.stderr,
        tty: options.tty,
    };
    let (io, sio) = pipes(wanted, prefix);
    let mut fut: crate::node::NodeFuture<Outcome> = match kind {
        Kind::Exec => node.exec(pod, options.clone(), io),
        Kind::Attach => {
            let f = node.attach(pod, options.clone(), io);
            Box::pin(async move { f.await.map(|()| 0) })
        }
    };
    match futures_util::future::poll_immediate(&mut fut).await {
        Some(Err(e)) => Err(ApiError::new(e.code, reason_for(e.code), e.message)),
        // A finished future must not be polled again: keep its result.
        Some(Ok(code)) => Ok((AbortOnDrop(tokio::spawn(async move { Ok(code) })), sio)),
        None => Ok((AbortOnDrop(tokio::spawn(fut)), sio)),
    }
}

pub(crate) async fn request(
    node: Arc<dyn NodeBackend>,
    pod: Pod,
    kind: Kind,
    options: ExecOptions,
    shutdown: CancellationToken,
    parts: &mut Parts,
) -> Result<Response, ApiError> {
    match upgrade_kind(&parts.headers) {
        Some(Upgrade::WebSocket) => {
            let client = offered(&parts.headers, "Sec-WebSocket-Protocol");
            let Some(protocol) = client.iter().find(|p| *p == V5 || *p == V4).cloned() else {
                return Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{V5} {V4}]",
                        client.join(" ")
                    ),
                ));
            };
            let mut ws = WebSocketUpgrade::from_request_parts(parts, &())
                .await
                .map_err(|e| bad(e.to_string()))?;
            let (task, sio) = start_node(&node, &pod, kind, &options, true).await?;
            if let Ok(v) = HeaderValue::from_str(&protocol) {
                ws.set_selected_protocol(v);
            }
            let v5 = protocol == V5;
            Ok(ws
                .max_message_size(4 * 1024 * 1024)
                .max_frame_size(4 * 1024 * 1024)
                .on_upgrade(move |socket| async move {
                    ws_session(socket, v5, kind, options, task, sio, shutdown).await;
                }))
        }
        Some(Upgrade::Spdy) => {
            // Only v4 over SPDY: kubectl offers it from 1.5 on, and v5 adds nothing SPDY
            // lacks (a stream's FIN already closes stdin).
            let protocol = negotiate(&parts.headers, "X-Stream-Protocol-Version", &[V4])?;
            let on_upgrade = parts
                .extensions
                .remove::<hyper::upgrade::OnUpgrade>()
                .ok_or_else(|| bad("the connection cannot be upgraded"))?;
            let (task, sio) = start_node(&node, &pod, kind, &options, false).await?;
            tokio::spawn(async move {
                if let Some((r, w)) = spdy_transport(on_upgrade).await {
                    spdy_session(r, w, kind, options, task, sio, shutdown).await;
                }
            });
            Ok(spdy_switching(&protocol))
        }
        None => Err(upgrade_required()),
    }
}

/// Waits for the node's outcome, unless the client goes away or the server stops first
/// (then the task is dropped, which ends the process).
async fn outcome(
    task: &mut AbortOnDrop<Outcome>,
    gone: &CancellationToken,
    shutdown: &CancellationToken,
) -> Option<Outcome> {
    tokio::select! {
        r = &mut task.0 => Some(r.unwrap_or_else(|e| Err(StreamError {
            code: 500,
            message: format!("the node's task failed: {e}"),
        }))),
        _ = gone.cancelled() => None,
        _ = shutdown.cancelled() => Some(Err(StreamError {
            code: 503,
            message: "the server is shutting down".into(),
        })),
    }
}

// ---- SPDY ----

async fn spdy_session(
    reader: spdy::Reader,
    writer: spdy::Writer,
    kind: Kind,
    o: ExecOptions,
    mut task: AbortOnDrop<Outcome>,
    sio: SessionIo,
    shutdown: CancellationToken,
) {
    let expected = |t: &str| match t {
        "error" => true,
        "stdin" => o.stdin,
        "stdout" => o.stdout,
        "stderr" => o.stderr,
        "resize" => o.tty,
        _ => false,
    };
    let allowed: Vec<&'static str> = ["error", "stdin", "stdout", "stderr", "resize"]
        .into_iter()
        .filter(|t| expected(t))
        .collect();
    let accept_types = allowed.clone();
    let accept: spdy::Accept = Box::new(move |h| match super::frame::header(h, "streamtype") {
        Some(t) if accept_types.contains(&t) => Ok(()),
        _ => Err(super::frame::RST_PROTOCOL_ERROR),
    });
    let mut conn = Conn::start(
        reader,
        writer,
        Limits {
            max_streams: 16,
            idle_timeout: IDLE_TIMEOUT,
        },
        accept,
    );
    // Wait for every stream the request asked for.
    let mut got: Vec<(String, Stream)> = Vec::new();
    let deadline = tokio::time::sleep(STREAM_CREATION_TIMEOUT);
    tokio::pin!(deadline);
    while got.len() < allowed.len() {
        tokio::select! {
            s = conn.streams.recv() => {
                let Some(s) = s else { return };
                let t = s.header("streamtype").unwrap_or("").to_string();
                if got.iter().any(|(g, _)| *g == t) {
                    s.out.reset(super::frame::RST_STREAM_IN_USE).await;
                    continue;
                }
                got.push((t, s));
            }
            _ = &mut deadline => {
                tracing::debug!("exec: timed out waiting for client to create streams");
                conn.abort();
                return;
            }
            _ = conn.closed.cancelled() => return,
        }
    }
    let mut take = |t: &str| {
        got.iter()
            .position(|(g, _)| g == t)
            .map(|i| got.swap_remove(i).1)
    };
    let (Some(error), stdin, stdout, stderr, resize) = (
        take("error"),
        take("stdin"),
        take("stdout"),
        take("stderr"),
        take("resize"),
    ) else {
        return;
    };
    let mut pumps = Vec::new();
    // Nothing is expected from the client on these: what it sends anyway is dropped, so it
    // cannot fill their queues and hold the connection.
    let mut error = error;
    drain(&mut error);
    let (mut stdout, mut stderr) = (stdout, stderr);
    for s in [&mut stdout, &mut stderr].into_iter().flatten() {
        drain(s);
    }
    // Client → node.
    if let (Some(mut s), Some(tx)) = (stdin, sio.stdin) {
        tokio::spawn(async move {
            while let Some(b) = s.inbound.recv().await {
                if tx.send(b).await.is_err() {
                    break;
                }
            }
        });
    }
    if let (Some(mut s), Some(tx)) = (resize, sio.resize) {
        tokio::spawn(async move {
            let mut p = ResizeParser::default();
            while let Some(b) = s.inbound.recv().await {
                for size in p.push(&b) {
                    if tx.send(size).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    // Node → client.
    for (s, rx) in [(stdout, sio.stdout), (stderr, sio.stderr)] {
        if let (Some(s), Some(mut rx)) = (s, rx) {
            pumps.push(tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    if !s.out.data(b).await {
                        return;
                    }
                }
                s.out.fin().await;
            }));
        }
    }
    let gone = conn.closed.clone();
    let Some(result) = outcome(&mut task, &gone, &shutdown).await else {
        return;
    };
    drop(task);
    // The node has dropped its ends: the pumps finish with what is queued.
    let all = futures_util::future::join_all(pumps);
    tokio::select! {
        _ = all => {}
        _ = gone.cancelled() => return,
    }
    error
        .out
        .data(Bytes::from(status_json(kind, &result)))
        .await;
    error.out.fin().await;
    drop(error);
    conn.finish(FINISH_LINGER).await;
}

/// Discards what the client sends on a stream the server only writes to.
fn drain(s: &mut Stream) {
    let (_, empty) = mpsc::channel(1);
    let mut rx = std::mem::replace(&mut s.inbound, empty);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
}

// ---- WebSocket ----

async fn ws_session(
    socket: WebSocket,
    v5: bool,
    kind: Kind,
    o: ExecOptions,
    mut task: AbortOnDrop<Outcome>,
    sio: SessionIo,
    shutdown: CancellationToken,
) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(64);
    let mut writer = AbortOnDrop(tokio::spawn(async move {
        let mut batch = Vec::with_capacity(32);
        while rx.recv_many(&mut batch, 32).await > 0 {
            for m in batch.drain(..) {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    }));
    // kube-apiserver first sends an empty message on the lowest writable channel.
    let first = if o.stdout {
        1
    } else if o.stderr {
        2
    } else {
        3
    };
    let _ = tx
        .send(Message::Binary(Bytes::copy_from_slice(&[first])))
        .await;
    let gone = CancellationToken::new();
    let reader = {
        let gone = gone.clone();
        let mut stdin = sio.stdin;
        let resize = sio.resize;
        tokio::spawn(async move {
            let mut parser = ResizeParser::default();
            let idle = IDLE_TIMEOUT;
            loop {
                let m = match tokio::time::timeout(idle, stream.next()).await {
                    Ok(Some(Ok(m))) => m,
                    _ => break,
                };
                let b = match m {
                    Message::Binary(b) => b,
                    Message::Close(_) => break,
                    _ => continue,
                };
                match b.first() {
                    Some(0) => {
                        if let Some(t) = &stdin {
                            if b.len() > 1 && t.send(b.slice(1..)).await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                    Some(4) => {
                        if let Some(t) = &resize {
                            for size in parser.push(&b[1..]) {
                                let _ = t.try_send(size);
                            }
                        }
                    }
                    Some(255) if v5 && b.len() == 2 && b[1] == 0 => stdin = None,
                    _ => {}
                }
            }
            gone.cancel();
        })
    };
    let reader = AbortOnDrop(reader);
    let mut pumps = Vec::new();
    for rx in [sio.stdout, sio.stderr].into_iter().flatten() {
        let tx = tx.clone();
        let mut rx = rx;
        pumps.push(tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if tx.send(Message::Binary(b)).await.is_err() {
                    return;
                }
            }
        }));
    }
    let Some(result) = outcome(&mut task, &gone, &shutdown).await else {
        return;
    };
    drop(task);
    tokio::select! {
        _ = futures_util::future::join_all(pumps) => {}
        _ = gone.cancelled() => return,
    }
    let mut status = BytesMut::from(&[3u8][..]);
    status.extend_from_slice(&status_json(kind, &result));
    let _ = tx.send(Message::Binary(status.freeze())).await;
    let _ = tx
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
    drop(tx);
    // Bounded: a client that stops reading must not hold the session.
    let _ = tokio::time::timeout(FINISH_LINGER, &mut writer.0).await;
    // The client closes once it has read everything.
    let _ = tokio::time::timeout(FINISH_LINGER, gone.cancelled()).await;
    drop(reader);
}
