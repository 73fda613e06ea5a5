//! Issue 7 items 5 and 6 on the real binary, as root: the state skiff trusts is its own
//! (records dir 0700 under `umask 000`; planted, foreign and symlinked records are not acted
//! on; only skiff's own cgroups, pod dirs and processes started after the record's owner are
//! cleaned up; pod dir 0750 and log 0640), and skiff never dies of its output
//! (`skiff run … 2>&1 | head -1` ends normally and leaves no tmpfs and no record).
//!
//! Every test uses its own `SKIFF_STATE_DIR` (records are per state dir), so recovery here
//! never touches the pods of other skiffs running at the same time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

/// Root with the v1 pids hierarchy (this machine and CI); else the test is skipped.
fn root_with_pids_v1() -> bool {
    if !is_root() {
        eprintln!("skipping: needs root");
        return false;
    }
    if !Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists() {
        eprintln!("skipping: no cgroup v1 pids hierarchy here");
        return false;
    }
    true
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// `skiff run -f manifest --data-dir data` with its own state dir, through `sh -c` so that
/// `prefix` (e.g. `umask 000;`) applies; returns the outcome.
fn run_sh(prefix: &str, manifest: &Path, data: &Path, state: &Path, suffix: &str) -> Outcome {
    let script = format!("{prefix} \"$0\" run -f \"$1\" --data-dir \"$2\" {suffix}",);
    let child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_skiff"))
        .arg(manifest)
        .arg(data)
        .env("SKIFF_STATE_DIR", state)
        .env_remove("SKIFF_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, RUN_LIMIT)
}

/// Mount points at or below `dir`.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Records (not records being written) in `state/pods`.
fn records(state: &Path) -> Vec<String> {
    std::fs::read_dir(state.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains('.'))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Item 5: modes
// ---------------------------------------------------------------------------------------------

#[test]
fn issue7_item5_records_dir_0700_pod_dir_0750_log_0640_under_umask_000() {
    if !is_root() {
        eprintln!("skipping: records are kept as root only");
        return;
    }
    let t = TestDir::new("umask");
    let state = t.file("state");
    let data = t.file("data");
    let manifest = t.manifest(pod(
        "modes",
        "Never",
        vec![],
        vec![container("app", "echo hello")],
    ));
    let out = run_sh("umask 000;", &manifest, &data, &state, "");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(mode(&state.join("pods")), 0o700, "records dir");
    assert_eq!(mode(&state), 0o700, "state dir");
    let pods: Vec<PathBuf> = std::fs::read_dir(data.join("pods"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(pods.len(), 1, "{pods:?}");
    let pod_dir = &pods[0];
    assert_eq!(mode(pod_dir), 0o750, "pod dir {}", pod_dir.display());
    assert_eq!(mode(&pod_dir.join("app")), 0o750, "container dir");
    let log = pod_dir.join("app/0.log");
    assert_eq!(mode(&log), 0o640, "log {}", log.display());
    assert!(std::fs::read_to_string(&log).unwrap().contains("hello"));
}

// ---------------------------------------------------------------------------------------------
// Item 5: planted records
// ---------------------------------------------------------------------------------------------

/// skiff's `kubepods` directory in the v1 pids hierarchy (below the cgroup this test, and so
/// the skiff it starts, is in).
fn pids_kubepods() -> PathBuf {
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            (ctrl.split(',').any(|c| c == "pids")).then(|| path.to_string())
        })
        .unwrap();
    Path::new("/sys/fs/cgroup/pids")
        .join(own.trim_start_matches('/'))
        .join("kubepods")
}

/// A cgroup with one `sleep` in it; removed (process killed by PID) on drop.
struct Victim {
    cgroup: PathBuf,
    child: std::process::Child,
}

impl Victim {
    fn new(cgroup: PathBuf) -> Victim {
        std::fs::create_dir_all(&cgroup).unwrap();
        let child = Command::new("sleep").arg("1000").spawn().unwrap();
        std::fs::write(cgroup.join("cgroup.procs"), child.id().to_string()).unwrap();
        Victim { cgroup, child }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn start_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        rest.split_whitespace().nth(19).unwrap().parse().unwrap()
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = wait_until(Duration::from_secs(5), || {
            std::fs::remove_dir(&self.cgroup).is_ok() || !self.cgroup.exists()
        });
    }
}

/// A bind mount of `src` on `dst`; unmounted on drop.
struct Bind(PathBuf);

impl Bind {
    fn new(src: &Path, dst: &Path) -> Bind {
        std::fs::create_dir_all(src).unwrap();
        std::fs::create_dir_all(dst).unwrap();
        let st = Command::new("mount")
            .arg("--bind")
            .arg(src)
            .arg(dst)
            .status()
            .unwrap();
        assert!(st.success());
        Bind(dst.to_path_buf())
    }

    fn mounted(&self) -> bool {
        mounts_under(&self.0).contains(&self.0)
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A pid that is no longer running (a finished `true`).
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

fn uid() -> String {
    format!("{:032x}", rand_u128())
}

fn rand_u128() -> u128 {
    let mut b = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    u128::from_le_bytes(b)
}

/// Writes a record as skiff would (root-owned, 0600) at `path`.
fn plant(path: &Path, uid: &str, owner_start: u64, lines: &[String]) {
    let mut text = format!(
        "uid={uid}\nowner_pid={}\nowner_start={owner_start}\n",
        dead_pid()
    );
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn state_dir(t: &TestDir) -> PathBuf {
    let state = t.file("state");
    std::fs::create_dir_all(state.join("pods")).unwrap();
    std::fs::set_permissions(state.join("pods"), std::fs::Permissions::from_mode(0o700)).unwrap();
    state
}

/// Any `skiff run` with `state` (its start runs recovery), which must succeed.
fn next_start(t: &TestDir, state: &Path) {
    let manifest = t.manifest(pod(
        "next",
        "Never",
        vec![],
        vec![container("app", "l Ran")],
    ));
    let out = run_sh("", &manifest, &t.file("next-data"), state, "");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn issue7_item5_planted_records_kill_and_unmount_nothing_of_the_host() {
    if !root_with_pids_v1() {
        return;
    }
    let t = TestDir::new("planted");
    let state = state_dir(&t);
    let data = t.file("data");
    std::fs::create_dir_all(data.join("pods")).unwrap();
    let kubepods = pids_kubepods();
    std::fs::create_dir_all(kubepods.join("besteffort")).unwrap();

    // 1. A cgroup outside skiff's kubepods root, with a process in it.
    let outside_name = format!("skiff-it-planted-{}", &uid()[..12]);
    let mut outside = Victim::new(PathBuf::from("/sys/fs/cgroup/pids").join(&outside_name));
    let u1 = uid();
    plant(
        &state.join("pods").join(&u1),
        &u1,
        1,
        &[format!("cgroup={}", outside.cgroup.display())],
    );
    // 2. The same cgroup reached from skiff's root through `..`.
    let u2 = uid();
    let dotdot = kubepods.join("besteffort").join(format!("pod{u2}"));
    let mut via = dotdot.into_os_string();
    via.push(format!("/../../../{outside_name}"));
    plant(
        &state.join("pods").join(&u2),
        &u2,
        1,
        &[format!("cgroup={}", PathBuf::from(via).display())],
    );
    // 3. A path outside the data root, bind-mounted: as the pod dir, and as a recorded mount.
    let bind = Bind::new(&t.file("host-src"), &t.file("host/dst"));
    let u3 = uid();
    plant(
        &state.join("pods").join(&u3),
        &u3,
        1,
        &[
            format!("pod_dir={}", t.file("host").display()),
            format!("data_dir={}", data.display()),
            format!("mount={}", bind.0.display()),
        ],
    );
    // 4. The pod dir under the data root, but a symlink to the bind mount's parent.
    let u4 = uid();
    let link = data.join("pods").join(format!("default_x_{u4}"));
    std::os::unix::fs::symlink(t.file("host"), &link).unwrap();
    plant(
        &state.join("pods").join(&u4),
        &u4,
        1,
        &[
            format!("pod_dir={}", link.display()),
            format!("data_dir={}", data.display()),
            format!("mount={}", link.join("dst").display()),
        ],
    );
    // 5. skiff's own pod cgroup path, but its process started before the record's owner:
    //    not the pod's, spared (and the record kept).
    let u5 = uid();
    let mut older = Victim::new(kubepods.join("besteffort").join(format!("pod{u5}")));
    let after_it = older.start_ticks() + 100;
    plant(
        &state.join("pods").join(&u5),
        &u5,
        after_it,
        &[format!("cgroup={}", older.cgroup.display())],
    );
    // Control: a genuine record of a dead owner is cleaned up (the test can fail).
    let u6 = uid();
    let mut genuine = Victim::new(kubepods.join("besteffort").join(format!("pod{u6}")));
    plant(
        &state.join("pods").join(&u6),
        &u6,
        1,
        &[format!("cgroup={}", genuine.cgroup.display())],
    );

    next_start(&t, &state);

    assert!(
        outside.alive(),
        "skiff killed a process outside its cgroup root"
    );
    assert!(outside.cgroup.is_dir());
    assert!(
        bind.mounted(),
        "skiff unmounted a path outside its data root"
    );
    assert!(
        older.alive(),
        "skiff killed a process older than the record's owner"
    );
    let left = records(&state);
    for u in [&u1, &u2, &u3, &u4, &u5] {
        assert!(left.contains(u), "record {u} removed: {left:?}");
    }
    assert!(
        wait_until(Duration::from_secs(5), || !genuine.alive()),
        "the genuine record's process survived"
    );
    assert!(!genuine.cgroup.exists(), "the genuine pod cgroup is left");
    assert!(!left.contains(&u6), "the genuine record is left");
}

#[test]
fn issue7_item5_foreign_and_symlinked_records_are_ignored() {
    if !root_with_pids_v1() {
        return;
    }
    let t = TestDir::new("foreign");
    let state = state_dir(&t);
    let kubepods = pids_kubepods();
    std::fs::create_dir_all(kubepods.join("besteffort")).unwrap();

    // A record that would be valid, but owned by another uid.
    let u1 = uid();
    let mut v1 = Victim::new(kubepods.join("besteffort").join(format!("pod{u1}")));
    let r1 = state.join("pods").join(&u1);
    plant(&r1, &u1, 1, &[format!("cgroup={}", v1.cgroup.display())]);
    std::os::unix::fs::chown(&r1, Some(65534), Some(65534)).unwrap();
    // A record that would be valid, reached through a symlink.
    let u2 = uid();
    let mut v2 = Victim::new(kubepods.join("besteffort").join(format!("pod{u2}")));
    let elsewhere = t.file(&u2);
    plant(
        &elsewhere,
        &u2,
        1,
        &[format!("cgroup={}", v2.cgroup.display())],
    );
    std::os::unix::fs::symlink(&elsewhere, state.join("pods").join(&u2)).unwrap();

    next_start(&t, &state);

    assert!(v1.alive(), "a record owned by uid 65534 was acted on");
    assert!(v2.alive(), "a symlinked record was acted on");
    assert!(r1.exists() && elsewhere.exists());
    assert!(std::fs::symlink_metadata(state.join("pods").join(&u2)).is_ok());
}

#[test]
fn issue7_item5_records_dir_writable_by_others_is_refused() {
    if !is_root() {
        eprintln!("skipping: records are kept as root only");
        return;
    }
    let t = TestDir::new("opendir");
    let state = state_dir(&t);
    std::fs::set_permissions(state.join("pods"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let manifest = t.manifest(pod("p", "Never", vec![], vec![container("app", "l Ran")]));
    let out = run_sh("", &manifest, &t.file("data"), &state, "-o json");
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("writable by group or others"),
        "{}",
        out.stderr
    );
    assert!(
        t.log().is_empty(),
        "a container ran without a trustworthy record"
    );
}

// ---------------------------------------------------------------------------------------------
// Item 6: `| head`
// ---------------------------------------------------------------------------------------------

fn secret_pod(t: &TestDir) -> PathBuf {
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s"}, "stringData": {"key": "value"}
    });
    let mut p = pod(
        "chatty",
        "Never",
        vec![],
        vec![with(
            container(
                "app",
                "cat /s/key; seq 100 | while read i; do echo line $i; sleep 0.01; done; l Done",
            ),
            "volumeMounts",
            json!([{"name": "s", "mountPath": "/s"}]),
        )],
    );
    p["spec"]["volumes"] = json!([{"name": "s", "secret": {"secretName": "s"}}]);
    let pod_path = t.manifest(p);
    let text = std::fs::read_to_string(&pod_path).unwrap();
    let both = format!("{}---\n{text}", serde_yaml_ng::to_string(&secret).unwrap());
    std::fs::write(&pod_path, both).unwrap();
    pod_path
}

#[test]
fn issue7_item6_head_closing_output_neither_panics_nor_leaks() {
    if !is_root() {
        eprintln!("skipping: secret tmpfs and records need root");
        return;
    }
    let t = TestDir::new("head");
    let manifest = secret_pod(&t);
    for (i, log) in ["", "SKIFF_LOG=debug"].into_iter().enumerate() {
        let state = t.file(&format!("state{i}"));
        let data = t.file(&format!("data{i}"));
        // skiff's exit status, not head's.
        let out = run_sh(
            &format!("{log} "),
            &manifest,
            &data,
            &state,
            "2>&1 | head -1; exit ${PIPESTATUS[0]}",
        );
        assert_eq!(
            out.code,
            Some(0),
            "SKIFF_LOG={log:?}: stdout {:?} stderr {:?}",
            out.stdout,
            out.stderr
        );
        assert_eq!(out.stdout.lines().count(), 1, "{:?}", out.stdout);
        assert!(!out.stdout.contains("panicked"), "{:?}", out.stdout);
        assert!(
            mounts_under(&data).is_empty(),
            "mounts left: {:?}",
            mounts_under(&data)
        );
        assert!(
            records(&state).is_empty(),
            "records left: {:?}",
            records(&state)
        );
    }
    // The pod ran to its end although nobody read its output after the first line.
    assert_eq!(
        all(&t.log(), "app", "Done").len(),
        2,
        "{}",
        render(&t.log())
    );
}
