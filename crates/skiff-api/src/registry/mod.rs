//! The registry: what kube-apiserver's generic store and per-kind strategies do between the
//! HTTP layer and the revision log. Defaulting and validation (skiff-model), create/update/
//! delete/patch rules, graceful pod deletion, finalizers, pod update rules, admission,
//! selectors, list and watch at revisions. No HTTP here: the `http` module maps requests to
//! these calls and [`ApiError`]s to Status objects; the daemon calls the node-side writes
//! (`set_pod_statuses`, `finish_pod_deletion`, `record_events`) in process.
//!
//! The signatures are the contract between `http`, the daemon and this module. Submodules:
//! `decode` (request bodies, `fieldValidation`), `strategy` (per-kind create/update rules),
//! `selector` (label and field selectors), `watch` (the cacher's watch semantics).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Pod, PodStatus};
use serde_json::Value;

use crate::node::NodeBackend;
use crate::store::{Key, Mutation, Rev, Store, StoreError};

mod decode;
pub mod gc;
pub mod kinds;
mod policy;
pub mod selector;
mod strategy;
mod watch;

use selector::Filter;

/// A served resource (the discovery and routing table).
#[derive(Debug)]
pub struct Resource {
    /// "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// Subresources served (`status`, `log`, …).
    pub subresources: &'static [&'static str],
}

impl Resource {
    /// The store's resource key: the plural, group-qualified for non-core groups.
    pub fn store_key(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}/{}", self.group, self.plural)
        }
    }

    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Every resource skiff serves.
pub static RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        verbs: RW,
        subresources: &["status", "log", "exec", "attach", "portforward", "timeline"],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        verbs: &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        subresources: &["status"],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        verbs: RW,
        subresources: &[],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        verbs: RW,
        subresources: &[],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        verbs: RW,
        subresources: &[],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        verbs: RW,
        subresources: &[],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        verbs: RW,
        subresources: &["status"],
    },
    // Issue 12: the workload and namespace-policy kinds (strategies in `kinds`).
    Resource {
        group: "",
        version: "v1",
        plural: "limitranges",
        singular: "limitrange",
        kind: "LimitRange",
        namespaced: true,
        short_names: &["limits"],
        verbs: RW,
        subresources: &[],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "resourcequotas",
        singular: "resourcequota",
        kind: "ResourceQuota",
        namespaced: true,
        short_names: &["quota"],
        verbs: RW,
        subresources: &["status"],
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        verbs: RW,
        subresources: &["status", "scale"],
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        verbs: RW,
        subresources: &["status", "scale"],
    },
    Resource {
        group: "batch",
        version: "v1",
        plural: "jobs",
        singular: "job",
        kind: "Job",
        namespaced: true,
        short_names: &[],
        verbs: RW,
        subresources: &["status"],
    },
    Resource {
        group: "batch",
        version: "v1",
        plural: "cronjobs",
        singular: "cronjob",
        kind: "CronJob",
        namespaced: true,
        short_names: &["cj"],
        verbs: RW,
        subresources: &["status"],
    },
];

/// The served resource `plural` of `group` (core: "").
pub fn resource(group: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
}

/// A refusal in kube-apiserver's terms; the HTTP layer renders it as a `Status`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status code (404, 409, 422, 400, 403, 410, 500, …).
    pub code: u16,
    /// Status `reason`: NotFound, AlreadyExists, Conflict, Invalid, BadRequest, Forbidden,
    /// Expired, Gone, MethodNotAllowed, InternalError, …
    pub reason: &'static str,
    pub message: String,
    /// Status `details` (name, group, kind, causes), as JSON.
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// `pods "x" not found`.
    pub fn not_found(r: &Resource, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", r.plural),
        )
    }

    /// The `metav1.Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut s = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// `fieldValidation` of a write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    /// Unknown/duplicate fields become warnings (the server default).
    #[default]
    Warn,
    Strict,
}

/// How a request body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Yaml,
}

/// Query options of a write (create, update, patch).
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: FieldValidation,
    /// Server-side apply's `force`.
    pub force: bool,
}

/// The result of a write: the object as stored, whether it was created (201), and the
/// warnings for `Warning: 299 - "…"` headers.
#[derive(Clone, Debug)]
pub struct Written {
    pub object: Arc<Value>,
    pub created: bool,
    pub warnings: Vec<String>,
}

/// The kind of a PATCH (it lives with the patch code, which the registry calls).
pub use crate::patch::PatchType;

/// list query options.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub limit: Option<i64>,
    pub continue_token: Option<String>,
}

/// A list result: the items and the revision the list is at.
#[derive(Clone, Debug)]
pub struct ListResult {
    pub items: Vec<Arc<Value>>,
    pub resource_version: Rev,
    /// A continue token when `limit` cut the list.
    pub continue_token: Option<String>,
}

/// watch query options.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub allow_bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub timeout: Option<Duration>,
}

/// One watch event as the HTTP layer writes it: `type` is ADDED, MODIFIED, DELETED,
/// BOOKMARK or ERROR (object = a Status).
#[derive(Clone, Debug)]
pub struct ApiWatchEvent {
    pub type_: &'static str,
    pub object: Arc<Value>,
}

pub use watch::ApiWatch;

/// `DeleteOptions` (body or query).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
}

/// What a DELETE did: removed the object, or marked it (graceful deletion, finalizers).
#[derive(Clone, Debug)]
pub enum Deleted {
    Gone(Arc<Value>),
    Pending(Arc<Value>),
}

/// The API: the registry over the store, for the HTTP layer and the daemon.
#[derive(Clone)]
pub struct Api {
    store: Store,
    node: Arc<dyn NodeBackend>,
    /// Snapshots of lists cut by `limit`, so that `continue` pages are served at the first
    /// page's revision (as etcd serves them) while they are kept.
    snapshots: Arc<Mutex<VecDeque<Snapshot>>>,
    /// Whether the ServiceAccount admission mounts the `kube-api-access-*` token volume
    /// (see [`Api::set_token_volumes`]).
    token_volumes: Arc<AtomicBool>,
    /// Pod creates serialised per namespace (quota charging, `policy`).
    ns_locks: policy::NamespaceLocks,
    /// The garbage collector's state (`gc`).
    gc: gc::GcState,
}

/// A filtered list kept for its continue pages.
struct Snapshot {
    id: SnapshotId,
    made: Instant,
    items: Arc<Vec<Arc<Value>>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct SnapshotId {
    resource: String,
    namespace: Option<String>,
    labels: String,
    fields: String,
    rev: Rev,
}

/// How many list snapshots are kept, and for how long.
const SNAPSHOTS: usize = 16;
const SNAPSHOT_TTL: Duration = Duration::from_secs(300);

/// Namespaces a cluster always has; the first three may not be deleted
/// (NamespaceLifecycle's immortal namespaces).
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];
const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// kube-apiserver's default event TTL (`--event-ttl`).
pub const EVENT_TTL: Duration = Duration::from_secs(3600);

/// How often an update or generateName create is retried after losing a race.
const RETRIES: usize = 8;

/// What a list and a watch both take from their options: the selectors as a filter for
/// `r`'s kind, and `resourceVersion` / `resourceVersionMatch` (empty = unset).
fn selection<'a>(
    r: &Resource,
    labels: &Option<String>,
    fields: &Option<String>,
    rv: &'a Option<String>,
    rvm: &'a Option<String>,
) -> Result<(Filter, Option<&'a str>, Option<&'a str>), ApiError> {
    let filter = Filter::new(r.kind, labels.as_deref(), fields.as_deref())?;
    let nonempty = |v: &'a Option<String>| v.as_deref().filter(|v| !v.is_empty());
    Ok((filter, nonempty(rv), nonempty(rvm)))
}

fn store_error(r: &Resource, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(_) => ApiError::not_found(r, name),
        StoreError::AlreadyExists(_) => ApiError::already_exists(r, name),
        StoreError::Conflict { .. } => ApiError::conflict(
            r,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ),
        StoreError::Expired { .. } => ApiError::new(410, "Expired", e.to_string()),
        other => ApiError::new(500, "InternalError", other.to_string()),
    }
}

impl ApiError {
    fn with_details(mut self, r: &Resource, name: &str) -> ApiError {
        let mut d = serde_json::json!({"name": name, "kind": r.plural});
        if !r.group.is_empty() {
            d["group"] = Value::String(r.group.to_string());
        }
        self.details = Some(d);
        self
    }

    /// 409 `pods "x" already exists`.
    pub fn already_exists(r: &Resource, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", r.plural),
        )
        .with_details(r, name)
    }

    /// 409 `Operation cannot be fulfilled on pods "x": <why>`.
    pub fn conflict(r: &Resource, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                r.plural
            ),
        )
        .with_details(r, name)
    }

    /// 403 `pods "x" is forbidden: <why>`.
    pub fn forbidden(r: &Resource, name: &str, why: &str) -> ApiError {
        ApiError::new(
            403,
            "Forbidden",
            format!("{} \"{name}\" is forbidden: {why}", r.plural),
        )
        .with_details(r, name)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }
}

fn res(plural: &str) -> &'static Resource {
    // Every plural used here is in RESOURCES; the first entry is a harmless fallback.
    resource("", plural).unwrap_or(&RESOURCES[0])
}

fn meta_str<'a>(o: &'a Value, f: &str) -> &'a str {
    o.get("metadata")
        .and_then(|m| m.get(f))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn is_deleting(o: &Value) -> bool {
    o.get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|d| !d.is_null())
}

fn finalizers(o: &Value) -> Vec<String> {
    o["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A `resourceVersion` parameter or field (decimal, as skiff's store writes them).
fn parse_rv(v: &str) -> Result<Rev, ApiError> {
    v.parse::<Rev>().map_err(|e| {
        ApiError::bad_request(format!(
            "resourceVersion: Invalid value: {}: {e}",
            strategy::q(v)
        ))
    })
}

/// `apierrors.NewInvalid` for ListOptions/DeleteOptions (`ListOptions.meta.k8s.io "" is
/// invalid: …`).
fn options_invalid(kind: &str, errors: &[skiff_model::field::FieldError]) -> ApiError {
    let mut e = strategy::invalid(kind, "", errors);
    e.message = skiff_model::field::invalid_message(&format!("{kind}.meta.k8s.io"), "", errors);
    e
}

/// A random lowercase alphanumeric suffix of `n` characters (`names.SimpleNameGenerator`).
fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    (0..n)
        .map(|i| ALPHABET[usize::from(bytes[i % 16]) % ALPHABET.len()] as char)
        .collect()
}

/// The continue token: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"ns/name"}`, as
/// kube-apiserver's etcd3 store encodes its own.
fn encode_continue(rev: Rev, start: &str) -> String {
    use base64::Engine as _;
    let j = serde_json::json!({"v": "meta.k8s.io/v1", "rv": rev, "start": start});
    base64::engine::general_purpose::URL_SAFE.encode(j.to_string())
}

fn decode_continue(token: &str) -> Result<(Rev, String), ApiError> {
    use base64::Engine as _;
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad())?;
    let j: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if j["v"] != "meta.k8s.io/v1" {
        return Err(bad());
    }
    let rev = j["rv"].as_u64().filter(|r| *r > 0).ok_or_else(bad)?;
    let start = j["start"].as_str().ok_or_else(bad)?.to_string();
    Ok((rev, start))
}

fn item_key(o: &Value) -> String {
    format!("{}/{}", meta_str(o, "namespace"), meta_str(o, "name"))
}

impl Api {
    /// The API over `store` for `node`: creates what a fresh cluster has (the namespaces
    /// default, kube-system, kube-public, kube-node-lease; a `default` ServiceAccount in each;
    /// the Node object) when missing. Idempotent: a restart on the same store adds nothing.
    pub async fn open(store: Store, node: Arc<dyn NodeBackend>) -> Result<Api, ApiError> {
        let api = Api {
            store,
            node,
            snapshots: Arc::new(Mutex::new(VecDeque::new())),
            token_volumes: Arc::new(AtomicBool::new(false)),
            ns_locks: policy::NamespaceLocks::default(),
            gc: gc::GcState::default(),
        };
        let ns_r = res("namespaces");
        for ns in SYSTEM_NAMESPACES {
            if api.store.get(&Key::new("namespaces", "", ns)).is_none() {
                let mut obj = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                strategy::prepare_create("Namespace", &mut obj);
                match api.commit_create(ns_r, "", obj).await {
                    Ok(_) | Err(ApiError { code: 409, .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        // Every active namespace has its `default` ServiceAccount (the ServiceAccount
        // controller's job upstream).
        let (namespaces, _) = api.store.list("namespaces", None);
        for ns in namespaces {
            if ns.object["status"]["phase"] == "Active" {
                api.ensure_default_service_account(&ns.key.name).await?;
            }
        }
        api.refresh_node().await?;
        Ok(api)
    }

    /// Turns on the ServiceAccount admission's token volume: every pod whose service
    /// account (or own spec) does not opt out of `automountServiceAccountToken` gets the
    /// projected volume `kube-api-access-xxxxx` (a bound token, `kube-root-ca.crt`'s
    /// `ca.crt`, the namespace) mounted read-only at
    /// `/var/run/secrets/kubernetes.io/serviceaccount` in every container, as
    /// plugin/pkg/admission/serviceaccount does. Off until the daemon serves the token
    /// signer and the root CA ConfigMap to the node.
    pub fn set_token_volumes(&self, on: bool) {
        self.token_volumes.store(on, Ordering::Relaxed);
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn node(&self) -> &Arc<dyn NodeBackend> {
        &self.node
    }

    fn key(r: &Resource, ns: &str, name: &str) -> Key {
        Key::new(&r.store_key(), if r.namespaced { ns } else { "" }, name)
    }

    pub fn get(&self, r: &Resource, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        self.store
            .get(&Self::key(r, ns, name))
            .map(|s| s.object)
            .ok_or_else(|| ApiError::not_found(r, name).with_details(r, name))
    }

    async fn ensure_default_service_account(&self, ns: &str) -> Result<(), ApiError> {
        let sa_r = res("serviceaccounts");
        if self
            .store
            .get(&Key::new("serviceaccounts", ns, "default"))
            .is_some()
        {
            return Ok(());
        }
        let obj = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
        match self.commit_create(sa_r, ns, obj).await {
            Ok(_) | Err(ApiError { code: 409, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Stores the node's own view of itself: creates the Node object, or replaces its
    /// status (its spec, labels and annotations stay as the API has them) when it changed.
    pub async fn refresh_node(&self) -> Result<(), ApiError> {
        let r = res("nodes");
        let fresh = serde_json::to_value(self.node.node_object())
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let name = self.node.node_name().to_string();
        for _ in 0..RETRIES {
            let key = Key::new("nodes", "", &name);
            let Some(cur) = self.store.get(&key) else {
                let mut obj = fresh.clone();
                obj["metadata"]["name"] = Value::String(name.clone());
                return match self.commit_create(r, "", obj).await {
                    Ok(_) => Ok(()),
                    Err(ApiError { code: 409, .. }) => continue,
                    Err(e) => Err(e),
                };
            };
            if cur.object["status"] == fresh["status"] {
                return Ok(());
            }
            let mut obj = (*cur.object).clone();
            obj["status"] = fresh["status"].clone();
            match self
                .store
                .commit(Mutation::Update {
                    key,
                    object: obj,
                    expect_rev: Some(cur.mod_rev),
                })
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => continue,
                Err(e) => return Err(store_error(r, &name, e)),
            }
        }
        Err(ApiError::conflict(r, &name, "too many concurrent updates"))
    }

    // ---- list ----

    pub fn list(
        &self,
        r: &Resource,
        ns: Option<&str>,
        o: &ListOptions,
    ) -> Result<ListResult, ApiError> {
        let (filter, rv, rvm) = selection(
            r,
            &o.label_selector,
            &o.field_selector,
            &o.resource_version,
            &o.resource_version_match,
        )?;
        // ValidateListOptions.
        let mut errs = Vec::new();
        let p = skiff_model::field::Path::new("resourceVersionMatch");
        match rvm {
            None => {}
            Some(m) if m != "Exact" && m != "NotOlderThan" => {
                errs.push(skiff_model::field::FieldError::not_supported(
                    &p,
                    m,
                    &["Exact", "NotOlderThan", ""],
                ))
            }
            Some(_) if rv.is_none() => errs.push(skiff_model::field::FieldError::forbidden(
                &p,
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            )),
            Some("Exact") if rv == Some("0") => {
                errs.push(skiff_model::field::FieldError::forbidden(
                    &p,
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ))
            }
            _ => {}
        }
        if o.continue_token.as_deref().is_some_and(|c| !c.is_empty())
            && rv.is_some_and(|v| v != "0")
        {
            errs.push(skiff_model::field::FieldError::forbidden(
                &skiff_model::field::Path::new("resourceVersion"),
                "specifying resource version is not allowed when using continue",
            ));
        }
        if !errs.is_empty() {
            return Err(options_invalid("ListOptions", &errs));
        }
        let store_ns = if r.namespaced { ns } else { None };
        let limit = o.limit.filter(|l| *l > 0).map(|l| l as usize);

        if let Some(token) = o.continue_token.as_deref().filter(|c| !c.is_empty()) {
            let (rev, start) = decode_continue(token)?;
            let id = SnapshotId {
                resource: r.store_key(),
                namespace: store_ns.map(str::to_string),
                labels: o.label_selector.clone().unwrap_or_default(),
                fields: o.field_selector.clone().unwrap_or_default(),
                rev,
            };
            let items = match self.snapshot(&id) {
                Some(items) => items,
                None => {
                    if !self.unchanged_since(&r.store_key(), store_ns, rev)? {
                        return Err(ApiError::new(
                            410,
                            "Expired",
                            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                        ));
                    }
                    let (all, _) = self.store.list(&r.store_key(), store_ns);
                    Arc::new(
                        all.into_iter()
                            .map(|s| s.object)
                            .filter(|o| filter.matches(o))
                            .collect(),
                    )
                }
            };
            return Ok(self.page(id, items, Some(&start), limit));
        }

        let (all, current) = self.store.list(&r.store_key(), store_ns);
        let at = match (rv, rvm) {
            (None, _) | (Some("0"), _) => current,
            (Some(v), m) => {
                let n = parse_rv(v)?;
                if n > current {
                    return Err(too_large(n, current));
                }
                if m == Some("Exact") && n < current {
                    if !self.unchanged_since(&r.store_key(), store_ns, n)? {
                        // etcd3 store's interpretListError for a compacted revision.
                        return Err(ApiError::new(
                            410,
                            "Expired",
                            "The resourceVersion for the provided list is too old.",
                        ));
                    }
                    n
                } else {
                    current
                }
            }
        };
        let items: Vec<Arc<Value>> = all
            .into_iter()
            .map(|s| s.object)
            .filter(|o| filter.matches(o))
            .collect();
        // kube-apiserver serves resourceVersion="0" from its cache, ignoring limit.
        let limit = if rv == Some("0") { None } else { limit };
        match limit {
            Some(l) if items.len() > l => {
                let id = SnapshotId {
                    resource: r.store_key(),
                    namespace: store_ns.map(str::to_string),
                    labels: o.label_selector.clone().unwrap_or_default(),
                    fields: o.field_selector.clone().unwrap_or_default(),
                    rev: at,
                };
                Ok(self.page(id, Arc::new(items), None, limit))
            }
            _ => Ok(ListResult {
                items,
                resource_version: at,
                continue_token: None,
            }),
        }
    }

    /// One page of `items` after `start`, keeping the snapshot when more follow.
    fn page(
        &self,
        id: SnapshotId,
        items: Arc<Vec<Arc<Value>>>,
        start: Option<&str>,
        limit: Option<usize>,
    ) -> ListResult {
        let from = match start {
            Some(s) => items.partition_point(|o| item_key(o).as_str() <= s),
            None => 0,
        };
        let rest = items.get(from..).unwrap_or(&[]);
        let take = limit.unwrap_or(rest.len()).min(rest.len());
        let page: Vec<Arc<Value>> = rest[..take].to_vec();
        let more = take < rest.len();
        let continue_token = if more {
            page.last().map(|o| encode_continue(id.rev, &item_key(o)))
        } else {
            None
        };
        let rev = id.rev;
        if more {
            self.keep_snapshot(id, items);
        }
        ListResult {
            items: page,
            resource_version: rev,
            continue_token,
        }
    }

    fn snapshots(&self) -> std::sync::MutexGuard<'_, VecDeque<Snapshot>> {
        // The cache holds no invariant a panic could break.
        self.snapshots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot(&self, id: &SnapshotId) -> Option<Arc<Vec<Arc<Value>>>> {
        let mut s = self.snapshots();
        s.retain(|x| x.made.elapsed() < SNAPSHOT_TTL);
        s.iter().find(|x| &x.id == id).map(|x| x.items.clone())
    }

    fn keep_snapshot(&self, id: SnapshotId, items: Arc<Vec<Arc<Value>>>) {
        let mut s = self.snapshots();
        if s.iter().any(|x| x.id == id) {
            return;
        }
        if s.len() >= SNAPSHOTS {
            s.pop_front();
        }
        s.push_back(Snapshot {
            id,
            made: Instant::now(),
            items,
        });
    }

    /// Whether nothing of `resource` (in `ns`) changed after `rev`: the list at `rev` is
    /// then the current one. (Deletions are seen in the store's replay of the events after
    /// `rev`, which it queues when the watch is made.)
    fn unchanged_since(
        &self,
        resource: &str,
        ns: Option<&str>,
        rev: Rev,
    ) -> Result<bool, ApiError> {
        use futures_util::FutureExt as _;
        // A creation or change after `rev` shows in the current objects' revisions; a
        // deletion only in the event log.
        let (items, _) = self.store.list(resource, ns);
        if items.iter().any(|s| s.mod_rev > rev) {
            return Ok(false);
        }
        match self.store.watch(resource, ns, rev) {
            Err(StoreError::Expired { .. }) => Ok(false),
            Err(e) => Err(ApiError::internal(e.to_string())),
            Ok(mut w) => Ok(w.next().now_or_never().is_none()),
        }
    }

    // ---- watch ----

    pub fn watch(
        &self,
        r: &Resource,
        ns: Option<&str>,
        o: &WatchOptions,
    ) -> Result<ApiWatch, ApiError> {
        let (filter, rv, rvm) = selection(
            r,
            &o.label_selector,
            &o.field_selector,
            &o.resource_version,
            &o.resource_version_match,
        )?;
        // ValidateListOptions for a watch.
        let mut errs = Vec::new();
        let p = skiff_model::field::Path::new("resourceVersionMatch");
        match (o.send_initial_events, rvm) {
            (Some(_), m) => {
                if m != Some("NotOlderThan") {
                    errs.push(skiff_model::field::FieldError::forbidden(
                        &p,
                        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                    ));
                }
                if !o.allow_bookmarks {
                    errs.push(skiff_model::field::FieldError::forbidden(
                        &skiff_model::field::Path::new("allowWatchBookmarks"),
                        "sendInitialEvents requires setting allowWatchBookmarks to true",
                    ));
                }
            }
            (None, Some(_)) => errs.push(skiff_model::field::FieldError::forbidden(
                &p,
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            )),
            (None, None) => {}
        }
        if !errs.is_empty() {
            return Err(options_invalid("ListOptions", &errs));
        }
        let store_ns = if r.namespaced { ns } else { None };
        let resource = r.store_key();
        let current = self.store.current_rev();
        let requested = match rv {
            None | Some("0") => None,
            Some(v) => Some(parse_rv(v)?),
        };
        if let Some(n) = requested {
            if n > current {
                return Err(too_large(n, current));
            }
        }
        // Initial events: the legacy "get state and start at most recent" (RV unset or
        // "0"), or a streaming list (sendInitialEvents=true, at a revision not older than
        // the requested one: the current one).
        let initial = match o.send_initial_events {
            Some(true) => true,
            Some(false) => false,
            None => requested.is_none(),
        };
        let mut w = ApiWatch {
            queue: VecDeque::new(),
            inner: None,
            filter,
            tracking: None,
            last_rev: current,
            kind: r.kind,
            api_version: r.api_version(),
            allow_bookmarks: o.allow_bookmarks,
            ended: false,
        };
        let tracked = !w.filter.is_empty();
        let from = if initial || requested.is_none() {
            let (items, at) = self.store.list(&resource, store_ns);
            let mut matched = HashSet::new();
            for s in items {
                if w.filter.matches(&s.object) {
                    if tracked {
                        matched.insert(s.key.clone());
                    }
                    if initial {
                        w.queue.push_back(ApiWatchEvent {
                            type_: "ADDED",
                            object: s.object,
                        });
                    }
                }
            }
            if o.send_initial_events == Some(true) {
                w.queue
                    .push_back(watch::bookmark_event(r.kind, &w.api_version, at, true));
            }
            if tracked {
                w.tracking = Some(watch::Tracking::new(matched, HashSet::new()));
            }
            at
        } else {
            let n = requested.unwrap_or(current);
            if tracked {
                // Objects unchanged since n are as they were at n; the others' first event
                // decides (see Tracking).
                let (items, _) = self.store.list(&resource, store_ns);
                let mut matched = HashSet::new();
                let mut uncertain = HashSet::new();
                for s in items {
                    if s.mod_rev > n {
                        uncertain.insert(s.key);
                    } else if w.filter.matches(&s.object) {
                        matched.insert(s.key);
                    }
                }
                w.tracking = Some(watch::Tracking::new(matched, uncertain));
            }
            n
        };
        w.last_rev = from;
        match self.store.watch(&resource, store_ns, from) {
            Ok(inner) => w.inner = Some(inner),
            Err(StoreError::Expired { requested, oldest }) => {
                // HTTP 200, then the ERROR event (trap 18).
                w.queue.clear();
                w.queue.push_back(watch::expired_event(format!(
                    "too old resource version: {requested} ({oldest})"
                )));
                w.ended = true;
            }
            Err(e) => return Err(ApiError::internal(e.to_string())),
        }
        Ok(w)
    }

    // ---- create ----

    /// Creates from a body (POST).
    pub async fn create(
        &self,
        r: &Resource,
        ns: &str,
        body: &[u8],
        format: BodyFormat,
        o: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let parsed = decode::parse(body, format)?;
        let (object, warnings) = decode::decode_object(r, parsed, o.field_validation)?;
        let object = self.create_value(r, ns, object, o.dry_run).await?;
        Ok(Written {
            object,
            created: true,
            warnings,
        })
    }

    /// The create path after decoding: namespace rules, name generation, the kind's
    /// preparation, validation and admission, then the store (retrying a generated name
    /// that collided, KEP-4420).
    async fn create_value(
        &self,
        r: &Resource,
        ns: &str,
        mut object: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        // EnsureObjectNamespaceMatchesRequestNamespace.
        let body_ns = meta_str(&object, "namespace").to_string();
        if r.namespaced {
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            object["metadata"]["namespace"] = Value::String(ns.to_string());
        } else if let Some(m) = object["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        // The storage refuses a resourceVersion on create (etcd3 store.Create).
        if !meta_str(&object, "resourceVersion").is_empty() {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let generate = meta_str(&object, "generateName").to_string();
        let given = meta_str(&object, "name").to_string();
        // NamespaceLifecycle admission.
        if r.namespaced {
            let display = if given.is_empty() {
                generate.as_str()
            } else {
                given.as_str()
            };
            match self.store.get(&Key::new("namespaces", "", ns)) {
                None => {
                    return Err(ApiError::not_found(res("namespaces"), ns)
                        .with_details(res("namespaces"), ns))
                }
                Some(n) if n.object["status"]["phase"] == "Terminating" && r.kind != "Event" => {
                    let mut e = ApiError::forbidden(
                        r,
                        display,
                        &format!("unable to create new content in namespace {ns} because it is being terminated"),
                    );
                    if let Some(d) = e.details.as_mut() {
                        d["causes"] = serde_json::json!([{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]);
                    }
                    return Err(e);
                }
                _ => {}
            }
        }
        // BeforeCreate: server-set fields reset.
        if let Some(m) = object["metadata"].as_object_mut() {
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                m.remove(f);
            }
        }
        // Creates in a namespace with quotas are serialised from the quota check to the
        // commit, so two creates cannot both take the last of a quota.
        let _ns_lock = if r.namespaced && self.has_quotas(ns) {
            Some(self.ns_locks.lock(ns).await)
        } else {
            None
        };
        let mut last = None;
        for _ in 0..RETRIES {
            let mut obj = object.clone();
            if given.is_empty() && !generate.is_empty() {
                // GenerateName: the prefix cut to leave room for the suffix (names.go).
                let prefix: String = generate.chars().take(63 - 5).collect();
                obj["metadata"]["name"] = Value::String(format!("{prefix}{}", random_suffix(5)));
            }
            let prepared = self.prepare_create(r, ns, obj).await?;
            if r.namespaced && r.kind != "Pod" {
                self.admit_object_count(r, ns, meta_str(&prepared, "name"))?;
            }
            if dry_run {
                return Ok(Arc::new(prepared));
            }
            match self.commit_create(r, ns, prepared).await {
                Err(e) if e.code == 409 && given.is_empty() && !generate.is_empty() => {
                    last = Some(e)
                }
                Ok(created) => {
                    if r.namespaced {
                        self.quota_usage_changed(ns).await;
                    }
                    return Ok(created);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| ApiError::internal("name generation failed")))
    }

    /// The kind's preparation, validation and admission of a new object.
    async fn prepare_create(&self, r: &Resource, ns: &str, obj: Value) -> Result<Value, ApiError> {
        let name = meta_str(&obj, "name").to_string();
        if r.kind == "Pod" {
            return self.prepare_pod_create(r, ns, obj).await;
        }
        let mut obj = obj;
        // The workload and policy kinds have their own strategies (kinds.rs).
        let errs = if kinds::handles(r.kind) {
            kinds::prepare_create(r.kind, &mut obj).unwrap_or_else(|e| {
                vec![skiff_model::field::FieldError::internal(
                    &skiff_model::field::Path::new(""),
                    e.message,
                )]
            })
        } else {
            strategy::prepare_create(r.kind, &mut obj)
        };
        if !errs.is_empty() {
            return Err(strategy::invalid(r.kind, &name, &errs));
        }
        Ok(obj)
    }

    /// A pod's create: the ServiceAccount admission (plugin/pkg/admission/serviceaccount:
    /// `default`, which must exist: 403), skiff-model's defaulting, PrepareForCreate and
    /// validation (422), the node's admission (403), then binding to this node
    /// (`spec.nodeName`: without it every delete would be immediate) and the initial status.
    async fn prepare_pod_create(
        &self,
        r: &Resource,
        ns: &str,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let name = meta_str(&obj, "name").to_string();
        let mut pod: Pod =
            serde_json::from_value(obj).map_err(|e| ApiError::internal(e.to_string()))?;
        {
            let spec = pod.spec.get_or_insert_with(Default::default);
            // plugin/pkg/admission/serviceaccount: the deprecated serviceAccount field fills
            // serviceAccountName; neither means `default`.
            if spec
                .service_account_name
                .as_deref()
                .unwrap_or("")
                .is_empty()
            {
                let sa = spec
                    .service_account
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "default".into());
                spec.service_account_name = Some(sa);
            }
        }
        // The ServiceAccount must exist (checked by the plugin's Admit, before the
        // strategy's validation); its imagePullSecrets go to a pod that names none.
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default();
        let Some(sa_obj) = self.store.get(&Key::new("serviceaccounts", ns, &sa)) else {
            return Err(ApiError::forbidden(
                r,
                &name,
                &format!(
                    "service account {ns}/{sa} was not found, retry after the service account is created"
                ),
            ));
        };
        if let Some(spec) = pod.spec.as_mut() {
            if spec.image_pull_secrets.as_ref().is_none_or(Vec::is_empty) {
                if let Some(secrets) = sa_obj.object.get("imagePullSecrets").cloned() {
                    if let Ok(s) = serde_json::from_value(secrets) {
                        spec.image_pull_secrets = Some(s);
                    }
                }
            }
        }
        if self.token_volumes.load(Ordering::Relaxed) {
            mount_service_account_token(&sa_obj.object, &mut pod);
        }
        // LimitRanger's defaults: mutating admission, after API defaulting, before validation.
        skiff_model::defaults::default_pod(&mut pod);
        self.limit_ranger_defaults(ns, &mut pod);
        let mut pod = skiff_model::prepare_pod(pod)
            .map_err(|e| strategy::invalid("Pod", &name, &e.errors))?;
        // Validating admission: LimitRanger's checks, then ResourceQuota.
        self.admit_pod_policy(r, ns, &name, &pod)?;
        let node_name = self.node.node_name().to_string();
        let spec = pod.spec.get_or_insert_with(Default::default);
        if spec.node_name.as_deref().unwrap_or("").is_empty() {
            spec.node_name = Some(node_name.clone());
        }
        // The v1 conversion writes the deprecated field from serviceAccountName.
        spec.service_account.clone_from(&spec.service_account_name);
        if spec.node_name.as_deref() == Some(node_name.as_str()) {
            let bound = self.bound_pods(&node_name);
            self.node
                .admit(&pod, &bound)
                .map_err(|why| ApiError::forbidden(r, &name, &why))?;
        }
        let qos = pod
            .spec
            .as_ref()
            .map(|s| skiff_model::resources::qos_class(s).as_str())
            .unwrap_or("BestEffort");
        let mut obj = serde_json::to_value(&pod).map_err(|e| ApiError::internal(e.to_string()))?;
        obj["status"] = serde_json::json!({"phase": "Pending", "qosClass": qos});
        Ok(obj)
    }

    /// The pods bound to `node` that are not terminal (what node admission counts).
    fn bound_pods(&self, node: &str) -> Vec<Pod> {
        let (pods, _) = self.store.list("pods", None);
        pods.into_iter()
            .filter(|s| s.object["spec"]["nodeName"] == node)
            .filter(|s| {
                let phase = s.object["status"]["phase"].as_str().unwrap_or("");
                phase != "Succeeded" && phase != "Failed"
            })
            .filter_map(|s| serde_json::from_value((*s.object).clone()).ok())
            .collect()
    }

    /// Stamps uid and creationTimestamp and stores a prepared object; a Namespace gets its
    /// `default` ServiceAccount.
    async fn commit_create(
        &self,
        r: &Resource,
        ns: &str,
        mut obj: Value,
    ) -> Result<Arc<Value>, ApiError> {
        let name = meta_str(&obj, "name").to_string();
        if name.is_empty() {
            return Err(strategy::invalid(
                r.kind,
                "",
                &[skiff_model::field::FieldError::required(
                    &skiff_model::field::Path::new("metadata").child("name"),
                    "name or generateName is required",
                )],
            ));
        }
        // A uid the kind's preparation set (a Job's, for its generated selector) is kept.
        if meta_str(&obj, "uid").is_empty() {
            obj["metadata"]["uid"] = Value::String(uuid::Uuid::new_v4().to_string());
        }
        obj["metadata"]["creationTimestamp"] = Value::String(strategy::now());
        let s = self
            .store
            .commit(Mutation::Create {
                key: Self::key(r, ns, &name),
                object: obj,
            })
            .await
            .map_err(|e| {
                let mut err = store_error(r, &name, e);
                // store.go Create: an existing object that is being deleted says so.
                if err.code == 409
                    && self
                        .store
                        .get(&Self::key(r, ns, &name))
                        .is_some_and(|s| is_deleting(&s.object))
                {
                    err.message = format!("object is being deleted: {}", err.message);
                }
                err
            })?;
        if r.kind == "Namespace" {
            Box::pin(self.ensure_default_service_account(&name)).await?;
        }
        Ok(s.object)
    }

    // ---- update ----

    /// PUT of the object (`subresource` None) or of its `status`.
    #[allow(clippy::too_many_arguments)] // the request's parts
    pub async fn update(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        subresource: Option<&str>,
        body: &[u8],
        format: BodyFormat,
        o: &WriteOptions,
    ) -> Result<Written, ApiError> {
        if subresource == Some("scale") {
            return self.update_scale(r, ns, name, body, format, o).await;
        }
        check_subresource(r, subresource)?;
        let parsed = decode::parse(body, format)?;
        let (object, warnings) = decode::decode_object(r, parsed, o.field_validation)?;
        let (object, created) = self
            .update_value(r, ns, name, subresource, object, o.dry_run, None)
            .await?;
        Ok(Written {
            object,
            created,
            warnings,
        })
    }

    /// The update path after decoding: name and namespace checks, the resourceVersion
    /// precondition (an empty one is unconditional, retried on conflicts), the kind's
    /// update rules, a no-op when nothing changed, and deletion when the last finalizer
    /// of an object being deleted is removed. `repatch` recomputes the object from the
    /// fresh stored one after a lost race (PATCH).
    #[allow(clippy::too_many_arguments)]
    async fn update_value(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        subresource: Option<&str>,
        object: Value,
        dry_run: bool,
        repatch: Option<&Repatch<'_>>,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        let mut object = object;
        for attempt in 0..RETRIES {
            if attempt > 0 {
                if let Some(f) = repatch {
                    let cur = self.get(r, ns, name)?;
                    object = f(&cur)?;
                }
            }
            // checkName (handlers/update.go) and the namespace rule.
            let body_name = meta_str(&object, "name");
            if body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            let body_ns = meta_str(&object, "namespace").to_string();
            if r.namespaced {
                if !body_ns.is_empty() && body_ns != ns {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                object["metadata"]["namespace"] = Value::String(ns.to_string());
            } else if let Some(m) = object["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            let key = Self::key(r, ns, name);
            let Some(cur) = self.store.get(&key) else {
                // Events may be created by an update (AllowCreateOnUpdate).
                if r.kind == "Event" && subresource.is_none() {
                    if let Some(m) = object["metadata"].as_object_mut() {
                        m.remove("resourceVersion");
                    }
                    let o = self.create_value(r, ns, object, dry_run).await?;
                    return Ok((o, true));
                }
                return Err(ApiError::not_found(r, name).with_details(r, name));
            };
            let body_rv = meta_str(&object, "resourceVersion").to_string();
            let conditional = !body_rv.is_empty();
            if conditional && parse_rv(&body_rv)? != cur.mod_rev {
                return Err(store_error(
                    r,
                    name,
                    StoreError::Conflict {
                        key,
                        stored: cur.mod_rev,
                    },
                ));
            }
            let mut new = object.clone();
            let errs = if kinds::handles(r.kind) {
                let meta = strategy::prepare_update_meta(&cur.object, &mut new);
                let status = subresource == Some("status");
                kinds::prepare_update(r.kind, status, &cur.object, &mut new, meta)?
            } else {
                strategy::prepare_update(r.kind, subresource, &cur.object, &mut new)?
            };
            if !errs.is_empty() {
                return Err(strategy::invalid(r.kind, name, &errs));
            }
            // Unchanged: no write, no event (GuaranteedUpdate's no-op).
            let mut probe = new.clone();
            probe["metadata"]["resourceVersion"] =
                cur.object["metadata"]["resourceVersion"].clone();
            if probe == *cur.object {
                return Ok((cur.object, false));
            }
            if dry_run {
                return Ok((Arc::new(new), false));
            }
            // The last finalizer of an object being deleted with no grace left removed:
            // the update deletes it (store.go shouldDeleteDuringUpdate).
            let delete_now = is_deleting(&cur.object)
                && finalizers(&new).is_empty()
                && cur.object["metadata"]["deletionGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(0)
                    == 0;
            let result = if delete_now {
                // Not written: deleted (deleteWithoutFinalizers), one DELETED event.
                self.store
                    .commit(Mutation::Delete {
                        key,
                        expect_rev: Some(cur.mod_rev),
                        expect_uid: None,
                    })
                    .await
            } else {
                self.store
                    .commit(Mutation::Update {
                        key,
                        object: new,
                        expect_rev: Some(cur.mod_rev),
                    })
                    .await
            };
            match result {
                Ok(s) => {
                    if r.kind == "ResourceQuota" || (delete_now && r.namespaced) {
                        self.quota_usage_changed(ns).await;
                    }
                    if delete_now {
                        self.gc_after_delete(&s.object, true);
                    }
                    return Ok((s.object, false));
                }
                Err(StoreError::Conflict { .. }) if !conditional => continue,
                Err(e) => return Err(store_error(r, name, e)),
            }
        }
        Err(ApiError::conflict(
            r,
            name,
            "too many concurrent updates; please try again",
        ))
    }

    // ---- patch ----

    /// PATCH: the patch applied to the stored object (api-schema's `patch` module), then the
    /// update path (validation, conflicts). An apply patch of a missing object creates it.
    #[allow(clippy::too_many_arguments)] // the request's parts
    pub async fn patch(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        subresource: Option<&str>,
        patch_type: PatchType,
        body: &[u8],
        o: &WriteOptions,
    ) -> Result<Written, ApiError> {
        if subresource == Some("scale") {
            return self.patch_scale(r, ns, name, patch_type, body, o).await;
        }
        check_subresource(r, subresource)?;
        let manager = o.field_manager.clone().unwrap_or_default();
        let applied = if patch_type == PatchType::Apply {
            if manager.is_empty() {
                return Err(options_invalid(
                    "PatchOptions",
                    &[skiff_model::field::FieldError::required(
                        &skiff_model::field::Path::new("fieldManager"),
                        "is required for apply patch",
                    )],
                ));
            }
            Some(decode::parse(body, BodyFormat::Yaml)?.value)
        } else {
            None
        };
        let kind = r.kind;
        let force = o.force;
        let body = body.to_vec();
        let make = move |cur: Option<&Value>| -> Result<Value, ApiError> {
            let out = match &applied {
                Some(a) => crate::patch::server_side_apply(kind, cur, a, &manager, force),
                None => match cur {
                    Some(c) => crate::patch::apply_patch(kind, patch_type, c, &body),
                    None => return Err(ApiError::internal("no object to patch")),
                },
            };
            out.map_err(|e| match e {
                crate::patch::PatchError::BadRequest(m) => ApiError::bad_request(m),
                crate::patch::PatchError::Invalid(m) => ApiError::new(422, "Invalid", m),
            })
        };
        let current = self.store.get(&Self::key(r, ns, name));
        let Some(cur) = current else {
            if patch_type != PatchType::Apply || subresource.is_some() {
                return Err(ApiError::not_found(r, name).with_details(r, name));
            }
            let obj = make(None)?;
            // Decoded first: a body whose metadata is not an object is refused there.
            let (mut obj, warnings) = self.redecode(r, obj, o.field_validation)?;
            if meta_str(&obj, "name").is_empty() {
                obj["metadata"]["name"] = Value::String(name.to_string());
            }
            if meta_str(&obj, "name") != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta_str(&obj, "name")
                )));
            }
            let object = self.create_value(r, ns, obj, o.dry_run).await?;
            return Ok(Written {
                object,
                created: true,
                warnings,
            });
        };
        let patched = make(Some(&cur.object))?;
        let (patched, warnings) = self.redecode(r, patched, o.field_validation)?;
        // A patch that names a resourceVersion is conditional on it; otherwise a lost race
        // re-applies the patch to the fresh object.
        let fv = o.field_validation;
        let this = self.clone();
        let redo = move |fresh: &Value| -> Result<Value, ApiError> {
            let p = make(Some(fresh))?;
            Ok(this.redecode(r, p, fv)?.0)
        };
        let (object, created) = self
            .update_value(r, ns, name, subresource, patched, o.dry_run, Some(&redo))
            .await?;
        Ok(Written {
            object,
            created,
            warnings,
        })
    }

    /// A patched object decoded again as the kind (unknown fields per `fieldValidation`).
    fn redecode(
        &self,
        r: &Resource,
        v: Value,
        fv: FieldValidation,
    ) -> Result<(Value, Vec<String>), ApiError> {
        decode::decode_object(
            r,
            decode::Parsed {
                value: v,
                duplicates: Vec::new(),
            },
            fv,
        )
    }

    // ---- delete ----

    pub async fn delete(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        o: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        self.delete_with_warnings(r, ns, name, o)
            .await
            .map(|(d, _)| d)
    }

    /// DELETE with the warnings for `Warning: 299 - "…"` headers (a batch/v1 Job deleted
    /// without a propagation policy orphans its pods and says so).
    pub async fn delete_with_warnings(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        o: &DeleteOptions,
    ) -> Result<(Deleted, Vec<String>), ApiError> {
        let mut warnings = Vec::new();
        // REST.Delete of jobs (pkg/registry/batch/job/storage/storage.go).
        if o.propagation_policy.is_none() && gc::default_orphans(r) {
            warnings.push(gc::JOB_ORPHAN_WARNING.to_string());
        }
        let d = self.delete_object(r, ns, name, o).await?;
        Ok((d, warnings))
    }

    async fn delete_object(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        o: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        if let Some(p) = o.propagation_policy.as_deref() {
            if !["Orphan", "Background", "Foreground"].contains(&p) {
                return Err(options_invalid(
                    "DeleteOptions",
                    &[skiff_model::field::FieldError::not_supported(
                        &skiff_model::field::Path::new("propagationPolicy"),
                        p,
                        &["Foreground", "Background", "Orphan", "nil"],
                    )],
                ));
            }
        }
        if let Some(g) = o.grace_period_seconds {
            if g < 0 {
                // Newer kube-apiservers turn a negative grace into 1 (CheckGracefulDelete).
                let mut o2 = o.clone();
                o2.grace_period_seconds = Some(1);
                return Box::pin(self.delete_object(r, ns, name, &o2)).await;
            }
        }
        if r.kind == "Namespace" && IMMORTAL_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(
                r,
                name,
                "this namespace may not be deleted",
            ));
        }
        for _ in 0..RETRIES {
            let key = Self::key(r, ns, name);
            let Some(cur) = self.store.get(&key) else {
                return Err(ApiError::not_found(r, name).with_details(r, name));
            };
            // Preconditions (store.go / rest.Preconditions).
            if let Some(uid) = o.precondition_uid.as_deref() {
                let have = meta_str(&cur.object, "uid");
                if uid != have {
                    return Err(ApiError::conflict(
                        r,
                        name,
                        &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"),
                    ));
                }
            }
            if let Some(rv) = o.precondition_resource_version.as_deref() {
                if parse_rv(rv)? != cur.mod_rev {
                    return Err(ApiError::conflict(
                        r,
                        name,
                        &format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                            cur.mod_rev
                        ),
                    ));
                }
            }
            let gc_finalizers = if r.kind == "Namespace" {
                None
            } else {
                gc::finalizers_for_delete(&cur.object, o, gc::default_orphans(r))
            };
            let plan = plan_delete(r.kind, &cur.object, o, gc_finalizers);
            if o.dry_run {
                return Ok(match plan {
                    Plan::Remove => Deleted::Gone(cur.object),
                    Plan::Mark(m) => Deleted::Pending(Arc::new(m)),
                    Plan::Keep => Deleted::Pending(cur.object),
                });
            }
            let res = match plan {
                Plan::Keep => return Ok(Deleted::Pending(cur.object)),
                Plan::Remove => self
                    .store
                    .commit(Mutation::Delete {
                        key,
                        expect_rev: Some(cur.mod_rev),
                        expect_uid: None,
                    })
                    .await
                    .map(|s| (true, s)),
                Plan::Mark(m) => self
                    .store
                    .commit(Mutation::Update {
                        key,
                        object: m,
                        expect_rev: Some(cur.mod_rev),
                    })
                    .await
                    .map(|s| (false, s)),
            };
            match res {
                Ok((true, s)) => {
                    if r.namespaced {
                        self.quota_usage_changed(ns).await;
                    }
                    self.gc_after_delete(&s.object, true);
                    return Ok(Deleted::Gone(s.object));
                }
                Ok((false, s)) => {
                    self.gc_after_delete(&s.object, false);
                    if r.kind == "Namespace" {
                        // The namespace controller's work, started at once.
                        if let Err(e) = Box::pin(self.reconcile_namespace(name)).await {
                            tracing::warn!("emptying namespace {name}: {e}");
                        }
                    }
                    return Ok(Deleted::Pending(s.object));
                }
                Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => continue,
                Err(e) => return Err(store_error(r, name, e)),
            }
        }
        Err(ApiError::conflict(
            r,
            name,
            "too many concurrent updates; please try again",
        ))
    }

    /// DELETE of a collection: every object the selectors pick, each deleted as one DELETE.
    pub async fn delete_collection(
        &self,
        r: &Resource,
        ns: Option<&str>,
        list: &ListOptions,
        o: &DeleteOptions,
    ) -> Result<Vec<Arc<Value>>, ApiError> {
        let items = self.list(
            r,
            ns,
            &ListOptions {
                limit: None,
                continue_token: None,
                ..list.clone()
            },
        )?;
        let mut out = Vec::new();
        for item in items.items {
            let (ins, iname) = (
                meta_str(&item, "namespace").to_string(),
                meta_str(&item, "name").to_string(),
            );
            match self.delete(r, &ins, &iname, o).await {
                Ok(Deleted::Gone(x) | Deleted::Pending(x)) => out.push(x),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The namespace controller, for every Terminating namespace: deletes its contents
    /// (pods gracefully), and once it is empty removes the `kubernetes` finalizer and the
    /// namespace. The daemon calls it periodically (pods leave as the node finishes them).
    pub async fn reconcile_namespaces(&self) -> Result<(), ApiError> {
        let (namespaces, _) = self.store.list("namespaces", None);
        for n in namespaces {
            if n.object["status"]["phase"] == "Terminating" {
                self.reconcile_namespace(&n.key.name).await?;
            }
        }
        Ok(())
    }

    async fn reconcile_namespace(&self, ns: &str) -> Result<(), ApiError> {
        let mut remaining = 0usize;
        for r in RESOURCES.iter().filter(|r| r.namespaced) {
            let (items, _) = self.store.list(&r.store_key(), Some(ns));
            for s in items {
                remaining += 1;
                if is_deleting(&s.object) {
                    continue;
                }
                // The namespace controller deletes in the background (namespaced_resources_deleter.go).
                let background = DeleteOptions {
                    propagation_policy: Some("Background".into()),
                    ..DeleteOptions::default()
                };
                match self.delete(r, ns, &s.key.name, &background).await {
                    Ok(Deleted::Gone(_)) => remaining -= 1,
                    Ok(Deleted::Pending(_)) => {}
                    Err(e) if e.code == 404 => remaining -= 1,
                    Err(e) => return Err(e),
                }
            }
        }
        if remaining > 0 {
            return Ok(());
        }
        let ns_r = res("namespaces");
        let key = Key::new("namespaces", "", ns);
        let Some(cur) = self.store.get(&key) else {
            return Ok(());
        };
        let mut obj = (*cur.object).clone();
        obj["spec"]["finalizers"] = serde_json::json!([]);
        let res = if finalizers(&obj).is_empty() {
            self.store
                .commit(Mutation::Delete {
                    key,
                    expect_rev: Some(cur.mod_rev),
                    expect_uid: None,
                })
                .await
        } else {
            self.store
                .commit(Mutation::Update {
                    key,
                    object: obj,
                    expect_rev: Some(cur.mod_rev),
                })
                .await
        };
        match res {
            Ok(_) | Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(store_error(ns_r, ns, e)),
        }
    }

    // ---- the node's own writes (the kubelet's status manager and event recorder) ----

    /// The kubelet's `/status` writes for several pods in one store transaction (its status
    /// manager batches): each `(namespace, name, uid, status)` replaces that pod's status if
    /// the pod still exists with that uid; spec and metadata are untouched. A write that
    /// lost a race is redone on the fresh object; an unchanged status writes nothing.
    pub async fn set_pod_statuses(
        &self,
        batch: Vec<(String, String, String, PodStatus)>,
    ) -> Vec<Result<(), ApiError>> {
        let r = res("pods");
        let mut out: Vec<Option<Result<(), ApiError>>> = vec![None; batch.len()];
        let statuses: Vec<Result<Value, ApiError>> = batch
            .iter()
            .map(|(_, _, _, s)| {
                serde_json::to_value(s).map_err(|e| ApiError::internal(e.to_string()))
            })
            .collect();
        let mut todo: Vec<usize> = (0..batch.len()).collect();
        // Namespaces where a pod became terminal: their quota usage drops.
        let mut terminal_in: std::collections::BTreeSet<String> = Default::default();
        for _ in 0..RETRIES {
            let mut muts = Vec::new();
            let mut idx = Vec::new();
            for &i in &todo {
                let (ns, name, uid, _) = &batch[i];
                let status = match &statuses[i] {
                    Ok(s) => s,
                    Err(e) => {
                        out[i] = Some(Err(e.clone()));
                        continue;
                    }
                };
                let key = Key::new("pods", ns, name);
                let Some(cur) = self.store.get(&key) else {
                    out[i] = Some(Err(ApiError::not_found(r, name).with_details(r, name)));
                    continue;
                };
                let have = meta_str(&cur.object, "uid");
                if have != uid {
                    out[i] = Some(Err(ApiError::conflict(
                        r,
                        name,
                        &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"),
                    )));
                    continue;
                }
                if cur.object["status"] == *status {
                    out[i] = Some(Ok(()));
                    continue;
                }
                let mut obj = (*cur.object).clone();
                let old_qos = obj["status"]["qosClass"].clone();
                obj["status"] = status.clone();
                // podStatusStrategy: the QoS class set at creation is backfilled.
                if obj["status"]["qosClass"].as_str().is_none_or(str::is_empty)
                    && old_qos.is_string()
                {
                    obj["status"]["qosClass"] = old_qos;
                }
                if obj == *cur.object {
                    out[i] = Some(Ok(()));
                    continue;
                }
                let terminal = |v: &Value| {
                    matches!(v["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
                };
                if terminal(&obj) && !terminal(&cur.object) {
                    terminal_in.insert(ns.clone());
                }
                muts.push(Mutation::Update {
                    key,
                    object: obj,
                    expect_rev: Some(cur.mod_rev),
                });
                idx.push(i);
            }
            if muts.is_empty() {
                break;
            }
            let results = self.store.commit_many(muts).await;
            let mut again = Vec::new();
            for (i, res) in idx.into_iter().zip(results) {
                match res {
                    Ok(_) => out[i] = Some(Ok(())),
                    Err(StoreError::Conflict { .. }) => again.push(i),
                    Err(e) => out[i] = Some(Err(store_error(r, &batch[i].1, e))),
                }
            }
            if again.is_empty() {
                break;
            }
            todo = again;
        }
        for ns in &terminal_in {
            self.quota_usage_changed(ns).await;
        }
        out.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| Err(ApiError::conflict(r, "", "too many concurrent updates")))
            })
            .collect()
    }

    /// The kubelet's final DELETE of a pod whose containers have all stopped (grace 0,
    /// precondition uid): removes it unless finalizers remain. A pod already gone is fine.
    pub async fn finish_pod_deletion(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
    ) -> Result<(), ApiError> {
        let o = DeleteOptions {
            grace_period_seconds: Some(0),
            precondition_uid: Some(uid.to_string()),
            ..DeleteOptions::default()
        };
        match self.delete(res("pods"), ns, name, &o).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Events the node recorded (the kubelet's event recorder, with its aggregation already
    /// applied: an event with the same name replaces the stored one, i.e. count updates).
    /// One store transaction for the batch.
    pub async fn record_events(&self, events: Vec<Event>) {
        let mut muts = Vec::new();
        for e in events {
            let ns = e
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let name = e.metadata.name.clone().unwrap_or_default();
            if name.is_empty() {
                continue;
            }
            let Ok(mut object) = serde_json::to_value(&e) else {
                continue;
            };
            object["metadata"]["namespace"] = Value::String(ns.clone());
            if let Some(m) = object["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            let key = Key::new("events", &ns, &name);
            match self.store.get(&key) {
                Some(cur) => {
                    object["metadata"]["uid"] = cur.object["metadata"]["uid"].clone();
                    object["metadata"]["creationTimestamp"] =
                        cur.object["metadata"]["creationTimestamp"].clone();
                    muts.push(Mutation::Update {
                        key,
                        object,
                        expect_rev: None,
                    });
                }
                None => {
                    object["metadata"]["uid"] = Value::String(uuid::Uuid::new_v4().to_string());
                    object["metadata"]["creationTimestamp"] = Value::String(strategy::now());
                    muts.push(Mutation::Create { key, object });
                }
            }
        }
        for res in self.store.commit_many(muts).await {
            if let Err(e) = res {
                tracing::warn!("recording an event: {e}");
            }
        }
    }

    /// Deletes the events last written more than `older_than` ago (kube-apiserver's
    /// `--event-ttl`, 1 h: [`EVENT_TTL`]). Returns how many went.
    pub async fn expire_events(&self, older_than: Duration) -> usize {
        let now = strategy::unix_now();
        let cutoff = now - i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX);
        let (events, _) = self.store.list("events", None);
        let mut muts = Vec::new();
        for s in events {
            let o = &s.object;
            let last = [
                o["lastTimestamp"].as_str(),
                o["eventTime"].as_str(),
                o["series"]["lastObservedTime"].as_str(),
                o["metadata"]["creationTimestamp"].as_str(),
            ]
            .into_iter()
            .flatten()
            .filter_map(strategy::parse_time)
            .max();
            if last.is_some_and(|t| t < cutoff) {
                muts.push(Mutation::Delete {
                    key: s.key,
                    expect_rev: Some(s.mod_rev),
                    expect_uid: None,
                });
            }
        }
        self.store
            .commit_many(muts)
            .await
            .into_iter()
            .filter(Result::is_ok)
            .count()
    }
}

/// Where the ServiceAccount admission mounts the token volume.
const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The ServiceAccount admission's `mountServiceAccountToken` (plugin/pkg/admission/
/// serviceaccount/admission.go): unless the pod's, else the account's,
/// `automountServiceAccountToken` is false, every init and regular container without a mount
/// at [`TOKEN_MOUNT_PATH`] gets one of the `kube-api-access-*` projected volume, added once.
fn mount_service_account_token(sa: &Value, pod: &mut Pod) {
    use k8s_openapi::api::core::v1::{Volume, VolumeMount};
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    let automount = spec
        .automount_service_account_token
        .or_else(|| sa["automountServiceAccountToken"].as_bool())
        .unwrap_or(true);
    if !automount {
        return;
    }
    let existing = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name.starts_with("kube-api-access-"))
        .map(|v| v.name.clone());
    let name = existing
        .clone()
        .unwrap_or_else(|| format!("kube-api-access-{}", random_suffix(5)));
    let mount = VolumeMount {
        name: name.clone(),
        read_only: Some(true),
        mount_path: TOKEN_MOUNT_PATH.into(),
        ..VolumeMount::default()
    };
    let mut needed = false;
    let mut add = |mounts: &mut Option<Vec<VolumeMount>>| {
        let m = mounts.get_or_insert_with(Vec::new);
        if !m.iter().any(|v| v.mount_path == TOKEN_MOUNT_PATH) {
            m.push(mount.clone());
            needed = true;
        }
    };
    for c in spec.init_containers.iter_mut().flatten() {
        add(&mut c.volume_mounts);
    }
    for c in &mut spec.containers {
        add(&mut c.volume_mounts);
    }
    if existing.is_none() && needed {
        let volume: Result<Volume, _> = serde_json::from_value(serde_json::json!({
            "name": name,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
            },
        }));
        if let Ok(v) = volume {
            spec.volumes.get_or_insert_with(Vec::new).push(v);
        }
    }
}

/// Recomputes a patched object from the fresh stored one (after a lost race).
type Repatch<'a> = dyn Fn(&Value) -> Result<Value, ApiError> + Send + Sync + 'a;

/// 504 `Too large resource version` (the cacher's answer after its wait; given at once).
fn too_large(n: Rev, current: Rev) -> ApiError {
    let mut e = ApiError::new(
        504,
        "Timeout",
        format!("Timeout: Too large resource version: {n}, current: {current}"),
    );
    e.details = Some(serde_json::json!({
        "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
        "retryAfterSeconds": 1
    }));
    e
}

fn check_subresource(r: &Resource, sub: Option<&str>) -> Result<(), ApiError> {
    match sub {
        None => Ok(()),
        Some("status") if r.subresources.contains(&"status") => Ok(()),
        Some(s) => Err(ApiError::new(
            404,
            "NotFound",
            format!(
                "the server could not find the requested resource ({} {})",
                r.plural, s
            ),
        )),
    }
}

/// What a DELETE does to an object.
enum Plan {
    /// Remove it now.
    Remove,
    /// Store it marked (deletionTimestamp, grace): graceful deletion or finalizers.
    Mark(Value),
    /// Nothing to change (a deletion already pending with no shorter grace).
    Keep,
}

/// `rest.BeforeDelete` with the pod strategy's `CheckGracefulDelete`, the finalizer rules
/// of store.go (`updateForGracefulDeletionAndFinalizers`) and the namespace registry's
/// Delete (phase Terminating first).
///
/// `gc` is the finalizer list after the garbage collector's policy (`orphan`,
/// `foregroundDeletion`) when the DELETE changes it; such a change is not made to a pod whose
/// graceful deletion is already pending (rest.BeforeDelete's `pendingGraceful`).
fn plan_delete(kind: &str, cur: &Value, o: &DeleteOptions, gc: Option<Vec<String>>) -> Plan {
    let base = match &gc {
        Some(list) => {
            let mut m = cur.clone();
            gc::set_finalizers(&mut m, list);
            m
        }
        None => cur.clone(),
    };
    let has_finalizers = !finalizers(&base).is_empty();
    let now = strategy::unix_now();
    let mark = |grace: i64, base: &Value| {
        let mut m = base.clone();
        m["metadata"]["deletionTimestamp"] = Value::String(strategy::at_second(now + grace));
        m["metadata"]["deletionGracePeriodSeconds"] = Value::from(grace);
        if let Some(g) = m["metadata"]["generation"].as_i64().filter(|g| *g > 0) {
            m["metadata"]["generation"] = Value::from(g + 1);
        }
        m
    };
    if kind == "Namespace" {
        if cur["status"]["phase"] != "Terminating" {
            let mut m = mark(0, cur);
            m["status"]["phase"] = Value::String("Terminating".into());
            return Plan::Mark(m);
        }
        let spec_f = cur["spec"]["finalizers"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        return if spec_f || has_finalizers {
            Plan::Keep
        } else {
            Plan::Remove
        };
    }
    if is_deleting(cur) {
        // Only a shorter grace period may be given; with none, the deletion is pending.
        let existing = cur["metadata"]["deletionGracePeriodSeconds"].as_i64();
        let Some(existing) = existing.filter(|g| *g > 0) else {
            return match (has_finalizers, gc.is_some()) {
                (true, true) => Plan::Mark(base),
                (true, false) => Plan::Keep,
                (false, _) => Plan::Remove,
            };
        };
        let Some(period) = o.grace_period_seconds.filter(|p| *p < existing) else {
            return Plan::Keep;
        };
        if period == 0 && !has_finalizers {
            return Plan::Remove;
        }
        let ts = cur["metadata"]["deletionTimestamp"]
            .as_str()
            .and_then(strategy::parse_time)
            .unwrap_or(now + existing);
        let mut m = base.clone();
        m["metadata"]["deletionTimestamp"] =
            Value::String(strategy::at_second(ts - existing + period));
        m["metadata"]["deletionGracePeriodSeconds"] = Value::from(period);
        return Plan::Mark(m);
    }
    let grace = if kind == "Pod" {
        // CheckGracefulDelete.
        let mut period = o
            .grace_period_seconds
            .or_else(|| cur["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(0);
        if cur["spec"]["nodeName"].as_str().unwrap_or("").is_empty() {
            period = 0;
        }
        let phase = cur["status"]["phase"].as_str().unwrap_or("");
        if phase == "Succeeded" || phase == "Failed" {
            period = 0;
        }
        if period < 0 {
            period = 1;
        }
        period
    } else {
        0
    };
    if grace > 0 {
        return Plan::Mark(mark(grace, &base));
    }
    if has_finalizers {
        // markAsDeleting: deletionTimestamp now, grace 0.
        return Plan::Mark(mark(0, &base));
    }
    Plan::Remove
}

#[cfg(test)]
mod tests;
