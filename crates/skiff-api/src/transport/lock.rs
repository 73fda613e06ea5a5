//! One daemon per data dir: an exclusive `flock` on `<data_dir>/serve.lock`, held for the
//! daemon's life (the kernel drops it when the process dies, so a `kill -9`'d daemon never
//! leaves a stale lock). The holder writes its pid into the file so a second daemon can say
//! who holds it.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::TransportError;

/// The lock file's name in the data dir.
pub const LOCK_FILE: &str = "serve.lock";

/// How long a lock whose recorded holder is dead may stay taken (a child of the dead daemon
/// between fork and exec) before the daemon gives up.
const STALE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
const STALE_LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct DaemonLock {
    file: std::fs::File,
    path: PathBuf,
}

impl DaemonLock {
    /// Takes the lock or fails with [`TransportError::Locked`] naming the holder's pid.
    pub fn acquire(data_dir: &Path) -> Result<Self, TransportError> {
        std::fs::create_dir_all(data_dir).map_err(|e| TransportError::Io {
            path: data_dir.to_path_buf(),
            what: "creating the data dir".into(),
            source: e,
        })?;
        let path = data_dir.join(LOCK_FILE);
        let io = |what: &str, e: Errno| TransportError::Io {
            path: path.clone(),
            what: what.into(),
            source: e.into(),
        };
        // Never through a planted link; CLOEXEC so that no child keeps the lock alive.
        let fd = rustix::fs::open(
            &path,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| match e {
            Errno::LOOP => TransportError::Insecure {
                path: path.clone(),
                why: "is a symlink; refusing to follow it (remove it)".into(),
            },
            e => io("opening", e),
        })?;
        let mut file = std::fs::File::from(fd);
        let mut waited = std::time::Duration::ZERO;
        loop {
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(Errno::WOULDBLOCK) => {
                    let mut s = String::new();
                    let _ = (&file).rewind();
                    let _ = (&file).take(64).read_to_string(&mut s);
                    let pid: Option<u32> = s.trim().parse().ok();
                    // A daemon killed while one of its children was between fork and exec
                    // leaves the lock with that child for a moment (the descriptor is
                    // CLOEXEC, so the exec drops it): when the recorded holder is dead, wait
                    // briefly for the lock instead of refusing.
                    let holder_alive =
                        pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
                    if holder_alive || waited >= STALE_LOCK_WAIT {
                        return Err(TransportError::Locked { path, pid });
                    }
                    std::thread::sleep(STALE_LOCK_POLL);
                    waited += STALE_LOCK_POLL;
                }
                Err(e) => return Err(io("locking", e)),
            }
        }
        // Ours now: record our pid for whoever finds it locked.
        let res = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        if let Err(e) = res {
            return Err(TransportError::Io {
                path,
                what: "writing".into(),
                source: e,
            });
        }
        Ok(Self { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DaemonLock {
    fn drop(&mut self) {
        // Released by the close; emptied first so a reader never blames a finished pid.
        let _ = self.file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn second_holder_refused_with_pid() {
        let t = tempfile::tempdir().unwrap();
        let l = DaemonLock::acquire(t.path()).unwrap();
        match DaemonLock::acquire(t.path()) {
            Err(TransportError::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        let msg = DaemonLock::acquire(t.path()).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(l);
        DaemonLock::acquire(t.path()).unwrap();
    }
}
