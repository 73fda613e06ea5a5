//! Each container's own mount namespace (isolation step 2).
//!
//! For runtime class `host` the root filesystem stays the host's: the child unshares its
//! mount namespace, makes `/` recursively a slave — runc's default root propagation when
//! `rootfsPropagation` is unset (`libcontainer/rootfs_linux.go` `prepareRoot`) — so nothing
//! it mounts shows up on the host while host mounts still reach it, mounts a fresh `/proc`
//! when it lives in the pod's PID namespace, and bind-mounts each [`MountSpec`] the way
//! containerd passes CRI mounts to runc (`rbind`, then `ro` as a bind remount, then the
//! propagation: `rprivate` for None, `rslave` for HostToContainer, `rshared` for
//! Bidirectional; containerd `internal/cri/opts/spec_linux_opts.go` `WithMounts`), sorted by
//! the depth of their target so a parent is mounted before what lies inside it.
//!
//! `readOnlyRootFilesystem` remounts the container's `/` read-only — runc's `root.readonly`
//! (`libcontainer/rootfs_linux.go` `finalizeRootfs` → `setReadonly`: a bind remount of `/`
//! with the flags it already has plus `MS_RDONLY`). Like runc it comes after the bind mounts:
//! a bind mount copies the flags of the mount it comes from, so volumes bound after the
//! remount would be read-only too; bound before, they are mounts of their own and stay
//! writable unless `readOnly`. Only `/` itself changes (no `MS_REC`), in the container's own
//! namespace: the host's `/` is never touched. Every read-only remount keeps the mount's
//! existing nosuid/nodev/noexec/atime flags (from `statfs`), as runc does, because in a user
//! namespace (rootless) the kernel refuses to clear flags locked by the host.
//!
//! Unmounting is the kernel's job: the namespace dies with its last process and takes its
//! mounts with it, so nothing is ever unmounted by hand and nothing reaches the host's table.
//!
//! Mount points must exist; the child should not allocate, so missing ones are created in the
//! parent ([`ensure_mountpoints`]) — on the host's filesystem, which is the container's root —
//! and removed again when the pod's sandbox is destroyed (only if still empty).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::libc;

use crate::isolation::{MountSpec, Propagation};
use crate::launch::StartError;

/// A container's mount namespace in fork-safe form.
#[derive(Debug, Default)]
pub(crate) struct PreparedMounts {
    mount_proc: bool,
    /// The container's default view (own /proc, /sys, /dev, masks; `container_view`).
    view: Option<crate::container_view::PreparedView>,
    read_only_root: bool,
    mounts: Vec<PreparedMount>,
}

#[derive(Debug)]
struct PreparedMount {
    source: CString,
    target: CString,
    read_only: bool,
    propagation: libc::c_ulong,
}

/// Converts `mounts` (in mount order) for the child.
pub(crate) fn prepare(
    mounts: &[MountSpec],
    mount_proc: bool,
    view: Option<&crate::container_view::ViewPlan>,
    read_only_root: bool,
) -> Result<PreparedMounts, StartError> {
    let mut sorted: Vec<&MountSpec> = mounts.iter().collect();
    // containerd sorts CRI mounts by the number of path components of the destination
    // (stable), so /a is mounted before /a/b.
    sorted.sort_by_key(|m| m.target.components().count());
    let c = |p: &Path, what: &str| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| StartError::Config(format!("{what} {p:?} contains a NUL byte")))
    };
    let mut out = Vec::with_capacity(sorted.len());
    for m in sorted {
        if !m.target.is_absolute() {
            return Err(StartError::Config(format!(
                "mount path {:?} must be absolute",
                m.target
            )));
        }
        out.push(PreparedMount {
            source: c(&m.source, "mount source")?,
            target: c(&m.target, "mount path")?,
            read_only: m.read_only,
            propagation: match m.propagation {
                Propagation::Private => libc::MS_REC | libc::MS_PRIVATE,
                Propagation::HostToContainer => libc::MS_REC | libc::MS_SLAVE,
                Propagation::Bidirectional => libc::MS_REC | libc::MS_SHARED,
            },
        });
    }
    let view = view
        .map(|v| v.prepare().map_err(StartError::Config))
        .transpose()?;
    Ok(PreparedMounts {
        mount_proc: mount_proc && view.is_none(),
        view,
        read_only_root,
        mounts: out,
    })
}

/// In the forked child: own mount namespace, `/` rslave, `/proc`, the bind mounts.
///
/// SAFETY (caller): only in the single-threaded child after fork, before exec; raw system
/// calls only.
#[allow(unsafe_code)]
pub(crate) unsafe fn apply_in_child(p: &PreparedMounts) -> Result<(), Errno> {
    let null = std::ptr::null::<libc::c_char>();
    let check = |r: libc::c_int| if r == 0 { Ok(()) } else { Err(Errno::last()) };
    check(libc::unshare(libc::CLONE_NEWNS))?;
    check(libc::mount(
        null,
        c"/".as_ptr(),
        null,
        libc::MS_REC | libc::MS_SLAVE,
        std::ptr::null(),
    ))?;
    // The default view first: the volumes are bound on top of it (container_view module).
    if let Some(v) = &p.view {
        crate::container_view::apply_before_mounts(v)?;
    }
    if p.mount_proc {
        check(libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        ))?;
    }
    for m in &p.mounts {
        check(libc::mount(
            m.source.as_ptr(),
            m.target.as_ptr(),
            null,
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        ))?;
        if m.read_only {
            remount_read_only(&m.target)?;
        }
        check(libc::mount(
            null,
            m.target.as_ptr(),
            null,
            m.propagation,
            std::ptr::null(),
        ))?;
    }
    // Masked and read-only paths after the volumes, as runc does.
    if let Some(v) = &p.view {
        crate::container_view::apply_after_mounts(v)?;
    }
    // readOnlyRootFilesystem: last, see the module docs.
    if p.read_only_root {
        remount_read_only(c"/")?;
    }
    Ok(())
}

/// Bind-remounts `target` read-only, keeping the flags it has (runc's remount with the
/// `statfs` flags: a user namespace may not clear flags the host locked).
///
/// SAFETY (caller): as [`apply_in_child`]; raw system calls only.
#[allow(unsafe_code)]
pub(crate) unsafe fn remount_read_only(target: &std::ffi::CStr) -> Result<(), Errno> {
    // glibc's statvfs is one statfs(2) system call.
    let mut st: libc::statvfs = std::mem::zeroed();
    if libc::statvfs(target.as_ptr(), &mut st) != 0 {
        return Err(Errno::last());
    }
    // ST_* values equal the MS_* ones for these, except ST_RELATIME (statvfs(3)).
    let f = st.f_flag as libc::c_ulong;
    let keep =
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_NOATIME | libc::MS_NODIRATIME;
    let mut flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | (f & keep);
    if f & libc::ST_RELATIME as libc::c_ulong != 0 {
        flags |= libc::MS_RELATIME;
    }
    let null = std::ptr::null::<libc::c_char>();
    if libc::mount(null, target.as_ptr(), null, flags, std::ptr::null()) != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Creates the missing mount points of `mounts` (a directory, or an empty file when the
/// source is not a directory, as runc does), and returns the topmost path created for each,
/// for [`remove_mountpoints`].
pub(crate) fn ensure_mountpoints(mounts: &[MountSpec]) -> Result<Vec<PathBuf>, StartError> {
    let mut created = Vec::new();
    for m in mounts {
        if std::fs::symlink_metadata(&m.target).is_ok() {
            continue;
        }
        // Topmost missing ancestor: what to remove later.
        let mut top = m.target.clone();
        let mut cur = m.target.as_path();
        while let Some(parent) = cur.parent() {
            if std::fs::symlink_metadata(parent).is_ok() {
                break;
            }
            top = parent.to_path_buf();
            cur = parent;
        }
        let fail = |e: std::io::Error| {
            StartError::io(format!("creating mount point {}", m.target.display()), e)
        };
        let source_is_dir = std::fs::metadata(&m.source)
            .map(|md| md.is_dir())
            .unwrap_or(true);
        if source_is_dir {
            std::fs::create_dir_all(&m.target).map_err(fail)?;
        } else {
            if let Some(parent) = m.target.parent() {
                std::fs::create_dir_all(parent).map_err(fail)?;
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&m.target)
                .map_err(fail)?;
        }
        created.push(top);
    }
    Ok(created)
}

/// Removes mount points [`ensure_mountpoints`] created, deepest first, as long as they are
/// still empty (another pod, or the user, may have put something there since).
pub(crate) fn remove_mountpoints(created: &[PathBuf]) {
    for top in created {
        remove_empty_tree(top);
    }
}

fn remove_empty_tree(p: &Path) {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return;
    };
    if md.is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                remove_empty_tree(&e.path());
            }
        }
        let _ = std::fs::remove_dir(p);
    } else if md.is_file() && md.len() == 0 {
        let _ = std::fs::remove_file(p);
    }
}
