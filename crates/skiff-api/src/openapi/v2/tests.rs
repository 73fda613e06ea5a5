use super::*;

fn decoded() -> pb::Document {
    pb::Document::decode(document(Format::Protobuf)).expect("the protobuf form decodes")
}

fn definition<'a>(d: &'a pb::Document, name: &str) -> &'a pb::Schema {
    d.definitions
        .as_ref()
        .and_then(|defs| defs.additional_properties.iter().find(|n| n.name == name))
        .and_then(|n| n.value.as_ref())
        .unwrap_or_else(|| panic!("definition {name}"))
}

fn property<'a>(s: &'a pb::Schema, name: &str) -> &'a pb::Schema {
    s.properties
        .as_ref()
        .and_then(|p| p.additional_properties.iter().find(|n| n.name == name))
        .and_then(|n| n.value.as_ref())
        .unwrap_or_else(|| panic!("property {name}"))
}

fn extension(ext: &[pb::NamedAny], name: &str) -> Option<serde_json::Value> {
    let yaml = &ext.iter().find(|e| e.name == name)?.value.as_ref()?.yaml;
    Some(serde_yaml_ng::from_str(yaml).expect("extension values are YAML"))
}

#[test]
fn pod_definition_has_its_gvk_and_v2_references() {
    let d = decoded();
    assert_eq!(d.swagger, "2.0");
    let pod = definition(&d, "io.k8s.api.core.v1.Pod");
    assert_eq!(
        extension(&pod.vendor_extension, "x-kubernetes-group-version-kind"),
        Some(json!([{"group": "", "kind": "Pod", "version": "v1"}]))
    );
    assert_eq!(
        pod.r#type.as_ref().map(|t| t.value.clone()),
        Some(vec!["object".to_string()])
    );
    // A described reference is a plain `$ref` beside its description (kube-openapi's v2
    // parser rejects a reference that has a type or properties).
    let spec = property(pod, "spec");
    assert_eq!(spec.xref, "#/definitions/io.k8s.api.core.v1.PodSpec");
    assert!(spec
        .description
        .starts_with("Specification of the desired behavior"));
    assert!(spec.all_of.is_empty() && spec.r#type.is_none());
    // Containers: an array of references with the strategic merge patch metadata.
    let containers = property(definition(&d, "io.k8s.api.core.v1.PodSpec"), "containers");
    let items = &containers.items.as_ref().expect("items").schema;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].xref, "#/definitions/io.k8s.api.core.v1.Container");
    assert_eq!(
        extension(&containers.vendor_extension, "x-kubernetes-patch-merge-key"),
        Some(json!("name"))
    );
    assert_eq!(
        extension(&containers.vendor_extension, "x-kubernetes-patch-strategy"),
        Some(json!("merge"))
    );
    // A map of strings.
    let data = property(definition(&d, "io.k8s.api.core.v1.ConfigMap"), "data");
    match data
        .additional_properties
        .as_ref()
        .and_then(|a| a.oneof.as_ref())
    {
        Some(pb::AdditionalPropertiesOneof::Schema(s)) => {
            assert_eq!(s.r#type.as_ref().unwrap().value, ["string"])
        }
        other => panic!("ConfigMap.data additionalProperties: {other:?}"),
    }
    // Every served kind and its list can be found by GVK.
    for k in [
        "Namespace",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Event",
        "Node",
    ] {
        for name in [k.to_string(), format!("{k}List")] {
            let s = definition(&d, &format!("io.k8s.api.core.v1.{name}"));
            assert_eq!(
                extension(&s.vendor_extension, "x-kubernetes-group-version-kind"),
                Some(json!([{"group": "", "kind": name, "version": "v1"}]))
            );
        }
    }
}

/// The rules of kube-openapi's `proto.NewOpenAPIData` (k8s.io/kube-openapi pkg/util/proto
/// document.go), which kubectl 1.27/1.28 apply to every definition before any command that
/// validates: one violation anywhere fails `kubectl apply`/`create`.
#[test]
fn every_definition_parses_as_kube_openapi_requires() {
    let d = decoded();
    let defs = &d.definitions.as_ref().unwrap().additional_properties;
    let names: std::collections::BTreeSet<&str> = defs.iter().map(|n| n.name.as_str()).collect();
    fn check(s: &pb::Schema, path: &str, names: &std::collections::BTreeSet<&str>) {
        let types = s.r#type.as_ref().map(|t| t.value.as_slice()).unwrap_or(&[]);
        if !s.xref.is_empty() {
            let name = s
                .xref
                .strip_prefix("#/definitions/")
                .unwrap_or_else(|| panic!("{path}: reference {}", s.xref));
            assert!(names.contains(name), "{path}: unknown model {name}");
            assert!(types.is_empty(), "{path}: reference with a type");
            assert!(
                s.properties
                    .as_ref()
                    .is_none_or(|p| p.additional_properties.is_empty()),
                "{path}: reference with properties"
            );
            return;
        }
        assert!(types.len() <= 1, "{path}: several types");
        match types.first().map(String::as_str) {
            Some("array") => {
                let items = s.items.as_ref().map(|i| i.schema.as_slice()).unwrap_or(&[]);
                assert_eq!(items.len(), 1, "{path}: array items");
                check(&items[0], &format!("{path}[]"), names);
            }
            Some("object") | None => {
                if let Some(p) = &s.properties {
                    for n in &p.additional_properties {
                        check(
                            n.value.as_ref().unwrap(),
                            &format!("{path}.{}", n.name),
                            names,
                        );
                    }
                } else if let Some(pb::AdditionalPropertiesOneof::Schema(a)) = s
                    .additional_properties
                    .as_ref()
                    .and_then(|a| a.oneof.as_ref())
                {
                    check(a, &format!("{path}{{}}"), names);
                }
            }
            Some(t) => assert!(
                ["string", "integer", "number", "boolean"].contains(&t),
                "{path}: type {t}"
            ),
        }
        if let Some(def) = &s.default {
            serde_yaml_ng::from_str::<serde_json::Value>(&def.yaml)
                .unwrap_or_else(|e| panic!("{path}: default {e}"));
        }
    }
    assert!(defs.len() > 100, "{} definitions", defs.len());
    for n in defs {
        check(n.value.as_ref().unwrap(), &n.name, &names);
    }
}

fn query_params(op: &pb::Operation) -> Vec<&str> {
    op.parameters
        .iter()
        .filter_map(|p| match p.oneof.as_ref()? {
            pb::ParametersItemOneof::Parameter(pb::Parameter {
                oneof:
                    Some(pb::ParameterOneof::NonBodyParameter(pb::NonBodyParameter {
                        oneof: Some(pb::NonBodyOneof::Query(q)),
                    })),
            }) => Some(q.name.as_str()),
            _ => None,
        })
        .collect()
}

/// kubectl's v2 QueryParamVerifier (k8s.io/cli-runtime resource/query_param_verifier.go): a
/// PATCH operation whose `x-kubernetes-group-version-kind` (one map) is the kind must have a
/// `fieldValidation` query parameter, or kubectl validates client-side instead of sending
/// `fieldValidation=Strict`.
#[test]
fn patch_operations_offer_field_validation() {
    let d = decoded();
    let paths = &d.paths.as_ref().unwrap().path;
    for (path, kind) in [
        ("/api/v1/namespaces/{namespace}/pods/{name}", "Pod"),
        ("/api/v1/namespaces/{name}", "Namespace"),
        ("/api/v1/nodes/{name}", "Node"),
        (
            "/api/v1/namespaces/{namespace}/configmaps/{name}",
            "ConfigMap",
        ),
    ] {
        let item = paths
            .iter()
            .find(|p| p.name == path)
            .and_then(|p| p.value.as_ref())
            .unwrap_or_else(|| panic!("{path}"));
        let patch = item.patch.as_ref().expect("patch operation");
        assert_eq!(
            extension(&patch.vendor_extension, "x-kubernetes-group-version-kind"),
            Some(json!({"group": "", "kind": kind, "version": "v1"}))
        );
        assert_eq!(
            extension(&patch.vendor_extension, "x-kubernetes-action"),
            Some(json!("patch"))
        );
        assert!(query_params(patch).contains(&"fieldValidation"), "{path}");
        // The body: the v3 requestBody as an `in: body` parameter.
        let put = item.put.as_ref().expect("put operation");
        let body = put.parameters.iter().find_map(|p| match p.oneof.as_ref()? {
            pb::ParametersItemOneof::Parameter(pb::Parameter {
                oneof: Some(pb::ParameterOneof::BodyParameter(b)),
            }) => Some(&**b),
            _ => None,
        });
        let body = body.expect("body parameter");
        assert_eq!(
            (body.name.as_str(), body.r#in.as_str(), body.required),
            ("body", "body", true)
        );
        assert_eq!(
            body.schema.as_ref().unwrap().xref,
            format!("#/definitions/io.k8s.api.core.v1.{kind}")
        );
        assert!(query_params(put).contains(&"fieldValidation"));
        // Path parameters are flattened: the name, `in: path`, required, type string.
        let name = item
            .parameters
            .iter()
            .find_map(|p| match p.oneof.as_ref()? {
                pb::ParametersItemOneof::Parameter(pb::Parameter {
                    oneof:
                        Some(pb::ParameterOneof::NonBodyParameter(pb::NonBodyParameter {
                            oneof: Some(pb::NonBodyOneof::Path(q)),
                        })),
                }) => (q.name == "name").then_some(q),
                _ => None,
            });
        let name = name.expect("name path parameter");
        assert!(name.required);
        assert_eq!(
            (name.r#in.as_str(), name.r#type.as_str()),
            ("path", "string")
        );
    }
}

#[test]
fn json_form_is_the_same_swagger_document() {
    let v: Value = serde_json::from_slice(&document(Format::Json)).unwrap();
    assert_eq!(v["swagger"], "2.0");
    let pod = &v["definitions"]["io.k8s.api.core.v1.Pod"];
    assert_eq!(
        pod["properties"]["metadata"]["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert!(pod["properties"]["metadata"].get("allOf").is_none());
    let patch = &v["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert!(patch["consumes"]
        .as_array()
        .unwrap()
        .contains(&json!("application/strategic-merge-patch+json")));
    assert_eq!(
        patch["responses"]["200"]["schema"]["$ref"],
        "#/definitions/io.k8s.api.core.v1.Pod"
    );
    // The protobuf form encodes exactly this document.
    assert_eq!(encode(&v), decoded());
    assert_eq!(
        etag(),
        super::super::hex(&Sha256::digest(document(Format::Json))).to_uppercase()
    );
    assert_eq!(etag().len(), 64);
}

#[test]
fn accept_negotiation_follows_kube_openapi() {
    let pb = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    assert_eq!(negotiate(Some(pb)), Some(Format::Protobuf));
    assert_eq!(
        negotiate(Some(
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        )),
        Some(Format::Protobuf)
    );
    assert_eq!(negotiate(Some("application/json")), Some(Format::Json));
    assert_eq!(negotiate(Some("*/*")), Some(Format::Json));
    assert_eq!(negotiate(None), Some(Format::Json));
    assert_eq!(negotiate(Some("")), Some(Format::Json));
    assert_eq!(
        negotiate(Some(&format!("application/json;q=0.5, {pb}"))),
        Some(Format::Protobuf)
    );
    assert_eq!(
        negotiate(Some(&format!("*/*;q=0.1, {pb};q=0.9"))),
        Some(Format::Protobuf)
    );
    assert_eq!(negotiate(Some("text/html, application/yaml")), None);
    assert_eq!(negotiate(Some("application/json;q=0")), None);
}
