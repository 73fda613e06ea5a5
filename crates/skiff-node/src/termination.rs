//! Termination messages (ST4), the way the kubelet does them
//! (`pkg/kubelet/kuberuntime/kuberuntime_container.go` `makeMounts` / `getTerminationMessage`).
//!
//! Each container *instance* gets a fresh, empty regular file in its container directory
//! under the pod's directory (`<pod dir>/<container>/<restart>-<unique>.termination-log`,
//! mode 0666 whatever the umask so a non-root container can write it, in a directory nobody
//! else can write), bind-mounted at the container's `terminationMessagePath` — the default
//! `/dev/termination-log` and a custom path alike. skiff never opens a path the pod chose: the
//! file is created with `O_CREAT|O_EXCL|O_NOFOLLOW` and read at the end through the descriptor
//! held since its creation (fstat: still a regular file), so a FIFO or a symlink planted at
//! `terminationMessagePath` only covers what the container itself sees.
//!
//! Caps (`pkg/kubelet/container/runtime.go`): the last 4096 bytes of the file
//! (`MaxContainerTerminationMessageLength`); with `FallbackToLogsOnError`, a non-zero exit and
//! an empty file, the last 80 log lines capped at 2048 bytes; and the pod's messages together
//! at most 12 KiB (`MaxPodTerminationMessageLogLength`): the status manager's `normalizeStatus`
//! (`pkg/kubelet/status/status_manager.go`) divides it by the number of containers in the spec
//! (init, app and ephemeral) and keeps the *start* of each terminated message, i.e. the start
//! of the file's last 4096 bytes ([`cap_pod_messages`]; SEMANTICS ST4 says "containers with a
//! terminated state" and "the end": the kubelet's source is followed).
//!
//! Without a mount namespace (namespaces unavailable) there is nowhere to mount the file: the
//! message then comes only from the logs fallback.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use k8s_openapi::api::core::v1::PodStatus;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::logs::tail_file;
use crate::spec::{HeldFd, MountSpec, Propagation, StartError, TerminationMessagePolicy};

/// Bytes kept from the message file (kubelet `MaxContainerTerminationMessageLength`).
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// The pod's messages together (kubelet `MaxPodTerminationMessageLogLength`).
pub const MAX_POD_MESSAGE_BYTES: usize = 12 * 1024;
/// Log lines used by `FallbackToLogsOnError` (`MaxContainerTerminationMessageLogLines`).
pub const FALLBACK_LOG_LINES: usize = 80;
/// Bytes kept from those lines (`MaxContainerTerminationMessageLogLength`).
pub const FALLBACK_LOG_BYTES: usize = 2048;

/// One container instance's termination-message file, created by skiff in the container's
/// directory. Cloning shares the descriptor.
#[derive(Debug, Clone)]
pub struct MessageFile {
    path: PathBuf,
    file: Arc<File>,
    /// A duplicate of the descriptor, for the bind mount (made from it, not from `path`).
    held: HeldFd,
}

impl MessageFile {
    /// Creates a fresh empty file (mode 0666) for one instance in `dir` (created if missing,
    /// and made not writable by group and others).
    pub fn create(dir: &Path, restart_count: u32) -> io::Result<MessageFile> {
        // 0750 like the pod's directory and the logs' (`logs::RotatingLog::create`).
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o750);
        b.create(dir)?;
        let dir_fd = nix::fcntl::open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // The file is 0666 so that any runAsUser can write it through the bind mount; only the
        // directory keeps host users out of it (kubelet pod dirs are 0750).
        let st = nix::sys::stat::fstat(&dir_fd)?;
        let mode = st.st_mode & 0o7777;
        if mode & 0o022 != 0 {
            nix::sys::stat::fchmod(&dir_fd, Mode::from_bits_truncate(mode & !0o022))?;
        }
        let name = unique_name(restart_count);
        let fd: OwnedFd = nix::fcntl::openat(
            &dir_fd,
            name.as_str(),
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o666),
        )?;
        // open(2) applied the umask; the kubelet chmods to 0666 for the same reason.
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o666))?;
        let held = HeldFd(Arc::new(fd.try_clone()?));
        Ok(MessageFile {
            path: dir.join(name),
            file: Arc::new(File::from(fd)),
            held,
        })
    }

    /// The file on the host (the bind mount's source).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bind mount of this file at the container's `terminationMessagePath`.
    pub fn mount(&self, termination_message_path: &str) -> MountSpec {
        MountSpec {
            source: self.path.clone(),
            target: PathBuf::from(termination_message_path),
            read_only: false,
            propagation: Propagation::Private,
            source_fd: Some(self.held.clone()),
            ..Default::default()
        }
    }

    /// The last [`MAX_MESSAGE_BYTES`] the container wrote (through the descriptor held since
    /// creation: no path is resolved again).
    pub fn read(&self) -> io::Result<Vec<u8>> {
        read_tail(&self.file, MAX_MESSAGE_BYTES)
    }
}

fn unique_name(restart_count: u32) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // Unique per instance (the kubelet uses a random id); O_EXCL catches the impossible rest.
    format!(
        "{restart_count}-{:x}{seq:x}{nanos:x}.termination-log",
        std::process::id()
    )
}

/// The last `max` bytes of `f`, which must be a regular file (fstat).
pub fn read_tail(f: &File, max: usize) -> io::Result<Vec<u8>> {
    let meta = f.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let max = max as u64;
    let start = meta.len().saturating_sub(max);
    let mut r = f;
    r.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    r.take(max).read_to_end(&mut buf)?;
    Ok(buf)
}

/// `s` without its beginning, at most `max` bytes, cut at a character boundary.
pub fn keep_end(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// ST4: the file's content; with `FallbackToLogsOnError`, a non-zero exit and an empty (or
/// missing) file, the tail of the logs from `log_tail`. Capped like the kubelet's (the lossy
/// UTF-8 conversion may grow invalid bytes, so the cap applies to the result too).
pub fn termination_message(
    file: Option<Vec<u8>>,
    policy: TerminationMessagePolicy,
    exit_code: i32,
    log_tail: impl FnOnce() -> Vec<u8>,
) -> String {
    let file = file.unwrap_or_default();
    if file.is_empty()
        && policy == TerminationMessagePolicy::FallbackToLogsOnError
        && exit_code != 0
    {
        let logs = String::from_utf8_lossy(&log_tail()).into_owned();
        return keep_end(&logs, FALLBACK_LOG_BYTES).to_string();
    }
    keep_end(&String::from_utf8_lossy(&file), MAX_MESSAGE_BYTES).to_string()
}

/// The message of instance `restart_count` of a container whose directory is
/// `container_dir`, started by an earlier process (its file is found by name, the newest of
/// that instance, and opened without following a symlink), as [`collect`] makes it.
pub fn collect_found(
    container_dir: &Path,
    restart_count: u32,
    policy: TerminationMessagePolicy,
    exit_code: i32,
    log_path: &Path,
) -> String {
    let prefix = format!("{restart_count}-");
    let newest = std::fs::read_dir(container_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(&prefix) && n.ends_with(".termination-log")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path());
    let data = newest.and_then(|p| {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(p)
            .ok()?;
        read_tail(&f, MAX_MESSAGE_BYTES).ok()
    });
    termination_message(data, policy, exit_code, || {
        tail_file(log_path, FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES).unwrap_or_default()
    })
}

/// Reads the message of a container instance that exited with `exit_code`.
pub fn collect(
    file: Option<&MessageFile>,
    policy: TerminationMessagePolicy,
    exit_code: i32,
    log_path: &Path,
) -> String {
    let data = match file.map(MessageFile::read) {
        None => None,
        Some(Ok(d)) => Some(d),
        // kuberuntime_container.go getTerminationMessage: a read error is the message.
        Some(Err(e)) => {
            let path = file.map(|f| f.path().display().to_string());
            return format!(
                "Error on reading termination log {}: {e}",
                path.unwrap_or_default()
            );
        }
    };
    termination_message(data, policy, exit_code, || {
        tail_file(log_path, FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES).unwrap_or_else(|e| {
            format!("Error on reading termination message from logs: {e}").into_bytes()
        })
    })
}

/// Creates the instance's message file in `container_dir` and adds its bind mount at
/// `termination_message_path` to `mounts` (the kubelet's `makeMounts`). Nothing is done when
/// the container has no mount namespace (`mounts` is `None`).
///
/// Mount points: below a private `/dev` (every container with the default view, privileged
/// containers included) the child makes them in its tmpfs. Nothing is ever made in the host's
/// `/dev`: a container that sees it (rootless) gets no mount there and only the logs fallback
/// remains, as the kubelet goes on without the file when it cannot create it. Any other
/// missing path is made (and removed at teardown) by `mountns::ensure_mountpoints`.
pub fn plan(
    container_dir: &Path,
    restart_count: u32,
    termination_message_path: &str,
    mounts: Option<&mut Vec<MountSpec>>,
    private_dev: bool,
) -> Result<Option<MessageFile>, StartError> {
    let Some(mounts) = mounts else {
        return Ok(None);
    };
    let target = Path::new(termination_message_path);
    let ready = if crate::container_view::in_dev(target) {
        private_dev
    } else {
        mount_point_possible(target)
    };
    if !ready {
        tracing::debug!(
            path = termination_message_path,
            "no mount point for the termination message; only the logs fallback applies"
        );
        return Ok(None);
    }
    let file = MessageFile::create(container_dir, restart_count).map_err(|e| {
        StartError::io(
            format!(
                "creating the termination-log file in {}",
                container_dir.display()
            ),
            e,
        )
    })?;
    mounts.push(file.mount(termination_message_path));
    Ok(Some(file))
}

/// Whether `target` exists (as anything, not followed) or its nearest existing ancestor is
/// writable by skiff, so that the mount point can be made.
fn mount_point_possible(target: &Path) -> bool {
    let mut cur = target;
    loop {
        if std::fs::symlink_metadata(cur).is_ok() {
            return cur == target
                || nix::unistd::access(cur, nix::unistd::AccessFlags::W_OK).is_ok();
        }
        match cur.parent() {
            Some(p) => cur = p,
            None => return false,
        }
    }
}

/// ST4, the status manager's pod budget as `normalizeStatus` applies it: 12 KiB divided by
/// `spec_containers` (init + app + ephemeral containers of the spec), every terminated message
/// (`state` and `lastState`) cut to its first share of bytes (at a character boundary).
pub fn cap_pod_messages(status: &mut PodStatus, spec_containers: usize) {
    let share = MAX_POD_MESSAGE_BYTES / spec_containers.max(1);
    let lists = [
        status.init_container_statuses.as_mut(),
        status.container_statuses.as_mut(),
        status.ephemeral_container_statuses.as_mut(),
    ];
    for c in lists.into_iter().flatten().flat_map(|l| l.iter_mut()) {
        for state in [c.state.as_mut(), c.last_state.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(msg) = state.terminated.as_mut().and_then(|t| t.message.as_mut()) {
                if msg.len() > share {
                    let mut end = share;
                    while !msg.is_char_boundary(end) {
                        end -= 1;
                    }
                    msg.truncate(end);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerState;
    use std::os::unix::fs::PermissionsExt;
    use TerminationMessagePolicy::*;

    #[test]
    fn file_wins_and_fallback_rules() {
        let tail = || b"last lines\n".to_vec();
        assert_eq!(
            termination_message(Some(b"bye".to_vec()), FallbackToLogsOnError, 1, tail),
            "bye"
        );
        assert_eq!(
            termination_message(Some(vec![]), FallbackToLogsOnError, 1, tail),
            "last lines\n"
        );
        assert_eq!(
            termination_message(None, FallbackToLogsOnError, 2, tail),
            "last lines\n"
        );
        // Exit 0: no fallback.
        assert_eq!(
            termination_message(Some(vec![]), FallbackToLogsOnError, 0, tail),
            ""
        );
        // Policy File: no fallback.
        assert_eq!(termination_message(None, File, 1, tail), "");
    }

    #[test]
    fn invalid_utf8_cannot_grow_the_message_past_the_cap() {
        // 4096 invalid bytes become 4096 U+FFFD (3 bytes each) before the cap.
        let msg = termination_message(Some(vec![0xff; 4096]), File, 0, Vec::new);
        assert!(msg.len() <= MAX_MESSAGE_BYTES, "{}", msg.len());
        assert!(msg.ends_with('\u{fffd}'));
        assert_eq!(keep_end("aé", 1), "");
        assert_eq!(keep_end("aé", 2), "é");
        assert_eq!(keep_end("abc", 5), "abc");
    }

    #[test]
    fn message_file_is_fresh_0666_in_a_private_dir_and_capped_at_its_last_4096_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let cdir = dir.path().join("app");
        std::fs::create_dir(&cdir).unwrap();
        std::fs::set_permissions(&cdir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let a = MessageFile::create(&cdir, 0).unwrap();
        let b = MessageFile::create(&cdir, 0).unwrap();
        assert_ne!(a.path(), b.path(), "one file per instance");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(a.path()), 0o666);
        assert_eq!(mode(&cdir), 0o755);
        assert_eq!(a.read().unwrap(), b"");

        let mut content = vec![b'a'; 5000];
        content.extend_from_slice(b"END");
        std::fs::write(a.path(), &content).unwrap();
        let got = a.read().unwrap();
        assert_eq!(got.len(), 4096);
        assert!(got.ends_with(b"END"));

        // Replacing the file by name changes nothing: the held descriptor is read.
        std::fs::remove_file(a.path()).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", a.path()).unwrap();
        assert_eq!(a.read().unwrap().len(), 4096);
    }

    #[test]
    fn logs_fallback_reads_the_cri_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let mut data = Vec::new();
        for i in 0..100 {
            crate::logs::format_record(
                &mut data,
                "T",
                crate::logs::Stream::Stderr,
                false,
                format!("e{i}").as_bytes(),
            );
        }
        std::fs::write(&log, &data).unwrap();
        let f = MessageFile::create(dir.path(), 0).unwrap();
        let msg = collect(Some(&f), FallbackToLogsOnError, 3, &log);
        assert!(msg.starts_with("e20\n") && msg.ends_with("e99\n"), "{msg}");
        // No file at all (no mount namespace): the fallback still applies.
        assert_eq!(collect(None, FallbackToLogsOnError, 3, &log), msg);
        assert_eq!(collect(None, File, 3, &log), "");
    }

    fn terminated(msg: &str) -> Option<ContainerState> {
        Some(ContainerState {
            terminated: Some(k8s_openapi::api::core::v1::ContainerStateTerminated {
                message: Some(msg.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn st4_pod_budget_is_divided_by_the_spec_containers_keeping_the_start() {
        use k8s_openapi::api::core::v1::ContainerStatus;
        let big = format!("START{}", "x".repeat(4091));
        let st = |name: &str, state| ContainerStatus {
            name: name.into(),
            state,
            ..Default::default()
        };
        let mut status = PodStatus {
            init_container_statuses: Some(vec![st("i", terminated(&big))]),
            container_statuses: Some(vec![
                st("a", terminated(&big)),
                st("b", terminated(&big)),
                st("c", terminated(&big)),
                // Running, no message: still counts in the divisor (kubelet normalizeStatus).
                st("d", None),
            ]),
            ..Default::default()
        };
        cap_pod_messages(&mut status, 5);
        let msgs: Vec<String> = status
            .init_container_statuses
            .iter()
            .chain(status.container_statuses.iter())
            .flatten()
            .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
            .collect();
        assert_eq!(msgs.len(), 4);
        for m in &msgs {
            assert_eq!(m.len(), MAX_POD_MESSAGE_BYTES / 5);
            assert!(m.starts_with("START"));
        }
        // Three containers of 4096 fit the budget exactly: untouched.
        let mut status = PodStatus {
            container_statuses: Some(vec![
                st("a", terminated(&big)),
                st("b", terminated(&big)),
                st("c", terminated(&big)),
            ]),
            ..Default::default()
        };
        cap_pod_messages(&mut status, 3);
        let total: usize = status
            .container_statuses
            .iter()
            .flatten()
            .filter_map(|c| {
                Some(
                    c.state
                        .as_ref()?
                        .terminated
                        .as_ref()?
                        .message
                        .as_ref()?
                        .len(),
                )
            })
            .sum();
        assert_eq!(total, 3 * 4096);
        // A multi-byte character is never split.
        let mut status = PodStatus {
            container_statuses: Some(vec![st("u", terminated(&"é".repeat(4000)))]),
            ..Default::default()
        };
        cap_pod_messages(&mut status, 3);
        let m = status.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap()
            .message
            .unwrap();
        assert_eq!(m.len(), 4096);
    }
}
