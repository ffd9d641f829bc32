//! The in-memory index of the current state: every live key with its newest value.
//!
//! Reads are served from here rather than from sled, for two reasons. A list must be a
//! consistent snapshot at the revision it reports (a client watches from that revision
//! next); sled range scans are not snapshots, while the index is swapped batch by batch
//! under one lock together with its revision. And it is faster: no decoding and no page
//! cache misses, which is what kube-apiserver's watch cache buys upstream by serving lists
//! from memory. The index holds only committed (fsync'd) writes: the writer applies a batch
//! here after sled's flush returns, so no reader sees a write that could be lost.
//!
//! The cost is memory: the live data set is held twice (here and in sled's page cache),
//! which at minik8s' scale (tens of thousands of objects of a few KiB) is tens of MiB.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use super::{KeyValue, ListOptions, ListPage, Revision};

pub struct Index {
    state: RwLock<IndexState>,
}

struct IndexState {
    map: BTreeMap<String, Arc<KeyValue>>,
    revision: Revision,
}

/// One change of a committed batch: the key's new value, or None once deleted.
pub type Change = (String, Option<Arc<KeyValue>>);

impl Index {
    pub fn new(map: BTreeMap<String, Arc<KeyValue>>, revision: Revision) -> Self {
        Index {
            state: RwLock::new(IndexState { map, revision }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, IndexState> {
        // A panicking holder cannot leave a half-applied batch: `apply` only inserts and
        // removes map entries, each of which completes or does not happen.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn lookup(&self, key: &str) -> Option<Arc<KeyValue>> {
        self.read().map.get(key).cloned()
    }

    pub fn len(&self) -> usize {
        self.read().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one committed batch and moves the index to `revision`.
    pub fn apply(&self, changes: impl IntoIterator<Item = Change>, revision: Revision) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        for (key, value) in changes {
            match value {
                Some(kv) => {
                    state.map.insert(key, kv);
                }
                None => {
                    state.map.remove(&key);
                }
            }
        }
        state.revision = revision;
    }

    /// Reads one page of keys under a prefix, with the revision it is consistent at.
    pub fn list(&self, options: &ListOptions<'_>) -> ListPage {
        let prefix = options.prefix;
        let start = match options.start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let limit = if options.limit == 0 {
            usize::MAX
        } else {
            options.limit
        };
        // Collect the Arcs under the lock and deep-copy the values outside it, so a large
        // list holds the writer up for pointer copies only.
        let (picked, more, revision) = {
            let state = self.read();
            let mut matching = state
                .map
                .range::<str, _>((start, Bound::Unbounded))
                .take_while(|(key, _)| key.starts_with(prefix))
                .map(|(_, kv)| Arc::clone(kv));
            let picked: Vec<Arc<KeyValue>> = matching.by_ref().take(limit).collect();
            let more = matching.next().is_some();
            (picked, more, state.revision)
        };
        ListPage {
            items: picked.iter().map(|kv| KeyValue::clone(kv)).collect(),
            revision,
            more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(keys: &[&str]) -> Index {
        let map = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let kv = KeyValue {
                    key: k.to_string(),
                    value: vec![],
                    create_revision: i as u64 + 1,
                    mod_revision: i as u64 + 1,
                };
                (k.to_string(), Arc::new(kv))
            })
            .collect();
        Index::new(map, keys.len() as u64)
    }

    fn keys(page: &ListPage) -> Vec<&str> {
        page.items.iter().map(|kv| kv.key.as_str()).collect()
    }

    #[test]
    fn list_pages_through_a_prefix_only() {
        let index = index_of(&["/p/a", "/p/b", "/p/c", "/pods/x", "/q/a"]);
        let first = index.list(&ListOptions {
            prefix: "/p/",
            start_after: None,
            limit: 2,
        });
        assert_eq!(keys(&first), ["/p/a", "/p/b"]);
        assert!(first.more);
        let second = index.list(&ListOptions {
            prefix: "/p/",
            start_after: Some("/p/b"),
            limit: 2,
        });
        assert_eq!(keys(&second), ["/p/c"]);
        assert!(!second.more);
        assert_eq!(second.revision, 5);
    }

    #[test]
    fn start_after_before_the_prefix_starts_at_the_prefix() {
        let index = index_of(&["/a", "/p/a", "/p/b"]);
        let page = index.list(&ListOptions {
            prefix: "/p/",
            start_after: Some("/a"),
            limit: 0,
        });
        assert_eq!(keys(&page), ["/p/a", "/p/b"]);
        assert!(!page.more);
    }

    #[test]
    fn apply_inserts_removes_and_moves_revision() {
        let index = index_of(&["/a", "/b"]);
        index.apply([("/a".to_string(), None)], 9);
        assert!(index.lookup("/a").is_none());
        assert_eq!(index.len(), 1);
        assert_eq!(index.list(&ListOptions::default()).revision, 9);
    }
}
