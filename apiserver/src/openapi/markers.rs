//! Patch and list markers: the OpenAPI extensions kube-apiserver derives from struct tags and
//! `+listType`-style comments in k8s.io/api. k8s-openapi's schemas lack them, but kubectl needs
//! them: client-side `kubectl apply` computes its strategic merge patch from
//! `x-kubernetes-patch-merge-key`/`x-kubernetes-patch-strategy` in the v3 document
//! (apimachinery `strategicpatch.PatchMetaFromOpenAPIV3`), and server-side apply reads the
//! list types. The table itself is generated (`markers_gen.py` → `markers_table.rs`).

use serde_json::{Map, Value};

use super::markers_table::{FIELD_MARKERS, TYPE_MARKERS};

/// The markers of one field of one schema.
#[derive(Debug)]
pub(super) struct FieldMarker {
    pub schema: &'static str,
    pub field: &'static str,
    /// `x-kubernetes-patch-strategy`, e.g. `merge` or `merge,retainKeys`; empty when absent.
    pub patch_strategy: &'static str,
    /// `x-kubernetes-patch-merge-key`; empty when absent.
    pub patch_merge_key: &'static str,
    /// `x-kubernetes-list-type`: `atomic`, `set` or `map`; empty when absent.
    pub list_type: &'static str,
    /// `x-kubernetes-list-map-keys` when `list_type` is `map`.
    pub list_map_keys: &'static [&'static str],
    /// `x-kubernetes-map-type` of a map or struct field; empty when absent.
    pub map_type: &'static str,
}

/// A whole schema marked `+structType=`/`+mapType=` (e.g. `LabelSelector` is atomic).
#[derive(Debug)]
pub(super) struct TypeMarker {
    pub schema: &'static str,
    pub map_type: &'static str,
}

/// Adds the extensions to every schema in `schemas` (keyed by Kubernetes schema name) that the
/// tables mention; schemas and fields absent from `schemas` are skipped.
pub(super) fn apply(schemas: &mut Map<String, Value>) {
    for m in FIELD_MARKERS {
        let Some(field) = schemas
            .get_mut(m.schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(m.field))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let mut set = |key: &str, value: &str| {
            if !value.is_empty() {
                field.insert(key.to_owned(), Value::from(value));
            }
        };
        set("x-kubernetes-patch-strategy", m.patch_strategy);
        set("x-kubernetes-patch-merge-key", m.patch_merge_key);
        set("x-kubernetes-list-type", m.list_type);
        set("x-kubernetes-map-type", m.map_type);
        if m.list_type == "map" && !m.list_map_keys.is_empty() {
            field.insert(
                "x-kubernetes-list-map-keys".to_owned(),
                Value::from(m.list_map_keys.to_vec()),
            );
        }
    }
    for m in TYPE_MARKERS {
        if let Some(schema) = schemas.get_mut(m.schema).and_then(Value::as_object_mut) {
            schema.insert("x-kubernetes-map-type".to_owned(), Value::from(m.map_type));
        }
    }
}
