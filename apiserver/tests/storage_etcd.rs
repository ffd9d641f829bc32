//! The etcd backend against a real etcd started on loopback by each test (skipped, with
//! the reason printed, where etcd is not installed).

#[path = "../benches/store/etcd_peer.rs"]
mod etcd_peer;

use std::future::Future;
use std::time::Duration;

use etcd_peer::EtcdProcess;
use futures::StreamExt;
use minik8s_apiserver::storage::{
    EtcdStorage, Event, EventStream, ListOptions, Revision, Storage, StorageError,
};

/// Runs `body` against a fresh etcd, under a bound: hitting it means etcd never answered
/// or a watch never delivered.
async fn with_etcd<F, Fut>(name: &str, body: F)
where
    F: FnOnce(EtcdStorage) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(binary) = etcd_peer::etcd_binary() else {
        eprintln!("skipping {name}: etcd is not installed");
        return;
    };
    let run = async {
        let etcd = EtcdProcess::start(binary).await.expect("start etcd");
        let store = EtcdStorage::connect(&[etcd.endpoint.as_str()])
            .await
            .expect("connect to etcd");
        body(store).await;
        drop(etcd);
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within 60s: etcd or a watch hung"));
}

async fn next_event(stream: &mut EventStream) -> Event {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("no watch event within 10s")
        .expect("watch ended early")
        .expect("watch failed")
}

fn revision_of(event: &Event) -> Revision {
    event.revision()
}

#[tokio::test]
async fn etcd_crud_and_preconditions_follow_the_contract() {
    with_etcd("etcd crud", |s| async move {
        let base = s.current_revision();
        let a = s.create("/registry/pods/ns/a", b"v1".to_vec()).await.unwrap();
        assert_eq!(a.mod_revision, base + 1);
        assert_eq!(a.create_revision, a.mod_revision);
        assert_eq!(s.get(&a.key).await.unwrap().unwrap(), a);
        let err = s.create(&a.key, b"x".to_vec()).await.unwrap_err();
        assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err:?}");
        let a2 = s.update(&a.key, b"v2".to_vec(), Some(a.mod_revision)).await.unwrap();
        assert_eq!((a2.create_revision, a2.mod_revision), (a.mod_revision, base + 2));
        let err = s.update(&a.key, b"v3".to_vec(), Some(a.mod_revision)).await.unwrap_err();
        assert!(
            matches!(err, StorageError::Conflict { expected, actual, .. } if expected == base + 1 && actual == base + 2),
            "{err:?}"
        );
        let err = s.update("/registry/pods/ns/missing", vec![], None).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { .. }), "{err:?}");
        let err = s.delete("/registry/pods/ns/missing", Some(3)).await.unwrap_err();
        assert!(matches!(err, StorageError::NotFound { .. }), "{err:?}");
        let (prev, rev) = s.delete(&a.key, None).await.unwrap();
        assert_eq!((prev.value.as_slice(), rev), (&b"v2"[..], base + 3));
        assert!(s.get(&a.key).await.unwrap().is_none());
        assert_eq!(s.current_revision(), base + 3);
    })
    .await;
}

#[tokio::test]
async fn etcd_list_pages_through_a_prefix() {
    with_etcd("etcd list", |s| async move {
        for name in ["c", "a", "b"] {
            s.create(&format!("/registry/pods/ns/{name}"), name.into())
                .await
                .unwrap();
        }
        s.create("/registry/podsx/a", vec![]).await.unwrap();
        let prefix = "/registry/pods/ns/";
        let first = s
            .list(ListOptions {
                prefix,
                start_after: None,
                limit: 2,
            })
            .await
            .unwrap();
        let keys: Vec<_> = first.items.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["/registry/pods/ns/a", "/registry/pods/ns/b"]);
        assert!(first.more);
        assert_eq!(first.revision, s.current_revision());
        let rest = s
            .list(ListOptions {
                prefix,
                start_after: Some("/registry/pods/ns/b"),
                limit: 2,
            })
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 1);
        assert_eq!(rest.items[0].value, b"c");
        assert!(!rest.more);
    })
    .await;
}

#[tokio::test]
async fn etcd_watch_replays_streams_and_reports_compaction() {
    with_etcd("etcd watch", |s| async move {
        let a = s.create("/w/a", b"1".to_vec()).await.unwrap();
        s.create("/other/x", vec![]).await.unwrap();
        let a2 = s.update("/w/a", b"2".to_vec(), None).await.unwrap();
        let mut w = s.watch("/w/", a.mod_revision).await.unwrap();
        match next_event(&mut w).await {
            Event::Put { kv, prev } => {
                assert_eq!(kv.mod_revision, a2.mod_revision);
                assert_eq!(prev.expect("prev of an update").value, b"1");
            }
            other => panic!("unexpected {other:?}"),
        }
        let (_, deleted_at) = s.delete("/w/a", None).await.unwrap();
        match next_event(&mut w).await {
            Event::Delete { prev, revision } => {
                assert_eq!((prev.value.as_slice(), revision), (&b"2"[..], deleted_at));
            }
            other => panic!("unexpected {other:?}"),
        }
        // Live-only from the current revision.
        let mut live = s.watch("/w/", s.current_revision()).await.unwrap();
        let b = s.create("/w/b", vec![]).await.unwrap();
        assert_eq!(revision_of(&next_event(&mut live).await), b.mod_revision);

        s.compact(b.mod_revision).await.unwrap();
        let err = s.watch("/w/", a.mod_revision).await.err().expect("compacted watch");
        // etcd keeps the compaction revision itself watchable.
        let oldest = b.mod_revision - 1;
        assert!(
            matches!(err, StorageError::Compacted { requested, oldest: o } if requested == a.mod_revision && o == oldest),
            "{err:?}"
        );
        let mut w = s.watch("/w/", oldest).await.unwrap();
        assert_eq!(revision_of(&next_event(&mut w).await), b.mod_revision);
        // Compacting again below the last compaction is harmless.
        s.compact(a.mod_revision).await.unwrap();
    })
    .await;
}
