//! Object metadata (`apimachineryvalidation.ValidateObjectMeta` plus core's finalizer rule) and
//! the pod-specific annotation checks (`ValidatePodSpecificAnnotations`, and the create-time
//! consistency checks of `ValidatePodCreate` between annotations and security fields).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, SeccompProfile, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::names;
use super::opt;
use super::podspec::{validate_labels, validate_tolerations, visit_containers};
use crate::field::{BadValue, ErrorList, FieldError, Path};

const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";
const TOLERATIONS_ANNOTATION: &str = "scheduler.alpha.kubernetes.io/tolerations";
const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";
const APPARMOR_CONTAINER_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// `ValidateObjectMeta` for a Pod (`ValidatePodName` = DNS subdomain). A missing namespace is
/// not an error here: the API server fills it from the request before validating.
pub fn validate_object_meta(meta: &ObjectMeta, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let generate_name = opt(&meta.generate_name);
    if !generate_name.is_empty() {
        for msg in names::name_is_dns_subdomain(generate_name, true) {
            errs.push(FieldError::invalid(
                &path.child("generateName"),
                generate_name,
                msg,
            ));
        }
    }
    let name = opt(&meta.name);
    if name.is_empty() {
        // With generateName, the API server would have generated the name already.
        if generate_name.is_empty() {
            errs.push(FieldError::required(
                &path.child("name"),
                "name or generateName is required",
            ));
        }
    } else {
        for msg in names::name_is_dns_subdomain(name, false) {
            errs.push(FieldError::invalid(&path.child("name"), name, msg));
        }
    }
    let namespace = opt(&meta.namespace);
    if !namespace.is_empty() {
        for msg in names::name_is_dns_label(namespace, false) {
            errs.push(FieldError::invalid(
                &path.child("namespace"),
                namespace,
                msg,
            ));
        }
    }
    if let Some(g) = meta.generation {
        if g < 0 {
            errs.push(FieldError::invalid(
                &path.child("generation"),
                g,
                "must be greater than or equal to 0",
            ));
        }
    }
    errs.extend(validate_labels(meta.labels.as_ref(), &path.child("labels")));
    errs.extend(validate_annotations(
        meta.annotations.as_ref(),
        &path.child("annotations"),
    ));
    errs.extend(validate_owner_references(
        meta,
        &path.child("ownerReferences"),
    ));
    let finalizers = meta.finalizers.as_deref().unwrap_or_default();
    let fp = path.child("finalizers");
    for f in finalizers {
        for msg in names::is_qualified_name(f) {
            errs.push(FieldError::invalid(&fp, f.as_str(), msg));
        }
    }
    if finalizers.iter().any(|f| f == "orphan")
        && finalizers.iter().any(|f| f == "foregroundDeletion")
    {
        errs.push(FieldError::invalid(
            &fp,
            BadValue::Raw(names::go_string_slice(finalizers)),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    for (i, f) in finalizers.iter().enumerate() {
        if !f.contains('/') && !["kubernetes", "orphan", "foregroundDeletion"].contains(&f.as_str())
        {
            errs.push(FieldError::invalid(
                &fp.index(i),
                f.as_str(),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    errs
}

/// `ValidateAnnotations`: keys are qualified names (case-insensitive); total size ≤ 256 KiB.
pub fn validate_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(annotations) = annotations else {
        return errs;
    };
    for k in annotations.keys() {
        for msg in names::is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, k.as_str(), msg));
        }
    }
    let total: usize = annotations
        .iter()
        .map(|(k, v)| k.len().saturating_add(v.len()))
        .fold(0, usize::saturating_add);
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// `ValidateOwnerReferences`.
fn validate_owner_references(meta: &ObjectMeta, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut first_controller: Option<String> = None;
    for r in meta.owner_references.iter().flatten() {
        // schema.ParseGroupVersion: "v1", "group/version"; anything else has no version.
        let version = match r.api_version.split('/').collect::<Vec<_>>().as_slice() {
            [v] => *v,
            [_, v] => *v,
            _ => "",
        };
        if version.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("apiVersion"),
                r.api_version.as_str(),
                "version must not be empty",
            ));
        }
        if r.kind.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("kind"),
                r.kind.as_str(),
                "must not be empty",
            ));
        }
        if r.name.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("name"),
                r.name.as_str(),
                "must not be empty",
            ));
        }
        if r.uid.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("uid"),
                r.uid.as_str(),
                "must not be empty",
            ));
        }
        if r.api_version == "v1" && r.kind == "Event" {
            errs.push(FieldError::invalid(
                path,
                BadValue::Raw(format!(
                    "v1.OwnerReference{{APIVersion:\"v1\", Kind:\"Event\", Name:{}}}",
                    crate::field::go_quote(&r.name)
                )),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.controller == Some(true) {
            let current = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    BadValue::Raw("[]v1.OwnerReference{...}".to_string()),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// `ValidatePodSpecificAnnotations`.
pub fn validate_pod_specific_annotations(
    meta: &ObjectMeta,
    spec: &PodSpec,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(annotations) = meta.annotations.as_ref() else {
        return errs;
    };
    if let Some(v) = annotations.get(MIRROR_POD_ANNOTATION) {
        if opt(&spec.node_name).is_empty() {
            errs.push(FieldError::invalid(
                &path.key(MIRROR_POD_ANNOTATION),
                v.as_str(),
                "must set spec.nodeName if mirror pod annotation is set",
            ));
        }
    }
    if let Some(v) = annotations
        .get(TOLERATIONS_ANNOTATION)
        .filter(|v| !v.is_empty())
    {
        match serde_json::from_str::<Vec<Toleration>>(v) {
            Ok(t) => errs.extend(validate_tolerations(
                &t,
                &path.child(TOLERATIONS_ANNOTATION),
            )),
            // Go's encoding/json error text cannot be reproduced; serde's stands in.
            Err(e) => errs.push(FieldError::invalid(
                path,
                TOLERATIONS_ANNOTATION,
                e.to_string(),
            )),
        }
    }
    if let Some(v) = annotations.get(POD_DELETION_COST) {
        if !is_valid_deletion_cost(v) {
            errs.push(FieldError::invalid(
                &path.key(POD_DELETION_COST),
                v.as_str(),
                "must be a 32bit integer",
            ));
        }
    }
    // ValidateSeccompPodAnnotations.
    if let Some(p) = annotations.get(SECCOMP_POD_ANNOTATION) {
        errs.extend(validate_seccomp_annotation_value(
            p,
            &path.child(SECCOMP_POD_ANNOTATION),
        ));
    }
    for (k, p) in annotations {
        if k.starts_with(SECCOMP_CONTAINER_PREFIX) {
            errs.extend(validate_seccomp_annotation_value(p, &path.child(k)));
        }
    }
    // ValidateAppArmorPodAnnotations.
    let containers = visit_containers(spec, &Path::new("spec"));
    for (k, p) in annotations {
        let Some(container) = k.strip_prefix(APPARMOR_CONTAINER_PREFIX) else {
            continue;
        };
        if !containers.iter().any(|(c, _)| c.name == container) {
            errs.push(FieldError::invalid(
                &path.key(k),
                container,
                "container not found",
            ));
        }
        if !(p.is_empty()
            || p == "runtime/default"
            || p == "unconfined"
            || p.starts_with("localhost/"))
        {
            errs.push(FieldError::invalid(
                &path.key(k),
                p.as_str(),
                format!(
                    "invalid AppArmor profile name: {}",
                    crate::field::go_quote(p)
                ),
            ));
        }
    }
    errs
}

/// `helper.GetDeletionCostFromPodAnnotations` succeeds.
fn is_valid_deletion_cost(v: &str) -> bool {
    let first_ok = match v.as_bytes().first() {
        Some(b'-') => true,
        Some(b'0') => v == "0",
        Some(c) => (b'1'..=b'9').contains(c),
        None => false,
    };
    first_ok && v.parse::<i32>().is_ok()
}

/// `ValidateSeccompProfile` (annotation values).
fn validate_seccomp_annotation_value(p: &str, path: &Path) -> ErrorList {
    if p == "runtime/default" || p == "docker/default" || p == "unconfined" {
        return Vec::new();
    }
    if let Some(rest) = p.strip_prefix("localhost/") {
        return super::paths::validate_local_descending_path(rest, path);
    }
    vec![FieldError::invalid(
        path,
        p,
        "must be a valid seccomp profile",
    )]
}

/// `validateSeccompAnnotationsAndFields` (create only).
pub fn validate_seccomp_annotations_and_fields(
    meta: &ObjectMeta,
    spec: &PodSpec,
    spec_path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let empty = BTreeMap::new();
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    if let Some(sp) = spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref())
    {
        if let Some(a) = annotations.get(SECCOMP_POD_ANNOTATION) {
            errs.extend(seccomp_match(
                a,
                sp,
                &spec_path.child("securityContext").child("seccompProfile"),
            ));
        }
    }
    for (c, cp) in visit_containers(spec, spec_path) {
        let Some(sp) = c
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref())
        else {
            continue;
        };
        if let Some(a) = annotations.get(&format!("{SECCOMP_CONTAINER_PREFIX}{}", c.name)) {
            errs.extend(seccomp_match(
                a,
                sp,
                &cp.child("securityContext").child("seccompProfile"),
            ));
        }
    }
    errs
}

/// `validateSeccompAnnotationsAndFieldsMatch`.
fn seccomp_match(annotation: &str, field: &SeccompProfile, path: &Path) -> Option<FieldError> {
    let type_mismatch = || {
        Some(FieldError::forbidden(
            &path.child("type"),
            "seccomp type in annotation and field must match",
        ))
    };
    match field.type_.as_str() {
        "Unconfined" if annotation != "unconfined" => type_mismatch(),
        "RuntimeDefault" if annotation != "runtime/default" && annotation != "docker/default" => {
            type_mismatch()
        }
        "Localhost" => match annotation.strip_prefix("localhost/") {
            None => type_mismatch(),
            Some(rest) if field.localhost_profile.as_deref() != Some(rest) => {
                Some(FieldError::forbidden(
                    &path.child("localhostProfile"),
                    "seccomp profile in annotation and field must match",
                ))
            }
            Some(_) => None,
        },
        _ => None,
    }
}

/// `validateAppArmorAnnotationsAndFieldsMatchOnCreate`.
pub fn validate_app_armor_annotations_and_fields(
    meta: &ObjectMeta,
    spec: &PodSpec,
    spec_path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    if spec.os.as_ref().is_some_and(|o| o.name == "windows") {
        return errs;
    }
    let empty = BTreeMap::new();
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    let pod_profile = spec
        .security_context
        .as_ref()
        .and_then(|s| s.app_armor_profile.as_ref());
    for (c, cp) in visit_containers(spec, spec_path) {
        let profile = c
            .security_context
            .as_ref()
            .and_then(|s| s.app_armor_profile.as_ref())
            .or(pod_profile);
        let Some(profile) = profile else { continue };
        let Some(a) = annotations.get(&format!("{APPARMOR_CONTAINER_PREFIX}{}", c.name)) else {
            continue;
        };
        let ap = cp.child("securityContext").child("appArmorProfile");
        const TYPE_MSG: &str = "apparmor type in annotation and field must match";
        match profile.type_.as_str() {
            "Unconfined" if a != "unconfined" => {
                errs.push(FieldError::forbidden(&ap.child("type"), TYPE_MSG))
            }
            "RuntimeDefault" if a != "runtime/default" => {
                errs.push(FieldError::forbidden(&ap.child("type"), TYPE_MSG))
            }
            "Localhost" => match a.strip_prefix("localhost/") {
                None => errs.push(FieldError::forbidden(&ap.child("type"), TYPE_MSG)),
                Some(rest) if profile.localhost_profile.as_deref() != Some(rest) => {
                    errs.push(FieldError::forbidden(
                        &ap.child("localhostProfile"),
                        "apparmor profile in annotation and field must match",
                    ))
                }
                Some(_) => {}
            },
            _ => {}
        }
    }
    errs
}
