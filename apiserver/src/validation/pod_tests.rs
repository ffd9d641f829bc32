//! Pod validation table and message texts.

use super::*;

#[test]
fn pods() {
    let cases = vec![
        (
            "bad name",
            json!({"metadata": {"name": "Foo_Bar"}}),
            vec![("metadata.name", FieldValueInvalid)],
        ),
        (
            "no name",
            json!({"metadata": {"name": null}}),
            vec![("metadata.name", FieldValueRequired)],
        ),
        (
            "generateName",
            json!({"metadata": {"name": null, "generateName": "web-"}}),
            vec![],
        ),
        (
            "bad label",
            json!({"metadata": {"labels": {"bad key": "v", "k": "bad value!"}}}),
            vec![
                ("metadata.labels", FieldValueInvalid),
                ("metadata.labels", FieldValueInvalid),
            ],
        ),
        (
            "no containers",
            json!({"spec": {"containers": []}}),
            vec![("spec.containers", FieldValueRequired)],
        ),
        (
            "duplicate containers",
            json!({"spec": {"containers": [container(json!({})), container(json!({}))]}}),
            vec![("spec.containers[1].name", FieldValueDuplicate)],
        ),
        (
            "duplicate across init",
            json!({"spec": {"initContainers": [{"name": "nginx", "image": "busybox"}]}}),
            vec![("spec.initContainers[0].name", FieldValueDuplicate)],
        ),
        (
            "container name",
            json!({"spec": {"containers": [container(json!({"name": "Web.1"}))]}}),
            vec![("spec.containers[0].name", FieldValueInvalid)],
        ),
        (
            "no image",
            json!({"spec": {"containers": [container(json!({"image": null}))]}}),
            vec![("spec.containers[0].image", FieldValueRequired)],
        ),
        (
            "bad ports",
            json!({"spec": {"containers": [container(json!({"ports": [
                {"name": "a-very-long-port-name", "containerPort": 70000, "protocol": "ICMP"},
                {"containerPort": 0, "hostPort": 80}]}))]}}),
            vec![
                ("spec.containers[0].ports[0].name", FieldValueInvalid),
                (
                    "spec.containers[0].ports[0].containerPort",
                    FieldValueInvalid,
                ),
                (
                    "spec.containers[0].ports[0].protocol",
                    FieldValueNotSupported,
                ),
                (
                    "spec.containers[0].ports[1].containerPort",
                    FieldValueRequired,
                ),
            ],
        ),
        (
            "init container probes",
            json!({"spec": {"initContainers": [{"name": "init", "image": "busybox",
                "livenessProbe": {"exec": {"command": ["true"]}}},
                {"name": "sidecar", "image": "envoy", "restartPolicy": "Always",
                 "readinessProbe": {"exec": {"command": []}}}]}}),
            vec![
                ("spec.initContainers[0].livenessProbe", FieldValueForbidden),
                (
                    "spec.initContainers[1].readinessProbe.exec.command",
                    FieldValueRequired,
                ),
            ],
        ),
        (
            "regular container restartPolicy and liveness threshold",
            json!({"spec": {"containers": [container(json!({"restartPolicy": "Always",
                "livenessProbe": {"successThreshold": 2}}))]}}),
            vec![
                (
                    "spec.containers[0].livenessProbe.successThreshold",
                    FieldValueInvalid,
                ),
                ("spec.containers[0].restartPolicy", FieldValueForbidden),
            ],
        ),
        (
            "ephemeral containers",
            json!({"spec": {"ephemeralContainers": [{"name": "debug", "image": "busybox",
                "ports": [{"containerPort": 80}], "targetContainerName": "nope"}]}}),
            vec![
                ("spec.ephemeralContainers[0].ports", FieldValueForbidden),
                (
                    "spec.ephemeralContainers[0].targetContainerName",
                    FieldValueNotFound,
                ),
            ],
        ),
        (
            "host port conflict",
            json!({"spec": {"containers": [
                container(json!({"ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}]})),
                {"name": "two", "image": "i", "ports": [{"containerPort": 81, "hostPort": 8080, "protocol": "TCP"}]}]}}),
            vec![("spec.containers[1].ports[0].hostPort", FieldValueDuplicate)],
        ),
        (
            "padded image",
            json!({"spec": {"containers": [container(json!({"image": " nginx"}))]}}),
            vec![("spec.containers[0].image", FieldValueInvalid)],
        ),
        (
            "toleration value",
            json!({"spec": {"tolerations": [{"key": "k", "value": "bad value!"}]}}),
            vec![("spec.tolerations[0].operator", FieldValueInvalid)],
        ),
        (
            "policies",
            json!({"spec": {"restartPolicy": "Sometimes", "dnsPolicy": ""}}),
            vec![
                ("spec.restartPolicy", FieldValueNotSupported),
                ("spec.dnsPolicy", FieldValueRequired),
            ],
        ),
        (
            "resources",
            json!({"spec": {"containers": [container(json!({"resources": {
                "requests": {"cpu": "2", "memory": "lots"}, "limits": {"cpu": "1", "gpu": "1"}}}))]}}),
            vec![
                (
                    "spec.containers[0].resources.limits[gpu]",
                    FieldValueInvalid,
                ),
                (
                    "spec.containers[0].resources.requests[memory]",
                    FieldValueInvalid,
                ),
                (
                    "spec.containers[0].resources.requests[cpu]",
                    FieldValueInvalid,
                ),
            ],
        ),
        (
            "volumes",
            json!({"spec": {"volumes": [{"name": "data", "emptyDir": {}}, {"name": "data"},
                {"name": "x", "emptyDir": {}, "hostPath": {"path": "/"}}]}}),
            vec![
                ("spec.volumes[1].name", FieldValueDuplicate),
                ("spec.volumes[1]", FieldValueRequired),
                ("spec.volumes[2].hostPath", FieldValueForbidden),
            ],
        ),
        (
            "mount of missing volume",
            json!({"spec": {"containers": [container(json!({"volumeMounts": [
                {"name": "nope", "mountPath": "/a"}, {"name": "data", "mountPath": "/a"}]}))]}}),
            vec![
                (
                    "spec.containers[0].volumeMounts[0].name",
                    FieldValueNotFound,
                ),
                (
                    "spec.containers[0].volumeMounts[1].mountPath",
                    FieldValueInvalid,
                ),
            ],
        ),
        (
            "env",
            json!({"spec": {"containers": [container(json!({"env": [{"name": "1X"}, {"name": ""}]}))]}}),
            vec![
                ("spec.containers[0].env[0].name", FieldValueInvalid),
                ("spec.containers[0].env[1].name", FieldValueRequired),
            ],
        ),
        (
            "probe without handler",
            json!({"spec": {"containers": [container(json!({"livenessProbe": {"httpGet": null, "periodSeconds": 5}}))]}}),
            vec![("spec.containers[0].livenessProbe", FieldValueRequired)],
        ),
        (
            "probe with two handlers",
            json!({"spec": {"containers": [container(json!({"readinessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}}))]}}),
            vec![(
                "spec.containers[0].readinessProbe.tcpSocket",
                FieldValueForbidden,
            )],
        ),
        (
            "lifecycle hooks",
            json!({"spec": {"terminationGracePeriodSeconds": 10, "containers": [container(json!({"lifecycle": {
                "postStart": {"exec": {"command": ["true"]}, "sleep": {"seconds": 1}},
                "preStop": {"sleep": {"seconds": 11}}}}))]}}),
            vec![
                (
                    "spec.containers[0].lifecycle.postStart.sleep",
                    FieldValueForbidden,
                ),
                (
                    "spec.containers[0].lifecycle.preStop.sleep",
                    FieldValueInvalid,
                ),
            ],
        ),
        (
            "lifecycle hook without handler",
            json!({"spec": {"containers": [container(json!({"lifecycle": {"preStop": {"httpGet": null}}}))]}}),
            vec![("spec.containers[0].lifecycle.preStop", FieldValueRequired)],
        ),
        (
            "lifecycle hooks that are valid",
            json!({"spec": {"containers": [container(json!({"lifecycle": {
                "postStart": {"httpGet": {"port": 8080, "path": "/started"}},
                "preStop": {"sleep": {"seconds": 30}}}}))]}}),
            vec![],
        ),
        (
            "lifecycle hook exec without a command",
            json!({"spec": {"containers": [container(json!({"lifecycle": {"postStart": {"exec": {}}}}))]}}),
            vec![(
                "spec.containers[0].lifecycle.postStart.exec.command",
                FieldValueRequired,
            )],
        ),
        (
            "tolerations",
            json!({"spec": {"tolerations": [{"operator": "Equal", "value": "x"},
                {"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}]}}),
            vec![
                ("spec.tolerations[0].operator", FieldValueInvalid),
                ("spec.tolerations[1].effect", FieldValueInvalid),
            ],
        ),
    ];
    check("Pod", &pod(), cases);
}

#[test]
fn a_prestop_sleep_longer_than_the_grace_period_reads_like_kubernetes() {
    let mut bad = pod();
    bad["spec"]["terminationGracePeriodSeconds"] = json!(5);
    bad["spec"]["containers"][0]["lifecycle"] = json!({"preStop": {"sleep": {"seconds": 6}}});
    let causes = validate("Pod", &bad);
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert_eq!(
        causes[0].message,
        "Invalid value: 6: must be non-negative and less than terminationGracePeriodSeconds (5)"
    );
}

#[test]
fn messages_read_like_kubernetes() {
    let mut bad = pod();
    bad["metadata"]["name"] = json!("Foo_Bar");
    bad["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(0);
    bad["spec"]["restartPolicy"] = json!("Sometimes");
    let causes = validate("Pod", &bad);
    assert_eq!(causes[0].message, "Invalid value: \"Foo_Bar\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
    assert_eq!(causes[1].message, "Required value");
    assert_eq!(
        causes[2].message,
        "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
    );
    assert_eq!(
        serde_json::to_value(&causes[1]).unwrap(),
        json!({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers[0].ports[0].containerPort"})
    );
    let message = invalid_message("Pod", "Foo_Bar", &causes[1..2]);
    assert_eq!(
        message,
        "Pod \"Foo_Bar\" is invalid: spec.containers[0].ports[0].containerPort: Required value"
    );
    let both = invalid_message("Pod", "x", &causes[1..3]);
    assert!(both.starts_with("Pod \"x\" is invalid: [spec.containers[0].ports[0].containerPort: Required value, spec.restartPolicy: Unsupported"), "{both}");
}
