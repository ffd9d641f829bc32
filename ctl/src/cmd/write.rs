//! Writes: JSON merge patches (what kubectl's label, annotate, cordon, rollout pause use),
//! the scale subresource, and create/replace through raw requests so they can ask for
//! `fieldValidation=Strict` and name the field manager, as kubectl does.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use crate::cmd::get::encode;
use crate::session::Session;

/// A JSON merge patch (RFC 7386) on the object.
pub async fn patch_merge(
    api: &Api<DynamicObject>,
    name: &str,
    patch: &Value,
) -> Result<DynamicObject, kube::Error> {
    let pp = PatchParams {
        field_manager: Some(crate::cmd::apply::FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    api.patch(name, &pp, &Patch::Merge(patch)).await
}

/// `spec.replicas` through the scale subresource.
pub async fn scale(api: &Api<DynamicObject>, name: &str, replicas: i32) -> Result<(), kube::Error> {
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    api.patch_scale(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
}

fn query(dry_run: bool) -> String {
    let mut q = format!(
        "fieldManager={}&fieldValidation=Strict",
        encode(crate::cmd::apply::FIELD_MANAGER)
    );
    if dry_run {
        q.push_str("&dryRun=All");
    }
    q
}

/// POST with strict field validation.
pub async fn create(
    s: &Session,
    api: &Api<DynamicObject>,
    body: &Value,
    dry_run: bool,
) -> Result<Value, kube::Error> {
    let url = format!("{}?{}", api.resource_url(), query(dry_run));
    send(s, http::Method::POST, &url, body).await
}

/// PUT with strict field validation.
pub async fn replace(
    s: &Session,
    api: &Api<DynamicObject>,
    name: &str,
    body: &Value,
    dry_run: bool,
) -> Result<Value, kube::Error> {
    let url = format!("{}/{}?{}", api.resource_url(), name, query(dry_run));
    send(s, http::Method::PUT, &url, body).await
}

async fn send(
    s: &Session,
    method: http::Method,
    url: &str,
    body: &Value,
) -> Result<Value, kube::Error> {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body).map_err(kube::Error::SerdeError)?)
        .map_err(kube::Error::HttpError)?;
    s.client.request::<Value>(req).await
}
