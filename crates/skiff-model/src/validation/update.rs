//! Which changes to a running pod's spec are allowed: the API server's ValidatePodUpdate
//! (pkg/apis/core/validation/validation.go) and, for ephemeral containers, the
//! `ephemeralcontainers` subresource's ValidatePodEphemeralContainersUpdate. Pure, so the
//! engine (which accepts only what the API server would accept, so a pod update fed to a
//! running engine can never ask for something the kubelet could not do either) and an API
//! server share it. The first error found is returned, rendered like V0.

use k8s_openapi::api::core::v1::{EphemeralContainer, PodSpec, Toleration};

use crate::field::ErrorType;

/// A pod update the API server would reject, rendered like V0: `<path>: <type>: <detail>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// `<path>: Forbidden: <detail>`.
    #[error("{path}: Forbidden: {detail}")]
    Forbidden { path: String, detail: String },
    /// `<path>: Invalid value: <value>: <detail>` (value already rendered per V0).
    #[error("{path}: Invalid value: {value}: {detail}")]
    Invalid {
        path: String,
        value: String,
        detail: String,
    },
    /// `<path>: Required value`.
    #[error("{path}: Required value")]
    Required { path: String },
    /// `<path>: Duplicate value: "<name>"`.
    #[error("{path}: Duplicate value: {name:?}")]
    Duplicate { path: String, name: String },
}

impl UpdateError {
    /// The field the error is about (`spec.activeDeadlineSeconds`).
    pub fn path(&self) -> &str {
        match self {
            UpdateError::Forbidden { path, .. }
            | UpdateError::Invalid { path, .. }
            | UpdateError::Required { path }
            | UpdateError::Duplicate { path, .. } => path,
        }
    }

    /// The kind of field error (for an API Status cause).
    pub fn error_type(&self) -> ErrorType {
        match self {
            UpdateError::Forbidden { .. } => ErrorType::Forbidden,
            UpdateError::Invalid { .. } => ErrorType::Invalid,
            UpdateError::Required { .. } => ErrorType::Required,
            UpdateError::Duplicate { .. } => ErrorType::Duplicate,
        }
    }
}

/// ValidatePodUpdate's detail for any other change (the upstream message appends a diff).
pub const UPDATE_FORBIDDEN_DETAIL: &str = "pod updates may not change fields other than \
`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,\
`spec.tolerations` (only additions to existing tolerations),\
`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

const MAX_INT32: i64 = 2_147_483_647;

const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case \
alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. \
'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn forbidden(path: impl Into<String>, detail: impl Into<String>) -> UpdateError {
    UpdateError::Forbidden {
        path: path.into(),
        detail: detail.into(),
    }
}

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(ok)
        && b.last().is_some_and(ok)
        && b.iter().all(|c| ok(c) || *c == b'-')
}

/// V3 on one image of the new spec.
fn check_image(path: String, image: Option<&str>) -> Result<(), UpdateError> {
    let img = image.unwrap_or("");
    if img.is_empty() {
        return Err(UpdateError::Required { path });
    }
    if img.trim() != img {
        return Err(UpdateError::Invalid {
            path,
            value: format!("{img:?}"),
            detail: "must not have leading or trailing whitespace".into(),
        });
    }
    Ok(())
}

/// ValidatePodUpdate's activeDeadlineSeconds rule: nil → positive, or positive → smaller.
fn check_active_deadline(old: Option<i64>, new: Option<i64>) -> Result<(), UpdateError> {
    let path = "spec.activeDeadlineSeconds".to_string();
    match (old, new) {
        (_, Some(n)) if !(1..=MAX_INT32).contains(&n) => Err(UpdateError::Invalid {
            path,
            value: n.to_string(),
            detail: format!("must be between 1 and {MAX_INT32}, inclusive"),
        }),
        (Some(o), Some(n)) if n > o => Err(UpdateError::Invalid {
            path,
            value: n.to_string(),
            detail: "must be less than or equal to previous value".into(),
        }),
        (Some(_), None) => Err(UpdateError::Invalid {
            path,
            value: "null".into(),
            detail: "must not update from a positive integer to nil value".into(),
        }),
        _ => Ok(()),
    }
}

/// validateOnlyAddedTolerations: every old toleration must still be there; only its
/// tolerationSeconds may differ.
fn check_tolerations(old: &[Toleration], new: &[Toleration]) -> Result<(), UpdateError> {
    for o in old {
        let found = new.iter().any(|n| {
            let mut clone = o.clone();
            clone.toleration_seconds = n.toleration_seconds;
            clone == *n
        });
        if !found {
            return Err(forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
        }
    }
    Ok(())
}

/// validateEphemeralContainers for one added container: fields an ephemeral container may not
/// have, in the upstream order.
fn check_new_ephemeral(path: &str, c: &EphemeralContainer) -> Result<(), UpdateError> {
    if c.name.is_empty() {
        return Err(UpdateError::Required {
            path: format!("{path}.name"),
        });
    }
    if !is_dns1123_label(&c.name) {
        return Err(UpdateError::Invalid {
            path: format!("{path}.name"),
            value: format!("{:?}", c.name),
            detail: DNS1123_LABEL_ERR.into(),
        });
    }
    check_image(format!("{path}.image"), c.image.as_deref())?;
    let resources_set = c.resources.as_ref().is_some_and(|r| {
        r.limits.as_ref().is_some_and(|m| !m.is_empty())
            || r.requests.as_ref().is_some_and(|m| !m.is_empty())
            || r.claims.as_ref().is_some_and(|v| !v.is_empty())
    });
    let set = [
        ("lifecycle", c.lifecycle.is_some()),
        ("livenessProbe", c.liveness_probe.is_some()),
        ("ports", c.ports.as_ref().is_some_and(|p| !p.is_empty())),
        ("readinessProbe", c.readiness_probe.is_some()),
        ("resources", resources_set),
        ("startupProbe", c.startup_probe.is_some()),
        ("restartPolicy", c.restart_policy.is_some()),
    ];
    if let Some((field, _)) = set.iter().find(|(_, s)| *s) {
        return Err(forbidden(
            format!("{path}.{field}"),
            "cannot be set for an Ephemeral Container",
        ));
    }
    Ok(())
}

/// ValidatePodEphemeralContainersUpdate: existing ephemeral containers may be neither removed nor
/// changed; names of added ones are unique across every container of the pod.
fn check_ephemeral(old: &PodSpec, new: &PodSpec) -> Result<(), UpdateError> {
    let old_eph = old.ephemeral_containers.as_deref().unwrap_or(&[]);
    let new_eph = new.ephemeral_containers.as_deref().unwrap_or(&[]);
    for o in old_eph {
        match new_eph.iter().position(|n| n.name == o.name) {
            None => {
                return Err(forbidden(
                    "spec",
                    format!(
                        "existing ephemeral containers {:?} may not be removed",
                        o.name
                    ),
                ))
            }
            Some(k) if new_eph[k] != *o => {
                return Err(forbidden(
                    format!("spec.ephemeralContainers[{k}]"),
                    format!(
                        "existing ephemeral containers {:?} may not be changed",
                        o.name
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    let mut names: Vec<&str> = new
        .init_containers
        .iter()
        .flatten()
        .chain(new.containers.iter())
        .map(|c| c.name.as_str())
        .collect();
    for (k, c) in new_eph.iter().enumerate() {
        let path = format!("spec.ephemeralContainers[{k}]");
        if names.contains(&c.name.as_str()) {
            return Err(UpdateError::Duplicate {
                path: format!("{path}.name"),
                name: c.name.clone(),
            });
        }
        names.push(&c.name);
        if !old_eph.iter().any(|o| o.name == c.name) {
            check_new_ephemeral(&path, c)?;
        }
    }
    Ok(())
}

/// The whole check: the new spec may differ from the old one only in container/init-container
/// images, activeDeadlineSeconds, added tolerations and added ephemeral containers.
pub fn validate_update(old: &PodSpec, new: &PodSpec) -> Result<(), UpdateError> {
    let old_init = old.init_containers.as_deref().unwrap_or(&[]);
    let new_init = new.init_containers.as_deref().unwrap_or(&[]);
    let mut munged = new.clone();
    if new.containers.len() == old.containers.len() && new_init.len() == old_init.len() {
        for (k, c) in new.containers.iter().enumerate() {
            check_image(format!("spec.containers[{k}].image"), c.image.as_deref())?;
        }
        for (k, c) in new_init.iter().enumerate() {
            check_image(
                format!("spec.initContainers[{k}].image"),
                c.image.as_deref(),
            )?;
        }
        // mungedPodSpec: take the old values of the mutable fields, then compare.
        for (m, o) in munged.containers.iter_mut().zip(&old.containers) {
            m.image.clone_from(&o.image);
        }
        if let (Some(m), Some(o)) = (
            munged.init_containers.as_mut(),
            old.init_containers.as_ref(),
        ) {
            for (m, o) in m.iter_mut().zip(o) {
                m.image.clone_from(&o.image);
            }
        }
    }
    check_active_deadline(old.active_deadline_seconds, new.active_deadline_seconds)?;
    munged.active_deadline_seconds = old.active_deadline_seconds;
    check_tolerations(
        old.tolerations.as_deref().unwrap_or(&[]),
        new.tolerations.as_deref().unwrap_or(&[]),
    )?;
    munged.tolerations.clone_from(&old.tolerations);
    check_ephemeral(old, new)?;
    munged
        .ephemeral_containers
        .clone_from(&old.ephemeral_containers);
    if munged != *old {
        return Err(forbidden("spec", UPDATE_FORBIDDEN_DETAIL));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(is_dns1123_label("debugger-1"));
        assert!(!is_dns1123_label("Debugger"));
        assert!(!is_dns1123_label("-x"));
        assert!(!is_dns1123_label(""));
    }

    #[test]
    fn errors_render_like_v0_and_name_their_field() {
        let old = PodSpec {
            active_deadline_seconds: Some(30),
            ..Default::default()
        };
        let mut new = old.clone();
        new.active_deadline_seconds = Some(60);
        let e = validate_update(&old, &new).unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.activeDeadlineSeconds: Invalid value: 60: must be less than or equal to previous value"
        );
        assert_eq!(e.path(), "spec.activeDeadlineSeconds");
        assert_eq!(e.error_type(), ErrorType::Invalid);
        new.active_deadline_seconds = Some(30);
        new.hostname = Some("other".into());
        let e = validate_update(&old, &new).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("spec: Forbidden: {UPDATE_FORBIDDEN_DETAIL}")
        );
        assert_eq!(e.error_type(), ErrorType::Forbidden);
        new.hostname = None;
        assert_eq!(validate_update(&old, &new), Ok(()));
    }
}
