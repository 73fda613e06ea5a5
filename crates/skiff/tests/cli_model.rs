//! The built binary on manifests: `skiff validate` and `skiff resources` exit codes, stdout and
//! stderr (issue 2's CLI checks).

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn skiff(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn skiff: {e}"));
    if let Some(mut pipe) = child.stdin.take() {
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes())
                .unwrap_or_else(|e| panic!("stdin: {e}"));
        }
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn example(name: &str) -> String {
    format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

const WORKED_EXAMPLE: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: worked}
spec:
  overhead: {cpu: 10m, memory: 16Mi}
  initContainers:
  - name: istio
    image: istio/proxyv2:1.22
    restartPolicy: Always
    resources:
      requests: {cpu: 100m, memory: 128Mi}
      limits: {cpu: 200m, memory: 256Mi}
  - name: migrate
    image: app:1
    resources:
      requests: {cpu: "1", memory: 512Mi}
      limits: {cpu: "2", memory: 1Gi}
  - name: logs
    image: fluent-bit:3
    restartPolicy: Always
    resources:
      requests: {cpu: 50m, memory: 64Mi}
  containers:
  - name: app
    image: app:1
    resources:
      requests: {cpu: 500m, memory: 1Gi}
      limits: {cpu: "1", memory: 1Gi}
  - name: worker
    image: app:1
    resources:
      requests: {cpu: 250m, memory: 256Mi}
      limits: {cpu: 500m, memory: 512Mi}
"#;

#[test]
fn version_and_help() {
    let out = skiff(&["--version"], None);
    assert!(out.status.success());
    // Same text as `skiff version` (cli_version.rs).
    assert!(text(&out.stdout).starts_with("Skiff Version: v"));
    for sub in ["validate", "resources"] {
        let out = skiff(&[sub, "--help"], None);
        assert!(out.status.success(), "{sub} --help");
        assert!(text(&out.stdout).contains("--filename"), "{sub} --help");
    }
}

#[test]
fn validate_accepts_the_examples() {
    for ex in ["web-with-sidecars.yaml", "job-with-sidecar.yaml"] {
        let out = skiff(&["validate", "-f", &example(ex)], None);
        assert_eq!(out.status.code(), Some(0), "{ex}: {}", text(&out.stderr));
        assert!(text(&out.stdout).starts_with("pod/"), "{ex}");
    }
}

#[test]
fn validate_reads_stdin_and_prints_the_defaulted_pod() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: nginx}\n";
    let out = skiff(&["validate", "-f", "-", "-o", "json"], Some(pod));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(v["spec"]["restartPolicy"], "Always");
    assert_eq!(v["spec"]["terminationGracePeriodSeconds"], 30);
    assert_eq!(v["spec"]["containers"][0]["imagePullPolicy"], "Always");
    assert_eq!(
        v["spec"]["containers"][0]["terminationMessagePath"],
        "/dev/termination-log"
    );
}

#[test]
fn validate_reports_every_error_and_exits_2() {
    let out = skiff(&["validate", "-f", &example("invalid-pod.yaml")], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    // As kubectl prints the API server's Invalid error, after the file's name: the header,
    // then one `* field: message` line per cause.
    assert!(
        err.starts_with(&format!(
            "{}: The Pod \"broken\" is invalid: \n* ",
            example("invalid-pod.yaml")
        )),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("* spec.")).count(),
        5,
        "{err}"
    );
    for needle in [
        "\n* spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        "spec.initContainers[0].startupProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
        "spec.containers[0].image: Invalid value: \" nginx\": must not have leading or trailing whitespace",
        "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
}

#[test]
fn unknown_fields_and_syntax_errors_exit_2_with_positions() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, imagee: nginx}\n";
    let out = skiff(&["validate", "-f", "-"], Some(pod));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "error: <stdin>: document 1 (Pod \"p\"): strict decoding error: unknown field \"spec.containers[0].imagee\"\n  field spec.containers[0].imagee is not in the Kubernetes 1.37 API that skiff implements (a newer Kubernetes field, or misspelt?); did you mean \"image\"?"
    );

    let out = skiff(
        &["validate", "-f", "-"],
        Some("kind: Pod\nmetadata: {name: [x\n"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("error: <stdin>:3:"),
        "{}",
        text(&out.stderr)
    );

    let out = skiff(&["validate", "-f", "/nonexistent/pod.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: the path \"/nonexistent/pod.yaml\" does not exist\n"
    );

    let out = skiff(&["validate"], None);
    assert_eq!(out.status.code(), Some(2), "missing -f is a usage error");
}

#[test]
fn garbage_bytes_never_crash() {
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
    let dir = std::env::temp_dir().join(format!("skiff-junk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("junk.yaml");
    std::fs::write(&file, &junk).unwrap_or_else(|e| panic!("{e}"));
    let out = cmd
        .args(["validate", "-f"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("error: "),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn res6_resources_json_matches_the_worked_example() {
    let out = skiff(
        &["resources", "-f", "-", "-o", "json"],
        Some(WORKED_EXAMPLE),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(
        v,
        serde_json::json!({
            "requests": {"cpu": "1110m", "memory": "1488Mi"},
            "limits": {"cpu": "2210m", "memory": "1808Mi"},
            "qosClass": "Burstable"
        })
    );
}

#[test]
fn resources_table_and_wide() {
    let out = skiff(&["resources", "-f", "-"], Some(WORKED_EXAMPLE));
    assert_eq!(out.status.code(), Some(0));
    let t = text(&out.stdout);
    assert!(t.contains("cpu        1110m     2210m"), "{t}");
    assert!(t.contains("QoS class: Burstable"), "{t}");
    let out = skiff(
        &["resources", "-f", "-", "-o", "wide"],
        Some(WORKED_EXAMPLE),
    );
    let t = text(&out.stdout);
    assert!(t.contains("cpu.shares=1136 cpu.cfs_quota_us=221000 cpu.cfs_period_us=100000 memory.limit_in_bytes=1895825408"), "{t}");
    assert!(
        t.contains("cpu.max=\"221000 100000\" memory.max=1895825408"),
        "{t}"
    );
}

#[test]
fn resources_refuses_invalid_pods() {
    let out = skiff(
        &[
            "resources",
            "-f",
            &example("invalid-pod.yaml"),
            "-o",
            "json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
