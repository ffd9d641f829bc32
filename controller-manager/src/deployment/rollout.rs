//! The two strategies (Kubernetes' rolling.go and recreate.go), applied to a local copy of
//! the Deployment's ReplicaSets that is updated with every write so one pass never acts on
//! its own stale reads.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::replicasets::{ensure_new, find_new, observed, scale, spec_replicas, status_of};
use super::surge::resolve;
use super::{Context, DeploymentError};

fn desired(d: &Deployment) -> i32 {
    Some(&d.spec).and_then(|s| s.replicas).unwrap_or(1).max(0)
}

/// Pods an RS may have right now: its target, or more while it has not caught up.
fn pods_of(rs: &ReplicaSet) -> i32 {
    spec_replicas(rs).max(status_of(rs).0)
}

/// Runs the strategy; returns the name of a ReplicaSet it created.
pub async fn sync(
    ctx: &Context,
    d: &Deployment,
    sets: &mut Vec<ReplicaSet>,
) -> Result<Option<String>, DeploymentError> {
    let strategy = Some(&d.spec)
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.clone())
        .unwrap_or_else(|| "RollingUpdate".into());
    if strategy == "Recreate" {
        recreate(ctx, d, sets).await
    } else {
        rolling(ctx, d, sets).await
    }
}

/// Recreate: scale every old ReplicaSet to zero, wait until their pods are gone, then bring
/// the new one up to full size.
async fn recreate(
    ctx: &Context,
    d: &Deployment,
    sets: &mut Vec<ReplicaSet>,
) -> Result<Option<String>, DeploymentError> {
    let new = find_new(d, sets);
    let old: Vec<usize> = (0..sets.len()).filter(|&i| Some(i) != new).collect();
    let mut scaled = false;
    for &i in &old {
        if spec_replicas(&sets[i]) > 0 {
            scale(ctx, d, sets, i, 0).await?;
            scaled = true;
        }
    }
    let old_running = old
        .iter()
        .any(|&i| status_of(&sets[i]).0 > 0 || !observed(&sets[i]));
    if scaled || old_running {
        // Creating the new RS only once old pods are gone keeps the two versions from
        // ever running side by side, which is Recreate's promise.
        return Ok(None);
    }
    let Some((i, created)) = ensure_new(ctx, d, sets, Some(desired(d))).await? else {
        return Ok(None);
    };
    scale(ctx, d, sets, i, desired(d)).await?;
    Ok(created.then(|| kube::ResourceExt::name_any(&sets[i])))
}

/// RollingUpdate: grow the new ReplicaSet while the total stays within replicas + maxSurge,
/// shrink old ones while available pods stay at least replicas - maxUnavailable.
async fn rolling(
    ctx: &Context,
    d: &Deployment,
    sets: &mut Vec<ReplicaSet>,
) -> Result<Option<String>, DeploymentError> {
    let replicas = desired(d);
    let ru = Some(&d.spec)
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let (surge, unavailable) =
        resolve(ru.max_surge.as_ref(), ru.max_unavailable.as_ref(), replicas);
    let current: i32 = sets.iter().map(pods_of).sum();
    let initial = if sets.is_empty() {
        replicas
    } else {
        (replicas + surge - current).clamp(0, replicas)
    };
    let Some((new, created)) = ensure_new(ctx, d, sets, Some(initial)).await? else {
        return Ok(None);
    };
    let created = created.then(|| kube::ResourceExt::name_any(&sets[new]));
    // Act only on counts the ReplicaSet controller has caught up with, or a scale-down that
    // is not yet reflected in status would be counted as still-available pods.
    if !sets.iter().all(observed) || created.is_some() {
        return Ok(created);
    }
    scale_up_new(ctx, d, sets, new, replicas, surge).await?;
    scale_down_old(ctx, d, sets, new, replicas - unavailable).await?;
    Ok(created)
}

async fn scale_up_new(
    ctx: &Context,
    d: &Deployment,
    sets: &mut [ReplicaSet],
    new: usize,
    replicas: i32,
    surge: i32,
) -> Result<(), DeploymentError> {
    let have = spec_replicas(&sets[new]);
    if have > replicas {
        return scale(ctx, d, sets, new, replicas).await;
    }
    let current: i32 = sets.iter().map(pods_of).sum();
    let room = replicas + surge - current;
    if have < replicas && room > 0 {
        scale(ctx, d, sets, new, have + room.min(replicas - have)).await?;
    }
    Ok(())
}

/// Kubernetes' reconcileOldReplicaSets: first remove old pods that are not available
/// (they cost no availability), then available ones down to the minimum.
async fn scale_down_old(
    ctx: &Context,
    d: &Deployment,
    sets: &mut [ReplicaSet],
    new: usize,
    min_available: i32,
) -> Result<(), DeploymentError> {
    let mut old: Vec<usize> = (0..sets.len())
        .filter(|&i| i != new && spec_replicas(&sets[i]) > 0)
        .collect();
    if old.is_empty() {
        return Ok(());
    }
    old.sort_by_key(|&i| sets[i].metadata.creation_timestamp.as_ref().map(|t| t.0));
    let all: i32 = sets.iter().map(spec_replicas).sum();
    let new_unavailable = (spec_replicas(&sets[new]) - status_of(&sets[new]).2).max(0);
    let mut budget = all - min_available - new_unavailable;
    for &i in &old {
        if budget <= 0 {
            return Ok(());
        }
        let unhealthy = (spec_replicas(&sets[i]) - status_of(&sets[i]).2).max(0);
        let down = unhealthy.min(budget);
        if down > 0 {
            let to = spec_replicas(&sets[i]) - down;
            scale(ctx, d, sets, i, to).await?;
            budget -= down;
        }
    }
    let available: i32 = sets.iter().map(|rs| status_of(rs).2).sum();
    let mut excess = (available - min_available).min(budget);
    for &i in &old {
        if excess <= 0 {
            break;
        }
        let have = spec_replicas(&sets[i]);
        let down = have.min(excess);
        if down > 0 {
            scale(ctx, d, sets, i, have - down).await?;
            excess -= down;
        }
    }
    Ok(())
}

/// A paused Deployment does not roll, but a lone ReplicaSet still follows `replicas`
/// (Kubernetes' sync for scaling events while paused).
pub async fn scale_paused(
    ctx: &Context,
    d: &Deployment,
    sets: &mut [ReplicaSet],
) -> Result<(), DeploymentError> {
    let Some(new) = find_new(d, sets) else {
        return Ok(());
    };
    let others_idle = (0..sets.len()).all(|i| i == new || spec_replicas(&sets[i]) == 0);
    if others_idle {
        scale(ctx, d, sets, new, desired(d)).await?;
    }
    Ok(())
}
