//! Field validation (unknown and duplicate fields) and per-kind semantic validation (422 causes).
//!
//! [`validate`] and [`validate_update`] return one [`FieldCause`] per bad field, with the field
//! paths, reasons and messages k8s.io/kubernetes `pkg/apis/*/validation` produces, so that a
//! `Status` built from them reads like Kubernetes' (see [`invalid_message`]).
//! [`unknown_fields`] implements `fieldValidation=Strict|Warn`.

mod cause;
mod cluster;
mod config;
mod container;
mod meta;
mod names;
mod pod;
mod quantity;
mod service;
mod strict;
mod update;
mod workload;

pub use cause::{invalid_message, CauseType, FieldCause};
pub use strict::{unknown_field_paths, unknown_fields};
pub use update::validate_update;

use serde_json::Value;

/// Validates a new or updated object of `kind`; an empty result means valid.
///
/// The object is expected to be defaulted already (as Kubernetes validates after defaulting):
/// e.g. a pod without `restartPolicy` is reported as `Required value`.
pub fn validate(kind: &str, obj: &Value) -> Vec<FieldCause> {
    let mut causes = meta::validate_object_meta(kind, obj);
    match kind {
        "Pod" => pod::validate_pod(obj, &mut causes),
        "Deployment" => workload::validate_deployment(obj, &mut causes),
        "ReplicaSet" => workload::validate_replica_set(obj, &mut causes),
        "Service" => service::validate_service(obj, &mut causes),
        "Endpoints" => service::validate_endpoints(obj, &mut causes),
        "EndpointSlice" => service::validate_endpoint_slice(obj, &mut causes),
        "ConfigMap" => config::validate_config_map(obj, &mut causes),
        "Secret" => config::validate_secret(obj, &mut causes),
        "ServiceAccount" => config::validate_service_account(obj, &mut causes),
        "Namespace" => cluster::validate_namespace(obj, &mut causes),
        "Node" => cluster::validate_node(obj, &mut causes),
        "Lease" => cluster::validate_lease(obj, &mut causes),
        "Event" => cluster::validate_event(obj, &mut causes),
        "Binding" => pod::validate_binding(obj, &mut causes),
        "Scale" => workload::validate_scale(obj, &mut causes),
        _ => {}
    }
    causes
}

/// A JSON path walker that builds Kubernetes' field path strings (`spec.containers[0].name`).
#[derive(Debug, Clone)]
pub(crate) struct Path(String);

impl Path {
    pub(crate) fn root(name: &str) -> Path {
        Path(name.to_string())
    }

    pub(crate) fn child(&self, name: &str) -> Path {
        if self.0.is_empty() {
            Path(name.to_string())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }

    pub(crate) fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }

    pub(crate) fn key(&self, k: &str) -> Path {
        Path(format!("{}[{k}]", self.0))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Small accessors for optional JSON fields.
pub(crate) fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn array_at<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests;
