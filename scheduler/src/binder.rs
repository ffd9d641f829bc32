//! The binding cycle: POST a `v1 Binding` to `pods/{name}/binding`. A failed binding forgets
//! the assumption and puts the pod back to wait with backoff (kube-scheduler's
//! `handleBindingCycleError`); a pod deleted meanwhile is dropped.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::Api;
use tracing::debug;

use crate::pod_info::PodInfo;
use crate::scheduler::Shared;

fn binding(pod: &PodInfo, node: &str) -> Binding {
    Binding {
        metadata: ObjectMeta {
            name: Some(pod.key.name.clone()),
            namespace: Some(pod.key.namespace.clone()),
            uid: (!pod.uid.is_empty()).then(|| pod.uid.clone()),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    }
}

/// Binds an assumed pod to `node`; `cycle` is the scheduling cycle that chose it.
pub async fn bind(shared: Arc<Shared>, pod: Arc<PodInfo>, node: String, cycle: u64) {
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &pod.key.namespace);
    let result = api
        .create_subresource::<_, serde::de::IgnoredAny>(
            "binding",
            &pod.key.name,
            &PostParams::default(),
            &binding(&pod, &node),
        )
        .await;
    match result {
        Ok(_) => {
            shared.stats.bound.fetch_add(1, Ordering::Relaxed);
            shared.queue.done(&pod.key);
        }
        Err(e) => {
            shared.stats.bind_failures.fetch_add(1, Ordering::Relaxed);
            debug!(pod = %pod.key, node = %node, error = %e, "binding failed");
            shared.cache().forget(&pod.key);
            match e {
                kube::Error::Api(s) if s.code == 404 => shared.queue.remove(&pod.key),
                _ => shared.queue.failed(&pod.key, cycle),
            }
            // The assumed requests are free again: others may fit now.
            shared.queue.move_all_to_active();
        }
    }
}
