//! The pod keeper: what stops a pod in order when the `skiff run` running it is killed.
//!
//! Containers live under their monitors, not under skiff (`skiff_monitor`), so a `skiff run`
//! that dies, even of SIGKILL, leaves them running. For `run` that is wrong: the pod belongs to
//! the command. So `run` starts one keeper per pod (`skiff __keeper <pod dir>`, a process of
//! its own session, so a Ctrl-C to skiff's terminal is not its business) holding the read end
//! of a lifeline pipe. When the pod ends normally skiff writes `q` and the keeper exits. When
//! skiff dies the pipe reaches its end without a `q`, and the keeper:
//!
//! 1. takes the pod's lock (`store`): `skiff get` shows the pod as running while it stops,
//!    and nobody else adopts it meanwhile;
//! 2. rebuilds the lifecycle engine from the pod (`pod.json`) and what the instance records
//!    say (`state::scan_pod`: running, exited with the monitor's exit record, or unknown),
//!    asks it to stop the pod with the pod's grace period, and carries out its actions — so
//!    the order is the engine's (apps first, then sidecars in reverse order, T3–T5), not a
//!    copy of it. preStop hooks are not run (the keeper cannot enter containers it did not
//!    start; it says so in its log);
//! 3. waits for every monitor to finish (their logs hold every line), writes the pod's final
//!    status, and cleans up what the pod's record lists — cgroups, mounts, mount points —
//!    through the same recovery a new skiff runs at start (`node`).
//!
//! Under `skiff serve` (a daemon that adopts pods after a restart) there is no keeper.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use skiff_engine::{Action, EngineConfig, Input, InstanceId, PodEngine, Signal, Time};

use crate::clock::{Clock, WallClock};
use crate::cri::FoundContainer;
use crate::reaper::{Reaper, Spawned};
use crate::state::{FoundInstance, Observed, ProcessRef};

/// The hidden subcommand of the `skiff` binary that runs [`run`].
pub const KEEPER_COMMAND: &str = "__keeper";
/// The keeper's log, in the pod's directory.
pub const KEEPER_LOG: &str = "keeper.log";
/// What skiff writes on the lifeline when the pod ended normally.
const RELEASE: u8 = b'q';
/// Beyond the engine's own deadlines: how long the keeper waits for monitors at most.
const EXTRA_WAIT: Duration = Duration::from_secs(10);

/// skiff's end of a pod's keeper.
pub struct KeeperHandle {
    lifeline: File,
    process: Spawned,
}

impl KeeperHandle {
    /// Starts `program __keeper <pod_dir>` (`program` is the `skiff` binary).
    pub fn start(program: &Path, pod_dir: &Path, reaper: &Reaper) -> io::Result<KeeperHandle> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::process::CommandExt;
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(pod_dir.join(KEEPER_LOG))?;
        let mut cmd = Command::new(program);
        cmd.arg(KEEPER_COMMAND)
            .arg(pod_dir)
            .stdin(Stdio::from(read))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            // A group of its own: signals to skiff's process group (Ctrl-C) are not for it.
            .process_group(0);
        let process = reaper.spawn(&mut cmd, "keeper")?;
        Ok(KeeperHandle {
            lifeline: File::from(write),
            process,
        })
    }

    /// The pod ended normally: the keeper exits without doing anything.
    pub fn release(mut self) {
        let _ = self.lifeline.write_all(&[RELEASE]);
        drop(self.lifeline);
        drop(self.process);
    }
}

/// The keeper process (see the module docs). Returns once the pod is stopped and cleaned up,
/// or at once when skiff released it.
pub fn run(pod_dir: &Path) -> io::Result<()> {
    let mut b = [0u8; 1];
    let n = loop {
        match io::stdin().lock().read(&mut b) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    if n == 1 && b[0] == RELEASE {
        return Ok(());
    }
    log(&format!(
        "skiff is gone; stopping the pod in {}",
        pod_dir.display()
    ));
    stop_orphaned_pod(pod_dir)
}

fn log(msg: &str) {
    let now = skiff_monitor::time::rfc3339_nano(SystemTime::now());
    eprintln!("{now} keeper: {msg}");
}

/// Stops the pod of `pod_dir` whose skiff is gone, then cleans up after it.
pub fn stop_orphaned_pod(pod_dir: &Path) -> io::Result<()> {
    let data_dir = pod_dir
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| io::Error::other("the pod dir is not <data dir>/pods/<pod>"))?
        .to_path_buf();
    let dir_name = pod_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Root acts on what the records here say (signals, cleanup): only from skiff's own data
    // dir and pod dir, never through a symlink, writable by nobody else.
    for dir in [&data_dir, &data_dir.join("pods"), &pod_dir.to_path_buf()] {
        if std::fs::symlink_metadata(dir)?.file_type().is_symlink() {
            return Err(io::Error::other(format!("{} is a symlink", dir.display())));
        }
        crate::store::check_data_dir(dir).map_err(io::Error::other)?;
    }
    let pod: Pod = crate::store::read_pod_file(pod_dir)?;
    // The lock, and with it the pod's status file from here on.
    let mut recorder = crate::store::PodRecorder::create(&data_dir, &dir_name, &pod)?;
    let (found, errors) = crate::state::scan_pod(pod_dir);
    for e in &errors {
        log(&format!("skipping an instance record: {e}"));
    }
    let key = crate::state::container_id_key(&pod);
    for f in &found {
        recorder.instance(
            InstanceId(f.record.instance).container_id(key),
            i32::try_from(f.record.attempt).unwrap_or(i32::MAX),
        );
    }
    let observed: Vec<FoundContainer> = found.iter().map(FoundContainer::from).collect();
    let cfg = crate::adopt::engine_config(
        EngineConfig {
            container_id_key: key,
            ..EngineConfig::default()
        },
        &observed,
    );
    let now = WallClock.now();
    let mut engine = PodEngine::new(&pod, cfg, now).map_err(io::Error::other)?;
    let mut live = adopt(&mut engine, &found, &observed, now);
    let tgps = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    let status = drive_to_stop(&mut engine, &mut live, tgps);
    recorder.finish(&status);
    // Every monitor is gone: the pod's cgroups, mounts and mount points (node recovery; the
    // record's owner, the skiff that died, is not alive any more).
    let _ = crate::node::NodeResources::global();
    log("the pod is stopped and cleaned up");
    Ok(())
}

/// A container instance the keeper watches.
struct Live {
    name: String,
    instance: InstanceId,
    monitor: Option<OwnedFd>,
    main: ProcessRef,
    exit_path: PathBuf,
    /// Already reported to the engine as exited.
    done: bool,
}

/// Feeds the engine what the records say, as a restarted kubelet would learn it from the
/// runtime (`adopt::replay`), after the stop request (first, so that nothing is started);
/// returns the instances to watch: running ones, and unknown ones (killed first, R3/S7).
fn adopt(
    engine: &mut PodEngine,
    found: &[FoundInstance],
    observed: &[FoundContainer],
    now: Time,
) -> Vec<Live> {
    engine.handle(Input::StopRequested { grace: None }, now);
    crate::adopt::replay(engine, observed, now);
    let mut live = Vec::new();
    for f in found {
        let r = &f.record;
        let monitor = match &f.observed {
            Observed::Exited(_) => continue,
            Observed::Unknown => None,
            Observed::Running => r.monitor.pidfd(),
        };
        live.push(Live {
            name: r.container.clone(),
            instance: InstanceId(r.instance),
            monitor,
            main: r.main.clone(),
            exit_path: r.exit_path.clone(),
            done: false,
        });
    }
    live
}

fn signal(l: &Live, sig: Signal) {
    let Some(fd) = l.main.pidfd() else {
        return;
    };
    let s = match sig {
        Signal::Term => rustix::process::Signal::TERM,
        Signal::Kill => rustix::process::Signal::KILL,
    };
    let _ = rustix::process::pidfd_send_signal(&fd, s);
}

/// Runs the engine until the pod is stopped (or its deadlines have long passed).
fn drive_to_stop(
    engine: &mut PodEngine,
    live: &mut [Live],
    tgps: i64,
) -> k8s_openapi::api::core::v1::PodStatus {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let started = std::time::Instant::now();
    // The engine kills at the grace period (plus the 2 s minimum per sidecar turn); this
    // bound only guards against waiting forever on something that never reports.
    let limit = Duration::from_secs(u64::try_from(tgps.max(0)).unwrap_or(30)) + EXTRA_WAIT;
    loop {
        let now = WallClock.now();
        for action in engine.plan(now) {
            match action {
                Action::Signal {
                    instance,
                    signal: sig,
                    ..
                } => {
                    if let Some(l) = live.iter().find(|l| l.instance == instance) {
                        log(&format!("signal {sig:?} to {}", l.name));
                        signal(l, sig);
                        // An instance without a monitor cannot report its end: once killed,
                        // it is gone (R3/S7 "Unknown": killed first).
                        if l.monitor.is_none() && sig == Signal::Kill {
                            report_exit(engine, live, instance, now);
                        }
                    }
                }
                Action::RunPreStop { name, instance, .. } => {
                    log(&format!("preStop of {name} not run (skiff is gone)"));
                    engine.handle(
                        Input::PreStopDone {
                            name,
                            instance,
                            ok: true,
                        },
                        now,
                    );
                }
                Action::Event(e) => log(&format!("{}: {}", e.reason, e.message)),
                _ => {}
            }
        }
        // Instances without a monitor that the engine has not asked to kill yet.
        let unknown: Vec<InstanceId> = live
            .iter()
            .filter(|l| l.monitor.is_none() && !l.done && !l.main.alive())
            .map(|l| l.instance)
            .collect();
        for i in unknown {
            report_exit(engine, live, i, now);
        }
        let waiting = live.iter().any(|l| !l.done);
        if (engine.is_terminal() && !waiting) || started.elapsed() > limit {
            return engine.status(WallClock.now());
        }
        let timeout = engine
            .wake_at()
            .map(|w| w.millis_since(WallClock.now()).clamp(0, 1000))
            .unwrap_or(1000);
        let mut fds: Vec<PollFd<'_>> = Vec::new();
        let mut which = Vec::new();
        for (i, l) in live.iter().enumerate() {
            if let (Some(fd), false) = (&l.monitor, l.done) {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                which.push(i);
            }
        }
        let t = PollTimeout::try_from(i32::try_from(timeout).unwrap_or(1000))
            .unwrap_or(PollTimeout::NONE);
        let _ = poll(&mut fds, t);
        let exited: Vec<usize> = fds
            .iter()
            .zip(&which)
            .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, &i)| i)
            .collect();
        drop(fds);
        let now = WallClock.now();
        for i in exited {
            let instance = live[i].instance;
            report_exit(engine, live, instance, now);
        }
        if live.iter().all(|l| l.done) && !engine.is_terminal() {
            engine.handle(Input::Tick, now);
        }
    }
}

/// Reports instance `instance` as exited, with its monitor's record when there is one.
fn report_exit(engine: &mut PodEngine, live: &mut [Live], instance: InstanceId, now: Time) {
    let Some(l) = live.iter_mut().find(|l| l.instance == instance && !l.done) else {
        return;
    };
    l.done = true;
    let record = skiff_monitor::ExitRecord::read(&l.exit_path).ok().flatten();
    let (code, at) = match record {
        Some(r) if r.pid == l.main.pid => {
            (r.status.code(), crate::clock::system_time(r.finished_at))
        }
        _ => (137, now),
    };
    engine.handle(
        Input::ContainerExited {
            name: l.name.clone(),
            instance,
            exit_code: code,
            reason: None,
            message: None,
            at,
        },
        now,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A pod dir another user could have written: a record in it naming a live process.
    fn planted(data: &Path, victim: ProcessRef) -> PathBuf {
        let pod_dir = data.join("pods").join("default_p_u");
        std::fs::create_dir_all(pod_dir.join("app")).unwrap();
        std::fs::write(
            pod_dir.join("pod.json"),
            r#"{"metadata":{"name":"p","namespace":"default","uid":"u"},
               "spec":{"containers":[{"name":"app","image":"x"}]}}"#,
        )
        .unwrap();
        let record = crate::state::InstanceRecord {
            version: 1,
            pod_uid: "u".into(),
            container: "app".into(),
            instance: 1,
            attempt: 0,
            runtime_id: "x".into(),
            boot_id: crate::state::boot_id(),
            monitor: victim.clone(),
            main: victim,
            started_unix_ms: 1,
            log_path: pod_dir.join("app/0.log"),
            exit_path: pod_dir.join("app/0.exit"),
            cgroup: None,
        };
        record
            .write(&crate::state::InstanceRecord::path(&pod_dir.join("app"), 0))
            .unwrap();
        pod_dir
    }

    // The attacker: records planted in a directory others can write (or reached through a
    // symlink) must not make root signal the process they name.
    #[test]
    fn keeper_acts_only_on_skiffs_own_dirs() {
        let mut victim = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = i32::try_from(victim.id()).unwrap();
        let victim_ref = ProcessRef::of(pid).unwrap();

        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        let pod_dir = planted(&open, victim_ref.clone());
        std::fs::set_permissions(&pod_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = stop_orphaned_pod(&pod_dir).unwrap_err();
        assert!(err.to_string().contains("writable"), "{err}");

        let real = tmp.path().join("real");
        let real_pod = planted(&real, victim_ref.clone());
        let linked = tmp.path().join("linked");
        std::fs::create_dir_all(linked.join("pods")).unwrap();
        std::os::unix::fs::symlink(&real_pod, linked.join("pods").join("default_p_u")).unwrap();
        let err = stop_orphaned_pod(&linked.join("pods").join("default_p_u")).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");

        assert!(victim_ref.alive(), "no signal reached the named process");
        let _ = victim.kill();
        let _ = victim.wait();
    }
}
