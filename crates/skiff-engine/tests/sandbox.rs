//! S9: sandbox lost or changed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
mod common;

use common::*;
use skiff_engine::Input;

#[test]
fn s9_sandbox_lost_kills_all_recreates_and_reruns_init_from_the_first() {
    let p = pod(
        "Always",
        vec![ctr("setup"), sidecar("proxy")],
        vec![ctr("app")],
    );
    let mut sim = Sim::new(&p).script("setup", vec![exits(1000, 0)]);
    sim.sandbox_delay_ms = 1000;
    sim.input_at(20_000, Input::SandboxLost);
    sim.run_until(20_500);
    // Right after the loss the new sandbox is not ready yet.
    let st = sim.status();
    let ready_to_start = condition(&st, "PodReadyToStartContainers");
    assert_eq!(ready_to_start.status, "False");
    assert_eq!(
        ready_to_start.last_transition_time.as_ref().unwrap().0,
        at(20_000).to_meta().0
    );
    sim.run_until(40_000);
    assert_eq!(
        sim.event_messages("SandboxChanged"),
        vec!["Pod sandbox changed, it will be killed and re-created.".to_string()]
    );
    // killPodWithSyncResult: generic messages, app before the sidecar (T4), then the sandbox.
    let mut killing = sim.event_messages("Killing");
    killing.sort();
    assert_eq!(
        killing,
        vec!["Stopping container app", "Stopping container proxy"]
    );
    assert!(sim.pos("term app") < sim.pos("term proxy"));
    assert!(sim.pos("exit proxy#0 143") < sim.pos("stop-sandbox"));
    assert_eq!(sim.times("sandbox"), vec![0, 20_000]);
    // Initialization starts over at initContainers[0], once the new sandbox is ready.
    assert_eq!(sim.times_prefix("start setup#"), vec![1000, 21_000]);
    assert_eq!(sim.first("start proxy#1"), Some(22_000));
    assert_eq!(sim.first("start app#1"), Some(22_000));
    assert!(sim.pos("start proxy#1") < sim.pos("start app#1"));
    let st = sim.status();
    assert_eq!(phase(&st), "Running");
    assert_eq!(condition(&st, "PodReadyToStartContainers").status, "True");
    // restartCount continues across the purge.
    for name in ["setup", "proxy", "app"] {
        assert_eq!(cs(&st, name).restart_count, 1, "{name}");
    }
    assert_eq!(state(cs(&st, "setup")), "terminated:Completed:0");
    assert_eq!(state(cs(&st, "app")), "running");
    assert_eq!(last_state(cs(&st, "app")), "terminated:Error:143");
    // Purged init records are no lastState of the new instance.
    assert_eq!(last_state(cs(&st, "proxy")), "none");
}

#[test]
fn s9_purged_init_records_do_not_hold_back_the_rerun() {
    // A crash-looping regular init container sits in back-off; after the sandbox is re-created
    // its old records are purged, so the new first attempt is immediate.
    let p = pod("OnFailure", vec![ctr("setup")], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("setup", vec![exits(0, 1)]);
    sim.input_at(15_000, Input::SandboxLost);
    sim.run_until(16_000);
    assert_eq!(sim.times_prefix("start setup#"), vec![0, 0, 10_000, 15_000]);
    assert_eq!(cs(&sim.status(), "setup").restart_count, 3);
}

#[test]
fn s9_never_with_a_container_created_kills_the_pod_without_a_new_sandbox() {
    let p = pod("Never", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p);
    sim.input_at(5000, Input::SandboxLost);
    sim.run();
    assert!(sim.engine.is_terminal());
    assert_eq!(sim.times("sandbox"), vec![0]);
    assert_eq!(sim.times("stop-sandbox"), vec![5000]);
    assert!(sim.event_messages("SandboxChanged").is_empty());
    assert_eq!(
        sim.event_messages("Killing"),
        vec!["Stopping container app"]
    );
    assert_eq!(sim.times_prefix("start app#"), vec![0]);
    let st = sim.status();
    assert_eq!(phase(&st), "Failed");
    assert_eq!(state(cs(&st, "app")), "terminated:Error:143");
}

#[test]
fn s9_never_before_any_container_was_created_gets_a_new_sandbox() {
    // The first start fails without leaving a record: nothing was created yet.
    let p = pod("Never", vec![], vec![ctr("app")]);
    let fail = Run {
        start_fail: Some(create_error("bad mount")),
        ..forever()
    };
    let mut sim = Sim::new(&p).script("app", vec![fail]);
    sim.input_at(5000, Input::SandboxLost);
    sim.run_until(6000);
    assert_eq!(sim.times("sandbox"), vec![0, 5000]);
    assert_eq!(sim.event_messages("SandboxChanged").len(), 1);
    assert!(!sim.engine.is_terminating());
}

#[test]
fn s9_onfailure_does_not_restart_apps_that_already_succeeded() {
    let p = pod("OnFailure", vec![], vec![ctr("done"), ctr("web")]);
    let mut sim = Sim::new(&p).script("done", vec![exits(1000, 0)]);
    sim.input_at(5000, Input::SandboxLost);
    sim.run_until(10_000);
    assert_eq!(sim.times("sandbox"), vec![0, 5000]);
    assert_eq!(sim.times_prefix("start done#"), vec![0]);
    assert_eq!(sim.times_prefix("start web#"), vec![0, 5000]);
    let st = sim.status();
    assert_eq!(state(cs(&st, "done")), "terminated:Completed:0");
    assert_eq!(state(cs(&st, "web")), "running");
    assert_eq!(phase(&st), "Running");
}

#[test]
fn s9_always_restarts_apps_under_their_backoff() {
    // The killed app's restart follows R5 from its existing entry: a crash-looper is not let
    // off its back-off by a sandbox change.
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![exits(0, 1), exits(0, 1), forever()]);
    sim.input_at(15_000, Input::SandboxLost);
    sim.run_until(40_000);
    // 0, 0 (immediate), 10 s; running from 10 s; killed at 15 s; the entry is 20 s now.
    assert_eq!(sim.times_prefix("start app#"), vec![0, 0, 10_000, 35_000]);
}
