//! Pod and PodSpec validation (k8s.io/kubernetes `pkg/apis/core/validation` `ValidatePodSpec`):
//! volumes, policies, tolerations and the node selector; containers are in `container.rs`.
//!
//! Absent enum fields are accepted (the server defaults them); explicitly empty ones are
//! `Required value`, as Kubernetes reports after defaulting.

use std::collections::HashSet;

use serde_json::Value;

use super::container::{validate_containers, ContainerKind};
use super::meta::validate_labels;
use super::names::{dns1123_label, dns1123_subdomain, label_value, qualified_name};
use super::{array_at, str_at, FieldCause, Path};

pub(crate) fn validate_pod(obj: &Value, causes: &mut Vec<FieldCause>) {
    let empty = Value::Null;
    let spec = obj.get("spec").unwrap_or(&empty);
    let path = Path::root("spec");
    validate_pod_spec(spec, &path, &["Always", "OnFailure", "Never"], causes);
    // validateContainerOnlyForPod: templates tolerate padded images, pods do not.
    for field in ["containers", "initContainers"] {
        for (i, container) in array_at(spec, field).iter().enumerate() {
            let image = str_at(container, "image");
            if image.len() != image.trim().len() {
                let at = path.child(field).index(i).child("image");
                let detail = "must not have leading or trailing whitespace";
                causes.push(FieldCause::invalid(&at, image, detail));
            }
        }
    }
}

/// pods/binding (`ValidatePodBinding`): the target is a Node with a name.
pub(crate) fn validate_binding(obj: &Value, causes: &mut Vec<FieldCause>) {
    let target = obj.get("target").unwrap_or(&Value::Null);
    let path = Path::root("target");
    let kind = str_at(target, "kind");
    if !kind.is_empty() && kind != "Node" {
        causes.push(FieldCause::not_supported(
            &path.child("kind"),
            kind,
            &["Node"],
        ));
    }
    if str_at(target, "name").is_empty() {
        causes.push(FieldCause::required(&path.child("name"), ""));
    }
}

/// Validates a PodSpec at `path`; `restart_policies` are the allowed policies (templates of
/// Deployments and ReplicaSets only allow `Always`).
pub(crate) fn validate_pod_spec(
    spec: &Value,
    path: &Path,
    restart_policies: &[&str],
    causes: &mut Vec<FieldCause>,
) {
    let volumes = validate_volumes(array_at(spec, "volumes"), &path.child("volumes"), causes);
    let mut names = HashSet::new();
    let containers = array_at(spec, "containers");
    if containers.is_empty() {
        causes.push(FieldCause::required(&path.child("containers"), ""));
    }
    // Kubernetes checks regular containers first, so a clash is reported on the other list.
    let kinds = [
        ContainerKind::Regular,
        ContainerKind::Init,
        ContainerKind::Ephemeral,
    ];
    // Defaulting has set it; 30 s is Kubernetes' default should it not have.
    let grace_period = spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30);
    for kind in kinds {
        let list = array_at(spec, kind.field());
        let at = path.child(kind.field());
        validate_containers(list, kind, &at, &volumes, &mut names, grace_period, causes);
    }
    validate_ephemeral_targets(spec, path, causes);
    enum_field(spec, "restartPolicy", path, restart_policies, causes);
    let dns = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
    enum_field(spec, "dnsPolicy", path, &dns, causes);
    if let Some(seconds) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        if !(1..=i64::from(i32::MAX)).contains(&seconds) {
            let detail = "must be between 1 and 2147483647, inclusive";
            causes.push(FieldCause::invalid(
                &path.child("activeDeadlineSeconds"),
                seconds,
                detail,
            ));
        }
    }
    for (field, check) in [
        ("nodeName", dns1123_subdomain as fn(&str) -> Vec<String>),
        ("serviceAccountName", dns1123_subdomain),
        ("hostname", dns1123_label),
        ("subdomain", dns1123_label),
    ] {
        let value = str_at(spec, field);
        if !value.is_empty() {
            for msg in check(value) {
                causes.push(FieldCause::invalid(&path.child(field), value, &msg));
            }
        }
    }
    validate_labels(
        spec.get("nodeSelector"),
        &path.child("nodeSelector"),
        causes,
    );
    validate_tolerations(
        array_at(spec, "tolerations"),
        &path.child("tolerations"),
        causes,
    );
}

/// Ephemeral containers target an existing non-ephemeral container and, even in templates,
/// may not pad their image (`validateEphemeralContainers`).
fn validate_ephemeral_targets(spec: &Value, path: &Path, causes: &mut Vec<FieldCause>) {
    let others: HashSet<&str> = ["containers", "initContainers"]
        .into_iter()
        .flat_map(|f| array_at(spec, f).iter().map(|c| str_at(c, "name")))
        .collect();
    for (i, container) in array_at(spec, "ephemeralContainers").iter().enumerate() {
        let at = path.child("ephemeralContainers").index(i);
        let image = str_at(container, "image");
        if image.len() != image.trim().len() {
            let detail = "must not have leading or trailing whitespace";
            causes.push(FieldCause::invalid(&at.child("image"), image, detail));
        }
        let target = str_at(container, "targetContainerName");
        if !target.is_empty() && !others.contains(target) {
            causes.push(FieldCause::not_found(
                &at.child("targetContainerName"),
                target,
            ));
        }
    }
}

/// An optional enum: absent is fine (defaulted), `""` is required, others must be listed.
pub(crate) fn enum_field(
    obj: &Value,
    field: &str,
    path: &Path,
    valid: &[&str],
    causes: &mut Vec<FieldCause>,
) {
    let Some(value) = obj.get(field) else { return };
    let text = value.as_str().unwrap_or("");
    if text.is_empty() {
        causes.push(FieldCause::required(&path.child(field), ""));
    } else if !valid.contains(&text) {
        causes.push(FieldCause::not_supported(&path.child(field), text, valid));
    }
}

/// Volume names are unique DNS-1123 labels and each volume has exactly one source
/// (`ValidateVolumes`). Returns the names, for volume mounts to refer to.
fn validate_volumes(
    volumes: &[Value],
    path: &Path,
    causes: &mut Vec<FieldCause>,
) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, volume) in volumes.iter().enumerate() {
        let at = path.index(i);
        let name = str_at(volume, "name");
        if name.is_empty() {
            causes.push(FieldCause::required(&at.child("name"), ""));
        } else {
            for msg in dns1123_label(name) {
                causes.push(FieldCause::invalid(&at.child("name"), name, &msg));
            }
            if !names.insert(name.to_string()) {
                causes.push(FieldCause::duplicate(&at.child("name"), name));
            }
        }
        let sources: Vec<&String> = volume
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, v)| *k != "name" && !v.is_null())
                    .map(|(k, _)| k)
                    .collect()
            })
            .unwrap_or_default();
        match sources.as_slice() {
            [] => causes.push(FieldCause::required(&at, "must specify a volume type")),
            [only] => validate_volume_source(volume, only, &at.child(only), causes),
            [_, rest @ ..] => {
                for extra in rest {
                    let detail = "may not specify more than 1 volume type";
                    causes.push(FieldCause::forbidden(&at.child(extra), detail));
                }
            }
        }
    }
    names
}

/// The required field of the common volume sources.
fn validate_volume_source(volume: &Value, source: &str, path: &Path, causes: &mut Vec<FieldCause>) {
    let required = match source {
        "hostPath" => "path",
        "configMap" => "name",
        "secret" => "secretName",
        "persistentVolumeClaim" => "claimName",
        _ => return,
    };
    let body = &volume[source];
    if str_at(body, required).is_empty() {
        causes.push(FieldCause::required(&path.child(required), ""));
    }
    if source == "hostPath" {
        let types = [
            "",
            "DirectoryOrCreate",
            "Directory",
            "FileOrCreate",
            "File",
            "Socket",
            "CharDevice",
            "BlockDevice",
        ];
        if let Some(ty) = body.get("type").and_then(Value::as_str) {
            if !types.contains(&ty) {
                causes.push(FieldCause::not_supported(
                    &path.child("type"),
                    ty,
                    &types[1..],
                ));
            }
        }
    }
}

/// `ValidateTolerations`, in Kubernetes' order of checks.
fn validate_tolerations(tolerations: &[Value], path: &Path, causes: &mut Vec<FieldCause>) {
    for (i, toleration) in tolerations.iter().enumerate() {
        let at = path.index(i);
        let key = str_at(toleration, "key");
        if !key.is_empty() {
            for msg in qualified_name(key) {
                causes.push(FieldCause::invalid(&at.child("key"), key, &msg));
            }
        }
        // An absent operator means Equal, but is reported as the empty string it is.
        let operator = str_at(toleration, "operator");
        if key.is_empty() && operator != "Exists" {
            let detail = "operator must be Exists when `key` is empty, which means \"match all values and all keys\"";
            causes.push(FieldCause::invalid(&at.child("operator"), operator, detail));
        }
        let effect = str_at(toleration, "effect");
        let seconds = toleration
            .get("tolerationSeconds")
            .is_some_and(|s| !s.is_null());
        if seconds && effect != "NoExecute" {
            let detail = "effect must be 'NoExecute' when `tolerationSeconds` is set";
            causes.push(FieldCause::invalid(&at.child("effect"), effect, detail));
        }
        let value = str_at(toleration, "value");
        match operator {
            "Equal" | "" => {
                let problems = label_value(value);
                if !problems.is_empty() {
                    causes.push(FieldCause::invalid(
                        &at.child("operator"),
                        value,
                        &problems.join(";"),
                    ));
                }
            }
            "Exists" if value.is_empty() => {}
            "Exists" => {
                let detail = "value must be empty when `operator` is 'Exists'";
                causes.push(FieldCause::invalid(&at.child("operator"), value, detail));
            }
            other => {
                let valid = ["Equal", "Exists"];
                causes.push(FieldCause::not_supported(
                    &at.child("operator"),
                    other,
                    &valid,
                ));
            }
        }
        let effects = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
        if !effect.is_empty() && !effects.contains(&effect) {
            causes.push(FieldCause::not_supported(
                &at.child("effect"),
                effect,
                &effects,
            ));
        }
    }
}
