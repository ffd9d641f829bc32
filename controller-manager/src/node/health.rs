//! Node health (Kubernetes' node lifecycle controller): a node whose Lease in
//! kube-node-lease has not been renewed within the grace period is marked Ready=Unknown, and
//! NotReady/Unknown nodes carry the not-ready/unreachable taints, NoSchedule and NoExecute.

use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// The node's Ready condition status ("True", "False", "Unknown"); absent counts as Unknown.
pub fn ready_status(node: &Node) -> String {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone())
        .unwrap_or_else(|| "Unknown".into())
}

/// Conditions with Ready set to Unknown (Kubernetes marks every condition Unknown the same
/// way when the kubelet stops posting); None if they already are.
pub fn mark_unknown(node: &Node) -> Option<Vec<NodeCondition>> {
    let mut conds = node.status.as_ref()?.conditions.clone().unwrap_or_default();
    let now = Time(Timestamp::now());
    let mut changed = false;
    if !conds.iter().any(|c| c.type_ == "Ready") {
        conds.push(NodeCondition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            ..Default::default()
        });
    }
    for c in conds.iter_mut() {
        if c.status != "Unknown" {
            c.status = "Unknown".into();
            c.reason = Some("NodeStatusUnknown".into());
            c.message = Some("Kubelet stopped posting node status.".into());
            c.last_transition_time = Some(now.clone());
            changed = true;
        } else if c.type_ == "Ready" && c.reason.as_deref() != Some("NodeStatusUnknown") {
            c.reason = Some("NodeStatusUnknown".into());
            c.message = Some("Kubelet stopped posting node status.".into());
            changed = true;
        }
    }
    changed.then_some(conds)
}

/// The node's taints with the lifecycle taints set for its Ready status; None if unchanged.
pub fn desired_taints(node: &Node) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let key = match ready_status(node).as_str() {
        "True" => None,
        "False" => Some(NOT_READY),
        _ => Some(UNREACHABLE),
    };
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| (t.key != UNREACHABLE && t.key != NOT_READY) || Some(t.key.as_str()) == key)
        .cloned()
        .collect();
    if let Some(key) = key {
        for effect in ["NoSchedule", "NoExecute"] {
            if !taints.iter().any(|t| t.key == key && t.effect == effect) {
                taints.push(Taint {
                    key: key.into(),
                    effect: effect.into(),
                    value: None,
                    time_added: (effect == "NoExecute").then(|| Time(Timestamp::now())),
                });
            }
        }
    }
    (taints != current).then_some(taints)
}
