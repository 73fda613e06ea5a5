//! T1–T12: termination.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
mod common;

use common::*;
use serde_json::json;
use skiff_engine::{Input, NodeFailure, StopReason};

fn ignores_term() -> Run {
    Run {
        on_term: None,
        ..forever()
    }
}

#[test]
fn t1_deletion_grace_overrides_tgps_and_only_shrinks() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![ignores_term()]);
    sim.input_at(1000, Input::StopRequested { grace: Some(20) });
    sim.input_at(2000, Input::StopRequested { grace: Some(40) }); // larger: ignored
    sim.input_at(3000, Input::StopRequested { grace: Some(5) }); // smaller: wins from now
    sim.run();
    assert_eq!(sim.first("term app"), Some(1000));
    assert_eq!(sim.first("kill app"), Some(8000));
}

#[test]
fn t1_zero_grace_becomes_one_second() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![ignores_term()]);
    sim.input_at(1000, Input::StopRequested { grace: Some(0) });
    sim.run();
    // 1 s pod grace, raised to the 2 s minimum stop window.
    assert_eq!(sim.first("kill app"), Some(3000));
}

#[test]
fn t2_prestop_elapsed_whole_seconds_are_subtracted() {
    let p = pod("Always", vec![], vec![pre_stop(ctr("app"))]);
    let mut sim = Sim::new(&p).script(
        "app",
        vec![Run {
            pre_stop: (Some(5700), true),
            on_term: None,
            ..forever()
        }],
    );
    sim.input_at(1000, Input::StopRequested { grace: None });
    sim.run();
    assert_eq!(sim.first("prestop app"), Some(1000));
    assert_eq!(sim.first("term app"), Some(6700));
    // 30 − 5 = 25 s after SIGTERM
    assert_eq!(sim.first("kill app"), Some(31_700));
}

#[test]
fn t2_failed_prestop_is_reported_and_kill_continues() {
    let p = pod("Always", vec![], vec![pre_stop(ctr("app"))]);
    let mut sim = Sim::new(&p).script(
        "app",
        vec![Run {
            pre_stop: (Some(100), false),
            ..forever()
        }],
    );
    sim.input_at(1000, Input::StopRequested { grace: None });
    sim.run();
    assert_eq!(
        sim.event_messages("FailedPreStopHook"),
        vec!["PreStopHook failed".to_string()]
    );
    assert_eq!(sim.first("term app"), Some(1100));
}

#[test]
fn t2_hanging_prestop_uses_whole_grace_then_2s_minimum() {
    let p = pod_with(
        "Always",
        vec![],
        vec![pre_stop(ctr("app"))],
        json!({"terminationGracePeriodSeconds": 10}),
    );
    let mut sim = Sim::new(&p).script(
        "app",
        vec![Run {
            pre_stop: (None, true),
            on_term: None,
            ..forever()
        }],
    );
    sim.input_at(1000, Input::StopRequested { grace: None });
    sim.run();
    assert_eq!(sim.first("term app"), Some(11_000));
    assert_eq!(sim.first("kill app"), Some(13_000));
}

#[test]
fn t3_without_sidecars_all_containers_are_killed_at_once() {
    let p = pod("Always", vec![], vec![ctr("a"), ctr("b")]);
    let mut sim = Sim::new(&p).script(
        "a",
        vec![Run {
            on_term: Some((4000, 0)),
            ..forever()
        }],
    );
    sim.input_at(1000, Input::StopRequested { grace: None });
    sim.run();
    assert_eq!(sim.first("term a"), Some(1000));
    assert_eq!(sim.first("term b"), Some(1000));
    assert_eq!(sim.first("stop-sandbox"), Some(5000));
}

#[test]
fn t4_sidecars_terminate_in_reverse_order_after_apps() {
    let p = pod(
        "Always",
        vec![sidecar("a"), sidecar("b"), sidecar("c")],
        vec![ctr("app")],
    );
    let slow = |ms| Run {
        on_term: Some((ms, 0)),
        ..forever()
    };
    let mut sim = Sim::new(&p)
        .script("app", vec![slow(3000)])
        .script("c", vec![slow(1000)])
        .script("b", vec![slow(1000)]);
    sim.input_at(10_000, Input::StopRequested { grace: None });
    sim.run();
    assert_eq!(sim.first("term app"), Some(10_000));
    assert_eq!(sim.first("term c"), Some(13_000));
    assert_eq!(sim.first("term b"), Some(14_000));
    assert_eq!(sim.first("term a"), Some(15_000));
    assert_eq!(phase(&sim.status()), "Succeeded");
}

#[test]
fn t4_prestop_hooks_of_apps_and_sidecars_start_together() {
    let p = pod(
        "Always",
        vec![pre_stop(sidecar("proxy"))],
        vec![pre_stop(ctr("app"))],
    );
    let mut sim = Sim::new(&p).script(
        "app",
        vec![Run {
            pre_stop: (Some(3000), true),
            ..forever()
        }],
    );
    sim.input_at(1000, Input::StopRequested { grace: None });
    sim.run();
    assert_eq!(sim.times("prestop app"), vec![1000]);
    assert_eq!(sim.times("prestop proxy"), vec![1000]);
    assert_eq!(sim.first("term app"), Some(4000));
    assert_eq!(sim.first("term proxy"), Some(4000));
    assert!(sim.pos("exit app#0 143") < sim.pos("term proxy"));
}

#[test]
fn t4_non_running_sidecar_breaks_the_chain() {
    let p = pod(
        "Always",
        vec![sidecar("a"), sidecar("b"), sidecar("c")],
        vec![ctr("app")],
    );
    // b crash-loops (in back-off when the stop comes); c takes 5 s to stop.
    let mut sim = Sim::new(&p).script("b", vec![exits(500, 1)]).script(
        "c",
        vec![Run {
            on_term: Some((5000, 0)),
            ..forever()
        }],
    );
    sim.input_at(3000, Input::StopRequested { grace: None });
    sim.run();
    // a waits only for b (not running) and the app: signalled with c.
    assert_eq!(sim.first("term c"), Some(3000));
    assert_eq!(sim.first("term a"), Some(3000));
}

#[test]
fn t4_sidecar_waiting_turn_with_exhausted_grace_signals_with_minimum() {
    let p = pod_with(
        "Always",
        vec![pre_stop(sidecar("proxy"))],
        vec![ctr("app")],
        json!({"terminationGracePeriodSeconds": 5}),
    );
    let mut sim = Sim::new(&p)
        .script(
            "proxy",
            vec![Run {
                pre_stop: (None, true),
                on_term: None,
                ..forever()
            }],
        )
        .script("app", vec![ignores_term()]);
    sim.input_at(1000, Input::StopRequested { grace: None });
    sim.run();
    // preStop uses the whole 5 s → signalled at once (ignoring order) with 2 s.
    assert_eq!(sim.first("term proxy"), Some(6000));
    assert_eq!(sim.first("kill proxy"), Some(8000));
    assert_eq!(sim.first("kill app"), Some(6000));
}

#[test]
fn t5_single_grace_budget_example() {
    let p = pod(
        "Always",
        vec![sidecar("a"), sidecar("b")],
        vec![pre_stop(ctr("app"))],
    );
    let mut sim = Sim::new(&p)
        .script(
            "app",
            vec![Run {
                pre_stop: (Some(5000), true),
                on_term: Some((8000, 0)),
                ..forever()
            }],
        )
        .script(
            "b",
            vec![Run {
                on_term: Some((2000, 0)),
                ..forever()
            }],
        )
        .script("a", vec![ignores_term()]);
    sim.input_at(1000, Input::StopRequested { grace: None });
    sim.run();
    // (SEMANTICS T5 timeline, shifted by the stop at 1 s)
    assert_eq!(sim.first("term app"), Some(6000));
    assert_eq!(sim.first("exit app#0 0"), Some(14_000));
    assert_eq!(sim.first("term b"), Some(14_000));
    assert_eq!(sim.first("exit b#0 0"), Some(16_000));
    assert_eq!(sim.first("term a"), Some(16_000));
    // a's grace: 30 − 15 = 15 s
    assert_eq!(sim.first("kill a"), Some(31_000));
}

#[test]
fn t5_app_ignoring_sigterm_leaves_sidecars_the_2s_minimum() {
    let p = pod("Always", vec![sidecar("a"), sidecar("b")], vec![ctr("app")]);
    let mut sim = Sim::new(&p)
        .script("app", vec![ignores_term()])
        .script("a", vec![ignores_term()])
        .script("b", vec![ignores_term()]);
    sim.input_at(1000, Input::StopRequested { grace: None });
    sim.run();
    assert_eq!(sim.first("kill app"), Some(31_000));
    assert_eq!(sim.first("term b"), Some(31_000));
    assert_eq!(sim.first("term a"), Some(31_000));
    assert_eq!(sim.first("kill b"), Some(33_000));
    assert_eq!(sim.first("kill a"), Some(33_000));
}

#[test]
fn t6_job_style_completion_stops_sidecars_in_reverse_and_succeeds() {
    let p = pod(
        "Never",
        vec![pre_stop(sidecar("logs")), sidecar("proxy")],
        vec![ctr("job")],
    );
    let mut sim = Sim::new(&p).script("job", vec![exits(5000, 0)]).script(
        "proxy",
        vec![Run {
            on_term: Some((1000, 0)),
            ..forever()
        }],
    );
    sim.run();
    assert_eq!(sim.first("term proxy"), Some(5000));
    assert_eq!(sim.first("prestop logs"), Some(5000));
    assert_eq!(sim.first("term logs"), Some(6000));
    assert_eq!(
        sim.event_messages("Killing"),
        vec![
            "Stopping container logs".to_string(),
            "Stopping container proxy".to_string()
        ]
    );
    let st = sim.status();
    assert_eq!(phase(&st), "Succeeded");
    assert!(sim.engine.is_terminal());
    // Sidecars were not restarted.
    assert!(!sim.has("start proxy#1"));
    assert_eq!(state(cs(&st, "proxy")), "terminated:Completed:0");
    assert_eq!(state(cs(&st, "logs")), "terminated:Error:143");
}

#[test]
fn t6_onfailure_completion_requires_exit_0() {
    let p = pod("OnFailure", vec![sidecar("proxy")], vec![ctr("job")]);
    let mut sim = Sim::new(&p).script("job", vec![exits(1000, 1), exits(1000, 0)]);
    sim.run();
    assert_eq!(sim.times_prefix("start job#"), vec![0, 1000]);
    assert_eq!(sim.first("term proxy"), Some(2000));
    assert_eq!(phase(&sim.status()), "Succeeded");
}

#[test]
fn t7_sidecar_exit_codes_never_affect_phase() {
    let p = pod("Never", vec![sidecar("proxy")], vec![ctr("job")]);
    let mut sim = Sim::new(&p).script("job", vec![exits(3000, 0)]).script(
        "proxy",
        vec![
            exits(1000, 2),
            Run {
                on_term: Some((0, 137)),
                ..forever()
            },
        ],
    );
    sim.run();
    assert_eq!(phase(&sim.status()), "Succeeded");
    let mut sim = Sim::new(&p).script("job", vec![exits(3000, 1)]);
    sim.run();
    assert_eq!(phase(&sim.status()), "Failed");
}

#[test]
fn t8_sidecar_not_restarted_while_terminating() {
    let p = pod("Always", vec![sidecar("proxy")], vec![ctr("app")]);
    let mut sim = Sim::new(&p)
        .script(
            "proxy",
            vec![Run {
                exit_after: Some((3000, 1)),
                ..forever()
            }],
        )
        .script(
            "app",
            vec![Run {
                on_term: Some((10_000, 0)),
                ..forever()
            }],
        );
    sim.input_at(2000, Input::StopRequested { grace: None });
    sim.run();
    assert!(sim.has("exit proxy#0 1"));
    assert!(!sim.has("start proxy#1"));
    assert_eq!(state(cs(&sim.status(), "proxy")), "terminated:Error:1");
}

#[test]
fn t9_post_start_failure_kills_and_restarts_per_policy() {
    let p = pod("Always", vec![], vec![post_start(ctr("app"))]);
    let mut sim = Sim::new(&p).script(
        "app",
        vec![
            Run {
                post_start: (1000, false),
                ..forever()
            },
            forever(),
        ],
    );
    sim.run_until(20_000);
    assert_eq!(
        sim.event_messages("FailedPostStartHook"),
        vec!["PostStartHook failed".to_string()]
    );
    assert_eq!(
        sim.event_messages("Killing"),
        vec!["FailedPostStartHook".to_string()]
    );
    assert_eq!(sim.first("term app"), Some(1000));
    assert_eq!(sim.first("start app#1"), Some(1000));
    let p = pod("Never", vec![], vec![post_start(ctr("app"))]);
    let mut sim = Sim::new(&p).script(
        "app",
        vec![Run {
            post_start: (1000, false),
            ..forever()
        }],
    );
    sim.run();
    assert_eq!(phase(&sim.status()), "Failed");
}

// T1, T9: pod termination does not wait for a postStart hook still running — the kubelet
// cancels the sync the hook runs in (pod_workers.go UpdatePod), the hook fails, and the
// container is killed with the pod's grace at once. Same for activeDeadlineSeconds (T10).
#[test]
fn t1_t9_termination_cancels_a_running_post_start_hook() {
    let hangs = || Run {
        post_start: (1_000_000, true),
        ..forever()
    };
    let p = pod(
        "Always",
        vec![post_start(sidecar("proxy"))],
        vec![ctr("app")],
    );
    let mut sim = Sim::new(&p).script("proxy", vec![hangs()]);
    sim.input_at(2000, Input::StopRequested { grace: None });
    sim.run_until(100_000);
    assert_eq!(sim.first("term proxy"), Some(2000), "{}", sim.dump());
    assert!(!sim.has("start app#0"));
    assert_eq!(
        sim.event_messages("FailedPostStartHook"),
        vec!["PostStartHook failed".to_string()]
    );
    assert_eq!(phase(&sim.status()), "Failed");

    let p = pod_with(
        "Always",
        vec![],
        vec![post_start(ctr("app"))],
        json!({"activeDeadlineSeconds": 5}),
    );
    let mut sim = Sim::new(&p).script("app", vec![hangs()]);
    sim.run_until(100_000);
    assert_eq!(sim.first("term app"), Some(5000), "{}", sim.dump());
    assert_eq!(phase(&sim.status()), "Failed");
}

#[test]
fn t10_active_deadline_fails_pod() {
    let p = pod_with(
        "Always",
        vec![sidecar("proxy")],
        vec![ctr("app")],
        json!({"activeDeadlineSeconds": 60}),
    );
    let mut sim = Sim::new(&p);
    sim.run_until(59_000);
    assert_eq!(phase(&sim.status()), "Running");
    sim.run();
    assert_eq!(sim.first("term app"), Some(60_000));
    let st = sim.status();
    assert_eq!(phase(&st), "Failed");
    assert_eq!(st.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(
        st.message.as_deref(),
        Some("Pod was active on the node longer than the specified deadline")
    );
    assert_eq!(sim.event_messages("DeadlineExceeded").len(), 1);
}

/// Eviction by the node (issue 4: an emptyDir over its sizeLimit) fails the pod like T10 does:
/// reason `Evicted`, phase Failed even though every app exited 0 on SIGTERM, sidecars after
/// the apps, the grace override used (eviction_manager.go evictPod).
#[test]
fn t10_t4_eviction_fails_pod_with_reason_evicted_even_if_apps_exit_0() {
    let p = pod("Always", vec![sidecar("proxy")], vec![ctr("app")]);
    let graceful = Run {
        on_term: Some((100, 0)),
        ..forever()
    };
    let mut sim = Sim::new(&p)
        .script("app", vec![graceful.clone()])
        .script("proxy", vec![graceful]);
    sim.input_at(
        5_000,
        Input::FailPod {
            failure: NodeFailure::Evicted {
                message: "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". ".into(),
            },
        },
    );
    sim.run();
    let app_term = sim.first("term app").unwrap_or(-1);
    let proxy_term = sim.first("term proxy").unwrap_or(-1);
    assert_eq!(app_term, 5_000, "{}", sim.dump());
    assert!(proxy_term > app_term, "{}", sim.dump());
    let st = sim.status();
    assert_eq!(phase(&st), "Failed");
    assert_eq!(st.reason.as_deref(), Some("Evicted"));
    assert_eq!(
        st.message.as_deref(),
        Some("Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". ")
    );
    assert!(!sim.has("start app#1"), "no restart after eviction");
}

#[test]
fn t11_unstarted_app_of_initialized_pod_gets_container_status_unknown() {
    let p = pod("Always", vec![], vec![ctr("a"), ctr("b")]);
    let fail = Run {
        start_fail: Some(create_error("bad mount")),
        ..forever()
    };
    let mut sim = Sim::new(&p).script("b", vec![fail]);
    sim.input_at(3000, Input::StopRequested { grace: None });
    sim.run();
    let st = sim.status();
    let b = cs(&st, "b");
    assert_eq!(state(b), "terminated:ContainerStatusUnknown:137");
    assert_eq!(
        b.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .message
            .as_deref(),
        Some("The container could not be located when the pod was terminated")
    );
    assert_eq!(phase(&st), "Failed");
}

#[test]
fn t11_pod_deleted_during_init_keeps_apps_pod_initializing_and_fails() {
    let p = pod("Always", vec![ctr("init")], vec![ctr("app")]);
    // (an init container exiting 0 on SIGTERM would count as completed, so: 143)
    let mut sim = Sim::new(&p).script(
        "init",
        vec![Run {
            on_term: Some((0, 143)),
            ..forever()
        }],
    );
    sim.input_at(2000, Input::StopRequested { grace: None });
    sim.run();
    let st = sim.status();
    assert_eq!(state(cs(&st, "app")), "waiting:PodInitializing");
    assert_eq!(phase(&st), "Failed");
}

#[test]
fn t12_deleted_pod_succeeds_iff_all_apps_exit_0() {
    for (code, want) in [(0, "Succeeded"), (143, "Failed")] {
        let p = pod("Always", vec![sidecar("proxy")], vec![ctr("app")]);
        let mut sim = Sim::new(&p)
            .script(
                "app",
                vec![Run {
                    on_term: Some((0, code)),
                    ..forever()
                }],
            )
            .script(
                "proxy",
                vec![Run {
                    on_term: Some((0, 143)),
                    ..forever()
                }],
            );
        sim.input_at(1000, Input::StopRequested { grace: None });
        sim.run();
        assert_eq!(phase(&sim.status()), want);
    }
}

/// The reason each preStop and signal carries (the timeline's "why"), per decision.
fn whys(sim: &Sim, line: &str) -> Vec<StopReason> {
    sim.stops
        .iter()
        .filter(|(_, l, _)| l == line)
        .map(|(_, _, w)| *w)
        .collect()
}

#[test]
fn t6_completion_stops_sidecars_with_pod_completed_reason() {
    let p = pod("Never", vec![sidecar("proxy")], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![exits(500, 0)]);
    sim.run_until(60_000);
    assert_eq!(whys(&sim, "term proxy"), vec![StopReason::PodCompleted]);
    assert!(whys(&sim, "term app").is_empty(), "{}", sim.dump());
}

#[test]
fn t1_stop_request_reason_carries_to_prestop_term_and_grace_kill() {
    let p = pod("Always", vec![], vec![pre_stop(ctr("app"))]);
    let mut sim = Sim::new(&p).script(
        "app",
        vec![Run {
            pre_stop: (Some(100), true),
            on_term: None,
            ..forever()
        }],
    );
    sim.input_at(1000, Input::StopRequested { grace: Some(3) });
    sim.run();
    assert_eq!(whys(&sim, "prestop app"), vec![StopReason::StopRequested]);
    assert_eq!(whys(&sim, "term app"), vec![StopReason::StopRequested]);
    assert_eq!(whys(&sim, "kill app"), vec![StopReason::StopRequested]);
}

#[test]
fn kill_now_signals_say_kill_now() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![ignores_term()]);
    sim.input_at(1000, Input::StopRequested { grace: None });
    sim.input_at(2000, Input::KillNow);
    sim.run();
    assert_eq!(whys(&sim, "term app"), vec![StopReason::StopRequested]);
    assert_eq!(whys(&sim, "kill app"), vec![StopReason::KillNow]);
}

#[test]
fn p4_liveness_kill_says_liveness() {
    let app = with(ctr("app"), "livenessProbe", exec_probe(1, 1));
    let p = pod("Always", vec![], vec![app]);
    let mut sim = Sim::new(&p)
        .script("app", vec![forever(), forever()])
        .probes(|c| (c.age_ms < 2500, 0));
    sim.run_until(5000);
    assert_eq!(
        whys(&sim, "term app").first(),
        Some(&StopReason::Liveness),
        "{}",
        sim.dump()
    );
}

#[test]
fn t10_deadline_and_eviction_reasons_differ() {
    let p = pod_with(
        "Always",
        vec![],
        vec![ctr("app")],
        json!({"activeDeadlineSeconds": 5}),
    );
    let mut sim = Sim::new(&p).script("app", vec![forever()]);
    sim.run_until(60_000);
    assert_eq!(whys(&sim, "term app"), vec![StopReason::DeadlineExceeded]);

    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![forever()]);
    sim.input_at(
        1000,
        Input::FailPod {
            failure: NodeFailure::Evicted {
                message: "over its limit".into(),
            },
        },
    );
    sim.run_until(60_000);
    assert_eq!(whys(&sim, "term app"), vec![StopReason::NodeFailure]);
}
