//! Policy the engine owns rather than the pod worker: what a start failure of each kind leaves
//! behind (ST3, ST4), how the node fails a pod and with which grace (T10), skiff's own
//! "kill now", the postStart bound (T9), and a probe whose target is gone (P12).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
mod common;

use common::*;
use skiff_engine::{
    Action, EngineConfig, EventType, Input, InstanceId, NodeFailure, PodEngine, PostStart,
    ProbeKind, Signal, StartFailure, StopReason,
};

fn ignores_term() -> Run {
    Run {
        on_term: None,
        ..forever()
    }
}

/// The container's events in order, as "Reason: message".
fn events_of(sim: &Sim, name: &str) -> Vec<String> {
    sim.events
        .iter()
        .filter(|(_, e)| e.container.as_deref() == Some(name))
        .map(|(_, e)| format!("{}: {}", e.reason, e.message))
        .collect()
}

/// Starts the single container of `p` by hand; returns the engine and the first start action.
fn started_by_hand(p: &k8s_openapi::api::core::v1::Pod, cfg: EngineConfig) -> (PodEngine, Action) {
    let mut e = PodEngine::new(p, cfg, T0).unwrap();
    e.plan(T0);
    e.handle(Input::SandboxReady, T0);
    let acts = e.plan(T0);
    let start = acts
        .into_iter()
        .find(|a| matches!(a, Action::StartContainer { .. }))
        .expect("a start");
    (e, start)
}

fn instance_of(a: &Action) -> InstanceId {
    match a {
        Action::StartContainer { instance, .. } => *instance,
        other => panic!("not a start: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Start failures (kuberuntime_container.go startContainer, image_manager.go EnsureImageExists)
// ---------------------------------------------------------------------------------------------

#[test]
fn st3_config_error_leaves_no_record() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let failure = StartFailure::Config {
        message: "secret \"db\" not found".into(),
    };
    let mut sim = Sim::new(&p).script("app", vec![fails(failure)]);
    sim.run_until(5_000);
    let st = sim.status();
    let app = cs(&st, "app");
    assert_eq!(state(app), "waiting:CreateContainerConfigError");
    assert_eq!(waiting_message(app), "secret \"db\" not found");
    assert_eq!(last_state(app), "none");
    assert_eq!(app.restart_count, 0);
    // No Created event: the config failed before CreateContainer.
    assert_eq!(
        events_of(&sim, "app"),
        vec!["Failed: Error: secret \"db\" not found"]
    );
    // Retried after the pod worker's error re-queue every 10 s, as the same attempt (nothing
    // was created, so no back-off doubling and no restart count).
    sim.run_until(25_000);
    assert_eq!(
        sim.times("startfail app#0"),
        vec![0, 10_000, 20_000],
        "{}",
        sim.dump()
    );
}

#[test]
fn st3_create_error_leaves_no_record() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![fails(create_error("bad mount"))]);
    sim.run_until(5_000);
    let st = sim.status();
    let app = cs(&st, "app");
    assert_eq!(state(app), "waiting:CreateContainerError");
    assert_eq!(waiting_message(app), "bad mount");
    assert_eq!(last_state(app), "none");
    assert_eq!(events_of(&sim, "app"), vec!["Failed: Error: bad mount"]);
    sim.run_until(25_000);
    assert_eq!(sim.times("startfail app#0"), vec![0, 10_000, 20_000]);
}

#[test]
fn st3_st4_run_error_leaves_a_start_error_record_and_backs_off() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let fail = fails(run_error(
        "exec: \"nope\": executable file not found in $PATH",
    ));
    let mut e = PodEngine::new(&p, EngineConfig::default(), T0).unwrap();
    e.plan(T0);
    e.handle(Input::SandboxReady, T0);
    let start = e.plan(T0);
    let instance = instance_of(&start[0]);
    e.handle(
        Input::StartFailed {
            name: "app".into(),
            instance,
            failure: fail.start_fail.clone().unwrap(),
        },
        T0,
    );
    let st = e.status(T0);
    let app = cs(&st, "app");
    assert_eq!(state(app), "waiting:RunContainerError");
    assert_eq!(
        waiting_message(app),
        "exec: \"nope\": executable file not found in $PATH"
    );
    assert_eq!(last_state(app), "terminated:StartError:128");
    let events: Vec<(EventType, String)> = e
        .plan(T0)
        .into_iter()
        .filter_map(|a| match a {
            Action::Event(ev) => Some((ev.type_, format!("{}: {}", ev.reason, ev.message))),
            _ => None,
        })
        .collect();
    // The container was created before its process failed to start.
    assert_eq!(
        events[..2],
        [
            (EventType::Normal, "Created: Created container: app".into()),
            (
                EventType::Warning,
                "Failed: Error: exec: \"nope\": executable file not found in $PATH".into()
            ),
        ]
    );

    // The record makes the next attempts subject to the back-off: 0, 0, then 10 s.
    let mut sim = Sim::new(&p).script("app", vec![fail.clone(), fail, forever()]);
    sim.run_until(30_000);
    assert_eq!(sim.times_prefix("startfail app#"), vec![0, 0]);
    assert_eq!(sim.first("start app#2"), Some(10_000), "{}", sim.dump());
    let st = sim.status();
    assert_eq!(last_state(cs(&st, "app")), "terminated:StartError:128");
    assert_eq!(cs(&st, "app").restart_count, 2);
}

/// An image failure the kubelet reports before any container exists: the image manager's
/// event, then `Failed`, waiting `reason` with the message, no record, retried every 10 s.
fn image_failure_leaves_no_record(failure: StartFailure, reason: &str, event: &str) {
    let msg = failure.message().to_string();
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![fails(failure)]);
    sim.run_until(5_000);
    let st = sim.status();
    let app = cs(&st, "app");
    assert_eq!(state(app), format!("waiting:{reason}"));
    assert_eq!(waiting_message(app), msg);
    assert_eq!(last_state(app), "none");
    assert_eq!(
        events_of(&sim, "app"),
        vec![
            format!("{event}: {msg}"),
            format!("Failed: Error: {reason}")
        ]
    );
    sim.run_until(25_000);
    assert_eq!(sim.times("startfail app#0"), vec![0, 10_000, 20_000]);
}

#[test]
fn st3_err_image_never_pull_shows_the_image_managers_event_and_no_record() {
    let message = "Container image \"busybox:1.36\" is not present with pull policy of Never";
    image_failure_leaves_no_record(
        StartFailure::ImageNeverPull {
            message: message.into(),
        },
        "ErrImageNeverPull",
        "ErrImageNeverPull",
    );
}

#[test]
fn st3_invalid_image_name_shows_inspect_failed() {
    let message = "Failed to apply default image tag \"Busybox\": couldn't parse image name \"Busybox\": invalid reference format: repository name must be lowercase";
    image_failure_leaves_no_record(
        StartFailure::InvalidImageName {
            message: message.into(),
        },
        "InvalidImageName",
        "InspectFailed",
    );
}

#[test]
fn start_failure_reasons_are_the_kubelets_error_values() {
    let m = || "m".to_string();
    let cases = [
        (
            StartFailure::Config { message: m() },
            "CreateContainerConfigError",
        ),
        (
            StartFailure::Create { message: m() },
            "CreateContainerError",
        ),
        (StartFailure::Run { message: m() }, "RunContainerError"),
        (
            StartFailure::InvalidImageName { message: m() },
            "InvalidImageName",
        ),
        (
            StartFailure::ImageNeverPull { message: m() },
            "ErrImageNeverPull",
        ),
    ];
    for (f, reason) in cases {
        assert_eq!(f.reason(), reason);
        assert_eq!(f.message(), "m");
    }
}

// ---------------------------------------------------------------------------------------------
// Node failures
// ---------------------------------------------------------------------------------------------

const EVICT_MSG: &str = "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". ";

fn evicted() -> Input {
    Input::FailPod {
        failure: NodeFailure::Evicted {
            message: EVICT_MSG.into(),
        },
    }
}

/// eviction_manager.go evictPod with immediateEvictionGracePeriodSeconds: the pod-level grace
/// is 1 s whatever TGPS says, so a container that ignores SIGTERM gets the 2 s minimum (T2).
#[test]
fn t10_eviction_kills_with_the_immediate_grace_whatever_tgps() {
    let p = pod_with(
        "Always",
        vec![],
        vec![ctr("app")],
        serde_json::json!({"terminationGracePeriodSeconds": 600}),
    );
    let mut sim = Sim::new(&p).script("app", vec![ignores_term()]);
    sim.input_at(5_000, evicted());
    // A second failure changes nothing: the first one counts.
    sim.input_at(
        5_500,
        Input::FailPod {
            failure: NodeFailure::SandboxFailed {
                reason: "FailedMount".into(),
                message: "late".into(),
            },
        },
    );
    sim.run();
    assert_eq!(sim.first("term app"), Some(5_000), "{}", sim.dump());
    assert_eq!(sim.first("kill app"), Some(7_000), "{}", sim.dump());
    let evictions: Vec<_> = sim
        .events
        .iter()
        .filter(|(_, e)| e.reason == "Evicted")
        .collect();
    assert_eq!(evictions.len(), 1);
    assert_eq!(evictions[0].0, 5_000);
    assert_eq!(evictions[0].1.type_, EventType::Warning);
    assert_eq!(evictions[0].1.message, EVICT_MSG);
    assert_eq!(evictions[0].1.container, None);
    assert!(sim.event_messages("FailedMount").is_empty());
    let st = sim.status();
    assert_eq!(phase(&st), "Failed");
    assert_eq!(st.reason.as_deref(), Some("Evicted"));
    assert_eq!(st.message.as_deref(), Some(EVICT_MSG));
}

/// The 1 s pod grace also bounds a preStop hook (T2: the hook waits at most the grace).
#[test]
fn t10_t2_eviction_grace_bounds_the_pre_stop_hook() {
    let p = pod("Always", vec![], vec![pre_stop(ctr("app"))]);
    let hangs = Run {
        pre_stop: (None, true),
        on_term: None,
        ..forever()
    };
    let mut sim = Sim::new(&p).script("app", vec![hangs]);
    sim.input_at(5_000, evicted());
    sim.run();
    assert_eq!(sim.first("prestop app"), Some(5_000));
    assert_eq!(sim.first("term app"), Some(6_000), "{}", sim.dump());
    assert_eq!(sim.first("kill app"), Some(8_000), "{}", sim.dump());
}

/// A sandbox that cannot be built fails the pod with the sandbox's reason and message (skiff's
/// choice; the kubelet retries forever) and its event; nothing is started.
#[test]
fn sandbox_failure_fails_the_pod_with_its_reason() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p);
    sim.sandbox_delay_ms = 1_000_000;
    sim.input_at(
        1_000,
        Input::FailPod {
            failure: NodeFailure::SandboxFailed {
                reason: "FailedMount".into(),
                message: "configmap \"cfg\" not found".into(),
            },
        },
    );
    sim.run_until(2_000_000);
    assert!(sim.engine.is_terminal());
    assert!(!sim.has("start app#0"));
    let st = sim.status();
    assert_eq!(phase(&st), "Failed");
    assert_eq!(st.reason.as_deref(), Some("FailedMount"));
    assert_eq!(st.message.as_deref(), Some("configmap \"cfg\" not found"));
    // T11: the never-started app of a (trivially initialized) terminated pod.
    assert_eq!(
        state(cs(&st, "app")),
        "terminated:ContainerStatusUnknown:137"
    );
    let ev: Vec<_> = sim
        .events
        .iter()
        .filter(|(_, e)| e.reason == "FailedMount")
        .map(|(t, e)| (*t, e.type_, e.message.clone()))
        .collect();
    assert_eq!(
        ev,
        vec![(
            1_000,
            EventType::Warning,
            "configmap \"cfg\" not found".into()
        )]
    );
}

/// No grace override for a sandbox failure: whatever still ran would get TGPS.
#[test]
fn sandbox_failure_uses_no_grace_override() {
    let p = pod_with(
        "Always",
        vec![],
        vec![ctr("app")],
        serde_json::json!({"terminationGracePeriodSeconds": 20}),
    );
    let mut sim = Sim::new(&p).script("app", vec![ignores_term()]);
    sim.input_at(
        1_000,
        Input::FailPod {
            failure: NodeFailure::SandboxFailed {
                reason: "FailedCreatePodSandBox".into(),
                message: "m".into(),
            },
        },
    );
    sim.run();
    assert_eq!(sim.first("term app"), Some(1_000));
    assert_eq!(sim.first("kill app"), Some(21_000), "{}", sim.dump());
}

// ---------------------------------------------------------------------------------------------
// Kill now (skiff's own: the CLI's second Ctrl-C)
// ---------------------------------------------------------------------------------------------

#[test]
fn kill_now_sigkills_every_running_container_at_once() {
    let p = pod(
        "Always",
        vec![pre_stop(sidecar("proxy"))],
        vec![pre_stop(ctr("app")), ctr("web")],
    );
    let hangs = Run {
        pre_stop: (None, true),
        on_term: None,
        ..forever()
    };
    let mut sim = Sim::new(&p)
        .script("proxy", vec![hangs.clone()])
        .script("app", vec![hangs])
        .script("web", vec![ignores_term()]);
    sim.input_at(5_000, Input::KillNow);
    sim.run();
    for name in ["proxy", "app", "web"] {
        assert_eq!(
            sim.times(&format!("kill {name}")),
            vec![5_000],
            "{}",
            sim.dump()
        );
        assert!(!sim.has(&format!("term {name}")), "{}", sim.dump());
        assert!(!sim.has(&format!("prestop {name}")), "{}", sim.dump());
    }
    assert!(sim.engine.is_terminal());
    let st = sim.status();
    assert_eq!(phase(&st), "Failed");
    assert_eq!(state(cs(&st, "app")), "terminated:Error:137");
    assert_eq!(state(cs(&st, "web")), "terminated:Error:137");
    // No restarts: the pod is being deleted.
    assert!(!sim.has("start app#1"));
}

#[test]
fn kill_now_cuts_kills_under_way_short() {
    // app's preStop hangs, web ignores SIGTERM, the sidecar waits its turn (T4).
    let p = pod(
        "Always",
        vec![sidecar("proxy")],
        vec![pre_stop(ctr("app")), ctr("web")],
    );
    let mut sim = Sim::new(&p)
        .script(
            "app",
            vec![Run {
                pre_stop: (None, true),
                on_term: None,
                ..forever()
            }],
        )
        .script("web", vec![ignores_term()])
        .script("proxy", vec![ignores_term()]);
    sim.input_at(1_000, Input::StopRequested { grace: None });
    sim.input_at(3_000, Input::KillNow);
    sim.run();
    assert_eq!(sim.first("prestop app"), Some(1_000));
    assert_eq!(sim.first("term web"), Some(1_000));
    assert!(!sim.has("term proxy"), "{}", sim.dump());
    for name in ["proxy", "app", "web"] {
        assert_eq!(
            sim.times(&format!("kill {name}")),
            vec![3_000],
            "{}",
            sim.dump()
        );
    }
    assert!(sim.engine.is_terminal());
}

#[test]
fn kill_now_kills_an_instance_whose_start_is_reported_later() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let (mut e, start) = started_by_hand(&p, EngineConfig::default());
    let instance = instance_of(&start);
    e.handle(Input::KillNow, at(1));
    assert!(e
        .plan(at(1))
        .iter()
        .all(|a| !matches!(a, Action::Signal { .. })));
    e.handle(
        Input::ContainerStarted {
            name: "app".into(),
            instance,
            at: at(2),
        },
        at(2),
    );
    let signals: Vec<Signal> = e
        .plan(at(2))
        .into_iter()
        .filter_map(|a| match a {
            Action::Signal {
                instance: i,
                signal,
                ..
            } if i == instance => Some(signal),
            _ => None,
        })
        .collect();
    assert_eq!(signals, vec![Signal::Kill]);
    // Nothing more to do: no SIGTERM, no second SIGKILL later.
    assert_eq!(e.wake_at(), None);
}

#[test]
fn kill_now_ends_a_running_post_start_hook() {
    let p = pod("Always", vec![], vec![post_start(ctr("app"))]);
    let mut sim = Sim::new(&p).script(
        "app",
        vec![Run {
            post_start: (1_000_000, true),
            on_term: None,
            ..forever()
        }],
    );
    sim.input_at(2_000, Input::KillNow);
    sim.run();
    assert_eq!(sim.times("kill app"), vec![2_000], "{}", sim.dump());
    assert_eq!(
        sim.event_messages("FailedPostStartHook"),
        vec!["PostStartHook failed".to_string()]
    );
    assert!(sim.engine.is_terminal());
}

// ---------------------------------------------------------------------------------------------
// postStart bound (skiff's own; the kubelet waits for the hook however long it runs)
// ---------------------------------------------------------------------------------------------

#[test]
fn t9_start_action_carries_the_post_start_limit() {
    let p = pod("Always", vec![], vec![post_start(ctr("app"))]);
    let (_, start) = started_by_hand(&p, EngineConfig::default());
    let Action::StartContainer { post_start, .. } = start else {
        unreachable!()
    };
    assert_eq!(
        post_start,
        Some(PostStart {
            timeout_ms: 600_000
        })
    );
    let p = pod("Always", vec![], vec![ctr("app")]);
    let (_, start) = started_by_hand(&p, EngineConfig::default());
    let Action::StartContainer { post_start, .. } = start else {
        unreachable!()
    };
    assert_eq!(post_start, None);
}

#[test]
fn t9_post_start_hook_past_its_deadline_fails_like_a_failed_hook() {
    let p = pod("Always", vec![], vec![post_start(ctr("app"))]);
    let cfg = EngineConfig {
        post_start_timeout_ms: 5_000,
        ..EngineConfig::default()
    };
    let (mut e, start) = started_by_hand(&p, cfg);
    let instance = instance_of(&start);
    let Action::StartContainer { post_start, .. } = &start else {
        unreachable!()
    };
    assert_eq!(*post_start, Some(PostStart { timeout_ms: 5_000 }));
    e.handle(
        Input::ContainerStarted {
            name: "app".into(),
            instance,
            at: T0,
        },
        T0,
    );
    e.plan(T0);
    assert_eq!(e.wake_at(), Some(at(5_000)));
    assert!(e.plan(at(4_999)).is_empty());
    let acts = e.plan(at(5_000));
    let events: Vec<String> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Event(ev) => Some(format!("{}: {}", ev.reason, ev.message)),
            _ => None,
        })
        .collect();
    assert_eq!(
        events,
        vec![
            "FailedPostStartHook: PostStartHook failed",
            "Killing: FailedPostStartHook"
        ]
    );
    assert!(acts.contains(&Action::Signal {
        name: "app".into(),
        instance,
        signal: Signal::Term,
        why: StopReason::PostStartFailed,
    }));
    // The hook's late answer changes nothing.
    e.handle(
        Input::PostStartDone {
            name: "app".into(),
            instance,
            ok: true,
            message: String::new(),
        },
        at(5_100),
    );
    assert!(e.plan(at(5_100)).is_empty());
    e.handle(
        Input::ContainerExited {
            name: "app".into(),
            instance,
            exit_code: 143,
            reason: None,
            message: None,
            at: at(5_200),
        },
        at(5_200),
    );
    let app = cs(&e.status(at(5_200)), "app").clone();
    assert_eq!(state(&app), "waiting:PostStartHookError");
    assert_eq!(
        waiting_message(&app),
        "PostStartHook did not finish within 5s"
    );
}

#[test]
fn t9_post_start_answer_at_the_deadline_is_late() {
    let p = pod("Always", vec![], vec![post_start(ctr("app"))]);
    let cfg = EngineConfig {
        post_start_timeout_ms: 5_000,
        ..EngineConfig::default()
    };
    // Answers exactly at the deadline: too late, the hook has failed.
    let mut sim = Sim::with_config(&p, cfg.clone()).script(
        "app",
        vec![
            Run {
                post_start: (5_000, true),
                ..forever()
            },
            forever(),
        ],
    );
    sim.run_until(20_000);
    assert_eq!(sim.event_messages("FailedPostStartHook").len(), 1);
    assert_eq!(sim.first("term app"), Some(5_000));
    assert_eq!(sim.first("start app#1"), Some(5_000));
    // Just before it: a hook like any other.
    let mut sim = Sim::with_config(&p, cfg).script(
        "app",
        vec![Run {
            post_start: (4_999, true),
            ..forever()
        }],
    );
    sim.run_until(20_000);
    assert!(sim.event_messages("FailedPostStartHook").is_empty());
    assert!(!sim.has("term app"));
    assert_eq!(state(cs(&sim.status(), "app")), "running");
}

// ---------------------------------------------------------------------------------------------
// A probe whose target is gone (P12)
// ---------------------------------------------------------------------------------------------

#[test]
fn p12_probe_of_a_gone_instance_counts_no_failure() {
    let app = with(ctr("app"), "livenessProbe", exec_probe(10, 1));
    let p = pod("Always", vec![], vec![app]);
    let (mut e, start) = started_by_hand(&p, EngineConfig::default());
    let instance = instance_of(&start);
    e.handle(
        Input::ContainerStarted {
            name: "app".into(),
            instance,
            at: T0,
        },
        T0,
    );
    e.plan(T0);
    let t = e.wake_at().expect("a probe tick");
    let acts = e.plan(t);
    assert!(acts.contains(&Action::RunProbe {
        name: "app".into(),
        instance,
        kind: ProbeKind::Liveness,
        timeout_ms: 1000
    }));
    e.handle(
        Input::ProbeTargetGone {
            name: "app".into(),
            instance,
            kind: ProbeKind::Liveness,
        },
        t,
    );
    // failureThreshold 1, yet no Unhealthy event and no kill.
    assert!(e.plan(t).is_empty());
    // The worker is free again: the next tick probes.
    let next = e.wake_at().expect("next tick");
    assert_eq!(next, t.add_millis(10_000));
    assert!(e
        .plan(next)
        .iter()
        .any(|a| matches!(a, Action::RunProbe { .. })));
}
