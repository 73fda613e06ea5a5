//! OOM-kill detection per container cgroup, and `oom_score_adj` (RES9).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::Interest;

use super::fsutil::{self, keyed_value};
use super::CgroupError;

/// Tells whether the kernel OOM killer killed a process of one cgroup since
/// the watcher was created.
///
/// v1: the `oom_kill` counter of `memory.oom_control` (hierarchical: a kill
/// caused by the pod's limit is counted in the victim's container cgroup
/// too), plus an eventfd registered through `cgroup.event_control` for a
/// prompt [`wait`](Self::wait). v2: `oom_kill` of `memory.events`, with
/// inotify for `wait`. `memory.failcnt` is not used (it stays 0 on some
/// kernels).
///
/// The counter is incremented when the kernel sends the SIGKILL, i.e. before
/// the victim's exit can be reaped, so checking it after the exit is
/// race-free. Check it **before** removing the cgroup; afterwards the last
/// value seen is reported.
#[derive(Debug)]
pub struct OomWatcher {
    kind: Kind,
    baseline: u64,
    /// Last count read (minus baseline), for after the cgroup is gone.
    seen: AtomicU64,
}

#[derive(Debug)]
enum Kind {
    V1 {
        oom_control: PathBuf,
        eventfd: Option<EventFd>,
    },
    V2 {
        events: PathBuf,
    },
}

/// The `oom_kill` value of a flat-keyed file; a missing file or key is 0
/// (fixture trees, old kernels).
fn read_count(path: &Path) -> Result<u64, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(keyed_value(&s, "oom_kill").unwrap_or(0)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A fixture cgroup (plain directory) without the file counts 0; a
            // removed cgroup is an error (the caller keeps the last value).
            match path.parent() {
                Some(dir) if dir.is_dir() && !fsutil::is_cgroupfs(dir) => Ok(0),
                _ => Err(fsutil::io_err("reading", path, e)),
            }
        }
        Err(e) => Err(fsutil::io_err("reading", path, e)),
    }
}

impl OomWatcher {
    /// v1 memory cgroup directory `dir`.
    pub fn v1(dir: &Path) -> Result<Self, CgroupError> {
        let oom_control = dir.join("memory.oom_control");
        let baseline = read_count(&oom_control)?;
        let eventfd = match register_eventfd(dir, &oom_control) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "no OOM eventfd; wait() polls");
                None
            }
        };
        Ok(OomWatcher {
            kind: Kind::V1 {
                oom_control,
                eventfd,
            },
            baseline,
            seen: AtomicU64::new(0),
        })
    }

    /// v2 cgroup directory `dir`.
    pub fn v2(dir: &Path) -> Result<Self, CgroupError> {
        let events = dir.join("memory.events");
        let baseline = read_count(&events)?;
        Ok(OomWatcher {
            kind: Kind::V2 { events },
            baseline,
            seen: AtomicU64::new(0),
        })
    }

    fn counter_file(&self) -> &Path {
        match &self.kind {
            Kind::V1 { oom_control, .. } => oom_control,
            Kind::V2 { events } => events,
        }
    }

    /// OOM kills in this cgroup since the watcher was created.
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        let n = read_count(self.counter_file())?.saturating_sub(self.baseline);
        self.seen.fetch_max(n, Ordering::SeqCst);
        Ok(n)
    }

    /// Whether any process of the cgroup was OOM-killed; if the counter
    /// cannot be read any more (cgroup removed), the last value seen.
    pub fn oom_killed(&self) -> bool {
        match self.oom_kills() {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::debug!(error = %e, "OOM counter unreadable; using last value");
                self.seen.load(Ordering::SeqCst) > 0
            }
        }
    }

    /// Whether [`wait`](Self::wait) is event-driven (eventfd/inotify) rather than polling.
    pub fn has_notifier(&self) -> bool {
        match &self.kind {
            Kind::V1 { eventfd, .. } => eventfd.is_some(),
            Kind::V2 { .. } => true,
        }
    }

    /// Resolves once an OOM kill has happened (returns the count). Errors
    /// when the cgroup disappears first.
    pub async fn wait(&self) -> Result<u64, CgroupError> {
        loop {
            match &self.kind {
                Kind::V1 {
                    eventfd: Some(efd), ..
                } => {
                    let n = self.oom_kills()?;
                    if n > 0 {
                        return Ok(n);
                    }
                    // The eventfd counts events since registration, so one
                    // that fired between the read above and here is not lost.
                    let dup = efd.as_fd().try_clone_to_owned().map_err(|e| {
                        fsutil::io_err("duplicating eventfd for", self.counter_file(), e)
                    })?;
                    let afd = async_fd(dup).map_err(|e| {
                        fsutil::io_err("polling eventfd for", self.counter_file(), e)
                    })?;
                    let mut guard = afd.readable().await.map_err(|e| {
                        fsutil::io_err("polling eventfd for", self.counter_file(), e)
                    })?;
                    let mut buf = [0u8; 8];
                    match nix::unistd::read(guard.get_inner(), &mut buf) {
                        Ok(_) | Err(Errno::EAGAIN) => {}
                        Err(e) => {
                            return Err(fsutil::io_err(
                                "reading eventfd for",
                                self.counter_file(),
                                e.into(),
                            ))
                        }
                    }
                    guard.clear_ready();
                    drop(guard);
                    // v1 notifies when the cgroup goes *under* OOM, before the
                    // killer has picked and counted a victim: give the
                    // counter a moment. (Also fires when the cgroup is
                    // removed: the next read errors.)
                    let until = tokio::time::Instant::now() + Duration::from_millis(500);
                    while tokio::time::Instant::now() < until {
                        let n = self.oom_kills()?;
                        if n > 0 {
                            return Ok(n);
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
                Kind::V2 { events } => {
                    let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
                        .map_err(|e| fsutil::io_err("watching", events, e.into()))?;
                    ino.add_watch(events, AddWatchFlags::IN_MODIFY)
                        .map_err(|e| fsutil::io_err("watching", events, e.into()))?;
                    let n = self.oom_kills()?;
                    if n > 0 {
                        return Ok(n);
                    }
                    let afd = async_fd(OwnedFd::from(ino))
                        .map_err(|e| fsutil::io_err("watching", events, e))?;
                    let mut guard = afd
                        .readable()
                        .await
                        .map_err(|e| fsutil::io_err("watching", events, e))?;
                    // Drain the queued events (content irrelevant).
                    let mut buf = [0u8; 4096];
                    while nix::unistd::read(guard.get_inner(), &mut buf).is_ok_and(|n| n > 0) {}
                    guard.clear_ready();
                }
                Kind::V1 { eventfd: None, .. } => {
                    let n = self.oom_kills()?;
                    if n > 0 {
                        return Ok(n);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// `cgroup.event_control` ← `"<eventfd> <oom_control fd>"`. The kernel keeps
/// its own reference to the eventfd; the oom_control file may be closed.
fn register_eventfd(dir: &Path, oom_control: &Path) -> io::Result<EventFd> {
    let efd = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
    let ofd = File::open(oom_control)?;
    let line = format!("{} {}", efd.as_raw_fd(), ofd.as_raw_fd());
    let mut ctl = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.event_control"))?;
    ctl.write_all(line.as_bytes())?;
    Ok(efd)
}

/// Registers an owned, non-blocking descriptor with the tokio reactor (readable and
/// writable, as `AsyncFd::register` does).
fn async_fd(fd: OwnedFd) -> io::Result<crate::sys::fd::Pollable> {
    crate::sys::fd::Pollable::new(fd, Interest::READABLE | Interest::WRITABLE)
}

// ---------------------------------------------------------------------------------------------
// oom_score_adj
// ---------------------------------------------------------------------------------------------

/// What [`OomScoreAdjuster::apply`] did. Never an error: the pod runs anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OomScoreOutcome {
    /// Written as requested.
    Applied(i32),
    /// The host refused the negative `requested` value (no
    /// `CAP_SYS_RESOURCE`); `applied` (0) was written instead. `first` is
    /// true only the first time this adjuster reports it: log it then.
    Raised {
        requested: i32,
        applied: i32,
        first: bool,
    },
    /// Nothing written (process gone, or even 0 refused).
    Skipped { requested: i32, reason: String },
}

/// Writes `/proc/<pid>/oom_score_adj` (RES9 values), degrading a refused
/// negative value to 0 and reporting that once per adjuster.
#[derive(Debug)]
pub struct OomScoreAdjuster {
    proc_root: PathBuf,
    raised: AtomicBool,
}

impl Default for OomScoreAdjuster {
    fn default() -> Self {
        Self::new()
    }
}

impl OomScoreAdjuster {
    pub fn new() -> Self {
        Self::with_proc_root(PathBuf::from("/proc"))
    }

    /// With another `/proc` (tests).
    pub fn with_proc_root(proc_root: PathBuf) -> Self {
        OomScoreAdjuster {
            proc_root,
            raised: AtomicBool::new(false),
        }
    }

    /// Writes `value` (clamped to [−1000, 1000]) for `pid`.
    pub fn apply(&self, pid: i32, value: i32) -> OomScoreOutcome {
        let value = value.clamp(-1000, 1000);
        let path = self.proc_root.join(pid.to_string()).join("oom_score_adj");
        match write_score(&path, value) {
            Ok(()) => OomScoreOutcome::Applied(value),
            Err(e)
                if value < 0
                    && matches!(e.raw_os_error(), Some(n) if n == Errno::EACCES as i32 || n == Errno::EPERM as i32) =>
            {
                match write_score(&path, 0) {
                    Ok(()) => {
                        let first = !self.raised.swap(true, Ordering::SeqCst);
                        if first {
                            tracing::warn!(
                                requested = value,
                                applied = 0,
                                "the host refuses negative oom_score_adj (no CAP_SYS_RESOURCE); using 0 instead"
                            );
                        }
                        OomScoreOutcome::Raised {
                            requested: value,
                            applied: 0,
                            first,
                        }
                    }
                    Err(e) => OomScoreOutcome::Skipped {
                        requested: value,
                        reason: format!("{}: {e}", path.display()),
                    },
                }
            }
            Err(e) => {
                tracing::debug!(pid, value, error = %e, "oom_score_adj not written");
                OomScoreOutcome::Skipped {
                    requested: value,
                    reason: format!("{}: {e}", path.display()),
                }
            }
        }
    }
}

fn write_score(path: &Path, value: i32) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.to_string().as_bytes())
}
