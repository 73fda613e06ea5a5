//! R1–R9: restarts and back-off.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
mod common;

use common::*;
use skiff_engine::{EngineConfig, Input};

#[test]
fn r1_sidecar_ignores_pod_restart_policy() {
    let p = pod("Never", vec![sidecar("proxy")], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("proxy", vec![exits(5000, 0)]);
    sim.run_until(40_000);
    // exit 0 at 5 s → restart at 5 s; exit at 10 s → back-off 10 s → 20 s; exit 25 → 20 s → 45 s.
    assert_eq!(sim.times_prefix("start proxy#"), vec![0, 5000, 20_000]);
    assert_eq!(sim.times_prefix("start app#"), vec![0]);
}

#[test]
fn r2_restart_policy_matrix_for_app_containers() {
    for (policy, code, restarted) in [
        ("Never", 0, false),
        ("Never", 1, false),
        ("OnFailure", 0, false),
        ("OnFailure", 1, true),
        ("Always", 0, true),
        ("Always", 1, true),
    ] {
        let p = pod(policy, vec![], vec![ctr("app")]);
        let mut sim = Sim::new(&p).script("app", vec![exits(1000, code)]);
        sim.run_until(5000);
        assert_eq!(
            sim.has("start app#1"),
            restarted,
            "{policy} exit {code}\n{}",
            sim.dump()
        );
    }
}

#[test]
fn r2_regular_init_under_always_acts_like_onfailure() {
    let p = pod("Always", vec![ctr("init")], vec![ctr("app")]);
    let mut sim = Sim::new(&p)
        .script("init", vec![exits(1000, 0)])
        .script("app", vec![exits(1000, 1)]);
    sim.run_until(30_000);
    assert_eq!(sim.times_prefix("start init#"), vec![0]);
}

#[test]
fn r2_no_restart_once_deleted() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script(
        "app",
        vec![Run {
            on_term: Some((1000, 1)),
            ..forever()
        }],
    );
    sim.input_at(5000, Input::StopRequested { grace: None });
    sim.run();
    assert_eq!(sim.times_prefix("start app#"), vec![0]);
    assert_eq!(phase(&sim.status()), "Failed");
}

#[test]
fn r4_backoff_is_per_container() {
    let p = pod("Always", vec![], vec![ctr("a"), ctr("b")]);
    let mut sim = Sim::new(&p)
        .script("a", vec![exits(0, 1)])
        .script("b", vec![exits(50_000, 1)]);
    sim.run_until(60_000);
    // a is deep in back-off by 50 s; b's first restart is still immediate.
    assert!(sim.times_prefix("start a#").len() >= 4);
    assert_eq!(sim.first("start b#1"), Some(50_000));
}

#[test]
fn r5_backoff_minimums_0_10_20_40() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![exits(0, 1)]);
    sim.run_until(2_000_000);
    let starts = sim.times_prefix("start app#");
    let gaps: Vec<i64> = starts.windows(2).map(|w| (w[1] - w[0]) / 1000).collect();
    assert_eq!(&gaps[..9], &[0, 10, 20, 40, 80, 160, 300, 300, 300]);
}

#[test]
fn r5_crashloop_waiting_state_message_and_event() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![exits(0, 2)]);
    sim.run_until(5000);
    let st = sim.status();
    let app = cs(&st, "app");
    assert_eq!(state(app), "waiting:CrashLoopBackOff");
    assert_eq!(
        waiting_message(app),
        "back-off 10s restarting failed container=app pod=web_default(uid-1)"
    );
    assert_eq!(last_state(app), "terminated:Error:2");
    assert_eq!(app.restart_count, 1);
    assert_eq!(
        sim.event_messages("BackOff"),
        vec!["Back-off restarting failed container app in pod web_default(uid-1)".to_string()]
    );
    sim.run_until(200_000);
    let msgs: Vec<String> = sim.status().container_statuses.unwrap()[0]
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.message.clone())
        .into_iter()
        .collect();
    assert_eq!(
        msgs,
        vec!["back-off 2m40s restarting failed container=app pod=web_default(uid-1)".to_string()]
    );
}

#[test]
fn r6_backoff_resets_after_600s() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    // crash fast twice (back-off reaches 20 s), then run 700 s, then crash again: restart at once.
    let mut sim = Sim::new(&p).script(
        "app",
        vec![exits(0, 1), exits(0, 1), exits(700_000, 1), exits(0, 1)],
    );
    sim.run_until(800_000);
    assert_eq!(
        &sim.times_prefix("start app#")[..5],
        &[0, 0, 10_000, 710_000, 720_000]
    );
}

#[test]
fn r7_configured_max_caps_and_lowers_initial() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let cfg = EngineConfig::default().with_backoff_max_ms(5000);
    let mut sim = Sim::with_config(&p, cfg).script("app", vec![exits(0, 1)]);
    sim.run_until(30_000);
    let starts = sim.times_prefix("start app#");
    assert_eq!(&starts[..5], &[0, 0, 5000, 10_000, 15_000]);
}

#[test]
fn r8_restart_count_and_last_state() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![exits(1000, 3), exits(1000, 4), forever()]);
    sim.run_until(30_000);
    let st = sim.status();
    let app = cs(&st, "app");
    assert_eq!(app.restart_count, 2);
    assert_eq!(state(app), "running");
    assert_eq!(last_state(app), "terminated:Error:4");
    assert_eq!(
        app.container_id.as_deref(),
        Some(skiff_engine::InstanceId(3).container_id(0).as_str())
    );
}

#[test]
fn r9_first_liveness_kill_restarts_immediately_repeated_kills_back_off() {
    let app = with(ctr("app"), "livenessProbe", exec_probe(1, 1));
    let p = pod("Always", vec![], vec![app]);
    // Liveness fails from the instance's 3rd second on; SIGTERM kills at once.
    let mut sim = Sim::new(&p).probes(|c| (c.age_ms < 3000, 0));
    sim.run_until(40_000);
    let starts = sim.times_prefix("start app#");
    // #0 killed at 3 s → restarted at once (no earlier exit, back-off untouched). #1 killed at 6 s:
    // the newest *previous* exit is #0 (3 s) and there is no entry yet → entry 10 s, start at once.
    // #2 killed at 9 s: previous exit 6 s, 9 − 6 < 10 → waits until 16 s.
    assert_eq!(&starts[..4], &[0, 3000, 6000, 16_000]);
    assert_eq!(
        sim.event_messages("Killing")[0],
        "Container app failed liveness probe, will be restarted"
    );
}
