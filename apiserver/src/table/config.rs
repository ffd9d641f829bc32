//! ConfigMap, Secret, ServiceAccount and Lease printers.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::cells::{count, since, text};
use super::{col, Column, Printer, Row, AGE, NAME};

const CONFIGMAP_COLUMNS: &[Column] = &[
    NAME,
    col("Data", "string", "Data contains the configuration data."),
    AGE,
];

pub(super) const CONFIGMAPS: Printer = Printer {
    columns: CONFIGMAP_COLUMNS,
    row: configmap_row,
};

fn configmap_row(now: DateTime<Utc>, cm: &Value) -> Row {
    Row::new(vec![
        cm["metadata"]["name"].clone(),
        Value::from(count(&cm["data"]) + count(&cm["binaryData"])),
        Value::from(since(now, &cm["metadata"]["creationTimestamp"])),
    ])
}

const SECRET_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    col("Data", "string", "Data contains the secret data."),
    AGE,
];

pub(super) const SECRETS: Printer = Printer {
    columns: SECRET_COLUMNS,
    row: secret_row,
};

fn secret_row(now: DateTime<Utc>, s: &Value) -> Row {
    Row::new(vec![
        s["metadata"]["name"].clone(),
        Value::from(text(&s["type"])),
        Value::from(count(&s["data"])),
        Value::from(since(now, &s["metadata"]["creationTimestamp"])),
    ])
}

const SERVICE_ACCOUNT_COLUMNS: &[Column] = &[
    NAME,
    col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    AGE,
];

pub(super) const SERVICE_ACCOUNTS: Printer = Printer {
    columns: SERVICE_ACCOUNT_COLUMNS,
    row: service_account_row,
};

fn service_account_row(now: DateTime<Utc>, sa: &Value) -> Row {
    Row::new(vec![
        sa["metadata"]["name"].clone(),
        Value::from(count(&sa["secrets"])),
        Value::from(since(now, &sa["metadata"]["creationTimestamp"])),
    ])
}

const LEASE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];

pub(super) const LEASES: Printer = Printer {
    columns: LEASE_COLUMNS,
    row: lease_row,
};

fn lease_row(now: DateTime<Utc>, lease: &Value) -> Row {
    Row::new(vec![
        lease["metadata"]["name"].clone(),
        Value::from(text(&lease["spec"]["holderIdentity"])),
        Value::from(since(now, &lease["metadata"]["creationTimestamp"])),
    ])
}
