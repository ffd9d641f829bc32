//! `describe TYPE [NAME...]`: fetch the objects and what their section needs (events with
//! an involvedObject field selector, owned replica sets, selected pods, endpoints).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, Node, Pod, Secret, Service,
};
use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cli::DescribeArgs;
use crate::describe::{self, resources, workload, Related};
use crate::discovery::ResourceInfo;
use crate::error::{self, Error};
use crate::session::Session;
use crate::target::parse_targets;

pub async fn run(s: &Session, args: &DescribeArgs) -> Result<(), Error> {
    let targets = parse_targets(&args.resources)?;
    if targets.is_empty() {
        return Err(Error::Usage("You must specify the type of resource to describe. Use \"minictl api-resources\" for a complete list of supported resources.".into()));
    }
    let sel = crate::cmd::get::select(s, &targets).await?;
    let mut objects: Vec<(ResourceInfo, Value)> = Vec::new();
    let mut failed = false;
    for (res, names) in &sel.groups {
        let api = s.api(res);
        if names.is_empty() {
            let lp = ListParams {
                label_selector: args.selector.clone(),
                ..Default::default()
            };
            for o in api.list(&lp).await?.items {
                objects.push((res.clone(), serde_json::to_value(o).unwrap_or_default()));
            }
        }
        for n in names {
            match api.get(n).await {
                Ok(o) => objects.push((res.clone(), serde_json::to_value(o).unwrap_or_default())),
                Err(e) => {
                    failed = true;
                    eprintln!("{}", error::render_kube(&e));
                }
            }
        }
    }
    if objects.is_empty() && !failed {
        eprintln!("No resources found{}.", s.scope_phrase());
    }
    for (i, (res, obj)) in objects.iter().enumerate() {
        if i > 0 {
            println!("\n");
        }
        print!("{}", describe_one(s, res, obj).await?);
    }
    if failed {
        Err(Error::Reported)
    } else {
        Ok(())
    }
}

fn typed<T: DeserializeOwned>(obj: &Value) -> Result<T, Error> {
    serde_json::from_value(obj.clone())
        .map_err(|e| Error::Failed(format!("cannot decode {}: {e}", obj["metadata"]["name"])))
}

async fn describe_one(s: &Session, res: &ResourceInfo, obj: &Value) -> Result<String, Error> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let ns = obj["metadata"]["namespace"].as_str();
    let mut rel = Related {
        events: events_for(s, obj).await,
        ..Default::default()
    };
    let group = res.group.as_str();
    Ok(match (group, res.kind.as_str()) {
        ("", "Pod") => describe::pod::describe(&typed::<Pod>(obj)?, &rel),
        ("apps", "Deployment") => {
            let d: Deployment = typed(obj)?;
            let uid = d.metadata.uid.clone();
            let rss: Api<ReplicaSet> =
                Api::namespaced(s.client.clone(), ns.unwrap_or(&s.namespace));
            rel.replica_sets = rss
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|rs| owned_by(&rs.metadata, uid.as_deref()))
                .collect();
            workload::describe_deployment(&d, &rel)
        }
        ("apps", "ReplicaSet") => {
            let rs: ReplicaSet = typed(obj)?;
            let pods: Api<Pod> = Api::namespaced(s.client.clone(), ns.unwrap_or(&s.namespace));
            let uid = rs.metadata.uid.clone();
            rel.pods = pods
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|p| owned_by(&p.metadata, uid.as_deref()))
                .collect();
            workload::describe_replicaset(&rs, &rel)
        }
        ("", "Service") => {
            let eps: Api<Endpoints> = Api::namespaced(s.client.clone(), ns.unwrap_or(&s.namespace));
            rel.endpoints = eps.get_opt(name).await.ok().flatten();
            resources::describe_service(&typed::<Service>(obj)?, &rel)
        }
        ("", "Node") => {
            rel.pods = pods_on_node(s, name).await?;
            resources::describe_node(&typed::<Node>(obj)?, &rel)
        }
        ("", "Namespace") => resources::describe_namespace(&typed::<Namespace>(obj)?, &rel),
        ("", "ConfigMap") => resources::describe_configmap(&typed::<ConfigMap>(obj)?, &rel),
        ("", "Secret") => resources::describe_secret(&typed::<Secret>(obj)?, &rel),
        _ => {
            let mut text = describe::generic(obj);
            let mut out = describe::format::Out::default();
            describe::events::section(&mut out, &rel.events);
            text.push_str(&out.finish());
            text
        }
    })
}

fn owned_by(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    uid: Option<&str>,
) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| Some(o.uid.as_str()) == uid)
}

/// Pods bound to a node (`spec.nodeName` field selector; filtered here too in case the
/// server ignores it).
pub async fn pods_on_node(s: &Session, node: &str) -> Result<Vec<Pod>, Error> {
    let pods: Api<Pod> = Api::all(s.client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let list = match pods.list(&lp).await {
        Ok(l) => l,
        Err(kube::Error::Api(st)) if st.code == 400 => pods.list(&ListParams::default()).await?,
        Err(e) => return Err(e.into()),
    };
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .collect())
}

/// The object's events, like kubectl: a field selector on involvedObject (name, namespace,
/// uid), falling back to filtering the namespace's events if the server rejects it.
async fn events_for(s: &Session, obj: &Value) -> Vec<Event> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let ns = obj["metadata"]["namespace"].as_str();
    let uid = obj["metadata"]["uid"].as_str();
    let api: Api<Event> = match ns {
        Some(ns) => Api::namespaced(s.client.clone(), ns),
        None => Api::all(s.client.clone()),
    };
    let mut fields = vec![format!("involvedObject.name={name}")];
    if let Some(ns) = ns {
        fields.push(format!("involvedObject.namespace={ns}"));
    }
    if let Some(uid) = uid {
        fields.push(format!("involvedObject.uid={uid}"));
    }
    let lp = ListParams::default().fields(&fields.join(","));
    let items = match api.list(&lp).await {
        Ok(l) => l.items,
        Err(_) => api
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default(),
    };
    items
        .into_iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some(name)
                && (uid.is_none()
                    || e.involved_object.uid.is_none()
                    || e.involved_object.uid.as_deref() == uid)
        })
        .collect()
}
