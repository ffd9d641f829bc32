//! The proxy's view of the cluster: Services joined with their EndpointSlices into what the
//! nftables renderer and the DNS server need — for every Service port, the ready endpoints it
//! reaches. Pure functions over API objects, so both consumers are tested without a cluster.
//!
//! Semantics follow kube-proxy: a slice belongs to the Service named by its
//! `kubernetes.io/service-name` label; an endpoint counts when `conditions.ready` is true or
//! unset (the EndpointSlice API says nil means ready); a Service port reaches the slice port of
//! the same name and protocol; only IPv4 slices are used.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours, as in Kubernetes).
pub const DEFAULT_AFFINITY_SECONDS: u32 = 10_800;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// `None` for protocols the proxy does not program (SCTP).
    pub fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        }
    }

    /// The nftables / SRV spelling: `tcp`, `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One ready backend of one Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Backend {
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// One port of a Service with where it leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The port's name (empty for a single unnamed port).
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub node_port: Option<u16>,
    /// Ready backends, sorted and without duplicates (slices may overlap while they are rewritten).
    pub backends: Vec<Backend>,
}

/// A Service as the proxy and DNS see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    /// `None` for headless Services (`clusterIP: None`) and ExternalName ones.
    pub cluster_ip: Option<Ipv4Addr>,
    pub headless: bool,
    /// `sessionAffinity: ClientIP` timeout in seconds.
    pub affinity_seconds: Option<u32>,
    pub ports: Vec<ServicePort>,
    /// Every ready endpoint address (for headless DNS answers), sorted.
    pub ready_ips: Vec<Ipv4Addr>,
}

/// Everything the proxy programs, sorted by namespace and name so renders are deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub services: Vec<ServiceInfo>,
}

/// Joins Services with their EndpointSlices.
pub fn build<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Snapshot {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let labels = slice.metadata.labels.as_ref();
        let Some(svc) = labels.and_then(|l| l.get(SERVICE_NAME_LABEL)) else {
            continue;
        };
        let ns = slice.metadata.namespace.clone().unwrap_or_default();
        by_service.entry((ns, svc.clone())).or_default().push(slice);
    }
    let mut out: Vec<ServiceInfo> = services
        .into_iter()
        .filter_map(|svc| {
            let key = (
                svc.metadata.namespace.clone().unwrap_or_default(),
                svc.metadata.name.clone().unwrap_or_default(),
            );
            let slices = by_service.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            service_info(svc, slices)
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Snapshot { services: out }
}

fn service_info(svc: &Service, slices: &[&EndpointSlice]) -> Option<ServiceInfo> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    let ip_field = spec.cluster_ip.as_deref().unwrap_or("");
    let headless = ip_field == "None";
    let cluster_ip = ip_field.parse::<Ipv4Addr>().ok();
    let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(DEFAULT_AFFINITY_SECONDS)
    });
    let node_ports_wanted = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let protocol = Protocol::parse(p.protocol.as_deref())?;
            let name = p.name.clone().unwrap_or_default();
            Some(ServicePort {
                backends: backends(slices, &name, protocol),
                name,
                protocol,
                port: u16::try_from(p.port).ok()?,
                node_port: p
                    .node_port
                    .filter(|_| node_ports_wanted)
                    .and_then(|n| u16::try_from(n).ok()),
            })
        })
        .collect();
    let ready_ips: BTreeSet<Ipv4Addr> = slices
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .filter(|e| endpoint_ready(e))
        .flat_map(|e| e.addresses.iter())
        .filter_map(|a| a.parse().ok())
        .collect();
    Some(ServiceInfo {
        namespace: svc.metadata.namespace.clone().unwrap_or_default(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        cluster_ip,
        headless,
        affinity_seconds,
        ports,
        ready_ips: ready_ips.into_iter().collect(),
    })
}

fn endpoint_ready(e: &k8s_openapi::api::discovery::v1::Endpoint) -> bool {
    e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
}

/// The ready backends of the Service port `name`/`protocol` over all of the Service's slices.
fn backends(slices: &[&EndpointSlice], name: &str, protocol: Protocol) -> Vec<Backend> {
    let mut out = BTreeSet::new();
    for slice in slices {
        let port = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == name
                && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
        });
        let Some(port) = port
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for e in slice
            .endpoints
            .iter()
            .flatten()
            .filter(|e| endpoint_ready(e))
        {
            for ip in e.addresses.iter().filter_map(|a| a.parse().ok()) {
                out.insert(Backend { ip, port });
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Builders for Services and EndpointSlices shared by the unit tests.
    use super::*;
    use serde_json::json;

    pub fn service(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports}
        }))
        .unwrap()
    }

    /// One slice: `(ip, ready)` endpoints and `(name, port, protocol)` ports.
    pub fn slice(
        ns: &str,
        svc: &str,
        endpoints: &[(&str, Option<bool>)],
        ports: &[(&str, u16, &str)],
    ) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{svc}-x"), "namespace": ns,
                         "labels": {SERVICE_NAME_LABEL: svc}},
            "addressType": "IPv4",
            "endpoints": endpoints.iter().map(|(ip, ready)| json!({
                "addresses": [ip], "conditions": {"ready": ready}
            })).collect::<Vec<_>>(),
            "ports": ports.iter().map(|(n, p, proto)| json!({
                "name": n, "port": p, "protocol": proto
            })).collect::<Vec<_>>(),
        }))
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn ports_join_slices_by_name_and_protocol_and_skip_unready() {
        let svc = service(
            "default",
            "web",
            "10.96.0.5",
            json!([{"name": "http", "port": 80, "protocol": "TCP"},
                   {"name": "dns", "port": 53, "protocol": "UDP"}]),
        );
        let a = slice(
            "default",
            "web",
            &[
                ("10.244.1.2", Some(true)),
                ("10.244.1.3", Some(false)),
                ("10.244.2.2", None),
            ],
            &[("http", 8080, "TCP"), ("dns", 5353, "UDP")],
        );
        let other = slice(
            "other",
            "web",
            &[("10.244.9.9", None)],
            &[("http", 1, "TCP")],
        );
        let snap = build([&svc], [&a, &other]);
        let s = &snap.services[0];
        assert_eq!(s.cluster_ip, Some("10.96.0.5".parse().unwrap()));
        assert_eq!(s.ports[0].protocol, Protocol::Tcp);
        let ips: Vec<String> = s.ports[0]
            .backends
            .iter()
            .map(|b| b.ip.to_string())
            .collect();
        assert_eq!(
            ips,
            ["10.244.1.2", "10.244.2.2"],
            "unready endpoint and other namespace left out"
        );
        assert!(s.ports[0].backends.iter().all(|b| b.port == 8080));
        assert_eq!(s.ports[1].backends[0].port, 5353);
        assert_eq!(s.ready_ips.len(), 2);
    }

    #[test]
    fn affinity_headless_and_node_ports() {
        let mut svc = service("ns", "s", "None", json!([{"port": 80, "nodePort": 30080}]));
        let spec = svc.spec.as_mut().unwrap();
        spec.session_affinity = Some("ClientIP".into());
        let snap = build([&svc], []);
        let s = &snap.services[0];
        assert!(s.headless && s.cluster_ip.is_none());
        assert_eq!(s.affinity_seconds, Some(DEFAULT_AFFINITY_SECONDS));
        assert_eq!(
            s.ports[0].node_port, None,
            "nodePort only for type NodePort"
        );
        svc.spec.as_mut().unwrap().type_ = Some("NodePort".into());
        assert_eq!(
            build([&svc], []).services[0].ports[0].node_port,
            Some(30080)
        );
    }
}
