//! P1–P12: probes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
mod common;

use common::*;
use serde_json::json;
use skiff_engine::{Action, EngineConfig, Input, PodEngine, ProbeKind};

#[test]
fn p1_probe_action_carries_defaulted_timeout() {
    let app = with(
        ctr("app"),
        "readinessProbe",
        json!({"exec": {"command": ["true"]}}),
    );
    let p = pod("Always", vec![], vec![app]);
    let mut e = PodEngine::new(&p, EngineConfig::default(), T0).unwrap();
    e.plan(T0);
    e.handle(Input::SandboxReady, T0);
    let start = e.plan(T0);
    let Some(Action::StartContainer { instance, .. }) = start.first().cloned() else {
        panic!("{start:?}")
    };
    e.handle(
        Input::ContainerStarted {
            name: "app".into(),
            instance,
            at: T0,
        },
        T0,
    );
    let acts = e.plan(T0);
    assert!(acts.contains(&Action::RunProbe {
        name: "app".into(),
        instance,
        kind: ProbeKind::Readiness,
        timeout_ms: 1000
    }));
    // A timed-out run is reported as a failure: not ready.
    e.handle(
        Input::ProbeResult {
            name: "app".into(),
            instance,
            kind: ProbeKind::Readiness,
            ok: false,
            output: "timeout".into(),
        },
        T0,
    );
    assert!(!cs(&e.status(T0), "app").ready);
}

#[test]
fn p2_initial_results_before_first_probe() {
    let app = with(
        with(
            ctr("app"),
            "readinessProbe",
            json!({"exec": {"command": ["true"]}, "initialDelaySeconds": 100}),
        ),
        "livenessProbe",
        json!({"exec": {"command": ["true"]}, "initialDelaySeconds": 100}),
    );
    let sc = with(
        sidecar("proxy"),
        "startupProbe",
        json!({"exec": {"command": ["true"]}, "initialDelaySeconds": 100}),
    );
    let p = pod("Always", vec![sc], vec![app]);
    let mut sim = Sim::new(&p);
    sim.run_until(50_000);
    let st = sim.status();
    // startup Unknown → not started; nothing else ran, no kill from liveness.
    assert_eq!(cs(&st, "proxy").started, Some(false));
    assert!(!sim.has("start app#0"));
    assert!(sim.event_messages("Killing").is_empty());
}

#[test]
fn p3_ticks_from_worker_creation_and_truncated_initial_delay() {
    // period 10 s, delay 5 s; the container starts at 3 s (init takes 3 s).
    let app = with(
        ctr("app"),
        "livenessProbe",
        json!({"exec": {"command": ["true"]}, "periodSeconds": 10, "initialDelaySeconds": 5}),
    );
    let p = pod("Always", vec![ctr("init")], vec![app]);
    let mut sim = Sim::new(&p).script("init", vec![exits(3000, 0)]);
    sim.run_until(45_000);
    // Ticks at 10, 20, 30 s from admission (t=0); at 10 s the container is 7 s old ≥ 5.
    assert_eq!(
        sim.times("probe app#0 Liveness ok"),
        vec![10_000, 20_000, 30_000, 40_000]
    );
}

#[test]
fn p3_initial_delay_uses_whole_seconds() {
    // Container starts at 0.5 s; tick at 3.0 s → 2.5 s old → truncated 2 < 3 → skipped; 6 s probes.
    let app = with(
        ctr("app"),
        "livenessProbe",
        json!({"exec": {"command": ["true"]}, "periodSeconds": 3, "initialDelaySeconds": 3}),
    );
    let p = pod("Always", vec![ctr("init")], vec![app]);
    let mut sim = Sim::new(&p).script("init", vec![exits(500, 0)]);
    sim.run_until(7000);
    assert_eq!(sim.times("probe app#0 Liveness ok"), vec![6000]);
}

#[test]
fn p3_readiness_probed_right_after_started() {
    let app = with(ctr("app"), "readinessProbe", exec_probe(10, 3));
    let p = pod("Always", vec![ctr("init")], vec![app]);
    let mut sim = Sim::new(&p).script("init", vec![exits(2500, 0)]);
    sim.run_until(15_000);
    // Immediate run at start (2.5 s), then the worker's ticks at 10 s.
    assert_eq!(sim.times("probe app#0 Readiness ok"), vec![2500, 10_000]);
    let st = sim.status();
    assert!(cs(&st, "app").ready);
    assert_eq!(condition(&st, "Ready").status, "True");
}

#[test]
fn p4_startup_gates_liveness_and_readiness() {
    let app = with(
        with(
            with(ctr("app"), "startupProbe", exec_probe(1, 30)),
            "livenessProbe",
            exec_probe(1, 1),
        ),
        "readinessProbe",
        exec_probe(1, 1),
    );
    let p = pod("Always", vec![], vec![app]);
    let mut sim = Sim::new(&p).probes(|c| (c.kind != ProbeKind::Startup || c.age_ms >= 3000, 0));
    sim.run_until(6500);
    let liveness = sim.times_prefix("probe app#0 Liveness");
    let readiness = sim.times_prefix("probe app#0 Readiness");
    let startup = sim.times_prefix("probe app#0 Startup");
    assert_eq!(startup, vec![1000, 2000, 3000]);
    assert_eq!(liveness.first(), Some(&4000));
    // readiness: immediate run at the startup success, then ticks
    assert_eq!(readiness.first(), Some(&3000));
}

#[test]
fn p5_thresholds_count_consecutive_results() {
    let app = with(
        ctr("app"),
        "readinessProbe",
        json!({"exec": {"command": ["true"]}, "periodSeconds": 1, "successThreshold": 2, "failureThreshold": 2}),
    );
    let p = pod("Always", vec![], vec![app]);
    // ok at 1 s (immediate run at 0 is ok too), fail at 5, ok at 6, fail 7, 8.
    let mut sim = Sim::new(&p).probes(|c| (![5000, 7000, 8000].contains(&c.now_ms), 0));
    sim.run_until(1500);
    assert!(
        cs(&sim.status(), "app").ready,
        "2 successes (0 s, 1 s) → ready"
    );
    sim.run_until(5500);
    assert!(
        cs(&sim.status(), "app").ready,
        "one failure is below threshold"
    );
    sim.run_until(7500);
    assert!(
        cs(&sim.status(), "app").ready,
        "fail, ok, fail: count restarts"
    );
    sim.run_until(8500);
    assert!(!cs(&sim.status(), "app").ready, "two consecutive failures");
}

#[test]
fn p6_liveness_kill_uses_probe_grace_and_restarts() {
    let live = json!({"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 1, "terminationGracePeriodSeconds": 5});
    let app = with(ctr("app"), "livenessProbe", live);
    let p = pod("Always", vec![], vec![app]);
    let mut sim = Sim::new(&p)
        .script(
            "app",
            vec![Run {
                on_term: None,
                ..forever()
            }],
        )
        .probes(|c| (c.attempt > 0 || c.age_ms < 2000, 0));
    sim.run_until(20_000);
    assert_eq!(sim.first("term app"), Some(2000));
    assert_eq!(sim.first("kill app"), Some(7000));
    assert_eq!(sim.first("start app#1"), Some(7000));
    assert_eq!(
        sim.event_messages("Unhealthy"),
        vec!["Liveness probe failed: boom".to_string()]
    );
}

#[test]
fn p6_never_pod_liveness_kill_takes_pod_kill_path() {
    let live = json!({"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 1, "terminationGracePeriodSeconds": 5});
    let app = with(ctr("app"), "livenessProbe", live);
    let p = pod_with(
        "Never",
        vec![],
        vec![app],
        json!({"terminationGracePeriodSeconds": 20}),
    );
    let mut sim = Sim::new(&p)
        .script(
            "app",
            vec![Run {
                on_term: None,
                ..forever()
            }],
        )
        .probes(|c| (c.age_ms < 2000, 0));
    sim.run();
    // Generic message, TGPS (20 s), not the probe's 5 s.
    assert_eq!(
        sim.event_messages("Killing"),
        vec!["Stopping container app".to_string()]
    );
    assert_eq!(sim.first("term app"), Some(2000));
    assert_eq!(sim.first("kill app"), Some(22_000));
    assert_eq!(phase(&sim.status()), "Failed");
}

#[test]
fn p6_never_pod_liveness_kill_exit_0_counts_as_succeeded() {
    let app = with(ctr("app"), "livenessProbe", exec_probe(1, 1));
    let p = pod("Never", vec![], vec![app]);
    let mut sim = Sim::new(&p)
        .script(
            "app",
            vec![Run {
                on_term: Some((0, 0)),
                ..forever()
            }],
        )
        .probes(|c| (c.age_ms < 2000, 0));
    sim.run();
    assert_eq!(phase(&sim.status()), "Succeeded");
}

#[test]
fn p7_sidecar_liveness_failure_restarts_even_under_never() {
    let sc = with(sidecar("proxy"), "livenessProbe", exec_probe(1, 2));
    let p = pod("Never", vec![sc], vec![ctr("app")]);
    let mut sim = Sim::new(&p).probes(|c| (c.attempt > 0 || c.age_ms < 3000, 0));
    sim.run_until(20_000);
    assert_eq!(
        sim.event_messages("Killing"),
        vec!["Init container proxy failed liveness probe".to_string()]
    );
    assert_eq!(sim.first("term proxy"), Some(4000));
    assert_eq!(sim.first("start proxy#1"), Some(4000));
    assert_eq!(sim.times_prefix("start app#"), vec![0]);
    assert_eq!(phase(&sim.status()), "Running");
}

#[test]
fn p8_liveness_on_hold_after_published_failure_until_new_instance() {
    let app = with(ctr("app"), "livenessProbe", exec_probe(1, 1));
    let p = pod("Always", vec![], vec![app]);
    // Ignores SIGTERM: the killed instance lingers 30 s; no probes meanwhile.
    let mut sim = Sim::new(&p)
        .script(
            "app",
            vec![
                Run {
                    on_term: None,
                    ..forever()
                },
                forever(),
            ],
        )
        .probes(|c| (c.attempt > 0 || c.age_ms < 2000, 0));
    sim.run_until(40_000);
    let probes0 = sim.times_prefix("probe app#0 Liveness");
    assert_eq!(probes0, vec![1000, 2000]);
    assert_eq!(sim.first("kill app"), Some(32_000));
    assert_eq!(sim.first("probe app#1 Liveness ok"), Some(33_000));
}

#[test]
fn p9_ready_requires_started_running_and_readiness() {
    let sc = with(sidecar("proxy"), "readinessProbe", exec_probe(1, 1));
    let p = pod("Always", vec![sc, ctr("init")], vec![ctr("app")]);
    let mut sim = Sim::new(&p)
        .script("init", vec![exits(0, 0)])
        .probes(|c| (c.now_ms < 5000, 0));
    sim.run_until(3000);
    let st = sim.status();
    assert!(cs(&st, "proxy").ready);
    assert!(cs(&st, "init").ready, "completed regular init is ready");
    assert_eq!(cs(&st, "init").started, Some(false));
    assert!(cs(&st, "app").ready);
    sim.run_until(6000);
    let st = sim.status();
    assert!(!cs(&st, "proxy").ready);
    assert_eq!(
        condition(&st, "ContainersReady").message.as_deref(),
        Some("containers with unready status: [proxy]")
    );
    assert_eq!(condition(&st, "Ready").status, "False");
    // readiness never kills
    assert!(sim.event_messages("Killing").is_empty());
}

#[test]
fn p10_sidecar_readiness_does_not_gate_next_init() {
    let sc = with(sidecar("proxy"), "readinessProbe", exec_probe(1, 1));
    let p = pod("Always", vec![sc], vec![ctr("app")]);
    let mut sim = Sim::new(&p).probes(|_| (false, 0));
    sim.run_until(3000);
    assert_eq!(sim.first("start app#0"), Some(0));
    assert_eq!(condition(&sim.status(), "Ready").status, "False");
}

#[test]
fn p11_app_liveness_stops_at_termination_readiness_continues() {
    let app = with(
        with(ctr("app"), "livenessProbe", exec_probe(1, 1)),
        "readinessProbe",
        exec_probe(1, 1),
    );
    let p = pod("Always", vec![], vec![app]);
    let mut sim = Sim::new(&p)
        .script(
            "app",
            vec![Run {
                on_term: Some((5000, 0)),
                ..forever()
            }],
        )
        .probes(|c| (c.now_ms < 2500, 0));
    sim.input_at(2500, Input::StopRequested { grace: None });
    sim.run();
    assert!(sim
        .times_prefix("probe app#0 Liveness")
        .iter()
        .all(|t| *t < 2500));
    assert!(sim
        .times_prefix("probe app#0 Readiness")
        .iter()
        .any(|t| *t > 2500));
    assert!(sim.event_messages("Killing") == vec!["Stopping container app".to_string()]);
}

#[test]
fn p12_restarted_sidecar_in_never_pod_is_probed_again() {
    let sc = with(sidecar("proxy"), "livenessProbe", exec_probe(1, 1));
    let p = pod("Never", vec![sc], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("proxy", vec![exits(1500, 1), forever()]);
    sim.run_until(5000);
    assert!(sim.has("probe proxy#1 Liveness ok"));
}
