//! One metadata-only watch per served kind (Kubernetes' GraphBuilder monitors), merged into
//! one stream of changes for the graph. Objects are listed and watched as
//! `PartialObjectMetadata`, and each is cut down to a graph entry as it arrives, so no
//! object's metadata outlives its event.

use futures::stream::{self, BoxStream};
use futures::StreamExt;
use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind, PartialObjectMeta};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use minik8s_api::resource::{ResourceInfo, RESOURCES};
use tracing::debug;

use super::graph::{Entry, Uid};

/// A change to the objects of one kind.
#[derive(Debug)]
pub enum Change {
    Applied(Uid, Entry),
    Deleted(Uid),
    /// A (re)list begins: the objects listed until `Listed` are all there are.
    Listing,
    Listed(Uid, Entry),
    ListDone,
}

/// Resources the collector leaves alone, as Kubernetes' garbage collector does by default
/// (its `ignoredResources`: core and events.k8s.io events). Events are the most numerous
/// objects of a busy cluster — one per pod created, for a start — and expire on their own.
const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// The kinds the collector watches: every served kind that can be listed, watched and
/// deleted (Kubernetes' GC monitors every such resource), less the ignored ones.
pub fn kinds() -> impl Iterator<Item = &'static ResourceInfo> {
    RESOURCES.iter().filter(|r| {
        ["list", "watch", "delete"]
            .iter()
            .all(|v| r.verbs.contains(v))
            && !IGNORED.contains(&(r.group, r.plural))
    })
}

pub fn api_resource(info: &ResourceInfo) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(info.group, info.version, info.kind),
        info.plural,
    )
}

/// The dynamic API of `info` in `ns` (all namespaces, or cluster-scoped, when None).
pub fn api(client: &Client, info: &ResourceInfo, ns: Option<&str>) -> Api<DynamicObject> {
    let ar = api_resource(info);
    match ns {
        Some(ns) if info.namespaced => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    }
}

fn entry(
    kind: &'static ResourceInfo,
    obj: &PartialObjectMeta<DynamicObject>,
) -> Option<(Uid, Entry)> {
    Entry::from_meta(kind, &obj.metadata)
}

fn change(
    kind: &'static ResourceInfo,
    event: watcher::Event<PartialObjectMeta<DynamicObject>>,
) -> Option<Change> {
    Some(match event {
        watcher::Event::Apply(o) => {
            let (uid, e) = entry(kind, &o)?;
            Change::Applied(uid, e)
        }
        watcher::Event::Delete(o) => Change::Deleted(o.metadata.uid.as_deref()?.into()),
        watcher::Event::Init => Change::Listing,
        watcher::Event::InitApply(o) => {
            let (uid, e) = entry(kind, &o)?;
            Change::Listed(uid, e)
        }
        watcher::Event::InitDone => Change::ListDone,
    })
}

/// The changes of every watched kind, tagged with the kind. Watch errors are retried with
/// kube's default backoff (and a relist after a 410).
pub fn watch_all(client: &Client) -> BoxStream<'static, (&'static ResourceInfo, Change)> {
    let streams = kinds().map(|kind| {
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(client.clone(), &api_resource(kind));
        watcher(api, watcher::Config::default())
            .default_backoff()
            .filter_map(move |event| {
                let out = match event {
                    Ok(event) => change(kind, event).map(|c| (kind, c)),
                    Err(e) => {
                        debug!(kind = kind.kind, error = %e, "garbage collector watch");
                        None
                    }
                };
                futures::future::ready(out)
            })
            .boxed()
    });
    stream::select_all(streams).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_owners_and_dependents_but_not_events() {
        let plurals: Vec<&str> = kinds().map(|k| k.plural).collect();
        for watched in [
            "pods",
            "replicasets",
            "deployments",
            "configmaps",
            "namespaces",
        ] {
            assert!(plurals.contains(&watched), "{watched} in {plurals:?}");
        }
        assert!(!plurals.contains(&"events"), "{plurals:?}");
    }
}
