use super::*;

fn doc() -> Value {
    let bytes = v3_document("api/v1").expect("api/v1 document");
    serde_json::from_slice(&bytes).expect("the document is JSON")
}

#[test]
fn index_points_at_the_hashed_core_document() {
    let idx = v3_index();
    let url = idx["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    let hash = v3_hash("api/v1").unwrap();
    assert_eq!(url, format!("/openapi/v3/api/v1?hash={hash}"));
    assert_eq!(hash.len(), 64);
    // The hash is of the served bytes (kubectl's cache is keyed by it).
    let bytes = v3_document("api/v1").unwrap();
    assert_eq!(hex(&Sha256::digest(&bytes)).to_uppercase(), hash);
    assert!(v3_document("apis/nope/v1").is_none());
    assert!(v3_hash("apis/nope/v1").is_none());
    // Issue 12: the apps and batch groups have their documents.
    for gv in ["apis/apps/v1", "apis/batch/v1"] {
        let h = v3_hash(gv).unwrap();
        assert_eq!(
            idx["paths"][gv]["serverRelativeURL"],
            format!("/openapi/v3/{gv}?hash={h}")
        );
    }
}

#[test]
fn served_kinds_have_their_gvk_and_lists() {
    let d = doc();
    let schemas = d["components"]["schemas"].as_object().unwrap();
    for k in [
        "Pod",
        "Namespace",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Event",
        "Node",
    ] {
        for name in [k.to_string(), format!("{k}List")] {
            let s = &schemas[&format!("io.k8s.api.core.v1.{name}")];
            assert_eq!(
                s["x-kubernetes-group-version-kind"],
                json!([{"group": "", "kind": name, "version": "v1"}]),
                "{name}"
            );
            assert_eq!(schema_for_kind(&name), Some(s));
        }
    }
    assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
    assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.Status"));
    // kinds skiff does not serve are not described
    assert!(!schemas.contains_key("io.k8s.api.core.v1.Service"));
}

/// kubectl's queryParamVerifierV3 (k8s.io/cli-runtime resource/query_param_verifier_v3.go):
/// the PATCH operation of a path whose GVK is the kind must list `fieldValidation` as a query
/// parameter, or kubectl does client-side validation instead of sending `fieldValidation=Strict`.
#[test]
fn patch_operations_offer_field_validation() {
    let d = doc();
    let p = &d["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Pod");
    assert_eq!(p["operationId"], "patchCoreV1NamespacedPod");
    let names: Vec<_> = p["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["name"].as_str().unwrap(), x["in"].as_str().unwrap()))
        .collect();
    assert!(names.contains(&("fieldValidation", "query")), "{names:?}");
    assert!(names.contains(&("force", "query")));
    let n = &d["paths"]["/api/v1/nodes/{name}"]["patch"];
    assert_eq!(n["x-kubernetes-group-version-kind"]["kind"], "Node");
    assert_eq!(
        d["paths"]["/api/v1/namespaces/{namespace}/pods"]["get"]["operationId"],
        "listCoreV1NamespacedPod"
    );
}

/// `kubectl explain pods.spec.initContainers.restartPolicy` walks Pod → spec (allOf $ref
/// PodSpec) → initContainers (items $ref Container) → restartPolicy.
#[test]
fn explain_path_resolves_through_refs() {
    let pod = resolve(schema_for_kind("Pod").unwrap());
    let spec = resolve(&pod["properties"]["spec"]);
    let init = &spec["properties"]["initContainers"];
    assert_eq!(init["type"], "array");
    let c = resolve(&init["items"]);
    let rp = &c["properties"]["restartPolicy"];
    assert_eq!(rp["type"], "string");
    assert!(rp["description"].as_str().unwrap().contains("sidecar"));
}

/// The struct tags of k8s.io/api core/v1/types.go and apimachinery meta/v1/types.go as the
/// upstream document's extensions (the merge keys named in images-serve-facts §6.5).
#[test]
fn patch_extensions_are_on_the_fields() {
    let d = doc();
    let s = &d["components"]["schemas"];
    let ext = |schema: &str, field: &str| {
        let p = &s[schema]["properties"][field];
        (
            p["x-kubernetes-patch-strategy"].clone(),
            p["x-kubernetes-patch-merge-key"].clone(),
        )
    };
    assert_eq!(
        ext("io.k8s.api.core.v1.Container", "ports"),
        (json!("merge"), json!("containerPort"))
    );
    assert_eq!(
        ext("io.k8s.api.core.v1.Container", "volumeMounts"),
        (json!("merge"), json!("mountPath"))
    );
    assert_eq!(
        ext("io.k8s.api.core.v1.PodSpec", "volumes"),
        (json!("merge,retainKeys"), json!("name"))
    );
    assert_eq!(
        ext(
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "finalizers"
        ),
        (json!("merge"), Value::Null)
    );
    assert_eq!(
        ext("io.k8s.api.core.v1.PodSpec", "tolerations"),
        (Value::Null, Value::Null)
    );
    // every entry of the table landed on an existing property (of some group's document)
    for (schema, field, strategy, _) in PATCH_META {
        let p = &DOCS.schemas[schema]["properties"][field];
        assert!(p.is_object(), "{schema}.{field}");
        assert_eq!(p["x-kubernetes-patch-strategy"], json!(strategy));
    }
}

#[test]
fn document_size_is_modest() {
    let n = v3_document("api/v1").unwrap().len();
    eprintln!(
        "api/v1 document: {n} bytes, {} schemas",
        doc()["components"]["schemas"].as_object().unwrap().len()
    );
    assert!(n < 1_000_000, "{n} bytes");
}

#[test]
fn generation_is_quick() {
    let t = std::time::Instant::now();
    let d = build_core_v1();
    let ms = t.elapsed().as_millis();
    eprintln!("api/v1 document generated in {ms} ms");
    assert!(d["components"]["schemas"]
        .as_object()
        .is_some_and(|s| s.len() > 100));
}

/// Issue 12's kinds: their group-version documents with GVKs, list kinds, paths and merge keys;
/// `kubectl explain job.spec` and strategic merge patch find them by kind.
#[test]
fn workload_documents() {
    let get = |gv: &str| -> Value { serde_json::from_slice(&v3_document(gv).unwrap()).unwrap() };
    let apps = get("apis/apps/v1");
    let batch = get("apis/batch/v1");
    for (d, group, kinds) in [
        (&apps, "apps", ["Deployment", "ReplicaSet"]),
        (&batch, "batch", ["Job", "CronJob"]),
    ] {
        for k in kinds {
            for name in [k.to_string(), format!("{k}List")] {
                let s = &d["components"]["schemas"][format!("io.k8s.api.{group}.v1.{name}")];
                assert_eq!(
                    s["x-kubernetes-group-version-kind"],
                    json!([{"group": group, "kind": name, "version": "v1"}])
                );
                assert_eq!(
                    schema_for_kind(&name),
                    Some(&DOCS.schemas[format!("io.k8s.api.{group}.v1.{name}")])
                );
            }
        }
        // Pod templates bring the core schemas with their merge keys.
        assert_eq!(
            d["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
                ["x-kubernetes-patch-merge-key"],
            "name"
        );
    }
    let p = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(p["operationId"], "patchAppsV1NamespacedDeployment");
    assert_eq!(
        p["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "kind": "Deployment", "version": "v1"})
    );
    assert_eq!(
        batch["paths"]["/apis/batch/v1/namespaces/{namespace}/jobs"]["get"]["operationId"],
        "listBatchV1NamespacedJob"
    );
    let core = doc();
    assert!(core["components"]["schemas"]["io.k8s.api.core.v1.LimitRangeList"].is_object());
    assert!(core["paths"]["/api/v1/namespaces/{namespace}/resourcequotas/{name}"].is_object());
    // explain job.spec.template.spec.containers
    let job = resolve(schema_for_kind("Job").unwrap());
    let spec = resolve(&job["properties"]["spec"]);
    let tmpl = resolve(&spec["properties"]["template"]);
    let pod_spec = resolve(&tmpl["properties"]["spec"]);
    assert_eq!(pod_spec["properties"]["containers"]["type"], "array");
    assert!(schema_for_kind("Scale").is_some());
    assert_eq!(
        DOCS.schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
            ["x-kubernetes-patch-strategy"],
        "retainKeys"
    );
}
