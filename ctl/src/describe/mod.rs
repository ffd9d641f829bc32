//! `describe` output for pods, deployments, replicasets, services, nodes and namespaces:
//! kubectl's sections in kubectl's order, built from the typed `k8s-openapi` objects, with
//! the object's Events at the bottom. Other kinds get a generic field dump.

pub mod container;
pub mod events;
pub mod format;
pub mod pod;
pub mod resources;
pub mod workload;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Endpoints, Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use format::Out;

/// Objects a describer shows besides the object itself (fetched by the caller).
#[derive(Default)]
pub struct Related {
    pub events: Vec<Event>,
    /// Pods selected by a ReplicaSet, or running on a Node.
    pub pods: Vec<Pod>,
    /// ReplicaSets owned by a Deployment.
    pub replica_sets: Vec<ReplicaSet>,
    pub endpoints: Option<Endpoints>,
}

/// `Name`, `Namespace`, `Labels`, `Annotations` in kubectl's order for most kinds.
pub fn header(out: &mut Out, meta: &ObjectMeta, with_creation: bool) {
    out.line(0, format!("Name:\t{}", meta.name.as_deref().unwrap_or("")));
    if let Some(ns) = &meta.namespace {
        out.line(0, format!("Namespace:\t{ns}"));
    }
    if with_creation {
        out.line(
            0,
            format!(
                "CreationTimestamp:\t{}",
                format::timestamp(meta.creation_timestamp.as_ref())
            ),
        );
    }
    out.map(0, "Labels", meta.labels.as_ref());
    out.annotations(0, meta.annotations.as_ref());
}

/// `Controlled By:  ReplicaSet/web-abc` when the object has a controller owner.
pub fn controlled_by(out: &mut Out, meta: &ObjectMeta) {
    if let Some(o) = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
    {
        out.line(0, format!("Controlled By:\t{}/{}", o.kind, o.name));
    }
}

/// A generic description: metadata, then the remaining fields as indented YAML.
pub fn generic(obj: &serde_json::Value) -> String {
    let meta: ObjectMeta = serde_json::from_value(obj["metadata"].clone()).unwrap_or_default();
    let mut out = Out::default();
    header(&mut out, &meta, true);
    let mut text = out.finish();
    if let Some(map) = obj.as_object() {
        for (k, v) in map {
            if ["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
                continue;
            }
            let yaml = serde_yaml::to_string(v).unwrap_or_default();
            let title = k[..1].to_uppercase() + &k[1..];
            text.push_str(&format!("{title}:\n"));
            for l in yaml.lines() {
                text.push_str(&format!("  {l}\n"));
            }
        }
    }
    text
}
