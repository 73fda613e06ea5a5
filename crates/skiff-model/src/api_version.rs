//! The Kubernetes API version skiff implements, for `skiff version` and for messages about
//! fields that version does not have.
//!
//! A manifest written for a newer Kubernetes (or with a typo) has fields skiff's types do not
//! know. kubectl's strict decoding says only `unknown field "spec.foo"`; skiff says which API
//! it implements and, when a field of the same object is a close spelling, which one was
//! probably meant. The known fields come from the OpenAPI schema of the k8s-openapi types
//! skiff is built on (their `schemars` implementation), so they always match the decoder.

use schemars::JsonSchema;
use serde_json::Value;

use crate::{KUBERNETES_MAJOR, KUBERNETES_MINOR};

/// `v1.37`: the release whose API (types, defaults, validation, kubelet behaviour) skiff
/// implements.
pub fn version() -> String {
    format!("v{KUBERNETES_MAJOR}.{KUBERNETES_MINOR}")
}

/// The message for a field at `path` (`spec.containers[0].imagee`, as strict decoding
/// reports it) that the `T` of the implemented API does not have:
/// `field spec.containers[0].imagee is not in the Kubernetes 1.37 API that skiff implements
/// (a newer Kubernetes field, or misspelt?); did you mean "image"?`.
pub fn unknown_field_hint<T: JsonSchema>(path: &str) -> String {
    let schema = schemars::schema_for!(T);
    let root = schema.as_value();
    let mut text = format!(
        "field {path} is not in the Kubernetes {KUBERNETES_MAJOR}.{KUBERNETES_MINOR} API that skiff implements (a newer Kubernetes field, or misspelt?)"
    );
    if let Some(s) = suggestion(root, path) {
        text.push_str(&format!("; did you mean {s:?}?"));
    }
    text
}

/// [`unknown_field_hint`] for an object of `kind` (a `v1` core kind or an apps/batch
/// workload kind); kinds skiff does not decode get the message without a suggestion.
pub fn unknown_field_hint_for_kind(kind: &str, path: &str) -> String {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
    match kind {
        "Pod" => unknown_field_hint::<core::Pod>(path),
        "ConfigMap" => unknown_field_hint::<core::ConfigMap>(path),
        "Secret" => unknown_field_hint::<core::Secret>(path),
        "PodTemplate" => unknown_field_hint::<core::PodTemplate>(path),
        "ReplicationController" => unknown_field_hint::<core::ReplicationController>(path),
        "Deployment" => unknown_field_hint::<apps::Deployment>(path),
        "ReplicaSet" => unknown_field_hint::<apps::ReplicaSet>(path),
        "StatefulSet" => unknown_field_hint::<apps::StatefulSet>(path),
        "DaemonSet" => unknown_field_hint::<apps::DaemonSet>(path),
        "Job" => unknown_field_hint::<batch::Job>(path),
        "CronJob" => unknown_field_hint::<batch::CronJob>(path),
        _ => format!(
            "field {path} is not in the Kubernetes {KUBERNETES_MAJOR}.{KUBERNETES_MINOR} API that skiff implements (a newer Kubernetes field, or misspelt?)"
        ),
    }
}

/// One step of a decoding path.
#[derive(Debug, PartialEq)]
enum Step<'a> {
    Key(&'a str),
    Index,
}

/// `a.b[0].c` → Key(a), Key(b), Index, Key(c).
fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some(end) = rest.find(']') {
            out.push(Step::Index);
            rest = &rest[end + 1..];
        }
    }
    out
}

/// Follows `$ref`s to the schema they name (at most a few hops; a loop ends the walk).
fn resolve<'a>(root: &'a Value, mut node: &'a Value) -> Option<&'a Value> {
    for _ in 0..8 {
        match node.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.strip_prefix("#/$defs/")?;
                node = root.get("$defs")?.get(name)?;
            }
            None => return Some(node),
        }
    }
    None
}

/// The known field of the object holding `path`'s last key that is spelt closest to it, if
/// close enough to be a likely typo.
fn suggestion(root: &Value, path: &str) -> Option<String> {
    let steps = steps(path);
    let (last, parents) = steps.split_last()?;
    let Step::Key(unknown) = last else {
        return None;
    };
    let mut node = resolve(root, root)?;
    for step in parents {
        node = match step {
            Step::Key(k) => {
                let next = node
                    .get("properties")
                    .and_then(|p| p.get(*k))
                    .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))?;
                resolve(root, next)?
            }
            Step::Index => resolve(root, node.get("items")?)?,
        };
    }
    let known = node.get("properties")?.as_object()?;
    let target = unknown.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for name in known.keys() {
        let d = edit_distance(&target, &name.to_ascii_lowercase());
        if best.is_none_or(|(bd, bn)| d < bd || (d == bd && name.as_str() < bn)) {
            best = Some((d, name));
        }
    }
    let (d, name) = best?;
    // Close: a case slip, or at most 2 edits and no more than a third of the name.
    let limit = (unknown.chars().count() / 3).clamp(1, 2);
    (d <= limit).then(|| name.to_string())
}

/// Levenshtein distance over chars. Written here because it is ten lines; names are short
/// (a field name of the API), so the quadratic table is tiny.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn version_names_the_k8s_openapi_feature() {
        assert_eq!(version(), "v1.37");
    }

    #[test]
    fn a_field_of_no_kubernetes_release_is_explained_without_a_guess() {
        assert_eq!(
            unknown_field_hint::<Pod>("spec.fooBarBaz"),
            "field spec.fooBarBaz is not in the Kubernetes 1.37 API that skiff implements (a newer Kubernetes field, or misspelt?)"
        );
    }

    #[test]
    fn a_misspelt_field_gets_the_closest_sibling() {
        assert_eq!(
            unknown_field_hint::<Pod>("spec.containers[0].imagee"),
            "field spec.containers[0].imagee is not in the Kubernetes 1.37 API that skiff implements (a newer Kubernetes field, or misspelt?); did you mean \"image\"?"
        );
        assert!(unknown_field_hint::<Pod>("spec.restartPolicyy")
            .ends_with("did you mean \"restartPolicy\"?"));
        assert!(
            unknown_field_hint::<Pod>("spec.containers[1].ports[0].hostPortt")
                .ends_with("did you mean \"hostPort\"?")
        );
        assert!(
            unknown_field_hint::<Pod>("spec.initContainers[0].restartpolicy")
                .ends_with("did you mean \"restartPolicy\"?")
        );
        assert!(unknown_field_hint::<Pod>("metadata.lables").ends_with("did you mean \"labels\"?"));
        assert!(unknown_field_hint::<Pod>("spec.volumes[0].configMap.itemz")
            .ends_with("did you mean \"items\"?"));
        // Top level.
        assert!(unknown_field_hint::<Pod>("spec2").ends_with("did you mean \"spec\"?"));
    }

    #[test]
    fn workload_kinds_walk_their_own_schema() {
        assert!(
            unknown_field_hint_for_kind("Deployment", "spec.template.spec.containers[0].imag")
                .ends_with("did you mean \"image\"?")
        );
        assert!(unknown_field_hint_for_kind("Job", "spec.backoffLimitt")
            .ends_with("did you mean \"backoffLimit\"?"));
        assert!(!unknown_field_hint_for_kind("Widget", "spec.x").contains("did you mean"));
    }

    #[test]
    fn odd_paths_never_panic() {
        for p in [
            "",
            ".",
            "[",
            "]",
            "a[",
            "[0]",
            "spec..x",
            "spec.containers[x]]y",
            "é.ü",
        ] {
            let _ = unknown_field_hint::<Pod>(p);
        }
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
