//! Harness for the `skiff run` integration tests: pods of `/bin/sh -c` containers that append
//! `<ts> <name> <what>` lines to a shared log in a per-test directory, the real binary run on
//! them, and a guard that leaves no process or directory behind.
//!
//! Every container gets the env var `T` = the test directory. Scripts call `l WORD` to log
//! `<date +%s.%N> <container> WORD` to `$T/log`, and every container records its shell's PID in
//! `$T/pids`. The directory path also marks every process of the pod (it is in their
//! environment), so leftovers are found by scanning `/proc` and killed by PID.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// This process's effective uid (`/proc/self/status`), `u32::MAX` if unreadable.
pub fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().nth(1).and_then(|e| e.parse().ok()))
        })
        .unwrap_or(u32::MAX)
}

/// Whether the tests run as root (most need it: namespaces, mounts, cgroups).
pub fn is_root() -> bool {
    euid() == 0
}

/// Upper bound for any one `skiff run` in these tests (a hung run fails the test, not CI).
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The shell prelude of every container: `l WORD` appends one log line; the shell's PID is
/// recorded. `NAME` is replaced by the container name. (`$$$$` because Kubernetes expands
/// `$$` in commands to `$`.)
const PRELUDE: &str =
    r#"l() { echo "$(date +%s.%N) NAME $1" >> "$T/log"; }; echo $$$$ >> "$T/pids"; l Starting; "#;

/// Runs forever, logs `Exiting` and exits 0 on SIGTERM (checks for the signal every 50 ms).
pub const SERVE: &str = "trap 'l Exiting; exit 0' TERM; while :; do sleep 0.05; done";

/// A container `/bin/sh -c PRELUDE; body`.
pub fn container(name: &str, body: &str) -> Value {
    json!({
        "name": name,
        "image": "busybox:1.36",
        "command": ["/bin/sh", "-c", format!("{}{body}", PRELUDE.replace("NAME", name))],
    })
}

/// An exec probe running `script` with `/bin/sh -c` (sees `$T`).
pub fn exec_probe(script: &str, period: i64, failure_threshold: i64) -> Value {
    json!({
        "exec": {"command": ["/bin/sh", "-c", script]},
        "periodSeconds": period,
        "failureThreshold": failure_threshold,
    })
}

/// A sidecar: `container` with `restartPolicy: Always`.
pub fn sidecar(name: &str, body: &str) -> Value {
    let mut c = container(name, body);
    c["restartPolicy"] = json!("Always");
    c
}

/// Sets `key` on a container (builder style).
pub fn with(mut c: Value, key: &str, v: Value) -> Value {
    c[key] = v;
    c
}

/// A pod with the host runtime class.
pub fn pod(name: &str, restart_policy: &str, init: Vec<Value>, apps: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "runtimeClassName": "host",
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": 5,
            "initContainers": init,
            "containers": apps,
        }
    })
}

/// One line of the shared log.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub ts: f64,
    pub name: String,
    pub what: String,
}

/// What `skiff run` did.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Outcome {
    /// The final Pod printed with `-o json`.
    pub fn pod(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not a JSON Pod ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A per-test directory (the pod's `$T`) that kills what the pod left and removes itself.
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TestDir {
    pub fn new(test: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("skiff-it-{test}-"))
            .tempdir()
            .unwrap();
        let path = dir.path().to_path_buf();
        TestDir {
            dir: Some(dir),
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Adds `T=<dir>` to every container of `pod` and writes the manifest (YAML).
    pub fn manifest(&self, mut pod: Value) -> PathBuf {
        let t = self.path.to_string_lossy().into_owned();
        for list in ["initContainers", "containers"] {
            if let Some(cs) = pod["spec"][list].as_array_mut() {
                for c in cs {
                    let env = c
                        .as_object_mut()
                        .unwrap()
                        .entry("env")
                        .or_insert_with(|| json!([]));
                    env.as_array_mut()
                        .unwrap()
                        .push(json!({"name": "T", "value": t}));
                }
            }
        }
        let path = self.path.join("pod.yaml");
        // skiff's own writer: YAML 1.1-safe, as skiff and kubectl read it.
        std::fs::write(&path, skiff_model::manifest::emit::to_yaml(&pod)).unwrap();
        path
    }

    /// Writes the pod and runs `skiff run -f pod.yaml -o json <extra>`.
    pub fn run(&self, pod: Value, extra: &[&str]) -> Outcome {
        let manifest = self.manifest(pod);
        let mut args = vec!["run", "-f", manifest.to_str().unwrap(), "-o", "json"];
        args.extend_from_slice(extra);
        let child = spawn(&args);
        finish(child, RUN_LIMIT)
    }

    /// Writes `docs` (ConfigMaps, Secrets) and `pod` into one manifest and runs
    /// `skiff run -f pod.yaml -o json <extra>` on it.
    pub fn run_with_docs(&self, docs: &[Value], pod: Value, extra: &[&str]) -> Outcome {
        let manifest = self.manifest(pod);
        let mut text = String::new();
        for d in docs {
            text.push_str(&skiff_model::manifest::emit::to_yaml(d));
            text.push_str("---\n");
        }
        text.push_str(&std::fs::read_to_string(&manifest).unwrap());
        std::fs::write(&manifest, text).unwrap();
        let mut args = vec!["run", "-f", manifest.to_str().unwrap(), "-o", "json"];
        args.extend_from_slice(extra);
        finish(spawn(&args), RUN_LIMIT)
    }

    /// The shared log, ordered by timestamp.
    pub fn log(&self) -> Vec<Line> {
        let text = std::fs::read_to_string(self.file("log")).unwrap_or_default();
        let mut lines: Vec<Line> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut parts = l.splitn(3, ' ');
                let ts = parts.next().unwrap().parse::<f64>().unwrap_or_else(|e| {
                    panic!("bad log line {l:?}: {e}");
                });
                Line {
                    ts,
                    name: parts.next().unwrap_or("").to_string(),
                    what: parts.next().unwrap_or("").to_string(),
                }
            })
            .collect();
        lines.sort_by(|a, b| a.ts.total_cmp(&b.ts));
        lines
    }

    /// PIDs the containers wrote to `file` (one per line).
    pub fn pids(&self, file: &str) -> Vec<i32> {
        std::fs::read_to_string(self.file(file))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Live (non-zombie) processes that belong to this test: those whose PIDs the scripts
    /// recorded in `pids*` files and that still carry `T=<dir>`, plus any other process whose
    /// environment carries it (daemons that escaped).
    pub fn leftovers(&self) -> Vec<i32> {
        let marker = format!("T={}", self.path.display());
        let mut found: Vec<i32> = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return found;
        };
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if has_marker(pid, &marker) && !is_zombie(pid) {
                found.push(pid);
            }
        }
        found.sort_unstable();
        found
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        // Kill whatever the pod left behind, by PID (each checked to still carry our marker).
        for pid in self.leftovers() {
            kill_pid(pid);
        }
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
    }
}

fn has_marker(pid: i32, marker: &str) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes())
}

fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // `pid (comm) S ...`: the state follows the last ')'.
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        .unwrap_or(false)
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
}

/// SIGKILL one PID (test cleanup; callers checked the PID is ours).
pub fn kill_pid(pid: i32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Sends `sig` (e.g. "INT") to one PID.
pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid} failed");
}

/// Starts `skiff ARGS` with piped stdout/stderr. Pods kept without `--data-dir` go to the
/// tests' own data dir under the target dir, not to the machine's (`/var/lib/skiff`).
pub fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .env(
            "SKIFF_DATA_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("skiff-data"),
        )
        .env_remove("SKIFF_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn skiff: {e}"))
}

/// Waits for `child` (at most `limit`; then kills it by PID and fails) and collects its output.
pub fn finish(mut child: Child, limit: Duration) -> Outcome {
    let start = Instant::now();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status: ExitStatus = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_t.join().unwrap_or_default();
            panic!("skiff run did not finish within {limit:?}; stderr:\n{stderr}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    Outcome {
        code: status.code(),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
        elapsed,
    }
}

/// Polls (test-side only) until `f` holds or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// The first log line matching `name what` (panics with the whole log if none).
pub fn at(log: &[Line], name: &str, what: &str) -> f64 {
    log.iter()
        .find(|l| l.name == name && l.what == what)
        .map(|l| l.ts)
        .unwrap_or_else(|| panic!("no `{name} {what}` in log:\n{}", render(log)))
}

/// All timestamps of `name what`, in order.
pub fn all(log: &[Line], name: &str, what: &str) -> Vec<f64> {
    log.iter()
        .filter(|l| l.name == name && l.what == what)
        .map(|l| l.ts)
        .collect()
}

/// `name what` pairs in log order.
pub fn sequence(log: &[Line]) -> Vec<String> {
    log.iter()
        .map(|l| format!("{} {}", l.name, l.what))
        .collect()
}

pub fn render(log: &[Line]) -> String {
    log.iter()
        .map(|l| format!("{:.3} {} {}\n", l.ts, l.name, l.what))
        .collect()
}

/// The status of container `name` (init or app) in a final Pod.
pub fn status_of<'a>(pod: &'a Value, name: &str) -> &'a Value {
    for list in ["initContainerStatuses", "containerStatuses"] {
        if let Some(s) = pod["status"][list]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name))
        {
            return s;
        }
    }
    panic!("no status for {name}: {:#}", pod["status"]);
}

/// The condition `type_` of a final Pod.
pub fn condition<'a>(pod: &'a Value, type_: &str) -> &'a Value {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no condition {type_}: {:#}", pod["status"]))
}
