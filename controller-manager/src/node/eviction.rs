//! The NoExecute taint manager: a pod on a node with a NoExecute taint it does not tolerate
//! is deleted at once; one it tolerates for tolerationSeconds is deleted when that runs out
//! (counted from the taint's timeAdded); an unbounded toleration keeps it.

use crate::cached_pod::CachedPod;
use k8s_openapi::api::core::v1::{Taint, Toleration};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Kubernetes' Toleration.ToleratesTaint.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => key.is_empty() || key == taint.key,
        _ => {
            key == taint.key
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
    }
}

/// When the pod must go given the node's NoExecute taints: Some(now-or-past) to evict,
/// Some(future) to wait, None to keep it.
pub fn eviction_time(pod: &CachedPod, taints: &[Taint], now: Timestamp) -> Option<Timestamp> {
    let tolerations: &[Toleration] = pod.spec.as_ref().map_or(&[], |s| &s.tolerations);
    let mut at: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(now);
        }
        // Forever if any matching toleration has no limit; else the shortest limit.
        if matching.iter().any(|t| t.toleration_seconds.is_none()) {
            continue;
        }
        let secs = matching
            .iter()
            .filter_map(|t| t.toleration_seconds)
            .min()
            .unwrap_or(0)
            .max(0);
        let since = taint.time_added.as_ref().map(|t| t.0).unwrap_or(now);
        let when = since + SignedDuration::from_secs(secs);
        at = Some(at.map_or(when, |a| a.min(when)));
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Pod, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn taint(key: &str, added: Timestamp) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            value: None,
            time_added: Some(Time(added)),
        }
    }

    fn pod(tolerations: Vec<Toleration>) -> CachedPod {
        CachedPod::from(Pod {
            spec: Some(PodSpec {
                tolerations: Some(tolerations),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn untolerated_now_tolerated_later_unbounded_never() {
        let now = Timestamp::now();
        let t = taint("node.kubernetes.io/unreachable", now);
        assert_eq!(
            eviction_time(&pod(vec![]), std::slice::from_ref(&t), now),
            Some(now)
        );
        let bounded = Toleration {
            key: Some(t.key.clone()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(5),
            value: None,
        };
        assert_eq!(
            eviction_time(&pod(vec![bounded.clone()]), std::slice::from_ref(&t), now),
            Some(now + SignedDuration::from_secs(5))
        );
        let forever = Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        };
        assert_eq!(eviction_time(&pod(vec![forever]), &[t], now), None);
    }
}
