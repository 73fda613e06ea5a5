//! Never started twice (issue 11 item 6): a process killed between spawning a container
//! instance and recording its PIDs. Its own test binary: it uses the node's reaper, which
//! takes every child of the process (`serve_crash` waits for its daemons itself).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

fn pod(uid: &str) -> Pod {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: intr, namespace: default}
spec:
  runtimeClassName: host
  restartPolicy: Always
  containers:
  - name: app
    image: host
    command: [/bin/sh, -c, "echo started; while :; do sleep 0.05; done"]
"#;
    let pod: Pod = serde_yaml_ng::from_str(yaml).unwrap();
    let mut prepared = skiff_model::prepare_pod(pod).unwrap();
    prepared.metadata.uid = Some(uid.into());
    prepared
}

/// Never started twice: a process killed between spawning an instance and recording its
/// PIDs leaves the record written before the spawn (no PIDs). The monitor's own started
/// record completes it, and the instance is adopted; without that either, the next process
/// finds the instance in an unknown state (restart counts continue from it) and kills
/// whatever of it runs, through its cgroup — so the engine's restart is the only instance.
#[tokio::test]
async fn an_interrupted_start_is_killed_not_doubled() {
    use skiff_node::cri::host::HostCri;
    use skiff_node::cri::{FoundState, RuntimeService, SandboxConfig};
    use skiff_node::launch::{ContainerLaunch, EnvSources, PodIdentity};
    use skiff_node::sandbox::SandboxOptions;
    use std::sync::Arc;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root (pod sandbox)");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let uid = format!(
        "intr{:06x}-0000-4000-8000-000000000001",
        std::process::id() & 0xff_ffff
    );
    let pod = pod(&uid);
    let identity = PodIdentity {
        namespace: "default".into(),
        name: "intr".into(),
        uid: uid.clone(),
        ..Default::default()
    };
    let config = SandboxConfig {
        pod: Arc::new(pod.clone()),
        identity: identity.clone(),
        options: Arc::new(SandboxOptions {
            data_dir: data.path().to_path_buf(),
            objects: Default::default(),
            persistent: true,
        }),
    };
    let cri = HostCri::new().unwrap();
    let sandbox = cri.run_pod_sandbox(&config).await.unwrap().sandbox;
    let spec = pod.spec.as_ref().unwrap().containers[0].clone();
    let mut launch =
        ContainerLaunch::from_container(&spec, &identity, data.path(), 0, &EnvSources::NONE)
            .unwrap();
    launch.instance = 3;
    let created = cri.create_container(&sandbox, &spec, launch).unwrap();
    let c = cri.start_container(created, None).await.unwrap();
    let pid = c.pid();
    assert!(common::alive(pid));

    // As the record was before the PIDs were known.
    let record_path = config.pod_dir().join("app/0.state.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    assert!(record["cgroup"].is_string(), "{record}");
    record["monitor"] = serde_json::json!({"pid": 0, "start_ticks": 0});
    record["main"] = serde_json::json!({"pid": 0, "start_ticks": 0});
    std::fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();

    // The monitor recorded the processes when it started (`0.started`): the record is
    // completed from it and the instance adopted as running — not killed, not restarted.
    let started = config.pod_dir().join("app/0.started");
    // (Written by the monitor right after its exec, a moment after the start returned.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while !started.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(started.exists(), "the monitor's started record");
    {
        let adopting = HostCri::new().unwrap();
        let listing = adopting.list_pod(&config);
        assert_eq!(listing.containers.len(), 1);
        let found = &listing.containers[0].found;
        assert_eq!(
            (found.name.as_str(), found.instance, &found.state),
            ("app", 3, &FoundState::Running)
        );
        assert!(common::alive(pid), "an adopted instance keeps running");
    }

    // Without it (the daemon died before the monitor could write it), the instance is
    // unknown and whatever of it runs is killed through its cgroup.
    std::fs::remove_file(&started).unwrap();
    let later = HostCri::new().unwrap();
    let listing = later.list_pod(&config);
    assert_eq!(listing.containers.len(), 1);
    let found = &listing.containers[0].found;
    assert_eq!(
        (
            found.name.as_str(),
            found.instance,
            found.attempt,
            &found.state
        ),
        ("app", 3, 0, &FoundState::Unknown)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while common::alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!common::alive(pid), "the interrupted instance was killed");

    // Clean up: the adopted view lets go, the original tears everything down.
    drop(listing);
    cri.remove_container(c).await;
    cri.stop_pod_sandbox(sandbox).await;
    assert!(!config.pod_dir().join("sandbox.json").exists());
}
