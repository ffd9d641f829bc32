//! Node lifecycle: a node whose Lease stops is tainted, its pods are evicted after the
//! default toleration runs out, and the ReplicaSet's replacements are scheduled elsewhere
//! (by the real minik8s scheduler, in-process). Also pod CIDR allocation.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, MicroTime, ObjectMeta};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use support::*;
use tokio_util::task::AbortOnDropHandle;

fn node(name: &str) -> Node {
    let q: BTreeMap<String, Quantity> = [
        ("cpu".to_string(), Quantity("4".into())),
        ("memory".to_string(), Quantity("8Gi".into())),
        ("pods".to_string(), Quantity("110".into())),
    ]
    .into();
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("kubernetes.io/hostname".to_string(), name.to_string())].into()),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            capacity: Some(q.clone()),
            allocatable: Some(q),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

async fn create_node(client: &Client, n: Node) {
    let api: Api<Node> = Api::all(client.clone());
    let name = n.name_any();
    let status = n.status.clone();
    api.create(&PostParams::default(), &n)
        .await
        .expect("creating a node");
    // The controller-manager writes the new node at once (its podCIDR), so the status write
    // retries on a conflict with the latest object, as a kubelet does.
    for _ in 0..20 {
        let mut latest = api.get(&name).await.expect("reading the node");
        latest.status = status.clone();
        match api
            .replace_status(&name, &PostParams::default(), &latest)
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => panic!("node status: {e}"),
        }
    }
    panic!("node status: still conflicting after 20 attempts");
}

/// Plays the kubelet's node heartbeat: renews the node's Lease every 300 ms until dropped.
fn heartbeat(client: &Client, name: &str) -> AbortOnDropHandle<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let name = name.to_string();
    AbortOnDropHandle::new(tokio::spawn(async move {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(name.clone()),
                lease_duration_seconds: Some(40),
                ..Default::default()
            }),
        };
        let _ = leases.create(&PostParams::default(), &lease).await;
        loop {
            let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
            let body = serde_json::json!({"spec": {"renewTime": now}});
            let _ = leases
                .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }))
}

async fn start_scheduler(c: &Cluster) -> tokio_util::sync::DropGuard {
    let config = minik8s_scheduler::Config {
        kubeconfig: c.kubeconfig.clone(),
        scheduler_name: "minik8s-scheduler".into(),
        leader: None,
        strategy: minik8s_scheduler::plugins::Strategy::LeastAllocated,
        percentage_of_nodes_to_score: 0,
        parallel_bindings: 4,
        identity: "node-lifecycle-test".into(),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(minik8s_scheduler::run(config, shutdown.clone()));
    shutdown.drop_guard()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_node_is_tainted_and_its_pods_replaced_elsewhere() {
    within(45, "a dead node's pods were never evicted and replaced", async {
        // Grace 2 s; pods tolerate unreachable for 2 s (API server default, shortened).
        let c = Cluster::start_tuned(2, Duration::from_secs(2)).await;
        let _scheduler = start_scheduler(&c).await;
        let nodes: Api<Node> = Api::all(c.client.clone());
        create_node(&c.client, node("doomed")).await;
        let beat = heartbeat(&c.client, "doomed");
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(2),
                selector: LabelSelector {
                    match_labels: Some(labels("web")),
                    ..Default::default()
                },
                template: Some(template("web", "busybox:1")),
                ..Default::default()
            },
            status: None,
        };
        c.replica_sets().create(&PostParams::default(), &rs).await.expect("replicaset");
        let first = eventually(15, "2 pods bound to the doomed node", || async {
            let pods = c.active_pods().await;
            let bound = pods
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("doomed"))
                .count();
            (pods.len() == 2 && bound == 2).then(|| pods.iter().map(|p| p.name_any()).collect::<Vec<_>>())
        })
        .await;
        // Pod CIDRs are allocated.
        eventually(5, "a pod CIDR for the node", || async {
            let n = nodes.get("doomed").await.ok()?;
            let spec = n.spec?;
            let cidr = spec.pod_cidr.filter(|c| c.starts_with("10.244."))?;
            (spec.pod_cidrs == Some(vec![cidr])).then_some(())
        })
        .await;

        create_node(&c.client, node("healthy")).await;
        let _beat2 = heartbeat(&c.client, "healthy");
        drop(beat); // The doomed node's kubelet dies.

        let n = eventually(10, "Ready=Unknown and unreachable taints", || async {
            let n = nodes.get("doomed").await.ok()?;
            let taints = n.spec.as_ref()?.taints.clone().unwrap_or_default();
            let has = |e: &str| taints.iter().any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == e);
            (has("NoSchedule") && has("NoExecute")).then_some(n)
        })
        .await;
        let ready = n.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        let healthy = eventually(5, "a pod CIDR for the second node", || async {
            let h = nodes.get("healthy").await.ok()?;
            h.spec.as_ref()?.pod_cidr.is_some().then_some(h)
        })
        .await;
        assert!(healthy.spec.as_ref().unwrap().taints.as_ref().is_none_or(|t| t.is_empty()));
        assert_ne!(healthy.spec.unwrap().pod_cidr, n.spec.unwrap().pod_cidr, "distinct subnets");

        eventually(15, "replacement pods running on the healthy node", || async {
            let pods = c.active_pods().await;
            let ok = pods.len() == 2
                && pods.iter().all(|p| !first.contains(&p.name_any()))
                && pods.iter().all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("healthy"));
            ok.then_some(())
        })
        .await;
        let events: Api<k8s_openapi::api::core::v1::Event> = Api::all(c.client.clone());
        let reasons: Vec<String> = events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|e| e.reason)
            .collect();
        assert!(reasons.iter().any(|r| r == "TaintManagerEviction"), "eviction events: {reasons:?}");

        // The node comes back: taints are removed once it reports Ready again.
        let _back = heartbeat(&c.client, "doomed");
        let body = serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}});
        nodes.patch_status("doomed", &PatchParams::default(), &Patch::Merge(&body)).await.unwrap();
        eventually(10, "the returning node's taints to be removed", || async {
            let n = nodes.get("doomed").await.ok()?;
            n.spec?.taints.is_none_or(|t| t.is_empty()).then_some(())
        })
        .await;
    })
    .await;
}

fn lifecycle_taints(n: &Node) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.key.starts_with("node.kubernetes.io/"))
        .map(|t| (t.key, t.effect))
        .collect();
    out.sort();
    out
}

async fn set_ready(nodes: &Api<Node>, name: &str, status: &str, reason: &str) {
    let body = serde_json::json!({"status": {"conditions": [
        {"type": "Ready", "status": status, "reason": reason}
    ]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .expect("writing the node's Ready condition");
}

/// A node whose kubelet still heartbeats but reports Ready=False (say its runtime is down)
/// gets the not-ready taints, not the unreachable ones, and keeps the condition its kubelet
/// wrote; reporting Ready again removes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reporting_not_ready_gets_the_not_ready_taints() {
    within(
        40,
        "a not-ready node was never tainted or untainted",
        async {
            let c = Cluster::start_tuned(300, Duration::from_secs(2)).await;
            let nodes: Api<Node> = Api::all(c.client.clone());
            create_node(&c.client, node("sick")).await;
            let _beat = heartbeat(&c.client, "sick");
            set_ready(&nodes, "sick", "False", "KubeletNotReady").await;
            let not_ready = "node.kubernetes.io/not-ready".to_string();
            let want = vec![
                (not_ready.clone(), "NoExecute".to_string()),
                (not_ready, "NoSchedule".to_string()),
            ];
            eventually(
                10,
                "the not-ready NoSchedule and NoExecute taints",
                || async {
                    let n = nodes.get("sick").await.ok()?;
                    (lifecycle_taints(&n) == want).then_some(())
                },
            )
            .await;
            // Well past the grace period: the fresh lease keeps it not-ready, not unreachable,
            // and the controller leaves the kubelet's condition alone.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let n = nodes.get("sick").await.unwrap();
            assert_eq!(lifecycle_taints(&n), want);
            let conditions = n.status.unwrap().conditions.unwrap();
            let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
            assert_eq!(
                (ready.status.as_str(), ready.reason.as_deref()),
                ("False", Some("KubeletNotReady"))
            );
            set_ready(&nodes, "sick", "True", "KubeletReady").await;
            eventually(10, "the not-ready taints removed", || async {
                let n = nodes.get("sick").await.ok()?;
                lifecycle_taints(&n).is_empty().then_some(())
            })
            .await;
        },
    )
    .await;
}
