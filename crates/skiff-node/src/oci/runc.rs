//! The OCI runtime binary (runc, crun, youki): which one this host can use, and the commands
//! skiff gives it.
//!
//! * Detection ([`detected`]): the first of runc, crun, youki that is installed **and works**
//!   — checked once per process by running a tiny container (the host's `/bin/true` in an
//!   empty root with the host's `/usr` bound in). crun 1.8 refuses a hybrid cgroup v1/v2 host
//!   ("cgroups in hybrid mode not supported"), which `--version` would not tell.
//! * State under `<data-dir>/runtime/<handler>` (`--root`), its own errors in a JSON log per
//!   container instance (`--log … --log-format json`): with `terminal: false` the runtime hands
//!   its stdio to the container, so its stderr is the container's log, not its own.
//! * `create` is run by the container's monitor launcher (see `spawn`/`sys::process`), so the
//!   container's init is the monitor's child; `start` and `delete --force` from skiff. Signals
//!   go through a pidfd of the init, never `runc kill` (≈5 ms each).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::spec::StartError;

/// An OCI runtime a RuntimeClass handler can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Handler {
    Runc,
    Crun,
    Youki,
}

impl Handler {
    /// In order of preference (runc first: the one every CRI runtime defaults to).
    pub const ALL: [Handler; 3] = [Handler::Runc, Handler::Crun, Handler::Youki];

    pub fn name(self) -> &'static str {
        match self {
            Handler::Runc => "runc",
            Handler::Crun => "crun",
            Handler::Youki => "youki",
        }
    }

    pub fn by_name(name: &str) -> Option<Handler> {
        Handler::ALL.into_iter().find(|h| h.name() == name)
    }
}

/// A working OCI runtime binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRuntime {
    pub handler: Handler,
    pub path: PathBuf,
    /// First line of `--version`.
    pub version: String,
}

/// What detection found for one handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    NotInstalled,
    Works(OciRuntime),
    /// Installed, but its check container failed (the reason).
    Fails {
        path: PathBuf,
        why: String,
    },
}

/// The verdicts for every handler, in [`Handler::ALL`] order.
#[derive(Debug, Clone)]
pub struct Detected {
    pub verdicts: Vec<(Handler, Verdict)>,
}

impl Detected {
    /// The runtime a pod without `runtimeClassName` gets.
    pub fn default_runtime(&self) -> Option<&OciRuntime> {
        self.verdicts.iter().find_map(|(_, v)| match v {
            Verdict::Works(r) => Some(r),
            _ => None,
        })
    }

    pub fn get(&self, h: Handler) -> Option<&OciRuntime> {
        self.verdicts.iter().find_map(|(hh, v)| match v {
            Verdict::Works(r) if *hh == h => Some(r),
            _ => None,
        })
    }

    /// One line for users (`skiff run`, logs): which runtime runs image containers and why
    /// the others do not.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.default_runtime() {
            Some(r) => parts.push(format!(
                "image containers run with {} ({}, {})",
                r.handler.name(),
                r.path.display(),
                r.version
            )),
            None => parts.push("no working OCI runtime (runc, crun, youki)".into()),
        }
        for (h, v) in &self.verdicts {
            if let Verdict::Fails { why, .. } = v {
                parts.push(format!("{} does not work here: {why}", h.name()));
            }
        }
        parts.join("; ")
    }
}

static DETECTED: OnceLock<Detected> = OnceLock::new();

/// Detects once per process (blocking: up to one check container per installed runtime,
/// ≈30 ms each) and logs the verdict.
pub fn detected() -> &'static Detected {
    DETECTED.get_or_init(|| {
        let verdicts = Handler::ALL
            .into_iter()
            .map(|h| (h, verdict(h)))
            .collect::<Vec<_>>();
        let d = Detected { verdicts };
        tracing::info!("OCI runtime: {}", d.describe());
        d
    })
}

fn verdict(h: Handler) -> Verdict {
    let Some(path) = find_binary(h.name()) else {
        return Verdict::NotInstalled;
    };
    let key = VerdictKey::of(&path);
    let checked = match key
        .as_ref()
        .and_then(|k| cached_verdict(Path::new(VERDICT_DIR), h, k))
    {
        Some(v) => v,
        None => {
            let v = version_of(&path).and_then(|version| check(&path).map(|()| version));
            if let Some(k) = &key {
                store_verdict(Path::new(VERDICT_DIR), h, k, &v);
            }
            v
        }
    };
    match checked {
        Ok(version) => Verdict::Works(OciRuntime {
            handler: h,
            path,
            version,
        }),
        Err(why) => Verdict::Fails { path, why },
    }
}

/// The first line of `<runtime> --version`.
fn version_of(path: &Path) -> Result<String, String> {
    match std::process::Command::new(path).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()),
        Ok(o) => Err(format!("--version exited with {}", o.status)),
        Err(e) => Err(e.to_string()),
    }
}

/// Where check verdicts are kept between skiff processes: a tmpfs dir only root writes, so
/// a reboot (a new kernel, a changed cgroup layout) forgets them. A check container costs
/// ≈ 25–50 ms per installed runtime, on every `skiff run` without this.
const VERDICT_DIR: &str = "/run/skiff";

/// What a cached verdict is valid for: the very binary it was checked on (its path, inode,
/// size and modification time; an upgrade changes them).
#[derive(Debug, Clone, PartialEq, Eq)]
struct VerdictKey(String);

impl VerdictKey {
    fn of(path: &Path) -> Option<VerdictKey> {
        use std::os::unix::fs::MetadataExt;
        // Only root's cache is trusted, and only root runs image pods.
        if !crate::machine::is_root() {
            return None;
        }
        let m = std::fs::metadata(path).ok()?;
        Some(VerdictKey(format!(
            "{}\t{}:{}\t{}\t{}.{}",
            path.display(),
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec()
        )))
    }
}

fn verdict_file(dir: &Path, h: Handler) -> PathBuf {
    dir.join(format!("oci-{}.verdict", h.name()))
}

/// The cached verdict for `h` if its file is root's own, not writable by others, not a
/// symlink, small, and made for this very binary.
fn cached_verdict(dir: &Path, h: Handler, key: &VerdictKey) -> Option<Result<String, String>> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let d = std::fs::symlink_metadata(dir).ok()?;
    if !d.is_dir() || d.uid() != 0 || d.mode() & 0o022 != 0 {
        return None;
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(verdict_file(dir, h))
        .ok()?;
    let m = f.metadata().ok()?;
    if !m.is_file() || m.uid() != 0 || m.mode() & 0o022 != 0 {
        return None;
    }
    let mut text = String::new();
    f.take(4096).read_to_string(&mut text).ok()?;
    let (first, verdict) = text.split_once('\n')?;
    if first != key.0 {
        return None;
    }
    match verdict.split_once('\t') {
        Some(("works", version)) => Some(Ok(version.trim_end().to_string())),
        Some(("fails", why)) => Some(Err(why.trim_end().to_string())),
        _ => None,
    }
}

/// Keeps `v` for the next skiff process (best effort: a failure only costs a check later).
fn store_verdict(dir: &Path, h: Handler, key: &VerdictKey, v: &Result<String, String>) {
    use std::os::unix::fs::DirBuilderExt;
    let _ = std::fs::DirBuilder::new().mode(0o755).create(dir);
    let line = match v {
        Ok(version) => format!("works\t{}", version.replace(['\n', '\t'], " ")),
        Err(why) => format!("fails\t{}", why.replace(['\n', '\t'], " ")),
    };
    let text = format!("{}\n{line}\n", key.0);
    let target = verdict_file(dir, h);
    let tmp = target.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, text).is_err() || std::fs::rename(&tmp, &target).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// `name` in `$PATH`, then the sbin directories a non-login root shell may lack.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|d| d.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// How long the check container may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `/bin/true` as a container: an empty root with the host's `/usr` (and `/bin`, `/lib*`
/// as the host has them: symlinks on a merged-/usr host) bound read-only.
fn check(runtime: &Path) -> Result<(), String> {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("skiff-oci-check-{}-{n}", std::process::id()));
    let id = format!("skiff-check-{}-{n}", std::process::id());
    let r = run_check(runtime, &dir, &id);
    let _ = std::process::Command::new(runtime)
        .arg("--root")
        .arg(dir.join("state"))
        .args(["delete", "--force", &id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn run_check(runtime: &Path, dir: &Path, id: &str) -> Result<(), String> {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| format!("creating {}: {e}", rootfs.display()))?;
    let mut mounts = vec![
        serde_json::json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        serde_json::json!({"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]}),
    ];
    for top in ["bin", "lib", "lib64"] {
        let host = Path::new("/").join(top);
        match std::fs::read_link(&host) {
            Ok(target) => std::os::unix::fs::symlink(target, rootfs.join(top))
                .map_err(|e| format!("creating the check's /{top}: {e}"))?,
            Err(_) if host.is_dir() => mounts.push(serde_json::json!({
                "destination": format!("/{top}"), "type": "bind",
                "source": host, "options": ["rbind", "ro"]
            })),
            Err(_) => {}
        }
    }
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/true"],
            "env": ["PATH=/usr/bin:/bin"],
            "cwd": "/"
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "skiff-check",
        "mounts": mounts,
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}, {"type": "uts"}, {"type": "ipc"}]}
    });
    std::fs::write(dir.join("config.json"), config.to_string())
        .map_err(|e| format!("writing the check's config.json: {e}"))?;
    let log = dir.join("log.json");
    let mut cmd = std::process::Command::new(runtime);
    cmd.arg("--root")
        .arg(dir.join("state"))
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "run", "--bundle"])
        .arg(dir)
        .arg(id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // Through skiff's reaper: it reaps every child of this process (`waitpid(-1)`).
    let reaper = crate::reaper::Reaper::global().map_err(|e| e.to_string())?;
    let spawned = reaper
        .spawn(&mut cmd, "oci-check")
        .map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + CHECK_TIMEOUT;
    let status = loop {
        if let Some(ev) = spawned.exit.try_get() {
            break ev.status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(spawned.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            return Err("the check container did not finish in 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if status.code() == 0 {
        return Ok(());
    }
    Err(last_error(&log)
        .unwrap_or_else(|| format!("the check container ended with code {}", status.code())))
}

/// `<data-dir>/runtime/<handler>`: the runtime's `--root`.
pub fn state_root(data_dir: &Path, h: Handler) -> PathBuf {
    data_dir.join("runtime").join(h.name())
}

/// The runtime's global options (before the command).
pub fn global_args(rt: &OciRuntime, root: &Path, log: &Path) -> Vec<String> {
    vec![
        rt.handler.name().to_string(),
        "--root".into(),
        root.display().to_string(),
        "--log".into(),
        log.display().to_string(),
        "--log-format".into(),
        "json".into(),
    ]
}

/// The last error the runtime logged (`{"level":"error","msg":…}` lines of its JSON log; a
/// bounded read of the file's end).
pub fn last_error(log: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 64 * 1024;
    let mut f = std::fs::File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut buf = Vec::new();
    f.take(TAIL).read_to_end(&mut buf).ok()?;
    String::from_utf8_lossy(&buf)
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
        .and_then(|v| v["msg"].as_str().map(str::to_string))
}

/// The start failure of a `create` that failed: the kubelet's `RunContainerError` with the
/// runtime's own message (containerd: "OCI runtime create failed: runc create failed: …").
pub(crate) fn create_error(handler: &str, log: &Path, e: std::io::Error) -> StartError {
    let what = format!("OCI runtime create failed: {handler} create failed");
    match last_error(log) {
        Some(msg) => StartError::Io {
            what,
            source: std::io::Error::other(msg),
        },
        None => StartError::Io { what, source: e },
    }
}

/// How long `start` and `delete` may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `<runtime> <global> <args…>`; `Err` carries the runtime's last logged error (or its
/// stderr).
pub async fn run(rt: &OciRuntime, root: &Path, log: &Path, args: &[&str]) -> Result<(), String> {
    let global = global_args(rt, root, log);
    let mut cmd = std::process::Command::new(&rt.path);
    cmd.args(&global[1..])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // Through skiff's reaper (it reaps every child of this process).
    let reaper = crate::reaper::Reaper::global().map_err(|e| e.to_string())?;
    let spawned = reaper
        .spawn(&mut cmd, "oci-runtime")
        .map_err(|e| format!("running {}: {e}", rt.path.display()))?;
    let ev = match tokio::time::timeout(COMMAND_TIMEOUT, spawned.exit.wait()).await {
        Ok(ev) => ev,
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(spawned.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            return Err(format!(
                "{} {} timed out",
                rt.handler.name(),
                args.join(" ")
            ));
        }
    };
    if ev.status.code() == 0 {
        return Ok(());
    }
    Err(last_error(log).unwrap_or_else(|| {
        format!(
            "{} {} ended with code {}",
            rt.handler.name(),
            args.join(" "),
            ev.status.code()
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_takes_the_last_error_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log.json");
        std::fs::write(
            &p,
            "{\"level\":\"error\",\"msg\":\"first\"}\nnot json\n{\"level\":\"warning\",\"msg\":\"w\"}\n{\"level\":\"error\",\"msg\":\"runc run failed: exec: \\\"nope\\\": executable file not found in $PATH\"}\n{\"level\":\"info\",\"msg\":\"x\"}\n",
        )
        .unwrap();
        assert_eq!(
            last_error(&p).as_deref(),
            Some("runc run failed: exec: \"nope\": executable file not found in $PATH")
        );
        assert_eq!(last_error(&d.path().join("missing")), None);
    }

    #[test]
    fn handlers_by_name() {
        assert_eq!(Handler::by_name("runc"), Some(Handler::Runc));
        assert_eq!(Handler::by_name("crun"), Some(Handler::Crun));
        assert_eq!(Handler::by_name("runsc"), None);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod verdict_cache_tests {
    use super::*;

    // A verdict is reused only for the same binary, from a file root owns that is no
    // symlink; anything else means a new check (the attacker cannot vouch for a runtime).
    #[test]
    fn verdicts_are_reused_only_for_the_same_binary_and_a_trusted_file() {
        if !crate::machine::is_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let bin = tmp.path().join("runc");
        std::fs::write(&bin, b"v1").unwrap();
        let key = VerdictKey::of(&bin).unwrap();
        assert_eq!(cached_verdict(&dir, Handler::Runc, &key), None);
        store_verdict(&dir, Handler::Runc, &key, &Ok("runc version 1.1.5".into()));
        assert_eq!(
            cached_verdict(&dir, Handler::Runc, &key),
            Some(Ok("runc version 1.1.5".into()))
        );
        store_verdict(
            &dir,
            Handler::Crun,
            &key,
            &Err("cgroups\tin hybrid mode".into()),
        );
        assert_eq!(
            cached_verdict(&dir, Handler::Crun, &key),
            Some(Err("cgroups in hybrid mode".into()))
        );
        // An upgraded binary (another size) needs a new check.
        std::fs::write(&bin, b"v2 longer").unwrap();
        let key2 = VerdictKey::of(&bin).unwrap();
        assert_ne!(key, key2);
        assert_eq!(cached_verdict(&dir, Handler::Runc, &key2), None);
        // A symlinked verdict file is not read.
        let file = verdict_file(&dir, Handler::Youki);
        let planted = tmp.path().join("planted");
        std::fs::write(&planted, format!("{}\nworks\tv\n", key2.0)).unwrap();
        std::os::unix::fs::symlink(&planted, &file).unwrap();
        assert_eq!(cached_verdict(&dir, Handler::Youki, &key2), None);
        // Nor one others may write.
        std::fs::remove_file(&file).unwrap();
        std::fs::copy(&planted, &file).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(cached_verdict(&dir, Handler::Youki, &key2), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            cached_verdict(&dir, Handler::Youki, &key2),
            Some(Ok("v".into()))
        );
    }
}
