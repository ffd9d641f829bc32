//! The watch cache: recent events in memory plus a broadcast to live watchers.
//!
//! Modelled on Kubernetes' cacher (`staging/src/k8s.io/apiserver/pkg/storage/cacher`): a
//! bounded ring of the newest events lets a watch resume from a recent resourceVersion
//! without touching the disk; a watch from before the ring answers Compacted (410 Gone
//! upstream) so the client relists. After a restart the ring starts empty at the current
//! revision, exactly as kube-apiserver's cache does.
//!
//! Replay and subscription happen under the same lock the writer holds while it appends a
//! batch and broadcasts it, so a new watcher sees every event exactly once: older ones from
//! the ring copy, newer ones from its receiver.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use futures::stream;
use tokio::sync::broadcast;

use super::{Event, EventStream, Revision, StorageError};

/// What one group commit published, in revision order.
pub type EventBatch = Arc<[Arc<Event>]>;

pub struct WatchCache {
    state: Mutex<CacheState>,
    capacity: usize,
}

struct CacheState {
    ring: VecDeque<Arc<Event>>,
    /// Every event with a revision greater than this is in the ring (or not yet written):
    /// the lowest `after` a watch may start from.
    oldest: Revision,
    /// The newest revision published.
    latest: Revision,
    live: broadcast::Sender<EventBatch>,
}

impl WatchCache {
    /// A cache keeping `capacity` events, starting empty at `revision`. A watcher more than
    /// `lag_batches` group commits behind is dropped with WatchLagged.
    pub fn new(revision: Revision, capacity: usize, lag_batches: usize) -> Self {
        let (live, _) = broadcast::channel(lag_batches.max(1));
        WatchCache {
            state: Mutex::new(CacheState {
                ring: VecDeque::new(),
                oldest: revision,
                latest: revision,
                live,
            }),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // The state stays consistent even if a holder panicked: every mutation is a
        // push/pop that completes before any code that could panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one committed batch and sends it to live watchers.
    pub fn publish(&self, events: Vec<Arc<Event>>) {
        let Some(last) = events.last() else { return };
        let mut state = self.lock();
        state.latest = last.revision();
        state.ring.extend(events.iter().cloned());
        while state.ring.len() > self.capacity {
            if let Some(dropped) = state.ring.pop_front() {
                state.oldest = dropped.revision();
            }
        }
        // No receivers is not an error: nobody is watching.
        let _ = state.live.send(events.into());
    }

    /// Drops retained events at or below `revision` (clamped to the newest published).
    pub fn compact(&self, revision: Revision) {
        let mut state = self.lock();
        let revision = revision.min(state.latest);
        while state.ring.front().is_some_and(|e| e.revision() <= revision) {
            state.ring.pop_front();
        }
        state.oldest = state.oldest.max(revision);
    }

    /// The lowest revision a watch may start after.
    pub fn oldest(&self) -> Revision {
        self.lock().oldest
    }

    /// Starts a watch of keys under `prefix` for events after `after`.
    pub fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream, StorageError> {
        let (replay, live) = {
            let state = self.lock();
            if after < state.oldest {
                return Err(StorageError::Compacted {
                    requested: after,
                    oldest: state.oldest,
                });
            }
            let start = state.ring.partition_point(|e| e.revision() <= after);
            let replay: Vec<Arc<Event>> = state
                .ring
                .range(start..)
                .filter(|e| matches_prefix(e, prefix))
                .cloned()
                .collect();
            (replay, state.live.subscribe())
        };
        let watcher = Watcher {
            prefix: prefix.to_owned(),
            after,
            pending: replay.into(),
            live,
            ended: false,
        };
        Ok(Box::pin(stream::unfold(watcher, |mut w| async move {
            let item = w.next().await?;
            Some((item, w))
        })))
    }
}

fn event_key(event: &Event) -> &str {
    match event {
        Event::Put { kv, .. } => &kv.key,
        Event::Delete { prev, .. } => &prev.key,
    }
}

fn matches_prefix(event: &Event, prefix: &str) -> bool {
    event_key(event).starts_with(prefix)
}

/// One watcher's position: events already taken from the ring or a received batch, then
/// the live receiver.
struct Watcher {
    prefix: String,
    after: Revision,
    pending: VecDeque<Arc<Event>>,
    live: broadcast::Receiver<EventBatch>,
    ended: bool,
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<Event, StorageError>> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(Event::clone(&event)));
            }
            match self.live.recv().await {
                Ok(batch) => {
                    // `after` may be ahead of what was published when the watch started
                    // (a list answered at a newer revision, or a future revision as
                    // Kubernetes allows): skip what the caller has already seen.
                    let after = self.after;
                    self.pending.extend(
                        batch
                            .iter()
                            .filter(|e| e.revision() > after && matches_prefix(e, &self.prefix))
                            .cloned(),
                    );
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.ended = true;
                    return Some(Err(StorageError::WatchLagged));
                }
                // The store was dropped: the watch ends like a closed connection.
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::KeyValue;
    use futures::StreamExt;

    fn put(key: &str, revision: Revision) -> Arc<Event> {
        Arc::new(Event::Put {
            kv: KeyValue {
                key: key.into(),
                value: vec![],
                create_revision: revision,
                mod_revision: revision,
            },
            prev: None,
        })
    }

    async fn next_rev(stream: &mut EventStream) -> Revision {
        tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .expect("watch produced no event within 5s: replay or live delivery is stuck")
            .expect("watch ended early")
            .expect("watch failed")
            .revision()
    }

    #[tokio::test]
    async fn replay_then_live_without_gap_or_duplicate() {
        let cache = WatchCache::new(0, 100, 16);
        cache.publish(vec![put("/a/1", 1), put("/b/1", 2), put("/a/2", 3)]);
        let mut w = cache.watch("/a/", 1).unwrap();
        cache.publish(vec![put("/a/3", 4)]);
        assert_eq!(next_rev(&mut w).await, 3);
        assert_eq!(next_rev(&mut w).await, 4);
    }

    #[tokio::test]
    async fn ring_overflow_moves_oldest_and_compacts_old_watches() {
        let cache = WatchCache::new(10, 2, 16);
        cache.publish(vec![put("/a", 11), put("/a", 12), put("/a", 13)]);
        assert_eq!(cache.oldest(), 11);
        assert!(matches!(
            cache.watch("/", 10),
            Err(StorageError::Compacted {
                requested: 10,
                oldest: 11
            })
        ));
        let mut w = cache.watch("/", 11).unwrap();
        assert_eq!(next_rev(&mut w).await, 12);
    }

    #[tokio::test]
    async fn lagging_watcher_gets_watch_lagged_and_ends() {
        let cache = WatchCache::new(0, 100, 2);
        let mut w = cache.watch("/", 0).unwrap();
        for rev in 1..=5 {
            cache.publish(vec![put("/a", rev)]);
        }
        let first = w.next().await.expect("an item");
        assert!(matches!(first, Err(StorageError::WatchLagged)));
        assert!(w.next().await.is_none());
    }

    #[tokio::test]
    async fn compact_beyond_latest_is_clamped() {
        let cache = WatchCache::new(0, 100, 16);
        cache.publish(vec![put("/a", 1), put("/a", 2)]);
        cache.compact(50);
        assert_eq!(cache.oldest(), 2);
        assert!(cache.watch("/", 2).is_ok());
        assert!(cache.watch("/", 1).is_err());
    }
}
