//! The Deployment controller (Kubernetes' pkg/controller/deployment): one ReplicaSet per pod
//! template, rolled by the RollingUpdate or Recreate strategy, with revisions, history
//! cleanup, pause, progress deadline and the conditions `kubectl rollout status` reads.

mod conditions;
pub mod hash;
mod replicasets;
mod rollout;
pub mod surge;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, ResourceExt};
use minik8s_api::ready_store::ReadyStore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::events::Events;
use crate::informer::{watch_without_managed_fields, Subscription};
use crate::owner::controller_of;

const RESYNC: Duration = Duration::from_secs(300);
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("the replicaset cache closed before its first list")]
    CacheClosed,
    #[error("creating replicaset {rs}: {source}")]
    CreateReplicaSet { rs: String, source: kube::Error },
    #[error("replicaset {rs} exists with a different template (hash collision)")]
    HashCollision { rs: String },
    #[error("updating replicaset {rs}: {source}")]
    UpdateReplicaSet { rs: String, source: kube::Error },
    #[error("deleting old replicaset {rs}: {source}")]
    DeleteReplicaSet { rs: String, source: kube::Error },
    #[error("updating deployment {deployment}: {source}")]
    UpdateDeployment {
        deployment: String,
        source: kube::Error,
    },
}

pub struct Context {
    pub client: Client,
    /// Awaited by up to 64 concurrent reconciles, hence the ReadyStore.
    pub replica_sets: ReadyStore<ReplicaSet>,
    pub events: Events,
}

pub fn key(d: &Deployment) -> String {
    format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any())
}

/// Runs the controller until `shutdown`; the ReplicaSets, a cache and its events, come from the
/// shared watch (`informer.rs`).
pub async fn run(
    client: Client,
    (replica_sets, rs_events): (ReadyStore<ReplicaSet>, Subscription<ReplicaSet>),
    events: Events,
    shutdown: CancellationToken,
) {
    let (deployments, writer) = reflector::store();
    let own_events = reflector::reflector(
        writer,
        watch_without_managed_fields(Api::<Deployment>::all(client.clone())),
    )
    .applied_objects();
    let ctx = Arc::new(Context {
        client: client.clone(),
        replica_sets,
        events,
    });
    Controller::for_stream(own_events, deployments)
        // 64 syncs in flight, as many as the API server serves pod creates at its best
        // (the controller-manager bench: 1,000 Deployments at once).
        .with_config(ControllerConfig::default().concurrency(64))
        .watches_stream(rs_events, |rs| {
            let ns = rs.namespace().unwrap_or_default();
            controller_of(&rs.metadata)
                .filter(|o| o.kind == "Deployment")
                .map(|o| ObjectRef::<Deployment>::new(&o.name).within(&ns))
        })
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                debug!(error = %e, "deployment reconcile");
            }
        })
        .await;
}

fn error_policy(d: Arc<Deployment>, error: &DeploymentError, _: Arc<Context>) -> Action {
    warn!(deployment = %key(&d), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// The ReplicaSets this Deployment controls, from the cache.
fn owned_replica_sets(ctx: &Context, d: &Deployment) -> Vec<ReplicaSet> {
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let ns = d.namespace();
    ctx.replica_sets
        .state()
        .iter()
        .filter(|rs| rs.namespace() == ns)
        .filter(|rs| controller_of(&rs.metadata).is_some_and(|o| o.uid == uid))
        .map(|rs| (**rs).clone())
        .collect()
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, DeploymentError> {
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    // Wait for the first list, as WaitForCacheSync: an empty cache would look like a
    // Deployment without ReplicaSets.
    ctx.replica_sets
        .wait_until_ready()
        .await
        .map_err(|_| DeploymentError::CacheClosed)?;
    let mut sets = owned_replica_sets(&ctx, &d);
    let paused = Some(&d.spec).and_then(|s| s.paused).unwrap_or(false);
    let mut created = None;
    if !paused {
        created = rollout::sync(&ctx, &d, &mut sets).await?;
        replicasets::cleanup_history(&ctx, &d, &mut sets).await?;
    } else {
        rollout::scale_paused(&ctx, &d, &mut sets).await?;
    }
    let next = conditions::update_status(&ctx, &d, &sets, created).await?;
    Ok(Action::requeue(next.unwrap_or(RESYNC)))
}
