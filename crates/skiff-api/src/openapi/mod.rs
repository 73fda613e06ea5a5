//! The OpenAPI documents kubectl reads: `/openapi/v3` (the index of group-version documents)
//! and `/openapi/v3/api/v1` (the core group's schemas: client-side validation, `kubectl
//! explain`, and the `fieldValidation` parameter kubectl looks for before it sends
//! `fieldValidation=Strict`).
//!
//! SKELETON (session 6 lead): the signatures are the contract with `http`; the bodies are the
//! minimal documents env-facts §5.3 found enough, which the schema work replaces with the
//! upstream documents.

use serde_json::{json, Value};

/// `GET /openapi/v3`: `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=…"}}}`.
pub fn v3_index() -> Value {
    json!({"paths": {"api/v1": {"serverRelativeURL": format!("/openapi/v3/api/v1?hash={}", v3_hash("api/v1").unwrap_or_default())}}})
}

/// The hash of a group-version document (its ETag; kubectl caches by it).
pub fn v3_hash(path: &str) -> Option<String> {
    (path == "api/v1").then(|| "SKELETON0".to_string())
}

/// `GET /openapi/v3/<path>` (`api/v1`, `apis/batch/v1`, …): the JSON document, or None (404).
pub fn v3_document(path: &str) -> Option<bytes::Bytes> {
    if path != "api/v1" {
        return None;
    }
    let doc = json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": {
            "/api/v1/namespaces/{namespace}/pods/{name}": {
                "patch": {
                    "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}]
                }
            }
        }
    });
    serde_json::to_vec(&doc).ok().map(bytes::Bytes::from)
}
