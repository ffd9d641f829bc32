//! Foreground and orphan deletion (Kubernetes' garbage collector,
//! processDeletingDependentsItem / attemptToOrphan): an object being deleted with the
//! `foregroundDeletion` finalizer stays until its dependents with blockOwnerDeletion=true
//! are gone (every dependent is deleted; each decides so itself, seeing its owner waiting);
//! one with the `orphan` finalizer has its owner reference stripped from every dependent.
//! Then the collector removes its finalizer and the API server finishes the delete.

use kube::api::{Patch, PatchParams};
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
    info!(owner = %item.entry.describe(), "dependents gone; removing foregroundDeletion");
    remove_finalizer(ctx, &item.uid, &item.entry, FOREGROUND).await
}

pub async fn orphan_dependents(ctx: &Ctx, item: &Item) -> Result<(), GarbageError> {
    let owner = std::slice::from_ref(&item.uid);
    for d in &item.dependents {
        strip_owner_refs(ctx, &d.uid, &d.entry, owner).await?;
    }
    info!(owner = %item.entry.describe(), orphaned = item.dependents.len(), "removing orphan");
    remove_finalizer(ctx, &item.uid, &item.entry, ORPHAN).await
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
