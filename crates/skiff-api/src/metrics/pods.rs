//! Pods and containers by state, computed at scrape time from the pods' statuses in the store
//! (what the kubelet reported): one pass over the stored JSON, nothing decoded.
//!
//! * `kubelet_running_pods`: pods whose sandbox runs — not terminal and with a pod IP (the
//!   daemon sets it once the sandbox is up), as the kubelet counts pods with a running sandbox.
//! * `kubelet_running_containers{container_state}`: container instances the runtime holds, as
//!   the kubelet counts them: `running`, and `exited` (a terminated state, or a waiting one
//!   whose last instance terminated: it is kept until the next start). A container that never
//!   ran has no instance and is not counted.
//! * `skiff_pods{phase}`: pods by `status.phase` (all five phases always present).
//! * `skiff_containers{state}`: container statuses (init, regular, ephemeral) by current state.
//! * `kube_pod_container_status_restarts_total{namespace,pod,uid,container}`:
//!   kube-state-metrics' name and labels, from `restartCount`.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::Value;

pub(crate) const PHASES: [&str; 5] = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];
const STATES: [&str; 3] = ["waiting", "running", "terminated"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuntimeStateLabel {
    container_state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabels {
    namespace: String,
    pod: String,
    uid: String,
    container: String,
}

#[derive(Debug, Default)]
pub(crate) struct PodFamilies {
    running_pods: Gauge,
    running_containers: Family<RuntimeStateLabel, Gauge>,
    phases: Family<PhaseLabel, Gauge>,
    states: Family<StateLabel, Gauge>,
    restarts: Family<ContainerLabels, Counter>,
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

impl PodFamilies {
    pub(crate) fn register(&self, r: &mut Registry) {
        r.register(
            "kubelet_running_pods",
            "Number of pods that have a running pod sandbox",
            self.running_pods.clone(),
        );
        r.register(
            "kubelet_running_containers",
            "Number of containers currently running",
            self.running_containers.clone(),
        );
        r.register(
            "skiff_pods",
            "Number of pods by status.phase",
            self.phases.clone(),
        );
        r.register(
            "skiff_containers",
            "Number of container statuses (init, regular, ephemeral) by current state",
            self.states.clone(),
        );
        // prometheus-client appends `_total` to counters.
        r.register(
            "kube_pod_container_status_restarts",
            "The number of container restarts per container",
            self.restarts.clone(),
        );
    }

    /// Sets every family from `pods` (stored Pod objects).
    pub(crate) fn set<'a>(&self, pods: impl Iterator<Item = &'a Value>) {
        let mut running_pods = 0i64;
        let mut phases = [0i64; PHASES.len()];
        let mut states = [0i64; STATES.len()];
        let (mut rt_running, mut rt_exited) = (0i64, 0i64);
        self.restarts.clear();
        for pod in pods {
            let phase = str_at(pod, "/status/phase");
            let phase_i = PHASES.iter().position(|p| *p == phase).unwrap_or(0);
            phases[phase_i] += 1;
            let terminal = phase == "Succeeded" || phase == "Failed";
            if !terminal && !str_at(pod, "/status/podIP").is_empty() {
                running_pods += 1;
            }
            let status = &pod["status"];
            let lists = [
                "initContainerStatuses",
                "containerStatuses",
                "ephemeralContainerStatuses",
            ];
            for c in lists
                .iter()
                .filter_map(|l| status.get(*l).and_then(Value::as_array))
                .flatten()
            {
                let state = &c["state"];
                if state.get("running").is_some() {
                    states[1] += 1;
                    rt_running += 1;
                } else if state.get("terminated").is_some() {
                    states[2] += 1;
                    rt_exited += 1;
                } else {
                    states[0] += 1;
                    if c.pointer("/lastState/terminated").is_some() {
                        rt_exited += 1;
                    }
                }
                let restarts = c["restartCount"].as_u64().unwrap_or(0);
                let labels = ContainerLabels {
                    namespace: str_at(pod, "/metadata/namespace").to_string(),
                    pod: str_at(pod, "/metadata/name").to_string(),
                    uid: str_at(pod, "/metadata/uid").to_string(),
                    container: c["name"].as_str().unwrap_or("").to_string(),
                };
                // A counter set from the status (kube-state-metrics does the same): the
                // family is rebuilt on every scrape.
                self.restarts
                    .get_or_create(&labels)
                    .inner()
                    .store(restarts, Ordering::Relaxed);
            }
        }
        self.running_pods.set(running_pods);
        for (i, phase) in PHASES.iter().enumerate() {
            self.phases
                .get_or_create(&PhaseLabel { phase })
                .set(phases[i]);
        }
        for (i, state) in STATES.iter().enumerate() {
            self.states
                .get_or_create(&StateLabel { state })
                .set(states[i]);
        }
        for (container_state, n) in [("running", rt_running), ("exited", rt_exited)] {
            self.running_containers
                .get_or_create(&RuntimeStateLabel { container_state })
                .set(n);
        }
    }
}
