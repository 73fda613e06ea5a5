//! Pod-level parts of `ValidatePodSpec`: security context, DNS, scheduling (affinity,
//! tolerations, topology spread, gates), host aliases, OS (pkg/apis/core/validation/validation.go
//! and apimachinery's meta/v1 validation; read at 1.33, 1.34–1.37 changes applied: see
//! `crate::gates`).

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::{
    Affinity, Container, HostAlias, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    PodAffinityTerm, PodDNSConfig, PodSpec, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::container::ephemeral_as_container;
use super::names::{self, go_string_slice};
use super::security::{
    validate_app_armor_profile, validate_seccomp_profile_field, validate_windows_options,
};
use super::{opt, validate_dns1123_subdomain, validate_qualified_name};
use crate::field::{BadValue, ErrorList, FieldError, Path};

/// `unversionedvalidation.ValidateLabelName`.
pub fn validate_label_name(name: &str, path: &Path) -> ErrorList {
    names::is_qualified_name(name)
        .into_iter()
        .map(|m| FieldError::invalid(path, name, m))
        .collect()
}

/// `unversionedvalidation.ValidateLabels`: every error is reported on the map's path.
pub fn validate_labels(labels: Option<&BTreeMap<String, String>>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (k, v) in labels.into_iter().flatten() {
        errs.extend(validate_label_name(k, path));
        for msg in names::is_valid_label_value(v) {
            errs.push(FieldError::invalid(path, v.as_str(), msg));
        }
    }
    errs
}

/// `unversionedvalidation.ValidateLabelSelector` with `AllowInvalidLabelValueInSelector: false`.
pub fn validate_label_selector(sel: Option<&LabelSelector>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(sel) = sel else { return errs };
    errs.extend(validate_labels(
        sel.match_labels.as_ref(),
        &path.child("matchLabels"),
    ));
    for (i, expr) in sel.match_expressions.iter().flatten().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = expr.values.as_deref().unwrap_or_default();
        match expr.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        &p.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        &p.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(
                &p.child("operator"),
                other,
                "not a valid selector operator",
            )),
        }
        errs.extend(validate_label_name(&expr.key, &p.child("key")));
        for (j, value) in values.iter().enumerate() {
            for msg in names::is_valid_label_value(value) {
                errs.push(FieldError::invalid(
                    &p.child("values").index(j),
                    value.as_str(),
                    msg,
                ));
            }
        }
    }
    errs
}

/// `utilsysctl.GetNamespace`: which namespace a sysctl lives in.
fn sysctl_namespace(name: &str) -> &'static str {
    let name = name.replace('/', ".");
    if name == "kernel.sem"
        || name.starts_with("kernel.shm")
        || name.starts_with("kernel.msg")
        || name.starts_with("fs.mqueue.")
    {
        "ipc"
    } else if name.starts_with("net.") {
        "net"
    } else {
        ""
    }
}

/// `IsValidSysctlName`.
fn is_valid_sysctl_name(name: &str) -> bool {
    name.len() <= 253
        && !name.is_empty()
        && name.split(['.', '/']).all(|seg| {
            let b = seg.as_bytes();
            let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
            !b.is_empty()
                && b.first().is_some_and(edge)
                && b.last().is_some_and(edge)
                && b.iter().all(|c| edge(c) || *c == b'-' || *c == b'_')
        })
}

/// `validatePodSpecSecurityContext`.
pub fn validate_pod_security_context(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(sc) = &spec.security_context else {
        return errs;
    };
    if let Some(g) = sc.fs_group {
        for msg in names::is_valid_id(g) {
            errs.push(FieldError::invalid(&path.child("fsGroup"), g, msg));
        }
    }
    if let Some(u) = sc.run_as_user {
        for msg in names::is_valid_id(u) {
            errs.push(FieldError::invalid(&path.child("runAsUser"), u, msg));
        }
    }
    if let Some(g) = sc.run_as_group {
        for msg in names::is_valid_id(g) {
            errs.push(FieldError::invalid(&path.child("runAsGroup"), g, msg));
        }
    }
    for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
        for msg in names::is_valid_id(*g) {
            errs.push(FieldError::invalid(
                &path.child("supplementalGroups").index(i),
                *g,
                msg,
            ));
        }
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        errs.push(FieldError::invalid(
            &path.child("shareProcessNamespace"),
            true,
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    if let Some(sysctls) = sc.sysctls.as_deref().filter(|s| !s.is_empty()) {
        let sp = path.child("sysctls");
        let mut seen: HashSet<&str> = HashSet::new();
        for (i, s) in sysctls.iter().enumerate() {
            let np = sp.index(i).child("name");
            if s.name.is_empty() {
                errs.push(FieldError::required(&np, ""));
            } else if !is_valid_sysctl_name(&s.name) {
                errs.push(FieldError::invalid(
                    &np,
                    s.name.as_str(),
                    "must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
                ));
            } else if seen.contains(s.name.as_str()) {
                errs.push(FieldError::duplicate(&np, s.name.as_str()));
            }
            match sysctl_namespace(&s.name) {
                "net" if spec.host_network == Some(true) => errs.push(FieldError::invalid(
                    &np,
                    s.name.as_str(),
                    "may not be specified when 'hostNetwork' is true",
                )),
                "ipc" if spec.host_ipc == Some(true) => errs.push(FieldError::invalid(
                    &np,
                    s.name.as_str(),
                    "may not be specified when 'hostIPC' is true",
                )),
                _ => {}
            }
            seen.insert(s.name.as_str());
        }
    }
    if let Some(p) = &sc.fs_group_change_policy {
        if p != "Always" && p != "OnRootMismatch" {
            errs.push(FieldError::not_supported(
                &path.child("fsGroupChangePolicy"),
                p.as_str(),
                &["Always", "OnRootMismatch"],
            ));
        }
    }
    errs.extend(validate_seccomp_profile_field(
        sc.seccomp_profile.as_ref(),
        &path.child("seccompProfile"),
    ));
    errs.extend(validate_windows_options(
        sc.windows_options.as_ref(),
        &path.child("windowsOptions"),
    ));
    errs.extend(validate_app_armor_profile(
        sc.app_armor_profile.as_ref(),
        &path.child("appArmorProfile"),
    ));
    if let Some(p) = &sc.supplemental_groups_policy {
        if p != "Merge" && p != "Strict" {
            errs.push(FieldError::not_supported(
                &path.child("supplementalGroupsPolicy"),
                p.as_str(),
                &["Merge", "Strict"],
            ));
        }
    }
    // SELinuxMount is GA in 1.37 (KEP-1710), so "MountOption" is accepted besides
    // "Recursive" (1.33, gate off: only "Recursive"). The supported list is upstream's sorted
    // set. skiff does no SELinux relabeling, so either policy changes nothing here.
    if let Some(p) = &sc.se_linux_change_policy {
        if p != "Recursive" && p != "MountOption" {
            errs.push(FieldError::not_supported(
                &path.child("seLinuxChangePolicy"),
                p.as_str(),
                &["MountOption", "Recursive"],
            ));
        }
    }
    errs
}

/// `validatePodDNSConfig` (RelaxedDNSSearchValidation: beta and on in 1.33, GA in 1.34).
pub fn validate_dns_config(cfg: Option<&PodDNSConfig>, dns_policy: &str, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let nameservers = cfg
        .and_then(|c| c.nameservers.as_deref())
        .unwrap_or_default();
    if dns_policy == "None" {
        if cfg.is_none() {
            errs.push(FieldError::required(
                path,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            ));
            return errs;
        }
        if nameservers.is_empty() {
            errs.push(FieldError::required(
                &path.child("nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            ));
            return errs;
        }
    }
    let Some(cfg) = cfg else { return errs };
    if nameservers.len() > 3 {
        errs.push(FieldError::invalid(
            &path.child("nameservers"),
            BadValue::Raw(go_string_slice(nameservers)),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        if !names::is_ip_sloppy(ns) {
            errs.push(FieldError::invalid(
                &path.child("nameservers").index(i),
                ns.as_str(),
                names::INVALID_IP_MSG,
            ));
        }
    }
    let searches = cfg.searches.as_deref().unwrap_or_default();
    if searches.len() > 32 {
        errs.push(FieldError::invalid(
            &path.child("searches"),
            BadValue::Raw(go_string_slice(searches)),
            "must not have more than 32 search paths",
        ));
    }
    let joined_len =
        searches.iter().map(String::len).sum::<usize>() + searches.len().saturating_sub(1);
    if joined_len > 2048 {
        errs.push(FieldError::invalid(
            &path.child("searches"),
            BadValue::Raw(go_string_slice(searches)),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, search) in searches.iter().enumerate() {
        if search != "." {
            let s = search.strip_suffix('.').unwrap_or(search);
            for msg in names::is_dns1123_subdomain_with_underscore(s) {
                errs.push(FieldError::invalid(
                    &path.child("searches").index(i),
                    s,
                    msg,
                ));
            }
        }
    }
    for (i, option) in cfg.options.iter().flatten().enumerate() {
        if opt(&option.name).is_empty() {
            errs.push(FieldError::required(
                &path.child("options").index(i),
                "must not be empty",
            ));
        }
    }
    errs
}

/// `validateAffinity`.
pub fn validate_affinity(affinity: Option<&Affinity>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(a) = affinity else { return errs };
    if let Some(na) = &a.node_affinity {
        let p = path.child("nodeAffinity");
        if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
            errs.extend(validate_node_selector(
                req,
                &p.child("requiredDuringSchedulingIgnoredDuringExecution"),
            ));
        }
        let pp = p.child("preferredDuringSchedulingIgnoredDuringExecution");
        for (i, term) in na
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .enumerate()
        {
            if term.weight <= 0 || term.weight > 100 {
                errs.push(FieldError::invalid(
                    &pp.index(i).child("weight"),
                    term.weight,
                    "must be in the range 1-100",
                ));
            }
            errs.extend(validate_node_selector_term(
                &term.preference,
                true,
                &pp.index(i).child("preference"),
            ));
        }
    }
    let pod_terms = [
        a.pod_affinity.as_ref().map(|pa| {
            (
                "podAffinity",
                pa.required_during_scheduling_ignored_during_execution
                    .as_deref(),
                pa.preferred_during_scheduling_ignored_during_execution
                    .as_deref(),
            )
        }),
        a.pod_anti_affinity.as_ref().map(|pa| {
            (
                "podAntiAffinity",
                pa.required_during_scheduling_ignored_during_execution
                    .as_deref(),
                pa.preferred_during_scheduling_ignored_during_execution
                    .as_deref(),
            )
        }),
    ];
    for (field, required, preferred) in pod_terms.into_iter().flatten() {
        let p = path.child(field);
        let rp = p.child("requiredDuringSchedulingIgnoredDuringExecution");
        for (i, term) in required.unwrap_or_default().iter().enumerate() {
            errs.extend(validate_pod_affinity_term(term, &rp.index(i)));
        }
        let pp = p.child("preferredDuringSchedulingIgnoredDuringExecution");
        for (i, wt) in preferred.unwrap_or_default().iter().enumerate() {
            if wt.weight <= 0 || wt.weight > 100 {
                errs.push(FieldError::invalid(
                    &pp.index(i).child("weight"),
                    wt.weight,
                    "must be in the range 1-100",
                ));
            }
            errs.extend(validate_pod_affinity_term(
                &wt.pod_affinity_term,
                &pp.index(i).child("podAffinityTerm"),
            ));
        }
    }
    errs
}

/// `ValidateNodeSelector`.
fn validate_node_selector(ns: &NodeSelector, path: &Path) -> ErrorList {
    let tp = path.child("nodeSelectorTerms");
    if ns.node_selector_terms.is_empty() {
        return vec![FieldError::required(
            &tp,
            "must have at least one node selector term",
        )];
    }
    ns.node_selector_terms
        .iter()
        .enumerate()
        .flat_map(|(i, t)| validate_node_selector_term(t, false, &tp.index(i)))
        .collect()
}

/// `ValidateNodeSelectorTerm`.
fn validate_node_selector_term(
    term: &NodeSelectorTerm,
    allow_invalid_values: bool,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    for (j, req) in term.match_expressions.iter().flatten().enumerate() {
        errs.extend(validate_node_selector_requirement(
            req,
            allow_invalid_values,
            &path.child("matchExpressions").index(j),
        ));
    }
    for (j, req) in term.match_fields.iter().flatten().enumerate() {
        let p = path.child("matchFields").index(j);
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" => {
                if values.len() != 1 {
                    errs.push(FieldError::required(
                        &p.child("values"),
                        "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(
                &p.child("operator"),
                other,
                "not a valid selector operator",
            )),
        }
        if req.key != "metadata.name" {
            errs.push(FieldError::invalid(
                &p.child("key"),
                req.key.as_str(),
                "not a valid field selector key",
            ));
        } else {
            for (k, v) in values.iter().enumerate() {
                for msg in names::name_is_dns_subdomain(v, false) {
                    errs.push(FieldError::invalid(
                        &p.child("values").index(k),
                        v.as_str(),
                        msg,
                    ));
                }
            }
        }
    }
    errs
}

/// `ValidateNodeSelectorRequirement`.
fn validate_node_selector_requirement(
    rq: &NodeSelectorRequirement,
    allow_invalid_values: bool,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let values = rq.values.as_deref().unwrap_or_default();
    match rq.operator.as_str() {
        "In" | "NotIn" => {
            if values.is_empty() {
                errs.push(FieldError::required(
                    &path.child("values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                errs.push(FieldError::forbidden(
                    &path.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        "Gt" | "Lt" => {
            if values.len() != 1 {
                errs.push(FieldError::required(
                    &path.child("values"),
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                ));
            }
        }
        other => errs.push(FieldError::invalid(
            &path.child("operator"),
            other,
            "not a valid selector operator",
        )),
    }
    errs.extend(validate_label_name(&rq.key, &path.child("key")));
    if !allow_invalid_values {
        for (i, v) in values.iter().enumerate() {
            for msg in names::is_valid_label_value(v) {
                errs.push(FieldError::invalid(
                    &path.child("values").index(i),
                    v.as_str(),
                    msg,
                ));
            }
        }
    }
    errs
}

/// `validatePodAffinityTerm`.
fn validate_pod_affinity_term(term: &PodAffinityTerm, path: &Path) -> ErrorList {
    let mut errs =
        validate_label_selector(term.label_selector.as_ref(), &path.child("labelSelector"));
    errs.extend(validate_label_selector(
        term.namespace_selector.as_ref(),
        &path.child("namespaceSelector"),
    ));
    for ns in term.namespaces.iter().flatten() {
        for msg in names::name_is_dns_label(ns, false) {
            errs.push(FieldError::invalid(
                &path.child("namespace"),
                ns.as_str(),
                msg,
            ));
        }
    }
    errs.extend(validate_match_label_keys_and_mismatch(term, path));
    if term.topology_key.is_empty() {
        errs.push(FieldError::required(
            &path.child("topologyKey"),
            "can not be empty",
        ));
    }
    errs.extend(validate_label_name(
        &term.topology_key,
        &path.child("topologyKey"),
    ));
    errs
}

/// `validateMatchLabelKeysAndMismatchLabelKeys`.
fn validate_match_label_keys_and_mismatch(term: &PodAffinityTerm, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let selector = term.label_selector.as_ref();
    let match_keys = term.match_label_keys.as_deref().unwrap_or_default();
    let mismatch_keys = term.mismatch_label_keys.as_deref().unwrap_or_default();
    for (field, keys) in [
        ("matchLabelKeys", match_keys),
        ("mismatchLabelKeys", mismatch_keys),
    ] {
        if keys.is_empty() {
            continue;
        }
        let p = path.child(field);
        if selector.is_none() {
            errs.push(FieldError::forbidden(
                &p,
                "must not be specified when labelSelector is not set",
            ));
            continue;
        }
        for (i, k) in keys.iter().enumerate() {
            errs.extend(validate_label_name(k, &p.index(i)));
        }
    }
    if let Some(sel) = selector {
        let key_index: HashMap<&str, usize> = match_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let mut selector_keys: HashSet<&str> = sel
            .match_labels
            .iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        for expr in sel.match_expressions.iter().flatten() {
            if let Some(i) = key_index.get(expr.key.as_str()) {
                if selector_keys.contains(expr.key.as_str()) {
                    errs.push(FieldError::invalid(
                        &path.index(*i),
                        expr.key.as_str(),
                        "exists in both matchLabelKeys and labelSelector",
                    ));
                }
            }
            selector_keys.insert(expr.key.as_str());
        }
    }
    for (i, k) in match_keys.iter().enumerate() {
        if mismatch_keys.contains(k) {
            errs.push(FieldError::invalid(
                &path.child("matchLabelKeys").index(i),
                k.as_str(),
                "exists in both matchLabelKeys and mismatchLabelKeys",
            ));
        }
    }
    errs
}

/// `ValidateTolerations`.
pub fn validate_tolerations(tolerations: &[Toleration], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, t) in tolerations.iter().enumerate() {
        let p = path.index(i);
        let key = opt(&t.key);
        let op = opt(&t.operator);
        let effect = opt(&t.effect);
        let value = opt(&t.value);
        if !key.is_empty() {
            errs.extend(validate_label_name(key, &p.child("key")));
        }
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                &p.child("operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                &p.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = names::is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(
                        &p.child("operator"),
                        value,
                        msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        &p.child("operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                &p.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect)
        {
            errs.push(FieldError::not_supported(
                &p.child("effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
    errs
}

/// `validateTopologySpreadConstraints`.
pub fn validate_topology_spread_constraints(
    constraints: &[TopologySpreadConstraint],
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, c) in constraints.iter().enumerate() {
        let p = path.index(i);
        if c.max_skew <= 0 {
            errs.push(FieldError::invalid(
                &p.child("maxSkew"),
                c.max_skew,
                "must be greater than zero",
            ));
        }
        if c.topology_key.is_empty() {
            errs.push(FieldError::required(
                &p.child("topologyKey"),
                "can not be empty",
            ));
        }
        if c.when_unsatisfiable != "DoNotSchedule" && c.when_unsatisfiable != "ScheduleAnyway" {
            errs.push(FieldError::not_supported(
                &p.child("whenUnsatisfiable"),
                c.when_unsatisfiable.as_str(),
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        let rest = constraints.get(i + 1..).unwrap_or_default();
        if rest.iter().any(|r| {
            r.topology_key == c.topology_key && r.when_unsatisfiable == c.when_unsatisfiable
        }) {
            errs.push(FieldError::duplicate(
                &p.child("{topologyKey, whenUnsatisfiable}"),
                format!("{{{}, {}}}", c.topology_key, c.when_unsatisfiable),
            ));
        }
        if let Some(md) = c.min_domains {
            let mp = p.child("minDomains");
            if md <= 0 {
                errs.push(FieldError::invalid(&mp, md, "must be greater than zero"));
            }
            if c.when_unsatisfiable != "DoNotSchedule" {
                errs.push(FieldError::invalid(
                    &mp,
                    md,
                    format!(
                        "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {}",
                        c.when_unsatisfiable
                    ),
                ));
            }
        }
        for (policy, field) in [
            (&c.node_affinity_policy, "nodeAffinityPolicy"),
            (&c.node_taints_policy, "nodeTaintsPolicy"),
        ] {
            if let Some(pol) = policy {
                if pol != "Honor" && pol != "Ignore" {
                    errs.push(FieldError::not_supported(
                        &p.child(field),
                        pol.as_str(),
                        &["Honor", "Ignore"],
                    ));
                }
            }
        }
        let keys = c.match_label_keys.as_deref().unwrap_or_default();
        if !keys.is_empty() {
            let kp = p.child("matchLabelKeys");
            let mut selector_keys: HashSet<&str> = HashSet::new();
            match &c.label_selector {
                Some(sel) => {
                    selector_keys
                        .extend(sel.match_labels.iter().flatten().map(|(k, _)| k.as_str()));
                    selector_keys.extend(
                        sel.match_expressions
                            .iter()
                            .flatten()
                            .map(|e| e.key.as_str()),
                    );
                }
                None => errs.push(FieldError::forbidden(
                    &kp,
                    "must not be specified when labelSelector is not set",
                )),
            }
            for (j, k) in keys.iter().enumerate() {
                errs.extend(validate_label_name(k, &kp.index(j)));
                if selector_keys.contains(k.as_str()) {
                    errs.push(FieldError::invalid(
                        &kp.index(j),
                        k.as_str(),
                        "exists in both matchLabelKeys and labelSelector",
                    ));
                }
            }
        }
        errs.extend(validate_label_selector(
            c.label_selector.as_ref(),
            &p.child("labelSelector"),
        ));
    }
    errs
}

/// `ValidateHostAliases`.
pub fn validate_host_aliases(aliases: &[HostAlias], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, alias) in aliases.iter().enumerate() {
        let p = path.index(i);
        if !names::is_ip_sloppy(&alias.ip) {
            errs.push(FieldError::invalid(
                &p.child("ip"),
                alias.ip.as_str(),
                names::INVALID_IP_MSG,
            ));
        }
        for (j, host) in alias.hostnames.iter().flatten().enumerate() {
            errs.extend(validate_dns1123_subdomain(
                host,
                &p.child("hostnames").index(j),
            ));
        }
    }
    errs
}

/// `validateReadinessGates` and `validateSchedulingGates`.
pub fn validate_gates(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, g) in spec.readiness_gates.iter().flatten().enumerate() {
        errs.extend(validate_qualified_name(
            &g.condition_type,
            &path.child("readinessGates").index(i).child("conditionType"),
        ));
    }
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, g) in spec.scheduling_gates.iter().flatten().enumerate() {
        let p = path.child("schedulingGates").index(i);
        errs.extend(validate_qualified_name(&g.name, &p));
        if !seen.insert(g.name.as_str()) {
            errs.push(FieldError::duplicate(&p, g.name.as_str()));
        }
    }
    errs
}

/// Every container of the pod with its path, in `VisitContainersWithPath` order.
pub fn visit_containers(spec: &PodSpec, path: &Path) -> Vec<(Container, Path)> {
    let mut out = Vec::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        out.push((c.clone(), path.child("initContainers").index(i)));
    }
    for (i, c) in spec.containers.iter().enumerate() {
        out.push((c.clone(), path.child("containers").index(i)));
    }
    for (i, c) in spec.ephemeral_containers.iter().flatten().enumerate() {
        out.push((
            ephemeral_as_container(c),
            path.child("ephemeralContainers").index(i),
        ));
    }
    out
}

/// `validateWindowsHostProcessPod`. `--allow-privileged` is taken as true.
pub fn validate_windows_host_process(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let pod_hp = spec
        .security_context
        .as_ref()
        .and_then(|s| s.windows_options.as_ref())
        .and_then(|w| w.host_process);
    let containers = visit_containers(spec, path);
    let mut hp_count = 0;
    for (c, cp) in &containers {
        let c_hp = c
            .security_context
            .as_ref()
            .and_then(|s| s.windows_options.as_ref())
            .and_then(|w| w.host_process);
        if let (Some(p), Some(cv)) = (pod_hp, c_hp) {
            if p != cv {
                errs.push(FieldError::invalid(
                    &cp.child("securityContext")
                        .child("windowsOptions")
                        .child("hostProcess"),
                    cv,
                    format!(
                        "pod hostProcess value must be identical if both are specified, was {p}"
                    ),
                ));
            }
        }
        if c_hp == Some(true) || (c_hp.is_none() && pod_hp == Some(true)) {
            hp_count += 1;
        }
    }
    if hp_count > 0 {
        if hp_count != containers.len() {
            errs.push(FieldError::invalid(
                path,
                "",
                "If pod contains any hostProcess containers then all containers must be HostProcess containers",
            ));
        }
        let host_network = spec.host_network == Some(true);
        if !host_network {
            errs.push(FieldError::invalid(
                &path.child("hostNetwork"),
                host_network,
                "hostNetwork must be true if pod contains any hostProcess containers",
            ));
        }
    }
    errs
}

/// `validateHostUsers`.
pub fn validate_host_users(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if spec.host_users != Some(false) {
        return errs;
    }
    const MSG: &str = "when `pod.Spec.HostUsers` is false";
    if spec.host_network == Some(true) {
        errs.push(FieldError::forbidden(&path.child("hostNetwork"), MSG));
    }
    if spec.host_pid == Some(true) {
        errs.push(FieldError::forbidden(&path.child("HostPID"), MSG));
    }
    if spec.host_ipc == Some(true) {
        errs.push(FieldError::forbidden(&path.child("HostIPC"), MSG));
    }
    errs
}

/// `validateOS` followed by `validateLinux` / `validateWindows`.
pub fn validate_os(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(os) = &spec.os else { return errs };
    let op = path.child("os");
    if os.name.is_empty() {
        errs.push(FieldError::required(&op.child("name"), "cannot be empty"));
        return errs;
    }
    if os.name != "linux" && os.name != "windows" {
        errs.push(FieldError::not_supported(
            &op,
            os.name.as_str(),
            &["linux", "windows"],
        ));
        return errs;
    }
    let sc = spec.security_context.as_ref();
    let containers = visit_containers(spec, path);
    if os.name == "linux" {
        const MSG: &str = "windows options cannot be set for a linux pod";
        if sc.is_some_and(|s| s.windows_options.is_some()) {
            errs.push(FieldError::forbidden(
                &path.child("securityContext").child("windowsOptions"),
                MSG,
            ));
        }
        for (c, cp) in &containers {
            if c.security_context
                .as_ref()
                .is_some_and(|s| s.windows_options.is_some())
            {
                errs.push(FieldError::forbidden(
                    &cp.child("securityContext").child("windowsOptions"),
                    MSG,
                ));
            }
        }
        return errs;
    }
    const MSG: &str = "cannot be set for a windows pod";
    let psc = path.child("securityContext");
    if let Some(s) = sc {
        for (set, p) in [
            (s.app_armor_profile.is_some(), psc.child("appArmorProfile")),
            (s.se_linux_options.is_some(), psc.child("seLinuxOptions")),
            (spec.host_users.is_some(), path.child("hostUsers")),
            (spec.host_pid == Some(true), path.child("hostPID")),
            (spec.host_ipc == Some(true), path.child("hostIPC")),
            (s.seccomp_profile.is_some(), psc.child("seccompProfile")),
            (s.fs_group.is_some(), psc.child("fsGroup")),
            (
                s.fs_group_change_policy.is_some(),
                psc.child("fsGroupChangePolicy"),
            ),
            (
                s.sysctls.as_ref().is_some_and(|v| !v.is_empty()),
                psc.child("sysctls"),
            ),
            (
                spec.share_process_namespace.is_some(),
                path.child("shareProcessNamespace"),
            ),
            (s.run_as_user.is_some(), psc.child("runAsUser")),
            (s.run_as_group.is_some(), psc.child("runAsGroup")),
            (
                s.supplemental_groups.is_some(),
                psc.child("supplementalGroups"),
            ),
            (
                s.supplemental_groups_policy.is_some(),
                psc.child("supplementalGroupsPolicy"),
            ),
            (
                s.se_linux_change_policy.is_some(),
                psc.child("seLinuxChangePolicy"),
            ),
        ] {
            if set {
                errs.push(FieldError::forbidden(&p, MSG));
            }
        }
    }
    for (c, cp) in &containers {
        let Some(s) = &c.security_context else {
            continue;
        };
        let p = cp.child("securityContext");
        for (set, field) in [
            (s.app_armor_profile.is_some(), "appArmorProfile"),
            (s.se_linux_options.is_some(), "seLinuxOptions"),
            (s.seccomp_profile.is_some(), "seccompProfile"),
            (s.capabilities.is_some(), "capabilities"),
            (
                s.read_only_root_filesystem.is_some(),
                "readOnlyRootFilesystem",
            ),
            (s.privileged.is_some(), "privileged"),
            (
                s.allow_privilege_escalation.is_some(),
                "allowPrivilegeEscalation",
            ),
            (s.proc_mount.is_some(), "procMount"),
            (s.run_as_user.is_some(), "runAsUser"),
            (s.run_as_group.is_some(), "runAsGroup"),
        ] {
            if set {
                errs.push(FieldError::forbidden(&p.child(field), MSG));
            }
        }
    }
    errs
}
