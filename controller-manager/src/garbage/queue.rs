//! The collector's keyed work queue (client-go's workqueue, as Kubernetes' garbage
//! collector uses it): a key waiting is queued once however often it is added; a key being
//! processed is never handed to a second worker, and one added meanwhile runs again after;
//! a failing key is retried with exponential backoff.
//!
//! kube's `Controller` queue is typed by one kind; the collector's keys are the uids of
//! objects of every kind, so it has its own.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// First retry of a failed key; doubled per consecutive failure.
const RETRY_BASE: Duration = Duration::from_millis(100);
/// Longest wait between retries of a failing key.
const RETRY_MAX: Duration = Duration::from_secs(30);

struct State<K> {
    order: VecDeque<K>,
    queued: HashSet<K>,
    running: HashSet<K>,
    /// Added while running: queued again when done.
    again: HashSet<K>,
    failures: HashMap<K, u32>,
}

pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    ready: Notify,
    /// Stops the timers of delayed adds.
    shutdown: CancellationToken,
}

impl<K: Eq + Hash + Clone + Send + 'static> WorkQueue<K> {
    pub fn new(shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(WorkQueue {
            state: Mutex::new(State {
                order: VecDeque::new(),
                queued: HashSet::new(),
                running: HashSet::new(),
                again: HashSet::new(),
                failures: HashMap::new(),
            }),
            ready: Notify::new(),
            shutdown,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<K>> {
        // A panicking holder leaves plain collections behind; they stay usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, key: K) {
        let mut s = self.lock();
        if s.running.contains(&key) {
            s.again.insert(key);
            return;
        }
        if s.queued.insert(key.clone()) {
            s.order.push_back(key);
            drop(s);
            self.ready.notify_one();
        }
    }

    /// Adds `key` once `delay` has passed.
    pub fn add_after(self: &Arc<Self>, key: K, delay: Duration) {
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => queue.add(key),
                _ = queue.shutdown.cancelled() => {}
            }
        });
    }

    /// The next key to process; the caller must call `done` with it.
    pub async fn next(&self) -> K {
        loop {
            // Created before looking, so an add between the look and the wait is not lost
            // (notify_one leaves a permit when nobody waits yet).
            let notified = self.ready.notified();
            if let Some(key) = self.take() {
                return key;
            }
            notified.await;
        }
    }

    fn take(&self) -> Option<K> {
        let mut s = self.lock();
        let key = s.order.pop_front()?;
        s.queued.remove(&key);
        s.running.insert(key.clone());
        Some(key)
    }

    /// Marks `key` processed; if it was added meanwhile it is queued again.
    pub fn done(&self, key: &K) {
        let mut s = self.lock();
        s.running.remove(key);
        let again = s.again.remove(key);
        drop(s);
        if again {
            self.add(key.clone());
        }
    }

    /// Schedules a retry of a key that failed, later for each consecutive failure.
    pub fn retry(self: &Arc<Self>, key: K) {
        let failures = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_default();
            *n = n.saturating_add(1);
            *n
        };
        self.add_after(key, backoff(failures));
    }

    /// Forgets the failures of a key that succeeded.
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// Keys waiting (not those running).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().order.len()
    }
}

/// The delay before retry number `failures` (1-based).
fn backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    RETRY_BASE.saturating_mul(factor).min(RETRY_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Arc<WorkQueue<&'static str>> {
        WorkQueue::new(CancellationToken::new())
    }

    async fn next_now(q: &WorkQueue<&'static str>) -> Option<&'static str> {
        tokio::time::timeout(Duration::from_millis(50), q.next())
            .await
            .ok()
    }

    #[tokio::test]
    async fn a_key_added_twice_while_waiting_is_handed_out_once() {
        let q = queue();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(next_now(&q).await, Some("a"));
        assert_eq!(next_now(&q).await, Some("b"));
        assert_eq!(next_now(&q).await, None);
    }

    #[tokio::test]
    async fn a_running_key_is_not_handed_out_again_until_done() {
        let q = queue();
        q.add("a");
        assert_eq!(next_now(&q).await, Some("a"));
        q.add("a");
        assert_eq!(next_now(&q).await, None, "a is still running");
        q.done(&"a");
        assert_eq!(
            next_now(&q).await,
            Some("a"),
            "added while running: runs again"
        );
        q.done(&"a");
        assert_eq!(next_now(&q).await, None);
    }

    #[tokio::test]
    async fn a_waiting_worker_is_woken_by_an_add() {
        let q = queue();
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.next().await }
        });
        tokio::task::yield_now().await;
        q.add("x");
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("a worker waiting on an empty queue was never woken")
            .unwrap();
        assert_eq!(got, "x");
    }

    /// Whether `key` gets queued within `within` (paused time: exact).
    async fn queued_within(q: &WorkQueue<&'static str>, within: Duration) -> bool {
        tokio::time::sleep(within).await;
        q.len() == 1
    }

    #[tokio::test(start_paused = true)]
    async fn failing_keys_back_off_exponentially_until_forgotten() {
        assert_eq!(backoff(40), RETRY_MAX);
        let q = queue();
        for (failure, wait) in [(1, 100), (2, 200), (3, 400)] {
            q.retry("k");
            let early = Duration::from_millis(wait - 10);
            assert!(
                !queued_within(&q, early).await,
                "failure {failure} retried early"
            );
            assert!(queued_within(&q, Duration::from_millis(20)).await);
            assert_eq!(next_now(&q).await, Some("k"));
            q.done(&"k");
        }
        q.forget(&"k");
        q.retry("k");
        assert!(
            queued_within(&q, Duration::from_millis(110)).await,
            "reset to 100 ms"
        );
    }
}
