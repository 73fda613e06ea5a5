//! A Pod exported from a cluster (`kubectl get pod -o yaml`, examples/exported-pod.yaml) runs
//! (issue 8 item 3): status, managedFields, ownerReferences, resourceVersion, uid, nodeName,
//! the default tolerations and the injected `kube-api-access-*` projected volume are taken as
//! the API server takes a new Pod, and the container finds `token`, `ca.crt` and `namespace`
//! under /var/run/secrets/kubernetes.io/serviceaccount as on a cluster: a token signed by
//! skiff's key for the pod's service account, skiff's CA, the pod's namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn fixture() -> String {
    format!(
        "{}/../../examples/exported-pod.yaml",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn exported_pod_validates_unedited() {
    let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["validate", "-f", &fixture(), "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let pod: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Server-set metadata and status are reset on create; what the user may set stays.
    let meta = &pod["metadata"];
    for gone in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
    ] {
        assert!(meta.get(gone).is_none(), "{gone} kept: {meta}");
    }
    assert!(pod.get("status").is_none(), "status kept: {pod}");
    assert_eq!(meta["generation"], 1);
    assert_eq!(meta["ownerReferences"][0]["kind"], "ReplicaSet");
    assert_eq!(pod["spec"]["nodeName"], "worker-2");
    assert_eq!(
        pod["spec"]["tolerations"][0]["key"],
        "node.kubernetes.io/not-ready"
    );
}

#[test]
fn exported_pod_runs_and_sees_token_ca_and_namespace() {
    if !is_root() {
        eprintln!("skipped: needs root (mount namespaces, tmpfs)");
        return;
    }
    let t = TestDir::new("exported");
    let text = std::fs::read_to_string(fixture()).unwrap();
    let mut pod: Value = serde_yaml_ng::from_str(&text).unwrap();
    // What this build needs on top: the host runtime class and a command (no images). The
    // pod ends when its container has copied what it sees.
    pod["spec"]["runtimeClassName"] = json!("host");
    pod["spec"]["restartPolicy"] = json!("Never");
    pod["spec"]["containers"][0]["command"] = json!([
        "/bin/sh",
        "-c",
        format!(
            "cp {SA_DIR}/token {SA_DIR}/ca.crt {SA_DIR}/namespace \"$T\"/ && \
             stat -L -c %a {SA_DIR}/token > \"$T\"/token.mode"
        )
    ]);
    let data_dir = t.file("data");
    let out = t.run(pod, &["--data-dir", data_dir.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(out.pod()["status"]["phase"], "Succeeded");
    assert!(
        !out.stderr.contains("ServiceAccountTokenSkipped"),
        "{}",
        out.stderr
    );

    // namespace: the pod's.
    assert_eq!(
        std::fs::read_to_string(t.file("namespace")).unwrap(),
        "shop"
    );
    // ca.crt: skiff's CA of this data dir, PEM.
    let ca = std::fs::read_to_string(t.file("ca.crt")).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert_eq!(
        ca,
        std::fs::read_to_string(data_dir.join("pki/ca.crt")).unwrap()
    );
    // token: a JWT for system:serviceaccount:shop:default, bound to this pod, with the
    // projection's 3607 s lifetime, file mode from defaultMode 420 (0644).
    let token = std::fs::read_to_string(t.file("token")).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["sub"], "system:serviceaccount:shop:default");
    assert_eq!(claims["iss"], "https://skiff.invalid");
    assert_eq!(claims["kubernetes.io"]["namespace"], "shop");
    assert_eq!(
        claims["kubernetes.io"]["pod"]["name"],
        "web-6d8f7c9b5-k2x7p"
    );
    let final_pod = out.pod();
    assert_eq!(
        claims["kubernetes.io"]["pod"]["uid"],
        final_pod["metadata"]["uid"]
    );
    assert_ne!(
        final_pod["metadata"]["uid"],
        "8c2d7e4f-1b3a-4f6e-9d8c-7a5b4c3d2e1f"
    );
    assert_eq!(claims["kubernetes.io"]["node"]["name"], "worker-2");
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 3607);
    assert_eq!(
        std::fs::read_to_string(t.file("token.mode"))
            .unwrap()
            .trim(),
        "644"
    );
}
