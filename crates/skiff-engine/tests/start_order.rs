//! S1–S12: start-up and initialization order.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
mod common;

use common::*;
use serde_json::json;

#[test]
fn s1_sandbox_created_first_and_ready_to_start_condition() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p);
    let before = sim.status();
    assert_eq!(
        condition(&before, "PodReadyToStartContainers").status,
        "False"
    );
    assert_eq!(state(cs(&before, "app")), "waiting:ContainerCreating");
    sim.run_until(1000);
    assert!(sim.pos("sandbox") < sim.pos("start app#0"));
    let st = sim.status();
    assert_eq!(condition(&st, "PodReadyToStartContainers").status, "True");
    assert_eq!(phase(&st), "Running");
}

#[test]
fn s2_init_containers_run_one_at_a_time_in_order() {
    let p = pod(
        "Always",
        vec![ctr("i1"), ctr("i2"), ctr("i3")],
        vec![ctr("app")],
    );
    let mut sim = Sim::new(&p)
        .script("i1", vec![exits(3000, 0)])
        .script("i2", vec![exits(2000, 0)])
        .script("i3", vec![exits(1000, 0)]);
    sim.run_until(60_000);
    assert_eq!(sim.first("start i1#0"), Some(0));
    assert_eq!(sim.first("start i2#0"), Some(3000));
    assert_eq!(sim.first("start i3#0"), Some(5000));
    assert_eq!(sim.first("start app#0"), Some(6000));
    // Never more than one regular init container running.
    assert!(sim.pos("exit i1#0 0") < sim.pos("start i2#0"));
    assert!(sim.pos("exit i2#0 0") < sim.pos("start i3#0"));
}

#[test]
fn s2_sidecar_keeps_running_while_later_init_containers_run() {
    let p = pod(
        "Always",
        vec![sidecar("proxy"), ctr("migrate")],
        vec![ctr("app")],
    );
    let mut sim = Sim::new(&p).script("migrate", vec![exits(5000, 0)]);
    sim.run_until(60_000);
    assert_eq!(sim.first("start proxy#0"), Some(0));
    assert_eq!(sim.first("start migrate#0"), Some(0));
    assert!(sim.pos("start proxy#0") < sim.pos("start migrate#0"));
    assert_eq!(sim.first("start app#0"), Some(5000));
    assert!(!sim.has("exit proxy#0 143"));
    assert_eq!(state(cs(&sim.status(), "proxy")), "running");
}

#[test]
fn s3_sidecar_started_only_after_startup_probe_success() {
    let sc = with(sidecar("proxy"), "startupProbe", exec_probe(2, 30));
    let p = pod("Always", vec![sc], vec![ctr("app")]);
    // Startup probe fails until the sidecar is 5 s old.
    let mut sim = Sim::new(&p).probes(|c| (c.age_ms >= 5000, 0));
    sim.run_until(4500);
    let st = sim.status();
    assert_eq!(cs(&st, "proxy").started, Some(false));
    assert!(!sim.has("start app#0"));
    sim.run_until(60_000);
    // Ticks at 2,4,6 s from worker creation (t=0): first success at 6 s.
    assert_eq!(sim.first("start app#0"), Some(6000));
    assert_eq!(cs(&sim.status(), "proxy").started, Some(true));
}

#[test]
fn s3_post_start_blocks_the_next_start() {
    let sc = post_start(sidecar("proxy"));
    let p = pod("Always", vec![sc], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script(
        "proxy",
        vec![Run {
            post_start: (4000, true),
            ..forever()
        }],
    );
    sim.run_until(60_000);
    assert_eq!(sim.first("start proxy#0"), Some(0));
    assert_eq!(sim.first("start app#0"), Some(4000));
}

#[test]
fn s4_apps_start_after_last_init_in_spec_order_post_start_delays_next() {
    let p = pod(
        "Always",
        vec![ctr("init")],
        vec![post_start(ctr("b-first")), ctr("a-second")],
    );
    let mut sim = Sim::new(&p).script("init", vec![exits(1000, 0)]).script(
        "b-first",
        vec![Run {
            post_start: (3000, true),
            ..forever()
        }],
    );
    sim.run_until(60_000);
    assert_eq!(sim.first("start b-first#0"), Some(1000));
    assert_eq!(sim.first("start a-second#0"), Some(4000));
}

#[test]
fn s5_sidecar_startup_probe_not_run_yet_blocks_next_init() {
    let sc = with(
        sidecar("proxy"),
        "startupProbe",
        json!({"exec": {"command": ["true"]}, "periodSeconds": 10, "initialDelaySeconds": 15}),
    );
    let p = pod("Always", vec![sc, ctr("init2")], vec![ctr("app")]);
    let mut sim = Sim::new(&p);
    sim.run_until(60_000);
    // Delay 15 s, ticks every 10 s from t=0: first probe at 20 s.
    assert_eq!(sim.first("probe proxy#0 Startup ok"), Some(20_000));
    assert_eq!(sim.first("start init2#0"), Some(20_000));
}

#[test]
fn s5_sidecar_startup_probe_failure_restarts_never_fails_pod() {
    let sc = with(sidecar("proxy"), "startupProbe", exec_probe(1, 2));
    let p = pod("Never", vec![sc], vec![ctr("app")]);
    // First instance never passes; the second passes at once.
    let mut sim = Sim::new(&p).probes(|c| (c.attempt >= 1, 0));
    sim.run_until(60_000);
    // Failures at 1 s and 2 s → published at 2 s → kill, immediate restart (first restart).
    let msgs = sim.event_messages("Killing");
    assert_eq!(
        msgs,
        vec!["Init container proxy failed startup probe".to_string()]
    );
    assert_eq!(sim.first("term proxy"), Some(2000));
    assert_eq!(sim.first("start proxy#1"), Some(2000));
    assert_eq!(sim.first("start app#0"), Some(3000));
    let st = sim.status();
    assert_eq!(phase(&st), "Running");
    assert_eq!(cs(&st, "proxy").restart_count, 1);
    assert_eq!(last_state(cs(&st, "proxy")), "terminated:Error:143");
}

#[test]
fn s6_sidecar_exit_during_init_is_restarted_even_under_never() {
    let p = pod(
        "Never",
        vec![sidecar("proxy"), ctr("init2")],
        vec![ctr("app")],
    );
    // The sidecar dies at once the first time; init2 must wait for it to run again.
    let mut sim = Sim::new(&p)
        .script("proxy", vec![exits(0, 1), forever()])
        .script("init2", vec![exits(0, 0)]);
    sim.run_until(60_000);
    assert!(sim.has("exit proxy#0 1"));
    assert_eq!(sim.first("start proxy#1"), Some(0));
    assert!(sim.pos("start proxy#1") < sim.pos("start init2#0"));
    assert_eq!(phase(&sim.status()), "Running");
}

#[test]
fn s6_later_init_proceeds_while_earlier_sidecar_sits_in_backoff() {
    let p = pod(
        "Always",
        vec![sidecar("a"), sidecar("b"), ctr("init3")],
        vec![ctr("app")],
    );
    // a crashes after 1 s each time; b is running; init3 takes 30 s.
    let mut sim = Sim::new(&p)
        .script("a", vec![exits(1000, 1)])
        .script("init3", vec![exits(30_000, 0)]);
    sim.run_until(60_000);
    assert_eq!(sim.first("start b#0"), Some(0));
    assert_eq!(sim.first("start init3#0"), Some(0));
    // a: exit 1 s → restart 1 s; exit 2 s → back-off 10 s → restart 12 s.
    assert_eq!(sim.times("start a#1"), vec![1000]);
    assert_eq!(sim.times("start a#2"), vec![12_000]);
    // init3 completes at 30 s and the app starts although a keeps crash-looping.
    assert_eq!(sim.first("start app#0"), Some(30_000));
}

#[test]
fn s7_regular_init_failure_under_never_fails_pod_and_stops_sidecars() {
    let p = pod(
        "Never",
        vec![sidecar("proxy"), ctr("migrate")],
        vec![ctr("app")],
    );
    let mut sim = Sim::new(&p).script("migrate", vec![exits(2000, 3)]);
    sim.run();
    assert!(sim.engine.is_terminal());
    assert!(!sim.has("start app#0"));
    assert_eq!(sim.first("term proxy"), Some(2000));
    let st = sim.status();
    assert_eq!(phase(&st), "Failed");
    assert_eq!(state(cs(&st, "migrate")), "terminated:Error:3");
    assert_eq!(state(cs(&st, "app")), "waiting:PodInitializing");
    assert!(sim.has("stop-sandbox"));
}

#[test]
fn s7_regular_init_failure_under_onfailure_restarts_with_backoff_later_ones_wait() {
    let p = pod(
        "OnFailure",
        vec![ctr("migrate"), ctr("seed")],
        vec![ctr("app")],
    );
    let mut sim = Sim::new(&p)
        .script(
            "migrate",
            vec![exits(1000, 1), exits(1000, 1), exits(1000, 0)],
        )
        .script("seed", vec![exits(0, 0)]);
    sim.run_until(60_000);
    assert_eq!(sim.times_prefix("start migrate#"), vec![0, 1000, 12_000]);
    assert_eq!(sim.first("start seed#0"), Some(13_000));
    assert_eq!(sim.first("start app#0"), Some(13_000));
    assert_eq!(phase(&sim.status()), "Running");
}

#[test]
fn s8_regular_init_not_rerun_when_app_restarts() {
    let p = pod("Always", vec![ctr("init")], vec![ctr("app")]);
    let mut sim = Sim::new(&p)
        .script("init", vec![exits(0, 0)])
        .script("app", vec![exits(5000, 1)]);
    sim.run_until(100_000);
    assert_eq!(sim.times_prefix("start init#"), vec![0]);
    assert!(sim.times_prefix("start app#").len() >= 3);
}

#[test]
fn s11_sidecar_start_failure_does_not_stop_the_sync() {
    let p = pod("Always", vec![sidecar("a"), sidecar("b")], vec![ctr("app")]);
    // a starts once, then crashes and fails to start: b (already started) and app are unaffected.
    let start_error = Run {
        start_fail: Some(run_error("exec: \"nope\": not found")),
        ..forever()
    };
    let mut sim = Sim::new(&p).script("a", vec![exits(1000, 1), start_error]);
    sim.run_until(30_000);
    assert_eq!(sim.first("start b#0"), Some(0));
    assert_eq!(sim.first("start app#0"), Some(0));
    let st = sim.status();
    let a = cs(&st, "a");
    assert_eq!(a.started, Some(false));
    assert!(state(a).starts_with("waiting:"), "{}", state(a));
}

#[test]
fn s11_regular_init_start_failure_abandons_the_pass() {
    let p = pod("OnFailure", vec![ctr("init")], vec![ctr("app")]);
    let fail = Run {
        start_fail: Some(run_error("no such file")),
        ..forever()
    };
    let mut sim = Sim::new(&p).script("init", vec![fail.clone(), fail, exits(0, 0)]);
    sim.run_until(60_000);
    assert_eq!(sim.times_prefix("startfail init#"), vec![0, 0]);
    // first restart immediate, second after 10 s back-off
    assert_eq!(sim.first("start init#2"), Some(10_000));
    assert_eq!(sim.first("start app#0"), Some(10_000));
}
