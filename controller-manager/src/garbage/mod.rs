//! Garbage collection (Kubernetes' garbage collector) over the built-in owner chains this
//! controller-manager creates: Deployment → ReplicaSet → Pod, Service → EndpointSlice.
//!
//! Per owner/dependent pair, one watch of the owners feeds two loops:
//! - background (this file): a dependent all of whose owner references name objects that no
//!   longer exist (by uid) is deleted. An owner's absence is confirmed with a live read
//!   first, as Kubernetes' attemptToDeleteItem does, so a lagging cache never deletes a live
//!   object's dependents;
//! - foreground and orphan (`finalizers.rs`): an owner being deleted with the
//!   `foregroundDeletion` or `orphan` finalizer has its dependents deleted or released.
//!
//! The dependents are watched as metadata only (`PartialObjectMeta`): owner references,
//! finalizers and deletionTimestamp are all the collector reads, and 10,000 pods' specs
//! would otherwise be held here a second time.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, PropagationPolicy};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

pub mod finalizers;

#[derive(Debug, thiserror::Error)]
pub enum GarbageError {
    #[error("looking up owner {kind} {name} of {dependent}: {source}")]
    Owner {
        kind: String,
        name: String,
        dependent: String,
        source: kube::Error,
    },
    #[error("deleting dependent {dependent}: {source}")]
    Delete {
        dependent: String,
        source: kube::Error,
    },
    #[error("releasing dependent {dependent}: {source}")]
    Orphan {
        dependent: String,
        source: kube::Error,
    },
    #[error("removing finalizer {finalizer} from {owner}: {source}")]
    Finalizer {
        owner: String,
        finalizer: &'static str,
        source: kube::Error,
    },
}

/// The kinds this collector handles, as the bounds kube's typed API needs.
pub trait Kind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
}
impl<K> Kind for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// Dependents as the collector holds them.
pub type Meta<C> = PartialObjectMeta<C>;

/// Collects ReplicaSets of deleted Deployments, Pods of deleted ReplicaSets and
/// EndpointSlices of deleted Services; finishes foreground and orphan deletes of them all.
pub async fn run(client: Client, shutdown: CancellationToken) {
    tokio::join!(
        // A ReplicaSet has dependents of its own: it is deleted in the foreground when its
        // owner is (attemptToDeleteItem's policy for an item with dependents).
        collect::<ReplicaSet, Deployment>(client.clone(), shutdown.clone(), true),
        collect::<Pod, ReplicaSet>(client.clone(), shutdown.clone(), false),
        collect::<EndpointSlice, Service>(client, shutdown, false),
    );
}

struct Ctx<O: Kind> {
    client: Client,
    owners: Store<O>,
    /// Whether the dependents own objects themselves (ReplicaSets do); those that do not
    /// lose a foreground or orphan finalizer here at once, having nothing to wait for.
    nested: bool,
}

/// A 404 (already gone) or 409 (changed since judged; it comes back as an event) is done.
pub(crate) fn settled<T>(r: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Watches owners once and hands each event to both the background collector and the
/// finalizer loop (a plain reflector stream can only be consumed once, and kube's shared
/// streams do not carry deletions, which is what wakes the background collector).
async fn collect<C: Kind, O: Kind>(client: Client, shutdown: CancellationToken, nested: bool) {
    let (owners, writer) = reflector::store::<O>();
    let (to_dependents, for_dependents) = mpsc::unbounded();
    let (to_finalizers, for_finalizers) = mpsc::unbounded();
    // managedFields are the bulk of a cached object and the collector never reads them.
    let owner_watch = watcher(Api::<O>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|o| o.managed_fields_mut().clear())
        .reflect(writer)
        .touched_objects()
        .for_each(move |o| {
            if let Ok(o) = o {
                let _ = to_dependents.unbounded_send(Ok(o.clone()));
                let _ = to_finalizers.unbounded_send(Ok(o));
            }
            futures::future::ready(())
        });
    let (dependents_store, dependents_writer) = reflector::store::<Meta<C>>();
    let dependent_events = watcher(Api::<Meta<C>>::all(client.clone()), Default::default())
        .default_backoff()
        .modify(|d| d.managed_fields_mut().clear())
        .reflect(dependents_writer)
        .applied_objects();
    let controller = Controller::for_stream(dependent_events, dependents_store.clone());
    let finalize = finalizers::run::<C, O>(
        client.clone(),
        owners.clone(),
        for_finalizers,
        dependents_store.clone(),
        nested,
        shutdown.clone(),
    );
    let ctx = Arc::new(Ctx {
        client,
        owners,
        nested,
    });
    let background = controller
        // A changed or deleted owner wakes the dependents that name it.
        .watches_stream(for_dependents, move |owner: O| {
            let uid = owner.meta().uid.clone().unwrap_or_default();
            dependents_store
                .state()
                .iter()
                .filter(|d| d.owner_references().iter().any(|r| r.uid == uid))
                .map(|d| ObjectRef::from_obj(d.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(
            reconcile::<C, O>,
            |_, _, _| Action::requeue(Duration::from_secs(2)),
            ctx,
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                debug!(error = %e, "garbage collector reconcile");
            }
        });
    tokio::select! {
        _ = async { tokio::join!(background, finalize) } => {}
        _ = owner_watch => {}
        _ = shutdown.cancelled() => {}
    }
}

/// Whether the owner a reference names still exists (same uid), from the cache or, when
/// the cache says no, from a live read.
async fn owner_exists<O: Kind>(
    ctx: &Ctx<O>,
    ns: &str,
    r: &OwnerReference,
    what: &str,
) -> Result<bool, GarbageError> {
    let cached = ctx.owners.get(&ObjectRef::new(&r.name).within(ns));
    if cached.is_some_and(|o| o.meta().uid.as_deref() == Some(r.uid.as_str())) {
        return Ok(true);
    }
    let api: Api<O> = Api::namespaced(ctx.client.clone(), ns);
    let live = api
        .get_opt(&r.name)
        .await
        .map_err(|source| GarbageError::Owner {
            kind: r.kind.clone(),
            name: r.name.clone(),
            dependent: what.to_string(),
            source,
        })?;
    Ok(live.is_some_and(|o| o.meta().uid.as_deref() == Some(r.uid.as_str())))
}

async fn reconcile<C: Kind, O: Kind>(
    dependent: Arc<Meta<C>>,
    ctx: Arc<Ctx<O>>,
) -> Result<Action, GarbageError> {
    if !ctx.nested && dependent.meta().deletion_timestamp.is_some() {
        finalizers::release_leaf(&ctx.client, dependent.as_ref()).await?;
        return Ok(Action::await_change());
    }
    let refs: Vec<&OwnerReference> = dependent
        .owner_references()
        .iter()
        .filter(|r| r.kind == O::kind(&()))
        .collect();
    // Owners of other kinds are not ours to judge; a dependent with any of them stays.
    if refs.is_empty()
        || refs.len() != dependent.owner_references().len()
        || dependent.meta().deletion_timestamp.is_some()
    {
        return Ok(Action::await_change());
    }
    let ns = dependent.namespace().unwrap_or_default();
    let what = format!("{} {ns}/{}", C::kind(&()), dependent.name_any());
    for r in &refs {
        if owner_exists(&ctx, &ns, r, &what).await? {
            return Ok(Action::await_change());
        }
    }
    info!(dependent = %what, "owner gone; deleting dependent");
    let api: Api<C> = Api::namespaced(ctx.client.clone(), &ns);
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        // The resourceVersion we judged: if the dependent was changed since (say its owner
        // reference removed by orphaning), the delete fails instead of acting on stale data.
        preconditions: Some(kube::api::Preconditions {
            uid: dependent.meta().uid.clone(),
            resource_version: dependent.meta().resource_version.clone(),
        }),
        ..Default::default()
    };
    settled(api.delete(&dependent.name_any(), &dp).await).map_err(|source| {
        GarbageError::Delete {
            dependent: what,
            source,
        }
    })?;
    Ok(Action::await_change())
}
