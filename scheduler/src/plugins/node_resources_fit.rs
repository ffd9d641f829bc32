//! Filter: the node has room for the pod's requests (kube-scheduler's `NodeResourcesFit`):
//! one more pod within `allocatable.pods`, and for CPU and memory — when the pod requests any —
//! the requests of the pods already there (bound or assumed) plus the pod's within allocatable.
//! Every shortfall is reported, as kube-scheduler does (`Insufficient cpu`, `Too many pods`).

use super::Reason;
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;

pub const TOO_MANY_PODS: &str = "Too many pods";
pub const INSUFFICIENT_CPU: &str = "Insufficient cpu";
pub const INSUFFICIENT_MEMORY: &str = "Insufficient memory";

pub fn fits(pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<Reason>> {
    let Some(facts) = &node.facts else {
        return Ok(());
    };
    let mut reasons = Vec::new();
    if node.pods.len() as i64 + 1 > facts.allocatable_pods {
        reasons.push(Reason::Borrowed(TOO_MANY_PODS));
    }
    let want = pod.requests;
    let free_cpu = facts.allocatable.cpu_millis - node.requested.cpu_millis;
    if want.cpu_millis > 0 && want.cpu_millis > free_cpu {
        reasons.push(Reason::Borrowed(INSUFFICIENT_CPU));
    }
    let free_memory = facts.allocatable.memory_bytes - node.requested.memory_bytes;
    if want.memory_bytes > 0 && want.memory_bytes > free_memory {
        reasons.push(Reason::Borrowed(INSUFFICIENT_MEMORY));
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::fixture::node;
    use crate::pod_info::fixture::pod;

    #[test]
    fn table() {
        let gi = 1i64 << 30;
        let cases: Vec<(&str, PodInfo, NodeInfo, Vec<&str>)> = vec![
            (
                "fits empty node",
                pod("p").requests(1000, gi),
                node("n").allocatable(2000, 2 * gi, 10),
                vec![],
            ),
            (
                "exactly fills the node",
                pod("p").requests(1000, gi),
                node("n")
                    .allocatable(2000, 2 * gi, 10)
                    .with_pod(pod("x").requests(1000, gi)),
                vec![],
            ),
            (
                "cpu short",
                pod("p").requests(1001, gi),
                node("n")
                    .allocatable(2000, 2 * gi, 10)
                    .with_pod(pod("x").requests(1000, 0)),
                vec![INSUFFICIENT_CPU],
            ),
            (
                "memory short",
                pod("p").requests(0, gi + 1),
                node("n")
                    .allocatable(2000, 2 * gi, 10)
                    .with_pod(pod("x").requests(0, gi)),
                vec![INSUFFICIENT_MEMORY],
            ),
            (
                "every shortfall reported",
                pod("p").requests(3000, 3 * gi),
                node("n").allocatable(2000, 2 * gi, 1).with_pod(pod("x")),
                vec![TOO_MANY_PODS, INSUFFICIENT_CPU, INSUFFICIENT_MEMORY],
            ),
            (
                "no requests fit an overcommitted node",
                pod("p"),
                node("n")
                    .allocatable(100, 100, 10)
                    .with_pod(pod("x").requests(500, 500)),
                vec![],
            ),
            (
                "zero pods allowed",
                pod("p"),
                node("n").allocatable(100, 100, 0),
                vec![TOO_MANY_PODS],
            ),
        ];
        for (name, p, n, want) in cases {
            let got: Vec<String> = match fits(&p, &n) {
                Ok(()) => vec![],
                Err(reasons) => reasons.into_iter().map(|r| r.into_owned()).collect(),
            };
            assert_eq!(got, want, "{name}");
        }
    }
}
