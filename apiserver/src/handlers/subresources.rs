//! Subresources: `status` (pods, nodes, deployments, replicasets, namespaces),
//! `namespaces/finalize`, `pods/binding`, `scale` (deployments, replicasets; autoscaling/v1 Scale) and `pods/log`.

use axum::response::Response;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::objects::{self, Ctx};
use super::patch;
use crate::registry::update::Part;
use crate::request;
use crate::status::{json_response, success_status, ApiError};

pub async fn serve(ctx: Ctx<'_>, method: &Method, sub: &str) -> Result<Response, ApiError> {
    if ctx.rp.name.is_none() {
        return Err(ApiError::NoSuchResource);
    }
    match (sub, method.clone()) {
        ("status", Method::GET) => get_object(ctx).await,
        ("status", Method::PUT) => objects::update(ctx, Part::Status).await,
        ("status", Method::PATCH) => patch::serve(ctx, Part::Status).await,
        ("binding", Method::POST) => bind(ctx).await,
        ("finalize", Method::PUT) => finalize(ctx).await,
        ("eviction", Method::POST) => evict(ctx).await,
        ("scale", Method::GET) => get_scale(ctx).await,
        ("scale", Method::PUT) => {
            let body = request::decode_object(ctx.headers, ctx.body)?;
            scale_to(ctx, |_, _| Ok(body.clone())).await
        }
        // The patch applies to the Scale of the object as it is when written, on every retry
        // of the write, as kube-apiserver's patcher does: a write by someone else in between
        // (a controller's status) is no conflict unless the patch itself names a
        // resourceVersion.
        ("scale", Method::PATCH) => {
            scale_to(ctx, |ctx, old| {
                patch::apply_body(ctx, &scale_of(old, ctx.rp.info.kind))
            })
            .await
        }
        ("log", Method::GET) => super::logs::serve(ctx).await,
        _ => Err(ApiError::MethodNotAllowed),
    }
}

async fn get(ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let name = ctx.rp.name.as_deref().unwrap_or("");
    ctx.state.registry.get(ctx.rp.info, ctx.ns(), name).await
}

async fn get_object(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, &get(&ctx).await?))
}

/// The autoscaling/v1 Scale view of a deployment or replica set.
pub fn scale_of(obj: &Value, kind: &str) -> Value {
    let meta = &obj["metadata"];
    let selector = obj
        .pointer("/spec/selector")
        .and_then(minik8s_api::selector::from_label_selector_json)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let _ = kind;
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

async fn get_scale(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    let obj = get(&ctx).await?;
    Ok(json_response(
        StatusCode::OK,
        &scale_of(&obj, ctx.rp.info.kind),
    ))
}

/// Sets spec.replicas from the Scale `scale` makes of the current object; its
/// resourceVersion, when set, is a precondition.
async fn scale_to(
    ctx: Ctx<'_>,
    scale: impl Fn(&Ctx<'_>, &Value) -> Result<Value, ApiError>,
) -> Result<Response, ApiError> {
    let name = ctx.rp.name.clone().unwrap_or_default();
    let updated = ctx
        .state
        .registry
        .update_with(
            ctx.rp.info,
            ctx.ns(),
            &name,
            Part::Main,
            &ctx.write_options(),
            |old| {
                let scale = scale(&ctx, old)?;
                let replicas = scale
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if replicas < 0 {
                    return Err(ApiError::Invalid {
                        group: "autoscaling".into(),
                        subject_kind: "Scale".into(),
                        name: name.clone(),
                        causes: vec![crate::status::Cause {
                            reason: "FieldValueInvalid".into(),
                            message: format!(
                                "Invalid value: {replicas}: must be greater than or equal to 0"
                            ),
                            field: "spec.replicas".into(),
                        }],
                    });
                }
                let mut new = old.clone();
                new["spec"]["replicas"] = json!(replicas);
                if let Some(rv) = scale
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                {
                    new["metadata"]["resourceVersion"] = json!(rv);
                }
                Ok(new)
            },
        )
        .await?;
    let obj = updated.into_object();
    Ok(json_response(
        StatusCode::OK,
        &scale_of(&obj, ctx.rp.info.kind),
    ))
}

/// `pods/<name>/binding`: assigns the pod to a node once (409 if already assigned), and
/// marks it scheduled, as Kubernetes' BindingREST does.
async fn bind(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    let binding = request::decode_object(ctx.headers, ctx.body)?;
    let name = ctx.rp.name.clone().unwrap_or_default();
    let causes = crate::validation::validate("Binding", &binding);
    if !causes.is_empty() {
        return Err(ApiError::Invalid {
            group: String::new(),
            subject_kind: "Binding".into(),
            name,
            causes: causes
                .into_iter()
                .map(|c| crate::status::Cause {
                    reason: format!("{:?}", c.reason),
                    message: c.message,
                    field: c.field,
                })
                .collect(),
        });
    }
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::Invalid {
            group: String::new(),
            subject_kind: "Binding".into(),
            name: name.clone(),
            causes: vec![crate::status::Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "target.name".into(),
            }],
        })?
        .to_string();
    let info = ctx.rp.info;
    let subject = crate::registry::subject(info, &name);
    let updated = ctx
        .state
        .registry
        .update_with(
            info,
            ctx.ns(),
            &name,
            Part::All,
            &ctx.write_options(),
            |old| {
                if old
                    .get("metadata")
                    .and_then(|m| m.get("deletionTimestamp"))
                    .is_some()
                {
                    return Err(ApiError::Conflict {
                        subject: subject.clone(),
                        message: "pod is being deleted, cannot be assigned to a host".into(),
                    });
                }
                if let Some(current) = old
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                {
                    return Err(ApiError::Conflict {
                        subject: subject.clone(),
                        message: format!("pod {name} is already assigned to node {current:?}"),
                    });
                }
                let mut new = old.clone();
                new["spec"]["nodeName"] = json!(node);
                set_scheduled_condition(&mut new);
                Ok(new)
            },
        )
        .await?;
    let uid = updated.into_object()["metadata"]["uid"]
        .as_str()
        .map(String::from);
    let status = success_status("pods", "", &name, uid.as_deref());
    Ok(json_response(StatusCode::CREATED, &status))
}

/// `pods/<name>/eviction`: a policy/v1 Eviction deletes the pod with the eviction's
/// DeleteOptions (no PodDisruptionBudgets exist here to refuse it), as `kubectl drain` does.
async fn evict(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    let name = ctx.rp.name.clone().unwrap_or_default();
    let mut opts = crate::registry::DeleteOptions {
        write: ctx.write_options(),
        ..Default::default()
    };
    if !ctx.body.iter().all(u8::is_ascii_whitespace) {
        let eviction = request::decode_object(ctx.headers, ctx.body)?;
        let body_name = eviction.pointer("/metadata/name").and_then(Value::as_str);
        if body_name.is_some_and(|n| !n.is_empty() && n != name) {
            return Err(ApiError::BadRequest(
                "name in URL does not match name in Eviction object".into(),
            ));
        }
        let del = &eviction["deleteOptions"];
        opts.grace_period_seconds = del["gracePeriodSeconds"].as_i64();
        opts.precondition_uid = del
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from);
        opts.precondition_resource_version = del
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from);
        if let Some(dry) = del.get("dryRun").and_then(Value::as_array) {
            opts.write.dry_run |= dry.iter().any(|d| d == "All");
        }
    }
    ctx.state
        .registry
        .delete(ctx.rp.info, ctx.ns(), &name, &opts)
        .await?;
    let status = success_status("pods", "", &name, None);
    Ok(json_response(StatusCode::CREATED, &status))
}

/// PUT namespaces/{name}/finalize: the namespace controller clears `spec.finalizers` once
/// the namespace is empty (Kubernetes' FinalizeREST).
async fn finalize(ctx: Ctx<'_>) -> Result<Response, ApiError> {
    let body = request::decode_object(ctx.headers, ctx.body)?;
    let name = ctx.rp.name.as_deref().unwrap_or("");
    let updated = ctx
        .state
        .registry
        .finalize_namespace(ctx.rp.info, name, body, &ctx.write_options())
        .await?;
    Ok(json_response(StatusCode::OK, &updated.into_object()))
}

fn set_scheduled_condition(pod: &mut Value) {
    let cond = json!({"type": "PodScheduled", "status": "True",
                      "lastTransitionTime": crate::registry::now_rfc3339()});
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    let conds = pod["status"]
        .as_object_mut()
        .expect("object")
        .entry("conditions")
        .or_insert_with(|| json!([]));
    if let Some(list) = conds.as_array_mut() {
        list.retain(|c| c["type"] != "PodScheduled");
        list.push(cond);
    }
}
