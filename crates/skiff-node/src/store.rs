//! What stays of a pod after `skiff run`: the data dir's pod directories, their status files,
//! and the bound on how many finished pods are kept (issue 8 item 6).
//!
//! # Layout (decision)
//! `<data dir>/pods/<ns>_<name>_<uid>/` is the pod's directory (the kubelet's layout, also used
//! by the sandbox for volumes and by the runtime for logs, `<container>/<restartCount>.log`).
//! Beside them the pod worker keeps:
//! * `pod.json`: the Pod (spec after defaulting, status), rewritten on every status change and
//!   at the end: what `skiff get pods -o json` prints.
//! * `summary.json`: the same Pod cut down to what `skiff get pods` and `skiff logs` read
//!   (names, times, container states without messages) plus the log file of each container
//!   instance (`containerID` → restart count). Small whatever the manifest's size, so listing
//!   a thousand pods stays cheap.
//!
//! Both are written through a temporary file and a rename: a reader never sees half a file.
//!
//! # Running or finished (decision)
//! The worker holds an exclusive `flock` on the pod's directory for as long as it runs the
//! pod; the kernel drops it when skiff exits however it exits. Readers probe it with a
//! non-blocking shared lock: held → the pod is running and its status is current; not held
//! and the phase is not terminal → skiff died mid-run and the status is stale (`get pods`
//! shows `Unknown`, as kubectl does for a pod on a lost node). Pruning takes the exclusive
//! lock before removing a directory, so a running pod is never removed.
//!
//! # Trust
//! The data dir must be owned by skiff's uid and writable by nobody else (like the records
//! dir of `node`): `skiff run` refuses anything else. Every file here is opened without
//! following a symlink and read with a size bound.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStatus, EphemeralContainer, Pod, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use nix::fcntl::{Flock, FlockArg};
use nix::libc;
use serde::{Deserialize, Serialize};

/// Environment variable overriding the default data dir.
pub const DATA_DIR_ENV: &str = "SKIFF_DATA_DIR";
/// Default data dir of root (podman: `/var/lib/containers`).
pub const ROOT_DATA_DIR: &str = "/var/lib/skiff";
/// The full Pod.
pub const POD_FILE: &str = "pod.json";
/// The cut-down Pod `get pods` reads (see the module docs).
pub const SUMMARY_FILE: &str = "summary.json";
/// The pod's lifecycle timeline (skiff_timeline's JSON).
pub const TIMELINE_FILE: &str = "timeline.json";
/// Bytes of `timeline.json` read at most (the recorder's bounds keep it far smaller).
const MAX_TIMELINE_BYTES: u64 = 64 * 1024 * 1024;
/// kubectl's annotation naming the container `kubectl logs` defaults to (kept in the summary).
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";
/// A summary is a few KiB; more is not one of skiff's.
const MAX_SUMMARY_BYTES: u64 = 1024 * 1024;
/// `pod.json` holds a manifest of at most 3 MiB (skiff-model bounds) plus its status.
const MAX_POD_BYTES: u64 = 16 * 1024 * 1024;
/// Mode of the status files: like the logs beside them.
const FILE_MODE: u32 = 0o640;
/// A pod directory without a summary this young may be a pod being created (the worker
/// creates the directory, then locks it): pruning leaves it alone.
const STARTING_GRACE: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data dir {path}: {why}")]
    Untrusted { path: PathBuf, why: String },
    #[error("data dir {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no data dir: give --data-dir, or set {DATA_DIR_ENV}, XDG_DATA_HOME or HOME")]
    NoDefault,
}

/// The data dir when none is given: `$SKIFF_DATA_DIR`, else `/var/lib/skiff` for root and
/// `$XDG_DATA_HOME/skiff` (default `~/.local/share/skiff`) for anyone else, as podman does.
pub fn default_data_dir() -> Result<PathBuf, StoreError> {
    let env = |k: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(d) = env(DATA_DIR_ENV) {
        return Ok(d);
    }
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from(ROOT_DATA_DIR));
    }
    // XDG base directories: a relative value is invalid and ignored.
    if let Some(d) = env("XDG_DATA_HOME") {
        return Ok(d.join("skiff"));
    }
    env("HOME")
        .map(|h| h.join(".local/share/skiff"))
        .ok_or(StoreError::NoDefault)
}

/// Creates the data dir if missing (parents 0700 as the XDG spec asks, the dir itself 0711:
/// traversable by containers running as another user, not listable) and checks it is
/// trustworthy (see [`check_data_dir`]).
pub fn prepare_data_dir(dir: &Path) -> Result<(), StoreError> {
    let io_err = |source| StoreError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if fs::symlink_metadata(dir).is_err() {
        if let Some(parent) = dir.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_err)?;
        }
        match fs::DirBuilder::new().mode(0o711).create(dir) {
            Ok(()) => {
                // Exactly 0711 whatever the umask.
                let f = open_dir(dir).map_err(io_err)?;
                nix::sys::stat::fchmod(&f, nix::sys::stat::Mode::from_bits_truncate(0o711))
                    .map_err(|e| io_err(e.into()))?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    check_data_dir(dir)
}

/// Whether `dir` is a directory owned by skiff's uid and writable by nobody else: pods'
/// logs and status are only trusted from such a directory.
pub fn check_data_dir(dir: &Path) -> Result<(), StoreError> {
    let untrusted = |why: String| StoreError::Untrusted {
        path: dir.to_path_buf(),
        why,
    };
    let md = fs::metadata(dir).map_err(|source| StoreError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if !md.is_dir() {
        return Err(untrusted("not a directory".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if md.uid() != me {
        return Err(untrusted(format!(
            "owned by uid {}, not skiff's uid {me}",
            md.uid()
        )));
    }
    if md.mode() & 0o022 != 0 {
        return Err(untrusted(format!(
            "writable by group or others (mode {:o}); make it 0711",
            md.mode() & 0o7777
        )));
    }
    Ok(())
}

/// `<data dir>/pods`.
pub fn pods_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pods")
}

/// Opens a directory (never through a symlink) for `fstat` or `flock`.
fn open_dir(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
}

/// Reads a regular file (not through a symlink) of at most `max` bytes.
fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)?;
    let md = f.metadata()?;
    if !md.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if md.len() > max {
        return Err(io::Error::other(format!("larger than {max} bytes")));
    }
    let mut buf = Vec::with_capacity(usize::try_from(md.len()).unwrap_or(0));
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(io::Error::other(format!("larger than {max} bytes")));
    }
    Ok(buf)
}

/// Writes `data` to `dir/name` through `dir/name.tmp` and a rename (mode 0640, no symlink
/// followed).
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    let res = f
        .write_all(data)
        .and_then(|()| fs::rename(&tmp, dir.join(name)));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// What `summary.json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// The cut-down Pod ([`slim`]).
    pub pod: Pod,
    /// `containerID` of every container instance started → its restart count, which names
    /// its log file (`<container>/<n>.log`).
    #[serde(default)]
    pub instances: BTreeMap<String, i32>,
}

/// The Pod cut down to what `get pods` and `logs` use: identity, creation and deletion time,
/// the default-container annotation, container names (init containers with their
/// restartPolicy), nodeName, readiness gates, and the status without messages.
pub fn slim(pod: &Pod) -> Pod {
    let m = &pod.metadata;
    let annotations = m.annotations.as_ref().and_then(|a| {
        a.get(DEFAULT_CONTAINER_ANNOTATION)
            .map(|v| BTreeMap::from([(DEFAULT_CONTAINER_ANNOTATION.to_string(), v.clone())]))
    });
    let metadata = ObjectMeta {
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        uid: m.uid.clone(),
        creation_timestamp: m.creation_timestamp.clone(),
        deletion_timestamp: m.deletion_timestamp.clone(),
        annotations,
        ..Default::default()
    };
    let named = |c: &Container| Container {
        name: c.name.clone(),
        restart_policy: c.restart_policy.clone(),
        ..Default::default()
    };
    let spec = pod.spec.as_ref().map(|s| PodSpec {
        containers: s.containers.iter().map(named).collect(),
        init_containers: s
            .init_containers
            .as_ref()
            .map(|v| v.iter().map(named).collect()),
        ephemeral_containers: s.ephemeral_containers.as_ref().map(|v| {
            v.iter()
                .map(|c| EphemeralContainer {
                    name: c.name.clone(),
                    ..Default::default()
                })
                .collect()
        }),
        node_name: s.node_name.clone(),
        readiness_gates: s.readiness_gates.clone(),
        ..Default::default()
    });
    let status = pod.status.as_ref().map(|s| {
        let strip = |list: &Option<Vec<ContainerStatus>>| {
            list.as_ref().map(|v| {
                v.iter()
                    .map(|c| ContainerStatus {
                        state: c.state.as_ref().map(strip_state),
                        last_state: c.last_state.as_ref().map(strip_state),
                        ..c.clone()
                    })
                    .collect()
            })
        };
        PodStatus {
            message: None,
            container_statuses: strip(&s.container_statuses),
            init_container_statuses: strip(&s.init_container_statuses),
            ephemeral_container_statuses: strip(&s.ephemeral_container_statuses),
            conditions: s.conditions.as_ref().map(|v| {
                v.iter()
                    .map(|c| k8s_openapi::api::core::v1::PodCondition {
                        message: None,
                        ..c.clone()
                    })
                    .collect()
            }),
            ..s.clone()
        }
    });
    Pod {
        metadata,
        spec,
        status,
    }
}

/// A container state without its (up to 4 KiB) messages.
fn strip_state(s: &ContainerState) -> ContainerState {
    let mut s = s.clone();
    if let Some(t) = s.terminated.as_mut() {
        t.message = None;
    }
    if let Some(w) = s.waiting.as_mut() {
        w.message = None;
    }
    s
}

/// Whether `phase` is Succeeded or Failed.
pub fn is_terminal_phase(phase: Option<&str>) -> bool {
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// Keeps a running pod's `pod.json` and `summary.json` current, and holds the lock that says
/// it runs (see the module docs). Dropped, it releases the lock and leaves the last status
/// written.
#[derive(Debug)]
pub struct PodRecorder {
    dir: PathBuf,
    _lock: Flock<File>,
    pod: Pod,
    instances: BTreeMap<String, i32>,
    last: Option<PodStatus>,
    dirty: bool,
    /// Whether a write failed already (said once).
    failed: bool,
}

impl PodRecorder {
    /// Creates the pod's directory (`<data dir>/pods/<dir_name>`), locks it and writes the
    /// pod as admitted (no status yet).
    pub fn create(data_dir: &Path, dir_name: &str, pod: &Pod) -> io::Result<PodRecorder> {
        let dir = pods_dir(data_dir).join(dir_name);
        crate::node::create_pod_dir(&dir)?;
        // Blocking: only readers' brief shared probes can hold it.
        let lock = Flock::lock(open_dir(&dir)?, FlockArg::LockExclusive)
            .map_err(|(_, e)| io::Error::from(e))?;
        let mut pod = pod.clone();
        pod.status = None;
        let mut rec = PodRecorder {
            dir,
            _lock: lock,
            pod,
            instances: BTreeMap::new(),
            last: None,
            dirty: true,
            failed: false,
        };
        rec.write()?;
        Ok(rec)
    }

    /// The pod's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A container instance `container_id` was asked to start with restart count `attempt`
    /// (its log is `<container>/<attempt>.log`); written with the next status.
    pub fn instance(&mut self, container_id: String, attempt: i32) {
        if self.instances.insert(container_id, attempt) != Some(attempt) {
            self.dirty = true;
        }
    }

    /// Writes `status` if it differs from the last one written (or an instance was added).
    pub fn update(&mut self, status: &PodStatus) {
        if !self.dirty && self.last.as_ref() == Some(status) {
            return;
        }
        self.last = Some(status.clone());
        self.dirty = true;
        if let Err(e) = self.write() {
            if !self.failed {
                tracing::warn!(dir = %self.dir.display(), "recording the pod's status: {e}");
                self.failed = true;
            }
        }
    }

    /// The pod's spec changed (an accepted update): written with the next status.
    pub fn set_spec(&mut self, spec: Option<k8s_openapi::api::core::v1::PodSpec>) {
        if self.pod.spec != spec {
            self.pod.spec = spec;
            self.dirty = true;
        }
    }

    /// Writes the final status and releases the lock.
    pub fn finish(mut self, status: &PodStatus) {
        self.update(status);
    }

    /// Writes the pod's timeline (`timeline.json`); a failure is logged once.
    pub fn write_timeline(&mut self, timeline: &skiff_timeline::Timeline) {
        let res = serde_json::to_vec(timeline)
            .map_err(io::Error::other)
            .and_then(|data| write_atomic(&self.dir, TIMELINE_FILE, &data));
        if let Err(e) = res {
            if !self.failed {
                tracing::warn!(dir = %self.dir.display(), "recording the pod's timeline: {e}");
                self.failed = true;
            }
        }
    }

    fn write(&mut self) -> io::Result<()> {
        self.pod.status = self.last.clone();
        let full = serde_json::to_vec_pretty(&self.pod).map_err(io::Error::other)?;
        let summary = Summary {
            pod: slim(&self.pod),
            instances: self.instances.clone(),
        };
        let small = serde_json::to_vec(&summary).map_err(io::Error::other)?;
        // The full Pod first: a reader that found the summary finds a Pod at least as new.
        write_atomic(&self.dir, POD_FILE, &full)?;
        write_atomic(&self.dir, SUMMARY_FILE, &small)?;
        self.dirty = false;
        Ok(())
    }
}

/// The timeline of a pod directory (`timeline.json`), read with the size bound.
pub fn read_timeline(dir: &Path) -> io::Result<skiff_timeline::Timeline> {
    let data = read_bounded(&dir.join(TIMELINE_FILE), MAX_TIMELINE_BYTES)?;
    serde_json::from_slice(&data).map_err(io::Error::other)
}

/// The full Pod of a pod directory (`pod.json`), read with the size bound.
pub fn read_pod_file(dir: &Path) -> io::Result<Pod> {
    let data = read_bounded(&dir.join(POD_FILE), MAX_POD_BYTES)?;
    serde_json::from_slice(&data).map_err(io::Error::other)
}

/// Records a pod that never ran (rejected at admission) with its final status.
pub fn record_final(data_dir: &Path, dir_name: &str, pod: &Pod) -> io::Result<PathBuf> {
    let mut rec = PodRecorder::create(data_dir, dir_name, pod)?;
    rec.last = pod.status.clone();
    rec.write()?;
    Ok(rec.dir.clone())
}

/// One pod of the data dir, as its summary says.
#[derive(Debug, Clone)]
pub struct StoredPod {
    pub dir: PathBuf,
    pub summary: Summary,
    /// When the summary was last written (the end, for a finished pod).
    pub updated: SystemTime,
}

impl StoredPod {
    pub fn namespace(&self) -> &str {
        self.summary.pod.metadata.namespace.as_deref().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.summary.pod.metadata.name.as_deref().unwrap_or("")
    }

    pub fn phase(&self) -> Option<&str> {
        self.summary
            .pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
    }

    /// Whether a skiff process runs this pod now (holds its lock).
    pub fn running(&self) -> bool {
        lock_held(&self.dir)
    }

    /// A pod whose phase is not terminal and that no skiff runs any more: skiff died and the
    /// status is stale.
    pub fn stale(&self) -> bool {
        !is_terminal_phase(self.phase()) && !self.running()
    }

    /// The full Pod (`pod.json`).
    pub fn full_pod(&self) -> io::Result<Pod> {
        let data = read_bounded(&self.dir.join(POD_FILE), MAX_POD_BYTES)?;
        serde_json::from_slice(&data).map_err(io::Error::other)
    }

    /// Reads the summary again (a running pod's status moves on).
    pub fn refresh(&self) -> io::Result<StoredPod> {
        read_pod_dir(&self.dir)
    }

    /// The log file of instance `attempt` of `container`.
    pub fn log_path(&self, container: &str, attempt: i32) -> PathBuf {
        self.dir.join(container).join(format!("{attempt}.log"))
    }

    /// Sort key: newer pods later (creation time, then when last written).
    fn age_key(&self) -> (Option<k8s_openapi::jiff::Timestamp>, SystemTime) {
        (
            self.summary
                .pod
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0),
            self.updated,
        )
    }
}

/// The container's status, searched as the kubelet does (regular, init, ephemeral).
pub fn container_status<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    let st = pod.status.as_ref()?;
    [
        &st.container_statuses,
        &st.init_container_statuses,
        &st.ephemeral_container_statuses,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .find(|c| c.name == name)
}

/// The instance whose log `kubectl logs` reads: its `containerID` and restart count (which
/// names the file, `<container>/<attempt>.log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogInstance {
    pub container_id: String,
    pub attempt: i32,
}

/// The kubelet's validateContainerLogStatus: which instance of `container` of `pod` (its status
/// as last written) `kubectl logs [--previous]` reads; `instances` is the worker's record of
/// the restart count each instance ran as (`summary.json`; the status' count when missing).
/// `Err` is the API's BadRequest message.
pub fn log_instance(
    pod: &Pod,
    instances: &BTreeMap<String, i32>,
    container: &str,
    previous: bool,
) -> Result<LogInstance, String> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let Some(cs) = container_status(pod, container) else {
        return Err(format!(
            "container \"{container}\" in pod \"{pod_name}\" is not available"
        ));
    };
    let state = cs.state.clone().unwrap_or_default();
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let id_of = |id: Option<&String>| id.filter(|s| !s.is_empty()).cloned();
    let last_id = last.and_then(|t| id_of(t.container_id.as_ref()));
    let (id, fallback) = if previous {
        let Some(id) = last_id else {
            return Err(format!(
                "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
            ));
        };
        (id, cs.restart_count - 1)
    } else if state.running.is_some() {
        match id_of(cs.container_id.as_ref()) {
            Some(id) => (id, cs.restart_count),
            None => {
                return Err(format!(
                "container \"{container}\" in pod \"{pod_name}\" is waiting to start - no logs yet"
            ))
            }
        }
    } else if let Some(t) = &state.terminated {
        match (id_of(t.container_id.as_ref()), last_id) {
            (Some(id), _) => (id, cs.restart_count),
            // The next instance did not start: the last one's.
            (None, Some(id)) => (id, cs.restart_count - 1),
            (None, None) => {
                return Err(format!(
                    "container \"{container}\" in pod \"{pod_name}\" is terminated"
                ))
            }
        }
    } else if last.is_some() {
        match last_id {
            Some(id) => (id, cs.restart_count - 1),
            None => {
                return Err(format!(
                    "container \"{container}\" in pod \"{pod_name}\" is terminated"
                ))
            }
        }
    } else if let Some(w) = &state.waiting {
        return Err(format!(
            "container \"{container}\" in pod \"{pod_name}\" is waiting to start: {}",
            w.reason.as_deref().unwrap_or("")
        ));
    } else {
        return Err(format!(
            "container \"{container}\" in pod \"{pod_name}\" is waiting to start - no logs yet"
        ));
    };
    // The worker recorded which restart count each instance ran as; older records lack
    // it: the status' count then.
    let attempt = instances.get(&id).copied().unwrap_or(fallback.max(0));
    Ok(LogInstance {
        container_id: id,
        attempt,
    })
}

/// The log file `kubectl logs [--previous]` reads for `container` of `pod` (its status as
/// last reported; see [`log_instance`]) under `data_dir`, with the restart counts the worker
/// recorded in the pod's `summary.json` when there is one. `Err`: the API's BadRequest message.
pub fn container_log_file(
    data_dir: &Path,
    pod: &Pod,
    container: &str,
    previous: bool,
) -> Result<PathBuf, String> {
    let m = &pod.metadata;
    let dir = pods_dir(data_dir).join(format!(
        "{}_{}_{}",
        m.namespace.as_deref().unwrap_or("default"),
        m.name.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    ));
    let instances = read_pod_dir(&dir)
        .map(|p| p.summary.instances)
        .unwrap_or_default();
    let i = log_instance(pod, &instances, container, previous)?;
    Ok(dir.join(container).join(format!("{}.log", i.attempt)))
}

/// Whether someone holds the exclusive lock of `dir` (a running skiff).
fn lock_held(dir: &Path) -> bool {
    let Ok(f) = open_dir(dir) else {
        return false;
    };
    match Flock::lock(f, FlockArg::LockSharedNonblock) {
        Ok(_) => false,
        Err((_, e)) => e == nix::errno::Errno::EWOULDBLOCK,
    }
}

/// Reads one pod directory's summary; the directory's name must match the pod in it.
pub fn read_pod_dir(dir: &Path) -> io::Result<StoredPod> {
    let path = dir.join(SUMMARY_FILE);
    let data = read_bounded(&path, MAX_SUMMARY_BYTES)?;
    let updated = fs::symlink_metadata(&path)?.modified()?;
    let summary: Summary = serde_json::from_slice(&data).map_err(io::Error::other)?;
    let m = &summary.pod.metadata;
    let want = format!(
        "{}_{}_{}",
        m.namespace.as_deref().unwrap_or(""),
        m.name.as_deref().unwrap_or(""),
        m.uid.as_deref().unwrap_or("")
    );
    if dir.file_name().and_then(|n| n.to_str()) != Some(want.as_str()) {
        return Err(io::Error::other(format!(
            "the summary is of pod {want}, not of this directory"
        )));
    }
    Ok(StoredPod {
        dir: dir.to_path_buf(),
        summary,
        updated,
    })
}

/// Every pod of the data dir with a readable summary (a missing data dir has none).
/// Unreadable ones are skipped (said at debug level).
pub fn list(data_dir: &Path) -> io::Result<Vec<StoredPod>> {
    let entries = match fs::read_dir(pods_dir(data_dir)) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        match read_pod_dir(&e.path()) {
            Ok(p) => out.push(p),
            Err(err) => {
                tracing::debug!(dir = %e.path().display(), "skipping a pod directory: {err}")
            }
        }
    }
    Ok(out)
}

/// The newest pod of each namespace/name (pods are recreated under the same name with a new
/// uid; like a cluster, one pod per name is shown), sorted by namespace and name.
pub fn newest_per_name(pods: Vec<StoredPod>) -> Vec<StoredPod> {
    let mut by_name: BTreeMap<(String, String), StoredPod> = BTreeMap::new();
    for p in pods {
        let key = (p.namespace().to_string(), p.name().to_string());
        match by_name.get(&key) {
            Some(cur) if cur.age_key() >= p.age_key() => {}
            _ => {
                by_name.insert(key, p);
            }
        }
    }
    by_name.into_values().collect()
}

/// How many finished pods the data dir keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// At most this many finished pods (the newest).
    pub keep: usize,
    /// None finished longer ago than this.
    pub keep_for: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep: 100,
            keep_for: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Removes the finished pods (directories nobody holds the lock of) beyond `retention`:
/// all but the `keep` most recently finished, and those finished more than `keep_for`
/// before `now`. Never a running pod, a directory with something mounted below it, nor one
/// that may be being created. Returns the directories removed.
pub fn prune(data_dir: &Path, retention: Retention, now: SystemTime) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(pods_dir(data_dir)) else {
        return Vec::new();
    };
    // (finished at, dir)
    let mut finished: Vec<(SystemTime, PathBuf)> = Vec::new();
    for e in entries.flatten() {
        let dir = e.path();
        let Ok(md) = fs::symlink_metadata(&dir) else {
            continue;
        };
        // Only the kubelet-style pod directories skiff makes (`<ns>_<name>_<uid>`).
        let named = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.split('_').count() == 3);
        if !md.is_dir() || !named {
            continue;
        }
        if lock_held(&dir) {
            continue;
        }
        let at = match fs::symlink_metadata(dir.join(SUMMARY_FILE)).and_then(|m| m.modified()) {
            Ok(t) => t,
            Err(_) => {
                let t = md.modified().unwrap_or(now);
                if now.duration_since(t).unwrap_or_default() < STARTING_GRACE {
                    continue;
                }
                t
            }
        };
        finished.push((at, dir));
    }
    finished.sort_by_key(|b| std::cmp::Reverse(b.0));
    let mounts = crate::mountinfo::mount_points();
    let mut removed = Vec::new();
    for (i, (at, dir)) in finished.into_iter().enumerate() {
        let old = now.duration_since(at).unwrap_or_default() > retention.keep_for;
        if i < retention.keep && !old {
            continue;
        }
        match remove_pod_dir_checked(&dir, &mounts) {
            Ok(true) => removed.push(dir),
            Ok(false) => {}
            Err(e) => tracing::warn!(dir = %dir.display(), "removing a finished pod: {e}"),
        }
    }
    removed
}

/// Removes a finished pod's directory (`--rm`): only if no skiff holds it and nothing is
/// mounted below it. Returns whether it was removed.
pub fn remove_pod_dir(dir: &Path) -> io::Result<bool> {
    remove_pod_dir_checked(dir, &crate::mountinfo::mount_points())
}

fn remove_pod_dir_checked(dir: &Path, mounts: &[PathBuf]) -> io::Result<bool> {
    if let Some(m) = mounts.iter().find(|m| m.starts_with(dir)) {
        return Err(io::Error::other(format!(
            "{} is still mounted; left in place",
            m.display()
        )));
    }
    let f = match open_dir(dir) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    // Held while removing: a running pod is never removed.
    let _lock = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(false),
        Err((_, e)) => return Err(e.into()),
    };
    crate::fdwalk::remove_tree(dir)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn pod(ns: &str, name: &str, uid: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": uid,
                "creationTimestamp": "2024-01-01T00:00:00Z",
                "annotations": {"a": "b", DEFAULT_CONTAINER_ANNOTATION: "c2"}},
            "spec": {"containers": [
                {"name": "c1", "image": "x", "command": ["sh", "-c", "a very long script"]},
                {"name": "c2", "image": "x"}],
                "initContainers": [{"name": "i", "image": "x", "restartPolicy": "Always"}]},
        }))
        .unwrap()
    }

    fn status(phase: &str) -> PodStatus {
        serde_json::from_value(serde_json::json!({
            "phase": phase,
            "message": "long message",
            "containerStatuses": [{"name": "c1", "image": "x", "imageID": "", "ready": false,
                "restartCount": 1, "containerID": "skiff://3",
                "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": "bye"}}}]
        }))
        .unwrap()
    }

    #[test]
    fn slim_keeps_what_get_and_logs_need() {
        let mut p = pod("default", "p", "u1");
        p.status = Some(status("Failed"));
        let s = slim(&p);
        assert_eq!(s.metadata.name.as_deref(), Some("p"));
        let ann = s.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann.len(), 1);
        assert_eq!(ann[DEFAULT_CONTAINER_ANNOTATION], "c2");
        let spec = s.spec.as_ref().unwrap();
        assert_eq!(spec.containers[0].name, "c1");
        assert!(spec.containers[0].command.is_none());
        assert_eq!(
            spec.init_containers.as_ref().unwrap()[0]
                .restart_policy
                .as_deref(),
            Some("Always")
        );
        let st = s.status.as_ref().unwrap();
        assert!(st.message.is_none());
        let c = &st.container_statuses.as_ref().unwrap()[0];
        let t = c.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert!(t.message.is_none());
        assert_eq!(t.reason.as_deref(), Some("Error"));
        assert_eq!(c.container_id.as_deref(), Some("skiff://3"));
    }

    #[test]
    fn recorder_writes_status_and_holds_the_lock() {
        let d = tempfile::tempdir().unwrap();
        let p = pod("default", "p", "u1");
        let mut rec = PodRecorder::create(d.path(), "default_p_u1", &p).unwrap();
        let dir = rec.dir().to_path_buf();
        let listed = list(d.path()).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].running());
        assert!(!listed[0].stale());
        rec.instance("skiff://3".into(), 1);
        rec.update(&status("Running"));
        let sp = read_pod_dir(&dir).unwrap();
        assert_eq!(sp.phase(), Some("Running"));
        assert_eq!(sp.summary.instances["skiff://3"], 1);
        assert_eq!(
            sp.full_pod().unwrap().status.unwrap().message.as_deref(),
            Some("long message")
        );
        let mode = fs::metadata(dir.join(POD_FILE)).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        // A running pod is never pruned, whatever the bound.
        let none = Retention {
            keep: 0,
            keep_for: Duration::ZERO,
        };
        assert!(prune(d.path(), none, SystemTime::now()).is_empty());
        rec.finish(&status("Failed"));
        let sp = read_pod_dir(&dir).unwrap();
        assert!(!sp.running());
        assert!(!sp.stale());
        assert_eq!(prune(d.path(), none, SystemTime::now()), vec![dir.clone()]);
        assert!(!dir.exists());
    }

    #[test]
    fn a_pod_left_running_by_a_dead_skiff_is_stale() {
        let d = tempfile::tempdir().unwrap();
        let mut rec =
            PodRecorder::create(d.path(), "default_p_u1", &pod("default", "p", "u1")).unwrap();
        rec.update(&status("Running"));
        drop(rec);
        let sp = &list(d.path()).unwrap()[0];
        assert!(sp.stale());
    }

    #[test]
    fn retention_keeps_the_newest_and_the_young() {
        let d = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        for (i, uid) in ["u0", "u1", "u2", "u3"].iter().enumerate() {
            let dir = record_final(d.path(), &format!("default_p_{uid}"), &{
                let mut p = pod("default", "p", uid);
                p.status = Some(status("Succeeded"));
                p
            })
            .unwrap();
            // u0 finished 4 h ago, u1 3 h ago, …
            let at = now - Duration::from_secs(3600 * (4 - i as u64));
            File::open(dir.join(SUMMARY_FILE))
                .unwrap()
                .set_modified(at)
                .unwrap();
        }
        let keep3 = Retention {
            keep: 3,
            keep_for: Duration::from_secs(24 * 3600),
        };
        let removed = prune(d.path(), keep3, now);
        assert_eq!(removed.len(), 1);
        assert!(removed[0].ends_with("default_p_u0"), "{removed:?}");
        let young = Retention {
            keep: 100,
            keep_for: Duration::from_secs(5400),
        };
        let mut removed = prune(d.path(), young, now);
        removed.sort();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(removed[0].ends_with("default_p_u1"));
        assert!(removed[1].ends_with("default_p_u2"));
        assert_eq!(list(d.path()).unwrap().len(), 1);
    }

    #[test]
    fn a_young_directory_without_summary_is_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let dir = pods_dir(d.path()).join("default_p_u9");
        fs::create_dir_all(&dir).unwrap();
        let none = Retention {
            keep: 0,
            keep_for: Duration::ZERO,
        };
        assert!(prune(d.path(), none, SystemTime::now()).is_empty());
        let later = SystemTime::now() + STARTING_GRACE + Duration::from_secs(1);
        assert_eq!(prune(d.path(), none, later), vec![dir]);
    }

    #[test]
    fn newest_per_name_and_sorted() {
        let d = tempfile::tempdir().unwrap();
        for (ns, name, uid, created) in [
            ("b", "x", "u1", "2024-01-01T00:00:00Z"),
            ("a", "y", "u2", "2024-01-01T00:00:00Z"),
            ("a", "y", "u3", "2024-01-02T00:00:00Z"),
            ("a", "x", "u4", "2023-01-02T00:00:00Z"),
        ] {
            let mut p = pod(ns, name, uid);
            p.metadata.creation_timestamp = serde_json::from_value(created.into()).unwrap();
            p.status = Some(status("Succeeded"));
            record_final(d.path(), &format!("{ns}_{name}_{uid}"), &p).unwrap();
        }
        let got: Vec<String> = newest_per_name(list(d.path()).unwrap())
            .iter()
            .map(|p| {
                format!(
                    "{}/{}/{}",
                    p.namespace(),
                    p.name(),
                    p.summary.pod.metadata.uid.as_deref().unwrap()
                )
            })
            .collect();
        assert_eq!(got, vec!["a/x/u4", "a/y/u3", "b/x/u1"]);
    }

    #[test]
    fn summary_of_another_pod_or_oversized_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let mut p = pod("default", "p", "u1");
        p.status = Some(status("Succeeded"));
        let dir = record_final(d.path(), "default_p_u1", &p).unwrap();
        // Moved under another pod's name: not trusted as that pod.
        let other = pods_dir(d.path()).join("default_q_u2");
        fs::rename(&dir, &other).unwrap();
        assert!(read_pod_dir(&other).is_err());
        fs::rename(&other, &dir).unwrap();
        assert!(read_pod_dir(&dir).is_ok());
        fs::write(
            dir.join(SUMMARY_FILE),
            vec![b' '; MAX_SUMMARY_BYTES as usize + 1],
        )
        .unwrap();
        assert!(read_pod_dir(&dir).is_err());
        // A symlinked summary is not followed.
        fs::remove_file(dir.join(SUMMARY_FILE)).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join(SUMMARY_FILE)).unwrap();
        assert!(read_pod_dir(&dir).is_err());
        assert!(list(d.path()).unwrap().is_empty());
    }

    #[test]
    fn data_dir_is_created_0711_and_refused_when_not_skiffs() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("a/b/skiff");
        prepare_data_dir(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o7777, 0o711);
        assert_eq!(
            fs::metadata(t.path().join("a")).unwrap().mode() & 0o7777,
            0o700
        );
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            prepare_data_dir(&dir),
            Err(StoreError::Untrusted { .. })
        ));
        if nix::unistd::geteuid().is_root() {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o711)).unwrap();
            nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
            let err = check_data_dir(&dir).unwrap_err().to_string();
            assert!(err.contains("owned by uid 65534"), "{err}");
        }
    }
}
