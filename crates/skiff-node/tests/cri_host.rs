//! The `host` runtime behind the seam (`skiff_node::cri::host`), on real processes: a sandbox,
//! a container created and started in it, exec, probes, status and list; a second runtime (a
//! skiff that came after) finds the instance from its records on disk, signals it and sees its
//! end; then removal and the sandbox's teardown. Needs root (the pod sandbox) and the
//! `skiff-monitor` binary beside the test executables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use skiff_engine::ProbeKind;
use skiff_node::cri::host::{HostCri, HostInstance, HostProbes};
use skiff_node::cri::{
    FoundState, ProbeRequest, ProbeService, RuntimeService, SandboxConfig, StopSignal,
};
use skiff_node::launch::{ContainerLaunch, EnvSources, PodIdentity};
use skiff_node::probe::ProbeOutcome;
use skiff_node::reaper::ExitStatus;
use skiff_node::sandbox::SandboxOptions;

fn pod(uid: &str) -> Pod {
    let yaml = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: seam, namespace: default, uid: "{uid}"}}
spec:
  runtimeClassName: host
  restartPolicy: Never
  containers:
  - name: app
    image: host
    command: [/bin/sh, -c, "echo started; trap 'exit 3' TERM; while :; do sleep 0.05; done"]
    env: [{{name: GREETING, value: hello}}]
"#
    );
    let pod: Pod = serde_yaml_ng::from_str(&yaml).unwrap();
    let mut prepared = skiff_model::prepare_pod(pod).unwrap();
    prepared.metadata.uid = Some(uid.into());
    prepared
}

#[tokio::test]
async fn host_runtime_through_the_seam_and_an_instance_found_on_disk() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root (pod sandbox)");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let uid = format!("cri{:06x}-host", std::process::id() & 0xff_ffff);
    let pod = pod(&uid);
    let identity = PodIdentity {
        namespace: "default".into(),
        name: "seam".into(),
        uid: uid.clone(),
        ..Default::default()
    };
    let config = SandboxConfig {
        pod: Arc::new(pod.clone()),
        identity: identity.clone(),
        options: Arc::new(SandboxOptions {
            data_dir: data.path().to_path_buf(),
            objects: Default::default(),
            persistent: false,
        }),
    };
    let cri = HostCri::new().unwrap();
    let probes = HostProbes::new().unwrap();
    let ready = cri.run_pod_sandbox(&config).await.unwrap();
    let sandbox = ready.sandbox;

    let spec = pod.spec.as_ref().unwrap().containers[0].clone();
    let mut launch =
        ContainerLaunch::from_container(&spec, &identity, data.path(), 0, &EnvSources::NONE)
            .unwrap();
    launch.instance = 7;
    let created = cri.create_container(&sandbox, &spec, launch).unwrap();
    let c = cri.start_container(created, None).await.unwrap();
    let status = cri.status(&c);
    assert!(status.running && status.exit.is_none(), "{status:?}");

    // ExecSync and an exec probe run in the container (its env).
    let out = cri
        .exec_sync(
            &c,
            vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo $GREETING; exit 4".into(),
            ],
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(out.status, Some(ExitStatus::Exited(4)));
    assert_eq!(out.output, "hello\n");
    let probe = serde_json::from_value(serde_json::json!({
        "exec": {"command": ["/bin/sh", "-c", "test \"$GREETING\" = hello"]}
    }))
    .unwrap();
    let r = probes
        .probe(
            &c,
            ProbeRequest {
                container_name: "app".into(),
                kind: ProbeKind::Readiness,
                probe,
                limit: Duration::from_secs(2),
            },
        )
        .await;
    assert_eq!(r.outcome, ProbeOutcome::Success, "{}", r.output);

    // What this runtime holds.
    let listing = cri.list_pod(&config);
    assert!(listing.sandbox.is_none());
    assert_eq!(listing.containers.len(), 1);
    let held = &listing.containers[0];
    assert_eq!(
        (
            held.found.name.as_str(),
            held.found.instance,
            held.found.attempt
        ),
        ("app", 7, 0)
    );
    assert_eq!(held.found.state, FoundState::Running);
    assert!(matches!(held.handle, Some(HostInstance::Started(_))));

    // A skiff that came after finds it from its records, and can stop it and see its end.
    let later = HostCri::new().unwrap();
    let mut found = later.list_pod(&config).containers;
    assert_eq!(found.len(), 1);
    let f = found.remove(0);
    assert_eq!(f.found.state, FoundState::Running);
    assert_eq!(f.found.runtime_id, cri.status(&c).id);
    let handle = f.handle.unwrap();
    assert!(matches!(handle, HostInstance::Found(_)));
    assert!(later.status(&handle).running);
    let unreachable = later
        .exec_sync(&handle, vec!["true".into()], Duration::from_secs(1))
        .await;
    assert_eq!(unreachable.status, None);
    later.signal(&handle, StopSignal::Term).unwrap();
    let seen_later = tokio::time::timeout(Duration::from_secs(10), later.wait(&handle))
        .await
        .unwrap();
    assert!(!seen_later.status_unknown, "{seen_later:?}");
    assert_eq!(seen_later.exit_code, 3);

    // The runtime that started it sees the same end; removed, then the sandbox goes.
    let exit = tokio::time::timeout(Duration::from_secs(10), cri.wait(&c))
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 3);
    assert!(!cri.status(&c).running);
    cri.remove_container(c).await;
    let after = cri.list_pod(&config).containers;
    assert_eq!(after.len(), 1, "the record stays on disk");
    assert!(
        matches!(
            after[0].found.state,
            FoundState::Exited { exit_code: 3, .. }
        ),
        "{:?}",
        after[0].found
    );
    assert!(after[0].handle.is_none());
    cri.stop_pod_sandbox(sandbox).await;
}
