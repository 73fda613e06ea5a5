//! The kubelet's image manager on the simulated clock: pull policy (D2), `Pulling`/`Pulled`/
//! `Failed`/`BackOff` events, waiting reasons `ErrImagePull` → `ImagePullBackOff` with the
//! image back-off, `ErrImageNeverPull`, `InvalidImageName`, and `image`/`imageID` in container
//! statuses (ST3, ST9, ST10). Upstream: pkg/kubelet/images/image_manager.go
//! (`EnsureImageExists`, `pullImage`, `shouldPullImage`), pkg/kubelet/images/types.go,
//! kuberuntime_container.go `startContainer`, client-go util/flowcontrol/backoff.go.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use skiff_engine::images::{normalized_name, PullPolicy};
use skiff_engine::{display_status, Action, EngineConfig, Input, PodEngine};

const IMG: &str = "busybox:1.36";
const NOT_FOUND: &str = "failed to resolve reference \"docker.io/library/busybox:1.36\": docker.io/library/busybox:1.36: not found";

fn events_of(sim: &Sim, name: &str) -> Vec<String> {
    sim.events
        .iter()
        .filter(|(_, e)| e.container.as_deref() == Some(name))
        .map(|(_, e)| format!("{}: {}", e.reason, e.message))
        .collect()
}

fn as_pod(p: &Pod, sim: &Sim) -> Pod {
    let mut p = p.clone();
    p.status = Some(sim.status());
    p
}

fn app_with(image: &str, policy: Option<&str>) -> serde_json::Value {
    let mut c = json!({"name": "app", "image": image, "command": ["sh", "-c", "true"]});
    if let Some(p) = policy {
        c["imagePullPolicy"] = json!(p);
    }
    c
}

fn failing_pulls() -> Images {
    Images::default().pulls(IMG, vec![Err(NOT_FOUND.into())])
}

#[test]
fn st3_err_image_pull_then_image_pull_backoff_doubling_to_300s() {
    let p = pod("Always", vec![], vec![app_with(IMG, None)]);
    let mut sim = Sim::new(&p).with_images(failing_pulls());
    sim.run_until(5_000);
    let st = sim.status();
    let app = cs(&st, "app");
    assert_eq!(state(app), "waiting:ErrImagePull");
    assert_eq!(waiting_message(app), NOT_FOUND);
    assert_eq!(phase(&st), "Pending");
    assert_eq!(display_status(&as_pod(&p, &sim)).status, "ErrImagePull");
    assert_eq!(
        events_of(&sim, "app"),
        vec![
            "Pulling: Pulling image \"busybox:1.36\"".to_string(),
            format!("Failed: Failed to pull image \"busybox:1.36\": {NOT_FOUND}"),
            "Failed: Error: ErrImagePull".to_string(),
        ]
    );

    sim.run_until(25_000);
    let st = sim.status();
    let app = cs(&st, "app");
    assert_eq!(state(app), "waiting:ImagePullBackOff");
    assert_eq!(
        waiting_message(app),
        format!("Back-off pulling image \"busybox:1.36\": ErrImagePull: {NOT_FOUND}")
    );
    assert_eq!(display_status(&as_pod(&p, &sim)).status, "ImagePullBackOff");
    let tail: Vec<String> = events_of(&sim, "app").split_off(6);
    assert_eq!(
        tail,
        vec![
            "BackOff: Back-off pulling image \"busybox:1.36\"",
            "Failed: Error: ImagePullBackOff"
        ]
    );

    // flowcontrol.Backoff: 10 s, doubling, capped at 300 s, counted from each failure; the
    // pod worker's 10 s re-queue finds the image in back-off (IsInBackOffSinceUpdate is
    // strict: at exactly 10 s after the first failure the pull goes ahead).
    sim.run_until(1_000_000);
    let pulls = sim.times("pullfail app");
    assert_eq!(
        pulls,
        vec![0, 10_000, 30_000, 70_000, 150_000, 310_000, 610_000, 910_000]
    );
    let gaps: Vec<i64> = pulls.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps,
        vec![10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]
    );
    assert_eq!(
        sim.times("pull-backoff app"),
        vec![20_000, 40_000, 80_000, 160_000, 320_000, 620_000, 920_000]
    );
    assert!(sim.engine.status(sim.now).container_statuses.is_some());
    assert_eq!(cs(&sim.status(), "app").restart_count, 0);
}

#[test]
fn st3_success_after_failed_pulls_runs_with_image_id_and_pulled_event() {
    let p = pod("Always", vec![], vec![app_with(IMG, None)]);
    let mut images = Images::default().pulls(
        IMG,
        vec![Err(NOT_FOUND.into()), Err(NOT_FOUND.into()), Ok(4_269_694)],
    );
    images.stats_ms = (1_234, 1_500);
    let mut sim = Sim::new(&p)
        .with_images(images)
        .script("app", vec![forever()]);
    sim.run_until(40_000);
    assert_eq!(sim.times("pullfail app"), vec![0, 10_000]);
    assert_eq!(sim.times("pull app"), vec![30_000]);
    assert_eq!(sim.times("start app#0"), vec![30_000]);
    let st = sim.status();
    let app = cs(&st, "app");
    assert_eq!(state(app), "running");
    assert_eq!(app.image_id, Images::id_of(IMG));
    assert!(app
        .image_id
        .starts_with("docker.io/library/busybox@sha256:"));
    assert_eq!(app.image, "docker.io/library/busybox:1.36");
    let ev = events_of(&sim, "app");
    let last: Vec<&str> = ev.iter().rev().take(4).rev().map(String::as_str).collect();
    assert_eq!(
        last,
        vec![
            "Pulling: Pulling image \"busybox:1.36\"",
            "Pulled: Successfully pulled image \"busybox:1.36\" in 1.234s (1.5s including waiting). Image size: 4269694 bytes.",
            "Created: Created container: app",
            "Started: Started container app",
        ]
    );
}

/// The kubelet never resets the image back-off on success: `pullImage` only calls
/// `backOff.GC()`, which drops entries not updated for 2 × max (600 s). A failure within
/// 600 s of the previous one doubles on …
#[test]
fn image_backoff_survives_a_success_within_600s() {
    let p = pod("Always", vec![], vec![app_with(IMG, Some("Always"))]);
    let images = Images::default().pulls(
        IMG,
        vec![
            Err(NOT_FOUND.into()),
            Err(NOT_FOUND.into()),
            Ok(10),
            Err(NOT_FOUND.into()),
        ],
    );
    let mut sim = Sim::new(&p)
        .with_images(images)
        .script("app", vec![exits(5_000, 1), forever()]);
    sim.run_until(100_000);
    // 0 and 10 fail (back-off 20 s from 10) → 30 pulls and runs; exits at 35 and is
    // restarted at once (a first crash has no crash back-off): that pull fails 25 s after the
    // last failure, so the back-off doubles to 40 s: back-off at the 45 s re-queue, next pull
    // at 75.
    assert_eq!(sim.times("pull app"), vec![30_000]);
    assert_eq!(
        sim.times("pullfail app"),
        vec![0, 10_000, 35_000, 75_000],
        "{}",
        sim.dump()
    );
    assert_eq!(sim.times("pull-backoff app"), vec![20_000, 45_000, 85_000]);
}

/// … and one more than 600 s after it starts again at 10 s.
#[test]
fn image_backoff_starts_over_after_600s() {
    let p = pod("Always", vec![], vec![app_with(IMG, Some("Always"))]);
    let images = Images::default().pulls(
        IMG,
        vec![Err(NOT_FOUND.into()), Ok(10), Err(NOT_FOUND.into())],
    );
    let mut sim = Sim::new(&p)
        .with_images(images)
        .script("app", vec![exits(700_000, 1)]);
    sim.run_until(735_000);
    // Fails at 0, runs from 10 to 710, restarted at once (first crash): the pull fails
    // 710 s after the last failure → 10 s again; 720 fails → 20 s; back-off at 730. (From
    // then on the crash back-off, advanced by every attempt as doBackOff does, holds it too.)
    assert_eq!(
        sim.times("pullfail app"),
        vec![0, 710_000, 720_000],
        "{}",
        sim.dump()
    );
    assert_eq!(sim.times("pull-backoff app"), vec![730_000]);
}

#[test]
fn st3_never_with_absent_image_is_err_image_never_pull() {
    let p = pod("Always", vec![], vec![app_with(IMG, Some("Never"))]);
    let mut sim = Sim::new(&p).with_images(Images::default());
    sim.run_until(25_000);
    let st = sim.status();
    let app = cs(&st, "app");
    let msg = "Container image \"busybox:1.36\" is not present with pull policy of Never";
    assert_eq!(state(app), "waiting:ErrImageNeverPull");
    assert_eq!(waiting_message(app), msg);
    let ev = events_of(&sim, "app");
    assert_eq!(
        &ev[..2],
        &[
            format!("ErrImageNeverPull: {msg}"),
            "Failed: Error: ErrImageNeverPull".to_string()
        ]
    );
    assert!(ev.iter().all(|e| !e.starts_with("Pulling")));
    assert!(sim.times("pull app").is_empty());
    // No record, no back-off: the pod worker's 10 s re-queue.
    assert_eq!(ev.len(), 6, "{ev:?}");
}

#[test]
fn st3_never_with_present_image_runs_it() {
    let p = pod("Always", vec![], vec![app_with(IMG, Some("Never"))]);
    let mut sim = Sim::new(&p)
        .with_images(Images::with_present(&[IMG]))
        .script("app", vec![forever()]);
    sim.run_until(1_000);
    assert_eq!(state(cs(&sim.status(), "app")), "running");
    assert_eq!(
        events_of(&sim, "app")[0],
        "Pulled: Container image \"busybox:1.36\" already present on machine and can be accessed by the pod"
    );
}

#[test]
fn st3_invalid_image_name() {
    let p = pod("Always", vec![], vec![app_with("Busybox", None)]);
    let mut images = Images::default();
    images.invalid.push("Busybox".into());
    let mut sim = Sim::new(&p).with_images(images);
    sim.run_until(1_000);
    let st = sim.status();
    let app = cs(&st, "app");
    assert_eq!(state(app), "waiting:InvalidImageName");
    let msg = "Failed to apply default image tag \"Busybox\": invalid reference format";
    assert_eq!(waiting_message(app), msg);
    assert_eq!(
        events_of(&sim, "app"),
        vec![
            format!("InspectFailed: {msg}"),
            "Failed: Error: InvalidImageName".to_string()
        ]
    );
}

#[test]
fn d2_if_not_present_with_the_image_present_pulls_nothing() {
    let p = pod("Always", vec![], vec![app_with(IMG, None)]);
    let mut sim = Sim::new(&p)
        .with_images(Images::with_present(&[IMG]))
        .script("app", vec![exits(1_000, 1)]);
    sim.run_until(60_000);
    assert!(sim.times("pull app").is_empty());
    assert!(sim.times("start app#2").len() == 1, "{}", sim.dump());
    let ev = events_of(&sim, "app");
    let present = "Pulled: Container image \"busybox:1.36\" already present on machine and can be accessed by the pod";
    assert_eq!(
        &ev[..3],
        &[
            present,
            "Created: Created container: app",
            "Started: Started container app"
        ]
    );
    // Each restart reports the image as present again.
    let starts = sim.times_prefix("start app#").len();
    assert!(starts >= 3);
    assert_eq!(ev.iter().filter(|e| *e == present).count(), starts);
    assert!(ev.iter().all(|e| !e.starts_with("Pulling")));
    let st = sim.status();
    let app = cs(&st, "app");
    assert_eq!(app.image_id, Images::id_of(IMG));
    assert_eq!(app.image, "docker.io/library/busybox:1.36");
}

#[test]
fn d2_always_pulls_at_every_start_including_restarts() {
    // `:latest` defaults to Always (D2); the image is present and is pulled anyway.
    let p = pod("Always", vec![], vec![app_with("busybox", None)]);
    let mut sim = Sim::new(&p)
        .with_images(Images::with_present(&["busybox"]))
        .script("app", vec![exits(1_000, 0)]);
    sim.run_until(60_000);
    let starts = sim.times_prefix("start app#");
    assert!(starts.len() >= 3, "{}", sim.dump());
    assert_eq!(sim.times("pull app"), starts);
    assert_eq!(
        sim.event_messages("Pulling").len(),
        starts.len(),
        "{}",
        sim.dump()
    );
    assert_eq!(
        cs(&sim.status(), "app").image,
        "docker.io/library/busybox:latest"
    );
}

#[test]
fn st9_sidecar_pull_failure_blocks_the_app_init_err_image_pull() {
    let side = json!({"name": "side", "image": "envoy:v1", "restartPolicy": "Always",
        "command": ["sh", "-c", "true"]});
    let p = pod("Always", vec![side], vec![app_with(IMG, None)]);
    let images =
        Images::with_present(&[IMG]).pulls("envoy:v1", vec![Err("connection refused".into())]);
    let mut sim = Sim::new(&p).with_images(images);
    sim.run_until(5_000);
    let st = sim.status();
    assert_eq!(phase(&st), "Pending");
    let side_st = &st.init_container_statuses.as_ref().unwrap()[0];
    assert_eq!(state(side_st), "waiting:ErrImagePull");
    assert_eq!(state(cs(&st, "app")), "waiting:PodInitializing");
    assert_eq!(
        display_status(&as_pod(&p, &sim)).status,
        "Init:ErrImagePull"
    );
    sim.run_until(25_000);
    assert_eq!(
        display_status(&as_pod(&p, &sim)).status,
        "Init:ImagePullBackOff"
    );
    assert!(sim.times_prefix("start app").is_empty());
    assert!(events_of(&sim, "app").is_empty());
}

/// The back-off key is pod + image: two containers of the pod with the same image share it.
#[test]
fn image_backoff_is_per_pod_and_image() {
    let a = app_with(IMG, None);
    let mut b = app_with(IMG, None);
    b["name"] = json!("b");
    let p = pod("Always", vec![], vec![a, b]);
    let mut sim = Sim::new(&p).with_images(failing_pulls());
    sim.run_until(15_000);
    // `app`'s pull fails at 0; `b`, tried right after, finds the pod's entry for the image
    // running and does not pull; at 10 `app` pulls again (the entry ended) and `b` is still
    // in back-off (now 20 s from 10).
    assert_eq!(sim.times("pullfail app"), vec![0, 10_000], "{}", sim.dump());
    assert!(sim.times("pullfail b").is_empty(), "{}", sim.dump());
    assert_eq!(sim.times("pull-backoff b"), vec![0, 10_000]);
    assert_eq!(state(cs(&sim.status(), "b")), "waiting:ImagePullBackOff");
}

#[test]
fn runtime_without_images_keeps_the_spec_image_and_no_id() {
    let p = pod("Always", vec![], vec![ctr("app")]);
    let mut sim = Sim::new(&p).script("app", vec![forever()]);
    sim.run_until(1_000);
    let st = sim.status();
    let app = cs(&st, "app");
    assert_eq!(app.image, "busybox:1.36");
    assert_eq!(app.image_id, "");
    assert!(sim.event_messages("Pulled").is_empty());
}

#[test]
fn stale_image_inputs_are_ignored() {
    let p = pod("Always", vec![], vec![app_with(IMG, None)]);
    let mut e = PodEngine::new(&p, EngineConfig::default(), T0).unwrap();
    e.plan(T0);
    e.handle(Input::SandboxReady, T0);
    let acts = e.plan(T0);
    let Some(Action::StartContainer {
        instance, image, ..
    }) = acts.first().cloned()
    else {
        panic!("{acts:?}")
    };
    assert_eq!(image.policy, PullPolicy::IfNotPresent);
    assert!(!image.pull_backoff);
    let other = skiff_engine::InstanceId(instance.0 + 7);
    e.handle(
        Input::ImagePulling {
            name: "app".into(),
            instance: other,
        },
        T0,
    );
    e.handle(
        Input::ImagePulling {
            name: "nope".into(),
            instance,
        },
        T0,
    );
    assert!(e.plan(T0).is_empty());
}

#[test]
fn normalized_name_is_what_the_status_shows() {
    assert_eq!(
        normalized_name("busybox").as_deref(),
        Some("docker.io/library/busybox:latest")
    );
}
