//! What kube-apiserver does to a Pod on create before validating it, besides defaulting:
//! `rest.BeforeCreate` (staging/src/k8s.io/apiserver/pkg/registry/rest/create.go) and
//! `podStrategy.PrepareForCreate` (pkg/registry/core/pod/strategy.go). So a Pod exported from a
//! cluster (`kubectl get pod -o yaml`: status, uid, resourceVersion, managedFields, …) is taken
//! as the API server takes a new Pod: what the server sets itself is reset, what the user may
//! set (ownerReferences, nodeName, tolerations, …) is kept.
//!
//! One deliberate difference: the storage layer of a real API server refuses a create whose
//! `metadata.resourceVersion` is set ("resourceVersion should not be set on objects to be
//! created"); skiff ignores it instead, so that exported pods run unedited (issue 8).

use k8s_openapi::api::core::v1::Pod;

use crate::gates;

/// Resets the server-set parts of `pod` as the API server does on create.
pub fn prepare_for_create(pod: &mut Pod) {
    let meta = &mut pod.metadata;
    // BeforeCreate: deletion fields cleared, then FillObjectMetaSystemFields sets a new uid and
    // creationTimestamp (skiff sets both when it admits the pod: `skiff run`).
    meta.deletion_timestamp = None;
    meta.deletion_grace_period_seconds = None;
    meta.uid = None;
    meta.creation_timestamp = None;
    // Set by the storage layer (see the module docs) and by server-side apply's field manager,
    // which skiff does not have; selfLink is no longer served at all.
    meta.resource_version = None;
    meta.managed_fields = None;
    meta.self_link = None;
    // PrepareForCreate: `pod.Generation = 1` (PodObservedGenerationTracking, GA in 1.35), and
    // the whole status replaced. The server's new status holds only phase Pending and the QoS
    // class; skiff's node computes both, so nothing of the input status is kept.
    meta.generation = Some(1);
    pod.status = None;
    // PrepareForCreate: podutil.DropDisabledPodFields(pod, nil).
    gates::drop_disabled_pod_fields(pod);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        ManagedFieldsEntry, OwnerReference, Time,
    };

    #[test]
    fn server_set_metadata_and_status_are_reset_owner_references_kept() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web-7d4b9c6f5-x2x9q", "namespace": "shop", "uid": "6b1e2c3d-0000-4000-8000-000000000001",
                "resourceVersion": "123456", "generation": 4, "selfLink": "/api/v1/x",
                "creationTimestamp": "2025-01-02T03:04:05Z", "deletionTimestamp": "2025-01-02T03:05:05Z",
                "deletionGracePeriodSeconds": 30,
                "labels": {"app": "web"},
            },
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.7", "qosClass": "BestEffort"},
        }))
        .unwrap_or_default();
        pod.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        pod.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web-7d4b9c6f5".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        assert!(pod.metadata.creation_timestamp.is_some());
        prepare_for_create(&mut pod);
        let m = &pod.metadata;
        assert_eq!(m.uid, None);
        assert_eq!(m.resource_version, None);
        assert_eq!(m.creation_timestamp, None::<Time>);
        assert_eq!(m.deletion_timestamp, None::<Time>);
        assert_eq!(m.deletion_grace_period_seconds, None);
        assert_eq!(m.managed_fields, None);
        assert_eq!(m.self_link, None);
        assert_eq!(m.generation, Some(1));
        assert_eq!(pod.status, None);
        // Kept: what the user may set.
        assert_eq!(m.name.as_deref(), Some("web-7d4b9c6f5-x2x9q"));
        assert_eq!(m.namespace.as_deref(), Some("shop"));
        assert_eq!(m.owner_references.as_ref().map(Vec::len), Some(1));
        assert_eq!(
            pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some("node-1")
        );
    }
}
