//! Discovery (`/api`, `/apis`, `/api/v1`, `/apis/{g}/{v}`, aggregated discovery v2/v2beta1),
//! `/version`, health endpoints and `/openapi/v3`.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{json_bytes_response, not_found};
use crate::registry::{Resource, RESOURCES};

/// The Kubernetes version skiff's API speaks. The plain `kubectl` on this machine is a
/// dispatcher that asks `/version` and runs `kubectl.1.<minor>`: minor 33 selects the newest
/// installed kubectl (1.33), whose requests env-facts §5 measured; an unknown minor would make
/// it fall back to its built-in 1.32.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";

/// `GET /version` (`version.Info`).
pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "emulationMajor": KUBE_MAJOR,
        "emulationMinor": KUBE_MINOR,
        "minCompatibilityMajor": KUBE_MAJOR,
        "minCompatibilityMinor": "32",
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0-skiff"),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
        "skiffVersion": env!("CARGO_PKG_VERSION"),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The group-versions served: `("", "v1")` first, then the named groups in table order.
fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

fn categories(r: &Resource) -> &'static [&'static str] {
    // kube's `all` category (`kubectl get all`): pods, services, replicationcontrollers,
    // deployments, replicasets, statefulsets, daemonsets, jobs, cronjobs, hpas.
    match (r.group, r.plural) {
        ("", "pods") | ("apps", "deployments" | "replicasets") | ("batch", "jobs" | "cronjobs") => {
            &["all"]
        }
        _ => &[],
    }
}

/// The kind a subresource answers with: `scale` is autoscaling/v1 `Scale`, the others the
/// resource's own kind.
fn subresource_kind(r: &Resource, sub: &str) -> (&'static str, &'static str, &'static str) {
    if sub == "scale" {
        ("autoscaling", "v1", "Scale")
    } else {
        (r.group, r.version, r.kind)
    }
}

fn subresource_verbs(sub: &str) -> &'static [&'static str] {
    match sub {
        "log" | "timeline" => &["get"],
        "exec" | "attach" | "portforward" => &["create", "get"],
        _ => &["get", "patch", "update"],
    }
}

fn served<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = &'static Resource> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// `APIResourceList` of a group-version, or None when it is not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    served(group, version).next()?;
    let mut resources = Vec::new();
    for r in served(group, version) {
        let mut e = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if !categories(r).is_empty() {
            e["categories"] = json!(categories(r));
        }
        resources.push(e);
        for sub in r.subresources {
            let mut e = json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": subresource_verbs(sub),
            });
            let (g, v, k) = subresource_kind(r, sub);
            if k != r.kind {
                e["group"] = json!(g);
                e["version"] = json!(v);
                e["kind"] = json!(k);
            }
            resources.push(e);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

/// `GET /api` (legacy): `APIVersions`.
pub fn api_versions(host: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    })
}

fn api_group(group: &str) -> Value {
    let versions: Vec<Value> = group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": versions, "preferredVersion": preferred})
}

fn named_groups() -> Vec<&'static str> {
    let mut groups: Vec<&str> = Vec::new();
    for (g, _) in group_versions() {
        if !g.is_empty() && !groups.contains(&g) {
            groups.push(g);
        }
    }
    groups
}

/// `GET /apis` (legacy): `APIGroupList`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = named_groups().into_iter().map(api_group).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`: `APIGroup`.
pub fn group(group: &str) -> Option<Value> {
    named_groups().contains(&group).then(|| {
        let mut g = api_group(group);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        g
    })
}

fn discovery_resource(r: &Resource) -> Value {
    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let mut e = json!({
        "resource": r.plural,
        "responseKind": kind,
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !categories(r).is_empty() {
        e["categories"] = json!(categories(r));
    }
    if !r.subresources.is_empty() {
        e["subresources"] = r
            .subresources
            .iter()
            .map(|s| {
                let (g, v, k) = subresource_kind(r, s);
                let kind = json!({"group": g, "version": v, "kind": k});
                json!({"subresource": s, "responseKind": kind, "verbs": subresource_verbs(s)})
            })
            .collect();
    }
    e
}

fn discovery_group(group: &str) -> Value {
    let versions: Vec<Value> = group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| {
            json!({
                "version": v,
                "resources": served(g, v).map(discovery_resource).collect::<Vec<_>>(),
                "freshness": "Current",
            })
        })
        .collect();
    let mut metadata = json!({"creationTimestamp": null});
    if !group.is_empty() {
        metadata["name"] = json!(group);
    }
    json!({"metadata": metadata, "versions": versions})
}

/// The aggregated discovery document for `/api` (`legacy`) or `/apis`, as
/// `apidiscovery.k8s.io/<version>` (v2 or v2beta1: the same shape).
pub fn aggregated(legacy: bool, version: &str) -> Value {
    let items: Vec<Value> = if legacy {
        vec![discovery_group("")]
    } else {
        named_groups().into_iter().map(discovery_group).collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// Which aggregated discovery version the Accept header asks for (the first one listed that
/// skiff serves), or None for the legacy documents. kubectl 1.33 offers v2 then v2beta1;
/// 1.27 offers v2beta1 only (both then `application/json`).
pub fn wants_aggregated(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let mt = parts.next().unwrap_or("");
        let (mut g, mut v, mut as_) = ("", "", "");
        for p in parts {
            match p.split_once('=') {
                Some(("g", x)) => g = x,
                Some(("v", x)) => v = x,
                Some(("as", x)) => as_ = x,
                _ => {}
            }
        }
        if !mt.eq_ignore_ascii_case("application/json") || as_.is_empty() {
            // The first acceptable plain range wins over later aggregated ones.
            if mt.eq_ignore_ascii_case("application/json") || mt == "*/*" {
                return None;
            }
            continue;
        }
        if g == "apidiscovery.k8s.io" && as_ == "APIGroupDiscoveryList" {
            match v {
                "v2" => return Some("v2"),
                "v2beta1" => return Some("v2beta1"),
                _ => {}
            }
        }
    }
    None
}

/// The response for an aggregated discovery document.
pub fn aggregated_response(legacy: bool, version: &'static str) -> Response {
    let body = serde_json::to_vec(&aggregated(legacy, version)).unwrap_or_default();
    let mut resp = json_bytes_response(StatusCode::OK, body, &[]);
    let ct = format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList");
    if let Ok(v) = HeaderValue::from_str(&ct) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

/// `GET /openapi/v3` and `/openapi/v3/<path>` as kube-apiserver serves them: the index is
/// never cached; a document asked with the `hash` it is published under is immutable (a
/// year); with another hash it redirects to the current one; the ETag is the hash.
pub fn openapi_v3(path: &str, query_hash: Option<&str>, headers: &HeaderMap) -> Response {
    if path.is_empty() {
        let body = serde_json::to_vec(&crate::openapi::v3_index()).unwrap_or_default();
        let mut resp = json_bytes_response(StatusCode::OK, body, &[]);
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
        return resp;
    }
    let Some(doc) = crate::openapi::v3_document(path) else {
        return not_found();
    };
    let hash = crate::openapi::v3_hash(path);
    if let (Some(want), Some(have)) = (query_hash, hash.as_deref()) {
        if want != have {
            let location = format!("/openapi/v3/{path}?hash={have}");
            let mut resp = StatusCode::MOVED_PERMANENTLY.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, private"),
            );
            return resp;
        }
    }
    let etag = hash.as_deref().map(|h| format!("\"{h}\""));
    if let (Some(etag), Some(inm)) = (
        etag.as_deref(),
        headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok()),
    ) {
        if inm.split(',').any(|t| t.trim() == etag) {
            let mut resp = StatusCode::NOT_MODIFIED.into_response();
            if let Ok(v) = HeaderValue::from_str(etag) {
                resp.headers_mut().insert(header::ETAG, v);
            }
            return resp;
        }
    }
    let mut resp = json_bytes_response(StatusCode::OK, doc.to_vec(), &[]);
    let h = resp.headers_mut();
    if let Some(etag) = etag.as_deref().and_then(|e| HeaderValue::from_str(e).ok()) {
        h.insert(header::ETAG, etag);
    }
    if query_hash.is_some() && hash.is_some() {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, immutable"),
        );
        let expires = crate::tables::now()
            .checked_add(k8s_openapi::jiff::SignedDuration::from_hours(24 * 365))
            .ok()
            .map(|t| t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string());
        if let Some(v) = expires.and_then(|e| HeaderValue::from_str(&e).ok()) {
            h.insert(header::EXPIRES, v);
        }
    } else {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
    }
    resp
}

/// `GET /openapi/v2` as kube-openapi's handler serves it: JSON or gnostic protobuf by Accept
/// (406 for anything else), one ETag for both with `Vary: Accept`, 304 on If-None-Match. With
/// `legacy`, `/swagger-2.0.0.pb-v1`: protobuf whatever the Accept (client-go falls back to it
/// when `/openapi/v2` is missing).
pub fn openapi_v2(headers: &HeaderMap, legacy: bool) -> Response {
    use crate::openapi::v2;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = if legacy {
        Some(v2::Format::Protobuf)
    } else {
        v2::negotiate(accept)
    };
    let mut resp = match format {
        None => StatusCode::NOT_ACCEPTABLE.into_response(),
        Some(f) => {
            let etag = format!("\"{}\"", v2::etag());
            let fresh = headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|inm| inm.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
            let mut resp = if fresh {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                let mut r = Response::new(axum::body::Body::from(v2::document(f)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(f.content_type()),
                );
                r
            };
            if let Ok(v) = HeaderValue::from_str(&etag) {
                resp.headers_mut().insert(header::ETAG, v);
            }
            resp
        }
    };
    let h = resp.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    resp
}
