//! gRPC health checking (`grpc.health.v1.Health/Check`) over HTTP/2 with
//! hyper; the two protobuf messages are prost-derived structs (no codegen step).
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

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

/// `grpc.health.v1.HealthCheckResponse`. The status stays an `i32` (open enum): a number the
/// proto does not name is reported as that number, as Go's generated `String()` does.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// `HealthCheckResponse.ServingStatus.SERVING`.
pub const SERVING: i32 = 1;

/// `HealthCheckResponse.ServingStatus` by name.
pub fn status_name(v: i32) -> String {
    match v {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => other.to_string(),
    }
}

/// gRPC message frame (uncompressed, length-prefixed) for `HealthCheckRequest { service }`.
pub fn encode_request(service: &str) -> Vec<u8> {
    let msg = prost::Message::encode_to_vec(&HealthCheckRequest {
        service: service.to_string(),
    });
    let mut framed = Vec::with_capacity(5 + msg.len());
    framed.push(0); // not compressed
                    // The service name comes from the pod spec, whose size the API server bounds far below 4 GiB.
    framed.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes());
    framed.extend_from_slice(&msg);
    framed
}

/// `HealthCheckResponse.status` from the reply body: exactly one gRPC message, as
/// [`read_reply`] collected it (at most [`MAX_RECV_MESSAGE`] bytes after its prefix).
///
/// The protobuf is decoded by prost, not by hand: a hand-written decoder here once added a
/// server-sent length to its position unchecked, and a 16-byte reply (a length-delimited
/// field whose length varint is `2^64 - 11`) wrapped the position back to 0 and looped forever
/// in release builds. prost checks every length against the bytes that remain, so decoding is
/// linear in the message size and never reads past it.
pub fn decode_response(body: &[u8]) -> Result<i32, String> {
    let Some(prefix) = body.get(..5) else {
        // No message at all, or a body cut inside the prefix (grpc-go's texts).
        return Err(if body.is_empty() {
            "rpc error: code = Internal desc = cardinality violation: received no response message from non-streaming RPC".into()
        } else {
            "rpc error: code = Internal desc = unexpected EOF".into()
        });
    };
    match prefix[0] {
        0 => {}
        // No grpc-accept-encoding is sent, so a compressed reply is the server's error.
        1 => {
            return Err("rpc error: code = Internal desc = grpc: compressed flag set with identity or empty encoding".into())
        }
        other => {
            return Err(format!(
                "rpc error: code = Internal desc = grpc: received unexpected payload format {other}"
            ))
        }
    }
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if len > MAX_RECV_MESSAGE {
        return Err(too_large(len));
    }
    let msg = body
        .get(5..5 + len)
        .ok_or("rpc error: code = Internal desc = unexpected EOF")?;
    if body.len() > 5 + len {
        return Err(CARDINALITY.into());
    }
    <HealthCheckResponse as prost::Message>::decode(msg)
        .map(|r| r.status)
        .map_err(|e| {
            format!(
                "rpc error: code = Internal desc = grpc: failed to unmarshal the received message: {e}"
            )
        })
}

const CARDINALITY: &str = "rpc error: code = Internal desc = cardinality violation: expected <EOF> for non server-streaming RPCs, but received another message";

fn too_large(len: usize) -> String {
    format!(
        "rpc error: code = ResourceExhausted desc = grpc: received message larger than max ({len} vs. {MAX_RECV_MESSAGE})"
    )
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
) -> Result<i32, String> {
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

/// Where the first message in `buf` ends (pure: `pub` for the decoder property tests); an error once `buf` shows a message over the limit
/// or the start of a second one.
pub fn message_end(buf: &[u8]) -> Result<usize, String> {
    if buf.len() < 5 {
        return Ok(5);
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_RECV_MESSAGE {
        return Err(too_large(len));
    }
    if buf.len() > 5 + len {
        return Err(CARDINALITY.into());
    }
    Ok(5 + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(msg: &[u8]) -> Vec<u8> {
        let mut f = vec![0];
        f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        f.extend_from_slice(msg);
        f
    }

    #[test]
    fn protobuf_roundtrip() {
        assert_eq!(encode_request(""), vec![0, 0, 0, 0, 0]);
        assert_eq!(
            encode_request("ab"),
            vec![0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b']
        );
        assert_eq!(decode_response(&frame(&[0x08, 1])), Ok(SERVING));
        assert_eq!(decode_response(&frame(&[])), Ok(0));
        // Unknown fields are skipped, whatever their wire type.
        assert_eq!(
            decode_response(&frame(&[0x12, 1, b'x', 0x08, 2, 0x1d, 1, 2, 3, 4])),
            Ok(2)
        );
        // A status number the proto does not name is kept (and named by its number).
        assert_eq!(decode_response(&frame(&[0x08, 7])), Ok(7));
        assert_eq!(status_name(2), "NOT_SERVING");
        assert_eq!(status_name(7), "7");
    }

    #[test]
    fn malformed_replies_are_errors() {
        // A field cut inside its value.
        let e = decode_response(&frame(&[0x12, 5, b'x'])).unwrap_err();
        assert!(e.starts_with("rpc error: code = Internal desc = grpc: failed to unmarshal the received message: "), "{e}");
        // A varint of 11 bytes.
        assert!(decode_response(&frame(&[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1
        ]))
        .is_err());
        assert_eq!(
            decode_response(&[]).unwrap_err(),
            "rpc error: code = Internal desc = cardinality violation: received no response message from non-streaming RPC"
        );
        assert_eq!(
            decode_response(&[0, 0, 0]).unwrap_err(),
            "rpc error: code = Internal desc = unexpected EOF"
        );
        assert_eq!(
            decode_response(&[0, 0, 0, 0, 3, 0x08]).unwrap_err(),
            "rpc error: code = Internal desc = unexpected EOF"
        );
        assert!(decode_response(&[1, 0, 0, 0, 0])
            .unwrap_err()
            .contains("compressed flag"));
        assert!(decode_response(&[0, 0, 0, 0, 0, 0])
            .unwrap_err()
            .contains("cardinality violation"));
        assert!(decode_response(&[0, 0xff, 0xff, 0xff, 0xff])
            .unwrap_err()
            .contains("larger than max"));
    }

    /// Issue 8 item 9: the 16-byte reply that wrapped the old hand-written decoder's position
    /// back to 0 (a length-delimited field 2 whose length is 2^64 - 11, the position after
    /// it being 11), so that it looped forever in release builds. It is an error now, at once.
    #[test]
    fn wrapping_length_reply_is_an_error_not_a_loop() {
        let reply = crafted_wrapping_reply();
        assert_eq!(reply.len(), 16);
        // The vector really is the wrapping one: position 11 plus the length is 0 mod 2^64.
        assert_eq!(11usize.wrapping_add((u64::MAX - 10) as usize), 0);
        let t = std::time::Instant::now();
        let e = decode_response(&reply).unwrap_err();
        assert!(e.contains("failed to unmarshal"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_millis(100));
    }

    /// `[flags, len:4] [0x12, varint(2^64 - 11)]`.
    pub(crate) fn crafted_wrapping_reply() -> Vec<u8> {
        let mut msg = vec![0x12];
        let mut v = u64::MAX - 10;
        while v >= 0x80 {
            msg.push((v as u8) | 0x80);
            v >>= 7;
        }
        msg.push(v as u8);
        frame(&msg)
    }

    proptest::proptest! {
        /// Any reply body: the decoder returns (error or status), never panics; whatever
        /// `message_end` accepts, it accepts at most one message of at most 4 MiB.
        #[test]
        fn decoder_takes_any_bytes(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_response(&body);
            if let Ok(end) = message_end(&body) {
                proptest::prop_assert!(end <= 5 + MAX_RECV_MESSAGE);
                proptest::prop_assert!(body.len() <= end);
            }
        }

        /// A well-framed message of arbitrary protobuf bytes.
        #[test]
        fn decoder_takes_any_message(msg in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_response(&frame(&msg));
        }

        /// Any status number round-trips.
        #[test]
        fn status_round_trips(status in proptest::num::i32::ANY) {
            let msg = prost::Message::encode_to_vec(&HealthCheckResponse { status });
            proptest::prop_assert_eq!(decode_response(&frame(&msg)), Ok(status));
        }
    }
}
