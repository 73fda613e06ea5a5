//! Pod volumes at the node level (issue 4 item 3): the kubelet's on-disk layout, the mount
//! specs a container's volumeMounts become (subPath, subPathExpr, readOnly, propagation), the
//! tmpfs of Memory volumes, and teardown that leaves nothing and never deletes through a
//! hostPath.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod};
use skiff_node::isolation::{MountSpec, Propagation};
use skiff_node::sandbox::PodObjects;
use skiff_node::volumes::downward::NodeAllocatable;
use skiff_node::volumes::PodVolumes;

fn pod(yaml: &str) -> Pod {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn objects() -> PodObjects {
    let mut o = PodObjects::default();
    o.config_maps.insert(
        "cfg".into(),
        serde_yaml_ng::from_str::<ConfigMap>("metadata: {name: cfg}\ndata: {a: '1', b: '2'}")
            .unwrap(),
    );
    o
}

const NODE: NodeAllocatable = NodeAllocatable {
    cpu_millis: 2000,
    memory_bytes: 1 << 30,
    ephemeral_storage_bytes: 1 << 40,
};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn item3_volume_layout_and_container_mount_specs() {
    let t = tempfile::tempdir().unwrap();
    let host = t.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("keep"), "precious").unwrap();
    let p = pod(&format!(
        r#"
metadata: {{name: web, namespace: default, uid: u1}}
spec:
  volumes:
  - {{name: data, emptyDir: {{}}}}
  - {{name: cfg, configMap: {{name: cfg}}}}
  - {{name: h, hostPath: {{path: {host}, type: Directory}}}}
  containers:
  - name: app
    volumeMounts:
    - {{name: data, mountPath: /data}}
    - {{name: data, mountPath: /logs, subPathExpr: "logs/$(POD)", mountPropagation: HostToContainer}}
    - {{name: cfg, mountPath: /etc/a, subPath: a}}
    - {{name: h, mountPath: /host, readOnly: true}}
"#,
        host = host.display()
    ));
    let pod_dir = t.path().join("pods/default_web_u1");
    let mut vols = PodVolumes::setup(&p, &pod_dir, &objects(), &NODE).unwrap();
    let data = pod_dir.join("volumes/kubernetes.io~empty-dir/data");
    let cfg = pod_dir.join("volumes/kubernetes.io~configmap/cfg");
    assert_eq!(std::fs::metadata(&data).unwrap().mode() & 0o7777, 0o777);
    assert_eq!(std::fs::read_to_string(cfg.join("a")).unwrap(), "1");
    assert_eq!(
        std::fs::read_link(cfg.join("b")).unwrap(),
        PathBuf::from("..data/b")
    );

    let c: &Container = &p.spec.as_ref().unwrap().containers[0];
    let env = vec![("POD".to_string(), "web".to_string())];
    let mounts = vols.mounts_for(c, &env).unwrap();
    // Every mount carries the descriptor it was checked with (issue 7 item 1).
    let mounts: Vec<MountSpec> = mounts
        .into_iter()
        .map(|m| {
            let fd = m.source_fd.as_ref().unwrap();
            let held = std::fs::read_link(format!("/proc/self/fd/{}", fd.0.as_raw_fd())).unwrap();
            assert_eq!(held, m.source);
            MountSpec {
                source_fd: None,
                ..m
            }
        })
        .collect();
    let canon = |p: PathBuf| std::fs::canonicalize(p).unwrap();
    let spec = |source: PathBuf, target: &str, read_only, propagation| MountSpec {
        source,
        target: PathBuf::from(target),
        read_only,
        propagation,
        ..Default::default()
    };
    assert_eq!(
        mounts,
        vec![
            spec(data.clone(), "/data", false, Propagation::Private),
            spec(
                canon(data.join("logs/web")),
                "/logs",
                false,
                Propagation::HostToContainer
            ),
            // A subPath of a configMap resolves through `..data` (and is read-only).
            spec(canon(cfg.join("a")), "/etc/a", true, Propagation::Private),
            spec(host.clone(), "/host", true, Propagation::Private),
        ]
    );
    assert!(canon(cfg.join("a")).to_string_lossy().contains("/..20"));

    // subPathExpr with a missing variable: the kubelet's error, a CreateContainerConfigError.
    let e = vols.mounts_for(c, &[]).unwrap_err();
    assert_eq!(e.failure().reason(), "CreateContainerConfigError");
    assert_eq!(e.to_string(), "missing value for POD");

    vols.teardown();
    assert!(!pod_dir.join("volumes").exists());
    assert_eq!(
        std::fs::read_to_string(host.join("keep")).unwrap(),
        "precious"
    );
}

#[test]
fn item3_memory_emptydir_is_a_bounded_tmpfs_and_is_unmounted() {
    if !is_root() {
        eprintln!(
            "skipped: item3_memory_emptydir_is_a_bounded_tmpfs_and_is_unmounted needs root (mount)"
        );
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let p = pod(r#"
metadata: {name: m, namespace: default, uid: u2}
spec:
  volumes:
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 1Mi}}
  containers: [{name: app}]
"#);
    let pod_dir = t.path().join("pods/default_m_u2");
    let mut vols = PodVolumes::setup(&p, &pod_dir, &PodObjects::default(), &NODE).unwrap();
    let dir = pod_dir.join("volumes/kubernetes.io~empty-dir/mem");
    let st = nix::sys::statvfs::statvfs(&dir).unwrap();
    assert_eq!(st.blocks() * st.fragment_size(), 1 << 20);
    // tmpfs enforces the bound: writing 2 MiB fails.
    assert!(std::fs::write(dir.join("big"), vec![0u8; 2 << 20]).is_err());
    vols.teardown();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&dir.display().to_string()));
    assert!(!pod_dir.join("volumes").exists());
}

#[test]
fn item3_missing_configmap_fails_setup_and_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let p = pod(r#"
metadata: {name: x, namespace: default, uid: u3}
spec:
  volumes:
  - {name: data, emptyDir: {}}
  - {name: opt, configMap: {name: nope, optional: true}}
  - {name: cfg, configMap: {name: nope}}
  containers: [{name: app}]
"#);
    let pod_dir = t.path().join("pods/default_x_u3");
    let e = PodVolumes::setup(&p, &pod_dir, &objects(), &NODE).unwrap_err();
    assert_eq!(
        e.to_string(),
        "MountVolume.SetUp failed for volume \"cfg\" : configmap \"nope\" not found"
    );
    assert!(!pod_dir.join("volumes").exists());
}

/// `depth` directories `d/d/…` below `top`, made by descriptor (deeper than PATH_MAX), with
/// `bytes` written at the bottom.
fn deep_tree(top: &std::path::Path, depth: usize, bytes: usize) {
    use nix::fcntl::{open, openat, OFlag};
    use nix::sys::stat::{mkdirat, Mode};
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut cur = open(top, flags, Mode::empty()).unwrap();
    for _ in 0..depth {
        mkdirat(&cur, "d", Mode::from_bits_truncate(0o755)).unwrap();
        cur = openat(&cur, "d", flags | OFlag::O_NOFOLLOW, Mode::empty()).unwrap();
    }
    let f = openat(
        &cur,
        "big",
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    nix::unistd::write(&f, &vec![b'x'; bytes]).unwrap();
    nix::unistd::fsync(&f).unwrap();
}

// Issue 7 item 7: a disk emptyDir's usage counts bytes below PATH_MAX depth (2100 levels of
// `d/` are 4200 bytes of path), so sizeLimit holds, and teardown removes such a tree.
#[test]
fn issue7_item7_deep_emptydir_counts_against_size_limit_and_is_removed() {
    let t = tempfile::tempdir().unwrap();
    let p = pod(r#"
metadata: {name: deep, namespace: default, uid: u9}
spec:
  volumes:
  - {name: scratch, emptyDir: {sizeLimit: 1Mi}}
  containers: [{name: app}]
"#);
    let pod_dir = t.path().join("pods/default_deep_u9");
    let mut vols = PodVolumes::setup(&p, &pod_dir, &PodObjects::default(), &NODE).unwrap();
    let dir = pod_dir.join("volumes/kubernetes.io~empty-dir/scratch");
    let watch = vols.size_watch().unwrap();
    assert_eq!(watch.exceeded(), None);
    deep_tree(&dir, 2100, 2 << 20);
    assert_eq!(
        watch.exceeded().as_deref(),
        Some("Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". ")
    );
    vols.teardown();
    assert!(!pod_dir.join("volumes").exists());
}

// Issue 7 item 1: a subPath that is (or becomes) a symlink leaving the volume is refused, and
// a mount's descriptor keeps naming the directory that was checked even when the path is
// swapped afterwards.
#[test]
fn issue7_item1_subpath_descriptor_survives_a_swap() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let p = pod(r#"
metadata: {name: s, namespace: default, uid: u8}
spec:
  volumes:
  - {name: data, emptyDir: {}}
  containers:
  - name: app
    volumeMounts:
    - {name: data, mountPath: /a, subPath: sub}
"#);
    let pod_dir = t.path().join("pods/default_s_u8");
    let mut vols = PodVolumes::setup(&p, &pod_dir, &PodObjects::default(), &NODE).unwrap();
    let dir = pod_dir.join("volumes/kubernetes.io~empty-dir/data");
    let c: &Container = &p.spec.as_ref().unwrap().containers[0];
    let mounts = vols.mounts_for(c, &[]).unwrap();
    let fd = mounts[0].source_fd.clone().unwrap();
    // The attacker swaps the checked directory for a symlink out of the volume.
    std::fs::rename(dir.join("sub"), dir.join("moved")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("sub")).unwrap();
    let held = std::fs::read_link(format!("/proc/self/fd/{}", fd.0.as_raw_fd())).unwrap();
    assert_eq!(held, dir.join("moved"));
    // And a new start refuses the escaping subPath.
    let e = vols.mounts_for(c, &[]).unwrap_err();
    assert_eq!(e.failure().reason(), "CreateContainerConfigError");
    assert_eq!(
        e.to_string(),
        "failed to prepare subPath for volumeMount \"data\" of container \"app\""
    );
    vols.teardown();
    assert!(outside.exists());
}
