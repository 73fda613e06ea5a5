//! Installing a seccomp filter: `seccomp(SECCOMP_SET_MODE_FILTER)` with a program compiled in
//! the parent (`seccompiler` builds it; its own `apply_filter` also sets no_new_privs, which
//! the container's `allowPrivilegeEscalation` decides, so the call is made here).

use nix::errno::Errno;
use nix::libc;

/// Installs `filter` on the calling thread (and what it `exec`s); an empty filter is a
/// no-op. Without no_new_privs the caller needs `CAP_SYS_ADMIN`.
///
/// Fork-safe: one raw system call on the caller's slice and a stack `sock_fprog`.
pub fn install_filter(filter: &[libc::sock_filter]) -> Result<(), Errno> {
    if filter.is_empty() {
        return Ok(());
    }
    let len = libc::c_ushort::try_from(filter.len()).map_err(|_| Errno::EINVAL)?;
    let prog = libc::sock_fprog {
        len,
        // The kernel only reads the program (the field is `*mut` in the C declaration).
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `len` instructions of `filter`, which outlives the call; the
    // kernel copies the program and writes nothing back.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}
