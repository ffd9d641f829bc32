//! Create/delete expectations per controller key, after Kubernetes' UIDTrackingControllerExpectations:
//! a controller records the names of the pods it just created or deleted and does not act on
//! the key again until its cache has caught up (every created pod seen, every deleted pod gone
//! or terminating), so a slow watch never makes it create or delete twice. Expectations
//! expire after a timeout (Kubernetes: 5 minutes) so a lost event cannot wedge a key forever.
//!
//! A creation is confirmed by the pod's watch event (`observe_creation`, as Kubernetes'
//! addPod handler lowers expectations), not only by finding the pod in the cache at the next
//! reconcile: a pod created and deleted before that reconcile is never in the cache then,
//! and would hold its key until the timeout. Its event can even arrive before the create
//! call returns its generated name, so names observed while creates are in flight are kept
//! (`early`) and count as confirmed when the name is recorded.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long unmet expectations block a key (Kubernetes' ExpectationsTimeout).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Default, Clone)]
struct Pending {
    adds: HashSet<String>,
    deletes: HashSet<String>,
    since: Option<Instant>,
    /// Create batches issued whose names are not recorded yet.
    creating: usize,
    /// Names observed while `creating > 0` that were not expected (yet).
    early: HashSet<String>,
}

/// What the cache says about a pod name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Absent,
    Present,
    Terminating,
}

#[derive(Debug, Default)]
pub struct Expectations {
    keys: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    /// Before issuing creates for `key`: pod events seen from now on can confirm them.
    pub fn begin_creations(&self, key: &str) {
        let mut keys = self.keys.lock().expect("expectations lock");
        keys.entry(key.to_string()).or_default().creating += 1;
    }

    /// After a batch begun with `begin_creations`: the names of the pods it created.
    pub fn expect_creations(&self, key: &str, names: impl IntoIterator<Item = String>) {
        let mut keys = self.keys.lock().expect("expectations lock");
        let p = keys.entry(key.to_string()).or_default();
        for name in names {
            if !p.early.remove(&name) {
                p.adds.insert(name);
            }
        }
        p.creating = p.creating.saturating_sub(1);
        if p.creating == 0 {
            p.early.clear();
        }
        p.since.get_or_insert_with(Instant::now);
    }

    /// A watch event for pod `name`, controlled by `key`: the cache has seen it.
    pub fn observe_creation(&self, key: &str, name: &str) {
        let mut keys = self.keys.lock().expect("expectations lock");
        let Some(p) = keys.get_mut(key) else { return };
        if !p.adds.remove(name) && p.creating > 0 {
            p.early.insert(name.to_string());
        }
    }

    pub fn expect_deletions(&self, key: &str, names: impl IntoIterator<Item = String>) {
        let mut keys = self.keys.lock().expect("expectations lock");
        let p = keys.entry(key.to_string()).or_default();
        p.deletes.extend(names);
        p.since.get_or_insert_with(Instant::now);
    }

    /// Drops what the cache has confirmed and tells whether the key may act again.
    pub fn satisfied(&self, key: &str, seen: impl Fn(&str) -> Seen) -> bool {
        let mut keys = self.keys.lock().expect("expectations lock");
        let Some(p) = keys.get_mut(key) else {
            return true;
        };
        p.adds.retain(|n| seen(n) == Seen::Absent);
        p.deletes.retain(|n| seen(n) == Seen::Present);
        let expired = p.since.is_some_and(|s| s.elapsed() > EXPECTATIONS_TIMEOUT);
        if p.adds.is_empty() && p.deletes.is_empty() && p.creating == 0 || expired {
            keys.remove(key);
            return true;
        }
        false
    }

    /// Names whose deletion is still in flight: status must not count them any more.
    pub fn pending_deletes(&self, key: &str) -> HashSet<String> {
        let keys = self.keys.lock().expect("expectations lock");
        keys.get(key).map(|p| p.deletes.clone()).unwrap_or_default()
    }

    /// Forgets a key (its owner is gone).
    pub fn forget(&self, key: &str) {
        self.keys.lock().expect("expectations lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_until_cache_confirms() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/a", |_| Seen::Absent));
        e.begin_creations("ns/a");
        e.expect_creations("ns/a", ["p1".to_string(), "p2".to_string()]);
        assert!(!e.satisfied("ns/a", |n| if n == "p1" {
            Seen::Present
        } else {
            Seen::Absent
        }));
        assert!(e.satisfied("ns/a", |_| Seen::Present));
        e.expect_deletions("ns/a", ["p1".to_string()]);
        assert_eq!(e.pending_deletes("ns/a").len(), 1);
        assert!(!e.satisfied("ns/a", |_| Seen::Present));
        assert!(e.satisfied("ns/a", |_| Seen::Terminating));
    }

    /// Regression: a created pod deleted before the next reconcile looked at the cache was
    /// never confirmed, and the ReplicaSet stopped creating pods for five minutes.
    #[test]
    fn a_created_pod_deleted_before_the_next_reconcile_is_confirmed_by_its_event() {
        let e = Expectations::default();
        e.begin_creations("ns/a");
        // p1's event arrives before the create call returns its name; p2's after.
        e.observe_creation("ns/a", "p1");
        e.expect_creations("ns/a", ["p1".to_string(), "p2".to_string()]);
        assert!(!e.satisfied("ns/a", |_| Seen::Absent), "p2 not seen yet");
        e.observe_creation("ns/a", "p2");
        // Both are gone from the cache by now (deleted): still confirmed.
        assert!(e.satisfied("ns/a", |_| Seen::Absent));
    }

    #[test]
    fn early_names_are_forgotten_once_no_create_is_in_flight() {
        let e = Expectations::default();
        e.begin_creations("ns/a");
        e.observe_creation("ns/a", "other");
        e.expect_creations("ns/a", []);
        // A later create that happens to reuse the name is not taken as already seen.
        e.begin_creations("ns/a");
        e.expect_creations("ns/a", ["other".to_string()]);
        assert!(!e.satisfied("ns/a", |_| Seen::Absent));
    }
}
