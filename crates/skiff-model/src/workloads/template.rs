//! `ValidatePodTemplateSpec` and pod-template defaulting (the Pod rules at template paths).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::field::{ErrorList, Path};

/// Defaults a pod template's spec as a Pod's (D1–D7): the generated defaulters of every
/// workload kind call `SetDefaults_PodSpec` and the container defaulters on the template.
pub fn default_pod_template(template: &mut PodTemplateSpec) {
    let mut pod = Pod {
        spec: Some(template.spec.take().unwrap_or_default()),
        ..Pod::default()
    };
    crate::defaults::default_pod(&mut pod);
    template.spec = pod.spec;
}

/// Validates a pod template at `path` (e.g. `spec.template`).
pub fn validate_pod_template(template: &PodTemplateSpec, path: &Path) -> ErrorList {
    let meta = template.metadata.clone().unwrap_or_default();
    let spec = template.spec.clone().unwrap_or_default();
    crate::validation::validate_pod_template_spec(&meta, &spec, path)
}

/// The template's labels (none → `None`).
pub fn template_labels(template: &PodTemplateSpec) -> Option<&BTreeMap<String, String>> {
    template.metadata.as_ref().and_then(|m| m.labels.as_ref())
}

/// Whether a label selector selects `labels` (`metav1.LabelSelectorAsSelector` + `Matches`).
/// An empty selector selects everything; an invalid operator selects nothing.
pub fn selector_matches(s: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k));
    let by_labels = s
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| get(k) == Some(v));
    let by_expressions = s.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => get(&e.key).is_some(),
            "DoesNotExist" => get(&e.key).is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// A Go `json.Marshal` rendering of a value for a field error (apimachinery's `ErrorBody`
/// prints non-primitive bad values as JSON): maps with sorted keys, no spaces.
pub fn json_value<T: serde::Serialize>(value: &T) -> crate::field::BadValue {
    crate::field::BadValue::Raw(serde_json::to_string(value).unwrap_or_else(|_| "null".to_string()))
}

/// A LabelSelector as Go marshals `metav1.LabelSelector` (matchLabels before
/// matchExpressions, empty ones omitted).
pub fn selector_json(s: &LabelSelector) -> crate::field::BadValue {
    let mut out = serde_json::Map::new();
    if let Some(m) = s.match_labels.as_ref().filter(|m| !m.is_empty()) {
        out.insert(
            "matchLabels".into(),
            serde_json::to_value(m).unwrap_or_default(),
        );
    }
    if let Some(e) = s.match_expressions.as_ref().filter(|e| !e.is_empty()) {
        let list: Vec<serde_json::Value> = e
            .iter()
            .map(|r| {
                let mut o = serde_json::Map::new();
                o.insert("key".into(), r.key.clone().into());
                o.insert("operator".into(), r.operator.clone().into());
                if let Some(v) = r.values.as_ref().filter(|v| !v.is_empty()) {
                    o.insert("values".into(), serde_json::to_value(v).unwrap_or_default());
                }
                serde_json::Value::Object(o)
            })
            .collect();
        out.insert("matchExpressions".into(), list.into());
    }
    // serde_json's Map keeps insertion order only with `preserve_order`; build the text by hand
    // so the order is Go's whatever the feature set.
    let mut text = String::from("{");
    for (i, key) in ["matchLabels", "matchExpressions"]
        .iter()
        .filter(|k| out.contains_key(**k))
        .enumerate()
    {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(
            "{}:{}",
            serde_json::Value::from(*key),
            out.get(*key).map(ToString::to_string).unwrap_or_default()
        ));
    }
    text.push('}');
    crate::field::BadValue::Raw(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn template_errors_are_at_template_paths() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"a b": "x"}},
            "spec": {"containers": [{"name": "c", "image": ""}], "ephemeralContainers": [
                {"name": "e", "image": "busybox"}]},
        }))
        .unwrap();
        let mut t = t;
        default_pod_template(&mut t);
        let errs = validate_pod_template(&t, &Path::new("spec").child("template"));
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|e| e.starts_with("spec.template.labels: Invalid value: \"a b\"")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.starts_with("spec.template.spec.containers[0].image: Required value")),
            "{text:?}"
        );
        assert!(text.contains(&"spec.template.spec.ephemeralContainers: Forbidden: ephemeral containers not allowed in pod template".to_string()), "{text:?}");
    }

    #[test]
    fn template_defaults_are_the_pod_defaults() {
        let mut t: PodTemplateSpec = serde_json::from_value(
            json!({"spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .unwrap();
        default_pod_template(&mut t);
        let spec = t.spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("Always")
        );
    }

    #[test]
    fn selectors_render_as_go_json() {
        let s: LabelSelector = serde_json::from_value(json!({
            "matchExpressions": [{"key": "k", "operator": "Exists"}],
            "matchLabels": {"b": "2", "a": "1"}}))
        .unwrap();
        assert_eq!(
            selector_json(&s),
            crate::field::BadValue::Raw(
                r#"{"matchLabels":{"a":"1","b":"2"},"matchExpressions":[{"key":"k","operator":"Exists"}]}"#.into()
            )
        );
    }
}
