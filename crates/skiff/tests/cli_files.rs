//! Issue 8 items 1, 2 and 7 on the built binary: YAML read exactly as kubectl reads it, YAML
//! written so kubectl reads it back the same, files and directories as kubectl takes them,
//! workload kinds run as one pod, other kinds skipped with a line, `validate -o` as a List.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{finish, spawn, TestDir, RUN_LIMIT};
use serde_json::{json, Value};

fn skiff(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .env_remove("SKIFF_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, content).unwrap();
    p.to_string_lossy().into_owned()
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: busybox\n";

// kubernetes.io examples, as published (content/en/examples in kubernetes/website).
const DOCS_NGINX_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nginx\nspec:\n  containers:\n  - name: nginx\n    image: nginx:1.14.2\n    ports:\n    - containerPort: 80\n";
const DOCS_SIDECAR_DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: myapp\n  labels:\n    app.kubernetes.io/name: myapp\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: myapp\n  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: myapp\n    spec:\n      containers:\n        - name: myapp\n          image: alpine:latest\n          command: ['sh', '-c', 'while true; do echo \"logging\" >> /opt/logs.txt; sleep 1; done']\n          volumeMounts:\n            - name: data\n              mountPath: /opt\n      initContainers:\n        - name: logshipper\n          image: alpine:latest\n          # Setting restartPolicy: Always makes this a sidecar container.\n          restartPolicy: Always\n          command: ['sh', '-c', 'tail -F /opt/logs.txt']\n          volumeMounts:\n            - name: data\n              mountPath: /opt\n      volumes:\n        - name: data\n          emptyDir: {}\n";
const DOCS_SIDECAR_JOB: &str = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: myjob\nspec:\n  template:\n    spec:\n      containers:\n        - name: myjob\n          image: alpine:latest\n          command: ['sh', '-c', 'echo \"logging\" > /opt/logs.txt']\n          volumeMounts:\n            - name: data\n              mountPath: /opt\n      initContainers:\n        - name: logshipper\n          image: alpine:latest\n          # Setting restartPolicy: Always makes this a sidecar container.\n          restartPolicy: Always\n          command: ['sh', '-c', 'tail -F /opt/logs.txt']\n          volumeMounts:\n            - name: data\n              mountPath: /opt\n      restartPolicy: Never\n      volumes:\n        - name: data\n          emptyDir: {}";
const DOCS_WORDPRESS: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: wordpress\n  labels:\n    app.kubernetes.io/name: wordpress\nspec:\n  ports:\n    - port: 80\n  selector:\n    app.kubernetes.io/name: wordpress\n    tier: frontend\n  type: LoadBalancer\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: wp-pv-claim\n  labels:\n    app.kubernetes.io/name: wordpress\nspec:\n  accessModes:\n    - ReadWriteOnce\n  resources:\n    requests:\n      storage: 20Gi\n";

#[test]
fn issue8_item1_legacy_octal_is_420() {
    let pod = format!(
        "{POD}  volumes:\n  - name: v\n    configMap:\n      name: c\n      defaultMode: 0644\n"
    );
    let out = skiff(&["validate", "-f", "-", "-o", "json"], Some(&pod));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["spec"]["volumes"][0]["configMap"]["defaultMode"], 420);
}

#[test]
fn issue8_item1_yes_where_a_string_belongs_is_refused_with_the_fix() {
    let pod = POD.replace(
        "image: busybox",
        "image: busybox\n    env:\n    - name: FLAG\n      value: yes",
    );
    let out = skiff(&["validate", "-f", "-"], Some(&pod));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: <stdin>: document 1 (Pod \"web\"): spec.containers[0].env[0].value: invalid type: boolean `true`, expected a string (line 11: YAML reads the unquoted yes as a boolean, as kubectl does; quote it: \"yes\")\n"
    );
    // Quoted, it is the string.
    let out = skiff(
        &["validate", "-f", "-", "-o", "json"],
        Some(&pod.replace("value: yes", "value: \"yes\"")),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["spec"]["containers"][0]["env"][0]["value"], "yes");
}

/// A manifest full of strings YAML 1.1 would misread unquoted, and a workload with a Service.
fn tricky_manifests() -> String {
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "tricky", "labels": {"yes": "no", "on": "0644"}},
        "data": {
            "a": "yes", "b": "0644", "c": "1:20", "d": "2001-12-14", "e": "<<", "f": "1_000",
            "g": ".5", "h": "multi\nline\n", "i": "  lead\ntrail  \n", "j": "tab\there", "k": "~",
            "l": "", "m": "- x", "n": "#x", "o": "a: b", "p": "\u{2028}x", "q": "0x1F",
            "r": "+.inf", "s": "null", "t": "y", "u": "N", "v": "1e3", "w": "0o17", "x": "\u{1}",
            "y": "---", "z": "é ü", "script": "set -e\necho \"$A\" # note\n\n  indented\n"
        }
    });
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": {"n": "off"}},
        "spec": {"containers": [{"name": "c", "image": "x", "args": ["on", "1.10", "-c"],
            "env": [{"name": "A", "value": "true"}]}]}
    });
    format!(
        "# JSON documents in a YAML stream\n{}\n---\n{}\n---\n{DOCS_SIDECAR_DEPLOYMENT}---\n{DOCS_WORDPRESS}",
        serde_json::to_string(&cm).unwrap(),
        serde_json::to_string(&pod).unwrap()
    )
}

/// The objects of `kubectl … -o json` output (one JSON object per object, concatenated).
fn json_stream(s: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(s)
        .into_iter::<Value>()
        .map(|v| v.unwrap())
        .collect()
}

#[test]
fn issue8_item1_yaml_output_reads_back_the_same_in_skiff_and_kubectl() {
    let t = TestDir::new("yaml-roundtrip");
    let file = write(t.path(), "all.yaml", &tricky_manifests());
    let json_out = skiff(&["validate", "-f", &file, "-o", "json"], None);
    assert_eq!(
        json_out.status.code(),
        Some(0),
        "{}",
        text(&json_out.stderr)
    );
    let list: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(5));
    let yaml_out = skiff(&["validate", "-f", &file, "-o", "yaml"], None);
    assert_eq!(yaml_out.status.code(), Some(0));
    let yaml = text(&yaml_out.stdout);
    assert!(yaml.contains("  b: \"0644\"\n"), "{yaml}");

    // skiff reads its YAML back as the same objects.
    let again = skiff(&["validate", "-f", "-", "-o", "json"], Some(&yaml));
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again, list);

    // So does kubectl, where it is installed: `annotate --local` decodes the YAML as
    // `kubectl create`/`apply` do (sigs.k8s.io/yaml) and needs no cluster.
    let Ok(mut child) = Command::new("kubectl")
        .args([
            "annotate",
            "--local",
            "-f",
            "-",
            "-o",
            "json",
            "skiff-check=1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("kubectl not installed: the kubectl half of this test did not run");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "kubectl: {}", text(&out.stderr));
    let mut from_kubectl = json_stream(&text(&out.stdout));
    for o in &mut from_kubectl {
        let ann = o["metadata"]["annotations"].as_object_mut().unwrap();
        ann.remove("skiff-check");
        if ann.is_empty() {
            o["metadata"].as_object_mut().unwrap().remove("annotations");
        }
    }
    assert_eq!(Value::Array(from_kubectl), list["items"]);
}

#[test]
fn issue8_item7_one_object_prints_as_itself_several_as_a_list() {
    let out = skiff(&["validate", "-f", "-", "-o", "yaml"], Some(POD));
    assert!(
        text(&out.stdout).starts_with("apiVersion: v1\nkind: Pod\n"),
        "{}",
        text(&out.stdout)
    );
    let both = format!("{POD}---\n{}", DOCS_WORDPRESS);
    let out = skiff(&["validate", "-f", "-", "-o", "json"], Some(&both));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "List");
    assert_eq!(v["metadata"], json!({"resourceVersion": ""}));
    let kinds: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["Pod", "Service", "PersistentVolumeClaim"]);
    // Pods are defaulted; other kinds as given.
    assert_eq!(v["items"][0]["spec"]["restartPolicy"], "Always");
    let out = skiff(&["validate", "-f", "-", "-o", "name"], Some(&both));
    assert_eq!(
        text(&out.stdout),
        "pod/web\nservice/wordpress\npersistentvolumeclaim/wp-pv-claim\n"
    );
}

#[test]
fn issue8_item7_several_errors_print_as_kubectl_prints_them() {
    let bad = POD
        .replace("name: app", "name: App")
        .replace("image: busybox", "image: ' busybox'");
    let out = skiff(&["validate", "-f", "-"], Some(&bad));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "<stdin>: The Pod \"web\" is invalid: \n* spec.containers[0].name: Invalid value: \"App\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')\n* spec.containers[0].image: Invalid value: \" busybox\": must not have leading or trailing whitespace\n"
    );
    // One error stays on one line.
    let out = skiff(
        &["validate", "-f", "-"],
        Some(&POD.replace("name: app", "name: App")),
    );
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "<stdin>: The Pod \"web\" is invalid: spec.containers[0].name: Invalid value: \"App\""
        ),
        "{err}"
    );
}

#[test]
fn issue8_docs_examples_validate() {
    let t = TestDir::new("docs");
    for (name, doc) in [
        ("nginx.yaml", DOCS_NGINX_POD),
        ("sidecar-deployment.yaml", DOCS_SIDECAR_DEPLOYMENT),
        ("sidecar-job.yaml", DOCS_SIDECAR_JOB),
        ("wordpress.yaml", DOCS_WORDPRESS),
    ] {
        write(t.path(), name, doc);
    }
    let dir = t.path().to_string_lossy().into_owned();
    let out = skiff(&["validate", "-f", &dir], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "pod/nginx valid\n\
         deployment/myapp valid (run runs its pod template as pod \"myapp\")\n\
         job/myjob valid (run runs it with the Job controller)\n\
         service/wordpress valid (skipped by run: skiff runs pods only)\n\
         persistentvolumeclaim/wp-pv-claim valid (skipped by run: skiff runs pods only)\n"
    );
}

#[test]
fn issue8_item2_directories_follow_kubectls_rules() {
    let t = TestDir::new("dirs");
    let d = t.path();
    write(d, "b.yml", &POD.replace("web", "b"));
    write(d, "a.yaml", &POD.replace("web", "a"));
    write(
        d,
        "c.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#,
    );
    write(d, "notes.txt", "not a manifest");
    write(d, "UPPER.YAML", "not read: extensions are case-sensitive");
    write(d, "sub/d.yaml", &POD.replace("web", "d"));
    let dir = d.to_string_lossy().into_owned();
    let out = skiff(&["validate", "-f", &dir], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "pod/a valid\npod/b valid\nconfigmap/c valid\n"
    );
    let out = skiff(&["validate", "-R", "-f", &dir], None);
    assert_eq!(
        text(&out.stdout),
        "pod/a valid\npod/b valid\nconfigmap/c valid\npod/d valid\n"
    );
    // A file named on the command line is read whatever its name.
    let notes = d.join("notes.txt").to_string_lossy().into_owned();
    let out = skiff(&["validate", "-f", &notes], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("notes.txt: document 1: expected an object"),
        "{}",
        text(&out.stderr)
    );
    // An empty directory says what it looked for.
    std::fs::create_dir(d.join("empty")).unwrap();
    let empty = d.join("empty").to_string_lossy().into_owned();
    let out = skiff(&["validate", "-f", &empty], None);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!("error: {empty}: no .json, .yaml or .yml files (-R reads subdirectories)\n")
    );
}

#[test]
fn issue8_bad_files_in_a_directory_are_reported_each_never_a_panic() {
    let t = TestDir::new("badfiles");
    let d = t.path();
    write(d, "good.yaml", POD);
    std::fs::write(d.join("binary.yaml"), [0u8, 0xff, 0xfe, 0x80, 0x01]).unwrap();
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(d.join("junk.json"), &junk).unwrap();
    std::os::unix::fs::symlink("loop.yaml", d.join("loop.yaml")).unwrap();
    std::os::unix::fs::symlink("missing", d.join("dangling.yml")).unwrap();
    std::fs::create_dir(d.join("realdir")).unwrap();
    write(d, "realdir/inner.yaml", &POD.replace("web", "inner"));
    // A symlink to a directory is not walked (filepath.Walk), even with -R.
    std::os::unix::fs::symlink("realdir", d.join("linked.yaml")).unwrap();
    // A FIFO named like a manifest is refused, never opened (it would block).
    let fifo = d.join("fifo.yaml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let dir = d.to_string_lossy().into_owned();
    let out = skiff(&["validate", "-R", "-f", &dir], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(!err.contains("panic"), "{err}");
    for needle in [
        "binary.yaml: not UTF-8 text: invalid byte at offset 1",
        "dangling.yml: No such file or directory",
        "fifo.yaml: not a regular file",
        "junk.json: ",
        "linked.yaml: is a directory",
        "loop.yaml: Too many levels of symbolic links",
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with("error: ") && l.contains(needle)),
            "missing {needle:?} in:\n{err}"
        );
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn issue8_item2_f_is_repeatable_on_every_command() {
    let t = TestDir::new("repeat");
    let a = write(t.path(), "a.yaml", &POD.replace("web", "a"));
    let b = write(t.path(), "b.yaml", &POD.replace("web", "b"));
    let out = skiff(&["validate", "-f", &a, "-f", &b], None);
    assert_eq!(text(&out.stdout), "pod/a valid\npod/b valid\n");
    let out = skiff(&["resources", "-f", &a, "-f", &b, "-o", "name"], None);
    assert_eq!(text(&out.stdout), "pod/a\npod/b\n", "{}", text(&out.stderr));
    // run needs exactly one pod among all files, and says which it found.
    let out = skiff(&["run", "-f", &a, "-f", &b], None);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: skiff run runs exactly one Pod; {a}, {b} have 2: pod/a in {a}, pod/b in {b}\n"
        )
    );
    let svc = write(t.path(), "svc.yaml", DOCS_WORDPRESS);
    let out = skiff(&["run", "-f", &svc], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).ends_with(&format!(
            "error: skiff run runs exactly one Pod; {svc} has none\n"
        )),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn issue8_item2_run_takes_a_configmap_and_a_pod_from_two_files() {
    let t = TestDir::new("run-two-files");
    let cm = write(
        t.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata:\n  greeting: \"yes\"\n",
    );
    let pod = write(
        t.path(),
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: reader}\nspec:\n  runtimeClassName: host\n  restartPolicy: Never\n  containers:\n  - name: app\n    image: busybox\n    command: [sh, -c, 'echo \"greeting=$G\"']\n    env:\n    - name: G\n      valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}\n",
    );
    let out = finish(spawn(&["run", "-f", &cm, "-f", &pod]), RUN_LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // Container output is on stdout without -o.
    assert!(
        out.stdout.contains("greeting=yes"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn issue8_item2_a_deployment_with_a_service_runs_its_template_as_one_pod() {
    let t = TestDir::new("run-deployment");
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      runtimeClassName: host\n      terminationGracePeriodSeconds: 2\n      containers:\n      - name: app\n        image: busybox\n        command: [sh, -c, 'echo \"serving as $(cat /etc/hostname 2>/dev/null || hostname)\"; exit 0']\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports:\n  - port: 80\n";
    let file = write(t.path(), "web.yaml", manifest);
    let out = skiff(&["validate", "-f", &file], None);
    assert_eq!(
        text(&out.stdout),
        "deployment/web valid (run runs its pod template as pod \"web\"; replicas: 3 — skiff runs one)\nservice/web valid (skipped by run: skiff runs pods only)\n"
    );
    // A Deployment's pod restarts Always: the run ends at --timeout.
    let out = finish(
        spawn(&["run", "-f", &file, "--timeout", "2", "-o", "json"]),
        RUN_LIMIT,
    );
    assert!(
        out.stderr.starts_with(
            "deployment/web: running its pod template as pod \"web\" (replicas: 3 — skiff runs one)\nskipping service/web: skiff runs pods only\n"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("[app] serving as"), "{}", out.stderr);
    let pod: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(pod["metadata"]["name"], "web");
    assert_eq!(pod["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(pod["spec"]["restartPolicy"], "Always");
}
