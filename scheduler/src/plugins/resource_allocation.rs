//! Score: least-allocated (spread load, the default) or most-allocated (bin packing) — the two
//! scoring strategies of kube-scheduler's `NodeResourcesFit`. CPU and memory weigh the same;
//! requests are counted with the defaults for request-less containers (`nonzero_requests`).

use minik8s_api::quantity::Resources;

use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;

/// How the node-resources score ranks nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Strategy {
    /// Prefer the node with the most free room after placing the pod.
    #[default]
    LeastAllocated,
    /// Prefer the fullest node that still fits (bin packing).
    MostAllocated,
}

/// Score of one resource, 0..=100.
fn resource_score(strategy: Strategy, requested: i64, allocatable: i64) -> i64 {
    if allocatable <= 0 {
        return 0;
    }
    match strategy {
        Strategy::LeastAllocated if requested > allocatable => 0,
        Strategy::LeastAllocated => (allocatable - requested) * 100 / allocatable,
        Strategy::MostAllocated => requested.min(allocatable) * 100 / allocatable,
    }
}

/// The node's score for this pod, 0..=100.
pub fn score(strategy: Strategy, pod: &PodInfo, node: &NodeInfo) -> i64 {
    let Some(facts) = &node.facts else {
        return 0;
    };
    let after = Resources {
        cpu_millis: node.nonzero_requested.cpu_millis + pod.nonzero_requests.cpu_millis,
        memory_bytes: node.nonzero_requested.memory_bytes + pod.nonzero_requests.memory_bytes,
    };
    let cpu = resource_score(strategy, after.cpu_millis, facts.allocatable.cpu_millis);
    let memory = resource_score(strategy, after.memory_bytes, facts.allocatable.memory_bytes);
    (cpu + memory) / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::fixture::node;
    use crate::pod_info::fixture::pod;

    #[test]
    fn table() {
        let p = pod("p").requests(1000, 1000);
        let empty = node("n").allocatable(4000, 4000, 10);
        let half = node("n")
            .allocatable(4000, 4000, 10)
            .with_pod(pod("x").requests(1000, 1000));
        let cases = [
            ("least, empty node", Strategy::LeastAllocated, &empty, 75),
            (
                "least, busier node scores lower",
                Strategy::LeastAllocated,
                &half,
                50,
            ),
            ("most, empty node", Strategy::MostAllocated, &empty, 25),
            (
                "most, busier node scores higher",
                Strategy::MostAllocated,
                &half,
                50,
            ),
        ];
        for (name, strategy, n, want) in cases {
            assert_eq!(score(strategy, &p, n), want, "{name}");
        }
        let full = node("n")
            .allocatable(1000, 1000, 10)
            .with_pod(pod("x").requests(1000, 1000));
        assert_eq!(score(Strategy::LeastAllocated, &p, &full), 0);
        assert_eq!(score(Strategy::MostAllocated, &p, &full), 100);
    }
}
