//! The strategies of the workload and policy kinds (issue 12): batch/v1 Job and CronJob,
//! apps/v1 Deployment and ReplicaSet (pkg/registry/{batch,apps}/*/strategy.go), core/v1
//! LimitRange and ResourceQuota (pkg/registry/core/{limitrange,resourcequota}/strategy.go),
//! and the `/scale` subresource of Deployments and ReplicaSets (autoscaling/v1 `Scale`,
//! pkg/registry/apps/{deployment,replicaset}/storage ScaleREST).
//!
//! What each strategy does:
//! * create: the kind's defaulting (done at decoding upstream), the status reset, generation 1,
//!   validation. A Job also gets its uid before validation (the storage sets it in
//!   `BeforeCreate`) so that its generated selector
//!   (`batch.kubernetes.io/controller-uid=<uid>`) can be written.
//! * update of the object: the stored status kept, defaulting of the incoming object, the
//!   update validation, generation bumped when the spec changed (Deployments: or the
//!   annotations, for the rollback annotation).
//! * update of `/status`: the stored spec kept (Deployments: and labels), no generation change.
//!
//! The defaulting and validation bodies live in `skiff_model::workloads` and
//! `skiff_model::validation::policy`; this module is the plumbing between them and the store.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use skiff_model::field::{ErrorList, FieldError, Path};
use skiff_model::validation::policy;
use skiff_model::workloads::{apps, cronjob, job};

use super::{
    decode, meta_str, parse_rv, strategy, Api, ApiError, BodyFormat, PatchType, Resource,
    WriteOptions, Written,
};

/// The kinds this module prepares.
pub(crate) const KINDS: &[&str] = &[
    "Job",
    "CronJob",
    "Deployment",
    "ReplicaSet",
    "LimitRange",
    "ResourceQuota",
];

/// Whether `kind`'s create and update go through this module.
pub(crate) fn handles(kind: &str) -> bool {
    KINDS.contains(&kind)
}

fn typed<T: DeserializeOwned>(v: &Value) -> Result<T, ApiError> {
    // Bodies were decoded through the same types, so this only fails on a broken store.
    serde_json::from_value(v.clone())
        .map_err(|e| ApiError::new(500, "InternalError", e.to_string()))
}

fn untyped<T: Serialize>(t: &T) -> Result<Value, ApiError> {
    serde_json::to_value(t).map_err(|e| ApiError::new(500, "InternalError", e.to_string()))
}

/// PrepareForCreate, defaulting and Validate of `kind` (one of [`KINDS`]).
pub(crate) fn prepare_create(kind: &str, obj: &mut Value) -> Result<ErrorList, ApiError> {
    let errs = match kind {
        "Job" => {
            let mut j: Job = typed(obj)?;
            job::default_job(&mut j);
            job::prepare_for_create(&mut j);
            // BeforeCreate's uid, needed by the generated selector; the registry stores it
            // as given.
            if j.metadata.uid.as_deref().unwrap_or("").is_empty() {
                j.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
            }
            job::generate_selector(&mut j);
            let errs = job::validate_job(&j);
            *obj = untyped(&j)?;
            errs
        }
        "CronJob" => {
            let mut c: CronJob = typed(obj)?;
            cronjob::default_cron_job(&mut c);
            c.status = None;
            c.metadata.generation = Some(1);
            let errs = cronjob::validate_cron_job(&c);
            *obj = untyped(&c)?;
            errs
        }
        "Deployment" => {
            let mut d: Deployment = typed(obj)?;
            apps::default_deployment(&mut d);
            d.status = None;
            d.metadata.generation = Some(1);
            let errs = apps::validate_deployment(&d);
            *obj = untyped(&d)?;
            errs
        }
        "ReplicaSet" => {
            let mut rs: ReplicaSet = typed(obj)?;
            apps::default_replica_set(&mut rs);
            rs.status = None;
            rs.metadata.generation = Some(1);
            let errs = apps::validate_replica_set(&rs);
            *obj = untyped(&rs)?;
            errs
        }
        "LimitRange" => {
            // Upstream defaults each item at decoding (SetDefaults_LimitRangeItem).
            let mut lr: LimitRange = typed(obj)?;
            skiff_model::policy::limit_range::default_limit_range(&mut lr);
            let errs = policy::validate_limit_range(&lr);
            *obj = untyped(&lr)?;
            errs
        }
        "ResourceQuota" => {
            let mut q: ResourceQuota = typed(obj)?;
            q.status = None;
            let errs = policy::validate_resource_quota(&q);
            *obj = untyped(&q)?;
            errs
        }
        _ => ErrorList::new(),
    };
    // An empty status renders as `status: {}`, as kube-apiserver's does.
    if has_status(kind) && obj.get("status").is_none_or(Value::is_null) {
        obj["status"] = json!({});
    }
    Ok(errs)
}

fn has_status(kind: &str) -> bool {
    kind != "LimitRange"
}

/// PrepareForUpdate + ValidateUpdate of `kind` (main resource when `status` is false, else
/// its `/status`). `errs` holds the generic metadata errors already found.
pub(crate) fn prepare_update(
    kind: &str,
    status: bool,
    old: &Value,
    new: &mut Value,
    mut errs: ErrorList,
) -> Result<ErrorList, ApiError> {
    if status {
        // The status strategies: everything but the status (and metadata) is the stored one.
        for (k, v) in old.as_object().into_iter().flatten() {
            if !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind") {
                new[k.as_str()] = v.clone();
            }
        }
        if kind == "Deployment" {
            new["metadata"]["labels"] = old["metadata"]["labels"].clone();
            if new["metadata"]["labels"].is_null() {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove("labels");
                }
            }
        }
        errs.extend(strategy::validate_meta(kind, new));
        if kind == "ResourceQuota" {
            let q: ResourceQuota = typed(new)?;
            errs.extend(policy::validate_resource_quota_status(&q));
        }
        return Ok(errs);
    }
    if has_status(kind) {
        new["status"] = old["status"].clone();
    }
    let spec_changed = |new: &Value| new.get("spec") != old.get("spec");
    match kind {
        "Job" => {
            let o: Job = typed(old)?;
            let mut n: Job = typed(new)?;
            job::default_job(&mut n);
            errs.extend(job::validate_job_update(&n, &o));
            *new = untyped(&n)?;
        }
        "CronJob" => {
            let o: CronJob = typed(old)?;
            let mut n: CronJob = typed(new)?;
            cronjob::default_cron_job(&mut n);
            errs.extend(cronjob::validate_cron_job_update(&n, &o));
            *new = untyped(&n)?;
        }
        "Deployment" => {
            let o: Deployment = typed(old)?;
            let mut n: Deployment = typed(new)?;
            apps::default_deployment(&mut n);
            errs.extend(apps::validate_deployment_update(&n, &o));
            *new = untyped(&n)?;
        }
        "ReplicaSet" => {
            let o: ReplicaSet = typed(old)?;
            let mut n: ReplicaSet = typed(new)?;
            apps::default_replica_set(&mut n);
            errs.extend(apps::validate_replica_set_update(&n, &o));
            *new = untyped(&n)?;
        }
        "LimitRange" => {
            let o: LimitRange = typed(old)?;
            let mut n: LimitRange = typed(new)?;
            skiff_model::policy::limit_range::default_limit_range(&mut n);
            errs.extend(policy::validate_limit_range_update(&n, &o));
            *new = untyped(&n)?;
        }
        "ResourceQuota" => {
            let o: ResourceQuota = typed(old)?;
            let n: ResourceQuota = typed(new)?;
            errs.extend(policy::validate_resource_quota_update(&n, &o));
        }
        _ => {}
    }
    if has_status(kind) && new.get("status").is_none_or(Value::is_null) {
        new["status"] = json!({});
    }
    // Generation: the workload kinds count spec changes (Deployments also annotation
    // changes: `deprecated.deployment.rollback.to` and kubectl's change-cause).
    if matches!(kind, "Job" | "CronJob" | "Deployment" | "ReplicaSet") {
        let bump = spec_changed(new)
            || (kind == "Deployment"
                && new["metadata"].get("annotations") != old["metadata"].get("annotations"));
        if bump {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
            new["metadata"]["generation"] = json!(g + 1);
        }
    }
    Ok(errs)
}

/// `metav1.LabelSelectorAsSelector(s).String()`: requirements sorted by key, as
/// `k=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`.
pub fn selector_string(s: Option<&LabelSelector>) -> String {
    let Some(s) = s else {
        return String::new();
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in s.match_labels.iter().flatten() {
        reqs.push((k.clone(), format!("{k}={v}")));
    }
    for e in s.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let text = match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            _ => continue,
        };
        reqs.push((e.key.clone(), text));
    }
    reqs.sort();
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

/// The autoscaling/v1 `Scale` of a Deployment or ReplicaSet (`scaleFromDeployment`).
pub(crate) fn scale_of(obj: &Value) -> Value {
    let selector: Option<LabelSelector> =
        serde_json::from_value(obj["spec"]["selector"].clone()).ok();
    let mut meta = serde_json::Map::new();
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = obj["metadata"].get(f).filter(|v| !v.is_null()) {
            meta.insert(f.into(), v.clone());
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {
            "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector_string(selector.as_ref()),
        },
    })
}

/// `ValidateScale`, as `Scale.autoscaling "x" is invalid: …`.
fn validate_scale(scale: &Value, name: &str) -> Result<i64, ApiError> {
    let mut errs = skiff_model::validation::meta::validate_object_meta(
        &serde_json::from_value(scale["metadata"].clone()).unwrap_or_default(),
        &Path::new("metadata"),
    );
    errs.retain(|e| e.field != "metadata.namespace");
    let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
    if replicas < 0 {
        errs.push(FieldError::invalid(
            &Path::new("spec").child("replicas"),
            replicas,
            "must be greater than or equal to 0",
        ));
    }
    if errs.is_empty() {
        Ok(replicas)
    } else {
        let mut e = strategy::invalid("Scale", name, &errs);
        e.message = skiff_model::field::invalid_message("Scale.autoscaling", name, &errs);
        if let Some(d) = e.details.as_mut() {
            d["group"] = json!("autoscaling");
        }
        Err(e)
    }
}

/// The `/scale` subresource's kind, for rendering (its Table); not a served resource.
pub static SCALE: Resource = Resource {
    group: "autoscaling",
    version: "v1",
    plural: "scale",
    singular: "scale",
    kind: "Scale",
    namespaced: true,
    short_names: &[],
    verbs: &["get", "patch", "update"],
    subresources: &[],
};

/// Whether `r` has the `/scale` subresource.
pub(crate) fn scalable(r: &Resource) -> bool {
    r.subresources.contains(&"scale")
}

fn no_scale(r: &Resource) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!(
            "the server could not find the requested resource ({} scale)",
            r.plural
        ),
    )
}

impl Api {
    /// `GET …/{name}/scale`.
    pub fn get_scale(&self, r: &Resource, ns: &str, name: &str) -> Result<Value, ApiError> {
        if !scalable(r) {
            return Err(no_scale(r));
        }
        Ok(scale_of(&*self.get(r, ns, name)?))
    }

    /// `PUT …/{name}/scale`: the body is an autoscaling/v1 Scale.
    pub(crate) async fn update_scale(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        body: &[u8],
        format: BodyFormat,
        o: &WriteOptions,
    ) -> Result<Written, ApiError> {
        if !scalable(r) {
            return Err(no_scale(r));
        }
        let parsed = decode::parse(body, format)?;
        let scale = parsed.value;
        if !scale.is_object() {
            return Err(ApiError::bad_request(
                "the object provided is unrecognized (must be of type Scale)",
            ));
        }
        for (f, want) in [("kind", "Scale"), ("apiVersion", "autoscaling/v1")] {
            if let Some(v) = scale
                .get(f)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
            {
                if v != want {
                    return Err(ApiError::bad_request(format!(
                        "{} in version {:?} cannot be handled as a Scale: no kind {:?} is registered for version {:?} in scheme \"pkg/api/legacyscheme/scheme.go:30\"",
                        scale.get("kind").and_then(Value::as_str).unwrap_or(""),
                        scale.get("apiVersion").and_then(Value::as_str).unwrap_or("").rsplit('/').next().unwrap_or(""),
                        scale.get("kind").and_then(Value::as_str).unwrap_or(""),
                        scale.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
                    )));
                }
            }
        }
        self.write_scale(r, ns, name, scale, o).await
    }

    /// `PATCH …/{name}/scale`: the patch applies to the current Scale.
    #[allow(clippy::too_many_arguments)] // the request's parts
    pub(crate) async fn patch_scale(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        o: &WriteOptions,
    ) -> Result<Written, ApiError> {
        if !scalable(r) {
            return Err(no_scale(r));
        }
        if patch_type == PatchType::Apply {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json",
            ));
        }
        let cur = scale_of(&*self.get(r, ns, name)?);
        let patched =
            crate::patch::apply_patch("Scale", patch_type, &cur, body).map_err(|e| match e {
                crate::patch::PatchError::BadRequest(m) => ApiError::bad_request(m),
                crate::patch::PatchError::Invalid(m) => ApiError::new(422, "Invalid", m),
            })?;
        self.write_scale(r, ns, name, patched, o).await
    }

    /// Writes `scale.spec.replicas` into the object (an update of the main resource: the
    /// generation moves), conditional on the Scale's resourceVersion when it has one.
    async fn write_scale(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        scale: Value,
        o: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let body_name = meta_str(&scale, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let replicas = validate_scale(&scale, name)?;
        let rv = meta_str(&scale, "resourceVersion").to_string();
        if !rv.is_empty() {
            parse_rv(&rv)?;
        }
        let make = move |cur: &Value| -> Result<Value, ApiError> {
            let mut obj = cur.clone();
            obj["spec"]["replicas"] = json!(replicas);
            if rv.is_empty() {
                if let Some(m) = obj["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
            } else {
                obj["metadata"]["resourceVersion"] = json!(rv.clone());
            }
            Ok(obj)
        };
        let cur = self.get(r, ns, name)?;
        let obj = make(&cur)?;
        let (object, _) = self
            .update_value(r, ns, name, None, obj, o.dry_run, Some(&make))
            .await?;
        Ok(Written {
            object: Arc::new(scale_of(&object)),
            created: false,
            warnings: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests;
