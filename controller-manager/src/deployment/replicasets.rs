//! A Deployment's ReplicaSets: finding or creating the one for the current template,
//! revisions, scaling, and history cleanup.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::hash::{template_hash, without_hash, HASH_LABEL};
use super::{Context, DeploymentError, REVISION_ANNOTATION};
use crate::owner::controller_ref;

pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

pub fn spec_replicas(rs: &ReplicaSet) -> i32 {
    Some(&rs.spec).and_then(|s| s.replicas).unwrap_or(0)
}

pub fn status_of(rs: &ReplicaSet) -> (i32, i32, i32) {
    let s = rs.status.clone().unwrap_or_default();
    (
        s.replicas,
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    )
}

/// Whether the ReplicaSet controller has acted on this ReplicaSet's latest spec.
pub fn observed(rs: &ReplicaSet) -> bool {
    let seen = rs.status.as_ref().and_then(|s| s.observed_generation);
    seen >= rs.metadata.generation
}

/// The ReplicaSet whose template equals the Deployment's, ignoring the hash label.
pub fn find_new(d: &Deployment, sets: &[ReplicaSet]) -> Option<usize> {
    let template = without_hash(&Some(&d.spec)?.template);
    let mut matching: Vec<usize> = (0..sets.len())
        .filter(|&i| {
            Some(&sets[i].spec)
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| without_hash(t) == template)
        })
        .collect();
    // Several identical templates: the oldest wins, as in Kubernetes' FindNewReplicaSet.
    matching.sort_by_key(|&i| sets[i].metadata.creation_timestamp.as_ref().map(|t| t.0));
    matching.first().copied()
}

fn max_revision(sets: &[ReplicaSet], except: Option<usize>) -> i64 {
    (0..sets.len())
        .filter(|i| Some(*i) != except)
        .map(|i| revision(&sets[i]))
        .max()
        .unwrap_or(0)
}

/// Returns the index of the new ReplicaSet, creating it with `initial` replicas when missing
/// and giving it the next revision (a rollback to an old template bumps that RS's revision).
/// `Ok(None)` when `create` is false and none exists. The bool tells whether it was created.
pub async fn ensure_new(
    ctx: &Context,
    d: &Deployment,
    sets: &mut Vec<ReplicaSet>,
    create: Option<i32>,
) -> Result<Option<(usize, bool)>, DeploymentError> {
    let ns = d.namespace().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(i) = find_new(d, sets) {
        let next = max_revision(sets, Some(i)) + 1;
        if revision(&sets[i]) < next {
            let body =
                json!({"metadata": {"annotations": {REVISION_ANNOTATION: next.to_string()}}});
            sets[i] = api
                .patch(
                    &sets[i].name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&body),
                )
                .await
                .map_err(|source| DeploymentError::UpdateReplicaSet {
                    rs: sets[i].name_any(),
                    source,
                })?;
        }
        return Ok(Some((i, false)));
    }
    let Some(initial) = create else {
        return Ok(None);
    };
    let rs = new_replica_set(d, max_revision(sets, None) + 1, initial);
    let name = rs.name_any();
    match api.create(&PostParams::default(), &rs).await {
        Ok(created) => {
            // Kubernetes' getNewReplicaSet reports a new set created already scaled up.
            if initial > 0 {
                let note = format!("Scaled up replica set {name} to {initial}");
                ctx.events
                    .normal(&d.object_ref(&()), "ScalingReplicaSet", note)
                    .await;
            }
            sets.push(created);
            Ok(Some((sets.len() - 1, true)))
        }
        // Our cache lags: an RS of that name with our template is the new one.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing =
                api.get(&name)
                    .await
                    .map_err(|source| DeploymentError::CreateReplicaSet {
                        rs: name.clone(),
                        source,
                    })?;
            let same = Some(&existing.spec)
                .and_then(|s| s.template.as_ref())
                .map(without_hash)
                == Some(&d.spec).map(|s| without_hash(&s.template));
            if !same {
                return Err(DeploymentError::HashCollision { rs: name });
            }
            sets.push(existing);
            Ok(Some((sets.len() - 1, false)))
        }
        Err(source) => Err(DeploymentError::CreateReplicaSet { rs: name, source }),
    }
}

fn new_replica_set(d: &Deployment, revision: i64, replicas: i32) -> ReplicaSet {
    let spec = d.spec.clone();
    let collisions = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = template_hash(&spec.template, collisions);
    let mut template = spec.template.clone();
    let tmeta = template.metadata.get_or_insert_with(Default::default);
    tmeta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.clone());
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.clone());
    let mut annotations = d.annotations().clone();
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    annotations.insert(REVISION_ANNOTATION.into(), revision.to_string());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", d.name_any())),
            namespace: d.namespace(),
            labels: tmeta.labels.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref("apps/v1", "Deployment", &d.metadata)]),
            ..Default::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        },
        status: None,
    }
}

/// Sets `spec.replicas` of `sets[i]`, with a ScalingReplicaSet event on the Deployment.
pub async fn scale(
    ctx: &Context,
    d: &Deployment,
    sets: &mut [ReplicaSet],
    i: usize,
    to: i32,
) -> Result<(), DeploymentError> {
    let from = spec_replicas(&sets[i]);
    if from == to {
        return Ok(());
    }
    let name = sets[i].name_any();
    let api: Api<ReplicaSet> =
        Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    let body = json!({"spec": {"replicas": to}});
    sets[i] = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(|source| DeploymentError::UpdateReplicaSet {
            rs: name.clone(),
            source,
        })?;
    let note = if to > from {
        format!("Scaled up replica set {name} to {to}")
    } else {
        format!("Scaled down replica set {name} to {to} from {from}")
    };
    ctx.events
        .normal(&d.object_ref(&()), "ScalingReplicaSet", note)
        .await;
    Ok(())
}

/// Deletes the oldest fully scaled-down old ReplicaSets beyond revisionHistoryLimit
/// (default 10), as Kubernetes' cleanupDeployment.
pub async fn cleanup_history(
    ctx: &Context,
    d: &Deployment,
    sets: &mut Vec<ReplicaSet>,
) -> Result<(), DeploymentError> {
    let limit = Some(&d.spec)
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0) as usize;
    let new = find_new(d, sets);
    let mut old: Vec<usize> = (0..sets.len())
        .filter(|&i| Some(i) != new)
        .filter(|&i| {
            spec_replicas(&sets[i]) == 0 && status_of(&sets[i]).0 == 0 && observed(&sets[i])
        })
        .filter(|&i| sets[i].metadata.deletion_timestamp.is_none())
        .collect();
    if old.len() <= limit {
        return Ok(());
    }
    old.sort_by_key(|&i| revision(&sets[i]));
    let doomed: Vec<usize> = old[..old.len() - limit].to_vec();
    let api: Api<ReplicaSet> =
        Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    for &i in &doomed {
        let name = sets[i].name_any();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => return Err(DeploymentError::DeleteReplicaSet { rs: name, source }),
        }
    }
    let mut i = 0;
    sets.retain(|_| {
        i += 1;
        !doomed.contains(&(i - 1))
    });
    Ok(())
}
