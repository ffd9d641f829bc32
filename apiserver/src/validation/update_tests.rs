//! Update validation and strict (unknown/duplicate) field checks.

use super::*;
#[test]
fn updates() {
    let old = pod();
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    new["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists"}]);
    new["spec"]["activeDeadlineSeconds"] = json!(30);
    new["metadata"]["labels"]["x"] = json!("y");
    assert_eq!(validate_update("Pod", &old, &new), vec![]);

    let mut bad = old.clone();
    bad["spec"]["containers"][0]["ports"] = json!([]);
    bad["spec"]["nodeName"] = json!("n1");
    bad["metadata"]["name"] = json!("other");
    let causes = validate_update("Pod", &old, &bad);
    assert_eq!(
        pairs(&causes),
        [
            ("metadata.name".to_string(), FieldValueInvalid),
            ("spec".to_string(), FieldValueForbidden)
        ]
    );
    assert!(causes[1].message.starts_with(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
    ));
    assert!(
        causes[1].message.contains("spec.containers, spec.nodeName"),
        "{}",
        causes[1].message
    );

    let d = deployment();
    let mut changed = d.clone();
    changed["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "fe"}});
    assert_eq!(
        pairs(&validate_update("Deployment", &d, &changed)),
        [("spec.selector".to_string(), FieldValueInvalid)]
    );
    changed = d.clone();
    changed["spec"]["replicas"] = json!(5);
    assert_eq!(validate_update("Deployment", &d, &changed), vec![]);

    let svc =
        json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {"clusterIP": "10.96.0.10"}});
    let moved =
        json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {"clusterIP": "10.96.0.11"}});
    let causes = validate_update("Service", &svc, &moved);
    assert_eq!(
        pairs(&causes),
        [("spec.clusterIP".to_string(), FieldValueInvalid)]
    );
    assert_eq!(
        causes[0].message,
        "Invalid value: \"10.96.0.11\": may not change once set"
    );

    let cm = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
    let edited = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}});
    assert_eq!(
        pairs(&validate_update("ConfigMap", &cm, &edited)),
        [
            ("immutable".to_string(), FieldValueForbidden),
            ("data".to_string(), FieldValueForbidden)
        ]
    );
}

#[test]
fn strict_unknown_and_duplicate_fields_in_json() {
    let body = br#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "name": "b", "labels": {"x": "1"}},
        "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicyy": "Always"}], "bogus": 1}}"#;
    assert_eq!(
        unknown_fields("Pod", body),
        [
            "unknown field \"spec.containers[0].imagePullPolicyy\"",
            "unknown field \"spec.bogus\"",
            "duplicate field \"metadata.name\"",
        ]
    );
    let clean = serde_json::to_vec(&pod()).unwrap();
    assert_eq!(unknown_fields("Pod", &clean), Vec::<String>::new());
    let clean = serde_json::to_vec(&deployment()).unwrap();
    assert_eq!(unknown_fields("Deployment", &clean), Vec::<String>::new());
    assert_eq!(unknown_fields("Pod", b"{not json"), Vec::<String>::new());
}

#[test]
fn strict_unknown_and_duplicate_fields_in_yaml() {
    let body = b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  name: web2\nspec:\n  replicas: 1\n  replicaz: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: c\n        image: i\n        ports:\n        - containerPort: 80\n          hostIp: 1.2.3.4\n";
    assert_eq!(
        unknown_fields("Deployment", body),
        [
            "unknown field \"spec.replicaz\"",
            "unknown field \"spec.template.spec.containers[0].ports[0].hostIp\"",
            "duplicate field \"metadata.name\"",
        ]
    );
    let cm = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  a: '1'\n";
    assert_eq!(unknown_fields("ConfigMap", cm), Vec::<String>::new());
}

#[test]
fn strict_checks_cover_subresource_bodies() {
    let scale = br#"{"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"}, "spec": {"replicas": 3, "replica": 1}}"#;
    assert_eq!(
        unknown_fields("Scale", scale),
        ["unknown field \"spec.replica\""]
    );
    let binding = br#"{"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n", "nodeName": "x"}}"#;
    assert_eq!(
        unknown_fields("Binding", binding),
        ["unknown field \"target.nodeName\""]
    );
    assert_eq!(
        unknown_fields("Widget", b"{\"a\": 1}"),
        Vec::<String>::new()
    );
}

#[test]
fn strict_checks_know_both_event_apis() {
    let core = br#"{"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}, "involvedObject": {"kind": "Pod"}, "reason": "X", "note": "n"}"#;
    assert_eq!(unknown_fields("Event", core), ["unknown field \"note\""]);
    let new = br#"{"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": "2026-11-22T21:00:00.000000Z",
        "regarding": {"kind": "Pod"}, "reason": "X", "note": "n", "action": "A", "reportingController": "c", "reportingInstance": "i"}"#;
    assert_eq!(unknown_fields("Event", new), Vec::<String>::new());
}

#[test]
fn objects_being_deleted_gain_no_finalizers() {
    let old = json!({"kind": "ConfigMap", "metadata": {"name": "c", "deletionTimestamp": "2026-11-22T21:00:00Z",
        "finalizers": ["a/x"]}});
    let mut new = old.clone();
    new["metadata"]["finalizers"] = json!(["a/x", "b/y"]);
    let causes = validate_update("ConfigMap", &old, &new);
    assert_eq!(
        pairs(&causes),
        [("metadata.finalizers".to_string(), FieldValueForbidden)]
    );
    assert_eq!(causes[0].message, "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"b/y\"}");
    new["metadata"]["finalizers"] = json!([]);
    assert_eq!(validate_update("ConfigMap", &old, &new), vec![]);
}

#[test]
fn metadata_owner_references_and_finalizers() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default",
        "finalizers": ["bad finalizer"],
        "ownerReferences": [{"apiVersion": "apps/v1/x", "kind": "", "name": "rs", "uid": "u"}]}});
    let causes = validate("ConfigMap", &cm);
    assert_eq!(
        pairs(&causes),
        [
            (
                "metadata.ownerReferences.apiVersion".to_string(),
                FieldValueInvalid
            ),
            (
                "metadata.ownerReferences.kind".to_string(),
                FieldValueRequired
            ),
            ("metadata.finalizers".to_string(), FieldValueInvalid),
        ]
    );
    assert_eq!(causes[1].message, "Required value: must not be empty");
}
