//! Filter: every `spec.nodeSelector` label is on the node with the same value (part of
//! kube-scheduler's `NodeAffinity`, which shares its failure message).

use std::collections::BTreeMap;

use super::Reason;
use crate::pod_info::PodInfo;

pub const MISMATCH: &str = "node(s) didn't match Pod's node affinity/selector";

pub fn matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

pub fn fits(pod: &PodInfo, labels: &BTreeMap<String, String>) -> Result<(), Reason> {
    if matches(&pod.node_selector, labels) {
        Ok(())
    } else {
        Err(Reason::Borrowed(MISMATCH))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn table() {
        let cases = [
            ("empty selector", map(&[]), map(&[]), true),
            (
                "all match",
                map(&[("disk", "ssd")]),
                map(&[("disk", "ssd"), ("x", "y")]),
                true,
            ),
            (
                "value differs",
                map(&[("disk", "ssd")]),
                map(&[("disk", "hdd")]),
                false,
            ),
            (
                "label missing",
                map(&[("disk", "ssd")]),
                map(&[("x", "y")]),
                false,
            ),
            (
                "one of two missing",
                map(&[("disk", "ssd"), ("zone", "a")]),
                map(&[("disk", "ssd")]),
                false,
            ),
        ];
        for (name, selector, labels, want) in cases {
            assert_eq!(matches(&selector, &labels), want, "{name}");
        }
    }
}
