//! Table responses (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): the
//! `meta.k8s.io/v1` `Table` kube-apiserver returns, with the columns and cells of
//! `pkg/printers/internalversion/printers.go`.
//!
//! As kube-apiserver does, every row carries the wide (`priority: 1`) cells too; kubectl hides
//! them unless `-o wide`. Ages are computed at request time ("5m", "3d4h").

mod cells;
mod cluster;
mod config;
mod network;
mod pod;
mod workloads;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

pub use cells::human_duration;

/// What each row's `object` holds (the `includeObject` query parameter; kube's default is
/// `Metadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No `object`.
    None,
    /// A `meta.k8s.io/v1` `PartialObjectMetadata` with the object's metadata.
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query value (`None`, `Metadata`, `Object`).
    pub fn parse(value: &str) -> Option<IncludeObject> {
        match value {
            "None" => Some(IncludeObject::None),
            "Metadata" => Some(IncludeObject::Metadata),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// A `TableColumnDefinition`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    description: &'static str,
    priority: u8,
}

/// A column shown by default.
pub(crate) const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column {
        name,
        ty,
        format: "",
        description,
        priority: 0,
    }
}

/// A column shown with `-o wide` only.
pub(crate) const fn wide(
    name: &'static str,
    ty: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name,
        ty,
        format: "",
        description,
        priority: 1,
    }
}

/// The `Name` column every printer starts with.
pub(crate) const NAME: Column = Column {
    name: "Name",
    ty: "string",
    format: "name",
    description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    priority: 0,
};

/// The `Age` column.
pub(crate) const AGE: Column = col(
    "Age",
    "string",
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.",
);

impl Column {
    fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// One printed row: its cells and, for pods, the `conditions` kube adds to finished pods.
pub(crate) struct Row {
    pub cells: Vec<Value>,
    pub conditions: Option<Value>,
}

impl Row {
    pub fn new(cells: Vec<Value>) -> Row {
        Row {
            cells,
            conditions: None,
        }
    }
}

/// A printer: the columns of a resource and how one object becomes a row.
pub(crate) struct Printer {
    pub columns: &'static [Column],
    pub row: fn(DateTime<Utc>, &Value) -> Row,
}

/// The printer of a resource (by plural); `None` means kube's default convertor.
fn printer(resource_plural: &str) -> Option<Printer> {
    Some(match resource_plural {
        "pods" => pod::PRINTER,
        "deployments" => workloads::DEPLOYMENTS,
        "replicasets" => workloads::REPLICASETS,
        "services" => network::SERVICES,
        "endpoints" => network::ENDPOINTS,
        "endpointslices" => network::ENDPOINT_SLICES,
        "nodes" => cluster::NODES,
        "namespaces" => cluster::NAMESPACES,
        "events" => cluster::EVENTS,
        "configmaps" => config::CONFIGMAPS,
        "secrets" => config::SECRETS,
        "serviceaccounts" => config::SERVICE_ACCOUNTS,
        "leases" => config::LEASES,
        _ => return None,
    })
}

/// kube-apiserver's `DefaultTableConvertor` for resources without a printer: Name and
/// `Created At` (the RFC 3339 creation time).
const DEFAULT_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Created At",
        "date",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
];

fn default_row(_now: DateTime<Utc>, obj: &Value) -> Row {
    let created = cells::parse_time(&obj["metadata"]["creationTimestamp"])
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
    Row::new(vec![obj["metadata"]["name"].clone(), Value::from(created)])
}

/// The `Table` for `objects` of `resource_plural`, ages computed now. `list_meta` is the list's
/// `ListMeta` (`resourceVersion`, `continue`, `remainingItemCount`); for a single-object GET
/// pass `{"resourceVersion": <the object's>}` as kube does.
pub fn to_table(
    resource_plural: &str,
    objects: &[Value],
    include_object: IncludeObject,
    list_meta: Option<Value>,
) -> Value {
    to_table_at(
        Utc::now(),
        resource_plural,
        objects,
        include_object,
        list_meta,
    )
}

/// [`to_table`] at a given time (the testable core).
pub fn to_table_at(
    now: DateTime<Utc>,
    resource_plural: &str,
    objects: &[Value],
    include_object: IncludeObject,
    list_meta: Option<Value>,
) -> Value {
    let p = printer(resource_plural).unwrap_or(Printer {
        columns: DEFAULT_COLUMNS,
        row: default_row,
    });
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| row_json(now, &p, o, include_object))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": table_metadata(list_meta),
        "columnDefinitions": p.columns.iter().map(|c| c.to_json()).collect::<Vec<_>>(),
        "rows": rows,
    })
}

/// Drops the column definitions from a table, as kube-apiserver does for every watch event
/// after the first (`columnDefinitions: null`) when serving `watch` with `as=Table`.
pub fn without_headers(table: &mut Value) {
    if let Some(obj) = table.as_object_mut() {
        obj.insert("columnDefinitions".into(), Value::Null);
    }
}

fn table_metadata(list_meta: Option<Value>) -> Value {
    let mut out = Map::new();
    if let Some(Value::Object(meta)) = list_meta {
        for key in ["resourceVersion", "continue", "remainingItemCount"] {
            match meta.get(key) {
                Some(Value::Null) | None => {}
                Some(Value::String(s)) if s.is_empty() => {}
                Some(v) => {
                    out.insert(key.into(), v.clone());
                }
            }
        }
    }
    Value::Object(out)
}

fn row_json(now: DateTime<Utc>, p: &Printer, obj: &Value, include_object: IncludeObject) -> Value {
    let row = (p.row)(now, obj);
    let mut out = json!({ "cells": row.cells });
    if let Some(conditions) = row.conditions {
        out["conditions"] = conditions;
    }
    match include_object {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            out["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
            });
        }
        IncludeObject::Object => out["object"] = obj.clone(),
    }
    out
}

#[cfg(test)]
mod tests;
