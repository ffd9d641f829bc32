//! The ReplicaSet controller (Kubernetes' pkg/controller/replicaset): keeps `spec.replicas`
//! pods matching the selector, owned through a controller reference, and reports status.
//! Level-triggered on kube's Controller runtime: one reconcile per key at a time, requeue
//! with backoff on error, a periodic resync.

mod claim;
mod manage;
mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use minik8s_api::ready_store::ReadyStore;
use tracing::{debug, warn};

use crate::cached_pod::CachedPod;
use crate::events::Events;
use crate::expectations::{Expectations, Seen};
use crate::informer::{PodEvents, Subscription};
use crate::owner::controller_of;

/// Periodic resync, as Kubernetes' informers resync.
const RESYNC: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ReplicaSetError {
    #[error("creating a pod for replicaset {rs}: {source}")]
    CreatePod { rs: String, source: kube::Error },
    #[error("deleting pod {pod} of replicaset {rs}: {source}")]
    DeletePod {
        rs: String,
        pod: String,
        source: kube::Error,
    },
    #[error("updating the status of replicaset {rs}: {source}")]
    Status { rs: String, source: kube::Error },
    #[error("patching the owner references of pod {pod}: {source}")]
    Claim { pod: String, source: kube::Error },
    #[error("the pod cache closed before its first list")]
    CacheClosed,
}

pub struct Context {
    pub client: Client,
    pub pods: ReadyStore<CachedPod>,
    pub expectations: Expectations,
    pub events: Events,
}

pub fn key(rs: &ReplicaSet) -> String {
    format!("{}/{}", rs.namespace().unwrap_or_default(), rs.name_any())
}

/// Runs the controller until `shutdown`. The ReplicaSets and pods, each a cache and its
/// events, come from the shared watches (`informer.rs`).
pub async fn run(
    client: Client,
    (sets, set_events): (ReadyStore<ReplicaSet>, Subscription<ReplicaSet>),
    (pods, pod_events): (ReadyStore<CachedPod>, PodEvents),
    events: Events,
    shutdown: CancellationToken,
) {
    let ctx = Arc::new(Context {
        client: client.clone(),
        pods: pods.clone(),
        expectations: Expectations::default(),
        events,
    });
    let sets: Store<ReplicaSet> = (*sets).clone();
    Controller::for_stream(set_events, sets.clone())
        // 64 syncs in flight, as many as the API server serves pod creates at its best
        // (the controller-manager bench: 1,000 Deployments at once).
        .with_config(ControllerConfig::default().concurrency(64))
        .watches_stream(pod_events, {
            let ctx = ctx.clone();
            move |pod| {
                observe(&ctx, &pod);
                owners_to_wake(&pod, &sets)
            }
        })
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                debug!(error = %e, "replicaset reconcile");
            }
        })
        .await;
}

/// Every event of a pod a ReplicaSet controls confirms its creation (see expectations.rs).
fn observe(ctx: &Context, pod: &CachedPod) {
    if let Some(owner) = controller_of(&pod.metadata).filter(|o| o.kind == "ReplicaSet") {
        let key = format!("{}/{}", pod.namespace().unwrap_or_default(), owner.name);
        ctx.expectations.observe_creation(&key, &pod.name_any());
    }
}

/// A pod event wakes its controller, or — for an orphan — every ReplicaSet in its namespace
/// whose selector matches it (adoption), as Kubernetes' getPodReplicaSets.
fn owners_to_wake(pod: &CachedPod, sets: &Store<ReplicaSet>) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace().unwrap_or_default();
    if let Some(owner) = controller_of(&pod.metadata) {
        if owner.kind == "ReplicaSet" {
            return vec![ObjectRef::new(&owner.name).within(&ns)];
        }
        return Vec::new();
    }
    let labels = pod.labels();
    sets.state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(ns.as_str()))
        .filter(|rs| {
            Some(&rs.spec)
                .and_then(|s| crate::owner::matcher(&s.selector))
                .is_some_and(|m| m.matches_map(labels))
        })
        .map(|rs| ObjectRef::from_obj(rs.as_ref()))
        .collect()
}

fn error_policy(rs: Arc<ReplicaSet>, error: &ReplicaSetError, _: Arc<Context>) -> Action {
    warn!(replicaset = %key(&rs), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// One level-triggered pass: claim pods, create or delete toward `spec.replicas` unless
/// earlier creates/deletes are still unconfirmed by the cache, then write status.
async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Context>) -> Result<Action, ReplicaSetError> {
    let key = key(&rs);
    if rs.metadata.deletion_timestamp.is_some() {
        ctx.expectations.forget(&key);
        return Ok(Action::await_change());
    }
    // Like WaitForCacheSync: an empty pod cache before the first list would look like a
    // ReplicaSet with no pods and over-create after every controller-manager restart.
    ctx.pods
        .wait_until_ready()
        .await
        .map_err(|_| ReplicaSetError::CacheClosed)?;
    let ns = rs.namespace().unwrap_or_default();
    let in_ns: Vec<Arc<CachedPod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .collect();
    let mut owned = claim::claim_pods(&ctx, &rs, &in_ns).await?;
    let seen = |name: &str| match in_ns.iter().find(|p| p.name_any() == name) {
        None => Seen::Absent,
        Some(p) if p.metadata.deletion_timestamp.is_some() => Seen::Terminating,
        Some(_) => Seen::Present,
    };
    if ctx.expectations.satisfied(&key, seen) {
        manage::sync_replicas(&ctx, &rs, &owned).await?;
    } else {
        debug!(replicaset = %key, "waiting for the cache to confirm earlier creates/deletes");
    }
    let gone = ctx.expectations.pending_deletes(&key);
    owned.retain(|p| !gone.contains(&p.name_any()));
    let next = status::update(&ctx, &rs, &owned).await?;
    Ok(next.map_or(Action::requeue(RESYNC), Action::requeue))
}
