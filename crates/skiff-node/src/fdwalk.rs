//! Paths a pod can change, handled by file descriptor (issue 7 item 1): resolution that stays
//! inside a directory (`openat2` with `RESOLVE_BENEATH`), creation that never follows a
//! symlink (`mkdirat` + `openat(O_NOFOLLOW)` + `fchmod` on the fd), and tree walks (usage,
//! removal) that are not bounded by `PATH_MAX` nor by the stack.
//!
//! Upstream: the kubelet's `pkg/volume/util/subpath/subpath_linux.go` (`doSafeMakeDir`,
//! `doSafeOpen`, `findExistingPrefix`) does the same with `openat` + `O_NOFOLLOW`;
//! `pkg/volume/util/fs/fs.go` `DiskUsage` counts `st_blocks * 512` once per inode.

use std::collections::HashSet;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::libc;
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};

/// `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: symlinks are followed as long as they stay
/// inside the starting directory (configMap keys are `key -> ..data/key` links); an absolute
/// link or one leaving it fails with `EXDEV`.
pub(crate) const BENEATH: u64 = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `openat2(dir, path, flags | O_CLOEXEC, resolve)`.
pub(crate) fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: libc::c_int,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let c = cpath(if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    })?;
    Ok(rustix::fs::openat2(
        dir,
        c.as_c_str(),
        rustix::fs::OFlags::from_bits_retain((flags | libc::O_CLOEXEC) as u32),
        rustix::fs::Mode::empty(),
        rustix::fs::ResolveFlags::from_bits_retain(resolve),
    )?)
}

/// `openat(&dir, name, flags | O_NOFOLLOW | O_CLOEXEC)`: one component, never a symlink.
pub(crate) fn open_nofollow(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    flags: OFlag,
) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::openat(
        dir,
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// An `O_PATH` handle on `path` (the last component is not followed when `nofollow`).
pub(crate) fn open_path(path: &Path, nofollow: bool) -> io::Result<OwnedFd> {
    let mut flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
    if nofollow {
        flags |= OFlag::O_NOFOLLOW;
    }
    Ok(nix::fcntl::open(path, flags, Mode::empty())?)
}

/// The path the kernel has for `fd` (`/proc/self/fd/N`), for messages and records only:
/// never re-resolved to act on.
pub(crate) fn fd_path(fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The components of a relative path (`.` and empty ones dropped); `..` is refused.
pub(crate) fn components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in rel.as_os_str().as_bytes().split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "path contains '..'",
                ))
            }
            _ => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

/// Creates the missing directories of `rel` under `root` with `mode` (`fchmod`ed on the fd,
/// so the umask does not apply and a swapped-in symlink is never followed): the existing
/// prefix is resolved with [`BENEATH`], each created component with `mkdirat` and
/// `openat(O_NOFOLLOW | O_DIRECTORY)` relative to its parent's fd. Returns the directory's fd
/// (`O_RDONLY`). The kubelet's `doSafeMakeDir`.
pub(crate) fn make_dirs_beneath(
    root: BorrowedFd<'_>,
    rel: &Path,
    mode: u32,
) -> io::Result<OwnedFd> {
    let parts = components(rel)?;
    let dir = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
    // Longest existing prefix (in-volume symlinks allowed there, escapes refused).
    let mut cur = openat2(root, Path::new("."), dir.bits(), BENEATH)?;
    let mut i = 0;
    while i < parts.len() {
        let prefix: PathBuf = parts[..=i].iter().collect();
        match openat2(root, &prefix, dir.bits(), BENEATH) {
            Ok(fd) => cur = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
            Err(e) => return Err(e),
        }
        i += 1;
    }
    for part in &parts[i..] {
        let created =
            match nix::sys::stat::mkdirat(&cur, *part, Mode::from_bits_truncate(mode & 0o777)) {
                Ok(()) => true,
                Err(nix::errno::Errno::EEXIST) => false,
                Err(e) => return Err(e.into()),
            };
        // Whatever is there now: a directory (not a symlink: ELOOP), opened by its parent fd.
        let child = open_nofollow(cur.as_fd(), part, dir)?;
        if created {
            nix::sys::stat::fchmod(&child, Mode::from_bits_truncate(mode & 0o7777))?;
        }
        cur = child;
    }
    Ok(cur)
}

fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
}

/// Names in the directory `fd` (without `.` and `..`), read through `/proc/self/fd/N`: the
/// magic link names the descriptor's own directory (no path is resolved again, and its
/// length does not depend on the depth).
pub(crate) fn entries(fd: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))? {
        out.push(e?.file_name());
    }
    Ok(out)
}

/// Open descriptors kept while walking down; deeper trees re-open a parent through `..`,
/// checked against its recorded device and inode.
const FD_WINDOW: usize = 32;

struct Level {
    fd: Option<OwnedFd>,
    id: (u64, u64),
    /// Name of this directory in its parent (empty for the root).
    name: OsString,
    /// Subdirectories still to visit.
    pending: Vec<OsString>,
}

/// Walks the tree at `root` (a directory fd) depth-first without recursion, not crossing
/// into other filesystems and never following a symlink. `visit(dir, name, stat)` is called
/// for every entry; `leave(parent, name)` after a subdirectory's contents were all visited.
fn walk(
    root: OwnedFd,
    visit: &mut dyn FnMut(BorrowedFd<'_>, &OsStr, &FileStat),
    leave: &mut dyn FnMut(BorrowedFd<'_>, &OsStr),
) -> io::Result<()> {
    let st = fstat(&root)?;
    let dev = st.st_dev;
    let mut stack: Vec<Level> = Vec::new();
    let read = |fd: BorrowedFd<'_>, visit: &mut dyn FnMut(BorrowedFd<'_>, &OsStr, &FileStat)| {
        let mut dirs = Vec::new();
        for name in entries(fd)? {
            // Gone since it was listed: nothing to count or remove.
            let Ok(st) = fstatat(fd, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue;
            };
            visit(fd, &name, &st);
            if is_dir(&st) && st.st_dev == dev {
                dirs.push(name);
            }
        }
        io::Result::Ok(dirs)
    };
    let pending = read(root.as_fd(), visit)?;
    stack.push(Level {
        fd: Some(root),
        id: (st.st_dev, st.st_ino),
        name: OsString::new(),
        pending,
    });
    loop {
        let Some(top) = stack.last_mut() else {
            return Ok(());
        };
        if let Some(name) = top.pending.pop() {
            let Some(fd) = top.fd.as_ref() else {
                return Err(io::Error::other("lost a directory descriptor"));
            };
            let child = match open_nofollow(fd.as_fd(), &name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            {
                Ok(c) => c,
                // Replaced or removed since it was listed: skip it.
                Err(_) => continue,
            };
            let cst = fstat(&child)?;
            if cst.st_dev != dev {
                continue;
            }
            let pending = read(child.as_fd(), visit)?;
            stack.push(Level {
                fd: Some(child),
                id: (cst.st_dev, cst.st_ino),
                name,
                pending,
            });
            if stack.len() > FD_WINDOW {
                let i = stack.len() - FD_WINDOW - 1;
                stack[i].fd = None;
            }
            continue;
        }
        // Done with `top`: go up.
        let Some(done) = stack.pop() else {
            return Ok(());
        };
        let Some(parent) = stack.last_mut() else {
            return Ok(());
        };
        if parent.fd.is_none() {
            let Some(fd) = done.fd.as_ref() else {
                return Err(io::Error::other("lost a directory descriptor"));
            };
            let up = open_nofollow(
                fd.as_fd(),
                OsStr::new(".."),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            )?;
            let ust = fstat(&up)?;
            if (ust.st_dev, ust.st_ino) != parent.id {
                // Moved while we were below it: stop rather than act elsewhere.
                return Err(io::Error::other("the tree changed during the walk"));
            }
            parent.fd = Some(up);
        }
        if let Some(fd) = parent.fd.as_ref() {
            leave(fd.as_fd(), &done.name);
        }
    }
}

/// `du`-style usage of the directory `path` in bytes: `st_blocks * 512` of every entry
/// however deep, each inode once, not crossing into other filesystems (a mount point's own
/// entry counts, its contents do not). 0 when `path` cannot be opened.
pub(crate) fn disk_usage(path: &Path) -> i64 {
    let Ok(root) = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return 0;
    };
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut total: i64 = 0;
    let mut add = |st: &FileStat, total: &mut i64| {
        if st.st_nlink > 1 && !is_dir(st) && !seen.insert((st.st_dev, st.st_ino)) {
            return;
        }
        *total = total.saturating_add(st.st_blocks.saturating_mul(512));
    };
    if let Ok(st) = fstat(&root) {
        add(&st, &mut total);
    }
    let _ = walk(root, &mut |_, _, st| add(st, &mut total), &mut |_, _| {});
    total
}

/// Removes the directory `path` and everything in it, however deep, never following a
/// symlink and never crossing into another filesystem (a mount point inside stops the
/// removal there: `removeall.RemoveAllOneFilesystem`). `path`'s last component is not
/// followed either.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no parent"));
    };
    let pfd = open_path(parent, false)?;
    let st = fstatat(&pfd, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    if !is_dir(&st) {
        return nix::unistd::unlinkat(&pfd, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
            .map_err(io::Error::from);
    }
    let root = open_nofollow(pfd.as_fd(), name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
    let dev = st.st_dev;
    let mut first_err: Option<io::Error> = None;
    let mut errs: Option<io::Error> = None;
    let mut other_fs = false;
    walk(
        root,
        &mut |dir, name, st| {
            if st.st_dev != dev {
                other_fs = true;
            } else if !is_dir(st) {
                if let Err(e) =
                    nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
                {
                    errs.get_or_insert(e.into());
                }
            }
        },
        &mut |parent, name| {
            // Fails (ENOTEMPTY) where a mount point or an error kept something inside.
            let _ = nix::unistd::unlinkat(parent, name, nix::unistd::UnlinkatFlags::RemoveDir);
        },
    )?;
    if let Some(e) = errs {
        first_err.get_or_insert(e);
    }
    if other_fs {
        first_err.get_or_insert(io::Error::other(format!(
            "{} holds a mount point; not removed across it",
            path.display()
        )));
    }
    if let Err(e) = nix::unistd::unlinkat(&pfd, name, nix::unistd::UnlinkatFlags::RemoveDir) {
        first_err.get_or_insert(e.into());
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn dir_fd(p: &Path) -> OwnedFd {
        open_path(p, true).unwrap()
    }

    /// A chain of `depth` directories `d/d/…` below `top`, built by fd (deeper than PATH_MAX).
    fn deep_chain(top: &Path, depth: usize, data: &[u8]) {
        let mut cur = open_nofollow(
            open_path(top, false).unwrap().as_fd(),
            OsStr::new("."),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        )
        .unwrap();
        for _ in 0..depth {
            nix::sys::stat::mkdirat(&cur, "d", Mode::from_bits_truncate(0o755)).unwrap();
            cur = open_nofollow(
                cur.as_fd(),
                OsStr::new("d"),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            )
            .unwrap();
        }
        let f = nix::fcntl::openat(
            &cur,
            "f",
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        nix::unistd::write(&f, data).unwrap();
        nix::unistd::fsync(&f).unwrap();
    }

    #[test]
    fn make_dirs_creates_with_mode_and_never_through_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let vol = t.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
        let root = dir_fd(&vol);
        let fd = make_dirs_beneath(root.as_fd(), Path::new("a/b/c"), 0o2775).unwrap();
        assert_eq!(fd_path(fd.as_fd()).unwrap(), vol.join("a/b/c"));
        assert_eq!(
            std::fs::metadata(vol.join("a/b")).unwrap().mode() & 0o7777,
            0o2775
        );
        // In-volume symlinks in the existing prefix are fine.
        std::os::unix::fs::symlink("a", vol.join("in")).unwrap();
        let fd = make_dirs_beneath(root.as_fd(), Path::new("in/x"), 0o755).unwrap();
        assert_eq!(fd_path(fd.as_fd()).unwrap(), vol.join("a/x"));
        // Escapes are refused (absolute and relative links), nothing made outside, no chmod.
        std::os::unix::fs::symlink(&outside, vol.join("abs")).unwrap();
        std::os::unix::fs::symlink("../outside", vol.join("rel")).unwrap();
        for p in ["abs/new", "rel/new", "abs", "../outside/new"] {
            assert!(
                make_dirs_beneath(root.as_fd(), Path::new(p), 0o777).is_err(),
                "{p}"
            );
        }
        assert!(!outside.join("new").exists());
        assert_eq!(std::fs::metadata(&outside).unwrap().mode() & 0o7777, 0o700);
        // A symlink as the last (to be created) component is never entered.
        std::os::unix::fs::symlink(&outside, vol.join("a/last")).unwrap();
        assert!(make_dirs_beneath(root.as_fd(), Path::new("a/last"), 0o777).is_err());
        assert_eq!(std::fs::metadata(&outside).unwrap().mode() & 0o7777, 0o700);
    }

    #[test]
    fn usage_and_removal_reach_any_depth_and_never_follow_links() {
        let t = tempfile::tempdir().unwrap();
        let vol = t.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        // 3000 levels: "d/" * 3000 = 6000 bytes > PATH_MAX (4096).
        deep_chain(&vol, 3000, &vec![7u8; 1 << 20]);
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), vec![1u8; 1 << 20]).unwrap();
        std::os::unix::fs::symlink(&outside, vol.join("link")).unwrap();
        // Hard links count once.
        std::fs::write(vol.join("h1"), vec![2u8; 1 << 16]).unwrap();
        std::fs::hard_link(vol.join("h1"), vol.join("h2")).unwrap();
        let used = disk_usage(&vol);
        assert!(used >= (1 << 20) + (1 << 16), "usage {used}");
        assert!(
            used < (1 << 20) + (1 << 16) + (1 << 20) + 3001 * 8192,
            "usage {used}"
        );
        remove_tree(&vol).unwrap();
        assert!(!vol.exists());
        assert_eq!(std::fs::read(outside.join("keep")).unwrap().len(), 1 << 20);
        assert_eq!(disk_usage(&vol), 0);
    }

    #[test]
    fn removal_stops_at_another_filesystem() {
        let t = tempfile::tempdir().unwrap();
        let vol = t.path().join("vol");
        std::fs::create_dir_all(vol.join("a/b")).unwrap();
        std::fs::write(vol.join("a/b/f"), "x").unwrap();
        // A mount point inside (only where we may mount).
        let mnt = vol.join("a/m");
        std::fs::create_dir(&mnt).unwrap();
        let mounted = nix::mount::mount(
            Some("tmpfs"),
            &mnt,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .is_ok();
        if mounted {
            std::fs::write(mnt.join("inside"), "y").unwrap();
            assert!(remove_tree(&vol).is_err());
            assert!(mnt.join("inside").exists());
            assert!(!vol.join("a/b").exists());
            nix::mount::umount2(&mnt, nix::mount::MntFlags::MNT_DETACH).unwrap();
        }
        remove_tree(&vol).unwrap();
        assert!(!vol.exists());
    }
}
