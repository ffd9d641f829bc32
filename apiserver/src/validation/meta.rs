//! `ObjectMeta` validation (apimachinery `ValidateObjectMeta`): names per kind, labels,
//! annotations, finalizers and owner references.

use serde_json::Value;

use super::names::{dns1035_label, dns1123_label, dns1123_subdomain, label_value, qualified_name};
use super::{array_at, str_at, FieldCause, Path};

/// Kubernetes' limit on the total size of an object's annotations (256 KiB).
const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

/// Cluster-scoped kinds among ours: a namespace on them is refused.
const CLUSTER_SCOPED: &[&str] = &["Namespace", "Node"];

/// The name format of a kind: Namespaces are DNS-1123 labels, Services DNS-1035 labels,
/// everything else DNS-1123 subdomains.
fn name_problems(kind: &str, name: &str) -> Vec<String> {
    match kind {
        "Namespace" => dns1123_label(name),
        "Service" => dns1035_label(name),
        _ => dns1123_subdomain(name),
    }
}

pub(crate) fn validate_object_meta(kind: &str, obj: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let empty = Value::Null;
    let meta = obj.get("metadata").unwrap_or(&empty);
    let path = Path::root("metadata");
    let name = str_at(meta, "name");
    let generate_name = str_at(meta, "generateName");
    if !generate_name.is_empty() {
        // A generateName is a prefix: its trailing '-' is fine (`maskTrailingDash`).
        let masked = match generate_name.strip_suffix('-') {
            Some(rest) if !rest.is_empty() => format!("{rest}a"),
            _ => generate_name.to_string(),
        };
        for msg in name_problems(kind, &masked) {
            causes.push(FieldCause::invalid(
                &path.child("generateName"),
                generate_name,
                &msg,
            ));
        }
    }
    // The server generates the name before validating; a generateName alone is accepted here
    // so that callers validating before generation are not refused.
    if name.is_empty() && generate_name.is_empty() {
        causes.push(FieldCause::required(
            &path.child("name"),
            "name or generateName is required",
        ));
    }
    if !name.is_empty() {
        for msg in name_problems(kind, name) {
            causes.push(FieldCause::invalid(&path.child("name"), name, &msg));
        }
    }
    let namespace = str_at(meta, "namespace");
    if CLUSTER_SCOPED.contains(&kind) {
        if !namespace.is_empty() {
            causes.push(FieldCause::forbidden(
                &path.child("namespace"),
                "not allowed on this type",
            ));
        }
    } else if !namespace.is_empty() {
        for msg in dns1123_label(namespace) {
            causes.push(FieldCause::invalid(
                &path.child("namespace"),
                namespace,
                &msg,
            ));
        }
    }
    validate_labels(meta.get("labels"), &path.child("labels"), &mut causes);
    validate_annotations(
        meta.get("annotations"),
        &path.child("annotations"),
        &mut causes,
    );
    validate_owner_references(meta, &path.child("ownerReferences"), &mut causes);
    // ValidateFinalizers reports on the list, not the item.
    for finalizer in array_at(meta, "finalizers") {
        let value = finalizer.as_str().unwrap_or("");
        for msg in qualified_name(value) {
            causes.push(FieldCause::invalid(&path.child("finalizers"), value, &msg));
        }
    }
    causes
}

/// Label keys are qualified names and values label values (`ValidateLabels`).
pub(crate) fn validate_labels(labels: Option<&Value>, path: &Path, causes: &mut Vec<FieldCause>) {
    let Some(Value::Object(labels)) = labels else {
        return;
    };
    for (key, value) in labels {
        for msg in qualified_name(key) {
            causes.push(FieldCause::invalid(path, key.as_str(), &msg));
        }
        let value = value.as_str().unwrap_or("");
        for msg in label_value(value) {
            causes.push(FieldCause::invalid(path, value, &msg));
        }
    }
}

/// Annotation keys are qualified names (checked lower-cased) and all annotations together
/// must fit in 256 KiB (`ValidateAnnotations`).
fn validate_annotations(annotations: Option<&Value>, path: &Path, causes: &mut Vec<FieldCause>) {
    let Some(Value::Object(annotations)) = annotations else {
        return;
    };
    let mut total = 0;
    for (key, value) in annotations {
        for msg in qualified_name(&key.to_lowercase()) {
            causes.push(FieldCause::invalid(path, key.as_str(), &msg));
        }
        total += key.len() + value.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE {
        causes.push(FieldCause::too_long(path, TOTAL_ANNOTATION_SIZE));
    }
}

fn validate_owner_references(meta: &Value, path: &Path, causes: &mut Vec<FieldCause>) {
    for reference in array_at(meta, "ownerReferences") {
        let api_version = str_at(reference, "apiVersion");
        if api_version.is_empty() {
            causes.push(FieldCause::required(
                &path.child("apiVersion"),
                "must not be empty",
            ));
        } else if api_version.split('/').count() > 2 || api_version.ends_with('/') {
            let detail = "must be <group>/<version> or <version>";
            causes.push(FieldCause::invalid(
                &path.child("apiVersion"),
                api_version,
                detail,
            ));
        }
        for field in ["kind", "name", "uid"] {
            if str_at(reference, field).is_empty() {
                causes.push(FieldCause::required(
                    &path.child(field),
                    "must not be empty",
                ));
            }
        }
    }
}
