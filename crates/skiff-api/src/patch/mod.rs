//! PATCH bodies applied to objects: RFC 6902 JSON patch, RFC 7386 merge patch, strategic
//! merge patch, server-side apply.
//!
//! Error statuses follow kube-apiserver's patch handler (`pkg/endpoints/handlers/patch.go`): a
//! body that does not decode is 400; a JSON patch that does not apply is 422 with
//! evanphx/json-patch's wording; a merge patch cannot fail once decoded; strategic merge patch
//! format errors (`invalid patch format of …`) are 400, the others 422.

use serde_json::Value;

mod apply;
mod smp;
#[cfg(test)]
mod tests;

/// The kind of a PATCH, from its Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

/// The most operations a JSON patch may have (kube-apiserver's `maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Why a patch could not be applied; the registry answers 422 (or 400 for an undecodable
/// body, 409 for an apply conflict) with `message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body does not decode as this patch type.
    #[error("{0}")]
    BadRequest(String),
    /// The patch decodes but cannot be applied (a failed `test` op, a bad path, a bad
    /// directive). kube-apiserver's Status for it (NewGenericServerResponse 422): reason
    /// `Invalid`, message `the server rejected our request due to an error in our request`,
    /// and this text as `details.causes[0]` of reason `UnexpectedServerResponse`.
    #[error("{0}")]
    Invalid(String),
}

/// Applies `patch` (of `patch_type`, raw body bytes) to `original`, an object of `kind`
/// (`Pod`, `ConfigMap`, …; strategic merge patch needs it for the merge keys). Server-side
/// apply goes through [`server_side_apply`] instead.
pub fn apply_patch(
    kind: &str,
    patch_type: PatchType,
    original: &Value,
    patch: &[u8],
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => {
            let p: json_patch::Patch =
                serde_json::from_slice(patch).map_err(|e| PatchError::BadRequest(e.to_string()))?;
            // kube-apiserver's bound (maxJSONPatchOperations); it answers 413 where skiff's
            // two error kinds make this a 400.
            if p.0.len() > MAX_JSON_PATCH_OPERATIONS {
                return Err(PatchError::BadRequest(format!(
                    "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                    p.0.len()
                )));
            }
            let mut doc = original.clone();
            json_patch::patch(&mut doc, &p)
                .map_err(|e| PatchError::Invalid(json_patch_message(&p, &e)))?;
            Ok(doc)
        }
        PatchType::Merge => {
            let p: Value =
                serde_json::from_slice(patch).map_err(|e| PatchError::BadRequest(e.to_string()))?;
            let mut doc = original.clone();
            json_patch::merge(&mut doc, &p);
            Ok(doc)
        }
        PatchType::StrategicMerge => {
            let p: Value =
                serde_json::from_slice(patch).map_err(|e| PatchError::BadRequest(e.to_string()))?;
            smp::strategic_merge(kind, original, &p)
        }
        PatchType::Apply => Err(PatchError::BadRequest(
            "server-side apply goes through server_side_apply".into(),
        )),
    }
}

/// kube-apiserver's texts for a JSON patch that does not apply (evanphx/json-patch v4).
fn json_patch_message(p: &json_patch::Patch, e: &json_patch::PatchError) -> String {
    use json_patch::{PatchErrorKind, PatchOperation as Op};
    let path = e.path.to_string();
    match (&e.kind, p.0.get(e.operation)) {
        (PatchErrorKind::TestFailed, _) => format!("testing value {path} failed: test failed"),
        (_, Some(Op::Add(_))) => {
            format!("add operation does not apply: doc is missing path: \"{path}\": missing value")
        }
        (_, Some(Op::Remove(_))) => format!(
            "remove operation does not apply: doc is missing path: \"{path}\": missing value"
        ),
        (_, Some(Op::Replace(_))) => {
            format!("replace operation does not apply: doc is missing key: {path}: missing value")
        }
        (_, Some(Op::Move(m))) => format!(
            "move operation does not apply: doc is missing from path: {}: missing value",
            m.from
        ),
        (_, Some(Op::Copy(c))) => format!(
            "copy operation does not apply: doc is missing from path: {}: missing value",
            c.from
        ),
        _ => e.to_string(),
    }
}

/// Server-side apply of `applied` (the decoded apply body) by `manager` onto `live` (None:
/// the object is created from it). Returns the new object, with `metadata.managedFields`
/// recording `manager`'s fields. See [`apply`] for what it does and does not do (no conflict
/// detection: `force` is always true).
pub fn server_side_apply(
    kind: &str,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, PatchError> {
    apply::server_side_apply(kind, live, applied, manager, force)
}

/// The FieldsV1 set of an object of `kind` (as [`server_side_apply`] records for its manager):
/// for a caller that records `operation: Update` entries too.
pub fn managed_field_set(kind: &str, obj: &Value) -> Value {
    apply::field_set(obj, crate::openapi::schema_for_kind(kind), 0)
}
