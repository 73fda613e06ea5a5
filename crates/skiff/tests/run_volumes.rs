//! `skiff run` with volumes and env sources (issue 4 item 3 and its bad-input list): an
//! emptyDir shared by an app and its log-shipping sidecar, configMap/secret/downwardAPI
//! content and modes, env from ConfigMaps/Secrets/fieldRef/resourceFieldRef, and the kubelet's
//! errors for a missing hostPath, a missing ConfigMap key, a volumeMount naming no volume and
//! an emptyDir over its sizeLimit.
//!
//! Mount paths live under each test's own directory, so parallel tests never share one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};

macro_rules! require_root {
    ($name:expr) => {
        if !is_root() {
            eprintln!("skipped: {} needs root (mount namespaces, tmpfs)", $name);
            return;
        }
    };
}

fn config_map() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
           "data": {"mode": "fast", "level": "3"}})
}

fn secret() -> Value {
    // `data` is base64 ("s3cret"); `stringData` is merged over it as the API server does.
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
           "data": {"token": "czNjcmV0"}, "stringData": {"user": "admin"}})
}

fn mount(name: &str, path: &str) -> Value {
    json!({"name": name, "mountPath": path})
}

fn status_of<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no status for {name}: {pod}"))
}

// The seed's case: the app writes its log into an emptyDir; a native sidecar reads it from its
// own mount of the same volume and ships every line; the pod ends Succeeded and nothing of
// the volume or its mount points is left.
#[test]
fn item3_emptydir_app_writes_logs_sidecar_ships_them() {
    require_root!("item3_emptydir_app_writes_logs_sidecar_ships_them");
    let t = TestDir::new("vol-emptydir");
    let app_dir = format!("{}/app-logs", t.path().display());
    let ship_dir = format!("{}/ship-logs", t.path().display());
    let shipper = with(
        sidecar(
            "shipper",
            &format!(
                "while [ ! -f {ship_dir}/done ]; do sleep 0.05; done; \
                 while read x; do l shipped:$$x; done < {ship_dir}/app.log; {SERVE}"
            ),
        ),
        "volumeMounts",
        json!([{"name": "logs", "mountPath": ship_dir, "readOnly": true}]),
    );
    let app = with(
        container(
            "app",
            &format!(
                "for i in 1 2 3; do echo line$$i >> {app_dir}/app.log; done; touch {app_dir}/done; \
                 while ! grep -q shipped:line3 $$T/log; do sleep 0.05; done"
            ),
        ),
        "volumeMounts",
        json!([mount("logs", &app_dir)]),
    );
    let mut p = pod("logs", "Never", vec![shipper], vec![app]);
    p["spec"]["volumes"] = json!([{"name": "logs", "emptyDir": {}}]);
    let out = t.run_with_docs(&[], p, &["--timeout", "20"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let shipped: Vec<String> = t
        .log()
        .into_iter()
        .filter(|l| l.name == "shipper" && l.what.starts_with("shipped:"))
        .map(|l| l.what)
        .collect();
    assert_eq!(shipped, ["shipped:line1", "shipped:line2", "shipped:line3"]);
    assert_eq!(out.pod()["status"]["phase"], "Succeeded");
    // The volume lived in the container's mount namespace only.
    assert!(!std::path::Path::new(&app_dir).join("app.log").exists());
    assert!(t.leftovers().is_empty());
}

// configMap (items, per-item mode), secret (defaultMode, data + stringData, tmpfs) and
// downwardAPI (labels in `key="value"` lines, a resource limit with divisor) content and
// modes, with fsGroup: group ownership and the setgid bit (SetVolumeOwnership).
/// A `workingDir` inside a volume's `mountPath` is the volume (the container changes directory
/// after its mounts exist), so relative writes land in the volume, never on the host.
#[test]
fn item2_working_dir_inside_a_volume_mount_is_the_volume() {
    require_root!("item2_working_dir_inside_a_volume_mount_is_the_volume");
    let t = TestDir::new("vol-workdir");
    let dir = format!("{}/work", t.path().display());
    let app = with(
        with(
            container(
                "app",
                "echo hi > rel.txt; test \"$$(cat ./rel.txt)\" = hi && l Wrote; \
                 touch marker; [ -f marker ] && l Marker",
            ),
            "volumeMounts",
            json!([mount("work", &dir)]),
        ),
        "workingDir",
        json!(dir),
    );
    let mut p = pod("wd", "Never", vec![], vec![app]);
    p["spec"]["volumes"] = json!([{"name": "work", "emptyDir": {}}]);
    let out = t.run_with_docs(&[], p, &["--timeout", "20"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let seq = sequence(&t.log());
    assert!(seq.contains(&"app Wrote".to_string()), "{seq:?}");
    // Nothing reached the host's directory under the mount point.
    assert!(!std::path::Path::new(&dir).join("rel.txt").exists());
    assert!(!std::path::Path::new(&dir).join("marker").exists());
}

/// A command that only exists inside a volume (a configMap script, a common Kubernetes
/// pattern) is found as the container sees its files: by absolute path and through `PATH`.
#[test]
fn item2_command_from_a_configmap_volume_runs() {
    require_root!("item2_command_from_a_configmap_volume_runs");
    let t = TestDir::new("vol-script");
    let dir = format!("{}/scripts", t.path().display());
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "scripts"},
                    "data": {"hello.sh": "#!/bin/sh\necho \"$(date +%s.%N) $1 Hello\" >> \"$T/log\"\n"}});
    let by_path = json!({
        "name": "by-path", "image": "busybox:1.36",
        "command": [format!("{dir}/hello.sh"), "by-path"],
        "volumeMounts": [mount("scripts", &dir)],
    });
    let mut by_search = json!({
        "name": "by-search", "image": "busybox:1.36",
        "command": ["hello.sh", "by-search"],
        "env": [{"name": "PATH", "value": format!("/usr/bin:/bin:{dir}")}],
        "volumeMounts": [mount("scripts", &dir)],
    });
    // `$T` for the script, as the harness gives every container.
    let t_env = json!({"name": "T", "value": t.path().display().to_string()});
    let mut by_path = by_path;
    by_path["env"] = json!([t_env.clone()]);
    if let Some(env) = by_search["env"].as_array_mut() {
        env.push(t_env);
    }
    let mut p = pod("script", "Never", vec![by_path], vec![by_search]);
    p["spec"]["volumes"] =
        json!([{"name": "scripts", "configMap": {"name": "scripts", "defaultMode": 493}}]);
    let out = t.run_with_docs(&[cm], p, &["--timeout", "20"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let seq = sequence(&t.log());
    assert_eq!(seq, ["by-path Hello", "by-search Hello"], "{}", out.stderr);
}

#[test]
fn item3_configmap_secret_downwardapi_content_and_modes() {
    require_root!("item3_configmap_secret_downwardapi_content_and_modes");
    let t = TestDir::new("vol-content");
    let base = t.path().display().to_string();
    let script = format!(
        "cd {base}; for f in cfg/m/mode cfg/level sec/token sec/user info/labels info/notes info/mem; do \
           printf '%s %s %s\\n' $$f \"$$(stat -L -c '%a %g' $$f)\" \"$$(tr '\\n' '|' < $$f)\" >> $$T/out; done; \
         echo \"root $$(stat -c '%a %g' cfg) $$(readlink cfg/..data | cut -c1-4)\" >> $$T/out; \
         echo \"fstype $$(stat -f -c %T sec)\" >> $$T/out; \
         touch cfg/new 2>/dev/null && echo cfg-writable >> $$T/out; true"
    );
    let mut app = container("app", &script);
    app["resources"] = json!({"limits": {"memory": "64Mi"}});
    app["volumeMounts"] = json!([
        mount("cfg", &format!("{base}/cfg")),
        mount("sec", &format!("{base}/sec")),
        mount("info", &format!("{base}/info")),
    ]);
    let mut p = pod("content", "Never", vec![], vec![app]);
    p["metadata"]["labels"] = json!({"tier": "gold", "app": "web"});
    p["metadata"]["annotations"] = json!({"note": "say \"hi\"\n"});
    p["spec"]["securityContext"] = json!({"fsGroup": 2345});
    p["spec"]["volumes"] = json!([
        {"name": "cfg", "configMap": {"name": "cfg", "items": [
            {"key": "mode", "path": "m/mode", "mode": 0o600},
            {"key": "level", "path": "level"}]}},
        {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o400}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "notes", "fieldRef": {"fieldPath": "metadata.annotations"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}}]}},
    ]);
    let out = t.run_with_docs(&[config_map(), secret()], p, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let got = std::fs::read_to_string(t.file("out")).unwrap();
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(
        lines,
        [
            // 0600 | 0440 (read-only volume with fsGroup) = 0640.
            "cfg/m/mode 640 2345 fast",
            "cfg/level 644 2345 3",
            "sec/token 440 2345 s3cret",
            "sec/user 440 2345 admin",
            // Sorted `key="value"` lines, Go %q quoting, no trailing newline.
            "info/labels 644 2345 app=\"web\"|tier=\"gold\"",
            "info/notes 644 2345 note=\"say \\\"hi\\\"\\n\"",
            "info/mem 644 2345 64",
            "root 2777 2345 ..20",
            "fstype tmpfs",
        ],
        "{got}"
    );
}

// env from a ConfigMap key, a Secret key (stringData merged), envFrom with a prefix, fieldRef
// (name, label) and resourceFieldRef (a limit with divisor; a missing limit = node allocatable).
#[test]
fn item3_env_from_configmap_secret_fieldref_resourcefieldref() {
    let t = TestDir::new("vol-env");
    let mut app = container(
        "app",
        "echo \"$$MODE $$USER_NAME $$CFG_level $$POD $$TIER $$MEM $$CPU\" > $$T/env",
    );
    app["resources"] = json!({"limits": {"memory": "96Mi"}});
    app["envFrom"] = json!([{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}]);
    app["env"] = json!([
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "USER_NAME", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "user"}}},
        {"name": "GONE", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": true}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
    ]);
    let mut p = pod("envpod", "Never", vec![], vec![app]);
    p["metadata"]["labels"] = json!({"tier": "gold"});
    let out = t.run_with_docs(&[config_map(), secret()], p, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let want = format!("fast admin 3 envpod gold 96 {}\n", cpus * 1000);
    let got = std::fs::read_to_string(t.file("env")).unwrap();
    // The CPU count: the machine's online CPUs (available_parallelism may see fewer).
    let (got_head, got_cpu) = got.trim_end().rsplit_once(' ').unwrap();
    let (want_head, _) = want.trim_end().rsplit_once(' ').unwrap();
    assert_eq!(got_head, want_head, "{got}");
    assert!(got_cpu.parse::<usize>().unwrap() >= cpus * 1000, "{got}");
}

// Bad input: a configMapKeyRef naming a key the ConfigMap lacks → the start fails with
// CreateContainerConfigError: the kubelet's Warning `Failed` "Error: <message>", retried, the
// container never runs. (The final status after `--timeout` is T11's rewrite, so the waiting
// reason is checked through the event.)
#[test]
fn item3_bad_configmap_key_is_create_container_config_error() {
    let t = TestDir::new("vol-badkey");
    let mut app = container("app", "l Ran");
    app["env"] =
        json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}]);
    let out = t.run_with_docs(
        &[config_map()],
        pod("badkey", "Never", vec![], vec![app]),
        &["--timeout", "2"],
    );
    assert!(
        out.stderr
            .contains("Warning Failed: Error: couldn't find key nope in ConfigMap default/cfg"),
        "{}",
        out.stderr
    );
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Failed");
    assert!(status_of(&p, "app")["state"]["running"].is_null());
    assert!(t.log().is_empty(), "never started: {:?}", t.log());
}

// Bad input: a hostPath with a strict type that does not exist, and a configMap volume item
// naming a missing key → FailedMount with the kubelet's texts; no container starts, the pod
// ends Failed and nothing is left.
#[test]
fn item3_bad_hostpath_and_configmap_volume_are_failed_mount() {
    let t = TestDir::new("vol-badmount");
    let missing = t.file("no-such-dir");
    let mut p = pod("badhp", "Never", vec![], vec![container("app", "l Ran")]);
    p["spec"]["volumes"] =
        json!([{"name": "h", "hostPath": {"path": missing, "type": "Directory"}}]);
    let out = t.run_with_docs(&[], p, &["--timeout", "10"]);
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "Warning FailedMount: MountVolume.SetUp failed for volume \"h\" : hostPath {} doesn't exist",
            missing.display()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(out.pod()["status"]["phase"], "Failed");
    assert!(!missing.exists());

    let mut p = pod("badcm", "Never", vec![], vec![container("app", "l Ran")]);
    p["spec"]["volumes"] = json!([
        {"name": "e", "emptyDir": {"medium": "Memory"}},
        {"name": "c", "configMap": {"name": "cfg", "items": [{"key": "nope", "path": "x"}]}}]);
    let out = t.run_with_docs(&[config_map()], p, &["--timeout", "10"]);
    assert!(
        out.stderr.contains(
            "Warning FailedMount: MountVolume.SetUp failed for volume \"c\" : configmap references non-existent config key: nope"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(out.pod()["status"]["phase"], "Failed");
    assert!(t.log().is_empty(), "nothing started: {:?}", t.log());
    // The Memory emptyDir set up before the failing volume was unmounted again.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains("kubernetes.io~empty-dir/e "),
        "tmpfs left mounted"
    );
}

// Bad input: a volumeMount naming no volume is refused by validation (exit 2, nothing runs).
#[test]
fn item3_volume_mount_naming_no_volume_exit_2() {
    let t = TestDir::new("vol-novol");
    let app = with(
        container("app", "l Ran"),
        "volumeMounts",
        json!([mount("ghost", "/ghost")]),
    );
    let out = t.run_with_docs(&[], pod("novol", "Never", vec![], vec![app]), &[]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("volumeMounts[0].name"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("ghost"), "{}", out.stderr);
    assert!(t.log().is_empty());
}

// Bad input: a disk emptyDir written past its sizeLimit → the kubelet's eviction: Warning
// `Evicted` with its message, the pod is killed (grace 0) and ends Failed.
#[test]
fn item3_emptydir_over_size_limit_evicts_the_pod() {
    require_root!("item3_emptydir_over_size_limit_evicts_the_pod");
    let t = TestDir::new("vol-sizelimit");
    let dir = format!("{}/scratch", t.path().display());
    // The app exits 0 on SIGTERM: the pod still ends Failed, reason Evicted (the kubelet's
    // eviction manager fails the pod whatever its containers return).
    let app = with(
        container(
            "app",
            &format!(
                "trap 'exit 0' TERM; dd if=/dev/zero of={dir}/big bs=1024 count=2048 2>/dev/null; l Wrote; \
                 while :; do sleep 0.05; done"
            ),
        ),
        "volumeMounts",
        json!([mount("scratch", &dir)]),
    );
    let mut p = pod("full", "Always", vec![], vec![app]);
    p["spec"]["volumes"] = json!([{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}]);
    let out = t.run_with_docs(&[], p, &["--timeout", "20"]);
    let evicted = "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". ";
    assert!(
        out.stderr.contains(&format!("Warning Evicted: {evicted}")),
        "{}",
        out.stderr
    );
    assert!(
        out.elapsed < std::time::Duration::from_secs(15),
        "{:?}",
        out.elapsed
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Failed", "{p}");
    assert_eq!(p["status"]["reason"], "Evicted", "{p}");
    assert_eq!(p["status"]["message"], evicted, "{p}");
    assert_eq!(
        status_of(&p, "app")["state"]["terminated"]["exitCode"],
        0,
        "{p}"
    );
    assert!(t.leftovers().is_empty());
}
