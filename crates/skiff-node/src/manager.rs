//! The node's pod manager for `skiff serve`: one pod worker per pod UID, driven by the
//! daemon's view of the API (`sync` what the store says should run, `stop` what is being
//! deleted), reporting what happens as [`PodReport`]s for the daemon to write back.
//!
//! Pods run *persistent* (`WorkerConfig::persistent`): their sandboxes and containers outlive
//! the daemon. After a `kill -9` of the daemon, the next one `sync`s the same pods and each new
//! worker adopts what the runtime still has of its pod: the sandbox (namespace holder, cgroup,
//! volumes), running containers with their restart counts, and the exits of those that ended
//! meanwhile (the restart policy applies to them as if the daemon had been there).
//!
//! After a restart the daemon `sync`s every pod its store says runs (with the stored status:
//! readiness is kept from it) and stops the [`PodManager::orphans`] the store no longer has.
//! Adopted volumes keep their files, so `objects` need not hold what a running pod's volumes
//! were made from; new pods need theirs. `sync` must be called from inside a tokio runtime
//! (the workers are tasks of it).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tokio::sync::mpsc;

use crate::sandbox::PodObjects;
use crate::worker::{Command, Notice, PullQueue, WorkerConfig};

/// How many commands may wait for a worker before `sync`/`stop` hand them over in a task.
const COMMAND_QUEUE: usize = 16;

/// Settings of the node's pod manager.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// skiff's data dir (`<data dir>/pods/<ns>_<name>_<uid>/`: logs, records, volumes).
    pub data_dir: PathBuf,
    pub engine: skiff_engine::EngineConfig,
    /// The node-wide pull queue ([`PullQueue::node`]).
    pub image_pulls: PullQueue,
}

/// What the daemon writes to the API store.
#[derive(Debug, Clone)]
pub enum PodReport {
    /// The pod's status changed (every change; the daemon coalesces writes).
    Status {
        uid: String,
        namespace: String,
        name: String,
        status: PodStatus,
    },
    /// A Kubernetes event of the pod.
    Event {
        uid: String,
        namespace: String,
        name: String,
        event: skiff_engine::Event,
        at: skiff_engine::Time,
    },
    /// The pod is terminal and every process of it is gone (its worker returned).
    Finished {
        uid: String,
        namespace: String,
        name: String,
        status: PodStatus,
    },
    /// A probe of the pod ran (for metrics).
    Probe {
        uid: String,
        namespace: String,
        name: String,
        run: crate::worker::ProbeRun,
    },
    /// The worker could not run the pod at all (an unsupported runtime class, no image store).
    Failed {
        uid: String,
        namespace: String,
        name: String,
        error: String,
    },
}

impl PodReport {
    /// The pod's UID.
    pub fn uid(&self) -> &str {
        match self {
            PodReport::Status { uid, .. }
            | PodReport::Event { uid, .. }
            | PodReport::Finished { uid, .. }
            | PodReport::Probe { uid, .. }
            | PodReport::Failed { uid, .. } => uid,
        }
    }
}

/// The node's pod workers (see the module docs). Cheap to clone; every clone is the same
/// manager.
#[derive(Clone)]
pub struct PodManager {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ManagerConfig,
    reports: mpsc::UnboundedSender<PodReport>,
    workers: Mutex<Workers>,
}

#[derive(Default)]
struct Workers {
    running: HashMap<String, mpsc::Sender<Command>>,
    /// The running pods' containers as exec targets.
    exec: HashMap<String, crate::exec::ExecTable>,
    /// The running pods' lifecycle records.
    timelines: HashMap<String, crate::timeline::TimelineHandle>,
    /// Pods whose worker has returned: a later `sync` of them does not run them again.
    finished: HashSet<String>,
}

impl std::fmt::Debug for PodManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodManager")
            .field("data_dir", &self.inner.cfg.data_dir)
            .finish()
    }
}

/// Who a pod is, for its reports.
#[derive(Debug, Clone)]
struct Who {
    uid: String,
    namespace: String,
    name: String,
}

impl PodManager {
    /// A manager with no pods, and the receiver of every pod's reports.
    pub fn new(cfg: ManagerConfig) -> (PodManager, mpsc::UnboundedReceiver<PodReport>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            PodManager {
                inner: Arc::new(Inner {
                    cfg,
                    reports: tx,
                    workers: Mutex::new(Workers::default()),
                }),
            },
            rx,
        )
    }

    fn workers(&self) -> std::sync::MutexGuard<'_, Workers> {
        // Only inserts and removes happen under the lock: a panic leaves it consistent.
        self.inner.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `pod` (defaulted, validated, with uid, namespace and nodeName set) if no worker has
    /// its UID: the new worker adopts whatever the runtime already has of it (a restarted
    /// daemon), and takes the readiness of adopted containers from `pod.status` (the last one
    /// stored) until their next probe result. Otherwise hands the new spec to its worker (an
    /// image change restarts only that container, S10; what the API server would refuse is
    /// refused with a Warning event). A pod whose worker has returned is not run again.
    pub fn sync(&self, pod: Pod, objects: PodObjects) {
        let Some(uid) = pod.metadata.uid.clone().filter(|u| !u.is_empty()) else {
            tracing::warn!(
                pod = pod.metadata.name.as_deref().unwrap_or_default(),
                "a pod without metadata.uid cannot be run"
            );
            return;
        };
        let mut w = self.workers();
        if w.finished.contains(&uid) {
            return;
        }
        if let Some(tx) = w.running.get(&uid) {
            let tx = tx.clone();
            drop(w);
            send(tx, Command::Update(Box::new(pod)));
            return;
        }
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let table = crate::exec::ExecTable::default();
        // The first command of the new (empty) queue: it cannot be full.
        let _ = cmd_tx.try_send(Command::ExecTable(table.clone()));
        let timeline = crate::timeline::TimelineHandle::default();
        let _ = cmd_tx.try_send(Command::Timeline(timeline.clone()));
        w.running.insert(uid.clone(), cmd_tx);
        w.exec.insert(uid.clone(), table);
        w.timelines.insert(uid.clone(), timeline);
        drop(w);
        let who = Who {
            uid,
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            name: pod.metadata.name.clone().unwrap_or_default(),
        };
        let cfg = WorkerConfig {
            data_dir: self.inner.cfg.data_dir.clone(),
            engine: self.inner.cfg.engine.clone(),
            objects,
            keeper: None,
            image_pulls: self.inner.cfg.image_pulls.clone(),
            persistent: true,
        };
        let (notice_tx, mut notice_rx) = mpsc::unbounded_channel::<Notice>();
        let reports = self.inner.reports.clone();
        let forward_who = who.clone();
        let forwarder = tokio::spawn(async move {
            let who = forward_who;
            while let Some(n) = notice_rx.recv().await {
                let report = match n {
                    Notice::Status(status) => PodReport::Status {
                        uid: who.uid.clone(),
                        namespace: who.namespace.clone(),
                        name: who.name.clone(),
                        status: *status,
                    },
                    Notice::Event(event, at) => PodReport::Event {
                        uid: who.uid.clone(),
                        namespace: who.namespace.clone(),
                        name: who.name.clone(),
                        event,
                        at,
                    },
                    Notice::Probe(run) => PodReport::Probe {
                        uid: who.uid.clone(),
                        namespace: who.namespace.clone(),
                        name: who.name.clone(),
                        run,
                    },
                    // `kubectl logs` reads the CRI log files.
                    Notice::Log(_) => continue,
                };
                let _ = reports.send(report);
            }
        });
        let this = self.clone();
        tokio::spawn(async move {
            let result = crate::worker::run_pod(pod, cfg, cmd_rx, notice_tx).await;
            // Every status and event of the pod before its end.
            let _ = forwarder.await;
            let report = match result {
                Ok(status) => PodReport::Finished {
                    uid: who.uid.clone(),
                    namespace: who.namespace,
                    name: who.name,
                    status,
                },
                Err(e) => PodReport::Failed {
                    uid: who.uid.clone(),
                    namespace: who.namespace,
                    name: who.name,
                    error: e.to_string(),
                },
            };
            {
                let mut w = this.workers();
                w.running.remove(&who.uid);
                w.exec.remove(&who.uid);
                w.timelines.remove(&who.uid);
                w.finished.insert(who.uid);
            }
            let _ = this.inner.reports.send(report);
        });
    }

    /// Graceful termination of the pod (its deletion): `grace` overrides its
    /// terminationGracePeriodSeconds (the smallest asked for wins, T1).
    pub fn stop(&self, uid: &str, grace: Option<i64>) {
        self.command(
            uid,
            Command::Stop {
                grace,
                why: skiff_timeline::Why::Deletion,
            },
        );
    }

    /// The lifecycle timeline of the pod `uid` (`namespace`/`name`): live while its worker
    /// runs, else as its worker last wrote it in the data dir; `None` if there is none.
    pub fn timeline(
        &self,
        uid: &str,
        namespace: &str,
        name: &str,
    ) -> Option<skiff_timeline::Timeline> {
        let live = self.workers().timelines.get(uid).cloned();
        if let Some(tl) = live.and_then(|h| h.snapshot(crate::worker::now())) {
            return Some(tl);
        }
        // The directory name is made of the three: names the API validated, but refuse
        // anything that could leave the pods dir all the same.
        let unsafe_part = |p: &str| p.is_empty() || p.starts_with('.') || p.contains(['/', '\0']);
        if [uid, namespace, name].into_iter().any(unsafe_part) {
            return None;
        }
        let dir = crate::store::pods_dir(&self.inner.cfg.data_dir)
            .join(format!("{namespace}_{name}_{uid}"));
        crate::store::read_timeline(&dir).ok()
    }

    /// Stops the pod at once: SIGKILL to every container, then the end of termination.
    pub fn kill_now(&self, uid: &str) {
        self.command(uid, Command::KillNow);
    }

    /// Whether a worker runs the pod `uid` now.
    pub fn has(&self, uid: &str) -> bool {
        self.workers().running.contains_key(uid)
    }

    /// The UIDs of the pods whose workers run now.
    pub fn running(&self) -> Vec<String> {
        self.workers().running.keys().cloned().collect()
    }

    /// Forgets that `uid` finished (its API object is gone): a pod of that UID could run again.
    pub fn forget(&self, uid: &str) {
        self.workers().finished.remove(uid);
    }

    /// The pods of the data dir whose persistent sandbox lives (a daemon before this one ran
    /// them) and for which `known` is false (the store has no such pod any more: deleted, or
    /// force-deleted, while no daemon ran): the daemon stops them — `sync` then `stop` (or
    /// `kill_now`) — so nothing of them is left running unseen. Each is the pod as its worker
    /// last wrote it (`pod.json`, with its status).
    pub fn orphans(&self, known: impl Fn(&str) -> bool) -> Vec<Pod> {
        let mut out = Vec::new();
        let pods = crate::store::pods_dir(&self.inner.cfg.data_dir);
        let Ok(entries) = std::fs::read_dir(&pods) else {
            return out;
        };
        for e in entries.flatten() {
            let dir = e.path();
            if !crate::sandbox::PodSandbox::lives(&dir) {
                continue;
            }
            let Ok(pod) = crate::store::read_pod_file(&dir) else {
                continue;
            };
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if uid.is_empty() || known(&uid) || self.has(&uid) {
                continue;
            }
            out.push(pod);
        }
        out
    }

    /// The log file `kubectl logs [--previous]` reads for `container` of `pod` (the pod as
    /// stored, with its status); `Err` is the API's BadRequest message.
    pub fn log_file(&self, pod: &Pod, container: &str, previous: bool) -> Result<PathBuf, String> {
        crate::store::container_log_file(&self.inner.cfg.data_dir, pod, container, previous)
    }

    /// What `kubectl exec` into `container` of the pod `uid` runs through (any running
    /// container of it when `None`: port-forward's network namespace). Answers at once.
    pub fn exec_target(
        &self,
        uid: &str,
        container: Option<&str>,
    ) -> Result<crate::exec::ExecTarget, ExecTargetError> {
        let table = self.workers().exec.get(uid).cloned();
        let Some(table) = table else {
            return Err(ExecTargetError::NoPod);
        };
        table.lookup(container).map_err(ExecTargetError::Refused)
    }

    fn command(&self, uid: &str, cmd: Command) {
        let tx = self.workers().running.get(uid).cloned();
        if let Some(tx) = tx {
            send(tx, cmd);
        }
    }
}

/// Why [`PodManager::exec_target`] has no target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecTargetError {
    /// No worker runs the pod (not on this node, or finished).
    #[error("the pod does not run on this node")]
    NoPod,
    #[error(transparent)]
    Refused(crate::exec::ExecRefusal),
}

/// Hands `cmd` to a worker without blocking the caller: at once when its queue has room,
/// else from a task (order between such commands is not kept).
fn send(tx: mpsc::Sender<Command>, cmd: Command) {
    match tx.try_send(cmd) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        Err(mpsc::error::TrySendError::Full(cmd)) => {
            tokio::spawn(async move {
                let _ = tx.send(cmd).await;
            });
        }
    }
}
