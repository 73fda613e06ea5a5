//! `ValidatePodTemplateSpec` and pod-template defaulting (the Pod rules at template paths).

use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::field::{ErrorList, Path};

/// Defaults a pod template's spec as a Pod's (D1–D7).
pub fn default_pod_template(template: &mut PodTemplateSpec) {
    let _ = template;
}

/// Validates a pod template at `path` (e.g. `spec.template`).
pub fn validate_pod_template(template: &PodTemplateSpec, path: &Path) -> ErrorList {
    let _ = (template, path);
    ErrorList::new()
}
