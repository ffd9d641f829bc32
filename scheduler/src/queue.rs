//! The scheduling queue: pending pods wait here until an attempt takes them.
//!
//! Like kube-scheduler's `PriorityQueue`, pods are popped by priority, then arrival order. A pod
//! that could not be placed waits with a per-pod backoff (1 s doubling to 10 s) and is retried
//! when it expires — or at once when the cluster changed in a way that may let it fit (a node
//! added or changed, a pod deleted): [`SchedulingQueue::move_all_to_active`], kube-scheduler's
//! `MoveAllToActiveOrBackoffQueue`.
//!
//! A cluster change that lands while a pod is being attempted — after the attempt read the
//! cache, before it reported failure — must not be lost: the pod would then wait its whole
//! backoff though it may fit now. As in kube-scheduler, every pop starts a numbered
//! scheduling cycle and every move-all records the cycle it happened in; a pod failing in
//! cycle `c` goes straight back to active if a move-all happened in cycle `c` or later.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::pod_info::{PodInfo, PodKey};

/// First retry delay after a failed attempt (kube-scheduler's `podInitialBackoffDuration`).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay (kube-scheduler's `podMaxBackoffDuration`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Delay before the next attempt after `failures` failed ones.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    INITIAL_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Active { seq: u64 },
    Waiting { seq: u64 },
    InFlight,
}

#[derive(Debug)]
struct Entry {
    pod: Arc<PodInfo>,
    failures: u32,
    state: State,
}

/// A pod handed out for an attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub pod: Arc<PodInfo>,
    /// Failed attempts before this one.
    pub failures: u32,
    /// The scheduling cycle this attempt belongs to; `failed` needs it back.
    pub cycle: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<PodKey, Entry>,
    /// (priority, earliest first, key); stale items (whose entry moved on) are skipped.
    active: BinaryHeap<(i32, Reverse<u64>, PodKey)>,
    waiting: BinaryHeap<Reverse<(Instant, u64, PodKey)>>,
    waiting_count: usize,
    next_seq: u64,
    /// Pops so far (kube-scheduler's schedulingCycle).
    scheduling_cycle: u64,
    /// The scheduling cycle of the latest move-all (kube-scheduler's moveRequestCycle);
    /// None before the first.
    move_request_cycle: Option<u64>,
}

impl Inner {
    fn activate(&mut self, key: &PodKey) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        if matches!(entry.state, State::Waiting { .. }) {
            self.waiting_count -= 1;
        }
        entry.state = State::Active { seq };
        self.active
            .push((entry.pod.priority, Reverse(seq), key.clone()));
    }

    fn promote_expired(&mut self, now: Instant) {
        while let Some(Reverse((until, seq, _))) = self.waiting.peek() {
            if *until > now {
                break;
            }
            let (seq, key) = (*seq, self.waiting.pop().map(|Reverse(w)| w.2));
            let Some(key) = key else { break };
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.state == State::Waiting { seq })
            {
                self.activate(&key);
            }
        }
    }

    fn pop_active(&mut self) -> Option<Attempt> {
        while let Some((_, Reverse(seq), key)) = self.active.pop() {
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            if entry.state == (State::Active { seq }) {
                entry.state = State::InFlight;
                self.scheduling_cycle += 1;
                return Some(Attempt {
                    pod: entry.pod.clone(),
                    failures: entry.failures,
                    cycle: self.scheduling_cycle,
                });
            }
        }
        None
    }

    fn next_wake(&self) -> Option<Instant> {
        self.waiting.peek().map(|Reverse((until, _, _))| *until)
    }
}

/// Pending pods, shared by the watchers (producers) and the scheduling loop (consumer).
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl SchedulingQueue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a pending pod, or updates it. An updated pod that was waiting is retried at once
    /// (its spec may have changed so that it fits); one being attempted keeps its attempt.
    pub fn add_or_update(&self, pod: Arc<PodInfo>) {
        let mut inner = self.lock();
        let key = pod.key.clone();
        match inner.entries.get_mut(&key) {
            Some(entry) => {
                let changed = entry.pod != pod;
                entry.pod = pod;
                if changed && matches!(entry.state, State::Waiting { .. }) {
                    inner.activate(&key);
                    self.notify.notify_one();
                }
            }
            None => {
                inner.entries.insert(
                    key.clone(),
                    Entry {
                        pod,
                        failures: 0,
                        state: State::InFlight,
                    },
                );
                inner.activate(&key);
                self.notify.notify_one();
            }
        }
    }

    /// Forgets a pod (deleted, or bound by someone).
    pub fn remove(&self, key: &PodKey) {
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.remove(key) {
            if matches!(entry.state, State::Waiting { .. }) {
                inner.waiting_count -= 1;
            }
        }
    }

    /// Waits for the next pod to attempt.
    pub async fn pop(&self) -> Attempt {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wake = {
                let mut inner = self.lock();
                inner.promote_expired(Instant::now());
                if let Some(found) = inner.pop_active() {
                    return found;
                }
                inner.next_wake()
            };
            match wake {
                Some(at) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// The attempt placed the pod: it leaves the queue.
    pub fn done(&self, key: &PodKey) {
        self.remove(key);
    }

    /// The attempt of scheduling cycle `cycle` failed (no node fits, or the binding
    /// failed): wait with backoff — unless the cluster changed since the attempt began
    /// (kube-scheduler's AddUnschedulableIfNotPresent), then retry at once.
    pub fn failed(&self, key: &PodKey, cycle: u64) {
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let moved_since = inner.move_request_cycle.is_some_and(|m| m >= cycle);
        let Some(entry) = inner.entries.get_mut(key) else {
            return;
        };
        entry.failures += 1;
        if moved_since {
            inner.activate(key);
            self.notify.notify_one();
            return;
        }
        let until = Instant::now() + backoff(entry.failures);
        let was_waiting = matches!(entry.state, State::Waiting { .. });
        entry.state = State::Waiting { seq };
        if !was_waiting {
            inner.waiting_count += 1;
        }
        inner.waiting.push(Reverse((until, seq, key.clone())));
        self.notify.notify_one();
    }

    /// The cluster changed so waiting pods may fit now: retry them all at once.
    pub fn move_all_to_active(&self) {
        let mut inner = self.lock();
        // Recorded even with nothing waiting: pods being attempted now see it on failure.
        inner.move_request_cycle = Some(inner.scheduling_cycle);
        if inner.waiting_count == 0 {
            return;
        }
        let waiting: Vec<PodKey> = inner
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Waiting { .. }))
            .map(|(k, _)| k.clone())
            .collect();
        for key in waiting {
            inner.activate(&key);
        }
        inner.waiting.clear();
        self.notify.notify_one();
    }

    /// Pods in the queue in any state.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_info::fixture::pod;

    fn arc(p: PodInfo) -> Arc<PodInfo> {
        Arc::new(p)
    }

    async fn pop_now(q: &SchedulingQueue) -> Attempt {
        tokio::time::timeout(Duration::from_secs(60), q.pop())
            .await
            .expect("a pod should have been ready to pop")
    }

    async fn pop_name(q: &SchedulingQueue) -> String {
        pop_now(q).await.pod.key.name.clone()
    }

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        let secs: Vec<u64> = (1..=6).map(|f| backoff(f).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 10, 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn pops_by_priority_then_arrival() {
        let q = SchedulingQueue::default();
        q.add_or_update(arc(pod("low1")));
        q.add_or_update(arc(pod("low2")));
        let mut high = pod("high");
        high.priority = 10;
        q.add_or_update(arc(high));
        assert_eq!(pop_name(&q).await, "high");
        assert_eq!(pop_name(&q).await, "low1");
        assert_eq!(pop_name(&q).await, "low2");
    }

    #[tokio::test(start_paused = true)]
    async fn failed_pod_waits_for_its_backoff() {
        let q = SchedulingQueue::default();
        q.add_or_update(arc(pod("a")));
        let mut a = q.pop().await;
        for expected in [1u64, 2, 4, 8, 10, 10] {
            q.failed(&a.pod.key, a.cycle);
            let before = Instant::now();
            a = pop_now(&q).await;
            assert_eq!(a.pod.key.name, "a");
            assert_eq!(before.elapsed().as_secs(), expected);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn cluster_change_retries_waiting_pods_at_once() {
        let q = SchedulingQueue::default();
        q.add_or_update(arc(pod("a")));
        let p = q.pop().await;
        q.failed(&p.pod.key, p.cycle);
        q.failed(&p.pod.key, p.cycle); // second failure: 2 s backoff
        let before = Instant::now();
        q.move_all_to_active();
        assert_eq!(pop_name(&q).await, "a");
        assert_eq!(before.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn removed_and_done_pods_are_not_popped() {
        let q = SchedulingQueue::default();
        q.add_or_update(arc(pod("a")));
        q.add_or_update(arc(pod("b")));
        q.remove(&pod("a").key);
        let b = q.pop().await.pod;
        assert_eq!(b.key.name, "b");
        q.done(&b.key);
        assert!(q.is_empty());
        let waited = tokio::time::timeout(Duration::from_secs(30), q.pop()).await;
        assert!(waited.is_err(), "an empty queue must not yield a pod");
    }

    #[tokio::test(start_paused = true)]
    async fn update_of_in_flight_pod_does_not_duplicate_it() {
        let q = SchedulingQueue::default();
        q.add_or_update(arc(pod("a")));
        let a = q.pop().await.pod;
        q.add_or_update(arc(pod("a").label("x", "y")));
        q.done(&a.key);
        let waited = tokio::time::timeout(Duration::from_secs(30), q.pop()).await;
        assert!(waited.is_err(), "a placed pod must not be attempted again");
    }

    /// The lost wake-up: a node or pod event handled after an attempt read the cache but
    /// before it reported failure found nothing waiting to move; the pod must not then wait
    /// out its backoff.
    #[tokio::test(start_paused = true)]
    async fn a_cluster_change_during_an_attempt_retries_the_pod_at_once() {
        let q = SchedulingQueue::default();
        q.add_or_update(arc(pod("a")));
        let a = pop_now(&q).await;
        q.move_all_to_active();
        q.failed(&a.pod.key, a.cycle);
        let before = Instant::now();
        let again = pop_now(&q).await;
        assert_eq!(again.pod.key.name, "a");
        assert_eq!(before.elapsed(), Duration::ZERO, "retried without backoff");
        assert_eq!(again.failures, 1, "the failure still counts");
        // A move-all from before this attempt began does not shorten its backoff.
        q.failed(&again.pod.key, again.cycle);
        let before = Instant::now();
        assert_eq!(pop_name(&q).await, "a");
        assert_eq!(before.elapsed(), backoff(2));
    }

    /// A binding fails asynchronously, after later pods were popped: a move-all during a
    /// later cycle still counts for the earlier attempt.
    #[tokio::test(start_paused = true)]
    async fn a_move_request_from_a_later_cycle_reactivates_an_earlier_attempt() {
        let q = SchedulingQueue::default();
        q.add_or_update(arc(pod("a")));
        q.add_or_update(arc(pod("b")));
        let a = pop_now(&q).await;
        let b = pop_now(&q).await;
        assert!(b.cycle > a.cycle);
        q.move_all_to_active();
        q.failed(&a.pod.key, a.cycle);
        let before = Instant::now();
        assert_eq!(pop_name(&q).await, "a");
        assert_eq!(before.elapsed(), Duration::ZERO);
        q.done(&b.pod.key);
    }
}
