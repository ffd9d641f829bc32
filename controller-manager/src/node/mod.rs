//! Node lifecycle: health from node Leases, lifecycle taints, NoExecute eviction and pod
//! CIDR allocation — one periodic monitor pass over cached Nodes, Leases and Pods, as
//! Kubernetes' monitorNodeHealth runs every node-monitor-period.

pub mod eviction;
pub mod health;
pub mod ipam;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use minik8s_api::ready_store::ReadyStore;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cached_pod::CachedPod;
use crate::events::Events;
use ipam::RangeAllocator;

/// How often the monitor pass runs (Kubernetes' --node-monitor-period is 5 s; shorter here
/// so short grace periods in tests are honoured closely).
const MONITOR_PERIOD: Duration = Duration::from_millis(500);

pub struct NodeLifecycle {
    client: Client,
    events: Events,
    grace: Duration,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: ReadyStore<CachedPod>,
    allocator: Option<RangeAllocator>,
    /// Last heartbeat value seen per node and when we saw it change (our clock, so clock
    /// skew with the node does not matter).
    heartbeats: HashMap<String, (String, Instant)>,
}

fn watch<K>(api: Api<K>) -> (Store<K>, impl futures::Future<Output = ()>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    (store, stream.for_each(|_| async {}))
}

/// `pods` is the shared pod cache (`informer.rs`).
pub async fn run(
    client: Client,
    pods: ReadyStore<CachedPod>,
    events: Events,
    grace: Duration,
    allocator: Option<RangeAllocator>,
    shutdown: CancellationToken,
) {
    let (nodes, w1) = watch(Api::<Node>::all(client.clone()));
    let (leases, w2) = watch(Api::<Lease>::namespaced(client.clone(), "kube-node-lease"));
    let watchers = tokio::spawn(async move {
        tokio::join!(w1, w2);
    });
    let _guard = tokio_util::task::AbortOnDropHandle::new(watchers);
    // `nodes` and `leases` have this one waiter; the shared `pods` cache has many.
    if nodes.wait_until_ready().await.is_err()
        || leases.wait_until_ready().await.is_err()
        || pods.wait_until_ready().await.is_err()
    {
        return;
    }
    let mut me = NodeLifecycle {
        client,
        events,
        grace,
        nodes,
        leases,
        pods,
        allocator,
        heartbeats: HashMap::new(),
    };
    loop {
        me.monitor().await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(MONITOR_PERIOD) => {}
        }
    }
}

impl NodeLifecycle {
    async fn monitor(&mut self) {
        let nodes = self.nodes.state();
        self.heartbeats
            .retain(|n, _| nodes.iter().any(|x| x.name_any() == *n));
        for node in &nodes {
            self.check_health(node).await;
            self.sync_taints(node).await;
        }
        self.allocate_cidrs(&nodes).await;
        self.evict(&nodes).await;
    }

    /// The lease's renewTime, else the Ready condition's heartbeat.
    fn heartbeat(&self, node: &Node) -> String {
        let lease = self
            .leases
            .get(&reflector::ObjectRef::new(&node.name_any()).within("kube-node-lease"));
        if let Some(t) = lease
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.renew_time.as_ref())
        {
            return t.0.to_string();
        }
        node.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0.to_string())
            .unwrap_or_default()
    }

    async fn check_health(&mut self, node: &Node) {
        let name = node.name_any();
        let beat = self.heartbeat(node);
        let entry = self
            .heartbeats
            .entry(name.clone())
            .or_insert_with(|| (beat.clone(), Instant::now()));
        if entry.0 != beat {
            *entry = (beat, Instant::now());
        }
        if entry.1.elapsed() <= self.grace {
            return;
        }
        let Some(conditions) = health::mark_unknown(node) else {
            return;
        };
        let api: Api<Node> = Api::all(self.client.clone());
        let body = json!({"status": {"conditions": conditions}});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => {
                info!(node = %name, "node stopped renewing its lease; Ready=Unknown");
                let note = format!("Node {name} status is now: NodeNotReady");
                self.events
                    .normal(&node.object_ref(&()), "NodeNotReady", note)
                    .await;
            }
            Err(e) => warn!(node = %name, error = %e, "marking node Ready=Unknown"),
        }
    }

    async fn sync_taints(&self, node: &Node) {
        let Some(taints) = health::desired_taints(node) else {
            return;
        };
        let api: Api<Node> = Api::all(self.client.clone());
        let body = json!({"spec": {"taints": taints}});
        if let Err(e) = api
            .patch(
                &node.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
        {
            warn!(node = %node.name_any(), error = %e, "updating lifecycle taints");
        }
    }

    async fn allocate_cidrs(&mut self, nodes: &[std::sync::Arc<Node>]) {
        let Some(allocator) = self.allocator.as_mut() else {
            return;
        };
        let current: BTreeMap<String, Option<String>> = nodes
            .iter()
            .map(|n| {
                (
                    n.name_any(),
                    n.spec.as_ref().and_then(|s| s.pod_cidr.clone()),
                )
            })
            .collect();
        let api: Api<Node> = Api::all(self.client.clone());
        for (name, cidr) in allocator.allocate(&current) {
            let Some(cidr) = cidr else {
                warn!(node = %name, "cluster CIDR exhausted; no pod CIDR for node");
                continue;
            };
            let body = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
            if let Err(e) = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                warn!(node = %name, error = %e, "assigning pod CIDR");
            }
        }
    }

    /// Deletes pods whose NoExecute tolerations ran out; on a node that is not Ready the
    /// kubelet will never confirm a graceful delete, so those are force-deleted (what
    /// Kubernetes' pod GC does for terminating pods on NotReady nodes).
    async fn evict(&self, nodes: &[std::sync::Arc<Node>]) {
        let now = Timestamp::now();
        let tainted: HashMap<String, (Vec<k8s_openapi::api::core::v1::Taint>, bool)> = nodes
            .iter()
            .filter_map(|n| {
                let taints = n.spec.as_ref()?.taints.clone()?;
                taints
                    .iter()
                    .any(|t| t.effect == "NoExecute")
                    .then(|| (n.name_any(), (taints, health::ready_status(n) != "True")))
            })
            .collect();
        if tainted.is_empty() {
            return;
        }
        for pod in self.pods.state() {
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                continue;
            };
            let Some((taints, dead)) = tainted.get(&node) else {
                continue;
            };
            if pod.metadata.deletion_timestamp.is_some() && !dead {
                continue;
            }
            if eviction::eviction_time(&pod, taints, now).is_none_or(|at| at > now) {
                continue;
            }
            let ns = pod.namespace().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            let dp = if *dead {
                DeleteParams::default().grace_period(0)
            } else {
                DeleteParams::default()
            };
            match api.delete(&pod.name_any(), &dp).await {
                Ok(_) => {
                    let note = format!("Marking for deletion Pod {ns}/{}", pod.name_any());
                    self.events
                        .normal(&pod.object_ref(&()), "TaintManagerEviction", note)
                        .await;
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => warn!(pod = %pod.name_any(), error = %e, "evicting pod"),
            }
        }
    }
}
