//! securityContext end to end (issue 4 item 7): `skiff run` on pods with pod- and
//! container-level securityContext; the containers report what the kernel says about them.
//! Needs root; skipped with a reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::json;

fn root() -> bool {
    if euid() == 0 {
        return true;
    }
    eprintln!("skipped: needs root (setuid/setgid, capability bounding set)");
    false
}

/// A test dir a non-root container can write its report into.
fn shared_dir(test: &str) -> TestDir {
    let t = TestDir::new(test);
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    t
}

/// `/proc/self/status` lines of the container, into `$T/<name>.status`.
fn report(name: &str) -> String {
    format!(
        "grep -E '^(Uid|Gid|Groups|CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status > \"$T/{name}.status\"; \
         echo \"$(id -u) $(id -g)\" > \"$T/{name}.id\""
    )
}

fn field(t: &TestDir, name: &str, key: &str) -> String {
    let text = std::fs::read_to_string(t.file(&format!("{name}.status"))).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} for {name} in {text:?}"))
        .trim()
        .to_string()
}

fn plain(name: &str, script: &str) -> serde_json::Value {
    json!({"name": name, "image": "busybox:1.36", "command": ["/bin/sh", "-c", script]})
}

// Item 7: the pod's runAsUser/runAsGroup/fsGroup/supplementalGroups apply to every container,
// a container's own fields override them; capabilities, no_new_privs and the RuntimeDefault
// seccomp profile are what the kernel reports inside.
#[test]
fn sc_pod_and_container_security_context_end_to_end() {
    if !root() {
        return;
    }
    let t = shared_dir("sc-e2e");
    let locked = {
        let mut c = plain(
            "locked",
            &format!(
                "{}; unshare -n true 2>\"$T/locked.unshare\" && echo ok >> \"$T/locked.unshare\"; true",
                report("locked")
            ),
        );
        c["securityContext"] = json!({
            "runAsUser": 1001,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        });
        c
    };
    let admin = {
        let mut c = plain("admin", &report("admin"));
        c["securityContext"] = json!({
            "runAsUser": 0,
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]},
        });
        c
    };
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sc-e2e"},
        "spec": {
            "runtimeClassName": "host",
            "restartPolicy": "Never",
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                                "supplementalGroups": [4000]},
            "initContainers": [plain("init", &report("init"))],
            "containers": [locked, admin],
        }
    });
    let out = t.run(pod, &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(out.pod()["status"]["phase"], "Succeeded");

    let id = |n: &str| std::fs::read_to_string(t.file(&format!("{n}.id"))).unwrap();
    assert_eq!(id("init").trim(), "1000 3000");
    assert_eq!(field(&t, "init", "Groups"), "2000 3000 4000");
    assert_eq!(field(&t, "init", "CapEff"), "0000000000000000");
    assert_eq!(field(&t, "init", "CapBnd"), "00000000a80425fb");
    assert_eq!(field(&t, "init", "NoNewPrivs"), "0");
    assert_eq!(field(&t, "init", "Seccomp"), "0");

    assert_eq!(id("locked").trim(), "1001 3000");
    assert_eq!(field(&t, "locked", "CapBnd"), "0000000000000000");
    assert_eq!(field(&t, "locked", "NoNewPrivs"), "1");
    assert_eq!(field(&t, "locked", "Seccomp"), "2");
    let unshare = std::fs::read_to_string(t.file("locked.unshare")).unwrap();
    assert!(unshare.contains("Operation not permitted"), "{unshare}");

    assert_eq!(id("admin").trim(), "0 3000");
    assert_eq!(field(&t, "admin", "CapEff"), "0000000000001000");
}

// verifyRunAsNonRoot: a host-runtime container with runAsNonRoot and no runAsUser would run as
// root (skiff's user): it never starts; CreateContainerConfigError with the kubelet's message,
// retried until the deadline.
#[test]
fn sc_run_as_non_root_refuses_a_root_container() {
    if !root() {
        return;
    }
    let t = TestDir::new("sc-nonroot");
    let mut c = container("app", "l Exiting");
    c["securityContext"] = json!({"runAsNonRoot": true});
    let mut zero = container("zero", "l Exiting");
    zero["securityContext"] = json!({"runAsNonRoot": true, "runAsUser": 0});
    let mut p = pod("nonroot", "Never", vec![], vec![c, zero]);
    p["spec"]["activeDeadlineSeconds"] = json!(2);
    let out = t.run(p, &[]);
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert!(t.log().is_empty(), "a container ran: {:?}", t.log());
    let err = &out.stderr;
    let prefix = "Warning Failed: Error: container has runAsNonRoot and image will run as root (pod: \"nonroot_default(";
    assert!(err.contains(prefix), "{err}");
    assert!(err.contains(")\", container: app)"), "{err}");
    assert!(
        err.contains("Warning Failed: Error: container's runAsUser breaks non-root policy (pod: \"nonroot_default("),
        "{err}"
    );
    assert!(err.contains(")\", container: zero)"), "{err}");
}

// seccompProfile Localhost has no profile store on the host runtime: a clear config error.
#[test]
fn sc_seccomp_localhost_is_a_config_error() {
    if !root() {
        return;
    }
    let t = TestDir::new("sc-localhost");
    let mut c = container("app", "l Exiting");
    c["securityContext"] =
        json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/a.json"}});
    let mut p = pod("localhost", "Never", vec![], vec![c]);
    p["spec"]["activeDeadlineSeconds"] = json!(1);
    let out = t.run(p, &[]);
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert!(t.log().is_empty());
    assert!(
        out.stderr
            .contains("Localhost (\"profiles/a.json\") is not supported"),
        "{}",
        out.stderr
    );
}

// ST4 under runAsUser: the termination-message file is writable by any user (the kubelet
// creates it 0666), so a non-root container's message reaches its status.
#[test]
fn sc_non_root_container_writes_its_termination_message() {
    if !root() {
        return;
    }
    let t = TestDir::new("sc-termlog");
    let mut c = plain(
        "app",
        "echo \"bye from $(id -u)\" > /dev/termination-log; exit 3",
    );
    c["securityContext"] = json!({"runAsUser": 1000, "runAsGroup": 1000});
    let p = pod("termlog", "Never", vec![], vec![c]);
    let out = t.run(p, &[]);
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    let p = out.pod();
    let s = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(s["exitCode"], 3, "{s:#}");
    assert_eq!(s["message"], "bye from 1000\n", "{s:#}");
}

// Issue 7 item 3: RuntimeDefault is containerd's default profile, an allow-list: `kcmp` (not
// in it without CAP_SYS_PTRACE) fails with EPERM in the pod-level RuntimeDefault container,
// works in the Unconfined one and in the one that adds CAP_SYS_PTRACE; the programs
// themselves (sh, python3 with a thread) run normally under the filter.
#[cfg(target_arch = "x86_64")]
#[test]
fn issue7_item3_runtime_default_allow_list_end_to_end() {
    if !root() {
        return;
    }
    let t = shared_dir("sc-item3");
    let probe = |name: &str| {
        format!(
            "/usr/bin/python3 -c '
import ctypes, errno, os, threading
libc = ctypes.CDLL(None, use_errno=True)
t = threading.Thread(target=lambda: None); t.start(); t.join()
pid = os.getpid()
r = libc.syscall(ctypes.c_long(312), ctypes.c_long(pid), ctypes.c_long(pid), 0, 0, 0)
print(\"ok\" if r == 0 else errno.errorcode[ctypes.get_errno()])
' > \"$T/{name}.kcmp\"; {}",
            report(name)
        )
    };
    let with_sc = |name: &str, sc: serde_json::Value| {
        let mut c = plain(name, &probe(name));
        c["securityContext"] = sc;
        c
    };
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sc-item3"},
        "spec": {
            "runtimeClassName": "host",
            "restartPolicy": "Never",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                plain("confined", &probe("confined")),
                with_sc("unconfined", json!({"seccompProfile": {"type": "Unconfined"}})),
                with_sc("ptrace", json!({"capabilities": {"add": ["SYS_PTRACE"]}})),
            ],
        }
    });
    let out = t.run(pod, &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(out.pod()["status"]["phase"], "Succeeded");
    let kcmp = |n: &str| {
        std::fs::read_to_string(t.file(&format!("{n}.kcmp")))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(kcmp("confined"), "EPERM");
    assert_eq!(field(&t, "confined", "Seccomp"), "2");
    assert_eq!(kcmp("unconfined"), "ok");
    assert_eq!(field(&t, "unconfined", "Seccomp"), "0");
    assert_eq!(kcmp("ptrace"), "ok");
    assert_eq!(field(&t, "ptrace", "Seccomp"), "2");
}
