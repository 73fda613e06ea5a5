//! Effective pod resources, QoS class, `oom_score_adj` and cgroup values (SEMANTICS RES, CG).
//!
//! Everything here is a pure function of a [`PodSpec`] that has already been through API
//! defaulting ([`crate::defaults::default_pod`]: D5 requests-from-limits, D6 milli rounding).
//! The arithmetic follows the upstream helpers step by step, including which operand's
//! quantity format survives an addition (Go `Quantity.Add` keeps the receiver's format unless
//! the receiver is zero), because the canonical strings (`1088Mi` rather than `1140850688`)
//! depend on it.
//!
//! Quantities that do not parse are skipped (treated as absent): validation reports them,
//! and nothing here may panic.
//!
//! Pod-level resources (`spec.resources`, RES5) are handled as the upstream code does with
//! the `PodLevelResources` feature gate enabled: they replace the aggregated cpu/memory/
//! hugepages values and, when present, alone decide the QoS class. Whether such pods are
//! accepted at all is validation's decision; [`pod_level_resources_set`] lets it ask.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use serde::Serialize;

use crate::quantity::Quantity;

/// Resource name → exact quantity. Sorted, so serialised output has sorted keys.
pub type ResourceList = BTreeMap<String, Quantity>;

/// The list type used by the Kubernetes API objects.
type ApiList = BTreeMap<String, ApiQuantity>;

const CPU: &str = "cpu";
const MEMORY: &str = "memory";
const HUGEPAGES_PREFIX: &str = "hugepages-";

/// Whether `spec.overhead` is added (RES1 step 5, RES2). Scheduler, kubelet admission, cgroups
/// and ResourceQuota include it; LimitRanger's Pod-type check excludes it (RES7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Overhead {
    #[default]
    Include,
    Exclude,
}

/// Pod QoS class (RES4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The API spelling (`status.qosClass`).
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

impl std::fmt::Display for QosClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Resource lists
// ---------------------------------------------------------------------------------------------

/// Parses an API resource list, skipping unparseable values.
fn parse_list(list: Option<&ApiList>) -> ResourceList {
    list.into_iter()
        .flatten()
        .filter_map(|(name, q)| Quantity::parse(&q.0).ok().map(|q| (name.clone(), q)))
        .collect()
}

fn requests_of(c: &Container) -> Option<&ApiList> {
    c.resources.as_ref().and_then(|r| r.requests.as_ref())
}

fn limits_of(c: &Container) -> Option<&ApiList> {
    c.resources.as_ref().and_then(|r| r.limits.as_ref())
}

/// One value of an API list as an exact quantity; missing or unparseable → `None`.
fn get(list: Option<&ApiList>, name: &str) -> Option<Quantity> {
    list.and_then(|l| l.get(name))
        .and_then(|q| Quantity::parse(&q.0).ok())
}

/// Whole units (rounded up, Go `Value()`) of one value; missing → 0.
fn value_of(list: Option<&ApiList>, name: &str) -> i64 {
    get(list, name).map_or(0, |q| q.value())
}

/// Adds every entry of `new` to `list`, inserting copies of missing ones
/// (upstream `addResourceList`). The existing entry's format survives unless it is zero.
fn add_resource_list(list: &mut ResourceList, new: &ResourceList) {
    for (name, q) in new {
        match list.get_mut(name) {
            Some(existing) => existing.add(q),
            None => {
                list.insert(name.clone(), q.clone());
            }
        }
    }
}

/// Sets each entry of `list` to the greater of itself and `new`'s entry, for every resource
/// in `new` (upstream `maxResourceList`). On a tie the existing entry (and its format) stays.
fn max_resource_list(list: &mut ResourceList, new: &ResourceList) {
    for (name, q) in new {
        match list.get_mut(name) {
            Some(existing) if *q > *existing => *existing = q.clone(),
            Some(_) => {}
            None => {
                list.insert(name.clone(), q.clone());
            }
        }
    }
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Which per-container list is aggregated.
#[derive(Clone, Copy)]
enum Kind {
    Requests,
    Limits,
}

/// RES1/RES2 steps 1–4 (upstream `aggregateContainerResourcesByFn`, and before it the loops in
/// `PodRequests`/`PodLimits`). `visit` sees what upstream's `ContainerFn` saw: each app
/// container's own list, and for each init container its *cumulative* list (sidecar: all
/// sidecars so far including itself; regular init: own + earlier sidecars).
fn aggregate(spec: &PodSpec, kind: Kind, mut visit: impl FnMut(&ResourceList)) -> ResourceList {
    let own = |c: &Container| match kind {
        Kind::Requests => parse_list(requests_of(c)),
        Kind::Limits => parse_list(limits_of(c)),
    };

    let mut result = ResourceList::new();
    for c in &spec.containers {
        let list = own(c);
        visit(&list);
        add_resource_list(&mut result, &list);
    }

    // While init container i runs, the sidecars declared before it run too.
    let mut sidecars = ResourceList::new();
    let mut init_peak = ResourceList::new();
    for c in spec.init_containers.iter().flatten() {
        let list = own(c);
        let candidate = if is_sidecar(c) {
            add_resource_list(&mut result, &list);
            add_resource_list(&mut sidecars, &list);
            sidecars.clone()
        } else {
            let mut combined = ResourceList::new();
            add_resource_list(&mut combined, &list);
            add_resource_list(&mut combined, &sidecars);
            combined
        };
        visit(&candidate);
        max_resource_list(&mut init_peak, &candidate);
    }
    max_resource_list(&mut result, &init_peak);
    result
}

fn is_supported_pod_level_resource(name: &str) -> bool {
    name == CPU || name == MEMORY || name.starts_with(HUGEPAGES_PREFIX)
}

fn has_supported(list: Option<&ApiList>) -> bool {
    list.into_iter()
        .flatten()
        .any(|(name, _)| is_supported_pod_level_resource(name))
}

fn pod_level(spec: &PodSpec) -> Option<&ResourceRequirements> {
    spec.resources.as_ref()
}

/// Whether pod-level `spec.resources` name any supported resource (cpu, memory, hugepages-*)
/// in requests or limits (upstream `IsPodLevelResourcesSet`).
pub fn pod_level_resources_set(spec: &PodSpec) -> bool {
    pod_level(spec)
        .is_some_and(|r| has_supported(r.requests.as_ref()) || has_supported(r.limits.as_ref()))
}

/// Upstream `IsPodLevelRequestsSet`.
fn pod_level_requests_set(spec: &PodSpec) -> bool {
    pod_level(spec).is_some_and(|r| has_supported(r.requests.as_ref()))
}

/// Upstream `applyPodLevelResources`: pod-level values replace the aggregated ones.
fn apply_pod_level(result: &mut ResourceList, pod_level: Option<&ApiList>) {
    for (name, q) in parse_list(pod_level) {
        if is_supported_pod_level_resource(&name) {
            result.insert(name, q);
        }
    }
}

/// Effective pod requests (RES1, RES3; upstream `PodRequests`).
///
/// Steady state (apps + sidecars) versus the init-phase peak, per resource; then pod-level
/// requests if set (RES5); then `spec.overhead` unless excluded, creating missing keys.
pub fn pod_requests(spec: &PodSpec, overhead: Overhead) -> ResourceList {
    let mut reqs = aggregate(spec, Kind::Requests, |_| {});
    if pod_level_requests_set(spec) {
        apply_pod_level(&mut reqs, pod_level(spec).and_then(|r| r.requests.as_ref()));
    }
    if overhead == Overhead::Include {
        add_resource_list(&mut reqs, &parse_list(spec.overhead.as_ref()));
    }
    reqs
}

/// Effective pod limits (RES2, RES3; upstream `PodLimits`).
///
/// Same aggregation over limits; a container without a limit contributes nothing. Overhead
/// is added only where the aggregated limit exists and is non-zero.
pub fn pod_limits(spec: &PodSpec, overhead: Overhead) -> ResourceList {
    pod_limits_visiting(spec, overhead, |_| {})
}

fn pod_limits_visiting(
    spec: &PodSpec,
    overhead: Overhead,
    visit: impl FnMut(&ResourceList),
) -> ResourceList {
    let mut limits = aggregate(spec, Kind::Limits, visit);
    if pod_level_resources_set(spec) {
        apply_pod_level(&mut limits, pod_level(spec).and_then(|r| r.limits.as_ref()));
    }
    if overhead == Overhead::Include {
        for (name, q) in parse_list(spec.overhead.as_ref()) {
            if let Some(limit) = limits.get_mut(&name) {
                if !limit.is_zero() {
                    limit.add(&q);
                }
            }
        }
    }
    limits
}

/// Canonical strings of a resource list (RES6), e.g. `{"cpu": "1100m", "memory": "1088Mi"}`.
pub fn canonical(list: &ResourceList) -> BTreeMap<String, String> {
    list.iter()
        .map(|(k, v)| (k.clone(), v.to_canonical()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// QoS
// ---------------------------------------------------------------------------------------------

/// QoS of one set of requirements (upstream `resourceQOS`): nothing at all → BestEffort;
/// otherwise cpu and memory (missing = 0) must each be request == limit, and either both zero
/// (BestEffort) or both non-zero (Guaranteed); anything else is Burstable.
fn resource_qos(requests: Option<&ApiList>, limits: Option<&ApiList>) -> QosClass {
    let empty = |l: Option<&ApiList>| l.is_none_or(|l| l.is_empty());
    if empty(requests) && empty(limits) {
        return QosClass::BestEffort;
    }
    let zero = Quantity::zero(crate::quantity::Format::DecimalSI);
    let mut class = None;
    for name in [CPU, MEMORY] {
        let req = get(requests, name).unwrap_or_else(|| zero.clone());
        let lim = get(limits, name).unwrap_or_else(|| zero.clone());
        if req != lim {
            return QosClass::Burstable;
        }
        let this = if req.is_zero() {
            QosClass::BestEffort
        } else {
            QosClass::Guaranteed
        };
        match class {
            None => class = Some(this),
            Some(c) if c != this => return QosClass::Burstable,
            Some(_) => {}
        }
    }
    class.unwrap_or(QosClass::BestEffort)
}

/// Pod QoS class (RES4; upstream `ComputePodQOS`).
///
/// Every container — app, regular init and sidecar — is classified on its own; any Burstable
/// container, or a mixture of BestEffort and Guaranteed ones, makes the pod Burstable.
/// Overhead and resources other than cpu/memory never matter.
///
/// RES5: when pod-level `spec.resources` is present, the class is computed from it alone (as
/// upstream does with `PodLevelResources` enabled; note that upstream tests for presence, so
/// an empty `resources: {}` yields BestEffort).
pub fn qos_class(spec: &PodSpec) -> QosClass {
    if let Some(r) = pod_level(spec) {
        return resource_qos(r.requests.as_ref(), r.limits.as_ref());
    }
    let mut pod = None;
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let class = resource_qos(requests_of(c), limits_of(c));
        match (class, pod) {
            (QosClass::Burstable, _) => return QosClass::Burstable,
            (_, None) => pod = Some(class),
            (_, Some(p)) if p != class => return QosClass::Burstable,
            _ => {}
        }
    }
    pod.unwrap_or(QosClass::BestEffort)
}

// ---------------------------------------------------------------------------------------------
// OOM score adjustment
// ---------------------------------------------------------------------------------------------

/// `oom_score_adj` of every container of a Guaranteed pod.
pub const GUARANTEED_OOM_SCORE_ADJ: i32 = -997;
/// `oom_score_adj` of every container of a BestEffort pod.
pub const BEST_EFFORT_OOM_SCORE_ADJ: i32 = 1000;

/// `1000 − ⌊1000·request/capacity⌋` without overflow.
fn burstable_score(memory_request: i64, capacity: i64) -> i64 {
    let raw = 1000 - (1000 * i128::from(memory_request)) / i128::from(capacity.max(1));
    i64::try_from(raw).unwrap_or(if raw < 0 { i64::MIN } else { i64::MAX })
}

/// Upstream `remainingPodMemReqPerContainer`: the pod-level memory request not claimed by
/// containers, shared equally among all containers (RES5).
fn remaining_pod_memory_per_container(spec: &PodSpec) -> i64 {
    let pod_mem = value_of(pod_level(spec).and_then(|r| r.requests.as_ref()), MEMORY);
    if pod_mem == 0 {
        return 0;
    }
    let n = spec.containers.len() + spec.init_containers.as_ref().map_or(0, Vec::len);
    let Ok(n) = i64::try_from(n) else { return 0 };
    if n == 0 {
        return 0;
    }
    let containers = aggregate(spec, Kind::Requests, |_| {});
    let containers_mem = containers.get(MEMORY).map_or(0, Quantity::value);
    pod_mem.saturating_sub(containers_mem) / n
}

/// OOM score adjustment of one container (RES9; upstream `GetContainerOOMScoreAdjust` in
/// pkg/kubelet/qos/policy.go).
///
/// Guaranteed −997, BestEffort 1000. Burstable: `1000 − ⌊1000·memRequest/capacity⌋`; a sidecar
/// takes the minimum of its own value and the value of the app container with the smallest
/// memory request (missing = 0); the result is clamped to [3, 999].
///
/// `container_name` is looked up among app containers, then init containers; an unknown name
/// is scored as a container without requests. A non-positive capacity is treated as 1 byte.
/// The node-critical-pod shortcut (−997 for `system-node-critical` static pods) is not
/// modelled, as RES9 does not list it.
pub fn oom_score_adj(spec: &PodSpec, container_name: &str, memory_capacity_bytes: i64) -> i32 {
    match qos_class(spec) {
        QosClass::Guaranteed => return GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => return BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {}
    }
    let container = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == container_name);
    let own_request = container.map_or(0, |c| value_of(requests_of(c), MEMORY));

    let remaining = if pod_level_requests_set(spec) {
        remaining_pod_memory_per_container(spec)
    } else {
        0
    };
    let mut score = burstable_score(own_request.saturating_add(remaining), memory_capacity_bytes);

    let sidecar = container.is_some_and(|c| {
        is_sidecar(c)
            && spec
                .init_containers
                .iter()
                .flatten()
                .any(|i| i.name == c.name)
    });
    if sidecar {
        // Upstream `minRegularContainerMemory`; a pod without app containers is invalid, and
        // then no adjustment is made.
        let smallest = spec
            .containers
            .iter()
            .map(|c| value_of(requests_of(c), MEMORY))
            .min();
        if let Some(smallest) = smallest {
            score = score.min(burstable_score(
                smallest.saturating_add(remaining),
                memory_capacity_bytes,
            ));
        }
    }
    // Burstable stays strictly between Guaranteed (1000 − 997 = 3) and BestEffort (1000).
    let clamped = score.clamp(
        i64::from(1000 + GUARANTEED_OOM_SCORE_ADJ),
        i64::from(BEST_EFFORT_OOM_SCORE_ADJ - 1),
    );
    i32::try_from(clamped).unwrap_or(BEST_EFFORT_OOM_SCORE_ADJ - 1)
}

// ---------------------------------------------------------------------------------------------
// cgroups
// ---------------------------------------------------------------------------------------------

/// Smallest cpu.shares the kernel accepts.
pub const MIN_SHARES: u64 = 2;
/// Largest cpu.shares the kernel accepts.
pub const MAX_SHARES: u64 = 262_144;
/// Default CFS period in microseconds.
pub const DEFAULT_CPU_PERIOD_US: u64 = 100_000;
/// Smallest CFS quota in microseconds (1 ms).
pub const MIN_QUOTA_US: i64 = 1000;

/// cgroup v1 shares → cgroup v2 `cpu.weight` conversion (CG5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum WeightFormula {
    /// `1 + ⌊(s−2)·9999/262142⌋` (1024 → 39): the kubelet's vendored cgroup library and
    /// older runc/crun.
    Linear,
    /// `⌈10^((l²+125l)/612 − 7/34)⌉`, `l = log2 s` (1024 → 100): current runc and crun.
    /// skiff's default, since that is what the runtimes it drives write today.
    #[default]
    Quadratic,
}

impl WeightFormula {
    /// Converts shares with this formula.
    pub fn weight(self, shares: u64) -> u64 {
        match self {
            WeightFormula::Linear => cpu_weight_linear(shares),
            WeightFormula::Quadratic => cpu_weight_quadratic(shares),
        }
    }
}

/// Linear shares → weight (CG5). Shares are first clamped to [2, 262144], so the result is
/// always in [1, 10000].
pub fn cpu_weight_linear(shares: u64) -> u64 {
    let s = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + ((s - MIN_SHARES) * 9999) / (MAX_SHARES - MIN_SHARES)
}

/// Quadratic shares → weight of current runc/crun (CG5): the parabola in `log2 s` through
/// (2, 1), (1024, 100) and (262144, 10000). `s ≤ 2 → 1`, `s ≥ 262144 → 10000`.
pub fn cpu_weight_quadratic(shares: u64) -> u64 {
    if shares <= MIN_SHARES {
        return 1;
    }
    if shares >= MAX_SHARES {
        return 10_000;
    }
    // Exact for every u64 below 2^53; shares are below 2^18 here.
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    let weight = 10f64.powf(exponent).ceil();
    // In range by construction; the float-to-int cast saturates anyway.
    (weight as u64).clamp(1, 10_000)
}

/// Upstream `MilliCPUToShares`: 0 → 2, else `⌊m·1024/1000⌋` clamped to [2, 262144] (CG2).
pub fn milli_cpu_to_shares(milli_cpu: i64) -> u64 {
    if milli_cpu <= 0 {
        return MIN_SHARES;
    }
    let shares = i128::from(milli_cpu) * 1024 / 1000;
    u64::try_from(shares.clamp(i128::from(MIN_SHARES), i128::from(MAX_SHARES)))
        .unwrap_or(MIN_SHARES)
}

/// Upstream `MilliCPUToQuota`: 0 → no quota, else `⌊m·period/1000⌋`, at least 1000 µs (CG3).
pub fn milli_cpu_to_quota(milli_cpu: i64, period_us: u64) -> Option<i64> {
    if milli_cpu <= 0 {
        return None;
    }
    let quota = i128::from(milli_cpu) * i128::from(period_us) / 1000;
    Some(i64::try_from(quota).unwrap_or(i64::MAX).max(MIN_QUOTA_US))
}

/// Kubelet settings that shape the cgroup values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupConfig {
    /// `--cpu-cfs-quota` (default true). When false, quotas are written as −1 (unlimited).
    pub cfs_quota_enabled: bool,
    /// `--cpu-cfs-quota-period` in µs (default 100000).
    pub cpu_period_us: u64,
    /// shares → `cpu.weight` conversion used for cgroup v2.
    pub weight_formula: WeightFormula,
}

impl Default for CgroupConfig {
    fn default() -> Self {
        CgroupConfig {
            cfs_quota_enabled: true,
            cpu_period_us: DEFAULT_CPU_PERIOD_US,
            weight_formula: WeightFormula::default(),
        }
    }
}

/// Pod-level cgroup values (CG2–CG5; upstream `ResourceConfigForPod`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCgroupValues {
    /// cgroup v1 `cpu.shares`.
    pub cpu_shares: u64,
    /// CFS quota in µs; `None` = no quota (`max`); `Some(-1)` when CFS quota is disabled.
    pub cpu_quota_us: Option<i64>,
    /// CFS period in µs.
    pub cpu_period_us: u64,
    /// `memory.max` / `memory.limit_in_bytes`; `None` = unlimited.
    pub memory_limit_bytes: Option<i64>,
    /// cgroup v2 `cpu.weight` (formula from [`CgroupConfig::weight_formula`]).
    pub cpu_weight: u64,
}

impl PodCgroupValues {
    /// cgroup v2 `cpu.max` content: `"<quota> <period>"` or `"max <period>"`.
    pub fn cpu_max(&self) -> String {
        cpu_max(self.cpu_quota_us, self.cpu_period_us)
    }

    /// cgroup v2 `memory.max` content: bytes or `"max"`.
    pub fn memory_max(&self) -> String {
        memory_max(self.memory_limit_bytes)
    }
}

fn cpu_max(quota: Option<i64>, period: u64) -> String {
    match quota {
        Some(q) if q > 0 => format!("{q} {period}"),
        _ => format!("max {period}"),
    }
}

fn memory_max(limit: Option<i64>) -> String {
    match limit {
        Some(b) if b > 0 => b.to_string(),
        _ => "max".to_string(),
    }
}

/// Whether a Burstable pod's limits count as "declared" (CG9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitsDeclared {
    pub cpu: bool,
    pub memory: bool,
}

/// CG9, 1.28+ rule (upstream `ResourceConfigForPod`'s `ContainerFn`): a limit is declared
/// unless some app container has a zero/missing limit for it, or some init container's
/// *cumulative* limit is zero (sidecar: its own plus all earlier sidecars'; regular init: its
/// own plus earlier sidecars'). A non-zero pod-level limit (RES5) declares it regardless.
pub fn limits_declared(spec: &PodSpec) -> LimitsDeclared {
    limits_and_declared(spec).1
}

fn limits_and_declared(spec: &PodSpec) -> (ResourceList, LimitsDeclared) {
    let mut declared = LimitsDeclared {
        cpu: true,
        memory: true,
    };
    let nonzero = |l: &ResourceList, name: &str| l.get(name).is_some_and(|q| !q.is_zero());
    let limits = pod_limits_visiting(spec, Overhead::Include, |l| {
        declared.cpu &= nonzero(l, CPU);
        declared.memory &= nonzero(l, MEMORY);
    });
    if pod_level_resources_set(spec) {
        let pod = pod_level(spec).and_then(|r| r.limits.as_ref());
        if get(pod, CPU).is_some_and(|q| !q.is_zero()) {
            declared.cpu = true;
        }
        if get(pod, MEMORY).is_some_and(|q| !q.is_zero()) {
            declared.memory = true;
        }
    }
    (limits, declared)
}

/// Pod cgroup values (CG2–CG5, CG9; upstream `ResourceConfigForPod`).
///
/// Shares from the effective cpu request (with overhead); BestEffort always 2. Quota from the
/// effective cpu limit: Guaranteed always, Burstable only if cpu limits are declared (CG9),
/// BestEffort never; −1 when CFS quota is disabled. Memory limit from the effective memory
/// limit under the same rules. A zero quota or memory limit means "not set".
pub fn pod_cgroup_values(spec: &PodSpec, cfg: &CgroupConfig) -> PodCgroupValues {
    let requests = pod_requests(spec, Overhead::Include);
    let (limits, declared) = limits_and_declared(spec);

    let cpu_request = requests.get(CPU).map_or(0, Quantity::milli_value);
    let cpu_limit = limits.get(CPU).map_or(0, Quantity::milli_value);
    let memory_limit = limits.get(MEMORY).map_or(0, Quantity::value);

    let shares = milli_cpu_to_shares(cpu_request);
    let quota = if cfg.cfs_quota_enabled {
        milli_cpu_to_quota(cpu_limit, cfg.cpu_period_us)
    } else {
        Some(-1)
    };
    let memory = (memory_limit > 0).then_some(memory_limit);

    let (cpu_shares, cpu_quota_us, memory_limit_bytes) = match qos_class(spec) {
        QosClass::Guaranteed => (shares, quota, memory),
        QosClass::Burstable => (
            shares,
            if declared.cpu { quota } else { None },
            if declared.memory { memory } else { None },
        ),
        QosClass::BestEffort => (MIN_SHARES, None, None),
    };
    PodCgroupValues {
        cpu_shares,
        cpu_quota_us,
        cpu_period_us: cfg.cpu_period_us,
        memory_limit_bytes,
        cpu_weight: cfg.weight_formula.weight(cpu_shares),
    }
}

/// Container cgroup values (CG6; upstream `calculateLinuxResources`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerCgroupValues {
    /// cgroup v1 `cpu.shares`.
    pub cpu_shares: u64,
    /// CFS quota in µs; `None` = unset (`max`), also when CFS quota is disabled.
    pub cpu_quota_us: Option<i64>,
    /// CFS period in µs.
    pub cpu_period_us: u64,
    /// Memory limit in bytes; `None` = unlimited.
    pub memory_limit_bytes: Option<i64>,
    /// cgroup v2 `cpu.weight`.
    pub cpu_weight: u64,
}

impl ContainerCgroupValues {
    /// cgroup v2 `cpu.max` content.
    pub fn cpu_max(&self) -> String {
        cpu_max(self.cpu_quota_us, self.cpu_period_us)
    }

    /// cgroup v2 `memory.max` content.
    pub fn memory_max(&self) -> String {
        memory_max(self.memory_limit_bytes)
    }
}

/// Container cgroup values (CG6): shares from the cpu request, or from the cpu limit when no
/// request is present; quota from the cpu limit (0 → unset); memory limit from the memory
/// limit (0 → unset). The container's `oom_score_adj` comes from [`oom_score_adj`].
pub fn container_cgroup_values(c: &Container, cfg: &CgroupConfig) -> ContainerCgroupValues {
    let cpu_request = get(requests_of(c), CPU);
    let cpu_limit = get(limits_of(c), CPU);
    let shares_from = match (&cpu_request, &cpu_limit) {
        (None, Some(limit)) => limit.milli_value(),
        (Some(request), _) => request.milli_value(),
        (None, None) => 0,
    };
    let cpu_shares = milli_cpu_to_shares(shares_from);
    let cpu_quota_us = if cfg.cfs_quota_enabled {
        milli_cpu_to_quota(cpu_limit.map_or(0, |q| q.milli_value()), cfg.cpu_period_us)
    } else {
        None
    };
    let memory = value_of(limits_of(c), MEMORY);
    ContainerCgroupValues {
        cpu_shares,
        cpu_quota_us,
        cpu_period_us: cfg.cpu_period_us,
        memory_limit_bytes: (memory > 0).then_some(memory),
        cpu_weight: cfg.weight_formula.weight(cpu_shares),
    }
}

// ---------------------------------------------------------------------------------------------
// Output of `skiff resources`
// ---------------------------------------------------------------------------------------------

/// `skiff resources -o json` (RES6): canonical quantity strings, keys sorted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSummary {
    pub requests: BTreeMap<String, String>,
    pub limits: BTreeMap<String, String>,
    pub qos_class: QosClass,
}

/// `skiff resources -o wide`: the summary plus the pod cgroup values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSummaryWide {
    #[serde(flatten)]
    pub summary: ResourceSummary,
    pub pod_cgroup: PodCgroupValues,
}

/// RES6: effective requests and limits (overhead included) and the QoS class.
pub fn summary(spec: &PodSpec) -> ResourceSummary {
    ResourceSummary {
        requests: canonical(&pod_requests(spec, Overhead::Include)),
        limits: canonical(&pod_limits(spec, Overhead::Include)),
        qos_class: qos_class(spec),
    }
}

/// [`summary`] plus [`pod_cgroup_values`].
pub fn summary_wide(spec: &PodSpec, cfg: &CgroupConfig) -> ResourceSummaryWide {
    ResourceSummaryWide {
        summary: summary(spec),
        pod_cgroup: pod_cgroup_values(spec, cfg),
    }
}
