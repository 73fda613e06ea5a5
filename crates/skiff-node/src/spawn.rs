//! Starting a container process (or an exec probe/hook "in" a container).
//!
//! Two ways, same result:
//! * **Into a cgroup at fork** (`clone3` with `CLONE_INTO_CGROUP`, Linux ≥ 5.7), when the
//!   tracking group is a cgroup2 directory: the child is born in the container's cgroup.
//!   Moving a process by writing `cgroup.procs` takes the kernel's global
//!   `cgroup_threadgroup_rwsem` for writing, which waits for an RCU grace period: 10–30 ms
//!   per container start on an idle machine. Creating it there costs nothing extra.
//! * **`std::process::Command`** with a pre-exec hook that detaches and, for trackers that work
//!   that way, writes `0` into `cgroup.procs`. Used when there is no cgroup directory, and
//!   when the kernel (or a seccomp filter) refuses `clone3`.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::isolation::{self, host_view, MountSpec, PreparedSetup};
use crate::launch::{resolve_executable, StartError, DEFAULT_PATH};
use crate::reaper::{Reaper, Spawned};
pub(crate) use crate::sys::process::Detach;
use crate::sys::process::{
    self, clone3_unsupported, CStrArray, ExecChild, MonitorArgv, MonitorChild, PidNsChange,
};
use crate::tracker::TrackedGroup;

/// A process ready to start: executable resolved, every string converted in the parent, so
/// the forked child only makes system calls.
pub(crate) struct Process {
    program: CString,
    /// `argv[0]` is the name as written in the spec.
    argv: Vec<CString>,
    /// `KEY=value`, exactly the container's environment.
    envp: Vec<CString>,
    cwd: CString,
    /// `None`: /dev/null (containers, probes); an exec's pipe or pty otherwise.
    stdin: Option<OwnedFd>,
    stdout: OwnedFd,
    stderr: OwnedFd,
    detach: Detach,
    /// `cgroup.procs` files the fallback path writes `0` into before exec (cgroup v1: one
    /// per hierarchy).
    join: Vec<Arc<File>>,
    /// cgroup2 directory the child is created in.
    cgroup: Option<Arc<OwnedFd>>,
    /// Namespaces, mounts, oom_score_adj, security context (see `isolation`).
    setup: Arc<PreparedSetup>,
    /// An OCI runtime's `create`: the file it writes the container's PID to
    /// ([`Process::runtime_create`]).
    pid_file: Option<CString>,
}

/// Builds the process: resolved executable (with `argv[0]` kept), exactly `env`, `cwd`,
/// stdin from /dev/null, stdout/stderr to the given descriptors, its own session or process
/// group, and the tracking group's cgroup.
/// What to run and how (everything but the output descriptors).
pub(crate) struct ProcessSpec<'a> {
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub cwd: &'a Path,
    pub group: Option<&'a Arc<dyn TrackedGroup>>,
    pub detach: Detach,
    pub setup: Arc<PreparedSetup>,
    /// The container's mounts: the executable and `cwd` are checked as the container will see
    /// them (they may live in a volume), not as the host sees them now.
    pub mounts: &'a [MountSpec],
}

pub(crate) fn build_process(
    spec: ProcessSpec<'_>,
    stdout: OwnedFd,
    stderr: OwnedFd,
) -> Result<Process, StartError> {
    let ProcessSpec {
        argv,
        env,
        cwd,
        group,
        detach,
        setup,
        mounts,
    } = spec;
    let view = |p: &Path| host_view(mounts, p);
    let Some(arg0) = argv.first() else {
        return Err(StartError::ExecutableNotFound {
            name: String::new(),
        });
    };
    match std::fs::metadata(view(cwd)) {
        Ok(m) if m.is_dir() => {}
        _ => {
            return Err(StartError::WorkingDir {
                dir: cwd.display().to_string(),
            })
        }
    }
    let path_var = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(DEFAULT_PATH);
    let program = resolve_executable(arg0, path_var, cwd, &view)?;
    let nul = |what: &str| StartError::Config(format!("{what} contains a NUL byte"));
    Ok(Process {
        program: CString::new(program.as_os_str().as_bytes()).map_err(|_| nul("command"))?,
        argv: argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| nul("command/args"))?,
        envp: env
            .iter()
            .map(|(k, v)| CString::new(format!("{k}={v}")))
            .collect::<Result<_, _>>()
            .map_err(|_| nul("env"))?,
        cwd: CString::new(cwd.as_os_str().as_bytes()).map_err(|_| nul("workingDir"))?,
        stdin: None,
        stdout,
        stderr,
        detach,
        join: group.map(|g| g.join_files()).unwrap_or_default(),
        cgroup: group.and_then(|g| g.cgroup_dir()),
        setup,
        pid_file: None,
    })
}

impl Process {
    /// Gives the process `stdin` instead of /dev/null, and how it detaches (an exec with a
    /// pty: [`Detach::Terminal`]).
    pub(crate) fn with_stdin(mut self, stdin: Option<OwnedFd>, detach: Detach) -> Process {
        self.stdin = stdin;
        self.detach = detach;
        self
    }

    /// An OCI runtime's `create` (`argv[0]` = `program`), run by the monitor's launcher with
    /// the container's output pipes as its stdout/stderr (the runtime hands them to the
    /// container), in skiff's own namespaces and cgroups (the runtime places the container),
    /// from `cwd`. [`Process::spawn_monitored`] then returns the container's init (the PID the
    /// runtime writes to `pid_file`), which the monitor watches.
    pub(crate) fn runtime_create(
        program: &Path,
        argv: &[String],
        env: &[(String, String)],
        cwd: &Path,
        pid_file: &Path,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> Result<Process, StartError> {
        let nul = |what: &str| StartError::Config(format!("{what} contains a NUL byte"));
        let c =
            |p: &Path, what: &str| CString::new(p.as_os_str().as_bytes()).map_err(|_| nul(what));
        Ok(Process {
            program: c(program, "the runtime's path")?,
            argv: argv
                .iter()
                .map(|a| CString::new(a.as_bytes()))
                .collect::<Result<_, _>>()
                .map_err(|_| nul("the runtime's arguments"))?,
            envp: env
                .iter()
                .map(|(k, v)| CString::new(format!("{k}={v}")))
                .collect::<Result<_, _>>()
                .map_err(|_| nul("env"))?,
            cwd: c(cwd, "the bundle path")?,
            stdin: None,
            stdout,
            stderr,
            detach: Detach::Group,
            join: Vec::new(),
            cgroup: None,
            setup: Arc::new(PreparedSetup::default()),
            pid_file: Some(c(pid_file, "the PID file path")?),
        })
    }
}

/// Set once `clone3(CLONE_INTO_CGROUP)` was refused: use the fallback from then on.
static CLONE_INTO_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

impl Process {
    /// Starts the process, registered with `reaper` under `tag`. Returns once it has
    /// `exec`ed (or failed to).
    pub(crate) fn spawn(self, reaper: &Reaper, tag: &str) -> io::Result<Spawned> {
        // A shared pod PID namespace is entered by this thread around the fork (see
        // `namespaces::with_pid_namespace`), so the child is born in it.
        let setup = self.setup.clone();
        crate::namespaces::with_pid_namespace(setup.pid_namespace(), || {
            self.spawn_here(reaper, tag)
        })
    }

    fn spawn_here(self, reaper: &Reaper, tag: &str) -> io::Result<Spawned> {
        if let Some(dir) = &self.cgroup {
            if !CLONE_INTO_UNSUPPORTED.load(Ordering::Relaxed) {
                match reaper.spawn_with(tag, || self.clone_into(dir.as_fd())) {
                    // Only a refusal of clone3 itself selects the fallback; a failure the child
                    // reports (setup or exec) is this start's error.
                    Err(e) => match clone3_refusal(&e) {
                        Some(errno) if clone3_unsupported(errno) => {
                            tracing::debug!(%errno, "clone3(CLONE_INTO_CGROUP) unavailable; joining cgroups before exec");
                            CLONE_INTO_UNSUPPORTED.store(true, Ordering::Relaxed);
                        }
                        Some(errno) => return Err(io::Error::from_raw_os_error(errno as i32)),
                        None => return Err(e),
                    },
                    ok => return ok,
                }
            }
        }
        let mut cmd = self.into_command();
        reaper.spawn(&mut cmd, tag)
    }

    /// The fallback: a `Command` with the pre-exec hook.
    fn into_command(self) -> Command {
        let mut cmd = Command::new(OsStr::from_bytes(self.program.as_bytes()));
        if let Some((arg0, rest)) = self.argv.split_first() {
            cmd.arg0(OsStr::from_bytes(arg0.as_bytes()))
                .args(rest.iter().map(|a| OsStr::from_bytes(a.as_bytes())));
        }
        cmd.env_clear();
        for kv in &self.envp {
            let kv = kv.as_bytes();
            let eq = kv.iter().position(|&b| b == b'=').unwrap_or(kv.len());
            let v = kv.get(eq + 1..).unwrap_or_default();
            cmd.env(OsStr::from_bytes(&kv[..eq]), OsStr::from_bytes(v));
        }
        // No `current_dir`: std would chdir before the pre-exec hook, i.e. before the
        // container's mounts exist; the hook changes directory last, as the clone3 path does.
        cmd.stdin(self.stdin.map_or_else(Stdio::null, Stdio::from))
            .stdout(Stdio::from(self.stdout))
            .stderr(Stdio::from(self.stderr));
        // Fork-safe: see `isolation::apply_in_child`.
        process::set_pre_exec(
            &mut cmd,
            self.join,
            self.detach,
            isolation::apply_in_child,
            self.setup,
            self.cwd,
        );
        cmd
    }

    /// What the forked child runs: this process's program, arguments, environment, working
    /// directory and set-up, with `fds` as stdin, stdout, stderr and the exec-error pipe.
    fn exec_child<'a>(
        &'a self,
        argv: &'a CStrArray<'a>,
        envp: &'a CStrArray<'a>,
        fds: [BorrowedFd<'a>; 4],
        join: &'a [BorrowedFd<'a>],
    ) -> ExecChild<'a, PreparedSetup> {
        let [stdin, stdout, stderr, err] = fds;
        ExecChild {
            program: &self.program,
            argv,
            envp,
            cwd: &self.cwd,
            stdin,
            stdout,
            stderr,
            err,
            detach: self.detach,
            join,
            apply: isolation::apply_in_child,
            setup: &*self.setup,
        }
    }

    /// `clone3(CLONE_INTO_CGROUP)` + `execve`. An exec failure comes back through a
    /// close-on-exec pipe (as `std::process` does); the failed child is reaped here, under
    /// the reaper's lock, so the reaper never sees it.
    fn clone_into(&self, cgroup: BorrowedFd<'_>) -> io::Result<i32> {
        // Everything the child touches is prepared here: descriptors above 2 (so the dup2s
        // in the child cannot clobber each other), NULL-terminated pointer arrays.
        let devnull = match &self.stdin {
            Some(fd) => above_stdio(fd.try_clone()?)?,
            None => above_stdio(File::open("/dev/null")?.into())?,
        };
        let stdout = above_stdio(self.stdout.try_clone()?)?;
        let stderr = above_stdio(self.stderr.try_clone()?)?;
        let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let err_w = above_stdio(err_w)?;
        let argv = CStrArray::new(self.argv.iter().map(CString::as_c_str));
        let envp = CStrArray::new(self.envp.iter().map(CString::as_c_str));
        let child = self.exec_child(
            &argv,
            &envp,
            [
                devnull.as_fd(),
                stdout.as_fd(),
                stderr.as_fd(),
                err_w.as_fd(),
            ],
            &[],
        );
        let pid = process::clone_exec_into_cgroup(cgroup, &child)
            .map_err(|e| io::Error::other(Clone3Refused(e)))?;
        drop(err_w);
        drop((devnull, stdout, stderr));
        let mut buf = [0u8; 4];
        let mut got = 0;
        let mut err_r = File::from(err_r);
        loop {
            match std::io::Read::read(&mut err_r, &mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    if got == buf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // We cannot tell whether it exec'd: do not leave it running untracked.
                    let child = nix::unistd::Pid::from_raw(pid);
                    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                    while let Err(Errno::EINTR) = nix::sys::wait::waitpid(child, None) {}
                    return Err(e);
                }
            }
        }
        if got == 0 {
            return Ok(pid);
        }
        // exec failed: reap the child ourselves.
        while let Err(Errno::EINTR) = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None)
        {
        }
        Err(io::Error::from_raw_os_error(i32::from_ne_bytes(buf)))
    }
}

/// How the container's monitor is started (see the `skiff_monitor` crate): its executable,
/// its command line without `--pid`, and its ends of the container's output pipes and of
/// skiff's live log socket.
pub(crate) struct MonitorLaunch {
    pub program: CString,
    /// `argv[0]` and the arguments; `--pid <container pid>` is appended by the forked parent.
    pub argv: Vec<CString>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub live: Option<OwnedFd>,
}

/// A container started under its monitor.
pub(crate) struct MonitoredSpawn {
    /// The monitor: skiff's child, registered with the reaper; it exits once the container
    /// has exited and its exit record is written.
    pub monitor: Spawned,
    /// The container's main process (the monitor's child), as skiff's PID namespace sees it.
    pub container_pid: i32,
    /// Reaches its end once the monitor runs; carries a word (the errno, negated) if it could
    /// not be started ([`monitor_started`]). Read off the start path.
    pub monitor_status: File,
}

/// Whether the monitor of a started container is running: `Ok(())` at the end of its status
/// pipe, the error its launcher reported otherwise. Blocks until the monitor `exec`ed.
pub(crate) fn monitor_started(mut status: File) -> io::Result<()> {
    let mut buf = [0u8; STATUS_WORD];
    let mut got = 0;
    while got < buf.len() {
        match io::Read::read(&mut status, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if got < buf.len() {
        return Ok(());
    }
    Err(io::Error::other(MonitorExecFailed(Errno::from_raw(
        -i32::from_ne_bytes(buf),
    ))))
}

/// Status words the forked parent reports on its status pipe.
const STATUS_WORD: usize = 4;

impl Process {
    /// Starts the process under a monitor: skiff forks a process M, M forks the container
    /// (born in its cgroup and PID namespace, set up as [`Process::spawn`] does), reports the
    /// container's PID and exec result, then `exec`s the monitor. The monitor is thus the
    /// container's parent from the start (its subreaper too), and a small process of its own
    /// rather than a copy of skiff. Returns once the container has `exec`ed and the monitor
    /// runs, or with the container's start error.
    pub(crate) fn spawn_monitored(
        self,
        reaper: &Reaper,
        tag: &str,
        monitor: MonitorLaunch,
    ) -> io::Result<MonitoredSpawn> {
        // Every descriptor M moves into place is above the targets 0–6, so the dup2s in M
        // cannot clobber one another.
        let high = |fd: OwnedFd| -> io::Result<OwnedFd> {
            rustix::io::fcntl_dupfd_cloexec(&fd, 10).map_err(io::Error::from)
        };
        let devnull = high(File::open("/dev/null")?.into())?;
        // The container's stdin: /dev/null, or its stdin FIFO (`stdin: true`).
        let child_stdin = match &self.stdin {
            Some(fd) => high(fd.try_clone()?)?,
            None => high(devnull.try_clone()?)?,
        };
        let stdout = high(self.stdout.try_clone()?)?;
        let stderr = high(self.stderr.try_clone()?)?;
        let (c_err_r, c_err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let (c_err_r, c_err_w) = (high(c_err_r)?, high(c_err_w)?);
        let (status_r, status_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let status_w = high(status_w)?;
        let mon_out = high(monitor.stdout)?;
        let mon_err = high(monitor.stderr)?;
        let live = monitor.live.map(high).transpose()?;
        let argv = CStrArray::new(self.argv.iter().map(CString::as_c_str));
        let envp = CStrArray::new(self.envp.iter().map(CString::as_c_str));
        // The monitor's argv ends with "--pid" and a buffer M writes the digits into.
        let mon_argv = MonitorArgv::new(monitor.argv.iter().map(CString::as_c_str));
        let join: Vec<BorrowedFd<'_>> = self.join.iter().map(|f| f.as_fd()).collect();
        let pid_ns = match self.setup.pid_namespace() {
            crate::namespaces::PidNamespace::Inherit => PidNsChange::None,
            crate::namespaces::PidNamespace::New => PidNsChange::New,
            crate::namespaces::PidNamespace::Join(fd) => PidNsChange::Join(fd.as_fd()),
        };
        let m = MonitorChild {
            child: self.exec_child(
                &argv,
                &envp,
                [
                    child_stdin.as_fd(),
                    stdout.as_fd(),
                    stderr.as_fd(),
                    c_err_w.as_fd(),
                ],
                &join,
            ),
            child_err: c_err_r.as_fd(),
            cgroup: self.cgroup.as_ref().map(|c| c.as_fd()),
            pid_ns,
            status: status_w.as_fd(),
            devnull: devnull.as_fd(),
            mon_out: mon_out.as_fd(),
            mon_err: mon_err.as_fd(),
            live: live.as_ref().map(|l| l.as_fd()),
            program: &monitor.program,
            argv: &mon_argv,
            runtime_pid_file: self.pid_file.as_deref(),
        };
        let spawned =
            reaper.spawn_with(tag, || process::fork_monitor(&m).map_err(io::Error::from))?;
        // Only M and the container keep these.
        drop((
            status_w,
            c_err_w,
            c_err_r,
            devnull,
            stdout,
            stderr,
            child_stdin,
        ));
        drop((mon_out, mon_err, live, self.stdout, self.stderr));
        let mut status = File::from(status_r);
        let mut word = |what: &str| -> io::Result<Option<i32>> {
            let mut buf = [0u8; STATUS_WORD];
            let mut got = 0;
            while got < buf.len() {
                match io::Read::read(&mut status, &mut buf[got..]) {
                    Ok(0) if got == 0 => return Ok(None),
                    Ok(0) => return Err(io::Error::other(format!("{what}: short status"))),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(Some(i32::from_ne_bytes(buf)))
        };
        // M reports the container's PID (0: it failed before the container existed), then the
        // result: 0 = the container exec'd, > 0 its start error (errno), < 0 the monitor could
        // not be set up (its errno, negated). Whether the monitor's exec worked comes later on
        // the same pipe (`monitor_started`), off the start path.
        let (Some(container_pid), Some(result)) = (word("container pid")?, word("exec result")?)
        else {
            return Err(io::Error::other(
                "the container's monitor process died while starting the container",
            ));
        };
        if result < 0 {
            return Err(io::Error::other(MonitorExecFailed(Errno::from_raw(
                -result,
            ))));
        }
        if result == process::RUNTIME_NO_PID {
            return Err(io::Error::other(RuntimeCreateFailed(None)));
        }
        if result >= process::RUNTIME_FAILED {
            return Err(io::Error::other(RuntimeCreateFailed(Some(
                result - process::RUNTIME_FAILED,
            ))));
        }
        if result != 0 {
            // The container was reaped by M (or its monitor), which exits; the reaper
            // collects it.
            return Err(io::Error::from_raw_os_error(result));
        }
        drop(join);
        Ok(MonitoredSpawn {
            monitor: spawned,
            container_pid,
            monitor_status: status,
        })
    }
}

/// The monitor executable could not be started.
#[derive(Debug)]
pub(crate) struct MonitorExecFailed(pub Errno);

impl std::fmt::Display for MonitorExecFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "starting the container monitor (skiff-monitor): {}",
            self.0
        )
    }
}

impl std::error::Error for MonitorExecFailed {}

/// The OCI runtime's `create` failed: its wait status (`None`: it exited 0 but wrote no
/// usable PID file). Its own message is in its log.
#[derive(Debug)]
pub(crate) struct RuntimeCreateFailed(pub Option<i32>);

impl std::fmt::Display for RuntimeCreateFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => write!(f, "the OCI runtime wrote no container PID"),
            Some(st) if st & 0x7f == 0 => {
                write!(f, "the OCI runtime exited with status {}", (st >> 8) & 0xff)
            }
            Some(st) => write!(f, "the OCI runtime was killed by signal {}", st & 0x7f),
        }
    }
}

impl std::error::Error for RuntimeCreateFailed {}

/// The `clone3` system call itself failed (as opposed to the child reporting a failure).
#[derive(Debug)]
struct Clone3Refused(Errno);

impl std::fmt::Display for Clone3Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "clone3: {}", self.0)
    }
}

impl std::error::Error for Clone3Refused {}

/// The errno of a failed `clone3` call, if that is what `e` is.
fn clone3_refusal(e: &io::Error) -> Option<Errno> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Clone3Refused>())
        .map(|r| r.0)
}

/// `fd`, or a close-on-exec duplicate of it above 2 when it is 0, 1 or 2.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    rustix::io::fcntl_dupfd_cloexec(&fd, 3).map_err(io::Error::from)
}
