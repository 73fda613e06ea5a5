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
//! cgroup's directories in every hierarchy, the pod's directory and skiff's data dir. A
//! record is written **before** the pod cgroup is created and removed **after** it is gone.
//!
//! At startup every record whose owner is dead is cleaned up: whatever is mounted under the
//! pod's directory is unmounted (volumes, bind-mounted files), every process in the pod
//! cgroup is SIGKILLed and the cgroups removed, and a temporary data dir of `skiff run`
//! (`$TMPDIR/skiff-run-*`) is deleted. Records of live owners (another `skiff run` at the
//! same time) are left alone, and so is any pod cgroup without a record: it may belong to a
//! skiff using another state dir, so only records decide. The pod's namespaces need nothing:
//! their holder exits when its skiff dies (see `namespaces`).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use skiff_model::admission::{NodeCapacity, DEFAULT_MAX_PODS};

use crate::cgroups::{self, CgroupDriver, CgroupSettings, ContainerCgroup, PodCgroup};
use crate::isolation::ContainerSetup;
use crate::launch::{ContainerLaunch, PodIdentity, StartError};
use crate::sandbox::SandboxError;

/// Default state directory (records of running pods).
pub const DEFAULT_STATE_DIR: &str = "/run/skiff";
/// Environment variable overriding [`DEFAULT_STATE_DIR`].
pub const STATE_DIR_ENV: &str = "SKIFF_STATE_DIR";
/// How long removing one pod cgroup may take.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Prefix of `skiff run`'s temporary data dirs (removed with a dead owner's pod).
pub const TEMP_DATA_DIR_PREFIX: &str = "skiff-run-";

/// This process's node-wide resources.
#[derive(Debug)]
pub struct NodeResources {
    cgroups: Option<Arc<dyn CgroupDriver>>,
    state_dir: PathBuf,
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
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
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
        let node = NodeResources {
            cgroups,
            state_dir,
            milli_cpu: online_cpus() * 1000,
            memory_bytes: mem_total(),
            owner: Owner::current(),
        };
        if node.cgroups.is_some() {
            node.recover();
        }
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
            ephemeral_storage_bytes: fs_size(data_dir),
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
        for entry in fs::read_dir(self.records_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some() {
                continue; // a record being written (`.tmp<pid>`)
            }
            let Some(record) = PodRecord::read(&path) else {
                tracing::warn!(path = %path.display(), "unreadable pod record removed");
                let _ = fs::remove_file(&path);
                continue;
            };
            if record.owner.alive() {
                continue;
            }
            match record.clean_up() {
                Ok(()) => {
                    tracing::info!(uid = %record.uid, owner = record.owner.pid, "cleaned up a pod of a skiff that is gone");
                    let _ = fs::remove_file(&path);
                }
                Err(e) => {
                    tracing::warn!(uid = %record.uid, "cleaning up a pod of a skiff that is gone: {e}")
                }
            }
        }
    }
}

fn online_cpus() -> i64 {
    std::thread::available_parallelism()
        .ok()
        .and_then(|n| i64::try_from(n.get()).ok())
        .unwrap_or(1)
}

fn mem_total() -> i64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let kib: i64 = l
                    .strip_prefix("MemTotal:")?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()?;
                Some(kib.saturating_mul(1024))
            })
        })
        .unwrap_or(0)
}

fn fs_size(p: &Path) -> i64 {
    let mut dir = Some(p);
    while let Some(d) = dir {
        if let Ok(st) = nix::sys::statvfs::statvfs(d) {
            let blocks = i64::try_from(st.blocks()).unwrap_or(i64::MAX);
            let size = i64::try_from(st.fragment_size()).unwrap_or(1);
            return blocks.saturating_mul(size);
        }
        dir = d.parent();
    }
    0
}

/// What is on disk about one running pod (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodRecord {
    uid: String,
    owner: Owner,
    /// The pod cgroup's directory in every hierarchy.
    cgroups: Vec<PathBuf>,
    pod_dir: PathBuf,
    data_dir: PathBuf,
    /// Mount points created for the pod's containers (`mountns`), removed if still empty.
    mountpoints: Vec<PathBuf>,
}

impl PodRecord {
    fn render(&self) -> String {
        let mut s = format!(
            "uid={}\nowner_pid={}\nowner_start={}\npod_dir={}\ndata_dir={}\n",
            self.uid,
            self.owner.pid,
            self.owner.start,
            self.pod_dir.display(),
            self.data_dir.display()
        );
        for c in &self.cgroups {
            s.push_str(&format!("cgroup={}\n", c.display()));
        }
        for m in &self.mountpoints {
            s.push_str(&format!("mountpoint={}\n", m.display()));
        }
        s
    }

    fn read(path: &Path) -> Option<PodRecord> {
        let text = fs::read_to_string(path).ok()?;
        let mut r = PodRecord {
            uid: String::new(),
            owner: Owner { pid: 0, start: 0 },
            cgroups: Vec::new(),
            pod_dir: PathBuf::new(),
            data_dir: PathBuf::new(),
            mountpoints: Vec::new(),
        };
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            match k {
                "uid" => r.uid = v.to_string(),
                "owner_pid" => r.owner.pid = v.parse().ok()?,
                "owner_start" => r.owner.start = v.parse().ok()?,
                "pod_dir" => r.pod_dir = PathBuf::from(v),
                "data_dir" => r.data_dir = PathBuf::from(v),
                "cgroup" => r.cgroups.push(PathBuf::from(v)),
                "mountpoint" => r.mountpoints.push(PathBuf::from(v)),
                _ => {}
            }
        }
        (!r.uid.is_empty() && r.owner.pid > 0).then_some(r)
    }

    /// Removes what the dead owner left: mounts under the pod dir, the cgroups (and their
    /// processes), a temporary data dir.
    fn clean_up(&self) -> io::Result<()> {
        if !self.pod_dir.as_os_str().is_empty() {
            unmount_under(&self.pod_dir);
        }
        crate::mountns::remove_mountpoints(&self.mountpoints);
        cgroups::remove_dir_trees(&self.cgroups, REMOVE_TIMEOUT).map_err(io::Error::from)?;
        let temp = std::env::temp_dir();
        let is_temp = self.data_dir.parent() == Some(temp.as_path())
            && self
                .data_dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_DATA_DIR_PREFIX));
        if is_temp && self.data_dir.is_dir() {
            unmount_under(&self.data_dir);
            fs::remove_dir_all(&self.data_dir)?;
        }
        Ok(())
    }
}

/// Lazily unmounts every mount point at or below `dir` (deepest first).
fn unmount_under(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(unescape_mountinfo)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for p in points {
        if let Err(e) = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH) {
            tracing::debug!(path = %p.display(), error = %e, "unmounting a stale pod mount");
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// A pod's share of the node: its cgroup and its record. Created by the pod sandbox before
/// the first container, torn down by [`PodResources::destroy`] after the last; dropped without
/// that (the sandbox failed half-way), it removes both synchronously.
#[derive(Debug)]
pub struct PodResources {
    node: Arc<NodeResources>,
    spec: PodSpec,
    cgroup: Option<PodCgroup>,
    record: Option<PathBuf>,
    seq: AtomicU64,
    destroyed: AtomicBool,
}

impl PodResources {
    /// Records the pod and creates its cgroup (sized per CG2–CG4, CG9 from the effective
    /// values). Without cgroups only the spec is kept (for oom_score_adj). On error nothing
    /// is left.
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
        };
        let Some(driver) = node.cgroups() else {
            return Ok(res);
        };
        let err = |message: String| SandboxError {
            reason: "FailedCreatePodSandBox".into(),
            message,
        };
        let qos = skiff_model::resources::qos_class(&res.spec);
        let handle = PodCgroup::open(driver, &identity.uid, qos);
        let record = PodRecord {
            uid: identity.uid.clone(),
            owner: node.owner,
            cgroups: handle.dirs(),
            pod_dir: pod_dir.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            mountpoints: Vec::new(),
        };
        let path = node.records_dir().join(sanitize_file(&identity.uid));
        write_record(&path, &record)
            .map_err(|e| err(format!("recording the pod in {}: {e}", path.display())))?;
        res.record = Some(path);
        // From here on `res` drops the record (and cgroup) on error.
        let cgroup = PodCgroup::create(driver, &identity.uid, &res.spec)
            .map_err(|e| err(format!("creating the pod cgroup: {e}")))?;
        res.cgroup = Some(cgroup);
        Ok(res)
    }

    /// The pod cgroup, if cgroups are in use.
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

    /// Removes the pod cgroup (killing anything still in it), then the record.
    pub async fn destroy(self) {
        self.destroyed.store(true, Ordering::SeqCst);
        let mut keep_record = false;
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.remove(REMOVE_TIMEOUT).await {
                tracing::warn!(uid = cg.uid(), "removing the pod cgroup: {e}");
                keep_record = true; // the next start retries
            }
        }
        if let (Some(path), false) = (&self.record, keep_record) {
            let _ = fs::remove_file(path);
        }
    }
}

impl PodResources {
    /// Adds a mount point about to be created to the pod's record (issue 7 item 1c), so a
    /// crash leaves none behind. Without a record (no cgroups) there is nothing to add to.
    pub fn record_mountpoint(&self, path: &Path) -> io::Result<()> {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let Some(file) = &self.record else {
            return Ok(());
        };
        if path.as_os_str().as_encoded_bytes().contains(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a mount point path contains a newline",
            ));
        }
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut record = PodRecord::read(file)
            .ok_or_else(|| io::Error::other(format!("reading {}", file.display())))?;
        record.mountpoints.push(path.to_path_buf());
        write_record(file, &record)
    }
}

impl Drop for PodResources {
    fn drop(&mut self) {
        if self.destroyed.load(Ordering::SeqCst) {
            return;
        }
        let mut keep_record = false;
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.remove_blocking(REMOVE_TIMEOUT) {
                tracing::warn!(uid = cg.uid(), "removing the pod cgroup: {e}");
                keep_record = true;
            }
        }
        if let (Some(path), false) = (&self.record, keep_record) {
            let _ = fs::remove_file(path);
        }
    }
}

fn write_record(path: &Path, record: &PodRecord) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    // Write-then-rename: a record is never seen half-written.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(record.render().as_bytes())?;
    f.sync_all().ok();
    fs::rename(&tmp, path)
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

    #[test]
    fn record_round_trip() {
        let r = PodRecord {
            uid: "u-1".into(),
            owner: Owner { pid: 42, start: 7 },
            cgroups: vec![PathBuf::from("/sys/fs/cgroup/memory/x/kubepods/podu-1")],
            pod_dir: PathBuf::from("/tmp/d/pods/default_p_u-1"),
            data_dir: PathBuf::from("/tmp/d"),
            mountpoints: vec![PathBuf::from("/srv/mnt point")],
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u-1");
        write_record(&p, &r).unwrap();
        assert_eq!(PodRecord::read(&p), Some(r));
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

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(
            unescape_mountinfo(r"/a\040b\134c"),
            PathBuf::from("/a b\\c")
        );
    }
}
