//! Pod and container cgroups with resource limits (SEMANTICS CG1–CG6, CG9),
//! OOM detection and `oom_score_adj` (RES9), for cgroup v1 and v2.
//!
//! # Pieces
//! * [`layout`]: [`CgroupLayout`] from `/proc/self/mountinfo` +
//!   `/proc/self/cgroup` (v1, v2 or hybrid; our own cgroup per hierarchy).
//! * [`CgroupDriver`]: [`V1Driver`] / [`V2Driver`]; pick with [`detect`] or
//!   [`driver_for`]. Everything is created **below skiff's own cgroup** in each
//!   hierarchy (plus [`CgroupSettings::parent`]), never at the root:
//!   `<own>/<parent>/kubepods/{burstable,besteffort}/pod<uid>/<container>`
//!   (CG1: Guaranteed pods directly under `kubepods`).
//! * [`PodCgroup`]: one pod's cgroup with the values of
//!   [`skiff_model::resources::pod_cgroup_values`]; [`ContainerCgroup`]: one
//!   container instance's cgroup with
//!   [`skiff_model::resources::container_cgroup_values`]. A `ContainerCgroup`
//!   is a [`TrackedGroup`], so the host runtime
//!   can place the container's processes in it and kill the whole tree.
//! * [`OomWatcher`]: whether the kernel OOM killer killed a process of a
//!   container cgroup (v1 `memory.oom_control` `oom_kill` + eventfd via
//!   `cgroup.event_control`; v2 `memory.events` `oom_kill`).
//! * [`OomScoreAdjuster`]: writes `/proc/<pid>/oom_score_adj`, raising a
//!   refused negative value to 0 and saying so once.
//! * [`list_pod_cgroups`] / [`remove_stale_pods`]: startup cleanup of pod
//!   cgroups a previous skiff process left behind.
//!
//! # Files written
//! | | v1 | v2 |
//! |---|---|---|
//! | cpu request | `cpu.shares` | `cpu.weight` ([`CgroupConfig::weight_formula`]) |
//! | cpu limit | `cpu.cfs_period_us`, then `cpu.cfs_quota_us` | `cpu.max` |
//! | memory limit | `memory.limit_in_bytes` (+ `memory.memsw.limit_in_bytes`, same value, ordered so memsw ≥ limit holds) | `memory.max` |
//! | pod pids limit | `pids.max` | `pids.max` |
//! | container | — | `memory.oom.group` = 1 (CG6) |
//!
//! Pod cgroups: values not set by [`pod_cgroup_values`] (BestEffort; Burstable
//! limits that are not "declared", CG9) are **not written** — the files keep
//! the kernel default (unlimited). `pids.max` is written on every pod cgroup
//! (`max` unless [`CgroupSettings::pod_pids_limit`]); container cgroups get no
//! pids limit (the kubelet sets none either). Container cgroups always get the
//! CFS period (and a quota only with a cpu limit), like runc does for the
//! values the CRI passes. QoS cgroups: `besteffort` gets the minimum cpu
//! weight (shares 2); the kubelet's dynamic `burstable`/`kubepods` shares
//! (sum of requests, node allocatable) are not maintained.
//!
//! # Missing controllers (decision)
//! `cpu` and `memory` are required: without them the driver does not start
//! ([`CgroupError::MissingController`]) — the kubelet refuses to run too. `pids`
//! is required only when a pod pids limit is configured; otherwise its absence
//! is a warning and `pids.max` is skipped (the kubelet only writes it when a
//! limit is set). v1 `freezer` is optional (without it kill-tree loops
//! SIGKILL until the cgroup is empty), `cpuacct` optional (statistics only),
//! `cpuset`/`hugetlb`/others are not used.
//!
//! # v1 and process placement
//! On v1 a process must join one `cgroup.procs` per hierarchy.
//! [`ContainerCgroup::join_files`] returns all of them (memory first); the
//! single-file [`TrackedGroup::join_file`] is the memory one. Both spawn paths
//! write `0` into every join file before `exec`
//! ([`TrackedGroup::join_files`]), so the container is in all hierarchies from
//! its first instruction.
//!
//! # v2 and delegation
//! Controllers are enabled in `cgroup.subtree_control` from skiff's own cgroup
//! down to each pod cgroup (only those the host makes available). If skiff's
//! own cgroup holds processes, the kernel refuses (no internal processes);
//! with [`CgroupSettings::move_self_to_leaf`] skiff then moves itself into
//! `<own>/skiff.supervisor` and retries, else
//! [`CgroupError::InternalProcesses`].
//!
//! # Wiring (done by the `node` module, which composes this one)
//! 1. Start (root): [`detect`] once per process (`node::NodeResources::global`); if
//!    that fails it says so once and containers keep the process tracker. Pods a killed
//!    skiff recorded are cleaned up ([`remove_dir_trees`]).
//! 2. Pod sandbox: [`PodCgroup::create`] before the first container (an error fails the pod
//!    with `FailedCreatePodSandBox`, nothing left); [`PodCgroup::remove`] at pod end.
//! 3. Container start: [`PodCgroup::create_container`] per instance, handed to the host
//!    runtime as the container's `TrackedGroup`. The pre-exec hook writes `0` into every
//!    [`ContainerCgroup::join_files`] (v1); on v2 the child is born in the cgroup
//!    (`clone3(CLONE_INTO_CGROUP)`, [`TrackedGroup::cgroup_dir`]). `oom_score_adj` (RES9) is
//!    applied in the child (a refused negative value becomes 0; said once in the parent).
//! 4. Container exit: main process killed by SIGKILL **and** [`TrackedGroup::oom_killed`]
//!    → reason `OOMKilled`, exit 137 (ST4), read before the group is removed.

pub mod devices;
mod fsutil;
pub mod layout;
mod oom;
mod v1;
mod v2;

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, PodSpec};
use nix::sys::signal::Signal;
use skiff_model::resources::{
    container_cgroup_values, pod_cgroup_values, qos_class, CgroupConfig, ContainerCgroupValues,
    PodCgroupValues, QosClass,
};

pub use layout::{CgroupLayout, UnifiedHierarchy, V1Hierarchy};
pub use oom::{OomScoreAdjuster, OomScoreOutcome, OomWatcher};
pub use v1::V1Driver;
pub use v2::V2Driver;

use crate::spec::{BoxFuture, TrackedGroup};

/// Name of the top cgroup (CG1).
pub const KUBEPODS: &str = "kubepods";

/// Errors of this module; every I/O error names its file.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cgroup controller {controller:?} is not available on this host: {detail}")]
    MissingController {
        controller: &'static str,
        detail: String,
    },
    #[error("no usable cgroup hierarchy: {0}")]
    NoCgroups(String),
    #[error("cgroup {} still has processes {pids:?} after {waited:?}", path.display())]
    Busy {
        path: PathBuf,
        pids: Vec<i32>,
        waited: Duration,
    },
    #[error(
        "cgroup v2: cannot enable controllers below {}: it holds processes (no-internal-processes rule); \
         start skiff in a delegated cgroup of its own (e.g. `systemd-run --scope -p Delegate=yes skiff ...`)",
        path.display()
    )]
    InternalProcesses { path: PathBuf },
    #[error("invalid cgroup settings: {0}")]
    Settings(String),
}

impl From<CgroupError> for io::Error {
    fn from(e: CgroupError) -> Self {
        match e {
            CgroupError::Io { source, op, path } => {
                io::Error::new(source.kind(), format!("{op} {}: {source}", path.display()))
            }
            other => io::Error::other(other.to_string()),
        }
    }
}

/// cgroup version a driver writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Driver configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupSettings {
    /// How the values are computed (CFS quota on/off, period, weight formula).
    pub values: CgroupConfig,
    /// `pids.max` of every pod cgroup (`--pod-max-pids`); `None` = `max`.
    pub pod_pids_limit: Option<u64>,
    /// Relative path below skiff's own cgroup under which `kubepods/` lives
    /// (empty by default; tests use a unique name).
    pub parent: PathBuf,
    /// cgroup v2 `memory.oom.group` = 1 on container cgroups (CG6); false =
    /// single-process OOM kill.
    pub memory_oom_group: bool,
    /// cgroup v2: move skiff into `<own>/skiff.supervisor` when its own cgroup
    /// holds processes and controllers cannot be enabled otherwise.
    pub move_self_to_leaf: bool,
}

impl Default for CgroupSettings {
    fn default() -> Self {
        CgroupSettings {
            values: CgroupConfig::default(),
            pod_pids_limit: None,
            parent: PathBuf::new(),
            memory_oom_group: true,
            move_self_to_leaf: true,
        }
    }
}

impl CgroupSettings {
    fn validate(&self) -> Result<(), CgroupError> {
        if self
            .parent
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(CgroupError::Settings(format!(
                "parent {:?} must be a relative path without `..`",
                self.parent
            )));
        }
        Ok(())
    }
}

/// What to write into one cgroup. `None` = not written (kernel default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupLimits {
    /// v1 `cpu.shares`.
    pub cpu_shares: Option<u64>,
    /// v2 `cpu.weight`.
    pub cpu_weight: Option<u64>,
    /// CFS quota (v1 `cpu.cfs_quota_us`, −1 = unlimited; v2 first field of `cpu.max`).
    pub cpu_quota_us: Option<i64>,
    /// CFS period (v1 `cpu.cfs_period_us`; v2 second field of `cpu.max`).
    pub cpu_period_us: Option<u64>,
    /// v1 `memory.limit_in_bytes` (+ memsw) / v2 `memory.max`.
    pub memory_limit_bytes: Option<i64>,
    /// `pids.max`: `Some(None)` = `max`.
    pub pids_max: Option<Option<u64>>,
    /// v2 `memory.oom.group` = 1.
    pub oom_group: bool,
    /// The devices the cgroup may use (`devices` module); `None` = not restricted here
    /// (pod cgroups, privileged containers).
    pub devices: Option<&'static [devices::DeviceRule]>,
}

impl CgroupLimits {
    /// Pod cgroup (CG2–CG5, CG9): the period goes with the quota only.
    pub fn pod(v: &PodCgroupValues, pids: Option<u64>) -> Self {
        CgroupLimits {
            cpu_shares: Some(v.cpu_shares),
            cpu_weight: Some(v.cpu_weight),
            cpu_quota_us: v.cpu_quota_us,
            cpu_period_us: v.cpu_quota_us.map(|_| v.cpu_period_us),
            memory_limit_bytes: v.memory_limit_bytes,
            pids_max: Some(pids),
            oom_group: false,
            devices: None,
        }
    }

    /// Container cgroup (CG6).
    pub fn container(v: &ContainerCgroupValues, oom_group: bool) -> Self {
        CgroupLimits {
            cpu_shares: Some(v.cpu_shares),
            cpu_weight: Some(v.cpu_weight),
            cpu_quota_us: v.cpu_quota_us,
            cpu_period_us: Some(v.cpu_period_us),
            memory_limit_bytes: v.memory_limit_bytes,
            pids_max: None,
            oom_group,
            devices: Some(devices::DEFAULT_DEVICES),
        }
    }

    /// v2 `cpu.max`, if anything about the CFS bandwidth is set.
    pub fn cpu_max(&self) -> Option<String> {
        if self.cpu_quota_us.is_none() && self.cpu_period_us.is_none() {
            return None;
        }
        let period = self
            .cpu_period_us
            .unwrap_or(skiff_model::resources::DEFAULT_CPU_PERIOD_US);
        Some(match self.cpu_quota_us {
            Some(q) if q > 0 => format!("{q} {period}"),
            _ => format!("max {period}"),
        })
    }
}

/// The `besteffort` QoS cgroup: minimum cpu shares / weight.
pub(crate) const MIN_SHARES_LIMITS: CgroupLimits = CgroupLimits {
    cpu_shares: Some(skiff_model::resources::MIN_SHARES),
    cpu_weight: Some(1),
    cpu_quota_us: None,
    cpu_period_us: None,
    memory_limit_bytes: None,
    pids_max: None,
    oom_group: false,
    devices: None,
};

/// A cgroup driver: creates, fills, kills and removes cgroups named by a path
/// relative to `<own cgroup>/<parent>` in every hierarchy it uses.
pub trait CgroupDriver: Send + Sync + fmt::Debug + 'static {
    fn version(&self) -> CgroupVersion;
    fn settings(&self) -> &CgroupSettings;
    /// The directories of cgroup `rel`, one per hierarchy; the first is the
    /// primary one (v1: memory).
    fn dirs(&self, rel: &Path) -> Vec<PathBuf>;
    /// Creates `kubepods/`, `kubepods/burstable/`, `kubepods/besteffort/`
    /// (and the parent path) if missing; on v2 enables controllers on the way.
    fn ensure_qos(&self) -> Result<(), CgroupError>;
    /// Creates cgroup `rel` (its parent must exist) and writes `limits`. On
    /// failure nothing of `rel` is left behind.
    fn create(&self, rel: &Path, limits: &CgroupLimits) -> Result<(), CgroupError>;
    /// Kills every process of cgroup `rel` (not its children): v2
    /// `cgroup.kill`; v1 freeze, SIGKILL all, thaw.
    fn kill(&self, rel: &Path) -> Result<(), CgroupError>;
    /// An OOM watcher for cgroup `rel` (counting from now).
    fn oom_watcher(&self, rel: &Path) -> Result<OomWatcher, CgroupError>;

    /// `cgroup.procs` of `rel` in every hierarchy, opened for writing (primary first).
    fn join_files(&self, rel: &Path) -> Result<Vec<File>, CgroupError> {
        self.dirs(rel)
            .into_iter()
            .map(|d| {
                let p = d.join("cgroup.procs");
                // `create` only matters on fixture trees; cgroupfs always has the file.
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&p)
                    .map_err(|e| fsutil::io_err("opening", &p, e))
            })
            .collect()
    }

    /// Processes of `rel` (union over hierarchies, children not included).
    fn pids(&self, rel: &Path) -> Vec<i32> {
        let mut all: Vec<i32> = self
            .dirs(rel)
            .iter()
            .flat_map(|d| fsutil::read_pids(&d.join("cgroup.procs")))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Child cgroup names of `rel` (union over hierarchies).
    fn children(&self, rel: &Path) -> Vec<String> {
        let mut all: Vec<String> = self
            .dirs(rel)
            .iter()
            .flat_map(|d| fsutil::subdirs(d))
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Whether cgroup `rel` exists in any hierarchy.
    fn exists(&self, rel: &Path) -> bool {
        self.dirs(rel).iter().any(|d| d.is_dir())
    }

    /// Kills everything in `rel` and below, waits for it to empty and removes
    /// the directories bottom-up (retrying `EBUSY` until `timeout`).
    fn remove_tree(&self, rel: &Path, timeout: Duration) -> Result<(), CgroupError> {
        remove_tree_until(self, rel, Instant::now() + timeout, timeout)
    }

    /// skiff's own cgroup directory in every hierarchy (without the parent).
    fn own_dirs(&self) -> Vec<PathBuf>;

    /// Removes the QoS cgroups and the parent path if they are unused (for
    /// tests and `parent` users); anything still holding pods is left.
    fn teardown(&self) -> Result<(), CgroupError> {
        for rel in [
            PathBuf::from(KUBEPODS).join("burstable"),
            PathBuf::from(KUBEPODS).join("besteffort"),
            PathBuf::from(KUBEPODS),
        ] {
            for d in self.dirs(&rel) {
                fsutil::rmdir_if_unused(&d)?;
            }
        }
        let mut p = self.settings().parent.clone();
        while !p.as_os_str().is_empty() {
            for own in self.own_dirs() {
                fsutil::rmdir_if_unused(&own.join(&p))?;
            }
            if !p.pop() {
                break;
            }
        }
        Ok(())
    }
}

fn remove_tree_until<D: CgroupDriver + ?Sized>(
    d: &D,
    rel: &Path,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), CgroupError> {
    for child in d.children(rel) {
        remove_tree_until(d, &rel.join(child), deadline, timeout)?;
    }
    if !d.pids(rel).is_empty() {
        d.kill(rel)?;
        let emptied = fsutil::wait_until(deadline, || {
            let left = d.pids(rel);
            // Whatever forked in between gets its SIGKILL too.
            fsutil::kill_pids(&left);
            left.is_empty()
        });
        if !emptied {
            return Err(CgroupError::Busy {
                path: d.dirs(rel).into_iter().next().unwrap_or_default(),
                pids: d.pids(rel),
                waited: timeout,
            });
        }
    }
    for dir in d.dirs(rel) {
        fsutil::rmdir(&dir, deadline)?;
    }
    Ok(())
}

/// Reads `/proc/self/…` and builds the driver for this host.
pub fn detect(settings: CgroupSettings) -> Result<Arc<dyn CgroupDriver>, CgroupError> {
    driver_for(&CgroupLayout::from_proc()?, settings)
}

/// v1 (or hybrid) → [`V1Driver`] on the v1 hierarchies; pure v2 → [`V2Driver`].
/// A hybrid host's cgroup2 mount is not used for limits (here it has no
/// controllers).
pub fn driver_for(
    layout: &CgroupLayout,
    settings: CgroupSettings,
) -> Result<Arc<dyn CgroupDriver>, CgroupError> {
    settings.validate()?;
    match layout {
        CgroupLayout::V2(u) => Ok(Arc::new(V2Driver::new(u, settings)?)),
        CgroupLayout::V1(_) | CgroupLayout::Hybrid { .. } => {
            Ok(Arc::new(V1Driver::new(layout, settings)?))
        }
    }
}

/// Keeps letters, digits, `-`, `_`, `.`; everything else becomes `_`.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s == "." || s == ".." {
        format!("_{s}")
    } else {
        s
    }
}

/// `kubepods[/burstable|/besteffort]/pod<uid>` (CG1).
/// Removes `kubepods/{burstable,besteffort}` and `kubepods/` where they are empty, so that the
/// last pod leaves no cgroup behind (skiff, unlike the kubelet, is not always running). A dir
/// another pod still uses has children and stays: best effort.
fn prune_qos<D: CgroupDriver + ?Sized>(driver: &D) {
    let kubepods = Path::new(KUBEPODS);
    for rel in [
        kubepods.join("burstable"),
        kubepods.join("besteffort"),
        kubepods.to_path_buf(),
    ] {
        for dir in driver.dirs(&rel) {
            if fsutil::rmdir_if_unused(&dir).is_err() || dir.exists() {
                return;
            }
        }
    }
}

pub fn pod_rel(qos: QosClass, uid: &str) -> PathBuf {
    let mut p = PathBuf::from(KUBEPODS);
    match qos {
        QosClass::Guaranteed => {}
        QosClass::Burstable => p.push("burstable"),
        QosClass::BestEffort => p.push("besteffort"),
    }
    p.push(format!("pod{}", sanitize(uid)));
    p
}

/// One pod's cgroup.
#[derive(Debug, Clone)]
pub struct PodCgroup {
    driver: Arc<dyn CgroupDriver>,
    uid: String,
    qos: QosClass,
    rel: PathBuf,
}

impl PodCgroup {
    /// Creates the pod cgroup for a (defaulted) pod spec: QoS from RES4,
    /// values from [`pod_cgroup_values`] with the driver's settings.
    pub fn create(
        driver: &Arc<dyn CgroupDriver>,
        uid: &str,
        spec: &PodSpec,
    ) -> Result<Self, CgroupError> {
        let values = pod_cgroup_values(spec, &driver.settings().values);
        Self::create_with(driver, uid, qos_class(spec), &values)
    }

    /// Creates the pod cgroup with explicit values.
    pub fn create_with(
        driver: &Arc<dyn CgroupDriver>,
        uid: &str,
        qos: QosClass,
        values: &PodCgroupValues,
    ) -> Result<Self, CgroupError> {
        let rel = pod_rel(qos, uid);
        let limits = CgroupLimits::pod(values, driver.settings().pod_pids_limit);
        // Another skiff (or another pod's end in this one) may prune the then-empty QoS dirs
        // at any point of ensure_qos + create (see `prune_qos`): make them again, a few times.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match driver
                .ensure_qos()
                .and_then(|()| driver.create(&rel, &limits))
            {
                Err(CgroupError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound && attempts < 8 => {}
                r => break r?,
            }
        }
        tracing::debug!(uid, qos = %qos, rel = %rel.display(), "pod cgroup created");
        Ok(PodCgroup {
            driver: driver.clone(),
            uid: uid.to_string(),
            qos,
            rel,
        })
    }

    /// A handle on an existing pod cgroup (nothing is created).
    pub fn open(driver: &Arc<dyn CgroupDriver>, uid: &str, qos: QosClass) -> Self {
        PodCgroup {
            driver: driver.clone(),
            uid: uid.to_string(),
            qos,
            rel: pod_rel(qos, uid),
        }
    }

    pub fn uid(&self) -> &str {
        &self.uid
    }
    pub fn qos(&self) -> QosClass {
        self.qos
    }
    /// Path relative to the driver's parent (`kubepods/burstable/pod<uid>`).
    pub fn rel(&self) -> &Path {
        &self.rel
    }
    /// The pod cgroup's directories (one per hierarchy).
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.driver.dirs(&self.rel)
    }
    pub fn driver(&self) -> &Arc<dyn CgroupDriver> {
        &self.driver
    }

    /// Creates the cgroup of one container instance (`name`, e.g. the
    /// container id) with the values of [`container_cgroup_values`].
    pub fn create_container(
        &self,
        name: &str,
        container: &Container,
    ) -> Result<Arc<ContainerCgroup>, CgroupError> {
        let values = container_cgroup_values(container, &self.driver.settings().values);
        let privileged = container
            .security_context
            .as_ref()
            .and_then(|sc| sc.privileged)
            == Some(true);
        let devices = (!privileged).then_some(devices::DEFAULT_DEVICES);
        self.create_container_limited(name, &values, devices)
    }

    /// Creates a container cgroup with explicit values.
    pub fn create_container_with(
        &self,
        name: &str,
        values: &ContainerCgroupValues,
    ) -> Result<Arc<ContainerCgroup>, CgroupError> {
        self.create_container_limited(name, values, Some(devices::DEFAULT_DEVICES))
    }

    /// Creates a container cgroup with explicit values and device rules.
    fn create_container_limited(
        &self,
        name: &str,
        values: &ContainerCgroupValues,
        devices: Option<&'static [devices::DeviceRule]>,
    ) -> Result<Arc<ContainerCgroup>, CgroupError> {
        let rel = self.rel.join(sanitize(name));
        let mut limits = CgroupLimits::container(values, self.driver.settings().memory_oom_group);
        limits.devices = devices;
        self.driver.create(&rel, &limits)?;
        let built = (|| {
            let join = self
                .driver
                .join_files(&rel)?
                .into_iter()
                .map(Arc::new)
                .collect();
            let oom = self.driver.oom_watcher(&rel)?;
            // v2 only: there one directory covers every controller, so the child can be
            // born in it (clone3 CLONE_INTO_CGROUP). On v1 it must join each hierarchy.
            let dir = match self.driver.version() {
                CgroupVersion::V2 => Some(Arc::new(open_dir(&self.driver.dirs(&rel)[0])?)),
                CgroupVersion::V1 => None,
            };
            Ok::<_, CgroupError>((join, oom, dir))
        })();
        let (join, oom, dir) = match built {
            Ok(x) => x,
            Err(e) => {
                let _ = self.driver.remove_tree(&rel, Duration::from_secs(1));
                return Err(e);
            }
        };
        Ok(Arc::new(ContainerCgroup {
            driver: self.driver.clone(),
            id: name.to_string(),
            rel,
            join,
            oom,
            dir,
            leader: AtomicI32::new(0),
        }))
    }

    /// Kills everything in the pod cgroup and removes it (containers first), then the QoS
    /// dirs above it if no other pod uses them.
    pub fn remove_blocking(&self, timeout: Duration) -> Result<(), CgroupError> {
        self.driver.remove_tree(&self.rel, timeout)?;
        prune_qos(self.driver.as_ref());
        Ok(())
    }

    /// [`remove_blocking`](Self::remove_blocking) on a blocking thread.
    pub async fn remove(&self, timeout: Duration) -> Result<(), CgroupError> {
        let driver = self.driver.clone();
        let rel = self.rel.clone();
        let removed = move || {
            driver.remove_tree(&rel, timeout)?;
            prune_qos(driver.as_ref());
            Ok(())
        };
        match tokio::task::spawn_blocking(removed).await {
            Ok(r) => r,
            Err(e) => Err(CgroupError::Io {
                op: "removing",
                path: self.rel.clone(),
                source: io::Error::other(e.to_string()),
            }),
        }
    }
}

/// One container instance's cgroup; also its [`TrackedGroup`].
#[derive(Debug)]
pub struct ContainerCgroup {
    driver: Arc<dyn CgroupDriver>,
    id: String,
    rel: PathBuf,
    join: Vec<Arc<File>>,
    oom: OomWatcher,
    /// v2: the open cgroup directory for `CLONE_INTO_CGROUP`.
    dir: Option<Arc<OwnedFd>>,
    leader: AtomicI32,
}

impl ContainerCgroup {
    /// `cgroup.procs` of every hierarchy (primary first): a pre-exec hook
    /// writes `0` into each to join all of them before `exec`.
    pub fn join_files(&self) -> &[Arc<File>] {
        &self.join
    }
    /// The OOM watcher of this container cgroup.
    pub fn oom(&self) -> &OomWatcher {
        &self.oom
    }
    pub fn rel(&self) -> &Path {
        &self.rel
    }
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.driver.dirs(&self.rel)
    }
    /// Kills the whole tree (`cgroup.kill` / freezer + SIGKILL).
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        self.driver.kill(&self.rel)
    }
}

impl TrackedGroup for ContainerCgroup {
    fn id(&self) -> &str {
        &self.id
    }

    fn join_file(&self) -> Option<Arc<File>> {
        self.join.first().cloned()
    }

    fn join_files(&self) -> Vec<Arc<File>> {
        self.join.clone()
    }

    fn cgroups_path(&self) -> Option<PathBuf> {
        Some(self.driver.settings().parent.join(&self.rel))
    }

    fn cgroup_dir(&self) -> Option<Arc<OwnedFd>> {
        self.dir.clone()
    }

    fn set_leader(&self, pid: i32) {
        // The spawn paths put the child in every hierarchy before exec (pre-exec hook writes
        // all `join_files`; v2 is one directory), so nothing needs moving here.
        self.leader.store(pid, Ordering::SeqCst);
    }

    fn oom_killed(&self) -> bool {
        self.oom.oom_killed()
    }

    fn signal_all(&self, sig: Signal) -> io::Result<()> {
        if sig == Signal::SIGKILL {
            return self.driver.kill(&self.rel).map_err(io::Error::from);
        }
        for pid in self.driver.pids(&self.rel) {
            match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn pids(&self) -> Vec<i32> {
        self.driver.pids(&self.rel)
    }

    fn remove(&self, timeout: Duration) -> BoxFuture<'_, io::Result<()>> {
        // Remember the OOM count: after the rmdir it cannot be read.
        let _ = self.oom.oom_kills();
        let driver = self.driver.clone();
        let rel = self.rel.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || driver.remove_tree(&rel, timeout))
                .await
                .map_err(|e| io::Error::other(e.to_string()))?
                .map_err(io::Error::from)
        })
    }
}

/// Opens a cgroup directory for `CLONE_INTO_CGROUP`.
fn open_dir(dir: &Path) -> Result<OwnedFd, CgroupError> {
    nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| fsutil::io_err("opening", dir, e.into()))
}

/// Kills every process in the cgroup directories `dirs` and below (any hierarchy, any
/// driver: the directories may belong to another skiff process's layout), then removes them
/// bottom-up. Missing directories are skipped. For cleaning up after a killed skiff.
pub fn remove_dir_trees(dirs: &[PathBuf], timeout: Duration) -> Result<(), CgroupError> {
    fn tree(dir: &Path, out: &mut Vec<PathBuf>) {
        for child in fsutil::subdirs(dir) {
            tree(&dir.join(child), out);
        }
        out.push(dir.to_path_buf());
    }
    let mut all = Vec::new();
    for d in dirs.iter().filter(|d| d.is_dir()) {
        tree(d, &mut all);
    }
    let deadline = Instant::now() + timeout;
    let pids = || -> Vec<i32> {
        all.iter()
            .flat_map(|d| fsutil::read_pids(&d.join("cgroup.procs")))
            .collect()
    };
    // Without a freezer a process may fork between reading and killing: repeat until empty.
    let emptied = fsutil::wait_until(deadline, || {
        let left = pids();
        fsutil::kill_pids(&left);
        left.is_empty()
    });
    if !emptied {
        return Err(CgroupError::Busy {
            path: all.first().cloned().unwrap_or_default(),
            pids: pids(),
            waited: timeout,
        });
    }
    // Children first (`all` is in post-order).
    for d in &all {
        if d.is_dir() {
            fsutil::rmdir(d, deadline)?;
        }
    }
    Ok(())
}

/// A pod cgroup found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroupEntry {
    /// The name after `pod` (the sanitized uid).
    pub uid: String,
    pub qos: QosClass,
    pub rel: PathBuf,
}

/// Every `kubepods/.../pod*` cgroup below the driver's parent, in any hierarchy.
pub fn list_pod_cgroups(driver: &dyn CgroupDriver) -> Vec<PodCgroupEntry> {
    let mut out = Vec::new();
    for (qos, rel) in [
        (QosClass::Guaranteed, PathBuf::from(KUBEPODS)),
        (
            QosClass::Burstable,
            PathBuf::from(KUBEPODS).join("burstable"),
        ),
        (
            QosClass::BestEffort,
            PathBuf::from(KUBEPODS).join("besteffort"),
        ),
    ] {
        for name in driver.children(&rel) {
            if let Some(uid) = name.strip_prefix("pod") {
                out.push(PodCgroupEntry {
                    uid: uid.to_string(),
                    qos,
                    rel: rel.join(&name),
                });
            }
        }
    }
    out
}

/// What [`remove_stale_pods`] did.
#[derive(Debug, Default)]
pub struct CleanupReport {
    pub removed: Vec<PodCgroupEntry>,
    pub failed: Vec<(PodCgroupEntry, CgroupError)>,
}

/// Startup cleanup: kills the processes of, and removes, every pod cgroup
/// whose uid `keep` does not claim (pass `|_| false` to remove all a previous
/// skiff left behind).
pub fn remove_stale_pods(
    driver: &dyn CgroupDriver,
    keep: impl Fn(&str) -> bool,
    timeout: Duration,
) -> CleanupReport {
    let mut report = CleanupReport::default();
    for entry in list_pod_cgroups(driver) {
        if keep(&entry.uid) {
            continue;
        }
        let pids = driver.pids(&entry.rel);
        match driver.remove_tree(&entry.rel, timeout) {
            Ok(()) => {
                tracing::info!(uid = %entry.uid, rel = %entry.rel.display(), ?pids, "removed stale pod cgroup");
                report.removed.push(entry);
            }
            Err(e) => {
                tracing::warn!(uid = %entry.uid, error = %e, "stale pod cgroup not removed");
                report.failed.push((entry, e));
            }
        }
    }
    report
}

/// Removes the directories `rel` (beneath skiff's own cgroup) and its sub-directories in every
/// mounted hierarchy, where they are empty: what an OCI runtime made with a relative
/// `cgroupsPath` in the hierarchies skiff's driver does not use (runc makes the path in all of
/// them and removes only its leaf at `delete`). Never kills anything: a directory still in use
/// stays.
pub fn remove_empty_everywhere(rel: &Path) {
    let Ok(layout) = layout::CgroupLayout::from_proc() else {
        return;
    };
    let bases = layout
        .v1()
        .iter()
        .map(|h| h.base.clone())
        .chain(layout.unified().map(|u| u.base.clone()));
    for base in bases {
        let dir = base.join(rel);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_paths_per_qos() {
        assert_eq!(
            pod_rel(QosClass::Guaranteed, "u1"),
            PathBuf::from("kubepods/podu1")
        );
        assert_eq!(
            pod_rel(QosClass::Burstable, "a-b"),
            PathBuf::from("kubepods/burstable/poda-b")
        );
        assert_eq!(
            pod_rel(QosClass::BestEffort, "x/y"),
            PathBuf::from("kubepods/besteffort/podx_y")
        );
        assert_eq!(sanitize(".."), "_..");
    }

    #[test]
    fn limits_cpu_max() {
        let mut l = CgroupLimits::default();
        assert_eq!(l.cpu_max(), None);
        l.cpu_period_us = Some(100_000);
        assert_eq!(l.cpu_max().as_deref(), Some("max 100000"));
        l.cpu_quota_us = Some(50_000);
        assert_eq!(l.cpu_max().as_deref(), Some("50000 100000"));
        l.cpu_quota_us = Some(-1);
        assert_eq!(l.cpu_max().as_deref(), Some("max 100000"));
    }

    #[test]
    fn settings_reject_escaping_parent() {
        let s = CgroupSettings {
            parent: PathBuf::from("../x"),
            ..CgroupSettings::default()
        };
        assert!(s.validate().is_err());
        let s = CgroupSettings {
            parent: PathBuf::from("/abs"),
            ..CgroupSettings::default()
        };
        assert!(s.validate().is_err());
    }
}
