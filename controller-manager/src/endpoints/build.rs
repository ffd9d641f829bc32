//! What a Service's Endpoints and EndpointSlices hold (Kubernetes' endpoints and
//! endpointslice controllers): matching pods with an IP, ready or not, grouped by the ports
//! their named target ports resolve to.
#![allow(deprecated)] // core/v1 Endpoints is deprecated upstream but still served and read.

use std::collections::BTreeMap;

use crate::cached_pod::CachedPod;
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, ObjectReference, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

/// (port name, port number, protocol) of one service port resolved for one pod.
pub type Port = (Option<String>, i32, String);

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Group {
    pub ready: Vec<(EndpointAddress, bool)>,
    pub not_ready: Vec<(EndpointAddress, bool)>,
}

/// A pod's port for a target port: a number as is, a name looked up in its containers.
fn resolve(
    pod: &CachedPod,
    target: Option<&IntOrString>,
    port: i32,
    protocol: &str,
) -> Option<i32> {
    match target {
        None => Some(port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| {
                p.name.as_deref() == Some(name)
                    && p.protocol.as_deref().unwrap_or("TCP") == protocol
            })
            .map(|p| p.container_port),
    }
}

fn pod_ready(pod: &CachedPod) -> bool {
    crate::pods::is_ready(pod)
}

/// Address groups keyed by resolved ports, for the pods the Service selects.
pub fn groups(svc: &Service, pods: &[std::sync::Arc<CachedPod>]) -> BTreeMap<Vec<Port>, Group> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let mut out: BTreeMap<Vec<Port>, Group> = BTreeMap::new();
    for pod in pods {
        let status = pod.status.clone().unwrap_or_default();
        let Some(ip) = status.pod_ip.clone().filter(|ip| !ip.is_empty()) else {
            continue;
        };
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            continue;
        }
        let ports: Option<Vec<Port>> = spec
            .ports
            .iter()
            .flatten()
            .map(|p| {
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                resolve(pod, p.target_port.as_ref(), p.port, &proto)
                    .map(|n| (p.name.clone(), n, proto))
            })
            .collect();
        let Some(ports) = ports else {
            continue;
        };
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let address = EndpointAddress {
            ip,
            hostname: None,
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: Some(pod.name_any()),
                namespace: pod.namespace(),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            }),
        };
        let group = out.entry(ports).or_default();
        let serving = pod_ready(pod);
        if (serving && !terminating) || publish_not_ready {
            group.ready.push((address, serving));
        } else {
            group.not_ready.push((address, serving));
        }
    }
    for g in out.values_mut() {
        g.ready.sort_by(|a, b| a.0.ip.cmp(&b.0.ip));
        g.not_ready.sort_by(|a, b| a.0.ip.cmp(&b.0.ip));
    }
    out
}

pub fn endpoint_ports(ports: &[Port]) -> Vec<EndpointPort> {
    ports
        .iter()
        .map(|(name, port, proto)| EndpointPort {
            name: name.clone(),
            port: *port,
            protocol: Some(proto.clone()),
            app_protocol: None,
        })
        .collect()
}
