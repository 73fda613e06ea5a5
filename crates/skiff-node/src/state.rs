//! What the node keeps on disk about each container instance, so that whoever comes after a
//! skiff process (its pod keeper, the next daemon) can tell what runs and adopt it.
//!
//! # Records (decision)
//! Beside each instance's log, `<pod dir>/<container>/<attempt>.state.json` (written by the
//! runtime once the container runs, through a temporary file and a rename): the instance's
//! identity (pod UID, container name, engine instance, attempt, runtime ID), its monitor and
//! main process as PID + start time in clock ticks + boot ID (a PID alone may name another
//! process after a reboot or reuse), and where its log and exit record are. The monitor writes
//! the exit record (`<attempt>.exit`, `skiff_monitor::ExitRecord`) when the container has
//! ended.
//!
//! [`scan_pod`] reads them back: an instance with an exit record has **exited**; one whose
//! monitor still runs is **running**; one whose monitor is gone without a record (killed), or
//! that was started before the last boot, is **unknown** (R3/S7: killed first, then started
//! again). A record that cannot be read is reported with its file name and skipped; the others
//! are still used.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Suffix of an instance record.
pub const STATE_SUFFIX: &str = ".state.json";
/// Suffix of an exit record.
pub const EXIT_SUFFIX: &str = ".exit";
/// A record is a few hundred bytes; more is not one of skiff's.
const MAX_RECORD_BYTES: u64 = 64 * 1024;
/// Format version written; records of other versions are reported, not guessed at.
const VERSION: u32 = 1;

/// A process identity that survives PID reuse: the PID, its start time in clock ticks since
/// boot (`/proc/<pid>/stat` field 22) and the boot it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRef {
    pub pid: i32,
    pub start_ticks: u64,
}

impl ProcessRef {
    /// The process `pid` as it is now (`None` if it is gone).
    pub fn of(pid: i32) -> Option<ProcessRef> {
        Some(ProcessRef {
            pid,
            start_ticks: start_ticks(pid)?,
        })
    }

    /// Whether this very process still exists (a zombie counts until it is reaped).
    pub fn alive(&self) -> bool {
        self.pid > 0 && start_ticks(self.pid) == Some(self.start_ticks)
    }

    /// A pidfd for this very process: checked after opening, so it cannot name a successor
    /// that got the same PID. `None` when it is gone.
    pub fn pidfd(&self) -> Option<std::os::fd::OwnedFd> {
        let pid = rustix::process::Pid::from_raw(self.pid)?;
        let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()?;
        self.alive().then_some(fd)
    }
}

/// Field 22 of `/proc/<pid>/stat`.
pub fn start_ticks(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// This boot's ID (`/proc/sys/kernel/random/boot_id`), empty if unreadable.
pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// One container instance as the runtime started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRecord {
    pub version: u32,
    pub pod_uid: String,
    pub container: String,
    /// The engine's instance number (`InstanceId`).
    pub instance: u64,
    /// The restart count this instance was started with (its log is `<attempt>.log`).
    pub attempt: u32,
    pub runtime_id: String,
    pub boot_id: String,
    pub monitor: ProcessRef,
    pub main: ProcessRef,
    pub started_unix_ms: i64,
    pub log_path: PathBuf,
    pub exit_path: PathBuf,
    /// The instance's cgroup, relative to skiff's own in every hierarchy (the tracking
    /// group's `cgroups_path`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
}

impl InstanceRecord {
    /// Whether this is the record written just before the instance's processes were started
    /// (no PIDs yet): found like this, the process that started it died mid-start, and
    /// whatever of it runs is only to be found in its cgroup.
    pub fn interrupted(&self) -> bool {
        self.main.pid <= 0
    }
}

impl InstanceRecord {
    /// Where the record of instance `attempt` of the container whose directory is `dir` lives.
    pub fn path(container_dir: &Path, attempt: u32) -> PathBuf {
        container_dir.join(format!("{attempt}{STATE_SUFFIX}"))
    }

    /// Writes the record through a temporary file and a rename.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let data = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        write_atomic(path, &data)
    }

    /// Reads and checks one record.
    pub fn read(path: &Path) -> Result<InstanceRecord, StateError> {
        let err = |why: String| StateError {
            path: path.to_path_buf(),
            why,
        };
        let data = read_bounded(path, MAX_RECORD_BYTES).map_err(|e| err(e.to_string()))?;
        let r: InstanceRecord =
            serde_json::from_slice(&data).map_err(|e| err(format!("not a valid record: {e}")))?;
        if r.version != VERSION {
            return Err(err(format!(
                "record version {} (this skiff reads {VERSION})",
                r.version
            )));
        }
        Ok(r)
    }
}

/// A record that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {why}", path.display())]
pub struct StateError {
    pub path: PathBuf,
    pub why: String,
}

/// What became of an instance, as far as the records and the process table tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// Its monitor runs, so the container is running (or is just being logged to its end).
    Running,
    /// It ended and the monitor recorded how.
    Exited(skiff_monitor::ExitRecord),
    /// Its monitor is gone without a record, or it was started before this boot.
    Unknown,
}

/// One instance found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundInstance {
    pub record: InstanceRecord,
    pub observed: Observed,
}

/// Every instance record under `pod_dir` (`<container>/<attempt>.state.json`), oldest attempt
/// first per container, and the records that could not be read (each names its file).
pub fn scan_pod(pod_dir: &Path) -> (Vec<FoundInstance>, Vec<StateError>) {
    let boot = boot_id();
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let Ok(entries) = fs::read_dir(pod_dir) else {
        return (found, errors);
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let Ok(files) = fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<(u32, PathBuf)> = files
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let attempt = name.strip_suffix(STATE_SUFFIX)?.parse().ok()?;
                Some((attempt, e.path()))
            })
            .collect();
        paths.sort();
        for (_, path) in paths {
            match InstanceRecord::read(&path) {
                Ok(mut record) => {
                    complete_interrupted(&mut record);
                    let observed = observe(&record, &boot);
                    match observed {
                        Ok(observed) => found.push(FoundInstance { record, observed }),
                        Err(why) => errors.push(StateError { path, why }),
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }
    (found, errors)
}

/// An interrupted start's record (no PIDs: its skiff died before writing them) completed from
/// what the instance's monitor wrote when it started (skiff_monitor::record::StartedRecord):
/// the instance is then observed like any other — adopted if it runs — instead of being
/// killed as unknown and started again.
fn complete_interrupted(record: &mut InstanceRecord) {
    if !record.interrupted() {
        return;
    }
    let Some(s) = skiff_monitor::record::StartedRecord::read(&record.exit_path) else {
        return;
    };
    record.monitor = ProcessRef {
        pid: s.monitor_pid,
        start_ticks: s.monitor_ticks,
    };
    record.main = ProcessRef {
        pid: s.pid,
        start_ticks: s.ticks,
    };
}

fn observe(r: &InstanceRecord, boot: &str) -> Result<Observed, String> {
    // The exit record is the monitor's last act: if it is there, that is the end.
    match skiff_monitor::ExitRecord::read(&r.exit_path) {
        Ok(Some(exit)) if exit.pid == r.main.pid => return Ok(Observed::Exited(exit)),
        // The record of an interrupted start has no PIDs yet, but its container ran and its
        // monitor ended it: the exit record at this instance's own path is its end (without
        // it the instance is lost and its attempt number reused).
        Ok(Some(exit)) if r.interrupted() => return Ok(Observed::Exited(exit)),
        Ok(Some(exit)) => {
            return Err(format!(
                "{}: the exit record is of PID {}, not {}",
                r.exit_path.display(),
                exit.pid,
                r.main.pid
            ))
        }
        Ok(None) => {}
        Err(e) => return Err(format!("{}: {e}", r.exit_path.display())),
    }
    if r.boot_id != boot || r.interrupted() || !r.monitor.alive() {
        return Ok(Observed::Unknown);
    }
    Ok(Observed::Running)
}

use skiff_monitor::record::{read_file_bounded as read_bounded, write_file_atomic as write_atomic};

/// The pod's `containerID` key: its UID (a random v4 UUID given at admission) folded to 64
/// bits, so container IDs differ between pods and runs.
pub fn container_id_key(pod: &k8s_openapi::api::core::v1::Pod) -> u64 {
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    // FNV-1a: any well-spread fold will do; the UID is already random.
    uid.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Milliseconds since the epoch.
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(dir: &Path, name: &str, attempt: u32, monitor: ProcessRef) -> InstanceRecord {
        let cdir = dir.join(name);
        fs::create_dir_all(&cdir).unwrap();
        InstanceRecord {
            version: VERSION,
            pod_uid: "u".into(),
            container: name.into(),
            instance: u64::from(attempt) + 1,
            attempt,
            runtime_id: format!("{name}-{attempt}"),
            boot_id: boot_id(),
            monitor: monitor.clone(),
            main: monitor,
            started_unix_ms: 1,
            log_path: cdir.join(format!("{attempt}.log")),
            exit_path: cdir.join(format!("{attempt}{EXIT_SUFFIX}")),
            cgroup: None,
        }
    }

    // Faults: a corrupt or truncated record is reported by file name and the rest is used;
    // a live monitor means running, a record means exited, neither means unknown (R3/S7).
    #[test]
    fn scan_classifies_instances_and_names_bad_records() {
        let dir = tempfile::tempdir().unwrap();
        let me = ProcessRef::of(std::process::id() as i32).unwrap();
        let gone = ProcessRef {
            pid: me.pid,
            start_ticks: me.start_ticks + 1,
        };
        let running = record(dir.path(), "app", 0, me.clone());
        running
            .write(&InstanceRecord::path(&dir.path().join("app"), 0))
            .unwrap();
        let exited = record(dir.path(), "app", 1, gone.clone());
        exited
            .write(&InstanceRecord::path(&dir.path().join("app"), 1))
            .unwrap();
        skiff_monitor::ExitRecord {
            pid: exited.main.pid,
            status: skiff_monitor::ExitStatus::Exited(3),
            finished_at: SystemTime::now(),
            live_lines_dropped: 0,
        }
        .write_atomic(&exited.exit_path)
        .unwrap();
        let unknown = record(dir.path(), "side", 0, gone.clone());
        unknown
            .write(&InstanceRecord::path(&dir.path().join("side"), 0))
            .unwrap();
        let mut old_boot = record(dir.path(), "side", 1, me.clone());
        old_boot.boot_id = "another-boot".into();
        old_boot
            .write(&InstanceRecord::path(&dir.path().join("side"), 1))
            .unwrap();
        // A truncated record and a symlink planted as one.
        let full = serde_json::to_vec(&record(dir.path(), "bad", 0, me.clone())).unwrap();
        fs::write(
            InstanceRecord::path(&dir.path().join("bad"), 0),
            &full[..full.len() / 2],
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "/etc/passwd",
            InstanceRecord::path(&dir.path().join("bad"), 1),
        )
        .unwrap();

        let (found, errors) = scan_pod(dir.path());
        let states: Vec<(String, u32, &Observed)> = found
            .iter()
            .map(|f| (f.record.container.clone(), f.record.attempt, &f.observed))
            .collect();
        assert_eq!(states.len(), 4, "{states:?}");
        assert_eq!(states[0], ("app".into(), 0, &Observed::Running));
        assert!(matches!(states[1], (_, 1, Observed::Exited(r)) if r.status.code() == 3));
        assert_eq!(states[2], ("side".into(), 0, &Observed::Unknown));
        assert_eq!(states[3], ("side".into(), 1, &Observed::Unknown));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors
            .iter()
            .all(|e| e.path.starts_with(dir.path().join("bad"))));
        assert!(
            errors[0].to_string().contains("0.state.json"),
            "{}",
            errors[0]
        );
    }
}
