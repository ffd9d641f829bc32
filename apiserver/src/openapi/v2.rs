//! The Swagger 2.0 `/openapi/v2` document, derived from the v3 documents the way
//! kube-apiserver publishes both from one set of definitions: `#/components/schemas/X` becomes
//! `#/definitions/X`, request bodies become `in: body` parameters, media types become
//! `consumes`/`produces`.

use serde_json::{json, Map, Value};

use super::schemas::V3_REF_PREFIX;
use super::{v3_documents, Document};

const V2_REF_PREFIX: &str = "#/definitions/";

/// Builds the whole v2 document from every group-version's v3 document.
pub(super) fn build(title: &str, version: &str) -> Value {
    let mut definitions = Map::new();
    let mut paths = Map::new();
    for doc in v3_documents().values() {
        merge_document(doc, &mut definitions, &mut paths);
    }
    definitions.sort_keys();
    paths.sort_keys();
    let mut out = json!({
        "swagger": "2.0",
        "info": { "title": title, "version": version },
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer Token authentication",
                "type": "apiKey",
                "name": "authorization",
                "in": "header"
            }
        },
        "security": [{ "BearerToken": [] }]
    });
    rewrite_refs(&mut out);
    out
}

fn merge_document(
    doc: &Document,
    definitions: &mut Map<String, Value>,
    paths: &mut Map<String, Value>,
) {
    if let Some(schemas) = doc.value["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            definitions
                .entry(name.clone())
                .or_insert_with(|| schema.clone());
        }
    }
    if let Some(v3_paths) = doc.value["paths"].as_object() {
        for (path, item) in v3_paths {
            paths.insert(path.clone(), path_item(item));
        }
    }
}

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in item.as_object().into_iter().flatten() {
        let converted = if key == "parameters" {
            Value::Array(
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(parameter)
                    .collect(),
            )
        } else {
            operation(value)
        };
        out.insert(key.clone(), converted);
    }
    Value::Object(out)
}

/// `{"name", "in", "schema": {"type"}}` → `{"name", "in", "type"}`.
fn parameter(p: &Value) -> Value {
    let mut out = p.clone();
    if let Some(obj) = out.as_object_mut() {
        if let Some(Value::Object(schema)) = obj.remove("schema") {
            for (k, v) in schema {
                obj.insert(k, v);
            }
        }
    }
    out
}

fn operation(op: &Value) -> Value {
    let Some(obj) = op.as_object() else {
        return op.clone();
    };
    let mut out = Map::new();
    let mut produces: Vec<Value> = Vec::new();
    for (key, value) in obj {
        match key.as_str() {
            "parameters" => {
                let params = value.as_array().into_iter().flatten().map(parameter);
                out.insert(key.clone(), Value::Array(params.collect()));
            }
            "requestBody" => {
                let (consumes, schema) = media(value);
                out.insert("consumes".into(), Value::from(consumes));
                let body =
                    json!({ "name": "body", "in": "body", "required": true, "schema": schema });
                let params = out
                    .entry("parameters")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Some(list) = params.as_array_mut() {
                    list.insert(0, body);
                }
            }
            "responses" => {
                let mut responses = Map::new();
                for (code, response) in value.as_object().into_iter().flatten() {
                    let mut r = json!({ "description": response["description"] });
                    if response.get("content").is_some() {
                        let (types, schema) = media(response);
                        for t in types {
                            if !produces.contains(&Value::from(t.as_str())) {
                                produces.push(Value::from(t));
                            }
                        }
                        r["schema"] = schema;
                    }
                    responses.insert(code.clone(), r);
                }
                out.insert(key.clone(), Value::Object(responses));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out.insert("produces".into(), Value::Array(produces));
    out.insert("schemes".into(), json!(["https"]));
    Value::Object(out)
}

/// The media types of a v3 `content` map and the schema they share.
fn media(v: &Value) -> (Vec<String>, Value) {
    let content = v["content"].as_object();
    let types = content
        .map(|c| c.keys().cloned().collect())
        .unwrap_or_default();
    let schema = content
        .and_then(|c| c.values().next())
        .map(|m| m["schema"].clone())
        .unwrap_or(Value::Null);
    (types, schema)
}

/// Points `$ref`s at `#/definitions/` and unwraps the v3 `allOf: [{$ref}]` wrappers: Swagger 2.0
/// as kube publishes it (and kube-openapi's proto model kubectl builds from it) has the `$ref`
/// itself next to the description.
fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let single_ref = match map.get("allOf") {
                Some(Value::Array(all)) if all.len() == 1 && all[0].get("$ref").is_some() => {
                    all[0].get("$ref").cloned()
                }
                _ => None,
            };
            if let Some(r) = single_ref {
                map.remove("allOf");
                map.insert("$ref".into(), r);
            }
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(s) if key == "$ref" => {
                        if let Some(rest) = s.strip_prefix(V3_REF_PREFIX) {
                            *s = format!("{V2_REF_PREFIX}{rest}");
                        }
                    }
                    other => rewrite_refs(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}
