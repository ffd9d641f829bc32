//! PATCH: the four patch types (`application/json-patch+json`,
//! `application/merge-patch+json`, `application/strategic-merge-patch+json`,
//! `application/apply-patch+yaml`) applied by the `patch` module inside the registry's
//! read-modify-write loop; server-side apply creates an absent object.

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::objects::{updated_response, Ctx};
use crate::registry::update::Part;
use crate::request::{self, FieldValidation};
use crate::status::{ApiError, Cause};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

const ACCEPTED: &str = "application/json-patch+json, application/merge-patch+json, \
                        application/strategic-merge-patch+json, application/apply-patch+yaml";

fn patch_type(ctx: &Ctx<'_>) -> Result<PatchType, ApiError> {
    match request::content_type(ctx.headers).as_str() {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        "application/apply-patch+yaml" => Ok(PatchType::Apply),
        _ => Err(ApiError::UnsupportedMediaType {
            accepted: ACCEPTED.into(),
        }),
    }
}

fn patch_options_invalid(field: &str, reason: &str, message: &str) -> ApiError {
    ApiError::Invalid {
        group: "meta.k8s.io".into(),
        subject_kind: "PatchOptions".into(),
        name: String::new(),
        causes: vec![Cause {
            reason: reason.into(),
            message: message.into(),
            field: field.into(),
        }],
    }
}

/// Kubernetes' ValidatePatchOptions: apply needs a field manager; force is apply-only.
fn check_options(ctx: &Ctx<'_>, ty: PatchType) -> Result<(), ApiError> {
    let manager = ctx.query.field_manager.as_deref().unwrap_or("");
    if ty == PatchType::Apply && manager.is_empty() {
        return Err(patch_options_invalid(
            "fieldManager",
            "FieldValueRequired",
            "Required value: is required for apply patch",
        ));
    }
    if ty != PatchType::Apply && ctx.query.force {
        return Err(patch_options_invalid(
            "force",
            "FieldValueForbidden",
            "Forbidden: may not be specified for non-apply patch",
        ));
    }
    Ok(())
}

/// Applies the request's patch body to `current` (any JSON object: an object or a Scale).
pub fn apply_body(ctx: &Ctx<'_>, current: &Value) -> Result<Value, ApiError> {
    let ty = patch_type(ctx)?;
    check_options(ctx, ty)?;
    apply(ctx, ty, Some(current))
}

fn patch_error(e: crate::patch::PatchError) -> ApiError {
    ApiError::Other {
        code: e.status_code(),
        reason: e.reason(),
        message: e.to_string(),
    }
}

fn apply(ctx: &Ctx<'_>, ty: PatchType, current: Option<&Value>) -> Result<Value, ApiError> {
    use crate::patch;
    let kind = ctx.rp.info.kind;
    let empty = json!({});
    let live = current.unwrap_or(&empty);
    match ty {
        PatchType::Json => patch::apply_json_patch(live, ctx.body).map_err(patch_error),
        PatchType::Merge => {
            let p = request::decode_json(ctx.body)?;
            patch::apply_merge_patch(live, &p).map_err(patch_error)
        }
        PatchType::Strategic => {
            let p = request::decode_json(ctx.body)?;
            patch::apply_strategic_merge_patch(live, &p, kind).map_err(patch_error)
        }
        PatchType::Apply => {
            let mut applied = request::decode_yaml(ctx.body)?;
            if !applied.is_object() {
                return Err(ApiError::BadRequest(
                    "an apply patch must be an object".into(),
                ));
            }
            // The main resource ignores status; the status subresource applies it.
            if ctx.rp.subresource.is_none() && ctx.rp.info.has_status() {
                applied.as_object_mut().expect("object").remove("status");
            }
            let manager = ctx.query.field_manager.as_deref().unwrap_or("");
            patch::server_side_apply(current, &applied, manager, ctx.query.force).map_err(|e| {
                ApiError::Other {
                    code: e.status_code(),
                    reason: e.reason(),
                    message: e.to_string(),
                }
            })
        }
    }
}

/// Strict field validation of a patched object: unknown fields are a 400.
fn check_fields(ctx: &Ctx<'_>, obj: &Value) -> Result<Vec<String>, ApiError> {
    if ctx.query.field_validation == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    let raw = serde_json::to_vec(obj).unwrap_or_default();
    crate::admission::field_problems_json(ctx.rp.info, &raw, ctx.query.field_validation)
}

pub async fn serve(ctx: Ctx<'_>, part: Part) -> Result<Response, ApiError> {
    let ty = patch_type(&ctx)?;
    check_options(&ctx, ty)?;
    let info = ctx.rp.info;
    let name = ctx.rp.name.clone().unwrap_or_default();
    let registry = &ctx.state.registry;
    let mut warnings = Vec::new();
    let result = registry
        .update_with(info, ctx.ns(), &name, part, &ctx.write_options(), |old| {
            let patched = apply(&ctx, ty, Some(old))?;
            warnings = check_fields(&ctx, &patched)?;
            if ty == PatchType::Apply || part == Part::Status {
                return Ok(patched);
            }
            Ok(super::objects::record_manager(&ctx, Some(old), &patched))
        })
        .await;
    match result {
        Ok(u) => Ok(updated_response(u, &warnings)),
        // Server-side apply creates what does not exist yet.
        Err(ApiError::NotFound(_)) if ty == PatchType::Apply && part == Part::Main => {
            let mut obj = apply(&ctx, ty, None)?;
            let warnings = check_fields(&ctx, &obj)?;
            if obj.pointer("/metadata/name").is_none() {
                obj["metadata"]["name"] = json!(name);
            }
            let created = registry
                .create(info, ctx.ns(), obj, &ctx.write_options())
                .await?;
            Ok(super::objects::with_warnings(
                StatusCode::CREATED,
                &created,
                &warnings,
            ))
        }
        Err(e) => Err(e),
    }
}
