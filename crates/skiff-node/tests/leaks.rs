//! Issue 4 item 8 (cleanup): 200 pod cycles through the pod worker — one init container, one
//! sidecar, one app each — leave no process, mount, cgroup or namespace behind.
//!
//! Alone in its test binary so nothing else of this process creates pods meanwhile. Counts
//! only what belongs to this test (children of this process, processes carrying this test's
//! marker, cgroups of its pods' uids, namespaces of those processes), so other work on the
//! machine does not disturb it; mounts are this process's mount table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use skiff_engine::EngineConfig;
use skiff_node::node::NodeResources;
use skiff_node::sandbox::PodObjects;
use skiff_node::worker::{self, WorkerConfig};
use tokio::sync::mpsc;

const CYCLES: usize = 200;

/// Eight characters: container ids start with the first eight of the pod uid.
fn uid_prefix() -> String {
    format!("lk{:06x}", std::process::id() & 0xff_ffff)
}

fn marker() -> String {
    format!("SKIFF_LEAK_TEST={}", std::process::id())
}

fn pod(n: usize, out: &Path) -> Pod {
    let marker = marker();
    let (mk, mv) = marker.split_once('=').unwrap();
    let yaml = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: leak{n}, namespace: default, uid: "{uid}-{n}"}}
spec:
  runtimeClassName: host
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: init
    image: host
    command: [/bin/sh, -c, "exit 0"]
    env: [{{name: {mk}, value: "{mv}"}}]
  - name: side
    image: host
    restartPolicy: Always
    command: [/bin/sh, -c, "trap 'exit 0' TERM; while :; do sleep 0.05; done"]
    env: [{{name: {mk}, value: "{mv}"}}]
    resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}
  containers:
  - name: app
    image: host
    command: [/bin/sh, -c, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max > {out}/cgroup-{n} 2>/dev/null; true"]
    env: [{{name: {mk}, value: "{mv}"}}]
    resources: {{limits: {{cpu: 100m, memory: 64Mi}}}}
"#,
        uid = uid_prefix(),
        out = out.display(),
    );
    let pod: Pod = serde_yaml_ng::from_str(&yaml).unwrap();
    // prepare_pod clears server-set metadata as the API server does on create; the uid is
    // then the server's to give (here: the test's own, which its leak checks look for).
    let uid = pod.metadata.uid.clone();
    let mut pod = skiff_model::prepare_pod(pod).unwrap();
    pod.metadata.uid = uid;
    pod
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Counts {
    processes: Vec<i32>,
    mounts: usize,
    cgroups: Vec<PathBuf>,
    namespaces: BTreeSet<String>,
}

fn ppid_and_state(pid: i32) -> Option<(i32, char)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    Some((f.next()?.parse().ok()?, state))
}

/// Children of this process (zombies included: an unreaped child is a leak too) and any
/// process carrying the marker.
fn our_processes() -> Vec<i32> {
    let me = std::process::id() as i32;
    let marker = marker();
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Some((ppid, state)) = ppid_and_state(pid) else {
            continue;
        };
        let marked = state != 'Z'
            && fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()))
                .unwrap_or(false);
        // Our own threads are not in /proc's top level; our children are.
        if ppid == me || marked {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

fn cgroup_dirs() -> Vec<PathBuf> {
    let prefix = uid_prefix();
    let mut roots: Vec<PathBuf> = NodeResources::global()
        .cgroups()
        .map(|d| d.own_dirs())
        .unwrap_or_default();
    // The process tracker's cgroup2 groups (when no cgroup driver is in use).
    if let Some(unified) = skiff_node::cgroups::CgroupLayout::from_proc()
        .ok()
        .and_then(|l| l.unified().map(|u| u.mount.clone()))
    {
        roots.push(unified);
    }
    fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<PathBuf>) {
        if depth > 8 {
            return;
        }
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if !p.is_dir() {
                continue;
            }
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(prefix))
            {
                out.push(p.clone());
            }
            walk(&p, prefix, depth + 1, out);
        }
    }
    let mut out = Vec::new();
    for r in roots {
        // Only skiff's subtrees: `kubepods` (pods) and `skiff` (tracker).
        for sub in ["kubepods", "skiff"] {
            walk(&r.join(sub), &prefix, 0, &mut out);
        }
    }
    out.sort();
    out
}

fn namespaces_of(pids: &[i32]) -> BTreeSet<String> {
    let mine: BTreeSet<String> = ns_links(std::process::id() as i32);
    pids.iter()
        .flat_map(|p| ns_links(*p))
        .filter(|l| !mine.contains(l))
        .collect()
}

fn ns_links(pid: i32) -> BTreeSet<String> {
    ["net", "ipc", "uts", "pid", "mnt", "cgroup", "user"]
        .iter()
        .filter_map(|k| fs::read_link(format!("/proc/{pid}/ns/{k}")).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
}

fn counts() -> Counts {
    let processes = our_processes();
    Counts {
        namespaces: namespaces_of(&processes),
        processes,
        mounts: fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .count(),
        cgroups: cgroup_dirs(),
    }
}

#[test]
fn item8_two_hundred_pod_cycles_leak_nothing() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root (cgroups, namespaces)");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Detect cgroups (and clean up after dead skiffs) before the baseline.
    let node = NodeResources::global();
    let before = counts();
    let started = Instant::now();
    for n in 0..CYCLES {
        let data = out.path().join("data");
        let cfg = WorkerConfig {
            data_dir: data.clone(),
            engine: EngineConfig::default(),
            objects: PodObjects::default(),
            keeper: None,
            image_pulls: worker::PullQueue::serial(),
            persistent: false,
        };
        let (_cmd_tx, cmd_rx) = mpsc::channel(1);
        let (notice_tx, mut notice_rx) = mpsc::unbounded_channel();
        let drain = rt.spawn(async move { while notice_rx.recv().await.is_some() {} });
        let status = rt
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(30),
                    worker::run_pod(pod(n, out.path()), cfg, cmd_rx, notice_tx),
                )
                .await
            })
            .expect("pod cycle timed out")
            .unwrap();
        let _ = rt.block_on(drain);
        assert_eq!(
            status.phase.as_deref(),
            Some("Succeeded"),
            "cycle {n}: {status:?}"
        );
        let _ = fs::remove_dir_all(&data);
    }
    let elapsed = started.elapsed();
    // Killed processes may need a moment to be reaped by the reaper thread.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = counts();
    while after != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        after = counts();
    }
    eprintln!(
        "{CYCLES} cycles in {elapsed:?} ({:?}/pod); before {before:?}; after {after:?}",
        elapsed / CYCLES as u32
    );
    // The pods really were in their cgroups when the driver is in use: the container's own
    // (namespaced, read-only) cgroup filesystem shows its 64Mi memory limit.
    if node.cgroups().is_some() {
        let cg = fs::read_to_string(out.path().join("cgroup-0")).unwrap();
        assert!(cg.contains("67108864"), "{cg}");
    }
    assert_eq!(after.processes, before.processes, "processes left");
    assert_eq!(after.mounts, before.mounts, "mounts left");
    assert_eq!(after.cgroups, before.cgroups, "cgroups left");
    assert_eq!(after.namespaces, before.namespaces, "namespaces left");
}
