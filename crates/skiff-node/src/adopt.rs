//! Rebuilding a pod's engine from the container instances a runtime found, as a restarted
//! kubelet learns them from `ListContainers`: the one replay both the pod worker (adopting
//! a pod) and the pod keeper (stopping a pod whose skiff is gone) use.
//!
//! It only translates observations into the engine's inputs; what follows (watch, kill,
//! restart) is the engine's decision. It belongs in the engine as one input once the engine
//! takes adopted instances with their restart counts (today `ContainerStarted` carries none,
//! so a pod whose older records are missing restarts its count from the records that are
//! there; `ContainerObserved` carries it for unknown ones).

use skiff_engine::{EngineConfig, Input, InstanceId, ObservedState, PodEngine, Time};

use crate::clock::system_time;
use crate::cri::{FoundContainer, FoundState};

/// `base` for an engine that adopts `found`: instance numbers continue after the found ones.
pub fn engine_config(mut base: EngineConfig, found: &[FoundContainer]) -> EngineConfig {
    if let Some(next) = found.iter().map(|f| f.instance.saturating_add(1)).max() {
        base.first_instance_id = base.first_instance_id.max(next);
    }
    base
}

/// Feeds `engine` what `found` says, oldest start first: each instance started, and then,
/// if so, exited (with its code and time) or in an unknown state (R3/S7: the engine kills
/// it first, and the caller answers that kill with its exit).
pub fn replay(engine: &mut PodEngine, found: &[FoundContainer], now: Time) {
    let mut ordered: Vec<&FoundContainer> = found.iter().collect();
    ordered.sort_by_key(|f| (f.started_at, f.instance));
    for f in ordered {
        let instance = InstanceId(f.instance);
        let name = f.name.clone();
        engine.handle(
            Input::ContainerStarted {
                name: name.clone(),
                instance,
                at: system_time(f.started_at),
            },
            now,
        );
        match &f.state {
            FoundState::Running => {}
            FoundState::Exited {
                exit_code,
                finished_at,
            } => engine.handle(
                Input::ContainerExited {
                    name,
                    instance,
                    exit_code: *exit_code,
                    reason: None,
                    message: None,
                    at: system_time(*finished_at),
                },
                now,
            ),
            FoundState::Unknown => engine.handle(
                Input::ContainerObserved {
                    name,
                    instance,
                    state: ObservedState::Unknown,
                    attempt: i32::try_from(f.attempt).ok(),
                },
                now,
            ),
        }
    }
}

/// Seeds the probe results of running adopted instances from `status` (the pod's status as
/// last persisted): `ready` for the readiness probe and `started` for the startup probe of
/// the instance the status names (its `containerID`), until the next result of each.
pub fn restore_probes(
    engine: &mut PodEngine,
    found: &[FoundContainer],
    status: Option<&k8s_openapi::api::core::v1::PodStatus>,
    id_key: u64,
    now: Time,
) {
    let Some(status) = status else { return };
    let statuses = [&status.container_statuses, &status.init_container_statuses];
    for f in found.iter().filter(|f| f.state == FoundState::Running) {
        let id = InstanceId(f.instance);
        let cid = id.container_id(id_key);
        let Some(cs) = statuses
            .iter()
            .copied()
            .flatten()
            .flatten()
            .find(|cs| cs.name == f.name && cs.container_id.as_deref() == Some(cid.as_str()))
        else {
            continue;
        };
        if cs.started == Some(true) {
            engine.handle(
                Input::ProbeRestored {
                    name: f.name.clone(),
                    instance: id,
                    kind: skiff_engine::ProbeKind::Startup,
                    ok: true,
                },
                now,
            );
        }
        engine.handle(
            Input::ProbeRestored {
                name: f.name.clone(),
                instance: id,
                kind: skiff_engine::ProbeKind::Readiness,
                ok: cs.ready,
            },
            now,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"restartPolicy": "Always", "containers": [{"name": "app", "image": "x"}]}
        }))
        .unwrap()
    }

    fn found(instance: u64, attempt: u32, state: FoundState) -> FoundContainer {
        FoundContainer {
            name: "app".into(),
            instance,
            attempt,
            runtime_id: format!("r{instance}"),
            started_at: crate::clock::to_system_time(Time::from_secs(instance as i64)),
            state,
        }
    }

    // Restart counts continue from the records: two exited attempts and a running third.
    #[test]
    fn replay_counts_every_record_and_continues_instance_numbers() {
        let exited = |at: i64| FoundState::Exited {
            exit_code: 1,
            finished_at: crate::clock::to_system_time(Time::from_secs(at)),
        };
        let found = vec![
            found(7, 2, FoundState::Running),
            found(3, 0, exited(4)),
            found(5, 1, exited(6)),
        ];
        let cfg = engine_config(EngineConfig::default(), &found);
        assert_eq!(cfg.first_instance_id, 8);
        let now = Time::from_secs(10);
        let mut engine = PodEngine::new(&pod(), cfg, now).unwrap();
        replay(&mut engine, &found, now);
        let st = engine.status(now);
        let cs = &st.container_statuses.unwrap()[0];
        assert_eq!(cs.restart_count, 2);
        assert!(cs.state.as_ref().unwrap().running.is_some(), "{cs:?}");
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 1);
    }

    // Readiness after a restart of the node agent: the stored `ready` of the instance the
    // status names stands (no flip to false until a probe says so); a status of another
    // instance, or none, leaves the initial not-ready.
    #[test]
    fn restore_probes_keeps_the_stored_readiness_of_the_same_instance() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"restartPolicy": "Always", "containers": [{
                "name": "app", "image": "x",
                "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 10,
                                   "failureThreshold": 3, "successThreshold": 1,
                                   "timeoutSeconds": 1}
            }]}
        }))
        .unwrap();
        let found = vec![found(4, 0, FoundState::Running)];
        let key = crate::state::container_id_key(&pod);
        let now = Time::from_secs(10);
        let ready_of = |status: Option<k8s_openapi::api::core::v1::PodStatus>| {
            let cfg = engine_config(
                EngineConfig {
                    container_id_key: key,
                    ..EngineConfig::default()
                },
                &found,
            );
            let mut engine = PodEngine::new(&pod, cfg, now).unwrap();
            replay(&mut engine, &found, now);
            restore_probes(&mut engine, &found, status.as_ref(), key, now);
            engine.status(now).container_statuses.unwrap()[0].ready
        };
        let stored = |id: String| {
            serde_json::from_value(serde_json::json!({
                "containerStatuses": [{"name": "app", "image": "x", "imageID": "",
                    "containerID": id, "ready": true, "restartCount": 0, "started": true}]
            }))
            .ok()
        };
        assert!(ready_of(stored(InstanceId(4).container_id(key))));
        assert!(!ready_of(stored(InstanceId(3).container_id(key))));
        assert!(!ready_of(None));
    }
}
