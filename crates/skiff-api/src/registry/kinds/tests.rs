//! The workload and policy kinds through the registry (create, update, `/status`, `/scale`)
//! over a store in a temporary directory.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};

use super::super::{resource, Api, BodyFormat, PatchType, Resource, WriteOptions};
use crate::node::{LogError, LogOptions, LogStream, NodeBackend};
use crate::store::{Store, StoreConfig};

struct Node1;

impl NodeBackend for Node1 {
    fn node_name(&self) -> &str {
        "node-1"
    }
    fn node_object(&self) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("node-1".into()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        }
    }
    fn admit(&self, _pod: &Pod, _bound: &[Pod]) -> Result<(), String> {
        Ok(())
    }
    fn logs(&self, _pod: &Pod, _o: &LogOptions) -> Result<LogStream, LogError> {
        Err(LogError {
            code: 404,
            message: "no logs".into(),
        })
    }
}

async fn api() -> (Api, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store =
        Store::open(dir.path(), StoreConfig::default()).unwrap_or_else(|e| panic!("store: {e}"));
    let api = Api::open(store, Arc::new(Node1))
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    (api, dir)
}

fn r(group: &str, plural: &str) -> &'static Resource {
    resource(group, plural).unwrap_or_else(|| panic!("{plural}"))
}

fn w() -> WriteOptions {
    WriteOptions::default()
}

async fn create(api: &Api, r: &Resource, body: Value) -> Result<Arc<Value>, super::ApiError> {
    api.create(
        r,
        "default",
        body.to_string().as_bytes(),
        BodyFormat::Json,
        &w(),
    )
    .await
    .map(|x| x.object)
}

fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        },
        "status": {"replicas": 7},
    })
}

/// deploymentStrategy.PrepareForCreate: status reset, generation 1; the object is stored.
#[tokio::test]
async fn deployment_create_resets_status_and_sets_generation() {
    let (api, _d) = api().await;
    let d = create(&api, r("apps", "deployments"), deployment("web", 2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["status"], json!({}));
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["apiVersion"], "apps/v1");
    assert!(!d["metadata"]["uid"].as_str().unwrap_or("").is_empty());
}

/// PrepareForUpdate: the status is the stored one, the generation moves with the spec only
/// (Deployments: also with the annotations); `/status` keeps the spec.
#[tokio::test]
async fn generation_and_status_subresource() {
    let (api, _d) = api().await;
    let rs = r("apps", "deployments");
    create(&api, rs, deployment("web", 2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A spec change bumps the generation; the status in the body is ignored.
    let patch = br#"{"spec":{"replicas":3},"status":{"replicas":9}}"#;
    let o = api
        .patch(rs, "default", "web", None, PatchType::Merge, patch, &w())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .object;
    assert_eq!(o["metadata"]["generation"], 2);
    assert_eq!(o["spec"]["replicas"], 3);
    assert_eq!(o["status"], json!({}));
    // A label change does not.
    let o = api
        .patch(
            rs,
            "default",
            "web",
            None,
            PatchType::Merge,
            br#"{"metadata":{"labels":{"x":"y"}}}"#,
            &w(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .object;
    assert_eq!(o["metadata"]["generation"], 2);
    // An annotation change does, for Deployments.
    let o = api
        .patch(
            rs,
            "default",
            "web",
            None,
            PatchType::Merge,
            br#"{"metadata":{"annotations":{"a":"b"}}}"#,
            &w(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .object;
    assert_eq!(o["metadata"]["generation"], 3);
    // /status: the status is written, the spec in the body ignored, the generation kept.
    let s = api
        .patch(
            rs,
            "default",
            "web",
            Some("status"),
            PatchType::Merge,
            br#"{"spec":{"replicas":5},"status":{"replicas":3,"observedGeneration":3}}"#,
            &w(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .object;
    assert_eq!(s["status"]["replicas"], 3);
    assert_eq!(s["spec"]["replicas"], 3);
    assert_eq!(s["metadata"]["generation"], 3);
}

/// `/scale`: GET renders autoscaling/v1 Scale with the selector string; PATCH and PUT write
/// spec.replicas (generation bumped); negative replicas are 422 `Scale.autoscaling`.
#[tokio::test]
async fn scale_subresource() {
    let (api, _d) = api().await;
    let rs = r("apps", "replicasets");
    let mut body = deployment("web", 1);
    body["kind"] = json!("ReplicaSet");
    body["spec"]["selector"]["matchExpressions"] =
        json!([{"key": "tier", "operator": "In", "values": ["b", "a"]}]);
    body["spec"]["template"]["metadata"]["labels"]["tier"] = json!("a");
    create(&api, rs, body)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s = api
        .get_scale(rs, "default", "web")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s["kind"], "Scale");
    assert_eq!(s["apiVersion"], "autoscaling/v1");
    assert_eq!(s["spec"]["replicas"], 1);
    assert_eq!(s["status"]["selector"], "app=web,tier in (a,b)");
    let out = api
        .patch(
            rs,
            "default",
            "web",
            Some("scale"),
            PatchType::Merge,
            br#"{"spec":{"replicas":3}}"#,
            &w(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .object;
    assert_eq!(out["kind"], "Scale");
    assert_eq!(out["spec"]["replicas"], 3);
    let stored = api
        .get(rs, "default", "web")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored["spec"]["replicas"], 3);
    assert_eq!(stored["metadata"]["generation"], 2);
    // PUT with a stale resourceVersion: 409.
    let put = json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": "web", "resourceVersion": "1"}, "spec": {"replicas": 4}});
    let e = api
        .update(
            rs,
            "default",
            "web",
            Some("scale"),
            put.to_string().as_bytes(),
            BodyFormat::Json,
            &w(),
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("stale scale accepted"));
    assert_eq!(e.code, 409);
    let put = json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": "web"}, "spec": {"replicas": -1}});
    let e = api
        .update(
            rs,
            "default",
            "web",
            Some("scale"),
            put.to_string().as_bytes(),
            BodyFormat::Json,
            &w(),
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("negative scale accepted"));
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        "Scale.autoscaling \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    );
    // Jobs have no /scale.
    let jobs = r("batch", "jobs");
    let e = api
        .get_scale(jobs, "default", "x")
        .err()
        .unwrap_or_else(|| panic!("scale of a job"));
    assert_eq!(e.code, 404);
}

/// The Job strategy: uid set before validation, the generated selector and template labels
/// (`batch.kubernetes.io/controller-uid` = the uid), status reset, generation 1.
#[tokio::test]
async fn job_create_generates_selector() {
    let (api, _d) = api().await;
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}},
        "status": {"succeeded": 5},
    });
    let j = create(&api, r("batch", "jobs"), job)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let uid = j["metadata"]["uid"].as_str().unwrap_or("").to_string();
    assert!(!uid.is_empty());
    assert_eq!(
        j["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        json!(uid)
    );
    assert_eq!(
        j["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"],
        "pi"
    );
    assert_eq!(j["metadata"]["generation"], 1);
    assert_eq!(j["status"], json!({}));
}

/// Validation errors of the new kinds are 422 `<Kind>.<group> "name" is invalid: …` with
/// causes.
#[tokio::test]
async fn invalid_objects_are_422() {
    let (api, _d) = api().await;
    let lr = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l"},
        "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}});
    let e = create(&api, r("", "limitranges"), lr)
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        // The item is defaulted first (SetDefaults_LimitRangeItem: default := max,
        // defaultRequest := default), so the defaults are checked against min too.
        "LimitRange \"l\" is invalid: [spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1, spec.limits[0].defaultRequest[cpu]: Invalid value: \"1\": min value 2 is greater than default request value 1, spec.limits[0].default[cpu]: Invalid value: \"2\": min value 2 is greater than default value 1]"
    );
    let q = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "-1"}}});
    let e = create(&api, r("", "resourcequotas"), q)
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(e.code, 422);
    assert!(
        e.message
            .starts_with("ResourceQuota \"q\" is invalid: spec.hard[pods]: Invalid value: \"-1\""),
        "{}",
        e.message
    );
    let causes = e
        .details
        .as_ref()
        .map(|d| d["causes"].clone())
        .unwrap_or_default();
    assert_eq!(causes[0]["field"], "spec.hard[pods]");
    // A Deployment whose selector does not match its template (ValidateDeployment).
    let mut d = deployment("bad", 1);
    d["spec"]["selector"]["matchLabels"]["app"] = json!("other");
    let e = create(&api, r("apps", "deployments"), d)
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(e.code, 422);
    assert!(
        e.message
            .starts_with("Deployment.apps \"bad\" is invalid: "),
        "{}",
        e.message
    );
}

/// ResourceQuota: status reset on create and kept on update; `/status` writes it.
#[tokio::test]
async fn resource_quota_status() {
    let (api, _d) = api().await;
    let rq = r("", "resourcequotas");
    let q = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "2"}}, "status": {"used": {"pods": "1"}}});
    let o = create(&api, rq, q).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(o["status"].get("used").is_none(), "{o}");
    let o = api
        .patch(
            rq,
            "default",
            "q",
            Some("status"),
            PatchType::Merge,
            br#"{"spec":{"hard":{"pods":"9"}},"status":{"hard":{"pods":"2"},"used":{"pods":"1"}}}"#,
            &w(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .object;
    assert_eq!(o["status"]["used"]["pods"], "1");
    assert_eq!(o["spec"]["hard"]["pods"], "2");
    let o = api
        .patch(
            rq,
            "default",
            "q",
            None,
            PatchType::Merge,
            br#"{"spec":{"hard":{"pods":"3"}},"status":{"used":{"pods":"0"}}}"#,
            &w(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .object;
    // The quota's usage was recounted after the status write (the quota controller's job,
    // done by the registry at once): there are no pods.
    assert_eq!(o["status"]["used"]["pods"], "0");
    assert_eq!(o["spec"]["hard"]["pods"], "3");
    assert!(o["metadata"].get("generation").is_none());
}

/// Field selectors of the new kinds: metadata.name/namespace; jobs also status.successful.
#[tokio::test]
async fn field_selectors() {
    let (api, _d) = api().await;
    let jobs = r("batch", "jobs");
    for n in ["a", "b"] {
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": n},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}});
        create(&api, jobs, job)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    api.patch(
        jobs,
        "default",
        "b",
        Some("status"),
        PatchType::Merge,
        br#"{"status":{"succeeded":1}}"#,
        &w(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let list = |f: &str| {
        let o = super::super::ListOptions {
            field_selector: Some(f.into()),
            ..Default::default()
        };
        api.list(jobs, Some("default"), &o).map(|l| {
            l.items
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(list("metadata.name=a").unwrap_or_default(), vec!["a"]);
    assert_eq!(list("status.successful=1").unwrap_or_default(), vec!["b"]);
    assert_eq!(list("status.successful!=1").unwrap_or_default(), vec!["a"]);
    let e = list("spec.parallelism=1")
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(e.code, 400);
    let deps = r("apps", "deployments");
    let o = super::super::ListOptions {
        field_selector: Some("status.replicas=1".into()),
        ..Default::default()
    };
    assert_eq!(api.list(deps, None, &o).err().map(|e| e.code), Some(400));
}
