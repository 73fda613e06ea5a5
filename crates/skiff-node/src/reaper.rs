//! The one child reaper.
//!
//! skiff marks itself a child subreaper (`PR_SET_CHILD_SUBREAPER`), so orphans
//! of the containers' process trees are reparented to it. One dedicated thread
//! owns reaping: it blocks in `waitid(P_ALL, WEXITED | WNOWAIT)` (no polling),
//! and for every zombie takes the registry lock and reaps it with
//! `waitpid(pid)`. Exits of registered processes are delivered on a
//! `tokio::sync::watch` channel; orphans are reaped and dropped.
//!
//! Rule for the whole process: once a [`Reaper`] exists, every child must be
//! spawned through [`Reaper::spawn`] (never `tokio::process`, nor
//! `std::process::Child::wait`), otherwise the reaper may collect a status that
//! someone else is waiting for. `Reaper::spawn` holds the registry lock while
//! forking; the thread peeks with `WNOWAIT` and takes the same lock before
//! reaping, so a child that dies at once is still delivered, and a child that
//! std reaps itself on a failed `exec` is never stolen from it.

use std::collections::HashMap;
use std::io;
use std::process::{Child, Command};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use tokio::sync::watch;

/// How a process ended (the monitor's exit records use the same type).
pub use skiff_monitor::ExitStatus;

/// Delivered when a registered process is reaped.
#[derive(Debug, Clone)]
pub struct ExitEvent {
    /// The tag given to [`Reaper::spawn`] (a container id, "probe", ...).
    pub tag: Arc<str>,
    pub pid: i32,
    pub status: ExitStatus,
    /// Taken right after `waitpid` returned.
    pub finished_at: SystemTime,
}

/// Waits for one process's [`ExitEvent`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct ExitWaiter(watch::Receiver<Option<ExitEvent>>);

impl ExitWaiter {
    /// Resolves when the process has been reaped.
    pub async fn wait(&self) -> ExitEvent {
        let mut rx = self.0.clone();
        loop {
            if let Some(ev) = rx.borrow_and_update().clone() {
                return ev;
            }
            if rx.changed().await.is_err() {
                // The reaper never drops a sender before sending; if it did
                // (thread gone), report an unknown status rather than hang.
                if let Some(ev) = rx.borrow().clone() {
                    return ev;
                }
                return ExitEvent {
                    tag: Arc::from("?"),
                    pid: 0,
                    status: ExitStatus::Signaled(9),
                    finished_at: SystemTime::now(),
                };
            }
        }
    }

    /// The exit, if it already happened.
    pub fn try_get(&self) -> Option<ExitEvent> {
        self.0.borrow().clone()
    }
}

/// A spawned process. Its stdio handles (if piped) are in `child` (`None` when it was
/// not started by `std::process`); never call `wait`/`try_wait` on it: the reaper owns its
/// status.
pub struct Spawned {
    pub pid: i32,
    pub exit: ExitWaiter,
    pub child: Option<Child>,
}

struct Waiter {
    tag: Arc<str>,
    tx: watch::Sender<Option<ExitEvent>>,
}

#[derive(Default)]
struct State {
    waiters: HashMap<i32, Waiter>,
    /// Bumped on every spawn; wakes the thread when it had no children.
    generation: u64,
    orphans_reaped: u64,
}

struct Inner {
    state: Mutex<State>,
    cond: Condvar,
}

/// Process-wide reaper; see the module docs.
#[derive(Clone)]
pub struct Reaper {
    inner: Arc<Inner>,
}

static GLOBAL: OnceLock<Result<Reaper, String>> = OnceLock::new();

impl Reaper {
    /// The process's reaper, started (and the subreaper flag set) on first use.
    pub fn global() -> io::Result<Reaper> {
        GLOBAL
            .get_or_init(|| Reaper::start().map_err(|e| e.to_string()))
            .clone()
            .map_err(io::Error::other)
    }

    fn start() -> io::Result<Reaper> {
        nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)?;
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        });
        let thread_inner = inner.clone();
        std::thread::Builder::new()
            .name("skiff-reaper".into())
            .spawn(move || reap_loop(&thread_inner))?;
        Ok(Reaper { inner })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.inner)
    }

    /// Spawns `cmd` and registers it; `tag` comes back in its [`ExitEvent`].
    pub fn spawn(&self, cmd: &mut Command, tag: &str) -> io::Result<Spawned> {
        let mut child = None;
        self.spawn_with(tag, || {
            let c = cmd.spawn()?;
            let pid = c.id() as i32;
            child = Some(c);
            Ok(pid)
        })
        .map(|mut s| {
            s.child = child;
            s
        })
    }

    /// Registers the process `start` forks and returns the pid of. `start` runs under the
    /// registry lock: if it reaps a child itself (a failed exec), the reaper thread cannot
    /// have taken that status first.
    pub fn spawn_with(
        &self,
        tag: &str,
        start: impl FnOnce() -> io::Result<i32>,
    ) -> io::Result<Spawned> {
        let mut st = self.lock();
        st.generation += 1;
        self.inner.cond.notify_all();
        let pid = start()?;
        let (tx, rx) = watch::channel(None);
        st.waiters.insert(
            pid,
            Waiter {
                tag: Arc::from(tag),
                tx,
            },
        );
        drop(st);
        Ok(Spawned {
            pid,
            exit: ExitWaiter(rx),
            child: None,
        })
    }

    /// Number of reaped processes nobody had registered (reparented orphans).
    pub fn orphans_reaped(&self) -> u64 {
        self.lock().orphans_reaped
    }
}

fn lock(inner: &Inner) -> MutexGuard<'_, State> {
    match inner.state.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn reap_loop(inner: &Inner) {
    loop {
        let generation = lock(inner).generation;
        match waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(peek) => {
                let Some(pid) = peek.pid() else { continue };
                let mut st = lock(inner);
                match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                    Ok(ws) => deliver(&mut st, ws),
                    // Reaped by std inside a failed spawn: not ours.
                    Err(Errno::ECHILD) => {}
                    Err(e) => tracing::warn!(pid = pid.as_raw(), error = %e, "waitpid"),
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) => {
                // No children: sleep until the next spawn.
                let mut st = lock(inner);
                while st.generation == generation {
                    st = match inner.cond.wait(st) {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "waitid failed; reaper stops");
                return;
            }
        }
    }
}

fn deliver(st: &mut State, ws: WaitStatus) {
    let finished_at = SystemTime::now();
    let (pid, status) = match ws {
        WaitStatus::Exited(pid, code) => (pid, ExitStatus::Exited(code)),
        WaitStatus::Signaled(pid, sig, _) => (pid, ExitStatus::Signaled(sig as i32)),
        _ => return,
    };
    match st.waiters.remove(&pid.as_raw()) {
        Some(w) => {
            let ev = ExitEvent {
                tag: w.tag,
                pid: pid.as_raw(),
                status,
                finished_at,
            };
            tracing::debug!(pid = ev.pid, tag = %ev.tag, code = status.code(), "reaped");
            w.tx.send_replace(Some(ev));
        }
        None => {
            st.orphans_reaped += 1;
            tracing::debug!(pid = pid.as_raw(), code = status.code(), "reaped orphan");
        }
    }
}
