//! Sidecar bugs the kubelet shipped; skiff must get each right.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
mod common;

use common::*;
use skiff_engine::{Action, EngineConfig, Input, PodEngine, ProbeKind};

/// k/k #125880: init containers [a (sidecar, startupProbe never passes), b (sidecar, never
/// started)]; on deletion `a` waited for `b`'s termination forever (until the grace period ran
/// out). A sidecar that is not running counts as already terminated.
#[test]
fn k8s_125880_several_sidecars_one_never_started_rest_still_get_sigterm() {
    let a = with(sidecar("a"), "startupProbe", exec_probe(1, 1000));
    let p = pod(
        "Always",
        vec![a, sidecar("b"), sidecar("c")],
        vec![ctr("app")],
    );
    let mut sim = Sim::new(&p).probes(|_| (false, 0));
    sim.input_at(5000, Input::StopRequested { grace: Some(600) });
    sim.run();
    assert!(!sim.has("start b#0"));
    assert_eq!(sim.first("term a"), Some(5000));
    assert_eq!(sim.first("stop-sandbox"), Some(5000));
    assert!(!sim.has("kill a"));
    assert!(sim.engine.is_terminal());
}

/// k/k #132826: pod `Never`, the sidecar's first startupProbe fails → the sidecar is restarted, but
/// the probe worker had exited (pod restartPolicy Never) and never probed the new instance, so the
/// app never started. Here the new instance is probed and the app starts once it is started.
#[test]
fn k8s_132826_never_pod_sidecar_first_startup_probe_fails_app_still_starts() {
    let sc = with(sidecar("proxy"), "startupProbe", exec_probe(1, 1));
    let p = pod("Never", vec![sc], vec![ctr("app")]);
    let mut sim = Sim::new(&p).probes(|c| (c.attempt >= 1, 0));
    sim.run_until(30_000);
    assert_eq!(sim.first("probe proxy#0 Startup fail"), Some(1000));
    assert_eq!(sim.first("start proxy#1"), Some(1000));
    assert_eq!(sim.first("probe proxy#1 Startup ok"), Some(2000));
    assert_eq!(sim.first("start app#0"), Some(2000));
    let st = sim.status();
    assert_eq!(phase(&st), "Running");
    assert_eq!(condition(&st, "Initialized").status, "True");
}

/// k/k #120848: a sidecar whose process exits quickly, with a fast exec startupProbe: results for
/// the old container (or in flight while it restarts) leaked into the decision and the app never
/// started. Results are tied to one instance: a stale success for a dead instance must not count,
/// and a success for the current instance must.
#[test]
fn k8s_120848_startup_probe_race_with_fast_exec_probe() {
    let sc = with(sidecar("logshipper"), "startupProbe", exec_probe(1, 3));
    let p = pod("Always", vec![sc], vec![ctr("myapp")]);
    let mut e = PodEngine::new(&p, EngineConfig::default(), T0).unwrap();
    e.plan(T0);
    e.handle(Input::SandboxReady, T0);
    let Some(Action::StartContainer {
        instance: first, ..
    }) = e.plan(T0).first().cloned()
    else {
        panic!()
    };
    e.handle(
        Input::ContainerStarted {
            name: "logshipper".into(),
            instance: first,
            at: T0,
        },
        T0,
    );
    e.plan(T0);
    // The 1 s tick probes instance #1 …
    let probes = e.plan(at(1000));
    assert!(probes.iter().any(|a| matches!(a, Action::RunProbe { instance, kind: ProbeKind::Startup, .. } if *instance == first)));
    // … which exits before the result arrives; it is restarted at once.
    e.handle(
        Input::ContainerExited {
            name: "logshipper".into(),
            instance: first,
            exit_code: 0,
            reason: None,
            message: None,
            at: at(1000),
        },
        at(1000),
    );
    let acts = e.plan(at(1000));
    let Some(Action::StartContainer {
        instance: second, ..
    }) = acts
        .iter()
        .find(|a| matches!(a, Action::StartContainer { .. }))
        .cloned()
    else {
        panic!("{acts:?}")
    };
    e.handle(
        Input::ContainerStarted {
            name: "logshipper".into(),
            instance: second,
            at: at(1000),
        },
        at(1000),
    );
    e.plan(at(1000));
    // The late success for the dead instance must not start the app.
    e.handle(
        Input::ProbeResult {
            name: "logshipper".into(),
            instance: first,
            kind: ProbeKind::Startup,
            ok: true,
            output: String::new(),
        },
        at(1100),
    );
    let acts = e.plan(at(1100));
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, Action::StartContainer { name, .. } if name == "myapp")),
        "{acts:?}"
    );
    assert_eq!(cs(&e.status(at(1100)), "logshipper").started, Some(false));
    // The next tick probes the new instance; its success starts the app.
    let acts = e.plan(at(2000));
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::RunProbe { instance, .. } if *instance == second)),
        "{acts:?}"
    );
    e.handle(
        Input::ProbeResult {
            name: "logshipper".into(),
            instance: second,
            kind: ProbeKind::Startup,
            ok: true,
            output: String::new(),
        },
        at(2000),
    );
    let acts = e.plan(at(2000));
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::StartContainer { name, .. } if name == "myapp")),
        "{acts:?}"
    );

    // And end to end with the simulator: the sidecar exits at once the first time.
    let mut sim = Sim::new(&p).script("logshipper", vec![exits(0, 0), forever()]);
    sim.run_until(10_000);
    assert_eq!(sim.first("start myapp#0"), Some(1000));
}

/// k/k PR #123323: in a Never/OnFailure pod the API server rejected the sidecar's transition from
/// terminated back to running, so its status stayed stuck in the first terminated state although
/// it was restarted. The status must follow the restarts.
#[test]
fn k8s_pr123323_sidecar_status_not_stuck_terminated_in_never_pod() {
    for policy in ["Never", "OnFailure"] {
        let p = pod(policy, vec![sidecar("proxy")], vec![ctr("job")]);
        let mut sim = Sim::new(&p)
            .script("proxy", vec![exits(2000, 1), forever()])
            .script("job", vec![exits(30_000, 0)]);
        sim.run_until(1000);
        assert_eq!(state(cs(&sim.status(), "proxy")), "running");
        sim.run_until(5000);
        let st = sim.status();
        let proxy = cs(&st, "proxy");
        assert_eq!(state(proxy), "running", "{policy}");
        assert_eq!(proxy.restart_count, 1);
        assert_eq!(last_state(proxy), "terminated:Error:1");
        assert!(proxy.ready);
        assert_eq!(
            proxy.container_id.as_deref(),
            Some(skiff_engine::InstanceId(3).container_id(0).as_str())
        );
        sim.run();
        assert_eq!(phase(&sim.status()), "Succeeded");
    }
}

/// k/k PR #136969 (and #137146): with only a sidecar running, crashed app containers were never
/// restarted because "initialized" was derived from running/created app containers only. Here
/// the apps are restarted while the sidecar keeps running — also while the last sidecar is itself
/// restarting and not yet started again.
#[test]
fn k8s_pr136969_apps_restarted_while_sidecar_keeps_running() {
    let sc = with(sidecar("proxy"), "startupProbe", exec_probe(1, 3));
    let p = pod("Always", vec![sc], vec![ctr("a"), ctr("b")]);
    let mut sim = Sim::new(&p)
        .script("a", vec![exits(5000, 1)])
        .script("b", vec![exits(5000, 2)]);
    sim.run_until(60_000);
    // proxy started at 1 s (first startup tick); apps crash every 5 s.
    assert_eq!(sim.first("start a#0"), Some(1000));
    assert_eq!(sim.times_prefix("start a#")[..3], [1000, 6000, 21_000]);
    assert_eq!(sim.times_prefix("start b#")[..3], [1000, 6000, 21_000]);
    let st = sim.status();
    assert_eq!(cs(&st, "proxy").restart_count, 0);
    assert_eq!(
        cs(&st, "proxy").container_id.as_deref(),
        Some(skiff_engine::InstanceId(1).container_id(0).as_str())
    );

    // The sidecar restarts (startup probe pending again) while the app crashes: the app is still
    // restarted.
    let p = pod(
        "Always",
        vec![with(sidecar("proxy"), "startupProbe", exec_probe(10, 3))],
        vec![ctr("app")],
    );
    let mut sim = Sim::new(&p)
        .script("proxy", vec![exits(12_000, 1), forever()])
        .script("app", vec![exits(2500, 1), forever()])
        .probes(|c| (c.attempt == 0, 0));
    sim.run_until(60_000);
    // proxy#0 started at 10 s → app at 10 s; proxy exits at 12 s (restarted, never started again);
    // app exits at 12.5 s and is restarted at once.
    assert_eq!(sim.first("start app#0"), Some(10_000));
    assert_eq!(sim.first("start proxy#1"), Some(12_000));
    assert_eq!(sim.first("start app#1"), Some(12_500));
}
