//! apps/v1 Deployment and ReplicaSet: defaulting (`SetDefaults_Deployment`,
//! `SetDefaults_ReplicaSet` in pkg/apis/apps/v1/defaults.go) and validation
//! (`ValidateDeployment`, `ValidateReplicaSet` and their updates in
//! pkg/apis/apps/validation/validation.go, plus the strategies' immutable selector).
//!
//! Bad values are printed as kube-apiserver 1.33 prints them (Go's `%#v`), like the rest of
//! skiff's validation; servers from 1.34 print structured values as JSON instead.
//! `metadata` update rules (`ValidateObjectMetaUpdate`) are the registry's, shared by all kinds.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, ReplicaSetSpec,
    RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::field::{go_quote, BadValue, ErrorList, FieldError, Path};
use crate::validation::{meta, validate_label_selector};
use crate::workloads::template::{default_pod_template, validate_pod_template};

/// Defaults a Deployment (replicas 1, RollingUpdate 25%/25%, revisionHistoryLimit 10,
/// progressDeadlineSeconds 600, the template's pod spec). Idempotent.
pub fn default_deployment(d: &mut Deployment) {
    let spec = &mut d.spec;
    if spec.replicas.is_none() {
        spec.replicas = Some(1);
    }
    let strategy = spec
        .strategy
        .get_or_insert_with(DeploymentStrategy::default);
    if strategy.type_.as_deref().unwrap_or("").is_empty() {
        strategy.type_ = Some("RollingUpdate".into());
    }
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        if ru.max_unavailable.is_none() {
            ru.max_unavailable = Some(IntOrString::String("25%".into()));
        }
        if ru.max_surge.is_none() {
            ru.max_surge = Some(IntOrString::String("25%".into()));
        }
    }
    if spec.revision_history_limit.is_none() {
        spec.revision_history_limit = Some(10);
    }
    if spec.progress_deadline_seconds.is_none() {
        spec.progress_deadline_seconds = Some(600);
    }
    default_pod_template(&mut spec.template);
}

/// `ValidateDeployment`.
pub fn validate_deployment(d: &Deployment) -> ErrorList {
    let mut errs = meta::validate_object_meta(&d.metadata, &Path::new("metadata"));
    errs.extend(validate_deployment_spec(&d.spec, &Path::new("spec")));
    errs
}

/// `ValidateDeploymentUpdate` plus the strategy's rule that apps/v1 selectors are immutable.
pub fn validate_deployment_update(new: &Deployment, old: &Deployment) -> ErrorList {
    let new_spec = &new.spec;
    let old_spec = &old.spec;
    let mut errs = validate_deployment_spec(new_spec, &Path::new("spec"));
    errs.extend(immutable_selector(
        given_selector(&new_spec.selector),
        given_selector(&old_spec.selector),
    ));
    errs
}

/// Defaults a ReplicaSet (replicas 1, the template's pod spec). Idempotent.
pub fn default_replica_set(rs: &mut ReplicaSet) {
    let spec = &mut rs.spec;
    if spec.replicas.is_none() {
        spec.replicas = Some(1);
    }
    if let Some(template) = spec.template.as_mut() {
        default_pod_template(template);
    }
}

/// `ValidateReplicaSet`.
pub fn validate_replica_set(rs: &ReplicaSet) -> ErrorList {
    let mut errs = meta::validate_object_meta(&rs.metadata, &Path::new("metadata"));
    errs.extend(validate_replica_set_spec(&rs.spec, &Path::new("spec")));
    errs
}

/// `ValidateReplicaSetUpdate` plus the strategy's immutable selector.
pub fn validate_replica_set_update(new: &ReplicaSet, old: &ReplicaSet) -> ErrorList {
    let new_spec = &new.spec;
    let old_spec = &old.spec;
    let mut errs = validate_replica_set_spec(new_spec, &Path::new("spec"));
    errs.extend(immutable_selector(
        given_selector(&new_spec.selector),
        given_selector(&old_spec.selector),
    ));
    errs
}

/// Whether `labels` satisfy `selector` (`metav1.LabelSelectorAsSelector(s).Matches`): an empty
/// selector matches everything; an expression with an unknown operator matches nothing.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_ok
        && selector.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// Whether `LabelSelectorAsSelector` would accept the selector (known operators, values where
/// the operator needs them).
fn selector_convertible(selector: &LabelSelector) -> bool {
    selector.match_expressions.iter().flatten().all(|e| {
        let n = e.values.as_ref().map_or(0, Vec::len);
        match e.operator.as_str() {
            "In" | "NotIn" => n > 0,
            "Exists" | "DoesNotExist" => n == 0,
            _ => false,
        }
    })
}

/// The selector as the API server sees it: k8s-openapi decodes a missing `selector` as the
/// default value, so one with neither field present counts as missing (Go's nil) — the common
/// mistake — and `selector: {}` is reported as missing too; `matchLabels: {}` is empty.
fn given_selector(sel: &LabelSelector) -> Option<&LabelSelector> {
    (sel.match_labels.is_some() || sel.match_expressions.is_some()).then_some(sel)
}

fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// `ValidateDeploymentSpec`.
fn validate_deployment_spec(spec: &DeploymentSpec, path: &Path) -> ErrorList {
    let replicas = spec.replicas.unwrap_or(0);
    let mut errs = nonnegative(i64::from(replicas), &path.child("replicas"));
    errs.extend(selector_and_template(
        given_selector(&spec.selector),
        Some(&spec.template),
        replicas,
        path,
    ));
    errs.extend(validate_strategy(
        &spec.strategy.clone().unwrap_or_default(),
        &path.child("strategy"),
    ));
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    errs.extend(nonnegative(
        i64::from(min_ready),
        &path.child("minReadySeconds"),
    ));
    if let Some(limit) = spec.revision_history_limit {
        errs.extend(nonnegative(
            i64::from(limit),
            &path.child("revisionHistoryLimit"),
        ));
    }
    if let Some(deadline) = spec.progress_deadline_seconds {
        let p = path.child("progressDeadlineSeconds");
        errs.extend(nonnegative(i64::from(deadline), &p));
        if deadline <= min_ready {
            errs.push(FieldError::invalid(
                &p,
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

/// `ValidateReplicaSetSpec`.
fn validate_replica_set_spec(spec: &ReplicaSetSpec, path: &Path) -> ErrorList {
    let replicas = spec.replicas.unwrap_or(0);
    let mut errs = nonnegative(i64::from(replicas), &path.child("replicas"));
    errs.extend(nonnegative(
        i64::from(spec.min_ready_seconds.unwrap_or(0)),
        &path.child("minReadySeconds"),
    ));
    errs.extend(selector_and_template(
        given_selector(&spec.selector),
        spec.template.as_ref(),
        replicas,
        path,
    ));
    errs
}

/// The selector rules shared by both specs, then `ValidatePodTemplateSpecForReplicaSet`.
fn selector_and_template(
    selector: Option<&LabelSelector>,
    template: Option<&PodTemplateSpec>,
    replicas: i32,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let sel_path = path.child("selector");
    match selector {
        None => errs.push(FieldError::required(&sel_path, "")),
        Some(sel) => {
            errs.extend(validate_label_selector(Some(sel), &sel_path));
            if selector_is_empty(sel) {
                errs.push(FieldError::invalid(
                    &sel_path,
                    BadValue::Raw(go_label_selector(sel)),
                    "empty selector is invalid for deployment",
                ));
            }
        }
    }
    // A nil selector converts to "nothing" (no error, never empty); an unconvertible one is an
    // error of its own and skips the template checks.
    match selector {
        Some(sel) if !selector_convertible(sel) => errs.push(FieldError::invalid(
            &sel_path,
            BadValue::Raw(go_label_selector(sel)),
            "invalid label selector",
        )),
        _ => errs.extend(validate_template_for_replica_set(
            selector, template, replicas, path,
        )),
    }
    errs
}

/// `ValidatePodTemplateSpecForReplicaSet`.
fn validate_template_for_replica_set(
    selector: Option<&LabelSelector>,
    template: Option<&PodTemplateSpec>,
    replicas: i32,
    path: &Path,
) -> ErrorList {
    let _ = replicas; // only read-only persistent disks (not supported by skiff) depend on it
    let tpath = path.child("template");
    let Some(template) = template else {
        return vec![FieldError::required(&tpath, "")];
    };
    let mut errs = ErrorList::new();
    let empty = BTreeMap::new();
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&empty);
    // A nil selector is `labels.Nothing()`: not empty, matches nothing.
    if selector.is_none_or(|s| !selector_is_empty(s))
        && !selector.is_some_and(|s| selector_matches(s, labels))
    {
        let raw = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
        errs.push(FieldError::invalid(
            &tpath.child("metadata").child("labels"),
            BadValue::Raw(go_string_map(raw)),
            "`selector` does not match template `labels`",
        ));
    }
    errs.extend(validate_pod_template(template, &tpath));
    let spec = template.spec.clone().unwrap_or_default();
    let restart = spec.restart_policy.as_deref().unwrap_or("");
    if restart != "Always" {
        errs.push(FieldError::not_supported(
            &tpath.child("spec").child("restartPolicy"),
            restart,
            &["Always"],
        ));
    }
    if spec.active_deadline_seconds.is_some() {
        errs.push(FieldError::forbidden(
            &tpath.child("spec").child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
    errs
}

/// `ValidateDeploymentStrategy`.
fn validate_strategy(strategy: &DeploymentStrategy, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    match strategy.type_.as_deref().unwrap_or("") {
        "Recreate" => {
            if strategy.rolling_update.is_some() {
                errs.push(FieldError::forbidden(
                    &path.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match &strategy.rolling_update {
            None => errs.push(FieldError::required(
                &path.child("rollingUpdate"),
                "this should be defaulted and never be nil",
            )),
            Some(ru) => errs.extend(validate_rolling_update(ru, &path.child("rollingUpdate"))),
        },
        other => {
            // Upstream prints the whole strategy struct; its RollingUpdate pointer prints as an
            // address, replaced by a stand-in here.
            let ru = if strategy.rolling_update.is_some() {
                "(*apps.RollingUpdateDeployment)(...)"
            } else {
                "(*apps.RollingUpdateDeployment)(nil)"
            };
            let value = format!(
                "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{ru}}}",
                go_quote(other)
            );
            errs.push(FieldError::not_supported(
                path,
                BadValue::Raw(value),
                &["Recreate", "RollingUpdate"],
            ));
        }
    }
    errs
}

/// `ValidateRollingUpdateDeployment`.
fn validate_rolling_update(ru: &RollingUpdateDeployment, path: &Path) -> ErrorList {
    let zero = IntOrString::Int(0);
    let max_unavailable = ru.max_unavailable.as_ref().unwrap_or(&zero);
    let max_surge = ru.max_surge.as_ref().unwrap_or(&zero);
    let mu_path = path.child("maxUnavailable");
    let mut errs = positive_int_or_percent(max_unavailable, &mu_path);
    errs.extend(positive_int_or_percent(max_surge, &path.child("maxSurge")));
    if int_or_percent_value(max_unavailable) == 0 && int_or_percent_value(max_surge) == 0 {
        errs.push(FieldError::invalid(
            &mu_path,
            BadValue::Raw(go_int_or_string(max_unavailable)),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    if let Some(p) = percent_value(max_unavailable) {
        if p > 100 {
            errs.push(FieldError::invalid(
                &mu_path,
                BadValue::Raw(go_int_or_string(max_unavailable)),
                "must not be greater than 100%",
            ));
        }
    }
    errs
}

/// `ValidatePositiveIntOrPercent`.
fn positive_int_or_percent(v: &IntOrString, path: &Path) -> ErrorList {
    match v {
        IntOrString::String(s) => {
            if is_valid_percent(s) {
                Vec::new()
            } else {
                vec![FieldError::invalid(
                    path,
                    BadValue::Raw(go_int_or_string(v)),
                    crate::validation::names::regex_error(
                        "a valid percent string must be a numeric string followed by an ending '%'",
                        "[0-9]+%",
                        &["1%", "93%"],
                    ),
                )]
            }
        }
        IntOrString::Int(i) => nonnegative(i64::from(*i), path),
    }
}

/// `IsValidPercent`: `^[0-9]+%$`.
fn is_valid_percent(s: &str) -> bool {
    s.strip_suffix('%')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The percentage of a valid percent string.
fn percent_value(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::String(s) if is_valid_percent(s) => {
            // Digits only; a value beyond i64 saturates (Go's Atoi would fail and give 0, but
            // such a value is > 100 either way).
            Some(s.trim_end_matches('%').parse::<i64>().unwrap_or(i64::MAX))
        }
        _ => None,
    }
}

/// `getIntOrPercentValue`: the percentage, or the integer (`IntValue`: a non-numeric string
/// is 0).
fn int_or_percent_value(v: &IntOrString) -> i64 {
    match v {
        IntOrString::Int(i) => i64::from(*i),
        IntOrString::String(s) => percent_value(v).unwrap_or_else(|| s.parse().unwrap_or(0)),
    }
}

fn nonnegative(value: i64, path: &Path) -> ErrorList {
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

/// `ValidateImmutableField(new.Spec.Selector, old.Spec.Selector, spec.selector)`.
fn immutable_selector(new: Option<&LabelSelector>, old: Option<&LabelSelector>) -> ErrorList {
    if new == old {
        return Vec::new();
    }
    let value = new.map_or_else(|| "null".to_string(), go_label_selector);
    vec![FieldError::invalid(
        &Path::new("spec").child("selector"),
        BadValue::Raw(value),
        "field is immutable",
    )]
}

/// Go's `%#v` of a `map[string]string` (keys sorted, as fmt prints maps).
fn go_string_map(map: Option<&BTreeMap<String, String>>) -> String {
    match map {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
                .collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
    }
}

/// Go's `%#v` of a `metav1.LabelSelector`.
fn go_label_selector(sel: &LabelSelector) -> String {
    let exprs = match &sel.match_expressions {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|e| {
                    let values = match &e.values {
                        None => "[]string(nil)".to_string(),
                        Some(v) => crate::validation::names::go_string_slice(v),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}",
                        go_quote(&e.key),
                        go_quote(&e.operator)
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}",
        go_string_map(sel.match_labels.as_ref())
    )
}

/// Go's `%#v` of an `intstr.IntOrString`.
fn go_int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => format!("intstr.IntOrString{{Type:0, IntVal:{i}, StrVal:\"\"}}"),
        IntOrString::String(s) => {
            format!(
                "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
                go_quote(s)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    //! Rules of pkg/apis/apps/v1/defaults.go and pkg/apis/apps/validation/validation.go.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::field::aggregate;

    fn deployment(yaml_spec: serde_json::Value) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": yaml_spec,
        }))
        .unwrap()
    }

    fn good_spec() -> serde_json::Value {
        serde_json::json!({
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"restartPolicy": "Always",
                         "containers": [{"name": "c", "image": "nginx"}]},
            },
        })
    }

    fn defaulted(spec: serde_json::Value) -> Deployment {
        let mut d = deployment(spec);
        default_deployment(&mut d);
        d
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn deployment_defaults_match_apps_v1() {
        let d = defaulted(good_spec());
        let spec = d.spec;
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.revision_history_limit, Some(10));
        assert_eq!(spec.progress_deadline_seconds, Some(600));
        let strategy = spec.strategy.unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        let ru = strategy.rolling_update.unwrap();
        assert_eq!(ru.max_surge, Some(IntOrString::String("25%".into())));
        assert_eq!(ru.max_unavailable, Some(IntOrString::String("25%".into())));
    }

    #[test]
    fn recreate_strategy_gets_no_rolling_update_defaults() {
        let mut spec = good_spec();
        spec["strategy"] = serde_json::json!({"type": "Recreate"});
        let d = defaulted(spec);
        assert!(d.spec.strategy.as_ref().unwrap().rolling_update.is_none());
        assert!(validate_deployment(&d).is_empty());
    }

    #[test]
    fn replica_set_defaults_replicas_to_one() {
        let mut rs: ReplicaSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "r"}, "spec": good_spec()}))
        .unwrap();
        default_replica_set(&mut rs);
        assert_eq!(rs.spec.replicas, Some(1));
    }

    #[test]
    fn defaulted_good_deployment_is_valid() {
        assert!(validate_deployment(&defaulted(good_spec())).is_empty());
    }

    #[test]
    fn selector_not_matching_template_labels_prints_kube_text() {
        let mut spec = good_spec();
        spec["template"]["metadata"]["labels"] = serde_json::json!({"app": "other", "b": "c"});
        let errs = validate_deployment(&defaulted(spec));
        assert_eq!(
            messages(&errs),
            vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\", \"b\":\"c\"}: `selector` does not match template `labels`"]
        );
    }

    #[test]
    fn missing_and_empty_selectors_are_rejected() {
        let mut spec = good_spec();
        spec.as_object_mut().unwrap().remove("selector");
        let errs = validate_deployment(&defaulted(spec));
        assert_eq!(
            messages(&errs),
            vec![
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            ]
        );

        let mut spec = good_spec();
        spec["selector"] = serde_json::json!({"matchLabels": {}});
        let errs = validate_deployment(&defaulted(spec));
        assert_eq!(
            messages(&errs),
            vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]
        );
    }

    #[test]
    fn restart_policy_must_be_always_and_no_active_deadline() {
        let mut spec = good_spec();
        spec["template"]["spec"]["restartPolicy"] = "OnFailure".into();
        spec["template"]["spec"]["activeDeadlineSeconds"] = 5.into();
        let errs = validate_deployment(&defaulted(spec));
        assert_eq!(
            messages(&errs),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
                "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported",
            ]
        );
    }

    #[test]
    fn max_surge_and_max_unavailable_may_not_both_be_zero() {
        let mut spec = good_spec();
        spec["strategy"] = serde_json::json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}});
        let errs = validate_deployment(&defaulted(spec));
        assert_eq!(
            aggregate(&errs),
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"0%\"}: may not be 0 when `maxSurge` is 0"
        );
    }

    #[test]
    fn bad_percent_and_over_100_percent_are_rejected() {
        let mut spec = good_spec();
        spec["strategy"] = serde_json::json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "x", "maxUnavailable": "150%"}});
        let errs = validate_deployment(&defaulted(spec));
        assert_eq!(
            messages(&errs),
            vec![
                "spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"x\"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%",
            ]
        );
    }

    #[test]
    fn recreate_with_rolling_update_and_unknown_type_are_rejected() {
        let mut spec = good_spec();
        spec["strategy"] = serde_json::json!({"type": "Recreate", "rollingUpdate": {}});
        let errs = validate_deployment(&deployment(spec));
        assert!(messages(&errs).contains(
            &"spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'".to_string()
        ));
        let mut spec = good_spec();
        spec["strategy"] = serde_json::json!({"type": "BlueGreen"});
        let errs = validate_deployment(&deployment(spec));
        assert!(messages(&errs)
            .iter()
            .any(|m| m.starts_with(
                "spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:\"BlueGreen\""
            ) && m.ends_with("supported values: \"Recreate\", \"RollingUpdate\"")));
    }

    #[test]
    fn progress_deadline_must_exceed_min_ready_seconds() {
        let mut spec = good_spec();
        spec["minReadySeconds"] = 10.into();
        spec["progressDeadlineSeconds"] = 10.into();
        let errs = validate_deployment(&defaulted(spec));
        assert_eq!(
            messages(&errs),
            vec!["spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds"]
        );
    }

    #[test]
    fn negative_replicas_rejected() {
        let mut spec = good_spec();
        spec["replicas"] = (-1).into();
        let errs = validate_deployment(&defaulted(spec));
        assert_eq!(
            messages(&errs),
            vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]
        );
    }

    #[test]
    fn selector_is_immutable_on_update() {
        let old = defaulted(good_spec());
        let mut spec = good_spec();
        spec["selector"] = serde_json::json!({"matchLabels": {"app": "web", "tier": "x"}});
        spec["template"]["metadata"]["labels"] = serde_json::json!({"app": "web", "tier": "x"});
        let new = defaulted(spec);
        assert_eq!(
            messages(&validate_deployment_update(&new, &old)),
            vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]
        );
        // Changing the template only is fine.
        let mut spec = good_spec();
        spec["template"]["spec"]["containers"][0]["image"] = "nginx:2".into();
        assert!(validate_deployment_update(&defaulted(spec), &old).is_empty());
    }

    #[test]
    fn replica_set_rules_match_deployment_ones() {
        let mut spec = good_spec();
        spec["template"]["metadata"]["labels"] = serde_json::json!({"app": "x"});
        let mut rs: ReplicaSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "r"}, "spec": spec}))
        .unwrap();
        default_replica_set(&mut rs);
        assert_eq!(
            messages(&validate_replica_set(&rs)),
            vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`"]
        );
        let old = rs.clone();
        rs.spec.selector = LabelSelector::default();
        let errs = validate_replica_set_update(&rs, &old);
        assert!(messages(&errs)
            .iter()
            .any(|m| m.ends_with("field is immutable")));
    }

    #[test]
    fn selector_expressions_match_like_label_selector_as_selector() {
        let sel: LabelSelector = serde_json::from_value(serde_json::json!({
        "matchLabels": {"a": "1"},
        "matchExpressions": [
            {"key": "b", "operator": "In", "values": ["x", "y"]},
            {"key": "c", "operator": "NotIn", "values": ["z"]},
            {"key": "d", "operator": "Exists"},
            {"key": "e", "operator": "DoesNotExist"},
        ]}))
        .unwrap();
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(selector_matches(
            &sel,
            &labels(&[("a", "1"), ("b", "x"), ("d", "")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("a", "1"), ("b", "q"), ("d", "")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("a", "1"), ("b", "x"), ("c", "z"), ("d", "")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("a", "1"), ("b", "x"), ("d", ""), ("e", "")])
        ));
        assert!(selector_matches(&LabelSelector::default(), &labels(&[])));
    }
}
