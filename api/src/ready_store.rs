//! A reflector cache whose readiness any number of tasks can await at once.
//!
//! kube-runtime 5's `Store::wait_until_ready` shares one oneshot receiver among every clone
//! of a store, and a oneshot receiver keeps only the waker of the task that polled it last:
//! when two tasks wait at once, only one is woken and the other waits forever (a
//! ReplicaSet reconcile hung this way whenever several reconciles started before the shared
//! pod cache's first list finished). So exactly one task awaits kube's readiness here and
//! broadcasts it through a `tokio::sync::watch`, which wakes every waiter.

use std::hash::Hash;
use std::ops::Deref;

use kube::runtime::reflector::Store;
use kube::Resource;
use tokio::sync::watch;

/// The cache's writer was dropped before its first list completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cache stopped before its first list completed")]
pub struct CacheClosed;

/// A `Store` plus a readiness signal that wakes every waiter. Derefs to the store for reads.
#[derive(Clone)]
pub struct ReadyStore<K>
where
    K: 'static + Resource + Clone,
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    ready: watch::Receiver<bool>,
}

impl<K> ReadyStore<K>
where
    K: 'static + Resource + Clone + Send + Sync,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    /// Wraps `store`, spawning its one readiness waiter on the current tokio runtime; wrap
    /// each store once and clone the wrapper.
    pub fn new(store: Store<K>) -> Self {
        let (tx, ready) = watch::channel(false);
        let waiter = store.clone();
        tokio::spawn(async move {
            // Dropping `tx` without sending (writer dropped) fails every waiter.
            if waiter.wait_until_ready().await.is_ok() {
                let _ = tx.send(true);
            }
        });
        ReadyStore { store, ready }
    }

    /// Wraps `store` whose readiness the caller signals itself (`true` once the first list is
    /// in the store, as the reflector stream yields `InitDone`), for a store kube awaits
    /// elsewhere: a controller built on it awaits its readiness, and a second waiter on the
    /// store would hang one of the two.
    pub fn signalled(store: Store<K>) -> (Self, watch::Sender<bool>) {
        let (tx, ready) = watch::channel(false);
        (ReadyStore { store, ready }, tx)
    }

    /// Waits until the cache has completed its first list; safe from any number of tasks.
    /// This shadows the store's own `wait_until_ready`, which is not.
    pub async fn wait_until_ready(&self) -> Result<(), CacheClosed> {
        let mut ready = self.ready.clone();
        ready
            .wait_for(|r| *r)
            .await
            .map(|_| ())
            .map_err(|_| CacheClosed)
    }
}

impl<K> Deref for ReadyStore<K>
where
    K: 'static + Resource + Clone,
    K::DynamicType: Eq + Hash + Clone,
{
    type Target = Store<K>;

    fn deref(&self) -> &Store<K> {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::{reflector, watcher};
    use std::time::Duration;

    /// Regression: of two tasks waiting on one store, kube woke only the later one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_concurrent_waiter_is_woken() {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let ready = ReadyStore::new(store);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let r = ready.clone();
                tokio::spawn(async move { r.wait_until_ready().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        for (i, w) in waiters.into_iter().enumerate() {
            let r = tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .unwrap_or_else(|_| panic!("waiter {i} was never woken"));
            assert_eq!(r.unwrap(), Ok(()));
        }
    }

    #[tokio::test]
    async fn a_dropped_writer_fails_waiters() {
        let (store, writer) = reflector::store::<ConfigMap>();
        let ready = ReadyStore::new(store);
        drop(writer);
        let r = tokio::time::timeout(Duration::from_secs(5), ready.wait_until_ready()).await;
        assert_eq!(
            r.expect("a waiter hung on a dropped writer"),
            Err(CacheClosed)
        );
    }

    /// A signalled store leaves the store's own readiness to its one other waiter (a kube
    /// controller built on it): both are woken.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_signalled_store_leaves_the_store_to_its_controller() {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let (ready, signal) = ReadyStore::signalled(store.clone());
        let ours = {
            let r = ready.clone();
            tokio::spawn(async move { r.wait_until_ready().await })
        };
        let controllers = tokio::spawn(async move { store.wait_until_ready().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        signal.send_replace(true);
        let timeout = Duration::from_secs(5);
        let r = tokio::time::timeout(timeout, ours)
            .await
            .expect("ours woken");
        assert_eq!(r.unwrap(), Ok(()));
        let r = tokio::time::timeout(timeout, controllers)
            .await
            .expect("the controller's woken");
        assert!(r.unwrap().is_ok());
        drop(signal);
        assert_eq!(ready.wait_until_ready().await, Ok(()), "stays ready");
    }
}
