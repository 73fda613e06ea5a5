//! The per-kind strategies of kube-apiserver's registries (pkg/registry/core/*/strategy.go):
//! what create and update do to an object besides storing it (PrepareForCreate,
//! PrepareForUpdate, Validate, ValidateUpdate) for ConfigMap, Secret, Namespace,
//! ServiceAccount, Event, Node and Pod updates, and the generic metadata rules of
//! `rest.BeforeCreate`/`rest.BeforeUpdate` (staging/src/k8s.io/apiserver/pkg/registry/rest).
//! Validation texts are apimachinery's (skiff-model renders them).

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};
use skiff_model::field::{go_quote, BadValue, ErrorList, FieldError, Path};
use skiff_model::validation::{meta as vmeta, names, update as vupdate};

use super::ApiError;

/// 1 MiB: the most a ConfigMap's or Secret's data may hold (`core.MaxSecretSize`).
const MAX_DATA_BYTES: usize = 1024 * 1024;

/// `metav1.Now()` as the API renders it (RFC 3339, seconds).
pub(crate) fn now() -> String {
    at_second(unix_now())
}

/// The current unix second.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The RFC 3339 text of a unix second.
pub(crate) fn at_second(secs: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Unix seconds of an RFC 3339 text.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    s.parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

/// `apierrors.NewInvalid`: 422 with `details.causes`.
pub(crate) fn invalid(kind: &str, name: &str, errors: &[FieldError]) -> ApiError {
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| {
            json!({
                "reason": e.kind.cause_type(),
                "message": e.body(),
                "field": e.field,
            })
        })
        .collect();
    // The qualified kind of `apierrors.NewInvalid`: `Deployment.apps` for a named group.
    let group = super::RESOURCES
        .iter()
        .find(|r| r.kind == kind)
        .map_or("", |r| r.group);
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let mut e = ApiError::new(
        422,
        "Invalid",
        skiff_model::field::invalid_message(&qualified, name, errors),
    );
    e.details = Some(json!({"name": name, "kind": kind, "causes": causes}));
    if let Some(d) = e.details.as_mut().filter(|_| !group.is_empty()) {
        d["group"] = json!(group);
    }
    e
}

fn meta_of(obj: &Value) -> ObjectMeta {
    serde_json::from_value(obj.get("metadata").cloned().unwrap_or(Value::Null)).unwrap_or_default()
}

/// `ValidateObjectMeta` with the kind's name rule (namespaces: DNS label).
pub(crate) fn validate_meta(kind: &str, obj: &Value) -> ErrorList {
    let meta = meta_of(obj);
    let path = Path::new("metadata");
    let mut errs = vmeta::validate_object_meta(&meta, &path);
    if kind == "Namespace" {
        errs.retain(|e| e.field != "metadata.name");
        let name = meta.name.as_deref().unwrap_or("");
        if !name.is_empty() {
            for m in names::name_is_dns_label(name, false) {
                errs.push(FieldError::invalid(&path.child("name"), name, m));
            }
        }
    }
    errs
}

/// Key rules and the size limit of ConfigMap/Secret data (`ValidateConfigMap`,
/// `ValidateSecret`).
fn validate_data(obj: &Value, fields: &[&str], errs: &mut ErrorList) {
    let mut total = 0usize;
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for f in fields {
        let Some(m) = obj.get(*f).and_then(Value::as_object) else {
            continue;
        };
        let p = Path::new(f);
        for (k, v) in m {
            for msg in names::is_config_map_key(k) {
                errs.push(FieldError::invalid(&p.key(k), k.as_str(), msg));
            }
            if let Some(other) = seen.get(k) {
                errs.push(FieldError::invalid(
                    &p.key(k),
                    k.as_str(),
                    format!("duplicate of key present in {other}"),
                ));
            }
            seen.insert(k.clone(), f);
            total += k.len() + v.as_str().map_or(0, str::len);
        }
    }
    if total > MAX_DATA_BYTES {
        errs.push(FieldError::too_long(&Path::new(""), MAX_DATA_BYTES));
    }
}

/// Secret `stringData` merged into `data` (base64), as the v1 → internal conversion does.
fn merge_string_data(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(sd)) = m.remove("stringData") else {
        return;
    };
    if !m.get("data").is_some_and(Value::is_object) {
        m.insert("data".into(), json!({}));
    }
    if let Some(Value::Object(data)) = m.get_mut("data") {
        for (k, v) in sd {
            let text = v.as_str().unwrap_or("");
            data.insert(
                k,
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

fn validate_secret_type(obj: &Value, errs: &mut ErrorList) {
    let ty = obj["type"].as_str().unwrap_or("Opaque");
    let data = obj.get("data").and_then(Value::as_object);
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let dp = Path::new("data");
    let required = |k: &str, errs: &mut ErrorList| {
        if !has(k) {
            errs.push(FieldError::required(&dp.key(k), ""));
        }
    };
    match ty {
        "kubernetes.io/service-account-token" => {
            let ann = obj["metadata"]["annotations"]["kubernetes.io/service-account.name"]
                .as_str()
                .unwrap_or("");
            if ann.is_empty() {
                errs.push(FieldError::required(
                    &Path::new("metadata")
                        .child("annotations")
                        .key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => required(".dockercfg", errs),
        "kubernetes.io/dockerconfigjson" => required(".dockerconfigjson", errs),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            required("username", errs);
            required("password", errs);
        }
        "kubernetes.io/ssh-auth" => required("ssh-privatekey", errs),
        "kubernetes.io/tls" => {
            required("tls.key", errs);
            required("tls.crt", errs);
        }
        _ => {}
    }
}

/// PrepareForCreate + Validate for the kinds other than Pod (pods go through skiff-model's
/// `prepare_pod` and admission in the registry).
pub(crate) fn prepare_create(kind: &str, obj: &mut Value) -> ErrorList {
    let mut errs = validate_meta(kind, obj);
    match kind {
        "ConfigMap" => validate_data(obj, &["data", "binaryData"], &mut errs),
        "Secret" => {
            merge_string_data(obj);
            if obj["type"].as_str().is_none_or(str::is_empty) {
                obj["type"] = json!("Opaque");
            }
            validate_data(obj, &["data"], &mut errs);
            validate_secret_type(obj, &mut errs);
        }
        "Namespace" => {
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            // Defaulting: the immutable `kubernetes.io/metadata.name` label; PrepareForCreate:
            // finalizer `kubernetes`, phase Active.
            if !obj["metadata"]["labels"].is_object() {
                obj["metadata"]["labels"] = json!({});
            }
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        "Event" => {
            let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
            let ins = obj["involvedObject"]["namespace"].as_str().unwrap_or("");
            // legacyValidateEvent: a cluster-scoped involved object's events live in
            // "default"; a namespaced one's in its namespace.
            if (ins.is_empty() && !ns.is_empty() && ns != "default")
                || (!ins.is_empty() && ins != ns)
            {
                errs.push(FieldError::invalid(
                    &Path::new("involvedObject").child("namespace"),
                    ins,
                    "does not match event.namespace",
                ));
            }
        }
        _ => {}
    }
    errs
}

/// The generic metadata rules of an update (`rest.BeforeUpdate`, `ValidateObjectMetaUpdate`):
/// uid, creationTimestamp, deletion fields and generation come from the stored object;
/// managedFields are kept when the update has none; no finalizer may be added once deletion
/// started.
pub(crate) fn prepare_update_meta(old: &Value, new: &mut Value) -> ErrorList {
    let mut errs = ErrorList::new();
    let om = &old["metadata"];
    let Some(nm) = new.get_mut("metadata").and_then(Value::as_object_mut) else {
        return errs;
    };
    let old_uid = om["uid"].as_str().unwrap_or("");
    match nm.get("uid").and_then(Value::as_str) {
        None | Some("") => {
            nm.insert("uid".into(), json!(old_uid));
        }
        Some(u) if u != old_uid => errs.push(FieldError::invalid(
            &Path::new("metadata").child("uid"),
            u,
            "field is immutable",
        )),
        _ => {}
    }
    for f in [
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match om.get(f) {
            Some(v) if !v.is_null() => {
                nm.insert(f.into(), v.clone());
            }
            _ => {
                nm.remove(f);
            }
        }
    }
    if nm
        .get("managedFields")
        .is_none_or(|m| m.as_array().is_none_or(Vec::is_empty))
    {
        if let Some(m) = om.get("managedFields") {
            nm.insert("managedFields".into(), m.clone());
        }
    }
    if om.get("deletionTimestamp").is_some_and(|d| !d.is_null()) {
        let old_f: Vec<&str> = om["finalizers"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let added: Vec<String> = nm
            .get("finalizers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter(|f| !old_f.contains(f))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if !added.is_empty() {
            errs.push(FieldError::forbidden(
                &Path::new("metadata").child("finalizers"),
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    names::go_string_slice(&added)
                ),
            ));
        }
    }
    errs
}

fn immutable_data(kind: &str, old: &Value, new: &Value, fields: &[&str], errs: &mut ErrorList) {
    if old["immutable"].as_bool() != Some(true) {
        return;
    }
    let detail = "field is immutable when `immutable` is set";
    if new["immutable"].as_bool() != Some(true) {
        errs.push(FieldError::forbidden(&Path::new("immutable"), detail));
    }
    for f in fields {
        let norm = |v: &Value| v.as_object().filter(|m| !m.is_empty()).cloned();
        if norm(&old[*f]) != norm(&new[*f]) {
            errs.push(FieldError::forbidden(&Path::new(f), detail));
        }
    }
    let _ = kind;
}

/// PrepareForUpdate + ValidateUpdate of `kind` (main resource when `sub` is None, or its
/// `status`). Pods: status kept on the main resource and spec on `/status`; the incoming
/// spec defaulted then compared by ValidatePodUpdate; generation bumped on a spec change.
pub(crate) fn prepare_update(
    kind: &str,
    sub: Option<&str>,
    old: &Value,
    new: &mut Value,
) -> Result<ErrorList, ApiError> {
    let mut errs = prepare_update_meta(old, new);
    let status = sub == Some("status");
    match kind {
        "Pod" => return prepare_pod_update(status, old, new, errs),
        "Namespace" => {
            if status {
                new["spec"] = old["spec"].clone();
            } else {
                new["spec"]["finalizers"] = old["spec"]["finalizers"].clone();
                new["status"] = old["status"].clone();
            }
            let name = old["metadata"]["name"].clone();
            if !new["metadata"]["labels"].is_object() {
                new["metadata"]["labels"] = json!({});
            }
            new["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            errs.extend(validate_meta(kind, new));
        }
        "Node" => {
            if status {
                new["spec"] = old["spec"].clone();
            } else {
                new["status"] = old["status"].clone();
            }
            errs.extend(validate_meta(kind, new));
        }
        "ConfigMap" => {
            errs.extend(validate_meta(kind, new));
            validate_data(new, &["data", "binaryData"], &mut errs);
            immutable_data(kind, old, new, &["data", "binaryData"], &mut errs);
        }
        "Secret" => {
            merge_string_data(new);
            if new["type"].as_str().is_none_or(str::is_empty) {
                new["type"] = json!("Opaque");
            }
            errs.extend(validate_meta(kind, new));
            validate_data(new, &["data"], &mut errs);
            validate_secret_type(new, &mut errs);
            if new["type"] != old["type"] {
                errs.push(FieldError::invalid(
                    &Path::new("type"),
                    new["type"].as_str().unwrap_or(""),
                    "field is immutable",
                ));
            }
            immutable_data(kind, old, new, &["data"], &mut errs);
        }
        _ => errs.extend(validate_meta(kind, new)),
    }
    Ok(errs)
}

fn prepare_pod_update(
    status: bool,
    old: &Value,
    new: &mut Value,
    mut errs: ErrorList,
) -> Result<ErrorList, ApiError> {
    let bad = |e: serde_json::Error| ApiError::new(500, "InternalError", e.to_string());
    let old_pod: Pod = serde_json::from_value(old.clone()).map_err(bad)?;
    let mut pod: Pod = serde_json::from_value(new.clone()).map_err(bad)?;
    if status {
        // podStatusStrategy.PrepareForUpdate: spec and ownerReferences from the old pod.
        pod.spec = old_pod.spec.clone();
        pod.metadata.owner_references = old_pod.metadata.owner_references.clone();
        // The QoS class is set at creation and backfilled when a writer dropped it.
        if let Some(st) = pod.status.as_mut() {
            if st.qos_class.as_deref().unwrap_or("").is_empty() {
                st.qos_class = old_pod.status.as_ref().and_then(|o| o.qos_class.clone());
            }
        }
    } else {
        // podStrategy.PrepareForUpdate: the status is the old one; the incoming spec is
        // defaulted (at decoding upstream) before ValidatePodUpdate compares it.
        pod.status = old_pod.status.clone();
        skiff_model::defaults::default_pod(&mut pod);
        if let Some(spec) = pod.spec.as_mut() {
            // The v1 conversion: serviceAccountName from the deprecated field when empty,
            // and back.
            if spec
                .service_account_name
                .as_deref()
                .unwrap_or("")
                .is_empty()
            {
                spec.service_account_name.clone_from(&spec.service_account);
            }
            spec.service_account.clone_from(&spec.service_account_name);
        }
        if let (Some(n), Some(o)) = (pod.spec.as_mut(), old_pod.spec.as_ref()) {
            // Ephemeral containers change only through their subresource.
            n.ephemeral_containers.clone_from(&o.ephemeral_containers);
        }
        errs.extend(vmeta::validate_object_meta(
            &pod.metadata,
            &Path::new("metadata"),
        ));
        if errs.is_empty() {
            let default = Default::default();
            let o = old_pod.spec.as_ref().unwrap_or(&default);
            let n = pod.spec.as_ref().unwrap_or(&default);
            if let Err(e) = vupdate::validate_update(o, n) {
                errs.push(update_error(&e));
            }
        }
        if pod.spec != old_pod.spec {
            pod.metadata.generation = Some(old_pod.metadata.generation.unwrap_or(1) + 1);
        }
    }
    *new = serde_json::to_value(&pod).map_err(bad)?;
    Ok(errs)
}

/// skiff-model's update error as a field error (same rendering).
fn update_error(e: &vupdate::UpdateError) -> FieldError {
    use vupdate::UpdateError as U;
    let path = Path::new(e.path());
    match e {
        U::Forbidden { detail, .. } => FieldError::forbidden(&path, detail.clone()),
        U::Invalid { value, detail, .. } => {
            FieldError::invalid(&path, BadValue::Raw(value.clone()), detail.clone())
        }
        U::Required { .. } => FieldError::required(&path, ""),
        U::Duplicate { name, .. } => FieldError::duplicate(&path, name.as_str()),
    }
}

/// A quoted name for messages (`"x"`).
pub(crate) fn q(s: &str) -> String {
    go_quote(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pkg/apis/core/validation ValidateConfigMap: keys and duplicates.
    #[test]
    fn configmap_keys_are_checked() {
        let mut cm = json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"ok": "1", "bad key": "2"}, "binaryData": {"ok": "AA=="}});
        let errs = prepare_create("ConfigMap", &mut cm);
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|t| t.starts_with(
                "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of"
            )),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t
                    == "binaryData[ok]: Invalid value: \"ok\": duplicate of key present in data"),
            "{text:?}"
        );
    }

    /// Secret stringData → data (v1 conversion), type rules (ValidateSecret).
    #[test]
    fn secret_string_data_and_type_rules() {
        let mut s = json!({"metadata": {"name": "s"}, "stringData": {"u": "me"}});
        assert!(prepare_create("Secret", &mut s).is_empty());
        assert_eq!(s["data"]["u"], "bWU=");
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
        let mut tls = json!({"metadata": {"name": "t"}, "type": "kubernetes.io/tls", "data": {"tls.crt": ""}});
        let errs: Vec<String> = prepare_create("Secret", &mut tls)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs, vec!["data[tls.key]: Required value"]);
    }

    /// pkg/registry/core/namespace/strategy.go PrepareForCreate + the name label.
    #[test]
    fn namespace_create_sets_finalizer_phase_label() {
        let mut ns = json!({"metadata": {"name": "team-a"}});
        assert!(prepare_create("Namespace", &mut ns).is_empty());
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team-a"
        );
        let mut bad = json!({"metadata": {"name": "a.b"}});
        let errs: Vec<String> = prepare_create("Namespace", &mut bad)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("metadata.name: Invalid value: \"a.b\": "),
            "{errs:?}"
        );
    }

    #[test]
    fn times_round_trip() {
        let t = at_second(1_700_000_000);
        assert_eq!(t, "2023-11-14T22:13:20Z");
        assert_eq!(parse_time(&t), Some(1_700_000_000));
    }
}
