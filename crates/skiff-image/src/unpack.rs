//! Unpacking one layer into its own directory: a security boundary (issue 10 item 4).
//!
//! The `tar` crate is used as a parser only (its `unpack` resolves absolute symlinks on the
//! host and checks-then-opens by path). Every filesystem operation here goes through a
//! directory fd: parents are opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//! from the held layer-root fd, so `..`, absolute symlinks and symlink chains all resolve
//! *inside* the layer (as containerd's `fs.RootPath`), and the final component is always
//! created with `*at` calls on that parent (`O_EXCL|O_NOFOLLOW`, `mkdirat`, `symlinkat`,
//! `linkat` without following). Written with rustix rather than `pathrs` because the few
//! calls needed are plain `*at` system calls and rustix is already in the tree.
//!
//! Layers are unpacked each into an empty dir (containerd's parallel overlay unpack):
//! whiteouts become overlayfs's own form, a 0/0 character device for `.wh.X` and the
//! `trusted.overlay.opaque=y` xattr for `.wh..wh..opq`, so the overlay mount applies them.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use rustix::fs::{
    AtFlags, FileType, FlockOperation, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid,
    XattrFlags,
};
use rustix::io::Errno;

use crate::digest::{HashingReader, LimitExceeded};

/// Bounds on one layer (a hostile layer stops at these, not at the disk's end).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Uncompressed bytes of the tar stream.
    pub max_bytes: u64,
    /// Tar entries.
    pub max_entries: u64,
    /// Bytes of one entry's path (one component is at most 255, the kernel's NAME_MAX).
    pub max_path: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 30,
            max_entries: 4_000_000,
            max_path: 4096,
        }
    }
}

/// What an unpack did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub entries: u64,
    /// Uncompressed bytes (the whole tar stream).
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{path}: {source}")]
    Fs { path: String, source: io::Error },
    #[error("entry {path:?} refused: {why}")]
    Refused { path: String, why: String },
    #[error("the layer is larger than {0} bytes uncompressed")]
    TooLarge(u64),
    #[error("the layer has more than {0} entries")]
    TooManyEntries(u64),
    #[error("wrong diff ID: the config says {expected}, the layer's content is {actual}")]
    DiffIdMismatch { expected: String, actual: String },
    #[error("reading the layer: {0}")]
    Read(io::Error),
}

impl UnpackError {
    fn from_read(e: io::Error) -> Self {
        match e.get_ref().and_then(|i| i.downcast_ref::<LimitExceeded>()) {
            Some(l) => UnpackError::TooLarge(l.0),
            None => UnpackError::Read(e),
        }
    }
}

/// The compression of a layer stream, from its first bytes (media types lie: docker
/// archives call gzip layers `.tar`, some registries the reverse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Wraps a (compressed) layer stream into its tar stream.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut r = BufReader::with_capacity(256 << 10, reader);
    let head = r.fill_buf()?;
    let c = if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    };
    let out: Box<dyn Read + 'a> = match c {
        // Several gzip members exist in the wild: read them all.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        Compression::None => Box::new(r),
    };
    Ok((c, out))
}

/// Unpacks the layer `blob` (compressed or not) into the empty directory `dir`, and checks
/// the uncompressed stream's sha256 against `diff_id`. On error `dir` holds a partial tree
/// the caller removes; it is never published.
pub fn unpack_into(
    dir: &Path,
    blob: impl Read,
    diff_id: &str,
    limits: &Limits,
) -> Result<Stats, UnpackError> {
    let root = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fs_err(&dir.display().to_string(), e))?;
    let (_, tar_stream) = decompress(blob).map_err(UnpackError::Read)?;
    let mut hashing = HashingReader::new(tar_stream, limits.max_bytes);
    let mut u = Unpacker {
        root,
        limits: limits.clone(),
        cached_parent: None,
        dir_times: Vec::new(),
        same_owner: rustix::process::geteuid().is_root(),
    };
    let mut entries = 0u64;
    {
        let mut archive = tar::Archive::new(&mut hashing);
        for entry in archive.entries().map_err(UnpackError::from_read)? {
            let mut entry = entry.map_err(UnpackError::from_read)?;
            entries += 1;
            if entries > limits.max_entries {
                return Err(UnpackError::TooManyEntries(limits.max_entries));
            }
            u.entry(&mut entry)?;
        }
    }
    u.finish()?;
    // The tar parser stops at its end marker: the digest covers every byte.
    let (actual, bytes) = hashing.drain().map_err(UnpackError::from_read)?;
    if actual != diff_id {
        return Err(UnpackError::DiffIdMismatch {
            expected: diff_id.to_string(),
            actual,
        });
    }
    Ok(Stats { entries, bytes })
}

/// Removes `tmp-*` unpack dirs under `layers` that no unpacker holds (an unpacker holds an
/// flock on its dir) and that are older than `min_age` (one just created is not locked yet).
pub fn sweep_tmp_dirs(layers: &Path, min_age: Duration) {
    let Ok(rd) = std::fs::read_dir(layers) else {
        return;
    };
    for e in rd.flatten() {
        if !e.file_name().as_bytes().starts_with(b"tmp-") {
            continue;
        }
        let p = e.path();
        let old = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age >= min_age);
        let unlocked = match lock_dir(&p, false) {
            Ok(Some(_held)) => true,
            Ok(None) => false,
            Err(_) => true, // not a directory we can open: remove it
        };
        if old && unlocked {
            tracing::debug!(path = %p.display(), "removing a stale unpack dir");
            // std's remove_dir_all does not follow symlinks (CVE-2022-21658 fix).
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
    }
}

/// Opens `dir` and takes an exclusive flock on it (`wait`: block; else `None` when held).
pub fn lock_dir(dir: &Path, wait: bool) -> io::Result<Option<OwnedFd>> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let op = if wait {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match rustix::fs::flock(&fd, op) {
        Ok(()) => Ok(Some(fd)),
        Err(Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn fs_err(path: &str, e: impl Into<io::Error>) -> UnpackError {
    UnpackError::Fs {
        path: path.to_string(),
        source: e.into(),
    }
}

fn refused(path: &str, why: impl Into<String>) -> UnpackError {
    UnpackError::Refused {
        path: path.to_string(),
        why: why.into(),
    }
}

/// Whiteout prefix and the opaque marker (OCI image-spec layer.md).
const WH: &[u8] = b".wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";
const WH_META: &[u8] = b".wh..wh.";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// The metadata of one entry, from its header and PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

struct Unpacker {
    root: OwnedFd,
    limits: Limits,
    /// The last parent dir opened (most entries share their parent with the previous one);
    /// dropped whenever the tree changes shape (anything but a new regular file).
    cached_parent: Option<(Vec<OsString>, OwnedFd)>,
    /// Directory mtimes, set at the end (creating children changes them).
    dir_times: Vec<(Vec<OsString>, i64)>,
    /// Apply the header's owner (root); unprivileged unpacks keep the caller's.
    same_owner: bool,
}

impl Unpacker {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let comps = self.normalise(&raw, &shown)?;
        let kind = entry.header().entry_type();
        let meta = read_meta(entry, &shown)?;
        use tar::EntryType as T;
        if matches!(kind, T::XGlobalHeader) {
            return Ok(());
        }
        let Some((name, parent_comps)) = comps.split_last() else {
            // The layer root itself (`./`): only a directory may describe it.
            if kind == T::Directory {
                let fd = dup(&self.root, &shown)?;
                self.apply_meta(fd.as_fd(), &meta, &shown)?;
                self.dir_times.push((Vec::new(), meta.mtime));
                return Ok(());
            }
            return Err(refused(&shown, "names the layer root"));
        };
        let name_bytes = name.as_bytes();
        if kind != T::Regular && kind != T::Continuous {
            self.cached_parent = None;
        }
        // Whiteouts (regular-file entries named `.wh.*`).
        if name_bytes.starts_with(WH) {
            if kind != T::Regular && kind != T::Continuous {
                return Err(refused(&shown, "a whiteout must be a regular file"));
            }
            let parent = self.parent(parent_comps, &shown)?;
            if name_bytes == WH_OPAQUE {
                return set_xattr(parent.as_fd(), OPAQUE_XATTR, b"y", &shown);
            }
            if name_bytes.starts_with(WH_META) {
                return Ok(()); // aufs bookkeeping (`.wh..wh.plnk`): nothing to apply
            }
            let target = &name_bytes[WH.len()..];
            if target.is_empty() || target == b"." || target == b".." {
                return Err(refused(
                    &shown,
                    "a whiteout must name an entry of its own directory",
                ));
            }
            let target = OsStr::from_bytes(target);
            self.cached_parent = None;
            self.remove_existing(parent.as_fd(), target, &shown)?;
            return self.whiteout(parent.as_fd(), target, &meta, &shown);
        }
        let parent = self.parent(parent_comps, &shown)?;
        let existing = rustix::fs::statat(&parent, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW);
        let existing_dir = matches!(&existing, Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        match kind {
            T::Directory if existing_dir => {
                // Dir over dir: metadata only (layer.md "Changeset over existing files").
                let fd = open_child_dir(parent.as_fd(), name, &shown)?;
                self.apply_meta(fd.as_fd(), &meta, &shown)?;
                self.dir_times.push((comps.clone(), meta.mtime));
                return Ok(());
            }
            _ => {
                if existing.is_ok() {
                    self.cached_parent = None;
                    self.remove_existing(parent.as_fd(), name, &shown)?;
                }
            }
        }
        match kind {
            T::Regular | T::Continuous => {
                let fd = rustix::fs::openat(
                    &parent,
                    name.as_os_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| fs_err(&shown, e))?;
                let mut f = File::from(fd);
                io::copy(entry, &mut f).map_err(UnpackError::from_read)?;
                self.apply_meta(f.as_fd(), &meta, &shown)?;
                set_mtime(f.as_fd(), meta.mtime, &shown)
            }
            T::Directory => {
                rustix::fs::mkdirat(&parent, name.as_os_str(), Mode::from_raw_mode(0o700))
                    .map_err(|e| fs_err(&shown, e))?;
                let fd = open_child_dir(parent.as_fd(), name, &shown)?;
                self.apply_meta(fd.as_fd(), &meta, &shown)?;
                self.dir_times.push((comps.clone(), meta.mtime));
                Ok(())
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refused(&shown, "a symlink without a target"))?;
                if target.is_empty() || target.contains(&0) || target.len() > self.limits.max_path {
                    return Err(refused(&shown, "invalid symlink target"));
                }
                // Verbatim: resolved later, inside the container's root, by whoever opens it.
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent, name.as_os_str())
                    .map_err(|e| fs_err(&shown, e))?;
                if self.same_owner {
                    rustix::fs::chownat(
                        &parent,
                        name.as_os_str(),
                        Some(Uid::from_raw(meta.uid)),
                        Some(Gid::from_raw(meta.gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| fs_err(&shown, e))?;
                }
                let ts = timestamps(meta.mtime);
                rustix::fs::utimensat(&parent, name.as_os_str(), &ts, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| fs_err(&shown, e))
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refused(&shown, "a hard link without a target"))?
                    .into_owned();
                let tcomps = self.normalise(&target, &shown)?;
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(refused(&shown, "a hard link to the layer root"));
                };
                // The target's parent resolves inside the root; the link is made to the
                // name in it without following a final symlink (it links the symlink, as
                // tar means).
                let tdir = self.open_in_root(tparent).map_err(|e| {
                    fs_err(&shown, io::Error::other(format!("hard link target: {e}")))
                })?;
                rustix::fs::linkat(
                    &tdir,
                    tname.as_os_str(),
                    &parent,
                    name.as_os_str(),
                    AtFlags::empty(),
                )
                .map_err(|e| {
                    fs_err(
                        &shown,
                        io::Error::other(format!(
                            "hard link to {:?} (inside the layer): {e}",
                            String::from_utf8_lossy(&target)
                        )),
                    )
                })
            }
            T::Fifo => {
                rustix::fs::mknodat(
                    &parent,
                    name.as_os_str(),
                    FileType::Fifo,
                    Mode::from_raw_mode(0o600),
                    0,
                )
                .map_err(|e| fs_err(&shown, e))?;
                let fd = rustix::fs::openat(
                    &parent,
                    name.as_os_str(),
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| fs_err(&shown, e))?;
                // O_PATH fds take neither fchown nor fchmod: go through the name in the
                // held parent (just created by us, no symlink).
                if self.same_owner {
                    rustix::fs::chownat(
                        &parent,
                        name.as_os_str(),
                        Some(Uid::from_raw(meta.uid)),
                        Some(Gid::from_raw(meta.gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| fs_err(&shown, e))?;
                }
                drop(fd);
                rustix::fs::chmodat(
                    &parent,
                    name.as_os_str(),
                    Mode::from_raw_mode(meta.mode & 0o7777),
                    AtFlags::empty(),
                )
                .map_err(|e| fs_err(&shown, e))
            }
            T::Char => {
                let major = entry.header().device_major().ok().flatten().unwrap_or(1);
                let minor = entry.header().device_minor().ok().flatten().unwrap_or(1);
                if major == 0 && minor == 0 {
                    // Already overlay's whiteout form (a layer exported from an overlay).
                    return self.whiteout(parent.as_fd(), name, &meta, &shown);
                }
                Err(refused(
                    &shown,
                    "device nodes are not allowed in image layers",
                ))
            }
            T::Block => Err(refused(
                &shown,
                "device nodes are not allowed in image layers",
            )),
            T::GNUSparse => Err(refused(&shown, "sparse files are not supported")),
            other => Err(refused(
                &shown,
                format!("unsupported tar entry type {other:?}"),
            )),
        }
    }

    /// The entry's path as components inside the layer: leading `/` and `.` dropped, `..`
    /// clamped at the root (as a chroot would), NUL and over-long names refused.
    fn normalise(&self, raw: &[u8], shown: &str) -> Result<Vec<OsString>, UnpackError> {
        if raw.contains(&0) {
            return Err(refused(shown, "NUL byte in the name"));
        }
        if raw.len() > self.limits.max_path {
            return Err(refused(
                shown,
                format!("name longer than {} bytes", self.limits.max_path),
            ));
        }
        let mut out: Vec<OsString> = Vec::new();
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    out.pop();
                }
                c if c.len() > 255 => {
                    return Err(refused(shown, "a path component longer than 255 bytes"));
                }
                c => out.push(OsString::from_vec(c.to_vec())),
            }
        }
        Ok(out)
    }

    /// The parent dir of an entry, created (0755, root-owned, as containerd does) if the
    /// layer does not have it; resolved inside the layer root.
    fn parent(&mut self, comps: &[OsString], shown: &str) -> Result<OwnedFd, UnpackError> {
        if let Some((p, fd)) = &self.cached_parent {
            if p.as_slice() == comps {
                return dup(fd, shown);
            }
        }
        let mut path = comps.to_vec();
        let mut hops = 0;
        let mut cur = dup(&self.root, shown)?;
        let mut i = 1;
        while i <= path.len() {
            match self.open_in_root(&path[..i]) {
                Ok(fd) => cur = fd,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(
                        &cur,
                        path[i - 1].as_os_str(),
                        Mode::from_raw_mode(0o755),
                    ) {
                        Ok(()) => {}
                        Err(Errno::EXIST) => {
                            // A dangling symlink: follow it (inside the root) and create
                            // its target, as containerd's RootPath + MkdirAll do.
                            hops += 1;
                            if hops > 40 {
                                return Err(fs_err(shown, io::Error::from(Errno::LOOP)));
                            }
                            let target =
                                rustix::fs::readlinkat(&cur, path[i - 1].as_os_str(), Vec::new())
                                    .map_err(|e| {
                                    fs_err(
                                        shown,
                                        io::Error::other(format!("parent directory: {e}")),
                                    )
                                })?;
                            let t = target.as_bytes();
                            let mut next: Vec<OsString> = if t.starts_with(b"/") {
                                Vec::new()
                            } else {
                                path[..i - 1].to_vec()
                            };
                            for c in t.split(|b| *b == b'/') {
                                match c {
                                    b"" | b"." => {}
                                    b".." => {
                                        next.pop();
                                    }
                                    c => next.push(OsString::from_vec(c.to_vec())),
                                }
                            }
                            next.extend_from_slice(&path[i..]);
                            path = next;
                            cur = dup(&self.root, shown)?;
                            i = 1;
                            continue;
                        }
                        Err(e) => return Err(fs_err(shown, e)),
                    }
                    cur = self.open_in_root(&path[..i]).map_err(|e| {
                        fs_err(shown, io::Error::other(format!("parent directory: {e}")))
                    })?;
                }
                Err(e) => {
                    return Err(fs_err(
                        shown,
                        io::Error::other(format!("parent directory: {e}")),
                    ));
                }
            }
            i += 1;
        }
        self.cached_parent = Some((comps.to_vec(), dup(&cur, shown)?));
        Ok(cur)
    }

    /// Opens a directory of the layer, resolving every component inside the layer root.
    fn open_in_root(&self, comps: &[OsString]) -> Result<OwnedFd, Errno> {
        let mut p = Vec::new();
        for (i, c) in comps.iter().enumerate() {
            if i > 0 {
                p.push(b'/');
            }
            p.extend_from_slice(c.as_bytes());
        }
        if p.is_empty() {
            p.push(b'.');
        }
        rustix::fs::openat2(
            &self.root,
            OsStr::from_bytes(&p),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// Removes `name` from `parent` (a whole tree for a directory), never following links.
    fn remove_existing(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        shown: &str,
    ) -> Result<(), UnpackError> {
        remove_all_at(parent, name, 0).map_err(|e| fs_err(shown, e))
    }

    /// overlayfs's whiteout: a 0/0 character device with the entry's owner.
    fn whiteout(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        rustix::fs::mknodat(parent, name, FileType::CharacterDevice, Mode::empty(), 0)
            .map_err(|e| fs_err(shown, e))?;
        if self.same_owner {
            rustix::fs::chownat(
                parent,
                name,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| fs_err(shown, e))?;
        }
        Ok(())
    }

    /// Owner, then xattrs, then mode (chown clears setuid/setgid: the mode comes last).
    fn apply_meta(&self, fd: BorrowedFd<'_>, meta: &Meta, shown: &str) -> Result<(), UnpackError> {
        if self.same_owner {
            rustix::fs::fchown(
                fd,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            )
            .map_err(|e| fs_err(shown, e))?;
        }
        for (k, v) in &meta.xattrs {
            match rustix::fs::fsetxattr(fd, k.as_os_str(), v, XattrFlags::empty()) {
                Ok(()) => {}
                Err(Errno::OPNOTSUPP) | Err(Errno::PERM) => {
                    tracing::debug!(path = shown, xattr = ?k, "xattr not supported here; skipped");
                }
                Err(e) => return Err(fs_err(shown, e)),
            }
        }
        rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode & 0o7777))
            .map_err(|e| fs_err(shown, e))
    }

    /// Directory mtimes, last (their children changed them).
    fn finish(&mut self) -> Result<(), UnpackError> {
        self.cached_parent = None;
        for (comps, mtime) in std::mem::take(&mut self.dir_times) {
            if let Ok(fd) = self.open_in_root(&comps) {
                let _ = rustix::fs::futimens(&fd, &timestamps(mtime));
            }
        }
        Ok(())
    }
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, shown: &str) -> Result<Meta, UnpackError> {
    let h = entry.header();
    let bad = |what: &str| refused(shown, format!("invalid {what} in the header"));
    // An all-NUL/space numeric field reads as 0 (as Go's archive/tar reads it); other
    // garbage is refused.
    let old = h.as_old();
    let num = |r: io::Result<u64>, raw: &[u8], what: &str| {
        r.or_else(|_| {
            raw.iter()
                .all(|b| *b == 0 || *b == b' ')
                .then_some(0)
                .ok_or_else(|| bad(what))
        })
    };
    let mode = num(h.mode().map(u64::from), &old.mode, "mode")? as u32;
    let mut uid = num(h.uid(), &old.uid, "uid")?;
    let mut gid = num(h.gid(), &old.gid, "gid")?;
    let mut mtime = i64::try_from(num(h.mtime(), &old.mtime, "mtime")?).unwrap_or(0);
    let mut xattrs = Vec::new();
    if let Some(pax) = entry.pax_extensions().map_err(UnpackError::from_read)? {
        for ext in pax {
            let ext = ext.map_err(UnpackError::from_read)?;
            let key = ext.key_bytes();
            let num = || {
                std::str::from_utf8(ext.value_bytes())
                    .ok()
                    .and_then(|s| s.split('.').next())
                    .and_then(|s| s.parse::<i64>().ok())
            };
            match key {
                b"uid" => {
                    uid = num()
                        .and_then(|n| u64::try_from(n).ok())
                        .ok_or_else(|| bad("uid"))?
                }
                b"gid" => {
                    gid = num()
                        .and_then(|n| u64::try_from(n).ok())
                        .ok_or_else(|| bad("gid"))?
                }
                b"mtime" => mtime = num().unwrap_or(mtime),
                k if k.starts_with(b"SCHILY.xattr.") => {
                    let name = &k[b"SCHILY.xattr.".len()..];
                    if xattr_allowed(name) {
                        xattrs.push((
                            OsString::from_vec(name.to_vec()),
                            ext.value_bytes().to_vec(),
                        ));
                    } else {
                        tracing::debug!(path = shown, xattr = %String::from_utf8_lossy(name), "xattr dropped");
                    }
                }
                _ => {}
            }
        }
    }
    let uid = u32::try_from(uid)
        .ok()
        .filter(|u| *u != u32::MAX)
        .ok_or_else(|| bad("uid"))?;
    let gid = u32::try_from(gid)
        .ok()
        .filter(|g| *g != u32::MAX)
        .ok_or_else(|| bad("gid"))?;
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

/// Xattrs a layer may set: file capabilities and `user.*`, but never overlayfs's own
/// (`trusted.overlay.*`, `user.overlay.*`), which would steer the overlay mount.
fn xattr_allowed(name: &[u8]) -> bool {
    name == b"security.capability"
        || (name.starts_with(b"user.") && !name.starts_with(b"user.overlay."))
}

fn set_xattr(fd: BorrowedFd<'_>, name: &str, value: &[u8], shown: &str) -> Result<(), UnpackError> {
    rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty()).map_err(|e| fs_err(shown, e))
}

fn dup(fd: &OwnedFd, shown: &str) -> Result<OwnedFd, UnpackError> {
    fd.try_clone().map_err(|e| fs_err(shown, e))
}

fn open_child_dir(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    shown: &str,
) -> Result<OwnedFd, UnpackError> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fs_err(shown, e))
}

fn timestamps(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn set_mtime(fd: BorrowedFd<'_>, mtime: i64, shown: &str) -> Result<(), UnpackError> {
    rustix::fs::futimens(fd, &timestamps(mtime)).map_err(|e| fs_err(shown, e))
}

/// `rm -rf parent/name` through fds only (never follows a symlink; depth is bounded by the
/// path-length limit, checked again here).
pub(crate) fn remove_all_at(parent: BorrowedFd<'_>, name: &OsStr, depth: usize) -> io::Result<()> {
    if depth > 4096 {
        return Err(io::Error::other("directory tree too deep"));
    }
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    let dir = rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for e in rustix::fs::Dir::read_from(&dir)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsString::from_vec(n.to_vec()));
        }
    }
    for n in names {
        remove_all_at(dir.as_fd(), &n, depth + 1)?;
    }
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?;
    Ok(())
}

#[cfg(test)]
mod tests;
