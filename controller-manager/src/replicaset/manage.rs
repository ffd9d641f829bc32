//! Creating and deleting pods toward `spec.replicas` (Kubernetes' manageReplicas).

use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Resource, ResourceExt};

use super::{key, Context, ReplicaSetError};
use crate::cached_pod::CachedPod;
use crate::owner::controller_ref;
use crate::pods::deletion_order;

/// Kubernetes' burstReplicas: at most this many creates or deletes per pass.
const BURST: usize = 500;

/// A pod for this ReplicaSet from its template: `generateName: <rs>-`, the template's labels
/// and annotations, a controller reference.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = Some(&rs.spec)
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            owner_references: Some(vec![controller_ref("apps/v1", "ReplicaSet", &rs.metadata)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

pub async fn sync_replicas(
    ctx: &Context,
    rs: &ReplicaSet,
    owned: &[Arc<CachedPod>],
) -> Result<(), ReplicaSetError> {
    let want = Some(&rs.spec).and_then(|s| s.replicas).unwrap_or(1).max(0) as usize;
    if owned.len() < want {
        create(ctx, rs, (want - owned.len()).min(BURST)).await
    } else if owned.len() > want {
        let mut victims: Vec<&Arc<CachedPod>> = owned.iter().collect();
        victims.sort_by(|a, b| deletion_order(a, b));
        victims.truncate((owned.len() - want).min(BURST));
        delete(ctx, rs, &victims).await
    } else {
        Ok(())
    }
}

/// Creates in slow-start batches (1, 2, 4, …) as Kubernetes' slowStartBatch does, so a
/// template the API server rejects fails after one call rather than hundreds.
async fn create(ctx: &Context, rs: &ReplicaSet, count: usize) -> Result<(), ReplicaSetError> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let pod = pod_from_template(rs);
    let reference = rs.object_ref(&());
    let (mut done, mut batch) = (0, 1);
    while done < count {
        let n = batch.min(count - done);
        let pp = PostParams::default();
        ctx.expectations.begin_creations(&key(rs));
        let results = join_all((0..n).map(|_| api.create(&pp, &pod))).await;
        let mut names = Vec::new();
        let mut failure = None;
        for r in results {
            match r {
                Ok(p) => names.push(p.name_any()),
                Err(e) => failure = Some(e),
            }
        }
        ctx.expectations.expect_creations(&key(rs), names.clone());
        for name in names {
            ctx.events
                .normal(
                    &reference,
                    "SuccessfulCreate",
                    format!("Created pod: {name}"),
                )
                .await;
        }
        if let Some(source) = failure {
            ctx.events
                .warning(
                    &reference,
                    "FailedCreate",
                    format!("Error creating: {source}"),
                )
                .await;
            return Err(ReplicaSetError::CreatePod {
                rs: key(rs),
                source,
            });
        }
        done += n;
        batch *= 2;
    }
    Ok(())
}

async fn delete(
    ctx: &Context,
    rs: &ReplicaSet,
    victims: &[&Arc<CachedPod>],
) -> Result<(), ReplicaSetError> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let names: Vec<String> = victims.iter().map(|p| p.name_any()).collect();
    ctx.expectations.expect_deletions(&key(rs), names.clone());
    let dp = DeleteParams::default();
    let results = join_all(names.iter().map(|n| api.delete(n, &dp))).await;
    let reference = rs.object_ref(&());
    for (name, r) in names.iter().zip(results) {
        match r {
            Ok(_) => {
                ctx.events
                    .normal(
                        &reference,
                        "SuccessfulDelete",
                        format!("Deleted pod: {name}"),
                    )
                    .await
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(ReplicaSetError::DeletePod {
                    rs: key(rs),
                    pod: name.clone(),
                    source,
                })
            }
        }
    }
    Ok(())
}
