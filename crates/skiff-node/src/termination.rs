//! Termination messages (ST4).
//!
//! Host runtime choice: there is no per-container mount namespace yet, so the
//! default path `/dev/termination-log` cannot be given to each container. skiff
//! creates a private empty file per container instance
//! (`<container dir>/<restartCount>.termination-log`) and passes its path in the
//! env var `SKIFF_TERMINATION_LOG`; a container that writes the literal
//! `/dev/termination-log` is not seen (documented limitation until the OCI /
//! namespaced runtime). A non-default `terminationMessagePath` is a host path
//! shared with the host: it is read only if it changed (or appeared) while the
//! container ran, so a stale file from a previous run is not reported.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::SystemTime;

use crate::launch::TerminationMessagePolicy;
use crate::logs::tail_file;

/// Env var telling a host-runtime container where to write its message.
pub const TERMINATION_LOG_ENV: &str = "SKIFF_TERMINATION_LOG";
/// Bytes read from the message file (the kubelet reads the last 4096).
pub const MAX_MESSAGE_BYTES: u64 = 4096;
/// Log lines used by `FallbackToLogsOnError`.
pub const FALLBACK_LOG_LINES: usize = 80;
/// Bytes kept from those lines.
pub const FALLBACK_LOG_BYTES: usize = 2048;

/// What a file looked like before the container started, to tell whether the
/// container wrote it (mtime alone is too coarse: file systems stamp with a
/// clock tick that can precede a `SystemTime::now()` taken earlier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub modified: Option<SystemTime>,
    pub len: u64,
    pub ino: u64,
}

impl FileStamp {
    /// `None` when the file does not exist.
    pub fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: m.modified().ok(),
            len: m.len(),
            ino: m.ino(),
        })
    }
}

/// The last `MAX_MESSAGE_BYTES` of the file, if it exists (and, with
/// `unchanged_since` = its stamp before the start, only if it changed).
pub fn read_message_file(
    path: &Path,
    unchanged_since: Option<Option<FileStamp>>,
) -> io::Result<Option<Vec<u8>>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if let Some(before) = unchanged_since {
        if before.is_some() && FileStamp::of(path) == before {
            return Ok(None);
        }
    }
    let start = meta.len().saturating_sub(MAX_MESSAGE_BYTES);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(MAX_MESSAGE_BYTES).read_to_end(&mut buf)?;
    Ok(Some(buf))
}

/// ST4: the file's content; with `FallbackToLogsOnError`, a non-zero exit and
/// an empty (or missing) file, the tail of the logs from `log_tail`.
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
        return String::from_utf8_lossy(&log_tail()).into_owned();
    }
    String::from_utf8_lossy(&file).into_owned()
}

/// Reads the message for a container that exited with `exit_code`.
pub fn collect(
    message_file: &Path,
    unchanged_since: Option<Option<FileStamp>>,
    policy: TerminationMessagePolicy,
    exit_code: i32,
    log_path: &Path,
) -> String {
    let file = match read_message_file(message_file, unchanged_since) {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(path = %message_file.display(), error = %e, "reading termination message");
            None
        }
    };
    termination_message(file, policy, exit_code, || {
        tail_file(log_path, FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES).unwrap_or_else(|e| {
            format!("Error on reading termination message from logs: {e}").into_bytes()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn file_is_capped_at_last_4096_bytes_and_logs_fallback_reads_cri() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("msg");
        let mut content = vec![b'a'; 5000];
        content.extend_from_slice(b"END");
        std::fs::write(&p, &content).unwrap();
        let got = read_message_file(&p, None).unwrap().unwrap();
        assert_eq!(got.len(), 4096);
        assert!(got.ends_with(b"END"));
        assert_eq!(
            read_message_file(&dir.path().join("none"), None).unwrap(),
            None
        );

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
        std::fs::write(&p, b"").unwrap();
        let msg = collect(&p, None, FallbackToLogsOnError, 3, &log);
        assert!(msg.starts_with("e20\n") && msg.ends_with("e99\n"), "{msg}");
    }
}
