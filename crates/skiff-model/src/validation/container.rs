//! Containers of every kind: `validateContainers`, `validateInitContainers`,
//! `validateEphemeralContainers`, `validateContainerCommon` and everything they call
//! (pkg/apis/core/validation/validation.go: read at 1.33, with the 1.34–1.37 changes of the
//! gates on by default in 1.37 applied, see `crate::gates`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerResizePolicy, EnvFromSource, EnvVar, EphemeralContainer,
    Lifecycle, LifecycleHandler, ObjectFieldSelector, Probe, ResourceFieldSelector,
    ResourceRequirements, SecurityContext, Volume, VolumeDevice, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::{self, go_string_slice};
use super::paths::validate_local_descending_path;
use super::security::{
    validate_app_armor_profile, validate_seccomp_profile_field, validate_windows_options,
};
use super::{opt, validate_dns1123_label, Ctx};
use crate::field::{BadValue, ErrorList, FieldError, Path};
use crate::quantity::Quantity;

/// Volumes that validated cleanly, by name (`vols` in `ValidatePodSpec`).
pub type VolumeMap<'a> = HashMap<&'a str, &'a Volume>;

/// `validateContainers`.
pub fn validate_containers(containers: &[Container], ctx: &Ctx<'_>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if containers.is_empty() {
        errs.push(FieldError::required(path, ""));
        return errs;
    }
    let mut all_names: HashSet<&str> = HashSet::new();
    for (i, ctr) in containers.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_container_common(ctr, ctx, &p));
        if !all_names.insert(ctr.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), ctr.name.as_str()));
        }
        errs.extend(validate_hooks_and_probes(ctr, ctx, &p));
        // V6: with ContainerRestartRules (beta, on since 1.35) an app container may carry its
        // own restartPolicy; 1.33 refused it ("may not be set for non-init containers").
        errs.extend(validate_container_restart_policy(ctr, &p));
    }
    errs.extend(check_host_port_conflicts(containers.iter(), path));
    errs
}

/// A container's own `restartPolicy` (ContainerRestartRules, on in 1.37): one of the pod's
/// three policies. Its `restartPolicyRules` are accepted here and refused by `skiff run`
/// (`gates::unsupported`), whose engine does not carry out container-level policies yet.
fn validate_container_restart_policy(ctr: &Container, p: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if let Some(policy) = &ctr.restart_policy {
        if !matches!(policy.as_str(), "Always" | "OnFailure" | "Never") {
            errs.push(FieldError::not_supported(
                &p.child("restartPolicy"),
                policy.as_str(),
                &["Always", "OnFailure", "Never"],
            ));
        }
    }
    errs
}

/// Lifecycle hooks and the three probes, validated alike for app containers and sidecars (V8).
fn validate_hooks_and_probes(ctr: &Container, ctx: &Ctx<'_>, p: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if let Some(lc) = &ctr.lifecycle {
        errs.extend(validate_lifecycle(
            lc,
            ctx.grace_period,
            &p.child("lifecycle"),
        ));
    }
    errs.extend(validate_liveness_probe(
        ctr.liveness_probe.as_ref(),
        ctx.grace_period,
        &p.child("livenessProbe"),
    ));
    errs.extend(validate_readiness_probe(
        ctr.readiness_probe.as_ref(),
        ctx.grace_period,
        &p.child("readinessProbe"),
    ));
    errs.extend(validate_startup_probe(
        ctr.startup_probe.as_ref(),
        ctx.grace_period,
        &p.child("startupProbe"),
    ));
    errs
}

/// `validateInitContainers`.
pub fn validate_init_containers(
    init: &[Container],
    regular: &[Container],
    ctx: &Ctx<'_>,
    path: &Path,
) -> ErrorList {
    const NOT_SIDECAR: &str = "may not be set for init containers without restartPolicy=Always";
    let mut errs = ErrorList::new();
    let mut all_names: HashSet<&str> = regular.iter().map(|c| c.name.as_str()).collect();
    for (i, ctr) in init.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_container_common(ctr, ctx, &p));

        // V5: with ContainerRestartRules (beta, on since 1.35) a regular init container may
        // also say Never or OnFailure; 1.33 accepted only "Always" (a sidecar).
        errs.extend(validate_container_restart_policy(ctr, &p));
        let restart_always = ctr.restart_policy.as_deref() == Some("Always");

        if all_names.contains(ctr.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), ctr.name.as_str()));
        } else if !ctr.name.is_empty() {
            all_names.insert(ctr.name.as_str());
        }

        // Upstream passes a one-element slice, so the reported index is always 0.
        errs.extend(check_host_port_conflicts(std::iter::once(ctr), path));

        if restart_always {
            errs.extend(validate_hooks_and_probes(ctr, ctx, &p));
        } else {
            for (set, field) in [
                (ctr.lifecycle.is_some(), "lifecycle"),
                (ctr.liveness_probe.is_some(), "livenessProbe"),
                (ctr.readiness_probe.is_some(), "readinessProbe"),
                (ctr.startup_probe.is_some(), "startupProbe"),
            ] {
                if set {
                    errs.push(FieldError::forbidden(&p.child(field), NOT_SIDECAR));
                }
            }
        }
        // resizePolicy on init containers: allowed (AllowSidecarResizePolicy follows
        // InPlacePodVerticalScaling: beta and on in 1.33, GA in 1.35).
    }
    errs
}

/// The ephemeral container as the `Container` it converts to upstream.
pub fn ephemeral_as_container(ec: &EphemeralContainer) -> Container {
    Container {
        args: ec.args.clone(),
        command: ec.command.clone(),
        env: ec.env.clone(),
        env_from: ec.env_from.clone(),
        image: ec.image.clone(),
        image_pull_policy: ec.image_pull_policy.clone(),
        lifecycle: ec.lifecycle.clone(),
        liveness_probe: ec.liveness_probe.clone(),
        name: ec.name.clone(),
        ports: ec.ports.clone(),
        readiness_probe: ec.readiness_probe.clone(),
        resize_policy: ec.resize_policy.clone(),
        resources: ec.resources.clone(),
        restart_policy: ec.restart_policy.clone(),
        restart_policy_rules: ec.restart_policy_rules.clone(),
        security_context: ec.security_context.clone(),
        startup_probe: ec.startup_probe.clone(),
        stdin: ec.stdin,
        stdin_once: ec.stdin_once,
        termination_message_path: ec.termination_message_path.clone(),
        termination_message_policy: ec.termination_message_policy.clone(),
        tty: ec.tty,
        volume_devices: ec.volume_devices.clone(),
        volume_mounts: ec.volume_mounts.clone(),
        working_dir: ec.working_dir.clone(),
    }
}

/// `validateEphemeralContainers`.
pub fn validate_ephemeral_containers(
    ephemeral: &[EphemeralContainer],
    containers: &[Container],
    init: &[Container],
    ctx: &Ctx<'_>,
    path: &Path,
) -> ErrorList {
    const NOT_EPHEMERAL: &str = "cannot be set for an Ephemeral Container";
    let mut errs = ErrorList::new();
    if ephemeral.is_empty() {
        return errs;
    }
    let other: HashSet<&str> = containers
        .iter()
        .chain(init.iter())
        .map(|c| c.name.as_str())
        .collect();
    let mut all: HashSet<&str> = other.clone();
    for (i, ec) in ephemeral.iter().enumerate() {
        let p = path.index(i);
        let c = ephemeral_as_container(ec);
        errs.extend(validate_container_common(&c, ctx, &p));
        errs.extend(validate_container_only_for_pod(&c, &p));
        if all.contains(ec.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), ec.name.as_str()));
        } else {
            all.insert(ec.name.as_str());
        }
        let target = opt(&ec.target_container_name);
        if !target.is_empty() && !other.contains(target) {
            errs.push(FieldError::not_found(
                &p.child("targetContainerName"),
                target,
            ));
        }
        // validateFieldAllowList, in EphemeralContainerCommon's field order.
        let resources_set = ec
            .resources
            .as_ref()
            .is_some_and(|r| r.limits.is_some() || r.requests.is_some() || r.claims.is_some());
        for (set, field) in [
            (ec.ports.is_some(), "ports"),
            (resources_set, "resources"),
            (ec.resize_policy.is_some(), "resizePolicy"),
            (ec.restart_policy.is_some(), "restartPolicy"),
            (ec.liveness_probe.is_some(), "livenessProbe"),
            (ec.readiness_probe.is_some(), "readinessProbe"),
            (ec.startup_probe.is_some(), "startupProbe"),
            (ec.lifecycle.is_some(), "lifecycle"),
        ] {
            if set {
                errs.push(FieldError::forbidden(&p.child(field), NOT_EPHEMERAL));
            }
        }
        for (j, vm) in ec.volume_mounts.iter().flatten().enumerate() {
            let vp = p.child("volumeMounts").index(j);
            if !opt(&vm.sub_path).is_empty() {
                errs.push(FieldError::forbidden(&vp.child("subPath"), NOT_EPHEMERAL));
            }
            if !opt(&vm.sub_path_expr).is_empty() {
                errs.push(FieldError::forbidden(
                    &vp.child("subPathExpr"),
                    NOT_EPHEMERAL,
                ));
            }
        }
    }
    errs
}

/// `validateContainerOnlyForPod`.
pub fn validate_container_only_for_pod(ctr: &Container, path: &Path) -> ErrorList {
    let image = opt(&ctr.image);
    if image.len() != image.trim().len() {
        vec![FieldError::invalid(
            &path.child("image"),
            image,
            "must not have leading or trailing whitespace",
        )]
    } else {
        Vec::new()
    }
}

/// `validateContainerCommon`.
pub fn validate_container_common(ctr: &Container, ctx: &Ctx<'_>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let name_path = path.child("name");
    if ctr.name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    } else {
        errs.extend(validate_dns1123_label(&ctr.name, &name_path));
    }
    if opt(&ctr.image).is_empty() {
        errs.push(FieldError::required(&path.child("image"), ""));
    }
    let tmp = opt(&ctr.termination_message_policy);
    match tmp {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(
            &path.child("terminationMessagePolicy"),
            "",
        )),
        other => errs.push(FieldError::not_supported(
            &path.child("terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    let mounts = ctr.volume_mounts.as_deref().unwrap_or_default();
    let devices = ctr.volume_devices.as_deref().unwrap_or_default();
    errs.extend(validate_container_ports(
        ctr.ports.as_deref().unwrap_or_default(),
        &path.child("ports"),
    ));
    errs.extend(validate_env(
        ctr.env.as_deref().unwrap_or_default(),
        &path.child("env"),
    ));
    errs.extend(validate_env_from(
        ctr.env_from.as_deref().unwrap_or_default(),
        &path.child("envFrom"),
    ));
    errs.extend(validate_volume_mounts(
        mounts,
        devices,
        ctx.volumes,
        ctr,
        &path.child("volumeMounts"),
    ));
    errs.extend(validate_volume_devices(
        devices,
        mounts,
        ctx.volumes,
        &path.child("volumeDevices"),
    ));
    errs.extend(validate_pull_policy(
        opt(&ctr.image_pull_policy),
        &path.child("imagePullPolicy"),
    ));
    let empty = ResourceRequirements::default();
    errs.extend(validate_resource_requirements(
        ctr.resources.as_ref().unwrap_or(&empty),
        ctx.claim_names,
        &path.child("resources"),
    ));
    errs.extend(validate_resize_policy(
        ctr.resize_policy.as_deref().unwrap_or_default(),
        &path.child("resizePolicy"),
        ctx.restart_policy,
    ));
    errs.extend(validate_security_context(
        ctr.security_context.as_ref(),
        &path.child("securityContext"),
        ctx.host_users,
    ));
    errs
}

/// `validatePullPolicy`.
pub fn validate_pull_policy(policy: &str, path: &Path) -> ErrorList {
    match policy {
        "Always" | "IfNotPresent" | "Never" => Vec::new(),
        "" => vec![FieldError::required(path, "")],
        other => vec![FieldError::not_supported(
            path,
            other,
            &["Always", "IfNotPresent", "Never"],
        )],
    }
}

/// `validateResizePolicy`.
fn validate_resize_policy(
    list: &[ContainerResizePolicy],
    path: &Path,
    pod_restart_policy: &str,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut seen = HashSet::new();
    for (i, p) in list.iter().enumerate() {
        if !seen.insert(p.resource_name.as_str()) {
            errs.push(FieldError::duplicate(
                &path.index(i),
                p.resource_name.as_str(),
            ));
        }
        match p.resource_name.as_str() {
            "cpu" | "memory" => {}
            "" => errs.push(FieldError::required(path, "")),
            other => errs.push(FieldError::not_supported(path, other, &["cpu", "memory"])),
        }
        match p.restart_policy.as_str() {
            "NotRequired" | "RestartContainer" => {}
            "" => errs.push(FieldError::required(path, "")),
            other => errs.push(FieldError::not_supported(
                path,
                other,
                &["NotRequired", "RestartContainer"],
            )),
        }
        if pod_restart_policy == "Never" && p.restart_policy != "NotRequired" {
            errs.push(FieldError::invalid(
                path,
                p.restart_policy.as_str(),
                "must be 'NotRequired' when `restartPolicy` is 'Never'",
            ));
        }
    }
    errs
}

/// `checkHostPortConflicts` / `AccumulateUniqueHostPorts`: `protocol/hostIP/hostPort` must be
/// unique among the given containers.
pub fn check_host_port_conflicts<'a>(
    containers: impl Iterator<Item = &'a Container>,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (ci, ctr) in containers.enumerate() {
        let ports_path = path.index(ci).child("ports");
        for (pi, port) in ctr.ports.iter().flatten().enumerate() {
            let host_port = port.host_port.unwrap_or(0);
            if host_port == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{}",
                opt(&port.protocol),
                opt(&port.host_ip),
                host_port
            );
            if seen.contains(&key) {
                errs.push(FieldError::duplicate(
                    &ports_path.index(pi).child("hostPort"),
                    key,
                ));
            } else {
                seen.insert(key);
            }
        }
    }
    errs
}

/// `validateContainerPorts`.
fn validate_container_ports(ports: &[ContainerPort], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut names: HashSet<&str> = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        let name = opt(&port.name);
        if !name.is_empty() {
            let msgs = names::is_valid_port_name(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.push(FieldError::invalid(&p.child("name"), name, msg));
                }
            } else if names.contains(name) {
                errs.push(FieldError::duplicate(&p.child("name"), name));
            } else {
                names.insert(name);
            }
        }
        if port.container_port == 0 {
            errs.push(FieldError::required(&p.child("containerPort"), ""));
        } else {
            for msg in names::is_valid_port_num(i64::from(port.container_port)) {
                errs.push(FieldError::invalid(
                    &p.child("containerPort"),
                    port.container_port,
                    msg,
                ));
            }
        }
        let host_port = port.host_port.unwrap_or(0);
        if host_port != 0 {
            for msg in names::is_valid_port_num(i64::from(host_port)) {
                errs.push(FieldError::invalid(&p.child("hostPort"), host_port, msg));
            }
        }
        match opt(&port.protocol) {
            "" => errs.push(FieldError::required(&p.child("protocol"), "")),
            "TCP" | "UDP" | "SCTP" => {}
            other => errs.push(FieldError::not_supported(
                &p.child("protocol"),
                other,
                &["SCTP", "TCP", "UDP"],
            )),
        }
    }
    errs
}

/// `ValidateEnv` (relaxed names: `RelaxedEnvironmentVariableValidation`, on since 1.32, GA in
/// 1.34).
fn validate_env(vars: &[EnvVar], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, ev) in vars.iter().enumerate() {
        let p = path.index(i);
        if ev.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else {
            for msg in names::is_relaxed_env_var_name(&ev.name) {
                errs.push(FieldError::invalid(&p.child("name"), ev.name.as_str(), msg));
            }
        }
        errs.extend(validate_env_var_value_from(ev, &p.child("valueFrom")));
    }
    errs
}

const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

pub const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];

const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// `validateEnvVarValueFrom`.
fn validate_env_var_value_from(ev: &EnvVar, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(vf) = &ev.value_from else {
        return errs;
    };
    let mut sources = 0;
    if let Some(fr) = &vf.field_ref {
        sources += 1;
        errs.extend(validate_object_field_selector(
            fr,
            ENV_FIELD_PATHS,
            &path.child("fieldRef"),
        ));
    }
    if let Some(rf) = &vf.resource_field_ref {
        sources += 1;
        errs.extend(validate_resource_field_selector(
            rf,
            &path.child("resourceFieldRef"),
            false,
        ));
    }
    if let Some(cm) = &vf.config_map_key_ref {
        sources += 1;
        errs.extend(validate_key_selector(
            &cm.name,
            &cm.key,
            &path.child("configMapKeyRef"),
        ));
    }
    if let Some(s) = &vf.secret_key_ref {
        sources += 1;
        errs.extend(validate_key_selector(
            &s.name,
            &s.key,
            &path.child("secretKeyRef"),
        ));
    }
    // EnvFiles (GA in 1.37): `fileKeyRef` is a source too. Its own fields are not checked
    // here (upstream's checks were not available to read); `skiff run` refuses it anyway
    // (`gates::unsupported`).
    if vf.file_key_ref.is_some() {
        sources += 1;
    }
    if sources == 0 {
        errs.push(FieldError::invalid(
            path,
            "",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ));
    } else if !opt(&ev.value).is_empty() {
        errs.push(FieldError::invalid(
            path,
            "",
            "may not be specified when `value` is not empty",
        ));
    } else if sources > 1 {
        errs.push(FieldError::invalid(
            path,
            "",
            "may not have more than one field specified at a time",
        ));
    }
    errs
}

/// `fieldpath.SplitMaybeSubscriptedPath`: `metadata.labels['k']` → (`metadata.labels`, `k`).
fn split_subscripted(field_path: &str) -> Option<(&str, &str)> {
    let s = field_path.strip_suffix("']")?;
    let (head, sub) = s.split_once("['")?;
    if head.is_empty() {
        None
    } else {
        Some((head, sub))
    }
}

/// `validateObjectFieldSelector` (with `ConvertDownwardAPIFieldLabel` as read at 1.33).
pub fn validate_object_field_selector(
    fs: &ObjectFieldSelector,
    expressions: &[&str],
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let api_version = opt(&fs.api_version);
    if api_version.is_empty() {
        errs.push(FieldError::required(&path.child("apiVersion"), ""));
        return errs;
    }
    if fs.field_path.is_empty() {
        errs.push(FieldError::required(&path.child("fieldPath"), ""));
        return errs;
    }
    let conversion_error = if api_version != "v1" {
        Some(format!("unsupported pod version: {api_version}"))
    } else if let Some((head, _)) = split_subscripted(&fs.field_path) {
        match head {
            "metadata.annotations" | "metadata.labels" => None,
            _ => Some(format!(
                "field label does not support subscript: {}",
                fs.field_path
            )),
        }
    } else {
        match fs.field_path.as_str() {
            "metadata.annotations"
            | "metadata.labels"
            | "metadata.name"
            | "metadata.namespace"
            | "metadata.uid"
            | "spec.nodeName"
            | "spec.restartPolicy"
            | "spec.serviceAccountName"
            | "spec.schedulerName"
            | "status.phase"
            | "status.hostIP"
            | "status.hostIPs"
            | "status.podIP"
            | "status.podIPs"
            | "spec.host" => None,
            other => Some(format!("field label not supported: {other}")),
        }
    };
    if let Some(err) = conversion_error {
        errs.push(FieldError::invalid(
            &path.child("fieldPath"),
            fs.field_path.as_str(),
            format!("error converting fieldPath: {err}"),
        ));
        return errs;
    }
    let internal = if fs.field_path == "spec.host" {
        "spec.nodeName"
    } else {
        fs.field_path.as_str()
    };
    if let Some((head, sub)) = split_subscripted(internal) {
        match head {
            "metadata.annotations" => {
                let lowered = sub.to_lowercase();
                for msg in names::is_qualified_name(&lowered) {
                    errs.push(FieldError::invalid(path, lowered.as_str(), msg));
                }
            }
            "metadata.labels" => {
                for msg in names::is_qualified_name(sub) {
                    errs.push(FieldError::invalid(path, sub, msg));
                }
            }
            other => errs.push(FieldError::invalid(
                path,
                other,
                "does not support subscript",
            )),
        }
    } else if !expressions.contains(&internal) {
        errs.push(FieldError::not_supported(
            &path.child("fieldPath"),
            internal,
            expressions,
        ));
    }
    errs
}

/// `validateContainerResourceFieldSelector` with the downward-API hugepages prefixes.
pub fn validate_resource_field_selector(
    fs: &ResourceFieldSelector,
    path: &Path,
    volume: bool,
) -> ErrorList {
    let mut errs = ErrorList::new();
    if volume && opt(&fs.container_name).is_empty() {
        errs.push(FieldError::required(&path.child("containerName"), ""));
    } else if fs.resource.is_empty() {
        errs.push(FieldError::required(&path.child("resource"), ""));
    } else if !RESOURCE_FIELD_PATHS.contains(&fs.resource.as_str())
        && !fs.resource.starts_with("limits.hugepages-")
        && !fs.resource.starts_with("requests.hugepages-")
    {
        errs.push(FieldError::not_supported(
            &path.child("resource"),
            fs.resource.as_str(),
            RESOURCE_FIELD_PATHS,
        ));
    }
    errs.extend(validate_resource_divisor(
        &fs.resource,
        fs.divisor.as_ref(),
        path,
    ));
    errs
}

/// `validateContainerResourceDivisor`.
fn validate_resource_divisor(name: &str, divisor: Option<&ApiQuantity>, path: &Path) -> ErrorList {
    const BYTES: &[&str] = &[
        "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
    ];
    const BYTES_LIST: &str = "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei";
    let mut errs = ErrorList::new();
    let Some(divisor) = divisor else { return errs };
    let Ok(q) = Quantity::parse(&divisor.0) else {
        return errs;
    };
    if q.is_zero() {
        return errs;
    }
    let canon = q.to_canonical();
    let dp = path.child("divisor");
    match name {
        "limits.cpu" | "requests.cpu" if !["1m", "1"].contains(&canon.as_str()) => errs.push(FieldError::invalid(
            &dp,
            name,
            "only divisor's values 1m and 1 are supported with the cpu resource",
        )),
        "limits.memory" | "requests.memory" if !BYTES.contains(&canon.as_str()) => errs.push(FieldError::invalid(
            &dp,
            name,
            format!("only divisor's values {BYTES_LIST} are supported with the memory resource"),
        )),
        "limits.ephemeral-storage" | "requests.ephemeral-storage" if !BYTES.contains(&canon.as_str()) => {
            errs.push(FieldError::invalid(
                &dp,
                name,
                format!("only divisor's values {BYTES_LIST} are supported with the local ephemeral storage resource"),
            ))
        }
        _ => {}
    }
    if (name.starts_with("requests.hugepages-") || name.starts_with("limits.hugepages-"))
        && !BYTES.contains(&canon.as_str())
    {
        errs.push(FieldError::invalid(
            &dp,
            name,
            format!("only divisor's values {BYTES_LIST} are supported with the hugepages resource"),
        ));
    }
    errs
}

/// `validateConfigMapKeySelector` / `validateSecretKeySelector` (identical upstream).
fn validate_key_selector(name: &str, key: &str, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for msg in names::name_is_dns_subdomain(name, false) {
        errs.push(FieldError::invalid(&path.child("name"), name, msg));
    }
    if key.is_empty() {
        errs.push(FieldError::required(&path.child("key"), ""));
    } else {
        for msg in names::is_config_map_key(key) {
            errs.push(FieldError::invalid(&path.child("key"), key, msg));
        }
    }
    errs
}

/// `ValidateEnvFrom`.
fn validate_env_from(vars: &[EnvFromSource], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, ev) in vars.iter().enumerate() {
        let p = path.index(i);
        let prefix = opt(&ev.prefix);
        if !prefix.is_empty() {
            for msg in names::is_relaxed_env_var_name(prefix) {
                errs.push(FieldError::invalid(&p.child("prefix"), prefix, msg));
            }
        }
        let mut sources = 0;
        if let Some(cm) = &ev.config_map_ref {
            sources += 1;
            errs.extend(validate_env_source_name(&cm.name, &p.child("configMapRef")));
        }
        if let Some(s) = &ev.secret_ref {
            sources += 1;
            errs.extend(validate_env_source_name(&s.name, &p.child("secretRef")));
        }
        if sources == 0 {
            errs.push(FieldError::invalid(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if sources > 1 {
            errs.push(FieldError::invalid(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

/// `validateConfigMapEnvSource` / `validateSecretEnvSource` (names validated as prefixes).
fn validate_env_source_name(name: &str, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if name.is_empty() {
        errs.push(FieldError::required(&path.child("name"), ""));
    } else {
        for msg in names::name_is_dns_subdomain(name, true) {
            errs.push(FieldError::invalid(&path.child("name"), name, msg));
        }
    }
    errs
}

/// `ValidateVolumeMounts`.
fn validate_volume_mounts(
    mounts: &[VolumeMount],
    devices: &[VolumeDevice],
    volumes: &VolumeMap<'_>,
    ctr: &Container,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let device_map: HashMap<&str, &str> = devices
        .iter()
        .map(|d| (d.name.as_str(), d.device_path.as_str()))
        .collect();
    let mut mount_points: HashSet<&str> = HashSet::new();
    for (i, mnt) in mounts.iter().enumerate() {
        let p = path.index(i);
        if mnt.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        }
        if !volumes.contains_key(mnt.name.as_str()) {
            errs.push(FieldError::not_found(&p.child("name"), mnt.name.as_str()));
        }
        if mnt.mount_path.is_empty() {
            errs.push(FieldError::required(&p.child("mountPath"), ""));
        }
        if !mount_points.insert(mnt.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                &p.child("mountPath"),
                mnt.mount_path.as_str(),
                "must be unique",
            ));
        }
        if device_map.contains_key(mnt.name.as_str()) {
            errs.push(FieldError::invalid(
                &p.child("name"),
                mnt.name.as_str(),
                "must not already exist in volumeDevices",
            ));
        }
        if device_map.values().any(|dp| *dp == mnt.mount_path) {
            errs.push(FieldError::invalid(
                &p.child("mountPath"),
                mnt.mount_path.as_str(),
                "must not already exist as a path in volumeDevices",
            ));
        }
        let sub_path = opt(&mnt.sub_path);
        let sub_path_expr = opt(&mnt.sub_path_expr);
        if volumes
            .get(mnt.name.as_str())
            .is_some_and(|v| v.image.is_some())
        {
            if !sub_path.is_empty() {
                errs.push(FieldError::invalid(
                    &p.child("subPath"),
                    sub_path,
                    "not allowed in image volume sources",
                ));
            }
            if !sub_path_expr.is_empty() {
                errs.push(FieldError::invalid(
                    &p.child("subPathExpr"),
                    sub_path_expr,
                    "not allowed in image volume sources",
                ));
            }
        }
        // Upstream uses the list path (no index) for these three.
        if !sub_path.is_empty() {
            errs.extend(validate_local_descending_path(
                sub_path,
                &path.child("subPath"),
            ));
        }
        if !sub_path_expr.is_empty() {
            if !sub_path.is_empty() {
                errs.push(FieldError::invalid(
                    &p.child("subPathExpr"),
                    sub_path_expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            errs.extend(validate_local_descending_path(
                sub_path_expr,
                &path.child("subPathExpr"),
            ));
        }
        if let Some(prop) = &mnt.mount_propagation {
            let pp = path.child("mountPropagation");
            if !["Bidirectional", "HostToContainer", "None"].contains(&prop.as_str()) {
                errs.push(FieldError::not_supported(
                    &pp,
                    prop.as_str(),
                    &["Bidirectional", "HostToContainer", "None"],
                ));
            }
            let privileged = ctr.security_context.as_ref().and_then(|s| s.privileged) == Some(true);
            if prop == "Bidirectional" && !privileged {
                errs.push(FieldError::forbidden(
                    &pp,
                    "Bidirectional mount propagation is available only to privileged containers",
                ));
            }
        }
        if let Some(rro) = &mnt.recursive_read_only {
            let rp = path.child("recursiveReadOnly");
            match rro.as_str() {
                "Disabled" => {}
                "Enabled" | "IfPossible" => {
                    if mnt.read_only != Some(true) {
                        errs.push(FieldError::forbidden(
                            &rp,
                            "may only be specified when readOnly is true",
                        ));
                    }
                    if mnt
                        .mount_propagation
                        .as_deref()
                        .is_some_and(|m| m != "None")
                    {
                        errs.push(FieldError::forbidden(
                            &rp,
                            "may only be specified when mountPropagation is None or not specified",
                        ));
                    }
                }
                other => errs.push(FieldError::not_supported(
                    &rp,
                    other,
                    &["Disabled", "Enabled", "IfPossible"],
                )),
            }
        }
    }
    errs
}

/// `ValidateVolumeDevices`.
fn validate_volume_devices(
    devices: &[VolumeDevice],
    mounts: &[VolumeMount],
    volumes: &VolumeMap<'_>,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let mount_map: HashMap<&str, &str> = mounts
        .iter()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    let mut device_paths: HashSet<&str> = HashSet::new();
    let mut device_names: HashSet<&str> = HashSet::new();
    for (i, dev) in devices.iter().enumerate() {
        let p = path.index(i);
        let name = dev.name.as_str();
        let dev_path = dev.device_path.as_str();
        let source = volumes.get(name);
        let is_pvc =
            source.is_some_and(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some());
        if name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        }
        if device_names.contains(name) {
            errs.push(FieldError::invalid(
                &p.child("name"),
                name,
                "must be unique",
            ));
        }
        if source.is_some() && !is_pvc {
            errs.push(FieldError::invalid(
                &p.child("name"),
                name,
                "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode",
            ));
        }
        if source.is_none() {
            errs.push(FieldError::not_found(&p.child("name"), name));
        }
        if dev_path.is_empty() {
            errs.push(FieldError::required(&p.child("devicePath"), ""));
        }
        if device_paths.contains(dev_path) {
            errs.push(FieldError::invalid(
                &p.child("devicePath"),
                dev_path,
                "must be unique",
            ));
        }
        if !dev_path.is_empty() && dev_path.split('/').any(|s| s == "..") {
            errs.push(FieldError::invalid(
                &p.child("devicePath"),
                dev_path,
                "can not contain backsteps ('..')",
            ));
        } else {
            device_paths.insert(dev_path);
        }
        if mount_map.contains_key(name) {
            errs.push(FieldError::invalid(
                &p.child("name"),
                name,
                "must not already exist in volumeMounts",
            ));
        }
        if mount_map.values().any(|mp| *mp == dev_path) {
            errs.push(FieldError::invalid(
                &p.child("devicePath"),
                dev_path,
                "must not already exist as a path in volumeMounts",
            ));
        }
        if !name.is_empty() {
            device_names.insert(name);
        }
    }
    errs
}

// ---------------------------------------------------------------------------------------
// Probes and handlers.

/// `validateLivenessProbe`.
fn validate_liveness_probe(probe: Option<&Probe>, grace: Option<i64>, path: &Path) -> ErrorList {
    let Some(probe) = probe else {
        return Vec::new();
    };
    let mut errs = validate_probe(probe, grace, path);
    let st = probe.success_threshold.unwrap_or(0);
    if st != 1 {
        errs.push(FieldError::invalid(
            &path.child("successThreshold"),
            st,
            "must be 1",
        ));
    }
    errs
}

/// `validateReadinessProbe`.
fn validate_readiness_probe(probe: Option<&Probe>, grace: Option<i64>, path: &Path) -> ErrorList {
    let Some(probe) = probe else {
        return Vec::new();
    };
    let mut errs = validate_probe(probe, grace, path);
    if let Some(tgps) = probe.termination_grace_period_seconds {
        errs.push(FieldError::invalid(
            &path.child("terminationGracePeriodSeconds"),
            tgps,
            "must not be set for readinessProbes",
        ));
    }
    errs
}

/// `validateStartupProbe`.
fn validate_startup_probe(probe: Option<&Probe>, grace: Option<i64>, path: &Path) -> ErrorList {
    validate_liveness_probe(probe, grace, path)
}

/// `ValidateNonnegativeField`.
pub fn validate_nonnegative(value: i64, path: &Path) -> ErrorList {
    if value < 0 {
        vec![FieldError::invalid(
            path,
            value,
            "must be greater than or equal to 0",
        )]
    } else {
        Vec::new()
    }
}

/// `validateProbe`.
fn validate_probe(probe: &Probe, grace: Option<i64>, path: &Path) -> ErrorList {
    let handler = Handler {
        exec: probe
            .exec
            .as_ref()
            .map(|e| e.command.as_deref().unwrap_or_default()),
        http_get: probe.http_get.as_ref(),
        tcp_socket: probe.tcp_socket.as_ref().map(|t| &t.port),
        grpc: probe.grpc.as_ref().map(|g| g.port),
        sleep: None,
    };
    let mut errs = validate_handler(&handler, grace, path);
    for (value, field) in [
        (probe.initial_delay_seconds, "initialDelaySeconds"),
        (probe.timeout_seconds, "timeoutSeconds"),
        (probe.period_seconds, "periodSeconds"),
        (probe.success_threshold, "successThreshold"),
        (probe.failure_threshold, "failureThreshold"),
    ] {
        errs.extend(validate_nonnegative(
            i64::from(value.unwrap_or(0)),
            &path.child(field),
        ));
    }
    if let Some(tgps) = probe.termination_grace_period_seconds {
        if tgps <= 0 {
            errs.push(FieldError::invalid(
                &path.child("terminationGracePeriodSeconds"),
                tgps,
                "must be greater than 0",
            ));
        }
    }
    errs
}

/// `commonHandler`: the union of probe and lifecycle handler mechanisms.
struct Handler<'a> {
    exec: Option<&'a [String]>,
    http_get: Option<&'a k8s_openapi::api::core::v1::HTTPGetAction>,
    tcp_socket: Option<&'a IntOrString>,
    grpc: Option<i32>,
    sleep: Option<i64>,
}

/// `validateLifecycle`.
fn validate_lifecycle(lc: &Lifecycle, grace: Option<i64>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (h, field) in [(&lc.post_start, "postStart"), (&lc.pre_stop, "preStop")] {
        if let Some(h) = h {
            errs.extend(validate_handler(
                &lifecycle_handler(h),
                grace,
                &path.child(field),
            ));
        }
    }
    errs
}

fn lifecycle_handler(h: &LifecycleHandler) -> Handler<'_> {
    Handler {
        exec: h
            .exec
            .as_ref()
            .map(|e| e.command.as_deref().unwrap_or_default()),
        http_get: h.http_get.as_ref(),
        tcp_socket: h.tcp_socket.as_ref().map(|t| &t.port),
        grpc: None,
        sleep: h.sleep.as_ref().map(|s| s.seconds),
    }
}

/// `validateHandler`: exactly one mechanism, checked in the order exec, httpGet, tcpSocket,
/// grpc, sleep.
fn validate_handler(h: &Handler<'_>, grace: Option<i64>, path: &Path) -> ErrorList {
    const MORE_THAN_ONE: &str = "may not specify more than 1 handler type";
    let mut errs = ErrorList::new();
    let mut count = 0;
    if let Some(command) = h.exec {
        if count > 0 {
            errs.push(FieldError::forbidden(&path.child("exec"), MORE_THAN_ONE));
        } else {
            count += 1;
            if command.is_empty() {
                errs.push(FieldError::required(
                    &path.child("exec").child("command"),
                    "",
                ));
            }
        }
    }
    if let Some(http) = h.http_get {
        let hp = path.child("httpGet");
        if count > 0 {
            errs.push(FieldError::forbidden(&hp, MORE_THAN_ONE));
        } else {
            count += 1;
            if opt(&http.path).is_empty() {
                errs.push(FieldError::required(&hp.child("path"), ""));
            }
            errs.extend(validate_port_num_or_name(&http.port, &hp.child("port")));
            let scheme = opt(&http.scheme);
            if scheme != "HTTP" && scheme != "HTTPS" {
                errs.push(FieldError::not_supported(
                    &hp.child("scheme"),
                    scheme,
                    &["HTTP", "HTTPS"],
                ));
            }
            for header in http.http_headers.iter().flatten() {
                for msg in names::is_http_header_name(&header.name) {
                    errs.push(FieldError::invalid(
                        &hp.child("httpHeaders"),
                        header.name.as_str(),
                        msg,
                    ));
                }
            }
        }
    }
    if let Some(port) = h.tcp_socket {
        let tp = path.child("tcpSocket");
        if count > 0 {
            errs.push(FieldError::forbidden(&tp, MORE_THAN_ONE));
        } else {
            count += 1;
            errs.extend(validate_port_num_or_name(port, &tp.child("port")));
        }
    }
    if let Some(port) = h.grpc {
        let gp = path.child("grpc");
        if count > 0 {
            errs.push(FieldError::forbidden(&gp, MORE_THAN_ONE));
        } else {
            count += 1;
            errs.extend(validate_port_num_or_name(
                &IntOrString::Int(port),
                &gp.child("port"),
            ));
        }
    }
    if let Some(seconds) = h.sleep {
        let sp = path.child("sleep");
        if count > 0 {
            errs.push(FieldError::forbidden(&sp, MORE_THAN_ONE));
        } else {
            count += 1;
            // PodLifecycleSleepActionAllowZero: beta and on in 1.33, GA in 1.34 (V11 unchanged).
            if let Some(gp) = grace {
                if seconds < 0 || seconds > gp {
                    errs.push(FieldError::invalid(
                        &sp,
                        seconds,
                        format!("must be non-negative and less than terminationGracePeriodSeconds ({gp})"),
                    ));
                }
            }
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
    errs
}

/// `ValidatePortNumOrName`.
pub fn validate_port_num_or_name(port: &IntOrString, path: &Path) -> ErrorList {
    match port {
        IntOrString::Int(n) => names::is_valid_port_num(i64::from(*n))
            .into_iter()
            .map(|msg| FieldError::invalid(path, *n, msg))
            .collect(),
        IntOrString::String(s) => names::is_valid_port_name(s)
            .into_iter()
            .map(|msg| FieldError::invalid(path, s.as_str(), msg))
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------
// Resources.

pub(crate) const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

pub(crate) const INTEGER_RESOURCES: &[&str] = &[
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

pub(crate) fn is_huge_page(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// `helper.IsNativeResource`.
pub(crate) fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// `helper.IsOvercommitAllowed`.
pub(crate) fn is_overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_huge_page(name)
}

/// `helper.IsExtendedResourceName`.
pub(crate) fn is_extended(name: &str) -> bool {
    if is_native(name) || name.starts_with("requests.") {
        return false;
    }
    names::is_qualified_name(&format!("requests.{name}")).is_empty()
}

pub(crate) fn is_standard_resource(name: &str) -> bool {
    STANDARD_RESOURCES.contains(&name)
        || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-")
}

/// `validateContainerResourceName` (via `validateResourceName`).
pub(crate) fn validate_container_resource_name(name: &str, path: &Path) -> ErrorList {
    let mut errs: ErrorList = names::is_qualified_name(name)
        .into_iter()
        .map(|msg| FieldError::invalid(path, name, msg))
        .collect();
    if errs.is_empty() && !name.contains('/') && !is_standard_resource(name) {
        errs.push(FieldError::invalid(
            path,
            name,
            "must be a standard resource type or fully qualified",
        ));
    }
    if !name.contains('/') {
        if !(["cpu", "memory", "ephemeral-storage"].contains(&name) || is_huge_page(name)) {
            errs.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native(name) && !is_extended(name) {
        errs.push(FieldError::invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
    errs
}

/// `ValidateResourceQuantityValue`; unparseable quantities (which the API server would refuse
/// while decoding) are reported as invalid here.
fn validate_quantity_value(
    name: &str,
    raw: &ApiQuantity,
    path: &Path,
) -> (ErrorList, Option<Quantity>) {
    let q = match Quantity::parse(&raw.0) {
        Ok(q) => q,
        Err(e) => {
            return (
                vec![FieldError::invalid(path, raw.0.as_str(), e.to_string())],
                None,
            )
        }
    };
    let mut errs = ErrorList::new();
    if q.is_negative() {
        errs.push(FieldError::invalid(
            path,
            q.to_canonical(),
            "must be greater than or equal to 0",
        ));
    }
    if (INTEGER_RESOURCES.contains(&name) || is_extended(name)) && q.milli_value() % 1000 != 0 {
        // Upstream prints the Quantity struct with %#v; the canonical text stands in for it.
        errs.push(FieldError::invalid(
            path,
            q.to_canonical(),
            "must be an integer",
        ));
    }
    (errs, Some(q))
}

/// `validateResourceQuantityHugePageValue`.
fn huge_page_value_error(name: &str, q: &Quantity) -> Option<String> {
    if !is_huge_page(name) {
        return None;
    }
    let divisible = name
        .strip_prefix("hugepages-")
        .and_then(|size| Quantity::parse(size).ok())
        .filter(|page| !page.is_negative() && !page.is_zero() && page.milli_value() % 1000 == 0)
        .is_some_and(|page| {
            let page_value = page.value();
            page_value != 0 && q.value().checked_rem(page_value) == Some(0)
        });
    if divisible {
        None
    } else {
        Some(format!(
            "{} is not positive integer multiple of {name}",
            q.to_canonical()
        ))
    }
}

/// `ValidateContainerResourceRequirements` / `validateResourceRequirements`. Go iterates the
/// maps in random order; here keys are visited sorted (limits first, then requests).
pub fn validate_resource_requirements(
    r: &ResourceRequirements,
    claim_names: &BTreeSet<String>,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let empty = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    let requests = r.requests.as_ref().unwrap_or(&empty);
    let (mut lim_cpu_mem, mut req_cpu_mem, mut lim_huge, mut req_huge) =
        (false, false, false, false);
    let mut parsed_limits: HashMap<&str, Quantity> = HashMap::new();
    for (name, raw) in limits {
        let p = lim_path.key(name);
        errs.extend(validate_container_resource_name(name, &p));
        let (qerrs, q) = validate_quantity_value(name, raw, &p);
        errs.extend(qerrs);
        if let Some(q) = q {
            if is_huge_page(name) {
                lim_huge = true;
                if let Some(msg) = huge_page_value_error(name, &q) {
                    errs.push(FieldError::invalid(&p, q.to_canonical(), msg));
                }
            }
            parsed_limits.insert(name.as_str(), q);
        }
        if name == "cpu" || name == "memory" {
            lim_cpu_mem = true;
        }
    }
    for (name, raw) in requests {
        let p = req_path.key(name);
        errs.extend(validate_container_resource_name(name, &p));
        let (qerrs, q) = validate_quantity_value(name, raw, &p);
        errs.extend(qerrs);
        if let Some(q) = &q {
            if limits.contains_key(name) {
                if let Some(limit) = parsed_limits.get(name.as_str()) {
                    if q != limit && !is_overcommit_allowed(name) {
                        errs.push(FieldError::invalid(
                            &req_path,
                            q.to_canonical(),
                            format!("must be equal to {name} limit of {}", limit.to_canonical()),
                        ));
                    } else if q > limit {
                        errs.push(FieldError::invalid(
                            &req_path,
                            q.to_canonical(),
                            format!(
                                "must be less than or equal to {name} limit of {}",
                                limit.to_canonical()
                            ),
                        ));
                    }
                }
            } else if !is_overcommit_allowed(name) {
                errs.push(FieldError::required(
                    &lim_path,
                    "Limit must be set for non overcommitable resources",
                ));
            }
            if is_huge_page(name) {
                req_huge = true;
                if let Some(msg) = huge_page_value_error(name, q) {
                    errs.push(FieldError::invalid(&p, q.to_canonical(), msg));
                }
            }
        }
        if name == "cpu" || name == "memory" {
            req_cpu_mem = true;
        }
    }
    if !lim_cpu_mem && !req_cpu_mem && (req_huge || lim_huge) {
        errs.push(FieldError::forbidden(
            path,
            "HugePages require cpu or memory",
        ));
    }
    errs.extend(validate_resource_claim_names(
        r,
        claim_names,
        &path.child("claims"),
    ));
    errs
}

/// `validateResourceClaimNames`.
fn validate_resource_claim_names(
    r: &ResourceRequirements,
    pod_claims: &BTreeSet<String>,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut seen: Vec<String> = Vec::new();
    for (i, claim) in r.claims.iter().flatten().enumerate() {
        let p = path.index(i);
        let name = claim.name.as_str();
        if name.is_empty() {
            errs.push(FieldError::required(&p, ""));
            continue;
        }
        if seen.iter().any(|s| s == name) {
            errs.push(FieldError::duplicate(&p, name));
        } else {
            let request = opt(&claim.request);
            let mut key = name.to_string();
            if !request.is_empty() {
                errs.extend(validate_dns1123_label(request, &p.child("request")));
                key = format!("{name}/{request}");
            }
            if seen.contains(&key) {
                errs.push(FieldError::duplicate(&p, key.as_str()));
            } else if request.is_empty() {
                for k in &seen {
                    if k.split_once('/').is_some_and(|(head, _)| head == name) {
                        errs.push(FieldError::duplicate(&p, name));
                    }
                }
            }
            seen.push(key);
        }
        if !pod_claims.contains(name) {
            let mut e = FieldError::not_found(&p, name);
            e.detail = if pod_claims.is_empty() {
                "must be one of the names in pod.spec.resourceClaims which is empty".to_string()
            } else {
                let list: Vec<&str> = pod_claims.iter().map(String::as_str).collect();
                format!(
                    "must be one of the names in pod.spec.resourceClaims: {}",
                    list.join(", ")
                )
            };
            errs.push(e);
        }
    }
    errs
}

// ---------------------------------------------------------------------------------------
// Security context.

/// `ValidateSecurityContext` (container). `--allow-privileged` is taken as true, as in
/// kubeadm/kind clusters: `privileged: true` is accepted.
fn validate_security_context(
    sc: Option<&SecurityContext>,
    path: &Path,
    host_users: bool,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(sc) = sc else { return errs };
    if let Some(uid) = sc.run_as_user {
        for msg in names::is_valid_id(uid) {
            errs.push(FieldError::invalid(&path.child("runAsUser"), uid, msg));
        }
    }
    if let Some(gid) = sc.run_as_group {
        for msg in names::is_valid_id(gid) {
            errs.push(FieldError::invalid(&path.child("runAsGroup"), gid, msg));
        }
    }
    if let Some(pm) = &sc.proc_mount {
        let pp = path.child("procMount");
        if pm != "Default" && pm != "Unmasked" {
            errs.push(FieldError::not_supported(
                &pp,
                pm.as_str(),
                &["Default", "Unmasked"],
            ));
        }
        if host_users && pm == "Unmasked" {
            errs.push(FieldError::invalid(
                &pp,
                pm.as_str(),
                "`hostUsers` must be false to use `Unmasked`",
            ));
        }
    }
    errs.extend(validate_seccomp_profile_field(
        sc.seccomp_profile.as_ref(),
        &path.child("seccompProfile"),
    ));
    if sc.allow_privilege_escalation == Some(false) {
        let value = BadValue::Raw(security_context_go_value(sc));
        if sc.privileged == Some(true) {
            errs.push(FieldError::invalid(
                path,
                value.clone(),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        for cap in sc
            .capabilities
            .as_ref()
            .and_then(|c| c.add.as_ref())
            .into_iter()
            .flatten()
        {
            if cap == "CAP_SYS_ADMIN" {
                errs.push(FieldError::invalid(
                    path,
                    value.clone(),
                    "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
                ));
            }
        }
    }
    errs.extend(validate_windows_options(
        sc.windows_options.as_ref(),
        &path.child("windowsOptions"),
    ));
    errs.extend(validate_app_armor_profile(
        sc.app_armor_profile.as_ref(),
        &path.child("appArmorProfile"),
    ));
    errs
}

/// Upstream prints the whole `*core.SecurityContext` with `%#v` (pointer addresses included,
/// so never reproducible); a stable stand-in naming the relevant fields is used instead.
fn security_context_go_value(sc: &SecurityContext) -> String {
    let caps = sc
        .capabilities
        .as_ref()
        .and_then(|c| c.add.as_ref())
        .map(|a| go_string_slice(a))
        .unwrap_or_else(|| "nil".to_string());
    format!(
        "core.SecurityContext{{Privileged:{}, AllowPrivilegeEscalation:false, Capabilities.Add:{caps}}}",
        sc.privileged.map_or("nil".to_string(), |p| p.to_string())
    )
}
