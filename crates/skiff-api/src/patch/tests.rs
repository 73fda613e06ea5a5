//! Patch semantics. Directive cases follow the behaviour pinned by upstream
//! k8s.io/apimachinery `pkg/util/strategicpatch/patch_test.go` (cases re-stated on pods, not
//! copied); merge keys are the struct tags of k8s.io/api `core/v1/types.go` and apimachinery
//! `pkg/apis/meta/v1/types.go`; status codes follow kube-apiserver
//! `staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go`.

use serde_json::{json, Value};

use super::*;

fn smp(kind: &str, original: Value, patch: Value) -> Result<Value, PatchError> {
    apply_patch(
        kind,
        PatchType::StrategicMerge,
        &original,
        patch.to_string().as_bytes(),
    )
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
}

// --- merge keys (core/v1/types.go struct tags) ---

/// PodSpec.containers: patchMergeKey=name.
#[test]
fn containers_merge_by_name() {
    let o = pod(json!({"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}));
    let r = smp(
        "Pod",
        o,
        json!({"spec": {"containers": [{"name": "b", "image": "z"}]}}),
    )
    .unwrap();
    assert_eq!(
        r["spec"]["containers"],
        json!([{"name": "a", "image": "x"}, {"name": "b", "image": "z"}])
    );
}

/// PodSpec.initContainers: patchMergeKey=name. Without `$setElementOrder` a new item goes
/// before the server-only ones: upstream's mergeSortedSlice places a patch item the server's
/// order does not know first (kubectl apply always sends the order directive).
#[test]
fn init_containers_merge_by_name() {
    let o =
        pod(json!({"initContainers": [{"name": "i", "image": "x", "restartPolicy": "Always"}]}));
    let r = smp(
        "Pod",
        o,
        json!({"spec": {"initContainers": [{"name": "j", "image": "y"}]}}),
    )
    .unwrap();
    assert_eq!(
        r["spec"]["initContainers"],
        json!([{"name": "j", "image": "y"}, {"name": "i", "image": "x", "restartPolicy": "Always"}])
    );
}

/// Container.ports: patchMergeKey=containerPort (not name: two ports with the same name stay
/// distinct items; the same containerPort merges).
#[test]
fn ports_merge_by_container_port() {
    let o = pod(
        json!({"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}]}),
    );
    let r = smp("Pod", o, json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "protocol": "UDP"}, {"containerPort": 8080, "name": "http"}]}]}})).unwrap();
    assert_eq!(
        r["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "name": "http", "protocol": "UDP"}, {"containerPort": 8080, "name": "http"}, {"containerPort": 443}])
    );
}

/// Container.volumeMounts: patchMergeKey=mountPath (two mounts of one volume are two items).
#[test]
fn volume_mounts_merge_by_mount_path() {
    let o = pod(
        json!({"containers": [{"name": "a", "volumeMounts": [{"name": "v", "mountPath": "/a"}]}]}),
    );
    let r = smp("Pod", o, json!({"spec": {"containers": [{"name": "a", "volumeMounts": [{"name": "v", "mountPath": "/b", "readOnly": true}]}]}})).unwrap();
    assert_eq!(
        r["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": "v", "mountPath": "/b", "readOnly": true}, {"name": "v", "mountPath": "/a"}])
    );
    let o = pod(
        json!({"containers": [{"name": "a", "volumeMounts": [{"name": "v", "mountPath": "/a"}]}]}),
    );
    let r = smp("Pod", o, json!({"spec": {"containers": [{"name": "a", "volumeMounts": [{"name": "w", "mountPath": "/a"}]}]}})).unwrap();
    assert_eq!(
        r["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": "w", "mountPath": "/a"}])
    );
}

/// Container.env: patchMergeKey=name.
#[test]
fn env_merges_by_name() {
    let o = pod(
        json!({"containers": [{"name": "a", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}),
    );
    let r = smp(
        "Pod",
        o,
        json!({"spec": {"containers": [{"name": "a", "env": [{"name": "B", "value": "3"}]}]}}),
    )
    .unwrap();
    assert_eq!(
        r["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}])
    );
}

/// ObjectMeta.finalizers: patchStrategy=merge on a list of strings: a union.
#[test]
fn finalizers_are_a_merged_primitive_list() {
    let o = json!({"metadata": {"name": "p", "finalizers": ["a", "b"]}});
    let r = smp("Pod", o, json!({"metadata": {"finalizers": ["c", "a"]}})).unwrap();
    assert_eq!(r["metadata"]["finalizers"], json!(["c", "a", "b"]));
}

/// ObjectMeta.ownerReferences: patchMergeKey=uid.
#[test]
fn owner_references_merge_by_uid() {
    let o = json!({"metadata": {"name": "p", "ownerReferences": [{"uid": "1", "name": "x", "kind": "Job", "apiVersion": "batch/v1"}]}});
    let r = smp("Pod", o, json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "x", "kind": "Job", "apiVersion": "batch/v1"}]}})).unwrap();
    assert_eq!(
        r["metadata"]["ownerReferences"].as_array().unwrap().len(),
        2
    );
}

/// PodStatus.conditions: patchMergeKey=type.
#[test]
fn pod_conditions_merge_by_type() {
    let o = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}});
    let r = smp(
        "Pod",
        o,
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .unwrap();
    assert_eq!(
        r["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}])
    );
}

/// PodSpec.tolerations has no patch tags: the list is replaced.
#[test]
fn tolerations_are_replaced() {
    let o = pod(json!({"tolerations": [{"key": "a", "operator": "Exists"}]}));
    let r = smp(
        "Pod",
        o,
        json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}),
    )
    .unwrap();
    assert_eq!(
        r["spec"]["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );
}

/// Container.command is atomic too (no heuristic on list content).
#[test]
fn command_is_replaced() {
    let o = pod(json!({"containers": [{"name": "a", "command": ["sh", "-c", "x"]}]}));
    let r = smp(
        "Pod",
        o,
        json!({"spec": {"containers": [{"name": "a", "command": ["true"]}]}}),
    )
    .unwrap();
    assert_eq!(r["spec"]["containers"][0]["command"], json!(["true"]));
}

/// ServiceAccount.secrets (patchMergeKey=name) and Node status addresses (patchMergeKey=type):
/// the walk starts from the kind's own schema.
#[test]
fn other_kinds_use_their_schema() {
    let o = json!({"secrets": [{"name": "a"}]});
    let r = smp("ServiceAccount", o, json!({"secrets": [{"name": "b"}]})).unwrap();
    assert_eq!(r["secrets"], json!([{"name": "b"}, {"name": "a"}]));
    let o = json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "h"}]}});
    let r = smp(
        "Node",
        o,
        json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}}),
    )
    .unwrap();
    assert_eq!(
        r["status"]["addresses"],
        json!([{"type": "InternalIP", "address": "10.0.0.2"}, {"type": "Hostname", "address": "h"}])
    );
    // ConfigMap data is a map: keys merge, null deletes.
    let o = json!({"data": {"a": "1", "b": "2"}});
    let r = smp("ConfigMap", o, json!({"data": {"a": null, "c": "3"}})).unwrap();
    assert_eq!(r["data"], json!({"b": "2", "c": "3"}));
}

// --- directives (strategicpatch/patch_test.go) ---

/// null deletes a map key; a null for an absent key is dropped.
#[test]
fn null_deletes_a_key() {
    let o = json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}});
    let r = smp(
        "Pod",
        o,
        json!({"metadata": {"labels": {"a": null, "z": null}}}),
    )
    .unwrap();
    assert_eq!(r["metadata"]["labels"], json!({"b": "2"}));
}

/// `$patch: replace` on a map: the map becomes the patch's content.
#[test]
fn patch_replace_on_a_map() {
    let o = json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}});
    let r = smp(
        "Pod",
        o,
        json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
    )
    .unwrap();
    assert_eq!(r["metadata"]["labels"], json!({"c": "3"}));
}

/// `$patch: delete` on a map: the map is emptied.
#[test]
fn patch_delete_on_a_map() {
    let o = json!({"metadata": {"name": "p", "labels": {"a": "1"}}});
    let r = smp(
        "Pod",
        o,
        json!({"metadata": {"labels": {"$patch": "delete"}}}),
    )
    .unwrap();
    assert_eq!(r["metadata"]["labels"], json!({}));
}

/// `$patch: merge` in a map is not a known map directive (upstream: "unknown patch type").
#[test]
fn patch_merge_on_a_map_is_refused() {
    let o = json!({"metadata": {"name": "p", "labels": {"a": "1"}}});
    let e = smp(
        "Pod",
        o,
        json!({"metadata": {"labels": {"$patch": "merge"}}}),
    )
    .unwrap_err();
    assert!(
        matches!(&e, PatchError::Invalid(m) if m.starts_with("unknown patch type: merge in map")),
        "{e:?}"
    );
}

/// A list item `{"$patch": "delete", <key>: v}` removes the item with that merge key value.
#[test]
fn patch_delete_in_a_list() {
    let o = pod(json!({"containers": [{"name": "a"}, {"name": "b"}]}));
    let r = smp(
        "Pod",
        o,
        json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
    )
    .unwrap();
    assert_eq!(r["spec"]["containers"], json!([{"name": "b"}]));
    // without the merge key: refused
    let o = pod(json!({"containers": [{"name": "a"}]}));
    assert!(smp(
        "Pod",
        o,
        json!({"spec": {"containers": [{"$patch": "delete"}]}})
    )
    .is_err());
}

/// A list item `{"$patch": "replace"}` makes the list exactly the patch's other items.
#[test]
fn patch_replace_in_a_list() {
    let o = pod(json!({"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}));
    let r = smp(
        "Pod",
        o,
        json!({"spec": {"containers": [{"name": "c"}, {"$patch": "replace"}]}}),
    )
    .unwrap();
    assert_eq!(r["spec"]["containers"], json!([{"name": "c"}]));
}

/// A list item `{"$patch": "merge"}`: upstream refuses ("merging lists cannot yet be
/// specified in the patch").
#[test]
fn patch_merge_in_a_list_is_refused() {
    let o = pod(json!({"containers": [{"name": "a"}]}));
    let e = smp(
        "Pod",
        o,
        json!({"spec": {"containers": [{"$patch": "merge"}]}}),
    )
    .unwrap_err();
    assert_eq!(
        e,
        PatchError::Invalid("merging lists cannot yet be specified in the patch".into())
    );
}

/// `$deleteFromPrimitiveList/finalizers`: removes values from a merged scalar list.
#[test]
fn delete_from_primitive_list() {
    let o = json!({"metadata": {"name": "p", "finalizers": ["a", "b", "c"]}});
    let r = smp(
        "Pod",
        o,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
    )
    .unwrap();
    assert_eq!(r["metadata"]["finalizers"], json!(["a", "c"]));
    // together with additions (what kubectl apply sends when one finalizer is swapped)
    let o = json!({"metadata": {"name": "p", "finalizers": ["a", "b"]}});
    let r = smp(
        "Pod",
        o,
        json!({"metadata": {"finalizers": ["x"], "$deleteFromPrimitiveList/finalizers": ["a"]}}),
    )
    .unwrap();
    assert_eq!(r["metadata"]["finalizers"], json!(["x", "b"]));
    let o = json!({"metadata": {"name": "p", "finalizers": ["a"]}});
    let e = smp(
        "Pod",
        o,
        json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}),
    )
    .unwrap_err();
    assert_eq!(
        e,
        PatchError::BadRequest("invalid patch format of primitive list".into())
    );
}

/// `$setElementOrder/containers`: the listed items in that order, server-only items where they
/// were (kubectl apply sends it with every merged list).
#[test]
fn set_element_order() {
    let o = pod(
        json!({"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}, {"name": "c", "image": "3"}]}),
    );
    let r = smp(
        "Pod",
        o,
        json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}], "containers": [{"name": "a", "image": "9"}]}}),
    )
    .unwrap();
    let names: Vec<_> = r["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b", "c", "a"]);
    assert_eq!(r["spec"]["containers"][2]["image"], "9");
    // upstream case "set elements order in a list with server-only items"
    let o = pod(
        json!({"containers": [{"name": "1"}, {"name": "3"}, {"name": "4"}, {"name": "2"}, {"name": "9"}]}),
    );
    let r = smp("Pod", o, json!({"spec": {"$setElementOrder/containers": [{"name": "4"}, {"name": "2"}, {"name": "3"}, {"name": "1"}]}})).unwrap();
    assert_eq!(
        r["spec"]["containers"],
        json!([{"name": "4"}, {"name": "2"}, {"name": "3"}, {"name": "1"}, {"name": "9"}])
    );
    // order only, no content change
    let o = pod(json!({"containers": [{"name": "a"}, {"name": "b"}]}));
    let r = smp(
        "Pod",
        o,
        json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}),
    )
    .unwrap();
    assert_eq!(
        r["spec"]["containers"],
        json!([{"name": "b"}, {"name": "a"}])
    );
    // a patch item missing from the order list is refused
    let o = pod(json!({"containers": [{"name": "a"}]}));
    let e = smp("Pod", o, json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "z"}]}})).unwrap_err();
    assert!(matches!(e, PatchError::BadRequest(m) if m.starts_with("The order in patch list")));
    // primitive list order
    let o = json!({"metadata": {"name": "p", "finalizers": ["a", "b"]}});
    let r = smp(
        "Pod",
        o,
        json!({"metadata": {"$setElementOrder/finalizers": ["b", "a", "c"], "finalizers": ["c"]}}),
    )
    .unwrap();
    assert_eq!(r["metadata"]["finalizers"], json!(["b", "a", "c"]));
}

/// `$retainKeys` (PodSpec.volumes has `merge,retainKeys`): keys not listed are dropped, so a
/// volume can change source type.
#[test]
fn retain_keys() {
    let o = pod(json!({"volumes": [{"name": "v", "emptyDir": {}}]}));
    let r = smp(
        "Pod",
        o,
        json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}}]}}),
    )
    .unwrap();
    assert_eq!(
        r["spec"]["volumes"],
        json!([{"name": "v", "configMap": {"name": "cm"}}])
    );
    // a key set by the patch but not retained is a format error
    let o = pod(json!({"volumes": [{"name": "v", "emptyDir": {}}]}));
    let e = smp("Pod", o, json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name"], "hostPath": {"path": "/"}}]}})).unwrap_err();
    assert_eq!(
        e,
        PatchError::BadRequest("invalid patch format of retainKeys".into())
    );
}

/// What `kubectl.1.33 apply` sent to change a sidecar's image on a pod with an init sidecar
/// and an app container (captured from the real binary against a test server).
#[test]
fn kubectl_client_side_apply_patch() {
    let live = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "initContainers": [{"name": "side", "image": "busybox:1", "restartPolicy": "Always"}],
            "containers": [{"name": "app", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]
        }
    });
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}\n"}},
        "spec": {"$setElementOrder/initContainers": [{"name": "side"}], "initContainers": [{"image": "busybox:2", "name": "side"}]}
    });
    let r = smp("Pod", live, patch).unwrap();
    assert_eq!(
        r["spec"]["initContainers"],
        json!([{"name": "side", "image": "busybox:2", "restartPolicy": "Always"}])
    );
    assert_eq!(
        r["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
}

#[test]
fn undecodable_and_non_object_patches_are_bad_requests() {
    let o = pod(json!({}));
    assert!(matches!(
        apply_patch("Pod", PatchType::StrategicMerge, &o, b"{"),
        Err(PatchError::BadRequest(_))
    ));
    assert!(matches!(
        apply_patch("Pod", PatchType::StrategicMerge, &o, b"[]"),
        Err(PatchError::BadRequest(_))
    ));
    // deep nesting stops at the decoder's recursion limit
    let deep = "[".repeat(10_000);
    assert!(matches!(
        apply_patch("Pod", PatchType::StrategicMerge, &o, deep.as_bytes()),
        Err(PatchError::BadRequest(_))
    ));
}

// --- JSON patch and merge patch ---

#[test]
fn json_patch_applies_and_fails_like_kube() {
    let o = json!({"metadata": {"name": "p", "labels": {"a": "1"}}});
    let p = br#"[{"op":"replace","path":"/metadata/labels/a","value":"2"},{"op":"add","path":"/metadata/labels/b","value":"3"}]"#;
    let r = apply_patch("Pod", PatchType::Json, &o, p).unwrap();
    assert_eq!(r["metadata"]["labels"], json!({"a": "2", "b": "3"}));
    let e = apply_patch(
        "Pod",
        PatchType::Json,
        &o,
        br#"[{"op":"test","path":"/metadata/name","value":"q"}]"#,
    )
    .unwrap_err();
    assert_eq!(
        e,
        PatchError::Invalid("testing value /metadata/name failed: test failed".into())
    );
    let e = apply_patch(
        "Pod",
        PatchType::Json,
        &o,
        br#"[{"op":"add","path":"/spec/x/y","value":1}]"#,
    )
    .unwrap_err();
    assert_eq!(
        e,
        PatchError::Invalid(
            "add operation does not apply: doc is missing path: \"/spec/x/y\": missing value"
                .into()
        )
    );
    let e = apply_patch("Pod", PatchType::Json, &o, br#"{"op":"add"}"#).unwrap_err();
    assert!(matches!(e, PatchError::BadRequest(_)));
    let many = format!(
        "[{}]",
        vec![r#"{"op":"test","path":"/metadata/name","value":"p"}"#; 10_001].join(",")
    );
    let e = apply_patch("Pod", PatchType::Json, &o, many.as_bytes()).unwrap_err();
    assert_eq!(
        e,
        PatchError::BadRequest(
            "The allowed maximum operations in a JSON patch is 10000, got 10001".into()
        )
    );
}

/// RFC 7386: lists are replaced even where SMP would merge.
#[test]
fn merge_patch_replaces_lists() {
    let o = pod(json!({"containers": [{"name": "a"}, {"name": "b"}]}));
    let r = apply_patch(
        "Pod",
        PatchType::Merge,
        &o,
        br#"{"spec":{"containers":[{"name":"c"}]},"metadata":{"name":null}}"#,
    )
    .unwrap();
    assert_eq!(r["spec"]["containers"], json!([{"name": "c"}]));
    assert!(r["metadata"].get("name").is_none());
}

// --- server-side apply ---

#[test]
fn apply_creates_and_records_managed_fields() {
    let applied = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx", "ports": [{"containerPort": 80}]}], "tolerations": [{"operator": "Exists"}]}
    });
    let r = server_side_apply("Pod", None, &applied, "kubectl", false).unwrap();
    assert_eq!(r["spec"], applied["spec"]);
    let mf = r["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0]["manager"], "kubectl");
    assert_eq!(mf[0]["operation"], "Apply");
    assert_eq!(mf[0]["apiVersion"], "v1");
    assert_eq!(mf[0]["fieldsType"], "FieldsV1");
    assert!(mf[0]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        mf[0]["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:name": {}, "f:image": {}, "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}},
                "f:tolerations": {}
            }
        })
    );
}

#[test]
fn apply_merges_by_keys_and_replaces_the_manager_entry() {
    let first = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "finalizers": ["a"]},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]}});
    let mut live = server_side_apply("Pod", None, &first, "kubectl", false).unwrap();
    // another writer added a container and an Update entry
    live["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "other", "image": "x"}));
    live["metadata"]["managedFields"].as_array_mut().unwrap().push(json!({
        "manager": "ctl", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:containers": {"k:{\"name\":\"other\"}": {".": {}, "f:image": {}, "f:name": {}}}}}
    }));
    let second = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "finalizers": ["b"]},
        "spec": {"containers": [{"name": "app", "image": "nginx:2"}]}});
    let r = server_side_apply("Pod", Some(&live), &second, "kubectl", true).unwrap();
    assert_eq!(
        r["spec"]["containers"],
        json!([{"name": "app", "image": "nginx:2"}, {"name": "other", "image": "x"}])
    );
    // "a" was applied by kubectl before and is no longer: removed; "b" added
    assert_eq!(r["metadata"]["finalizers"], json!(["b"]));
    let mf = r["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(mf.len(), 2);
    assert_eq!(mf.iter().filter(|e| e["manager"] == "kubectl").count(), 1);
}

#[test]
fn apply_refuses_bad_bodies() {
    let a = json!({"metadata": {"name": "p", "managedFields": [{}]}});
    assert!(
        matches!(server_side_apply("Pod", None, &a, "m", false), Err(PatchError::BadRequest(m)) if m == "metadata.managedFields must be nil")
    );
    let a = json!({"metadata": {"name": "p"}, "spec": {"$patch": "replace"}});
    assert!(server_side_apply("Pod", None, &a, "m", false).is_err());
    let a = json!({"metadata": {"name": "p"}});
    assert!(server_side_apply("Pod", None, &a, "", false).is_err());
}

/// What `kubectl.1.33 apply` (and 1.27, byte for byte) sent when the manifest dropped an env
/// var, replaced port 80 by 8080 and added a finalizer and a label (captured from the real
/// binary against a test server): `null`, a `$patch: delete` item, a nested
/// `$setElementOrder/ports`.
#[test]
fn kubectl_client_side_apply_patch_with_deletions() {
    let live = json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u"},
        "spec": {
            "initContainers": [{"name": "side", "image": "busybox:2", "restartPolicy": "Always"}],
            "containers": [{"name": "app", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "A", "value": "x"}], "terminationMessagePath": "/dev/termination-log"}]
        }
    });
    let patch = json!({
        "metadata": {"finalizers": ["example.com/f"], "labels": {"app": "web"}},
        "spec": {"$setElementOrder/containers": [{"name": "app"}], "containers": [{
            "$setElementOrder/ports": [{"containerPort": 8080}], "env": null, "name": "app",
            "ports": [{"containerPort": 8080}, {"$patch": "delete", "containerPort": 80}]
        }]}
    });
    let r = smp("Pod", live, patch).unwrap();
    assert_eq!(
        r["spec"]["containers"],
        json!([{"name": "app", "image": "nginx", "ports": [{"containerPort": 8080}], "terminationMessagePath": "/dev/termination-log"}])
    );
    assert_eq!(r["metadata"]["finalizers"], json!(["example.com/f"]));
    assert_eq!(r["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(r["spec"]["initContainers"][0]["image"], "busybox:2");
}

/// Hostile sizes stay linear (hash lookups; quadratic code takes minutes here): 40 000
/// finalizers merged into 40 000, 10 000 containers merged by name with a `$setElementOrder`,
/// and a server-side apply that drops 10 000 applied items.
#[test]
fn large_lists_are_not_quadratic() {
    let t = std::time::Instant::now();
    let fin: Vec<String> = (0..40_000).map(|i| format!("f{i}")).collect();
    let fin2: Vec<String> = (20_000..60_000).map(|i| format!("f{i}")).collect();
    let r = smp(
        "Pod",
        json!({"metadata": {"finalizers": fin}}),
        json!({"metadata": {"finalizers": fin2}}),
    )
    .unwrap();
    assert_eq!(
        r["metadata"]["finalizers"].as_array().unwrap().len(),
        60_000
    );
    eprintln!("finalizers: {:?}", t.elapsed());

    let cs: Vec<Value> = (0..10_000)
        .map(|i| json!({"name": format!("c{i}"), "image": "x"}))
        .collect();
    let order: Vec<Value> = (0..10_000)
        .rev()
        .map(|i| json!({"name": format!("c{i}")}))
        .collect();
    let patch: Vec<Value> = (0..10_000)
        .rev()
        .map(|i| json!({"name": format!("c{i}"), "image": "y"}))
        .collect();
    let r = smp(
        "Pod",
        pod(json!({"containers": cs})),
        json!({"spec": {"$setElementOrder/containers": order, "containers": patch}}),
    )
    .unwrap();
    assert_eq!(
        r["spec"]["containers"][0],
        json!({"name": "c9999", "image": "y"})
    );
    eprintln!("containers: {:?}", t.elapsed());

    let cs: Vec<Value> = (0..10_000)
        .map(|i| json!({"name": format!("c{i}"), "image": "x"}))
        .collect();
    let first = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": cs}});
    let live = server_side_apply("Pod", None, &first, "m", false).unwrap();
    eprintln!("apply 1: {:?}", t.elapsed());
    let second = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c1", "image": "z"}]}});
    let r = server_side_apply("Pod", Some(&live), &second, "m", false).unwrap();
    assert_eq!(
        r["spec"]["containers"],
        json!([{"name": "c1", "image": "z"}])
    );
    let secs = t.elapsed().as_secs_f64();
    eprintln!("large lists: {secs:.2} s");
    assert!(secs < 10.0, "{secs} s");
}

#[test]
fn managed_field_set_of_an_object() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}, "finalizers": ["x"]},
        "spec": {"containers": [{"name": "c", "env": [{"name": "E", "value": "1"}]}]}, "status": {"phase": "Running"}});
    assert_eq!(
        managed_field_set("Pod", &pod),
        json!({"f:metadata": {"f:labels": {"f:a": {}}, "f:finalizers": {"v:\"x\"": {}}},
               "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:name": {}, "f:env": {"k:{\"name\":\"E\"}": {".": {}, "f:name": {}, "f:value": {}}}}}}})
    );
}
