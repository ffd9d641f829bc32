//! Score: balanced allocation (kube-scheduler's `NodeResourcesBalancedAllocation`): prefer the
//! node whose CPU and memory would be used in the most equal fractions after placing the pod,
//! `(1 - standard deviation of the fractions) * 100`.

use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;

fn fraction(requested: i64, allocatable: i64) -> f64 {
    if allocatable <= 0 {
        return 1.0;
    }
    (requested as f64 / allocatable as f64).min(1.0)
}

/// The node's score for this pod, 0..=100.
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let Some(facts) = &node.facts else {
        return 0;
    };
    let cpu = fraction(
        node.requested.cpu_millis + pod.requests.cpu_millis,
        facts.allocatable.cpu_millis,
    );
    let memory = fraction(
        node.requested.memory_bytes + pod.requests.memory_bytes,
        facts.allocatable.memory_bytes,
    );
    // With two resources the standard deviation is half their difference.
    let std_dev = (cpu - memory).abs() / 2.0;
    ((1.0 - std_dev) * 100.0) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::fixture::node;
    use crate::pod_info::fixture::pod;

    #[test]
    fn table() {
        let cases = [
            (
                "equal fractions",
                pod("p").requests(1000, 1000),
                node("n").allocatable(4000, 4000, 10),
                100,
            ),
            (
                "cpu only",
                pod("p").requests(4000, 0),
                node("n").allocatable(4000, 4000, 10),
                50,
            ),
            (
                "evens out an unbalanced node",
                pod("p").requests(0, 2000),
                node("n")
                    .allocatable(4000, 4000, 10)
                    .with_pod(pod("x").requests(2000, 0)),
                100,
            ),
            (
                "half apart",
                pod("p").requests(2000, 0),
                node("n").allocatable(4000, 4000, 10),
                75,
            ),
        ];
        for (name, p, n, want) in cases {
            assert_eq!(score(&p, &n), want, "{name}");
        }
    }
}
