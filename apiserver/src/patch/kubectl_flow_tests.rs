//! The request sequence real kubectl produces for one Deployment, run through the same calls
//! the API server makes (patch, validation, ownership): create from `kubectl apply`, a changed
//! re-apply, `kubectl scale`, then a switch to `kubectl apply --server-side`.

use serde_json::{json, Value};

use super::*;
use crate::validation::{validate, validate_update};

/// What the server does around every write: validate the result and record the manager.
fn write(old: Option<&Value>, new: Value, manager: &str) -> Value {
    assert_eq!(validate("Deployment", &new), vec![], "{new}");
    if let Some(old) = old {
        assert_eq!(validate_update("Deployment", old, &new), vec![]);
    }
    record_update(old, &new, manager, "Update")
}

fn manifest(image: &str, env: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image, "env": env,
                    "ports": [{"containerPort": 80}]}]}}}})
}

#[test]
fn kubectl_client_side_then_server_side_apply() {
    // 1. `kubectl apply` of a new object: a POST carrying the last-applied annotation.
    let v1 = manifest(
        "nginx:1.24",
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
    );
    let mut body = v1.clone();
    body["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": v1.to_string()});
    let live = write(None, body, "kubectl-client-side-apply");

    // 2. Re-apply with a new image and env B dropped: kubectl's three-way patch.
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}],
            "containers": [{"$setElementOrder/env": [{"name": "A"}],
                "env": [{"$patch": "delete", "name": "B"}], "image": "nginx:1.25", "name": "nginx"}]}}}});
    let patched = apply_strategic_merge_patch(&live, &patch, "Deployment").unwrap();
    let live = write(Some(&live), patched, "kubectl-client-side-apply");
    let container = &live["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.25");
    assert_eq!(container["env"], json!([{"name": "A", "value": "1"}]));

    // 3. `kubectl scale --replicas=5` (a merge patch, manager "kubectl").
    let scaled = apply_merge_patch(&live, &json!({"spec": {"replicas": 5}})).unwrap();
    let live = write(Some(&live), scaled, "kubectl");

    // 4. `kubectl apply --server-side` of the manifest: replicas 2 conflicts with the scale.
    let applied = manifest("nginx:1.25", json!([{"name": "A", "value": "1"}]));
    let err = server_side_apply(Some(&live), &applied, "kubectl", false).unwrap_err();
    let ApplyError::Conflict(conflicts) = &err else {
        panic!("{err}")
    };
    assert_eq!(conflicts.len(), 1, "{err}");
    assert_eq!(conflicts[0].field, ".spec.replicas");
    assert!(conflicts[0]
        .manager
        .starts_with(r#""kubectl" using apps/v1 at "#));

    // 5. With --force-conflicts the apply wins and nothing else is lost.
    let out = server_side_apply(Some(&live), &applied, "kubectl", true).unwrap();
    assert_eq!(validate_update("Deployment", &live, &out), vec![]);
    assert_eq!(out["spec"]["replicas"], 2);
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{}"
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );

    // 6. Dropping the label from the manifest: the client-side manager still owns it, so it stays.
    let mut smaller = applied.clone();
    smaller["metadata"]
        .as_object_mut()
        .unwrap()
        .shift_remove("labels");
    let out = server_side_apply(Some(&out), &smaller, "kubectl", false).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
}
