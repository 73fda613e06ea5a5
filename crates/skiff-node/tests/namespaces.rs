//! Pod sandbox namespaces and container mount namespaces (issue 4 items 1, 2; SEMANTICS S1),
//! on the node layer: `PodSandbox::create` → `container_setup` → `HostRuntime::start` →
//! `destroy`. Root only (skipped with a reason otherwise).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_node::isolation::{MountSpec, Propagation};
use skiff_node::launch::{ContainerLaunch, EnvSources, PodIdentity};
use skiff_node::logs::LogLine;
use skiff_node::namespaces::{support, Support};
use skiff_node::probe::{HostProber, ProbeOutcome, Prober};
use skiff_node::runtime::{HostContainer, HostRuntime, StopSignal};
use skiff_node::sandbox::{PodSandbox, SandboxOptions};
use tokio::sync::mpsc;

fn root() -> bool {
    if support() != &Support::Full {
        eprintln!("skipped: namespaces need root (CAP_SYS_ADMIN)");
        return false;
    }
    true
}

fn pod_yaml(name: &str, spec_extra: &str) -> Pod {
    let y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  uid: uid-{name}-{}\nspec:\n{spec_extra}  containers:\n  - name: app\n    image: host\n",
        std::process::id()
    );
    serde_yaml_ng::from_str(&y).unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
    identity: PodIdentity,
    sandbox: Option<PodSandbox>,
    containers: Vec<Arc<HostContainer>>,
}

impl Fixture {
    async fn new(pod: &Pod) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let identity = PodIdentity {
            namespace: "default".into(),
            name: pod.metadata.name.clone().unwrap(),
            uid: pod.metadata.uid.clone().unwrap(),
            ..Default::default()
        };
        let opts = SandboxOptions {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let sandbox = PodSandbox::create(pod, &identity, &opts).await.unwrap();
        Fixture {
            dir,
            identity,
            sandbox: Some(sandbox),
            containers: Vec::new(),
        }
    }

    fn sandbox(&self) -> &PodSandbox {
        self.sandbox.as_ref().unwrap()
    }

    async fn start(
        &mut self,
        c: &Container,
        extra_mounts: Vec<MountSpec>,
        logs: Option<mpsc::Sender<LogLine>>,
    ) -> Arc<HostContainer> {
        let l = ContainerLaunch::from_container(
            c,
            &self.identity,
            self.dir.path(),
            0,
            &EnvSources::NONE,
        )
        .unwrap();
        let mut setup = self.sandbox().container_setup(c, &l).unwrap();
        if !extra_mounts.is_empty() {
            setup
                .mounts
                .get_or_insert_with(Vec::new)
                .extend(extra_mounts);
        }
        let ct = Arc::new(
            HostRuntime::new()
                .unwrap()
                .start(l, setup, logs)
                .await
                .unwrap(),
        );
        self.containers.push(ct.clone());
        ct
    }

    /// Stops every container, waits for cleanup, destroys the sandbox; returns the holder pid.
    async fn teardown(mut self) -> Option<i32> {
        for c in &self.containers {
            let _ = c.signal(StopSignal::Kill);
        }
        for c in &self.containers {
            c.cleaned_up().await;
        }
        self.containers.clear();
        let sb = self.sandbox.take().unwrap();
        let holder = sb.holder_pid();
        sb.destroy().await;
        holder
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Failure path: kill what is left by PID (the holder exits when its lifeline closes).
        for c in &self.containers {
            kill_pid(c.pid());
        }
        if let Some(pid) = self.sandbox.as_ref().and_then(|s| s.holder_pid()) {
            kill_pid(pid);
        }
    }
}

fn ns_of(pid: &str, kind: &str) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item1_containers_share_the_pod_network_and_the_host_cannot_connect() {
    if !root() {
        return;
    }
    let pod = pod_yaml("net-share", "");
    let mut fx = Fixture::new(&pod).await;
    let port = free_port();
    let www = fx.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("hello"), "from-app\n").unwrap();
    let app = sh(
        "app",
        &format!(
            "exec busybox httpd -f -p 127.0.0.1:{port} -h {}",
            www.display()
        ),
    );
    let app_ct = fx.start(&app, vec![], None).await;
    let side = sh(
        "side",
        &format!(
            "for i in $(seq 100); do busybox wget -q -O- http://127.0.0.1:{port}/hello && exit 0; sleep 0.05; done; exit 1"
        ),
    );
    let (tx, mut rx) = mpsc::channel(16);
    let side_ct = fx.start(&side, vec![], Some(tx)).await;
    assert_eq!(
        line_matching(&mut rx, |l| l.contains("from")).await,
        "from-app"
    );
    assert_eq!(side_ct.wait().await.exit_code, 0);
    // Same pod namespaces for both, not the host's.
    let a = app_ct.pid().to_string();
    for kind in ["net", "ipc", "uts"] {
        assert_ne!(ns_of(&a, kind), ns_of("self", kind), "{kind}");
    }
    assert_eq!(
        ns_of(&a, "uts"),
        ns_of(&fx.sandbox().holder_pid().unwrap().to_string(), "uts")
    );
    // The host does not see the pod's port.
    let err = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let holder = fx.teardown().await.unwrap();
    eventually("holder gone", || !exists(holder)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item1_hostname_is_the_pod_name_or_spec_hostname() {
    if !root() {
        return;
    }
    for (pod, want) in [
        (pod_yaml("host-name-pod", ""), "host-name-pod"),
        (
            pod_yaml("other", "  hostname: custom-host\n"),
            "custom-host",
        ),
    ] {
        let mut fx = Fixture::new(&pod).await;
        let (tx, mut rx) = mpsc::channel(16);
        let c = sh("app", "echo host=$(cat /proc/sys/kernel/hostname)");
        fx.start(&c, vec![], Some(tx)).await;
        assert_eq!(
            line_matching(&mut rx, |l| l.starts_with("host=")).await,
            format!("host={want}")
        );
        fx.teardown().await;
    }
    // The host's hostname was not touched.
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim(),
        "custom-host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item1_host_network_and_host_ipc_use_the_host_namespaces() {
    if !root() {
        return;
    }
    let pod = pod_yaml("hostnet", "  hostNetwork: true\n  hostIPC: true\n");
    let mut fx = Fixture::new(&pod).await;
    assert_eq!(fx.sandbox().holder_pid(), None, "nothing to hold");
    let c = sh("app", "sleep 30");
    let ct = fx.start(&c, vec![], None).await;
    let p = ct.pid().to_string();
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(ns_of(&p, kind), ns_of("self", kind), "{kind}");
    }
    // It still gets its own mount namespace, and (without hostPID) its own PID namespace.
    assert_ne!(ns_of(&p, "mnt"), ns_of("self", "mnt"));
    assert_ne!(ns_of(&p, "pid"), ns_of("self", "pid"));
    fx.teardown().await;

    // hostPID: the host's PID namespace.
    let pod = pod_yaml("hostpid", "  hostPID: true\n");
    let mut fx = Fixture::new(&pod).await;
    let ct = fx.start(&sh("app", "sleep 30"), vec![], None).await;
    assert_eq!(ns_of(&ct.pid().to_string(), "pid"), ns_of("self", "pid"));
    fx.teardown().await;

    // hostNetwork alone: own IPC namespace, host network.
    let pod = pod_yaml("hostnet2", "  hostNetwork: true\n");
    let mut fx = Fixture::new(&pod).await;
    let ct = fx.start(&sh("app", "sleep 30"), vec![], None).await;
    let p = ct.pid().to_string();
    assert_eq!(ns_of(&p, "net"), ns_of("self", "net"));
    assert_ne!(ns_of(&p, "ipc"), ns_of("self", "ipc"));
    let holder = fx.teardown().await.unwrap();
    eventually("holder gone", || !exists(holder)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item1_share_process_namespace_gives_the_pod_one_pid_namespace() {
    if !root() {
        return;
    }
    let pod = pod_yaml("pidshare", "  shareProcessNamespace: true\n");
    let mut fx = Fixture::new(&pod).await;
    let holder = fx.sandbox().holder_pid().unwrap();
    let a = fx.start(&sh("a", "exec sleep 31"), vec![], None).await;
    let (tx, mut rx) = mpsc::channel(64);
    let b = sh(
        "b",
        "echo self=$$; for d in /proc/[0-9]*; do echo \"proc ${d#/proc/} $(cat $d/cmdline | tr '\\0' ' ')\"; done; echo done",
    );
    fx.start(&b, vec![], Some(tx)).await;
    let mut lines = Vec::new();
    loop {
        let l = line_matching(&mut rx, |_| true).await;
        if l == "done" {
            break;
        }
        lines.push(l);
    }
    // B sees A's process and the holder as PID 1, and nothing of the host.
    assert!(lines.iter().any(|l| l.contains("sleep 31")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("proc 1 ")), "{lines:?}");
    assert!(lines.len() < 10, "host processes visible: {lines:?}");
    assert_eq!(
        ns_of(&a.pid().to_string(), "pid"),
        ns_of(&holder.to_string(), "pid")
    );
    // skiff itself stays in the host's PID namespace.
    assert_ne!(ns_of("self", "pid"), ns_of(&holder.to_string(), "pid"));
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/pid_for_children").unwrap(),
        ns_of("self", "pid")
    );
    fx.teardown().await;
    eventually("holder gone", || !exists(holder)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item2_mounts_appear_inside_the_container_only_and_read_only_holds() {
    if !root() {
        return;
    }
    let before = mountinfo();
    let pod = pod_yaml("mounts", "");
    let mut fx = Fixture::new(&pod).await;
    let fx_dir = fx.dir.path().display().to_string();
    let vol = fx.dir.path().join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("data"), "volume-content\n").unwrap();
    let rw = fx.dir.path().join("rwvol");
    std::fs::create_dir_all(&rw).unwrap();
    let target = fx.dir.path().join("inside/mnt");
    let target_rw = fx.dir.path().join("inside/rw");
    let script = format!(
        "cat {t}/data; if echo x > {t}/new 2>/dev/null; then echo ro=broken; else echo ro=held; fi; echo w > {trw}/written && echo rw=ok; sleep 30",
        t = target.display(),
        trw = target_rw.display()
    );
    let mounts = vec![
        MountSpec {
            source: vol.clone(),
            target: target.clone(),
            read_only: true,
            propagation: Propagation::Private,
            ..Default::default()
        },
        MountSpec {
            source: rw.clone(),
            target: target_rw.clone(),
            read_only: false,
            propagation: Propagation::HostToContainer,
            ..Default::default()
        },
    ];
    // Mount points are made by the sandbox's setup (they do not exist yet).
    let c = sh("app", &script);
    let l = ContainerLaunch::from_container(&c, &fx.identity, fx.dir.path(), 0, &EnvSources::NONE)
        .unwrap();
    let mut setup = fx.sandbox().container_setup(&c, &l).unwrap();
    setup.mounts.get_or_insert_with(Vec::new).extend(mounts);
    std::fs::create_dir_all(&target).unwrap();
    std::fs::create_dir_all(&target_rw).unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let ct = Arc::new(
        HostRuntime::new()
            .unwrap()
            .start(l, setup, Some(tx))
            .await
            .unwrap(),
    );
    fx.containers.push(ct.clone());
    assert_eq!(
        line_matching(&mut rx, |l| l == "volume-content").await,
        "volume-content"
    );
    assert_eq!(
        line_matching(&mut rx, |l| l.starts_with("ro=")).await,
        "ro=held"
    );
    assert_eq!(
        line_matching(&mut rx, |l| l.starts_with("rw=")).await,
        "rw=ok"
    );
    assert_eq!(std::fs::read_to_string(rw.join("written")).unwrap(), "w\n");
    // Not on the host: the mount point is an empty directory there.
    assert!(!mountinfo().contains(&target.display().to_string()));
    assert!(!target.join("data").exists());
    // The container's own mount table has it, read-only.
    let theirs = std::fs::read_to_string(format!("/proc/{}/mountinfo", ct.pid())).unwrap();
    let mount = skiff_node::mountinfo::parse(&theirs)
        .into_iter()
        .find(|m| m.mount_point == target)
        .expect("mount in the container");
    assert!(mount.mount_options.starts_with("ro"), "{mount:?}");

    // An exec probe runs in the container's mount namespace (sees the volume) and network.
    let prober = HostProber::new().unwrap();
    let probe: k8s_openapi::api::core::v1::Probe = serde_yaml_ng::from_str(&format!(
        "exec:\n  command: [cat, {}/data]\ntimeoutSeconds: 5\n",
        target.display()
    ))
    .unwrap();
    let r = prober.probe(&probe, ct.exec_context()).await;
    assert_eq!(r.outcome, ProbeOutcome::Success, "{}", r.output);
    assert!(r.output.contains("volume-content"));

    fx.teardown().await;
    // Nothing left in the host's mount table.
    assert_eq!(count_mounts(&before), count_mounts(&mountinfo()));
    assert!(
        !mountinfo().contains(&fx_dir),
        "the pod's /dev/shm is unmounted"
    );
}

/// Host mounts, without the pod `/dev/shm` tmpfs of pods that other tests of this binary
/// run at the same time (each test's own are checked by path).
fn count_mounts(mi: &str) -> usize {
    skiff_node::mountinfo::parse(mi)
        .iter()
        .filter(|m| !m.mount_point.ends_with("shm"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item3_probes_reach_the_pod_network_from_inside() {
    if !root() {
        return;
    }
    let pod = pod_yaml("probe-net", "");
    let mut fx = Fixture::new(&pod).await;
    let port = free_port();
    let www = fx.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "ok").unwrap();
    let app = sh(
        "app",
        &format!(
            "exec busybox httpd -f -p 127.0.0.1:{port} -h {}",
            www.display()
        ),
    );
    let ct = fx.start(&app, vec![], None).await;
    let prober = HostProber::new().unwrap();
    let http: k8s_openapi::api::core::v1::Probe =
        serde_yaml_ng::from_str(&format!("httpGet:\n  port: {port}\n  path: /\n")).unwrap();
    let tcp: k8s_openapi::api::core::v1::Probe =
        serde_yaml_ng::from_str(&format!("tcpSocket:\n  port: {port}\n")).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = prober.probe(&http, ct.exec_context()).await;
        if r.outcome == ProbeOutcome::Success {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", r.output);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        prober.probe(&tcp, ct.exec_context()).await.outcome,
        ProbeOutcome::Success
    );
    fx.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item8_sandbox_teardown_leaves_no_holder_mount_or_mountpoint() {
    if !root() {
        return;
    }
    let before = mountinfo();
    let pod = pod_yaml("leak", "  shareProcessNamespace: true\n");
    let mut fx = Fixture::new(&pod).await;
    let vol = fx.dir.path().join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    let target = fx.dir.path().join("made/by/skiff");
    let c = sh("app", "sleep 30");
    let l = ContainerLaunch::from_container(&c, &fx.identity, fx.dir.path(), 0, &EnvSources::NONE)
        .unwrap();
    let mut setup = fx.sandbox().container_setup(&c, &l).unwrap();
    setup.mounts = Some(vec![MountSpec {
        source: vol,
        target: target.clone(),
        read_only: false,
        propagation: Propagation::Private,
        ..Default::default()
    }]);
    // What the sandbox does for the mounts it hands out: created here because the test
    // adds its mount after container_setup.
    std::fs::create_dir_all(&target).unwrap();
    let ct = Arc::new(
        HostRuntime::new()
            .unwrap()
            .start(l, setup, None)
            .await
            .unwrap(),
    );
    fx.containers.push(ct.clone());
    let holder = fx.sandbox().holder_pid().unwrap();
    let holder_ns = ns_of(&holder.to_string(), "net");
    let holder_dir: &Path = fx.dir.path();
    assert!(holder_dir.exists());
    fx.teardown().await;
    eventually("holder reaped", || !exists(holder)).await;
    assert_eq!(count_mounts(&before), count_mounts(&mountinfo()));
    // No process of skiff's is left in the pod's network namespace.
    let left: Vec<_> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .ok()
                .as_ref()
                == Some(&holder_ns)
        })
        .collect();
    assert!(left.is_empty(), "processes left in the pod netns: {left:?}");
}
