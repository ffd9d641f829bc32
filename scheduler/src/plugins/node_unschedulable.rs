//! Filter: the node is Ready and not cordoned (kube-scheduler's `NodeUnschedulable`, plus the
//! not-ready check the node lifecycle controller expresses as a taint).
//!
//! A pod tolerating `node.kubernetes.io/unschedulable:NoSchedule` may go to a cordoned node,
//! and one tolerating `node.kubernetes.io/not-ready:NoSchedule` to a node that is not Ready
//! (DaemonSet pods do both), as in Kubernetes.

use k8s_openapi::api::core::v1::Taint;

use super::taint_toleration::{tolerated, untolerated_reason};
use super::Reason;
use crate::node_info::NodeFacts;
use crate::pod_info::PodInfo;

pub const UNSCHEDULABLE: &str = "node(s) were unschedulable";
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";
const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

fn no_schedule(key: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: "NoSchedule".into(),
        value: None,
        time_added: None,
    }
}

pub fn fits(pod: &PodInfo, node: &NodeFacts) -> Result<(), Reason> {
    if node.unschedulable && !tolerated(&pod.tolerations, &no_schedule(UNSCHEDULABLE_TAINT)) {
        return Err(Reason::Borrowed(UNSCHEDULABLE));
    }
    // A node that is not Ready carries the not-ready taint in Kubernetes; the message is the
    // one the taint would give, so kubectl users read what they are used to.
    if node.ready {
        return Ok(());
    }
    let not_ready = no_schedule(NOT_READY_TAINT);
    if !tolerated(&pod.tolerations, &not_ready) {
        return Err(untolerated_reason(&not_ready));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::fixture::node;
    use crate::pod_info::fixture::pod;
    use k8s_openapi::api::core::v1::Toleration;

    fn tolerate(key: &str) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }
    }

    #[test]
    fn table() {
        let ready = node("n").facts.expect("facts");
        let cordoned = NodeFacts {
            unschedulable: true,
            ..ready.clone()
        };
        let not_ready = NodeFacts {
            ready: false,
            ..ready.clone()
        };
        let mut tolerant = pod("t");
        tolerant.tolerations = vec![tolerate(UNSCHEDULABLE_TAINT), tolerate(NOT_READY_TAINT)];
        let plain = pod("p");
        let cases = [
            ("ready node", &plain, &ready, Ok(())),
            (
                "cordoned",
                &plain,
                &cordoned,
                Err(UNSCHEDULABLE.to_string()),
            ),
            (
                "not ready",
                &plain,
                &not_ready,
                Err("node(s) had untolerated taint {node.kubernetes.io/not-ready: }".to_string()),
            ),
            ("cordoned but tolerated", &tolerant, &cordoned, Ok(())),
            ("not ready but tolerated", &tolerant, &not_ready, Ok(())),
        ];
        for (name, p, n, want) in cases {
            assert_eq!(fits(p, n).map_err(|r| r.into_owned()), want, "{name}");
        }
    }
}
