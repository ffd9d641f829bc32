//! What the scheduler needs to know about a pod, extracted once per watch event so that a
//! scheduling attempt never clones or walks a whole `Pod`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, NodeSelector, Pod, PodAffinityTerm, PreferredSchedulingTerm, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use minik8s_api::quantity::{self, Resources, Side};

/// Namespace and name of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A host port a container asks for (`hostPort` with its protocol and host IP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub protocol: String,
    pub ip: String,
    pub port: i32,
}

/// A required anti-affinity term of the pod: no pod matching `selector` in `namespaces` may
/// share a value of `topology_key` with it.
#[derive(Debug, Clone, PartialEq)]
pub struct AntiAffinityTerm {
    /// None (a nil selector) matches no pods, as in Kubernetes' affinity terms.
    pub selector: Option<LabelSelector>,
    pub namespaces: Vec<String>,
    pub topology_key: String,
}

/// The scheduling-relevant parts of a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    pub key: PodKey,
    pub uid: String,
    pub scheduler_name: String,
    /// `spec.nodeName`: set for bound pods, and for pending pods that name their node.
    pub node_name: Option<String>,
    pub priority: i32,
    pub labels: BTreeMap<String, String>,
    /// UID of the controlling owner (a ReplicaSet, …), for spreading.
    pub owner_uid: Option<String>,
    /// Requests as Kubernetes counts them for fit.
    pub requests: Resources,
    /// Requests with kube-scheduler's defaults for containers that request nothing (100m CPU,
    /// 200 MiB), used only for scoring so that request-less pods still spread.
    pub nonzero_requests: Resources,
    pub host_ports: Vec<HostPort>,
    pub node_selector: BTreeMap<String, String>,
    pub required_node_affinity: Option<NodeSelector>,
    pub preferred_node_affinity: Vec<PreferredSchedulingTerm>,
    pub tolerations: Vec<Toleration>,
    pub anti_affinity: Vec<AntiAffinityTerm>,
    /// Phase is Succeeded or Failed: holds no resources any more.
    pub terminal: bool,
    pub deleting: bool,
}

/// kube-scheduler's `DefaultMilliCPURequest` and `DefaultMemoryRequest` for scoring.
const DEFAULT_CPU_MILLIS: i64 = 100;
const DEFAULT_MEMORY_BYTES: i64 = 200 * 1024 * 1024;

fn nonzero(c: &Container) -> Resources {
    let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let mut r = Resources::from_map(requests);
    let has = |name: &str| requests.is_some_and(|m| m.contains_key(name));
    if !has("cpu") {
        r.cpu_millis = DEFAULT_CPU_MILLIS;
    }
    if !has("memory") {
        r.memory_bytes = DEFAULT_MEMORY_BYTES;
    }
    r
}

fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let all = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    all.flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|port| *port > 0)?;
            Some(HostPort {
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ip: p.host_ip.clone().unwrap_or_else(|| "0.0.0.0".into()),
                port,
            })
        })
        .collect()
}

fn anti_affinity_terms(pod: &Pod, namespace: &str) -> Vec<AntiAffinityTerm> {
    let terms: &[PodAffinityTerm] = pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default();
    terms
        .iter()
        .map(|t| AntiAffinityTerm {
            selector: t.label_selector.clone(),
            // Empty namespaces (and no namespaceSelector) means the pod's own namespace.
            namespaces: match &t.namespaces {
                Some(ns) if !ns.is_empty() => ns.clone(),
                _ => vec![namespace.to_string()],
            },
            topology_key: t.topology_key.clone(),
        })
        .collect()
}

impl PodInfo {
    pub fn from_pod(pod: &Pod) -> PodInfo {
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let default_spec = Default::default();
        let spec = pod.spec.as_ref().unwrap_or(&default_spec);
        let node_affinity = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref());
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        PodInfo {
            anti_affinity: anti_affinity_terms(pod, &namespace),
            key: PodKey {
                namespace,
                name: meta.name.clone().unwrap_or_default(),
            },
            uid: meta.uid.clone().unwrap_or_default(),
            scheduler_name: spec
                .scheduler_name
                .clone()
                .unwrap_or_else(|| "default-scheduler".into()),
            node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
            priority: spec.priority.unwrap_or(0),
            labels: meta.labels.clone().unwrap_or_default(),
            owner_uid: meta
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| o.uid.clone()),
            requests: quantity::pod_resources(spec, Side::Requests),
            nonzero_requests: quantity::pod_resources_with(spec, nonzero),
            host_ports: host_ports(pod),
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_node_affinity: node_affinity.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .clone()
            }),
            preferred_node_affinity: node_affinity
                .and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .clone()
                })
                .unwrap_or_default(),
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            terminal: matches!(phase, Some("Succeeded") | Some("Failed")),
            deleting: meta.deletion_timestamp.is_some(),
        }
    }
}

/// Test fixtures: `pod("a").requests("100m", "64Mi")`.
#[cfg(test)]
pub mod fixture {
    use super::*;

    pub fn pod(name: &str) -> PodInfo {
        PodInfo {
            key: PodKey {
                namespace: "default".into(),
                name: name.into(),
            },
            uid: format!("uid-{name}"),
            scheduler_name: "default-scheduler".into(),
            node_name: None,
            priority: 0,
            labels: BTreeMap::new(),
            owner_uid: None,
            requests: Resources::default(),
            nonzero_requests: Resources {
                cpu_millis: DEFAULT_CPU_MILLIS,
                memory_bytes: DEFAULT_MEMORY_BYTES,
            },
            host_ports: vec![],
            node_selector: BTreeMap::new(),
            required_node_affinity: None,
            preferred_node_affinity: vec![],
            tolerations: vec![],
            anti_affinity: vec![],
            terminal: false,
            deleting: false,
        }
    }

    impl PodInfo {
        pub fn requests(mut self, cpu_millis: i64, memory_bytes: i64) -> Self {
            self.requests = Resources {
                cpu_millis,
                memory_bytes,
            };
            self.nonzero_requests = self.requests;
            self
        }
        pub fn label(mut self, k: &str, v: &str) -> Self {
            self.labels.insert(k.into(), v.into());
            self
        }
        pub fn owner(mut self, uid: &str) -> Self {
            self.owner_uid = Some(uid.into());
            self
        }
        pub fn on_node(mut self, node: &str) -> Self {
            self.node_name = Some(node.into());
            self
        }
        pub fn host_port(mut self, port: i32) -> Self {
            self.host_ports.push(HostPort {
                protocol: "TCP".into(),
                ip: "0.0.0.0".into(),
                port,
            });
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    #[test]
    fn extracts_requests_ports_and_defaults() {
        let pod = Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        container_port: 80,
                        host_port: Some(8080),
                        ..Default::default()
                    }]),
                    resources: Some(ResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "cpu".to_string(),
                            Quantity("250m".into()),
                        )])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let info = PodInfo::from_pod(&pod);
        assert_eq!(info.key.to_string(), "default/web");
        assert_eq!(info.scheduler_name, "default-scheduler");
        assert_eq!(info.requests.cpu_millis, 250);
        assert_eq!(info.requests.memory_bytes, 0);
        assert_eq!(info.nonzero_requests.memory_bytes, DEFAULT_MEMORY_BYTES);
        assert_eq!(info.host_ports[0].port, 8080);
        assert_eq!(info.host_ports[0].protocol, "TCP");
    }
}
