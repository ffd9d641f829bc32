//! Deployment and ReplicaSet printers (`printDeployment`, `printReplicaSet`).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::cells::{container_cells, format_label_selector, int, selector_string, since};
use super::{col, wide, Column, Printer, Row, AGE, NAME};

const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
const IMAGES: Column = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);

const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
];

pub(super) const DEPLOYMENTS: Printer = Printer {
    columns: DEPLOYMENT_COLUMNS,
    row: deployment_row,
};

fn deployment_row(now: DateTime<Utc>, d: &Value) -> Row {
    let (names, images) = container_cells(&d["spec"]["template"]["spec"]["containers"]);
    // kube prints the parsed selector's String() here ("" when empty), not FormatLabelSelector.
    let selector = selector_string(&d["spec"]["selector"]).unwrap_or_else(|| "<invalid>".into());
    let status = &d["status"];
    Row::new(vec![
        d["metadata"]["name"].clone(),
        Value::from(format!(
            "{}/{}",
            int(&status["readyReplicas"]),
            int(&d["spec"]["replicas"])
        )),
        Value::from(int(&status["updatedReplicas"])),
        Value::from(int(&status["availableReplicas"])),
        Value::from(since(now, &d["metadata"]["creationTimestamp"])),
        Value::from(names),
        Value::from(images),
        Value::from(selector),
    ])
}

const REPLICASET_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        "Replicas is the number of desired pods.",
    ),
    col(
        "Current",
        "integer",
        "Replicas is the most recently observed number of replicas.",
    ),
    col(
        "Ready",
        "integer",
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    wide(
        "Selector",
        "string",
        "Selector is a label query over pods that should match the replica count.",
    ),
];

pub(super) const REPLICASETS: Printer = Printer {
    columns: REPLICASET_COLUMNS,
    row: replicaset_row,
};

fn replicaset_row(now: DateTime<Utc>, rs: &Value) -> Row {
    let (names, images) = container_cells(&rs["spec"]["template"]["spec"]["containers"]);
    Row::new(vec![
        rs["metadata"]["name"].clone(),
        Value::from(int(&rs["spec"]["replicas"])),
        Value::from(int(&rs["status"]["replicas"])),
        Value::from(int(&rs["status"]["readyReplicas"])),
        Value::from(since(now, &rs["metadata"]["creationTimestamp"])),
        Value::from(names),
        Value::from(images),
        Value::from(format_label_selector(&rs["spec"]["selector"])),
    ])
}
