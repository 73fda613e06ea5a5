//! Loading manifests: YAML (multi-document) or JSON bytes into k8s-openapi objects, read as
//! kubectl reads them and decoded strictly — unknown or misspelt fields are errors with their
//! path, as kubectl's strict decoding reports them, never silently dropped. Pure: the caller
//! reads the bytes.
//!
//! * YAML is YAML 1.1 as go-yaml v2 reads it for kubectl ([`yaml`], [`resolve`]): `0644` is
//!   420, an unquoted `yes` is a bool. Where that gives a bool or a number where the API wants
//!   a string, the API server refuses the object; so does skiff, saying what to write
//!   (`quote it: "yes"`).
//! * A stream that starts with `{` is JSON, read as a sequence of JSON values (kubectl's
//!   `YAMLOrJSONDecoder`).
//! * Kinds: Pod, ConfigMap, Secret; workloads (Deployment, ReplicaSet, StatefulSet,
//!   DaemonSet, ReplicationController, Job, CronJob), whose pod template skiff runs as one pod;
//!   the other built-in kinds ([`kinds`]), decoded strictly and skipped; any `List`.

use std::rc::Rc;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::field::{ErrorList, Path};
use crate::quantity::Quantity;
use kinds::Strict as _;

pub mod bounds;
pub mod emit;
pub mod kinds;
pub mod resolve;
pub mod yaml;

pub use kinds::{Skipped, Workload};

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
    /// A workload: skiff runs its pod template as one pod.
    Workload(Box<Workload>),
    /// A kind a cluster accepts and skiff does not run.
    Skipped(Box<Skipped>),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Pod(_) => "Pod",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
            Object::Workload(w) => w.kind,
            Object::Skipped(s) => s.kind,
        }
    }

    pub fn name(&self) -> &str {
        let meta = match self {
            Object::Pod(p) => &p.metadata,
            Object::ConfigMap(c) => &c.metadata,
            Object::Secret(s) => &s.metadata,
            Object::Workload(w) => return &w.name,
            Object::Skipped(s) => return &s.name,
        };
        meta.name.as_deref().unwrap_or("")
    }

    /// The namespace the object names, if any.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Object::Pod(p) => p.metadata.namespace.as_deref(),
            Object::ConfigMap(c) => c.metadata.namespace.as_deref(),
            Object::Secret(s) => s.metadata.namespace.as_deref(),
            Object::Workload(w) => w.namespace.as_deref(),
            Object::Skipped(s) => s.namespace.as_deref(),
        }
        .filter(|ns| !ns.is_empty())
    }

    /// kubectl's `-n NS` on a manifest: an object without a namespace gets NS; one naming
    /// another is refused with kubectl's message. Cluster-scoped kinds are left alone.
    pub fn apply_namespace(&mut self, namespace: &str) -> Result<(), String> {
        if let Object::Skipped(s) = self {
            if !s.namespaced {
                return Ok(());
            }
        }
        if let Some(own) = self.namespace() {
            if own != namespace {
                return Err(format!(
                    "the namespace from the provided object {own:?} does not match the namespace {namespace:?}. You must pass '--namespace={own}' to perform this operation."
                ));
            }
            return Ok(());
        }
        let ns = Some(namespace.to_string());
        match self {
            Object::Pod(p) => p.metadata.namespace = ns,
            Object::ConfigMap(c) => c.metadata.namespace = ns,
            Object::Secret(s) => s.metadata.namespace = ns,
            Object::Workload(w) => {
                w.namespace = ns;
                set_json_namespace(&mut w.object, namespace);
            }
            Object::Skipped(s) => {
                s.namespace = ns;
                set_json_namespace(&mut s.object, namespace);
            }
        }
        Ok(())
    }

    /// `pod/web`, `deployment/web`: how kubectl names an object in its messages.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind().to_lowercase(), self.name())
    }

    /// The object as JSON (k8s-openapi's rendering of what was decoded).
    pub fn to_json(&self) -> Value {
        let v = match self {
            Object::Pod(p) => serde_json::to_value(p.as_ref()),
            Object::ConfigMap(c) => serde_json::to_value(c.as_ref()),
            Object::Secret(s) => serde_json::to_value(s.as_ref()),
            Object::Workload(w) => return w.object.clone(),
            Object::Skipped(s) => return s.object.clone(),
        };
        v.unwrap_or(Value::Null)
    }
}

fn set_json_namespace(object: &mut Value, namespace: &str) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("namespace".into(), Value::String(namespace.into()));
    }
}

/// An object the API server would refuse, with every reason (`The Pod "x" is invalid`).
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectInvalid {
    pub kind: String,
    pub name: String,
    pub errors: ErrorList,
}

impl ObjectInvalid {
    /// What kubectl prints for the API server's Invalid status (`checkErr` and
    /// `MultilineError` in k8s.io/kubectl/pkg/cmd/util/helpers.go): the header, then one
    /// error on the same line, or several as `* field: message` lines, one per cause.
    pub fn kubectl_message(&self) -> String {
        let header = format!(
            "The {} {} is invalid",
            self.kind,
            crate::field::go_quote(&self.name)
        );
        match self.errors.as_slice() {
            [] => header,
            [one] => format!("{header}: {one}"),
            many => {
                let mut s = format!("{header}: \n");
                for e in many {
                    s.push_str(&format!("* {e}\n"));
                }
                s.pop();
                s
            }
        }
    }
}

impl From<crate::PodInvalid> for ObjectInvalid {
    fn from(p: crate::PodInvalid) -> Self {
        ObjectInvalid {
            kind: "Pod".into(),
            name: p.name,
            errors: p.errors,
        }
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
    /// kube-apiserver's text, then one line per field saying which API skiff implements and,
    /// when a field of the same object is spelt alike, which one was probably meant.
    #[error("{source_name}: {}: strict decoding error: {}{}", describe(.position), .fields.iter().map(|f| format!("unknown field \"{f}\"")).collect::<Vec<_>>().join(", "), .hints.iter().map(|h| format!("\n  {h}")).collect::<String>())]
    UnknownFields {
        source_name: String,
        position: Position,
        fields: Vec<String>,
        hints: Vec<String>,
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

    // Bounds before any parser builds anything (see `bounds`): flow nesting first, since
    // the parser's time is quadratic in it, and the size of each document.
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
        Err(bounds::Refused::Tab {
            line,
            column,
            message,
        }) => {
            return Err(vec![LoadError::Syntax {
                source_name: source,
                line,
                column,
                message: message.into(),
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

    let mut decoder = Decoder {
        source: &source,
        objects: Vec::new(),
        errors: Vec::new(),
    };
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    if body.trim_start().starts_with('{') {
        decoder.json_stream(body);
    } else {
        let mut budget = yaml::Budget::for_text(text, &scanned);
        let result = yaml::documents(text, &mut budget, |doc| match doc {
            Ok(doc) => match yaml::to_json(&doc.root) {
                Ok(json) if json.is_null() => {} // `---` then nothing, or `null`
                Ok(json) => decoder.decode_value(doc.index, json, Some(&doc.root)),
                Err(message) => decoder.errors.push(LoadError::Invalid {
                    source_name: source.clone(),
                    position: Position::Document {
                        index: doc.index,
                        object: None,
                    },
                    message: format!("error converting YAML to JSON: {message}"),
                }),
            },
            Err(e) => decoder.errors.push(yaml_error(&source, e)),
        });
        if let Err(e) = result {
            return Err(vec![yaml_error(&source, e)]);
        }
    }
    let Decoder {
        objects,
        mut errors,
        ..
    } = decoder;
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

fn yaml_error(source: &str, e: yaml::Error) -> LoadError {
    match e {
        yaml::Error::Syntax {
            line,
            column,
            message,
        } => LoadError::Syntax {
            source_name: source.to_string(),
            line,
            column,
            message,
        },
        yaml::Error::Aliasing { document, bytes } => LoadError::Invalid {
            source_name: source.to_string(),
            position: Position::Document {
                index: document,
                object: None,
            },
            message: if bytes {
                format!(
                    "document contains excessive aliasing: aliases repeat more text than {} times the manifest's size plus {} MiB",
                    bounds::SCALAR_BYTES_RATIO,
                    bounds::SCALAR_BYTES_SLACK >> 20
                )
            } else {
                format!(
                    "document contains excessive aliasing: aliases expand the manifest past its own nodes plus {} times as many, at most {} more",
                    bounds::ALIAS_RATIO,
                    bounds::MAX_ALIAS_NODES
                )
            },
        },
    }
}

/// Decodes documents into objects, collecting every error.
struct Decoder<'a> {
    source: &'a str,
    objects: Vec<Object>,
    errors: Vec<LoadError>,
}

impl Decoder<'_> {
    /// A JSON stream: one or more JSON values, each a document.
    fn json_stream(&mut self, text: &str) {
        let mut index = 0;
        for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            index += 1;
            match value {
                Ok(Value::Null) => {}
                Ok(json) => self.decode_value(index, json, None),
                Err(e) => {
                    // The decoder cannot resynchronise after a syntax error.
                    let mut message = e.to_string();
                    if let Some(cut) = message.find(" at line ") {
                        message.truncate(cut);
                    }
                    self.errors.push(LoadError::Syntax {
                        source_name: self.source.to_string(),
                        line: e.line(),
                        column: e.column(),
                        message,
                    });
                    return;
                }
            }
        }
    }

    fn invalid(&self, index: usize, object: Option<String>, message: String) -> LoadError {
        LoadError::Invalid {
            source_name: self.source.to_string(),
            position: Position::Document { index, object },
            message,
        }
    }

    /// One document's JSON (`tree`: its YAML, for messages about what was written).
    fn decode_value(&mut self, index: usize, json: Value, tree: Option<&Rc<yaml::Node>>) {
        let Value::Object(map) = &json else {
            self.errors.push(self.invalid(
                index,
                None,
                "expected an object with apiVersion and kind".into(),
            ));
            return;
        };
        let text = |key: &str| {
            map.get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let api_version = text("apiVersion");
        let kind = text("kind");
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
            self.errors
                .push(self.invalid(index, None, "Object 'Kind' is missing".into()));
            return;
        }
        if api_version.is_empty() {
            self.errors
                .push(self.invalid(index, label, "Object 'apiVersion' is missing".into()));
            return;
        }
        // kubectl flattens any list (`v1 List`, `PodList`, …) into its items.
        if kind == "List" || kind.ends_with("List") {
            let Some(Value::Array(items)) = map.get("items").cloned() else {
                self.errors
                    .push(self.invalid(index, label, "a List needs an items array".into()));
                return;
            };
            let trees = tree
                .and_then(|t| yaml::lookup(t, &[yaml::PathSegment::Key("items")]))
                .and_then(|n| match &n.value {
                    yaml::NodeValue::Seq(items) => Some(items.clone()),
                    _ => None,
                });
            for (i, item) in items.into_iter().enumerate() {
                let item_tree = trees.as_ref().and_then(|t| t.get(i)).cloned();
                self.decode_value(index, item, item_tree.as_ref());
            }
            return;
        }
        let mut strict = StrictDecoder {
            source: self.source,
            kind: &kind,
            index,
            object: label.clone(),
            tree: tree.map(Rc::as_ref),
            errors: &mut self.errors,
        };
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "Pod") => {
                if let Some(pod) = strict.decode::<Pod>(json) {
                    let qerrs = quantity_errors(&pod);
                    if qerrs.is_empty() {
                        self.objects.push(Object::Pod(Box::new(pod)));
                    } else {
                        for m in qerrs {
                            let e = self.invalid(index, label.clone(), m);
                            self.errors.push(e);
                        }
                    }
                }
            }
            ("v1", "ConfigMap") => {
                if let Some(cm) = strict.decode::<ConfigMap>(json) {
                    self.objects.push(Object::ConfigMap(Box::new(cm)));
                }
            }
            ("v1", "Secret") => {
                if let Some(s) = strict.decode::<Secret>(json) {
                    self.objects.push(Object::Secret(Box::new(s)));
                }
            }
            (v, k) => match kinds::decode(v, k, json, &mut strict) {
                Some(Some(kinds::Decoded::Workload(w))) => {
                    let qerrs = quantity_errors(&w.pod());
                    if qerrs.is_empty() {
                        self.objects.push(Object::Workload(w));
                    } else {
                        for m in qerrs {
                            let e = self.invalid(index, label.clone(), m);
                            self.errors.push(e);
                        }
                    }
                }
                Some(Some(kinds::Decoded::Skipped(s))) => self.objects.push(Object::Skipped(s)),
                Some(None) => {} // errors recorded
                None => {
                    let e = self.invalid(
                        index,
                        label,
                        format!("no kind \"{k}\" is registered for version \"{v}\" (skiff reads the kinds Kubernetes {}.{} serves built in; custom resources need their cluster)", crate::KUBERNETES_MAJOR, crate::KUBERNETES_MINOR),
                    );
                    self.errors.push(e);
                }
            },
        }
    }
}

/// Strict decoding of one object: every ignored (unknown) field recorded by path and the
/// first type error located by path; a bool or number where a string belongs says what to
/// write instead.
struct StrictDecoder<'a, 'e> {
    source: &'a str,
    kind: &'a str,
    index: usize,
    object: Option<String>,
    tree: Option<&'a yaml::Node>,
    errors: &'e mut Vec<LoadError>,
}

impl StrictDecoder<'_, '_> {
    /// At most a few hints: a document of a thousand typos needs the first ones only.
    fn hints(&self, fields: &[String]) -> Vec<String> {
        const MAX_HINTS: usize = 8;
        fields
            .iter()
            .take(MAX_HINTS)
            .map(|f| crate::api_version::unknown_field_hint_for_kind(self.kind, f))
            .collect()
    }
}

impl kinds::Strict for StrictDecoder<'_, '_> {
    fn decode<T: DeserializeOwned>(&mut self, json: Value) -> Option<T> {
        let (result, unknown) = decode_recording::<T>(json);
        let position = Position::Document {
            index: self.index,
            object: self.object.clone(),
        };
        match result {
            Ok(value) if unknown.is_empty() => Some(value),
            Ok(_) => {
                self.errors.push(LoadError::UnknownFields {
                    source_name: self.source.to_string(),
                    position,
                    hints: self.hints(&unknown),
                    fields: unknown,
                });
                None
            }
            Err(e) => {
                let path = render_error_path(e.path());
                let mut message = if path.is_empty() {
                    e.inner().to_string()
                } else {
                    format!("{path}: {}", e.inner())
                };
                if let Some(hint) = self
                    .tree
                    .and_then(|t| quote_hint(t, e.path(), &e.inner().to_string()))
                {
                    message.push_str(&hint);
                }
                if !unknown.is_empty() {
                    self.errors.push(LoadError::UnknownFields {
                        source_name: self.source.to_string(),
                        position: position.clone(),
                        hints: self.hints(&unknown),
                        fields: unknown,
                    });
                }
                self.errors.push(LoadError::Invalid {
                    source_name: self.source.to_string(),
                    position,
                    message,
                });
                None
            }
        }
    }
}

/// One object decoded strictly as an API server decodes a request body: the object, or the
/// first type error with its path (`spec.containers[0].ports[0].containerPort: invalid
/// type: …`), and the path of every unknown field (`spec.foo`), so the caller applies its
/// `fieldValidation` (Strict refuses, Warn warns, Ignore drops). The loader's own rules.
pub struct StrictDecoded<T> {
    pub value: Result<T, String>,
    pub unknown: Vec<String>,
}

/// See [`StrictDecoded`].
pub fn decode_strict<T: DeserializeOwned>(json: Value) -> StrictDecoded<T> {
    let (result, unknown) = decode_recording::<T>(json);
    let value = result.map_err(|e| {
        let path = render_error_path(e.path());
        if path.is_empty() {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    });
    StrictDecoded { value, unknown }
}

/// Decodes `json` as `T`, recording unknown fields; a null where Go would take the zero
/// value gets it.
fn decode_recording<T: DeserializeOwned>(
    mut json: Value,
) -> (
    Result<T, serde_path_to_error::Error<serde_json::Error>>,
    Vec<String>,
) {
    let mut unknown = Vec::new();
    let mut result: Result<T, _>;
    let mut patched = 0;
    loop {
        unknown.clear();
        result = {
            let mut record = recorder(&mut unknown);
            let ignored = serde_ignored::Deserializer::new(&json, &mut record);
            serde_path_to_error::deserialize(ignored)
        };
        // Go's JSON decoding gives a null its type's zero value (a map value, a list
        // element, a field): the API server accepts `data: {key: }`. serde refuses null
        // there; put the zero value in and decode again (bounded: a document of nulls
        // costs at most this many decodes).
        match &result {
            Err(e) if patched < MAX_NULL_PATCHES && go_zero_for_null(&mut json, e) => patched += 1,
            _ => break,
        }
    }
    (result, unknown)
}

/// Nulls replaced by zero values in one object before its decoding error is reported.
const MAX_NULL_PATCHES: usize = 64;

/// If `e` is serde refusing a null, puts the zero value Go's decoder would have used at the
/// error's path (`""`, `0`, `false`, `{}`, `[]`) and says so.
fn go_zero_for_null(json: &mut Value, e: &serde_path_to_error::Error<serde_json::Error>) -> bool {
    let message = e.inner().to_string();
    let Some(expected) = message.strip_prefix("invalid type: null, expected ") else {
        return false;
    };
    let zero = match expected {
        "a string" => Value::String(String::new()),
        "a boolean" => Value::Bool(false),
        "a sequence" => Value::Array(Vec::new()),
        e if e.starts_with(['i', 'u', 'f'])
            && e.len() > 1
            && e[1..].chars().all(|c| c.is_ascii_digit()) =>
        {
            Value::from(0)
        }
        // Structs (k8s-openapi names them: `EnvVar`, `struct X`) and maps.
        e if e.starts_with(|c: char| c.is_ascii_uppercase())
            || e.starts_with("struct ")
            || e == "a map" =>
        {
            Value::Object(serde_json::Map::new())
        }
        _ => return false,
    };
    use serde_path_to_error::Segment;
    let mut at = json;
    for seg in e.path().iter() {
        at = match (seg, at) {
            (Segment::Map { key }, Value::Object(m)) => match m.get_mut(key.as_str()) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Seq { index }, Value::Array(a)) => match a.get_mut(*index) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    if !at.is_null() {
        return false;
    }
    *at = zero;
    true
}

/// When the value at `path` was written as a plain scalar that YAML 1.1 reads as a bool or a
/// number and a string was expected: where it is and what to write instead. (The API server
/// says `json: cannot unmarshal bool into Go struct field EnvVar.spec.containers.env.value
/// of type string`; the YAML is what the user can change.)
fn quote_hint(tree: &yaml::Node, path: &serde_path_to_error::Path, error: &str) -> Option<String> {
    if !error.contains("expected a string") {
        return None;
    }
    use serde_path_to_error::Segment;
    let segments: Vec<yaml::PathSegment<'_>> = path
        .iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(yaml::PathSegment::Index(*index)),
            Segment::Map { key } => Some(yaml::PathSegment::Key(key)),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect();
    let node = yaml::lookup(tree, &segments)?;
    let text = node.plain.as_deref()?;
    let what = match node.value {
        yaml::NodeValue::Bool(_) => "a boolean",
        yaml::NodeValue::Null => "null",
        _ => "a number",
    };
    Some(format!(
        " (line {}: YAML reads the unquoted {text} as {what}, as kubectl does; quote it: {})",
        node.line,
        serde_json::to_string(text).unwrap_or_default()
    ))
}

/// The callback recording unknown fields. Made outside the generic `decode` so that its type,
/// and so the deserializer's, is the same for every kind: the decoding code of shared types
/// (PodSpec, in every workload) is then generated once, not once per kind (which doubled the
/// binary and slowed every command's start).
fn recorder(unknown: &mut Vec<String>) -> impl FnMut(serde_ignored::Path<'_>) + '_ {
    move |path| unknown.push(render_ignored(&path))
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
pub fn quantity_errors(pod: &Pod) -> Vec<String> {
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

    /// The JSON kubectl would make of a one-document YAML text.
    fn json_of(text: &str) -> Value {
        let scan = bounds::scan(text).unwrap_or(bounds::Scan {
            nodes: 0,
            aliases: 0,
        });
        let mut budget = yaml::Budget::for_text(text, &scan);
        let mut out = Value::Null;
        let _ = yaml::documents(text, &mut budget, |d| {
            if let Ok(d) = d {
                out = yaml::to_json(&d.root).unwrap_or_default();
            }
        });
        out
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
                "pod.yaml: document 1 (Pod \"web\"): strict decoding error: unknown field \"spec.containers[0].imagee\", unknown field \"spec.containers[0].ports[0].hostPortt\", unknown field \"spec.restartPolicyy\"\n  field spec.containers[0].imagee is not in the Kubernetes 1.37 API that skiff implements (a newer Kubernetes field, or misspelt?); did you mean \"image\"?\n  field spec.containers[0].ports[0].hostPortt is not in the Kubernetes 1.37 API that skiff implements (a newer Kubernetes field, or misspelt?); did you mean \"hostPort\"?\n  field spec.restartPolicyy is not in the Kubernetes 1.37 API that skiff implements (a newer Kubernetes field, or misspelt?); did you mean \"restartPolicy\"?"
            ]
        );
    }

    #[test]
    fn documents_are_numbered_as_a_reader_counts_them() {
        let bad = POD.replace("image: busybox", "imagee: busybox");
        let msgs = messages(load_str(&format!(
            "---\n# only a comment\n---\n{POD}---\n{bad}"
        )));
        assert!(
            msgs[0].starts_with("pod.yaml: document 2 (Pod \"web\")"),
            "{msgs:?}"
        );
    }

    /// The JSON of each document of `text` as `load` reads it (kind `Foo` skips decoding), or
    /// the first error.
    fn read_as_kubectl(text: &str) -> Result<Value, String> {
        let mut errors = Vec::new();
        let scanned = bounds::scan(text).map_err(|e| format!("{e:?}"))?;
        let mut budget = yaml::Budget::for_text(text, &scanned);
        let mut out = Value::Null;
        yaml::documents(text, &mut budget, |d| match d {
            Ok(d) => out = yaml::to_json(&d.root).unwrap_or_default(),
            Err(e) => errors.push(format!("{e:?}")),
        })
        .map_err(|e| format!("{e:?}"))?;
        match errors.pop() {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    #[test]
    fn tabs_comments_and_escapes_as_libyaml_reads_them() {
        // Each checked with kubectl 1.32 (`kubectl annotate --local -f - -o json`).
        let ok = |t: &str| read_as_kubectl(t).unwrap_or_else(|e| panic!("{t:?}: {e}"));
        let err = |t: &str| {
            read_as_kubectl(t)
                .err()
                .unwrap_or_else(|| panic!("{t:?} accepted"))
        };
        assert_eq!(ok("k:\tv\n"), serde_json::json!({"k": "v"}));
        assert_eq!(
            ok("k:\t[a]\nl: [1,\n\t2]\n"),
            serde_json::json!({"k": ["a"], "l": [1, 2]})
        );
        assert_eq!(ok("a: \"x\n\ty\"\n"), serde_json::json!({"a": "x y"}));
        assert_eq!(
            ok("a: 'q'#c\nb: {c: d}#c\n"),
            serde_json::json!({"a": "q", "b": {"c": "d"}})
        );
        assert_eq!(ok("k: \"it\\'s\"\n"), serde_json::json!({"k": "it's"}));
        assert_eq!(
            ok("a: |\n  x\n  \ty\n"),
            serde_json::json!({"a": "x\n\ty\n"})
        );
        assert!(err("s:\n- \tx\n").contains("found character that cannot start any token"));
        assert!(err("? a\n:\tb\n").contains("found character that cannot start any token"));
        assert!(err("\ta: 1\n").contains("found character that cannot start any token"));
        assert!(err("a: x\n\ty\n").contains("found a tab character that violates indentation"));
        assert!(err("a: |\n\tx\n")
            .contains("found a tab character where an indentation space is expected"));
        assert!(err("l: \"a\\/b\"\n").contains("found unknown escape char"));
        // A tab inside quotes stays a tab; `\/` outside double quotes is text.
        assert_eq!(
            ok("k: \"a:\tb\"\nl: 'a\\/b'\n"),
            serde_json::json!({"k": "a:\tb", "l": "a\\/b"})
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
    fn duplicate_keys_last_wins_as_in_kubectl() {
        // go-yaml v2 (non-strict, as sigs.k8s.io/yaml's YAMLToJSON) keeps the last value.
        let objs = load_str(&format!("{POD}metadata:\n  name: second\n")).unwrap_or_default();
        assert_eq!(objs.len(), 1);
        assert_eq!(objs[0].name(), "second");
    }

    #[test]
    fn nulls_are_go_zero_values_as_the_api_server_decodes_them() {
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, labels: {a: }}\ndata:\n  empty:\n  x: ~\n";
        let objs = load_str(cm).unwrap_or_default();
        assert_eq!(
            objs.first().map(Object::to_json),
            Some(
                serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": ""}}, "data": {"empty": "", "x": ""}})
            )
        );
        let pod = POD.replace(
            "image: busybox",
            "image: busybox\n    args: [a, ~]\n    env: [~]",
        );
        let objs = load_str(&pod).unwrap_or_default();
        let Some(Object::Pod(p)) = objs.first() else {
            panic!("no pod")
        };
        let c = &p
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default()[0];
        assert_eq!(c.args, Some(vec!["a".to_string(), String::new()]));
        assert_eq!(
            c.env.as_ref().map(|e| e[0].name.clone()),
            Some(String::new())
        );
    }

    #[test]
    fn yaml_1_1_legacy_octal_is_a_number() {
        let pod = POD.to_string()
            + "  volumes:\n  - name: v\n    configMap:\n      name: c\n      defaultMode: 0644\n      items:\n      - {key: k, path: p, mode: 0o755}\n";
        let objs = load_str(&pod).unwrap_or_default();
        let Some(Object::Pod(p)) = objs.first() else {
            panic!("no pod")
        };
        let cm = p
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .and_then(|v| v[0].config_map.clone())
            .unwrap_or_default();
        assert_eq!(cm.default_mode, Some(420));
        assert_eq!(cm.items.unwrap_or_default()[0].mode, Some(0o755));
    }

    #[test]
    fn yaml_1_1_bool_where_a_string_belongs_is_refused_with_the_fix() {
        let pod = POD.replace(
            "image: busybox",
            "image: busybox\n    env:\n    - name: A\n      value: yes\n    - name: B\n      value: \"yes\"",
        );
        let msgs = messages(load_str(&pod));
        assert_eq!(msgs, vec!["pod.yaml: document 1 (Pod \"web\"): spec.containers[0].env[0].value: invalid type: boolean `true`, expected a string (line 11: YAML reads the unquoted yes as a boolean, as kubectl does; quote it: \"yes\")"]);
        // A number where a string belongs: the text as written.
        let pod = POD.to_string() + "  nodeSelector:\n    version: 1.10\n";
        let msgs = messages(load_str(&pod));
        assert!(msgs[0].ends_with("spec.nodeSelector.version: invalid type: floating point `1.1`, expected a string (line 10: YAML reads the unquoted 1.10 as a number, as kubectl does; quote it: \"1.10\")"), "{msgs:?}");
        // Keys are strings whatever they look like (`yes` becomes "true", as in kubectl).
        let pod = POD.replace(
            "  name: web\n",
            "  name: web\n  labels:\n    yes: \"1\"\n    0x10: \"2\"\n",
        );
        let objs = load_str(&pod).unwrap_or_default();
        let labels = objs
            .first()
            .and_then(|o| match o {
                Object::Pod(p) => p.metadata.labels.clone(),
                _ => None,
            })
            .unwrap_or_default();
        assert_eq!(labels.keys().collect::<Vec<_>>(), vec!["16", "true"]);
    }

    #[test]
    fn json_streams_and_lists_of_any_kind() {
        let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"x"}]}}"#;
        let two = format!("{pod}\n  {}", pod.replace("\"a\"", "\"b\""));
        let objs = load_str(&two).unwrap_or_default();
        assert_eq!(
            objs.iter().map(Object::name).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        let list = format!("apiVersion: v1\nkind: PodList\nitems:\n- {pod}\n");
        assert_eq!(load_str(&list).map(|o| o.len()), Ok(1));
        let msgs = messages(load_str(&format!("{pod} x")));
        assert!(msgs[0].starts_with("pod.yaml:1:"), "{msgs:?}");
    }

    const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n      annotations: {a: b}\n    spec:\n      containers:\n      - name: app\n        image: nginx\n";

    #[test]
    fn workloads_run_their_template_as_one_pod() {
        let objs = load_str(&format!("{DEPLOYMENT}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n")).unwrap_or_default();
        assert_eq!(objs.len(), 2);
        let Object::Workload(w) = &objs[0] else {
            panic!("{objs:?}")
        };
        assert_eq!(w.reference(), "deployment/web");
        assert_eq!(w.scale.as_deref(), Some("replicas: 3"));
        let pod = w
            .prepare()
            .unwrap_or_else(|e| panic!("{}", e.kubectl_message()));
        assert_eq!(pod.metadata.name.as_deref(), Some("web"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(
            pod.metadata
                .labels
                .unwrap_or_default()
                .get("app")
                .map(String::as_str),
            Some("web")
        );
        assert_eq!(
            pod.spec.and_then(|s| s.restart_policy).as_deref(),
            Some("Always")
        );
        let Object::Skipped(s) = &objs[1] else {
            panic!("{objs:?}")
        };
        assert_eq!(s.reference(), "service/web");
        assert_eq!(objs[1].to_json()["spec"]["ports"][0]["port"], 80);
    }

    #[test]
    fn workloads_are_validated_as_the_api_server_validates_them() {
        let bad = DEPLOYMENT
            .replace("matchLabels: {app: web}", "matchLabels: {app: db}")
            .replace(
                "image: nginx",
                "image: nginx\n      restartPolicy: Never\n      hostname: Bad_Name",
            );
        let objs = load_str(&bad).unwrap_or_default();
        let Some(Object::Workload(w)) = objs.first() else {
            panic!("{objs:?}")
        };
        let msg = w
            .prepare()
            .map(|_| String::new())
            .unwrap_or_else(|e| e.kubectl_message());
        assert_eq!(msg, "The Deployment \"web\" is invalid: \n* spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`\n* spec.template.spec.hostname: Invalid value: \"Bad_Name\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')\n* spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"");
        let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: x}]\n";
        let objs = load_str(job).unwrap_or_default();
        let Some(Object::Workload(w)) = objs.first() else {
            panic!("{objs:?}")
        };
        let msg = w
            .prepare()
            .map(|_| String::new())
            .unwrap_or_else(|e| e.kubectl_message());
        // Upstream's text since restartPolicy defaulting to Always (validation.go validateJobSpec).
        assert_eq!(msg, "The Job \"j\" is invalid: spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"");
        let no_selector = DEPLOYMENT.replace("  selector:\n    matchLabels: {app: web}\n", "");
        let objs = load_str(&no_selector).unwrap_or_default();
        let Some(Object::Workload(w)) = objs.first() else {
            panic!("{objs:?}")
        };
        let msg = w
            .prepare()
            .map(|_| String::new())
            .unwrap_or_else(|e| e.kubectl_message());
        assert_eq!(
            msg,
            "The Deployment \"web\" is invalid: spec.selector: Required value"
        );
    }

    #[test]
    fn other_built_in_kinds_are_decoded_strictly() {
        let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  portz: []\n";
        assert_eq!(messages(load_str(svc)), vec!["pod.yaml: document 1 (Service \"s\"): strict decoding error: unknown field \"spec.portz\"\n  field spec.portz is not in the Kubernetes 1.37 API that skiff implements (a newer Kubernetes field, or misspelt?)"]);
        let cron = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  schedule: '* * * * *'\n  jobTemplate:\n    spec:\n      parallelism: 2\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{name: c, image: x}]\n";
        let objs = load_str(cron).unwrap_or_default();
        let Some(Object::Workload(w)) = objs.first() else {
            panic!("{objs:?}")
        };
        assert_eq!(w.scale.as_deref(), Some("parallelism: 2"));
        assert!(w.prepare().is_ok());
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
            messages(load_str("apiVersion: apps/v1\nkind: Deploymentt\n"))[0]
                .contains("no kind \"Deploymentt\" is registered for version \"apps/v1\"")
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
        assert_eq!(back, json_of(rich));
        // And through skiff's YAML output.
        let again = load_str(&emit::to_yaml(&back)).unwrap_or_default();
        assert_eq!(again, objs);
    }
}
