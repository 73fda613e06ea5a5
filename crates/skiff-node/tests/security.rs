//! securityContext (issue 4 item 7) on real processes: each test starts a container through
//! the host runtime with the plan `security::plan` makes for a pod, and reads what the kernel
//! says about the process (`/proc/self/status`, `id`) from the container's own output.
//! Needs root (credentials, capabilities); skipped with a reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use k8s_openapi::api::core::v1::{Container, ExecAction, Pod, Probe};
use serde_json::{json, Value};
use skiff_node::isolation::ContainerSetup;
use skiff_node::logs::parse_record;
use skiff_node::probe::{HostProber, ProbeOutcome, Prober};
use skiff_node::runtime::{HostContainer, HostRuntime, StopSignal};
use skiff_node::security::{self, caps, HostSecurity};
use skiff_node::tracker::ProcessGroupTracker;

/// Prints the lines of `/proc/self/status` the tests look at.
const STATUS: &str =
    "grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status";

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root (setuid/setgid, capability bounding set)");
    false
}

fn pod(pod_sc: Value, c_sc: Value, script: &str) -> (Pod, Container) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "sec", "namespace": "default", "uid": "uid-sec"},
        "spec": {
            "securityContext": pod_sc,
            "containers": [{"name": "c", "image": "host", "securityContext": c_sc,
                            "command": ["/bin/sh", "-c", script]}],
        }
    }))
    .unwrap();
    let c = pod.spec.as_ref().unwrap().containers[0].clone();
    (pod, c)
}

fn setup(pod: &Pod, c: &Container) -> ContainerSetup {
    ContainerSetup {
        security: Some(security::plan(pod, c, &HostSecurity::detect()).unwrap()),
        ..Default::default()
    }
}

async fn start(
    rt: &HostRuntime,
    pod: &Pod,
    c: &Container,
    data: &std::path::Path,
) -> HostContainer {
    rt.start(launch(c, data), setup(pod, c), None)
        .await
        .unwrap()
}

/// The container's stdout+stderr, in order.
fn output(ct: &HostContainer) -> String {
    std::fs::read_to_string(ct.log_path())
        .unwrap()
        .lines()
        .map(|l| String::from_utf8_lossy(parse_record(l.as_bytes()).unwrap().1).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `script` to completion under the pod's and container's securityContext.
async fn run(pod_sc: Value, c_sc: Value, script: &str) -> (i32, String) {
    run_on(&HostRuntime::new().unwrap(), pod_sc, c_sc, script).await
}

async fn run_on(rt: &HostRuntime, pod_sc: Value, c_sc: Value, script: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let (p, c) = pod(pod_sc, c_sc, script);
    let ct = start(rt, &p, &c, dir.path()).await;
    let exit = ct.wait().await;
    (exit.exit_code, output(&ct))
}

/// The value of a `/proc/self/status` line (`Uid:\t0\t0…` → `0\t0…`).
fn field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {out}"))
        .trim()
}

fn hex(set: u64) -> String {
    format!("{set:016x}")
}

/// skiff's own effective set: the ceiling of every container.
fn own_caps() -> u64 {
    HostSecurity::detect().effective
}

#[tokio::test]
async fn sc_run_as_user_group_supplemental_and_fs_group_visible_in_id() {
    if !root() {
        return;
    }
    let (code, out) = run(
        json!({"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
               "supplementalGroups": [4000, 4001]}),
        json!({}),
        &format!("echo id $(id -u) $(id -g) $(id -G); {STATUS}"),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("id 1000 3000 "), "{out}");
    assert_eq!(field(&out, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(field(&out, "Gid"), "3000\t3000\t3000\t3000");
    assert_eq!(field(&out, "Groups"), "2000 3000 4000 4001");
    // A non-root process keeps no capabilities across exec (no ambient set); the bounding
    // set is the runtime default.
    assert_eq!(field(&out, "CapEff"), hex(0));
    assert_eq!(field(&out, "CapPrm"), hex(0));
    assert_eq!(field(&out, "CapBnd"), hex(caps::DEFAULT & own_caps()));
    // The container's runAsUser overrides the pod's.
    let (_, out) = run(
        json!({"runAsUser": 1000}),
        json!({"runAsUser": 1001}),
        STATUS,
    )
    .await;
    assert_eq!(field(&out, "Uid"), "1001\t1001\t1001\t1001");
}

#[tokio::test]
async fn sc_default_root_container_gets_the_runtime_default_capabilities() {
    if !root() {
        return;
    }
    let (code, out) = run(json!({}), json!({}), STATUS).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&out, "Uid"), "0\t0\t0\t0");
    let default = hex(caps::DEFAULT & own_caps());
    assert_eq!(field(&out, "CapEff"), default);
    assert_eq!(field(&out, "CapPrm"), default);
    assert_eq!(field(&out, "CapBnd"), default);
    assert_eq!(field(&out, "CapInh"), hex(0));
    assert_eq!(field(&out, "CapAmb"), hex(0));
    assert_eq!(field(&out, "NoNewPrivs"), "0");
    assert_eq!(
        field(&out, "Seccomp"),
        "0",
        "unset seccompProfile is Unconfined"
    );
}

#[tokio::test]
async fn sc_capabilities_drop_all_and_add() {
    if !root() {
        return;
    }
    let (_, out) = run(
        json!({}),
        json!({"capabilities": {"drop": ["ALL"]}}),
        STATUS,
    )
    .await;
    assert_eq!(field(&out, "CapEff"), hex(0));
    assert_eq!(field(&out, "CapBnd"), hex(0));
    let (_, out) = run(
        json!({}),
        json!({"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "CAP_SYS_TIME"]}}),
        STATUS,
    )
    .await;
    assert_eq!(
        field(&out, "CapEff"),
        hex(1 << caps::NET_ADMIN | 1 << caps::SYS_TIME)
    );
    let (_, out) = run(
        json!({}),
        json!({"capabilities": {"drop": ["CHOWN"]}}),
        STATUS,
    )
    .await;
    assert_eq!(
        field(&out, "CapEff"),
        hex(caps::DEFAULT & own_caps() & !(1 << caps::CHOWN))
    );
    // Dropped means dropped: chown needs CAP_CHOWN even for root.
    let (code, out) = run(
        json!({}),
        json!({"capabilities": {"drop": ["CHOWN"]}}),
        "f=$(mktemp); chown 1234 \"$f\"; rc=$?; rm -f \"$f\"; exit $rc",
    )
    .await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
}

#[tokio::test]
async fn sc_privileged_gets_every_capability_skiff_has() {
    if !root() {
        return;
    }
    let (_, out) = run(json!({}), json!({"privileged": true}), STATUS).await;
    // CAP_SYS_RESOURCE is missing on this machine's root: never more than skiff has.
    assert_eq!(field(&out, "CapEff"), hex(own_caps()));
    assert_eq!(
        field(&out, "CapBnd"),
        hex(own_caps() & HostSecurity::detect().bounding)
    );
    assert_eq!(field(&out, "Seccomp"), "0");
}

#[tokio::test]
async fn sc_allow_privilege_escalation_false_sets_no_new_privs() {
    if !root() {
        return;
    }
    let (_, out) = run(
        json!({}),
        json!({"allowPrivilegeEscalation": false}),
        STATUS,
    )
    .await;
    assert_eq!(field(&out, "NoNewPrivs"), "1");
    let (_, out) = run(json!({}), json!({"allowPrivilegeEscalation": true}), STATUS).await;
    assert_eq!(field(&out, "NoNewPrivs"), "0");
}

const UNSHARE: &str = "unshare -n true && echo unshare-ok || echo unshare-denied";

#[tokio::test]
async fn sc_seccomp_runtime_default_blocks_dangerous_syscalls() {
    if !root() {
        return;
    }
    let script = format!("{STATUS}; {UNSHARE}; ls / >/dev/null && echo ls-ok");
    let (code, out) = run(
        json!({"seccompProfile": {"type": "RuntimeDefault"}}),
        json!({}),
        &script,
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&out, "Seccomp"), "2");
    assert!(out.contains("unshare-denied"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("ls-ok"), "{out}");
    // Without the filter (and with CAP_SYS_ADMIN) the same call works: it is the filter, not
    // the capability set, that says no.
    let (_, out) = run(
        json!({"seccompProfile": {"type": "RuntimeDefault"}}),
        json!({"seccompProfile": {"type": "Unconfined"}, "capabilities": {"add": ["SYS_ADMIN"]}}),
        &script,
    )
    .await;
    assert_eq!(field(&out, "Seccomp"), "0");
    assert!(out.contains("unshare-ok"), "{out}");
    // With CAP_SYS_ADMIN the default profile allows unshare, as containerd's does.
    let (_, out) = run(
        json!({"seccompProfile": {"type": "RuntimeDefault"}}),
        json!({"capabilities": {"add": ["SYS_ADMIN"]}}),
        &script,
    )
    .await;
    assert_eq!(field(&out, "Seccomp"), "2");
    assert!(out.contains("unshare-ok"), "{out}");
}

#[tokio::test]
async fn sc_applies_on_the_fork_fallback_path_too() {
    if !root() {
        return;
    }
    // ProcessGroupTracker has no cgroup directory: the `Command` pre-exec path.
    let rt = HostRuntime::with_tracker(Arc::new(ProcessGroupTracker)).unwrap();
    let (code, out) = run_on(
        &rt,
        json!({"runAsUser": 1000, "runAsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}}),
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}),
        &format!("{STATUS}; {UNSHARE}"),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&out, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(field(&out, "CapBnd"), hex(0));
    assert_eq!(field(&out, "NoNewPrivs"), "1");
    assert_eq!(field(&out, "Seccomp"), "2");
    assert!(out.contains("unshare-denied"), "{out}");
}

#[tokio::test]
async fn sc_exec_probes_run_with_the_containers_credentials() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (p, c) = pod(
        json!({"runAsUser": 1000, "runAsGroup": 2000, "seccompProfile": {"type": "RuntimeDefault"}}),
        json!({"allowPrivilegeEscalation": false}),
        "exec sleep 30",
    );
    let rt = HostRuntime::new().unwrap();
    let ct = start(&rt, &p, &c, dir.path()).await;
    let probe = Probe {
        exec: Some(ExecAction {
            command: Some(vec!["/bin/sh".into(), "-c".into(), STATUS.into()]),
        }),
        timeout_seconds: Some(5),
        ..Default::default()
    };
    let r = HostProber::new()
        .unwrap()
        .probe(&probe, ct.exec_context())
        .await;
    ct.signal(StopSignal::Kill).unwrap();
    ct.wait().await;
    assert_eq!(r.outcome, ProbeOutcome::Success, "{}", r.output);
    assert_eq!(field(&r.output, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(field(&r.output, "Gid"), "2000\t2000\t2000\t2000");
    assert_eq!(field(&r.output, "NoNewPrivs"), "1");
    assert_eq!(field(&r.output, "Seccomp"), "2");
}

#[tokio::test]
async fn sc_run_as_non_root_rejects_root_before_start() {
    let host = HostSecurity {
        euid: 0,
        ..HostSecurity::detect()
    };
    let (p, c) = pod(json!({"runAsNonRoot": true}), json!({}), "true");
    let e = security::plan(&p, &c, &host).unwrap_err();
    assert_eq!(e.failure().reason(), "CreateContainerConfigError");
    assert_eq!(
        e.to_string(),
        "container has runAsNonRoot and image will run as root (pod: \"sec_default(uid-sec)\", container: c)"
    );
    let (p, c) = pod(
        json!({"runAsNonRoot": true}),
        json!({"runAsUser": 0}),
        "true",
    );
    assert_eq!(
        security::plan(&p, &c, &host).unwrap_err().to_string(),
        "container's runAsUser breaks non-root policy (pod: \"sec_default(uid-sec)\", container: c)"
    );
}

// Issue 7 item 3: RuntimeDefault is containerd's default profile, an allow-list. Each system
// call below is made with ctypes from a real container process; the line says "ok" or the
// errno name.
const SYSCALLS: &str = r#"/usr/bin/python3 - <<'EOF'
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    e = ctypes.get_errno()
    print(name, "ok" if r >= 0 else errno.errorcode.get(e, str(e)))
pid = os.getpid()
call("kcmp", 312, pid, pid, 0, 0, 0)
call("pidfd_getfd", 438, -1, 0, 0)
call("process_madvise", 440, -1, 0, 0, 0, 0)
call("userfaultfd", 323, 1)
call("keyctl", 250, 0, 0)
call("open_tree_attr", 467, -1, 0, 0, 0, 0)
call("unassigned_400", 400)
call("getpid", 39)
EOF"#;

/// The result `SYSCALLS` printed for `name`.
fn syscall_result<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {out}"))
}

#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn issue7_item3_runtime_default_denies_what_the_allow_list_leaves_out() {
    if !root() {
        return;
    }
    let script = format!("{STATUS}; {SYSCALLS}");
    let (code, out) = run(
        json!({"seccompProfile": {"type": "RuntimeDefault"}}),
        json!({}),
        &script,
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&out, "Seccomp"), "2");
    // The old deny-list let these through: kcmp, pidfd_getfd and process_madvise need
    // CAP_SYS_PTRACE in containerd's profile; userfaultfd and keyctl are not in it.
    for (name, want) in [
        ("kcmp", "EPERM"),
        ("pidfd_getfd", "EPERM"),
        ("process_madvise", "EPERM"),
        ("userfaultfd", "EPERM"),
        ("keyctl", "EPERM"),
        // Newer than every call the profile names: ENOSYS (runc's stub), so programs fall
        // back as on an older kernel.
        ("open_tree_attr", "ENOSYS"),
        ("unassigned_400", "EPERM"),
        ("getpid", "ok"),
    ] {
        assert_eq!(syscall_result(&out, name), want, "{name}: {out}");
    }
    // The same container Unconfined: the kernel answers (kcmp of a process with itself is
    // allowed, the bad fds are EBADF, open_tree_attr's NULL path EFAULT).
    let (code, out) = run(
        json!({"seccompProfile": {"type": "RuntimeDefault"}}),
        json!({"seccompProfile": {"type": "Unconfined"}}),
        &script,
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&out, "Seccomp"), "0");
    for (name, want) in [
        ("kcmp", "ok"),
        ("pidfd_getfd", "EBADF"),
        ("process_madvise", "EBADF"),
        ("keyctl", "EINVAL"),
        ("open_tree_attr", "EFAULT"),
        ("unassigned_400", "ENOSYS"),
    ] {
        assert_eq!(syscall_result(&out, name), want, "{name}: {out}");
    }
}

#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn issue7_item3_cap_sys_ptrace_adds_kcmp_pidfd_getfd_process_madvise() {
    if !root() {
        return;
    }
    let (code, out) = run(
        json!({"seccompProfile": {"type": "RuntimeDefault"}}),
        json!({"capabilities": {"add": ["SYS_PTRACE"]}}),
        &format!("{STATUS}; {SYSCALLS}"),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&out, "Seccomp"), "2");
    assert_eq!(syscall_result(&out, "kcmp"), "ok", "{out}");
    assert_eq!(syscall_result(&out, "pidfd_getfd"), "EBADF", "{out}");
    assert_eq!(syscall_result(&out, "process_madvise"), "EBADF", "{out}");
    // Still not in the profile.
    assert_eq!(syscall_result(&out, "keyctl"), "EPERM", "{out}");
}

/// Ordinary programs: a shell pipeline, a threaded Python (glibc tries clone3 first and
/// falls back to clone on ENOSYS), a subprocess, sleep.
const ORDINARY: &str = r#"set -e
echo hello | tr a-z A-Z
ls / | grep -q usr && echo ls-ok
sleep 0.1 && echo sleep-ok
/usr/bin/python3 -c '
import threading, subprocess, socket
t = threading.Thread(target=lambda: print("thread-ok")); t.start(); t.join()
print(subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip(), "subprocess-ok")
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.bind(("127.0.0.1", 0)); s.close(); print("socket-ok")
try:
    socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM); print("vsock-allowed")
except OSError as e:
    print("vsock-denied", e.errno)
'
"#;

#[tokio::test]
async fn issue7_item3_ordinary_programs_run_under_runtime_default() {
    if !root() {
        return;
    }
    // Root; non-root without no_new_privs (the filter goes in first, while skiff still has
    // CAP_SYS_ADMIN, so setgroups/setresuid/capset run under it); non-root with
    // no_new_privs (the filter goes in last, after the credentials and capset).
    for (pod_sc, c_sc, uid, nnp) in [
        (json!({}), json!({}), "0", "0"),
        (
            json!({"runAsUser": 1000, "runAsGroup": 1000}),
            json!({}),
            "1000",
            "0",
        ),
        (
            json!({"runAsUser": 1000, "runAsGroup": 1000, "supplementalGroups": [3000]}),
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}),
            "1000",
            "1",
        ),
    ] {
        let mut pod_sc = pod_sc;
        pod_sc["seccompProfile"] = json!({"type": "RuntimeDefault"});
        let (code, out) = run(pod_sc, c_sc, &format!("{STATUS}\n{ORDINARY}")).await;
        assert_eq!(code, 0, "{out}");
        assert_eq!(field(&out, "Seccomp"), "2", "{out}");
        assert_eq!(field(&out, "NoNewPrivs"), nnp, "{out}");
        assert_eq!(field(&out, "Uid"), format!("{uid}\t{uid}\t{uid}\t{uid}"));
        for want in [
            "HELLO",
            "ls-ok",
            "sleep-ok",
            "thread-ok",
            &format!("{uid} subprocess-ok"),
            "socket-ok",
            &format!("vsock-denied {}", libc_eperm()),
        ] {
            assert!(out.lines().any(|l| l == want), "{want:?} in {out}");
        }
    }
}

fn libc_eperm() -> i32 {
    nix::errno::Errno::EPERM as i32
}
