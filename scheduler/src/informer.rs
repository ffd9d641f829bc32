//! Watchers that keep the cache and the queue current (kube-scheduler's informer event
//! handlers): Node events update the cache; Pod events route bound pods to the cache and
//! pending pods of ours to the queue. Changes that may let waiting pods fit — a node added or
//! changed in what scheduling reads, a placed pod deleted or finished — retry them at once.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::node_info::NodeFacts;
use crate::pod_info::{PodInfo, PodKey};
use crate::scheduler::Shared;

/// Consumes a watch stream until it ends, feeding `apply` and marking `synced` after the
/// first complete list.
async fn consume<K, S>(stream: S, synced: watch::Sender<bool>, mut on_event: impl FnMut(Event<K>))
where
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
{
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                let done = matches!(event, Event::InitDone);
                on_event(event);
                if done {
                    synced.send_replace(true);
                }
            }
            // The stream retries with backoff (relisting on 410 Gone) by itself.
            Err(e) => warn!(error = %e, "watch failed; retrying"),
        }
    }
}

/// Watches Nodes into the cache until the stream ends (it retries forever).
pub async fn watch_nodes(shared: Arc<Shared>, synced: watch::Sender<bool>) {
    let api: Api<Node> = Api::all(shared.client.clone());
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut seen: Option<HashSet<String>> = None;
    consume(stream, synced, |event| match event {
        Event::Init => seen = Some(HashSet::new()),
        Event::InitApply(node) => {
            let name = node.metadata.name.clone().unwrap_or_default();
            shared
                .cache()
                .upsert_node(&name, NodeFacts::from_node(&node));
            seen.get_or_insert_with(HashSet::new).insert(name);
        }
        Event::InitDone => {
            if let Some(seen) = seen.take() {
                shared.cache().retain_nodes(&seen);
            }
            shared.queue.move_all_to_active();
        }
        Event::Apply(node) => {
            let name = node.metadata.name.clone().unwrap_or_default();
            let changed = shared
                .cache()
                .upsert_node(&name, NodeFacts::from_node(&node));
            if changed {
                debug!(node = %name, "node changed; retrying waiting pods");
                shared.queue.move_all_to_active();
            }
        }
        Event::Delete(node) => {
            shared
                .cache()
                .remove_node(node.metadata.name.as_deref().unwrap_or_default());
        }
    })
    .await;
}

/// Watches Pods: bound ones into the cache, pending ones of ours into the queue.
pub async fn watch_pods(shared: Arc<Shared>, synced: watch::Sender<bool>) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut seen: Option<HashSet<PodKey>> = None;
    consume(stream, synced, |event| match event {
        Event::Init => seen = Some(HashSet::new()),
        Event::InitApply(pod) => {
            let info = PodInfo::from_pod(&pod);
            seen.get_or_insert_with(HashSet::new)
                .insert(info.key.clone());
            on_pod(&shared, info);
        }
        Event::InitDone => {
            if let Some(seen) = seen.take() {
                shared.cache().retain_bound_pods(&seen);
            }
        }
        Event::Apply(pod) => on_pod(&shared, PodInfo::from_pod(&pod)),
        Event::Delete(pod) => {
            let key = PodInfo::from_pod(&pod).key;
            shared.queue.remove(&key);
            if shared.cache().remove_pod(&key) {
                shared.queue.move_all_to_active();
            }
        }
    })
    .await;
}

fn on_pod(shared: &Shared, info: PodInfo) {
    let key = info.key.clone();
    if info.node_name.is_some() {
        shared.queue.remove(&key);
        // Finished pods hold nothing (kube-scheduler drops terminal pods from its cache).
        if info.terminal {
            if shared.cache().remove_pod(&key) {
                shared.queue.move_all_to_active();
            }
        } else {
            shared.cache().add_bound_pod(Arc::new(info));
        }
        return;
    }
    let ours = shared.is_ours(&info.scheduler_name);
    if !ours || info.terminal || info.deleting {
        shared.queue.remove(&key);
        return;
    }
    // An assumed pod whose binding is in flight is not scheduled again.
    if !shared.cache().is_placed(&key) {
        shared.queue.add_or_update(Arc::new(info));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Config;
    use crate::plugins::Strategy;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// A Shared whose client is never used: routing pod events makes no API calls.
    fn shared() -> Shared {
        let url = "http://127.0.0.1:1".parse().expect("url");
        let client = kube::Client::try_from(kube::Config::new(url)).expect("client");
        let config = Config {
            kubeconfig: "/unused".into(),
            scheduler_name: "mine".into(),
            leader: None,
            strategy: Strategy::LeastAllocated,
            percentage_of_nodes_to_score: 0,
            parallel_bindings: 1,
            identity: "test".into(),
        };
        Shared::new(client, config, Arc::default())
    }

    fn pod(
        name: &str,
        scheduler: Option<&str>,
        node: Option<&str>,
        phase: Option<&str>,
    ) -> PodInfo {
        PodInfo::from_pod(&Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                scheduler_name: scheduler.map(String::from),
                node_name: node.map(String::from),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: phase.map(String::from),
                ..Default::default()
            }),
        })
    }

    #[tokio::test]
    async fn pod_events_are_routed_by_scheduler_name_node_and_phase() {
        let s = shared();
        on_pod(&s, pod("default-named", None, None, Some("Pending")));
        on_pod(&s, pod("ours", Some("mine"), None, None));
        on_pod(&s, pod("theirs", Some("other"), None, None));
        on_pod(&s, pod("done", None, None, Some("Succeeded")));
        assert_eq!(s.queue.len(), 2, "only our pending pods are queued");
        on_pod(&s, pod("ours", Some("mine"), Some("n1"), None));
        assert_eq!(s.queue.len(), 1, "a bound pod leaves the queue");
        assert!(s.cache().is_placed(&pod("ours", None, None, None).key));
        on_pod(&s, pod("ours", Some("mine"), Some("n1"), Some("Failed")));
        assert!(
            !s.cache().is_placed(&pod("ours", None, None, None).key),
            "finished pods hold nothing"
        );
    }

    #[tokio::test]
    async fn assumed_pods_are_not_queued_again() {
        let s = shared();
        let p = pod("p", None, None, None);
        s.cache().assume(Arc::new(p.clone()), "n1");
        on_pod(&s, p);
        assert!(s.queue.is_empty());
    }
}
