//! `skiff serve`'s node side surviving its own `kill -9` (issue 11 item 6), on real processes:
//! a child process (this test binary re-executed as [`child_daemon`]) runs a pod with a native
//! sidecar and an app through the [`PodManager`] on a temporary data dir; the test SIGKILLs it
//! and starts another one, which syncs the same pod. Checked each round: the same container
//! PIDs before and after, every container started once (its own log, no second instance),
//! restart counts unchanged, readiness kept as last stored, exec probes running again in the
//! adopted containers; a container that exited while no daemon ran gets its real exit code and
//! is restarted per policy; finally `stop` terminates in order (the app before its sidecar, T3)
//! and nothing is left (holder, containers, cgroup, mounts, records). Needs root and the
//! `skiff-monitor` binary beside the test executables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use skiff_node::manager::{ManagerConfig, PodManager, PodReport};
use skiff_node::sandbox::PodObjects;
use skiff_node::state::{scan_pod, Observed};

/// Set in the child: the pod file it syncs (then it serves commands from stdin).
const CHILD_ENV: &str = "SKIFF_CRASH_CHILD_POD";
const DATA_ENV: &str = "SKIFF_CRASH_CHILD_DATA";
/// Set in the child: its sync has the pod's ConfigMap (only the first daemon has it: the next
/// ones adopt the volume as it is).
const OBJECTS_ENV: &str = "SKIFF_CRASH_CHILD_OBJECTS";

/// The daemon stand-in: syncs the pod in `$SKIFF_CRASH_CHILD_POD` and prints every report as
/// one line (`STATUS <json>`, `EVENT <reason> <container>`, `FINISHED <json>`, `FAILED ..`);
/// stdin lines `stop` and `kill` are `PodManager::stop` and `kill_now`. Does nothing when run
/// as a test of its own.
#[test]
fn child_daemon() {
    let Ok(pod_file) = std::env::var(CHILD_ENV) else {
        return;
    };
    let data_dir = PathBuf::from(std::env::var(DATA_ENV).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The harness has written `test child_daemon ... ` without a newline.
    println!();
    rt.block_on(async move {
        let (manager, mut reports) = PodManager::new(ManagerConfig {
            data_dir,
            engine: Default::default(),
            image_pulls: skiff_node::worker::PullQueue::node(),
        });
        let pod: Pod = serde_json::from_slice(&std::fs::read(&pod_file).unwrap()).unwrap();
        let uid = pod.metadata.uid.clone().unwrap();
        let mut objects = PodObjects::default();
        if std::env::var(OBJECTS_ENV).is_ok() {
            let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(
                serde_json::json!({"metadata": {"name": "crash-cfg", "namespace": "default"},
                                   "data": {"key": "value-1"}}),
            )
            .unwrap();
            objects.config_maps.insert("crash-cfg".into(), cm);
        }
        manager.sync(pod, objects);
        let (tx, mut commands) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        loop {
            tokio::select! {
                r = reports.recv() => match r {
                    Some(PodReport::Status { status, .. }) => {
                        println!("STATUS {}", serde_json::to_string(&status).unwrap());
                    }
                    Some(PodReport::Event { event, .. }) => println!(
                        "EVENT {} {} {}",
                        event.reason,
                        event.container.as_deref().unwrap_or("-"),
                        event.message.replace('\n', " ")
                    ),
                    Some(PodReport::Finished { status, .. }) => {
                        println!("FINISHED {}", serde_json::to_string(&status).unwrap());
                        break;
                    }
                    Some(PodReport::Failed { error, .. }) => {
                        println!("FAILED {error}");
                        break;
                    }
                    Some(PodReport::Probe { .. }) => {}
                    None => break,
                },
                c = commands.recv() => match c.as_deref() {
                    Some("stop") => manager.stop(&uid, None),
                    Some("kill") => manager.kill_now(&uid),
                    Some(_) => {}
                    None => std::future::pending::<()>().await,
                },
            }
        }
    });
}

/// One daemon stand-in.
struct Daemon {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    /// Every line it printed so far.
    seen: Vec<String>,
}

impl Daemon {
    fn start(data: &Path, state: &Path, pod_file: &Path) -> Daemon {
        Daemon::start_with(data, state, pod_file, false)
    }

    fn start_with(data: &Path, state: &Path, pod_file: &Path, objects: bool) -> Daemon {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = Command::new(exe);
        if objects {
            cmd.env(OBJECTS_ENV, "1");
        }
        let mut child = cmd
            .args(["--exact", "child_daemon", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, pod_file)
            .env(DATA_ENV, data)
            .env(skiff_node::node::STATE_DIR_ENV, state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line for which `pred` is true.
    fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "timed out waiting for {what}; daemon said:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for a status report for which `pred` is true.
    fn wait_status(&mut self, what: &str, pred: impl Fn(&PodStatus) -> bool) -> PodStatus {
        let line = self.wait_for(what, Duration::from_secs(30), |l| {
            l.strip_prefix("STATUS ")
                .and_then(|j| serde_json::from_str::<PodStatus>(j).ok())
                .is_some_and(|s| pred(&s))
        });
        serde_json::from_str(line.strip_prefix("STATUS ").unwrap()).unwrap()
    }

    /// The last status it reported (after what has arrived by now).
    fn last_status(&mut self) -> PodStatus {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        let line = self
            .seen
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("STATUS "))
            .expect("a status");
        serde_json::from_str(line).unwrap()
    }

    fn send(&mut self, cmd: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
    }

    /// `kill -9` by PID, and reaped.
    fn kill9(mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which runtime class the pod runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Host,
    /// The default OCI runtime (runc), from a busybox image imported into the data dir's store.
    Oci,
}

const OCI_IMAGE: &str = "skiff-crash/busybox:1";

fn pod(uid: &str, class: Class) -> Pod {
    let (class_line, image) = match class {
        Class::Host => ("  runtimeClassName: host\n", "host"),
        Class::Oci => ("", OCI_IMAGE),
    };
    let yaml = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: crash, namespace: default}}
spec:
{class_line}  restartPolicy: Always
  terminationGracePeriodSeconds: 10
  volumes:
  - {{name: shared, emptyDir: {{}}}}
  - {{name: cfg, configMap: {{name: crash-cfg}}}}
  initContainers:
  - name: side
    image: {image}
    imagePullPolicy: Never
    restartPolicy: Always
    command: [/bin/sh, -c, "echo started; trap 'echo stopping; exit 0' TERM; while :; do sleep 0.05; done"]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
  containers:
  - name: app
    image: {image}
    imagePullPolicy: Never
    command: [/bin/sh, -c, "echo started; trap 'echo stopping; echo bye > /dev/termination-log; exit 0' TERM; trap 'exit 3' USR1; while :; do sleep 0.05; done"]
    volumeMounts: [{{name: shared, mountPath: /shared}}, {{name: cfg, mountPath: /cfg}}]
    readinessProbe:
      exec: {{command: [/bin/sh, -c, "cat /cfg/key && echo p >> /shared/probes"]}}
      periodSeconds: 1
"#
    );
    let pod: Pod = serde_yaml_ng::from_str(&yaml).unwrap();
    let mut prepared = skiff_model::prepare_pod(pod).unwrap();
    prepared.metadata.uid = Some(uid.into());
    prepared
}

/// Imports a busybox image (busybox-static and its applets) into the data dir's store.
fn import_busybox(data: &Path, scratch: &Path) {
    let dir = scratch.join("busybox-root");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let out = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    for d in ["etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
    let store = skiff_image::ContentStore::open(&data.join("images")).unwrap();
    skiff_image::import::import_dir(
        &store,
        &dir,
        OCI_IMAGE,
        &skiff_image::import::DirImageConfig::default(),
    )
    .unwrap();
}

fn container<'a>(
    st: &'a PodStatus,
    name: &str,
) -> Option<&'a k8s_openapi::api::core::v1::ContainerStatus> {
    st.container_statuses
        .iter()
        .chain(st.init_container_statuses.iter())
        .flatten()
        .find(|c| c.name == name)
}

fn running(st: &PodStatus, name: &str) -> bool {
    container(st, name)
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some())
}

fn ready(st: &PodStatus, name: &str) -> bool {
    container(st, name).is_some_and(|c| c.ready)
}

fn restarts(st: &PodStatus, name: &str) -> i32 {
    container(st, name).map_or(-1, |c| c.restart_count)
}

/// The running instance of each container per its records: (name, attempt, main pid).
fn running_instances(pod_dir: &Path) -> Vec<(String, u32, i32)> {
    let (found, errors) = scan_pod(pod_dir);
    assert!(errors.is_empty(), "{errors:?}");
    let mut v: Vec<_> = found
        .iter()
        .filter(|f| f.observed == Observed::Running)
        .map(|f| {
            (
                f.record.container.clone(),
                f.record.attempt,
                f.record.main.pid,
            )
        })
        .collect();
    v.sort();
    v
}

/// Every instance record (name, attempt) on disk.
fn all_instances(pod_dir: &Path) -> Vec<(String, u32)> {
    let (found, _) = scan_pod(pod_dir);
    let mut v: Vec<_> = found
        .iter()
        .map(|f| (f.record.container.clone(), f.record.attempt))
        .collect();
    v.sort();
    v
}

fn started_lines(pod_dir: &Path, container: &str, attempt: u32) -> usize {
    let log = std::fs::read_to_string(pod_dir.join(container).join(format!("{attempt}.log")))
        .unwrap_or_default();
    log.lines().filter(|l| l.ends_with(" started")).count()
}

/// The CRI timestamp of the `stopping` line of a container instance's log.
fn stop_time(pod_dir: &Path, container: &str, attempt: u32) -> String {
    let log = std::fs::read_to_string(pod_dir.join(container).join(format!("{attempt}.log")))
        .unwrap_or_default();
    log.lines()
        .find(|l| l.ends_with(" stopping"))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("{container} logged no stop:\n{log}"))
        .to_string()
}

/// Directories named `name` under `dir` (at most `depth` levels down).
fn find_named(dir: &Path, name: &str, depth: u32, out: &mut Vec<PathBuf>) {
    if depth == 0 {
        return;
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir() && !t.is_symlink()) {
            let p = e.path();
            if e.file_name().to_string_lossy() == name {
                out.push(p.clone());
            }
            find_named(&p, name, depth - 1, out);
        }
    }
}

fn holder_pid(pod_dir: &Path) -> i32 {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pod_dir.join("sandbox.json")).unwrap()).unwrap();
    i32::try_from(v["holder"]["pid"].as_i64().unwrap()).unwrap()
}

fn write_pod(path: &Path, pod: &Pod, status: Option<&PodStatus>) {
    let mut p = pod.clone();
    p.status = status.cloned();
    std::fs::write(path, serde_json::to_vec(&p).unwrap()).unwrap();
}

/// What the test made, torn down if it fails half-way: processes by PID (holder,
/// containers), then mounts under its temporary dir and the pod's cgroup dirs.
struct Leftovers {
    pids: Vec<i32>,
    tmp: PathBuf,
    uid: String,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if self.pids.is_empty() {
            return;
        }
        for &pid in &self.pids {
            if common::alive(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let mut mounts: Vec<PathBuf> = skiff_node::mountinfo::mount_points()
            .into_iter()
            .filter(|m| m.starts_with(&self.tmp))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for m in mounts {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        let mut cgroups = Vec::new();
        find_named(
            Path::new("/sys/fs/cgroup"),
            &format!("pod{}", self.uid),
            10,
            &mut cgroups,
        );
        for c in cgroups {
            for e in std::fs::read_dir(&c).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
            let _ = std::fs::remove_dir(&c);
        }
    }
}

#[test]
fn host_pods_survive_the_daemons_kill_9_and_are_adopted() {
    crash_rounds(Class::Host);
}

#[test]
fn image_pods_survive_the_daemons_kill_9_and_are_adopted() {
    if nix::unistd::geteuid().is_root()
        && (skiff_node::oci::runc::detected()
            .get(skiff_node::oci::runc::Handler::Runc)
            .is_none()
            || !Path::new("/bin/busybox").exists())
    {
        eprintln!("skipping: needs runc working here and /bin/busybox");
        return;
    }
    crash_rounds(Class::Oci);
}

fn crash_rounds(class: Class) {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root (pod sandbox)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&data).unwrap();
    if class == Class::Oci {
        import_busybox(&data, tmp.path());
    }
    let pod_file = tmp.path().join("pod.json");
    let uid = format!(
        "crash{:06x}-0000-4000-8000-00000000000{}",
        std::process::id() & 0xff_ffff,
        class as u8
    );
    let pod = pod(&uid, class);
    let pod_dir = data.join("pods").join(format!("default_crash_{uid}"));
    let shared = pod_dir.join("volumes/kubernetes.io~empty-dir/shared");
    let mut leftovers = Leftovers {
        pids: Vec::new(),
        tmp: tmp.path().to_path_buf(),
        uid: uid.clone(),
    };

    // Round 0: the first daemon starts the pod.
    write_pod(&pod_file, &pod, None);
    let mut d = Daemon::start_with(&data, &state, &pod_file, true);
    let st = d.wait_status("the pod running and ready", |s| {
        running(s, "side") && running(s, "app") && ready(s, "app")
    });
    assert_eq!((restarts(&st, "side"), restarts(&st, "app")), (0, 0));
    let before = running_instances(&pod_dir);
    assert_eq!(before.len(), 2, "{before:?}");
    let holder = holder_pid(&pod_dir);
    leftovers.pids.push(holder);
    leftovers.pids.extend(before.iter().map(|i| i.2));
    let mut last = st;

    for round in 1..=3 {
        d.kill9();
        // No daemon: the containers and the sandbox live on.
        assert!(
            common::alive(holder),
            "round {round}: the holder died with the daemon"
        );
        // What the next daemon would stop if the store had lost the pod.
        let (probe, _) = PodManager::new(ManagerConfig {
            data_dir: data.clone(),
            engine: Default::default(),
            image_pulls: skiff_node::worker::PullQueue::node(),
        });
        let orphans = probe.orphans(|_| false);
        assert_eq!(orphans.len(), 1, "round {round}");
        assert_eq!(orphans[0].metadata.uid.as_deref(), Some(uid.as_str()));
        assert!(probe.orphans(|u| u == uid).is_empty());
        for (name, _, pid) in running_instances(&pod_dir) {
            assert!(
                common::alive(pid),
                "round {round}: {name} died with the daemon"
            );
        }
        let probes_before = std::fs::read_to_string(shared.join("probes"))
            .unwrap_or_default()
            .lines()
            .count();
        write_pod(&pod_file, &pod, Some(&last));
        d = Daemon::start(&data, &state, &pod_file);
        // Readiness stays as stored until the next probe result: never reported false.
        let st = d.wait_status("the adopted pod's status", |s| running(s, "app"));
        assert!(
            ready(&st, "app"),
            "round {round}: readiness flipped: {st:?}"
        );
        let conditions_true =
            |s: &PodStatus| s.conditions.iter().flatten().all(|c| c.status == "True");
        assert!(
            conditions_true(&st),
            "round {round}: a condition flipped: {st:?}"
        );
        let after = running_instances(&pod_dir);
        assert_eq!(before, after, "round {round}: same instances, same PIDs");
        assert_eq!(
            (restarts(&st, "side"), restarts(&st, "app")),
            (0, 0),
            "round {round}"
        );
        for (name, attempt, _) in &after {
            assert_eq!(
                started_lines(&pod_dir, name, *attempt),
                1,
                "round {round}: {name} started once"
            );
        }
        assert_eq!(
            all_instances(&pod_dir),
            vec![("app".to_string(), 0), ("side".to_string(), 0)],
            "round {round}: no instance started twice"
        );
        assert!(
            !d.seen
                .iter()
                .any(|l| l.starts_with("EVENT Started") || l.starts_with("EVENT Killing")),
            "round {round}: adoption started or killed nothing: {:?}",
            d.seen
        );
        // Exec probes run in the adopted app (its mount namespace: the shared volume).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n = std::fs::read_to_string(shared.join("probes"))
                .unwrap_or_default()
                .lines()
                .count();
            if n > probes_before + 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: no probe ran in the adopted app"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        last = d.last_status();
        assert!(ready(&last, "app"), "round {round}: {last:?}");
    }

    // The app exits (code 3) while no daemon runs: the next one sees its real exit and
    // restarts it (restartPolicy Always); the sidecar is untouched.
    d.kill9();
    let app_pid = before.iter().find(|i| i.0 == "app").unwrap().2;
    let side_pid = before.iter().find(|i| i.0 == "side").unwrap().2;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(app_pid),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pod_dir.join("app/0.exit").exists() {
        assert!(
            Instant::now() < deadline,
            "the app's monitor recorded no exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    write_pod(&pod_file, &pod, Some(&last));
    let mut d = Daemon::start(&data, &state, &pod_file);
    let st = d.wait_status("the app restarted", |s| {
        restarts(s, "app") == 1 && running(s, "app")
    });
    let app = container(&st, "app").unwrap();
    let last_exit = app
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .unwrap();
    assert_eq!(last_exit.exit_code, 3, "{app:?}");
    assert_eq!(restarts(&st, "side"), 0);
    let now = running_instances(&pod_dir);
    let new_app = now.iter().find(|i| i.0 == "app").unwrap();
    assert_eq!(new_app.1, 1, "the restart is attempt 1");
    assert_ne!(new_app.2, app_pid);
    leftovers.pids.push(new_app.2);
    assert_eq!(now.iter().find(|i| i.0 == "side").unwrap().2, side_pid);
    // (Its first line may come a moment after the runtime reported it running.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while started_lines(&pod_dir, "app", 1) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(started_lines(&pod_dir, "app", 1), 1);
    assert_eq!(started_lines(&pod_dir, "side", 0), 1);

    // One more crash with the restarted app, then a graceful stop by the next daemon.
    d.kill9();
    write_pod(&pod_file, &pod, Some(&st));
    let mut d = Daemon::start(&data, &state, &pod_file);
    d.wait_status("adopted again", |s| {
        running(s, "app") && restarts(s, "app") == 1
    });
    assert_eq!(running_instances(&pod_dir), now);
    d.send("stop");
    let fin = d.wait_for("the pod finished", Duration::from_secs(30), |l| {
        l.starts_with("FINISHED ") || l.starts_with("FAILED ")
    });
    assert!(fin.starts_with("FINISHED "), "{fin}");
    // ST4: the adopted app's termination message, read at its exit.
    let fin: PodStatus = serde_json::from_str(fin.strip_prefix("FINISHED ").unwrap()).unwrap();
    let app_end = container(&fin, "app")
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .unwrap_or_else(|| panic!("{fin:?}"));
    assert_eq!(app_end.message.as_deref(), Some("bye\n"), "{app_end:?}");
    // T3: the app stopped before its sidecar, in the containers' own logs.
    let app_stop = stop_time(&pod_dir, "app", 1);
    let side_stop = stop_time(&pod_dir, "side", 0);
    assert!(
        app_stop < side_stop,
        "app {app_stop} before side {side_stop}"
    );
    let killing: Vec<&String> = d
        .seen
        .iter()
        .filter(|l| l.starts_with("EVENT Killing"))
        .collect();
    assert_eq!(killing.len(), 2, "{:?}", d.seen);
    drop(d);

    // Nothing left: holder, containers, the pod's cgroup, mounts, records.
    let deadline = Instant::now() + Duration::from_secs(5);
    while common::alive(holder) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!common::alive(holder), "the holder was stopped");
    for (name, _, pid) in &now {
        assert!(!common::alive(*pid), "{name} is gone");
    }
    let mounts: Vec<PathBuf> = skiff_node::mountinfo::mount_points()
        .into_iter()
        .filter(|m| m.starts_with(tmp.path()))
        .collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    assert!(!pod_dir.join("sandbox.json").exists());
    let records: Vec<_> = std::fs::read_dir(state.join("pods"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(records.is_empty(), "node records left: {records:?}");
    let mut cgroups = Vec::new();
    find_named(
        Path::new("/sys/fs/cgroup"),
        &format!("pod{uid}"),
        10,
        &mut cgroups,
    );
    assert!(cgroups.is_empty(), "pod cgroups left: {cgroups:?}");
    leftovers.pids.clear();
}
