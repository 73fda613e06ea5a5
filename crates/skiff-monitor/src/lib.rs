//! skiff-monitor: the process that holds one container instance, skiff's conmon.
//!
//! skiff forks a process that forks the container and then `exec`s this binary (see
//! `skiff_node::spawn`), so the monitor is the container's parent from its first instruction.
//! It is a child subreaper (set before the container was forked; kept across `exec`), so
//! whatever the container leaves behind is reparented here. It:
//!
//! * reads the container's stdout (fd 3) and stderr (fd 4) and writes them as CRI log
//!   records to `--log` (size-rotated, [`cri::RotatingLog`]); a copy of each batch goes to
//!   skiff's live socket (fd 5, with `--live`) without ever waiting for it: a full socket drops
//!   the copy, a closed one ends the copies — the log file always gets every line;
//! * reaps the container (`--pid`); when it has exited, kills what it left behind (as the
//!   end of a PID namespace would), reads its output to the end (at most [`DRAIN_LIMIT`]
//!   after the exit), and writes the [`ExitRecord`] to `--exit` atomically (a temporary file
//!   renamed over it);
//! * does not depend on skiff: skiff may be gone (killed, or a daemon restarting); the
//!   container keeps running and its output keeps being logged until it exits.
//!
//! No async runtime, no allocation in the steady state beyond the line buffers, no logging:
//! its private memory stays under 1 MiB (README, "Monitor").

pub mod cri;
pub mod record;
pub mod time;

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{send, MsgFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

pub use record::{ExitRecord, ExitStatus};

/// The container's stdout, stderr and skiff's live socket, as the monitor inherits them.
pub const STDOUT_FD: RawFd = 3;
pub const STDERR_FD: RawFd = 4;
pub const LIVE_FD: RawFd = 5;

/// How long the monitor reads output after the container exited (and what it left behind
/// was killed) before it gives up on a pipe someone else still holds open.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Bytes read from a pipe at once.
const READ_SIZE: usize = 16 * 1024;
/// Records are written (and offered to skiff) in batches of about this size.
const OUT_BATCH: usize = 32 * 1024;

/// Largest datagram sent on the live socket: whole records, split at record boundaries.
const LIVE_CHUNK: usize = 32 * 1024;

/// What the monitor was started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub pid: i32,
    pub log: PathBuf,
    pub exit: PathBuf,
    pub max_size: u64,
    pub max_files: usize,
    pub live: bool,
}

impl Args {
    /// The command line skiff gives the monitor (without `argv[0]` and without `--pid`, which
    /// the forked parent fills in last, see `skiff_node::spawn`).
    pub fn to_argv(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![
            "--log".into(),
            self.log.clone().into(),
            "--exit".into(),
            self.exit.clone().into(),
            "--max-size".into(),
            self.max_size.to_string().into(),
            "--max-files".into(),
            self.max_files.to_string().into(),
        ];
        if self.live {
            v.push("--live".into());
        }
        v
    }

    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, String> {
        let mut a = Args {
            pid: 0,
            log: PathBuf::new(),
            exit: PathBuf::new(),
            max_size: cri::DEFAULT_MAX_SIZE,
            max_files: cri::DEFAULT_MAX_FILES,
            live: false,
        };
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let flag = flag.to_string_lossy().into_owned();
            if flag == "--live" {
                a.live = true;
                continue;
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let text = || value.to_string_lossy().into_owned();
            let number = |what: &str| {
                text()
                    .parse::<u64>()
                    .map_err(|_| format!("{what}: not a number: {:?}", text()))
            };
            match flag.as_str() {
                "--pid" => {
                    a.pid = i32::try_from(number("--pid")?).map_err(|_| "--pid: out of range")?
                }
                "--log" => a.log = value.into(),
                "--exit" => a.exit = value.into(),
                "--max-size" => a.max_size = number("--max-size")?,
                "--max-files" => {
                    a.max_files = usize::try_from(number("--max-files")?).unwrap_or(usize::MAX)
                }
                other => return Err(format!("unknown flag {other:?}")),
            }
        }
        if a.pid <= 0 || a.log.as_os_str().is_empty() || a.exit.as_os_str().is_empty() {
            return Err("--pid, --log and --exit are required".into());
        }
        Ok(a)
    }
}

/// The binary's entry point.
pub fn main() -> ExitCode {
    let args = match Args::parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("skiff-monitor: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Nobody reads our stderr (it is /dev/null); the missing record says enough.
            eprintln!("skiff-monitor: {e}");
            ExitCode::from(1)
        }
    }
}

/// One of the container's output streams.
struct Pipe {
    fd: Option<OwnedFd>,
    stream: cri::Stream,
    splitter: cri::LineSplitter,
}

/// Takes over an inherited descriptor, if it is open.
#[allow(unsafe_code)]
fn inherited(fd: RawFd) -> Option<OwnedFd> {
    // Descriptors 3–5 were placed by the forked parent for us and nobody else owns them;
    // adopting an inherited descriptor takes `from_raw_fd`.
    // SAFETY: F_GETFD on any integer is harmless; `from_raw_fd` only runs when it proved the
    // descriptor open, and nothing else in this process refers to descriptors 3–5.
    unsafe {
        if nix::libc::fcntl(fd, nix::libc::F_GETFD) < 0 {
            return None;
        }
        Some(OwnedFd::from_raw_fd(fd))
    }
}

/// Runs the monitor until the container has exited and its output is logged.
pub fn run(args: &Args) -> Result<(), String> {
    let child = Pid::from_raw(args.pid);
    // First: say which processes hold the instance (record::StartedRecord), for a skiff that
    // died before it could.
    let me = std::process::id() as i32;
    if let (Some(monitor_ticks), Some(ticks)) =
        (record::start_ticks(me), record::start_ticks(args.pid))
    {
        let started = record::StartedRecord {
            monitor_pid: me,
            monitor_ticks,
            pid: args.pid,
            ticks,
        };
        // Best effort: without it, skiff's own record says the same once skiff writes it.
        let _ = record::write_file_atomic(
            &record::started_path(&args.exit),
            started.encode().as_bytes(),
        );
    }
    // SIGCHLD through a signalfd, so one poll waits for output and exits alike.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()
        .map_err(|e| format!("blocking SIGCHLD: {e}"))?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))?;
    let log = cri::RotatingLog::create(&args.log, args.max_size, args.max_files)
        .map_err(|e| format!("creating {}: {e}", args.log.display()))?;
    let mut live = if args.live { inherited(LIVE_FD) } else { None };
    let mut pipes = [
        Pipe {
            fd: inherited(STDOUT_FD),
            stream: cri::Stream::Stdout,
            splitter: cri::LineSplitter::new(cri::MAX_LINE),
        },
        Pipe {
            fd: inherited(STDERR_FD),
            stream: cri::Stream::Stderr,
            splitter: cri::LineSplitter::new(cri::MAX_LINE),
        },
    ];
    let mut buf = vec![0u8; READ_SIZE];
    let mut out = Vec::with_capacity(OUT_BATCH + cri::MAX_LINE + 64);
    let mut exited: Option<(ExitStatus, SystemTime, Instant)> = None;
    let mut dropped: u64 = 0;
    loop {
        // Reap first: a child that died before SIGCHLD was blocked left no signal.
        reap(child, &mut exited);
        if let Some((_, _, at)) = exited {
            kill_descendants();
            let open = pipes.iter().any(|p| p.fd.is_some());
            if !open || at.elapsed() >= DRAIN_LIMIT {
                break;
            }
        }
        let timeout = match exited {
            Some((_, _, at)) => {
                let left = DRAIN_LIMIT.saturating_sub(at.elapsed());
                PollTimeout::try_from(left.as_millis().min(60_000) as i32 + 1)
                    .unwrap_or(PollTimeout::NONE)
            }
            None => PollTimeout::NONE,
        };
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(3);
        fds.push(PollFd::new(sfd.as_fd(), PollFlags::POLLIN));
        let mut which = Vec::with_capacity(2);
        for (i, p) in pipes.iter().enumerate() {
            if let Some(fd) = &p.fd {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                which.push(i);
            }
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready.first() == Some(&true) {
            // Drain the signalfd; `reap` at the top of the loop does the work.
            while let Ok(Some(_)) = sfd.read_signal() {}
        }
        for (slot, &i) in which.iter().enumerate() {
            if ready.get(slot + 1) != Some(&true) {
                continue;
            }
            let pipe = &mut pipes[i];
            let Some(fd) = pipe.fd.as_ref() else { continue };
            let n = match nix::unistd::read(fd, &mut buf) {
                Ok(n) => n,
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(_) => 0,
            };
            out.clear();
            let ts = time::rfc3339_nano(SystemTime::now());
            let stream = pipe.stream;
            // Records go out in batches of at most OUT_BATCH bytes, so a flood of short
            // lines (each record ~40 bytes longer than its line) cannot grow this buffer.
            let mut emit = |content: &[u8], partial: bool| {
                cri::format_record(&mut out, &ts, stream, partial, content);
                if out.len() >= OUT_BATCH {
                    write_out(&log, &out, &mut live, &mut dropped);
                    out.clear();
                }
            };
            if n == 0 {
                pipe.splitter.finish(&mut emit);
                pipe.fd = None;
            } else {
                pipe.splitter.feed(&buf[..n], &mut emit);
            }
            write_out(&log, &out, &mut live, &mut dropped);
        }
    }
    // Output still pending after the drain limit (a pipe held open elsewhere).
    for pipe in &mut pipes {
        out.clear();
        let ts = time::rfc3339_nano(SystemTime::now());
        pipe.splitter.finish(&mut |content: &[u8], partial: bool| {
            cri::format_record(&mut out, &ts, pipe.stream, partial, content)
        });
        write_out(&log, &out, &mut live, &mut dropped);
    }
    drop(log);
    let (status, finished_at, _) = exited.ok_or("the container's exit was not seen")?;
    let record = ExitRecord {
        pid: args.pid,
        status,
        finished_at,
        live_lines_dropped: dropped,
    };
    record
        .write_atomic(&args.exit)
        .map_err(|e| format!("writing {}: {e}", args.exit.display()))
}

/// Appends `out` (whole records) to the log, and offers it to the live socket.
fn write_out(log: &cri::RotatingLog, out: &[u8], live: &mut Option<OwnedFd>, dropped: &mut u64) {
    if out.is_empty() {
        return;
    }
    // A full disk must not stop the container: the write error is retried with the next
    // batch (the record says nothing of it; the log simply has a gap).
    let _ = log.write_records(out);
    let Some(sock) = live.as_ref() else { return };
    for chunk in record_chunks(out, LIVE_CHUNK) {
        match send(
            sock.as_raw_fd(),
            chunk,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(_) => {}
            // skiff is behind: the file has the lines, the live copy loses them.
            Err(Errno::EAGAIN | Errno::ENOBUFS) => {
                *dropped += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            }
            Err(Errno::EINTR) => {}
            // skiff is gone (or closed its end): no more live copies.
            Err(_) => {
                *live = None;
                return;
            }
        }
    }
}

/// `data` (whole `\n`-terminated records) cut into pieces of at most `max` bytes at record
/// boundaries (a single longer record is one piece).
pub fn record_chunks(data: &[u8], max: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let limit = rest.len().min(max);
        let cut = match rest[..limit].iter().rposition(|&b| b == b'\n') {
            Some(i) if limit < rest.len() => i + 1,
            Some(_) => limit,
            None => rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1),
        };
        let (head, tail) = rest.split_at(cut);
        rest = tail;
        Some(head)
    })
}

/// Reaps every exited child; notes the container's own exit.
fn reap(child: Pid, exited: &mut Option<(ExitStatus, SystemTime, Instant)>) {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => {
                *exited = Some((ExitStatus::Exited(code), SystemTime::now(), Instant::now()))
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                *exited = Some((
                    ExitStatus::Signaled(sig as i32),
                    SystemTime::now(),
                    Instant::now(),
                ))
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            // An orphan of the container (or the log compressor's thread is not a process):
            // reaped, nothing to note.
            Ok(_) => {}
        }
    }
}

/// SIGKILL to every child (after the container's exit these are what it left behind,
/// reparented to this subreaper). Our own children cannot be reaped by anyone else, so their
/// PIDs cannot be reused under us. Their children come to us in turn and get the next round.
fn kill_descendants() {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let Ok(list) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        for pid in list.split_ascii_whitespace().filter_map(|p| p.parse().ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip_through_the_command_line() {
        let a = Args {
            pid: 42,
            log: "/var/lib/skiff/pods/p/c/0.log".into(),
            exit: "/var/lib/skiff/pods/p/c/0.exit".into(),
            max_size: 1024,
            max_files: 3,
            live: true,
        };
        let mut argv = a.to_argv();
        argv.push("--pid".into());
        argv.push("42".into());
        assert_eq!(Args::parse(argv), Ok(a));
        assert!(Args::parse(vec!["--pid".into()]).is_err());
        assert!(Args::parse(vec!["--log".into(), "x".into()]).is_err());
        assert!(Args::parse(vec!["--bogus".into(), "1".into()]).is_err());
    }

    #[test]
    fn chunks_end_at_record_boundaries() {
        let data = b"aaaa\nbb\ncccccc\nd\n";
        let chunks: Vec<&[u8]> = record_chunks(data, 8).collect();
        assert_eq!(chunks, vec![&b"aaaa\nbb\n"[..], b"cccccc\n", b"d\n"]);
        let chunks: Vec<&[u8]> = record_chunks(b"0123456789\nx\n", 4).collect();
        assert_eq!(chunks, vec![&b"0123456789\n"[..], b"x\n"]);
        assert_eq!(record_chunks(b"", 4).count(), 0);
        let joined: Vec<u8> = record_chunks(data, 3).flatten().copied().collect();
        assert_eq!(joined, data);
    }
}
