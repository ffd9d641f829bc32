//! Deciding about one object (Kubernetes' attemptToDeleteItem): an object being deleted
//! with a collector finalizer has its dependents handled (`finalizers.rs`); an object
//! whose owners are all gone, or all waiting for their dependents, is deleted; one that
//! still has a live owner keeps existing and loses its references to the others.

use kube::api::{DeleteParams, Preconditions, PropagationPolicy};

use super::finalizers;
use super::graph::{Item, Owner, OwnerState, Uid, FOREGROUND, ORPHAN};
use super::monitors;
use super::{Ctx, GarbageError};
use tracing::info;

/// The owners of an item, by what became of them.
#[derive(Debug, Default)]
struct Owners {
    solid: usize,
    waiting: Vec<Uid>,
    dangling: Vec<Uid>,
}

pub async fn attempt(ctx: &Ctx, uid: &Uid) -> Result<(), GarbageError> {
    let Some(item) = ctx.graph().item(uid) else {
        return Ok(());
    };
    match item.entry.gc_finalizer() {
        Some(FOREGROUND) => return finalizers::delete_dependents(ctx, &item).await,
        Some(_) => return finalizers::orphan_dependents(ctx, &item).await,
        // Already going (a grace period or another finalizer): nothing for us to do.
        None if item.entry.deleting => return Ok(()),
        None => {}
    }
    if item.entry.owners.is_empty() {
        return Ok(());
    }
    let owners = classify(ctx, &item).await?;
    if owners.solid > 0 {
        // A live owner keeps the object; references to owners that are gone or waiting
        // for their dependents are dropped so those owners can finish.
        let stale: Vec<Uid> = owners.dangling.into_iter().chain(owners.waiting).collect();
        if !stale.is_empty() {
            finalizers::strip_owner_refs(ctx, &item.uid, &item.entry, &stale).await?;
        }
        return Ok(());
    }
    // Every owner is gone or waiting. An object with dependents of its own that an owner
    // waits for goes in the foreground too, so that owner waits for the whole subtree;
    // otherwise the object's own collector finalizer, if it carries one, says how.
    let policy = if !owners.waiting.is_empty() && !item.dependents.is_empty() {
        PropagationPolicy::Foreground
    } else if item.entry.has_finalizer(ORPHAN) {
        PropagationPolicy::Orphan
    } else if item.entry.has_finalizer(FOREGROUND) {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    };
    delete(ctx, &item, policy).await
}

async fn classify(ctx: &Ctx, item: &Item) -> Result<Owners, GarbageError> {
    let ns = item.entry.namespace.as_deref();
    let mut owners = Owners::default();
    for o in &item.entry.owners {
        let known = ctx.graph().owner_state(o, ns);
        let state = match known {
            OwnerState::Unknown => lookup(ctx, o, ns, item).await?,
            s => s,
        };
        match state {
            OwnerState::Dangling => owners.dangling.push(o.uid.clone()),
            OwnerState::Waiting => owners.waiting.push(o.uid.clone()),
            // An owner that cannot be resolved is never judged absent.
            OwnerState::Solid | OwnerState::Unresolvable | OwnerState::Unknown => owners.solid += 1,
        }
    }
    Ok(owners)
}

/// Reads an owner the graph does not (yet) hold: the watch of its kind may lag its
/// create, so only the API server can say it is gone (Kubernetes' isDangling).
async fn lookup(
    ctx: &Ctx,
    owner: &Owner,
    ns: Option<&str>,
    item: &Item,
) -> Result<OwnerState, GarbageError> {
    let Some(kind) = owner.kind else {
        return Ok(OwnerState::Unresolvable);
    };
    let live = monitors::api(&ctx.client, kind, ns)
        .get_metadata_opt(&owner.name)
        .await
        .map_err(|source| GarbageError::Owner {
            kind: kind.kind,
            name: owner.name.clone(),
            dependent: item.entry.describe(),
            source,
        })?;
    Ok(match live {
        Some(m) if m.metadata.uid.as_deref() == Some(&*owner.uid) => {
            let deleting = m.metadata.deletion_timestamp.is_some();
            let finalizers = m.metadata.finalizers.unwrap_or_default();
            if deleting && finalizers.iter().any(|f| f == FOREGROUND) {
                OwnerState::Waiting
            } else {
                OwnerState::Solid
            }
        }
        _ => OwnerState::Dangling,
    })
}

async fn delete(ctx: &Ctx, item: &Item, policy: PropagationPolicy) -> Result<(), GarbageError> {
    let what = item.entry.describe();
    info!(object = %what, ?policy, "owners gone or waiting; deleting");
    let dp = DeleteParams {
        propagation_policy: Some(policy),
        // The version judged: if the object changed since (say its owner reference was
        // removed by orphaning), the delete fails and the object is judged again.
        preconditions: Some(Preconditions {
            uid: Some(item.uid.to_string()),
            resource_version: Some(item.entry.resource_version.clone()),
        }),
        ..Default::default()
    };
    let api = monitors::api(
        &ctx.client,
        item.entry.kind,
        item.entry.namespace.as_deref(),
    );
    let result = api.delete(&item.entry.name, &dp).await;
    super::unless_gone(result)
        .map(|_| ())
        .map_err(|source| GarbageError::Delete {
            object: what,
            source,
        })
}
