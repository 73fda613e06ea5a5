//! Harness for the `skiff serve` tests: a daemon on a per-test data dir (HTTPS on a free
//! loopback port), its kubeconfig, the real kubectl binaries with their own HOME and cache,
//! and cleanup that leaves nothing running (pods deleted through the API, then the daemon
//! stopped, then any process that still carries the test's marker killed by PID).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, TestDir};

/// Where the versioned kubectl binaries are (`kubectl.1.27` … beside the dispatcher).
pub fn kubectl_dir() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        let k = dir.join("kubectl");
        if let Ok(real) = std::fs::canonicalize(&k) {
            let parent = real.parent()?.to_path_buf();
            if parent.join("kubectl.1.33").exists() {
                return Some(parent);
            }
        }
    }
    None
}

/// The kubectl binary of `version` ("1.33", "1.27"), or None (the test then skips, saying so).
pub fn kubectl_bin(version: &str) -> Option<PathBuf> {
    let p = kubectl_dir()?.join(format!("kubectl.{version}"));
    p.exists().then_some(p)
}

/// Stops a background kubectl (by its PID) after `after` and returns what it printed.
pub fn finish_kubectl(mut child: Child, after: Duration) -> String {
    std::thread::sleep(after);
    let _ = child.kill();
    let out = child.wait_with_output().expect("kubectl output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running daemon.
pub struct Daemon {
    pub dir: TestDir,
    pub data: PathBuf,
    child: Option<Child>,
    pub kubeconfig: PathBuf,
}

impl Daemon {
    /// Starts `skiff serve` on a fresh data dir.
    pub fn start(test: &str) -> Daemon {
        let dir = TestDir::new(test);
        let data = dir.path().join("data");
        let mut d = Daemon {
            kubeconfig: dir.path().join("kubeconfig"),
            dir,
            data,
            child: None,
        };
        d.spawn();
        d
    }

    /// Starts the daemon process (again) on the same data dir and waits until it answers.
    pub fn spawn(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["serve", "--data-dir"])
            .arg(&self.data)
            .args(["--listen", "127.0.0.1:0"])
            .env("SKIFF_LOG", "info")
            // The test's marker: every process the daemon starts inherits it.
            .env("T", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("daemon.log"))
                    .unwrap(),
            )
            .spawn()
            .expect("spawn skiff serve");
        self.child = Some(child);
        let endpoint = self.data.join("serve/endpoint.json");
        let up = common::wait_until(Duration::from_secs(30), || endpoint.exists());
        assert!(up, "the daemon did not come up: {}", self.daemon_log());
        // The endpoint of the daemon before may linger: wait until this one answers.
        let mut last = String::new();
        let ok = common::wait_until(Duration::from_secs(30), || {
            let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
                .args(["kubeconfig", "--data-dir"])
                .arg(&self.data)
                .output()
                .unwrap();
            if !out.status.success() {
                last = String::from_utf8_lossy(&out.stderr).into_owned();
                return false;
            }
            std::fs::write(&self.kubeconfig, &out.stdout).unwrap();
            match self.try_kubectl("1.33", &["get", "--raw", "/readyz"]) {
                Some(o) if o.status.success() => true,
                Some(o) => {
                    last = String::from_utf8_lossy(&o.stderr).into_owned();
                    false
                }
                None => true,
            }
        });
        assert!(
            ok,
            "the daemon does not answer: {last}\n{}",
            self.daemon_log()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// SIGKILL the daemon (its pods keep running).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM the daemon and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            common::signal(c.id(), "TERM");
            let start = Instant::now();
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if start.elapsed() > Duration::from_secs(20) {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn kubectl_cmd(&self, bin: &Path, version: &str) -> Command {
        let home = self.dir.path().join(format!("home-{version}"));
        let _ = std::fs::create_dir_all(&home);
        let mut c = Command::new(bin);
        c.env("HOME", &home)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")
            .arg("--cache-dir")
            .arg(home.join("cache"))
            .stdin(Stdio::null());
        c
    }

    /// Runs kubectl `version` with `args`; None when that kubectl is not installed.
    pub fn try_kubectl(&self, version: &str, args: &[&str]) -> Option<Output> {
        let bin = kubectl_bin(version)?;
        Some(
            self.kubectl_cmd(&bin, version)
                .args(args)
                .output()
                .expect("run kubectl"),
        )
    }

    /// Runs kubectl and returns (rc, stdout, stderr); panics if kubectl is missing.
    pub fn kubectl(&self, version: &str, args: &[&str]) -> (i32, String, String) {
        let o = self
            .try_kubectl(version, args)
            .unwrap_or_else(|| panic!("kubectl.{version} is not installed"));
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// kubectl that must succeed; its stdout.
    pub fn ok(&self, version: &str, args: &[&str]) -> String {
        let (rc, out, err) = self.kubectl(version, args);
        assert_eq!(
            rc,
            0,
            "kubectl.{version} {args:?} failed: {err}\nstdout: {out}\ndaemon:\n{}",
            self.daemon_log()
        );
        out
    }

    /// Starts kubectl in the background (stdout piped), e.g. a watch.
    pub fn spawn_kubectl(&self, version: &str, args: &[&str]) -> Child {
        let bin = kubectl_bin(version).expect("kubectl installed");
        self.kubectl_cmd(&bin, version)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kubectl")
    }

    /// kubectl with stdin.
    pub fn kubectl_stdin(
        &self,
        version: &str,
        args: &[&str],
        input: &str,
    ) -> (i32, String, String) {
        use std::io::Write;
        let bin = kubectl_bin(version).expect("kubectl installed");
        let mut c = self.kubectl_cmd(&bin, version);
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// JSON of `kubectl get <what> -o json`.
    pub fn get_json(&self, what: &[&str]) -> serde_json::Value {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok("1.33", &args)).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            // Controllers first (they would make new pods), then every pod at once; wait until
            // they are gone, then stop the daemon. Kinds a daemon does not serve are ignored.
            let _ = self.try_kubectl(
                "1.33",
                &[
                    "delete",
                    "cronjobs,deployments,replicasets,jobs",
                    "--all",
                    "-A",
                    "--cascade=orphan",
                    "--ignore-not-found",
                    "--wait=false",
                ],
            );
            let _ = self.try_kubectl(
                "1.33",
                &[
                    "delete",
                    "pods",
                    "--all",
                    "-A",
                    "--grace-period=0",
                    "--force",
                    "--wait=false",
                ],
            );
            common::wait_until(Duration::from_secs(20), || {
                self.try_kubectl("1.33", &["get", "pods", "-A", "-o", "name"])
                    .is_none_or(|o| o.stdout.is_empty())
            });
            // Pods stop in the background after the API forgets them: give them a moment.
            std::thread::sleep(Duration::from_millis(500));
            self.stop();
        }
        for pid in self.dir.leftovers() {
            common::kill_pid(pid);
        }
    }
}
