//! `describe service`, `describe node`, `describe namespace`.

use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, NodeSpec, NodeStatus, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::format::{age, timestamp, Out};
use super::{events, header, Related};

pub fn describe_service(svc: &Service, rel: &Related) -> String {
    let mut out = Out::default();
    header(&mut out, &svc.metadata, false);
    let spec = svc.spec.clone().unwrap_or_default();
    out.map(0, "Selector", spec.selector.as_ref());
    out.line(
        0,
        format!("Type:\t{}", spec.type_.as_deref().unwrap_or("ClusterIP")),
    );
    if let Some(p) = &spec.ip_family_policy {
        out.line(0, format!("IP Family Policy:\t{p}"));
    }
    if let Some(f) = spec.ip_families.as_ref().filter(|f| !f.is_empty()) {
        out.line(0, format!("IP Families:\t{}", f.join(",")));
    }
    out.line(
        0,
        format!("IP:\t{}", spec.cluster_ip.as_deref().unwrap_or("None")),
    );
    if let Some(ips) = spec.cluster_ips.as_ref().filter(|i| !i.is_empty()) {
        out.line(0, format!("IPs:\t{}", ips.join(",")));
    }
    let endpoints = rel.endpoints.clone().unwrap_or_default();
    for p in spec.ports.iter().flatten() {
        let name = p
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "<unset>".into());
        let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
        out.line(0, format!("Port:\t{name}\t{}/{proto}", p.port));
        let target = match &p.target_port {
            Some(IntOrString::Int(i)) => format!("{i}/{proto}"),
            Some(IntOrString::String(s)) => format!("{s}/{proto}"),
            None => format!("{}/{proto}", p.port),
        };
        out.line(0, format!("TargetPort:\t{target}"));
        if let Some(np) = p.node_port {
            out.line(0, format!("NodePort:\t{name}\t{np}/{proto}"));
        }
        let mut eps = Vec::new();
        for subset in endpoints.subsets.iter().flatten() {
            let port = subset
                .ports
                .iter()
                .flatten()
                .find(|ep| ep.name == p.name || subset.ports.as_ref().is_some_and(|v| v.len() == 1))
                .map(|ep| ep.port);
            for a in subset.addresses.iter().flatten() {
                if let Some(port) = port {
                    eps.push(format!("{}:{port}", a.ip));
                }
            }
        }
        out.line(
            0,
            format!(
                "Endpoints:\t{}",
                if eps.is_empty() {
                    "<none>".into()
                } else {
                    eps.join(",")
                }
            ),
        );
    }
    out.line(
        0,
        format!(
            "Session Affinity:\t{}",
            spec.session_affinity.as_deref().unwrap_or("None")
        ),
    );
    if let Some(p) = &spec.internal_traffic_policy {
        out.line(0, format!("Internal Traffic Policy:\t{p}"));
    }
    events::section(&mut out, &rel.events);
    out.finish()
}

pub fn describe_node(node: &Node, rel: &Related) -> String {
    let mut out = Out::default();
    let meta = &node.metadata;
    let spec = node.spec.clone().unwrap_or_default();
    let st = node.status.clone().unwrap_or_default();
    out.line(0, format!("Name:\t{}", meta.name.as_deref().unwrap_or("")));
    let roles: Vec<String> = meta
        .labels
        .iter()
        .flatten()
        .filter_map(|(k, _)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_string)
        })
        .collect();
    out.line(
        0,
        format!(
            "Roles:\t{}",
            if roles.is_empty() {
                "<none>".into()
            } else {
                roles.join(",")
            }
        ),
    );
    out.map(0, "Labels", meta.labels.as_ref());
    out.annotations(0, meta.annotations.as_ref());
    out.line(
        0,
        format!(
            "CreationTimestamp:\t{}",
            timestamp(meta.creation_timestamp.as_ref())
        ),
    );
    let taints: Vec<String> = spec
        .taints
        .iter()
        .flatten()
        .map(|t| match &t.value {
            Some(v) => format!("{}={v}:{}", t.key, t.effect),
            None => format!("{}:{}", t.key, t.effect),
        })
        .collect();
    out.line(
        0,
        format!(
            "Taints:\t{}",
            if taints.is_empty() {
                "<none>".into()
            } else {
                taints.join(", ")
            }
        ),
    );
    out.line(
        0,
        format!("Unschedulable:\t{}", spec.unschedulable.unwrap_or(false)),
    );
    node_status(&mut out, &spec, &st);
    node_pods(&mut out, rel);
    events::section(&mut out, &rel.events);
    out.finish()
}

/// Conditions, addresses, capacity, system info and pod CIDRs.
fn node_status(out: &mut Out, spec: &NodeSpec, st: &NodeStatus) {
    out.line(0, "Conditions:");
    out.line(
        1,
        "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage",
    );
    out.line(
        1,
        "----\t------\t-----------------\t------------------\t------\t-------",
    );
    for c in st.conditions.iter().flatten() {
        out.line(
            1,
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                c.type_,
                c.status,
                timestamp(c.last_heartbeat_time.as_ref()),
                timestamp(c.last_transition_time.as_ref()),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            ),
        );
    }
    out.line(0, "Addresses:");
    for a in st.addresses.iter().flatten() {
        out.line(1, format!("{}:\t{}", a.type_, a.address));
    }
    for (title, map) in [("Capacity", &st.capacity), ("Allocatable", &st.allocatable)] {
        if let Some(map) = map {
            out.line(0, format!("{title}:"));
            for (k, v) in map {
                out.line(1, format!("{k}:\t{}", v.0));
            }
        }
    }
    if let Some(info) = &st.node_info {
        out.line(0, "System Info:");
        for (k, v) in [
            ("Machine ID", &info.machine_id),
            ("System UUID", &info.system_uuid),
            ("Boot ID", &info.boot_id),
            ("Kernel Version", &info.kernel_version),
            ("OS Image", &info.os_image),
            ("Operating System", &info.operating_system),
            ("Architecture", &info.architecture),
            ("Container Runtime Version", &info.container_runtime_version),
            ("Kubelet Version", &info.kubelet_version),
        ] {
            out.line(1, format!("{k}:\t{v}"));
        }
    }
    if let Some(cidr) = &spec.pod_cidr {
        out.line(0, format!("PodCIDR:\t{cidr}"));
    }
    if let Some(cidrs) = &spec.pod_cidrs {
        out.line(0, format!("PodCIDRs:\t{}", cidrs.join(",")));
    }
}

/// `Non-terminated Pods:` with the pods bound to the node.
fn node_pods(out: &mut Out, rel: &Related) {
    let running: Vec<_> = rel
        .pods
        .iter()
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .collect();
    out.line(
        0,
        format!("Non-terminated Pods:\t({} in total)", running.len()),
    );
    if !running.is_empty() {
        out.line(1, "Namespace\tName\tAge");
        out.line(1, "---------\t----\t---");
        for p in running {
            out.line(
                1,
                format!(
                    "{}\t{}\t{}",
                    p.metadata.namespace.as_deref().unwrap_or(""),
                    p.metadata.name.as_deref().unwrap_or(""),
                    age(p.metadata.creation_timestamp.as_ref())
                ),
            );
        }
    }
}

/// kubectl's configmap description: each key then `----` then its value.
pub fn describe_configmap(cm: &ConfigMap, rel: &Related) -> String {
    let mut out = Out::default();
    header(&mut out, &cm.metadata, false);
    out.line(0, "\nData\n====");
    for (k, v) in cm.data.iter().flatten() {
        out.line(0, format!("{k}:\n----"));
        out.line(0, format!("{v}\n"));
    }
    out.line(0, "\nBinaryData\n====");
    for (k, v) in cm.binary_data.iter().flatten() {
        out.line(0, format!("{k}: {} bytes", v.0.len()));
    }
    out.line(0, "");
    events::section(&mut out, &rel.events);
    out.finish()
}

/// kubectl's secret description: sizes only, never the values.
pub fn describe_secret(secret: &Secret, rel: &Related) -> String {
    let mut out = Out::default();
    header(&mut out, &secret.metadata, false);
    out.line(0, "");
    out.line(
        0,
        format!("Type:\t{}", secret.type_.as_deref().unwrap_or("Opaque")),
    );
    out.line(0, "\nData\n====");
    for (k, v) in secret.data.iter().flatten() {
        out.line(0, format!("{k}:\t{} bytes", v.0.len()));
    }
    let _ = rel;
    out.finish()
}

pub fn describe_namespace(ns: &Namespace, _rel: &Related) -> String {
    let mut out = Out::default();
    out.line(
        0,
        format!("Name:\t{}", ns.metadata.name.as_deref().unwrap_or("")),
    );
    out.map(0, "Labels", ns.metadata.labels.as_ref());
    out.annotations(0, ns.metadata.annotations.as_ref());
    let phase = ns
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Active".into());
    out.line(0, format!("Status:\t{phase}"));
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_ports_and_endpoints() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}
        }))
        .unwrap();
        let ep = serde_json::from_value(json!({"metadata": {"name": "web"},
            "subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"name": "http", "port": 8080}]}]})).unwrap();
        let rel = Related {
            endpoints: Some(ep),
            ..Default::default()
        };
        let text = describe_service(&svc, &rel);
        assert!(text.contains("Selector:          app=web\n"), "{text}");
        assert!(text.contains("Port:              http  80/TCP\n"), "{text}");
        assert!(text.contains("TargetPort:        8080/TCP\n"), "{text}");
        assert!(
            text.contains("Endpoints:         10.244.0.5:8080\n"),
            "{text}"
        );
    }

    #[test]
    fn namespace_status() {
        let ns: Namespace = serde_json::from_value(
            json!({"metadata": {"name": "dev"}, "status": {"phase": "Active"}}),
        )
        .unwrap();
        let text = describe_namespace(&ns, &Related::default());
        assert!(text.starts_with("Name:         dev\nLabels:       <none>\nAnnotations:  <none>\nStatus:       Active\n"), "{text}");
    }
}
