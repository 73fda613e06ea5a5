//! kubectl's output habits on the built binary (issue 8 item 7): `-o name|jsonpath=…`,
//! kubectl's printer errors, shell completion.

use std::process::{Command, Output};

fn skiff(args: &[&str]) -> Output {
    // Pods `run` keeps go to the tests' data dir, not the machine's.
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .env(
            "SKIFF_DATA_DIR",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/skiff-data"),
        )
        .output()
        .unwrap_or_else(|e| panic!("spawn skiff: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn example(name: &str) -> String {
    format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn resources_prints_names_and_jsonpath_like_kubectl() {
    let file = example("web-with-sidecars.yaml");
    let out = skiff(&["resources", "-f", &file, "-o", "name"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "pod/web\n");

    let out = skiff(&["resources", "-f", &file, "-o", "jsonpath={.qosClass}"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Burstable");
}

#[test]
fn bad_output_values_are_usage_errors_with_kubectls_words() {
    let file = example("web-with-sidecars.yaml");
    let out = skiff(&["resources", "-f", &file, "-o", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(
            "unable to match a printer suitable for the output format \"xml\", allowed formats are:"
        ),
        "{}",
        text(&out.stderr)
    );
    let out = skiff(&["resources", "-f", &file, "-o", "jsonpath={.qosClass"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("error parsing jsonpath {.qosClass, unclosed action"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn completion_scripts_for_bash_zsh_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = skiff(&["completion", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = text(&out.stdout);
        assert!(script.contains("skiff"), "{shell}");
        assert!(
            script.contains("validate"),
            "{shell}: subcommands are completed"
        );
    }
    let bash = skiff(&["completion", "bash"]);
    let check = Command::new("bash")
        .args(["-n", "-c", &text(&bash.stdout)])
        .status()
        .map(|s| s.success());
    assert_eq!(check.ok(), Some(true), "bash parses the script");
    assert_eq!(skiff(&["completion", "tcsh"]).status.code(), Some(2));
}

#[test]
fn run_prints_the_final_pod_through_jsonpath_and_refuses_wide() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let file = dir.path().join("pod.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: once}\nspec:\n  runtimeClassName: host\n  restartPolicy: Never\n  containers:\n  - {name: app, image: busybox, command: [/bin/true]}\n",
    )
    .unwrap_or_else(|e| panic!("write: {e}"));
    let file = file.to_string_lossy().into_owned();
    let out = skiff(&["run", "-f", &file, "-o", "wide"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("output format \"wide\""));
    let out = skiff(&[
        "run",
        "-f",
        &file,
        "--rm",
        "-o",
        "jsonpath={.status.phase} {.status.containerStatuses[0].state.terminated.reason}",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Succeeded Completed");
}

/// kubectl's `-n`: fills in a missing namespace, refuses a different one, leaves
/// cluster-scoped kinds alone.
#[test]
fn namespace_flag_as_kubectl_applies_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let file = dir.path().join("pod.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: busybox}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
    )
    .unwrap_or_else(|e| panic!("write: {e}"));
    let file = file.to_string_lossy().into_owned();
    let out = skiff(&[
        "validate",
        "-f",
        &file,
        "-n",
        "shop",
        "-o",
        "jsonpath={range .items[*]}{.kind}:{.metadata.namespace};{end}",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Pod:shop;Namespace:;");

    let other = dir.path().join("other.yaml");
    std::fs::write(
        &other,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: a}\nspec:\n  containers:\n  - {name: c, image: busybox}\n",
    )
    .unwrap_or_else(|e| panic!("write: {e}"));
    let out = skiff(&[
        "validate",
        "-f",
        &other.to_string_lossy(),
        "--namespace",
        "b",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("pod/q: the namespace from the provided object \"a\" does not match the namespace \"b\". You must pass '--namespace=a' to perform this operation."),
        "{}",
        text(&out.stderr)
    );
}
