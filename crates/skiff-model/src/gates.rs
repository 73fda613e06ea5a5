//! Feature gates of the Kubernetes release skiff implements (1.37) that decide what a Pod may
//! say, with their default state there. skiff has no `--feature-gates`: every gate is at its
//! 1.37 default, as on a cluster nobody tuned.
//!
//! Sources: `pkg/features/kube_features.go` (the versioned defaults, read up to the 1.35
//! entries) and the kubernetes/enhancements KEP metadata (`kep.yaml` `stage` and
//! `latest-milestone`) for the 1.36 and 1.37 graduations.
//!
//! * Fields of gates that are **off** are cleared on create, as `dropDisabledPodFields`
//!   (pkg/api/pod/util.go) does: the API server accepts the Pod without them, silently.
//! * Fields of gates that are **on** are validated (validation module); those skiff cannot act
//!   on are refused by `skiff run` with a message naming the gate ([`unsupported`]).

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Volume};

use crate::field::Path;

/// Gates off by default in 1.37 whose Pod fields `k8s-openapi` v1_37 carries. Each is alpha
/// (KEP stage `alpha`, latest milestone 1.37).
pub const OFF_IN_1_37: &[(&str, &str)] = &[
    (
        "AtomicWriteVolumeUserFields",
        "user/defaultUser of configMap, secret, downwardAPI and projected volume files",
    ),
    ("EmptyDirVolumeMode", "emptyDir.mode"),
    ("VolumeBindMountOptions", "volumeMounts[].bindMountOptions"),
    ("GRPCContainerProbeTLS", "grpc.mode of probes"),
    ("H2CContainerProbe", "httpGet.protocol of probes"),
    ("EvictionRequestAPI", "spec.evictionResponders"),
];

/// `dropDisabledPodFields(pod, nil)` for the gates of [`OFF_IN_1_37`]: on create there is no
/// old Pod using them, so every such field is cleared.
pub fn drop_disabled_pod_fields(pod: &mut Pod) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    spec.eviction_responders = None;
    for v in spec.volumes.iter_mut().flatten() {
        drop_volume_fields(v);
    }
    for c in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
    {
        drop_container_fields(c);
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        for m in c.volume_mounts.iter_mut().flatten() {
            m.bind_mount_options = None;
        }
        for p in [
            c.liveness_probe.as_mut(),
            c.readiness_probe.as_mut(),
            c.startup_probe.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            drop_probe_fields(p);
        }
    }
}

fn drop_container_fields(c: &mut Container) {
    for m in c.volume_mounts.iter_mut().flatten() {
        m.bind_mount_options = None;
    }
    for p in [
        c.liveness_probe.as_mut(),
        c.readiness_probe.as_mut(),
        c.startup_probe.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        drop_probe_fields(p);
    }
    // Lifecycle hooks' httpGet has the same type as a probe's.
    if let Some(l) = c.lifecycle.as_mut() {
        for h in [l.post_start.as_mut(), l.pre_stop.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(g) = h.http_get.as_mut() {
                g.protocol = None;
            }
        }
    }
}

fn drop_probe_fields(p: &mut k8s_openapi::api::core::v1::Probe) {
    if let Some(g) = p.grpc.as_mut() {
        g.mode = None;
    }
    if let Some(g) = p.http_get.as_mut() {
        g.protocol = None;
    }
}

fn drop_volume_fields(v: &mut Volume) {
    if let Some(e) = v.empty_dir.as_mut() {
        e.mode = None;
    }
    if let Some(cm) = v.config_map.as_mut() {
        cm.default_user = None;
        for i in cm.items.iter_mut().flatten() {
            i.user = None;
        }
    }
    if let Some(s) = v.secret.as_mut() {
        s.default_user = None;
        for i in s.items.iter_mut().flatten() {
            i.user = None;
        }
    }
    if let Some(d) = v.downward_api.as_mut() {
        d.default_user = None;
        for i in d.items.iter_mut().flatten() {
            i.user = None;
        }
    }
    if let Some(p) = v.projected.as_mut() {
        p.default_user = None;
        for src in p.sources.iter_mut().flatten() {
            if let Some(cm) = src.config_map.as_mut() {
                for i in cm.items.iter_mut().flatten() {
                    i.user = None;
                }
            }
            if let Some(s) = src.secret.as_mut() {
                for i in s.items.iter_mut().flatten() {
                    i.user = None;
                }
            }
            if let Some(d) = src.downward_api.as_mut() {
                for i in d.items.iter_mut().flatten() {
                    i.user = None;
                }
            }
            if let Some(t) = src.service_account_token.as_mut() {
                t.user = None;
            }
            if let Some(t) = src.cluster_trust_bundle.as_mut() {
                t.user = None;
            }
            if let Some(t) = src.pod_certificate.as_mut() {
                t.user = None;
            }
        }
    }
}

/// Something a valid 1.37 Pod may use (its gate is on by default) that skiff's node cannot do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    pub path: String,
    pub gate: &'static str,
    pub what: &'static str,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: skiff does not support {} yet (Kubernetes 1.37 enables it by default: feature gate {})",
            self.path, self.what, self.gate
        )
    }
}

/// Fields a valid Pod may carry in 1.37 that `skiff run` cannot carry out, each with its path.
/// Accepted by `skiff validate` (the API server accepts them); refused before anything runs.
pub fn unsupported(spec: &PodSpec) -> Vec<Unsupported> {
    let mut out = Vec::new();
    let path = Path::new("spec");
    let mut push = |p: &Path, gate: &'static str, what: &'static str| {
        out.push(Unsupported {
            path: p.to_string(),
            gate,
            what,
        })
    };
    let init = spec.init_containers.iter().flatten().enumerate();
    let app = spec.containers.iter().enumerate();
    let containers = init
        .map(|(i, c)| (path.child("initContainers").index(i), c, true))
        .chain(app.map(|(i, c)| (path.child("containers").index(i), c, false)));
    for (p, c, is_init) in containers {
        // ContainerRestartRules (beta, on since 1.35): a container-level restartPolicy other
        // than a sidecar's `Always`, and restartPolicyRules.
        let sidecar = is_init && c.restart_policy.as_deref() == Some("Always");
        if c.restart_policy.is_some() && !sidecar {
            push(
                &p.child("restartPolicy"),
                "ContainerRestartRules",
                "a container-level restartPolicy other than a sidecar's Always",
            );
        }
        if c.restart_policy_rules
            .as_ref()
            .is_some_and(|r| !r.is_empty())
        {
            push(
                &p.child("restartPolicyRules"),
                "ContainerRestartRules",
                "restartPolicyRules",
            );
        }
        // ContainerStopSignals (beta in 1.37).
        if c.lifecycle
            .as_ref()
            .is_some_and(|l| l.stop_signal.is_some())
        {
            push(
                &p.child("lifecycle").child("stopSignal"),
                "ContainerStopSignals",
                "lifecycle.stopSignal",
            );
        }
        // EnvFiles (GA in 1.37).
        for (j, e) in c.env.iter().flatten().enumerate() {
            if e.value_from
                .as_ref()
                .is_some_and(|v| v.file_key_ref.is_some())
            {
                push(
                    &p.child("env")
                        .index(j)
                        .child("valueFrom")
                        .child("fileKeyRef"),
                    "EnvFiles",
                    "environment variables from files (fileKeyRef)",
                );
            }
        }
    }
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let vp = path.child("volumes").index(i);
        // ImageVolume (GA in 1.36): skiff's host runtime has no images.
        if v.image.is_some() {
            push(
                &vp.child("image"),
                "ImageVolume",
                "image volumes (runtimeClassName host has no images)",
            );
        }
        for (j, src) in v
            .projected
            .as_ref()
            .and_then(|p| p.sources.as_ref())
            .into_iter()
            .flatten()
            .enumerate()
        {
            let sp = vp.child("projected").child("sources").index(j);
            // ClusterTrustBundleProjection (GA in 1.37): skiff has no ClusterTrustBundles.
            if src.cluster_trust_bundle.is_some() {
                push(
                    &sp.child("clusterTrustBundle"),
                    "ClusterTrustBundleProjection",
                    "clusterTrustBundle projections",
                );
            }
            // PodCertificateRequest (GA in 1.37): skiff has no certificate signers.
            if src.pod_certificate.is_some() {
                push(
                    &sp.child("podCertificate"),
                    "PodCertificateRequest",
                    "podCertificate projections",
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn fields_of_gates_off_in_1_37_are_dropped_on_create() {
        let mut p = pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "evictionResponders": [{"name": "acme.io/drain", "priority": 10000}],
                "containers": [{
                    "name": "c", "image": "i",
                    "volumeMounts": [{"name": "v", "mountPath": "/v", "bindMountOptions": ["noexec"]}],
                    "livenessProbe": {"grpc": {"port": 9000, "mode": "TLS"}},
                    "readinessProbe": {"httpGet": {"port": 80, "protocol": "H2C"}},
                }],
                "volumes": [
                    {"name": "v", "emptyDir": {"mode": 448}},
                    {"name": "s", "secret": {"secretName": "s", "defaultUser": 5, "items": [{"key": "k", "path": "k", "user": 6}]}},
                    {"name": "t", "projected": {"defaultUser": 7, "sources": [{"serviceAccountToken": {"path": "token", "user": 8}}]}},
                ],
            },
        }));
        drop_disabled_pod_fields(&mut p);
        let v = serde_json::to_value(&p).unwrap_or_default();
        let s = &v["spec"];
        assert!(s.get("evictionResponders").is_none());
        assert!(s["containers"][0]["volumeMounts"][0]
            .get("bindMountOptions")
            .is_none());
        assert!(s["containers"][0]["livenessProbe"]["grpc"]
            .get("mode")
            .is_none());
        assert!(s["containers"][0]["readinessProbe"]["httpGet"]
            .get("protocol")
            .is_none());
        assert!(s["volumes"][0]["emptyDir"].get("mode").is_none());
        assert!(s["volumes"][1]["secret"].get("defaultUser").is_none());
        assert!(s["volumes"][1]["secret"]["items"][0].get("user").is_none());
        assert!(s["volumes"][2]["projected"].get("defaultUser").is_none());
        assert!(
            s["volumes"][2]["projected"]["sources"][0]["serviceAccountToken"]
                .get("user")
                .is_none()
        );
        // What the user may set stays.
        assert_eq!(s["containers"][0]["livenessProbe"]["grpc"]["port"], 9000);
    }

    #[test]
    fn features_on_in_1_37_that_skiff_cannot_do_are_named() {
        let p = pod(serde_json::json!({
            "spec": {
                "initContainers": [
                    {"name": "sidecar", "image": "i", "restartPolicy": "Always"},
                    {"name": "setup", "image": "i", "restartPolicy": "Never"},
                ],
                "containers": [{
                    "name": "c", "image": "i", "restartPolicy": "OnFailure",
                    "restartPolicyRules": [{"action": "Restart", "exitCodes": {"operator": "In", "values": [42]}}],
                    "lifecycle": {"stopSignal": "SIGUSR1"},
                    "env": [{"name": "A", "valueFrom": {"fileKeyRef": {"volumeName": "v", "path": "e.env", "key": "A"}}}],
                }],
                "volumes": [
                    {"name": "img", "image": {"reference": "busybox"}},
                    {"name": "p", "projected": {"sources": [
                        {"clusterTrustBundle": {"name": "b", "path": "b.pem"}},
                        {"podCertificate": {"signerName": "x.io/s", "keyType": "ED25519", "credentialBundlePath": "c"}},
                    ]}},
                ],
            },
        }));
        let got: Vec<String> = unsupported(p.spec.as_ref().unwrap_or(&PodSpec::default()))
            .iter()
            .map(|u| format!("{} {}", u.path, u.gate))
            .collect();
        assert_eq!(
            got,
            vec![
                "spec.initContainers[1].restartPolicy ContainerRestartRules",
                "spec.containers[0].restartPolicy ContainerRestartRules",
                "spec.containers[0].restartPolicyRules ContainerRestartRules",
                "spec.containers[0].lifecycle.stopSignal ContainerStopSignals",
                "spec.containers[0].env[0].valueFrom.fileKeyRef EnvFiles",
                "spec.volumes[0].image ImageVolume",
                "spec.volumes[1].projected.sources[0].clusterTrustBundle ClusterTrustBundleProjection",
                "spec.volumes[1].projected.sources[1].podCertificate PodCertificateRequest",
            ]
        );
        let first = unsupported(p.spec.as_ref().unwrap_or(&PodSpec::default()));
        assert_eq!(
            first[0].to_string(),
            "spec.initContainers[1].restartPolicy: skiff does not support a container-level restartPolicy other than a sidecar's Always yet (Kubernetes 1.37 enables it by default: feature gate ContainerRestartRules)"
        );
    }
}
