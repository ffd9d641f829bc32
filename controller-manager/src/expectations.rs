//! Create/delete expectations per controller key, after Kubernetes' UIDTrackingControllerExpectations:
//! a controller records the names of the pods it just created or deleted and does not act on
//! the key again until its cache has caught up (every created pod seen, every deleted pod gone
//! or terminating), so a slow watch never makes it create or delete twice. Expectations
//! expire after a timeout (Kubernetes: 5 minutes) so a lost event cannot wedge a key forever.

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
    pub fn expect_creations(&self, key: &str, names: impl IntoIterator<Item = String>) {
        let mut keys = self.keys.lock().expect("expectations lock");
        let p = keys.entry(key.to_string()).or_default();
        p.adds.extend(names);
        p.since.get_or_insert_with(Instant::now);
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
        if p.adds.is_empty() && p.deletes.is_empty() || expired {
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
}
