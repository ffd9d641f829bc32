//! Filter and score: taints and tolerations (kube-scheduler's `TaintToleration`).
//!
//! A node's `NoSchedule` and `NoExecute` taints keep out every pod that does not tolerate them;
//! `PreferNoSchedule` taints only lower the node's score. A toleration matches a taint when its
//! effect is empty or equal, its key is empty or equal, and its operator is `Exists` or
//! (`Equal`/empty) with an equal value — so an empty key with `Exists` tolerates everything.

use k8s_openapi::api::core::v1::{Taint, Toleration};

use super::Reason;
use crate::node_info::NodeFacts;
use crate::pod_info::PodInfo;

pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "Exists" => true,
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// kube-scheduler's message for the first taint a pod does not tolerate.
pub fn untolerated_reason(taint: &Taint) -> Reason {
    Reason::Owned(format!(
        "node(s) had untolerated taint {{{}: {}}}",
        taint.key,
        taint.value.as_deref().unwrap_or_default()
    ))
}

pub fn fits(pod: &PodInfo, node: &NodeFacts) -> Result<(), Reason> {
    let blocking = node
        .taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerated(&pod.tolerations, t));
    match blocking {
        Some(taint) => Err(untolerated_reason(taint)),
        None => Ok(()),
    }
}

/// Raw score: how many `PreferNoSchedule` taints the pod does not tolerate (fewer is better;
/// normalised in reverse).
pub fn intolerable_preferred(pod: &PodInfo, node: &NodeFacts) -> i64 {
    node.taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(&pod.tolerations, t))
        .count() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::fixture::node;
    use crate::pod_info::fixture::pod;

    fn tol(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration {
            key: some(key),
            operator: some(op),
            value: some(value),
            effect: some(effect),
            toleration_seconds: None,
        }
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }

    #[test]
    fn toleration_matching_table() {
        let t = taint("gpu", "true", "NoSchedule");
        let cases = [
            (
                "equal key value effect",
                tol("gpu", "Equal", "true", "NoSchedule"),
                true,
            ),
            (
                "empty operator means Equal",
                tol("gpu", "", "true", "NoSchedule"),
                true,
            ),
            (
                "value differs",
                tol("gpu", "Equal", "false", "NoSchedule"),
                false,
            ),
            (
                "exists ignores value",
                tol("gpu", "Exists", "", "NoSchedule"),
                true,
            ),
            (
                "empty effect matches all effects",
                tol("gpu", "Exists", "", ""),
                true,
            ),
            (
                "effect differs",
                tol("gpu", "Exists", "", "NoExecute"),
                false,
            ),
            ("key differs", tol("disk", "Exists", "", ""), false),
            (
                "empty key with Exists tolerates all",
                tol("", "Exists", "", ""),
                true,
            ),
            ("unknown operator", tol("gpu", "In", "true", ""), false),
        ];
        for (name, toleration, want) in cases {
            assert_eq!(tolerates(&toleration, &t), want, "{name}");
        }
    }

    #[test]
    fn filter_table() {
        let mut tolerant = pod("t");
        tolerant.tolerations = vec![tol("gpu", "Exists", "", "")];
        let cases = [
            ("no taints", pod("p"), node("n"), Ok(())),
            (
                "NoSchedule blocks",
                pod("p"),
                node("n").taint("gpu", "true", "NoSchedule"),
                Err("node(s) had untolerated taint {gpu: true}"),
            ),
            (
                "NoExecute blocks",
                pod("p"),
                node("n").taint("dedicated", "", "NoExecute"),
                Err("node(s) had untolerated taint {dedicated: }"),
            ),
            (
                "PreferNoSchedule does not block",
                pod("p"),
                node("n").taint("gpu", "true", "PreferNoSchedule"),
                Ok(()),
            ),
            (
                "tolerated",
                tolerant.clone(),
                node("n").taint("gpu", "true", "NoSchedule"),
                Ok(()),
            ),
            (
                "first untolerated taint is reported",
                tolerant,
                node("n")
                    .taint("gpu", "true", "NoSchedule")
                    .taint("zone", "a", "NoSchedule"),
                Err("node(s) had untolerated taint {zone: a}"),
            ),
        ];
        for (name, p, n, want) in cases {
            let got = fits(&p, n.facts.as_ref().expect("facts"));
            assert_eq!(
                got.as_ref().map_err(|r| r.as_ref()),
                want.as_ref().map_err(|r| *r),
                "{name}"
            );
        }
    }

    #[test]
    fn prefer_no_schedule_counts() {
        let n = node("n")
            .taint("a", "", "PreferNoSchedule")
            .taint("b", "", "PreferNoSchedule")
            .taint("c", "", "NoSchedule");
        let mut p = pod("p");
        assert_eq!(
            intolerable_preferred(&p, n.facts.as_ref().expect("facts")),
            2
        );
        p.tolerations = vec![tol("a", "Exists", "", "PreferNoSchedule")];
        assert_eq!(
            intolerable_preferred(&p, n.facts.as_ref().expect("facts")),
            1
        );
    }
}
