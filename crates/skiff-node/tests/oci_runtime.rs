//! The OCI runtime class behind the seam (`skiff_node::oci::cri::OciCri`) with the real runc
//! binary: image containers in a pod sandbox, from a fake image store whose layers are built
//! here (busybox-static + /etc/passwd). Needs root, runc, /bin/busybox and the
//! `skiff-monitor` binary beside the test executables; skipped otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_node::cri::host::HostInstance;
use skiff_node::cri::{
    ImageError, ImageInfo, ImageService, PullSecrets, RuntimeService, SandboxConfig, StopSignal,
};
use skiff_node::launch::{ContainerLaunch, EnvSources, PodIdentity};
use skiff_node::oci::cri::{OciCri, OciInstance, OciSandbox};
use skiff_node::reaper::ExitStatus;
use skiff_node::sandbox::SandboxOptions;
use skiff_node::spec::{ImageProcessConfig, ImageRootfs};

/// Images by name: lower dirs (top-most first) and config; counts holders.
#[derive(Default)]
struct FakeImages {
    images: HashMap<String, ImageRootfs>,
    held: Mutex<HashMap<String, String>>,
}

impl ImageService for FakeImages {
    fn image_status(&self, image: &str) -> Result<Option<ImageInfo>, ImageError> {
        Ok(self.images.get(image).map(|i| ImageInfo {
            id: i.image_id.clone(),
            repo_digest: None,
            size: 0,
        }))
    }
    fn pull_image(
        &self,
        image: &str,
        _s: &PullSecrets,
    ) -> impl Future<Output = Result<ImageInfo, ImageError>> + Send + 'static {
        let r = self
            .image_status(image)
            .and_then(|i| i.ok_or_else(|| ImageError::Pull("no such image".into())));
        async move { r }
    }
    fn rootfs(&self, image: &str, holder: &str) -> Result<ImageRootfs, ImageError> {
        let r = self
            .images
            .get(image)
            .cloned()
            .ok_or_else(|| ImageError::Store(format!("image {image:?} not present")))?;
        self.held
            .lock()
            .unwrap()
            .insert(holder.to_string(), image.to_string());
        Ok(r)
    }
    fn release(&self, holder: &str) {
        self.held.lock().unwrap().remove(holder);
    }
}

/// A layer with busybox (and its applets) and /etc/passwd, /etc/group.
fn busybox_layer(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let out = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("group"),
        "root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
    )
    .unwrap();
    for d in ["proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
}

fn image(
    lower_dirs: Vec<PathBuf>,
    entrypoint: Option<Vec<&str>>,
    cmd: Option<Vec<&str>>,
) -> ImageRootfs {
    let v = |x: Option<Vec<&str>>| x.map(|v| v.into_iter().map(String::from).collect());
    ImageRootfs {
        image_id: "sha256:0123".into(),
        config: ImageProcessConfig {
            entrypoint: v(entrypoint),
            cmd: v(cmd),
            env: vec!["PATH=/bin".into(), "FROM_IMAGE=yes".into()],
            working_dir: None,
            user: None,
            stop_signal: None,
        },
        lower_dirs,
    }
}

fn pod(uid: &str, containers: serde_json::Value) -> Pod {
    pod_with_volumes(uid, containers, serde_json::json!([]))
}

fn pod_with_volumes(uid: &str, containers: serde_json::Value, volumes: serde_json::Value) -> Pod {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "oci", "namespace": "default", "uid": uid},
        "spec": {"restartPolicy": "Never", "containers": containers, "volumes": volumes}
    }))
    .unwrap();
    let mut p = skiff_model::prepare_pod(pod).unwrap();
    p.metadata.uid = Some(uid.into());
    p
}

fn usable() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return false;
    }
    if skiff_node::oci::runc::detected()
        .get(skiff_node::oci::runc::Handler::Runc)
        .is_none()
    {
        eprintln!(
            "skipping: runc does not work here: {}",
            skiff_node::oci::runc::detected().describe()
        );
        return false;
    }
    Path::new("/bin/busybox").exists()
}

struct Env {
    data: tempfile::TempDir,
    cri: OciCri<FakeImages>,
    images: Arc<FakeImages>,
    config: SandboxConfig,
    pod: Pod,
    identity: PodIdentity,
}

fn env(uid: &str, pod: Pod, images: FakeImages) -> Env {
    let data = tempfile::tempdir().unwrap();
    let identity = PodIdentity {
        namespace: "default".into(),
        name: "oci".into(),
        uid: uid.into(),
        pod_ip: Some("127.0.0.1".into()),
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
    let images = Arc::new(images);
    let rt = skiff_node::oci::runc::detected()
        .get(skiff_node::oci::runc::Handler::Runc)
        .unwrap()
        .clone();
    let cri = OciCri::new(rt, images.clone()).unwrap();
    Env {
        data,
        cri,
        images,
        config,
        pod,
        identity,
    }
}

impl Env {
    fn spec(&self, name: &str) -> Container {
        self.pod
            .spec
            .as_ref()
            .unwrap()
            .containers
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .clone()
    }

    async fn start(&self, sb: &OciSandbox, name: &str) -> Result<OciInstance, String> {
        let spec = self.spec(name);
        let launch = ContainerLaunch::from_container_for_image(
            &spec,
            &self.identity,
            self.data.path(),
            0,
            &EnvSources::NONE,
        )
        .map_err(|e| e.to_string())?;
        let created = self
            .cri
            .create_container(sb, &spec, launch)
            .map_err(|e| e.to_string())?;
        self.cri
            .start_container(created, None)
            .await
            .map_err(|e| e.to_string())
    }

    fn log_of(&self, name: &str) -> String {
        let dir = self
            .data
            .path()
            .join("pods")
            .join(self.identity.dir_name())
            .join(name);
        std::fs::read_to_string(dir.join("0.log")).unwrap_or_default()
    }
}

fn pid_of(c: &OciInstance) -> i32 {
    match c.host() {
        HostInstance::Started(h) => h.pid(),
        HostInstance::Found(_) => panic!("not started here"),
    }
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&d)))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_containers_through_runc() {
    if !usable() {
        return;
    }
    let layers = tempfile::tempdir().unwrap();
    let base = layers.path().join("base");
    busybox_layer(&base);
    // 100 layers: 99 small ones over the base, each adding a file; the top-most wins.
    let mut many = Vec::new();
    for i in (0..99).rev() {
        let d = layers
            .path()
            .join(format!("layer-with-a-long-directory-name-{i:03}"));
        std::fs::create_dir_all(d.join("layers")).unwrap();
        std::fs::write(d.join("layers").join(format!("{i}")), "x").unwrap();
        std::fs::write(d.join("top"), format!("{i}\n")).unwrap();
        many.push(d);
    }
    many.push(base.clone());
    let mut images = FakeImages::default();
    images.images.insert(
        "busybox".into(),
        image(
            vec![base.clone()],
            None,
            Some(vec!["sh", "-c", "echo from-cmd $FROM_IMAGE; exit 7"]),
        ),
    );
    images.images.insert(
        "entry".into(),
        image(
            vec![base.clone()],
            Some(vec!["echo", "entry:"]),
            Some(vec!["cmd-arg"]),
        ),
    );
    images.images.insert(
        "many".into(),
        image(
            many,
            None,
            Some(vec!["sh", "-c", "cat /top; ls /layers | wc -l"]),
        ),
    );
    let uid = format!("oci{:06x}-run", std::process::id() & 0xff_ffff);
    let pod = pod(
        &uid,
        serde_json::json!([
            {"name": "cmd", "image": "busybox"},
            {"name": "entry", "image": "entry", "args": ["pod-arg"]},
            {"name": "many", "image": "many"},
            {"name": "long", "image": "busybox", "command": ["sh", "-c", "echo hi > /tmp/w; trap 'exit 3' TERM; while :; do sleep 0.05; done"],
             "env": [{"name": "GREETING", "value": "hello"}]},
            {"name": "msg", "image": "busybox", "command": ["sh", "-c", "ls -l /dev/termination-log | cut -c1-10 > /dev/termination-log; exit 1"]},
            {"name": "ro", "image": "busybox", "command": ["sh", "-c", "touch /x 2>&1; cat /etc/hostname; grep -c Kubernetes-managed /etc/hosts"],
             "securityContext": {"readOnlyRootFilesystem": true}},
            {"name": "oom", "image": "busybox", "command": ["sh", "-c", "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while :; do x=$x$x; done"],
             "resources": {"limits": {"memory": "16Mi"}}},
            {"name": "nope", "image": "busybox", "command": ["/no/such/binary"]},
        ]),
    );
    let e = env(&uid, pod, images);
    let sb = e.cri.run_pod_sandbox(&e.config).await.unwrap().sandbox;

    // Cmd from the image, image env, exit code.
    let c = e.start(&sb, "cmd").await.unwrap();
    let x = e.cri.wait(&c).await;
    assert_eq!((x.exit_code, x.status), (7, ExitStatus::Exited(7)), "{x:?}");
    assert!(
        e.log_of("cmd").contains("from-cmd yes"),
        "{}",
        e.log_of("cmd")
    );
    e.cri.remove_container(c).await;

    // Entrypoint + the pod's args (Cmd ignored).
    let c = e.start(&sb, "entry").await.unwrap();
    let x = e.cri.wait(&c).await;
    assert_eq!(x.exit_code, 0);
    assert!(
        e.log_of("entry").contains("entry: pod-arg"),
        "{}",
        e.log_of("entry")
    );
    e.cri.remove_container(c).await;

    // 100 layers.
    let c = e.start(&sb, "many").await.unwrap();
    let x = e.cri.wait(&c).await;
    assert_eq!(x.exit_code, 0, "{}", e.log_of("many"));
    let log = e.log_of("many");
    // The top-most layer (98) wins; all 99 small layers are seen.
    assert!(log.contains(" 98\n") && log.contains(" 99\n"), "{log}");
    e.cri.remove_container(c).await;

    // A running one: exec (env, own PID namespace), cgroup placement, SIGTERM.
    let c = e.start(&sb, "long").await.unwrap();
    let pid = pid_of(&c);
    let out = e
        .cri
        .exec_sync(&c, vec!["sh".into(), "-c".into(), "echo $GREETING $FROM_IMAGE; cat /tmp/w; echo $$ > /dev/null; ls /proc | grep -c '^[0-9]'".into()], Duration::from_secs(5))
        .await;
    assert_eq!(out.status, Some(ExitStatus::Exited(0)), "{}", out.output);
    let lines: Vec<&str> = out.output.lines().collect();
    assert_eq!(lines[..2], ["hello yes", "hi"], "{}", out.output);
    // The container's PID namespace: its init, the sleep, the exec'd sh and its children.
    assert!(lines[2].parse::<u32>().unwrap() < 8, "{}", out.output);
    // The init is in skiff's container cgroup in every hierarchy.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in theirs.lines() {
        let (_, rest) = line.split_once(':').unwrap();
        let (ctl, path) = rest.split_once(':').unwrap();
        if ctl.is_empty() || ctl == "name=systemd" {
            continue;
        }
        let own_path = own
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .and_then(|(_, r)| r.split_once(':'))
                    .filter(|(c, _)| *c == ctl)
                    .map(|(_, p)| p.to_string())
            })
            .unwrap();
        assert!(
            path.starts_with(own_path.trim_end_matches('/'))
                && path.contains(&format!("pod{uid}/long-0-")),
            "{ctl}: {path} (own {own_path})"
        );
    }
    e.cri.signal(&c, StopSignal::Term).unwrap();
    let x = e.cri.wait(&c).await;
    assert_eq!(x.exit_code, 3, "{x:?}");
    e.cri.remove_container(c).await;

    // Termination message: a fresh 0666 file at /dev/termination-log.
    let c = e.start(&sb, "msg").await.unwrap();
    let x = e.cri.wait(&c).await;
    assert_eq!(
        (x.exit_code, x.message.as_str()),
        (1, "-rw-rw-rw-\n"),
        "{x:?}"
    );
    e.cri.remove_container(c).await;

    // readOnlyRootFilesystem; the pod's /etc/hostname and /etc/hosts.
    let c = e.start(&sb, "ro").await.unwrap();
    let x = e.cri.wait(&c).await;
    assert_eq!(x.exit_code, 0);
    let log = e.log_of("ro");
    assert!(
        log.contains("Read-only file system") && log.contains(" oci\n") && log.contains(" 1\n"),
        "{log}"
    );
    e.cri.remove_container(c).await;

    // OOM: SIGKILL by the kernel in the container's memory cgroup.
    let c = e.start(&sb, "oom").await.unwrap();
    let x = e.cri.wait(&c).await;
    assert_eq!(
        (x.exit_code, x.oom_killed, x.reason()),
        (137, true, "OOMKilled"),
        "{x:?}"
    );
    e.cri.remove_container(c).await;

    // Executable not found: runc's message, RunContainerError.
    let err = e.start(&sb, "nope").await.unwrap_err();
    assert!(
        err.contains("OCI runtime create failed: runc create failed")
            && err.contains("/no/such/binary"),
        "{err}"
    );

    e.cri.stop_pod_sandbox(sb).await;

    // Nothing left: mounts, runc state, bundles, image holds, cgroups.
    assert_eq!(mounts_under(e.data.path()), Vec::<String>::new());
    let state = e.data.path().join("runtime/runc");
    let left: Vec<_> = std::fs::read_dir(&state)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "runc state left: {left:?}");
    assert!(e.images.held.lock().unwrap().is_empty());
    let pod_dir = e.data.path().join("pods").join(e.identity.dir_name());
    let bundles: Vec<_> = std::fs::read_dir(pod_dir.join("oci"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(bundles.is_empty(), "{bundles:?}");
    for h in ["memory", "cpu", "pids"] {
        let out = std::process::Command::new("find")
            .arg(format!("/sys/fs/cgroup/{h}"))
            .args(["-name", &format!("pod{uid}")])
            .output()
            .unwrap();
        assert!(
            out.stdout.is_empty(),
            "{h}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let _ = Instant::now();
}

/// A container of the pod swaps a subPath directory of a shared emptyDir for a symlink to a
/// host directory after skiff checked it (after CreateContainer): runc still mounts what was
/// checked, because it gets a staging path bound from the held descriptor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_subpath_is_not_followed() {
    if !usable() {
        return;
    }
    let layers = tempfile::tempdir().unwrap();
    let base = layers.path().join("base");
    busybox_layer(&base);
    let mut images = FakeImages::default();
    images
        .images
        .insert("busybox".into(), image(vec![base], None, None));
    let uid = format!("oci{:06x}-swap", std::process::id() & 0xff_ffff);
    let p = pod_with_volumes(
        &uid,
        serde_json::json!([
            {"name": "victim", "image": "busybox", "command": ["sh", "-c", "ls /data"],
             "volumeMounts": [{"name": "shared", "mountPath": "/data", "subPath": "sub"}]},
        ]),
        serde_json::json!([{"name": "shared", "emptyDir": {}}]),
    );
    let e = env(&uid, p, images);
    let sb = e.cri.run_pod_sandbox(&e.config).await.unwrap().sandbox;
    let vol = sb.host().volumes().path("shared").unwrap().to_path_buf();
    std::fs::create_dir_all(vol.join("sub")).unwrap();
    std::fs::write(vol.join("sub").join("checked-content"), "").unwrap();
    // A host directory the attacker wants to see.
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("host-secret"), "").unwrap();

    let spec = e.spec("victim");
    let launch = ContainerLaunch::from_container_for_image(
        &spec,
        &e.identity,
        e.data.path(),
        0,
        &EnvSources::NONE,
    )
    .unwrap();
    let created = e.cri.create_container(&sb, &spec, launch).unwrap();
    // The swap, between the check and runc's mount.
    std::fs::rename(vol.join("sub"), vol.join("moved")).unwrap();
    std::os::unix::fs::symlink(secret.path(), vol.join("sub")).unwrap();
    let c = e.cri.start_container(created, None).await.unwrap();
    let x = e.cri.wait(&c).await;
    assert_eq!(x.exit_code, 0);
    let log = e.log_of("victim");
    assert!(
        log.contains("checked-content") && !log.contains("host-secret"),
        "{log}"
    );
    e.cri.remove_container(c).await;
    e.cri.stop_pod_sandbox(sb).await;
    assert_eq!(mounts_under(e.data.path()), Vec::<String>::new());
}
