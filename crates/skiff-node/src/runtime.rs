//! The `host` runtime class: each container is a process tree run from the
//! host's own filesystem.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use tokio::sync::{mpsc, watch};

use k8s_openapi::api::core::v1::ContainerPort;

use crate::isolation::{ContainerSetup, PreparedSetup};
use crate::launch::{ContainerLaunch, StartError, DEFAULT_PATH};
use crate::logs::{self, LogLine};
use crate::reaper::{ExitStatus, ExitWaiter, Reaper};
use crate::spawn::{build_process, Detach, MonitorLaunch, Process, ProcessSpec};
use crate::termination::{self, MessageFile};
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
    /// The monitor ended without an exit record (it was killed): how the container ended is
    /// not known (R3/S7 "Unknown"); everything of it has been killed since.
    pub status_unknown: bool,
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

    /// [`ExecContext::command`] with `stdin` (else /dev/null); with `terminal`, stdin is a
    /// pty's slave that becomes the process's controlling terminal in a session of its own.
    pub(crate) fn command_stdio(
        &self,
        argv: &[String],
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
        terminal: bool,
    ) -> Result<Process, StartError> {
        let detach = if terminal {
            Detach::Terminal
        } else {
            Detach::Group
        };
        Ok(self
            .command(argv, stdout, stderr)?
            .with_stdin(stdin, detach))
    }
}

/// The `host` runtime: see the crate docs.
#[derive(Clone)]
pub struct HostRuntime {
    reaper: Reaper,
    tracker: Arc<dyn ProcessTracker>,
    /// The `skiff-monitor` executable.
    monitor: CString,
}

impl HostRuntime {
    /// The process-wide reaper and the best tracker available.
    pub fn new() -> std::io::Result<Self> {
        Ok(HostRuntime {
            reaper: Reaper::global()?,
            tracker: tracker::detect(),
            monitor: monitor_cstring()?,
        })
    }

    /// With an explicit tracker (tests, or a resource-aware cgroup driver).
    pub fn with_tracker(tracker: Arc<dyn ProcessTracker>) -> std::io::Result<Self> {
        Ok(HostRuntime {
            reaper: Reaper::global()?,
            tracker,
            monitor: monitor_cstring()?,
        })
    }

    pub fn reaper(&self) -> &Reaper {
        &self.reaper
    }

    pub fn tracker_kind(&self) -> &'static str {
        self.tracker.kind()
    }

    /// Starts a container: see [`ContainerRuntime::start`]. The container runs under its
    /// monitor (`skiff-monitor`, see [`monitor_program`]), which writes its CRI log and its
    /// exit record; `logs` gets a live copy of the lines.
    pub async fn start(
        &self,
        launch: ContainerLaunch,
        setup: ContainerSetup,
        logs: Option<mpsc::Sender<LogLine>>,
    ) -> Result<HostContainer, StartError> {
        self.start_with(launch, setup, logs, None).await
    }

    /// [`HostRuntime::start`], or with `oci` an image container: the monitor's launcher runs
    /// the OCI runtime's `create` instead of the container's process (see
    /// [`crate::oci::runc`]), and the monitor watches the container's init. Everything after
    /// the start (exit record, OOM, termination message, logs, exec context) is the same.
    pub(crate) async fn start_with(
        &self,
        launch: ContainerLaunch,
        setup: ContainerSetup,
        logs: Option<mpsc::Sender<LogLine>>,
        oci: Option<OciProcess>,
    ) -> Result<HostContainer, StartError> {
        let id = match &oci {
            Some(o) => o.id.clone(),
            None => new_container_id(&launch),
        };
        let log_path = launch.log_path();
        let exit_path = launch
            .container_dir()
            .join(format!("{}.exit", launch.restart_count));
        create_container_dir(&launch.container_dir())?;
        // A record left by an earlier skiff for the same instance would be read as this one's.
        let _ = std::fs::remove_file(&exit_path);

        let (cwd, env) = match &oci {
            Some(o) => (o.cwd.clone(), o.env.clone()),
            None => {
                let hostname = setup.hostname.as_deref().unwrap_or(&launch.pod.name);
                (
                    launch
                        .working_dir
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("/")),
                    process_env(&launch, hostname, &id),
                )
            }
        };
        // The termination-message file (created and mounted by the sandbox's setup; read
        // through the descriptor held since its creation once the container has exited).
        let message_file = setup.termination_message.clone();

        let prepared = match &oci {
            // The runtime builds the container's namespaces and mounts from its bundle.
            Some(_) => Arc::new(PreparedSetup::default()),
            None => Arc::new(setup.prepare()?),
        };
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
        let built = match &oci {
            Some(o) => Process::runtime_create(
                &o.program,
                &o.argv,
                &[("PATH".to_string(), DEFAULT_PATH.to_string())],
                &o.bundle,
                &o.pid_file,
                out_w,
                err_w,
            ),
            None => {
                let stdin = if launch.stdin {
                    match open_stdin_fifo(&launch) {
                        Ok(fd) => Some(fd),
                        Err(e) => {
                            release(group).await;
                            return Err(e);
                        }
                    }
                } else {
                    None
                };
                build_process(spec, out_w, err_w).map(|p| p.with_stdin(stdin, Detach::Session))
            }
        };
        let process = match built {
            Ok(p) => p,
            Err(e) => {
                release(group).await;
                return Err(e);
            }
        };
        let (live_ours, live_theirs) = match logs {
            Some(_) => match live_socket() {
                Ok((a, b)) => (Some(a), Some(b)),
                Err(e) => {
                    tracing::warn!(id = %id, error = %e, "no live log socket; lines go to the log file only");
                    (None, None)
                }
            },
            None => (None, None),
        };
        let args = skiff_monitor::Args {
            pid: 0,
            log: log_path.clone(),
            exit: exit_path.clone(),
            max_size: logs::DEFAULT_MAX_SIZE,
            max_files: logs::DEFAULT_MAX_FILES,
            live: live_theirs.is_some(),
        };
        let monitor = match monitor_launch(&self.monitor, &args, out_r, err_r, live_theirs) {
            Ok(m) => m,
            Err(e) => {
                release(group).await;
                return Err(e);
            }
        };
        let started_at = SystemTime::now();
        // The instance is on record before any process of it exists (its PIDs follow once it
        // runs): a skiff killed in between leaves a record the next one finds, so the start
        // is neither lost nor made twice (state module: an interrupted start, its processes
        // found in its cgroup).
        let record_path =
            crate::state::InstanceRecord::path(&launch.container_dir(), launch.restart_count);
        let unknown = crate::state::ProcessRef {
            pid: 0,
            start_ticks: 0,
        };
        let mut record = crate::state::InstanceRecord {
            version: 1,
            pod_uid: launch.pod.uid.clone(),
            container: launch.name.clone(),
            instance: launch.instance,
            attempt: launch.restart_count,
            runtime_id: id.clone(),
            boot_id: crate::state::boot_id(),
            monitor: unknown.clone(),
            main: unknown,
            started_unix_ms: crate::state::unix_ms(started_at),
            log_path: log_path.clone(),
            exit_path: exit_path.clone(),
            cgroup: group.cgroups_path(),
        };
        if let Err(e) = record.write(&record_path) {
            tracing::warn!(id = %id, path = %record_path.display(), "writing the instance record: {e}");
        }
        // Consumes the process: the write ends now live in the container only.
        let spawned = match process.spawn_monitored(&self.reaper, &id, monitor) {
            Ok(s) => s,
            Err(e) => {
                // Nothing of it runs: no record either.
                let _ = std::fs::remove_file(&record_path);
                release(group).await;
                return Err(match &oci {
                    Some(o) => crate::oci::runc::create_error(o.handler, &o.log, e),
                    None => spawn_error(&launch.argv, e),
                });
            }
        };
        let pid = spawned.container_pid;
        let monitor_pid = spawned.monitor.pid;
        group.set_leader(pid);
        let pidfd = open_child_pidfd(pid, monitor_pid);
        // Probes and hooks enter the container's namespaces, its mount namespace included.
        let netns = setup.namespaces.as_ref().and_then(|j| j.net());
        let mut exec_base = setup.clone();
        if let Some(o) = &oci {
            // An image container has its own mount namespace (and PID namespace unless it
            // shares the pod's): for_exec enters the init's.
            exec_base.mounts = Some(Vec::new());
            exec_base.own_pid_namespace = o.own_pid_namespace;
        }
        let exec_setup = match exec_base.for_exec(pid).prepare() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(id = %id, error = %e, "preparing the exec setup");
                PreparedSetup::default()
            }
        };
        tracing::debug!(id = %id, pid, monitor_pid, tracker = self.tracker.kind(), "container started");
        // The instance's record with its processes, for whoever comes after this process.
        record.monitor =
            crate::state::ProcessRef::of(monitor_pid).unwrap_or(crate::state::ProcessRef {
                pid: monitor_pid,
                start_ticks: 0,
            });
        record.main = crate::state::ProcessRef::of(pid).unwrap_or(crate::state::ProcessRef {
            pid,
            start_ticks: 0,
        });
        if let Err(e) = record.write(&record_path) {
            tracing::warn!(id = %id, path = %record_path.display(), "writing the instance record: {e}");
        }

        let live_task = match (live_ours, logs) {
            (Some(sock), Some(tx)) => {
                let name: Arc<str> = Arc::from(launch.name.as_str());
                match forward_live(sock, name, tx) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::warn!(id = %id, error = %e, "reading the live log socket");
                        None
                    }
                }
            }
            _ => None,
        };

        let (exit_tx, exit_rx) = watch::channel(None);
        let (cleaned_tx, cleaned_rx) = watch::channel(false);
        let watcher = ExitWatcher {
            id: id.clone(),
            pid,
            monitor: spawned.monitor.exit.clone(),
            monitor_status: Some(spawned.monitor_status),
            exit_path,
            group: group.clone(),
            live: live_task,
            started_at,
            message_file,
            policy: launch.termination_message_policy,
            log_path: log_path.clone(),
        };
        tokio::spawn(watcher.run(exit_tx, cleaned_tx));

        Ok(HostContainer {
            inner: Arc::new(Inner {
                id: id.clone(),
                pid,
                monitor_pid,
                pidfd,
                started_at,
                group: group.clone(),
                monitor_exit: spawned.monitor.exit,
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
                    mounts: match &oci {
                        // Commands are looked up in the container's root filesystem and volumes.
                        Some(o) => o.exec_view.clone(),
                        None => setup.mounts.clone().unwrap_or_default(),
                    },
                },
            }),
        })
    }
}

/// An image container's process environment, working directory and exec view (from its
/// bundle's config.json).
pub(crate) type OciExecView = (
    Vec<(String, String)>,
    PathBuf,
    Vec<crate::isolation::MountSpec>,
);

/// The exec context (probes, hooks) of an instance an earlier process started, whose main
/// process is `pid`: `setup` from its adopted sandbox (`PodSandbox::exec_setup`), the same
/// environment its start computed (again from its spec), the instance's own namespaces
/// entered through its main process. `oci`: an image container's environment, working
/// directory and exec view (from its bundle). No tracking group: commands get a process group
/// of their own, as without cgroups.
pub(crate) fn adopted_exec_context(
    id: &str,
    launch: &ContainerLaunch,
    setup: ContainerSetup,
    pid: i32,
    oci: Option<OciExecView>,
) -> ExecContext {
    let netns = setup.namespaces.as_ref().and_then(|j| j.net());
    let (env, cwd, mounts) = match oci {
        Some(o) => o,
        None => {
            let hostname = setup.hostname.as_deref().unwrap_or(&launch.pod.name);
            (
                process_env(launch, hostname, id),
                launch
                    .working_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("/")),
                setup.mounts.clone().unwrap_or_default(),
            )
        }
    };
    let exec_setup = match setup.for_exec(pid).prepare() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(id = %id, error = %e, "preparing the exec setup of an adopted container");
            PreparedSetup::default()
        }
    };
    ExecContext {
        container_id: id.to_string(),
        container_name: launch.name.clone(),
        env,
        working_dir: cwd,
        ports: launch.ports.clone(),
        host: "127.0.0.1".into(),
        group: None,
        setup: Arc::new(exec_setup),
        netns,
        mounts,
    }
}

/// What [`HostRuntime::start_with`] needs to run an image container through an OCI runtime.
#[derive(Debug, Clone)]
pub(crate) struct OciProcess {
    /// The container's ID (runc's too).
    pub id: String,
    /// The runtime executable and its full `create` command line (`argv[0]` first).
    pub program: PathBuf,
    pub argv: Vec<String>,
    pub bundle: PathBuf,
    pub pid_file: PathBuf,
    /// The runtime's `--log` (its last error is the start failure's message).
    pub log: PathBuf,
    pub handler: &'static str,
    /// The container process's environment and working directory (for exec probes and hooks).
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub own_pid_namespace: bool,
    /// `/` = the root filesystem on the host, then the container's volume mounts: where exec
    /// commands are looked up.
    pub exec_view: Vec<crate::isolation::MountSpec>,
}

/// The container's directory under the pod's (0750, as the logs always had).
fn create_container_dir(dir: &Path) -> Result<(), StartError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o750);
    b.create(dir)
        .map_err(|e| StartError::io(format!("creating {}", dir.display()), e))
}

/// Where the monitor executable is: `$SKIFF_MONITOR`, else `skiff-monitor` beside the running
/// executable (an installed skiff), else one directory up (test executables under
/// `target/*/deps/`).
pub fn monitor_program() -> std::io::Result<PathBuf> {
    if let Some(p) = std::env::var_os(MONITOR_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        // Said now, once, rather than as every container's start failing later.
        if !p.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{MONITOR_ENV}={}: no such file", p.display()),
            ));
        }
        return Ok(p);
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join(MONITOR_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent();
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!(
            "{MONITOR_NAME} not found beside {} (install it with skiff, or set {MONITOR_ENV})",
            exe.display()
        ),
    ))
}

/// The monitor executable's name.
pub const MONITOR_NAME: &str = "skiff-monitor";
/// Overrides where the monitor executable is.
pub const MONITOR_ENV: &str = "SKIFF_MONITOR";

fn monitor_launch(
    program: &CString,
    args: &skiff_monitor::Args,
    stdout: OwnedFd,
    stderr: OwnedFd,
    live: Option<OwnedFd>,
) -> Result<MonitorLaunch, StartError> {
    use std::os::unix::ffi::OsStrExt;
    let mut argv = vec![CString::from(c"skiff-monitor")];
    for a in args.to_argv() {
        argv.push(
            CString::new(a.as_bytes())
                .map_err(|_| StartError::Config("a log path contains a NUL byte".into()))?,
        );
    }
    Ok(MonitorLaunch {
        program: program.clone(),
        argv,
        stdout,
        stderr,
        live,
    })
}

/// A connected `SOCK_SEQPACKET` pair: whole messages, and an end of stream when the monitor
/// is gone.
fn live_socket() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )
    .map_err(std::io::Error::from)
}

/// Reads the monitor's live copies (whole CRI records per message) into `LogLine`s for the
/// subscriber; never waits for it (a full channel drops the line). Ends when the monitor
/// closes its end, i.e. after the container's last line.
fn forward_live(
    sock: OwnedFd,
    container: Arc<str>,
    tx: mpsc::Sender<LogLine>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let fd = crate::sys::fd::Pollable::new(sock, tokio::io::Interest::READABLE)?;
    Ok(tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return;
            };
            let r = guard.try_io(|inner| {
                nix::sys::socket::recv(
                    inner.as_raw_fd(),
                    &mut buf,
                    nix::sys::socket::MsgFlags::MSG_DONTWAIT,
                )
                .map_err(std::io::Error::from)
            });
            let n = match r {
                Ok(Ok(0)) => return,
                Ok(Ok(n)) => n,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(Err(_)) => return,
                Err(_would_block) => continue,
            };
            for rec in buf[..n].split(|&b| b == b'\n').filter(|r| !r.is_empty()) {
                let Some(r) = logs::parse_cri(rec) else {
                    continue;
                };
                let line = LogLine {
                    container: container.clone(),
                    stream: r.stream,
                    partial: r.partial,
                    content: String::from_utf8_lossy(r.content).into_owned(),
                    timestamp: system_time(r.timestamp),
                };
                let _ = tx.try_send(line);
            }
        }
    }))
}

fn system_time(t: k8s_openapi::jiff::Timestamp) -> SystemTime {
    let nanos = t.as_nanosecond();
    if nanos <= 0 {
        return UNIX_EPOCH;
    }
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// A pidfd for `pid`, the monitor's child: signals then reach that process even if its PID
/// is reused after it is reaped. The parent check guards the window between the monitor
/// reaping a container that died at once and this open.
fn open_child_pidfd(pid: i32, monitor: i32) -> Option<OwnedFd> {
    let p = rustix::process::Pid::from_raw(pid)?;
    let fd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold anything, so parse after the last ')'.
    let after = stat.rsplit_once(')')?.1;
    let ppid: i32 = after.split_whitespace().nth(1)?.parse().ok()?;
    (ppid == monitor).then_some(fd)
}

fn monitor_cstring() -> std::io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    let p = monitor_program()?;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("the monitor's path contains a NUL byte"))
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

/// The FIFO a `stdin: true` container reads (see [`ContainerLaunch::stdin`]), opened for
/// reading and writing: the container never sees EOF between attaches (kube's default
/// `stdinOnce: false`), and `kubectl attach -i` opens it to write.
pub fn stdin_fifo_path(container_dir: &Path, restart_count: u32) -> PathBuf {
    container_dir.join(format!("{restart_count}.stdin"))
}

fn open_stdin_fifo(launch: &ContainerLaunch) -> Result<OwnedFd, StartError> {
    let path = stdin_fifo_path(&launch.container_dir(), launch.restart_count);
    let _ = std::fs::remove_file(&path);
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| StartError::io("creating the stdin FIFO", e.into()))?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| StartError::io("opening the stdin FIFO", e))?;
    Ok(f.into())
}

fn pipe_pair() -> Result<(OwnedFd, OwnedFd), StartError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| StartError::io("creating a pipe", e.into()))
}

/// The container process environment: runtime defaults (`PATH`, `HOSTNAME`,
/// `HOME`), then the container's env (overriding), then skiff's own markers.
fn process_env(launch: &ContainerLaunch, hostname: &str, id: &str) -> Vec<(String, String)> {
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

/// Waits for the monitor to finish and turns its exit record into the [`ContainerExit`].
struct ExitWatcher {
    id: String,
    pid: i32,
    monitor: ExitWaiter,
    /// The launcher's status pipe: says whether the monitor could be started.
    monitor_status: Option<std::fs::File>,
    exit_path: PathBuf,
    group: Arc<dyn TrackedGroup>,
    live: Option<tokio::task::JoinHandle<()>>,
    started_at: SystemTime,
    message_file: Option<MessageFile>,
    policy: crate::launch::TerminationMessagePolicy,
    log_path: PathBuf,
}

impl ExitWatcher {
    async fn run(mut self, tx: watch::Sender<Option<ContainerExit>>, cleaned: watch::Sender<bool>) {
        if let Some(status) = self.monitor_status.take() {
            // Ends as soon as the monitor exec'd; if it could not, its launcher has killed the
            // container and the end below is reported as unknown.
            if let Ok(Err(e)) =
                tokio::task::spawn_blocking(move || crate::spawn::monitor_started(status)).await
            {
                tracing::error!(id = %self.id, "{e}");
            }
        }
        let monitor = self.monitor.wait().await;
        let path = self.exit_path.clone();
        let record = tokio::task::spawn_blocking(move || skiff_monitor::ExitRecord::read(&path))
            .await
            .unwrap_or_else(|e| Err(skiff_monitor::record::RecordError::Invalid(e.to_string())));
        let record = match record {
            Ok(Some(r)) if r.pid == self.pid => Some(r),
            Ok(Some(r)) => {
                tracing::warn!(id = %self.id, path = %self.exit_path.display(), pid = r.pid, "exit record of another process");
                None
            }
            Ok(None) => {
                tracing::warn!(id = %self.id, monitor = ?monitor.status, "the container's monitor ended without an exit record; its status is unknown");
                None
            }
            Err(e) => {
                tracing::warn!(id = %self.id, path = %self.exit_path.display(), "{e}");
                None
            }
        };
        // ST4 OOMKilled: the main process got SIGKILL and its cgroup saw an OOM kill. The
        // kernel counts the kill before the victim can be reaped, so this read is not racy.
        let status = record.as_ref().map(|r| r.status);
        let oom_killed = status.and_then(ExitStatus::signal) == Some(Signal::SIGKILL as i32)
            && self.group.oom_killed();
        // Like a container's PID namespace: when the main process is gone, whatever it left
        // behind dies too (the monitor killed its descendants; this also catches anything
        // that left its tree but not its cgroup, and everything when the monitor was killed).
        if let Err(e) = self.group.signal_all(Signal::SIGKILL) {
            tracing::warn!(id = %self.id, error = %e, "killing the rest of the container");
        }
        // The monitor is gone, so its live socket has reached its end: what is queued is all.
        if let Some(live) = self.live {
            let abort = live.abort_handle();
            if tokio::time::timeout(LOG_DRAIN_TIMEOUT, live).await.is_err() {
                abort.abort();
            }
        }
        let exit = match (record, status) {
            (Some(r), Some(status)) => {
                let code = status.code();
                let (file, policy, log_path) = (self.message_file, self.policy, self.log_path);
                let message = tokio::task::spawn_blocking(move || {
                    termination::collect(file.as_ref(), policy, code, &log_path)
                })
                .await
                .unwrap_or_default();
                ContainerExit {
                    id: self.id,
                    pid: self.pid,
                    status,
                    exit_code: code,
                    started_at: self.started_at,
                    finished_at: r.finished_at,
                    message,
                    oom_killed,
                    status_unknown: false,
                }
            }
            _ => ContainerExit {
                id: self.id,
                pid: self.pid,
                status: ExitStatus::Signaled(Signal::SIGKILL as i32),
                exit_code: 128 + Signal::SIGKILL as i32,
                started_at: self.started_at,
                finished_at: monitor.finished_at,
                message: String::new(),
                oom_killed: false,
                status_unknown: true,
            },
        };
        tx.send_replace(Some(exit));
        // The tree has been sent SIGKILL; waiting for the group to empty and removing it
        // takes the kernel a few ms (cgroup `populated` updates), so it happens after the
        // exit is reported.
        release(self.group).await;
        cleaned.send_replace(true);
    }
}

struct Inner {
    id: String,
    /// The container's main process.
    pid: i32,
    /// Its monitor (skiff's child).
    monitor_pid: i32,
    /// A pidfd for the main process, when one could be opened while it was the monitor's.
    pidfd: Option<OwnedFd>,
    started_at: SystemTime,
    group: Arc<dyn TrackedGroup>,
    monitor_exit: ExitWaiter,
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
    /// The container's monitor process.
    pub fn monitor_pid(&self) -> i32 {
        self.inner.monitor_pid
    }
    /// The reaper's notification for the monitor, which ends once the container has exited
    /// and its output is logged (before the exit record is read and the tracking group
    /// released).
    pub fn main_exit(&self) -> &ExitWaiter {
        &self.inner.monitor_exit
    }
    /// Whether the container has ended (its monitor is done).
    pub fn main_exited(&self) -> bool {
        self.inner.monitor_exit.try_get().is_some()
    }

    pub fn signal(&self, sig: StopSignal) -> Result<(), NodeError> {
        if self.main_exited() {
            return Ok(());
        }
        let err = |e: std::io::Error| NodeError::Signal {
            id: self.inner.id.clone(),
            source: e,
        };
        let main = |sig: Signal| -> Result<(), NodeError> {
            // Through the pidfd: the PID could name another process once the monitor has
            // reaped the container. Without one (it died at once) there is nothing to signal.
            let Some(fd) = self.inner.pidfd.as_ref() else {
                return Ok(());
            };
            let sig = rustix::process::Signal::from_named_raw(sig as i32)
                .unwrap_or(rustix::process::Signal::KILL);
            match rustix::process::pidfd_send_signal(fd, sig) {
                Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
                Err(e) => Err(err(e.into())),
            }
        };
        match sig {
            StopSignal::Term => main(Signal::SIGTERM),
            StopSignal::Kill => {
                self.inner.group.signal_all(Signal::SIGKILL).map_err(err)?;
                main(Signal::SIGKILL)
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
                // The watcher task was dropped (runtime shut down): the status is unknown.
                let ev = self.inner.monitor_exit.wait().await;
                return ContainerExit {
                    id: self.inner.id.clone(),
                    pid: self.inner.pid,
                    status: ExitStatus::Signaled(Signal::SIGKILL as i32),
                    exit_code: 128 + Signal::SIGKILL as i32,
                    started_at: self.inner.started_at,
                    finished_at: ev.finished_at,
                    message: String::new(),
                    oom_killed: false,
                    status_unknown: true,
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
