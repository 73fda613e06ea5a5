//! The container's default view (issue 7 item 2), played as the attacker on the real binary as
//! root: a locked-down root container (drop ALL, read-only root, no_new_privs, RuntimeDefault)
//! tries the host escapes a security review found — `core_pattern`, `/sys`, the cgroup
//! filesystem, other pods' `/proc/<pid>/environ`, host devices — and the test checks that
//! nothing on the host changed. Needs root; skipped with a reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;

fn root() -> bool {
    if !is_root() {
        eprintln!("skipped: needs root (namespaces, mounts)");
        return false;
    }
    true
}
use serde_json::{json, Value};

/// A test dir every container can write, bound into the pod at the same path (the root
/// filesystem is read-only in the locked-down containers).
fn shared_dir(test: &str) -> TestDir {
    let t = TestDir::new(test);
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    t
}

fn mount_t(t: &TestDir, mut pod: Value) -> Value {
    let dir = t.path().to_string_lossy().into_owned();
    pod["spec"]["volumes"] = json!([{"name": "t", "hostPath": {"path": dir, "type": "Directory"}}]);
    for list in ["initContainers", "containers"] {
        if let Some(cs) = pod["spec"][list].as_array_mut() {
            for c in cs {
                c["volumeMounts"] = json!([{"name": "t", "mountPath": dir}]);
            }
        }
    }
    pod
}

fn locked_down(c: Value) -> Value {
    with(
        c,
        "securityContext",
        json!({
            "runAsUser": 0,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "seccompProfile": {"type": "RuntimeDefault"},
        }),
    )
}

fn read(t: &TestDir, name: &str) -> String {
    std::fs::read_to_string(t.file(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `try NAME CMD`: runs CMD, records `NAME=held` when it fails, `NAME=BROKEN` when it works.
const TRY: &str = "try() { n=$1; shift; if ( \"$@\" ) 2>/dev/null; then echo \"$n=BROKEN\" >> $T/verdicts; else echo \"$n=held\" >> $T/verdicts; fi; }; ";

// Item 2: a drop-ALL root container cannot write core_pattern, sysrq, /sys or any cgroup
// hierarchy, cannot move itself out of its cgroups, sees only its own processes (it is PID 1
// of its own namespace), no host disk device, masked kernel files, and a private 64 MiB
// /dev/shm; the host's values are unchanged afterwards.
#[test]
fn issue7_item2_locked_down_root_container_cannot_reach_the_host() {
    if !root() {
        return;
    }
    let t = shared_dir("view-escape");
    let core_before = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let script = format!(
        "{TRY}\
         try core_pattern sh -c 'echo \"|/tmp/evil %p\" > /proc/sys/kernel/core_pattern'; \
         try sysrq sh -c 'echo h > /proc/sysrq-trigger'; \
         try sys_write sh -c 'echo 1 > /sys/kernel/mm/ksm/run'; \
         try cgroup_procs sh -c 'echo $$ > /sys/fs/cgroup/memory/cgroup.procs'; \
         try cgroup_mkdir mkdir /sys/fs/cgroup/memory/escape; \
         try unified_procs sh -c 'echo $$ > /sys/fs/cgroup/unified/cgroup.procs'; \
         try host_disk sh -c 'ls /dev | grep -qE \"^(vd|sd|nvme|xvd|loop)\"'; \
         try kcore_read sh -c 'test -s /proc/kcore || test -n \"$(head -c1 /proc/timer_list)\"'; \
         try firmware sh -c 'test -n \"$(ls /sys/firmware)\"'; \
         try mem_limit_raise sh -c 'echo -1 > /sys/fs/cgroup/memory/memory.limit_in_bytes'; \
         echo \"pid=$$\" >> $T/facts; \
         echo \"procs=$(ls -d /proc/[0-9]* | wc -l)\" >> $T/facts; \
         echo \"cgroup=$(grep -E '(^0::|memory)' /proc/self/cgroup | tr '\\n' ' ')\" >> $T/facts; \
         echo \"shm=$(df -k /dev/shm | awk 'NR==2 {{print $2}}')\" >> $T/facts; \
         echo \"sysro=$(awk '$5 == \"/sys\" {{print $6}}' /proc/self/mountinfo | tail -1 | cut -d, -f1)\" >> $T/facts; \
         echo \"cgmem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null)\" >> $T/facts"
    );
    let c = locked_down(with(
        json!({"name": "attacker", "image": "busybox:1.36", "command": ["/bin/sh", "-c", script.replace('$', "$$")]}),
        "resources",
        json!({"limits": {"memory": "64Mi", "cpu": "100m"}}),
    ));
    let p = mount_t(&t, pod("escape", "Never", vec![], vec![c]));
    let out = t.run(p, &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let verdicts = read(&t, "verdicts");
    assert!(
        !verdicts.contains("BROKEN"),
        "host escapes:\n{verdicts}\nstderr:\n{}",
        out.stderr
    );
    assert_eq!(verdicts.lines().count(), 10, "{verdicts}");
    let facts = read(&t, "facts");
    assert!(facts.contains("pid=1\n"), "its own PID namespace: {facts}");
    let procs: usize = facts
        .lines()
        .find_map(|l| l.strip_prefix("procs="))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // sh (PID 1), the command substitution's subshell, ls, wc.
    assert!(procs <= 5, "sees only its own processes: {facts}");
    assert!(
        facts.contains(&format!("shm={}", 64 * 1024)),
        "the pod's 64 MiB /dev/shm: {facts}"
    );
    assert!(facts.contains("sysro=ro\n"), "/sys read-only: {facts}");
    // Its cgroup namespace starts at its own cgroup, which holds its limit.
    assert!(
        facts.contains("memory:/ ") || facts.contains("0::/ "),
        "{facts}"
    );
    assert!(facts.contains("67108864"), "its own memory cgroup: {facts}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        core_before
    );
}

// Item 2: pods no longer see each other's processes: a pod whose container carries a secret
// in its environment runs; a second pod searches every /proc/<pid>/environ and cmdline for it.
#[test]
fn issue7_item2_a_pod_cannot_read_another_pods_environment() {
    if !root() {
        return;
    }
    let t = shared_dir("view-environ");
    let secret = format!("s3cret-{}", std::process::id());
    let victim = with(
        container(
            "victim",
            "touch $T/victim-up; trap 'exit 0' TERM; while [ ! -e $T/stop ]; do sleep 0.05; done",
        ),
        "env",
        json!([{"name": "API_TOKEN", "value": secret}]),
    );
    let victim_manifest = {
        let mut p = pod("victim", "Never", vec![], vec![victim]);
        p["metadata"]["name"] = json!("victim");
        t.manifest(p)
    };
    let victim_run = spawn(&["run", "-f", victim_manifest.to_str().unwrap()]);
    assert!(
        wait_until(Duration::from_secs(20), || t.file("victim-up").exists()),
        "victim never started"
    );
    // The secret really is there to find: the host sees it in the victim's environment.
    let on_host = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("environ"))
            .map(|env| env.windows(secret.len()).any(|w| w == secret.as_bytes()))
            .unwrap_or(false)
    });
    assert!(on_host, "the victim's environment carries the secret");
    let t2 = shared_dir("view-environ-thief");
    let thief = container(
        "thief",
        &format!(
            "printf '%s-%s\\n' s3cret {pid} > $T/pattern; \
             if grep -qsf $T/pattern /proc/[0-9]*/environ /proc/[0-9]*/cmdline; then echo FOUND > $T/found; else echo none > $T/found; fi; \
             ls -d /proc/[0-9]* | wc -l > $T/count",
            pid = std::process::id()
        ),
    );
    let out = t2.run(pod("thief", "Never", vec![], vec![thief]), &[]);
    std::fs::write(t.file("stop"), "").unwrap();
    let victim_out = finish(victim_run, RUN_LIMIT);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(victim_out.code, Some(0), "stderr:\n{}", victim_out.stderr);
    assert_eq!(read(&t2, "found").trim(), "none");
    let count: usize = read(&t2, "count").trim().parse().unwrap();
    assert!(count <= 4, "{count} processes visible");
}

// Item 2: the pod's containers share one private /dev/shm (its own tmpfs, not the host's),
// which is gone with the pod; `privileged` keeps the host's /sys (no read-only /proc/sys) and
// gets the host's devices in a /dev of its own.
#[test]
fn issue7_item2_pod_shm_is_shared_private_and_removed() {
    if !root() {
        return;
    }
    let t = shared_dir("view-shm");
    let data = t.file("data");
    let name = format!("skiff-shm-{}", std::process::id());
    let writer = container(
        "writer",
        &format!("echo hello > /dev/shm/{name}; touch $T/written"),
    );
    let reader = container(
        "reader",
        &format!(
            "while [ ! -e $T/written ]; do sleep 0.05; done; cat /dev/shm/{name} > $T/read; \
             awk '$5 == \"/proc/sys\" {{print $6}}' /proc/self/mountinfo > $T/priv-procsys; \
             awk '$5 == \"/sys\" {{print $6}}' /proc/self/mountinfo | cut -d, -f1 > $T/priv-sys; \
             ls /dev > $T/priv-dev"
        ),
    );
    let reader = with(reader, "securityContext", json!({"privileged": true}));
    let host_log_before = std::path::Path::new("/dev/termination-log").exists();
    let out = t.run(
        pod("shm", "Never", vec![], vec![writer, reader]),
        &["--data-dir", data.to_str().unwrap()],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(read(&t, "read").trim(), "hello");
    assert!(
        !std::path::Path::new(&format!("/dev/shm/{name}")).exists(),
        "the host's /dev/shm was used"
    );
    // Privileged: no read-only /proc/sys mount, the host's (writable) /sys.
    assert_eq!(read(&t, "priv-procsys").trim(), "", "privileged: no masks");
    assert_eq!(read(&t, "priv-sys").trim(), "rw", "privileged: host /sys");
    // Privileged: the host's devices, in its own /dev (nothing is made in the host's).
    let dev = read(&t, "priv-dev");
    if std::path::Path::new("/dev/kmsg").exists() {
        assert!(dev.lines().any(|l| l == "kmsg"), "{dev}");
    }
    assert!(dev.lines().any(|l| l == "termination-log"), "{dev}");
    if !host_log_before {
        assert!(
            !std::path::Path::new("/dev/termination-log").exists(),
            "a mount point was made in the host's /dev"
        );
    }
    // Nothing of the pod's shm is left mounted.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(data.to_str().unwrap()),
        "left mounted:\n{mounts}"
    );
}

// Item 2: exec probes enter the container's PID namespace with its mount namespace, so the
// container's /proc works for them (`/proc/self` resolves only for a process of that
// namespace) and PID 1 is the container's main process.
#[test]
fn issue7_item2_exec_probes_run_in_the_containers_pid_namespace() {
    if !root() {
        return;
    }
    let t = shared_dir("view-exec");
    let c = with(
        container(
            "app",
            "trap 'exit 0' TERM; while [ ! -e $T/probed ]; do sleep 0.05; done",
        ),
        "readinessProbe",
        exec_probe(
            "readlink /proc/self > $T/probe-self && tr '\\0' ' ' < /proc/1/cmdline > $T/probe-pid1 && touch $T/probed",
            1,
            3,
        ),
    );
    let out = t.run(pod("exec-ns", "Never", vec![], vec![c]), &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let me: i32 = read(&t, "probe-self").trim().parse().unwrap();
    assert!(me > 1, "{me}");
    assert!(
        read(&t, "probe-pid1").contains("while [ ! -e $T/probed ]"),
        "{}",
        read(&t, "probe-pid1")
    );
}

// Item 1c/2 (found by review): mount points in the private /dev are made by the child before
// anything a container can touch exists there, so a symlink planted in the pod's shared
// /dev/shm is never followed by root, and a `..` in a mount path never climbs out of /dev.
#[test]
fn issue7_item2_dev_mount_points_never_follow_a_planted_symlink() {
    if !root() {
        return;
    }
    let t = shared_dir("view-devlink");
    let victim = format!("skiff-devlink-{}", std::process::id());
    let host_path = std::path::Path::new("/var/tmp").join(&victim);
    let planter = container(
        "planter",
        "ln -s /var/tmp /dev/shm/a; touch $T/planted; \
         trap 'exit 0' TERM; while :; do sleep 0.05; done",
    );
    let mut follower = container("follower", "l Ran");
    follower["volumeMounts"] = json!([{"name": "v", "mountPath": format!("/dev/shm/a/{victim}")}]);
    let mut climber = container("climber", "l Ran");
    climber["volumeMounts"] =
        json!([{"name": "v", "mountPath": format!("/dev/../var/tmp/{victim}-up")}]);
    let mut p = pod(
        "devlink",
        "Never",
        // The apps start only once the symlink is planted (the sidecar's startupProbe).
        vec![with(
            with(planter, "restartPolicy", json!("Always")),
            "startupProbe",
            exec_probe("test -L /dev/shm/a", 1, 30),
        )],
        vec![follower, climber],
    );
    p["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}}]);
    let out = t.run(p, &["--timeout", "20"]);
    let made = host_path.exists();
    let climbed = std::path::Path::new(&format!("/var/tmp/{victim}-up")).exists();
    let _ = std::fs::remove_dir(&host_path);
    let _ = std::fs::remove_dir(format!("/var/tmp/{victim}-up"));
    assert!(t.file("planted").exists(), "stderr:\n{}", out.stderr);
    assert!(!made, "a mount point was made through the planted symlink");
    assert!(!climbed, "a mount point was made through '..'");
}

// Item 2 (found by review): a root container keeps the default CAP_MKNOD, so it can make a
// node of the host's root disk wherever it can write; the device cgroup (runc's allow-list)
// refuses to open it, while /dev/null still works.
#[test]
fn issue7_item2_a_made_device_node_of_the_host_disk_cannot_be_opened() {
    use std::os::unix::fs::MetadataExt;
    if !root() {
        return;
    }
    let dev = std::fs::metadata("/").unwrap().dev();
    // glibc's gnu_dev_major/gnu_dev_minor encoding of dev_t.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    if major == 0 {
        eprintln!("skipped: the root filesystem has no block device ({major}:{minor})");
        return;
    }
    let t = shared_dir("view-mknod");
    let c = container(
        "app",
        &format!(
            "mknod $T/disk b {major} {minor} && echo made > $T/made; \
             if head -c 1 $T/disk > /dev/null 2>&1; then echo BROKEN > $T/verdict; else echo held > $T/verdict; fi; \
             echo x > /dev/null && echo ok > $T/null; rm -f $T/disk"
        ),
    );
    let out = t.run(pod("mknod", "Never", vec![], vec![c]), &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(
        read(&t, "made").trim(),
        "made",
        "CAP_MKNOD is a default capability"
    );
    assert_eq!(read(&t, "verdict").trim(), "held");
    assert_eq!(read(&t, "null").trim(), "ok");
}

// A volume mounted inside the pod's /dev/shm (the bench keeps its work dir on the host's
// /dev/shm): its mount point is made in the container's own /dev/shm, by descriptor.
#[test]
fn issue7_item2_a_volume_below_dev_shm_is_mounted() {
    if !root() {
        return;
    }
    let t = shared_dir("view-devshm-volume");
    let mut c = container("app", "echo hi > /dev/shm/work/sub/f");
    c["volumeMounts"] = json!([{"name": "w", "mountPath": "/dev/shm/work/sub"}]);
    let mut p = pod("devshm-volume", "Never", vec![], vec![c]);
    p["spec"]["volumes"] =
        json!([{"name": "w", "hostPath": {"path": t.path(), "type": "Directory"}}]);
    let out = t.run(p, &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(read(&t, "f").trim(), "hi");
}
