//! Foreground and orphan deletion (Kubernetes' garbage collector,
//! processDeletingDependentsItem / attemptToOrphan): an object being deleted with the
//! `foregroundDeletion` finalizer stays until its dependents with blockOwnerDeletion=true
//! are gone (every dependent is deleted; each decides so itself, seeing its owner waiting);
//! one with the `orphan` finalizer has its owner reference stripped from every dependent.
//! Then the collector removes its finalizer and the API server finishes the delete.
//!
//! The graph is fed by one watch per kind, and watches of different kinds are not ordered:
//! a dependent created just before its owner was deleted may not be in the graph yet when
//! the owner's deletion is. So before a collector finalizer comes off, the API server itself
//! is asked which objects still name the owner ([`live_dependents`]).

use std::time::Duration;

use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;
use tracing::{debug, info};

use super::graph::{Entry, Item, Uid, FOREGROUND, ORPHAN};
use super::monitors;
use super::{unless_gone, Ctx, GarbageError};
use crate::owner::owner_refs_patch;

pub async fn delete_dependents(ctx: &Ctx, item: &Item) -> Result<(), GarbageError> {
    let mut blocking = 0;
    for d in &item.dependents {
        blocking += usize::from(d.blocks);
        if !d.entry.deleting {
            ctx.queue.add(d.uid.clone());
        }
    }
    if blocking > 0 {
        // The last blocking dependent's deletion brings the owner back here.
        debug!(owner = %item.entry.describe(), blocking, "waiting for dependents");
        return Ok(());
    }
    // None blocks in the graph: any the API server still has, the graph has not seen yet.
    let live = live_dependents(ctx, &item.uid, &item.entry).await?;
    let unseen_blocking = live
        .iter()
        .filter(|(_, d)| d.owners.iter().any(|o| o.uid == item.uid && o.block))
        .count();
    if unseen_blocking > 0 {
        // Their watch events are on the way: each deletes itself on seeing its owner
        // waiting, and its removal brings the owner back; the retry is a safety net.
        debug!(owner = %item.entry.describe(), unseen_blocking, "dependents not watched yet");
        ctx.queue.add_after(item.uid.clone(), RECHECK);
        return Ok(());
    }
    info!(owner = %item.entry.describe(), "dependents gone; removing foregroundDeletion");
    remove_finalizer(ctx, &item.uid, &item.entry, FOREGROUND).await
}

pub async fn orphan_dependents(ctx: &Ctx, item: &Item) -> Result<(), GarbageError> {
    let owner = std::slice::from_ref(&item.uid);
    // The live list has every dependent the graph knows of that still exists, and those it
    // does not know of yet.
    let dependents = live_dependents(ctx, &item.uid, &item.entry).await?;
    for (uid, d) in &dependents {
        strip_owner_refs(ctx, uid, d, owner).await?;
    }
    info!(owner = %item.entry.describe(), orphaned = dependents.len(), "removing orphan");
    remove_finalizer(ctx, &item.uid, &item.entry, ORPHAN).await
}

/// When an owner whose dependents are not all watched yet is looked at again.
const RECHECK: Duration = Duration::from_secs(1);

/// The objects that name `owner` in their owner references, as the API server has them
/// now: every collected kind, in the owner's namespace when it is namespaced (a namespaced
/// object cannot own objects of other namespaces or cluster-scoped ones).
async fn live_dependents(
    ctx: &Ctx,
    owner: &Uid,
    entry: &Entry,
) -> Result<Vec<(Uid, Entry)>, GarbageError> {
    let ns = entry.namespace.as_deref();
    let kinds = monitors::kinds().filter(|k| ns.is_none() || k.namespaced);
    let mut out = Vec::new();
    for kind in kinds {
        let list = monitors::api(&ctx.client, kind, ns)
            .list_metadata(&ListParams::default())
            .await
            .map_err(|source| GarbageError::Dependents {
                kind: kind.kind,
                owner: entry.describe(),
                source,
            })?;
        out.extend(
            list.items
                .iter()
                .filter_map(|o| Entry::from_meta(kind, &o.metadata))
                .filter(|(_, d)| d.owners.iter().any(|o| o.uid == *owner)),
        );
    }
    Ok(out)
}

/// Removes `finalizer` from the object, as it is now (read live, written back guarded by
/// its resourceVersion); removing the last finalizer of a deleting object makes the API
/// server delete it.
async fn remove_finalizer(
    ctx: &Ctx,
    uid: &Uid,
    entry: &Entry,
    finalizer: &'static str,
) -> Result<(), GarbageError> {
    let what = entry.describe();
    let err = |source| GarbageError::Finalizer {
        object: what.clone(),
        finalizer,
        source,
    };
    let api = monitors::api(&ctx.client, entry.kind, entry.namespace.as_deref());
    let live = unless_gone(api.get_metadata(&entry.name).await).map_err(err)?;
    let Some(live) = live.filter(|m| m.metadata.uid.as_deref() == Some(&**uid)) else {
        return Ok(());
    };
    let finalizers = live.metadata.finalizers.unwrap_or_default();
    if !finalizers.iter().any(|f| f == finalizer) {
        return Ok(());
    }
    let rest: Vec<&String> = finalizers.iter().filter(|f| *f != finalizer).collect();
    let body = json!({"metadata": {
        "finalizers": rest,
        "resourceVersion": live.metadata.resource_version,
    }});
    let patched = api
        .patch_metadata(&entry.name, &PatchParams::default(), &Patch::Merge(&body))
        .await;
    unless_gone(patched).map(|_| ()).map_err(err)
}

/// Drops the owner references naming any of `owners` from the object, as it is now (read
/// live, written back guarded by its uid and resourceVersion).
pub async fn strip_owner_refs(
    ctx: &Ctx,
    uid: &Uid,
    entry: &Entry,
    owners: &[Uid],
) -> Result<(), GarbageError> {
    let what = entry.describe();
    let err = |source| GarbageError::Orphan {
        dependent: what.clone(),
        source,
    };
    let api = monitors::api(&ctx.client, entry.kind, entry.namespace.as_deref());
    let live = unless_gone(api.get_metadata(&entry.name).await).map_err(err)?;
    let Some(live) = live.filter(|m| m.metadata.uid.as_deref() == Some(&**uid)) else {
        return Ok(());
    };
    let refs = live.metadata.owner_references.clone().unwrap_or_default();
    let kept: Vec<_> = refs
        .iter()
        .filter(|r| !owners.iter().any(|o| **o == *r.uid))
        .cloned()
        .collect();
    if kept.len() == refs.len() {
        return Ok(());
    }
    debug!(dependent = %what, "removing owner references");
    let body = owner_refs_patch(&live.metadata, kept);
    let patched = api
        .patch_metadata(&entry.name, &PatchParams::default(), &Patch::Merge(&body))
        .await;
    unless_gone(patched).map(|_| ()).map_err(err)
}

#[cfg(test)]
mod tests {
    //! The race the live check closes, made certain: the graph knows the owner but not yet
    //! its dependent (its watch lags), against a real API server.

    use std::sync::Mutex;

    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use kube::api::{Api, DeleteParams, PostParams};
    use kube::Client;
    use serde_json::json;
    use tokio_util::sync::CancellationToken;

    use super::super::graph::Graph;
    use super::super::queue::WorkQueue;
    use super::*;

    async fn api_server(dir: &std::path::Path, shutdown: &CancellationToken) -> Client {
        let config = minik8s_apiserver::Config::new(dir.into(), "127.0.0.1:0".parse().unwrap());
        let running = minik8s_apiserver::start(config, shutdown.clone())
            .await
            .expect("starting the API server");
        let kc = kube::config::Kubeconfig::read_from(&running.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        Client::try_from(config).unwrap()
    }

    /// Creates config map `owner` and a secret naming it (blockOwnerDeletion), deletes the
    /// owner with `policy`; returns a collector context whose graph holds the owner only.
    async fn owner_known_dependent_not(client: &Client, policy: DeleteParams) -> (Ctx, Uid) {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
        let pp = PostParams::default();
        let owner = json!({"metadata": {"name": "owner"}});
        let owner = cms
            .create(&pp, &serde_json::from_value(owner).unwrap())
            .await
            .unwrap();
        let uid = owner.metadata.uid.clone().unwrap();
        let dependent = json!({"metadata": {"name": "dependent", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid,
            "blockOwnerDeletion": true}]}});
        secrets
            .create(&pp, &serde_json::from_value(dependent).unwrap())
            .await
            .unwrap();
        cms.delete("owner", &policy).await.unwrap();
        let deleting = cms
            .get("owner")
            .await
            .expect("held by its collector finalizer");
        let kind = minik8s_api::resource::find_kind("", "ConfigMap").unwrap();
        let (uid, entry) = Entry::from_meta(kind, &deleting.metadata).unwrap();
        let mut graph = Graph::default();
        graph.upsert(uid.clone(), entry);
        let stop = CancellationToken::new();
        let ctx = Ctx {
            client: client.clone(),
            graph: Mutex::new(graph),
            queue: WorkQueue::new(stop),
        };
        (ctx, uid)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn foreground_owner_waits_for_a_dependent_the_graph_has_not_seen() {
        let dir = tempfile::tempdir().unwrap();
        let shutdown = CancellationToken::new();
        let client = api_server(dir.path(), &shutdown).await;
        let (ctx, uid) = owner_known_dependent_not(&client, DeleteParams::foreground()).await;
        let item = ctx.graph().item(&uid).unwrap();
        assert!(
            item.dependents.is_empty(),
            "the graph has not seen the dependent"
        );
        delete_dependents(&ctx, &item).await.unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let owner = cms.get_opt("owner").await.unwrap();
        assert!(
            owner.is_some_and(|o| o
                .metadata
                .finalizers
                .unwrap_or_default()
                .contains(&FOREGROUND.to_string())),
            "the owner keeps foregroundDeletion while a blocking dependent exists"
        );
        shutdown.cancel();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn orphaning_strips_a_dependent_the_graph_has_not_seen() {
        let dir = tempfile::tempdir().unwrap();
        let shutdown = CancellationToken::new();
        let client = api_server(dir.path(), &shutdown).await;
        let (ctx, uid) = owner_known_dependent_not(&client, DeleteParams::orphan()).await;
        let item = ctx.graph().item(&uid).unwrap();
        orphan_dependents(&ctx, &item).await.unwrap();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
        let dependent = secrets.get("dependent").await.unwrap();
        assert!(
            dependent
                .metadata
                .owner_references
                .unwrap_or_default()
                .is_empty(),
            "the dependent no longer names the owner, so it is not collected later"
        );
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        assert!(
            cms.get_opt("owner").await.unwrap().is_none(),
            "the owner is gone"
        );
        shutdown.cancel();
    }
}
