//! Namespace, Node, Lease and Event validation.

use serde_json::Value;

use super::names::{label_value, qualified_name};
use super::{array_at, str_at, FieldCause, Path};

pub(crate) fn validate_namespace(obj: &Value, causes: &mut Vec<FieldCause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let path = Path::root("spec").child("finalizers");
    for (i, finalizer) in array_at(spec, "finalizers").iter().enumerate() {
        let name = finalizer.as_str().unwrap_or("");
        let at = path.index(i);
        let problems = qualified_name(name);
        for msg in &problems {
            causes.push(FieldCause::invalid(&at, name, msg));
        }
        // validateFinalizerName: unqualified names must be standard ones.
        if problems.is_empty() && !name.contains('/') && name != "kubernetes" {
            let detail = "name is neither a standard finalizer name nor is it fully qualified";
            causes.push(FieldCause::invalid(&at, name, detail));
        }
    }
}

pub(crate) fn validate_node(obj: &Value, causes: &mut Vec<FieldCause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let path = Path::root("spec");
    let cidr_detail = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
    let pod_cidr = str_at(spec, "podCIDR");
    if !pod_cidr.is_empty() && !is_cidr(pod_cidr) {
        causes.push(FieldCause::invalid(
            &path.child("podCIDR"),
            pod_cidr,
            cidr_detail,
        ));
    }
    for (i, cidr) in array_at(spec, "podCIDRs").iter().enumerate() {
        let cidr = cidr.as_str().unwrap_or("");
        if !is_cidr(cidr) {
            causes.push(FieldCause::invalid(
                &path.child("podCIDRs").index(i),
                cidr,
                cidr_detail,
            ));
        }
    }
    for (i, taint) in array_at(spec, "taints").iter().enumerate() {
        let at = path.child("taints").index(i);
        let key = str_at(taint, "key");
        for msg in qualified_name(key) {
            causes.push(FieldCause::invalid(&at.child("key"), key, &msg));
        }
        let value = str_at(taint, "value");
        for msg in label_value(value) {
            causes.push(FieldCause::invalid(&at.child("value"), value, &msg));
        }
        let effect = str_at(taint, "effect");
        let effects = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
        if effect.is_empty() {
            causes.push(FieldCause::required(&at.child("effect"), ""));
        } else if !effects.contains(&effect) {
            causes.push(FieldCause::not_supported(
                &at.child("effect"),
                effect,
                &effects,
            ));
        }
    }
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits <= 32,
        Ok(std::net::IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

pub(crate) fn validate_lease(obj: &Value, causes: &mut Vec<FieldCause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let path = Path::root("spec");
    if let Some(n) = spec
        .get("leaseDurationSeconds")
        .and_then(Value::as_i64)
        .filter(|n| *n <= 0)
    {
        causes.push(FieldCause::invalid(
            &path.child("leaseDurationSeconds"),
            n,
            "must be greater than 0",
        ));
    }
    if let Some(n) = spec
        .get("leaseTransitions")
        .and_then(Value::as_i64)
        .filter(|n| *n < 0)
    {
        let detail = "must be greater than or equal to 0";
        causes.push(FieldCause::invalid(
            &path.child("leaseTransitions"),
            n,
            detail,
        ));
    }
}

/// Events (`legacyValidateEvent`): the involved object's namespace must agree with the
/// event's. Old-style events (no `eventTime`) must match exactly (cluster-scoped objects' events
/// live in `default`); new-style ones (with `eventTime`, as events.k8s.io/v1 and kube-rs write
/// them) only need a namespace of `default` or `kube-system` when the object has none.
/// events.k8s.io/v1 calls the involved object `regarding`.
pub(crate) fn validate_event(obj: &Value, causes: &mut Vec<FieldCause>) {
    let namespace = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let new_api = str_at(obj, "apiVersion").starts_with("events.k8s.io/");
    let field = if new_api {
        "regarding"
    } else {
        "involvedObject"
    };
    let involved = obj.get(field).unwrap_or(&Value::Null);
    let involved_namespace = str_at(involved, "namespace");
    let new_style = obj.get("eventTime").is_some_and(|t| !t.is_null());
    let matches = match (new_style, involved_namespace.is_empty()) {
        (false, true) => namespace.is_empty() || namespace == "default",
        (false, false) => namespace == involved_namespace,
        (true, true) => matches!(namespace, "default" | "kube-system"),
        (true, false) => true,
    };
    if !matches {
        let at = Path::root(field).child("namespace");
        causes.push(FieldCause::invalid(
            &at,
            involved_namespace,
            "does not match event.namespace",
        ));
    }
}
