//! LimitRanger (SEMANTICS A2, A3; upstream `plugin/pkg/admission/limitranger/admission.go`
//! and `SetDefaults_LimitRangeItem` in `pkg/apis/core/v1/defaults.go`).
//!
//! On a pod create the mutating phase fills, from every `type: Container` item, missing limits
//! from `default` and missing requests from `defaultRequest` in every container (init and
//! sidecars included) and records what it set in the `kubernetes.io/limit-ranger` annotation.
//! The validating phase checks `min`, `max` and `maxLimitRequestRatio` per container
//! (`type: Container`) and on the pod's effective requests/limits without overhead
//! (`type: Pod`, RES1/RES2). The first LimitRange with violations refuses the pod with all of
//! its messages, aggregated.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, LimitRange, LimitRangeItem, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::aggregate_message;
use crate::quantity::Quantity;
use crate::resources::{pod_limits, pod_requests, Overhead, ResourceList};

/// The annotation naming what the plugin defaulted.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";
/// `LimitTypeContainer`.
pub const TYPE_CONTAINER: &str = "Container";
/// `LimitTypePod`.
pub const TYPE_POD: &str = "Pod";

/// `resource.MaxMilliValue`: above it values are compared in whole units.
const MAX_MILLI_VALUE: i64 = i64::MAX / 1000;

type ApiList = BTreeMap<String, ApiQuantity>;

/// `SetDefaults_LimitRangeItem` (A2 item defaults), for `type: Container` items: a missing
/// `default` is `max`; a missing `defaultRequest` is `default`, else `min`. Idempotent.
pub fn default_item(item: &mut LimitRangeItem) {
    if item.type_ != TYPE_CONTAINER {
        return;
    }
    let default = item.default.get_or_insert_with(BTreeMap::new);
    for (k, v) in item.max.iter().flatten() {
        default.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let request = item.default_request.get_or_insert_with(BTreeMap::new);
    for (k, v) in default.iter() {
        request.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in item.min.iter().flatten() {
        request.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// Defaults every item of a LimitRange (what the API server stores).
pub fn default_limit_range(lr: &mut LimitRange) {
    for item in lr.spec.iter_mut().flat_map(|s| s.limits.iter_mut()) {
        default_item(item);
    }
}

fn items(lr: &LimitRange) -> impl Iterator<Item = &LimitRangeItem> {
    lr.spec.iter().flat_map(|s| s.limits.iter())
}

/// An API list as the API server would print it back (canonical quantities); values that do
/// not parse are left out (LimitRange validation refuses them).
fn canonical_list(list: Option<&ApiList>) -> ApiList {
    list.into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            Quantity::parse(&v.0)
                .ok()
                .map(|q| (k.clone(), ApiQuantity(q.to_canonical())))
        })
        .collect()
}

/// `defaultContainerResourceRequirements`: the (requests, limits) defaults of one LimitRange;
/// a later Container item overrides an earlier one's value for the same resource.
fn container_defaults(lr: &LimitRange) -> (ApiList, ApiList) {
    let mut requests = ApiList::new();
    let mut limits = ApiList::new();
    for item in items(lr).filter(|i| i.type_ == TYPE_CONTAINER) {
        let mut item = item.clone();
        default_item(&mut item);
        requests.extend(canonical_list(item.default_request.as_ref()));
        limits.extend(canonical_list(item.default.as_ref()));
    }
    (requests, limits)
}

/// `mergeContainerResources`: fills what is missing, returns the annotation parts.
fn merge_container(
    c: &mut Container,
    requests: &ApiList,
    limits: &ApiList,
    prefix: &str,
) -> Vec<String> {
    let res = c.resources.get_or_insert_with(Default::default);
    let mut set_limits = Vec::new();
    let have = res.limits.get_or_insert_with(BTreeMap::new);
    for (k, v) in limits {
        if !have.contains_key(k) {
            have.insert(k.clone(), v.clone());
            set_limits.push(k.as_str());
        }
    }
    let mut set_requests = Vec::new();
    let have = res.requests.get_or_insert_with(BTreeMap::new);
    for (k, v) in requests {
        if !have.contains_key(k) {
            have.insert(k.clone(), v.clone());
            set_requests.push(k.as_str());
        }
    }
    // Empty maps serialise as absent, as Go's omitempty drops them.
    if res.limits.as_ref().is_some_and(BTreeMap::is_empty) {
        res.limits = None;
    }
    if res.requests.as_ref().is_some_and(BTreeMap::is_empty) {
        res.requests = None;
    }
    let mut out = Vec::new();
    if !set_requests.is_empty() {
        set_requests.sort_unstable();
        out.push(format!(
            "{} request for {prefix} {}",
            set_requests.join(", "),
            c.name
        ));
    }
    if !set_limits.is_empty() {
        set_limits.sort_unstable();
        out.push(format!(
            "{} limit for {prefix} {}",
            set_limits.join(", "),
            c.name
        ));
    }
    out
}

/// A2: the mutating phase (`PodMutateLimitFunc` for each LimitRange, in the given order). Each
/// LimitRange that set something rewrites the annotation, as upstream does.
pub fn mutate(ranges: &[LimitRange], pod: &mut Pod) {
    for lr in ranges {
        let (requests, limits) = container_defaults(lr);
        if requests.is_empty() && limits.is_empty() {
            continue;
        }
        let Some(spec) = pod.spec.as_mut() else {
            return;
        };
        let mut notes = Vec::new();
        for c in &mut spec.containers {
            notes.extend(merge_container(c, &requests, &limits, "container"));
        }
        for c in spec.init_containers.iter_mut().flatten() {
            notes.extend(merge_container(c, &requests, &limits, "init container"));
        }
        if !notes.is_empty() {
            pod.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(
                    ANNOTATION.to_string(),
                    format!("LimitRanger plugin set: {}", notes.join("; ")),
                );
        }
    }
}

fn parse_list(list: Option<&ApiList>) -> ResourceList {
    list.into_iter()
        .flatten()
        .filter_map(|(k, v)| Quantity::parse(&v.0).ok().map(|q| (k.clone(), q)))
        .collect()
}

/// `requestLimitEnforcedValues`: milli units unless a value would overflow them.
fn values(req: Option<&Quantity>, lim: Option<&Quantity>, enforced: &Quantity) -> (i64, i64, i64) {
    let v = |q: Option<&Quantity>, milli: bool| {
        q.map_or(0, |q| if milli { q.milli_value() } else { q.value() })
    };
    let whole = (v(req, false), v(lim, false), enforced.value());
    if whole.0 <= MAX_MILLI_VALUE && whole.1 <= MAX_MILLI_VALUE && whole.2 <= MAX_MILLI_VALUE {
        (v(req, true), v(lim, true), enforced.milli_value())
    } else {
        whole
    }
}

fn min_constraint(
    t: &str,
    r: &str,
    enforced: &Quantity,
    req: &ResourceList,
    lim: &ResourceList,
) -> Option<String> {
    let (rq, lq) = (req.get(r), lim.get(r));
    let (rv, lv, ev) = values(rq, lq, enforced);
    let e = enforced.to_canonical();
    match (rq, lq) {
        (None, _) => Some(format!(
            "minimum {r} usage per {t} is {e}.  No request is specified"
        )),
        (Some(q), _) if rv < ev => Some(format!(
            "minimum {r} usage per {t} is {e}, but request is {}",
            q.to_canonical()
        )),
        (_, Some(l)) if lv < ev => Some(format!(
            "minimum {r} usage per {t} is {e}, but limit is {}",
            l.to_canonical()
        )),
        _ => None,
    }
}

fn max_constraint(
    t: &str,
    r: &str,
    enforced: &Quantity,
    req: &ResourceList,
    lim: &ResourceList,
) -> Option<String> {
    let (rq, lq) = (req.get(r), lim.get(r));
    let (rv, lv, ev) = values(rq, lq, enforced);
    let e = enforced.to_canonical();
    match (rq, lq) {
        (_, None) => Some(format!(
            "maximum {r} usage per {t} is {e}.  No limit is specified"
        )),
        (_, Some(l)) if lv > ev => Some(format!(
            "maximum {r} usage per {t} is {e}, but limit is {}",
            l.to_canonical()
        )),
        (Some(q), _) if rv > ev => Some(format!(
            "maximum {r} usage per {t} is {e}, but request is {}",
            q.to_canonical()
        )),
        _ => None,
    }
}

fn ratio_constraint(
    t: &str,
    r: &str,
    enforced: &Quantity,
    req: &ResourceList,
    lim: &ResourceList,
) -> Option<String> {
    let (rq, lq) = (req.get(r), lim.get(r));
    let (rv, lv, _) = values(rq, lq, enforced);
    let e = enforced.to_canonical();
    if rq.is_none() || rv == 0 {
        return Some(format!(
            "{r} max limit to request ratio per {t} is {e}, but no request is specified or request is 0"
        ));
    }
    if lq.is_none() || lv == 0 {
        return Some(format!(
            "{r} max limit to request ratio per {t} is {e}, but no limit is specified or limit is 0"
        ));
    }
    let display = lv as f64 / rv as f64;
    let (observed, max) = if enforced.value() <= MAX_MILLI_VALUE {
        (display * 1000.0, enforced.milli_value() as f64)
    } else {
        (display, enforced.value() as f64)
    };
    (observed > max).then(|| {
        format!("{r} max limit to request ratio per {t} is {e}, but provided ratio is {display:.6}")
    })
}

/// min, max, then maxLimitRequestRatio of one item against one requests/limits pair.
fn check(item: &LimitRangeItem, req: &ResourceList, lim: &ResourceList, errs: &mut Vec<String>) {
    let t = item.type_.as_str();
    for (r, v) in parse_list(item.min.as_ref()) {
        errs.extend(min_constraint(t, &r, &v, req, lim));
    }
    for (r, v) in parse_list(item.max.as_ref()) {
        errs.extend(max_constraint(t, &r, &v, req, lim));
    }
    for (r, v) in parse_list(item.max_limit_request_ratio.as_ref()) {
        errs.extend(ratio_constraint(t, &r, &v, req, lim));
    }
}

/// `PodValidateLimitFunc` for one LimitRange: every violation, in upstream order.
pub fn violations(lr: &LimitRange, spec: &PodSpec) -> Vec<String> {
    let mut errs = Vec::new();
    for item in items(lr) {
        if item.type_ == TYPE_CONTAINER {
            for c in spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
            {
                let res = c.resources.as_ref();
                let req = parse_list(res.and_then(|r| r.requests.as_ref()));
                let lim = parse_list(res.and_then(|r| r.limits.as_ref()));
                check(item, &req, &lim, &mut errs);
            }
        } else if item.type_ == TYPE_POD {
            let req = pod_requests(spec, Overhead::Exclude);
            let lim = pod_limits(spec, Overhead::Exclude);
            check(item, &req, &lim, &mut errs);
        }
    }
    errs
}

/// A3: the validating phase over the namespace's LimitRanges in order: the first one with
/// violations refuses the pod; the message is their aggregate (the text after
/// `pods "x" is forbidden: `).
pub fn validate(ranges: &[LimitRange], spec: &PodSpec) -> Result<(), String> {
    for lr in ranges {
        let errs = violations(lr, spec);
        if !errs.is_empty() {
            return Err(aggregate_message(&errs));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lr(limits: serde_json::Value) -> LimitRange {
        serde_json::from_value(json!({"metadata": {"name": "lr"}, "spec": {"limits": limits}}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn pod(spec: serde_json::Value) -> Pod {
        let mut p: Pod = serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": spec}))
            .unwrap_or_else(|e| panic!("{e}"));
        crate::defaults::default_pod(&mut p);
        p
    }

    fn spec(p: &Pod) -> &PodSpec {
        p.spec.as_ref().unwrap_or_else(|| panic!("no spec"))
    }

    fn res(p: &Pod, init: bool, i: usize) -> serde_json::Value {
        let s = spec(p);
        let c = if init {
            s.init_containers.as_ref().and_then(|v| v.get(i))
        } else {
            s.containers.get(i)
        };
        serde_json::to_value(c.and_then(|c| c.resources.clone())).unwrap_or_default()
    }

    #[test]
    fn a2_item_defaults_max_default_min() {
        let mut item: LimitRangeItem = serde_json::from_value(json!({
            "type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        default_item(&mut item);
        let v = serde_json::to_value(&item).unwrap_or_default();
        assert_eq!(v["default"], json!({"cpu": "2"}));
        assert_eq!(v["defaultRequest"], json!({"cpu": "2", "memory": "64Mi"}));
        // Pod items get no defaults.
        let mut pod_item: LimitRangeItem =
            serde_json::from_value(json!({"type": "Pod", "max": {"cpu": "2"}}))
                .unwrap_or_else(|e| panic!("{e}"));
        default_item(&mut pod_item);
        assert!(pod_item.default.is_none());
    }

    #[test]
    fn a2_defaults_fill_every_container_and_annotate() {
        let ranges = [lr(json!([{
            "type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"}
        }]))];
        let mut p = pod(json!({
            "initContainers": [
                {"name": "proxy", "image": "i", "restartPolicy": "Always",
                 "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}},
                {"name": "init", "image": "i", "resources": {"limits": {"memory": "1Gi"}}}
            ],
            "containers": [{"name": "app", "image": "i"}]
        }));
        mutate(&ranges, &mut p);
        assert_eq!(
            res(&p, false, 0),
            json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}})
        );
        // D5 ran first: init's memory request is its limit, so only cpu is defaulted.
        assert_eq!(
            res(&p, true, 1),
            json!({"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "1Gi"}})
        );
        assert_eq!(
            p.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION)).map(String::as_str),
            Some(
                "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for container app; \
                 cpu, memory limit for init container proxy; cpu request for init container init; cpu limit for init container init"
            )
        );
    }

    #[test]
    fn a2_nothing_to_set_no_annotation() {
        let ranges = [lr(json!([{"type": "Container", "default": {"cpu": "1"}}]))];
        let mut p = pod(json!({"containers": [{"name": "app", "image": "i",
            "resources": {"limits": {"cpu": "2"}}}]}));
        mutate(&ranges, &mut p);
        assert!(p.metadata.annotations.is_none());
        // A LimitRange without defaults changes nothing either.
        let mut q = pod(json!({"containers": [{"name": "app", "image": "i"}]}));
        mutate(&[lr(json!([{"type": "Pod", "max": {"cpu": "1"}}]))], &mut q);
        assert!(q.metadata.annotations.is_none());
        assert_eq!(res(&q, false, 0), serde_json::Value::Null);
    }

    #[test]
    fn a3_container_min_max_ratio_texts_and_aggregate() {
        let ranges = [lr(json!([{
            "type": "Container",
            "min": {"cpu": "100m"},
            "max": {"memory": "1Gi"},
            "maxLimitRequestRatio": {"cpu": "2"}
        }]))];
        let p = pod(json!({
            "initContainers": [{"name": "init", "image": "i",
                "resources": {"requests": {"cpu": "200m"}, "limits": {"cpu": "200m", "memory": "512Mi"}}}],
            "containers": [{"name": "app", "image": "i",
                "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "200m", "memory": "2Gi"}}}]
        }));
        assert_eq!(
            validate(&ranges, spec(&p)),
            Err("[minimum cpu usage per Container is 100m, but request is 50m, \
                 maximum memory usage per Container is 1Gi, but limit is 2Gi, \
                 cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000]"
                .into())
        );
    }

    #[test]
    fn a3_missing_request_and_limit_texts() {
        let ranges = [lr(
            json!([{"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"}}]),
        )];
        let p = pod(json!({"containers": [{"name": "app", "image": "i"}]}));
        assert_eq!(
            validate(&ranges, spec(&p)),
            Err(
                "[minimum cpu usage per Container is 100m.  No request is specified, \
                 maximum cpu usage per Container is 1.  No limit is specified]"
                    .into()
            )
        );
        let ratio = [lr(
            json!([{"type": "Container", "maxLimitRequestRatio": {"memory": "2"}}]),
        )];
        assert_eq!(
            validate(&ratio, spec(&p)),
            Err("memory max limit to request ratio per Container is 2, but no request is specified or request is 0".into())
        );
    }

    #[test]
    fn a3_init_container_checked_too() {
        let ranges = [lr(json!([{"type": "Container", "max": {"cpu": "1"}}]))];
        let p = pod(json!({
            "initContainers": [{"name": "init", "image": "i", "resources": {"limits": {"cpu": "3"}}}],
            "containers": [{"name": "app", "image": "i", "resources": {"limits": {"cpu": "1"}}}]
        }));
        assert_eq!(
            validate(&ranges, spec(&p)),
            Err("maximum cpu usage per Container is 1, but limit is 3".into())
        );
    }

    #[test]
    fn a3_pod_type_uses_effective_values_without_overhead() {
        let ranges = [lr(json!([{"type": "Pod", "max": {"cpu": "1"}}]))];
        // Steady state 600m + 300m sidecar = 900m; the regular init container's 500m plus the
        // earlier sidecar's 300m = 800m; overhead (200m) is not counted: fits.
        let ok = pod(json!({
            "overhead": {"cpu": "200m"},
            "initContainers": [
                {"name": "proxy", "image": "i", "restartPolicy": "Always", "resources": {"limits": {"cpu": "300m"}}},
                {"name": "init", "image": "i", "resources": {"limits": {"cpu": "500m"}}}
            ],
            "containers": [{"name": "app", "image": "i", "resources": {"limits": {"cpu": "600m"}}}]
        }));
        assert_eq!(validate(&ranges, spec(&ok)), Ok(()));
        let big = pod(json!({
            "initContainers": [
                {"name": "proxy", "image": "i", "restartPolicy": "Always", "resources": {"limits": {"cpu": "300m"}}},
                {"name": "init", "image": "i", "resources": {"limits": {"cpu": "900m"}}}
            ],
            "containers": [{"name": "app", "image": "i", "resources": {"limits": {"cpu": "100m"}}}]
        }));
        assert_eq!(
            validate(&ranges, spec(&big)),
            Err("maximum cpu usage per Pod is 1, but limit is 1200m".into())
        );
    }

    #[test]
    fn a3_first_failing_limit_range_wins() {
        let ranges = [
            lr(json!([{"type": "Container", "max": {"cpu": "4"}}])),
            lr(json!([{"type": "Container", "max": {"cpu": "1"}}])),
            lr(json!([{"type": "Container", "max": {"cpu": "500m"}}])),
        ];
        let p = pod(
            json!({"containers": [{"name": "app", "image": "i", "resources": {"limits": {"cpu": "2"}}}]}),
        );
        assert_eq!(
            validate(&ranges, spec(&p)),
            Err("maximum cpu usage per Container is 1, but limit is 2".into())
        );
    }
}
