//! `GET /openapi/v2`: the Swagger 2.0 document kubectl 1.27 and 1.28 validate with. Their
//! client-go asks for it in protobuf (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`,
//! falling back to `/swagger-2.0.0.pb-v1` on a 404) and decodes it as gnostic's
//! `openapi.v2.Document`. kubectl then
//! * looks for a `fieldValidation` query parameter on the PATCH operation whose
//!   `x-kubernetes-group-version-kind` is the object's kind (the v2 QueryParamVerifier): found,
//!   it sends `fieldValidation=Strict` and leaves validation to the server;
//! * parses every definition into kube-openapi's `proto.Models` (one bad definition — a `$ref`
//!   with a `type`, an unknown `$ref`, an array without exactly one `items` — fails the command)
//!   and finds a kind's schema by the definitions' `x-kubernetes-group-version-kind` (client-side
//!   validation, client-side apply's strategic merge patch metadata).
//!
//! Where the data comes from: the `api/v1` OpenAPI v3 document of [`super`] (itself generated
//! from k8s-openapi's schemas), rewritten into the v2 shape — `#/definitions/` references, a
//! described reference as `$ref` beside its description instead of `allOf: [{$ref}]`, request
//! bodies as `in: body` parameters, parameter schemas flattened — so there is one schema source.
//! The JSON form is that v2 document; the protobuf form is the same document encoded as gnostic's
//! messages. Both are built once, on first use.
//!
//! The messages below are written by hand with prost's derive (no codegen step, no `.proto`
//! in the build): they are the subset of gnostic's `openapiv2/OpenAPIv2.proto`
//! (github.com/google/gnostic-models, Apache-2.0) that this document uses, with that file's
//! exact field numbers, which are the wire contract. Fields skiff never writes are left out;
//! a decoder skips nothing it needs because absent proto3 fields are simply unset.

use std::sync::LazyLock;

use prost::Message;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::REF_PREFIX;

/// The media type kube-openapi answers protobuf requests with (it also accepts the older
/// `…spec.v2@v1.0+protobuf` spelling client-go sends).
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
const PROTOBUF_SUBTYPES: [&str; 2] = [
    "com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "com.github.proto-openapi.spec.v2.v1.0+protobuf",
];

/// A v2 `$ref` prefix.
const DEFINITIONS: &str = "#/definitions/";

/// The two encodings of the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Protobuf,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Protobuf => PROTOBUF,
        }
    }
}

struct V2 {
    json: bytes::Bytes,
    proto: bytes::Bytes,
    etag: String,
}

static V2: LazyLock<V2> = LazyLock::new(|| {
    let doc = v2_document(super::all_groups());
    // Serializing a Value cannot fail; see CORE_V1.
    let json = serde_json::to_vec(&doc).unwrap_or_default();
    let proto = encode(&doc).encode_to_vec();
    // One ETag for both encodings (as kube-openapi: the responses carry `Vary: Accept`).
    let etag = super::hex(&Sha256::digest(&json)).to_uppercase();
    V2 {
        json: json.into(),
        proto: proto.into(),
        etag,
    }
});

/// The document in `format`.
pub fn document(format: Format) -> bytes::Bytes {
    match format {
        Format::Json => V2.json.clone(),
        Format::Protobuf => V2.proto.clone(),
    }
}

/// The document's ETag value (unquoted; the sha256 of the JSON form).
pub fn etag() -> &'static str {
    &V2.etag
}

/// The format an `Accept` header asks for, as kube-openapi's handler chooses: the media
/// ranges by preference (q, then specificity), the first that JSON or protobuf matches. No
/// header means `*/*` (JSON); None means 406.
pub fn negotiate(accept: Option<&str>) -> Option<Format> {
    let accept = accept
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or("*/*");
    // (q, specificity, index, type, subtype); bounded by the header size limit of the server.
    let mut ranges = Vec::new();
    for (i, range) in accept.split(',').enumerate() {
        let mut parts = range.split(';').map(str::trim);
        let mt = parts.next().unwrap_or("").to_ascii_lowercase();
        let (ty, sub) = mt.split_once('/').unwrap_or((mt.as_str(), "*"));
        let (ty, sub) = (ty.trim().to_string(), sub.trim().to_string());
        let mut q = 1.0f64;
        for p in parts {
            if let Some(("q", v)) = p.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                q = v.parse().unwrap_or(0.0);
            }
        }
        if q <= 0.0 || ty.is_empty() {
            continue;
        }
        let specificity = u8::from(ty != "*") + u8::from(sub != "*");
        ranges.push((q, specificity, i, ty, sub));
    }
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let offered = [
        ("json", Format::Json),
        (PROTOBUF_SUBTYPES[0], Format::Protobuf),
        (PROTOBUF_SUBTYPES[1], Format::Protobuf),
    ];
    for (_, _, _, ty, sub) in &ranges {
        if ty != "application" && ty != "*" {
            continue;
        }
        if let Some((_, f)) = offered.iter().find(|(s, _)| sub == "*" || sub == s) {
            return Some(*f);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// v3 → v2 (JSON)

/// The Swagger 2.0 document of the served kinds, from the v3 `api/v1` document.
fn v2_document(v3: &Value) -> Value {
    let definitions: Map<String, Value> = v3
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), schema(v))).collect())
        .unwrap_or_default();
    let paths: Map<String, Value> = v3
        .get("paths")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), path_item(v))).collect())
        .unwrap_or_default();
    json!({
        "swagger": "2.0",
        "info": v3.get("info").cloned().unwrap_or_else(|| json!({"title": "Kubernetes", "version": "unversioned"})),
        "paths": paths,
        "definitions": definitions,
    })
}

fn rewrite_ref(r: &Value) -> Value {
    match r.as_str().and_then(|s| s.strip_prefix(REF_PREFIX)) {
        Some(name) => Value::String(format!("{DEFINITIONS}{name}")),
        None => r.clone(),
    }
}

/// A v3 schema as a v2 schema. `allOf: [{$ref}]` (v3's way to describe a reference) becomes a
/// plain `$ref` with the siblings kept, which is upstream's v2 shape and the only one
/// kube-openapi's v2 parser accepts for a reference. `nullable`, `oneOf`, `anyOf` and `not`
/// have no v2 form and are dropped.
fn schema(v: &Value) -> Value {
    let Some(o) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, x) in o {
        match k.as_str() {
            "$ref" => {
                out.insert(k.clone(), rewrite_ref(x));
            }
            "allOf" => match x.as_array().map(Vec::as_slice) {
                Some([one])
                    if one.as_object().is_some_and(|m| m.len() == 1)
                        && one.get("$ref").is_some() =>
                {
                    out.insert("$ref".into(), rewrite_ref(&one["$ref"]));
                }
                Some(all) => {
                    out.insert(k.clone(), Value::Array(all.iter().map(schema).collect()));
                }
                None => {}
            },
            "properties" => {
                let props: Map<String, Value> = x
                    .as_object()
                    .map(|m| m.iter().map(|(n, s)| (n.clone(), schema(s))).collect())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" => {
                let items = match x {
                    Value::Array(a) => Value::Array(a.iter().map(schema).collect()),
                    other => schema(other),
                };
                out.insert(k.clone(), items);
            }
            "additionalProperties" => {
                out.insert(k.clone(), schema(x));
            }
            "nullable" | "oneOf" | "anyOf" | "not" => {}
            _ => {
                out.insert(k.clone(), x.clone());
            }
        }
    }
    Value::Object(out)
}

/// The schema of the first media type of a v3 `content` map, and the media types.
fn content(v: &Value) -> (Option<Value>, Vec<String>) {
    let Some(c) = v.get("content").and_then(Value::as_object) else {
        return (None, Vec::new());
    };
    let first = c.values().find_map(|m| m.get("schema")).map(schema);
    (first, c.keys().cloned().collect())
}

/// A v3 parameter (`{in, name, schema: {type, …}}`) as a v2 one (the schema's keywords beside
/// `in` and `name`).
fn parameter(v: &Value) -> Value {
    let Some(o) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, x) in o {
        if k == "schema" {
            if let Some(s) = schema(x).as_object() {
                out.extend(s.clone());
            }
        } else if k == "$ref" {
            out.insert(k.clone(), rewrite_ref(x));
        } else {
            out.insert(k.clone(), x.clone());
        }
    }
    Value::Object(out)
}

fn operation(v: &Value) -> Value {
    let Some(o) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    let mut params = Vec::new();
    if let Some(rb) = o.get("requestBody") {
        let (s, types) = content(rb);
        let mut body = json!({"in": "body", "name": "body", "required": rb.get("required").and_then(Value::as_bool).unwrap_or(false)});
        if let Some(s) = s {
            body["schema"] = s;
        }
        params.push(body);
        out.insert("consumes".into(), json!(types));
    }
    if let Some(ps) = o.get("parameters").and_then(Value::as_array) {
        params.extend(ps.iter().map(parameter));
    }
    let mut produces: Vec<String> = Vec::new();
    let mut responses = Map::new();
    for (code, r) in o
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let (s, types) = content(r);
        let mut resp = json!({"description": r.get("description").cloned().unwrap_or(json!(""))});
        if let Some(s) = s {
            resp["schema"] = s;
        }
        responses.insert(code.clone(), resp);
        for t in types {
            if !produces.contains(&t) {
                produces.push(t);
            }
        }
    }
    for (k, x) in o {
        if matches!(
            k.as_str(),
            "operationId" | "tags" | "summary" | "description" | "deprecated"
        ) || k.starts_with("x-")
        {
            out.insert(k.clone(), x.clone());
        }
    }
    out.insert("parameters".into(), Value::Array(params));
    out.insert("produces".into(), json!(produces));
    out.insert("responses".into(), Value::Object(responses));
    out.insert("schemes".into(), json!(["https"]));
    Value::Object(out)
}

fn path_item(v: &Value) -> Value {
    let Some(o) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, x) in o {
        match k.as_str() {
            "get" | "put" | "post" | "delete" | "options" | "head" | "patch" => {
                out.insert(k.clone(), operation(x));
            }
            "parameters" => {
                let ps = x.as_array().map(|a| a.iter().map(parameter).collect());
                out.insert(k.clone(), Value::Array(ps.unwrap_or_default()));
            }
            _ if k.starts_with("x-") => {
                out.insert(k.clone(), x.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------------
// v2 JSON → gnostic protobuf

fn str_of(o: &Map<String, Value>, k: &str) -> String {
    o.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}
fn bool_of(o: &Map<String, Value>, k: &str) -> bool {
    o.get(k).and_then(Value::as_bool).unwrap_or(false)
}
fn f64_of(o: &Map<String, Value>, k: &str) -> f64 {
    o.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}
fn i64_of(o: &Map<String, Value>, k: &str) -> i64 {
    o.get(k).and_then(Value::as_i64).unwrap_or(0)
}
fn strings(o: &Map<String, Value>, k: &str) -> Vec<String> {
    o.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// gnostic carries free-form values (defaults, enums, examples, extensions) as YAML text.
fn any(v: &Value) -> pb::Any {
    pb::Any {
        yaml: serde_yaml_ng::to_string(v).unwrap_or_else(|_| v.to_string()),
    }
}

/// The `x-…` keys of an object, in order.
fn extensions(o: &Map<String, Value>) -> Vec<pb::NamedAny> {
    o.iter()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| pb::NamedAny {
            name: k.clone(),
            value: Some(any(v)),
        })
        .collect()
}

fn encode(doc: &Value) -> pb::Document {
    let empty = Map::new();
    let o = doc.as_object().unwrap_or(&empty);
    let info = o.get("info").and_then(Value::as_object).unwrap_or(&empty);
    let paths = o
        .get("paths")
        .and_then(Value::as_object)
        .unwrap_or(&empty)
        .iter()
        .map(|(name, item)| pb::NamedPathItem {
            name: name.clone(),
            value: Some(pb_path_item(item.as_object().unwrap_or(&empty))),
        })
        .collect();
    pb::Document {
        swagger: str_of(o, "swagger"),
        info: Some(pb::Info {
            title: str_of(info, "title"),
            version: str_of(info, "version"),
        }),
        consumes: strings(o, "consumes"),
        produces: strings(o, "produces"),
        paths: Some(pb::Paths { path: paths }),
        definitions: Some(pb::Definitions {
            additional_properties: named_schemas(o.get("definitions")),
        }),
    }
}

fn named_schemas(v: Option<&Value>) -> Vec<pb::NamedSchema> {
    v.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, s)| pb::NamedSchema {
            name: name.clone(),
            value: Some(pb_schema(s)),
        })
        .collect()
}

fn pb_schema(v: &Value) -> pb::Schema {
    let Some(o) = v.as_object() else {
        return pb::Schema::default();
    };
    pb::Schema {
        xref: str_of(o, "$ref"),
        format: str_of(o, "format"),
        title: str_of(o, "title"),
        description: str_of(o, "description"),
        default: o.get("default").map(any),
        multiple_of: f64_of(o, "multipleOf"),
        maximum: f64_of(o, "maximum"),
        exclusive_maximum: bool_of(o, "exclusiveMaximum"),
        minimum: f64_of(o, "minimum"),
        exclusive_minimum: bool_of(o, "exclusiveMinimum"),
        max_length: i64_of(o, "maxLength"),
        min_length: i64_of(o, "minLength"),
        pattern: str_of(o, "pattern"),
        max_items: i64_of(o, "maxItems"),
        min_items: i64_of(o, "minItems"),
        unique_items: bool_of(o, "uniqueItems"),
        max_properties: i64_of(o, "maxProperties"),
        min_properties: i64_of(o, "minProperties"),
        required: strings(o, "required"),
        r#enum: o
            .get("enum")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(any).collect())
            .unwrap_or_default(),
        additional_properties: match o.get("additionalProperties") {
            Some(Value::Bool(x)) => Some(pb::AdditionalPropertiesItem {
                oneof: Some(pb::AdditionalPropertiesOneof::Boolean(*x)),
            }),
            Some(x @ Value::Object(_)) => Some(pb::AdditionalPropertiesItem {
                oneof: Some(pb::AdditionalPropertiesOneof::Schema(Box::new(pb_schema(
                    x,
                )))),
            }),
            _ => None,
        },
        r#type: match o.get("type") {
            Some(Value::String(t)) => Some(pb::TypeItem {
                value: vec![t.clone()],
            }),
            Some(Value::Array(_)) => Some(pb::TypeItem {
                value: strings(o, "type"),
            }),
            _ => None,
        },
        items: match o.get("items") {
            Some(Value::Array(a)) => Some(pb::ItemsItem {
                schema: a.iter().map(pb_schema).collect(),
            }),
            Some(x @ Value::Object(_)) => Some(pb::ItemsItem {
                schema: vec![pb_schema(x)],
            }),
            _ => None,
        },
        all_of: o
            .get("allOf")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(pb_schema).collect())
            .unwrap_or_default(),
        properties: o.get("properties").map(|p| pb::Properties {
            additional_properties: named_schemas(Some(p)),
        }),
        discriminator: str_of(o, "discriminator"),
        read_only: bool_of(o, "readOnly"),
        example: o.get("example").map(any),
        vendor_extension: extensions(o),
    }
}

fn pb_parameter(v: &Value) -> Option<pb::ParametersItem> {
    let o = v.as_object()?;
    let param = match o.get("in").and_then(Value::as_str)? {
        "body" => pb::ParameterOneof::BodyParameter(Box::new(pb::BodyParameter {
            description: str_of(o, "description"),
            name: str_of(o, "name"),
            r#in: str_of(o, "in"),
            required: bool_of(o, "required"),
            schema: o.get("schema").map(pb_schema),
            vendor_extension: extensions(o),
        })),
        "query" => pb::ParameterOneof::NonBodyParameter(pb::NonBodyParameter {
            oneof: Some(pb::NonBodyOneof::Query(pb::QueryParameterSubSchema {
                required: bool_of(o, "required"),
                r#in: str_of(o, "in"),
                description: str_of(o, "description"),
                name: str_of(o, "name"),
                allow_empty_value: bool_of(o, "allowEmptyValue"),
                r#type: str_of(o, "type"),
                format: str_of(o, "format"),
                default: o.get("default").map(any),
                unique_items: bool_of(o, "uniqueItems"),
                vendor_extension: extensions(o),
            })),
        }),
        "path" => pb::ParameterOneof::NonBodyParameter(pb::NonBodyParameter {
            oneof: Some(pb::NonBodyOneof::Path(pb::PathParameterSubSchema {
                required: bool_of(o, "required"),
                r#in: str_of(o, "in"),
                description: str_of(o, "description"),
                name: str_of(o, "name"),
                r#type: str_of(o, "type"),
                format: str_of(o, "format"),
                default: o.get("default").map(any),
                unique_items: bool_of(o, "uniqueItems"),
                vendor_extension: extensions(o),
            })),
        }),
        // Header and form parameters: skiff's document has none.
        _ => return None,
    };
    Some(pb::ParametersItem {
        oneof: Some(pb::ParametersItemOneof::Parameter(pb::Parameter {
            oneof: Some(param),
        })),
    })
}

fn pb_parameters(o: &Map<String, Value>) -> Vec<pb::ParametersItem> {
    o.get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(pb_parameter)
        .collect()
}

fn pb_operation(v: Option<&Value>) -> Option<pb::Operation> {
    let o = v?.as_object()?;
    let response_code = o
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(code, r)| pb::NamedResponseValue {
            name: code.clone(),
            value: Some(pb::ResponseValue {
                oneof: Some(pb::ResponseValueOneof::Response(pb::Response {
                    description: r
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    schema: r.get("schema").map(|x| pb::SchemaItem {
                        oneof: Some(pb::SchemaItemOneof::Schema(pb_schema(x))),
                    }),
                })),
            }),
        })
        .collect();
    Some(pb::Operation {
        tags: strings(o, "tags"),
        summary: str_of(o, "summary"),
        description: str_of(o, "description"),
        operation_id: str_of(o, "operationId"),
        produces: strings(o, "produces"),
        consumes: strings(o, "consumes"),
        parameters: pb_parameters(o),
        responses: Some(pb::Responses { response_code }),
        schemes: strings(o, "schemes"),
        deprecated: bool_of(o, "deprecated"),
        vendor_extension: extensions(o),
    })
}

fn pb_path_item(o: &Map<String, Value>) -> pb::PathItem {
    pb::PathItem {
        get: pb_operation(o.get("get")),
        put: pb_operation(o.get("put")),
        post: pb_operation(o.get("post")),
        delete: pb_operation(o.get("delete")),
        options: pb_operation(o.get("options")),
        head: pb_operation(o.get("head")),
        patch: pb_operation(o.get("patch")),
        parameters: pb_parameters(o),
        vendor_extension: extensions(o),
    }
}

/// gnostic's `openapi.v2` messages (OpenAPIv2.proto), the subset skiff writes. Tags are that
/// file's field numbers; names are its field names in Rust case.
pub mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Document {
        #[prost(string, tag = "1")]
        pub swagger: String,
        #[prost(message, optional, tag = "2")]
        pub info: Option<Info>,
        #[prost(string, repeated, tag = "6")]
        pub consumes: Vec<String>,
        #[prost(string, repeated, tag = "7")]
        pub produces: Vec<String>,
        #[prost(message, optional, tag = "8")]
        pub paths: Option<Paths>,
        #[prost(message, optional, tag = "9")]
        pub definitions: Option<Definitions>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Info {
        #[prost(string, tag = "1")]
        pub title: String,
        #[prost(string, tag = "2")]
        pub version: String,
    }

    /// `google.protobuf.Any value = 1` is never used by kube-apiserver; the YAML text is.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Any {
        #[prost(string, tag = "2")]
        pub yaml: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedAny {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<Any>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Paths {
        #[prost(message, repeated, tag = "2")]
        pub path: Vec<NamedPathItem>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedPathItem {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<PathItem>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PathItem {
        #[prost(message, optional, tag = "2")]
        pub get: Option<Operation>,
        #[prost(message, optional, tag = "3")]
        pub put: Option<Operation>,
        #[prost(message, optional, tag = "4")]
        pub post: Option<Operation>,
        #[prost(message, optional, tag = "5")]
        pub delete: Option<Operation>,
        #[prost(message, optional, tag = "6")]
        pub options: Option<Operation>,
        #[prost(message, optional, tag = "7")]
        pub head: Option<Operation>,
        #[prost(message, optional, tag = "8")]
        pub patch: Option<Operation>,
        #[prost(message, repeated, tag = "9")]
        pub parameters: Vec<ParametersItem>,
        #[prost(message, repeated, tag = "10")]
        pub vendor_extension: Vec<NamedAny>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Operation {
        #[prost(string, repeated, tag = "1")]
        pub tags: Vec<String>,
        #[prost(string, tag = "2")]
        pub summary: String,
        #[prost(string, tag = "3")]
        pub description: String,
        #[prost(string, tag = "5")]
        pub operation_id: String,
        #[prost(string, repeated, tag = "6")]
        pub produces: Vec<String>,
        #[prost(string, repeated, tag = "7")]
        pub consumes: Vec<String>,
        #[prost(message, repeated, tag = "8")]
        pub parameters: Vec<ParametersItem>,
        #[prost(message, optional, tag = "9")]
        pub responses: Option<Responses>,
        #[prost(string, repeated, tag = "10")]
        pub schemes: Vec<String>,
        #[prost(bool, tag = "11")]
        pub deprecated: bool,
        #[prost(message, repeated, tag = "13")]
        pub vendor_extension: Vec<NamedAny>,
    }

    /// `oneof { Parameter parameter = 1; JsonReference json_reference = 2; }` (references
    /// are not used).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ParametersItem {
        #[prost(oneof = "ParametersItemOneof", tags = "1")]
        pub oneof: Option<ParametersItemOneof>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum ParametersItemOneof {
        #[prost(message, tag = "1")]
        Parameter(Parameter),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Parameter {
        #[prost(oneof = "ParameterOneof", tags = "1, 2")]
        pub oneof: Option<ParameterOneof>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum ParameterOneof {
        /// Boxed: a body parameter holds a whole `Schema`.
        #[prost(message, boxed, tag = "1")]
        BodyParameter(Box<BodyParameter>),
        #[prost(message, tag = "2")]
        NonBodyParameter(NonBodyParameter),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BodyParameter {
        #[prost(string, tag = "1")]
        pub description: String,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(string, tag = "3")]
        pub r#in: String,
        #[prost(bool, tag = "4")]
        pub required: bool,
        #[prost(message, optional, tag = "5")]
        pub schema: Option<Schema>,
        #[prost(message, repeated, tag = "6")]
        pub vendor_extension: Vec<NamedAny>,
    }

    /// `oneof { header = 1; form_data = 2; query = 3; path = 4; }` (header and form data are
    /// not used).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NonBodyParameter {
        #[prost(oneof = "NonBodyOneof", tags = "3, 4")]
        pub oneof: Option<NonBodyOneof>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum NonBodyOneof {
        #[prost(message, tag = "3")]
        Query(QueryParameterSubSchema),
        #[prost(message, tag = "4")]
        Path(PathParameterSubSchema),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct QueryParameterSubSchema {
        #[prost(bool, tag = "1")]
        pub required: bool,
        #[prost(string, tag = "2")]
        pub r#in: String,
        #[prost(string, tag = "3")]
        pub description: String,
        #[prost(string, tag = "4")]
        pub name: String,
        #[prost(bool, tag = "5")]
        pub allow_empty_value: bool,
        #[prost(string, tag = "6")]
        pub r#type: String,
        #[prost(string, tag = "7")]
        pub format: String,
        #[prost(message, optional, tag = "10")]
        pub default: Option<Any>,
        #[prost(bool, tag = "20")]
        pub unique_items: bool,
        #[prost(message, repeated, tag = "23")]
        pub vendor_extension: Vec<NamedAny>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PathParameterSubSchema {
        #[prost(bool, tag = "1")]
        pub required: bool,
        #[prost(string, tag = "2")]
        pub r#in: String,
        #[prost(string, tag = "3")]
        pub description: String,
        #[prost(string, tag = "4")]
        pub name: String,
        #[prost(string, tag = "5")]
        pub r#type: String,
        #[prost(string, tag = "6")]
        pub format: String,
        #[prost(message, optional, tag = "9")]
        pub default: Option<Any>,
        #[prost(bool, tag = "19")]
        pub unique_items: bool,
        #[prost(message, repeated, tag = "22")]
        pub vendor_extension: Vec<NamedAny>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Responses {
        #[prost(message, repeated, tag = "1")]
        pub response_code: Vec<NamedResponseValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedResponseValue {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<ResponseValue>,
    }

    /// `oneof { Response response = 1; JsonReference json_reference = 2; }`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResponseValue {
        #[prost(oneof = "ResponseValueOneof", tags = "1")]
        pub oneof: Option<ResponseValueOneof>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum ResponseValueOneof {
        #[prost(message, tag = "1")]
        Response(Response),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Response {
        #[prost(string, tag = "1")]
        pub description: String,
        #[prost(message, optional, tag = "2")]
        pub schema: Option<SchemaItem>,
    }

    /// `oneof { Schema schema = 1; FileSchema file_schema = 2; }`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SchemaItem {
        #[prost(oneof = "SchemaItemOneof", tags = "1")]
        pub oneof: Option<SchemaItemOneof>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum SchemaItemOneof {
        #[prost(message, tag = "1")]
        Schema(Schema),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Definitions {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedSchema>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedSchema {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<Schema>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Properties {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedSchema>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AdditionalPropertiesItem {
        #[prost(oneof = "AdditionalPropertiesOneof", tags = "1, 2")]
        pub oneof: Option<AdditionalPropertiesOneof>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum AdditionalPropertiesOneof {
        /// Boxed: `Schema` contains this item (and is large).
        #[prost(message, boxed, tag = "1")]
        Schema(Box<Schema>),
        #[prost(bool, tag = "2")]
        Boolean(bool),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeItem {
        #[prost(string, repeated, tag = "1")]
        pub value: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ItemsItem {
        #[prost(message, repeated, tag = "1")]
        pub schema: Vec<Schema>,
    }

    /// All of gnostic's `Schema` but `xml` (28) and `external_docs` (29).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Schema {
        /// `_ref`: the `$ref`.
        #[prost(string, tag = "1")]
        pub xref: String,
        #[prost(string, tag = "2")]
        pub format: String,
        #[prost(string, tag = "3")]
        pub title: String,
        #[prost(string, tag = "4")]
        pub description: String,
        #[prost(message, optional, tag = "5")]
        pub default: Option<Any>,
        #[prost(double, tag = "6")]
        pub multiple_of: f64,
        #[prost(double, tag = "7")]
        pub maximum: f64,
        #[prost(bool, tag = "8")]
        pub exclusive_maximum: bool,
        #[prost(double, tag = "9")]
        pub minimum: f64,
        #[prost(bool, tag = "10")]
        pub exclusive_minimum: bool,
        #[prost(int64, tag = "11")]
        pub max_length: i64,
        #[prost(int64, tag = "12")]
        pub min_length: i64,
        #[prost(string, tag = "13")]
        pub pattern: String,
        #[prost(int64, tag = "14")]
        pub max_items: i64,
        #[prost(int64, tag = "15")]
        pub min_items: i64,
        #[prost(bool, tag = "16")]
        pub unique_items: bool,
        #[prost(int64, tag = "17")]
        pub max_properties: i64,
        #[prost(int64, tag = "18")]
        pub min_properties: i64,
        #[prost(string, repeated, tag = "19")]
        pub required: Vec<String>,
        #[prost(message, repeated, tag = "20")]
        pub r#enum: Vec<Any>,
        #[prost(message, optional, tag = "21")]
        pub additional_properties: Option<AdditionalPropertiesItem>,
        #[prost(message, optional, tag = "22")]
        pub r#type: Option<TypeItem>,
        #[prost(message, optional, tag = "23")]
        pub items: Option<ItemsItem>,
        #[prost(message, repeated, tag = "24")]
        pub all_of: Vec<Schema>,
        #[prost(message, optional, tag = "25")]
        pub properties: Option<Properties>,
        #[prost(string, tag = "26")]
        pub discriminator: String,
        #[prost(bool, tag = "27")]
        pub read_only: bool,
        #[prost(message, optional, tag = "30")]
        pub example: Option<Any>,
        #[prost(message, repeated, tag = "31")]
        pub vendor_extension: Vec<NamedAny>,
    }
}

#[cfg(test)]
mod tests;
