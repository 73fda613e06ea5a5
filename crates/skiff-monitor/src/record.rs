//! The exit record: how the container ended, written by the monitor once its output is logged
//! and read by skiff (or, after a restart, by whoever adopts the pod). A small `key=value`
//! text format: readable by people, parsed without a serialization crate, and checked
//! strictly when read back (the file lives in a directory containers never see, but a
//! truncated or foreign file must be an error naming itself, never a guess).

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// First line of every record; bumped when the format changes.
const MAGIC: &str = "skiff-exit-record v1";
/// Largest record accepted when reading (a real one is ~120 bytes).
pub const MAX_RECORD_BYTES: u64 = 4096;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal number.
    Signaled(i32),
}

impl ExitStatus {
    /// The container exit code: the code, or 128 + signal for a signal death.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }

    /// The signal that killed the process, if any.
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Signaled(s) => Some(s),
            ExitStatus::Exited(_) => None,
        }
    }
}

/// What the monitor records when its container has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitRecord {
    /// The container's main process.
    pub pid: i32,
    pub status: ExitStatus,
    /// When the monitor reaped it.
    pub finished_at: SystemTime,
    /// Lines the live copy to skiff lost (the log file has them all).
    pub live_lines_dropped: u64,
}

/// A record that cannot be read back.
// `thiserror` would be the usual choice; the monitor keeps its dependencies to nix and
// flate2, so the two impls are written out.
#[derive(Debug)]
pub enum RecordError {
    Io(io::Error),
    Invalid(String),
}

impl std::error::Error for RecordError {}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Io(e) => write!(f, "{e}"),
            RecordError::Invalid(why) => write!(f, "not a valid exit record: {why}"),
        }
    }
}

impl From<io::Error> for RecordError {
    fn from(e: io::Error) -> Self {
        RecordError::Io(e)
    }
}

impl ExitRecord {
    pub fn encode(&self) -> String {
        let (kind, value) = match self.status {
            ExitStatus::Exited(c) => ("exited", c),
            ExitStatus::Signaled(s) => ("signaled", s),
        };
        let nanos = self
            .finished_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        format!(
            "{MAGIC}\npid={}\n{kind}={value}\nfinished_unix_nanos={nanos}\nlive_lines_dropped={}\n",
            self.pid, self.live_lines_dropped
        )
    }

    pub fn decode(text: &str) -> Result<ExitRecord, RecordError> {
        let bad = |why: &str| RecordError::Invalid(why.to_string());
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(bad(
                "missing header (truncated, or not written by skiff-monitor)",
            ));
        }
        let (mut pid, mut status, mut finished, mut dropped) = (None, None, None, Some(0));
        for line in lines {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| bad(&format!("line {line:?}")))?;
            let int = |v: &str| {
                v.parse::<i64>()
                    .map_err(|_| bad(&format!("{k}: not a number")))
            };
            match k {
                "pid" => pid = Some(int(v)?),
                "exited" => status = Some(ExitStatus::Exited(int(v)? as i32)),
                "signaled" => status = Some(ExitStatus::Signaled(int(v)? as i32)),
                "finished_unix_nanos" => {
                    finished = Some(
                        v.parse::<u128>()
                            .map_err(|_| bad("finished_unix_nanos: not a number"))?,
                    )
                }
                "live_lines_dropped" => dropped = Some(int(v)?.max(0) as u64),
                // Later versions may add keys; this one ignores them.
                _ => {}
            }
        }
        let pid = pid.ok_or_else(|| bad("no pid"))?;
        let status = status.ok_or_else(|| bad("no exit status"))?;
        let nanos = finished.ok_or_else(|| bad("no finish time"))?;
        let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| bad("finish time"))?;
        Ok(ExitRecord {
            pid: i32::try_from(pid).map_err(|_| bad("pid out of range"))?,
            status,
            finished_at: UNIX_EPOCH + Duration::new(secs, (nanos % 1_000_000_000) as u32),
            live_lines_dropped: dropped.unwrap_or(0),
        })
    }

    /// Writes the record to `path` through `<path>.tmp` and a rename, so a reader sees the
    /// whole record or none.
    pub fn write_atomic(&self, path: &Path) -> io::Result<()> {
        write_file_atomic(path, self.encode().as_bytes())
    }

    /// Reads the record at `path` (`Ok(None)` when there is none yet).
    pub fn read(path: &Path) -> Result<Option<ExitRecord>, RecordError> {
        let data = match read_file_bounded(path, MAX_RECORD_BYTES) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(RecordError::Invalid(e.to_string()))
            }
            Err(e) => return Err(e.into()),
        };
        let text = String::from_utf8(data).map_err(|_| RecordError::Invalid("not UTF-8".into()))?;
        ExitRecord::decode(&text).map(Some)
    }
}

/// Writes `data` to `path` through `<path>.tmp` and a rename (never through a symlink), so a
/// reader sees the whole file or none. Shared with skiff-node's instance records.
pub fn write_file_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(data)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Reads the regular file at `path` (never through a symlink, never blocking on a FIFO), at
/// most `max` bytes: a larger or non-regular file is `InvalidData`.
pub fn read_file_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let mut data = Vec::new();
    f.take(max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_ones_say_why() {
        let r = ExitRecord {
            pid: 7,
            status: ExitStatus::Signaled(9),
            finished_at: UNIX_EPOCH + Duration::new(1_700_000_000, 42),
            live_lines_dropped: 3,
        };
        assert_eq!(ExitRecord::decode(&r.encode()).ok(), Some(r.clone()));
        let text = r.encode();
        let truncated = &text[..text.len() / 2];
        assert!(ExitRecord::decode(truncated).is_err());
        assert!(ExitRecord::decode("").is_err());
        assert!(ExitRecord::decode("skiff-exit-record v1\npid=x\n").is_err());

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.exit");
        assert!(ExitRecord::read(&p).unwrap().is_none());
        r.write_atomic(&p).unwrap();
        assert_eq!(ExitRecord::read(&p).unwrap(), Some(r.clone()));
        assert!(!dir.path().join("0.exit.tmp").exists());
        std::fs::write(&p, vec![b'x'; 10_000]).unwrap();
        assert!(matches!(ExitRecord::read(&p), Err(RecordError::Invalid(_))));
        // Planted: a symlink to a valid-looking record elsewhere, and a FIFO that would block.
        let elsewhere = dir.path().join("elsewhere");
        r.write_atomic(&elsewhere).unwrap();
        let link = dir.path().join("1.exit");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        assert!(ExitRecord::read(&link).is_err(), "followed a symlink");
        let fifo = dir.path().join("2.exit");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(
            ExitRecord::read(&fifo),
            Err(RecordError::Invalid(_))
        ));
    }
}

/// The monitor's first act: which processes hold the instance — the monitor itself and the
/// container's main process, each with its start time in clock ticks (field 22 of
/// `/proc/<pid>/stat`: a PID alone may be reused). skiff writes the instance record before the
/// processes exist and completes it once they run; if skiff dies in between, this file (beside
/// the exit record: [`started_path`]) completes it, so the next skiff adopts the running
/// instance instead of killing and starting it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartedRecord {
    pub monitor_pid: i32,
    pub monitor_ticks: u64,
    pub pid: i32,
    pub ticks: u64,
}

/// Where the [`StartedRecord`] of the instance whose exit record is `exit` lives.
pub fn started_path(exit: &Path) -> std::path::PathBuf {
    exit.with_extension("started")
}

/// The start time of `pid` in clock ticks since boot (`None` if it is gone).
pub fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl StartedRecord {
    pub fn encode(&self) -> String {
        format!(
            "{} {} {} {}\n",
            self.monitor_pid, self.monitor_ticks, self.pid, self.ticks
        )
    }

    pub fn decode(text: &str) -> Option<StartedRecord> {
        let mut it = text.split_whitespace();
        let r = StartedRecord {
            monitor_pid: it.next()?.parse().ok()?,
            monitor_ticks: it.next()?.parse().ok()?,
            pid: it.next()?.parse().ok()?,
            ticks: it.next()?.parse().ok()?,
        };
        (it.next().is_none() && r.monitor_pid > 0 && r.pid > 0).then_some(r)
    }

    /// Reads the record of the instance whose exit record is `exit` (`None`: none, or not one).
    pub fn read(exit: &Path) -> Option<StartedRecord> {
        let data = read_file_bounded(&started_path(exit), 128).ok()?;
        StartedRecord::decode(std::str::from_utf8(&data).ok()?)
    }
}

#[cfg(test)]
mod started_tests {
    use super::*;

    #[test]
    fn started_records_round_trip_and_refuse_garbage() {
        let r = StartedRecord {
            monitor_pid: 10,
            monitor_ticks: 11,
            pid: 12,
            ticks: 13,
        };
        assert_eq!(StartedRecord::decode(&r.encode()), Some(r));
        assert_eq!(StartedRecord::decode("1 2 3"), None);
        assert_eq!(StartedRecord::decode("0 2 3 4"), None);
        assert_eq!(StartedRecord::decode("1 2 3 4 5"), None);
        assert_eq!(
            started_path(Path::new("/x/app/3.exit")),
            Path::new("/x/app/3.started")
        );
    }
}
