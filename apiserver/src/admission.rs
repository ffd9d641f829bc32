//! The checks every write passes before it is stored: the generic registry's own
//! (object names must be usable as one path segment, the body's kind and apiVersion must
//! match the endpoint) and the per-kind semantic validation in `validation`.

use minik8s_api::resource::ResourceInfo;
use serde_json::Value;

use crate::request::FieldValidation;
use crate::status::{ApiError, Cause};
use crate::validation;

/// Kubernetes' `path.IsValidPathSegmentName`: names that would break a URL or a key.
fn path_segment_causes(name: &str) -> Vec<Cause> {
    let mut out = Vec::new();
    let invalid = |msg: &str| Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {name:?}: {msg}"),
        field: "metadata.name".into(),
    };
    if name == "." || name == ".." {
        out.push(invalid("may not be '.' or '..'"));
    }
    for bad in ['/', '%'] {
        if name.contains(bad) {
            out.push(invalid(&format!("may not contain '{bad}'")));
        }
    }
    out
}

/// Checks the body's `apiVersion` and `kind` against the endpoint, filling them in when
/// absent (Kubernetes decodes a body without them as the endpoint's type).
pub fn check_type(info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    let want_av = info.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = Value::String(want_av),
        Some(av) if av == want_av => {}
        Some(av) => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )))
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => obj["kind"] = Value::String(info.kind.into()),
        Some(k) if k == info.kind => {}
        Some(k) => {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.kind
            )))
        }
    }
    match obj.get("metadata") {
        None | Some(Value::Null) => obj["metadata"] = serde_json::json!({}),
        Some(Value::Object(_)) => {}
        Some(_) => return Err(ApiError::BadRequest("metadata must be an object".into())),
    }
    Ok(())
}

fn invalid(info: &ResourceInfo, obj: &Value, causes: Vec<Cause>) -> Result<(), ApiError> {
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid {
        group: info.group.into(),
        subject_kind: info.kind.into(),
        name: obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .into(),
        causes,
    })
}

fn to_causes(causes: Vec<validation::FieldCause>) -> Vec<Cause> {
    causes
        .into_iter()
        .map(|c| Cause {
            reason: serde_json::to_value(c.reason)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_else(|| "FieldValueInvalid".into()),
            message: c.message,
            field: c.field,
        })
        .collect()
}

fn base_causes(info: &ResourceInfo, obj: &Value) -> Vec<Cause> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut causes = path_segment_causes(name);
    causes.extend(to_causes(validation::validate(info.kind, obj)));
    causes
}

/// Validation of a new object (create).
pub fn validate_create(info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    invalid(info, obj, base_causes(info, obj))
}

/// Validation of an update from `old` to `new`.
pub fn validate_update(info: &ResourceInfo, old: &Value, new: &Value) -> Result<(), ApiError> {
    let mut causes = base_causes(info, new);
    causes.extend(to_causes(validation::validate_update(info.kind, old, new)));
    invalid(info, new, causes)
}

/// Unknown and duplicate fields of a create/update body, as `fieldValidation` asks:
/// Strict turns them into a 400, Warn returns them as warnings, Ignore skips the check.
pub fn field_problems(
    info: &ResourceInfo,
    headers: &http::HeaderMap,
    body: &[u8],
    mode: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    // The protobuf decoder refuses unknown fields itself.
    if crate::request::content_type(headers) == crate::request::PROTOBUF {
        return Ok(Vec::new());
    }
    field_problems_json(info, body, mode)
}

/// The same check on a JSON or YAML document.
pub fn field_problems_json(
    info: &ResourceInfo,
    body: &[u8],
    mode: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    if mode == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    let problems = validation::unknown_fields(info.kind, body);
    if mode == FieldValidation::Strict && !problems.is_empty() {
        // Kubernetes: `strict decoding error: unknown field "spec.foo", duplicate field "x"`.
        return Err(ApiError::BadRequest(format!(
            "strict decoding error: {}",
            problems.join(", ")
        )));
    }
    Ok(problems)
}
