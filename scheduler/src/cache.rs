//! The scheduler's cache of nodes and of the pods on them, fed by the watchers.
//!
//! Like kube-scheduler's cache, a pod chosen for a node is *assumed* there at once — before its
//! binding reaches the API server — so the next attempt already sees its requests and two pods
//! never take the same last slot. The watch event of the bound pod confirms the assumption; a
//! failed binding forgets it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::node_info::{NodeFacts, NodeInfo};
use crate::pod_info::{PodInfo, PodKey};

#[derive(Debug, Clone)]
struct PodPlace {
    node: String,
    assumed: bool,
}

/// Nodes in a slab indexed by position (the scheduling loop visits hundreds of nodes per pod
/// and reaches each by position, not by hashing its name), a name index, the positions of
/// the nodes that exist in a stable order (for sampling), and where each pod is placed.
#[derive(Debug, Default)]
pub struct Cache {
    slots: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    order: Vec<usize>,
    pods: HashMap<PodKey, PodPlace>,
}

impl Cache {
    /// The slot of `name`, created empty if new.
    fn slot_of(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.slots.push(NodeInfo::new(name));
        let i = self.slots.len() - 1;
        self.index.insert(name.to_string(), i);
        i
    }

    /// Frees the slot of a node that neither exists nor holds pods, moving the last slot
    /// into its place (and fixing that node's index and order entry).
    fn free_slot(&mut self, i: usize) {
        let name = self.slots[i].name.clone();
        self.index.remove(&name);
        let last = self.slots.len() - 1;
        self.slots.swap_remove(i);
        if i != last {
            self.index.insert(self.slots[i].name.clone(), i);
            if let Some(o) = self.order.iter_mut().find(|o| **o == last) {
                *o = i;
            }
        }
    }

    /// Adds or updates a node; returns whether its scheduling facts changed (so pods that
    /// could not be placed before may fit now).
    pub fn upsert_node(&mut self, name: &str, facts: NodeFacts) -> bool {
        let i = self.slot_of(name);
        let info = &mut self.slots[i];
        if info.facts.is_none() {
            self.order.push(i);
        }
        let changed = info.facts.as_ref() != Some(&facts);
        info.facts = Some(facts);
        changed
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        if self.slots[i].facts.take().is_some() {
            if let Some(o) = self.order.iter().position(|o| *o == i) {
                self.order.swap_remove(o);
            }
        }
        // Pods bound to a deleted node stay counted until their own deletion arrives.
        if self.slots[i].pods.is_empty() {
            self.free_slot(i);
        }
    }

    /// Drops nodes not in `seen` (after a relist).
    pub fn retain_nodes(&mut self, seen: &HashSet<String>) {
        let gone: Vec<String> = self
            .order
            .iter()
            .map(|&i| &self.slots[i].name)
            .filter(|n| !seen.contains(*n))
            .cloned()
            .collect();
        for name in gone {
            self.remove_node(&name);
        }
    }

    /// Number of existing nodes (those with a Node object).
    pub fn node_count(&self) -> usize {
        self.order.len()
    }

    /// The `i`th existing node in the cache's stable order.
    pub fn node_at(&self, i: usize) -> &NodeInfo {
        &self.slots[self.order[i]]
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.slots[i])
    }

    /// Whether the pod is already placed (bound, or assumed and binding).
    pub fn is_placed(&self, key: &PodKey) -> bool {
        self.pods.contains_key(key)
    }

    fn place(&mut self, pod: Arc<PodInfo>, node: &str, assumed: bool) {
        self.unplace(&pod.key);
        self.pods.insert(
            pod.key.clone(),
            PodPlace {
                node: node.to_string(),
                assumed,
            },
        );
        let i = self.slot_of(node);
        self.slots[i].add_pod(pod);
    }

    fn unplace(&mut self, key: &PodKey) -> Option<PodPlace> {
        let place = self.pods.remove(key)?;
        if let Some(&i) = self.index.get(&place.node) {
            let info = &mut self.slots[i];
            info.remove_pod(key);
            if info.facts.is_none() && info.pods.is_empty() {
                self.free_slot(i);
            }
        }
        Some(place)
    }

    /// Counts `pod` on `node` before its binding is acknowledged.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.place(pod, node, true);
    }

    /// Undoes [`Cache::assume`] after a failed binding. A pod the watch has meanwhile
    /// confirmed is left alone.
    pub fn forget(&mut self, key: &PodKey) {
        if self.pods.get(key).is_some_and(|p| p.assumed) {
            self.unplace(key);
        }
    }

    /// Records a pod the API server reports bound (confirming an assumption if any).
    pub fn add_bound_pod(&mut self, pod: Arc<PodInfo>) {
        let node = pod.node_name.clone().unwrap_or_default();
        self.place(pod, &node, false);
    }

    /// Removes a pod that was deleted or finished; returns whether it was counted.
    pub fn remove_pod(&mut self, key: &PodKey) -> bool {
        self.unplace(key).is_some()
    }

    /// Drops bound (not assumed) pods not in `seen` (after a relist).
    pub fn retain_bound_pods(&mut self, seen: &HashSet<PodKey>) {
        let gone: Vec<PodKey> = self
            .pods
            .iter()
            .filter(|(k, p)| !p.assumed && !seen.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.unplace(&key);
        }
    }

    /// Number of pods counted as assumed (binding in flight or unconfirmed).
    pub fn assumed_count(&self) -> usize {
        self.pods.values().filter(|p| p.assumed).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::fixture::node;
    use crate::pod_info::fixture::pod;

    fn cache_with(names: &[&str]) -> Cache {
        let mut c = Cache::default();
        for n in names {
            c.upsert_node(n, node(n).facts.expect("fixture facts"));
        }
        c
    }

    #[test]
    fn assume_counts_at_once_and_forget_undoes() {
        let mut c = cache_with(&["n1"]);
        c.assume(Arc::new(pod("a").requests(500, 0)), "n1");
        assert_eq!(c.node("n1").map(|n| n.requested.cpu_millis), Some(500));
        assert!(c.is_placed(&pod("a").key));
        c.forget(&pod("a").key);
        assert_eq!(c.node("n1").map(|n| n.requested.cpu_millis), Some(0));
        assert!(!c.is_placed(&pod("a").key));
    }

    #[test]
    fn confirmed_pod_is_not_forgotten() {
        let mut c = cache_with(&["n1"]);
        c.assume(Arc::new(pod("a").requests(500, 0)), "n1");
        c.add_bound_pod(Arc::new(pod("a").requests(500, 0).on_node("n1")));
        c.forget(&pod("a").key);
        assert_eq!(c.node("n1").map(|n| n.requested.cpu_millis), Some(500));
        assert_eq!(c.assumed_count(), 0);
    }

    #[test]
    fn bound_pod_moving_nodes_is_counted_once() {
        let mut c = cache_with(&["n1", "n2"]);
        c.assume(Arc::new(pod("a").requests(500, 0)), "n1");
        // Another scheduler won: the watch reports the pod on n2.
        c.add_bound_pod(Arc::new(pod("a").requests(500, 0).on_node("n2")));
        assert_eq!(c.node("n1").map(|n| n.requested.cpu_millis), Some(0));
        assert_eq!(c.node("n2").map(|n| n.requested.cpu_millis), Some(500));
    }

    #[test]
    fn node_updates_report_relevant_changes_only() {
        let mut c = Cache::default();
        let facts = node("n1").facts.expect("fixture facts");
        assert!(c.upsert_node("n1", facts.clone()));
        assert!(!c.upsert_node("n1", facts.clone()));
        let mut cordoned = facts;
        cordoned.unschedulable = true;
        assert!(c.upsert_node("n1", cordoned));
        assert_eq!(c.node_count(), 1);
    }

    #[test]
    fn pods_on_unknown_or_deleted_nodes_are_kept_but_not_offered() {
        let mut c = cache_with(&["n1", "n2"]);
        c.add_bound_pod(Arc::new(pod("a").on_node("n1")));
        c.add_bound_pod(Arc::new(pod("b").on_node("ghost")));
        c.remove_node("n1");
        assert_eq!(c.node_count(), 1);
        assert_eq!(c.node_at(0).name, "n2");
        assert_eq!(c.node("n2").map(|n| n.name.as_str()), Some("n2"));
        assert!(c.node("n1").is_some(), "n1 still holds pod a");
        c.remove_pod(&pod("a").key);
        assert!(c.node("n1").is_none());
        // The node appears after its pod: the pod is already counted.
        c.upsert_node("ghost", node("ghost").facts.expect("fixture facts"));
        assert_eq!(c.node("ghost").map(|n| n.pods.len()), Some(1));
    }

    #[test]
    fn freeing_a_slot_keeps_the_index_and_order_of_the_moved_node() {
        let mut c = cache_with(&["a", "b", "c"]);
        c.add_bound_pod(Arc::new(pod("p").requests(100, 0).on_node("c")));
        c.remove_node("a");
        assert_eq!(c.node_count(), 2);
        let names: HashSet<&str> = (0..2).map(|i| c.node_at(i).name.as_str()).collect();
        assert_eq!(names, HashSet::from(["b", "c"]));
        assert_eq!(c.node("c").map(|n| n.requested.cpu_millis), Some(100));
        c.remove_pod(&pod("p").key);
        assert_eq!(c.node("c").map(|n| n.requested.cpu_millis), Some(0));
        assert!(c.node("a").is_none());
    }

    #[test]
    fn relist_drops_vanished_objects_but_keeps_assumed_pods() {
        let mut c = cache_with(&["n1", "n2"]);
        c.add_bound_pod(Arc::new(pod("a").on_node("n1")));
        c.assume(Arc::new(pod("b")), "n1");
        c.retain_nodes(&HashSet::from(["n1".to_string()]));
        c.retain_bound_pods(&HashSet::new());
        assert_eq!(c.node_count(), 1);
        assert!(!c.is_placed(&pod("a").key));
        assert!(c.is_placed(&pod("b").key));
    }
}
