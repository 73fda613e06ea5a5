//! R3 and S7: records in runtime state Created or Unknown (as a re-adopting daemon reports them).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
mod common;

use common::*;
use skiff_engine::{InstanceId, ObservedState};

const OLD: InstanceId = InstanceId(900);

fn slow_term() -> Run {
    Run {
        on_term: Some((2000, 137)),
        ..forever()
    }
}

#[test]
fn r3_created_app_record_is_started_again_even_under_never() {
    let p = pod("Never", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p);
    sim.observe_at(0, "app", OLD, ObservedState::Created, Some(2), forever());
    sim.run_until(10_000);
    assert!(sim.event_messages("Killing").is_empty());
    // restartCount continues from the record's attempt.
    assert_eq!(sim.times_prefix("start app#"), vec![0]);
    assert!(sim.has("start app#3"));
    let st = sim.status();
    assert_eq!(state(cs(&st, "app")), "running");
    assert_eq!(cs(&st, "app").restart_count, 3);
    assert_eq!(phase(&st), "Running");
}

#[test]
fn r3_unknown_app_record_is_killed_then_restarted_even_under_never() {
    let p = pod("Never", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p);
    sim.observe_at(0, "app", OLD, ObservedState::Unknown, Some(0), slow_term());
    sim.run_until(1000);
    assert_eq!(
        sim.event_messages("Killing"),
        vec!["Container is in \"unknown\" state, try killing it before restart"]
    );
    // While the kill runs the record shows `waiting{}` and the pod is Pending.
    let st = sim.status();
    assert_eq!(state(cs(&st, "app")), "waiting:");
    assert_eq!(phase(&st), "Pending");
    sim.run_until(10_000);
    assert_eq!(sim.first("term app"), Some(0));
    assert_eq!(sim.first("exit app#0 137"), Some(2000));
    // No earlier exit: the restart is immediate (the killed record is not a back-off input).
    assert_eq!(sim.first("start app#1"), Some(2000));
    let st = sim.status();
    assert_eq!(state(cs(&st, "app")), "running");
    assert_eq!(cs(&st, "app").restart_count, 1);
    assert_eq!(last_state(cs(&st, "app")), "terminated:Error:137");
    assert_eq!(phase(&st), "Running");
}

#[test]
fn r3_known_running_instance_turning_unknown_is_killed_and_restarted() {
    let p = pod("OnFailure", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script(
        "app",
        vec![Run {
            on_term: Some((0, 0)),
            ..forever()
        }],
    );
    // The engine's first instance is InstanceId(1).
    sim.observe_at(
        5000,
        "app",
        InstanceId(1),
        ObservedState::Unknown,
        None,
        forever(),
    );
    sim.run_until(10_000);
    assert_eq!(sim.first("term app"), Some(5000));
    // It exited 0 on SIGTERM, yet it is restarted: R3 ignores the restart policy.
    assert_eq!(sim.times_prefix("start app#"), vec![0, 5000]);
    assert_eq!(phase(&sim.status()), "Running");
}

#[test]
fn r3_created_sidecar_is_started_and_earlier_regular_init_is_not_rerun() {
    let p = pod(
        "Always",
        vec![ctr("setup"), sidecar("proxy")],
        vec![ctr("app")],
    );
    let mut sim = Sim::new(&p);
    sim.observe_at(0, "proxy", OLD, ObservedState::Created, Some(1), forever());
    sim.run_until(5000);
    assert!(!sim.has("start setup#0"));
    assert_eq!(sim.first("start proxy#2"), Some(0));
    assert_eq!(sim.first("start app#0"), Some(0));
    assert!(sim.pos("start proxy#2") < sim.pos("start app#0"));
    assert_eq!(cs(&sim.status(), "proxy").restart_count, 2);
}

#[test]
fn r3_unknown_sidecar_is_killed_then_restarted_even_under_never() {
    let p = pod("Never", vec![sidecar("proxy")], vec![ctr("app")]);
    let mut sim = Sim::new(&p);
    sim.observe_at(0, "proxy", OLD, ObservedState::Unknown, None, slow_term());
    sim.run_until(5000);
    assert_eq!(
        sim.event_messages("Killing"),
        vec!["Init container is in \"unknown\" state, try killing it before restart"]
    );
    assert_eq!(sim.first("term proxy"), Some(0));
    assert_eq!(sim.first("start proxy#1"), Some(2000));
    // The app waits for the sidecar to be started again (S2).
    assert_eq!(sim.first("start app#0"), Some(2000));
    assert!(sim.pos("start proxy#1") < sim.pos("start app#0"));
}

#[test]
fn s7_unknown_regular_init_under_never_kills_the_pod() {
    let p = pod(
        "Never",
        vec![sidecar("proxy"), ctr("setup")],
        vec![ctr("app")],
    );
    let mut sim = Sim::new(&p);
    sim.adopt_running_at(0, "proxy", InstanceId(800), forever());
    sim.observe_at(0, "setup", OLD, ObservedState::Unknown, None, forever());
    sim.run();
    assert!(sim.engine.is_terminal());
    // killPodWithSyncResult: the running sidecar is stopped with the generic message; nothing
    // starts; the Unknown record is not a running container, so it is not signalled.
    assert_eq!(
        sim.event_messages("Killing"),
        vec!["Stopping container proxy"]
    );
    assert!(!sim.has("term setup"));
    assert!(sim.times_prefix("start ").is_empty());
    assert_eq!(sim.times("stop-sandbox"), vec![0]);
    let st = sim.status();
    assert_eq!(phase(&st), "Failed");
    assert_eq!(state(cs(&st, "app")), "waiting:PodInitializing");
}

#[test]
fn s7_unknown_regular_init_under_onfailure_is_killed_then_restarted() {
    let p = pod("OnFailure", vec![ctr("setup")], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("setup", vec![exits(1000, 0)]);
    // It exits 0 when stopped; it must run again anyway rather than count as completed.
    sim.observe_at(
        0,
        "setup",
        OLD,
        ObservedState::Unknown,
        None,
        Run {
            on_term: Some((500, 0)),
            ..forever()
        },
    );
    sim.run_until(10_000);
    assert_eq!(
        sim.event_messages("Killing"),
        vec!["Init container is in \"unknown\" state, try killing it before restart"]
    );
    assert_eq!(sim.first("term setup"), Some(0));
    assert_eq!(sim.first("start setup#1"), Some(500));
    assert_eq!(sim.first("start app#0"), Some(1500));
    let st = sim.status();
    assert_eq!(cs(&st, "setup").restart_count, 1);
    assert_eq!(phase(&st), "Running");
}

#[test]
fn s7_unknown_init_container_after_initialization_is_left_alone() {
    // computeInitContainerActions skips regular init containers once the pod has initialized.
    let p = pod("Never", vec![ctr("setup")], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("setup", vec![exits(1000, 0)]);
    sim.run_until(5000);
    sim.observe_at(5000, "setup", OLD, ObservedState::Unknown, None, forever());
    sim.run_until(10_000);
    assert!(sim.event_messages("Killing").is_empty());
    assert!(!sim.engine.is_terminating());
}
