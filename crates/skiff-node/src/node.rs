//! Node-wide resources shared by every pod this skiff process runs: the cgroup driver
//! (detected once), the machine's capacity (node admission A1, RES9 `oom_score_adj`), and the
//! on-disk record of the pods it runs, so that the next start cleans up after a skiff that
//! was killed (issue 4 item 8).
//!
//! # Cgroups
//! As root, [`NodeResources::global`] detects the cgroup layout ([`cgroups::detect`]) on
//! first use. Pod cgroups go to `<skiff's own cgroup>/kubepods/{burstable,besteffort}/
//! pod<uid>/<container>-<n>` in every hierarchy (CG1). Without root, or when the host lacks
//! the cpu/memory controllers, it says so once and containers run with the process
//! tracker only (no limits, no OOM detection).
//!
//! # Records (decision)
//! Where: `/run/skiff/pods/<uid>` (`SKIFF_STATE_DIR` overrides `/run/skiff`). `/run` is a
//! tmpfs, cleared at boot together with the cgroups it describes. What: the owner (pid and
//! its start time in clock ticks, so a reused pid is not mistaken for a live owner), the pod
//! cgroup's directories in every hierarchy, the pod's directory, skiff's data dir and every
//! tmpfs skiff mounts for the pod. A record is written **before** the pod cgroup is created
//! and before each mount, and removed **after** the cgroup is gone and the mounts unmounted.
//!
//! At startup every record whose owner is dead is cleaned up: whatever is mounted under the
//! pod's directory is unmounted (volumes, bind-mounted files), every process in the pod
//! cgroup is SIGKILLed and the cgroups removed, and a temporary data dir of `skiff run`
//! (`$TMPDIR/skiff-run-*`) is deleted. Records of live owners (another `skiff run` at the
//! same time) are left alone, and so is any pod cgroup without a record: it may belong to a
//! skiff using another state dir, so only records decide. The pod's namespaces need nothing:
//! their holder exits when its skiff dies (see `namespaces`).
//!
//! # Only skiff's own state is trusted (issue 7 item 5)
//! Root acts on these records, so a planted one must not steer it:
//! * The records dir is created 0700 whatever the umask, held open (every record is read,
//!   written and removed relative to that descriptor), and refused unless it is a real
//!   directory owned by skiff's uid and writable by nobody else.
//! * A record is opened with `O_NOFOLLOW` and used only if it is a regular file owned by
//!   skiff's uid, writable by nobody else, and named after its uid; anything else is ignored
//!   (left in place, with a warning).
//! * Recovery acts only on skiff's own things: each recorded cgroup must be exactly the
//!   directory skiff's driver gives that pod uid (`<own cgroup>/kubepods/[qos/]pod<uid>`, in
//!   one of skiff's hierarchies); the pod dir must be `<data dir>/pods/<ns>_<name>_<uid>`,
//!   every component a real directory (no symlink, no `..`), owned by skiff's uid; each
//!   recorded mount must lie beneath it. A record failing any of these is not acted on
//!   (so a record of a skiff that ran in another cgroup is left to a skiff started there).
//! * A process is killed only through a pidfd opened first and then verified: still a
//!   member of the pod cgroup and started no earlier than the record's owner (a pod's
//!   processes are the owner's descendants). A process that started earlier is spared and
//!   the record kept.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::stat::Mode;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use skiff_model::admission::{NodeCapacity, DEFAULT_MAX_PODS};

use crate::cgroups::{self, CgroupDriver, CgroupSettings, ContainerCgroup, PodCgroup};
use crate::isolation::ContainerSetup;
use crate::launch::ContainerLaunch;
use crate::machine;
use crate::spec::{PodIdentity, SandboxError, StartError};

/// Default state directory (records of running pods).
pub const DEFAULT_STATE_DIR: &str = "/run/skiff";
/// Environment variable overriding [`DEFAULT_STATE_DIR`].
pub const STATE_DIR_ENV: &str = "SKIFF_STATE_DIR";
/// How long removing one pod cgroup may take.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Prefix of `skiff run`'s temporary data dirs (removed with a dead owner's pod).
pub const TEMP_DATA_DIR_PREFIX: &str = "skiff-run-";
/// A record is a few hundred bytes; anything much larger is not one of skiff's.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// This process's node-wide resources.
#[derive(Debug)]
pub struct NodeResources {
    cgroups: Option<Arc<dyn CgroupDriver>>,
    state_dir: PathBuf,
    /// The records dir, held open; `None` without root (no records then), `Err` when it is
    /// not trustworthy (then no pod is started as root: its cleanup could not be recorded).
    records: Option<Result<Arc<RecordsDir>, String>>,
    milli_cpu: i64,
    memory_bytes: i64,
    owner: Owner,
}

/// A process identity that survives pid reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    pid: i32,
    start: u64,
}

impl Owner {
    fn current() -> Owner {
        let pid = i32::try_from(std::process::id()).unwrap_or(0);
        Owner {
            pid,
            start: start_time(pid).unwrap_or(0),
        }
    }

    fn alive(&self) -> bool {
        self.pid > 0 && start_time(self.pid) == Some(self.start)
    }
}

/// Field 22 of `/proc/<pid>/stat` (start time in clock ticks since boot).
fn start_time(pid: i32) -> Option<u64> {
    crate::state::start_ticks(pid)
}

/// The process-wide node state (see [`NodeResources::global`]).
static NODE: OnceLock<Arc<NodeResources>> = OnceLock::new();

impl NodeResources {
    /// The process-wide instance: detected on first use, after cleaning up what dead skiff
    /// processes left behind.
    pub fn global() -> &'static Arc<NodeResources> {
        NODE.get_or_init(|| Arc::new(NodeResources::detect(CgroupSettings::default())))
    }

    /// Sets up the process-wide instance with non-default cgroup settings (e.g.
    /// `--pod-max-pids`). Must come before the first pod; returns false if it was already set up.
    pub fn init_global(settings: CgroupSettings) -> bool {
        NODE.set(Arc::new(NodeResources::detect(settings))).is_ok()
    }

    fn detect(settings: CgroupSettings) -> NodeResources {
        let state_dir = std::env::var_os(STATE_DIR_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let root = nix::unistd::geteuid().is_root();
        let cgroups = if root {
            match cgroups::detect(settings) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::warn!(
                        "cgroups unavailable ({e}); containers run without resource limits or OOM detection"
                    );
                    None
                }
            }
        } else {
            tracing::warn!(
                "not running as root: no pod cgroups (resource limits, OOM detection); containers run as plain processes"
            );
            None
        };
        let records = root.then(|| match RecordsDir::open(&state_dir) {
            Ok(d) => Ok(Arc::new(d)),
            Err(e) => {
                let msg = format!("pod records dir {}: {e}", state_dir.join("pods").display());
                tracing::warn!("{msg}; no pod is started until this is fixed");
                Err(msg)
            }
        });
        let node = NodeResources {
            cgroups,
            state_dir,
            records,
            milli_cpu: machine::milli_cpus(),
            memory_bytes: machine::memory_bytes(),
            owner: Owner::current(),
        };
        node.recover();
        node
    }

    /// The cgroup driver, if this process uses cgroups.
    pub fn cgroups(&self) -> Option<&Arc<dyn CgroupDriver>> {
        self.cgroups.as_ref()
    }

    /// `MemTotal` in bytes (RES9 uses it as the node's memory capacity).
    pub fn memory_capacity_bytes(&self) -> i64 {
        self.memory_bytes
    }

    /// The node's capacity for admission (A1): cpus, memory, the size of the filesystem
    /// holding `data_dir`, 110 pods.
    pub fn capacity(&self, data_dir: &Path) -> NodeCapacity {
        NodeCapacity {
            milli_cpu: self.milli_cpu,
            memory_bytes: self.memory_bytes,
            ephemeral_storage_bytes: machine::fs_size(data_dir),
            pods: DEFAULT_MAX_PODS,
            scalar: Default::default(),
        }
    }

    /// Node admission (A1) of one pod against this machine's allocatable (capacity minus
    /// `reserved` minus the eviction thresholds), with the requests of the pods already
    /// admitted and not terminal in `admitted`.
    pub fn admit(
        &self,
        spec: &k8s_openapi::api::core::v1::PodSpec,
        admitted: &[&k8s_openapi::api::core::v1::PodSpec],
        reserved: &skiff_model::resources::ResourceList,
        data_dir: &Path,
    ) -> Result<(), skiff_model::admission::Rejection> {
        use skiff_model::admission::{admit, NodeAllocatable};
        let allocatable = NodeAllocatable::from_capacity(&self.capacity(data_dir), reserved);
        admit(spec, admitted, &allocatable)
    }

    /// Where the records live.
    pub fn records_dir(&self) -> PathBuf {
        self.state_dir.join("pods")
    }

    /// Cleans up after dead skiff processes (see the module docs).
    fn recover(&self) {
        let Some(Ok(dir)) = &self.records else {
            return;
        };
        dir.sweep_abandoned_writes();
        for name in dir.names() {
            if name.contains('.') {
                continue; // a record being written (`<uid>.tmp<pid>`)
            }
            let record = match dir.read(&name) {
                Ok(r) => r,
                Err(RecordError::Untrusted(why)) => {
                    tracing::warn!(record = %name, "ignoring a pod record that is not skiff's: {why}");
                    continue;
                }
                Err(RecordError::Invalid(why)) => {
                    tracing::warn!(record = %name, "unreadable pod record removed: {why}");
                    dir.remove(&name);
                    continue;
                }
            };
            // A persistent pod (`skiff serve`) lives while its sandbox's anchor does: the next
            // daemon adopts it.
            if record.owner.alive() || record.anchor.is_some_and(|a| a.alive()) {
                continue;
            }
            let plan = match self.plan(&name, &record) {
                Ok(p) => p,
                Err(why) => {
                    tracing::warn!(record = %name, "not acting on a pod record: {why}");
                    continue;
                }
            };
            match plan.run(record.owner.start) {
                Ok(()) => {
                    tracing::info!(uid = %record.uid, owner = record.owner.pid, "cleaned up a pod of a skiff that is gone");
                    dir.remove(&name);
                }
                Err(e) => {
                    tracing::warn!(uid = %record.uid, "cleaning up a pod of a skiff that is gone: {e}")
                }
            }
        }
    }

    /// Kills every process of the container cgroup `cgroups_path` (a tracking group's
    /// `cgroups_path`, recorded before an instance of pod `uid` was started by a process that
    /// died mid-start) and removes it. Only a cgroup beneath that pod's own is touched.
    pub fn kill_interrupted_start(&self, uid: &str, cgroups_path: &Path) -> io::Result<()> {
        let Some(driver) = &self.cgroups else {
            return Ok(());
        };
        let rel = cgroups_path
            .strip_prefix(&driver.settings().parent)
            .map_err(|_| io::Error::other("not under skiff's cgroup"))?;
        let ours = [
            skiff_model::resources::QosClass::Guaranteed,
            skiff_model::resources::QosClass::Burstable,
            skiff_model::resources::QosClass::BestEffort,
        ]
        .into_iter()
        .any(|q| {
            let pod = cgroups::pod_rel(q, uid);
            rel.starts_with(&pod) && rel != pod
        });
        let clean = rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !ours || !clean {
            return Err(io::Error::other(format!(
                "{} is not a container cgroup of pod {uid}",
                cgroups_path.display()
            )));
        }
        remove_cgroups_verified(&driver.dirs(rel), 0, REMOVE_TIMEOUT)
    }

    /// Before a new sandbox of a pod replaces its record: an earlier one whose owner is gone
    /// (a persistent sandbox nobody adopted) is cleaned up, its anchor killed first.
    fn clear_stale(&self, dir: &RecordsDir, name: &str) {
        let Ok(record) = dir.read(name) else {
            return;
        };
        if record.owner.alive() && record.owner != self.owner {
            return;
        }
        if let Some(a) = record.anchor {
            let r = crate::state::ProcessRef {
                pid: a.pid,
                start_ticks: a.start,
            };
            if let Some(fd) = r.pidfd() {
                let _ = pidfd_kill(&fd);
                // Not our child: its pidfd is readable once it has exited.
                let mut fds = [nix::poll::PollFd::new(
                    std::os::fd::AsFd::as_fd(&fd),
                    nix::poll::PollFlags::POLLIN,
                )];
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(5000u16));
            }
        }
        match self.plan(name, &record) {
            Ok(plan) => {
                if let Err(e) = plan.run(record.owner.start) {
                    tracing::warn!(uid = %record.uid, "cleaning up an earlier sandbox of the pod: {e}");
                }
            }
            Err(why) => tracing::warn!(record = %name, "not acting on a pod record: {why}"),
        }
    }

    /// What recovery may do for `record` (stored as `name`): only skiff's own cgroups and
    /// paths (see the module docs), or an error saying which entry is not skiff's.
    fn plan(&self, name: &str, record: &PodRecord) -> Result<CleanupPlan, String> {
        if sanitize_file(&record.uid) != name {
            return Err(format!(
                "uid {:?} does not match the record's name",
                record.uid
            ));
        }
        let mut plan = CleanupPlan::default();
        if !record.cgroups.is_empty() {
            let Some(driver) = &self.cgroups else {
                return Err(
                    "it names cgroups but this skiff has no cgroup driver to check them against"
                        .into(),
                );
            };
            let own: Vec<PathBuf> = [
                skiff_model::resources::QosClass::Guaranteed,
                skiff_model::resources::QosClass::Burstable,
                skiff_model::resources::QosClass::BestEffort,
            ]
            .into_iter()
            .flat_map(|q| driver.dirs(&cgroups::pod_rel(q, &record.uid)))
            .collect();
            for c in &record.cgroups {
                if !is_clean_absolute(c) || !own.contains(c) {
                    return Err(format!(
                        "cgroup {} is not this pod's cgroup under skiff's kubepods",
                        c.display()
                    ));
                }
            }
            plan.cgroups = record.cgroups.clone();
        }
        if !record.pod_dir.as_os_str().is_empty() {
            let pod_dir = &record.pod_dir;
            let expected_parent = record.data_dir.join("pods");
            let named_for_uid = pod_dir
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(&format!("_{}", record.uid)));
            if !is_clean_absolute(&record.data_dir)
                || !is_clean_absolute(pod_dir)
                || pod_dir.parent() != Some(expected_parent.as_path())
                || !named_for_uid
            {
                return Err(format!(
                    "pod dir {} is not <data dir>/pods/<ns>_<name>_<uid> of data dir {}",
                    pod_dir.display(),
                    record.data_dir.display()
                ));
            }
            for m in &record.mounts {
                if !is_clean_absolute(m) || !m.starts_with(pod_dir) || m == pod_dir {
                    return Err(format!(
                        "mount {} is not beneath the pod dir {}",
                        m.display(),
                        pod_dir.display()
                    ));
                }
            }
            match real_dir(pod_dir) {
                Ok(true) => {
                    plan.pod_dir = Some(pod_dir.clone());
                    plan.mounts = record.mounts.clone();
                }
                Ok(false) => {} // gone already: nothing mounted there
                Err(why) => return Err(why),
            }
        }
        // Mount points on the host's root: only ever removed while empty (`mountns`), and
        // never through a symlink or `..`.
        for m in &record.mountpoints {
            if !is_clean_absolute(m) || m.parent().is_none() {
                return Err(format!("mount point {} is not a clean path", m.display()));
            }
        }
        plan.mountpoints = record.mountpoints.clone();
        let temp = std::env::temp_dir();
        let is_temp = record.data_dir.parent() == Some(temp.as_path())
            && is_clean_absolute(&record.data_dir)
            && record
                .data_dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_DATA_DIR_PREFIX));
        if is_temp && real_dir(&record.data_dir)? {
            plan.temp_data_dir = Some(record.data_dir.clone());
        }
        Ok(plan)
    }
}

/// Whether `p` is absolute and has no `.`/`..` components (so `starts_with` means beneath).
fn is_clean_absolute(p: &Path) -> bool {
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// Whether `p` exists as a directory reached through real directories only (no symlink in
/// any component) and owned by skiff's uid; `Ok(false)` if it does not exist.
fn real_dir(p: &Path) -> Result<bool, String> {
    let mut cur = PathBuf::new();
    for c in p.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!("{} is a symlink", cur.display()))
            }
            Ok(m) if !m.is_dir() => return Err(format!("{} is not a directory", cur.display())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(format!("{}: {e}", cur.display())),
        }
    }
    let m = fs::symlink_metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
    if m.uid() != nix::unistd::geteuid().as_raw() {
        return Err(format!(
            "{} is owned by uid {}, not skiff's",
            p.display(),
            m.uid()
        ));
    }
    Ok(true)
}

/// What recovery does for one dead owner's record, every entry checked by
/// [`NodeResources::plan`].
#[derive(Debug, Default)]
struct CleanupPlan {
    cgroups: Vec<PathBuf>,
    pod_dir: Option<PathBuf>,
    mounts: Vec<PathBuf>,
    mountpoints: Vec<PathBuf>,
    temp_data_dir: Option<PathBuf>,
}

impl CleanupPlan {
    /// Unmounts, kills (processes started at or after `owner_start` only), removes.
    fn run(&self, owner_start: u64) -> io::Result<()> {
        let mut mounts = self.mounts.clone();
        mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for m in &mounts {
            unmount(m);
        }
        if let Some(d) = &self.pod_dir {
            unmount_under(d);
        }
        crate::mountns::remove_mountpoints(&self.mountpoints);
        remove_cgroups_verified(&self.cgroups, owner_start, REMOVE_TIMEOUT)?;
        if let Some(d) = &self.temp_data_dir {
            unmount_under(d);
            crate::fdwalk::remove_tree(d)?;
        }
        Ok(())
    }
}

/// What is on disk about one running pod (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodRecord {
    uid: String,
    owner: Owner,
    /// A persistent sandbox's anchor (its namespace holder): the pod is alive while it is.
    anchor: Option<Owner>,
    /// The pod cgroup's directory in every hierarchy.
    cgroups: Vec<PathBuf>,
    pod_dir: PathBuf,
    data_dir: PathBuf,
    /// What skiff mounted (or is about to mount) for the pod on the host, under `pod_dir`.
    mounts: Vec<PathBuf>,
    /// Mount points created for the pod's containers (`mountns`), removed if still empty.
    mountpoints: Vec<PathBuf>,
}

impl PodRecord {
    fn render(&self) -> io::Result<String> {
        let mut s = format!(
            "uid={}\nowner_pid={}\nowner_start={}\npod_dir={}\ndata_dir={}\n",
            self.uid,
            self.owner.pid,
            self.owner.start,
            self.pod_dir.display(),
            self.data_dir.display()
        );
        if let Some(a) = &self.anchor {
            s.push_str(&format!("anchor_pid={}\nanchor_start={}\n", a.pid, a.start));
        }
        for c in &self.cgroups {
            s.push_str(&format!("cgroup={}\n", c.display()));
        }
        for m in &self.mounts {
            s.push_str(&format!("mount={}\n", m.display()));
        }
        for m in &self.mountpoints {
            s.push_str(&format!("mountpoint={}\n", m.display()));
        }
        // One entry per line: a path with a newline (or not UTF-8) cannot be recorded.
        let entries = 5
            + 2 * usize::from(self.anchor.is_some())
            + self.cgroups.len()
            + self.mounts.len()
            + self.mountpoints.len();
        let paths = [&self.pod_dir, &self.data_dir]
            .into_iter()
            .chain(&self.cgroups)
            .chain(&self.mounts)
            .chain(&self.mountpoints);
        if s.lines().count() != entries || paths.into_iter().any(|p| p.to_str().is_none()) {
            return Err(io::Error::other(
                "a path of the pod contains a newline or is not UTF-8; it cannot be recorded",
            ));
        }
        Ok(s)
    }

    fn parse(text: &str) -> Option<PodRecord> {
        let mut r = PodRecord {
            uid: String::new(),
            owner: Owner { pid: 0, start: 0 },
            anchor: None,
            cgroups: Vec::new(),
            pod_dir: PathBuf::new(),
            data_dir: PathBuf::new(),
            mounts: Vec::new(),
            mountpoints: Vec::new(),
        };
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            match k {
                "uid" => r.uid = v.to_string(),
                "owner_pid" => r.owner.pid = v.parse().ok()?,
                "owner_start" => r.owner.start = v.parse().ok()?,
                "anchor_pid" => {
                    r.anchor.get_or_insert(Owner { pid: 0, start: 0 }).pid = v.parse().ok()?
                }
                "anchor_start" => {
                    r.anchor.get_or_insert(Owner { pid: 0, start: 0 }).start = v.parse().ok()?
                }
                "pod_dir" => r.pod_dir = PathBuf::from(v),
                "data_dir" => r.data_dir = PathBuf::from(v),
                "cgroup" => r.cgroups.push(PathBuf::from(v)),
                "mount" => r.mounts.push(PathBuf::from(v)),
                "mountpoint" => r.mountpoints.push(PathBuf::from(v)),
                _ => {}
            }
        }
        if r.anchor.is_some_and(|a| a.pid <= 0) {
            return None;
        }
        (!r.uid.is_empty() && r.owner.pid > 0).then_some(r)
    }
}

/// Why a record is not used.
#[derive(Debug)]
enum RecordError {
    /// Not skiff's: a symlink, not a regular file, another owner, writable by others. Left
    /// in place.
    Untrusted(String),
    /// skiff's, but not a record (truncated, garbage): removed.
    Invalid(String),
}

/// The records directory, held open (see the module docs).
#[derive(Debug)]
struct RecordsDir {
    path: PathBuf,
    fd: OwnedFd,
}

impl RecordsDir {
    /// Opens `<state_dir>/pods`, creating it (and the state dir) 0700; refuses a directory
    /// that is a symlink, owned by another uid or writable by group or others.
    fn open(state_dir: &Path) -> io::Result<RecordsDir> {
        let mut b = fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        b.create(state_dir)?;
        let path = state_dir.join("pods");
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let fd = nix::fcntl::open(
            &path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io::Error::other(format!("opening without following symlinks: {e}")))?;
        // SAFETY-free: `open` returned an owned descriptor.
        let st = nix::sys::stat::fstat(&fd).map_err(io::Error::from)?;
        let me = nix::unistd::geteuid().as_raw();
        if st.st_uid != me {
            return Err(io::Error::other(format!(
                "owned by uid {}, not skiff's uid {me}",
                st.st_uid
            )));
        }
        if st.st_mode & 0o022 != 0 {
            return Err(io::Error::other(format!(
                "writable by group or others (mode {:o}); make it 0700",
                st.st_mode & 0o7777
            )));
        }
        // Whatever the umask or an older skiff left: exactly 0700, checked.
        if st.st_mode & 0o7777 != 0o700 {
            nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o700))
                .map_err(io::Error::from)?;
            let st = nix::sys::stat::fstat(&fd).map_err(io::Error::from)?;
            if st.st_mode & 0o7777 != 0o700 {
                return Err(io::Error::other(format!(
                    "mode {:o} after chmod 0700",
                    st.st_mode & 0o7777
                )));
            }
        }
        Ok(RecordsDir { path, fd })
    }

    /// Names of the entries (records and records being written).
    fn names(&self) -> Vec<String> {
        // The held directory itself, not the path again.
        let fd_path = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        let mut out: Vec<String> = fs::read_dir(fd_path)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        out.sort();
        out
    }

    /// Reads record `name`: a regular file (not followed if a symlink) owned by skiff's uid.
    fn read(&self, name: &str) -> Result<PodRecord, RecordError> {
        let fd = nix::fcntl::openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            nix::errno::Errno::ELOOP => RecordError::Untrusted("a symlink".into()),
            e => RecordError::Untrusted(format!("cannot open: {e}")),
        })?;
        let st = nix::sys::stat::fstat(&fd)
            .map_err(|e| RecordError::Untrusted(format!("fstat: {e}")))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(RecordError::Untrusted("not a regular file".into()));
        }
        let me = nix::unistd::geteuid().as_raw();
        if st.st_uid != me {
            return Err(RecordError::Untrusted(format!(
                "owned by uid {}, not skiff's uid {me}",
                st.st_uid
            )));
        }
        if st.st_mode & 0o022 != 0 {
            return Err(RecordError::Untrusted(format!(
                "writable by group or others (mode {:o})",
                st.st_mode & 0o7777
            )));
        }
        let mut text = String::new();
        fs::File::from(fd)
            .take(MAX_RECORD_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| RecordError::Invalid(format!("reading: {e}")))?;
        if text.len() as u64 > MAX_RECORD_BYTES {
            return Err(RecordError::Untrusted(format!(
                "larger than {MAX_RECORD_BYTES} bytes"
            )));
        }
        PodRecord::parse(&text).ok_or_else(|| RecordError::Invalid("not a pod record".into()))
    }

    /// Writes record `name` (mode 0600) through a temporary file and a rename, so that a
    /// record is never seen half-written.
    fn write(&self, name: &str, record: &PodRecord) -> io::Result<()> {
        let text = record.render()?;
        let tmp = format!("{name}.tmp{}", std::process::id());
        let _ = nix::unistd::unlinkat(
            &self.fd,
            tmp.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        let fd = nix::fcntl::openat(
            &self.fd,
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(io::Error::from)?;
        let mut f = fs::File::from(fd);
        let written = f.write_all(text.as_bytes()).and_then(|()| {
            f.sync_all().ok();
            nix::fcntl::renameat(&self.fd, tmp.as_str(), &self.fd, name).map_err(io::Error::from)
        });
        if written.is_err() {
            let _ = nix::unistd::unlinkat(
                &self.fd,
                tmp.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        written
    }

    /// Removes the temporary files of records whose writer died before its rename
    /// (`<uid>.tmp<pid>` of a PID that no longer exists: a `kill -9` mid-write); nobody will
    /// rename them any more. A live writer's file is left alone.
    fn sweep_abandoned_writes(&self) {
        for name in self.names() {
            let Some((_, pid)) = name.rsplit_once(".tmp") else {
                continue;
            };
            let dead = pid
                .parse::<i32>()
                .is_ok_and(|p| p > 0 && !Path::new(&format!("/proc/{p}")).exists());
            if dead {
                self.remove(&name);
            }
        }
    }

    /// Removes record `name` (a missing one is fine).
    fn remove(&self, name: &str) {
        match nix::unistd::unlinkat(&self.fd, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => {
                tracing::warn!(record = %self.path.join(name).display(), "removing a pod record: {e}")
            }
        }
    }
}

/// Lazily unmounts one mount point, never following a symlink there.
fn unmount(p: &Path) {
    let flags = nix::mount::MntFlags::MNT_DETACH | nix::mount::MntFlags::UMOUNT_NOFOLLOW;
    match nix::mount::umount2(p, flags) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => tracing::debug!(path = %p.display(), error = %e, "unmounting a stale pod mount"),
    }
}

/// Lazily unmounts every mount point at or below `dir` (deepest first). `dir` must have
/// been checked to contain no symlink: mountinfo shows resolved paths.
fn unmount_under(dir: &Path) {
    let mut points: Vec<PathBuf> = crate::mountinfo::mount_points()
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for p in points {
        unmount(&p);
    }
}

/// Kills the processes of the cgroup trees `dirs` and removes them (children first). Each
/// process is killed through a pidfd opened first and then verified: still in the cgroup,
/// started at or after `not_before` (the record's owner); one that started earlier is not
/// the pod's and makes this fail without killing it.
fn remove_cgroups_verified(dirs: &[PathBuf], not_before: u64, timeout: Duration) -> io::Result<()> {
    fn tree(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                tree(&e.path(), out);
            }
        }
        out.push(dir.to_path_buf());
    }
    let mut all = Vec::new();
    for d in dirs {
        if fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()) {
            tree(d, &mut all);
        }
    }
    let deadline = Instant::now() + timeout;
    loop {
        let mut left = 0;
        for d in &all {
            let procs = d.join("cgroup.procs");
            for pid in read_pids(&procs) {
                left += 1;
                if let Err(e) = kill_member(&procs, pid, not_before) {
                    return Err(io::Error::other(format!(
                        "process {pid} in {}: {e}",
                        d.display()
                    )));
                }
            }
        }
        if left == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "processes still in the pod cgroup after {timeout:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for d in &all {
        loop {
            match fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                // EBUSY while the killed processes are still being reaped.
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(io::Error::other(format!("rmdir {}: {e}", d.display()))),
            }
        }
    }
    Ok(())
}

fn read_pids(procs: &Path) -> Vec<i32> {
    fs::read_to_string(procs)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|p| *p > 0)
        .collect()
}

/// SIGKILLs `pid` if, once pinned by a pidfd, it is still listed in `procs` and started at
/// or after `not_before`. A process gone meanwhile is fine; an older one is an error.
fn kill_member(procs: &Path, pid: i32, not_before: u64) -> io::Result<()> {
    let pidfd = match pidfd_open(pid) {
        Ok(fd) => Some(fd),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => None,
        Err(e) => return Err(e),
    };
    // The descriptor pins the process: if `pid` was reused before it was opened, the new
    // process is not in this cgroup (or was forked inside it, and is the pod's too).
    if !read_pids(procs).contains(&pid) {
        return Ok(());
    }
    match start_time(pid) {
        None => return Ok(()),
        Some(t) if t < not_before => {
            return Err(io::Error::other(format!(
                "started before the record's owner (ticks {t} < {not_before}): not the pod's; left alone"
            )))
        }
        Some(_) => {}
    }
    let r = match &pidfd {
        Some(fd) => pidfd_kill(fd),
        // Kernels before 5.3: the plain pid (the check above narrows the race).
        None => nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL)
            .map_err(io::Error::from),
    };
    match r {
        Err(e) if e.raw_os_error() != Some(libc::ESRCH) => Err(e),
        _ => Ok(()),
    }
}

fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

fn pidfd_kill(fd: &OwnedFd) -> io::Result<()> {
    Ok(rustix::process::pidfd_send_signal(
        fd,
        rustix::process::Signal::KILL,
    )?)
}

/// A pod's share of the node: its cgroup and its record. Created by the pod sandbox before
/// the first container, torn down by [`PodResources::destroy`] after the last; dropped without
/// that (the sandbox failed half-way), it removes both synchronously.
#[derive(Debug)]
pub struct PodResources {
    node: Arc<NodeResources>,
    spec: PodSpec,
    cgroup: Option<PodCgroup>,
    record: Option<Arc<RecordFile>>,
    seq: AtomicU64,
    destroyed: AtomicBool,
    /// A persistent sandbox's: dropped, nothing is torn down (the next process adopts it).
    kept: AtomicBool,
}

/// One pod's record on disk, kept in step with what skiff mounts for the pod.
#[derive(Debug)]
struct RecordFile {
    dir: Arc<RecordsDir>,
    name: String,
    record: Mutex<PodRecord>,
}

impl RecordFile {
    fn update(&self, f: impl FnOnce(&mut PodRecord)) -> io::Result<()> {
        let mut r = match self.record.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut r);
        self.dir.write(&self.name, &r)
    }

    fn remove(&self) {
        self.dir.remove(&self.name);
    }
}

impl crate::spec::MountJournal for RecordFile {
    fn before_mount(&self, path: &Path) -> Result<(), String> {
        self.update(|r| {
            if !r.mounts.iter().any(|m| m == path) {
                r.mounts.push(path.to_path_buf());
            }
        })
        .map_err(|e| {
            format!(
                "recording the mount {} in {}: {e}",
                path.display(),
                self.dir.path.join(&self.name).display()
            )
        })
    }

    fn after_unmount(&self, path: &Path) {
        if let Err(e) = self.update(|r| r.mounts.retain(|m| m != path)) {
            tracing::warn!(path = %path.display(), "updating the pod record after an unmount: {e}");
        }
    }
}

impl PodResources {
    /// Records the pod and creates its cgroup (sized per CG2–CG4, CG9 from the effective
    /// values). Without cgroups only the spec is kept (for oom_score_adj), and as root the
    /// record (for the pod's mounts). On error nothing is left.
    pub fn create(
        pod: &Pod,
        identity: &PodIdentity,
        data_dir: &Path,
        pod_dir: &Path,
    ) -> Result<PodResources, SandboxError> {
        let node = NodeResources::global().clone();
        let spec = pod.spec.clone().unwrap_or_default();
        let mut res = PodResources {
            node: node.clone(),
            spec,
            cgroup: None,
            record: None,
            seq: AtomicU64::new(0),
            destroyed: AtomicBool::new(false),
            kept: AtomicBool::new(false),
        };
        let err = |message: String| SandboxError {
            reason: "FailedCreatePodSandBox".into(),
            message,
        };
        // The uid names the pod's record and cgroups; the API server (here `skiff run`'s
        // admission) gives one on create.
        if identity.uid.is_empty() {
            return Err(err(
                "the pod has no metadata.uid (given when a pod is admitted)".into(),
            ));
        }
        let dir = match &node.records {
            None => None,
            Some(Ok(d)) => Some(d.clone()),
            Some(Err(e)) => return Err(err(e.clone())),
        };
        let driver = node.cgroups();
        let qos = skiff_model::resources::qos_class(&res.spec);
        let handle = driver.map(|d| PodCgroup::open(d, &identity.uid, qos));
        if let Some(dir) = dir {
            let name = sanitize_file(&identity.uid);
            // What an earlier sandbox of this pod left (a persistent one that was not adopted)
            // goes first: its record is about to be replaced.
            node.clear_stale(&dir, &name);
            let record = PodRecord {
                uid: identity.uid.clone(),
                owner: node.owner,
                anchor: None,
                cgroups: handle.as_ref().map(PodCgroup::dirs).unwrap_or_default(),
                pod_dir: pod_dir.to_path_buf(),
                data_dir: data_dir.to_path_buf(),
                mounts: Vec::new(),
                mountpoints: Vec::new(),
            };
            dir.write(&name, &record).map_err(|e| {
                err(format!(
                    "recording the pod in {}: {e}",
                    dir.path.join(&name).display()
                ))
            })?;
            res.record = Some(Arc::new(RecordFile {
                dir,
                name,
                record: Mutex::new(record),
            }));
        }
        // From here on `res` drops the record (and cgroup) on error.
        if let Some(driver) = driver {
            let cgroup = PodCgroup::create(driver, &identity.uid, &res.spec)
                .map_err(|e| err(format!("creating the pod cgroup: {e}")))?;
            res.cgroup = Some(cgroup);
        }
        Ok(res)
    }

    /// Where the pod's volumes record their mounts before making them (so that a crash
    /// leaves none the next start cannot find); `None` when there are no records (not root).
    /// Re-attaches the resources of a persistent sandbox an earlier process created for this
    /// pod: its record (which must name `pod_dir` and `anchor` as its anchor) and its cgroup
    /// (which must exist). `None` when either is missing or not this pod's.
    pub fn adopt(
        pod: &Pod,
        identity: &PodIdentity,
        pod_dir: &Path,
        anchor: &crate::state::ProcessRef,
    ) -> Option<PodResources> {
        let node = NodeResources::global().clone();
        let spec = pod.spec.clone().unwrap_or_default();
        let dir = match &node.records {
            None => None,
            Some(Ok(d)) => Some(d.clone()),
            Some(Err(_)) => return None,
        };
        let record = match &dir {
            Some(dir) => {
                let name = sanitize_file(&identity.uid);
                let r = dir.read(&name).ok()?;
                let same_anchor = r.anchor
                    == Some(Owner {
                        pid: anchor.pid,
                        start: anchor.start_ticks,
                    });
                if r.uid != identity.uid || r.pod_dir != pod_dir || !same_anchor {
                    return None;
                }
                Some(Arc::new(RecordFile {
                    dir: dir.clone(),
                    name,
                    record: Mutex::new(r),
                }))
            }
            None => None,
        };
        let cgroup = match node.cgroups() {
            Some(driver) => {
                let qos = skiff_model::resources::qos_class(&spec);
                let cg = PodCgroup::open(driver, &identity.uid, qos);
                if !cg.dirs().iter().all(|d| d.is_dir()) {
                    return None;
                }
                Some(cg)
            }
            None => None,
        };
        // Container cgroups are named `<container>-<restart>-<n>`: numbers this process gives
        // must not meet those of the one before it.
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Some(PodResources {
            node,
            spec,
            cgroup,
            record,
            seq: AtomicU64::new(seq),
            destroyed: AtomicBool::new(false),
            kept: AtomicBool::new(true),
        })
    }

    /// Records `anchor` as the pod's anchor: the node's crash recovery leaves the pod alone
    /// while it lives (a persistent sandbox).
    pub fn set_anchor(&self, anchor: &crate::state::ProcessRef) -> io::Result<()> {
        self.kept.store(true, Ordering::SeqCst);
        let Some(r) = &self.record else {
            return Ok(());
        };
        r.update(|rec| {
            rec.anchor = Some(Owner {
                pid: anchor.pid,
                start: anchor.start_ticks,
            })
        })
    }

    /// Lets go of the pod without tearing anything down (a persistent sandbox this process
    /// stops using: the next one adopts it).
    pub fn release(self) {
        self.destroyed.store(true, Ordering::SeqCst);
    }

    pub fn mount_journal(&self) -> Option<Arc<dyn crate::spec::MountJournal>> {
        self.record
            .clone()
            .map(|r| r as Arc<dyn crate::spec::MountJournal>)
    }

    /// Adds a mount point about to be created on the host to the pod's record (issue 7 item
    /// 1c), so that a crash leaves none behind. Without a record (not root) a no-op.
    pub fn record_mountpoint(&self, path: &Path) -> io::Result<()> {
        let Some(r) = &self.record else {
            return Ok(());
        };
        r.update(|rec| {
            if !rec.mountpoints.iter().any(|m| m == path) {
                rec.mountpoints.push(path.to_path_buf());
            }
        })
    }

    /// The pod cgroup, if cgroups are in use.
    /// The mount points on the host's root recorded for the pod (removed at teardown).
    pub fn recorded_mountpoints(&self) -> Vec<PathBuf> {
        self.record
            .as_ref()
            .map(|r| match r.record.lock() {
                Ok(g) => g.mountpoints.clone(),
                Err(p) => p.into_inner().mountpoints.clone(),
            })
            .unwrap_or_default()
    }

    /// The mounts recorded for the pod (made before the record was last written).
    pub fn recorded_mounts(&self) -> Vec<PathBuf> {
        self.record
            .as_ref()
            .map(|r| match r.record.lock() {
                Ok(g) => g.mounts.clone(),
                Err(p) => p.into_inner().mounts.clone(),
            })
            .unwrap_or_default()
    }

    pub fn cgroup(&self) -> Option<&PodCgroup> {
        self.cgroup.as_ref()
    }

    /// Puts one container instance into its own cgroup (CG6) and sets its oom_score_adj
    /// (RES9). A cgroup that cannot be created is a start error.
    pub fn container_setup(
        &self,
        container: &Container,
        launch: &ContainerLaunch,
        setup: &mut ContainerSetup,
    ) -> Result<(), StartError> {
        let score = skiff_model::resources::oom_score_adj(
            &self.spec,
            &container.name,
            self.node.memory_capacity_bytes(),
        );
        if score < 0 && !has_cap_sys_resource() {
            static SAID: AtomicBool = AtomicBool::new(false);
            if !SAID.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    requested = score,
                    applied = 0,
                    "the host refuses negative oom_score_adj (no CAP_SYS_RESOURCE); containers get 0 instead"
                );
            }
        }
        setup.oom_score_adj = Some(score);
        if let Some(pod) = &self.cgroup {
            let n = self.seq.fetch_add(1, Ordering::Relaxed);
            let name = format!("{}-{}-{n}", container.name, launch.restart_count);
            let cg: Arc<ContainerCgroup> = pod
                .create_container(&name, container)
                .map_err(|e| StartError::Config(format!("creating the container cgroup: {e}")))?;
            setup.group = Some(cg);
        }
        Ok(())
    }

    /// Whether the record may go: no cgroup left and no recorded mount left.
    fn record_done(&self) -> bool {
        self.record.as_ref().is_none_or(|r| match r.record.lock() {
            Ok(g) => g.mounts.is_empty(),
            Err(p) => p.into_inner().mounts.is_empty(),
        })
    }

    /// Removes the pod cgroup (killing anything still in it), then the record (kept if the
    /// cgroup or a mount could not be removed: the next start retries).
    pub async fn destroy(self) {
        self.destroyed.store(true, Ordering::SeqCst);
        let mut keep_record = !self.record_done();
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.remove(REMOVE_TIMEOUT).await {
                tracing::warn!(uid = cg.uid(), "removing the pod cgroup: {e}");
                keep_record = true;
            }
        }
        if let (Some(r), false) = (&self.record, keep_record) {
            r.remove();
        }
    }
}

impl Drop for PodResources {
    fn drop(&mut self) {
        if self.destroyed.load(Ordering::SeqCst) || self.kept.load(Ordering::SeqCst) {
            return;
        }
        let mut keep_record = !self.record_done();
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.remove_blocking(REMOVE_TIMEOUT) {
                tracing::warn!(uid = cg.uid(), "removing the pod cgroup: {e}");
                keep_record = true;
            }
        }
        if let (Some(r), false) = (&self.record, keep_record) {
            r.remove();
        }
    }
}

/// Creates the pod's directory (`<data dir>/pods/<ns>_<name>_<uid>`) mode 0750 whatever the
/// umask, like the kubelet's `makePodDataDirs`: nobody but skiff (and its group) looks into
/// a pod's logs and files; containers reach what they need through bind mounts.
pub fn create_pod_dir(pod_dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true).mode(0o750);
    b.create(pod_dir)?;
    let fd = nix::fcntl::open(
        pod_dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)?;
    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o750)).map_err(io::Error::from)
}

fn sanitize_file(uid: &str) -> String {
    uid.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether this process has CAP_SYS_RESOURCE (bit 24) in its effective set, needed for a
/// negative oom_score_adj.
fn has_cap_sys_resource() -> bool {
    crate::security::has_capability(24)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn record(uid: &str) -> PodRecord {
        PodRecord {
            uid: uid.into(),
            owner: Owner { pid: 42, start: 7 },
            anchor: Some(Owner { pid: 43, start: 9 }),
            cgroups: vec![PathBuf::from(format!(
                "/sys/fs/cgroup/memory/x/kubepods/pod{uid}"
            ))],
            pod_dir: PathBuf::from(format!("/tmp/d/pods/default_p_{uid}")),
            data_dir: PathBuf::from("/tmp/d"),
            mounts: vec![PathBuf::from(format!(
                "/tmp/d/pods/default_p_{uid}/volumes/kubernetes.io~secret/s"
            ))],
            mountpoints: vec![PathBuf::from("/srv/mnt point")],
        }
    }

    #[test]
    fn record_round_trip() {
        let r = record("u-1");
        let dir = tempfile::tempdir().unwrap();
        let records = RecordsDir::open(dir.path()).unwrap();
        records.write("u-1", &r).unwrap();
        assert_eq!(records.read("u-1").unwrap(), r);
        assert_eq!(records.names(), vec!["u-1".to_string()]);
        let mode = fs::metadata(dir.path().join("pods/u-1")).unwrap().mode();
        assert_eq!(mode & 0o7777, 0o600);
        records.remove("u-1");
        assert!(records.names().is_empty());
    }

    #[test]
    fn abandoned_record_writes_are_swept_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let records = RecordsDir::open(dir.path()).unwrap();
        // PID 2^31-1 does not exist (pid_max is far below); our own PID does.
        let dead = "u-3.tmp2147483647".to_string();
        let live = format!("u-4.tmp{}", std::process::id());
        for n in [&dead, &live] {
            fs::write(dir.path().join("pods").join(n), "x").unwrap();
        }
        records.sweep_abandoned_writes();
        assert_eq!(records.names(), vec![live]);
    }

    #[test]
    fn issue7_item5_newline_in_a_path_is_not_recorded() {
        let mut r = record("u-2");
        r.data_dir = PathBuf::from("/tmp/d\nuid=x");
        assert!(r.render().is_err());
    }

    #[test]
    fn issue7_item5_records_dir_is_0700_and_refused_when_not_skiffs() {
        let t = tempfile::tempdir().unwrap();
        // An existing 0755 dir is tightened to exactly 0700.
        fs::create_dir(t.path().join("pods")).unwrap();
        fs::set_permissions(t.path().join("pods"), fs::Permissions::from_mode(0o755)).unwrap();
        RecordsDir::open(t.path()).unwrap();
        let mode = fs::metadata(t.path().join("pods")).unwrap().mode();
        assert_eq!(mode & 0o7777, 0o700);
        // Writable by others: refused.
        fs::set_permissions(t.path().join("pods"), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(RecordsDir::open(t.path()).is_err());
        // A symlink to a good directory: refused (never followed).
        let t2 = tempfile::tempdir().unwrap();
        let real = t2.path().join("elsewhere");
        fs::create_dir(&real).unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&real, t2.path().join("pods")).unwrap();
        assert!(RecordsDir::open(t2.path()).is_err());
    }

    #[test]
    fn issue7_item5_symlinked_foreign_or_writable_records_are_untrusted() {
        let t = tempfile::tempdir().unwrap();
        let records = RecordsDir::open(t.path()).unwrap();
        let r = record("u-3");
        // A valid record elsewhere, reached through a symlink: ignored.
        let other = tempfile::tempdir().unwrap();
        let elsewhere = RecordsDir::open(other.path()).unwrap();
        elsewhere.write("u-3", &r).unwrap();
        std::os::unix::fs::symlink(other.path().join("pods/u-3"), t.path().join("pods/u-3"))
            .unwrap();
        assert!(matches!(
            records.read("u-3"),
            Err(RecordError::Untrusted(_))
        ));
        // Writable by others: ignored.
        records.write("u-4", &record("u-4")).unwrap();
        fs::set_permissions(t.path().join("pods/u-4"), fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            records.read("u-4"),
            Err(RecordError::Untrusted(_))
        ));
        // Not a regular file: ignored.
        fs::create_dir(t.path().join("pods/u-5")).unwrap();
        assert!(matches!(
            records.read("u-5"),
            Err(RecordError::Untrusted(_))
        ));
        // Owned by another uid (needs root to chown): ignored.
        if nix::unistd::geteuid().is_root() {
            records.write("u-6", &record("u-6")).unwrap();
            nix::unistd::chown(
                &t.path().join("pods/u-6"),
                Some(nix::unistd::Uid::from_raw(65534)),
                None,
            )
            .unwrap();
            assert!(matches!(
                records.read("u-6"),
                Err(RecordError::Untrusted(_))
            ));
        }
        // Garbage of skiff's own: invalid (removed by recovery).
        fs::write(t.path().join("pods/u-7"), "junk").unwrap();
        fs::set_permissions(t.path().join("pods/u-7"), fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(records.read("u-7"), Err(RecordError::Invalid(_))));
    }

    #[test]
    fn issue7_item5_clean_paths_only() {
        assert!(is_clean_absolute(Path::new("/a/b")));
        assert!(!is_clean_absolute(Path::new("/a/../b")));
        assert!(!is_clean_absolute(Path::new("a/b")));
    }

    #[test]
    fn issue7_item5_real_dir_refuses_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        fs::create_dir_all(real.join("pods/x")).unwrap();
        std::os::unix::fs::symlink(&real, t.path().join("link")).unwrap();
        assert_eq!(real_dir(&real.join("pods/x")), Ok(true));
        assert!(real_dir(&t.path().join("link/pods/x")).is_err());
        assert_eq!(real_dir(&real.join("pods/none")), Ok(false));
    }

    #[test]
    fn owner_liveness_uses_start_time() {
        let me = Owner::current();
        assert!(me.alive());
        assert!(!Owner {
            pid: me.pid,
            start: me.start + 1
        }
        .alive());
    }
}
