//! The daemon's kubelet loop: the API's pods bound to this node drive the node's pod workers,
//! and what the workers report goes back to the API. It decides nothing about a pod's life
//! (that is the engine's, in the workers); it only routes, as the kubelet's pod config, status
//! manager and event recorder do:
//! * a pod that appears (or is found at start, after a daemon restart) is handed to the
//!   runner, which adopts whatever of it still runs; a spec change (a new `generation`) is
//!   handed on as an update (S10); a `deletionTimestamp` becomes a graceful stop with the time
//!   left until it (T1), a pod removed from the API at once (`--force`) is stopped at once;
//! * statuses are coalesced per pod and written in one batch (one store transaction) at most
//!   every [`FLUSH_EVERY`], so a busy node does not commit per probe result; events go through
//!   the recorder (identical ones aggregated);
//! * a pod whose worker has finished and that is being deleted gets the final deletion (grace
//!   0, uid precondition), as the kubelet's status manager does once every container stopped.
//!
//! The runner is a trait so the routing is tested without processes (a fake runner here) and
//! with them (the daemon's end-to-end tests).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodStatus, Secret};
use serde_json::Value;
use skiff_api::registry::{self, Api, ApiWatch, WatchOptions};
use skiff_engine::Time;
use skiff_node::sandbox::PodObjects;
use tokio::sync::mpsc;

use super::events::{EventRecorder, Involved};

/// How long statuses and events are gathered before one batch is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(10);

pub use skiff_node::manager::PodReport;

/// The node's pod workers, as the loop drives them.
pub trait PodRunner: Send + Sync + 'static {
    /// Runs `pod` if no worker has its uid (adopting what of it still runs), else hands its
    /// new spec to its worker.
    fn sync(&self, pod: Pod, objects: PodObjects);
    /// Graceful termination with `grace` seconds (None: the pod's own).
    fn stop(&self, uid: &str, grace: Option<i64>);
    /// The pod's API object is gone: its uid is forgotten.
    fn forget(&self, uid: &str);
    /// Pods whose sandbox still lives on this node but that `known` does not know (their API
    /// object went while no daemon ran).
    fn orphans(&self, known: &dyn Fn(&str) -> bool) -> Vec<Pod>;
}

/// A pod the loop has handed to the runner.
struct Tracked {
    involved: Involved,
    generation: Option<i64>,
    /// The grace of the last stop asked for (a later delete may only shorten it).
    stop_grace: Option<i64>,
    /// The worker returned.
    finished: bool,
    /// The object is gone from the API (forced deletion): statuses are no longer written.
    removed: bool,
    /// The final deletion was asked for.
    deletion_finished: bool,
}

/// The loop's state.
pub struct Kubelet<R: PodRunner> {
    api: Api,
    /// The node's data dir: pods found there that the API no longer has are orphans.
    data_dir: Option<std::path::PathBuf>,
    /// Orphans were looked for (once, at the first listing).
    orphans_checked: bool,
    runner: Arc<R>,
    node: String,
    pods: HashMap<String, Tracked>,
    statuses: HashMap<String, (String, String, String, PodStatus)>,
    events: HashMap<(String, String), k8s_openapi::api::core::v1::Event>,
    recorder: EventRecorder,
}

fn pods_resource() -> &'static registry::Resource {
    // The table always serves pods; a missing entry would be a build error in spirit.
    registry::resource("", "pods").unwrap_or(&registry::RESOURCES[0])
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

/// Seconds left until the pod's `deletionTimestamp` (at least 0), or its
/// `deletionGracePeriodSeconds` when the timestamp cannot be read.
fn remaining_grace(pod: &Pod, now: Time) -> Option<i64> {
    let meta = &pod.metadata;
    let ts = meta.deletion_timestamp.as_ref()?;
    let deadline_ms = ts.0.as_millisecond();
    let left_ms = deadline_ms - now.millis();
    if left_ms <= 0 {
        return Some(0);
    }
    // Round up: a grace of 30 s asked 10 ms ago is still 30 s.
    Some(left_ms.div_euclid(1000) + i64::from(left_ms.rem_euclid(1000) != 0))
}

fn meta_of(pod: &Pod) -> (String, String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
        pod.metadata.uid.clone().unwrap_or_default(),
    )
}

impl<R: PodRunner> Kubelet<R> {
    pub fn new(api: Api, runner: Arc<R>, node: &str) -> Kubelet<R> {
        Kubelet {
            api,
            data_dir: None,
            orphans_checked: false,
            runner,
            node: node.to_string(),
            pods: HashMap::new(),
            statuses: HashMap::new(),
            events: HashMap::new(),
            recorder: EventRecorder::new(node),
        }
    }

    /// Looks for orphaned pods in `data_dir` at the first listing (see [`Kubelet::orphans`]).
    pub fn with_data_dir(mut self, data_dir: std::path::PathBuf) -> Kubelet<R> {
        self.data_dir = Some(data_dir);
        self
    }

    /// The kubelet's HandlePodCleanups after a restart: pods on this node whose API object is
    /// gone (deleted while the daemon was down, or during its last moments) and whose sandbox
    /// still lives are stopped at once — their worker adopts what of them runs and kills it —
    /// and their directories go when that is done; the directories of the others go at once.
    /// A pod another process runs (a `skiff run` on the same data dir holds its lock) is left
    /// alone.
    fn orphans(&mut self, in_api: &std::collections::HashSet<String>) {
        let Some(data_dir) = self.data_dir.clone() else {
            return;
        };
        for pod in self.runner.orphans(&|uid| in_api.contains(uid)) {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if self.pods.contains_key(&uid) {
                continue;
            }
            tracing::info!(
                pod = pod.metadata.name.as_deref().unwrap_or_default(),
                "stopping an orphaned pod (its API object is gone)"
            );
            let involved = Involved::of(&pod);
            self.runner.sync(pod, PodObjects::default());
            self.runner.stop(&uid, Some(0));
            self.pods.insert(
                uid,
                Tracked {
                    involved,
                    generation: None,
                    stop_grace: Some(0),
                    finished: false,
                    removed: true,
                    deletion_finished: true,
                },
            );
        }
        // What is left of pods the API no longer has and nothing runs: their directories
        // (never one another process holds, or with mounts left: remove_pod_dir refuses).
        let stored = match skiff_node::store::list(&data_dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("listing the data dir's pods: {e}");
                return;
            }
        };
        for sp in stored {
            let uid = sp.summary.pod.metadata.uid.clone().unwrap_or_default();
            if uid.is_empty()
                || in_api.contains(&uid)
                || self.pods.contains_key(&uid)
                || sp.running()
            {
                continue;
            }
            remove_pod_dir(&sp.dir);
        }
    }

    /// Runs until `shutdown` fires; writes what is pending before it returns. Pods keep
    /// running: a stopped daemon is a stopped kubelet, not a drained node.
    pub async fn run(
        mut self,
        mut reports: mpsc::UnboundedReceiver<PodReport>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut watch = self.resync().await;
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                item = next_event(&mut watch) => match item {
                    Some((type_, object)) => self.on_watch(type_, &object).await,
                    None => {
                        // The watch ended (cut off, compacted): list again, as an informer does.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        watch = self.resync().await;
                    }
                },
                report = reports.recv() => match report {
                    Some(r) => self.on_report(r).await,
                    None => break,
                },
                _ = tick.tick() => self.flush().await,
                _ = shutdown.changed() => break,
            }
        }
        self.flush().await;
    }

    /// Lists the pods and syncs each, then watches from the list's revision.
    async fn resync(&mut self) -> Option<ApiWatch> {
        let r = pods_resource();
        let list = match self.api.list(r, None, &registry::ListOptions::default()) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("listing pods: {e}");
                return None;
            }
        };
        for object in &list.items {
            self.on_pod(object).await;
        }
        if !self.orphans_checked {
            self.orphans_checked = true;
            let in_api = list
                .items
                .iter()
                .filter_map(|o| o["metadata"]["uid"].as_str().map(str::to_string))
                .collect();
            self.orphans(&in_api);
        }
        let opts = WatchOptions {
            resource_version: Some(list.resource_version.to_string()),
            ..Default::default()
        };
        match self.api.watch(r, None, &opts) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("watching pods: {e}");
                None
            }
        }
    }

    async fn on_watch(&mut self, type_: &str, object: &Value) {
        match type_ {
            "ADDED" | "MODIFIED" => self.on_pod(object).await,
            "DELETED" => self.on_removed(object),
            _ => {}
        }
    }

    fn decode(&self, object: &Value) -> Option<Pod> {
        match serde_json::from_value::<Pod>(object.clone()) {
            Ok(p) => {
                let bound = p.spec.as_ref().and_then(|s| s.node_name.as_deref());
                (bound == Some(self.node.as_str())).then_some(p)
            }
            Err(e) => {
                tracing::warn!("a stored pod does not decode: {e}");
                None
            }
        }
    }

    async fn on_pod(&mut self, object: &Value) {
        let Some(pod) = self.decode(object) else {
            return;
        };
        let (ns, name, uid) = meta_of(&pod);
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let now = skiff_node::worker::now();
        match self.pods.get_mut(&uid) {
            None => {
                if is_terminal(&pod) {
                    // Done before (this daemon or an earlier one): never started again. A
                    // deletion of it needs no termination.
                    if deleting {
                        self.finish_deletion(&ns, &name, &uid).await;
                    }
                    return;
                }
                let objects = self.objects_for(&ns);
                let generation = pod.metadata.generation;
                let involved = Involved::of(&pod);
                self.runner.sync(pod.clone(), objects);
                let mut t = Tracked {
                    involved,
                    generation,
                    stop_grace: None,
                    finished: false,
                    removed: false,
                    deletion_finished: false,
                };
                if deleting {
                    let grace = remaining_grace(&pod, now);
                    self.runner.stop(&uid, grace);
                    t.stop_grace = Some(grace.unwrap_or(i64::MAX));
                }
                self.pods.insert(uid, t);
            }
            Some(t) => {
                t.involved.resource_version = pod.metadata.resource_version.clone();
                if t.finished {
                    if deleting && !t.deletion_finished {
                        self.finish_deletion(&ns, &name, &uid).await;
                    }
                    return;
                }
                // A deletion bumps the generation too (kube does): that is no spec change.
                if pod.metadata.generation != t.generation && !deleting {
                    t.generation = pod.metadata.generation;
                    let objects = {
                        let ns = ns.clone();
                        self.objects_for(&ns)
                    };
                    self.runner.sync(pod.clone(), objects);
                }
                let Some(t) = self.pods.get_mut(&uid) else {
                    return;
                };
                if deleting {
                    let grace = remaining_grace(&pod, now);
                    let g = grace.unwrap_or(i64::MAX);
                    if t.stop_grace.is_none_or(|old| g < old) {
                        t.stop_grace = Some(g);
                        self.runner.stop(&uid, grace);
                    }
                }
            }
        }
    }

    /// The pod object is gone (forced deletion, or the final deletion done).
    fn on_removed(&mut self, object: &Value) {
        let Some(pod) = self.decode(object) else {
            return;
        };
        let (_, _, uid) = meta_of(&pod);
        let Some(t) = self.pods.get_mut(&uid) else {
            return;
        };
        if t.finished {
            self.pods.remove(&uid);
            self.recorder.forget(&uid);
            self.statuses.remove(&uid);
            self.runner.forget(&uid);
            self.remove_dir_of(&pod);
            return;
        }
        t.removed = true;
        if t.stop_grace.is_none_or(|g| g > 0) {
            t.stop_grace = Some(0);
            self.runner.stop(&uid, Some(0));
        }
    }

    async fn on_report(&mut self, report: PodReport) {
        match report {
            PodReport::Status {
                uid,
                namespace,
                name,
                status,
            } => self.queue_status(uid, namespace, name, status),
            PodReport::Event { uid, event, at, .. } => {
                let Some(t) = self.pods.get(&uid) else {
                    return;
                };
                let ev = self.recorder.record(&t.involved, &event, at);
                let key = (
                    ev.metadata.namespace.clone().unwrap_or_default(),
                    ev.metadata.name.clone().unwrap_or_default(),
                );
                self.events.insert(key, ev);
            }
            PodReport::Finished {
                uid,
                namespace,
                name,
                status,
            } => {
                self.queue_status(uid.clone(), namespace.clone(), name.clone(), status);
                self.flush().await;
                self.finished(&uid, &namespace, &name).await;
            }
            // For `/metrics` only (serve::metrics takes them on the way).
            PodReport::Probe { .. } => {}
            PodReport::Failed {
                uid,
                namespace,
                name,
                error,
            } => {
                tracing::warn!("pod {namespace}/{name} could not be run: {error}");
                let status = PodStatus {
                    phase: Some("Failed".into()),
                    message: Some(error),
                    ..Default::default()
                };
                self.queue_status(uid.clone(), namespace.clone(), name.clone(), status);
                self.flush().await;
                self.finished(&uid, &namespace, &name).await;
            }
        }
    }

    async fn finished(&mut self, uid: &str, ns: &str, name: &str) {
        let Some(t) = self.pods.get_mut(uid) else {
            return;
        };
        t.finished = true;
        if t.removed {
            self.pods.remove(uid);
            self.recorder.forget(uid);
            self.runner.forget(uid);
            if let Some(d) = &self.data_dir {
                remove_pod_dir(&skiff_node::store::pods_dir(d).join(format!("{ns}_{name}_{uid}")));
            }
            return;
        }
        if t.stop_grace.is_some() {
            self.finish_deletion(ns, name, uid).await;
        }
    }

    /// The pod's directory (logs, records) goes with its API object, as the kubelet removes
    /// a deleted pod's directories.
    fn remove_dir_of(&self, pod: &Pod) {
        if let Some(d) = &self.data_dir {
            let (ns, name, uid) = meta_of(pod);
            remove_pod_dir(&skiff_node::store::pods_dir(d).join(format!("{ns}_{name}_{uid}")));
        }
    }

    fn queue_status(&mut self, uid: String, ns: String, name: String, mut status: PodStatus) {
        if self.pods.get(&uid).is_some_and(|t| t.removed) {
            return;
        }
        with_addresses(&mut status);
        self.statuses.insert(uid.clone(), (ns, name, uid, status));
    }

    async fn finish_deletion(&mut self, ns: &str, name: &str, uid: &str) {
        if let Some(t) = self.pods.get_mut(uid) {
            t.deletion_finished = true;
        }
        if let Err(e) = self.api.finish_pod_deletion(ns, name, uid).await {
            if e.code != 404 {
                tracing::warn!("deleting pod {ns}/{name}: {e}");
            }
        }
    }

    /// Writes the pending statuses (one transaction) and events.
    async fn flush(&mut self) {
        if !self.statuses.is_empty() {
            let batch: Vec<_> = std::mem::take(&mut self.statuses).into_values().collect();
            for r in self.api.set_pod_statuses(batch).await {
                if let Err(e) = r {
                    if e.code != 404 && e.code != 409 {
                        tracing::warn!("writing a pod status: {e}");
                    }
                }
            }
        }
        if !self.events.is_empty() {
            let events: Vec<_> = std::mem::take(&mut self.events).into_values().collect();
            self.api.record_events(events).await;
        }
    }

    /// The ConfigMaps and Secrets of `namespace` (what the pod's volumes and env may use).
    fn objects_for(&self, namespace: &str) -> PodObjects {
        let mut out = PodObjects::default();
        let opts = registry::ListOptions::default();
        if let Some(r) = registry::resource("", "configmaps") {
            for o in self
                .api
                .list(r, Some(namespace), &opts)
                .into_iter()
                .flat_map(|l| l.items)
            {
                if let Ok(cm) = serde_json::from_value::<ConfigMap>((*o).clone()) {
                    let name = cm.metadata.name.clone().unwrap_or_default();
                    out.config_maps.insert(name, cm);
                }
            }
        }
        if let Some(r) = registry::resource("", "secrets") {
            for o in self
                .api
                .list(r, Some(namespace), &opts)
                .into_iter()
                .flat_map(|l| l.items)
            {
                if let Ok(s) = serde_json::from_value::<Secret>((*o).clone()) {
                    let name = s.metadata.name.clone().unwrap_or_default();
                    out.secrets.insert(name, s);
                }
            }
        }
        out
    }
}

fn remove_pod_dir(dir: &std::path::Path) {
    if let Err(e) = skiff_node::store::remove_pod_dir(dir) {
        tracing::warn!(dir = %dir.display(), "removing a pod's directory: {e}");
    }
}

/// The node's address on every status (the kubelet's `hostIP`), and the pod's once its
/// sandbox exists (`podIP`, set by the kubelet from the sandbox's network): skiff's pods have
/// their own network namespace reached on loopback, so both are 127.0.0.1 (`-o wide`'s IP).
fn with_addresses(status: &mut PodStatus) {
    use k8s_openapi::api::core::v1::{HostIP, PodIP};
    const LOOPBACK: &str = "127.0.0.1";
    if status.host_ip.is_none() {
        status.host_ip = Some(LOOPBACK.into());
        status.host_ips = Some(vec![HostIP {
            ip: LOOPBACK.into(),
        }]);
    }
    let sandbox_up = status
        .container_statuses
        .iter()
        .chain(status.init_container_statuses.iter())
        .flatten()
        .any(|c| c.state.as_ref().is_some_and(|s| s.waiting.is_none()) || c.last_state.is_some())
        || matches!(status.phase.as_deref(), Some("Running"));
    if status.pod_ip.is_none() && sandbox_up {
        status.pod_ip = Some(LOOPBACK.into());
        status.pod_ips = Some(vec![PodIP {
            ip: LOOPBACK.into(),
        }]);
    }
}

/// The next watch event as (type, object); pends forever without a watch (the loop's other
/// arms go on) — `None` means the watch ended.
async fn next_event(watch: &mut Option<ApiWatch>) -> Option<(&'static str, Arc<Value>)> {
    match watch {
        Some(w) => w.next().await.map(|e| (e.type_, e.object)),
        None => None,
    }
}

#[cfg(test)]
mod tests;
