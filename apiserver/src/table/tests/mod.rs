//! Fixture object → expected cells, per kind, at a fixed "now".

mod pods;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::*;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-01-10T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// An RFC 3339 time `secs` seconds before [`now`].
fn ago(secs: i64) -> String {
    (now() - Duration::seconds(secs))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn cells(plural: &str, obj: Value) -> Vec<Value> {
    let table = to_table_at(now(), plural, &[obj], IncludeObject::None, None);
    table["rows"][0]["cells"].as_array().unwrap().clone()
}

fn column_names(plural: &str) -> Vec<(String, i64)> {
    let table = to_table_at(now(), plural, &[], IncludeObject::None, None);
    let defs = table["columnDefinitions"].as_array().unwrap();
    defs.iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["priority"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn meta(name: &str, age_secs: i64) -> Value {
    json!({ "name": name, "namespace": "default", "creationTimestamp": ago(age_secs), "resourceVersion": "7" })
}

fn running(name: &str, ready: bool, restarts: i64) -> Value {
    json!({ "name": name, "ready": ready, "restartCount": restarts, "state": { "running": { "startedAt": ago(60) } } })
}

fn pod(containers: &[&str], status: Value) -> Value {
    let specs: Vec<Value> = containers
        .iter()
        .map(|c| json!({ "name": c, "image": "busybox" }))
        .collect();
    json!({ "apiVersion": "v1", "kind": "Pod", "metadata": meta("web", 300), "spec": { "containers": specs }, "status": status })
}

fn template() -> Value {
    json!({ "spec": { "containers": [{ "name": "nginx", "image": "nginx:1.25" }, { "name": "log", "image": "busybox" }] } })
}

#[test]
fn deployment_cells() {
    let d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web", 7200),
        "spec": { "replicas": 3, "selector": { "matchLabels": { "app": "web", "tier": "fe" } }, "template": template() },
        "status": { "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2 }
    });
    assert_eq!(
        cells("deployments", d),
        json!([
            "web",
            "2/3",
            3,
            2,
            "120m",
            "nginx,log",
            "nginx:1.25,busybox",
            "app=web,tier=fe"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let names: Vec<String> = column_names("deployments")
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
}

#[test]
fn replicaset_cells_with_expression_selector() {
    let rs = json!({
        "metadata": meta("web-5d8f", 30),
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" }, "matchExpressions": [{ "key": "env", "operator": "In", "values": ["prod", "dev"] }] },
            "template": template()
        },
        "status": { "replicas": 2, "readyReplicas": 1 }
    });
    assert_eq!(
        cells("replicasets", rs),
        json!([
            "web-5d8f",
            2,
            2,
            1,
            "30s",
            "nginx,log",
            "nginx:1.25,busybox",
            "app=web,env in (dev,prod)"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
}

#[test]
fn service_cells_per_type() {
    let svc = |ty: &str, ports: Value| {
        json!({
            "metadata": meta("web", 86400 * 3),
            "spec": { "type": ty, "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": ports, "selector": { "app": "web" } }
        })
    };
    assert_eq!(
        cells(
            "services",
            svc(
                "ClusterIP",
                json!([{ "port": 80, "protocol": "TCP" }, { "port": 53, "protocol": "UDP" }])
            )
        ),
        json!([
            "web",
            "ClusterIP",
            "10.96.0.10",
            "<none>",
            "80/TCP,53/UDP",
            "3d",
            "app=web"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let np = cells(
        "services",
        svc(
            "NodePort",
            json!([{ "port": 80, "nodePort": 30080, "protocol": "TCP" }]),
        ),
    );
    assert_eq!(np[4], "80:30080/TCP");
    let lb = cells("services", svc("LoadBalancer", json!([])));
    assert_eq!(lb[3..5], [json!("<pending>"), json!("<none>")]);
    let mut ext = svc("ExternalName", json!([]));
    ext["spec"] = json!({ "type": "ExternalName", "externalName": "example.com" });
    assert_eq!(
        cells("services", ext)[2..4],
        [json!("<none>"), json!("example.com")]
    );
}

#[test]
fn node_cells() {
    let n = json!({
        "metadata": { "name": "node-1", "creationTimestamp": ago(86400 * 10), "labels": { "node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker" } },
        "spec": { "unschedulable": true },
        "status": {
            "conditions": [{ "type": "MemoryPressure", "status": "False" }, { "type": "Ready", "status": "True" }],
            "addresses": [{ "type": "Hostname", "address": "node-1" }, { "type": "InternalIP", "address": "192.168.1.10" }],
            "nodeInfo": { "kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "6.1.0", "containerRuntimeVersion": "" }
        }
    });
    assert_eq!(
        cells("nodes", n),
        json!([
            "node-1",
            "Ready,SchedulingDisabled",
            "control-plane,worker",
            "10d",
            "v1.32.0",
            "192.168.1.10",
            "<none>",
            "Debian GNU/Linux 12 (bookworm)",
            "6.1.0",
            "<unknown>"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let bare = json!({ "metadata": { "name": "n2" } });
    assert_eq!(
        cells("nodes", bare)[1..4],
        [json!("Unknown"), json!("<none>"), json!("<unknown>")]
    );
}

#[test]
fn namespace_cells() {
    let ns = json!({ "metadata": { "name": "default", "creationTimestamp": ago(59) }, "status": { "phase": "Active" } });
    assert_eq!(
        cells("namespaces", ns),
        [json!("default"), json!("Active"), json!("59s")]
    );
}

#[test]
fn core_event_cells() {
    let ev = json!({
        "apiVersion": "v1", "kind": "Event", "metadata": meta("web.17a", 600),
        "involvedObject": { "kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}" },
        "reason": "Pulled", "message": " Successfully pulled image \n", "type": "Normal",
        "source": { "component": "kubelet", "host": "node-1" },
        "firstTimestamp": ago(600), "lastTimestamp": ago(120), "count": 3
    });
    assert_eq!(
        cells("events", ev),
        json!([
            "2m",
            "Normal",
            "Pulled",
            "pod/web",
            "spec.containers{a}",
            "kubelet, node-1",
            "Successfully pulled image",
            "10m",
            3,
            "web.17a"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let names: Vec<(String, i64)> = column_names("events");
    assert_eq!(names[0], ("Last Seen".to_owned(), 0));
    assert_eq!(names[9], ("Name".to_owned(), 1));
}

#[test]
fn new_api_event_uses_event_time_series_and_reporting_controller() {
    let ev = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": meta("e1", 600),
        "regarding": { "kind": "Node", "name": "node-1" }, "note": "rebooted", "reason": "Rebooted", "type": "Warning",
        "eventTime": ago(3600), "reportingController": "minik8s/nodelet", "reportingInstance": "",
        "series": { "count": 4, "lastObservedTime": ago(30) }
    });
    assert_eq!(
        cells("events", ev),
        json!([
            "30s",
            "Warning",
            "Rebooted",
            "node/node-1",
            "",
            "minik8s/nodelet",
            "rebooted",
            "60m",
            4,
            "e1"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let single = json!({ "metadata": meta("e2", 5), "involvedObject": { "kind": "Pod" }, "eventTime": ago(5) });
    let c = cells("events", single);
    assert_eq!(
        (c[0].clone(), c[3].clone(), c[8].clone()),
        (json!("5s"), json!("pod"), json!(1))
    );
}

#[test]
fn config_kinds_cells() {
    let cm = json!({ "metadata": meta("cfg", 10), "data": { "a": "1", "b": "2" }, "binaryData": { "c": "AA==" } });
    assert_eq!(
        cells("configmaps", cm),
        [json!("cfg"), json!(3), json!("10s")]
    );
    let s = json!({ "metadata": meta("tok", 10), "type": "Opaque", "data": { "k": "dg==" } });
    assert_eq!(
        cells("secrets", s),
        [json!("tok"), json!("Opaque"), json!(1), json!("10s")]
    );
    let sa = json!({ "metadata": meta("default", 10) });
    assert_eq!(
        cells("serviceaccounts", sa),
        [json!("default"), json!(0), json!("10s")]
    );
    let lease = json!({ "metadata": meta("node-1", 10), "spec": { "holderIdentity": "node-1" } });
    assert_eq!(
        cells("leases", lease),
        [json!("node-1"), json!("node-1"), json!("10s")]
    );
}

#[test]
fn endpoints_cells_cap_at_three() {
    let ep = json!({
        "metadata": meta("web", 10),
        "subsets": [{
            "addresses": [{ "ip": "10.0.0.1" }, { "ip": "10.0.0.2" }, { "ip": "fd00::3" }, { "ip": "10.0.0.4" }],
            "ports": [{ "port": 80 }]
        }]
    });
    assert_eq!(
        cells("endpoints", ep)[1],
        "10.0.0.1:80,10.0.0.2:80,[fd00::3]:80 + 1 more..."
    );
    let none = json!({ "metadata": meta("empty", 10) });
    assert_eq!(cells("endpoints", none)[1], "<none>");
    let headless =
        json!({ "metadata": meta("h", 10), "subsets": [{ "addresses": [{ "ip": "10.0.0.9" }] }] });
    assert_eq!(cells("endpoints", headless)[1], "10.0.0.9");
}

#[test]
fn endpoint_slice_cells() {
    let es = json!({
        "metadata": meta("web-abc", 10), "addressType": "IPv4",
        "ports": [{ "port": 80 }, { "name": "metrics" }, {}],
        "endpoints": [{ "addresses": ["10.0.0.1"] }, { "addresses": ["10.0.0.2"] }]
    });
    assert_eq!(
        cells("endpointslices", es),
        [
            json!("web-abc"),
            json!("IPv4"),
            json!("80,metrics,*"),
            json!("10.0.0.1,10.0.0.2"),
            json!("10s")
        ]
    );
    let empty = json!({ "metadata": meta("e", 10), "addressType": "IPv4" });
    assert_eq!(
        cells("endpointslices", empty)[2..4],
        [json!("<unset>"), json!("<unset>")]
    );
}

#[test]
fn unknown_resources_get_name_and_created_at() {
    let obj = json!({ "metadata": { "name": "x", "creationTimestamp": "2024-01-01T00:00:00Z" } });
    assert_eq!(
        cells("widgets", obj),
        [json!("x"), json!("2024-01-01T00:00:00Z")]
    );
    let cols =
        to_table_at(now(), "widgets", &[], IncludeObject::None, None)["columnDefinitions"].clone();
    assert_eq!(cols[1]["name"], "Created At");
    assert_eq!(cols[1]["type"], "date");
}

#[test]
fn table_envelope_metadata_and_include_object() {
    let p = pod(&["a"], json!({ "phase": "Running" }));
    let list_meta = json!({ "resourceVersion": "42", "continue": "" , "remainingItemCount": 5 });
    let t = to_table_at(
        now(),
        "pods",
        std::slice::from_ref(&p),
        IncludeObject::Metadata,
        Some(list_meta),
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        t["metadata"],
        json!({ "resourceVersion": "42", "remainingItemCount": 5 })
    );
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    let obj = &t["rows"][0]["object"];
    assert_eq!(obj["kind"], "PartialObjectMetadata");
    assert_eq!(obj["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(obj["metadata"]["namespace"], "default");
    assert!(obj.get("spec").is_none());
    let full = to_table_at(
        now(),
        "pods",
        std::slice::from_ref(&p),
        IncludeObject::Object,
        None,
    );
    assert_eq!(full["rows"][0]["object"], p);
    assert_eq!(full["metadata"], json!({}));
    let none = to_table_at(now(), "pods", &[p], IncludeObject::None, None);
    assert!(none["rows"][0].get("object").is_none());
    let mut watch_event = none.clone();
    without_headers(&mut watch_event);
    assert!(watch_event["columnDefinitions"].is_null());
    assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
    assert_eq!(IncludeObject::parse("bogus"), None);
    assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
}

#[test]
fn every_row_has_one_cell_per_column() {
    for plural in [
        "pods",
        "deployments",
        "replicasets",
        "services",
        "endpoints",
        "endpointslices",
        "nodes",
        "namespaces",
        "events",
        "configmaps",
        "secrets",
        "serviceaccounts",
        "leases",
        "widgets",
    ] {
        let t = to_table_at(
            now(),
            plural,
            &[json!({ "metadata": { "name": "x" } })],
            IncludeObject::None,
            None,
        );
        let cols = t["columnDefinitions"].as_array().unwrap().len();
        assert_eq!(
            t["rows"][0]["cells"].as_array().unwrap().len(),
            cols,
            "{plural}"
        );
    }
}
