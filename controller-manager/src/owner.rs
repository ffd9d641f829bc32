//! Owner references and label-selector matching shared by the workload controllers.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use minik8s_api::selector::{from_label_selector_json, LabelSelector as Matcher};

/// The controller=true owner reference on an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// An owner reference making `owner` the managing controller, blocking its foreground
/// deletion until this dependent is gone (as Kubernetes' controllers set it).
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A label selector as a matcher; `None` for a malformed or empty selector, which (as in
/// Kubernetes' workload controllers) selects nothing.
pub fn matcher(selector: &LabelSelector) -> Option<Matcher> {
    let json = serde_json::to_value(selector).ok()?;
    let m = from_label_selector_json(&json)?;
    (!m.is_empty()).then_some(m)
}

pub fn labels_of(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

/// Merge-patch body replacing the owner references of an object, guarded by its uid and
/// resourceVersion so a racing write fails with a conflict instead of being overwritten.
pub fn owner_refs_patch(meta: &ObjectMeta, refs: Vec<OwnerReference>) -> serde_json::Value {
    serde_json::json!({
        "metadata": {
            "uid": meta.uid,
            "resourceVersion": meta.resource_version,
            "ownerReferences": refs,
        }
    })
}
