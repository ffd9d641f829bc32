//! One validation failure, shaped like a `meta/v1 StatusCause`, with the message texts of
//! k8s.io/apimachinery `pkg/util/validation/field` (`Error.ErrorBody`).

use serde::Serialize;
use serde_json::Value;

use super::Path;

/// The `reason` of a `StatusCause` (`metav1.CauseType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CauseType {
    FieldValueInvalid,
    FieldValueRequired,
    FieldValueDuplicate,
    FieldValueNotSupported,
    FieldValueTooLong,
    FieldValueForbidden,
    FieldValueNotFound,
}

impl CauseType {
    /// The phrase `field.ErrorType.String()` starts messages with.
    fn phrase(self) -> &'static str {
        match self {
            CauseType::FieldValueInvalid => "Invalid value",
            CauseType::FieldValueRequired => "Required value",
            CauseType::FieldValueDuplicate => "Duplicate value",
            CauseType::FieldValueNotSupported => "Unsupported value",
            CauseType::FieldValueTooLong => "Too long",
            CauseType::FieldValueForbidden => "Forbidden",
            CauseType::FieldValueNotFound => "Not found",
        }
    }
}

/// One bad field: serializes as a Status `details.causes` item (`reason`, `message`, `field`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldCause {
    pub reason: CauseType,
    pub message: String,
    pub field: String,
}

/// Renders a bad value as Go's `%q` / `%v` do for the types we report.
fn show(value: &Value) -> String {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => value.to_string(),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

impl FieldCause {
    fn new(reason: CauseType, field: &Path, body: String) -> FieldCause {
        FieldCause {
            reason,
            message: body,
            field: field.as_str().to_string(),
        }
    }

    /// `Invalid value: "Foo_Bar": <detail>`.
    pub(crate) fn invalid(field: &Path, value: impl Into<Value>, detail: &str) -> FieldCause {
        let mut body = format!(
            "{}: {}",
            CauseType::FieldValueInvalid.phrase(),
            show(&value.into())
        );
        if !detail.is_empty() {
            body.push_str(": ");
            body.push_str(detail);
        }
        FieldCause::new(CauseType::FieldValueInvalid, field, body)
    }

    /// `Invalid value: <pre-rendered value>: <detail>`, for Go-formatted composite values.
    pub(crate) fn invalid_raw(field: &Path, rendered: &str, detail: &str) -> FieldCause {
        let body = format!(
            "{}: {rendered}: {detail}",
            CauseType::FieldValueInvalid.phrase()
        );
        FieldCause::new(CauseType::FieldValueInvalid, field, body)
    }

    /// `Required value` or `Required value: <detail>`.
    pub(crate) fn required(field: &Path, detail: &str) -> FieldCause {
        FieldCause::new(
            CauseType::FieldValueRequired,
            field,
            with_detail(CauseType::FieldValueRequired, detail),
        )
    }

    /// `Duplicate value: "x"`.
    pub(crate) fn duplicate(field: &Path, value: impl Into<Value>) -> FieldCause {
        let body = format!(
            "{}: {}",
            CauseType::FieldValueDuplicate.phrase(),
            show(&value.into())
        );
        FieldCause::new(CauseType::FieldValueDuplicate, field, body)
    }

    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub(crate) fn not_supported(
        field: &Path,
        value: impl Into<Value>,
        valid: &[&str],
    ) -> FieldCause {
        let quoted: Vec<String> = valid.iter().map(|v| Value::from(*v).to_string()).collect();
        let body = format!(
            "{}: {}: supported values: {}",
            CauseType::FieldValueNotSupported.phrase(),
            show(&value.into()),
            quoted.join(", ")
        );
        FieldCause::new(CauseType::FieldValueNotSupported, field, body)
    }

    /// An `Unsupported value` cause whose message is already rendered (Go-formatted values).
    pub(crate) fn not_supported_raw(field: &Path, body: String) -> FieldCause {
        FieldCause::new(CauseType::FieldValueNotSupported, field, body)
    }

    /// `Too long: must have at most N bytes`.
    pub(crate) fn too_long(field: &Path, max: usize) -> FieldCause {
        let detail = format!("must have at most {max} bytes");
        FieldCause::new(
            CauseType::FieldValueTooLong,
            field,
            with_detail(CauseType::FieldValueTooLong, &detail),
        )
    }

    /// `Forbidden: <detail>`.
    pub(crate) fn forbidden(field: &Path, detail: &str) -> FieldCause {
        FieldCause::new(
            CauseType::FieldValueForbidden,
            field,
            with_detail(CauseType::FieldValueForbidden, detail),
        )
    }

    /// `Not found: "x"`.
    pub(crate) fn not_found(field: &Path, value: impl Into<Value>) -> FieldCause {
        let body = format!(
            "{}: {}",
            CauseType::FieldValueNotFound.phrase(),
            show(&value.into())
        );
        FieldCause::new(CauseType::FieldValueNotFound, field, body)
    }

    /// `field: message`, as the error reads inside a Status message.
    pub fn error_string(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

fn with_detail(reason: CauseType, detail: &str) -> String {
    if detail.is_empty() {
        reason.phrase().to_string()
    } else {
        format!("{}: {detail}", reason.phrase())
    }
}

/// The `Status.message` of a 422 (apimachinery `errors.NewInvalid`):
/// `Pod "x" is invalid: spec.containers: Required value`, several causes in `[a, b]`.
pub fn invalid_message(kind: &str, name: &str, causes: &[FieldCause]) -> String {
    let errors: Vec<String> = causes.iter().map(FieldCause::error_string).collect();
    let list = match errors.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    format!("{kind} {} is invalid: {list}", Value::from(name))
}
