//! Tests of the JSON, merge and strategic merge patches, the latter with the patches kubectl's
//! client-side `apply`, `scale`, `label` and `set image` really send.

use super::*;
use serde_json::json;

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "fe"},
            "finalizers": ["a"]},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:1.24", "imagePullPolicy": "IfNotPresent",
                         "ports": [{"containerPort": 80, "protocol": "TCP"}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                        {"name": "sidecar", "image": "busybox"}
                    ],
                    "tolerations": [{"key": "k", "operator": "Exists"}],
                    "restartPolicy": "Always"
                }
            }
        }
    })
}

#[test]
fn content_types_map_to_patch_types() {
    let cases = [
        ("application/json-patch+json", Some(PatchType::Json)),
        (
            "application/merge-patch+json; charset=utf-8",
            Some(PatchType::Merge),
        ),
        (
            "application/strategic-merge-patch+json",
            Some(PatchType::StrategicMerge),
        ),
        ("application/apply-patch+yaml", Some(PatchType::Apply)),
        ("application/apply-patch+json", Some(PatchType::Apply)),
        ("Application/JSON-Patch+JSON", Some(PatchType::Json)),
        ("application/json", None),
        ("text/plain", None),
    ];
    for (ct, expected) in cases {
        assert_eq!(PatchType::from_content_type(ct), expected, "{ct}");
    }
    assert_eq!(
        PatchType::Apply.content_type(),
        "application/apply-patch+yaml"
    );
}

#[test]
fn json_patch_applies_all_operations() {
    let patch = br#"[
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/metadata/labels/new", "value": "x"},
        {"op": "remove", "path": "/metadata/labels/tier"},
        {"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/labels/copy"},
        {"op": "move", "from": "/metadata/labels/new", "path": "/metadata/labels/moved"},
        {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "c3", "image": "x"}}
    ]"#;
    let out = apply_json_patch(&deployment(), patch).unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "copy": "web", "moved": "x"})
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][2]["name"],
        "c3"
    );
}

#[test]
fn json_patch_errors_map_to_kubernetes_codes() {
    let doc = deployment();
    let failed_test = br#"[{"op": "test", "path": "/spec/replicas", "value": 5}]"#;
    let err = apply_json_patch(&doc, failed_test).unwrap_err();
    assert_eq!(
        err,
        PatchError::TestFailed {
            path: "/spec/replicas".into()
        }
    );
    assert_eq!((err.status_code(), err.reason()), (422, "Invalid"));

    let missing = br#"[{"op": "replace", "path": "/spec/nothing/here", "value": 1}]"#;
    let err = apply_json_patch(&doc, missing).unwrap_err();
    assert!(
        matches!(&err, PatchError::MissingPath { op, path } if op == "replace" && path == "/spec/nothing/here")
    );
    assert_eq!(err.status_code(), 422);

    let bad_from = br#"[{"op": "move", "from": "/nope", "path": "/spec/x"}]"#;
    let err = apply_json_patch(&doc, bad_from).unwrap_err();
    assert!(
        matches!(&err, PatchError::MissingFrom { path, .. } if path == "/nope"),
        "{err:?}"
    );

    for malformed in [
        &b"{\"op\": \"add\"}"[..],
        b"not json",
        br#"[{"op": "frob", "path": "/a"}]"#,
    ] {
        let err = apply_json_patch(&doc, malformed).unwrap_err();
        assert_eq!(
            (err.status_code(), err.reason()),
            (400, "BadRequest"),
            "{err}"
        );
    }
}

#[test]
fn json_patch_failure_changes_nothing() {
    let doc = deployment();
    let patch = br#"[{"op": "replace", "path": "/spec/replicas", "value": 9},
                     {"op": "test", "path": "/spec/replicas", "value": 1}]"#;
    assert!(apply_json_patch(&doc, patch).is_err());
    assert_eq!(doc["spec"]["replicas"], 1);
}

#[test]
fn json_patch_refuses_too_many_operations() {
    let ops: Vec<Value> = (0..=MAX_JSON_PATCH_OPERATIONS)
        .map(|_| json!({"op": "test", "path": "/kind", "value": "Deployment"}))
        .collect();
    let body = serde_json::to_vec(&ops).unwrap();
    let err = apply_json_patch(&deployment(), &body).unwrap_err();
    assert_eq!(err.status_code(), 413);
}

#[test]
fn merge_patch_follows_rfc7386() {
    let patch = json!({
        "metadata": {"labels": {"tier": null, "new": "y"}},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}}
    });
    let out = apply_merge_patch(&deployment(), &patch).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"app": "web", "new": "y"}));
    assert_eq!(out["spec"]["replicas"], 2);
    // Arrays replace whole in a merge patch.
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "only", "image": "x"}])
    );
    let err = apply_merge_patch(&deployment(), &json!([1])).unwrap_err();
    assert_eq!(err.status_code(), 400);
}

fn smp(doc: &Value, patch: Value) -> Value {
    apply_strategic_merge_patch(doc, &patch, doc["kind"].as_str().unwrap()).unwrap()
}

#[test]
fn smp_merges_containers_by_name_and_keeps_the_rest() {
    // What `kubectl set image deployment/web nginx=nginx:1.25` sends.
    let out = smp(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}}}),
    );
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "nginx:1.25");
    assert_eq!(
        containers[0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(containers[1]["name"], "sidecar");
    assert_eq!(containers.as_array().unwrap().len(), 2);
}

#[test]
fn smp_kubectl_apply_patch_with_set_element_order() {
    // kubectl apply after changing the image, adding env C, dropping env B and the sidecar.
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}},
        "spec": {"replicas": 3, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}],
            "containers": [
                {"$setElementOrder/env": [{"name": "C"}, {"name": "A"}],
                 "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}],
                 "image": "nginx:1.25", "name": "nginx"},
                {"$patch": "delete", "name": "sidecar"}
            ]}}}
    });
    let out = smp(&deployment(), patch);
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{}\n"
    );
    let containers = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["image"], "nginx:1.25");
    assert_eq!(containers[0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        containers[0]["env"],
        json!([{"name": "C", "value": "3"}, {"name": "A", "value": "1"}])
    );
    // No directive may leak into the stored object.
    assert!(!out.to_string().contains('$'), "{out}");
}

#[test]
fn smp_set_element_order_reorders_and_keeps_server_only_items() {
    let doc = json!({"kind": "Pod", "spec": {"containers": [
        {"name": "a"}, {"name": "injected"}, {"name": "b"}]}});
    let out = smp(
        &doc,
        json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}),
    );
    let names: Vec<&str> = out["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    // mergeSortedSlice: a server-only item goes before a patch item that comes after it live.
    assert_eq!(names, ["injected", "b", "a"]);
}

#[test]
fn smp_null_deletes_and_atomic_lists_replace() {
    let patch = json!({"metadata": {"labels": {"tier": null}},
        "spec": {"template": {"spec": {"tolerations": [{"key": "other", "operator": "Exists"}]}}}});
    let out = smp(&deployment(), patch);
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        out["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "other", "operator": "Exists"}])
    );
}

#[test]
fn smp_finalizers_merge_as_a_set_and_delete_from_primitive_list() {
    let out = smp(
        &deployment(),
        json!({"metadata": {"finalizers": ["b", "a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b", "a"]));
    let out = smp(
        &out,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
}

#[test]
fn smp_retain_keys_clears_other_union_members() {
    // kubectl apply switching the strategy to Recreate.
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}});
    let out = smp(&deployment(), patch);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    let contradictory =
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}});
    let err = apply_strategic_merge_patch(&deployment(), &contradictory, "Deployment").unwrap_err();
    assert_eq!(err, PatchError::RetainKeysMismatch);
}

#[test]
fn smp_patch_replace_directive_in_maps_and_lists() {
    let out = smp(
        &deployment(),
        json!({"metadata": {"labels": {"$patch": "replace", "only": "x"}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"only": "x"}));
    let out = smp(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "new", "image": "i"}]}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "new", "image": "i"}])
    );
    let out = smp(
        &deployment(),
        json!({"spec": {"strategy": {"$patch": "delete"}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({}));
}

#[test]
fn smp_service_ports_merge_by_port_and_node_conditions_by_type() {
    let svc = json!({"kind": "Service", "spec": {"ports": [
        {"name": "http", "port": 80, "targetPort": 8080}, {"name": "https", "port": 443}]}});
    let out = smp(
        &svc,
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
    );
    assert_eq!(
        out["spec"]["ports"][0],
        json!({"name": "http", "port": 80, "targetPort": 9090})
    );
    assert_eq!(out["spec"]["ports"][1]["port"], 443);

    let node = json!({"kind": "Node", "status": {"conditions": [
        {"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}]}});
    let out = smp(
        &node,
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}])
    );
}

#[test]
fn smp_errors_have_kubernetes_codes() {
    let doc = deployment();
    let cases = [
        (
            json!({"metadata": {"labels": {"$patch": "frobnicate"}}}),
            400,
        ),
        (
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}}),
            422,
        ),
        (
            json!({"spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}}),
            422,
        ),
        (json!({"spec": {"strategy": {"$retainKeys": "type"}}}), 400),
        (json!("not an object"), 400),
    ];
    for (patch, code) in cases {
        let err = apply_strategic_merge_patch(&doc, &patch, "Deployment").unwrap_err();
        assert_eq!(err.status_code(), code, "{patch}: {err}");
    }
    let err = apply_strategic_merge_patch(&doc, &json!({}), "Widget").unwrap_err();
    assert_eq!(err.status_code(), 415);
}

#[test]
fn smp_adds_new_subtrees_without_directives_or_nulls() {
    let doc = json!({"kind": "Pod", "metadata": {"name": "p"}});
    let out = smp(
        &doc,
        json!({"metadata": {"labels": {"a": "1", "b": null}},
        "spec": {"$setElementOrder/containers": [{"name": "c"}], "containers": [{"name": "c", "image": "i"}]}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"a": "1"}));
    assert_eq!(
        out["spec"],
        json!({"containers": [{"name": "c", "image": "i"}]})
    );
}

#[test]
fn smp_keeps_key_order_of_live_objects() {
    let out = smp(
        &deployment(),
        json!({"metadata": {"labels": {"app": "web2"}}}),
    );
    let keys: Vec<&String> = out["metadata"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "namespace", "labels", "finalizers"]);
}

#[test]
fn smp_kubectl_apply_replacing_a_container_port() {
    // kubectl apply after changing containerPort 80 to 8080 in the manifest.
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
        "containers": [{"name": "nginx",
            "$setElementOrder/ports": [{"containerPort": 8080}],
            "ports": [{"containerPort": 8080}, {"$patch": "delete", "containerPort": 80}]}]}}}});
    let out = smp(&deployment(), patch);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 8080}])
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][1]["name"],
        "sidecar"
    );
}

#[test]
fn smp_kubectl_rollout_restart_adds_a_template_annotation() {
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-11-22T21:00:00Z"}}}}});
    let out = smp(&deployment(), patch);
    let template = &out["spec"]["template"];
    assert_eq!(template["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        template["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "2026-11-22T21:00:00Z"
    );
    assert_eq!(template["spec"], deployment()["spec"]["template"]["spec"]);
}

#[test]
fn smp_pod_status_conditions_merge_by_type_with_element_order() {
    let pod = json!({"kind": "Pod", "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]}});
    // The shape of the kubelet's status patch.
    let patch = json!({"status": {
        "$setElementOrder/conditions": [{"type": "Initialized"}, {"type": "Ready"}, {"type": "PodScheduled"}],
        "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
        "phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}]}});
    let out = smp(&pod, patch);
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"},
               {"type": "PodScheduled", "status": "True"}])
    );
    assert_eq!(out["status"]["phase"], "Running");
    assert_eq!(out["status"]["podIPs"], json!([{"ip": "10.244.0.5"}]));
}

#[test]
fn smp_new_map_with_delete_directive_is_dropped() {
    let doc = json!({"kind": "Pod", "metadata": {"name": "p"}});
    let out = smp(&doc, json!({"metadata": {"labels": {"$patch": "delete"}}}));
    assert_eq!(out, doc);
}

#[test]
fn smp_retain_keys_in_a_volume_switches_its_source() {
    // kubectl apply after changing a volume from emptyDir to configMap.
    let pod = json!({"kind": "Pod", "spec": {"containers": [{"name": "c", "image": "i"}],
        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "other", "emptyDir": {}}]}});
    let patch = json!({"spec": {"$setElementOrder/volumes": [{"name": "data"}, {"name": "other"}],
        "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cfg"}, "name": "data"}]}});
    let out = smp(&pod, patch);
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": "data", "configMap": {"name": "cfg"}}, {"name": "other", "emptyDir": {}}])
    );
}

#[test]
fn smp_refuses_a_patch_list_out_of_its_element_order() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"name": "other", "image": "x"}]}}}});
    let err = apply_strategic_merge_patch(&deployment(), &patch, "Deployment").unwrap_err();
    assert_eq!(err.status_code(), 400, "{err}");
}

#[test]
fn long_lists_merge_by_key_in_one_pass() {
    // Thousands of env vars: a quadratic merge would make this crawl; a keyed one does not.
    const N: usize = 2000;
    let env: Vec<Value> = (0..N)
        .map(|i| json!({"name": format!("V{i}"), "value": "a"}))
        .collect();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i", "env": env}]}});
    let mut patch_env: Vec<Value> = (1..N)
        .rev()
        .map(|i| json!({"name": format!("V{i}"), "value": "b"}))
        .collect();
    patch_env.push(json!({"$patch": "delete", "name": "V0"}));
    let order: Vec<Value> = (1..N)
        .rev()
        .map(|i| json!({"name": format!("V{i}")}))
        .collect();
    let patch = json!({"spec": {"containers": [{"name": "c", "$setElementOrder/env": order, "env": patch_env}]}});
    let out = smp(&pod, patch);
    let env = out["spec"]["containers"][0]["env"].as_array().unwrap();
    assert_eq!(env.len(), N - 1);
    assert_eq!(env[0], json!({"name": format!("V{}", N - 1), "value": "b"}));
    assert_eq!(env[N - 2], json!({"name": "V1", "value": "b"}));

    let applied = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i", "env": out["spec"]["containers"][0]["env"]}]}});
    let created = server_side_apply(None, &applied, "m", false).unwrap();
    let again = server_side_apply(Some(&created), &applied, "m", false).unwrap();
    assert_eq!(again["spec"], created["spec"]);
}
