//! Watch semantics against a real server: resume from a resourceVersion, synthetic ADDED
//! without one, selector transitions, bookmarks, timeouts, 410 after compaction (here:
//! a restart, whose watch history starts empty), and kube-rs' watcher on top.

mod support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use serde_json::json;
use support::{within, TestServer};

fn cm(name: &str, app: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": app}},
                                  "data": {"k": "v"}}))
    .unwrap()
}

fn rv_of(cm: &ConfigMap) -> String {
    cm.metadata.resource_version.clone().unwrap()
}

/// The (type, name) of a watch event.
fn summary(ev: &WatchEvent<ConfigMap>) -> (String, String) {
    let (t, o) = match ev {
        WatchEvent::Added(o) => ("ADDED", Some(o)),
        WatchEvent::Modified(o) => ("MODIFIED", Some(o)),
        WatchEvent::Deleted(o) => ("DELETED", Some(o)),
        WatchEvent::Bookmark(_) => ("BOOKMARK", None),
        WatchEvent::Error(e) => return ("ERROR".into(), e.code.to_string()),
    };
    let name = o.and_then(|o| o.metadata.name.clone()).unwrap_or_default();
    (t.to_string(), name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_from_a_resource_version_in_order() {
    let s = TestServer::start().await;
    within(
        60,
        "watch from a resourceVersion never delivered the writes",
        async {
            let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
            let a = cms
                .create(&PostParams::default(), &cm("a", "x"))
                .await
                .unwrap();
            let stream = cms
                .watch(&WatchParams::default(), &rv_of(&a))
                .await
                .unwrap();
            let mut stream = stream.boxed();
            cms.create(&PostParams::default(), &cm("b", "x"))
                .await
                .unwrap();
            let patch = Patch::Merge(json!({"data": {"k": "w"}}));
            cms.patch("b", &PatchParams::default(), &patch)
                .await
                .unwrap();
            cms.delete("b", &DeleteParams::default()).await.unwrap();
            let mut got = Vec::new();
            while got.len() < 3 {
                got.push(summary(&stream.try_next().await.unwrap().unwrap()));
            }
            let want = [("ADDED", "b"), ("MODIFIED", "b"), ("DELETED", "b")];
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            assert_eq!(got, want);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_without_version_lists_first_then_follows_selector_transitions() {
    let s = TestServer::start().await;
    within(
        60,
        "selector watch never delivered the transitions",
        async {
            let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
            cms.create(&PostParams::default(), &cm("old", "x"))
                .await
                .unwrap();
            cms.create(&PostParams::default(), &cm("other", "y"))
                .await
                .unwrap();
            let wp = WatchParams::default().labels("app=x");
            let mut stream = cms.watch(&wp, "0").await.unwrap().boxed();
            let first = summary(&stream.try_next().await.unwrap().unwrap());
            assert_eq!(first, ("ADDED".into(), "old".into()));
            let relabel = |app: &str| Patch::Merge(json!({"metadata": {"labels": {"app": app}}}));
            cms.patch("old", &PatchParams::default(), &relabel("y"))
                .await
                .unwrap();
            cms.patch("other", &PatchParams::default(), &relabel("x"))
                .await
                .unwrap();
            let mut events = Vec::new();
            for _ in 0..2 {
                let ev = stream.try_next().await.unwrap().unwrap();
                if let WatchEvent::Deleted(o) = &ev {
                    // The last state that matched the selector.
                    assert_eq!(o.metadata.labels.as_ref().unwrap()["app"], "x");
                }
                events.push(summary(&ev));
            }
            assert_eq!(
                events,
                vec![
                    ("DELETED".to_string(), "old".to_string()),
                    ("ADDED".to_string(), "other".to_string())
                ]
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_and_timeouts() {
    let s = TestServer::start().await;
    within(
        60,
        "bookmark never arrived or timeoutSeconds did not end the watch",
        async {
            let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
            let a = cms
                .create(&PostParams::default(), &cm("a", "x"))
                .await
                .unwrap();
            let mut wp = WatchParams::default().labels("app=nothing").timeout(5);
            wp.bookmarks = true;
            let mut stream = cms.watch(&wp, &rv_of(&a)).await.unwrap().boxed();
            // A write the selector filters out still advances the bookmark.
            let b = cms
                .create(&PostParams::default(), &cm("b", "x"))
                .await
                .unwrap();
            match stream.try_next().await.unwrap().unwrap() {
                WatchEvent::Bookmark(bm) => {
                    assert_eq!(bm.metadata.resource_version, rv_of(&b));
                }
                other => panic!("expected a bookmark, got {:?}", summary(&other)),
            }
            // timeoutSeconds=5 ends the stream.
            let start = std::time::Instant::now();
            while let Some(ev) = stream.next().await {
                ev.unwrap();
            }
            assert!(start.elapsed() < std::time::Duration::from_secs(10));
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_version_is_410_and_kube_watcher_recovers() {
    let s = TestServer::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let first = within(30, "create before restart", async {
        let a = cms
            .create(&PostParams::default(), &cm("a", "x"))
            .await
            .unwrap();
        cms.create(&PostParams::default(), &cm("b", "x"))
            .await
            .unwrap();
        a
    })
    .await;
    let dir = within(30, "server stop", s.stop()).await;
    let s = TestServer::start_in(dir).await;
    within(60, "410 after restart / watcher relist", async {
        let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
        // Writes survived the restart.
        assert_eq!(cms.get("b").await.unwrap().data.unwrap()["k"], "v");
        let mut stream = cms
            .watch(&WatchParams::default(), &rv_of(&first))
            .await
            .unwrap()
            .boxed();
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Error(e) => {
                assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
            }
            other => panic!("expected a 410 ERROR event, got {:?}", summary(&other)),
        }
        // kube-rs' watcher lists, then watches; it sees both objects and a new one.
        let mut w = watcher(cms.clone(), watcher::Config::default()).boxed();
        let mut names = Vec::new();
        loop {
            match w.try_next().await.unwrap().unwrap() {
                watcher::Event::InitApply(o) => names.push(o.metadata.name.unwrap()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        names.sort();
        assert_eq!(names, vec!["a", "b"]);
        cms.create(&PostParams::default(), &cm("c", "x"))
            .await
            .unwrap();
        loop {
            if let watcher::Event::Apply(o) = w.try_next().await.unwrap().unwrap() {
                assert_eq!(o.metadata.name.as_deref(), Some("c"));
                break;
            }
        }
    })
    .await;
}
