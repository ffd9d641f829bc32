//! Foreground and orphan deletion (Kubernetes' garbage collector, attemptToDeleteItem /
//! orphanDependents): an owner being deleted with the `foregroundDeletion` finalizer stays
//! until its dependents are gone (we delete them, and wait for those whose reference has
//! blockOwnerDeletion=true); one with the `orphan` finalizer has its owner reference
//! stripped from every dependent; then the collector removes its finalizer and the API
//! server finishes the delete.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{settled, GarbageError, Kind, Meta};
use crate::owner::owner_refs_patch;

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";
/// While dependents remain, look again this soon (their deletion is not an owner event).
const RECHECK: Duration = Duration::from_millis(300);

struct Ctx<C: Kind> {
    client: Client,
    dependents: Store<Meta<C>>,
    /// Whether dependents have dependents of their own (then they go in the foreground too).
    nested: bool,
}

/// Runs the finalizer loop over owner events `events` (the collector's owner watch).
pub async fn run<C: Kind, O: Kind>(
    client: Client,
    owners: Store<O>,
    events: impl Stream<Item = Result<O, watcher::Error>> + Send + 'static,
    dependents: Store<Meta<C>>,
    nested: bool,
    shutdown: CancellationToken,
) {
    let ctx = Arc::new(Ctx {
        client,
        dependents,
        nested,
    });
    Controller::for_stream(events, owners)
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(
            reconcile::<C, O>,
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            ctx,
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                debug!(error = %e, "owner finalizer reconcile");
            }
        })
        .await;
}

/// The garbage-collector finalizer a deleting object carries, if any.
fn gc_finalizer(meta: &ObjectMeta) -> Option<&'static str> {
    meta.deletion_timestamp.as_ref()?;
    let finalizers = meta.finalizers.as_deref().unwrap_or_default();
    [FOREGROUND, ORPHAN]
        .into_iter()
        .find(|f| finalizers.iter().any(|x| x == f))
}

/// Removes `finalizer` from `obj`, guarded by its resourceVersion; removing the last one of
/// a deleting object makes the API server delete it.
async fn remove_finalizer<K: Kind>(
    api: &Api<K>,
    meta: &ObjectMeta,
    finalizer: &'static str,
) -> Result<(), GarbageError> {
    let rest: Vec<&String> = meta
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != finalizer)
        .collect();
    let body = json!({"metadata": {"finalizers": rest, "resourceVersion": meta.resource_version}});
    let name = meta.name.clone().unwrap_or_default();
    let patched = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await;
    settled(patched).map_err(|source| GarbageError::Finalizer {
        owner: format!("{} {name}", K::kind(&())),
        finalizer,
        source,
    })
}

/// A deleting object that owns nothing: its foreground or orphan finalizer has nothing
/// to wait for.
pub async fn release_leaf<K: Kind>(client: &Client, obj: &Meta<K>) -> Result<(), GarbageError> {
    let Some(finalizer) = gc_finalizer(obj.meta()) else {
        return Ok(());
    };
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    remove_finalizer(&api, obj.meta(), finalizer).await
}

async fn reconcile<C: Kind, O: Kind>(
    owner: Arc<O>,
    ctx: Arc<Ctx<C>>,
) -> Result<Action, GarbageError> {
    let Some(mode) = gc_finalizer(owner.meta()) else {
        return Ok(Action::await_change());
    };
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let ns = owner.namespace().unwrap_or_default();
    let api: Api<C> = Api::namespaced(ctx.client.clone(), &ns);
    let dependents: Vec<Arc<Meta<C>>> = ctx
        .dependents
        .state()
        .into_iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
        .filter(|d| d.owner_references().iter().any(|r| r.uid == uid))
        .collect();
    let mut blocking = 0;
    for d in &dependents {
        let name = d.name_any();
        if mode == ORPHAN {
            let refs = d
                .owner_references()
                .iter()
                .filter(|r| r.uid != uid)
                .cloned()
                .collect();
            let body = owner_refs_patch(d.meta(), refs);
            let patched = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await;
            settled(patched).map_err(|source| GarbageError::Orphan {
                dependent: format!("{ns}/{name}"),
                source,
            })?;
            blocking += 1;
            continue;
        }
        let blocks = d
            .owner_references()
            .iter()
            .any(|r| r.uid == uid && r.block_owner_deletion == Some(true));
        blocking += usize::from(blocks);
        if d.meta().deletion_timestamp.is_some() {
            continue;
        }
        let policy = if ctx.nested {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        let dp = DeleteParams {
            propagation_policy: Some(policy),
            ..Default::default()
        };
        settled(api.delete(&name, &dp).await).map_err(|source| GarbageError::Delete {
            dependent: format!("{ns}/{name}"),
            source,
        })?;
    }
    if blocking > 0 {
        return Ok(Action::requeue(RECHECK));
    }
    let what = format!("{} {ns}/{}", O::kind(&()), owner.name_any());
    info!(owner = %what, finalizer = mode, "dependents handled; removing finalizer");
    let owners: Api<O> = Api::namespaced(ctx.client.clone(), &ns);
    remove_finalizer(&owners, owner.meta(), mode).await?;
    Ok(Action::await_change())
}
