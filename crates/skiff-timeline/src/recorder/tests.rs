//! The recorder on the real engine (scenario player) and on hand-fed inputs: what each record
//! holds. Rule IDs name the engine rule whose outcome the record must show.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use skiff_engine::{
    Action, Input, InstanceId, PostStart, ProbeKind as EngineProbe, Signal, StartFailure,
    StopReason, Time,
};

use super::{Recorder, RecorderLimits};
use crate::model::*;
use crate::scenario::{library, Run, Scenario, EPOCH};

fn row<'a>(tl: &'a Timeline, container: &str, attempt: i32) -> &'a Instance {
    tl.instances
        .iter()
        .find(|i| i.container == container && i.attempt == attempt)
        .unwrap_or_else(|| panic!("no {container}#{attempt} in {tl:#?}"))
}

#[test]
fn s1_init_chain_and_sidecar_startup_gate_the_app() {
    let tl = library::init_sidecar_app();
    assert!(tl.finished);
    let kinds: Vec<_> = tl
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("migrate", ContainerKind::Init),
            ("proxy", ContainerKind::Sidecar),
            ("app", ContainerKind::App)
        ]
    );
    let migrate = row(&tl, "migrate", 0);
    let proxy = row(&tl, "proxy", 0);
    let app = row(&tl, "app", 0);
    // proxy waited for migrate's completion, app for proxy's startup probe.
    let g = proxy.gate.as_ref().unwrap();
    assert_eq!(
        (g.after.as_str(), g.milestone),
        ("migrate", Milestone::Completed)
    );
    assert_eq!(g.at_ms, migrate.exit.as_ref().unwrap().at_ms);
    let g = app.gate.as_ref().unwrap();
    assert_eq!(
        (g.after.as_str(), g.milestone),
        ("proxy", Milestone::StartupPassed)
    );
    assert_eq!(Some(g.at_ms), proxy.startup_passed_ms);
    assert!(app.requested_ms >= g.at_ms);
    assert_eq!(
        g.describe("app"),
        "app started after sidecar `proxy` passed its startup probe"
    );
    // The failed startup runs are kept one by one, the pass after them separately.
    let startup: Vec<_> = proxy
        .probes
        .iter()
        .filter(|p| p.kind == ProbeKind::Startup)
        .map(|p| (p.ok, p.runs))
        .collect();
    assert_eq!(startup, vec![(false, 1), (false, 1), (true, 1)]);
    assert!(proxy
        .probes
        .iter()
        .all(|p| p.min_took_ms == 3 || p.kind != ProbeKind::Startup));
    // T6: the app completed, the sidecar was stopped for the pod's completion.
    assert_eq!(app.exit.as_ref().unwrap().code, 0);
    assert_eq!(
        proxy
            .signals
            .iter()
            .map(|s| (s.signal, s.why))
            .collect::<Vec<_>>(),
        vec![(SignalName::Term, Why::Completion)]
    );
    assert!(tl.pod_marks.iter().any(|m| m.what
        == PodMarkKind::Phase {
            phase: "Succeeded".into()
        }));
}

#[test]
fn r5_crash_loop_rows_carry_their_back_off() {
    let tl = library::sidecar_crash_loop();
    let rows: Vec<_> = tl
        .instances
        .iter()
        .filter(|i| i.container == "logship")
        .collect();
    assert!(rows.len() >= 4, "{rows:#?}");
    // The first restart is immediate; the next back-offs double from 10 s.
    let waits: Vec<i64> = rows
        .iter()
        .filter_map(|i| i.backoff.map(|b| b.end_ms.unwrap() - b.begin_ms))
        .collect();
    assert_eq!(&waits[..3], &[10_000, 20_000, 40_000], "{waits:?}");
    for (n, r) in rows.iter().enumerate() {
        assert_eq!(r.attempt, n as i32);
        assert_eq!(r.exit.as_ref().unwrap().code, 1);
    }
    // Only the first instance has a gate; restarts are gated by their back-off.
    assert!(rows.iter().skip(1).all(|r| r.gate.is_none()));
    // The deletion's SIGTERM says so.
    let app = row(&tl, "app", 0);
    assert_eq!(app.signals[0].why, Why::Deletion);
}

#[test]
fn t4_job_completion_stops_sidecars_in_reverse_order_after_pre_stop() {
    let tl = library::job_completion();
    let job = row(&tl, "job", 0);
    let proxy = row(&tl, "proxy", 0);
    let vault = row(&tl, "vault", 0);
    let done = job.exit.as_ref().unwrap().at_ms;
    let pre = proxy.pre_stop.as_ref().unwrap();
    assert_eq!(pre.begin_ms, done);
    assert_eq!(pre.end_ms, Some(done + 1500));
    assert_eq!(pre.ok, Some(true));
    let term = |i: &Instance| i.signals.first().map(|s| (s.at_ms, s.why)).unwrap();
    // proxy (declared last) gets SIGTERM after its preStop; vault only after proxy exited.
    assert_eq!(term(proxy), (done + 1500, Why::Completion));
    assert!(term(vault).0 >= proxy.exit.as_ref().unwrap().at_ms);
    assert_eq!(term(vault).1, Why::Completion);
}

#[test]
fn p4_liveness_kill_is_recorded_with_its_failures_and_sigkill() {
    let tl = library::liveness_kill();
    let first = row(&tl, "api", 0);
    let fails: Vec<_> = first
        .probes
        .iter()
        .filter(|p| p.kind == ProbeKind::Liveness && !p.ok)
        .collect();
    assert_eq!(fails.len(), 3, "{:#?}", first.probes);
    assert!(fails
        .iter()
        .all(|p| p.output.as_deref() == Some("liveness probe of api failed")));
    // The passes before them merge into one span.
    let passes = &first.probes[0];
    assert!(passes.ok && passes.runs >= 4, "{passes:?}");
    let sigs: Vec<_> = first.signals.iter().map(|s| (s.signal, s.why)).collect();
    // The instance ignores SIGTERM: SIGKILL after the 5 s grace, both for liveness.
    assert_eq!(
        sigs,
        vec![
            (SignalName::Term, Why::Liveness),
            (SignalName::Kill, Why::Liveness)
        ]
    );
    assert_eq!(first.signals[1].at_ms - first.signals[0].at_ms, 5_000);
    assert_eq!(first.exit.as_ref().unwrap().code, 137);
    assert_eq!(row(&tl, "api", 1).attempt, 1);
}

#[test]
fn t1_timeout_stop_is_marked_and_each_signal_says_timeout() {
    let tl = library::timeout_stop();
    assert!(tl.pod_marks.iter().any(|m| m.at_ms == 10_000
        && m.what
            == PodMarkKind::StopRequested {
                why: Why::Timeout,
                grace_s: Some(3)
            }));
    let app = row(&tl, "app", 0);
    let sigs: Vec<_> = app
        .signals
        .iter()
        .map(|s| (s.at_ms, s.signal, s.why))
        .collect();
    assert_eq!(
        sigs,
        vec![
            (10_000, SignalName::Term, Why::Timeout),
            (13_000, SignalName::Kill, Why::Timeout)
        ]
    );
    let proxy = row(&tl, "proxy", 0);
    assert_eq!(proxy.signals[0].why, Why::Timeout);
    assert!(proxy.signals[0].at_ms >= app.exit.as_ref().unwrap().at_ms);
}

fn pod(spec: serde_json::Value) -> Pod {
    let mut p: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": spec,
    }))
    .unwrap();
    skiff_model::defaults::default_pod(&mut p);
    p
}

fn at(ms: i64) -> Time {
    EPOCH.add_millis(ms)
}

fn start(name: &str, id: u64, attempt: i32) -> Action {
    Action::StartContainer {
        name: name.into(),
        kind: skiff_engine::ContainerKind::App,
        instance: InstanceId(id),
        attempt,
        post_start: None,
        image: skiff_engine::ImagePlan {
            image: "x".into(),
            policy: skiff_engine::PullPolicy::IfNotPresent,
            pull_backoff: false,
        },
    }
}

#[test]
fn st3_failed_starts_before_any_process_share_one_row() {
    let p = pod(json!({"containers": [{"name": "app", "image": "x"}]}));
    let mut r = Recorder::new(&p, EPOCH);
    for (n, id) in [(0, 1u64), (1, 2), (2, 3)] {
        r.action(&start("app", id, 0), at(n * 10_000));
        r.input(
            &Input::ImagePulling {
                name: "app".into(),
                instance: InstanceId(id),
            },
            at(n * 10_000 + 1),
        );
        r.input(
            &Input::StartFailed {
                name: "app".into(),
                instance: InstanceId(id),
                failure: StartFailure::ImagePull {
                    message: "no route to registry".into(),
                },
            },
            at(n * 10_000 + 50),
        );
    }
    r.action(&start("app", 4, 0), at(30_000));
    r.input(
        &Input::ContainerStarted {
            name: "app".into(),
            instance: InstanceId(4),
            at: at(30_005),
        },
        at(30_006),
    );
    let tl = r.finish(at(31_000)).clone();
    assert_eq!(tl.instances.len(), 1, "{tl:#?}");
    let i = &tl.instances[0];
    assert_eq!(i.start_attempts, 4);
    assert_eq!(i.id, 4);
    assert_eq!(i.started_ms, Some(30_005));
    assert_eq!(i.start_failure.as_ref().unwrap().reason, "ErrImagePull");
    assert_eq!(i.image_pull.unwrap().begin_ms, 1);
    // Started after the failures: the row did not end with them.
    assert_eq!(i.ended_ms(), None);
}

#[test]
fn times_never_go_back_and_open_spans_close_at_the_end() {
    let p = pod(json!({"containers": [{"name": "app", "image": "x",
        "lifecycle": {"preStop": {"exec": {"command": ["x"]}}}}]}));
    let mut r = Recorder::new(&p, EPOCH);
    r.action(&start("app", 1, 0), at(5_000));
    // A clock that steps back: recorded at the latest time seen.
    r.input(
        &Input::ContainerStarted {
            name: "app".into(),
            instance: InstanceId(1),
            at: at(100),
        },
        at(4_000),
    );
    r.action(
        &Action::RunPreStop {
            name: "app".into(),
            instance: InstanceId(1),
            timeout_ms: 30_000,
            why: StopReason::StopRequested,
        },
        at(6_000),
    );
    let tl = r.finish(at(7_000)).clone();
    let i = &tl.instances[0];
    assert_eq!(i.requested_ms, 5_000);
    // The process start cannot be before the request.
    assert_eq!(i.started_ms, Some(5_000));
    assert_eq!(i.pre_stop.as_ref().unwrap().end_ms, Some(7_000));
    assert_eq!(tl.end_ms, 7_000);
}

#[test]
fn bounds_keep_long_lives_small() {
    let p = pod(json!({"restartPolicy": "Always",
        "containers": [{"name": "app", "image": "x",
        "livenessProbe": {"exec": {"command": ["x"]}}}]}));
    let limits = RecorderLimits {
        instances_per_container: 6,
        instances_head: 2,
        probe_spans_per_instance: 10,
        marks: 5,
        text_bytes: 8,
    };
    let mut r = Recorder::with_limits(&p, EPOCH, limits);
    let mut t = 0;
    for id in 1..=20u64 {
        r.action(&start("app", id, (id - 1) as i32), at(t));
        r.input(
            &Input::ContainerStarted {
                name: "app".into(),
                instance: InstanceId(id),
                at: at(t + 1),
            },
            at(t + 1),
        );
        // Alternating results: every failure wants its own span.
        for k in 0..40 {
            t += 100;
            r.action(
                &Action::RunProbe {
                    name: "app".into(),
                    instance: InstanceId(id),
                    kind: EngineProbe::Liveness,
                    timeout_ms: 1000,
                },
                at(t),
            );
            r.input(
                &Input::ProbeResult {
                    name: "app".into(),
                    instance: InstanceId(id),
                    kind: EngineProbe::Liveness,
                    ok: k % 2 == 0,
                    output: "a very long probe output".into(),
                },
                at(t + 3),
            );
        }
        r.input(
            &Input::ContainerExited {
                name: "app".into(),
                instance: InstanceId(id),
                exit_code: 1,
                reason: None,
                message: None,
                at: at(t + 10),
            },
            at(t + 10),
        );
        t += 20;
    }
    let tl = r.finish(at(t)).clone();
    // 6 rows: the first two and the last four.
    let attempts: Vec<i32> = tl.instances.iter().map(|i| i.attempt).collect();
    assert_eq!(attempts, vec![0, 1, 16, 17, 18, 19]);
    assert_eq!(tl.truncated.instances, 14);
    for i in &tl.instances {
        assert!(i.probes.len() <= 10, "{}", i.probes.len());
        // Every run is counted somewhere.
        assert_eq!(i.probes.iter().map(|p| p.runs).sum::<u32>(), 40);
        for p in &i.probes {
            assert!(p
                .output
                .as_ref()
                .is_none_or(|o| o.len() <= 8 + '…'.len_utf8()));
            assert_eq!((p.min_took_ms, p.max_took_ms), (3, 3));
        }
    }
    assert!(tl.truncated.probe_spans > 0);
    assert!(tl.pod_marks.len() <= 5);
    // The JSON form reads back the same.
    let back: Timeline = serde_json::from_str(&serde_json::to_string(&tl).unwrap()).unwrap();
    assert_eq!(back, tl);
}

#[test]
fn hostile_text_is_bounded_and_kept_verbatim_for_renderers_to_escape() {
    let p = pod(json!({"containers": [{"name": "app", "image": "x"}]}));
    let mut r = Recorder::new(&p, EPOCH);
    r.action(&start("app", 1, 0), at(0));
    let evil = format!("</svg><script>alert(1)</script>{}", "é".repeat(1000));
    r.input(
        &Input::ContainerExited {
            name: "app".into(),
            instance: InstanceId(1),
            exit_code: 2,
            reason: Some("Error".into()),
            message: Some(evil.clone()),
            at: at(10),
        },
        at(10),
    );
    let tl = r.finish(at(20)).clone();
    let msg = tl.instances[0]
        .exit
        .as_ref()
        .unwrap()
        .message
        .clone()
        .unwrap();
    assert!(msg.starts_with("</svg><script>"));
    assert!(msg.len() <= RecorderLimits::default().text_bytes + 3);
    assert!(msg.ends_with('…'));
}

#[test]
fn t9_post_start_hook_span_runs_from_start_to_its_answer() {
    let spec = json!({"restartPolicy": "Never",
        "initContainers": [{"name": "side", "image": "x", "restartPolicy": "Always",
            "lifecycle": {"postStart": {"exec": {"command": ["x"]}}}}],
        "containers": [{"name": "app", "image": "x"}]});
    let tl = Scenario::new(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "hooks", "namespace": "default"}, "spec": spec}))
    .unwrap()
    .script(
        "side",
        vec![Run {
            post_start_ms: 700,
            ..Run::default()
        }],
    )
    .script("app", vec![Run::exits(1000, 0)])
    .play(60_000);
    let side = row(&tl, "side", 0);
    let h = side.post_start.as_ref().unwrap();
    assert_eq!(h.end_ms.unwrap() - h.begin_ms, 700);
    assert_eq!(h.ok, Some(true));
    let g = row(&tl, "app", 0).gate.as_ref().unwrap();
    assert_eq!(g.milestone, Milestone::PostStartDone);
    assert_eq!(Some(g.at_ms), h.end_ms);
    let _ = (PostStart { timeout_ms: 1 }, Signal::Term);
}

#[test]
fn a_restarted_node_agent_goes_on_with_the_record() {
    let p = pod(json!({"containers": [{"name": "app", "image": "x"}]}));
    let mut r = Recorder::new(&p, EPOCH);
    r.action(&start("app", 1, 0), at(0));
    r.input(
        &Input::ContainerStarted {
            name: "app".into(),
            instance: InstanceId(1),
            at: at(5),
        },
        at(6),
    );
    let prior = r.snapshot(at(1_000));
    // The next agent adopts instance 1 and sees it exit.
    let mut r = Recorder::resume(&p, prior.clone(), at(60_000));
    r.input(
        &Input::ContainerExited {
            name: "app".into(),
            instance: InstanceId(1),
            exit_code: 0,
            reason: None,
            message: None,
            at: at(61_000),
        },
        at(61_001),
    );
    let tl = r.finish(at(62_000)).clone();
    assert_eq!(tl.origin_unix_ms, prior.origin_unix_ms);
    assert_eq!(tl.instances.len(), 1);
    assert_eq!(tl.instances[0].exit.as_ref().unwrap().at_ms, 61_000);
    assert!(tl.pod_marks.iter().any(|m| matches!(&m.what,
        PodMarkKind::Event { reason, .. } if reason == "Adopted")));
    // A record of another pod is not taken.
    let mut other = prior;
    other.pod.uid = "someone-else".into();
    let r = Recorder::resume(&p, other, at(70_000));
    assert!(r.timeline().instances.is_empty());
    assert_eq!(r.timeline().origin_unix_ms, at(70_000).millis());
}
