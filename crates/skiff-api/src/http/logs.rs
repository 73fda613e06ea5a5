//! `GET …/pods/{name}/log`: PodLogOptions from the query, checked as kube-apiserver does
//! (ValidatePodLogOptions → 422, the container choice → 400), then the node's log stream as
//! chunked text/plain until it ends (or the client goes away, which drops it).

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Params};
use crate::node::LogOptions;
use crate::registry::{Api, Resource};

/// `PodLogOptions "x" is invalid: <field>: Invalid value: <v>: <detail>` (422).
fn invalid(pod: &str, field: &str, value: String, detail: &str) -> ApiError {
    let message = format!("Invalid value: {value}: {detail}");
    let mut e = ApiError::new(
        422,
        "Invalid",
        format!("PodLogOptions \"{pod}\" is invalid: {field}: {message}"),
    );
    e.details = Some(json!({
        "name": pod,
        "kind": "PodLogOptions",
        "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
    }));
    e
}

pub(super) async fn serve(
    api: &Api,
    shutdown: &tokio_util::sync::CancellationToken,
    r: &'static Resource,
    ns: &str,
    name: &str,
    p: &Params,
) -> Result<Response, ApiError> {
    let object = api.get(r, ns, name)?;
    let pod = Pod::deserialize(&*object)
        .map_err(|e| ApiError::new(500, "InternalError", format!("decoding pod: {e}")))?;
    let tail_lines = p.int("tailLines")?;
    let since_seconds = p.int("sinceSeconds")?;
    let limit_bytes = p.int("limitBytes")?;
    let since_time = match p.get("sinceTime").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<k8s_openapi::jiff::Timestamp>()
                .map_err(|_| {
                    ApiError::new(
                        400,
                        "BadRequest",
                        format!(
                            "parsing time \"{s}\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"{s}\" as \"2006\""
                        ),
                    )
                })?
                .as_nanosecond(),
        ),
    };
    // ValidatePodLogOptions.
    if let Some(n) = tail_lines.filter(|n| *n < 0) {
        return Err(invalid(
            name,
            "tailLines",
            n.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    if let Some(n) = limit_bytes.filter(|n| *n < 1) {
        return Err(invalid(
            name,
            "limitBytes",
            n.to_string(),
            "must be greater than 0",
        ));
    }
    if since_seconds.is_some() && since_time.is_some() {
        let message = "at most one of `sinceTime` or `sinceSeconds` may be specified";
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("PodLogOptions \"{name}\" is invalid: : Forbidden: {message}"),
        );
        e.details = Some(json!({"name": name, "kind": "PodLogOptions",
            "causes": [{"reason": "FieldValueForbidden", "message": format!("Forbidden: {message}"), "field": ""}]}));
        return Err(e);
    }
    if let Some(n) = since_seconds.filter(|n| *n < 1) {
        return Err(invalid(
            name,
            "sinceSeconds",
            n.to_string(),
            "must be greater than 0",
        ));
    }
    let container = crate::http::stream::choose_container(&pod, name, p.get("container"))?;
    let options = LogOptions {
        container,
        follow: p.bool("follow"),
        previous: p.bool("previous"),
        timestamps: p.bool("timestamps"),
        tail_lines,
        since_seconds,
        since_time_unix_nanos: since_time,
        limit_bytes,
    };
    // A pod not bound to a node has no logs yet: kube answers an empty body.
    let unbound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
        .is_empty();
    let body = if unbound {
        Body::empty()
    } else {
        let stream = api.node().logs(&pod, &options).map_err(|e| {
            let reason = match e.code {
                400 => "BadRequest",
                404 => "NotFound",
                403 => "Forbidden",
                _ => "InternalError",
            };
            ApiError::new(e.code, reason, e.message)
        })?;
        // A followed log ends with the server.
        Body::from_stream(stream.take_until(shutdown.clone().cancelled_owned()))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}
