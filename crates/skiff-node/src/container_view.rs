//! The container's default view of the kernel: what `procMount: Default` gives a container
//! under the kubelet with containerd and runc, made for the `host` runtime class, whose root
//! filesystem is the host's.
//!
//! In the container's own mount namespace (isolation step 2, before the volumes are bound):
//! * its own cgroup namespace, so `/proc/self/cgroup` and the cgroup filesystem start at the
//!   container's own cgroup (containerd's private cgroupns);
//! * a fresh `/proc` of the container's PID namespace (its own, or the pod's with
//!   `shareProcessNamespace`, the host's with `hostPID`), so pods no longer see each other's
//!   processes (`/proc/<pid>/environ` of another pod is gone);
//! * a fresh read-only `/sys` of the pod's network namespace, with the cgroup filesystem
//!   mounted read-only at `/sys/fs/cgroup` (every v1 hierarchy the host has, or cgroup2),
//!   so a container can neither write kernel knobs nor move a process out of its cgroup;
//! * a private `/dev` (tmpfs): `null`, `zero`, `full`, `random`, `urandom`, `tty`, a new
//!   `devpts` instance, `mqueue`, the `fd`/`stdin`/`stdout`/`stderr`/`core` links (runc's
//!   default devices, `libcontainer/specconv` `AllowedDevices` and `rootfs_linux.go`), and
//!   `/dev/shm` bound from the pod's own 64 MiB tmpfs (containerd's sandbox shm size;
//!   the host's `/dev/shm` with `hostIPC`), so no host disk or device node is reachable;
//! * after the volumes, the kubelet's masked paths (a read-only empty tmpfs on directories,
//!   `/dev/null` on files) and read-only paths (`pkg/securitycontext/util.go`
//!   `defaultMaskedPaths`/`defaultReadonlyPaths`), as runc applies them last.
//!
//! `privileged: true` gets what containerd gives it: no masks, the host's `/sys` (writable,
//! with its cgroup hierarchies), and in its private `/dev` every device node of the host's
//! (containerd's `WithDevices` of all host devices, made by runc with `mknod`), so nothing is
//! ever created in the host's `/dev`; a fresh `/proc` still. `procMount: Unmasked`
//! drops the masked and read-only paths only.
//!
//! Everything in the child happens on filesystems it just mounted (fresh procfs, sysfs,
//! tmpfs) that no container can have planted anything in, so the paths it uses are fixed
//! ones; the `/dev/shm` source is a descriptor opened by the parent.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use nix::errno::Errno;
use nix::fcntl::{OFlag, AT_FDCWD};
use nix::libc;
use nix::sys::stat::{Mode, SFlag};

use crate::spec::MountJournal;
use crate::sys::mount::{mount, remount_read_only};

/// The kubelet's masked paths for `procMount: Default` (`pkg/securitycontext/util.go`).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// The kubelet's read-only paths for `procMount: Default`.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// containerd's default `/dev/shm` size for a sandbox (`defaultShmSize`, 64 MiB).
pub const POD_SHM_SIZE: u64 = 64 * 1024 * 1024;

/// What one container's view is made of (parent side).
#[derive(Debug, Clone)]
pub struct ViewPlan {
    /// `privileged: true`: host `/sys`, the host's devices in the private `/dev`, no masks.
    pub privileged: bool,
    /// `procMount: Unmasked`: no masked or read-only paths.
    pub unmasked: bool,
    /// The directory bound at `/dev/shm` (the pod's shm tmpfs, or the host's `/dev/shm`).
    pub shm: Option<Arc<OwnedFd>>,
    /// Mount targets of the container's own mounts that lie in the private `/dev` (their
    /// mount points are made in that tmpfs by the child): path and whether it is a directory.
    pub dev_mountpoints: Vec<(PathBuf, bool)>,
}

/// Whether a mount target lies in the container's private `/dev` (its mount point is then made
/// in that tmpfs by the child). A path with `..` never does: `/dev/../etc/x` is `/etc/x`, and
/// the host-side walk refuses `..` outright.
pub fn in_dev(target: &Path) -> bool {
    target.starts_with("/dev")
        && !target
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
}

/// The fork-safe form of a [`ViewPlan`].
#[derive(Debug)]
pub(crate) struct PreparedView {
    privileged: bool,
    masked: Vec<CString>,
    readonly: Vec<CString>,
    cgroup: Option<&'static CgroupLayout>,
    /// A detached clone of the shm mount (`open_tree`), attached at `/dev/shm` by the child.
    /// A descriptor of a mount in skiff's namespace cannot be bind-mounted from the child's
    /// new mount namespace (EINVAL); a detached tree can be moved into it.
    shm: Option<OwnedFd>,
    dev_mountpoints: Vec<(CString, bool)>,
    /// Privileged: the host's device nodes, re-made in the private `/dev`.
    host_devices: &'static [HostDevice],
}

/// One device node of the host's `/dev` (read once).
#[derive(Debug)]
pub(crate) struct HostDevice {
    path: CString,
    mode: libc::mode_t,
    rdev: libc::dev_t,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

/// The host's character and block devices below `/dev`, as runc's `HostDevices` lists them
/// (not `pts`, `shm`, `mqueue`, `fd` or hidden dirs, not `console`, and not `ptmx`, which is the
/// link to the container's own `devpts`; symlinks not followed).
fn host_devices() -> &'static [HostDevice] {
    static DEVICES: OnceLock<Vec<HostDevice>> = OnceLock::new();
    DEVICES.get_or_init(|| {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let mut out = Vec::new();
        let mut todo = vec![PathBuf::from("/dev")];
        while let Some(dir) = todo.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                let Ok(md) = std::fs::symlink_metadata(e.path()) else {
                    continue;
                };
                let ft = md.file_type();
                if ft.is_dir() {
                    if dir == Path::new("/dev")
                        && !matches!(&*name, "pts" | "shm" | "mqueue" | "fd")
                        && !name.starts_with('.')
                    {
                        todo.push(e.path());
                    }
                } else if (ft.is_char_device() || ft.is_block_device())
                    && !matches!(&*name, "console" | "ptmx")
                {
                    if let Ok(path) = CString::new(e.path().as_os_str().as_bytes()) {
                        out.push(HostDevice {
                            path,
                            mode: md.mode(),
                            rdev: md.rdev(),
                            uid: md.uid(),
                            gid: md.gid(),
                        });
                    }
                }
            }
        }
        out
    })
}

/// How the host mounts its cgroup filesystems under `/sys/fs/cgroup` (read once).
#[derive(Debug)]
pub(crate) enum CgroupLayout {
    /// Pure cgroup v2: one cgroup2 mount at `/sys/fs/cgroup`.
    Unified,
    /// v1 (or hybrid): a tmpfs with one mount per hierarchy, plus the host's symlinks.
    Hierarchies {
        mounts: Vec<CgroupMount>,
        /// (link path, link target), e.g. `/sys/fs/cgroup/cpu` → `cpu,cpuacct`.
        links: Vec<(CString, CString)>,
    },
}

#[derive(Debug)]
pub(crate) struct CgroupMount {
    target: CString,
    fstype: &'static CStr,
    data: CString,
}

impl ViewPlan {
    pub(crate) fn prepare(&self) -> Result<PreparedView, String> {
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_bytes())
                .map_err(|_| format!("mount path {p:?} contains a NUL byte"))
        };
        let masks = !self.privileged && !self.unmasked;
        let list = |l: &[&str]| {
            if masks {
                l.iter()
                    .filter_map(|p| CString::new(*p).ok())
                    .collect::<Vec<_>>()
            } else {
                Vec::new()
            }
        };
        let shm = match &self.shm {
            Some(fd) => {
                use rustix::mount::OpenTreeFlags as F;
                Some(
                    rustix::mount::open_tree(
                        &**fd,
                        c"",
                        F::OPEN_TREE_CLONE | F::OPEN_TREE_CLOEXEC | F::AT_EMPTY_PATH,
                    )
                    .map_err(|e| format!("cloning the pod's /dev/shm mount: {e}"))?,
                )
            }
            None => None,
        };
        Ok(PreparedView {
            privileged: self.privileged,
            masked: list(MASKED_PATHS),
            readonly: list(READONLY_PATHS),
            cgroup: if self.privileged {
                None
            } else {
                host_cgroup_layout()
            },
            shm,
            dev_mountpoints: self
                .dev_mountpoints
                .iter()
                .map(|(p, dir)| Ok((c(p)?, *dir)))
                .collect::<Result<_, String>>()?,
            host_devices: if self.privileged { host_devices() } else { &[] },
        })
    }
}

/// The host's cgroup mounts below `/sys/fs/cgroup`, from the cgroups module's discovery (read
/// once); `None` when there are none (the container's `/sys/fs/cgroup` then stays empty).
fn host_cgroup_layout() -> Option<&'static CgroupLayout> {
    static LAYOUT: OnceLock<Option<CgroupLayout>> = OnceLock::new();
    LAYOUT
        .get_or_init(|| {
            let host = crate::cgroups::CgroupLayout::from_proc().ok()?;
            view_of(&host, |p| std::fs::read_link(p).ok())
        })
        .as_ref()
}

/// What the container mounts for the host's cgroup `layout`: cgroup2 alone when it is at
/// `/sys/fs/cgroup` (pure v2), else each hierarchy one level below it, selected by its
/// controllers (or its name) only — release agents and other options are not ours to set —
/// plus the host's co-mount links (`cpu` → `cpu,cpuacct`), read with `read_link`.
pub(crate) fn view_of(
    layout: &crate::cgroups::CgroupLayout,
    read_link: impl Fn(&Path) -> Option<PathBuf>,
) -> Option<CgroupLayout> {
    let root = Path::new("/sys/fs/cgroup");
    let unified = layout.unified().map(|u| u.mount.as_path());
    if unified == Some(root) {
        return Some(CgroupLayout::Unified);
    }
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).ok();
    let mut mounts = Vec::new();
    let mut names = Vec::new();
    let below = |p: &Path| p.parent() == Some(root);
    for h in layout.v1().iter().filter(|h| below(&h.mount)) {
        let mut sel: Vec<&str> = h.controllers.iter().map(String::as_str).collect();
        if sel.iter().all(|o| o.starts_with("name=")) {
            sel.insert(0, "none");
        }
        if let (Some(target), Ok(data)) = (c(&h.mount), CString::new(sel.join(","))) {
            names.extend(h.mount.file_name().map(PathBuf::from));
            mounts.push(CgroupMount {
                target,
                fstype: c"cgroup",
                data,
            });
        }
    }
    if let Some(target) = unified.filter(|u| below(u)).and_then(c) {
        names.extend(unified.and_then(Path::file_name).map(PathBuf::from));
        mounts.push(CgroupMount {
            target,
            fstype: c"cgroup2",
            data: CString::default(),
        });
    }
    if mounts.is_empty() {
        return None;
    }
    let mut links = Vec::new();
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            let name = PathBuf::from(e.file_name());
            if names.contains(&name) {
                continue;
            }
            let path = root.join(&name);
            let to = read_link(&path).filter(|to| to.is_relative() && to.components().count() == 1);
            if let (Some(p), Some(t)) = (c(&path), to.as_deref().and_then(c)) {
                links.push((p, t));
            }
        }
    }
    Some(CgroupLayout::Hierarchies { mounts, links })
}

/// The pod's `/dev/shm`: a tmpfs of [`POD_SHM_SIZE`] at `<pod dir>/shm`, shared by its
/// containers (they share the IPC namespace too). Made after the pod's record exists, so a
/// crashed skiff's next start unmounts it with the rest of the pod dir; unmounted when
/// dropped.
#[derive(Debug)]
pub struct PodShm {
    dir: PathBuf,
    fd: Arc<OwnedFd>,
    mounted: bool,
    journal: Option<Arc<dyn MountJournal>>,
    /// A persistent sandbox's: dropped, it stays mounted ([`PodShm::remove`] unmounts it).
    kept: bool,
}

impl PodShm {
    /// Where it is on the host (the pod's tmpfs under its directory, or the host's /dev/shm).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Mounts the pod's shm tmpfs (own IPC namespace), recorded in `journal` (the pod's crash
    /// record) before it is mounted.
    pub fn create(
        pod_dir: &Path,
        journal: Option<Arc<dyn MountJournal>>,
    ) -> std::io::Result<PodShm> {
        let dir = pod_dir.join("shm");
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if let Some(j) = &journal {
            j.before_mount(&dir).map_err(std::io::Error::other)?;
        }
        let data = format!("mode=1777,size={POD_SHM_SIZE}");
        let mounted = nix::mount::mount(
            Some("shm"),
            &dir,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID
                | nix::mount::MsFlags::MS_NODEV
                | nix::mount::MsFlags::MS_NOEXEC,
            Some(data.as_str()),
        )
        .map_err(std::io::Error::from);
        if let Err(e) = mounted {
            if let Some(j) = &journal {
                j.after_unmount(&dir);
            }
            return Err(e);
        }
        match crate::fdwalk::open_path(&dir, true) {
            Ok(fd) => Ok(PodShm {
                dir,
                fd: Arc::new(fd),
                mounted: true,
                journal,
                kept: false,
            }),
            Err(e) => {
                if nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH).is_ok() {
                    if let Some(j) = &journal {
                        j.after_unmount(&dir);
                    }
                }
                Err(e)
            }
        }
    }

    /// The host's `/dev/shm` (`hostIPC`), held like the pod's.
    pub fn host() -> std::io::Result<PodShm> {
        let dir = PathBuf::from("/dev/shm");
        Ok(PodShm {
            fd: Arc::new(crate::fdwalk::open_path(&dir, true)?),
            dir,
            mounted: false,
            journal: None,
            kept: false,
        })
    }

    /// Re-attaches the pod's shm tmpfs an earlier process mounted (a persistent sandbox);
    /// `None` if it is not mounted there.
    pub fn adopt(pod_dir: &Path, journal: Option<Arc<dyn MountJournal>>) -> Option<PodShm> {
        let dir = pod_dir.join("shm");
        if !crate::mountinfo::mount_points().contains(&dir) {
            return None;
        }
        let fd = crate::fdwalk::open_path(&dir, true).ok()?;
        Some(PodShm {
            dir,
            fd: Arc::new(fd),
            mounted: true,
            journal,
            kept: true,
        })
    }

    /// Dropped, it stays mounted (a persistent sandbox).
    pub fn keep(&mut self) {
        self.kept = true;
    }

    /// Unmounts it (if it is the pod's own) and removes its mount point.
    pub fn remove(mut self) {
        self.kept = false;
    }

    /// The directory to bind at the containers' `/dev/shm`.
    pub fn fd(&self) -> Arc<OwnedFd> {
        self.fd.clone()
    }
}

impl Drop for PodShm {
    fn drop(&mut self) {
        if self.mounted && !self.kept {
            if let Err(e) = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "unmounting the pod's /dev/shm");
                return;
            }
            if let Some(j) = &self.journal {
                j.after_unmount(&self.dir);
            }
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// In the child: `move_mount(tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)` attaches a
/// detached tree (`open_tree(OPEN_TREE_CLONE)`) at `target`. Fork-safe.
fn attach_mount(tree: BorrowedFd<'_>, target: &CStr) -> Result<(), Errno> {
    rustix::mount::move_mount(
        tree,
        c"",
        rustix::fs::CWD,
        target,
        rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| Errno::from_raw(e.raw_os_error()))
}

const NOSUID_NODEV_NOEXEC: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// EEXIST counts as success (a name the container's own mount point took).
fn exists_ok(r: Result<(), Errno>) -> Result<(), Errno> {
    match r {
        Err(Errno::EEXIST) => Ok(()),
        r => r,
    }
}

/// In the child, right after its own mount namespace exists and before the volumes:
/// cgroup namespace, `/proc`, `/sys` with the cgroup filesystem, private `/dev`.
///
/// Fork-safe (see `sys`): for the child after fork, before exec, once the process is in its
/// cgroups; system calls on prepared C strings only.
pub(crate) fn apply_before_mounts(v: &PreparedView) -> Result<(), Errno> {
    // The container's cgroup namespace: roots every cgroup view at its own cgroup.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)?;
    mount(
        Some(c"proc"),
        c"/proc",
        Some(c"proc"),
        NOSUID_NODEV_NOEXEC,
        None,
    )?;
    if v.privileged {
        // The host's /sys (containerd's privileged view); a private /dev with its devices.
        return private_dev(v);
    }
    // A fresh sysfs of the pod's network namespace, then read-only as a mount (a read-only
    // superblock cannot be asked for where it is shared with the host's). With hostNetwork
    // the sysfs is the host's own, which the kernel will not mount again on the same point
    // (EBUSY): a bind of it without its submounts instead.
    match mount(
        Some(c"sysfs"),
        c"/sys",
        Some(c"sysfs"),
        NOSUID_NODEV_NOEXEC,
        None,
    ) {
        Err(Errno::EBUSY) => mount(Some(c"/sys"), c"/sys", None, libc::MS_BIND, None)?,
        r => r?,
    }
    remount_read_only(c"/sys")?;
    match v.cgroup {
        Some(CgroupLayout::Unified) => mount(
            Some(c"cgroup2"),
            c"/sys/fs/cgroup",
            Some(c"cgroup2"),
            NOSUID_NODEV_NOEXEC | libc::MS_RDONLY,
            None,
        )?,
        Some(CgroupLayout::Hierarchies { mounts, links }) => {
            mount(
                Some(c"tmpfs"),
                c"/sys/fs/cgroup",
                Some(c"tmpfs"),
                NOSUID_NODEV_NOEXEC,
                Some(c"mode=755"),
            )?;
            for m in mounts {
                nix::unistd::mkdir(m.target.as_c_str(), Mode::from_bits_truncate(0o555))?;
                mount(
                    Some(m.fstype),
                    &m.target,
                    Some(m.fstype),
                    NOSUID_NODEV_NOEXEC | libc::MS_RDONLY,
                    Some(&m.data),
                )?;
            }
            for (path, to) in links {
                nix::unistd::symlinkat(to.as_c_str(), AT_FDCWD, path.as_c_str())?;
            }
            mount(
                None,
                c"/sys/fs/cgroup",
                None,
                libc::MS_REMOUNT | libc::MS_RDONLY | NOSUID_NODEV_NOEXEC,
                Some(c"mode=755"),
            )?;
        }
        None => {}
    }
    private_dev(v)
}

/// runc's default device nodes: (name, major, minor).
const DEVICES: &[(&CStr, u32, u32)] = &[
    (c"/dev/null", 1, 3),
    (c"/dev/zero", 1, 5),
    (c"/dev/full", 1, 7),
    (c"/dev/random", 1, 8),
    (c"/dev/urandom", 1, 9),
    (c"/dev/tty", 5, 0),
];

/// runc's default `/dev` links.
const DEV_LINKS: &[(&CStr, &CStr)] = &[
    (c"/proc/self/fd", c"/dev/fd"),
    (c"/proc/self/fd/0", c"/dev/stdin"),
    (c"/proc/self/fd/1", c"/dev/stdout"),
    (c"/proc/self/fd/2", c"/dev/stderr"),
    (c"/proc/kcore", c"/dev/core"),
    (c"pts/ptmx", c"/dev/ptmx"),
];

/// A tmpfs `/dev` with runc's default devices (fork-safe, as [`apply_before_mounts`]).
fn private_dev(v: &PreparedView) -> Result<(), Errno> {
    mount(
        Some(c"tmpfs"),
        c"/dev",
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_STRICTATIME,
        Some(c"mode=755,size=65536k"),
    )?;
    let old = rustix::process::umask(rustix::fs::Mode::empty());
    let r = (|| {
        for (path, major, minor) in DEVICES {
            let dev = nix::sys::stat::makedev(u64::from(*major), u64::from(*minor));
            // EEXIST: a mount of the container's own takes that name.
            exists_ok(nix::sys::stat::mknod(
                *path,
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                dev,
            ))?;
        }
        // Privileged: every host device, with its mode and owner.
        for d in v.host_devices {
            // Parents of /dev/net/tun, /dev/cpu/0/msr, ...: the fresh tmpfs holds nothing else
            // yet (the container's own mount points are made last).
            let parent_len = d
                .path
                .to_bytes()
                .iter()
                .rposition(|b| *b == b'/')
                .unwrap_or(0);
            if parent_len > 4 {
                let mut buf = [0u8; 256];
                if parent_len < buf.len() {
                    buf[..parent_len].copy_from_slice(&d.path.to_bytes()[..parent_len]);
                    if let Ok(parent) = CStr::from_bytes_until_nul(&buf) {
                        make_path(parent, true)?;
                    }
                }
            }
            match nix::sys::stat::mknod(
                d.path.as_c_str(),
                SFlag::from_bits_truncate(d.mode & libc::S_IFMT),
                Mode::from_bits_truncate(d.mode & !libc::S_IFMT),
                d.rdev,
            ) {
                Err(Errno::EEXIST) => continue,
                r => r?,
            }
            nix::unistd::fchownat(
                AT_FDCWD,
                d.path.as_c_str(),
                Some(nix::unistd::Uid::from_raw(d.uid)),
                Some(nix::unistd::Gid::from_raw(d.gid)),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
        }
        exists_ok(nix::unistd::mkdir(
            c"/dev/pts",
            Mode::from_bits_truncate(0o755),
        ))?;
        mount(
            Some(c"devpts"),
            c"/dev/pts",
            Some(c"devpts"),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some(c"newinstance,ptmxmode=0666,mode=0620,gid=5"),
        )?;
        for (to, path) in DEV_LINKS {
            exists_ok(nix::unistd::symlinkat(*to, AT_FDCWD, *path))?;
        }
        exists_ok(nix::unistd::mkdir(
            c"/dev/shm",
            Mode::from_bits_truncate(0o1777),
        ))?;
        if let Some(shm) = &v.shm {
            attach_mount(shm.as_fd(), c"/dev/shm")?;
        }
        exists_ok(nix::unistd::mkdir(
            c"/dev/mqueue",
            Mode::from_bits_truncate(0o1777),
        ))?;
        mount(
            Some(c"mqueue"),
            c"/dev/mqueue",
            Some(c"mqueue"),
            NOSUID_NODEV_NOEXEC,
            None,
        )?;
        // Mount points of the container's own mounts below /dev (the termination-message
        // file, volumes, also inside the pod's /dev/shm): made in place, never on the host's
        // /dev, one component at a time from a descriptor and never through a symlink (the
        // pod's /dev/shm is writable by its other containers).
        for (path, dir) in &v.dev_mountpoints {
            make_path(path, *dir)?;
        }
        Ok(())
    })();
    rustix::process::umask(old);
    r
}

/// A mount point inside the private `/dev`: each component of `path` made (`mkdirat`) and
/// entered (`openat` with `O_NOFOLLOW`) from the previous one's descriptor, so a symlink
/// anywhere on the way is refused (ENOTDIR/ELOOP), never followed; then the directory or an
/// empty file itself. `..` is refused. (Fork-safe, as [`apply_before_mounts`]: system calls
/// and a fixed stack buffer only.)
fn make_path(path: &CStr, dir: bool) -> Result<(), Errno> {
    let bytes = path.to_bytes();
    let mut cur = nix::fcntl::open(
        c"/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut parts = bytes
        .split(|b| *b == b'/')
        .filter(|p| !p.is_empty())
        .peekable();
    while let Some(part) = parts.next() {
        if part == b".." || part == b"." {
            return Err(Errno::EINVAL);
        }
        let mut buf = [0u8; 256];
        if part.len() >= buf.len() {
            return Err(Errno::ENAMETOOLONG);
        }
        buf[..part.len()].copy_from_slice(part);
        let name = CStr::from_bytes_until_nul(&buf).map_err(|_| Errno::EINVAL)?;
        let last = parts.peek().is_none();
        if last && !dir {
            nix::fcntl::openat(
                &cur,
                name,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )?;
            return Ok(());
        }
        exists_ok(nix::sys::stat::mkdirat(
            &cur,
            name,
            Mode::from_bits_truncate(0o755),
        ))?;
        cur = nix::fcntl::openat(
            &cur,
            name,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
    }
    Ok(())
}

/// In the child, after the volumes: the masked and read-only paths (runc applies them
/// last, so nothing mounted later uncovers them). Fork-safe, as [`apply_before_mounts`].
pub(crate) fn apply_after_mounts(v: &PreparedView) -> Result<(), Errno> {
    for p in &v.masked {
        let st = match nix::sys::stat::lstat(p.as_c_str()) {
            Ok(st) => st,
            // Not on this kernel: nothing to hide.
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            mount(Some(c"tmpfs"), p, Some(c"tmpfs"), libc::MS_RDONLY, None)?;
        } else {
            mount(Some(c"/dev/null"), p, None, libc::MS_BIND, None)?;
        }
    }
    for p in &v.readonly {
        match mount(Some(p), p, None, libc::MS_BIND | libc::MS_REC, None) {
            Err(Errno::ENOENT) => continue,
            r => r?,
        }
        remount_read_only(p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";
    const PROC_CGROUP: &str = "3:name=systemd:/\n2:memory:/m\n1:cpu,cpuacct:/\n0::/\n";

    fn discover(mountinfo: &str) -> crate::cgroups::CgroupLayout {
        crate::cgroups::CgroupLayout::discover(mountinfo, PROC_CGROUP, Path::new("/")).unwrap()
    }

    #[test]
    fn v1_hierarchies_keep_only_what_selects_them() {
        let Some(CgroupLayout::Hierarchies { mounts, .. }) = view_of(&discover(HYBRID), |_| None)
        else {
            panic!("expected v1 hierarchies");
        };
        let got: Vec<(String, String)> = mounts
            .iter()
            .map(|m| {
                (
                    m.target.to_string_lossy().into_owned(),
                    m.data.to_string_lossy().into_owned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("/sys/fs/cgroup/cpu,cpuacct".into(), "cpu,cpuacct".into()),
                ("/sys/fs/cgroup/memory".into(), "memory".into()),
                ("/sys/fs/cgroup/systemd".into(), "none,name=systemd".into()),
                ("/sys/fs/cgroup/unified".into(), String::new()),
            ]
        );
    }

    #[test]
    fn pure_v2_is_one_mount() {
        let info = "25 23 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert!(matches!(
            view_of(&discover(info), |_| None),
            Some(CgroupLayout::Unified)
        ));
    }

    #[test]
    fn issue7_item2_dev_targets_never_climb_out() {
        assert!(in_dev(Path::new("/dev/termination-log")));
        assert!(in_dev(Path::new("/dev/shm/x")));
        assert!(!in_dev(Path::new("/dev/../etc/nologin")));
        assert!(!in_dev(Path::new("/devices")));
        assert!(!in_dev(Path::new("/etc")));
    }

    #[test]
    fn privileged_and_unmasked_get_no_masks() {
        let plan = |privileged, unmasked| ViewPlan {
            privileged,
            unmasked,
            shm: None,
            dev_mountpoints: vec![("/dev/termination-log".into(), false)],
        };
        let d = plan(false, false).prepare().unwrap();
        assert_eq!(d.masked.len(), MASKED_PATHS.len());
        assert_eq!(d.readonly.len(), READONLY_PATHS.len());
        assert_eq!(d.dev_mountpoints.len(), 1);
        let p = plan(true, false).prepare().unwrap();
        assert!(p.masked.is_empty() && p.readonly.is_empty() && p.cgroup.is_none());
        assert_eq!(p.dev_mountpoints.len(), 1, "privileged: a private /dev too");
        assert!(
            p.host_devices
                .iter()
                .any(|d| d.path.as_bytes() == b"/dev/null"),
            "privileged: the host's devices"
        );
        assert!(d.host_devices.is_empty());
        let u = plan(false, true).prepare().unwrap();
        assert!(u.masked.is_empty() && u.readonly.is_empty());
    }
}
