//! Request bodies decoded as kube-apiserver decodes them: JSON (duplicate keys recorded, as
//! sigs.k8s.io/json's strict mode reports them) or YAML (skiff-model's go-yaml-compatible
//! reader with its bounds), then the kind's typed decoding with skiff-model's strict decoder
//! (`decode_strict`), whose unknown fields `fieldValidation` turns into a 400, warnings, or
//! nothing (handlers/create.go, `transformDecodeError`; apimachinery serializer/json strict
//! errors `strict decoding error: unknown field "x"`, `duplicate field "x"`).

use std::fmt;

use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Pod, Secret, ServiceAccount};
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use skiff_model::manifest::{self, bounds, yaml};

use super::{ApiError, BodyFormat, FieldValidation, Resource};

/// A body parsed to JSON, with the paths of duplicated keys.
pub(crate) struct Parsed {
    pub value: Value,
    pub duplicates: Vec<String>,
}

struct Seed<'a> {
    path: String,
    dups: &'a mut Vec<String>,
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let path = format!("{}[{}]", self.path, out.len());
            match seq.next_element_seed(Seed {
                path,
                dups: &mut *self.dups,
            })? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = child(&self.path, &key);
            let v = map.next_value_seed(Seed {
                path: path.clone(),
                dups: &mut *self.dups,
            })?;
            if out.insert(key, v).is_some() && self.dups.len() < 64 {
                self.dups.push(path);
            }
        }
        Ok(Value::Object(out))
    }
}

/// Parses a body (JSON or YAML) into JSON.
pub(crate) fn parse(body: &[u8], format: BodyFormat) -> Result<Parsed, ApiError> {
    let bad = |m: String| ApiError::new(400, "BadRequest", m);
    match format {
        BodyFormat::Json => {
            let mut dups = Vec::new();
            let mut de = serde_json::Deserializer::from_slice(body);
            let value = Seed {
                path: String::new(),
                dups: &mut dups,
            }
            .deserialize(&mut de)
            .and_then(|v| de.end().map(|()| v))
            .map_err(|e| bad(format!("couldn't get version/kind; json parse error: {e}")))?;
            Ok(Parsed {
                value,
                duplicates: dups,
            })
        }
        BodyFormat::Yaml => {
            let text = std::str::from_utf8(body)
                .map_err(|e| bad(format!("yaml: invalid UTF-8 at byte {}", e.valid_up_to())))?;
            let scan = bounds::scan(text).map_err(|e| bad(format!("yaml: {e:?}")))?;
            let mut budget = yaml::Budget::for_text(text, &scan);
            let mut first: Option<Result<Value, String>> = None;
            let r = yaml::documents(text, &mut budget, |d| {
                if first.is_none() {
                    first = Some(match d {
                        Ok(doc) => yaml::to_json(&doc.root),
                        Err(e) => Err(format!("{e:?}")),
                    });
                }
            });
            if let Err(e) = r {
                return Err(bad(format!("yaml: {e:?}")));
            }
            let value = first
                .unwrap_or(Ok(Value::Null))
                .map_err(|e| bad(format!("error converting YAML to JSON: {e}")))?;
            Ok(Parsed {
                value,
                duplicates: Vec::new(),
            })
        }
    }
}

/// Core v1 kinds (for the text of a body whose kind is not the URL's).
const CORE_KINDS: &[&str] = &[
    "Pod",
    "ConfigMap",
    "Secret",
    "Namespace",
    "ServiceAccount",
    "Event",
    "Node",
    "Service",
    "Endpoints",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "LimitRange",
    "ResourceQuota",
    "ReplicationController",
    "PodTemplate",
    "Binding",
];

/// The object of `r` decoded from `parsed`: typed through k8s-openapi (so unknown fields are
/// dropped, as Go's typed decoding drops them), back to JSON. Returns the object and the
/// `fieldValidation=Warn` warnings.
pub(crate) fn decode_object(
    r: &Resource,
    parsed: Parsed,
    fv: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let bad = |m: String| ApiError::new(400, "BadRequest", m);
    let Parsed {
        mut value,
        duplicates,
    } = parsed;
    let Some(map) = value.as_object_mut() else {
        return Err(bad(format!(
            "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: expected an object",
            r.kind
        )));
    };
    let want_av = r.api_version();
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .unwrap_or(r.kind)
        .to_string();
    let av = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .unwrap_or(&want_av)
        .to_string();
    let version = av.rsplit('/').next().unwrap_or("").to_string();
    let cannot = |detail: String| {
        bad(format!(
            "{kind} in version {version:?} cannot be handled as a {}: {detail}",
            r.kind
        ))
    };
    if av != want_av {
        return Err(cannot(format!(
            "no kind {kind:?} is registered for version {av:?} in scheme \"pkg/api/legacyscheme/scheme.go:30\""
        )));
    }
    if kind != r.kind {
        if CORE_KINDS.contains(&kind.as_str()) {
            return Err(cannot(format!(
                "converting (v1.{kind}) to (core.{}): unknown conversion",
                r.kind
            )));
        }
        return Err(cannot(format!(
            "no kind {kind:?} is registered for version {av:?} in scheme \"pkg/api/legacyscheme/scheme.go:30\""
        )));
    }
    map.insert("apiVersion".into(), Value::String(want_av));
    map.insert("kind".into(), Value::String(r.kind.to_string()));
    // A missing metadata decodes as an empty one.
    if map.get("metadata").is_none_or(Value::is_null) {
        map.insert("metadata".into(), Value::Object(Default::default()));
    }

    let (typed, unknown) = match r.kind {
        "Pod" => typed::<Pod>(value, |p| manifest::quantity_errors(p).into_iter().next()),
        "ConfigMap" => typed::<ConfigMap>(value, |_| None),
        "Secret" => typed::<Secret>(value, |_| None),
        "Namespace" => typed::<Namespace>(value, |_| None),
        "ServiceAccount" => typed::<ServiceAccount>(value, |_| None),
        "Event" => typed::<Event>(value, |_| None),
        "Node" => typed::<Node>(value, |_| None),
        "LimitRange" => typed::<k8s_openapi::api::core::v1::LimitRange>(value, |_| None),
        "ResourceQuota" => typed::<k8s_openapi::api::core::v1::ResourceQuota>(value, |_| None),
        "Job" => typed::<k8s_openapi::api::batch::v1::Job>(value, |_| None),
        "CronJob" => typed::<k8s_openapi::api::batch::v1::CronJob>(value, |_| None),
        "Deployment" => typed::<k8s_openapi::api::apps::v1::Deployment>(value, |_| None),
        "ReplicaSet" => typed::<k8s_openapi::api::apps::v1::ReplicaSet>(value, |_| None),
        other => {
            return Err(ApiError::new(
                500,
                "InternalError",
                format!("no decoder for kind {other}"),
            ))
        }
    };
    let mut problems: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    problems.extend(duplicates.iter().map(|f| format!("duplicate field {f:?}")));
    let typed = typed.map_err(cannot)?;
    let mut warnings = Vec::new();
    match fv {
        FieldValidation::Strict if !problems.is_empty() => {
            return Err(cannot(format!(
                "strict decoding error: {}",
                problems.join(", ")
            )))
        }
        FieldValidation::Warn => warnings = problems,
        _ => {}
    }
    Ok((typed, warnings))
}

fn typed<T>(
    value: Value,
    extra: impl Fn(&T) -> Option<String>,
) -> (Result<Value, String>, Vec<String>)
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let d = manifest::decode_strict::<T>(value);
    let v = d.value.and_then(|t| match extra(&t) {
        Some(e) => Err(e),
        None => serde_json::to_value(&t).map_err(|e| e.to_string()),
    });
    (v, d.unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::resource;

    fn pods() -> &'static Resource {
        resource("", "pods").unwrap_or_else(|| panic!("pods"))
    }

    fn decode(body: &str, fv: FieldValidation) -> Result<(Value, Vec<String>), ApiError> {
        let p = parse(body.as_bytes(), BodyFormat::Json)?;
        decode_object(pods(), p, fv)
    }

    /// apimachinery serializer/json strict mode: unknown and duplicate fields.
    #[test]
    fn field_validation_strict_warn_ignore() {
        let body = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","name":"q"},"spec":{"foo":1,"containers":[{"name":"c","image":"i"}]}}"#;
        let e = decode(body, FieldValidation::Strict)
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            r#"Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.foo", duplicate field "metadata.name""#
        );
        let (v, w) = decode(body, FieldValidation::Warn).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            w,
            vec![
                r#"unknown field "spec.foo""#,
                r#"duplicate field "metadata.name""#
            ]
        );
        assert_eq!(v["metadata"]["name"], "q");
        assert!(v["spec"].get("foo").is_none());
        let (_, w) = decode(body, FieldValidation::Ignore).unwrap_or_else(|e| panic!("{e}"));
        assert!(w.is_empty());
    }

    /// handlers/create.go + transformDecodeError: kind and version of the body vs the URL.
    #[test]
    fn kind_and_version_must_be_the_urls() {
        let e = decode(
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
            FieldValidation::Strict,
        )
        .err()
        .map(|e| e.message);
        assert_eq!(
            e.as_deref(),
            Some(
                r#"ConfigMap in version "v1" cannot be handled as a Pod: converting (v1.ConfigMap) to (core.Pod): unknown conversion"#
            )
        );
        let e = decode(
            r#"{"apiVersion":"apps/v1","kind":"Pod"}"#,
            FieldValidation::Strict,
        )
        .err()
        .map(|e| e.message);
        assert!(
            e.is_some_and(|m| m.contains(r#"no kind "Pod" is registered for version "apps/v1""#))
        );
        // Kind-less bodies take the URL's.
        assert!(decode(
            r#"{"metadata":{"name":"x"},"spec":{"containers":[]}}"#,
            FieldValidation::Strict
        )
        .is_ok());
        // Type errors and bad quantities are 400s too.
        let e = decode(
            r#"{"spec":{"containers":[{"name":"c","resources":{"limits":{"cpu":"lots"}}}]}}"#,
            FieldValidation::Strict,
        )
        .err()
        .map(|e| e.message);
        assert!(e.is_some_and(|m| m.contains("quantities must match")));
    }

    #[test]
    fn yaml_bodies() {
        let p = parse(
            b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n",
            BodyFormat::Yaml,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (v, _) =
            decode_object(pods(), p, FieldValidation::Strict).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["metadata"]["name"], "web");
        assert!(parse(b"{", BodyFormat::Json).is_err());
    }
}
