//! `cordon`, `uncordon` and `drain`: mark a node (un)schedulable; evict its pods through
//! pods/eviction (deleting them when the server has no eviction subresource), like kubectl.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams};
use serde_json::json;

use crate::cli::DrainArgs;
use crate::error::Error;
use crate::session::Session;

/// kubectl retries an eviction refused by a disruption budget (429) after 5 s.
const EVICTION_RETRY: Duration = Duration::from_secs(5);
const WAIT_POLL: Duration = Duration::from_millis(250);
const MIRROR: &str = "kubernetes.io/config.mirror";

pub async fn cordon(s: &Session, node: &str, on: bool) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(s.client.clone());
    let current = nodes.get(node).await?;
    let was = current.spec.and_then(|s| s.unschedulable).unwrap_or(false);
    let word = if on { "cordoned" } else { "uncordoned" };
    if was == on {
        println!("node/{node} already {word}");
        return Ok(());
    }
    let res = s.resolve("nodes").await?;
    let patch = json!({"spec": {"unschedulable": on}});
    crate::cmd::write::patch_merge(&s.api_in(&res, None), node, &patch).await?;
    println!("node/{node} {word}");
    Ok(())
}

/// Why a pod blocks the drain, or None if it can go.
fn check(pod: &Pod, args: &DrainArgs) -> Result<bool, String> {
    let key = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    );
    if pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR))
    {
        return Ok(false);
    }
    let controller = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    if controller.is_some_and(|c| c.kind == "DaemonSet") {
        return if args.ignore_daemonsets {
            eprintln!("Warning: ignoring DaemonSet-managed Pods: {key}");
            Ok(false)
        } else {
            Err(format!(
                "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {key}"
            ))
        };
    }
    if controller.is_none() && !args.force {
        return Err(format!(
            "cannot delete Pods that declare no controller (use --force to override): {key}"
        ));
    }
    let empty_dir = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .any(|v| v.empty_dir.is_some());
    if empty_dir && !args.delete_emptydir_data {
        return Err(format!(
            "cannot delete Pods with local storage (use --delete-emptydir-data to override): {key}"
        ));
    }
    Ok(true)
}

pub async fn drain(s: &Session, args: &DrainArgs) -> Result<(), Error> {
    cordon(s, &args.node, true).await?;
    let pods = crate::cmd::describe::pods_on_node(s, &args.node).await?;
    let mut victims = Vec::new();
    let mut blockers = Vec::new();
    for p in pods {
        match check(&p, args) {
            Ok(true) => victims.push(p),
            Ok(false) => {}
            Err(why) => blockers.push(why),
        }
    }
    if !blockers.is_empty() {
        return Err(Error::Failed(format!(
            "unable to drain node \"{}\" due to error: {}, continuing command...\nThere are pending nodes to be drained:\n {}",
            args.node,
            blockers.join(", "),
            args.node
        )));
    }
    let evict = s
        .index()
        .await?
        .resolve("pods")?
        .has_subresource("eviction");
    let deadline = (!args.timeout.is_zero()).then(|| Instant::now() + args.timeout);
    for p in &victims {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let name = p.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(s.client.clone(), &ns);
        let mut dp = DeleteParams::default();
        if args.grace_period >= 0 {
            dp.grace_period_seconds = Some(args.grace_period as u32);
        }
        if evict {
            println!("evicting pod {ns}/{name}");
            loop {
                match evict_pod(s, &api, &name, &ns, args.grace_period).await {
                    Ok(_) => break,
                    Err(kube::Error::Api(st)) if st.code == 404 => break,
                    Err(kube::Error::Api(st)) if st.code == 429 => {
                        eprintln!("error when evicting pods/\"{name}\" -n \"{ns}\" (will retry after 5s): {}", st.message);
                        tokio::time::sleep(EVICTION_RETRY).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        } else {
            match api.delete(&name, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(st)) if st.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let uid = p.metadata.uid.clone();
        loop {
            match api.get_opt(&name).await? {
                Some(cur) if cur.metadata.uid == uid => {
                    if deadline.is_some_and(|d| Instant::now() > d) {
                        return Err(Error::Failed(format!(
                            "drain did not complete within {:?}: pod {ns}/{name} is still there",
                            args.timeout
                        )));
                    }
                    tokio::time::sleep(WAIT_POLL).await;
                }
                _ => break,
            }
        }
        println!("pod/{name} {}", if evict { "evicted" } else { "deleted" });
    }
    println!("node/{} drained", args.node);
    Ok(())
}

/// POSTs a policy/v1 Eviction. Built by hand: kube's `Api::evict` names the body field
/// `delete_options` instead of `deleteOptions`, so a grace period would be lost.
async fn evict_pod(
    s: &Session,
    api: &Api<Pod>,
    name: &str,
    ns: &str,
    grace_period: i64,
) -> Result<(), kube::Error> {
    let mut body = json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": ns},
    });
    if grace_period >= 0 {
        body["deleteOptions"] = json!({"gracePeriodSeconds": grace_period});
    }
    let req = http::Request::post(format!("{}/{name}/eviction", api.resource_url()))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).map_err(kube::Error::SerdeError)?)
        .map_err(kube::Error::HttpError)?;
    s.client.request::<serde_json::Value>(req).await.map(drop)
}
