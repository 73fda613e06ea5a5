//! Namespace policy at pod create (SEMANTICS A2–A4), ResourceQuota status, and the garbage
//! collector with each propagation policy. LimitRanges, ResourceQuotas and Jobs are put in the
//! store directly (their kinds are served by another part of the registry).

use k8s_openapi::api::core::v1::PodStatus;
use serde_json::json;

use super::*;
use crate::store::Key;

/// A stored object of a kind this test does not create through the API.
async fn put(api: &Api, resource: &str, ns: &str, mut obj: Value) -> Arc<Value> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    obj["metadata"]["namespace"] = json!(ns);
    obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    api.store()
        .commit(Mutation::Create {
            key: Key::new(resource, ns, &name),
            object: obj,
        })
        .await
        .unwrap_or_else(|e| panic!("put {name}: {e}"))
        .object
}

async fn pod_with(api: &Api, ns: &str, name: &str, spec: Value) -> Result<Written, ApiError> {
    create(
        api,
        "pods",
        ns,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}),
    )
    .await
}

fn limits(cpu: &str, mem: &str) -> Value {
    json!({"containers": [{"name": "app", "image": "busybox", "resources": {"limits": {"cpu": cpu, "memory": mem}}}]})
}

fn stored(api: &Api, resource: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
    api.store()
        .get(&Key::new(resource, ns, name))
        .map(|s| s.object)
}

/// A2: LimitRanger's defaults land in every container, with the annotation, before
/// validation.
#[tokio::test]
async fn a2_limit_range_defaults_at_pod_create() {
    let (api, _dir) = api().await;
    put(
        &api,
        "limitranges",
        "default",
        json!({"apiVersion": "v1", "kind": "LimitRange",
        "metadata": {"name": "lr"}, "spec": {"limits": [{"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "100m"}}]}}),
    )
    .await;
    let w = pod_with(&api, "default", "p", json!({
        "initContainers": [{"name": "init", "image": "busybox", "resources": {"limits": {"memory": "64Mi"}}}],
        "containers": [{"name": "app", "image": "busybox"}]
    }))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let p = &w.object;
    assert_eq!(
        p["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}})
    );
    assert_eq!(
        p["spec"]["initContainers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}})
    );
    assert_eq!(
        p["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for container app; \
         cpu request for init container init; cpu limit for init container init"
    );
    assert_eq!(p["status"]["qosClass"], "Burstable");
}

/// A3: LimitRanger's validation refuses with 403 and the aggregated texts; validation (422)
/// comes first, as the defaults are applied before it.
#[tokio::test]
async fn a3_limit_range_violations_are_forbidden() {
    let (api, _dir) = api().await;
    put(
        &api,
        "limitranges",
        "default",
        json!({"metadata": {"name": "lr"}, "spec": {"limits": [
            {"type": "Container", "min": {"cpu": "100m"}, "max": {"memory": "1Gi"}},
            {"type": "Pod", "maxLimitRequestRatio": {"cpu": "2"}}
        ]}}),
    )
    .await;
    let e = err(pod_with(
        &api,
        "default",
        "x",
        json!({"containers": [{"name": "app", "image": "busybox",
        "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "400m", "memory": "2Gi"}}}]}),
    )
    .await);
    assert_eq!((e.code, e.reason), (403, "Forbidden"));
    assert_eq!(
        e.message,
        "pods \"x\" is forbidden: [minimum cpu usage per Container is 100m, but request is 50m, \
         maximum memory usage per Container is 1Gi, but limit is 2Gi, \
         cpu max limit to request ratio per Pod is 2, but provided ratio is 8.000000]"
    );
    assert!(stored(&api, "pods", "default", "x").is_none());
    // The default limit (max 1Gi) is below the request: the pod is invalid (422), not
    // forbidden, since validation runs between the two LimitRanger phases.
    let e = err(pod_with(
        &api,
        "default",
        "y",
        json!({"containers": [{"name": "app", "image": "busybox",
        "resources": {"requests": {"cpu": "100m", "memory": "2Gi"}}}]}),
    )
    .await);
    assert_eq!(e.code, 422, "{}", e.message);
    assert!(
        e.message
            .contains("must be less than or equal to memory limit"),
        "{}",
        e.message
    );
}

/// A4: quota status (hard, used) kept current; the exact refusal texts; terminal and deleted
/// pods stop being charged.
#[tokio::test]
async fn a4_quota_status_and_refusals() {
    let (api, _dir) = api().await;
    put(&api, "resourcequotas", "default", json!({"apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "q"}, "spec": {"hard": {"cpu": "1", "limits.memory": "1Gi", "pods": "3", "count/pods": "10"}}}))
    .await;
    api.reconcile_quotas()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let q = stored(&api, "resourcequotas", "default", "q").unwrap_or_else(|| panic!("quota"));
    assert_eq!(
        q["status"]["hard"],
        json!({"cpu": "1", "limits.memory": "1Gi", "pods": "3", "count/pods": "10"})
    );
    assert_eq!(
        q["status"]["used"],
        json!({"cpu": "0", "limits.memory": "0", "pods": "0", "count/pods": "0"})
    );

    let e = err(pod_with(
        &api,
        "default",
        "bare",
        json!({"containers": [{"name": "app", "image": "busybox"}]}),
    )
    .await);
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        "pods \"bare\" is forbidden: failed quota: q: must specify cpu for: app; limits.memory for: app"
    );
    let a = pod_with(&api, "default", "a", limits("800m", "256Mi"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let q = stored(&api, "resourcequotas", "default", "q").unwrap_or_else(|| panic!("quota"));
    assert_eq!(
        q["status"]["used"],
        json!({"cpu": "800m", "limits.memory": "256Mi", "pods": "1", "count/pods": "1"})
    );
    let e = err(pod_with(&api, "default", "b", limits("500m", "256Mi")).await);
    assert_eq!(
        e.message,
        "pods \"b\" is forbidden: exceeded quota: q, requested: cpu=500m, used: cpu=800m, limited: cpu=1"
    );
    // The first pod finishes: no longer charged (but still counted by count/pods).
    let uid = a.object["metadata"]["uid"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let done = PodStatus {
        phase: Some("Succeeded".into()),
        ..PodStatus::default()
    };
    for res in api
        .set_pod_statuses(vec![("default".into(), "a".into(), uid.clone(), done)])
        .await
    {
        res.unwrap_or_else(|e| panic!("{e}"));
    }
    let q = stored(&api, "resourcequotas", "default", "q").unwrap_or_else(|| panic!("quota"));
    assert_eq!(
        q["status"]["used"],
        json!({"cpu": "0", "limits.memory": "0", "pods": "0", "count/pods": "1"})
    );
    pod_with(&api, "default", "b", limits("500m", "256Mi"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    api.finish_pod_deletion("default", "a", &uid)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let q = stored(&api, "resourcequotas", "default", "q").unwrap_or_else(|| panic!("quota"));
    assert_eq!(
        q["status"]["used"],
        json!({"cpu": "500m", "limits.memory": "256Mi", "pods": "1", "count/pods": "1"})
    );
}

/// A2 before A4: LimitRanger's defaults satisfy a quota's "must specify" rule, and the pod is
/// charged the defaulted values (with its overhead).
#[tokio::test]
async fn a2_defaults_feed_a4_quota() {
    let (api, _dir) = api().await;
    put(
        &api,
        "limitranges",
        "default",
        json!({"metadata": {"name": "lr"}, "spec": {"limits": [
        {"type": "Container", "default": {"cpu": "200m", "memory": "128Mi"}}]}}),
    )
    .await;
    put(
        &api,
        "resourcequotas",
        "default",
        json!({"metadata": {"name": "q"},
        "spec": {"hard": {"requests.cpu": "1", "limits.memory": "1Gi"}}}),
    )
    .await;
    pod_with(
        &api,
        "default",
        "p",
        json!({"overhead": {"cpu": "50m"},
        "containers": [{"name": "app", "image": "busybox"}]}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let q = stored(&api, "resourcequotas", "default", "q").unwrap_or_else(|| panic!("quota"));
    assert_eq!(
        q["status"]["used"],
        json!({"requests.cpu": "250m", "limits.memory": "128Mi"})
    );
}

/// A4: concurrent creates cannot both take the last of a quota (creates are serialised per
/// namespace and usage is read under that lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a4_quota_charging_is_race_free() {
    let (api, _dir) = api().await;
    put(
        &api,
        "resourcequotas",
        "default",
        json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "3"}}}),
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            api.create(
                r("pods"),
                "default",
                &pod_body(&format!("p{i}")),
                BodyFormat::Json,
                &wo(),
            )
            .await
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap_or_else(|e| panic!("{e}")) {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(
                    e.message.contains(
                        "exceeded quota: q, requested: pods=1, used: pods=3, limited: pods=3"
                    ),
                    "{}",
                    e.message
                );
                refused += 1;
            }
        }
    }
    assert_eq!((ok, refused), (3, 9));
}

/// A4 scopes: a BestEffort quota ignores Burstable pods; a Terminating one only charges pods
/// with activeDeadlineSeconds.
#[tokio::test]
async fn a4_quota_scopes() {
    let (api, _dir) = api().await;
    put(&api, "resourcequotas", "default", json!({"metadata": {"name": "be"}, "spec": {"hard": {"pods": "0"}, "scopes": ["BestEffort"]}})).await;
    put(&api, "resourcequotas", "default", json!({"metadata": {"name": "term"}, "spec": {"hard": {"pods": "0"}, "scopes": ["Terminating"]}})).await;
    pod_with(&api, "default", "burst", limits("100m", "64Mi"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let e = err(pod_with(
        &api,
        "default",
        "be",
        json!({"containers": [{"name": "app", "image": "busybox"}]}),
    )
    .await);
    assert!(
        e.message.contains("exceeded quota: be, requested: pods=1"),
        "{}",
        e.message
    );
    let mut spec = limits("100m", "64Mi");
    spec["activeDeadlineSeconds"] = json!(60);
    let e = err(pod_with(&api, "default", "t", spec).await);
    assert!(
        e.message
            .contains("exceeded quota: term, requested: pods=1"),
        "{}",
        e.message
    );
}

/// A4, object counts: `count/<resource>` and the legacy `configmaps` name charge every create
/// of the kind (quotas without scopes only); status.used counts the objects.
#[tokio::test]
async fn a4_object_count_quota() {
    let (api, _dir) = api().await;
    put(
        &api,
        "resourcequotas",
        "default",
        json!({"metadata": {"name": "q"},
        "spec": {"hard": {"configmaps": "1", "count/secrets": "0"}}}),
    )
    .await;
    let cm =
        |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    create(&api, "configmaps", "default", cm("c1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let e = err(create(&api, "configmaps", "default", cm("c2")).await);
    assert_eq!((e.code, e.message.as_str()), (403,
        "configmaps \"c2\" is forbidden: exceeded quota: q, requested: configmaps=1, used: configmaps=1, limited: configmaps=1"));
    let e = err(create(
        &api,
        "secrets",
        "default",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
    )
    .await);
    assert!(e.message.ends_with("exceeded quota: q, requested: count/secrets=1, used: count/secrets=0, limited: count/secrets=0"), "{}", e.message);
    let q = stored(&api, "resourcequotas", "default", "q").unwrap_or_else(|| panic!("quota"));
    assert_eq!(
        q["status"]["used"],
        json!({"configmaps": "1", "count/secrets": "0"})
    );
    // Other namespaces are not charged.
    create(&api, "configmaps", "kube-system", cm("c2"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    api.delete(r("configmaps"), "default", "c1", &DeleteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let q = stored(&api, "resourcequotas", "default", "q").unwrap_or_else(|| panic!("quota"));
    assert_eq!(q["status"]["used"]["configmaps"], "0");
    create(&api, "configmaps", "default", cm("c2"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

// ---- garbage collection ----

fn owner_ref(owner: &Value, block: bool) -> Value {
    json!({
        "apiVersion": owner["apiVersion"].as_str().unwrap_or("v1"),
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": block,
    })
}

async fn owner_cm(api: &Api, name: &str) -> Arc<Value> {
    create(
        api,
        "configmaps",
        "default",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .object
}

async fn dependent_pod(api: &Api, name: &str, owner: &Value, block: bool) -> Arc<Value> {
    let mut body: Value = serde_json::from_slice(&pod_body(name)).unwrap_or_default();
    body["metadata"]["ownerReferences"] = json!([owner_ref(owner, block)]);
    create(api, "pods", "default", body)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .object
}

async fn dependent_cm(api: &Api, name: &str, owner: &Value) -> Arc<Value> {
    create(
        api,
        "configmaps",
        "default",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "ownerReferences": [owner_ref(owner, false)]}}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .object
}

async fn gc(api: &Api) -> gc::GcReport {
    api.collect_garbage()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn policy(p: &str) -> DeleteOptions {
    DeleteOptions {
        propagation_policy: Some(p.into()),
        ..DeleteOptions::default()
    }
}

/// Background: the owner goes at once; its dependents after, pods gracefully (the node
/// stops them and removes them).
#[tokio::test]
async fn gc_background_deletes_dependents_after_the_owner() {
    let (api, _dir) = api().await;
    let owner = owner_cm(&api, "owner").await;
    let pod = dependent_pod(&api, "dep-pod", &owner, true).await;
    dependent_cm(&api, "dep-cm", &owner).await;
    let d = api
        .delete(r("configmaps"), "default", "owner", &policy("Background"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(d, Deleted::Gone(_)));
    gc(&api).await;
    assert!(stored(&api, "configmaps", "default", "dep-cm").is_none());
    let p = stored(&api, "pods", "default", "dep-pod")
        .unwrap_or_else(|| panic!("pod removed before the node stopped it"));
    assert!(p["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30);
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    api.finish_pod_deletion("default", "dep-pod", uid)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(stored(&api, "pods", "default", "dep-pod").is_none());
}

/// Foreground: the owner waits (finalizer `foregroundDeletion`) until its blocking dependents
/// are gone.
#[tokio::test]
async fn gc_foreground_removes_the_owner_last() {
    let (api, _dir) = api().await;
    let owner = owner_cm(&api, "owner").await;
    let pod = dependent_pod(&api, "dep-pod", &owner, true).await;
    dependent_cm(&api, "dep-cm", &owner).await;
    let d = api
        .delete(r("configmaps"), "default", "owner", &policy("Foreground"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Deleted::Pending(o) = d else {
        panic!("owner removed at once")
    };
    assert_eq!(o["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    assert!(o["metadata"]["deletionTimestamp"].is_string());
    gc(&api).await;
    assert!(stored(&api, "configmaps", "default", "dep-cm").is_none());
    let p = stored(&api, "pods", "default", "dep-pod").unwrap_or_else(|| panic!("pod"));
    assert!(
        p["metadata"]["deletionTimestamp"].is_string(),
        "dependent pod not being deleted"
    );
    gc(&api).await;
    assert!(
        stored(&api, "configmaps", "default", "owner").is_some(),
        "owner released before its blocking pod went"
    );
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    api.finish_pod_deletion("default", "dep-pod", uid)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    gc(&api).await;
    assert!(stored(&api, "configmaps", "default", "owner").is_none());
}

/// Orphan: dependents lose their reference and stay; the owner goes.
#[tokio::test]
async fn gc_orphan_unlinks_dependents() {
    let (api, _dir) = api().await;
    let owner = owner_cm(&api, "owner").await;
    dependent_pod(&api, "dep-pod", &owner, true).await;
    let d = api
        .delete(r("configmaps"), "default", "owner", &policy("Orphan"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Deleted::Pending(o) = d else {
        panic!("owner removed at once")
    };
    assert_eq!(o["metadata"]["finalizers"], json!(["orphan"]));
    gc(&api).await;
    assert!(stored(&api, "configmaps", "default", "owner").is_none());
    let p = stored(&api, "pods", "default", "dep-pod").unwrap_or_else(|| panic!("orphan deleted"));
    assert!(p["metadata"].get("ownerReferences").is_none(), "{p}");
    assert!(p["metadata"].get("deletionTimestamp").is_none());
}

/// A test-only stand-in for the batch/v1 jobs resource (served by the workload kinds).
static JOBS: Resource = Resource {
    group: "batch",
    version: "v1",
    plural: "jobs",
    singular: "job",
    kind: "Job",
    namespaced: true,
    short_names: &[],
    verbs: RW,
    subresources: &["status"],
};

/// batch/v1 Job: a DELETE without a policy orphans (with the warning); an explicit
/// Background does not warn and the pods follow.
#[tokio::test]
async fn gc_job_delete_defaults_to_orphan_with_warning() {
    let (api, _dir) = api().await;
    let job = put(
        &api,
        "batch/jobs",
        "default",
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}}),
    )
    .await;
    dependent_pod(&api, "j-1", &job, true).await;
    let (d, warnings) = api
        .delete_with_warnings(&JOBS, "default", "j", &DeleteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(warnings, vec![
        "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning".to_string()
    ]);
    let Deleted::Pending(o) = d else {
        panic!("job removed at once")
    };
    assert_eq!(o["metadata"]["finalizers"], json!(["orphan"]));
    assert!(o["metadata"]["deletionTimestamp"].is_string());
    gc(&api).await;
    assert!(stored(&api, "batch/jobs", "default", "j").is_none());
    let p = stored(&api, "pods", "default", "j-1").unwrap_or_else(|| panic!("pod deleted"));
    assert!(p["metadata"].get("ownerReferences").is_none());

    let job = put(
        &api,
        "batch/jobs",
        "default",
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "k"}}),
    )
    .await;
    dependent_pod(&api, "k-1", &job, true).await;
    let (d, warnings) = api
        .delete_with_warnings(&JOBS, "default", "k", &policy("Background"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(warnings.is_empty());
    assert!(matches!(d, Deleted::Gone(_)));
    gc(&api).await;
    let p = stored(&api, "pods", "default", "k-1").unwrap_or_else(|| panic!("pod"));
    assert!(p["metadata"]["deletionTimestamp"].is_string(), "{p}");
}

/// Objects whose owners are gone (missing, or the name now has another uid) are collected;
/// an object that still has a live owner only loses the dangling reference.
#[tokio::test]
async fn gc_collects_objects_with_absent_owners() {
    let (api, _dir) = api().await;
    let live = owner_cm(&api, "live").await;
    let mut ghost = (*owner_cm(&api, "ghost").await).clone();
    ghost["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000000");
    // Dependent of a uid that no longer matches the object of that name.
    dependent_cm(&api, "stale", &ghost).await;
    // Dependent of an object that never existed.
    let mut missing = ghost.clone();
    missing["metadata"]["name"] = json!("nobody");
    dependent_pod(&api, "lost", &missing, false).await;
    // Dependent of both a live and a missing owner.
    let mut body: Value = serde_json::from_slice(&pod_body("shared")).unwrap_or_default();
    let mut second = owner_ref(&missing, false);
    second["controller"] = json!(false);
    body["metadata"]["ownerReferences"] = json!([owner_ref(&live, false), second]);
    create(&api, "pods", "default", body)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let report = gc(&api).await;
    assert!(report.deleted >= 2, "{report:?}");
    assert!(stored(&api, "configmaps", "default", "stale").is_none());
    let lost = stored(&api, "pods", "default", "lost").unwrap_or_else(|| panic!("lost"));
    assert!(lost["metadata"]["deletionTimestamp"].is_string());
    let shared = stored(&api, "pods", "default", "shared").unwrap_or_else(|| panic!("shared"));
    assert!(shared["metadata"].get("deletionTimestamp").is_none());
    assert_eq!(
        shared["metadata"]["ownerReferences"],
        json!([owner_ref(&live, false)])
    );
    // A second pass finds nothing new to do.
    assert_eq!(gc(&api).await, gc::GcReport::default());
}
