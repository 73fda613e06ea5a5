//! Process tracking: which processes belong to one container, and stopping
//! all of them.
//!
//! Two implementations:
//! * [`CgroupV2Tracker`]: each container gets its own cgroup on the cgroup2
//!   hierarchy (nested under skiff's own cgroup); the child joins it before
//!   `exec`, and `cgroup.kill` kills the whole tree, daemonised children
//!   included. Needs root and a writable cgroup2 mount (here
//!   `/sys/fs/cgroup/unified`, which has no controllers: tracking only).
//! * [`ProcessGroupTracker`]: the fallback. Each container leads its own
//!   session/process group, and every container process carries the
//!   environment marker [`MARKER_ENV`]; stopping signals the process group and
//!   then sweeps `/proc` for processes that carry the marker (daemons that left
//!   the group with `setsid`, whose zombies the subreaper collects).
//!
//! Resource limits (cgroup v1/v2 controllers) are a later issue; they will be
//! other implementations of the same traits.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::io::Interest;

pub use crate::spec::{BoxFuture, TrackedGroup};

/// Environment variable set in every process skiff starts for a container
/// (and its exec probes/hooks): `SKIFF_CONTAINER_ID=<container id>`.
pub const MARKER_ENV: &str = "SKIFF_CONTAINER_ID";

/// Creates one tracking group per container instance.
pub trait ProcessTracker: Send + Sync + 'static {
    /// `"cgroup2"` or `"process-group"`.
    fn kind(&self) -> &'static str;
    /// Creates the group for the container instance `id`.
    fn create(&self, id: &str) -> io::Result<Arc<dyn TrackedGroup>>;
}

/// Picks [`CgroupV2Tracker`] when running as root with a writable cgroup2
/// hierarchy, else [`ProcessGroupTracker`].
pub fn detect() -> Arc<dyn ProcessTracker> {
    if nix::unistd::geteuid().is_root() {
        match CgroupV2Tracker::from_proc() {
            Ok(t) => return Arc::new(t),
            Err(e) => {
                tracing::info!(error = %e, "cgroup2 tracking unavailable; using process groups")
            }
        }
    }
    Arc::new(ProcessGroupTracker)
}

/// Tracking cgroups under `<cgroup2 mount>/<own cgroup>/skiff/`.
#[derive(Debug, Clone)]
pub struct CgroupV2Tracker {
    base: PathBuf,
}

impl CgroupV2Tracker {
    /// Finds our cgroup2 cgroup (the cgroups module's discovery), creates `skiff/` under it.
    pub fn from_proc() -> io::Result<Self> {
        let layout = crate::cgroups::CgroupLayout::from_proc().map_err(io::Error::other)?;
        let unified = layout
            .unified()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup2 mount"))?;
        Self::new(unified.base.join("skiff"))
    }

    /// Uses `base` (created if missing) as the parent of container cgroups.
    pub fn new(base: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&base)?;
        // cgroup.kill exists on kernels >= 5.14; it is what makes this useful.
        let probe = base.join("cgroup.procs");
        OpenOptions::new().write(true).open(&probe)?;
        Ok(CgroupV2Tracker { base })
    }

    pub fn base(&self) -> &Path {
        &self.base
    }
}

impl ProcessTracker for CgroupV2Tracker {
    fn kind(&self) -> &'static str {
        "cgroup2"
    }

    fn create(&self, id: &str) -> io::Result<Arc<dyn TrackedGroup>> {
        let dir = self.base.join(sanitize(id));
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let procs = OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))?;
        let dir_fd = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_DIRECTORY)
            .open(&dir)?;
        Ok(Arc::new(CgroupGroup {
            id: id.to_string(),
            dir,
            procs: Arc::new(procs),
            dir_fd: Arc::new(dir_fd.into()),
        }))
    }
}

fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Debug)]
struct CgroupGroup {
    id: String,
    dir: PathBuf,
    procs: Arc<File>,
    dir_fd: Arc<OwnedFd>,
}

impl CgroupGroup {
    fn populated(&self) -> io::Result<bool> {
        let ev = fs::read_to_string(self.dir.join("cgroup.events"))?;
        Ok(ev.lines().any(|l| l.trim() == "populated 1"))
    }
}

impl TrackedGroup for CgroupGroup {
    fn id(&self) -> &str {
        &self.id
    }

    fn join_file(&self) -> Option<Arc<File>> {
        Some(self.procs.clone())
    }

    fn cgroup_dir(&self) -> Option<Arc<OwnedFd>> {
        Some(self.dir_fd.clone())
    }

    fn set_leader(&self, _pid: i32) {}

    fn signal_all(&self, sig: Signal) -> io::Result<()> {
        if sig == Signal::SIGKILL {
            match OpenOptions::new()
                .write(true)
                .open(self.dir.join("cgroup.kill"))
            {
                Ok(mut f) => return f.write_all(b"1"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !self.dir.exists() {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        for pid in self.pids() {
            match kill(Pid::from_raw(pid), sig) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn remove(&self, timeout: Duration) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move {
            if !self.dir.exists() {
                return Ok(());
            }
            self.signal_all(Signal::SIGKILL)?;
            // A change of `cgroup.events` wakes pollers with POLLPRI (kernfs). Polling it
            // rather than using inotify matters: closing an inotify instance waits for an
            // SRCU grace period (~15 ms), on the path of every container's cleanup.
            let wait = async {
                let events = File::open(self.dir.join("cgroup.events"))?;
                let afd = crate::sys::fd::Pollable::new(events.into(), Interest::PRIORITY)?;
                while self.populated()? {
                    let mut guard = afd.ready(Interest::PRIORITY).await?;
                    guard.clear_ready();
                }
                Ok::<(), io::Error>(())
            };
            match tokio::time::timeout(timeout, wait).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("cgroup {} still populated", self.dir.display()),
                    ))
                }
            }
            match fs::remove_dir(&self.dir) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}

/// Fallback tracker: session/process group plus the environment marker.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessGroupTracker;

impl ProcessTracker for ProcessGroupTracker {
    fn kind(&self) -> &'static str {
        "process-group"
    }

    fn create(&self, id: &str) -> io::Result<Arc<dyn TrackedGroup>> {
        Ok(Arc::new(PgGroup {
            id: id.to_string(),
            leader: AtomicI32::new(0),
        }))
    }
}

#[derive(Debug)]
struct PgGroup {
    id: String,
    leader: AtomicI32,
}

/// Pids of live processes whose environment holds `MARKER_ENV=id`.
pub fn pids_with_marker(id: &str) -> Vec<i32> {
    let needle = format!("{MARKER_ENV}={id}");
    let me = std::process::id() as i32;
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

impl TrackedGroup for PgGroup {
    fn id(&self) -> &str {
        &self.id
    }

    fn join_file(&self) -> Option<Arc<File>> {
        None
    }

    fn set_leader(&self, pid: i32) {
        self.leader.store(pid, Ordering::SeqCst);
    }

    fn signal_all(&self, sig: Signal) -> io::Result<()> {
        let leader = self.leader.load(Ordering::SeqCst);
        if leader > 0 {
            match killpg(Pid::from_raw(leader), sig) {
                Ok(()) | Err(Errno::ESRCH) | Err(Errno::EPERM) => {}
                Err(e) => return Err(e.into()),
            }
        }
        for pid in pids_with_marker(&self.id) {
            match kill(Pid::from_raw(pid), sig) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => tracing::debug!(pid, error = %e, "sweeping marked process"),
            }
        }
        Ok(())
    }

    fn pids(&self) -> Vec<i32> {
        pids_with_marker(&self.id)
    }

    fn remove(&self, timeout: Duration) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move {
            // Killing is immediate; a process may fork while we sweep, so
            // sweep until nothing marked is left (bounded).
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                self.signal_all(Signal::SIGKILL)?;
                if self.pids().is_empty() {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "processes survive SIGKILL",
                    ));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_ids() {
        assert_eq!(sanitize("ns_pod/x:1"), "ns_pod_x_1");
    }
}
