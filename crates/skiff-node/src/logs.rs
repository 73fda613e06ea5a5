//! Container logs in the CRI format that the kubelet and `kubectl logs` read:
//! `<RFC3339Nano> <stdout|stderr> <F|P> <content>\n`, one record per line, long
//! lines split into `P` records ending with an `F` record.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::timefmt::{rfc3339_nano, rotation_suffix};

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

/// One log record, as fanned out to a live subscriber.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// Container name.
    pub container: Arc<str>,
    pub stream: Stream,
    /// `true` for a `P` (partial) record: the line goes on in the next record.
    pub partial: bool,
    pub content: String,
    pub timestamp: SystemTime,
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

/// A CRI log file rotated by size: `<path>` is live, older ones are
/// `<path>.<timestamp>`; at most `max_files` files are kept in all.
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

impl RotInner {
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(".");
        rotated.push(rotation_suffix(SystemTime::now()));
        fs::rename(&self.path, &rotated)?;
        self.file = Some(open_log(&self.path)?);
        self.size = 0;
        self.prune()
    }

    /// Keeps the newest `max_files - 1` rotated files.
    fn prune(&self) -> io::Result<()> {
        let mut old = rotated_files(&self.path)?;
        let keep = self.max_files - 1;
        if old.len() > keep {
            let excess = old.len() - keep;
            for p in old.drain(..excess) {
                if let Err(e) = fs::remove_file(&p) {
                    tracing::warn!(path = %p.display(), error = %e, "removing rotated log");
                }
            }
        }
        Ok(())
    }
}

/// Rotated files of the log at `path`, oldest first.
pub fn rotated_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(Vec::new());
    };
    let mut prefix = name.to_os_string();
    prefix.push(".");
    let prefix = prefix.to_string_lossy().into_owned();
    let mut out: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

/// Where one stream's lines go.
#[derive(Clone)]
pub struct LogSink {
    pub log: Arc<RotatingLog>,
    pub container: Arc<str>,
    pub subscriber: Option<mpsc::Sender<LogLine>>,
}

/// Reads `reader` to its end, writing CRI records to the log and offering each
/// record to the subscriber. Never waits on the subscriber (a full channel drops
/// lines) nor gives up on write errors, so the container is never blocked.
pub async fn pump<R>(mut reader: R, stream: Stream, sink: LogSink)
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut splitter = LineSplitter::new(MAX_LINE);
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(128 * 1024);
    let mut dropped: u64 = 0;
    let mut write_failed = false;
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => 0,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, stream = stream.as_str(), "reading container output");
                0
            }
        };
        let now = SystemTime::now();
        let ts = rfc3339_nano(now);
        out.clear();
        let mut emit = |content: &[u8], partial: bool| {
            format_record(&mut out, &ts, stream, partial, content);
            if let Some(tx) = &sink.subscriber {
                let line = LogLine {
                    container: sink.container.clone(),
                    stream,
                    partial,
                    content: String::from_utf8_lossy(content).into_owned(),
                    timestamp: now,
                };
                if tx.try_send(line).is_err() {
                    dropped += 1;
                }
            }
        };
        if n == 0 {
            splitter.finish(&mut emit);
        } else {
            splitter.feed(&buf[..n], &mut emit);
        }
        if !out.is_empty() {
            if let Err(e) = sink.log.write_records(&out) {
                if !write_failed {
                    tracing::warn!(error = %e, "writing container log");
                    write_failed = true;
                }
            }
        }
        if n == 0 {
            break;
        }
    }
    if dropped > 0 {
        tracing::debug!(dropped, container = %sink.container, "log lines not delivered to a slow subscriber");
    }
}

/// Content of the last `max_lines` records of CRI log data, limited to its last
/// `max_bytes` bytes: what the kubelet uses for `FallbackToLogsOnError`.
pub fn tail_content(data: &[u8], max_lines: usize, max_bytes: usize) -> Vec<u8> {
    let records: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|r| !r.is_empty())
        .collect();
    let start = records.len().saturating_sub(max_lines);
    let mut out = Vec::new();
    for rec in &records[start..] {
        if let Some((partial, content)) = parse_record(rec) {
            out.extend_from_slice(content);
            if !partial {
                out.push(b'\n');
            }
        }
    }
    if out.len() > max_bytes {
        out.drain(..out.len() - max_bytes);
    }
    out
}

/// Parses `<ts> <stream> <tag> <content>`; returns (partial, content).
pub fn parse_record(rec: &[u8]) -> Option<(bool, &[u8])> {
    let mut it = rec.splitn(4, |&b| b == b' ');
    let _ts = it.next()?;
    let _stream = it.next()?;
    let tag = it.next()?;
    let content = it.next().unwrap_or(b"");
    Some((tag == b"P", content))
}

/// Reads the tail of the log file at `path` (at most `window` bytes from its
/// end, dropping a first record that was cut) and applies [`tail_content`].
pub fn tail_file(path: &Path, max_lines: usize, max_bytes: usize) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    // Enough for `max_lines` records of maximal size.
    let window = ((max_lines as u64) + 1) * (MAX_LINE as u64 + 64);
    let start = len.saturating_sub(window);
    f.seek(SeekFrom::Start(start))?;
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    let data = if start > 0 {
        match data.iter().position(|&b| b == b'\n') {
            Some(i) => &data[i + 1..],
            None => &data[..0],
        }
    } else {
        &data[..]
    };
    Ok(tail_content(data, max_lines, max_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut s = LineSplitter::new(max);
        let mut got = Vec::new();
        let mut emit = |c: &[u8], p: bool| got.push((String::from_utf8_lossy(c).into_owned(), p));
        for c in chunks {
            s.feed(c, &mut emit);
        }
        s.finish(&mut emit);
        got
    }

    fn f(s: &str) -> (String, bool) {
        (s.to_string(), false)
    }
    fn p(s: &str) -> (String, bool) {
        (s.to_string(), true)
    }

    #[test]
    fn cri_record_format() {
        let mut out = Vec::new();
        format_record(
            &mut out,
            "2023-11-14T22:13:20.12345Z",
            Stream::Stdout,
            false,
            b"hello world",
        );
        format_record(
            &mut out,
            "2023-11-14T22:13:20.12345Z",
            Stream::Stderr,
            true,
            b"",
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "2023-11-14T22:13:20.12345Z stdout F hello world\n2023-11-14T22:13:20.12345Z stderr P \n"
        );
    }

    #[test]
    fn splits_lines_across_chunks() {
        assert_eq!(
            split(16, &[b"a\nb", b"c\n\nd"]),
            vec![f("a"), f("bc"), f(""), f("d")]
        );
    }

    #[test]
    fn long_lines_become_partial_records() {
        assert_eq!(
            split(4, &[b"abcdefghij\nxy\n"]),
            vec![p("abcd"), p("efgh"), f("ij"), f("xy")]
        );
        // Split over reads: the buffer fills before the newline arrives.
        assert_eq!(
            split(4, &[b"abc", b"defgh", b"ijk", b"l\n"]),
            vec![p("abcd"), p("efgh"), f("ijkl")]
        );
        // Exactly max bytes is one full record.
        assert_eq!(split(4, &[b"abcd\n"]), vec![f("abcd")]);
        // Unterminated tail at EOF is a full record, split if needed.
        assert_eq!(
            split(4, &[b"abcdefghi"]),
            vec![p("abcd"), p("efgh"), f("i")]
        );
    }

    #[test]
    fn rotation_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c").join("0.log");
        let log = RotatingLog::create(&path, 100, 3).unwrap();
        for i in 0..20 {
            let mut rec = Vec::new();
            format_record(
                &mut rec,
                "T",
                Stream::Stdout,
                false,
                format!("line {i:02} {}", "x".repeat(20)).as_bytes(),
            );
            log.write_records(&rec).unwrap();
        }
        let rotated = rotated_files(&path).unwrap();
        assert_eq!(rotated.len(), 2, "{rotated:?}");
        let live = fs::read_to_string(&path).unwrap();
        assert!(live.len() <= 100, "{live}");
        assert!(live.ends_with(&format!("line 19 {}\n", "x".repeat(20))));
        // Rotated files hold whole records, and the newest rotated one ends
        // right before the live file begins.
        let newest = fs::read_to_string(rotated.last().unwrap()).unwrap();
        let first_live: u32 = live[16..18].parse().unwrap();
        assert!(newest.ends_with(&format!("line {:02} {}\n", first_live - 1, "x".repeat(20))));
        assert!(newest.lines().all(|l| l.starts_with("T stdout F line ")));
    }

    #[test]
    fn tail_content_last_lines_and_bytes() {
        let mut data = Vec::new();
        for i in 0..100 {
            format_record(
                &mut data,
                "T",
                Stream::Stdout,
                false,
                format!("l{i}").as_bytes(),
            );
        }
        let t = tail_content(&data, 80, 2048);
        let s = String::from_utf8(t).unwrap();
        assert!(s.starts_with("l20\nl21\n"), "{s}");
        assert!(s.ends_with("l99\n"));
        // Partial records are joined.
        let mut data = Vec::new();
        format_record(&mut data, "T", Stream::Stderr, true, b"ab");
        format_record(&mut data, "T", Stream::Stderr, false, b"cd");
        assert_eq!(tail_content(&data, 80, 2048), b"abcd\n");
        // Byte cap keeps the end.
        let mut data = Vec::new();
        for _ in 0..10 {
            format_record(&mut data, "T", Stream::Stdout, false, &[b'z'; 500]);
        }
        let t = tail_content(&data, 80, 2048);
        assert_eq!(t.len(), 2048);
        assert!(t.ends_with(b"z\n"));
    }
}
