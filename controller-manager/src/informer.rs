//! One watch of all pods shared by every controller that reads them (Kubernetes'
//! SharedInformerFactory): one cache instead of one per controller, and each event fanned
//! out to the subscribers' queues. With 10,000 pods, a cache per controller held the pods
//! three times and parsed every pod event three times.
//!
//! kube's own shared reflector streams (`store_shared`/`subscribe`) carry no deletions, and
//! the ReplicaSet and Endpoints controllers must see a pod's deletion, so the fan-out is
//! done here on the reflector's touched objects (applies and deletes).

use futures::channel::mpsc;
use std::fmt::Debug;

use futures::{Future, Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use minik8s_api::ready_store::ReadyStore;
use serde::de::DeserializeOwned;

use crate::cached_pod::CachedPod;

/// A pod event as a controller's `watches_stream` takes it.
pub type PodEvents = mpsc::UnboundedReceiver<Result<CachedPod, watcher::Error>>;

/// The shared pod cache, before and while it runs. Pods are cached (and fanned out) in their
/// cut-down form, [`CachedPod`]: the full objects were most of the controller-manager's memory.
pub struct SharedPods {
    store: ReadyStore<CachedPod>,
    writer: reflector::store::Writer<CachedPod>,
    subscribers: Vec<mpsc::UnboundedSender<Result<CachedPod, watcher::Error>>>,
}

impl Default for SharedPods {
    /// Must run inside the tokio runtime: the cache's readiness waiter is spawned here.
    fn default() -> Self {
        let (store, writer) = reflector::store();
        SharedPods {
            store: ReadyStore::new(store),
            writer,
            subscribers: Vec::new(),
        }
    }
}

impl SharedPods {
    /// The cache (filled once `run` is polled; `wait_until_ready` says when it is complete).
    pub fn store(&self) -> ReadyStore<CachedPod> {
        self.store.clone()
    }

    /// A stream of every pod applied or deleted from now on.
    pub fn subscribe(&mut self) -> PodEvents {
        let (tx, rx) = mpsc::unbounded();
        self.subscribers.push(tx);
        rx
    }

    /// Watches pods until the future is dropped, feeding the cache and every subscriber.
    pub fn run(self, client: Client) -> impl Future<Output = ()> + Send {
        let subscribers = self.subscribers;
        watcher(Api::<Pod>::all(client), watcher::Config::default())
            .default_backoff()
            .map_ok(cut_down)
            .reflect(self.writer)
            .touched_objects()
            .for_each(move |pod| {
                if let Ok(pod) = pod {
                    if let Some((last, rest)) = subscribers.split_last() {
                        for s in rest {
                            let _ = s.unbounded_send(Ok(pod.clone()));
                        }
                        let _ = last.unbounded_send(Ok(pod));
                    }
                }
                futures::future::ready(())
            })
    }
}

/// A watch of every `K` whose objects come without managedFields: for the ReplicaSet and
/// Deployment caches, where they were the bulk of each cached object (a tree of JSON values per
/// field manager) and no controller reads them. Controllers only patch objects, never write a
/// cached one back, so nothing is lost by dropping them.
pub fn watch_without_managed_fields<K>(
    api: Api<K>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher(api, watcher::Config::default()).modify(|o| o.meta_mut().managed_fields = None)
}

/// Each pod of a watch event in its cached form, as soon as it is decoded.
fn cut_down(event: watcher::Event<Pod>) -> watcher::Event<CachedPod> {
    use watcher::Event;
    match event {
        Event::Apply(p) => Event::Apply(p.into()),
        Event::Delete(p) => Event::Delete(p.into()),
        Event::Init => Event::Init,
        Event::InitApply(p) => Event::InitApply(p.into()),
        Event::InitDone => Event::InitDone,
    }
}
