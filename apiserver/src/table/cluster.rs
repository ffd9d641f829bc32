//! Node, Namespace and Event printers (`printNode`, `printNamespace`, `printEvent`).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::cells::{since, text};
use super::{col, wide, Column, Printer, Row, AGE, NAME};

const NODE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
    wide("Internal-IP", "string", "List of addresses reachable to the node."),
    wide("External-IP", "string", "List of addresses reachable to the node."),
    wide("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    wide("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    wide("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
];

pub(super) const NODES: Printer = Printer {
    columns: NODE_COLUMNS,
    row: node_row,
};

/// `node-role.kubernetes.io/<role>` labels and the legacy `kubernetes.io/role=<role>`.
fn node_roles(node: &Value) -> String {
    let mut roles = BTreeSet::new();
    for (k, v) in node["metadata"]["labels"].as_object().into_iter().flatten() {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role.to_owned());
            }
        } else if k == "kubernetes.io/role" && v.as_str().is_some_and(|s| !s.is_empty()) {
            roles.insert(text(v));
        }
    }
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

fn node_address(node: &Value, ty: &str) -> String {
    let addresses = node["status"]["addresses"].as_array().into_iter().flatten();
    addresses
        .filter(|a| a["type"] == ty)
        .map(|a| text(&a["address"]))
        .next()
        .unwrap_or_else(|| "<none>".into())
}

fn or_unknown(s: String) -> String {
    if s.is_empty() {
        "<unknown>".into()
    } else {
        s
    }
}

fn node_row(now: DateTime<Utc>, node: &Value) -> Row {
    let conditions = node["status"]["conditions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    // kube keeps the last condition of each type; only Ready is shown.
    let ready = conditions.iter().rfind(|c| c["type"] == "Ready");
    let mut status = vec![match ready {
        Some(c) if c["status"] == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if node["spec"]["unschedulable"] == true {
        status.push("SchedulingDisabled");
    }
    let info = &node["status"]["nodeInfo"];
    Row::new(vec![
        node["metadata"]["name"].clone(),
        Value::from(status.join(",")),
        Value::from(node_roles(node)),
        Value::from(since(now, &node["metadata"]["creationTimestamp"])),
        Value::from(text(&info["kubeletVersion"])),
        Value::from(node_address(node, "InternalIP")),
        Value::from(node_address(node, "ExternalIP")),
        Value::from(or_unknown(text(&info["osImage"]))),
        Value::from(or_unknown(text(&info["kernelVersion"]))),
        Value::from(or_unknown(text(&info["containerRuntimeVersion"]))),
    ])
}

const NAMESPACE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

pub(super) const NAMESPACES: Printer = Printer {
    columns: NAMESPACE_COLUMNS,
    row: namespace_row,
};

fn namespace_row(now: DateTime<Utc>, ns: &Value) -> Row {
    Row::new(vec![
        ns["metadata"]["name"].clone(),
        Value::from(text(&ns["status"]["phase"])),
        Value::from(since(now, &ns["metadata"]["creationTimestamp"])),
    ])
}

const EVENT_COLUMNS: &[Column] = &[
    col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", "The object that this event is about."),
    wide("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement."),
    wide("Source", "string", "The component reporting this event. Should be a short machine understandable string."),
    col("Message", "string", "A human-readable description of the status of this operation."),
    wide("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
    wide("Count", "string", "The number of times this event has occurred."),
    Column { priority: 1, ..NAME },
];

pub(super) const EVENTS: Printer = Printer {
    columns: EVENT_COLUMNS,
    row: event_row,
};

/// events.k8s.io/v1 Events carry the same data under other names; kube converts both to its
/// internal Event before printing.
fn as_core_event(ev: &Value) -> Value {
    if ev["apiVersion"] != "events.k8s.io/v1" {
        return ev.clone();
    }
    json!({
        "metadata": ev["metadata"],
        "involvedObject": ev["regarding"],
        "reason": ev["reason"],
        "message": ev["note"],
        "type": ev["type"],
        "source": ev["deprecatedSource"],
        "firstTimestamp": ev["deprecatedFirstTimestamp"],
        "lastTimestamp": ev["deprecatedLastTimestamp"],
        "count": ev["deprecatedCount"],
        "eventTime": ev["eventTime"],
        "series": ev["series"],
        "reportingComponent": ev["reportingController"],
        "reportingInstance": ev["reportingInstance"],
    })
}

fn first_non_empty(a: String, b: String) -> String {
    if a.is_empty() {
        b
    } else {
        a
    }
}

fn event_row(now: DateTime<Utc>, raw: &Value) -> Row {
    let ev = as_core_event(raw);
    let first = if ev["firstTimestamp"].as_str().is_some_and(|s| !s.is_empty()) {
        since(now, &ev["firstTimestamp"])
    } else {
        since(now, &ev["eventTime"])
    };
    let mut last = if ev["lastTimestamp"].as_str().is_some_and(|s| !s.is_empty()) {
        since(now, &ev["lastTimestamp"])
    } else {
        first.clone()
    };
    let mut count = ev["count"].as_i64().unwrap_or(0);
    if ev["series"].is_object() {
        last = since(now, &ev["series"]["lastObservedTime"]);
        count = ev["series"]["count"].as_i64().unwrap_or(0);
    } else if count == 0 {
        // Singleton events of the new API have no count.
        count = 1;
    }
    let involved = &ev["involvedObject"];
    let kind = text(&involved["kind"]).to_lowercase();
    let target = match involved["name"].as_str().filter(|n| !n.is_empty()) {
        Some(name) => format!("{kind}/{name}"),
        None => kind,
    };
    let component = first_non_empty(
        text(&ev["source"]["component"]),
        text(&ev["reportingComponent"]),
    );
    let instance = first_non_empty(text(&ev["source"]["host"]), text(&ev["reportingInstance"]));
    let source = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    Row::new(vec![
        Value::from(last),
        Value::from(text(&ev["type"])),
        Value::from(text(&ev["reason"])),
        Value::from(target),
        Value::from(text(&involved["fieldPath"])),
        Value::from(source),
        Value::from(text(&ev["message"]).trim()),
        Value::from(first),
        Value::from(count),
        ev["metadata"]["name"].clone(),
    ])
}
