//! Content negotiation for Table responses (`Accept: application/json;as=Table;v=v1;
//! g=meta.k8s.io`), which `kubectl get` asks for; the columns come from the `table` module.

use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::objects::Ctx;
use crate::status::json_response;
use crate::table::IncludeObject;

/// Whether the client prefers a meta.k8s.io/v1 Table.
pub fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next()
        .is_some_and(|first| {
            let t = first.replace(' ', "");
            t.contains("as=Table") && t.contains("g=meta.k8s.io")
        })
}

/// Responds with `objects` as a Table when asked, else with the object itself (a get;
/// `list_meta` None) or the list (`list_meta` Some).
pub fn respond(ctx: &Ctx<'_>, objects: Vec<Value>, list_meta: Option<Value>) -> Response {
    let info = ctx.rp.info;
    if wants_table(ctx.headers) {
        let include = ctx
            .query
            .include_object
            .as_deref()
            .and_then(IncludeObject::parse)
            .unwrap_or_default();
        let meta = list_meta.or_else(|| {
            let rv = objects
                .first()?
                .pointer("/metadata/resourceVersion")?
                .clone();
            Some(serde_json::json!({"resourceVersion": rv}))
        });
        let table = crate::table::to_table(info.plural, &objects, include, meta);
        return json_response(StatusCode::OK, &table);
    }
    match list_meta {
        Some(meta) => json_response(
            StatusCode::OK,
            &serde_json::json!({"kind": info.list_kind(), "apiVersion": info.api_version(),
                                "metadata": meta, "items": objects}),
        ),
        None => json_response(
            StatusCode::OK,
            &objects.into_iter().next().unwrap_or(Value::Null),
        ),
    }
}
