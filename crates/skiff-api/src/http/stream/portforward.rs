//! Port-forward sessions (the kubelet's portforward/httpstream.go protocol): for each forwarded
//! connection the client opens an `error` and a `data` stream carrying the same `requestid`
//! and `port` headers; once both are there the node dials the port inside the pod's network
//! namespace and the bytes are copied both ways. A dial error is written on the error stream
//! (kubectl prints it) and the session stays up for the other connections.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use k8s_openapi::api::core::v1::Pod;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::frame::{self, Headers};
use super::spdy::{self, Conn, Limits, Stream};
use super::{FINISH_LINGER, IDLE_TIMEOUT, STREAM_CREATION_TIMEOUT};
use crate::node::NodeBackend;

/// Streams open at once on one port-forward connection (two per forwarded connection).
pub const MAX_STREAMS: usize = 512;
/// Bytes read from the pod's connection per DATA frame.
const CHUNK: usize = 128 * 1024;
/// After one direction of a forwarded connection ends, the other gets this long without
/// progress before both are closed (containerd's port-forward waits 1 s).
const GRACE: Duration = Duration::from_secs(1);

/// The stream checks of the kubelet's `httpStreamReceived` (a bad one is reset).
fn accept(h: &Headers) -> Result<(), u32> {
    let port = frame::header(h, "port").unwrap_or("");
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(frame::RST_PROTOCOL_ERROR),
    }
    match frame::header(h, "streamtype") {
        Some("error" | "data") => Ok(()),
        _ => Err(frame::RST_PROTOCOL_ERROR),
    }
}

#[derive(Default)]
struct Pair {
    error: Option<Stream>,
    data: Option<Stream>,
}

/// The request id of a stream; old clients send none, and the kubelet derives one from the
/// stream ids (error n, data n+2).
fn request_id(s: &Stream) -> String {
    match s.header("requestid") {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => match s.header("streamtype") {
            Some("data") => s.id.saturating_sub(2).to_string(),
            _ => s.id.to_string(),
        },
    }
}

pub(crate) async fn run(
    node: Arc<dyn NodeBackend>,
    pod: Pod,
    reader: spdy::Reader,
    writer: spdy::Writer,
    shutdown: CancellationToken,
) {
    let mut conn = Conn::start(
        reader,
        writer,
        Limits {
            max_streams: MAX_STREAMS,
            idle_timeout: IDLE_TIMEOUT,
        },
        Box::new(accept),
    );
    let pod = Arc::new(pod);
    let mut pairs: HashMap<String, (Pair, Instant)> = HashMap::new();
    let mut forwards = JoinSet::new();
    loop {
        let next_expiry = pairs
            .values()
            .map(|(_, t)| *t + STREAM_CREATION_TIMEOUT)
            .min();
        let expiry = async {
            match next_expiry {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            s = conn.streams.recv() => {
                let Some(s) = s else { break };
                let id = request_id(&s);
                let (pair, _) = pairs.entry(id.clone()).or_insert_with(|| (Pair::default(), Instant::now()));
                let slot = if s.header("streamtype") == Some("error") {
                    &mut pair.error
                } else {
                    &mut pair.data
                };
                if slot.is_some() {
                    let what = if s.header("streamtype") == Some("error") { "error" } else { "data" };
                    if let Some(e) = &pair.error {
                        let msg = format!("error processing stream for request {id}: {what} stream already assigned");
                        e.out.data(Bytes::from(msg)).await;
                    }
                    s.out.reset(frame::RST_CANCEL).await;
                    continue;
                }
                *slot = Some(s);
                if pair.error.is_some() && pair.data.is_some() {
                    if let Some((Pair { error: Some(e), data: Some(d) }, _)) = pairs.remove(&id) {
                        forwards.spawn(forward(node.clone(), pod.clone(), e, d));
                    }
                }
            }
            _ = expiry => {
                let now = Instant::now();
                let expired: Vec<String> = pairs
                    .iter()
                    .filter(|(_, (_, t))| *t + STREAM_CREATION_TIMEOUT <= now)
                    .map(|(k, _)| k.clone())
                    .collect();
                for id in expired {
                    if let Some((p, _)) = pairs.remove(&id) {
                        if let Some(e) = p.error {
                            let msg = format!("(conn=spdy, request={id}) timed out waiting for streams");
                            e.out.data(Bytes::from(msg)).await;
                            e.out.fin().await;
                        }
                        if let Some(d) = p.data {
                            d.out.fin().await;
                        }
                    }
                }
            }
            Some(_) = forwards.join_next(), if !forwards.is_empty() => {}
            _ = conn.closed.cancelled() => break,
            _ = shutdown.cancelled() => break,
        }
    }
    // Dropping the forwards drops the pods' connections.
    forwards.abort_all();
    drop(pairs);
    if conn.closed.is_cancelled() {
        return;
    }
    conn.finish(FINISH_LINGER.min(Duration::from_secs(5))).await;
}

/// The kubelet's pod name in messages: name_namespace.
fn full_name(pod: &Pod) -> String {
    format!(
        "{}_{}",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or("")
    )
}

async fn forward(node: Arc<dyn NodeBackend>, pod: Arc<Pod>, mut error: Stream, data: Stream) {
    // The client writes nothing on the error stream (kubectl closes it at once): drop what
    // comes, so it cannot fill the queue and hold the connection.
    let mut from_error = std::mem::replace(&mut error.inbound, tokio::sync::mpsc::channel(1).1);
    tokio::spawn(async move { while from_error.recv().await.is_some() {} });
    let port: u16 = data
        .header("port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let conn = tokio::select! {
        c = node.port_forward(&pod, port) => c,
        _ = data.reset.cancelled() => return,
    };
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            let msg = format!(
                "error forwarding port {port} to pod {}, uid {}: {}",
                full_name(&pod),
                pod.metadata.uid.as_deref().unwrap_or(""),
                e.message
            );
            tracing::debug!("{msg}");
            error.out.data(Bytes::from(msg)).await;
            error.out.fin().await;
            data.out.fin().await;
            return;
        }
    };
    let Stream {
        inbound: mut from_client,
        out,
        reset,
        ..
    } = data;
    let (mut rd, mut wr) = tokio::io::split(conn);
    let progress = AtomicU64::new(0);
    let down_fin = std::sync::atomic::AtomicBool::new(false);
    let up = async {
        while let Some(b) = from_client.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
            progress.fetch_add(1, Ordering::Relaxed);
        }
        // The client is done sending: half-close towards the pod.
        let _ = wr.shutdown().await;
    };
    let down = async {
        let mut buf = BytesMut::with_capacity(CHUNK);
        loop {
            buf.reserve(CHUNK);
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if !out.data(buf.split().freeze()).await {
                        break;
                    }
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        down_fin.store(true, Ordering::Relaxed);
        out.fin().await;
    };
    tokio::pin!(up, down);
    let copy = async {
        let up_done = tokio::select! {
            _ = &mut up => true,
            _ = &mut down => false,
        };
        // One direction ended: the other continues while it makes progress.
        loop {
            let before = progress.load(Ordering::Relaxed);
            let r = if up_done {
                tokio::time::timeout(GRACE, &mut down).await
            } else {
                tokio::time::timeout(GRACE, &mut up).await
            };
            if r.is_ok() || progress.load(Ordering::Relaxed) == before {
                break;
            }
        }
    };
    tokio::select! {
        _ = copy => {}
        _ = reset.cancelled() => {}
    }
    if !down_fin.load(Ordering::Relaxed) {
        out.fin().await;
    }
    error.out.fin().await;
}
