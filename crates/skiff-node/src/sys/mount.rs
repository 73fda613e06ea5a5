//! `mount_setattr(2)` (Linux 5.12), which neither `nix` nor `rustix` wraps.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::libc;

/// `mount_setattr(dirfd, path, flags, {attr_set, propagation})`: sets `attr_set`
/// (`MOUNT_ATTR_*`) and the propagation (`MS_PRIVATE`/`MS_SLAVE`/`MS_SHARED`, 0 = unchanged)
/// on the mount at `path` relative to `dirfd` (`AT_EMPTY_PATH` with `c""`: the mount
/// `dirfd` names; `AT_RECURSIVE`: every mount below it too).
///
/// Fork-safe: one raw system call on the caller's memory and a stack `mount_attr`.
pub fn mount_setattr(
    dirfd: BorrowedFd<'_>,
    path: &CStr,
    flags: libc::c_int,
    attr_set: u64,
    propagation: u64,
) -> Result<(), Errno> {
    let attr = libc::mount_attr {
        attr_set,
        attr_clr: 0,
        propagation,
        userns_fd: 0,
    };
    // SAFETY: `path` is NUL-terminated and `attr` a complete `mount_attr` whose size is
    // passed; both outlive the call, which only reads them. `dirfd` is open (or AT_FDCWD).
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd.as_raw_fd(),
            path.as_ptr(),
            flags as libc::c_uint,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Whether the kernel has `mount_setattr` (5.12+), what `recursiveReadOnly` needs: a call
/// with a bad descriptor fails with `EBADF`/`EINVAL` where it exists, `ENOSYS` where not.
/// Asked once per process.
pub fn mount_setattr_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        // SAFETY: no memory is passed (null attr, size 0); the kernel only validates the
        // arguments and fails.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                -1,
                c"".as_ptr(),
                0,
                std::ptr::null::<libc::mount_attr>(),
                0,
            )
        };
        !(r < 0 && Errno::last() == Errno::ENOSYS)
    })
}

/// `mount(2)` on C strings (`None` = NULL) with raw `MS_*` flags, through `nix` (which
/// passes C strings as they are).
///
/// Fork-safe: one system call, no allocation.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Result<(), Errno> {
    nix::mount::mount(
        source,
        target,
        fstype,
        nix::mount::MsFlags::from_bits_retain(flags),
        data,
    )
}

/// Bind-remounts `target` read-only, keeping the flags it has (runc's remount with the
/// `statfs` flags: a user namespace may not clear flags the host locked).
///
/// Fork-safe: `statvfs` (one `statfs(2)` in glibc) and `mount(2)`.
pub fn remount_read_only(target: &CStr) -> Result<(), Errno> {
    let st = nix::sys::statvfs::statvfs(target)?;
    // ST_* values equal the MS_* ones for these, except ST_RELATIME (statvfs(3)).
    let f = st.flags().bits();
    let keep =
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_NOATIME | libc::MS_NODIRATIME;
    let mut flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | (f & keep);
    if f & libc::ST_RELATIME as libc::c_ulong != 0 {
        flags |= libc::MS_RELATIME;
    }
    mount(None, target, None, flags, None)
}
