//! Streaming exec (`kubectl exec`): a command run "in" a container as exec probes run it
//! ([`crate::probe::exec_in`]: the container's environment, working directory, namespaces,
//! credentials and tracking group, a process group of its own), with its stdio wired to a
//! client's streams instead of a bounded buffer: stdin from a pipe (or /dev/null), stdout and
//! stderr through separate pipes, or one pty (`tty`) that becomes the process's controlling
//! terminal, sized from the client's resize messages.
//!
//! It never outlives the container: the process is born in the container's tracking group
//! (stopping the container kills the group), and dropping the future kills its process group.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use crate::probe::KillOnDrop;
use crate::reaper::Reaper;
use crate::runtime::ExecContext;

/// The client's side of an exec (already demultiplexed by the API's stream layer). A `None`
/// is a stream the client did not ask for (stdin: /dev/null; output: discarded).
#[derive(Default)]
pub struct ExecIo {
    pub stdin: Option<Pin<Box<dyn AsyncRead + Send>>>,
    pub stdout: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    pub stderr: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    /// Terminal sizes `(width, height)` (tty only).
    pub resize: Option<mpsc::Receiver<(u16, u16)>>,
}

/// Why an exec could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The command could not be started (not found, bad working directory, set-up failed).
    #[error("{0}")]
    Start(String),
    /// The node could not prepare the exec's pipes or terminal.
    #[error("{0}")]
    Io(String),
}

/// A pod's running containers as exec targets, by container name, kept current by its
/// worker and read by the pod manager without a round trip to the worker (so a refusal is
/// known at once, before any stream is upgraded). Cheap to clone; clones share the table.
#[derive(Clone, Default)]
pub struct ExecTable {
    inner: Arc<std::sync::Mutex<Published>>,
}

/// Container name → (newest instance, its source).
type Published = HashMap<String, (u64, Arc<dyn ExecSource>)>;

/// One container instance that may be exec'd into while it runs.
pub(crate) trait ExecSource: Send + Sync {
    /// Its exec target, or `None` when it does not run (any more) or cannot be exec'd into.
    fn target(&self) -> Option<ExecTarget>;
}

impl std::fmt::Debug for ExecTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.lock().keys().cloned().collect();
        f.debug_struct("ExecTable")
            .field("containers", &names)
            .finish()
    }
}

impl ExecTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Published> {
        // Only inserts and clears happen under the lock: a panic leaves it consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `instance` of `container` (a later instance replaces an earlier one).
    pub(crate) fn publish(&self, container: &str, instance: u64, source: Arc<dyn ExecSource>) {
        let mut t = self.lock();
        match t.get(container) {
            Some((have, _)) if *have > instance => {}
            _ => {
                t.insert(container.to_string(), (instance, source));
            }
        }
    }

    /// Forgets every container (the pod's worker has ended).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// The running instance of `container`, or of any container when `None`.
    pub fn lookup(&self, container: Option<&str>) -> Result<ExecTarget, ExecRefusal> {
        let sources: Vec<Arc<dyn ExecSource>> = {
            let t = self.lock();
            match container {
                Some(c) => t.get(c).map(|(_, s)| s.clone()).into_iter().collect(),
                None => t.values().map(|(_, s)| s.clone()).collect(),
            }
        };
        sources
            .iter()
            .find_map(|s| s.target())
            .ok_or_else(|| ExecRefusal::NotRunning(container.unwrap_or_default().to_string()))
    }
}

/// How long the output of an exited command is still copied once nothing more arrives (a
/// background child may hold the pipe open for ever).
const QUIET_AFTER_EXIT: Duration = Duration::from_millis(200);

/// A running container as an exec target: what commands run "in" it. Cheap to clone, so the
/// streaming runs outside the pod worker.
#[derive(Clone)]
pub struct ExecTarget {
    ctx: ExecContext,
    reaper: Reaper,
    /// The container's main process: its root holds the container's own `/dev/ptmx` (a
    /// `devpts` instance of its own), where a tty exec's pty is made, as runc does.
    main_pid: Option<i32>,
}

impl std::fmt::Debug for ExecTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecTarget")
            .field("container", &self.ctx.container_name)
            .finish()
    }
}

impl ExecTarget {
    pub(crate) fn new(ctx: ExecContext, reaper: Reaper, main_pid: Option<i32>) -> ExecTarget {
        ExecTarget {
            ctx,
            reaper,
            main_pid,
        }
    }

    /// The container's name.
    pub fn container_name(&self) -> &str {
        &self.ctx.container_name
    }

    /// The pod's network namespace (`None`: the host's, a hostNetwork pod).
    pub fn netns(&self) -> Option<&OwnedFd> {
        self.ctx.netns.as_deref()
    }

    /// A TCP connection to `127.0.0.1:port` dialled inside the pod's network namespace (the
    /// host's for a hostNetwork pod): `kubectl port-forward`.
    pub async fn connect_local(&self, port: u16) -> std::io::Result<tokio::net::TcpStream> {
        crate::namespaces::connect_tcp(self.netns(), "127.0.0.1", port).await
    }

    /// Runs `argv` in the container with `io` wired (see the module docs); resolves to its
    /// exit code (128 + the signal for a killed one) once it has exited and its output is
    /// copied. Dropping the future kills the command's process group.
    pub async fn run(&self, argv: &[String], tty: bool, io: ExecIo) -> Result<i32, ExecError> {
        let ExecIo {
            stdin,
            stdout,
            stderr,
            mut resize,
        } = io;
        let ioerr = |what: &str, e: std::io::Error| ExecError::Io(format!("{what}: {e}"));
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| ioerr("pipe", e.into()))
        };
        // Ours: where the output comes from (1 or 2 readers), where stdin goes, the pty.
        let mut readers: Vec<OwnedFd> = Vec::with_capacity(2);
        let mut stdin_w: Option<OwnedFd> = None;
        let mut master: Option<Arc<OwnedFd>> = None;
        let process = if tty {
            let (m, slave) = open_pty(self.main_pid).map_err(|e| ioerr("opening a pty", e))?;
            // The first size usually arrives before the exec starts.
            if let Some(rx) = resize.as_mut() {
                let mut last = None;
                while let Ok(size) = rx.try_recv() {
                    last = Some(size);
                }
                if let Some((w, h)) = last {
                    set_size(&m, w, h);
                }
            }
            let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| ioerr("pty", e));
            let (s_in, s_out) = (dup(&slave)?, dup(&slave)?);
            readers.push(dup(&m)?);
            if stdin.is_some() {
                stdin_w = Some(dup(&m)?);
            }
            master = Some(Arc::new(m));
            self.ctx
                .command_stdio(argv, Some(s_in), s_out, slave, true)
                .map_err(|e| ExecError::Start(e.to_string()))?
        } else {
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            readers.push(out_r);
            readers.push(err_r);
            let child_stdin = if stdin.is_some() {
                let (r, w) = pipe()?;
                stdin_w = Some(w);
                Some(r)
            } else {
                None
            };
            self.ctx
                .command_stdio(argv, child_stdin, out_w, err_w, false)
                .map_err(|e| ExecError::Start(e.to_string()))?
        };
        // Consumes the process: the child's ends now live in the child only.
        let spawned = process
            .spawn(&self.reaper, &format!("exec:{}", self.ctx.container_id))
            .map_err(|e| {
                ExecError::Start(format!(
                    "exec: {:?}: {e}",
                    argv.first().cloned().unwrap_or_default()
                ))
            })?;
        let _kill = KillOnDrop {
            pid: spawned.pid,
            exit: spawned.exit.clone(),
        };
        let progress = Arc::new(AtomicU64::new(0));
        let mut sinks = vec![stdout];
        if !tty {
            sinks.push(stderr);
        }
        let mut copies = Vec::with_capacity(readers.len());
        for (fd, sink) in readers.into_iter().zip(sinks) {
            set_nonblocking(&fd).map_err(|e| ioerr("pipe", e))?;
            let rx = pipe::Receiver::from_owned_fd_unchecked(fd).map_err(|e| ioerr("pipe", e))?;
            copies.push(copy_out(rx, sink, progress.clone()));
        }
        let outputs = futures_join_all(copies);
        let input = async {
            if let (Some(src), Some(w)) = (stdin, stdin_w) {
                copy_in(src, w, tty).await;
            }
            std::future::pending::<()>().await
        };
        let sizes = async {
            if let (Some(rx), Some(m)) = (resize.as_mut(), master.as_ref()) {
                while let Some((w, h)) = rx.recv().await {
                    set_size(m, w, h);
                }
            }
            std::future::pending::<()>().await
        };
        tokio::pin!(outputs, input, sizes);
        let exit = spawned.exit.clone();
        let mut outputs_done = false;
        let ev = loop {
            tokio::select! {
                ev = exit.wait() => break ev,
                _ = &mut outputs, if !outputs_done => outputs_done = true,
                _ = &mut input => {}
                _ = &mut sizes => {}
            }
        };
        // The rest of the output: to its end, or until it has been quiet for a while.
        if !outputs_done {
            let mut seen = progress.load(Ordering::Relaxed);
            loop {
                if tokio::time::timeout(QUIET_AFTER_EXIT, &mut outputs)
                    .await
                    .is_ok()
                {
                    break;
                }
                let now = progress.load(Ordering::Relaxed);
                if now == seen {
                    break;
                }
                seen = now;
            }
        }
        Ok(ev.status.code())
    }
}

/// Waits for every future (a handful; no need for a crate's `join_all`).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futs: Vec<F>) {
    for f in futs {
        f.await;
    }
}

/// A pty: the master (non-blocking, ours) and its slave (the command's stdio). Made in the
/// container's `devpts` (so `tty` names it as the container sees it) when its main process's
/// root has a `/dev/ptmx`, resolved inside that root (a link cannot lead out of it); the
/// host's otherwise.
fn open_pty(main_pid: Option<i32>) -> std::io::Result<(OwnedFd, OwnedFd)> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use rustix::pty::OpenptFlags;
    let in_container = main_pid.and_then(|pid| {
        let root = rustix::fs::open(
            format!("/proc/{pid}/root"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        rustix::fs::openat2(
            &root,
            "dev/ptmx",
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .ok()
    });
    let master = match in_container {
        Some(m) => m,
        None => {
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?
        }
    };
    // A container's file that is not a pty master fails here (unlockpt is TIOCSPTLCK).
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    // TIOCGPTPEER (Linux ≥ 4.13): the slave without a path lookup in /dev/pts.
    let slave = rustix::pty::ioctl_tiocgptpeer(
        &master,
        OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
    )?;
    set_nonblocking(&master)?;
    Ok((master, slave))
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

fn set_size(master: &impl AsFd, width: u16, height: u16) {
    let size = rustix::termios::Winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    if let Err(e) = rustix::termios::tcsetwinsize(master, size) {
        tracing::debug!(error = %e, "setting an exec's terminal size");
    }
}

/// Copies the command's output to the client until EOF (a pty's master reads EIO once every
/// slave is closed). A client that stops taking output does not stop the command: the rest
/// is read and dropped.
async fn copy_out(
    mut rx: pipe::Receiver,
    mut sink: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    progress: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        progress.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(w) = sink.as_mut() {
            let sent = async {
                w.write_all(&buf[..n]).await?;
                w.flush().await
            };
            if sent.await.is_err() {
                sink = None;
            }
        }
    }
    if let Some(w) = sink.as_mut() {
        let _ = w.flush().await;
    }
}

/// Copies the client's stdin to the command; at its end the pipe is closed (the command sees
/// EOF). A pty stays open (kubectl's `-t` stdin ends with the session).
async fn copy_in(mut src: Pin<Box<dyn AsyncRead + Send>>, fd: OwnedFd, tty: bool) {
    let tx = if tty {
        pipe::Sender::from_owned_fd_unchecked(fd)
    } else {
        match set_nonblocking(&fd) {
            Ok(()) => pipe::Sender::from_owned_fd_unchecked(fd),
            Err(e) => Err(e),
        }
    };
    let Ok(mut tx) = tx else { return };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match src.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if tx.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    // Dropping `tx` closes the pipe; for a pty only this duplicate of the master.
}

/// Why a pod has no exec target for a container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecRefusal {
    /// No instance of the container runs now.
    #[error("container not found ({0:?})")]
    NotRunning(String),
}
