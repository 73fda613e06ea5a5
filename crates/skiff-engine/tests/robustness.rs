//! No panics on any input: unknown names, stale instances, duplicated or out-of-order reports.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
mod common;

use common::*;
use skiff_engine::{
    EngineConfig, Input, InstanceId, NodeFailure, ObservedState, PodEngine, ProbeKind, StartFailure,
};

#[test]
fn garbage_inputs_are_ignored() {
    let p = pod("Always", vec![sidecar("proxy")], vec![ctr("app")]);
    let mut e = PodEngine::new(&p, EngineConfig::default(), T0).unwrap();
    let bogus = InstanceId(999);
    let inputs = vec![
        Input::ContainerExited {
            name: "nope".into(),
            instance: bogus,
            exit_code: 1,
            reason: None,
            message: None,
            at: T0,
        },
        Input::ContainerExited {
            name: "app".into(),
            instance: bogus,
            exit_code: 1,
            reason: None,
            message: None,
            at: T0,
        },
        Input::ProbeResult {
            name: "app".into(),
            instance: bogus,
            kind: ProbeKind::Liveness,
            ok: false,
            output: String::new(),
        },
        Input::PreStopDone {
            name: "proxy".into(),
            instance: bogus,
            ok: false,
        },
        Input::PostStartDone {
            name: "proxy".into(),
            instance: bogus,
            ok: false,
            message: String::new(),
        },
        Input::StartFailed {
            name: "app".into(),
            instance: bogus,
            failure: StartFailure::Run {
                message: String::new(),
            },
        },
        Input::ProbeTargetGone {
            name: "app".into(),
            instance: bogus,
            kind: ProbeKind::Readiness,
        },
        Input::KillNow,
        Input::FailPod {
            failure: NodeFailure::Evicted {
                message: String::new(),
            },
        },
        Input::SandboxReady,
        Input::SandboxReady,
        Input::ContainerObserved {
            name: "nope".into(),
            instance: bogus,
            state: ObservedState::Unknown,
            attempt: Some(i32::MAX),
        },
        Input::ContainerObserved {
            name: "app".into(),
            instance: bogus,
            state: ObservedState::Created,
            attempt: Some(-7),
        },
        Input::SandboxLost,
        Input::SandboxLost,
        Input::Tick,
    ];
    for (k, input) in inputs.into_iter().enumerate() {
        let now = at(k as i64);
        e.handle(input, now);
        e.plan(now);
        let _ = e.status(now);
    }
    // Time going backwards is tolerated too.
    e.handle(Input::StopRequested { grace: Some(-5) }, at(-1000));
    e.plan(at(-1000));
    let _ = e.status(at(-1000));
}

#[test]
fn invalid_pods_are_errors_not_panics() {
    let mut p = pod("Always", vec![], vec![ctr("app")]);
    p.spec.as_mut().unwrap().containers.clear();
    assert!(PodEngine::new(&p, EngineConfig::default(), T0).is_err());
    let mut p = pod("Always", vec![], vec![ctr("app")]);
    p.spec = None;
    assert!(PodEngine::new(&p, EngineConfig::default(), T0).is_err());
}
