//! Table tests per kind: a good object passes, each bad one yields exactly the expected
//! (field, reason) causes.

use super::*;
use serde_json::json;

use CauseType::*;

#[path = "update_tests.rs"]
mod update_and_strict;

#[path = "pod_tests.rs"]
mod pods;

fn pairs(causes: &[FieldCause]) -> Vec<(String, CauseType)> {
    causes.iter().map(|c| (c.field.clone(), c.reason)).collect()
}

/// (case name, merge patch making the good object bad, expected (field, reason) causes).
type Case<'a> = (&'a str, Value, Vec<(&'a str, CauseType)>);

/// Applies `edit` to a copy of `base` and checks the causes.
fn check(kind: &str, base: &Value, cases: Vec<Case>) {
    assert_eq!(
        validate(kind, base),
        vec![],
        "{kind}: the good object must be valid"
    );
    for (name, patch, expected) in cases {
        let mut obj = base.clone();
        json_patch::merge(&mut obj, &patch);
        let got = validate(kind, &obj);
        let expected: Vec<(String, CauseType)> = expected
            .into_iter()
            .map(|(f, r)| (f.to_string(), r))
            .collect();
        assert_eq!(pairs(&got), expected, "{kind}/{name}: {got:#?}");
    }
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "volumes": [{"name": "data", "emptyDir": {}}],
            "containers": [{"name": "nginx", "image": "nginx:1.25",
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "MODE", "value": "prod"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
                "livenessProbe": {"httpGet": {"path": "/", "port": "http"}}}]}})
}

fn container(extra: Value) -> Value {
    let mut c = pod()["spec"]["containers"][0].clone();
    json_patch::merge(&mut c, &extra);
    c
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}},
                "spec": {"restartPolicy": "Always", "containers": [{"name": "nginx", "image": "nginx"}]}}}})
}

#[test]
fn deployments() {
    let cases = vec![
        (
            "no selector",
            json!({"spec": {"selector": null}}),
            // A nil selector selects nothing, so Kubernetes also reports the template.
            vec![
                ("spec.selector", FieldValueRequired),
                ("spec.template.metadata.labels", FieldValueInvalid),
            ],
        ),
        (
            "empty selector",
            json!({"spec": {"selector": {"matchLabels": null}}}),
            vec![("spec.selector", FieldValueInvalid)],
        ),
        (
            "selector mismatch",
            json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}}),
            vec![("spec.template.metadata.labels", FieldValueInvalid)],
        ),
        (
            "expressions",
            json!({"spec": {"selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}]}}}),
            vec![],
        ),
        (
            "bad expression",
            json!({"spec": {"selector": {"matchExpressions": [{"key": "tier", "operator": "In"}]}}}),
            vec![(
                "spec.selector.matchExpressions[0].values",
                FieldValueRequired,
            )],
        ),
        (
            "negative replicas",
            json!({"spec": {"replicas": -1}}),
            vec![("spec.replicas", FieldValueInvalid)],
        ),
        (
            "strategy type",
            json!({"spec": {"strategy": {"type": "Canary", "rollingUpdate": null}}}),
            vec![("spec.strategy", FieldValueNotSupported)],
        ),
        (
            "recreate with rolling",
            json!({"spec": {"strategy": {"type": "Recreate"}}}),
            vec![("spec.strategy.rollingUpdate", FieldValueForbidden)],
        ),
        (
            "both zero",
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}}}),
            vec![(
                "spec.strategy.rollingUpdate.maxUnavailable",
                FieldValueInvalid,
            )],
        ),
        (
            "bad percent",
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "x", "maxUnavailable": "120%"}}}}),
            vec![
                ("spec.strategy.rollingUpdate.maxSurge", FieldValueInvalid),
                (
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    FieldValueInvalid,
                ),
            ],
        ),
        (
            "restart policy",
            json!({"spec": {"template": {"spec": {"restartPolicy": "Never"}}}}),
            vec![("spec.template.spec.restartPolicy", FieldValueNotSupported)],
        ),
        (
            "template containers",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}}),
            vec![("spec.template.spec.containers[0].image", FieldValueRequired)],
        ),
    ];
    check("Deployment", &deployment(), cases);
    let mut mismatch = deployment();
    mismatch["spec"]["selector"]["matchLabels"]["app"] = json!("other");
    let causes = validate("Deployment", &mismatch);
    assert_eq!(causes[0].message, "Invalid value: map[string]string{\"app\":\"web\", \"tier\":\"fe\"}: `selector` does not match template `labels`");
    let mut zero = deployment();
    zero["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": 0, "maxUnavailable": 0});
    let causes = validate("Deployment", &zero);
    assert_eq!(causes[0].message, "Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0");
    zero["spec"]["strategy"] = json!({"type": "Canary"});
    let causes = validate("Deployment", &zero);
    assert_eq!(causes[0].message, "Unsupported value: apps.DeploymentStrategy{Type:\"Canary\", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: \"Recreate\", \"RollingUpdate\"");
}

#[test]
fn replica_sets() {
    let mut rs = deployment();
    rs["kind"] = json!("ReplicaSet");
    rs["spec"].as_object_mut().unwrap().shift_remove("strategy");
    let cases = vec![
        (
            "mismatch",
            json!({"spec": {"selector": {"matchLabels": {"app": "x"}}}}),
            vec![("spec.template.metadata.labels", FieldValueInvalid)],
        ),
        (
            "replicas",
            json!({"spec": {"replicas": -3}}),
            vec![("spec.replicas", FieldValueInvalid)],
        ),
    ];
    check("ReplicaSet", &rs, cases);
}

#[test]
fn services() {
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "ClusterIP", "selector": {"app": "web"}, "clusterIP": "10.96.0.10",
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                      {"name": "https", "port": 443, "targetPort": "https"}]}});
    let cases = vec![
        (
            "dns1035 name",
            json!({"metadata": {"name": "1web"}}),
            vec![("metadata.name", FieldValueInvalid)],
        ),
        (
            "no ports",
            json!({"spec": {"ports": []}}),
            vec![("spec.ports", FieldValueRequired)],
        ),
        (
            "headless without ports",
            json!({"spec": {"ports": [], "clusterIP": "None"}}),
            vec![],
        ),
        (
            "external name",
            json!({"spec": {"type": "ExternalName", "ports": [], "clusterIP": null, "externalName": "example.com"}}),
            vec![],
        ),
        (
            "external name missing",
            json!({"spec": {"type": "ExternalName", "clusterIP": null}}),
            vec![("spec.externalName", FieldValueRequired)],
        ),
        (
            "type",
            json!({"spec": {"type": "Magic"}}),
            vec![("spec.type", FieldValueNotSupported)],
        ),
        (
            "cluster ip",
            json!({"spec": {"clusterIP": "10.96.0"}}),
            vec![("spec.clusterIP", FieldValueInvalid)],
        ),
        (
            "ports",
            json!({"spec": {"ports": [{"port": 0}, {"name": "http", "port": 80, "targetPort": 70000, "nodePort": 30000}, {"name": "http", "port": 81}]}}),
            vec![
                ("spec.ports[0].name", FieldValueRequired),
                ("spec.ports[0].port", FieldValueInvalid),
                ("spec.ports[1].targetPort", FieldValueInvalid),
                ("spec.ports[1].nodePort", FieldValueForbidden),
                ("spec.ports[2].name", FieldValueDuplicate),
            ],
        ),
        (
            "duplicate port",
            json!({"spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80, "protocol": "TCP"}]}}),
            vec![("spec.ports[1]", FieldValueDuplicate)],
        ),
        (
            "headless node port",
            json!({"spec": {"type": "NodePort", "clusterIP": "None"}}),
            vec![("spec.clusterIP", FieldValueInvalid)],
        ),
        (
            "affinity",
            json!({"spec": {"sessionAffinity": "Sticky"}}),
            vec![("spec.sessionAffinity", FieldValueNotSupported)],
        ),
    ];
    check("Service", &svc, cases);
}

#[test]
fn config_maps_and_secrets() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
        "data": {"game.properties": "x=1", "KEY_1": "v"}, "binaryData": {"blob": "AAEC"}});
    let cases = vec![
        (
            "bad key",
            json!({"data": {"bad key": "v"}}),
            vec![("data[bad key]", FieldValueInvalid)],
        ),
        (
            "dup binary",
            json!({"data": {"blob": "v"}}),
            vec![("data[blob]", FieldValueInvalid)],
        ),
        (
            "too big",
            json!({"data": {"big": "x".repeat(1024 * 1024 + 1)}}),
            vec![("", FieldValueTooLong)],
        ),
    ];
    check("ConfigMap", &cm, cases);
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"},
        "type": "Opaque", "data": {"password": "aHVudGVyMg=="}});
    let cases = vec![
        (
            "key",
            json!({"data": {"..x": "YQ=="}}),
            vec![("data[..x]", FieldValueInvalid)],
        ),
        (
            "not base64",
            json!({"data": {"password": "hunter2!"}}),
            vec![("data[password]", FieldValueInvalid)],
        ),
        (
            "tls",
            json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "YQ=="}}),
            vec![("data[tls.key]", FieldValueRequired)],
        ),
    ];
    check("Secret", &secret, cases);
}

#[test]
fn cluster_kinds() {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}, "spec": {"finalizers": ["kubernetes"]}});
    check(
        "Namespace",
        &ns,
        vec![
            (
                "subdomain is not a label",
                json!({"metadata": {"name": "team.a"}}),
                vec![("metadata.name", FieldValueInvalid)],
            ),
            (
                "namespaced",
                json!({"metadata": {"namespace": "default"}}),
                vec![("metadata.namespace", FieldValueForbidden)],
            ),
            (
                "finalizer",
                json!({"spec": {"finalizers": ["foo"]}}),
                vec![("spec.finalizers[0]", FieldValueInvalid)],
            ),
        ],
    );
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1.local"},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"], "taints": [{"key": "k", "effect": "NoSchedule"}]}});
    check(
        "Node",
        &node,
        vec![
            (
                "cidr",
                json!({"spec": {"podCIDR": "10.244.1.0"}}),
                vec![("spec.podCIDR", FieldValueInvalid)],
            ),
            (
                "taint",
                json!({"spec": {"taints": [{"key": "k", "effect": ""}, {"key": "k2", "effect": "Never"}]}}),
                vec![
                    ("spec.taints[0].effect", FieldValueRequired),
                    ("spec.taints[1].effect", FieldValueNotSupported),
                ],
            ),
        ],
    );
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}});
    check(
        "Lease",
        &lease,
        vec![(
            "duration",
            json!({"spec": {"leaseDurationSeconds": 0}}),
            vec![("spec.leaseDurationSeconds", FieldValueInvalid)],
        )],
    );
    let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.123", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"}, "reason": "Started", "type": "Normal"});
    check(
        "Event",
        &event,
        vec![
            (
                "namespace mismatch",
                json!({"involvedObject": {"namespace": "other"}}),
                vec![("involvedObject.namespace", FieldValueInvalid)],
            ),
            (
                "new-style event about a namespaced object",
                json!({"eventTime": "2026-11-22T21:00:00.000000Z", "involvedObject": {"namespace": "other"}}),
                vec![],
            ),
            (
                "new-style event about a cluster object outside default",
                json!({"metadata": {"namespace": "team"}, "eventTime": "2026-11-22T21:00:00.000000Z",
                    "involvedObject": {"kind": "Node", "namespace": null}}),
                vec![("involvedObject.namespace", FieldValueInvalid)],
            ),
            (
                "cluster object in default",
                json!({"involvedObject": {"kind": "Node", "namespace": null}}),
                vec![],
            ),
        ],
    );
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "default"}});
    check(
        "ServiceAccount",
        &sa,
        vec![(
            "name",
            json!({"metadata": {"name": "A"}}),
            vec![("metadata.name", FieldValueInvalid)],
        )],
    );
}

#[test]
fn endpoints_and_slices() {
    let ep = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]});
    check(
        "Endpoints",
        &ep,
        vec![(
            "ip",
            json!({"subsets": [{"addresses": [{"ip": "nope"}], "ports": [{"port": 0}]}]}),
            vec![
                ("subsets[0].addresses[0].ip", FieldValueInvalid),
                ("subsets[0].ports[0].port", FieldValueInvalid),
            ],
        )],
    );
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "web-abc", "namespace": "default"},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.244.0.5"]}], "ports": [{"name": "http", "port": 80}]});
    check(
        "EndpointSlice",
        &slice,
        vec![
            (
                "type",
                json!({"addressType": "IPX"}),
                vec![("addressType", FieldValueNotSupported)],
            ),
            (
                "address",
                json!({"endpoints": [{"addresses": ["x"]}, {"addresses": []}]}),
                vec![
                    ("endpoints[0].addresses[0]", FieldValueInvalid),
                    ("endpoints[1].addresses", FieldValueRequired),
                ],
            ),
        ],
    );
}

#[test]
fn bindings_and_scales() {
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web-1", "namespace": "default"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}});
    check(
        "Binding",
        &binding,
        vec![(
            "no target",
            json!({"target": {"name": null, "kind": "Pod"}}),
            vec![
                ("target.kind", FieldValueNotSupported),
                ("target.name", FieldValueRequired),
            ],
        )],
    );
    let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 3}});
    check(
        "Scale",
        &scale,
        vec![(
            "negative",
            json!({"spec": {"replicas": -1}}),
            vec![("spec.replicas", FieldValueInvalid)],
        )],
    );
}
