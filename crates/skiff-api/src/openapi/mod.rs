//! The OpenAPI documents kubectl reads: `/openapi/v3` (the index of group-version documents)
//! and one document per served group-version — `/openapi/v3/api/v1`, `/openapi/v3/apis/apps/v1`,
//! `/openapi/v3/apis/batch/v1` — with their kinds' schemas (`kubectl explain`, the
//! `fieldValidation` parameter kubectl looks for before it sends `fieldValidation=Strict`, and
//! the `x-kubernetes-patch-*` extensions that strategic merge patch walks). Schema names are
//! global (`io.k8s.api.<group>.<version>.<Kind>`), so lookups by kind and `$ref` resolution use
//! the union of the documents; the v2 document is made from that union.
//!
//! Where the data comes from: the component schemas are generated once, lazily, from the
//! `schemars` implementations of the k8s-openapi types skiff is built on (k8s-openapi is itself
//! generated from the upstream OpenAPI spec, so names, descriptions, types and `$ref`s are the
//! upstream ones; the `openapi3` settings give upstream's `allOf: [{$ref}]` shape for
//! described references). Three things the Rust types cannot carry are added here:
//! * `x-kubernetes-group-version-kind` on the top-level kinds (kubectl explain finds a kind's
//!   schema by it);
//! * the strategic-merge-patch metadata ([`PATCH_META`]): the `patchStrategy` /
//!   `patchMergeKey` struct tags of k8s.io/api `core/v1/types.go` and k8s.io/apimachinery
//!   `meta/v1/types.go` (identical from v1.33 to v1.36), which the upstream document carries as
//!   `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key`;
//! * `paths`: one collection and one item path per served resource with the operations, their
//!   GVK and their query parameters.
//!
//! Why generated rather than the upstream `api__v1_openapi.json` embedded: that file (1.8 MB)
//! would be copied material from another repository in this one; the types crate is already a
//! dependency, always matches the decoder, and the document here is limited to what skiff
//! serves.

pub mod v2;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The `components.schemas` prefix of a `$ref`.
pub const REF_PREFIX: &str = "#/components/schemas/";

/// One resource a group-version document describes.
struct Served {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
}

impl Served {
    /// The schema name of the kind (`io.k8s.api.apps.v1.Deployment`).
    fn schema(&self) -> String {
        format!("{}.{}", schema_prefix(self.group, self.version), self.kind)
    }
}

/// `io.k8s.api.<group>.<version>` (`core` for the legacy group).
fn schema_prefix(group: &str, version: &str) -> String {
    let g = if group.is_empty() { "core" } else { group };
    format!("io.k8s.api.{g}.{version}")
}

const fn served(
    group: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> Served {
    Served {
        group,
        version: "v1",
        plural,
        kind,
        namespaced,
    }
}

/// The resources skiff serves (issue 11: the core kinds; issue 12: the workload and policy
/// kinds): their schemas, list schemas and paths are in their group-version's document.
const SERVED: &[Served] = &[
    served("", "pods", "Pod", true),
    served("", "namespaces", "Namespace", false),
    served("", "configmaps", "ConfigMap", true),
    served("", "secrets", "Secret", true),
    served("", "serviceaccounts", "ServiceAccount", true),
    served("", "events", "Event", true),
    served("", "nodes", "Node", false),
    served("", "limitranges", "LimitRange", true),
    served("", "resourcequotas", "ResourceQuota", true),
    served("apps", "deployments", "Deployment", true),
    served("apps", "replicasets", "ReplicaSet", true),
    served("batch", "jobs", "Job", true),
    served("batch", "cronjobs", "CronJob", true),
];

/// The group-version documents: (`/openapi/v3/<path>`, group, version).
const GROUP_VERSIONS: &[(&str, &str, &str)] = &[
    ("api/v1", "", "v1"),
    ("apis/apps/v1", "apps", "v1"),
    ("apis/batch/v1", "batch", "v1"),
];

/// Strategic-merge-patch metadata of list fields: (schema, field, `x-kubernetes-patch-strategy`,
/// `x-kubernetes-patch-merge-key`). Read from the `patchStrategy`/`patchMergeKey` struct tags
/// of k8s.io/api v0.33.1 `core/v1/types.go` and k8s.io/apimachinery `pkg/apis/meta/v1/types.go`
/// (facts, not code). A list field absent here is atomic: a patch replaces it (tolerations,
/// readinessGates, command, args, envFrom, resizePolicy, …).
pub const PATCH_META: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "io.k8s.api.core.v1.PodSpec",
        "volumes",
        "merge,retainKeys",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "initContainers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "containers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "imagePullSecrets",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "hostAliases",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        "merge",
        Some("topologyKey"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "schedulingGates",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "resourceClaims",
        "merge,retainKeys",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        "merge",
        Some("containerPort"),
    ),
    ("io.k8s.api.core.v1.Container", "env", "merge", Some("name")),
    (
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        "merge",
        Some("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        "merge",
        Some("devicePath"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        "merge",
        Some("containerPort"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "env",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        "merge",
        Some("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        "merge",
        Some("devicePath"),
    ),
    (
        "io.k8s.api.core.v1.ContainerStatus",
        "volumeMounts",
        "merge",
        Some("mountPath"),
    ),
    (
        "io.k8s.api.core.v1.ContainerStatus",
        "allocatedResourcesStatus",
        "merge",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "hostIPs",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "podIPs",
        "merge",
        Some("ip"),
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "resourceClaimStatuses",
        "merge,retainKeys",
        Some("name"),
    ),
    (
        "io.k8s.api.core.v1.ServiceAccount",
        "secrets",
        "merge",
        Some("name"),
    ),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", "merge", None),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        "addresses",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        "merge",
        None,
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "merge",
        Some("uid"),
    ),
    // k8s.io/api apps/v1 and batch/v1 types.go (issue 12's kinds).
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        "strategy",
        "retainKeys",
        None,
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
    (
        "io.k8s.api.batch.v1.JobStatus",
        "conditions",
        "merge",
        Some("type"),
    ),
];

/// Server-side apply's list metadata where it differs from [`PATCH_META`] (the `+listType` /
/// `+listMapKey` markers of the same types.go files): `x-kubernetes-list-type` and
/// `x-kubernetes-list-map-keys`. Lists with patch metadata and no entry here are keyed by their
/// patch merge key, as kube-openapi's schema conversion does.
pub const LIST_META: &[(&str, &str, &str, &[&str])] = &[
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        "map",
        &["containerPort", "protocol"],
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        "map",
        &["containerPort", "protocol"],
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        "map",
        &["topologyKey", "whenUnsatisfiable"],
    ),
    (
        "io.k8s.api.core.v1.ResourceRequirements",
        "claims",
        "map",
        &["name"],
    ),
    (
        "io.k8s.api.core.v1.ResourceStatus",
        "resources",
        "map",
        &["resourceID"],
    ),
    ("io.k8s.api.core.v1.PodStatus", "hostIPs", "atomic", &[]),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        "set",
        &[],
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        "map",
        &["type"],
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        "map",
        &["type"],
    ),
    ("io.k8s.api.batch.v1.JobStatus", "conditions", "atomic", &[]),
    ("io.k8s.api.batch.v1.CronJobStatus", "active", "atomic", &[]),
    (
        "io.k8s.api.batch.v1.PodFailurePolicy",
        "rules",
        "atomic",
        &[],
    ),
    ("io.k8s.api.batch.v1.SuccessPolicy", "rules", "atomic", &[]),
    (
        "io.k8s.api.batch.v1.UncountedTerminatedPods",
        "succeeded",
        "set",
        &[],
    ),
    (
        "io.k8s.api.batch.v1.UncountedTerminatedPods",
        "failed",
        "set",
        &[],
    ),
];

/// Schema defaults of list map keys (upstream documents them; server-side apply fills a missing
/// key field with its default, so `ports` items are `k:{"containerPort":80,"protocol":"TCP"}`).
const KEY_DEFAULTS: &[(&str, &str, &str)] =
    &[("io.k8s.api.core.v1.ContainerPort", "protocol", "TCP")];

/// One generated group-version document, its serialized bytes and their hash.
struct Doc {
    path: &'static str,
    doc: Value,
    bytes: bytes::Bytes,
    hash: String,
}

/// Every document, and what is looked up across them.
struct Docs {
    docs: Vec<Doc>,
    /// kind → schema name, for the kinds that carry `x-kubernetes-group-version-kind`.
    kinds: BTreeMap<String, String>,
    /// Every document's schemas (names are global: `io.k8s.api.<group>.<version>.<Kind>`).
    schemas: Value,
    /// One document with every path and schema (the v2 document is made from it).
    merged: Value,
}

static DOCS: LazyLock<Docs> = LazyLock::new(|| {
    let mut docs = Vec::new();
    let mut kinds = BTreeMap::new();
    let mut schemas = Map::new();
    let mut paths = Map::new();
    for (path, group, version) in GROUP_VERSIONS {
        let doc = build_doc(group, version);
        // Serializing a Value of strings, numbers and maps cannot fail; an empty document
        // would only make kubectl fall back to --validate=false advice, never crash the server.
        let bytes = serde_json::to_vec(&doc).unwrap_or_default();
        let hash = hex(&Sha256::digest(&bytes));
        if let Some(m) = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
        {
            for (name, s) in m {
                if let Some(gvks) = s
                    .get("x-kubernetes-group-version-kind")
                    .and_then(Value::as_array)
                {
                    for g in gvks {
                        let core_meta = g["group"] == "" && g["version"] == "v1";
                        let own = g["group"] == *group || g["group"] == "autoscaling";
                        if core_meta || own {
                            if let Some(k) = g["kind"].as_str() {
                                kinds.entry(k.to_string()).or_insert_with(|| name.clone());
                            }
                        }
                    }
                }
                schemas.entry(name.clone()).or_insert_with(|| s.clone());
            }
        }
        if let Some(m) = doc.get("paths").and_then(Value::as_object) {
            paths.extend(m.clone());
        }
        docs.push(Doc {
            path,
            doc,
            bytes: bytes::Bytes::from(bytes),
            hash,
        });
    }
    let schemas = Value::Object(schemas);
    let merged = json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": Value::Object(paths),
        "components": {"schemas": schemas.clone()},
    });
    Docs {
        docs,
        kinds,
        schemas,
        merged,
    }
});

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn doc_at(path: &str) -> Option<&'static Doc> {
    DOCS.docs.iter().find(|d| d.path == path)
}

/// `GET /openapi/v3`: `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=…"}, …}}`.
pub fn v3_index() -> Value {
    let mut paths = Map::new();
    for d in &DOCS.docs {
        paths.insert(
            d.path.to_string(),
            json!({"serverRelativeURL": format!("/openapi/v3/{}?hash={}", d.path, d.hash.to_uppercase())}),
        );
    }
    json!({ "paths": paths })
}

/// The hash of a group-version document (its ETag; kubectl caches by it): the sha256 of its
/// bytes, upper-case hex like kube-apiserver's.
pub fn v3_hash(path: &str) -> Option<String> {
    doc_at(path).map(|d| d.hash.to_uppercase())
}

/// `GET /openapi/v3/<path>` (`api/v1`, `apis/batch/v1`, …): the JSON document, or None (404).
pub fn v3_document(path: &str) -> Option<bytes::Bytes> {
    doc_at(path).map(|d| d.bytes.clone())
}

/// The `api/v1` document as a value.
pub fn core_v1() -> &'static Value {
    &DOCS.docs[0].doc
}

/// Every group-version's paths and schemas in one document (the v2 document's source).
pub fn all_groups() -> &'static Value {
    &DOCS.merged
}

/// The schema of a served `kind` (`Pod`, `Deployment`, `Job`, `Scale`, …), found by its
/// `x-kubernetes-group-version-kind` as kubectl finds it.
pub fn schema_for_kind(kind: &str) -> Option<&'static Value> {
    let name = DOCS.kinds.get(kind)?;
    DOCS.schemas.get(name)
}

/// Follows `$ref` and single-element `allOf` (upstream's shape for a described reference) to
/// the schema that has the properties. Bounded: a reference cycle ends the walk.
pub fn resolve(mut schema: &'static Value) -> &'static Value {
    for _ in 0..16 {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            match r.strip_prefix(REF_PREFIX).and_then(|n| DOCS.schemas.get(n)) {
                Some(s) => schema = s,
                None => return schema,
            }
        } else if let Some([one]) = schema
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            schema = one;
        } else {
            return schema;
        }
    }
    schema
}

/// Generates the `api/v1` document.
#[cfg(test)]
fn build_core_v1() -> Value {
    build_doc("", "v1")
}

/// Generates the document of a group-version (`""`/`v1`, `apps`/`v1`, `batch`/`v1`).
fn build_doc(group: &str, version: &str) -> Value {
    let mut gen = SchemaSettings::openapi3().into_generator();
    // Each call adds the type and everything it references to the generator's definitions.
    match group {
        "" => {
            gen.subschema_for::<core::Pod>();
            gen.subschema_for::<core::Namespace>();
            gen.subschema_for::<core::ConfigMap>();
            gen.subschema_for::<core::Secret>();
            gen.subschema_for::<core::ServiceAccount>();
            gen.subschema_for::<core::Event>();
            gen.subschema_for::<core::Node>();
            gen.subschema_for::<core::Binding>();
            gen.subschema_for::<core::LimitRange>();
            gen.subschema_for::<core::ResourceQuota>();
        }
        "apps" => {
            gen.subschema_for::<k8s_openapi::api::apps::v1::Deployment>();
            gen.subschema_for::<k8s_openapi::api::apps::v1::ReplicaSet>();
            // The `/scale` subresource's kind.
            gen.subschema_for::<k8s_openapi::api::autoscaling::v1::Scale>();
        }
        "batch" => {
            gen.subschema_for::<k8s_openapi::api::batch::v1::Job>();
            gen.subschema_for::<k8s_openapi::api::batch::v1::CronJob>();
        }
        _ => {}
    }
    gen.subschema_for::<meta::Status>();
    gen.subschema_for::<meta::DeleteOptions>();
    gen.subschema_for::<meta::WatchEvent<core::Pod>>();
    gen.subschema_for::<meta::Patch>();
    let mut schemas = gen.take_definitions(true);

    let mine = || {
        SERVED
            .iter()
            .filter(move |s| s.group == group && s.version == version)
    };
    // The list kinds (k8s-openapi has one generic List type without a schema).
    for s in mine() {
        let item = s.schema();
        let list = format!("{item}List");
        schemas.insert(
            list,
            json!({
                "description": format!("{}List is a list of {} objects.", s.kind, s.kind),
                "properties": {
                    "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"},
                    "items": {"description": format!("List of {}.", s.plural), "items": {"allOf": [{"$ref": format!("{REF_PREFIX}{item}")}], "default": {}}, "type": "array"},
                    "kind": {"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"},
                    "metadata": {"allOf": [{"$ref": format!("{REF_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")}], "default": {}, "description": "Standard list metadata."}
                },
                "required": ["items"],
                "type": "object",
            }),
        );
    }

    // Top-level kinds carry their GVK (upstream: a list of GVKs).
    let gvk = |k: &str| json!([{"group": "", "kind": k, "version": "v1"}]);
    for s in mine() {
        for k in [s.kind.to_string(), format!("{}List", s.kind)] {
            let name = format!("{}.{k}", schema_prefix(s.group, s.version));
            if let Some(Value::Object(o)) = schemas.get_mut(&name) {
                o.insert(
                    "x-kubernetes-group-version-kind".into(),
                    json!([{"group": s.group, "kind": k, "version": s.version}]),
                );
            }
        }
    }
    if let Some(Value::Object(o)) = schemas.get_mut("io.k8s.api.autoscaling.v1.Scale") {
        o.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": "autoscaling", "kind": "Scale", "version": "v1"}]),
        );
    }
    for (name, k) in [
        ("io.k8s.api.core.v1.Binding", "Binding"),
        ("io.k8s.apimachinery.pkg.apis.meta.v1.Status", "Status"),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            "DeleteOptions",
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
            "WatchEvent",
        ),
    ] {
        if let Some(Value::Object(o)) = schemas.get_mut(name) {
            o.insert("x-kubernetes-group-version-kind".into(), gvk(k));
        }
    }

    // Strategic merge patch metadata.
    for (schema, field, strategy, key) in PATCH_META {
        if let Some(Value::Object(p)) = schemas
            .get_mut(*schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{field}")))
        {
            p.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
            if let Some(key) = key {
                p.insert("x-kubernetes-patch-merge-key".into(), json!(key));
            }
        }
    }

    for (schema, field, list_type, keys) in LIST_META {
        if let Some(Value::Object(p)) = schemas
            .get_mut(*schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{field}")))
        {
            p.insert("x-kubernetes-list-type".into(), json!(list_type));
            if !keys.is_empty() {
                p.insert("x-kubernetes-list-map-keys".into(), json!(keys));
            }
        }
    }
    for (schema, field, default) in KEY_DEFAULTS {
        if let Some(Value::Object(p)) = schemas
            .get_mut(*schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{field}")))
        {
            p.insert("default".into(), json!(default));
        }
    }

    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": Value::Object(paths(group, version)),
        "components": {"schemas": Value::Object(schemas)},
    })
}

/// The verb of an operationId (`readCoreV1NamespacedPod`) for an `x-kubernetes-action`.
fn op_verb(action: &str) -> &str {
    match action {
        "get" => "read",
        "post" => "create",
        "put" => "replace",
        "deletecollection" => "delete",
        other => other,
    }
}

/// A query parameter (kubectl's queryParamVerifierV3 looks for `fieldValidation` among the
/// PATCH operation's parameters).
fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"description": description, "in": "query", "name": name, "schema": {"type": ty, "uniqueItems": true}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"description": description, "in": "path", "name": name, "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

/// A response body of schema `name` in the content types the server answers.
fn body(name: &str) -> Value {
    let s = json!({"schema": {"$ref": format!("{REF_PREFIX}{name}")}});
    json!({"application/json": s, "application/yaml": s})
}

/// The paths of the served resources: for each, the collection (list, create, delete
/// collection) and the item (read, replace, patch, delete), with `x-kubernetes-action` and
/// `x-kubernetes-group-version-kind` as upstream has them.
fn paths(group: &str, version: &str) -> Map<String, Value> {
    // `CoreV1`, `AppsV1`, `BatchV1` in operation ids; `core_v1`, `apps_v1` as tags.
    let camel = |s: &str| {
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
            .unwrap_or_default()
    };
    let g = if group.is_empty() { "core" } else { group };
    let gv_camel = format!("{}{}", camel(g), camel(version));
    let tag = format!("{g}_{version}");
    let root = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let dry_run = query(
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. Valid values: All.",
    );
    let field_manager = query("fieldManager", "string", "A name associated with the actor or entity that is making these changes. Required for apply patches.");
    let field_validation = query("fieldValidation", "string", "How the server handles unknown or duplicate fields in the request: Ignore, Warn (the default) or Strict.");
    let force = query(
        "force",
        "boolean",
        "Force is going to \"force\" Apply requests. Must be unset for non-apply patch requests.",
    );
    let pretty = query(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed.",
    );
    let list_params = [
        ("allowWatchBookmarks", "boolean"),
        ("continue", "string"),
        ("fieldSelector", "string"),
        ("labelSelector", "string"),
        ("limit", "integer"),
        ("resourceVersion", "string"),
        ("resourceVersionMatch", "string"),
        ("sendInitialEvents", "boolean"),
        ("timeoutSeconds", "integer"),
        ("watch", "boolean"),
    ]
    .map(|(n, t)| query(n, t, &format!("The list option {n}.")));

    let mut out = Map::new();
    for s in SERVED
        .iter()
        .filter(|s| s.group == group && s.version == version)
    {
        let kind = s.kind;
        let item = s.schema();
        let list = format!("{item}List");
        let gvk = json!({"group": s.group, "kind": kind, "version": s.version});
        let op = |action: &str, id: &str, params: Vec<Value>, ok: &str| {
            let mut o = json!({
                "operationId": format!("{}{gv_camel}{id}{}{kind}", op_verb(action), if s.namespaced { "Namespaced" } else { "" }),
                "parameters": params,
                "responses": {"200": {"content": body(ok), "description": "OK"}, "401": {"description": "Unauthorized"}},
                "tags": [tag],
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            });
            if matches!(action, "post" | "put") {
                o["requestBody"] = json!({"content": {"*/*": {"schema": {"$ref": format!("{REF_PREFIX}{item}")}}}, "required": true});
            }
            if action == "patch" {
                let p = json!({"schema": {"$ref": format!("{REF_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.Patch")}});
                o["requestBody"] = json!({"content": {
                    "application/apply-patch+yaml": p, "application/json-patch+json": p,
                    "application/merge-patch+json": p, "application/strategic-merge-patch+json": p,
                }, "required": true});
            }
            if action == "delete" || action == "deletecollection" {
                o["requestBody"] = json!({"content": {"*/*": {"schema": {"$ref": format!("{REF_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")}}}});
            }
            o
        };
        let write = vec![
            dry_run.clone(),
            field_manager.clone(),
            field_validation.clone(),
        ];
        let mut patch_params = write.clone();
        patch_params.push(force.clone());
        let delete_params = vec![
            dry_run.clone(),
            query(
                "gracePeriodSeconds",
                "integer",
                "The duration in seconds before the object should be deleted.",
            ),
            query(
                "propagationPolicy",
                "string",
                "Whether and how garbage collection will be performed.",
            ),
        ];

        let (collection, base_params) = if s.namespaced {
            (
                format!("{root}/namespaces/{{namespace}}/{}", s.plural),
                vec![
                    path_param(
                        "namespace",
                        "object name and auth scope, such as for teams and projects",
                    ),
                    pretty.clone(),
                ],
            )
        } else {
            (format!("{root}/{}", s.plural), vec![pretty.clone()])
        };
        let mut c = Map::new();
        c.insert("get".into(), op("list", "", list_params.to_vec(), &list));
        c.insert("post".into(), op("post", "", write.clone(), &item));
        c.insert(
            "delete".into(),
            op(
                "deletecollection",
                "Collection",
                [delete_params.clone(), list_params.to_vec()].concat(),
                "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
            ),
        );
        c.insert("parameters".into(), Value::Array(base_params.clone()));
        out.insert(collection.clone(), Value::Object(c));

        let mut i = Map::new();
        i.insert("get".into(), op("get", "", vec![], &item));
        i.insert("put".into(), op("put", "", write.clone(), &item));
        i.insert("patch".into(), op("patch", "", patch_params, &item));
        i.insert("delete".into(), op("delete", "", delete_params, &item));
        let mut ip = vec![path_param("name", &format!("name of the {kind}"))];
        ip.extend(base_params);
        i.insert("parameters".into(), Value::Array(ip));
        out.insert(format!("{collection}/{{name}}"), Value::Object(i));
    }
    out
}

#[cfg(test)]
mod tests;
