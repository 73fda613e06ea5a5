//! The daemon's private directory (`<data_dir>/serve`) and its files, handled so that nothing
//! planted there is trusted: the directory is opened once without following a link and checked
//! (ours, mode 0700), and every file inside is opened relative to that descriptor with
//! `O_NOFOLLOW` (a symlink is refused, never followed), checked (a regular file, ours, no
//! group/other bits) and written only through a fresh `O_EXCL` file renamed into place. Every
//! descriptor is `O_CLOEXEC` (monitors the daemon starts must not inherit them).

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::TransportError;

/// The largest file read back from the serve dir (keys, certificates, token, endpoint): far
/// above what skiff writes, a bound against a planted huge file.
const MAX_FILE: u64 = 256 * 1024;

/// `<data_dir>/serve`, opened and checked.
#[derive(Debug)]
pub struct SecureDir {
    path: PathBuf,
    fd: OwnedFd,
}

fn io_err(path: &Path, what: &str, e: impl Into<std::io::Error>) -> TransportError {
    TransportError::Io {
        path: path.to_path_buf(),
        what: what.to_string(),
        source: e.into(),
    }
}

impl SecureDir {
    /// Opens (creating with `create`) `<data_dir>/serve`; refuses a symlink, a directory owned
    /// by another user, or one others can enter.
    pub fn open(data_dir: &Path, create: bool) -> Result<Self, TransportError> {
        let path = data_dir.join(super::SERVE_DIR);
        if create {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| io_err(data_dir, "creating the data dir", e))?;
            match rustix::fs::mkdir(&path, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(io_err(&path, "creating", e)),
            }
        }
        let fd = rustix::fs::open(
            &path,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::LOOP | Errno::NOTDIR => TransportError::Insecure {
                path: path.clone(),
                why: "is not a directory (a symlink?)".into(),
            },
            e => io_err(&path, "opening", e),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| io_err(&path, "checking", e))?;
        let euid = rustix::process::geteuid().as_raw();
        if st.st_uid != euid {
            return Err(TransportError::Insecure {
                path,
                why: format!("is owned by uid {}, not by skiff's uid {euid}", st.st_uid),
            });
        }
        if st.st_mode & 0o077 != 0 {
            return Err(TransportError::Insecure {
                path,
                why: format!(
                    "has mode {:04o}; it must be 0700 (chmod 700 it, or remove it to have it recreated)",
                    st.st_mode & 0o7777
                ),
            });
        }
        Ok(Self { path, fd })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Reads a file of the dir, or `None` when absent. A symlink, a non-regular file, a file
    /// of another owner or with group/other bits is an error (never followed, never trusted).
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, TransportError> {
        let path = self.file_path(name);
        let fd = match rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => {
                return Err(TransportError::Insecure {
                    path,
                    why: "is a symlink; refusing to follow it (remove it)".into(),
                })
            }
            Err(e) => return Err(io_err(&path, "opening", e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| io_err(&path, "checking", e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(TransportError::Insecure {
                path,
                why: "is not a regular file".into(),
            });
        }
        let euid = rustix::process::geteuid().as_raw();
        if st.st_uid != euid || st.st_mode & 0o077 != 0 {
            return Err(TransportError::Insecure {
                path,
                why: format!(
                    "has owner uid {} and mode {:04o}; it must be skiff's (uid {euid}) with mode 0600",
                    st.st_uid,
                    st.st_mode & 0o7777
                ),
            });
        }
        let mut data = Vec::new();
        std::fs::File::from(fd)
            .take(MAX_FILE + 1)
            .read_to_end(&mut data)
            .map_err(|e| io_err(&path, "reading", e))?;
        if data.len() as u64 > MAX_FILE {
            return Err(TransportError::Insecure {
                path,
                why: format!("is larger than {MAX_FILE} bytes"),
            });
        }
        Ok(Some(data))
    }

    /// Writes a file of mode 0600 atomically: a new file (`O_EXCL`, so never through a
    /// planted link) written, synced and renamed over `name` (a rename replaces a link
    /// itself, never its target).
    pub fn write(&self, name: &str, data: &[u8]) -> Result<(), TransportError> {
        let path = self.file_path(name);
        let tmp = format!(".{name}.{}.tmp", std::process::id());
        match rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(io_err(&path, "removing a stale temporary file for", e)),
        }
        let fd = rustix::fs::openat(
            &self.fd,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io_err(&path, "creating", e))?;
        // The umask may only narrow 0600; fchmod states it whatever the umask.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600))
            .map_err(|e| io_err(&path, "chmod", e))?;
        let mut f = std::fs::File::from(fd);
        f.write_all(data)
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err(&path, "writing", e))?;
        drop(f);
        rustix::fs::renameat(&self.fd, tmp.as_str(), &self.fd, name)
            .map_err(|e| io_err(&path, "renaming into place", e))?;
        rustix::fs::fsync(&self.fd).map_err(|e| io_err(&self.path, "syncing", e))?;
        Ok(())
    }

    /// Removes an entry (a link itself, never its target); absent is fine.
    pub fn remove(&self, name: &str) -> Result<(), TransportError> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(io_err(&self.file_path(name), "removing", e)),
        }
    }

    /// Renames an entry inside the dir.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), TransportError> {
        rustix::fs::renameat(&self.fd, from, &self.fd, to)
            .map_err(|e| io_err(&self.file_path(to), "renaming into place", e))
    }

    /// Sets an entry's mode without following a link.
    pub fn chmod(&self, name: &str, mode: u32) -> Result<(), TransportError> {
        rustix::fs::chmodat(
            &self.fd,
            name,
            Mode::from_raw_mode(mode),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .or_else(|e| match e {
            // Older kernels lack fchmodat2's AT_SYMLINK_NOFOLLOW; the entry was just created by
            // us in a directory only we can write.
            Errno::NOTSUP | Errno::INVAL | Errno::NOSYS => {
                rustix::fs::chmodat(&self.fd, name, Mode::from_raw_mode(mode), AtFlags::empty())
            }
            e => Err(e),
        })
        .map_err(|e| io_err(&self.file_path(name), "chmod", e))
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_private_dir_and_files() {
        let t = tempfile::tempdir().unwrap();
        let d = SecureDir::open(t.path(), true).unwrap();
        let meta = std::fs::metadata(d.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
        assert_eq!(d.read("x").unwrap(), None);
        d.write("x", b"hello").unwrap();
        assert_eq!(d.read("x").unwrap().unwrap(), b"hello");
        let meta = std::fs::metadata(d.file_path("x")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        // Nothing temporary left behind.
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x")]);
    }

    #[test]
    fn refuses_links_wide_modes_and_wide_dirs() {
        let t = tempfile::tempdir().unwrap();
        let d = SecureDir::open(t.path(), true).unwrap();
        let target = t.path().join("elsewhere");
        std::fs::write(&target, b"secret").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&target, d.file_path("token")).unwrap();
        let e = d.read("token").unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        // Writing replaces the link itself; the target is untouched.
        d.write("token", b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"secret");
        assert!(!std::fs::symlink_metadata(d.file_path("token"))
            .unwrap()
            .file_type()
            .is_symlink());
        std::fs::set_permissions(d.file_path("token"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let e = d.read("token").unwrap_err().to_string();
        assert!(e.contains("0644"), "{e}");
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = SecureDir::open(t.path(), true).unwrap_err().to_string();
        assert!(e.contains("0755"), "{e}");
        // A symlinked serve dir is refused.
        let t2 = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(d.path(), t2.path().join("serve")).unwrap();
        let e = SecureDir::open(t2.path(), true).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
    }
}
