//! gRPC health checking (`grpc.health.v1.Health/Check`) over HTTP/2 with
//! hyper; the two protobuf messages are encoded by hand.
//!
//! The server is untrusted (it runs in the pod), so the reply is bounded as
//! the kubelet's grpc-go client bounds it: one message of at most
//! [`MAX_RECV_MESSAGE`] bytes (grpc-go's default max receive message size,
//! which `pkg/probe/grpc/grpc.go` does not change), refused as soon as its
//! length prefix says more; a second message is a cardinality violation;
//! headers and trailers at most [`MAX_HEADER_LIST`]; HTTP/2 frames at most
//! 16 KiB; flow-control windows small, so the server cannot push more than
//! we read. The caller's timeout covers the whole exchange.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::http::{chain, describe_io, USER_AGENT};

/// Largest reply message accepted: grpc-go's `defaultClientMaxReceiveMessageSize` (4 MiB).
pub const MAX_RECV_MESSAGE: usize = 4 * 1024 * 1024;
/// Largest header (and trailer) list accepted, as SETTINGS_MAX_HEADER_LIST_SIZE.
pub const MAX_HEADER_LIST: u32 = 64 * 1024;
/// HTTP/2 frame size we advertise (the protocol's minimum and default).
const MAX_FRAME: u32 = 16 * 1024;
/// Flow-control windows: what the server may send before we read it.
const WINDOW: u32 = 1024 * 1024;

/// `HealthCheckResponse.ServingStatus`.
pub fn status_name(v: u64) -> String {
    match v {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => other.to_string(),
    }
}

/// gRPC message frame for `HealthCheckRequest { service = 1 }`.
pub fn encode_request(service: &str) -> Vec<u8> {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut framed = Vec::with_capacity(5 + msg.len());
    framed.push(0); // not compressed
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(&msg);
    framed
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// `HealthCheckResponse.status` from one gRPC frame (0 when absent).
pub fn decode_response(frame: &[u8]) -> Result<u64, String> {
    if frame.len() < 5 {
        return Err("short gRPC frame".into());
    }
    if frame[0] != 0 {
        return Err("compressed gRPC response not supported".into());
    }
    let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    let msg = frame
        .get(5..5usize.saturating_add(len))
        .ok_or("truncated gRPC frame")?;
    let mut pos = 0usize;
    let mut status = 0;
    while pos < msg.len() {
        let key = get_varint(msg, &mut pos).ok_or("bad protobuf")?;
        // Lengths come from the server: never let them overflow `pos`.
        let skip = match (key >> 3, key & 7) {
            (1, 0) => {
                status = get_varint(msg, &mut pos).ok_or("bad protobuf")?;
                0
            }
            (_, 0) => {
                get_varint(msg, &mut pos).ok_or("bad protobuf")?;
                0
            }
            (_, 1) => 8,
            (_, 5) => 4,
            (_, 2) => get_varint(msg, &mut pos).ok_or("bad protobuf")?,
            _ => return Err("bad protobuf wire type".into()),
        };
        pos = usize::try_from(skip)
            .ok()
            .and_then(|s| pos.checked_add(s))
            .filter(|&p| p <= msg.len())
            .ok_or("bad protobuf")?;
    }
    Ok(status)
}

fn code_name(code: &str) -> &str {
    match code {
        "1" => "Canceled",
        "2" => "Unknown",
        "3" => "InvalidArgument",
        "4" => "DeadlineExceeded",
        "5" => "NotFound",
        "7" => "PermissionDenied",
        "12" => "Unimplemented",
        "13" => "Internal",
        "14" => "Unavailable",
        "16" => "Unauthenticated",
        other => other,
    }
}

/// Calls Check; `Ok(status)` is the serving status, `Err` a transport or RPC error.
pub async fn check(
    host: &str,
    port: u16,
    service: &str,
    netns: Option<&std::os::fd::OwnedFd>,
) -> Result<u64, String> {
    let tcp = crate::namespaces::connect_tcp(netns, host, port)
        .await
        .map_err(|e| {
            format!(
                "failed to connect service \"{host}:{port}\" within the timeout: {}",
                describe_io(&e)
            )
        })?;
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .max_header_list_size(MAX_HEADER_LIST)
        .max_frame_size(MAX_FRAME)
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .adaptive_window(false)
        .handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| chain(&e))?;
    // The connection task ends with this probe, however it ends (timeout included).
    let _conn = super::http::AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::trace!(error = %e, "grpc probe connection");
        }
    }));
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let req = Request::post(format!("http://{authority}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", USER_AGENT)
        .body(Full::new(Bytes::from(encode_request(service))))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| chain(&e))?;
    if resp.status() != hyper::StatusCode::OK {
        return Err(format!(
            "rpc error: unexpected HTTP status {}",
            resp.status()
        ));
    }
    let header_status = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (body, trailers) = read_reply(resp.into_body()).await?;
    let grpc_status = trailers
        .as_ref()
        .and_then(|t| t.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(header_status)
        .unwrap_or_else(|| "2".into());
    if grpc_status != "0" {
        let msg = trailers
            .as_ref()
            .and_then(|t| t.get("grpc-message"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        return Err(format!(
            "rpc error: code = {} desc = {msg}",
            code_name(&grpc_status)
        ));
    }
    decode_response(&body)
}

/// Reads the reply body: at most one message of at most [`MAX_RECV_MESSAGE`] bytes, then the
/// trailers. Fails as grpc-go's unary client does on a bigger or a second message, without
/// reading further.
async fn read_reply(
    mut body: hyper::body::Incoming,
) -> Result<(Vec<u8>, Option<hyper::HeaderMap>), String> {
    let mut buf: Vec<u8> = Vec::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| chain(&e))?;
        let frame = match frame.into_data() {
            Ok(mut data) => {
                // Never buffers more than the one allowed message, its prefix and one byte.
                while !data.is_empty() {
                    let need = message_end(&buf)?.saturating_sub(buf.len()).max(1);
                    let part = data.split_to(need.min(data.len()));
                    buf.extend_from_slice(&part);
                }
                message_end(&buf)?;
                continue;
            }
            Err(frame) => frame,
        };
        if let Ok(t) = frame.into_trailers() {
            trailers = Some(t);
        }
    }
    Ok((buf, trailers))
}

/// Where the first message in `buf` ends; an error once `buf` shows a message over the limit
/// or the start of a second one.
fn message_end(buf: &[u8]) -> Result<usize, String> {
    if buf.len() < 5 {
        return Ok(5);
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_RECV_MESSAGE {
        return Err(format!(
            "rpc error: code = ResourceExhausted desc = grpc: received message larger than max ({len} vs. {MAX_RECV_MESSAGE})"
        ));
    }
    if buf.len() > 5 + len {
        return Err("rpc error: code = Internal desc = cardinality violation: expected <EOF> for non server-streaming RPCs, but received another message".into());
    }
    Ok(5 + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_roundtrip() {
        assert_eq!(encode_request(""), vec![0, 0, 0, 0, 0]);
        assert_eq!(
            encode_request("ab"),
            vec![0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b']
        );
        assert_eq!(decode_response(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        assert_eq!(decode_response(&[0, 0, 0, 0, 0]), Ok(0));
        // Unknown fields are skipped.
        assert_eq!(
            decode_response(&[0, 0, 0, 0, 6, 0x12, 1, b'x', 0x08, 2, 0]).ok(),
            None
        );
        assert_eq!(
            decode_response(&[0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 2]),
            Ok(2)
        );
        assert_eq!(status_name(2), "NOT_SERVING");
    }
}
