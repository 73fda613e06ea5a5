//! Loading manifests: YAML (multi-document) or JSON bytes into k8s-openapi objects, strictly —
//! unknown or misspelt fields are errors with their path, as kubectl's strict decoding reports
//! them, never silently dropped. Pure: the caller reads the bytes.

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::field::Path;
use crate::quantity::Quantity;

pub mod bounds;

/// Manifests larger than this are refused before parsing. kube-apiserver refuses request
/// bodies above 3 MiB (each document here is held to that, `bounds::MAX_DOCUMENT_BYTES`); a
/// file may hold several, but decoded objects take up to ~60 times their text in memory
/// (5 documents of 3 MiB of short strings: about 1 GB), so not unboundedly many.
pub const MAX_MANIFEST_BYTES: usize = 16 * 1024 * 1024;

/// One object of a manifest.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    Pod(Box<Pod>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Pod(_) => "Pod",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
        }
    }

    pub fn name(&self) -> &str {
        let meta = match self {
            Object::Pod(p) => &p.metadata,
            Object::ConfigMap(c) => &c.metadata,
            Object::Secret(s) => &s.metadata,
        };
        meta.name.as_deref().unwrap_or("")
    }
}

/// Where in the input a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// 1-based line and column.
    LineColumn { line: usize, column: usize },
    /// The n-th document (1-based) of a multi-document stream and, when known, the
    /// object it names.
    Document {
        index: usize,
        object: Option<String>,
    },
}

/// A problem with a manifest. Every problem found is reported, not just the first.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("{source_name}: {message}")]
    Io {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: manifest is {size} bytes, more than the {max} bytes allowed")]
    TooLarge {
        source_name: String,
        size: usize,
        max: usize,
    },
    #[error("{source_name}: not UTF-8 text: invalid byte at offset {offset}")]
    NotUtf8 { source_name: String, offset: usize },
    #[error("{source_name}:{line}:{column}: {message}")]
    Syntax {
        source_name: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{source_name}: {}: {message}", describe(.position))]
    Invalid {
        source_name: String,
        position: Position,
        message: String,
    },
    #[error("{source_name}: {}: strict decoding error: {}", describe(.position), .fields.iter().map(|f| format!("unknown field \"{f}\"")).collect::<Vec<_>>().join(", "))]
    UnknownFields {
        source_name: String,
        position: Position,
        fields: Vec<String>,
    },
    #[error("{source_name}: no objects found")]
    Empty { source_name: String },
}

fn describe(p: &Position) -> String {
    match p {
        Position::LineColumn { line, column } => format!("line {line} column {column}"),
        Position::Document {
            index,
            object: Some(o),
        } => format!("document {index} ({o})"),
        Position::Document {
            index,
            object: None,
        } => format!("document {index}"),
    }
}

/// Decodes every object in `bytes`. `source_name` names the input in messages
/// (`pod.yaml`, `<stdin>`). Either all objects, or every problem found.
pub fn load(source_name: &str, bytes: &[u8]) -> Result<Vec<Object>, Vec<LoadError>> {
    let source = source_name.to_string();
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(vec![LoadError::TooLarge {
            source_name: source,
            size: bytes.len(),
            max: MAX_MANIFEST_BYTES,
        }]);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return Err(vec![LoadError::NotUtf8 {
                source_name: source,
                offset: e.valid_up_to(),
            }])
        }
    };

    // Bounds before the YAML decoder builds anything (see `bounds`): flow nesting first,
    // since libyaml's time is quadratic in it, then alias expansion, walked without building.
    let scanned = match bounds::scan(text) {
        Ok(s) => s,
        Err(bounds::Refused::TooDeep { line, column }) => {
            return Err(vec![LoadError::Syntax {
                source_name: source,
                line,
                column,
                message: format!(
                    "nesting deeper than {} levels of flow collections",
                    bounds::MAX_FLOW_DEPTH
                ),
            }])
        }
        Err(bounds::Refused::DocumentTooLarge { line, size }) => {
            return Err(vec![LoadError::Syntax {
                source_name: source,
                line,
                column: 1,
                message: format!(
                    "the document starting here is {size} bytes: Request entity too large: limit is {}",
                    bounds::MAX_DOCUMENT_BYTES
                ),
            }])
        }
    };
    if scanned.aliases > 0 {
        let budget = bounds::walk_budget(&scanned);
        if let Err(excess) = bounds::count_nodes(text, budget) {
            let message = if excess.bytes {
                format!(
                    "document contains excessive aliasing: aliases repeat more text than {} times the manifest's size plus {} MiB",
                    bounds::SCALAR_BYTES_RATIO,
                    bounds::SCALAR_BYTES_SLACK >> 20
                )
            } else {
                format!(
                    "document contains excessive aliasing: aliases expand the manifest past {budget} nodes (its own nodes, plus {} times as many through aliases, at most {} more)",
                    bounds::ALIAS_RATIO,
                    bounds::MAX_ALIAS_NODES
                )
            };
            return Err(vec![LoadError::Invalid {
                source_name: source,
                position: Position::Document {
                    index: excess.document,
                    object: None,
                },
                message,
            }]);
        }
    }

    let mut objects = Vec::new();
    let mut errors = Vec::new();
    let mut index = 0usize;
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        index += 1;
        let yaml = match <serde_yaml_ng::Value as serde::Deserialize>::deserialize(document) {
            Ok(v) => v,
            Err(e) => {
                errors.push(syntax_error(&source, &e));
                // The parser cannot resynchronise after a syntax error.
                break;
            }
        };
        let json = match yaml_to_json(yaml) {
            Ok(Some(j)) => j,
            Ok(None) => continue, // empty document (`---` alone, comments only)
            Err(message) => {
                errors.push(LoadError::Invalid {
                    source_name: source.clone(),
                    position: Position::Document {
                        index,
                        object: None,
                    },
                    message,
                });
                continue;
            }
        };
        decode_value(&source, index, json, &mut objects, &mut errors);
    }
    if errors.is_empty() && objects.is_empty() {
        errors.push(LoadError::Empty {
            source_name: source,
        });
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(errors)
    }
}

fn syntax_error(source: &str, e: &serde_yaml_ng::Error) -> LoadError {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    // serde_yaml_ng appends " at line L column C" to its messages; the position is printed
    // in front instead.
    let mut message = e.to_string();
    if let Some(cut) = message.find(" at line ") {
        message.truncate(cut);
    }
    LoadError::Syntax {
        source_name: source.to_string(),
        line,
        column,
        message,
    }
}

/// YAML → JSON the way sigs.k8s.io/yaml does it: scalar map keys become strings, tags are
/// dropped. `Ok(None)` for an empty document.
fn yaml_to_json(v: serde_yaml_ng::Value) -> Result<Option<Value>, String> {
    use serde_yaml_ng::Value as Y;
    fn conv(v: Y) -> Result<Value, String> {
        Ok(match v {
            Y::Null => Value::Null,
            Y::Bool(b) => Value::Bool(b),
            Y::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::from(i)
                } else if let Some(u) = n.as_u64() {
                    Value::from(u)
                } else {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    match serde_json::Number::from_f64(f) {
                        Some(num) => Value::Number(num),
                        None => return Err(format!("number {n} cannot be represented in JSON")),
                    }
                }
            }
            Y::String(s) => Value::String(s),
            Y::Sequence(seq) => Value::Array(seq.into_iter().map(conv).collect::<Result<_, _>>()?),
            Y::Mapping(m) => {
                let mut out = serde_json::Map::new();
                for (k, v) in m {
                    let key = match k {
                        Y::String(s) => s,
                        Y::Bool(b) => b.to_string(),
                        Y::Number(n) => n.to_string(),
                        Y::Null => "null".to_string(),
                        other => return Err(format!("map key {other:?} is not a scalar")),
                    };
                    out.insert(key, conv(v)?);
                }
                Value::Object(out)
            }
            Y::Tagged(t) => conv(t.value)?,
        })
    }
    match v {
        Y::Null => Ok(None),
        other => conv(other).map(Some),
    }
}

fn decode_value(
    source: &str,
    index: usize,
    json: Value,
    objects: &mut Vec<Object>,
    errors: &mut Vec<LoadError>,
) {
    let invalid = |object: Option<String>, message: String| LoadError::Invalid {
        source_name: source.to_string(),
        position: Position::Document { index, object },
        message,
    };
    let Value::Object(map) = &json else {
        errors.push(invalid(
            None,
            "expected an object with apiVersion and kind".into(),
        ));
        return;
    };
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let label = Some(match &name {
        Some(n) => format!("{kind} {n:?}"),
        None => kind.clone(),
    });
    if kind.is_empty() {
        errors.push(invalid(None, "Object 'Kind' is missing".into()));
        return;
    }
    if api_version.is_empty() {
        errors.push(invalid(label, "Object 'apiVersion' is missing".into()));
        return;
    }
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "List") => {
            let Some(Value::Array(items)) = map.get("items").cloned() else {
                errors.push(invalid(label, "a List needs an items array".into()));
                return;
            };
            for item in items {
                decode_value(source, index, item, objects, errors);
            }
        }
        ("v1", "Pod") => {
            if let Some(pod) = strict::<Pod>(source, index, label.clone(), json, errors) {
                let qerrs = quantity_errors(&pod);
                if qerrs.is_empty() {
                    objects.push(Object::Pod(Box::new(pod)));
                } else {
                    errors.extend(qerrs.into_iter().map(|m| invalid(label.clone(), m)));
                }
            }
        }
        ("v1", "ConfigMap") => {
            if let Some(cm) = strict::<ConfigMap>(source, index, label, json, errors) {
                objects.push(Object::ConfigMap(Box::new(cm)));
            }
        }
        ("v1", "Secret") => {
            if let Some(s) = strict::<Secret>(source, index, label, json, errors) {
                objects.push(Object::Secret(Box::new(s)));
            }
        }
        (v, k) => errors.push(invalid(
            label,
            format!("no kind \"{k}\" is registered for version \"{v}\" (skiff reads v1 Pod, ConfigMap, Secret and List)"),
        )),
    }
}

/// Deserialises with every ignored (unknown) field recorded by path and the first type error
/// located by path.
fn strict<T: DeserializeOwned>(
    source: &str,
    index: usize,
    object: Option<String>,
    json: Value,
    errors: &mut Vec<LoadError>,
) -> Option<T> {
    let mut unknown = Vec::new();
    let result: Result<T, _> = {
        let mut record = |path: serde_ignored::Path<'_>| unknown.push(render_ignored(&path));
        let ignored = serde_ignored::Deserializer::new(json, &mut record);
        serde_path_to_error::deserialize(ignored)
    };
    let position = Position::Document { index, object };
    match result {
        Ok(value) if unknown.is_empty() => Some(value),
        Ok(_) => {
            errors.push(LoadError::UnknownFields {
                source_name: source.to_string(),
                position,
                fields: unknown,
            });
            None
        }
        Err(e) => {
            let path = render_error_path(e.path());
            let message = if path.is_empty() {
                e.inner().to_string()
            } else {
                format!("{path}: {}", e.inner())
            };
            if !unknown.is_empty() {
                errors.push(LoadError::UnknownFields {
                    source_name: source.to_string(),
                    position: position.clone(),
                    fields: unknown,
                });
            }
            errors.push(LoadError::Invalid {
                source_name: source.to_string(),
                position,
                message,
            });
            None
        }
    }
}

fn render_ignored(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", render_ignored(parent)),
        P::Map { parent, key } => {
            let p = render_ignored(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            render_ignored(parent)
        }
    }
}

fn render_error_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Quantities are strings in k8s-openapi but must parse, as they do when the API server
/// decodes them: `spec.containers[0].resources.limits[cpu]: quantities must match ...`.
fn quantity_errors(pod: &Pod) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |path: &Path, q: &str| {
        if let Err(e) = Quantity::parse(q) {
            out.push(format!("{path}: {e}"));
        }
    };
    let Some(spec) = pod.spec.as_ref() else {
        return out;
    };
    let spec_path = Path::new("spec");
    let mut containers: Vec<(Path, &k8s_openapi::api::core::v1::Container)> = Vec::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        containers.push((spec_path.child("initContainers").index(i), c));
    }
    for (i, c) in spec.containers.iter().enumerate() {
        containers.push((spec_path.child("containers").index(i), c));
    }
    for (path, c) in &containers {
        if let Some(r) = &c.resources {
            for (field, list) in [("requests", &r.requests), ("limits", &r.limits)] {
                for (k, v) in list.iter().flatten() {
                    check(&path.child("resources").child(field).key(k), &v.0);
                }
            }
        }
        for (j, e) in c.env.iter().flatten().enumerate() {
            if let Some(d) = e
                .value_from
                .as_ref()
                .and_then(|v| v.resource_field_ref.as_ref())
                .and_then(|r| r.divisor.as_ref())
            {
                check(
                    &path
                        .child("env")
                        .index(j)
                        .child("valueFrom")
                        .child("resourceFieldRef")
                        .child("divisor"),
                    &d.0,
                );
            }
        }
    }
    for (i, c) in spec.ephemeral_containers.iter().flatten().enumerate() {
        if let Some(r) = &c.resources {
            for (field, list) in [("requests", &r.requests), ("limits", &r.limits)] {
                for (k, v) in list.iter().flatten() {
                    check(
                        &spec_path
                            .child("ephemeralContainers")
                            .index(i)
                            .child("resources")
                            .child(field)
                            .key(k),
                        &v.0,
                    );
                }
            }
        }
    }
    for (k, v) in spec.overhead.iter().flatten() {
        check(&spec_path.child("overhead").key(k), &v.0);
    }
    if let Some(r) = &spec.resources {
        for (field, list) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (k, v) in list.iter().flatten() {
                check(&spec_path.child("resources").child(field).key(k), &v.0);
            }
        }
    }
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        if let Some(s) = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref()) {
            check(
                &spec_path
                    .child("volumes")
                    .index(i)
                    .child("emptyDir")
                    .child("sizeLimit"),
                &s.0,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(s: &str) -> Result<Vec<Object>, Vec<LoadError>> {
        load("pod.yaml", s.as_bytes())
    }

    fn messages(r: Result<Vec<Object>, Vec<LoadError>>) -> Vec<String> {
        match r {
            Ok(objs) => panic!("expected errors, got {} objects", objs.len()),
            Err(errs) => errs.iter().map(ToString::to_string).collect(),
        }
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: busybox\n";

    #[test]
    fn loads_a_pod() {
        let objs = load_str(POD).unwrap_or_default();
        assert_eq!(objs.len(), 1);
        assert_eq!(objs[0].kind(), "Pod");
        assert_eq!(objs[0].name(), "web");
    }

    #[test]
    fn loads_json_and_multi_document_yaml_with_configmaps() {
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},"spec":{"containers":[{"name":"a","image":"x"}]}}"#;
        assert_eq!(load_str(json).map(|o| o.len()), Ok(1));
        let multi = format!(
            "---\n{POD}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  k: v\n---\n# only a comment\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  p: q\n"
        );
        let objs = load_str(&multi).unwrap_or_default();
        let kinds: Vec<_> = objs.iter().map(Object::kind).collect();
        assert_eq!(kinds, vec!["Pod", "ConfigMap", "Secret"]);
    }

    #[test]
    fn unknown_fields_are_reported_with_paths_all_at_once() {
        let bad = POD.replace(
            "image: busybox",
            "imagee: busybox\n    ports:\n    - containerPort: 80\n      hostPortt: 1",
        ) + "  restartPolicyy: Never\n";
        let msgs = messages(load_str(&bad));
        assert_eq!(
            msgs,
            vec![
                "pod.yaml: document 1 (Pod \"web\"): strict decoding error: unknown field \"spec.containers[0].imagee\", unknown field \"spec.containers[0].ports[0].hostPortt\", unknown field \"spec.restartPolicyy\""
            ]
        );
    }

    #[test]
    fn type_errors_name_the_field() {
        let bad = POD.replace(
            "image: busybox",
            "image: busybox\n    ports:\n    - containerPort: eighty",
        );
        let msgs = messages(load_str(&bad));
        assert_eq!(msgs.len(), 1);
        assert!(
            msgs[0].starts_with("pod.yaml: document 1 (Pod \"web\"): spec.containers[0].ports[0].containerPort: invalid type: string \"eighty\""),
            "{}",
            msgs[0]
        );
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let msgs = messages(load_str(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [web\n",
        ));
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].starts_with("pod.yaml:5:1: "), "{}", msgs[0]);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let msgs = messages(load_str("apiVersion: v1\nkind: Pod\nkind: Pod\n"));
        assert!(msgs[0].contains("duplicate"), "{}", msgs[0]);
    }

    #[test]
    fn bad_quantities_are_decode_errors() {
        let bad = POD.replace(
            "image: busybox",
            "image: busybox\n    resources:\n      limits:\n        cpu: one\n        memory: 1Gi",
        );
        let msgs = messages(load_str(&bad));
        assert_eq!(msgs, vec!["pod.yaml: document 1 (Pod \"web\"): spec.containers[0].resources.limits[cpu]: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"]);
    }

    #[test]
    fn numeric_quantities_are_accepted() {
        let ok = POD.replace(
            "image: busybox",
            "image: busybox\n    resources:\n      limits:\n        cpu: 1\n        memory: 0.5",
        );
        let objs = load_str(&ok).unwrap_or_default();
        let Some(Object::Pod(p)) = objs.first() else {
            panic!("no pod")
        };
        let limits = p
            .spec
            .as_ref()
            .and_then(|s| s.containers[0].resources.as_ref())
            .and_then(|r| r.limits.clone())
            .unwrap_or_default();
        assert_eq!(limits.get("cpu").map(|q| q.0.as_str()), Some("1"));
        assert_eq!(limits.get("memory").map(|q| q.0.as_str()), Some("0.5"));
    }

    #[test]
    fn wrong_kinds_and_garbage() {
        assert!(
            messages(load_str("apiVersion: apps/v1\nkind: Deployment\n"))[0]
                .contains("no kind \"Deployment\"")
        );
        assert!(messages(load_str("kind: Pod\n"))[0].contains("'apiVersion' is missing"));
        assert!(messages(load_str("- a\n- b\n"))[0].contains("expected an object"));
        assert!(messages(load_str(""))[0].contains("no objects found"));
        assert!(messages(load("x", &[0xff, 0xfe]))[0].contains("not UTF-8"));
    }

    #[test]
    fn lists_are_expanded() {
        let list = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"x"}]}},{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}]}"#;
        assert_eq!(load_str(list).map(|o| o.len()), Ok(2));
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let rich = r#"
apiVersion: v1
kind: Pod
metadata:
  name: rich
  labels: {app: web}
  annotations: {a: b}
spec:
  hostname: h
  initContainers:
  - name: proxy
    image: envoy:1
    restartPolicy: Always
    startupProbe:
      tcpSocket: {port: 15000}
      failureThreshold: 30
  containers:
  - name: app
    image: app:1
    command: [sh, -c, "echo hi"]
    env:
    - {name: A, value: "1"}
    - name: POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    volumeMounts:
    - {name: data, mountPath: /data}
    resources:
      limits: {cpu: 500m, memory: 128Mi}
  volumes:
  - name: data
    emptyDir: {medium: Memory, sizeLimit: 64Mi}
  tolerations:
  - {key: k, operator: Exists, effect: NoSchedule}
"#;
        let objs = load_str(rich).unwrap_or_default();
        let Some(Object::Pod(p)) = objs.first() else {
            panic!("no pod")
        };
        let back = serde_json::to_value(p.as_ref()).unwrap_or_default();
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(rich).unwrap_or_default();
        let original = yaml_to_json(yaml).ok().flatten().unwrap_or_default();
        assert_eq!(back, original);
    }
}
