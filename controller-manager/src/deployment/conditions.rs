//! Deployment status and its Progressing/Available conditions (Kubernetes' sync.go and
//! progress.go), with the reasons `kubectl rollout status` understands.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::replicasets::{find_new, revision, spec_replicas, status_of};
use super::surge::resolve;
use super::{key, Context, DeploymentError, REVISION_ANNOTATION};

const PROGRESSING: &str = "Progressing";
const AVAILABLE: &str = "Available";

fn calculate(d: &Deployment, sets: &[ReplicaSet]) -> DeploymentStatus {
    let new = find_new(d, sets);
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| sets.iter().map(f).sum::<i32>();
    let available = sum(&|rs| status_of(rs).2);
    let total_spec = sum(&spec_replicas);
    let old = d.status.clone().unwrap_or_default();
    DeploymentStatus {
        replicas: Some(sum(&|rs| status_of(rs).0)),
        updated_replicas: Some(new.map(|i| status_of(&sets[i]).0).unwrap_or(0)),
        ready_replicas: Some(sum(&|rs| status_of(rs).1)),
        available_replicas: Some(available),
        unavailable_replicas: Some((total_spec - available).max(0)),
        observed_generation: d.metadata.generation,
        collision_count: old.collision_count,
        conditions: old.conditions,
        ..Default::default()
    }
}

/// Replaces the condition of that type, keeping lastTransitionTime when the status is unchanged.
fn set(
    conds: &mut Vec<DeploymentCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) {
    let now = Time(Timestamp::now());
    let existing = conds.iter().position(|c| c.type_.as_deref() == Some(type_));
    let transition = match existing {
        Some(i) if conds[i].status.as_deref() == Some(status) => {
            conds[i].last_transition_time.clone()
        }
        _ => Some(now.clone()),
    };
    if let Some(i) = existing {
        if conds[i].status.as_deref() == Some(status)
            && conds[i].reason.as_deref() == Some(reason)
            && reason != "ReplicaSetUpdated"
        {
            return;
        }
        conds.remove(i);
    }
    conds.push(DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status.into()),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now),
        last_transition_time: transition,
    });
}

fn reason_of<'a>(conds: &'a [DeploymentCondition], type_: &str) -> Option<&'a str> {
    conds
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))
        .and_then(|c| c.reason.as_deref())
}

/// Kubernetes' DeploymentProgressing: more updated/ready/available pods or fewer old ones.
fn progressed(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let old_pods = |s: &DeploymentStatus| s.replicas.unwrap_or(0) - s.updated_replicas.unwrap_or(0);
    new.updated_replicas > old.updated_replicas
        || new.ready_replicas > old.ready_replicas
        || new.available_replicas > old.available_replicas
        || old_pods(new) < old_pods(old)
}

/// Computes status and conditions, writes them when changed, keeps the Deployment's revision
/// annotation in step with its new ReplicaSet; returns when to check the deadline again.
pub async fn update_status(
    ctx: &Context,
    d: &Deployment,
    sets: &[ReplicaSet],
    created: Option<String>,
) -> Result<Option<Duration>, DeploymentError> {
    let spec = d.spec.clone();
    let replicas = spec.replicas.unwrap_or(1);
    let mut status = calculate(d, sets);
    let mut conds = status.conditions.take().unwrap_or_default();
    let new = find_new(d, sets);
    let rs_name = new.map(|i| sets[i].name_any()).unwrap_or_default();
    let ru = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let is_recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let max_unavailable = if is_recreate {
        0
    } else {
        resolve(ru.max_surge.as_ref(), ru.max_unavailable.as_ref(), replicas).1
    };
    if status.available_replicas.unwrap_or(0) >= replicas - max_unavailable {
        set(
            &mut conds,
            AVAILABLE,
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
        );
    } else {
        set(
            &mut conds,
            AVAILABLE,
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
        );
    }
    let mut recheck = None;
    if spec.paused == Some(true) {
        set(
            &mut conds,
            PROGRESSING,
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
        );
    } else if reason_of(&conds, PROGRESSING) == Some("DeploymentPaused") {
        set(
            &mut conds,
            PROGRESSING,
            "Unknown",
            "DeploymentResumed",
            "Deployment is resumed".into(),
        );
    } else if let Some(name) = &created {
        set(
            &mut conds,
            PROGRESSING,
            "True",
            "NewReplicaSetCreated",
            format!("Created new replica set \"{name}\""),
        );
    } else if let Some(deadline) = spec.progress_deadline_seconds {
        recheck = progress(d, &status, &mut conds, &rs_name, replicas, deadline);
    }
    status.conditions = Some(conds);
    sync_revision(ctx, d, new.map(|i| revision(&sets[i]))).await?;
    write(ctx, d, status).await?;
    Ok(recheck)
}

/// The Progressing condition of an unpaused rollout; returns when the deadline would pass.
fn progress(
    d: &Deployment,
    status: &DeploymentStatus,
    conds: &mut Vec<DeploymentCondition>,
    rs: &str,
    replicas: i32,
    deadline: i32,
) -> Option<Duration> {
    let complete = status.updated_replicas == Some(replicas)
        && status.replicas == Some(replicas)
        && status.available_replicas == Some(replicas);
    let before = d.status.clone().unwrap_or_default();
    if complete {
        set(
            conds,
            PROGRESSING,
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs}\" has successfully progressed."),
        );
        return None;
    }
    if reason_of(conds, PROGRESSING).is_none() {
        set(
            conds,
            PROGRESSING,
            "True",
            "FoundNewReplicaSet",
            format!("Found new replica set \"{rs}\""),
        );
    } else if progressed(&before, status) {
        set(
            conds,
            PROGRESSING,
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs}\" is progressing."),
        );
    }
    let cond = conds
        .iter()
        .find(|c| c.type_.as_deref() == Some(PROGRESSING))?;
    if cond.reason.as_deref() == Some("ProgressDeadlineExceeded") {
        return None;
    }
    let from = cond.last_update_time.as_ref()?.0;
    let ends = from + SignedDuration::from_secs(deadline.into());
    let now = Timestamp::now();
    if now >= ends {
        set(
            conds,
            PROGRESSING,
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{rs}\" has timed out progressing."),
        );
        return None;
    }
    let left = ends.duration_since(now).as_millis().max(0) as u64;
    Some(Duration::from_millis(left + 100))
}

async fn sync_revision(
    ctx: &Context,
    d: &Deployment,
    revision: Option<i64>,
) -> Result<(), DeploymentError> {
    let Some(rev) = revision.filter(|r| *r > 0).map(|r| r.to_string()) else {
        return Ok(());
    };
    if d.annotations().get(REVISION_ANNOTATION) == Some(&rev) {
        return Ok(());
    }
    let api: Api<Deployment> =
        Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    let body = json!({"metadata": {"annotations": {REVISION_ANNOTATION: rev}}});
    api.patch(&d.name_any(), &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map(|_| ())
        .map_err(|source| DeploymentError::UpdateDeployment {
            deployment: key(d),
            source,
        })
}

async fn write(
    ctx: &Context,
    d: &Deployment,
    status: DeploymentStatus,
) -> Result<(), DeploymentError> {
    if d.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<Deployment> =
        Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    let body = json!({ "status": status });
    match api
        .patch_status(&d.name_any(), &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(DeploymentError::UpdateDeployment {
            deployment: key(d),
            source,
        }),
    }
}
