//! Container logs in the CRI format that the kubelet and `kubectl logs` read:
//! `<RFC3339Nano> <stdout|stderr> <F|P> <content>\n`, one record per line, long
//! lines split into `P` records ending with an `F` record.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

// The writing side of the CRI format lives with the monitor, which writes container logs.
pub use skiff_monitor::cri::{
    format_record, has_suffix, log_files, rotated_files, with_suffix, LineSplitter, RotatingLog,
    Stream, DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE, GZ_SUFFIX, LOG_FILE_MODE, MAX_LINE,
};

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

// ---------------------------------------------------------------------------------------------
// Reading logs back (`skiff logs`): the kubelet's ReadLogs (pkg/kubelet/kuberuntime/logs)
// ---------------------------------------------------------------------------------------------

/// A record longer than this is not skiff's (records are at most [`MAX_LINE`] of content plus
/// the timestamp, stream and tag): it is cut here and skipped.
const MAX_RECORD: usize = MAX_LINE + 256;
/// What one rotated file may decompress to at most: rotation bounds them to 10 MiB (plus a
/// record); anything bigger is cut.
const MAX_DECOMPRESSED: u64 = 256 * 1024 * 1024;

/// How to read a container's log: the kubelet's `LogOptions`, plus kubectl's `--prefix`.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Only the last N records (`--tail`); `None` for all.
    pub tail: Option<u64>,
    /// Skip records older than this (`--since`, `--since-time`).
    pub since: Option<k8s_openapi::jiff::Timestamp>,
    /// Put the record's time (RFC 3339, 9 fraction digits) before each line (`--timestamps`).
    pub timestamps: bool,
    /// Stop after this many bytes (`--limit-bytes`).
    pub limit_bytes: Option<u64>,
    /// Put this before each line (kubectl `--prefix`: `[pod/NAME/CONTAINER] `).
    pub prefix: Option<String>,
}

/// One parsed CRI record.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub timestamp: k8s_openapi::jiff::Timestamp,
    pub stream: Stream,
    pub partial: bool,
    /// The content, with the line's `\n` for a full record.
    pub content: &'a [u8],
}

/// The kubelet's parseCRILog: `<RFC3339Nano> <stdout|stderr> <tag>[:more tags] <content>`.
/// `rec` may end with its `\n`: a full record keeps it in the content, a partial one drops it.
pub fn parse_cri(rec: &[u8]) -> Option<Record<'_>> {
    let sp = |b: &[u8]| b.iter().position(|&c| c == b' ');
    let i = sp(rec)?;
    let timestamp = std::str::from_utf8(&rec[..i]).ok()?.parse().ok()?;
    let rest = &rec[i + 1..];
    let j = sp(rest)?;
    let stream = match &rest[..j] {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let rest = &rest[j + 1..];
    let k = sp(rest)?;
    let tag = rest[..k].split(|&c| c == b':').next().unwrap_or(b"");
    let partial = tag == b"P";
    let mut content = &rest[k + 1..];
    if partial {
        content = content.strip_suffix(b"\n").unwrap_or(content);
    }
    Some(Record {
        timestamp,
        stream,
        partial,
        content,
    })
}

/// The kubelet's output time format (`RFC3339NanoFixed`): always 9 fraction digits, UTC.
pub fn rfc3339_nano_fixed(t: k8s_openapi::jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%9fZ").to_string()
}

/// Why reading stopped early.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// Everything asked for was written.
    Done,
    /// `limit_bytes` was reached.
    Limit,
}

/// Writes records to `out` the way the kubelet's logWriter does: records older than `since`
/// skipped, the timestamp (and prefix) only where a line starts (a `P` record's line goes on
/// in the next record), cut at `limit_bytes`. Both streams go to `out`, as the kubelet
/// serves them on one stream.
struct LogWriter<'a> {
    out: &'a mut dyn Write,
    opts: &'a ReadOptions,
    remain: u64,
    line_start: bool,
    buf: Vec<u8>,
}

impl<'a> LogWriter<'a> {
    fn new(out: &'a mut dyn Write, opts: &'a ReadOptions) -> Self {
        LogWriter {
            out,
            opts,
            remain: opts.limit_bytes.unwrap_or(u64::MAX),
            line_start: true,
            buf: Vec::with_capacity(MAX_RECORD),
        }
    }

    /// Writes one record; `Ok(false)` once the byte limit is reached.
    fn record(&mut self, rec: &Record<'_>) -> io::Result<bool> {
        let starts = self.line_start;
        self.line_start = rec.content.last().is_none_or(|&b| b == b'\n');
        if self.opts.since.is_some_and(|s| rec.timestamp < s) {
            return Ok(true);
        }
        self.buf.clear();
        if self.opts.timestamps && starts {
            self.buf
                .extend_from_slice(rfc3339_nano_fixed(rec.timestamp).as_bytes());
            self.buf.push(b' ');
        }
        self.buf.extend_from_slice(rec.content);
        let n = self
            .buf
            .len()
            .min(usize::try_from(self.remain).unwrap_or(usize::MAX));
        // The prefix is kubectl's, outside the kubelet's byte count; one write per record
        // so that followers of several containers never interleave inside a record.
        let prefix = self.opts.prefix.as_deref().filter(|_| starts);
        if let Some(p) = prefix {
            let mut whole = Vec::with_capacity(p.len() + n);
            whole.extend_from_slice(p.as_bytes());
            whole.extend_from_slice(&self.buf[..n]);
            self.out.write_all(&whole)?;
        } else {
            self.out.write_all(&self.buf[..n])?;
        }
        self.remain -= n as u64;
        Ok(self.remain > 0)
    }
}

/// Reads records (lines of at most [`MAX_RECORD`] bytes) from `r`, calling `f` with each
/// (its `\n` included, except for an unterminated last one); stops when `f` says so.
fn for_each_record(
    r: &mut dyn io::BufRead,
    f: &mut dyn FnMut(&[u8]) -> io::Result<bool>,
) -> io::Result<bool> {
    let mut line = Vec::with_capacity(MAX_RECORD);
    loop {
        line.clear();
        let n = io::BufRead::read_until(
            &mut Read::take(&mut *r, MAX_RECORD as u64),
            b'\n',
            &mut line,
        )?;
        if n == 0 {
            return Ok(true);
        }
        if line.last() != Some(&b'\n') && n == MAX_RECORD {
            // Over-long: skip the rest of it.
            let mut sink = Vec::new();
            loop {
                sink.clear();
                let m = io::BufRead::read_until(
                    &mut Read::take(&mut *r, MAX_RECORD as u64),
                    b'\n',
                    &mut sink,
                )?;
                if m == 0 || sink.last() == Some(&b'\n') {
                    break;
                }
            }
            continue;
        }
        if !f(&line)? {
            return Ok(false);
        }
    }
}

/// Opens one file of a log for reading: `.gz` ones decompressed, with a bound.
fn open_log_file(path: &Path) -> io::Result<Box<dyn io::BufRead>> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |p: &Path| {
        OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(p)
    };
    if has_suffix(path, GZ_SUFFIX) {
        let f = open(path)?;
        let dec = flate2::read::MultiGzDecoder::new(io::BufReader::new(f));
        return Ok(Box::new(io::BufReader::new(dec.take(MAX_DECOMPRESSED))));
    }
    match open(path) {
        Ok(f) => Ok(Box::new(io::BufReader::new(f))),
        // Compressed meanwhile (see RotatingLog): read the `.gz`.
        Err(e) if e.kind() == io::ErrorKind::NotFound && path.extension().is_some() => {
            let gz = with_suffix(path, GZ_SUFFIX);
            if gz.exists() {
                open_log_file(&gz)
            } else {
                Err(e)
            }
        }
        Err(e) => Err(e),
    }
}

/// Number of records in one file of a log.
fn count_records(path: &Path) -> io::Result<u64> {
    let mut n = 0u64;
    for_each_record(&mut *open_log_file(path)?, &mut |_| {
        n += 1;
        Ok(true)
    })?;
    Ok(n)
}

/// Where `tail` records from the end start: (index of the file, records to skip in it).
fn tail_start(files: &[PathBuf], tail: u64) -> io::Result<(usize, u64)> {
    let mut need = tail;
    for (i, f) in files.iter().enumerate().rev() {
        let n = count_records(f)?;
        if n >= need {
            return Ok((i, n - need));
        }
        need -= n;
    }
    Ok((0, 0))
}

/// Writes the records of `files[first..]` (skipping `skip` first ones) through `w`; the
/// last file may be given open already (`last`, read up to its length then). `Ok(false)`
/// once the byte limit is reached.
fn write_files(
    files: &[PathBuf],
    first: usize,
    mut skip: u64,
    w: &mut LogWriter<'_>,
    last: Option<(&File, u64)>,
) -> io::Result<bool> {
    let n = files.len();
    for (i, f) in files.iter().enumerate().skip(first) {
        let mut r: Box<dyn io::BufRead + '_> = match (i + 1 == n, last) {
            (true, Some((file, len))) => Box::new(io::BufReader::new(file.take(len))),
            _ => match open_log_file(f) {
                Ok(r) => r,
                // A rotated file removed meanwhile (rotation keeps max files).
                Err(e) if e.kind() == io::ErrorKind::NotFound && i + 1 < n => continue,
                Err(e) => return Err(e),
            },
        };
        let more = for_each_record(&mut *r, &mut |line| {
            if skip > 0 {
                skip -= 1;
                return Ok(true);
            }
            match parse_cri(line) {
                Some(rec) => w.record(&rec),
                None => Ok(true),
            }
        })?;
        if !more {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Where reading starts for `tail`: (first file, records to skip in it); `None` for none.
fn start_for(files: &[PathBuf], tail: Option<u64>) -> io::Result<(usize, u64)> {
    match tail {
        Some(0) => Ok((files.len(), 0)),
        Some(n) => tail_start(files, n),
        None => Ok((0, 0)),
    }
}

/// Writes the log at `path` (its rotated files, then the live one) to `out` per `opts`.
/// An unparsable record is skipped, as the kubelet does.
pub fn read_log(path: &Path, opts: &ReadOptions, out: &mut dyn Write) -> io::Result<ReadEnd> {
    let files = log_files(path)?;
    let (first, skip) = start_for(&files, opts.tail)?;
    let mut w = LogWriter::new(out, opts);
    if !write_files(&files, first, skip, &mut w, None)? {
        return Ok(ReadEnd::Limit);
    }
    Ok(ReadEnd::Done)
}

/// [`read_log`], then follows the live file (`kubectl logs -f`): new records are written as
/// they come (the live file reopened when it is rotated), checking every `poll` whether
/// `running()` still says the container instance runs; once it does not, what is left is
/// written and this returns. `tail` counts from the end as it is at the start.
pub fn follow_log(
    path: &Path,
    opts: &ReadOptions,
    out: &mut dyn Write,
    running: &mut dyn FnMut() -> bool,
    poll: std::time::Duration,
) -> io::Result<ReadEnd> {
    use std::os::unix::fs::MetadataExt;
    let files = log_files(path)?;
    let live = File::open(path)?;
    let md = live.metadata()?;
    let (first, skip) = start_for(&files, opts.tail)?;
    let mut w = LogWriter::new(out, opts);
    if !write_files(&files, first, skip, &mut w, Some((&live, md.len())))? {
        return Ok(ReadEnd::Limit);
    }
    w.out.flush()?;
    follow_live(path, &mut w, running, poll, live, md.len(), md.ino())
}

/// The follow loop of [`follow_log`]: `live` (inode `ino`) from `pos` on.
fn follow_live(
    path: &Path,
    w: &mut LogWriter<'_>,
    running: &mut dyn FnMut() -> bool,
    poll: std::time::Duration,
    mut live: File,
    mut pos: u64,
    mut ino: u64,
) -> io::Result<ReadEnd> {
    use std::os::unix::fs::MetadataExt;
    // Bytes of a record not complete yet.
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_round = false;
    loop {
        live.seek(SeekFrom::Start(pos))?;
        loop {
            let n = live.read(&mut buf)?;
            if n == 0 {
                break;
            }
            pos += n as u64;
            pending.extend_from_slice(&buf[..n]);
            let mut start = 0;
            while let Some(i) = pending[start..].iter().position(|&b| b == b'\n') {
                let line = &pending[start..start + i + 1];
                start += i + 1;
                if line.len() > MAX_RECORD {
                    continue;
                }
                if let Some(rec) = parse_cri(line) {
                    if !w.record(&rec)? {
                        return Ok(ReadEnd::Limit);
                    }
                }
            }
            pending.drain(..start);
            if pending.len() > MAX_RECORD {
                // No end in sight: not a record of skiff's.
                pending.clear();
            }
        }
        w.out.flush()?;
        // Rotated: ours is complete (rotation happens between records); go on with the new
        // live file from its start.
        if let Ok(md) = fs::metadata(path) {
            if md.ino() != ino {
                if let Ok(f) = File::open(path) {
                    live = f;
                    ino = md.ino();
                    pos = 0;
                    pending.clear();
                    continue;
                }
            }
        }
        if last_round {
            // An unterminated last record is written as it is (the kubelet's "Incomplete
            // line in log file").
            if let Some(rec) = parse_cri(&pending) {
                w.record(&rec)?;
                w.out.flush()?;
            }
            return Ok(ReadEnd::Done);
        }
        if !running() {
            // One more pass for what was written before it stopped.
            last_round = true;
            continue;
        }
        std::thread::sleep(poll);
    }
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
        // Dropping the log waits for the compression under way.
        drop(log);
        let rotated = rotated_files(&path).unwrap();
        assert_eq!(rotated.len(), 2, "{rotated:?}");
        // kubelet: every rotated file but the newest is compressed.
        assert!(rotated[0].to_string_lossy().ends_with(".gz"), "{rotated:?}");
        assert!(
            !rotated[1].to_string_lossy().ends_with(".gz"),
            "{rotated:?}"
        );
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

    /// A log at `dir/c/0.log` rotated at `max` bytes, fed records `line NN` with increasing
    /// timestamps (second NN).
    fn rotated_log(dir: &Path, max: u64, files: usize, n: u32) -> PathBuf {
        let path = dir.join("c").join("0.log");
        let log = RotatingLog::create(&path, max, files).unwrap();
        for i in 0..n {
            let mut rec = Vec::new();
            let ts = format!("2024-01-01T00:00:{i:02}.5Z");
            format_record(
                &mut rec,
                &ts,
                Stream::Stdout,
                false,
                format!("line {i:02}").as_bytes(),
            );
            log.write_records(&rec).unwrap();
            // Distinct rotation names (nanosecond suffix).
            std::thread::sleep(std::time::Duration::from_micros(5));
        }
        drop(log);
        path
    }

    fn read(path: &Path, opts: &ReadOptions) -> String {
        let mut out = Vec::new();
        read_log(path, opts, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn lines(from: u32, to: u32) -> String {
        (from..to).map(|i| format!("line {i:02}\n")).collect()
    }

    #[test]
    fn issue8_item6_rotated_files_are_gzip_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        // Each record is 42 bytes: 2 per file.
        let path = rotated_log(dir.path(), 90, 5, 20);
        let files = log_files(&path).unwrap();
        assert_eq!(files.len(), 5, "{files:?}");
        let gz: Vec<_> = files
            .iter()
            .filter(|f| f.to_string_lossy().ends_with(".gz"))
            .collect();
        assert_eq!(gz.len(), 3, "{files:?}");
        // A real gzip stream (magic bytes), smaller files hold whole records.
        let raw = fs::read(gz[0]).unwrap();
        assert_eq!(&raw[..2], &[0x1f, 0x8b]);
        // No leftovers of the compression.
        let names: Vec<String> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        assert_eq!(names.len(), 5, "{names:?}");
        // 5 files × 2 records: the last 10 lines, oldest first.
        assert_eq!(read(&path, &ReadOptions::default()), lines(10, 20));
    }

    #[test]
    fn issue8_item6_tail_since_limit_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = rotated_log(dir.path(), 90, 5, 20);
        let tail = |n| ReadOptions {
            tail: Some(n),
            ..Default::default()
        };
        assert_eq!(read(&path, &tail(3)), lines(17, 20));
        assert_eq!(read(&path, &tail(5)), lines(15, 20));
        assert_eq!(read(&path, &tail(100)), lines(10, 20));
        assert_eq!(read(&path, &tail(0)), "");
        let since = ReadOptions {
            since: Some("2024-01-01T00:00:16Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(read(&path, &since), lines(16, 20));
        // The kubelet counts the timestamp prefix in the byte limit.
        let limited = ReadOptions {
            tail: Some(1),
            timestamps: true,
            limit_bytes: Some(20),
            ..Default::default()
        };
        assert_eq!(read(&path, &limited), "2024-01-01T00:00:19.");
        let ts = ReadOptions {
            tail: Some(1),
            timestamps: true,
            prefix: Some("[pod/p/c] ".into()),
            ..Default::default()
        };
        assert_eq!(
            read(&path, &ts),
            "[pod/p/c] 2024-01-01T00:00:19.500000000Z line 19\n"
        );
    }

    #[test]
    fn issue8_item6_partial_records_make_one_line_with_one_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut data = Vec::new();
        format_record(
            &mut data,
            "2024-01-01T00:00:01Z",
            Stream::Stdout,
            true,
            b"ab",
        );
        format_record(
            &mut data,
            "2024-01-01T00:00:02Z",
            Stream::Stdout,
            true,
            b"cd",
        );
        format_record(
            &mut data,
            "2024-01-01T00:00:03Z",
            Stream::Stderr,
            false,
            b"ef",
        );
        data.extend_from_slice(b"garbage without fields\n");
        format_record(
            &mut data,
            "2024-01-01T00:00:04.000000001Z",
            Stream::Stdout,
            false,
            b"",
        );
        fs::write(&path, &data).unwrap();
        let opts = ReadOptions {
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            read(&path, &opts),
            "2024-01-01T00:00:01.000000000Z abcdef\n2024-01-01T00:00:04.000000001Z \n"
        );
        assert_eq!(read(&path, &ReadOptions::default()), "abcdef\n\n");
        // --tail counts records, as the kubelet's does.
        let tail = ReadOptions {
            tail: Some(3),
            ..Default::default()
        };
        assert_eq!(read(&path, &tail), "ef\n\n");
    }

    #[test]
    fn parse_cri_like_the_kubelet() {
        let r = parse_cri(b"2016-10-06T00:17:09.669794202Z stdout P log content 1\n").unwrap();
        assert!(r.partial);
        assert_eq!(r.content, b"log content 1");
        assert_eq!(r.stream, Stream::Stdout);
        let r = parse_cri(b"2016-10-06T00:17:09.669794203Z stderr F:x log content 2\n").unwrap();
        assert!(!r.partial);
        assert_eq!(r.content, b"log content 2\n");
        assert_eq!(
            rfc3339_nano_fixed(r.timestamp),
            "2016-10-06T00:17:09.669794203Z"
        );
        assert!(parse_cri(b"2016-10-06T00:17:09Z stdin F x\n").is_none());
        assert!(parse_cri(b"notatime stdout F x\n").is_none());
        assert!(parse_cri(b"2016-10-06T00:17:09Z stdout\n").is_none());
    }

    #[test]
    fn issue8_item6_follow_goes_on_across_rotation_until_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c").join("0.log");
        let log = Arc::new(RotatingLog::create(&path, 90, 5).unwrap());
        let write = |log: &RotatingLog, i: u32| {
            let mut rec = Vec::new();
            let ts = format!("2024-01-01T00:00:{i:02}Z");
            format_record(
                &mut rec,
                &ts,
                Stream::Stdout,
                false,
                format!("line {i:02}").as_bytes(),
            );
            log.write_records(&rec).unwrap();
        };
        for i in 0..3 {
            write(&log, i);
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p2, s2) = (path.clone(), stop.clone());
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut running = || !s2.load(std::sync::atomic::Ordering::SeqCst);
            let opts = ReadOptions {
                tail: Some(1),
                ..Default::default()
            };
            let end = follow_log(
                &p2,
                &opts,
                &mut out,
                &mut running,
                std::time::Duration::from_millis(10),
            )
            .unwrap();
            (end, String::from_utf8(out).unwrap())
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        for i in 3..9 {
            write(&log, i);
            std::thread::sleep(std::time::Duration::from_millis(40));
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (end, got) = reader.join().unwrap();
        assert_eq!(end, ReadEnd::Done);
        assert_eq!(got, lines(2, 9));
    }
}
