//! HTTP handling: authentication, body limits, and the dispatch of a request to the
//! discovery documents or to a resource verb. Every error leaves through
//! `ApiError::into_response` (status.rs), the one place errors become Status objects.

mod logs;
mod objects;
mod patch;
mod subresources;
mod tables;
mod tokenreview;

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::discovery;
use crate::registry::Registry;
use crate::request::{parse_path, Query, Route, MAX_BODY_BYTES};
use crate::status::{json_response, ApiError};

/// What every request handler shares.
pub struct AppState {
    pub registry: Arc<Registry>,
    /// Bearer tokens accepted: the admin token first, then the node token.
    pub tokens: Vec<String>,
    pub shutdown: CancellationToken,
    /// `host:port` clients reach the server at, for `/api`'s serverAddressByClientCIDRs.
    pub server_address: String,
}

/// The Kubernetes version this server reports. kubectl's dispatcher picks its client
/// version from `gitVersion`, and the API follows 1.32.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0",
        "gitCommit": "minik8s",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23.4",
        "compiler": "gc",
        "platform": format!("linux/{}", if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" }),
    })
}

fn text(code: StatusCode, body: &'static str) -> Response {
    let mut r = (code, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn authenticated(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(token) = v.strip_prefix("Bearer ").map(str::trim) else {
        return false;
    };
    // Compare every token in full so timing does not reveal a prefix.
    state
        .tokens
        .iter()
        .fold(false, |ok, t| ok | same_token(t, token))
}

/// Constant-time comparison of a known token with a presented one.
fn same_token(known: &str, presented: &str) -> bool {
    known.len() == presented.len()
        && known
            .bytes()
            .zip(presented.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The entry point of every request.
pub async fn handle(state: Arc<AppState>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let span = tracing::debug_span!("request", method = %parts.method, path = %path);
    let _enter = span.enter();
    // Health and version are public, as Kubernetes' system:public-info-viewer allows.
    match path.as_str() {
        "/healthz" | "/livez" | "/readyz" => return text(StatusCode::OK, "ok"),
        "/version" | "/version/" => return json_response(StatusCode::OK, &version_info()),
        _ => {}
    }
    if !authenticated(&state, &parts.headers) {
        return ApiError::Unauthorized.into_response();
    }
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::TooLarge {
                limit: MAX_BODY_BYTES,
            }
            .into_response()
        }
    };
    drop(_enter);
    match dispatch(&state, &parts.method, &parts.uri, &parts.headers, body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(method = %parts.method, path = %path, error = %e, "request failed");
            e.into_response()
        }
    }
}

async fn dispatch(
    state: &AppState,
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let path = uri.path();
    if path.starts_with("/openapi/") {
        return openapi(path, uri.query(), headers);
    }
    if path.trim_end_matches('/') == tokenreview::PATH {
        return tokenreview::serve(state, method, headers, &body);
    }
    let route = parse_path(path)?;
    let discovery_doc = |v: Value| {
        if method != Method::GET {
            return Err(ApiError::MethodNotAllowed);
        }
        Ok(json_response(StatusCode::OK, &v))
    };
    match route {
        Route::CoreVersions | Route::Groups if discovery::wants_aggregated(headers) => {
            let doc = discovery::aggregated(route == Route::CoreVersions);
            let mut r = discovery_doc(doc)?;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
            );
            Ok(r)
        }
        Route::CoreVersions => discovery_doc(discovery::core_versions(&state.server_address)),
        Route::Groups => discovery_doc(discovery::group_list()),
        Route::Group(g) => discovery_doc(discovery::group(&g).ok_or(ApiError::NoSuchResource)?),
        Route::GroupVersion { group, version } => {
            discovery_doc(discovery::resource_list(&group, &version))
        }
        Route::Resource(rp) => {
            let query = Query::parse(uri.query())?;
            let ctx = objects::Ctx {
                state,
                rp: &rp,
                query,
                raw_query: uri.query(),
                headers,
                body: &body,
            };
            objects::serve(ctx, method).await
        }
    }
}

/// `/openapi/v2` and `/openapi/v3[/<gv>]`, built by the openapi module.
fn openapi(path: &str, query: Option<&str>, headers: &HeaderMap) -> Result<Response, ApiError> {
    use crate::openapi::{self, V3Answer};
    let doc_response = |doc: &openapi::Document| {
        let mut r = (StatusCode::OK, doc.bytes.clone()).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(&doc.etag()) {
            h.insert(header::ETAG, v);
        }
        r
    };
    match path.trim_end_matches('/') {
        "/openapi/v2" => {
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
            if !openapi::wants_v2_protobuf(accept) {
                return Ok(doc_response(openapi::v2_document()));
            }
            let (bytes, hash) = openapi::v2_document_protobuf();
            let mut r = (StatusCode::OK, bytes.clone()).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(openapi::V2_PROTOBUF_CONTENT_TYPE),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("\"{hash}\"")) {
                h.insert(header::ETAG, v);
            }
            Ok(r)
        }
        "/openapi/v3" => Ok(doc_response(openapi::v3_index())),
        p => {
            let gv = p
                .strip_prefix("/openapi/v3/")
                .ok_or(ApiError::NoSuchResource)?;
            let q = Query::raw_pairs(query)?;
            let hash = q.iter().find(|(k, _)| k == "hash").map(|(_, v)| v.as_str());
            let inm = headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok());
            match openapi::v3_answer(gv, hash, inm) {
                V3Answer::NotFound => Err(ApiError::NoSuchResource),
                V3Answer::Redirect(loc) => {
                    let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
                    if let Ok(v) = HeaderValue::from_str(&loc) {
                        r.headers_mut().insert(header::LOCATION, v);
                    }
                    Ok(r)
                }
                V3Answer::NotModified { etag } => {
                    let mut r = StatusCode::NOT_MODIFIED.into_response();
                    if let Ok(v) = HeaderValue::from_str(&etag) {
                        r.headers_mut().insert(header::ETAG, v);
                    }
                    Ok(r)
                }
                V3Answer::Ok {
                    document,
                    immutable,
                } => {
                    let mut r = doc_response(document);
                    if immutable {
                        let h = r.headers_mut();
                        h.insert(
                            header::CACHE_CONTROL,
                            HeaderValue::from_static("public, immutable"),
                        );
                        h.insert(header::VARY, HeaderValue::from_static("Accept"));
                    }
                    Ok(r)
                }
            }
        }
    }
}
