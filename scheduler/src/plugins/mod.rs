//! Filter and score plugins, one file per concern, each a pure function of the pod and the
//! node with a table test. This module runs them in kube-scheduler's default order and
//! combines the scores.

use std::borrow::Cow;

use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;

pub mod balanced_allocation;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_fit;
pub mod node_selector;
pub mod node_unschedulable;
pub mod owner_spread;
pub mod pod_anti_affinity;
pub mod resource_allocation;
pub mod taint_toleration;

pub use resource_allocation::Strategy;

/// Why a node does not fit, in kube-scheduler's words (counted per reason in the message).
pub type Reason = Cow<'static, str>;

/// Runs the filters in kube-scheduler's default order, stopping at the first that rejects the
/// node (as its framework does); only the resources filter reports several reasons at once.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<Reason>> {
    let Some(facts) = &node.facts else {
        return Err(vec![Reason::Borrowed("node(s) not found")]);
    };
    let one = |r: Reason| vec![r];
    node_unschedulable::fits(pod, facts).map_err(one)?;
    node_name::fits(pod, &node.name).map_err(one)?;
    taint_toleration::fits(pod, facts).map_err(one)?;
    node_selector::fits(pod, &facts.labels).map_err(one)?;
    node_affinity::fits(pod, &node.name, &facts.labels).map_err(one)?;
    node_ports::fits(pod, &node.used_ports).map_err(one)?;
    node_resources_fit::fits(pod, node)?;
    pod_anti_affinity::fits(pod, node).map_err(one)?;
    Ok(())
}

// Score weights: kube-scheduler's defaults for the matching plugins (NodeResourcesFit 1,
// BalancedAllocation 1, NodeAffinity 2, PodTopologySpread 2, TaintToleration 3).
const RESOURCES_WEIGHT: i64 = 1;
const BALANCED_WEIGHT: i64 = 1;
const AFFINITY_WEIGHT: i64 = 2;
const SPREAD_WEIGHT: i64 = 2;
const TAINT_WEIGHT: i64 = 3;

/// Scales raw scores to 0..=100 by the largest one; `reverse` makes the smallest best.
fn normalize(raw: &mut [i64], reverse: bool) {
    let max = raw.iter().copied().max().unwrap_or(0);
    for s in raw.iter_mut() {
        *s = match (max, reverse) {
            (0, true) => 100,
            (0, false) => 0,
            (max, false) => *s * 100 / max,
            (max, true) => (max - *s) * 100 / max,
        };
    }
}

/// Weighted total score of each feasible node for the pod.
pub fn score(pod: &PodInfo, nodes: &[&NodeInfo], strategy: Strategy) -> Vec<i64> {
    let mut total: Vec<i64> = nodes
        .iter()
        .map(|n| {
            RESOURCES_WEIGHT * resource_allocation::score(strategy, pod, n)
                + BALANCED_WEIGHT * balanced_allocation::score(pod, n)
        })
        .collect();
    let mut add = |weight: i64, reverse: bool, raw: &dyn Fn(&NodeInfo) -> i64| {
        let mut scores: Vec<i64> = nodes.iter().map(|n| raw(n)).collect();
        normalize(&mut scores, reverse);
        for (t, s) in total.iter_mut().zip(scores) {
            *t += weight * s;
        }
    };
    if pod.owner_uid.is_some() {
        add(SPREAD_WEIGHT, true, &|n| {
            owner_spread::same_owner_count(pod, n)
        });
    }
    if !pod.preferred_node_affinity.is_empty() {
        add(AFFINITY_WEIGHT, false, &|n| {
            let labels = n.facts.as_ref().map(|f| &f.labels);
            labels.map_or(0, |l| node_affinity::preferred_weight(pod, &n.name, l))
        });
    }
    let tainted = nodes
        .iter()
        .any(|n| n.facts.as_ref().is_some_and(|f| !f.taints.is_empty()));
    if tainted {
        add(TAINT_WEIGHT, true, &|n| {
            n.facts
                .as_ref()
                .map_or(0, |f| taint_toleration::intolerable_preferred(pod, f))
        });
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::fixture::node;
    use crate::pod_info::fixture::pod;

    #[test]
    fn filters_stop_at_the_first_rejection() {
        let n = node("n").taint("k", "v", "NoSchedule").allocatable(0, 0, 0);
        let reasons = filter(&pod("p").requests(1, 1), &n).expect_err("tainted");
        assert_eq!(reasons, vec!["node(s) had untolerated taint {k: v}"]);
        let n = node("n").allocatable(0, 0, 0);
        let reasons = filter(&pod("p").requests(1, 1), &n).expect_err("full");
        assert_eq!(reasons.len(), 3);
    }

    #[test]
    fn spreading_prefers_the_node_without_siblings() {
        let busy = node("busy").with_pod(pod("rs-1").owner("rs"));
        let idle = node("idle").with_pod(pod("other"));
        let p = pod("rs-2").owner("rs");
        let scores = score(&p, &[&busy, &idle], Strategy::LeastAllocated);
        assert!(scores[1] > scores[0], "{scores:?}");
    }

    #[test]
    fn prefer_no_schedule_lowers_the_score() {
        let tainted = node("t").taint("k", "", "PreferNoSchedule");
        let clean = node("c");
        let scores = score(&pod("p"), &[&tainted, &clean], Strategy::LeastAllocated);
        assert_eq!(scores[1] - scores[0], TAINT_WEIGHT * 100);
    }

    #[test]
    fn most_allocated_packs() {
        let fuller = node("f").with_pod(pod("x").requests(2000, 4 << 30));
        let empty = node("e");
        let p = pod("p").requests(100, 100);
        let least = score(&p, &[&fuller, &empty], Strategy::LeastAllocated);
        let most = score(&p, &[&fuller, &empty], Strategy::MostAllocated);
        assert!(least[1] > least[0], "{least:?}");
        assert!(most[0] > most[1], "{most:?}");
    }
}
