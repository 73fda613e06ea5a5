//! S10 (spec changes of running containers), S12 (ephemeral containers), and what a pod update
//! may change at all (ValidatePodUpdate).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
mod common;

use common::*;
use k8s_openapi::api::core::v1::{ContainerStatus, EphemeralContainer, Pod, PodStatus, Toleration};
use serde_json::json;
use skiff_engine::{EngineError, UPDATE_FORBIDDEN_DETAIL};

fn with_image(p: &Pod, name: &str, image: &str) -> Pod {
    let mut p = p.clone();
    let spec = p.spec.as_mut().unwrap();
    for c in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
    {
        if c.name == name {
            c.image = Some(image.into());
        }
    }
    p
}

fn with_ephemeral(p: &Pod, e: serde_json::Value) -> Pod {
    let mut p = p.clone();
    let e: EphemeralContainer = serde_json::from_value(e).unwrap();
    p.spec
        .as_mut()
        .unwrap()
        .ephemeral_containers
        .get_or_insert_with(Vec::new)
        .push(e);
    p
}

fn debug() -> serde_json::Value {
    json!({"name": "debug", "image": "busybox:1.36", "command": ["sh"]})
}

fn eph<'a>(st: &'a PodStatus, name: &str) -> &'a ContainerStatus {
    st.ephemeral_container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no ephemeral status {name}"))
}

#[test]
fn s10_image_change_restarts_a_running_app_even_under_never() {
    let p = pod("Never", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p);
    sim.run_until(5000);
    sim.engine
        .update_spec(&with_image(&p, "app", "busybox:1.37"), sim.now)
        .unwrap();
    sim.run_until(20_000);
    assert_eq!(
        sim.event_messages("Killing"),
        vec!["Container app definition changed, will be restarted"]
    );
    assert_eq!(sim.times_prefix("start app#"), vec![0, 5000]);
    assert!(sim.pos("exit app#0 143") < sim.pos("start app#1"));
    let st = sim.status();
    let app = cs(&st, "app");
    assert_eq!(state(app), "running");
    assert_eq!(app.restart_count, 1);
    assert_eq!(app.image, "busybox:1.37");
    assert_eq!(last_state(app), "terminated:Error:143");
    assert_eq!(phase(&st), "Running", "{}", sim.dump());
}

#[test]
fn s10_status_reports_the_running_image_until_the_restart() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script(
        "app",
        vec![Run {
            on_term: Some((3000, 0)),
            ..forever()
        }],
    );
    sim.run_until(5000);
    sim.engine
        .update_spec(&with_image(&p, "app", "busybox:1.37"), sim.now)
        .unwrap();
    sim.run_until(6000);
    assert_eq!(cs(&sim.status(), "app").image, "busybox:1.36");
    sim.run_until(9000);
    assert_eq!(sim.first("start app#1"), Some(8000));
    assert_eq!(cs(&sim.status(), "app").image, "busybox:1.37");
}

#[test]
fn s10_image_change_restarts_a_started_sidecar_only() {
    let p = pod("Always", vec![sidecar("proxy")], vec![ctr("app")]);
    let mut sim = Sim::new(&p);
    sim.run_until(5000);
    sim.engine
        .update_spec(&with_image(&p, "proxy", "envoy:2"), sim.now)
        .unwrap();
    sim.run_until(20_000);
    // computeInitContainerActions' message carries no ", will be restarted".
    assert_eq!(
        sim.event_messages("Killing"),
        vec!["Init container proxy definition changed"]
    );
    assert_eq!(sim.times_prefix("start proxy#"), vec![0, 5000]);
    assert_eq!(sim.times_prefix("start app#"), vec![0]);
    let st = sim.status();
    assert_eq!(cs(&st, "proxy").restart_count, 1);
    assert_eq!(cs(&st, "proxy").image, "envoy:2");
    assert_eq!(cs(&st, "app").restart_count, 0);
}

#[test]
fn s10_running_regular_init_container_is_not_restarted() {
    let p = pod("Always", vec![ctr("setup")], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("setup", vec![exits(10_000, 0)]);
    sim.run_until(5000);
    sim.engine
        .update_spec(&with_image(&p, "setup", "busybox:1.37"), sim.now)
        .unwrap();
    sim.run_until(20_000);
    assert!(sim.event_messages("Killing").is_empty());
    assert_eq!(sim.times_prefix("start setup#"), vec![0]);
    assert_eq!(sim.first("start app#0"), Some(10_000));
}

#[test]
fn s10_image_change_resets_the_backoff_key() {
    // R4: the back-off key includes hash(name, image).
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![exits(0, 1)]);
    sim.run_until(75_000);
    assert_eq!(
        sim.times_prefix("start app#"),
        vec![0, 0, 10_000, 30_000, 70_000]
    );
    // In back-off until 150 s under the old key; the new image has no entry: start now.
    sim.engine
        .update_spec(&with_image(&p, "app", "busybox:1.37"), sim.now)
        .unwrap();
    sim.run_until(100_000);
    assert_eq!(
        sim.times_prefix("start app#"),
        vec![0, 0, 10_000, 30_000, 70_000, 75_000, 85_000]
    );
    // No Killing: the container was not running.
    assert!(sim.event_messages("Killing").is_empty());
    let st = sim.status();
    assert_eq!(
        waiting_message(cs(&st, "app")),
        "back-off 20s restarting failed container=app pod=web_default(uid-1)"
    );
}

#[test]
fn s10_updates_other_than_the_allowed_fields_are_typed_errors() {
    let p = pod_with(
        "Always",
        vec![sidecar("proxy")],
        vec![ctr("app")],
        json!({"activeDeadlineSeconds": 100,
               "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": 10}]}),
    );
    let mut sim = Sim::new(&p);
    sim.run_until(1000);
    let now = sim.now;
    let e = &mut sim.engine;

    let mut q = p.clone();
    q.spec.as_mut().unwrap().containers[0].command = Some(vec!["false".into()]);
    let err = e.update_spec(&q, now).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("spec: Forbidden: {UPDATE_FORBIDDEN_DETAIL}")
    );

    let mut q = p.clone();
    q.spec
        .as_mut()
        .unwrap()
        .containers
        .push(serde_json::from_value(ctr("two")).unwrap());
    assert!(matches!(
        e.update_spec(&q, now),
        Err(EngineError::UpdateForbidden { .. })
    ));

    let q = with_image(&p, "app", "");
    assert_eq!(
        e.update_spec(&q, now).unwrap_err().to_string(),
        "spec.containers[0].image: Required value"
    );
    let q = with_image(&p, "proxy", " envoy");
    assert_eq!(
        e.update_spec(&q, now).unwrap_err().to_string(),
        "spec.initContainers[0].image: Invalid value: \" envoy\": must not have leading or trailing whitespace"
    );

    let mut q = p.clone();
    q.spec.as_mut().unwrap().active_deadline_seconds = Some(200);
    assert_eq!(
        e.update_spec(&q, now).unwrap_err().to_string(),
        "spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value"
    );
    q.spec.as_mut().unwrap().active_deadline_seconds = None;
    assert_eq!(
        e.update_spec(&q, now).unwrap_err().to_string(),
        "spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value"
    );

    let mut q = p.clone();
    q.spec.as_mut().unwrap().tolerations = Some(vec![]);
    assert_eq!(
        e.update_spec(&q, now).unwrap_err().to_string(),
        "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
    );
    // Adding a toleration and changing tolerationSeconds are fine.
    let mut q = p.clone();
    let tols = q.spec.as_mut().unwrap().tolerations.as_mut().unwrap();
    tols[0].toleration_seconds = Some(5);
    tols.push(Toleration {
        key: Some("other".into()),
        operator: Some("Exists".into()),
        ..Default::default()
    });
    e.update_spec(&q, now).unwrap();

    // A rejected update changes nothing.
    assert_eq!(cs(&e.status(now), "app").image, "busybox:1.36");
    assert_eq!(sim.event_messages("Killing").len(), 0);
}

#[test]
fn s10_lowered_active_deadline_applies() {
    let p = pod_with(
        "Always",
        vec![],
        vec![ctr("app")],
        json!({"activeDeadlineSeconds": 100}),
    );
    let mut sim = Sim::new(&p);
    sim.run_until(5000);
    let mut q = p.clone();
    q.spec.as_mut().unwrap().active_deadline_seconds = Some(10);
    sim.engine.update_spec(&q, sim.now).unwrap();
    sim.run();
    let st = sim.status();
    assert_eq!(phase(&st), "Failed");
    assert_eq!(st.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(sim.event_messages("DeadlineExceeded").len(), 1);
    assert_eq!(sim.first("term app"), Some(10_000));
}

#[test]
fn s12_ephemeral_starts_before_initialization_finishes_and_is_never_restarted() {
    let p = pod("Always", vec![ctr("setup")], vec![ctr("app")]);
    let mut sim = Sim::new(&p)
        .script("setup", vec![exits(30_000, 0)])
        .script("debug", vec![exits(1000, 1)]);
    sim.run_until(5000);
    sim.engine
        .update_spec(&with_ephemeral(&p, debug()), sim.now)
        .unwrap();
    sim.run_until(25_000);
    assert_eq!(sim.times_prefix("start debug#"), vec![5000]);
    assert_eq!(sim.first("exit debug#0 1"), Some(6000));
    let st = sim.status();
    assert_eq!(phase(&st), "Pending");
    assert_eq!(condition(&st, "Initialized").status, "False");
    let d = eph(&st, "debug");
    assert_eq!(state(d), "terminated:Error:1");
    assert_eq!(d.restart_count, 0);
    assert!(!d.ready);
    assert_eq!(d.started, None);
    // Not in the app list, not in the init list.
    assert!(st
        .container_statuses
        .iter()
        .flatten()
        .chain(st.init_container_statuses.iter().flatten())
        .all(|c| c.name != "debug"));
    sim.run_until(120_000);
    assert_eq!(sim.times_prefix("start debug#"), vec![5000]);
    assert_eq!(sim.first("start app#0"), Some(30_000));
    assert_eq!(phase(&sim.status()), "Running");
}

#[test]
fn s12_ephemeral_does_not_keep_the_pod_alive_and_is_killed_with_it() {
    let p = pod("Never", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![exits(10_000, 0)]);
    sim.run_until(2000);
    sim.engine
        .update_spec(&with_ephemeral(&p, debug()), sim.now)
        .unwrap();
    // Before its first sync the new container reports the default waiting reason.
    assert_eq!(
        state(eph(&sim.engine.status(sim.now), "debug")),
        "waiting:ContainerCreating"
    );
    sim.run();
    assert!(sim.engine.is_terminal());
    assert_eq!(sim.first("start debug#0"), Some(2000));
    assert_eq!(
        sim.event_messages("Killing"),
        vec!["Stopping container debug"]
    );
    assert_eq!(sim.first("term debug"), Some(10_000));
    let st = sim.status();
    // Phase from app containers only.
    assert_eq!(phase(&st), "Succeeded");
    assert_eq!(state(eph(&st, "debug")), "terminated:Error:143");
}

#[test]
fn s12_ephemeral_container_updates_are_validated() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p);
    sim.run_until(1000);
    let now = sim.now;
    let e = &mut sim.engine;
    let mut probe = debug();
    probe["readinessProbe"] = exec_probe(1, 1);
    assert_eq!(
        e.update_spec(&with_ephemeral(&p, probe), now)
            .unwrap_err()
            .to_string(),
        "spec.ephemeralContainers[0].readinessProbe: Forbidden: cannot be set for an Ephemeral Container"
    );
    let dup = json!({"name": "app", "image": "busybox:1.36"});
    assert_eq!(
        e.update_spec(&with_ephemeral(&p, dup), now)
            .unwrap_err()
            .to_string(),
        "spec.ephemeralContainers[0].name: Duplicate value: \"app\""
    );
    let q = with_ephemeral(&p, debug());
    e.update_spec(&q, now).unwrap();
    // Existing ephemeral containers can neither change nor go away.
    let mut changed = q.clone();
    changed
        .spec
        .as_mut()
        .unwrap()
        .ephemeral_containers
        .as_mut()
        .unwrap()[0]
        .image = Some("busybox:1.37".into());
    assert_eq!(
        e.update_spec(&changed, now).unwrap_err().to_string(),
        "spec.ephemeralContainers[0]: Forbidden: existing ephemeral containers \"debug\" may not be changed"
    );
    assert_eq!(
        e.update_spec(&p, now).unwrap_err().to_string(),
        "spec: Forbidden: existing ephemeral containers \"debug\" may not be removed"
    );
    // Re-sending the same spec is a no-op.
    e.update_spec(&q, now).unwrap();
    sim.run_until(5000);
    assert_eq!(sim.times_prefix("start debug#"), vec![1000]);
}
