//! ReplicaSet status (Kubernetes' calculateStatus), written through the status subresource.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};

use super::{key, Context, ReplicaSetError};
use crate::cached_pod::CachedPod;
use crate::pods::{is_available, is_ready};

/// Status from the pods the ReplicaSet owns; a pod counts as fully labeled when it carries
/// every label of the template.
pub fn calculate(rs: &ReplicaSet, owned: &[Arc<CachedPod>], now: Timestamp) -> ReplicaSetStatus {
    let spec = rs.spec.clone();
    let template_labels = spec
        .template
        .and_then(|t| t.metadata)
        .and_then(|m| m.labels)
        .unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let count = |f: &dyn Fn(&CachedPod) -> bool| owned.iter().filter(|p| f(p)).count() as i32;
    let labeled = count(&|p| {
        template_labels
            .iter()
            .all(|(k, v)| p.labels().get(k) == Some(v))
    });
    ReplicaSetStatus {
        replicas: owned.len() as i32,
        fully_labeled_replicas: Some(labeled),
        ready_replicas: Some(count(&is_ready)),
        available_replicas: Some(count(&|p| is_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        ..Default::default()
    }
}

/// Writes status when it changed; returns when to look again for pods about to become
/// available (minReadySeconds).
pub async fn update(
    ctx: &Context,
    rs: &ReplicaSet,
    owned: &[Arc<CachedPod>],
) -> Result<Option<Duration>, ReplicaSetError> {
    let now = Timestamp::now();
    let status = calculate(rs, owned, now);
    let min_ready = Some(&rs.spec)
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let next = (min_ready > 0 && status.ready_replicas != status.available_replicas)
        .then(|| Duration::from_secs(1));
    let current = rs.status.clone().unwrap_or_default();
    if normalized(&current) == normalized(&status) {
        return Ok(next);
    }
    let api: Api<ReplicaSet> =
        Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let body = serde_json::json!({ "status": status });
    match api
        .patch_status(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&body),
        )
        .await
    {
        Ok(_) => Ok(next),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(source) => Err(ReplicaSetError::Status {
            rs: key(rs),
            source,
        }),
    }
}

/// The API server may drop zero-valued optional fields; compare with zeros filled in.
fn normalized(s: &ReplicaSetStatus) -> (i32, i32, i32, i32, Option<i64>) {
    (
        s.replicas,
        s.fully_labeled_replicas.unwrap_or(0),
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
        s.observed_generation,
    )
}
