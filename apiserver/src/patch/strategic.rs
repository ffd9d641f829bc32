//! Strategic merge patch, applied the way apimachinery's `strategicpatch.StrategicMergeMapPatch`
//! applies it on the server (`MergeParallelList` and `IgnoreUnmatchedNulls` on):
//!
//! - `null` deletes a key; other scalars and mismatched types replace;
//! - objects merge key by key;
//! - lists with a merge key merge item by item on that key, lists of primitives with
//!   `patchStrategy:"merge"` are unions, all other lists are replaced;
//! - directives: `$patch: replace|delete` in maps and in list items, `$retainKeys`,
//!   `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`.
//!
//! Unlike apimachinery, values the patch adds where the live object has nothing are cleaned of
//! directives too, so a directive can never end up stored in an object.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::schema::{FieldInfo, ListKind, TypeNode};
use super::PatchError;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch to `doc`, an object of `kind` (`Pod`, `Deployment`, ...).
///
/// Kinds without a schema here are refused with [`PatchError::UnsupportedKind`] (415), as
/// Kubernetes refuses strategic merge patches of custom resources.
pub fn apply_strategic_merge_patch(
    doc: &Value,
    patch: &Value,
    kind: &str,
) -> Result<Value, PatchError> {
    let root = TypeNode::root(kind).ok_or_else(|| PatchError::UnsupportedKind(kind.to_string()))?;
    let Value::Object(patch) = patch else {
        return Err(PatchError::Malformed(
            "invalid strategic merge patch: the patch must be a JSON object".to_string(),
        ));
    };
    let original = match doc {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    merge_map(original, patch.clone(), root).map(Value::Object)
}

/// Merges `patch` into `original`, an object of schema type `node`.
pub(crate) fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    node: TypeNode,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.shift_remove(DIRECTIVE) {
        return match directive.as_str() {
            // Replace the whole map with the rest of the patch (cleaned of directives).
            Some("replace") => merge_map(Map::new(), patch, node),
            Some("delete") => Ok(Map::new()),
            _ => Err(PatchError::BadDirective {
                value: directive.to_string(),
                context: Value::Object(patch).to_string(),
            }),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    apply_element_orders(&mut original, &mut patch, node)?;
    for (key, patch_value) in patch {
        let (field, delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(field) => (field.to_string(), true),
            None => (key, false),
        };
        if patch_value.is_null() {
            original.shift_remove(&field);
            continue;
        }
        let info = node.field(&field);
        let Some(slot) = original.get_mut(&field) else {
            // Deleting from a list that is not there changes nothing; a new map carrying a
            // `$patch` directive is dropped, as apimachinery's `removeDirectives` does.
            let directive_map = patch_value.get(DIRECTIVE).is_some();
            if !delete_list && !directive_map {
                original.insert(field, fresh(patch_value, info)?);
            }
            continue;
        };
        // Take the live value out (leaving null) so it merges without a copy; keeps key order.
        *slot = match (std::mem::take(slot), patch_value) {
            (Value::Object(o), Value::Object(p)) => Value::Object(merge_map(o, p, info.node)?),
            (Value::Array(o), Value::Array(p)) => {
                Value::Array(merge_list(o, p, info, delete_list)?)
            }
            (live, _) if delete_list => live,
            (_, p) => fresh(p, info)?,
        };
    }
    Ok(original)
}

/// A patch value for a place the live object has nothing (or a value of another type): taken as
/// is, cleaned of nulls and directives by merging it into an empty value.
fn fresh(value: Value, info: FieldInfo) -> Result<Value, PatchError> {
    Ok(match value {
        Value::Object(p) => Value::Object(merge_map(Map::new(), p, info.node)?),
        Value::Array(p) => Value::Array(merge_list(Vec::new(), p, info, false)?),
        other => other,
    })
}

/// `$retainKeys: [a, b]`: keys of the live map not listed are cleared (used for unions such as
/// `Deployment.spec.strategy` and `Volume` sources).
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let keys: Vec<String> = match retain {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(bad_retain_keys()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad_retain_keys()),
    };
    // A patch that sets a value outside its own retain list contradicts itself.
    let contradicts = patch
        .iter()
        .any(|(k, v)| !k.starts_with('$') && !v.is_null() && !keys.contains(k));
    if contradicts {
        return Err(PatchError::RetainKeysMismatch);
    }
    original.retain(|k, _| keys.contains(k));
    Ok(())
}

fn bad_retain_keys() -> PatchError {
    PatchError::BadDirectiveFormat(
        "invalid patch format of retainKeys: $retainKeys must be a list of strings".to_string(),
    )
}

/// `$setElementOrder/<field>: [...]`: merges the patch's `<field>` list, then orders the result
/// as listed (items the list does not name, added by the server, keep their live positions).
fn apply_element_orders(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    node: TypeNode,
) -> Result<(), PatchError> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive in directives {
        let order = patch.shift_remove(&directive).unwrap_or(Value::Null);
        let field = &directive[SET_ELEMENT_ORDER.len()..];
        let Value::Array(order) = order else {
            return Err(PatchError::BadDirectiveFormat(format!(
                "invalid patch format of setElementOrder list: {directive} must be a list"
            )));
        };
        let patch_items = match patch.shift_remove(field) {
            None => Vec::new(),
            Some(Value::Array(items)) => items,
            // A null or a non-list value is handled by the ordinary merge.
            Some(other) => {
                patch.insert(field.to_string(), other);
                continue;
            }
        };
        let live = match original.get(field) {
            Some(Value::Array(items)) => items.clone(),
            Some(_) => continue,
            None if patch_items.is_empty() => continue,
            None => Vec::new(),
        };
        let info = node.field(field);
        let key = smp_key(info);
        let order_ids: Vec<Value> = order.iter().map(|v| identity(v, key)).collect();
        check_order_covers_patch(&patch_items, &order_ids, key, &directive)?;
        let merged = merge_list(live.clone(), patch_items, info, false)?;
        let live_ids: Vec<Value> = live.iter().map(|v| identity(v, key)).collect();
        let ordered = normalize_order(merged, &order_ids, &live_ids, key);
        original.insert(field.to_string(), Value::Array(ordered));
    }
    Ok(())
}

/// apimachinery's `validatePatchWithSetOrderList`: the patch's items (directives aside) must
/// appear in the `$setElementOrder` list, in the same order.
fn check_order_covers_patch(
    items: &[Value],
    order_ids: &[Value],
    key: Option<&str>,
    directive: &str,
) -> Result<(), PatchError> {
    let mut order = order_ids.iter();
    for item in items.iter().filter(|i| i.get(DIRECTIVE).is_none()) {
        let id = identity(item, key);
        if !order.any(|o| *o == id) {
            return Err(PatchError::Malformed(format!(
                "The order in patch list:\n{}\n doesn't match {directive} list:\n{}\n",
                Value::Array(items.to_vec()),
                Value::Array(order_ids.to_vec())
            )));
        }
    }
    Ok(())
}

fn smp_key(info: FieldInfo) -> Option<&'static str> {
    match info.list {
        ListKind::Keyed { smp_key, .. } => Some(smp_key),
        _ => None,
    }
}

/// What identifies a list item: its merge key's value for keyed lists, the value itself otherwise.
fn identity(item: &Value, key: Option<&str>) -> Value {
    match (item, key) {
        (Value::Object(m), Some(key)) => m.get(key).cloned().unwrap_or(Value::Null),
        _ => item.clone(),
    }
}

/// Merges two lists per the field's strategy.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    info: FieldInfo,
    delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    let key = match info.list {
        ListKind::Atomic if !delete_list => return clean_atomic(patch, info),
        ListKind::Atomic | ListKind::Set => None,
        ListKind::Keyed { smp_key, .. } => Some(smp_key),
    };
    // apimachinery decides between the primitive and the keyed merge by the items' type.
    let maps = original.iter().chain(patch.iter()).any(|v| v.is_object());
    match key {
        Some(key) if maps && !delete_list => merge_keyed(original, patch, key, info.node),
        _ if maps => Err(PatchError::Malformed(format!(
            "cannot merge lists of objects without a merge key: {}",
            Value::Array(patch)
        ))),
        _ => Ok(merge_primitives(original, patch, delete_list)),
    }
}

/// An atomic list replaces the live one; object items are cleaned of directives. A list holding
/// only `{"$patch": "replace"}` markers means "replace with the rest", which is the same thing.
fn clean_atomic(patch: Vec<Value>, info: FieldInfo) -> Result<Vec<Value>, PatchError> {
    let mut out = Vec::with_capacity(patch.len());
    for item in patch {
        match item {
            Value::Object(m)
                if m.len() == 1 && m.get(DIRECTIVE) == Some(&Value::from("replace")) => {}
            Value::Object(m) => out.push(Value::Object(merge_map(Map::new(), m, info.node)?)),
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Union of primitive lists (duplicates dropped), or removal for `$deleteFromPrimitiveList`.
fn merge_primitives(original: Vec<Value>, patch: Vec<Value>, delete_list: bool) -> Vec<Value> {
    if delete_list {
        let doomed: HashSet<String> = patch.iter().map(Value::to_string).collect();
        return original
            .into_iter()
            .filter(|v| !doomed.contains(&v.to_string()))
            .collect();
    }
    let mut seen = HashSet::with_capacity(original.len() + patch.len());
    let merged: Vec<Value> = original
        .iter()
        .chain(patch.iter())
        .filter(|v| seen.insert(v.to_string()))
        .cloned()
        .collect();
    normalize_order(merged, &patch, &original, None)
}

/// Merges lists of objects on `key`, honouring `$patch: delete` and `$patch: replace` items.
fn merge_keyed(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    node: TypeNode,
) -> Result<Vec<Value>, PatchError> {
    let special = split_special_items(patch, key)?;
    if !special.deleted.is_empty() {
        original.retain(|o| {
            o.get(key)
                .is_none_or(|id| !special.deleted.contains(&id.to_string()))
        });
    }
    if special.replace {
        return special
            .items
            .into_iter()
            .map(|m| merge_map(Map::new(), m, node).map(Value::Object))
            .collect();
    }
    let live_ids: Vec<Value> = original.iter().map(|v| identity(v, Some(key))).collect();
    let mut patch_ids = Vec::with_capacity(special.items.len());
    let mut merged = original;
    // Live items without the key can never match a patch item.
    let mut positions: HashMap<String, usize> = HashMap::new();
    for (i, item) in merged.iter().enumerate() {
        if let Some(id) = item.get(key) {
            positions.entry(id.to_string()).or_insert(i);
        }
    }
    for item in special.items {
        let id = item
            .get(key)
            .ok_or_else(|| missing_key(&item, key))?
            .clone();
        match positions.get(&id.to_string()).copied() {
            Some(pos) => {
                let live = match std::mem::take(&mut merged[pos]) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                merged[pos] = Value::Object(merge_map(live, item, node)?);
            }
            None => {
                positions.insert(id.to_string(), merged.len());
                merged.push(Value::Object(merge_map(Map::new(), item, node)?));
            }
        }
        patch_ids.push(id);
    }
    Ok(normalize_order(merged, &patch_ids, &live_ids, Some(key)))
}

/// A merge list's patch items sorted out (apimachinery `mergeSliceWithSpecialElements`).
struct SpecialItems {
    /// Items to merge.
    items: Vec<Map<String, Value>>,
    /// Keys (as JSON text) of `$patch: delete` items.
    deleted: HashSet<String>,
    /// A `{"$patch": "replace"}` item was present: the list becomes `items`.
    replace: bool,
}

fn split_special_items(patch: Vec<Value>, key: &str) -> Result<SpecialItems, PatchError> {
    let mut out = SpecialItems {
        items: Vec::with_capacity(patch.len()),
        deleted: HashSet::new(),
        replace: false,
    };
    for item in patch {
        let Value::Object(item) = item else {
            return Err(PatchError::Malformed(format!(
                "invalid list item {item}: items of a merge list must be objects"
            )));
        };
        match item.get(DIRECTIVE).map(|d| d.as_str()) {
            None => out.items.push(item),
            Some(Some("delete")) => {
                let id = item.get(key).ok_or_else(|| missing_key(&item, key))?;
                out.deleted.insert(id.to_string());
            }
            Some(Some("replace")) => out.replace = true,
            Some(Some("merge")) => {
                return Err(PatchError::Malformed(
                    "merging lists cannot yet be specified in the patch".to_string(),
                ))
            }
            Some(_) => {
                return Err(PatchError::BadDirective {
                    value: item[DIRECTIVE].to_string(),
                    context: Value::Object(item).to_string(),
                })
            }
        }
    }
    Ok(out)
}

fn missing_key(item: &Map<String, Value>, key: &str) -> PatchError {
    PatchError::MissingMergeKey {
        item: Value::Object(item.clone()).to_string(),
        key: key.to_string(),
    }
}

/// apimachinery's `normalizeElementOrder`: items named by the patch (or by a
/// `$setElementOrder` list) in that order, server-only items in their live order, the two
/// interleaved by live position where both are known (`mergeSortedSlice`).
fn normalize_order(
    merged: Vec<Value>,
    patch_order: &[Value],
    live_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    // Positions are looked up through maps keyed by the identity's JSON text, so long lists
    // stay O(n log n) rather than quadratic.
    let patch_index = first_positions(patch_order);
    let live_index = first_positions(live_order);
    let mut patched = Vec::new();
    let mut server_only = Vec::new();
    for item in merged {
        let id = identity(&item, key).to_string();
        let live = live_index.get(&id).copied();
        match patch_index.get(&id) {
            Some(&p) => patched.push((p, live, item)),
            None => server_only.push((live.unwrap_or(usize::MAX), live, item)),
        }
    }
    patched.sort_by_key(|(p, _, _)| *p);
    server_only.sort_by_key(|(l, _, _)| *l);
    let mut out = Vec::with_capacity(patched.len() + server_only.len());
    let (mut left, mut right) = (
        server_only.into_iter().peekable(),
        patched.into_iter().peekable(),
    );
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((_, l, _)), Some((_, r, _))) => matches!((l, r), (Some(li), Some(ri)) if li < ri),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next.map(|(_, _, item)| item));
    }
    out
}

/// Each identity's first position in `order`, keyed by its JSON text.
fn first_positions(order: &[Value]) -> HashMap<String, usize> {
    let mut index = HashMap::with_capacity(order.len());
    for (i, id) in order.iter().enumerate() {
        index.entry(id.to_string()).or_insert(i);
    }
    index
}
