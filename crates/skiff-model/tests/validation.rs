//! SEMANTICS V0–V14 and the rest of `ValidatePodCreate`: every test asserts kube-apiserver's
//! exact text. Pods go through API defaulting first, as in the real pipeline.

#![recursion_limit = "512"]
#![allow(clippy::expect_used)]

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use skiff_model::defaults::default_pod;
use skiff_model::field::invalid_message;
use skiff_model::validation::validate_pod;

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn decode(v: Value) -> Pod {
    let mut pod: Pod = serde_json::from_value(v).expect("test pod decodes");
    default_pod(&mut pod);
    pod
}

/// The whole `Pod "web" is invalid: ...` text.
fn message(v: Value) -> String {
    let pod = decode(v);
    let name = pod.metadata.name.clone().unwrap_or_default();
    invalid_message("Pod", &name, &validate_pod(&pod))
}

/// One line per error.
fn errors(v: Value) -> Vec<String> {
    validate_pod(&decode(v))
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": spec})
}

fn app(extra: Value) -> Value {
    let mut c = json!({"name": "app", "image": "nginx:1.27"});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

fn one_app(extra: Value) -> Value {
    pod(json!({"containers": [app(extra)]}))
}

// ---------------------------------------------------------------------------------- V0/V1

#[test]
fn v0_multiple_errors_aggregate_in_upstream_order() {
    let p = pod(json!({
        "restartPolicy": "Sometimes",
        "containers": [{"name": "App", "image": ""}],
    }));
    assert_eq!(
        message(p),
        format!(
            "Pod \"web\" is invalid: [spec.containers[0].name: Invalid value: \"App\": {LABEL_MSG}, \
             spec.containers[0].image: Required value, \
             spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"]"
        )
    );
}

#[test]
fn v0_valid_pod_has_no_errors() {
    assert!(errors(one_app(json!({}))).is_empty());
}

#[test]
fn v1_containers_required() {
    assert_eq!(
        message(pod(json!({"containers": []}))),
        "Pod \"web\" is invalid: spec.containers: Required value"
    );
    let no_spec = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}});
    assert_eq!(
        message(no_spec),
        "Pod \"web\" is invalid: spec.containers: Required value"
    );
}

// ---------------------------------------------------------------------------------- V2

#[test]
fn v2_container_name_required() {
    let p = pod(json!({"containers": [{"name": "", "image": "busybox"}]}));
    assert_eq!(
        message(p),
        "Pod \"web\" is invalid: spec.containers[0].name: Required value"
    );
}

#[test]
fn v2_container_name_must_be_dns_label() {
    let p = pod(json!({"containers": [{"name": "my_app", "image": "busybox"}]}));
    assert_eq!(
        message(p),
        format!("Pod \"web\" is invalid: spec.containers[0].name: Invalid value: \"my_app\": {LABEL_MSG}")
    );
    let long = "a".repeat(64);
    let p = pod(json!({"containers": [{"name": long, "image": "busybox"}]}));
    assert_eq!(
        errors(p),
        vec![format!("spec.containers[0].name: Invalid value: \"{long}\": must be no more than 63 characters")]
    );
    let p = pod(json!({"containers": [{"name": "a.b", "image": "busybox"}]}));
    assert_eq!(
        errors(p),
        vec!["spec.containers[0].name: Invalid value: \"a.b\": must not contain dots".to_string()]
    );
}

#[test]
fn v2_duplicate_name_reported_on_init_container() {
    let p = pod(json!({
        "initContainers": [{"name": "app", "image": "busybox"}],
        "containers": [{"name": "app", "image": "nginx"}],
    }));
    assert_eq!(
        message(p),
        "Pod \"web\" is invalid: spec.initContainers[0].name: Duplicate value: \"app\""
    );
}

#[test]
fn v2_duplicate_name_reported_on_later_app_container() {
    let p = pod(json!({"containers": [
        {"name": "app", "image": "nginx"},
        {"name": "app", "image": "nginx"},
    ]}));
    assert_eq!(
        message(p),
        "Pod \"web\" is invalid: spec.containers[1].name: Duplicate value: \"app\""
    );
}

#[test]
fn v2_duplicate_between_init_containers() {
    let p = pod(json!({
        "initContainers": [{"name": "setup", "image": "busybox"}, {"name": "setup", "image": "busybox"}],
        "containers": [{"name": "app", "image": "nginx"}],
    }));
    assert_eq!(
        errors(p),
        vec!["spec.initContainers[1].name: Duplicate value: \"setup\"".to_string()]
    );
}

// ---------------------------------------------------------------------------------- V3

#[test]
fn v3_image_required() {
    let p = pod(json!({"containers": [{"name": "app"}]}));
    assert_eq!(
        message(p),
        "Pod \"web\" is invalid: spec.containers[0].image: Required value"
    );
}

#[test]
fn v3_image_whitespace_rejected_on_pods() {
    let p = pod(json!({
        "initContainers": [{"name": "init", "image": "busybox "}],
        "containers": [{"name": "app", "image": " nginx"}],
    }));
    assert_eq!(
        message(p),
        "Pod \"web\" is invalid: [spec.containers[0].image: Invalid value: \" nginx\": must not have leading or trailing whitespace, \
         spec.initContainers[0].image: Invalid value: \"busybox \": must not have leading or trailing whitespace]"
    );
}

// ---------------------------------------------------------------------------------- V4–V8

#[test]
fn v4_pod_restart_policy_supported_values() {
    let mut p = one_app(json!({}));
    p["spec"]["restartPolicy"] = json!("Sometimes");
    assert_eq!(
        message(p),
        "Pod \"web\" is invalid: spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
    );
}

// V5/V6 changed in 1.35 (ContainerRestartRules beta, on by default): a container-level
// restartPolicy is one of the pod's three on app and regular init containers alike. 1.33 took
// only "Always" on init containers and refused it on app containers.
#[test]
fn v5_init_container_restart_policy_one_of_three_in_1_37() {
    for policy in ["Always", "OnFailure", "Never"] {
        let p = pod(json!({
            "initContainers": [{"name": "init", "image": "busybox", "restartPolicy": policy}],
            "containers": [app(json!({}))],
        }));
        assert_eq!(errors(p), Vec::<String>::new(), "{policy}");
    }
    let p = pod(json!({
        "initContainers": [{"name": "init", "image": "busybox", "restartPolicy": "Sometimes"}],
        "containers": [app(json!({}))],
    }));
    assert_eq!(
        message(p),
        "Pod \"web\" is invalid: spec.initContainers[0].restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
    );
}

#[test]
fn v5_init_container_with_own_never_policy_is_not_a_sidecar() {
    // V7 still applies: only restartPolicy Always makes an init container a sidecar.
    let p = pod(json!({
        "initContainers": [{"name": "init", "image": "busybox", "restartPolicy": "Never",
                            "startupProbe": {"exec": {"command": ["true"]}}}],
        "containers": [app(json!({}))],
    }));
    assert_eq!(
        message(p),
        "Pod \"web\" is invalid: spec.initContainers[0].startupProbe: Forbidden: may not be set for init containers without restartPolicy=Always"
    );
}

#[test]
fn v6_app_container_restart_policy_allowed_in_1_37() {
    for policy in ["Always", "OnFailure", "Never"] {
        assert_eq!(
            errors(one_app(json!({"restartPolicy": policy}))),
            Vec::<String>::new(),
            "{policy}"
        );
    }
    assert_eq!(
        message(one_app(json!({"restartPolicy": "Sometimes"}))),
        "Pod \"web\" is invalid: spec.containers[0].restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
    );
}

#[test]
fn v7_regular_init_container_lifecycle_and_probes_forbidden() {
    let probe = json!({"exec": {"command": ["true"]}});
    let p = pod(json!({
        "initContainers": [{
            "name": "init", "image": "busybox",
            "lifecycle": {"preStop": {"exec": {"command": ["true"]}}},
            "livenessProbe": probe, "readinessProbe": probe, "startupProbe": probe,
        }],
        "containers": [app(json!({}))],
    }));
    let f = "may not be set for init containers without restartPolicy=Always";
    assert_eq!(
        message(p),
        format!(
            "Pod \"web\" is invalid: [spec.initContainers[0].lifecycle: Forbidden: {f}, \
             spec.initContainers[0].livenessProbe: Forbidden: {f}, \
             spec.initContainers[0].readinessProbe: Forbidden: {f}, \
             spec.initContainers[0].startupProbe: Forbidden: {f}]"
        )
    );
}

#[test]
fn v8_sidecar_accepts_probes_and_validates_them_like_app_containers() {
    let ok = pod(json!({
        "initContainers": [{
            "name": "proxy", "image": "envoy", "restartPolicy": "Always",
            "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
            "startupProbe": {"tcpSocket": {"port": 9901}},
            "readinessProbe": {"httpGet": {"port": "admin"}},
            "livenessProbe": {"grpc": {"port": 9902}},
            "ports": [{"name": "admin", "containerPort": 9901}],
        }],
        "containers": [app(json!({}))],
    }));
    assert!(errors(ok).is_empty());

    let bad = pod(json!({
        "initContainers": [{
            "name": "proxy", "image": "envoy", "restartPolicy": "Always",
            "livenessProbe": {"exec": {"command": ["true"]}, "successThreshold": 2},
            "readinessProbe": {},
        }],
        "containers": [app(json!({}))],
    }));
    assert_eq!(
        message(bad),
        "Pod \"web\" is invalid: [spec.initContainers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1, \
         spec.initContainers[0].readinessProbe: Required value: must specify a handler type]"
    );
}

// ---------------------------------------------------------------------------------- V9

#[test]
fn v9_liveness_and_startup_success_threshold_must_be_1() {
    let p = one_app(json!({
        "livenessProbe": {"exec": {"command": ["true"]}, "successThreshold": 3},
        "startupProbe": {"exec": {"command": ["true"]}, "successThreshold": 2},
        "readinessProbe": {"exec": {"command": ["true"]}, "successThreshold": 5},
    }));
    assert_eq!(
        errors(p),
        vec![
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 3: must be 1"
                .to_string(),
            "spec.containers[0].startupProbe.successThreshold: Invalid value: 2: must be 1"
                .to_string(),
        ]
    );
}

#[test]
fn v9_readiness_probe_termination_grace_period_forbidden() {
    let p = one_app(
        json!({"readinessProbe": {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 10}}),
    );
    assert_eq!(
        message(p),
        "Pod \"web\" is invalid: spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: 10: must not be set for readinessProbes"
    );
}

#[test]
fn v9_negative_probe_numbers() {
    let p = one_app(json!({"livenessProbe": {
        "exec": {"command": ["true"]},
        "initialDelaySeconds": -1, "timeoutSeconds": -2, "periodSeconds": -3, "failureThreshold": -4,
        "terminationGracePeriodSeconds": 0,
    }}));
    let base = "spec.containers[0].livenessProbe";
    assert_eq!(
        errors(p),
        vec![
            format!(
                "{base}.initialDelaySeconds: Invalid value: -1: must be greater than or equal to 0"
            ),
            format!("{base}.timeoutSeconds: Invalid value: -2: must be greater than or equal to 0"),
            format!("{base}.periodSeconds: Invalid value: -3: must be greater than or equal to 0"),
            format!(
                "{base}.failureThreshold: Invalid value: -4: must be greater than or equal to 0"
            ),
            format!(
                "{base}.terminationGracePeriodSeconds: Invalid value: 0: must be greater than 0"
            ),
        ]
    );
}

#[test]
fn v9_negative_success_threshold_reports_both_rules() {
    let p =
        one_app(json!({"startupProbe": {"exec": {"command": ["true"]}, "successThreshold": -1}}));
    assert_eq!(
        errors(p),
        vec![
            "spec.containers[0].startupProbe.successThreshold: Invalid value: -1: must be greater than or equal to 0"
                .to_string(),
            "spec.containers[0].startupProbe.successThreshold: Invalid value: -1: must be 1".to_string(),
        ]
    );
}

// ---------------------------------------------------------------------------------- V10

#[test]
fn v10_handler_required() {
    let p = one_app(json!({"livenessProbe": {"periodSeconds": 5}}));
    assert_eq!(
        message(p),
        "Pod \"web\" is invalid: spec.containers[0].livenessProbe: Required value: must specify a handler type"
    );
    let p = one_app(json!({"lifecycle": {"postStart": {}}}));
    assert_eq!(
        message(p),
        "Pod \"web\" is invalid: spec.containers[0].lifecycle.postStart: Required value: must specify a handler type"
    );
}

#[test]
fn v10_more_than_one_handler_reported_per_extra_kind_in_order() {
    let p = one_app(json!({"readinessProbe": {
        "exec": {"command": ["true"]},
        "httpGet": {"port": 80},
        "tcpSocket": {"port": 80},
        "grpc": {"port": 80},
    }}));
    let f = "Forbidden: may not specify more than 1 handler type";
    assert_eq!(
        message(p),
        format!(
            "Pod \"web\" is invalid: [spec.containers[0].readinessProbe.httpGet: {f}, \
             spec.containers[0].readinessProbe.tcpSocket: {f}, spec.containers[0].readinessProbe.grpc: {f}]"
        )
    );
    let p = one_app(
        json!({"lifecycle": {"preStop": {"httpGet": {"port": 80}, "sleep": {"seconds": 1}}}}),
    );
    assert_eq!(
        errors(p),
        vec![format!("spec.containers[0].lifecycle.preStop.sleep: {f}")]
    );
}

#[test]
fn v10_exec_command_ports_and_scheme() {
    let p = one_app(json!({
        "livenessProbe": {"exec": {}},
        "readinessProbe": {"httpGet": {"port": 0, "scheme": "FTP"}},
        "startupProbe": {"tcpSocket": {"port": "HTTP_1"}},
        "lifecycle": {"postStart": {"tcpSocket": {"port": 70000}}},
    }));
    assert_eq!(
        errors(p),
        vec![
            "spec.containers[0].lifecycle.postStart.tcpSocket.port: Invalid value: 70000: must be between 1 and 65535, inclusive".to_string(),
            "spec.containers[0].livenessProbe.exec.command: Required value".to_string(),
            "spec.containers[0].readinessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive".to_string(),
            "spec.containers[0].readinessProbe.httpGet.scheme: Unsupported value: \"FTP\": supported values: \"HTTP\", \"HTTPS\"".to_string(),
            "spec.containers[0].startupProbe.tcpSocket.port: Invalid value: \"HTTP_1\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
            "spec.containers[0].startupProbe.tcpSocket.port: Invalid value: \"HTTP_1\": must contain at least one letter (a-z)".to_string(),
        ]
    );
}

#[test]
fn v10_grpc_port_and_http_header_names() {
    let p = one_app(json!({
        "livenessProbe": {"grpc": {"port": -1}},
        "readinessProbe": {"httpGet": {"port": "http", "httpHeaders": [{"name": "X Bad", "value": "1"}]}},
    }));
    assert_eq!(
        errors(p),
        vec![
            "spec.containers[0].livenessProbe.grpc.port: Invalid value: -1: must be between 1 and 65535, inclusive".to_string(),
            "spec.containers[0].readinessProbe.httpGet.httpHeaders: Invalid value: \"X Bad\": a valid HTTP header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')".to_string(),
        ]
    );
}

// ---------------------------------------------------------------------------------- V11

#[test]
fn v11_sleep_must_not_exceed_grace_period() {
    let mut p = one_app(json!({"lifecycle": {"preStop": {"sleep": {"seconds": 45}}}}));
    assert_eq!(
        message(p.clone()),
        "Pod \"web\" is invalid: spec.containers[0].lifecycle.preStop.sleep: Invalid value: 45: must be non-negative and less than terminationGracePeriodSeconds (30)"
    );
    p["spec"]["terminationGracePeriodSeconds"] = json!(60);
    assert!(errors(p).is_empty());
}

#[test]
fn v11_zero_sleep_allowed_negative_rejected() {
    let p = one_app(json!({"lifecycle": {"preStop": {"sleep": {"seconds": 0}}}}));
    assert!(errors(p).is_empty());
    let p = one_app(json!({"lifecycle": {"postStart": {"sleep": {"seconds": -1}}}}));
    assert_eq!(
        errors(p),
        vec!["spec.containers[0].lifecycle.postStart.sleep: Invalid value: -1: must be non-negative and less than terminationGracePeriodSeconds (30)".to_string()]
    );
}

// ---------------------------------------------------------------------------------- V12

#[test]
fn v12_request_above_limit_path_stops_at_requests() {
    let p = one_app(json!({"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}));
    assert_eq!(
        message(p),
        "Pod \"web\" is invalid: spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"
    );
    let p = one_app(
        json!({"resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}}}),
    );
    assert_eq!(
        errors(p),
        vec!["spec.containers[0].resources.requests: Invalid value: \"1Gi\": must be less than or equal to memory limit of 512Mi".to_string()]
    );
}

#[test]
fn v12_negative_quantities() {
    let p = one_app(json!({"resources": {"limits": {"memory": "-1Mi"}}}));
    // Defaulting copies the limit into requests, so both lists report it.
    assert_eq!(
        errors(p),
        vec![
            "spec.containers[0].resources.limits[memory]: Invalid value: \"-1Mi\": must be greater than or equal to 0".to_string(),
            "spec.containers[0].resources.requests[memory]: Invalid value: \"-1Mi\": must be greater than or equal to 0".to_string(),
        ]
    );
}

#[test]
fn v12_resource_names_standard_or_fully_qualified() {
    let p = one_app(
        json!({"resources": {"requests": {"gpu": "1", "example.com/gpu": "1", "pods": "1"}}}),
    );
    assert_eq!(
        errors(p),
        vec![
            "spec.containers[0].resources.requests[example.com/gpu]: Required value: Limit must be set for non overcommitable resources".replace("requests[example.com/gpu]: Required", "limits: Required"),
            "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified".to_string(),
            "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource for containers".to_string(),
            "spec.containers[0].resources.requests[pods]: Invalid value: \"pods\": must be a standard resource for containers".to_string(),
        ]
    );
}

#[test]
fn v12_extended_resources_must_be_equal_and_integral() {
    let p = one_app(
        json!({"resources": {"requests": {"example.com/gpu": "1"}, "limits": {"example.com/gpu": "2"}}}),
    );
    assert_eq!(
        errors(p),
        vec!["spec.containers[0].resources.requests: Invalid value: \"1\": must be equal to example.com/gpu limit of 2".to_string()]
    );
}

// ---------------------------------------------------------------------------------- V13

#[test]
fn v13_active_deadline_seconds_range() {
    for bad in [0i64, -5, 2_147_483_648] {
        let mut p = one_app(json!({}));
        p["spec"]["activeDeadlineSeconds"] = json!(bad);
        assert_eq!(
            message(p),
            format!(
                "Pod \"web\" is invalid: spec.activeDeadlineSeconds: Invalid value: {bad}: must be between 1 and 2147483647, inclusive"
            )
        );
    }
    let mut p = one_app(json!({}));
    p["spec"]["activeDeadlineSeconds"] = json!(2_147_483_647i64);
    assert!(errors(p).is_empty());
}

#[test]
fn v13_termination_grace_period_required_without_defaulting() {
    let mut pod: Pod = serde_json::from_value(one_app(json!({}))).expect("decodes");
    default_pod(&mut pod);
    if let Some(spec) = pod.spec.as_mut() {
        spec.termination_grace_period_seconds = None;
    }
    let errs: Vec<String> = validate_pod(&pod).iter().map(ToString::to_string).collect();
    assert_eq!(
        errs,
        vec!["spec.terminationGracePeriodSeconds: Required value".to_string()]
    );
}

// ---------------------------------------------------------------------------------- V14

#[test]
fn v14_host_port_conflicts_across_app_containers() {
    let p = pod(json!({"containers": [
        {"name": "a", "image": "nginx", "ports": [{"containerPort": 80, "hostPort": 8080}]},
        {"name": "b", "image": "nginx", "ports": [{"containerPort": 81, "hostPort": 8080}]},
    ]}));
    assert_eq!(
        message(p),
        "Pod \"web\" is invalid: spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//8080\""
    );
}

#[test]
fn v14_init_containers_checked_each_on_its_own() {
    // Same host port in two init containers and an app container: no conflict.
    let p = pod(json!({
        "initContainers": [
            {"name": "i1", "image": "busybox", "ports": [{"containerPort": 80, "hostPort": 8080}]},
            {"name": "i2", "image": "busybox", "ports": [{"containerPort": 80, "hostPort": 8080}]},
        ],
        "containers": [{"name": "a", "image": "nginx", "ports": [{"containerPort": 80, "hostPort": 8080}]}],
    }));
    assert!(errors(p).is_empty());
    // Within one init container it conflicts; upstream always reports index 0.
    let p = pod(json!({
        "initContainers": [
            {"name": "i1", "image": "busybox"},
            {"name": "i2", "image": "busybox", "ports": [
                {"containerPort": 80, "hostPort": 9000, "protocol": "UDP"},
                {"containerPort": 81, "hostPort": 9000, "protocol": "UDP"},
            ]},
        ],
        "containers": [app(json!({}))],
    }));
    assert_eq!(
        errors(p),
        vec![
            "spec.initContainers[0].ports[1].hostPort: Duplicate value: \"UDP//9000\"".to_string()
        ]
    );
}

#[test]
fn v14_host_ip_and_protocol_distinguish_ports() {
    let p = pod(
        json!({"containers": [{"name": "a", "image": "nginx", "ports": [
            {"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"},
            {"containerPort": 81, "hostPort": 8080, "hostIP": "10.0.0.1"},
            {"containerPort": 82, "hostPort": 8080, "protocol": "UDP"},
        ]}]}),
    );
    assert!(errors(p).is_empty());
}

// ---------------------------------------------------------------------------------- metadata

#[test]
fn meta_name_required() {
    let p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {"containers": [app(json!({}))]}});
    assert_eq!(
        message(p),
        "Pod \"\" is invalid: metadata.name: Required value: name or generateName is required"
    );
}

#[test]
fn meta_name_subdomain_namespace_label() {
    let p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "Web", "namespace": "my.ns"},
        "spec": {"containers": [app(json!({}))]}});
    assert_eq!(
        errors(p),
        vec![
            format!("metadata.name: Invalid value: \"Web\": {SUBDOMAIN_MSG}"),
            "metadata.namespace: Invalid value: \"my.ns\": must not contain dots".to_string(),
        ]
    );
}

#[test]
fn meta_labels_and_annotations() {
    let p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web",
            "labels": {"app": "-bad", "example.com/ok": "x", "a/b/c": "v"},
            "annotations": {"Example.COM/Key": "fine", "bad key": "v"}},
        "spec": {"containers": [app(json!({}))]}});
    assert_eq!(
        errors(p),
        vec![
            "metadata.labels: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string(),
            "metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string(),
            "metadata.annotations: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string(),
        ]
    );
}

#[test]
fn meta_annotations_total_size() {
    let big = "x".repeat(256 * 1024);
    let p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "annotations": {"k": big}},
        "spec": {"containers": [app(json!({}))]}});
    assert_eq!(
        errors(p),
        vec!["metadata.annotations: Too long: may not be more than 262144 bytes".to_string()]
    );
}

#[test]
fn meta_generate_name_replaces_name() {
    let p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"},
        "spec": {"containers": [app(json!({}))]}});
    assert!(errors(p).is_empty());
}

// ---------------------------------------------------------------------------------- containers

#[test]
fn container_ports_rules() {
    let p = one_app(json!({"ports": [
        {"name": "http", "containerPort": 80},
        {"name": "http", "containerPort": 81},
        {"name": "8080", "containerPort": 0},
        {"containerPort": 70000, "hostPort": -1, "protocol": "ICMP"},
    ]}));
    assert_eq!(
        errors(p),
        vec![
            "spec.containers[0].ports[1].name: Duplicate value: \"http\"".to_string(),
            "spec.containers[0].ports[2].name: Invalid value: \"8080\": must contain at least one letter (a-z)".to_string(),
            "spec.containers[0].ports[2].containerPort: Required value".to_string(),
            "spec.containers[0].ports[3].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive".to_string(),
            "spec.containers[0].ports[3].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive".to_string(),
            "spec.containers[0].ports[3].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"".to_string(),
        ]
    );
}

#[test]
fn container_env_rules() {
    let p = one_app(json!({"env": [
        {"name": "A=B", "value": "x"},
        {"name": "1 weird but.ok-name", "value": "x"},
        {"name": "EMPTY", "valueFrom": {}},
        {"name": "BOTH", "value": "v", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "TWO", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}, "secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "LABELS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}},
        {"name": "BADPATH", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}},
        {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "", "key": "a/b"}}},
        {"name": "RES", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}},
    ]}));
    let e = "spec.containers[0].env";
    assert_eq!(
        errors(p),
        vec![
            format!("{e}[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='"),
            format!("{e}[2].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"),
            format!("{e}[3].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty"),
            format!("{e}[4].valueFrom: Invalid value: \"\": may not have more than one field specified at a time"),
            format!("{e}[5].valueFrom.fieldRef.fieldPath: Unsupported value: \"metadata.labels\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\""),
            format!("{e}[6].valueFrom.fieldRef.fieldPath: Invalid value: \"spec.containers\": error converting fieldPath: field label not supported: spec.containers"),
            format!("{e}[7].valueFrom.configMapKeyRef.name: Invalid value: \"\": {SUBDOMAIN_MSG}"),
            format!("{e}[7].valueFrom.configMapKeyRef.key: Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"),
            format!("{e}[8].valueFrom.resourceFieldRef.resource: Unsupported value: \"limits.gpu\": supported values: \"limits.cpu\", \"limits.ephemeral-storage\", \"limits.memory\", \"requests.cpu\", \"requests.ephemeral-storage\", \"requests.memory\""),
        ]
    );
}

#[test]
fn container_env_from_rules() {
    let p = one_app(json!({"envFrom": [
        {"prefix": "P_"},
        {"configMapRef": {"name": "cm"}, "secretRef": {"name": "s"}},
        {"secretRef": {"name": ""}},
    ]}));
    assert_eq!(
        errors(p),
        vec![
            "spec.containers[0].envFrom: Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`".to_string(),
            "spec.containers[0].envFrom: Invalid value: \"\": may not have more than one field specified at a time".to_string(),
            "spec.containers[0].envFrom[2].secretRef.name: Required value".to_string(),
        ]
    );
}

#[test]
fn container_volume_mounts_rules() {
    let p = pod(json!({
        "volumes": [{"name": "data", "emptyDir": {}}],
        "containers": [app(json!({"volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "data", "mountPath": "/data", "subPath": "../x"},
            {"name": "missing", "mountPath": ""},
            {"name": "data", "mountPath": "/p", "mountPropagation": "Bidirectional"},
            {"name": "data", "mountPath": "/q", "subPath": "a", "subPathExpr": "$(X)"},
        ]}))],
    }));
    let m = "spec.containers[0].volumeMounts";
    assert_eq!(
        errors(p),
        vec![
            format!("{m}[1].mountPath: Invalid value: \"/data\": must be unique"),
            format!("{m}.subPath: Invalid value: \"../x\": must not contain '..'"),
            format!("{m}[2].name: Not found: \"missing\""),
            format!("{m}[2].mountPath: Required value"),
            format!("{m}.mountPropagation: Forbidden: Bidirectional mount propagation is available only to privileged containers"),
            format!("{m}[4].subPathExpr: Invalid value: \"$(X)\": subPathExpr and subPath are mutually exclusive"),
        ]
    );
}

#[test]
fn container_policies_and_security_context() {
    let p = one_app(json!({
        "terminationMessagePolicy": "Sometimes",
        "imagePullPolicy": "Maybe",
        "securityContext": {"runAsUser": -1, "privileged": true, "allowPrivilegeEscalation": false, "procMount": "Unmasked"},
    }));
    assert_eq!(
        errors(p),
        vec![
            "spec.containers[0].terminationMessagePolicy: Unsupported value: \"Sometimes\": supported values: \"File\", \"FallbackToLogsOnError\"".to_string(),
            "spec.containers[0].imagePullPolicy: Unsupported value: \"Maybe\": supported values: \"Always\", \"IfNotPresent\", \"Never\"".to_string(),
            "spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and 4294967295, inclusive".to_string(),
            "spec.containers[0].securityContext.procMount: Invalid value: \"Unmasked\": `hostUsers` must be false to use `Unmasked`".to_string(),
            "spec.containers[0].securityContext: Invalid value: core.SecurityContext{Privileged:true, AllowPrivilegeEscalation:false, Capabilities.Add:nil}: cannot set `allowPrivilegeEscalation` to false and `privileged` to true".to_string(),
        ]
    );
}

// ---------------------------------------------------------------------------------- volumes

#[test]
fn volumes_rules() {
    let p = pod(json!({
        "volumes": [
            {"name": "a", "emptyDir": {}},
            {"name": "a", "emptyDir": {}},
            {"name": "B", "hostPath": {"path": "/x", "type": "Dir"}},
            {"name": "c", "emptyDir": {}, "secret": {"secretName": "s"}},
            {"name": "d", "configMap": {"name": "cm", "defaultMode": 1000, "items": [{"key": "", "path": "/abs"}]}},
            {"name": "e", "hostPath": {"path": ""}},
        ],
        "containers": [app(json!({}))],
    }));
    let v = "spec.volumes";
    assert_eq!(
        errors(p),
        vec![
            format!("{v}[1].name: Duplicate value: \"a\""),
            format!("{v}[2].hostPath.type: Unsupported value: \"Dir\": supported values: \"\", \"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \"FileOrCreate\", \"Socket\""),
            format!("{v}[2].name: Invalid value: \"B\": {LABEL_MSG}"),
            format!("{v}[3].secret: Forbidden: may not specify more than 1 volume type"),
            format!("{v}[4].configMap.defaultMode: Invalid value: 1000: must be a number between 0 and 0777 (octal), both inclusive"),
            format!("{v}[4].configMap.items[0].key: Required value"),
            format!("{v}[4].configMap.items[0].path: Invalid value: \"/abs\": must be a relative path"),
            format!("{v}[5].hostPath.path: Required value"),
        ]
    );
}

#[test]
fn volumes_missing_source_defaults_to_empty_dir() {
    let p = pod(
        json!({"volumes": [{"name": "scratch"}], "containers": [app(json!({"volumeMounts": [{"name": "scratch", "mountPath": "/s"}]}))]}),
    );
    assert!(errors(p).is_empty());
}

#[test]
fn volume_mount_of_invalid_volume_is_not_found() {
    let p = pod(json!({
        "volumes": [{"name": "cfg", "configMap": {"name": ""}}],
        "containers": [app(json!({"volumeMounts": [{"name": "cfg", "mountPath": "/c"}]}))],
    }));
    assert_eq!(
        errors(p),
        vec![
            "spec.volumes[0].configMap.name: Required value".to_string(),
            "spec.containers[0].volumeMounts[0].name: Not found: \"cfg\"".to_string(),
        ]
    );
}

// ---------------------------------------------------------------------------------- pod spec

#[test]
fn spec_dns_policy_and_config() {
    let mut p = one_app(json!({}));
    p["spec"]["dnsPolicy"] = json!("None");
    assert_eq!(message(p.clone()), "Pod \"web\" is invalid: spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None");
    p["spec"]["dnsConfig"] = json!({"nameservers": ["1.1.1.1", "bogus"], "searches": ["ok.example.", "Bad_.x"], "options": [{"value": "1"}]});
    assert_eq!(
        errors(p.clone()),
        vec![
            "spec.dnsConfig.nameservers[1]: Invalid value: \"bogus\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".to_string(),
            "spec.dnsConfig.searches[1]: Invalid value: \"Bad_.x\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*')".to_string(),
            "spec.dnsConfig.options[0]: Required value: must not be empty".to_string(),
        ]
    );
    p["spec"]["dnsPolicy"] = json!("Cluster");
    p["spec"]["dnsConfig"] = json!({});
    assert_eq!(
        errors(p),
        vec!["spec.dnsPolicy: Unsupported value: \"Cluster\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"".to_string()]
    );
}

#[test]
fn spec_hostname_node_name_and_priority_class() {
    let mut p = one_app(json!({}));
    p["spec"]["hostname"] = json!("My_Host");
    p["spec"]["subdomain"] = json!("sub");
    p["spec"]["nodeName"] = json!("node_1");
    p["spec"]["priorityClassName"] = json!("high");
    p["spec"]["runtimeClassName"] = json!("");
    assert_eq!(
        errors(p),
        vec![
            format!("spec.nodeName: Invalid value: \"node_1\": {SUBDOMAIN_MSG}"),
            format!("spec.hostname: Invalid value: \"My_Host\": {LABEL_MSG}"),
            format!("spec.runtimeClassName: Invalid value: \"\": {SUBDOMAIN_MSG}"),
        ]
    );
}

#[test]
fn spec_tolerations_host_aliases_gates() {
    let mut p = one_app(json!({}));
    p["spec"]["tolerations"] = json!([
        {"operator": "Equal", "value": "x"},
        {"key": "k", "operator": "Exists", "value": "v", "effect": "NoSchedule", "tolerationSeconds": 5},
        {"key": "k", "operator": "Greater"},
    ]);
    p["spec"]["hostAliases"] = json!([{"ip": "10.0.0.300", "hostnames": ["ok.local", "Bad"]}]);
    p["spec"]["readinessGates"] = json!([{"conditionType": "example.com/ready"}]);
    p["spec"]["schedulingGates"] = json!([{"name": "a"}, {"name": "a"}]);
    assert_eq!(
        errors(p),
        vec![
            "spec.schedulingGates[1]: Duplicate value: \"a\"".to_string(),
            "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"".to_string(),
            "spec.tolerations[1].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set".to_string(),
            "spec.tolerations[1].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'".to_string(),
            "spec.tolerations[2].operator: Unsupported value: \"Greater\": supported values: \"Equal\", \"Exists\"".to_string(),
            "spec.hostAliases[0].ip: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".to_string(),
            format!("spec.hostAliases[0].hostnames[1]: Invalid value: \"Bad\": {SUBDOMAIN_MSG}"),
        ]
    );
}

#[test]
fn spec_share_process_namespace_with_host_pid_and_os() {
    let mut p = one_app(json!({}));
    p["spec"]["shareProcessNamespace"] = json!(true);
    p["spec"]["hostPID"] = json!(true);
    p["spec"]["os"] = json!({"name": "plan9"});
    assert_eq!(
        errors(p),
        vec![
            "spec.securityContext.shareProcessNamespace: Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled".to_string(),
            "spec.os: Unsupported value: \"plan9\": supported values: \"linux\", \"windows\"".to_string(),
        ]
    );
}

#[test]
fn spec_host_network_requires_matching_host_port() {
    let mut p = one_app(json!({"ports": [{"containerPort": 80, "hostPort": 8080}]}));
    p["spec"]["hostNetwork"] = json!(true);
    assert_eq!(
        errors(p),
        vec!["spec.containers[0].ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true".to_string()]
    );
}

#[test]
fn spec_overhead_and_affinity_and_topology_spread() {
    let mut p = one_app(json!({}));
    p["spec"]["overhead"] = json!({"cpu": "-1"});
    p["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}});
    p["spec"]["topologySpreadConstraints"] =
        json!([{"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "Never"}]);
    assert_eq!(
        errors(p),
        vec![
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Required value: must have at least one node selector term".to_string(),
            "spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero".to_string(),
            "spec.topologySpreadConstraints[0].whenUnsatisfiable: Unsupported value: \"Never\": supported values: \"DoNotSchedule\", \"ScheduleAnyway\"".to_string(),
            "spec.overhead.limits[cpu]: Invalid value: \"-1\": must be greater than or equal to 0".to_string(),
        ]
    );
}

#[test]
fn spec_ephemeral_containers_forbidden_on_create() {
    let mut p = one_app(json!({}));
    p["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox"}]);
    assert_eq!(
        errors(p),
        vec!["spec.ephemeralContainers: Forbidden: cannot be set on create".to_string()]
    );
}

// ---------------------------------------------------------------------------------- no false positives

#[test]
fn rich_valid_pod_has_no_errors() {
    let p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "shop-7f9c", "namespace": "prod",
            "labels": {"app.kubernetes.io/name": "shop", "tier": "web"},
            "annotations": {"example.com/owner": "team-a", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
        },
        "spec": {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 45,
            "activeDeadlineSeconds": 3600,
            "hostname": "shop", "subdomain": "svc",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "shop", "effect": "NoExecute", "tolerationSeconds": 60}, {"operator": "Exists"}],
            "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["10.96.0.10"], "searches": ["prod.svc.cluster.local", "."], "options": [{"name": "ndots", "value": "2"}]},
            "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["foo.local"]}],
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000, "supplementalGroups": [3000],
                "seccompProfile": {"type": "RuntimeDefault"}, "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"}]},
            "os": {"name": "linux"},
            "readinessGates": [{"conditionType": "example.com/feature"}],
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50,
                "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["shop"]}]}}}]}},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": "shop"}}}],
            "volumes": [
                {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "config", "configMap": {"name": "shop-config", "items": [{"key": "app.yaml", "path": "conf/app.yaml", "mode": 0o400}]}},
                {"name": "creds", "secret": {"secretName": "shop-creds", "defaultMode": 0o440}},
                {"name": "podinfo", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu", "divisor": "1m"}}]}},
                {"name": "all", "projected": {"sources": [{"configMap": {"name": "a"}}, {"secret": {"name": "b"}}]}},
                {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}},
            ],
            "initContainers": [
                {"name": "migrate", "image": "shop/migrate:1.0", "command": ["/migrate"],
                 "env": [{"name": "DB_URL", "valueFrom": {"secretKeyRef": {"name": "shop-creds", "key": "db.url"}}}],
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "proxy", "image": "envoyproxy/envoy:v1.30", "restartPolicy": "Always",
                 "ports": [{"name": "admin", "containerPort": 9901}],
                 "startupProbe": {"httpGet": {"path": "/ready", "port": "admin"}, "failureThreshold": 30, "periodSeconds": 1},
                 "readinessProbe": {"tcpSocket": {"port": 9901}},
                 "livenessProbe": {"httpGet": {"port": 9901, "scheme": "HTTPS", "httpHeaders": [{"name": "X-Probe", "value": "1"}]}, "terminationGracePeriodSeconds": 5},
                 "lifecycle": {"preStop": {"sleep": {"seconds": 10}}},
                 "resources": {"limits": {"cpu": "200m", "memory": "128Mi"}}},
            ],
            "containers": [
                {"name": "app", "image": "shop/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                 "imagePullPolicy": "IfNotPresent",
                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"containerPort": 9090, "hostPort": 9090}],
                 "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "shop-config", "key": "LOG_LEVEL", "optional": true}}},
                    {"name": "my.dotted-name", "value": "ok"},
                 ],
                 "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "shop-config"}}],
                 "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "config", "mountPath": "/etc/shop", "readOnly": true, "recursiveReadOnly": "IfPossible"},
                    {"name": "creds", "mountPath": "/creds", "subPath": "db"},
                    {"name": "podinfo", "mountPath": "/podinfo"},
                    {"name": "all", "mountPath": "/all"},
                    {"name": "host", "mountPath": "/host-logs", "mountPropagation": "HostToContainer"},
                 ],
                 "livenessProbe": {"exec": {"command": ["/healthz"]}, "initialDelaySeconds": 5},
                 "readinessProbe": {"grpc": {"port": 8080}},
                 "lifecycle": {"postStart": {"exec": {"command": ["/warm"]}}, "preStop": {"httpGet": {"path": "/drain", "port": "http"}}},
                 "resources": {"requests": {"cpu": "250m", "memory": "256Mi", "ephemeral-storage": "1Gi"},
                               "limits": {"cpu": "1", "memory": "512Mi", "example.com/gpu": "1"}},
                 "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
                 "terminationMessagePolicy": "FallbackToLogsOnError"},
                {"name": "logger", "image": "fluent/fluent-bit", "stdin": true, "tty": true,
                 "ports": [{"containerPort": 2020, "hostPort": 2020}]},
            ],
        },
    });
    assert_eq!(errors(p), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------- robustness

#[test]
fn hostile_values_never_panic() {
    let p = pod(json!({
        "terminationGracePeriodSeconds": i64::MIN,
        "activeDeadlineSeconds": i64::MAX,
        "overhead": {"cpu": "1e10000", "": "0", "hugepages-": "1"},
        "volumes": [{"name": "", "iscsi": {"targetPortal": "", "iqn": "iqn.", "lun": i32::MIN, "initiatorName": "eui."}},
                    {"name": "p", "projected": {"sources": [{}, {"serviceAccountToken": {"path": "", "expirationSeconds": i64::MIN}}]}}],
        "containers": [{
            "name": "é", "image": "\u{0}",
            "ports": [{"containerPort": i32::MIN, "hostPort": i32::MAX, "name": "-"}],
            "resources": {"limits": {"hugepages-0": "1", "hugepages-x": "3", "hugepages-2Mi": "-3Mi"}, "requests": {"hugepages-1Ki": "1.5"}},
            "env": [{"name": "\u{7f}", "valueFrom": {"fieldRef": {"fieldPath": "']"}}}],
            "lifecycle": {"preStop": {"sleep": {"seconds": i64::MAX}}},
            "livenessProbe": {"grpc": {"port": i32::MIN}, "successThreshold": i32::MIN},
            "securityContext": {"runAsUser": i64::MIN, "windowsOptions": {"runAsUserName": "\\\\\\"}},
        }],
    }));
    let errs = errors(p);
    assert!(!errs.is_empty());
}

// HostnameOverride (beta and on in 1.35, GA in 1.37; 1.33 dropped the field on create): an
// RFC 1123 subdomain of at most 64 bytes, not with setHostnameAsFQDN or hostNetwork (KEP-4762;
// the wording of the last three is not confirmed from the 1.37 source).
#[test]
fn hostname_override_validated_in_1_37() {
    let mut ok = one_app(json!({}));
    ok["spec"]["hostnameOverride"] = json!("kdc1.example.com");
    assert_eq!(errors(ok), Vec::<String>::new());

    let mut bad = one_app(json!({}));
    bad["spec"]["hostnameOverride"] = json!("Bad_Host");
    assert_eq!(
        errors(bad),
        vec![format!(
            "spec.hostnameOverride: Invalid value: \"Bad_Host\": {SUBDOMAIN_MSG}"
        )]
    );

    let mut long = one_app(json!({}));
    long["spec"]["hostnameOverride"] = json!(format!("{}.example.com", "a".repeat(60)));
    assert_eq!(
        errors(long),
        vec!["spec.hostnameOverride: Too long: may not be more than 64 bytes".to_string()]
    );

    let mut both = one_app(json!({}));
    both["spec"]["hostnameOverride"] = json!("h.example.com");
    both["spec"]["setHostnameAsFQDN"] = json!(true);
    both["spec"]["hostNetwork"] = json!(true);
    let e = errors(both);
    assert!(
        e.contains(
            &"spec.hostnameOverride: Forbidden: may not be set when setHostnameAsFQDN is true"
                .to_string()
        ),
        "{e:?}"
    );
    assert!(
        e.contains(
            &"spec.hostnameOverride: Forbidden: may not be set when hostNetwork is true"
                .to_string()
        ),
        "{e:?}"
    );
}

// SELinuxMount GA in 1.37: seLinuxChangePolicy "MountOption" is accepted on create (1.33
// accepted only "Recursive").
#[test]
fn se_linux_change_policy_mount_option_accepted_in_1_37() {
    for policy in ["Recursive", "MountOption"] {
        let mut p = one_app(json!({}));
        p["spec"]["securityContext"] = json!({"seLinuxChangePolicy": policy});
        assert_eq!(errors(p), Vec::<String>::new(), "{policy}");
    }
    let mut p = one_app(json!({}));
    p["spec"]["securityContext"] = json!({"seLinuxChangePolicy": "Sometimes"});
    assert_eq!(
        errors(p),
        vec!["spec.securityContext.seLinuxChangePolicy: Unsupported value: \"Sometimes\": supported values: \"MountOption\", \"Recursive\"".to_string()]
    );
}
