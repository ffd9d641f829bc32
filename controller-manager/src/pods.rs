//! Pod state as the workload controllers see it in their cache (`CachedPod`): active, ready,
//! available, and Kubernetes' ActivePods ordering for choosing which pods to delete first.

use std::cmp::Ordering;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::cached_pod::CachedPod;

/// Not finished and not being deleted (Kubernetes' IsPodActive).
pub fn is_active(pod: &CachedPod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// When the pod's Ready condition became True, if it is True.
pub fn ready_since(pod: &CachedPod) -> Option<Option<Timestamp>> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (cond.status == "True").then(|| cond.last_transition_time.as_ref().map(|t| t.0))
}

pub fn is_ready(pod: &CachedPod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` (Kubernetes' IsPodAvailable).
pub fn is_available(pod: &CachedPod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => since + SignedDuration::from_secs(min_ready_seconds.into()) <= now,
    }
}

fn phase_rank(pod: &CachedPod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Running") => 2,
        _ => 1,
    }
}

fn created(pod: &CachedPod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn restarts(pod: &CachedPod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// Kubernetes' ActivePods "less" (controller_utils.go): the pod that sorts first is deleted
/// first — unscheduled before scheduled, Pending before Unknown before Running, not ready
/// before ready, ready for less time before longer, more restarts before fewer, newer before
/// older.
pub fn deletion_order(a: &CachedPod, b: &CachedPod) -> Ordering {
    let scheduled = |p: &CachedPod| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
    scheduled(a)
        .cmp(&scheduled(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| {
            // Ready more recently sorts first.
            let since = |p: &CachedPod| ready_since(p).flatten();
            since(b).cmp(&since(a))
        })
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| created(b).cmp(&created(a)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Pod, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(name: &str, node: Option<&str>, ready: bool, created: &str) -> CachedPod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.creation_timestamp = Some(Time(created.parse().unwrap()));
        p.spec = Some(PodSpec {
            node_name: node.map(String::from),
            ..Default::default()
        });
        p.status = Some(PodStatus {
            phase: Some(if node.is_some() { "Running" } else { "Pending" }.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        p.into()
    }

    #[test]
    fn deletes_unscheduled_then_unready_then_newest() {
        let mut pods = [
            pod("old-ready", Some("n"), true, "2024-01-01T00:00:00Z"),
            pod("new-ready", Some("n"), true, "2024-01-02T00:00:00Z"),
            pod("unready", Some("n"), false, "2024-01-01T00:00:00Z"),
            pod("unscheduled", None, false, "2023-01-01T00:00:00Z"),
        ];
        pods.sort_by(deletion_order);
        let names: Vec<_> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["unscheduled", "unready", "new-ready", "old-ready"]);
    }
}
