//! The pod worker on the fake runtime (`fake_runtime`) and a simulated clock (tokio's paused
//! time): kills, node failures, start-failure mapping, sandbox failure, adoption of what a
//! runtime already has of a pod. Each test is named after the rule it proves (SEMANTICS.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_runtime;

use std::path::PathBuf;
use std::time::Duration;

use fake_runtime::{signals, starts, Call, Failure, FakeImages, FakeRuntime, ImageOp, Op};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use skiff_engine::{EngineConfig, Event, EventType, ProbeKind, Time};
use skiff_node::clock::{to_system_time, TokioClock};
use skiff_node::cri::{FoundContainer, FoundState, StopSignal};
use skiff_node::volumes::PodObjects;
use skiff_node::worker::{self, Command, NoImages, Notice, PullQueue, WorkerConfig, WorkerError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const T0: Time = Time::from_secs(1_700_000_000);
const UID: &str = "0b9a7c3e-5f4d-4e21-9c8b-7a6d5e4f3c2b";

/// A prepared pod named `p` with the fixed UID; `spec` is the YAML of its spec, indented by
/// two spaces.
fn pod(spec: &str) -> Pod {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: default, uid: {UID}}}\nspec:\n  runtimeClassName: host\n{spec}"
    );
    let pod: Pod = serde_yaml_ng::from_str(&yaml).unwrap();
    let uid = pod.metadata.uid.clone();
    let mut pod = skiff_model::prepare_pod(pod).unwrap();
    pod.metadata.uid = uid;
    pod
}

const ONE_APP: &str = "  restartPolicy: Always
  terminationGracePeriodSeconds: 30
  containers:
  - {name: app, image: host, command: [sleep, '1000']}
";

struct Run {
    fake: FakeRuntime,
    cmd: mpsc::Sender<Command>,
    notices: mpsc::UnboundedReceiver<Notice>,
    seen: Vec<(Event, Time)>,
    worker: JoinHandle<Result<PodStatus, WorkerError>>,
    pod_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Run {
    /// Starts the worker on a fake runtime that `setup` prepared, with no image step (the
    /// `host` class's `NoImages`). Must run on a runtime with paused time.
    fn start(pod: Pod, setup: impl FnOnce(&FakeRuntime)) -> Run {
        let clock = TokioClock::starting_at(T0);
        let fake = FakeRuntime::new(clock);
        setup(&fake);
        Run::spawn(
            pod,
            fake,
            NoImages,
            PullQueue::serial(),
            PodObjects::default(),
        )
    }

    /// Starts the worker with the fake image service `images`, sharing the node's pull
    /// `queue`, with `objects` beside the pod.
    fn start_with_images(
        pod: Pod,
        images: &FakeImages,
        queue: PullQueue,
        objects: PodObjects,
    ) -> Run {
        let fake = FakeRuntime::new(TokioClock::starting_at(T0));
        Run::spawn(pod, fake, images.clone(), queue, objects)
    }

    fn spawn<I: skiff_node::cri::ImageService>(
        pod: Pod,
        fake: FakeRuntime,
        images: I,
        queue: PullQueue,
        objects: PodObjects,
    ) -> Run {
        let clock = TokioClock::starting_at(T0);
        let dir = tempfile::tempdir().unwrap();
        let cfg = WorkerConfig {
            data_dir: dir.path().to_path_buf(),
            engine: EngineConfig::default(),
            objects,
            keeper: None,
            image_pulls: queue,
            persistent: false,
        };
        let pod_dir = dir.path().join("pods").join(format!("default_p_{UID}"));
        let (cmd, cmd_rx) = mpsc::channel(8);
        let (notice_tx, notices) = mpsc::unbounded_channel();
        let worker = tokio::spawn(worker::run_pod_with(
            fake.clone(),
            fake.clone(),
            images,
            clock,
            pod,
            cfg,
            cmd_rx,
            notice_tx,
        ));
        Run {
            fake,
            cmd,
            notices,
            seen: Vec::new(),
            worker,
            pod_dir,
            _dir: dir,
        }
    }

    /// The next event with `reason` (waiting for it); the events before it are kept.
    async fn event(&mut self, reason: &str) -> (Event, Time) {
        if let Some(i) = self.seen.iter().position(|(e, _)| e.reason == reason) {
            return self.seen.remove(i);
        }
        let wait = async {
            while let Some(n) = self.notices.recv().await {
                if let Notice::Event(e, at) = n {
                    if e.reason == reason {
                        return (e, at);
                    }
                    self.seen.push((e, at));
                }
            }
            panic!("the worker ended without a {reason} event");
        };
        tokio::time::timeout(Duration::from_secs(24 * 3600), wait)
            .await
            .unwrap_or_else(|_| panic!("no {reason} event"))
    }

    /// The pod's status as the worker last recorded it (after its last plan).
    fn status(&self) -> PodStatus {
        skiff_node::store::read_pod_file(&self.pod_dir)
            .unwrap()
            .status
            .unwrap()
    }

    async fn command(&self, c: Command) {
        self.cmd.send(c).await.unwrap();
    }

    /// Waits for the worker to end; returns its status, every event, and every call.
    async fn finish(mut self) -> (PodStatus, Vec<(Event, Time)>, Vec<Call>) {
        let status = tokio::time::timeout(Duration::from_secs(24 * 3600), self.worker)
            .await
            .expect("the worker never ended")
            .unwrap()
            .unwrap();
        while let Ok(n) = self.notices.try_recv() {
            if let Notice::Event(e, at) = n {
                self.seen.push((e, at));
            }
        }
        (status, self.seen, self.fake.calls())
    }
}

fn app(status: &PodStatus) -> &ContainerStatus {
    status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == "app")
        .unwrap()
}

fn reasons(events: &[(Event, Time)]) -> Vec<&str> {
    events.iter().map(|(e, _)| e.reason.as_str()).collect()
}

fn after(t: Time, ms: i64) -> Time {
    t.add_millis(ms)
}

// --- kills --------------------------------------------------------------------------------------

// T1/T2: a stop with grace 5 sends the stop signal at once and SIGKILL when the grace has run
// out; the killed app makes a deleted pod Failed (T12); the container is removed, then the
// sandbox.
#[tokio::test(start_paused = true)]
async fn t1_t2_stop_with_grace_sends_term_then_kill_at_the_deadline() {
    let mut run = Run::start(pod(ONE_APP), |_| {});
    let i = run.fake.started("app", 1).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    run.command(Command::Stop {
        grace: Some(5),
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let (killing, at) = run.event("Killing").await;
    assert_eq!(killing.message, "Stopping container app");
    let (status, _, calls) = run.finish().await;
    assert_eq!(
        signals(&calls, i),
        vec![(at, StopSignal::Term), (after(at, 5000), StopSignal::Kill)]
    );
    assert_eq!(at, after(T0, 7000));
    let t = app(&status)
        .state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("Error")));
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    let tail: Vec<&Op> = calls.iter().rev().take(2).map(|c| &c.op).collect();
    assert_eq!(
        tail,
        vec![
            &Op::StopSandbox { id: 1 },
            &Op::Remove {
                name: "app".into(),
                instance: i
            }
        ]
    );
}

// T12: an app that exits 0 on its stop signal makes the stopped pod Succeeded; no SIGKILL.
#[tokio::test(start_paused = true)]
async fn t12_app_exiting_0_on_term_succeeds_without_a_kill() {
    let run = Run::start(pod(ONE_APP), |f| f.exit_on_term("app", 0));
    let i = run.fake.started("app", 1).await;
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let (status, _, calls) = run.finish().await;
    assert_eq!(signals(&calls, i), vec![(T0, StopSignal::Term)]);
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
}

// skiff's stop-now (the CLI's second Ctrl-C): every container gets SIGKILL at once, before any
// stop signal or grace.
#[tokio::test(start_paused = true)]
async fn kill_now_kills_every_container_at_once() {
    let spec = "  restartPolicy: Always
  terminationGracePeriodSeconds: 30
  containers:
  - {name: a, image: host, command: [sleep, '1000']}
  - {name: b, image: host, command: [sleep, '1000']}
";
    let run = Run::start(pod(spec), |_| {});
    let a = run.fake.started("a", 1).await;
    let b = run.fake.started("b", 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    run.command(Command::KillNow).await;
    let (status, _, calls) = run.finish().await;
    let now = after(T0, 3000);
    for i in [a, b] {
        let s = signals(&calls, i);
        assert!(
            s.iter()
                .any(|&(t, sig)| t == now && sig == StopSignal::Kill),
            "{s:?}"
        );
        assert!(s.iter().all(|&(t, _)| t == now), "{s:?}");
    }
    assert_eq!(status.phase.as_deref(), Some("Failed"));
}

// --- node failures ------------------------------------------------------------------------------

// Eviction (an emptyDir over its sizeLimit): Warning Evicted, the pod Failed with reason
// Evicted and the eviction message, its containers killed without their grace (the 2 s floor
// of T2 is all they get).
#[tokio::test(start_paused = true)]
async fn t1_eviction_fails_the_pod_and_kills_within_the_2s_floor() {
    let mut run = Run::start(pod(ONE_APP), |_| {});
    let i = run.fake.started("app", 1).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let message = "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". ";
    run.fake.evict(message);
    let (evicted, at) = run.event("Evicted").await;
    assert_eq!(evicted.type_, EventType::Warning);
    assert_eq!(evicted.message, message);
    assert_eq!(at, after(T0, 4000));
    let (status, _, calls) = run.finish().await;
    let s = signals(&calls, i);
    assert_eq!(s.first(), Some(&(at, StopSignal::Term)), "{s:?}");
    let (kill_at, _) = s.iter().find(|(_, sig)| *sig == StopSignal::Kill).unwrap();
    assert!(kill_at.millis_since(at) <= 2000, "{s:?}");
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    assert_eq!(status.reason.as_deref(), Some("Evicted"));
    assert_eq!(status.message.as_deref(), Some(message));
}

// S1: a sandbox that cannot be built fails the pod with the kubelet's reason and message
// (skiff run cannot supply what is missing later); nothing is created.
#[tokio::test(start_paused = true)]
async fn s1_sandbox_that_cannot_be_built_fails_the_pod_with_the_kubelets_reason() {
    let message = "MountVolume.SetUp failed for volume \"cfg\" : configmap \"cfg\" not found";
    let mut run = Run::start(pod(ONE_APP), |f| f.fail_sandbox("FailedMount", message));
    let (e, _) = run.event("FailedMount").await;
    assert_eq!((e.type_, e.message.as_str()), (EventType::Warning, message));
    let (status, _, calls) = run.finish().await;
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    assert_eq!(status.reason.as_deref(), Some("FailedMount"));
    assert_eq!(status.message.as_deref(), Some(message));
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c.op, Op::Create { .. } | Op::Start { .. })),
        "{calls:#?}"
    );
}

// --- start failures -----------------------------------------------------------------------------

// ST3: a configuration error creates nothing: waiting CreateContainerConfigError with the
// message, no record (no lastState, restartCount 0), Warning Failed, and the start is tried
// again after the pod worker's 10 s re-queue with the same attempt.
#[tokio::test(start_paused = true)]
async fn st3_config_error_waits_without_a_record_and_is_retried_after_the_requeue() {
    let message = "couldn't find key user in ConfigMap default/cfg";
    let mut run = Run::start(pod(ONE_APP), |f| {
        f.fail_create("app", Failure::Config(message.into()))
    });
    let (failed, at) = run.event("Failed").await;
    assert_eq!(
        (failed.type_, failed.message.as_str()),
        (EventType::Warning, format!("Error: {message}").as_str())
    );
    let st = run.status();
    let cs = app(&st);
    let w = cs.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(w.reason.as_deref(), Some("CreateContainerConfigError"));
    assert_eq!(w.message.as_deref(), Some(message));
    assert!(cs
        .last_state
        .as_ref()
        .is_none_or(|l| l.terminated.is_none()));
    assert_eq!(cs.restart_count, 0);
    assert_eq!(st.phase.as_deref(), Some("Pending"));
    run.fake.started("app", 1).await;
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let (status, _, calls) = run.finish().await;
    let creates: Vec<(Time, u32)> = calls
        .iter()
        .filter_map(|c| match &c.op {
            Op::Create { attempt, .. } => Some((c.at, *attempt)),
            _ => None,
        })
        .collect();
    assert_eq!(creates, vec![(at, 0), (after(at, 10_000), 0)]);
    assert_eq!(app(&status).restart_count, 0);
}

// ST4/ST3/R5: a process that cannot be started leaves a record (terminated StartError, exit
// 128), so its restarts follow the back-off: the first at once, the next after 10 s, waiting
// CrashLoopBackOff meanwhile with the failed record as lastState.
#[tokio::test(start_paused = true)]
async fn st4_run_error_records_start_error_exit_128_and_backs_off() {
    let mut run = Run::start(pod(ONE_APP), |f| {
        f.fail_start("app", Failure::NoSuchFile("/no/such".into()));
        f.fail_start("app", Failure::NoSuchFile("/no/such".into()));
    });
    let (failed, at) = run.event("Failed").await;
    assert_eq!(
        failed.message,
        "Error: exec: \"/no/such\": stat /no/such: no such file or directory"
    );
    run.event("Failed").await;
    let st = run.status();
    let cs = app(&st);
    let w = cs.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(w.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(
        w.message.as_deref(),
        Some(format!("back-off 10s restarting failed container=app pod=p_default({UID})").as_str())
    );
    let t = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(
        (t.exit_code, t.reason.as_deref()),
        (128, Some("StartError"))
    );
    assert_eq!(cs.restart_count, 1);
    run.fake.started("app", 3).await;
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let (status, _, calls) = run.finish().await;
    let s: Vec<(Time, u32)> = starts(&calls, "app").iter().map(|s| (s.0, s.2)).collect();
    assert_eq!(s, vec![(at, 0), (at, 1), (after(at, 10_000), 2)]);
    assert_eq!(app(&status).restart_count, 2);
}

// ST3/ST4/R2: under restartPolicy Never a failed process start is final (its record is the
// container's state: terminated StartError 128, pod Failed), while a configuration error,
// which leaves no record, is tried again (waiting CreateContainerConfigError).
#[tokio::test(start_paused = true)]
async fn st4_start_error_is_a_record_and_a_config_error_is_not() {
    let spec = "  restartPolicy: Never
  containers:
  - {name: app, image: host, command: [sleep, '1000']}
  - {name: cfg, image: host, command: [sleep, '1000']}
";
    let run = Run::start(pod(spec), |f| {
        f.fail_start("app", Failure::NoSuchFile("/no/such".into()));
        for _ in 0..3 {
            f.fail_create("cfg", Failure::Config("secret \"s\" not found".into()));
        }
    });
    run.fake
        .until("three creates of cfg", |c| {
            c.iter()
                .filter(|c| matches!(&c.op, Op::Create { name, .. } if name == "cfg"))
                .count()
                == 3
        })
        .await;
    let st = run.status();
    let t = app(&st).state.as_ref().unwrap().terminated.clone().unwrap();
    assert_eq!(
        (t.exit_code, t.reason.as_deref()),
        (128, Some("StartError"))
    );
    let cfg = st
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == "cfg")
        .unwrap();
    let w = cfg.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(
        (w.reason.as_deref(), w.message.as_deref()),
        (
            Some("CreateContainerConfigError"),
            Some("secret \"s\" not found")
        )
    );
    assert_eq!(cfg.restart_count, 0);
    run.fake.started("cfg", 1).await;
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let (status, _, calls) = run.finish().await;
    assert_eq!(starts(&calls, "app").len(), 1);
    assert_eq!(status.phase.as_deref(), Some("Failed"));
}

// --- probes and hooks ---------------------------------------------------------------------------

// P6: a liveness probe failing failureThreshold times kills the container (Killing with the
// probe's message), which is restarted with the next restart count.
#[tokio::test(start_paused = true)]
async fn p6_liveness_failure_kills_and_restarts_the_container() {
    let spec = "  restartPolicy: Always
  containers:
  - name: app
    image: host
    command: [sleep, '1000']
    livenessProbe: {exec: {command: [check]}, periodSeconds: 10, failureThreshold: 3}
";
    let mut run = Run::start(pod(spec), |f| {
        f.probe_results("app", ProbeKind::Liveness, &[false, false, false]);
        f.exit_on_term("app", 143);
    });
    let first = run.fake.started("app", 1).await;
    let (killing, at) = run.event("Killing").await;
    assert_eq!(
        killing.message,
        "Container app failed liveness probe, will be restarted"
    );
    run.fake.started("app", 2).await;
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let (status, events, calls) = run.finish().await;
    assert_eq!(
        reasons(&events)
            .iter()
            .filter(|r| **r == "Unhealthy")
            .count(),
        3
    );
    assert_eq!(signals(&calls, first), vec![(at, StopSignal::Term)]);
    let s = starts(&calls, "app");
    assert_eq!(s[1].2, 1);
    assert_eq!(app(&status).restart_count, 1);
}

// T9: a failed postStart hook: Warning FailedPostStartHook, the container is killed.
#[tokio::test(start_paused = true)]
async fn t9_post_start_failure_kills_the_container() {
    let spec = "  restartPolicy: Never
  containers:
  - name: app
    image: host
    command: [sleep, '1000']
    lifecycle: {postStart: {exec: {command: [setup]}}}
";
    let mut run = Run::start(pod(spec), |f| {
        f.hook_result("app", Err("command 'setup' exited with 1: ".into()));
        f.exit_on_term("app", 143);
    });
    let i = run.fake.started("app", 1).await;
    let (e, at) = run.event("FailedPostStartHook").await;
    assert_eq!(e.type_, EventType::Warning);
    let (status, _, calls) = run.finish().await;
    assert!(calls
        .iter()
        .any(|c| c.op == Op::Hook { name: "app".into() }));
    assert_eq!(signals(&calls, i), vec![(at, StopSignal::Term)]);
    assert_eq!(status.phase.as_deref(), Some("Failed"));
}

// --- lost containers and adoption ---------------------------------------------------------------

// R3/ST4: a container whose monitor was killed is in an unknown state: the engine kills it,
// the worker answers with ContainerStatusUnknown 137, and it is started again.
#[tokio::test(start_paused = true)]
async fn r3_lost_container_is_killed_then_restarted() {
    let run = Run::start(pod(ONE_APP), |_| {});
    let first = run.fake.started("app", 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    run.fake.lose("app");
    run.fake.started("app", 2).await;
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let (status, _, calls) = run.finish().await;
    let s = signals(&calls, first);
    assert!(!s.is_empty(), "the lost instance was not killed");
    let cs = app(&status);
    assert_eq!(cs.restart_count, 1);
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(
        (last.exit_code, last.reason.as_deref()),
        (137, Some("ContainerStatusUnknown"))
    );
}

fn found(instance: u64, attempt: u32, started_s: i64, state: FoundState) -> FoundContainer {
    FoundContainer {
        name: "app".into(),
        instance,
        attempt,
        runtime_id: format!("old-{instance}"),
        started_at: to_system_time(T0.add_secs(started_s)),
        state,
    }
}

fn exited(code: i32, at_s: i64) -> FoundState {
    FoundState::Exited {
        exit_code: code,
        finished_at: to_system_time(T0.add_secs(at_s)),
    }
}

// R3/S7: an instance found in an unknown state is killed first, then started again; restart
// counts continue from the records (two before it: the new one is attempt 2).
#[tokio::test(start_paused = true)]
async fn r3_unknown_instance_is_killed_then_restarted() {
    let run = Run::start(pod(ONE_APP), |f| {
        f.found(
            true,
            vec![
                found(1, 0, -100, exited(1, -90)),
                found(2, 1, -80, FoundState::Unknown),
            ],
        )
    });
    let new = run.fake.started("app", 1).await;
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let (status, events, calls) = run.finish().await;
    let killed = calls
        .iter()
        .position(|c| matches!(c.op, Op::Signal { instance: 2, .. }))
        .expect("the unknown instance was not killed");
    let started = calls
        .iter()
        .position(|c| matches!(c.op, Op::Start { .. }))
        .unwrap();
    assert!(killed < started, "{calls:#?}");
    assert!(new > 2, "instance numbers continue: {new}");
    assert_eq!(starts(&calls, "app")[0].2, 2);
    assert!(
        !calls.iter().any(|c| c.op == Op::RunSandbox),
        "the adopted sandbox is used"
    );
    assert_eq!(app(&status).restart_count, 2);
    // The replayed starts are history: one Started event, the new instance's.
    assert_eq!(
        reasons(&events).iter().filter(|r| **r == "Started").count(),
        1
    );
}

// T1: a stop sent before the worker ran (the daemon stopping an orphan it has just handed
// over) is taken before the first plan: an adopted pod whose app is due for a restart starts
// nothing (without this the restart would come first, then be killed).
#[tokio::test(start_paused = true)]
async fn t1_a_stop_queued_before_the_worker_runs_starts_nothing() {
    let run = Run::start(pod(ONE_APP), |f| {
        f.found(true, vec![found(1, 0, -100, exited(1, -90))])
    });
    // The worker task has not run yet (current-thread runtime, no await so far).
    run.cmd
        .try_send(Command::Stop {
            grace: Some(0),
            why: skiff_timeline::Why::Deletion,
        })
        .unwrap();
    let (_, _, calls) = run.finish().await;
    assert!(starts(&calls, "app").is_empty(), "{calls:#?}");
}

// R8: a running instance found is watched, not started again; when it exits, it is restarted
// with the next restart count (three records before: attempt 3).
#[tokio::test(start_paused = true)]
async fn r8_adopted_running_instance_is_watched_and_restart_counts_continue() {
    let run = Run::start(pod(ONE_APP), |f| {
        f.found(
            true,
            vec![
                found(1, 0, -300, exited(1, -290)),
                found(2, 1, -280, exited(1, -270)),
                found(3, 2, -260, FoundState::Running),
            ],
        )
    });
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(starts(&run.fake.calls(), "app").is_empty());
    let st = run.status();
    assert_eq!(app(&st).restart_count, 2);
    assert!(app(&st).state.as_ref().unwrap().running.is_some());
    assert_eq!(st.phase.as_deref(), Some("Running"));
    run.fake.exit("app", 2);
    let new = run.fake.started("app", 1).await;
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let (status, _, calls) = run.finish().await;
    assert_eq!(new, 4);
    assert_eq!(starts(&calls, "app")[0].2, 3);
    let cs = app(&status);
    assert_eq!(cs.restart_count, 3);
    // The adopted instance is removed like the others.
    assert!(calls.iter().any(|c| c.op
        == Op::Remove {
            name: "app".into(),
            instance: 3
        }));
}

// ST1/R2: exited instances found count: a Never pod whose app exited 0 is Succeeded without
// anything started.
#[tokio::test(start_paused = true)]
async fn r2_adopted_exited_instance_finishes_the_pod_without_a_start() {
    let spec = "  restartPolicy: Never
  containers:
  - {name: app, image: host, command: [sleep, '1000']}
";
    let run = Run::start(pod(spec), |f| {
        f.found(true, vec![found(1, 0, -10, exited(0, -5))])
    });
    let (status, _, calls) = run.finish().await;
    assert!(starts(&calls, "app").is_empty(), "{calls:#?}");
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    let t = app(&status)
        .state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    assert_eq!(
        t.finished_at.unwrap().0.as_second(),
        T0.add_secs(-5).millis() / 1000
    );
}

// S9: instances found without their sandbox (it is gone): everything is killed, a new
// sandbox is made, and the app starts over with the next restart count.
#[tokio::test(start_paused = true)]
async fn s9_instances_found_without_their_sandbox_are_killed_and_the_pod_starts_over() {
    let run = Run::start(pod(ONE_APP), |f| {
        f.found(false, vec![found(1, 0, -10, FoundState::Running)]);
        f.exit_on_term("app", 143);
    });
    run.fake.started("app", 1).await;
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let (status, _, calls) = run.finish().await;
    let pos = |pred: &dyn Fn(&Op) -> bool| calls.iter().position(|c| pred(&c.op)).unwrap();
    let killed = pos(&|op| matches!(op, Op::Signal { instance: 1, .. }));
    let sandbox = pos(&|op| *op == Op::RunSandbox);
    let started = pos(&|op| matches!(op, Op::Start { .. }));
    assert!(killed < sandbox && sandbox < started, "{calls:#?}");
    assert_eq!(starts(&calls, "app")[0].2, 1);
    assert_eq!(app(&status).restart_count, 1);
}

// --- images (pkg/kubelet/images/image_manager.go, puller.go; SEMANTICS ST3, D2) ----------------

const IMAGE_APP: &str = "  restartPolicy: Always
  terminationGracePeriodSeconds: 30
  containers:
  - {name: app, image: 'busybox:1.36', command: [sleep, '1000']}
";

fn events_of<'a>(events: &'a [(Event, Time)], reason: &str) -> Vec<&'a (Event, Time)> {
    events.iter().filter(|(e, _)| e.reason == reason).collect()
}

fn image_ops(images: &FakeImages) -> Vec<(Time, ImageOp)> {
    images.calls()
}

// ST3: an absent image (IfNotPresent) is pulled before the container is created: Pulling,
// then Pulled with the kubelet's text, then Created/Started; the status shows the repo digest
// as imageID and the normalized name as image.
#[tokio::test(start_paused = true)]
async fn st3_absent_image_is_pulled_then_started_with_its_image_id() {
    let images = FakeImages::new(TokioClock::starting_at(T0));
    images.pull("busybox:1.36", 1_200, Ok(4_269_694));
    let mut run = Run::start_with_images(
        pod(IMAGE_APP),
        &images,
        PullQueue::serial(),
        PodObjects::default(),
    );
    let (pulling, at) = run.event("Pulling").await;
    assert_eq!(pulling.message, "Pulling image \"busybox:1.36\"");
    assert_eq!(at, T0);
    let (pulled, at) = run.event("Pulled").await;
    assert_eq!(
        pulled.message,
        "Successfully pulled image \"busybox:1.36\" in 1.2s (1.2s including waiting). Image size: 4269694 bytes."
    );
    assert_eq!(at, after(T0, 1_200));
    let i = run.fake.started("app", 1).await;
    let st = run.status();
    let cs = app(&st);
    assert!(cs.state.as_ref().unwrap().running.is_some());
    assert_eq!(
        cs.image_id,
        FakeImages::info("busybox:1.36").repo_digest.unwrap()
    );
    assert_eq!(cs.image, "docker.io/library/busybox:1.36");
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let (_, events, calls) = run.finish().await;
    assert_eq!(starts(&calls, "app")[0].0, after(T0, 1_200));
    assert!(!signals(&calls, i).is_empty());
    let order: Vec<&str> = reasons(&events)
        .into_iter()
        .filter(|r| ["Pulling", "Pulled", "Created", "Started"].contains(r))
        .collect();
    // (Pulling and Pulled were taken by `event` above; the rest keep their order.)
    assert_eq!(order, vec!["Created", "Started"]);
    // The lookup, then the pull.
    let ops: Vec<ImageOp> = image_ops(&images).into_iter().map(|(_, o)| o).collect();
    assert_eq!(ops[0], ImageOp::Status("busybox:1.36".into()));
    assert!(matches!(&ops[1], ImageOp::PullBegin { image, .. } if image == "busybox:1.36"));
}

// ST3: a failed pull: Warning Failed with the image service's error, waiting ErrImagePull;
// the 10 s re-queue pulls again (the back-off of 10 s has just ended); after the second
// failure the re-queue finds the back-off (20 s) running: Normal BackOff, waiting
// ImagePullBackOff, no pull; the next pull when it ends.
#[tokio::test(start_paused = true)]
async fn st3_failed_pulls_err_image_pull_then_image_pull_backoff() {
    let images = FakeImages::new(TokioClock::starting_at(T0));
    let err = "failed to resolve reference \"docker.io/library/busybox:1.36\": not found";
    for _ in 0..5 {
        images.pull("busybox:1.36", 0, Err(err.into()));
    }
    let mut run = Run::start_with_images(
        pod(IMAGE_APP),
        &images,
        PullQueue::serial(),
        PodObjects::default(),
    );
    let (failed, _) = run.event("Failed").await;
    assert_eq!(
        failed.message,
        format!("Failed to pull image \"busybox:1.36\": {err}")
    );
    let (failed, _) = run.event("Failed").await;
    assert_eq!(failed.message, "Error: ErrImagePull");
    let st = run.status();
    let w = app(&st).state.as_ref().unwrap().waiting.clone().unwrap();
    assert_eq!(w.reason.as_deref(), Some("ErrImagePull"));
    assert_eq!(w.message.as_deref(), Some(err));
    let (backoff, at) = run.event("BackOff").await;
    assert_eq!(backoff.message, "Back-off pulling image \"busybox:1.36\"");
    assert_eq!(at, after(T0, 20_000));
    let st = run.status();
    let w = app(&st).state.as_ref().unwrap().waiting.clone().unwrap();
    assert_eq!(w.reason.as_deref(), Some("ImagePullBackOff"));
    assert_eq!(
        w.message.as_deref(),
        Some(format!("Back-off pulling image \"busybox:1.36\": ErrImagePull: {err}").as_str())
    );
    tokio::time::sleep(Duration::from_secs(15)).await;
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let (status, _, calls) = run.finish().await;
    let pulls: Vec<Time> = image_ops(&images)
        .into_iter()
        .filter(|(_, o)| matches!(o, ImageOp::PullBegin { .. }))
        .map(|(t, _)| t)
        .collect();
    assert_eq!(pulls, vec![T0, after(T0, 10_000), after(T0, 30_000)]);
    assert!(starts(&calls, "app").is_empty());
    assert!(!calls.iter().any(|c| matches!(c.op, Op::Create { .. })));
    assert_eq!(app(&status).restart_count, 0);
}

// D2 / ST3: Never with the image absent: ErrImageNeverPull with the kubelet's message, no
// pull; IfNotPresent with the image present: Pulled "already present", no pull.
#[tokio::test(start_paused = true)]
async fn d2_never_absent_fails_and_if_not_present_present_pulls_nothing() {
    let spec = "  restartPolicy: Always
  containers:
  - {name: app, image: 'busybox:1.36', imagePullPolicy: Never, command: [sleep, '1000']}
  - {name: b, image: 'alpine:3', command: [sleep, '1000']}
";
    let images = FakeImages::new(TokioClock::starting_at(T0));
    images.present("alpine:3");
    let mut run = Run::start_with_images(
        pod(spec),
        &images,
        PullQueue::serial(),
        PodObjects::default(),
    );
    let (e, _) = run.event("ErrImageNeverPull").await;
    assert_eq!(
        (e.type_, e.message.as_str()),
        (
            EventType::Warning,
            "Container image \"busybox:1.36\" is not present with pull policy of Never"
        )
    );
    let (e, _) = run.event("Pulled").await;
    assert_eq!(
        e.message,
        "Container image \"alpine:3\" already present on machine and can be accessed by the pod"
    );
    run.fake.started("b", 1).await;
    let st = run.status();
    let w = app(&st).state.as_ref().unwrap().waiting.clone().unwrap();
    assert_eq!(w.reason.as_deref(), Some("ErrImageNeverPull"));
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let (_, events, calls) = run.finish().await;
    assert!(!image_ops(&images)
        .iter()
        .any(|(_, o)| matches!(o, ImageOp::PullBegin { .. })));
    assert!(events_of(&events, "Pulling").is_empty());
    assert!(starts(&calls, "app").is_empty());
}

// InvalidImageName: the image service cannot parse the reference.
#[tokio::test(start_paused = true)]
async fn st3_invalid_image_name_from_the_image_service() {
    let images = FakeImages::new(TokioClock::starting_at(T0));
    images.invalid("busybox:1.36", "invalid reference format");
    let mut run = Run::start_with_images(
        pod(IMAGE_APP),
        &images,
        PullQueue::serial(),
        PodObjects::default(),
    );
    let (e, _) = run.event("InspectFailed").await;
    assert_eq!(
        e.message,
        "Failed to apply default image tag \"busybox:1.36\": invalid reference format"
    );
    let w = app(&run.status())
        .state
        .as_ref()
        .unwrap()
        .waiting
        .clone()
        .unwrap();
    assert_eq!(w.reason.as_deref(), Some("InvalidImageName"));
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    run.finish().await;
}

// The pull runs in a task: while one container's image is pulled (60 s), the pod's other
// work goes on — the running container's probes run and its exit is reported — and a stop
// cancels the pull instead of waiting for it.
#[tokio::test(start_paused = true)]
async fn slow_pull_does_not_hold_the_pods_other_work() {
    let spec = "  restartPolicy: Never
  terminationGracePeriodSeconds: 30
  containers:
  - name: a
    image: 'alpine:3'
    command: [sleep, '1000']
    readinessProbe: {exec: {command: ['true']}, periodSeconds: 5}
  - {name: b, image: 'busybox:1.36', command: [sleep, '1000']}
";
    let images = FakeImages::new(TokioClock::starting_at(T0));
    images.present("alpine:3");
    images.pull("busybox:1.36", 60_000, Ok(1));
    let mut run = Run::start_with_images(
        pod(spec),
        &images,
        PullQueue::serial(),
        PodObjects::default(),
    );
    run.fake.started("a", 1).await;
    run.event("Pulling").await;
    // Probes of `a` go on during the pull.
    let calls = run
        .fake
        .until("three probes of a", |c| {
            c.iter()
                .filter(|c| matches!(&c.op, Op::Probe { name, .. } if name == "a"))
                .count()
                >= 3
        })
        .await;
    let last_probe = calls
        .iter()
        .rev()
        .find(|c| matches!(c.op, Op::Probe { .. }));
    assert!(last_probe.unwrap().at < after(T0, 60_000));
    // … and so does an exit.
    tokio::time::sleep(Duration::from_secs(20)).await;
    run.fake.exit("a", 3);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let st = run.status();
    let a = st
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == "a")
        .unwrap();
    let t = a.state.as_ref().unwrap().terminated.clone().unwrap();
    assert_eq!(t.exit_code, 3);
    // A stop cancels the pull: the pod ends long before the pull would have.
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let (status, _, calls) = run.finish().await;
    assert!(starts(&calls, "b").is_empty());
    let end = calls.last().unwrap().at;
    assert!(end < after(T0, 60_000), "{end:?}");
    assert!(!image_ops(&images)
        .iter()
        .any(|(_, o)| matches!(o, ImageOp::PullEnd { .. })));
    assert_eq!(status.phase.as_deref(), Some("Failed"));
}

// puller.go serialImagePuller: the node's pulls take turns (serializeImagePulls=true); the
// second pod's pull waits for the first, and its Pulled event counts the wait.
#[tokio::test(start_paused = true)]
async fn pulls_of_the_node_take_turns() {
    let images = FakeImages::new(TokioClock::starting_at(T0));
    images.pull("busybox:1.36", 10_000, Ok(5));
    images.pull("alpine:3", 4_000, Ok(7));
    let queue = PullQueue::serial();
    let other = "  restartPolicy: Always
  containers:
  - {name: app, image: 'alpine:3', command: [sleep, '1000']}
";
    let mut first = Run::start_with_images(
        pod(IMAGE_APP),
        &images,
        queue.clone(),
        PodObjects::default(),
    );
    let mut second = Run::start_with_images(pod(other), &images, queue, PodObjects::default());
    let (p1, at1) = first.event("Pulled").await;
    let (p2, at2) = second.event("Pulled").await;
    assert_eq!(
        p1.message,
        "Successfully pulled image \"busybox:1.36\" in 10s (10s including waiting). Image size: 5 bytes."
    );
    assert_eq!(at1, after(T0, 10_000));
    assert_eq!(
        p2.message,
        "Successfully pulled image \"alpine:3\" in 4s (14s including waiting). Image size: 7 bytes."
    );
    assert_eq!(at2, after(T0, 14_000));
    for r in [&first, &second] {
        r.command(Command::Stop {
            grace: None,
            why: skiff_timeline::Why::Deletion,
        })
        .await;
    }
    first.finish().await;
    second.finish().await;
    // With a parallel queue both would have begun at T0; here the second began at 10 s.
    let begins: Vec<(Time, String)> = image_ops(&images)
        .into_iter()
        .filter_map(|(t, o)| match o {
            ImageOp::PullBegin { image, .. } => Some((t, image)),
            _ => None,
        })
        .collect();
    assert_eq!(
        begins,
        vec![
            (T0, "busybox:1.36".to_string()),
            (after(T0, 10_000), "alpine:3".to_string())
        ]
    );
}

// kubelet.go getPullSecretsForPod: the pod's imagePullSecrets reach the pull in spec order;
// a missing one is a Warning (FailedToRetrieveImagePullSecret), not a failure.
#[tokio::test(start_paused = true)]
async fn pull_secrets_in_spec_order_and_missing_ones_warned() {
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::ByteString;
    use skiff_node::cri::{PullSecret, PullSecrets};
    let spec = "  restartPolicy: Always
  imagePullSecrets: [{name: second}, {name: gone}, {name: first}]
  containers:
  - {name: app, image: 'busybox:1.36', command: [sleep, '1000']}
";
    let secret = |t: &str, k: &str, v: &str| Secret {
        type_: Some(t.into()),
        data: Some([(k.to_string(), ByteString(v.as_bytes().to_vec()))].into()),
        ..Default::default()
    };
    let mut objects = PodObjects::default();
    objects.secrets.insert(
        "first".into(),
        secret("kubernetes.io/dockercfg", ".dockercfg", "{\"a\":{}}"),
    );
    objects.secrets.insert(
        "second".into(),
        secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            "{\"auths\":{}}",
        ),
    );
    let images = FakeImages::new(TokioClock::starting_at(T0));
    let mut run = Run::start_with_images(pod(spec), &images, PullQueue::serial(), objects);
    let (w, _) = run.event("FailedToRetrieveImagePullSecret").await;
    assert_eq!(w.type_, EventType::Warning);
    assert_eq!(w.container, None);
    assert_eq!(
        w.message,
        "Unable to retrieve some image pull secrets (gone); attempting to pull the image may not succeed."
    );
    run.fake.started("app", 1).await;
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    run.finish().await;
    let secrets = image_ops(&images)
        .into_iter()
        .find_map(|(_, o)| match o {
            ImageOp::PullBegin { secrets, .. } => Some(secrets),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        secrets,
        PullSecrets(vec![
            PullSecret::DockerConfigJson(b"{\"auths\":{}}".to_vec()),
            PullSecret::DockerCfg(b"{\"a\":{}}".to_vec()),
        ])
    );
}

// The host class has no image step: no lookup events, the spec's image, no imageID.
#[tokio::test(start_paused = true)]
async fn host_pods_have_no_image_step() {
    let run = Run::start(pod(IMAGE_APP), |_| {});
    run.fake.started("app", 1).await;
    let st = run.status();
    assert_eq!(app(&st).image, "busybox:1.36");
    assert_eq!(app(&st).image_id, "");
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let (_, events, _) = run.finish().await;
    assert!(events_of(&events, "Pulled").is_empty());
    assert!(events_of(&events, "Pulling").is_empty());
}

// --- pod updates (Command::Update) ------------------------------------------------------------------

const SIDECAR_APP: &str = "  restartPolicy: Always
  terminationGracePeriodSeconds: 30
  initContainers:
  - {name: side, image: host, restartPolicy: Always, command: [sleep, '1000']}
  containers:
  - {name: app, image: host, command: [sleep, '1000']}
";

// S10: an update changing the sidecar's image restarts that sidecar alone (killed, started
// again with restartCount 1 and the new image); the app is never signalled. The new spec is
// what the pod's record shows.
#[tokio::test(start_paused = true)]
async fn s10_an_image_update_restarts_only_that_container() {
    let run = Run::start(pod(SIDECAR_APP), |f| f.exit_on_term("side", 0));
    let side = run.fake.started("side", 1).await;
    let app_i = run.fake.started("app", 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut updated = pod(SIDECAR_APP);
    updated
        .spec
        .as_mut()
        .unwrap()
        .init_containers
        .as_mut()
        .unwrap()[0]
        .image = Some("host:v2".into());
    run.command(Command::Update(Box::new(updated))).await;
    let side2 = run.fake.started("side", 2).await;
    assert_ne!(side2, side);
    let calls = run.fake.calls();
    assert_eq!(
        signals(&calls, side).first().map(|s| s.1),
        Some(StopSignal::Term)
    );
    assert!(signals(&calls, app_i).is_empty(), "the app is left alone");
    assert_eq!(starts(&calls, "app").len(), 1);
    assert_eq!(starts(&calls, "side")[1].2, 1, "restartCount 1");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let st = run.status();
    let side_status = st
        .init_container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == "side")
        .unwrap();
    assert_eq!(side_status.image, "host:v2");
    assert_eq!(side_status.restart_count, 1);
    assert_eq!(app(&st).restart_count, 0);
    let recorded = skiff_node::store::read_pod_file(&run.pod_dir).unwrap();
    assert_eq!(
        recorded.spec.unwrap().init_containers.unwrap()[0]
            .image
            .as_deref(),
        Some("host:v2")
    );
    run.command(Command::Stop {
        grace: None,
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let (_, events, _) = run.finish().await;
    assert!(!reasons(&events).contains(&"UpdateRejected"));
}

// An update the API server would refuse (a command change) changes nothing: a Warning
// `UpdateRejected` event, no signal, no start.
#[tokio::test(start_paused = true)]
async fn a_refused_update_changes_nothing_and_says_so() {
    let mut run = Run::start(pod(SIDECAR_APP), |_| {});
    let side = run.fake.started("side", 1).await;
    let app_i = run.fake.started("app", 1).await;
    let mut updated = pod(SIDECAR_APP);
    updated.spec.as_mut().unwrap().containers[0].command = Some(vec!["sleep".into(), "5".into()]);
    run.command(Command::Update(Box::new(updated))).await;
    let (e, _) = run.event("UpdateRejected").await;
    assert_eq!(e.type_, EventType::Warning);
    assert!(
        e.message.starts_with("pod update refused: "),
        "{}",
        e.message
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let calls = run.fake.calls();
    assert!(signals(&calls, side).is_empty() && signals(&calls, app_i).is_empty());
    assert_eq!(starts(&calls, "app").len(), 1);
    assert_eq!(starts(&calls, "side").len(), 1);
    run.command(Command::Stop {
        grace: Some(0),
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    run.finish().await;
}

// Every status change is a `Notice::Status`, and the same status is never sent twice in a row.
#[tokio::test(start_paused = true)]
async fn status_notices_follow_every_change_once() {
    let mut run = Run::start(pod(ONE_APP), |_| {});
    run.fake.started("app", 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    run.command(Command::Stop {
        grace: Some(0),
        why: skiff_timeline::Why::Deletion,
    })
    .await;
    let mut statuses = Vec::new();
    let status = loop {
        match run.notices.recv().await {
            Some(Notice::Status(s)) => statuses.push(*s),
            Some(_) => {}
            None => break run.worker.await.unwrap().unwrap(),
        }
    };
    assert!(statuses.len() >= 2, "{statuses:?}");
    assert!(statuses.windows(2).all(|w| w[0] != w[1]), "no repeats");
    assert!(
        statuses.iter().any(app_running),
        "the running app was reported"
    );
    assert_eq!(
        statuses.last().unwrap().phase,
        status.phase,
        "the last notice is the final status"
    );
}

fn app_running(s: &PodStatus) -> bool {
    s.container_statuses
        .iter()
        .flatten()
        .any(|c| c.name == "app" && c.state.as_ref().is_some_and(|st| st.running.is_some()))
}
