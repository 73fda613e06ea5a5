//! Node admission (SEMANTICS A1, ST7): does a pod fit on this node?
//!
//! The kubelet admits a pod only if its effective requests (RES1, with overhead) plus the
//! requests of the pods already admitted and not terminal fit in the node's *allocatable*
//! (capacity minus reservations minus the hard eviction threshold). Upstream:
//! `pkg/kubelet/lifecycle/predicate.go` (`Admit`, `InsufficientResourceError`, the `OutOf…`
//! reasons) running the scheduler's `noderesources` fit check
//! (`pkg/scheduler/framework/plugins/noderesources/fit.go` `fitsRequest`), and
//! `pkg/kubelet/cm/node_container_manager_linux.go` `GetNodeAllocatableAbsolute` for the
//! allocatable arithmetic. Pure: the caller measures the machine.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time as MetaTime;

use crate::quantity::Quantity;
use crate::resources::{pod_requests, qos_class, Overhead, ResourceList};

/// The kubelet's default `--max-pods`.
pub const DEFAULT_MAX_PODS: i64 = 110;
/// The kubelet's default hard eviction threshold `memory.available<100Mi`, which is
/// subtracted from memory allocatable.
pub const DEFAULT_EVICTION_MEMORY_BYTES: i64 = 100 * 1024 * 1024;
/// The kubelet's default hard eviction threshold `nodefs.available<10%`, subtracted from
/// ephemeral-storage allocatable.
pub const DEFAULT_EVICTION_NODEFS_PERCENT: i64 = 10;

const CPU: &str = "cpu";
const MEMORY: &str = "memory";
const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
const PODS: &str = "pods";

/// What the machine has (node `status.capacity`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeCapacity {
    /// Online CPUs × 1000.
    pub milli_cpu: i64,
    /// `MemTotal` in bytes.
    pub memory_bytes: i64,
    /// Size of the filesystem holding skiff's data dir, in bytes.
    pub ephemeral_storage_bytes: i64,
    /// `--max-pods`.
    pub pods: i64,
    /// Extended resources and hugepages the node offers (`hugepages-2Mi`, `example.com/gpu`), in
    /// base units. Absent hugepages sizes count as 0.
    pub scalar: BTreeMap<String, i64>,
}

/// What pods may request in total (node `status.allocatable`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeAllocatable {
    pub milli_cpu: i64,
    pub memory_bytes: i64,
    pub ephemeral_storage_bytes: i64,
    pub pods: i64,
    pub scalar: BTreeMap<String, i64>,
}

impl NodeAllocatable {
    /// `capacity − reserved − hard eviction threshold` per resource, never below 0
    /// (`GetNodeAllocatableAbsolute`). `reserved` is the sum of `--system-reserved` and
    /// `--kube-reserved`; the thresholds are the kubelet defaults (memory 100Mi, nodefs 10%).
    pub fn from_capacity(capacity: &NodeCapacity, reserved: &ResourceList) -> Self {
        let r = |name: &str, milli: bool| {
            reserved
                .get(name)
                .map_or(0, |q| if milli { q.milli_value() } else { q.value() })
        };
        let nodefs_threshold =
            capacity.ephemeral_storage_bytes / 100 * DEFAULT_EVICTION_NODEFS_PERCENT;
        let scalar = capacity
            .scalar
            .iter()
            .map(|(k, v)| (k.clone(), v.saturating_sub(r(k, false)).max(0)))
            .collect();
        NodeAllocatable {
            milli_cpu: capacity.milli_cpu.saturating_sub(r(CPU, true)).max(0),
            memory_bytes: capacity
                .memory_bytes
                .saturating_sub(r(MEMORY, false))
                .saturating_sub(DEFAULT_EVICTION_MEMORY_BYTES)
                .max(0),
            ephemeral_storage_bytes: capacity
                .ephemeral_storage_bytes
                .saturating_sub(r(EPHEMERAL_STORAGE, false))
                .saturating_sub(nodefs_threshold)
                .max(0),
            pods: capacity.pods,
            scalar,
        }
    }
}

/// Why a pod does not fit: upstream `InsufficientResourceError`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Node didn't have enough resource: {resource}, requested: {requested}, used: {used}, capacity: {capacity}")]
pub struct Rejection {
    /// `pods`, `cpu`, `memory`, `ephemeral-storage`, or the scalar resource's name.
    pub resource: String,
    /// cpu in millicores, memory/storage in bytes, pods as a count (1).
    pub requested: i64,
    pub used: i64,
    pub capacity: i64,
}

impl Rejection {
    /// The pod's `status.reason`: `OutOfpods`, `OutOfcpu`, `OutOfmemory`,
    /// `OutOfephemeral-storage`, `OutOf<name>`.
    pub fn reason(&self) -> String {
        format!("OutOf{}", self.resource)
    }

    /// The pod's `status.message` (ST7): `Pod was rejected: <detail>`.
    pub fn pod_message(&self) -> String {
        format!("Pod was rejected: {self}")
    }

    /// The rejected pod's status, as the kubelet's `rejectPod` writes it: phase Failed,
    /// reason, message and QoS class; `start_time` is the first status write (ST8).
    pub fn pod_status(&self, spec: Option<&PodSpec>, start_time: MetaTime) -> PodStatus {
        PodStatus {
            phase: Some("Failed".into()),
            reason: Some(self.reason()),
            message: Some(self.pod_message()),
            qos_class: spec.map(|s| qos_class(s).as_str().to_string()),
            start_time: Some(start_time),
            ..Default::default()
        }
    }
}

/// The numbers the fit check compares (upstream `framework.Resource`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Requested {
    milli_cpu: i64,
    memory: i64,
    ephemeral_storage: i64,
    scalar: BTreeMap<String, i64>,
}

impl Requested {
    fn of(spec: &PodSpec) -> Self {
        let list = pod_requests(spec, Overhead::Include);
        let mut r = Requested::default();
        for (name, q) in &list {
            match name.as_str() {
                CPU => r.milli_cpu = q.milli_value(),
                MEMORY => r.memory = q.value(),
                EPHEMERAL_STORAGE => r.ephemeral_storage = q.value(),
                PODS => {}
                other if is_scalar(other) => {
                    r.scalar.insert(other.to_string(), q.value());
                }
                _ => {}
            }
        }
        r
    }

    fn add(&mut self, o: &Requested) {
        self.milli_cpu = self.milli_cpu.saturating_add(o.milli_cpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    fn is_empty(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }
}

/// Hugepages and extended resources are the scheduler's "scalar" resources.
fn is_scalar(name: &str) -> bool {
    name.starts_with("hugepages-") || is_extended(name)
}

/// Upstream `IsExtendedResourceName`: a domain-qualified name outside `kubernetes.io/`, not a
/// quota `requests.` name.
fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

/// A1: admits `pod` on a node with `allocatable` where `admitted` (non-terminal pods already
/// admitted) run. Checks, in order, pod count, cpu, memory, ephemeral-storage, then scalar
/// resources in name order; the first failure is returned. A pod requesting nothing only
/// checks the count. Extended resources the node does not offer at all are not checked (the
/// kubelet removes them before the fit check: `removeMissingExtendedResources`).
pub fn admit(
    pod: &PodSpec,
    admitted: &[&PodSpec],
    allocatable: &NodeAllocatable,
) -> Result<(), Rejection> {
    let count = i64::try_from(admitted.len()).unwrap_or(i64::MAX);
    if count.saturating_add(1) > allocatable.pods {
        return Err(Rejection {
            resource: PODS.into(),
            requested: 1,
            used: count,
            capacity: allocatable.pods,
        });
    }
    let mut want = Requested::of(pod);
    want.scalar
        .retain(|name, _| !is_extended(name) || allocatable.scalar.contains_key(name));
    if want.is_empty() {
        return Ok(());
    }
    let mut used = Requested::default();
    for other in admitted {
        used.add(&Requested::of(other));
    }
    let check = |resource: &str, requested: i64, used: i64, capacity: i64| {
        if requested > 0 && requested > capacity.saturating_sub(used) {
            Err(Rejection {
                resource: resource.into(),
                requested,
                used,
                capacity,
            })
        } else {
            Ok(())
        }
    };
    check(CPU, want.milli_cpu, used.milli_cpu, allocatable.milli_cpu)?;
    check(MEMORY, want.memory, used.memory, allocatable.memory_bytes)?;
    check(
        EPHEMERAL_STORAGE,
        want.ephemeral_storage,
        used.ephemeral_storage,
        allocatable.ephemeral_storage_bytes,
    )?;
    for (name, requested) in &want.scalar {
        let capacity = allocatable.scalar.get(name).copied().unwrap_or(0);
        let used = used.scalar.get(name).copied().unwrap_or(0);
        check(name, *requested, used, capacity)?;
    }
    Ok(())
}

/// Errors of [`parse_reserved`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReservedError {
    #[error("invalid reservation {0:?}: expected <resource>=<quantity>[,...]")]
    Syntax(String),
    #[error("invalid quantity for {name}: {value:?}")]
    Quantity { name: String, value: String },
    #[error("reservation for {0} must not be negative")]
    Negative(String),
}

/// Parses the kubelet's `--system-reserved` syntax: `cpu=100m,memory=256Mi` (empty = none).
pub fn parse_reserved(text: &str) -> Result<ResourceList, ReservedError> {
    let mut out = ResourceList::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = item
            .split_once('=')
            .map(|(n, v)| (n.trim(), v.trim()))
            .filter(|(n, v)| !n.is_empty() && !v.is_empty())
            .ok_or_else(|| ReservedError::Syntax(item.to_string()))?;
        let q = Quantity::parse(value).map_err(|_| ReservedError::Quantity {
            name: name.to_string(),
            value: value.to_string(),
        })?;
        if q.is_negative() {
            return Err(ReservedError::Negative(name.to_string()));
        }
        match out.get_mut(name) {
            Some(existing) => existing.add(&q),
            None => {
                out.insert(name.to_string(), q);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

    fn container(name: &str, requests: &[(&str, &str)]) -> Container {
        Container {
            name: name.into(),
            resources: Some(ResourceRequirements {
                requests: Some(
                    requests
                        .iter()
                        .map(|(k, v)| (k.to_string(), ApiQuantity(v.to_string())))
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(requests: &[(&str, &str)]) -> PodSpec {
        PodSpec {
            containers: vec![container("app", requests)],
            ..Default::default()
        }
    }

    fn node() -> NodeAllocatable {
        NodeAllocatable {
            milli_cpu: 2000,
            memory_bytes: 4 << 30,
            ephemeral_storage_bytes: 10 << 30,
            pods: 110,
            scalar: BTreeMap::new(),
        }
    }

    #[test]
    fn a1_fitting_pod_is_admitted() {
        assert_eq!(
            admit(&pod(&[("cpu", "1"), ("memory", "1Gi")]), &[], &node()),
            Ok(())
        );
    }

    #[test]
    fn a1_cpu_rejection_message_in_millicores() {
        let e = admit(&pod(&[("cpu", "4")]), &[], &node()).unwrap_err();
        assert_eq!(e.reason(), "OutOfcpu");
        assert_eq!(
            e.pod_message(),
            "Pod was rejected: Node didn't have enough resource: cpu, requested: 4000, used: 0, capacity: 2000"
        );
    }

    #[test]
    fn a1_memory_rejection_in_bytes() {
        let e = admit(&pod(&[("memory", "1000Gi")]), &[], &node()).unwrap_err();
        assert_eq!(e.reason(), "OutOfmemory");
        assert_eq!(e.requested, 1000 << 30);
        assert_eq!(e.capacity, 4 << 30);
    }

    #[test]
    fn a1_first_failure_wins_in_order_pods_cpu_memory() {
        let big = pod(&[
            ("cpu", "3"),
            ("memory", "8Gi"),
            ("ephemeral-storage", "1Ti"),
        ]);
        assert_eq!(admit(&big, &[], &node()).unwrap_err().resource, "cpu");
        let mem_and_disk = pod(&[("memory", "8Gi"), ("ephemeral-storage", "1Ti")]);
        assert_eq!(
            admit(&mem_and_disk, &[], &node()).unwrap_err().resource,
            "memory"
        );
        let disk = pod(&[("ephemeral-storage", "1Ti")]);
        assert_eq!(
            admit(&disk, &[], &node()).unwrap_err().reason(),
            "OutOfephemeral-storage"
        );
        let mut full = node();
        full.pods = 1;
        let other = pod(&[]);
        let e = admit(&big, &[&other], &full).unwrap_err();
        assert_eq!(e.reason(), "OutOfpods");
        assert_eq!((e.requested, e.used, e.capacity), (1, 1, 1));
    }

    #[test]
    fn a1_requests_of_admitted_pods_count_as_used() {
        let running = pod(&[("cpu", "1500m")]);
        let e = admit(&pod(&[("cpu", "600m")]), &[&running], &node()).unwrap_err();
        assert_eq!((e.requested, e.used, e.capacity), (600, 1500, 2000));
        assert_eq!(
            admit(&pod(&[("cpu", "500m")]), &[&running], &node()),
            Ok(())
        );
    }

    #[test]
    fn a1_zero_request_pod_only_checks_the_count() {
        let mut n = node();
        n.milli_cpu = 0;
        n.memory_bytes = 0;
        assert_eq!(admit(&pod(&[]), &[], &n), Ok(()));
        n.pods = 0;
        assert_eq!(admit(&pod(&[]), &[], &n).unwrap_err().reason(), "OutOfpods");
    }

    #[test]
    fn a1_effective_requests_include_init_peak_and_overhead() {
        // RES1: the regular init container's 3 cpus are the peak; overhead adds 10m.
        let mut spec = pod(&[("cpu", "500m")]);
        spec.init_containers = Some(vec![container("init", &[("cpu", "3")])]);
        spec.overhead = Some(
            [("cpu".to_string(), ApiQuantity("10m".into()))]
                .into_iter()
                .collect(),
        );
        let e = admit(&spec, &[], &node()).unwrap_err();
        assert_eq!((e.resource.as_str(), e.requested), ("cpu", 3010));
    }

    #[test]
    fn a1_hugepages_checked_missing_extended_resources_ignored() {
        let e = admit(&pod(&[("hugepages-2Mi", "4Mi")]), &[], &node()).unwrap_err();
        assert_eq!(e.reason(), "OutOfhugepages-2Mi");
        assert_eq!(
            admit(&pod(&[("example.com/gpu", "1")]), &[], &node()),
            Ok(())
        );
        let mut n = node();
        n.scalar.insert("example.com/gpu".into(), 1);
        let e = admit(&pod(&[("example.com/gpu", "2")]), &[], &n).unwrap_err();
        assert_eq!(e.reason(), "OutOfexample.com/gpu");
    }

    #[test]
    fn a1_allocatable_subtracts_reservation_and_eviction_threshold() {
        let cap = NodeCapacity {
            milli_cpu: 2000,
            memory_bytes: 4 << 30,
            ephemeral_storage_bytes: 1000,
            pods: DEFAULT_MAX_PODS,
            scalar: BTreeMap::new(),
        };
        let reserved = parse_reserved("cpu=100m, memory=256Mi").unwrap();
        let a = NodeAllocatable::from_capacity(&cap, &reserved);
        assert_eq!(a.milli_cpu, 1900);
        assert_eq!(a.memory_bytes, (4 << 30) - (256 << 20) - (100 << 20));
        assert_eq!(a.ephemeral_storage_bytes, 900);
        assert_eq!(a.pods, 110);
        let all = parse_reserved("cpu=8").unwrap();
        assert_eq!(NodeAllocatable::from_capacity(&cap, &all).milli_cpu, 0);
    }

    #[test]
    fn a1_reservation_syntax_errors() {
        assert_eq!(parse_reserved("").unwrap().len(), 0);
        assert!(matches!(
            parse_reserved("cpu"),
            Err(ReservedError::Syntax(_))
        ));
        assert!(matches!(
            parse_reserved("memory=lots"),
            Err(ReservedError::Quantity { .. })
        ));
        assert!(matches!(
            parse_reserved("cpu=-1"),
            Err(ReservedError::Negative(_))
        ));
    }
}
