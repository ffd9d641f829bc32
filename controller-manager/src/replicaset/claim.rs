//! Pod claiming (Kubernetes' PodControllerRefManager): keep the pods this ReplicaSet
//! controls and still selects, adopt matching orphans, release pods that stopped matching.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use tracing::info;

use super::{Context, ReplicaSetError};
use crate::cached_pod::CachedPod;
use crate::owner::{controller_of, controller_ref, matcher, owner_refs_patch};
use crate::pods::is_active;

/// The active pods this ReplicaSet owns after adoption and release.
pub async fn claim_pods(
    ctx: &Context,
    rs: &ReplicaSet,
    pods: &[Arc<CachedPod>],
) -> Result<Vec<Arc<CachedPod>>, ReplicaSetError> {
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let selector = Some(&rs.spec).and_then(|s| matcher(&s.selector));
    let matches = |p: &CachedPod| selector.as_ref().is_some_and(|m| m.matches_map(p.labels()));
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let mut owned = Vec::new();
    for pod in pods {
        match controller_of(&pod.metadata) {
            Some(r) if r.uid == uid => {
                if matches(pod) {
                    if is_active(pod) {
                        owned.push(pod.clone());
                    }
                } else if pod.metadata.deletion_timestamp.is_none() {
                    release(&api, pod, &uid).await?;
                }
            }
            Some(_) => {}
            None => {
                if matches(pod) && is_active(pod) && adopt(&api, rs, pod).await? {
                    owned.push(pod.clone());
                }
            }
        }
    }
    Ok(owned)
}

async fn adopt(api: &Api<Pod>, rs: &ReplicaSet, pod: &CachedPod) -> Result<bool, ReplicaSetError> {
    let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
    refs.push(controller_ref("apps/v1", "ReplicaSet", &rs.metadata));
    let body = owner_refs_patch(&pod.metadata, refs);
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&body),
        )
        .await
    {
        Ok(_) => {
            info!(pod = %pod.name_any(), replicaset = %rs.name_any(), "adopted orphan pod");
            Ok(true)
        }
        // Changed or deleted meanwhile: the next event brings the fresh state.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(false),
        Err(source) => Err(ReplicaSetError::Claim {
            pod: pod.name_any(),
            source,
        }),
    }
}

async fn release(api: &Api<Pod>, pod: &CachedPod, uid: &str) -> Result<(), ReplicaSetError> {
    let refs: Vec<_> = pod
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.uid != uid)
        .collect();
    let body = owner_refs_patch(&pod.metadata, refs);
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&body),
        )
        .await
    {
        Ok(_) => {
            info!(pod = %pod.name_any(), "released pod that no longer matches its replicaset");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        // A conflict means our cached copy is stale; retrying the key (with backoff) reads
        // the fresh one — nothing else may trigger this key again.
        Err(source) => Err(ReplicaSetError::Claim {
            pod: pod.name_any(),
            source,
        }),
    }
}
