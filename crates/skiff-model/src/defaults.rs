//! API-server defaulting of a Pod (SEMANTICS D1–D7), as `SetDefaults_*` in
//! pkg/apis/core/v1/defaults.go and its generated companion apply them on create.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EphemeralContainer, Lifecycle, LifecycleHandler, Pod, PodSecurityContext, PodSpec,
    Probe, ResourceRequirements, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use crate::quantity::{Quantity, MILLI};

/// `v1.SecretVolumeSourceDefaultMode` and friends: 0644.
const DEFAULT_VOLUME_MODE: i32 = 0o644;

/// Applies every default the API server applies to a Pod on create. Idempotent.
pub fn default_pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    default_pod_spec(spec);
}

fn default_pod_spec(spec: &mut PodSpec) {
    // D1
    if spec.restart_policy.as_deref().unwrap_or("").is_empty() {
        spec.restart_policy = Some("Always".into());
    }
    if spec.dns_policy.as_deref().unwrap_or("").is_empty() {
        spec.dns_policy = Some("ClusterFirst".into());
    }
    if spec.termination_grace_period_seconds.is_none() {
        spec.termination_grace_period_seconds = Some(30);
    }
    if spec.scheduler_name.as_deref().unwrap_or("").is_empty() {
        spec.scheduler_name = Some("default-scheduler".into());
    }
    if spec.security_context.is_none() {
        spec.security_context = Some(PodSecurityContext::default());
    }
    if spec.enable_service_links.is_none() {
        spec.enable_service_links = Some(true);
    }

    for c in spec.init_containers.iter_mut().flatten() {
        default_container(c);
    }
    for c in &mut spec.containers {
        default_container(c);
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        default_ephemeral_container(c);
    }

    // D5: requests default to limits, per container, on Pods only.
    for c in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
    {
        requests_from_limits(c.resources.as_mut());
    }
    // D5 at pod level (PodLevelResources: on since 1.34, GA in 1.37; `defaultPodRequests` in
    // pkg/apis/core/v1/defaults.go): when spec.resources has limits, each supported pod-level
    // resource (cpu, memory, hugepages-*) with a limit and no request gets request := limit.
    // Not done: upstream first defaults pod-level hugepages requests from the containers'
    // aggregated requests.
    if let Some(r) = spec.resources.as_mut() {
        pod_requests_from_limits(r);
    }
    // D6 for the pod's own lists.
    for list in spec.overhead.iter_mut() {
        round_resource_list(list);
    }
    if let Some(r) = spec.resources.as_mut() {
        round_requirements(r);
    }

    // D7
    if spec.host_network == Some(true) {
        for c in spec
            .init_containers
            .iter_mut()
            .flatten()
            .chain(spec.containers.iter_mut())
        {
            for p in c.ports.iter_mut().flatten() {
                if p.host_port.unwrap_or(0) == 0 {
                    p.host_port = Some(p.container_port);
                }
            }
        }
    }

    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
}

fn requests_from_limits(resources: Option<&mut ResourceRequirements>) {
    let Some(r) = resources else { return };
    let Some(limits) = r.limits.as_ref() else {
        return;
    };
    let requests = r.requests.get_or_insert_with(BTreeMap::new);
    for (name, value) in limits {
        requests
            .entry(name.clone())
            .or_insert_with(|| value.clone());
    }
}

fn pod_requests_from_limits(r: &mut ResourceRequirements) {
    let Some(limits) = r.limits.as_ref().filter(|l| !l.is_empty()) else {
        return;
    };
    let mut requests = r.requests.clone().unwrap_or_default();
    for (name, value) in limits {
        let supported = name == "cpu" || name == "memory" || name.starts_with("hugepages-");
        if supported {
            requests
                .entry(name.clone())
                .or_insert_with(|| value.clone());
        }
    }
    if !requests.is_empty() {
        r.requests = Some(requests);
    }
}

/// D2–D4 and D6 for one container (any kind).
pub fn default_container(c: &mut Container) {
    if c.image_pull_policy.as_deref().unwrap_or("").is_empty() {
        let policy = if image_tag(c.image.as_deref().unwrap_or("")) == "latest" {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.image_pull_policy = Some(policy.into());
    }
    if c.termination_message_path
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        c.termination_message_path = Some("/dev/termination-log".into());
    }
    if c.termination_message_policy
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        c.termination_message_policy = Some("File".into());
    }
    for p in c.ports.iter_mut().flatten() {
        if p.protocol.as_deref().unwrap_or("").is_empty() {
            p.protocol = Some("TCP".into());
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(lc) = c.lifecycle.as_mut() {
        default_lifecycle(lc);
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            if f.api_version.as_deref().unwrap_or("").is_empty() {
                f.api_version = Some("v1".into());
            }
        }
    }
    if let Some(r) = c.resources.as_mut() {
        round_requirements(r);
    }
}

fn default_ephemeral_container(c: &mut EphemeralContainer) {
    // Same defaults as a container; the types differ only nominally.
    let mut as_container = Container {
        image: c.image.take(),
        image_pull_policy: c.image_pull_policy.take(),
        termination_message_path: c.termination_message_path.take(),
        termination_message_policy: c.termination_message_policy.take(),
        ports: c.ports.take(),
        liveness_probe: c.liveness_probe.take(),
        readiness_probe: c.readiness_probe.take(),
        startup_probe: c.startup_probe.take(),
        lifecycle: c.lifecycle.take(),
        env: c.env.take(),
        resources: c.resources.take(),
        ..Container::default()
    };
    default_container(&mut as_container);
    c.image = as_container.image;
    c.image_pull_policy = as_container.image_pull_policy;
    c.termination_message_path = as_container.termination_message_path;
    c.termination_message_policy = as_container.termination_message_policy;
    c.ports = as_container.ports;
    c.liveness_probe = as_container.liveness_probe;
    c.readiness_probe = as_container.readiness_probe;
    c.startup_probe = as_container.startup_probe;
    c.lifecycle = as_container.lifecycle;
    c.env = as_container.env;
    c.resources = as_container.resources;
}

/// D4: zero or absent timing fields take their defaults.
fn default_probe(p: &mut Probe) {
    let set = |v: &mut Option<i32>, default: i32| {
        if v.unwrap_or(0) == 0 {
            *v = Some(default);
        }
    };
    set(&mut p.timeout_seconds, 1);
    set(&mut p.period_seconds, 10);
    set(&mut p.success_threshold, 1);
    set(&mut p.failure_threshold, 3);
    if let Some(h) = p.http_get.as_mut() {
        if h.path.as_deref().unwrap_or("").is_empty() {
            h.path = Some("/".into());
        }
        if h.scheme.as_deref().unwrap_or("").is_empty() {
            h.scheme = Some("HTTP".into());
        }
    }
    if let Some(g) = p.grpc.as_mut() {
        if g.service.is_none() {
            g.service = Some(String::new());
        }
    }
}

fn default_lifecycle(lc: &mut Lifecycle) {
    for h in [&mut lc.post_start, &mut lc.pre_stop].into_iter().flatten() {
        default_handler(h);
    }
}

fn default_handler(h: &mut LifecycleHandler) {
    if let Some(g) = h.http_get.as_mut() {
        if g.path.as_deref().unwrap_or("").is_empty() {
            g.path = Some("/".into());
        }
        if g.scheme.as_deref().unwrap_or("").is_empty() {
            g.scheme = Some("HTTP".into());
        }
    }
}

fn default_volume(v: &mut Volume) {
    let has_source = v.aws_elastic_block_store.is_some()
        || v.azure_disk.is_some()
        || v.azure_file.is_some()
        || v.cephfs.is_some()
        || v.cinder.is_some()
        || v.config_map.is_some()
        || v.csi.is_some()
        || v.downward_api.is_some()
        || v.empty_dir.is_some()
        || v.ephemeral.is_some()
        || v.fc.is_some()
        || v.flex_volume.is_some()
        || v.flocker.is_some()
        || v.gce_persistent_disk.is_some()
        || v.git_repo.is_some()
        || v.glusterfs.is_some()
        || v.host_path.is_some()
        || v.image.is_some()
        || v.iscsi.is_some()
        || v.nfs.is_some()
        || v.persistent_volume_claim.is_some()
        || v.photon_persistent_disk.is_some()
        || v.portworx_volume.is_some()
        || v.projected.is_some()
        || v.quobyte.is_some()
        || v.rbd.is_some()
        || v.scale_io.is_some()
        || v.secret.is_some()
        || v.storageos.is_some()
        || v.vsphere_volume.is_some();
    if !has_source {
        v.empty_dir = Some(Default::default());
    }
    if let Some(s) = v.secret.as_mut() {
        s.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(s) = v.config_map.as_mut() {
        s.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(s) = v.downward_api.as_mut() {
        s.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        for item in s.items.iter_mut().flatten() {
            if let Some(f) = item.field_ref.as_mut() {
                if f.api_version.as_deref().unwrap_or("").is_empty() {
                    f.api_version = Some("v1".into());
                }
            }
        }
    }
    if let Some(p) = v.projected.as_mut() {
        p.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        for src in p.sources.iter_mut().flatten() {
            if let Some(t) = src.service_account_token.as_mut() {
                t.expiration_seconds.get_or_insert(3600);
            }
            if let Some(d) = src.downward_api.as_mut() {
                for item in d.items.iter_mut().flatten() {
                    if let Some(f) = item.field_ref.as_mut() {
                        if f.api_version.as_deref().unwrap_or("").is_empty() {
                            f.api_version = Some("v1".into());
                        }
                    }
                }
            }
        }
    }
    if let Some(h) = v.host_path.as_mut() {
        h.type_.get_or_insert_with(String::new);
    }
    if let Some(img) = v.image.as_mut() {
        if img.pull_policy.as_deref().unwrap_or("").is_empty() {
            let policy = if image_tag(img.reference.as_deref().unwrap_or("")) == "latest" {
                "Always"
            } else {
                "IfNotPresent"
            };
            img.pull_policy = Some(policy.into());
        }
    }
}

fn round_requirements(r: &mut ResourceRequirements) {
    for list in [&mut r.requests, &mut r.limits].into_iter().flatten() {
        round_resource_list(list);
    }
}

/// D6: round every quantity up to milli precision. Unparseable values are left for
/// validation to report.
fn round_resource_list(list: &mut BTreeMap<String, ApiQuantity>) {
    for value in list.values_mut() {
        if let Ok(mut q) = Quantity::parse(&value.0) {
            q.round_up_to(MILLI);
            value.0 = q.to_canonical();
        }
    }
}

/// The tag the kubelet's image-name parser would see: `latest` when the reference has
/// neither tag nor digest (parsers.ParseImageName).
pub fn image_tag(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or("");
    let has_digest = image.contains('@');
    let last_segment = without_digest.rsplit('/').next().unwrap_or("");
    match last_segment.rsplit_once(':') {
        Some((_, tag)) => tag.to_string(),
        None if has_digest => String::new(),
        None => "latest".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction};

    fn pod_with(c: Container) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![c],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn spec(p: &Pod) -> &PodSpec {
        p.spec.as_ref().unwrap_or_else(|| panic!("spec"))
    }

    #[test]
    fn d1_pod_defaults() {
        let mut p = pod_with(Container::default());
        default_pod(&mut p);
        let s = spec(&p);
        assert_eq!(s.restart_policy.as_deref(), Some("Always"));
        assert_eq!(s.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(s.termination_grace_period_seconds, Some(30));
        assert_eq!(s.scheduler_name.as_deref(), Some("default-scheduler"));
        assert_eq!(s.security_context, Some(PodSecurityContext::default()));
        assert_eq!(s.enable_service_links, Some(true));
    }

    #[test]
    fn d1_explicit_values_are_kept() {
        let mut p = pod_with(Container::default());
        if let Some(s) = p.spec.as_mut() {
            s.restart_policy = Some("Never".into());
            s.termination_grace_period_seconds = Some(0);
            s.enable_service_links = Some(false);
        }
        default_pod(&mut p);
        let s = spec(&p);
        assert_eq!(s.restart_policy.as_deref(), Some("Never"));
        assert_eq!(s.termination_grace_period_seconds, Some(0));
        assert_eq!(s.enable_service_links, Some(false));
    }

    #[test]
    fn d2_container_defaults_and_pull_policy() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("localhost:5000/busybox", "Always"),
            ("localhost:5000/busybox:v2", "IfNotPresent"),
            ("nginx@sha256:0123", "IfNotPresent"),
            ("nginx:latest@sha256:0123", "Always"),
        ] {
            let mut p = pod_with(Container {
                image: Some(image.into()),
                ..Default::default()
            });
            default_pod(&mut p);
            let c = &spec(&p).containers[0];
            assert_eq!(c.image_pull_policy.as_deref(), Some(policy), "{image}");
            assert_eq!(
                c.termination_message_path.as_deref(),
                Some("/dev/termination-log")
            );
            assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
        }
    }

    #[test]
    fn d3_container_restart_policy_has_no_default() {
        let mut p = pod_with(Container::default());
        if let Some(s) = p.spec.as_mut() {
            s.init_containers = Some(vec![Container::default()]);
        }
        default_pod(&mut p);
        assert_eq!(spec(&p).containers[0].restart_policy, None);
        assert_eq!(
            spec(&p)
                .init_containers
                .as_ref()
                .map(|v| v[0].restart_policy.clone()),
            Some(None)
        );
    }

    #[test]
    fn d4_probe_defaults_replace_zero() {
        let mut p = pod_with(Container {
            liveness_probe: Some(Probe {
                http_get: Some(HTTPGetAction::default()),
                timeout_seconds: Some(0),
                period_seconds: Some(5),
                ..Default::default()
            }),
            ports: Some(vec![ContainerPort {
                container_port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        });
        default_pod(&mut p);
        let c = &spec(&p).containers[0];
        let probe = c.liveness_probe.as_ref().unwrap_or_else(|| panic!("probe"));
        assert_eq!(probe.timeout_seconds, Some(1));
        assert_eq!(probe.period_seconds, Some(5));
        assert_eq!(probe.success_threshold, Some(1));
        assert_eq!(probe.failure_threshold, Some(3));
        assert_eq!(probe.initial_delay_seconds, None);
        let h = probe.http_get.as_ref().unwrap_or_else(|| panic!("httpGet"));
        assert_eq!(h.path.as_deref(), Some("/"));
        assert_eq!(h.scheme.as_deref(), Some("HTTP"));
        assert_eq!(
            c.ports.as_ref().map(|p| p[0].protocol.clone()),
            Some(Some("TCP".into()))
        );
    }

    fn rl(pairs: &[(&str, &str)]) -> BTreeMap<String, ApiQuantity> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ApiQuantity(v.to_string())))
            .collect()
    }

    #[test]
    fn d5_requests_default_to_limits_for_all_containers() {
        let res = ResourceRequirements {
            limits: Some(rl(&[("cpu", "1"), ("memory", "1Gi")])),
            requests: Some(rl(&[("cpu", "500m")])),
            ..Default::default()
        };
        let mut p = pod_with(Container {
            resources: Some(res.clone()),
            ..Default::default()
        });
        if let Some(s) = p.spec.as_mut() {
            s.init_containers = Some(vec![Container {
                restart_policy: Some("Always".into()),
                resources: Some(res),
                ..Default::default()
            }]);
        }
        default_pod(&mut p);
        let s = spec(&p);
        let want = Some(rl(&[("cpu", "500m"), ("memory", "1Gi")]));
        assert_eq!(
            s.containers[0]
                .resources
                .as_ref()
                .map(|r| r.requests.clone()),
            Some(want.clone())
        );
        assert_eq!(
            s.init_containers
                .as_ref()
                .and_then(|v| v[0].resources.as_ref())
                .map(|r| r.requests.clone()),
            Some(want)
        );
    }

    #[test]
    fn d6_quantities_round_up_to_milli() {
        let mut p = pod_with(Container {
            resources: Some(ResourceRequirements {
                requests: Some(rl(&[("cpu", "0.0001"), ("memory", "1.5Gi")])),
                ..Default::default()
            }),
            ..Default::default()
        });
        if let Some(s) = p.spec.as_mut() {
            s.overhead = Some(rl(&[("cpu", "0.0000001")]));
        }
        default_pod(&mut p);
        let s = spec(&p);
        assert_eq!(
            s.containers[0]
                .resources
                .as_ref()
                .and_then(|r| r.requests.clone()),
            Some(rl(&[("cpu", "1m"), ("memory", "1536Mi")]))
        );
        assert_eq!(s.overhead, Some(rl(&[("cpu", "1m")])));
    }

    #[test]
    fn d7_host_network_copies_container_port_to_host_port() {
        let port = |host: Option<i32>| ContainerPort {
            container_port: 8080,
            host_port: host,
            ..Default::default()
        };
        let mut p = pod_with(Container {
            ports: Some(vec![port(None), port(Some(0)), port(Some(9090))]),
            ..Default::default()
        });
        if let Some(s) = p.spec.as_mut() {
            s.host_network = Some(true);
            s.init_containers = Some(vec![Container {
                ports: Some(vec![port(None)]),
                ..Default::default()
            }]);
        }
        default_pod(&mut p);
        let s = spec(&p);
        let hp: Vec<_> = s.containers[0]
            .ports
            .iter()
            .flatten()
            .map(|p| p.host_port)
            .collect();
        assert_eq!(hp, vec![Some(8080), Some(8080), Some(9090)]);
        assert_eq!(
            s.init_containers
                .as_ref()
                .and_then(|v| v[0].ports.as_ref())
                .map(|p| p[0].host_port),
            Some(Some(8080))
        );

        // Without hostNetwork nothing changes.
        let mut p = pod_with(Container {
            ports: Some(vec![port(None)]),
            ..Default::default()
        });
        default_pod(&mut p);
        assert_eq!(
            spec(&p).containers[0]
                .ports
                .as_ref()
                .map(|p| p[0].host_port),
            Some(None)
        );
    }

    #[test]
    fn volume_defaults() {
        let mut p = pod_with(Container::default());
        if let Some(s) = p.spec.as_mut() {
            s.volumes = Some(vec![
                Volume {
                    name: "scratch".into(),
                    ..Default::default()
                },
                Volume {
                    name: "cfg".into(),
                    config_map: Some(Default::default()),
                    ..Default::default()
                },
            ]);
        }
        default_pod(&mut p);
        let vols = spec(&p).volumes.clone().unwrap_or_default();
        assert!(vols[0].empty_dir.is_some());
        assert_eq!(
            vols[1].config_map.as_ref().and_then(|c| c.default_mode),
            Some(0o644)
        );
    }

    // D5 at pod level (PodLevelResources GA in 1.37; 1.33 dropped spec.resources on create):
    // pod-level requests default to pod-level limits for cpu, memory and hugepages only.
    #[test]
    fn d5_pod_level_requests_default_to_pod_level_limits() {
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "spec": {
                "resources": {
                    "requests": {"memory": "64Mi"},
                    "limits": {"cpu": "1", "memory": "128Mi", "example.com/gpu": "1"},
                },
                "containers": [{"name": "c", "image": "i"}],
            }
        }))
        .unwrap_or_default();
        default_pod(&mut p);
        let r = p
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.clone())
            .unwrap_or_default();
        let got: Vec<(String, String)> = r.into_iter().map(|(k, v)| (k, v.0)).collect();
        assert_eq!(
            got,
            vec![
                ("cpu".to_string(), "1".to_string()),
                ("memory".to_string(), "64Mi".to_string())
            ]
        );
    }
}
