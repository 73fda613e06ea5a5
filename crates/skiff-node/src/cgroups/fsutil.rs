//! Small file helpers shared by both drivers. Every error carries the path.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::CgroupError;

pub(crate) fn io_err(op: &'static str, path: &Path, source: io::Error) -> CgroupError {
    CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `value` to a cgroup file in one `write(2)`. On a fixture tree
/// (plain directories) a missing file is created; on cgroupfs a missing
/// file is an error naming it (e.g. `cpu.cfs_quota_us` without CFS bandwidth).
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    let opened = match OpenOptions::new().write(true).truncate(true).open(path) {
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                && path.parent().is_some_and(|d| d.is_dir() && !is_cgroupfs(d)) =>
        {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
        }
        other => other,
    };
    let mut f = opened.map_err(|e| io_err("opening", path, e))?;
    f.write_all(value.as_bytes())
        .map_err(|e| io_err("writing", path, e))?;
    tracing::trace!(path = %path.display(), value, "cgroup write");
    Ok(())
}

/// `mkdir`, fine if it exists.
pub(crate) fn mkdir(path: &Path) -> Result<bool, CgroupError> {
    match fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_err("creating", path, e)),
    }
}

/// `mkdir -p` below `base` (which must exist) for the relative `rel`.
pub(crate) fn mkdir_all(base: &Path, rel: &Path) -> Result<(), CgroupError> {
    let mut dir = base.to_path_buf();
    for c in rel.components() {
        dir.push(c);
        mkdir(&dir)?;
    }
    Ok(())
}

/// A `key value` line of a flat-keyed file (`memory.events`, `memory.oom_control`).
pub(crate) fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next()? == key).then(|| it.next()?.parse().ok())?
    })
}

/// Pids listed in a `cgroup.procs` file; a missing file is an empty cgroup.
pub(crate) fn read_pids(procs: &Path) -> Vec<i32> {
    fs::read_to_string(procs)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// SIGKILLs each pid; a pid already gone is not an error.
pub(crate) fn kill_pids(pids: &[i32]) {
    for &pid in pids {
        if pid <= 0 {
            continue;
        }
        match kill(Pid::from_raw(pid), Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => tracing::debug!(pid, error = %e, "SIGKILL of a cgroup member"),
        }
    }
}

/// Names of the subdirectories of `dir` (child cgroups); missing dir → empty.
pub(crate) fn subdirs(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Removes a cgroup directory. On a real cgroupfs `rmdir` works on a
/// directory full of control files; on a fixture tree the files we wrote are
/// removed first. `EBUSY` (the kernel has not finished emptying it) is
/// retried until `deadline`. A missing directory is success.
pub(crate) fn rmdir(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    let mut pause = Duration::from_micros(200);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(Errno::ENOTEMPTY as i32) && !is_cgroupfs(dir) => {
                // Fixture: a plain directory holding the files we wrote.
                remove_plain_files(dir);
                fs::remove_dir(dir).map_err(|e| io_err("removing", dir, e))?;
                return Ok(());
            }
            Err(e)
                if e.raw_os_error() == Some(Errno::EBUSY as i32) && Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(e) => return Err(io_err("removing", dir, e)),
        }
    }
}

/// Removes `dir` if it has no child cgroups and no processes; a missing or
/// busy directory is left alone.
pub(crate) fn rmdir_if_unused(dir: &Path) -> Result<(), CgroupError> {
    if !dir.is_dir() || !subdirs(dir).is_empty() || !read_pids(&dir.join("cgroup.procs")).is_empty()
    {
        return Ok(());
    }
    match rmdir(dir, Instant::now()) {
        Err(CgroupError::Io { source, .. })
            if source.raw_os_error() == Some(Errno::EBUSY as i32) =>
        {
            Ok(())
        }
        other => other,
    }
}

fn remove_plain_files(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.filter_map(|e| e.ok()) {
            if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// Whether `path` lies on cgroupfs/cgroup2fs (statfs magic).
pub(crate) fn is_cgroupfs(path: &Path) -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
    match statfs(path) {
        Ok(s) => {
            let t = s.filesystem_type();
            t == CGROUP_SUPER_MAGIC || t == CGROUP2_SUPER_MAGIC
        }
        Err(_) => false,
    }
}

/// Polls `empty` with a growing pause until it says true or `deadline` passes.
pub(crate) fn wait_until(deadline: Instant, mut empty: impl FnMut() -> bool) -> bool {
    let mut pause = Duration::from_micros(100);
    loop {
        if empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// `base/rel`.
pub(crate) fn under(base: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}
