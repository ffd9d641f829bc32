//! Integration tests against a real in-process API server with Node objects created directly
//! (no agents): fit, taints, affinity, selectors, spreading, unschedulable reporting and
//! retry (when a node appears or changes, or a pod frees room), other schedulers' pods, and
//! leader election.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Affinity, ContainerPort, Event, NodeAffinity, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, Pod, PodAffinityTerm, PodAntiAffinity, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::Api;
use support::*;

/// Bound upon every test: a hang means the scheduler never placed (or reported) a pod.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

async fn within<F: std::future::Future<Output = ()>>(what: &str, f: F) {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {TEST_TIMEOUT:?}"));
}

fn condition_message(pod: &Pod) -> Option<String> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let c = conditions.iter().find(|c| c.type_ == "PodScheduled")?;
    (c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
        .then(|| c.message.clone().unwrap_or_default())
}

async fn unschedulable_message(cluster: &Cluster, name: &str) -> String {
    let pods = cluster.pods();
    eventually(
        Duration::from_secs(20),
        &format!("{name} to be reported unschedulable"),
        || {
            let pods = pods.clone();
            async move {
                pods.get(name)
                    .await
                    .ok()
                    .as_ref()
                    .and_then(condition_message)
            }
        },
    )
    .await
}

async fn bound_node(cluster: &Cluster, name: &str) -> String {
    let pods = cluster.pods();
    eventually(
        Duration::from_secs(20),
        &format!("{name} to be bound"),
        || {
            let pods = pods.clone();
            async move { pods.get(name).await.ok()?.spec?.node_name }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_fit_over_many_pods_never_overcommits() {
    within("resource fit", async {
        let cluster = Cluster::start().await;
        for i in 0..4 {
            cluster
                .create_node(node(&format!("n{i}"), "1", "1Gi"))
                .await;
        }
        let _scheduler = cluster.start_scheduler(cluster.scheduler_config()).await;
        for i in 0..40 {
            cluster
                .create_pod(pod(&format!("p{i:02}"), "300m", "100Mi"))
                .await;
        }
        // Three 300m pods fit a 1-CPU node: 12 bind, 28 wait.
        let placements = eventually(Duration::from_secs(30), "12 pods bound", || async {
            let p = cluster.placements().await;
            (p.values().filter(|n| n.is_some()).count() == 12).then_some(p)
        })
        .await;
        let mut per_node: HashMap<String, usize> = HashMap::new();
        for node in placements.values().flatten() {
            *per_node.entry(node.clone()).or_default() += 1;
        }
        assert!(per_node.values().all(|n| *n == 3), "per node: {per_node:?}");
        let pending = placements
            .iter()
            .find(|(_, n)| n.is_none())
            .map(|(k, _)| k.clone());
        let pending = pending.expect("some pod is pending");
        assert_eq!(
            unschedulable_message(&cluster, &pending).await,
            "0/4 nodes are available: 4 Insufficient cpu. preemption: 0/4 nodes are available: \
             4 Preemption is not helpful for scheduling."
        );
        // Still 12 after retries: nothing was overcommitted by a later attempt.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let bound = cluster
            .placements()
            .await
            .values()
            .filter(|n| n.is_some())
            .count();
        assert_eq!(bound, 12);
    })
    .await;
}

fn require(pod: &mut Pod, term: NodeSelectorTerm) {
    spec_mut(pod).affinity = Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![term],
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
}

fn expr(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: Some(values.iter().map(|v| v.to_string()).collect()),
    }
}

fn select(pod: &mut Pod, key: &str, value: &str) {
    spec_mut(pod).node_selector = Some(BTreeMap::from([(key.to_string(), value.to_string())]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taints_affinity_and_selectors_are_honoured() {
    within("taints and affinity", async {
        let cluster = Cluster::start().await;
        let gpu = with_taint(
            with_label(node("gpu", "4", "4Gi"), "gpu", "true"),
            "gpu",
            "true",
            "NoSchedule",
        );
        cluster.create_node(gpu).await;
        cluster
            .create_node(with_label(node("ssd", "4", "4Gi"), "disk", "ssd"))
            .await;
        cluster
            .create_node(with_label(node("plain", "4", "4Gi"), "zone", "b"))
            .await;
        let mut cordoned = node("cordoned", "4", "4Gi");
        cordoned
            .spec
            .get_or_insert_with(Default::default)
            .unschedulable = Some(true);
        cluster.create_node(cordoned).await;
        let _scheduler = cluster.start_scheduler(cluster.scheduler_config()).await;

        let mut tolerant = pod("tolerant", "100m", "");
        select(&mut tolerant, "gpu", "true");
        spec_mut(&mut tolerant).tolerations = Some(vec![Toleration {
            key: Some("gpu".into()),
            operator: Some("Equal".into()),
            value: Some("true".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }]);
        let mut by_selector = pod("by-selector", "100m", "");
        select(&mut by_selector, "disk", "ssd");
        let mut zone_b = pod("zone-b", "100m", "");
        require(
            &mut zone_b,
            NodeSelectorTerm {
                match_expressions: Some(vec![expr("zone", "In", &["b"])]),
                match_fields: None,
            },
        );
        let mut not_ssd = pod("not-ssd", "100m", "");
        require(
            &mut not_ssd,
            NodeSelectorTerm {
                match_expressions: Some(vec![expr("disk", "NotIn", &["ssd"])]),
                match_fields: None,
            },
        );
        let mut by_name = pod("by-name", "100m", "");
        require(
            &mut by_name,
            NodeSelectorTerm {
                match_expressions: None,
                match_fields: Some(vec![expr("metadata.name", "In", &["ssd"])]),
            },
        );
        let mut intolerant = pod("intolerant", "100m", "");
        select(&mut intolerant, "gpu", "true");
        for p in [tolerant, by_selector, zone_b, not_ssd, by_name, intolerant] {
            cluster.create_pod(p).await;
        }
        for i in 0..6 {
            cluster
                .create_pod(pod(&format!("plain-{i}"), "100m", ""))
                .await;
        }
        assert_eq!(bound_node(&cluster, "tolerant").await, "gpu");
        assert_eq!(bound_node(&cluster, "by-selector").await, "ssd");
        assert_eq!(bound_node(&cluster, "zone-b").await, "plain");
        assert_eq!(bound_node(&cluster, "not-ssd").await, "plain");
        assert_eq!(bound_node(&cluster, "by-name").await, "ssd");
        for i in 0..6 {
            let n = bound_node(&cluster, &format!("plain-{i}")).await;
            assert!(n == "ssd" || n == "plain", "plain-{i} went to {n}");
        }
        assert_eq!(
            unschedulable_message(&cluster, "intolerant").await,
            "0/4 nodes are available: 1 node(s) had untolerated taint {gpu: true}, \
             1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector. \
             preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_ports_and_pod_anti_affinity_are_honoured() {
    within("ports and anti-affinity", async {
        let cluster = Cluster::start().await;
        cluster.create_node(node("a", "4", "4Gi")).await;
        cluster.create_node(node("b", "4", "4Gi")).await;
        let _scheduler = cluster.start_scheduler(cluster.scheduler_config()).await;
        for i in 0..3 {
            let mut p = pod(&format!("port-{i}"), "10m", "");
            spec_mut(&mut p).containers[0].ports = Some(vec![ContainerPort {
                container_port: 80,
                host_port: Some(8080),
                ..Default::default()
            }]);
            cluster.create_pod(p).await;
        }
        let first = bound_node(&cluster, "port-0").await;
        let second = bound_node(&cluster, "port-1").await;
        assert_ne!(first, second, "two pods on one host port");
        assert_eq!(
            unschedulable_message(&cluster, "port-2").await,
            "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports. \
             preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
        );
        for i in 0..3 {
            let mut p = pod(&format!("solo-{i}"), "10m", "");
            p.metadata.labels = Some(BTreeMap::from([("app".to_string(), "solo".to_string())]));
            spec_mut(&mut p).affinity = Some(Affinity {
                pod_anti_affinity: Some(PodAntiAffinity {
                    required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(BTreeMap::from([("app".to_string(), "solo".to_string())])),
                            match_expressions: None,
                        }),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            });
            cluster.create_pod(p).await;
        }
        let a = bound_node(&cluster, "solo-0").await;
        let b = bound_node(&cluster, "solo-1").await;
        assert_ne!(a, b, "anti-affine pods share a node");
        let message = unschedulable_message(&cluster, "solo-2").await;
        assert!(message.contains("2 node(s) didn't match pod anti-affinity rules"), "{message}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_pods_spread_across_nodes() {
    within("spreading", async {
        let cluster = Cluster::start().await;
        for i in 0..3 {
            cluster
                .create_node(node(&format!("n{i}"), "8", "8Gi"))
                .await;
        }
        let _scheduler = cluster.start_scheduler(cluster.scheduler_config()).await;
        for i in 0..9 {
            let p = owned_by_replicaset(
                pod(&format!("web-{i}"), "100m", "64Mi"),
                "web",
                "rs-uid-web",
            );
            cluster.create_pod(p).await;
        }
        let placements = eventually(Duration::from_secs(20), "9 replicas bound", || async {
            let p = cluster.placements().await;
            p.values().all(|n| n.is_some()).then_some(p)
        })
        .await;
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for n in placements.values().flatten() {
            *per_node.entry(n.clone()).or_default() += 1;
        }
        assert_eq!(
            per_node.values().copied().collect::<Vec<_>>(),
            vec![3, 3, 3],
            "{per_node:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_pod_gets_condition_and_event_and_binds_when_a_node_appears() {
    within("unschedulable then retried", async {
        let cluster = Cluster::start().await;
        cluster.create_node(node("small", "1", "1Gi")).await;
        let _scheduler = cluster.start_scheduler(cluster.scheduler_config()).await;
        cluster.create_pod(pod("big", "2", "512Mi")).await;
        assert_eq!(
            unschedulable_message(&cluster, "big").await,
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: \
             1 Preemption is not helpful for scheduling."
        );
        let events: Api<Event> = Api::namespaced(cluster.client.clone(), "default");
        // Three failed attempts (at about 0 s, 1 s, 3 s): the next backoff is 4 s.
        let failures = eventually(
            Duration::from_secs(20),
            "three FailedScheduling events",
            || {
                let events = events.clone();
                async move {
                    let list = events.list(&ListParams::default()).await.ok()?;
                    let failed: Vec<Event> = list
                        .items
                        .into_iter()
                        .filter(|e| e.reason.as_deref() == Some("FailedScheduling"))
                        .collect();
                    (failed.len() >= 3).then_some(failed)
                }
            },
        )
        .await;
        let e = &failures[0];
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.involved_object.kind.as_deref(), Some("Pod"));
        assert_eq!(e.involved_object.name.as_deref(), Some("big"));
        assert_eq!(
            e.source.as_ref().and_then(|s| s.component.as_deref()),
            Some("default-scheduler")
        );
        assert!(e
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .starts_with("big."));
        assert!(e
            .message
            .as_deref()
            .unwrap_or_default()
            .starts_with("0/1 nodes are available: 1 Insufficient cpu."));
        let added = tokio::time::Instant::now();
        cluster.create_node(node("large", "4", "4Gi")).await;
        assert_eq!(bound_node(&cluster, "big").await, "large");
        assert!(
            added.elapsed() < Duration::from_millis(2500),
            "the node's arrival should retry the pod at once, not after its backoff ({:?})",
            added.elapsed()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_for_other_schedulers_are_left_alone() {
    within("other schedulers", async {
        let cluster = Cluster::start().await;
        cluster.create_node(node("n", "4", "4Gi")).await;
        let _scheduler = cluster.start_scheduler(cluster.scheduler_config()).await;
        let mut theirs = pod("theirs", "", "");
        spec_mut(&mut theirs).scheduler_name = Some("someone-else".into());
        let mut named = pod("named", "", "");
        spec_mut(&mut named).scheduler_name = Some("minik8s-scheduler".into());
        cluster.create_pod(theirs).await;
        cluster.create_pod(named).await;
        cluster.create_pod(pod("default", "", "")).await;
        bound_node(&cluster, "named").await;
        bound_node(&cluster, "default").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let placements = cluster.placements().await;
        assert_eq!(placements.get("theirs"), Some(&None), "{placements:?}");
    })
    .await;
}

/// Waits until `name` has failed `attempts` times (one FailedScheduling event each), so its
/// next retry is `backoff(attempts)` away: 8 s after the fourth (0 s, 1 s, 3 s, 7 s).
async fn failed_attempts(cluster: &Cluster, name: &str, attempts: usize) {
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), "default");
    eventually(
        Duration::from_secs(30),
        &format!("{attempts} failed attempts to schedule {name}"),
        || {
            let events = events.clone();
            async move {
                let list = events.list(&ListParams::default()).await.ok()?;
                let failed = list
                    .items
                    .iter()
                    .filter(|e| e.reason.as_deref() == Some("FailedScheduling"))
                    .filter(|e| e.involved_object.name.as_deref() == Some(name))
                    .count();
                (failed >= attempts).then_some(())
            }
        },
    )
    .await;
}

/// Well under the 8 s a pod waits after its fourth failure, so a binding this soon after a
/// cluster change was caused by the change, not by the backoff running out.
const PROMPTLY: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_pod_is_retried_at_once_when_its_node_is_uncordoned() {
    within("retry on uncordon", async {
        let cluster = Cluster::start().await;
        let mut cordoned = node("cordoned", "4", "4Gi");
        cordoned
            .spec
            .get_or_insert_with(Default::default)
            .unschedulable = Some(true);
        cluster.create_node(cordoned).await;
        let _scheduler = cluster.start_scheduler(cluster.scheduler_config()).await;
        cluster.create_pod(pod("waiter", "1", "512Mi")).await;
        let message = unschedulable_message(&cluster, "waiter").await;
        assert!(
            message.contains("1 node(s) were unschedulable"),
            "{message}"
        );
        failed_attempts(&cluster, "waiter", 4).await;
        let uncordoned = tokio::time::Instant::now();
        let body = serde_json::json!({"spec": {"unschedulable": false}});
        cluster
            .nodes()
            .patch("cordoned", &PatchParams::default(), &Patch::Merge(&body))
            .await
            .expect("uncordoning the node");
        assert_eq!(bound_node(&cluster, "waiter").await, "cordoned");
        assert!(
            uncordoned.elapsed() < PROMPTLY,
            "uncordoning should retry the pod at once, not after its backoff ({:?})",
            uncordoned.elapsed()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_pod_is_retried_at_once_when_a_pod_frees_room() {
    within("retry on pod deletion", async {
        let cluster = Cluster::start().await;
        cluster.create_node(node("full", "2", "2Gi")).await;
        let _scheduler = cluster.start_scheduler(cluster.scheduler_config()).await;
        cluster.create_pod(pod("hog", "2", "1Gi")).await;
        assert_eq!(bound_node(&cluster, "hog").await, "full");
        cluster.create_pod(pod("waiter", "1", "512Mi")).await;
        let message = unschedulable_message(&cluster, "waiter").await;
        assert!(message.contains("1 Insufficient cpu"), "{message}");
        failed_attempts(&cluster, "waiter", 4).await;
        let deleted = tokio::time::Instant::now();
        // No kubelet runs here to finish a graceful delete: remove the pod at once.
        cluster
            .pods()
            .delete(
                "hog",
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                },
            )
            .await
            .expect("deleting the hog");
        assert_eq!(bound_node(&cluster, "waiter").await, "full");
        assert!(
            deleted.elapsed() < PROMPTLY,
            "a deleted pod's freed room should retry the pod at once ({:?})",
            deleted.elapsed()
        );
    })
    .await;
}
