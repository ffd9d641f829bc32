//! Service, Endpoints and EndpointSlice printers (`printService`, `printEndpoints`,
//! `printEndpointSlice`).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::cells::{format_labels, list_with_more, since, text};
use super::{col, wide, Column, Printer, Row, AGE, NAME};

const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    col("Type", "string", "type determines how the Service is exposed."),
    col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
    col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    col("Port(s)", "string", "The list of ports that are exposed by this service."),
    AGE,
    wide("Selector", "string", "Route service traffic to pods with label keys and values matching this selector."),
];

pub(super) const SERVICES: Printer = Printer {
    columns: SERVICE_COLUMNS,
    row: service_row,
};

fn service_row(now: DateTime<Utc>, svc: &Value) -> Row {
    let spec = &svc["spec"];
    let cluster_ip = spec["clusterIPs"][0]
        .as_str()
        .or_else(|| spec["clusterIP"].as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>");
    let ports = port_string(&spec["ports"]);
    Row::new(vec![
        svc["metadata"]["name"].clone(),
        Value::from(text(&spec["type"])),
        Value::from(cluster_ip),
        Value::from(external_ip(svc)),
        Value::from(if ports.is_empty() {
            "<none>".into()
        } else {
            ports
        }),
        Value::from(since(now, &svc["metadata"]["creationTimestamp"])),
        Value::from(format_labels(&spec["selector"])),
    ])
}

/// `makePortString`: `80/TCP`, or `80:30080/TCP` with a node port.
fn port_string(ports: &Value) -> String {
    let list = ports.as_array().map(Vec::as_slice).unwrap_or_default();
    let pieces: Vec<String> = list
        .iter()
        .map(|p| {
            let (port, proto) = (p["port"].as_i64().unwrap_or(0), text(&p["protocol"]));
            match p["nodePort"].as_i64().filter(|n| *n > 0) {
                Some(node_port) => format!("{port}:{node_port}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    pieces.join(",")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().map(text).collect()
}

/// `getServiceExternalIP` with `wide` (the server always renders wide cells).
fn external_ip(svc: &Value) -> String {
    let external = strings(&svc["spec"]["externalIPs"]);
    match svc["spec"]["type"].as_str().unwrap_or_default() {
        "ClusterIP" | "NodePort" if !external.is_empty() => external.join(","),
        "ClusterIP" | "NodePort" => "<none>".into(),
        "LoadBalancer" => {
            let ingress = svc["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten();
            let lb: BTreeSet<String> = ingress
                .filter_map(|i| {
                    let ip = text(&i["ip"]);
                    let host = text(&i["hostname"]);
                    [ip, host].into_iter().find(|s| !s.is_empty())
                })
                .collect();
            let mut all: Vec<String> = lb.into_iter().collect();
            all.extend(external);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => text(&svc["spec"]["externalName"]),
        _ => "<unknown>".into(),
    }
}

const ENDPOINTS_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];

pub(super) const ENDPOINTS: Printer = Printer {
    columns: ENDPOINTS_COLUMNS,
    row: endpoints_row,
};

fn endpoints_row(now: DateTime<Utc>, ep: &Value) -> Row {
    Row::new(vec![
        ep["metadata"]["name"].clone(),
        Value::from(format_endpoints(ep)),
        Value::from(since(now, &ep["metadata"]["creationTimestamp"])),
    ])
}

/// `net.JoinHostPort`: brackets IPv6 addresses.
fn join_host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// `formatEndpoints`: up to three `ip:port` (or bare IPs for port-less subsets), then
/// " + N more...".
fn format_endpoints(ep: &Value) -> String {
    const MAX: usize = 3;
    let subsets = ep["subsets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list = Vec::new();
    let mut count = 0;
    for ss in subsets {
        let addrs = ss["addresses"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let ports = ss["ports"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if ports.is_empty() {
            count += addrs.len();
            list.extend(
                addrs
                    .iter()
                    .map(|a| text(&a["ip"]))
                    .take(MAX.saturating_sub(list.len())),
            );
            continue;
        }
        for port in ports {
            count += addrs.len();
            let p = port["port"].as_i64().unwrap_or(0);
            let room = MAX.saturating_sub(list.len());
            list.extend(
                addrs
                    .iter()
                    .take(room)
                    .map(|a| join_host_port(&text(&a["ip"]), p)),
            );
        }
    }
    let ret = list.join(",");
    if count > MAX {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "AddressType",
        "string",
        "addressType specifies the type of address carried by this EndpointSlice.",
    ),
    col(
        "Ports",
        "string",
        "ports specifies the list of network ports exposed by each endpoint in this slice.",
    ),
    col(
        "Endpoints",
        "string",
        "endpoints is a list of unique endpoints in this slice.",
    ),
    AGE,
];

pub(super) const ENDPOINT_SLICES: Printer = Printer {
    columns: ENDPOINT_SLICE_COLUMNS,
    row: endpoint_slice_row,
};

fn endpoint_slice_row(now: DateTime<Utc>, es: &Value) -> Row {
    const MAX: usize = 3;
    let ports: Vec<String> = es["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| match (p["port"].as_i64(), p["name"].as_str()) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.to_owned(),
            (None, None) => "*".into(),
        })
        .collect();
    let addresses: Vec<String> = es["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| strings(&e["addresses"]))
        .collect();
    let shown = |l: &[String]| l.iter().take(MAX).cloned().collect::<Vec<_>>();
    Row::new(vec![
        es["metadata"]["name"].clone(),
        Value::from(text(&es["addressType"])),
        Value::from(list_with_more(&shown(&ports), ports.len(), MAX)),
        Value::from(list_with_more(&shown(&addresses), addresses.len(), MAX)),
        Value::from(since(now, &es["metadata"]["creationTimestamp"])),
    ])
}
