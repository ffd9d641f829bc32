//! The resource verbs: get, list, watch, create, update, delete, deletecollection, and the
//! routing of subresources and patches to their handlers.

use axum::response::Response;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use super::{patch, subresources, AppState};
use crate::registry::list::ListQuery;
use crate::registry::propagation;
use crate::registry::update::{Part, Updated};
use crate::registry::{DeleteOptions, Deleted, WriteOptions};
use crate::request::{self, Query, ResourcePath};
use crate::status::{json_response, success_status, ApiError};
use crate::watch::{self, WatchRequest};

/// One resource request, parsed.
pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub rp: &'a ResourcePath,
    pub query: Query,
    /// The undecoded query string (pods/log forwards its parameters to the node).
    pub raw_query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl Ctx<'_> {
    pub fn ns(&self) -> Option<&str> {
        self.rp.namespace.as_deref()
    }

    pub fn write_options(&self) -> WriteOptions {
        WriteOptions {
            dry_run: self.query.dry_run,
        }
    }

    fn name(&self) -> Result<&str, ApiError> {
        self.rp.name.as_deref().ok_or(ApiError::MethodNotAllowed)
    }
}

pub async fn serve(ctx: Ctx<'_>, method: &Method) -> Result<Response, ApiError> {
    ctx.query
        .field_selector
        .check_supported(ctx.rp.info.kind)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if let Some(sub) = ctx.rp.subresource.clone() {
        return subresources::serve(ctx, method, &sub).await;
    }
    match (method.clone(), ctx.rp.name.is_some()) {
        (Method::GET, _) if ctx.query.watch => watch(ctx),
        (Method::GET, false) => list(ctx).await,
        (Method::GET, true) => get(ctx).await,
        (Method::POST, false) => create(ctx).await,
        (Method::PUT, true) => update(ctx, Part::Main).await,
        (Method::PATCH, true) => patch::serve(ctx, Part::Main).await,
        (Method::DELETE, true) => delete(ctx).await,
        (Method::DELETE, false) => delete_collection(ctx).await,
        _ => Err(ApiError::MethodNotAllowed),
    }
}

async fn get(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    let obj = ctx
        .state
        .registry
        .get(ctx.rp.info, ctx.ns(), ctx.name()?)
        .await?;
    Ok(super::tables::respond(&ctx, vec![obj], None))
}

fn list_query(q: &Query) -> ListQuery<'_> {
    ListQuery {
        labels: &q.label_selector,
        fields: &q.field_selector,
        limit: q.limit,
        continue_token: q.continue_token.as_deref(),
    }
}

async fn list(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    let info = ctx.rp.info;
    let res = ctx
        .state
        .registry
        .list(info, ctx.ns(), &list_query(&ctx.query))
        .await?;
    let mut meta = json!({"resourceVersion": res.revision.to_string()});
    if let Some(c) = &res.continue_token {
        meta["continue"] = json!(c);
    }
    let _ = info;
    Ok(super::tables::respond(&ctx, res.items, Some(meta)))
}

fn watch(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    let table = super::tables::wants_table(ctx.headers).then(|| {
        ctx.query
            .include_object
            .as_deref()
            .and_then(crate::table::IncludeObject::parse)
            .unwrap_or_default()
    });
    let req = WatchRequest {
        info: ctx.rp.info,
        table,
        namespace: ctx.rp.namespace.clone(),
        name: ctx.rp.name.clone(),
        query: ctx.query.clone(),
    };
    watch::start(
        ctx.state.registry.clone(),
        req,
        ctx.state.shutdown.child_token(),
    )
}

/// Decodes a create/update body, checking unknown and duplicate fields as
/// `fieldValidation` asks. Returns the object and any warnings to send back.
pub fn decode_body(ctx: &Ctx<'_>) -> Result<(Value, Vec<String>), ApiError> {
    let obj = request::decode_object(ctx.headers, ctx.body)?;
    let warnings = crate::admission::field_problems(
        ctx.rp.info,
        ctx.headers,
        ctx.body,
        ctx.query.field_validation,
    )?;
    Ok((obj, warnings))
}

/// A JSON response with Kubernetes' `Warning: 299 - "<text>"` headers.
pub fn with_warnings(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut r = json_response(code, body);
    for w in warnings {
        let v = format!("299 - {:?}", w);
        if let Ok(v) = http::HeaderValue::from_str(&v) {
            r.headers_mut().append(http::header::WARNING, v);
        }
    }
    r
}

/// The field manager of a non-apply write: `fieldManager`, else the client's name from
/// its User-Agent (`kubectl/v1.32 (linux/amd64)` → `kubectl`), as Kubernetes does.
fn manager_name(ctx: &Ctx<'_>) -> String {
    if let Some(m) = ctx.query.field_manager.as_deref().filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let ua = ctx
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    ua.split('/')
        .next()
        .unwrap_or("unknown")
        .chars()
        .take(128)
        .collect()
}

/// Records `new`'s changed fields in managedFields as an `Update` by this request's manager.
pub fn record_manager(ctx: &Ctx<'_>, old: Option<&Value>, new: &Value) -> Value {
    crate::patch::record_update(old, new, &manager_name(ctx), "Update")
}

async fn create(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    let (obj, warnings) = decode_body(&ctx)?;
    let obj = record_manager(&ctx, None, &obj);
    let created = ctx
        .state
        .registry
        .create(ctx.rp.info, ctx.ns(), obj, &ctx.write_options())
        .await?;
    Ok(with_warnings(StatusCode::CREATED, &created, &warnings))
}

pub async fn update(ctx: Ctx<'_>, part: Part) -> Result<Response, ApiError> {
    let (obj, warnings) = decode_body(&ctx)?;
    let updated = ctx
        .state
        .registry
        .update(
            ctx.rp.info,
            ctx.ns(),
            ctx.name()?,
            obj,
            part,
            &ctx.write_options(),
        )
        .await?;
    Ok(with_warnings(
        StatusCode::OK,
        &updated.into_object(),
        &warnings,
    ))
}

/// DeleteOptions from the body (optional) and the query.
fn delete_options(ctx: &Ctx<'_>) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions {
        grace_period_seconds: ctx.query.grace_period_seconds,
        write: ctx.write_options(),
        ..Default::default()
    };
    if ctx.body.iter().all(u8::is_ascii_whitespace) {
        opts.propagation = propagation::requested(
            ctx.query.propagation_policy.as_deref(),
            ctx.query.orphan_dependents,
        )?;
        return Ok(opts);
    }
    let body = request::decode_object(ctx.headers, ctx.body)?;
    // The body's DeleteOptions win over the query's, field by field, as kube-apiserver
    // decodes the query into the same struct before the body.
    let policy = body
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or(ctx.query.propagation_policy.as_deref());
    let orphan = body
        .get("orphanDependents")
        .and_then(Value::as_bool)
        .or(ctx.query.orphan_dependents);
    opts.propagation = propagation::requested(policy, orphan)?;
    if let Some(g) = body.get("gracePeriodSeconds").and_then(Value::as_i64) {
        opts.grace_period_seconds = Some(g);
    }
    let pre = &body["preconditions"];
    opts.precondition_uid = pre["uid"].as_str().map(String::from);
    opts.precondition_resource_version = pre["resourceVersion"].as_str().map(String::from);
    if let Some(dry) = body.get("dryRun").and_then(Value::as_array) {
        opts.write.dry_run |= dry.iter().any(|d| d == "All");
    }
    Ok(opts)
}

fn deleted_response(ctx: &Ctx<'_>, d: Deleted) -> Response {
    match d {
        // Kubernetes answers 200 with the object while deletion waits on a grace period
        // or finalizers (202 only for the deprecated orphanDependents=false).
        Deleted::Pending(obj) => json_response(StatusCode::OK, &obj),
        Deleted::Gone(obj) if ctx.rp.info.kind == "Pod" => json_response(StatusCode::OK, &obj),
        Deleted::Gone(obj) => {
            let uid = obj.pointer("/metadata/uid").and_then(Value::as_str);
            let name = ctx.rp.name.as_deref().unwrap_or("");
            let s = success_status(ctx.rp.info.plural, ctx.rp.info.group, name, uid);
            json_response(StatusCode::OK, &s)
        }
    }
}

async fn delete(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    let opts = delete_options(&ctx)?;
    let d = ctx
        .state
        .registry
        .delete(ctx.rp.info, ctx.ns(), ctx.name()?, &opts)
        .await?;
    Ok(deleted_response(&ctx, d))
}

/// Deletes every object the selectors match; returns the list of what was deleted.
async fn delete_collection(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    let info = ctx.rp.info;
    let opts = delete_options(&ctx)?;
    let mut q = list_query(&ctx.query);
    q.limit = 0;
    q.continue_token = None;
    let listed = ctx.state.registry.list(info, ctx.ns(), &q).await?;
    let mut items = Vec::new();
    for obj in listed.items {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
        match ctx.state.registry.delete(info, ns, name, &opts).await {
            Ok(Deleted::Gone(o)) | Ok(Deleted::Pending(o)) => items.push(o),
            Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let body = json!({"kind": info.list_kind(), "apiVersion": info.api_version(),
                      "metadata": {"resourceVersion": listed.revision.to_string()},
                      "items": items});
    Ok(json_response(StatusCode::OK, &body))
}

/// The outcome of an update through a subresource or a patch, as a response.
pub fn updated_response(u: Updated, warnings: &[String]) -> Response {
    with_warnings(StatusCode::OK, &u.into_object(), warnings)
}
