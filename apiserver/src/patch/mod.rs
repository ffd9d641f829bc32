//! The four Kubernetes patch types, as pure functions over JSON values:
//! JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch, and
//! server-side apply (apply-patch+yaml) with field managers.
//!
//! Every function takes the live object and the patch and returns the new object or an error
//! whose [`PatchError::status_code`] / [`PatchError::reason`] say which `Status` the handler
//! answers with, following k8s.io/apiserver's `patcher` (decode failures 400, failed tests and
//! bad paths 422, strategic merge patch of an unknown kind 415).
//!
//! How a handler uses it:
//! - PATCH: [`PatchType::from_content_type`], then [`apply_json_patch`], [`apply_merge_patch`],
//!   [`apply_strategic_merge_patch`] or [`server_side_apply`] on the live object; then validate,
//!   and (for all but apply) [`record_update`] with the request's field manager.
//! - POST/PUT: [`record_update`] (`old` is `None` on create) so `metadata.managedFields` tracks
//!   who set what; a client may replace managedFields, or clear them with `[]`.
//! - Apply errors: [`ApplyError`]'s `Display` is the whole `Status.message` (it already starts
//!   with "Apply failed with" for conflicts); each [`ApplyConflict`] gives a
//!   `FieldManagerConflict` cause (`field`, [`ApplyConflict::cause_message`]).

mod apply;
mod diff;
mod fieldset;
pub mod schema;
mod strategic;

pub use apply::{record_update, server_side_apply, ApplyConflict, ApplyError};
pub use fieldset::FieldSet;
pub use strategic::apply_strategic_merge_patch;

use serde_json::Value;

/// The most operations Kubernetes accepts in one JSON patch (k8s.io/apiserver `maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// A PATCH request's body format, chosen by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply; also `+json`).
    Apply,
}

impl PatchType {
    /// Maps a `Content-Type` header (parameters such as `; charset=utf-8` ignored) to the patch
    /// type; `None` means 415 Unsupported Media Type.
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let media = content_type.split(';').next()?.trim().to_ascii_lowercase();
        match media.as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }

    /// The canonical media type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch body is not a patch of its type (bad JSON, not a list of operations, ...): 400.
    #[error("{0}")]
    Malformed(String),
    /// Too many JSON patch operations: 413, as Kubernetes answers.
    #[error(
        "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {0}"
    )]
    TooManyOperations(usize),
    /// A JSON patch `test` operation did not match: 422.
    #[error("testing value {path} failed: test failed")]
    TestFailed { path: String },
    /// A JSON patch operation names a path that does not exist (or cannot): 422.
    #[error("{op} operation does not apply: doc is missing path: \"{path}\": missing value")]
    MissingPath { op: String, path: String },
    /// A `move`'s or `copy`'s `from` path does not exist: 422.
    #[error("{op} operation does not apply: doc is missing from path: \"{path}\": missing value")]
    MissingFrom { op: String, path: String },
    /// A strategic merge patch directive has an unknown value (`$patch: frobnicate`): 400.
    #[error("Unknown patch type: {value} in map: {context}")]
    BadDirective { value: String, context: String },
    /// A directive is malformed (`$retainKeys` not a list of strings, ...): 400.
    #[error("{0}")]
    BadDirectiveFormat(String),
    /// A `$patch: delete` list item has no merge key, or a keyed list item lacks its key: 422.
    #[error("map: {item} does not contain declared merge key: {key}")]
    MissingMergeKey { item: String, key: String },
    /// The patch sets fields outside its own `$retainKeys` list: 400
    /// (apimachinery `ErrBadPatchFormatForRetainKeys`).
    #[error("invalid patch format of retainKeys")]
    RetainKeysMismatch,
    /// Strategic merge patch of a kind without a known schema: 415, like custom resources.
    #[error("strategic merge patch format is not supported for kind {0}")]
    UnsupportedKind(String),
}

impl PatchError {
    /// The HTTP status code Kubernetes answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::Malformed(_)
            | PatchError::BadDirective { .. }
            | PatchError::BadDirectiveFormat(_)
            | PatchError::RetainKeysMismatch => 400,
            PatchError::TooManyOperations(_) => 413,
            PatchError::UnsupportedKind(_) => 415,
            PatchError::TestFailed { .. }
            | PatchError::MissingPath { .. }
            | PatchError::MissingFrom { .. }
            | PatchError::MissingMergeKey { .. } => 422,
        }
    }

    /// The `Status.reason` for [`Self::status_code`].
    pub fn reason(&self) -> &'static str {
        match self.status_code() {
            400 => "BadRequest",
            413 => "RequestEntityTooLarge",
            415 => "UnsupportedMediaType",
            _ => "Invalid",
        }
    }
}

/// Applies an RFC 6902 JSON patch (the raw request body) to `doc`.
///
/// All operations apply or none do. Kubernetes (evanphx/json-patch) answers 400 when the body
/// does not decode as a patch and 422 when an operation fails.
pub fn apply_json_patch(doc: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let ops: json_patch::Patch = serde_json::from_slice(patch)
        .map_err(|e| PatchError::Malformed(format!("invalid JSON patch: {e}")))?;
    if ops.0.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations(ops.0.len()));
    }
    let mut out = doc.clone();
    json_patch::patch(&mut out, &ops).map_err(|e| {
        let op = ops.0.get(e.operation);
        let (name, from) = match op {
            Some(json_patch::PatchOperation::Add(_)) => ("add", None),
            Some(json_patch::PatchOperation::Remove(_)) => ("remove", None),
            Some(json_patch::PatchOperation::Replace(_)) => ("replace", None),
            Some(json_patch::PatchOperation::Move(m)) => ("move", Some(m.from.to_string())),
            Some(json_patch::PatchOperation::Copy(c)) => ("copy", Some(c.from.to_string())),
            Some(json_patch::PatchOperation::Test(_)) | None => ("test", None),
        };
        let path = e.path.to_string();
        match e.kind {
            json_patch::PatchErrorKind::TestFailed => PatchError::TestFailed { path },
            json_patch::PatchErrorKind::InvalidFromPointer => PatchError::MissingFrom {
                op: name.to_string(),
                path: from.unwrap_or(path),
            },
            _ => PatchError::MissingPath {
                op: name.to_string(),
                path,
            },
        }
    })?;
    Ok(out)
}

/// Applies an RFC 7386 JSON merge patch: `null` deletes a key, objects merge recursively,
/// everything else (arrays included) replaces.
///
/// Kubernetes refuses a patch that is not a JSON object with 400 (`ErrBadJSONPatch`).
pub fn apply_merge_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::Malformed(
            "Invalid JSON Patch: a merge patch must be a JSON object".to_string(),
        ));
    }
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod kubectl_flow_tests;
