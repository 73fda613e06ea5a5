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
//! No path a container can change is resolved by root when mounting (issue 7 item 1). The
//! source of each bind mount is the descriptor its [`MountSpec`] holds: the parent turns it
//! into a detached copy of the mount tree (`open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`, the
//! rbind), the child attaches that copy with `move_mount` onto a target it opened with
//! `openat2` — a target on the host's root by its canonical path with `RESOLVE_NO_SYMLINKS`,
//! one below an earlier mount of the container from that mount's descriptor with
//! `RESOLVE_BENEATH` — and sets `ro` (`recursiveReadOnly`: recursively) and the propagation
//! with `mount_setattr` on the mount itself (runc mounts onto `/proc/self/fd/N` for the same
//! reason). Rootless (no `CAP_SYS_ADMIN` in the parent, mounts made in the pod's user
//! namespace) the paths are bound as before: a rootless skiff has no more rights than its
//! user.
//!
//! Mount points must exist; the child should not allocate, so missing ones are created in the
//! parent ([`ensure_mountpoints`]) — on the host's filesystem, which is the container's root,
//! or, below an earlier volume mount, inside that volume's directory — by descriptor, never
//! through a symlink a container could plant (on the host root, only symlinks owned by root
//! are followed, such as `/var/run -> /run`), recorded in the pod's crash record *before*
//! they are made, and removed again when the pod's sandbox is destroyed (or by the next start
//! after a crash) if still empty.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;

use crate::fdwalk;
use crate::spec::{MountSpec, Propagation, StartError};
use crate::sys::mount::{mount, mount_setattr, remount_read_only};

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
    /// The detached copy of the source to attach (privileged); `None`: bind `source`.
    tree: Option<OwnedFd>,
    source: CString,
    /// The container's path (what the rootless fallback mounts onto).
    target: CString,
    /// Where the child opens the target (with a tree).
    at: Target,
    read_only: bool,
    recursive_read_only: bool,
    /// For `mount(2)` (fallback).
    propagation: libc::c_ulong,
    /// For `mount_setattr`.
    propagation_attr: u64,
}

#[derive(Debug)]
enum Target {
    /// On the host's root: its canonical path, opened with `RESOLVE_NO_SYMLINKS`.
    Root(CString),
    /// Below the earlier mount `parent` (index in `mounts`): `rest` from that mount's
    /// descriptor with `RESOLVE_BENEATH`.
    Under { parent: usize, rest: CString },
}

fn cstr(p: &Path, what: &str) -> Result<CString, StartError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| StartError::Config(format!("{what} {p:?} contains a NUL byte")))
}

/// The deepest mount in `mounts[..upto]` whose target strictly contains `target`.
fn parent_mount(mounts: &[&MountSpec], upto: usize, target: &Path) -> Option<usize> {
    mounts[..upto]
        .iter()
        .enumerate()
        .filter(|(_, m)| m.target != target && target.starts_with(&m.target))
        .max_by_key(|(_, m)| m.target.components().count())
        .map(|(i, _)| i)
}

/// `open_tree(fd or path, OPEN_TREE_CLONE | AT_RECURSIVE)`: a detached copy of the mount
/// tree at the source (the rbind), taken from the held descriptor when there is one. A child
/// in another mount namespace can attach it with `move_mount` — a descriptor of a mount in
/// skiff's own namespace cannot be bound there.
fn clone_tree(m: &MountSpec) -> io::Result<OwnedFd> {
    use rustix::mount::OpenTreeFlags as F;
    let flags = F::OPEN_TREE_CLONE | F::OPEN_TREE_CLOEXEC | F::AT_RECURSIVE;
    match &m.source_fd {
        Some(fd) => rustix::mount::open_tree(&*fd.0, c"", flags | F::AT_EMPTY_PATH),
        None => {
            let path = CString::new(m.source.as_os_str().as_bytes())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            rustix::mount::open_tree(
                rustix::fs::CWD,
                path.as_c_str(),
                flags | F::AT_SYMLINK_NOFOLLOW,
            )
        }
    }
    .map_err(io::Error::from)
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
    // A rootless skiff cannot clone mount trees in its own namespace: paths (module docs).
    let by_fd = !crate::namespaces::rootless();
    let mut out = Vec::with_capacity(sorted.len());
    for (i, m) in sorted.iter().enumerate() {
        if !m.target.is_absolute() {
            return Err(StartError::Config(format!(
                "mount path {:?} must be absolute",
                m.target
            )));
        }
        let tree = if by_fd {
            Some(clone_tree(m).map_err(|e| {
                StartError::io(
                    format!("cloning the mount source {}", m.source.display()),
                    e,
                )
            })?)
        } else {
            None
        };
        let at = match parent_mount(&sorted, i, &m.target) {
            Some(parent) => {
                let rest = m
                    .target
                    .strip_prefix(&sorted[parent].target)
                    .unwrap_or(&m.target);
                Target::Under {
                    parent,
                    rest: cstr(rest, "mount path")?,
                }
            }
            // In the container's private /dev (a tmpfs skiff makes in the child, where
            // `container_view` makes the mount point): nothing a container planted.
            None if view.is_some() && crate::container_view::in_dev(&m.target) => {
                Target::Root(cstr(&m.target, "mount path")?)
            }
            None if by_fd => {
                let fd = open_host_target(&m.target).map_err(|e| {
                    StartError::io(format!("opening mount point {}", m.target.display()), e)
                })?;
                let canonical = fdwalk::fd_path(fd.as_fd()).map_err(|e| {
                    StartError::io(format!("resolving mount point {}", m.target.display()), e)
                })?;
                Target::Root(cstr(&canonical, "mount path")?)
            }
            None => Target::Root(cstr(&m.target, "mount path")?),
        };
        let (propagation, propagation_attr) = match m.propagation {
            Propagation::Private => (libc::MS_PRIVATE, libc::MS_PRIVATE),
            Propagation::HostToContainer => (libc::MS_SLAVE, libc::MS_SLAVE),
            Propagation::Bidirectional => (libc::MS_SHARED, libc::MS_SHARED),
        };
        out.push(PreparedMount {
            tree,
            source: cstr(&m.source, "mount source")?,
            target: cstr(&m.target, "mount path")?,
            at,
            read_only: m.read_only || m.recursive_read_only,
            recursive_read_only: m.recursive_read_only,
            propagation: libc::MS_REC | propagation,
            propagation_attr,
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
/// Fork-safe (see `sys`): system calls on the prepared C strings and descriptors only.
pub(crate) fn apply_in_child(p: &PreparedMounts) -> Result<(), Errno> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    mount(None, c"/", None, libc::MS_REC | libc::MS_SLAVE, None)?;
    // The default view first: the volumes are bound on top of it (container_view module).
    if let Some(v) = &p.view {
        crate::container_view::apply_before_mounts(v)?;
    }
    if p.mount_proc {
        mount(
            Some(c"proc"),
            c"/proc",
            Some(c"proc"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        )?;
    }
    for m in &p.mounts {
        match &m.tree {
            Some(tree) => attach_tree(p, m, tree.as_fd())?,
            None => bind_path(m)?,
        }
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

/// `openat2(dirfd, path, O_PATH | O_CLOEXEC, resolve)`, for the child: `rustix` passes the
/// C string as it is (fork-safe).
fn child_openat2(
    dirfd: BorrowedFd<'_>,
    path: &std::ffi::CStr,
    resolve: u64,
) -> Result<OwnedFd, Errno> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let path = if path.is_empty() { c"." } else { path };
    rustix::fs::openat2(
        dirfd,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::from_bits_retain(resolve),
    )
    .map_err(|e| Errno::from_raw(e.raw_os_error()))
}

/// Attaches the detached tree `tree` of `m` onto its target, opened without following a
/// symlink a container controls, then read-only and propagation on the mount itself.
/// Fork-safe.
fn attach_tree(p: &PreparedMounts, m: &PreparedMount, tree: BorrowedFd<'_>) -> Result<(), Errno> {
    let target = match &m.at {
        Target::Root(path) => child_openat2(
            rustix::fs::CWD,
            path,
            libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
        )?,
        Target::Under { parent, rest } => {
            match p.mounts.get(*parent).and_then(|pm| pm.tree.as_ref()) {
                Some(pt) => child_openat2(pt.as_fd(), rest, fdwalk::BENEATH)?,
                None => return Err(Errno::EINVAL),
            }
        }
    };
    {
        use rustix::mount::MoveMountFlags as F;
        rustix::mount::move_mount(
            tree,
            c"",
            &target,
            c"",
            F::MOVE_MOUNT_F_EMPTY_PATH | F::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .map_err(|e| Errno::from_raw(e.raw_os_error()))?;
    }
    drop(target);
    // `tree` now names the attached mount. `ro` is the top mount only (a bind remount),
    // recursiveReadOnly every mount below too; other flags are left as they are.
    if m.read_only {
        let rec = if m.recursive_read_only {
            libc::AT_RECURSIVE
        } else {
            0
        };
        mount_setattr(
            tree,
            c"",
            libc::AT_EMPTY_PATH | rec,
            libc::MOUNT_ATTR_RDONLY,
            0,
        )?;
    }
    mount_setattr(
        tree,
        c"",
        libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
        0,
        m.propagation_attr,
    )
}

/// The rootless fallback: bind the paths (see the module docs). Fork-safe.
fn bind_path(m: &PreparedMount) -> Result<(), Errno> {
    mount(
        Some(&m.source),
        &m.target,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )?;
    if m.recursive_read_only {
        mount_setattr(
            rustix::fs::CWD,
            &m.target,
            libc::AT_RECURSIVE,
            libc::MOUNT_ATTR_RDONLY,
            0,
        )?;
    } else if m.read_only {
        remount_read_only(&m.target)?;
    }
    mount(None, &m.target, None, m.propagation, None)
}

/// Opens a mount target on the host's root (`O_PATH`) component by component with
/// `O_NOFOLLOW`, following a symlink only when root owns it (a container cannot plant one
/// there without being root on the host already). `Ok((fd, n))`: the first `n` components
/// exist, `fd` is the last of them (the target itself when `n` is all of them).
fn walk_host(parts: &[&OsStr]) -> io::Result<(OwnedFd, usize)> {
    let mut cur = fdwalk::open_path(Path::new("/"), false)?;
    for (i, part) in parts.iter().enumerate() {
        let next = match fdwalk::open_nofollow(cur.as_fd(), part, OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok((cur, i)),
            Err(e) => return Err(e),
        };
        let st = nix::sys::stat::fstat(&next)?;
        let next = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            if st.st_uid != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{:?} is a symlink not owned by root", part),
                ));
            }
            match fdwalk::openat2(
                cur.as_fd(),
                Path::new(part),
                libc::O_PATH,
                libc::RESOLVE_NO_MAGICLINKS,
            ) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{part:?} is a dangling symlink"),
                    ))
                }
                Err(e) => return Err(e),
            }
        } else {
            next
        };
        cur = next;
    }
    Ok((cur, parts.len()))
}

/// The existing mount target `target` on the host's root (see [`walk_host`]).
fn open_host_target(target: &Path) -> io::Result<OwnedFd> {
    let parts = fdwalk::components(target.strip_prefix("/").unwrap_or(target))?;
    match walk_host(&parts)? {
        (fd, n) if n == parts.len() => Ok(fd),
        _ => Err(io::Error::from(io::ErrorKind::NotFound)),
    }
}

/// Below a volume's directory `root`: the existing prefix of `parts` with `RESOLVE_BENEATH`.
fn walk_beneath(root: BorrowedFd<'_>, parts: &[&OsStr]) -> io::Result<(OwnedFd, usize)> {
    let mut cur = fdwalk::openat2(root, Path::new("."), libc::O_PATH, fdwalk::BENEATH)?;
    for i in 0..parts.len() {
        let prefix: PathBuf = parts[..=i].iter().collect();
        match fdwalk::openat2(root, &prefix, libc::O_PATH, fdwalk::BENEATH) {
            Ok(fd) => cur = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok((cur, i)),
            Err(e) => return Err(e),
        }
    }
    Ok((cur, parts.len()))
}

/// Creates the missing mount points of `mounts` (a directory, or an empty file when the
/// source is not a directory, as runc does): on the host's root, or inside the directory of
/// the earlier mount whose target contains it (what the container will see there). Each
/// topmost created path is passed to `record` before it is made (the pod's crash record),
/// then pushed to `created` for [`remove_mountpoints`].
pub(crate) fn ensure_mountpoints(
    mounts: &[MountSpec],
    record: &mut dyn FnMut(&Path) -> io::Result<()>,
    created: &mut Vec<PathBuf>,
) -> Result<(), StartError> {
    let all: Vec<&MountSpec> = mounts.iter().collect();
    for m in mounts {
        let fail = |e: io::Error| {
            StartError::io(format!("creating mount point {}", m.target.display()), e)
        };
        let (cur, parts, n) = match parent_mount(&all, all.len(), &m.target) {
            Some(pi) => {
                let p = all[pi];
                let rest = m.target.strip_prefix(&p.target).unwrap_or(&m.target);
                let parts = fdwalk::components(rest).map_err(fail)?;
                let root = match &p.source_fd {
                    Some(fd) => fd.0.as_fd().try_clone_to_owned().map_err(fail)?,
                    None => fdwalk::open_path(&p.source, false).map_err(fail)?,
                };
                let (cur, n) = walk_beneath(root.as_fd(), &parts).map_err(fail)?;
                (cur, parts, n)
            }
            None => {
                let rel = m.target.strip_prefix("/").unwrap_or(&m.target);
                let parts = fdwalk::components(rel).map_err(fail)?;
                let (cur, n) = walk_host(&parts).map_err(fail)?;
                (cur, parts, n)
            }
        };
        if n == parts.len() {
            continue;
        }
        let source_is_dir = match &m.source_fd {
            Some(fd) => nix::sys::stat::fstat(&*fd.0)
                .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
                .unwrap_or(true),
            None => std::fs::metadata(&m.source)
                .map(|md| md.is_dir())
                .unwrap_or(true),
        };
        let top = fdwalk::fd_path(cur.as_fd()).map_err(fail)?.join(parts[n]);
        record(&top).map_err(fail)?;
        created.push(top);
        let mut cur = fdwalk::open_nofollow(
            cur.as_fd(),
            OsStr::new("."),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
        )
        .map_err(fail)?;
        for (i, part) in parts.iter().enumerate().skip(n) {
            let last = i + 1 == parts.len();
            if last && !source_is_dir {
                nix::fcntl::openat(
                    &cur,
                    *part,
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::from_bits_truncate(0o644),
                )
                .map_err(|e| fail(e.into()))?;
                break;
            }
            match nix::sys::stat::mkdirat(
                &cur,
                *part,
                nix::sys::stat::Mode::from_bits_truncate(0o755),
            ) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(fail(e.into())),
            }
            // Never into a symlink swapped in meanwhile (ELOOP).
            cur = fdwalk::open_nofollow(cur.as_fd(), part, OFlag::O_PATH | OFlag::O_DIRECTORY)
                .map_err(fail)?;
        }
    }
    Ok(())
}

/// Removes mount points [`ensure_mountpoints`] created (or a crash record lists), as long as
/// they are still empty (another pod, or the user, may have put something there since),
/// never following a symlink: each is reached from `/` with `RESOLVE_NO_SYMLINKS` (the
/// recorded paths are canonical) and emptied by descriptor.
pub(crate) fn remove_mountpoints(created: &[PathBuf]) {
    for top in created {
        let (Some(parent), Some(name)) = (top.parent(), top.file_name()) else {
            continue;
        };
        let Ok(root) = fdwalk::open_path(Path::new("/"), false) else {
            return;
        };
        let rel = parent.strip_prefix("/").unwrap_or(parent);
        let Ok(pfd) = fdwalk::openat2(
            root.as_fd(),
            rel,
            libc::O_PATH | libc::O_DIRECTORY,
            libc::RESOLVE_NO_SYMLINKS,
        ) else {
            continue;
        };
        remove_empty_tree(pfd.as_fd(), name, 0);
    }
}

/// Empty directories and empty regular files only, at most a few levels (mount points are
/// shallow).
fn remove_empty_tree(dir: BorrowedFd<'_>, name: &OsStr, depth: usize) {
    use nix::fcntl::AtFlags;
    use nix::unistd::{unlinkat, UnlinkatFlags};
    let Ok(st) = nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
        return;
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR if depth < 16 => {
            if let Ok(sub) = fdwalk::open_nofollow(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            {
                for n in fdwalk::entries(sub.as_fd()).unwrap_or_default() {
                    remove_empty_tree(sub.as_fd(), &n, depth + 1);
                }
            }
            let _ = unlinkat(dir, name, UnlinkatFlags::RemoveDir);
        }
        libc::S_IFREG if st.st_size == 0 => {
            let _ = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::HeldFd;
    use std::sync::Arc;

    fn spec(source: &Path, target: &Path) -> MountSpec {
        MountSpec {
            source: source.to_path_buf(),
            target: target.to_path_buf(),
            source_fd: Some(HeldFd(Arc::new(fdwalk::open_path(source, true).unwrap()))),
            ..Default::default()
        }
    }

    #[test]
    fn mount_points_are_recorded_before_they_exist_and_made_inside_the_volume() {
        let t = tempfile::tempdir().unwrap();
        let vol = t.path().join("vol");
        let file = t.path().join("file");
        std::fs::create_dir(&vol).unwrap();
        std::fs::write(&file, "x").unwrap();
        let target = t.path().join("c/data");
        let mounts = vec![
            spec(&vol, &target),
            // Below the first mount: made in `vol`, not on the host path.
            spec(&vol, &target.join("sub/nested")),
            // A file source gets an empty file as its mount point.
            spec(&file, &t.path().join("c/f")),
        ];
        let mut recorded = Vec::new();
        let mut created = Vec::new();
        ensure_mountpoints(
            &mounts,
            &mut |p| {
                assert!(!p.exists(), "{} recorded after it was made", p.display());
                recorded.push(p.to_path_buf());
                Ok(())
            },
            &mut created,
        )
        .unwrap();
        assert_eq!(recorded, created);
        assert_eq!(
            created,
            [t.path().join("c"), vol.join("sub"), t.path().join("c/f")]
        );
        assert!(target.is_dir());
        assert!(vol.join("sub/nested").is_dir());
        assert!(!target.join("sub").exists());
        assert!(t.path().join("c/f").is_file());
        // Removal: only what is still empty.
        std::fs::write(vol.join("sub/nested/keep"), "k").unwrap();
        remove_mountpoints(&created);
        assert!(!t.path().join("c").exists());
        assert!(vol.join("sub/nested/keep").exists());
    }

    #[test]
    fn a_failed_record_creates_nothing() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("a/b");
        let mounts = vec![spec(t.path(), &target)];
        let mut created = Vec::new();
        let e = ensure_mountpoints(&mounts, &mut |_| Err(io::Error::other("no")), &mut created);
        assert!(e.is_err());
        assert!(created.is_empty() && !t.path().join("a").exists());
    }

    #[test]
    fn planted_symlinks_are_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let vol = t.path().join("vol");
        let outside = t.path().join("outside");
        std::fs::create_dir(&vol).unwrap();
        std::fs::create_dir(&outside).unwrap();
        // In a volume: an escaping link where the mount point's parent would be.
        std::os::unix::fs::symlink(&outside, vol.join("sub")).unwrap();
        let data = t.path().join("c/data");
        let mounts = vec![spec(&vol, &data), spec(&vol, &data.join("sub/x"))];
        let mut created = Vec::new();
        assert!(ensure_mountpoints(&mounts, &mut |_| Ok(()), &mut created).is_err());
        assert!(!outside.join("x").exists());
        // On the host root: a link not owned by root is refused, root's own is followed.
        if nix::unistd::geteuid().is_root() {
            let plant = t.path().join("plant");
            std::os::unix::fs::symlink(&outside, &plant).unwrap();
            std::os::unix::fs::lchown(&plant, Some(65534), Some(65534)).unwrap();
            let mounts = vec![spec(&vol, &plant.join("y"))];
            assert!(ensure_mountpoints(&mounts, &mut |_| Ok(()), &mut created).is_err());
            assert!(!outside.join("y").exists());
            std::os::unix::fs::lchown(&plant, Some(0), Some(0)).unwrap();
            let mut made = Vec::new();
            ensure_mountpoints(&mounts, &mut |_| Ok(()), &mut made).unwrap();
            // Recorded by its real (canonical) path, removable without following links.
            assert_eq!(made, [outside.join("y")]);
            remove_mountpoints(&made);
            assert!(!outside.join("y").exists());
        }
        // Removal never follows a symlink in a recorded path.
        std::fs::create_dir(outside.join("z")).unwrap();
        remove_mountpoints(&[vol.join("sub/z")]);
        assert!(outside.join("z").exists());
    }

    #[test]
    fn targets_below_earlier_mounts_are_resolved_from_them() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        std::fs::create_dir_all(a.join("b")).unwrap();
        let m = [
            MountSpec {
                target: a.join("b/c"),
                source: a.clone(),
                ..Default::default()
            },
            MountSpec {
                target: a.clone(),
                source: a.clone(),
                ..Default::default()
            },
            MountSpec {
                target: a.join("b"),
                source: a.clone(),
                ..Default::default()
            },
        ];
        let sorted: Vec<&MountSpec> = {
            let mut s: Vec<&MountSpec> = m.iter().collect();
            s.sort_by_key(|m| m.target.components().count());
            s
        };
        assert_eq!(parent_mount(&sorted, 0, &sorted[0].target), None);
        assert_eq!(parent_mount(&sorted, 1, &sorted[1].target), Some(0));
        assert_eq!(parent_mount(&sorted, 2, &sorted[2].target), Some(1));
    }
}
