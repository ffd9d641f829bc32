//! Server-side apply and field ownership (`metadata.managedFields`), after
//! sigs.k8s.io/structured-merge-diff as k8s.io/apiserver's fieldmanager uses it:
//!
//! - an apply merges the applied configuration into the live object (associative lists by their
//!   keys, sets as unions, everything else replaced) and makes the manager own exactly the fields
//!   it applied;
//! - fields the manager applied before but no longer does are removed, unless another manager
//!   owns them (or anything inside them);
//! - changing a field another manager owns is a conflict unless `force`, which moves ownership;
//! - an ordinary update makes its manager own the fields it changed and takes them from others.
//!
//! Ownership is tracked at field granularity. Where an item cannot be addressed (a keyed list
//! item without its key) the list is treated as one atomic value, so data is never lost.

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::diff::diff;
use super::fieldset::{display_path, list_elements, FieldPath, FieldSet};
use super::schema::{FieldInfo, ListKind, TypeNode};

/// Why a server-side apply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Fields the apply changes are owned by other managers (409 Conflict). Each item reads
    /// `conflict with "manager" using apps/v1: .spec.replicas`.
    #[error("{}", conflict_message(.0))]
    Conflict(Vec<ApplyConflict>),
    /// The request had no `fieldManager` (400).
    #[error("fieldManager is required for apply requests")]
    MissingFieldManager,
    /// The applied configuration is not an object with `apiVersion` and `kind` (400).
    #[error("{0}")]
    BadConfiguration(String),
    /// The applied configuration sets `metadata.managedFields` (400, as Kubernetes refuses it).
    #[error("metadata.managedFields must be nil")]
    ManagedFieldsSet,
    /// The applied configuration has fields its kind does not (400). Apply is always strict,
    /// whatever `fieldValidation` says: the configuration must convert to the typed schema.
    #[error("failed to create typed patch object ({object}): {}", unknown_message(.paths))]
    UnknownFields { object: String, paths: Vec<String> },
}

/// structured-merge-diff's wording: `.spec.foo: field not declared in schema`, several joined
/// on lines.
fn unknown_message(paths: &[String]) -> String {
    let errors: Vec<String> = paths
        .iter()
        .map(|p| format!(".{p}: field not declared in schema"))
        .collect();
    match errors.as_slice() {
        [one] => one.clone(),
        many => format!("errors:\n  {}", many.join("\n  ")),
    }
}

/// `namespace/name; group/version, Kind=Kind`, as fieldmanager names the object (`objectGVKNN`).
fn object_gvknn(obj: &Value) -> String {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("");
    let api_version = s("/apiVersion");
    let gv = if api_version.contains('/') {
        api_version.to_string()
    } else {
        format!("/{api_version}")
    };
    let (namespace, name, kind) = (s("/metadata/namespace"), s("/metadata/name"), s("/kind"));
    format!("{namespace}/{name}; {gv}, Kind={kind}")
}

impl ApplyError {
    /// The HTTP status code Kubernetes answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            ApplyError::Conflict(_) => 409,
            _ => 400,
        }
    }

    /// The `Status.reason` for [`Self::status_code`].
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyError::Conflict(_) => "Conflict",
            _ => "BadRequest",
        }
    }
}

/// One field an apply would take from another manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyConflict {
    /// The other manager as Kubernetes prints it: `"name"` for appliers, `"name" using
    /// apps/v1` for updaters.
    pub manager: String,
    /// The field, e.g. `.spec.replicas`.
    pub field: String,
}

impl ApplyConflict {
    /// The `details.causes[].message` (cause type `FieldManagerConflict`, field [`Self::field`]).
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.manager)
    }
}

impl std::fmt::Display for ApplyConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conflict with {}: {}", self.manager, self.field)
    }
}

/// The `Status.message` Kubernetes writes for apply conflicts (fieldmanager `getConflictMessage`).
fn conflict_message(conflicts: &[ApplyConflict]) -> String {
    if let [only] = conflicts {
        return format!("Apply failed with 1 conflict: {only}");
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for manager in managers {
        lines.push(format!("conflicts with {manager}:"));
        for c in conflicts.iter().filter(|c| c.manager == manager) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// One `metadata.managedFields` entry; fields we do not interpret are kept as they were.
#[derive(Debug, Clone)]
struct Entry {
    raw: Map<String, Value>,
    fields: FieldSet,
}

impl Entry {
    fn parse(value: &Value) -> Option<Entry> {
        let raw = value.as_object()?.clone();
        raw.get("manager")?.as_str()?;
        let fields = raw
            .get("fieldsV1")
            .map(FieldSet::from_fields_v1)
            .unwrap_or_default();
        Some(Entry { raw, fields })
    }

    fn new(manager: &str, operation: &str, api_version: &str) -> Entry {
        let mut raw = Map::new();
        raw.insert("manager".into(), manager.into());
        raw.insert("operation".into(), operation.into());
        raw.insert("apiVersion".into(), api_version.into());
        Entry {
            raw,
            fields: FieldSet::default(),
        }
    }

    fn str(&self, key: &str) -> &str {
        self.raw.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// Whether this is the (manager, operation) entry of the main resource.
    fn is(&self, manager: &str, operation: &str) -> bool {
        self.str("manager") == manager
            && self.str("operation") == operation
            && self.str("subresource").is_empty()
    }

    /// The manager as conflict messages print it (fieldmanager `printManager`): appliers by
    /// name, updaters with their apiVersion and time, subresources named.
    fn printed(&self) -> String {
        let mut out = Value::from(self.str("manager")).to_string();
        if !self.str("subresource").is_empty() {
            out.push_str(&format!(
                " with subresource {}",
                Value::from(self.str("subresource"))
            ));
        }
        if self.str("operation") == "Update" {
            out.push_str(&format!(" using {}", self.str("apiVersion")));
            if !self.str("time").is_empty() {
                out.push_str(&format!(" at {}", self.str("time")));
            }
        }
        out
    }

    fn render(mut self, api_version: Option<&str>) -> Value {
        if let Some(api_version) = api_version {
            self.raw.insert("apiVersion".into(), api_version.into());
            let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
            self.raw.insert("time".into(), now.into());
        }
        self.raw.insert("fieldsType".into(), "FieldsV1".into());
        self.raw
            .insert("fieldsV1".into(), self.fields.to_fields_v1());
        Value::Object(self.raw)
    }
}

/// Metadata fields nobody owns (fieldmanager strips them before computing field sets).
const UNTRACKED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// A copy of `obj` without the fields ownership does not track.
fn tracked(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Value::Object(map) = &mut obj {
        map.shift_remove("apiVersion");
        map.shift_remove("kind");
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            meta.retain(|k, _| !UNTRACKED_METADATA.contains(&k.as_str()));
            if meta.is_empty() {
                map.shift_remove("metadata");
            }
        }
    }
    obj
}

fn root_node(obj: &Value) -> TypeNode {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    // Unknown kinds still get metadata rules through the generic object root.
    TypeNode::root(kind)
        .or_else(|| TypeNode::root("ConfigMap"))
        .unwrap_or_else(TypeNode::untyped)
}

fn entries_of(obj: Option<&Value>) -> Vec<Entry> {
    obj.and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Entry::parse).collect())
        .unwrap_or_default()
}

/// Stores `entries` in the order Kubernetes encodes them (`sortEncodedManagedFields`):
/// by operation (Apply before Update), then time, manager, apiVersion and subresource.
fn set_entries(obj: &mut Value, mut entries: Vec<Value>) {
    let key = |e: &Value| {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        (
            s("operation"),
            s("time"),
            s("manager"),
            s("apiVersion"),
            s("subresource"),
        )
    };
    entries.sort_by_key(key);
    let Value::Object(map) = obj else { return };
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        if entries.is_empty() {
            meta.shift_remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(entries));
        }
    }
}

/// Server-side apply of `applied` (the `apply-patch+yaml` body, already parsed) by `manager`
/// onto `live` (`None` creates). Returns the new object with `metadata.managedFields` updated.
///
/// The caller still checks name/namespace against the URL, defaults, validates and stores the
/// result; it should not also call [`record_update`] for the same request. For an apply to the
/// main resource, drop `status` from `applied` first (Kubernetes resets it there, and the
/// status subresource applies it); `force` is the `force=true` query parameter.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApplyError> {
    if manager.is_empty() {
        return Err(ApplyError::MissingFieldManager);
    }
    let api_version = check_configuration(applied)?;
    let kind = applied.get("kind").and_then(Value::as_str).unwrap_or("");
    let paths = crate::validation::unknown_field_paths(kind, applied);
    if !paths.is_empty() {
        let object = object_gvknn(applied);
        return Err(ApplyError::UnknownFields { object, paths });
    }
    let node = root_node(applied);
    // An applied `null` sets nothing, so it owns nothing either.
    let applied_set = FieldSet::of_value(&tracked(&without_nulls(applied)), node);
    let mut entries = entries_of(live);
    let previous = entries
        .iter()
        .find(|e| e.is(manager, "Apply"))
        .map(|e| e.fields.clone())
        .unwrap_or_default();

    let mut merged = match live {
        Some(live) => merge_applied(live.clone(), applied, FieldInfo::object(node)),
        None => without_nulls(applied),
    };
    prune(
        &mut merged,
        &previous,
        &applied_set,
        &entries,
        manager,
        node,
    );

    if let Some(live) = live {
        resolve_conflicts(&mut entries, live, &merged, node, manager, force)?;
    }
    let unchanged =
        live.is_some_and(|l| without_managed_fields(l) == without_managed_fields(&merged));
    let rendered = render_apply_entries(entries, applied_set, manager, &api_version, unchanged);
    set_entries(&mut merged, rendered);
    Ok(merged)
}

/// Fails with the conflicts the apply would cause, or (when forced) takes the conflicting
/// fields from their managers.
fn resolve_conflicts(
    entries: &mut [Entry],
    live: &Value,
    merged: &Value,
    node: TypeNode,
    manager: &str,
    force: bool,
) -> Result<(), ApplyError> {
    let (mut changed, removed) = diff(&tracked(live), &tracked(merged), node);
    changed.union_with(&removed);
    let conflicts = find_conflicts(entries, &changed, manager);
    if !conflicts.is_empty() && !force {
        let list = conflicts
            .iter()
            .map(|(i, path)| ApplyConflict {
                manager: entries[*i].printed(),
                field: display_path(path),
            })
            .collect();
        return Err(ApplyError::Conflict(list));
    }
    for (i, path) in conflicts {
        entries[i].fields.remove(&path);
    }
    Ok(())
}

/// The managedFields after an apply: the applier's entry holds exactly what it applied, other
/// entries keep what they still own. A no-op apply keeps the entry's timestamp (fieldmanager
/// only stamps applies that changed the object), so re-applying a manifest rewrites nothing.
fn render_apply_entries(
    entries: Vec<Entry>,
    applied_set: FieldSet,
    manager: &str,
    api_version: &str,
    unchanged: bool,
) -> Vec<Value> {
    let mut rendered = Vec::with_capacity(entries.len() + 1);
    let mut mine = Entry::new(manager, "Apply", api_version);
    let mut stamp = true;
    for entry in entries {
        if entry.is(manager, "Apply") {
            stamp = !(unchanged
                && entry.fields == applied_set
                && entry.str("apiVersion") == api_version);
            mine = entry;
        } else if !entry.fields.is_empty() {
            rendered.push(entry.render(None));
        }
    }
    mine.fields = applied_set;
    rendered.push(mine.render(stamp.then_some(api_version)));
    rendered
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.shift_remove("managedFields");
    }
    obj
}

/// The applied configuration's `apiVersion`, after checking the configuration's shape.
fn check_configuration(applied: &Value) -> Result<String, ApplyError> {
    let Value::Object(map) = applied else {
        return Err(ApplyError::BadConfiguration(
            "the applied configuration must be an object".into(),
        ));
    };
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version.is_empty() || kind.is_empty() {
        return Err(ApplyError::BadConfiguration(
            "apiVersion and kind must be set in the applied configuration".into(),
        ));
    }
    let managed = applied.pointer("/metadata/managedFields");
    if managed.is_some_and(|m| !m.is_null()) {
        return Err(ApplyError::ManagedFieldsSet);
    }
    Ok(api_version.to_string())
}

/// Other managers' fields among `changed`: (entry index, conflicting path). As in
/// structured-merge-diff, only exact paths conflict: owning a list item (`.`) or a map does not
/// claim the fields inside it.
fn find_conflicts(entries: &[Entry], changed: &FieldSet, manager: &str) -> Vec<(usize, FieldPath)> {
    let changed = changed.members();
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        // Managers are (name, operation, subresource): the applier's own Update entry is
        // another manager, as in fieldmanager's `BuildManagerIdentifier`.
        if entry.is(manager, "Apply") {
            continue;
        }
        for path in &changed {
            if entry.fields.contains(path) {
                out.push((i, path.clone()));
            }
        }
    }
    out
}

/// Removes from `merged` what `manager` applied before but not now, unless someone else owns it
/// or anything inside it (then it stays, so no other manager's data is lost).
fn prune(
    merged: &mut Value,
    previous: &FieldSet,
    applied: &FieldSet,
    entries: &[Entry],
    manager: &str,
    node: TypeNode,
) {
    for path in previous.members() {
        let kept = applied.contains_under(&path)
            || entries
                .iter()
                .filter(|e| !e.is(manager, "Apply"))
                .any(|e| e.fields.contains_under(&path) || e.fields.covering(&path).is_some());
        if !kept && !path.is_empty() {
            remove_path(merged, &path, FieldInfo::object(node));
        }
    }
}

fn remove_path(value: &mut Value, path: &[String], info: FieldInfo) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if let Some(field) = first.strip_prefix("f:") {
        let Value::Object(map) = value else { return };
        if rest.is_empty() {
            map.shift_remove(field);
        } else if let Some(child) = map.get_mut(field) {
            remove_path(child, rest, info.node.field(field));
        }
        return;
    }
    let Value::Array(items) = value else { return };
    let Some(elements) = list_elements(items, info) else {
        return;
    };
    let Some(index) = elements.iter().position(|e| e == first) else {
        return;
    };
    if rest.is_empty() {
        items.remove(index);
    } else {
        remove_path(&mut items[index], rest, FieldInfo::object(info.node));
    }
}

/// The value at a field path, if present (the read side of [`remove_path`]).
#[cfg(test)]
pub(crate) fn value_at<'a>(
    value: &'a Value,
    path: &[String],
    info: FieldInfo,
) -> Option<&'a Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(value);
    };
    if let Some(field) = first.strip_prefix("f:") {
        return value_at(value.get(field)?, rest, info.node.field(field));
    }
    let items = value.as_array()?;
    let index = list_elements(items, info)?
        .iter()
        .position(|e| e == first)?;
    value_at(&items[index], rest, FieldInfo::object(info.node))
}

/// `value` without null object members (an applied `null` means "not set").
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Merges an applied configuration into a live value: objects field by field, associative lists
/// item by item (live order kept, new items appended), sets as unions, the rest replaced.
fn merge_applied(live: Value, applied: &Value, info: FieldInfo) -> Value {
    match (live, applied) {
        (Value::Object(mut live), Value::Object(applied)) if !info.atomic_struct => {
            for (k, v) in applied.iter().filter(|(_, v)| !v.is_null()) {
                let field = info.node.field(k);
                match live.get_mut(k) {
                    Some(slot) => *slot = merge_applied(std::mem::take(slot), v, field),
                    None => {
                        live.insert(k.clone(), without_nulls(v));
                    }
                }
            }
            Value::Object(live)
        }
        (Value::Array(mut live), Value::Array(applied)) => {
            let (Some(live_ids), Some(applied_ids)) =
                (list_elements(&live, info), list_elements(applied, info))
            else {
                return without_nulls(&Value::Array(applied.clone()));
            };
            let mut positions: std::collections::HashMap<String, usize> = live_ids
                .into_iter()
                .enumerate()
                .map(|(i, id)| (id, i))
                .collect();
            for (id, item) in applied_ids.into_iter().zip(applied) {
                match positions.get(&id).copied() {
                    Some(i) if matches!(info.list, ListKind::Keyed { .. }) => {
                        let old = std::mem::take(&mut live[i]);
                        live[i] = merge_applied(old, item, FieldInfo::object(info.node));
                    }
                    Some(_) => {}
                    None => {
                        positions.insert(id, live.len());
                        live.push(without_nulls(item));
                    }
                }
            }
            Value::Array(live)
        }
        (_, applied) => without_nulls(applied),
    }
}

/// Records an ordinary create/update/patch by `manager` (`operation` is `"Update"`): the manager
/// comes to own the fields it changed, which other managers lose. Returns `new` with
/// `metadata.managedFields` set. Never changes anything else in `new`.
///
/// As in Kubernetes, managedFields the request itself changed are taken as given, and a request
/// that sets them to an empty list clears them.
pub fn record_update(old: Option<&Value>, new: &Value, manager: &str, operation: &str) -> Value {
    let mut out = new.clone();
    let old_fields = old.and_then(|o| o.pointer("/metadata/managedFields"));
    let new_fields = new.pointer("/metadata/managedFields");
    let mut entries = match new_fields {
        Some(Value::Array(list)) if list.is_empty() => {
            set_entries(&mut out, Vec::new());
            return out;
        }
        // `null` (or absent) managedFields mean "unchanged".
        Some(given) if !given.is_null() && Some(given) != old_fields => entries_of(Some(new)),
        _ => entries_of(old),
    };
    let node = root_node(new);
    let empty = Value::Object(Map::new());
    let (changed, removed) = diff(&tracked(old.unwrap_or(&empty)), &tracked(new), node);
    if changed.is_empty() && removed.is_empty() || manager.is_empty() {
        let rendered = entries.into_iter().map(|e| e.render(None)).collect();
        set_entries(&mut out, rendered);
        return out;
    }
    let api_version = new.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let mut mine = None;
    let mut rendered = Vec::with_capacity(entries.len() + 1);
    for mut entry in entries.drain(..) {
        if entry.is(manager, operation) {
            mine = Some(entry);
            continue;
        }
        entry.fields.subtract(&changed);
        entry.fields.subtract(&removed);
        if !entry.fields.is_empty() {
            rendered.push(entry.render(None));
        }
    }
    let mut mine = mine.unwrap_or_else(|| Entry::new(manager, operation, api_version));
    mine.fields.union_with(&changed);
    mine.fields.subtract(&removed);
    if !mine.fields.is_empty() {
        rendered.push(mine.render(Some(api_version)));
    }
    set_entries(&mut out, rendered);
    out
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
