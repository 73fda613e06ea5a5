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
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::libc;

use crate::isolation::{self, host_view, MountSpec, PreparedSetup};
use crate::launch::{resolve_executable, StartError, DEFAULT_PATH};
use crate::reaper::{Reaper, Spawned};
use crate::tracker::TrackedGroup;

/// How the new process is detached from skiff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detach {
    /// `setsid()`: own session and process group (container main process).
    Session,
    /// `setpgid(0, 0)`: own process group (exec probes/hooks).
    Group,
}

/// A process ready to start: executable resolved, every string converted in the parent, so
/// the forked child only makes system calls.
pub(crate) struct Process {
    program: CString,
    /// `argv[0]` is the name as written in the spec.
    argv: Vec<CString>,
    /// `KEY=value`, exactly the container's environment.
    envp: Vec<CString>,
    cwd: CString,
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
        stdout,
        stderr,
        detach,
        join: group.map(|g| g.join_files()).unwrap_or_default(),
        cgroup: group.and_then(|g| g.cgroup_dir()),
        setup,
    })
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
                match reaper.spawn_with(tag, || self.clone_into(dir.as_raw_fd())) {
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
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(self.stdout))
            .stderr(Stdio::from(self.stderr));
        set_pre_exec(&mut cmd, self.join, self.detach, self.setup, self.cwd);
        cmd
    }

    /// `clone3(CLONE_INTO_CGROUP)` + `execve`. An exec failure comes back through a
    /// close-on-exec pipe (as `std::process` does); the failed child is reaped here, under
    /// the reaper's lock, so the reaper never sees it.
    #[allow(unsafe_code)]
    fn clone_into(&self, cgroup: RawFd) -> io::Result<i32> {
        // Everything the child touches is prepared here: descriptors above 2 (so the dup2s
        // below cannot clobber each other), NULL-terminated pointer arrays.
        let devnull = above_stdio(File::open("/dev/null")?.into())?;
        let stdout = above_stdio(self.stdout.try_clone()?)?;
        let stderr = above_stdio(self.stderr.try_clone()?)?;
        let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let err_w = above_stdio(err_w)?;
        let argv: Vec<*const libc::c_char> = self
            .argv
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let envp: Vec<*const libc::c_char> = self
            .envp
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let child = ChildSetup {
            program: self.program.as_ptr(),
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            cwd: self.cwd.as_ptr(),
            stdin: devnull.as_raw_fd(),
            stdout: stdout.as_raw_fd(),
            stderr: stderr.as_raw_fd(),
            err: err_w.as_raw_fd(),
            detach: self.detach,
            setup: &self.setup,
            join: std::ptr::null(),
            join_len: 0,
        };
        // SAFETY: an all-zero `clone_args` is valid ("no flags"); the fields set below are
        // the ones CLONE_INTO_CGROUP needs.
        let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
        args.flags = CLONE_INTO_CGROUP;
        args.exit_signal = libc::SIGCHLD as u64;
        args.cgroup = cgroup as u64;
        // SAFETY: clone3 without CLONE_VM and without a new stack is fork(2): the child gets
        // a copy of this address space with only this thread. In the child only
        // `exec_child` runs, which makes async-signal-safe calls on the memory prepared
        // above and never returns.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &mut args as *mut libc::clone_args,
                std::mem::size_of::<libc::clone_args>(),
            )
        };
        if pid == 0 {
            // SAFETY: see above; we are the child.
            unsafe { exec_child(&child) }
        }
        if pid < 0 {
            return Err(io::Error::other(Clone3Refused(Errno::last())));
        }
        let pid = i32::try_from(pid).map_err(|_| io::Error::other("clone3: bad pid"))?;
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
            let new = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(10)).map_err(io::Error::from)?;
            // SAFETY: fcntl(F_DUPFD_CLOEXEC) just returned this descriptor; nobody else owns it.
            #[allow(unsafe_code)]
            Ok(unsafe { OwnedFd::from_raw_fd(new) })
        };
        let devnull = high(File::open("/dev/null")?.into())?;
        let stdout = high(self.stdout.try_clone()?)?;
        let stderr = high(self.stderr.try_clone()?)?;
        let (c_err_r, c_err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let (c_err_r, c_err_w) = (high(c_err_r)?, high(c_err_w)?);
        let (status_r, status_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let status_w = high(status_w)?;
        let mon_out = high(monitor.stdout)?;
        let mon_err = high(monitor.stderr)?;
        let live = monitor.live.map(high).transpose()?;
        let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
            v.iter()
                .map(|a| a.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        let argv = ptrs(&self.argv);
        let envp = ptrs(&self.envp);
        // The monitor's argv ends with "--pid" and a buffer M writes the digits into.
        let mut pid_buf = [0u8; 16];
        let pid_flag = c"--pid";
        let mut mon_argv: Vec<*const libc::c_char> =
            monitor.argv.iter().map(|a| a.as_ptr()).collect();
        mon_argv.push(pid_flag.as_ptr());
        mon_argv.push(pid_buf.as_mut_ptr().cast_const().cast());
        mon_argv.push(std::ptr::null());
        let mon_envp: [*const libc::c_char; 1] = [std::ptr::null()];
        let join: Vec<RawFd> = self.join.iter().map(|f| f.as_raw_fd()).collect();
        let pid_ns = match self.setup.pid_namespace() {
            crate::namespaces::PidNamespace::Inherit => PidNsChange::None,
            crate::namespaces::PidNamespace::New => PidNsChange::New,
            crate::namespaces::PidNamespace::Join(fd) => PidNsChange::Join(fd.as_raw_fd()),
        };
        let m = MonitorChild {
            child: ChildSetup {
                program: self.program.as_ptr(),
                argv: argv.as_ptr(),
                envp: envp.as_ptr(),
                cwd: self.cwd.as_ptr(),
                stdin: devnull.as_raw_fd(),
                stdout: stdout.as_raw_fd(),
                stderr: stderr.as_raw_fd(),
                err: c_err_w.as_raw_fd(),
                detach: self.detach,
                setup: &self.setup,
                join: join.as_ptr(),
                join_len: join.len(),
            },
            c_err_r: c_err_r.as_raw_fd(),
            cgroup: self.cgroup.as_ref().map_or(-1, |c| c.as_raw_fd()),
            pid_ns,
            status: status_w.as_raw_fd(),
            devnull: devnull.as_raw_fd(),
            mon_out: mon_out.as_raw_fd(),
            mon_err: mon_err.as_raw_fd(),
            live: live.as_ref().map_or(-1, |l| l.as_raw_fd()),
            program: monitor.program.as_ptr(),
            argv: mon_argv.as_ptr(),
            envp: mon_envp.as_ptr(),
            pid_buf: pid_buf.as_mut_ptr(),
        };
        let spawned = reaper.spawn_with(tag, || {
            // SAFETY: fork(2) through glibc (its atfork handlers keep malloc usable, though
            // M never allocates). In the child only `monitor_child` runs: raw system calls on
            // the memory prepared above, ending in exec or _exit.
            #[allow(unsafe_code)]
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: see above; we are the child.
                #[allow(unsafe_code)]
                unsafe {
                    monitor_child(&m)
                }
            }
            if pid < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(pid)
        })?;
        // Only M and the container keep these.
        drop((status_w, c_err_w, c_err_r, devnull, stdout, stderr));
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
        let (Some(container_pid), Some(errno)) = (word("container pid")?, word("exec result")?)
        else {
            return Err(io::Error::other(
                "the container's monitor process died while starting the container",
            ));
        };
        if errno != 0 {
            // M has reaped the container and exits; the reaper collects M.
            return Err(io::Error::from_raw_os_error(errno));
        }
        // EOF: the monitor exec'd (the pipe is close-on-exec). A word: its exec failed, and
        // M killed the container.
        if let Some(errno) = word("monitor exec result")? {
            return Err(io::Error::other(MonitorExecFailed(Errno::from_raw(errno))));
        }
        drop(join);
        Ok(MonitoredSpawn {
            monitor: spawned,
            container_pid,
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

/// Where M puts the container's PID namespace (see [`crate::namespaces::PidNamespace`]).
#[derive(Clone, Copy)]
enum PidNsChange {
    None,
    New,
    Join(RawFd),
}

/// Everything M needs, as raw pointers and descriptors owned by the parent's frame.
struct MonitorChild<'a> {
    child: ChildSetup<'a>,
    c_err_r: RawFd,
    /// cgroup2 directory to create the container in, or -1.
    cgroup: RawFd,
    pid_ns: PidNsChange,
    status: RawFd,
    devnull: RawFd,
    mon_out: RawFd,
    mon_err: RawFd,
    live: RawFd,
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// 16 zero bytes for the container's PID in decimal (NUL-terminated).
    pid_buf: *mut u8,
}

/// M: fork the container, report, become the monitor. Never returns.
///
/// SAFETY (caller): only in the child of a fork of this process, with `m` pointing at memory
/// of the parent's frame (copied into the child). Raw system calls only.
#[allow(unsafe_code)]
unsafe fn monitor_child(m: &MonitorChild<'_>) -> ! {
    let report = |words: &[i32]| {
        for w in words {
            let b = w.to_ne_bytes();
            libc::write(m.status, b.as_ptr().cast(), b.len());
        }
    };
    let errno = || *libc::__errno_location();
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    // Out of skiff's session and process group: a Ctrl-C in skiff's terminal is skiff's to
    // handle, never a signal to the monitors. Then the subreaper flag (kept across exec), so
    // the container's orphans come to the monitor.
    if libc::setsid() < 0
        || libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0
        || match m.pid_ns {
            PidNsChange::None => false,
            PidNsChange::New => libc::unshare(libc::CLONE_NEWPID) != 0,
            PidNsChange::Join(fd) => libc::setns(fd, libc::CLONE_NEWPID) != 0,
        }
    {
        report(&[0, errno()]);
        libc::_exit(127);
    }
    // The container: born in its cgroup when there is a cgroup2 directory and the kernel
    // allows it, else it joins by writing cgroup.procs first thing.
    let mut cs = m.child;
    let mut pid: libc::c_long = -1;
    if m.cgroup >= 0 {
        let mut args: libc::clone_args = std::mem::zeroed();
        args.flags = CLONE_INTO_CGROUP;
        args.exit_signal = libc::SIGCHLD as u64;
        args.cgroup = m.cgroup as u64;
        cs.join_len = 0;
        pid = libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        );
        if pid == 0 {
            exec_child(&cs)
        }
        if pid < 0 && !clone3_unsupported(Errno::from_raw(errno())) {
            report(&[0, errno()]);
            libc::_exit(127);
        }
        cs = m.child;
    }
    if pid < 0 {
        pid = libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        );
        if pid == 0 {
            exec_child(&cs)
        }
        if pid < 0 {
            report(&[0, errno()]);
            libc::_exit(127);
        }
    }
    let cpid = pid as i32;
    libc::close(cs.err);
    let mut buf = [0u8; 4];
    let mut got = 0usize;
    while got < buf.len() {
        let n = libc::read(m.c_err_r, buf.as_mut_ptr().add(got).cast(), buf.len() - got);
        if n == 0 {
            break;
        }
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            break;
        }
        got += n as usize;
    }
    if got > 0 {
        // The container failed before or at exec; it reported why and exited 127.
        libc::waitpid(cpid, std::ptr::null_mut(), 0);
        report(&[cpid, i32::from_ne_bytes(buf)]);
        libc::_exit(127);
    }
    report(&[cpid, 0]);
    // The monitor's descriptors: 0–2 /dev/null, 3/4 the container's stdout/stderr, 5 the live
    // socket, 6 the status pipe (close-on-exec: its EOF tells skiff the exec worked).
    // Everything else inherited from skiff goes, the container's own pipe ends included
    // (held here they would keep the monitor from ever seeing EOF).
    let ok = libc::dup2(m.devnull, 0) >= 0
        && libc::dup2(m.devnull, 1) >= 0
        && libc::dup2(m.devnull, 2) >= 0
        && libc::dup2(m.mon_out, 3) >= 0
        && libc::dup2(m.mon_err, 4) >= 0
        && (if m.live >= 0 {
            libc::dup2(m.live, 5) >= 0
        } else {
            libc::close(5);
            true
        })
        && libc::dup3(m.status, 6, libc::O_CLOEXEC) >= 0
        && libc::syscall(libc::SYS_close_range, 7u32, u32::MAX, 0u32) == 0;
    if ok {
        // The container's PID in decimal, into the buffer the argv points at.
        let mut digits = [0u8; 12];
        let mut n = 0;
        let mut v = cpid;
        loop {
            digits[n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for i in 0..n {
            *m.pid_buf.add(i) = digits[n - 1 - i];
        }
        libc::execve(m.program, m.argv, m.envp);
    }
    let b = errno().to_ne_bytes();
    // After the dup3 the status pipe is descriptor 6 (the original was closed).
    libc::write(if ok { 6 } else { m.status }, b.as_ptr().cast(), b.len());
    libc::kill(cpid, libc::SIGKILL);
    libc::waitpid(cpid, std::ptr::null_mut(), 0);
    libc::_exit(127)
}

/// `CLONE_INTO_CGROUP` (linux/sched.h, since 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

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

/// The errors that mean "no clone3 / no CLONE_INTO_CGROUP here", not "this start failed":
/// ENOSYS (old kernel, or a seccomp filter such as Docker's), E2BIG and EINVAL (5.3–5.6
/// do not know the larger struct / the flag), EPERM (a seccomp filter that denies it).
fn clone3_unsupported(errno: Errno) -> bool {
    matches!(
        errno,
        Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL | Errno::EPERM
    )
}

fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let new = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(3)).map_err(io::Error::from)?;
    // SAFETY: `fcntl(F_DUPFD_CLOEXEC)` just returned this new descriptor; nothing else owns it.
    #[allow(unsafe_code)]
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// What the forked child needs, as raw pointers and descriptors owned by the parent's frame.
#[derive(Clone, Copy)]
struct ChildSetup<'a> {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    err: RawFd,
    detach: Detach,
    setup: &'a PreparedSetup,
    /// `cgroup.procs` descriptors to write `0` into before anything else (when the child was
    /// not created in its cgroup): `join_len` of them at `join`.
    join: *const RawFd,
    join_len: usize,
}

/// In the child: reset the signal state std would reset, detach, set up stdio and the
/// working directory, exec. On failure the errno goes to the parent and the child exits 127.
///
/// SAFETY (caller): only in the child of a fork-like clone, with `s` pointing at memory of
/// the parent's frame (copied into the child).
#[allow(unsafe_code)]
unsafe fn exec_child(s: &ChildSetup<'_>) -> ! {
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    // pthread_sigmask returns its error number instead of setting errno.
    let rc = libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    if rc != 0 {
        fail_with(s, rc);
    }
    // Rust ignores SIGPIPE; ignored dispositions survive exec.
    if libc::signal(libc::SIGPIPE, libc::SIG_DFL) == libc::SIG_ERR {
        fail(s);
    }
    let detached = match s.detach {
        Detach::Session => libc::setsid() >= 0,
        Detach::Group => libc::setpgid(0, 0) == 0,
    };
    if !detached {
        fail(s);
    }
    for i in 0..s.join_len {
        // "0" moves the writing process: join the tracking cgroup (every v1 hierarchy) before
        // anything else, so nothing the container starts can escape it.
        if libc::write(*s.join.add(i), b"0".as_ptr().cast(), 1) < 0 {
            fail(s);
        }
    }
    if let Err(e) = isolation::apply_in_child(s.setup) {
        fail_with(s, e as i32);
    }
    if libc::dup2(s.stdin, 0) < 0
        || libc::dup2(s.stdout, 1) < 0
        || libc::dup2(s.stderr, 2) < 0
        || libc::chdir(s.cwd) != 0
    {
        fail(s);
    }
    libc::execve(s.program, s.argv, s.envp);
    fail(s)
}

/// In the child: report errno to the parent and exit 127.
#[allow(unsafe_code)]
unsafe fn fail(s: &ChildSetup<'_>) -> ! {
    fail_with(s, *libc::__errno_location())
}

/// In the child: report `errno` to the parent and exit 127.
#[allow(unsafe_code)]
unsafe fn fail_with(s: &ChildSetup<'_>, errno: i32) -> ! {
    let b = errno.to_ne_bytes();
    libc::write(s.err, b.as_ptr().cast(), b.len());
    libc::_exit(127)
}

#[allow(unsafe_code)]
fn set_pre_exec(
    cmd: &mut Command,
    join: Vec<Arc<File>>,
    detach: Detach,
    setup: Arc<PreparedSetup>,
    cwd: CString,
) {
    let hook = move || -> std::io::Result<()> {
        match detach {
            Detach::Session => {
                nix::unistd::setsid()?;
            }
            Detach::Group => {
                nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0))?;
            }
        }
        for f in &join {
            // "0" moves the writing process: join the tracking cgroup (every v1
            // hierarchy) before exec, so nothing the container starts can escape it.
            (&**f).write_all(b"0")?;
        }
        // Fork-safe: see `isolation::apply_in_child`.
        isolation::apply_in_child(&setup).map_err(io::Error::from)?;
        // After the namespaces and mounts, so a workingDir inside a volume is the volume.
        nix::unistd::chdir(cwd.as_c_str())?;
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec. It only makes
    // raw syscalls (setsid/setpgid, write(2) on fds opened by the parent and
    // kept alive by the captured Arcs, `isolation::apply_in_child`'s setns/mount/
    // prctl/seccomp on prepared data, chdir on a prepared C string); it allocates
    // nothing, takes no locks and touches no state shared with other threads.
    unsafe {
        cmd.pre_exec(hook);
    }
}
