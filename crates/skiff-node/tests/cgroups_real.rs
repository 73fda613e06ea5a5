#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
//! cgroup driver on this host's real hierarchy (v1 here; v2 where a machine
//! has controllers). Needs root; skipped with a printed reason otherwise.
//! Every test nests under its own parent cgroup and a guard removes all it
//! created, even when an assertion fails.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use nix::sys::signal::Signal;
use serde::Deserialize;
use serde_yaml_ng::Value;
use skiff_model::defaults::default_pod;
use skiff_model::resources::{pod_cgroup_values, ContainerCgroupValues, PodCgroupValues, QosClass};
use skiff_node::cgroups::{
    driver_for, list_pod_cgroups, remove_stale_pods, CgroupDriver, CgroupError, CgroupLayout,
    CgroupSettings, CgroupVersion, ContainerCgroup, OomScoreAdjuster, OomScoreOutcome, PodCgroup,
};
use skiff_node::tracker::TrackedGroup;

/// The driver for one test, under `<own>/skiff-cgtest-<pid>-<name>`; Drop
/// kills and removes everything below it.
struct Real {
    driver: Arc<dyn CgroupDriver>,
    settings: CgroupSettings,
    children: Vec<Child>,
}

impl Real {
    fn new(name: &str) -> Option<Real> {
        if !nix::unistd::geteuid().is_root() {
            println!("SKIP {name}: not root");
            return None;
        }
        let layout = match CgroupLayout::from_proc() {
            Ok(l) => l,
            Err(e) => {
                println!("SKIP {name}: {e}");
                return None;
            }
        };
        let settings = CgroupSettings {
            parent: PathBuf::from(format!("skiff-cgtest-{}-{name}", std::process::id())),
            ..CgroupSettings::default()
        };
        match driver_for(&layout, settings.clone()) {
            Ok(driver) => Some(Real {
                driver,
                settings,
                children: Vec::new(),
            }),
            Err(e @ CgroupError::MissingController { .. }) => {
                println!("SKIP {name}: {e}");
                None
            }
            Err(e) => panic!("{name}: {e}"),
        }
    }

    /// A second driver over the same parent (the next skiff start).
    fn again(&self) -> Arc<dyn CgroupDriver> {
        driver_for(&CgroupLayout::from_proc().unwrap(), self.settings.clone()).unwrap()
    }

    /// The parent directories (one per hierarchy).
    fn parents(&self) -> Vec<PathBuf> {
        self.driver
            .own_dirs()
            .into_iter()
            .map(|d| d.join(&self.settings.parent))
            .collect()
    }

    /// `sh -c` that joins every hierarchy of `c`, then runs `script`.
    fn spawn_in(&mut self, c: &ContainerCgroup, script: &str) -> u32 {
        let joins: Vec<String> = c
            .dirs()
            .iter()
            .map(|d| format!("echo $$ > '{}/cgroup.procs'", d.display()))
            .collect();
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("{} || exit 99\n{script}", joins.join(" && ")))
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    fn wait_child(&mut self, pid: u32, timeout: Duration) -> ExitStatus {
        let i = self.children.iter().position(|c| c.id() == pid).unwrap();
        let mut child = self.children.remove(i);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child {pid} did not exit");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn assert_clean(&mut self) {
        remove_all(self.driver.as_ref());
        self.driver.teardown().unwrap();
        for p in self.parents() {
            assert!(!p.exists(), "left behind: {}", p.display());
        }
    }
}

fn remove_all(d: &dyn CgroupDriver) {
    let r = remove_stale_pods(d, |_| false, Duration::from_secs(5));
    assert!(r.failed.is_empty(), "{:?}", r.failed);
}

impl Drop for Real {
    fn drop(&mut self) {
        let r = remove_stale_pods(self.driver.as_ref(), |_| false, Duration::from_secs(5));
        for (e, err) in &r.failed {
            eprintln!("cleanup of {:?} failed: {err}", e.rel);
        }
        if let Err(e) = self.driver.teardown() {
            eprintln!("teardown failed: {e}");
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn read_trim(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

fn page_floor(b: i64) -> i64 {
    b / 4096 * 4096
}

// ---------------------------------------------------------------------------------------------
// Vectors
// ---------------------------------------------------------------------------------------------

fn vectors_path() -> PathBuf {
    match std::env::var_os("SKIFF_SPEC_DIR") {
        Some(dir) => PathBuf::from(dir).join("resource-vectors.yaml"),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/spec/resource-vectors.yaml"
        )),
    }
}

#[derive(Deserialize)]
struct Vectors {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    pod: Value,
    #[serde(rename = "podCgroup")]
    pod_cgroup: Want,
}

#[derive(Deserialize)]
struct Want {
    cpu_shares: u64,
    cpu_quota_us: Value,
    memory_limit_bytes: Value,
    cpu_weight_v2_quadratic: u64,
}

fn opt(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        _ => None, // null, or VERSION_DEPENDENT (1.28+ rule: not written)
    }
}

fn spec_of(pod: &Value) -> PodSpec {
    let mut p = Pod {
        spec: Some(serde_yaml_ng::from_value(pod.clone()).unwrap()),
        ..Pod::default()
    };
    default_pod(&mut p);
    p.spec.unwrap()
}

const SAMPLE: &[&str] = &[
    "worked-example-spec",
    "guaranteed-with-sidecar",
    "guaranteed-sidecar-init-overhead",
    "up-just-overhead",
    "up-just-limit-no-overhead",
    "sidecar-without-limits-makes-burstable",
    "up-all-req-lim-and-overhead",
    "explicit-zero-requests-best-effort",
];

/// The real files of running pods hold the `podCgroup` values of a sample of vectors.
#[test]
fn real_pod_cgroups_hold_vector_values() {
    let Some(mut real) = Real::new("vectors") else {
        return;
    };
    let d = real.driver.clone();
    let text = fs::read_to_string(vectors_path()).unwrap();
    let vectors: Vectors = serde_yaml_ng::from_str(&text).unwrap();
    for name in SAMPLE {
        let case = vectors.cases.iter().find(|c| c.name == *name).unwrap();
        let spec = spec_of(&case.pod);
        let uid = format!("u-{name}");
        let pod = PodCgroup::create(&d, &uid, &spec).unwrap();
        let want = &case.pod_cgroup;
        match d.version() {
            CgroupVersion::V1 => check_v1(&pod, want, name),
            CgroupVersion::V2 => check_v2(&pod, want, name),
        }
        // Vectors with byte-sized memory limits (e.g. 17) cannot hold a
        // process, or even a child memory cgroup: values only.
        if opt(&want.memory_limit_bytes).is_some_and(|b| b < 64 << 20) {
            continue;
        }
        // A running process in its first container.
        let first = &spec.containers[0];
        let c = pod.create_container(&first.name, first).unwrap();
        let pid = real.spawn_in(&c, "exec sleep 30");
        let deadline = Instant::now() + Duration::from_secs(2);
        let joined_all = || {
            c.dirs().iter().all(|d| {
                fs::read_to_string(d.join("cgroup.procs"))
                    .is_ok_and(|s| s.lines().any(|l| l.trim() == pid.to_string()))
            })
        };
        while !joined_all() {
            assert!(Instant::now() < deadline, "{name}: process never joined");
            std::thread::sleep(Duration::from_millis(2));
        }
        // The process is in the container cgroup of every hierarchy.
        let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let suffix = c.rel().to_str().unwrap();
        for l in own.lines().filter(|l| {
            let ctl = l.split(':').nth(1).unwrap_or("");
            match d.version() {
                CgroupVersion::V1 => ["memory", "cpu", "pids", "freezer", "cpuacct"]
                    .iter()
                    .any(|x| ctl.split(',').any(|c| c == *x)),
                CgroupVersion::V2 => ctl.is_empty(),
            }
        }) {
            assert!(l.ends_with(suffix), "{name}: {l} (want …{suffix})");
        }
    }
    real.assert_clean();
}

fn dir_of(pod: &PodCgroup, needle: &str) -> PathBuf {
    pod.dirs()
        .into_iter()
        .find(|d| d.to_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no {needle} dir in {:?}", pod.dirs()))
}

fn check_v1(pod: &PodCgroup, want: &Want, name: &str) {
    let cpu = dir_of(pod, "/cpu/");
    let mem = dir_of(pod, "/memory/");
    assert_eq!(
        read_trim(&cpu.join("cpu.shares")),
        want.cpu_shares.to_string(),
        "{name}"
    );
    let quota = opt(&want.cpu_quota_us).unwrap_or(-1);
    assert_eq!(
        read_trim(&cpu.join("cpu.cfs_quota_us")),
        quota.to_string(),
        "{name}"
    );
    assert_eq!(
        read_trim(&cpu.join("cpu.cfs_period_us")),
        "100000",
        "{name}"
    );
    let unlimited = "9223372036854771712".to_string();
    let memory = opt(&want.memory_limit_bytes).map_or(unlimited, |b| page_floor(b).to_string());
    assert_eq!(
        read_trim(&mem.join("memory.limit_in_bytes")),
        memory,
        "{name}"
    );
    if mem.join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(
            read_trim(&mem.join("memory.memsw.limit_in_bytes")),
            memory,
            "{name}"
        );
    }
    if let Some(p) = pod
        .dirs()
        .into_iter()
        .find(|d| d.to_str().unwrap().contains("/pids/"))
    {
        assert_eq!(read_trim(&p.join("pids.max")), "max", "{name}");
    }
}

fn check_v2(pod: &PodCgroup, want: &Want, name: &str) {
    let dir = &pod.dirs()[0];
    assert_eq!(
        read_trim(&dir.join("cpu.weight")),
        want.cpu_weight_v2_quadratic.to_string(),
        "{name}"
    );
    let cpu_max = opt(&want.cpu_quota_us).map_or("max 100000".into(), |q| format!("{q} 100000"));
    assert_eq!(read_trim(&dir.join("cpu.max")), cpu_max, "{name}");
    let memory = opt(&want.memory_limit_bytes).map_or("max".into(), |b| page_floor(b).to_string());
    assert_eq!(read_trim(&dir.join("memory.max")), memory, "{name}");
}

// ---------------------------------------------------------------------------------------------
// OOM
// ---------------------------------------------------------------------------------------------

fn unlimited_pod(d: &Arc<dyn CgroupDriver>, uid: &str) -> PodCgroup {
    PodCgroup::create_with(
        d,
        uid,
        QosClass::Burstable,
        &PodCgroupValues {
            cpu_shares: 102,
            cpu_quota_us: None,
            cpu_period_us: 100_000,
            memory_limit_bytes: None,
            cpu_weight: 10,
        },
    )
    .unwrap()
}

fn limited(memory: Option<i64>) -> ContainerCgroupValues {
    ContainerCgroupValues {
        cpu_shares: 102,
        cpu_quota_us: None,
        cpu_period_us: 100_000,
        memory_limit_bytes: memory,
        cpu_weight: 10,
    }
}

const MIB20: i64 = 20 * 1024 * 1024;

/// A process that outgrows a 20 MiB container limit is SIGKILLed by the
/// kernel and the watcher says OOM, promptly (eventfd/inotify).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_oom_kill_is_detected() {
    let Some(mut real) = Real::new("oom") else {
        return;
    };
    let d = real.driver.clone();
    let pod = unlimited_pod(&d, "oom");
    let c = pod
        .create_container_with("hog", &limited(Some(MIB20)))
        .unwrap();
    if d.version() == CgroupVersion::V1 {
        let mem = &c.dirs()[0];
        assert_eq!(
            read_trim(&mem.join("memory.limit_in_bytes")),
            MIB20.to_string()
        );
        if mem.join("memory.memsw.limit_in_bytes").exists() {
            assert_eq!(
                read_trim(&mem.join("memory.memsw.limit_in_bytes")),
                MIB20.to_string()
            );
        }
        assert!(c.oom().has_notifier(), "eventfd via cgroup.event_control");
    }
    assert!(!c.oom().oom_killed());
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move { c.oom().wait().await })
    };
    let script = "exec python3 -c 'b=[]\nfor i in range(200): b.append(b\"x\" * (1<<20))\nprint(\"survived\")'";
    let pid = real.spawn_in(&c, script);
    let started = Instant::now();
    let st = tokio::task::block_in_place(|| real.wait_child(pid, Duration::from_secs(20)));
    assert_eq!(st.signal(), Some(9), "{st:?}");
    let n = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("OOM wait did not resolve")
        .unwrap()
        .unwrap();
    assert!(n >= 1);
    assert!(c.oom().oom_killed());
    println!("OOM kill seen {:?} after spawn", started.elapsed());
    c.remove(Duration::from_secs(5)).await.unwrap();
    assert!(c.oom().oom_killed(), "still known after removal");
    real.assert_clean();
}

/// Exit 137 without the OOM killer (`kill -9 $$`) is not OOM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_self_sigkill_is_not_oom() {
    let Some(mut real) = Real::new("notoom") else {
        return;
    };
    let d = real.driver.clone();
    let pod = unlimited_pod(&d, "notoom");
    let c = pod
        .create_container_with("self", &limited(Some(MIB20)))
        .unwrap();
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move { c.oom().wait().await })
    };
    let pid = real.spawn_in(&c, "kill -9 $$");
    let st = tokio::task::block_in_place(|| real.wait_child(pid, Duration::from_secs(5)));
    assert_eq!(st.signal(), Some(9), "{st:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "no OOM event");
    waiter.abort();
    assert!(!c.oom().oom_killed());
    assert_eq!(c.oom().oom_kills().unwrap(), 0);
    real.assert_clean();
}

// ---------------------------------------------------------------------------------------------
// Kill tree, removal, stale cleanup
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kill_tree_and_removal() {
    let Some(mut real) = Real::new("killtree") else {
        return;
    };
    let d = real.driver.clone();
    let pod = unlimited_pod(&d, "kt");
    let c = pod.create_container_with("tree", &limited(None)).unwrap();
    // Children, a grandchild and a setsid daemon that leave the process group.
    let pid = real.spawn_in(
        &c,
        "sleep 100 & (sleep 100 &) ; setsid sleep 100 & sh -c 'sleep 100 & wait' & exec sleep 100",
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while c.pids().len() < 6 {
        assert!(
            Instant::now() < deadline,
            "tree never complete: {:?}",
            c.pids()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let members = c.pids();
    c.signal_all(Signal::SIGKILL).unwrap();
    let st = tokio::task::block_in_place(|| real.wait_child(pid, Duration::from_secs(5)));
    assert_eq!(st.signal(), Some(9));
    let deadline = Instant::now() + Duration::from_secs(3);
    while !c.pids().is_empty() {
        assert!(Instant::now() < deadline, "survivors: {:?}", c.pids());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for p in members {
        // Gone (or a zombie awaiting init).
        let stat = fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "{p} alive: {stat}"
        );
    }
    // Freezer left thawed (v1).
    for dir in c.dirs() {
        let f = dir.join("freezer.state");
        if f.exists() {
            assert_eq!(read_trim(&f), "THAWED");
        }
    }
    // Removing the pod with a second, running container in it.
    let c2 = pod.create_container_with("again", &limited(None)).unwrap();
    let pid2 = real.spawn_in(&c2, "sleep 100 & exec sleep 100");
    let deadline = Instant::now() + Duration::from_secs(3);
    while c2.pids().len() < 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pod.remove(Duration::from_secs(5)).await.unwrap();
    let st = tokio::task::block_in_place(|| real.wait_child(pid2, Duration::from_secs(5)));
    assert_eq!(st.signal(), Some(9));
    for p in pod.dirs().into_iter().chain(c.dirs()).chain(c2.dirs()) {
        assert!(!p.exists(), "left behind: {}", p.display());
    }
    real.assert_clean();
}

/// What a killed skiff left behind (pod cgroups with live processes) is
/// found and removed by the next start.
#[test]
fn real_stale_pods_are_cleaned_up() {
    let Some(mut real) = Real::new("stale") else {
        return;
    };
    let d = real.driver.clone();
    let mut pids = Vec::new();
    for uid in ["s1", "s2"] {
        let pod = unlimited_pod(&d, uid);
        let c = pod
            .create_container_with("c", &limited(Some(64 << 20)))
            .unwrap();
        pids.push(real.spawn_in(&c, "setsid sleep 100 & exec sleep 100"));
        let deadline = Instant::now() + Duration::from_secs(3);
        while c.pids().len() < 2 {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(5));
        }
        // Handles dropped: nothing remembers these in this process.
    }
    let next = real.again();
    let found: Vec<String> = list_pod_cgroups(next.as_ref())
        .into_iter()
        .map(|e| e.uid)
        .collect();
    assert_eq!(found, vec!["s1", "s2"]);
    let report = remove_stale_pods(next.as_ref(), |_| false, Duration::from_secs(5));
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.removed.len(), 2);
    for pid in pids {
        assert_eq!(
            real.wait_child(pid, Duration::from_secs(5)).signal(),
            Some(9)
        );
    }
    assert!(list_pod_cgroups(next.as_ref()).is_empty());
    real.assert_clean();
}

// ---------------------------------------------------------------------------------------------
// oom_score_adj
// ---------------------------------------------------------------------------------------------

#[test]
fn real_oom_score_adj_degrades_once() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP oom_score_adj: not root");
        return;
    }
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id() as i32;
    let path = format!("/proc/{pid}/oom_score_adj");
    let adj = OomScoreAdjuster::new();
    match adj.apply(pid, -997) {
        OomScoreOutcome::Applied(v) => {
            println!("host allows negative oom_score_adj");
            assert_eq!(v, -997);
            assert_eq!(read_trim(Path::new(&path)), "-997");
        }
        OomScoreOutcome::Raised {
            requested,
            applied,
            first,
        } => {
            assert_eq!((requested, applied, first), (-997, 0, true));
            assert_eq!(read_trim(Path::new(&path)), "0");
            // Said once only.
            assert_eq!(
                adj.apply(pid, -500),
                OomScoreOutcome::Raised {
                    requested: -500,
                    applied: 0,
                    first: false
                }
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(adj.apply(pid, 938), OomScoreOutcome::Applied(938));
    assert_eq!(read_trim(Path::new(&path)), "938");
    assert_eq!(adj.apply(pid, 5000), OomScoreOutcome::Applied(1000));
    let _ = child.kill();
    let _ = child.wait();
    // A vanished process: skipped, not an error.
    assert!(matches!(
        adj.apply(pid, 10),
        OomScoreOutcome::Skipped { requested: 10, .. }
    ));
}

/// The values computed for a pod spec are the ones written (sanity link to the model).
#[test]
fn real_values_match_the_model() {
    let Some(mut real) = Real::new("model") else {
        return;
    };
    let d = real.driver.clone();
    let spec: PodSpec = serde_yaml_ng::from_str(
        "containers:\n- name: a\n  resources:\n    requests: {cpu: 300m, memory: 100Mi}\n    limits: {cpu: 700m, memory: 200Mi}\n",
    )
    .unwrap();
    let want = pod_cgroup_values(&spec, &d.settings().values);
    let pod = PodCgroup::create(&d, "m", &spec).unwrap();
    if d.version() == CgroupVersion::V1 {
        let cpu = dir_of(&pod, "/cpu/");
        assert_eq!(
            read_trim(&cpu.join("cpu.shares")),
            want.cpu_shares.to_string()
        );
        assert_eq!(read_trim(&cpu.join("cpu.cfs_quota_us")), "70000");
        let mem = dir_of(&pod, "/memory/");
        assert_eq!(
            read_trim(&mem.join("memory.limit_in_bytes")),
            (200i64 << 20).to_string()
        );
    } else {
        let dir = &pod.dirs()[0];
        assert_eq!(read_trim(&dir.join("cpu.max")), "70000 100000");
        assert_eq!(
            read_trim(&dir.join("memory.max")),
            (200i64 << 20).to_string()
        );
    }
    real.assert_clean();
}

/// The cgroup2 directory this process is in (under the unified mount), if there is one.
fn own_cgroup2_dir() -> Option<PathBuf> {
    let mount = skiff_node::mountinfo::read_self()
        .ok()?
        .into_iter()
        .find(|m| m.fstype == "cgroup2")?
        .mount_point;
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(mount.join(rel.trim_start_matches('/')))
}

// Issue 7 item 2 (device cgroup, v2): the BPF device filter with runc's list, attached to a
// real cgroup2 directory, lets a process in it use /dev/null and make a node of the host's
// root disk, but not open it.
#[test]
fn issue7_item2_bpf_device_filter_denies_a_host_disk_node() {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP bpf device filter: not root");
        return;
    }
    let Some(base) = own_cgroup2_dir() else {
        eprintln!("skipped: no cgroup2 mount");
        return;
    };
    let dev = fs::metadata("/").unwrap().dev();
    let (major, minor) = (nix::libc::major(dev), nix::libc::minor(dev));
    let dir = base.join(format!("skiff-devtest-{}", std::process::id()));
    fs::create_dir(&dir).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let result = (|| {
        let fd = fs::File::open(&dir).unwrap();
        skiff_node::cgroups::devices::bpf::attach(
            fd.as_fd(),
            skiff_node::cgroups::devices::DEFAULT_DEVICES,
        )?;
        let node = tmp.path().join("disk");
        let script = format!(
            "echo $$ > {procs}; mknod {node} b {major} {minor} || exit 3; \
             echo x > /dev/null || exit 4; head -c 1 {node} > /dev/null 2>&1 && exit 5; exit 0",
            procs = dir.join("cgroup.procs").display(),
            node = node.display(),
        );
        Command::new("sh").args(["-c", &script]).status()
    })();
    let _ = fs::remove_dir(&dir);
    let status = result.unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "3: no mknod, 4: /dev/null refused, 5: disk opened"
    );
}
