//! `rollout status|history|undo|restart|pause|resume` for deployments. `status` follows
//! kubectl's DeploymentStatusViewer: it prints progress lines from the Deployment's status
//! until the rollout is complete or has exceeded its progress deadline.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::cli::{RolloutCommand, RolloutStatusArgs, RolloutTarget, RolloutUndoArgs};
use crate::describe::format::tabwrite;
use crate::describe::workload::revision;
use crate::error::Error;
use crate::session::Session;
use crate::target::single;

/// What `rollout status` concludes from one observation of a Deployment.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    Waiting(String),
    Done(String),
}

/// kubectl's `DeploymentStatusViewer.Status`.
pub fn deployment_status(d: &Deployment) -> Result<Progress, String> {
    let name = d.metadata.name.as_deref().unwrap_or("");
    let st = d.status.clone().unwrap_or_default();
    if d.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0) {
        return Ok(Progress::Waiting(
            "Waiting for deployment spec update to be observed...".into(),
        ));
    }
    let progressing = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some("Progressing"));
    if progressing.is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded")) {
        return Err(format!(
            "deployment \"{name}\" exceeded its progress deadline"
        ));
    }
    let updated = st.updated_replicas.unwrap_or(0);
    let replicas = st.replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    if let Some(spec) = d.spec.replicas {
        if updated < spec {
            return Ok(Progress::Waiting(format!(
                "Waiting for deployment \"{name}\" rollout to finish: {updated} out of {spec} new replicas have been updated..."
            )));
        }
    }
    if replicas > updated {
        return Ok(Progress::Waiting(format!(
            "Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...",
            replicas - updated
        )));
    }
    if available < updated {
        return Ok(Progress::Waiting(format!(
            "Waiting for deployment \"{name}\" rollout to finish: {available} of {updated} updated replicas are available..."
        )));
    }
    Ok(Progress::Done(format!(
        "deployment \"{name}\" successfully rolled out"
    )))
}

pub async fn run(s: &Session, cmd: &RolloutCommand) -> Result<(), Error> {
    match cmd {
        RolloutCommand::Status(a) => status(s, a).await,
        RolloutCommand::History(t) => history(s, t).await,
        RolloutCommand::Undo(a) => undo(s, a).await,
        RolloutCommand::Restart(t) => {
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}});
            patch_deployment(s, t, &patch, "restarted").await
        }
        RolloutCommand::Pause(t) => {
            patch_deployment(s, t, &json!({"spec": {"paused": true}}), "paused").await
        }
        RolloutCommand::Resume(t) => {
            patch_deployment(s, t, &json!({"spec": {"paused": false}}), "resumed").await
        }
    }
}

/// The deployment named by `deployment NAME` / `deploy/NAME`.
async fn deployment_api(
    s: &Session,
    t: &RolloutTarget,
    verb: &str,
) -> Result<(Api<Deployment>, String), Error> {
    let (kind, name) = single(&t.resources, verb)?;
    let res = s.resolve(&kind).await?;
    if (res.group.as_str(), res.kind.as_str()) != ("apps", "Deployment") {
        return Err(Error::Failed(format!(
            "no {verb} has been implemented for {}",
            res.plural_name()
        )));
    }
    Ok((Api::namespaced(s.client.clone(), &s.namespace), name))
}

async fn patch_deployment(
    s: &Session,
    t: &RolloutTarget,
    patch: &serde_json::Value,
    word: &str,
) -> Result<(), Error> {
    let (api, name) = deployment_api(s, t, "rollout").await?;
    let before = api.get(&name).await?;
    let paused = before.spec.paused.unwrap_or(false);
    if (word == "paused" && paused) || (word == "resumed" && !paused) {
        println!("deployment.apps/{name} already {word}");
        return Ok(());
    }
    let res = s.resolve("deployments.apps").await?;
    crate::cmd::write::patch_merge(&s.api(&res), &name, patch).await?;
    println!("deployment.apps/{name} {word}");
    Ok(())
}

async fn status(s: &Session, a: &RolloutStatusArgs) -> Result<(), Error> {
    let (api, name) = deployment_api(s, &a.target, "status viewer").await?;
    let work = async {
        let mut last = String::new();
        loop {
            let d = api.get(&name).await?;
            let rv = d.metadata.resource_version.clone().unwrap_or_default();
            if report(&d, &mut last)? || !a.watch {
                return Ok(());
            }
            let wp = WatchParams::default().fields(&format!("metadata.name={name}"));
            let mut stream = api.watch(&wp, &rv).await?.boxed();
            while let Some(ev) = stream.try_next().await? {
                match ev {
                    WatchEvent::Added(d) | WatchEvent::Modified(d) => {
                        if report(&d, &mut last)? {
                            return Ok(());
                        }
                    }
                    WatchEvent::Deleted(_) => {
                        return Err(Error::Failed(format!(
                            "object has been deleted: deployment \"{name}\""
                        )))
                    }
                    WatchEvent::Bookmark(_) => {}
                    // Expired or another watch error: relist and watch again.
                    WatchEvent::Error(_) => break,
                }
            }
        }
    };
    if a.timeout.is_zero() {
        return work.await;
    }
    tokio::time::timeout(a.timeout, work)
        .await
        .map_err(|_| Error::Failed("timed out waiting for the condition".into()))?
}

/// Prints the progress line if it changed; true once the rollout is done.
fn report(d: &Deployment, last: &mut String) -> Result<bool, Error> {
    match deployment_status(d).map_err(Error::Failed)? {
        Progress::Waiting(msg) => {
            if *last != msg {
                println!("{msg}");
                *last = msg;
            }
            Ok(false)
        }
        Progress::Done(msg) => {
            println!("{msg}");
            Ok(true)
        }
    }
}

async fn owned_replica_sets(s: &Session, d: &Deployment) -> Result<Vec<ReplicaSet>, Error> {
    let api: Api<ReplicaSet> = Api::namespaced(s.client.clone(), &s.namespace);
    let uid = d.metadata.uid.clone();
    let mut rss: Vec<ReplicaSet> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .collect();
    rss.sort_by_key(revision);
    Ok(rss)
}

async fn history(s: &Session, t: &RolloutTarget) -> Result<(), Error> {
    let (api, name) = deployment_api(s, t, "history viewer").await?;
    let d = api.get(&name).await?;
    let rss = owned_replica_sets(s, &d).await?;
    println!("deployment.apps/{name} ");
    if rss.is_empty() {
        println!("No rollout history found.");
        return Ok(());
    }
    let mut text = String::from("REVISION\tCHANGE-CAUSE\n");
    for rs in &rss {
        let cause = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kubernetes.io/change-cause").cloned())
            .unwrap_or_else(|| "<none>".into());
        text.push_str(&format!("{}\t{cause}\n", revision(rs)));
    }
    print!("{}", tabwrite(&text, 0, 2));
    Ok(())
}

async fn undo(s: &Session, a: &RolloutUndoArgs) -> Result<(), Error> {
    let (api, name) = deployment_api(s, &a.target, "rollbacker").await?;
    let mut d = api.get(&name).await?;
    let rss = owned_replica_sets(s, &d).await?;
    let current = rss.iter().map(revision).max().unwrap_or(0);
    let target = if a.to_revision == 0 {
        rss.iter().rev().find(|rs| revision(rs) < current)
    } else {
        rss.iter().find(|rs| revision(rs) == a.to_revision)
    };
    let Some(target) = target else {
        return Err(Error::Failed(if a.to_revision == 0 {
            format!("no rollout history found for deployment \"{name}\"")
        } else {
            format!(
                "unable to find specified revision {} in history",
                a.to_revision
            )
        }));
    };
    let mut template = target.spec.template.clone().unwrap_or_default();
    // The controller adds pod-template-hash; the deployment's template must not carry it.
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove("pod-template-hash");
    }
    let spec = &mut d.spec;
    if spec.template == template {
        println!("deployment.apps/{name} skipped rollback (current template already matches revision {})", revision(target));
        return Ok(());
    }
    spec.template = template;
    api.replace(&name, &PostParams::default(), &d).await?;
    println!("deployment.apps/{name} rolled back");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(
        gen: i64,
        observed: i64,
        spec: i32,
        (replicas, updated, available): (i32, i32, i32),
    ) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": gen},
            "spec": {"replicas": spec, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "replicas": replicas, "updatedReplicas": updated, "availableReplicas": available}
        }))
        .unwrap()
    }

    #[test]
    fn kubectl_progress_lines() {
        let w = |m: &str| Ok(Progress::Waiting(m.to_string()));
        assert_eq!(
            deployment_status(&dep(2, 1, 3, (3, 3, 3))),
            w("Waiting for deployment spec update to be observed...")
        );
        assert_eq!(
            deployment_status(&dep(2, 2, 3, (3, 1, 1))),
            w("Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...")
        );
        assert_eq!(
            deployment_status(&dep(2, 2, 3, (4, 3, 3))),
            w("Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...")
        );
        assert_eq!(
            deployment_status(&dep(2, 2, 3, (3, 3, 1))),
            w("Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are available...")
        );
        assert_eq!(
            deployment_status(&dep(2, 2, 3, (3, 3, 3))),
            Ok(Progress::Done(
                "deployment \"web\" successfully rolled out".into()
            ))
        );
    }

    #[test]
    fn deadline_exceeded_fails() {
        let mut d = dep(1, 1, 3, (3, 1, 1));
        d.status.as_mut().unwrap().conditions = Some(vec![serde_json::from_value(json!({
            "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"
        }))
        .unwrap()]);
        assert_eq!(
            deployment_status(&d),
            Err("deployment \"web\" exceeded its progress deadline".into())
        );
    }
}
