//! gRPC health checking (`grpc.health.v1.Health/Check`) over HTTP/2 with
//! hyper; the two protobuf messages are encoded by hand.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::http::{describe_io, USER_AGENT};

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
    let msg = frame.get(5..5 + len).ok_or("truncated gRPC frame")?;
    let mut pos = 0;
    let mut status = 0;
    while pos < msg.len() {
        let key = get_varint(msg, &mut pos).ok_or("bad protobuf")?;
        match (key >> 3, key & 7) {
            (1, 0) => status = get_varint(msg, &mut pos).ok_or("bad protobuf")?,
            (_, 0) => {
                get_varint(msg, &mut pos).ok_or("bad protobuf")?;
            }
            (_, 1) => pos += 8,
            (_, 5) => pos += 4,
            (_, 2) => {
                let l = get_varint(msg, &mut pos).ok_or("bad protobuf")? as usize;
                pos += l;
            }
            _ => return Err("bad protobuf wire type".into()),
        }
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
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::trace!(error = %e, "grpc probe connection");
        }
    });
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
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
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
    let collected = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let trailers = collected.trailers().cloned();
    let body = collected.to_bytes();
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
