//! What the scheduler knows about a node: the facts read from the Node object, plus what the
//! pods bound or assumed to it use.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Taint};
use minik8s_api::quantity::{self, Resources};

use crate::pod_info::{HostPort, PodInfo, PodKey};

/// The scheduling-relevant facts of a Node object. Two equal values schedule the same, so an
/// update that leaves them equal (a heartbeat) wakes no unschedulable pod.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeFacts {
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    /// Condition Ready is True.
    pub ready: bool,
    pub allocatable: Resources,
    pub allocatable_pods: i64,
}

impl NodeFacts {
    pub fn from_node(node: &Node) -> NodeFacts {
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        // Allocatable is what the kubelet offers to pods; fall back to capacity when a node
        // (created by hand) only reports that.
        let resources = status
            .and_then(|s| s.allocatable.as_ref())
            .or_else(|| status.and_then(|s| s.capacity.as_ref()));
        let allocatable_pods = resources
            .and_then(|r| r.get("pods"))
            .and_then(|q| quantity::value(q).ok())
            .unwrap_or(0);
        NodeFacts {
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: spec.and_then(|s| s.taints.clone()).unwrap_or_default(),
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            allocatable: Resources::from_map(resources),
            allocatable_pods,
        }
    }
}

/// A node and the pods on it (bound or assumed).
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    /// None while pods name a node whose object the cache has not seen (or that was deleted).
    pub facts: Option<NodeFacts>,
    pub requested: Resources,
    pub nonzero_requested: Resources,
    pub pods: Vec<Arc<PodInfo>>,
    pub used_ports: Vec<HostPort>,
    /// How many of `pods` carry anti-affinity terms: when none do (the usual case), the
    /// anti-affinity filter need not look at the node's labels or pods at all, which keeps
    /// a scheduling pass over hundreds of nodes out of their scattered memory.
    pub anti_affinity_pods: usize,
}

impl NodeInfo {
    pub fn new(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            ..Default::default()
        }
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested = add(self.requested, pod.requests, 1);
        self.nonzero_requested = add(self.nonzero_requested, pod.nonzero_requests, 1);
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if !pod.anti_affinity.is_empty() {
            self.anti_affinity_pods += 1;
        }
        self.pods.push(pod);
    }

    pub fn remove_pod(&mut self, key: &PodKey) -> Option<Arc<PodInfo>> {
        let index = self.pods.iter().position(|p| &p.key == key)?;
        let pod = self.pods.swap_remove(index);
        self.requested = add(self.requested, pod.requests, -1);
        self.nonzero_requested = add(self.nonzero_requested, pod.nonzero_requests, -1);
        if !pod.anti_affinity.is_empty() {
            self.anti_affinity_pods -= 1;
        }
        for port in &pod.host_ports {
            if let Some(i) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(i);
            }
        }
        Some(pod)
    }
}

fn add(a: Resources, b: Resources, sign: i64) -> Resources {
    Resources {
        cpu_millis: a.cpu_millis + sign * b.cpu_millis,
        memory_bytes: a.memory_bytes + sign * b.memory_bytes,
    }
}

/// Test fixtures: `node("n1").allocatable(4000, 8 << 30, 110)`.
#[cfg(test)]
pub mod fixture {
    use super::*;

    pub fn node(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            facts: Some(NodeFacts {
                ready: true,
                allocatable: Resources {
                    cpu_millis: 4000,
                    memory_bytes: 8 << 30,
                },
                allocatable_pods: 110,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    impl NodeInfo {
        pub fn facts_mut(&mut self) -> &mut NodeFacts {
            self.facts.as_mut().expect("fixture nodes have facts")
        }
        pub fn allocatable(mut self, cpu_millis: i64, memory_bytes: i64, pods: i64) -> Self {
            let f = self.facts_mut();
            f.allocatable = Resources {
                cpu_millis,
                memory_bytes,
            };
            f.allocatable_pods = pods;
            self
        }
        pub fn label(mut self, k: &str, v: &str) -> Self {
            self.facts_mut().labels.insert(k.into(), v.into());
            self
        }
        pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
            self.facts_mut().taints.push(Taint {
                key: key.into(),
                value: (!value.is_empty()).then(|| value.into()),
                effect: effect.into(),
                time_added: None,
            });
            self
        }
        pub fn with_pod(mut self, pod: PodInfo) -> Self {
            self.add_pod(Arc::new(pod));
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::node;
    use crate::pod_info::fixture::pod;

    #[test]
    fn add_and_remove_pod_keep_sums() {
        let mut n = node("n1");
        n.add_pod(pod("a").requests(100, 1000).host_port(80).into());
        n.add_pod(pod("b").requests(200, 2000).into());
        assert_eq!(n.requested.cpu_millis, 300);
        assert_eq!(n.used_ports.len(), 1);
        n.remove_pod(&pod("a").key).expect("a is on the node");
        assert_eq!(n.requested.cpu_millis, 200);
        assert_eq!(n.requested.memory_bytes, 2000);
        assert!(n.used_ports.is_empty());
        assert!(n.remove_pod(&pod("a").key).is_none());
    }
}
