//! The pod's namespace holder process (see `namespaces`): born with one `clone3` in the new
//! namespaces, it sets them up, reports on a pipe, then waits for its lifeline to close while
//! reaping orphans and, rootless, serving the socket factory. It never `exec`s, so all of its
//! code is fork-safe system calls on memory prepared by the parent ([`HolderArgs`]).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};

use super::process::{clone3, clone_args};

/// Written on the lifeline: the holder outlives skiff from now on (a persistent sandbox,
/// once it is recorded); only SIGKILL ends it then.
pub const DETACH: u8 = b'k';

/// Socket factory request: the address family, one byte.
pub const FACTORY_V4: u8 = 4;
pub const FACTORY_V6: u8 = 6;

/// The namespace flags the holder may be cloned with.
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNET
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP) as u64;

/// What the holder uses, all prepared in the parent.
pub struct HolderArgs<'a> {
    /// Set in its (new) UTS namespace.
    pub hostname: Option<&'a CStr>,
    /// Bring `lo` up in its (new) network namespace.
    pub lo_up: bool,
    /// Reap orphans (it is PID 1 of a new PID namespace).
    pub reap: bool,
    /// Read end of the lifeline: EOF = exit, [`DETACH`] = stop watching it (a persistent
    /// sandbox, which outlives skiff: only SIGKILL ends the holder then).
    pub lifeline: Option<BorrowedFd<'a>>,
    /// Write end of the ready pipe: the set-up errno, 0 = ready.
    pub ready: BorrowedFd<'a>,
    pub devnull: BorrowedFd<'a>,
    /// Rootless: `uid_map` and `gid_map` lines the holder writes for itself.
    pub id_maps: Option<(&'a [u8], &'a [u8])>,
    /// Rootless: the holder's end of the socket factory (a `SOCK_SEQPACKET` socket).
    pub factory: Option<BorrowedFd<'a>>,
}

/// Starts the holder with `clone3(flags)` (namespace flags only, `CLONE_NEW*`). Returns its
/// PID, or the errno of `clone3`; the holder reports its set-up on `a.ready`.
pub fn clone_holder(flags: u64, a: &HolderArgs<'_>) -> Result<i32, Errno> {
    if flags & !NAMESPACE_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    let mut args = clone_args(flags, None);
    // SAFETY: only namespace flags (checked above): a fork into new namespaces. In the child
    // only `holder_main` runs, fork-safe system calls on `a` (the child's copy), never
    // returning.
    let pid = unsafe { clone3(&mut args)? };
    if pid == 0 {
        // SAFETY: we are the child of the clone3 above, single-threaded; `a` is valid.
        unsafe { holder_main(a) }
    }
    Ok(pid)
}

/// The holder: set up the namespaces, report, then wait for the lifeline to close while
/// reaping orphans. Never returns.
///
/// # Safety
///
/// Only in the child of a fork-like clone of this process, which it never returns from; `a`
/// and what it borrows are that child's copy of the parent's memory. It closes every
/// descriptor but 0–3 and blocks every signal.
unsafe fn holder_main(a: &HolderArgs<'_>) -> ! {
    let mut err = Ok(());
    // Rootless: map skiff's ids to 0 before anything else (user_namespaces(7): an
    // unprivileged process may write one line mapping its own id, gid_map after setgroups
    // "deny"). The capabilities for the steps below it already has, as the namespace's creator.
    if let Some((uid_map, gid_map)) = a.id_maps {
        err = write_file(c"/proc/self/setgroups", b"deny")
            .and_then(|()| write_file(c"/proc/self/uid_map", uid_map))
            .and_then(|()| write_file(c"/proc/self/gid_map", gid_map));
    }
    if let (Ok(()), Some(h)) = (err, a.hostname) {
        if libc::sethostname(h.as_ptr(), h.to_bytes().len()) != 0 {
            err = Err(Errno::last());
        }
    }
    if err.is_ok() && a.lo_up {
        err = loopback_up();
    }
    let mut err = match err {
        Ok(()) => 0,
        Err(e) => e as i32,
    };
    // Keep only: 0 = lifeline, 1 = ready pipe (until reported), 2 = /dev/null. Everything
    // else inherited from skiff (other containers' pipes, sockets) is closed, since this
    // process never execs and would otherwise keep them open.
    // (Rootless: 3 = the socket factory.)
    let life = match a.lifeline {
        Some(l) => l.as_raw_fd(),
        None => a.devnull.as_raw_fd(),
    };
    let mut ok = libc::dup2(life, 0) >= 0
        && libc::dup2(a.ready.as_raw_fd(), 1) >= 0
        && libc::dup2(a.devnull.as_raw_fd(), 2) >= 0;
    let keep = match a.factory {
        Some(f) => {
            ok = ok && libc::dup2(f.as_raw_fd(), 3) >= 0;
            4u32
        }
        None => 3u32,
    };
    ok = ok && libc::syscall(libc::SYS_close_range, keep, u32::MAX, 0u32) == 0;
    if !ok && err == 0 {
        err = Errno::last_raw();
    }
    let mut mask: libc::sigset_t = std::mem::zeroed();
    libc::sigfillset(&mut mask);
    libc::pthread_sigmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut());
    let mut chld: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut chld);
    libc::sigaddset(&mut chld, libc::SIGCHLD);
    let sfd = libc::signalfd(-1, &chld, libc::SFD_CLOEXEC);
    if sfd < 0 && err == 0 {
        err = Errno::last_raw();
    }
    let b = err.to_ne_bytes();
    let w = if ok { 1 } else { a.ready.as_raw_fd() };
    libc::write(w, b.as_ptr().cast(), b.len());
    if err != 0 {
        libc::_exit(1);
    }
    libc::dup2(2, 1);
    let mut fds = [
        libc::pollfd {
            // Without a lifeline, nothing to watch (poll ignores negative descriptors).
            fd: if a.lifeline.is_some() { 0 } else { -1 },
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: sfd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: if a.factory.is_some() { 3 } else { -1 },
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        let n = libc::poll(fds.as_mut_ptr(), 3, -1);
        if n < 0 {
            if Errno::last_raw() == libc::EINTR {
                continue;
            }
            libc::_exit(2);
        }
        if fds[0].revents != 0 {
            let mut b = [0u8; 1];
            let n = libc::read(0, b.as_mut_ptr().cast(), 1);
            if n == 1 && b[0] == DETACH {
                // Persistent from now on: the lifeline is no longer watched.
                fds[0].fd = -1;
            } else if !(n < 0 && Errno::last_raw() == libc::EINTR) {
                // Lifeline closed: skiff is gone (or let go of the sandbox).
                libc::_exit(0);
            }
        }
        if fds[1].revents != 0 {
            let mut info = [0u8; 128];
            libc::read(sfd, info.as_mut_ptr().cast(), info.len());
            if a.reap {
                while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
            }
        }
        if fds[2].revents != 0 && !serve_socket(3) {
            // skiff closed its end: stop watching it (poll ignores negative descriptors).
            fds[2].fd = -1;
        }
    }
}

/// `open` + `write` + `close` (fork-safe: rustix's direct system calls, no allocation).
fn write_file(path: &CStr, data: &[u8]) -> Result<(), Errno> {
    use rustix::fs::{Mode, OFlags};
    let errno = |e: rustix::io::Errno| Errno::from_raw(e.raw_os_error());
    let fd =
        rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty()).map_err(errno)?;
    rustix::io::write(&fd, data).map_err(errno)?;
    Ok(())
}

/// Answers one socket factory request on `fd` — a TCP socket of the asked family, created
/// here in the pod's network namespace, sent with `SCM_RIGHTS`, and the errno of `socket(2)`
/// (0 = a descriptor is attached) as the 4-byte payload. Returns false when the peer is gone.
/// Fork-safe: system calls on the stack only.
fn serve_socket(fd: RawFd) -> bool {
    let mut req = [0u8; 1];
    match socket::recv(fd, &mut req, MsgFlags::MSG_DONTWAIT) {
        Ok(0) => return false,
        Ok(_) => {}
        Err(e) => return e == Errno::EAGAIN || e == Errno::EINTR,
    }
    let family = if req[0] == FACTORY_V6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let sock = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None);
    let mut errno = match &sock {
        Ok(_) => 0,
        Err(e) => *e as i32,
    };
    // Not nix's `sendmsg`: it allocates the control buffer.
    // Control buffer for one descriptor, aligned for `cmsghdr`.
    #[repr(C, align(8))]
    struct Cmsg([u8; 64]);
    let mut cbuf = Cmsg([0; 64]);
    let mut iov = libc::iovec {
        iov_base: (&mut errno as *mut i32).cast(),
        iov_len: std::mem::size_of::<i32>(),
    };
    // SAFETY: all-zero is a valid `msghdr` (no name, no data, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Ok(sock) = &sock {
        let raw = sock.as_raw_fd();
        let fd_len = std::mem::size_of::<RawFd>() as u32;
        // SAFETY: `cbuf` (64 bytes, aligned for `cmsghdr`) has room for the header and one
        // descriptor (CMSG_SPACE(4) = 24); CMSG_FIRSTHDR of a `msghdr` whose control buffer
        // is that size points at its start, and CMSG_DATA inside it.
        unsafe {
            msg.msg_control = cbuf.0.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(fd_len) as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(fd_len) as _;
            std::ptr::copy_nonoverlapping(
                (&raw as *const RawFd).cast::<u8>(),
                libc::CMSG_DATA(c),
                fd_len as usize,
            );
        }
    }
    // SAFETY: `msg` points at `iov` (the 4 bytes of `errno`) and, with a socket, at `cbuf`,
    // all of which outlive the call; the kernel only reads them.
    let sent = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
    let gone = sent < 0 && Errno::last() == Errno::EPIPE;
    // `sock` (if any) is closed here: the peer has its own copy.
    drop(sock);
    !gone
}

/// `ip link set lo up` with the classic interface ioctls: two system calls on a datagram
/// socket, fork-safe and without a netlink dependency (netlink would need a crate and a
/// message buffer for one flag).
fn loopback_up() -> Result<(), Errno> {
    let s = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: all-zero is a valid `ifreq` (empty name, zero union).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, c) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *c as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads `ifr_name` and writes `ifr_flags` inside `ifr`, which
    // outlives the call.
    if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(Errno::last());
    }
    // SAFETY: SIOCGIFFLAGS filled the union's `ifru_flags`; any bits are a valid `c_short`.
    unsafe {
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS only reads `ifr`, which outlives the call.
    if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    #[test]
    fn only_namespace_flags_are_accepted() {
        let (_r, w) = nix::unistd::pipe().expect("pipe");
        let fd = std::os::fd::AsFd::as_fd(&w);
        let args = HolderArgs {
            hostname: None,
            lo_up: false,
            reap: false,
            lifeline: Some(fd),
            ready: fd,
            devnull: fd,
            id_maps: None,
            factory: None,
        };
        // CLONE_VM would share this process's memory with a child that never returns.
        assert_eq!(
            clone_holder(libc::CLONE_VM as u64, &args),
            Err(Errno::EINVAL)
        );
    }
}
