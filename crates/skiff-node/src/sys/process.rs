//! Starting processes: `clone3`/`fork` with the code that runs in the child until `exec`, and
//! the pre-exec hook of `std::process::Command`.
//!
//! Everything the child uses is borrowed from the parent's frame and prepared before the fork
//! ([`CStrArray`], [`ExecChild`], [`MonitorChild`]): the child only makes raw system calls on
//! that memory (it is a copy of the parent's), allocates nothing and takes no lock, then
//! `exec`s or `_exit`s. The one step the caller supplies, `apply` (namespaces, mounts,
//! credentials: `isolation::apply_in_child`), runs there too and must be fork-safe in the
//! sense of the [`super`] module docs. Being a safe `fn` it cannot break memory safety, but
//! one that allocates or locks may hang the child on a lock another thread held at the fork.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;

use nix::errno::Errno;
use nix::libc;

/// How the new process is detached from skiff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detach {
    /// `setsid()`: own session and process group (container main process).
    Session,
    /// `setpgid(0, 0)`: own process group (exec probes/hooks).
    Group,
    /// `setsid()`, then stdin (a pty's slave) becomes the controlling terminal
    /// (`TIOCSCTTY`): an interactive exec (`kubectl exec -t`).
    Terminal,
}

/// `CLONE_INTO_CGROUP` (linux/sched.h, since 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The errors that mean "no clone3 / no CLONE_INTO_CGROUP here", not "this start failed":
/// ENOSYS (old kernel, or a seccomp filter such as Docker's), E2BIG and EINVAL (5.3–5.6
/// do not know the larger struct / the flag), EPERM (a seccomp filter that denies it).
pub fn clone3_unsupported(errno: Errno) -> bool {
    matches!(
        errno,
        Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL | Errno::EPERM
    )
}

/// A NULL-terminated array of pointers to C strings borrowed for `'a` (`argv`, `envp`),
/// built before the fork so the child needs no allocation.
pub struct CStrArray<'a> {
    ptrs: Vec<*const libc::c_char>,
    _strings: PhantomData<&'a CStr>,
}

impl<'a> CStrArray<'a> {
    pub fn new(items: impl IntoIterator<Item = &'a CStr>) -> CStrArray<'a> {
        CStrArray {
            ptrs: items
                .into_iter()
                .map(CStr::as_ptr)
                .chain(std::iter::once(std::ptr::null()))
                .collect(),
            _strings: PhantomData,
        }
    }

    fn as_ptr(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }
}

/// What the child needs to become the container process (or exec probe/hook): everything
/// borrowed from the parent, descriptors above 2 so the `dup2`s onto 0–2 cannot clobber one
/// another.
pub struct ExecChild<'a, T> {
    pub program: &'a CStr,
    pub argv: &'a CStrArray<'a>,
    pub envp: &'a CStrArray<'a>,
    /// Changed into last, after `apply` (a workingDir inside a volume is the volume).
    pub cwd: &'a CStr,
    pub stdin: BorrowedFd<'a>,
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
    /// Write end of a close-on-exec pipe: the errno of a failed step, then exit 127; EOF
    /// means the exec worked.
    pub err: BorrowedFd<'a>,
    pub detach: Detach,
    /// `cgroup.procs` files to write `0` into before anything else (when the child was not
    /// created in its cgroup).
    pub join: &'a [BorrowedFd<'a>],
    /// The caller's set-up step and its data (fork-safe: see the module docs).
    pub apply: fn(&T) -> Result<(), Errno>,
    pub setup: &'a T,
}

// Not derived: `derive` would require `T: Copy`, and only a reference to `T` is held.
impl<T> Clone for ExecChild<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for ExecChild<'_, T> {}

/// `clone_args` for a fork-like `clone3`: `flags`, SIGCHLD at exit, and the cgroup for
/// `CLONE_INTO_CGROUP`.
pub(super) fn clone_args(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> libc::clone_args {
    // SAFETY: `clone_args` is plain integers; all-zero is the valid "nothing" value.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = flags;
    args.exit_signal = libc::SIGCHLD as u64;
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    args
}

/// `clone3(args)` without `CLONE_VM` and without a new stack, i.e. a `fork(2)` (plus the
/// flags' namespaces or cgroup): 0 in the child, the child's PID in the parent.
///
/// # Safety
///
/// `args` must not ask for `CLONE_VM`, `CLONE_VFORK`, `CLONE_THREAD`, `CLONE_SETTLS` or a
/// stack (the child would share or lose the caller's memory). In the child (result 0) the
/// caller may only run fork-safe code (see [`super`]): the child is a copy of this
/// multi-threaded process with one thread, where locks other threads held stay locked, and
/// glibc's fork handlers did not run. It must end in `execve` or `_exit`, never return into
/// code that would drop or use the parent's state.
pub(super) unsafe fn clone3(args: &mut libc::clone_args) -> Result<i32, Errno> {
    let pid = libc::syscall(
        libc::SYS_clone3,
        args as *mut libc::clone_args,
        std::mem::size_of::<libc::clone_args>(),
    );
    if pid < 0 {
        return Err(Errno::last());
    }
    i32::try_from(pid).map_err(|_| Errno::EOVERFLOW)
}

/// Starts `child` with `clone3(CLONE_INTO_CGROUP)`: it is born in the cgroup2 directory
/// `cgroup`, then runs [`ExecChild`]'s steps and `execve`s. Returns its PID, or the errno of
/// `clone3` itself (see [`clone3_unsupported`]); a failure in the child arrives on
/// `child.err`.
pub fn clone_exec_into_cgroup<T>(
    cgroup: BorrowedFd<'_>,
    child: &ExecChild<'_, T>,
) -> Result<i32, Errno> {
    let mut args = clone_args(0, Some(cgroup));
    // SAFETY: a plain fork (no CLONE_VM, no stack). In the child only `exec_child` runs:
    // fork-safe steps on `child`, which is in the copied memory, ending in execve or _exit.
    let pid = unsafe { clone3(&mut args)? };
    if pid == 0 {
        // SAFETY: we are the child of the clone3 above, single-threaded; `child` is valid.
        unsafe { exec_child(child) }
    }
    Ok(pid)
}

/// In the child: reset the signal state std would reset, detach, join the cgroups, run the
/// caller's set-up, put stdio and the working directory in place, exec. On failure the errno
/// goes to `s.err` and the child exits 127.
///
/// # Safety
///
/// Only in the child of a fork-like clone of this process ([`clone3`], `fork`), which it
/// never returns from; `s` and what it borrows are that child's copy of the parent's memory.
/// It replaces the descriptors 0–2 and the signal mask of the process.
unsafe fn exec_child<T>(s: &ExecChild<'_, T>) -> ! {
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    // pthread_sigmask returns its error number instead of setting errno.
    let rc = libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    if rc != 0 {
        fail_with(s.err, rc);
    }
    // Rust ignores SIGPIPE; ignored dispositions survive exec.
    if libc::signal(libc::SIGPIPE, libc::SIG_DFL) == libc::SIG_ERR {
        fail(s.err);
    }
    let detached = match s.detach {
        Detach::Session | Detach::Terminal => libc::setsid() >= 0,
        Detach::Group => libc::setpgid(0, 0) == 0,
    };
    if !detached {
        fail(s.err);
    }
    for fd in s.join {
        // "0" moves the writing process: join the tracking cgroup (every v1 hierarchy) before
        // anything else, so nothing the container starts can escape it.
        if libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) < 0 {
            fail(s.err);
        }
    }
    if let Err(e) = (s.apply)(s.setup) {
        fail_with(s.err, e as i32);
    }
    if libc::dup2(s.stdin.as_raw_fd(), 0) < 0
        || libc::dup2(s.stdout.as_raw_fd(), 1) < 0
        || libc::dup2(s.stderr.as_raw_fd(), 2) < 0
        || libc::chdir(s.cwd.as_ptr()) != 0
    {
        fail(s.err);
    }
    if s.detach == Detach::Terminal && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
        fail(s.err);
    }
    libc::execve(s.program.as_ptr(), s.argv.as_ptr(), s.envp.as_ptr());
    fail(s.err)
}

/// In the child: report errno on `err` and exit 127.
///
/// # Safety
///
/// As [`exec_child`]: only in a forked child, which it ends.
unsafe fn fail(err: BorrowedFd<'_>) -> ! {
    fail_with(err, Errno::last_raw())
}

/// In the child: report `errno` on `err` and exit 127.
///
/// # Safety
///
/// As [`exec_child`]: only in a forked child, which it ends (`_exit`, no destructors).
unsafe fn fail_with(err: BorrowedFd<'_>, errno: i32) -> ! {
    let b = errno.to_ne_bytes();
    libc::write(err.as_raw_fd(), b.as_ptr().cast(), b.len());
    libc::_exit(127)
}

/// Installs the `Command` fallback's pre-exec hook: detach, write `0` into each of `join`
/// (`cgroup.procs`), `apply(&setup)`, then `chdir(cwd)` (after the mounts, so a workingDir
/// inside a volume is the volume). `apply` must be fork-safe (module docs).
pub fn set_pre_exec<T: Send + Sync + 'static>(
    cmd: &mut Command,
    join: Vec<Arc<File>>,
    detach: Detach,
    apply: fn(&T) -> Result<(), Errno>,
    setup: Arc<T>,
    cwd: CString,
) {
    let hook = move || -> io::Result<()> {
        match detach {
            Detach::Session => {
                nix::unistd::setsid()?;
            }
            Detach::Terminal => {
                nix::unistd::setsid()?;
                // std has put the pty's slave on fd 0 before the hook runs.
                // SAFETY: a plain ioctl on fd 0 with an integer argument.
                if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
                    return Err(io::Error::last_os_error());
                }
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
        apply(&setup).map_err(io::Error::from)?;
        nix::unistd::chdir(cwd.as_c_str())?;
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec. It only makes system calls
    // (setsid/setpgid/ioctl, write(2) on files kept open by the captured Arcs, chdir on a prepared C
    // string) and `apply`, fork-safe by this function's contract, on prepared data; it
    // allocates nothing, takes no lock and touches no state shared with other threads.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// The PID an OCI runtime wrote (decimal, at most 15 bytes). Fork-safe: raw system calls on
/// a stack buffer.
fn read_pid_file(path: &CStr) -> Option<i32> {
    let mut buf = [0u8; 16];
    // SAFETY: `path` is a valid C string; `buf` is a live buffer of the length given.
    let n = unsafe {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        );
        if fd < 0 {
            return None;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    if n <= 0 || n as usize >= buf.len() {
        return None;
    }
    let mut v: i32 = 0;
    for &b in &buf[..n as usize] {
        match b {
            b'0'..=b'9' => v = v.checked_mul(10)?.checked_add(i32::from(b - b'0'))?,
            b'\n' => break,
            _ => return None,
        }
    }
    (v > 0).then_some(v)
}

/// Where the monitor process puts the container's PID namespace before cloning it.
#[derive(Clone, Copy)]
pub enum PidNsChange<'a> {
    /// Stay in skiff's.
    None,
    /// `unshare(CLONE_NEWPID)`: the container is PID 1 of a new one.
    New,
    /// `setns` into this one.
    Join(BorrowedFd<'a>),
}

/// Bytes for the container's PID in decimal, NUL-terminated (an `i32` has at most 10 digits).
const PID_DIGITS: usize = 16;

/// The monitor's command line: the caller's arguments, then `--pid` and the container's PID,
/// which the forked process writes into a buffer `argv` already points at (it cannot allocate).
pub struct MonitorArgv<'a> {
    /// Cells: the child writes through a shared reference; boxed so `argv`'s pointer holds.
    pid: Box<[Cell<u8>; PID_DIGITS]>,
    argv: Vec<*const libc::c_char>,
    _strings: PhantomData<&'a CStr>,
}

impl<'a> MonitorArgv<'a> {
    pub fn new(args: impl IntoIterator<Item = &'a CStr>) -> MonitorArgv<'a> {
        let pid: Box<[Cell<u8>; PID_DIGITS]> = Box::default();
        let mut argv: Vec<*const libc::c_char> = args.into_iter().map(CStr::as_ptr).collect();
        argv.push(c"--pid".as_ptr());
        argv.push(pid[..].as_ptr().cast());
        argv.push(std::ptr::null());
        MonitorArgv {
            pid,
            argv,
            _strings: PhantomData,
        }
    }

    /// Writes `pid` in decimal, NUL-terminated, into the buffer (fork-safe: no allocation).
    fn set_pid(&self, pid: i32) {
        let mut digits = [0u8; 12];
        let mut n = 0;
        let mut v = pid.unsigned_abs();
        loop {
            digits[n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for (cell, d) in self.pid.iter().zip(digits[..n].iter().rev()) {
            cell.set(*d);
        }
        self.pid[n].set(0);
    }
}

/// Everything the monitor process M needs: the container to start, where to report, and
/// the monitor to exec. Descriptors are above 6 (the targets of M's `dup2`s).
pub struct MonitorChild<'a, T> {
    pub child: ExecChild<'a, T>,
    /// Read end of `child.err`.
    pub child_err: BorrowedFd<'a>,
    /// cgroup2 directory to create the container in.
    pub cgroup: Option<BorrowedFd<'a>>,
    pub pid_ns: PidNsChange<'a>,
    /// Write end of the status pipe (close-on-exec): the container's PID and its exec result,
    /// then EOF when the monitor exec'd, or the errno of that exec.
    pub status: BorrowedFd<'a>,
    pub devnull: BorrowedFd<'a>,
    /// The monitor's ends of the container's stdout and stderr pipes.
    pub mon_out: BorrowedFd<'a>,
    pub mon_err: BorrowedFd<'a>,
    /// skiff's live log socket.
    pub live: Option<BorrowedFd<'a>>,
    pub program: &'a CStr,
    pub argv: &'a MonitorArgv<'a>,
    /// `child` is an OCI runtime's `create` writing the container's PID to this file: M waits
    /// for the runtime to exit, and the container's init (reparented to M, a subreaper, when
    /// the runtime exits) is what the monitor then watches.
    pub runtime_pid_file: Option<&'a CStr>,
}

/// A result word above this says the OCI runtime's `create` failed: the word minus this is
/// its wait status (`RUNTIME_NO_PID` for a missing or bad PID file).
pub const RUNTIME_FAILED: i32 = 1 << 20;
/// The runtime exited 0 but its PID file could not be read.
pub const RUNTIME_NO_PID: i32 = RUNTIME_FAILED - 1;

/// `fork`s M, which starts the container (see [`MonitorChild`]) and then execs the monitor
/// with an empty environment. Returns M's PID.
pub fn fork_monitor<T>(m: &MonitorChild<'_, T>) -> Result<i32, Errno> {
    // SAFETY: fork(2) through glibc (its atfork handlers keep malloc usable, though M never
    // allocates). In the child only `monitor_child` runs: raw system calls on the memory
    // prepared by the caller (borrowed by `m`), ending in exec or _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: we are the child of the fork above.
        unsafe { monitor_child(m) }
    }
    if pid < 0 {
        return Err(Errno::last());
    }
    Ok(pid)
}

/// Writes status words (native-endian `i32`s) to `fd`; a failed write is the reader's missing
/// word. Raw `write(2)` only, so the forked launcher can call it.
fn write_words(fd: RawFd, words: &[i32]) {
    for w in words {
        let b = w.to_ne_bytes();
        // SAFETY: `b` is a live 4-byte buffer for the length given; writing to a descriptor
        // number that is not open only fails with EBADF.
        unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
    }
}

/// M: clone the container, shed skiff's descriptors, wait for the container's exec result,
/// report, become the monitor. Never returns.
///
/// # Safety
///
/// Only in the child of a fork of this process, which it never returns from; `m` and what it
/// borrows are that child's copy of the parent's memory. It closes descriptors the copied
/// `OwnedFd`s own (`m.child.err`, then every descriptor above 7), whose destructors never run
/// there. It blocks (reading the exec-result pipe) only after holding nothing but its own
/// descriptors 0–7.
unsafe fn monitor_child<T>(m: &MonitorChild<'_, T>) -> ! {
    let status = m.status.as_raw_fd();
    let report = |words: &[i32]| write_words(status, words);
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
            PidNsChange::Join(fd) => libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) != 0,
        }
    {
        report(&[0, Errno::last_raw()]);
        libc::_exit(127);
    }
    // The container: born in its cgroup when there is a cgroup2 directory and the kernel
    // allows it, else it joins by writing cgroup.procs first thing.
    let mut pid = Err(Errno::ENOSYS);
    if let Some(cgroup) = m.cgroup {
        let mut cs = m.child;
        cs.join = &[];
        let mut args = clone_args(0, Some(cgroup));
        pid = clone3(&mut args);
        if pid == Ok(0) {
            exec_child(&cs)
        }
        if let Err(e) = pid {
            if !clone3_unsupported(e) {
                report(&[0, e as i32]);
                libc::_exit(127);
            }
        }
    }
    if pid.is_err() {
        let r = libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        );
        if r == 0 {
            exec_child(&m.child)
        }
        if r < 0 {
            report(&[0, Errno::last_raw()]);
            libc::_exit(127);
        }
        pid = Ok(r as i32);
    }
    let cpid = pid.unwrap_or(-1);
    libc::close(m.child.err.as_raw_fd());
    // First shed everything inherited from skiff: M may wait below, and while it waits it must
    // hold nothing another start could be waiting on (other starts' pipe ends, inherited through
    // the fork; two launchers each holding the pipe the other waits on would deadlock). The
    // monitor's descriptors: 0–2 /dev/null, 3/4 the container's stdout/stderr, 5 the live
    // socket, 6 the status pipe (close-on-exec: its EOF tells skiff the monitor runs), 7 the
    // container's exec-result pipe until read.
    let devnull = m.devnull.as_raw_fd();
    let ok = libc::dup2(devnull, 0) >= 0
        && libc::dup2(devnull, 1) >= 0
        && libc::dup2(devnull, 2) >= 0
        && libc::dup2(m.mon_out.as_raw_fd(), 3) >= 0
        && libc::dup2(m.mon_err.as_raw_fd(), 4) >= 0
        && (match m.live {
            Some(live) => libc::dup2(live.as_raw_fd(), 5) >= 0,
            None => {
                libc::close(5);
                true
            }
        })
        && libc::dup3(status, 6, libc::O_CLOEXEC) >= 0
        && libc::dup2(m.child_err.as_raw_fd(), 7) >= 0
        && libc::syscall(libc::SYS_close_range, 8u32, u32::MAX, 0u32) == 0;
    if !ok {
        // A negative result word: the monitor cannot be started (the errno, negated).
        report(&[cpid, -Errno::last_raw()]);
        libc::kill(cpid, libc::SIGKILL);
        libc::waitpid(cpid, std::ptr::null_mut(), 0);
        libc::_exit(127);
    }
    let report6 = |words: &[i32]| write_words(6, words);
    let mut buf = [0u8; 4];
    let mut got = 0usize;
    while got < buf.len() {
        let n = libc::read(7, buf.as_mut_ptr().add(got).cast(), buf.len() - got);
        if n == 0 {
            break;
        }
        if n < 0 {
            if Errno::last_raw() == libc::EINTR {
                continue;
            }
            break;
        }
        got += n as usize;
    }
    libc::close(7);
    if got > 0 {
        // The container failed before or at exec; it reported why and exited 127.
        libc::waitpid(cpid, std::ptr::null_mut(), 0);
        report6(&[cpid, i32::from_ne_bytes(buf)]);
        libc::_exit(127);
    }
    let mut cpid = cpid;
    if let Some(pid_file) = m.runtime_pid_file {
        // The runtime (its own session leader's child) sets up the container and exits; its
        // init, blocked until `start`, has been reparented to M by then.
        let mut st: libc::c_int = 0;
        while libc::waitpid(cpid, &mut st, 0) < 0 {
            if Errno::last_raw() != libc::EINTR {
                st = -1;
                break;
            }
        }
        if st != 0 {
            report6(&[0, RUNTIME_FAILED + (st & 0xffff)]);
            libc::_exit(127);
        }
        match read_pid_file(pid_file) {
            Some(p) => cpid = p,
            None => {
                report6(&[0, RUNTIME_NO_PID]);
                libc::_exit(127);
            }
        }
    }
    report6(&[cpid, 0]);
    // The container's PID in decimal, into the buffer the argv points at.
    m.argv.set_pid(cpid);
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    libc::execve(m.program.as_ptr(), m.argv.argv.as_ptr(), envp.as_ptr());
    // The monitor could not be started: a third word (its errno, negated), and the container
    // goes, since nothing would watch it.
    report6(&[-Errno::last_raw()]);
    libc::kill(cpid, libc::SIGKILL);
    libc::waitpid(cpid, std::ptr::null_mut(), 0);
    libc::_exit(127)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_argv_ends_with_the_pid_in_decimal() {
        let args = [c"skiff-monitor", c"--log"];
        let argv = MonitorArgv::new(args.iter().copied());
        assert_eq!(argv.argv.len(), 5);
        assert_eq!(argv.argv[..2], [args[0].as_ptr(), args[1].as_ptr()]);
        assert_eq!(argv.argv[3], argv.pid[..].as_ptr().cast());
        assert!(argv.argv[4].is_null());
        let pid = || -> Vec<u8> { argv.pid.iter().map(Cell::get).collect() };
        argv.set_pid(4_194_304);
        assert_eq!(CStr::from_bytes_until_nul(&pid()), Ok(c"4194304"));
        argv.set_pid(7);
        assert_eq!(CStr::from_bytes_until_nul(&pid()), Ok(c"7"));
        argv.set_pid(i32::MAX);
        assert_eq!(CStr::from_bytes_until_nul(&pid()), Ok(c"2147483647"));
    }

    #[test]
    fn c_str_array_is_null_terminated() {
        let (x, y) = (c"a", c"b");
        let a = CStrArray::new([x, y]);
        assert_eq!(a.ptrs, [x.as_ptr(), y.as_ptr(), std::ptr::null()]);
    }
}
