//! The downward API: pod fields and container resource values as the kubelet renders them,
//! for env (`fieldRef`, `resourceFieldRef`) and for downwardAPI/projected volume files.
//!
//! Upstream: `pkg/fieldpath/fieldpath.go` (ExtractFieldPathAsString, FormatMap),
//! `pkg/api/v1/resource/helpers.go` (ExtractContainerResourceValue, MergeContainerResourceLimits),
//! `pkg/kubelet/kubelet_pods.go` (defaultPodLimitsForDownwardAPI).

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};
use skiff_model::quantity::Quantity;

/// What the node can give a pod: the values the kubelet substitutes for a missing limit in
/// the downward API (node allocatable). skiff uses the machine's CPU count and `MemTotal`
/// (no reservation), and the size of the filesystem holding the data dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAllocatable {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub ephemeral_storage_bytes: i64,
}

impl NodeAllocatable {
    /// The machine's values, the same the node module uses for admission (`machine`).
    pub fn detect(data_dir: &Path) -> NodeAllocatable {
        NodeAllocatable {
            cpu_millis: crate::machine::milli_cpus(),
            memory_bytes: crate::machine::memory_bytes(),
            ephemeral_storage_bytes: crate::machine::fs_size(data_dir),
        }
    }
}

/// `fieldpath.ExtractFieldPathAsString` for the pod metadata fields the downward API exposes
/// (volumes and env): name, namespace, uid, labels, annotations, and the subscripted
/// `metadata.labels['k']` / `metadata.annotations['k']`.
pub fn pod_metadata_field(pod: &Pod, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    if let Some((field, key)) = split_subscript(path) {
        let map = match field {
            "metadata.annotations" => &meta.annotations,
            "metadata.labels" => &meta.labels,
            _ => return Err(format!("fieldPath {path:?} does not support subscript")),
        };
        return Ok(map
            .as_ref()
            .and_then(|m| m.get(key).cloned())
            .unwrap_or_default());
    }
    Ok(match path {
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        _ => return Err(format!("unsupported fieldPath: {path}")),
    })
}

/// `metadata.labels['key']` → (`metadata.labels`, `key`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let open = path.find("['")?;
    let inner = path[open + 2..].strip_suffix("']")?;
    Some((&path[..open], inner))
}

/// `fieldpath.FormatMap`: `key="value"` lines (Go `%q` quoting), sorted by key, no trailing
/// newline.
pub fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={}", go_quote(v)))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

/// Go's `strconv.Quote`: double-quoted, with `\"`, `\\`, the C escapes, and `\x`/`\u`/`\U`
/// for non-printable characters.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `ExtractContainerResourceValue` on the container with missing or zero limits replaced by
/// the node's allocatable (`MergeContainerResourceLimits`, as `defaultPodLimitsForDownwardAPI`
/// and the downwardAPI volume plugin do).
pub fn container_resource_value(
    fs: &ResourceFieldSelector,
    container: &Container,
    node: &NodeAllocatable,
) -> Result<String, String> {
    let divisor = match fs.divisor.as_ref().map(|d| Quantity::parse(&d.0)) {
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Err(e)) => return Err(format!("invalid divisor: {e}")),
        _ => Quantity::new(1, 0, skiff_model::quantity::Format::DecimalSI),
    };
    let (kind, name) = fs
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource : {}", fs.resource))?;
    let res = container.resources.as_ref();
    let list = match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => return Err(format!("unsupported container resource : {}", fs.resource)),
    };
    let given = list
        .and_then(|l| l.get(name))
        .and_then(|q| Quantity::parse(&q.0).ok())
        .filter(|q| !q.is_zero());
    let default =
        |q: i64, scale: i32| Quantity::new(q, scale, skiff_model::quantity::Format::DecimalSI);
    let q = match (kind, name) {
        ("limits", "cpu") => given.unwrap_or_else(|| default(node.cpu_millis, -3)),
        ("limits", "memory") => given.unwrap_or_else(|| default(node.memory_bytes, 0)),
        ("limits", "ephemeral-storage") => {
            given.unwrap_or_else(|| default(node.ephemeral_storage_bytes, 0))
        }
        ("requests", "cpu" | "memory" | "ephemeral-storage") => {
            given.unwrap_or_else(|| Quantity::zero(skiff_model::quantity::Format::DecimalSI))
        }
        (_, n) if n.starts_with("hugepages-") => {
            given.unwrap_or_else(|| Quantity::zero(skiff_model::quantity::Format::BinarySI))
        }
        _ => return Err(format!("unsupported container resource : {}", fs.resource)),
    };
    // convertResourceCPUToString: ceil(milli / divisor milli); the others use whole units.
    let (num, den) = if name == "cpu" {
        (q.milli_value(), divisor.milli_value())
    } else {
        (q.value(), divisor.value())
    };
    Ok(ceil_div(num, den).to_string())
}

fn ceil_div(a: i64, b: i64) -> i64 {
    if b == 0 {
        return 0;
    }
    let (q, r) = (a / b, a % b);
    if r != 0 && ((r > 0) == (b > 0)) {
        q + 1
    } else {
        q
    }
}

/// The container named `name` among the pod's init and app containers.
pub fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQ;

    const NODE: NodeAllocatable = NodeAllocatable {
        cpu_millis: 2000,
        memory_bytes: 8 << 30,
        ephemeral_storage_bytes: 100 << 30,
    };

    fn ctr(limits: &[(&str, &str)], requests: &[(&str, &str)]) -> Container {
        let l = |v: &[(&str, &str)]| {
            Some(
                v.iter()
                    .map(|(k, q)| (k.to_string(), ApiQ(q.to_string())))
                    .collect(),
            )
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                limits: l(limits),
                requests: l(requests),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn sel(res: &str, div: Option<&str>) -> ResourceFieldSelector {
        ResourceFieldSelector {
            resource: res.into(),
            divisor: div.map(|d| ApiQ(d.into())),
            container_name: None,
        }
    }

    #[test]
    fn resource_field_ref_divisors_round_up() {
        let c = ctr(&[("cpu", "250m"), ("memory", "64Mi")], &[("cpu", "100m")]);
        let v = |r, d| container_resource_value(&sel(r, d), &c, &NODE).unwrap();
        assert_eq!(v("limits.cpu", None), "1");
        assert_eq!(v("limits.cpu", Some("1m")), "250");
        assert_eq!(v("requests.cpu", Some("1m")), "100");
        assert_eq!(v("limits.memory", None), "67108864");
        assert_eq!(v("limits.memory", Some("1Mi")), "64");
        assert_eq!(v("limits.memory", Some("1M")), "68");
        assert_eq!(v("requests.memory", None), "0");
    }

    #[test]
    fn missing_limits_default_to_node_allocatable() {
        let c = ctr(&[], &[]);
        let v = |r, d| container_resource_value(&sel(r, d), &c, &NODE).unwrap();
        assert_eq!(v("limits.cpu", None), "2");
        assert_eq!(v("limits.cpu", Some("1m")), "2000");
        assert_eq!(v("limits.memory", Some("1Gi")), "8");
        assert_eq!(v("limits.ephemeral-storage", Some("1Gi")), "100");
        assert!(container_resource_value(&sel("limits.gpu", None), &c, &NODE).is_err());
    }

    #[test]
    fn labels_and_annotations_format_sorted_quoted() {
        let mut pod = Pod::default();
        pod.metadata.labels = Some(
            [("b", "2"), ("a", "x\"y\\z\n")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        assert_eq!(
            pod_metadata_field(&pod, "metadata.labels").unwrap(),
            "a=\"x\\\"y\\\\z\\n\"\nb=\"2\""
        );
        assert_eq!(
            pod_metadata_field(&pod, "metadata.labels['b']").unwrap(),
            "2"
        );
        assert_eq!(
            pod_metadata_field(&pod, "metadata.annotations").unwrap(),
            ""
        );
        assert!(pod_metadata_field(&pod, "spec.nodeName").is_err());
    }
}
