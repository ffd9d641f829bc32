//! Score: spread the pods of one owner (a ReplicaSet, …) across nodes, like kube-scheduler's
//! former `SelectorSpread` and today's default `PodTopologySpread` on hostname: the fewer pods
//! of the same controlling owner a node runs, the better.

use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;

/// Raw score: pods on the node with the same controlling owner (0 for owner-less pods).
pub fn same_owner_count(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let Some(owner) = &pod.owner_uid else {
        return 0;
    };
    node.pods
        .iter()
        .filter(|p| p.owner_uid.as_ref() == Some(owner) && p.key != pod.key)
        .count() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::fixture::node;
    use crate::pod_info::fixture::pod;

    #[test]
    fn table() {
        let n = node("n")
            .with_pod(pod("rs-a").owner("rs"))
            .with_pod(pod("rs-b").owner("rs"))
            .with_pod(pod("other").owner("rs2"));
        let cases = [
            ("same owner counted", pod("rs-c").owner("rs"), 2),
            ("other owner", pod("x").owner("rs3"), 0),
            ("no owner", pod("x"), 0),
        ];
        for (name, p, want) in cases {
            assert_eq!(same_owner_count(&p, &n), want, "{name}");
        }
    }
}
