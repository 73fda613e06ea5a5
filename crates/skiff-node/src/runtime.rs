//! The `host` runtime class: each container is a process tree run from the
//! host's own filesystem.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};

use k8s_openapi::api::core::v1::ContainerPort;

use crate::isolation::{ContainerSetup, PreparedSetup};
use crate::launch::{ContainerLaunch, StartError, DEFAULT_PATH, DEFAULT_TERMINATION_MESSAGE_PATH};
use crate::logs::{self, LogLine, LogSink, RotatingLog, Stream};
use crate::reaper::{ExitStatus, ExitWaiter, Reaper};
use crate::spawn::{build_process, Detach, Process, ProcessSpec};
use crate::termination::{self, TERMINATION_LOG_ENV};
use crate::tracker::{self, ProcessTracker, TrackedGroup, MARKER_ENV};

/// How long the log readers may take to reach EOF after the tree was killed.
const LOG_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long releasing a tracking group may take.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of runtime operations other than start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("signalling container {id}: {source}")]
    Signal {
        id: String,
        #[source]
        source: std::io::Error,
    },
}

/// Signals the worker asks for. `Term` is the stop signal (SIGTERM until
/// images' STOPSIGNAL exist) and goes to the container's main process, as a
/// runtime signals a container's PID 1. `Kill` kills the whole tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Term,
    Kill,
}

/// A container instance that has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerExit {
    pub id: String,
    pub pid: i32,
    pub status: ExitStatus,
    /// `status.code()`: the exit code, or 128 + signal.
    pub exit_code: i32,
    pub started_at: SystemTime,
    /// When the main process was reaped.
    pub finished_at: SystemTime,
    /// ST4 termination message (empty when none).
    pub message: String,
    /// The main process died of SIGKILL and the container's memory cgroup counted an OOM
    /// kill (never guessed from the exit code alone).
    pub oom_killed: bool,
}

impl ContainerExit {
    /// ST4: `OOMKilled` when the kernel OOM killer killed it, else `Completed` for 0 and
    /// `Error` otherwise.
    pub fn reason(&self) -> &'static str {
        if self.oom_killed {
            "OOMKilled"
        } else if self.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }
}

/// Starts containers.
pub trait ContainerRuntime: Send + Sync + 'static {
    type Container: ContainerHandle;
    /// Starts one container instance; resolves once its process runs.
    fn start(
        &self,
        launch: ContainerLaunch,
        setup: ContainerSetup,
        logs: Option<mpsc::Sender<LogLine>>,
    ) -> impl Future<Output = Result<Self::Container, StartError>> + Send;
}

/// A started container instance.
pub trait ContainerHandle: Send + Sync + 'static {
    fn id(&self) -> &str;
    fn started_at(&self) -> SystemTime;
    /// Sends the signal; not an error if the container already exited.
    fn signal(&self, sig: StopSignal) -> Result<(), NodeError>;
    /// Resolves when the container has exited, its logs are flushed, and its
    /// termination message read. Can be awaited from many places.
    fn wait(&self) -> impl Future<Output = ContainerExit> + Send;
    /// The exit, if it has happened.
    fn try_exit(&self) -> Option<ContainerExit>;
}

/// What probes and hooks need to run commands "in" a container.
#[derive(Debug, Clone)]
pub struct ExecContext {
    pub container_id: String,
    pub container_name: String,
    /// The full process environment of the container.
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
    pub ports: Vec<ContainerPort>,
    /// Default host for httpGet/tcpSocket/grpc (127.0.0.1 on the host runtime).
    pub host: String,
    pub group: Option<Arc<dyn TrackedGroup>>,
    /// What commands run "in" the container enter first (its namespaces, credentials).
    pub setup: Arc<PreparedSetup>,
    /// The pod's network namespace; httpGet/tcpSocket/grpc connect from inside it.
    pub netns: Option<Arc<OwnedFd>>,
    /// The container's mounts (exec commands are looked up as the container sees its files).
    pub mounts: Vec<crate::isolation::MountSpec>,
}

impl ExecContext {
    /// A command run "in" the container (exec probes and hooks): the
    /// container's environment and working directory, its tracking group, and
    /// a process group of its own so a timeout can kill all of it.
    pub(crate) fn command(
        &self,
        argv: &[String],
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> Result<Process, StartError> {
        let spec = ProcessSpec {
            argv,
            env: &self.env,
            cwd: &self.working_dir,
            group: self.group.as_ref(),
            detach: Detach::Group,
            setup: self.setup.clone(),
            mounts: &self.mounts,
        };
        build_process(spec, stdout, stderr)
    }
}

/// The `host` runtime: see the crate docs.
#[derive(Clone)]
pub struct HostRuntime {
    reaper: Reaper,
    tracker: Arc<dyn ProcessTracker>,
}

impl HostRuntime {
    /// The process-wide reaper and the best tracker available.
    pub fn new() -> std::io::Result<Self> {
        Ok(HostRuntime {
            reaper: Reaper::global()?,
            tracker: tracker::detect(),
        })
    }

    /// With an explicit tracker (tests, or a resource-aware cgroup driver).
    pub fn with_tracker(tracker: Arc<dyn ProcessTracker>) -> std::io::Result<Self> {
        Ok(HostRuntime {
            reaper: Reaper::global()?,
            tracker,
        })
    }

    pub fn reaper(&self) -> &Reaper {
        &self.reaper
    }

    pub fn tracker_kind(&self) -> &'static str {
        self.tracker.kind()
    }

    /// Starts a container: see [`ContainerRuntime::start`].
    pub async fn start(
        &self,
        launch: ContainerLaunch,
        setup: ContainerSetup,
        logs: Option<mpsc::Sender<LogLine>>,
    ) -> Result<HostContainer, StartError> {
        let id = new_container_id(&launch);
        let dir = launch.container_dir();
        let log_path = launch.log_path();
        let log = RotatingLog::create(&log_path, logs::DEFAULT_MAX_SIZE, logs::DEFAULT_MAX_FILES)
            .map_err(|e| StartError::io(format!("creating log {}", log_path.display()), e))?;
        let log = Arc::new(log);

        // Termination message file (see `termination` module docs).
        let (msg_path, msg_after) =
            if launch.termination_message_path == DEFAULT_TERMINATION_MESSAGE_PATH {
                let p = dir.join(format!("{}.termination-log", launch.restart_count));
                std::fs::write(&p, b"")
                    .map_err(|e| StartError::io(format!("creating {}", p.display()), e))?;
                // Writable whatever runAsUser is, despite the umask (kubelet's makeMounts).
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666))
                    .map_err(|e| StartError::io(format!("chmod {}", p.display()), e))?;
                (p, None)
            } else {
                {
                    let p = PathBuf::from(&launch.termination_message_path);
                    let stamp = termination::FileStamp::of(&p);
                    (p, Some(stamp))
                }
            };

        let cwd = launch
            .working_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/"));
        let hostname = setup.hostname.as_deref().unwrap_or(&launch.pod.name);
        let env = process_env(&launch, hostname, &id, &msg_path);
        // readOnlyRootFilesystem: the termination message file stays writable, bound onto
        // itself (the kubelet bind-mounts it too, `makeMounts`).
        let mut setup = setup;
        if let (true, Some(mounts)) = (setup.read_only_root, setup.mounts.as_mut()) {
            if msg_after.is_none() {
                mounts.push(crate::isolation::MountSpec {
                    source: msg_path.clone(),
                    target: msg_path.clone(),
                    read_only: false,
                    propagation: crate::isolation::Propagation::Private,
                    ..Default::default()
                });
            }
        }

        let prepared = Arc::new(setup.prepare()?);
        let group = match setup.group.clone() {
            Some(g) => g,
            None => self
                .tracker
                .create(&id)
                .map_err(|e| StartError::io("creating the tracking group", e))?,
        };
        let (out_r, out_w) = pipe_pair()?;
        let (err_r, err_w) = pipe_pair()?;
        let spec = ProcessSpec {
            argv: &launch.argv,
            env: &env,
            cwd: &cwd,
            group: Some(&group),
            detach: Detach::Session,
            setup: prepared,
            mounts: setup.mounts.as_deref().unwrap_or(&[]),
        };
        let built = build_process(spec, out_w, err_w);
        let process = match built {
            Ok(p) => p,
            Err(e) => {
                release(group).await;
                return Err(e);
            }
        };
        let started_at = SystemTime::now();
        // Consumes the process: the write ends now live in the child only.
        let spawned = match process.spawn(&self.reaper, &id) {
            Ok(s) => s,
            Err(e) => {
                release(group).await;
                return Err(spawn_error(&launch.argv, e));
            }
        };
        group.set_leader(spawned.pid);
        // Probes and hooks enter the container's namespaces, its mount namespace included.
        let netns = setup.namespaces.as_ref().and_then(|j| j.net());
        let exec_setup = match setup.for_exec(spawned.pid).prepare() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(id = %id, error = %e, "preparing the exec setup");
                PreparedSetup::default()
            }
        };
        tracing::debug!(id = %id, pid = spawned.pid, tracker = self.tracker.kind(), "container started");

        let name: Arc<str> = Arc::from(launch.name.as_str());
        let sink = LogSink {
            log: log.clone(),
            container: name,
            subscriber: logs,
        };
        let out_task = spawn_pump(out_r, Stream::Stdout, sink.clone())?;
        let err_task = spawn_pump(err_r, Stream::Stderr, sink)?;

        let (exit_tx, exit_rx) = watch::channel(None);
        let (cleaned_tx, cleaned_rx) = watch::channel(false);
        let monitor = Monitor {
            id: id.clone(),
            exit: spawned.exit.clone(),
            group: group.clone(),
            pumps: vec![out_task, err_task],
            started_at,
            msg_path,
            msg_after,
            policy: launch.termination_message_policy,
            log_path: log_path.clone(),
        };
        tokio::spawn(monitor.run(exit_tx, cleaned_tx));

        Ok(HostContainer {
            inner: Arc::new(Inner {
                id: id.clone(),
                pid: spawned.pid,
                started_at,
                group: group.clone(),
                main_exit: spawned.exit,
                exit: exit_rx,
                cleaned: cleaned_rx,
                log_path,
                exec: ExecContext {
                    container_id: id,
                    container_name: launch.name.clone(),
                    env,
                    working_dir: cwd,
                    ports: launch.ports.clone(),
                    host: "127.0.0.1".into(),
                    group: Some(group),
                    setup: Arc::new(exec_setup),
                    netns,
                    mounts: setup.mounts.clone().unwrap_or_default(),
                },
            }),
        })
    }
}

impl ContainerRuntime for HostRuntime {
    type Container = HostContainer;

    fn start(
        &self,
        launch: ContainerLaunch,
        setup: ContainerSetup,
        logs: Option<mpsc::Sender<LogLine>>,
    ) -> impl Future<Output = Result<HostContainer, StartError>> + Send {
        HostRuntime::start(self, launch, setup, logs)
    }
}

fn spawn_error(argv: &[String], e: std::io::Error) -> StartError {
    let name = argv.first().cloned().unwrap_or_default();
    match e.raw_os_error() {
        Some(libc_enoent) if libc_enoent == Errno::ENOENT as i32 => {
            StartError::NoSuchFile { path: name }
        }
        Some(eacces) if eacces == Errno::EACCES as i32 => {
            StartError::PermissionDenied { path: name }
        }
        _ => StartError::io(format!("starting {name:?}"), e),
    }
}

async fn release(group: Arc<dyn TrackedGroup>) {
    if let Err(e) = group.remove(REMOVE_TIMEOUT).await {
        tracing::warn!(id = group.id(), error = %e, "releasing tracking group");
    }
}

fn pipe_pair() -> Result<(OwnedFd, OwnedFd), StartError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| StartError::io("creating a pipe", e.into()))
}

fn spawn_pump(
    fd: OwnedFd,
    stream: Stream,
    sink: LogSink,
) -> Result<tokio::task::JoinHandle<()>, StartError> {
    let rx =
        pipe::Receiver::from_owned_fd(fd).map_err(|e| StartError::io("registering a pipe", e))?;
    Ok(tokio::spawn(logs::pump(rx, stream, sink)))
}

/// The container process environment: runtime defaults (`PATH`, `HOSTNAME`,
/// `HOME`), then the container's env (overriding), then skiff's own markers.
fn process_env(
    launch: &ContainerLaunch,
    hostname: &str,
    id: &str,
    msg_path: &Path,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOSTNAME".into(), hostname.to_string()),
        (
            "HOME".into(),
            std::env::var("HOME").unwrap_or_else(|_| "/".into()),
        ),
    ];
    for (k, v) in &launch.env {
        if let Some(slot) = env.iter_mut().find(|(ek, _)| ek == k) {
            slot.1 = v.clone();
        } else {
            env.push((k.clone(), v.clone()));
        }
    }
    env.push((TERMINATION_LOG_ENV.into(), msg_path.display().to_string()));
    env.push((MARKER_ENV.into(), id.to_string()));
    env
}

fn new_container_id(launch: &ContainerLaunch) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // Unique across skiff processes too (pid), short enough for a cgroup name.
    let uid: String = launch.pod.uid.chars().take(8).collect();
    format!(
        "{uid}-{}-{}-{:x}{:x}{:x}",
        launch.name,
        launch.restart_count,
        std::process::id(),
        seq,
        nanos & 0xffff_ffff
    )
}

struct Monitor {
    id: String,
    exit: ExitWaiter,
    group: Arc<dyn TrackedGroup>,
    pumps: Vec<tokio::task::JoinHandle<()>>,
    started_at: SystemTime,
    msg_path: PathBuf,
    msg_after: Option<Option<termination::FileStamp>>,
    policy: crate::launch::TerminationMessagePolicy,
    log_path: PathBuf,
}

impl Monitor {
    async fn run(self, tx: watch::Sender<Option<ContainerExit>>, cleaned: watch::Sender<bool>) {
        let ev = self.exit.wait().await;
        // ST4 OOMKilled: the main process got SIGKILL and its cgroup saw an OOM kill. The
        // kernel counts the kill before the victim can be reaped, so this read is not racy.
        let oom_killed =
            ev.status.signal() == Some(Signal::SIGKILL as i32) && self.group.oom_killed();
        // Like a container's PID namespace: when the main process is gone,
        // whatever it left behind dies too.
        if let Err(e) = self.group.signal_all(Signal::SIGKILL) {
            tracing::warn!(id = %self.id, error = %e, "killing the rest of the container");
        }
        for p in self.pumps {
            let abort = p.abort_handle();
            if tokio::time::timeout(LOG_DRAIN_TIMEOUT, p).await.is_err() {
                tracing::warn!(id = %self.id, "log pipe still open after the tree was killed");
                abort.abort();
            }
        }
        let code = ev.status.code();
        let (msg_path, after, policy, log_path) =
            (self.msg_path, self.msg_after, self.policy, self.log_path);
        let message = tokio::task::spawn_blocking(move || {
            termination::collect(&msg_path, after, policy, code, &log_path)
        })
        .await
        .unwrap_or_default();
        let exit = ContainerExit {
            id: self.id,
            pid: ev.pid,
            status: ev.status,
            exit_code: code,
            started_at: self.started_at,
            finished_at: ev.finished_at,
            message,
            oom_killed,
        };
        tx.send_replace(Some(exit));
        // The tree has been sent SIGKILL; waiting for the group to empty and
        // removing it takes the kernel a few ms (cgroup `populated` updates),
        // so it happens after the exit is reported.
        release(self.group).await;
        cleaned.send_replace(true);
    }
}

struct Inner {
    id: String,
    pid: i32,
    started_at: SystemTime,
    group: Arc<dyn TrackedGroup>,
    main_exit: ExitWaiter,
    exit: watch::Receiver<Option<ContainerExit>>,
    cleaned: watch::Receiver<bool>,
    log_path: PathBuf,
    exec: ExecContext,
}

/// A running (or finished) host-runtime container.
#[derive(Clone)]
pub struct HostContainer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HostContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostContainer")
            .field("id", &self.inner.id)
            .field("pid", &self.inner.pid)
            .finish()
    }
}

impl HostContainer {
    pub fn id(&self) -> &str {
        &self.inner.id
    }
    /// The container's main process.
    pub fn pid(&self) -> i32 {
        self.inner.pid
    }
    pub fn started_at(&self) -> SystemTime {
        self.inner.started_at
    }
    /// The live CRI log file.
    pub fn log_path(&self) -> &Path {
        &self.inner.log_path
    }
    /// For probes and hooks.
    pub fn exec_context(&self) -> &ExecContext {
        &self.inner.exec
    }
    /// Processes currently in the container's tracking group.
    pub fn pids(&self) -> Vec<i32> {
        self.inner.group.pids()
    }
    /// The reaper's raw notification for the main process (before logs are
    /// drained and the tracking group released).
    pub fn main_exit(&self) -> &ExitWaiter {
        &self.inner.main_exit
    }
    /// Whether the main process has been reaped.
    pub fn main_exited(&self) -> bool {
        self.inner.main_exit.try_get().is_some()
    }

    pub fn signal(&self, sig: StopSignal) -> Result<(), NodeError> {
        if self.main_exited() {
            return Ok(());
        }
        let err = |e: std::io::Error| NodeError::Signal {
            id: self.inner.id.clone(),
            source: e,
        };
        match sig {
            StopSignal::Term => match kill(Pid::from_raw(self.inner.pid), Signal::SIGTERM) {
                Ok(()) | Err(Errno::ESRCH) => Ok(()),
                Err(e) => Err(err(e.into())),
            },
            StopSignal::Kill => {
                self.inner.group.signal_all(Signal::SIGKILL).map_err(err)?;
                match kill(Pid::from_raw(self.inner.pid), Signal::SIGKILL) {
                    Ok(()) | Err(Errno::ESRCH) => Ok(()),
                    Err(e) => Err(err(e.into())),
                }
            }
        }
    }

    pub async fn wait(&self) -> ContainerExit {
        let mut rx = self.inner.exit.clone();
        loop {
            if let Some(e) = rx.borrow_and_update().clone() {
                return e;
            }
            if rx.changed().await.is_err() {
                if let Some(e) = rx.borrow().clone() {
                    return e;
                }
                // The monitor task was dropped (runtime shut down).
                let ev = self.inner.main_exit.wait().await;
                return ContainerExit {
                    id: self.inner.id.clone(),
                    pid: ev.pid,
                    status: ev.status,
                    exit_code: ev.status.code(),
                    started_at: self.inner.started_at,
                    finished_at: ev.finished_at,
                    message: String::new(),
                    oom_killed: false,
                };
            }
        }
    }

    pub fn try_exit(&self) -> Option<ContainerExit> {
        self.inner.exit.borrow().clone()
    }

    /// Resolves after the exit, once every process of the container is gone
    /// and its tracking group (cgroup) has been removed. `skiff run` awaits
    /// this before exiting so nothing is left behind.
    pub async fn cleaned_up(&self) {
        let mut rx = self.inner.cleaned.clone();
        // An Err means the monitor is gone (runtime shut down): nothing to wait for.
        let _ = rx.wait_for(|done| *done).await;
    }
}

impl ContainerHandle for HostContainer {
    fn id(&self) -> &str {
        HostContainer::id(self)
    }
    fn started_at(&self) -> SystemTime {
        HostContainer::started_at(self)
    }
    fn signal(&self, sig: StopSignal) -> Result<(), NodeError> {
        HostContainer::signal(self, sig)
    }
    fn wait(&self) -> impl Future<Output = ContainerExit> + Send {
        HostContainer::wait(self)
    }
    fn try_exit(&self) -> Option<ContainerExit> {
        HostContainer::try_exit(self)
    }
}
