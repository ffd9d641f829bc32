//! Behaviour of the sled store through the `Storage` trait: CRUD and preconditions,
//! revisions, lists and paging, watches (replay, live, compaction, lag), restart, and
//! group commit under concurrency.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use minik8s_apiserver::storage::{
    Event, EventStream, ListOptions, Revision, SledOptions, SledStorage, Storage, StorageError,
};

/// Every test body runs under this bound; hitting it means a write never got its answer
/// (writer thread stuck) or a watch never delivered an event.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 30s: store writer or watch hung"))
}

fn store() -> (tempfile::TempDir, SledStorage) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SledStorage::open(dir.path()).expect("open store");
    (dir, store)
}

async fn next_event(stream: &mut EventStream) -> Event {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("no watch event within 10s: event lost or watch stuck")
        .expect("watch stream ended early")
        .expect("watch stream failed")
}

fn put_key(event: &Event) -> (&str, Revision) {
    match event {
        Event::Put { kv, .. } => (kv.key.as_str(), kv.mod_revision),
        Event::Delete { prev, revision } => {
            panic!("expected a put, got delete of {}@{revision}", prev.key)
        }
    }
}

#[tokio::test]
async fn crud_round_trip_with_revisions_increasing_by_one() {
    within("crud", async {
        let (_dir, s) = store();
        assert_eq!(s.current_revision(), 0);
        let a = s
            .create("/registry/pods/default/a", b"v1".to_vec())
            .await
            .unwrap();
        assert_eq!((a.create_revision, a.mod_revision), (1, 1));
        let got = s.get("/registry/pods/default/a").await.unwrap().unwrap();
        assert_eq!(got, a);
        let a2 = s.update(&a.key, b"v2".to_vec(), Some(1)).await.unwrap();
        assert_eq!((a2.create_revision, a2.mod_revision), (1, 2));
        assert_eq!(a2.value, b"v2");
        let a3 = s.update(&a.key, b"v3".to_vec(), None).await.unwrap();
        assert_eq!(a3.mod_revision, 3);
        let (prev, rev) = s.delete(&a.key, Some(3)).await.unwrap();
        assert_eq!(
            (prev.value.as_slice(), prev.mod_revision, rev),
            (&b"v3"[..], 3, 4)
        );
        assert!(s.get(&a.key).await.unwrap().is_none());
        assert_eq!(s.current_revision(), 4);
        // Re-creating a deleted key starts a new life: create_revision resets.
        let again = s.create(&a.key, b"v4".to_vec()).await.unwrap();
        assert_eq!((again.create_revision, again.mod_revision), (5, 5));
    })
    .await;
}

#[tokio::test]
async fn preconditions_answer_conflict_already_exists_and_not_found() {
    within("preconditions", async {
        let (_dir, s) = store();
        s.create("/k", b"1".to_vec()).await.unwrap();
        s.update("/k", b"2".to_vec(), Some(1)).await.unwrap();
        let err = s.update("/k", b"3".to_vec(), Some(1)).await.unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::Conflict {
                    expected: 1,
                    actual: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = s.delete("/k", Some(1)).await.unwrap_err();
        assert!(matches!(err, StorageError::Conflict { .. }), "{err:?}");
        let err = s.create("/k", b"x".to_vec()).await.unwrap_err();
        assert!(matches!(err, StorageError::AlreadyExists { ref key } if key == "/k"));
        let err = s.update("/missing", b"x".to_vec(), None).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { ref key } if key == "/missing"));
        let err = s.delete("/missing", None).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { .. }));
        // Failed writes take no revision and leave the value alone.
        assert_eq!(s.current_revision(), 2);
        assert_eq!(s.get("/k").await.unwrap().unwrap().value, b"2");
    })
    .await;
}

#[tokio::test]
async fn list_reads_a_prefix_in_pages() {
    within("list paging", async {
        let (_dir, s) = store();
        for name in ["c", "a", "e", "b", "d"] {
            s.create(&format!("/registry/pods/ns/{name}"), name.into())
                .await
                .unwrap();
        }
        s.create("/registry/pods/other/z", b"z".to_vec())
            .await
            .unwrap();
        s.create("/registry/podsx/ns/a", b"x".to_vec())
            .await
            .unwrap();
        let prefix = "/registry/pods/ns/";
        let mut seen = Vec::new();
        let mut start_after: Option<String> = None;
        loop {
            let page = s
                .list(ListOptions {
                    prefix,
                    start_after: start_after.as_deref(),
                    limit: 2,
                })
                .await
                .unwrap();
            assert_eq!(page.revision, 7);
            seen.extend(page.items.iter().map(|kv| kv.key.clone()));
            start_after = page.items.last().map(|kv| kv.key.clone());
            if !page.more {
                break;
            }
        }
        let want: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|n| format!("{prefix}{n}"))
            .collect();
        assert_eq!(seen, want);
        let all = s
            .list(ListOptions {
                prefix: "/registry/pods/",
                start_after: None,
                limit: 0,
            })
            .await
            .unwrap();
        assert_eq!(all.items.len(), 6);
        assert!(!all.more);
        assert!(all.items.iter().all(|kv| kv.value.len() == 1));
    })
    .await;
}

#[tokio::test]
async fn watch_replays_from_a_revision_then_streams_live() {
    within("watch replay", async {
        let (_dir, s) = store();
        s.create("/p/a", b"1".to_vec()).await.unwrap(); // 1
        s.create("/q/a", b"1".to_vec()).await.unwrap(); // 2
        s.update("/p/a", b"2".to_vec(), None).await.unwrap(); // 3
        s.create("/p/b", b"1".to_vec()).await.unwrap(); // 4
        let mut w = s.watch("/p/", 1).await.unwrap();
        match next_event(&mut w).await {
            Event::Put { kv, prev } => {
                assert_eq!((kv.key.as_str(), kv.mod_revision), ("/p/a", 3));
                assert_eq!(prev.unwrap().value, b"1");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(put_key(&next_event(&mut w).await), ("/p/b", 4));
        s.create("/q/b", b"1".to_vec()).await.unwrap(); // 5, filtered out
        s.delete("/p/a", None).await.unwrap(); // 6
        match next_event(&mut w).await {
            Event::Delete { prev, revision } => {
                assert_eq!(
                    (prev.key.as_str(), prev.value.as_slice(), revision),
                    ("/p/a", &b"2"[..], 6)
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn watch_from_current_revision_is_live_only() {
    within("live watch", async {
        let (_dir, s) = store();
        s.create("/a", b"1".to_vec()).await.unwrap();
        let mut w = s.watch("/", s.current_revision()).await.unwrap();
        s.create("/b", b"1".to_vec()).await.unwrap();
        assert_eq!(put_key(&next_event(&mut w).await), ("/b", 2));
        // A watch from a future revision waits for it, as Kubernetes does.
        let mut future = s.watch("/", 4).await.unwrap();
        s.create("/c", b"1".to_vec()).await.unwrap(); // 3
        s.create("/d", b"1".to_vec()).await.unwrap(); // 4
        s.create("/e", b"1".to_vec()).await.unwrap(); // 5
        assert_eq!(put_key(&next_event(&mut future).await), ("/e", 5));
    })
    .await;
}

#[tokio::test]
async fn watch_from_a_compacted_revision_is_refused() {
    within("compaction", async {
        let (_dir, s) = store();
        for i in 0..5 {
            s.create(&format!("/k{i}"), vec![]).await.unwrap();
        }
        s.compact(3).await.unwrap();
        let err = s.watch("/", 2).await.err().expect("watch from 2 must fail");
        assert!(
            matches!(
                err,
                StorageError::Compacted {
                    requested: 2,
                    oldest: 3
                }
            ),
            "{err:?}"
        );
        let mut w = s.watch("/", 3).await.unwrap();
        assert_eq!(put_key(&next_event(&mut w).await).1, 4);
    })
    .await;
}

#[tokio::test]
async fn watch_cache_window_is_bounded() {
    within("bounded window", async {
        let dir = tempfile::tempdir().unwrap();
        let options = SledOptions {
            watch_cache_events: 3,
            ..SledOptions::default()
        };
        let s = SledStorage::open_with(dir.path(), options).unwrap();
        for i in 0..10 {
            s.create(&format!("/k{i}"), vec![]).await.unwrap();
        }
        assert_eq!(s.oldest_watchable_revision(), 7);
        assert!(matches!(
            s.watch("/", 6).await,
            Err(StorageError::Compacted { .. })
        ));
        let mut w = s.watch("/", 7).await.unwrap();
        assert_eq!(put_key(&next_event(&mut w).await).1, 8);
    })
    .await;
}

#[tokio::test]
async fn slow_watcher_is_dropped_with_watch_lagged() {
    within("lagging watcher", async {
        let dir = tempfile::tempdir().unwrap();
        let options = SledOptions {
            watch_lag_batches: 4,
            ..SledOptions::default()
        };
        let s = SledStorage::open_with(dir.path(), options).unwrap();
        let mut w = s.watch("/", 0).await.unwrap();
        for i in 0..20 {
            s.create(&format!("/k{i}"), vec![]).await.unwrap();
        }
        let first = w.next().await.expect("an item");
        assert!(matches!(first, Err(StorageError::WatchLagged)), "{first:?}");
        assert!(w.next().await.is_none(), "a lagged watch must end");
    })
    .await;
}

#[tokio::test]
async fn restart_keeps_data_and_revision_and_compacts_old_watches() {
    within("restart", async {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStorage::open(dir.path()).unwrap();
            s.create("/a", b"1".to_vec()).await.unwrap();
            s.create("/b", b"1".to_vec()).await.unwrap();
            s.update("/a", b"2".to_vec(), None).await.unwrap();
            s.delete("/b", None).await.unwrap();
        }
        let s = SledStorage::open(dir.path()).unwrap();
        assert_eq!(s.current_revision(), 4);
        let a = s.get("/a").await.unwrap().unwrap();
        assert_eq!(
            (a.value.as_slice(), a.create_revision, a.mod_revision),
            (&b"2"[..], 1, 3)
        );
        assert!(s.get("/b").await.unwrap().is_none());
        // The watch cache restarts empty at the current revision: older revisions relist.
        assert!(matches!(
            s.watch("/", 3).await,
            Err(StorageError::Compacted {
                requested: 3,
                oldest: 4
            })
        ));
        let mut w = s.watch("/", 4).await.unwrap();
        let c = s.create("/c", vec![]).await.unwrap();
        assert_eq!(c.mod_revision, 5, "revisions continue across restarts");
        assert_eq!(put_key(&next_event(&mut w).await), ("/c", 5));
    })
    .await;
}

#[tokio::test]
async fn dropping_the_store_ends_watches() {
    within("drop", async {
        let (_dir, s) = store();
        let mut w = s.watch("/", 0).await.unwrap();
        drop(s);
        assert!(w.next().await.is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_get_distinct_revisions_and_share_flushes() {
    within("concurrent writers", async {
        let (_dir, s) = store();
        let s = Arc::new(s);
        let mut tasks = Vec::new();
        for t in 0..64 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut revs = Vec::new();
                for i in 0..20 {
                    let kv = s
                        .create(&format!("/w/{t}/{i}"), vec![0; 2048])
                        .await
                        .unwrap();
                    revs.push(kv.mod_revision);
                }
                revs
            }));
        }
        let mut all = HashSet::new();
        for task in tasks {
            for rev in task.await.unwrap() {
                assert!(all.insert(rev), "revision {rev} handed out twice");
            }
        }
        assert_eq!(all.len(), 64 * 20);
        assert_eq!(s.current_revision(), 64 * 20);
        assert_eq!(*all.iter().max().unwrap(), 64 * 20);
        let listed = s
            .list(ListOptions {
                prefix: "/w/",
                start_after: None,
                limit: 0,
            })
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 64 * 20);
        assert_eq!(s.write_count(), 64 * 20);
        let flushes = s.flush_count();
        assert!(
            flushes < s.write_count(),
            "group commit did not group: {flushes} flushes for {} writes",
            s.write_count()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_of_one_key_admit_exactly_one() {
    within("racing creates", async {
        let (_dir, s) = store();
        let s = Arc::new(s);
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { s.create("/same", vec![i]).await })
            })
            .collect();
        let mut ok = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => ok += 1,
                Err(StorageError::AlreadyExists { .. }) => {}
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(ok, 1);
        assert_eq!(s.current_revision(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_compare_and_swap_updates_admit_one_per_revision() {
    within("racing updates", async {
        let (_dir, s) = store();
        let s = Arc::new(s);
        s.create("/counter", b"0".to_vec()).await.unwrap();
        // Each task increments with read-modify-write until it succeeds once.
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    loop {
                        let cur = s.get("/counter").await.unwrap().unwrap();
                        let n: u32 = std::str::from_utf8(&cur.value).unwrap().parse().unwrap();
                        match s
                            .update(
                                "/counter",
                                (n + 1).to_string().into_bytes(),
                                Some(cur.mod_revision),
                            )
                            .await
                        {
                            Ok(_) => return,
                            Err(StorageError::Conflict { .. }) => continue,
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(s.get("/counter").await.unwrap().unwrap().value, b"16");
    })
    .await;
}

/// Watches started while writes are in flight, from whatever revision is current at that
/// moment, must each see every later revision exactly once: the replay/subscribe handover
/// has no gap and no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watches_started_during_writes_see_every_later_revision_once() {
    within("watch handover", async {
        let (_dir, s) = store();
        let s = Arc::new(s);
        const WRITES: u64 = 1500;
        let writers: Vec<_> = (0..16)
            .map(|t| {
                let s = s.clone();
                tokio::spawn(async move {
                    for i in 0..WRITES / 16 + 1 {
                        if s.current_revision() >= WRITES {
                            break;
                        }
                        s.create(&format!("/h/{t}/{i}"), vec![1; 64]).await.unwrap();
                    }
                })
            })
            .collect();
        // Fifty watches, each started once the revision has moved on since the last one.
        let mut watchers = Vec::new();
        let mut last_start = None;
        while watchers.len() < 50 && s.current_revision() < WRITES {
            let after = s.current_revision();
            if last_start == Some(after) {
                tokio::time::sleep(Duration::from_micros(200)).await;
                continue;
            }
            last_start = Some(after);
            let mut w = s.watch("/h/", after).await.unwrap();
            watchers.push(tokio::spawn(async move {
                let mut expected = after + 1;
                while expected <= WRITES {
                    let rev = next_event(&mut w).await.revision();
                    assert_eq!(rev, expected, "watch from {after}: gap or duplicate");
                    expected += 1;
                }
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
        assert!(watchers.len() > 1, "no watch started while writes ran");
        for watcher in watchers {
            watcher.await.unwrap();
        }
    })
    .await;
}

/// Unusual keys and values are stored as given and survive a restart; none of them can
/// collide with the store's own metadata (the revision counter).
#[tokio::test]
async fn odd_keys_and_values_round_trip_across_restart() {
    within("odd keys", async {
        let dir = tempfile::tempdir().unwrap();
        let keys = ["", "mrevision", "\0", "/ü/ñ/日本", "/a\0b", "k"];
        {
            let s = SledStorage::open(dir.path()).unwrap();
            for (i, key) in keys.iter().enumerate() {
                s.create(key, vec![0xff; i * 1000]).await.unwrap();
            }
        }
        let s = SledStorage::open(dir.path()).unwrap();
        assert_eq!(s.current_revision(), keys.len() as u64);
        for (i, key) in keys.iter().enumerate() {
            let kv = s
                .get(key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{key:?} lost"));
            assert_eq!(kv.value.len(), i * 1000, "{key:?}");
        }
        assert_eq!(s.len(), keys.len());
    })
    .await;
}

/// Regression: a store reopened right after its last handle was dropped failed with
/// "could not acquire lock" while one of sled's I/O jobs still held the closed store's file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_right_after_close_never_finds_the_lock_held() {
    within("reopen loop", async {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..40u32 {
            let s = SledStorage::open(dir.path())
                .unwrap_or_else(|e| panic!("reopen {round} right after close: {e}"));
            let writes = (0..16).map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.create(&format!("/r{round}/k{i}"), vec![0; 4096])
                        .await
                        .unwrap()
                })
            });
            for w in writes {
                w.await.unwrap();
            }
        }
    })
    .await;
}
