//! The daemon's node-side metrics (kubelet names), added to the API server's `/metrics`
//! (skiff_api::metrics, which also counts pods and containers by state from the store):
//! * `prober_probe_total{probe_type,result,container,pod,namespace,pod_uid}` and
//!   `prober_probe_duration_seconds{probe_type,container,pod,namespace}` (successful probes
//!   only, as the kubelet's prober worker observes it), from the workers' probe runs; a pod's
//!   series go when its worker ends (the kubelet drops them when its probe workers stop);
//! * `kubelet_pod_start_duration_seconds`: from the kubelet loop first handing the pod to a
//!   worker (the kubelet's "first seen") to its first status with phase Running;
//! * `kubelet_pod_start_total_duration_seconds`: from the pod's creationTimestamp to the first
//!   status with every regular container running (image pulls and init containers included).
//!
//! Both seams are wrappers, so the kubelet loop is unchanged: [`NodeMetrics::runner`] wraps the
//! pod runner (first seen), [`NodeMetrics::tap`] the workers' report stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use skiff_api::metrics::Metrics;
use skiff_engine::ProbeKind;
use skiff_node::probe::ProbeOutcome;
use skiff_node::sandbox::PodObjects;
use tokio::sync::mpsc;

use super::kubelet::{PodReport, PodRunner};

/// The kubelet's `podStartupDurationBuckets`.
const POD_START_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
    300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

/// Prometheus' default buckets (the kubelet's prober histogram sets none).
const PROBE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    probe_type: &'static str,
    result: &'static str,
    container: String,
    pod: String,
    namespace: String,
    pod_uid: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeDurationLabels {
    probe_type: &'static str,
    container: String,
    pod: String,
    namespace: String,
}

fn probe_histogram() -> Histogram {
    Histogram::new(PROBE_BUCKETS.iter().copied())
}

/// A pod seen starting, until its start is observed.
struct Starting {
    first_seen: Instant,
    /// creationTimestamp, ms since the epoch.
    created_ms: Option<i64>,
    running_seen: bool,
}

#[derive(Default)]
struct State {
    starting: HashMap<String, Starting>,
    /// Pods whose start was observed (not observed again on a later sync), until forgotten.
    started: std::collections::HashSet<String>,
    /// Each pod's probe series, removed when its worker ends.
    series: HashMap<String, Vec<ProbeLabels>>,
}

/// See the module docs.
pub struct NodeMetrics {
    probes: Family<ProbeLabels, Counter>,
    probe_duration: Family<ProbeDurationLabels, Histogram, fn() -> Histogram>,
    pod_start: Histogram,
    pod_start_total: Histogram,
    state: Mutex<State>,
}

fn probe_type(k: ProbeKind) -> &'static str {
    match k {
        ProbeKind::Liveness => "Liveness",
        ProbeKind::Readiness => "Readiness",
        ProbeKind::Startup => "Startup",
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl NodeMetrics {
    /// The node's metrics, registered in `metrics`.
    pub fn new(metrics: &Metrics) -> Arc<NodeMetrics> {
        let m = Arc::new(NodeMetrics {
            probes: Family::default(),
            probe_duration: Family::new_with_constructor(probe_histogram),
            pod_start: Histogram::new(POD_START_BUCKETS.iter().copied()),
            pod_start_total: Histogram::new(POD_START_BUCKETS.iter().copied()),
            state: Mutex::new(State::default()),
        });
        metrics.register(|r| {
            // prometheus-client appends `_total` to counters.
            r.register(
                "prober_probe",
                "Cumulative number of a liveness, readiness or startup probe for a container by result",
                m.probes.clone(),
            );
            r.register(
                "prober_probe_duration_seconds",
                "Duration in seconds for a probe response",
                m.probe_duration.clone(),
            );
            r.register(
                "kubelet_pod_start_duration_seconds",
                "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
                m.pod_start.clone(),
            );
            r.register(
                "kubelet_pod_start_total_duration_seconds",
                "Duration in seconds to start a pod since creation, including time to pull images and run init containers, measured from pod creation timestamp to when all its containers are reported as started",
                m.pod_start_total.clone(),
            );
        });
        m
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `runner` with the pods it is handed recorded as first seen.
    pub fn runner<R: PodRunner>(self: &Arc<Self>, runner: R) -> MeteredRunner<R> {
        MeteredRunner {
            inner: runner,
            metrics: self.clone(),
        }
    }

    /// The workers' reports, observed on their way to the kubelet loop.
    pub fn tap(
        self: &Arc<Self>,
        mut reports: mpsc::UnboundedReceiver<PodReport>,
    ) -> mpsc::UnboundedReceiver<PodReport> {
        let (tx, rx) = mpsc::unbounded_channel();
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(r) = reports.recv().await {
                me.observe(&r);
                if !matches!(r, PodReport::Probe { .. }) && tx.send(r).is_err() {
                    break;
                }
            }
        });
        rx
    }

    fn first_seen(&self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return;
        };
        // A pod that already ran (an adopted one after a restart) has no start to measure.
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if !matches!(phase, None | Some("Pending")) {
            return;
        }
        let mut st = self.state();
        if st.started.contains(uid) {
            return;
        }
        st.starting
            .entry(uid.to_string())
            .or_insert_with(|| Starting {
                first_seen: Instant::now(),
                created_ms: pod
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_millisecond()),
                running_seen: false,
            });
    }

    fn forget(&self, uid: &str) {
        let mut st = self.state();
        st.starting.remove(uid);
        st.started.remove(uid);
    }

    fn observe(&self, r: &PodReport) {
        match r {
            PodReport::Status { uid, status, .. } => self.on_status(uid, status),
            PodReport::Probe {
                uid,
                namespace,
                name,
                run,
            } => {
                let probe_type = probe_type(run.kind);
                let result = match run.outcome {
                    ProbeOutcome::Success => "successful",
                    ProbeOutcome::Failure => "failed",
                    ProbeOutcome::Unknown => "unknown",
                };
                let labels = ProbeLabels {
                    probe_type,
                    result,
                    container: run.container.clone(),
                    pod: name.clone(),
                    namespace: namespace.clone(),
                    pod_uid: uid.clone(),
                };
                self.probes.get_or_create(&labels).inc();
                if run.outcome == ProbeOutcome::Success {
                    self.probe_duration
                        .get_or_create(&ProbeDurationLabels {
                            probe_type,
                            container: run.container.clone(),
                            pod: name.clone(),
                            namespace: namespace.clone(),
                        })
                        .observe(run.took.as_secs_f64());
                }
                let mut st = self.state();
                let series = st.series.entry(uid.clone()).or_default();
                if !series.contains(&labels) {
                    series.push(labels);
                }
            }
            PodReport::Finished { uid, .. } | PodReport::Failed { uid, .. } => {
                let series = {
                    let mut st = self.state();
                    st.starting.remove(uid);
                    st.series.remove(uid).unwrap_or_default()
                };
                for l in series {
                    self.probes.remove(&l);
                    self.probe_duration.remove(&ProbeDurationLabels {
                        probe_type: l.probe_type,
                        container: l.container,
                        pod: l.pod,
                        namespace: l.namespace,
                    });
                }
            }
            PodReport::Event { .. } => {}
        }
    }

    fn on_status(&self, uid: &str, status: &PodStatus) {
        let running = status.phase.as_deref() == Some("Running");
        let all_started = status.container_statuses.as_ref().is_some_and(|cs| {
            !cs.is_empty()
                && cs
                    .iter()
                    .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        });
        if !running && !all_started {
            return;
        }
        let mut st = self.state();
        let Some(s) = st.starting.get_mut(uid) else {
            return;
        };
        if running && !s.running_seen {
            s.running_seen = true;
            self.pod_start.observe(s.first_seen.elapsed().as_secs_f64());
        }
        if all_started {
            if let Some(created) = s.created_ms {
                let secs = (now_ms() - created).max(0) as f64 / 1000.0;
                self.pod_start_total.observe(secs);
            }
            if !s.running_seen {
                self.pod_start.observe(s.first_seen.elapsed().as_secs_f64());
            }
            st.starting.remove(uid);
            st.started.insert(uid.to_string());
        }
    }
}

/// A [`PodRunner`] that records when pods are first handed to it.
pub struct MeteredRunner<R> {
    inner: R,
    metrics: Arc<NodeMetrics>,
}

impl<R: PodRunner> PodRunner for MeteredRunner<R> {
    fn sync(&self, pod: Pod, objects: PodObjects) {
        self.metrics.first_seen(&pod);
        self.inner.sync(pod, objects);
    }
    fn stop(&self, uid: &str, grace: Option<i64>) {
        self.inner.stop(uid, grace);
    }
    fn forget(&self, uid: &str) {
        self.metrics.forget(uid);
        self.inner.forget(uid);
    }
    fn orphans(&self, known: &dyn Fn(&str) -> bool) -> Vec<Pod> {
        self.inner.orphans(known)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateRunning, ContainerStatus};
    use skiff_node::worker::ProbeRun;
    use std::time::Duration;

    fn scrape(m: &Metrics) -> String {
        let dir = tempfile::tempdir().unwrap();
        let store =
            skiff_api::store::Store::open(dir.path(), skiff_api::store::StoreConfig::default())
                .unwrap();
        m.encode(&store)
    }

    fn status(phase: &str, running: bool) -> PodStatus {
        PodStatus {
            phase: Some(phase.into()),
            container_statuses: Some(vec![ContainerStatus {
                name: "app".into(),
                state: Some(ContainerState {
                    running: running.then(ContainerStateRunning::default),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn report(uid: &str, status: PodStatus) -> PodReport {
        PodReport::Status {
            uid: uid.into(),
            namespace: "default".into(),
            name: "p".into(),
            status,
        }
    }

    #[test]
    fn probes_and_pod_start() {
        let m = Metrics::new();
        let n = NodeMetrics::new(&m);
        let mut pod = Pod::default();
        pod.metadata.uid = Some("u1".into());
        n.first_seen(&pod);
        // An adopted, already running pod is not measured.
        let mut adopted = Pod::default();
        adopted.metadata.uid = Some("u2".into());
        adopted.status = Some(status("Running", true));
        n.first_seen(&adopted);
        n.observe(&report("u2", status("Running", true)));
        n.observe(&report("u1", status("Pending", false)));
        n.observe(&report("u1", status("Running", true)));
        // A second Running status observes nothing more.
        n.observe(&report("u1", status("Running", true)));
        for (outcome, took) in [
            (ProbeOutcome::Success, 3),
            (ProbeOutcome::Failure, 5),
            (ProbeOutcome::Success, 7),
        ] {
            n.observe(&PodReport::Probe {
                uid: "u1".into(),
                namespace: "default".into(),
                name: "p".into(),
                run: ProbeRun {
                    container: "app".into(),
                    kind: ProbeKind::Readiness,
                    outcome,
                    took: Duration::from_millis(took),
                },
            });
        }
        let text = scrape(&m);
        assert!(
            text.contains("kubelet_pod_start_duration_seconds_count 1\n"),
            "{text}"
        );
        assert!(
            text.contains("kubelet_pod_start_total_duration_seconds_count 0\n"),
            "no creationTimestamp: {text}"
        );
        assert!(text.contains(r#"prober_probe_total{probe_type="Readiness",result="successful",container="app",pod="p",namespace="default",pod_uid="u1"} 2"#), "{text}");
        assert!(text.contains(r#"prober_probe_total{probe_type="Readiness",result="failed",container="app",pod="p",namespace="default",pod_uid="u1"} 1"#), "{text}");
        assert!(text.contains(r#"prober_probe_duration_seconds_count{probe_type="Readiness",container="app",pod="p",namespace="default"} 2"#), "{text}");
        assert!(text.contains(r#"prober_probe_duration_seconds_sum{probe_type="Readiness",container="app",pod="p",namespace="default"} 0.01"#), "{text}");
        // The worker ended: its series go.
        n.observe(&PodReport::Finished {
            uid: "u1".into(),
            namespace: "default".into(),
            name: "p".into(),
            status: status("Succeeded", false),
        });
        let text = scrape(&m);
        assert!(!text.contains("pod_uid=\"u1\""), "{text}");
        assert!(
            !text.contains("prober_probe_duration_seconds_count{"),
            "{text}"
        );
    }
}
