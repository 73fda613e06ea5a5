//! Image pods end to end on the built binary (issue 10 item 8): pulled from the local registry
//! fixture (`scripts/test-registry.sh`, started once by `scripts/test.sh`, which names it in
//! `SKIFF_TEST_REGISTRY`; without it the tests skip, except under CI), run by the OCI runtime through skiff's
//! monitor: a sidecar pod, a Job-style pod, an OOM pod, Entrypoint/Cmd combinations, a pull
//! that fails (ErrImagePull → ImagePullBackOff), and a hostile image whose layer tries to
//! write outside its root. Every test checks that nothing of the pod is left mounted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::{finish, is_root, spawn, status_of, Outcome, TestDir};
use serde_json::{json, Value};

/// The anonymous registry of the fixture (`127.0.0.1:PORT`), or `None` (not root, or the
/// fixture's tools are missing outside CI).
fn registry() -> Option<String> {
    static REG: OnceLock<Option<String>> = OnceLock::new();
    REG.get_or_init(|| {
        if !is_root() {
            eprintln!("skipped: image pods need root");
            return None;
        }
        if let Ok(r) = std::env::var("SKIFF_TEST_REGISTRY") {
            return Some(r);
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "SKIFF_TEST_REGISTRY unset under CI: scripts/test.sh starts the registry fixture"
        );
        eprintln!("skipped: SKIFF_TEST_REGISTRY unset (scripts/test.sh starts the registry fixture; or `eval \"$(scripts/test-registry.sh env DIR)\"` after `start DIR`)");
        None
    })
    .clone()
}

fn data_dir(t: &TestDir) -> PathBuf {
    t.file("data")
}

fn image_pod(name: &str, restart: &str, init: Vec<Value>, apps: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 2,
            "initContainers": init,
            "containers": apps,
        }
    })
}

fn run(t: &TestDir, pod: Value, extra: &[&str]) -> Outcome {
    let path = t.file("pod.yaml");
    std::fs::write(&path, serde_json::to_string(&pod).unwrap()).unwrap();
    let data = data_dir(t);
    let mut args = vec![
        "run",
        "-f",
        path.to_str().unwrap(),
        "-o",
        "json",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = finish(spawn(&args), Duration::from_secs(120));
    assert_nothing_mounted(&data);
    out
}

/// No mount of the pod (rootfs overlays, staged volumes, sandbox files) outlives the run.
fn assert_nothing_mounted(data: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = data.join("pods");
    let left: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(prefix.to_str().unwrap()))
        .collect();
    assert!(left.is_empty(), "left mounted: {left:#?}");
}

fn terminated<'a>(pod: &'a Value, name: &str) -> &'a Value {
    &status_of(pod, name)["state"]["terminated"]
}

// A native sidecar with an exec startup probe gates the app; the app's exit ends the pod and
// the sidecar is stopped (S1, P3, T6). The image is pulled (Always for `:latest`, D2), with
// the kubelet's Pulling/Pulled events, and imageID carries the repository digest.
#[test]
fn sidecar_pod_from_a_pulled_image_succeeds() {
    let Some(reg) = registry() else { return };
    let t = TestDir::new("img-sidecar");
    let image = format!("{reg}/busybox:latest");
    let sidecar = json!({
        "name": "proxy", "image": image, "restartPolicy": "Always",
        "command": ["sh", "-c", "trap 'exit 0' TERM; touch /tmp/ready; while true; do sleep 0.1; done"],
        "startupProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1},
    });
    let app = json!({
        "name": "app", "image": image,
        "command": ["sh", "-c", "echo hello from $(hostname); test ! -e /tmp/ready"],
    });
    let out = run(
        &t,
        image_pod("img-sidecar", "Never", vec![sidecar], vec![app]),
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("Pulling image \"{image}\"")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("Successfully pulled image \"{image}\" in ")),
        "{}",
        out.stderr
    );
    let pod = out.pod();
    assert_eq!(pod["status"]["phase"], "Succeeded");
    let app = status_of(&pod, "app");
    assert_eq!(app["state"]["terminated"]["exitCode"], 0);
    assert_eq!(app["image"], json!(image));
    let id = app["imageID"].as_str().unwrap();
    assert!(id.starts_with(&format!("{reg}/busybox@sha256:")), "{id}");
    // The app has its own root filesystem (the sidecar's /tmp/ready is not in it: exit 0
    // above) and the pod's hostname.
    let logs = finish(
        spawn(&[
            "logs",
            "img-sidecar",
            "-c",
            "app",
            "--data-dir",
            data_dir(&t).to_str().unwrap(),
        ]),
        Duration::from_secs(10),
    );
    assert_eq!(logs.stdout.trim(), "hello from img-sidecar", "{logs:?}");
    assert_eq!(terminated(&pod, "proxy")["exitCode"], 0, "{pod:#}");
}

// Job-style: the app runs to completion under the schema2 manifest variant, the sidecar is
// stopped in reverse order and the pod Succeeds (T6/T7); IfNotPresent uses the stored image.
#[test]
fn job_style_pod_with_schema2_image_completes() {
    let Some(reg) = registry() else { return };
    let t = TestDir::new("img-job");
    let image = format!("{reg}/busybox:v2s2");
    let side = json!({
        "name": "telemetry", "image": image, "restartPolicy": "Always",
        "command": ["sh", "-c", "trap 'echo flushed; exit 0' TERM; while true; do sleep 0.1; done"],
    });
    let job = json!({"name": "job", "image": image, "imagePullPolicy": "IfNotPresent",
                     "command": ["sh", "-c", "echo crunching; exit 0"]});
    let out = run(
        &t,
        image_pod("img-job", "Never", vec![side.clone()], vec![job.clone()]),
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.pod()["status"]["phase"], "Succeeded");
    // Again: present now, so IfNotPresent does not pull.
    let again = run(&t, image_pod("img-job2", "Never", vec![], vec![job]), &[]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(
        again.stderr.contains(&format!(
            "Container image \"{image}\" already present on machine"
        )),
        "{}",
        again.stderr
    );
}

// A container over its memory limit is OOM-killed: terminated reason OOMKilled, exit 137.
#[test]
fn oom_container_reports_oomkilled() {
    let Some(reg) = registry() else { return };
    let t = TestDir::new("img-oom");
    let app = json!({
        "name": "hog", "image": format!("{reg}/busybox:latest"),
        // `tail` keeps a line without newlines in memory: endless zeros.
        "command": ["tail", "/dev/zero"],
        "resources": {"limits": {"memory": "32Mi"}},
    });
    let out = run(&t, image_pod("img-oom", "Never", vec![], vec![app]), &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let pod = out.pod();
    let term = terminated(&pod, "hog");
    assert_eq!(term["reason"], "OOMKilled", "{pod:#}");
    assert_eq!(term["exitCode"], 137, "{pod:#}");
}

/// Imports a one-layer image from a directory with an Entrypoint and a Cmd.
fn import_echo_image(t: &TestDir, name: &str) {
    let root = t.file("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let data = data_dir(t);
    let o = finish(
        spawn(&[
            "image",
            "import",
            "--data-dir",
            data.to_str().unwrap(),
            "--from-dir",
            root.to_str().unwrap(),
            "--name",
            name,
            "--entrypoint",
            "/bin/echo",
            "--entrypoint",
            "entry",
            "--cmd",
            "from-cmd",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(o.code, Some(0), "{o:?}");
}

// Entrypoint/Cmd vs command/args, as the kubelet and containerd combine them
// (facts note §3.2, containerd WithProcessArgs): nothing → Entrypoint + Cmd; args only →
// Entrypoint + args; command → command + args, the image's both ignored.
#[test]
fn entrypoint_and_cmd_combine_as_the_kubelet_does() {
    let Some(_) = registry() else { return };
    let t = TestDir::new("img-args");
    let image = "localhost/echo:1";
    import_echo_image(&t, image);
    let c = |name: &str, extra: Value| {
        let mut v = json!({"name": name, "image": image, "imagePullPolicy": "Never"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let pod = image_pod(
        "img-args",
        "Never",
        vec![
            c("plain", json!({})),
            c("args", json!({"args": ["from-args"]})),
            c("cmd", json!({"command": ["/bin/echo", "own"]})),
        ],
        vec![c(
            "both",
            json!({"command": ["/bin/echo", "own"], "args": ["and-args"]}),
        )],
    );
    let out = run(&t, pod, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let logs = |name: &str| {
        let o = finish(
            spawn(&[
                "logs",
                "img-args",
                "-c",
                name,
                "--data-dir",
                data_dir(&t).to_str().unwrap(),
            ]),
            Duration::from_secs(10),
        );
        o.stdout.trim().to_string()
    };
    assert_eq!(logs("plain"), "entry from-cmd");
    assert_eq!(logs("args"), "entry from-args");
    assert_eq!(logs("cmd"), "own");
    assert_eq!(logs("both"), "own and-args");
}

// A pull that fails: the kubelet's ErrImagePull, then ImagePullBackOff (ST3); the run is
// stopped by --timeout (exit 124) and the container never ran.
#[test]
fn unknown_image_backs_off_with_the_kubelet_reasons() {
    let Some(reg) = registry() else { return };
    let t = TestDir::new("img-missing");
    let image = format!("{reg}/no-such-image:1");
    let app = json!({"name": "app", "image": image, "command": ["true"]});
    let out = run(
        &t,
        image_pod("img-missing", "Never", vec![], vec![app]),
        &["--timeout", "24s"],
    );
    assert_eq!(out.code, Some(124), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("Failed to pull image \"{image}\"")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("ErrImagePull"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("Back-off pulling image \"{image}\"")),
        "{}",
        out.stderr
    );
    let pod = out.pod();
    assert!(status_of(&pod, "app").get("startedAt").is_none(), "{pod:#}");
}

/// A docker-archive whose one layer holds `evil -> /` and then `evil/<marker>` and
/// `../../<marker>`: a layer that tries to write onto the host.
fn hostile_archive(t: &TestDir, marker: &str) -> PathBuf {
    let out = t.file("hostile.tar");
    let script = r#"
import hashlib, io, json, sys, tarfile
out, marker = sys.argv[1], sys.argv[2]
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tf:
    for d in ("bin",):
        ti = tarfile.TarInfo(d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; tf.addfile(ti)
    data = open("/bin/busybox", "rb").read()
    ti = tarfile.TarInfo("bin/busybox"); ti.size = len(data); ti.mode = 0o755; tf.addfile(ti, io.BytesIO(data))
    for a in ("sh", "cat", "ls"):
        ti = tarfile.TarInfo("bin/" + a); ti.type = tarfile.SYMTYPE; ti.linkname = "busybox"; tf.addfile(ti)
    ti = tarfile.TarInfo("evil"); ti.type = tarfile.SYMTYPE; ti.linkname = "/"; tf.addfile(ti)
    body = b"escaped?\n"
    for name in ("evil/tmp/" + marker, "../../tmp/" + marker + "-dots"):
        ti = tarfile.TarInfo(name); ti.size = len(body); ti.mode = 0o644; tf.addfile(ti, io.BytesIO(body))
layer_bytes = layer.getvalue()
diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
config = json.dumps({"architecture": "amd64", "os": "linux",
    "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
config_name = hashlib.sha256(config).hexdigest() + ".json"
manifest = json.dumps([{"Config": config_name, "RepoTags": ["localhost/hostile:1"], "Layers": ["layer.tar"]}]).encode()
with tarfile.open(out, "w") as tf:
    for name, body in (("layer.tar", layer_bytes), (config_name, config), ("manifest.json", manifest)):
        ti = tarfile.TarInfo(name); ti.size = len(body); tf.addfile(ti, io.BytesIO(body))
"#;
    let st = Command::new("python3")
        .args(["-c", script, out.to_str().unwrap(), marker])
        .status()
        .unwrap();
    assert!(st.success());
    out
}

// A hostile image: its layer's writes through an absolute symlink and `..` stay inside the
// image's root (RESOLVE_IN_ROOT), never on the host; the container sees them in its own /tmp.
#[test]
fn hostile_image_writes_stay_inside_its_root() {
    let Some(_) = registry() else { return };
    let t = TestDir::new("img-hostile");
    let marker = format!("skiff-escape-{}", std::process::id());
    let archive = hostile_archive(&t, &marker);
    let data = data_dir(&t);
    let o = finish(
        spawn(&[
            "image",
            "import",
            "--data-dir",
            data.to_str().unwrap(),
            archive.to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    );
    let host_file = Path::new("/tmp").join(&marker);
    let host_dots = Path::new("/tmp").join(format!("{marker}-dots"));
    assert!(
        !host_file.exists() && !host_dots.exists(),
        "a layer wrote onto the host"
    );
    if o.code != Some(0) {
        // Refusing the layer is as good as containing it: say why, and nothing is stored.
        assert!(!o.stderr.is_empty(), "{o:?}");
        return;
    }
    let app = json!({"name": "look", "image": "localhost/hostile:1", "imagePullPolicy": "Never",
                     "command": ["sh", "-c", format!("ls /tmp; cat /tmp/{marker}")]});
    let out = run(
        &t,
        image_pod("img-hostile", "Never", vec![], vec![app]),
        &[],
    );
    assert!(
        !host_file.exists() && !host_dots.exists(),
        "a container run wrote onto the host"
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

// Image GC flags as the kubelet's: the low threshold must be below the high one (exit 2,
// nothing run); with both at 0 (always collect) an image younger than the kubelet's
// `imageMinimumGCAge` (2 minutes) that the pod just used is kept.
#[test]
fn image_gc_thresholds_are_checked_and_young_images_kept() {
    let t = TestDir::new("img-gc");
    let pod = image_pod(
        "img-gc",
        "Never",
        vec![],
        vec![json!({"name": "app", "image": "localhost/echo:1", "imagePullPolicy": "Never"})],
    );
    let out = run(
        &t,
        pod.clone(),
        &[
            "--image-gc-high-threshold",
            "50",
            "--image-gc-low-threshold",
            "60",
        ],
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "--image-gc-low-threshold (60) must be less than --image-gc-high-threshold (50)"
        ),
        "{}",
        out.stderr
    );
    if !is_root() {
        return;
    }
    import_echo_image(&t, "localhost/echo:1");
    let out = run(
        &t,
        pod,
        &[
            "--image-gc-high-threshold",
            "1",
            "--image-gc-low-threshold",
            "0",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let data = data_dir(&t);
    let ls = finish(
        spawn(&["image", "ls", "-q", "--data-dir", data.to_str().unwrap()]),
        Duration::from_secs(10),
    );
    assert_eq!(ls.stdout.lines().count(), 1, "{ls:?}");
}
