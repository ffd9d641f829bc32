//! One watch of all pods shared by every controller that reads them (Kubernetes'
//! SharedInformerFactory): one cache instead of one per controller, and each event fanned
//! out to the subscribers' queues. With 10,000 pods, a cache per controller held the pods
//! three times and parsed every pod event three times.
//!
//! kube's own shared reflector streams (`store_shared`/`subscribe`) carry no deletions, and
//! the ReplicaSet and Endpoints controllers must see a pod's deletion, so the fan-out is
//! done here on the reflector's touched objects (applies and deletes).

use futures::channel::mpsc;
use futures::{Future, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use minik8s_api::ready_store::ReadyStore;

/// A pod event as a controller's `watches_stream` takes it.
pub type PodEvents = mpsc::UnboundedReceiver<Result<Pod, watcher::Error>>;

/// The shared pod cache, before and while it runs.
pub struct SharedPods {
    store: ReadyStore<Pod>,
    writer: reflector::store::Writer<Pod>,
    subscribers: Vec<mpsc::UnboundedSender<Result<Pod, watcher::Error>>>,
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
    pub fn store(&self) -> ReadyStore<Pod> {
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
            // managedFields are the bulk of a stored pod and no controller reads them.
            .modify(|pod| pod.managed_fields_mut().clear())
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
