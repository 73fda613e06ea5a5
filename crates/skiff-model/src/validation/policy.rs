//! `ValidateLimitRange`, `ValidateResourceQuota` (+ update and status) of
//! pkg/apis/core/validation/validation.go: the object rules kube-apiserver applies to a
//! LimitRange or ResourceQuota before storing it (admission of pods against them is
//! `crate::policy`'s, elsewhere). Maps are visited in key order (Go's is random).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::container::{
    is_extended, is_huge_page, is_native, is_overcommit_allowed, is_standard_resource,
    validate_container_resource_name, INTEGER_RESOURCES,
};
use super::{meta, names};
use crate::field::{ErrorList, FieldError, Path};
use crate::quantity::Quantity;

const LIMIT_TYPES: &[&str] = &["Pod", "Container", "PersistentVolumeClaim"];

/// `standardQuotaResources` (helper.IsStandardQuotaResourceName).
const QUOTA_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

/// The quota scopes (`standardResourceQuotaScopes`).
const QUOTA_SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
    "VolumeAttributesClass",
];

fn qualified(value: &str, path: &Path) -> ErrorList {
    names::is_qualified_name(value)
        .into_iter()
        .map(|m| FieldError::invalid(path, value, m))
        .collect()
}

/// `validateResourceName`.
fn validate_resource_name(value: &str, path: &Path) -> ErrorList {
    let mut errs = qualified(value, path);
    if errs.is_empty() && !value.contains('/') && !is_standard_resource(value) {
        errs.push(FieldError::invalid(
            path,
            value,
            "must be a standard resource type or fully qualified",
        ));
    }
    errs
}

/// `validateLimitRangeTypeName`.
fn validate_limit_type(value: &str, path: &Path) -> ErrorList {
    let errs = qualified(value, path);
    if !errs.is_empty() {
        return errs;
    }
    if !value.contains('/') && !LIMIT_TYPES.contains(&value) {
        return vec![FieldError::invalid(
            path,
            value,
            "must be a standard limit type or fully qualified",
        )];
    }
    errs
}

/// `validateLimitRangeResourceName`.
fn validate_limit_resource_name(limit_type: &str, value: &str, path: &Path) -> ErrorList {
    match limit_type {
        "Pod" | "Container" => validate_container_resource_name(value, path),
        _ => validate_resource_name(value, path),
    }
}

/// A quantity of the request, parsed (the decoder refuses unparseable ones upstream).
fn parse(q: &ApiQuantity, path: &Path, errs: &mut ErrorList) -> Option<Quantity> {
    match Quantity::parse(&q.0) {
        Ok(v) => Some(v),
        Err(e) => {
            errs.push(FieldError::invalid(path, q.0.as_str(), e.to_string()));
            None
        }
    }
}

fn cmp(a: &Quantity, b: &Quantity) -> std::cmp::Ordering {
    let mut d = a.clone();
    d.sub(b);
    if d.is_zero() {
        std::cmp::Ordering::Equal
    } else if d.is_negative() {
        std::cmp::Ordering::Less
    } else {
        std::cmp::Ordering::Greater
    }
}

/// `ValidateLimitRange`.
pub fn validate_limit_range(lr: &LimitRange) -> ErrorList {
    let mut errs = meta::validate_object_meta(&lr.metadata, &Path::new("metadata"));
    let path = Path::new("spec").child("limits");
    let mut types = BTreeSet::new();
    let limits = lr.spec.as_ref().map(|s| s.limits.as_slice()).unwrap_or(&[]);
    for (i, limit) in limits.iter().enumerate() {
        let ip = path.index(i);
        let ty = limit.type_.as_str();
        errs.extend(validate_limit_type(ty, &ip.child("type")));
        if !types.insert(ty) {
            errs.push(FieldError::duplicate(&ip.child("type"), ty));
        }
        let mut keys = BTreeSet::new();
        let mut collect = |field: &str,
                           list: &Option<BTreeMap<String, ApiQuantity>>,
                           errs: &mut ErrorList|
         -> BTreeMap<String, Quantity> {
            let mut out = BTreeMap::new();
            for (k, q) in list.iter().flatten() {
                let kp = ip.child(field).key(k);
                errs.extend(validate_limit_resource_name(ty, k, &kp));
                keys.insert(k.clone());
                if let Some(v) = parse(q, &kp, errs) {
                    out.insert(k.clone(), v);
                }
            }
            out
        };
        let max = collect("max", &limit.max, &mut errs);
        let min = collect("min", &limit.min, &mut errs);
        let (default, default_request) = if ty == "Pod" {
            if limit.default.as_ref().is_some_and(|m| !m.is_empty()) {
                errs.push(FieldError::forbidden(
                    &ip.child("default"),
                    "may not be specified when `type` is 'Pod'",
                ));
            }
            if limit
                .default_request
                .as_ref()
                .is_some_and(|m| !m.is_empty())
            {
                errs.push(FieldError::forbidden(
                    &ip.child("defaultRequest"),
                    "may not be specified when `type` is 'Pod'",
                ));
            }
            (BTreeMap::new(), BTreeMap::new())
        } else {
            let d = collect("default", &limit.default, &mut errs);
            let dr = collect("defaultRequest", &limit.default_request, &mut errs);
            (d, dr)
        };
        if ty == "PersistentVolumeClaim"
            && !limit
                .min
                .as_ref()
                .is_some_and(|m| m.contains_key("storage"))
            && !limit
                .max
                .as_ref()
                .is_some_and(|m| m.contains_key("storage"))
        {
            errs.push(FieldError::required(
                &ip.child("limits"),
                "either minimum or maximum storage value is required, but neither was provided",
            ));
        }
        let ratio = collect(
            "maxLimitRequestRatio",
            &limit.max_limit_request_ratio,
            &mut errs,
        );
        for k in &keys {
            let (mn, mx, df, dr, ra) = (
                min.get(k),
                max.get(k),
                default.get(k),
                default_request.get(k),
                ratio.get(k),
            );
            let s = Quantity::to_canonical;
            let gt = |a: &Quantity, b: &Quantity| cmp(a, b) == std::cmp::Ordering::Greater;
            if let (Some(mn), Some(mx)) = (mn, mx) {
                if gt(mn, mx) {
                    errs.push(FieldError::invalid(
                        &ip.child("min").key(k),
                        s(mn),
                        format!("min value {} is greater than max value {}", s(mn), s(mx)),
                    ));
                }
            }
            if let (Some(dr), Some(mn)) = (dr, mn) {
                if gt(mn, dr) {
                    errs.push(FieldError::invalid(
                        &ip.child("defaultRequest").key(k),
                        s(dr),
                        format!(
                            "min value {} is greater than default request value {}",
                            s(mn),
                            s(dr)
                        ),
                    ));
                }
            }
            if let (Some(dr), Some(mx)) = (dr, mx) {
                if gt(dr, mx) {
                    errs.push(FieldError::invalid(
                        &ip.child("defaultRequest").key(k),
                        s(dr),
                        format!(
                            "default request value {} is greater than max value {}",
                            s(dr),
                            s(mx)
                        ),
                    ));
                }
            }
            if let (Some(dr), Some(df)) = (dr, df) {
                if gt(dr, df) {
                    errs.push(FieldError::invalid(
                        &ip.child("defaultRequest").key(k),
                        s(dr),
                        format!(
                            "default request value {} is greater than default limit value {}",
                            s(dr),
                            s(df)
                        ),
                    ));
                }
            }
            if let (Some(df), Some(mn)) = (df, mn) {
                if gt(mn, df) {
                    errs.push(FieldError::invalid(
                        &ip.child("default").key(k),
                        s(mn),
                        format!(
                            "min value {} is greater than default value {}",
                            s(mn),
                            s(df)
                        ),
                    ));
                }
            }
            if let (Some(df), Some(mx)) = (df, mx) {
                if gt(df, mx) {
                    errs.push(FieldError::invalid(
                        &ip.child("default").key(k),
                        s(df),
                        format!(
                            "default value {} is greater than max value {}",
                            s(df),
                            s(mx)
                        ),
                    ));
                }
            }
            if let Some(ra) = ra {
                if cmp(ra, &Quantity::one()) == std::cmp::Ordering::Less {
                    errs.push(FieldError::invalid(
                        &ip.child("maxLimitRequestRatio").key(k),
                        s(ra),
                        format!("ratio {} is less than 1", s(ra)),
                    ));
                }
                if let (Some(mn), Some(mx)) = (mn, mx) {
                    // Milli precision when every value allows it, as upstream.
                    const MAX_MILLI: i64 = i64::MAX / 1000;
                    let (r, lo, hi) = if ra.value() < MAX_MILLI
                        && mn.value() < MAX_MILLI
                        && mx.value() < MAX_MILLI
                    {
                        (
                            ra.milli_value() as f64 / 1000.0,
                            mn.milli_value(),
                            mx.milli_value(),
                        )
                    } else {
                        (ra.value() as f64, mn.value(), mx.value())
                    };
                    let limit = hi as f64 / lo as f64;
                    if r > limit {
                        errs.push(FieldError::invalid(
                            &ip.child("maxLimitRequestRatio").key(k),
                            s(ra),
                            format!("ratio {} is greater than max/min = {limit:.6}", s(ra)),
                        ));
                    }
                }
            }
            if !is_overcommit_allowed(k) {
                if let (Some(df), Some(dr)) = (df, dr) {
                    if cmp(df, dr) != std::cmp::Ordering::Equal {
                        errs.push(FieldError::invalid(
                            &ip.child("defaultRequest").key(k),
                            s(dr),
                            format!(
                                "default value {} must equal to defaultRequest value {} in {k}",
                                s(df),
                                s(dr)
                            ),
                        ));
                    }
                }
            }
        }
    }
    errs
}

/// `ValidateLimitRange` of an update (`ValidateObjectMetaUpdate` is the registry's).
pub fn validate_limit_range_update(new: &LimitRange, _old: &LimitRange) -> ErrorList {
    validate_limit_range(new)
}

/// `ValidateResourceQuotaResourceName`.
fn validate_quota_resource_name(value: &str, path: &Path) -> ErrorList {
    let mut errs = validate_resource_name(value, path);
    if !value.contains('/') && !QUOTA_RESOURCES.contains(&value) && !is_huge_page_quota(value) {
        errs.push(FieldError::invalid(
            path,
            value,
            "must be a standard resource for quota",
        ));
    }
    errs
}

fn is_huge_page_quota(name: &str) -> bool {
    name.strip_prefix("requests.").is_some_and(is_huge_page)
}

/// `ValidateResourceQuantityValue`.
fn validate_quantity(name: &str, q: &ApiQuantity, path: &Path, errs: &mut ErrorList) {
    let Some(v) = parse(q, path, errs) else {
        return;
    };
    if v.is_negative() {
        errs.push(FieldError::invalid(
            path,
            v.to_canonical(),
            "must be greater than or equal to 0",
        ));
    }
    let integer = INTEGER_RESOURCES.contains(&name)
        || (!is_native(name) && is_extended(name))
        || name.starts_with("count/");
    if integer && v.milli_value() % 1000 != 0 {
        errs.push(FieldError::invalid(
            path,
            v.to_canonical(),
            "must be an integer",
        ));
    }
}

fn validate_quota_list(
    list: &Option<BTreeMap<String, ApiQuantity>>,
    path: &Path,
    errs: &mut ErrorList,
) {
    for (k, q) in list.iter().flatten() {
        let p = path.key(k);
        errs.extend(validate_quota_resource_name(k, &p));
        validate_quantity(k, q, &p, errs);
    }
}

/// Which scopes a resource may be tracked under (`helper.IsResourceQuotaScopeValidForResource`).
fn scope_fits(scope: &str, resource: &str) -> bool {
    const POD: &[&str] = &[
        "pods",
        "requests.cpu",
        "requests.memory",
        "limits.cpu",
        "limits.memory",
        "cpu",
        "memory",
    ];
    match scope {
        "Terminating" | "NotTerminating" | "NotBestEffort" | "PriorityClass" => {
            POD.contains(&resource)
                || resource.starts_with("requests.hugepages-")
                || resource == "requests.ephemeral-storage"
                || resource == "limits.ephemeral-storage"
                || resource == "ephemeral-storage"
                || resource == "count/pods"
                || (resource.contains('/') && !resource.starts_with("count/"))
        }
        "BestEffort" => resource == "pods" || resource == "count/pods",
        "CrossNamespacePodAffinity" => POD.contains(&resource) || resource == "count/pods",
        _ => true,
    }
}

/// `validateResourceQuotaScopes` and `validateScopeSelector`.
fn validate_scopes(spec: &ResourceQuotaSpec, path: &Path, errs: &mut ErrorList) {
    let mut scopes: Vec<&str> = spec.scopes.iter().flatten().map(String::as_str).collect();
    let sel = spec
        .scope_selector
        .as_ref()
        .and_then(|s| s.match_expressions.as_ref());
    if let Some(exprs) = sel {
        let sp = path.child("scopeSelector").child("matchExpressions");
        for (i, e) in exprs.iter().enumerate() {
            let ip = sp.index(i);
            if !QUOTA_SCOPES.contains(&e.scope_name.as_str()) {
                errs.push(FieldError::invalid(
                    &ip.child("scopeName"),
                    e.scope_name.as_str(),
                    "unsupported scope",
                ));
            }
            let values = e.values.as_ref().map_or(0, Vec::len);
            match e.operator.as_str() {
                "In" | "NotIn" => {
                    if values == 0 {
                        errs.push(FieldError::required(
                            &ip.child("values"),
                            "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
                        ));
                    }
                }
                "Exists" | "DoesNotExist" => {
                    if values != 0 {
                        errs.push(FieldError::invalid(
                            &ip.child("values"),
                            crate::field::BadValue::Raw(format!("{:?}", e.values.as_deref().unwrap_or(&[]))),
                            "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
                        ));
                    }
                }
                other => errs.push(FieldError::invalid(
                    &ip.child("operator"),
                    other,
                    "not a valid selector operator",
                )),
            }
            scopes.push(e.scope_name.as_str());
        }
    }
    let scopes_path = path.child("scopes");
    for s in spec.scopes.iter().flatten() {
        if !QUOTA_SCOPES.contains(&s.as_str()) {
            errs.push(FieldError::invalid(
                &scopes_path,
                s.as_str(),
                "unsupported scope",
            ));
        }
    }
    if scopes.is_empty() {
        return;
    }
    for k in spec.hard.iter().flat_map(BTreeMap::keys) {
        if scopes.iter().any(|s| !scope_fits(s, k)) {
            errs.push(FieldError::invalid(
                &path.child("hard").key(k),
                k.as_str(),
                "unsupported scope applied to resource",
            ));
        }
    }
    let has = |s: &str| scopes.contains(&s);
    if (has("Terminating") && has("NotTerminating")) || (has("BestEffort") && has("NotBestEffort"))
    {
        errs.push(FieldError::invalid(
            &scopes_path,
            crate::field::BadValue::Raw(format!("{scopes:?}")),
            "conflicting scopes",
        ));
    }
}

/// `ValidateResourceQuota` (create).
pub fn validate_resource_quota(q: &ResourceQuota) -> ErrorList {
    let mut errs = meta::validate_object_meta(&q.metadata, &Path::new("metadata"));
    let default = ResourceQuotaSpec::default();
    let spec = q.spec.as_ref().unwrap_or(&default);
    let sp = Path::new("spec");
    validate_quota_list(&spec.hard, &sp.child("hard"), &mut errs);
    validate_scopes(spec, &sp, &mut errs);
    errs.extend(validate_resource_quota_status(q));
    errs
}

/// `ValidateResourceQuotaUpdate`: the create rules, and scopes that may not change.
pub fn validate_resource_quota_update(new: &ResourceQuota, old: &ResourceQuota) -> ErrorList {
    let mut errs = validate_resource_quota(new);
    let scopes = |q: &ResourceQuota| {
        q.spec
            .as_ref()
            .and_then(|s| s.scopes.clone())
            .unwrap_or_default()
    };
    if scopes(new) != scopes(old) {
        errs.push(FieldError::invalid(
            &Path::new("spec").child("scopes"),
            crate::field::BadValue::Raw(format!("{:?}", scopes(new))),
            "field is immutable",
        ));
    }
    let sel = |q: &ResourceQuota| q.spec.as_ref().and_then(|s| s.scope_selector.clone());
    if sel(new) != sel(old) {
        errs.push(FieldError::invalid(
            &Path::new("spec").child("scopeSelector"),
            crate::field::BadValue::Raw("<scopeSelector>".into()),
            "field is immutable",
        ));
    }
    errs
}

/// `ValidateResourceQuotaStatus` (status.hard, status.used).
pub fn validate_resource_quota_status(q: &ResourceQuota) -> ErrorList {
    let mut errs = ErrorList::new();
    let p = Path::new("status");
    if let Some(st) = q.status.as_ref() {
        validate_quota_list(&st.hard, &p.child("hard"), &mut errs);
        validate_quota_list(&st.used, &p.child("used"), &mut errs);
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    fn lr(limits: serde_json::Value) -> LimitRange {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "lr", "namespace": "d"},
            "spec": {"limits": limits},
        }))
        .unwrap()
    }

    #[test]
    fn limit_range_ok_and_min_max_order() {
        let ok = lr(
            serde_json::json!([{"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "2"}, "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "200m"}}]),
        );
        assert!(validate_limit_range(&ok).is_empty());
        let bad = lr(
            serde_json::json!([{"type": "Container", "min": {"cpu": "3"}, "max": {"cpu": "2"}}]),
        );
        assert_eq!(
            texts(&validate_limit_range(&bad)),
            vec!["spec.limits[0].min[cpu]: Invalid value: \"3\": min value 3 is greater than max value 2"]
        );
    }

    #[test]
    fn limit_range_pod_default_type_and_duplicates() {
        let bad = lr(serde_json::json!([
            {"type": "Pod", "default": {"cpu": "1"}},
            {"type": "Pod"},
            {"type": "Bogus"},
            {"type": "Container", "max": {"pods": "1"}}
        ]));
        let t = texts(&validate_limit_range(&bad));
        assert!(
            t.contains(
                &"spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'"
                    .to_string()
            ),
            "{t:?}"
        );
        assert!(
            t.contains(&"spec.limits[1].type: Duplicate value: \"Pod\"".to_string()),
            "{t:?}"
        );
        assert!(t.contains(&"spec.limits[2].type: Invalid value: \"Bogus\": must be a standard limit type or fully qualified".to_string()), "{t:?}");
        assert!(t.contains(&"spec.limits[3].max[pods]: Invalid value: \"pods\": must be a standard resource for containers".to_string()), "{t:?}");
    }

    #[test]
    fn limit_range_ratio() {
        let bad =
            lr(serde_json::json!([{"type": "Container", "maxLimitRequestRatio": {"cpu": "500m"}}]));
        assert_eq!(
            texts(&validate_limit_range(&bad)),
            vec!["spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: \"500m\": ratio 500m is less than 1"]
        );
    }

    fn quota(spec: serde_json::Value) -> ResourceQuota {
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": "q", "namespace": "d"}, "spec": spec}),
        )
        .unwrap()
    }

    #[test]
    fn quota_names_values_and_scopes() {
        assert!(validate_resource_quota(&quota(serde_json::json!({"hard": {"pods": "10", "requests.cpu": "2", "count/jobs.batch": "5"}}))).is_empty());
        let t = texts(&validate_resource_quota(&quota(
            serde_json::json!({"hard": {"pods": "-1", "bogus": "1", "secrets": "1500m"}}),
        )));
        assert!(
            t.contains(
                &"spec.hard[pods]: Invalid value: \"-1\": must be greater than or equal to 0"
                    .to_string()
            ),
            "{t:?}"
        );
        assert!(t.contains(&"spec.hard[bogus]: Invalid value: \"bogus\": must be a standard resource type or fully qualified".to_string()), "{t:?}");
        assert!(
            t.contains(
                &"spec.hard[secrets]: Invalid value: \"1500m\": must be an integer".to_string()
            ),
            "{t:?}"
        );
        let t = texts(&validate_resource_quota(&quota(
            serde_json::json!({"hard": {"requests.cpu": "1"}, "scopes": ["BestEffort"]}),
        )));
        assert_eq!(t, vec!["spec.hard[requests.cpu]: Invalid value: \"requests.cpu\": unsupported scope applied to resource"]);
    }

    #[test]
    fn quota_scopes_immutable() {
        let old = quota(serde_json::json!({"hard": {"pods": "1"}, "scopes": ["Terminating"]}));
        let new = quota(serde_json::json!({"hard": {"pods": "1"}, "scopes": ["NotTerminating"]}));
        let t = texts(&validate_resource_quota_update(&new, &old));
        assert!(
            t.iter()
                .any(|e| e.starts_with("spec.scopes: Invalid value: ")
                    && e.ends_with("field is immutable")),
            "{t:?}"
        );
    }
}
