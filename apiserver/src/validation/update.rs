//! Update validation: what may not change between the stored and the new object
//! (`ValidateObjectMetaUpdate`, `ValidatePodUpdate`, `ValidateDeploymentUpdate`, ...).

use serde_json::{Map, Value};

use super::{array_at, str_at, FieldCause, Path};

/// Validates the transition `old` → `new` of an object of `kind` (a main-resource update).
///
/// Returns only the causes specific to updates: the caller runs [`super::validate`] on `new` as
/// well. The caller is expected to carry over server-assigned values the client left out (a
/// Service's `clusterIP`) before calling, as Kubernetes' update strategies do.
pub fn validate_update(kind: &str, old: &Value, new: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let meta = Path::root("metadata");
    for field in ["name", "namespace", "uid"] {
        let (before, after) = (meta_str(old, field), meta_str(new, field));
        // An absent uid or namespace in the request means "unchanged" (filled in by the server).
        if before != after && !(after.is_empty() && field != "name") {
            causes.push(FieldCause::invalid(
                &meta.child(field),
                after,
                "field is immutable",
            ));
        }
    }
    validate_no_new_finalizers(old, new, &meta, &mut causes);
    match kind {
        "Pod" => validate_pod_update(old, new, &mut causes),
        "Deployment" | "ReplicaSet" => immutable(
            old,
            new,
            "/spec/selector",
            &Path::root("spec").child("selector"),
            &mut causes,
        ),
        "Service" => validate_service_update(old, new, &mut causes),
        "Node" => {
            let before = old
                .pointer("/spec/podCIDR")
                .and_then(Value::as_str)
                .unwrap_or("");
            let after = new
                .pointer("/spec/podCIDR")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !before.is_empty() && before != after {
                let detail = "node updates may not change podCIDR except from \"\" to valid";
                causes.push(FieldCause::forbidden(
                    &Path::root("spec").child("podCIDRs"),
                    detail,
                ));
            }
        }
        "ConfigMap" | "Secret" => validate_immutable_data(old, new, &mut causes),
        "EndpointSlice" => immutable(
            old,
            new,
            "/addressType",
            &Path::root("addressType"),
            &mut causes,
        ),
        _ => {}
    }
    if kind == "Secret" {
        immutable(old, new, "/type", &Path::root("type"), &mut causes);
    }
    causes
}

/// `ValidateNoNewFinalizers`: an object being deleted may lose finalizers but gain none.
fn validate_no_new_finalizers(old: &Value, new: &Value, meta: &Path, causes: &mut Vec<FieldCause>) {
    if old
        .pointer("/metadata/deletionTimestamp")
        .is_none_or(Value::is_null)
    {
        return;
    }
    let list = |o: &Value| -> Vec<String> {
        o.pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = list(old);
    let mut extra: Vec<String> = list(new)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    extra.sort();
    extra.dedup();
    if !extra.is_empty() {
        let quoted: Vec<String> = extra
            .iter()
            .map(|f| Value::from(f.as_str()).to_string())
            .collect();
        let detail = format!(
            "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
            quoted.join(", ")
        );
        causes.push(FieldCause::forbidden(&meta.child("finalizers"), &detail));
    }
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata").map_or("", |m| str_at(m, field))
}

/// `ValidateImmutableField` on the value at `pointer`.
fn immutable(old: &Value, new: &Value, pointer: &str, path: &Path, causes: &mut Vec<FieldCause>) {
    let (before, after) = (old.pointer(pointer), new.pointer(pointer));
    if before.unwrap_or(&Value::Null) != after.unwrap_or(&Value::Null) {
        let value = after.cloned().unwrap_or(Value::Null);
        causes.push(FieldCause::invalid(path, value, "field is immutable"));
    }
}

const POD_UPDATE_MSG: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// A pod's spec is immutable except container images, a shrinking `activeDeadlineSeconds`,
/// added tolerations, removed scheduling gates and a negative grace period raised to 1.
fn validate_pod_update(old: &Value, new: &Value, causes: &mut Vec<FieldCause>) {
    let empty = Map::new();
    let old_spec = old.get("spec").and_then(Value::as_object).unwrap_or(&empty);
    let new_spec = new.get("spec").and_then(Value::as_object).unwrap_or(&empty);
    let mut munged = new_spec.clone();
    for field in ["containers", "initContainers"] {
        copy_images(old_spec.get(field), munged.get_mut(field));
    }
    let deadline = Path::root("spec").child("activeDeadlineSeconds");
    match (
        old_spec.get("activeDeadlineSeconds"),
        new_spec.get("activeDeadlineSeconds"),
    ) {
        (Some(before), None) if !before.is_null() => {
            let detail = "must not update from a positive integer to nil value";
            causes.push(FieldCause::invalid(&deadline, Value::Null, detail));
        }
        (Some(before), Some(after)) if after.as_i64() > before.as_i64() && before.is_i64() => {
            let detail = "must be less than or equal to previous value";
            causes.push(FieldCause::invalid(&deadline, after.clone(), detail));
        }
        _ => {}
    }
    restore(&mut munged, old_spec, "activeDeadlineSeconds");
    let old_tolerations = array_at(&Value::Object(old_spec.clone()), "tolerations").to_vec();
    let new_tolerations = array_at(&Value::Object(new_spec.clone()), "tolerations").to_vec();
    if old_tolerations.iter().all(|t| new_tolerations.contains(t)) {
        restore(&mut munged, old_spec, "tolerations");
    }
    let old_gates = array_at(&Value::Object(old_spec.clone()), "schedulingGates").to_vec();
    let new_gates = array_at(&Value::Object(new_spec.clone()), "schedulingGates").to_vec();
    if new_gates.iter().all(|g| old_gates.contains(g)) {
        restore(&mut munged, old_spec, "schedulingGates");
    }
    let negative = old_spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|n| n < 0);
    if negative
        && new_spec
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            == Some(1)
    {
        restore(&mut munged, old_spec, "terminationGracePeriodSeconds");
    }
    if &munged != old_spec {
        let changed: Vec<&str> = old_spec
            .keys()
            .chain(munged.keys())
            .filter(|k| old_spec.get(*k) != munged.get(*k))
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let detail = format!(
            "{POD_UPDATE_MSG}\n  changed: spec.{}",
            changed.join(", spec.")
        );
        causes.push(FieldCause::forbidden(&Path::root("spec"), &detail));
    }
}

/// Puts the old value of `field` (or its absence) into `munged`.
fn restore(munged: &mut Map<String, Value>, old: &Map<String, Value>, field: &str) {
    match old.get(field) {
        Some(v) => {
            munged.insert(field.to_string(), v.clone());
        }
        None => {
            munged.shift_remove(field);
        }
    }
}

/// Copies old images over new ones by index, so image changes do not count as spec changes.
fn copy_images(old: Option<&Value>, new: Option<&mut Value>) {
    let (Some(Value::Array(old)), Some(Value::Array(new))) = (old, new) else {
        return;
    };
    if old.len() != new.len() {
        return;
    }
    for (o, n) in old.iter().zip(new.iter_mut()) {
        if let (Some(image), Value::Object(n)) = (o.get("image"), n) {
            n.insert("image".to_string(), image.clone());
        }
    }
}

/// A Service's cluster IP may not change once set, unless it is or becomes an ExternalName.
fn validate_service_update(old: &Value, new: &Value, causes: &mut Vec<FieldCause>) {
    let ty = |o: &Value| {
        o.pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string()
    };
    if ty(old) == "ExternalName" || ty(new) == "ExternalName" {
        return;
    }
    let ip = |o: &Value| {
        o.pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (before, after) = (ip(old), ip(new));
    if !before.is_empty() && !after.is_empty() && before != after {
        let spec = Path::root("spec");
        let path = match new.pointer("/spec/clusterIPs") {
            Some(Value::Array(_)) => spec.child("clusterIPs").index(0),
            _ => spec.child("clusterIP"),
        };
        causes.push(FieldCause::invalid(&path, after, "may not change once set"));
    }
}

/// `immutable: true` ConfigMaps and Secrets keep their data, and stay immutable.
fn validate_immutable_data(old: &Value, new: &Value, causes: &mut Vec<FieldCause>) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    let detail = "field is immutable when `immutable` is set";
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        causes.push(FieldCause::forbidden(&Path::root("immutable"), detail));
    }
    for field in ["data", "binaryData", "stringData"] {
        let (before, after) = (old.get(field), new.get(field));
        if field != "stringData" && before != after || field == "stringData" && after.is_some() {
            causes.push(FieldCause::forbidden(&Path::root(field), detail));
        }
    }
}
