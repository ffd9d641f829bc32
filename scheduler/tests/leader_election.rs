//! Two schedulers with leader election against one real API server: only the Lease holder
//! binds, no pod is ever bound twice, and the standby takes over within the lease duration
//! when the leader dies (and at once when it shuts down and releases the Lease).

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::Api;
use support::*;

/// Bound upon the test: a hang means no scheduler became leader or pods were never bound.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

async fn holder(cluster: &Cluster, lease: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-system");
    leases.get(lease).await.ok()?.spec?.holder_identity
}

async fn all_bound(cluster: &Cluster, count: usize) {
    eventually(
        Duration::from_secs(30),
        &format!("{count} pods bound"),
        || async {
            let p = cluster.placements().await;
            (p.len() == count && p.values().all(|n| n.is_some())).then_some(())
        },
    )
    .await;
}

/// Every node each pod was ever seen bound to.
type Seen = Arc<Mutex<HashMap<String, Vec<String>>>>;

/// Records every node each pod was ever seen on.
fn record_bindings(cluster: &Cluster) -> (Seen, tokio::task::JoinHandle<()>) {
    let seen: Seen = Arc::default();
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let record = seen.clone();
    let task = tokio::spawn(async move {
        let stream = watcher::watcher(pods, watcher::Config::default());
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let (Ok(Event::Apply(pod)) | Ok(Event::InitApply(pod))) = event else {
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            if let Some(node) = pod.spec.and_then(|s| s.node_name) {
                let mut seen = record.lock().expect("lock");
                let nodes = seen.entry(name).or_default();
                if nodes.last() != Some(&node) {
                    nodes.push(node);
                }
            }
        }
    });
    (seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_leader_elected_schedulers_never_double_bind() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = Cluster::start().await;
        for i in 0..3 {
            cluster
                .create_node(node(&format!("n{i}"), "16", "16Gi"))
                .await;
        }
        let (seen, watch_task) = record_bindings(&cluster);
        let a_config = cluster.leader_config("sched");
        let a_id = a_config.identity.clone();
        let a = cluster.start_scheduler(a_config).await;
        eventually(Duration::from_secs(10), "A to take the lease", || async {
            (holder(&cluster, "sched").await.as_deref() == Some(a_id.as_str())).then_some(())
        })
        .await;
        let b_config = cluster.leader_config("sched");
        let b_id = b_config.identity.clone();
        let b = cluster.start_scheduler(b_config).await;
        for i in 0..30 {
            cluster
                .create_pod(pod(&format!("first-{i}"), "10m", ""))
                .await;
        }
        all_bound(&cluster, 30).await;
        let b_acted = b.stats.bound()
            + b.stats
                .bind_failures
                .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(b_acted, 0, "the standby must not bind");
        assert_eq!(a.stats.bound(), 30);

        // A dies without releasing the Lease: B takes over after the lease duration (3 s).
        a.handle.abort();
        let died = tokio::time::Instant::now();
        for i in 0..20 {
            cluster
                .create_pod(pod(&format!("second-{i}"), "10m", ""))
                .await;
        }
        eventually(Duration::from_secs(15), "B to take the lease", || async {
            (holder(&cluster, "sched").await.as_deref() == Some(b_id.as_str())).then_some(())
        })
        .await;
        assert!(
            died.elapsed() < Duration::from_secs(8),
            "takeover took {:?}",
            died.elapsed()
        );
        all_bound(&cluster, 50).await;
        assert_eq!(b.stats.bound(), 20);
        assert_eq!(
            a.stats.bound(),
            30,
            "the dead leader must not bind any more"
        );

        // B shuts down cleanly and releases: C takes over well before the lease duration.
        let c_config = cluster.leader_config("sched");
        let c_id = c_config.identity.clone();
        let c = cluster.start_scheduler(c_config).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        b.shutdown.cancel();
        let released = tokio::time::Instant::now();
        eventually(
            Duration::from_secs(10),
            "C to take the released lease",
            || async {
                (holder(&cluster, "sched").await.as_deref() == Some(c_id.as_str())).then_some(())
            },
        )
        .await;
        assert!(
            released.elapsed() < Duration::from_secs(3),
            "handover took {:?}",
            released.elapsed()
        );
        cluster.create_pod(pod("third", "10m", "")).await;
        all_bound(&cluster, 51).await;
        assert_eq!(c.stats.bound(), 1);

        tokio::time::sleep(Duration::from_millis(300)).await;
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 51, "every pod was seen bound");
        for (pod, nodes) in &seen {
            assert_eq!(nodes.len(), 1, "{pod} was bound to {nodes:?}");
        }
        watch_task.abort();
    })
    .await
    .expect("leader election test hung: no leader, or pods never bound");
}
