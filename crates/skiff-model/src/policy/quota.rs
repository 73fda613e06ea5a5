//! ResourceQuota for pods (SEMANTICS A4; upstream `pkg/quota/v1/evaluator/core/pods.go`, the
//! admission check `CheckRequest` in
//! `staging/src/k8s.io/apiserver/pkg/admission/plugin/resourcequota/controller.go`, and the
//! helpers of `k8s.io/apiserver/pkg/quota/v1`).
//!
//! A pod is charged its effective requests and limits with overhead (RES1/RES2, sidecars as
//! the scheduler counts them) under `cpu`/`requests.cpu`/`limits.cpu`, the memory and
//! ephemeral-storage analogues, hugepages, extended resources as `requests.<name>`, `pods`,
//! and `count/pods`. Terminal pods, and pods past twice their deletion grace, are charged only
//! `count/pods`. A quota applies to a pod when it tracks a pod resource and every scope
//! matches.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, Pod, PodAffinityTerm, ResourceQuota, ScopedResourceSelectorRequirement,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use crate::quantity::{Format, Quantity};
use crate::resources::{
    pod_level_resources_set, pod_limits, pod_requests, qos_class, Overhead, QosClass, ResourceList,
};

const COUNT_PODS: &str = "count/pods";
const REQUESTS_PREFIX: &str = "requests.";
const HUGEPAGES_PREFIX: &str = "hugepages-";

/// `podResources`: the quota names the pod evaluator tracks (besides the prefixed ones).
const POD_RESOURCES: &[&str] = &[
    COUNT_PODS,
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];

/// `validationSet`: quota'd names every container must set (a backward-compatibility rule).
const VALIDATION_SET: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// One ResourceQuota as admission sees it.
#[derive(Clone, Debug)]
pub struct QuotaView {
    pub name: String,
    /// `status.hard`, or `spec.hard` before the status was first written.
    pub hard: ResourceList,
    /// `spec.scopes` (operator Exists) then `spec.scopeSelector.matchExpressions`.
    pub selectors: Vec<ScopedResourceSelectorRequirement>,
}

fn parse_list(list: Option<&BTreeMap<String, ApiQuantity>>) -> ResourceList {
    list.into_iter()
        .flatten()
        .filter_map(|(k, v)| Quantity::parse(&v.0).ok().map(|q| (k.clone(), q)))
        .collect()
}

impl QuotaView {
    pub fn from_api(q: &ResourceQuota) -> QuotaView {
        let status_hard = q.status.as_ref().and_then(|s| s.hard.as_ref());
        let spec = q.spec.as_ref();
        let hard = match status_hard {
            Some(h) if !h.is_empty() => parse_list(Some(h)),
            _ => parse_list(spec.and_then(|s| s.hard.as_ref())),
        };
        let mut selectors: Vec<ScopedResourceSelectorRequirement> = spec
            .and_then(|s| s.scopes.as_ref())
            .into_iter()
            .flatten()
            .map(|scope| ScopedResourceSelectorRequirement {
                scope_name: scope.clone(),
                operator: "Exists".into(),
                values: None,
            })
            .collect();
        selectors.extend(
            spec.and_then(|s| s.scope_selector.as_ref())
                .and_then(|s| s.match_expressions.clone())
                .unwrap_or_default(),
        );
        QuotaView {
            name: q.metadata.name.clone().unwrap_or_default(),
            hard,
            selectors,
        }
    }

    /// `MatchingResources` of the hard names: what of this quota the pod evaluator tracks.
    pub fn pod_resources(&self) -> Vec<String> {
        self.hard
            .keys()
            .filter(|k| is_pod_resource(k))
            .cloned()
            .collect()
    }
}

/// Whether a quota name is tracked for pods.
pub fn is_pod_resource(name: &str) -> bool {
    POD_RESOURCES.contains(&name)
        || name.starts_with(HUGEPAGES_PREFIX)
        || name.starts_with("requests.hugepages-")
        || (name.starts_with(REQUESTS_PREFIX) && !is_native(name))
}

/// `IsNativeResource`: unqualified, or in the `kubernetes.io/` domain.
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// `IsExtendedResourceName`.
fn is_extended(name: &str) -> bool {
    !is_native(name) && !name.starts_with(REQUESTS_PREFIX)
}

fn one() -> Quantity {
    Quantity::new(1, 0, Format::DecimalSI)
}

/// `podComputeUsageHelper`: the quota names charged for these requests and limits.
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("pods".into(), one());
    for r in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(r) {
            out.insert(r.into(), q.clone());
            out.insert(format!("{REQUESTS_PREFIX}{r}"), q.clone());
        }
        if let Some(q) = limits.get(r) {
            out.insert(format!("limits.{r}"), q.clone());
        }
    }
    for (r, q) in requests {
        if r.starts_with(HUGEPAGES_PREFIX) {
            out.insert(r.clone(), q.clone());
            out.insert(format!("{REQUESTS_PREFIX}{r}"), q.clone());
        } else if is_extended(r) {
            out.insert(format!("{REQUESTS_PREFIX}{r}"), q.clone());
        }
    }
    out
}

fn time_of(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<i64> {
    t.map(|t| t.0.as_second())
}

/// `QuotaV1Pod`: not terminal, and not stuck terminating (now past deletionTimestamp plus the
/// grace period again).
pub fn is_charged(pod: &Pod, now: i64) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    let m = &pod.metadata;
    if let (Some(ts), Some(grace)) = (
        time_of(m.deletion_timestamp.as_ref()),
        m.deletion_grace_period_seconds,
    ) {
        if now > ts.saturating_add(grace) {
            return false;
        }
    }
    true
}

/// `PodUsageFunc`: what the pod is charged (`count/pods` always).
pub fn pod_usage(pod: &Pod, now: i64) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert(COUNT_PODS.into(), one());
    if !is_charged(pod, now) {
        return out;
    }
    let Some(spec) = pod.spec.as_ref() else {
        return out;
    };
    let usage = compute_usage(
        &pod_requests(spec, Overhead::Include),
        &pod_limits(spec, Overhead::Include),
    );
    add_into(&mut out, &usage);
    out
}

/// `quota.Add` into `a`: the receiver's format survives unless it is zero.
fn add_into(a: &mut ResourceList, b: &ResourceList) {
    for (k, v) in b {
        match a.get_mut(k) {
            Some(q) => q.add(v),
            None => {
                a.insert(k.clone(), v.clone());
            }
        }
    }
}

fn is_terminating(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .is_some_and(|d| d >= 0)
}

fn is_best_effort(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .is_none_or(|s| qos_class(s) == QosClass::BestEffort)
}

fn cross_namespace(terms: Option<&Vec<PodAffinityTerm>>) -> bool {
    terms.into_iter().flatten().any(|t| {
        t.namespaces.as_ref().is_some_and(|n| !n.is_empty()) || t.namespace_selector.is_some()
    })
}

fn cross_namespace_weighted(terms: Option<&Vec<WeightedPodAffinityTerm>>) -> bool {
    terms.into_iter().flatten().any(|t| {
        let t = &t.pod_affinity_term;
        t.namespaces.as_ref().is_some_and(|n| !n.is_empty()) || t.namespace_selector.is_some()
    })
}

fn uses_cross_namespace_affinity(pod: &Pod) -> bool {
    let Some(a) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
        return false;
    };
    let aff = a.pod_affinity.as_ref();
    let anti = a.pod_anti_affinity.as_ref();
    cross_namespace(aff.and_then(|x| {
        x.required_during_scheduling_ignored_during_execution
            .as_ref()
    })) || cross_namespace_weighted(aff.and_then(|x| {
        x.preferred_during_scheduling_ignored_during_execution
            .as_ref()
    })) || cross_namespace(anti.and_then(|x| {
        x.required_during_scheduling_ignored_during_execution
            .as_ref()
    })) || cross_namespace_weighted(anti.and_then(|x| {
        x.preferred_during_scheduling_ignored_during_execution
            .as_ref()
    }))
}

/// `podMatchesScopeFunc`.
pub fn matches_scope(sel: &ScopedResourceSelectorRequirement, pod: &Pod) -> bool {
    match sel.scope_name.as_str() {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "PriorityClass" => {
            let class = pod
                .spec
                .as_ref()
                .and_then(|s| s.priority_class_name.as_deref())
                .filter(|c| !c.is_empty());
            let values = sel.values.as_deref().unwrap_or(&[]);
            // A label selector over {PriorityClass: <name>} (podMatchesSelector).
            match sel.operator.as_str() {
                "Exists" => class.is_some(),
                "DoesNotExist" => class.is_none(),
                "In" => class.is_some_and(|c| values.iter().any(|v| v == c)),
                "NotIn" => class.is_none_or(|c| !values.iter().any(|v| v == c)),
                _ => false,
            }
        }
        "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(pod),
        _ => false,
    }
}

/// `generic.Matches`: the quota tracks a pod resource and every scope matches.
pub fn matches(q: &QuotaView, pod: &Pod) -> bool {
    !q.pod_resources().is_empty() && q.selectors.iter().all(|s| matches_scope(s, pod))
}

/// The quota's `status.used` over the namespace's pods (`CalculateUsageStats`): every tracked
/// hard name, starting at 0, plus each matching pod's usage.
pub fn used(q: &QuotaView, pods: &[Pod], now: i64) -> ResourceList {
    let names = q.pod_resources();
    let mut out: ResourceList = names
        .iter()
        .map(|n| (n.clone(), Quantity::zero(Format::DecimalSI)))
        .collect();
    for pod in pods {
        if !q.selectors.iter().all(|s| matches_scope(s, pod)) {
            continue;
        }
        let usage = pod_usage(pod, now);
        for n in &names {
            if let Some(v) = usage.get(n) {
                if let Some(total) = out.get_mut(n) {
                    total.add(v);
                }
            }
        }
    }
    out
}

/// `enforcePodContainerConstraints`: the required names this container does not set.
fn missing(c: &Container, required: &BTreeSet<&str>) -> Vec<String> {
    let res = c.resources.as_ref();
    let usage = compute_usage(
        &parse_list(res.and_then(|r| r.requests.as_ref())),
        &parse_list(res.and_then(|r| r.limits.as_ref())),
    );
    required
        .iter()
        .filter(|r| !usage.contains_key(**r))
        .map(|r| (*r).to_string())
        .collect()
}

/// `podEvaluator.Constraints`: if the quota tracks cpu or memory names, every container (init
/// and sidecars included) must set them: `must specify limits.cpu for: app,proxy;
/// requests.memory for: init`. Pods with pod-level resources are exempt.
pub fn constraints(restricted: &[String], pod: &Pod) -> Result<(), String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    if pod_level_resources_set(spec) {
        return Ok(());
    }
    let required: BTreeSet<&str> = restricted
        .iter()
        .map(String::as_str)
        .filter(|r| VALIDATION_SET.contains(r))
        .collect();
    if required.is_empty() {
        return Ok(());
    }
    let mut by_resource: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for r in missing(c, &required) {
            by_resource.entry(r).or_default().insert(c.name.clone());
        }
    }
    if by_resource.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = by_resource
        .iter()
        .map(|(r, names)| {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            format!("{r} for: {}", names.join(","))
        })
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}

/// `prettyPrint`: `a=1,b=2Gi` in name order.
pub fn pretty(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={}", v.to_canonical()))
        .collect::<Vec<_>>()
        .join(",")
}

fn mask(list: &ResourceList, names: &BTreeSet<String>) -> ResourceList {
    list.iter()
        .filter(|(k, _)| names.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A4: admission of a new pod against the namespace's quotas, each with its current usage
/// (`CheckRequest` for a create). Returns the refusal message (the text after
/// `pods "x" is forbidden: `).
pub fn admit(quotas: &[(QuotaView, ResourceList)], pod: &Pod, now: i64) -> Result<(), String> {
    let mut interesting = Vec::new();
    for (i, (q, _)) in quotas.iter().enumerate() {
        if !matches(q, pod) {
            continue;
        }
        constraints(&q.pod_resources(), pod)
            .map_err(|e| format!("failed quota: {}: {e}", q.name))?;
        interesting.push(i);
    }
    if interesting.is_empty() {
        return Ok(());
    }
    let usage = pod_usage(pod, now);
    let negative: Vec<&str> = usage
        .iter()
        .filter(|(_, v)| v.is_negative())
        .map(|(k, _)| k.as_str())
        .collect();
    if !negative.is_empty() {
        return Err(format!(
            "quota usage is negative for resource(s): {}",
            negative.join(",")
        ));
    }
    let delta: ResourceList = usage.into_iter().filter(|(_, v)| !v.is_zero()).collect();
    for i in interesting {
        let Some((q, used)) = quotas.get(i) else {
            continue;
        };
        let hard_names: BTreeSet<String> = q.hard.keys().cloned().collect();
        let requested = mask(&delta, &hard_names);
        if requested.is_empty() {
            continue;
        }
        let mut new_usage = used.clone();
        add_into(&mut new_usage, &requested);
        let exceeded: BTreeSet<String> = q
            .hard
            .iter()
            .filter(|(k, hard)| {
                requested.contains_key(*k) && new_usage.get(*k).is_some_and(|n| n > *hard)
            })
            .map(|(k, _)| k.clone())
            .collect();
        if !exceeded.is_empty() {
            return Err(format!(
                "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                q.name,
                pretty(&mask(&requested, &exceeded)),
                pretty(&mask(used, &exceeded)),
                pretty(&mask(&q.hard, &exceeded)),
            ));
        }
    }
    Ok(())
}

/// The canonical API form of a resource list (for `status.hard` / `status.used`).
pub fn to_api(list: &ResourceList) -> BTreeMap<String, ApiQuantity> {
    list.iter()
        .map(|(k, v)| (k.clone(), ApiQuantity(v.to_canonical())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn quota(spec: serde_json::Value) -> QuotaView {
        let q: ResourceQuota =
            serde_json::from_value(json!({"metadata": {"name": "q"}, "spec": spec}))
                .unwrap_or_else(|e| panic!("{e}"));
        QuotaView::from_api(&q)
    }

    fn pod(spec: serde_json::Value) -> Pod {
        let mut p: Pod = serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": spec}))
            .unwrap_or_else(|e| panic!("{e}"));
        crate::defaults::default_pod(&mut p);
        p
    }

    fn app(cpu: &str, mem: &str) -> serde_json::Value {
        json!({"containers": [{"name": "app", "image": "i",
            "resources": {"limits": {"cpu": cpu, "memory": mem}}}]})
    }

    fn list(items: &[(&str, &str)]) -> ResourceList {
        items
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Quantity::parse(v).unwrap_or_else(|e| panic!("{e}")),
                )
            })
            .collect()
    }

    #[test]
    fn a4_usage_with_overhead_and_sidecars() {
        let p = pod(json!({
            "overhead": {"cpu": "10m", "memory": "16Mi"},
            "initContainers": [
                {"name": "proxy", "image": "i", "restartPolicy": "Always",
                 "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "init", "image": "i", "resources": {"requests": {"cpu": "1", "hugepages-2Mi": "4Mi", "example.com/gpu": "1"}}}
            ],
            "containers": [{"name": "app", "image": "i",
                "resources": {"requests": {"cpu": "200m", "memory": "128Mi", "ephemeral-storage": "1Gi"}}}]
        }));
        let u = pod_usage(&p, 0);
        let canon: BTreeMap<String, String> = u
            .iter()
            .map(|(k, v)| (k.clone(), v.to_canonical()))
            .collect();
        assert_eq!(
            serde_json::to_value(&canon).unwrap_or_default(),
            json!({
                "count/pods": "1", "pods": "1",
                // init peak 1 + sidecar 100m = 1100m, plus 10m overhead
                "cpu": "1110m", "requests.cpu": "1110m",
                "limits.cpu": "110m",
                "memory": "208Mi", "requests.memory": "208Mi", "limits.memory": "80Mi",
                "ephemeral-storage": "1Gi", "requests.ephemeral-storage": "1Gi",
                "hugepages-2Mi": "4Mi", "requests.hugepages-2Mi": "4Mi",
                "requests.example.com/gpu": "1"
            })
        );
    }

    #[test]
    fn a4_terminal_and_long_deleted_pods_only_count() {
        let mut p = pod(app("1", "1Gi"));
        p.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        assert_eq!(
            pod_usage(&p, 0).keys().collect::<Vec<_>>(),
            vec!["count/pods"]
        );
        let mut d = pod(app("1", "1Gi"));
        d.metadata = serde_json::from_value(json!({
            "name": "x", "deletionTimestamp": "2026-01-01T00:00:30Z", "deletionGracePeriodSeconds": 30
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let ts = 1_767_225_630; // 2026-01-01T00:00:30Z
        assert!(is_charged(&d, ts + 30));
        assert!(!is_charged(&d, ts + 31));
        let q = quota(json!({"hard": {"pods": "5", "count/pods": "5", "cpu": "4"}}));
        let u = used(&q, &[p, d, pod(app("500m", "1Gi"))], ts + 31);
        assert_eq!(pretty(&u), "count/pods=3,cpu=500m,pods=1");
    }

    #[test]
    fn a4_must_specify_text() {
        let q = quota(json!({"hard": {"limits.cpu": "4", "requests.memory": "4Gi", "pods": "10"}}));
        let p = pod(json!({
            "initContainers": [
                {"name": "proxy", "image": "i", "restartPolicy": "Always", "resources": {"requests": {"memory": "1Mi"}}},
                {"name": "init", "image": "i", "resources": {"limits": {"cpu": "1"}}}
            ],
            "containers": [{"name": "app", "image": "i", "resources": {"requests": {"memory": "1Mi"}}}]
        }));
        assert_eq!(
            admit(&[(q, ResourceList::new())], &p, 0),
            Err("failed quota: q: must specify limits.cpu for: app,proxy; requests.memory for: init".into())
        );
    }

    #[test]
    fn a4_exceeded_text_and_fit() {
        let q = quota(json!({"hard": {"cpu": "1", "memory": "2Gi", "pods": "10"}}));
        let used = list(&[("cpu", "800m"), ("memory", "1Gi"), ("pods", "1")]);
        let p = pod(app("500m", "512Mi"));
        assert_eq!(
            admit(&[(q.clone(), used)], &p, 0),
            Err("exceeded quota: q, requested: cpu=500m, used: cpu=800m, limited: cpu=1".into())
        );
        let used = list(&[("cpu", "500m"), ("memory", "1Gi"), ("pods", "1")]);
        assert_eq!(admit(&[(q, used)], &p, 0), Ok(()));
        // Several names exceeded: all listed, in name order.
        let q = quota(json!({"hard": {"pods": "1", "count/pods": "1"}}));
        let used = list(&[("pods", "1"), ("count/pods", "1")]);
        assert_eq!(
            admit(&[(q, used)], &pod(app("1", "1Gi")), 0),
            Err("exceeded quota: q, requested: count/pods=1,pods=1, used: count/pods=1,pods=1, limited: count/pods=1,pods=1".into())
        );
    }

    #[test]
    fn a4_scopes() {
        let terminating =
            pod(json!({"activeDeadlineSeconds": 10, "containers": [{"name": "a", "image": "i"}]}));
        let best_effort = pod(json!({"containers": [{"name": "a", "image": "i"}]}));
        let burstable = pod(app("1", "1Gi"));
        let q = |scopes: serde_json::Value| quota(json!({"hard": {"pods": "0"}, "scopes": scopes}));
        let refused =
            |q: &QuotaView, p: &Pod| admit(&[(q.clone(), ResourceList::new())], p, 0).is_err();
        assert!(refused(&q(json!(["Terminating"])), &terminating));
        assert!(!refused(&q(json!(["Terminating"])), &best_effort));
        assert!(refused(&q(json!(["NotTerminating"])), &best_effort));
        assert!(refused(&q(json!(["BestEffort"])), &best_effort));
        assert!(!refused(&q(json!(["BestEffort"])), &burstable));
        assert!(refused(&q(json!(["NotBestEffort"])), &burstable));
        assert!(!refused(
            &q(json!(["NotBestEffort", "NotTerminating"])),
            &terminating
        ));
        let by_class = quota(
            json!({"hard": {"pods": "0"}, "scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}),
        );
        let mut high =
            pod(json!({"priorityClassName": "high", "containers": [{"name": "a", "image": "i"}]}));
        assert!(refused(&by_class, &high));
        assert!(!refused(&by_class, &best_effort));
        if let Some(s) = high.spec.as_mut() {
            s.priority_class_name = Some("low".into());
        }
        assert!(!refused(&by_class, &high));
        // A quota tracking nothing a pod uses does not apply at all.
        let other = quota(json!({"hard": {"configmaps": "0"}}));
        assert!(!refused(&other, &burstable));
    }

    #[test]
    fn a4_used_matches_scopes_and_formats() {
        let q = quota(
            json!({"hard": {"requests.memory": "4Gi", "cpu": "2"}, "scopes": ["NotBestEffort"]}),
        );
        let pods = [
            pod(app("250m", "1Gi")),
            pod(app("250m", "512Mi")),
            pod(json!({"containers": [{"name": "a", "image": "i"}]})),
        ];
        assert_eq!(
            pretty(&used(&q, &pods, 0)),
            "cpu=500m,requests.memory=1536Mi"
        );
    }
}
