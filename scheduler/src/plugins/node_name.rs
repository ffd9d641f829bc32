//! Filter: a pod that names its node (`spec.nodeName`) fits only there (kube-scheduler's
//! `NodeName`).

use super::Reason;
use crate::pod_info::PodInfo;

pub const MISMATCH: &str = "node(s) didn't match the requested node name";

pub fn fits(pod: &PodInfo, node_name: &str) -> Result<(), Reason> {
    match &pod.node_name {
        Some(wanted) if wanted != node_name => Err(Reason::Borrowed(MISMATCH)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_info::fixture::pod;

    #[test]
    fn table() {
        let cases = [
            ("no node name", pod("a"), "n1", true),
            ("same node", pod("a").on_node("n1"), "n1", true),
            ("other node", pod("a").on_node("n2"), "n1", false),
        ];
        for (name, p, node, want) in cases {
            assert_eq!(fits(&p, node).is_ok(), want, "{name}");
        }
    }
}
