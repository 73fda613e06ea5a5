//! The registry: what kube-apiserver's generic store and per-kind strategies do between the
//! HTTP layer and the revision log. Defaulting and validation (skiff-model), create/update/
//! delete/patch rules, graceful pod deletion, finalizers, pod update rules, admission,
//! selectors, list and watch at revisions. No HTTP here: the `http` module maps requests to
//! these calls and [`ApiError`]s to Status objects; the daemon calls the node-side writes
//! (`set_pod_statuses`, `finish_pod_deletion`, `record_events`) in process.
//!
//! SKELETON (session 6 lead): the signatures are the contract between `http`, the daemon and
//! this module; the bodies are naive placeholders the registry work replaces.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, PodStatus};
use serde_json::Value;

use crate::node::NodeBackend;
use crate::store::{Key, Mutation, Rev, Store, StoreError, WatchItem};

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
        subresources: &["status", "log"],
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

/// The kind of a PATCH, from its Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

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

/// A running watch; dropping it ends it.
pub struct ApiWatch {
    inner: crate::store::Watch,
}

impl ApiWatch {
    /// The next event; `None` at the end of the stream (a cut-off watcher gets an ERROR 410
    /// first).
    pub async fn next(&mut self) -> Option<ApiWatchEvent> {
        match self.inner.next().await? {
            WatchItem::Event(e) => Some(ApiWatchEvent {
                type_: match e.kind {
                    crate::store::EventType::Added => "ADDED",
                    crate::store::EventType::Modified => "MODIFIED",
                    crate::store::EventType::Deleted => "DELETED",
                },
                object: e.object,
            }),
            WatchItem::Lagged => None,
        }
    }
}

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
}

fn store_error(r: &Resource, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(_) => ApiError::not_found(r, name),
        StoreError::AlreadyExists(_) => ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", r.plural),
        ),
        StoreError::Conflict { .. } => ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                r.plural
            ),
        ),
        StoreError::Expired { .. } => ApiError::new(410, "Expired", e.to_string()),
        other => ApiError::new(500, "InternalError", other.to_string()),
    }
}

impl Api {
    /// The API over `store` for `node`: creates what a fresh cluster has (the namespaces
    /// default, kube-system, kube-public, kube-node-lease; a `default` ServiceAccount in each;
    /// the Node object) when missing.
    pub async fn open(store: Store, node: Arc<dyn NodeBackend>) -> Result<Api, ApiError> {
        Ok(Api { store, node })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn node(&self) -> &Arc<dyn NodeBackend> {
        &self.node
    }

    pub fn get(&self, r: &Resource, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        self.store
            .get(&Key::new(&r.store_key(), ns, name))
            .map(|s| s.object)
            .ok_or_else(|| ApiError::not_found(r, name))
    }

    pub fn list(
        &self,
        r: &Resource,
        ns: Option<&str>,
        _o: &ListOptions,
    ) -> Result<ListResult, ApiError> {
        let (items, rev) = self.store.list(&r.store_key(), ns);
        Ok(ListResult {
            items: items.into_iter().map(|s| s.object).collect(),
            resource_version: rev,
            continue_token: None,
        })
    }

    pub async fn create(
        &self,
        r: &Resource,
        ns: &str,
        body: &[u8],
        _format: BodyFormat,
        _o: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let mut object: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::new(400, "BadRequest", e.to_string()))?;
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        object["metadata"]["uid"] = Value::String(uuid::Uuid::new_v4().to_string());
        if r.namespaced {
            object["metadata"]["namespace"] = Value::String(ns.to_string());
        }
        let s = self
            .store
            .commit(Mutation::Create {
                key: Key::new(&r.store_key(), ns, &name),
                object,
            })
            .await
            .map_err(|e| store_error(r, &name, e))?;
        Ok(Written {
            object: s.object,
            created: true,
            warnings: Vec::new(),
        })
    }

    /// PUT of the object (`subresource` None) or of its `status`.
    pub async fn update(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        _subresource: Option<&str>,
        body: &[u8],
        _format: BodyFormat,
        _o: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let object: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::new(400, "BadRequest", e.to_string()))?;
        let s = self
            .store
            .commit(Mutation::Update {
                key: Key::new(&r.store_key(), ns, name),
                object,
                expect_rev: None,
            })
            .await
            .map_err(|e| store_error(r, name, e))?;
        Ok(Written {
            object: s.object,
            created: false,
            warnings: Vec::new(),
        })
    }

    #[allow(clippy::too_many_arguments)] // the request's parts
    pub async fn patch(
        &self,
        r: &Resource,
        _ns: &str,
        name: &str,
        _subresource: Option<&str>,
        _patch_type: PatchType,
        _body: &[u8],
        _o: &WriteOptions,
    ) -> Result<Written, ApiError> {
        Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("patch of {} \"{name}\" is not implemented yet", r.plural),
        ))
    }

    pub async fn delete(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        _o: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let s = self
            .store
            .commit(Mutation::Delete {
                key: Key::new(&r.store_key(), ns, name),
                expect_rev: None,
                expect_uid: None,
            })
            .await
            .map_err(|e| store_error(r, name, e))?;
        Ok(Deleted::Gone(s.object))
    }

    pub fn watch(
        &self,
        r: &Resource,
        ns: Option<&str>,
        o: &WatchOptions,
    ) -> Result<ApiWatch, ApiError> {
        let from = o
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| self.store.current_rev());
        let inner = self
            .store
            .watch(&r.store_key(), ns, from)
            .map_err(|e| store_error(r, "", e))?;
        Ok(ApiWatch { inner })
    }

    // ---- the node's own writes (the kubelet's status manager and event recorder) ----

    /// The kubelet's `/status` writes for several pods in one store transaction (its status
    /// manager batches): each `(namespace, name, uid, status)` replaces that pod's status if
    /// the pod still exists with that uid; spec and metadata are untouched.
    pub async fn set_pod_statuses(
        &self,
        batch: Vec<(String, String, String, PodStatus)>,
    ) -> Vec<Result<(), ApiError>> {
        let mut out = Vec::new();
        for (ns, name, _uid, status) in batch {
            let r = RESOURCES.first();
            let key = Key::new("pods", &ns, &name);
            let Some(cur) = self.store.get(&key) else {
                out.push(Err(ApiError::new(404, "NotFound", "pod gone")));
                continue;
            };
            let mut obj = (*cur.object).clone();
            obj["status"] = serde_json::to_value(status).unwrap_or(Value::Null);
            let res = self
                .store
                .commit(Mutation::Update {
                    key,
                    object: obj,
                    expect_rev: Some(cur.mod_rev),
                })
                .await;
            out.push(match (res, r) {
                (Ok(_), _) => Ok(()),
                (Err(e), Some(r)) => Err(store_error(r, &name, e)),
                (Err(e), None) => Err(ApiError::new(500, "InternalError", e.to_string())),
            });
        }
        out
    }

    /// The kubelet's final DELETE of a pod whose containers have all stopped (grace 0,
    /// precondition uid): removes it unless finalizers remain.
    pub async fn finish_pod_deletion(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
    ) -> Result<(), ApiError> {
        self.store
            .commit(Mutation::Delete {
                key: Key::new("pods", ns, name),
                expect_rev: None,
                expect_uid: Some(uid.to_string()),
            })
            .await
            .map(|_| ())
            .map_err(|e| ApiError::new(409, "Conflict", e.to_string()))
    }

    /// Events the node recorded (the kubelet's event recorder, with its aggregation already
    /// applied: an event with the same name replaces the stored one, i.e. count updates).
    pub async fn record_events(&self, events: Vec<Event>) {
        for e in events {
            let ns = e.metadata.namespace.clone().unwrap_or_default();
            let name = e.metadata.name.clone().unwrap_or_default();
            let Ok(object) = serde_json::to_value(&e) else {
                continue;
            };
            let key = Key::new("events", &ns, &name);
            let m = if self.store.get(&key).is_some() {
                Mutation::Update {
                    key,
                    object,
                    expect_rev: None,
                }
            } else {
                Mutation::Create { key, object }
            };
            if let Err(e) = self.store.commit(m).await {
                tracing::warn!("recording an event: {e}");
            }
        }
    }
}
