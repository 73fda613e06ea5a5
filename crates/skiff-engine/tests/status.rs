//! ST1–ST10: phase, conditions, container statuses, display status, events.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
mod common;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use skiff_engine::{display_status, Action, EngineConfig, Input, PodEngine};

#[test]
fn st1_phase_pending_while_initializing_running_after() {
    let p = pod("Always", vec![ctr("init")], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("init", vec![exits(2000, 0)]);
    sim.run_until(1000);
    assert_eq!(phase(&sim.status()), "Pending");
    sim.run_until(3000);
    assert_eq!(phase(&sim.status()), "Running");
}

#[test]
fn st1_pending_sidecar_not_started_keeps_pod_pending() {
    let sc = with(sidecar("proxy"), "startupProbe", exec_probe(10, 3));
    let p = pod("Always", vec![sc], vec![ctr("app")]);
    let mut sim = Sim::new(&p);
    sim.run_until(5000);
    assert_eq!(phase(&sim.status()), "Pending");
}

#[test]
fn st1_running_sidecar_keeps_pod_running_after_apps_exit_under_always() {
    let p = pod("Always", vec![sidecar("proxy")], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![exits(1000, 1)]);
    sim.run_until(5000);
    let st = sim.status();
    assert_eq!(phase(&st), "Running");
    assert_eq!(state(cs(&st, "app")), "waiting:CrashLoopBackOff");
}

#[test]
fn st1_never_pod_app_failure_fails_after_sidecars_stop() {
    let p = pod("Never", vec![sidecar("proxy")], vec![ctr("a"), ctr("b")]);
    let mut sim = Sim::new(&p)
        .script("a", vec![exits(1000, 0)])
        .script("b", vec![exits(2000, 1)]);
    sim.run_until(1500);
    assert_eq!(phase(&sim.status()), "Running");
    sim.run();
    assert_eq!(phase(&sim.status()), "Failed");
}

#[test]
fn st2_terminal_phase_never_changes() {
    let p = pod("Never", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![exits(1000, 0)]);
    sim.run();
    assert_eq!(phase(&sim.status()), "Succeeded");
    sim.engine
        .handle(Input::StopRequested { grace: Some(1) }, at(10_000));
    assert!(sim.engine.plan(at(10_000)).is_empty());
    assert_eq!(phase(&sim.engine.status(at(10_000))), "Succeeded");
}

#[test]
fn st3_waiting_reasons() {
    let p = pod("Always", vec![ctr("init")], vec![ctr("app")]);
    let sim = Sim::new(&p);
    let st = sim.status();
    assert_eq!(state(cs(&st, "init")), "waiting:PodInitializing");
    assert_eq!(state(cs(&st, "app")), "waiting:PodInitializing");

    // start failure with a record: waiting RunContainerError, lastState StartError 128
    let p = pod("Always", vec![], vec![ctr("app")]);
    let fail = Run {
        start_fail: Some(run_error("exec: \"x\": not found")),
        ..forever()
    };
    let mut e = PodEngine::new(&p, EngineConfig::default(), T0).unwrap();
    e.plan(T0);
    e.handle(Input::SandboxReady, T0);
    let Some(Action::StartContainer { instance, .. }) = e.plan(T0).first().cloned() else {
        panic!()
    };
    e.handle(
        Input::StartFailed {
            name: "app".into(),
            instance,
            failure: run_error("exec: \"x\": not found"),
        },
        T0,
    );
    let st = e.status(T0);
    let app = cs(&st, "app");
    assert_eq!(state(app), "waiting:RunContainerError");
    assert_eq!(waiting_message(app), "exec: \"x\": not found");
    assert_eq!(last_state(app), "terminated:StartError:128");
    // the immediate retry fails again: now in back-off
    let mut sim = Sim::new(&p).script("app", vec![fail]);
    sim.run_until(1000);
    assert_eq!(state(cs(&sim.status(), "app")), "waiting:CrashLoopBackOff");

    // a sidecar that exits 0 and waits in back-off shows terminated Completed
    let p = pod("Always", vec![sidecar("proxy")], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("proxy", vec![exits(1000, 0)]);
    // exits at 1 s (restarted at once) and 2 s (back-off 10 s)
    sim.run_until(2500);
    let st = sim.status();
    assert_eq!(state(cs(&st, "proxy")), "terminated:Completed:0");
    assert_eq!(cs(&st, "proxy").restart_count, 1);
}

#[test]
fn st4_terminated_reasons() {
    let p = pod(
        "Never",
        vec![],
        vec![ctr("ok"), ctr("err"), ctr("oom"), ctr("nostart")],
    );
    let mut sim = Sim::new(&p)
        .script("ok", vec![exits(1000, 0)])
        .script("err", vec![exits(1000, 2)])
        .script(
            "oom",
            vec![Run {
                exit_reason: Some("OOMKilled".into()),
                ..exits(1000, 137)
            }],
        )
        .script(
            "nostart",
            vec![Run {
                start_fail: Some(run_error("no such file")),
                ..forever()
            }],
        );
    sim.run();
    let st = sim.status();
    assert_eq!(state(cs(&st, "ok")), "terminated:Completed:0");
    assert_eq!(state(cs(&st, "err")), "terminated:Error:2");
    assert_eq!(state(cs(&st, "oom")), "terminated:OOMKilled:137");
    assert_eq!(state(cs(&st, "nostart")), "terminated:StartError:128");
    assert_eq!(phase(&st), "Failed");
}

#[test]
fn st5_status_ordering_and_flags() {
    let p = pod(
        "Always",
        vec![ctr("z-init"), sidecar("a-side")],
        vec![ctr("zeta"), ctr("alpha")],
    );
    let mut sim = Sim::new(&p).script("z-init", vec![exits(1000, 0)]);
    sim.run_until(500);
    let st = sim.status();
    let zi = cs(&st, "z-init");
    assert_eq!(
        (zi.started, zi.ready),
        (Some(true), false),
        "running regular init: started, not ready"
    );
    sim.run_until(5000);
    let st = sim.status();
    let inits: Vec<&str> = st
        .init_container_statuses
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(inits, vec!["z-init", "a-side"]);
    let apps: Vec<&str> = st
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(apps, vec!["alpha", "zeta"]);
    let zi = cs(&st, "z-init");
    assert_eq!((zi.started, zi.ready), (Some(false), true));
    let sc = cs(&st, "a-side");
    assert_eq!((sc.started, sc.ready), (Some(true), true));
    // apps start in spec order: zeta (3), then alpha (4)
    assert_eq!(
        cs(&st, "alpha").container_id.as_deref(),
        Some(skiff_engine::InstanceId(4).container_id(0).as_str())
    );
}

#[test]
fn st6_conditions_order_reasons_and_transition_times() {
    let sc = with(sidecar("proxy"), "startupProbe", exec_probe(2, 30));
    let p = pod("Always", vec![ctr("init"), sc], vec![ctr("app")]);
    let mut sim = Sim::new(&p)
        .script("init", vec![exits(1000, 0)])
        .probes(|c| (c.now_ms >= 4000, 0));
    sim.run_until(1500);
    let st = sim.status();
    let types: Vec<&str> = st
        .conditions
        .iter()
        .flatten()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(
        types,
        vec![
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled"
        ]
    );
    let init = condition(&st, "Initialized");
    assert_eq!(init.reason.as_deref(), Some("ContainersNotInitialized"));
    assert_eq!(
        init.message.as_deref(),
        Some("containers with incomplete status: [proxy]")
    );
    let cr = condition(&st, "ContainersReady");
    assert_eq!(
        cr.message.as_deref(),
        Some("containers with unready status: [proxy app]")
    );
    let ready = condition(&st, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("ContainersNotReady"))
    );
    let t0 = init.last_transition_time.clone();
    sim.run_until(3500);
    assert_eq!(
        condition(&sim.status(), "Initialized").last_transition_time,
        t0,
        "unchanged status keeps its time"
    );
    sim.run_until(10_000);
    let st = sim.status();
    assert_eq!(condition(&st, "Initialized").status, "True");
    assert_eq!(
        condition(&st, "Initialized").last_transition_time,
        Some(at(4000).to_meta())
    );
    assert_eq!(condition(&st, "Ready").status, "True");
    assert_eq!(
        condition(&st, "PodScheduled").last_transition_time,
        Some(T0.to_meta())
    );
}

#[test]
fn st6_readiness_gate_without_condition_keeps_pod_not_ready() {
    let p = pod_with(
        "Always",
        vec![],
        vec![ctr("app")],
        json!({"readinessGates": [{"conditionType": "example.com/lb"}]}),
    );
    let mut sim = Sim::new(&p);
    sim.run_until(1000);
    let st = sim.status();
    let ready = condition(&st, "Ready");
    assert_eq!(ready.reason.as_deref(), Some("ReadinessGatesNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("corresponding condition of pod readiness gate \"example.com/lb\" does not exist.")
    );
    assert_eq!(condition(&st, "ContainersReady").status, "True");
}

#[test]
fn st6_succeeded_pod_conditions() {
    let p = pod("Never", vec![ctr("init")], vec![ctr("app")]);
    let mut sim = Sim::new(&p)
        .script("init", vec![exits(0, 0)])
        .script("app", vec![exits(1000, 0)]);
    sim.run();
    let st = sim.status();
    assert_eq!(
        condition(&st, "Initialized").reason.as_deref(),
        Some("PodCompleted")
    );
    assert_eq!(
        condition(&st, "ContainersReady").reason.as_deref(),
        Some("PodCompleted")
    );
    assert_eq!(
        condition(&st, "Ready").reason.as_deref(),
        Some("PodCompleted")
    );
    assert_eq!(condition(&st, "PodReadyToStartContainers").status, "False");
}

#[test]
fn st8_start_time_set_once() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![exits(1000, 1)]);
    sim.run_until(100_000);
    assert_eq!(sim.status().start_time, Some(T0.to_meta()));
    assert_eq!(T0.to_rfc3339(), "2023-11-14T22:13:20Z");
}

fn as_pod(p: &Pod, sim: &Sim) -> Pod {
    let mut p = p.clone();
    p.status = Some(sim.status());
    p
}

#[test]
fn st9_display_status() {
    let p = pod(
        "Always",
        vec![ctr("init"), sidecar("proxy")],
        vec![ctr("app")],
    );
    let mut sim = Sim::new(&p).script("init", vec![exits(2000, 0)]);
    sim.run_until(1000);
    let d = display_status(&as_pod(&p, &sim));
    assert_eq!((d.status.as_str(), d.ready.as_str()), ("Init:0/2", "0/2"));
    sim.run_until(3000);
    let d = display_status(&as_pod(&p, &sim));
    assert_eq!(
        (d.status.as_str(), d.ready.as_str(), d.restarts),
        ("Running", "2/2", 0)
    );

    // crash-looping sidecar after initialization keeps the Init: prefix
    let p = pod("Always", vec![sidecar("proxy")], vec![ctr("app")]);
    let mut sim = Sim::new(&p)
        .script("proxy", vec![forever(), exits(0, 1)])
        .script("app", vec![forever()]);
    sim.run_until(1000);
    let d = display_status(&as_pod(&p, &sim));
    assert_eq!(d.status, "Running");
    // crash the sidecar twice → CrashLoopBackOff
    let mut sim = Sim::new(&p).script("proxy", vec![exits(1000, 1)]);
    sim.run_until(2500);
    let d = display_status(&as_pod(&p, &sim));
    assert_eq!(
        (d.status.as_str(), d.ready.as_str(), d.restarts),
        ("Init:CrashLoopBackOff", "1/2", 1)
    );

    // Job completion
    let p = pod("Never", vec![], vec![ctr("job")]);
    let mut sim = Sim::new(&p).script("job", vec![exits(1000, 0)]);
    sim.run();
    assert_eq!(display_status(&as_pod(&p, &sim)).status, "Completed");

    // deletion in progress
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script(
        "app",
        vec![Run {
            on_term: None,
            ..forever()
        }],
    );
    sim.input_at(1000, Input::StopRequested { grace: None });
    sim.run_until(2000);
    let mut pd = as_pod(&p, &sim);
    pd.metadata.deletion_timestamp = Some(at(1000).to_meta());
    assert_eq!(display_status(&pd).status, "Terminating");
}

#[test]
fn st10_events() {
    let app = with(ctr("app"), "readinessProbe", exec_probe(1, 1));
    let p = pod("Always", vec![], vec![app]);
    let mut sim = Sim::new(&p)
        .script("app", vec![exits(1500, 1)])
        .probes(|_| (false, 0));
    sim.run_until(3000);
    let seq: Vec<(String, String)> = sim
        .events
        .iter()
        .map(|(_, e)| (e.reason.clone(), e.message.clone()))
        .take(4)
        .collect();
    assert_eq!(
        seq,
        vec![
            ("Created".into(), "Created container: app".into()),
            ("Started".into(), "Started container app".into()),
            ("Unhealthy".into(), "Readiness probe failed: boom".into()),
            ("Unhealthy".into(), "Readiness probe failed: boom".into()),
        ]
    );
    assert!(sim
        .events
        .iter()
        .all(|(_, e)| e.container.as_deref() == Some("app")));
}

/// ST3 `containerID`: `<runtime>://<64 hex>` as containerd reports it, unique per instance and
/// per pod key.
#[test]
fn st3_container_ids_are_64_hex_and_unique() {
    use skiff_engine::InstanceId;
    let mut seen = std::collections::HashSet::new();
    for key in [0u64, 1, 0xdead_beef] {
        for n in 1..=500u64 {
            let id = InstanceId(n).container_id(key);
            let hex = id.strip_prefix("skiff://").unwrap_or("");
            assert_eq!(hex.len(), 64, "{id}");
            assert!(hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(seen.insert(id), "duplicate container id");
        }
    }
}

// ST6/ST8 as of 1.35 (PodObservedGenerationTracking GA, so in 1.37): the API server sets
// metadata.generation = 1 on create and the kubelet echoes it as status.observedGeneration and
// on every condition it writes. A pod without a generation (never through the API server)
// gets neither.
#[test]
fn st6_observed_generation_echoes_metadata_generation() {
    let mut p = pod("Never", vec![ctr("init")], vec![ctr("app")]);
    p.metadata.generation = Some(1);
    let mut sim = Sim::new(&p)
        .script("init", vec![exits(500, 0)])
        .script("app", vec![exits(1000, 0)]);
    sim.run_until(2000);
    let st = sim.status();
    assert_eq!(st.observed_generation, Some(1));
    let conds = st.conditions.as_ref().unwrap();
    assert_eq!(conds.len(), 5);
    for c in conds {
        assert_eq!(c.observed_generation, Some(1), "{}", c.type_);
    }
    sim.run();
    let st = sim.status();
    assert_eq!(phase(&st), "Succeeded");
    assert_eq!(st.observed_generation, Some(1));

    let p = pod("Never", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![exits(1000, 0)]);
    sim.run_until(500);
    let st = sim.status();
    assert_eq!(st.observed_generation, None);
    assert!(st
        .conditions
        .iter()
        .flatten()
        .all(|c| c.observed_generation.is_none()));
}

/// ST9: RESTARTS carries the end of the last restarted instance (kubectl prints `1 (5s ago)`).
#[test]
fn st9_display_status_last_restart_time() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![exits(1000, 1), forever()]);
    sim.run_until(500);
    let d = display_status(&as_pod(&p, &sim));
    assert_eq!((d.restarts, d.last_restart.clone()), (0, None));
    sim.run_until(3000);
    let st = sim.status();
    let ended = st.container_statuses.as_ref().and_then(|cs| {
        cs[0]
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.finished_at.clone())
    });
    let d = display_status(&as_pod(&p, &sim));
    assert_eq!(d.restarts, 1);
    assert!(ended.is_some());
    assert_eq!(d.last_restart, ended);
}
