//! PATCH bodies applied to objects: RFC 6902 JSON patch, RFC 7386 merge patch, strategic
//! merge patch, server-side apply.
//!
//! SKELETON (session 6 lead): the signatures are the contract with `registry`; the strategic
//! and apply bodies are placeholders the schema work replaces.

use serde_json::Value;

use crate::registry::PatchType;

/// Why a patch could not be applied; the registry answers 422 (or 400 for an undecodable
/// body, 409 for an apply conflict) with `message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body does not decode as this patch type.
    #[error("{0}")]
    BadRequest(String),
    /// The patch decodes but cannot be applied (a failed `test` op, a bad path, a bad
    /// directive).
    #[error("{0}")]
    Invalid(String),
}

/// Applies `patch` (of `patch_type`, raw body bytes) to `original`, an object of `kind`
/// (`Pod`, `ConfigMap`, …; strategic merge patch needs it for the merge keys). Server-side
/// apply goes through [`server_side_apply`] instead.
pub fn apply_patch(
    _kind: &str,
    patch_type: PatchType,
    original: &Value,
    patch: &[u8],
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => {
            let p: json_patch::Patch =
                serde_json::from_slice(patch).map_err(|e| PatchError::BadRequest(e.to_string()))?;
            let mut doc = original.clone();
            json_patch::patch(&mut doc, &p).map_err(|e| PatchError::Invalid(e.to_string()))?;
            Ok(doc)
        }
        PatchType::Merge | PatchType::StrategicMerge => {
            let p: Value =
                serde_json::from_slice(patch).map_err(|e| PatchError::BadRequest(e.to_string()))?;
            let mut doc = original.clone();
            json_patch::merge(&mut doc, &p);
            Ok(doc)
        }
        PatchType::Apply => Err(PatchError::BadRequest(
            "server-side apply goes through server_side_apply".into(),
        )),
    }
}

/// Server-side apply of `applied` (the decoded apply body) by `manager` onto `live` (None:
/// the object is created from it). Returns the new object, with `metadata.managedFields`
/// recording `manager`'s fields.
pub fn server_side_apply(
    _kind: &str,
    live: Option<&Value>,
    applied: &Value,
    _manager: &str,
    _force: bool,
) -> Result<Value, PatchError> {
    let mut doc = live.cloned().unwrap_or(Value::Object(Default::default()));
    json_patch::merge(&mut doc, applied);
    Ok(doc)
}
