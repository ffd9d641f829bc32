//! One watch per kind shared by every controller that reads it (Kubernetes'
//! SharedInformerFactory): one cache instead of one per controller, and each event fanned out
//! to the subscribers' queues. Pods (ReplicaSet, Endpoints and node lifecycle controllers) and
//! ReplicaSets (ReplicaSet and Deployment controllers) are shared: with 10,000 pods, a cache
//! per controller held the pods three times and parsed every pod event three times.
//!
//! kube's own shared reflector streams (`store_shared`/`subscribe`) carry no deletions, and
//! the ReplicaSet and Endpoints controllers must see a pod's deletion, so the fan-out is
//! done here on the reflector's touched objects (applies and deletes).
//!
//! What is cached is cut down as each object arrives: pods to [`CachedPod`], and ReplicaSets
//! and Deployments without managedFields. Controllers only patch objects, never write a cached
//! one back, so nothing is lost by dropping what they do not read.

use std::fmt::Debug;
use std::hash::Hash;

use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use minik8s_api::ready_store::ReadyStore;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::cached_pod::CachedPod;

/// The events of a shared watch, as a controller's `watches_stream` or `for_stream` takes them.
pub type Subscription<K> = mpsc::UnboundedReceiver<Result<K, watcher::Error>>;
/// A pod event as the controllers take it.
pub type PodEvents = Subscription<CachedPod>;

/// A shared cache of `K`, before and while it runs.
pub struct Shared<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store: ReadyStore<K>,
    writer: reflector::store::Writer<K>,
    /// Readiness is signalled from the stream rather than awaited on the store: a controller
    /// built on the shared store (the ReplicaSet controller's) awaits the store itself.
    ready: watch::Sender<bool>,
    subscribers: Vec<mpsc::UnboundedSender<Result<K, watcher::Error>>>,
    used: bool,
}

impl<K> Default for Shared<K>
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    fn default() -> Self {
        let (store, writer) = reflector::store();
        let (store, ready) = ReadyStore::signalled(store);
        Shared {
            store,
            writer,
            ready,
            subscribers: Vec::new(),
            used: false,
        }
    }
}

impl<K> Shared<K>
where
    K: Resource + Clone + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default + Send + Sync,
{
    /// The cache (filled once `run` is polled; `wait_until_ready` says when it is complete).
    pub fn store(&mut self) -> ReadyStore<K> {
        self.used = true;
        self.store.clone()
    }

    /// A stream of every object applied or deleted from now on.
    pub fn subscribe(&mut self) -> Subscription<K> {
        let (tx, rx) = mpsc::unbounded();
        self.subscribers.push(tx);
        self.used = true;
        rx
    }

    /// Feeds the cache and every subscriber from `events` until the future is dropped; when
    /// no controller took the cache or subscribed, watches nothing and never completes.
    pub fn run<S>(self, events: S) -> BoxFuture<'static, ()>
    where
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    {
        if !self.used {
            return futures::future::pending().boxed();
        }
        let (subscribers, ready) = (self.subscribers, self.ready);
        events
            .reflect(self.writer)
            .inspect(move |event| {
                if let Ok(watcher::Event::InitDone) = event {
                    ready.send_replace(true);
                }
            })
            .touched_objects()
            .for_each(move |obj| {
                if let Ok(obj) = obj {
                    if let Some((last, rest)) = subscribers.split_last() {
                        for s in rest {
                            let _ = s.unbounded_send(Ok(obj.clone()));
                        }
                        let _ = last.unbounded_send(Ok(obj));
                    }
                }
                futures::future::ready(())
            })
            .boxed()
    }
}

/// Every pod, in its cached form.
pub fn pod_events(
    client: Client,
) -> impl Stream<Item = Result<watcher::Event<CachedPod>, watcher::Error>> + Send {
    watcher(Api::<Pod>::all(client), watcher::Config::default())
        .default_backoff()
        .map_ok(cut_down)
}

/// Every ReplicaSet, without managedFields.
pub fn replica_set_events(
    client: Client,
) -> impl Stream<Item = Result<watcher::Event<ReplicaSet>, watcher::Error>> + Send {
    watch_without_managed_fields(Api::<ReplicaSet>::all(client)).default_backoff()
}

/// A watch of every `K` whose objects come without managedFields: the bulk of a cached
/// ReplicaSet's or Deployment's metadata (a tree of JSON values per field manager), and no
/// controller reads them.
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
