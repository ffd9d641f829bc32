//! Pod admission: the kubelet's check (`lifecycle.NewPredicateAdmitHandler`, the scheduler's
//! general predicates run again on the node) that a pod bound here can run beside the pods
//! already admitted. A pod that does not fit is rejected — phase Failed with a reason and a
//! message, and an event — and none of its containers start:
//!
//! - resources (`NodeResourcesFit`): pods count, then cpu and memory requests against the
//!   Node's allocatable → `OutOfpods` / `OutOfcpu` / `OutOfmemory`, with the kubelet's message
//!   `Node didn't have enough resource: cpu, requested: …, used: …, capacity: …`;
//! - `NodeAffinity`: `spec.nodeSelector` and required node affinity against the Node's labels;
//! - `NodePorts`: a host port (protocol, IP, port) another admitted pod holds.
//!
//! Pods are admitted one at a time, in creation order at (re)start, as the kubelet's
//! HandlePodAdditions does; terminal pods hold nothing.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector;
use kube::runtime::{watcher, WatchStreamExt};
use minik8s_api::quantity::{self, Resources, Side};
use minik8s_api::ready_store::ReadyStore;
use minik8s_scheduler::plugins::{node_affinity, node_ports, node_selector};
use serde_json::json;

use super::{events, spec};
use crate::Error;

/// Why a pod was rejected: the status reason and the kubelet's message (without its
/// `Pod was rejected: ` prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub message: String,
}

/// What the admitted pods hold on the node.
#[derive(Debug, Default, Clone)]
pub struct Usage {
    pub requests: Resources,
    pub pods: i64,
    /// (protocol, host IP, port) of every host port.
    pub host_ports: Vec<(String, String, i32)>,
}

impl Usage {
    /// Adds an admitted pod (terminal pods hold nothing and are skipped).
    pub fn add(&mut self, pod: &Pod) {
        let Some(s) = pod.spec.as_ref() else { return };
        if is_terminal(pod) {
            return;
        }
        let r = quantity::pod_resources(s, Side::Requests);
        self.requests.cpu_millis += r.cpu_millis;
        self.requests.memory_bytes += r.memory_bytes;
        self.pods += 1;
        self.host_ports.extend(host_ports(pod));
    }
}

/// Orders pods for admission by creation time (then uid, for a stable order), as the
/// kubelet's HandlePodAdditions admits a batch, so a restart admits the same pods again.
pub fn sort_for_admission(pods: &mut [Pod]) {
    pods.sort_by(|a, b| {
        let key = |p: &Pod| {
            (
                p.metadata.creation_timestamp.clone(),
                spec::uid(p).to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
}

/// Succeeded or Failed.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn host_ports(pod: &Pod) -> Vec<(String, String, i32)> {
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice());
    containers
        .unwrap_or_default()
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| {
            (
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                p.host_port.unwrap_or(0),
            )
        })
        .collect()
}

/// Same protocol and port, and the same IP or either the wildcard (scheduler's NodePorts).
fn ports_conflict(a: &(String, String, i32), b: &(String, String, i32)) -> bool {
    const ANY: &str = "0.0.0.0";
    a.0 == b.0 && a.2 == b.2 && (a.1 == b.1 || a.1 == ANY || b.1 == ANY)
}

/// The admission check of `pod` on `node` beside what `used` already holds.
pub fn check(pod: &Pod, node: &Node, used: &Usage) -> Result<(), Rejection> {
    let spec = pod.spec.clone().unwrap_or_default();
    let alloc = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
    let capacity = Resources::from_map(alloc);
    let max_pods = alloc
        .and_then(|a| a.get("pods"))
        .and_then(|q| quantity::value(q).ok())
        .unwrap_or(110);
    let insufficient = |name: &str, requested: i64, used: i64, capacity: i64| Rejection {
        reason: format!("OutOf{name}"),
        message: format!(
            "Node didn't have enough resource: {name}, requested: {requested}, used: {used}, \
             capacity: {capacity}"
        ),
    };
    if used.pods + 1 > max_pods {
        return Err(insufficient("pods", 1, used.pods, max_pods));
    }
    let want = quantity::pod_resources(&spec, Side::Requests);
    // As the scheduler's Fits: a resource the pod does not request is not checked.
    if want.cpu_millis > 0 && used.requests.cpu_millis + want.cpu_millis > capacity.cpu_millis {
        return Err(insufficient(
            "cpu",
            want.cpu_millis,
            used.requests.cpu_millis,
            capacity.cpu_millis,
        ));
    }
    if want.memory_bytes > 0
        && used.requests.memory_bytes + want.memory_bytes > capacity.memory_bytes
    {
        return Err(insufficient(
            "memory",
            want.memory_bytes,
            used.requests.memory_bytes,
            capacity.memory_bytes,
        ));
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let node_name = node.metadata.name.as_deref().unwrap_or_default();
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let selector_ok = spec
        .node_selector
        .as_ref()
        .is_none_or(|s| node_selector::matches(s, &labels));
    let affinity_ok =
        required.is_none_or(|r| node_affinity::selector_matches(r, node_name, &labels));
    if !(selector_ok && affinity_ok) {
        return Err(predicate("NodeAffinity", node_selector::MISMATCH));
    }
    let wanted = host_ports(pod);
    if wanted
        .iter()
        .any(|w| used.host_ports.iter().any(|u| ports_conflict(w, u)))
    {
        return Err(predicate("NodePorts", node_ports::CONFLICT));
    }
    Ok(())
}

/// The kubelet's PredicateFailureError: reason is the predicate's name.
fn predicate(name: &str, why: &str) -> Rejection {
    Rejection {
        reason: name.into(),
        message: format!("Predicate {name} failed: {why}"),
    }
}

/// Marks a rejected pod Failed (kubelet's rejectPod) and records a Warning event.
pub async fn reject(
    client: &kube::Client,
    node_name: &str,
    pod: &Pod,
    r: &Rejection,
) -> Result<(), Error> {
    let message = format!("Pod was rejected: {}", r.message);
    events::record(
        client,
        node_name,
        pod,
        None,
        true,
        &r.reason,
        message.clone(),
    );
    let api: Api<Pod> = Api::namespaced(client.clone(), spec::namespace(pod));
    let patch = json!({"status": {"phase": "Failed", "reason": r.reason, "message": message}});
    api.patch_status(
        spec::name(pod),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|e| Error::api(format!("reject pod {}", spec::name(pod)), e))?;
    tracing::warn!(pod = %spec::name(pod), reason = %r.reason, message = %r.message, "pod rejected");
    Ok(())
}

/// This node's Node object, kept current by a watch (allocatable and labels change).
pub struct NodeCache {
    /// Awaited by every pod worker at once, hence the ReadyStore.
    store: ReadyStore<Node>,
    task: tokio::task::AbortHandle,
}

impl Drop for NodeCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl NodeCache {
    /// Starts the watch of `node` (needs a tokio runtime).
    pub fn spawn(client: kube::Client, node: &str) -> NodeCache {
        let (store, writer) = reflector::store();
        let api: Api<Node> = Api::all(client);
        let wc = watcher::Config::default().fields(&format!("metadata.name={node}"));
        let stream = reflector::reflector(writer, watcher(api, wc))
            .default_backoff()
            .touched_objects();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(r) = stream.next().await {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "node watch; retrying");
                }
            }
        });
        NodeCache {
            store: ReadyStore::new(store),
            task: task.abort_handle(),
        }
    }

    /// Waits (up to `wait`) until the Node has been listed; false if it has not.
    pub async fn ready(&self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.store.wait_until_ready())
            .await
            .is_ok()
    }

    /// The Node, once listed.
    pub fn node(&self) -> Option<Arc<Node>> {
        self.store.state().into_iter().next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(cpu: &str, memory: &str, pods: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"disk": "ssd", "kubernetes.io/hostname": "n1"}},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}},
        }))
        .unwrap()
    }

    fn pod(cpu: &str, memory: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
                "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
        }))
        .unwrap()
    }

    fn with_host_port(mut p: Pod, port: i32, ip: Option<&str>) -> Pod {
        let c = &mut p.spec.as_mut().unwrap().containers[0];
        c.ports = Some(vec![serde_json::from_value(
            json!({"containerPort": 80, "hostPort": port, "hostIP": ip}),
        )
        .unwrap()]);
        p
    }

    fn usage(pods: &[Pod]) -> Usage {
        let mut u = Usage::default();
        pods.iter().for_each(|p| u.add(p));
        u
    }

    #[test]
    fn resources_fit_and_reject_with_kubelet_wording() {
        let n = node("2", "1Gi", "110");
        assert_eq!(check(&pod("500m", "100Mi"), &n, &Usage::default()), Ok(()));
        let used = usage(&[pod("1500m", "100Mi")]);
        let r = check(&pod("600m", "1Mi"), &n, &used).unwrap_err();
        assert_eq!(r.reason, "OutOfcpu");
        assert_eq!(
            r.message,
            "Node didn't have enough resource: cpu, requested: 600, used: 1500, capacity: 2000"
        );
        let r = check(&pod("100m", "2Gi"), &n, &Usage::default()).unwrap_err();
        assert_eq!(r.reason, "OutOfmemory");
        assert!(r.message.contains("requested: 2147483648"), "{}", r.message);
        // A pod that requests nothing always fits the resources.
        let empty: Pod = serde_json::from_value(
            json!({"metadata": {"name": "e"}, "spec": {"containers": [{"name": "c"}]}}),
        )
        .unwrap();
        let full = usage(&[pod("2", "1Gi")]);
        assert_eq!(check(&empty, &n, &full), Ok(()));
    }

    #[test]
    fn admission_order_is_creation_then_uid() {
        let p = |uid: &str, at: &str| -> Pod {
            serde_json::from_value(
                json!({"metadata": {"name": uid, "uid": uid, "creationTimestamp": at}}),
            )
            .unwrap()
        };
        let mut pods = vec![
            p("c", "2026-01-01T00:00:02Z"),
            p("b", "2026-01-01T00:00:01Z"),
            p("a", "2026-01-01T00:00:02Z"),
        ];
        sort_for_admission(&mut pods);
        let order: Vec<&str> = pods.iter().map(spec::uid).collect();
        assert_eq!(order, ["b", "a", "c"]);
    }

    #[test]
    fn pods_count() {
        let n = node("2", "1Gi", "1");
        let r = check(&pod("1m", "1Mi"), &n, &usage(&[pod("1m", "1Mi")])).unwrap_err();
        assert_eq!(r.reason, "OutOfpods");
        assert_eq!(
            r.message,
            "Node didn't have enough resource: pods, requested: 1, used: 1, capacity: 1"
        );
    }

    #[test]
    fn terminal_pods_hold_nothing() {
        let mut done = pod("2", "1Gi");
        done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
        let used = usage(&[with_host_port(done, 8080, None)]);
        assert_eq!(used.pods, 0);
        let n = node("2", "1Gi", "110");
        assert_eq!(
            check(&with_host_port(pod("2", "1Gi"), 8080, None), &n, &used),
            Ok(())
        );
    }

    #[test]
    fn host_ports() {
        let n = node("2", "1Gi", "110");
        let used = usage(&[with_host_port(pod("1m", "1Mi"), 8080, None)]);
        let r = check(&with_host_port(pod("1m", "1Mi"), 8080, None), &n, &used).unwrap_err();
        assert_eq!(r.reason, "NodePorts");
        assert_eq!(
            r.message,
            "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"
        );
        // The wildcard conflicts with a specific IP; two specific IPs do not conflict.
        let r = check(
            &with_host_port(pod("1m", "1Mi"), 8080, Some("10.0.0.1")),
            &n,
            &used,
        );
        assert_eq!(r.unwrap_err().reason, "NodePorts");
        let used = usage(&[with_host_port(pod("1m", "1Mi"), 8080, Some("10.0.0.2"))]);
        let p = with_host_port(pod("1m", "1Mi"), 8080, Some("10.0.0.1"));
        assert_eq!(check(&p, &n, &used), Ok(()));
        assert_eq!(
            check(&with_host_port(pod("1m", "1Mi"), 8081, None), &n, &used),
            Ok(())
        );
    }

    #[test]
    fn node_selector_and_required_affinity() {
        let n = node("2", "1Gi", "110");
        let mut p = pod("1m", "1Mi");
        p.spec.as_mut().unwrap().node_selector = Some([("disk".into(), "ssd".into())].into());
        assert_eq!(check(&p, &n, &Usage::default()), Ok(()));
        p.spec.as_mut().unwrap().node_selector = Some([("disk".into(), "hdd".into())].into());
        let r = check(&p, &n, &Usage::default()).unwrap_err();
        assert_eq!(r.reason, "NodeAffinity");
        assert_eq!(
            r.message,
            "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
        );
        let mut p = pod("1m", "1Mi");
        p.spec.as_mut().unwrap().affinity = Some(
            serde_json::from_value(json!({"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["nvme"]}]}
            ]}}}))
            .unwrap(),
        );
        assert_eq!(
            check(&p, &n, &Usage::default()).unwrap_err().reason,
            "NodeAffinity"
        );
    }
}
