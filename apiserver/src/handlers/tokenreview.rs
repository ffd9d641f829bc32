//! `POST /apis/authentication.k8s.io/v1/tokenreviews`: tells a caller (a nodelet
//! authenticating its own clients) whether a bearer token is one this server accepts and
//! whose it is. Like kube-apiserver's TokenReview REST, nothing is stored and the review
//! comes back with its status filled; the caller must itself be authenticated.

use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::AppState;
use crate::request;
use crate::status::{json_response, ApiError};

pub const PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// The user a token stands for.
struct User {
    name: &'static str,
    groups: &'static [&'static str],
}

/// The admin token is the cluster administrator (k3s calls it system:admin, in
/// system:masters); the node token, shared by node agents, is in system:nodes.
const ADMIN: User = User {
    name: "system:admin",
    groups: &["system:masters", "system:authenticated"],
};
const NODE: User = User {
    name: "system:minik8s-node",
    groups: &["system:nodes", "system:authenticated"],
};

pub fn serve(
    state: &AppState,
    method: &http::Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    if method != http::Method::POST {
        return Err(ApiError::MethodNotAllowed);
    }
    let mut review = request::decode_object(headers, body)?;
    let kind = review.get("kind").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && kind != "TokenReview" {
        return Err(ApiError::BadRequest(format!(
            "expected a TokenReview, got kind {kind:?}"
        )));
    }
    let token = review
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::BadRequest(
            "token is required for TokenReview in authentication".into(),
        ));
    }
    let audiences = review
        .pointer("/spec/audiences")
        .cloned()
        .unwrap_or(json!([]));
    let status = match user_of(state, token) {
        Some(u) => json!({
            "authenticated": true,
            "user": {"username": u.name, "groups": u.groups},
            "audiences": audiences,
        }),
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
    };
    review["apiVersion"] = json!("authentication.k8s.io/v1");
    review["kind"] = json!("TokenReview");
    if !review.get("metadata").is_some_and(Value::is_object) {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = status;
    Ok(json_response(StatusCode::CREATED, &review))
}

/// The user of a token: tokens[0] is the admin token, tokens[1] the node token (server.rs).
fn user_of(state: &AppState, token: &str) -> Option<&'static User> {
    let pos = state
        .tokens
        .iter()
        .position(|t| super::same_token(t, token))?;
    Some(if pos == 0 { &ADMIN } else { &NODE })
}
