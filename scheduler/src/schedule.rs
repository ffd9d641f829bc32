//! One scheduling attempt: find feasible nodes (a sample of them when there are many), score
//! them, pick the best with ties broken at random — all from the cache, without API calls.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cache::Cache;
use crate::node_info::NodeInfo;
use crate::plugins::{self, Strategy};
use crate::pod_info::PodInfo;

/// kube-scheduler's `minFeasibleNodesToFind`: below this many nodes, all are checked.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// kube-scheduler's `minFeasibleNodesPercentageToFind`: the adaptive percentage's floor.
const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

/// How many feasible nodes to find before scoring (kube-scheduler's
/// `numFeasibleNodesToFind`): all of a small cluster, else `percentage` of the nodes — or,
/// with 0, an adaptive 50% minus 1% per 125 nodes, at least 5% — and never fewer than 100.
pub fn feasible_nodes_to_find(num_nodes: usize, percentage: u32) -> usize {
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND || percentage >= 100 {
        return num_nodes;
    }
    let percent = match percentage as usize {
        0 => (50usize.saturating_sub(num_nodes / 125)).max(MIN_FEASIBLE_NODES_PERCENTAGE),
        p => p,
    };
    (num_nodes * percent / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// No node fits: the reasons, counted per reason over the nodes checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub num_nodes: usize,
    pub reasons: BTreeMap<String, usize>,
}

impl FitError {
    /// kube-scheduler's message: `0/3 nodes are available: 1 node(s) had untolerated taint
    /// {k: v}, 2 Insufficient memory. preemption: …` — each reason with its count, the
    /// "count reason" strings sorted. minik8s does not preempt, so the preemption part says
    /// preemption cannot help on any node.
    pub fn message(&self) -> String {
        if self.num_nodes == 0 {
            return "no nodes available to schedule pods".to_string();
        }
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect();
        parts.sort();
        let n = self.num_nodes;
        format!(
            "0/{n} nodes are available: {}. preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling.",
            parts.join(", ")
        )
    }
}

/// The scheduling algorithm and its state across attempts.
#[derive(Debug)]
pub struct Algorithm {
    pub strategy: Strategy,
    /// 0 = adaptive (kube-scheduler's default).
    pub percentage_of_nodes_to_score: u32,
    /// Where the next search starts, so that sampling visits all nodes in turn.
    next_start: usize,
    rng: StdRng,
}

impl Algorithm {
    pub fn new(strategy: Strategy, percentage_of_nodes_to_score: u32) -> Algorithm {
        Algorithm {
            strategy,
            percentage_of_nodes_to_score,
            next_start: 0,
            rng: StdRng::from_entropy(),
        }
    }

    /// Picks the node for `pod`, or says why none fits.
    pub fn schedule(&mut self, cache: &Cache, pod: &PodInfo) -> Result<String, FitError> {
        let num_nodes = cache.node_count();
        let want = feasible_nodes_to_find(num_nodes, self.percentage_of_nodes_to_score);
        let start = if num_nodes == 0 {
            0
        } else {
            self.next_start % num_nodes
        };
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(num_nodes));
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut processed = 0;
        for i in 0..num_nodes {
            if feasible.len() >= want {
                break;
            }
            processed += 1;
            let node = cache.node_at((start + i) % num_nodes);
            match plugins::filter(pod, node) {
                Ok(()) => feasible.push(node),
                Err(why) => {
                    for reason in why {
                        *reasons.entry(reason.into_owned()).or_default() += 1;
                    }
                }
            }
        }
        if num_nodes > 0 {
            self.next_start = (start + processed) % num_nodes;
        }
        match feasible.len() {
            0 => Err(FitError { num_nodes, reasons }),
            1 => Ok(feasible[0].name.clone()),
            _ => Ok(self.select(pod, &feasible)),
        }
    }

    /// Highest total score; among equals, each is chosen with equal chance (reservoir
    /// sampling, as kube-scheduler's `selectHost`).
    fn select(&mut self, pod: &PodInfo, feasible: &[&NodeInfo]) -> String {
        let scores = plugins::score(pod, feasible, self.strategy);
        let mut best = 0;
        let mut ties = 0u32;
        for (i, s) in scores.iter().enumerate() {
            if *s > scores[best] {
                best = i;
                ties = 1;
            } else if *s == scores[best] {
                ties += 1;
                if self.rng.gen_range(0..ties) == 0 {
                    best = i;
                }
            }
        }
        feasible[best].name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::fixture::node;
    use crate::pod_info::fixture::pod;
    use std::collections::HashSet;
    use std::sync::Arc;

    fn cache_of(nodes: Vec<NodeInfo>) -> Cache {
        let mut c = Cache::default();
        for n in nodes {
            c.upsert_node(&n.name, n.facts.clone().expect("facts"));
            for p in n.pods {
                c.add_bound_pod(Arc::new(PodInfo::clone(&p).on_node(&n.name)));
            }
        }
        c
    }

    #[test]
    fn feasible_node_counts_follow_kube_scheduler() {
        let cases = [
            (50, 0, 50),
            (100, 0, 100),
            (1000, 0, 420),
            (5000, 0, 500),
            (10_000, 0, 500),
            (6000, 0, 300),
            (5000, 50, 2500),
            (500, 10, 100),
        ];
        for (nodes, pct, want) in cases {
            assert_eq!(
                feasible_nodes_to_find(nodes, pct),
                want,
                "{nodes} nodes at {pct}%"
            );
        }
    }

    #[test]
    fn message_matches_kube_scheduler() {
        let err = FitError {
            num_nodes: 3,
            reasons: BTreeMap::from([
                ("Insufficient memory".to_string(), 2),
                (
                    "node(s) had untolerated taint {dedicated: infra}".to_string(),
                    1,
                ),
            ]),
        };
        assert_eq!(
            err.message(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}, 2 Insufficient memory. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn counts_reasons_over_all_nodes() {
        let gi = 1i64 << 30;
        let cache = cache_of(vec![
            node("a").allocatable(4000, gi, 10),
            node("b").allocatable(4000, gi, 10),
            node("c").taint("dedicated", "infra", "NoSchedule"),
        ]);
        let mut alg = Algorithm::new(Strategy::LeastAllocated, 0);
        let err = alg
            .schedule(&cache, &pod("p").requests(100, 2 * gi))
            .expect_err("nothing fits");
        assert_eq!(err.num_nodes, 3);
        assert_eq!(err.reasons.get("Insufficient memory"), Some(&2));
        assert_eq!(
            err.reasons
                .get("node(s) had untolerated taint {dedicated: infra}"),
            Some(&1)
        );
    }

    #[test]
    fn ties_are_broken_randomly() {
        let cache = cache_of((0..4).map(|i| node(&format!("n{i}"))).collect());
        let mut alg = Algorithm::new(Strategy::LeastAllocated, 0);
        let chosen: HashSet<String> = (0..200)
            .map(|_| alg.schedule(&cache, &pod("p")).expect("fits"))
            .collect();
        assert_eq!(
            chosen.len(),
            4,
            "equal nodes should all be chosen sometimes: {chosen:?}"
        );
    }

    #[test]
    fn sampling_rotates_through_large_clusters() {
        let cache = cache_of((0..1000).map(|i| node(&format!("n{i}"))).collect());
        let mut alg = Algorithm::new(Strategy::LeastAllocated, 0);
        alg.schedule(&cache, &pod("p")).expect("fits");
        assert_eq!(alg.next_start, 420);
        alg.schedule(&cache, &pod("p")).expect("fits");
        assert_eq!(alg.next_start, 840);
    }

    #[test]
    fn assumed_pods_fill_the_last_slot_once() {
        let mut cache = cache_of(vec![node("only").allocatable(1000, 1 << 30, 10)]);
        let mut alg = Algorithm::new(Strategy::LeastAllocated, 0);
        let first = pod("a").requests(600, 0);
        let node = alg.schedule(&cache, &first).expect("first fits");
        cache.assume(Arc::new(first), &node);
        let err = alg
            .schedule(&cache, &pod("b").requests(600, 0))
            .expect_err("second must not fit");
        assert_eq!(err.reasons.get("Insufficient cpu"), Some(&1));
    }
}
