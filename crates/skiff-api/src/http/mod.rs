//! The REST layer of `skiff serve`: kube-apiserver's URL scheme, verbs, query parameters,
//! content negotiation (server-side Tables), watch streams, logs, Status errors and request
//! limits, over [`crate::registry::Api`]. Transport (unix socket, TLS, tokens) is not here:
//! [`router`] is a plain axum `Router` the transport serves.
//!
//! Measured inputs: env-facts §5 (what each kubectl command sends), images-serve-facts §5.3,
//! §6.1. Upstream: `staging/src/k8s.io/apiserver/pkg/endpoints/handlers/*`.

mod discovery;
mod logs;
pub mod stream;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub use discovery::{KUBE_MAJOR, KUBE_MINOR};

use crate::metrics::Metrics;
use crate::registry::{
    resource, Api, ApiError, BodyFormat, DeleteOptions, Deleted, FieldValidation, ListOptions,
    PatchType, Resource, WatchOptions, WriteOptions,
};
use crate::tables;

/// kube-apiserver's `--max-request-body-bytes` default (3 MiB, `MaxRequestBodyBytes`): a
/// request body is read up to this and refused beyond it (413), never buffered further.
pub const MAX_REQUEST_BODY_BYTES: usize = 3 * 1024 * 1024;

/// kube-apiserver's `--min-request-timeout` (1800 s): a watch without `timeoutSeconds` ends
/// after a random time between this and twice this, so that clients re-watch and spread out.
pub const MIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1800);

/// The longest `timeoutSeconds` honoured (a year; kube has no cap, but nothing needs more).
pub const MAX_WATCH_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Bookmarks (`allowWatchBookmarks=true`) are sent this often on an idle watch, and once
/// more just before a timeout closes the stream (kube-apiserver's cacher: about a minute).
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

struct Shared {
    api: Api,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
}

type St = Arc<Shared>;

/// The API server's HTTP routes over `api`.
pub fn router(api: Api) -> Router {
    router_with_shutdown(api, CancellationToken::new())
}

/// [`router`], whose long-lived responses (watch streams, followed logs) end when `shutdown`
/// is cancelled, so that a graceful server shutdown does not wait for them (a watch lasts up
/// to an hour).
pub fn router_with_shutdown(api: Api, shutdown: CancellationToken) -> Router {
    router_with_metrics(api, shutdown, Metrics::new())
}

/// [`router_with_shutdown`] recording into `metrics` (served at `/metrics`; the daemon adds its
/// node-side metrics to it); `/readyz` fails once `shutdown` is cancelled.
pub fn router_with_metrics(api: Api, shutdown: CancellationToken, metrics: Arc<Metrics>) -> Router {
    metrics.attach_store(api.store());
    Router::new().fallback(timed).with_state(Arc::new(Shared {
        api,
        shutdown,
        metrics,
    }))
}

// ---- responses ----

const NOT_FOUND_TEXT: &str = "the server could not find the requested resource";

/// A `Status` failure response.
pub(crate) fn status_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&e.to_status()).unwrap_or_default();
    json_bytes_response(code, body, &[])
}

/// kube's 404 for a path it does not serve (`details: {}`).
pub(crate) fn not_found() -> Response {
    let mut e = ApiError::new(404, "NotFound", NOT_FOUND_TEXT);
    e.details = Some(json!({}));
    status_response(&e)
}

fn method_not_allowed() -> Response {
    let mut e = ApiError::new(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    );
    e.details = Some(json!({}));
    status_response(&e)
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "BadRequest", message)
}

/// An `Invalid` (422) error about request options (`CreateOptions.meta.k8s.io "" is invalid: …`),
/// as ValidateCreateOptions & co. report bad query parameters.
fn invalid_options(kind: &str, field: &str, reason: &str, detail: String) -> ApiError {
    let mut e = ApiError::new(
        422,
        "Invalid",
        format!("{kind}.meta.k8s.io \"\" is invalid: {field}: {detail}"),
    );
    e.details = Some(json!({
        "group": "meta.k8s.io",
        "kind": kind,
        "causes": [{"reason": reason, "message": detail, "field": field}],
    }));
    e
}

/// A JSON response with kube's `Cache-Control` and one `Warning: 299 - "…"` header per
/// warning.
pub(crate) fn json_bytes_response(
    code: StatusCode,
    body: Vec<u8>,
    warnings: &[String],
) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = code;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    add_warnings(h, warnings);
    resp
}

/// At most this many warnings, each cut to this many bytes (kube-apiserver limits warnings per
/// request the same way: 4 KiB per message, 12 KiB in all).
const MAX_WARNINGS: usize = 12;
const MAX_WARNING_LEN: usize = 1024;

fn add_warnings(h: &mut HeaderMap, warnings: &[String]) {
    for w in warnings.iter().take(MAX_WARNINGS) {
        let mut text: String = w.chars().filter(|c| !c.is_control()).collect();
        if text.len() > MAX_WARNING_LEN {
            let mut cut = MAX_WARNING_LEN;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        // Go's strconv.Quote of printable text is JSON string syntax.
        let quoted = serde_json::to_string(&text).unwrap_or_default();
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {quoted}")) {
            h.append(header::WARNING, v);
        }
    }
}

fn json_response(code: StatusCode, v: &impl Serialize, warnings: &[String]) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => json_bytes_response(code, body, warnings),
        Err(e) => status_response(&ApiError::new(500, "InternalError", e.to_string())),
    }
}

// ---- query parameters ----

/// The query string as (key, value) pairs, percent-decoded.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    fn parse(req: &Request) -> Result<Params, ApiError> {
        Query::<Vec<(String, String)>>::try_from_uri(req.uri())
            .map(|q| Params(q.0))
            .map_err(|e| bad_request(e.body_text()))
    }

    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// apimachinery's `Convert_Slice_string_To_bool`: absent → false; "0", "f", "false",
    /// "n", "no" (any case) → false; anything else, even empty, → true.
    pub(crate) fn bool(&self, k: &str) -> bool {
        match self.get(k) {
            None => false,
            Some(v) => {
                !(v == "0"
                    || ["f", "false", "n", "no"]
                        .iter()
                        .any(|f| v.eq_ignore_ascii_case(f)))
            }
        }
    }

    /// An int64 parameter; a bad one is kube's 400 with Go's strconv text.
    pub(crate) fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                bad_request(format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))
            }),
        }
    }

    fn string(&self, k: &str) -> Option<String> {
        self.get(k).filter(|v| !v.is_empty()).map(str::to_string)
    }
}

fn dry_run(values: &[&str], kind: &str) -> Result<bool, ApiError> {
    let values: Vec<&str> = values.iter().copied().filter(|v| !v.is_empty()).collect();
    if values.is_empty() {
        return Ok(false);
    }
    if values.iter().all(|v| *v == "All") {
        return Ok(true);
    }
    Err(invalid_options(
        kind,
        "dryRun",
        "FieldValueNotSupported",
        format!(
            "Unsupported value: []string{{{}}}: supported values: \"All\"",
            values
                .iter()
                .map(|v| format!("{v:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

fn write_options(p: &Params, kind: &str) -> Result<WriteOptions, ApiError> {
    let field_validation = match p.get("fieldValidation").unwrap_or("") {
        "" | "Warn" => FieldValidation::Warn,
        "Ignore" => FieldValidation::Ignore,
        "Strict" => FieldValidation::Strict,
        other => {
            return Err(invalid_options(
                kind,
                "fieldValidation",
                "FieldValueNotSupported",
                format!(
                    "Unsupported value: {other:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
                ),
            ))
        }
    };
    let field_manager = p.string("fieldManager");
    // ValidateFieldManager.
    if let Some(m) = &field_manager {
        if m.len() > 128 {
            return Err(invalid_options(
                kind,
                "fieldManager",
                "FieldValueTooLong",
                "Too long: may not be more than 128 bytes".into(),
            ));
        }
        if m.chars().any(|c| c.is_control()) {
            return Err(invalid_options(
                kind,
                "fieldManager",
                "FieldValueInvalid",
                format!("Invalid value: {m:?}: must only contain printable characters"),
            ));
        }
    }
    Ok(WriteOptions {
        dry_run: dry_run(&p.all("dryRun"), kind)?,
        field_manager,
        field_validation,
        force: p.bool("force"),
    })
}

/// apimachinery's ValidateListOptions (list and watch): the combinations of
/// `resourceVersionMatch`, `resourceVersion`, `continue` and `sendInitialEvents` kube refuses,
/// as one 422 `ListOptions.meta.k8s.io "" is invalid: …`.
fn validate_list_options(p: &Params, watch: bool) -> Result<(), ApiError> {
    let rv = p.get("resourceVersion").unwrap_or("");
    let m = p.get("resourceVersionMatch").unwrap_or("");
    let cont = !p.get("continue").unwrap_or("").is_empty();
    let initial = p.get("sendInitialEvents").is_some();
    let mut errs: Vec<(&str, &str, String)> = Vec::new();
    let forbidden = |errs: &mut Vec<(&str, &str, String)>, field: &'static str, d: String| {
        errs.push((field, "FieldValueForbidden", format!("Forbidden: {d}")))
    };
    if watch {
        if initial && m != "NotOlderThan" {
            forbidden(
                &mut errs,
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan".into(),
            );
        }
        if !m.is_empty() {
            if !initial {
                forbidden(
                    &mut errs,
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided".into(),
                );
            }
            if m != "NotOlderThan" {
                errs.push((
                    "resourceVersionMatch",
                    "FieldValueNotSupported",
                    format!("Unsupported value: {m:?}: supported values: \"NotOlderThan\""),
                ));
            }
            if cont {
                forbidden(
                    &mut errs,
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided".into(),
                );
            }
        }
    } else {
        if !m.is_empty() {
            if rv.is_empty() {
                forbidden(
                    &mut errs,
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided".into(),
                );
            }
            if cont {
                forbidden(
                    &mut errs,
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided".into(),
                );
            }
            if m != "Exact" && m != "NotOlderThan" {
                errs.push((
                    "resourceVersionMatch",
                    "FieldValueNotSupported",
                    format!(
                        "Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
                    ),
                ));
            }
            if m == "Exact" && rv == "0" {
                forbidden(
                    &mut errs,
                    "resourceVersionMatch",
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"".into(),
                );
            }
        }
        if initial {
            forbidden(
                &mut errs,
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list".into(),
            );
        }
    }
    if errs.is_empty() {
        return Ok(());
    }
    let texts: Vec<String> = errs.iter().map(|(f, _, d)| format!("{f}: {d}")).collect();
    let joined = if texts.len() == 1 {
        texts[0].clone()
    } else {
        format!("[{}]", texts.join(", "))
    };
    let mut e = ApiError::new(
        422,
        "Invalid",
        format!("ListOptions.meta.k8s.io \"\" is invalid: {joined}"),
    );
    e.details = Some(json!({
        "group": "meta.k8s.io",
        "kind": "ListOptions",
        "causes": errs.iter().map(|(f, r, d)| json!({"reason": r, "message": d, "field": f})).collect::<Vec<_>>(),
    }));
    Err(e)
}

fn list_options(p: &Params) -> Result<ListOptions, ApiError> {
    validate_list_options(p, false)?;
    Ok(ListOptions {
        label_selector: p.string("labelSelector"),
        field_selector: p.string("fieldSelector"),
        resource_version: p.string("resourceVersion"),
        resource_version_match: p.string("resourceVersionMatch"),
        limit: p.int("limit")?,
        continue_token: p.string("continue"),
    })
}

/// Content-Type of a create/update body.
fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    match media_type(headers).as_str() {
        "" | "application/json" => Ok(BodyFormat::Json),
        "application/yaml" => Ok(BodyFormat::Yaml),
        _ => Err(unsupported_media_type(&[
            "application/json",
            "application/yaml",
        ])),
    }
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// negotiation.NewUnsupportedMediaTypeError.
fn unsupported_media_type(accepted: &[&str]) -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            accepted.join(", ")
        ),
    )
}

const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

fn patch_type(headers: &HeaderMap) -> Result<PatchType, ApiError> {
    match media_type(headers).as_str() {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchType::StrategicMerge),
        "application/apply-patch+yaml" => Ok(PatchType::Apply),
        _ => Err(unsupported_media_type(PATCH_TYPES)),
    }
}

/// Reads a request body of at most [`MAX_REQUEST_BODY_BYTES`] (kube's `limitedReadBody`):
/// a declared or actual larger one is 413 and is not read further.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {MAX_REQUEST_BODY_BYTES}"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match http_body_util::Limited::new(body, MAX_REQUEST_BODY_BYTES)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(bad_request(format!("reading the request body: {e}"))),
    }
}

// ---- content negotiation ----

/// What a GET answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// The objects as stored (JSON; also the answer to a protobuf-only Accept).
    Json,
    /// `meta.k8s.io/<version>` Table.
    Table(&'static str),
    /// `meta.k8s.io/<version>` PartialObjectMetadata(List).
    Partial(&'static str),
}

/// The first media range of Accept skiff can serve; JSON when none (protobuf, YAML, `*/*`).
pub(crate) fn negotiate(headers: &HeaderMap) -> Output {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Output::Json;
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let mt = parts.next().unwrap_or("").to_ascii_lowercase();
        if mt != "application/json" && mt != "*/*" && mt != "application/*" {
            continue;
        }
        let (mut g, mut v, mut as_) = ("", "", "");
        for p in parts {
            match p.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("g", x)) => g = x,
                Some(("v", x)) => v = x,
                Some(("as", x)) => as_ = x,
                _ => {}
            }
        }
        if as_.is_empty() {
            return Output::Json;
        }
        let version = match (g, v) {
            ("meta.k8s.io", "v1") => "v1",
            ("meta.k8s.io", "v1beta1") => "v1beta1",
            _ => continue,
        };
        match as_ {
            "Table" => return Output::Table(version),
            "PartialObjectMetadata" | "PartialObjectMetadataList" => {
                return Output::Partial(version)
            }
            _ => continue,
        }
    }
    Output::Json
}

/// `includeObject` of a Table request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Include {
    None,
    Metadata,
    Object,
}

fn include_object(p: &Params, out: Output) -> Result<Include, ApiError> {
    // TableOptions are only decoded (and validated) when a Table is answered.
    if !matches!(out, Output::Table(_)) {
        return Ok(Include::Metadata);
    }
    match p.get("includeObject").unwrap_or("") {
        "" | "Metadata" => Ok(Include::Metadata),
        "None" => Ok(Include::None),
        "Object" => Ok(Include::Object),
        other => Err(bad_request(format!(
            "Unable to convert to Table as requested: includeObject: Invalid value: {other:?}: must be 'Metadata', 'Object', 'None', or empty"
        ))),
    }
}

#[derive(Serialize)]
struct TableOut<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    #[serde(rename = "columnDefinitions")]
    column_definitions: &'static [tables::Column],
    rows: Vec<RowOut<'a>>,
}

#[derive(Serialize)]
struct RowOut<'a> {
    cells: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conditions: Option<Value>,
    object: RowObject<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum RowObject<'a> {
    Partial(PartialOut<'a>),
    Full(&'a Value),
    None(Option<()>),
}

#[derive(Serialize)]
struct PartialOut<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: &'a Value,
}

static EMPTY_META: Value = Value::Null;

fn metadata_of(o: &Value) -> &Value {
    o.get("metadata").unwrap_or(&EMPTY_META)
}

/// The Table of `objects` (kind `r.kind`), as kube's TableConvertor makes it.
pub(crate) fn table<'a>(
    r: &Resource,
    objects: impl Iterator<Item = &'a Value>,
    metadata: Value,
    version: &'static str,
    include: Include,
) -> impl Serialize + 'a {
    let now = tables::now();
    let rows = objects
        .map(|o| {
            let rc = tables::row(r.kind, o, now);
            let object = match include {
                Include::Metadata => RowObject::Partial(PartialOut {
                    kind: "PartialObjectMetadata",
                    api_version: format!("meta.k8s.io/{version}"),
                    metadata: metadata_of(o),
                }),
                Include::Object => RowObject::Full(o),
                Include::None => RowObject::None(None),
            };
            RowOut {
                cells: rc.cells,
                conditions: rc.conditions,
                object,
            }
        })
        .collect();
    TableOut {
        kind: "Table",
        api_version: format!("meta.k8s.io/{version}"),
        metadata,
        column_definitions: tables::columns(r.kind),
        rows,
    }
}

#[derive(Serialize)]
struct ListOut<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<ItemOut<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ItemOut<'a> {
    Full(&'a Value),
    Partial(PartialOut<'a>),
}

fn list_metadata(rv: u64, cont: Option<&str>) -> Value {
    let mut m = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        m["continue"] = json!(c);
    }
    m
}

// ---- routing ----

/// Where a request goes after `/api/v1` or `/apis/{g}/{v}`.
struct Target {
    r: &'static Resource,
    /// The namespace of the path (`namespaces/{ns}/…`), None for cluster paths.
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

/// Parses the segments after the group-version; None: not served (404).
fn target(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let served = |plural: &str| resource(group, plural).filter(|r| r.version == version);
    let sub_ok = |r: &Resource, s: &str| r.subresources.contains(&s);
    match rest {
        [plural] => Some(Target {
            r: served(plural)?,
            namespace: None,
            name: None,
            sub: None,
        }),
        ["namespaces", ns, plural, tail @ ..] if served(plural).is_some_and(|r| r.namespaced) => {
            let r = served(plural)?;
            match tail {
                [] => Some(Target {
                    r,
                    namespace: Some(ns.to_string()),
                    name: None,
                    sub: None,
                }),
                [name] => Some(Target {
                    r,
                    namespace: Some(ns.to_string()),
                    name: Some(name.to_string()),
                    sub: None,
                }),
                [name, sub] if sub_ok(r, sub) => Some(Target {
                    r,
                    namespace: Some(ns.to_string()),
                    name: Some(name.to_string()),
                    sub: Some(sub.to_string()),
                }),
                _ => None,
            }
        }
        [plural, name] => {
            let r = served(plural).filter(|r| !r.namespaced)?;
            Some(Target {
                r,
                namespace: None,
                name: Some(name.to_string()),
                sub: None,
            })
        }
        [plural, name, sub] => {
            let r = served(plural).filter(|r| !r.namespaced && sub_ok(r, sub))?;
            Some(Target {
                r,
                namespace: None,
                name: Some(name.to_string()),
                sub: Some(sub.to_string()),
            })
        }
        _ => None,
    }
}

fn host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string()
}

/// [`dispatch`], counted and timed for `/metrics` (crate::metrics::requests).
async fn timed(State(st): State<St>, req: Request) -> Response {
    let timing = st.metrics.requests.begin(&req);
    let resp = dispatch(st.clone(), req).await;
    st.metrics.requests.end(timing, resp)
}

async fn dispatch(st: St, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    match segs.as_slice() {
        ["version"] if get => json_response(StatusCode::OK, &discovery::version(), &[]),
        [name @ ("healthz" | "livez" | "readyz"), sub @ ..] if get => {
            let params = Params::parse(&req).map(|p| p.0).unwrap_or_default();
            let state = crate::metrics::health::State {
                store_open: st.api.store().is_open(),
                shutting_down: st.shutdown.is_cancelled(),
            };
            crate::metrics::health::serve(name, sub, &params, &state).unwrap_or_else(not_found)
        }
        ["metrics"] if get => (
            [
                (header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE),
                (header::CACHE_CONTROL, "no-cache, private"),
            ],
            st.metrics.encode(st.api.store()),
        )
            .into_response(),
        ["openapi", "v3", rest @ ..] if get => {
            let hash = Params::parse(&req)
                .ok()
                .and_then(|p| p.get("hash").map(str::to_string));
            discovery::openapi_v3(&rest.join("/"), hash.as_deref(), req.headers())
        }
        ["openapi", "v2"] if get => discovery::openapi_v2(req.headers(), false),
        ["swagger-2.0.0.pb-v1"] if get => discovery::openapi_v2(req.headers(), true),
        ["api"] if get => match discovery::wants_aggregated(req.headers()) {
            Some(v) => discovery::aggregated_response(true, v),
            None => json_response(
                StatusCode::OK,
                &discovery::api_versions(&host(req.headers())),
                &[],
            ),
        },
        ["apis"] if get => match discovery::wants_aggregated(req.headers()) {
            Some(v) => discovery::aggregated_response(false, v),
            None => json_response(StatusCode::OK, &discovery::api_group_list(), &[]),
        },
        ["api", "v1"] if get => match discovery::resource_list("", "v1") {
            Some(l) => json_response(StatusCode::OK, &l, &[]),
            None => not_found(),
        },
        ["apis", g] if get => match discovery::group(g) {
            Some(l) => json_response(StatusCode::OK, &l, &[]),
            None => not_found(),
        },
        ["apis", g, v] if get => match discovery::resource_list(g, v) {
            Some(l) => json_response(StatusCode::OK, &l, &[]),
            None => not_found(),
        },
        ["api", "v1", rest @ ..] => {
            let t = target("", "v1", rest);
            resource_request(st, t, req).await
        }
        ["apis", g, v, rest @ ..] => {
            let t = target(g, v, rest);
            resource_request(st, t, req).await
        }
        ["version" | "healthz" | "livez" | "readyz" | "metrics" | "api" | "apis", ..]
        | ["openapi", "v3", ..]
        | ["openapi", "v2"]
        | ["swagger-2.0.0.pb-v1"] => method_not_allowed(),
        _ => not_found(),
    }
}

fn verb_allowed(r: &Resource, verb: &str) -> bool {
    r.verbs.contains(&verb)
}

async fn resource_request(st: St, t: Option<Target>, req: Request) -> Response {
    let Some(t) = t else {
        return not_found();
    };
    match handle(&st.api, &st.shutdown, t, req).await {
        Ok(resp) => resp,
        Err(e) => status_response(&e),
    }
}

async fn handle(
    api: &Api,
    shutdown: &CancellationToken,
    t: Target,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let p = Params::parse(&Request::from_parts(parts.clone(), Body::empty()))?;
    let headers = &parts.headers;
    let r = t.r;
    // A namespaced resource's objects are only under namespaces/{ns}/ (the cluster path is
    // the all-namespaces collection).
    let ns_for_object = t.namespace.clone().unwrap_or_default();
    match (&parts.method, t.name.as_deref(), t.sub.as_deref()) {
        // ---- collections ----
        (&Method::GET, None, _) => {
            let ns = t.namespace.as_deref();
            if p.bool("watch") {
                if !verb_allowed(r, "watch") {
                    return Ok(method_not_allowed());
                }
                return watch::serve(api, shutdown, r, ns, None, &p, negotiate(headers)).await;
            }
            if !verb_allowed(r, "list") {
                return Ok(method_not_allowed());
            }
            let out = negotiate(headers);
            let include = include_object(&p, out)?;
            let lr = api.list(r, ns, &list_options(&p)?)?;
            let meta = list_metadata(lr.resource_version, lr.continue_token.as_deref());
            Ok(match out {
                Output::Table(v) => json_response(
                    StatusCode::OK,
                    &table(r, lr.items.iter().map(|a| &**a), meta, v, include),
                    &[],
                ),
                Output::Json => json_response(
                    StatusCode::OK,
                    &ListOut {
                        kind: format!("{}List", r.kind),
                        api_version: r.api_version(),
                        metadata: meta,
                        items: lr.items.iter().map(|a| ItemOut::Full(a)).collect(),
                    },
                    &[],
                ),
                Output::Partial(v) => json_response(
                    StatusCode::OK,
                    &ListOut {
                        kind: "PartialObjectMetadataList".into(),
                        api_version: format!("meta.k8s.io/{v}"),
                        metadata: meta,
                        items: lr
                            .items
                            .iter()
                            .map(|a| {
                                ItemOut::Partial(PartialOut {
                                    kind: "PartialObjectMetadata",
                                    api_version: format!("meta.k8s.io/{v}"),
                                    metadata: metadata_of(a),
                                })
                            })
                            .collect(),
                    },
                    &[],
                ),
            })
        }
        (&Method::POST, None, _) => {
            if !verb_allowed(r, "create") || (r.namespaced && t.namespace.is_none()) {
                return Ok(method_not_allowed());
            }
            let o = write_options(&p, "CreateOptions")?;
            let format = body_format(headers)?;
            let body = read_body(headers, body).await?;
            let w = api.create(r, &ns_for_object, &body, format, &o).await?;
            let code = if w.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &*w.object, &w.warnings))
        }
        (&Method::DELETE, None, _) => {
            if !verb_allowed(r, "deletecollection") {
                return Ok(method_not_allowed());
            }
            let body = read_body(headers, body).await?;
            let o = delete_options(&p, &body)?;
            let lr = api.list(r, t.namespace.as_deref(), &list_options(&p)?)?;
            let mut deleted = Vec::new();
            let mut warnings: Vec<String> = Vec::new();
            for item in &lr.items {
                let ns = item
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let name = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                match api.delete_with_warnings(r, ns, name, &o).await {
                    Ok((Deleted::Gone(v) | Deleted::Pending(v), w)) => {
                        deleted.push(v);
                        for w in w {
                            if !warnings.contains(&w) {
                                warnings.push(w);
                            }
                        }
                    }
                    // Gone meanwhile: nothing to delete.
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(json_response(
                StatusCode::OK,
                &ListOut {
                    kind: format!("{}List", r.kind),
                    api_version: r.api_version(),
                    metadata: list_metadata(lr.resource_version, None),
                    items: deleted.iter().map(|a| ItemOut::Full(a)).collect(),
                },
                &warnings,
            ))
        }
        (_, None, _) => Ok(method_not_allowed()),

        // ---- logs ----
        (&Method::GET, Some(name), Some("log")) => {
            logs::serve(api, shutdown, r, &ns_for_object, name, &p).await
        }
        (_, Some(_), Some("log")) => Ok(method_not_allowed()),

        // ---- the pod's lifecycle timeline (skiff's own subresource) ----
        (&Method::GET, Some(name), Some("timeline")) => {
            let object = api.get(r, &ns_for_object, name)?;
            let pod = k8s_openapi::api::core::v1::Pod::deserialize(&*object)
                .map_err(|e| ApiError::new(500, "InternalError", format!("decoding pod: {e}")))?;
            match api.node().timeline(&pod) {
                Some(tl) => Ok(json_response(StatusCode::OK, &tl, &[])),
                None => Err(ApiError::new(
                    404,
                    "NotFound",
                    format!("pod \"{name}\" has no timeline on this node (it has not run here)"),
                )),
            }
        }
        (_, Some(_), Some("timeline")) => Ok(method_not_allowed()),

        // ---- exec, attach, port-forward (crate::http::stream) ----
        (
            &Method::GET | &Method::POST,
            Some(name),
            Some(sub @ ("exec" | "attach" | "portforward")),
        ) => {
            crate::http::stream::serve(
                (api, r),
                shutdown,
                sub,
                &ns_for_object,
                name,
                &p,
                parts.clone(),
            )
            .await
        }
        (_, Some(_), Some("exec" | "attach" | "portforward")) => Ok(method_not_allowed()),

        // ---- objects ----
        (&Method::GET, Some(name), Some("scale")) => {
            if !verb_allowed(r, "get") {
                return Ok(method_not_allowed());
            }
            let out = negotiate(headers);
            let include = include_object(&p, out)?;
            let scale = api.get_scale(r, &ns_for_object, name)?;
            let scale_r = &crate::registry::kinds::SCALE;
            Ok(single(scale_r, &scale, out, include, StatusCode::OK, &[]))
        }
        (&Method::GET, Some(name), sub) => {
            if p.bool("watch") && sub.is_none() {
                if !verb_allowed(r, "watch") {
                    return Ok(method_not_allowed());
                }
                return watch::serve(
                    api,
                    shutdown,
                    r,
                    t.namespace.as_deref(),
                    Some(name),
                    &p,
                    negotiate(headers),
                )
                .await;
            }
            if !verb_allowed(r, "get") {
                return Ok(method_not_allowed());
            }
            let out = negotiate(headers);
            let include = include_object(&p, out)?;
            let obj = api.get(r, &ns_for_object, name)?;
            Ok(single(r, &obj, out, include, StatusCode::OK, &[]))
        }
        (&Method::PUT, Some(name), sub) => {
            if !verb_allowed(r, "update") {
                return Ok(method_not_allowed());
            }
            let o = write_options(&p, "UpdateOptions")?;
            let format = body_format(headers)?;
            let body = read_body(headers, body).await?;
            let w = api
                .update(r, &ns_for_object, name, sub, &body, format, &o)
                .await?;
            let code = if w.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &*w.object, &w.warnings))
        }
        (&Method::PATCH, Some(name), sub) => {
            if !verb_allowed(r, "patch") {
                return Ok(method_not_allowed());
            }
            let pt = patch_type(headers)?;
            let o = write_options(&p, "PatchOptions")?;
            if pt == PatchType::Apply && o.field_manager.is_none() {
                return Err(invalid_options(
                    "PatchOptions",
                    "fieldManager",
                    "FieldValueRequired",
                    "Required value: is required for apply patch".into(),
                ));
            }
            if pt != PatchType::Apply && p.get("force").is_some() {
                return Err(invalid_options(
                    "PatchOptions",
                    "force",
                    "FieldValueForbidden",
                    "Forbidden: may not be specified for non-apply patch".into(),
                ));
            }
            let body = read_body(headers, body).await?;
            let w = api
                .patch(r, &ns_for_object, name, sub, pt, &body, &o)
                .await?;
            let code = if w.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &*w.object, &w.warnings))
        }
        (&Method::DELETE, Some(name), None) => {
            if !verb_allowed(r, "delete") {
                return Ok(method_not_allowed());
            }
            let body = read_body(headers, body).await?;
            let o = delete_options(&p, &body)?;
            let (deleted, warnings) = api
                .delete_with_warnings(r, &ns_for_object, name, &o)
                .await?;
            match deleted {
                Deleted::Pending(obj) => Ok(json_response(StatusCode::OK, &*obj, &warnings)),
                Deleted::Gone(obj) if returns_deleted_object(r) => {
                    Ok(json_response(StatusCode::OK, &*obj, &warnings))
                }
                Deleted::Gone(obj) => {
                    // The generic store's finalizeDelete: a Success Status naming what went.
                    let mut details = json!({"name": name, "kind": r.plural});
                    if !r.group.is_empty() {
                        details["group"] = json!(r.group);
                    }
                    if let Some(uid) = obj.pointer("/metadata/uid") {
                        details["uid"] = uid.clone();
                    }
                    Ok(json_response(
                        StatusCode::OK,
                        &json!({
                            "kind": "Status",
                            "apiVersion": "v1",
                            "metadata": {},
                            "status": "Success",
                            "details": details,
                        }),
                        &warnings,
                    ))
                }
            }
        }
        _ => Ok(method_not_allowed()),
    }
}

/// The kinds whose registry sets `ReturnDeletedObject` (pods): DELETE answers the object,
/// not a Status.
fn returns_deleted_object(r: &Resource) -> bool {
    r.group.is_empty() && r.plural == "pods"
}

/// One object as JSON, Table (one row) or PartialObjectMetadata.
fn single(
    r: &Resource,
    obj: &Value,
    out: Output,
    include: Include,
    code: StatusCode,
    warnings: &[String],
) -> Response {
    match out {
        Output::Json => json_response(code, obj, warnings),
        Output::Table(v) => {
            let meta = match obj.pointer("/metadata/resourceVersion") {
                Some(rv) => json!({"resourceVersion": rv}),
                None => json!({}),
            };
            json_response(
                code,
                &table(r, std::iter::once(obj), meta, v, include),
                warnings,
            )
        }
        Output::Partial(v) => json_response(
            code,
            &PartialOut {
                kind: "PartialObjectMetadata",
                api_version: format!("meta.k8s.io/{v}"),
                metadata: metadata_of(obj),
            },
            warnings,
        ),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DeleteBody {
    grace_period_seconds: Option<i64>,
    propagation_policy: Option<String>,
    orphan_dependents: Option<bool>,
    preconditions: Option<Preconditions>,
    #[serde(default)]
    dry_run: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Preconditions {
    uid: Option<String>,
    resource_version: Option<String>,
}

/// DeleteOptions from the body when there is one, else from the query (kube reads one or
/// the other, never both).
fn delete_options(p: &Params, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let b: DeleteBody = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteBody {
            grace_period_seconds: p.int("gracePeriodSeconds")?,
            propagation_policy: p.string("propagationPolicy"),
            orphan_dependents: p
                .get("orphanDependents")
                .map(|_| p.bool("orphanDependents")),
            preconditions: None,
            dry_run: p.all("dryRun").into_iter().map(str::to_string).collect(),
        }
    } else {
        // serde_json bounds nesting (128 levels), so a hostile body cannot exhaust the stack.
        serde_json::from_slice(body)
            .map_err(|e| bad_request(format!("couldn't get version/kind; json parse error: {e}")))?
    };
    let dry: Vec<&str> = b.dry_run.iter().map(String::as_str).collect();
    let dry_run = dry_run(&dry, "DeleteOptions")?;
    let mut propagation = b.propagation_policy;
    match (propagation.as_deref(), b.orphan_dependents) {
        (Some(_), Some(_)) => {
            return Err(invalid_options(
                "DeleteOptions",
                "propagationPolicy",
                "FieldValueInvalid",
                format!(
                    "Invalid value: {:?}: orphanDependents and deletionPropagation cannot be both set",
                    propagation.as_deref().unwrap_or("")
                ),
            ))
        }
        (None, Some(true)) => propagation = Some("Orphan".into()),
        (None, Some(false)) => propagation = Some("Background".into()),
        (Some("Orphan" | "Background" | "Foreground"), _) | (None, None) => {}
        (Some(other), _) => {
            return Err(invalid_options(
                "DeleteOptions",
                "propagationPolicy",
                "FieldValueNotSupported",
                format!(
                    "Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                ),
            ))
        }
    }
    let pre = b.preconditions.unwrap_or_default();
    Ok(DeleteOptions {
        grace_period_seconds: b.grace_period_seconds,
        propagation_policy: propagation,
        precondition_uid: pre.uid,
        precondition_resource_version: pre.resource_version,
        dry_run,
    })
}

/// A watch request's options (shared with the single-object watch, which adds a
/// `metadata.name` field selector as kube does).
fn watch_options(p: &Params, name: Option<&str>) -> Result<WatchOptions, ApiError> {
    validate_list_options(p, true)?;
    let mut field_selector = p.string("fieldSelector");
    if let Some(name) = name {
        let by_name = format!("metadata.name={name}");
        field_selector = Some(match field_selector {
            Some(f) => format!("{f},{by_name}"),
            None => by_name,
        });
    }
    let timeout = match p.int("timeoutSeconds")? {
        // Capped so that a hostile value cannot overflow the deadline's clock arithmetic.
        Some(s) if s > 0 => Duration::from_secs(s as u64).min(MAX_WATCH_TIMEOUT),
        _ => default_watch_timeout(),
    };
    let send_initial_events = p
        .get("sendInitialEvents")
        .map(|_| p.bool("sendInitialEvents"));
    Ok(WatchOptions {
        label_selector: p.string("labelSelector"),
        field_selector,
        resource_version: p.string("resourceVersion"),
        resource_version_match: p.string("resourceVersionMatch"),
        allow_bookmarks: p.bool("allowWatchBookmarks"),
        send_initial_events,
        timeout: Some(timeout),
    })
}

/// kube-apiserver's default watch timeout: `minRequestTimeout * (1 + rand)`, 30–60 min.
fn default_watch_timeout() -> Duration {
    // A uniform fraction from a v4 UUID's random bits (no rand crate needed for this).
    let r = (uuid::Uuid::new_v4().as_u128() & 0xffff) as f64 / 65536.0;
    MIN_REQUEST_TIMEOUT.mul_f64(1.0 + r)
}

#[cfg(test)]
mod tests;
