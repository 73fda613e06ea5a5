//! The CRI log format that the kubelet and `kubectl logs` read:
//! `<RFC3339Nano> <stdout|stderr> <F|P> <content>\n`, one record per line, long lines split
//! into `P` records ending with an `F` record; and the size-rotated log file the monitor writes.
//! (skiff-node re-exports this module as part of its `logs`; the readers live there.)

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::time::rotation_suffix;

/// A line longer than this is split into `P` records (containerd's 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;
/// Rotate the log file when it would grow past this size (kubelet default 10Mi).
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Files kept per container log, the live one included (kubelet default 5).
pub const DEFAULT_MAX_FILES: usize = 5;

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Splits a byte stream into lines of at most `max` bytes.
#[derive(Debug)]
pub struct LineSplitter {
    pending: Vec<u8>,
    max: usize,
}

impl LineSplitter {
    pub fn new(max: usize) -> Self {
        LineSplitter {
            pending: Vec::new(),
            max: max.max(1),
        }
    }

    /// Feed bytes; `emit(content, partial)` is called for every record ready.
    pub fn feed(&mut self, mut data: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            let line = &data[..nl];
            if self.pending.is_empty() {
                self.emit_line(line, emit);
            } else {
                self.pending.extend_from_slice(line);
                let full = std::mem::take(&mut self.pending);
                self.emit_line(&full, emit);
            }
            data = &data[nl + 1..];
        }
        self.pending.extend_from_slice(data);
        if self.pending.len() > self.max {
            let mut start = 0;
            while self.pending.len() - start > self.max {
                emit(&self.pending[start..start + self.max], true);
                start += self.max;
            }
            self.pending.drain(..start);
        }
    }

    /// End of stream: an unterminated last line is written as a full record.
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8], bool)) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.emit_line(&rest, emit);
        }
    }

    fn emit_line(&self, mut line: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
        while line.len() > self.max {
            emit(&line[..self.max], true);
            line = &line[self.max..];
        }
        emit(line, false);
    }
}

/// Appends one CRI record to `out`.
pub fn format_record(
    out: &mut Vec<u8>,
    timestamp: &str,
    stream: Stream,
    partial: bool,
    content: &[u8],
) {
    out.extend_from_slice(timestamp.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// A CRI log file rotated by size: `<path>` is live, older ones are `<path>.<timestamp>`;
/// at most `max_files` files are kept in all. As the kubelet's container log manager
/// (`container_log_manager.go` rotateLog) does, rotated files are gzip-compressed
/// (`<path>.<timestamp>.gz`) except the newest one; the compression runs on a thread of its
/// own (at most one at a time, awaited by the next rotation and on drop) so that the
/// container's output is never held up by it.
#[derive(Debug)]
pub struct RotatingLog {
    inner: Mutex<RotInner>,
}

#[derive(Debug)]
struct RotInner {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_size: u64,
    max_files: usize,
    /// The background compression of the previous rotation, if still running.
    compressing: Option<std::thread::JoinHandle<()>>,
}

impl RotatingLog {
    /// Creates (truncates) the log at `path`, creating parent directories (0750, like the
    /// pod's directory).
    pub fn create(path: &Path, max_size: u64, max_files: usize) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            let mut b = fs::DirBuilder::new();
            b.recursive(true);
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o750);
            b.create(dir)?;
        }
        let file = open_log(path)?;
        Ok(RotatingLog {
            inner: Mutex::new(RotInner {
                path: path.to_path_buf(),
                file: Some(file),
                size: 0,
                max_size,
                max_files: max_files.max(1),
                compressing: None,
            }),
        })
    }

    pub fn path(&self) -> PathBuf {
        match self.inner.lock() {
            Ok(g) => g.path.clone(),
            Err(p) => p.into_inner().path.clone(),
        }
    }

    /// Appends whole records; rotates first when the file would grow too big.
    pub fn write_records(&self, buf: &[u8]) -> io::Result<()> {
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.size > 0 && g.size + buf.len() as u64 > g.max_size {
            g.rotate()?;
        }
        let file = match g.file.as_mut() {
            Some(f) => f,
            None => {
                let f = open_log(&g.path)?;
                g.size = 0;
                g.file.insert(f)
            }
        };
        file.write_all(buf)?;
        g.size += buf.len() as u64;
        Ok(())
    }
}

impl Drop for RotatingLog {
    /// Lets a compression under way finish (bounded: one rotated file), so that no
    /// temporary file is left behind.
    fn drop(&mut self) {
        let g = match self.inner.get_mut() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(h) = g.compressing.take() {
            let _ = h.join();
        }
    }
}

/// Opens (truncates) a log file, mode 0640 like containerd's container logs: readable by
/// skiff's group, never writable by others whatever the umask or an older file's mode.
fn open_log(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(LOG_FILE_MODE)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(LOG_FILE_MODE))?;
    Ok(f)
}

/// Mode of container log files.
pub const LOG_FILE_MODE: u32 = 0o640;
/// Suffix of a compressed rotated log (the kubelet's).
pub const GZ_SUFFIX: &str = ".gz";
/// Suffix of a compression in progress (the kubelet's).
const TMP_SUFFIX: &str = ".tmp";

impl RotInner {
    /// The kubelet's rotateLog: drop what an interrupted compression left, keep the newest
    /// `max_files - 2` rotated files, compress those not compressed yet, then move the live
    /// file aside uncompressed and start a new one.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if let Some(h) = self.compressing.take() {
            let _ = h.join();
        }
        let (mut inuse, unused) = split_rotated(&self.path)?;
        for p in unused {
            remove_rotated(&p);
        }
        let keep = self.max_files.saturating_sub(2);
        if inuse.len() > keep {
            for p in inuse.drain(..inuse.len() - keep) {
                remove_rotated(&p);
            }
        }
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(".");
        rotated.push(rotation_suffix(SystemTime::now()));
        fs::rename(&self.path, &rotated)?;
        if self.max_files < 2 {
            // Only the live file is kept.
            remove_rotated(Path::new(&rotated));
        }
        self.file = Some(open_log(&self.path)?);
        self.size = 0;
        let plain: Vec<PathBuf> = inuse
            .into_iter()
            .filter(|p| !has_suffix(p, GZ_SUFFIX))
            .collect();
        if !plain.is_empty() {
            let work = move || {
                for p in &plain {
                    if let Err(e) = compress_log(p) {
                        let _ = (p, e); // No logger in the monitor: the plain file stays, still readable.
                    }
                }
            };
            let spawned = std::thread::Builder::new()
                .name("skiff-log-gzip".into())
                .spawn(work.clone());
            match spawned {
                Ok(h) => self.compressing = Some(h),
                // No thread to be had: compress here (one file of at most max_size).
                Err(_) => work(),
            }
        }
        Ok(())
    }
}

fn remove_rotated(p: &Path) {
    if let Err(e) = fs::remove_file(p) {
        if e.kind() != io::ErrorKind::NotFound {
            let _ = e; // Left for the next rotation (split_rotated lists it again).
        }
    }
}

pub fn has_suffix(p: &Path, suffix: &str) -> bool {
    p.as_os_str()
        .as_encoded_bytes()
        .ends_with(suffix.as_bytes())
}

pub fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Compresses `path` to `path.gz` (through `path.tmp`, the kubelet's compressLog), then
/// removes `path`.
fn compress_log(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut src = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    let tmp = with_suffix(path, TMP_SUFFIX);
    let out = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(LOG_FILE_MODE)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&tmp)?;
    let result = (|| {
        let mut enc =
            flate2::write::GzEncoder::new(io::BufWriter::new(out), flate2::Compression::default());
        io::copy(&mut src, &mut enc)?;
        enc.finish()?.flush()?;
        fs::rename(&tmp, with_suffix(path, GZ_SUFFIX))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    fs::remove_file(path)
}

/// The files `<path>.*` split as the kubelet's filterUnusedLogs does: in use (sorted oldest
/// first), and unused (temporary files, and plain files whose `.gz` exists).
fn split_rotated(path: &Path) -> io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut prefix = name.as_encoded_bytes().to_vec();
    prefix.push(b'.');
    let mut all: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().as_encoded_bytes().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    all.sort();
    let (mut inuse, mut unused) = (Vec::new(), Vec::new());
    for p in &all {
        let compressed_exists = || all.contains(&with_suffix(p, GZ_SUFFIX));
        if has_suffix(p, TMP_SUFFIX) || (!has_suffix(p, GZ_SUFFIX) && compressed_exists()) {
            unused.push(p.clone());
        } else {
            inuse.push(p.clone());
        }
    }
    Ok((inuse, unused))
}

/// Rotated files of the log at `path` that are in use (plain or `.gz`), oldest first.
pub fn rotated_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    split_rotated(path).map(|(inuse, _)| inuse)
}

/// Every file of the log at `path`, oldest first: the rotated ones, then the live one.
pub fn log_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = match rotated_files(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    if path.exists() || files.is_empty() {
        files.push(path.to_path_buf());
    }
    Ok(files)
}
