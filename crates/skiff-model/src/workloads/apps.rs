//! apps/v1 Deployment and ReplicaSet: defaulting and validation (create, update).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use crate::field::ErrorList;

/// Defaults a Deployment (replicas 1, RollingUpdate 25%/25%, revisionHistoryLimit 10,
/// progressDeadlineSeconds 600, the template's pod spec).
pub fn default_deployment(d: &mut Deployment) {
    let _ = d;
}

/// `ValidateDeployment`.
pub fn validate_deployment(d: &Deployment) -> ErrorList {
    let _ = d;
    ErrorList::new()
}

/// `ValidateDeploymentUpdate`.
pub fn validate_deployment_update(new: &Deployment, old: &Deployment) -> ErrorList {
    let _ = (new, old);
    ErrorList::new()
}

/// Defaults a ReplicaSet (replicas 1, the template's pod spec).
pub fn default_replica_set(rs: &mut ReplicaSet) {
    let _ = rs;
}

/// `ValidateReplicaSet`.
pub fn validate_replica_set(rs: &ReplicaSet) -> ErrorList {
    let _ = rs;
    ErrorList::new()
}

/// `ValidateReplicaSetUpdate`.
pub fn validate_replica_set_update(new: &ReplicaSet, old: &ReplicaSet) -> ErrorList {
    let _ = (new, old);
    ErrorList::new()
}
