//! Telling users why a pod waits: the `PodScheduled=False` condition with reason
//! `Unschedulable` and kube-scheduler's message, and a `FailedScheduling` Warning Event.

use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::Api;
use tracing::debug;

use crate::pod_info::PodInfo;
use crate::scheduler::Shared;

/// How often a status update that lost a race (409) is retried.
const STATUS_ATTEMPTS: usize = 3;

/// Sets the condition unless it already says the same; returns whether the pod still exists.
fn with_condition(pod: &mut Pod, message: &str) -> bool {
    let status = pod.status.get_or_insert_with(Default::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let existing = conditions.iter_mut().find(|c| c.type_ == "PodScheduled");
    if let Some(c) = &existing {
        if c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
            && c.message.as_deref() == Some(message)
        {
            return false;
        }
    }
    let condition = PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        reason: Some("Unschedulable".into()),
        message: Some(message.to_string()),
        last_transition_time: Some(Time(Timestamp::now())),
        ..Default::default()
    };
    match existing {
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
    true
}

async fn set_condition(api: &Api<Pod>, pod: &PodInfo, message: &str) {
    for _ in 0..STATUS_ATTEMPTS {
        let mut current = match api.get_opt(&pod.key.name).await {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e) => {
                debug!(pod = %pod.key, error = %e, "reading pod for its status failed");
                return;
            }
        };
        let bound = current
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some();
        if bound || !with_condition(&mut current, message) {
            return;
        }
        match api
            .replace_status(&pod.key.name, &PostParams::default(), &current)
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => {
                debug!(pod = %pod.key, error = %e, "updating pod status failed");
                return;
            }
        }
    }
}

fn event(shared: &Shared, pod: &PodInfo, message: &str) -> Event {
    let now = Timestamp::now();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Event {
        // client-go's recorder names events `<object>.<unix nanos in hex>`.
        metadata: ObjectMeta {
            name: Some(format!("{}.{nanos:x}", pod.key.name)),
            namespace: Some(pod.key.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.key.name.clone()),
            namespace: Some(pod.key.namespace.clone()),
            uid: (!pod.uid.is_empty()).then(|| pod.uid.clone()),
            ..Default::default()
        },
        reason: Some("FailedScheduling".into()),
        message: Some(message.to_string()),
        type_: Some("Warning".into()),
        // kube-scheduler reports as the profile the pod asked for (`default-scheduler`).
        source: Some(EventSource {
            component: Some(pod.scheduler_name.clone()),
            host: None,
        }),
        reporting_component: Some(pod.scheduler_name.clone()),
        reporting_instance: Some(shared.config.identity.clone()),
        action: Some("Scheduling".into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        ..Default::default()
    }
}

/// Records that no node fits `pod`.
pub async fn report(shared: &Shared, pod: &PodInfo, message: &str) {
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), &pod.key.namespace);
    set_condition(&pods, pod, message).await;
    let events: Api<Event> = Api::namespaced(shared.client.clone(), &pod.key.namespace);
    if let Err(e) = events
        .create(&PostParams::default(), &event(shared, pod, message))
        .await
    {
        debug!(pod = %pod.key, error = %e, "creating FailedScheduling event failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_is_set_once_per_message() {
        let mut pod = Pod::default();
        assert!(with_condition(
            &mut pod,
            "0/1 nodes are available: 1 Too many pods."
        ));
        assert!(!with_condition(
            &mut pod,
            "0/1 nodes are available: 1 Too many pods."
        ));
        assert!(with_condition(
            &mut pod,
            "0/2 nodes are available: 2 Too many pods."
        ));
        let conditions = pod.status.and_then(|s| s.conditions).unwrap_or_default();
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason.as_deref(), Some("Unschedulable"));
        assert_eq!(conditions[0].status, "False");
    }
}
