//! Service, Endpoints and EndpointSlice validation (`ValidateService`, `ValidateEndpoints`,
//! discovery `ValidateEndpointSlice`).

use std::collections::HashSet;

use serde_json::Value;

use super::container::validate_probe_port;
use super::meta::validate_labels;
use super::names::{dns1123_label, dns1123_subdomain, ip_address, port_number};
use super::pod::enum_field;
use super::{array_at, str_at, FieldCause, Path};

const SERVICE_TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

pub(crate) fn validate_service(obj: &Value, causes: &mut Vec<FieldCause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let path = Path::root("spec");
    enum_field(spec, "type", &path, &SERVICE_TYPES, causes);
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let cluster_ip = str_at(spec, "clusterIP");
    let ports = array_at(spec, "ports");
    if ports.is_empty() && cluster_ip != "None" && ty != "ExternalName" {
        causes.push(FieldCause::required(&path.child("ports"), ""));
    }
    if ty == "ExternalName" {
        let name = str_at(spec, "externalName");
        if name.is_empty() {
            causes.push(FieldCause::required(&path.child("externalName"), ""));
        } else {
            for msg in dns1123_subdomain(name.strip_suffix('.').unwrap_or(name)) {
                causes.push(FieldCause::invalid(&path.child("externalName"), name, &msg));
            }
        }
    }
    validate_cluster_ips(spec, &path, causes);
    if cluster_ip == "None" && matches!(ty, "NodePort" | "LoadBalancer") {
        let detail = format!("may not be set to 'None' for {ty} services");
        causes.push(FieldCause::invalid(
            &path.child("clusterIP"),
            "None",
            &detail,
        ));
    }
    validate_service_ports(ports, ty, &path.child("ports"), causes);
    enum_field(
        spec,
        "sessionAffinity",
        &path,
        &["ClientIP", "None"],
        causes,
    );
    validate_labels(spec.get("selector"), &path.child("selector"), causes);
    if spec.get("externalTrafficPolicy").is_some() && matches!(ty, "NodePort" | "LoadBalancer") {
        enum_field(
            spec,
            "externalTrafficPolicy",
            &path,
            &["Cluster", "Local"],
            causes,
        );
    }
}

/// `clusterIP` and `clusterIPs` are empty, `None`, or IP addresses.
fn validate_cluster_ips(spec: &Value, path: &Path, causes: &mut Vec<FieldCause>) {
    let ips = array_at(spec, "clusterIPs");
    let cluster_ip = str_at(spec, "clusterIP");
    if ips.is_empty() {
        if !cluster_ip.is_empty() && cluster_ip != "None" {
            for msg in ip_address(cluster_ip) {
                causes.push(FieldCause::invalid(
                    &path.child("clusterIP"),
                    cluster_ip,
                    &msg,
                ));
            }
        }
        return;
    }
    for (i, ip) in ips.iter().enumerate() {
        let ip = ip.as_str().unwrap_or("");
        if ip == "None" && i == 0 {
            continue;
        }
        for msg in ip_address(ip) {
            causes.push(FieldCause::invalid(
                &path.child("clusterIPs").index(i),
                ip,
                &msg,
            ));
        }
    }
    let first = ips[0].as_str().unwrap_or("");
    if !cluster_ip.is_empty() && cluster_ip != first {
        let rendered = format!(
            "{:?}",
            ips.iter()
                .map(|v| v.as_str().unwrap_or(""))
                .collect::<Vec<_>>()
        );
        let detail = "element [0] must match clusterIP";
        causes.push(FieldCause::invalid_raw(
            &path.child("clusterIPs"),
            &format!("[]string{{{}}}", &rendered[1..rendered.len() - 1]),
            detail,
        ));
    }
}

fn validate_service_ports(ports: &[Value], ty: &str, path: &Path, causes: &mut Vec<FieldCause>) {
    validate_port_uniqueness(ports, path, causes);
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = path.index(i);
        let name = str_at(port, "name");
        if name.is_empty() {
            if ports.len() > 1 {
                causes.push(FieldCause::required(&at.child("name"), ""));
            }
        } else {
            for msg in dns1123_label(name) {
                causes.push(FieldCause::invalid(&at.child("name"), name, &msg));
            }
            if !names.insert(name) {
                causes.push(FieldCause::duplicate(&at.child("name"), name));
            }
        }
        let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        for msg in port_number(number) {
            causes.push(FieldCause::invalid(&at.child("port"), number, &msg));
        }
        enum_field(port, "protocol", &at, &["SCTP", "TCP", "UDP"], causes);
        match port.get("targetPort") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_i64() == Some(0) => {}
            Some(target) => validate_probe_port(target, &at.child("targetPort"), causes),
        }
        if let Some(node_port) = port
            .get("nodePort")
            .and_then(Value::as_i64)
            .filter(|n| *n != 0)
        {
            if ty == "ClusterIP" || ty == "ExternalName" {
                let detail = format!("may not be used when `type` is '{ty}'");
                causes.push(FieldCause::forbidden(&at.child("nodePort"), &detail));
            }
            for msg in port_number(node_port) {
                causes.push(FieldCause::invalid(&at.child("nodePort"), node_port, &msg));
            }
        }
    }
}

/// No two ports share (port, protocol), and no two node ports share (nodePort, protocol).
fn validate_port_uniqueness(ports: &[Value], path: &Path, causes: &mut Vec<FieldCause>) {
    let (mut seen, mut node_ports) = (HashSet::new(), HashSet::new());
    for (i, port) in ports.iter().enumerate() {
        let protocol = port
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP");
        let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !seen.insert((number, protocol)) {
            let value = serde_json::json!({"port": number, "protocol": protocol});
            causes.push(FieldCause::duplicate(&path.index(i), value));
        }
        let node_port = port.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if node_port != 0 && !node_ports.insert((node_port, protocol)) {
            causes.push(FieldCause::duplicate(
                &path.index(i).child("nodePort"),
                node_port,
            ));
        }
    }
}

pub(crate) fn validate_endpoints(obj: &Value, causes: &mut Vec<FieldCause>) {
    for (i, subset) in array_at(obj, "subsets").iter().enumerate() {
        let at = Path::root("subsets").index(i);
        for field in ["addresses", "notReadyAddresses"] {
            for (j, address) in array_at(subset, field).iter().enumerate() {
                let ip = str_at(address, "ip");
                for msg in ip_address(ip) {
                    causes.push(FieldCause::invalid(
                        &at.child(field).index(j).child("ip"),
                        ip,
                        &msg,
                    ));
                }
            }
        }
        validate_endpoint_ports(array_at(subset, "ports"), &at.child("ports"), true, causes);
    }
}

/// Ports of Endpoints subsets and EndpointSlices; `name_required` when several (Endpoints).
fn validate_endpoint_ports(
    ports: &[Value],
    path: &Path,
    name_required: bool,
    causes: &mut Vec<FieldCause>,
) {
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = path.index(i);
        let name = str_at(port, "name");
        if name.is_empty() && name_required && ports.len() > 1 {
            causes.push(FieldCause::required(&at.child("name"), ""));
        } else if !name.is_empty() {
            for msg in dns1123_label(name) {
                causes.push(FieldCause::invalid(&at.child("name"), name, &msg));
            }
            if !names.insert(name) {
                causes.push(FieldCause::duplicate(&at.child("name"), name));
            }
        }
        if let Some(number) = port.get("port").and_then(Value::as_i64) {
            for msg in port_number(number) {
                causes.push(FieldCause::invalid(&at.child("port"), number, &msg));
            }
        }
        enum_field(port, "protocol", &at, &["SCTP", "TCP", "UDP"], causes);
    }
}

pub(crate) fn validate_endpoint_slice(obj: &Value, causes: &mut Vec<FieldCause>) {
    let types = ["FQDN", "IPv4", "IPv6"];
    let address_type = str_at(obj, "addressType");
    if address_type.is_empty() {
        causes.push(FieldCause::required(&Path::root("addressType"), ""));
    } else if !types.contains(&address_type) {
        causes.push(FieldCause::not_supported(
            &Path::root("addressType"),
            address_type,
            &types,
        ));
    }
    for (i, endpoint) in array_at(obj, "endpoints").iter().enumerate() {
        let at = Path::root("endpoints").index(i).child("addresses");
        let addresses = array_at(endpoint, "addresses");
        if addresses.is_empty() {
            causes.push(FieldCause::required(&at, "must contain at least 1 address"));
        }
        for (j, address) in addresses.iter().enumerate() {
            let address = address.as_str().unwrap_or("");
            let problems = match address_type {
                "IPv4" | "IPv6" => ip_address(address),
                _ => dns1123_subdomain(address),
            };
            for msg in problems {
                causes.push(FieldCause::invalid(&at.index(j), address, &msg));
            }
        }
    }
    validate_endpoint_ports(array_at(obj, "ports"), &Path::root("ports"), false, causes);
}
