//! Golden files for the config.json of image containers (issue 10 item 6): each case is a pod
//! and an image config, built by `skiff_node::oci::config::build_spec` and compared byte for
//! byte with `tests/golden/oci/<case>.json`. Setting `SKIFF_BLESS=1` rewrites the files
//! (`cargo test -p skiff-node --test oci_config_golden`); review the diff before committing.
//!
//! Each case names the upstream rule it pins (containerd `internal/cri/...`, `pkg/oci/...`,
//! kubelet `pkg/kubelet/...`; facts note §3.2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use skiff_model::resources::{container_cgroup_values, oom_score_adj, CgroupConfig};
use skiff_node::launch::{ContainerLaunch, EnvSources, PodIdentity};
use skiff_node::oci::config::{
    build_spec, effective_security, seccomp_request, to_json, ConfigError, ContainerConfigInput,
    ContainerMount, PidNamespace, Propagation, RuntimeHost, SandboxNamespaces, SeccompChoice,
    SeccompRequest,
};
use skiff_node::oci::user::{open_rootfs, resolve_user};
use skiff_node::spec::ImageProcessConfig;

const SANDBOX: &str = "5b1f0c2a9d7e";
const HOLDER_PID: u32 = 4242;
/// Every capability of a 41-capability kernel (what `add: [ALL]` and privileged mean here).
const ALL_CAPS: u64 = (1 << 41) - 1;

fn host() -> RuntimeHost {
    RuntimeHost {
        capabilities: ALL_CAPS,
        cgroup_v2: false,
        swap_limit: true,
        oom_score_adj_floor: 0,
    }
}

fn busybox() -> ImageProcessConfig {
    ImageProcessConfig {
        entrypoint: None,
        cmd: Some(vec!["sh".into()]),
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        working_dir: None,
        user: None,
        stop_signal: None,
    }
}

/// An image root with a user database (what `resolve_user` reads).
fn image_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(
        dir.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1500:app:/home/app:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("etc/group"),
        "root:x:0:\nwheel:x:10:root,app\napp:x:1500:app\nstaff:x:50:app\nnogroup:x:65534:\n",
    )
    .unwrap();
    dir
}

struct Case {
    pod: Pod,
    image: ImageProcessConfig,
    /// Volume mounts as the runtime helper prepares them (host paths are fixed for the
    /// golden file).
    mounts: Vec<ContainerMount>,
}

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "0a1b2c3d-0000-4000-8000-000000000001"},
        "spec": spec,
    }))
    .unwrap()
}

fn sandbox_files() -> Vec<ContainerMount> {
    let dir = "/var/lib/skiff/pods/default_web_0a1b2c3d-0000-4000-8000-000000000001";
    vec![
        ContainerMount::bind(format!("{dir}/hostname"), "/etc/hostname", false),
        ContainerMount::bind(format!("{dir}/resolv.conf"), "/etc/resolv.conf", false),
        ContainerMount::bind(format!("{dir}/shm"), "/dev/shm", false),
    ]
}

/// The kubelet's own mounts for container 0: its /etc/hosts and the termination log
/// (`kubelet_pods.go` `makeHostsMount`, `kuberuntime_container.go` `makeMounts`).
fn kubelet_files(extra: Vec<ContainerMount>) -> Vec<ContainerMount> {
    let dir = "/var/lib/skiff/pods/default_web_0a1b2c3d-0000-4000-8000-000000000001";
    let mut v = extra;
    v.push(ContainerMount::bind(
        format!("{dir}/etc-hosts"),
        "/etc/hosts",
        false,
    ));
    v.push(ContainerMount::bind(
        format!("{dir}/c/termination-log-1"),
        "/dev/termination-log",
        false,
    ));
    v
}

fn build(case: &Case) -> Result<String, String> {
    let pod = &case.pod;
    let spec = pod.spec.as_ref().unwrap();
    let c = &spec.containers[0];
    let id = PodIdentity {
        namespace: "default".into(),
        name: "web".into(),
        uid: pod.metadata.uid.clone().unwrap(),
        ..Default::default()
    };
    let sources = EnvSources {
        objects: EnvSources::NONE.objects,
        pod: Some(pod),
    };
    let launch = ContainerLaunch::from_container_for_image(c, &id, Path::new("/d"), 0, &sources)
        .map_err(|e| e.to_string())?;
    let root = image_root();
    let fd = open_rootfs(root.path()).unwrap();
    let user = resolve_user(&fd, pod, c, case.image.user.as_deref()).map_err(|e| e.to_string())?;
    let seccomp = match seccomp_request(pod, c).map_err(|e| e.to_string())? {
        SeccompRequest::Unconfined => SeccompChoice::Unconfined,
        SeccompRequest::RuntimeDefault => SeccompChoice::RuntimeDefault,
        SeccompRequest::Localhost(name) => SeccompChoice::Localhost {
            name,
            profile: r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#.into(),
        },
    };
    let ns = |kind: &str| Some(PathBuf::from(format!("/proc/{HOLDER_PID}/ns/{kind}")));
    let namespaces = SandboxNamespaces {
        network: ns("net"),
        ipc: ns("ipc"),
        uts: ns("uts"),
        pid: if spec.share_process_namespace == Some(true) {
            PidNamespace::Pod(PathBuf::from(format!("/proc/{HOLDER_PID}/ns/pid")))
        } else {
            PidNamespace::Container
        },
    };
    let privileged = effective_security(c).privileged;
    let input = ContainerConfigInput {
        pod,
        container: c,
        launch: &launch,
        image: &case.image,
        image_name: c.image.as_deref().unwrap_or_default(),
        sandbox_id: SANDBOX,
        rootfs: Path::new("rootfs"),
        hostname: "web",
        namespaces,
        mounts: case.mounts.clone(),
        sandbox_mounts: sandbox_files(),
        user,
        cgroups_path: format!("kubepods/besteffort/pod{}/{}", id.uid, c.name),
        resources: container_cgroup_values(c, &CgroupConfig::default()),
        oom_score_adj: oom_score_adj(spec, &c.name, 8 << 30),
        seccomp,
        host_devices: if privileged {
            vec![skiff_node::oci::config::HostDevice {
                path: "/dev/null".into(),
                kind: 'c',
                major: 1,
                minor: 3,
                file_mode: 0o666,
                uid: 0,
                gid: 0,
            }]
        } else {
            Vec::new()
        },
        host: host(),
    };
    let spec = build_spec(&input).map_err(|e| e.to_string())?;
    Ok(to_json(&spec).unwrap() + "\n")
}

fn golden(name: &str, case: Case) {
    let got = build(&case).unwrap_or_else(|e| panic!("{name}: {e}"));
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/oci")
        .join(format!("{name}.json"));
    if std::env::var_os("SKIFF_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (SKIFF_BLESS=1 writes it)", path.display()));
    assert!(
        want == got,
        "{name}: config.json differs from {} (SKIFF_BLESS=1 rewrites it)\n--- got ---\n{got}",
        path.display()
    );
}

fn simple(container: serde_json::Value, image: ImageProcessConfig) -> Case {
    Case {
        pod: pod(json!({"containers": [container]})),
        image,
        mounts: kubelet_files(Vec::new()),
    }
}

/// Plain busybox, no command: the image's Cmd, containerd's defaults throughout (14
/// capabilities, kubelet masked paths, no seccomp, no rlimits, no noNewPrivileges; default
/// mounts with the sandbox's /dev/shm replacing the tmpfs; pkg/oci/spec.go, mounts.go).
#[test]
fn plain_busybox() {
    golden(
        "plain_busybox",
        simple(json!({"name": "c", "image": "busybox"}), busybox()),
    );
}

fn entrypoint_image() -> ImageProcessConfig {
    ImageProcessConfig {
        entrypoint: Some(vec!["/entry".into(), "--flag".into()]),
        cmd: Some(vec!["default-arg".into()]),
        ..busybox()
    }
}

/// containerd `WithProcessArgs` (internal/cri/opts/spec_opts.go): the four combinations of
/// command and args over an image with Entrypoint and Cmd.
#[test]
fn args_image_entrypoint_and_cmd() {
    golden(
        "args_image_only",
        simple(json!({"name": "c", "image": "app"}), entrypoint_image()),
    );
    golden(
        "args_args_only",
        simple(
            json!({"name": "c", "image": "app", "args": ["x", "y"]}),
            entrypoint_image(),
        ),
    );
    golden(
        "args_command_only",
        simple(
            json!({"name": "c", "image": "app", "command": ["/bin/echo"]}),
            entrypoint_image(),
        ),
    );
    golden(
        "args_command_and_args",
        simple(
            json!({"name": "c", "image": "app", "command": ["/bin/echo"], "args": ["$(GREETING)", "z"],
                   "env": [{"name": "GREETING", "value": "hi"}]}),
            entrypoint_image(),
        ),
    );
}

/// `[""]` as Entrypoint means none (moby's rule), and nothing at all is "no command
/// specified" (containerd `WithProcessArgs`).
#[test]
fn empty_entrypoint_and_no_command() {
    let mut image = busybox();
    image.entrypoint = Some(vec![String::new()]);
    image.cmd = Some(vec!["/bin/true".into()]);
    let case = simple(json!({"name": "c", "image": "x"}), image.clone());
    let got: serde_json::Value = serde_json::from_str(&build(&case).unwrap()).unwrap();
    assert_eq!(got["process"]["args"], json!(["/bin/true"]));
    image.cmd = None;
    let case = simple(json!({"name": "c", "image": "x"}), image);
    assert_eq!(
        build(&case).unwrap_err(),
        ConfigError::NoCommand.to_string()
    );
}

/// Env order: PATH default, HOSTNAME, image Env, container env; replace in place by key
/// (containerd `WithDefaultPathEnv`, `WithEnv`, `buildLinuxSpec`).
#[test]
fn env_override_order() {
    let image = ImageProcessConfig {
        env: vec![
            "PATH=/opt/bin:/bin".into(),
            "LANG=C".into(),
            "HOSTNAME=image-host".into(),
            "APP_MODE=image".into(),
        ],
        ..busybox()
    };
    golden(
        "env_override_order",
        simple(
            json!({"name": "c", "image": "app", "workingDir": "/srv",
                   "env": [{"name": "APP_MODE", "value": "pod"}, {"name": "EXTRA", "value": "1"},
                           {"name": "LANG", "value": "C.UTF-8"}]}),
            image,
        ),
    );
}

/// runAsUser/runAsGroup over the image user; fsGroup and supplementalGroups merged with the
/// image's groups of the user, sorted (kubelet `determineEffectiveSecurityContext`,
/// containerd `WithUser`, `WithAdditionalGIDs`, `WithSupplementalGroups`).
#[test]
fn run_as_user_group_and_groups() {
    let mut image = busybox();
    image.user = Some("nobody".into());
    golden(
        "run_as_user_groups",
        Case {
            pod: pod(json!({
                "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                                    "supplementalGroups": [4000, 10]},
                "containers": [{"name": "c", "image": "app"}]})),
            image,
            mounts: kubelet_files(Vec::new()),
        },
    );
}

/// A named image user resolved in the image's /etc/passwd (uid, primary gid) and
/// /etc/group (containerd `WithUsername`, `WithAdditionalGIDs`), working dir from the image.
#[test]
fn image_named_user() {
    let mut image = busybox();
    image.user = Some("app".into());
    image.working_dir = Some("/home/app".into());
    golden(
        "image_named_user",
        simple(json!({"name": "c", "image": "app"}), image),
    );
}

/// readOnlyRootFilesystem: `root.readonly`, the bind mounts stay as asked (containerd
/// `WithRootFSReadonly`, `withMounts`).
#[test]
fn read_only_root_filesystem() {
    golden(
        "read_only_rootfs",
        simple(
            json!({"name": "c", "image": "busybox",
                   "securityContext": {"readOnlyRootFilesystem": true}}),
            busybox(),
        ),
    );
}

/// allowPrivilegeEscalation false → noNewPrivileges; RuntimeDefault → containerd's profile
/// for the container's capabilities; drop ALL then add (containerd `WithCapabilities`,
/// kubelet `AddNoNewPrivileges`, `GenerateSeccompSpecOpts`).
#[test]
fn restricted_container() {
    golden(
        "restricted",
        Case {
            pod: pod(json!({
                "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "c", "image": "app",
                    "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": false,
                        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]})),
            image: busybox(),
            mounts: kubelet_files(Vec::new()),
        },
    );
}

/// Privileged: every capability the runtime has, no masked or read-only paths, sysfs and
/// cgroupfs writable, host devices, all devices allowed, no seccomp even when asked
/// (containerd `WithPrivileged`, `WithHostDevices`, `WithAllDevicesAllowed`).
#[test]
fn privileged() {
    golden(
        "privileged",
        Case {
            pod: pod(json!({
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "c", "image": "busybox",
                                "securityContext": {"privileged": true}}]})),
            image: busybox(),
            mounts: kubelet_files(Vec::new()),
        },
    );
}

/// shareProcessNamespace: the pod's PID namespace by path (containerd `WithPodNamespaces`).
#[test]
fn share_process_namespace() {
    golden(
        "share_process_namespace",
        Case {
            pod: pod(json!({"shareProcessNamespace": true,
                            "containers": [{"name": "c", "image": "busybox"}]})),
            image: busybox(),
            mounts: kubelet_files(Vec::new()),
        },
    );
}

/// Volumes: rbind + rprivate/rslave/rshared, ro/rro/rw, sorted by depth with parents first,
/// rootfsPropagation from the strongest propagation (containerd `withMounts`); a volume at
/// /etc/resolv.conf replaces the sandbox's file.
#[test]
fn volumes_read_only_and_propagation() {
    let v = "/var/lib/skiff/pods/default_web_0a1b2c3d-0000-4000-8000-000000000001/volumes";
    let mounts = kubelet_files(vec![
        ContainerMount::bind(format!("{v}/data/sub"), "/data/cache/deep", false),
        ContainerMount::bind(format!("{v}/data"), "/data", false),
        ContainerMount {
            propagation: Propagation::HostToContainer,
            ..ContainerMount::bind("/srv/host", "/mnt/host", true)
        },
        ContainerMount {
            recursive_read_only: true,
            ..ContainerMount::bind(format!("{v}/cfg"), "/config", true)
        },
        ContainerMount {
            propagation: Propagation::Bidirectional,
            ..ContainerMount::bind("/srv/shared", "/mnt/shared", false)
        },
        ContainerMount::bind(format!("{v}/dns/resolv.conf"), "/etc/resolv.conf", true),
    ]);
    golden(
        "volumes",
        Case {
            pod: pod(json!({"containers": [{"name": "c", "image": "busybox",
                            "securityContext": {"privileged": false}}]})),
            image: busybox(),
            mounts,
        },
    );
}

/// The generated spec is one runc 1.1 runs: a restricted container (uid 1000, no_new_privs,
/// RuntimeDefault seccomp through runc's libseccomp, one capability) from a busybox root.
/// Skipped where runc, busybox or root is missing.
#[test]
fn runc_runs_the_generated_config() {
    let (Some(runc), Some(busybox)) = (which("runc"), which("busybox")) else {
        eprintln!("skipped: runc or busybox not installed");
        return;
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let bundle = tempfile::tempdir().unwrap();
    let rootfs = bundle.path().join("rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(&busybox, rootfs.join("bin/busybox")).unwrap();
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0::/:/bin/sh\napp:x:1000:1500::/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "app:x:1500:\nstaff:x:50:app\n").unwrap();
    let term = bundle.path().join("termination-log");
    std::fs::write(&term, "").unwrap();
    // The kubelet's termination-log file is world-writable (kuberuntime_container.go).
    std::fs::set_permissions(&term, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();

    let pod = pod(json!({
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "busybox",
            "args": ["sh", "-c", "id; echo host=$HOSTNAME; grep -E '^(CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; echo bye > /dev/termination-log"],
            "securityContext": {"allowPrivilegeEscalation": false,
                                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}));
    let c = &pod.spec.as_ref().unwrap().containers[0];
    let image = ImageProcessConfig {
        entrypoint: Some(vec!["/bin/busybox".into()]),
        ..busybox_image_without_cmd()
    };
    let id = PodIdentity {
        namespace: "default".into(),
        name: "web".into(),
        uid: "u".into(),
        ..Default::default()
    };
    let launch =
        ContainerLaunch::from_container_for_image(c, &id, Path::new("/d"), 0, &EnvSources::NONE)
            .unwrap();
    let fd = open_rootfs(&rootfs).unwrap();
    let user = resolve_user(&fd, &pod, c, Some("app")).unwrap();
    let name = format!("skiff-oci-test-{}", std::process::id());
    let input = ContainerConfigInput {
        pod: &pod,
        container: c,
        launch: &launch,
        image: &image,
        image_name: "busybox",
        sandbox_id: "test",
        rootfs: &rootfs,
        hostname: "web",
        namespaces: SandboxNamespaces::default(),
        mounts: vec![ContainerMount::bind(&term, "/dev/termination-log", false)],
        sandbox_mounts: Vec::new(),
        user,
        cgroups_path: name.clone(),
        resources: container_cgroup_values(c, &CgroupConfig::default()),
        oom_score_adj: 1000,
        seccomp: SeccompChoice::RuntimeDefault,
        host_devices: Vec::new(),
        host: RuntimeHost {
            capabilities: skiff_node::security::own_capabilities("CapEff:").unwrap(),
            ..host()
        },
    };
    let spec = build_spec(&input).unwrap();
    std::fs::write(bundle.path().join("config.json"), to_json(&spec).unwrap()).unwrap();
    let out = std::process::Command::new(runc)
        .arg("--root")
        .arg(bundle.path().join("state"))
        .args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(&name)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "runc: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("uid=1000(app) gid=1500(app) groups=50(staff),1500(app)"),
        "{stdout}"
    );
    assert!(stdout.contains("host=web"), "{stdout}");
    assert!(stdout.contains("CapBnd:\t0000000000000400"), "{stdout}");
    assert!(stdout.contains("NoNewPrivs:\t1"), "{stdout}");
    assert!(stdout.contains("Seccomp:\t2"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&term).unwrap(), "bye\n");
}

fn busybox_image_without_cmd() -> ImageProcessConfig {
    ImageProcessConfig {
        cmd: None,
        ..busybox()
    }
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}
