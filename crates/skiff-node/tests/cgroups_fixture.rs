#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic
//! cgroup drivers against fake cgroupfs trees (temp dirs laid out like
//! /sys/fs/cgroup): discovery, the exact files and values written for the
//! cases of `shared/spec/resource-vectors.yaml`, QoS placement, CG9, removal,
//! stale cleanup, OOM counters. Runs as any user.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use serde::Deserialize;
use serde_yaml_ng::Value;
use skiff_model::defaults::default_pod;
use skiff_model::resources::{
    qos_class, CgroupConfig, ContainerCgroupValues, PodCgroupValues, QosClass, WeightFormula,
};
use skiff_node::cgroups::{
    driver_for, list_pod_cgroups, pod_rel, remove_stale_pods, CgroupDriver, CgroupError,
    CgroupLayout, CgroupSettings, CgroupVersion, PodCgroup,
};
use skiff_node::tracker::TrackedGroup;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// This machine's /proc/self/mountinfo (one sandbox-tooling mount line dropped) and
/// /proc/self/cgroup (machine cgroup id replaced): cgroup v1 hybrid.
const MACHINE_MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334460k,nr_inodes=3083615,mode=755
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684084k
26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684084k
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

const MACHINE_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/0123456789abcdef
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

/// A systemd host with pure cgroup v2; skiff runs in a delegated scope.
const V2_MOUNTINFO: &str = "\
21 26 0:20 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
26 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
const V2_CGROUP: &str = "0::/system.slice/skiff.scope\n";

/// A container-style v1 host: cpu and cpuacct co-mounted, hierarchies
/// mounted at the container's own cgroup (mount root /docker/abc).
const V1_COMOUNT_MOUNTINFO: &str = "\
100 99 0:50 / / rw - overlay overlay rw
105 104 0:55 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
106 105 0:30 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct
107 105 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
108 105 0:36 /docker/abc /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
109 105 0:37 /docker/abc /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
";
const V1_COMOUNT_CGROUP: &str = "\
12:pids:/docker/abc
4:memory:/docker/abc/sub
2:cpu,cpuacct:/docker/abc
1:name=systemd:/docker/abc
";

const MACHINE_OWN_MEMORY: &str = "process_api/0123456789abcdef";

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        Fixture { _tmp: tmp, root }
    }

    fn cg(&self, rel: &str) -> PathBuf {
        self.root.join("sys/fs/cgroup").join(rel)
    }

    /// This machine's hybrid tree: our own cgroup in every v1 hierarchy,
    /// swap accounting on, cgroup2 with only hugetlb.
    fn machine_v1(&self) -> CgroupLayout {
        for h in [
            "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio", "pids", "systemd",
        ] {
            fs::create_dir_all(self.cg(h)).unwrap();
        }
        let mem = self.cg("memory").join(MACHINE_OWN_MEMORY);
        fs::create_dir_all(&mem).unwrap();
        fs::write(
            mem.join("memory.memsw.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        fs::create_dir_all(self.cg("unified")).unwrap();
        fs::write(self.cg("unified/cgroup.controllers"), "hugetlb\n").unwrap();
        fs::write(self.cg("unified/cgroup.subtree_control"), "").unwrap();
        CgroupLayout::discover(MACHINE_MOUNTINFO, MACHINE_CGROUP, &self.root).unwrap()
    }

    /// A pure v2 tree with `controllers` available to our scope.
    fn v2(&self, controllers: &str) -> CgroupLayout {
        let own = self.cg("system.slice/skiff.scope");
        fs::create_dir_all(&own).unwrap();
        fs::write(own.join("cgroup.controllers"), format!("{controllers}\n")).unwrap();
        fs::write(own.join("cgroup.subtree_control"), "").unwrap();
        CgroupLayout::discover(V2_MOUNTINFO, V2_CGROUP, &self.root).unwrap()
    }

    fn v2_own(&self) -> PathBuf {
        self.cg("system.slice/skiff.scope")
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn read_trim(p: &Path) -> String {
    read(p).trim().to_string()
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

#[test]
fn discovers_this_machine_as_hybrid() {
    let fx = Fixture::new();
    let layout = fx.machine_v1();
    let CgroupLayout::Hybrid { v1, unified } = &layout else {
        panic!("expected hybrid, got {layout:?}");
    };
    // cpu and cpuacct separate, name=systemd kept as a named hierarchy.
    assert_eq!(v1.len(), 9);
    let mem = layout.v1_hierarchy("memory").unwrap();
    assert_eq!(mem.own, format!("/{MACHINE_OWN_MEMORY}"));
    assert_eq!(mem.base, fx.cg("memory").join(MACHINE_OWN_MEMORY));
    let cpu = layout.v1_hierarchy("cpu").unwrap();
    assert_eq!(cpu.controllers, BTreeSet::from(["cpu".to_string()]));
    assert_eq!(cpu.base, fx.cg("cpu"));
    assert_eq!(
        layout.v1_hierarchy("cpuacct").unwrap().base,
        fx.cg("cpuacct")
    );
    assert_eq!(unified.mount, fx.cg("unified"));
    assert_eq!(unified.base, fx.cg("unified"));
    assert_eq!(unified.available, BTreeSet::from(["hugetlb".to_string()]));
    assert!(unified.enabled.is_empty());
    // The driver for it is v1, nested under our memory cgroup.
    let d = driver_for(&layout, CgroupSettings::default()).unwrap();
    assert_eq!(d.version(), CgroupVersion::V1);
    let dirs = d.dirs(Path::new("kubepods"));
    assert_eq!(
        dirs[0],
        fx.cg("memory").join(MACHINE_OWN_MEMORY).join("kubepods")
    );
    assert!(dirs.contains(&fx.cg("cpu/kubepods")));
    assert!(dirs.contains(&fx.cg("cpuacct/kubepods")));
    assert!(dirs.contains(&fx.cg("pids/kubepods")));
    assert!(dirs.contains(&fx.cg("freezer/kubepods")));
    assert!(dirs.contains(&fx.cg("devices/kubepods")));
    assert_eq!(
        dirs.len(),
        6,
        "memory, cpu, cpuacct, pids, freezer, devices: {dirs:?}"
    );
}

#[test]
fn discovers_pure_v2() {
    let fx = Fixture::new();
    let layout = fx.v2("cpuset cpu io memory hugetlb pids rdma misc");
    let CgroupLayout::V2(u) = &layout else {
        panic!("expected v2, got {layout:?}");
    };
    assert_eq!(u.own, "/system.slice/skiff.scope");
    assert_eq!(u.base, fx.v2_own());
    assert!(u.available.contains("memory") && u.available.contains("pids"));
    let d = driver_for(&layout, CgroupSettings::default()).unwrap();
    assert_eq!(d.version(), CgroupVersion::V2);
    assert_eq!(
        d.dirs(Path::new("kubepods")),
        vec![fx.v2_own().join("kubepods")]
    );
}

#[test]
fn discovers_comounted_v1_inside_a_container() {
    let fx = Fixture::new();
    let layout = CgroupLayout::discover(V1_COMOUNT_MOUNTINFO, V1_COMOUNT_CGROUP, &fx.root).unwrap();
    let CgroupLayout::V1(v1) = &layout else {
        panic!("expected v1, got {layout:?}");
    };
    assert_eq!(v1.len(), 4);
    let cpu = layout.v1_hierarchy("cpuacct").unwrap();
    assert!(cpu.has("cpu"));
    // Mount root /docker/abc = our cgroup: the mount point itself.
    assert_eq!(cpu.base, fx.cg("cpu,cpuacct"));
    // memory: we are in /docker/abc/sub.
    assert_eq!(
        layout.v1_hierarchy("memory").unwrap().base,
        fx.cg("memory/sub")
    );
    assert!(layout.unified().is_none());
    let d = driver_for(&layout, CgroupSettings::default()).unwrap();
    // cpu,cpuacct once; no freezer.
    assert_eq!(d.dirs(Path::new("x")).len(), 3);
}

#[test]
fn no_cgroups_is_an_error() {
    let fx = Fixture::new();
    let err = CgroupLayout::discover(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n",
        "0::/\n",
        &fx.root,
    )
    .unwrap_err();
    assert!(matches!(err, CgroupError::NoCgroups(_)), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Missing controllers
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_controllers_are_typed_errors() {
    // v1 without a memory hierarchy.
    let fx = Fixture::new();
    fs::create_dir_all(fx.cg("cpu")).unwrap();
    let mi = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
    let layout = CgroupLayout::discover(mi, "1:cpu:/\n0::/\n", &fx.root).unwrap();
    let err = driver_for(&layout, CgroupSettings::default()).unwrap_err();
    match &err {
        CgroupError::MissingController { controller, .. } => assert_eq!(*controller, "memory"),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("\"memory\""), "{err}");

    // v2 without cpu.
    let fx = Fixture::new();
    let err = driver_for(&fx.v2("memory pids"), CgroupSettings::default()).unwrap_err();
    assert!(
        matches!(
            err,
            CgroupError::MissingController {
                controller: "cpu",
                ..
            }
        ),
        "{err}"
    );

    // v2 without pids: fine, unless a pids limit is configured.
    let fx = Fixture::new();
    let layout = fx.v2("cpu memory io");
    driver_for(&layout, CgroupSettings::default()).unwrap();
    let err = driver_for(
        &layout,
        CgroupSettings {
            pod_pids_limit: Some(100),
            ..CgroupSettings::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            CgroupError::MissingController {
                controller: "pids",
                ..
            }
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Resource vectors
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
    expected: Expected,
    #[serde(rename = "podCgroup")]
    pod_cgroup: PodCgroupWant,
}

#[derive(Deserialize)]
struct Expected {
    #[serde(rename = "qosClass")]
    qos_class: String,
}

#[derive(Deserialize)]
struct PodCgroupWant {
    cpu_shares: u64,
    cpu_quota_us: Value,
    memory_limit_bytes: Value,
    cpu_period_us: u64,
    cpu_weight_v2_linear: u64,
    cpu_weight_v2_quadratic: u64,
}

/// `null` → None; integer → Some; `VERSION_DEPENDENT` → None (skiff follows the
/// 1.28+ CG9 rule, under which all those cases are undeclared: nothing written).
fn optional(v: &Value) -> Option<i64> {
    match v {
        Value::Null => None,
        Value::String(s) if s == "VERSION_DEPENDENT" => None,
        other => Some(other.as_i64().unwrap()),
    }
}

fn load_cases() -> Vec<Case> {
    let path = vectors_path();
    let text = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "resource vectors not found at {} ({e}); set SKIFF_SPEC_DIR",
            path.display()
        )
    });
    let v: Vectors = serde_yaml_ng::from_str(&text).unwrap();
    assert!(v.cases.len() >= 40, "only {} vectors", v.cases.len());
    v.cases
}

fn defaulted_spec(pod: &Value) -> PodSpec {
    let mut p = Pod {
        spec: Some(serde_yaml_ng::from_value(pod.clone()).unwrap()),
        ..Pod::default()
    };
    default_pod(&mut p);
    p.spec.unwrap()
}

fn uid_of(name: &str) -> String {
    format!("uid-{name}")
}

/// Every vector: the pod cgroup lands under the right QoS dir and holds exactly
/// the expected values; undeclared/unset values are not written at all.
#[test]
fn cg1_cg2_cg4_v1_pod_cgroups_hold_vector_values() {
    let fx = Fixture::new();
    let layout = fx.machine_v1();
    let d = driver_for(&layout, CgroupSettings::default()).unwrap();
    let mem_base = fx.cg("memory").join(MACHINE_OWN_MEMORY);
    for case in load_cases() {
        let spec = defaulted_spec(&case.pod);
        let qos = qos_class(&spec);
        assert_eq!(qos.as_str(), case.expected.qos_class, "{}", case.name);
        let uid = uid_of(&case.name);
        let pod = PodCgroup::create(&d, &uid, &spec).unwrap();
        let rel = match qos {
            QosClass::Guaranteed => format!("kubepods/pod{uid}"),
            QosClass::Burstable => format!("kubepods/burstable/pod{uid}"),
            QosClass::BestEffort => format!("kubepods/besteffort/pod{uid}"),
        };
        assert_eq!(pod.rel(), Path::new(&rel), "{}", case.name);
        let want = &case.pod_cgroup;
        let cpu = fx.cg("cpu").join(&rel);
        let mem = mem_base.join(&rel);
        let ctx = &case.name;
        assert_eq!(
            read_trim(&cpu.join("cpu.shares")),
            want.cpu_shares.to_string(),
            "{ctx}"
        );
        match optional(&want.cpu_quota_us) {
            Some(q) => {
                assert_eq!(
                    read_trim(&cpu.join("cpu.cfs_quota_us")),
                    q.to_string(),
                    "{ctx}"
                );
                assert_eq!(
                    read_trim(&cpu.join("cpu.cfs_period_us")),
                    want.cpu_period_us.to_string(),
                    "{ctx}"
                );
            }
            None => {
                assert!(
                    !cpu.join("cpu.cfs_quota_us").exists(),
                    "{ctx}: quota written"
                );
                assert!(
                    !cpu.join("cpu.cfs_period_us").exists(),
                    "{ctx}: period written"
                );
            }
        }
        match optional(&want.memory_limit_bytes) {
            Some(b) => {
                assert_eq!(
                    read_trim(&mem.join("memory.limit_in_bytes")),
                    b.to_string(),
                    "{ctx}"
                );
                assert_eq!(
                    read_trim(&mem.join("memory.memsw.limit_in_bytes")),
                    b.to_string(),
                    "{ctx}"
                );
            }
            None => {
                assert!(
                    !mem.join("memory.limit_in_bytes").exists(),
                    "{ctx}: memory written"
                );
                assert!(!mem.join("memory.memsw.limit_in_bytes").exists(), "{ctx}");
            }
        }
        assert_eq!(
            read_trim(&fx.cg("pids").join(&rel).join("pids.max")),
            "max",
            "{ctx}"
        );
        // The directory exists in cpuacct and freezer too, with nothing written.
        assert!(fx.cg("cpuacct").join(&rel).is_dir(), "{ctx}");
        assert!(fx.cg("freezer").join(&rel).is_dir(), "{ctx}");
        // v1 writes no v2 files.
        assert!(!cpu.join("cpu.weight").exists(), "{ctx}");
    }
    // QoS cgroups: besteffort at the minimum shares.
    assert_eq!(read_trim(&fx.cg("cpu/kubepods/besteffort/cpu.shares")), "2");
    assert!(!fx.cg("cpu/kubepods/burstable/cpu.shares").exists());
}

#[test]
fn cg1_cg5_v2_pod_cgroups_hold_vector_values() {
    for formula in [WeightFormula::Quadratic, WeightFormula::Linear] {
        let fx = Fixture::new();
        let layout = fx.v2("cpuset cpu io memory hugetlb pids rdma misc");
        let settings = CgroupSettings {
            values: CgroupConfig {
                weight_formula: formula,
                ..CgroupConfig::default()
            },
            ..CgroupSettings::default()
        };
        let d = driver_for(&layout, settings).unwrap();
        for case in load_cases() {
            let spec = defaulted_spec(&case.pod);
            let uid = uid_of(&case.name);
            let pod = PodCgroup::create(&d, &uid, &spec).unwrap();
            let dir = fx.v2_own().join(pod.rel());
            let want = &case.pod_cgroup;
            let ctx = format!("{} ({formula:?})", case.name);
            let weight = match formula {
                WeightFormula::Linear => want.cpu_weight_v2_linear,
                WeightFormula::Quadratic => want.cpu_weight_v2_quadratic,
            };
            assert_eq!(
                read_trim(&dir.join("cpu.weight")),
                weight.to_string(),
                "{ctx}"
            );
            match optional(&want.cpu_quota_us) {
                Some(q) => assert_eq!(
                    read_trim(&dir.join("cpu.max")),
                    format!("{q} {}", want.cpu_period_us),
                    "{ctx}"
                ),
                None => assert!(!dir.join("cpu.max").exists(), "{ctx}: cpu.max written"),
            }
            match optional(&want.memory_limit_bytes) {
                Some(b) => assert_eq!(read_trim(&dir.join("memory.max")), b.to_string(), "{ctx}"),
                None => assert!(
                    !dir.join("memory.max").exists(),
                    "{ctx}: memory.max written"
                ),
            }
            assert_eq!(read_trim(&dir.join("pids.max")), "max", "{ctx}");
            assert!(
                !dir.join("memory.oom.group").exists(),
                "{ctx}: pod has no oom.group"
            );
            assert!(!dir.join("cpu.shares").exists(), "{ctx}");
        }
        // Controllers enabled on every level down to the QoS dirs, only the wanted ones.
        let want: BTreeSet<String> = ["cpu", "memory", "pids"].map(String::from).into();
        for level in ["", "kubepods", "kubepods/burstable", "kubepods/besteffort"] {
            let f = fx.v2_own().join(level).join("cgroup.subtree_control");
            assert_eq!(parse_set(&read(&f)), want, "{}", f.display());
        }
        assert_eq!(
            read_trim(&fx.v2_own().join("kubepods/besteffort/cpu.weight")),
            "1"
        );
        // Guaranteed pods are leaves so far: nothing enabled in them.
        let g = fx.v2_own().join("kubepods/poduid-guaranteed-with-sidecar");
        assert!(g.is_dir());
        assert!(!g.join("cgroup.subtree_control").exists());
    }
}

fn parse_set(s: &str) -> BTreeSet<String> {
    s.split_whitespace()
        .map(|w| w.trim_start_matches('+').to_string())
        .collect()
}

#[test]
fn v2_enables_only_available_controllers() {
    let fx = Fixture::new();
    let d = driver_for(&fx.v2("cpu memory io"), CgroupSettings::default()).unwrap();
    let pod = PodCgroup::create_with(&d, "u", QosClass::BestEffort, &best_effort_values()).unwrap();
    let dir = fx.v2_own().join(pod.rel());
    assert!(
        !dir.join("pids.max").exists(),
        "pids not available: not written"
    );
    let want: BTreeSet<String> = ["cpu", "memory"].map(String::from).into();
    assert_eq!(
        parse_set(&read(
            &fx.v2_own()
                .join("kubepods/besteffort/cgroup.subtree_control")
        )),
        want
    );
}

fn best_effort_values() -> PodCgroupValues {
    PodCgroupValues {
        cpu_shares: 2,
        cpu_quota_us: None,
        cpu_period_us: 100_000,
        memory_limit_bytes: None,
        cpu_weight: 1,
    }
}

fn container(yaml: &str) -> Container {
    serde_yaml_ng::from_str(yaml).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Containers (CG6)
// ---------------------------------------------------------------------------------------------

#[test]
fn container_cgroups_v1_and_v2() {
    let limited = container(
        "name: app\nresources:\n  requests: {cpu: 250m, memory: 32Mi}\n  limits: {cpu: 500m, memory: 64Mi}\n",
    );
    let limit_only = container("name: lim\nresources:\n  limits: {cpu: '2'}\n");
    let bare = container("name: bare\n");

    // v1
    let fx = Fixture::new();
    let d = driver_for(&fx.machine_v1(), CgroupSettings::default()).unwrap();
    let pod = PodCgroup::create_with(&d, "p1", QosClass::Burstable, &best_effort_values()).unwrap();
    let c = pod.create_container("app-0", &limited).unwrap();
    let cpu = fx.cg("cpu/kubepods/burstable/podp1/app-0");
    let mem = fx
        .cg("memory")
        .join(MACHINE_OWN_MEMORY)
        .join("kubepods/burstable/podp1/app-0");
    assert_eq!(c.dirs()[0], mem, "memory is the primary hierarchy");
    assert_eq!(read_trim(&cpu.join("cpu.shares")), "256");
    assert_eq!(read_trim(&cpu.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read_trim(&cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read_trim(&mem.join("memory.limit_in_bytes")), "67108864");
    assert_eq!(
        read_trim(&mem.join("memory.memsw.limit_in_bytes")),
        "67108864"
    );
    assert!(!fx
        .cg("pids/kubepods/burstable/podp1/app-0/pids.max")
        .exists());
    assert_eq!(c.join_files().len(), 6);
    // The device cgroup: everything denied, then runc's list allowed (a real cgroup keeps
    // each line; the fixture file shows the last write).
    let dev = fx.cg("devices/kubepods/burstable/podp1/app-0");
    assert_eq!(read_trim(&dev.join("devices.deny")), "a");
    assert_eq!(read_trim(&dev.join("devices.allow")), "c 10:200 rwm");

    let c = pod.create_container("lim-0", &limit_only).unwrap();
    let cpu = fx.cg("cpu/kubepods/burstable/podp1/lim-0");
    // Shares from the limit when there is no request (before defaulting).
    assert_eq!(read_trim(&cpu.join("cpu.shares")), "2048");
    assert_eq!(read_trim(&cpu.join("cpu.cfs_quota_us")), "200000");
    drop(c);

    pod.create_container("bare-0", &bare).unwrap();
    let cpu = fx.cg("cpu/kubepods/burstable/podp1/bare-0");
    let mem = fx
        .cg("memory")
        .join(MACHINE_OWN_MEMORY)
        .join("kubepods/burstable/podp1/bare-0");
    assert_eq!(read_trim(&cpu.join("cpu.shares")), "2");
    assert_eq!(read_trim(&cpu.join("cpu.cfs_period_us")), "100000");
    assert!(!cpu.join("cpu.cfs_quota_us").exists());
    assert!(!mem.join("memory.limit_in_bytes").exists());

    // v2
    let fx = Fixture::new();
    let d = driver_for(&fx.v2("cpu memory pids"), CgroupSettings::default()).unwrap();
    let pod = PodCgroup::create_with(&d, "p2", QosClass::Burstable, &best_effort_values()).unwrap();
    let c = pod.create_container("app-0", &limited).unwrap();
    let dir = fx.v2_own().join("kubepods/burstable/podp2/app-0");
    assert_eq!(c.dirs(), vec![dir.clone()]);
    assert_eq!(read_trim(&dir.join("cpu.weight")), "35"); // quadratic(256) = ceil(10^((64+1000)/612 - 7/34))
    assert_eq!(read_trim(&dir.join("cpu.max")), "50000 100000");
    assert_eq!(read_trim(&dir.join("memory.max")), "67108864");
    assert_eq!(read_trim(&dir.join("memory.oom.group")), "1");
    assert!(!dir.join("pids.max").exists());
    // The pod now has controllers enabled for its containers.
    assert_eq!(
        parse_set(&read(
            &fx.v2_own()
                .join("kubepods/burstable/podp2/cgroup.subtree_control")
        )),
        ["cpu", "memory", "pids"].map(String::from).into()
    );
    pod.create_container("bare-0", &bare).unwrap();
    let dir = fx.v2_own().join("kubepods/burstable/podp2/bare-0");
    assert_eq!(read_trim(&dir.join("cpu.max")), "max 100000");
    assert!(!dir.join("memory.max").exists());

    // memory.oom.group off when single-process OOM kill is configured.
    let d = driver_for(
        &fx.v2("cpu memory pids"),
        CgroupSettings {
            memory_oom_group: false,
            ..CgroupSettings::default()
        },
    )
    .unwrap();
    let pod = PodCgroup::create_with(&d, "p3", QosClass::Burstable, &best_effort_values()).unwrap();
    let c = pod
        .create_container_with(
            "x",
            &ContainerCgroupValues {
                cpu_shares: 2,
                cpu_quota_us: None,
                cpu_period_us: 100_000,
                memory_limit_bytes: None,
                cpu_weight: 1,
            },
        )
        .unwrap();
    assert!(!c.dirs()[0].join("memory.oom.group").exists());
}

#[test]
fn pids_limit_and_cfs_disabled() {
    let settings = CgroupSettings {
        pod_pids_limit: Some(1024),
        values: CgroupConfig {
            cfs_quota_enabled: false,
            ..CgroupConfig::default()
        },
        ..CgroupSettings::default()
    };
    let spec: PodSpec = serde_yaml_ng::from_str(
        "containers:\n- name: a\n  resources:\n    limits: {cpu: '1', memory: 1Gi}\n",
    )
    .unwrap();
    let spec = defaulted_spec(&serde_yaml_ng::to_value(&spec).unwrap());
    assert_eq!(qos_class(&spec), QosClass::Guaranteed);

    let fx = Fixture::new();
    let d = driver_for(&fx.machine_v1(), settings.clone()).unwrap();
    PodCgroup::create(&d, "g", &spec).unwrap();
    assert_eq!(read_trim(&fx.cg("pids/kubepods/podg/pids.max")), "1024");
    assert_eq!(
        read_trim(&fx.cg("cpu/kubepods/podg/cpu.cfs_quota_us")),
        "-1"
    );
    assert_eq!(read_trim(&fx.cg("cpu/kubepods/podg/cpu.shares")), "1024");

    let fx = Fixture::new();
    let d = driver_for(&fx.v2("cpu memory pids"), settings).unwrap();
    PodCgroup::create(&d, "g", &spec).unwrap();
    let dir = fx.v2_own().join("kubepods/podg");
    assert_eq!(read_trim(&dir.join("pids.max")), "1024");
    assert_eq!(read_trim(&dir.join("cpu.max")), "max 100000");
    assert_eq!(read_trim(&dir.join("memory.max")), "1073741824");
}

// ---------------------------------------------------------------------------------------------
// Removal, cleanup, parent
// ---------------------------------------------------------------------------------------------

fn all_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                out.push(e.path());
                stack.push(e.path());
            }
        }
    }
    out
}

#[tokio::test]
async fn removal_leaves_no_directory_behind() {
    for v2 in [false, true] {
        let fx = Fixture::new();
        let layout = if v2 {
            fx.v2("cpu memory pids")
        } else {
            fx.machine_v1()
        };
        let before = all_dirs(&fx.root);
        let settings = CgroupSettings {
            parent: PathBuf::from("skiff/test"),
            ..CgroupSettings::default()
        };
        let d = driver_for(&layout, settings).unwrap();
        let pod =
            PodCgroup::create_with(&d, "r", QosClass::Burstable, &best_effort_values()).unwrap();
        let other =
            PodCgroup::create_with(&d, "s", QosClass::Burstable, &best_effort_values()).unwrap();
        let c1 = pod.create_container("a", &container("name: a\n")).unwrap();
        let c2 = pod.create_container("b", &container("name: b\n")).unwrap();
        assert!(pod.dirs().iter().all(|p| p.is_dir()));
        // One container removed through the TrackedGroup interface.
        c1.remove(Duration::from_secs(1)).await.unwrap();
        assert!(c1.dirs().iter().all(|p| !p.exists()));
        assert!(c2.dirs().iter().all(|p| p.is_dir()));
        // The pod (with the remaining container) removed bottom-up.
        pod.remove(Duration::from_secs(1)).await.unwrap();
        assert!(pod.dirs().iter().all(|p| !p.exists()), "v2={v2}");
        assert!(
            d.exists(Path::new("kubepods/burstable")),
            "QoS dirs stay while another pod uses them"
        );
        other.remove(Duration::from_secs(1)).await.unwrap();
        assert!(
            !d.exists(Path::new("kubepods")),
            "the last pod takes the QoS dirs with it, v2={v2}"
        );
        // Removing again is fine.
        pod.remove_blocking(Duration::from_millis(10)).unwrap();
        d.teardown().unwrap();
        assert_eq!(all_dirs(&fx.root), before, "v2={v2}");
    }
}

#[test]
fn stale_pod_cgroups_are_listed_and_removed() {
    let fx = Fixture::new();
    let d = driver_for(&fx.machine_v1(), CgroupSettings::default()).unwrap();
    let v = best_effort_values();
    for (uid, qos) in [
        ("g1", QosClass::Guaranteed),
        ("b1", QosClass::Burstable),
        ("e1", QosClass::BestEffort),
        ("keep", QosClass::Burstable),
    ] {
        let p = PodCgroup::create_with(&d, uid, qos, &v).unwrap();
        p.create_container("c", &container("name: c\n")).unwrap();
    }
    let listed = list_pod_cgroups(d.as_ref());
    let uids: BTreeSet<&str> = listed.iter().map(|e| e.uid.as_str()).collect();
    assert_eq!(uids, BTreeSet::from(["g1", "b1", "e1", "keep"]));
    let e1 = listed.iter().find(|e| e.uid == "e1").unwrap();
    assert_eq!(e1.qos, QosClass::BestEffort);
    assert_eq!(e1.rel, pod_rel(QosClass::BestEffort, "e1"));

    // A fresh driver (the next skiff start) finds and removes them.
    let d2: Arc<dyn CgroupDriver> =
        driver_for(&fx.machine_v1(), CgroupSettings::default()).unwrap();
    let report = remove_stale_pods(d2.as_ref(), |uid| uid == "keep", Duration::from_secs(1));
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.removed.len(), 3);
    let left: Vec<String> = list_pod_cgroups(d2.as_ref())
        .into_iter()
        .map(|e| e.uid)
        .collect();
    assert_eq!(left, vec!["keep"]);
    assert!(!d2.exists(Path::new("kubepods/podg1")));
}

// ---------------------------------------------------------------------------------------------
// OOM counters on fixtures
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn oom_watcher_reads_v1_and_v2_counters() {
    // v1: memory.oom_control
    let fx = Fixture::new();
    let d = driver_for(&fx.machine_v1(), CgroupSettings::default()).unwrap();
    let pod = PodCgroup::create_with(&d, "o", QosClass::Burstable, &best_effort_values()).unwrap();
    let c = pod.create_container("c", &container("name: c\n")).unwrap();
    assert!(!c.oom().oom_killed());
    assert!(
        !c.oom().has_notifier(),
        "no cgroup.event_control on a fixture"
    );
    fs::write(
        c.dirs()[0].join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    )
    .unwrap();
    assert!(c.oom().oom_killed());
    assert_eq!(c.oom().oom_kills().unwrap(), 1);
    assert_eq!(c.oom().wait().await.unwrap(), 1);
    // After removal the last value seen is kept.
    pod.remove_blocking(Duration::from_secs(1)).unwrap();
    assert!(c.oom().oom_killed());

    // Removal through TrackedGroup keeps an OOM nobody had read yet.
    let pod = PodCgroup::create_with(&d, "o2", QosClass::Burstable, &best_effort_values()).unwrap();
    let c = pod.create_container("c", &container("name: c\n")).unwrap();
    fs::write(c.dirs()[0].join("memory.oom_control"), "oom_kill 2\n").unwrap();
    c.remove(Duration::from_secs(1)).await.unwrap();
    assert!(!c.dirs()[0].exists());
    assert!(c.oom().oom_killed());

    // v2: memory.events, with a baseline and inotify-driven wait.
    let fx = Fixture::new();
    let d = driver_for(&fx.v2("cpu memory pids"), CgroupSettings::default()).unwrap();
    let pod = PodCgroup::create_with(&d, "o", QosClass::Burstable, &best_effort_values()).unwrap();
    let c = pod.create_container("c", &container("name: c\n")).unwrap();
    let events = c.dirs()[0].join("memory.events");
    fs::write(
        &events,
        "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    )
    .unwrap();
    assert!(!c.oom().oom_killed());
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move { c.oom().wait().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    fs::write(
        &events,
        "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 1\n",
    )
    .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("wait() did not resolve")
        .unwrap()
        .unwrap();
    assert_eq!(n, 1);
    assert!(c.oom().oom_killed());
}
