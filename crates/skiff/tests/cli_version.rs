//! `skiff version`, `skiff --version`, and `skiff run` refusing what the Kubernetes 1.37 API
//! allows but skiff's node cannot do yet (issue 8 item 4).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output, Stdio};

fn skiff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .env_remove("SKIFF_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_names_skiff_and_the_kubernetes_api() {
    let want = format!(
        "Skiff Version: v{}\nKubernetes API: v1.37\n",
        env!("CARGO_PKG_VERSION")
    );
    for args in [&["version"][..], &["--version"][..]] {
        let out = skiff(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(text(&out.stdout), want, "{args:?}");
    }
    let out = skiff(&["version", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kubernetesApiVersion"]["major"], "1");
    assert_eq!(v["kubernetesApiVersion"]["minor"], "37");
    assert_eq!(v["kubernetesApiVersion"]["gitVersion"], "v1.37");
    assert_eq!(v["skiffVersion"], format!("v{}", env!("CARGO_PKG_VERSION")));
    let out = skiff(&["version", "-o", "yaml"]);
    assert!(text(&out.stdout).contains("gitVersion: v1.37"));
    assert_eq!(skiff(&["version", "-o", "xml"]).status.code(), Some(2));
}

/// V6 (1.37): a container-level restartPolicy is valid, so `skiff validate` accepts it; the
/// node cannot carry it out yet, so `skiff run` refuses it before starting anything, naming
/// the field and the gate, exit 2.
#[test]
fn v6_container_restart_policy_validates_but_run_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pod.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: rp}\nspec:\n  runtimeClassName: host\n  restartPolicy: Never\n  containers:\n  - name: app\n    image: busybox\n    command: [/bin/true]\n    restartPolicy: OnFailure\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let out = skiff(&["validate", "-f", p]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = skiff(&["run", "-f", p]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: spec.containers[0].restartPolicy: skiff does not support a container-level restartPolicy other than a sidecar's Always yet (Kubernetes 1.37 enables it by default: feature gate ContainerRestartRules)\n"
    );
}
