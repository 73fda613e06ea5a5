//! `skiff run` as root against pods that attack the paths root follows (issue 7 item 1 a–c,
//! item 7 recursiveReadOnly and emptyDir usage): a uid-65534 sidecar racing subPath creation
//! with inotify and `renameat2(RENAME_EXCHANGE)`, one flipping an existing subPath between a
//! directory and a symlink while it is mounted, symlinks planted where mount points will be
//! made, an emptyDir tree deeper than `PATH_MAX`, and `recursiveReadOnly` over a sub-mount.
//! Each asserts that nothing on the host changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

macro_rules! require_root {
    ($name:expr) => {
        if !is_root() {
            eprintln!(
                "skipped: {} needs root (mount namespaces, uid 65534)",
                $name
            );
            return;
        }
    };
}

fn python3() -> bool {
    std::process::Command::new("python3")
        .arg("-c")
        .arg("import ctypes")
        .status()
        .is_ok_and(|s| s.success())
}

/// How many times each race is run (issue 7: "racing subPath creation 50 times").
const N: usize = 50;

/// A test dir that uid 65534 can use: `$T` traversable, the shared log and pid files
/// writable.
fn open_test_dir(name: &str) -> TestDir {
    let t = TestDir::new(name);
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in ["log", "pids"] {
        std::fs::write(t.file(f), "").unwrap();
        std::fs::set_permissions(t.file(f), std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    // The attacker's own state (ready, swaps).
    std::fs::create_dir(t.file("s")).unwrap();
    std::fs::set_permissions(t.file("s"), std::fs::Permissions::from_mode(0o777)).unwrap();
    t
}

/// A root-owned 0600 host file the attacker wants.
fn host_secret(t: &TestDir) -> PathBuf {
    let dir = t.file("host");
    std::fs::create_dir(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "precious\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    secret
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn as_nobody(c: Value) -> Value {
    with(
        c,
        "securityContext",
        json!({"runAsUser": 65534, "runAsGroup": 65534}),
    )
}

/// A native sidecar that is "started" once `$T/ready` exists.
fn attacker(body: &str, mounts: Value) -> Value {
    let c = with(sidecar("attacker", body), "volumeMounts", mounts);
    let c = with(
        c,
        "startupProbe",
        json!({"exec": {"command": ["/bin/sh", "-c", "test -f $T/s/ready"]},
               "periodSeconds": 1, "failureThreshold": 30}),
    );
    as_nobody(c)
}

/// Python (ctypes): inotify on the volume; each `new<i>` directory skiff creates is swapped
/// at once with the planted symlink `l<i>` -> the host secret (`renameat2(RENAME_EXCHANGE)`).
const CREATION_RACE: &str = r#"
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
vol, secret, n, t = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
os.chdir(vol)
for i in range(n):
    os.symlink(secret, "l%d" % i)
fd = libc.inotify_init1(0)
assert fd >= 0
assert libc.inotify_add_watch(fd, vol.encode(), 0x100) >= 0  # IN_CREATE
open(t + "/s/ready", "w").close()
swaps = 0
while True:
    buf = os.read(fd, 65536)
    off = 0
    while off < len(buf):
        wd, mask, cookie, ln = struct.unpack_from("iIII", buf, off)
        name = buf[off + 16:off + 16 + ln].rstrip(b"\0").decode()
        off += 16 + ln
        if name.startswith("new"):
            i = name[3:]
            if libc.renameat2(-100, name.encode(), -100, ("l" + i).encode(), 2) == 0:
                swaps += 1
                with open(t + "/s/swaps", "a") as f:
                    f.write(name + "\n")
"#;

/// Python (ctypes): `w<i>` directories and `s<i>` symlinks -> the host secret, exchanged in
/// a tight loop for as long as the pod runs.
const FLIP_RACE: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
vol, secret, n, t = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
os.chdir(vol)
for i in range(n):
    os.mkdir("w%d" % i)
    os.symlink(secret, "s%d" % i)
open(t + "/s/ready", "w").close()
pairs = [(("w%d" % i).encode(), ("s%d" % i).encode()) for i in range(n)]
flips = 0
while True:
    for a, b in pairs:
        if libc.renameat2(-100, a, -100, b, 2) == 0:
            flips += 1
    if flips % 5000 < n:
        with open(t + "/s/swaps", "w") as f:
            f.write("%d\n" % flips)
"#;

/// A victim: mounts subPath `sub` at `$T/m<i>`, logs `LEAKED` if what it got is the secret.
fn victim(i: usize, t: &TestDir, sub: &str) -> Value {
    let m = format!("{}/m{i}", t.path().display());
    let c = container(
        &format!("v{i}"),
        &format!("if [ -f {m} ] || grep -qs precious {m}; then l LEAKED; fi; l Mounted"),
    );
    with(
        c,
        "volumeMounts",
        json!([{"name": "shared", "mountPath": m, "subPath": format!("{sub}{i}")}]),
    )
}

fn race(name: &str, script: &str, sub: &str) {
    let t = open_test_dir(name);
    let secret = host_secret(&t);
    std::fs::write(t.file("attack.py"), script).unwrap();
    let vol = format!("{}/atk", t.path().display());
    let atk = attacker(
        &format!(
            "exec python3 $T/attack.py {vol} {} {N} $T",
            secret.display()
        ),
        json!([{"name": "shared", "mountPath": vol}]),
    );
    let victims = (0..N).map(|i| victim(i, &t, sub)).collect();
    let mut p = pod(name, "Never", vec![atk], victims);
    p["spec"]["volumes"] = json!([{"name": "shared", "emptyDir": {}}]);
    let out = t.run(p, &["--timeout", "25"]);
    let swaps = std::fs::read_to_string(t.file("s/swaps")).unwrap_or_default();
    let log = t.log();
    let mounted = log.iter().filter(|l| l.what == "Mounted").count();
    eprintln!(
        "{name}: exit {:?}, {mounted} of {N} victims mounted, attacker swaps: {}",
        out.code,
        swaps.lines().count().max(swaps.trim().parse().unwrap_or(0))
    );
    // The attacker did race (it swapped, and skiff saw it).
    assert!(
        !swaps.trim().is_empty(),
        "the attacker never swapped\n{}",
        out.stderr
    );
    // Nothing on the host changed, nothing was mounted anywhere.
    assert_eq!(
        mode(&secret),
        0o600,
        "the host file's mode changed\n{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "precious\n");
    assert!(
        !log.iter().any(|l| l.what == "LEAKED"),
        "a victim got the host file mounted: {}",
        render(&log)
    );
    // Mount points created on the host for the victims are gone again.
    for i in 0..N {
        assert!(!t.file(&format!("m{i}")).exists(), "m{i} left behind");
    }
    assert!(t.leftovers().is_empty());
}

// Item 1 (a): creating a missing subPath directory and chmod-ing it by path let the attacker
// swap the new directory for a symlink and have root chmod any host file 0777.
#[test]
fn issue7_item1_subpath_creation_race_never_chmods_or_mounts_a_host_file() {
    require_root!("issue7_item1_subpath_creation_race_never_chmods_or_mounts_a_host_file");
    if !python3() {
        eprintln!("skipped: python3 with ctypes is missing");
        return;
    }
    race("subpath-create-race", CREATION_RACE, "new");
}

// Item 1 (b): an existing subPath flipped between a directory and a symlink between the check
// and the bind mount got a host file mounted read-write into the victim.
#[test]
fn issue7_item1_subpath_check_then_mount_race_never_mounts_a_host_file() {
    require_root!("issue7_item1_subpath_check_then_mount_race_never_mounts_a_host_file");
    if !python3() {
        eprintln!("skipped: python3 with ctypes is missing");
        return;
    }
    race("subpath-flip-race", FLIP_RACE, "w");
}

// Item 1 (c): a mount point below an earlier volume mount is made inside that volume (what
// the container sees there), and symlinks planted where mount points will be created — on the
// host root by a non-root user, inside a volume by a non-root sidecar — are never followed.
#[test]
fn issue7_item1_mount_points_are_made_inside_volumes_and_never_through_planted_symlinks() {
    require_root!(
        "issue7_item1_mount_points_are_made_inside_volumes_and_never_through_planted_symlinks"
    );
    let t = open_test_dir("mountpoint-plant");
    let d = t.path().display().to_string();
    // Host root: a symlink owned by uid 65534 where a mount point's parent will be.
    let hostdir = t.file("hostdir");
    std::fs::create_dir(&hostdir).unwrap();
    std::os::unix::fs::symlink(&hostdir, t.file("plant")).unwrap();
    std::os::unix::fs::lchown(t.file("plant"), Some(65534), Some(65534)).unwrap();
    // Inside a volume: the sidecar plants `sub -> hostdir2` in the volume `planted`.
    let hostdir2 = t.file("hostdir2");
    std::fs::create_dir(&hostdir2).unwrap();
    let atk = attacker(
        &format!(
            "ln -s {} {d}/side/sub && touch $T/s/ready; {SERVE}",
            hostdir2.display()
        ),
        json!([{"name": "planted", "mountPath": format!("{d}/side")}]),
    );
    // The good case: a configMap mounted below an emptyDir mount.
    let nested = with(
        container(
            "nested",
            &format!("grep -q fast {d}/vol/cfg/mode && l CfgSeen; ls {d}/vol | grep -qx cfg && l InVolume"),
        ),
        "volumeMounts",
        json!([{"name": "scratch", "mountPath": format!("{d}/vol")},
               {"name": "cfg", "mountPath": format!("{d}/vol/cfg")}]),
    );
    let host_plant = with(
        container("hostplant", "l Started"),
        "volumeMounts",
        json!([{"name": "scratch", "mountPath": format!("{d}/plant/x")}]),
    );
    let vol_plant = with(
        container("volplant", "l Started"),
        "volumeMounts",
        json!([{"name": "planted", "mountPath": format!("{d}/w")},
               {"name": "scratch", "mountPath": format!("{d}/w/sub/inner")}]),
    );
    let mut p = pod(
        "plant",
        "Never",
        vec![atk],
        vec![nested, host_plant, vol_plant],
    );
    p["spec"]["volumes"] = json!([
        {"name": "scratch", "emptyDir": {}},
        {"name": "planted", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "cfg"}},
    ]);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                    "data": {"mode": "fast"}});
    let out = t.run_with_docs(&[cm], p, &["--timeout", "8"]);
    let log = t.log();
    let seen = |name: &str, what: &str| log.iter().any(|l| l.name == name && l.what == what);
    assert!(
        seen("nested", "CfgSeen"),
        "{}\n{}",
        render(&log),
        out.stderr
    );
    assert!(
        seen("nested", "InVolume"),
        "{}\n{}",
        render(&log),
        out.stderr
    );
    // Neither planted symlink was followed: nothing created behind them, nothing started.
    assert!(
        !hostdir.join("x").exists(),
        "created through a host-root symlink"
    );
    assert!(
        !hostdir2.join("inner").exists(),
        "created through an in-volume symlink"
    );
    assert_eq!(std::fs::read_dir(&hostdir).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(&hostdir2).unwrap().count(), 0);
    assert!(!seen("hostplant", "Started"), "{}", render(&log));
    assert!(!seen("volplant", "Started"), "{}", render(&log));
    // The configMap's mount point was never made on the host root, and the one that was
    // (the emptyDir's) is removed again.
    assert!(!t.file("vol").exists(), "mount point left on the host");
    assert!(!t.file("w").exists(), "mount point left on the host");
    assert!(t.leftovers().is_empty());
}

// Item 7: an emptyDir's usage counts every byte however deep (a tree deeper than PATH_MAX
// evaded sizeLimit), and its data never survives the pod.
#[test]
fn issue7_item7_deep_emptydir_is_counted_and_removed() {
    require_root!("issue7_item7_deep_emptydir_is_counted_and_removed");
    if !python3() {
        eprintln!("skipped: python3 is missing");
        return;
    }
    let t = open_test_dir("deep-emptydir");
    let dir = format!("{}/scratch", t.path().display());
    let data = t.file("data");
    // 2100 levels of "d/": 4200 bytes of path below the volume, more than PATH_MAX (4096)
    // and more than PATH_MAX/2 components; 2 MiB at the bottom, sizeLimit 1Mi.
    let deep = format!(
        "import os\nos.chdir('{dir}')\nfor i in range(2100):\n    os.mkdir('d')\n    os.chdir('d')\n\
         f = open('big', 'wb')\nf.write(b'x' * (2 << 20))\nf.close()\n"
    );
    std::fs::write(t.file("deep.py"), deep).unwrap();
    let app = with(
        container(
            "app",
            "trap 'exit 0' TERM; python3 $T/deep.py && l Wrote; while :; do sleep 0.05; done",
        ),
        "volumeMounts",
        json!([{"name": "scratch", "mountPath": dir}]),
    );
    let mut p = pod("deep", "Always", vec![], vec![app]);
    p["spec"]["volumes"] = json!([{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}]);
    let out = t.run(
        p,
        &["--timeout", "30", "--data-dir", data.to_str().unwrap()],
    );
    let log = t.log();
    assert!(
        log.iter().any(|l| l.what == "Wrote"),
        "{}\n{}",
        render(&log),
        out.stderr
    );
    let evicted = "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". ";
    assert!(
        out.stderr.contains(&format!("Warning Evicted: {evicted}")),
        "{}",
        out.stderr
    );
    assert_eq!(out.pod()["status"]["reason"], "Evicted");
    // Nothing of the volume is left in the data dir.
    let pods = data.join("pods");
    for e in std::fs::read_dir(&pods).into_iter().flatten().flatten() {
        assert!(
            !e.path().join("volumes").exists(),
            "volume data survived the pod in {}",
            e.path().display()
        );
    }
    assert!(t.leftovers().is_empty());
}

/// A tmpfs the test mounts (and always unmounts).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(p: &Path) -> Tmpfs {
        std::fs::create_dir_all(p).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(p)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs on {}", p.display());
        Tmpfs(p.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

// Item 7: recursiveReadOnly Enabled (and IfPossible) makes a sub-mount of the volume
// read-only too; with Disabled (a plain readOnly mount) the sub-mount stays writable.
#[test]
fn issue7_item7_recursive_read_only_covers_sub_mounts() {
    require_root!("issue7_item7_recursive_read_only_covers_sub_mounts");
    let t = open_test_dir("rro");
    let d = t.path().display().to_string();
    let hp = t.file("hp");
    std::fs::create_dir(&hp).unwrap();
    let _sub = Tmpfs::mount(&hp.join("sub"));
    let probe = |name: &str, at: &str| {
        container(
            name,
            &format!(
                "if touch {at}/sub/{name} 2>/dev/null; then l SubWritable; else l SubReadOnly; fi; \
                 if touch {at}/top 2>/dev/null; then l TopWritable; else l TopReadOnly; fi"
            ),
        )
    };
    let m = |at: String, rro: &str| json!([{"name": "hp", "mountPath": at, "readOnly": true, "recursiveReadOnly": rro}]);
    let apps = vec![
        with(
            probe("enabled", &format!("{d}/e")),
            "volumeMounts",
            m(format!("{d}/e"), "Enabled"),
        ),
        with(
            probe("ifpossible", &format!("{d}/i")),
            "volumeMounts",
            m(format!("{d}/i"), "IfPossible"),
        ),
        with(
            probe("disabled", &format!("{d}/x")),
            "volumeMounts",
            m(format!("{d}/x"), "Disabled"),
        ),
    ];
    let mut p = pod("rro", "Never", vec![], apps);
    p["spec"]["volumes"] = json!([{"name": "hp", "hostPath": {"path": hp, "type": "Directory"}}]);
    let out = t.run(p, &["--timeout", "20"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let log = t.log();
    let seen = |name: &str, what: &str| log.iter().any(|l| l.name == name && l.what == what);
    for c in ["enabled", "ifpossible"] {
        assert!(seen(c, "SubReadOnly"), "{c}: {}", render(&log));
        assert!(seen(c, "TopReadOnly"), "{c}: {}", render(&log));
    }
    assert!(seen("disabled", "SubWritable"), "{}", render(&log));
    assert!(seen("disabled", "TopReadOnly"), "{}", render(&log));
    assert!(hp.join("sub/disabled").exists());
    assert!(!hp.join("sub/enabled").exists() && !hp.join("sub/ifpossible").exists());
    assert!(t.leftovers().is_empty());
}

// Item 7: the kubelet's rule — recursiveReadOnly needs readOnly (API validation rejects it
// before anything runs; exit 2 for bad input).
#[test]
fn issue7_item7_recursive_read_only_without_read_only_is_rejected() {
    let t = TestDir::new("rro-reject");
    let app = with(
        container("app", "l Started"),
        "volumeMounts",
        json!([{"name": "e", "mountPath": format!("{}/e", t.path().display()),
                "recursiveReadOnly": "Enabled"}]),
    );
    let mut p = pod("rro-bad", "Never", vec![], vec![app]);
    p["spec"]["volumes"] = json!([{"name": "e", "emptyDir": {}}]);
    let out = t.run(p, &["--timeout", "10"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("recursiveReadOnly"), "{}", out.stderr);
    assert!(t.log().is_empty());
}
