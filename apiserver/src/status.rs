//! API errors and their one mapping to `meta/v1 Status` responses.
//!
//! Every handler returns `Result<_, ApiError>`; this file alone decides the HTTP code,
//! `reason` and `details` each error becomes, following Kubernetes' `apimachinery/pkg/api/errors`.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};

use crate::storage::StorageError;

/// One field-level cause of a 422 Invalid (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Kubernetes' cause type, e.g. `FieldValueRequired`, `FieldValueInvalid`.
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// What the object an error is about is: its group, kind (resource plural, as Kubernetes
/// reports it) and name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub group: String,
    pub kind: String,
    pub name: String,
}

impl Subject {
    pub fn new(group: &str, kind: &str, name: &str) -> Self {
        Self {
            group: group.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    /// `pods "x"` or `deployments.apps "x"`, as Kubernetes' messages name objects.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            format!("{} {:?}", self.kind, self.name)
        } else {
            format!("{}.{} {:?}", self.kind, self.group, self.name)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// An object that does not exist.
    #[error("{} not found", .0.qualified())]
    NotFound(Subject),
    /// A path that names no resource.
    #[error("the server could not find the requested resource")]
    NoSuchResource,
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("{} already exists", .0.qualified())]
    AlreadyExists(Subject),
    #[error("Operation cannot be fulfilled on {}: {message}", .subject.qualified())]
    Conflict { subject: Subject, message: String },
    /// A watch or continue token older than the retained history.
    #[error("{0}")]
    Expired(String),
    #[error("{0}")]
    Gone(String),
    #[error("{subject_kind} {name:?} is invalid: {}", summarize(.causes))]
    Invalid {
        group: String,
        subject_kind: String,
        name: String,
        causes: Vec<Cause>,
    },
    #[error("the request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the body of the request was in an unknown format - accepted media types include: {accepted}")]
    UnsupportedMediaType { accepted: String },
    #[error("{0}")]
    ServiceUnavailable(String),
    /// An error whose code and reason another module decided (patch, apply).
    #[error("{message}")]
    Other {
        code: u16,
        reason: &'static str,
        message: String,
    },
    #[error("{0}")]
    Internal(String),
}

fn summarize(causes: &[Cause]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| {
            if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            }
        })
        .collect();
    if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    }
}

impl ApiError {
    pub fn conflict_modified(subject: Subject) -> Self {
        ApiError::Conflict {
            subject,
            message: "the object has been modified; please apply your changes to the latest \
                      version and try again"
                .into(),
        }
    }

    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoSuchResource => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::AlreadyExists(_) | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Expired(_) | ApiError::Gone(_) => StatusCode::GONE,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Other { code, .. } => {
                StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Kubernetes' `StatusReason` for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::NotFound(_) | ApiError::NoSuchResource => "NotFound",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Expired(_) => "Expired",
            ApiError::Gone(_) => "Gone",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::TooLarge { .. } => "RequestEntityTooLarge",
            ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::Other { reason, .. } => reason,
            ApiError::Internal(_) => "InternalError",
        }
    }

    fn details(&self) -> Option<Value> {
        let subject = |s: &Subject| json!({"name": s.name, "group": s.group, "kind": s.kind});
        match self {
            ApiError::NotFound(s) | ApiError::AlreadyExists(s) => Some(subject(s)),
            ApiError::Conflict { subject: s, .. } => Some(subject(s)),
            ApiError::Invalid {
                group,
                subject_kind,
                name,
                causes,
            } => {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                Some(json!({"name": name, "group": group, "kind": subject_kind,
                            "causes": causes}))
            }
            _ => None,
        }
    }

    /// The `meta/v1 Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        if let Some(d) = self.details() {
            status["details"] = d;
        }
        status
    }

    /// Maps a store error about the object `subject`.
    pub fn from_storage(err: StorageError, subject: Subject) -> Self {
        match err {
            StorageError::AlreadyExists { .. } => ApiError::AlreadyExists(subject),
            StorageError::NotFound { .. } => ApiError::NotFound(subject),
            StorageError::Conflict { .. } => ApiError::conflict_modified(subject),
            StorageError::Compacted { requested, oldest } => {
                ApiError::Expired(format!("too old resource version: {requested} ({oldest})"))
            }
            StorageError::WatchLagged => {
                ApiError::Expired("watch fell behind; relist and watch again".into())
            }
            StorageError::Backend(m) => ApiError::Internal(format!("storage failed: {m}")),
        }
    }
}

/// A JSON response with `application/json` content type.
pub fn json_response(code: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = (code, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if matches!(self, ApiError::Internal(_)) {
            tracing::warn!(error = %self, "internal error");
        }
        json_response(self.code(), &self.to_status())
    }
}

/// A successful `Status` (what delete and binding return for kinds that return no object).
pub fn success_status(kind: &str, group: &str, name: &str, uid: Option<&str>) -> Value {
    let mut details = json!({"name": name, "group": group, "kind": kind});
    if let Some(uid) = uid {
        details["uid"] = json!(uid);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
           "details": details})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_names_the_object_like_kubernetes() {
        let e = ApiError::NotFound(Subject::new("apps", "deployments", "web"));
        let s = e.to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(s["details"]["kind"], "deployments");
    }

    #[test]
    fn invalid_status_carries_one_cause_per_field() {
        let e = ApiError::Invalid {
            group: String::new(),
            subject_kind: "Pod".into(),
            name: "p".into(),
            causes: vec![
                Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "spec.containers".into(),
                },
                Cause {
                    reason: "FieldValueInvalid".into(),
                    message: "Invalid value".into(),
                    field: "metadata.name".into(),
                },
            ],
        };
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["causes"].as_array().unwrap().len(), 2);
        assert!(s["message"]
            .as_str()
            .unwrap()
            .starts_with("Pod \"p\" is invalid: ["));
    }
}
